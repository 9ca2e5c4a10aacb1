//! The raw-record archive: one zstd-compressed JSON-lines object per tenant
//! per UTC day, written once the day is complete (the watermark has passed
//! its end). Until then the records are kept by the USAGE stream itself
//! (replicated, `max_age` well beyond a day), so nothing is only in memory.
//!
//! An object is a pure function of the day's records (deduplicated by
//! request id, sorted), so two replicas archiving the same day write the same
//! bytes and a repeated run after a crash is harmless.

use crate::{store::Store, time::day_name};
use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use contracts::usage::{UsageRecord, records_of, rollup::MS_PER_DAY, streams};
use futures::StreamExt;
use std::collections::{BTreeMap, HashSet};
use tracing::{info, instrument};

/// zstd level: the archive is written once per day and read rarely, so size wins over speed.
pub const LEVEL: i32 = 15;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("reading USAGE for {day}: {detail}")]
    Read { day: String, detail: String },
    #[error("writing archive object `{name}`: {detail}")]
    Write { name: String, detail: String },
    #[error("compressing: {0}")]
    Compress(#[from] std::io::Error),
}

/// One object: a tenant's records of one day.
#[derive(Debug, Clone)]
pub struct Object {
    pub tenant: String,
    pub raw_bytes: usize,
    pub compressed: Vec<u8>,
    pub records: usize,
}

/// Builds the objects of one day from its records (any order, repeats allowed).
pub fn build(mut records: Vec<UsageRecord>, level: i32) -> Result<Vec<Object>, ArchiveError> {
    records.sort_by(|a, b| (&a.tenant, a.received_ms, &a.request_id).cmp(&(&b.tenant, b.received_ms, &b.request_id)));
    let mut seen = HashSet::new();
    let mut by_tenant: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in records {
        if !seen.insert(r.request_id.clone()) {
            continue;
        }
        let buf = by_tenant.entry(r.tenant.clone()).or_default();
        buf.extend_from_slice(&r.encode());
        buf.push(b'\n');
        *counts.entry(r.tenant).or_default() += 1;
    }
    by_tenant
        .into_iter()
        .map(|(tenant, raw)| {
            Ok(Object {
                records: counts[&tenant],
                raw_bytes: raw.len(),
                compressed: zstd::bulk::compress(&raw, level)?,
                tenant,
            })
        })
        .collect()
}

/// Decompresses an object back into its records.
pub fn read_object(compressed: &[u8]) -> Result<Vec<UsageRecord>, ArchiveError> {
    let raw = zstd::stream::decode_all(compressed)?;
    raw.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| UsageRecord::decode(l).map_err(|e| ArchiveError::Compress(std::io::Error::other(e))))
        .collect()
}

/// Reads every record of the UTC day starting at `day_start` from USAGE.
/// Records arrive up to `lateness_ms` after their request, so reading continues that far past the day.
pub async fn day_records(store: &Store, day_start: u64, lateness_ms: u64) -> Result<Vec<UsageRecord>, ArchiveError> {
    let day = day_name(day_start);
    let err = |e: &dyn std::fmt::Display| ArchiveError::Read { day: day.clone(), detail: e.to_string() };
    let start =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(day_start) * 1_000_000).map_err(|e| err(&e))?;
    let end = day_start + MS_PER_DAY;
    let mut usage = store.usage.clone();
    if usage.info().await.map_err(|e| err(&e))?.state.messages == 0 {
        return Ok(Vec::new());
    }
    let consumer = usage
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartTime { start_time: start },
            ..Default::default()
        })
        .await
        .map_err(|e| err(&e))?;
    let mut messages = consumer.messages().await.map_err(|e| err(&e))?;
    let mut out = Vec::new();
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(2), messages.next()).await;
        let Ok(Some(m)) = next else { break };
        let m = m.map_err(|e| err(&e))?;
        let info = m.info().map_err(|e| err(&e))?;
        let published = (info.published.unix_timestamp_nanos() / 1_000_000) as u64;
        let last = info.pending == 0;
        // A message is one record or a batch; what cannot be read was dead-lettered, not counted.
        if let Ok(records) = records_of(&m.payload) {
            out.extend(records.into_iter().filter(|r| (day_start..end).contains(&r.received_ms)));
        }
        if last || published > end + lateness_ms {
            break;
        }
    }
    Ok(out)
}

/// Summary of one archived day.
#[derive(Debug, Default, Clone, Copy)]
pub struct DaySummary {
    pub objects: usize,
    pub records: usize,
    pub raw_bytes: usize,
    pub compressed_bytes: usize,
}

/// Archives one day: every tenant's object, then the day's marker in the state bucket.
#[instrument(skip(store))]
pub async fn archive_day(store: &Store, day_start: u64, lateness_ms: u64) -> Result<DaySummary, ArchiveError> {
    let day = day_name(day_start);
    let objects = build(day_records(store, day_start, lateness_ms).await?, LEVEL)?;
    let mut s = DaySummary::default();
    for o in &objects {
        let name = streams::archive_object(&day, &o.tenant);
        store
            .archive
            .put(name.as_str(), &mut o.compressed.as_slice())
            .await
            .map_err(|e| ArchiveError::Write { name: name.clone(), detail: e.to_string() })?;
        s.objects += 1;
        s.records += o.records;
        s.raw_bytes += o.raw_bytes;
        s.compressed_bytes += o.compressed.len();
    }
    let _ = store.state.put(archived_key(&day), s.records.to_string().into_bytes().into()).await;
    info!(%day, objects = s.objects, records = s.records, "day archived");
    Ok(s)
}

