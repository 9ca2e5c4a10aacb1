//! NATS subjects, stream and consumer configurations.
//!
//! Both the api-server (publisher) and the workers (consumers) create these
//! idempotently at start-up, and the operator creates them in a cluster, all
//! from the functions here so that the three can never disagree.

use async_nats::jetstream::{consumer, stream};
use std::time::Duration;

/// The work-queue stream of resize jobs.
pub const JOBS_STREAM: &str = "JOBS";
/// Subject jobs are published on.
pub const JOBS_SUBJECT: &str = "resize.jobs";
/// The durable pull consumer every worker shares (FIFO across the fleet).
pub const WORKERS_CONSUMER: &str = "workers";
/// Results travel on core NATS under this prefix, one sub-subject per api-server instance.
pub const RESULTS_PREFIX: &str = "resize.results";

/// Largest message the service publishes; nats-server's `max_payload` must be at least this.
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;
/// Room left for headers within [`MAX_PAYLOAD`]; bodies above `MAX_PAYLOAD - HEADER_ALLOWANCE` are refused.
pub const HEADER_ALLOWANCE: usize = 16 * 1024;

/// JetStream's account information: limits and usage, nothing tenant-specific.
pub const ACCOUNT_INFO: &str = "$JS.API.INFO";

/// JetStream API: a stream's info (the leader answers; its `ts` dates the fleet's clock).
pub fn stream_info(stream: &str) -> String {
    format!("$JS.API.STREAM.INFO.{stream}")
}

/// JetStream API: a consumer's info (`*` for any consumer of the stream).
pub fn consumer_info(stream: &str, consumer: &str) -> String {
    format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}")
}

/// JetStream API: a pull request for a consumer's next messages (`*` for any consumer).
pub fn consumer_next(stream: &str, consumer: &str) -> String {
    format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}")
}

/// The subject an api-server instance listens on for results.
pub fn results_subject(instance: &str) -> String {
    format!("{RESULTS_PREFIX}.{instance}")
}

/// The JOBS stream. Work-queue retention deletes a job once acked; the
/// duplicate window makes a retried publish of the same request id a no-op.
pub fn jobs_stream(replicas: usize) -> stream::Config {
    stream::Config {
        name: JOBS_STREAM.to_owned(),
        subjects: vec![JOBS_SUBJECT.to_owned()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        max_message_size: MAX_PAYLOAD as i32,
        // Nobody waits for a job older than its deadline; keep the stream from
        // growing without bound if every worker is gone.
        max_age: Duration::from_secs(600),
        duplicate_window: Duration::from_secs(120),
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    }
}

/// The shared pull consumer. `ack_wait` is how long a crashed worker holds a
/// job before it is redelivered; workers send progress acks on long jobs so
/// the window can stay short.
pub fn workers_consumer(ack_wait: Duration, max_ack_pending: i64) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(WORKERS_CONSUMER.to_owned()),
        ack_policy: consumer::AckPolicy::Explicit,
        deliver_policy: consumer::DeliverPolicy::All,
        ack_wait,
        max_deliver: 5,
        max_ack_pending,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_stream_is_a_work_queue_within_max_payload() {
        let c = jobs_stream(3);
        assert_eq!(c.retention, stream::RetentionPolicy::WorkQueue);
        assert_eq!(c.num_replicas, 3);
        assert_eq!(c.max_message_size as usize, MAX_PAYLOAD);
        assert!(c.subjects.iter().any(|s| s == JOBS_SUBJECT));
        assert!(results_subject("abc").starts_with(RESULTS_PREFIX));
    }
}
