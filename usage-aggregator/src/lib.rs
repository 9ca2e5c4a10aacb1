//! The usage aggregator: turns the USAGE stream into per-tenant rollups and a
//! compressed archive, and answers `GET /v1/usage`.
//!
//! # Counting every request exactly once
//! Duplicates reach the aggregator in three ways, and each has its guard:
//! - **A record published twice** (a worker redoes a job after a crash, an
//!   api-server retries a flush): records carry `Nats-Msg-Id` = request id, and
//!   USAGE drops a repeat within its duplicate window (15 min, longer than a job
//!   can live in JOBS).
//! - **A record delivered twice** (an aggregator died after writing rollups and
//!   before acking, an ack was lost, a slow replica's batch was redelivered to
//!   another): every rollup document (tenant, UTC day) records which stream
//!   sequences it already contains, so applying a record is idempotent — see
//!   [`apply`]. A plain "applied through sequence N" mark is not enough: after a
//!   crash, newer records can be delivered before the redelivered older ones,
//!   and several replicas interleave batches. Instead a document keeps the set
//!   of sequences of the batches that touched it, as intervals, above a floor.
//!   The floor is the consumer's ack floor: a replica acks a record only after
//!   writing every document it touches, so everything at or below the ack floor
//!   is counted everywhere and can be forgotten. Documents stay a few intervals.
//! - **Two replicas writing one document**: writes are compare-and-set on the
//!   KV revision; the loser re-reads, finds the records it shares with the
//!   winner already applied, and adds only the rest.
//!
//! So any number of replicas can share the durable consumer at once, with no
//! leader, lease or partitioning; a batch's records touch one document per
//! (tenant, day), which keeps writes per batch small when traffic is skewed.
//!
//! # Completeness
//! The watermark ([`watermark`]) is the instant before which every request is
//! counted: the publish time of the oldest unacked record (or now) minus the
//! lateness allowance. Reports carry it as `complete_through`.
//!
//! # Layout
//! - [`apply`]: the idempotency rule (pure) and grouping records by document.
//! - [`aggregate`]: the consumer loop (batches that fill for a short window), dead-lettering,
//!   compare-and-set writes, acks.
//! - [`archive`]: per-tenant daily zstd objects and retention.
//! - [`range`], [`time`]: query validation, UTC calendar and RFC 3339 (pure).
//! - [`query`]: reports from rollup documents; [`http`] serves them; [`auth`] is the identity seam.
//! - [`store`]: the streams and buckets; [`metrics`]; [`config`].

pub mod aggregate;
pub mod apply;
pub mod archive;
pub mod auth;
pub mod config;
pub mod http;
pub mod metrics;
pub mod query;
pub mod range;
pub mod store;
pub mod time;
pub mod watermark;

use std::sync::Arc;

/// Starts the aggregator: opens the store, binds the API listener, and returns
/// its address and a future that aggregates, archives and serves until `shutdown`.
pub async fn start(
    args: config::RunArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(std::net::SocketAddr, impl std::future::Future<Output = anyhow::Result<()>>)> {
    args.check()?;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = metrics::Metrics::register(&mut registry);
    let store = store::Store::open(
        &args.nats.nats_url,
        &args.nats.nats_credentials,
        args.nats.replicas,
        metrics.nats_refusals.clone(),
    )
    .await?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let app = http::router(
        http::ApiState { store: store.clone(), admin_token: args.admin_token.clone().map(Arc::from), auth: args.auth },
        Arc::new(registry),
    );
    let opts = aggregate::Options {
        batch: args.batch,
        batch_window: args.batch_window,
        ack_wait: args.ack_wait,
        lateness: args.lateness,
        pause_before_ack: args.pause_before_ack,
        ..Default::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let run = async move {
        let mut stop_http = stop_rx.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_http.changed().await;
                })
                .await
        });
        let archiver = {
            let (store, metrics, mut stop) = (store.clone(), metrics.clone(), stop_rx.clone());
            let lateness = args.lateness.as_millis() as u64;
            tokio::spawn(async move {
                loop {
                    archive::round(&store, lateness, args.archive_retention_days, &metrics).await;
                    tokio::select! {
                        _ = tokio::time::sleep(args.archive_interval) => {}
                        _ = stop.changed() => break,
                    }
                }
            })
        };
        let mut stop = stop_rx;
        let result = aggregate::run(store.clone(), opts, metrics, async move {
            let _ = stop.changed().await;
        })
        .await;
        archiver.abort();
        let _ = server.await;
        result
    };
    let main = async move {
        tokio::pin!(run);
        tokio::select! {
            r = &mut run => r,
            _ = shutdown => {
                let _ = stop_tx.send(true);
                run.await
            }
        }
    };
    Ok((addr, main))
}
