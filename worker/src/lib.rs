//! The resize worker: pulls jobs from the JetStream `JOBS` stream, resizes
//! them and answers the api-server that holds the client connection.
//!
//! # Layout
//! - [`resize`]: the pure bytes-in/bytes-out pipeline (also used by the benchmarks).
//! - [`consumer`]: the job loop, deadlines, answers, acks and progress acks.
//! - [`pull`]: a slot's subscription, asking for one job at a time (the ack asks for the next).
//! - [`staged`]: fetching an input staged at its api-server, and answering there.
//! - [`metrics`]: Prometheus metrics of the worker.
//! - [`usage`]: the usage record of a processed job.
//! - [`config`]: command-line and environment settings.

pub mod config;
pub mod consumer;
pub mod metrics;
pub mod pull;
pub mod resize;
pub mod staged;
pub mod usage;
