//! A network namespace joined to the host by a veth pair, so that the links
//! of the one process inside can be degraded or cut while everything else
//! keeps its loopback. Root only; removed on drop.
//!
//! The host side is `10.77.<subnet>.1`, the namespace side `.2`. Losses and
//! partitions are iptables rules inside the namespace on the TCP ports of
//! the far side, so only that conversation suffers (the api-server's with
//! NATS, not its clients'); latency comes from [`super::relay`].

use anyhow::Context;
use std::process::Command;

pub struct Netns {
    pub name: String,
    host_if: String,
    ns_if: String,
    /// The host as the namespace reaches it.
    pub host_ip: String,
    /// The namespace as the host reaches it.
    pub ns_ip: String,
}

fn run(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(args[0]).args(&args[1..]).output().with_context(|| args.join(" "))?;
    anyhow::ensure!(out.status.success(), "`{}`: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}

/// How a link misbehaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    pub delay_ms: u32,
    /// Each chunk's delay is `delay_ms` ± this, evenly spread.
    pub jitter_ms: u32,
    /// Packets dropped, each way, in per cent.
    pub loss_pct: f64,
}

impl Impairment {
    /// Nothing gets through.
    pub const CUT: Self = Self { delay_ms: 0, jitter_ms: 0, loss_pct: 100.0 };

    /// For the scenario's notes.
    pub fn describe(&self) -> String {
        let mut a = Vec::new();
        if self.delay_ms > 0 {
            a.push(format!("{}±{} ms", self.delay_ms, self.jitter_ms));
        }
        if self.loss_pct >= 100.0 {
            a.push("every packet dropped".into());
        } else if self.loss_pct > 0.0 {
            a.push(format!("{} % of packets dropped", self.loss_pct));
        }
        a.join(", ")
    }

    /// The iptables match that drops `loss_pct` of the packets (none for all of them).
    pub fn drop_match(&self) -> Vec<String> {
        if self.loss_pct >= 100.0 {
            return Vec::new();
        }
        ["-m", "statistic", "--mode", "random", "--probability"]
            .map(str::to_owned)
            .into_iter()
            .chain([format!("{:.4}", self.loss_pct / 100.0)])
            .collect()
    }
}

impl Netns {
    pub fn create(name: &str, subnet: u8) -> anyhow::Result<Self> {
        let me = Self {
            name: name.to_owned(),
            host_if: format!("{name}-h"),
            ns_if: format!("{name}-n"),
            host_ip: format!("10.77.{subnet}.1"),
            ns_ip: format!("10.77.{subnet}.2"),
        };
        // A namespace left by an earlier run that was killed.
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        let _ = Command::new("ip").args(["link", "del", &me.host_if]).output();
        run(&["ip", "netns", "add", name])?;
        run(&["ip", "link", "add", &me.host_if, "type", "veth", "peer", "name", &me.ns_if])?;
        run(&["ip", "link", "set", &me.ns_if, "netns", name])?;
        run(&["ip", "addr", "add", &format!("{}/30", me.host_ip), "dev", &me.host_if])?;
        run(&["ip", "link", "set", &me.host_if, "up"])?;
        me.inside(&["ip", "addr", "add", &format!("{}/30", me.ns_ip), "dev", &me.ns_if])?;
        me.inside(&["ip", "link", "set", &me.ns_if, "up"])?;
        me.inside(&["ip", "link", "set", "lo", "up"])?;
        Ok(me)
    }

    fn inside(&self, args: &[&str]) -> anyhow::Result<()> {
        run(&[&["ip", "netns", "exec", &self.name], args].concat())
    }

    /// The command prefix that runs a program inside.
    pub fn exec_prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name].map(str::to_owned).to_vec()
    }

    /// Drops packets between the namespace and the host's TCP `ports`, both
    /// ways, as `how` says, until [`Netns::repair`].
    pub fn impair(&self, ports: &[u16], how: Impairment) -> anyhow::Result<()> {
        if how.loss_pct <= 0.0 {
            return Ok(());
        }
        let ports = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
        let matching = how.drop_match();
        for (chain, direction) in [("OUTPUT", "--dports"), ("INPUT", "--sports")] {
            let mut rule = vec!["iptables", "-A", chain, "-p", "tcp", "-m", "multiport", direction, &ports];
            rule.extend(matching.iter().map(String::as_str));
            rule.extend(["-j", "DROP"]);
            self.inside(&rule)?;
        }
        Ok(())
    }

    /// Takes every rule away.
    pub fn repair(&self) -> anyhow::Result<()> {
        self.inside(&["iptables", "-F"])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).output();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_a_random_match_and_a_cut_drops_everything() {
        let degraded = Impairment { delay_ms: 100, jitter_ms: 50, loss_pct: 5.0 };
        assert_eq!(degraded.drop_match(), ["-m", "statistic", "--mode", "random", "--probability", "0.0500"]);
        assert_eq!(degraded.describe(), "100±50 ms, 5 % of packets dropped");
        assert!(Impairment::CUT.drop_match().is_empty());
        assert_eq!(Impairment::CUT.describe(), "every packet dropped");
    }
}
