//! The management plane's writes to IDENTITY. Every change reads a record
//! with its revision and writes it back only if nobody wrote in between
//! (compare-and-set); on a conflict it reads again and reapplies the change,
//! so concurrent admins never lose an update.

use async_nats::jetstream::{self, kv};
use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use contracts::identity::{
    self, Entry, KeyMaterial, KeyRecord, Quota, RateLimit, TenantRecord, apikey, audit, records::RECORD_VERSION,
};
use contracts::preset::{self, Presets};
use contracts::usage::record::valid_id;
use futures::TryStreamExt;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("tenant `{0}` does not exist")]
    NoTenant(String),
    #[error("key `{0}` does not exist")]
    NoKey(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("`{0}` is not a valid id (1-64 of A-Z a-z 0-9 _ -)")]
    BadId(String),
    #[error("{0}")]
    BadInput(String),
    #[error("gave up after {0} conflicting concurrent writes")]
    Contended(usize),
    #[error("identity store: {0}")]
    Nats(String),
}

fn nats(e: impl std::fmt::Display) -> StoreError {
    StoreError::Nats(e.to_string())
}

pub fn now_ms() -> u64 {
    contracts::job::unix_ms(std::time::SystemTime::now())
}

/// What an admin changes on a tenant: each field given is set, the others kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantChange {
    pub disabled: Option<bool>,
    pub rate: Option<RateLimit>,
    pub quota: Option<Quota>,
    /// Whether requests must name a preset and add nothing to it.
    pub presets_only: Option<bool>,
    /// `Cache-Control` of the tenant's images; `Some(None)` returns to the default.
    pub cache_control: Option<Option<String>>,
}

/// Handle on the IDENTITY bucket for the admin CLI and API.
#[derive(Clone)]
pub struct Store {
    kv: kv::Store,
    js: jetstream::Context,
    /// Who the audit records name as the writer (see [`Store::with_actor`]).
    actor: String,
}

const MAX_ATTEMPTS: usize = 32;

