//! Identity: the management plane's writes to the IDENTITY bucket, the admin
//! API, and the client side that signs requests (with the profile in
//! `httpsig`).
//!
//! # Layout
//! - [`store`]: compare-and-set writes of tenants and keys.
//! - [`admin_api`]: the admin HTTP API over [`store`].
//! - [`client`]: credentials and signing a request.
//! - [`nats_users`]: the components' NATS seed files and the server's `authorization` block.
//!
//! Binaries: `resizer-admin` (CLI and `serve` for the admin API) and
//! `resizer-client` (sends a signed resize request).

pub mod admin_api;
pub mod client;
pub mod nats_users;
pub mod store;
