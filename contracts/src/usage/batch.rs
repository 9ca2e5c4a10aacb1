//! A USAGE message holds one record (workers: one per job) or a batch of
//! records (the api-server's refusals: one message per flush instead of one
//! per request, so a flood of cheap refusals costs a few messages a second).
//!
//! A batch is JSON lines: a header line `{"batch":1,"id":…,"records":N}`, then
//! N records, one per line. Its `Nats-Msg-Id` is its id, so a flush that is
//! sent again is dropped by the stream's duplicate window like a repeated
//! record; a retried flush must therefore resend the same batches, never a
//! regrouping of their records. A batch is one stream message and so one
//! sequence: it is counted or dead-lettered whole. `batch` is the format's
//! version; a reader refuses versions it does not know.

use super::record::{RecordError, UsageRecord};
use serde::{Deserialize, Serialize};

/// Version written by this code. Readers accept `1..=BATCH_VERSION`.
pub const BATCH_VERSION: u32 = 1;
/// Largest batch written: half of USAGE's per-message limit, which leaves room
/// for headers and is itself far below NATS' `max_payload`.
pub const MAX_BATCH_BYTES: usize = super::streams::USAGE_MAX_MESSAGE / 2;
const _: () = assert!(MAX_BATCH_BYTES < crate::subjects::MAX_PAYLOAD / 100);
/// How a batch begins; a payload that does not is read as a single record.
const PREFIX: &[u8] = b"{\"batch\":";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchHeader {
    pub batch: u32,
    /// Also the batch's `Nats-Msg-Id`.
    pub id: String,
    /// Records that follow; a batch with fewer or more lines was cut or padded.
    pub records: usize,
}

/// One batch as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub id: String,
    pub records: usize,
    pub payload: Vec<u8>,
}

/// Why a USAGE message is not usable; the reason travels with it to the dead-letter subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("usage batch header is not readable: {0}")]
    Header(String),
    #[error("usage batch version {0} is not supported (this reader knows 1..={BATCH_VERSION})")]
    Version(u32),
    #[error("usage batch has no id")]
    NoId,
    #[error("usage batch declares {declared} records but holds {found}")]
    Count { declared: usize, found: usize },
    #[error("record {line} of usage batch: {error}")]
    BatchRecord { line: usize, error: RecordError },
}

/// Groups `records` into batches of at most [`MAX_BATCH_BYTES`] each (a record
/// too large for any batch travels alone), in order; `new_id` names each batch.
pub fn split(records: &[UsageRecord], mut new_id: impl FnMut() -> String) -> Vec<Batch> {
    split_at(records, MAX_BATCH_BYTES, &mut new_id)
}

fn split_at(records: &[UsageRecord], max_bytes: usize, new_id: &mut impl FnMut() -> String) -> Vec<Batch> {
    let lines: Vec<Vec<u8>> = records.iter().map(UsageRecord::encode).collect();
    let mut out = Vec::new();
    let mut start = 0;
    while start < lines.len() {
        let id = new_id();
        // The count is not known yet: reserve room for the largest it can be.
        let header_room = header(&id, lines.len()).len() + 1;
        let mut end = start;
        let mut size = header_room;
        while end < lines.len() && (end == start || size + lines[end].len() < max_bytes) {
            size += lines[end].len() + 1;
            end += 1;
        }
        let mut payload = header(&id, end - start);
        for line in &lines[start..end] {
            payload.push(b'\n');
            payload.extend_from_slice(line);
        }
        out.push(Batch { id, records: end - start, payload });
        start = end;
    }
    out
}

fn header(id: &str, records: usize) -> Vec<u8> {
    let h = BatchHeader { batch: BATCH_VERSION, id: id.to_owned(), records };
    serde_json::to_vec(&h).expect("a header always serialises")
}

/// The header of a payload that is a batch (readable or not as a whole).
pub fn header_of(payload: &[u8]) -> Option<BatchHeader> {
    if !payload.starts_with(PREFIX) {
        return None;
    }
    let first = payload.split(|b| *b == b'\n').next()?;
    serde_json::from_slice(first).ok()
}

