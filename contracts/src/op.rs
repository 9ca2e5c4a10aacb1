//! The resize operation a client asks for, parsed once at the edge and carried
//! to the worker in canonical form.

use crate::format::ImageFormat;
use std::fmt;

/// Largest accepted `w` or `h`.
pub const MAX_DIMENSION: u32 = 8192;
/// Quality used when the client gives none (libvips' and imgproxy's default).
pub const DEFAULT_QUALITY: u8 = 80;
/// AVIF encoder speed when the client gives none (0 slowest … 9 fastest),
/// chosen by measurement (the resize benchmark's avif-320, fit 320 at q80):
/// libvips' default, 5, costs 4.5 × the CPU of 6 for files 1.7 % smaller and
/// SSIM 0.0014 higher; 8 halves the cost again for another 0.0013 of SSIM.
pub const DEFAULT_AVIF_SPEED: u8 = 6;
/// libaom's fastest speed.
pub const MAX_AVIF_SPEED: u8 = 9;

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

/// Which part of the source `cover` keeps when it crops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Gravity {
    #[default]
    Center,
    North,
    South,
    East,
    West,
    NorthEast,
    NorthWest,
    SouthEast,
    SouthWest,
    /// The part of the image that draws the eye (detail, colour, skin), found
    /// by the worker in the decoded pixels; `placement` is the centre's.
    Smart,
    /// The crop is centred on this point (as near as the crop allows), in
    /// ten-thousandths of the upright image's width and height: integers, so
    /// equal operations keep equal canonical forms (and ETags).
    Focal {
        x: u16,
        y: u16,
    },
}

/// A focal coordinate's whole range: 0 is the left (top) edge, this the right (bottom).
pub const FOCAL_SCALE: u16 = 10_000;

impl Gravity {
    const NAMED: [(&'static str, Gravity); 10] = [
        ("center", Self::Center),
        ("n", Self::North),
        ("s", Self::South),
        ("e", Self::East),
        ("w", Self::West),
        ("ne", Self::NorthEast),
        ("nw", Self::NorthWest),
        ("se", Self::SouthEast),
        ("sw", Self::SouthWest),
        ("smart", Self::Smart),
    ];

    fn from_name(s: &str) -> Option<Self> {
        Self::NAMED.iter().find(|(n, _)| *n == s).map(|(_, g)| *g)
    }

    fn name(self) -> Option<&'static str> {
        Self::NAMED.iter().find(|(_, g)| *g == self).map(|(n, _)| *n)
    }

    /// Where the crop window sits along each axis, as a fraction of the slack
    /// (0: flush with the left/top edge, 1: with the right/bottom), for a crop
    /// of `crop` out of `whole` (width, height).
    pub fn placement(self, whole: (f64, f64), crop: (f64, f64)) -> (f64, f64) {
        let centred_on = |point: u16, whole: f64, crop: f64| {
            let slack = whole - crop;
            if slack <= 0.0 {
                return 0.5;
            }
            let centre = whole * f64::from(point) / f64::from(FOCAL_SCALE);
            ((centre - crop / 2.0) / slack).clamp(0.0, 1.0)
        };
        match self {
            Self::Center | Self::Smart => (0.5, 0.5),
            Self::North => (0.5, 0.0),
            Self::South => (0.5, 1.0),
            Self::East => (1.0, 0.5),
            Self::West => (0.0, 0.5),
            Self::NorthEast => (1.0, 0.0),
            Self::NorthWest => (0.0, 0.0),
            Self::SouthEast => (1.0, 1.0),
            Self::SouthWest => (0.0, 1.0),
            Self::Focal { x, y } => (centred_on(x, whole.0, crop.0), centred_on(y, whole.1, crop.1)),
        }
    }
}

/// Which frames of an animated input the answer keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Frames {
    /// Every frame, with its delay and the loop count, where the output
    /// format animates ([`ImageFormat::animates`]); the first frame otherwise.
    #[default]
    All,
    /// The first frame only, as a still image (as a still GIF is answered).
    First,
}

