//! Benchmark (not a test): what authentication costs and how fast identity changes arrive.
//!
//!   cargo build --release --bins && target/release/auth-bench [--seconds 5] [--rates 2500,5000,7500]
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
//!   of the auth-cache.

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut secs = 5u64;
    let mut rates = vec![2500.0, 5000.0, 7500.0];
    let mut rounds = 50usize;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => secs = value.parse()?,
            "--rates" => rates = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--rounds" => rounds = value.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    let nats = NatsServer::start()?;
    let store = ident::store(&nats.client_url).await?;
    let auth = AuthCache::spawn(&nats.client_url, &["--tasks", "1"]).await?;
    let api = procs::ApiServer::spawn(&nats.client_url, &["--auth", "required"])?;
    let open = procs::ApiServer::spawn(&nats.client_url, &["--auth", "none"])?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(4096).build()?;
    let url = format!("{}/v1/resize?w=0", api.base);
    let t = ident::tenant(&store, "bench", RATE).await?;
    auth.caught_up(&store).await?;
    anyhow::ensure!(status(&http, &url, &t.signature).await == 400, "a signed request should pass authentication");

    eprintln!("propagation: {rounds} new keys and {rounds} revocations");
    let (mut created, mut revoked) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let key = client::generate_key();
        let id = format!("k{i}");
        let creds = Credentials::Signature { key_id: id.clone(), key: key.clone() };
        // Asked before it exists: the "unknown" answer is cached, and the create must clear it.
        let _ = status(&http, &url, &creds).await;
        store.add_ed25519("bench", Some(&id), &client::encode_public(&key)).await?;
        created.push(until(&http, &url, &creds, 400).await);
        store.revoke_key(&id).await?;
        revoked.push(until(&http, &url, &creds, 403).await);
    }
    println!("new key usable after the admin call:   {}", stats(&created));
    println!("revoked key refused after the call:    {}", stats(&revoked));

    eprintln!("transport: 3000 verifications over NATS request/reply, 3000 HTTP round trips to the auth-cache");
    // The verification exchange as the api-server makes it, against an HTTP round
    // trip to the same process on a kept-alive connection (a lower bound for an
    // HTTP verification endpoint: it does no verification at all).
    let nc = e2e::nats::options_as(contracts::access::Role::ApiServer).connect(nats.client_url.as_str()).await?;
    let req = contracts::identity::VerifyRequest::Bearer {
        key_id: t.api_key_id.clone(),
        secret_sha256: match &t.api_key {
            Credentials::ApiKey(token) => {
                let k = contracts::identity::apikey::parse(token).context("issued API key")?;
                contracts::identity::apikey::secret_sha256(k.secret)
            }
            Credentials::Signature { .. } => anyhow::bail!("the tenant's API key"),
        },
    };
    let payload: bytes::Bytes = serde_json::to_vec(&req)?.into();
    let (mut over_nats, mut over_http) = (Vec::new(), Vec::new());
    for _ in 0..3000 {
        let t0 = Instant::now();
        let msg = nc.request(contracts::identity::VERIFY_SUBJECT, payload.clone()).await?;
        over_nats.push(t0.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(msg.payload.starts_with(br#"{"verdict":"allowed""#), "verification refused");
        let t0 = Instant::now();
        http.get(format!("{}/readyz", auth.base)).send().await?.bytes().await?;
        over_http.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    println!("verification over NATS request/reply:    {}", stats(&over_nats));
    println!("HTTP round trip to the auth-cache (no work): {}", stats(&over_http));

    eprintln!("added latency: 2 × 3000 sequential requests");
    let open_url = format!("{}/v1/resize?w=0", open.base);
    let mut with = Vec::new();
    let mut without = Vec::new();
    for i in 0..6000 {
        let (u, creds, into) =
            if i % 2 == 0 { (&url, &t.signature, &mut with) } else { (&open_url, &t.signature, &mut without) };
        let h = auth_headers(u, "image/jpeg", b"x", creds);
        let t0 = Instant::now();
        let res = http.post(u).headers(h).body("x").send().await?;
        anyhow::ensure!(res.status() == 400, "unexpected {}", res.status());
        res.bytes().await?;
        into.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    println!("signed, authenticated:   {}", stats(&with));
    println!("no authentication:       {}", stats(&without));
    let added = |p| percentile(&with, p) - percentile(&without, p);
    println!("verification adds:       p50 {:.3} ms  p99 {:.3} ms", added(0.5), added(0.99));

    println!("open loop, signed requests answered after authentication ({secs} s per rate):");
    println!("  offered/s  achieved/s  p50 ms  p99 ms  errors  req per api CPU-s  req per auth-cache CPU-s");
    // One signature per second of the run: signing is the client's cost, not the server's.
    let headers = auth_headers(&url, "image/jpeg", b"x", &t.signature);
    let mut best = 0.0f64;
    for rate in rates {
        let cpu = |pid: u32| procs::cpu_seconds(pid).unwrap_or(f64::NAN);
        let (api0, auth0) = (cpu(api.pid()), cpu(auth.pid()));
        let interval = Duration::from_secs_f64(1.0 / rate);
        let started = Instant::now();
        let mut next = started;
        let mut tasks = Vec::new();
        while started.elapsed() < Duration::from_secs(secs) {
            tokio::time::sleep_until(next.into()).await;
            let scheduled = next;
            next += interval;
            let (http, url, headers) = (http.clone(), url.clone(), headers.clone());
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
        let (api_cpu, auth_cpu) = (cpu(api.pid()) - api0, cpu(auth.pid()) - auth0);
        let n = lat.len() as f64;
        println!(
            "  {rate:>9.0}  {:>10.0}  {:>6.2}  {:>6.2}  {errors:>6}  {:>17.0}  {:>24.0}",
            n / elapsed,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            n / api_cpu,
            n / auth_cpu
        );
        if errors == 0 {
            best = best.max(n / api_cpu);
        }
    }
    println!("authenticated_per_api_cpu_second={best:.0}");
    Ok(())
}
