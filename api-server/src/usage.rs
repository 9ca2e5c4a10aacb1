//! Usage records of requests the api-server answers itself (refused input,
//! limits, overload, queue trouble). Records are grouped in memory and
//! published on a 1 s / 1,000-record boundary and at shutdown, so metering
//! costs a refused request no JetStream round trip; a hard crash loses at
//! most the records of the current window. Requests a worker processed are
//! metered by the worker.
//!
//! A flush publishes its refusals as batches ([`contracts::usage::batch`]),
//! a few messages instead of one per request. A batch not acknowledged is
//! kept as it was built and sent again under the same id, so the stream drops
//! it if the first attempt was stored after all. A record of a request that may
//! have reached JOBS (queue trouble, a missed deadline) travels alone under its
//! request id: the worker may publish that request's record too, and the
//! stream keeps only one of the two.

use crate::metrics::Metrics;
use async_nats::jetstream;
use contracts::{
    ProblemKind,
    usage::{UsageRecord, batch, streams},
};
use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};
use tokio::sync::mpsc;
use tracing::warn;

/// Flush when this many records wait…
pub const FLUSH_RECORDS: usize = 1000;
/// …or when the oldest has waited this long.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Records kept for retry while JetStream is unreachable; beyond it the oldest are dropped (and counted).
pub const MAX_BUFFERED: usize = 100_000;

/// Whether the buffer is due for a flush.
pub fn due(len: usize, oldest: Option<Instant>, now: Instant) -> bool {
    len >= FLUSH_RECORDS || oldest.is_some_and(|t| now.duration_since(t) >= FLUSH_INTERVAL)
}

/// Where handlers drop their records; cheap to clone.
#[derive(Clone)]
pub struct UsageSink {
    tx: mpsc::Sender<UsageRecord>,
    metrics: Metrics,
}

/// The flushing task; [`Flusher::close`] publishes what is left.
pub struct Flusher(tokio::task::JoinHandle<()>);

impl UsageSink {
    pub fn start(js: jetstream::Context, replicas: usize, metrics: Metrics) -> (Self, Flusher, mpsc::Sender<()>) {
        let (tx, rx) = mpsc::channel(FLUSH_RECORDS * 4);
        let (stop_tx, stop_rx) = mpsc::channel(1);
        let m = metrics.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = js.get_or_create_stream(streams::usage_stream(replicas)).await {
                warn!(error = %e, "USAGE stream not available yet; records stay buffered");
            }
            flush_loop(js, rx, stop_rx, m).await
        });
        (Self { tx, metrics }, Flusher(task), stop_tx)
    }

    /// Queues a record; never waits. A full queue (JetStream away for long) drops it, counted.
    pub fn record(&self, r: UsageRecord) {
        if self.tx.try_send(r).is_err() {
            self.metrics.usage_dropped.inc();
        }
    }
}

impl Flusher {
    /// Waits for the final flush (after the stop signal).
    pub async fn close(self) {
        let _ = self.0.await;
    }
}

/// A message built from buffered records, published until USAGE acknowledges it.
struct Outgoing {
    msg_id: String,
    payload: bytes::Bytes,
    records: usize,
}

async fn flush_loop(
    js: jetstream::Context,
    mut rx: mpsc::Receiver<UsageRecord>,
    mut stop: mpsc::Receiver<()>,
    metrics: Metrics,
) {
    let mut buf: Vec<UsageRecord> = Vec::new();
    let mut outbox: VecDeque<Outgoing> = VecDeque::new();
    let mut oldest: Option<Instant> = None;
    let mut tick = tokio::time::interval(FLUSH_INTERVAL / 4);
    loop {
        let stopping = tokio::select! {
            r = rx.recv() => match r {
                Some(r) => {
                    oldest.get_or_insert_with(Instant::now);
                    buf.push(r);
                    false
                }
                None => true,
            },
            _ = tick.tick() => false,
            _ = stop.recv() => true,
        };
        if stopping {
            while let Ok(r) = rx.try_recv() {
                buf.push(r);
            }
            outbox.extend(pack(std::mem::take(&mut buf)));
            // Bounded: a server that is gone must not hold up shutdown forever.
            let _ = tokio::time::timeout(Duration::from_secs(5), send(&js, &mut outbox, &metrics)).await;
            let lost = queued(&outbox);
            if lost > 0 {
                warn!(records = lost, "usage records lost at shutdown: JetStream unreachable");
                metrics.usage_dropped.inc_by(lost as u64);
            }
            return;
        }
        if due(buf.len() + queued(&outbox), oldest, Instant::now()) {
            outbox.extend(pack(std::mem::take(&mut buf)));
            send(&js, &mut outbox, &metrics).await;
            oldest = if outbox.is_empty() { None } else { Some(Instant::now()) };
            while queued(&outbox) > MAX_BUFFERED {
                let Some(dropped) = outbox.pop_front() else { break };
                metrics.usage_dropped.inc_by(dropped.records as u64);
            }
        }
    }
}

