//! The verification exchange: an api-server asks (NATS request on
//! [`super::VERIFY_SUBJECT`]), an auth-cache answers from its replica.
//!
//! The api-server does the work that needs the request (parsing the signature
//! headers, building the RFC 9421 signature base, time windows, the body
//! digest); the auth-cache does the work that needs key material (the
//! signature check, revocation, tenant state, quota). Neither caches a
//! verification: each request is checked against the key as it is now.

use super::records::RateLimit;
use crate::ProblemKind;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case")]
pub enum VerifyRequest {
    /// An RFC 9421 signature: the signature base the api-server built and the signature bytes (base64).
    Signature {
        key_id: String,
        base: String,
        signature: String,
        /// The `alg` parameter if the request named one; it must match the key's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alg: Option<String>,
    },
    /// A bearer API key; only the SHA-256 of its secret leaves the api-server.
    Bearer { key_id: String, secret_sha256: String },
}

impl VerifyRequest {
    pub fn key_id(&self) -> &str {
        match self {
            Self::Signature { key_id, .. } | Self::Bearer { key_id, .. } => key_id,
        }
    }
}

/// Which monthly allowance is used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaExhausted {
    Images,
    Megapixels,
}

/// Why a credential was refused; each has its own problem type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    UnknownKey,
    KeyRevoked,
    TenantDisabled,
    /// The signature does not verify, or the request named another algorithm than the key's.
    BadSignature,
    /// The bearer secret is wrong, or a signature key was used as a bearer key (or the reverse).
    BadApiKey,
}

impl Refusal {
    pub fn problem(self) -> ProblemKind {
        match self {
            Self::UnknownKey => ProblemKind::UnknownKey,
            Self::KeyRevoked => ProblemKind::KeyRevoked,
            Self::TenantDisabled => ProblemKind::TenantDisabled,
            Self::BadSignature => ProblemKind::SignatureInvalid,
            Self::BadApiKey => ProblemKind::ApiKeyInvalid,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Allowed {
        tenant: String,
        key_id: String,
        rate: RateLimit,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quota_exhausted: Option<QuotaExhausted>,
        /// The tenant's presets, which its requests may name.
        #[serde(default, skip_serializing_if = "crate::preset::Presets::is_empty")]
        presets: crate::preset::Presets,
        /// The tenant's `Cache-Control` for its images, if it set one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<String>,
    },
    Refused {
        reason: Refusal,
        detail: String,
    },
}

/// Why no verdict came back: the caller fails closed on any of these.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("no auth-cache answered in time")]
    Timeout,
    #[error("{0}")]
    Nats(String),
    #[error("unreadable answer: {0}")]
    Unreadable(String),
}

/// Asks the auth-caches (one queue group on [`super::VERIFY_SUBJECT`]) about
/// `req`; `headers` carry the caller's trace context. When the group's pick
/// is silent for [`super::HEDGE_AFTER`], the same request goes to every
/// auth-cache ([`super::VERIFY_EVERY_SUBJECT`]) and the first answer wins:
/// the group routes to a member the servers still believe alive, which a
/// paused process or node stays for seconds.
pub async fn ask(
    client: &async_nats::Client,
    req: &VerifyRequest,
    headers: async_nats::HeaderMap,
    timeout: Duration,
) -> Result<Verdict, AskError> {
    let payload: bytes::Bytes = serde_json::to_vec(req).expect("requests serialise").into();
    let deadline = tokio::time::Instant::now() + timeout;
    let first = client.request_with_headers(super::VERIFY_SUBJECT, headers.clone(), payload.clone());
    tokio::pin!(first);
    let hedge_at = tokio::time::Instant::now() + super::HEDGE_AFTER.min(timeout);
    let answer = tokio::select! {
        answer = &mut first => answer.map_err(|e| e.to_string()),
        () = tokio::time::sleep_until(hedge_at) => {
            let every = client.request_with_headers(super::VERIFY_EVERY_SUBJECT, headers, payload);
            tokio::pin!(every);
            // An error from one (no responders yet, a closed inbox) leaves the other to answer.
            let either = async {
                tokio::select! {
                    Ok(answer) = &mut first => Ok(answer),
                    Ok(answer) = &mut every => Ok(answer),
                    else => Err("neither the queue group nor any auth-cache answered".to_owned()),
                }
            };
            match tokio::time::timeout_at(deadline, either).await {
                Err(_) => return Err(AskError::Timeout),
                Ok(answer) => answer,
            }
        }
    };
    let msg = answer.map_err(AskError::Nats)?;
    serde_json::from_slice(&msg.payload).map_err(|e| AskError::Unreadable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let req = VerifyRequest::Bearer { key_id: "k".into(), secret_sha256: "00".into() };
        let json = serde_json::to_string(&req).unwrap();
        assert!(json.contains(r#""scheme":"bearer""#), "{json}");
        assert_eq!(serde_json::from_str::<VerifyRequest>(&json).unwrap(), req);
        let v = Verdict::Refused { reason: Refusal::KeyRevoked, detail: "x".into() };
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<Verdict>(&json).unwrap(), v);
        assert_eq!(Refusal::KeyRevoked.problem().status(), 403);
        assert_eq!(Refusal::UnknownKey.problem().status(), 401);
    }
}
