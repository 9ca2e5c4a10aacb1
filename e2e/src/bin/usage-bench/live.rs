//! `usage-bench --live SECONDS`: the aggregator's cost under live traffic.
//! Records arrive at a steady rate a few at a time, as workers publish them
//! (one message per job), into a real `usage-aggregator` process; the result
//! is that process's CPU time (from `/proc/PID/stat`) per record it counted.
//! A bulk backlog hides per-round costs (reads, writes, acks, consumer info)
//! behind large batches; trickling records exposes them.

use super::{Rng, record};
use async_nats::jetstream;
use contracts::usage::{UsageRecord, streams};
use e2e::{nats::NatsServer, procs::cpu_seconds, usage::Aggregator};
use std::time::{Duration, Instant, SystemTime};

const TOKEN: &str = "usage-bench-admin-token";
/// Records are published on this tick, a few per tick.
const TICK: Duration = Duration::from_millis(10);

pub struct Live {
    pub seconds: u64,
    pub rate: u64,
    pub tenants: u64,
}

/// Publishes records at `rate` per second for `duration`; returns how many.
async fn traffic(js: &jetstream::Context, live: &Live, rng: &mut Rng, duration: Duration) -> anyhow::Result<u64> {
    let per_tick = live.rate as f64 * TICK.as_secs_f64();
    let started = Instant::now();
    let mut tick = tokio::time::interval(TICK);
    let (mut owed, mut sent) = (0.0, 0u64);
    while started.elapsed() < duration {
        tick.tick().await;
        owed += per_tick;
        // Between none and twice what is owed in one tick, as jobs finish unevenly.
        let n = rng.below(2 * owed.round().max(0.0) as u64 + 1);
        owed -= n as f64;
        let mut acks = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let r = now_record(sent, live.tenants, rng);
            let mut h = async_nats::HeaderMap::new();
            h.insert(contracts::job::H_MSG_ID, r.request_id.as_str());
            acks.push(js.publish_with_headers(streams::USAGE_SUBJECT, h, r.encode().into()).await?);
            sent += 1;
        }
        for a in acks {
            a.await?;
        }
    }
    Ok(sent)
}

/// A worker's record of a request that arrived just now.
fn now_record(i: u64, tenants: u64, rng: &mut Rng) -> UsageRecord {
    let now = contracts::job::unix_ms(SystemTime::now());
    let r = record(i, 0, tenants, rng);
    let took = r.finished_ms - r.received_ms;
    UsageRecord { received_ms: now - took, finished_ms: now, ..r }
}

async fn counted(agg: &Aggregator) -> anyhow::Result<u64> {
    let text = reqwest::get(agg.url("/metrics")).await?.text().await?;
    Ok(e2e::metrics::sum(&text, "usage_records_aggregated_total") as u64)
}

async fn wait_counted(agg: &Aggregator, n: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while counted(agg).await? < n {
        anyhow::ensure!(Instant::now() < deadline, "the aggregator counted {} of {n} records", counted(agg).await?);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

pub async fn run(live: Live) -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let js = jetstream::new(nats.client().await?);
    js.get_or_create_stream(streams::usage_stream(1)).await?;
    let agg = Aggregator::spawn(&nats.client_url, TOKEN, &[])?;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    // Warm-up: the rollup documents exist and the connection is settled before measuring.
    let warm = traffic(&js, &live, &mut rng, Duration::from_secs(3)).await?;
    wait_counted(&agg, warm).await?;
    let cpu0 = cpu_seconds(agg.pid()).unwrap_or(0.0);
    let t = Instant::now();
    let sent = traffic(&js, &live, &mut rng, Duration::from_secs(live.seconds)).await?;
    let publishing = t.elapsed().as_secs_f64();
    wait_counted(&agg, warm + sent).await?;
    let cpu = cpu_seconds(agg.pid()).unwrap_or(0.0) - cpu0;
    let n = counted(&agg).await? - warm;
    println!(
        "live: {sent} records at {:.0}/s for {publishing:.1} s ({} tenants), {n} counted; aggregator CPU {cpu:.2} s = {:.3} ms per record ({:.0} records per CPU-second)",
        sent as f64 / publishing,
        live.tenants,
        cpu * 1000.0 / n.max(1) as f64,
        n as f64 / cpu.max(1e-9)
    );
    Ok(())
}
