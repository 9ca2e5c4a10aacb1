//! The auth-cache's Prometheus metrics.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabel {
    pub verdict: String,
}

#[derive(Clone)]
pub struct Metrics {
    pub verifications: Family<VerdictLabel, Counter>,
    pub verify_seconds: Histogram,
    /// Seconds since the replica was last confirmed to hold the bucket's latest revision.
    pub replication_lag: Gauge<f64, AtomicU64>,
    /// Revisions the bucket has that the replica has not applied yet.
    pub revisions_behind: Gauge,
    /// Seconds from a record's write in the bucket to its arrival here (last change).
    pub propagation: Histogram,
    pub tenants: Gauge,
    pub keys: Gauge,
    pub rejected_records: Counter,
    /// What NATS refused this process; shared with the connection's event callback.
    pub nats_refusals: Counter,
}

impl Metrics {
    pub fn register(r: &mut Registry) -> Self {
        let m = Self {
            verifications: Family::default(),
            verify_seconds: Histogram::new([25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 10e-3]),
            replication_lag: Gauge::default(),
            revisions_behind: Gauge::default(),
            propagation: Histogram::new(telemetry::metrics::latency_buckets()),
            tenants: Gauge::default(),
            keys: Gauge::default(),
            rejected_records: Counter::default(),
            nats_refusals: contracts::connect::register_refusals(r),
        };
        let r = r.sub_registry_with_prefix("auth_cache");
        r.register("verifications", "Verification answers by verdict", m.verifications.clone());
        r.register("verify_seconds", "Time to decide one verification request", m.verify_seconds.clone());
        r.register(
            "replication_lag_seconds",
            "Seconds since the replica was last confirmed current with IDENTITY",
            m.replication_lag.clone(),
        );
        r.register("revisions_behind", "IDENTITY revisions not yet applied", m.revisions_behind.clone());
        r.register("propagation_seconds", "Write-to-replica delay of IDENTITY changes", m.propagation.clone());
        r.register("tenants", "Tenants in the replica", m.tenants.clone());
        r.register("keys", "Keys in the replica", m.keys.clone());
        r.register("rejected_records", "IDENTITY values that could not be read", m.rejected_records.clone());
        m
    }
}
