//! HTTP handlers, one file per resource.

pub mod meta;
pub mod resize;
