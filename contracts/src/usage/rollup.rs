//! Rollups: summed counters per tenant per hour, stored as one document per
//! tenant per day (24 hourly buckets; the day is their sum). One document per
//! day keeps a record's effect on the rollups a single compare-and-set write,
//! and a 30-day hourly query 30 reads.
//!
//! A document also carries the stream sequences already counted in it
//! ([`SeqSet`]) above a floor below which every sequence is counted
//! everywhere: that is what makes applying a record idempotent.

use super::record::UsageRecord;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the stored rollup document.
pub const ROLLUP_VERSION: u32 = 1;
pub const MS_PER_HOUR: u64 = 3_600_000;
pub const MS_PER_DAY: u64 = 24 * MS_PER_HOUR;

/// Sums over a set of records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub requests: u64,
    /// Answered 2xx (billable).
    pub ok: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub pixels_in: u64,
    pub pixels_out: u64,
    pub cpu_us: u64,
    pub queue_us: u64,
    pub latency_us: u64,
}

const FIELDS: usize = 11;

impl Counters {
    pub fn of(r: &UsageRecord) -> Self {
        Self {
            requests: 1,
            ok: u64::from((200..300).contains(&r.status)),
            client_errors: u64::from((400..500).contains(&r.status)),
            server_errors: u64::from(r.status >= 500),
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
            pixels_in: r.pixels_in,
            pixels_out: r.pixels_out,
            cpu_us: r.cpu_us,
            queue_us: r.queue_us,
            latency_us: r.latency_us,
        }
    }

    fn to_array(self) -> [u64; FIELDS] {
        [
            self.requests,
            self.ok,
            self.client_errors,
            self.server_errors,
            self.bytes_in,
            self.bytes_out,
            self.pixels_in,
            self.pixels_out,
            self.cpu_us,
            self.queue_us,
            self.latency_us,
        ]
    }

    fn from_array(a: [u64; FIELDS]) -> Self {
        let [
            requests,
            ok,
            client_errors,
            server_errors,
            bytes_in,
            bytes_out,
            pixels_in,
            pixels_out,
            cpu_us,
            queue_us,
            latency_us,
        ] = a;
        Self {
            requests,
            ok,
            client_errors,
            server_errors,
            bytes_in,
            bytes_out,
            pixels_in,
            pixels_out,
            cpu_us,
            queue_us,
            latency_us,
        }
    }

    pub fn add(&mut self, other: &Self) {
        let (mut a, b) = (self.to_array(), other.to_array());
        for (x, y) in a.iter_mut().zip(b) {
            *x = x.saturating_add(y);
        }
        *self = Self::from_array(a);
    }
}

/// A set of stream sequences as sorted, disjoint, non-adjacent closed intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SeqSet(Vec<(u64, u64)>);

impl SeqSet {
    pub fn from_seqs(seqs: impl IntoIterator<Item = u64>) -> Self {
        let mut v: Vec<u64> = seqs.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        let mut out = Self::default();
        for s in v {
            match out.0.last_mut() {
                Some((_, hi)) if *hi + 1 == s => *hi = s,
                _ => out.0.push((s, s)),
            }
        }
        out
    }

    pub fn contains(&self, seq: u64) -> bool {
        let i = self.0.partition_point(|&(_, hi)| hi < seq);
        self.0.get(i).is_some_and(|&(lo, _)| lo <= seq)
    }

    pub fn union(&mut self, other: &Self) {
        let mut all: Vec<(u64, u64)> = self.0.iter().chain(&other.0).copied().collect();
        all.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(all.len());
        for (lo, hi) in all {
            match out.last_mut() {
                Some((_, h)) if lo <= h.saturating_add(1) => *h = (*h).max(hi),
                _ => out.push((lo, hi)),
            }
        }
        self.0 = out;
    }

    /// Forgets everything at or below `floor` (covered by the floor itself).
    pub fn prune_through(&mut self, floor: u64) {
        self.0.retain(|&(_, hi)| hi > floor);
        if let Some(first) = self.0.first_mut() {
            first.0 = first.0.max(floor + 1);
        }
    }

    pub fn intervals(&self) -> &[(u64, u64)] {
        &self.0
    }
}

