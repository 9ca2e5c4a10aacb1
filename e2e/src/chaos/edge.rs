//! The edge in front of the api-servers, as a load balancer with active
//! health checks runs it. Two checks per backend, every [`INTERVAL`]:
//! - liveness, `/healthz` answered within [`LIVE_TIMEOUT`]: after
//!   [`FAILED_IN_A_ROW`] misses the backend is ejected. The requests waiting
//!   on it are answered by the edge itself, a 503 problem of type
//!   [`EJECTED`], at once, the way Envoy answers the requests on connections
//!   it closes when a host fails its health check
//!   (`close_connections_on_host_health_failure`). A stopped process still
//!   accepts connections; without this its clients would wait out their own
//!   timeouts with no answer at all.
//! - readiness, `/readyz` answered 200 within [`READY_TIMEOUT`] (the
//!   api-server reaches JetStream): a backend that is not ready gets no new
//!   requests while another is, as a Service leaves out a pod that fails its
//!   readiness probe; what it has in flight it finishes.
//!
//! One answer brings either back. When no backend qualifies, requests go to
//! all of them in turn: the edge has nothing better.

use super::fleet::Backends;
use std::{sync::Arc, time::Duration};
use tokio::sync::watch;

/// How often each backend is checked.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// A liveness check not answered within this failed.
pub const LIVE_TIMEOUT: Duration = Duration::from_millis(250);
/// The api-server's readiness asks JetStream with a 1 s timeout of its own.
pub const READY_TIMEOUT: Duration = Duration::from_millis(1200);
/// Failed checks in a row that take a backend out.
pub const FAILED_IN_A_ROW: u32 = 2;
/// The problem type of the edge's own answer for a request on an ejected backend.
pub const EJECTED: &str = "edge:backend-ejected";

/// One check of one backend as its results come; pure, so its rule is tested without I/O.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checks {
    failed_in_a_row: u32,
}

impl Checks {
    /// Records one check; whether the backend passes after it.
    pub fn record(&mut self, answered: bool) -> bool {
        self.failed_in_a_row = if answered { 0 } else { self.failed_in_a_row + 1 };
        self.failed_in_a_row < FAILED_IN_A_ROW
    }
}

/// Where a request should go first: ready, then alive, then the rest, each
/// in round-robin order from `i`.
pub fn order(i: usize, alive: &[bool], ready: &[bool]) -> Vec<usize> {
    let n = alive.len();
    let mut all: Vec<usize> = (0..n).map(|k| (i + k) % n).collect();
    all.sort_by_key(|&b| match (alive[b], ready[b]) {
        (true, true) => 0,
        (true, false) => 1,
        _ => 2,
    });
    all
}

/// The health of every backend, shared by the checkers and the requests.
#[derive(Clone)]
pub struct Edge {
    /// Per backend index: answering `/healthz`; written only by its checker task.
    alive: Arc<Vec<watch::Sender<bool>>>,
    /// Per backend index: `/readyz` says 200; written only by its checker task.
    ready: Arc<Vec<watch::Sender<bool>>>,
}

impl Edge {
    /// Starts checking `backends` (as they are now and after restarts on new ports).
    pub fn watch(backends: Backends) -> Self {
        let flags = || -> Arc<Vec<_>> { Arc::new((0..backends.len()).map(|_| watch::Sender::new(true)).collect()) };
        let me = Self { alive: flags(), ready: flags() };
        tokio::spawn(check(backends.clone(), me.alive.clone(), "/healthz", LIVE_TIMEOUT));
        tokio::spawn(check(backends, me.ready.clone(), "/readyz", READY_TIMEOUT));
        me
    }

    /// The order to try backends in for request `i`.
    pub fn order(&self, i: usize) -> Vec<usize> {
        let read = |flags: &[watch::Sender<bool>]| flags.iter().map(|f| *f.borrow()).collect::<Vec<_>>();
        order(i, &read(&self.alive), &read(&self.ready))
    }

    /// Resolves when `backend` is ejected (never, for one already ejected:
    /// a request sent there had nowhere better to go).
    pub async fn ejected(&self, backend: usize) {
        let mut rx = self.alive[backend].subscribe();
        if !*rx.borrow_and_update() {
            return std::future::pending().await;
        }
        if rx.wait_for(|alive| !alive).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Asks `path` of every backend every [`INTERVAL`] and keeps `flags` to the
/// verdicts (a 200 within `timeout` passes).
async fn check(backends: Backends, flags: Arc<Vec<watch::Sender<bool>>>, path: &'static str, timeout: Duration) {
    let http = reqwest::Client::builder().timeout(timeout).build().expect("health-check client");
    let mut checks = vec![Checks::default(); flags.len()];
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let asks = (0..flags.len()).map(|i| {
            let url = format!("{}{path}", backends.get(i).0);
            let http = http.clone();
            async move { http.get(url).send().await.is_ok_and(|r| r.status().is_success()) }
        });
        for (i, answered) in futures::future::join_all(asks).await.into_iter().enumerate() {
            let now = checks[i].record(answered);
            flags[i].send_if_modified(|f| std::mem::replace(f, now) != now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejected_after_two_failed_checks_in_a_row_and_back_after_one_answer() {
        let mut c = Checks::default();
        assert!(c.record(false), "one missed check is not an ejection");
        assert!(c.record(true));
        assert!(c.record(false));
        assert!(!c.record(false), "two in a row eject");
        assert!(!c.record(false));
        assert!(c.record(true), "one answer brings it back");
    }

    #[test]
    fn ready_backends_first_then_live_ones_then_the_rest() {
        assert_eq!(order(0, &[true, true], &[true, true]), [0, 1]);
        assert_eq!(order(1, &[true, true], &[true, true]), [1, 0], "round robin");
        assert_eq!(order(0, &[true, true], &[false, true]), [1, 0], "not ready: last among the live");
        assert_eq!(order(0, &[false, true], &[true, false]), [1, 0], "dead: last of all");
        assert_eq!(order(1, &[false, false], &[false, false]), [1, 0], "nothing qualifies: all in turn");
        assert_eq!(order(2, &[true, false, true], &[false, false, true]), [2, 0, 1]);
    }
}
