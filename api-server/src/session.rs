//! What one client connection has proven: a bearer key the auth-cache
//! accepted, reused by the requests that follow on the same connection for a
//! short time instead of asking again. A flood of requests on a kept-alive
//! connection then costs one verification per [`Session`] lifetime, not one
//! each. Signatures are never reused: each covers its own request.
//!
//! The reuse window bounds how long a revoked key keeps working on a
//! connection that is already open; the auth-cache's own replication lag is
//! of the same order.

use contracts::identity::{Verdict, VerifyRequest};
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Per connection; cloned into each of its requests' extensions. The lock is
/// only contended by pipelined requests of one client.
#[derive(Clone, Default, Debug)]
pub struct Session(Arc<Mutex<Option<Remembered>>>);

#[derive(Debug)]
struct Remembered {
    request: VerifyRequest,
    verdict: Verdict,
    at: Instant,
}

/// Whether a verdict reached at `at` may still stand for the same credential at `now`.
pub fn reusable(request: &VerifyRequest, verdict: &Verdict, at: Instant, now: Instant, ttl: Duration) -> bool {
    matches!(request, VerifyRequest::Bearer { .. })
        && matches!(verdict, Verdict::Allowed { .. })
        && now.saturating_duration_since(at) < ttl
}

impl Session {
    /// The verdict for exactly this credential, if one may be reused.
    pub fn recall(&self, request: &VerifyRequest, ttl: Duration) -> Option<Verdict> {
        let slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let r = slot.as_ref()?;
        (r.request == *request && reusable(&r.request, &r.verdict, r.at, Instant::now(), ttl))
            .then(|| r.verdict.clone())
    }

    /// Keeps an acceptance of a bearer key; anything else is forgotten.
    pub fn remember(&self, request: &VerifyRequest, verdict: &Verdict) {
        let now = Instant::now();
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *slot = reusable(request, verdict, now, now, Duration::MAX).then(|| Remembered {
            request: request.clone(),
            verdict: verdict.clone(),
            at: now,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::identity::{RateLimit, Refusal};

    fn bearer(secret: &str) -> VerifyRequest {
        VerifyRequest::Bearer { key_id: "k1".into(), secret_sha256: contracts::identity::apikey::secret_sha256(secret) }
    }

    fn allowed() -> Verdict {
        Verdict::Allowed {
            tenant: "acme".into(),
            key_id: "k1".into(),
            rate: RateLimit::default(),
            quota_exhausted: None,
            presets: Default::default(),
            cache_control: None,
        }
    }

    #[test]
    fn only_accepted_bearer_keys_are_reused_and_only_within_the_window() {
        let t = Instant::now();
        let ttl = Duration::from_secs(1);
        assert!(reusable(&bearer("s"), &allowed(), t, t + Duration::from_millis(999), ttl));
        assert!(!reusable(&bearer("s"), &allowed(), t, t + ttl, ttl));
        let refused = Verdict::Refused { reason: Refusal::KeyRevoked, detail: String::new() };
        assert!(!reusable(&bearer("s"), &refused, t, t, ttl));
        let signed =
            VerifyRequest::Signature { key_id: "k1".into(), base: "b".into(), signature: "s".into(), alg: None };
        assert!(!reusable(&signed, &allowed(), t, t, ttl));
    }

    #[test]
    fn a_session_recalls_the_same_key_only() {
        let s = Session::default();
        let ttl = Duration::from_secs(60);
        assert_eq!(s.recall(&bearer("s"), ttl), None);
        s.remember(&bearer("s"), &allowed());
        assert_eq!(s.recall(&bearer("s"), ttl), Some(allowed()));
        assert_eq!(s.recall(&bearer("other"), ttl), None, "another secret is verified afresh");
        assert_eq!(s.recall(&bearer("s"), Duration::ZERO), None);
        s.remember(&bearer("s"), &Verdict::Refused { reason: Refusal::KeyRevoked, detail: String::new() });
        assert_eq!(s.recall(&bearer("s"), ttl), None, "a refusal replaces what was remembered");
    }
}
