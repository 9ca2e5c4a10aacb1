//! One reconcile round, in its phases: validate the spec, read the queue,
//! decide the worker count, apply every child and prune the ones the spec
//! dropped ([`crate::apply`]), look at the pods that cannot run
//! ([`crate::pods`]), and write what was observed and decided into the status
//! ([`crate::conditions`]).

use crate::apply;
use crate::capacity::{self, QueueLoad, ScaleReason};
use crate::conditions::{self, Reason, Type, set};
use crate::crd::{CapacityStatus, ComponentsStatus, ResizeDeployment, ResizeDeploymentStatus};
use crate::desired::{self, Component, Inputs, MANAGER, Replicas};
use crate::error::Error;
use crate::events::{self, action, reason};
use crate::metrics::{FleetLabels, Metrics};
use crate::pods;
use crate::queue::{Queue, QueueAccess, QueueError, QueueSample};
use crate::queue_leader;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{EventType, Recorder, Reporter};
use kube::runtime::{PredicateConfig, WatchStreamExt, predicates, reflector, watcher};
use kube::{Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, instrument, warn};

/// How often the queue is sampled when nothing else triggers a round.
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(15);

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub queue: Arc<dyn Queue>,
    /// Overrides the in-cluster NATS address, for an operator running outside the cluster.
    pub nats_url: Option<String>,
    /// The namespace the operator's pods run in, which each fleet's NATS policy admits.
    pub operator_namespace: String,
    /// The operator's own OTLP endpoint, passed to fleets whose spec names none.
    pub otlp_endpoint: Option<String>,
}

impl Context {
    pub fn new(
        client: Client,
        identity: &str,
        metrics: Arc<Metrics>,
        queue: Arc<dyn Queue>,
        operator_namespace: &str,
    ) -> Self {
        let reporter = Reporter { controller: MANAGER.into(), instance: Some(identity.into()) };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            queue,
            nats_url: None,
            operator_namespace: operator_namespace.into(),
            otlp_endpoint: None,
        }
    }
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    // Only children carry this label, so the caches hold the operator's objects and nothing else.
    let owned = watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
    // Status writes change the object too; reacting to them would turn every round into the next.
    // Spec changes bump the generation; the periodic requeue drives the queue sampling.
    let (reader, writer) = reflector::store();
    let rds = watcher(Api::<ResizeDeployment>::all(client.clone()), watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, PredicateConfig::default());
    // Pods are not watched: they belong to ReplicaSets, not to the resource, and
    // their churn in a large fleet would mean a round per pod event. Workload
    // status changes and the periodic requeue bring their news in time.
    Controller::for_stream(rds, reader)
        .owns(Api::<Deployment>::all(client.clone()), owned.clone())
        .owns(Api::<StatefulSet>::all(client.clone()), owned.clone())
        .owns(Api::<Service>::all(client.clone()), owned.clone())
        .owns(Api::<ConfigMap>::all(client.clone()), owned.clone())
        .owns(Api::<ServiceAccount>::all(client.clone()), owned.clone())
        .owns(Api::<PodDisruptionBudget>::all(client.clone()), owned.clone())
        .owns(Api::<NetworkPolicy>::all(client.clone()), owned.clone())
        .owns(Api::<Ingress>::all(client.clone()), owned)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(object = %obj.name, "reconciled"),
                Err(e) => warn!(error = %e, "reconcile failed"),
            }
        })
        .await;
}

pub fn error_policy(rd: Arc<ResizeDeployment>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(resource = %rd.name_any(), %error, "reconcile failed");
    let fleet = FleetLabels { namespace: rd.namespace().unwrap_or_default(), name: rd.name_any() };
    ctx.metrics.error(&fleet, error);
    Action::requeue(Duration::from_secs(5))
}