/// The records of one USAGE message, checked: a single record, or every record
/// of a batch. One unusable record makes the whole batch unusable.
pub fn records_of(payload: &[u8]) -> Result<Vec<UsageRecord>, MessageError> {
    if !payload.starts_with(PREFIX) {
        return Ok(vec![UsageRecord::decode(payload)?]);
    }
    // A trailing newline ends the last line; it does not start a record.
    let body = payload.strip_suffix(b"\n").unwrap_or(payload);
    let mut lines = body.split(|b| *b == b'\n');
    let first = lines.next().unwrap_or_default();
    #[derive(Deserialize)]
    struct Version {
        batch: u32,
    }
    let v = serde_json::from_slice::<Version>(first).map_err(|e| MessageError::Header(e.to_string()))?.batch;
    if v == 0 || v > BATCH_VERSION {
        return Err(MessageError::Version(v));
    }
    let h: BatchHeader = serde_json::from_slice(first).map_err(|e| MessageError::Header(e.to_string()))?;
    if h.id.is_empty() {
        return Err(MessageError::NoId);
    }
    let mut records = Vec::with_capacity(h.records.min(payload.len() / 64 + 1));
    for (i, line) in lines.enumerate() {
        let r = UsageRecord::decode(line).map_err(|error| MessageError::BatchRecord { line: i + 1, error })?;
        records.push(r);
    }
    if records.len() != h.records || records.is_empty() {
        return Err(MessageError::Count { declared: h.records, found: records.len() });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::record::tests::sample;

    fn records(n: usize) -> Vec<UsageRecord> {
        (0..n).map(|i| UsageRecord { request_id: format!("r{i}"), ..sample() }).collect()
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("b{n}")
        }
    }

    #[test]
    fn a_batch_round_trips_and_a_single_record_still_reads() {
        let rs = records(50);
        let batches = split(&rs, ids());
        assert_eq!(batches.len(), 1);
        assert_eq!((batches[0].id.as_str(), batches[0].records), ("b1", 50));
        assert_eq!(records_of(&batches[0].payload).unwrap(), rs);
        assert_eq!(
            header_of(&batches[0].payload),
            Some(BatchHeader { batch: BATCH_VERSION, id: "b1".into(), records: 50 })
        );
        assert_eq!(records_of(&sample().encode()).unwrap(), vec![sample()]);
        assert_eq!(header_of(&sample().encode()), None);
        assert!(split(&[], ids()).is_empty());
    }

    #[test]
    fn batches_stay_under_the_limit_and_keep_every_record_in_order() {
        let rs = records(1000);
        let batches = split(&rs, ids());
        assert!(batches.len() > 1, "1,000 records do not fit one batch");
        for b in &batches {
            assert!(b.payload.len() <= MAX_BATCH_BYTES, "{} bytes", b.payload.len());
            assert_eq!(records_of(&b.payload).unwrap().len(), b.records);
        }
        let back: Vec<_> = batches.iter().flat_map(|b| records_of(&b.payload).unwrap()).collect();
        assert_eq!(back, rs);
        let mut names: Vec<_> = batches.iter().map(|b| b.id.clone()).collect();
        names.dedup();
        assert_eq!(names.len(), batches.len(), "every batch has its own id");
        // A limit smaller than one record: each record alone, none lost.
        let tiny = split_at(&rs[..3], 10, &mut ids());
        assert_eq!(tiny.iter().map(|b| b.records).collect::<Vec<_>>(), [1, 1, 1]);
    }

    #[test]
    fn a_damaged_batch_is_refused_whole() {
        let rs = records(3);
        let good = split(&rs, ids()).remove(0).payload;
        let text = String::from_utf8(good.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();

        let cut = lines[..3].join("\n");
        assert_eq!(records_of(cut.as_bytes()), Err(MessageError::Count { declared: 3, found: 2 }));
        let padded = format!("{text}\n{}", lines[1]);
        assert_eq!(records_of(padded.as_bytes()), Err(MessageError::Count { declared: 3, found: 4 }));
        let bad_record = format!("{}\n{}\n{{\"v\":1}}\n{}", lines[0], lines[1], lines[3]);
        assert!(matches!(
            records_of(bad_record.as_bytes()),
            Err(MessageError::BatchRecord { line: 2, error: RecordError::Json(_) })
        ));
        let future = text.replacen("{\"batch\":1", "{\"batch\":2", 1);
        assert_eq!(records_of(future.as_bytes()), Err(MessageError::Version(2)));
        let no_id = text.replacen("\"id\":\"b1\"", "\"id\":\"\"", 1);
        assert_eq!(records_of(no_id.as_bytes()), Err(MessageError::NoId));
        assert!(matches!(records_of(b"{\"batch\":1,\"id\":"), Err(MessageError::Header(_))));
        let empty = "{\"batch\":1,\"id\":\"b\",\"records\":0}";
        assert_eq!(records_of(empty.as_bytes()), Err(MessageError::Count { declared: 0, found: 0 }));
        assert!(matches!(records_of(b"{not json"), Err(MessageError::Record(RecordError::Json(_)))));
        // A trailing newline is tolerated; the reasons read well in the dead-letter header.
        assert_eq!(records_of(format!("{text}\n").as_bytes()).unwrap(), rs);
        assert_eq!(
            MessageError::Count { declared: 3, found: 2 }.to_string(),
            "usage batch declares 3 records but holds 2"
        );
    }
}
