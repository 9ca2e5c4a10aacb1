//! Events on the `ResizeDeployment`: what `kubectl describe rd` shows as the
//! fleet's history. Reasons and actions are named here so the set stays known.

use crate::crd::ResizeDeployment;
use crate::reconcile::Context;
use kube::Resource;
use kube::runtime::events::{Event, EventType};
use tracing::warn;

/// Event reasons besides those that repeat a condition's reason ([`crate::conditions::Reason`]).
pub mod reason {
    pub const QUEUE_UNREACHABLE: &str = "QueueUnreachable";
    pub const QUEUE_LEADER_STEPPED_DOWN: &str = "QueueLeaderSteppedDown";
    pub const QUEUE_LEADER_STEP_DOWN_FAILED: &str = "QueueLeaderStepDownFailed";
    pub const SCALED: &str = "Scaled";
    pub const APPLIED: &str = "Applied";
    pub const PRUNED: &str = "Pruned";
}

/// What the operator was doing when the event happened.
pub mod action {
    pub const VALIDATE: &str = "Validate";
    pub const OBSERVE_QUEUE: &str = "ObserveQueue";
    pub const APPLY_CHILDREN: &str = "ApplyChildren";
    pub const PRUNE_CHILDREN: &str = "PruneChildren";
    pub const SCALE_WORKERS: &str = "ScaleWorkers";
    pub const STEP_DOWN_LEADER: &str = "StepDownLeader";
    pub const INSPECT_PODS: &str = "InspectPods";
}

pub async fn publish(ctx: &Context, rd: &ResizeDeployment, type_: EventType, reason: &str, action: &str, note: String) {
    let ev = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
    // An event is a courtesy; failing to record one must not fail the round.
    if let Err(e) = ctx.recorder.publish(&ev, &rd.object_ref(&())).await {
        warn!(error = %e, "recording event");
    }
}
