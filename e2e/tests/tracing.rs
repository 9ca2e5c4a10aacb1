//! Traces and logs of one request, end to end: Jaeger v2, a real nats-server,
//! and the auth-cache, api-server and worker as processes exporting over OTLP.
//! A signed request that names its own trace must come back as one trace in
//! Jaeger, spanning the three processes with every parent link intact and the
//! time in the queue as a span of its own, and every JSON log line about the
//! request must name the request, the tenant and the trace.
//!
//! A usage record the aggregator cannot count is logged and traced the same
//! way, as part of the request it was about.
//!
//! Needs the jaeger binary (`scripts/install-observability-tools.sh`, or
//! `JAEGER_BIN`); without it these tests fail, they do not skip.

use contracts::identity::RateLimit;
use e2e::{
    corpus,
    identity::{self as ident, AuthCache, Tenant, auth_headers},
    jaeger::Jaeger,
    nats::NatsServer,
    procs::{ApiServer, Launch, Worker},
    usage::Aggregator,
};
use serde_json::Value;
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

const QUERY: &str = "/v1/resize?w=64&h=64";

/// Every span the request should leave, by process.
const API_SPANS: [&str; 4] = ["resize_request", "auth_verify", "publish", "await_result"];
const AUTH_SPANS: [&str; 1] = ["verify"];
const WORKER_SPANS: [&str; 6] = ["queue_wait", "process", "decode", "resize", "encode", "publish_usage"];

struct Traced {
    jaeger: Jaeger,
    _nats: NatsServer,
    auth: AuthCache,
    api: ApiServer,
    worker: Worker,
    tenant: Tenant,
    logs: tempfile::TempDir,
}

impl Traced {
    /// The stack exporting to a fresh Jaeger, each component flushing its spans
    /// every `export_delay_ms` (`OTEL_BSP_SCHEDULE_DELAY`) and logging JSON to a file.
    async fn start(export_delay_ms: u64) -> Self {
        let jaeger = Jaeger::start()
            .await
            .expect("Jaeger v2 is needed for this test: run scripts/install-observability-tools.sh or set JAEGER_BIN");
        let nats = NatsServer::start().expect("nats-server");
        let logs = tempfile::tempdir().expect("log directory");
        let launch = |name: &str, rust_log: &str| {
            Launch::default()
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", &jaeger.otlp_endpoint)
                .env("OTEL_BSP_SCHEDULE_DELAY", &export_delay_ms.to_string())
                .env("LOG_FORMAT", "json")
                .env("RUST_LOG", rust_log)
                .log_to(logs.path().join(format!("{name}.log")))
        };
        let store = ident::store(&nats.client_url).await.expect("identity store");
        let auth = AuthCache::launch(&nats.client_url, &[], &launch("auth-cache", "info,auth_cache=debug"))
            .await
            .expect("auth-cache");
        let api = ApiServer::launch(&nats.client_url, &["--auth", "required"], &launch("api-server", "info"))
            .expect("api-server");
        let worker = Worker::launch(&nats.client_url, &[], &launch("worker", "info")).expect("worker");
        let tenant = ident::tenant(&store, "acme", RateLimit { per_second: 100, burst: 100 }).await.expect("tenant");
        auth.caught_up(&store).await.expect("auth-cache has the tenant");
        Self { jaeger, _nats: nats, auth, api, worker, tenant, logs }
    }

    /// One signed request inside the client's trace `trace_id`, from its span `parent`; returns the request id.
    async fn send(&self, trace_id: &str, parent: &str) -> String {
        let url = format!("{}{QUERY}", self.api.base);
        let body = corpus::read("jpeg/020_bridge.jpg");
        let mut headers = auth_headers(&url, "image/jpeg", &body, &self.tenant.signature);
        headers.insert("traceparent", format!("00-{trace_id}-{parent}-01").parse().expect("header value"));
        let res = reqwest::Client::new().post(&url).headers(headers).body(body).send().await.expect("request");
        let status = res.status();
        let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (request_id, traceresponse) = (header("x-request-id"), header("traceresponse"));
        assert_eq!(status, 200, "{:?}", res.text().await);
        let traceresponse = traceresponse.expect("traceresponse header");
        assert_eq!(traceresponse.split('-').nth(1), Some(trace_id), "served in the client's trace: {traceresponse}");
        request_id.expect("x-request-id header")
    }

    fn log(&self, name: &str) -> PathBuf {
        self.logs.path().join(format!("{name}.log"))
    }
}

/// `n` random bytes as hex (std's randomly keyed hasher as the source).
fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, RandomState};
    let mut out = String::new();
    while out.len() < 2 * n {
        out.push_str(&format!("{:016x}", RandomState::new().hash_one(out.len())));
    }
    out.truncate(2 * n);
    out
}

