//! The idempotency rule, as a pure function over one rollup document.
//!
//! A batch's records are grouped by document (tenant, UTC day). For each
//! document, a record at stream sequence `s` is counted only if the document
//! does not already contain `s`: `s` is at or below the document's floor or
//! the caller's floor (the consumer's ack floor: every sequence there was
//! acked, and a replica acks only after writing all its documents), or `s` is
//! in the document's applied set. After counting, the whole batch's sequence
//! set is added to the applied set (sequences of other tenants never belong
//! here, so marking them is harmless and keeps the set a few intervals), and
//! everything at or below the floor is forgotten.
//!
//! The document is then written with compare-and-set on its revision; on a
//! conflict the caller re-reads and applies again, so a record that a
//! concurrent replica counted in between is skipped.

use contracts::usage::{
    Counters, DayRollup, SeqSet, UsageRecord,
    rollup::{MS_PER_DAY, MS_PER_HOUR},
    streams::rollup_key,
};
use std::collections::BTreeMap;

/// A valid record, the sequence of its message in the USAGE stream, and its
/// place in that message (a batch holds several records under one sequence).
#[derive(Debug, Clone)]
pub struct Staged {
    pub seq: u64,
    pub index: usize,
    pub record: UsageRecord,
}

/// The rollup document key of a record.
pub fn key_of(r: &UsageRecord) -> String {
    rollup_key(&r.tenant, &crate::time::day_name(r.received_ms))
}

/// Records grouped by document key, each group in stream order without repeats.
pub fn group(batch: &[Staged]) -> BTreeMap<String, Vec<&Staged>> {
    let mut out: BTreeMap<String, Vec<&Staged>> = BTreeMap::new();
    for s in batch {
        out.entry(key_of(&s.record)).or_default().push(s);
    }
    for v in out.values_mut() {
        v.sort_by_key(|s| (s.seq, s.index));
        v.dedup_by_key(|s| (s.seq, s.index));
    }
    out
}

