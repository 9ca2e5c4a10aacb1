//! The fault matrix: what is taken away from whom in each scenario.

use super::{fleet::Member, netns::Impairment};

/// Whom a fault hits; leaders are looked up when the scenario starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Member(Member),
    /// The JetStream node leading this stream.
    Leader(&'static str),
    /// A JetStream node that follows the JOBS stream.
    Follower,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// SIGKILL, then started again when the fault ends.
    Kill(Target),
    /// SIGSTOP, then SIGCONT when the fault ends: alive to the kernel, silent to everyone.
    Pause(Target),
    /// Every connection of the target cut, both ways, while it keeps running
    /// (a leader that still believes it leads); healed when the fault ends.
    Partition(Target),
    /// Stopped [`super::brownout::STOPPED`] of every cycle, running the rest:
    /// alive to raft, slow to everyone; the operator's failover must step it down.
    Brownout(Target),
    /// The offered load times this factor while the fault lasts.
    Overload(f64),
    /// Slow clients at this multiple of an api-server's in-flight cap, all on
    /// api-server 0, half dribbling their headers and half (with a valid key)
    /// their bodies, one byte a second.
    Slowloris(usize),
    /// api-server 0 or worker 0 replaced, without dropping a request, by one
    /// whose wall clock is this many seconds off (libfaketime); put back when
    /// the fault ends.
    ClockSkew(Member, i64),
    /// The JetStream store of the node with a filesystem of its own filled
    /// until writes fail with ENOSPC; room given back when the fault ends.
    DiskFull,
    /// api-server 0's link to every NATS node impaired (its clients' and the
    /// workers' links to it untouched); [`Impairment::CUT`] is a partition.
    Link(Impairment),
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub fault: Fault,
}

fn targets() -> Vec<(String, Target)> {
    use contracts::{subjects::JOBS_STREAM, usage::streams::USAGE_STREAM};
    let member = |m: Member| (m.to_string(), Target::Member(m));
    vec![
        member(Member::Api(0)),
        member(Member::Worker(0)),
        member(Member::AuthCache(0)),
        member(Member::Aggregator(0)),
        ("JOBS follower".into(), Target::Follower),
        ("JOBS leader".into(), Target::Leader(JOBS_STREAM)),
        ("USAGE leader".into(), Target::Leader(USAGE_STREAM)),
        ("IDENTITY leader".into(), Target::Leader("KV_IDENTITY")),
    ]
}

/// Every scenario, in the order they run: kills, pauses, the brownout, partitions, then
/// the disk, the links, overload, slow clients and clocks.
pub fn matrix() -> Vec<Scenario> {
    use contracts::subjects::JOBS_STREAM;
    let t = targets();
    let kills = t.iter().map(|(n, t)| Scenario { name: format!("kill {n}"), fault: Fault::Kill(*t) });
    let pauses = t.iter().map(|(n, t)| Scenario { name: format!("pause {n}"), fault: Fault::Pause(*t) });
    let overload = [2.0, 5.0].map(|f| Scenario { name: format!("overload {f}×"), fault: Fault::Overload(f) });
    let slow = Scenario { name: "slowloris 10× in-flight cap".into(), fault: Fault::Slowloris(10) };
    let skews = [Member::Api(0), Member::Worker(0)].into_iter().flat_map(|m| {
        [600, -600].map(|s| Scenario { name: format!("clock of {m} {s:+} s"), fault: Fault::ClockSkew(m, s) })
    });
    let disk = Scenario { name: "disk full on one JetStream node".into(), fault: Fault::DiskFull };
    let partitions = [("JOBS leader", Target::Leader(JOBS_STREAM)), ("worker 0", Target::Member(Member::Worker(0)))]
        .map(|(n, t)| Scenario { name: format!("partition {n} from the rest"), fault: Fault::Partition(t) });
    let (stopped, cycle) = (super::brownout::STOPPED, super::brownout::STOPPED + super::brownout::RUNNING);
    let brownout = Scenario {
        name: format!(
            "brownout JOBS leader (stopped {} of every {} ms), the operator's failover",
            stopped.as_millis(),
            cycle.as_millis()
        ),
        fault: Fault::Brownout(Target::Leader(JOBS_STREAM)),
    };
    let degraded = Impairment { delay_ms: 100, jitter_ms: 50, loss_pct: 5.0 };
    let links = [
        Scenario { name: "link api-server 0 ↔ NATS 100±50 ms, 5 % loss".into(), fault: Fault::Link(degraded) },
        Scenario { name: "partition api-server 0 from NATS".into(), fault: Fault::Link(Impairment::CUT) },
    ];
    kills
        .chain(pauses)
        .chain([brownout])
        .chain(partitions)
        .chain([disk])
        .chain(links)
        .chain(overload)
        .chain([slow])
        .chain(skews)
        .collect()
}

