//! The duration syntax of every setting (`500ms`, `10s`, `2m`, bare seconds):
//! the operator writes these into the environment of the pods it runs, so the
//! format is shared by everything that reads or writes it.

use std::time::Duration;

pub fn parse(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a duration"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("`{s}`: unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}`: {e}"))
}

/// Formats a duration so that [`parse`] reads it back.
pub fn format(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse("2m").unwrap(), Duration::from_secs(120));
        assert!(parse("2h").is_err());
        assert!(parse("x").is_err());
        assert!(parse("-1s").is_err());
        for d in [Duration::from_millis(250), Duration::from_secs(7)] {
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
    }
}
