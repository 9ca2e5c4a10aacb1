//! Benchmark (not a test): what authentication costs and how fast identity changes arrive.
//!
//!   cargo build --release --bins && target/release/auth-bench [--seconds 5] [--rates 2500,5000,7500] [--rounds 50] [--compare-permissions]
//!
//! Runs nats-server, an auth-cache and two api-servers (authentication
//! required, and off) as processes, with no worker: every request is signed
//! and carries an invalid parameter, so it is authenticated and then answered
//! 400 without reaching the queue. It prints
//! - propagation: time from an admin write returning to the first request
//!   that sees it (a new key accepted, a revoked key refused), p50/p99/max;
//! - added latency: one client in a loop, authenticated vs unauthenticated;
//! - open-loop throughput: offered vs achieved rate, latency from the
//!   scheduled send time, and requests per CPU-second of the api-server and
//!   of the auth-cache and nats-server.
//!
//! `--compare-permissions` (no value) runs every measurement on two such
//! stacks, one on a nats-server with the fleet's users and subject
//! permissions (`contracts::access`; every process and the bench's own
//! connections use their role's key) and one on a server without any
//! authorization, in turn (round by round, request by request, rate by rate,
//! the order swapped each time so drift falls on both), and prints each
//! figure for both and the ratio on/off.

use anyhow::Context;
use e2e::{
    bench::percentile,
    identity::{self as ident, AuthCache, auth_headers},
    nats::NatsServer,
    procs,
};
use identity::client::{self, Credentials};
use std::time::{Duration, Instant};

const RATE: contracts::identity::RateLimit = contracts::identity::RateLimit { per_second: 1_000_000, burst: 1_000_000 };

fn stats(v: &[f64]) -> String {
    format!(
        "p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (n={})",
        percentile(v, 0.5),
        percentile(v, 0.99),
        percentile(v, 1.0),
        v.len()
    )
}

async fn status(http: &reqwest::Client, url: &str, creds: &Credentials) -> u16 {
    let h = auth_headers(url, "image/jpeg", b"x", creds);
    http.post(url).headers(h).body("x").send().await.map_or(0, |r| r.status().as_u16())
}

