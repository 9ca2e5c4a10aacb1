//! Decoding to 8-bit RGB or RGBA, reading only the header until the pixel limit is checked.
//!
//! JPEG goes through libjpeg-turbo with DCT-domain downscaling (shrink-on-load):
//! decoding a 24 MP photo at 1/8 scale touches 1/64 of the pixels and is where
//! most of the speed of the headline path comes from. AVIF and HEIC go
//! through libheif (`heif`), SVG through resvg (`svg`) at the size the output
//! needs, the others through the `image` crate, at full size.

use super::{ResizeError, color, heic_process, heif, svg::Svg};
use contracts::ImageFormat;
use image::{ImageDecoder, ImageReader, metadata::Orientation};
use std::io::Cursor;
use turbojpeg::{Colorspace, Decompressor, PixelFormat, ScalingFactor};

/// What the header says, before any pixel is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Stored size (before orientation).
    pub width: u32,
    pub height: u32,
    pub orientation: Orientation,
    /// Embedded ICC profile, if any and not sRGB ([`color::is_srgb`]).
    pub icc: Option<Vec<u8>>,
    /// Whether the image has alpha, where the header says so before
    /// decoding (AVIF and HEIC name an alpha image up front); `None` for the
    /// formats whose decoder tells.
    pub alpha: Option<bool>,
}

impl Header {
    /// Whether the stored pixels are transposed relative to the upright image.
    pub fn transposed(&self) -> bool {
        matches!(
            self.orientation,
            Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
        )
    }

    pub fn upright_size(&self) -> (u32, u32) {
        if self.transposed() { (self.height, self.width) } else { (self.width, self.height) }
    }
}

/// Decoded pixels, interleaved, 3 or 4 channels of 8 bits.
pub struct Pixels {
    pub buf: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub alpha: bool,
    /// Whether the embedded profile has already been applied (CMYK is converted while decoding).
    pub in_srgb: bool,
}

/// Progressive JPEGs with thousands of scans are a known CPU bomb; real encoders write ≤ 20.
pub const MAX_JPEG_SCANS: u32 = 500;

fn jpeg_error(e: turbojpeg::Error) -> ResizeError {
    ResizeError::Corrupt(e.to_string())
}

/// Reads the header of `input`, which is known to be `format`.
pub fn header(jpeg: &mut Decompressor, input: &[u8], format: ImageFormat) -> Result<Header, ResizeError> {
    if format == ImageFormat::Jpeg {
        let h = jpeg.read_header(input).map_err(jpeg_error)?;
        let orientation = jpeg_exif(input).and_then(Orientation::from_exif_chunk).unwrap_or(Orientation::NoTransforms);
        let icc = jpeg_icc(input).filter(|p| !color::is_srgb(p));
        return Ok(Header { width: h.width as u32, height: h.height as u32, orientation, icc, alpha: None });
    }
    if matches!(format, ImageFormat::Avif | ImageFormat::Heif) {
        // libheif applies the container's rotation and mirroring itself (they
        // take precedence over any EXIF orientation): its size is the upright one.
        let info = heif::info(input)?;
        let icc = info.icc.filter(|p| !color::is_srgb(p));
        let (width, height, alpha) = (info.width, info.height, Some(info.alpha));
        return Ok(Header { width, height, orientation: Orientation::NoTransforms, icc, alpha });
    }
    if format == ImageFormat::Svg {
        let (width, height) = Svg::parse(input)?.size();
        return Ok(Header { width, height, orientation: Orientation::NoTransforms, icc: None, alpha: Some(true) });
    }
    let mut decoder = image_decoder(input, format)?;
    let (width, height) = decoder.dimensions();
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let icc = decoder.icc_profile().ok().flatten().filter(|p| !color::is_srgb(p));
    Ok(Header { width, height, orientation, icc, alpha: None })
}

fn image_decoder(input: &[u8], format: ImageFormat) -> Result<impl ImageDecoder + '_, ResizeError> {
    let f = match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Webp => image::ImageFormat::WebP,
        ImageFormat::Gif => image::ImageFormat::Gif,
        ImageFormat::Bmp => image::ImageFormat::Bmp,
        ImageFormat::Tiff => image::ImageFormat::Tiff,
        ImageFormat::Avif | ImageFormat::Heif | ImageFormat::Svg => {
            return Err(ResizeError::Internal(format!("{} has a decoder of its own", format.name())));
        }
    };
    let mut reader = ImageReader::with_format(Cursor::new(input), f);
    // The caller enforces the pixel limit from the header; this bounds what
    // the decoder itself may allocate on top (e.g. for malformed chunk sizes).
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(1 << 30);
    reader.limits(limits);
    Ok(reader.into_decoder()?)
}