/// How long each step of [`Store::open`] waits out a young cluster.
const OPEN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Retries `step` until it succeeds or [`OPEN_DEADLINE`] has passed. A cluster
/// that has just formed can take longer than one JetStream request's timeout to
/// place a replicated stream (the create may even succeed after its answer
/// timed out), and a replicated bucket that was just created answers "no
/// responders" until its replicas have elected a leader; an admin's first
/// command must wait that out, not fail on it.
async fn within_deadline<T, F, Fut>(what: &str, mut step: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let deadline = tokio::time::Instant::now() + OPEN_DEADLINE;
    loop {
        match step().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(StoreError::Nats(format!("{what} after {OPEN_DEADLINE:?}: {e}")));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}

impl Store {
    /// Opens the bucket, creating it with `replicas` if it does not exist.
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<Self, StoreError> {
        let kv = within_deadline("bucket not created", || async {
            match js.get_key_value(identity::BUCKET).await {
                Ok(kv) => Ok(kv),
                Err(_) => js.create_key_value(identity::bucket(replicas)).await.map_err(nats),
            }
        })
        .await?;
        within_deadline("audit stream not created", || async {
            js.get_or_create_stream(audit::stream_config(replicas)).await.map_err(nats)
        })
        .await?;
        within_deadline("bucket not readable", || async {
            kv.entry(Entry::Tenant("readiness-probe".to_owned()).kv_key()).await.map_err(nats)
        })
        .await?;
        Ok(Self { kv, js: js.clone(), actor: "resizer-admin".to_owned() })
    }

    /// Names the writer in every audit record this handle leaves.
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    /// Records one acknowledged write in AUDIT. The write has happened when this
    /// runs: a failure here is reported to the admin, who must not take silence
    /// for a recorded change.
    async fn audit<T: serde::Serialize>(
        &self,
        action: &str,
        entry: &Entry,
        revision: u64,
        value: &T,
    ) -> Result<(), StoreError> {
        let record = audit::AuditRecord {
            at_ms: now_ms(),
            actor: self.actor.clone(),
            action: action.to_owned(),
            key: entry.kv_key(),
            revision,
            record: serde_json::to_value(value).expect("records serialise"),
        };
        let payload = Bytes::from(serde_json::to_vec(&record).expect("audit records serialise"));
        let ack = self.js.publish(record.subject(), payload).await.map_err(nats)?;
        ack.await.map_err(|e| StoreError::Nats(format!("audit record of {} not stored: {e}", record.key)))?;
        Ok(())
    }

    /// The bucket's latest revision (every write raises it): a replica that has
    /// applied it has seen every write made so far.
    pub async fn revision(&self) -> Result<u64, StoreError> {
        let stream = self.js.get_stream(identity::STREAM).await.map_err(nats)?;
        Ok(stream.cached_info().state.last_sequence)
    }

    pub fn kv(&self) -> &kv::Store {
        &self.kv
    }

    async fn read<T: DeserializeOwned>(&self, entry: &Entry) -> Result<Option<(T, u64)>, StoreError> {
        match self.kv.entry(entry.kv_key()).await.map_err(nats)? {
            Some(e) if e.operation == kv::Operation::Put => {
                let v = serde_json::from_slice(&e.value)
                    .map_err(|err| StoreError::Nats(format!("stored record: {err}")))?;
                Ok(Some((v, e.revision)))
            }
            _ => Ok(None),
        }
    }

    async fn create<T: serde::Serialize>(&self, entry: &Entry, value: &T, what: String) -> Result<(), StoreError> {
        let bytes = Bytes::from(serde_json::to_vec(value).expect("records serialise"));
        match self.kv.create(entry.kv_key(), bytes).await {
            Ok(revision) => self.audit("create", entry, revision, value).await,
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Err(StoreError::Exists(what)),
            Err(e) => Err(nats(e)),
        }
    }

    /// Reads, changes and compare-and-sets, again on conflict.
    async fn update<T>(
        &self,
        entry: &Entry,
        missing: impl Fn() -> StoreError,
        change: impl Fn(&mut T),
    ) -> Result<T, StoreError>
    where
        T: DeserializeOwned + serde::Serialize,
    {
        for _ in 0..MAX_ATTEMPTS {
            let (mut value, revision) = self.read::<T>(entry).await?.ok_or_else(&missing)?;
            change(&mut value);
            let bytes = Bytes::from(serde_json::to_vec(&value).expect("records serialise"));
            match self.kv.update(entry.kv_key(), bytes, revision).await {
                Ok(new_revision) => {
                    self.audit("update", entry, new_revision, &value).await?;
                    return Ok(value);
                }
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(nats(e)),
            }
        }
        Err(StoreError::Contended(MAX_ATTEMPTS))
    }

    pub async fn create_tenant(
        &self,
        id: &str,
        name: &str,
        rate: RateLimit,
        quota: Quota,
    ) -> Result<TenantRecord, StoreError> {
        check_id(id)?;
        check_rate(rate)?;
        let now = now_ms();
        let t = TenantRecord {
            v: RECORD_VERSION,
            id: id.to_owned(),
            name: name.to_owned(),
            disabled: false,
            rate,
            quota,
            presets: Default::default(),
            cache_control: None,
            created_ms: now,
            updated_ms: now,
        };
        self.create(&Entry::Tenant(id.to_owned()), &t, format!("tenant `{id}`")).await?;
        Ok(t)
    }

    pub async fn tenant(&self, id: &str) -> Result<TenantRecord, StoreError> {
        check_id(id)?;
        Ok(self.read(&Entry::Tenant(id.to_owned())).await?.ok_or_else(|| StoreError::NoTenant(id.to_owned()))?.0)
    }

    pub async fn update_tenant(
        &self,
        id: &str,
        change: impl Fn(&mut TenantRecord),
    ) -> Result<TenantRecord, StoreError> {
        check_id(id)?;
        self.update(
            &Entry::Tenant(id.to_owned()),
            || StoreError::NoTenant(id.to_owned()),
            |t: &mut TenantRecord| {
                change(t);
                t.updated_ms = now_ms().max(t.updated_ms);
            },
        )
        .await
    }

    /// Applies every field `change` names in one compare-and-set write, so
    /// one admin action is one write and one audit record. A change naming
    /// nothing writes nothing and returns the tenant as it is.
    pub async fn change_tenant(&self, id: &str, change: TenantChange) -> Result<TenantRecord, StoreError> {
        if let Some(r) = change.rate {
            check_rate(r)?;
        }
        let cache_control = match &change.cache_control {
            Some(Some(v)) => Some(Some(
                contracts::identity::cache_control::check(v)
                    .map_err(|e| StoreError::BadInput(format!("Cache-Control: {e}")))?,
            )),
            other => other.clone(),
        };
        if change == TenantChange::default() {
            return self.tenant(id).await;
        }
        self.update_tenant(id, |t| {
            if let Some(d) = change.disabled {
                t.disabled = d;
            }
            if let Some(r) = change.rate {
                t.rate = r;
            }
            if let Some(q) = change.quota {
                t.quota = q;
            }
            if let Some(only) = change.presets_only {
                t.presets.only = only;
            }
            if let Some(c) = &cache_control {
                t.cache_control.clone_from(c);
            }
        })
        .await
    }

    /// Stores a named operation of a tenant (`query` in the form of
    /// `/v1/resize`'s query string), or removes it with `None`. An invalid
    /// operation is refused here, never when a request names it.
    pub async fn set_preset(&self, id: &str, name: &str, query: Option<&str>) -> Result<TenantRecord, StoreError> {
        let canonical = query
            .map(|q| Presets::check(name, q).map_err(|e| StoreError::BadInput(format!("preset `{name}`: {e}"))))
            .transpose()?;
        let current = self.tenant(id).await?;
        let known = current.presets.named.contains_key(name);
        if canonical.is_none() && !known {
            return Err(StoreError::BadInput(format!("tenant `{id}` has no preset `{name}`")));
        }
        if canonical.is_some() && !known && current.presets.named.len() >= preset::MAX_PRESETS {
            return Err(StoreError::BadInput(format!(
                "tenant `{id}` has {} presets, the most allowed",
                preset::MAX_PRESETS
            )));
        }
        self.update_tenant(id, |t| match &canonical {
            Some(c) => {
                t.presets.named.insert(name.to_owned(), c.clone());
            }
            None => {
                t.presets.named.remove(name);
            }
        })
        .await
    }

    pub async fn set_disabled(&self, id: &str, disabled: bool) -> Result<TenantRecord, StoreError> {
        self.change_tenant(id, TenantChange { disabled: Some(disabled), ..Default::default() }).await
    }

    pub async fn set_limits(
        &self,
        id: &str,
        rate: Option<RateLimit>,
        quota: Option<Quota>,
    ) -> Result<TenantRecord, StoreError> {
        self.change_tenant(id, TenantChange { rate, quota, ..Default::default() }).await
    }

    async fn all<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<T>, StoreError> {
        let keys: Vec<String> = match self.kv.keys().await {
            Ok(k) => k.try_collect().await.map_err(nats)?,
            Err(e) => return Err(nats(e)),
        };
        let mut out = Vec::new();
        for k in keys.iter().filter(|k| k.starts_with(prefix)) {
            if let Some(entry) = Entry::parse(k)
                && let Some((v, _)) = self.read(&entry).await?
            {
                out.push(v);
            }
        }
        Ok(out)
    }

    pub async fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let mut t: Vec<TenantRecord> = self.all("tenant.").await?;
        t.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(t)
    }

    pub async fn keys(&self, tenant: &str) -> Result<Vec<KeyRecord>, StoreError> {
        self.tenant(tenant).await?;
        let mut k: Vec<KeyRecord> = self.all("key.").await?;
        k.retain(|k| k.tenant == tenant);
        k.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(k)
    }

    async fn add_key(&self, tenant: &str, key_id: &str, material: KeyMaterial) -> Result<KeyRecord, StoreError> {
        check_id(key_id)?;
        self.tenant(tenant).await?;
        let k = KeyRecord {
            v: RECORD_VERSION,
            id: key_id.to_owned(),
            tenant: tenant.to_owned(),
            material,
            created_ms: now_ms(),
            revoked_ms: None,
        };
        self.create(&Entry::Key(key_id.to_owned()), &k, format!("key `{key_id}`")).await?;
        Ok(k)
    }

    /// Registers an Ed25519 public key (raw 32 bytes, base64) under `key_id` (generated if `None`).
    pub async fn add_ed25519(
        &self,
        tenant: &str,
        key_id: Option<&str>,
        public_key: &str,
    ) -> Result<KeyRecord, StoreError> {
        if httpsig::signature::public_key(public_key).is_none() {
            return Err(StoreError::BadInput("public_key must be a base64 Ed25519 public key (32 bytes)".into()));
        }
        let id = key_id.map_or_else(|| random_token(16), str::to_owned);
        let public_key = STANDARD.encode(STANDARD.decode(public_key.trim()).expect("checked above"));
        self.add_key(tenant, &id, KeyMaterial::Ed25519 { public_key }).await
    }

    /// Issues a bearer API key; the token is returned here and nowhere else.
    pub async fn issue_api_key(&self, tenant: &str) -> Result<(KeyRecord, String), StoreError> {
        let (id, secret) = (random_token(16), random_token(32));
        let record =
            self.add_key(tenant, &id, KeyMaterial::Bearer { secret_sha256: apikey::secret_sha256(&secret) }).await?;
        Ok((record, apikey::format(&id, &secret)))
    }

    pub async fn revoke_key(&self, key_id: &str) -> Result<KeyRecord, StoreError> {
        check_id(key_id)?;
        let now = now_ms();
        self.update(
            &Entry::Key(key_id.to_owned()),
            || StoreError::NoKey(key_id.to_owned()),
            |k: &mut KeyRecord| {
                k.revoked_ms.get_or_insert(now);
            },
        )
        .await
    }
}

