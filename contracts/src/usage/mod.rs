//! Usage metering: the record every request leaves, where it travels, and the
//! rollups and reports built from it.
//!
//! - [`record`]: the versioned usage record (one per request, published by the
//!   worker for processed jobs and by the api-server for requests it refused).
//! - [`batch`]: what a USAGE message holds: one record, or a batch of them
//!   (the api-server's refusals, one message per flush).
//! - [`streams`]: the USAGE and dead-letter streams, the aggregator's consumer,
//!   the rollup and state buckets and the archive bucket.
//! - [`rollup`]: counters and the per-tenant, per-day rollup document (hourly
//!   buckets plus the stream sequences it already contains).
//! - [`report`]: the answer of `GET /v1/usage`.
//! - [`calendar`]: UTC day and month names of rollup keys and quotas.

pub mod batch;
pub mod calendar;
pub mod record;
pub mod report;
pub mod rollup;
pub mod streams;

pub use batch::{Batch, MessageError, records_of};
pub use record::{RecordError, Source, UsageRecord};
pub use report::{UsageReport, UsageRow, Window};
pub use rollup::{Counters, DayRollup, SeqSet};
