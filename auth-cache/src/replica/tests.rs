use super::*;
use base64::{Engine, engine::general_purpose::STANDARD};
use contracts::identity::{Quota, RateLimit, apikey};
use ed25519_dalek::{Signer, SigningKey};

fn tenant(id: &str) -> TenantRecord {
    TenantRecord {
        v: 1,
        id: id.into(),
        name: String::new(),
        disabled: false,
        rate: RateLimit { per_second: 5, burst: 10 },
        quota: Quota::default(),
        presets: Default::default(),
        cache_control: None,
        created_ms: 1,
        updated_ms: 1,
    }
}

fn key(id: &str, tenant: &str, material: KeyMaterial) -> KeyRecord {
    KeyRecord { v: 1, id: id.into(), tenant: tenant.into(), material, created_ms: 1, revoked_ms: None }
}

fn put(r: &mut Replica, e: Entry, v: &impl serde::Serialize) {
    assert!(r.apply(&e.kv_key(), Change::Put(&serde_json::to_vec(v).unwrap()), r.revision + 1));
}

struct Fixture {
    replica: Replica,
    signer: SigningKey,
}

fn fixture() -> Fixture {
    let mut replica = Replica::default();
    let signer = SigningKey::from_bytes(&[3; 32]);
    put(&mut replica, Entry::Tenant("acme".into()), &tenant("acme"));
    let public_key = STANDARD.encode(signer.verifying_key().to_bytes());
    put(&mut replica, Entry::Key("sig".into()), &key("sig", "acme", KeyMaterial::Ed25519 { public_key }));
    let secret_sha256 = apikey::secret_sha256("s3cret");
    put(&mut replica, Entry::Key("bear".into()), &key("bear", "acme", KeyMaterial::Bearer { secret_sha256 }));
    Fixture { replica, signer }
}

fn signed(f: &Fixture, base: &str) -> VerifyRequest {
    VerifyRequest::Signature {
        key_id: "sig".into(),
        base: base.into(),
        signature: STANDARD.encode(f.signer.sign(base.as_bytes()).to_bytes()),
        alg: None,
    }
}

