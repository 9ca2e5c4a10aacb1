//! The lines the binary prints on stdout for whoever drives it (the chaos
//! suite waits for them): one home for their wording, shared by the printer
//! and the reader.

/// Printed once the mount serves: `lazyfs: mounted BACKING at MOUNT`.
pub const MOUNTED: &str = "lazyfs: mounted ";
/// After a power loss: `lazyfs: crash: dropped N bytes unsynced in M files`.
pub const CRASHED: &str = "lazyfs: crash: dropped ";
/// After a sync of everything: `lazyfs: sync: wrote N bytes in M files`.
pub const SYNCED: &str = "lazyfs: sync: wrote ";

/// The byte count of a `CRASHED` or `SYNCED` line: the number right after `prefix`.
pub fn bytes_after(line: &str, prefix: &str) -> Option<u64> {
    line.strip_prefix(prefix)?.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_bytes_of_a_crash_or_a_sync() {
        assert_eq!(bytes_after("lazyfs: crash: dropped 1234 bytes unsynced in 5 files", CRASHED), Some(1234));
        assert_eq!(bytes_after("lazyfs: crash: dropped 0 bytes unsynced in 0 files", CRASHED), Some(0));
        assert_eq!(bytes_after("lazyfs: mounted /a at /b", CRASHED), None);
        assert_eq!(bytes_after("lazyfs: sync: wrote 77 bytes in 2 files", SYNCED), Some(77));
        assert_eq!(bytes_after("lazyfs: crash: dropped 77 bytes unsynced in 2 files", SYNCED), None);
    }
}
