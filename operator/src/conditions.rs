//! The conditions a `ResizeDeployment` reports and every reason they carry,
//! in one place: `kubectl wait --for=condition=...` and alerts match on these
//! strings, so they are part of the resource's interface.

use crate::capacity::ScaleReason;
use crate::crd::ResizeDeploymentStatus;
use crate::desired::Component;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff;
use std::fmt;

/// A condition type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// The fleet as declared runs and its queue can be read.
    Ready,
    /// A rollout is under way.
    Progressing,
    /// The operator cannot bring the children to the spec (invalid spec, refused writes).
    Degraded,
    /// The JOBS stream can be read and its leader answers in time.
    QueueHealthy,
    /// The worker count is changing, and why it is what it is.
    Scaling,
}

impl Type {
    pub fn as_str(self) -> &'static str {
        match self {
            Type::Ready => "Ready",
            Type::Progressing => "Progressing",
            Type::Degraded => "Degraded",
            Type::QueueHealthy => "QueueHealthy",
            Type::Scaling => "Scaling",
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a condition has its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A contradiction CEL cannot catch; the children are left as they were.
    InvalidSpec,
    /// A server-side apply was refused.
    ApplyFailed,
    /// A child dropped from the spec could not be deleted.
    PruneFailed,
    AsExpected,
    RolloutComplete,
    RollingOut,
    ComponentsNotReady,
    /// The components run but the queue cannot be read.
    QueueUnavailable,
    Ready,
    /// The component's pods find no node (PodScheduled=False).
    Unschedulable(Component),
    /// The component's image cannot be pulled.
    ImagePullFailed(Component),
    Reachable,
    Unreachable,
    JetStreamError,
    /// The JOBS leader answers slowly and is left in place (cooldown, no follower, failed step-down).
    LeaderBrownout,
    LeaderSteppedDown,
    /// An HorizontalPodAutoscaler owns the worker count.
    ExternallyScaled,
    /// The scaling step's own reason (`status.capacity.decision`).
    Decision(ScaleReason),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = match self {
            Reason::Unschedulable(c) => return write!(f, "{}Unschedulable", c.camel_case()),
            Reason::ImagePullFailed(c) => return write!(f, "{}ImagePullFailed", c.camel_case()),
            Reason::Decision(d) => d.as_str(),
            Reason::InvalidSpec => "InvalidSpec",
            Reason::ApplyFailed => "ApplyFailed",
            Reason::PruneFailed => "PruneFailed",
            Reason::AsExpected => "AsExpected",
            Reason::RolloutComplete => "RolloutComplete",
            Reason::RollingOut => "RollingOut",
            Reason::ComponentsNotReady => "ComponentsNotReady",
            Reason::QueueUnavailable => "QueueUnavailable",
            Reason::Ready => "Ready",
            Reason::Reachable => "Reachable",
            Reason::Unreachable => "Unreachable",
            Reason::JetStreamError => "JetStreamError",
            Reason::LeaderBrownout => "LeaderBrownout",
            Reason::LeaderSteppedDown => "LeaderSteppedDown",
            Reason::ExternallyScaled => "ExternallyScaled",
        };
        f.write_str(plain)
    }
}

/// Sets a condition, keeping its transition time when the status did not change.
pub fn set(
    status: &mut ResizeDeploymentStatus,
    type_: Type,
    value: bool,
    reason: Reason,
    message: &str,
    now: jiff::Timestamp,
) {
    let value = if value { "True" } else { "False" };
    let reason = reason.to_string();
    let generation = status.observed_generation;
    if let Some(c) = status.conditions.iter_mut().find(|c| c.type_ == type_.as_str()) {
        if c.status != value {
            c.last_transition_time = Time(now);
        }
        c.status = value.into();
        c.reason = reason;
        c.message = message.into();
        c.observed_generation = generation;
    } else {
        status.conditions.push(Condition {
            type_: type_.as_str().into(),
            status: value.into(),
            reason,
            message: message.into(),
            last_transition_time: Time(now),
            observed_generation: generation,
        });
    }
}

pub fn get(status: &ResizeDeploymentStatus, type_: Type) -> Option<&Condition> {
    status.conditions.iter().find(|c| c.type_ == type_.as_str())
}

/// True when the condition's status flipped (or appeared): the moment worth an Event.
pub fn changed(before: &ResizeDeploymentStatus, after: &ResizeDeploymentStatus, type_: Type) -> bool {
    get(before, type_).map(|c| &c.status) != get(after, type_).map(|c| &c.status)
}

/// True when the status or the reason changed: a Ready=False that moves from
/// one cause to another is news, the same cause every round is not.
pub fn reason_changed(before: &ResizeDeploymentStatus, after: &ResizeDeploymentStatus, type_: Type) -> bool {
    let key = |s: &ResizeDeploymentStatus| get(s, type_).map(|c| (c.status.clone(), c.reason.clone()));
    key(before) != key(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_camel_case_and_name_the_component() {
        assert_eq!(Reason::Unschedulable(Component::Worker).to_string(), "WorkerUnschedulable");
        assert_eq!(Reason::ImagePullFailed(Component::AuthCache).to_string(), "AuthCacheImagePullFailed");
        assert_eq!(Reason::Unschedulable(Component::Queue).to_string(), "QueueUnschedulable");
        assert_eq!(Reason::Decision(ScaleReason::ScaleDownWindow).to_string(), "ScaleDownWindow");
        // The apiserver's pattern for a condition reason.
        for c in Component::ALL {
            for r in [Reason::Unschedulable(c), Reason::ImagePullFailed(c)] {
                let s = r.to_string();
                assert!(
                    s.chars().next().unwrap().is_ascii_uppercase() && s.chars().all(|ch| ch.is_ascii_alphanumeric()),
                    "{s}"
                );
            }
        }
    }

    #[test]
    fn the_transition_time_moves_only_when_the_status_does() {
        let mut s = ResizeDeploymentStatus::default();
        let t0 = jiff::Timestamp::from_second(1_000).unwrap();
        let t1 = jiff::Timestamp::from_second(2_000).unwrap();
        set(&mut s, Type::Ready, false, Reason::RollingOut, "a", t0);
        let before = s.clone();
        set(&mut s, Type::Ready, false, Reason::ComponentsNotReady, "b", t1);
        let c = get(&s, Type::Ready).unwrap();
        assert_eq!((c.reason.as_str(), c.message.as_str(), c.last_transition_time.0), ("ComponentsNotReady", "b", t0));
        assert!(!changed(&before, &s, Type::Ready));
        assert!(reason_changed(&before, &s, Type::Ready));
        set(&mut s, Type::Ready, true, Reason::Ready, "", t1);
        assert_eq!(get(&s, Type::Ready).unwrap().last_transition_time.0, t1);
        assert!(changed(&before, &s, Type::Ready));
        assert_eq!(s.conditions.len(), 1);
    }
}
