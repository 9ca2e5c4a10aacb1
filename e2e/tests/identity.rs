//! Identity end to end: a real nats-server, the auth-cache process, the
//! api-server with authentication required, a worker. Every bad credential
//! gets its own problem type and never reaches a worker; the auth-cache
//! failing closes the door (503), and a partitioned identity store leaves the
//! auth-cache serving what it has.

use contracts::identity::{Quota, RateLimit};
use e2e::{
    api::{self, Api},
    corpus,
    identity::{self as ident, AuthCache, AuthStack, Tenant, auth_headers},
    nats::NatsServer,
    procs::Worker,
};
use ed25519_dalek::SigningKey;
use httpsig::signature::{self, REQUIRED};
use identity::client::{self, Credentials};
use reqwest::header::{HeaderMap, HeaderValue};
use std::time::Duration;

struct Stack {
    nats: NatsServer,
    api: Api,
    auth: Option<AuthCache>,
    _worker: Worker,
    store: identity::store::Store,
    http: reqwest::Client,
}

const GENEROUS: RateLimit = RateLimit { per_second: 1000, burst: 1000 };

async fn stack() -> Stack {
    let AuthStack { nats, store, auth, api, worker } = AuthStack::start().await.expect("stack");
    Stack { nats, api, auth: Some(auth), _worker: worker, store, http: reqwest::Client::new() }
}

fn photo() -> Vec<u8> {
    corpus::read("jpeg/020_bridge.jpg")
}

const QUERY: &str = "/v1/resize?w=64&h=64";

impl Stack {
    /// Creates a tenant with keys and waits until the auth-cache has them.
    async fn tenant(&self, id: &str, rate: RateLimit) -> Tenant {
        let t = ident::tenant(&self.store, id, rate).await.expect("tenant");
        self.auth.as_ref().expect("auth-cache").caught_up(&self.store).await.expect("replica");
        t
    }

    fn url(&self) -> String {
        self.api.url(QUERY)
    }

    async fn send(&self, headers: HeaderMap, body: Vec<u8>) -> reqwest::Response {
        self.http.post(self.url()).headers(headers).body(body).send().await.expect("request")
    }

    async fn as_(&self, creds: &Credentials) -> reqwest::Response {
        let body = photo();
        self.send(auth_headers(&self.url(), "image/jpeg", &body, creds), body).await
    }

    async fn jobs_published(&self) -> f64 {
        let text = self.http.get(self.api.url("/metrics")).send().await.unwrap().text().await.unwrap();
        e2e::metrics::sum(&text, "api_jobs_published_total")
    }
}

/// Signature headers over `components` with explicit times, for crafting bad requests.
fn signed(
    url: &str,
    body: &[u8],
    key: &SigningKey,
    key_id: &str,
    components: &[&str],
    created: i64,
    expires: Option<i64>,
) -> HeaderMap {
    let mut req = http::Request::post(url)
        .header("content-type", "image/jpeg")
        .header("content-digest", httpsig::digest::content_digest(body))
        .body(())
        .unwrap();
    let h = signature::sign(key, key_id, "sig1", components, created, expires, &req).unwrap();
    let hs = req.headers_mut();
    hs.insert("signature-input", HeaderValue::from_str(&h.signature_input).unwrap());
    hs.insert("signature", HeaderValue::from_str(&h.signature).unwrap());
    req.into_parts().0.headers
}

async fn assert_problem(res: reqwest::Response, status: u16, slug: &str) -> serde_json::Value {
    assert_eq!(res.status().as_u16(), status, "status for {slug}");
    assert_eq!(
        res.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{slug}"
    );
    let doc: serde_json::Value = res.json().await.expect("problem body is JSON");
    assert_eq!(doc["type"], format!("/problems/{slug}"), "{doc}");
    assert!(doc["detail"].as_str().is_some_and(|d| !d.is_empty()), "{doc}");
    doc
}

