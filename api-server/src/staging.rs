//! Request bodies staged in memory for the worker that takes the job, under a
//! cap on the bytes held at once (see [`contracts::staging`] for the exchange).
//!
//! Memory is accounted before a body is read: a request reserves what its
//! `Content-Length` declares (or the body limit when it declares nothing), and
//! a request that does not fit under the cap is shed. A body stays staged
//! exactly as long as its request is alive: the [`Staged`] guard lives in the
//! request's handler, so an answer, a deadline or a client that goes away
//! frees it at once, and a worker that asks afterwards learns nobody waits.

use bytes::Bytes;
use prometheus_client::metrics::gauge::Gauge;
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

/// One staged body and the capability that reads it.
struct Entry {
    token: String,
    body: Bytes,
}

struct Inner {
    /// Staged bodies by request id. Written by request handlers (insert, and
    /// remove on drop of their guard), read by the peer listener's fetches.
    entries: Mutex<HashMap<String, Entry>>,
    /// Bytes reserved by live requests, staged or still being received. Only
    /// changed by [`Reservation`]s, with compare-and-swap against `cap`.
    reserved: AtomicUsize,
    cap: usize,
    /// Mirrors `reserved` for `/metrics`.
    gauge: Gauge,
}

impl Inner {
    fn release(&self, bytes: usize) {
        let before = self.reserved.fetch_sub(bytes, Ordering::AcqRel);
        self.gauge.set((before - bytes) as i64);
    }
}

/// The staging area of one api-server. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct Stage {
    inner: Arc<Inner>,
}

/// Bytes a request may hold in memory; released when dropped.
pub struct Reservation {
    inner: Arc<Inner>,
    bytes: usize,
}

/// A staged body, there for workers to fetch until this is dropped.
pub struct Staged {
    inner: Arc<Inner>,
    request_id: String,
    /// Held for as long as the body is staged.
    _reservation: Reservation,
}

/// Whether `want` more bytes fit beside `reserved` under `cap`. A single body
/// larger than the whole cap never fits.
pub fn fits(reserved: usize, want: usize, cap: usize) -> bool {
    reserved.checked_add(want).is_some_and(|total| total <= cap)
}

impl Stage {
    /// A stage that holds at most `cap` bytes, reported in `gauge`.
    pub fn new(cap: usize, gauge: Gauge) -> Self {
        Self { inner: Arc::new(Inner { entries: Mutex::default(), reserved: AtomicUsize::new(0), cap, gauge }) }
    }

    /// Reserves `bytes` under the cap, or `None` when they do not fit.
    pub fn reserve(&self, bytes: usize) -> Option<Reservation> {
        self.inner
            .reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| fits(r, bytes, self.inner.cap).then_some(r + bytes))
            .ok()
            .map(|before| {
                self.inner.gauge.set((before + bytes) as i64);
                Reservation { inner: self.inner.clone(), bytes }
            })
    }

    /// Bytes reserved now (staged or being received).
    pub fn reserved(&self) -> usize {
        self.inner.reserved.load(Ordering::Acquire)
    }

    /// Stages `body` for `request_id` under `token`.
    pub fn put(&self, request_id: &str, token: String, body: Bytes, mut reservation: Reservation) -> Staged {
        reservation.shrink_to(body.len());
        self.inner
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(request_id.to_owned(), Entry { token, body });
        Staged { inner: self.inner.clone(), request_id: request_id.to_owned(), _reservation: reservation }
    }

    /// The body of `request_id` if `authorization` shows its token. An
    /// unknown request and a wrong token look the same to the caller.
    pub fn get(&self, request_id: &str, authorization: Option<&str>) -> Option<Bytes> {
        let entries = self.inner.entries.lock().unwrap_or_else(|p| p.into_inner());
        let e = entries.get(request_id)?;
        contracts::staging::shows(authorization, &e.token).then(|| e.body.clone())
    }

    /// Whether `request_id` is staged and `authorization` shows its token.
    pub fn admits(&self, request_id: &str, authorization: Option<&str>) -> bool {
        self.get(request_id, authorization).is_some()
    }

    /// Number of staged bodies.
    pub fn len(&self) -> usize {
        self.inner.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Reservation {
    /// Gives back what the request turned out not to need.
    fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.inner.release(self.bytes - bytes);
            self.bytes = bytes;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.inner.release(self.bytes);
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        self.inner.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.request_id);
    }
}

/// A fresh 128-bit capability, lowercase hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 16];
    // The OS generator only fails on platforms without one; a token that is not
    // random would let anyone read bodies, so there is no fallback.
    getrandom::fill(&mut bytes).expect("the OS random generator is available");
    contracts::staging::to_hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_never_exceeded_and_comes_back_on_drop() {
        assert!(fits(0, 10, 10));
        assert!(!fits(1, 10, 10));
        assert!(!fits(usize::MAX, 1, usize::MAX), "no overflow");
        let gauge = Gauge::default();
        let stage = Stage::new(100, gauge.clone());
        let a = stage.reserve(60).unwrap();
        assert!(stage.reserve(41).is_none());
        let b = stage.reserve(40).unwrap();
        assert_eq!((stage.reserved(), gauge.get()), (100, 100));
        drop(a);
        assert_eq!(stage.reserved(), 40);
        // A body smaller than its reservation gives the rest back when staged.
        let staged = stage.put("r1", new_token(), Bytes::from_static(b"0123456789"), b);
        assert_eq!(stage.reserved(), 10);
        drop(staged);
        assert_eq!((stage.reserved(), gauge.get()), (0, 0));
        assert!(stage.reserve(101).is_none(), "one body over the whole cap never fits");
    }

    #[test]
    fn a_body_is_readable_with_its_token_only_and_only_while_staged() {
        let stage = Stage::new(1 << 20, Gauge::default());
        let token = new_token();
        assert_eq!(token.len(), 32);
        assert_ne!(token, new_token());
        let staged = stage.put("r1", token.clone(), Bytes::from_static(b"jpeg"), stage.reserve(4).unwrap());
        let bearer = contracts::staging::bearer(&token);
        assert_eq!(stage.get("r1", Some(&bearer)).as_deref(), Some(&b"jpeg"[..]));
        assert!(stage.admits("r1", Some(&bearer)));
        assert_eq!(stage.get("r1", Some(&contracts::staging::bearer(&new_token()))), None);
        assert_eq!(stage.get("r1", None), None);
        assert_eq!(stage.get("r2", Some(&bearer)), None);
        drop(staged);
        assert_eq!(stage.get("r1", Some(&bearer)), None);
        assert!(stage.is_empty());
    }
}
