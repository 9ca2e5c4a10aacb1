//! The admin HTTP API: the management plane over HTTP, guarded by an admin
//! bearer token. Every write goes through [`Store`] (compare-and-set).
//!
//! - `POST /v1/tenants` `{id, name?, rate?, quota?}` → 201 tenant
//! - `GET /v1/tenants`, `GET /v1/tenants/{id}`
//! - `PATCH /v1/tenants/{id}` `{disabled?, rate?, quota?}`
//! - `POST /v1/tenants/{id}/keys` `{type: "ed25519", public_key, key_id?}` or `{type: "api_key"}` → 201
//!   (an API key's token is in this answer only)
//! - `GET /v1/tenants/{id}/keys`
//! - `DELETE /v1/keys/{key_id}`: revoke

use crate::store::{Store, StoreError, TenantChange};
use axum::{
    Json, Router,
    extract::{Path, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, put},
};
use contracts::{
    ProblemKind,
    identity::{Quota, RateLimit},
    problem::ProblemDocument,
};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone)]
struct AdminState {
    store: Store,
    token: Arc<str>,
    requests: prometheus_client::metrics::family::Family<RequestLabels, prometheus_client::metrics::counter::Counter>,
}

/// The admin API; its request counts (by method, route and status) go into `registry`.
pub fn router(store: Store, admin_token: &str, registry: &mut prometheus_client::registry::Registry) -> Router {
    let requests = prometheus_client::metrics::family::Family::default();
    registry.register("admin_http_requests", "Admin API requests by method, route and status", requests.clone());
    let state = AdminState { store, token: admin_token.into(), requests };
    Router::new()
        .route("/v1/tenants", get(list_tenants).post(create_tenant))
        .route("/v1/tenants/{id}", get(get_tenant).patch(patch_tenant))
        .route("/v1/tenants/{id}/keys", get(list_keys).post(add_key))
        .route("/v1/tenants/{id}/presets/{name}", put(put_preset).delete(delete_preset))
        .route("/v1/keys/{key_id}", delete(revoke))
        .fallback(|| async { problem(ProblemKind::NotFound, "no such admin resource".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

fn problem(kind: ProblemKind, detail: String) -> Response {
    let doc = ProblemDocument::new(kind, detail, None);
    let mut res =
        (StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Json(doc)).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    res
}

fn store_error(e: StoreError) -> Response {
    let kind = match &e {
        StoreError::NoTenant(_) | StoreError::NoKey(_) => ProblemKind::NotFound,
        StoreError::Exists(_) | StoreError::BadId(_) | StoreError::BadInput(_) => ProblemKind::InvalidParameter,
        StoreError::Contended(_) | StoreError::Nats(_) => ProblemKind::QueueUnavailable,
    };
    problem(kind, e.to_string())
}

async fn count(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    s.requests.get_or_create(&RequestLabels { method, route, status: res.status().as_u16() }).inc();
    res
}

async fn guard(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    let token =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match token {
        None => problem(ProblemKind::Unauthorized, "send the admin token as `Authorization: Bearer <token>`".into()),
        Some(t) if !s.token.is_empty() && contracts::identity::same_secret(t.trim().as_bytes(), s.token.as_bytes()) => {
            next.run(req).await
        }
        Some(_) => problem(ProblemKind::Forbidden, "the admin token is not valid".into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    rate: Option<RateLimit>,
    #[serde(default)]
    quota: Option<Quota>,
}

type Body<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// The JSON body, or the text of why it is not acceptable.
fn body<T>(b: Body<T>) -> Result<T, String> {
    b.map(|Json(v)| v).map_err(|e| e.body_text())
}

async fn create_tenant(State(s): State<AdminState>, b: Body<NewTenant>) -> Response {
    let t = match body(b) {
        Ok(t) => t,
        Err(detail) => return problem(ProblemKind::InvalidParameter, detail),
    };
    match s.store.create_tenant(&t.id, &t.name, t.rate.unwrap_or_default(), t.quota.unwrap_or_default()).await {
        Ok(t) => (StatusCode::CREATED, Json(t)).into_response(),
        Err(e) => store_error(e),
    }
}

async fn list_tenants(State(s): State<AdminState>) -> Response {
    s.store.tenants().await.map_or_else(store_error, |t| Json(t).into_response())
}

async fn get_tenant(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    s.store.tenant(&id).await.map_or_else(store_error, |t| Json(t).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantPatch {
    disabled: Option<bool>,
    rate: Option<RateLimit>,
    quota: Option<Quota>,
    presets_only: Option<bool>,
    /// `""` returns to the default.
    cache_control: Option<String>,
}

async fn patch_tenant(State(s): State<AdminState>, Path(id): Path<String>, b: Body<TenantPatch>) -> Response {
    let p = match body(b) {
        Ok(p) => p,
        Err(detail) => return problem(ProblemKind::InvalidParameter, detail),
    };
    // One write for the whole patch: it applies entirely or not at all, and leaves one audit record.
    let change = TenantChange {
        disabled: p.disabled,
        rate: p.rate,
        quota: p.quota,
        presets_only: p.presets_only,
        cache_control: p.cache_control.map(|c| Some(c).filter(|c| !c.is_empty())),
    };
    s.store.change_tenant(&id, change).await.map_or_else(store_error, |t| Json(t).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPreset {
    /// As `/v1/resize`'s query string: `w=320&h=320&fit=cover`.
    query: String,
}

async fn put_preset(
    State(s): State<AdminState>,
    Path((id, name)): Path<(String, String)>,
    b: Body<NewPreset>,
) -> Response {
    let p = match body(b) {
        Ok(p) => p,
        Err(detail) => return problem(ProblemKind::InvalidParameter, detail),
    };
    s.store.set_preset(&id, &name, Some(&p.query)).await.map_or_else(store_error, |t| Json(t).into_response())
}

async fn delete_preset(State(s): State<AdminState>, Path((id, name)): Path<(String, String)>) -> Response {
    s.store.set_preset(&id, &name, None).await.map_or_else(store_error, |t| Json(t).into_response())
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum NewKey {
    Ed25519 { public_key: String, key_id: Option<String> },
    ApiKey {},
}

async fn add_key(State(s): State<AdminState>, Path(id): Path<String>, b: Body<NewKey>) -> Response {
    let k = match body(b) {
        Ok(k) => k,
        Err(detail) => return problem(ProblemKind::InvalidParameter, detail),
    };
    match k {
        NewKey::Ed25519 { public_key, key_id } => {
            match s.store.add_ed25519(&id, key_id.as_deref(), &public_key).await {
                Ok(k) => (StatusCode::CREATED, Json(k)).into_response(),
                Err(e) => store_error(e),
            }
        }
        NewKey::ApiKey {} => match s.store.issue_api_key(&id).await {
            Ok((k, token)) => {
                (StatusCode::CREATED, Json(serde_json::json!({"key": k, "token": token}))).into_response()
            }
            Err(e) => store_error(e),
        },
    }
}

async fn list_keys(State(s): State<AdminState>, Path(id): Path<String>) -> Response {
    s.store.keys(&id).await.map_or_else(store_error, |k| Json(k).into_response())
}

async fn revoke(State(s): State<AdminState>, Path(key_id): Path<String>) -> Response {
    s.store.revoke_key(&key_id).await.map_or_else(store_error, |k| Json(k).into_response())
}