fn signing_key(t: &Tenant) -> SigningKey {
    match &t.signature {
        Credentials::Signature { key, .. } => key.clone(),
        Credentials::ApiKey(_) => unreachable!("the signature credential"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_and_api_key_requests_are_served_for_their_tenant() {
    let s = stack().await;
    let t = s.tenant("acme", GENEROUS).await;
    for creds in [&t.signature, &t.api_key] {
        let res = s.as_(creds).await;
        assert_eq!(res.status(), 200, "{creds:?}: {:?}", res.text().await);
        assert_eq!(res.headers()["content-type"], "image/jpeg");
    }
    assert_eq!(s.jobs_published().await, 2.0);
}

/// A tenant's presets: stored through the store (an invalid one refused
/// there), replicated to the auth-cache, applied by `preset=<name>` with the
/// request's own parameters over them; another tenant's preset is unknown;
/// "presets only" refuses anything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presets_apply_per_tenant_and_can_be_required() {
    let s = stack().await;
    let acme = s.tenant("acme", GENEROUS).await;
    let other = s.tenant("other", GENEROUS).await;
    let refused = s.store.set_preset("acme", "broken", Some("w=0")).await.unwrap_err();
    assert!(refused.to_string().contains("preset `broken`"), "{refused}");
    assert!(s.store.set_preset("acme", "ghost", None).await.is_err(), "removing a preset that is not there");
    let t = s.store.set_preset("acme", "thumb", Some("w=40&h=30&fit=cover&format=png")).await.unwrap();
    assert_eq!(t.presets.named["thumb"], "w=40&h=30&fit=cover&format=png&quality=80");
    s.auth.as_ref().unwrap().caught_up(&s.store).await.unwrap();

    let body = photo();
    let ask = |query: &str, creds: &Credentials| {
        let url = s.api.url(&format!("/v1/resize?{query}"));
        let headers = auth_headers(&url, "image/jpeg", &body, creds);
        s.http.post(url).headers(headers).body(body.clone()).send()
    };
    let size = |bytes: &[u8]| {
        let img = image::load_from_memory(bytes).unwrap();
        (img.width(), img.height())
    };
    for creds in [&acme.api_key, &acme.signature] {
        let res = ask("preset=thumb", creds).await.unwrap();
        assert_eq!(res.status(), 200, "{creds:?}");
        assert_eq!(res.headers()["content-type"], "image/png");
        assert_eq!(size(&res.bytes().await.unwrap()), (40, 30));
    }
    let res = ask("preset=thumb&w=20&format=jpeg", &acme.api_key).await.unwrap();
    assert_eq!(res.headers()["content-type"], "image/jpeg", "the request's own parameters win");
    assert_eq!(size(&res.bytes().await.unwrap()), (20, 30));
    let doc = assert_problem(ask("preset=nope", &acme.api_key).await.unwrap(), 400, "invalid-parameter").await;
    assert!(doc["detail"].as_str().unwrap().contains("no preset `nope`"), "{doc}");
    assert_problem(ask("preset=thumb", &other.api_key).await.unwrap(), 400, "invalid-parameter").await;

    // Presets only: a preset, and nothing beside it.
    let change = identity::store::TenantChange { presets_only: Some(true), ..Default::default() };
    s.store.change_tenant("acme", change).await.unwrap();
    s.auth.as_ref().unwrap().caught_up(&s.store).await.unwrap();
    assert_eq!(ask("preset=thumb", &acme.api_key).await.unwrap().status(), 200);
    for query in ["w=64", "preset=thumb&w=20"] {
        let doc = assert_problem(ask(query, &acme.api_key).await.unwrap(), 400, "invalid-parameter").await;
        assert!(doc["detail"].as_str().unwrap().contains("nothing else"), "{query}: {doc}");
    }
    assert_eq!(ask("w=64", &other.api_key).await.unwrap().status(), 200, "another tenant is not bound by it");
}

/// A tenant's `Cache-Control` is on its 200s and 304s; another tenant's
/// answers keep the default; a value that is not a response directive list is
/// refused when it is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_cache_control_is_on_its_answers() {
    use identity::store::TenantChange;
    let s = stack().await;
    let acme = s.tenant("acme", GENEROUS).await;
    let other = s.tenant("other", GENEROUS).await;
    let set = |v: Option<&str>| TenantChange { cache_control: Some(v.map(str::to_owned)), ..Default::default() };
    for bad in ["max-age=soon", "only-if-cached", "public\r\nx: y"] {
        assert!(s.store.change_tenant("acme", set(Some(bad))).await.is_err(), "{bad:?} accepted");
    }
    let t = s.store.change_tenant("acme", set(Some("Public, max-age=86400"))).await.unwrap();
    assert_eq!(t.cache_control.as_deref(), Some("public, max-age=86400"), "stored normalised");
    s.auth.as_ref().unwrap().caught_up(&s.store).await.unwrap();

    let res = s.as_(&acme.api_key).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "public, max-age=86400");
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let body = photo();
    let mut headers = auth_headers(&s.url(), "image/jpeg", &body, &acme.api_key);
    headers.insert("if-none-match", HeaderValue::from_str(&etag).unwrap());
    let again = s.send(headers, body).await;
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["cache-control"], "public, max-age=86400", "a 304 says what the 200 said");
    assert_eq!(s.as_(&other.api_key).await.headers()["cache-control"], "no-store");

    s.store.change_tenant("acme", set(None)).await.unwrap();
    s.auth.as_ref().unwrap().caught_up(&s.store).await.unwrap();
    assert_eq!(s.as_(&acme.api_key).await.headers()["cache-control"], "no-store", "back to the default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_credential_has_its_problem_type_and_reaches_no_worker() {
    let s = stack().await;
    let t = s.tenant("acme", GENEROUS).await;
    let key = signing_key(&t);
    let kid = t.signature_key_id.as_str();
    let url = s.url();
    let body = photo();
    let now = signature::now_s();
    let good = || signed(&url, &body, &key, kid, &REQUIRED, now, Some(now + 60));

    let mut cases: Vec<(&str, HeaderMap, Vec<u8>, u16, &str)> = Vec::new();
    let mut plain = HeaderMap::new();
    plain.insert("content-type", HeaderValue::from_static("image/jpeg"));
    cases.push(("no credentials", plain.clone(), body.clone(), 401, "unauthorized"));
    let mut h = good();
    h.insert("signature-input", HeaderValue::from_static("sig1=(\"@method\";created=1"));
    cases.push(("malformed Signature-Input", h, body.clone(), 401, "signature-malformed"));
    let mut h = good();
    let input = h["signature-input"].clone();
    h.append("signature-input", input);
    cases.push(("duplicated Signature-Input", h, body.clone(), 401, "signature-malformed"));
    let mut h = good();
    h.remove("signature-input");
    cases.push(("Signature alone", h, body.clone(), 401, "signature-malformed"));
    let mut h = good();
    let sig = h["signature"].to_str().unwrap().replacen("sig1=:", "sig1=:AAAA", 1);
    h.insert("signature", HeaderValue::from_str(&sig).unwrap());
    cases.push(("garbage signature bytes", h, body.clone(), 401, "signature-invalid"));
    cases.push((
        "unknown key id",
        signed(&url, &body, &key, "nobody", &REQUIRED, now, None),
        body.clone(),
        401,
        "unknown-key",
    ));
    let other = client::generate_key();
    cases.push((
        "signed by another key",
        signed(&url, &body, &other, kid, &REQUIRED, now, None),
        body.clone(),
        401,
        "signature-invalid",
    ));
    cases.push((
        "over other components",
        signed(&url, &body, &key, kid, &["@method", "@path", "content-type"], now, None),
        body.clone(),
        401,
        "signature-incomplete",
    ));
    let mut changed = body.clone();
    changed[1000] ^= 0xff;
    cases.push(("body changed after signing", good(), changed, 401, "digest-mismatch"));
    let mut h = good();
    h.insert("content-type", HeaderValue::from_static("image/png"));
    cases.push(("a signed header changed", h, body.clone(), 401, "signature-invalid"));
    cases.push((
        "created in the future",
        signed(&url, &body, &key, kid, &REQUIRED, now + 400, None),
        body.clone(),
        401,
        "signature-not-yet-valid",
    ));
    cases.push((
        "created too long ago",
        signed(&url, &body, &key, kid, &REQUIRED, now - 400, None),
        body.clone(),
        401,
        "signature-expired",
    ));
    cases.push((
        "expired",
        signed(&url, &body, &key, kid, &REQUIRED, now - 100, Some(now - 10)),
        body.clone(),
        401,
        "signature-expired",
    ));
    let mut h = plain.clone();
    h.insert("authorization", HeaderValue::from_str(&format!("Bearer rsz_{}_wrongsecret", t.api_key_id)).unwrap());
    cases.push(("API key with a wrong secret", h, body.clone(), 401, "api-key-invalid"));
    let mut h = plain.clone();
    h.insert("authorization", HeaderValue::from_static("Bearer not-a-key"));
    cases.push(("malformed API key", h, body.clone(), 401, "api-key-invalid"));
    let mut h = plain.clone();
    h.insert("authorization", HeaderValue::from_str(&format!("Bearer rsz_{kid}_secret")).unwrap());
    cases.push(("a signature key used as an API key", h, body.clone(), 401, "api-key-invalid"));
    let mut h = good();
    h.insert("signature", HeaderValue::from_str(&format!("sig1=:{}:", "A".repeat(8000))).unwrap());
    cases.push(("oversized signature header", h, body.clone(), 431, "header-too-large"));

    for (what, headers, body, status, slug) in cases {
        let res = s.send(headers, body).await;
        assert_eq!(res.status().as_u16(), status, "{what}");
        assert_problem(res, status, slug).await;
    }
    assert_eq!(s.jobs_published().await, 0.0, "no refused request reached the queue");
    let res = s.send(good(), body.clone()).await;
    assert_eq!(res.status(), 200, "the same signature, unaltered, is accepted");
    assert_eq!(s.jobs_published().await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_disabling_and_replay_after_the_window() {
    let s = stack().await;
    let t = s.tenant("acme", GENEROUS).await;
    let url = s.url();
    let body = photo();
    let now = signature::now_s();
    let captured = signed(&url, &body, &signing_key(&t), &t.signature_key_id, &REQUIRED, now, Some(now + 2));
    assert_eq!(s.send(captured.clone(), body.clone()).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_problem(s.send(captured, body.clone()).await, 401, "signature-expired").await;

    s.store.set_disabled("acme", true).await.unwrap();
    let refused = wait_for(|| async { s.as_(&t.api_key).await.status() == 403 }).await;
    assert!(refused, "a disabled tenant is refused");
    assert_problem(s.as_(&t.signature).await, 403, "tenant-disabled").await;
    s.store.set_disabled("acme", false).await.unwrap();
    assert!(wait_for(|| async { s.as_(&t.api_key).await.status() == 200 }).await);

    s.store.revoke_key(&t.api_key_id).await.unwrap();
    assert!(wait_for(|| async { s.as_(&t.api_key).await.status() == 403 }).await);
    assert_problem(s.as_(&t.api_key).await, 403, "key-revoked").await;
    assert_eq!(s.as_(&t.signature).await.status(), 200, "the tenant's other key still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_key_is_verified_once_per_connection_and_signatures_every_time() {
    let s = stack().await;
    let t = s.tenant("acme", GENEROUS).await;
    let metrics = |name: &'static str| {
        let (http, url) = (s.http.clone(), s.api.url("/metrics"));
        async move { e2e::metrics::sum(&http.get(url).send().await.unwrap().text().await.unwrap(), name) }
    };
    // One kept-alive connection (the client's pool holds one idle connection per host).
    let verified = metrics("api_auth_verify_seconds_count").await;
    for _ in 0..10 {
        assert_eq!(s.as_(&t.api_key).await.status(), 200);
    }
    let reused = metrics("api_auth_session_reused_total").await;
    let asked = metrics("api_auth_verify_seconds_count").await - verified;
    assert!(reused >= 8.0, "later requests on the connection reuse the accepted key: {reused}");
    assert!(asked <= 2.0, "the auth-cache was asked {asked} times for 10 requests");
    for _ in 0..3 {
        assert_eq!(s.as_(&t.signature).await.status(), 200);
    }
    assert_eq!(metrics("api_auth_session_reused_total").await, reused, "a signature is verified for each request");
    // A wrong secret on the same connection is not let through by the remembered key.
    let Credentials::ApiKey(key) = &t.api_key else { unreachable!("the API key credential") };
    let wrong = Credentials::ApiKey(format!("{}x", key));
    assert_problem(s.as_(&wrong).await, 401, "api-key-invalid").await;
    // A revocation reaches a kept-alive connection within the reuse window.
    s.store.revoke_key(&t.api_key_id).await.unwrap();
    assert!(wait_for(|| async { s.as_(&t.api_key).await.status() == 403 }).await, "revocation applies");
}

/// Polls `f` for up to 3 s (propagation is measured by `auth-bench`, not here).
async fn wait_for<F, Fut>(f: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..150 {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_created_after_an_unknown_key_answer_is_usable_at_once() {
    let s = stack().await;
    s.tenant("acme", GENEROUS).await;
    let key = client::generate_key();
    let creds = Credentials::Signature { key_id: "late".into(), key: key.clone() };
    assert_problem(s.as_(&creds).await, 401, "unknown-key").await;
    s.store.add_ed25519("acme", Some("late"), &client::encode_public(&key)).await.unwrap();
    // Well inside the 2 s the unknown answer could otherwise be remembered.
    let started = std::time::Instant::now();
    assert!(wait_for(|| async { s.as_(&creds).await.status() == 200 }).await);
    assert!(started.elapsed() < Duration::from_secs(2), "the create event cleared the negative entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_quotas_answer_429_with_their_types() {
    let s = stack().await;
    let t = s.tenant("slow", RateLimit { per_second: 1, burst: 2 }).await;
    let url = s.api.url("/v1/resize?w=0");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let res = s
            .http
            .post(&url)
            .headers(auth_headers(&url, "image/jpeg", b"x", &t.api_key))
            .body("x")
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=2).contains(&retry), "Retry-After {retry}");
            assert_problem(res, 429, "rate-limited").await;
        }
    }
    assert_eq!(&statuses[..2], &[400, 400], "the burst passes authentication (then fails validation)");
    assert!(statuses[2..].iter().all(|s| *s == 429), "{statuses:?}");

    // Quotas count what the usage pipeline counted: run the aggregator.
    let _agg = e2e::usage::Aggregator::spawn(&s.nats.client_url, "admin-token-for-tests", &[]).unwrap();
    let q = s.tenant("metered", GENEROUS).await;
    s.store.set_limits("metered", None, Some(Quota { images: Some(2), megapixels: None })).await.unwrap();
    s.auth.as_ref().unwrap().caught_up(&s.store).await.unwrap();
    assert_eq!(s.as_(&q.api_key).await.status(), 200);
    assert_eq!(s.as_(&q.api_key).await.status(), 200);
    let mut exhausted = None;
    for _ in 0..100 {
        let res = s.as_(&q.api_key).await;
        if res.status() == 429 {
            exhausted = Some(res);
            break;
        }
        assert_eq!(res.status(), 200, "until the rollup arrives, requests are served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let res = exhausted.expect("the quota is enforced once the rollups count it");
    // The tenant reads its own usage with its API key, and nobody else's.
    let usage_url = |tenant: &str| e2e::usage::today(&_agg, tenant);
    let Credentials::ApiKey(token) = &q.api_key else { unreachable!() };
    let own: serde_json::Value =
        s.http.get(usage_url("metered")).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    assert_eq!(own["tenant"], "metered", "{own}");
    let other = s.http.get(usage_url("slow")).bearer_auth(token).send().await.unwrap();
    assert_problem(other, 403, "forbidden").await;
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 31 * 86_400, "Retry-After is the start of next month: {retry}");
    assert_problem(res, 429, "quota-exhausted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_auth_cache_requests_fail_closed() {
    let mut s = stack().await;
    let t = s.tenant("acme", GENEROUS).await;
    assert_eq!(s.as_(&t.api_key).await.status(), 200);
    s.auth.take();
    // The key accepted on this connection stands for the session window; past it, nothing does.
    tokio::time::sleep(api::config(&s.nats.client_url).session_auth_ttl).await;
    let started = std::time::Instant::now();
    let res = s.as_(&t.api_key).await;
    assert!(started.elapsed() < Duration::from_secs(2), "fails fast: {:?}", started.elapsed());
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 503, "auth-unavailable").await;
    let stopped = AuthCache::spawn(&s.nats.client_url, &[]).await.unwrap();
    stopped.signal("STOP");
    let res = s.as_(&t.signature).await;
    assert_problem(res, 503, "auth-unavailable").await;
    stopped.signal("CONT");
    assert_eq!(s.jobs_published().await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_admins_lose_no_update() {
    let nats = NatsServer::start().unwrap();
    let store = ident::store(&nats.client_url).await.unwrap();
    store.create_tenant("acme", "", GENEROUS, Quota::default()).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let store = ident::store(&nats.client_url).await.unwrap();
        tasks.push(tokio::spawn(async move {
            store.update_tenant("acme", |t| t.name.push((b'a' + i) as char)).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut name: Vec<char> = store.tenant("acme").await.unwrap().name.chars().collect();
    name.sort_unstable();
    assert_eq!(name.into_iter().collect::<String>(), "abcdefghijklmnop");
    // A write against a stale revision is refused by the bucket itself.
    let kv = store.kv();
    let rev = kv.entry("tenant.acme").await.unwrap().unwrap().revision;
    kv.put("tenant.acme", kv.entry("tenant.acme").await.unwrap().unwrap().value).await.unwrap();
    assert!(kv.update("tenant.acme", "{}".into(), rev).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_is_guarded_and_manages_tenants_and_keys() {
    let s = stack().await;
    let token = "an-admin-token-of-some-length";
    let mut registry = prometheus_client::registry::Registry::default();
    let app = identity::admin_api::router(s.store.clone(), token, &mut registry);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = &s.http;
    assert_problem(http.get(format!("{base}/v1/tenants")).send().await.unwrap(), 401, "unauthorized").await;
    let wrong = http.get(format!("{base}/v1/tenants")).bearer_auth("nope").send().await.unwrap();
    assert_problem(wrong, 403, "forbidden").await;
    let res = http
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(token)
        .json(&serde_json::json!({"id": "web", "rate": {"per_second": 50, "burst": 100}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let again = http
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(token)
        .json(&serde_json::json!({"id": "web"}))
        .send()
        .await
        .unwrap();
    assert_problem(again, 400, "invalid-parameter").await;
    let bad = http
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(token)
        .json(&serde_json::json!({"id": "a.b"}))
        .send()
        .await
        .unwrap();
    assert_problem(bad, 400, "invalid-parameter").await;
    let issued: serde_json::Value = http
        .post(format!("{base}/v1/tenants/web/keys"))
        .bearer_auth(token)
        .json(&serde_json::json!({"type": "api_key"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_shown = issued["token"].as_str().unwrap().to_owned();
    let key_id = issued["key"]["id"].as_str().unwrap().to_owned();
    assert!(!issued["key"].to_string().contains(token_shown.rsplit('_').next().unwrap()), "the secret is not stored");
    let creds = Credentials::ApiKey(token_shown);
    assert!(wait_for(|| async { s.as_(&creds).await.status() == 200 }).await);
    let listed: serde_json::Value =
        http.get(format!("{base}/v1/tenants/web/keys")).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed[0]["id"], key_id.as_str());
    let res = http.delete(format!("{base}/v1/keys/{key_id}")).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(wait_for(|| async { s.as_(&creds).await.status() == 403 }).await);
    let patch =
        |body: serde_json::Value| http.patch(format!("{base}/v1/tenants/web")).bearer_auth(token).json(&body).send();
    let t: serde_json::Value = patch(serde_json::json!({"disabled": true})).await.unwrap().json().await.unwrap();
    assert_eq!(t["disabled"], true);
    assert_eq!(t["rate"]["per_second"], 50, "a patch keeps what it does not name");
    // Presets: stored canonical, an invalid one refused when it is created, removed by name.
    let preset = |query: &str| {
        http.put(format!("{base}/v1/tenants/web/presets/thumb"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "query": query }))
            .send()
    };
    let t: serde_json::Value = preset("h=90&w=90&fit=cover&gravity=smart").await.unwrap().json().await.unwrap();
    assert_eq!(t["presets"]["named"]["thumb"], "w=90&h=90&fit=cover&gravity=smart&quality=80");
    assert_problem(preset("w=90&gravity=smart").await.unwrap(), 400, "invalid-parameter").await;
    let t: serde_json::Value = patch(serde_json::json!({"presets_only": true})).await.unwrap().json().await.unwrap();
    assert_eq!(t["presets"]["only"], true);
    let cache_control = |value: &str| patch(serde_json::json!({ "cache_control": value }));
    let t: serde_json::Value = cache_control("public,max-age=60").await.unwrap().json().await.unwrap();
    assert_eq!(t["cache_control"], "public, max-age=60");
    assert_problem(cache_control("max-age=later").await.unwrap(), 400, "invalid-parameter").await;
    let t: serde_json::Value = cache_control("").await.unwrap().json().await.unwrap();
    assert!(t.get("cache_control").is_none(), "\"\" returns to the default: {t}");
    let gone = http.delete(format!("{base}/v1/tenants/web/presets/thumb")).bearer_auth(token).send().await.unwrap();
    let t: serde_json::Value = gone.json().await.unwrap();
    assert!(t["presets"]["named"].get("thumb").is_none(), "{t}");
    let metrics = telemetry::metrics::render(&registry);
    assert!(
        metrics.contains(r#"admin_http_requests_total{method="POST",route="/v1/tenants",status="201"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"method="GET",route="/v1/tenants",status="401"} 1"#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_identity_store_unreachable_the_auth_cache_serves_what_it_has() {
    let mut cluster = e2e::cluster::Cluster::start().unwrap();
    cluster.ready(Duration::from_secs(60)).await.unwrap();
    let client = e2e::nats::options_as(contracts::access::Role::Admin)
        .connect(contracts::servers::server_urls(&cluster.urls()).as_slice())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let store = identity::store::Store::open(&js, 3).await.unwrap();
    let t = ident::tenant(&store, "acme", GENEROUS).await.unwrap();
    // The survivor must be a follower of IDENTITY's stream: a leader left alone
    // keeps answering reads of what it has, so the bucket would not be unreachable.
    let stream = js.get_stream(contracts::identity::STREAM).await.unwrap();
    let leader = stream.cached_info().cluster.as_ref().and_then(|c| c.leader.clone()).expect("a stream leader");
    let survivor_index = cluster.nodes.iter().position(|n| n.name != leader).expect("a follower");
    // Both the auth-cache and the api-server reach the survivor only.
    let survivor = cluster.nodes[survivor_index].client_url.clone();
    let auth = AuthCache::spawn(&survivor, &["--replicas", "3"]).await.unwrap();
    auth.caught_up(&store).await.unwrap();
    let mut cfg = api::config(&survivor);
    cfg.auth = api_server::auth::AuthMode::Required;
    cfg.stream_replicas = 3;
    let api = Api::start(cfg).await.unwrap();
    let http = reqwest::Client::new();
    // An invalid parameter answers 400 only after authentication passed: no worker needed.
    let url = api.url("/v1/resize?w=0");
    let ask = |creds: Credentials| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let h = auth_headers(&url, "image/jpeg", b"x", &creds);
            http.post(&url).headers(h).body("x").send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(ask(t.api_key.clone()).await, 400);
    for (i, node) in cluster.nodes.iter_mut().enumerate() {
        if i != survivor_index {
            node.kill();
        }
    }
    // JetStream has lost its quorum: IDENTITY cannot be read, the replica can.
    assert_eq!(ask(t.api_key.clone()).await, 400, "verified from the replica right after the loss");
    let mut stale = 0.0;
    for _ in 0..400 {
        stale = auth.status().await.unwrap()["staleness_seconds"].as_f64().unwrap();
        if stale > 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stale > 2.0, "the auth-cache reports how stale it is: {stale}");
    assert_eq!(ask(t.api_key.clone()).await, 400, "API key still verified from the replica");
    assert_eq!(ask(t.signature.clone()).await, 400, "signature still verified from the replica");
    let metrics = http.get(format!("{}/metrics", auth.base)).send().await.unwrap().text().await.unwrap();
    let lag = e2e::metrics::sum(&metrics, "auth_cache_replication_lag_seconds");
    assert!(lag > 1.0, "lag metric {lag}");
}

#[tokio::test]
async fn every_admin_write_leaves_an_audit_record() {
    use contracts::identity::audit::{self, AuditRecord};
    use reqwest::Method;
    let nats = NatsServer::start().unwrap();
    let store = ident::store(&nats.client_url).await.unwrap().with_actor("cli:ops@bastion");
    // Every action of the CLI, in turn.
    store.create_tenant("audited", "Audited", GENEROUS, Quota::default()).await.unwrap();
    let (key, token) = store.issue_api_key("audited").await.unwrap();
    let public = client::encode_public(&client::generate_key());
    let signing = store.add_ed25519("audited", Some("audited-sig"), &public).await.unwrap();
    store.revoke_key(&key.id).await.unwrap();
    store.set_disabled("audited", true).await.unwrap();
    store.set_disabled("audited", false).await.unwrap();
    store.set_limits("audited", Some(RateLimit { per_second: 7, burst: 9 }), None).await.unwrap();
    store.set_limits("audited", None, Some(Quota { images: Some(100), megapixels: None })).await.unwrap();
    // A change that names nothing writes nothing, and a refused write leaves no record.
    store.set_limits("audited", None, None).await.unwrap();
    assert!(store.create_tenant("audited", "", GENEROUS, Quota::default()).await.is_err());

    // And every write of the admin API, each one write however many fields it sets.
    let admin_token = "an-admin-token-of-some-length";
    let app = identity::admin_api::router(
        store.clone().with_actor("admin-api"),
        admin_token,
        &mut prometheus_client::registry::Registry::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let send = |method: reqwest::Method, path: &str, body: serde_json::Value| {
        let req = http.request(method, format!("{base}{path}")).bearer_auth(admin_token).json(&body);
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    assert_eq!(send(Method::POST, "/v1/tenants", serde_json::json!({"id": "web"})).await.0, 201);
    let ed = serde_json::json!({"type": "ed25519", "public_key": public, "key_id": "web-sig"});
    assert_eq!(send(Method::POST, "/v1/tenants/web/keys", ed).await.0, 201);
    let (status, issued) = send(Method::POST, "/v1/tenants/web/keys", serde_json::json!({"type": "api_key"})).await;
    assert_eq!(status, 201);
    let patch = serde_json::json!({"disabled": true, "rate": {"per_second": 5, "burst": 5}, "quota": {"images": 3}});
    assert_eq!(send(Method::PATCH, "/v1/tenants/web", patch).await.0, 200);
    assert_eq!(send(Method::PATCH, "/v1/tenants/web", serde_json::json!({"disabled": false})).await.0, 200);
    assert_eq!(send(Method::PATCH, "/v1/tenants/web", serde_json::json!({})).await.0, 200);
    assert_eq!(send(Method::DELETE, "/v1/keys/web-sig", serde_json::json!({})).await.0, 200);
    assert_eq!(send(Method::POST, "/v1/tenants", serde_json::json!({"id": "web"})).await.0, 400);

    let js = async_nats::jetstream::new(nats.client().await.unwrap());
    let stream = js.get_stream(audit::STREAM).await.unwrap();
    let info = stream.cached_info();
    assert_eq!(info.config.max_age, audit::MAX_AGE, "the trail has a retention of its own");
    let mut records = Vec::new();
    for seq in 1..=info.state.last_sequence {
        let m = stream.get_raw_message(seq).await.unwrap();
        records.push(serde_json::from_slice::<AuditRecord>(&m.payload).unwrap());
    }
    let what: Vec<_> = records.iter().map(|r| (r.actor.as_str(), r.action.as_str(), r.key.as_str())).collect();
    let (cli, api) = ("cli:ops@bastion", "admin-api");
    let key_entry = format!("key.{}", key.id);
    let signing_entry = format!("key.{}", signing.id);
    let web_api_key = format!("key.{}", issued["key"]["id"].as_str().unwrap());
    assert_eq!(
        what,
        [
            (cli, "create", "tenant.audited"),
            (cli, "create", key_entry.as_str()),
            (cli, "create", signing_entry.as_str()),
            (cli, "update", key_entry.as_str()),
            (cli, "update", "tenant.audited"),
            (cli, "update", "tenant.audited"),
            (cli, "update", "tenant.audited"),
            (cli, "update", "tenant.audited"),
            (api, "create", "tenant.web"),
            (api, "create", "key.web-sig"),
            (api, "create", web_api_key.as_str()),
            (api, "update", "tenant.web"),
            (api, "update", "tenant.web"),
            (api, "update", "key.web-sig"),
        ],
        "one record per write, and none for what wrote nothing"
    );
    assert!(records.iter().all(|r| r.at_ms > 0));
    assert!(records.windows(2).all(|w| w[0].revision < w[1].revision), "bucket revisions, in order");
    assert!(records[3].record["revoked_ms"].is_u64(), "the revocation is in the record: {:?}", records[3].record);
    assert_eq!(records[4].record["disabled"], true);
    assert_eq!(records[5].record["disabled"], false);
    assert_eq!(records[6].record["rate"], serde_json::json!({"per_second": 7, "burst": 9}));
    assert_eq!(records[7].record["quota"]["images"], 100);
    assert_eq!(records[7].record["rate"]["per_second"], 7, "a limit change keeps the other limit");
    let patched = &records[11].record;
    assert_eq!((patched["disabled"].clone(), patched["rate"]["burst"].clone()), (true.into(), 5.into()));
    assert_eq!(patched["quota"]["images"], 3);
    assert!(records[13].record["revoked_ms"].is_u64());
    // The bearer secret itself is never written anywhere, the trail included.
    let secret = token.rsplit('_').next().unwrap();
    assert!(records.iter().all(|r| !r.record.to_string().contains(secret)));
}
