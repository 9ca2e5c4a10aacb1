//! The resize operation a client asks for, parsed once at the edge and carried
//! to the worker in canonical form.

use crate::format::ImageFormat;
use std::fmt;

/// Largest accepted `w` or `h`.
pub const MAX_DIMENSION: u32 = 8192;
/// Quality used when the client gives none (libvips' and imgproxy's default).
pub const DEFAULT_QUALITY: u8 = 80;

/// How the image is placed in the `w`×`h` box (the vocabulary of sharp and CSS `object-fit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fit {
    /// Scale to fit inside the box, keep the aspect ratio, pad to exactly `w`×`h`.
    Contain,
    /// Scale to cover the box, keep the aspect ratio, crop the centre to exactly `w`×`h`.
    Cover,
    /// Stretch to exactly `w`×`h`, ignoring the aspect ratio.
    Fill,
    /// Scale to fit inside the box, keep the aspect ratio, no padding.
    #[default]
    Inside,
}

impl Fit {
    pub fn name(self) -> &'static str {
        match self {
            Self::Contain => "contain",
            Self::Cover => "cover",
            Self::Fill => "fill",
            Self::Inside => "inside",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        match s {
            "contain" => Some(Self::Contain),
            "cover" => Some(Self::Cover),
            "fill" => Some(Self::Fill),
            "inside" => Some(Self::Inside),
            _ => None,
        }
    }
}

/// A validated resize request. `width`/`height` may be absent (one of them at
/// least is present); the worker derives the other from the aspect ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResizeOp {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Fit,
    /// `None`: the input's format (GIF input becomes PNG).
    pub format: Option<ImageFormat>,
    pub quality: u8,
}

/// Why a query string was refused; `param` names the offending parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{param}`: {reason}")]
pub struct ParamError {
    pub param: &'static str,
    pub reason: String,
}

fn err(param: &'static str, reason: impl Into<String>) -> ParamError {
    ParamError { param, reason: reason.into() }
}

fn parse_dimension(param: &'static str, value: &str) -> Result<u32, ParamError> {
    let n: i64 = value.parse().map_err(|_| err(param, format!("`{value}` is not an integer")))?;
    if n <= 0 {
        return Err(err(param, format!("must be at least 1, got {n}")));
    }
    if n > i64::from(MAX_DIMENSION) {
        return Err(err(param, format!("must be at most {MAX_DIMENSION}, got {n}")));
    }
    Ok(n as u32)
}

impl ResizeOp {
    /// Parses the query string of `POST /v1/resize` (already percent-decoded pairs).
    /// Unknown parameters are refused so that typos do not silently do nothing.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, ParamError> {
        let mut width = None;
        let mut height = None;
        let mut fit = None;
        let mut format = None;
        let mut quality = None;
        for (key, value) in pairs {
            let slot_taken = match key {
                "w" => width.replace(parse_dimension("w", value)?).is_some(),
                "h" => height.replace(parse_dimension("h", value)?).is_some(),
                "fit" => fit
                    .replace(
                        Fit::from_name(value).ok_or_else(|| {
                            err("fit", format!("`{value}` is not one of contain, cover, fill, inside"))
                        })?,
                    )
                    .is_some(),
                "format" => format
                    .replace(
                        ImageFormat::from_name(value)
                            .ok_or_else(|| err("format", format!("`{value}` is not one of jpeg, png, webp")))?,
                    )
                    .is_some(),
                "quality" | "q" => {
                    let q: i64 = value.parse().map_err(|_| err("quality", format!("`{value}` is not an integer")))?;
                    if !(1..=100).contains(&q) {
                        return Err(err("quality", format!("must be within 1..=100, got {q}")));
                    }
                    quality.replace(q as u8).is_some()
                }
                other => {
                    return Err(ParamError { param: "query", reason: format!("unknown parameter `{other}`") });
                }
            };
            if slot_taken {
                return Err(ParamError { param: "query", reason: format!("parameter `{key}` given more than once") });
            }
        }
        if width.is_none() && height.is_none() {
            return Err(err("w", "at least one of `w` and `h` is required"));
        }
        let fit = fit.unwrap_or_default();
        if fit != Fit::Inside && (width.is_none() || height.is_none()) {
            return Err(err(
                if width.is_none() { "w" } else { "h" },
                format!("fit `{}` needs both `w` and `h`", fit.name()),
            ));
        }
        Ok(Self { width, height, fit, format, quality: quality.unwrap_or(DEFAULT_QUALITY) })
    }

    /// Parses the canonical form written by [`fmt::Display`].
    pub fn parse_canonical(s: &str) -> Result<Self, ParamError> {
        Self::from_pairs(s.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, ""))))
    }

    /// The output format for a given input format.
    pub fn output_format(&self, input: ImageFormat) -> ImageFormat {
        match self.format {
            Some(f) => f,
            None if input.is_encodable() => input,
            None => ImageFormat::Png,
        }
    }
}

