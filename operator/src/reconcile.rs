//! One reconcile round: read the queue, decide the worker count, apply every
//! child with server-side apply under one field manager, and write what was
//! observed and decided into the status.

use crate::capacity::{self, QueueLoad};
use crate::crd::{CapacityStatus, ReplicaCount, ResizeDeployment, ResizeDeploymentStatus};
use crate::desired::{self, Children, Component, MANAGER, Replicas};
use crate::error::Error;
use crate::failover;
use crate::metrics::{FleetLabels, Metrics};
use crate::queue::{Queue, QueueError, QueueSample};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
use k8s_openapi::{NamespaceResourceScope, jiff};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{PredicateConfig, WatchStreamExt, predicates, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::fmt::Debug;
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
}

impl Context {
    pub fn new(client: Client, identity: &str, metrics: Arc<Metrics>, queue: Arc<dyn Queue>) -> Self {
        let reporter = Reporter { controller: MANAGER.into(), instance: Some(identity.into()) };
        Self { recorder: Recorder::new(client.clone(), reporter), client, metrics, queue, nats_url: None }
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
    ctx.metrics.error(error);
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

    let problems = rd.spec.problems();
    if !problems.is_empty() {
        // Children stay as they were: a contradictory spec must never produce broken workloads.
        let message = problems.join("; ");
        set(&mut status, "Ready", false, "InvalidSpec", &message, now);
        set(&mut status, "Degraded", true, "InvalidSpec", &message, now);
        set(&mut status, "Progressing", false, "InvalidSpec", "waiting for a valid spec", now);
        if condition_changed(&previous, &status, "Degraded") {
            event(&ctx, &rd, EventType::Warning, "InvalidSpec", "Validate", message).await;
        }
        patch_status(client, &rd, &status).await?;
        return Ok(Action::requeue(Duration::from_secs(300)));
    }

    let url = ctx.nats_url.clone().unwrap_or_else(|| desired::nats_url(&rd));
    let sample = ctx.queue.observe(&url, rd.spec.queue.replicas as usize).await;

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let worker_name = Component::Worker.name(&rd);
    let current = deployments.get_opt(&worker_name).await?.and_then(|d| d.spec.replicas);
    let externally_scaled = hpa_targets(client, &ns, &worker_name).await?;

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

    let workers = match &sample {
        Ok(s) => {
            let d = scale_from_sample(&rd, &mut cap_status, &mut status, s, current, now.as_second());
            set(&mut status, "QueueHealthy", true, "Reachable", &format!("JOBS leader {}", leader_of(s)), now);
            watch_leader(&ctx, &rd, &url, s, &mut status, now).await;
            d
        }
        Err(e) => {
            // Without a reading there is nothing to scale on: keep what runs, or start at the baseline.
            let reason = match e {
                QueueError::Unreachable { .. } => "Unreachable",
                QueueError::JetStream(_) => "JetStreamError",
            };
            set(&mut status, "QueueHealthy", false, reason, &e.to_string(), now);
            // An old leader name in `kubectl get rd` would read as current; the Lease keeps the last one seen.
            status.queue.leader = None;
            if condition_changed(&previous, &status, "QueueHealthy") {
                event(&ctx, &rd, EventType::Warning, "QueueUnreachable", "ObserveQueue", e.to_string()).await;
            }
            let d = current.unwrap_or(base.workers.clamp(cap.min_workers, cap.max_workers));
            cap_status.decision = "QueueUnavailable".into();
            cap_status.recommended_workers = d;
            cap_status.desired_workers = d;
            d
        }
    };

    // Announced once the apply has gone through, not before.
    let mut scaled = None;
    if externally_scaled {
        set(&mut status, "Scaling", false, "ExternallyScaled", "an HorizontalPodAutoscaler owns the worker count", now);
    } else if current.is_some_and(|c| c != workers) {
        let msg = format!("workers {} → {workers} ({})", current.unwrap_or_default(), cap_status.decision);
        set(&mut status, "Scaling", true, &cap_status.decision, &msg, now);
        scaled = Some(msg);
    } else {
        set(&mut status, "Scaling", false, &cap_status.decision, &format!("{workers} workers"), now);
    }
    status.capacity = Some(cap_status);

    let replicas = Replicas { api: base.api_replicas, workers: (!externally_scaled).then_some(workers) };
    let children = desired::children(&rd, replicas)?;
    let applied = match apply_all(client, &ns, &children).await {
        Ok(applied) => applied,
        Err(e) => {
            // Say so on the resource, not only in the operator's log; the round is retried by error_policy.
            set(&mut status, "Degraded", true, "ApplyFailed", &e.to_string(), now);
            set(&mut status, "Ready", false, "ApplyFailed", &e.to_string(), now);
            if condition_changed(&previous, &status, "Degraded") {
                event(&ctx, &rd, EventType::Warning, "ApplyFailed", "ApplyChildren", e.to_string()).await;
            }
            if let Err(status_err) = patch_status(client, &rd, &status).await {
                warn!(error = %status_err, "recording the failed apply in the status");
            }
            return Err(e);
        }
    };
    if let Some(msg) = scaled {
        event(&ctx, &rd, EventType::Normal, "Scaled", "ScaleWorkers", msg).await;
    }
    if previous.observed_generation != rd.metadata.generation {
        let note = format!("applied generation {}", rd.metadata.generation.unwrap_or_default());
        event(&ctx, &rd, EventType::Normal, "Applied", "ApplyChildren", note).await;
    }
    if let Ok(s) = &sample {
        record_queue_leader(client, &rd, &ns, s, now).await?;
    }

    let c = &applied;
    let all = [c.api, c.worker, c.queue, c.auth_cache, c.usage_aggregator];
    let rolled_out = all.iter().all(|r| r.ready >= r.desired);
    let waiting = not_ready(c);
    let queue_ok = sample.is_ok();
    if rolled_out {
        set(&mut status, "Progressing", false, "RolloutComplete", "every component is ready", now);
    } else {
        set(&mut status, "Progressing", true, "RollingOut", &waiting, now);
    }
    set(&mut status, "Degraded", false, "AsExpected", "", now);
    match (rolled_out, queue_ok) {
        (true, true) => set(&mut status, "Ready", true, "Ready", "the fleet serves its SLA", now),
        (false, _) => set(&mut status, "Ready", false, "ComponentsNotReady", &waiting, now),
        (true, false) => set(&mut status, "Ready", false, "QueueUnavailable", "the queue cannot be read", now),
    }
    status.components = applied;
    patch_status(client, &rd, &status).await?;
    let fleet = FleetLabels { namespace: ns.clone(), name: rd.name_any() };
    ctx.metrics.desired_workers.get_or_create(&fleet).set(i64::from(workers));
    ctx.metrics.queue_healthy.get_or_create(&fleet).set(i64::from(queue_ok));
    info!(workers, api = base.api_replicas, queue_ok, "reconciled");
    Ok(Action::requeue(SAMPLE_PERIOD))
}

/// Steps a browned-out JOBS leader down (DESIGN §4) and says so in the status and an Event.
async fn watch_leader(
    ctx: &Context,
    rd: &ResizeDeployment,
    url: &str,
    s: &QueueSample,
    status: &mut ResizeDeploymentStatus,
    now: jiff::Timestamp,
) {
    match failover::judge(s, status.queue.last_step_down, now.as_second()) {
        failover::Verdict::Healthy => {}
        failover::Verdict::Hold(why) => set(status, "QueueHealthy", false, "LeaderBrownout", &why, now),
        failover::Verdict::StepDown(why) => match ctx.queue.step_down(url).await {
            Ok(()) => {
                status.queue.last_step_down = Some(now.as_second());
                let msg = format!("{why}; asked it to step down");
                set(status, "QueueHealthy", false, "LeaderSteppedDown", &msg, now);
                event(ctx, rd, EventType::Warning, "QueueLeaderSteppedDown", "StepDownLeader", msg).await;
            }
            Err(e) => {
                let msg = format!("{why}; step-down failed: {e}");
                set(status, "QueueHealthy", false, "LeaderBrownout", &msg, now);
                event(ctx, rd, EventType::Warning, "QueueLeaderStepDownFailed", "StepDownLeader", msg).await;
            }
        },
    }
}

/// Feeds one queue reading into the scaling decision and returns the worker count.
fn scale_from_sample(
    rd: &ResizeDeployment,
    cap_status: &mut CapacityStatus,
    status: &mut ResizeDeploymentStatus,
    s: &QueueSample,
    current: Option<i32>,
    now: i64,
) -> i32 {
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
    cap_status.decision = decision.reason.into();
    cap_status.recent = decision.recent;
    decision.desired
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

fn not_ready(c: &crate::crd::ComponentsStatus) -> String {
    let named = [
        ("api", c.api),
        ("worker", c.worker),
        ("queue", c.queue),
        ("authCache", c.auth_cache),
        ("usageAggregator", c.usage_aggregator),
    ];
    let waiting: Vec<String> = named
        .iter()
        .filter(|(_, r)| r.ready < r.desired)
        .map(|(n, r)| format!("{n} {}/{}", r.ready, r.desired))
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

async fn apply<K>(client: &Client, ns: &str, obj: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Serialize + DeserializeOwned + Clone + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    // force: this operator is the one owner of these fields; a hand edit is corrected, not a conflict.
    let params = PatchParams::apply(MANAGER).force();
    Ok(api.patch(&obj.name_any(), &params, &Patch::Apply(obj)).await?)
}

async fn apply_each<K>(client: &Client, ns: &str, objs: &[K]) -> Result<Vec<K>, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Serialize + DeserializeOwned + Clone + Debug,
{
    let mut out = Vec::with_capacity(objs.len());
    for o in objs {
        out.push(apply(client, ns, o).await?);
    }
    Ok(out)
}

/// Applies every child (accounts and config first, so workloads never start without them)
/// and returns the replica counts the workloads report.
async fn apply_all(client: &Client, ns: &str, c: &Children) -> Result<crate::crd::ComponentsStatus, Error> {
    apply_each(client, ns, &c.service_accounts).await?;
    apply_each(client, ns, &c.config_maps).await?;
    apply_each(client, ns, &c.services).await?;
    apply_each(client, ns, &c.network_policies).await?;
    apply_each(client, ns, &c.disruption_budgets).await?;
    let sets = apply_each(client, ns, &c.stateful_sets).await?;
    let deps = apply_each(client, ns, &c.deployments).await?;
    apply_each(client, ns, &c.ingresses).await?;

    let mut out = crate::crd::ComponentsStatus::default();
    for d in &deps {
        let count = ReplicaCount {
            ready: d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0),
            desired: d.spec.replicas.unwrap_or(1),
        };
        match d.labels().get("app.kubernetes.io/component").map(String::as_str) {
            Some("api") => out.api = count,
            Some("worker") => out.worker = count,
            Some("auth-cache") => out.auth_cache = count,
            Some("usage-aggregator") => out.usage_aggregator = count,
            _ => {}
        }
    }
    if let Some(s) = sets.first() {
        out.queue = ReplicaCount {
            ready: s.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0),
            desired: s.spec.replicas.unwrap_or(1),
        };
    }
    Ok(out)
}

/// Mirrors the JOBS stream's raft leader into a Lease named after the
/// resource (DESIGN §4): holder = leader server, `leaseTransitions` = epoch.
/// Raft stays the source of truth; the Lease makes leadership visible to kubectl.
async fn record_queue_leader(
    client: &Client,
    rd: &ResizeDeployment,
    ns: &str,
    s: &QueueSample,
    now: jiff::Timestamp,
) -> Result<(), Error> {
    let Some(leader) = &s.leader else { return Ok(()) };
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    let name = format!("{}-queue-leader", rd.name_any());
    let existing = leases.get_opt(&name).await?.and_then(|l| l.spec);
    let (holder, transitions) =
        existing.map(|s| (s.holder_identity, s.lease_transitions.unwrap_or(0))).unwrap_or((None, 0));
    if holder.as_deref() == Some(leader.as_str()) {
        return Ok(());
    }
    let owner = rd.controller_owner_ref(&()).ok_or(Error::MissingObjectKey("metadata.uid"))?;
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": ns, "ownerReferences": [owner],
                     "labels": desired::labels(rd, Component::Queue)},
        "spec": {
            "holderIdentity": leader,
            "acquireTime": MicroTime(now),
            "renewTime": MicroTime(now),
            "leaseTransitions": if holder.is_some() { transitions + 1 } else { transitions },
        },
    });
    let params = PatchParams::apply(MANAGER).force();
    leases.patch(&name, &params, &Patch::Apply(&lease)).await?;
    Ok(())
}

