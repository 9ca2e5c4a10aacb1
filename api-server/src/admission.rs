//! Admission control: graceful degradation instead of a growing queue.
//!
//! A request that would finish past its latency budget is better refused at
//! once (503 + `Retry-After`, so the client backs off or goes elsewhere) than
//! accepted and timed out, because every accepted-but-late request also
//! delays the ones behind it. Two limits apply:
//! - a hard cap on requests in progress at this server (memory bound);
//! - the budget: a request is admitted while the wait it can expect plus the
//!   service time of its kind of operation fits the budget of that kind (the
//!   fleet's p99 target, or the job deadline for large inputs). So a queue of
//!   140 ms jobs is allowed to build up to what the budget holds, and is not
//!   "overload" at a depth of one.
//!
//! The expected wait is the standing queue, found in the manner of CoDel: the
//! *smallest* queue wait of the last interval. A burst that drains by itself
//! has some short waits in every interval; a standing queue has none. Queue
//! waits are measured by the workers (publish to start of processing) and come
//! back with every answer, as do service times, which are learned per
//! [`OpClass`] because a thumbnail and a 24 MP input differ a hundredfold.

use contracts::ResizeOp;
use std::{
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// How long waits are observed before the standing queue is judged again.
pub const INTERVAL: Duration = Duration::from_millis(100);
/// Inputs above this many bytes are large inputs: their budget is the deadline,
/// since the p99 target holds for images under 1 MB.
pub const LARGE_INPUT_BYTES: u64 = 1 << 20;
/// Outputs whose longer requested side exceeds this are large outputs.
pub const LARGE_OUTPUT_SIDE: u32 = 512;
/// Weight of a new service-time sample in its class' moving average.
const SERVICE_ALPHA: f64 = 0.125;

/// The kinds of operation whose service times differ enough to be learned apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    Thumbnail,
    LargeOutput,
    LargeInput,
}

impl OpClass {
    const COUNT: usize = 3;

    fn index(self) -> usize {
        self as usize
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Thumbnail => "thumbnail",
            Self::LargeOutput => "large_output",
            Self::LargeInput => "large_input",
        }
    }

    /// The class of a request from what its head says: the operation (if it
    /// parses; a bad one is refused later and costs nothing), the declared
    /// size and the declared type.
    pub fn of(head: Head<'_>) -> Self {
        let Head { op, content_length, declared } = head;
        if content_length.is_some_and(|n| n > LARGE_INPUT_BYTES) {
            return Self::LargeInput;
        }
        // A GIF is most often animated, and every frame is resized: its cost
        // grows with the input, as a large input's does.
        if declared == Some(contracts::ImageFormat::Gif) && op.is_some_and(|op| op.frames == contracts::Frames::All) {
            return Self::LargeInput;
        }
        match op {
            // An AV1 encode costs a 1024-pixel WebP's CPU even for a thumbnail.
            Some(op) if op.format == Some(contracts::ImageFormat::Avif) => Self::LargeOutput,
            Some(op) => match op.width.max(op.height) {
                Some(side) if side <= LARGE_OUTPUT_SIDE => Self::Thumbnail,
                // No dimension at all keeps the input's size.
                _ => Self::LargeOutput,
            },
            None => Self::Thumbnail,
        }
    }
}

/// What a request's head says of the work it asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Head<'a> {
    pub op: Option<&'a ResizeOp>,
    pub content_length: Option<u64>,
    /// The `Content-Type`'s format (the body is checked against it later).
    pub declared: Option<contracts::ImageFormat>,
}

/// The budgets requests are admitted against.
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    /// The fleet's p99 latency target for images under [`LARGE_INPUT_BYTES`].
    pub latency_target: Duration,
    /// How long a job may take at all (its deadline).
    pub job_timeout: Duration,
}

impl Budgets {
    pub fn of(&self, class: OpClass) -> Duration {
        match class {
            OpClass::LargeInput => self.job_timeout,
            _ => self.latency_target.min(self.job_timeout),
        }
    }
}

/// The decision for one request: admitted when the expected wait plus its
/// expected service time fits its budget.
pub fn fits(standing_wait: Duration, service: Duration, budget: Duration) -> bool {
    standing_wait + service <= budget
}

/// The new moving average of a service time (the first sample is taken as is).
pub fn learn(previous: Option<Duration>, sample: Duration) -> Duration {
    match previous {
        None => sample,
        Some(p) => p.mul_f64(1.0 - SERVICE_ALPHA) + sample.mul_f64(SERVICE_ALPHA),
    }
}

