//! What the worker measures.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `ok` or the problem slug.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok`, or why the fetch failed (`gone`, `mismatch`, `transport`).
    pub result: String,
}

#[derive(Clone)]
pub struct Metrics {
    pub jobs: Family<OutcomeLabel, Counter>,
    pub expired: Counter,
    pub redelivered: Counter,
    pub in_flight: Gauge,
    pub queue_wait: Histogram,
    pub process: Histogram,
    /// What NATS refused this process; shared with the connection's event callback.
    pub nats_refusals: Counter,
    /// Fetches of staged inputs from api-servers, by result.
    pub staged_fetches: Family<ResultLabel, Counter>,
    /// Time to fetch a staged input.
    pub fetch: Histogram,
    /// The JetStream cluster's clock minus this process's, as last measured (seconds).
    pub clock_offset: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            jobs: Family::default(),
            expired: Counter::default(),
            redelivered: Counter::default(),
            in_flight: Gauge::default(),
            queue_wait: Histogram::new(telemetry::metrics::latency_buckets()),
            process: Histogram::new(telemetry::metrics::latency_buckets()),
            nats_refusals: contracts::connect::register_refusals(registry),
            staged_fetches: Family::default(),
            fetch: Histogram::new(telemetry::metrics::latency_buckets()),
            clock_offset: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("worker");
        r.register("jobs", "Jobs finished, by outcome", m.jobs.clone());
        r.register("jobs_expired", "Jobs dropped because their deadline had passed", m.expired.clone());
        r.register(
            "jobs_redelivered",
            "Jobs received more than once (a worker died or stalled)",
            m.redelivered.clone(),
        );
        r.register(
            "clock_offset_seconds",
            "The JetStream cluster's clock minus this worker's; beyond 1 s deadlines are judged by the cluster's",
            m.clock_offset.clone(),
        );
        r.register("jobs_in_flight", "Jobs being processed now", m.in_flight.clone());
        r.register("queue_wait_seconds", "Time from publish to the start of processing", m.queue_wait.clone());
        r.register("process_seconds", "Decode, resize and encode time", m.process.clone());
        r.register("staged_fetches", "Fetches of staged inputs from api-servers, by result", m.staged_fetches.clone());
        r.register("fetch_seconds", "Time to fetch a staged input from its api-server", m.fetch.clone());
        m
    }
}
