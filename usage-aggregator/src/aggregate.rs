//! The consumer loop: collect a batch from the shared durable consumer, move
//! malformed messages to the dead-letter subject, count the records of the
//! rest into their rollup documents with compare-and-set (see
//! [`crate::apply`]), and only then ack. A failure anywhere leaves the batch
//! unacked; it comes back and counts once.
//!
//! A round's fixed costs (the pull, a read and a compare-and-set per document
//! touched, the flush of the acks) are shared by the records it holds. Under
//! live traffic records arrive a few at a time, so once a round finds the
//! stream caught up the next one starts [`Options::batch_window`] later and
//! takes what gathered meanwhile in one burst; and the consumer's state (ack floor, lag, watermark) is read at
//! most every [`OBSERVE_EVERY`], not every round.

use crate::{
    apply::{self, Staged},
    metrics::Metrics,
    store::Store,
    watermark,
};
use async_nats::jetstream::{AckKind, Message, consumer::PullConsumer, kv};
use contracts::usage::{DayRollup, SeqSet, batch, records_of, streams};
use futures::{StreamExt, TryStreamExt};
use std::time::{Duration, Instant, SystemTime};
use tracing::{Instrument, instrument, warn};

/// How often the ack floor, the lag and the watermark are brought up to date.
/// A floor that lags only keeps a few more sequences in the documents.
pub const OBSERVE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Options {
    /// Messages fetched and counted per batch (a message holds one record or a batch of them).
    pub batch: usize,
    /// Pause after a round that found the stream caught up. It delays counting
    /// and the watermark by as much, so it stays a small part of `lateness`.
    pub batch_window: Duration,
    /// How long a batch may stay unacked before JetStream hands it to another replica.
    pub ack_wait: Duration,
    /// Rollup documents written at once within a batch.
    pub write_concurrency: usize,
    /// Longest time between a request's arrival and its record's publication.
    pub lateness: Duration,
    /// Fault injection for tests: wait this long between writing the rollups and acking.
    pub pause_before_ack: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            batch: 1000,
            batch_window: Duration::from_millis(500),
            ack_wait: Duration::from_secs(30),
            write_concurrency: 64,
            lateness: Duration::from_secs(30),
            pause_before_ack: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error("dead-lettering the record at sequence {seq}: {detail}")]
    DeadLetter { seq: u64, detail: String },
    #[error("rollup `{key}` is not a readable document: {detail}")]
    CorruptRollup { key: String, detail: String },
    #[error("writing rollup `{key}` failed {attempts} times: {detail}")]
    Write { key: String, attempts: u32, detail: String },
    #[error("message without JetStream metadata: {0}")]
    Metadata(String),
}

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    pub counted: usize,
    pub already_counted: usize,
    pub dead_lettered: usize,
}

