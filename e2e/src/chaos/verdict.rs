//! What a scenario's outcomes mean: the figures a reader compares with the
//! SLA, and the invariants whose breach fails the run. Pure functions of the
//! outcomes (and of what was read back from USAGE), so they test without a fleet.

use super::{
    fleet::Member,
    load::{Answer, Ask, Outcome, TENANT_SIDES},
};
use crate::bench::{Failure, percentile};
use contracts::usage::UsageRecord;
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::Duration,
};

/// A scenario's timeline, from the start of its load.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    /// The fault is injected.
    pub fault: Duration,
    /// The fault ends (restart, resume, load back to normal).
    pub heal: Duration,
    /// The load stops.
    pub end: Duration,
}

/// Ok answers per offered authorised request that count as full throughput.
pub const FULL: f64 = 0.95;
/// Buckets the recovery is judged in.
pub const BUCKET: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub offered: usize,
    /// Requests with valid credentials: the ones the system owes an image.
    pub authorized: usize,
    pub ok: usize,
    /// Authorised requests without an image, by kind.
    pub errors: BTreeMap<String, usize>,
    /// First and last send time of a failed authorised request, in seconds.
    pub error_window: Option<(f64, f64)>,
    /// Of ok answers to requests sent between fault and heal.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Seconds from the heal until throughput stayed at [`FULL`]; `None` if it never did.
    pub recovered_after: Option<f64>,
    /// Seconds the clients saw the service down: the [`BUCKET`]s that served
    /// less than [`FULL`] of their authorised requests. Unlike the error
    /// window, a straggler does not stretch it.
    pub outage: f64,
    /// ok / authorized.
    pub availability: f64,
}

/// Why an authorised request got no image, as the table counts it.
pub fn error_kind(a: &Answer) -> String {
    match a {
        Answer::Image { .. } => "image".into(),
        Answer::Problem { status, kind } => {
            format!("{status} {}", kind.rsplit('/').next().filter(|k| !k.is_empty()).unwrap_or("(no type)"))
        }
        Answer::Failed(f) => f.to_string(),
    }
}

