//! The in-memory replica of IDENTITY and the decision on a credential.
//!
//! Key material is parsed once, when its record arrives; each verification
//! still checks the signature against the key as it is now (revocation and
//! tenant state included), so nothing about a verification is reused.

use contracts::identity::{
    Entry, KeyMaterial, KeyRecord, NEGATIVE_TTL, QuotaExhausted, Refusal, TenantRecord, Verdict, VerifyRequest,
};
use contracts::usage::rollup::Counters;
use ed25519_dalek::VerifyingKey;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

struct CachedKey {
    record: KeyRecord,
    ed25519: Option<VerifyingKey>,
}

/// Everything the auth-cache knows.
#[derive(Default)]
pub struct Replica {
    tenants: HashMap<String, TenantRecord>,
    keys: HashMap<String, CachedKey>,
    /// Key ids recently asked for and not found, with when.
    negative: Mutex<HashMap<String, Instant>>,
    /// Rollup counters per tenant per day (`YYYY-MM-DD`), for monthly quotas.
    usage: HashMap<String, BTreeMap<String, Counters>>,
    /// Last IDENTITY revision applied.
    pub revision: u64,
}

/// A change read from the bucket.
pub enum Change<'a> {
    Put(&'a [u8]),
    Delete,
}

impl Replica {
    pub fn tenants(&self) -> usize {
        self.tenants.len()
    }

    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Applies one IDENTITY entry. Returns false for a value it cannot read
    /// (kept out of the replica: an unreadable key verifies nothing).
    pub fn apply(&mut self, kv_key: &str, change: Change<'_>, revision: u64) -> bool {
        self.revision = self.revision.max(revision);
        match (Entry::parse(kv_key), change) {
            (Some(Entry::Tenant(id)), Change::Put(v)) => match serde_json::from_slice::<TenantRecord>(v) {
                Ok(t) if t.id == id => {
                    self.tenants.insert(id, t);
                    true
                }
                _ => false,
            },
            (Some(Entry::Key(id)), Change::Put(v)) => match serde_json::from_slice::<KeyRecord>(v) {
                Ok(k) if k.id == id => {
                    let ed25519 = match &k.material {
                        KeyMaterial::Ed25519 { public_key } => httpsig::signature::public_key(public_key),
                        KeyMaterial::Bearer { .. } => None,
                    };
                    // A key that now exists must not stay "unknown" for the rest of the negative TTL.
                    self.negative.get_mut().unwrap_or_else(|p| p.into_inner()).remove(&id);
                    self.keys.insert(id, CachedKey { record: k, ed25519 });
                    true
                }
                _ => {
                    self.keys.remove(&id);
                    false
                }
            },
            (Some(Entry::Tenant(id)), Change::Delete) => {
                self.tenants.remove(&id);
                true
            }
            (Some(Entry::Key(id)), Change::Delete) => {
                self.keys.remove(&id);
                true
            }
            (None, _) => false,
        }
    }

    /// Applies a usage rollup document (`<tenant>.<day>` in USAGE_ROLLUPS).
    pub fn apply_usage(&mut self, kv_key: &str, day_total: Option<Counters>) {
        let Some((tenant, day)) = kv_key.split_once('.') else { return };
        let days = self.usage.entry(tenant.to_owned()).or_default();
        match day_total {
            Some(c) => {
                days.insert(day.to_owned(), c);
            }
            None => {
                days.remove(day);
            }
        }
    }

    /// Images and input megapixels of `tenant` in the month `month` (`YYYY-MM`).
    pub fn month_usage(&self, tenant: &str, month: &str) -> (u64, u64) {
        let Some(days) = self.usage.get(tenant) else { return (0, 0) };
        days.range(format!("{month}-00")..format!("{month}-99"))
            .fold((0, 0), |(i, p), (_, c)| (i + c.ok, p + c.pixels_in))
    }

    /// Whether `key_id` was recently found unknown (and is still within the TTL).
    pub fn known_unknown(&self, key_id: &str, now: Instant) -> bool {
        let mut negative = self.negative.lock().unwrap_or_else(|p| p.into_inner());
        match negative.get(key_id) {
            Some(at) if now.duration_since(*at) < NEGATIVE_TTL => true,
            Some(_) => {
                negative.remove(key_id);
                false
            }
            None => false,
        }
    }

