//! Health, readiness, the OpenAPI document and the problem-type catalogue.

use crate::{app::AppState, problem::Problem};
use axum::{
    Json,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use contracts::ProblemKind;
use std::time::Duration;

/// The public API description, kept in the repository next to the code it describes.
pub const OPENAPI: &str = include_str!("../../openapi.json");

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready only when JetStream answers: a load balancer then stops sending
/// traffic that could only be answered with 503.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.queue.is_ready(Duration::from_secs(1)).await {
        (StatusCode::OK, "ready").into_response()
    } else {
        Problem::new(ProblemKind::QueueUnavailable, "JetStream is not reachable").into_response()
    }
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub async fn problem_type(Path(slug): Path<String>) -> Response {
    match ProblemKind::from_slug(&slug) {
        Some(kind) => Json(serde_json::json!({
            "type": kind.type_uri(),
            "title": kind.title(),
            "status": kind.status(),
        }))
        .into_response(),
        None => Problem::new(ProblemKind::NotFound, format!("no problem type `{slug}`")).into_response(),
    }
}

pub async fn not_found() -> Response {
    Problem::new(ProblemKind::NotFound, "no such resource").into_response()
}

pub async fn method_not_allowed() -> Response {
    Problem::new(ProblemKind::MethodNotAllowed, "method not allowed on this resource").into_response()
}
