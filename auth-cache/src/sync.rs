//! Keeping the replica current: a watch on IDENTITY (the snapshot of every
//! key's latest value, then each change as it is written), a watch on the
//! usage rollups for quotas, and a confirmation loop that measures how far
//! behind the bucket the replica is.
//!
//! When NATS or the bucket cannot be reached the replica keeps answering from
//! what it has; `auth_cache_replication_lag_seconds` says for how long.

use crate::{metrics::Metrics, replica::Change, state::Shared};
use async_nats::jetstream::{self, kv};
use contracts::{identity, usage};
use futures::StreamExt;
use std::{sync::Arc, time::Duration};
use tracing::{info, warn};

fn change(entry: &kv::Entry) -> Change<'_> {
    match entry.operation {
        kv::Operation::Put => Change::Put(&entry.value),
        kv::Operation::Delete | kv::Operation::Purge => Change::Delete,
    }
}

/// Follows IDENTITY for as long as the process lives, watching again after
/// any interruption (a fresh watch replays the latest value of every key, so
/// nothing missed while disconnected stays missed).
pub async fn follow_identity(js: jetstream::Context, replicas: usize, shared: Arc<Shared>, metrics: Metrics) {
    loop {
        if let Err(e) = watch_identity(&js, replicas, &shared, &metrics).await {
            warn!(error = %e, "IDENTITY watch interrupted; serving from the replica and watching again");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn watch_identity(
    js: &jetstream::Context,
    replicas: usize,
    shared: &Shared,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let kv = match js.get_key_value(identity::BUCKET).await {
        Ok(kv) => kv,
        Err(_) => js.create_key_value(identity::bucket(replicas)).await?,
    };
    let mut watch = kv.watch_with_history(">").await?;
    // An empty bucket delivers nothing: the snapshot is complete at once.
    if js.get_stream(identity::STREAM).await?.cached_info().state.messages == 0 {
        shared.snapshot_loaded();
    }
    while let Some(entry) = watch.next().await {
        let entry = entry?;
        let accepted = shared.replica_mut().apply(&entry.key, change(&entry), entry.revision);
        if !accepted {
            metrics.rejected_records.inc();
            warn!(key = %entry.key, "an IDENTITY value could not be read; it is not in the replica");
        }
        let age = time::OffsetDateTime::now_utc() - entry.created;
        metrics.propagation.observe(age.as_seconds_f64().max(0.0));
        if entry.delta == 0 {
            shared.snapshot_loaded();
        }
        let r = shared.replica();
        metrics.tenants.set(r.tenants() as i64);
        metrics.keys.set(r.keys() as i64);
    }
    anyhow::bail!("the watch ended")
}

/// Follows the usage rollups so that monthly quotas see what the aggregator counted.
pub async fn follow_usage(js: jetstream::Context, replicas: usize, shared: Arc<Shared>) {
    loop {
        if let Err(e) = watch_usage(&js, replicas, &shared).await {
            warn!(error = %e, "usage rollup watch interrupted; quotas use the last counts");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn watch_usage(js: &jetstream::Context, replicas: usize, shared: &Shared) -> anyhow::Result<()> {
    let kv = match js.get_key_value(usage::streams::ROLLUP_BUCKET).await {
        Ok(kv) => kv,
        Err(_) => js.create_key_value(usage::streams::rollup_bucket(replicas)).await?,
    };
    let mut watch = kv.watch_with_history(">").await?;
    while let Some(entry) = watch.next().await {
        let entry = entry?;
        let total = match entry.operation {
            kv::Operation::Put => usage::DayRollup::decode(&entry.value).ok().map(|d| d.day()),
            _ => None,
        };
        shared.replica_mut().apply_usage(&entry.key, total);
    }
    anyhow::bail!("the watch ended")
}

/// Every `every`, asks the bucket for its latest revision: a replica holding it
/// is current as of now. The lag gauge grows while that cannot be confirmed.
pub async fn confirm(js: jetstream::Context, shared: Arc<Shared>, metrics: Metrics, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_stale = false;
    loop {
        tick.tick().await;
        let latest = async {
            // The lookup itself fetches the stream's current state.
            let s = js.get_stream(identity::STREAM).await.ok()?;
            Some(s.cached_info().state.last_sequence)
        };
        let latest = tokio::time::timeout(every.max(Duration::from_millis(500)), latest).await.ok().flatten();
        let applied = shared.replica().revision;
        if let Some(latest) = latest {
            metrics.revisions_behind.set(latest.saturating_sub(applied) as i64);
            if applied >= latest && shared.is_loaded() {
                shared.confirm_now();
            }
        }
        let lag = shared.staleness().as_secs_f64();
        metrics.replication_lag.set(lag);
        let stale = lag > 5.0;
        if stale != was_stale {
            if stale {
                warn!(lag_s = lag, "IDENTITY unreachable or behind; answering from a replica of this age");
            } else {
                info!("IDENTITY replica current again");
            }
            was_stale = stale;
        }
    }
}
