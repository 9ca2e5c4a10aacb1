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
    pub verifier: crate::auth::Verifier,
    pub limits: Arc<crate::limits::TenantLimits>,
    /// Bodies of admitted requests, for workers to fetch.
    pub stage: crate::staging::Stage,
    /// Base URL of this server's peer listener, as workers reach it.
    pub peer_base: Arc<str>,
    /// What this server dates and judges by; corrected by a task of its own.
    pub clock: Arc<contracts::clock::FleetClock>,
}

impl AppState {
    /// Who is calling, within their rate limit and quota.
    pub async fn authenticate(
        &self,
        parts: &http::request::Parts,
        request_id: &str,
    ) -> Result<crate::auth::Caller, crate::problem::Problem> {
        let result = self.authenticate_inner(parts, request_id).await;
        if let Err(p) = &result {
            let label = crate::metrics::ProblemLabel { problem: p.kind.slug().to_owned() };
            self.metrics.auth_refused.get_or_create(&label).inc();
        }
        result
    }

    async fn authenticate_inner(
        &self,
        parts: &http::request::Parts,
        request_id: &str,
    ) -> Result<crate::auth::Caller, crate::problem::Problem> {
        use crate::{auth, problem::Problem};
        use contracts::{ProblemKind, identity::Verdict};
        if self.config.auth == auth::AuthMode::None {
            return Ok(auth::Caller::anonymous());
        }
        let (req, digest) = auth::credential(parts, &self.clock)?;
        let session = parts.extensions.get::<crate::session::Session>();
        let ttl = self.config.session_auth_ttl;
        let verdict = match session.and_then(|s| s.recall(&req, ttl)) {
            Some(v) => {
                self.metrics.auth_session_reused.inc();
                v
            }
            None => {
                let started = Instant::now();
                let verdict = self.verifier.verify(&req, request_id).await;
                self.metrics.auth_verify.observe(started.elapsed().as_secs_f64());
                let verdict = verdict?;
                if let Some(s) = session {
                    s.remember(&req, &verdict);
                }
                verdict
            }
        };
        match verdict {
            Verdict::Refused { reason, detail } => Err(Problem::new(reason.problem(), detail)),
            Verdict::Allowed { tenant, key_id, rate, quota_exhausted, presets, cache_control } => {
                if let Some(q) = quota_exhausted {
                    let now = contracts::job::unix_ms(self.clock.now());
                    return Err(Problem::new(
                        ProblemKind::QuotaExhausted,
                        format!(
                            "tenant `{tenant}` has used its monthly {} quota",
                            match q {
                                contracts::identity::QuotaExhausted::Images => "image",
                                contracts::identity::QuotaExhausted::Megapixels => "megapixel",
                            }
                        ),
                    )
                    .with_retry_after(auth::until_next_month(now)));
                }
                if let Err(wait) = self.limits.check(&tenant, rate) {
                    return Err(Problem::new(
                        ProblemKind::RateLimited,
                        format!(
                            "tenant `{tenant}` is limited to {} requests/s (burst {})",
                            rate.per_second, rate.burst
                        ),
                    )
                    .with_retry_after(wait.as_secs_f64().ceil() as u64));
                }
                Ok(auth::Caller { tenant, key_id, rate, quota_exhausted, presets, cache_control, digest })
            }
        }
    }
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
