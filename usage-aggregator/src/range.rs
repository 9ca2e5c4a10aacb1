//! The time range of a usage query: half-open `[from, to)`, both ends on a
//! window boundary (UTC), bounded in length so any answer stays small and fast.

use crate::time::parse_rfc3339;
use contracts::usage::Window;

/// Longest hourly range: a month and a day (744 rows).
pub const MAX_HOUR_SPAN_MS: u64 = 31 * 86_400_000;
/// Longest daily range: a leap year.
pub const MAX_DAY_SPAN_MS: u64 = 366 * 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from_ms: u64,
    pub to_ms: u64,
    pub window: Window,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("parameter `{0}` is required")]
    Missing(&'static str),
    #[error("parameter `{param}`: `{value}` is not an RFC 3339 date-time (e.g. 2026-01-31T00:00:00Z) or date")]
    Malformed { param: &'static str, value: String },
    #[error("parameter `window`: `{0}` is not one of hour, day")]
    Window(String),
    #[error("parameter `{param}`: `{value}` is not on a {window} boundary (UTC)")]
    Unaligned { param: &'static str, value: String, window: &'static str },
    #[error("parameter `to` must be after `from` (the range is [from, to))")]
    Inverted,
    #[error("parameter `to`: the range spans {days} days; at most {max_days} days per {window} query")]
    TooLong { days: u64, max_days: u64, window: &'static str },
}

impl RangeError {
    /// The query parameter at fault.
    pub fn param(&self) -> &'static str {
        match self {
            Self::Missing(p) | Self::Malformed { param: p, .. } | Self::Unaligned { param: p, .. } => p,
            Self::Window(_) => "window",
            Self::Inverted | Self::TooLong { .. } => "to",
        }
    }
}

/// Validates `from`, `to` and `window` (default `hour`) as given in the query.
pub fn parse(from: Option<&str>, to: Option<&str>, window: Option<&str>) -> Result<Range, RangeError> {
    let window = match window {
        None => Window::Hour,
        Some(w) => Window::from_name(w).ok_or_else(|| RangeError::Window(w.to_owned()))?,
    };
    let instant = |param: &'static str, v: Option<&str>| -> Result<u64, RangeError> {
        let v = v.ok_or(RangeError::Missing(param))?;
        let ms = parse_rfc3339(v).ok_or_else(|| RangeError::Malformed { param, value: v.to_owned() })?;
        if !ms.is_multiple_of(window.millis()) {
            return Err(RangeError::Unaligned { param, value: v.to_owned(), window: window.name() });
        }
        Ok(ms)
    };
    let (from_ms, to_ms) = (instant("from", from)?, instant("to", to)?);
    if to_ms <= from_ms {
        return Err(RangeError::Inverted);
    }
    let max = match window {
        Window::Hour => MAX_HOUR_SPAN_MS,
        Window::Day => MAX_DAY_SPAN_MS,
    };
    if to_ms - from_ms > max {
        return Err(RangeError::TooLong {
            days: (to_ms - from_ms).div_ceil(86_400_000),
            max_days: max / 86_400_000,
            window: window.name(),
        });
    }
    Ok(Range { from_ms, to_ms, window })
}

impl Range {
    /// Start of every window in the range.
    pub fn windows(&self) -> impl Iterator<Item = u64> + '_ {
        (self.from_ms..self.to_ms).step_by(self.window.millis() as usize)
    }

    /// Start (unix ms) of every UTC day the range touches: the rollup documents to read.
    pub fn days(&self) -> impl Iterator<Item = u64> + '_ {
        let first = self.from_ms - self.from_ms % 86_400_000;
        (first..self.to_ms).step_by(86_400_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;

    #[test]
    fn accepts_aligned_half_open_ranges() {
        let r = parse(Some("2026-01-01"), Some("2026-01-31T00:00:00Z"), Some("hour")).unwrap();
        assert_eq!(r.windows().count(), 30 * 24);
        assert_eq!(r.days().count(), 30);
        let r = parse(Some("2026-01-01T05:00:00Z"), Some("2026-01-01T07:00:00Z"), None).unwrap();
        assert_eq!((r.window, r.windows().count(), r.days().count()), (Window::Hour, 2, 1));
        let r = parse(Some("2025-01-01"), Some("2026-01-01"), Some("day")).unwrap();
        assert_eq!(r.windows().count(), 365);
        assert_eq!(r.to_ms - r.from_ms, 365 * DAY);
    }

    #[test]
    fn refuses_bad_ranges_naming_the_parameter() {
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, &'a str);
        let cases: [Case; 9] = [
            (None, Some("2026-01-02"), None, "from"),
            (Some("2026-01-01"), None, None, "to"),
            (Some("Jan 1"), Some("2026-01-02"), None, "from"),
            (Some("2026-01-01"), Some("2026-01-02T00:00:00"), None, "to"),
            (Some("2026-01-01"), Some("2026-01-02"), Some("week"), "window"),
            (Some("2026-01-01T00:30:00Z"), Some("2026-01-02"), None, "from"),
            (Some("2026-01-01T01:00:00Z"), Some("2026-01-02"), Some("day"), "from"),
            (Some("2026-01-02"), Some("2026-01-01"), None, "to"),
            (Some("2026-01-01"), Some("2026-03-01"), Some("hour"), "to"),
        ];
        for (from, to, window, param) in cases {
            let e = parse(from, to, window).unwrap_err();
            assert_eq!(e.param(), param, "{from:?} {to:?} {window:?}: {e}");
            assert!(e.to_string().contains(param), "{e}");
        }
        assert_eq!(parse(Some("2026-01-01"), Some("2026-01-01"), None), Err(RangeError::Inverted));
        assert!(matches!(
            parse(Some("2024-01-01"), Some("2026-01-01"), Some("day")),
            Err(RangeError::TooLong { max_days: 366, .. })
        ));
    }
}