struct Span<'a> {
    raw: &'a Value,
    service: String,
}

impl Span<'_> {
    fn name(&self) -> &str {
        self.raw["operationName"].as_str().unwrap_or_default()
    }
    fn id(&self) -> &str {
        self.raw["spanID"].as_str().unwrap_or_default()
    }
    fn start(&self) -> i64 {
        self.raw["startTime"].as_i64().expect("startTime in µs")
    }
    fn end(&self) -> i64 {
        self.start() + self.raw["duration"].as_i64().expect("duration in µs")
    }
    /// The parent span id (Jaeger's CHILD_OF reference), if the span has one.
    fn parent(&self) -> Option<&str> {
        self.raw["references"]
            .as_array()?
            .iter()
            .find(|r| r["refType"] == "CHILD_OF")
            .and_then(|r| r["spanID"].as_str())
    }
}

fn spans(trace: &Value) -> Vec<Span<'_>> {
    trace["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|s| {
            let pid = s["processID"].as_str().expect("processID");
            let service = trace["processes"][pid]["serviceName"].as_str().expect("serviceName").to_owned();
            Span { raw: s, service }
        })
        .collect()
}

fn all_span_names() -> Vec<&'static str> {
    API_SPANS.iter().chain(&AUTH_SPANS).chain(&WORKER_SPANS).copied().collect()
}

/// Everything the trace of one request must show.
fn assert_one_request_trace(trace: &Value, trace_id: &str, client_span: &str) {
    assert_eq!(trace["traceID"], trace_id);
    let spans = spans(trace);
    let services: std::collections::BTreeSet<_> = spans.iter().map(|s| s.service.as_str()).collect();
    assert!(spans.len() >= 5, "{} spans: {trace}", spans.len());
    for s in ["api-server", "auth-cache", "worker"] {
        assert!(services.contains(s), "no span from {s}; services {services:?}");
    }
    for (service, names) in
        [("api-server", &API_SPANS[..]), ("auth-cache", &AUTH_SPANS[..]), ("worker", &WORKER_SPANS[..])]
    {
        for name in names {
            let found: Vec<_> = spans.iter().filter(|s| s.name() == *name).collect();
            assert_eq!(found.len(), 1, "exactly one {name} span");
            assert_eq!(found[0].service, service, "{name} is {service}'s");
        }
    }
    let by_name: HashMap<&str, &Span> = spans.iter().map(|s| (s.name(), s)).collect();
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.id()).collect();
    assert_eq!(ids.len(), spans.len(), "span ids are unique");
    // Parent links: one root, the client's span its parent; every other parent in the trace.
    for s in &spans {
        assert_eq!(s.raw["traceID"], trace_id, "{} in the trace", s.name());
        let parent = s.parent().unwrap_or_else(|| panic!("{} has no parent reference", s.name()));
        if s.name() == "resize_request" {
            assert_eq!(parent, client_span, "the server span continues the client's span");
        } else {
            assert!(ids.contains(parent), "{}'s parent {parent} is not in the trace", s.name());
        }
    }
    let parent_of = |name: &str| {
        let p = by_name[name].parent().expect("parent");
        spans.iter().find(|s| s.id() == p).map(|s| s.name().to_owned()).unwrap_or_default()
    };
    for (child, parent) in [
        ("auth_verify", "resize_request"),
        ("verify", "auth_verify"),
        ("publish", "resize_request"),
        ("await_result", "resize_request"),
        ("queue_wait", "resize_request"),
        ("process", "resize_request"),
        ("decode", "process"),
        ("resize", "process"),
        ("encode", "process"),
        ("publish_usage", "process"),
    ] {
        assert_eq!(parent_of(child), parent, "{child}'s parent");
    }
    // The queue wait runs from the publish to the start of processing (µs; one
    // machine, one clock; the job is dated just before its publish starts).
    let (wait, publish, process) = (by_name["queue_wait"], by_name["publish"], by_name["process"]);
    assert!(
        wait.start() <= publish.start(),
        "queue wait starts at the publish: {} > {}",
        wait.start(),
        publish.start()
    );
    assert!(publish.start() - wait.start() < 50_000, "queue wait starts at the publish, not before");
    assert!(
        wait.end() <= process.start(),
        "queue wait ends as processing starts: {} > {}",
        wait.end(),
        process.start()
    );
    assert!(process.start() - wait.end() < 50_000, "processing starts when the wait ends");
    assert!(wait.end() > wait.start(), "the wait has a length");
    let root = by_name["resize_request"];
    for s in &spans {
        if s.service == "api-server" {
            assert!(s.start() >= root.start() && s.end() <= root.end(), "{} inside the request", s.name());
        }
    }
}

