//! An api-server inside the test process.

use api_server::config::Config;
use std::time::Duration;
use tokio::sync::oneshot;

/// A running api-server; dropped, it shuts down.
pub struct Api {
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Defaults for tests of the resize path: ephemeral port, short timeouts, and
/// no authentication (the identity tests set `auth` to `Required`).
pub fn config(nats_url: &str) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("literal address"),
        nats_url: nats_url.to_owned(),
        nats_credentials: crate::nats::credentials(contracts::access::Role::ApiServer),
        stream_replicas: 1,
        job_timeout: Duration::from_secs(10),
        max_body_bytes: api_server::config::DEFAULT_MAX_BODY_BYTES,
        staging: api_server::config::Staging::Reference,
        staging_cap_bytes: 512 << 20,
        peer_listen: "127.0.0.1:0".parse().expect("literal address"),
        peer_advertise: None,
        max_in_flight: 512,
        latency_target: Duration::from_millis(500),
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(30),
        auth: api_server::auth::AuthMode::None,
        auth_timeout: Duration::from_millis(250),
        session_auth_ttl: Duration::from_secs(1),
    }
}

impl Api {
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        telemetry::init("api-server");
        let (tx, rx) = oneshot::channel::<()>();
        let (addr, server) = api_server::start(config, async {
            let _ = rx.await;
        })
        .await?;
        let task = tokio::spawn(server);
        Ok(Self { base: format!("http://{addr}"), stop: Some(tx), task: Some(task) })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
