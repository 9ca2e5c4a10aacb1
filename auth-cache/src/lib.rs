//! The auth-cache: the data plane of identity.
//!
//! It holds all of the IDENTITY bucket in memory (a KV watch: the latest
//! value of every key, then every change) and answers api-servers'
//! verification requests over NATS request/reply. Key material is parsed once
//! per change; each verification is decided against the replica as it is at
//! that moment. "Unknown key" answers are remembered for at most 2 s and
//! forgotten as soon as that key is created. When the bucket cannot be
//! reached it keeps answering from the replica and reports its staleness.
//!
//! # Layout
//! - [`config`]: flags and environment.
//! - [`replica`]: the in-memory records and the verification decision (pure).
//! - [`state`]: what the tasks share: the replica, readiness, last confirmation.
//! - [`sync`]: the IDENTITY and usage-rollup watches, and the staleness check.
//! - [`service`]: the NATS responder.
//! - [`http`]: readiness, `/v1/status`, metrics.
//! - [`metrics`]: Prometheus metrics.

pub mod config;
pub mod http;
pub mod metrics;
pub mod replica;
pub mod service;
pub mod state;
pub mod sync;

use std::sync::Arc;

/// Connects, starts the watches and the responder, binds the HTTP listener;
/// returns its address and the future that runs until `shutdown`.
pub async fn start(
    config: config::Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(std::net::SocketAddr, impl std::future::Future<Output = anyhow::Result<()>>)> {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = metrics::Metrics::register(&mut registry);
    let urls = contracts::servers::server_urls(&config.nats_url);
    let creds = &config.nats_credentials;
    let client = contracts::connect::options(contracts::access::Role::AuthCache, creds, metrics.nats_refusals.clone())?
        .retry_on_initial_connect()
        .connect(urls.as_slice())
        .await?;
    let js = async_nats::jetstream::new(client.clone());
    let shared = Arc::new(state::Shared::default());
    let tasks = config.tasks.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut set = tokio::task::JoinSet::new();
    set.spawn(sync::follow_identity(js.clone(), config.replicas, shared.clone(), metrics.clone()));
    set.spawn(sync::follow_usage(js.clone(), config.replicas, shared.clone()));
    set.spawn(sync::confirm(js, shared.clone(), metrics.clone(), config.confirm_every));
    let responder = tokio::spawn(service::serve(client.clone(), shared.clone(), metrics, tasks));
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let app = http::router(shared, Arc::new(registry));
    Ok((addr, async move {
        axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
        // Leave the queue group first so no request waits on a replica that is going away.
        responder.abort();
        let _ = client.drain().await;
        set.abort_all();
        Ok(())
    }))
}
