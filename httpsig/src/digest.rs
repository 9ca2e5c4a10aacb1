//! RFC 9530 `Content-Digest`: the body's hash, so a signature over the
//! header covers the body.

use crate::sf::{self, Bare, Item, Member};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256, Sha512};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("Content-Digest is malformed: {0}")]
    Malformed(String),
    #[error("Content-Digest names no supported algorithm (sha-256, sha-512)")]
    NoSupportedAlgorithm,
    #[error("the body does not match its Content-Digest ({0})")]
    Mismatch(&'static str),
}

/// `sha-256=:…:` of `body`.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)))
}

/// Checks every supported algorithm the header names; at least one must be named.
pub fn verify(header: &str, body: &[u8]) -> Result<(), DigestError> {
    let dict = sf::dictionary(header).map_err(|e| DigestError::Malformed(e.to_string()))?;
    let mut checked = 0;
    for (alg, member) in &dict {
        let Member::Item(Item { bare: Bare::Bytes(expected), .. }) = member else {
            return Err(DigestError::Malformed(format!("`{alg}` is not a byte sequence")));
        };
        let (name, actual): (&'static str, Vec<u8>) = match alg.as_str() {
            "sha-256" => ("sha-256", Sha256::digest(body).to_vec()),
            "sha-512" => ("sha-512", Sha512::digest(body).to_vec()),
            _ => continue,
        };
        if *expected != actual {
            return Err(DigestError::Mismatch(name));
        }
        checked += 1;
    }
    if checked == 0 { Err(DigestError::NoSupportedAlgorithm) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"hello": "world"}"#;

    #[test]
    fn rfc_9530_vectors() {
        assert_eq!(content_digest(BODY), "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:");
        verify("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", BODY).unwrap();
        verify(
            "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
            BODY,
        )
        .unwrap();
    }

    #[test]
    fn mismatches_and_garbage() {
        let h = content_digest(BODY);
        assert_eq!(verify(&h, b"{\"hello\": \"World\"}"), Err(DigestError::Mismatch("sha-256")));
        assert_eq!(verify("md5=:AAAA:", BODY), Err(DigestError::NoSupportedAlgorithm));
        assert!(matches!(verify("sha-256=abc", BODY), Err(DigestError::Malformed(_))));
        assert!(matches!(verify("", BODY), Err(DigestError::Malformed(_))));
        let both = format!("{h}, sha-512=:AAAA:");
        assert_eq!(verify(&both, BODY), Err(DigestError::Mismatch("sha-512")));
    }
}
