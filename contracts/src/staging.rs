//! Staged inputs: the exchange between a worker and the api-server that holds
//! a request's body.
//!
//! The api-server keeps the body of a request it admitted in memory and
//! publishes a job that says where it is ([`crate::job::StagedInput`]), so
//! JetStream stores and replicates a few hundred bytes per job instead of the
//! image. The worker that takes the job talks to that api-server's peer
//! listener directly:
//!
//! - `GET /v1/staged/{request_id}` with `Authorization: Bearer {token}`: the
//!   body, `200` with exactly `size` bytes. `404` when the request has ended
//!   (answered, timed out, or the client went away): nobody waits for it, and
//!   the worker drops the job (usage says [`crate::ProblemKind::ClientGone`]).
//! - `POST /v1/staged/{request_id}/result` with the same token, the answer's
//!   fields ([`crate::outcome::OutcomeHeaders::fields`]) as headers and the
//!   image as body: `204` when the request took the answer, `404` when it no
//!   longer waits.
//!
//! A wrong token is answered exactly like an unknown request (`404`), so the
//! listener tells a stranger nothing about which requests exist.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Default limit of a request body: phone and camera JPEGs of 10–30 MB fit.
pub const DEFAULT_MAX_INPUT_BYTES: usize = 32 << 20;
/// Highest limit a fleet may configure for a request body.
pub const MAX_INPUT_BYTES: usize = 64 << 20;

/// Largest answer an api-server takes from a worker; a worker's own output
/// limit (`MAX_OUTPUT_BYTES`) is at most this.
pub const MAX_RESULT_BYTES: usize = 64 << 20;

/// Path prefix of staged bodies on the peer listener.
pub const PATH_PREFIX: &str = "/v1/staged/";

/// Where the body of `request_id` is fetched, below the listener's base URL.
pub fn body_path(request_id: &str) -> String {
    format!("{PATH_PREFIX}{request_id}")
}

/// Where the answer to `request_id` is posted, relative to [`body_path`].
pub fn result_url(body_url: &str) -> String {
    format!("{body_url}/result")
}

/// The `Authorization` header value that shows `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Whether an `Authorization` header value shows `token` (compared in constant time).
pub fn shows(authorization: Option<&str>, token: &str) -> bool {
    authorization.and_then(|a| a.strip_prefix("Bearer ")).is_some_and(|t| t.as_bytes().ct_eq(token.as_bytes()).into())
}

/// SHA-256 of `bytes` as lowercase hex, the form [`crate::job::StagedInput::sha256`] carries.
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_shown() {
        let token = "0123456789abcdef0123456789abcdef";
        assert!(shows(Some(&bearer(token)), token));
        assert!(!shows(Some(token), token), "the scheme is required");
        assert!(!shows(Some("Bearer 0123456789abcdef0123456789abcdee"), token));
        assert!(!shows(Some("Bearer 0123"), token), "a prefix is not the token");
        assert!(!shows(None, token));
    }

    #[test]
    fn digests_and_paths() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(to_hex(&[0, 0xab, 0x0f]), "00ab0f");
        let url = format!("http://10.0.0.1:8081{}", body_path("r1"));
        assert_eq!(result_url(&url), "http://10.0.0.1:8081/v1/staged/r1/result");
    }
}
