//! The peer listener: where workers fetch staged bodies and post their
//! answers (the exchange is specified in [`contracts::staging`]). It is a
//! listener of its own, apart from the public one, so the network can admit
//! only the fleet's workers to it.

use crate::{metrics::Metrics, problem::Problem, queue::Answer, queue::Queue, staging::Stage};
use axum::{
    Router,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use contracts::{ProblemKind, outcome::OutcomeHeaders, staging};
use http_body_util::BodyExt;

#[derive(Clone)]
pub struct PeerState {
    pub stage: Stage,
    pub queue: Queue,
    pub metrics: Metrics,
}

pub fn router(state: PeerState) -> Router {
    Router::new()
        .route(&format!("{}{{request_id}}", staging::PATH_PREFIX), get(fetch))
        .route(&format!("{}{{request_id}}/result", staging::PATH_PREFIX), post(answer))
        .fallback(crate::routes::meta::not_found)
        .with_state(state)
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

/// Nobody waits for this request (or the token is wrong: the same answer).
fn gone(request_id: &str) -> Response {
    Problem::new(ProblemKind::NotFound, format!("request {request_id} is not waiting for a worker")).into_response()
}

async fn fetch(State(s): State<PeerState>, Path(request_id): Path<String>, headers: HeaderMap) -> Response {
    match s.stage.get(&request_id, authorization(&headers)) {
        Some(body) => {
            s.metrics.staged_fetches.get_or_create(&crate::metrics::ResultLabel { result: "ok".into() }).inc();
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/octet-stream")], Body::from(body)).into_response()
        }
        None => {
            s.metrics.staged_fetches.get_or_create(&crate::metrics::ResultLabel { result: "gone".into() }).inc();
            gone(&request_id)
        }
    }
}

async fn answer(
    State(s): State<PeerState>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !s.stage.admits(&request_id, authorization(&headers)) {
        return gone(&request_id);
    }
    // A detail may hold any UTF-8 (`×` in a size); `to_str` would drop it.
    let fields =
        OutcomeHeaders::from_fields(|name| headers.get(name).and_then(|v| std::str::from_utf8(v.as_bytes()).ok()));
    let outcome = match fields {
        Ok(o) if o.request_id == request_id => o,
        Ok(_) => {
            return Problem::new(ProblemKind::InvalidParameter, "the answer names another request").into_response();
        }
        Err(e) => return Problem::new(ProblemKind::InvalidParameter, e.to_string()).into_response(),
    };
    let body = match http_body_util::Limited::new(body, staging::MAX_RESULT_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Problem::new(ProblemKind::PayloadTooLarge, format!("reading the answer failed: {e}"))
                .into_response();
        }
    };
    if s.queue.deliver(Answer { headers: outcome, body }) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        gone(&request_id)
    }
}
