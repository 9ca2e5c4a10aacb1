//! A real nats-server (≥ 2.12, JetStream on) for one test.

use anyhow::{Context, bail};
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct NatsServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub client_url: String,
    pub monitor_url: String,
}

/// The nats-server binary: `$NATS_SERVER_BIN`, else the one `scripts/install-nats-server.sh` installs.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return p.into();
    }
    let cache = std::env::var_os("RESIZER_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
        home.join("resizer")
    });
    cache.join("bin/nats-server")
}

impl NatsServer {
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let conf = dir.path().join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:-1\nhttp: 127.0.0.1:-1\nmax_payload: 8MB\njetstream {{ store_dir: \"{}\"{} }}\n",
                dir.path().join("js").display(),
                // Benchmarks compare fsync policies (`always` vs the default 2 min).
                std::env::var("NATS_SYNC_INTERVAL")
                    .ok()
                    .filter(|v| !v.is_empty())
                    .map(|v| format!(", sync_interval: {v}"))
                    .unwrap_or_default()
            ),
        )?;
        let bin = binary();
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf)
            .arg("--ports_file_dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} (run scripts/install-nats-server.sh)", bin.display()))?;
        let ports_file = dir.path().join(format!("nats-server_{}.ports", child.id()));
        let started = Instant::now();
        let ports: serde_json::Value = loop {
            if let Ok(text) = std::fs::read_to_string(&ports_file)
                && let Ok(v) = serde_json::from_str(&text)
            {
                break v;
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("nats-server wrote no ports file within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let first = |key: &str| ports[key][0].as_str().map(str::to_owned).context(format!("no {key} port"));
        Ok(Self { client_url: first("nats")?, monitor_url: first("monitoring")?, child: Some(child), dir })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("js")
    }

    /// Stops the server with SIGKILL (no lame-duck, no flush).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn client(&self) -> anyhow::Result<async_nats::Client> {
        Ok(async_nats::connect(self.client_url.as_str()).await?)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