async fn patch_status(client: &Client, rd: &ResizeDeployment, status: &ResizeDeploymentStatus) -> Result<(), Error> {
    let api: Api<ResizeDeployment> = Api::namespaced(client.clone(), &rd.namespace().unwrap_or_default());
    let body = json!({
        "apiVersion": ResizeDeployment::api_version(&()),
        "kind": ResizeDeployment::kind(&()),
        "status": status,
    });
    api.patch_status(&rd.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&body)).await?;
    Ok(())
}

async fn event(ctx: &Context, rd: &ResizeDeployment, type_: EventType, reason: &str, action: &str, note: String) {
    let ev = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
    // An event is a courtesy; failing to record one must not fail the round.
    if let Err(e) = ctx.recorder.publish(&ev, &rd.object_ref(&())).await {
        warn!(error = %e, "recording event");
    }
}

/// Sets a condition, keeping its transition time when the status did not change.
pub fn set(
    status: &mut ResizeDeploymentStatus,
    type_: &str,
    value: bool,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) {
    let value = if value { "True" } else { "False" };
    let reason = if reason.is_empty() { "Unknown" } else { reason };
    let generation = status.observed_generation;
    if let Some(c) = status.conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != value {
            c.last_transition_time = Time(now);
        }
        c.status = value.into();
        c.reason = reason.into();
        c.message = message.into();
        c.observed_generation = generation;
    } else {
        status.conditions.push(Condition {
            type_: type_.into(),
            status: value.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Time(now),
            observed_generation: generation,
        });
    }
}

