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

/// The power-loss runs: per stream acknowledged / lost writes (and the
/// stream's fate when it did not come back), what the stores dropped, and how
/// long until every stream had a leader again.
pub fn power(losses: &[super::power::PowerLoss]) -> String {
    let mut out = String::from(
        "| scenario | sync_interval | JOBS acked / lost | USAGE acked / lost | IDENTITY acked / lost | dropped unsynced | recovered after s | invariants |\n\
         |---|---|---:|---:|---:|---:|---:|---|\n",
    );
    for l in losses {
        let streams: Vec<String> = l
            .streams
            .iter()
            .map(|s| match s.fate {
                super::power::Fate::Back => format!("{} / {}", s.acked, s.lost),
                fate => format!("{} / {} ({fate})", s.acked, s.lost),
            })
            .collect();
        let recovered = l.recovered_after.map_or("never".into(), |d| format!("{:.1}", d.as_secs_f64()));
        let verdict = match l.violations().len() {
            0 => "hold".to_owned(),
            n => format!("**{n} broken**"),
        };
        out += &format!(
            "| {} | {} | {} | {} | {recovered} | {verdict} |\n",
            super::scenario::POWER_LOSS,
            l.sync(),
            streams.join(" | "),
            bytes(l.dropped_bytes()),
        );
    }
    out
}

/// `n` bytes in the unit a reader takes in at once.
fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

#[cfg(test)]
mod tests {
    use super::super::power::{Fate, PowerLoss, StreamLoss};
    use std::time::Duration;

    #[test]
    fn the_power_table_has_a_row_per_run() {
        let loss = |durable, lost, fate| PowerLoss {
            durable,
            streams: ["JOBS", "USAGE", "KV_IDENTITY"]
                .into_iter()
                .map(|stream| StreamLoss { stream, acked: 10, lost, fate })
                .collect(),
            dropped: vec![3 << 20, 0, 0],
            recovered_after: (fate == Fate::Back).then_some(Duration::from_millis(4_200)),
        };
        let t = super::power(&[loss(true, 0, Fate::Back), loss(false, 10, Fate::Gone)]);
        let rows: Vec<&str> = t.lines().skip(2).collect();
        assert_eq!(rows.len(), 2, "{t}");
        assert!(rows[0].contains("| always | 10 / 0 | 10 / 0 | 10 / 0 | 3.0 MiB | 4.2 | hold |"), "{t}");
        assert!(rows[1].contains("| 10 / 10 (gone) |") && rows[1].contains("| never | hold |"), "{t}");
        assert_eq!(super::bytes(512), "512 B");
    }
}
