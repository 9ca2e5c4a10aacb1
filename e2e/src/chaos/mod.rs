//! The chaos suite: the whole fleet as local processes under open-loop load,
//! every component's dependencies taken away in turn, the invariants checked
//! after each fault and the cost printed as one table.
//!
//! # Layout
//! - [`brownout`]: a node stopped most of the time, and the operator's failover run against it.
//! - [`edge`]: the health-checked balancer in front of the api-servers.
//! - [`fleet`]: the processes (3-node JetStream, two of every service) and what can be done to them.
//! - [`jail`]: a cgroup per member that a partition cuts off from everything.
//! - [`netns`]: api-server 0's own network namespace, whose link to NATS can be impaired.
//! - [`relay`]: the TCP relays that add latency to api-server 0's NATS connections.
//! - [`load`]: open-loop traffic of real photos from real tenants, one outcome per request.
//! - [`scenario`]: the fault matrix.
//! - [`run`]: one scenario: load, fault, heal, recovery.
//! - [`verdict`]: figures and invariants, pure over the outcomes.
//! - [`power`]: power loss on every JetStream node at once, on a cluster of its own.
//! - [`report`]: the tables.
//!
//! The usage invariants are checked once, over the whole run: every request
//! any scenario answered is in USAGE once and in the rollups once. The power
//! loss runs last, after the fleet is gone: it takes the whole cluster down,
//! and needs root for its lazyfs stores.

pub(crate) fn now() -> String {
    let s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("{:02}:{:02}:{:02}", s / 3600 % 24, s / 60 % 60, s % 60)
}

/// A line of progress on stderr (the tables go to stdout).
macro_rules! progress {
    ($($t:tt)*) => { eprintln!("[{}] chaos: {}", $crate::chaos::now(), format!($($t)*)) };
}

pub mod brownout;
pub mod edge;
pub mod fleet;
pub mod jail;
pub mod load;
pub mod netns;
pub mod power;
pub mod relay;
pub mod report;
pub mod run;
pub mod scenario;
pub mod slow;
pub mod verdict;

use anyhow::Context;
use bytes::Bytes;
use std::{
    collections::HashSet,
    path::PathBuf,
    time::{Duration, Instant},
};

#[derive(Debug, Clone)]
pub struct Options {
    pub timing: run::Timing,
    /// Offered load as a fraction of the capacity measured first.
    pub load: f64,
    pub capacity_for: Duration,
    /// Scenario name filters (all when empty).
    pub only: Vec<String>,
    pub logs: PathBuf,
    /// Whether a missed time budget (recovery, re-election, outage) fails the
    /// run, or is only reported: on a shared, busy machine the invariants are
    /// checked and the budgets measured.
    pub budgets: bool,
}

/// Photos under 1 MB from the corpus: the SLA's p99 is stated for those.
fn photos() -> Vec<Bytes> {
    crate::corpus::files("jpeg")
        .into_iter()
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() < 1 << 20))
        .take(8)
        .map(|p| Bytes::from(std::fs::read(p).expect("corpus photo")))
        .collect()
}

