//! The client side: credentials a caller holds, and what they add to a request.

use base64::{Engine, engine::general_purpose::STANDARD};
use ed25519_dalek::SigningKey;
use http::{HeaderValue, Request, header};
use httpsig::{digest, signature};

/// How a client authenticates.
// A client holds one of these for its lifetime; boxing the key would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Credentials {
    /// RFC 9421 signatures with an Ed25519 key registered under `key_id`.
    Signature { key_id: String, key: SigningKey },
    /// A bearer API key (`rsz_<id>_<secret>`).
    ApiKey(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Signature { key_id, .. } => write!(f, "Signature({key_id})"),
            Self::ApiKey(_) => write!(f, "ApiKey(…)"),
        }
    }
}

/// Adds `Content-Digest` and the signature headers (or `Authorization`) to
/// `req`, whose body is `body`. The request must carry its full URI
/// (scheme and authority) or a `Host` header, and a `Content-Type`.
pub fn authorize<B>(
    req: &mut Request<B>,
    body: &[u8],
    creds: &Credentials,
    now_s: i64,
) -> Result<(), signature::SigError> {
    match creds {
        Credentials::ApiKey(token) => {
            let v = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| signature::SigError::Malformed("the API key is not a valid header value".into()))?;
            req.headers_mut().insert(header::AUTHORIZATION, v);
        }
        Credentials::Signature { key_id, key } => {
            let d = HeaderValue::from_str(&digest::content_digest(body)).expect("base64 is a valid header value");
            req.headers_mut().insert("content-digest", d);
            let h = signature::sign(key, key_id, "sig1", &signature::REQUIRED, now_s, Some(now_s + 60), req)?;
            let input = HeaderValue::from_str(&h.signature_input)
                .map_err(|_| signature::SigError::Malformed("the key id is not a valid header value".into()))?;
            req.headers_mut().insert("signature-input", input);
            req.headers_mut().insert("signature", HeaderValue::from_str(&h.signature).expect("base64"));
        }
    }
    Ok(())
}

/// A new Ed25519 key from the OS generator.
pub fn generate_key() -> SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the OS random generator is available");
    SigningKey::from_bytes(&seed)
}

/// Private key files hold the 32-byte seed in base64 on one line.
pub fn encode_private(key: &SigningKey) -> String {
    STANDARD.encode(key.to_bytes())
}

pub fn decode_private(text: &str) -> Option<SigningKey> {
    let seed: [u8; 32] = STANDARD.decode(text.trim()).ok()?.try_into().ok()?;
    Some(SigningKey::from_bytes(&seed))
}

pub fn encode_public(key: &SigningKey) -> String {
    STANDARD.encode(key.verifying_key().to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_request_meets_the_profile_and_verifies() {
        let key = generate_key();
        let creds = Credentials::Signature { key_id: "k1".into(), key: key.clone() };
        let body = b"image bytes";
        let mut req = Request::post("http://127.0.0.1:8080/v1/resize?w=10")
            .header("content-type", "image/jpeg")
            .body(())
            .unwrap();
        authorize(&mut req, body, &creds, 1_000).unwrap();
        let signed = signature::Signed::from_message(&req).unwrap().unwrap();
        signed.check_profile(1_000).unwrap();
        let base = signed.base(&req).unwrap();
        assert!(signature::verify_ed25519(&key.verifying_key(), &base, &signed.signature));
        digest::verify(req.headers()["content-digest"].to_str().unwrap(), body).unwrap();
        assert_eq!(decode_private(&encode_private(&key)).unwrap().to_bytes(), key.to_bytes());
    }
}
