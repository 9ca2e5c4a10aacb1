//! Shared state and the router.

use crate::{admission::Admission, config::Config, metrics::Metrics, queue::Queue, routes};
use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
};
use prometheus_client::registry::Registry;
use std::{sync::Arc, time::Instant};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub queue: Queue,
    pub metrics: Metrics,
    /// Decides whether a new request enters or is shed with 503.
    pub admission: Arc<Admission>,
    /// Usage records of requests answered without a worker.
    pub usage: crate::usage::UsageSink,
}

pub fn router(state: AppState, registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/v1/resize", post(routes::resize::resize))
        .route("/healthz", get(routes::meta::healthz))
        .route("/readyz", get(routes::meta::readyz))
        .route("/openapi.json", get(routes::meta::openapi))
        .route("/problems/{slug}", get(routes::meta::problem_type))
        .method_not_allowed_fallback(routes::meta::method_not_allowed)
        .fallback(routes::meta::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
        .merge(telemetry::metrics::router(registry))
}

/// Counts every request by route and status and times it.
async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let res = next.run(req).await;
    let labels = crate::metrics::RequestLabels { route: route.clone(), status: res.status().as_u16() };
    state.metrics.requests.get_or_create(&labels).inc();
    state
        .metrics
        .duration
        .get_or_create(&crate::metrics::RouteLabel { route })
        .observe(started.elapsed().as_secs_f64());
    res
}