/// The metadata segments before the first scan, as (marker, payload).
fn jpeg_segments(input: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut i = 2; // after SOI
    std::iter::from_fn(move || {
        if i + 4 > input.len() || input[i] != 0xFF {
            return None;
        }
        let marker = input[i + 1];
        if marker == 0xDA || marker == 0xD9 {
            return None; // start of scan: metadata segments come before it
        }
        let len = u16::from_be_bytes([input[i + 2], input[i + 3]]) as usize;
        let body = input.get(i + 4..(i + 2 + len).max(i + 4))?;
        i += 2 + len;
        Some((marker, body))
    })
}

/// The TIFF payload of the first APP1 `Exif` segment, if any.
fn jpeg_exif(input: &[u8]) -> Option<&[u8]> {
    jpeg_segments(input).find(|(m, body)| *m == 0xE1 && body.starts_with(b"Exif\0\0")).map(|(_, body)| &body[6..])
}

/// The ICC profile from the APP2 `ICC_PROFILE` segments (split into numbered chunks), if complete.
fn jpeg_icc(input: &[u8]) -> Option<Vec<u8>> {
    const TAG: &[u8] = b"ICC_PROFILE\0";
    let mut chunks: Vec<(u8, &[u8])> = jpeg_segments(input)
        .filter(|(m, body)| *m == 0xE2 && body.len() > TAG.len() + 2 && body.starts_with(TAG))
        .map(|(_, body)| (body[TAG.len()], &body[TAG.len() + 2..]))
        .collect();
    let total = input.len(); // chunk counts are bytes; a bound, not a size
    if chunks.is_empty() || chunks.len() > total {
        return None;
    }
    chunks.sort_by_key(|(seq, _)| *seq);
    // Sequence numbers run 1..=n without gaps; anything else is a damaged profile.
    if chunks.iter().enumerate().any(|(i, (seq, _))| *seq as usize != i + 1) {
        return None;
    }
    Some(chunks.into_iter().flat_map(|(_, c)| c.iter().copied()).collect())
}

/// Decodes `input`, downscaling JPEGs in the DCT domain no further than
/// [`LANCZOS_HEADROOM`] × `min_scale` (output size / stored size).
pub fn decode(
    jpeg: &mut Decompressor,
    input: &[u8],
    format: ImageFormat,
    header: &Header,
    min_scale: f64,
) -> Result<Pixels, ResizeError> {
    if format == ImageFormat::Jpeg {
        return decode_jpeg(jpeg, input, header, min_scale);
    }
    if matches!(format, ImageFormat::Avif | ImageFormat::Heif) {
        // What `header` read from the container: it is not parsed again.
        let alpha = header.alpha.ok_or_else(|| ResizeError::Internal("HEIF header without its alpha".into()))?;
        let info = heif::Info { width: header.width, height: header.height, alpha, icc: None };
        let buf =
            if format == ImageFormat::Heif { heic_process::decode(input, &info)? } else { heif::decode(input, &info)? };
        return Ok(Pixels { buf, width: info.width, height: info.height, alpha: info.alpha, in_srgb: false });
    }
    if format == ImageFormat::Svg {
        // Rendered at the scale the output needs, not at its declared size.
        return Svg::parse(input)?.render(min_scale);
    }
    let decoder = image_decoder(input, format)?;
    let img = image::DynamicImage::from_decoder(decoder)?;
    let alpha = img.color().has_alpha();
    let (width, height) = (img.width(), img.height());
    let buf = if alpha { img.into_rgba8().into_raw() } else { img.into_rgb8().into_raw() };
    Ok(Pixels { buf, width, height, alpha, in_srgb: false })
}

/// How much larger than the output a DCT-scaled JPEG is decoded. DCT scaling
/// is a crude filter (at 1/8 it is the mean of each 8×8 block); stopping at
/// twice the output size and leaving the rest to Lanczos3 is libvips' rule,
/// and it matters: decoding to just the output size puts the result at SSIM
/// ≈ 0.957 from libvips' output on the corpus, twice the size at ≈ 0.980.
pub const LANCZOS_HEADROOM: f64 = 2.0;

