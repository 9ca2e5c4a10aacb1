//! The chaos suite (see `e2e::chaos`): the fleet as processes under load, one
//! fault per scenario, invariants checked, one table printed.
//!
//!   scripts/chaos.sh [--seconds 10] [--load 0.5] [--only kill,pause,…] [--logs DIR]
//!                    [--budgets enforce|report]
//!
//! `--seconds` is how long each fault lasts; the baseline before it lasts as
//! long and the recovery after it twice as long. Exits non-zero when an
//! invariant broke or (unless `--budgets report`) a time budget was missed.

use anyhow::{Context, bail};
use e2e::chaos::{Options, run::Timing, suite};
use std::time::Duration;

fn options() -> anyhow::Result<Options> {
    let mut seconds = 10.0;
    let mut o = Options {
        timing: Timing {
            warm: Duration::ZERO,
            fault: Duration::ZERO,
            recover: Duration::ZERO,
            leader_pause: Duration::from_secs(12),
        },
        load: 0.5,
        capacity_for: Duration::from_secs(5),
        only: Vec::new(),
        logs: std::env::temp_dir().join("resizer-chaos"),
        budgets: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => seconds = value.parse()?,
            "--load" => o.load = value.parse()?,
            "--only" => o.only = value.split(',').map(str::to_owned).collect(),
            "--logs" => o.logs = value.into(),
            "--capacity-seconds" => o.capacity_for = Duration::from_secs_f64(value.parse()?),
            "--budgets" => {
                o.budgets = match value.as_str() {
                    "enforce" => true,
                    "report" => false,
                    other => bail!("--budgets takes enforce or report, not {other}"),
                }
            }
            other => bail!("unknown flag {other}"),
        }
    }
    let s = Duration::from_secs_f64(seconds);
    o.timing.warm = s;
    o.timing.fault = s;
    o.timing.recover = 2 * s;
    Ok(o)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    e2e::bench::raise_fd_limit();
    let opts = options()?;
    if !suite(&opts).await? {
        std::process::exit(1);
    }
    Ok(())
}
