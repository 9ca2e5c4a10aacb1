//! The table a run prints: one row per scenario, in Markdown so the README can carry it.

use super::run::Report;
use super::verdict::Ledger;

fn errors(r: &Report) -> String {
    let mut kinds: Vec<_> = r.figures.errors.iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(a.1));
    let shown: Vec<String> = kinds.iter().take(3).map(|(k, n)| format!("{n} {k}")).collect();
    if shown.is_empty() { "–".into() } else { shown.join(", ") }
}

fn ms(v: f64) -> String {
    if v.is_nan() { "–".into() } else { format!("{v:.0}") }
}

pub fn table(reports: &[Report], budgets: bool) -> String {
    let mut out = String::from(
        "| scenario | offered | ok | availability | errors (authorised requests) | error window s | outage s | p50 / p99 ms during fault | recovered after s | notes | invariants |\n\
         |---|---:|---:|---:|---|---|---:|---|---:|---|---|\n",
    );
    for r in reports {
        let f = &r.figures;
        let window = f.error_window.map_or("–".into(), |(a, b)| format!("{a:.1}–{b:.1}"));
        let recovered = f.recovered_after.map_or("never".into(), |s| format!("{s:.1}"));
        let verdict = match (r.violations.len(), r.over_budget.len()) {
            (0, 0) => "hold".to_owned(),
            (0, n) if !budgets => format!("hold ({n} over budget)"),
            (0, n) => format!("**{n} over budget**"),
            (b, _) => format!("**{b} broken**"),
        };
        out += &format!(
            "| {} | {} | {} | {:.2} % | {} | {window} | {:.1} | {} / {} | {recovered} | {} | {verdict} |\n",
            r.name,
            f.offered,
            f.ok,
            f.availability * 100.0,
            errors(r),
            f.outage,
            ms(f.p50_ms),
            ms(f.p99_ms),
            r.notes.join("; "),
        );
    }
    out
}

/// The run's availability: ok answers over authorised requests, all scenarios together.
pub fn availability(reports: &[Report]) -> f64 {
    let (ok, all) = reports.iter().fold((0, 0), |(o, a), r| (o + r.figures.ok, a + r.figures.authorized));
    if all == 0 { 1.0 } else { ok as f64 / all as f64 }
}

pub fn ledger(l: &Ledger) -> String {
    format!(
        "usage: {} requests answered, {} distinct request ids in USAGE, {} refusals lost with a killed api-server's unflushed window, rollups count {}",
        l.answered, l.recorded, l.lost_at_kill, l.rolled_up
    )
}
