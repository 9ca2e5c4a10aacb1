//! The JOBS stream's raft leader as the round sees it (DESIGN §4): stepping a
//! browned-out leader down, and mirroring the leader into a Lease so that
//! leadership is visible to kubectl. Raft stays the source of truth.

use crate::conditions::{self, Reason, Type};
use crate::crd::{ResizeDeployment, ResizeDeploymentStatus};
use crate::desired::{self, Component, MANAGER};
use crate::error::Error;
use crate::events::{self, action, reason};
use crate::failover;
use crate::queue::QueueSample;
use crate::reconcile::Context;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

/// Steps a browned-out JOBS leader down and says so in the status and an Event.
pub async fn watch(
    ctx: &Context,
    rd: &ResizeDeployment,
    url: &str,
    s: &QueueSample,
    status: &mut ResizeDeploymentStatus,
    now: jiff::Timestamp,
) {
    match failover::judge(s, status.queue.last_step_down, now.as_second()) {
        failover::Verdict::Healthy => {}
        failover::Verdict::Hold(why) => {
            conditions::set(status, Type::QueueHealthy, false, Reason::LeaderBrownout, &why, now)
        }
        failover::Verdict::StepDown(why) => match ctx.queue.step_down(url).await {
            Ok(()) => {
                let fleet =
                    crate::metrics::FleetLabels { namespace: rd.namespace().unwrap_or_default(), name: rd.name_any() };
                ctx.metrics.queue_step_downs.get_or_create(&fleet).inc();
                status.queue.last_step_down = Some(now.as_second());
                let msg = format!("{why}; asked it to step down");
                conditions::set(status, Type::QueueHealthy, false, Reason::LeaderSteppedDown, &msg, now);
                let r = reason::QUEUE_LEADER_STEPPED_DOWN;
                events::publish(ctx, rd, EventType::Warning, r, action::STEP_DOWN_LEADER, msg).await;
            }
            Err(e) => {
                let msg = format!("{why}; step-down failed: {e}");
                conditions::set(status, Type::QueueHealthy, false, Reason::LeaderBrownout, &msg, now);
                let r = reason::QUEUE_LEADER_STEP_DOWN_FAILED;
                events::publish(ctx, rd, EventType::Warning, r, action::STEP_DOWN_LEADER, msg).await;
            }
        },
    }
}

/// Mirrors the leader into a Lease named after the resource: holder = leader
/// server, `leaseTransitions` = epoch. True when the leader changed from one
/// the Lease held before (not when the Lease is first written).
pub async fn record(
    client: &Client,
    rd: &ResizeDeployment,
    ns: &str,
    s: &QueueSample,
    now: jiff::Timestamp,
) -> Result<bool, Error> {
    let Some(leader) = &s.leader else { return Ok(false) };
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    let name = format!("{}-queue-leader", rd.name_any());
    let existing = leases.get_opt(&name).await?.and_then(|l| l.spec);
    let (holder, transitions) =
        existing.map(|s| (s.holder_identity, s.lease_transitions.unwrap_or(0))).unwrap_or((None, 0));
    if holder.as_deref() == Some(leader.as_str()) {
        return Ok(false);
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
    Ok(holder.is_some())
}