fn check_id(id: &str) -> Result<(), StoreError> {
    if valid_id(id) { Ok(()) } else { Err(StoreError::BadId(id.to_owned())) }
}

fn check_rate(r: RateLimit) -> Result<(), StoreError> {
    if r.per_second == 0 || r.burst == 0 {
        return Err(StoreError::BadInput("rate limit and burst must be at least 1".into()));
    }
    Ok(())
}

/// `len` random characters from [A-Za-z0-9], from the OS generator.
pub fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).expect("the OS random generator is available");
        // Rejection sampling keeps the characters uniform (248 = 4 × 62).
        out.extend(
            buf.iter().filter(|&&b| b < 248).map(|&b| ALPHABET[(b % 62) as usize] as char).take(len - out.len()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{OPEN_DEADLINE, StoreError, within_deadline};

    #[tokio::test(start_paused = true)]
    async fn opening_waits_out_a_young_cluster_then_gives_up_naming_the_step() {
        let mut tries = 0;
        let ok = within_deadline("bucket not created", || {
            tries += 1;
            let this = tries;
            async move { if this < 3 { Err(StoreError::Nats("timed out".into())) } else { Ok(this) } }
        })
        .await;
        assert_eq!(ok.unwrap(), 3, "two timeouts are waited out");
        let started = tokio::time::Instant::now();
        let failed: Result<(), _> =
            within_deadline("audit stream not created", || async { Err(StoreError::Nats("timed out".into())) }).await;
        let message = failed.unwrap_err().to_string();
        assert!(message.contains("audit stream not created") && message.contains("timed out"), "{message}");
        assert!(started.elapsed() >= OPEN_DEADLINE, "gave up after {:?}", started.elapsed());
    }

    #[test]
    fn random_tokens_are_api_key_safe() {
        let a = super::random_token(32);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, super::random_token(32));
        assert!(
            contracts::identity::apikey::parse(&contracts::identity::apikey::format(&super::random_token(16), &a))
                .is_some()
        );
    }
}
