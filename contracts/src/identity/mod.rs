//! Identity: the records of the management plane (bucket IDENTITY), the
//! bearer API key format, and the verification exchange between api-servers
//! and auth-caches.
//!
//! The bucket is the source of truth; it is written only by the admin CLI and
//! the admin API, each write a compare-and-set on the revision it read, and
//! read by auth-caches through a watch.

pub mod apikey;
pub mod audit;
pub mod cache_control;
pub mod records;
pub mod verify;

pub use records::{Entry, KeyMaterial, KeyRecord, Quota, RateLimit, TenantRecord};

/// Whether requests must authenticate: one setting (`AUTH`) for every public
/// endpoint of a fleet, the api-server's and the usage API's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Every request is verified through an auth-cache (the default).
    Required,
    /// No authentication: every request is the anonymous tenant. For a
    /// single-tenant deployment behind its own gate, and benchmarks.
    None,
}
pub use verify::{AskError, QuotaExhausted, Refusal, Verdict, VerifyRequest, ask};

use async_nats::jetstream::kv;
use std::time::Duration;

/// The KV bucket of tenants and keys.
pub const BUCKET: &str = "IDENTITY";
/// The stream behind [`BUCKET`]; its last sequence is the bucket's latest revision.
pub const STREAM: &str = "KV_IDENTITY";

/// Core NATS subject of verification requests; auth-caches answer it as one queue group.
pub const VERIFY_SUBJECT: &str = "identity.verify";
pub const VERIFY_QUEUE_GROUP: &str = "auth-cache";
/// The same requests, answered by every auth-cache that hears them (no queue
/// group): [`ask`] sends here only when the queue group's pick has not
/// answered within [`HEDGE_AFTER`], so a paused or partitioned auth-cache
/// costs a request that delay instead of a refusal.
pub const VERIFY_EVERY_SUBJECT: &str = "identity.verify.every";
/// How long [`ask`] waits for the queue group before it asks every auth-cache.
/// An auth-cache answers in well under a millisecond; a silent one is only
/// noticed by the servers after seconds of missed pings.
pub const HEDGE_AFTER: Duration = Duration::from_millis(40);

/// The IDENTITY bucket. History keeps the previous versions of a record for
/// audit; every write is a compare-and-set, so history is never needed to
/// resolve a conflict.
pub fn bucket(replicas: usize) -> kv::Config {
    kv::Config {
        bucket: BUCKET.to_owned(),
        description: "Tenants and their keys (authoritative; written by the admin CLI/API only)".to_owned(),
        history: 16,
        num_replicas: replicas.max(1),
        storage: async_nats::jetstream::stream::StorageType::File,
        max_value_size: 64 * 1024,
        ..Default::default()
    }
}

/// How long an "unknown key" answer may be reused before asking the replica again.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(2);

/// Compares secrets (tokens, secret digests) without stopping at the first
/// difference, so the time taken says nothing about how much of a guess was right.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The fewest characters an admin token (`ADMIN_TOKEN`, `USAGE_ADMIN_TOKEN`) may have.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// Whether `token` may be the admin token named `name`: at least
/// [`MIN_ADMIN_TOKEN_CHARS`] characters, none of them surrounding whitespace
/// (a presented token is trimmed, so such a token could never match). A
/// process refuses to start with one that is not.
pub fn check_admin_token(name: &str, token: &str) -> Result<(), String> {
    if token.chars().count() < MIN_ADMIN_TOKEN_CHARS {
        return Err(format!(
            "{name} must be at least {MIN_ADMIN_TOKEN_CHARS} characters ({} given)",
            token.chars().count()
        ));
    }
    if token.trim() != token {
        return Err(format!("{name} must not begin or end with whitespace"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn admin_tokens_are_long_enough() {
        use super::check_admin_token as check;
        assert!(check("ADMIN_TOKEN", "").unwrap_err().contains("at least 16"));
        assert!(check("ADMIN_TOKEN", "fifteen-chars!!").is_err());
        assert!(check("ADMIN_TOKEN", "sixteen-chars!!!").is_ok());
        // Characters, not bytes: 15 two-byte letters are still too short.
        assert!(check("ADMIN_TOKEN", &"é".repeat(15)).is_err());
        assert!(check("ADMIN_TOKEN", " sixteen-chars!!!").unwrap_err().contains("whitespace"));
    }

    #[test]
    fn names_and_secrets() {
        assert_eq!(super::STREAM, format!("KV_{}", super::BUCKET));
        assert!(super::same_secret(b"abc", b"abc"));
        assert!(!super::same_secret(b"abc", b"abd"));
        assert!(!super::same_secret(b"abc", b"abcd"));
    }
}
