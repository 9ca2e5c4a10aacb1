//! Usage pipeline benchmark against a real nats-server:
//! - aggregation throughput (records/s, and per aggregator CPU-second),
//! - compressed archive size against the raw JSON,
//! - 30-day hourly query latency over the HTTP API with a year of rollups for
//!   many tenants loaded.
//!
//!   cargo run --release -p e2e --bin usage-bench -- [--records 200000] [--tenants 1000] [--days 365] [--queries 500]
//!
//! With `--live SECONDS` it measures instead the aggregator's CPU per record
//! under live traffic (see [`live`]):
//!
//!   cargo build --release -p e2e --bin usage-bench -p usage-aggregator --bin usage-aggregator
//!   target/release/usage-bench --live 30 [--rate 300] [--tenants 1000]

use async_nats::jetstream;
use contracts::usage::{Counters, DayRollup, Source, UsageRecord, record::RECORD_VERSION, rollup::MS_PER_DAY, streams};
use e2e::{bench::percentile, nats::NatsServer, procs::cpu_seconds};
use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};
use usage_aggregator::{aggregate, archive, metrics::Metrics, store::Store, time};

#[path = "usage-bench/live.rs"]
mod live;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(default)
}

/// A deterministic generator (xorshift) so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Skewed towards small values: a few tenants make most of the traffic.
    fn skewed(&mut self, n: u64) -> u64 {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        ((u * u * u) * n as f64) as u64
    }
}