    fn remember_unknown(&self, key_id: &str, now: Instant) {
        let mut negative = self.negative.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: an attacker cycling random key ids cannot grow it without limit.
        if negative.len() >= 100_000 {
            negative.retain(|_, at| now.duration_since(*at) < NEGATIVE_TTL);
            if negative.len() >= 100_000 {
                negative.clear();
            }
        }
        negative.insert(key_id.to_owned(), now);
    }

    /// The decision for one credential. `month` is the current `YYYY-MM` (UTC).
    pub fn verify(&self, req: &VerifyRequest, month: &str, now: Instant) -> Verdict {
        let key_id = req.key_id();
        let refused = |reason: Refusal, detail: String| Verdict::Refused { reason, detail };
        if self.known_unknown(key_id, now) {
            return refused(Refusal::UnknownKey, format!("no key `{key_id}`"));
        }
        let Some(key) = self.keys.get(key_id) else {
            self.remember_unknown(key_id, now);
            return refused(Refusal::UnknownKey, format!("no key `{key_id}`"));
        };
        if key.record.revoked_ms.is_some() {
            return refused(Refusal::KeyRevoked, format!("key `{key_id}` was revoked"));
        }
        let Some(tenant) = self.tenants.get(&key.record.tenant) else {
            return refused(Refusal::TenantDisabled, format!("the tenant of key `{key_id}` does not exist"));
        };
        if tenant.disabled {
            return refused(Refusal::TenantDisabled, format!("tenant `{}` is disabled", tenant.id));
        }
        let ok = match (req, &key.record.material) {
            (VerifyRequest::Signature { base, signature, alg, .. }, material @ KeyMaterial::Ed25519 { .. }) => {
                if alg.as_deref().is_some_and(|a| a != material.alg()) {
                    return refused(
                        Refusal::BadSignature,
                        format!(
                            "key `{key_id}` is {}, the request says {}",
                            material.alg(),
                            alg.as_deref().unwrap_or("")
                        ),
                    );
                }
                use base64::Engine;
                let sig = base64::engine::general_purpose::STANDARD.decode(signature).unwrap_or_default();
                key.ed25519.as_ref().is_some_and(|k| httpsig::signature::verify_ed25519(k, base, &sig))
            }
            (VerifyRequest::Bearer { secret_sha256, .. }, KeyMaterial::Bearer { secret_sha256: stored }) => {
                contracts::identity::same_secret(secret_sha256.as_bytes(), stored.as_bytes())
            }
            (VerifyRequest::Signature { .. }, KeyMaterial::Bearer { .. }) => {
                return refused(Refusal::BadSignature, format!("key `{key_id}` is an API key, not a signature key"));
            }
            (VerifyRequest::Bearer { .. }, KeyMaterial::Ed25519 { .. }) => {
                return refused(Refusal::BadApiKey, format!("key `{key_id}` is a signature key, not an API key"));
            }
        };
        if !ok {
            return match req {
                VerifyRequest::Signature { .. } => {
                    refused(Refusal::BadSignature, "the signature does not verify with the key".into())
                }
                VerifyRequest::Bearer { .. } => refused(Refusal::BadApiKey, "the API key's secret is wrong".into()),
            };
        }
        let (images, pixels) = self.month_usage(&tenant.id, month);
        let quota_exhausted = if tenant.quota.images.is_some_and(|q| images >= q) {
            Some(QuotaExhausted::Images)
        } else if tenant.quota.megapixels.is_some_and(|q| pixels >= q.saturating_mul(1_000_000)) {
            Some(QuotaExhausted::Megapixels)
        } else {
            None
        };
        Verdict::Allowed {
            tenant: tenant.id.clone(),
            key_id: key_id.to_owned(),
            rate: tenant.rate,
            quota_exhausted,
            presets: tenant.presets.clone(),
            cache_control: tenant.cache_control.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
