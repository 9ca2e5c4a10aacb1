//! A network partition of one running process on a shared loopback: the
//! process is started inside a cgroup (v2) of its own, and a partition is
//! two iptables rules. The first marks the connection of every packet a
//! socket of that cgroup sends; the second drops every packet of a marked
//! connection, whichever side sends it. Connections the process accepted
//! and those it dialled go silent alike, while it keeps running and believes
//! itself healthy — the fault a dead process cannot show (a raft leader
//! that still thinks it leads, a worker holding jobs it cannot answer).
//!
//! Why not a network namespace per process: every member of the fleet talks
//! to every other on loopback, so a namespace per process means relays or
//! routes for all of them; a cgroup needs neither and cuts a member off from
//! everything at once, as a partitioned pod is. The process must be started
//! inside its cgroup (a socket keeps the cgroup it was created in), which
//! [`Jail::prefix`] does. Root only; rules and cgroups are removed on drop.

use anyhow::Context;
use std::{path::PathBuf, process::Command};

/// The cgroup under the v2 hierarchy's root that holds the suite's jails.
const PARENT: &str = "rzchaos";

pub struct Jail {
    /// Relative to the cgroup v2 root, as iptables' `--path` wants it.
    path: String,
    /// The directory of the cgroup.
    dir: PathBuf,
    /// The connection mark that says "this connection touches the jail".
    mark: u32,
    cut: bool,
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` on a unified
/// host, `/sys/fs/cgroup/unified` on a hybrid one).
fn cgroup2_root() -> anyhow::Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts")?;
    mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(2) == Some(&"cgroup2"))
        .map(|f| PathBuf::from(f[1]))
        .context("no cgroup2 hierarchy is mounted")
}

fn iptables(args: &[String]) -> anyhow::Result<()> {
    let out = Command::new("iptables").arg("-w").args(args).output().context("iptables")?;
    anyhow::ensure!(
        out.status.success(),
        "iptables {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// The rules of a partition, in order: mark, then drop what is marked.
pub fn rules(path: &str, mark: u32) -> Vec<Vec<String>> {
    let mark = format!("{mark:#x}");
    let s = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    vec![
        s(&["OUTPUT", "-m", "cgroup", "--path", path, "-j", "CONNMARK", "--set-mark", &mark]),
        s(&["OUTPUT", "-m", "connmark", "--mark", &mark, "-j", "DROP"]),
        s(&["INPUT", "-m", "connmark", "--mark", &mark, "-j", "DROP"]),
    ]
}

impl Jail {
    /// A cgroup `name` for one process; `index` tells its mark apart from other jails'.
    pub fn create(name: &str, index: u32) -> anyhow::Result<Self> {
        let root = cgroup2_root()?;
        let path = format!("{PARENT}/{name}");
        let dir = root.join(&path);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating the cgroup {}", dir.display()))?;
        // The rules must be possible before a scenario counts on them.
        let probe = Command::new("iptables").args(["-w", "-L", "OUTPUT", "-n"]).output();
        anyhow::ensure!(probe.is_ok_and(|o| o.status.success()), "iptables cannot be run");
        let me = Self { path, dir, mark: 0x7700 + index, cut: false };
        // Rules a killed run left behind would cut this run's process off from its start.
        for rule in rules(&me.path, me.mark) {
            while iptables(&[&["-D".to_owned()], rule.as_slice()].concat()).is_ok() {}
        }
        Ok(me)
    }

    /// The command prefix that starts a program inside the jail (it must be
    /// inside before it opens a socket).
    pub fn prefix(&self) -> Vec<String> {
        let procs = self.dir.join("cgroup.procs");
        vec!["sh".into(), "-c".into(), format!("echo $$ > '{}' && exec \"$@\"", procs.display()), "sh".into()]
    }

    /// Cuts every connection of the process inside, both ways, until [`Jail::heal`].
    pub fn cut(&mut self) -> anyhow::Result<()> {
        if self.cut {
            return Ok(());
        }
        for rule in rules(&self.path, self.mark) {
            iptables(&[&["-A".to_owned()], rule.as_slice()].concat())?;
        }
        self.cut = true;
        Ok(())
    }

    pub fn heal(&mut self) -> anyhow::Result<()> {
        if !self.cut {
            return Ok(());
        }
        let mut result = Ok(());
        for rule in rules(&self.path, self.mark) {
            if let Err(e) = iptables(&[&["-D".to_owned()], rule.as_slice()].concat()) {
                result = Err(e);
            }
        }
        self.cut = false;
        result
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        let _ = self.heal();
        // Empty once the processes inside are gone (the fleet drops them first).
        let _ = std::fs::remove_dir(&self.dir);
        let _ = std::fs::remove_dir(self.dir.parent().unwrap_or(&self.dir));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_marks_what_the_jail_sends_and_drops_the_marked_connections_both_ways() {
        let r = rules("rzchaos/n0", 0x7701);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0], ["OUTPUT", "-m", "cgroup", "--path", "rzchaos/n0", "-j", "CONNMARK", "--set-mark", "0x7701"]);
        // Marking comes before dropping, or the first packet would pass.
        assert!(r[1].contains(&"DROP".to_owned()) && r[1][0] == "OUTPUT");
        assert!(r[2].contains(&"DROP".to_owned()) && r[2][0] == "INPUT");
        assert!(r[1..].iter().all(|x| x.contains(&"0x7701".to_owned())));
    }
}
