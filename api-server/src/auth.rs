//! Authentication at the edge: who is calling, before the body is read.
//!
//! The api-server checks what needs the request (signature headers, the
//! time window, the signature base, later the body's digest) and asks an
//! auth-cache to check what needs key material. No answer from any
//! auth-cache means 503: a request is never let through unauthenticated.

use crate::problem::Problem;
use contracts::clock::FleetClock;
use contracts::{
    ProblemKind,
    identity::{self, QuotaExhausted, Verdict, VerifyRequest, apikey},
};
use http::request::Parts;
use httpsig::{
    digest,
    signature::{self, SigError, Signed},
};
use std::time::Duration;

pub use contracts::identity::AuthMode;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: String,
    pub key_id: String,
    pub rate: identity::RateLimit,
    pub quota_exhausted: Option<QuotaExhausted>,
    /// The tenant's named operations (`preset=<name>`).
    pub presets: contracts::preset::Presets,
    /// `Cache-Control` of the tenant's images, if it set one.
    pub cache_control: Option<String>,
    /// The body must match this `Content-Digest` (signed requests).
    pub digest: Option<String>,
}

impl Caller {
    pub fn anonymous() -> Self {
        Self {
            tenant: contracts::job::ANONYMOUS_TENANT.to_owned(),
            key_id: String::new(),
            rate: identity::RateLimit::default(),
            quota_exhausted: None,
            presets: Default::default(),
            cache_control: None,
            digest: None,
        }
    }

    /// Checks the body against the signed `Content-Digest`.
    pub fn check_body(&self, body: &[u8]) -> Result<(), Problem> {
        match &self.digest {
            None => Ok(()),
            Some(header) => digest::verify(header, body).map_err(|e| match e {
                digest::DigestError::Mismatch(_) => Problem::new(ProblemKind::DigestMismatch, e.to_string()),
                _ => Problem::new(ProblemKind::SignatureMalformed, e.to_string()),
            }),
        }
    }
}

/// The problem type of a signature the api-server refuses by itself.
fn refused(e: SigError) -> Problem {
    let kind = match e {
        SigError::Malformed(_) => ProblemKind::SignatureMalformed,
        SigError::Incomplete(_) => ProblemKind::SignatureIncomplete,
        SigError::Expired(_) => ProblemKind::SignatureExpired,
        SigError::NotYetValid(_) => ProblemKind::SignatureNotYetValid,
        SigError::TooLarge(_) => ProblemKind::HeaderTooLarge,
    };
    Problem::new(kind, e.to_string())
}

/// What the request says about itself, checked as far as possible without
/// key material; a signature's time window by `clock`.
pub fn credential(parts: &Parts, clock: &FleetClock) -> Result<(VerifyRequest, Option<String>), Problem> {
    let signed = Signed::from_message(parts).map_err(refused)?;
    if let Some(signed) = signed {
        signed.check_profile(clock.now_s()).map_err(|e| match e {
            // Say when the window was judged, and by which clock: either side's may be off.
            SigError::Expired(_) | SigError::NotYetValid(_) => {
                let p = refused(e);
                let detail = format!("{}; {}", p.detail, clock.explain());
                Problem { detail, ..p }
            }
            e => refused(e),
        })?;
        let base = signed.base(parts).map_err(refused)?;
        let digest = parts.headers.get("content-digest").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let digest =
            digest.ok_or_else(|| Problem::new(ProblemKind::SignatureMalformed, "Content-Digest is not valid ASCII"))?;
        use base64::Engine;
        let req = VerifyRequest::Signature {
            key_id: signed.key_id,
            base,
            signature: base64::engine::general_purpose::STANDARD.encode(&signed.signature),
            alg: signed.alg,
        };
        return Ok((req, Some(digest)));
    }
    let mut auth = parts.headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (auth.next(), auth.next()) else {
        return Err(Problem::new(
            ProblemKind::Unauthorized,
            "sign the request (RFC 9421 Signature-Input and Signature) or send `Authorization: Bearer <API key>`",
        ));
    };
    if value.len() > signature::MAX_HEADER_BYTES {
        return Err(Problem::new(ProblemKind::HeaderTooLarge, "Authorization is too large"));
    }
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| Problem::new(ProblemKind::Unauthorized, "the Authorization scheme must be Bearer"))?;
    let key = apikey::parse(token.trim())
        .ok_or_else(|| Problem::new(ProblemKind::ApiKeyInvalid, "the API key is not of the form rsz_<id>_<secret>"))?;
    Ok((
        VerifyRequest::Bearer { key_id: key.key_id.to_owned(), secret_sha256: apikey::secret_sha256(key.secret) },
        None,
    ))
}

/// Asks the auth-caches about a credential.
#[derive(Clone)]
pub struct Verifier {
    client: async_nats::Client,
    timeout: Duration,
}

impl Verifier {
    pub fn new(client: async_nats::Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }

    pub async fn verify(&self, req: &VerifyRequest, request_id: &str) -> Result<Verdict, Problem> {
        // The auth-cache's span joins the request's trace, and its log lines name the request.
        let span = tracing::info_span!("auth_verify", otel.kind = "client", key_id = %req.key_id());
        let mut headers = async_nats::HeaderMap::new();
        if let Some(tp) = telemetry::trace::traceparent(&span) {
            headers.insert(contracts::job::H_TRACEPARENT, tp.as_str());
        }
        headers.insert(telemetry::REQUEST_ID_HEADER, request_id);
        let answer = identity::ask(&self.client, req, headers, self.timeout);
        tracing::Instrument::instrument(answer, span).await.map_err(|e| {
            Problem::new(ProblemKind::AuthUnavailable, format!("the request could not be authenticated: {e}"))
        })
    }
}

