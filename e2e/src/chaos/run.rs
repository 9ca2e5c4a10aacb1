//! One scenario at a time against the running fleet: load, fault, heal,
//! recovery, and what it cost.

use super::{
    fleet::{Fleet, GROUPS, Group, Member},
    load::{Answer, Load, Outcome},
    scenario::{Fault, Scenario, Target},
    verdict::{self, Allowance, Figures, Phase},
};
use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// How long each part of a scenario lasts.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Load before the fault: the baseline.
    pub warm: Duration,
    /// How long the fault lasts.
    pub fault: Duration,
    /// Load after the fault ends (after a restarted member serves again).
    pub recover: Duration,
    /// A paused leader stays paused at least this long, so raft has to act.
    pub leader_pause: Duration,
}

/// A leader must be replaced within this while paused.
pub const STEP_DOWN_BUDGET: Duration = Duration::from_secs(10);
/// Client-visible outage allowed beyond JetStream's own re-election.
pub const OUTAGE_OVER_ELECTION: Duration = Duration::from_secs(1);

/// What one scenario measured.
pub struct Report {
    pub name: String,
    pub figures: Figures,
    /// Broken invariants: what the system must never do, however busy.
    pub violations: Vec<String>,
    /// Missed time budgets (recovery, re-election, outage).
    pub over_budget: Vec<String>,
    /// What the fault did beyond the figures: who was hit, elections.
    pub notes: Vec<String>,
    pub outcomes: Vec<Outcome>,
    /// Ids of answers a killed api-server may have held unflushed.
    pub may_be_missing: HashSet<String>,
    /// Requests whose connection died with a killed api-server.
    pub lost_in_flight: usize,
    /// Slow uploads with a valid key: each reached an api-server and left a
    /// usage record whose id no client read.
    pub slow_uploads: usize,
}

async fn resolve(fleet: &Fleet, t: Target) -> anyhow::Result<(Member, Option<&'static str>)> {
    Ok(match t {
        Target::Member(m) => (m, None),
        Target::Leader(stream) => {
            let i = fleet
                .leader(Group::stream(stream), None)
                .await
                .ok_or_else(|| anyhow::anyhow!("{stream} has no leader"))?;
            (Member::Nats(i), Some(stream))
        }
        Target::Follower => {
            (Member::Nats(fleet.follower().await.ok_or_else(|| anyhow::anyhow!("no JOBS follower"))?), None)
        }
    })
}