/// Runs until `shutdown` resolves; the batch in progress is finished first.
pub async fn run(
    store: Store,
    opts: Options,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let consumer = store.consumer(opts.ack_wait).await?;
    tokio::pin!(shutdown);
    let mut floor = 0;
    let mut observed: Option<Instant> = None;
    loop {
        // Stopping is only looked at between rounds: what is delivered to this
        // process is counted before it stops, instead of waiting out `ack_wait`.
        let collected = collect(&consumer, &opts).await;
        let msgs = match collected {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "fetch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let fetched = msgs.len();
        if !msgs.is_empty() {
            let started = Instant::now();
            match process_batch(&store, &msgs, floor, &opts, &metrics).await {
                Ok(_) => metrics.batch_duration.observe(started.elapsed().as_secs_f64()),
                Err(e) => {
                    warn!(error = %e, messages = msgs.len(), "batch failed; leaving it for redelivery");
                    metrics.failed_batches.inc();
                    for m in &msgs {
                        let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        if observed.is_none_or(|t| t.elapsed() >= OBSERVE_EVERY) {
            if let Some(f) = observe(&store, &consumer, &opts, &metrics).await {
                floor = f;
            }
            observed = Some(Instant::now());
        }
        // A batch that did not fill means the stream is caught up: let records
        // gather in the stream for a window and take them in one burst, rather
        // than receiving (and paying for) each one as it arrives.
        let pause = if fetched < opts.batch { opts.batch_window } else { Duration::ZERO };
        tokio::select! {
            biased;
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Up to `opts.batch` messages, as many as are waiting now.
async fn collect(consumer: &PullConsumer, opts: &Options) -> anyhow::Result<Vec<Message>> {
    let mut msgs = consumer.fetch().max_messages(opts.batch).expires(Duration::from_secs(1)).messages().await?;
    let mut out = Vec::with_capacity(opts.batch.min(1024));
    while let Some(m) = msgs.next().await {
        match m {
            Ok(m) => out.push(m),
            // What was delivered before the error is counted now, not after `ack_wait`.
            Err(e) if !out.is_empty() => {
                warn!(error = %e, "pull request ended early");
                break;
            }
            Err(e) => return Err(anyhow::anyhow!(e)),
        }
    }
    Ok(out)
}

/// Reads the consumer's ack floor (the next batch's floor), the lag and the watermark.
async fn observe(store: &Store, consumer: &PullConsumer, opts: &Options, metrics: &Metrics) -> Option<u64> {
    let mut consumer = consumer.clone();
    let info = consumer.info().await.ok()?.clone();
    metrics.lag.set(info.num_pending as i64);
    let floor = info.ack_floor.stream_sequence;
    let first_unacked = if info.num_pending == 0 && info.num_ack_pending == 0 {
        None
    } else {
        match store.usage.get_raw_message(floor + 1).await {
            Ok(m) => Some((m.time.unix_timestamp_nanos() / 1_000_000) as u64),
            // Gone (aged out) or not yet written: no safe statement this round.
            Err(_) => return Some(floor),
        }
    };
    let now = contracts::job::unix_ms(SystemTime::now());
    let c = watermark::candidate(now, first_unacked, opts.lateness.as_millis() as u64);
    if let Some(w) = watermark::advance(store, c).await {
        metrics.watermark.set(w as f64 / 1000.0);
    }
    Some(floor)
}

/// Counts one batch of messages; acks them only when every rollup they touch is written.
#[instrument(skip_all, fields(messages = msgs.len()))]
pub async fn process_batch(
    store: &Store,
    msgs: &[Message],
    floor: u64,
    opts: &Options,
    metrics: &Metrics,
) -> Result<BatchSummary, AggregateError> {
    let mut staged = Vec::with_capacity(msgs.len());
    let mut summary = BatchSummary::default();
    let mut seqs = Vec::with_capacity(msgs.len());
    for m in msgs {
        let seq = m.info().map_err(|e| AggregateError::Metadata(e.to_string()))?.stream_sequence;
        seqs.push(seq);
        match records_of(&m.payload) {
            // The records of one message share its sequence: a document holds all of them or none.
            Ok(records) => {
                staged.extend(records.into_iter().enumerate().map(|(index, record)| Staged { seq, index, record }))
            }
            Err(reason) => {
                dead_letter(store, m, seq, &reason.to_string()).await?;
                summary.dead_lettered += 1;
            }
        }
    }
    let set = SeqSet::from_seqs(seqs);
    let groups = apply::group(&staged);
    let writes: Vec<_> =
        groups.into_iter().map(|(key, recs)| write_group(&store.rollups, key, recs, &set, floor, metrics)).collect();
    let written: Vec<(Vec<&Staged>, usize)> =
        futures::stream::iter(writes).buffer_unordered(opts.write_concurrency.max(1)).try_collect().await?;
    let mut counted = Vec::with_capacity(staged.len());
    for (fresh, skipped) in written {
        summary.counted += fresh.len();
        summary.already_counted += skipped;
        counted.extend(fresh);
    }
    metrics.unacked_batches.inc();
    if let Some(p) = opts.pause_before_ack {
        tokio::time::sleep(p).await;
    }
    for m in msgs {
        // A lost ack only means a redelivery, which counts nothing twice.
        let _ = m.ack().await;
    }
    let _ = store.client.flush().await;
    metrics.unacked_batches.dec();
    metrics.aggregated.inc_by(summary.counted as u64);
    for s in counted {
        metrics.tenant_request(&s.record);
    }
    metrics.already_counted.inc_by(summary.already_counted as u64);
    metrics.dead_lettered.inc_by(summary.dead_lettered as u64);
    Ok(summary)
}

/// The records of one document counted now, and how many it already held.
async fn write_group<'a>(
    kv: &kv::Store,
    key: String,
    recs: Vec<&'a Staged>,
    set: &SeqSet,
    floor: u64,
    metrics: &Metrics,
) -> Result<(Vec<&'a Staged>, usize), AggregateError> {
    let fresh = write_doc(kv, &key, &recs, set, floor, metrics).await?;
    let skipped = recs.len() - fresh.len();
    Ok((fresh, skipped))
}

const WRITE_ATTEMPTS: u32 = 20;

/// Read, apply, compare-and-set; again on a conflict.
/// Writes the records `doc` lacks into it; returns those, as the write that
/// succeeded saw them (a conflict rereads the document, which may hold more).
async fn write_doc<'a>(
    kv: &kv::Store,
    key: &str,
    recs: &[&'a Staged],
    set: &SeqSet,
    floor: u64,
    metrics: &Metrics,
) -> Result<Vec<&'a Staged>, AggregateError> {
    let mut last_error = String::new();
    for attempt in 0..WRITE_ATTEMPTS {
        if attempt > 0 {
            metrics.conflicts.inc();
            tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
        }
        let entry = match kv.entry(key).await {
            Ok(e) => e,
            Err(e) => {
                last_error = e.to_string();
                continue;
            }
        };
        let (mut doc, revision) = match entry {
            Some(e) if e.operation == kv::Operation::Put => (
                DayRollup::decode(&e.value)
                    .map_err(|err| AggregateError::CorruptRollup { key: key.to_owned(), detail: err.to_string() })?,
                e.revision,
            ),
            Some(e) => (DayRollup::new(), e.revision),
            None => (DayRollup::new(), 0),
        };
        let fresh: Vec<&Staged> = recs.iter().copied().filter(|s| !doc.has_applied(s.seq, floor)).collect();
        if fresh.is_empty() {
            return Ok(fresh);
        }
        apply::apply(&mut doc, &fresh, set, floor);
        let value = doc.encode().into();
        let result = if revision == 0 {
            kv.create(key, value).await.map(|_| ()).map_err(|e| e.to_string())
        } else {
            kv.update(key, value, revision).await.map(|_| ()).map_err(|e| e.to_string())
        };
        match result {
            Ok(()) => return Ok(fresh),
            Err(e) => last_error = e,
        }
    }
    Err(AggregateError::Write { key: key.to_owned(), attempts: WRITE_ATTEMPTS, detail: last_error })
}

/// The request a record was about, as far as a record that failed to decode still says
/// (for a batch: its id). Its log line then names the request, the tenant and (from the
/// worker's `traceparent`) the trace, and the trace shows the record was dead-lettered.
fn dead_letter_span(m: &Message, seq: u64) -> tracing::Span {
    let batch_id = batch::header_of(&m.payload).map(|h| h.id.chars().take(128).collect::<String>());
    let doc = batch_id.is_none().then(|| serde_json::from_slice::<serde_json::Value>(&m.payload).ok()).flatten();
    let field = |name: &str| {
        doc.as_ref().and_then(|d| d.get(name)).and_then(|v| v.as_str()).map(|s| s.chars().take(128).collect::<String>())
    };
    let span = tracing::info_span!(
        "dead_letter",
        seq,
        request_id = field("request_id"),
        tenant = field("tenant"),
        batch_id,
        trace_id = tracing::field::Empty,
    );
    let traceparent = m.headers.as_ref().and_then(|h| h.get(contracts::job::H_TRACEPARENT)).map(|v| v.as_str());
    // Without a traceparent the record is not in any request's trace: no trace id to claim.
    if traceparent.is_some() {
        telemetry::trace::continue_trace(&span, traceparent);
    }
    span
}

async fn dead_letter(store: &Store, m: &Message, seq: u64, reason: &str) -> Result<(), AggregateError> {
    let span = dead_letter_span(m, seq);
    let err = |e: &dyn std::fmt::Display| AggregateError::DeadLetter { seq, detail: e.to_string() };
    let mut h = async_nats::HeaderMap::new();
    let reason: String = reason.chars().map(|c| if c.is_control() { ' ' } else { c }).take(512).collect();
    h.insert(streams::H_DEAD_REASON, reason.as_str());
    h.insert(streams::H_DEAD_SEQ, seq.to_string().as_str());
    // A crash after this publish and before the ack dead-letters it again: the id makes that a no-op.
    h.insert(contracts::job::H_MSG_ID, format!("dead-{seq}").as_str());
    async {
        store
            .js
            .publish_with_headers(streams::DEAD_SUBJECT, h, m.payload.clone())
            .await
            .map_err(|e| err(&e))?
            .await
            .map_err(|e| err(&e))?;
        warn!(%reason, "message moved to the dead-letter subject");
        Ok(())
    }
    .instrument(span)
    .await
}