fn uuid_v7_like(ms: u64, rng: &mut Rng) -> String {
    let (a, b) = (rng.next(), rng.next());
    format!(
        "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
        ms >> 16,
        ms & 0xffff,
        a & 0xfff,
        0x8000 | (a >> 12) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

fn record(i: u64, day_start: u64, tenants: u64, rng: &mut Rng) -> UsageRecord {
    let received = day_start + rng.below(MS_PER_DAY - 60_000);
    let ok = rng.below(100) < 93;
    let latency = 20_000 + rng.below(60_000);
    UsageRecord {
        v: RECORD_VERSION,
        request_id: uuid_v7_like(received, rng),
        tenant: format!("tenant-{:04}", rng.skewed(tenants)),
        key_id: format!("key-{}", i % 3),
        received_ms: received,
        finished_ms: received + latency / 1000,
        status: if ok { 200 } else { 422 },
        problem: (!ok).then(|| "corrupt-image".to_owned()),
        bytes_in: 150_000 + rng.below(200_000),
        bytes_out: if ok { 10_000 + rng.below(20_000) } else { 0 },
        pixels_in: 12_000_000,
        pixels_out: if ok { 102_400 } else { 0 },
        format_in: Some(contracts::ImageFormat::Jpeg),
        format_out: ok.then_some(contracts::ImageFormat::Jpeg),
        cpu_us: 3_000 + rng.below(2_000),
        queue_us: 200 + rng.below(800),
        latency_us: latency,
        source: Source::Worker,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if arg("--live", 0) > 0 {
        return live::run(live::Live {
            seconds: arg("--live", 0),
            rate: arg("--rate", 300),
            tenants: arg("--tenants", 1000),
        })
        .await;
    }
    let (n_records, tenants, days, queries) =
        (arg("--records", 200_000), arg("--tenants", 1000), arg("--days", 365), arg("--queries", 500));
    let nats = NatsServer::start()?;
    let client = nats.client().await?;
    let js = jetstream::new(client.clone());
    let store = Store::with_client(client.clone(), 1).await?;
    let today = contracts::job::unix_ms(SystemTime::now()) / MS_PER_DAY * MS_PER_DAY;
    // Today: the archive reads a day from the records published during it (plus the lateness).
    let day = today;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    // 1. Publish a day of records for many tenants into USAGE.
    let t = Instant::now();
    let mut acks = Vec::new();
    for i in 0..n_records {
        let r = record(i, day, tenants, &mut rng);
        let mut h = async_nats::HeaderMap::new();
        h.insert(contracts::job::H_MSG_ID, r.request_id.as_str());
        acks.push(js.publish_with_headers(streams::USAGE_SUBJECT, h, r.encode().into()).await?);
        if acks.len() >= 5000 {
            for a in acks.drain(..) {
                a.await?;
            }
        }
    }
    for a in acks {
        a.await?;
    }
    println!("published {n_records} records for up to {tenants} tenants in {:.1} s", t.elapsed().as_secs_f64());

    // 2. Aggregate them in this process: wall time and this process's CPU time.
    let metrics = Metrics::register(&mut prometheus_client::registry::Registry::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let cpu0 = cpu_seconds(std::process::id()).unwrap_or(0.0);
    let t = Instant::now();
    let run = tokio::spawn(aggregate::run(store.clone(), aggregate::Options::default(), metrics.clone(), async {
        let _ = stop_rx.await;
    }));
    while metrics.aggregated.get() < n_records {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds(std::process::id()).unwrap_or(0.0) - cpu0;
    let _ = stop_tx.send(());
    run.await??;
    println!(
        "aggregation: {n_records} records in {wall:.2} s = {:.0} records/s; aggregator CPU {cpu:.2} s = {:.0} records per CPU-second",
        n_records as f64 / wall,
        n_records as f64 / cpu
    );

    // 3. Archive the day: compressed objects against the raw JSON.
    let t = Instant::now();
    let s = archive::archive_day(&store, day, 0).await?;
    println!(
        "archive: {} records in {} objects, raw JSON {:.1} MB -> zstd {:.2} MB = {:.1} % ({:.1} s)",
        s.records,
        s.objects,
        s.raw_bytes as f64 / 1e6,
        s.compressed_bytes as f64 / 1e6,
        100.0 * s.compressed_bytes as f64 / s.raw_bytes as f64,
        t.elapsed().as_secs_f64()
    );

    // 4. A year of rollups for every tenant, written straight into the bucket.
    let t = Instant::now();
    let mut acks = Vec::new();
    let first_day = today - days * MS_PER_DAY;
    for d in 0..days {
        let day_start = first_day + d * MS_PER_DAY;
        let name = time::day_name(day_start);
        for tenant in 0..tenants {
            let mut doc = DayRollup::new();
            for hour in 0..24u8 {
                if rng.below(24) < 12 {
                    let n = 1 + rng.below(500);
                    doc.hours.insert(
                        hour,
                        Counters {
                            requests: n,
                            ok: n - n / 20,
                            client_errors: n / 20,
                            bytes_in: n * 200_000,
                            bytes_out: n * 15_000,
                            pixels_in: n * 12_000_000,
                            pixels_out: n * 102_400,
                            cpu_us: n * 3_500,
                            queue_us: n * 500,
                            latency_us: n * 40_000,
                            ..Default::default()
                        },
                    );
                }
            }
            let key = streams::rollup_key(&format!("tenant-{tenant:04}"), &name);
            acks.push(js.publish(format!("$KV.{}.{key}", streams::ROLLUP_BUCKET), doc.encode().into()).await?);
            if acks.len() >= 5000 {
                for a in acks.drain(..) {
                    a.await?;
                }
            }
        }
    }
    for a in acks {
        a.await?;
    }
    println!(
        "loaded {} rollup documents ({days} days x {tenants} tenants) in {:.0} s",
        days * tenants,
        t.elapsed().as_secs_f64()
    );

    // 5. 30-day hourly queries over HTTP for random tenants.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = usage_aggregator::http::ApiState {
        store: store.clone(),
        admin_token: Some(Arc::from("bench")),
        auth: contracts::identity::AuthMode::Required,
    };
    let app = usage_aggregator::http::router(state, Arc::new(prometheus_client::registry::Registry::default()));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let (from, to) = (time::format_rfc3339(today - 30 * MS_PER_DAY), time::format_rfc3339(today));
    let mut latencies = Vec::new();
    let mut rows = 0;
    for _ in 0..queries {
        let tenant = format!("tenant-{:04}", rng.below(tenants));
        let t = Instant::now();
        let res = http
            .get(e2e::usage::with_query(
                &format!("http://{addr}/v1/usage"),
                &[("from", &from), ("to", &to), ("window", "hour"), ("tenant", &tenant)],
            ))
            .bearer_auth("bench")
            .send()
            .await?;
        anyhow::ensure!(res.status() == 200, "query answered {}", res.status());
        let report: contracts::usage::UsageReport = res.json().await?;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        rows += report.rows.len();
    }
    println!(
        "30-day hourly query ({} rows on average): p50 {:.1} ms, p99 {:.1} ms over {queries} queries",
        rows / queries.max(1) as usize,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99)
    );
    Ok(())
}
