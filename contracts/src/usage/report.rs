//! The answer of `GET /v1/usage` (JSON, or CSV with the same columns).

use super::rollup::Counters;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    Hour,
    Day,
}

impl Window {
    pub fn millis(self) -> u64 {
        match self {
            Self::Hour => super::rollup::MS_PER_HOUR,
            Self::Day => super::rollup::MS_PER_DAY,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            _ => None,
        }
    }
}

/// One window with traffic (windows without any are left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    /// Start of the window, RFC 3339 UTC.
    pub start: String,
    #[serde(flatten)]
    pub counters: Counters,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    pub tenant: String,
    pub window: Window,
    /// The half-open range `[from, to)`, RFC 3339 UTC.
    pub from: String,
    pub to: String,
    /// Every request that arrived before this instant is counted; later windows may still grow.
    pub complete_through: Option<String>,
    pub rows: Vec<UsageRow>,
    pub total: Counters,
}

/// CSV column order: `start` then the counters in declaration order.
pub const CSV_COLUMNS: [&str; 12] = [
    "start",
    "requests",
    "ok",
    "client_errors",
    "server_errors",
    "bytes_in",
    "bytes_out",
    "pixels_in",
    "pixels_out",
    "cpu_us",
    "queue_us",
    "latency_us",
];

impl UsageRow {
    pub fn csv_line(&self) -> String {
        let c = &self.counters;
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            self.start,
            c.requests,
            c.ok,
            c.client_errors,
            c.server_errors,
            c.bytes_in,
            c.bytes_out,
            c.pixels_in,
            c.pixels_out,
            c.cpu_us,
            c.queue_us,
            c.latency_us
        )
    }
}

impl UsageReport {
    /// The rows as CSV; the watermark goes in a leading comment line so the data stay plain CSV.
    pub fn to_csv(&self) -> String {
        let mut out = format!(
            "# tenant={} window={} from={} to={} complete_through={}\n{}\n",
            self.tenant,
            self.window.name(),
            self.from,
            self.to,
            self.complete_through.as_deref().unwrap_or(""),
            CSV_COLUMNS.join(",")
        );
        for r in &self.rows {
            out.push_str(&r.csv_line());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_the_columns_and_one_line_per_row() {
        let row = UsageRow {
            start: "2026-01-01T00:00:00Z".into(),
            counters: Counters { requests: 3, ok: 2, client_errors: 1, ..Default::default() },
        };
        let r = UsageReport {
            tenant: "acme".into(),
            window: Window::Hour,
            from: "2026-01-01T00:00:00Z".into(),
            to: "2026-01-02T00:00:00Z".into(),
            complete_through: None,
            rows: vec![row.clone()],
            total: row.counters,
        };
        let csv = r.to_csv();
        let lines: Vec<_> = csv.lines().collect();
        assert!(lines[0].starts_with("# tenant=acme window=hour"));
        assert_eq!(lines[1].split(',').count(), CSV_COLUMNS.len());
        assert_eq!(lines[2], "2026-01-01T00:00:00Z,3,2,1,0,0,0,0,0,0,0,0");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["rows"][0]["requests"], 3, "counters are flattened into the row");
        assert_eq!(json["window"], "hour");
        assert_eq!(Window::from_name("week"), None);
    }
}