/// Waits until `path` has a line containing `needle` (logs are written as things happen).
async fn wait_for_line(path: &Path, needle: &str) -> String {
    for _ in 0..100 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} has no line with {needle}:\n{}", path.display(), std::fs::read_to_string(path).unwrap_or_default())
}

/// Every line of `text` is JSON; every one that names the request or its trace
/// names the request, the tenant and the trace; returns the messages of those lines.
fn request_lines(component: &str, text: &str, request_id: &str, tenant: &str, trace_id: &str) -> Vec<String> {
    let mut messages = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{component}: not JSON ({e}): {line}"));
        if !(line.contains(request_id) || line.contains(trace_id)) {
            continue;
        }
        assert_eq!(v["request_id"], request_id, "{component}: {line}");
        assert_eq!(v["tenant"], tenant, "{component}: {line}");
        assert_eq!(v["trace_id"], trace_id, "{component}: {line}");
        messages.push(v["message"].as_str().unwrap_or_default().to_owned());
    }
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_request_is_one_trace_across_the_processes() {
    let s = Traced::start(200).await;
    let (trace_id, client_span) = (random_hex(16), random_hex(8));
    let request_id = s.send(&trace_id, &client_span).await;

    let trace = s.jaeger.wait_for(&trace_id, &all_span_names(), Duration::from_secs(30)).await.unwrap();
    assert_one_request_trace(&trace, &trace_id, &client_span);

    // Each component's log about the request carries the request, the tenant and the trace.
    for (component, message) in
        [("api-server", "request finished"), ("auth-cache", "allowed"), ("worker", "job finished")]
    {
        let text = wait_for_line(&s.log(component), message).await;
        let messages = request_lines(component, &text, &request_id, &s.tenant.id, &trace_id);
        assert!(messages.iter().any(|m| m == message), "{component}: {messages:?} lacks {message:?}\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_still_buffered_are_exported_when_the_processes_stop() {
    // An hour between exports: whatever arrives was flushed by the stop.
    let mut s = Traced::start(3_600_000).await;
    let (trace_id, client_span) = (random_hex(16), random_hex(8));
    s.send(&trace_id, &client_span).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(s.jaeger.trace(&trace_id).await.unwrap().is_none(), "nothing is exported before the stop");

    assert!(s.api.terminate(), "api-server exits 0 on SIGTERM");
    assert!(s.worker.terminate(), "worker exits 0 on SIGTERM");
    assert!(s.auth.terminate(), "auth-cache exits 0 on SIGTERM");
    let trace = s.jaeger.wait_for(&trace_id, &all_span_names(), Duration::from_secs(10)).await.unwrap();
    assert_one_request_trace(&trace, &trace_id, &client_span);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_usage_record_is_logged_and_traced_with_its_request() {
    use contracts::{ProblemKind, usage::UsageRecord, usage::streams};
    let jaeger =
        Jaeger::start().await.expect("Jaeger v2: run scripts/install-observability-tools.sh or set JAEGER_BIN");
    let nats = NatsServer::start().expect("nats-server");
    let logs = tempfile::tempdir().expect("log directory");
    let log = logs.path().join("usage-aggregator.log");
    let launch = Launch::default()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &jaeger.otlp_endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .log_to(log.clone());
    let _agg = Aggregator::launch(&nats.client_url, "tracing-test-token", &[], &launch).expect("usage-aggregator");

    // A record as a worker would publish it, but for a tenant id no record may have.
    let (trace_id, parent) = (random_hex(16), random_hex(8));
    let request_id = format!("req-{}", random_hex(8));
    let record =
        UsageRecord { tenant: "not a tenant".into(), ..UsageRecord::refused(&request_id, ProblemKind::Internal) };
    let client = nats.client_as(contracts::access::Role::Worker).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    js.get_or_create_stream(streams::usage_stream(1)).await.expect("USAGE stream");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(contracts::job::H_MSG_ID, request_id.as_str());
    headers.insert(contracts::job::H_TRACEPARENT, format!("00-{trace_id}-{parent}-01").as_str());
    js.publish_with_headers(streams::USAGE_SUBJECT, headers, record.encode().into())
        .await
        .expect("publish")
        .await
        .expect("ack");

    let text = wait_for_line(&log, "dead-letter").await;
    let messages = request_lines("usage-aggregator", &text, &request_id, "not a tenant", &trace_id);
    assert!(messages.iter().any(|m| m.contains("dead-letter")), "{messages:?}\n{text}");

    let trace = jaeger.wait_for(&trace_id, &["dead_letter"], Duration::from_secs(30)).await.unwrap();
    let spans = spans(&trace);
    let dead = spans.iter().find(|s| s.name() == "dead_letter").expect("dead_letter span");
    assert_eq!(dead.service, "usage-aggregator");
    assert_eq!(dead.parent(), Some(parent.as_str()), "a child of the span that published the record");
}
