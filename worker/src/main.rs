use clap::Parser;
use std::sync::Arc;
use worker::{config::Config, consumer, metrics::Metrics};

fn main() -> anyhow::Result<()> {
    // The worker is also its own HEIC decoder, started once per HEIC input.
    if std::env::args().nth(1).as_deref() == Some(worker::resize::HEIC_HELPER_ARG) {
        std::process::exit(worker::resize::heic_helper_main());
    }
    serve()
}

#[tokio::main]
async fn serve() -> anyhow::Result<()> {
    telemetry::init("worker");
    let cfg = Config::parse();
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);
    let addr = telemetry::metrics::serve(cfg.metrics_addr, Arc::new(registry)).await?;
    tracing::info!(%addr, "metrics listening");
    let result = consumer::run(cfg, metrics, telemetry::shutdown_signal()).await;
    telemetry::shutdown();
    result
}