impl Frames {
    fn from_name(s: &str) -> Option<Self> {
        match s {
            "all" => Some(Self::All),
            "first" => Some(Self::First),
            _ => None,
        }
    }
}

/// What the edge knows of an input from its bytes alone, before any decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputTraits {
    pub format: ImageFormat,
    /// Whether it may have transparent pixels ([`ImageFormat::may_have_alpha`]).
    pub alpha: bool,
    /// Whether it holds more than one frame ([`ImageFormat::is_animated`]).
    pub animated: bool,
}

impl InputTraits {
    pub fn of(format: ImageFormat, bytes: &[u8]) -> Self {
        Self { format, alpha: format.may_have_alpha(bytes), animated: format.is_animated(bytes) }
    }
}

/// A validated resize request. `width`/`height` may be absent (one of them at
/// least is present); the worker derives the other from the aspect ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResizeOp {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Fit,
    /// What `cover` keeps; always [`Gravity::Center`] for the other fits.
    pub gravity: Gravity,
    /// `None`: the input's format (GIF input becomes PNG), unless [`ResizeOp::auto_format`].
    pub format: Option<ImageFormat>,
    /// `format=auto`: the edge picks the format from the client's `Accept`
    /// ([`ResizeOp::negotiate`]) before the job is queued, so a worker never sees it set.
    pub auto_format: bool,
    pub quality: u8,
    /// AVIF encoder speed (`speed`, 0–9); `None`: [`DEFAULT_AVIF_SPEED`].
    /// Refused with an output format other than AVIF, where it would do nothing.
    pub speed: Option<u8>,
    /// What becomes of an animation's frames.
    pub frames: Frames,
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

