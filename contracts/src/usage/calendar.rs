//! UTC calendar days: rollup documents and archive objects are named by the
//! day (`YYYY-MM-DD`), and monthly quotas sum the days of a month, so every
//! component names days the same way.

use super::rollup::MS_PER_DAY;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DD` of the UTC day containing `ms`.
pub fn day_name(ms: u64) -> String {
    let (y, m, d) = civil_from_days(ms as i64 / MS_PER_DAY as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM` of the UTC month containing `ms` (the prefix of its days' names).
pub fn month_name(ms: u64) -> String {
    day_name(ms)[..7].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_and_month_names() {
        assert_eq!(day_name(0), "1970-01-01");
        let ms = days_from_civil(2026, 11, 25) as u64 * MS_PER_DAY + 1;
        assert_eq!(day_name(ms), "2026-11-25");
        assert_eq!(month_name(ms), "2026-11");
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }
}
