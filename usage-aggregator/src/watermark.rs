//! The completeness watermark: an instant before which every request is
//! counted. Records reach USAGE at most `lateness` after the request arrived
//! (job timeout plus the api-server's flush interval), so if every record
//! published before instant P is counted, every request that arrived before
//! `P - lateness` is.

use crate::store::Store;
use contracts::usage::streams::WATERMARK_KEY;

/// The watermark implied by the consumer's state: `first_unacked_ms` is the
/// publish time of the oldest record not yet acked, `None` when nothing is pending.
pub fn candidate(now_ms: u64, first_unacked_ms: Option<u64>, lateness_ms: u64) -> u64 {
    first_unacked_ms.unwrap_or(now_ms).min(now_ms).saturating_sub(lateness_ms)
}

/// Reads the stored watermark (unix ms).
pub async fn read(store: &Store) -> Option<u64> {
    let bytes = store.state.get(WATERMARK_KEY).await.ok()??;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}

/// Raises the stored watermark to `ms` if it is higher; never lowers it (several replicas write it).
pub async fn advance(store: &Store, ms: u64) -> Option<u64> {
    for _ in 0..3 {
        let entry = store.state.entry(WATERMARK_KEY).await.ok()?;
        let (current, revision) = match &entry {
            Some(e) => (std::str::from_utf8(&e.value).ok().and_then(|s| s.parse::<u64>().ok()), e.revision),
            None => (None, 0),
        };
        if current.is_some_and(|c| c >= ms) {
            return current;
        }
        let value = ms.to_string().into_bytes().into();
        let written = if revision == 0 {
            store.state.create(WATERMARK_KEY, value).await.is_ok()
        } else {
            store.state.update(WATERMARK_KEY, value, revision).await.is_ok()
        };
        if written {
            return Some(ms);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trails_the_oldest_pending_record_by_the_lateness() {
        assert_eq!(candidate(100_000, None, 30_000), 70_000);
        assert_eq!(candidate(100_000, Some(50_000), 30_000), 20_000);
        assert_eq!(candidate(100_000, Some(200_000), 30_000), 70_000, "clock skew never moves it past now");
        assert_eq!(candidate(10_000, Some(5_000), 30_000), 0);
    }
}