#[instrument(skip(rd, ctx), fields(namespace = rd.namespace(), name = rd.name_any()))]
pub async fn reconcile(rd: Arc<ResizeDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.start();
    let ns = rd.namespace().ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let client = &ctx.client;
    let now = jiff::Timestamp::now();
    let previous = rd.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    status.observed_generation = rd.metadata.generation;

    // Validate.
    let problems = rd.spec.problems();
    if !problems.is_empty() {
        // Children stay as they were: a contradictory spec must never produce broken workloads.
        let message = problems.join("; ");
        set(&mut status, Type::Ready, false, Reason::InvalidSpec, &message, now);
        set(&mut status, Type::Degraded, true, Reason::InvalidSpec, &message, now);
        set(&mut status, Type::Progressing, false, Reason::InvalidSpec, "waiting for a valid spec", now);
        if conditions::changed(&previous, &status, Type::Degraded) {
            let r = Reason::InvalidSpec.to_string();
            events::publish(&ctx, &rd, EventType::Warning, &r, action::VALIDATE, message).await;
        }
        apply::patch_status(client, &rd, &status).await?;
        return Ok(Action::requeue(Duration::from_secs(300)));
    }

    // Credentials first: the servers' users and certificate, and the operator's own key.
    let credentials = apply::ensure_credentials(client, &rd, &ns).await?;

    // Read the queue and what runs.
    let url = ctx.nats_url.clone().unwrap_or_else(|| desired::nats_url(&rd));
    if ctx.nats_url.is_none() {
        let seed = credentials.get(&crate::credentials::seed_key(contracts::access::Role::Operator));
        let access = QueueAccess {
            nkey_seed: seed.cloned().unwrap_or_default(),
            ca_pem: credentials.get(crate::credentials::CA_CERT).cloned(),
        };
        ctx.queue.authorize(&url, access);
    }
    let sample = ctx.queue.observe(&url, rd.spec.queue.replicas as usize).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let worker_name = Component::Worker.name(&rd);
    let current = deployments.get_opt(&worker_name).await?.and_then(|d| d.spec.replicas);
    let externally_scaled = hpa_targets(client, &ns, &worker_name).await?;

    // Decide the worker count.
    let cap = &rd.spec.capacity;
    let sla = &rd.spec.sla;
    let base = capacity::baseline(sla, cap);
    let drain_budget = capacity::drain_budget_secs(sla, cap);
    let mut cap_status = previous.capacity.clone().unwrap_or_default();
    cap_status.target_rate = sla.target_requests_per_second;
    cap_status.headroom = cap.headroom;
    cap_status.conversions_per_core_per_second = cap.conversions_per_core_per_second;
    cap_status.cores_per_worker = cap.cores_per_worker;
    cap_status.drain_budget_seconds = drain_budget;
    cap_status.baseline_workers = base.workers;
    cap_status.api_replicas = base.api_replicas;

    let (workers, decision) = match &sample {
        Ok(s) => {
            let d = scale_from_sample(&rd, &mut cap_status, &mut status, s, current, now.as_second());
            let msg = format!("JOBS leader {}", leader_of(s));
            set(&mut status, Type::QueueHealthy, true, Reason::Reachable, &msg, now);
            queue_leader::watch(&ctx, &rd, &url, s, &mut status, now).await;
            d
        }
        Err(e) => {
            // Without a reading there is nothing to scale on: keep what runs, or start at the baseline.
            let unhealthy = match e {
                QueueError::Unreachable { .. } => Reason::Unreachable,
                QueueError::JetStream(_) => Reason::JetStreamError,
            };
            set(&mut status, Type::QueueHealthy, false, unhealthy, &e.to_string(), now);
            // An old leader name in `kubectl get rd` would read as current; the Lease keeps the last one seen.
            status.queue.leader = None;
            if conditions::changed(&previous, &status, Type::QueueHealthy) {
                let (r, a) = (reason::QUEUE_UNREACHABLE, action::OBSERVE_QUEUE);
                events::publish(&ctx, &rd, EventType::Warning, r, a, e.to_string()).await;
            }
            let d = current.unwrap_or(base.workers.clamp(cap.min_workers, cap.max_workers));
            cap_status.decision = ScaleReason::QueueUnavailable.as_str().into();
            cap_status.recommended_workers = d;
            cap_status.desired_workers = d;
            (d, ScaleReason::QueueUnavailable)
        }
    };

    // Announced once the apply has gone through, not before.
    let mut scaled = None;
    let why = Reason::Decision(decision);
    if externally_scaled {
        let msg = "an HorizontalPodAutoscaler owns the worker count";
        set(&mut status, Type::Scaling, false, Reason::ExternallyScaled, msg, now);
    } else if current.is_some_and(|c| c != workers) {
        let msg = format!("workers {} → {workers} ({})", current.unwrap_or_default(), decision.as_str());
        set(&mut status, Type::Scaling, true, why, &msg, now);
        scaled = Some(msg);
    } else {
        set(&mut status, Type::Scaling, false, why, &format!("{workers} workers"), now);
    }
    status.capacity = Some(cap_status);

    // Apply, then prune.
    let replicas = Replicas { api: base.api_replicas, workers: (!externally_scaled).then_some(workers) };
    let monitoring = crate::monitoring::detect(client).await?;
    let inputs = Inputs {
        replicas,
        operator_namespace: &ctx.operator_namespace,
        monitoring,
        otlp_endpoint: ctx.otlp_endpoint.as_deref(),
        credentials: &credentials,
    };
    let children = desired::children(&rd, &inputs)?;
    let applied = match apply::apply_all(client, &ns, &children).await {
        Ok(applied) => applied,
        Err(e) => {
            return Err(
                refused(&ctx, &rd, &previous, status, Reason::ApplyFailed, action::APPLY_CHILDREN, e, now).await
            );
        }
    };
    let pruned = match apply::prune_all(client, &rd, &ns, &children).await {
        Ok(pruned) => pruned,
        Err(e) => {
            return Err(
                refused(&ctx, &rd, &previous, status, Reason::PruneFailed, action::PRUNE_CHILDREN, e, now).await
            );
        }
    };
    for gone in pruned {
        let note = format!("deleted {gone}: no longer in the spec");
        events::publish(&ctx, &rd, EventType::Normal, reason::PRUNED, action::PRUNE_CHILDREN, note).await;
    }
    if let Some(msg) = scaled {
        events::publish(&ctx, &rd, EventType::Normal, reason::SCALED, action::SCALE_WORKERS, msg).await;
    }
    if previous.observed_generation != rd.metadata.generation {
        let note = format!("applied generation {}", rd.metadata.generation.unwrap_or_default());
        events::publish(&ctx, &rd, EventType::Normal, reason::APPLIED, action::APPLY_CHILDREN, note).await;
    }
    let fleet = FleetLabels { namespace: ns.clone(), name: rd.name_any() };
    if let Ok(s) = &sample
        && queue_leader::record(client, &rd, &ns, s, now).await?
    {
        ctx.metrics.queue_leader_changes.get_or_create(&fleet).inc();
    }

    // Look at pods that cannot run. Only a diagnosis: without it the round still stands.
    let troubles = match pods::list(client, &ns, &rd).await {
        Ok(list) => pods::diagnose_all(&list),
        Err(e) => {
            warn!(error = %e, "listing the fleet's pods");
            Vec::new()
        }
    };

    // Report.
    let c = &applied;
    let all = [c.api, c.worker, c.queue, c.auth_cache, c.usage_aggregator];
    let rolled_out = all.iter().all(|r| r.ready >= r.desired);
    let waiting = not_ready(c);
    let queue_ok = sample.is_ok();
    if rolled_out {
        set(&mut status, Type::Progressing, false, Reason::RolloutComplete, "every component is ready", now);
    } else {
        set(&mut status, Type::Progressing, true, Reason::RollingOut, &waiting, now);
    }
    set(&mut status, Type::Degraded, false, Reason::AsExpected, "", now);
    // Pods that cannot run come first: they say what to fix, where "not ready" only says what waits.
    if let Some(first) = troubles.first() {
        let msg = troubles.iter().map(|t| t.message.as_str()).collect::<Vec<_>>().join("; ");
        set(&mut status, Type::Ready, false, first.reason, &msg, now);
    } else {
        match (rolled_out, queue_ok) {
            (true, true) => set(&mut status, Type::Ready, true, Reason::Ready, "the fleet serves its SLA", now),
            (false, _) => set(&mut status, Type::Ready, false, Reason::ComponentsNotReady, &waiting, now),
            (true, false) => {
                set(&mut status, Type::Ready, false, Reason::QueueUnavailable, "the queue cannot be read", now)
            }
        }
    }
    if conditions::reason_changed(&previous, &status, Type::Ready) {
        for t in &troubles {
            let r = t.reason.to_string();
            events::publish(&ctx, &rd, EventType::Warning, &r, action::INSPECT_PODS, t.message.clone()).await;
        }
    }
    status.components = applied;
    apply::patch_status(client, &rd, &status).await?;
    let m = &ctx.metrics;
    m.desired_workers.get_or_create(&fleet).set(i64::from(workers));
    m.queue_healthy.get_or_create(&fleet).set(i64::from(queue_ok));
    m.ready_workers.get_or_create(&fleet).set(i64::from(status.components.worker.ready));
    m.drain_budget_seconds.get_or_create(&fleet).set(drain_budget);
    m.fleet_observed(&fleet);
    if let Some(cap) = &status.capacity {
        m.queue_backlog.get_or_create(&fleet).set(cap.backlog.unwrap_or_default());
        m.arrival_rate.get_or_create(&fleet).set(cap.observed_arrival_rate.unwrap_or_default());
    }
    info!(workers, api = base.api_replicas, queue_ok, "reconciled");
    Ok(Action::requeue(SAMPLE_PERIOD))
}