/// Runs the suite; whether every invariant held.
pub async fn suite(opts: &Options) -> anyhow::Result<bool> {
    let started = Instant::now();
    let scenarios = scenario::select(&opts.only);
    let power_loss = scenario::wanted(scenario::POWER_LOSS, &opts.only);
    anyhow::ensure!(!scenarios.is_empty() || power_loss, "no scenario matches {:?}", opts.only);
    if power_loss {
        // Before the matrix: a run that cannot end must not take its time first.
        crate::lazyfs::usable().context(scenario::POWER_LOSS)?;
    }
    let (mut broken, mut over) = (0, 0);
    let mut reports = Vec::new();
    if !scenarios.is_empty() {
        let (matrix, ledger, ledger_violations) = matrix(opts, &scenarios).await?;
        println!("\n{}", report::table(&matrix, opts.budgets));
        println!("{}", report::ledger(&ledger));
        for v in &ledger_violations {
            println!("BROKEN (usage): {v}");
        }
        broken += matrix.iter().map(|r| r.violations.len()).sum::<usize>() + ledger_violations.len();
        over += matrix.iter().map(|r| r.over_budget.len()).sum::<usize>();
        reports = matrix;
    }
    let mut losses = Vec::new();
    if power_loss {
        for (n, durable) in [true, false].into_iter().enumerate() {
            let loss = power(opts, n, durable).await.context(scenario::POWER_LOSS)?;
            broken += loss.violations().len();
            losses.push(loss);
        }
        println!("\n{}", report::power(&losses));
        for v in losses.iter().flat_map(|l| l.violations().into_iter().map(move |v| (l.sync(), v))) {
            println!("BROKEN (power loss, sync_interval {}): {}", v.0, v.1);
        }
    }
    println!(
        "availability over the run {} ({} scenarios, {:.0} s); invariants: {}; time budgets: {}",
        if reports.is_empty() { "–".to_owned() } else { format!("{:.3} %", report::availability(&reports) * 100.0) },
        reports.len() + usize::from(power_loss),
        started.elapsed().as_secs_f64(),
        if broken == 0 { "all hold".to_owned() } else { format!("{broken} broken") },
        match (over, opts.budgets) {
            (0, _) => "all met".to_owned(),
            (n, true) => format!("{n} missed"),
            (n, false) => format!("{n} missed (reported, not enforced: --budgets report)"),
        }
    );
    Ok(broken == 0 && (over == 0 || !opts.budgets))
}

