//! The usage API, served by the aggregator itself: it is the component that
//! owns the rollups, so the stateless api-server stays free of reads that
//! fan out over days of documents, and the usage API scales and fails
//! independently of the resize path.
//!
//! `GET /v1/usage?from=&to=&window=hour|day[&tenant=]` answers JSON, or CSV
//! with `Accept: text/csv`; every error is RFC 9457 problem+json.

use crate::{
    auth::{self, AuthError},
    query,
    range::{self, Range},
    store::Store,
};
use axum::{
    Router,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use contracts::{ProblemKind, problem::ProblemDocument};
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub admin_token: Option<Arc<str>>,
    /// Whether a request without credentials is refused or read as the anonymous tenant.
    pub auth: contracts::identity::AuthMode,
}

pub fn router(state: ApiState, registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/v1/usage", get(usage))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ready" }))
        .fallback(|| async { problem(ProblemKind::NotFound, "no such resource".into()) })
        .with_state(state)
        .merge(telemetry::metrics::router(registry))
}

fn problem(kind: ProblemKind, detail: String) -> Response {
    let doc = ProblemDocument::new(kind, detail, None);
    let mut res = (StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(doc))
        .into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    if kind == ProblemKind::Unauthorized {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

/// Asks an auth-cache about an API key, as the api-server does; no answer is 503.
async fn verify(
    client: &async_nats::Client,
    req: &contracts::identity::VerifyRequest,
) -> Result<auth::Caller, Box<Response>> {
    use contracts::identity::{Verdict, ask};
    let verdict = ask(client, req, async_nats::HeaderMap::new(), std::time::Duration::from_millis(500)).await.ok();
    match verdict {
        Some(Verdict::Allowed { tenant, .. }) => Ok(auth::Caller::Tenant(tenant)),
        Some(Verdict::Refused { reason, detail }) => Err(Box::new(problem(reason.problem(), detail))),
        None => {
            let mut res = problem(ProblemKind::AuthUnavailable, "the API key could not be verified right now".into());
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
            Err(Box::new(res))
        }
    }
}

fn auth_problem(e: AuthError) -> Response {
    let kind = match e {
        AuthError::Missing | AuthError::BadToken | AuthError::BadScheme => ProblemKind::Unauthorized,
        AuthError::OtherTenant { .. } => ProblemKind::Forbidden,
        AuthError::TenantRequired | AuthError::BadTenant(_) => ProblemKind::InvalidParameter,
    };
    problem(kind, e.to_string())
}

/// The parameters, each at most once; anything else is refused rather than ignored.
fn params(pairs: &[(String, String)]) -> Result<[Option<&str>; 4], String> {
    const NAMES: [&str; 4] = ["from", "to", "window", "tenant"];
    let mut out = [None; 4];
    for (k, v) in pairs {
        let i = NAMES.iter().position(|n| n == k).ok_or_else(|| format!("parameter `{k}` is not known"))?;
        if out[i].replace(v.as_str()).is_some() {
            return Err(format!("parameter `{k}` is given more than once"));
        }
    }
    Ok(out)
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/csv"))
}

async fn usage(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(pairs)) = query else {
        return problem(ProblemKind::InvalidParameter, "the query string is not valid form encoding".into());
    };
    let [from, to, window, tenant] = match params(&pairs) {
        Ok(p) => p,
        Err(detail) => return problem(ProblemKind::InvalidParameter, detail),
    };
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("\u{0}"));
    let caller = match auth::credential(authorization, state.admin_token.as_deref(), state.auth) {
        Ok(auth::Credential::Caller(c)) => c,
        Ok(auth::Credential::ApiKey(req)) => match verify(&state.store.client, &req).await {
            Ok(c) => c,
            Err(res) => return *res,
        },
        Err(e) => return auth_problem(e),
    };
    let tenant = match auth::tenant_for(&caller, tenant) {
        Ok(t) => t,
        Err(e) => return auth_problem(e),
    };
    let range: Range = match range::parse(from, to, window) {
        Ok(r) => r,
        Err(e) => return problem(ProblemKind::InvalidParameter, e.to_string()),
    };
    match query::report(&state.store, &tenant, &range).await {
        Ok(report) if wants_csv(&headers) => {
            ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], report.to_csv()).into_response()
        }
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => {
            let mut res = problem(ProblemKind::QueueUnavailable, e.to_string());
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
            res
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_strict() {
        let p = |q: &[(&str, &str)]| q.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        let ok = p(&[("from", "a"), ("to", "b"), ("window", "day")]);
        assert_eq!(params(&ok).unwrap(), [Some("a"), Some("b"), Some("day"), None]);
        assert!(params(&p(&[("from", "a"), ("from", "b")])).unwrap_err().contains("more than once"));
        assert!(params(&p(&[("since", "a")])).unwrap_err().contains("`since`"));
    }
}