/// Seconds until the first day of next month (UTC): when a monthly quota resets.
pub fn until_next_month(now_ms: u64) -> u64 {
    use contracts::usage::calendar::{civil_from_days, days_from_civil};
    let (y, m, _) = civil_from_days((now_ms / contracts::usage::rollup::MS_PER_DAY) as i64);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let next = days_from_civil(ny, nm, 1) as u64 * contracts::usage::rollup::MS_PER_DAY;
    next.saturating_sub(now_ms).div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(req: http::Request<()>) -> Parts {
        req.into_parts().0
    }

    #[test]
    fn credentials_are_read_or_refused_with_their_kind() {
        let clock = FleetClock::default();
        let none = parts(http::Request::post("/v1/resize").body(()).unwrap());
        assert_eq!(credential(&none, &clock).unwrap_err().kind, ProblemKind::Unauthorized);
        let basic = parts(http::Request::post("/").header("authorization", "Basic eDp5").body(()).unwrap());
        assert_eq!(credential(&basic, &clock).unwrap_err().kind, ProblemKind::Unauthorized);
        let bad = parts(http::Request::post("/").header("authorization", "Bearer nope").body(()).unwrap());
        assert_eq!(credential(&bad, &clock).unwrap_err().kind, ProblemKind::ApiKeyInvalid);
        let good = parts(http::Request::post("/").header("authorization", "Bearer rsz_abc_def").body(()).unwrap());
        let (req, digest) = credential(&good, &clock).unwrap();
        assert_eq!(req, VerifyRequest::Bearer { key_id: "abc".into(), secret_sha256: apikey::secret_sha256("def") });
        assert_eq!(digest, None);
        let twice = parts(
            http::Request::post("/")
                .header("authorization", "Bearer rsz_abc_def")
                .header("authorization", "Bearer rsz_abc_def")
                .body(())
                .unwrap(),
        );
        assert_eq!(credential(&twice, &clock).unwrap_err().kind, ProblemKind::Unauthorized);
        let stale = parts(
            http::Request::post("/")
                .header("signature-input", r#"s=("@method");created=1;keyid="k""#)
                .header("signature", "s=:AAAA:")
                .body(())
                .unwrap(),
        );
        assert_eq!(credential(&stale, &clock).unwrap_err().kind, ProblemKind::SignatureIncomplete);
        let big = parts(
            http::Request::post("/")
                .header("signature-input", "s=()")
                .header("signature", format!("s=:{}:", "A".repeat(signature::MAX_HEADER_BYTES)))
                .body(())
                .unwrap(),
        );
        assert_eq!(credential(&big, &clock).unwrap_err().kind, ProblemKind::HeaderTooLarge);
    }

    /// A request signed at `created` (expiring a minute later) by a real key.
    fn signed_at(created: i64) -> Parts {
        let body = b"an image";
        let mut req = http::Request::post("http://api.example/v1/resize?w=64")
            .header("content-type", "image/jpeg")
            .header("content-digest", digest::content_digest(body))
            .body(())
            .unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let h = signature::sign(&key, "k1", "sig1", &signature::REQUIRED, created, Some(created + 60), &req).unwrap();
        req.headers_mut().insert("signature-input", h.signature_input.parse().unwrap());
        req.headers_mut().insert("signature", h.signature.parse().unwrap());
        parts(req)
    }

    #[test]
    fn a_signature_is_judged_by_the_fleets_clock_not_a_skewed_own_one() {
        let own = signature::now_s();
        for skew_s in [600, -600] {
            // This server's clock is `skew_s` off: the signer's (and the fleet's) time is own - skew.
            let signer_now = own - skew_s;
            let clock = FleetClock::default();
            let refused = credential(&signed_at(signer_now), &clock).unwrap_err();
            let expected = if skew_s > 0 { ProblemKind::SignatureExpired } else { ProblemKind::SignatureNotYetValid };
            assert_eq!(refused.kind, expected, "by its own clock, {skew_s} s off: {}", refused.detail);
            assert!(refused.detail.contains("judged at"), "{}", refused.detail);
            clock.set_offset(-skew_s * 1000);
            let (req, digest) = credential(&signed_at(signer_now), &clock).expect("within the window by fleet time");
            assert!(matches!(req, VerifyRequest::Signature { .. }));
            assert!(digest.is_some());
            // A signature really outside its window is still refused, and the detail says by which clock.
            let stale = credential(&signed_at(signer_now - 900), &clock).unwrap_err();
            assert_eq!(stale.kind, ProblemKind::SignatureExpired);
            let way = if skew_s > 0 { "600 s ahead" } else { "600 s behind" };
            assert!(stale.detail.contains(way), "{skew_s}: {}", stale.detail);
        }
    }

    #[test]
    fn quotas_reset_at_the_start_of_the_month() {
        let day = contracts::usage::rollup::MS_PER_DAY;
        let nov_30_end = contracts::usage::calendar::days_from_civil(2026, 12, 1) as u64 * day - 1000;
        assert_eq!(until_next_month(nov_30_end), 1);
        let dec_31 = contracts::usage::calendar::days_from_civil(2026, 12, 31) as u64 * day;
        assert_eq!(until_next_month(dec_31), 86_400);
    }
}
