//! auth-cache settings, from flags or the environment.

use clap::Parser;
use std::{net::SocketAddr, time::Duration};

#[derive(Debug, Clone, Parser)]
#[command(name = "auth-cache", version, about = "In-memory replica of IDENTITY answering request verifications")]
pub struct Config {
    /// Address of the health, readiness, status and metrics endpoints.
    #[arg(long, env = "AUTH_CACHE_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    #[command(flatten)]
    pub nats_credentials: contracts::connect::Credentials,
    /// Replicas of IDENTITY and the rollup bucket if this process has to create them.
    #[arg(long, env = "IDENTITY_REPLICAS", default_value_t = 1)]
    pub replicas: usize,
    /// Tasks answering verification requests (default: one per core).
    #[arg(long, env = "AUTH_CACHE_TASKS")]
    pub tasks: Option<usize>,
    /// How often the replica is checked against the bucket's latest revision.
    #[arg(long, env = "AUTH_CACHE_CONFIRM_EVERY", default_value = "250ms", value_parser = contracts::duration::parse)]
    pub confirm_every: Duration,
}
