//! lazyfs mounts as child processes (the workspace's `lazyfs` binary): a
//! directory whose file data written but never fsynced lives in memory only,
//! so SIGUSR1 drops exactly what a power loss would. A JetStream store on one
//! shows whether what the servers acknowledged had really reached the disk.
//!
//! Mounting FUSE needs root and `/dev/fuse`: [`usable`] says why not before
//! anything is started.

use ::lazyfs::report;
use anyhow::Context;
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// Whether lazyfs can be mounted here, and why not.
pub fn usable() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    anyhow::ensure!(unsafe { libc::geteuid() } == 0, "not root: mounting a FUSE filesystem (lazyfs) needs root");
    anyhow::ensure!(Path::new("/dev/fuse").exists(), "/dev/fuse is absent: lazyfs cannot be mounted");
    crate::procs::binary("lazyfs")?;
    Ok(())
}

/// One lazyfs process serving `backing` at `dir`. Dropping it ends the
/// process (SIGTERM: it writes what it holds and unmounts) and detaches the
/// mount point in any case; whatever runs on it must be stopped first.
pub struct Mount {
    child: Child,
    pub dir: PathBuf,
    /// The lines lazyfs prints on stdout (mounted, crash, sync).
    lines: mpsc::Receiver<String>,
}

impl Mount {
    /// Mounts `backing` at `dir` (both created if missing), lazyfs's own log
    /// (one line per file a crash cuts) in `log`; returns once it is mounted.
    pub fn start(backing: &Path, dir: &Path, log: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(backing)?;
        std::fs::create_dir_all(dir)?;
        let mut child = Command::new(crate::procs::binary("lazyfs")?)
            .arg("--backing")
            .arg(backing)
            .arg("--mount")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("starting lazyfs")?;
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().context("lazyfs stdout")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let me = Self { child, dir: dir.to_owned(), lines };
        me.expect_line(report::MOUNTED, Duration::from_secs(20))
            .with_context(|| format!("lazyfs did not mount (its log: {})", log.display()))?;
        Ok(me)
    }

    /// The next line lazyfs prints that starts with `prefix`.
    fn expect_line(&self, prefix: &str, within: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(_) => {}
                Err(e) => anyhow::bail!("lazyfs on {} printed no {prefix:?}: {e}", self.dir.display()),
            }
        }
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
    }
}

/// Power loss on every mount at once: each drops what was never synced.
/// The bytes each dropped. Whatever writes to them must be dead already.
pub fn crash(mounts: &[Mount]) -> anyhow::Result<Vec<u64>> {
    signal_all(mounts, libc::SIGUSR1, report::CRASHED, Duration::from_secs(10))
}

/// Writes what every mount holds unsynced to its backing directory, as a
/// periodic sync of the writer would; the bytes each wrote.
pub fn sync(mounts: &[Mount]) -> anyhow::Result<Vec<u64>> {
    signal_all(mounts, libc::SIGUSR2, report::SYNCED, Duration::from_secs(30))
}

/// Sends `sig` to every mount at once, then reads the bytes of each one's
/// answer line (the one starting with `answer`).
fn signal_all(mounts: &[Mount], sig: libc::c_int, answer: &str, within: Duration) -> anyhow::Result<Vec<u64>> {
    for m in mounts {
        m.signal(sig);
    }
    mounts
        .iter()
        .map(|m| {
            let line = m.expect_line(answer, within)?;
            report::bytes_after(&line, answer).with_context(|| format!("unexpected line {line:?}"))
        })
        .collect()
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("umount").arg("-l").arg(&self.dir).stderr(Stdio::null()).status();
    }
}
