//! Image formats known to the service.

use serde::{Deserialize, Serialize};

/// A format the service decodes; [`ImageFormat::is_encodable`] says which it also writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Jpeg,
    Png,
    Webp,
    Gif,
    Bmp,
    Tiff,
    Avif,
    /// HEIC (HEVC in HEIF, every iPhone photo since 2017); read only.
    /// Named `heic` everywhere, as its media type and file extension are.
    #[serde(rename = "heic")]
    Heif,
    /// SVG, rendered at the output size; read only, answered as PNG.
    Svg,
}

/// The formats read, for messages that name them.
pub const READABLE: &str = "JPEG, PNG, WebP, AVIF, HEIC, GIF, BMP, TIFF or SVG";

impl ImageFormat {
    pub const ALL: [ImageFormat; 9] =
        [Self::Jpeg, Self::Png, Self::Webp, Self::Gif, Self::Bmp, Self::Tiff, Self::Avif, Self::Heif, Self::Svg];

    pub fn media_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
            Self::Bmp => "image/bmp",
            Self::Tiff => "image/tiff",
            Self::Avif => "image/avif",
            Self::Heif => "image/heic",
            Self::Svg => "image/svg+xml",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Webp => "webp",
            Self::Gif => "gif",
            Self::Bmp => "bmp",
            Self::Tiff => "tiff",
            Self::Avif => "avif",
            Self::Heif => "heic",
            Self::Svg => "svg",
        }
    }

    /// Output formats. GIF is written when asked for (`format=gif`) and for
    /// animated GIFs, whose frames it keeps. BMP and TIFF are read (scanners,
    /// cameras, old archives) and answered as PNG; HEIC, which few browsers
    /// show, as JPEG ([`ImageFormat::stand_in`]).
    pub fn is_encodable(self) -> bool {
        !matches!(self, Self::Bmp | Self::Tiff | Self::Heif | Self::Svg)
    }

    /// What a still input of this format becomes when no output format is
    /// asked for: itself where that is a good answer; a still GIF becomes a
    /// PNG (a resized GIF's 256 colours band, PNG keeps every shade).
    pub fn stand_in(self) -> Self {
        match self {
            Self::Heif => Self::Jpeg,
            Self::Gif => Self::Png,
            f if f.is_encodable() => f,
            _ => Self::Png,
        }
    }

    /// Whether this output format keeps every frame of an animation.
    pub fn animates(self) -> bool {
        matches!(self, Self::Gif | Self::Webp)
    }

    /// Whether `bytes` of this format hold more than one frame, from the
    /// container alone ([`crate::animation`]); a malformed container is not
    /// animated here: the worker's decoder has the last word on it.
    pub fn is_animated(self, bytes: &[u8]) -> bool {
        let layout = match self {
            Self::Gif => crate::animation::gif(bytes),
            Self::Webp => crate::animation::webp(bytes),
            _ => return false,
        };
        layout.is_ok_and(|l| l.animated())
    }

    /// Parses an output format name as given in the `format` query parameter.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "jpeg" | "jpg" => Some(Self::Jpeg),
            "png" => Some(Self::Png),
            "webp" => Some(Self::Webp),
            "avif" => Some(Self::Avif),
            "gif" => Some(Self::Gif),
            _ => None,
        }
    }

    /// Parses a `Content-Type` value (parameters and case ignored).
    pub fn from_media_type(value: &str) -> Option<Self> {
        let essence = value.split(';').next().unwrap_or("").trim();
        let essence = essence.to_ascii_lowercase();
        match essence.as_str() {
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Some(Self::Jpeg),
            "image/png" => Some(Self::Png),
            "image/webp" => Some(Self::Webp),
            "image/gif" => Some(Self::Gif),
            "image/bmp" | "image/x-ms-bmp" | "image/x-bmp" => Some(Self::Bmp),
            "image/tiff" | "image/tiff-fx" => Some(Self::Tiff),
            "image/avif" => Some(Self::Avif),
            "image/heic" | "image/heif" | "image/heic-sequence" | "image/heif-sequence" => Some(Self::Heif),
            "image/svg+xml" => Some(Self::Svg),
            _ => None,
        }
    }

    /// Whether an image of this format, with these bytes, may have
    /// transparent pixels, from its header alone: PNG colour types with alpha
    /// or a `tRNS` chunk before the image data, WebP's alpha flags (extended
    /// and lossless headers), and every GIF (transparency is per frame).
    pub fn may_have_alpha(self, bytes: &[u8]) -> bool {
        match self {
            Self::Jpeg => false,
            Self::Gif | Self::Bmp | Self::Tiff | Self::Svg => true,
            // An alpha plane is an auxiliary image, named by its `auxC` URN in the `meta` box up front.
            Self::Avif | Self::Heif => {
                let meta = &bytes[..bytes.len().min(64 * 1024)];
                [&b"auxid:1"[..], b"auxiliary:alpha"].iter().any(|urn| meta.windows(urn.len()).any(|w| w == *urn))
            }
            Self::Png => {
                // IHDR's colour type: 4 grey + alpha, 6 RGBA.
                matches!(bytes.get(25), Some(4 | 6)) || png_has_trns(bytes)
            }
            Self::Webp => match bytes.get(12..16) {
                // VP8X flags: bit 4 says an ALPH chunk or alpha in the frames.
                Some(b"VP8X") => bytes.get(20).is_some_and(|flags| flags & 0x10 != 0),
                // VP8L: after the signature byte, 14 + 14 bits of size, then `alpha_is_used`.
                Some(b"VP8L") => bytes.get(24).is_some_and(|b| b & 0x10 != 0),
                _ => false,
            },
        }
    }

    /// Identifies a format from its leading bytes; the body, not the header, is the truth.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [0xFF, 0xD8, 0xFF, ..] => Some(Self::Jpeg),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Self::Png),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(Self::Webp),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Self::Gif),
            // Classic TIFF, either byte order (BigTIFF is not read).
            [b'I', b'I', 42, 0, ..] | [b'M', b'M', 0, 42, ..] => Some(Self::Tiff),
            // "BM" alone is two letters of text: the DIB header's size must be one Windows or OS/2 wrote.
            [b'B', b'M', _, _, _, _, _, _, _, _, _, _, _, _, 12 | 16 | 40 | 52 | 56 | 64 | 108 | 124, 0, 0, 0, ..] => {
                Some(Self::Bmp)
            }
            _ => isobmff_image(bytes).or_else(|| is_svg(bytes).then_some(Self::Svg)),
        }
    }
}