pub fn figures(outcomes: &[Outcome], phase: &Phase) -> Figures {
    let authorized: Vec<&Outcome> = outcomes.iter().filter(|o| o.ask.tenant().is_some()).collect();
    let ok = authorized.iter().filter(|o| o.ok()).count();
    let mut errors = BTreeMap::new();
    let mut window: Option<(f64, f64)> = None;
    for o in authorized.iter().filter(|o| !o.ok()) {
        *errors.entry(error_kind(&o.answer)).or_default() += 1;
        let t = o.sent.as_secs_f64();
        window = Some(window.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
    }
    let during: Vec<f64> = authorized
        .iter()
        .filter(|o| o.ok() && o.sent >= phase.fault && o.sent < phase.heal)
        .map(|o| o.took.as_secs_f64() * 1000.0)
        .collect();
    Figures {
        offered: outcomes.len(),
        authorized: authorized.len(),
        ok,
        errors,
        error_window: window,
        p50_ms: percentile(&during, 0.5),
        p99_ms: percentile(&during, 0.99),
        recovered_after: recovered_after(&authorized, phase),
        outage: short_buckets(&authorized, phase).iter().filter(|short| **short).count() as f64 * BUCKET.as_secs_f64(),
        availability: if authorized.is_empty() { 1.0 } else { ok as f64 / authorized.len() as f64 },
    }
}

/// Per [`BUCKET`] of send time: whether it served less than [`FULL`] of its authorised requests.
fn short_buckets(authorized: &[&Outcome], phase: &Phase) -> Vec<bool> {
    let buckets = phase.end.as_nanos().div_ceil(BUCKET.as_nanos()) as usize;
    let mut offered = vec![0usize; buckets];
    let mut ok = vec![0usize; buckets];
    for o in authorized {
        let b = ((o.sent.as_nanos() / BUCKET.as_nanos()) as usize).min(buckets.saturating_sub(1));
        offered[b] += 1;
        ok[b] += usize::from(o.ok());
    }
    (0..buckets).map(|b| offered[b] > 0 && (ok[b] as f64) < FULL * offered[b] as f64).collect()
}

/// Seconds from the heal to the start of the first bucket after which every
/// bucket served at least [`FULL`] of its authorised requests.
fn recovered_after(authorized: &[&Outcome], phase: &Phase) -> Option<f64> {
    let short = short_buckets(authorized, phase);
    let buckets = short.len();
    let last_short = (0..buckets).rev().find(|&b| short[b]);
    match last_short {
        None => Some(0.0),
        Some(b) if b + 1 >= buckets => None,
        Some(b) => Some(((b + 1) as f64 * BUCKET.as_secs_f64() - phase.heal.as_secs_f64()).max(0.0)),
    }
}

/// What a scenario's fault may cost without breaking an invariant.
#[derive(Debug, Clone, Default)]
pub struct Allowance {
    /// An api-server (index, incarnation) killed at this time: requests in
    /// flight on it then lose their connection, the one loss a client of a
    /// killed process sees (a load balancer would turn it into a 502).
    pub killed_api: Option<((usize, u32), Duration)>,
}

impl Allowance {
    /// Whether `o` died with the killed api-server: on a connection to that
    /// incarnation, ending after the kill. That is a request in flight then,
    /// or one sent just after on a pooled keep-alive connection the client
    /// had not yet seen close (new connections are refused and go elsewhere).
    pub fn lost_with_api(&self, o: &Outcome) -> bool {
        self.killed_api.is_some_and(|(backend, at)| o.backend == backend && o.done() >= at)
    }
}

/// Every invariant `outcomes` break, as sentences; empty when all hold.
pub fn violations(outcomes: &[Outcome], allow: &Allowance) -> Vec<String> {
    let mut v = Vec::new();
    let mut count = |what: &str, n: usize, example: Option<&Outcome>| {
        if n > 0 {
            v.push(format!("{n} {what} (first: {example:?})"));
        }
    };
    let hung: Vec<_> = outcomes.iter().filter(|o| o.answer == Answer::Failed(Failure::Timeout)).collect();
    count("requests without an answer within the deadline + 1 s", hung.len(), hung.first().copied());
    let lost: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(&o.answer, Answer::Failed(f) if *f != Failure::Timeout) && !allow.lost_with_api(o))
        .filter(|o| !matches!(o.ask, Ask::Abandoned(_)))
        .collect();
    count("requests that ended without an HTTP answer", lost.len(), lost.first().copied());
    let served_unauthenticated: Vec<_> =
        outcomes.iter().filter(|o| o.ask.sender().is_none() && matches!(o.answer, Answer::Image { .. })).collect();
    count("requests without valid credentials answered with an image", served_unauthenticated.len(), None);
    let served_garbage: Vec<_> = outcomes
        .iter()
        .filter(|o| o.ask.sender().is_some() && o.ask.tenant().is_none() && matches!(o.answer, Answer::Image { .. }))
        .collect();
    count("corrupt or half-sent bodies answered with an image", served_garbage.len(), served_garbage.first().copied());
    // A corrupt image is the client's mistake (4xx) unless the system could not look at it (503).
    let misjudged: Vec<_> = outcomes
        .iter()
        .filter(|o| {
            matches!((o.ask, &o.answer), (Ask::Corrupt(_), Answer::Problem { status, .. })
                if !matches!(status, 415 | 422 | 503))
        })
        .collect();
    count("corrupt images answered other than 415, 422 or 503", misjudged.len(), misjudged.first().copied());
    let crossed: Vec<_> = outcomes
        .iter()
        .filter(|o| match (o.ask.tenant(), &o.answer) {
            (Some(t), Answer::Image { side }) => *side != TENANT_SIDES[t],
            _ => false,
        })
        .collect();
    count("images of another request's size (a cross-tenant answer)", crossed.len(), crossed.first().copied());
    let untyped: Vec<_> =
        outcomes.iter().filter(|o| matches!(&o.answer, Answer::Problem { kind, .. } if kind.is_empty())).collect();
    count("errors that were not problem+json with a type", untyped.len(), untyped.first().copied());
    // Valid credentials are never refused as invalid: an outage may cost a 5xx, not a 401.
    let refused: Vec<_> = outcomes
        .iter()
        .filter(|o| o.ask.tenant().is_some() && matches!(o.answer, Answer::Problem { status, .. } if status < 500))
        .collect();
    count("requests with valid credentials refused with a 4xx", refused.len(), refused.first().copied());
    let wrongly_refused: Vec<_> = outcomes
        .iter()
        .filter(|o| {
            matches!((o.ask, &o.answer), (Ask::Anonymous | Ask::Forged(_), Answer::Problem { status, .. })
                if !matches!(status, 401 | 503))
        })
        .collect();
    count("requests without valid credentials answered other than 401 or 503", wrongly_refused.len(), None);
    v
}

