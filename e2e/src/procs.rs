//! Service binaries as child processes.

use anyhow::{Context, bail};
use contracts::access::Role;
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
};

/// Path of a workspace binary in the target directory these tests were built into.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    // Test executables live in target/<profile>/deps, other binaries in target/<profile>.
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("unexpected executable location")?;
    let candidates = [Some(dir.join(name)), dir.parent().map(|d| d.join(name))];
    if let Some(found) = candidates.into_iter().flatten().find(|p| p.is_file()) {
        return Ok(found);
    }
    bail!("{name} not built next to {}: run `cargo build --workspace --bins` (scripts/test.sh does)", exe.display())
}

/// A command that runs `program` under `wrap` (a command prefix that execs
/// its arguments in place: `ip netns exec NAME`, a cgroup's), or directly.
pub fn under(wrap: &[String], program: &std::path::Path) -> Command {
    match wrap.split_first() {
        None => Command::new(program),
        Some((wrapper, rest)) => {
            let mut c = Command::new(wrapper);
            c.args(rest).arg(program);
            c
        }
    }
}

/// How a service process is started beyond its flags: extra environment (set
/// last, so it may override `RUST_LOG`) and a file that takes its stderr, the log.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    pub env: Vec<(String, String)>,
    pub log: Option<PathBuf>,
    /// A command the binary runs under (`ip netns exec NAME`), which must exec it in place.
    pub wrap: Vec<String>,
}

impl Launch {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn wrapped(mut self, prefix: Vec<String>) -> Self {
        self.wrap = prefix;
        self
    }

    pub fn log_to(mut self, path: PathBuf) -> Self {
        self.log = Some(path);
        self
    }

    /// A command that runs `program` under this launch's wrapper, if any.
    pub fn command(&self, program: &std::path::Path) -> Command {
        under(&self.wrap, program)
    }

    /// `binary`'s role key first, then this launch's environment (which may override it).
    fn apply_as(&self, binary: &str, cmd: &mut Command) -> anyhow::Result<()> {
        let role = if binary == "resizer-admin" { Some(Role::Admin) } else { Role::from_name(binary) };
        if let Some(role) = role {
            cmd.env(contracts::connect::NKEY_FILE_ENV, crate::nats::key_file(role));
        }
        self.apply(cmd)
    }

    fn apply(&self, cmd: &mut Command) -> anyhow::Result<()> {
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stderr(match &self.log {
            Some(path) => Stdio::from(std::fs::File::create(path)?),
            None => Stdio::inherit(),
        });
        Ok(())
    }
}

/// SIGTERM to `child`, then waits up to 10 s; whether it exited 0 in that time.
pub fn terminate(child: &mut Child) -> bool {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(50)),
            Err(_) => return false,
        }
    }
    false
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
        Self::launch(nats_url, extra, &Launch::default())
    }

    /// [`Worker::spawn`] with extra environment and its log in a file.
    pub fn launch(nats_url: &str, extra: &[&str], launch: &Launch) -> anyhow::Result<Self> {
        let port = free_port();
        let mut cmd = launch.command(&binary("worker")?);
        cmd.args(["--nats-url", nats_url, "--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("RUST_LOG", std::env::var("WORKER_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::null());
        launch.apply_as("worker", &mut cmd)?;
        let child = cmd.spawn()?;
        Ok(Self { child, metrics_url: format!("http://127.0.0.1:{port}/metrics") })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill").args([&format!("-{sig}"), &self.pid().to_string()]).status();
    }

    /// SIGKILL: the process gets no chance to finish, answer or ack.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to 10 s; returns whether the process exited 0 in that time.
    pub fn terminate(&mut self) -> bool {
        terminate(&mut self.child)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An api-server process.
pub struct ApiServer {
    child: Child,
    pub base: String,
}

impl ApiServer {
    /// Starts `api-server` on a free port against `nats_url`, with extra flags.
    pub fn spawn(nats_url: &str, extra: &[&str]) -> anyhow::Result<Self> {
        Self::launch(nats_url, extra, &Launch::default())
    }

    /// [`ApiServer::spawn`] with extra environment and its log in a file.
    pub fn launch(nats_url: &str, extra: &[&str], launch: &Launch) -> anyhow::Result<Self> {
        let mut args = vec!["--nats-url", nats_url];
        if !extra.contains(&"--listen") {
            args.extend(["--listen", "127.0.0.1:0"]);
        }
        args.extend_from_slice(extra);
        let (child, base) = launch_listening("api-server", &args, "API_LOG", launch)?;
        Ok(Self { child, base })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits up to 10 s; returns whether the process exited 0 in that time.
    pub fn terminate(&mut self) -> bool {
        terminate(&mut self.child)
    }
}

/// Starts a service binary that prints `listening on <base URL>` as its first
/// line; returns the child and that URL. `log_var` names the variable that sets its `RUST_LOG` (default `warn`).
pub fn spawn_listening(name: &str, args: &[&str], log_var: &str) -> anyhow::Result<(Child, String)> {
    launch_listening(name, args, log_var, &Launch::default())
}

/// [`spawn_listening`] with extra environment and the log in a file.
pub fn launch_listening(name: &str, args: &[&str], log_var: &str, launch: &Launch) -> anyhow::Result<(Child, String)> {
    use std::io::BufRead;
    let mut cmd = launch.command(&binary(name)?);
    cmd.args(args).env("RUST_LOG", std::env::var(log_var).unwrap_or_else(|_| "warn".into())).stdout(Stdio::piped());
    launch.apply_as(name, &mut cmd)?;
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .with_context(|| format!("{name} said {line:?} instead of its address"))?
        .to_owned();
    Ok((child, base))
}

/// CPU time (user + system) a process has used so far, from `/proc`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
