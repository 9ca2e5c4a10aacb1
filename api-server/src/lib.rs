//! The api-server: the stateless HTTP edge of the resize service.
//!
//! It validates a request before reading its body, reads the body within size
//! and time limits, checks the bytes against the declared type, publishes a job
//! with an absolute deadline to JetStream, and waits for the worker's answer on
//! its own results subject. Every error is RFC 9457 problem+json.
//!
//! # Layout
//! - [`config`]: flags and environment.
//! - [`auth`]: credentials of a request and their verification by an auth-cache (fail closed).
//! - [`limits`]: per-tenant request rates (GCRA).
//! - [`admission`]: shedding at the edge when a request would break its latency budget (graceful degradation).
//! - [`app`]: shared state, router, request metrics middleware.
//! - [`routes`]: handlers (`resize`; `meta` for health, readiness, OpenAPI, problem types;
//!   `peer` for the workers' fetches and answers, on a listener of its own).
//! - [`conditional`]: entity tags from the input and the operation; `If-None-Match` answered with 304 before queueing.
//! - [`queue`]: publishing jobs and routing answers back to waiting requests.
//! - [`staging`]: request bodies held in memory (under a cap) for workers to fetch.
//! - [`problem`]: problem+json responses.
//! - [`usage`]: usage records of requests refused at the edge, flushed in batches.
//! - [`metrics`]: Prometheus metrics.
//! - [`serve`]: the HTTP/1.1 accept loop with slow-client limits and graceful shutdown.

pub mod admission;
pub mod app;
pub mod auth;
pub mod conditional;
pub mod config;
pub mod limits;
pub mod metrics;
pub mod problem;
pub mod queue;
pub mod routes;
pub mod serve;
pub mod session;
pub mod staging;
pub mod usage;

use std::sync::Arc;

/// Builds the state and router, binds the listener, and returns the bound address
/// with the server future (run it to serve until `shutdown` resolves).
pub async fn start(
    config: config::Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(std::net::SocketAddr, impl std::future::Future<Output = ()>)> {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = metrics::Metrics::register(&mut registry);
    let queue =
        queue::Queue::connect(&config.nats_url, &config.nats_credentials, config.stream_replicas, metrics.clone())
            .await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let peer_listener = tokio::net::TcpListener::bind(config.peer_listen).await?;
    let towards = config::address_towards(&config.nats_url).await;
    let peer_base = config::peer_base(config.peer_advertise.as_deref(), peer_listener.local_addr()?, towards)?;
    let stage = staging::Stage::new(config.staging_cap_bytes, metrics.staged_bytes.clone());
    let peer = routes::peer::router(routes::peer::PeerState {
        stage: stage.clone(),
        queue: queue.clone(),
        metrics: metrics.clone(),
    });
    let header_timeout = config.header_timeout;
    let (usage, flusher, stop_usage) =
        usage::UsageSink::start(queue.jetstream(), config.stream_replicas, metrics.clone());
    let verifier = auth::Verifier::new(queue.client(), config.auth_timeout);
    if config.auth == auth::AuthMode::None {
        tracing::warn!("authentication is off (AUTH=none): every request is the anonymous tenant");
    }
    let clock = Arc::new(contracts::clock::FleetClock::default());
    let info = contracts::subjects::stream_info(contracts::subjects::JOBS_STREAM);
    tokio::spawn(contracts::clock::keep(clock.clone(), queue.client(), info, metrics.clock_offset.clone()));
    let state = app::AppState {
        clock,
        verifier,
        limits: Arc::default(),
        usage,
        admission: Arc::new(admission::Admission::new(
            admission::Budgets { latency_target: config.latency_target, job_timeout: config.job_timeout },
            config.max_in_flight,
        )),
        config: Arc::new(config),
        queue,
        metrics,
        stage,
        peer_base: Arc::from(peer_base.as_str()),
    };
    tracing::info!(peer = %peer_base, staging = ?state.config.staging, "peer listener for workers");
    let app = app::router(state, Arc::new(registry));
    // Workers may still fetch and answer while the last requests finish, so the
    // peer listener outlives the public one.
    let (peer_stop, peer_stopped) = tokio::sync::oneshot::channel::<()>();
    let peer_server = tokio::spawn(async move {
        let _ = axum::serve(peer_listener, peer)
            .with_graceful_shutdown(async {
                let _ = peer_stopped.await;
            })
            .await;
    });
    Ok((addr, async move {
        serve::serve(listener, app, header_timeout, shutdown).await;
        let _ = peer_stop.send(());
        let _ = peer_server.await;
        // Every connection is finished: no more records can come; publish the rest.
        let _ = stop_usage.send(()).await;
        flusher.close().await;
    }))
}