/// A write the apiserver refused: said on the resource (Degraded, Ready and
/// an Event), not only in the operator's log. Returns the error, for
/// `error_policy` to retry the round.
#[allow(clippy::too_many_arguments)]
async fn refused(
    ctx: &Context,
    rd: &ResizeDeployment,
    previous: &ResizeDeploymentStatus,
    mut status: ResizeDeploymentStatus,
    reason: Reason,
    action: &str,
    e: Error,
    now: jiff::Timestamp,
) -> Error {
    let msg = e.to_string();
    set(&mut status, Type::Degraded, true, reason, &msg, now);
    set(&mut status, Type::Ready, false, reason, &msg, now);
    if conditions::changed(previous, &status, Type::Degraded) {
        events::publish(ctx, rd, EventType::Warning, &reason.to_string(), action, msg).await;
    }
    if let Err(status_err) = apply::patch_status(&ctx.client, rd, &status).await {
        warn!(error = %status_err, "recording the refused write in the status");
    }
    e
}

/// Feeds one queue reading into the scaling decision and returns the worker count and why.
fn scale_from_sample(
    rd: &ResizeDeployment,
    cap_status: &mut CapacityStatus,
    status: &mut ResizeDeploymentStatus,
    s: &QueueSample,
    current: Option<i32>,
    now: i64,
) -> (i32, ScaleReason) {
    let (sla, cap) = (&rd.spec.sla, &rd.spec.capacity);
    let previous = rd.status.clone().unwrap_or_default();
    let prev_reading = previous
        .queue
        .last_sequence
        .map(|q| q.max(0) as u64)
        .zip(previous.queue.sampled_at.as_deref().and_then(parse_secs));
    let rate = capacity::arrival_rate(prev_reading, s.last_sequence, now);
    let backlog = s.num_pending + s.num_ack_pending;
    // No rate yet (first reading): size for the declared target until there is one.
    let recommendation = match rate {
        Some(arrival_rate) => capacity::queue_recommendation(QueueLoad { arrival_rate, backlog }, sla, cap),
        None => cap_status.baseline_workers,
    };
    let recent = previous.capacity.map(|c| c.recent).unwrap_or_default();
    let decision = capacity::decide(current, recommendation, now, &recent, cap);
    status.queue.leader = s.leader.clone();
    status.queue.num_pending = Some(saturate(s.num_pending));
    status.queue.num_ack_pending = Some(saturate(s.num_ack_pending));
    status.queue.last_sequence = Some(saturate(s.last_sequence));
    status.queue.sampled_at = Some(now.to_string());
    cap_status.observed_arrival_rate = rate;
    cap_status.backlog = Some(saturate(backlog));
    cap_status.queue_workers = rate.map(|_| recommendation);
    cap_status.recommended_workers = decision.recommended;
    cap_status.desired_workers = decision.desired;
    cap_status.decision = decision.reason.as_str().into();
    cap_status.recent = decision.recent;
    (decision.desired, decision.reason)
}