#[derive(Debug)]
struct State {
    window_started: Instant,
    /// Smallest queue wait seen in the current window.
    window_min: Option<Duration>,
    /// The standing queue as of the last window that saw a job (zero: none).
    standing: Duration,
    /// Learned service time per [`OpClass`]; `None` until one finished.
    service: [Option<Duration>; OpClass::COUNT],
}

/// Shared by every request of one api-server.
#[derive(Debug)]
pub struct Admission {
    budgets: Budgets,
    max_in_flight: usize,
    /// Requests holding a [`Permit`]; counted without the lock, since every request touches it.
    in_flight: AtomicUsize,
    /// Observations and the verdict they lead to; held only for a few comparisons.
    state: Mutex<State>,
}

/// A request in progress; dropping it frees its place.
#[derive(Debug)]
pub struct Permit<'a>(&'a Admission);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// This server already holds `max_in_flight` requests.
    InFlightCap,
    /// The standing queue plus this request's service time would break its budget.
    OverBudget,
}

impl Admission {
    pub fn new(budgets: Budgets, max_in_flight: usize) -> Self {
        Self {
            budgets,
            max_in_flight,
            in_flight: AtomicUsize::new(0),
            state: Mutex::new(State {
                window_started: Instant::now(),
                window_min: None,
                standing: Duration::ZERO,
                service: [None; OpClass::COUNT],
            }),
        }
    }

