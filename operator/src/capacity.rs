//! Capacity math (DESIGN §3): pure functions from the SLA, the declared
//! capacity and queue observations to worker and api replica counts.
//!
//! Kept free of Kubernetes and NATS types so every number the operator writes
//! into the status can be reproduced in a unit test.

use crate::crd::{Capacity, Recommendation, Sla};

/// Scale-down only goes as low as the highest recommendation seen in this window,
/// so a brief lull does not drop workers that the next burst needs.
pub const SCALE_DOWN_WINDOW_SECS: i64 = 300;
/// Changes smaller than this fraction of the current count are not worth a rollout.
pub const TOLERANCE: f64 = 0.10;

/// The static sizing for the declared target rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baseline {
    pub workers: i32,
    pub api_replicas: i32,
}

/// `W = ceil(λ(1+h)/(μc))`, `A = max(2, ceil(λ(1+h)/r))`. Two api replicas at
/// least, so one node loss never takes the front door down.
pub fn baseline(sla: &Sla, cap: &Capacity) -> Baseline {
    let load = sla.target_requests_per_second * (1.0 + cap.headroom);
    Baseline {
        workers: ceil_i32(load / per_worker(cap)),
        api_replicas: ceil_i32(load / cap.api_requests_per_second_per_replica).max(2),
    }
}

/// What the queue says right now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueLoad {
    /// Observed arrival rate λₒ in jobs/s.
    pub arrival_rate: f64,
    /// num_pending + num_ack_pending of the workers consumer.
    pub backlog: u64,
}

/// Seconds the backlog may take to drain: the p99 target minus one service time.
pub fn drain_budget_secs(sla: &Sla, cap: &Capacity) -> f64 {
    let ms = f64::from(sla.p99_latency_ms) - f64::from(cap.service_time_ms);
    // A contradictory spec is reported elsewhere; here keep the division finite.
    (ms / 1000.0).max(0.001)
}

/// `max(ceil(λₒ(1+h)/(μc)), ceil((λₒ + P/T)/(μc)))`, before clamping.
pub fn queue_recommendation(load: QueueLoad, sla: &Sla, cap: &Capacity) -> i32 {
    let steady = load.arrival_rate * (1.0 + cap.headroom) / per_worker(cap);
    let draining = (load.arrival_rate + load.backlog as f64 / drain_budget_secs(sla, cap)) / per_worker(cap);
    ceil_i32(steady).max(ceil_i32(draining))
}

/// Arrival rate from two readings of the stream's last sequence number.
pub fn arrival_rate(previous: Option<(u64, i64)>, sequence: u64, now: i64) -> Option<f64> {
    let (prev_seq, prev_at) = previous?;
    let dt = now - prev_at;
    // A stream recreated (sequence went back) or a reading in the same second tells nothing.
    if dt <= 0 || sequence < prev_seq {
        return None;
    }
    Some((sequence - prev_seq) as f64 / dt as f64)
}

/// Why a scaling step chose its count; written to `status.capacity.decision`
/// and as the reason of the Scaling condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleReason {
    /// No workers ran yet: the recommendation as is.
    Initial,
    /// The current count was outside `[minWorkers, maxWorkers]`.
    Bounds,
    ScaleUp,
    /// The change would be smaller than [`TOLERANCE`].
    WithinTolerance,
    /// A higher recommendation within [`SCALE_DOWN_WINDOW_SECS`] holds the count.
    ScaleDownWindow,
    ScaleDown,
    /// The queue could not be read: the count is kept (or the baseline on a new fleet).
    QueueUnavailable,
}

impl ScaleReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleReason::Initial => "Initial",
            ScaleReason::Bounds => "Bounds",
            ScaleReason::ScaleUp => "ScaleUp",
            ScaleReason::WithinTolerance => "WithinTolerance",
            ScaleReason::ScaleDownWindow => "ScaleDownWindow",
            ScaleReason::ScaleDown => "ScaleDown",
            ScaleReason::QueueUnavailable => "QueueUnavailable",
        }
    }
}

/// The outcome of one scaling step.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub desired: i32,
    pub recommended: i32,
    pub reason: ScaleReason,
    /// The window to remember for the next step.
    pub recent: Vec<Recommendation>,
}

/// One scaling step: clamp, remember the recommendation, scale up at once,
/// scale down only to the highest recommendation of the window, ignore
/// changes inside the tolerance.
pub fn decide(
    current: Option<i32>,
    recommendation: i32,
    now: i64,
    recent: &[Recommendation],
    cap: &Capacity,
) -> Decision {
    let recommended = recommendation.clamp(cap.min_workers, cap.max_workers);
    let mut window: Vec<Recommendation> =
        recent.iter().filter(|r| now - r.at < SCALE_DOWN_WINDOW_SECS && r.at <= now).cloned().collect();
    // Two rounds in the same second (a child event right after a requeue) count as one reading.
    match window.last_mut() {
        Some(last) if last.at == now => last.workers = last.workers.max(recommended),
        _ => window.push(Recommendation { at: now, workers: recommended }),
    }
    let Some(current) = current else {
        return Decision { desired: recommended, recommended, reason: ScaleReason::Initial, recent: window };
    };
    let (desired, reason) = if current < cap.min_workers || current > cap.max_workers {
        (current.clamp(cap.min_workers, cap.max_workers).max(recommended.min(cap.max_workers)), ScaleReason::Bounds)
    } else if recommended > current {
        if within_tolerance(current, recommended) {
            (current, ScaleReason::WithinTolerance)
        } else {
            (recommended, ScaleReason::ScaleUp)
        }
    } else {
        let floor = window.iter().map(|r| r.workers).max().unwrap_or(recommended);
        if floor >= current {
            (current, ScaleReason::ScaleDownWindow)
        } else if within_tolerance(current, floor) {
            (current, ScaleReason::WithinTolerance)
        } else {
            (floor, ScaleReason::ScaleDown)
        }
    };
    Decision { desired, recommended, reason, recent: window }
}