/// A focal coordinate: a decimal fraction within 0..=1.
fn parse_focal(param: &'static str, value: &str) -> Result<u16, ParamError> {
    let x: f64 = value.parse().map_err(|_| err(param, format!("`{value}` is not a number")))?;
    if !(0.0..=1.0).contains(&x) {
        return Err(err(param, format!("must be within 0..=1, got `{value}`")));
    }
    Ok((x * f64::from(FOCAL_SCALE)).round() as u16)
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
        let mut gravity = None;
        let mut speed = None;
        let mut frames = None;
        let (mut fx, mut fy) = (None, None);
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
                    .replace(match value {
                        "auto" => None,
                        _ => Some(ImageFormat::from_name(value).ok_or_else(|| {
                            err("format", format!("`{value}` is not one of auto, jpeg, png, webp, avif, gif"))
                        })?),
                    })
                    .is_some(),
                "gravity" => gravity
                    .replace(Gravity::from_name(value).ok_or_else(|| {
                        err("gravity", format!("`{value}` is not one of center, n, s, e, w, ne, nw, se, sw, smart"))
                    })?)
                    .is_some(),
                "frames" => frames
                    .replace(
                        Frames::from_name(value)
                            .ok_or_else(|| err("frames", format!("`{value}` is not one of all, first")))?,
                    )
                    .is_some(),
                "fx" => fx.replace(parse_focal("fx", value)?).is_some(),
                "fy" => fy.replace(parse_focal("fy", value)?).is_some(),
                "quality" | "q" => {
                    let q: i64 = value.parse().map_err(|_| err("quality", format!("`{value}` is not an integer")))?;
                    if !(1..=100).contains(&q) {
                        return Err(err("quality", format!("must be within 1..=100, got {q}")));
                    }
                    quality.replace(q as u8).is_some()
                }
                "speed" => {
                    let n: i64 = value.parse().map_err(|_| err("speed", format!("`{value}` is not an integer")))?;
                    if !(0..=i64::from(MAX_AVIF_SPEED)).contains(&n) {
                        return Err(err("speed", format!("must be within 0..={MAX_AVIF_SPEED}, got {n}")));
                    }
                    speed.replace(n as u8).is_some()
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
        // A focal point wins over a named gravity: it is the more precise of the two.
        let gravity = match (fx, fy) {
            (Some(x), Some(y)) => Some(Gravity::Focal { x, y }),
            (None, None) => gravity,
            (Some(_), None) => return Err(err("fy", "a focal point needs both `fx` and `fy`")),
            (None, Some(_)) => return Err(err("fx", "a focal point needs both `fx` and `fy`")),
        };
        if let Some(g) = gravity
            && fit != Fit::Cover
            && g != Gravity::Center
        {
            let param = if matches!(g, Gravity::Focal { .. }) { "fx" } else { "gravity" };
            return Err(err(param, format!("only `fit=cover` crops, and this request asks for `{}`", fit.name())));
        }
        if let (Some(_), Some(Some(f))) = (speed, format)
            && f != ImageFormat::Avif
        {
            return Err(err("speed", format!("only AVIF output has a speed, and this request asks for {}", f.name())));
        }
        Ok(Self {
            width,
            height,
            fit,
            gravity: gravity.unwrap_or_default(),
            auto_format: matches!(format, Some(None)),
            format: format.flatten(),
            quality: quality.unwrap_or(DEFAULT_QUALITY),
            speed,
            frames: frames.unwrap_or_default(),
        })
    }

    /// Resolves `format=auto` from the client's `Accept` header: AVIF, then
    /// WebP, where the client takes it, else the input's own format, with PNG
    /// for inputs that may carry alpha and have no format of their own to
    /// return (GIF, a WebP or AVIF with alpha), JPEG for an opaque WebP, AVIF
    /// or HEIC. An animation whose frames are kept becomes animated WebP where
    /// the client takes it, else animated GIF (no AVIF encoder here writes
    /// sequences). Returns whether the choice depended on `Accept` (the
    /// response then says `Vary: Accept`).
    pub fn negotiate(&mut self, accept: Option<&str>, input: InputTraits) -> bool {
        if !self.auto_format {
            return false;
        }
        self.auto_format = false;
        let accepts = |media: &str| accept.is_some_and(|a| accepts_media(a, media));
        let InputTraits { format: input, alpha, animated } = input;
        self.format = Some(if animated && self.frames == Frames::All {
            if accepts(ImageFormat::Webp.media_type()) { ImageFormat::Webp } else { ImageFormat::Gif }
        } else if accepts(ImageFormat::Avif.media_type()) {
            ImageFormat::Avif
        } else if accepts(ImageFormat::Webp.media_type()) {
            ImageFormat::Webp
        } else {
            match input {
                ImageFormat::Webp | ImageFormat::Avif | ImageFormat::Heif | ImageFormat::Gif if alpha => {
                    ImageFormat::Png
                }
                ImageFormat::Webp | ImageFormat::Avif => ImageFormat::Jpeg,
                other => self.output_format(other, false),
            }
        });
        true
    }

    /// Parses the canonical form written by [`fmt::Display`].
    pub fn parse_canonical(s: &str) -> Result<Self, ParamError> {
        Self::from_pairs(s.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, ""))))
    }

    /// The output format for an input of format `input`: an animation
    /// whose frames are kept stays in its own format.
    pub fn output_format(&self, input: ImageFormat, animated: bool) -> ImageFormat {
        self.format.unwrap_or_else(|| if self.keeps_frames(animated) { input } else { input.stand_in() })
    }

    /// Whether the answer to an input, `animated` or not, is an animation
    /// (given the output format it gets, [`ResizeOp::output_format`]).
    pub fn animates(&self, animated: bool, output: ImageFormat) -> bool {
        self.keeps_frames(animated) && output.animates()
    }

    fn keeps_frames(&self, animated: bool) -> bool {
        animated && self.frames == Frames::All
    }

    /// The AVIF encoder speed this operation asks for.
    pub fn avif_speed(&self) -> u8 {
        self.speed.unwrap_or(DEFAULT_AVIF_SPEED)
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
        match self.gravity {
            Gravity::Focal { x, y } => {
                let scale = f64::from(FOCAL_SCALE);
                write!(f, "&fx={}&fy={}", f64::from(x) / scale, f64::from(y) / scale)?;
            }
            g => {
                if let Some(name) = g.name().filter(|_| g != Gravity::Center) {
                    write!(f, "&gravity={name}")?;
                }
            }
        }
        if let Some(fmt) = self.format {
            write!(f, "&format={}", fmt.name())?;
        } else if self.auto_format {
            f.write_str("&format=auto")?;
        }
        write!(f, "&quality={}", self.quality)?;
        if let Some(speed) = self.speed {
            write!(f, "&speed={speed}")?;
        }
        if self.frames == Frames::First {
            f.write_str("&frames=first")?;
        }
        Ok(())
    }
}

