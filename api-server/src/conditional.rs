//! Conditional requests (RFC 9110 §13): the entity tag of a resize and the
//! `If-None-Match` test that answers a repeated request with 304 before any
//! job is queued.
//!
//! The tag is a function of what determines the output bytes, not of the
//! bytes themselves: the input's SHA-256, the effective operation in canonical
//! form (after `format=auto` is resolved) and [`OUTPUT_REVISION`]. So the edge
//! knows it as soon as the body is read, and a match costs no worker time.

use contracts::ResizeOp;
use sha2::{Digest, Sha256};

/// Raised whenever the worker's bytes for the same input and operation change
/// (a new encoder setting, a resampler fix): the tags of every earlier answer
/// then stop matching, as a strong validator requires.
pub const OUTPUT_REVISION: u32 = 1;

/// The strong entity tag (quoted) of the answer to `op` on an input whose
/// SHA-256 is `input_sha256`.
pub fn entity_tag(input_sha256: &[u8], op: &ResizeOp) -> String {
    let mut h = Sha256::new();
    h.update(input_sha256);
    h.update(op.to_string().as_bytes());
    h.update(OUTPUT_REVISION.to_be_bytes());
    format!("\"{}\"", contracts::staging::to_hex(&h.finalize()[..16]))
}

/// A parsed `If-None-Match`.
#[derive(Debug, PartialEq, Eq)]
pub enum IfNoneMatch {
    /// `*`: "only if there is no current representation". A resize always has
    /// one, so the condition is false, and for a POST that is 412 (§13.1.2).
    Any,
    /// The opaque tags listed, weak or strong (the comparison is weak).
    Tags(Vec<String>),
}

impl IfNoneMatch {
    /// Parses every `If-None-Match` field line of a request (`None`: no such
    /// field). A malformed list is refused rather than ignored: a client that
    /// believes it asked conditionally must not silently pay for a full answer.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Result<Option<Self>, String> {
        let mut tags = Vec::new();
        let mut any = false;
        let mut seen = false;
        for value in values {
            seen = true;
            let value = std::str::from_utf8(value).map_err(|_| "If-None-Match is not ASCII".to_owned())?;
            for member in value.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                if member == "*" {
                    any = true;
                    continue;
                }
                let opaque = member.strip_prefix("W/").unwrap_or(member);
                let inner = opaque
                    .strip_prefix('"')
                    .and_then(|o| o.strip_suffix('"'))
                    .filter(|inner| inner.bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80))
                    .ok_or_else(|| {
                        format!("`{member}` in If-None-Match is not an entity tag (\"...\" or W/\"...\")")
                    })?;
                tags.push(inner.to_owned());
            }
        }
        if !seen {
            return Ok(None);
        }
        if any {
            if !tags.is_empty() {
                return Err("If-None-Match gives `*` together with entity tags".to_owned());
            }
            return Ok(Some(Self::Any));
        }
        if tags.is_empty() {
            return Err("If-None-Match is empty".to_owned());
        }
        Ok(Some(Self::Tags(tags)))
    }

    /// Whether `etag` (quoted, as [`entity_tag`] gives it) is listed, by weak comparison.
    pub fn lists(&self, etag: &str) -> bool {
        let opaque = etag.trim_matches('"');
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|t| t == opaque),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Result<Option<IfNoneMatch>, String> {
        IfNoneMatch::parse([v.as_bytes()])
    }

    #[test]
    fn tags_follow_the_input_and_the_effective_operation() {
        let op = |q: &str| ResizeOp::parse_canonical(q).unwrap();
        let a = entity_tag(&[1; 32], &op("w=320"));
        assert_eq!(a, entity_tag(&[1; 32], &op("w=320&quality=80")), "the canonical form, not the query");
        assert_ne!(a, entity_tag(&[2; 32], &op("w=320")));
        assert_ne!(a, entity_tag(&[1; 32], &op("w=321")));
        assert_ne!(entity_tag(&[1; 32], &op("w=9&format=webp")), entity_tag(&[1; 32], &op("w=9&format=png")));
        assert!(a.starts_with('"') && a.ends_with('"') && a.len() == 34, "{a}");
    }

    #[test]
    fn if_none_match_lists_and_compares_weakly() {
        let inm = parse(r#" "abc" , W/"def""#).unwrap().unwrap();
        assert_eq!(inm, IfNoneMatch::Tags(vec!["abc".into(), "def".into()]));
        assert!(inm.lists("\"abc\"") && inm.lists("\"def\"") && !inm.lists("\"ab\""));
        assert_eq!(parse("*").unwrap(), Some(IfNoneMatch::Any));
        assert_eq!(IfNoneMatch::parse(std::iter::empty()).unwrap(), None);
        let two = IfNoneMatch::parse([&b"\"a\""[..], &b"\"b\""[..]]).unwrap().unwrap();
        assert!(two.lists("\"b\""), "every field line counts");
    }

    #[test]
    fn malformed_if_none_match_is_refused() {
        for bad in ["abc", "\"abc", "W/abc", "\"a\"b\"", "*, \"a\"", "", " , ", "w/\"a\"", "\"a b\""] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(IfNoneMatch::parse([&[0xff, b'"'][..]]).is_err());
    }
}
