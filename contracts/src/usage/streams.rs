//! Where usage records travel and where their aggregates live. Every
//! component creates these idempotently from the functions here.

use async_nats::jetstream::{consumer, kv, object_store, stream};
use std::time::Duration;

/// The stream of usage records (limits retention: several readers, kept until archived).
pub const USAGE_STREAM: &str = "USAGE";
/// Subject records are published on.
pub const USAGE_SUBJECT: &str = "usage.records";
/// Largest message USAGE stores: a record is well under 1 KiB, a batch of them
/// is split below half of this ([`super::batch::MAX_BATCH_BYTES`]).
pub const USAGE_MAX_MESSAGE: usize = 64 * 1024;
/// Records that cannot be aggregated go here with their reason, instead of being dropped.
pub const DEAD_STREAM: &str = "USAGE_DEAD";
pub const DEAD_SUBJECT: &str = "usage.dead";
/// Header on a dead-lettered record: why it was refused.
pub const H_DEAD_REASON: &str = "Usage-Dead-Reason";
/// Header on a dead-lettered record: its sequence in USAGE.
pub const H_DEAD_SEQ: &str = "Usage-Dead-Seq";
/// The durable pull consumer every aggregator replica shares.
pub const AGGREGATOR_CONSUMER: &str = "aggregator";
/// Per-tenant, per-day rollup documents, key `<tenant>.<YYYY-MM-DD>`.
pub const ROLLUP_BUCKET: &str = "USAGE_ROLLUPS";
/// Aggregator bookkeeping: the completeness watermark, archived days.
pub const STATE_BUCKET: &str = "USAGE_STATE";
/// Key in [`STATE_BUCKET`] holding the watermark (unix ms, decimal).
pub const WATERMARK_KEY: &str = "watermark";
/// Compressed raw records, object `<YYYY-MM-DD>/<tenant>.jsonl.zst`.
pub const ARCHIVE_BUCKET: &str = "USAGE_ARCHIVE";

/// How long a record stays in USAGE: long enough to be archived after its day closes,
/// and to rebuild rollups if they are ever lost.
pub const USAGE_MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);
/// A second publish of the same request id within this window is dropped. It
/// covers a job's redeliveries (JOBS keeps a job at most 10 minutes).
pub const USAGE_DUPLICATE_WINDOW: Duration = Duration::from_secs(15 * 60);

pub fn rollup_key(tenant: &str, day: &str) -> String {
    format!("{tenant}.{day}")
}

pub fn archive_object(day: &str, tenant: &str) -> String {
    format!("{day}/{tenant}.jsonl.zst")
}

pub fn usage_stream(replicas: usize) -> stream::Config {
    stream::Config {
        name: USAGE_STREAM.to_owned(),
        subjects: vec![USAGE_SUBJECT.to_owned()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        max_age: USAGE_MAX_AGE,
        duplicate_window: USAGE_DUPLICATE_WINDOW,
        // Refuse new records rather than silently dropping unarchived old ones.
        discard: stream::DiscardPolicy::New,
        max_message_size: USAGE_MAX_MESSAGE as i32,
        allow_direct: true,
        ..Default::default()
    }
}

pub fn dead_stream(replicas: usize) -> stream::Config {
    stream::Config {
        name: DEAD_STREAM.to_owned(),
        subjects: vec![DEAD_SUBJECT.to_owned()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        max_age: Duration::from_secs(90 * 24 * 3600),
        duplicate_window: Duration::from_secs(15 * 60),
        ..Default::default()
    }
}

/// The aggregators' consumer. Unlimited deliveries: a record is never given up
/// on (a poison record is dead-lettered by the aggregator, which then acks it),
/// so the ack floor only ever passes records that were counted.
pub fn aggregator_consumer(ack_wait: Duration) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(AGGREGATOR_CONSUMER.to_owned()),
        ack_policy: consumer::AckPolicy::Explicit,
        deliver_policy: consumer::DeliverPolicy::All,
        ack_wait,
        max_deliver: -1,
        max_ack_pending: 50_000,
        ..Default::default()
    }
}

pub fn rollup_bucket(replicas: usize) -> kv::Config {
    kv::Config {
        bucket: ROLLUP_BUCKET.to_owned(),
        history: 1,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        compression: true,
        ..Default::default()
    }
}

pub fn state_bucket(replicas: usize) -> kv::Config {
    kv::Config {
        bucket: STATE_BUCKET.to_owned(),
        history: 1,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    }
}

pub fn archive_bucket(replicas: usize) -> object_store::Config {
    object_store::Config {
        bucket: ARCHIVE_BUCKET.to_owned(),
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_deduplicated_and_never_given_up_on() {
        let s = usage_stream(3);
        assert_eq!((s.num_replicas, s.retention), (3, stream::RetentionPolicy::Limits));
        assert!(s.duplicate_window >= Duration::from_secs(600), "covers a job's lifetime in JOBS");
        assert_eq!(aggregator_consumer(Duration::from_secs(30)).max_deliver, -1);
        assert_eq!(rollup_key("acme", "2026-01-31"), "acme.2026-01-31");
        assert_eq!(archive_object("2026-01-31", "acme"), "2026-01-31/acme.jsonl.zst");
    }
}
