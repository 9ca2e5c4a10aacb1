//! Settings, from flags or the environment.

use clap::{Args, Parser, Subcommand};
use std::{net::SocketAddr, time::Duration};

#[derive(Debug, Clone, Parser)]
#[command(name = "usage-aggregator", version, about = "Usage rollups, archive and the usage API")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print a usage report (the same rows as `GET /v1/usage`) straight from the rollups.
    Report(ReportArgs),
    /// Archive one UTC day now (normally done once the watermark passes its end).
    Archive {
        #[command(flatten)]
        nats: NatsArgs,
        /// The day, `YYYY-MM-DD`.
        #[arg(long)]
        day: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    #[command(flatten)]
    pub nats_credentials: contracts::connect::Credentials,
    /// Replicas of USAGE, its dead-letter stream and the buckets when this process creates them (3 in a cluster).
    #[arg(long, env = "USAGE_REPLICAS", default_value_t = 1)]
    pub replicas: usize,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Address of the usage API, `/metrics` and `/healthz` (`:0` picks a free port; it is printed).
    #[arg(long, env = "USAGE_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// `required`: every request names its tenant by an API key (or the admin
    /// token); `none`: a request without credentials reads the anonymous
    /// tenant, for a fleet whose api-server runs with `AUTH=none`.
    #[arg(long, env = "AUTH", value_enum, default_value = "required")]
    pub auth: contracts::identity::AuthMode,
    /// Bearer token that may read any tenant's usage (at least 16 characters). Unset: no administrator.
    #[arg(long, env = "USAGE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Records counted per batch.
    #[arg(long, env = "USAGE_BATCH", default_value_t = 1000)]
    pub batch: usize,
    /// Pause after a round that found the stream caught up; at most a quarter of `--lateness`.
    #[arg(long, env = "USAGE_BATCH_WINDOW", default_value = "500ms", value_parser = contracts::duration::parse)]
    pub batch_window: Duration,
    /// How long a batch may stay unacked before another replica gets it.
    #[arg(long, env = "USAGE_ACK_WAIT", default_value = "30s", value_parser = contracts::duration::parse)]
    pub ack_wait: Duration,
    /// Longest delay between a request's arrival and its record reaching USAGE.
    #[arg(long, env = "USAGE_LATENESS", default_value = "30s", value_parser = contracts::duration::parse)]
    pub lateness: Duration,
    /// How often closed days are archived and old archives removed.
    #[arg(long, env = "USAGE_ARCHIVE_INTERVAL", default_value = "5m", value_parser = contracts::duration::parse)]
    pub archive_interval: Duration,
    /// Days an archived day is kept.
    #[arg(long, env = "USAGE_ARCHIVE_RETENTION_DAYS", default_value_t = 5 * 366)]
    pub archive_retention_days: u64,
    /// Fault injection for tests: wait this long between writing rollups and acking a batch.
    #[arg(long, env = "USAGE_PAUSE_BEFORE_ACK", value_parser = contracts::duration::parse, hide = true)]
    pub pause_before_ack: Option<Duration>,
}

impl RunArgs {
    /// Settings a process must not start with: an admin token that is set
    /// but empty or too short to guess at (the rule of `resizer-admin serve`).
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(token) = &self.admin_token {
            contracts::identity::check_admin_token("USAGE_ADMIN_TOKEN", token).map_err(anyhow::Error::msg)?;
        }
        // The window delays counting, and with it the watermark, which already trails by the lateness.
        anyhow::ensure!(
            !self.batch_window.is_zero()
                && self.batch_window * 4 <= self.lateness
                && self.batch_window * 4 <= self.ack_wait,
            "USAGE_BATCH_WINDOW ({:?}) must be above zero and at most a quarter of USAGE_LATENESS ({:?}) and of USAGE_ACK_WAIT ({:?})",
            self.batch_window,
            self.lateness,
            self.ack_wait
        );
        Ok(())
    }
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[arg(long)]
    pub tenant: String,
    /// Start (inclusive), RFC 3339 or `YYYY-MM-DD`.
    #[arg(long)]
    pub from: String,
    /// End (exclusive).
    #[arg(long)]
    pub to: String,
    #[arg(long, default_value = "hour")]
    pub window: String,
    /// CSV instead of JSON.
    #[arg(long)]
    pub csv: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from(std::iter::once("usage-aggregator").chain(args.iter().copied())).unwrap();
        cli.run
    }

    #[test]
    fn an_empty_or_short_admin_token_is_refused() {
        for bad in ["", "short", "fifteen-chars!!"] {
            let e = run(&["--admin-token", bad]).check().unwrap_err().to_string();
            assert!(e.contains("USAGE_ADMIN_TOKEN") && e.contains("at least 16"), "{bad:?}: {e}");
        }
        assert!(run(&["--admin-token", "sixteen-chars!!!"]).check().is_ok());
        assert!(run(&[]).check().is_ok(), "no admin token: no administrator, and nothing to refuse");
    }

    #[test]
    fn the_batch_window_stays_well_inside_the_lateness() {
        assert_eq!(run(&[]).batch_window, Duration::from_millis(500));
        assert!(run(&["--batch-window", "2s", "--lateness", "8s"]).check().is_ok());
        for bad in [&["--batch-window", "3s", "--lateness", "8s"][..], &["--batch-window", "0s"]] {
            let e = run(bad).check().unwrap_err().to_string();
            assert!(e.contains("USAGE_BATCH_WINDOW"), "{bad:?}: {e}");
        }
    }
}
