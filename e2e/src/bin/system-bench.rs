//! Benchmark (not a test): the whole service against imgproxy on the same
//! machine, the same photos and the same operations.
//!
//!   scripts/bench-system.sh [--reps 1] [--seconds 3] [--ops jpeg-320,webp-1024,24mp-320] [--staging reference|inline] [--queue-nodes 1|3]
//!                           [--clients 1,4,16] [--factors 0.8,2,5] [--timeout 15]
//!
//! Ours is the release stack as processes: nats-server (with the fleet's
//! users and permissions), an api-server requiring API keys, an auth-cache,
//! one worker with one slot per core and a usage-aggregator; a tenant with
//! an API key is created first. imgproxy runs with `IMGPROXY_WORKERS=2` and
//! its local filesystem root on the corpus. The client POSTs each photo's
//! bytes to ours; imgproxy GETs the same photo from its disk (a
//! `local:///` source), so it never receives a body.
//!
//! Loads per operation: closed loop at each `--clients` count (a client
//! refused with 503 waits 20 ms before its next request), then open
//! loop (arrivals on a fixed schedule that never wait for answers; latency
//! counts from the scheduled send) at each `--factors` × the capacity the
//! closed loop measured for that system. Each (load, system) pair runs
//! `--reps` times for `--seconds`, interleaved: ours, imgproxy, ours, … so
//! drift on a shared machine falls on both. Between runs the bench waits
//! until the servers are idle again.
//!
//! For each run: ok answers per second within the window, p50/p99 of ok
//! answers, failures by kind, conversions per CPU-second of all server
//! processes together (utime + stime from /proc before and after, the drain
//! included) and each process's CPU per conversion. Then medians over reps,
//! ours / imgproxy, and the worker's own conversions per CPU-second in this
//! process with the whole-system / in-process ratio.
//!
//! Full setting: `--reps 5 --seconds 20` (about 90 minutes on 2 cores).

use anyhow::{Context, bail};
use bytes::Bytes;
use contracts::ResizeOp;
use e2e::{
    bench::{self, Failure, classify_error, median, percentile, problem_type, process_cpu_seconds},
    corpus,
    identity::{self as ident, AuthCache},
    nats::NatsServer,
    procs::{self, Launch},
    usage::Aggregator,
};
use identity::client::Credentials;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::task::JoinSet;

struct Op {
    name: &'static str,
    what: &'static str,
    /// A corpus sub-directory or file.
    inputs: &'static str,
    width: u32,
    height: u32,
    format: &'static str,
}

const OPS: [Op; 3] = [
    Op {
        name: "jpeg-320",
        what: "JPEG → fit 320×320 → JPEG q80",
        inputs: "jpeg",
        width: 320,
        height: 320,
        format: "jpeg",
    },
    Op {
        name: "webp-1024",
        what: "JPEG → fit 1024×1024 → WebP q80",
        inputs: "jpeg",
        width: 1024,
        height: 1024,
        format: "webp",
    },
    Op {
        name: "24mp-320",
        what: "24 MP JPEG → fit 320×320 → JPEG q80",
        inputs: "large/kleiber-24mp-q95.jpg",
        width: 320,
        height: 320,
        format: "jpeg",
    },
];

impl Op {
    fn ours_query(&self) -> String {
        format!("w={}&h={}&fit=inside&format={}&quality=80", self.width, self.height, self.format)
    }

    /// imgproxy's `fit` keeps the aspect ratio inside the box, as our `inside`
    /// does; our `inside` also enlarges a smaller photo, imgproxy only with
    /// `enlarge` (the third argument) set.
    fn imgproxy_path(&self, rel: &str) -> String {
        format!("/insecure/rs:fit:{}:{}:1/q:80/plain/local:///{rel}@{}", self.width, self.height, self.format)
    }
}

