//! A filesystem that loses power on demand.
//!
//! `lazyfs` mounts a passthrough of a backing directory with FUSE. Like
//! Jepsen's LazyFS it keeps file data that was written but not fsynced in
//! memory only, so a simulated crash loses exactly the writes that a real disk
//! with a volatile cache could lose, and nothing that was synced.
//!
//! What is lazy and what is not:
//! - File data is lazy. A write lands in a per-file overlay of dirty 4 KiB
//!   pages and a logical size; reads and `stat` see it. `fsync`/`fdatasync`
//!   write the file's dirty bytes to the backing file, set its length and
//!   fdatasync it. Closing a file persists nothing. Files opened with
//!   `O_SYNC`/`O_DSYNC` are synced on every write.
//! - Metadata is durable at once: create, mkdir, unlink, rmdir, rename,
//!   chmod, chown, utimes and truncate go straight to the backing directory. A
//!   crash therefore never loses a file or a name, only unsynced contents (a
//!   file grown by unsynced writes goes back to its synced length).
//! - The kernel caches no file data or attributes (direct I/O, zero attribute
//!   TTL), so after a crash every reader sees the backing state.
//!
//! The binary takes signals: `SIGUSR1` is the power loss (drop every unsynced
//! page), `SIGUSR2` syncs everything, `SIGTERM`/`SIGINT` sync everything,
//! unmount and exit.
//!
//! Limits: no hard links, symlinks, special files, xattrs, fallocate or shared
//! mmap (direct I/O); file locks are the kernel's local ones; meant to run as
//! root.
//!
//! # Layout
//! - [`cache`]: the overlay of one file, pure logic over a [`cache::Backing`]
//!   trait; unit-tested without FUSE.
//! - [`fs`]: [`LazyFs`], the FUSE operations, inode bookkeeping and the crash
//!   and sync-all entry points.
//! - [`report`]: the lines the binary prints for whoever drives it.
//! - `main.rs`: the `lazyfs` binary: mount, print `lazyfs: mounted …`, turn
//!   signals into crashes, syncs and unmounts.
//! - `tests/mount.rs`: the mount against a plain directory, and a crash.
//!
//! The chaos suite (`e2e::chaos::power`) runs a 3-node JetStream cluster on
//! three mounts and powers all of them off at once.

pub mod cache;
pub mod fs;
pub mod report;

pub use fs::{LazyFs, Tally};