/// The smallest of 1/8, 1/4, 1/2, 1 that keeps at least `min_scale`: libjpeg-turbo
/// has SIMD IDCTs for exactly these, the other n/8 factors are slower.
pub fn jpeg_scaling(min_scale: f64) -> ScalingFactor {
    [1, 2, 4]
        .into_iter()
        .map(|n| ScalingFactor::new(n, 8))
        .find(|f| f.num() as f64 / f.denom() as f64 >= min_scale)
        .unwrap_or(ScalingFactor::ONE)
}

fn decode_jpeg(jpeg: &mut Decompressor, input: &[u8], header: &Header, min_scale: f64) -> Result<Pixels, ResizeError> {
    let h = jpeg.read_header(input).map_err(jpeg_error)?;
    let factor = jpeg_scaling(LANCZOS_HEADROOM * min_scale);
    jpeg.set_scaling_factor(factor).map_err(jpeg_error)?;
    jpeg.set_scan_limit(MAX_JPEG_SCANS).map_err(jpeg_error)?;
    let (width, height) = (factor.scale(header.width as usize), factor.scale(header.height as usize));
    let cmyk = matches!(h.colorspace, Colorspace::CMYK | Colorspace::YCCK);
    let format = if cmyk { PixelFormat::CMYK } else { PixelFormat::RGB };
    let mut buf = vec![0u8; width * height * format.size()];
    jpeg.decompress(
        input,
        turbojpeg::Image { pixels: &mut buf[..], width, pitch: width * format.size(), height, format },
    )
    .map_err(jpeg_error)?;
    if cmyk {
        buf = color::cmyk_to_srgb(header.icc.as_deref(), &buf);
    }
    Ok(Pixels { buf, width: width as u32, height: height as u32, alpha: false, in_srgb: cmyk })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_never_goes_below_the_needed_scale() {
        assert_eq!(jpeg_scaling(0.05), ScalingFactor::new(1, 8));
        assert_eq!(jpeg_scaling(0.125), ScalingFactor::new(1, 8));
        assert_eq!(jpeg_scaling(0.13), ScalingFactor::new(1, 4));
        assert_eq!(jpeg_scaling(0.3), ScalingFactor::new(1, 2));
        assert_eq!(jpeg_scaling(0.51), ScalingFactor::ONE);
        assert_eq!(jpeg_scaling(3.0), ScalingFactor::ONE);
    }

    #[test]
    fn exif_segment_is_found_before_the_scan_only() {
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 1, 2];
        jpeg.extend([0xFF, 0xE1, 0, 12]);
        jpeg.extend(b"Exif\0\0MM\0*");
        jpeg.extend([0xFF, 0xDA, 0, 2]);
        assert_eq!(jpeg_exif(&jpeg), Some(&b"MM\0*"[..]));
        assert_eq!(jpeg_exif(&[0xFF, 0xD8, 0xFF, 0xDA, 0, 2]), None);
        // A segment length running past the end is not read out of bounds.
        assert_eq!(jpeg_exif(&[0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, b'E']), None);
    }

    #[test]
    fn icc_chunks_are_joined_in_order_and_gaps_refused() {
        let seg = |seq: u8, n: u8, data: &[u8]| {
            let mut body = b"ICC_PROFILE\0".to_vec();
            body.extend([seq, n]);
            body.extend(data);
            let mut s = vec![0xFF, 0xE2];
            s.extend(((body.len() + 2) as u16).to_be_bytes());
            s.extend(body);
            s
        };
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend(seg(2, 2, b"world"));
        jpeg.extend(seg(1, 2, b"hello "));
        jpeg.extend([0xFF, 0xDA, 0, 2]);
        assert_eq!(jpeg_icc(&jpeg).as_deref(), Some(&b"hello world"[..]));
        let mut gap = vec![0xFF, 0xD8];
        gap.extend(seg(2, 2, b"world"));
        assert_eq!(jpeg_icc(&gap), None);
        assert_eq!(jpeg_icc(&[0xFF, 0xD8, 0xFF, 0xDA, 0, 2]), None);
    }
}
