//! When to ask JetStream to move the JOBS stream's leadership (DESIGN §4).
//!
//! Raft stays the source of truth: a dead leader is replaced by the raft
//! election on its own. What raft does not catch is a leader that still
//! heartbeats but answers slowly (a brownout); for that the operator asks
//! for a step-down, only if a current follower can take over, and then
//! waits out a cooldown so it never flaps leadership around.

use crate::queue::QueueSample;

/// Time between two step-downs of the same stream.
pub const COOLDOWN_SECS: i64 = 60;
/// A JetStream API round trip through the leader slower than this is a brownout;
/// a healthy one on a LAN takes a few milliseconds.
pub const LATENCY_BUDGET_MS: u64 = 250;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    /// Step the leader down now.
    StepDown(String),
    /// A brownout, but acting now would flap or leave no one to lead.
    Hold(String),
}

pub fn judge(sample: &QueueSample, last_step_down: Option<i64>, now: i64) -> Verdict {
    if sample.info_latency_ms <= LATENCY_BUDGET_MS {
        return Verdict::Healthy;
    }
    let why = format!(
        "leader {} answered in {} ms (budget {LATENCY_BUDGET_MS} ms)",
        sample.leader.as_deref().unwrap_or("unknown"),
        sample.info_latency_ms
    );
    if sample.current_followers == 0 {
        return Verdict::Hold(format!("{why}; no current follower to take over"));
    }
    if let Some(at) = last_step_down
        && now - at < COOLDOWN_SECS
    {
        return Verdict::Hold(format!("{why}; cooling down after the step-down {}s ago", now - at));
    }
    Verdict::StepDown(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(latency: u64, followers: u32) -> QueueSample {
        QueueSample {
            leader: Some("nats-0".into()),
            num_pending: 0,
            num_ack_pending: 0,
            last_sequence: 0,
            info_latency_ms: latency,
            current_followers: followers,
        }
    }

    #[test]
    fn fast_leader_is_left_alone() {
        assert_eq!(judge(&sample(3, 2), None, 0), Verdict::Healthy);
    }

    #[test]
    fn slow_leader_with_a_follower_is_stepped_down_once_per_cooldown() {
        assert!(matches!(judge(&sample(900, 2), None, 1000), Verdict::StepDown(_)));
        assert!(matches!(judge(&sample(900, 2), Some(1000), 1030), Verdict::Hold(_)));
        assert!(matches!(judge(&sample(900, 2), Some(1000), 1000 + COOLDOWN_SECS), Verdict::StepDown(_)));
    }

    #[test]
    fn no_step_down_without_a_current_follower() {
        let Verdict::Hold(why) = judge(&sample(900, 0), None, 0) else { panic!("should hold") };
        assert!(why.contains("no current follower"), "{why}");
    }
}
