//! What the tasks of one auth-cache share.

use crate::replica::Replica;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub struct Shared {
    replica: RwLock<Replica>,
    confirmed: std::sync::Mutex<Instant>,
    loaded: watch::Sender<bool>,
    /// Set once this replica's verify subscriptions are live on the server:
    /// from then on a request for it is answered, not met with "no responders".
    answering: watch::Sender<bool>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            replica: RwLock::default(),
            confirmed: std::sync::Mutex::new(Instant::now()),
            loaded: watch::Sender::new(false),
            answering: watch::Sender::new(false),
        }
    }
}

impl Shared {
    pub fn replica(&self) -> RwLockReadGuard<'_, Replica> {
        self.replica.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn replica_mut(&self) -> RwLockWriteGuard<'_, Replica> {
        self.replica.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn snapshot_loaded(&self) {
        if !*self.loaded.borrow() {
            self.confirm_now();
            self.loaded.send_replace(true);
        }
    }

    pub fn is_loaded(&self) -> bool {
        *self.loaded.borrow()
    }

    /// Resolves once the first snapshot of IDENTITY is in the replica.
    pub async fn wait_loaded(&self) {
        let mut rx = self.loaded.subscribe();
        let _ = rx.wait_for(|l| *l).await;
    }

    pub fn now_answering(&self) {
        self.answering.send_replace(true);
    }

    pub fn is_answering(&self) -> bool {
        *self.answering.borrow()
    }

    pub fn confirm_now(&self) {
        *self.confirmed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Time since the replica was last known to hold the bucket's latest revision.
    pub fn staleness(&self) -> Duration {
        self.confirmed.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }
}
