//! JPEG to JPEG, WebP or AVIF without leaving YCbCr.
//!
//! A JPEG stores luma and (usually quarter-size) chroma planes. Decoding to
//! RGB upsamples the chroma and converts colour; encoding back converts again
//! and downsamples chroma again. Instead, libjpeg-turbo hands us the planes as
//! stored (after DCT scaling), each plane is resampled on its own to its output
//! size, and the encoder takes them as they are: two colour conversions and two
//! chroma resamplings fewer, and the chroma is resized at a quarter of the
//! pixels. Resampling is linear, so resizing Y, Cb and Cr separately equals
//! resizing RGB and converting, up to rounding; chroma is resampled once, with
//! Lanczos3, instead of the encoder's 2×2 box.
//!
//! Chroma is decoded at its own, smaller DCT scale ([`CHROMA_HEADROOM`]),
//! which TurboJPEG's YUV API cannot do: see `jpeg_planes.c`. Baseline scans
//! are entropy-decoded by `jpeg_huffman.c`, most of the time a thumbnail
//! takes.
//!
//! For grey or three-component YCbCr input without padding; everything else
//! takes the general path. An EXIF orientation is applied to each resized
//! plane, as the general path applies it to the resized RGB image: phone
//! photos, which mostly carry one, keep this path. So does a colour profile
//! other than sRGB (Display P3, Adobe RGB): only the small resized planes
//! become RGB, for the profile to be applied where the general path applies
//! it too, after resizing.

use super::{
    ResizeError, color,
    decode::{LANCZOS_HEADROOM, jpeg_scaling},
    encode::{Output, Pixels},
    geometry::Plan,
    heif, lanczos,
    rawjpeg::{Decoder, Layout},
    webp,
};
use contracts::ImageFormat;
use fast_image_resize::{self as fr, PixelType, ResizeAlg, ResizeOptions, images::Image, images::ImageRef};
use image::{DynamicImage, GrayImage, metadata::Orientation};
use turbojpeg::{Colorspace, Compressor, Decompressor, PixelFormat, Subsamp, YuvPlanesImage};

/// Plane buffers kept between jobs: the decoded planes are the largest
/// allocation of a conversion, and reusing them spares the page faults.
#[derive(Default)]
pub struct Buffers {
    decoded: Vec<u8>,
    y: Vec<u8>,
    cb: Vec<u8>,
    cr: Vec<u8>,
    rgb: Vec<u8>,
}

/// Output chroma is always 4:2:0, like the general path's encoder.
const OUT: (usize, usize) = (2, 2);

/// How much larger than the output chroma plane the chroma is decoded. Luma
/// keeps libvips' 2× ([`LANCZOS_HEADROOM`]); chroma, which the eye resolves
/// far less and which the output stores at half resolution anyway, only needs
/// to cover its output, as Pillow's `draft()` does for every channel. On the
/// corpus this decodes chroma at 1/4 where luma is at 1/2: 2×2 instead of 4×4
/// IDCTs and a quarter of the samples to resample.
pub const CHROMA_HEADROOM: f64 = 1.0;

/// The DCT size (n of n/8) for a needed scale, as [`jpeg_scaling`] picks it.
fn dct_size(scale: f64) -> u8 {
    let f = jpeg_scaling(scale);
    (8 * f.num() / f.denom()) as u8
}

/// One conversion on this path: what [`resize`] reads besides the codecs.
pub struct Request<'a> {
    pub input: &'a [u8],
    /// The geometry in stored orientation.
    pub plan: &'a Plan,
    /// Applied to the resized planes.
    pub orientation: Orientation,
    /// An RGB profile other than sRGB, applied to the resized result.
    pub icc: Option<&'a [u8]>,
    /// JPEG, WebP or AVIF: all three store 4:2:0 planes.
    pub output: Output,
    /// `decode::MAX_JPEG_SCANS`.
    pub scan_limit: u32,
    /// `gravity=smart`: the crop is moved to where the decoded planes draw the eye.
    pub smart: bool,
}