/// One tenant's usage on one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayRollup {
    pub v: u32,
    /// Hour of the day (0–23) → counters, as `[hour, requests, ok, …]` rows to keep documents small.
    #[serde(with = "hours_as_rows")]
    pub hours: BTreeMap<u8, Counters>,
    /// Every stream sequence at or below this is counted in every rollup.
    pub floor: u64,
    /// Sequences above `floor` already counted in this document.
    pub applied: SeqSet,
}

impl DayRollup {
    pub fn new() -> Self {
        Self { v: ROLLUP_VERSION, ..Default::default() }
    }

    /// Whether the record at `seq` is already in this document, given a floor
    /// known to the caller (the larger of the two floors holds).
    pub fn has_applied(&self, seq: u64, floor: u64) -> bool {
        seq <= self.floor.max(floor) || self.applied.contains(seq)
    }

    pub fn day(&self) -> Counters {
        let mut c = Counters::default();
        for h in self.hours.values() {
            c.add(h);
        }
        c
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a rollup always serialises")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

mod hours_as_rows {
    use super::{Counters, FIELDS};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(hours: &BTreeMap<u8, Counters>, s: S) -> Result<S::Ok, S::Error> {
        let rows: Vec<(u8, [u64; FIELDS])> = hours.iter().map(|(h, c)| (*h, c.to_array())).collect();
        rows.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u8, Counters>, D::Error> {
        let rows: Vec<(u8, [u64; FIELDS])> = Vec::deserialize(d)?;
        if rows.iter().any(|(h, _)| *h >= 24) {
            return Err(serde::de::Error::custom("hour out of range"));
        }
        Ok(rows.into_iter().map(|(h, a)| (h, Counters::from_array(a))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::record::tests::sample;

    #[test]
    fn counters_classify_and_sum() {
        let ok = Counters::of(&sample());
        assert_eq!((ok.requests, ok.ok, ok.client_errors, ok.server_errors), (1, 1, 0, 0));
        let mut c = ok;
        c.add(&Counters::of(&UsageRecord { status: 415, ..sample() }));
        c.add(&Counters::of(&UsageRecord { status: 503, ..sample() }));
        assert_eq!((c.requests, c.ok, c.client_errors, c.server_errors), (3, 1, 1, 1));
        assert_eq!(c.bytes_in, 3 * sample().bytes_in);
    }

    #[test]
    fn seq_sets_merge_and_prune() {
        let mut s = SeqSet::from_seqs([5, 3, 4, 9, 10, 20, 4]);
        assert_eq!(s.intervals(), &[(3, 5), (9, 10), (20, 20)]);
        assert!(s.contains(4) && s.contains(9) && s.contains(20));
        assert!(!s.contains(2) && !s.contains(6) && !s.contains(21));
        s.union(&SeqSet::from_seqs([6, 7, 8, 30]));
        assert_eq!(s.intervals(), &[(3, 10), (20, 20), (30, 30)]);
        s.prune_through(20);
        assert_eq!(s.intervals(), &[(30, 30)]);
        let mut t = SeqSet::from_seqs(1..=10);
        t.prune_through(4);
        assert_eq!(t.intervals(), &[(5, 10)]);
    }

    #[test]
    fn documents_round_trip_compactly() {
        let mut d = DayRollup::new();
        d.hours.insert(7, Counters::of(&sample()));
        d.hours.insert(23, Counters::of(&sample()));
        d.floor = 100;
        d.applied = SeqSet::from_seqs([101, 102, 200]);
        let bytes = d.encode();
        assert_eq!(DayRollup::decode(&bytes).unwrap(), d);
        assert!(bytes.len() < 200, "{}", String::from_utf8_lossy(&bytes));
        assert_eq!(d.day().requests, 2);
        assert!(d.has_applied(50, 0) && d.has_applied(102, 0) && d.has_applied(150, 160));
        assert!(!d.has_applied(150, 0));
        assert!(DayRollup::decode(br#"{"v":1,"hours":[[24,1,1,0,0,0,0,0,0,0,0,0]],"floor":0,"applied":[]}"#).is_err());
    }
}
