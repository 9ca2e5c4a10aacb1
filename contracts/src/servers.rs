//! How every component takes its NATS servers: one flag or environment
//! variable holding a comma-separated list, so a client can start from any
//! node of a cluster and is not tied to the one it was pointed at.

use std::time::Duration;

/// How often a client pings a server it has heard nothing from. The client
/// leaves a server that has not answered three of them for another node, so
/// a node that is alive to the kernel but silent (paused, wedged) costs its
/// clients about 1.5 s, not the two minutes of the default interval. Any
/// message from the server restarts the interval: a busy connection sends no
/// pings at all.
pub const CLIENT_PING_INTERVAL: Duration = Duration::from_millis(500);

/// How long a client waits for a server to greet it. A paused node still
/// accepts TCP connections (the kernel does that) but never answers: a client
/// that picked it when reconnecting would otherwise wait the default 5 s
/// before it tried the next node.
pub const CLIENT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The liveness lines of every nats-server configuration the fleet runs: a
/// server pings its clients and routes every 2 s and drops one that misses 3
/// pings. Without them a paused node keeps receiving the requests routed to
/// its subscribers (an auth-cache's, a worker's) for minutes.
pub const SERVER_LIVENESS: &str = "ping_interval: \"2s\"\nping_max: 3\n";

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