/// The engine's codecs and buffers this path works with.
pub struct Codecs<'e> {
    pub jpeg: &'e mut Decompressor,
    pub raw: &'e mut Decoder,
    pub compressor: &'e mut Compressor,
    pub resizer: &'e mut fr::Resizer,
    pub bufs: &'e mut Buffers,
}

/// Resizes a grey or YCbCr JPEG to a JPEG, WebP or AVIF as `req` says; `None`
/// when the input is not one this path handles.
pub fn resize(codecs: Codecs<'_>, req: &Request<'_>) -> Result<Option<Vec<u8>>, ResizeError> {
    let Codecs { jpeg, raw, compressor, resizer, bufs } = codecs;
    let Request { input, plan, orientation, icc, output, scan_limit, smart } = *req;
    let Output { format, quality, .. } = output;
    debug_assert!(matches!(format, ImageFormat::Jpeg | ImageFormat::Webp | ImageFormat::Avif));
    let corrupt = |e: &dyn std::fmt::Display| ResizeError::Corrupt(e.to_string());
    let internal = |e: &dyn std::fmt::Display| ResizeError::Internal(format!("JPEG planes: {e}"));
    let h = jpeg.read_header(input).map_err(|e| corrupt(&e))?;
    if !matches!(h.colorspace, Colorspace::YCbCr | Colorspace::Gray) || h.is_lossless {
        return Ok(None);
    }
    if icc.is_some() && h.colorspace != Colorspace::YCbCr {
        return Ok(None);
    }
    let (sw, sh) = (h.width as f64, h.height as f64);
    let mut crop = plan.crop;
    let (cw, ch) = (plan.content.0 as usize, plan.content.1 as usize);
    let (ow, oh) = (cw.div_ceil(OUT.0), ch.div_ceil(OUT.1));
    let luma = dct_size(LANCZOS_HEADROOM * plan.min_scale());
    // Stored chroma is 1/hs × 1/vs of luma.
    let chroma_for = |hs: f64, vs: f64| {
        let need = (ow as f64 / (crop.width / hs)).max(oh as f64 / (crop.height / vs));
        dct_size(CHROMA_HEADROOM * need).min(luma)
    };
    let (hs, vs) = match h.subsamp {
        Subsamp::None => (1.0, 1.0),
        Subsamp::Sub2x1 => (2.0, 1.0),
        Subsamp::Sub2x2 => (2.0, 2.0),
        Subsamp::Sub1x2 => (1.0, 2.0),
        Subsamp::Gray => (1.0, 1.0),
        // 4:1:1 and 4:4:1 are rare enough to leave to the general path.
        _ => return Ok(None),
    };
    let decode = tracing::info_span!("decode", path = "planes").entered();
    let Some(started) = raw.start(input, luma, chroma_for(hs, vs), scan_limit).map_err(|e| corrupt(&e))? else {
        return Ok(None);
    };
    let layout = started.layout;
    let offsets = started.read(&mut bufs.decoded).map_err(|e| corrupt(&e))?;
    for (c, &at) in offsets.iter().enumerate().take(layout.components()) {
        compact(&mut bufs.decoded[at..at + layout.len(c)], &layout, c);
    }
    drop(decode);
    let resample = tracing::info_span!("resize", path = "planes").entered();
    let packed = |c: usize| {
        let (w, h) = (layout.width[c] as u32, layout.height[c] as u32);
        (&bufs.decoded[offsets[c]..offsets[c] + (w * h) as usize], w, h)
    };
    if smart {
        let chroma = (layout.components() == 3).then(|| [packed(1), packed(2)]);
        let decoded = super::attention::Decoded::Planes { y: packed(0), chroma };
        super::attention::place(resizer, decoded, &mut crop, (sw, sh)).map_err(|e| internal(&e))?;
    }

    let mut plane = |c: usize, dst: &mut Vec<u8>, out: (usize, usize)| {
        let (src, _, _) = packed(c);
        let (pw, ph) = (layout.width[c] as f64, layout.height[c] as f64);
        let (sx, sy) = (pw / sw, ph / sh);
        // Crop in this plane's samples, clamped to the real image (the decoder rounds sizes up).
        let (left, top) = ((crop.left * sx).min(pw - 1.0), (crop.top * sy).min(ph - 1.0));
        let region = (left, top, (crop.width * sx).min(pw - left), (crop.height * sy).min(ph - top));
        resize_plane(resizer, src, (layout.width[c] as u32, layout.height[c] as u32), region, dst, out)
            .map_err(|e| internal(&e))
    };
    plane(0, &mut bufs.y, (cw, ch))?;
    let (cw, ch) = orient(&mut bufs.y, (cw, ch), orientation);
    compressor.set_quality(quality as i32).map_err(|e| internal(&e))?;
    if layout.components() == 1 {
        drop(resample);
        let _encode = tracing::info_span!("encode", path = "planes").entered();
        if format != ImageFormat::Jpeg {
            // Written as colour: neutral chroma, which is what grey is in
            // Y'CbCr (on the oriented luma's grid). WebP has no grey, and
            // AVIF readers handle monochrome unevenly.
            let (ow, oh) = (cw.div_ceil(OUT.0), ch.div_ceil(OUT.1));
            for c in [&mut bufs.cb, &mut bufs.cr] {
                c.clear();
                c.resize(ow * oh, 128);
            }
            return encode_colour(bufs, (cw, ch), ow, output).map(Some).map_err(|e| internal(&e));
        }
        // Grey stays grey (as libvips writes it): one plane, no colour conversion.
        compressor.set_subsamp(Subsamp::Gray).map_err(|e| internal(&e))?;
        let image =
            turbojpeg::Image { pixels: &bufs.y[..], width: cw, pitch: cw, height: ch, format: PixelFormat::GRAY };
        return compressor.compress_to_vec(image).map(Some).map_err(|e| internal(&e));
    }
    plane(1, &mut bufs.cb, (ow, oh))?;
    plane(2, &mut bufs.cr, (ow, oh))?;
    // Each chroma sample covers the same luma samples before and after: the
    // chroma plane spans exactly the luma plane, so flips and turns map one
    // grid onto the other.
    orient(&mut bufs.cb, (ow, oh), orientation);
    let (ow, oh) = orient(&mut bufs.cr, (ow, oh), orientation);
    drop(resample);
    let _encode = tracing::info_span!("encode", path = "planes").entered();
    if let Some(icc) = icc {
        color::ycbcr420_to_rgb(&bufs.y, (cw, ch), &bufs.cb, &bufs.cr, &mut bufs.rgb);
        color::rgb_to_srgb(icc, &mut bufs.rgb, false);
        return super::encode::encode(compressor, output, &bufs.rgb, cw as u32, ch as u32, false).map(Some);
    }
    if format != ImageFormat::Jpeg {
        return encode_colour(bufs, (cw, ch), ow, output).map(Some).map_err(|e| internal(&e));
    }
    let y_stride = pad_to_chroma_grid(&mut bufs.y, (cw, ch), (ow * OUT.0, oh * OUT.1));
    let planes = YuvPlanesImage {
        y_plane: &bufs.y[..],
        u_plane: &bufs.cb[..],
        v_plane: &bufs.cr[..],
        width: cw,
        height: ch,
        y_stride,
        u_stride: ow,
        v_stride: ow,
        subsamp: Subsamp::Sub2x2,
    };
    compressor.compress_yuv_planes_to_vec(&planes).map(Some).map_err(|e| internal(&e))
}

