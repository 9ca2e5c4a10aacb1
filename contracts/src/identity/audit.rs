//! The audit trail of the management plane: one record per write to IDENTITY
//! (who, what, when), in a stream of its own with a retention of its own, so
//! the answer to "who revoked this key" outlives the bucket's short history.

use async_nats::jetstream::stream;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The stream of audit records.
pub const STREAM: &str = "AUDIT";
/// Subject of one record: `audit.identity.<create|update>`.
pub const SUBJECT_PREFIX: &str = "audit.identity";
/// Kept for 400 days: a year of look-back plus slack for a yearly review.
pub const MAX_AGE: Duration = Duration::from_secs(400 * 24 * 3600);

/// One write to IDENTITY.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Milliseconds since the Unix epoch, when the write was acknowledged.
    pub at_ms: u64,
    /// Who wrote: `cli:<user>@<host>` for the CLI, `admin-api` for the HTTP API.
    pub actor: String,
    /// `create` or `update`.
    pub action: String,
    /// The record's bucket key, e.g. `tenant.acme` or `key.k1`.
    pub key: String,
    /// The bucket revision the write produced.
    pub revision: u64,
    /// The record as written (secrets are never in it: API keys are stored as digests).
    pub record: serde_json::Value,
}

impl AuditRecord {
    pub fn subject(&self) -> String {
        format!("{SUBJECT_PREFIX}.{}", self.action)
    }
}

pub fn stream_config(replicas: usize) -> stream::Config {
    stream::Config {
        name: STREAM.to_owned(),
        description: Some("Every write to IDENTITY: who, what, when".to_owned()),
        subjects: vec![format!("{SUBJECT_PREFIX}.>")],
        retention: stream::RetentionPolicy::Limits,
        max_age: MAX_AGE,
        storage: stream::StorageType::File,
        num_replicas: replicas.max(1),
        ..Default::default()
    }
}
