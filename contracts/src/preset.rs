//! A tenant's named operations: `thumb = w=320&h=320&fit=cover&gravity=smart`,
//! stored with the tenant in IDENTITY, applied by `preset=thumb`.
//!
//! A preset is checked when it is stored (it must be a whole, valid
//! operation), so a request never meets a broken one; the parameters a
//! request gives beside `preset` override the preset's.

use crate::op::{ParamError, ResizeOp};
use crate::usage::record::valid_id;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The query parameter that names a preset.
pub const PARAM: &str = "preset";

/// How many presets one tenant may keep: they travel with every verification.
pub const MAX_PRESETS: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presets {
    /// Name → the operation in canonical form.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub named: BTreeMap<String, String>,
    /// Requests must name a preset and add nothing to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub only: bool,
}

fn err(param: &'static str, reason: impl Into<String>) -> ParamError {
    ParamError { param, reason: reason.into() }
}

impl Presets {
    pub fn is_empty(&self) -> bool {
        self.named.is_empty() && !self.only
    }

    /// Checks a preset before it is stored; returns its canonical form.
    pub fn check(name: &str, query: &str) -> Result<String, ParamError> {
        if !valid_id(name) {
            return Err(err(PARAM, format!("`{name}` is not a valid preset name (1-64 of A-Z a-z 0-9 _ -)")));
        }
        if query.split('&').any(|p| p.split('=').next() == Some(PARAM)) {
            return Err(err(PARAM, "a preset cannot name another preset"));
        }
        Ok(ResizeOp::parse_canonical(query)?.to_string())
    }

    /// The operation a request asks for: its own parameters, or the preset it
    /// names with its own parameters over the preset's.
    pub fn resolve<'a>(&'a self, pairs: &[(&'a str, &'a str)]) -> Result<ResizeOp, ParamError> {
        let mut named = pairs.iter().filter(|(k, _)| *k == PARAM).map(|(_, v)| *v);
        let name = named.next();
        if named.next().is_some() {
            return Err(err("query", format!("parameter `{PARAM}` given more than once")));
        }
        let own: Vec<(&str, &str)> = pairs.iter().copied().filter(|(k, _)| *k != PARAM).collect();
        if self.only && (name.is_none() || !own.is_empty()) {
            return Err(err("query", format!("this tenant accepts `{PARAM}=<name>` and nothing else")));
        }
        let Some(name) = name else {
            return ResizeOp::from_pairs(own);
        };
        let preset = self.named.get(name).ok_or_else(|| err(PARAM, format!("this tenant has no preset `{name}`")))?;
        let given = |key: &str| {
            own.iter().any(|(k, _)| {
                *k == key
                    || (key == "quality" && *k == "q")
                    // A crop's place is one setting, however it is given.
                    || (matches!(key, "gravity" | "fx" | "fy") && matches!(*k, "gravity" | "fx" | "fy"))
            })
        };
        let mut merged: Vec<(&str, &str)> = preset
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .filter(|(k, _)| !given(k))
            .collect();
        merged.extend(own);
        ResizeOp::from_pairs(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Fit, Gravity, ImageFormat};

    fn presets(only: bool) -> Presets {
        let mut named = BTreeMap::new();
        named.insert(
            "thumb".to_owned(),
            Presets::check("thumb", "w=320&h=320&fit=cover&gravity=smart&format=auto").unwrap(),
        );
        named.insert("small".to_owned(), Presets::check("small", "w=100&q=60").unwrap());
        Presets { named, only }
    }

    #[test]
    fn presets_are_checked_and_stored_canonical() {
        assert_eq!(Presets::check("small", "q=60&w=100").unwrap(), "w=100&fit=inside&quality=60");
        assert_eq!(Presets::check("x", "w=0").unwrap_err().param, "w");
        assert_eq!(Presets::check("x", "fit=cover&w=1").unwrap_err().param, "h");
        assert_eq!(Presets::check("x", "w=1&preset=y").unwrap_err().param, PARAM);
        assert_eq!(Presets::check("bad name", "w=1").unwrap_err().param, PARAM);
        assert_eq!(Presets::check("", "w=1").unwrap_err().param, PARAM);
    }

    #[test]
    fn a_preset_applies_and_the_request_overrides_it() {
        let p = presets(false);
        let op = p.resolve(&[("preset", "thumb")]).unwrap();
        assert_eq!((op.width, op.height, op.fit, op.gravity), (Some(320), Some(320), Fit::Cover, Gravity::Smart));
        assert!(op.auto_format);
        let op = p.resolve(&[("preset", "thumb"), ("w", "200"), ("format", "png")]).unwrap();
        assert_eq!(
            (op.width, op.height, op.format, op.auto_format),
            (Some(200), Some(320), Some(ImageFormat::Png), false)
        );
        let op = p.resolve(&[("fx", "0.1"), ("fy", "0.9"), ("preset", "thumb")]).unwrap();
        assert_eq!(op.gravity, Gravity::Focal { x: 1000, y: 9000 });
        let op = p.resolve(&[("preset", "small"), ("q", "90")]).unwrap();
        assert_eq!(op.quality, 90, "`q` overrides the preset's `quality`");
        // Without a preset: the request's own parameters, as always.
        assert_eq!(p.resolve(&[("w", "7")]).unwrap().width, Some(7));
    }

    #[test]
    fn unknown_duplicate_and_forbidden_uses_are_refused() {
        let p = presets(false);
        assert_eq!(p.resolve(&[("preset", "nope")]).unwrap_err().param, PARAM);
        assert_eq!(p.resolve(&[("preset", "thumb"), ("preset", "small")]).unwrap_err().param, "query");
        assert_eq!(p.resolve(&[("preset", "small"), ("h", "0")]).unwrap_err().param, "h");
        assert_eq!(Presets::default().resolve(&[("preset", "thumb")]).unwrap_err().param, PARAM);
        let only = presets(true);
        assert!(only.resolve(&[("preset", "thumb")]).is_ok());
        assert_eq!(only.resolve(&[("preset", "thumb"), ("w", "10")]).unwrap_err().param, "query");
        assert_eq!(only.resolve(&[("w", "10")]).unwrap_err().param, "query");
    }
}
