//! Test doubles for one reconcile round: an apiserver over a tower-test mock
//! pair that answers like a fresh namespace and records every request, and a
//! queue that returns canned readings.

use crate::crd::ResizeDeployment;
use crate::metrics::Metrics;
use crate::queue::{Queue, QueueError, QueueSample};
use crate::reconcile::Context;
use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One request the operator made.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
}

impl Call {
    pub fn is_apply(&self) -> bool {
        self.method == Method::PATCH && self.query.contains("fieldManager=resizer-operator")
    }
}

/// Answers: GET of a single object → 404 (nothing exists yet), LIST → the
/// objects in `lists` (none by default), PATCH/POST → the body back, as
/// server-side apply would return it, DELETE → success. The status patch is
/// answered with `rd` itself, which is what the client decodes.
pub struct FakeApiServer {
    pub calls: Arc<Mutex<Vec<Call>>>,
    pub hpa_for: Option<String>,
    /// Applies to this resource (e.g. "deployments") are refused, as an admission webhook or quota would.
    pub refuse: Option<&'static str>,
    /// What a LIST of a resource (by its plural, e.g. "pods") returns.
    pub lists: HashMap<&'static str, Vec<Value>>,
    /// Whether discovery serves the Prometheus Operator's monitoring.coreos.com/v1.
    pub monitoring: bool,
}

impl FakeApiServer {
    pub fn new(hpa_for: Option<String>) -> Self {
        FakeApiServer { calls: Arc::default(), hpa_for, refuse: None, lists: HashMap::new(), monitoring: false }
    }

    pub fn start(rd: &ResizeDeployment, hpa_for: Option<String>) -> (Client, Arc<Mutex<Vec<Call>>>) {
        Self::new(hpa_for).serve(rd)
    }

    pub fn start_refusing(rd: &ResizeDeployment, resource: &'static str) -> (Client, Arc<Mutex<Vec<Call>>>) {
        FakeApiServer { refuse: Some(resource), ..Self::new(None) }.serve(rd)
    }

    pub fn serve(self, rd: &ResizeDeployment) -> (Client, Arc<Mutex<Vec<Call>>>) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let calls = self.calls.clone();
        let rd_json = serde_json::to_value(rd).unwrap();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let bytes = body.collect().await.unwrap().to_bytes();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let call = Call {
                    method: parts.method.clone(),
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().unwrap_or_default().to_owned(),
                    body: body.clone(),
                };
                let (status, reply) = self.answer(&call, &rd_json);
                self.calls.lock().unwrap().push(call);
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap();
                send.send_response(response);
            }
        });
        (Client::new(service, "default"), calls)
    }

    fn answer(&self, call: &Call, rd: &Value) -> (StatusCode, Value) {
        let last = call.path.rsplit('/').next().unwrap_or_default();
        // A collection's path ends in `namespaces/<ns>/<plural>`.
        let segments: Vec<&str> = call.path.split('/').collect();
        let is_list = segments.len() >= 3 && segments[segments.len() - 3] == "namespaces";
        match call.method {
            Method::GET if self.monitoring && call.path == "/apis/monitoring.coreos.com/v1" => {
                let resources: Vec<Value> = ["podmonitors", "prometheusrules", "servicemonitors"]
                    .iter()
                    .map(|r| json!({"name": r, "singularName": "", "namespaced": true, "kind": "", "verbs": ["get", "patch"]}))
                    .collect();
                let list = json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "monitoring.coreos.com/v1", "resources": resources});
                (StatusCode::OK, list)
            }
            Method::GET if last == "horizontalpodautoscalers" => {
                let items = match &self.hpa_for {
                    Some(target) => vec![json!({
                        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                        "metadata": {"name": "workers"},
                        "spec": {"maxReplicas": 10, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target}},
                    })],
                    None => vec![],
                };
                (
                    StatusCode::OK,
                    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscalerList", "metadata": {}, "items": items}),
                )
            }
            Method::GET if is_list => {
                let items = self.lists.get(last).cloned().unwrap_or_default();
                (StatusCode::OK, json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}))
            }
            Method::DELETE => (
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "Status", "status": "Success", "code": 200, "metadata": {}}),
            ),
            Method::GET => (
                StatusCode::NOT_FOUND,
                json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
            ),
            _ if call.path.ends_with("/status") => (StatusCode::OK, rd.clone()),
            Method::PATCH if self.refuse.is_some_and(|r| call.path.contains(&format!("/{r}/"))) => (
                StatusCode::FORBIDDEN,
                json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403, "message": "denied by policy"}),
            ),
            _ => (StatusCode::OK, call.body.clone()),
        }
    }
}

/// A queue with a fixed answer.
pub enum FakeQueue {
    Down,
    Up(QueueSample),
}

impl Queue for FakeQueue {
    fn observe<'a>(&'a self, url: &'a str, _replicas: usize) -> BoxFuture<'a, Result<QueueSample, QueueError>> {
        Box::pin(async move {
            match self {
                FakeQueue::Down => {
                    Err(QueueError::Unreachable { url: url.into(), reason: "connection refused".into() })
                }
                FakeQueue::Up(s) => Ok(s.clone()),
            }
        })
    }

    fn step_down<'a>(&'a self, _url: &'a str) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(async move { Ok(()) })
    }
}

pub fn context(client: Client, queue: FakeQueue) -> Arc<Context> {
    Arc::new(Context::new(client, "test", Arc::new(Metrics::default()), Arc::new(queue), "resizer-system"))
}

/// The sample from `examples/`, as the apiserver would hand it over.
pub fn sample() -> ResizeDeployment {
    let mut rd: ResizeDeployment =
        serde_yaml::from_str(include_str!("../../charts/resizer/examples/resizedeployment.yaml"))
            .expect("the example parses");
    rd.metadata.namespace = Some("media".into());
    rd.metadata.uid = Some("0f1e2d3c".into());
    rd.metadata.generation = Some(1);
    rd
}

/// A pod of `component` in the shape the apiserver lists it, with `status` as given.
pub fn pod(component: &str, status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("photos-{component}-x"), "labels": {"app.kubernetes.io/component": component}},
        "status": status,
    })
}
