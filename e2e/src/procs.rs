//! Service binaries as child processes.

use anyhow::{Context, bail};
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
};

/// Path of a workspace binary in the target directory these tests were built into.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    // Test executables live in target/<profile>/deps; binaries one level up.
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .context("unexpected test binary location")?;
    let path = profile_dir.join(name);
    if !path.exists() {
        bail!(
            "{} not built: run `cargo build --workspace --bins` (scripts/test.sh does)",
            path.display()
        );
    }
    Ok(path)
}

/// A free loopback port (bound and released: a tiny race, acceptable in tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

/// A running worker process.
pub struct Worker {
    child: Child,
    pub metrics_url: String,
}

impl Worker {
    /// Starts `worker` against `nats_url` with extra flags (e.g. `--ack-wait 2s`).
    pub fn spawn(nats_url: &str, extra: &[&str]) -> anyhow::Result<Self> {
        let port = free_port();
        let child = Command::new(binary("worker")?)
            .args([
                "--nats-url",
                nats_url,
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
            ])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("WORKER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        Ok(Self {
            child,
            metrics_url: format!("http://127.0.0.1:{port}/metrics"),
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status();
    }

    /// SIGKILL: the process gets no chance to finish, answer or ack.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        self.signal("TERM");
        self.child.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill9();
    }
}
