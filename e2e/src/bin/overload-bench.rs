//! Benchmark (not a test): behaviour at twice the measured capacity.
//!
//!   cargo run --release -p e2e --bin overload-bench -- [--seconds 15] [--factor 2] [--op 'w=1024&h=1024&format=webp']
//!
//! Measures capacity with a closed loop, then offers `factor` × that rate
//! open-loop (arrivals do not wait for answers, as real clients do not) twice:
//! with the api-server's standing-queue shedding, and with it effectively off
//! (a 60 s latency target). For each it prints the accepted rate, the p50/p99 of
//! accepted requests, how many were shed and how fast the refusals came.

use anyhow::Context;
use e2e::{
    bench::{over_http, percentile},
    corpus,
    nats::NatsServer,
    procs,
};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

const DEFAULT_OP: &str = "w=320&h=320&format=jpeg&quality=80";

#[derive(Default)]
struct Tally {
    ok_ms: Vec<f64>,
    shed_ms: Vec<f64>,
    late: usize,
    other: usize,
}

async fn open_loop(base: &str, files: &Arc<Vec<Vec<u8>>>, op: &str, rate: f64, secs: u64) -> (Tally, Duration) {
    let http = reqwest::Client::builder().pool_max_idle_per_host(1024).build().expect("client");
    let url = format!("{base}/v1/resize?{op}");
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut next = started;
    let mut tasks = Vec::new();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        let (http, url, body) = (http.clone(), url.clone(), files[i % files.len()].clone());
        i += 1;
        // Latency counts from the scheduled send time (no coordinated omission).
        let scheduled = next - interval;
        tasks.push(tokio::spawn(async move {
            let res = http.post(&url).header("content-type", "image/jpeg").body(body).send().await;
            let status = match res {
                Ok(r) => {
                    let s = r.status().as_u16();
                    let text = r.bytes().await.unwrap_or_default();
                    if s == 503 && String::from_utf8_lossy(&text).contains("/problems/overloaded") { 1 } else { s }
                }
                Err(_) => 0,
            };
            (status, scheduled.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut t = Tally::default();
    for task in tasks {
        match task.await.expect("request task") {
            (200, ms) => t.ok_ms.push(ms),
            (1, ms) => t.shed_ms.push(ms),
            (503, _) => t.late += 1,
            _ => t.other += 1,
        }
    }
    (t, started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut secs = 15u64;
    let mut factor = 2.0f64;
    let mut op = DEFAULT_OP.to_owned();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => secs = value.parse()?,
            "--factor" => factor = value.parse()?,
            "--op" => op = value,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    let files: Arc<Vec<Vec<u8>>> = Arc::new(corpus::files("jpeg").iter().map(std::fs::read).collect::<Result<_, _>>()?);
    println!(
        "{:<34} {:>8} {:>9} {:>9} {:>9} {:>7} {:>11} {:>6}",
        "run", "offered", "accepted", "p50 ms", "p99 ms", "shed", "shed p99 ms", "late"
    );
    for (name, target) in
        [("shedding on (latency target 500ms)", "500ms"), ("shedding off (latency target 60s)", "60s")]
    {
        eprintln!("[{name}] starting nats-server, api-server, worker");
        let nats = NatsServer::start()?;
        let api = procs::ApiServer::spawn(
            &nats.client_url,
            &["--auth", "none", "--latency-target", target, "--max-in-flight", "100000"],
        )?;
        let _worker = procs::Worker::spawn(&nats.client_url, &[])?;
        over_http(&api.base, &files, &op, 4, 2).await;
        let capacity = over_http(&api.base, &files, &op, 4, secs.min(10)).await.rate();
        let offered = capacity * factor;
        eprintln!("[{name}] capacity {capacity:.0}/s; offering {offered:.0}/s open-loop for {secs} s");
        let (t, elapsed) = open_loop(&api.base, &files, &op, offered, secs).await;
        println!(
            "{name:<34} {offered:>8.0} {:>9.1} {:>9.1} {:>9.1} {:>7} {:>11.1} {:>6}",
            t.ok_ms.len() as f64 / elapsed.as_secs_f64(),
            percentile(&t.ok_ms, 0.5),
            percentile(&t.ok_ms, 0.99),
            t.shed_ms.len(),
            percentile(&t.shed_ms, 0.99),
            t.late + t.other,
        );
    }
    Ok(())
}
