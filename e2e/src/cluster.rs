//! A 3-node nats-server cluster on loopback, as the StatefulSet runs it, with
//! `sync_interval: always` (the durability the usage and identity data need).
//!
//! Its stores are plain directories, one of which may be a small filesystem
//! of its own ([`SmallStore`], to be filled), or all three lazyfs mounts
//! ([`Stores::Lazy`]), which lose what was never fsynced when the cluster
//! loses power ([`Cluster::power_cycle`]); such a cluster may also run with
//! nats-server's default lazy sync, to show that the loss is real.

use anyhow::Context;
use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct Node {
    child: Option<Child>,
    pub name: String,
    pub client_url: String,
    /// Its configuration file: a restart runs the same server on the same store.
    conf: std::path::PathBuf,
    /// Where its log goes (appended across restarts), if anywhere.
    log: Option<std::path::PathBuf>,
    /// A command it runs under, on every start (one that execs it in place).
    wrap: Vec<String>,
}

impl Node {
    fn spawn(&self) -> anyhow::Result<Child> {
        let stderr = match &self.log {
            Some(path) => Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
            None => Stdio::null(),
        };
        let conf = &self.conf;
        crate::procs::under(&self.wrap, &crate::nats::binary())
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .context("starting nats-server (scripts/install-nats-server.sh)")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the server again on its ports and store (after [`Node::kill`]).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.child = Some(self.spawn()?);
        Ok(())
    }

    /// Sends `sig` (`STOP`, `CONT`, …) to the running server.
    pub fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status();
        }
    }

    /// SIGKILL: no lame-duck mode, no flush.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the nodes' JetStream stores are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stores {
    /// Directories, node `small` (if any) on a [`SmallStore`]; `sync_interval: always`.
    Disk { small: Option<usize> },
    /// Every store on a lazyfs mount (root and /dev/fuse); `sync_interval:
    /// always` when `sync_always`, else nats-server's default (a sync every
    /// two minutes), which a power loss must punish.
    Lazy { sync_always: bool },
}

impl Stores {
    fn sync_always(self) -> bool {
        match self {
            Stores::Disk { .. } => true,
            Stores::Lazy { sync_always } => sync_always,
        }
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    /// A node whose store is a small filesystem of its own, which can be filled.
    pub small_store: Option<SmallStore>,
    /// The nodes' stores when they are lazyfs mounts, in node order. After
    /// the nodes, so the servers are dead before the mounts go.
    lazy: Vec<crate::lazyfs::Mount>,
    _dir: tempfile::TempDir,
}

/// A tmpfs of [`SmallStore::BYTES`] mounted on one node's store directory
/// (root only), so that node alone can run out of disk. Unmounted on drop,
/// after the nodes (fields drop in order).
pub struct SmallStore {
    pub node: usize,
    pub dir: std::path::PathBuf,
}

impl SmallStore {
    /// Room for a run's streams many times over; filled on purpose, never by the load.
    pub const BYTES: u64 = 256 << 20;
    const BALLAST: &'static str = "ballast";

    fn mount(node: usize, dir: std::path::PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let size = format!("size={}", Self::BYTES);
        let status = Command::new("mount").args(["-t", "tmpfs", "-o", &size, "tmpfs"]).arg(&dir).status()?;
        anyhow::ensure!(status.success(), "mounting a tmpfs on {} failed", dir.display());
        Ok(Self { node, dir })
    }

    /// Fills the filesystem until a write fails with ENOSPC; the bytes written.
    pub fn fill(&self) -> anyhow::Result<u64> {
        use std::io::Write;
        let mut f = std::fs::File::create(self.dir.join(Self::BALLAST))?;
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(written)
    }

