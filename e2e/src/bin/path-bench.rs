//! Benchmark (not a test): throughput and latency of the full HTTP → api-server →
//! JetStream → worker path, next to in-process calls of the same resize code on
//! the same corpus, and the ratio of the two.
//!
//!   cargo run --release -p e2e --bin path-bench -- [--seconds 10] [--clients 4] [--op 'w=320&h=320&format=jpeg&quality=80']
//!
//! Both sides get the same cores: the in-process side runs one thread per core,
//! the service side one worker process with one slot per core, plus the
//! api-server, nats-server and the load generator on the same machine.

use anyhow::Context;
use contracts::ResizeOp;
use e2e::{corpus, nats::NatsServer, procs};
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use worker::resize::{Limits, resize};

struct Args {
    seconds: u64,
    clients: usize,
    op: String,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        seconds: 10,
        clients: 4,
        op: "w=320&h=320&format=jpeg&quality=80".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => a.seconds = value.parse()?,
            "--clients" => a.clients = value.parse()?,
            "--op" => a.op = value,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

struct Run {
    count: usize,
    elapsed: Duration,
    latencies_ms: Vec<f64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.latencies_ms.clone();
        v.sort_by(f64::total_cmp);
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    }
}

fn in_process(files: &Arc<Vec<Vec<u8>>>, op: ResizeOp, threads: usize, secs: u64) -> Run {
    let lat = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (files, lat) = (files.clone(), lat.clone());
            s.spawn(move || {
                let mut local = Vec::new();
                let mut i = t;
                while Instant::now() < end {
                    let t0 = Instant::now();
                    resize(&files[i % files.len()], &op, &Limits::default())
                        .expect("corpus image resizes");
                    local.push(t0.elapsed().as_secs_f64() * 1000.0);
                    i += threads;
                }
                lat.lock().unwrap().extend(local);
            });
        }
    });
    let latencies_ms = Arc::try_unwrap(lat).unwrap().into_inner().unwrap();
    Run {
        count: latencies_ms.len(),
        elapsed: started.elapsed(),
        latencies_ms,
    }
}

async fn over_http(
    base: &str,
    files: &Arc<Vec<Vec<u8>>>,
    op: &str,
    clients: usize,
    secs: u64,
) -> Run {
    let http = reqwest::Client::new();
    let url = format!("{base}/v1/resize?{op}");
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, url, files) = (http.clone(), url.clone(), files.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = Vec::new();
            let mut i = c;
            while Instant::now() < end {
                let t0 = Instant::now();
                let res = http
                    .post(&url)
                    .header("content-type", "image/jpeg")
                    .body(files[i % files.len()].clone())
                    .send()
                    .await
                    .expect("request");
                assert_eq!(res.status(), 200, "{:?}", res.text().await);
                res.bytes().await.expect("body");
                local.push(t0.elapsed().as_secs_f64() * 1000.0);
                i += clients;
            }
            local
        }));
    }
    let mut latencies_ms = Vec::new();
    for t in tasks {
        latencies_ms.extend(t.await.expect("client task"));
    }
    Run {
        count: latencies_ms.len(),
        elapsed: started.elapsed(),
        latencies_ms,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let op = ResizeOp::parse_canonical(&a.op).map_err(|e| anyhow::anyhow!("{e}"))?;
    let files: Arc<Vec<Vec<u8>>> = Arc::new(
        corpus::files("jpeg")
            .iter()
            .map(std::fs::read)
            .collect::<Result<_, _>>()?,
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "corpus: {} JPEGs; op {}; {} s per side; {cores} cores",
        files.len(),
        a.op,
        a.seconds
    );

    eprintln!("[1/3] warming up and measuring in-process ({cores} threads)");
    in_process(&files, op, cores, 1);
    let local = in_process(&files, op, cores, a.seconds);

    eprintln!("[2/3] starting nats-server, api-server and a worker ({cores} slots)");
    let nats = NatsServer::start()?;
    let api = procs::ApiServer::spawn(&nats.client_url, &[])?;
    let _worker = procs::Worker::spawn(&nats.client_url, &[])?;
    over_http(&api.base, &files, &a.op, a.clients, 2).await;

    eprintln!(
        "[3/3] measuring over HTTP ({} concurrent clients)",
        a.clients
    );
    let remote = over_http(&api.base, &files, &a.op, a.clients, a.seconds).await;

    println!(
        "{:<28} {:>10} {:>9} {:>9}",
        "path", "conv/s", "p50 ms", "p99 ms"
    );
    for (name, r) in [
        ("in-process resize", &local),
        ("HTTP + JetStream + worker", &remote),
    ] {
        println!(
            "{name:<28} {:>10.1} {:>9.2} {:>9.2}",
            r.rate(),
            r.pct(0.5),
            r.pct(0.99)
        );
    }
    println!(
        "ratio_throughput={:.3} added_p50_ms={:.2} added_p99_ms={:.2}",
        remote.rate() / local.rate(),
        remote.pct(0.5) - local.pct(0.5),
        remote.pct(0.99) - local.pct(0.99)
    );
    Ok(())
}