fn queued(outbox: &VecDeque<Outgoing>) -> usize {
    outbox.iter().map(|o| o.records).sum()
}

/// Whether a worker may publish a record of the same request: the job may
/// have been stored even though its publish or its answer did not come back.
fn may_reach_a_worker(r: &UsageRecord) -> bool {
    [ProblemKind::QueueUnavailable, ProblemKind::DeadlineExceeded, ProblemKind::Internal]
        .iter()
        .any(|k| r.problem.as_deref() == Some(k.slug()))
}

/// The messages of `records`: batches of refusals, and alone (under its
/// request id) each record a worker may also publish.
fn pack(records: Vec<UsageRecord>) -> Vec<Outgoing> {
    let (alone, batched): (Vec<_>, Vec<_>) = records.into_iter().partition(may_reach_a_worker);
    let mut out: Vec<Outgoing> = batch::split(&batched, || uuid::Uuid::now_v7().to_string())
        .into_iter()
        .map(|b| Outgoing { msg_id: b.id, payload: b.payload.into(), records: b.records })
        .collect();
    out.extend(alone.into_iter().map(|r| Outgoing { payload: r.encode().into(), msg_id: r.request_id, records: 1 }));
    out
}

/// Publishes every message of `outbox` (deduplicated by its id); keeps, in order, the ones not acknowledged.
async fn send(js: &jetstream::Context, outbox: &mut VecDeque<Outgoing>, metrics: &Metrics) {
    let mut pending = Vec::with_capacity(outbox.len());
    for o in outbox.drain(..) {
        let mut h = async_nats::HeaderMap::new();
        h.insert(contracts::job::H_MSG_ID, o.msg_id.as_str());
        let ack = js.publish_with_headers(streams::USAGE_SUBJECT, h, o.payload.clone()).await;
        pending.push((o, ack));
    }
    for (o, ack) in pending {
        let ok = match ack {
            Ok(fut) => tokio::time::timeout(Duration::from_secs(2), fut).await.is_ok_and(|a| a.is_ok()),
            Err(_) => false,
        };
        if ok {
            metrics.usage_flushed.inc_by(o.records as u64);
        } else {
            outbox.push_back(o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushes_on_count_or_age() {
        let t0 = Instant::now();
        assert!(!due(0, None, t0));
        assert!(!due(999, Some(t0), t0 + Duration::from_millis(999)));
        assert!(due(1000, Some(t0), t0));
        assert!(due(1, Some(t0), t0 + FLUSH_INTERVAL));
    }

    fn refused(i: usize, kind: ProblemKind) -> UsageRecord {
        UsageRecord { received_ms: 1, finished_ms: 2, ..UsageRecord::refused(&format!("req-{i}"), kind) }
    }

    #[test]
    fn refusals_travel_in_batches_and_queue_trouble_alone() {
        let mut records: Vec<_> = (0..500).map(|i| refused(i, ProblemKind::RateLimited)).collect();
        records.push(refused(900, ProblemKind::QueueUnavailable));
        records.push(refused(901, ProblemKind::DeadlineExceeded));
        let out = pack(records);
        let (alone, batches): (Vec<_>, Vec<_>) = out.iter().partition(|o| o.msg_id.starts_with("req-"));
        assert_eq!(alone.iter().map(|o| o.msg_id.as_str()).collect::<Vec<_>>(), ["req-900", "req-901"]);
        assert!(batches.len() > 1 && batches.len() < 20, "{} batches for 500 refusals", batches.len());
        let mut ids = std::collections::HashSet::new();
        let mut total = 0;
        for b in &batches {
            assert!(b.payload.len() <= batch::MAX_BATCH_BYTES);
            assert_eq!(batch::header_of(&b.payload).map(|h| h.id), Some(b.msg_id.clone()), "Nats-Msg-Id = batch id");
            total += contracts::usage::records_of(&b.payload).unwrap().len();
            assert!(ids.insert(b.msg_id.clone()));
        }
        assert_eq!(total, 500);
    }
}
