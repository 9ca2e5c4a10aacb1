//! How every component takes its NATS servers: one flag or environment
//! variable holding a comma-separated list, so a client can start from any
//! node of a cluster and is not tied to the one it was pointed at.

/// The non-empty, trimmed entries of a comma-separated server list.
pub fn server_urls(list: &str) -> Vec<&str> {
    list.split(',').map(str::trim).filter(|u| !u.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_split_trimmed_and_blank_entries_dropped() {
        assert_eq!(server_urls("nats://a:4222"), ["nats://a:4222"]);
        assert_eq!(server_urls("nats://a:1, nats://b:2,,nats://c:3 "), ["nats://a:1", "nats://b:2", "nats://c:3"]);
        assert!(server_urls(" , ").is_empty());
    }
}
