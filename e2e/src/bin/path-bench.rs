//! Benchmark (not a test): throughput and latency of the full HTTP → api-server →
//! JetStream → worker path, next to in-process calls of the same resize code on
//! the same corpus, and the ratio of the two.
//!
//!   cargo run --release -p e2e --bin path-bench -- [--seconds 10] [--clients 4] [--op 'w=320&h=320&format=jpeg&quality=80']
//!
//! Both sides get the same cores: the in-process side runs one thread per core,
//! the service side one worker process with one slot per core, plus the
//! api-server, nats-server and the load generator on the same machine.
//!
//! With `--compare-tracing ROUNDS` it measures instead what observability
//! costs the path: two identical stacks, one exporting every span over OTLP
//! and logging JSON at `info` (as deployed), one exporting nothing and logging
//! warnings only, measured in turn (off, on, on, off, …) for `--seconds` each,
//! so drift on a shared machine falls on both. Spans go to an OTLP sink the
//! bench runs (it counts what arrives) or to `--otlp-endpoint URL` (a running
//! Jaeger, say).
//!
//! With `--compare-permissions ROUNDS` it measures what NATS authorization
//! costs the path the same way: one stack on a nats-server with the fleet's
//! users and subject permissions (`contracts::access`; each process connects
//! with its role's key) and one on a server without any authorization, in
//! turn, with the same logging; it prints both throughputs, their ratio and
//! the CPU per conversion of the services and of nats-server.

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
    compare_tracing: Option<usize>,
    compare_permissions: Option<usize>,
    otlp_endpoint: Option<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        seconds: 10,
        clients: 4,
        op: "w=320&h=320&format=jpeg&quality=80".into(),
        compare_tracing: None,
        compare_permissions: None,
        otlp_endpoint: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => a.seconds = value.parse()?,
            "--clients" => a.clients = value.parse()?,
            "--op" => a.op = value,
            "--compare-tracing" => a.compare_tracing = Some(value.parse()?),
            "--compare-permissions" => a.compare_permissions = Some(value.parse()?),
            "--otlp-endpoint" => a.otlp_endpoint = Some(value),
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
    if let Some(rounds) = a.compare_tracing {
        return tracing_overhead(&a, &files, rounds.max(1)).await;
    }
    if let Some(rounds) = a.compare_permissions {
        return permissions_overhead(&a, &files, rounds.max(1)).await;
    }
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

/// One api-server and worker on their own nats-server, observed or not,
/// with NATS permissions or without.
struct Stack {
    nats: NatsServer,
    api: procs::ApiServer,
    worker: procs::Worker,
    /// CPU seconds (api-server + worker, and nats-server) and conversions measured on this stack so far.
    cpu: f64,
    nats_cpu: f64,
    count: usize,
    elapsed: f64,
}

impl Stack {
    /// Starts the stack, its nats-server with the fleet's users and permissions
    /// or open to anyone; each process logs to `<logs>/<name>-<process>.log`.
    fn start(launch: &procs::Launch, permissions: bool, logs: &std::path::Path, name: &str) -> anyhow::Result<Self> {
        let nats = if permissions { NatsServer::start()? } else { NatsServer::start_open()? };
        let log = |process: &str| launch.clone().log_to(logs.join(format!("{name}-{process}.log")));
        // Shedding is not what is measured: on a loaded machine a standing queue
        // past the default 100 ms target would refuse some of the load.
        let flags = ["--auth", "none", "--latency-target", "10s"];
        let api = procs::ApiServer::launch(&nats.client_url, &flags, &log("api-server"))?;
        let worker = procs::Worker::launch(&nats.client_url, &[], &log("worker"))?;
        Ok(Self { nats, api, worker, cpu: 0.0, nats_cpu: 0.0, count: 0, elapsed: 0.0 })
    }

    fn cpu_now(&self) -> f64 {
        [Some(self.api.pid()), Some(self.worker.pid() as u32)]
            .into_iter()
            .map(|p| p.and_then(procs::cpu_seconds).unwrap_or(f64::NAN))
            .sum()
    }

    fn nats_cpu_now(&self) -> f64 {
        self.nats.pid().and_then(procs::cpu_seconds).unwrap_or(f64::NAN)
    }

    async fn measure(&mut self, files: &Arc<Vec<Vec<u8>>>, a: &Args) -> f64 {
        let (before, nats_before) = (self.cpu_now(), self.nats_cpu_now());
        let run = over_http(&self.api.base, files, &a.op, a.clients, a.seconds).await;
        self.cpu += self.cpu_now() - before;
        self.nats_cpu += self.nats_cpu_now() - nats_before;
        self.count += run.count;
        self.elapsed += run.elapsed.as_secs_f64();
        run.rate()
    }

    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed
    }

    fn cpu_ms_per_conversion(&self) -> f64 {
        self.cpu * 1000.0 / self.count as f64
    }

    fn nats_cpu_ms_per_conversion(&self) -> f64 {
        self.nats_cpu * 1000.0 / self.count as f64
    }
}

