//! UTC calendar arithmetic and RFC 3339, without a date library: the usage API
//! needs only whole UTC days and hours. The day names of storage keys are a
//! contract and live in `contracts::usage::calendar`.

pub use contracts::usage::calendar::{civil_from_days, day_name, days_from_civil};

const MS_PER_DAY: i64 = contracts::usage::rollup::MS_PER_DAY as i64;

/// RFC 3339 UTC with second precision (`2026-01-31T13:00:00Z`).
pub fn format_rfc3339(ms: u64) -> String {
    let secs = ms as i64 / 1000;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn digits(s: &str, range: std::ops::Range<usize>) -> Option<u32> {
    let part = s.get(range)?;
    if part.bytes().all(|b| b.is_ascii_digit()) { part.parse().ok() } else { None }
}

/// Parses an RFC 3339 date-time (`Z` or `±hh:mm` offset, optional fraction) or
/// a bare date (midnight UTC) into unix milliseconds. Times before 1970 are refused.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (digits(s, 0..4)?, digits(s, 5..7)?, digits(s, 8..10)?);
    let month_days = [31, if leap(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&mo) || d == 0 || d > month_days[mo as usize - 1] {
        return None;
    }
    let day_ms = days_from_civil(y as i64, mo, d) * MS_PER_DAY;
    if b.len() == 10 {
        return u64::try_from(day_ms).ok();
    }
    if b.len() < 20 || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (digits(s, 11..13)?, digits(s, 14..16)?, digits(s, 17..19)?);
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac_ms = 0i64;
    if let Some(f) = rest.strip_prefix('.') {
        let n = f.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &f[..n.min(3)]);
        frac_ms = padded.parse().ok()?;
        rest = &f[n..];
    }
    let offset_min: i64 = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (digits(rest, 1..3)?, digits(rest, 4..6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = (oh * 60 + om) as i64;
            if *sign == b'+' { m } else { -m }
        }
        _ => return None,
    };
    let ms = day_ms + ((h * 3600 + mi * 60 + sec) as i64) * 1000 + frac_ms - offset_min * 60_000;
    u64::try_from(ms).ok()
}

fn leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_over_centuries() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for z in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn parses_and_formats_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-01-31"), Some(1_769_817_600_000));
        assert_eq!(parse_rfc3339("2026-01-31T13:00:00Z"), Some(1_769_864_400_000));
        assert_eq!(parse_rfc3339("2026-01-31T15:00:00+02:00"), Some(1_769_864_400_000));
        assert_eq!(parse_rfc3339("2026-01-31T13:00:00.250Z"), Some(1_769_864_400_250));
        assert_eq!(format_rfc3339(1_769_864_400_000), "2026-01-31T13:00:00Z");
        assert_eq!(day_name(1_769_864_400_000), "2026-01-31");
        assert_eq!(parse_rfc3339("2024-02-29"), Some(days_from_civil(2024, 2, 29) as u64 * 86_400_000));
        for bad in [
            "",
            "2026-02-29",
            "2026-13-01",
            "2026-01-32",
            "2026-1-01",
            "2026-01-31T24:00:00Z",
            "2026-01-31T13:00:00",
            "2026-01-31T13:00Z",
            "2026-01-31 13:00:00Z",
            "2026-01-31T13:00:00.Z",
            "2026-01-31T13:00:00+2:00",
            "1969-12-31T23:00:00Z",
            "yesterday",
            "+026-01-01",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
