//! The edge in front of the api-servers, as a load balancer with active
//! health checks runs it: every backend's `/healthz` is asked every
//! [`INTERVAL`]; after [`UNHEALTHY_AFTER`] checks in a row without an answer
//! within [`CHECK_TIMEOUT`] the backend is ejected, one answer brings it back.
//!
//! An ejected backend gets no new requests while another is healthy, and the
//! requests already waiting on it are answered by the edge itself: a 503
//! problem of type [`EJECTED`], at once, the way Envoy answers the requests
//! on connections it closes when a host fails its health check
//! (`close_connections_on_host_health_failure`). A stopped process still
//! accepts connections; without this its clients would wait out their own
//! timeouts with no answer at all.

use super::fleet::Backends;
use std::{sync::Arc, time::Duration};
use tokio::sync::watch;

/// How often each backend is checked.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// A check not answered within this failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(250);
/// Failed checks in a row that eject a backend.
pub const UNHEALTHY_AFTER: u32 = 2;
/// The problem type of the edge's own answer for a request on an ejected backend.
pub const EJECTED: &str = "edge:backend-ejected";

/// One backend's health as the checks see it; pure, so its rule is tested without I/O.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checks {
    failed_in_a_row: u32,
}

impl Checks {
    /// Records one check; whether the backend is healthy after it.
    pub fn record(&mut self, answered: bool) -> bool {
        self.failed_in_a_row = if answered { 0 } else { self.failed_in_a_row + 1 };
        self.failed_in_a_row < UNHEALTHY_AFTER
    }
}

/// The health of every backend, shared by the checker and the requests.
#[derive(Clone)]
pub struct Edge {
    /// Per backend index: healthy or not, written only by the checker task.
    healthy: Arc<Vec<watch::Sender<bool>>>,
}

impl Edge {
    /// Starts checking `backends` (as they are now and after restarts on new ports).
    pub fn watch(backends: Backends) -> Self {
        let healthy: Arc<Vec<_>> = Arc::new((0..backends.len()).map(|_| watch::Sender::new(true)).collect());
        let me = Self { healthy: healthy.clone() };
        tokio::spawn(async move {
            let http = reqwest::Client::builder().timeout(CHECK_TIMEOUT).build().expect("health-check client");
            let mut checks = vec![Checks::default(); healthy.len()];
            let mut tick = tokio::time::interval(INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let asks = (0..healthy.len()).map(|i| {
                    let url = format!("{}/healthz", backends.get(i).0);
                    let http = http.clone();
                    async move { http.get(url).send().await.is_ok_and(|r| r.status().is_success()) }
                });
                for (i, answered) in futures::future::join_all(asks).await.into_iter().enumerate() {
                    let now = checks[i].record(answered);
                    healthy[i].send_if_modified(|h| std::mem::replace(h, now) != now);
                }
            }
        });
        me
    }

    pub fn is_healthy(&self, backend: usize) -> bool {
        *self.healthy[backend].borrow()
    }

    /// The order to try backends in for request `i`: round robin from `i`,
    /// the healthy ones first (an ejected one only when every one is).
    pub fn order(&self, i: usize) -> Vec<usize> {
        let n = self.healthy.len();
        let (mut up, down): (Vec<usize>, Vec<usize>) = (0..n).map(|k| (i + k) % n).partition(|b| self.is_healthy(*b));
        up.extend(down);
        up
    }

    /// Resolves when `backend` is ejected (never, for one already ejected:
    /// a request sent there had nowhere better to go).
    pub async fn ejected(&self, backend: usize) {
        let mut rx = self.healthy[backend].subscribe();
        if !*rx.borrow_and_update() {
            return std::future::pending().await;
        }
        if rx.wait_for(|healthy| !healthy).await.is_err() {
            std::future::pending::<()>().await;
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
}