/// Kubernetes schemas know signed integers only; a count beyond i64 is not a real reading anyway.
fn saturate(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn parse_secs(s: &str) -> Option<i64> {
    s.parse().ok()
}

fn leader_of(s: &QueueSample) -> &str {
    s.leader.as_deref().unwrap_or("unknown")
}

fn not_ready(c: &ComponentsStatus) -> String {
    let named = [
        (Component::Api, c.api),
        (Component::Worker, c.worker),
        (Component::Queue, c.queue),
        (Component::AuthCache, c.auth_cache),
        (Component::UsageAggregator, c.usage_aggregator),
    ];
    let waiting: Vec<String> = named
        .iter()
        .filter(|(_, r)| r.ready < r.desired)
        .map(|(n, r)| format!("{} {}/{}", n.field(), r.ready, r.desired))
        .collect();
    format!("waiting for {}", waiting.join(", "))
}

/// True when an HPA in the namespace scales the worker Deployment: then the
/// operator leaves `spec.replicas` alone instead of fighting it.
async fn hpa_targets(client: &Client, ns: &str, deployment: &str) -> Result<bool, Error> {
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
    let list = hpas.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .any(|h| h.spec.scale_target_ref.kind == "Deployment" && h.spec.scale_target_ref.name == deployment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CapacityStatus, QueueStatus, Recommendation};
    use crate::fixtures::{Call, FakeApiServer, FakeQueue, context, pod, sample};
    use serde_json::{Value, json};

    fn status_patch(calls: &[Call]) -> ResizeDeploymentStatus {
        let call = calls.iter().rev().find(|c| c.path.ends_with("/status")).expect("a status patch");
        serde_json::from_value(call.body["status"].clone()).unwrap()
    }

    fn cond(s: &ResizeDeploymentStatus, t: Type) -> (String, String) {
        let c = conditions::get(s, t).unwrap_or_else(|| panic!("no {t}"));
        (c.status.clone(), c.reason.clone())
    }

    fn is(value: &str, reason: Reason) -> (String, String) {
        (value.into(), reason.to_string())
    }

    fn has_event(calls: &[Call], reason: &str) -> bool {
        calls.iter().any(|c| c.path.ends_with("/events") && c.body["reason"] == reason)
    }

    fn applied_workers(calls: &[Call]) -> Value {
        let call = calls.iter().find(|c| c.is_apply() && c.path.ends_with("/deployments/photos-worker")).unwrap();
        call.body["spec"]["replicas"].clone()
    }

    #[tokio::test]
    async fn unreachable_queue_applies_children_at_baseline_and_reports_it() {
        let rd = sample();
        let (client, calls) = FakeApiServer::start(&rd, None);
        let action = reconcile(Arc::new(rd), context(client, FakeQueue::Down)).await.unwrap();
        assert_eq!(action, Action::requeue(SAMPLE_PERIOD));
        let calls = calls.lock().unwrap().clone();
        let applies: Vec<&Call> = calls.iter().filter(|c| c.is_apply() && !c.path.ends_with("/status")).collect();
        // The credentials Secret (none existed), 5 accounts, 2 configs (NATS, the rule file),
        // 4 services, 5 policies, 2 budgets, 1 statefulset, 4 deployments.
        assert!(applies[0].path.ends_with("/secrets/photos-nats-credentials"), "{}", applies[0].path);
        assert_eq!(applies.len(), 24, "{:#?}", applies.iter().map(|c| &c.path).collect::<Vec<_>>());
        assert!(applies.iter().all(|c| c.query.contains("force=true")));
        // 1,000 × 1.2 / (10 × 4) = 30
        assert_eq!(applied_workers(&calls), json!(30));
        let s = status_patch(&calls);
        assert_eq!(s.observed_generation, Some(1));
        assert_eq!(cond(&s, Type::QueueHealthy), is("False", Reason::Unreachable));
        assert_eq!(cond(&s, Type::Ready), is("False", Reason::ComponentsNotReady));
        assert_eq!(cond(&s, Type::Progressing).0, "True");
        let cap = s.capacity.unwrap();
        assert_eq!((cap.baseline_workers, cap.desired_workers, cap.api_replicas), (30, 30, 2));
        assert_eq!(cap.decision, "QueueUnavailable");
        assert!(has_event(&calls, reason::QUEUE_UNREACHABLE));
        // No pod reported trouble, nothing was dropped from the spec.
        assert!(calls.iter().all(|c| c.method != http::Method::DELETE));
        assert!(calls.iter().any(|c| c.method == http::Method::GET && c.path.ends_with("/pods")));
    }

    #[tokio::test]
    async fn invalid_spec_touches_no_child() {
        let mut rd = sample();
        rd.spec.sla.target_requests_per_second = 1_000_000.0;
        let (client, calls) = FakeApiServer::start(&rd, None);
        let action = reconcile(Arc::new(rd), context(client, FakeQueue::Down)).await.unwrap();
        assert_eq!(action, Action::requeue(Duration::from_secs(300)));
        let calls = calls.lock().unwrap().clone();
        assert!(calls.iter().all(|c| !c.is_apply() || c.path.ends_with("/status")), "{calls:#?}");
        let s = status_patch(&calls);
        assert_eq!(cond(&s, Type::Ready), is("False", Reason::InvalidSpec));
        let msg = &conditions::get(&s, Type::Ready).unwrap().message;
        assert!(msg.contains("maxWorkers is 200"), "{msg}");
        assert!(has_event(&calls, "InvalidSpec"));
    }

    #[tokio::test]
    async fn with_the_prometheus_operator_a_round_applies_a_pod_monitor_and_a_prometheus_rule() {
        let rd = sample();
        let (client, calls) = FakeApiServer { monitoring: true, ..FakeApiServer::new(None) }.serve(&rd);
        reconcile(Arc::new(rd), context(client, FakeQueue::Down)).await.unwrap();
        let calls = calls.lock().unwrap().clone();
        let applied = |plural: &str| {
            calls.iter().any(|c| {
                c.is_apply() && c.path == format!("/apis/monitoring.coreos.com/v1/namespaces/media/{plural}/photos")
            })
        };
        assert!(applied("podmonitors") && applied("prometheusrules"), "{calls:#?}");
        let (client, calls) = FakeApiServer::start(&sample(), None);
        reconcile(Arc::new(sample()), context(client, FakeQueue::Down)).await.unwrap();
        let calls = calls.lock().unwrap().clone();
        assert!(!calls.iter().any(|c| c.path.contains("/namespaces/media/podmonitors")), "none without the CRDs");
        assert!(calls.iter().any(|c| c.is_apply() && c.path.ends_with("/configmaps/photos-prometheus-rules")));
    }

    /// Every operator metric the shipped rules and dashboards name is in the
    /// exposition after one ordinary round.
    #[tokio::test]
    async fn the_rules_and_dashboards_read_metrics_a_round_exports() {
        let rd = sample();
        let (client, _calls) = FakeApiServer::start(&rd, None);
        let sample = QueueSample {
            leader: Some("nats-0".into()),
            num_pending: 3,
            num_ack_pending: 1,
            last_sequence: 10,
            info_latency_ms: 1,
            current_followers: 2,
        };
        let ctx = context(client, FakeQueue::Up(sample));
        reconcile(Arc::new(rd.clone()), ctx.clone()).await.unwrap();
        let exported = telemetry::metrics::sample_names(&ctx.metrics.encode());
        let mut exprs: Vec<String> = Vec::new();
        let operator_rules: Value =
            serde_yaml::from_str(include_str!("../../charts/resizer/rules/operator.rules.yaml")).unwrap();
        let fleet_rules = serde_json::to_value(crate::slo::rules(&rd)).unwrap();
        for rules in [operator_rules, fleet_rules] {
            exprs.extend(telemetry::metrics::rule_expressions(&rules).expect("a rule file"));
        }
        for dashboard in [
            include_str!("../../charts/resizer/dashboards/resizer-fleet.json"),
            include_str!("../../charts/resizer/dashboards/resizer-operator.json"),
        ] {
            let d: Value = serde_json::from_str(dashboard).unwrap();
            exprs.extend(telemetry::metrics::dashboard_expressions(&d).expect("every panel has queries"));
        }
        let named: std::collections::BTreeSet<String> =
            exprs.iter().flat_map(|e| telemetry::metrics::names_in_query(e, &["resizer_operator_"])).collect();
        assert!(named.len() >= 10, "{named:?}");
        let missing: Vec<_> = named.difference(&exported).collect();
        assert!(missing.is_empty(), "named by a rule or dashboard, not exported after a round: {missing:?}");
    }

    #[tokio::test]
    async fn queue_backlog_scales_workers_from_the_second_reading() {
        let mut rd = sample();
        // A reading 10 s ago at sequence 1,000, and a recent recommendation of 30.
        let now = jiff::Timestamp::now().as_second();
        rd.status = Some(ResizeDeploymentStatus {
            queue: QueueStatus {
                last_sequence: Some(1_000),
                sampled_at: Some((now - 10).to_string()),
                ..Default::default()
            },
            capacity: Some(CapacityStatus {
                recent: vec![Recommendation { at: now - 10, workers: 30 }],
                ..Default::default()
            }),
            ..Default::default()
        });
        let sample = QueueSample {
            leader: Some("nats-1".into()),
            num_pending: 4_000,
            num_ack_pending: 800,
            last_sequence: 11_000,
            info_latency_ms: 2,
            current_followers: 2,
        };
        let (client, calls) = FakeApiServer::start(&rd, None);
        reconcile(Arc::new(rd), context(client, FakeQueue::Up(sample))).await.unwrap();
        let calls = calls.lock().unwrap().clone();
        // λₒ = 1,000/s; backlog 4,800 over a 0.45 s budget = 10,667/s; (1,000 + 10,667) / 40 → 292, clamped to 200.
        assert_eq!(applied_workers(&calls), json!(200));
        let s = status_patch(&calls);
        assert_eq!(cond(&s, Type::QueueHealthy), is("True", Reason::Reachable));
        let cap = s.capacity.unwrap();
        assert_eq!(cap.observed_arrival_rate, Some(1_000.0));
        assert_eq!(cap.backlog, Some(4_800));
        assert_eq!(cap.queue_workers, Some(292));
        assert_eq!(cap.desired_workers, 200);
        assert_eq!(s.queue.leader.as_deref(), Some("nats-1"));
        // The leader is mirrored into a Lease named after the resource.
        let lease = calls.iter().find(|c| c.is_apply() && c.path.ends_with("/leases/photos-queue-leader")).unwrap();
        assert_eq!(lease.body["spec"]["holderIdentity"], "nats-1");
    }

    #[tokio::test]
    async fn a_slow_leader_is_stepped_down_with_an_event() {
        let rd = sample();
        let slow = QueueSample {
            leader: Some("photos-nats-0".into()),
            num_pending: 0,
            num_ack_pending: 0,
            last_sequence: 0,
            info_latency_ms: 2_000,
            current_followers: 2,
        };
        let (client, calls) = FakeApiServer::start(&rd, None);
        reconcile(Arc::new(rd), context(client, FakeQueue::Up(slow))).await.unwrap();
        let calls = calls.lock().unwrap().clone();
        let s = status_patch(&calls);
        assert_eq!(cond(&s, Type::QueueHealthy), is("False", Reason::LeaderSteppedDown));
        assert!(s.queue.last_step_down.is_some());
        assert!(has_event(&calls, reason::QUEUE_LEADER_STEPPED_DOWN));
    }

    #[tokio::test]
    async fn a_refused_apply_marks_the_resource_degraded() {
        let rd = sample();
        let (client, calls) = FakeApiServer::start_refusing(&rd, "deployments");
        let err = reconcile(Arc::new(rd), context(client, FakeQueue::Down)).await.unwrap_err();
        assert!(matches!(err, Error::Kube(_)), "{err}");
        let calls = calls.lock().unwrap().clone();
        let s = status_patch(&calls);
        assert_eq!(cond(&s, Type::Degraded), is("True", Reason::ApplyFailed));
        assert_eq!(cond(&s, Type::Ready), is("False", Reason::ApplyFailed));
    }

    #[tokio::test]
    async fn an_hpa_on_the_workers_keeps_replicas_out_of_the_apply() {
        let rd = sample();
        let (client, calls) = FakeApiServer::start(&rd, Some("photos-worker".into()));
        reconcile(Arc::new(rd), context(client, FakeQueue::Down)).await.unwrap();
        let calls = calls.lock().unwrap().clone();
        assert_eq!(applied_workers(&calls), Value::Null);
        assert_eq!(cond(&status_patch(&calls), Type::Scaling), is("False", Reason::ExternallyScaled));
    }

    fn owned_ingress(name: &str, uid: &str) -> Value {
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {
                "name": name, "namespace": "media", "uid": format!("ing-{name}"),
                "labels": {"app.kubernetes.io/instance": "photos", "app.kubernetes.io/managed-by": "resizer-operator"},
                "ownerReferences": [{"apiVersion": "resizer.dev/v1alpha1", "kind": "ResizeDeployment",
                                     "name": "photos", "uid": uid, "controller": true}],
            },
        })
    }

    #[tokio::test]
    async fn an_ingress_dropped_from_the_spec_is_deleted_and_only_ours() {
        let rd = sample();
        assert!(rd.spec.api.ingress.is_none());
        let mut server = FakeApiServer::new(None);
        server
            .lists
            .insert("ingresses", vec![owned_ingress("photos-api", "0f1e2d3c"), owned_ingress("photos-x", "other")]);
        let (client, calls) = server.serve(&rd);
        reconcile(Arc::new(rd), context(client, FakeQueue::Down)).await.unwrap();
        let calls = calls.lock().unwrap().clone();
        let list = calls.iter().find(|c| c.method == http::Method::GET && c.path.ends_with("/ingresses")).unwrap();
        assert!(
            list.query.contains("labelSelector=app.kubernetes.io%2Finstance%3Dphotos%2Capp.kubernetes.io%2Fmanaged-by%3Dresizer-operator"),
            "{}",
            list.query
        );
        let deletes: Vec<&Call> = calls.iter().filter(|c| c.method == http::Method::DELETE).collect();
        assert_eq!(deletes.len(), 1, "{deletes:#?}");
        assert!(deletes[0].path.ends_with("/namespaces/media/ingresses/photos-api"));
        assert_eq!(deletes[0].body["preconditions"]["uid"], "ing-photos-api");
        assert!(has_event(&calls, reason::PRUNED));
    }

    #[tokio::test]
    async fn a_desired_ingress_is_applied_and_kept() {
        let mut rd = sample();
        rd.spec.api.ingress =
            Some(crate::crd::IngressSpec { class_name: None, host: Some("img".into()), tls_secret_name: None });
        let mut server = FakeApiServer::new(None);
        server.lists.insert("ingresses", vec![owned_ingress("photos-api", "0f1e2d3c")]);
        let (client, calls) = server.serve(&rd);
        reconcile(Arc::new(rd), context(client, FakeQueue::Down)).await.unwrap();
        let calls = calls.lock().unwrap().clone();
        assert!(calls.iter().any(|c| c.is_apply() && c.path.ends_with("/ingresses/photos-api")));
        assert!(calls.iter().all(|c| c.method != http::Method::DELETE));
    }

    #[tokio::test]
    async fn unschedulable_workers_make_the_fleet_not_ready_with_the_schedulers_words() {
        let rd = sample();
        let mut server = FakeApiServer::new(None);
        server.lists.insert(
            "pods",
            vec![pod(
                "worker",
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                       "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient cpu."}]}),
            )],
        );
        let (client, calls) = server.serve(&rd);
        reconcile(Arc::new(rd), context(client, FakeQueue::Down)).await.unwrap();
        let calls = calls.lock().unwrap().clone();
        let s = status_patch(&calls);
        assert_eq!(cond(&s, Type::Ready), is("False", Reason::Unschedulable(Component::Worker)));
        let msg = &conditions::get(&s, Type::Ready).unwrap().message;
        assert!(
            msg.contains("worker: 1 of 1 pods cannot be scheduled: 0/1 nodes are available: 1 Insufficient cpu."),
            "{msg}"
        );
        let ev =
            calls.iter().find(|c| c.path.ends_with("/events") && c.body["reason"] == "WorkerUnschedulable").unwrap();
        assert_eq!(ev.body["type"], "Warning");
        assert!(ev.body["note"].as_str().unwrap().contains("Insufficient cpu"), "{:?}", ev.body);
    }

    #[tokio::test]
    async fn the_same_trouble_is_not_announced_twice() {
        let mut rd = sample();
        let mut previous = ResizeDeploymentStatus::default();
        let reason = Reason::ImagePullFailed(Component::Api);
        conditions::set(&mut previous, Type::Ready, false, reason, "old", jiff::Timestamp::now());
        rd.status = Some(previous);
        let mut server = FakeApiServer::new(None);
        server.lists.insert(
            "pods",
            vec![pod(
                "api",
                json!({"phase": "Pending", "containerStatuses": [{"name": "api", "image": "resizer/api-server:nope",
                       "imageID": "", "ready": false, "restartCount": 0,
                       "state": {"waiting": {"reason": "ErrImageNeverPull", "message": "not present"}}}]}),
            )],
        );
        let (client, calls) = server.serve(&rd);
        reconcile(Arc::new(rd), context(client, FakeQueue::Down)).await.unwrap();
        let calls = calls.lock().unwrap().clone();
        let s = status_patch(&calls);
        assert_eq!(cond(&s, Type::Ready), is("False", reason));
        assert!(conditions::get(&s, Type::Ready).unwrap().message.contains("image resizer/api-server:nope"));
        assert!(!has_event(&calls, "ApiImagePullFailed"));
    }
}
