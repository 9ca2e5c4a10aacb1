//! Tenant and key records as stored in the IDENTITY bucket (JSON values).
//!
//! Keys in the bucket: `tenant.<id>` and `key.<key id>`. Ids are the same
//! restricted alphabet as usage ids, so they are safe in subjects, KV keys and
//! object names.

use crate::usage::record::valid_id;
use serde::{Deserialize, Serialize};

pub const RECORD_VERSION: u32 = 1;

/// Per-tenant request rate (GCRA: a sustained rate and a burst).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self { per_second: 100, burst: 200 }
    }
}

/// Monthly allowance (calendar month, UTC); `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Images processed (2xx answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<u64>,
    /// Input megapixels processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub megapixels: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub v: u32,
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub rate: RateLimit,
    #[serde(default)]
    pub quota: Quota,
    /// Named operations and whether requests must use one.
    #[serde(default, skip_serializing_if = "crate::preset::Presets::is_empty")]
    pub presets: crate::preset::Presets,
    /// `Cache-Control` of the tenant's images (checked by [`super::cache_control::check`]);
    /// `None`: [`super::cache_control::DEFAULT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// What verifies a key. The algorithm is part of the record, so a request can
/// never choose it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "alg")]
pub enum KeyMaterial {
    /// RFC 9421 `ed25519`: the raw 32-byte public key, base64.
    #[serde(rename = "ed25519")]
    Ed25519 { public_key: String },
    /// A bearer API key: SHA-256 of its secret, hex. The secret itself is shown once and never stored.
    #[serde(rename = "bearer-sha256")]
    Bearer { secret_sha256: String },
}

impl KeyMaterial {
    /// The RFC 9421 algorithm name, for signature keys.
    pub fn alg(&self) -> &'static str {
        match self {
            Self::Ed25519 { .. } => "ed25519",
            Self::Bearer { .. } => "bearer-sha256",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub v: u32,
    pub id: String,
    pub tenant: String,
    #[serde(flatten)]
    pub material: KeyMaterial,
    pub created_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<u64>,
}

/// What a bucket key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Tenant(String),
    Key(String),
}

impl Entry {
    pub fn kv_key(&self) -> String {
        match self {
            Self::Tenant(id) => format!("tenant.{id}"),
            Self::Key(id) => format!("key.{id}"),
        }
    }

    pub fn parse(kv_key: &str) -> Option<Self> {
        let (kind, id) = kv_key.split_once('.')?;
        if !valid_id(id) {
            return None;
        }
        match kind {
            "tenant" => Some(Self::Tenant(id.to_owned())),
            "key" => Some(Self::Key(id.to_owned())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_keys_round_trip_and_reject_foreign_ones() {
        for e in [Entry::Tenant("acme".into()), Entry::Key("k_1-2".into())] {
            assert_eq!(Entry::parse(&e.kv_key()), Some(e));
        }
        assert_eq!(Entry::parse("tenant.a.b"), None);
        assert_eq!(Entry::parse("other.x"), None);
        assert_eq!(Entry::parse("tenant"), None);
    }

    #[test]
    fn key_records_carry_their_algorithm() {
        let k = KeyRecord {
            v: RECORD_VERSION,
            id: "k1".into(),
            tenant: "acme".into(),
            material: KeyMaterial::Ed25519 { public_key: "AAAA".into() },
            created_ms: 1,
            revoked_ms: None,
        };
        let json = serde_json::to_value(&k).unwrap();
        assert_eq!(json["alg"], "ed25519");
        assert_eq!(serde_json::from_value::<KeyRecord>(json).unwrap(), k);
        let t: TenantRecord = serde_json::from_str(r#"{"v":1,"id":"acme","created_ms":1,"updated_ms":1}"#).unwrap();
        assert_eq!(t.rate, RateLimit::default());
        assert!(!t.disabled);
    }
}
