//! Prometheus metrics of the reconcile loop and the HTTP endpoints that serve
//! them together with the health probes.

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use prometheus_client::encoding::{EncodeLabelSet, text::encode};
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// A failed round: which fleet, and the cause as a static label (the error's kind, not its text).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub namespace: String,
    pub name: String,
    pub kind: String,
}

/// One ResizeDeployment.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FleetLabels {
    pub namespace: String,
    pub name: String,
}

pub struct Metrics {
    pub reconciles: Counter,
    pub errors: Family<ErrorLabels, Counter>,
    pub duration: Histogram,
    /// 1 while this replica holds the leader Lease, so a dashboard shows which one acts.
    pub leader: Gauge,
    /// The worker count the capacity math chose, per fleet: the scaling decision over time.
    pub desired_workers: Family<FleetLabels, Gauge>,
    /// 1 while the fleet's JOBS stream can be read.
    pub queue_healthy: Family<FleetLabels, Gauge>,
    /// Times the JOBS stream's raft leader was seen to change between two rounds.
    pub queue_leader_changes: Family<FleetLabels, Counter>,
    /// Browned-out JOBS leaders the operator asked to step down.
    pub queue_step_downs: Family<FleetLabels, Counter>,
    /// Jobs pending or being processed at the last reading: the scaler's input.
    pub queue_backlog: Family<FleetLabels, Gauge>,
    /// Arrival rate between the last two readings, jobs per second.
    pub arrival_rate: Family<FleetLabels, Gauge<f64, AtomicU64>>,
    /// What the SLA leaves for waiting in the queue (p99 target minus one service time).
    pub drain_budget_seconds: Family<FleetLabels, Gauge<f64, AtomicU64>>,
    /// Worker pods ready at the end of the round, beside `desired_workers`.
    pub ready_workers: Family<FleetLabels, Gauge>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        // Reconciles are a handful of API round trips: milliseconds to a few seconds.
        let duration = Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]);
        let leader = Gauge::default();
        let desired_workers = Family::<FleetLabels, Gauge>::default();
        let queue_healthy = Family::<FleetLabels, Gauge>::default();
        let queue_leader_changes = Family::<FleetLabels, Counter>::default();
        let queue_step_downs = Family::<FleetLabels, Counter>::default();
        let queue_backlog = Family::<FleetLabels, Gauge>::default();
        let arrival_rate = Family::<FleetLabels, Gauge<f64, AtomicU64>>::default();
        let drain_budget_seconds = Family::<FleetLabels, Gauge<f64, AtomicU64>>::default();
        let ready_workers = Family::<FleetLabels, Gauge>::default();
        let mut registry = Registry::with_prefix("resizer_operator");
        registry.register("reconciles", "Reconcile rounds started", reconciles.clone());
        registry.register("reconcile_errors", "Reconcile rounds that failed, by cause", errors.clone());
        registry.register("reconcile_duration_seconds", "Time spent in one reconcile round", duration.clone());
        registry.register("leader", "1 while this replica holds the leader lease", leader.clone());
        registry.register("desired_workers", "Worker replicas chosen by the capacity math", desired_workers.clone());
        registry.register("queue_healthy", "1 while the JOBS stream can be read", queue_healthy.clone());
        registry.register(
            "queue_leader_changes",
            "JOBS stream leader changes seen between rounds",
            queue_leader_changes.clone(),
        );
        registry.register("queue_step_downs", "Browned-out JOBS leaders asked to step down", queue_step_downs.clone());
        registry.register("queue_backlog", "Jobs pending or in progress at the last reading", queue_backlog.clone());
        registry.register("arrival_rate", "Jobs per second between the last two readings", arrival_rate.clone());
        registry.register(
            "drain_budget_seconds",
            "Queue wait the SLA allows: the p99 target minus one service time",
            drain_budget_seconds.clone(),
        );
        registry.register("ready_workers", "Worker pods ready at the end of the round", ready_workers.clone());
        Self {
            reconciles,
            errors,
            duration,
            leader,
            desired_workers,
            queue_healthy,
            queue_leader_changes,
            queue_step_downs,
            queue_backlog,
            arrival_rate,
            drain_budget_seconds,
            ready_workers,
            registry,
        }
    }
}

impl Metrics {
    /// Counts a round and times it until the returned guard drops.
    pub fn start(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer { metrics: self, started: Instant::now() }
    }

    pub fn error(&self, fleet: &FleetLabels, e: &crate::error::Error) {
        let labels = ErrorLabels {
            namespace: fleet.namespace.clone(),
            name: fleet.name.clone(),
            kind: e.metric_label().to_owned(),
        };
        self.errors.get_or_create(&labels).inc();
    }

    /// Creates a fleet's counters at zero (each error kind, leader changes,
    /// step-downs), so `increase()` over them reads "none" rather than "no data".
    pub fn fleet_observed(&self, fleet: &FleetLabels) {
        for kind in crate::error::Error::METRIC_LABELS {
            let labels =
                ErrorLabels { namespace: fleet.namespace.clone(), name: fleet.name.clone(), kind: kind.into() };
            drop(self.errors.get_or_create(&labels));
        }
        drop(self.queue_leader_changes.get_or_create(fleet));
        drop(self.queue_step_downs.get_or_create(fleet));
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    started: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics.duration.observe(self.started.elapsed().as_secs_f64());
    }
}

/// What the HTTP endpoints read.
#[derive(Clone)]
pub struct Health {
    pub metrics: Arc<Metrics>,
    /// Set once the Kubernetes client and the lease manager exist; a standby replica is ready too.
    pub ready: Arc<AtomicBool>,
}

pub fn router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], h.metrics.encode())
}

async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    if h.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counts_and_errors() {
        let m = Metrics::default();
        drop(m.start());
        let fleet = FleetLabels { namespace: "media".into(), name: "photos".into() };
        m.error(&fleet, &crate::error::Error::MissingObjectKey("metadata.uid"));
        m.desired_workers.get_or_create(&fleet).set(38);
        let text = m.encode();
        assert!(text.contains("resizer_operator_desired_workers{namespace=\"media\",name=\"photos\"} 38"), "{text}");
        assert!(text.contains("resizer_operator_reconciles_total 1"), "{text}");
        assert!(
            text.contains(
                "resizer_operator_reconcile_errors_total{namespace=\"media\",name=\"photos\",kind=\"missing_key\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("resizer_operator_reconcile_duration_seconds_count 1"), "{text}");
    }
}
