//! Admission control: graceful degradation instead of a growing queue.
//!
//! A request that would wait in the queue past its latency budget is better
//! refused at once (503 + `Retry-After`, so the client backs off or goes
//! elsewhere) than accepted and timed out, because every accepted-but-late
//! request also delays the ones behind it. Two limits apply:
//! - a hard cap on requests in progress at this server (memory bound);
//! - a standing-queue detector in the manner of CoDel: when even the *fastest*
//!   job of the last interval waited longer than the target, the queue is not
//!   a burst that will drain by itself, so new requests are shed until the
//!   waits fall back below the target. Queue waits are measured by the workers
//!   (publish to start of processing) and come back with every answer.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// How long waits are observed before deciding whether a queue is standing.
pub const INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct Window {
    started: Instant,
    min_wait: Option<Duration>,
    overloaded: bool,
}

#[derive(Debug)]
pub struct Admission {
    target: Duration,
    max_in_flight: usize,
    in_flight: AtomicUsize,
    window: Mutex<Window>,
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
    /// Jobs are waiting longer than the target in the queue.
    StandingQueue,
}

/// The decision for one window: is the queue standing? `None` keeps the last
/// verdict (no job finished in the window, so there is nothing new to judge).
pub fn standing_queue(min_wait: Option<Duration>, target: Duration) -> Option<bool> {
    min_wait.map(|w| w > target)
}

impl Admission {
    pub fn new(target: Duration, max_in_flight: usize) -> Self {
        Self {
            target,
            max_in_flight,
            in_flight: AtomicUsize::new(0),
            window: Mutex::new(Window { started: Instant::now(), min_wait: None, overloaded: false }),
        }
    }

    /// Admits a request or says why not.
    pub fn try_admit(&self) -> Result<Permit<'_>, Shed> {
        let in_flight = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let permit = Permit(self);
        if in_flight >= self.max_in_flight {
            return Err(Shed::InFlightCap);
        }
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        // With nothing in progress nothing can report the queue has drained:
        // a stale verdict must not lock the door once the queue is empty.
        if w.overloaded && in_flight == 0 && w.started.elapsed() >= INTERVAL {
            w.overloaded = false;
        }
        if w.overloaded { Err(Shed::StandingQueue) } else { Ok(permit) }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Records the queue wait of a finished job.
    pub fn observe(&self, wait: Duration) {
        self.observe_at(wait, Instant::now());
    }

    fn observe_at(&self, wait: Duration, now: Instant) {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        w.min_wait = Some(w.min_wait.map_or(wait, |m| m.min(wait)));
        if now.duration_since(w.started) >= INTERVAL {
            if let Some(verdict) = standing_queue(w.min_wait, self.target) {
                w.overloaded = verdict;
            }
            w.started = now;
            w.min_wait = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn verdict_follows_the_minimum_wait() {
        assert_eq!(standing_queue(Some(150 * MS), 100 * MS), Some(true));
        assert_eq!(standing_queue(Some(100 * MS), 100 * MS), Some(false));
        assert_eq!(standing_queue(None, 100 * MS), None);
    }

    #[test]
    fn sheds_only_while_the_queue_stands() {
        let a = Admission::new(100 * MS, 10);
        let t0 = Instant::now();
        let _busy = a.try_admit().unwrap();
        // A burst: one slow job but also a fast one in the same window is no standing queue.
        a.observe_at(400 * MS, t0);
        a.observe_at(5 * MS, t0 + 50 * MS);
        a.observe_at(300 * MS, t0 + 120 * MS);
        assert!(a.try_admit().is_ok());
        // Every job of a window waited too long: shed.
        a.observe_at(300 * MS, t0 + 150 * MS);
        a.observe_at(250 * MS, t0 + 240 * MS);
        assert_eq!(a.try_admit().unwrap_err(), Shed::StandingQueue);
        // Waits fall back: admit again.
        a.observe_at(20 * MS, t0 + 300 * MS);
        a.observe_at(20 * MS, t0 + 360 * MS);
        assert!(a.try_admit().is_ok());
    }

    #[test]
    fn hard_cap_applies_regardless() {
        let a = Admission::new(100 * MS, 2);
        let first = a.try_admit().unwrap();
        let _second = a.try_admit().unwrap();
        assert_eq!(a.try_admit().unwrap_err(), Shed::InFlightCap);
        assert_eq!(a.in_flight(), 2, "a refused request holds no place");
        drop(first);
        assert!(a.try_admit().is_ok());
    }

    #[test]
    fn an_empty_server_forgets_a_stale_verdict() {
        let a = Admission::new(10 * MS, 10);
        let t0 = Instant::now();
        a.observe_at(50 * MS, t0 + INTERVAL);
        assert_eq!(a.try_admit().unwrap_err(), Shed::StandingQueue);
        std::thread::sleep(2 * INTERVAL);
        assert!(a.try_admit().is_ok(), "nothing in flight after an interval: admit again");
    }
}