/// A wall clock off on one member must cost nothing: every request with
/// valid credentials sent between `from` and `to` got its image (through
/// that api-server, or at all when the member is a worker, whose jobs any
/// request may meet).
pub fn skew_cost(outcomes: &[Outcome], from: Duration, to: Duration, who: Member, skew_s: i64) -> Option<String> {
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| !matches!(who, Member::Api(i) if o.backend.0 != i))
        .filter(|o| o.sent >= from && o.sent < to && o.ask.tenant().is_some() && !o.ok())
        .collect();
    (!failed.is_empty()).then(|| {
        format!(
            "{} requests with valid credentials failed while the clock of {who} was {skew_s:+} s off (first: {:?})",
            failed.len(),
            failed[0]
        )
    })
}

/// The time budgets `figures` miss, as sentences. These depend on how busy
/// the machine is, so a run may report them rather than fail on them.
pub fn over_budget(phase: &Phase, figures: &Figures) -> Vec<String> {
    let mut v = Vec::new();
    if figures.recovered_after.is_none() {
        v.push(format!(
            "throughput was not back to {:.0} % of the offered load by the end ({:.1} s after the fault ended)",
            FULL * 100.0,
            (phase.end - phase.heal).as_secs_f64()
        ));
    }
    v
}

/// The usage ledger against what the clients saw, over a whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Distinct request ids in answers.
    pub answered: usize,
    /// Distinct request ids in USAGE.
    pub recorded: usize,
    /// Answered, not in USAGE, but allowed: refusals of a killed api-server in its last flush window.
    pub lost_at_kill: usize,
    /// The aggregators' rollups, summed over tenants.
    pub rolled_up: u64,
}

/// One answered request as the ledger sees it.
#[derive(Debug, Clone)]
pub struct Answered {
    pub request_id: String,
    /// The tenant whose credentials it carried (`None` for none or forged ones).
    pub tenant: Option<String>,
    /// Whether it was answered with an image.
    pub served: bool,
}

