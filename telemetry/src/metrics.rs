//! Serving a Prometheus registry.

use axum::{Router, http::header, response::IntoResponse, routing::get};
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// Histogram buckets for latencies in seconds, 0.5 ms to 10 s: one scale for
/// every component so their histograms can be compared and summed.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0].into_iter()
}

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry in OpenMetrics text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Encoding into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// A `GET /metrics` route for `registry`, to merge into a component's router.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&registry)).into_response() }
        }),
    )
}

/// Serves `/metrics` and a trivial `/healthz` on `addr` until the process ends
/// (for components without an HTTP API of their own).
pub async fn serve(addr: std::net::SocketAddr, registry: Arc<Registry>) -> anyhow::Result<std::net::SocketAddr> {
    let app = router(registry).route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(local)
}