/// Canonical form: fixed parameter order, so equal operations give equal strings (and ETags).
impl fmt::Display for ResizeOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(w) = self.width {
            write!(f, "w={w}")?;
            sep = "&";
        }
        if let Some(h) = self.height {
            write!(f, "{sep}h={h}")?;
        }
        write!(f, "&fit={}", self.fit.name())?;
        if let Some(fmt) = self.format {
            write!(f, "&format={}", fmt.name())?;
        }
        write!(f, "&quality={}", self.quality)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<ResizeOp, ParamError> {
        ResizeOp::parse_canonical(q)
    }

    #[test]
    fn defaults_and_canonical_round_trip() {
        let op = parse("h=200&w=320").unwrap();
        assert_eq!(op.width, Some(320));
        assert_eq!(op.height, Some(200));
        assert_eq!(op.fit, Fit::Inside);
        assert_eq!(op.quality, DEFAULT_QUALITY);
        assert_eq!(op.to_string(), "w=320&h=200&fit=inside&quality=80");
        for q in ["w=1", "h=9&fit=inside", "w=5&h=6&fit=cover&format=webp&quality=40"] {
            let op = parse(q).unwrap();
            assert_eq!(parse(&op.to_string()).unwrap(), op, "{q}");
        }
    }

    #[test]
    fn refuses_bad_dimensions() {
        for (q, param) in [
            ("w=0", "w"),
            ("w=-5", "w"),
            ("w=abc", "w"),
            ("w=8193", "w"),
            ("h=99999999999999999999", "h"),
            ("w=", "w"),
            ("fit=cover", "w"),
        ] {
            assert_eq!(parse(q).unwrap_err().param, param, "{q}");
        }
        assert!(parse("w=8192&h=8192").is_ok());
    }

    #[test]
    fn refuses_unknown_values_and_duplicates() {
        assert_eq!(parse("w=1&fit=stretch").unwrap_err().param, "fit");
        assert_eq!(parse("w=1&format=tiff").unwrap_err().param, "format");
        assert_eq!(parse("w=1&format=gif").unwrap_err().param, "format");
        assert_eq!(parse("w=1&quality=0").unwrap_err().param, "quality");
        assert_eq!(parse("w=1&quality=101").unwrap_err().param, "quality");
        assert_eq!(parse("w=1&w=2").unwrap_err().param, "query");
        assert_eq!(parse("w=1&width=2").unwrap_err().param, "query");
        assert_eq!(parse("w=4&fit=cover").unwrap_err().param, "h");
    }

    #[test]
    fn output_format_follows_input_unless_asked() {
        let op = parse("w=1").unwrap();
        assert_eq!(op.output_format(ImageFormat::Webp), ImageFormat::Webp);
        assert_eq!(op.output_format(ImageFormat::Gif), ImageFormat::Png);
        let op = parse("w=1&format=jpeg").unwrap();
        assert_eq!(op.output_format(ImageFormat::Png), ImageFormat::Jpeg);
    }
}