/// Warms both stacks up, then measures them in turn for `rounds` rounds of
/// `--seconds` (off, on, then on, off: a trend over the run weighs on both
/// sides alike), printing each round; prints the totals, the spread of the
/// paired rounds and the CPU per conversion.
async fn compare(stacks: &mut [Stack; 2], files: &Arc<Vec<Vec<u8>>>, a: &Args, rounds: usize) {
    for s in stacks.iter() {
        over_http(&s.api.base, files, &a.op, a.clients, 2).await;
    }
    println!("{:<6} {:>14} {:>14} {:>8}", "round", "off conv/s", "on conv/s", "on/off");
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut rates = [0.0; 2];
        for i in order {
            rates[i] = stacks[i].measure(files, a).await;
        }
        ratios.push(rates[1] / rates[0]);
        println!("{:<6} {:>14.1} {:>14.1} {:>8.3}", round + 1, rates[0], rates[1], rates[1] / rates[0]);
    }
    let [off, on] = &*stacks;
    let ratio = on.rate() / off.rate();
    println!(
        "throughput: off {:.1} conv/s, on {:.1} conv/s, ratio_on_off={ratio:.4} (cost {:.2} %)",
        off.rate(),
        on.rate(),
        (1.0 - ratio) * 100.0
    );
    // Neighbours on a shared machine move single rounds by several per cent
    // either way: the spread of the paired rounds says how far to trust the ratio.
    println!(
        "per-round on/off: median {:.4}, p25 {:.4}, p75 {:.4}, min {:.4}, max {:.4}",
        percentile(&ratios, 0.5),
        percentile(&ratios, 0.25),
        percentile(&ratios, 0.75),
        percentile(&ratios, 0.0),
        percentile(&ratios, 1.0)
    );
    let cpu_ratio = on.cpu_ms_per_conversion() / off.cpu_ms_per_conversion();
    println!(
        "api-server + worker CPU per conversion: off {:.3} ms, on {:.3} ms, ratio_cpu_on_off={cpu_ratio:.4}",
        off.cpu_ms_per_conversion(),
        on.cpu_ms_per_conversion()
    );
    let nats_ratio = on.nats_cpu_ms_per_conversion() / off.nats_cpu_ms_per_conversion();
    println!(
        "nats-server CPU per conversion: off {:.3} ms, on {:.3} ms, ratio_nats_cpu_on_off={nats_ratio:.4}",
        off.nats_cpu_ms_per_conversion(),
        on.nats_cpu_ms_per_conversion()
    );
}

/// What the built-in OTLP receiver has been sent.
#[derive(Default)]
struct Received {
    requests: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
}

/// An OTLP/HTTP receiver that accepts and counts every export (an empty 200
/// is a valid, empty `ExportTraceServiceResponse`).
async fn otlp_sink() -> anyhow::Result<(String, Arc<Received>)> {
    use std::sync::atomic::Ordering::Relaxed;
    let received = Arc::new(Received::default());
    let counted = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: bytes::Bytes| {
            let counted = counted.clone();
            async move {
                counted.requests.fetch_add(1, Relaxed);
                counted.bytes.fetch_add(body.len() as u64, Relaxed);
                ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, received))
}

async fn tracing_overhead(a: &Args, files: &Arc<Vec<Vec<u8>>>, rounds: usize) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let (endpoint, received) = match &a.otlp_endpoint {
        Some(url) => (url.clone(), None),
        None => {
            let (url, received) = otlp_sink().await?;
            (url, Some(received))
        }
    };
    let logs = tempfile::tempdir()?;
    let off = procs::Launch::default().env("RUST_LOG", "warn");
    let on = procs::Launch::default()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info");
    eprintln!(
        "corpus: {} JPEGs; op {}; {rounds} rounds of {} s per side, {} clients; spans to {endpoint}",
        files.len(),
        a.op,
        a.seconds,
        a.clients
    );
    let mut stacks = [Stack::start(&off, true, logs.path(), "off")?, Stack::start(&on, true, logs.path(), "on")?];
    compare(&mut stacks, files, a, rounds).await;
    let on = &stacks[1];
    if let Some(r) = received {
        // Spans still buffered at the end are not counted; the batches show export was on.
        println!(
            "OTLP sink: {} exports, {:.1} KiB, {:.0} bytes per conversion",
            r.requests.load(Relaxed),
            r.bytes.load(Relaxed) as f64 / 1024.0,
            r.bytes.load(Relaxed) as f64 / on.count as f64
        );
        anyhow::ensure!(r.requests.load(Relaxed) > 0, "the observed stack exported no spans");
    }
    let log_bytes: u64 = ["api-server", "worker"]
        .iter()
        .map(|p| std::fs::metadata(logs.path().join(format!("on-{p}.log"))).map_or(0, |m| m.len()))
        .sum();
    println!("JSON log of the observed stack: {:.0} bytes per conversion", log_bytes as f64 / on.count as f64);
    stop(&mut stacks);
    Ok(())
}

fn stop(stacks: &mut [Stack; 2]) {
    for s in stacks {
        s.worker.terminate();
        s.api.terminate();
    }
}

async fn permissions_overhead(a: &Args, files: &Arc<Vec<Vec<u8>>>, rounds: usize) -> anyhow::Result<()> {
    let logs = tempfile::tempdir()?;
    let launch = procs::Launch::default().env("RUST_LOG", "warn");
    eprintln!(
        "corpus: {} JPEGs; op {}; {rounds} rounds of {} s per side, {} clients; \
         permissions off: a nats-server without authorization, on: the fleet's users and permissions",
        files.len(),
        a.op,
        a.seconds,
        a.clients
    );
    let mut stacks =
        [Stack::start(&launch, false, logs.path(), "off")?, Stack::start(&launch, true, logs.path(), "on")?];
    compare(&mut stacks, files, a, rounds).await;
    // A refusal would make the permitted stack cheaper for the wrong reason.
    let refused = stacks[1].nats.log().lines().filter(|l| l.contains("Violation")).count();
    anyhow::ensure!(refused == 0, "nats-server with permissions refused {refused} operations");
    stop(&mut stacks);
    Ok(())
}
