//! HTTP handlers, one file per resource.

pub mod meta;
pub mod peer;
pub mod resize;
