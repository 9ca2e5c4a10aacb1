//! Identity for tests: the auth-cache as a process, tenants and keys written
//! through the management plane's own store, and authenticated requests.

use identity::client::{self, Credentials};
use reqwest::header::HeaderMap;
use std::{process::Child, time::Duration};

/// A running auth-cache process.
pub struct AuthCache {
    child: Child,
    pub base: String,
}

impl AuthCache {
    /// Starts `auth-cache` against `nats_url` and waits until its snapshot is loaded.
    pub async fn spawn(nats_url: &str, extra: &[&str]) -> anyhow::Result<Self> {
        Self::launch(nats_url, extra, &crate::procs::Launch::default()).await
    }

    /// [`AuthCache::spawn`] with extra environment and its log in a file.
    pub async fn launch(nats_url: &str, extra: &[&str], launch: &crate::procs::Launch) -> anyhow::Result<Self> {
        let mut args = vec!["--nats-url", nats_url, "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let (child, base) = crate::procs::launch_listening("auth-cache", &args, "AUTH_CACHE_LOG", launch)?;
        let me = Self { child, base };
        let http = reqwest::Client::new();
        // Loading the snapshot from a replicated bucket takes longer on a busy
        // machine: readiness is waited for, not timed.
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if http.get(format!("{}/readyz", me.base)).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(me);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("auth-cache at {} did not become ready in 30 s", me.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let _ = std::process::Command::new("kill").args([&format!("-{sig}"), &self.pid().to_string()]).status();
    }

    /// SIGTERM, then waits up to 10 s; returns whether the process exited 0 in that time.
    pub fn terminate(&mut self) -> bool {
        crate::procs::terminate(&mut self.child)
    }

    /// Waits until this replica has applied every write `store` has made so far.
    pub async fn caught_up(&self, store: &identity::store::Store) -> anyhow::Result<()> {
        let target = store.revision().await?;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let status = self.status().await?;
            // Caught up and reachable: a replica that has the records but whose
            // verify subscriptions the server has not read yet would be "no responders".
            if status["revision"].as_u64().is_some_and(|r| r >= target) && status["answering"] == true {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        anyhow::bail!("auth-cache did not reach revision {target} in 30 s")
    }

    pub async fn status(&self) -> anyhow::Result<serde_json::Value> {
        Ok(reqwest::get(format!("{}/v1/status", self.base)).await?.json().await?)
    }
}

impl Drop for AuthCache {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The service with authentication required: nats-server, the identity store,
/// an auth-cache, an api-server in the test process and one worker.
pub struct AuthStack {
    pub nats: crate::nats::NatsServer,
    pub store: identity::store::Store,
    pub auth: AuthCache,
    pub api: crate::api::Api,
    pub worker: crate::procs::Worker,
}

impl AuthStack {
    pub async fn start() -> anyhow::Result<Self> {
        let nats = crate::nats::NatsServer::start()?;
        let store = store(&nats.client_url).await?;
        let auth = AuthCache::spawn(&nats.client_url, &[]).await?;
        let mut cfg = crate::api::config(&nats.client_url);
        cfg.auth = api_server::auth::AuthMode::Required;
        let api = crate::api::Api::start(cfg).await?;
        let worker = crate::procs::Worker::spawn(&nats.client_url, &[])?;
        Ok(Self { nats, store, auth, api, worker })
    }
}

/// The management plane's store on `nats_url`.
pub async fn store(nats_url: &str) -> anyhow::Result<identity::store::Store> {
    replicated_store(nats_url, 1).await
}

/// [`store`] with the IDENTITY bucket kept on `replicas` nodes (when this call creates it).
pub async fn replicated_store(nats_url: &str, replicas: usize) -> anyhow::Result<identity::store::Store> {
    let urls = contracts::servers::server_urls(nats_url);
    let client = crate::nats::options_as(contracts::access::Role::Admin).connect(urls.as_slice()).await?;
    Ok(identity::store::Store::open(&async_nats::jetstream::new(client), replicas).await?)
}

/// A tenant with one signature key and one API key.
pub struct Tenant {
    pub id: String,
    pub signature: Credentials,
    pub api_key: Credentials,
    pub signature_key_id: String,
    pub api_key_id: String,
}

pub async fn tenant(
    store: &identity::store::Store,
    id: &str,
    rate: contracts::identity::RateLimit,
) -> anyhow::Result<Tenant> {
    store.create_tenant(id, id, rate, Default::default()).await?;
    let key = client::generate_key();
    let record = store.add_ed25519(id, Some(&format!("{id}-sig")), &client::encode_public(&key)).await?;
    let (api, token) = store.issue_api_key(id).await?;
    Ok(Tenant {
        id: id.to_owned(),
        signature: Credentials::Signature { key_id: record.id.clone(), key },
        api_key: Credentials::ApiKey(token),
        signature_key_id: record.id,
        api_key_id: api.id,
    })
}

/// The headers that authenticate `POST url` with `body` of `content_type`.
pub fn auth_headers(url: &str, content_type: &str, body: &[u8], creds: &Credentials) -> HeaderMap {
    let mut req = http::Request::post(url).header("content-type", content_type).body(()).expect("valid request");
    client::authorize(&mut req, body, creds, httpsig::signature::now_s()).expect("signing");
    req.into_parts().0.headers
}