    /// Admits a request of `class` or says why not.
    pub fn try_admit(&self, class: OpClass) -> Result<Permit<'_>, Shed> {
        let in_flight = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let permit = Permit(self);
        if in_flight >= self.max_in_flight {
            return Err(Shed::InFlightCap);
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // With nothing in progress nothing can report the queue has drained:
        // a stale verdict must not lock the door once the queue is empty.
        if in_flight == 0 && s.window_started.elapsed() >= INTERVAL {
            s.standing = Duration::ZERO;
        }
        let service = s.service[class.index()].unwrap_or(Duration::ZERO);
        if fits(s.standing, service, self.budgets.of(class)) { Ok(permit) } else { Err(Shed::OverBudget) }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The learned service time of a class, if any job of it finished.
    pub fn service_time(&self, class: OpClass) -> Option<Duration> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).service[class.index()]
    }

    /// Records a finished job: how long it waited and, if it was served, how long it took.
    pub fn observe(&self, class: OpClass, wait: Duration, service: Option<Duration>) {
        self.observe_at(class, wait, service, Instant::now());
    }

    fn observe_at(&self, class: OpClass, wait: Duration, service: Option<Duration>, now: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sample) = service {
            s.service[class.index()] = Some(learn(s.service[class.index()], sample));
        }
        s.window_min = Some(s.window_min.map_or(wait, |m| m.min(wait)));
        if now.duration_since(s.window_started) >= INTERVAL {
            if let Some(min) = s.window_min.take() {
                s.standing = min;
            }
            s.window_started = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::ImageFormat;

    const MS: Duration = Duration::from_millis(1);

    fn budgets() -> Budgets {
        Budgets { latency_target: 500 * MS, job_timeout: 5000 * MS }
    }

    fn op(q: &str) -> ResizeOp {
        ResizeOp::parse_canonical(q).unwrap()
    }

    #[test]
    fn classes_follow_the_output_side_and_the_input_size() {
        let class = |q: &str, content_length: Option<u64>| {
            OpClass::of(Head { op: Some(&op(q)), content_length, declared: Some(ImageFormat::Jpeg) })
        };
        assert_eq!(class("w=320&h=320", Some(200_000)), OpClass::Thumbnail);
        assert_eq!(class("w=1024", Some(200_000)), OpClass::LargeOutput);
        assert_eq!(class("h=2000&format=webp", None), OpClass::LargeOutput);
        assert_eq!(class("w=320", Some(25 << 20)), OpClass::LargeInput);
        assert_eq!(OpClass::of(Head::default()), OpClass::Thumbnail);
        assert_eq!(class("w=320&format=avif", Some(200_000)), OpClass::LargeOutput);
        let gif = |q: &str| {
            OpClass::of(Head { op: Some(&op(q)), content_length: Some(9_000), declared: Some(ImageFormat::Gif) })
        };
        assert_eq!(gif("w=320"), OpClass::LargeInput, "every frame of a GIF is resized");
        assert_eq!(gif("w=320&frames=first"), OpClass::Thumbnail);
        assert_eq!(budgets().of(OpClass::LargeInput), 5000 * MS);
        assert_eq!(budgets().of(OpClass::LargeOutput), 500 * MS);
    }

    #[test]
    fn a_request_fits_while_wait_plus_service_is_within_budget() {
        assert!(fits(360 * MS, 140 * MS, 500 * MS));
        assert!(!fits(361 * MS, 140 * MS, 500 * MS));
        assert!(fits(Duration::ZERO, 4999 * MS, 5000 * MS));
    }

    #[test]
    fn service_times_are_a_moving_average() {
        assert_eq!(learn(None, 140 * MS), 140 * MS);
        let after = learn(Some(100 * MS), 180 * MS);
        assert_eq!(after, 110 * MS);
    }

    #[test]
    fn long_jobs_queue_up_to_the_budget_instead_of_being_refused_at_a_queue_of_one() {
        let a = Admission::new(budgets(), 100);
        let t0 = Instant::now();
        let _busy = a.try_admit(OpClass::LargeOutput).unwrap();
        // Every 140 ms job of a window waited 280 ms: a standing queue, but within budget.
        a.observe_at(OpClass::LargeOutput, 280 * MS, Some(140 * MS), t0);
        a.observe_at(OpClass::LargeOutput, 300 * MS, Some(140 * MS), t0 + INTERVAL);
        assert!(a.try_admit(OpClass::LargeOutput).is_ok());
        // The queue grows past what the budget holds for a 140 ms job…
        a.observe_at(OpClass::LargeOutput, 400 * MS, Some(140 * MS), t0 + 2 * INTERVAL);
        a.observe_at(OpClass::LargeOutput, 420 * MS, Some(140 * MS), t0 + 3 * INTERVAL);
        assert_eq!(a.try_admit(OpClass::LargeOutput).unwrap_err(), Shed::OverBudget);
        // …while a 3 ms thumbnail still fits behind it.
        a.observe_at(OpClass::Thumbnail, 420 * MS, Some(3 * MS), t0 + 3 * INTERVAL);
        assert!(a.try_admit(OpClass::Thumbnail).is_ok());
        // Waits fall back: admit again.
        a.observe_at(OpClass::LargeOutput, 20 * MS, Some(140 * MS), t0 + 4 * INTERVAL);
        a.observe_at(OpClass::LargeOutput, 20 * MS, Some(140 * MS), t0 + 5 * INTERVAL);
        assert!(a.try_admit(OpClass::LargeOutput).is_ok());
    }

    #[test]
    fn a_burst_with_short_waits_in_the_window_is_no_standing_queue() {
        let a = Admission::new(budgets(), 100);
        let t0 = Instant::now();
        let _busy = a.try_admit(OpClass::Thumbnail).unwrap();
        a.observe_at(OpClass::Thumbnail, 900 * MS, Some(3 * MS), t0);
        a.observe_at(OpClass::Thumbnail, 5 * MS, Some(3 * MS), t0 + 50 * MS);
        a.observe_at(OpClass::Thumbnail, 800 * MS, Some(3 * MS), t0 + INTERVAL);
        assert!(a.try_admit(OpClass::Thumbnail).is_ok());
    }

    #[test]
    fn hard_cap_applies_regardless() {
        let a = Admission::new(budgets(), 2);
        let first = a.try_admit(OpClass::Thumbnail).unwrap();
        let _second = a.try_admit(OpClass::Thumbnail).unwrap();
        assert_eq!(a.try_admit(OpClass::Thumbnail).unwrap_err(), Shed::InFlightCap);
        assert_eq!(a.in_flight(), 2, "a refused request holds no place");
        drop(first);
        assert!(a.try_admit(OpClass::Thumbnail).is_ok());
    }

    #[test]
    fn an_empty_server_forgets_a_stale_verdict() {
        let a = Admission::new(Budgets { latency_target: 10 * MS, job_timeout: 5000 * MS }, 10);
        let t0 = Instant::now();
        a.observe_at(OpClass::Thumbnail, 50 * MS, Some(MS), t0 + INTERVAL);
        assert_eq!(a.try_admit(OpClass::Thumbnail).unwrap_err(), Shed::OverBudget);
        std::thread::sleep(2 * INTERVAL);
        assert!(a.try_admit(OpClass::Thumbnail).is_ok(), "nothing in flight after an interval: admit again");
    }
}