fn refusal(v: Verdict) -> Refusal {
    match v {
        Verdict::Refused { reason, .. } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn good_credentials_are_allowed_with_the_tenants_limits() {
    let f = fixture();
    let now = Instant::now();
    let req = signed(&f, "base");
    let v = f.replica.verify(&req, "2026-11", now);
    assert_eq!(
        v,
        Verdict::Allowed {
            tenant: "acme".into(),
            key_id: "sig".into(),
            rate: RateLimit { per_second: 5, burst: 10 },
            quota_exhausted: None,
            presets: Default::default(),
            cache_control: None,
        }
    );
    let bearer = VerifyRequest::Bearer { key_id: "bear".into(), secret_sha256: apikey::secret_sha256("s3cret") };
    assert!(matches!(f.replica.verify(&bearer, "2026-11", now), Verdict::Allowed { .. }));
}

#[test]
fn every_refusal_has_its_reason() {
    let mut f = fixture();
    let now = Instant::now();
    let mut other_base = signed(&f, "base");
    if let VerifyRequest::Signature { base, .. } = &mut other_base {
        *base = "another base".into();
    }
    assert_eq!(refusal(f.replica.verify(&other_base, "2026-11", now)), Refusal::BadSignature);
    let mut wrong_alg = signed(&f, "base");
    if let VerifyRequest::Signature { alg, .. } = &mut wrong_alg {
        *alg = Some("hmac-sha256".into());
    }
    assert_eq!(refusal(f.replica.verify(&wrong_alg, "2026-11", now)), Refusal::BadSignature);
    let wrong_secret = VerifyRequest::Bearer { key_id: "bear".into(), secret_sha256: apikey::secret_sha256("nope") };
    assert_eq!(refusal(f.replica.verify(&wrong_secret, "2026-11", now)), Refusal::BadApiKey);
    let signature_key_as_bearer = VerifyRequest::Bearer { key_id: "sig".into(), secret_sha256: "00".into() };
    assert_eq!(refusal(f.replica.verify(&signature_key_as_bearer, "2026-11", now)), Refusal::BadApiKey);

    let good = signed(&f, "base");
    let mut t = tenant("acme");
    t.disabled = true;
    put(&mut f.replica, Entry::Tenant("acme".into()), &t);
    assert_eq!(refusal(f.replica.verify(&good, "2026-11", now)), Refusal::TenantDisabled);
    put(&mut f.replica, Entry::Tenant("acme".into()), &tenant("acme"));
    let public_key = STANDARD.encode(f.signer.verifying_key().to_bytes());
    let mut revoked = key("sig", "acme", KeyMaterial::Ed25519 { public_key });
    revoked.revoked_ms = Some(2);
    put(&mut f.replica, Entry::Key("sig".into()), &revoked);
    assert_eq!(refusal(f.replica.verify(&good, "2026-11", now)), Refusal::KeyRevoked);
}

#[test]
fn unknown_keys_are_remembered_briefly_and_forgotten_on_create() {
    let mut f = fixture();
    let t0 = Instant::now();
    let req = VerifyRequest::Bearer { key_id: "new".into(), secret_sha256: apikey::secret_sha256("x") };
    assert_eq!(refusal(f.replica.verify(&req, "2026-11", t0)), Refusal::UnknownKey);
    assert!(f.replica.known_unknown("new", t0 + std::time::Duration::from_millis(1900)));
    assert!(!f.replica.known_unknown("new", t0 + NEGATIVE_TTL));
    assert_eq!(refusal(f.replica.verify(&req, "2026-11", t0)), Refusal::UnknownKey);
    let material = KeyMaterial::Bearer { secret_sha256: apikey::secret_sha256("x") };
    put(&mut f.replica, Entry::Key("new".into()), &key("new", "acme", material));
    assert!(
        matches!(f.replica.verify(&req, "2026-11", t0), Verdict::Allowed { .. }),
        "a create clears the negative entry"
    );
}

#[test]
fn quotas_count_the_current_month_only() {
    let mut f = fixture();
    let mut t = tenant("acme");
    t.quota = Quota { images: Some(10), megapixels: Some(5) };
    put(&mut f.replica, Entry::Tenant("acme".into()), &t);
    let day = |ok, mp: u64| Some(Counters { ok, pixels_in: mp * 1_000_000, ..Counters::default() });
    f.replica.apply_usage("acme.2026-10-31", day(100, 100));
    f.replica.apply_usage("acme.2026-11-01", day(4, 1));
    f.replica.apply_usage("acme.2026-11-02", day(5, 1));
    let req = signed(&f, "base");
    let now = Instant::now();
    assert_eq!(f.replica.month_usage("acme", "2026-11"), (9, 2_000_000));
    assert!(matches!(f.replica.verify(&req, "2026-11", now), Verdict::Allowed { quota_exhausted: None, .. }));
    f.replica.apply_usage("acme.2026-11-03", day(1, 0));
    assert!(matches!(
        f.replica.verify(&req, "2026-11", now),
        Verdict::Allowed { quota_exhausted: Some(QuotaExhausted::Images), .. }
    ));
    f.replica.apply_usage("acme.2026-11-03", day(0, 3));
    assert!(matches!(
        f.replica.verify(&req, "2026-11", now),
        Verdict::Allowed { quota_exhausted: Some(QuotaExhausted::Megapixels), .. }
    ));
}

#[test]
fn unreadable_records_are_kept_out() {
    let mut r = Replica::default();
    assert!(!r.apply("key.k", Change::Put(b"not json"), 1));
    assert!(!r.apply("tenant.a", Change::Put(br#"{"v":1,"id":"b","created_ms":1,"updated_ms":1}"#), 2));
    assert!(!r.apply("weird", Change::Put(b"{}"), 3));
    assert_eq!((r.tenants(), r.keys(), r.revision), (0, 0, 3));
}
