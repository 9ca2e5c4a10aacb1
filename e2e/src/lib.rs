//! Test harness: real processes on loopback.
//!
//! # Layout
//! - [`nats`]: a nats-server with JetStream on free ports, in a temporary directory.
//! - [`procs`]: the service binaries (worker, …) as child processes, killable with any signal.
//! - [`api`]: an api-server running in the test's own runtime on `127.0.0.1:0`.
//! - [`corpus`]: the shared benchmark photos.
//! - [`bench`]: load generation and statistics for the benchmark binaries.
//! - [`chaos`]: the chaos suite: faults against the whole fleet under load, invariants, a table.
//! - [`cluster`]: a 3-node nats-server cluster on loopback.
//! - [`lazyfs`]: lazyfs mounts, stores that lose their unsynced data on a power loss.
//! - [`identity`]: the auth-cache as a process, tenants and keys, authenticated requests.
//! - [`jaeger`]: Jaeger v2 on free ports, reading traces back from its query API.
//! - [`metrics`]: reading the Prometheus text of a component.
//! - [`usage`]: the usage-aggregator as a process, and reading USAGE.
//! - [`ssim`]: structural similarity, the benchmarks' quality guard.
//!
//! The binaries are taken from the cargo target directory the tests run from;
//! `scripts/test.sh` builds them before running the tests.

pub mod api;
pub mod bench;
pub mod chaos;
pub mod cluster;
pub mod corpus;
pub mod identity;
pub mod jaeger;
pub mod lazyfs;
pub mod metrics;
pub mod nats;
pub mod procs;
pub mod ssim;
pub mod usage;