/// AVIF or HEIC from an ISO-BMFF `ftyp` box: the major brand, else the
/// compatible brands (`mif1` files name what they hold there).
fn isobmff_image(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.get(4..8) != Some(b"ftyp") {
        return None;
    }
    let size = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let ftyp = bytes.get(8..size.clamp(16, 4096).min(bytes.len()))?;
    // Major brand, minor version, then compatible brands.
    let brands = std::iter::once(ftyp.get(..4)?).chain(ftyp.get(8..).unwrap_or(&[]).chunks_exact(4));
    let mut found = None;
    for brand in brands {
        match brand {
            b"avif" | b"avis" => return Some(ImageFormat::Avif),
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" => found = found.or(Some(ImageFormat::Heif)),
            _ => {}
        }
    }
    found
}

/// Whether the text starts as an SVG document does: after an optional byte
/// order mark, white space, an XML declaration, comments and a doctype, the
/// first element is `<svg`. Gzipped SVG (svgz) is not read.
fn is_svg(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    let mut rest = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    loop {
        rest = rest.trim_ascii_start();
        let skip_to = |rest: &[u8], end: &[u8]| rest.windows(end.len()).position(|w| w == end).map(|at| at + end.len());
        let next = if rest.starts_with(b"<?") {
            skip_to(rest, b"?>")
        } else if rest.starts_with(b"<!--") {
            skip_to(rest, b"-->")
        } else if rest.starts_with(b"<!DOCTYPE") || rest.starts_with(b"<!doctype") {
            // An internal subset ends with `]>`; a doctype without one at its first `>`.
            let subset = rest.iter().position(|&b| b == b'[');
            let close = rest.iter().position(|&b| b == b'>');
            match (subset, close) {
                (Some(s), Some(c)) if s < c => skip_to(rest, b"]>"),
                (_, Some(c)) => Some(c + 1),
                _ => None,
            }
        } else {
            return rest.starts_with(b"<svg") && rest.get(4).is_some_and(|b| b.is_ascii_whitespace() || *b == b'>');
        };
        match next {
            Some(n) => rest = &rest[n..],
            None => return false,
        }
    }
}