struct Args {
    reps: usize,
    seconds: f64,
    ops: Vec<&'static Op>,
    clients: Vec<usize>,
    factors: Vec<f64>,
    timeout: Duration,
    peers_dir: PathBuf,
    /// How our api-server hands bodies to the worker (`reference` or `inline`).
    staging: String,
    /// JetStream as one server, or as a 3-node cluster with R3 streams.
    queue_nodes: usize,
}

fn list<T: std::str::FromStr>(value: &str) -> anyhow::Result<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value.split(',').map(|v| v.trim().parse::<T>().with_context(|| format!("`{v}` in `{value}`"))).collect()
}

fn args() -> anyhow::Result<Args> {
    let cache = std::env::var_os("RESIZER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/resizer"));
    let mut a = Args {
        reps: 1,
        seconds: 3.0,
        ops: OPS.iter().collect(),
        clients: vec![1, 4, 16],
        factors: vec![0.8, 2.0, 5.0],
        timeout: Duration::from_secs(15),
        peers_dir: cache.join("bench"),
        staging: "reference".into(),
        queue_nodes: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--reps" => a.reps = value.parse::<usize>()?.max(1),
            "--seconds" => a.seconds = value.parse()?,
            "--ops" => {
                a.ops = value
                    .split(',')
                    .map(|n| OPS.iter().find(|o| o.name == n).with_context(|| format!("unknown op {n}")))
                    .collect::<anyhow::Result<_>>()?
            }
            "--clients" => a.clients = list(&value)?,
            "--factors" => a.factors = list(&value)?,
            "--timeout" => a.timeout = Duration::from_secs_f64(value.parse()?),
            "--peers-dir" => a.peers_dir = value.into(),
            "--staging" => a.staging = value,
            "--queue-nodes" => {
                a.queue_nodes = value.parse()?;
                anyhow::ensure!(matches!(a.queue_nodes, 1 | 3), "--queue-nodes is 1 or 3");
            }
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

fn now() -> String {
    let s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("{:02}:{:02}:{:02}", s / 3600 % 24, s / 60 % 60, s % 60)
}

macro_rules! progress {
    ($($t:tt)*) => { eprintln!("[{}] {}", now(), format!($($t)*)) };
}

/// The JetStream our stack runs on.
enum Queue {
    /// One server (`NATS_SYNC_INTERVAL` sets its fsync policy).
    One(NatsServer),
    /// Three servers with `sync_interval: always`; JOBS and USAGE are R3.
    Three(e2e::cluster::Cluster),
}

impl Queue {
    fn urls(&self) -> String {
        match self {
            Self::One(n) => n.client_url.clone(),
            Self::Three(c) => c.urls(),
        }
    }

    fn pids(&self) -> Vec<(&'static str, u32)> {
        match self {
            Self::One(n) => n.pid().map(|p| ("nats-server", p)).into_iter().collect(),
            Self::Three(c) => ["nats-server n0", "nats-server n1", "nats-server n2"]
                .into_iter()
                .zip(&c.nodes)
                .filter_map(|(name, n)| n.pid().map(|p| (name, p)))
                .collect(),
        }
    }

    fn replicas(&self) -> &'static str {
        match self {
            Self::One(_) => "1",
            Self::Three(_) => "3",
        }
    }
}

/// Our service as processes.
struct Ours {
    nats: Queue,
    auth: AuthCache,
    api: procs::ApiServer,
    worker: procs::Worker,
    usage: Aggregator,
    authorization: String,
    // Kept so the store's connection and the tenant outlive the runs.
    _store: identity::store::Store,
}

