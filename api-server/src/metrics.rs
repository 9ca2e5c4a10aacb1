//! What the api-server measures.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShedLabel {
    /// `in_flight_cap` or `over_budget`.
    pub reason: String,
}

#[derive(Clone)]
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<RouteLabel, Histogram>,
    pub in_flight: Gauge,
    pub queue_wait: Histogram,
    pub worker_process: Histogram,
    pub jobs_published: Counter,
    pub deadline_exceeded: Counter,
    pub shed: Family<ShedLabel, Counter>,
    pub late_results: Counter,
    pub usage_flushed: Counter,
    pub usage_dropped: Counter,
    /// Round trip of a verification to an auth-cache.
    pub auth_verify: Histogram,
    /// Requests whose bearer key was accepted earlier on the same connection (no round trip).
    pub auth_session_reused: Counter,
    pub auth_refused: Family<ProblemLabel, Counter>,
    /// What NATS refused this process; shared with the connection's event callback.
    pub nats_refusals: Counter,
    /// Workers' fetches of staged bodies, by result (`ok`, `gone`).
    pub staged_fetches: Family<ResultLabel, Counter>,
    /// Bytes of request bodies held in memory (staged or being received).
    pub staged_bytes: Gauge,
    /// The JetStream cluster's clock minus this server's, as last measured (seconds).
    pub clock_offset: Gauge<f64, std::sync::atomic::AtomicU64>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProblemLabel {
    pub problem: String,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(telemetry::metrics::latency_buckets())),
            in_flight: Gauge::default(),
            queue_wait: Histogram::new(telemetry::metrics::latency_buckets()),
            worker_process: Histogram::new(telemetry::metrics::latency_buckets()),
            jobs_published: Counter::default(),
            deadline_exceeded: Counter::default(),
            shed: Family::default(),
            late_results: Counter::default(),
            usage_flushed: Counter::default(),
            usage_dropped: Counter::default(),
            auth_session_reused: Counter::default(),
            auth_verify: Histogram::new([50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 25e-3, 100e-3]),
            auth_refused: Family::default(),
            nats_refusals: contracts::connect::register_refusals(registry),
            staged_fetches: Family::default(),
            staged_bytes: Gauge::default(),
            clock_offset: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("api");
        r.register("http_requests", "HTTP requests by route and status", m.requests.clone());
        r.register("http_request_duration_seconds", "HTTP request latency by route", m.duration.clone());
        r.register("resize_in_flight", "Resize requests in progress", m.in_flight.clone());
        r.register("queue_wait_seconds", "Queue wait reported by workers", m.queue_wait.clone());
        r.register("worker_process_seconds", "Processing time reported by workers", m.worker_process.clone());
        r.register("jobs_published", "Jobs accepted by JetStream", m.jobs_published.clone());
        r.register(
            "deadline_exceeded",
            "Requests answered 503 because their deadline passed",
            m.deadline_exceeded.clone(),
        );
        r.register("shed", "Requests refused with 503 at the edge, by reason", m.shed.clone());
        r.register("late_results", "Results that arrived after their request was answered", m.late_results.clone());
        r.register(
            "usage_records_flushed",
            "Usage records of refused requests published to USAGE",
            m.usage_flushed.clone(),
        );
        r.register(
            "usage_records_dropped",
            "Usage records lost because JetStream stayed unreachable",
            m.usage_dropped.clone(),
        );
        r.register("auth_verify_seconds", "Round trip of a verification to an auth-cache", m.auth_verify.clone());
        r.register(
            "auth_session_reused",
            "Requests authenticated by a bearer key already accepted on the same connection",
            m.auth_session_reused.clone(),
        );
        r.register("staged_fetches", "Fetches of staged bodies by workers, by result", m.staged_fetches.clone());
        r.register("staged_bytes", "Bytes of request bodies held in memory", m.staged_bytes.clone());
        r.register(
            "clock_offset_seconds",
            "The JetStream cluster's clock minus this server's; beyond 1 s the server goes by the cluster's",
            m.clock_offset.clone(),
        );
        r.register("auth_refused", "Requests refused by authentication, rate limit or quota", m.auth_refused.clone());
        m
    }
}
