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
use e2e::{
    bench::{Run, over_http, percentile},
    corpus,
    nats::NatsServer,
    procs,
};
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
    let mut a = Args { seconds: 10, clients: 4, op: "w=320&h=320&format=jpeg&quality=80".into() };
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
                    resize(&files[i % files.len()], &op, &Limits::default()).expect("corpus image resizes");
                    local.push(t0.elapsed().as_secs_f64() * 1000.0);
                    i += threads;
                }
                lat.lock().unwrap().extend(local);
            });
        }
    });
    let latencies_ms = Arc::try_unwrap(lat).unwrap().into_inner().unwrap();
    Run { count: latencies_ms.len(), elapsed: started.elapsed(), latencies_ms, queue_ms: Vec::new() }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let op = ResizeOp::parse_canonical(&a.op).map_err(|e| anyhow::anyhow!("{e}"))?;
    let files: Arc<Vec<Vec<u8>>> = Arc::new(corpus::files("jpeg").iter().map(std::fs::read).collect::<Result<_, _>>()?);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!("corpus: {} JPEGs; op {}; {} s per side; {cores} cores", files.len(), a.op, a.seconds);

    eprintln!("[1/4] warming up and measuring in-process ({cores} threads, then 1)");
    in_process(&files, op, cores, 1);
    let local = in_process(&files, op, cores, a.seconds);
    let local_one = in_process(&files, op, 1, a.seconds.div_ceil(2));

    eprintln!("[2/4] starting nats-server, api-server and a worker ({cores} slots)");
    let nats = NatsServer::start()?;
    let api = procs::ApiServer::spawn(&nats.client_url, &["--auth", "none"])?;
    let worker = procs::Worker::spawn(&nats.client_url, &[])?;
    over_http(&api.base, &files, &a.op, a.clients, 2).await;

    eprintln!("[3/4] measuring over HTTP at saturation ({} concurrent clients)", a.clients);
    let pids = [("worker", Some(worker.pid() as u32)), ("nats-server", nats.pid()), ("api-server", Some(api.pid()))];
    let cpu = |pid: Option<u32>| pid.and_then(procs::cpu_seconds).unwrap_or(f64::NAN);
    let before: Vec<f64> = pids.iter().map(|(_, p)| cpu(*p)).collect();
    let remote = over_http(&api.base, &files, &a.op, a.clients, a.seconds).await;
    let used: Vec<f64> = pids.iter().zip(&before).map(|((_, p), b)| cpu(*p) - b).collect();

    eprintln!("[4/4] measuring over HTTP unloaded (1 client)");
    let remote_one = over_http(&api.base, &files, &a.op, 1, a.seconds.div_ceil(2)).await;

    println!("{:<40} {:>9} {:>8} {:>8}", "path", "conv/s", "p50 ms", "p99 ms");
    for (name, r) in [
        (format!("in-process, {cores} threads"), &local),
        (format!("HTTP+JetStream+worker, {} clients", a.clients), &remote),
        ("in-process, 1 thread".to_owned(), &local_one),
        ("HTTP+JetStream+worker, 1 client".to_owned(), &remote_one),
    ] {
        println!("{name:<40} {:>9.1} {:>8.2} {:>8.2}", r.rate(), r.pct(0.5), r.pct(0.99));
    }
    let cpu_line: Vec<String> = pids.iter().zip(&used).map(|((n, _), u)| format!("{n} {u:.1}")).collect();
    println!("CPU seconds during the saturated HTTP run: {}", cpu_line.join(", "));
    let mean_queue = remote_one.queue_ms.iter().sum::<f64>() / remote_one.queue_ms.len().max(1) as f64;
    println!(
        "queue wait (enqueue to worker start), unloaded: mean {mean_queue:.2} ms, p50 {:.2} ms, p99 {:.2} ms",
        percentile(&remote_one.queue_ms, 0.5),
        percentile(&remote_one.queue_ms, 0.99)
    );
    // On a shared 2-core box the api-server, nats-server and load generator take
    // cores the workers would otherwise use; per worker CPU-second is the cost a
    // fleet with separate API nodes pays.
    let per_cpu_local = local.rate() / cores as f64;
    let per_cpu_remote = remote.count as f64 / used[0];
    println!("conversions per worker CPU-second: in-process {per_cpu_local:.1}, through the queue {per_cpu_remote:.1}");
    println!(
        "ratio_throughput={:.3} ratio_per_worker_cpu={:.3} added_p50_ms={:.2} added_p99_ms={:.2}",
        remote.rate() / local.rate(),
        per_cpu_remote / per_cpu_local,
        remote_one.pct(0.5) - local_one.pct(0.5),
        remote_one.pct(0.99) - local_one.pct(0.99)
    );
    Ok(())
}
