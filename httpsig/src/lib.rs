//! HTTP request signatures: the RFC 9421 profile of the resize API, RFC 9530
//! body digests and Ed25519 public keys. Both sides use it: the api-server
//! and the auth-cache verify, `identity`'s client signs. No I/O, no clock
//! other than [`signature::now_s`], and nothing of the service's problem
//! types: callers map [`signature::SigError`] and [`digest::DigestError`]
//! to their own.
//!
//! # Layout
//! - [`sf`]: the RFC 8941 structured-field subset signatures are written in.
//! - [`signature`]: the profile: parsing, signature base, time window, sign
//!   and verify, and parsing a key record's Ed25519 public key.
//! - [`digest`]: `Content-Digest` of a body.

pub mod digest;
pub mod sf;
pub mod signature;