/// Counts into `doc` the records not yet in it; returns how many were counted.
/// When it returns 0 the document needs no write.
pub fn apply(doc: &mut DayRollup, records: &[&Staged], batch: &SeqSet, floor: u64) -> usize {
    let mut counted = 0;
    for s in records {
        if doc.has_applied(s.seq, floor) {
            continue;
        }
        let hour = (s.record.received_ms % MS_PER_DAY / MS_PER_HOUR) as u8;
        doc.hours.entry(hour).or_default().add(&Counters::of(&s.record));
        counted += 1;
    }
    if counted > 0 {
        doc.applied.union(batch);
        doc.floor = doc.floor.max(floor);
        let f = doc.floor;
        doc.applied.prune_through(f);
    }
    counted
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::usage::{Source, record::RECORD_VERSION};
    use std::collections::HashMap;

    const T0: u64 = 1_769_817_600_000; // 2026-01-31T00:00:00Z

    fn rec(i: u64, tenant: &str) -> UsageRecord {
        UsageRecord {
            v: RECORD_VERSION,
            request_id: format!("r{i}"),
            tenant: tenant.into(),
            key_id: String::new(),
            received_ms: T0 + i * 600_000,
            finished_ms: T0 + i * 600_000 + 5,
            status: 200,
            problem: None,
            bytes_in: 100,
            bytes_out: 10,
            pixels_in: 1000,
            pixels_out: 100,
            format_in: None,
            format_out: None,
            cpu_us: 7,
            queue_us: 1,
            latency_us: 5000,
            source: Source::Worker,
        }
    }

    fn staged(seqs: std::ops::RangeInclusive<u64>) -> Vec<Staged> {
        seqs.map(|s| Staged { seq: s, index: 0, record: rec(s, if s % 3 == 0 { "b" } else { "a" }) }).collect()
    }

    /// A store of documents with revisions, as the KV bucket behaves.
    #[derive(Default)]
    struct Store(HashMap<String, (DayRollup, u64)>);

    impl Store {
        /// One replica's write of one document; false on a revision conflict.
        fn write(&mut self, key: &str, read_rev: u64, doc: DayRollup) -> bool {
            let cur = self.0.get(key).map_or(0, |(_, r)| *r);
            if cur != read_rev {
                return false;
            }
            self.0.insert(key.to_owned(), (doc, cur + 1));
            true
        }
        fn read(&self, key: &str) -> (DayRollup, u64) {
            self.0.get(key).cloned().unwrap_or_else(|| (DayRollup::new(), 0))
        }
        fn total(&self) -> u64 {
            self.0.values().map(|(d, _)| d.day().requests).sum()
        }
        /// Applies a whole batch, retrying conflicts; `crash_after` stops after that many document writes.
        fn apply_batch(&mut self, batch: &[Staged], floor: u64, crash_after: Option<usize>) -> bool {
            let set = SeqSet::from_seqs(batch.iter().map(|s| s.seq));
            for (i, (key, recs)) in group(batch).into_iter().enumerate() {
                if crash_after == Some(i) {
                    return false;
                }
                loop {
                    let (mut doc, rev) = self.read(&key);
                    if apply(&mut doc, &recs, &set, floor) == 0 || self.write(&key, rev, doc) {
                        break;
                    }
                }
            }
            true
        }
    }

    #[test]
    fn a_batch_applied_twice_counts_once() {
        let mut store = Store::default();
        let batch = staged(1..=100);
        store.apply_batch(&batch, 0, None);
        store.apply_batch(&batch, 0, None);
        assert_eq!(store.total(), 100);
        // Also after the floor moved past it (acked) and it comes back anyway.
        store.apply_batch(&batch, 100, None);
        assert_eq!(store.total(), 100);
    }

    #[test]
    fn a_crash_between_writes_and_ack_then_newer_records_first() {
        let mut store = Store::default();
        // Replica A writes the first document of batch 1..=50 and dies before acking.
        assert!(!store.apply_batch(&staged(1..=50), 0, Some(1)));
        // Newer records arrive before the redelivery (the case a plain "applied through N" mark gets wrong).
        store.apply_batch(&staged(51..=80), 0, None);
        // Redelivery of the whole first batch, mixed with a repeat of some newer ones.
        let mut redelivered = staged(1..=50);
        redelivered.extend(staged(70..=80));
        store.apply_batch(&redelivered, 0, None);
        assert_eq!(store.total(), 80);
    }

    #[test]
    fn interleaved_replicas_with_conflicts_count_each_record_once() {
        let mut store = Store::default();
        // Two replicas hold overlapping batches (a redelivery while the first was slow).
        let a = staged(1..=40);
        let b = staged(20..=60);
        let set_a = SeqSet::from_seqs(a.iter().map(|s| s.seq));
        let set_b = SeqSet::from_seqs(b.iter().map(|s| s.seq));
        let (ga, gb) = (group(&a), group(&b));
        for key in ga.keys() {
            // Both read the same revision; A writes first, B's write conflicts and is redone.
            let (mut da, rev) = store.read(key);
            let (mut db, rev_b) = store.read(key);
            apply(&mut da, &ga[key], &set_a, 0);
            assert!(store.write(key, rev, da));
            apply(&mut db, &gb[key], &set_b, 0);
            assert!(!store.write(key, rev_b, db), "stale revision refused");
            let (mut db, rev_b) = store.read(key);
            apply(&mut db, &gb[key], &set_b, 0);
            assert!(store.write(key, rev_b, db));
        }
        assert_eq!(store.total(), 60);
        // A stale replica that still holds 1..=40 counts nothing.
        store.apply_batch(&a, 0, None);
        assert_eq!(store.total(), 60);
    }

    #[test]
    fn the_floor_keeps_documents_small() {
        let mut store = Store::default();
        for chunk in 0..100u64 {
            let lo = chunk * 10 + 1;
            // The floor trails by one batch, as the ack floor does.
            store.apply_batch(&staged(lo..=lo + 9), lo.saturating_sub(1), None);
        }
        assert_eq!(store.total(), 1000);
        for (doc, _) in store.0.values() {
            assert!(doc.applied.intervals().len() <= 2, "{:?}", doc.applied);
        }
    }

    #[test]
    fn every_record_of_a_batch_message_counts_once() {
        let mut store = Store::default();
        // Sequence 7 is one message holding 30 records of two tenants; 8 is a single record.
        let mut batch: Vec<Staged> =
            (0..30).map(|i| Staged { seq: 7, index: i, record: rec(i as u64, ["a", "b"][i % 2]) }).collect();
        batch.push(Staged { seq: 8, index: 0, record: rec(31, "a") });
        assert_eq!(group(&batch).values().map(Vec::len).sum::<usize>(), 31, "records sharing a sequence are kept");
        // Dies after the first document: redelivered, the other half is added, the first is not doubled.
        assert!(!store.apply_batch(&batch, 0, Some(1)));
        assert_eq!(store.total(), 16);
        store.apply_batch(&batch, 0, None);
        store.apply_batch(&batch, 8, None);
        assert_eq!(store.total(), 31);
    }

    #[test]
    fn records_land_in_their_hour_and_day() {
        let batch = staged(1..=12);
        let g = group(&batch);
        assert_eq!(g.keys().collect::<Vec<_>>(), ["a.2026-01-31", "b.2026-01-31"]);
        let mut doc = DayRollup::new();
        let set = SeqSet::from_seqs(1..=12);
        assert_eq!(apply(&mut doc, &g["a.2026-01-31"], &set, 0), 8);
        // Ten-minute spacing: sequences 1..=5 in hour 0, 6..=11 in hour 1, 12 in hour 2 (tenant a only).
        assert_eq!(doc.hours[&0].requests, 4);
        assert_eq!(doc.hours[&1].requests, 4);
        assert!(!doc.hours.contains_key(&2));
        assert_eq!(doc.day().bytes_in, 800);
    }
}