/// Milliseconds from now until `status(creds)` answers `want`.
async fn until(http: &reqwest::Client, url: &str, creds: &Credentials, want: u16) -> f64 {
    let t0 = Instant::now();
    while status(http, url, creds).await != want {
        if t0.elapsed() > Duration::from_secs(10) {
            return f64::INFINITY;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    t0.elapsed().as_secs_f64() * 1000.0
}

/// nats-server, the identity store, an auth-cache, an api-server with
/// authentication and one without, and a tenant.
struct Stack {
    /// How figures of this stack are labelled: empty when it is the only one.
    tag: &'static str,
    nats: NatsServer,
    store: identity::store::Store,
    auth: AuthCache,
    api: procs::ApiServer,
    // Kept for its address (`open_url`); dropping it stops the process.
    _open: procs::ApiServer,
    tenant: ident::Tenant,
    url: String,
    open_url: String,
}

impl Stack {
    async fn start(tag: &'static str, permissions: bool, http: &reqwest::Client) -> anyhow::Result<Self> {
        let nats = if permissions { NatsServer::start()? } else { NatsServer::start_open()? };
        let store = ident::store(&nats.client_url).await?;
        let auth = AuthCache::spawn(&nats.client_url, &["--tasks", "1"]).await?;
        let api = procs::ApiServer::spawn(&nats.client_url, &["--auth", "required"])?;
        let open = procs::ApiServer::spawn(&nats.client_url, &["--auth", "none"])?;
        let (url, open_url) = (format!("{}/v1/resize?w=0", api.base), format!("{}/v1/resize?w=0", open.base));
        let tenant = ident::tenant(&store, "bench", RATE).await?;
        auth.caught_up(&store).await?;
        anyhow::ensure!(
            status(http, &url, &tenant.signature).await == 400,
            "a signed request should pass authentication"
        );
        Ok(Self { tag, nats, store, auth, api, _open: open, tenant, url, open_url })
    }

    /// One new key until usable, then its revocation until refused, in ms.
    async fn propagation(&self, http: &reqwest::Client, i: usize) -> anyhow::Result<(f64, f64)> {
        let key = client::generate_key();
        let id = format!("k{i}");
        let creds = Credentials::Signature { key_id: id.clone(), key: key.clone() };
        // Asked before it exists: the "unknown" answer is cached, and the create must clear it.
        let _ = status(http, &self.url, &creds).await;
        self.store.add_ed25519("bench", Some(&id), &client::encode_public(&key)).await?;
        let created = until(http, &self.url, &creds, 400).await;
        self.store.revoke_key(&id).await?;
        Ok((created, until(http, &self.url, &creds, 403).await))
    }

    /// The verification of the tenant's API key as the api-server asks it.
    fn verify_request(&self) -> anyhow::Result<bytes::Bytes> {
        let secret_sha256 = match &self.tenant.api_key {
            Credentials::ApiKey(token) => {
                let k = contracts::identity::apikey::parse(token).context("issued API key")?;
                contracts::identity::apikey::secret_sha256(k.secret)
            }
            Credentials::Signature { .. } => anyhow::bail!("the tenant's API key"),
        };
        let req = contracts::identity::VerifyRequest::Bearer { key_id: self.tenant.api_key_id.clone(), secret_sha256 };
        Ok(serde_json::to_vec(&req)?.into())
    }

    /// One signed request to `url`, answered 400 after authentication (or none), in ms.
    async fn sequential(&self, http: &reqwest::Client, url: &str) -> anyhow::Result<f64> {
        let h = auth_headers(url, "image/jpeg", b"x", &self.tenant.signature);
        let t0 = Instant::now();
        let res = http.post(url).headers(h).body("x").send().await?;
        anyhow::ensure!(res.status() == 400, "unexpected {}", res.status());
        res.bytes().await?;
        Ok(t0.elapsed().as_secs_f64() * 1000.0)
    }

    /// `secs` of signed requests offered at `rate` per second.
    async fn open_loop(&self, http: &reqwest::Client, rate: f64, secs: u64) -> anyhow::Result<OpenLoop> {
        // One signature per second of the run: signing is the client's cost, not the server's.
        let headers = auth_headers(&self.url, "image/jpeg", b"x", &self.tenant.signature);
        let cpu = |pid: Option<u32>| pid.and_then(procs::cpu_seconds).unwrap_or(f64::NAN);
        let pids = [Some(self.api.pid()), Some(self.auth.pid()), self.nats.pid()];
        let before = pids.map(cpu);
        let interval = Duration::from_secs_f64(1.0 / rate);
        let started = Instant::now();
        let mut next = started;
        let mut tasks = Vec::new();
        while started.elapsed() < Duration::from_secs(secs) {
            tokio::time::sleep_until(next.into()).await;
            let scheduled = next;
            next += interval;
            let (http, url, headers) = (http.clone(), self.url.clone(), headers.clone());
            tasks.push(tokio::spawn(async move {
                let res = http.post(&url).headers(headers).body("x").send().await;
                let ok = match res {
                    Ok(r) => r.status() == 400 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                (ok, scheduled.elapsed().as_secs_f64() * 1000.0)
            }));
        }
        let mut lat = Vec::new();
        let mut errors = 0;
        for task in tasks {
            let (ok, ms) = task.await?;
            if ok { lat.push(ms) } else { errors += 1 }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let n = lat.len() as f64;
        let per_cpu: Vec<f64> = pids.iter().zip(before).map(|(p, b)| n / (cpu(*p) - b)).collect();
        Ok(OpenLoop {
            achieved: n / elapsed,
            p50: percentile(&lat, 0.5),
            p99: percentile(&lat, 0.99),
            errors,
            per_api_cpu: per_cpu[0],
            per_auth_cpu: per_cpu[1],
            per_nats_cpu: per_cpu[2],
        })
    }
}

struct OpenLoop {
    achieved: f64,
    p50: f64,
    p99: f64,
    errors: usize,
    /// Requests answered per CPU-second of the api-server, the auth-cache and nats-server.
    per_api_cpu: f64,
    per_auth_cpu: f64,
    per_nats_cpu: f64,
}

/// The order the stacks are measured in at step `i`: swapped every step.
fn order(i: usize, n: usize) -> Vec<usize> {
    if i.is_multiple_of(2) { (0..n).collect() } else { (0..n).rev().collect() }
}

/// `label` with each stack's samples, and with two stacks their ratio on/off.
fn report(stacks: &[Stack], label: &str, samples: &[Vec<f64>]) {
    for (s, v) in stacks.iter().zip(samples) {
        println!("{label:<46}{}{}", s.tag, stats(v));
    }
    if let [off, on] = samples {
        let r = |p| percentile(on, p) / percentile(off, p);
        println!("{:<46}on/off: p50 {:.3}  p99 {:.3}", "", r(0.5), r(0.99));
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut secs = 5u64;
    let mut rates = vec![2500.0, 5000.0, 7500.0];
    let mut rounds = 50usize;
    let mut compare_permissions = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--compare-permissions" {
            compare_permissions = true;
            continue;
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => secs = value.parse()?,
            "--rates" => rates = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--rounds" => rounds = value.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    let http = reqwest::Client::builder().pool_max_idle_per_host(4096).build()?;
    let stacks = if compare_permissions {
        eprintln!("permissions off: a nats-server without authorization; on: the fleet's users and permissions");
        vec![
            Stack::start("[permissions off] ", false, &http).await?,
            Stack::start("[permissions on]  ", true, &http).await?,
        ]
    } else {
        vec![Stack::start("", true, &http).await?]
    };
    let n = stacks.len();
    let per_stack = || vec![Vec::new(); n];

    eprintln!("propagation: {rounds} new keys and {rounds} revocations");
    let (mut created, mut revoked) = (per_stack(), per_stack());
    for i in 0..rounds {
        for s in order(i, n) {
            let (c, r) = stacks[s].propagation(&http, i).await?;
            created[s].push(c);
            revoked[s].push(r);
        }
    }
    report(&stacks, "new key usable after the admin call:", &created);
    report(&stacks, "revoked key refused after the call:", &revoked);

    eprintln!("transport: 3000 verifications over NATS request/reply, 3000 HTTP round trips to the auth-cache");
    // The verification exchange as the api-server makes it, against an HTTP round
    // trip to the same process on a kept-alive connection (a lower bound for an
    // HTTP verification endpoint: it does no verification at all).
    let mut exchanges = Vec::with_capacity(n);
    for s in &stacks {
        let nc = e2e::nats::options_as(contracts::access::Role::ApiServer).connect(s.nats.client_url.as_str()).await?;
        exchanges.push((nc, s.verify_request()?));
    }
    let (mut over_nats, mut over_http) = (per_stack(), per_stack());
    for i in 0..3000 {
        for s in order(i, n) {
            let (nc, payload) = &exchanges[s];
            let t0 = Instant::now();
            let msg = nc.request(contracts::identity::VERIFY_SUBJECT, payload.clone()).await?;
            over_nats[s].push(t0.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(msg.payload.starts_with(br#"{"verdict":"allowed""#), "verification refused");
            let t0 = Instant::now();
            http.get(format!("{}/readyz", stacks[s].auth.base)).send().await?.bytes().await?;
            over_http[s].push(t0.elapsed().as_secs_f64() * 1000.0);
        }
    }
    report(&stacks, "verification over NATS request/reply:", &over_nats);
    report(&stacks, "HTTP round trip to the auth-cache (no work):", &over_http);

    eprintln!("added latency: 2 × 3000 sequential requests");
    let (mut with, mut without) = (per_stack(), per_stack());
    for i in 0..6000 {
        // With and without alternate; the stacks' order swaps every pair.
        for s in order(i / 2, n) {
            let stack = &stacks[s];
            if i % 2 == 0 {
                with[s].push(stack.sequential(&http, &stack.url).await?);
            } else {
                without[s].push(stack.sequential(&http, &stack.open_url).await?);
            }
        }
    }
    report(&stacks, "signed, authenticated:", &with);
    report(&stacks, "no authentication:", &without);
    for (s, (with, without)) in stacks.iter().zip(with.iter().zip(&without)) {
        let added = |p| percentile(with, p) - percentile(without, p);
        println!("{:<46}{}p50 {:.3} ms  p99 {:.3} ms", "verification adds:", s.tag, added(0.5), added(0.99));
    }

    println!("open loop, signed requests answered after authentication ({secs} s per rate):");
    let tag_width = stacks[0].tag.len();
    println!(
        "  {:tag_width$}offered/s  achieved/s  p50 ms  p99 ms  errors  req per api CPU-s  req per auth-cache CPU-s  req per nats CPU-s",
        ""
    );
    let mut best = vec![0.0f64; n];
    for (r, &rate) in rates.iter().enumerate() {
        let mut runs: Vec<Option<OpenLoop>> = (0..n).map(|_| None).collect();
        for s in order(r, n) {
            runs[s] = Some(stacks[s].open_loop(&http, rate, secs).await?);
        }
        let runs: Vec<OpenLoop> = runs.into_iter().flatten().collect();
        for (s, o) in stacks.iter().zip(&runs) {
            println!(
                "  {}{rate:>9.0}  {:>10.0}  {:>6.2}  {:>6.2}  {:>6}  {:>17.0}  {:>24.0}  {:>18.0}",
                s.tag, o.achieved, o.p50, o.p99, o.errors, o.per_api_cpu, o.per_auth_cpu, o.per_nats_cpu
            );
        }
        for (best, o) in best.iter_mut().zip(&runs) {
            if o.errors == 0 {
                *best = best.max(o.per_api_cpu);
            }
        }
        if let [off, on] = &runs[..] {
            println!(
                "  {:tag_width$}{:>9}  {:>10.3}  {:>6.3}  {:>6.3}  {:>6}  {:>17.3}  {:>24.3}  {:>18.3}",
                "on/off",
                "",
                on.achieved / off.achieved,
                on.p50 / off.p50,
                on.p99 / off.p99,
                "",
                on.per_api_cpu / off.per_api_cpu,
                on.per_auth_cpu / off.per_auth_cpu,
                on.per_nats_cpu / off.per_nats_cpu
            );
        }
    }
    match &best[..] {
        [only] => println!("authenticated_per_api_cpu_second={only:.0}"),
        [off, on] => println!(
            "authenticated_per_api_cpu_second_off={off:.0} authenticated_per_api_cpu_second_on={on:.0} ratio_on_off={:.4}",
            on / off
        ),
        _ => unreachable!("one stack or two"),
    }
    Ok(())
}
