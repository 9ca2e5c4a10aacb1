//! Worker settings, from flags or the environment.

use clap::Parser;
use std::time::Duration;

#[derive(Debug, Clone, Parser)]
#[command(name = "worker", version, about = "Resize worker: pulls jobs from JetStream")]
pub struct Config {
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    #[command(flatten)]
    pub nats_credentials: contracts::connect::Credentials,
    /// Jobs processed at once; default: the number of available cores.
    #[arg(long, env = "WORKER_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// How long a job stays with a worker that stopped answering before JetStream redelivers it.
    #[arg(long, env = "WORKER_ACK_WAIT", default_value = "10s", value_parser = contracts::duration::parse)]
    pub ack_wait: Duration,
    /// Replicas of the JOBS stream when this worker has to create it (3 in a cluster).
    #[arg(long, env = "JOBS_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
    /// Largest accepted input, in pixels, checked from the header before decoding.
    #[arg(long, env = "MAX_INPUT_PIXELS", default_value_t = 50_000_000)]
    pub max_pixels: u64,
    /// Most frames of an animation whose frames are kept (checked before decoding).
    #[arg(long, env = "MAX_ANIMATION_FRAMES", default_value_t = 1000)]
    pub max_frames: u32,
    /// Most pixels over all frames of such an animation (canvas × frames).
    #[arg(long, env = "MAX_ANIMATION_PIXELS", default_value_t = 100_000_000)]
    pub max_animation_pixels: u64,
    /// Largest result sent back; a larger one is refused with `output-too-large`.
    /// Inline jobs (answered over NATS) are held to its message limit too.
    #[arg(long, env = "MAX_OUTPUT_BYTES", default_value_t = 32 << 20,
          value_parser = clap::value_parser!(u64).range(1..=contracts::staging::MAX_RESULT_BYTES as u64))]
    pub max_output_bytes: u64,
    /// Address of the `/metrics` and `/healthz` endpoint.
    #[arg(long, env = "WORKER_METRICS_ADDR", default_value = "127.0.0.1:9091")]
    pub metrics_addr: std::net::SocketAddr,
}

impl Config {
    pub fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
    }
}