/// Whether a `tRNS` chunk comes before the first `IDAT` (where the PNG specification puts it).
fn png_has_trns(bytes: &[u8]) -> bool {
    let mut at = 8;
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        match &head[4..8] {
            b"tRNS" => return true,
            b"IDAT" | b"IEND" => return false,
            _ => at = at.saturating_add(12).saturating_add(len),
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_each_format_and_rejects_others() {
        assert_eq!(ImageFormat::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ImageFormat::Jpeg));
        assert_eq!(ImageFormat::sniff(b"\x89PNG\r\n\x1a\nrest"), Some(ImageFormat::Png));
        assert_eq!(ImageFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageFormat::Webp));
        assert_eq!(ImageFormat::sniff(b"GIF89a..."), Some(ImageFormat::Gif));
        assert_eq!(ImageFormat::sniff(b"BM\0\0"), None);
        assert_eq!(ImageFormat::sniff(b"BM is not a bitmap, it is text"), None);
        assert_eq!(ImageFormat::sniff(b"BM\x46\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0"), Some(ImageFormat::Bmp));
        assert_eq!(ImageFormat::sniff(b"II*\0\x08\0\0\0"), Some(ImageFormat::Tiff));
        assert_eq!(ImageFormat::sniff(b"MM\0*\0\0\0\x08"), Some(ImageFormat::Tiff));
        assert_eq!(ImageFormat::sniff(b"II+\0"), None);
        assert_eq!(ImageFormat::sniff(b""), None);
        assert_eq!(ImageFormat::sniff(&[0xFF, 0xD8]), None);
    }

    #[test]
    fn sniffs_heif_brands_from_the_ftyp_box() {
        let ftyp = |major: &[u8], compatible: &[&[u8]]| {
            let mut b = ((16 + 4 * compatible.len()) as u32).to_be_bytes().to_vec();
            b.extend(b"ftyp");
            b.extend(major);
            b.extend([0; 4]);
            compatible.iter().for_each(|c| b.extend(*c));
            b.extend(b"\0\0\0\x08meta");
            b
        };
        assert_eq!(ImageFormat::sniff(&ftyp(b"avif", &[b"mif1"])), Some(ImageFormat::Avif));
        assert_eq!(ImageFormat::sniff(&ftyp(b"heic", &[b"mif1", b"heic"])), Some(ImageFormat::Heif));
        assert_eq!(ImageFormat::sniff(&ftyp(b"mif1", &[b"heic"])), Some(ImageFormat::Heif));
        assert_eq!(ImageFormat::sniff(&ftyp(b"mif1", &[b"miaf", b"avif"])), Some(ImageFormat::Avif));
        // An MP4 video and a QuickTime movie are ISO-BMFF too, and not images.
        assert_eq!(ImageFormat::sniff(&ftyp(b"isom", &[b"mp41"])), None);
        assert_eq!(ImageFormat::sniff(&ftyp(b"qt  ", &[])), None);
        assert_eq!(ImageFormat::sniff(b"\0\0\0\x18ftyp"), None, "truncated");
        // The brands end where the box says, not where the file does.
        let mut short = ftyp(b"mif1", &[]);
        short.extend(b"avif");
        assert_eq!(ImageFormat::sniff(&short), None);
        assert!(ImageFormat::Avif.may_have_alpha(b"....auxC....urn:mpeg:mpegB:cicp:systems:auxiliary:alpha"));
        assert!(ImageFormat::Heif.may_have_alpha(b"....auxC....urn:mpeg:hevc:2015:auxid:1"));
        assert!(!ImageFormat::Avif.may_have_alpha(&ftyp(b"avif", &[b"mif1"])));
    }

    #[test]
    fn alpha_is_read_from_the_headers() {
        // Signature, then IHDR: length 13, 9×7, depth 8, colour type, and a CRC (not checked).
        let png = |colour: u8, extra: &[u8]| {
            let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x09\0\0\0\x07\x08".to_vec();
            b.extend([colour, 0, 0, 0, 0, 0, 0, 0]);
            b.extend(extra);
            b.extend(b"\0\0\0\0IDAT");
            b
        };
        assert!(ImageFormat::Png.may_have_alpha(&png(6, b"")));
        assert!(ImageFormat::Png.may_have_alpha(&png(4, b"")));
        assert!(!ImageFormat::Png.may_have_alpha(&png(2, b"")));
        assert!(ImageFormat::Png.may_have_alpha(&png(3, b"\0\0\0\x01tRNS\0\0\0\0\0")), "palette with tRNS");
        assert!(!ImageFormat::Png.may_have_alpha(&png(3, b"\0\0\0\x03PLTE\0\0\0\0\0\0\0")));
        assert!(!ImageFormat::Png.may_have_alpha(b"\x89PNG"), "a truncated header has no alpha to keep");
        // Extended header with and without the alpha flag; lossless with `alpha_is_used`; lossy simple.
        assert!(ImageFormat::Webp.may_have_alpha(b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\x10"));
        assert!(!ImageFormat::Webp.may_have_alpha(b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\x08"));
        assert!(ImageFormat::Webp.may_have_alpha(b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f\x08\0\x1c\x10"));
        assert!(!ImageFormat::Webp.may_have_alpha(b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f\x08\0\x1c\x00"));
        assert!(!ImageFormat::Webp.may_have_alpha(b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0\0"));
        assert!(!ImageFormat::Jpeg.may_have_alpha(&[0xFF, 0xD8, 0xFF]));
        assert!(ImageFormat::Gif.may_have_alpha(b"GIF89a"));
    }

    #[test]
    fn serialized_names_are_the_names() {
        for f in ImageFormat::ALL {
            assert_eq!(serde_json::to_string(&f).unwrap(), format!("\"{}\"", f.name()));
        }
    }

    #[test]
    fn media_types_round_trip_and_ignore_parameters() {
        for f in ImageFormat::ALL {
            assert_eq!(ImageFormat::from_media_type(f.media_type()), Some(f));
        }
        assert_eq!(ImageFormat::from_media_type("Image/JPEG; q=1"), Some(ImageFormat::Jpeg));
        assert_eq!(ImageFormat::from_media_type("image/x-ms-bmp"), Some(ImageFormat::Bmp));
        assert_eq!(ImageFormat::from_media_type("image/heif"), Some(ImageFormat::Heif));
        assert_eq!(ImageFormat::from_media_type("image/jxl"), None);
        assert_eq!(ImageFormat::from_name("gif"), Some(ImageFormat::Gif));
        assert_eq!(ImageFormat::Gif.stand_in(), ImageFormat::Png, "a still GIF is answered as PNG");
        assert_eq!(ImageFormat::from_name("heic"), None, "HEIC is read, never written");
        assert_eq!(ImageFormat::from_name("avif"), Some(ImageFormat::Avif));
        assert_eq!(ImageFormat::Heif.stand_in(), ImageFormat::Jpeg);
        assert_eq!(ImageFormat::Tiff.stand_in(), ImageFormat::Png);
        assert_eq!(ImageFormat::Avif.stand_in(), ImageFormat::Avif);
        assert_eq!(ImageFormat::Svg.stand_in(), ImageFormat::Png);
        assert_eq!(ImageFormat::from_name("svg"), None, "SVG is read, never written");
    }

    #[test]
    fn animation_is_told_from_the_container() {
        use crate::animation::tests::{gif_bytes, webp_bytes};
        assert!(ImageFormat::Gif.is_animated(&gif_bytes(4, 4, &[(0, 0, 4, 4), (0, 0, 2, 2)], Some(0))));
        assert!(!ImageFormat::Gif.is_animated(&gif_bytes(4, 4, &[(0, 0, 4, 4)], None)));
        assert!(!ImageFormat::Gif.is_animated(b"GIF89a"), "truncated: the worker's decoder decides");
        assert!(ImageFormat::Webp.is_animated(&webp_bytes(8, 8, &[(0, 0, 8, 8), (0, 0, 8, 8)], 0)));
        assert!(!ImageFormat::Png.is_animated(b"\x89PNG\r\n\x1a\n"));
        assert!(ImageFormat::Gif.animates() && ImageFormat::Webp.animates() && !ImageFormat::Avif.animates());
    }

    #[test]
    fn svg_is_sniffed_past_its_prologue_and_nothing_else_is_svg() {
        for text in [
            &b"<svg xmlns='http://www.w3.org/2000/svg'/>"[..],
            b"\xEF\xBB\xBF  <?xml version=\"1.0\"?>\n<!-- by hand -->\n<svg>",
            b"<?xml version='1.0'?><!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x.dtd\"><svg\n width='2'>",
            b"<!DOCTYPE svg [ <!ENTITY ns 'http://www.w3.org/2000/svg'> ]><svg xmlns='&ns;'>",
        ] {
            assert_eq!(ImageFormat::sniff(text), Some(ImageFormat::Svg), "{}", String::from_utf8_lossy(text));
        }
        for text in [&b"<svgx>"[..], b"<html><svg>", b"<?xml version='1.0'?><rss>", b"<!-- <svg> -->", b"<?xml"] {
            assert_eq!(ImageFormat::sniff(text), None, "{}", String::from_utf8_lossy(text));
        }
        assert!(ImageFormat::Svg.may_have_alpha(b"<svg>") && !ImageFormat::Svg.is_encodable());
    }
}
