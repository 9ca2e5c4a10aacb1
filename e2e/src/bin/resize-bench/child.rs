//! Runs one tool as a child process and reads what it cost: conversions,
//! seconds, and its peak resident set from the kernel's accounting (`wait4`),
//! which also covers a CLI that cannot report on itself.
//!
//! The kernel carries the resident high-water mark of the process that spawned
//! a program into the program's own figure, and this harness grows to tens of
//! MiB while it scores outputs. So every tool is started through a fresh copy
//! of this binary ([`RSS_HELPER`]), small when it spawns, which reports its
//! child's peak on the last line of output.

use anyhow::{Context, bail};
use std::{
    io::Read,
    process::{Command, Stdio},
    time::Instant,
};

/// First argument that turns this binary into the spawner described above.
pub const RSS_HELPER: &str = "--peak-rss-of";

pub struct Outcome {
    pub count: u64,
    pub secs: f64,
    /// CPU seconds (user + system, every thread) spent on the same conversions.
    pub cpu_secs: f64,
    pub peak_rss_kib: u64,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.secs
    }

    /// Conversions per CPU-second: what one core does when it is not shared.
    /// Other processes running on the same core lengthen wall time, not this.
    pub fn cpu_rate(&self) -> f64 {
        self.count as f64 / self.cpu_secs
    }
}

/// Runs `cmd` to completion. A driver prints `elapsed=<s> cpu=<s> count=<n>`
/// for its timed loop only; a tool that does not (`expected` conversions
/// given) is timed from spawn to exit, start-up included.
pub fn run(cmd: &Command, expected: Option<u64>) -> anyhow::Result<Outcome> {
    let mut wrapped = Command::new(std::env::current_exe()?);
    wrapped.arg(RSS_HELPER).arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    let started = Instant::now();
    let mut child = wrapped.stdout(Stdio::piped()).spawn().with_context(|| format!("starting {cmd:?}"))?;
    let mut stdout = String::new();
    child.stdout.take().expect("piped").read_to_string(&mut stdout)?;
    let status = child.wait()?;
    let wall = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{cmd:?} failed ({status}): {stdout}");
    }
    let field = |name: &str| -> anyhow::Result<f64> {
        let v = stdout
            .lines()
            .rev()
            .flat_map(str::split_whitespace)
            .find_map(|f| f.strip_prefix(name))
            .with_context(|| format!("{cmd:?} printed no {name}"))?;
        Ok(v.parse()?)
    };
    let peak_rss_kib = field("peak_rss_kib=")? as u64;
    if let Some(count) = expected {
        return Ok(Outcome { count, secs: wall, cpu_secs: field("child_cpu=")?, peak_rss_kib });
    }
    Ok(Outcome { count: field("count=")? as u64, secs: field("elapsed=")?, cpu_secs: field("cpu=")?, peak_rss_kib })
}

/// The [`RSS_HELPER`] side: runs `program args`, passes its output through,
/// then prints `peak_rss_kib=<n> child_cpu=<s>` and exits as the child did.
pub fn spawn_and_report(mut args: impl Iterator<Item = String>) -> anyhow::Result<i32> {
    let program = args.next().context("no program to run")?;
    let child = Command::new(&program).args(args).spawn().with_context(|| format!("starting {program}"))?;
    let (status, rusage) = wait4(child.id())?;
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    // Linux reports kilobytes.
    println!("peak_rss_kib={} child_cpu={}", rusage.ru_maxrss, secs(rusage.ru_utime) + secs(rusage.ru_stime));
    Ok(if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) })
}

fn wait4(pid: u32) -> anyhow::Result<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; the pid is our own unreaped child.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut rusage) };
    if r < 0 {
        bail!("wait4({pid}): {}", std::io::Error::last_os_error());
    }
    Ok((status, rusage))
}
