//! The contracts shared by every process of the resize service.
//!
//! Anything that one binary writes and another reads has exactly one home
//! here, so a change to the wire format is a change to one file plus its tests.
//!
//! # Layout
//! - [`clock`]: fleet time, a process's clock corrected by its offset from JetStream's.
//! - [`access`]: the NATS user of each component role and the subjects it may use.
//! - [`connect`]: how a component connects as its role (key file, TLS, refusals counted).
//! - [`subjects`]: NATS subject names and the stream/consumer configurations.
//! - [`format`]: image formats, their media types and magic-byte sniffing.
//! - [`animation`]: the frames of an animated GIF or WebP, from the container alone.
//! - [`op`]: the resize operation (`w`, `h`, `fit`, `gravity`, `format`, `quality`, `speed`, `frames`) and its validation.
//! - [`preset`]: a tenant's named operations and how a request's `preset=` resolves.
//! - [`job`]: the job message the api-server publishes to JetStream.
//! - [`outcome`]: the result message a worker sends back to the api-server.
//! - [`staging`]: how a worker fetches a staged input from its api-server and answers there.
//! - [`problem`]: the stable RFC 9457 problem types every component reports.
//! - [`servers`]: the comma-separated NATS server list every component accepts.
//! - [`usage`]: the usage record, its streams, rollups and the usage report.
//! - [`identity`]: tenant and key records (bucket IDENTITY), API keys, the verification exchange.

pub mod access;
pub mod animation;
pub mod clock;
pub mod connect;
pub mod duration;
pub mod format;
pub mod identity;
pub mod job;
pub mod op;
pub mod outcome;
pub mod preset;
pub mod problem;
pub mod servers;
pub mod staging;
pub mod subjects;
pub mod usage;

pub use format::ImageFormat;
pub use job::Job;
pub use op::{Fit, Frames, Gravity, InputTraits, ResizeOp};
pub use outcome::{Outcome, Rendered};
pub use problem::ProblemKind;
