//! Bearer API keys: `rsz_<key id>_<secret>`. The key id finds the record; the
//! secret is checked against the SHA-256 stored in it.

use sha2::{Digest, Sha256};

pub const PREFIX: &str = "rsz";

/// A bearer token split into its parts (the secret is not checked here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey<'a> {
    pub key_id: &'a str,
    pub secret: &'a str,
}

pub fn parse(token: &str) -> Option<ApiKey<'_>> {
    let rest = token.strip_prefix(PREFIX)?.strip_prefix('_')?;
    let (key_id, secret) = rest.split_once('_')?;
    let ok = |s: &str, max: usize| !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (ok(key_id, 64) && ok(secret, 128)).then_some(ApiKey { key_id, secret })
}

pub fn format(key_id: &str, secret: &str) -> String {
    format!("{PREFIX}_{key_id}_{secret}")
}

pub fn secret_sha256(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_into_id_and_secret() {
        let t = format("abc123", "S3cr3t");
        assert_eq!(parse(&t), Some(ApiKey { key_id: "abc123", secret: "S3cr3t" }));
        for bad in ["", "rsz_", "rsz_a", "rsz_a_", "rsz__b", "xyz_a_b", "rsz_a_b_c", "rsz_a-b_c", "rsz_a_b c"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(secret_sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
