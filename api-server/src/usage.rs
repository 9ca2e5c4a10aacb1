//! Usage records of requests the api-server answers itself (refused input,
//! limits, overload, queue trouble). Records are grouped in memory and
//! published on a 1 s / 1,000-record boundary and at shutdown, so metering
//! costs a refused request no JetStream round trip; a hard crash loses at
//! most the records of the current window. Requests a worker processed are
//! metered by the worker.

use crate::metrics::Metrics;
use async_nats::jetstream;
use contracts::usage::{UsageRecord, streams};
use std::time::{Duration, Instant};
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

async fn flush_loop(
    js: jetstream::Context,
    mut rx: mpsc::Receiver<UsageRecord>,
    mut stop: mpsc::Receiver<()>,
    metrics: Metrics,
) {
    let mut buf: Vec<UsageRecord> = Vec::new();
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
            // Bounded: a server that is gone must not hold up shutdown forever.
            let _ = tokio::time::timeout(Duration::from_secs(5), flush(&js, &mut buf, &metrics)).await;
            if !buf.is_empty() {
                warn!(records = buf.len(), "usage records lost at shutdown: JetStream unreachable");
                metrics.usage_dropped.inc_by(buf.len() as u64);
            }
            return;
        }
        if due(buf.len(), oldest, Instant::now()) {
            flush(&js, &mut buf, &metrics).await;
            oldest = if buf.is_empty() { None } else { Some(Instant::now()) };
            if buf.len() > MAX_BUFFERED {
                let excess = buf.len() - MAX_BUFFERED;
                buf.drain(..excess);
                metrics.usage_dropped.inc_by(excess as u64);
            }
        }
    }
}

/// Publishes every buffered record (deduplicated by request id); keeps the ones not acknowledged.
async fn flush(js: &jetstream::Context, buf: &mut Vec<UsageRecord>, metrics: &Metrics) {
    let mut pending = Vec::with_capacity(buf.len());
    for r in buf.drain(..) {
        let mut h = async_nats::HeaderMap::new();
        h.insert(contracts::job::H_MSG_ID, r.request_id.as_str());
        let ack = js.publish_with_headers(streams::USAGE_SUBJECT, h, r.encode().into()).await;
        pending.push((r, ack));
    }
    for (r, ack) in pending {
        let ok = match ack {
            Ok(fut) => tokio::time::timeout(Duration::from_secs(2), fut).await.is_ok_and(|a| a.is_ok()),
            Err(_) => false,
        };
        if ok {
            metrics.usage_flushed.inc();
        } else {
            buf.push(r);
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
}
