//! Leader election over a `coordination.k8s.io` Lease: several operator
//! replicas may run, only the holder reconciles.
//!
//! kube-runtime has no election of its own; kube-lease-manager renews the
//! Lease with server-side apply, so two replicas can never both believe they
//! hold it for longer than the lease duration.

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Election {
    state: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

/// Starts competing for `name` in `namespace` as `identity`. A holder that
/// stops renewing (killed, partitioned) loses the Lease after `duration_secs`.
pub async fn elect(
    client: Client,
    namespace: &str,
    name: &str,
    identity: &str,
    duration_secs: u64,
) -> Result<Election, LeaseManagerError> {
    let manager = LeaseManagerBuilder::new(client, name)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(duration_secs)
        // Renew well before expiry so a slow apiserver round trip does not cost the lease.
        .with_grace((duration_secs / 3).max(1))
        .build()
        .await?;
    let (state, task) = manager.watch().await;
    Ok(Election { state, task })
}

impl Election {
    /// Resolves once this replica holds the Lease; `false` if the election ended.
    pub async fn acquired(&mut self) -> bool {
        self.state.wait_for(|held| *held).await.is_ok()
    }

    /// A future that resolves when this replica no longer holds the Lease.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut state = self.state.clone();
        async move {
            let _ = state.wait_for(|held| !*held).await;
        }
    }

    /// Gives the Lease up so a standby takes over at once rather than after the lease duration.
    pub async fn release(self) {
        drop(self.state);
        match self.task.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "releasing the leader lease"),
            Err(e) => tracing::warn!(error = %e, "leader election task"),
        }
    }
}