pub async fn scenario(
    fleet: &mut Fleet,
    load: &Load,
    s: &Scenario,
    rate: f64,
    timing: Timing,
) -> anyhow::Result<Report> {
    let partition = matches!(s.fault, Fault::Partition(_));
    let brownout = matches!(s.fault, Fault::Brownout(_));
    let (target, kill) = match s.fault {
        Fault::Kill(t) => (Some(resolve(fleet, t).await?), true),
        // A partitioned leader, like a paused one, is alive and must be replaced.
        Fault::Pause(t) | Fault::Partition(t) | Fault::Brownout(t) => (Some(resolve(fleet, t).await?), false),
        // A full disk takes the node's JetStream away as a kill does; its process stays.
        Fault::DiskFull => {
            let Some(store) = &fleet.cluster.small_store else {
                anyhow::bail!("no node has a store of its own to fill: mounting a tmpfs needs root");
            };
            (Some((Member::Nats(store.node), None)), true)
        }
        Fault::Overload(_) | Fault::Slowloris(_) | Fault::ClockSkew(..) | Fault::Link(_) => (None, false),
    };
    // A paused leader stays paused long enough that raft has to act; slow
    // clients last past the api-server's header timeout, to see it cut them.
    let paused_leader = matches!(target, Some((_, Some(_)))) && !kill;
    let length = if paused_leader || matches!(s.fault, Fault::Slowloris(_)) {
        timing.fault.max(timing.leader_pause)
    } else {
        timing.fault
    };
    let fault_at = timing.warm;
    let heal_at = fault_at + length;
    let factor = match s.fault {
        Fault::Overload(f) => f,
        _ => 1.0,
    };
    let start = Instant::now();
    let end = Arc::new(AtomicU64::new(u64::MAX));
    let traffic = {
        let (load, end) = (load.clone(), end.clone());
        tokio::spawn(async move {
            load.open(start, end, move |t| if t >= fault_at && t < heal_at { rate * factor } else { rate }).await
        })
    };
    let mut notes = Vec::new();
    let mut allow = Allowance::default();
    let mut election = None;
    // While a brownout lasts: its end, the stop/continue cycle and the operator's failover.
    let mut browning: Option<(
        Arc<AtomicBool>,
        tokio::task::JoinHandle<()>,
        tokio::task::JoinHandle<super::brownout::Actions>,
    )> = None;
    tokio::time::sleep_until((start + fault_at).into()).await;
    let slow = match s.fault {
        Fault::Slowloris(times) => {
            let (base, _) = fleet.backends.get(0);
            let identity::client::Credentials::ApiKey(key) = fleet.tenants[0].api_key.clone() else {
                anyhow::bail!("the first tenant's API key is not a bearer key");
            };
            let until = start + heal_at;
            let n = times * super::fleet::MAX_IN_FLIGHT;
            notes.push(format!("{n} slow connections to api-server 0"));
            Some(tokio::spawn(async move { super::slow::hold(&base, &key, n, until).await }))
        }
        _ => None,
    };
    match s.fault {
        Fault::ClockSkew(who, s) => {
            fleet.replace(who, Some(s)).await?;
            notes.push(format!("{who} replaced by one {s:+} s off"));
        }
        Fault::Link(how) => {
            fleet.impair_api_link(how)?;
            notes.push(format!("api-server 0 ↔ NATS: {}", how.describe()));
        }
        _ => {}
    }
    if let Some((m, _)) = target {
        // The streams a JetStream node leads lose their leader with it.
        let mut led = Vec::new();
        if let Member::Nats(node) = m {
            // Raft keeps a browned-out node's leaderships; the operator moves only JOBS'.
            let watched = if brownout { &GROUPS[..1] } else { &GROUPS[..] };
            for &group in watched {
                if fleet.leader(group, None).await == Some(node) {
                    led.push(group);
                }
            }
        }
        let hit = Instant::now();
        let incarnation = if let Member::Api(i) = m { Some((i, fleet.backends.get(i).1)) } else { None };
        if s.fault == Fault::DiskFull {
            let filled = fleet.fill_store()?;
            notes.push(format!("{m}'s store filled ({} MiB written until ENOSPC)", filled >> 20));
        } else if kill {
            fleet.kill(m);
            if let Some(b) = incarnation {
                allow.killed_api = Some((b, start.elapsed()));
            }
        } else if partition {
            fleet.partition(m)?;
        } else if brownout {
            let pid = fleet.pid(m).ok_or_else(|| anyhow::anyhow!("{m} is not running"))?;
            let seed = std::fs::read_to_string(crate::nats::key_file(contracts::access::Role::Operator))?;
            let done = Arc::new(AtomicBool::new(false));
            let cycling = super::brownout::cycle(pid, done.clone());
            // The operator reaches NATS through its client Service: one address, here a node not browned out.
            let Member::Nats(node) = m else { anyhow::bail!("a brownout is of a JetStream node, not {m}") };
            let url = fleet.cluster.nodes[(node + 1) % fleet.cluster.nodes.len()].client_url.clone();
            let watching = super::brownout::watch(url, seed.trim().to_owned(), done.clone());
            browning = Some((done, cycling, watching));
        } else {
            fleet.signal(m, "STOP");
        }
        notes.push(format!("{m}"));
        if let Member::Nats(old) = m
            && !led.is_empty()
        {
            // Raft elects after 4–9 s of silence: the heal waits for the elections (or this budget).
            let within = STEP_DOWN_BUDGET.max(length);
            // A group not re-elected within the budget counts as the whole budget.
            let mut slowest = Duration::ZERO;
            let mut all = true;
            for group in led {
                let took = fleet.reelected(group, old, hit, within).await;
                match took {
                    Some(d) => notes.push(format!("{group} re-elected in {:.1} s", d.as_secs_f64())),
                    None => notes.push(format!("{group} not re-elected within {:.0} s", within.as_secs_f64())),
                }
                all &= took.is_some();
                slowest = slowest.max(took.unwrap_or(within));
            }
            let slowest = if kill || all { Some(slowest) } else { None };
            election = Some(slowest);
        }
    }
    tokio::time::sleep_until((start + heal_at).into()).await;
    if let Some((done, cycling, watching)) = browning.take() {
        done.store(true, Ordering::Relaxed);
        cycling.await?;
        let actions = watching.await?;
        match actions.step_downs.first() {
            Some((at, why)) => notes
                .push(format!("the operator's failover asked for a step-down {:.1} s in ({why})", at.as_secs_f64())),
            None => notes.push(format!(
                "the operator's failover never stepped the leader down (last hold: {}; last failure: {})",
                actions.held.as_deref().unwrap_or("none"),
                actions.failed.as_deref().unwrap_or("none")
            )),
        }
    }
    if let Some((m, _)) = target {
        if s.fault == Fault::DiskFull {
            // nats-server does not take its JetStream back by itself: the
            // node is restarted once there is room, as a failing probe would.
            fleet.empty_store()?;
            fleet.restart(m).await?;
            notes.push("room given back, node restarted".into());
        } else if kill {
            fleet.restart(m).await?;
        } else if partition {
            fleet.heal(m)?;
        } else {
            fleet.signal(m, "CONT");
        }
    }
    let mut slow_uploads = 0;
    if let Some(slow) = slow {
        let ended = slow.await?;
        notes.push(super::slow::summary(&ended));
        slow_uploads = ended.iter().filter(|e| e.stage == super::slow::Stage::Body).count();
    }
    match s.fault {
        Fault::ClockSkew(who, _) => fleet.replace(who, None).await?,
        Fault::Link(_) => fleet.repair_api_link()?,
        _ => {}
    }
    let healed = start.elapsed();
    // A JetStream node that comes back (restarted, or resumed while its
    // peers moved on) can cost one more election as it rejoins: give the
    // recovery as long as a step-down may take.
    let recover = match target {
        Some((Member::Nats(_), _)) => timing.recover.max(STEP_DOWN_BUDGET),
        _ => timing.recover,
    };
    end.store((healed + recover).as_millis() as u64, Ordering::Relaxed);
    let outcomes = traffic.await?;
    let phase = Phase { fault: fault_at, heal: healed, end: healed + recover };
    let figures = verdict::figures(&outcomes, &phase);
    let mut violations = verdict::violations(&outcomes, &allow);
    if let Fault::ClockSkew(who, skew) = s.fault {
        violations.extend(verdict::skew_cost(&outcomes, fault_at, healed, who, skew));
    }
    let mut over_budget = verdict::over_budget(&phase, &figures);
    if let Some(elected) = election {
        match (elected, kill) {
            (None, false) => over_budget
                .push(format!("the silent (paused or cut off) leader was not replaced within {STEP_DOWN_BUDGET:?}")),
            (Some(d), false) if d > STEP_DOWN_BUDGET => {
                over_budget.push(format!("the silent (paused or cut off) leader was replaced only after {d:?}"))
            }
            (Some(d), true) => {
                let outage = figures.outage;
                if outage > (d + OUTAGE_OVER_ELECTION).as_secs_f64() {
                    over_budget.push(format!(
                        "clients saw {outage:.1} s of errors, more than the slowest re-election ({:.1} s) + {OUTAGE_OVER_ELECTION:?}",
                        d.as_secs_f64()
                    ));
                }
            }
            _ => {}
        }
    }
    let lost_in_flight =
        outcomes.iter().filter(|o| matches!(o.answer, Answer::Failed(_)) && allow.lost_with_api(o)).count();
    let may_be_missing = match allow.killed_api {
        Some((backend, at)) => {
            let window = api_server::usage::FLUSH_INTERVAL + Duration::from_secs(1);
            outcomes
                .iter()
                .filter(|o| o.backend == backend && o.done() + window >= at && o.done() <= at + window)
                .filter_map(|o| o.request_id.clone())
                .collect()
        }
        None => HashSet::new(),
    };
    let by_edge = outcomes.iter().filter(|o| o.by_edge()).count();
    if by_edge > 0 {
        notes.push(format!("{by_edge} answered by the edge for an ejected api-server"));
    }
    if lost_in_flight > 0 {
        notes.push(format!("{lost_in_flight} in flight on it lost their connection"));
    }
    Ok(Report {
        name: s.name.clone(),
        figures,
        violations,
        over_budget,
        notes,
        outcomes,
        may_be_missing,
        lost_in_flight,
        slow_uploads,
    })
}
