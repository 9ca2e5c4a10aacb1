//! The fleet under test, as local processes wired the way the operator wires
//! the pods: a 3-node JetStream cluster (`sync_interval: always`, every
//! stream R3), two api-servers requiring authentication, two workers, two
//! auth-caches and two usage-aggregators, with their defaults otherwise.
//!
//! A member can be killed (SIGKILL), paused (SIGSTOP) and resumed, and
//! started again in place; an api-server started again listens on a new port,
//! which [`Backends`] hands to the load from then on.

use crate::{
    cluster::Cluster,
    identity::{self as ident, AuthCache, Tenant},
    procs::{ApiServer, Launch, Worker},
    usage::Aggregator,
};
use anyhow::Context;
use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

/// Each api-server's in-flight cap: small, so the slow-client scenario can
/// hold ten times it with a few hundred connections.
pub const MAX_IN_FLIGHT: usize = 64;

/// The aggregators' admin token: the suite reads the rollups with it.
pub const ADMIN_TOKEN: &str = "chaos-admin-token";

/// One process of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    Api(usize),
    Worker(usize),
    AuthCache(usize),
    Aggregator(usize),
    /// A JetStream node by index.
    Nats(usize),
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Api(i) => write!(f, "api-server {i}"),
            Self::Worker(i) => write!(f, "worker {i}"),
            Self::AuthCache(i) => write!(f, "auth-cache {i}"),
            Self::Aggregator(i) => write!(f, "usage-aggregator {i}"),
            Self::Nats(i) => write!(f, "nats n{i}"),
        }
    }
}

/// Where the load sends requests: each api-server's base URL and how many
/// times it has been started (so an answer can be told apart by incarnation).
/// Written only when an api-server is started again; read by every request.
#[derive(Clone, Default)]
pub struct Backends(Arc<RwLock<Vec<(String, u32)>>>);

impl Backends {
    pub fn get(&self, i: usize) -> (String, u32) {
        self.0.read().unwrap_or_else(|e| e.into_inner())[i].clone()
    }

