//! api-server settings, from flags or the environment.

use clap::Parser;
use std::{net::SocketAddr, time::Duration};

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
    /// Largest accepted body; larger ones get 413 without being read.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = contracts::subjects::MAX_PAYLOAD - contracts::subjects::HEADER_ALLOWANCE)]
    pub max_body_bytes: usize,
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
