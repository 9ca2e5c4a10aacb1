use anyhow::Context as _;
use clap::Parser;
use kube::Client;
use kube::api::{Api, ListParams};
use operator::crd::ResizeDeployment;
use operator::leader;
use operator::metrics::{Health, Metrics, router};
use operator::queue::NatsQueue;
use operator::reconcile::{self, Context};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// Runs the ResizeDeployment operator: elects a leader, then reconciles every ResizeDeployment in the cluster.
#[derive(Parser, Debug)]
#[command(name = "operator", version)]
struct Args {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// The operator's own namespace: where its leader-election Lease lives, and
    /// the one namespace each fleet's NATS admits the operator's pods from.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    #[arg(long, env = "OPERATOR_LEASE_NAME", default_value = "resizer-operator")]
    lease_name: String,
    /// Seconds after which a holder that stopped renewing loses the Lease.
    #[arg(long, env = "OPERATOR_LEASE_SECONDS", default_value_t = 15)]
    lease_seconds: u64,
    /// This replica's name in the Lease; defaults to the pod name, else host and process id.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// NATS address to use instead of each ResizeDeployment's in-cluster service (an operator outside the cluster).
    #[arg(long, env = "OPERATOR_NATS_URL")]
    nats_url: Option<String>,
    /// How long a NATS connection attempt may take before the queue counts as unreachable.
    #[arg(long, env = "OPERATOR_NATS_TIMEOUT", default_value = "2s", value_parser = contracts::duration::parse)]
    nats_timeout: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The same logs, traces and shutdown signal as every other binary of the fleet.
    telemetry::init("operator");
    let args = Args::parse();
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "operator".into());
        format!("{host}-{}", std::process::id())
    });

    let client = Client::try_default().await.context("no Kubernetes configuration")?;
    // Fail at start, not in a watch retry loop, when the CRD is missing.
    Api::<ResizeDeployment>::all(client.clone())
        .list(&ListParams::default().limit(1))
        .await
        .context("listing ResizeDeployments; is crds/resizedeployments.yaml applied?")?;

    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind(args.listen).await.context("binding the metrics address")?;
    info!(addr = %listener.local_addr()?, %identity, "serving /metrics, /healthz, /readyz");
    let app = router(Health { metrics: metrics.clone(), ready: ready.clone() });
    let http = tokio::spawn(axum::serve(listener, app).with_graceful_shutdown(stopped(stop_rx.clone())).into_future());
    tokio::spawn(async move {
        telemetry::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });

    let mut election =
        leader::elect(client.clone(), &args.lease_namespace, &args.lease_name, &identity, args.lease_seconds).await?;
    ready.store(true, Ordering::Relaxed);
    let queue = Arc::new(NatsQueue::new(args.nats_timeout));
    let mut ctx = Context::new(client, &identity, metrics.clone(), queue, &args.lease_namespace);
    ctx.nats_url = args.nats_url;
    // The endpoint the chart gives the operator (telemetry reads the same variable) is the fleets' default.
    ctx.otlp_endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|e| !e.is_empty());
    let ctx = Arc::new(ctx);

    loop {
        tokio::select! {
            held = election.acquired() => if !held { break },
            _ = stopped(stop_rx.clone()) => break,
        }
        info!(%identity, "holding the leader lease; reconciling");
        metrics.leader.set(1);
        let lost = election.lost();
        let stop = stopped(stop_rx.clone());
        reconcile::run(ctx.clone(), async move {
            tokio::select! { _ = lost => {}, _ = stop => {} }
        })
        .await;
        metrics.leader.set(0);
        if *stop_rx.borrow() {
            break;
        }
        warn!(%identity, "lost the leader lease; standing by");
    }
    // Releasing lets a standby take over now instead of after the lease duration.
    election.release().await;
    let _ = http.await;
    info!("stopped");
    telemetry::shutdown();
    Ok(())
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
