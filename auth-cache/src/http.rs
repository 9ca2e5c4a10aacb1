//! Health, readiness, replica status and metrics over HTTP.

use crate::state::Shared;
use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use std::sync::Arc;

pub fn router(shared: Arc<Shared>, registry: Arc<prometheus_client::registry::Registry>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/v1/status", get(status))
        .with_state(shared)
        .merge(telemetry::metrics::router(registry))
}

/// Ready once the first snapshot is loaded and the server routes verify
/// requests here; a stale replica stays ready (it serves what it has), and
/// says how stale in `/v1/status` and the metrics.
async fn readyz(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    match (s.is_loaded(), s.is_answering()) {
        (true, true) => (StatusCode::OK, "ready"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "loading IDENTITY"),
        (true, false) => (StatusCode::SERVICE_UNAVAILABLE, "joining the verify group"),
    }
}

async fn status(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let r = s.replica();
    Json(serde_json::json!({
        "loaded": s.is_loaded(),
        "answering": s.is_answering(),
        "revision": r.revision,
        "tenants": r.tenants(),
        "keys": r.keys(),
        "staleness_seconds": s.staleness().as_secs_f64(),
    }))
}
