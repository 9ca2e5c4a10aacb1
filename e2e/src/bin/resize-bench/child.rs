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
    pub peak_rss_kib: u64,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.secs
    }
}

/// Runs `cmd` to completion. A driver prints `elapsed=<s> count=<n>` for its
/// timed loop only; a tool that does not (`expected` conversions given) is
/// timed from spawn to exit, start-up included.
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
        return Ok(Outcome { count, secs: wall, peak_rss_kib });
    }
    Ok(Outcome { count: field("count=")? as u64, secs: field("elapsed=")?, peak_rss_kib })
}

/// The [`RSS_HELPER`] side: runs `program args`, passes its output through,
/// then prints `peak_rss_kib=<n>` and exits as the child did.
pub fn spawn_and_report(mut args: impl Iterator<Item = String>) -> anyhow::Result<i32> {
    let program = args.next().context("no program to run")?;
    let child = Command::new(&program).args(args).spawn().with_context(|| format!("starting {program}"))?;
    let (status, rusage) = wait4(child.id())?;
    println!("peak_rss_kib={}", rusage.ru_maxrss); // Linux reports kilobytes
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