    pub fn len(&self) -> usize {
        self.0.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn set(&self, i: usize, base: String) {
        let mut all = self.0.write().unwrap_or_else(|e| e.into_inner());
        if i < all.len() {
            let generation = all[i].1 + 1;
            all[i] = (base, generation);
        } else {
            all.push((base, 0));
        }
    }
}

pub struct Fleet {
    pub cluster: Cluster,
    apis: Vec<ApiServer>,
    workers: Vec<Worker>,
    auths: Vec<AuthCache>,
    aggregators: Vec<Aggregator>,
    pub backends: Backends,
    /// The identity store (kept open: its connection writes the tenants).
    pub store: identity::store::Store,
    /// Two tenants; each is asked for a different size, so an answer for one
    /// that reached the other shows.
    pub tenants: Vec<Tenant>,
    logs: PathBuf,
    /// Starts per member, for distinct log file names.
    starts: std::collections::HashMap<String, u32>,
    /// api-server 0's network namespace (root only), whose link to NATS can
    /// be degraded or cut. Last: removed after every process has stopped.
    netns: Option<super::netns::Netns>,
    /// One per JetStream node, on the host side of the namespace: api-server 0's
    /// way to NATS, where its latency is set.
    relays: Vec<super::relay::Relay>,
    /// The members a partition can cut off, each started inside its own
    /// cgroup (root only): every JetStream node and worker 0. Last, so the
    /// rules go once the processes inside are gone.
    jails: Vec<(Member, super::jail::Jail)>,
}

impl Fleet {
    pub async fn start(logs: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(logs)?;
        // api-server 0 in a network namespace of its own, so its link to NATS can be impaired.
        let netns = super::netns::Netns::create("rzchaos-api0", 0)
            .inspect_err(|e| eprintln!("chaos: no network namespace ({e:#}); the link scenarios cannot run"))
            .ok();
        let jailed = [Member::Nats(0), Member::Nats(1), Member::Nats(2), Member::Worker(0)];
        let jails: Vec<(Member, super::jail::Jail)> = jailed
            .iter()
            .enumerate()
            .map(|(i, m)| super::jail::Jail::create(&m.to_string().replace(' ', "-"), i as u32).map(|j| (*m, j)))
            .collect::<anyhow::Result<_>>()
            .inspect_err(|e| eprintln!("chaos: no cgroup to cut a member off ({e:#}); the partitions cannot run"))
            .unwrap_or_default();
        let prefix = |m: Member| jails.iter().find(|(j, _)| *j == m).map(|(_, j)| j.prefix()).unwrap_or_default();
        // The last node's store on a tmpfs of its own, so it alone can run out of disk.
        let cluster = match Cluster::start_with(Some(logs), Some(2), |i| prefix(Member::Nats(i))) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("chaos: no store of its own for a node ({e:#}); the disk-full scenario cannot run");
                Cluster::start_with(Some(logs), None, |i| prefix(Member::Nats(i)))?
            }
        };
        cluster.ready(Duration::from_secs(90)).await.context("JetStream cluster")?;
        let store = ident::replicated_store(&cluster.urls(), 3).await?;
        let mut me = Self {
            cluster,
            apis: Vec::new(),
            workers: Vec::new(),
            auths: Vec::new(),
            aggregators: Vec::new(),
            backends: Backends::default(),
            store,
            tenants: Vec::new(),
            logs: logs.to_owned(),
            starts: Default::default(),
            netns,
            relays: Vec::new(),
            jails,
        };
        if let Some(ns) = &me.netns {
            for node in &me.cluster.nodes {
                let upstream = node.client_url.trim_start_matches("nats://").parse()?;
                let listen = format!("{}:0", ns.host_ip).parse()?;
                me.relays.push(super::relay::Relay::start(listen, upstream).await?);
            }
        }
        for i in 0..2 {
            let auth = me.spawn_auth_cache(i).await?;
            me.auths.push(auth);
            let agg = me.spawn_aggregator(i)?;
            me.aggregators.push(agg);
            let api = me.spawn_api(i)?;
            me.backends.set(i, api.base.clone());
            me.apis.push(api);
            let worker = me.spawn_worker(i)?;
            me.workers.push(worker);
        }
        // Limits far above the load: a 429 would hide what the faults do.
        let rate = contracts::identity::RateLimit { per_second: 1_000_000, burst: 1_000_000 };
        for id in ["chaos-a", "chaos-b"] {
            me.tenants.push(ident::tenant(&me.store, id, rate).await?);
        }
        for a in &me.auths {
            a.caught_up(&me.store).await?;
        }
        Ok(me)
    }

    fn launch(&mut self, name: &str) -> Launch {
        let n = self.starts.entry(name.to_owned()).or_default();
        *n += 1;
        Launch::default()
            // Connection events too: which node each member left for which, and when.
            .env("RUST_LOG", "warn,contracts::connect=info")
            .env("JOBS_REPLICAS", "3")
            .env("USAGE_REPLICAS", "3")
            .env("IDENTITY_REPLICAS", "3")
            .log_to(self.logs.join(format!("{name}.{n}.log")))
    }

    fn spawn_api(&mut self, i: usize) -> anyhow::Result<ApiServer> {
        self.spawn_api_skewed(i, None)
    }

    /// An api-server whose wall clock is `skew_s` seconds off (its monotonic clock, which
    /// timers use, left alone), through libfaketime.
    fn spawn_api_skewed(&mut self, i: usize, skew_s: Option<i64>) -> anyhow::Result<ApiServer> {
        let mut launch = self.launch(&format!("api-server-{i}")).env("MAX_IN_FLIGHT", &MAX_IN_FLIGHT.to_string());
        let mut urls = self.cluster.urls();
        let mut listen = "127.0.0.1:0".to_owned();
        if let (0, Some(ns)) = (i, &self.netns) {
            launch = launch.wrapped(ns.exec_prefix()).env("PEER_LISTEN", &format!("{}:0", ns.ns_ip));
            urls = self.relays.iter().map(|r| format!("nats://{}", r.addr)).collect::<Vec<_>>().join(",");
            listen = format!("{}:0", ns.ns_ip);
        }
        let launch = skewed(launch, skew_s)?;
        ApiServer::launch(&urls, &["--auth", "required", "--listen", &listen], &launch)
    }

    /// Impairs api-server 0's conversation with every NATS node (its other
    /// links stay as they are) until [`Fleet::repair_api_link`].
    pub fn impair_api_link(&self, how: super::netns::Impairment) -> anyhow::Result<()> {
        let ns = self.netns.as_ref().context("no network namespace: impairing a link needs root")?;
        let (delay, jitter) = (Duration::from_millis(how.delay_ms.into()), Duration::from_millis(how.jitter_ms.into()));
        for r in &self.relays {
            r.set(delay.saturating_sub(jitter), jitter * 2);
        }
        let ports: Vec<u16> = self.relays.iter().map(|r| r.addr.port()).collect();
        ns.impair(&ports, how)
    }

    pub fn repair_api_link(&self) -> anyhow::Result<()> {
        for r in &self.relays {
            r.set(Duration::ZERO, Duration::ZERO);
        }
        self.netns.as_ref().map_or(Ok(()), super::netns::Netns::repair)
    }

    /// Fills the small store's filesystem; the bytes it took.
    pub fn fill_store(&self) -> anyhow::Result<u64> {
        self.cluster.small_store.as_ref().context("no small store")?.fill()
    }

    pub fn empty_store(&self) -> anyhow::Result<()> {
        self.cluster.small_store.as_ref().context("no small store")?.empty()
    }

    /// Starts api-server or worker `m` afresh beside the running one (its
    /// clock `skew_s` off, when given), sends the work to it and lets the old
    /// one drain: a rolling replacement, with no request dropped.
    pub async fn replace(&mut self, m: Member, skew_s: Option<i64>) -> anyhow::Result<()> {
        let drained = match m {
            Member::Api(i) => {
                let api = self.spawn_api_skewed(i, skew_s)?;
                self.backends.set(i, api.base.clone());
                let mut old = std::mem::replace(&mut self.apis[i], api);
                tokio::task::spawn_blocking(move || old.terminate()).await?
            }
            Member::Worker(i) => {
                let launch = skewed(self.worker_launch(i), skew_s)?;
                let worker = Worker::launch(&self.cluster.urls(), &[], &launch)?;
                let mut old = std::mem::replace(&mut self.workers[i], worker);
                tokio::task::spawn_blocking(move || old.terminate()).await?
            }
            other => anyhow::bail!("{other} is not replaced in place"),
        };
        anyhow::ensure!(drained, "the old {m} did not drain and exit 0 within 10 s of SIGTERM");
        Ok(())
    }

    fn spawn_worker(&mut self, i: usize) -> anyhow::Result<Worker> {
        let launch = self.worker_launch(i);
        Worker::launch(&self.cluster.urls(), &[], &launch)
    }

    /// A worker starts inside its jail, if it has one.
    fn worker_launch(&mut self, i: usize) -> Launch {
        let launch = self.launch(&format!("worker-{i}"));
        match self.jail(Member::Worker(i)) {
            Ok(jail) => launch.wrapped(jail.prefix()),
            Err(_) => launch,
        }
    }

    fn jail(&mut self, m: Member) -> anyhow::Result<&mut super::jail::Jail> {
        let found = self.jails.iter_mut().find(|(j, _)| *j == m).map(|(_, j)| j);
        found.with_context(|| format!("{m} has no cgroup of its own: a partition needs root and iptables"))
    }

    /// Cuts `m` off from every other process (it keeps running) until [`Fleet::heal`].
    pub fn partition(&mut self, m: Member) -> anyhow::Result<()> {
        self.jail(m)?.cut()
    }

    pub fn heal(&mut self, m: Member) -> anyhow::Result<()> {
        self.jail(m)?.heal()
    }

    async fn spawn_auth_cache(&mut self, i: usize) -> anyhow::Result<AuthCache> {
        let launch = self.launch(&format!("auth-cache-{i}"));
        AuthCache::launch(&self.cluster.urls(), &[], &launch).await
    }

    fn spawn_aggregator(&mut self, i: usize) -> anyhow::Result<Aggregator> {
        let launch = self.launch(&format!("usage-aggregator-{i}"));
        Aggregator::launch(&self.cluster.urls(), ADMIN_TOKEN, &[], &launch)
    }

    pub fn pid(&self, m: Member) -> Option<u32> {
        match m {
            Member::Api(i) => Some(self.apis[i].pid()),
            Member::Worker(i) => Some(self.workers[i].pid() as u32),
            Member::AuthCache(i) => Some(self.auths[i].pid()),
            Member::Aggregator(i) => Some(self.aggregators[i].pid()),
            Member::Nats(i) => self.cluster.nodes[i].pid(),
        }
    }

    /// SIGKILL: no drain, no flush, no goodbye.
    pub fn kill(&mut self, m: Member) {
        self.signal(m, "KILL");
        if let Member::Nats(i) = m {
            self.cluster.nodes[i].kill();
        }
    }

    /// SIGSTOP or SIGCONT: a brownout the process cannot notice.
    pub fn signal(&self, m: Member, sig: &str) {
        if let Some(pid) = self.pid(m) {
            let _ = std::process::Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status();
        }
    }

    /// Starts `m` again (after [`Fleet::kill`]) and waits until it serves.
    pub async fn restart(&mut self, m: Member) -> anyhow::Result<()> {
        match m {
            Member::Api(i) => {
                let api = self.spawn_api(i)?;
                self.backends.set(i, api.base.clone());
                self.apis[i] = api;
            }
            Member::Worker(i) => self.workers[i] = self.spawn_worker(i)?,
            Member::AuthCache(i) => self.auths[i] = self.spawn_auth_cache(i).await?,
            Member::Aggregator(i) => self.aggregators[i] = self.spawn_aggregator(i)?,
            Member::Nats(i) => {
                self.cluster.nodes[i].restart()?;
                self.cluster.ready(Duration::from_secs(60)).await?;
            }
        }
        Ok(())
    }

    /// The JetStream node that leads `group` now, asked of a node that is up
    /// (and not `avoid`, which may be paused): `None` while there is no leader.
    pub async fn leader(&self, group: Group, avoid: Option<usize>) -> Option<usize> {
        for (i, node) in self.cluster.nodes.iter().enumerate() {
            if Some(i) == avoid || node.pid().is_none() {
                continue;
            }
            let ask = async {
                let client = crate::nats::observer(&node.client_url).await.ok()?;
                let mut s = async_nats::jetstream::new(client).get_stream(group.stream).await.ok()?;
                let cluster = match group.consumer {
                    None => s.info().await.ok()?.cluster.clone(),
                    Some(name) => s.consumer_info(name).await.ok()?.cluster,
                };
                let leader = cluster?.leader?;
                self.cluster.nodes.iter().position(|n| n.name == leader)
            };
            // A healthy JetStream answers in milliseconds; a short wait keeps
            // the measured re-election close to the real one.
            if let Ok(found) = tokio::time::timeout(Duration::from_millis(500), ask).await {
                return found;
            }
        }
        None
    }

    /// Waits until every group of [`GROUPS`] has a leader: a scenario starts
    /// from a whole cluster, not from the last one's election still running.
    pub async fn steady(&self, within: Duration) -> anyhow::Result<Duration> {
        let since = Instant::now();
        for group in GROUPS {
            while self.leader(group, None).await.is_none() {
                anyhow::ensure!(since.elapsed() < within, "{group} has no leader {within:?} after the last scenario");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok(since.elapsed())
    }

    /// Waits until `group` has a leader other than `old`; how long that took from `since`.
    pub async fn reelected(&self, group: Group, old: usize, since: Instant, within: Duration) -> Option<Duration> {
        while since.elapsed() < within {
            if let Some(new) = self.leader(group, Some(old)).await
                && new != old
            {
                return Some(since.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// A node that does not lead JOBS, the one leading fewest of the other [`GROUPS`]
    /// (with a stream per bucket, every node usually leads something).
    pub async fn follower(&self) -> Option<usize> {
        let mut leaders = Vec::new();
        for g in GROUPS {
            leaders.push(self.leader(g, None).await);
        }
        let jobs = leaders[0];
        (0..self.cluster.nodes.len())
            .filter(|i| Some(*i) != jobs)
            .min_by_key(|i| leaders.iter().filter(|l| **l == Some(*i)).count())
    }

    /// A usage-aggregator's query URL base and admin token.
    pub fn usage_api(&self) -> (String, &'static str) {
        (self.aggregators[0].base.clone(), ADMIN_TOKEN)
    }

    /// CPU seconds every process of the fleet has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        let members = (0..2)
            .flat_map(|i| [Member::Api(i), Member::Worker(i), Member::AuthCache(i), Member::Aggregator(i)])
            .chain((0..3).map(Member::Nats));
        members.filter_map(|m| self.pid(m)).filter_map(crate::procs::cpu_seconds).sum()
    }
}

/// `launch` with its wall clock `skew_s` seconds off (its monotonic clock,
/// which timers use, left alone), through libfaketime.
fn skewed(launch: Launch, skew_s: Option<i64>) -> anyhow::Result<Launch> {
    let Some(s) = skew_s else {
        return Ok(launch);
    };
    let lib = faketime_lib()?;
    Ok(launch
        .env("LD_PRELOAD", &lib.to_string_lossy())
        .env("FAKETIME", &format!("{s:+}"))
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1"))
}

/// libfaketime's preload library: `FAKETIME_LIB`, or Debian's (package
/// `libfaketime`, which scripts/install-system-packages.sh installs).
fn faketime_lib() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("FAKETIME_LIB") {
        return Ok(PathBuf::from(p));
    }
    let found = std::fs::read_dir("/usr/lib")?
        .flatten()
        .map(|d| d.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.is_file());
    found.context("libfaketime is not installed (scripts/install-system-packages.sh installs it)")
}

/// A raft group of JetStream: a stream, or a durable consumer of one (each
/// elects its own leader, and work stops while either has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub stream: &'static str,
    pub consumer: Option<&'static str>,
}

impl Group {
    pub const fn stream(stream: &'static str) -> Self {
        Self { stream, consumer: None }
    }
}

impl std::fmt::Display for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.consumer {
            None => f.write_str(self.stream),
            Some(c) => write!(f, "{} > {c}", self.stream),
        }
    }
}

/// The groups whose leaders the scenarios take away: the queue, usage and
/// identity streams and the consumers the workers and aggregators pull from.
/// JOBS comes first.
pub const GROUPS: [Group; 5] = [
    Group::stream(contracts::subjects::JOBS_STREAM),
    Group { stream: contracts::subjects::JOBS_STREAM, consumer: Some(contracts::subjects::WORKERS_CONSUMER) },
    Group::stream(contracts::usage::streams::USAGE_STREAM),
    Group {
        stream: contracts::usage::streams::USAGE_STREAM,
        consumer: Some(contracts::usage::streams::AGGREGATOR_CONSUMER),
    },
    Group::stream(contracts::identity::STREAM),
];