pub fn archived_key(day: &str) -> String {
    format!("archived.{day}")
}

/// Days to archive: from the day of the oldest record in USAGE up to the last
/// day that ended before the watermark.
pub fn due_days(oldest_ms: u64, watermark_ms: u64) -> Vec<u64> {
    let first = oldest_ms - oldest_ms % MS_PER_DAY;
    (first..watermark_ms.saturating_sub(MS_PER_DAY - 1)).step_by(MS_PER_DAY as usize).collect()
}

/// Objects of days older than `retention_days` before `now_ms`, by name.
pub fn expired(names: &[String], now_ms: u64, retention_days: u64) -> Vec<String> {
    let cutoff = day_name(now_ms.saturating_sub(retention_days * MS_PER_DAY));
    // Day names sort as dates.
    names
        .iter()
        .filter(|n| n.split('/').next().is_some_and(|d| d.len() == 10 && d < cutoff.as_str()))
        .cloned()
        .collect()
}

/// One archiving round: every due day not archived yet, then the retention sweep.
pub async fn round(store: &Store, lateness_ms: u64, retention_days: u64, metrics: &crate::metrics::Metrics) {
    let Some(watermark) = crate::watermark::read(store).await else { return };
    let mut usage = store.usage.clone();
    let Ok(info) = usage.info().await else { return };
    if info.state.messages == 0 {
        return;
    }
    let oldest = (info.state.first_timestamp.unix_timestamp_nanos() / 1_000_000) as u64;
    for day in due_days(oldest, watermark) {
        if store.state.get(archived_key(&day_name(day))).await.ok().flatten().is_some() {
            continue;
        }
        match archive_day(store, day, lateness_ms).await {
            Ok(s) => {
                metrics.archived_objects.inc_by(s.objects as u64);
            }
            Err(e) => tracing::warn!(error = %e, "archiving failed; retrying next round"),
        }
    }
    let mut names = Vec::new();
    if let Ok(mut list) = store.archive.list().await {
        while let Some(Ok(o)) = list.next().await {
            names.push(o.name);
        }
    }
    let now = contracts::job::unix_ms(std::time::SystemTime::now());
    for name in expired(&names, now, retention_days) {
        let _ = store.archive.delete(name.as_str()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::usage::{Source, record::RECORD_VERSION};

    fn rec(i: u64, tenant: &str) -> UsageRecord {
        UsageRecord {
            v: RECORD_VERSION,
            request_id: format!("0190f5a2-7c1e-7{i:03x}-8000-{i:012x}"),
            tenant: tenant.into(),
            key_id: "k1".into(),
            received_ms: 1_769_817_600_000 + i * 1000,
            finished_ms: 1_769_817_600_000 + i * 1000 + 35,
            status: 200,
            problem: None,
            bytes_in: 250_000 + i % 7 * 1000,
            bytes_out: 18_000,
            pixels_in: 12_000_000,
            pixels_out: 102_400,
            format_in: Some(contracts::ImageFormat::Jpeg),
            format_out: Some(contracts::ImageFormat::Jpeg),
            cpu_us: 3000 + i % 13,
            queue_us: 400,
            latency_us: 35_000,
            source: Source::Worker,
        }
    }

    #[test]
    fn objects_are_per_tenant_deduplicated_and_readable() {
        let mut records: Vec<_> = (0..300).map(|i| rec(i, if i % 2 == 0 { "a" } else { "b" })).collect();
        records.push(rec(4, "a"));
        records.reverse();
        let objects = build(records, 3).unwrap();
        assert_eq!(
            objects.iter().map(|o| (o.tenant.as_str(), o.records)).collect::<Vec<_>>(),
            [("a", 150), ("b", 150)]
        );
        let back = read_object(&objects[0].compressed).unwrap();
        assert_eq!(back.len(), 150);
        assert!(back.windows(2).all(|w| w[0].received_ms <= w[1].received_ms), "sorted by arrival");
        assert!(objects[0].compressed.len() * 100 / objects[0].raw_bytes < 15, "compresses well");
        // Deterministic: a second run writes the same bytes.
        let again = build((0..300).map(|i| rec(i, if i % 2 == 0 { "a" } else { "b" })).collect(), 3).unwrap();
        assert_eq!(again[1].compressed, objects[1].compressed);
    }

    #[test]
    fn days_become_due_after_the_watermark_passes_their_end() {
        let d0 = 1_769_817_600_000;
        assert!(due_days(d0 + 5, d0 + MS_PER_DAY - 1).is_empty());
        assert_eq!(due_days(d0 + 5, d0 + MS_PER_DAY), vec![d0]);
        assert_eq!(due_days(d0 + 5, d0 + 3 * MS_PER_DAY + 7), vec![d0, d0 + MS_PER_DAY, d0 + 2 * MS_PER_DAY]);
    }

    #[test]
    fn retention_removes_only_older_days() {
        let now = 1_769_817_600_000; // 2026-01-31
        let names = ["2025-01-30/a.jsonl.zst", "2025-02-01/a.jsonl.zst", "2026-01-30/b.jsonl.zst"].map(String::from);
        assert_eq!(expired(&names, now, 365), vec!["2025-01-30/a.jsonl.zst".to_owned()]);
    }
}