/// The fault matrix: the fleet, its capacity, every scenario of
/// `scenarios` under load, then the usage ledger. The fleet is gone on return.
async fn matrix(
    opts: &Options,
    scenarios: &[scenario::Scenario],
) -> anyhow::Result<(Vec<run::Report>, verdict::Ledger, Vec<String>)> {
    progress!("starting the fleet (logs in {})", opts.logs.display());
    let mut fleet = fleet::Fleet::start(&opts.logs).await?;
    let photos = photos();
    anyhow::ensure!(!photos.is_empty(), "no JPEG under 1 MB in the corpus");
    // A request must be answered within the api-server's deadline (its default) + 1 s.
    let timeout = Duration::from_secs(5) + Duration::from_secs(1);
    let load = load::Load::new(&fleet, photos, timeout);
    let cpu_before = fleet.cpu_seconds();
    let capacity_run = load.closed(opts.capacity_for, 4).await;
    let served = capacity_run.iter().filter(|o| o.ok()).count();
    let capacity = served as f64 / opts.capacity_for.as_secs_f64();
    anyhow::ensure!(served > 0, "the fleet served nothing in the capacity run: {:?}", capacity_run.first());
    let rate = capacity * opts.load;
    progress!(
        "capacity {capacity:.1} ok/s with 4 clients ({:.1} conversions per CPU-second of the fleet); offering {rate:.1} req/s ({:.0} %)",
        served as f64 / (fleet.cpu_seconds() - cpu_before).max(1e-3),
        opts.load * 100.0
    );
    let mut reports = Vec::new();
    for (n, s) in scenarios.iter().enumerate() {
        let waited = fleet.steady(Duration::from_secs(30)).await?;
        if waited > Duration::from_secs(1) {
            progress!("every raft group has a leader again after {:.1} s", waited.as_secs_f64());
        }
        progress!("[{}/{}] {}", n + 1, scenarios.len(), s.name);
        let r = run::scenario(&mut fleet, &load, s, rate, opts.timing).await.with_context(|| s.name.clone())?;
        let f = &r.figures;
        progress!(
            "  {} offered, {} ok ({:.2} %), errors {:?}, recovered after {:?} s; {}{}",
            f.offered,
            f.ok,
            f.availability * 100.0,
            f.errors,
            f.recovered_after,
            r.notes.join("; "),
            r.violations
                .iter()
                .map(|v| format!("\n  BROKEN: {v}"))
                .chain(r.over_budget.iter().map(|v| format!("\n  OVER BUDGET: {v}")))
                .collect::<String>()
        );
        reports.push(r);
        // Let the fleet drain before the next fault, so each starts from a steady state.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    progress!("checking the usage ledger");
    let (ledger, ledger_violations) = settle_ledger(&fleet, &capacity_run, &reports).await?;
    Ok((reports, ledger, ledger_violations))
}

/// One power loss (run `n` of two): `durable` with the fleet's
/// `sync_interval: always`, else the lazy-sync control.
async fn power(opts: &Options, n: usize, durable: bool) -> anyhow::Result<power::PowerLoss> {
    let sync = if durable { "sync_interval: always" } else { "default lazy sync (the control)" };
    progress!("[{}/2] {}, {sync}: a 3-node cluster on lazyfs stores", n + 1, scenario::POWER_LOSS);
    let loss = power::run(&opts.logs, durable).await?;
    let streams: Vec<String> =
        loss.streams.iter().map(|s| format!("{} {} acked, {} lost ({})", s.stream, s.acked, s.lost, s.fate)).collect();
    progress!(
        "  {}; lazyfs dropped {:?} bytes; {}{}",
        streams.join(", "),
        loss.dropped,
        loss.recovered_after.map_or("not every stream came back".into(), |d| format!(
            "every stream had a leader again {:.1} s after the restart",
            d.as_secs_f64()
        )),
        loss.violations().iter().map(|v| format!("\n  BROKEN: {v}")).collect::<String>()
    );
    Ok(loss)
}

/// Reads USAGE and the rollups until the rollups have caught up (or a minute
/// has passed), then checks the ledger against every answer of the run.
async fn settle_ledger(
    fleet: &fleet::Fleet,
    capacity_run: &[load::Outcome],
    reports: &[run::Report],
) -> anyhow::Result<(verdict::Ledger, Vec<String>)> {
    let tenants: Vec<String> = fleet.tenants.iter().map(|t| t.id.clone()).collect();
    let answered: Vec<verdict::Answered> = capacity_run
        .iter()
        .chain(reports.iter().flat_map(|r| &r.outcomes))
        .filter_map(|o| {
            Some(verdict::Answered {
                request_id: o.request_id.clone()?,
                tenant: o.ask.sender().map(|t| tenants[t].clone()),
                served: o.ok(),
            })
        })
        .collect();
    let may_be_missing: HashSet<String> = reports.iter().flat_map(|r| r.may_be_missing.iter().cloned()).collect();
    // Requests that lost their connection, and those the edge answered for an
    // ejected api-server, may still have left a record.
    let abandoned = capacity_run
        .iter()
        .chain(reports.iter().flat_map(|r| &r.outcomes))
        .filter(|o| (matches!(o.ask, load::Ask::Abandoned(_)) && o.request_id.is_none()) || o.by_edge())
        .count();
    let lost: usize = reports.iter().map(|r| r.lost_in_flight + r.slow_uploads).sum::<usize>() + abandoned;
    // The api-servers flush refusals' records every second.
    tokio::time::sleep(api_server::usage::FLUSH_INTERVAL * 3).await;
    let client = crate::nats::observer(&fleet.cluster.urls()).await?;
    let (records, _) = crate::usage::stored_records(&client).await?;
    let distinct = crate::usage::distinct(&records) as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rolled = rollups(fleet, &tenants).await;
    while rolled != distinct && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rolled = rollups(fleet, &tenants).await;
    }
    Ok(verdict::ledger(&answered, &may_be_missing, lost, &records, rolled))
}

/// The requests in the daily rollups from yesterday to tomorrow (a run may
/// cross midnight), over the tenants and the anonymous one.
async fn rollups(fleet: &fleet::Fleet, tenants: &[String]) -> u64 {
    let (base, token) = fleet.usage_api();
    const DAY_MS: u64 = 86_400_000;
    let now = contracts::job::unix_ms(std::time::SystemTime::now());
    let day = contracts::usage::calendar::day_name;
    let http = reqwest::Client::new();
    let mut total = 0;
    for t in tenants.iter().map(String::as_str).chain([contracts::job::ANONYMOUS_TENANT]) {
        let url = crate::usage::with_query(
            &format!("{base}/v1/usage"),
            &[("from", &day(now - DAY_MS)), ("to", &day(now + 2 * DAY_MS)), ("window", "day"), ("tenant", t)],
        );
        let report = async { http.get(&url).bearer_auth(token).send().await?.json::<serde_json::Value>().await };
        total += report.await.ok().and_then(|r| r["total"]["requests"].as_u64()).unwrap_or(0);
    }
    total
}