impl Ours {
    async fn start(logs: &Path, staging: &str, queue_nodes: usize) -> anyhow::Result<Self> {
        let nats = if queue_nodes == 3 {
            let c = e2e::cluster::Cluster::start()?;
            c.ready(Duration::from_secs(60)).await?;
            Queue::Three(c)
        } else {
            Queue::One(NatsServer::start()?)
        };
        let replicas = nats.replicas();
        let launch = |name: &str| {
            Launch::default()
                .env("RUST_LOG", "warn")
                .env("JOBS_REPLICAS", replicas)
                .env("USAGE_REPLICAS", replicas)
                .log_to(logs.join(format!("{name}.log")))
        };
        let urls = nats.urls();
        let store = ident::store(&urls).await?;
        let auth = AuthCache::launch(&urls, &[], &launch("auth-cache")).await?;
        let usage = Aggregator::launch(&urls, "system-bench-admin-token", &[], &launch("usage-aggregator"))?;
        // Defaults otherwise: the admission limits are part of what is measured.
        let api =
            procs::ApiServer::launch(&urls, &["--auth", "required", "--staging", staging], &launch("api-server"))?;
        let worker = procs::Worker::launch(&urls, &[], &launch("worker"))?;
        let rate = contracts::identity::RateLimit { per_second: 1_000_000, burst: 1_000_000 };
        let tenant = ident::tenant(&store, "system-bench", rate).await?;
        auth.caught_up(&store).await?;
        let Credentials::ApiKey(token) = &tenant.api_key else { bail!("the tenant's API key") };
        let authorization = format!("Bearer {token}");
        Ok(Self { nats, auth, api, worker, usage, authorization, _store: store })
    }

    fn pids(&self) -> Vec<(&'static str, u32)> {
        let mut v = vec![
            ("api-server", self.api.pid()),
            ("worker", self.worker.pid() as u32),
            ("auth-cache", self.auth.pid()),
            ("usage-aggregator", self.usage.pid()),
        ];
        v.extend(self.nats.pids());
        v
    }
}

/// imgproxy as a process.
struct Imgproxy {
    child: Child,
    base: String,
}

impl Imgproxy {
    async fn start(binary: &Path, root: &Path, logs: &Path) -> anyhow::Result<Self> {
        let port = procs::free_port();
        let child = Command::new(binary)
            .env("IMGPROXY_BIND", format!("127.0.0.1:{port}"))
            .env("IMGPROXY_LOCAL_FILESYSTEM_ROOT", root)
            .env("IMGPROXY_WORKERS", "2")
            .env("IMGPROXY_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(logs.join("imgproxy.log"))?))
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let me = Self { child, base: format!("http://127.0.0.1:{port}") };
        let http = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if http.get(format!("{}/health", me.base)).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(me);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("imgproxy did not answer /health in 30 s (log: {})", logs.join("imgproxy.log").display())
    }
}

impl Drop for Imgproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum System {
    Ours,
    Imgproxy,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::Imgproxy => "imgproxy",
        }
    }
}

/// How one system is asked for one operation, request by request.
#[derive(Clone)]
struct Target {
    system: System,
    http: reqwest::Client,
    /// For ours: one URL and a body per input; for imgproxy: one URL per input.
    urls: Arc<Vec<String>>,
    bodies: Arc<Vec<Bytes>>,
    authorization: Option<Arc<str>>,
}

impl Target {
    fn request(&self, i: usize) -> reqwest::RequestBuilder {
        match self.system {
            System::Ours => {
                let mut r = self
                    .http
                    .post(&self.urls[0])
                    .header("content-type", "image/jpeg")
                    .body(self.bodies[i % self.bodies.len()].clone());
                if let Some(a) = &self.authorization {
                    r = r.header("authorization", &**a);
                }
                r
            }
            System::Imgproxy => self.http.get(&self.urls[i % self.urls.len()]),
        }
    }