/// Encodes the resized planes (JPEG's range) as lossy WebP or AVIF: `size`
/// is the luma plane's, `uv_stride` the chroma planes' width.
fn encode_colour(
    bufs: &mut Buffers,
    (w, h): (usize, usize),
    uv_stride: usize,
    output: Output,
) -> Result<Vec<u8>, String> {
    if output.format == ImageFormat::Avif {
        // AV1 signals JPEG's range and matrix: the planes go as they are.
        let pixels = Pixels::Yuv420 { y: &bufs.y, y_stride: w, u: &bufs.cb, v: &bufs.cr, uv_stride };
        return heif::encode_avif(pixels, w as u32, h as u32, output.quality, output.speed).map_err(|e| e.to_string());
    }
    webp::jpeg_to_vp8_range(&mut bufs.y[..w * h], &mut bufs.cb, &mut bufs.cr);
    let pixels = Pixels::Yuv420 { y: &bufs.y, y_stride: w, u: &bufs.cb, v: &bufs.cr, uv_stride };
    webp::encode(pixels, w as u32, h as u32, output.quality)
}

/// Applies an EXIF orientation to a `w`×`h` plane, in place; returns its new size.
fn orient(plane: &mut Vec<u8>, (w, h): (usize, usize), orientation: Orientation) -> (usize, usize) {
    if orientation == Orientation::NoTransforms {
        return (w, h);
    }
    plane.truncate(w * h);
    let grey = GrayImage::from_raw(w as u32, h as u32, std::mem::take(plane)).expect("a plane holds w × h samples");
    let mut img = DynamicImage::ImageLuma8(grey);
    img.apply_orientation(orientation);
    let size = (img.width() as usize, img.height() as usize);
    *plane = img.into_luma8().into_raw();
    size
}

