//! Answering a usage query from the rollup documents: one read per UTC day
//! in the range, issued concurrently, then summed into windows.

use crate::{range::Range, store::Store, time::format_rfc3339, watermark};
use contracts::usage::{Counters, DayRollup, UsageReport, UsageRow, Window, rollup::MS_PER_HOUR, streams::rollup_key};
use futures::StreamExt;
use tracing::instrument;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("reading rollup `{key}`: {detail}")]
    Read { key: String, detail: String },
}

/// The rows of `range` from the documents of the days it touches (`(day start, document)`).
/// Windows without traffic are left out.
pub fn rows(range: &Range, docs: &[(u64, DayRollup)]) -> (Vec<UsageRow>, Counters) {
    let mut rows = Vec::new();
    let mut total = Counters::default();
    let inside = |start: u64| start >= range.from_ms && start < range.to_ms;
    for (day_start, doc) in docs {
        match range.window {
            Window::Hour => {
                for (hour, c) in &doc.hours {
                    let start = day_start + u64::from(*hour) * MS_PER_HOUR;
                    if inside(start) && c.requests > 0 {
                        total.add(c);
                        rows.push(UsageRow { start: format_rfc3339(start), counters: *c });
                    }
                }
            }
            Window::Day => {
                let c = doc.day();
                if inside(*day_start) && c.requests > 0 {
                    total.add(&c);
                    rows.push(UsageRow { start: format_rfc3339(*day_start), counters: c });
                }
            }
        }
    }
    (rows, total)
}

/// Builds the report of `tenant` over `range`.
#[instrument(skip(store))]
pub async fn report(store: &Store, tenant: &str, range: &Range) -> Result<UsageReport, QueryError> {
    let days: Vec<u64> = range.days().collect();
    let mut docs: Vec<(u64, DayRollup)> = futures::stream::iter(days)
        .map(|day| async move {
            let key = rollup_key(tenant, &crate::time::day_name(day));
            let err = |detail: String| QueryError::Read { key: key.clone(), detail };
            match store.rollups.get(key.as_str()).await.map_err(|e| err(e.to_string()))? {
                None => Ok(None),
                Some(bytes) => Ok(Some((day, DayRollup::decode(&bytes).map_err(|e| err(e.to_string()))?))),
            }
        })
        .buffer_unordered(32)
        .filter_map(|r: Result<Option<(u64, DayRollup)>, QueryError>| async move { r.transpose() })
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    docs.sort_by_key(|(d, _)| *d);
    let (rows, total) = rows(range, &docs);
    Ok(UsageReport {
        tenant: tenant.to_owned(),
        window: range.window,
        from: format_rfc3339(range.from_ms),
        to: format_rfc3339(range.to_ms),
        complete_through: watermark::read(store).await.map(format_rfc3339),
        rows,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::parse;

    fn doc(hours: &[(u8, u64)]) -> DayRollup {
        let mut d = DayRollup::new();
        for (h, n) in hours {
            d.hours.insert(*h, Counters { requests: *n, ok: *n, ..Default::default() });
        }
        d
    }

    #[test]
    fn hourly_rows_are_clipped_to_the_range() {
        let r = parse(Some("2026-01-01T22:00:00Z"), Some("2026-01-02T02:00:00Z"), Some("hour")).unwrap();
        let day1 = crate::time::parse_rfc3339("2026-01-01").unwrap();
        let docs = vec![(day1, doc(&[(5, 100), (22, 1), (23, 2)])), (day1 + 86_400_000, doc(&[(0, 3), (2, 50)]))];
        let (rows, total) = rows(&r, &docs);
        let starts: Vec<_> = rows.iter().map(|r| r.start.as_str()).collect();
        assert_eq!(starts, ["2026-01-01T22:00:00Z", "2026-01-01T23:00:00Z", "2026-01-02T00:00:00Z"]);
        assert_eq!(total.requests, 6, "hour 05 and 02 of the next day are outside [from, to)");
    }

    #[test]
    fn daily_rows_sum_the_hours() {
        let r = parse(Some("2026-01-01"), Some("2026-01-03"), Some("day")).unwrap();
        let day1 = crate::time::parse_rfc3339("2026-01-01").unwrap();
        let docs = vec![(day1, doc(&[(5, 100), (22, 1)])), (day1 + 86_400_000, doc(&[]))];
        let (rows, total) = rows(&r, &docs);
        assert_eq!(rows.len(), 1, "an empty day has no row");
        assert_eq!((rows[0].start.as_str(), rows[0].counters.requests), ("2026-01-01T00:00:00Z", 101));
        assert_eq!(total.ok, 101);
    }
}
