//! Errors as RFC 9457 problem+json responses.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use contracts::{ProblemKind, problem::ProblemDocument};

pub const MEDIA_TYPE: &str = "application/problem+json";

/// A failed request: a stable kind plus a detail for humans.
#[derive(Debug, Clone)]
pub struct Problem {
    pub kind: ProblemKind,
    pub detail: String,
    pub request_id: Option<String>,
    /// Seconds for `Retry-After`; set for transient kinds.
    pub retry_after: Option<u32>,
    /// A worker processed the request and published its usage record.
    pub metered: bool,
    /// The server will not read the rest of the request body: the answer says
    /// `Connection: close`, so a client knows not to send on this connection.
    pub closes: bool,
}

impl Problem {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            request_id: None,
            retry_after: kind.is_transient().then_some(1),
            metered: false,
            closes: false,
        }
    }

    /// Marks a refusal whose request body was left unread.
    pub fn closing(mut self, closes: bool) -> Self {
        self.closes = closes;
        self
    }

    /// Marks a failure reported by a worker (already metered).
    pub fn metered(mut self) -> Self {
        self.metered = true;
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.clamp(1, u64::from(u32::MAX)) as u32);
        self
    }

    pub fn with_request_id(mut self, id: &str) -> Self {
        self.request_id = Some(id.to_owned());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let instance = self.request_id.as_ref().map(|id| format!("/requests/{id}"));
        let doc = ProblemDocument::new(self.kind, self.detail, instance);
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        let mut res = (StatusCode::from_u16(self.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), body)
            .into_response();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(id) = self.request_id.as_deref().and_then(|id| HeaderValue::from_str(id).ok()) {
            h.insert("x-request-id", id);
        }
        if self.closes {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        res
    }
}
