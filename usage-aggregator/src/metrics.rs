//! What the aggregator measures.

use contracts::usage::record::UsageRecord;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use std::sync::atomic::AtomicU64;

#[derive(Clone)]
pub struct Metrics {
    pub aggregated: Counter,
    pub already_counted: Counter,
    pub dead_lettered: Counter,
    pub conflicts: Counter,
    pub failed_batches: Counter,
    pub lag: Gauge,
    pub unacked_batches: Gauge,
    pub watermark: Gauge<f64, AtomicU64>,
    pub batch_duration: Histogram,
    pub archived_objects: Counter,
    /// Requests per tenant as the rollups counted them (each once, however
    /// often it was delivered): the per-tenant view of dashboards and the
    /// quota alert. Its cardinality is tenants × the statuses they saw.
    pub tenant_requests: Family<TenantLabels, Counter>,
    /// What NATS refused this process; shared with the connection's event callback.
    pub nats_refusals: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub tenant: String,
    pub status: u16,
    /// The problem slug of a refused or failed request; empty for an answer with an image.
    pub problem: String,
}

impl Metrics {
    pub fn tenant_request(&self, r: &UsageRecord) {
        let labels =
            TenantLabels { tenant: r.tenant.clone(), status: r.status, problem: r.problem.clone().unwrap_or_default() };
        self.tenant_requests.get_or_create(&labels).inc();
    }

    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            aggregated: Counter::default(),
            already_counted: Counter::default(),
            dead_lettered: Counter::default(),
            conflicts: Counter::default(),
            failed_batches: Counter::default(),
            lag: Gauge::default(),
            unacked_batches: Gauge::default(),
            watermark: Gauge::default(),
            batch_duration: Histogram::new(telemetry::metrics::latency_buckets()),
            archived_objects: Counter::default(),
            tenant_requests: Family::default(),
            nats_refusals: contracts::connect::register_refusals(registry),
        };
        let r = registry.sub_registry_with_prefix("usage");
        r.register("records_aggregated", "Records counted into the rollups", m.aggregated.clone());
        r.register(
            "records_already_counted",
            "Records skipped because their rollup already contained them (redelivery, a second replica)",
            m.already_counted.clone(),
        );
        r.register(
            "records_dead_lettered",
            "Malformed records moved to the dead-letter subject",
            m.dead_lettered.clone(),
        );
        r.register("rollup_conflicts", "Rollup writes redone after a concurrent write", m.conflicts.clone());
        r.register("failed_batches", "Batches left unacked for redelivery after an error", m.failed_batches.clone());
        r.register("lag_records", "Records in USAGE not yet delivered to any aggregator", m.lag.clone());
        r.register(
            "unacked_batches",
            "Batches whose rollups are written but whose records are not acked yet",
            m.unacked_batches.clone(),
        );
        r.register("watermark_seconds", "Unix time before which every request is counted", m.watermark.clone());
        r.register("batch_duration_seconds", "Time to count and acknowledge one batch", m.batch_duration.clone());
        r.register("archived_objects", "Per-tenant daily archive objects written", m.archived_objects.clone());
        r.register(
            "tenant_requests",
            "Requests counted into the rollups, by tenant, status and problem",
            m.tenant_requests.clone(),
        );
        m
    }
}
