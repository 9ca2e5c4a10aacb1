//! A 3-node nats-server cluster on loopback, as the StatefulSet runs it, with
//! `sync_interval: always` (the durability the usage and identity data need).

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

pub struct Cluster {
    pub nodes: Vec<Node>,
    /// A node whose store is a small filesystem of its own, which can be filled.
    pub small_store: Option<SmallStore>,
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
        let dir = tempfile::tempdir()?;
        let small_store = small_store.map(|i| SmallStore::mount(i, dir.path().join(format!("js{i}")))).transpose()?;
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
                     jetstream {{ store_dir: \"{}\", sync_interval: always }}\n\
                     cluster {{ name: c, listen: 127.0.0.1:{}, routes: [{route_list}] }}\n{}",
                    clients[i],
                    contracts::servers::SERVER_LIVENESS,
                    dir.path().join(format!("js{i}")).display(),
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
        Ok(Self { nodes, small_store, _dir: dir })
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