/// Whether an `Accept` value takes `media` explicitly, with a non-zero quality
/// (RFC 9110 §12.5.1). `*/*` and `image/*` do not count: browsers send them
/// with every image request, including those that cannot show WebP.
fn accepts_media(accept: &str, media: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let name = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .or_else(|| p.trim().strip_prefix("Q="))
                .and_then(|q| q.trim().parse::<f64>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        name.eq_ignore_ascii_case(media) && !refused
    })
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
        assert_eq!(parse("w=1&format=heic").unwrap_err().param, "format");
        assert_eq!(parse("w=1&format=auto&format=png").unwrap_err().param, "query");
        assert_eq!(parse("w=1&format=gif").unwrap().format, Some(ImageFormat::Gif));
        assert_eq!(parse("w=1&frames=some").unwrap_err().param, "frames");
        assert_eq!(parse("w=1&frames=").unwrap_err().param, "frames");
        assert_eq!(parse("w=1&frames=first&frames=all").unwrap_err().param, "query");
        assert_eq!(parse("w=1&quality=0").unwrap_err().param, "quality");
        assert_eq!(parse("w=1&quality=101").unwrap_err().param, "quality");
        assert_eq!(parse("w=1&w=2").unwrap_err().param, "query");
        assert_eq!(parse("w=1&width=2").unwrap_err().param, "query");
        assert_eq!(parse("w=4&fit=cover").unwrap_err().param, "h");
    }

    #[test]
    fn gravity_and_focal_points_parse_canonically_and_only_for_cover() {
        let op = parse("w=5&h=6&fit=cover&gravity=ne").unwrap();
        assert_eq!(op.gravity, Gravity::NorthEast);
        assert_eq!(op.to_string(), "w=5&h=6&fit=cover&gravity=ne&quality=80");
        assert_eq!(
            parse("w=5&h=6&fit=cover&gravity=smart").unwrap().to_string(),
            "w=5&h=6&fit=cover&gravity=smart&quality=80"
        );
        let op = parse("w=5&h=6&fit=cover&fx=0.25&fy=1&gravity=smart").unwrap();
        assert_eq!(op.gravity, Gravity::Focal { x: 2500, y: 10_000 }, "the focal point wins");
        assert_eq!(op.to_string(), "w=5&h=6&fit=cover&fx=0.25&fy=1&quality=80");
        assert_eq!(parse(&op.to_string()).unwrap(), op);
        assert_eq!(parse("w=5&h=6&fit=cover&gravity=center").unwrap().to_string(), "w=5&h=6&fit=cover&quality=80");
        for (q, param) in [
            ("w=5&h=6&fit=cover&gravity=top", "gravity"),
            ("w=5&h=6&fit=cover&gravity=", "gravity"),
            ("w=5&h=6&fit=cover&fx=1.5&fy=0", "fx"),
            ("w=5&h=6&fit=cover&fx=0.5&fy=-0.1", "fy"),
            ("w=5&h=6&fit=cover&fx=NaN&fy=0", "fx"),
            ("w=5&h=6&fit=cover&fx=0.5", "fy"),
            ("w=5&h=6&fit=cover&fy=0.5", "fx"),
            ("w=5&h=6&fit=contain&gravity=n", "gravity"),
            ("w=5&fx=0.5&fy=0.5", "fx"),
            ("w=5&h=6&fit=cover&gravity=n&gravity=s", "query"),
        ] {
            assert_eq!(parse(q).unwrap_err().param, param, "{q}");
        }
    }

    #[test]
    fn gravity_places_the_crop() {
        let (whole, crop) = ((400.0, 300.0), (300.0, 300.0));
        assert_eq!(Gravity::Center.placement(whole, crop), (0.5, 0.5));
        assert_eq!(Gravity::West.placement(whole, crop), (0.0, 0.5));
        assert_eq!(Gravity::SouthEast.placement(whole, crop), (1.0, 1.0));
        // A focal point at x = 300 of 400 centres a 300-wide crop at 150..450: clamped to the right edge.
        assert_eq!(Gravity::Focal { x: 7500, y: 0 }.placement(whole, crop), (1.0, 0.5));
        assert_eq!(Gravity::Focal { x: 5000, y: 5000 }.placement(whole, crop), (0.5, 0.5));
        // At x = 160 the crop is 10..310: a tenth of the 100 px slack.
        assert_eq!(Gravity::Focal { x: 4000, y: 0 }.placement(whole, crop), (0.1, 0.5));
    }

    #[test]
    fn auto_format_follows_accept() {
        let auto = parse("w=1&format=auto").unwrap();
        assert!(auto.auto_format && auto.format.is_none());
        assert_eq!(auto.to_string(), "w=1&fit=inside&format=auto&quality=80");
        let chosen = |accept: Option<&str>, format, alpha| {
            let mut op = auto;
            assert!(op.negotiate(accept, InputTraits { format, alpha, animated: false }));
            assert!(!op.auto_format);
            op.format.unwrap()
        };
        let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
        assert_eq!(chosen(Some(chrome), ImageFormat::Jpeg, false), ImageFormat::Avif);
        let safari15 = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5";
        assert_eq!(chosen(Some(safari15), ImageFormat::Jpeg, false), ImageFormat::Webp);
        assert_eq!(chosen(Some("image/avif;q=0,image/webp"), ImageFormat::Jpeg, false), ImageFormat::Webp);
        assert_eq!(chosen(None, ImageFormat::Avif, false), ImageFormat::Jpeg);
        assert_eq!(chosen(None, ImageFormat::Avif, true), ImageFormat::Png);
        assert_eq!(chosen(None, ImageFormat::Heif, false), ImageFormat::Jpeg);
        assert_eq!(chosen(Some("image/WebP;q=0.5"), ImageFormat::Png, true), ImageFormat::Webp);
        assert_eq!(chosen(Some("image/webp;q=0"), ImageFormat::Jpeg, false), ImageFormat::Jpeg);
        assert_eq!(chosen(Some("image/*,*/*"), ImageFormat::Png, false), ImageFormat::Png);
        assert_eq!(chosen(None, ImageFormat::Gif, true), ImageFormat::Png);
        assert_eq!(chosen(None, ImageFormat::Webp, true), ImageFormat::Png);
        assert_eq!(chosen(None, ImageFormat::Webp, false), ImageFormat::Jpeg);
        let mut fixed = parse("w=1&format=png").unwrap();
        let jpeg = InputTraits { format: ImageFormat::Jpeg, alpha: false, animated: false };
        assert!(!fixed.negotiate(Some(chrome), jpeg), "an explicit format does not vary");
        assert_eq!(fixed.format, Some(ImageFormat::Png));
        let mut none = parse("w=1").unwrap();
        assert!(!none.negotiate(Some(chrome), jpeg), "no format: today's behaviour");
        assert_eq!(none.format, None);
    }

    #[test]
    fn animations_negotiate_to_formats_that_keep_their_frames() {
        let gif = InputTraits { format: ImageFormat::Gif, alpha: true, animated: true };
        let chosen = |q: &str, accept: Option<&str>, input| {
            let mut op = parse(q).unwrap();
            assert!(op.negotiate(accept, input));
            op.format.unwrap()
        };
        let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
        assert_eq!(chosen("w=1&format=auto", Some(chrome), gif), ImageFormat::Webp, "no animated AVIF encoder");
        assert_eq!(chosen("w=1&format=auto", Some("image/*"), gif), ImageFormat::Gif);
        let webp = InputTraits { format: ImageFormat::Webp, ..gif };
        assert_eq!(chosen("w=1&format=auto", None, webp), ImageFormat::Gif, "the client takes no WebP");
        assert_eq!(chosen("w=1&format=auto&frames=first", Some(chrome), gif), ImageFormat::Avif);
        assert_eq!(chosen("w=1&format=auto&frames=first", None, gif), ImageFormat::Png);
    }

    #[test]
    fn frames_first_is_canonical_and_animations_keep_their_format() {
        let op = parse("w=5&frames=first").unwrap();
        assert_eq!(op.frames, Frames::First);
        assert_eq!(op.to_string(), "w=5&fit=inside&quality=80&frames=first");
        assert_eq!(parse(&op.to_string()).unwrap(), op);
        assert_eq!(parse("w=5&frames=all").unwrap().to_string(), "w=5&fit=inside&quality=80");
        let all = parse("w=5").unwrap();
        assert_eq!(all.output_format(ImageFormat::Gif, true), ImageFormat::Gif);
        assert!(all.animates(true, ImageFormat::Gif));
        assert_eq!(all.output_format(ImageFormat::Gif, false), ImageFormat::Png, "a still GIF: as before");
        assert_eq!(op.output_format(ImageFormat::Gif, true), ImageFormat::Png, "frames=first: as before");
        assert!(!op.animates(true, ImageFormat::Gif));
        let jpeg = parse("w=5&format=jpeg").unwrap();
        assert!(!jpeg.animates(true, ImageFormat::Jpeg), "a JPEG of an animation is its first frame");
        assert!(parse("w=5&format=webp").unwrap().animates(true, ImageFormat::Webp));
    }

    #[test]
    fn avif_speed_is_bounded_and_only_for_avif() {
        let op = parse("w=5&format=avif&speed=6").unwrap();
        assert_eq!((op.speed, op.avif_speed()), (Some(6), 6));
        assert_eq!(op.to_string(), "w=5&fit=inside&format=avif&quality=80&speed=6");
        assert_eq!(parse(&op.to_string()).unwrap(), op);
        assert_eq!(parse("w=5&format=avif").unwrap().avif_speed(), DEFAULT_AVIF_SPEED);
        assert_eq!(parse("w=5&format=auto&speed=9").unwrap().speed, Some(9), "auto may become AVIF");
        assert!(parse("w=5&speed=0").is_ok(), "an AVIF input stays AVIF");
        for q in [
            "w=5&format=avif&speed=10",
            "w=5&format=avif&speed=-1",
            "w=5&format=avif&speed=fast",
            "w=5&format=avif&speed=",
            "w=5&format=jpeg&speed=5",
            "w=5&format=webp&speed=5",
        ] {
            assert_eq!(parse(q).unwrap_err().param, "speed", "{q}");
        }
        assert_eq!(parse("w=5&format=avif&speed=5&speed=6").unwrap_err().param, "query");
        assert_eq!(parse("w=5&format=avif&quality=abc").unwrap_err().param, "quality");
    }

    #[test]
    fn output_format_follows_input_unless_asked() {
        let op = parse("w=1").unwrap();
        assert_eq!(op.output_format(ImageFormat::Webp, false), ImageFormat::Webp);
        assert_eq!(op.output_format(ImageFormat::Gif, false), ImageFormat::Png);
        assert_eq!(op.output_format(ImageFormat::Heif, false), ImageFormat::Jpeg);
        assert_eq!(op.output_format(ImageFormat::Avif, false), ImageFormat::Avif);
        let op = parse("w=1&format=jpeg").unwrap();
        assert_eq!(op.output_format(ImageFormat::Png, true), ImageFormat::Jpeg);
    }
}
