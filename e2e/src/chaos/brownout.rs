//! A brownout of a JetStream node, and the operator's answer to it.
//!
//! A node stopped outright is replaced by raft within its election timeout.
//! A node that runs a tenth of the time keeps sending heartbeats, so raft
//! keeps it as leader while every JetStream request through it waits: that
//! is the case the operator's failover exists for (DESIGN §4). The suite runs
//! the operator's own code against the fleet, not a copy: the sample of
//! `operator::queue::NatsQueue::observe`, the verdict of
//! `operator::failover::judge`, the step-down request of
//! `NatsQueue::step_down`, once a second (the operator samples on every
//! reconcile round).

use operator::{
    failover::{self, Verdict},
    queue::{NatsQueue, Queue, QueueAccess},
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// Of every cycle, how long the process is stopped and how long it runs.
pub const STOPPED: Duration = Duration::from_millis(400);
pub const RUNNING: Duration = Duration::from_millis(100);

/// Stops and continues `pid` in [`STOPPED`]/[`RUNNING`] turns until `done`;
/// leaves it running.
pub fn cycle(pid: u32, done: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    let signal = move |sig: libc::c_int| {
        // SAFETY: a signal to a process of the fleet; a stale pid is harmless here.
        unsafe { libc::kill(pid as libc::pid_t, sig) };
    };
    tokio::spawn(async move {
        while !done.load(Ordering::Relaxed) {
            signal(libc::SIGSTOP);
            tokio::time::sleep(STOPPED).await;
            signal(libc::SIGCONT);
            tokio::time::sleep(RUNNING).await;
        }
        signal(libc::SIGCONT);
    })
}

/// What the operator's failover did while it watched.
#[derive(Debug, Default)]
pub struct Actions {
    /// When (from the start of the watch) it asked for a step-down, and why.
    pub step_downs: Vec<(Duration, String)>,
    /// Samples that failed, and verdicts to hold, by text (the last of each).
    pub held: Option<String>,
    pub failed: Option<String>,
}

/// Runs the operator's failover round every second against the server at
/// `url` as the operator's NATS user, until `done`.
pub fn watch(url: String, nkey_seed: String, done: Arc<AtomicBool>) -> tokio::task::JoinHandle<Actions> {
    tokio::spawn(async move {
        let queue = NatsQueue::new(Duration::from_secs(2));
        queue.authorize(&url, QueueAccess { nkey_seed, ca_pem: None });
        let started = Instant::now();
        let mut actions = Actions::default();
        let mut last_step_down = None;
        while !done.load(Ordering::Relaxed) {
            let now = contracts::job::unix_ms(std::time::SystemTime::now()) as i64 / 1000;
            match queue.observe(&url, 3).await {
                Err(e) => actions.failed = Some(e.to_string()),
                Ok(sample) => match failover::judge(&sample, last_step_down, now) {
                    Verdict::Healthy => {}
                    Verdict::Hold(why) => actions.held = Some(why),
                    Verdict::StepDown(why) => match queue.step_down(&url).await {
                        Ok(()) => {
                            last_step_down = Some(now);
                            actions.step_downs.push((started.elapsed(), why));
                        }
                        Err(e) => actions.failed = Some(format!("{why}; step-down failed: {e}")),
                    },
                },
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        actions
    })
}