fn within_tolerance(current: i32, target: i32) -> bool {
    current > 0 && (f64::from(target - current).abs() / f64::from(current)) <= TOLERANCE
}

fn per_worker(cap: &Capacity) -> f64 {
    cap.conversions_per_core_per_second * f64::from(cap.cores_per_worker)
}

fn ceil_i32(x: f64) -> i32 {
    // The schema bounds the inputs; saturate rather than wrap on absurd ones.
    x.ceil().clamp(0.0, f64::from(i32::MAX)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sla(rate: f64) -> Sla {
        Sla { target_requests_per_second: rate, p99_latency_ms: 500, availability: 0.999, max_image_bytes: 1 << 20 }
    }

    fn article() -> Capacity {
        Capacity {
            headroom: 0.2,
            conversions_per_core_per_second: 10.0,
            cores_per_worker: 32,
            api_requests_per_second_per_replica: 5000.0,
            service_time_ms: 100,
            min_workers: 1,
            max_workers: 200,
        }
    }

    #[test]
    fn the_articles_numbers() {
        let b = baseline(&sla(10_000.0), &article());
        assert_eq!(b.workers, 38);
        assert_eq!(b.api_replicas, 3);
    }

    #[test]
    fn api_keeps_two_replicas_at_low_rates() {
        assert_eq!(baseline(&sla(1.0), &article()).api_replicas, 2);
        assert_eq!(baseline(&sla(1.0), &article()).workers, 1);
    }

    #[test]
    fn backlog_adds_workers_to_drain_within_budget() {
        let cap = article();
        // 0.4 s budget; 12,800 jobs backlog = 32,000 jobs/s to drain, plus 3,200 arriving.
        let w = queue_recommendation(QueueLoad { arrival_rate: 3200.0, backlog: 12_800 }, &sla(10_000.0), &cap);
        assert_eq!(w, 110);
        let idle = queue_recommendation(QueueLoad { arrival_rate: 3200.0, backlog: 0 }, &sla(10_000.0), &cap);
        assert_eq!(idle, 12);
    }

    #[test]
    fn arrival_rate_from_sequences() {
        assert_eq!(arrival_rate(Some((100, 10)), 600, 15), Some(100.0));
        assert_eq!(arrival_rate(None, 600, 15), None);
        assert_eq!(arrival_rate(Some((700, 10)), 600, 15), None);
        assert_eq!(arrival_rate(Some((100, 15)), 600, 15), None);
    }

    #[test]
    fn first_decision_takes_the_recommendation_clamped() {
        let cap = Capacity { min_workers: 2, max_workers: 10, ..article() };
        assert_eq!(decide(None, 0, 0, &[], &cap).desired, 2);
        assert_eq!(decide(None, 50, 0, &[], &cap).desired, 10);
    }

    #[test]
    fn small_changes_are_ignored() {
        let cap = article();
        let d = decide(Some(40), 43, 0, &[], &cap);
        assert_eq!((d.desired, d.reason), (40, ScaleReason::WithinTolerance));
        let d = decide(Some(40), 45, 0, &[], &cap);
        assert_eq!((d.desired, d.reason), (45, ScaleReason::ScaleUp));
    }

    /// A burst, a lull, then the window expiring: up at once, down only after five minutes.
    #[test]
    fn sequence_scales_up_at_once_and_down_after_the_window() {
        let cap = article();
        let observations = [(0, 10), (30, 40), (60, 12), (120, 11), (330, 12), (361, 11), (400, 11)];
        let mut current = Some(10);
        let mut recent = Vec::new();
        let mut seen = Vec::new();
        for (at, rec) in observations {
            let d = decide(current, rec, at, &recent, &cap);
            current = Some(d.desired);
            recent = d.recent;
            seen.push((d.desired, d.reason.as_str()));
        }
        assert_eq!(
            seen,
            vec![
                (10, "ScaleDownWindow"),
                (40, "ScaleUp"),
                (40, "ScaleDownWindow"),
                (40, "ScaleDownWindow"),
                // The 40 from t=30 left the window at t=330; the highest since is 12.
                (12, "ScaleDown"),
                // The 12 from t=330 is still in the window.
                (12, "ScaleDownWindow"),
                (12, "ScaleDownWindow"),
            ]
        );
        assert!(recent.iter().all(|r| 400 - r.at < SCALE_DOWN_WINDOW_SECS));
    }

    #[test]
    fn readings_in_the_same_second_are_one() {
        let cap = article();
        let d = decide(Some(10), 10, 5, &[Recommendation { at: 5, workers: 12 }], &cap);
        assert_eq!(d.recent, vec![Recommendation { at: 5, workers: 12 }]);
    }

    #[test]
    fn out_of_bounds_current_is_pulled_back() {
        let cap = Capacity { min_workers: 3, max_workers: 10, ..article() };
        assert_eq!(decide(Some(20), 4, 0, &[], &cap).desired, 10);
        assert_eq!(decide(Some(1), 4, 0, &[], &cap).desired, 4);
    }
}
