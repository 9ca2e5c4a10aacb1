use clap::Parser;
use std::sync::Arc;
use worker::{config::Config, consumer, metrics::Metrics};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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