fn condition_changed(before: &ResizeDeploymentStatus, after: &ResizeDeploymentStatus, type_: &str) -> bool {
    let get = |s: &ResizeDeploymentStatus| s.conditions.iter().find(|c| c.type_ == type_).map(|c| c.status.clone());
    get(before) != get(after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CapacityStatus, QueueStatus, Recommendation};
    use crate::fixtures::{Call, FakeApiServer, FakeQueue, context, sample};
    use serde_json::Value;

    fn status_patch(calls: &[Call]) -> ResizeDeploymentStatus {
        let call = calls.iter().rev().find(|c| c.path.ends_with("/status")).expect("a status patch");
        serde_json::from_value(call.body["status"].clone()).unwrap()
    }

    fn cond(s: &ResizeDeploymentStatus, t: &str) -> (String, String) {
        let c = s.conditions.iter().find(|c| c.type_ == t).unwrap_or_else(|| panic!("no {t}"));
        (c.status.clone(), c.reason.clone())
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
        // 5 accounts, 1 config, 3 services, 2 policies, 2 budgets, 1 statefulset, 4 deployments.
        assert_eq!(applies.len(), 18, "{:#?}", applies.iter().map(|c| &c.path).collect::<Vec<_>>());
        assert!(applies.iter().all(|c| c.query.contains("force=true")));
        // 1,000 × 1.2 / (10 × 4) = 30
        assert_eq!(applied_workers(&calls), json!(30));
        let s = status_patch(&calls);
        assert_eq!(s.observed_generation, Some(1));
        assert_eq!(cond(&s, "QueueHealthy"), ("False".into(), "Unreachable".into()));
        assert_eq!(cond(&s, "Ready"), ("False".into(), "ComponentsNotReady".into()));
        assert_eq!(cond(&s, "Progressing").0, "True");
        let cap = s.capacity.unwrap();
        assert_eq!((cap.baseline_workers, cap.desired_workers, cap.api_replicas), (30, 30, 2));
        assert_eq!(cap.decision, "QueueUnavailable");
        assert!(calls.iter().any(|c| c.path.ends_with("/events") && c.body["reason"] == "QueueUnreachable"));
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
        assert_eq!(cond(&s, "Ready"), ("False".into(), "InvalidSpec".into()));
        let msg = &s.conditions.iter().find(|c| c.type_ == "Ready").unwrap().message;
        assert!(msg.contains("maxWorkers is 200"), "{msg}");
        assert!(calls.iter().any(|c| c.path.ends_with("/events") && c.body["reason"] == "InvalidSpec"));
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
        assert_eq!(cond(&s, "QueueHealthy"), ("True".into(), "Reachable".into()));
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
        assert_eq!(cond(&s, "QueueHealthy"), ("False".into(), "LeaderSteppedDown".into()));
        assert!(s.queue.last_step_down.is_some());
        assert!(calls.iter().any(|c| c.path.ends_with("/events") && c.body["reason"] == "QueueLeaderSteppedDown"));
    }

    #[tokio::test]
    async fn a_refused_apply_marks_the_resource_degraded() {
        let rd = sample();
        let (client, calls) = FakeApiServer::start_refusing(&rd, "deployments");
        let err = reconcile(Arc::new(rd), context(client, FakeQueue::Down)).await.unwrap_err();
        assert!(matches!(err, Error::Kube(_)), "{err}");
        let calls = calls.lock().unwrap().clone();
        let s = status_patch(&calls);
        assert_eq!(cond(&s, "Degraded"), ("True".into(), "ApplyFailed".into()));
        assert_eq!(cond(&s, "Ready"), ("False".into(), "ApplyFailed".into()));
    }

    #[tokio::test]
    async fn an_hpa_on_the_workers_keeps_replicas_out_of_the_apply() {
        let rd = sample();
        let (client, calls) = FakeApiServer::start(&rd, Some("photos-worker".into()));
        reconcile(Arc::new(rd), context(client, FakeQueue::Down)).await.unwrap();
        let calls = calls.lock().unwrap().clone();
        assert_eq!(applied_workers(&calls), Value::Null);
        assert_eq!(cond(&status_patch(&calls), "Scaling"), ("False".into(), "ExternallyScaled".into()));
    }
}