    /// Gives the room back.
    pub fn empty(&self) -> anyhow::Result<()> {
        Ok(std::fs::remove_file(self.dir.join(Self::BALLAST))?)
    }
}

impl Drop for SmallStore {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// `n` distinct free ports: the listeners are held until all are picked.
fn ports(n: usize) -> Vec<u16> {
    let held: Vec<_> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    held.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

impl Cluster {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_logging(None)
    }

    /// [`Cluster::start`] with each server's log in `logs/nats-n<i>.log`.
    pub fn start_logging(logs: Option<&std::path::Path>) -> anyhow::Result<Self> {
        Self::start_with(logs, None, |_| Vec::new())
    }

    /// [`Cluster::start_logging`], node `small_store` (if any) on a
    /// [`SmallStore`], node `i` run under the command prefix `wrap(i)`.
    pub fn start_with(
        logs: Option<&std::path::Path>,
        small_store: Option<usize>,
        wrap: impl Fn(usize) -> Vec<String>,
    ) -> anyhow::Result<Self> {
        Self::start_on(logs, Stores::Disk { small: small_store }, wrap)
    }

    /// A cluster on `stores`, each server's log in `logs/nats-n<i>.log` (and
    /// each lazyfs's in `logs/lazyfs-n<i>.log`), node `i` run under `wrap(i)`.
    pub fn start_on(
        logs: Option<&std::path::Path>,
        stores: Stores,
        wrap: impl Fn(usize) -> Vec<String>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let store = |i: usize| dir.path().join(format!("js{i}"));
        let small_store = match stores {
            Stores::Disk { small: Some(i) } => Some(SmallStore::mount(i, store(i))?),
            _ => None,
        };
        let lazy = match stores {
            Stores::Lazy { .. } => (0..3)
                .map(|i| {
                    let log = logs.unwrap_or(dir.path()).join(format!("lazyfs-n{i}.log"));
                    crate::lazyfs::Mount::start(&dir.path().join(format!("backing{i}")), &store(i), &log)
                })
                .collect::<anyhow::Result<_>>()?,
            Stores::Disk { .. } => Vec::new(),
        };
        let sync = if stores.sync_always() { ", sync_interval: always" } else { "" };
        let all = ports(6);
        let (clients, routes) = all.split_at(3);
        let route_list = routes.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect::<Vec<_>>().join(", ");
        let mut nodes = Vec::new();
        for i in 0..3 {
            let conf = dir.path().join(format!("n{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "server_name: n{i}\nlisten: 127.0.0.1:{}\nmax_payload: 8MB\n{}\
                     jetstream {{ store_dir: \"{}\"{sync} }}\n\
                     cluster {{ name: c, listen: 127.0.0.1:{}, routes: [{route_list}] }}\n{}",
                    clients[i],
                    contracts::servers::SERVER_LIVENESS,
                    store(i).display(),
                    routes[i],
                    crate::nats::authorization(),
                ),
            )?;
            let log = logs.map(|d| d.join(format!("nats-n{i}.log")));
            let mut node = Node {
                child: None,
                name: format!("n{i}"),
                client_url: format!("nats://127.0.0.1:{}", clients[i]),
                conf,
                log,
                wrap: wrap(i),
            };
            node.child = Some(node.spawn()?);
            nodes.push(node);
        }
        Ok(Self { nodes, small_store, lazy, _dir: dir })
    }

    /// Every lazyfs store writes what it holds unsynced, while the servers
    /// run (what their periodic sync would do); the bytes each wrote.
    pub fn sync_stores(&self) -> anyhow::Result<Vec<u64>> {
        anyhow::ensure!(!self.lazy.is_empty(), "only lazyfs stores hold unsynced data");
        crate::lazyfs::sync(&self.lazy)
    }

    /// Power loss: every server SIGKILLed at once, then every lazyfs store
    /// drops what was never synced, then the servers start again on what
    /// survived. The bytes each node's store dropped.
    pub fn power_cycle(&mut self) -> anyhow::Result<Vec<u64>> {
        anyhow::ensure!(self.lazy.len() == self.nodes.len(), "a power loss needs every store on lazyfs");
        let mut servers: Vec<Child> = self.nodes.iter_mut().filter_map(|n| n.child.take()).collect();
        // Every server is dead before any store crashes: nothing is written after the power loss.
        for server in &mut servers {
            let _ = server.kill();
        }
        for mut server in servers {
            server.wait()?;
        }
        let dropped = crate::lazyfs::crash(&self.lazy)?;
        for node in &mut self.nodes {
            node.child = Some(node.spawn()?);
        }
        Ok(dropped)
    }

    /// Every node's URL, comma-separated: clients fail over between them.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(|n| n.client_url.as_str()).collect::<Vec<_>>().join(",")
    }

    /// Waits until the cluster accepts an R3 stream (its meta group has a leader).
    pub async fn ready(&self, within: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let attempt = async {
                let client = crate::nats::observer(&self.urls()).await?;
                let js = async_nats::jetstream::new(client);
                js.get_or_create_stream(contracts::usage::streams::usage_stream(3)).await?;
                anyhow::Ok(())
            };
            match tokio::time::timeout(Duration::from_secs(5), attempt).await {
                Ok(Ok(())) => return Ok(()),
                other => {
                    if started.elapsed() > within {
                        anyhow::bail!("cluster not ready after {within:?}: {other:?}");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}
