//! A tenant's `Cache-Control` for its images: checked when an admin sets it,
//! so the edge can send it as it is.

/// What answers carry when the tenant sets nothing: every request is a POST
/// with its own body, and a cache keyed on the URL alone would mix them up.
pub const DEFAULT: &str = "no-store";

/// Directives of RFC 9111 §5.2.2 and RFC 8246/5861 a response may carry;
/// `true` for those that take a number of seconds.
const DIRECTIVES: [(&str, bool); 12] = [
    ("max-age", true),
    ("s-maxage", true),
    ("stale-while-revalidate", true),
    ("stale-if-error", true),
    ("public", false),
    ("private", false),
    ("no-cache", false),
    ("no-store", false),
    ("no-transform", false),
    ("must-revalidate", false),
    ("proxy-revalidate", false),
    ("immutable", false),
];

/// Checks a `Cache-Control` value an admin gives; returns it normalised
/// (lower case, `", "` between directives).
pub fn check(value: &str) -> Result<String, String> {
    let mut out = Vec::new();
    for directive in value.split(',').map(str::trim) {
        let (name, arg) = match directive.split_once('=') {
            Some((n, a)) => (n.trim().to_ascii_lowercase(), Some(a.trim())),
            None => (directive.to_ascii_lowercase(), None),
        };
        let Some(&(_, takes_seconds)) = DIRECTIVES.iter().find(|(n, _)| *n == name) else {
            return Err(format!("`{directive}` is not a response Cache-Control directive"));
        };
        match (takes_seconds, arg) {
            (true, Some(a)) if !a.is_empty() && a.len() <= 10 && a.bytes().all(|b| b.is_ascii_digit()) => {
                out.push(format!("{name}={a}"));
            }
            (true, _) => return Err(format!("`{name}` takes a number of seconds")),
            (false, None) => out.push(name),
            (false, Some(_)) => return Err(format!("`{name}` takes no value here")),
        }
    }
    if out.is_empty() {
        return Err("no directives".to_owned());
    }
    Ok(out.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_directives_are_accepted_and_normalised() {
        assert_eq!(check("Public,MAX-AGE=86400 , immutable").unwrap(), "public, max-age=86400, immutable");
        assert_eq!(check("private, no-cache").unwrap(), "private, no-cache");
        assert_eq!(check(DEFAULT).unwrap(), DEFAULT);
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            " , ",
            "max-age",
            "max-age=",
            "max-age=-1",
            "max-age=1e3",
            "public=1",
            "only-if-cached",
            "max-stale=5",
            "x\r\ny: z",
        ] {
            assert!(check(bad).is_err(), "{bad:?} accepted");
        }
    }
}