/// Moves plane `c`'s meaningful samples to the front of its block-padded
/// buffer, rows packed: the resampler clamps its kernel to the image edge, and
/// the padding columns past it are not image.
fn compact(plane: &mut [u8], layout: &Layout, c: usize) {
    let (stride, w, h) = (layout.stride[c] as usize, layout.width[c] as usize, layout.height[c] as usize);
    if stride != w {
        for row in 1..h {
            plane.copy_within(row * stride..row * stride + w, row * w);
        }
    }
}

/// Extends a `size` luma plane to `padded` (whole chroma samples, which the
/// encoder requires) by repeating the last column and row, as libjpeg does
/// with its own edge blocks; returns the new stride.
fn pad_to_chroma_grid(y: &mut Vec<u8>, (w, h): (usize, usize), (pw, ph): (usize, usize)) -> usize {
    if (w, h) == (pw, ph) {
        return w;
    }
    y.resize(pw * ph, 0);
    for row in (0..h).rev() {
        y.copy_within(row * w..row * w + w, row * pw);
        let last = y[row * pw + w - 1];
        y[row * pw + w..row * pw + pw].fill(last);
    }
    for row in h..ph {
        y.copy_within((h - 1) * pw..h * pw, row * pw);
    }
    pw
}

/// Resamples one `size` plane: `region` is in the plane's own samples.
fn resize_plane(
    resizer: &mut fr::Resizer,
    src: &[u8],
    (sw, sh): (u32, u32),
    region: (f64, f64, f64, f64),
    dst: &mut Vec<u8>,
    (dw, dh): (usize, usize),
) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let src = ImageRef::new(sw, sh, src, PixelType::U8).map_err(|x| e(&x))?;
    dst.resize(dw * dh, 0);
    let mut out = Image::from_slice_u8(dw as u32, dh as u32, &mut dst[..], PixelType::U8).map_err(|x| e(&x))?;
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(lanczos::filter()))
        .crop(region.0, region.1, region.2, region.3);
    resizer.resize(&src, &mut out, &options).map_err(|x| e(&x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_planes_are_padded_with_their_edges() {
        let mut y = vec![1, 2, 3, 4, 5, 6];
        assert_eq!(pad_to_chroma_grid(&mut y, (3, 2), (4, 2)), 4);
        assert_eq!(y, vec![1, 2, 3, 3, 4, 5, 6, 6]);
        let mut y = vec![1, 2, 3, 4, 5, 6];
        assert_eq!(pad_to_chroma_grid(&mut y, (3, 2), (4, 4)), 4);
        assert_eq!(y, vec![1, 2, 3, 3, 4, 5, 6, 6, 4, 5, 6, 6, 4, 5, 6, 6]);
        let mut y = vec![7, 8];
        assert_eq!(pad_to_chroma_grid(&mut y, (2, 1), (2, 2)), 2);
        assert_eq!(y, vec![7, 8, 7, 8]);
    }
}
