//! api-server settings, from flags or the environment.

use clap::Parser;
use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

pub const DEFAULT_MAX_BODY_BYTES: usize = contracts::staging::DEFAULT_MAX_INPUT_BYTES;

/// How a request's body reaches the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Staging {
    /// Kept in this api-server's memory; the job carries a reference.
    Reference,
    /// Carried in the JetStream message itself.
    Inline,
}

/// The body limit in effect: with inline jobs the body must fit in one message.
pub fn effective_max_body(staging: Staging, configured: usize) -> usize {
    match staging {
        Staging::Reference => configured,
        Staging::Inline => configured.min(contracts::subjects::MAX_PAYLOAD - contracts::subjects::HEADER_ALLOWANCE),
    }
}

/// The peer listener's base URL: the one configured; else the bound address
/// when it names one host; else, for a listener on every address, the bound
/// port at `towards`: the address this host uses to reach NATS, which is the
/// one its peers on that network reach it by (a container's own address).
pub fn peer_base(advertise: Option<&str>, bound: SocketAddr, towards: Option<IpAddr>) -> anyhow::Result<String> {
    match (advertise, towards) {
        (Some(url), _) => Ok(url.trim_end_matches('/').to_owned()),
        (None, _) if !bound.ip().is_unspecified() => Ok(format!("http://{bound}")),
        (None, Some(ip)) => Ok(format!("http://{}", SocketAddr::new(ip, bound.port()))),
        (None, None) => {
            anyhow::bail!("PEER_LISTEN {bound} is every address: set PEER_ADVERTISE to the URL workers use")
        }
    }
}

/// The local address of the route to the first of `nats_url`'s servers (no
/// packet is sent: a UDP socket is only connected).
pub async fn address_towards(nats_url: &str) -> Option<IpAddr> {
    let first = contracts::servers::server_urls(nats_url).into_iter().next()?;
    let host_port = first.split_once("://").map_or(first, |(_, rest)| rest);
    let host_port = host_port.rsplit_once('@').map_or(host_port, |(_, hp)| hp);
    let target = tokio::net::lookup_host(host_port).await.ok()?.next()?;
    let local: SocketAddr = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().ok()?;
    let socket = std::net::UdpSocket::bind(local).ok()?;
    socket.connect(target).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

#[derive(Debug, Clone, Parser)]
#[command(name = "api-server", version, about = "Resize API: HTTP in front of the JetStream job queue")]
pub struct Config {
    /// Address to listen on (`:0` picks a free port; the chosen one is logged and printed).
    #[arg(long, env = "API_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    #[command(flatten)]
    pub nats_credentials: contracts::connect::Credentials,
    /// Replicas of the JOBS stream when this server has to create it (3 in a cluster).
    #[arg(long, env = "JOBS_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
    /// Time a request may spend in the queue and the worker before the client gets 503.
    #[arg(long, env = "JOB_TIMEOUT", default_value = "5s", value_parser = contracts::duration::parse)]
    pub job_timeout: Duration,
    /// Largest accepted body; larger ones get 413 without being read. With
    /// `STAGING=inline` at most NATS' message limit less the headers' room.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// `reference`: bodies stay here and jobs say where to fetch them;
    /// `inline`: bodies travel inside the job message.
    #[arg(long, env = "STAGING", value_enum, default_value = "reference")]
    pub staging: Staging,
    /// Most bytes of request bodies held in memory at once (staged, or being
    /// received); a request whose body would not fit is shed with 503.
    #[arg(long, env = "STAGING_CAP_BYTES", default_value_t = 512 << 20)]
    pub staging_cap_bytes: usize,
    /// Where workers fetch staged bodies and post answers (`:0` picks a free port).
    #[arg(long, env = "PEER_LISTEN", default_value = "127.0.0.1:0")]
    pub peer_listen: SocketAddr,
    /// The peer listener's base URL as workers reach it, e.g. `http://10.1.2.3:8081`
    /// (in Kubernetes, from the pod IP); default: the bound address, or for a
    /// listener on every address, this host's address on the route to NATS.
    #[arg(long, env = "PEER_ADVERTISE")]
    pub peer_advertise: Option<String>,
    /// Requests in progress at once before new ones are shed with 503.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,
    /// The p99 latency target for images under 1 MB: a request is shed when the
    /// standing queue plus its learned service time would exceed it (larger
    /// inputs are held to `job_timeout` instead).
    #[arg(long, env = "LATENCY_TARGET", default_value = "500ms", value_parser = contracts::duration::parse)]
    pub latency_target: Duration,
    /// `required`: every request is verified through an auth-cache; `none`: no
    /// authentication, every request is the anonymous tenant.
    #[arg(long, env = "AUTH", value_enum, default_value = "required")]
    pub auth: crate::auth::AuthMode,
    /// Longest wait for an auth-cache's answer before the request gets 503.
    #[arg(long, env = "AUTH_TIMEOUT", default_value = "250ms", value_parser = contracts::duration::parse)]
    pub auth_timeout: Duration,
    /// How long a bearer key the auth-cache accepted is reused by later requests
    /// on the same connection without asking again (0 asks for every request).
    #[arg(long, env = "SESSION_AUTH_TTL", default_value = "1s", value_parser = contracts::duration::parse)]
    pub session_auth_ttl: Duration,
    /// Time allowed to receive the request headers (slow-client protection).
    #[arg(long, env = "HEADER_TIMEOUT", default_value = "10s", value_parser = contracts::duration::parse)]
    pub header_timeout: Duration,
    /// Time allowed to receive the whole request body (slow-client protection).
    #[arg(long, env = "BODY_TIMEOUT", default_value = "30s", value_parser = contracts::duration::parse)]
    pub body_timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_bodies_stay_under_the_message_limit() {
        assert_eq!(effective_max_body(Staging::Reference, 32 << 20), 32 << 20);
        let inline = effective_max_body(Staging::Inline, 32 << 20);
        assert!(inline < contracts::subjects::MAX_PAYLOAD, "{inline}");
        assert_eq!(effective_max_body(Staging::Inline, 1000), 1000);
    }

    #[test]
    fn the_peer_address_workers_use() {
        let bound: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        let route = Some("172.18.0.5".parse().unwrap());
        assert_eq!(peer_base(None, bound, route).unwrap(), "http://127.0.0.1:4321");
        assert_eq!(peer_base(Some("http://10.0.0.7:8081/"), bound, route).unwrap(), "http://10.0.0.7:8081");
        let any: SocketAddr = "0.0.0.0:8081".parse().unwrap();
        assert_eq!(peer_base(None, any, route).unwrap(), "http://172.18.0.5:8081");
        assert!(peer_base(None, any, None).unwrap_err().to_string().contains("PEER_ADVERTISE"));
    }

    #[tokio::test]
    async fn the_route_to_nats_names_a_local_address() {
        let ip = address_towards("nats://127.0.0.1:4222").await.unwrap();
        assert!(ip.is_loopback(), "{ip}");
        assert_eq!(address_towards("tls://user@127.0.0.1:4222,nats://10.0.0.1:4222").await, Some(ip));
    }
}