/// Checks the usage invariants: every answered request has a record (except
/// refusals an api-server held unflushed when it was killed), nothing is
/// recorded that no client can have sent (beyond `unanswered`: the requests
/// whose connection died with an api-server or whose client left
/// mid-upload), each record names the tenant that
/// sent it, and the rollups count each record once. A request refused before
/// it was authenticated (shed at admission, say) is recorded for the
/// anonymous tenant: that is not another tenant's.
pub fn ledger(
    answered: &[Answered],
    may_be_missing: &HashSet<String>,
    unanswered: usize,
    records: &[UsageRecord],
    rolled_up: u64,
) -> (Ledger, Vec<String>) {
    let mut v = Vec::new();
    let expected: HashMap<&str, (Option<&str>, bool)> =
        answered.iter().map(|a| (a.request_id.as_str(), (a.tenant.as_deref(), a.served))).collect();
    let recorded: HashMap<&str, &UsageRecord> = records.iter().map(|r| (r.request_id.as_str(), r)).collect();
    let missing: Vec<&str> = expected.keys().filter(|id| !recorded.contains_key(*id)).copied().collect();
    let unexplained: Vec<&&str> = missing.iter().filter(|id| !may_be_missing.contains(**id)).collect();
    if !unexplained.is_empty() {
        v.push(format!("{} answered requests have no usage record (first: {})", unexplained.len(), unexplained[0]));
    }
    let extra = recorded.keys().filter(|id| !expected.contains_key(*id)).count();
    if extra > unanswered {
        v.push(format!(
            "{extra} usage records of requests no client got an answer to, more than the {unanswered} that lost their connection or never read their id"
        ));
    }
    let anonymous = contracts::job::ANONYMOUS_TENANT;
    let wrong_tenant: Vec<_> = expected
        .iter()
        .filter_map(|(id, (t, served))| Some((id, (*t)?, *served, recorded.get(id)?)))
        .filter(|(_, t, served, r)| r.tenant != *t && (*served || r.tenant != anonymous))
        .map(|(id, t, _, r)| (id, t, r))
        .collect();
    if let Some((id, t, r)) = wrong_tenant.first() {
        v.push(format!(
            "{} usage records name another tenant than the sender (first: {id} sent by {t}, recorded for {})",
            wrong_tenant.len(),
            r.tenant
        ));
    }
    if rolled_up != recorded.len() as u64 {
        v.push(format!("the rollups count {rolled_up} requests, USAGE holds {} distinct ones", recorded.len()));
    }
    let lost_at_kill = missing.len() - unexplained.len();
    (Ledger { answered: expected.len(), recorded: recorded.len(), lost_at_kill, rolled_up }, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(sent_ms: u64, ask: Ask, answer: Answer) -> Outcome {
        Outcome {
            sent: Duration::from_millis(sent_ms),
            took: Duration::from_millis(40),
            ask,
            backend: (0, 0),
            answer,
            request_id: Some(format!("r{sent_ms}")),
        }
    }

    fn image(t: usize) -> Answer {
        Answer::Image { side: TENANT_SIDES[t] }
    }

    fn shed() -> Answer {
        Answer::Problem { status: 503, kind: "https://example/problems/overloaded".into() }
    }

    const PHASE: Phase =
        Phase { fault: Duration::from_secs(1), heal: Duration::from_secs(2), end: Duration::from_secs(4) };

    /// 40 requests a second for 4 s, failing from `from` to `to` ms.
    fn run(from: u64, to: u64) -> Vec<Outcome> {
        (0..160)
            .map(|i| i * 25)
            .map(|t| o(t, Ask::Bearer(0), if (from..to).contains(&t) { shed() } else { image(0) }))
            .collect()
    }

    #[test]
    fn a_clean_run_has_full_availability_and_no_violation() {
        let outcomes = run(0, 0);
        let f = figures(&outcomes, &PHASE);
        assert_eq!((f.offered, f.ok, f.availability, f.recovered_after, f.outage), (160, 160, 1.0, Some(0.0), 0.0));
        assert!(violations(&outcomes, &Allowance::default()).is_empty());
        assert!(over_budget(&PHASE, &f).is_empty());
    }

    #[test]
    fn errors_are_counted_by_kind_with_their_window_and_the_recovery_time() {
        let f = figures(&run(1000, 2600), &PHASE);
        assert_eq!(f.errors.get("503 overloaded"), Some(&64));
        assert_eq!(f.error_window, Some((1.0, 2.575)));
        // The bucket 2.5–3.0 s is short; from 3.0 s on every bucket is full.
        assert_eq!(f.recovered_after, Some(1.0));
        // 1.0–2.5 s wholly failed, 2.5–3.0 s half: four short buckets.
        assert_eq!(f.outage, 2.0);
        assert!((f.availability - 96.0 / 160.0).abs() < 1e-9);
    }

    #[test]
    fn a_run_still_failing_at_its_end_has_not_recovered() {
        let outcomes = run(1000, 4000);
        let f = figures(&outcomes, &PHASE);
        assert_eq!(f.recovered_after, None);
        let v = over_budget(&PHASE, &f);
        assert!(v.iter().any(|s| s.contains("not back")), "{v:?}");
    }

    #[test]
    fn hangs_resets_leaks_and_cross_tenant_images_are_violations() {
        let mut outcomes = run(0, 0);
        outcomes.push(o(100, Ask::Bearer(1), Answer::Failed(Failure::Timeout)));
        outcomes.push(o(110, Ask::Bearer(1), Answer::Failed(Failure::Reset)));
        outcomes.push(o(120, Ask::Anonymous, image(0)));
        outcomes.push(o(130, Ask::Signed(1), image(0)));
        outcomes.push(o(140, Ask::Signed(1), Answer::Problem { status: 502, kind: String::new() }));
        outcomes.push(o(150, Ask::Signed(1), Answer::Problem { status: 401, kind: "/p/unauthenticated".into() }));
        outcomes.push(o(160, Ask::Forged(1), Answer::Problem { status: 400, kind: "/p/invalid".into() }));
        outcomes.push(o(170, Ask::Corrupt(0), image(0)));
        outcomes.push(o(180, Ask::Corrupt(0), Answer::Problem { status: 500, kind: "/p/internal".into() }));
        // A client that left mid-upload sees its own reset: not the system's doing.
        outcomes.push(o(190, Ask::Abandoned(0), Answer::Failed(Failure::Reset)));
        let v = violations(&outcomes, &Allowance::default());
        for want in [
            "without an answer",
            "without an HTTP answer",
            "without valid credentials answered with an image",
            "cross-tenant",
            "not problem+json",
            "refused with a 4xx",
            "other than 401 or 503",
            "corrupt or half-sent bodies answered with an image",
            "corrupt images answered other than",
        ] {
            assert!(v.iter().any(|s| s.contains(want)), "{want} missing from {v:?}");
        }
        assert!(v.iter().any(|s| s.starts_with("1 requests that ended without an HTTP answer")), "{v:?}");
    }

    #[test]
    fn a_reset_is_allowed_only_on_the_killed_api_server() {
        let mut in_flight = o(900, Ask::Bearer(0), Answer::Failed(Failure::Reset));
        in_flight.took = Duration::from_millis(200);
        let mut before = o(700, Ask::Bearer(0), Answer::Failed(Failure::Reset));
        before.took = Duration::from_millis(10);
        let mut restarted = o(1300, Ask::Bearer(0), Answer::Failed(Failure::Reset));
        restarted.backend = (0, 1);
        let allow = Allowance { killed_api: Some(((0, 0), Duration::from_secs(1))) };
        assert!(allow.lost_with_api(&in_flight));
        assert!(!allow.lost_with_api(&before), "a reset before the kill is the system's");
        assert!(!allow.lost_with_api(&restarted), "the restarted api-server owes answers again");
        let mut other = in_flight.clone();
        other.backend = (1, 0);
        assert!(!allow.lost_with_api(&other));
    }

    fn record(id: &str, tenant: &str) -> UsageRecord {
        UsageRecord { tenant: tenant.into(), ..UsageRecord::refused(id, contracts::ProblemKind::Overloaded) }
    }

    #[test]
    fn the_ledger_balances_or_says_why_not() {
        let a = |id: &str, tenant: Option<&str>, served| Answered {
            request_id: id.into(),
            tenant: tenant.map(str::to_owned),
            served,
        };
        let answered =
            vec![a("a", Some("t1"), true), a("b", None, false), a("c", None, false), a("d", Some("t1"), false)];
        // `d` was shed before it was authenticated: anonymous is its honest tenant.
        let records = vec![record("a", "t1"), record("b", "anonymous"), record("d", "anonymous"), record("x", "t1")];
        let allowed: HashSet<String> = ["c".to_owned()].into();
        let (l, v) = ledger(&answered, &allowed, 1, &records, 4);
        assert!(v.is_empty(), "{v:?}");
        assert_eq!(l, Ledger { answered: 4, recorded: 4, lost_at_kill: 1, rolled_up: 4 });

        let (_, v) = ledger(&answered, &HashSet::new(), 0, &[record("a", "anonymous"), record("x", "t1")], 3);
        for want in ["no usage record", "no client got an answer", "another tenant", "the rollups count 3"] {
            assert!(v.iter().any(|s| s.contains(want)), "{want} missing from {v:?}");
        }
    }

    #[test]
    fn a_skewed_clock_may_cost_nothing_on_its_api_server() {
        const API: Member = Member::Api(0);
        let (from, to) = (Duration::from_secs(1), Duration::from_secs(2));
        assert_eq!(skew_cost(&run(0, 0), from, to, API, 600), None);
        // Refusals of requests without valid credentials are no cost.
        let anonymous = vec![o(1500, Ask::Anonymous, Answer::Problem { status: 401, kind: "unauthorized".into() })];
        assert_eq!(skew_cost(&anonymous, from, to, API, 600), None);
        let v = skew_cost(&run(1500, 1600), from, to, API, -600).expect("shed while skewed");
        assert!(v.starts_with("4 requests"), "{v}");
        // Failures on the other api-server, or outside the fault, are another scenario's business.
        let mut elsewhere = run(1500, 1600);
        elsewhere.iter_mut().for_each(|o| o.backend = (1, 0));
        assert_eq!(skew_cost(&elsewhere, from, to, API, 600), None);
        assert!(skew_cost(&elsewhere, from, to, Member::Worker(0), 600).is_some(), "a worker's skew costs anyone");
        assert_eq!(skew_cost(&run(2500, 2600), from, to, API, 600), None);
    }
}
