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
        };
        let r = registry.sub_registry_with_prefix("worker");
        r.register("jobs", "Jobs finished, by outcome", m.jobs.clone());
        r.register("jobs_expired", "Jobs dropped because their deadline had passed", m.expired.clone());
        r.register(
            "jobs_redelivered",
            "Jobs received more than once (a worker died or stalled)",
            m.redelivered.clone(),
        );
        r.register("jobs_in_flight", "Jobs being processed now", m.in_flight.clone());
        r.register("queue_wait_seconds", "Time from publish to the start of processing", m.queue_wait.clone());
        r.register("process_seconds", "Decode, resize and encode time", m.process.clone());
        m
    }
}
