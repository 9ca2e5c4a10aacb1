//! Identity: the RFC 9421 request-signature profile, RFC 9530 body digests,
//! the management plane's writes to the IDENTITY bucket, the admin API, and
//! the client side that signs requests.
//!
//! # Layout
//! - [`sf`]: the RFC 8941 structured-field subset signatures are written in.
//! - [`signature`]: the profile: parsing, signature base, time window, sign and verify.
//! - [`digest`]: `Content-Digest` of a body.
//! - [`store`]: compare-and-set writes of tenants and keys.
//! - [`admin_api`]: the admin HTTP API over [`store`].
//! - [`client`]: credentials and signing a request.
//!
//! Binaries: `resizer-admin` (CLI and `serve` for the admin API) and
//! `resizer-client` (sends a signed resize request).

pub mod admin_api;
pub mod client;
pub mod digest;
pub mod sf;
pub mod signature;
pub mod store;