    /// One request: its outcome and, for a 200, the answer's bytes.
    async fn once(&self, i: usize) -> Result<Bytes, Failure> {
        let res = self.request(i).send().await.map_err(|e| classify_error(&e))?;
        let status = res.status().as_u16();
        let body = res.bytes().await.map_err(|e| classify_error(&e))?;
        match status {
            200 if !body.is_empty() => Ok(body),
            200 => Err(Failure::Transport("empty 200 answer".into())),
            503 => Err(Failure::Unavailable(problem_type(&body).unwrap_or_default())),
            s => Err(Failure::Status(s)),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Load {
    Closed(usize),
    /// Factor of the closed-loop capacity.
    Open(f64),
}

impl Load {
    fn label(self) -> String {
        match self {
            Self::Closed(c) => format!("closed {c:>2}"),
            Self::Open(f) => format!("open {f}×"),
        }
    }
}

/// What one run measured.
#[derive(Default)]
struct Tally {
    /// Milliseconds from (scheduled) send to the last byte of each ok answer.
    ok_ms: Vec<f64>,
    ok_in_window: usize,
    sent: usize,
    failures: BTreeMap<Failure, usize>,
}

impl Tally {
    fn add(&mut self, result: Result<(), Failure>, latency_ms: f64, done_in_window: bool) {
        match result {
            Ok(()) => {
                self.ok_ms.push(latency_ms);
                self.ok_in_window += usize::from(done_in_window);
            }
            Err(f) => *self.failures.entry(f).or_default() += 1,
        }
    }
}

async fn closed_loop(target: &Target, clients: usize, window: Duration, timeout: Duration) -> Tally {
    let started = Instant::now();
    let end = started + window;
    let mut tasks = JoinSet::new();
    for c in 0..clients {
        let target = target.clone();
        tasks.spawn(async move {
            let mut local = Tally::default();
            let mut i = c;
            while Instant::now() < end {
                let t0 = Instant::now();
                let r = tokio::time::timeout(timeout, target.once(i)).await.unwrap_or(Err(Failure::Timeout));
                local.sent += 1;
                let shed = matches!(r, Err(Failure::Unavailable(_)));
                local.add(r.map(drop), t0.elapsed().as_secs_f64() * 1000.0, Instant::now() <= end);
                i += clients;
                if shed {
                    // A refused client backs off briefly, as `Retry-After` asks, instead
                    // of spinning on refusals that cost both sides CPU and serve nothing.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            local
        });
    }
    let mut t = Tally::default();
    while let Some(local) = tasks.join_next().await {
        let local = local.expect("client task");
        t.ok_ms.extend(local.ok_ms);
        t.ok_in_window += local.ok_in_window;
        t.sent += local.sent;
        for (f, n) in local.failures {
            *t.failures.entry(f).or_default() += n;
        }
    }
    t
}

async fn open_loop(target: &Target, rate: f64, window: Duration, timeout: Duration) -> Tally {
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let started = Instant::now();
    let end = started + window;
    let mut tasks = JoinSet::new();
    let mut t = Tally::default();
    let mut next = started;
    let mut i = 0;
    while next < end {
        tokio::time::sleep_until(next.into()).await;
        let (target, scheduled) = (target.clone(), next);
        tasks.spawn(async move {
            let r = tokio::time::timeout(timeout, target.once(i)).await.unwrap_or(Err(Failure::Timeout));
            (r.map(drop), scheduled.elapsed().as_secs_f64() * 1000.0, Instant::now() <= end)
        });
        t.sent += 1;
        i += 1;
        next += interval;
        // Reap finished requests as we go so the set holds only those in flight.
        while let Some(done) = tasks.try_join_next() {
            let (r, ms, in_window) = done.expect("request task");
            t.add(r, ms, in_window);
        }
    }
    while let Some(done) = tasks.join_next().await {
        let (r, ms, in_window) = done.expect("request task");
        t.add(r, ms, in_window);
    }
    t
}

fn cpu_of(pids: &[(&'static str, u32)]) -> Vec<f64> {
    pids.iter().map(|(_, p)| process_cpu_seconds(*p).unwrap_or(f64::NAN)).collect()
}

/// Waits until `pids` together use under 5 % of a core over 300 ms (at most
/// 20 s): work left over from one run, such as jobs whose clients timed out,
/// must not be billed to the next.
async fn settle(pids: &[(&'static str, u32)]) {
    let started = Instant::now();
    let mut before: f64 = cpu_of(pids).iter().sum();
    while started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now: f64 = cpu_of(pids).iter().sum();
        if now - before < 0.015 {
            return;
        }
        before = now;
    }
}

/// One measured run.
struct RunResult {
    op: &'static str,
    system: System,
    load: String,
    rate: f64,
    p50: f64,
    p99: f64,
    failures: BTreeMap<Failure, usize>,
    per_cpu_s: f64,
    cpu_ms: Vec<(&'static str, f64)>,
    client_cpu_ms: f64,
}

fn failures_text(f: &BTreeMap<Failure, usize>) -> String {
    if f.is_empty() {
        return "none".into();
    }
    f.iter().map(|(k, n)| format!("{k} ×{n}")).collect::<Vec<_>>().join(", ")
}

async fn measure(
    op: &'static Op,
    target: &Target,
    pids: &[(&'static str, u32)],
    load: Load,
    rate: f64,
    a: &Args,
    label: &str,
) -> RunResult {
    settle(pids).await;
    let window = Duration::from_secs_f64(a.seconds);
    let me = std::process::id();
    let (before, client_before) = (cpu_of(pids), process_cpu_seconds(me).unwrap_or(f64::NAN));
    let tally = match load {
        Load::Closed(c) => closed_loop(target, c, window, a.timeout).await,
        Load::Open(_) => open_loop(target, rate, window, a.timeout).await,
    };
    let used: Vec<f64> = cpu_of(pids).iter().zip(&before).map(|(after, b)| after - b).collect();
    let client_cpu = process_cpu_seconds(me).unwrap_or(f64::NAN) - client_before;
    let ok = tally.ok_ms.len();
    let total_cpu: f64 = used.iter().sum();
    let r = RunResult {
        op: op.name,
        system: target.system,
        load: load.label(),
        rate: tally.ok_in_window as f64 / a.seconds,
        p50: percentile(&tally.ok_ms, 0.5),
        p99: percentile(&tally.ok_ms, 0.99),
        failures: tally.failures,
        per_cpu_s: ok as f64 / total_cpu,
        cpu_ms: pids.iter().zip(&used).map(|((n, _), u)| (*n, u * 1000.0 / ok as f64)).collect(),
        client_cpu_ms: client_cpu * 1000.0 / ok as f64,
    };
    let offered = match load {
        Load::Open(_) => format!(" offered {rate:.0}/s sent {}", tally.sent),
        Load::Closed(_) => String::new(),
    };
    let per_process: Vec<String> = r.cpu_ms.iter().map(|(n, ms)| format!("{n} {ms:.2}")).collect();
    println!(
        "{label} {:<9} {:<8} {:<10}{offered}: {:.1} ok/s, p50 {:.1} ms, p99 {:.1} ms, failures: {}; \
         {:.1} conv/CPU-s; CPU ms/conv: {} (load generator {:.2})",
        op.name,
        r.system.name(),
        r.load,
        r.rate,
        r.p50,
        r.p99,
        failures_text(&r.failures),
        r.per_cpu_s,
        per_process.join(", "),
        r.client_cpu_ms,
    );
    r
}

/// The inputs of `op`, as (path relative to the corpus, bytes).
fn inputs(op: &Op) -> anyhow::Result<Vec<(String, Bytes)>> {
    let root = corpus::dir();
    let path = root.join(op.inputs);
    let files = if path.is_dir() { corpus::files(op.inputs) } else { vec![path] };
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&root)?.to_string_lossy().into_owned();
            Ok((rel, Bytes::from(std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?)))
        })
        .collect()
}

/// A line about an answer, and its (width, height, format) to compare the systems by.
fn describe(answer: &[u8]) -> (String, Option<(u32, u32, String)>) {
    match image::ImageReader::new(std::io::Cursor::new(answer)).with_guessed_format() {
        Ok(r) => {
            let format = r.format().map_or("unknown".to_owned(), |f| format!("{f:?}").to_lowercase());
            match r.into_dimensions() {
                Ok((w, h)) => (format!("{w}×{h} {format}, {} bytes", answer.len()), Some((w, h, format))),
                Err(_) => (format!("{format}, {} bytes", answer.len()), None),
            }
        }
        Err(e) => (format!("unreadable answer: {e}"), None),
    }
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(4096).timeout(timeout).build().expect("HTTP client")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    bench::raise_fd_limit();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let logs = std::env::temp_dir().join(format!("system-bench-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    let imgproxy_bin = a.peers_dir.join("imgproxy");
    let runs_per_system = a.ops.len() * (a.clients.len() + a.factors.len()) * a.reps;
    progress!(
        "{cores} cores; {} reps × {} s per run; {runs_per_system} runs per system; logs in {}",
        a.reps,
        a.seconds,
        logs.display()
    );

    progress!(
        "starting our stack: nats-server ×{}, auth-cache, usage-aggregator, api-server (API keys required, STAGING={}), worker",
        a.queue_nodes,
        a.staging
    );
    let ours = Ours::start(&logs, &a.staging, a.queue_nodes).await?;
    let imgproxy = if imgproxy_bin.is_file() {
        progress!("starting imgproxy (IMGPROXY_WORKERS=2, local filesystem root {})", corpus::dir().display());
        Some(Imgproxy::start(&imgproxy_bin, &corpus::dir(), &logs).await?)
    } else {
        let note = std::fs::read_to_string(a.peers_dir.join("imgproxy.unavailable"))
            .unwrap_or_else(|_| format!("{} is missing", imgproxy_bin.display()));
        println!("imgproxy unavailable: {}; ours alone", note.trim());
        None
    };
    println!(
        "ours: the client POSTs each photo's bytes over HTTP (API key), api-server → JetStream → worker → back; \
         imgproxy: the client GETs a local:/// URL and imgproxy reads the photo from disk (no request body)"
    );
    println!(
        "server CPU: ours = nats-server + api-server + worker + auth-cache + usage-aggregator; imgproxy = its process"
    );

    let ours_pids = ours.pids();
    let imgproxy_pids: Vec<(&'static str, u32)> = imgproxy.iter().map(|i| ("imgproxy", i.child.id())).collect();
    let mut results: Vec<RunResult> = Vec::new();
    let mut in_process: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut capacity: BTreeMap<(&'static str, System), f64> = BTreeMap::new();
    let total = runs_per_system * (1 + usize::from(imgproxy.is_some()));
    let mut done = 0;

    for op in &a.ops {
        let files = inputs(op)?;
        let query = op.ours_query();
        let resize_op = ResizeOp::parse_canonical(&query).map_err(|e| anyhow::anyhow!("{e}"))?;
        let bodies: Arc<Vec<Bytes>> = Arc::new(files.iter().map(|(_, b)| b.clone()).collect());
        let mut targets = vec![(
            Target {
                system: System::Ours,
                http: client(a.timeout),
                urls: Arc::new(vec![format!("{}/v1/resize?{query}", ours.api.base)]),
                bodies: bodies.clone(),
                authorization: Some(ours.authorization.as_str().into()),
            },
            ours_pids.clone(),
        )];
        if let Some(ip) = &imgproxy {
            let urls = files.iter().map(|(rel, _)| format!("{}{}", ip.base, op.imgproxy_path(rel))).collect();
            targets.push((
                Target {
                    system: System::Imgproxy,
                    http: client(a.timeout),
                    urls: Arc::new(urls),
                    bodies: Arc::new(Vec::new()),
                    authorization: None,
                },
                imgproxy_pids.clone(),
            ));
        }
        progress!(
            "{}: {} ({} inputs); checking one answer of each system, then warming up",
            op.name,
            op.what,
            files.len()
        );
        let mut shapes = Vec::new();
        for (t, _) in &targets {
            let answer = t
                .once(0)
                .await
                .map_err(|f| anyhow::anyhow!("{} {}: first request failed: {f}", t.system.name(), op.name))?;
            let (text, shape) = describe(&answer);
            println!("{} {} first answer ({}): {text}", op.name, t.system.name(), files[0].0);
            shapes.push(shape);
            closed_loop(t, 4, Duration::from_secs(2), a.timeout).await;
        }
        if shapes.windows(2).any(|w| w[0] != w[1]) {
            println!("WARNING {}: the answers differ in size or format: not the same operation", op.name);
        }

        for rep in 0..a.reps {
            progress!("{}: in-process resize, {cores} threads, rep {}/{}", op.name, rep + 1, a.reps);
            let local = tokio::task::block_in_place(|| bench::in_process(&bodies, &resize_op, cores, a.seconds));
            println!(
                "in-process {:<9} rep {}: {:.1} conv/s, {:.1} conv/CPU-s",
                op.name,
                rep + 1,
                local.count as f64 / local.elapsed.as_secs_f64(),
                local.per_cpu_second()
            );
            in_process.entry(op.name).or_default().push(local.per_cpu_second());
            for &clients in &a.clients {
                for (t, pids) in &targets {
                    done += 1;
                    let label = format!("[{done}/{total}] rep {}", rep + 1);
                    progress!(
                        "{label}: {} {} closed loop, {clients} clients, {} s",
                        op.name,
                        t.system.name(),
                        a.seconds
                    );
                    results.push(measure(op, t, pids, Load::Closed(clients), 0.0, &a, &label).await);
                }
            }
        }
        // Capacity: the best closed-loop median, per system.
        for (t, _) in &targets {
            let best = a
                .clients
                .iter()
                .map(|c| {
                    let label = Load::Closed(*c).label();
                    median(
                        &results
                            .iter()
                            .filter(|r| r.op == op.name && r.system == t.system && r.load == label)
                            .map(|r| r.rate)
                            .collect::<Vec<_>>(),
                    )
                })
                .fold(0.0, f64::max);
            progress!("{}: {} capacity (best closed-loop median) {best:.1} ok/s", op.name, t.system.name());
            capacity.insert((op.name, t.system), best);
        }
        for rep in 0..a.reps {
            for &factor in &a.factors {
                for (t, pids) in &targets {
                    done += 1;
                    let rate = capacity[&(op.name, t.system)] * factor;
                    let label = format!("[{done}/{total}] rep {}", rep + 1);
                    progress!(
                        "{label}: {} {} open loop {factor}× = {rate:.0}/s, {} s",
                        op.name,
                        t.system.name(),
                        a.seconds
                    );
                    results.push(measure(op, t, pids, Load::Open(factor), rate, &a, &label).await);
                }
            }
        }
    }

    summary(&a, &results, &in_process, &capacity, imgproxy.is_some());
    drop(imgproxy);
    let mut ours = ours;
    ours.worker.terminate();
    ours.api.terminate();
    Ok(())
}

fn summary(
    a: &Args,
    results: &[RunResult],
    in_process: &BTreeMap<&'static str, Vec<f64>>,
    capacity: &BTreeMap<(&'static str, System), f64>,
    with_imgproxy: bool,
) {
    let pick = |op: &str, system: System, load: &str| -> Vec<&RunResult> {
        results.iter().filter(|r| r.op == op && r.system == system && r.load == load).collect()
    };
    let med = |runs: &[&RunResult], f: fn(&RunResult) -> f64| median(&runs.iter().map(|r| f(r)).collect::<Vec<_>>());
    let failed = |runs: &[&RunResult]| {
        let mut all = BTreeMap::new();
        for r in runs {
            for (k, n) in &r.failures {
                *all.entry(k.clone()).or_insert(0) += n;
            }
        }
        failures_text(&all)
    };
    println!();
    println!(
        "## Summary: medians over {} rep(s) of {} s; ok/s within the window, latency of ok answers, \
         conversions per CPU-second of all server processes; failures summed over reps",
        a.reps, a.seconds
    );
    println!();
    println!(
        "| op | load | ours ok/s | imgproxy ok/s | ours/imgproxy | ours p50 / p99 ms | imgproxy p50 / p99 ms | \
         ours conv/CPU-s | imgproxy conv/CPU-s | ours/imgproxy | ours failures | imgproxy failures |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let loads: Vec<Load> =
        a.clients.iter().map(|c| Load::Closed(*c)).chain(a.factors.iter().map(|f| Load::Open(*f))).collect();
    for op in &a.ops {
        for load in &loads {
            let label = load.label();
            let o = pick(op.name, System::Ours, &label);
            let i = pick(op.name, System::Imgproxy, &label);
            let (or, ir) = (med(&o, |r| r.rate), med(&i, |r| r.rate));
            let (oc, ic) = (med(&o, |r| r.per_cpu_s), med(&i, |r| r.per_cpu_s));
            let load_text = match load {
                Load::Open(f) => {
                    let rate = |s| capacity.get(&(op.name, s)).map_or(f64::NAN, |c| c * f);
                    if with_imgproxy {
                        format!("{label} ({:.0} / {:.0} /s)", rate(System::Ours), rate(System::Imgproxy))
                    } else {
                        format!("{label} ({:.0} /s)", rate(System::Ours))
                    }
                }
                Load::Closed(_) => label.clone(),
            };
            let na = |v: f64, p: usize| if v.is_nan() { "—".to_owned() } else { format!("{v:.p$}") };
            println!(
                "| {} | {load_text} | {} | {} | {} | {} / {} | {} / {} | {} | {} | {} | {} | {} |",
                op.name,
                na(or, 1),
                na(ir, 1),
                na(or / ir, 2),
                na(med(&o, |r| r.p50), 1),
                na(med(&o, |r| r.p99), 1),
                na(med(&i, |r| r.p50), 1),
                na(med(&i, |r| r.p99), 1),
                na(oc, 1),
                na(ic, 1),
                na(oc / ic, 2),
                failed(&o),
                if with_imgproxy { failed(&i) } else { "—".into() },
            );
        }
    }
    println!();
    println!("## Our CPU per conversion by process (ms, medians), closed loop");
    println!();
    let names: Vec<&str> = results
        .iter()
        .find(|r| r.system == System::Ours)
        .map_or(vec![], |r| r.cpu_ms.iter().map(|(n, _)| *n).collect());
    println!("| op | load | {} | load generator |", names.join(" | "));
    println!("|---|---|{}---|", "---|".repeat(names.len()));
    for op in &a.ops {
        for c in &a.clients {
            let label = Load::Closed(*c).label();
            let o = pick(op.name, System::Ours, &label);
            let cols: Vec<String> = (0..names.len())
                .map(|k| format!("{:.2}", median(&o.iter().map(|r| r.cpu_ms[k].1).collect::<Vec<_>>())))
                .collect();
            println!("| {} | {label} | {} | {:.2} |", op.name, cols.join(" | "), med(&o, |r| r.client_cpu_ms));
        }
    }
    println!();
    println!("## Whole system against the worker's own resize in this process (target: ≥ 0.85)");
    println!();
    println!("| op | in-process conv/CPU-s | load | whole-system conv/CPU-s | whole-system / in-process |");
    println!("|---|---|---|---|---|");
    for op in &a.ops {
        let local = median(in_process.get(op.name).map_or(&[][..], |v| v.as_slice()));
        for load in a.clients.iter().map(|c| Load::Closed(*c)) {
            let label = load.label();
            let whole = med(&pick(op.name, System::Ours, &label), |r| r.per_cpu_s);
            println!("| {} | {local:.1} | {label} | {whole:.1} | {:.3} |", op.name, whole / local);
        }
    }
}