/// The scenario that runs on a cluster of its own after the matrix (see
/// [`super::power`]): it takes the whole JetStream cluster down, which the
/// fleet's figures must not see.
pub const POWER_LOSS: &str = "power loss, all three JetStream nodes at once";

/// Whether the scenario called `name` runs: its name contains one of
/// `wanted`, or `wanted` is empty (everything runs).
pub fn wanted(name: &str, wanted: &[String]) -> bool {
    wanted.is_empty() || wanted.iter().any(|w| name.contains(w.as_str()))
}

/// The scenarios of the matrix that run (see [`wanted`]).
pub fn select(only: &[String]) -> Vec<Scenario> {
    matrix().into_iter().filter(|s| wanted(&s.name, only)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_takes_every_component_away_both_ways_and_overloads() {
        let m = matrix();
        for who in ["api-server", "worker", "auth-cache", "usage-aggregator", "follower", "JOBS", "USAGE", "IDENTITY"] {
            for how in ["kill", "pause"] {
                assert!(m.iter().any(|s| s.name.starts_with(how) && s.name.contains(who)), "{how} {who}");
            }
        }
        assert_eq!(m.iter().filter(|s| matches!(s.fault, Fault::Overload(_))).count(), 2);
        assert!(m.iter().any(|s| matches!(s.fault, Fault::Slowloris(10))));
        assert!(m.iter().any(|s| s.fault == Fault::DiskFull));
        assert!(m.iter().any(|s| s.fault == Fault::Link(Impairment::CUT)));
        assert!(m.iter().any(|s| s.fault == Fault::Partition(Target::Leader(contracts::subjects::JOBS_STREAM))));
        assert!(m.iter().any(|s| s.fault == Fault::Partition(Target::Member(Member::Worker(0)))));
        assert!(m.iter().any(|s| s.fault == Fault::Brownout(Target::Leader(contracts::subjects::JOBS_STREAM))));
        assert!(m.iter().any(|s| matches!(s.fault, Fault::Link(i) if i.delay_ms > 0 && i.loss_pct > 0.0)));
        for who in [Member::Api(0), Member::Worker(0)] {
            for skew in [600, -600] {
                assert!(m.iter().any(|s| s.fault == Fault::ClockSkew(who, skew)), "{who} {skew}");
            }
        }
        assert_eq!(select(&["leader".into()]).len(), 8);
        assert_eq!(select(&[]).len(), m.len());
    }

    #[test]
    fn the_power_loss_runs_when_named_or_when_everything_does() {
        let only = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(wanted(POWER_LOSS, &[]));
        assert!(wanted(POWER_LOSS, &only(&["power"])));
        assert!(select(&only(&["power"])).is_empty(), "--only power runs the power loss alone");
        assert!(!wanted(POWER_LOSS, &only(&["kill", "pause"])));
        assert!(wanted(POWER_LOSS, &only(&["kill", "power"])));
        assert!(matrix().iter().all(|s| s.name != POWER_LOSS));
    }
}
