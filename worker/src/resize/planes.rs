//! JPEG to JPEG without leaving YCbCr.
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
//! Only for what needs no pixel in RGB: no ICC profile to apply, no EXIF
//! rotation, no padding, three-component YCbCr input. Everything else takes
//! the general path.

use super::{
    ResizeError,
    decode::{LANCZOS_HEADROOM, jpeg_scaling},
    geometry::Plan,
    lanczos,
};
use fast_image_resize::{self as fr, PixelType, ResizeAlg, ResizeOptions, images::Image, images::ImageRef};
use turbojpeg::{Colorspace, Compressor, Decompressor, Subsamp, YuvImage, YuvPlanesImage};

/// Plane buffers kept between jobs: the decoded planes are the largest
/// allocation of a conversion, and reusing them spares the page faults.
#[derive(Default)]
pub struct Buffers {
    decoded: Vec<u8>,
    y: Vec<u8>,
    cb: Vec<u8>,
    cr: Vec<u8>,
}

/// Chroma subsampling of a stored JPEG as (horizontal, vertical) factors.
fn factors(s: Subsamp) -> Option<(usize, usize)> {
    Some(match s {
        Subsamp::None => (1, 1),
        Subsamp::Sub2x1 => (2, 1),
        Subsamp::Sub2x2 => (2, 2),
        Subsamp::Sub1x2 => (1, 2),
        // 4:1:1 and 4:4:1 are rare enough to leave to the general path.
        _ => return None,
    })
}

/// One plane's geometry: stored size (padded to whole chroma samples, as
/// libjpeg-turbo lays the planes out) and the factor to luma coordinates.
struct PlaneGeom {
    width: usize,
    height: usize,
    hs: usize,
    vs: usize,
}

/// Output chroma is always 4:2:0, like the general path's encoder.
const OUT: (usize, usize) = (2, 2);

/// Resizes a YCbCr JPEG to a JPEG following `plan` (in stored orientation),
/// or `None` when the input is not one this path handles.
#[allow(clippy::too_many_arguments)]
pub fn resize(
    jpeg: &mut Decompressor,
    compressor: &mut Compressor,
    resizer: &mut fr::Resizer,
    bufs: &mut Buffers,
    input: &[u8],
    plan: &Plan,
    quality: u8,
    scan_limit: u32,
) -> Result<Option<Vec<u8>>, ResizeError> {
    let corrupt = |e: turbojpeg::Error| ResizeError::Corrupt(e.to_string());
    let internal = |e: &dyn std::fmt::Display| ResizeError::Internal(format!("JPEG planes: {e}"));
    let h = jpeg.read_header(input).map_err(corrupt)?;
    let Some((hs, vs)) = factors(h.subsamp) else { return Ok(None) };
    if h.colorspace != Colorspace::YCbCr || h.is_lossless {
        return Ok(None);
    }
    let factor = jpeg_scaling(LANCZOS_HEADROOM * plan.min_scale());
    jpeg.set_scaling_factor(factor).map_err(corrupt)?;
    jpeg.set_scan_limit(scan_limit).map_err(corrupt)?;
    let (w, hgt) = (factor.scale(h.width), factor.scale(h.height));
    let luma = PlaneGeom { width: w.div_ceil(hs) * hs, height: hgt.div_ceil(vs) * vs, hs: 1, vs: 1 };
    let chroma = PlaneGeom { width: luma.width / hs, height: luma.height / vs, hs, vs };
    let len = luma.width * luma.height + 2 * chroma.width * chroma.height;
    bufs.decoded.resize(len, 0);
    let image = YuvImage { pixels: &mut bufs.decoded[..], width: w, align: 1, height: hgt, subsamp: h.subsamp };
    jpeg.decompress_to_yuv(input, image).map_err(corrupt)?;

    let (sx, sy) = (w as f64 / h.width as f64, hgt as f64 / h.height as f64);
    let (cw, ch) = (plan.content.0 as usize, plan.content.1 as usize);
    let (ow, oh) = (cw.div_ceil(OUT.0), ch.div_ceil(OUT.1));
    let (y_src, rest) = bufs.decoded.split_at(luma.width * luma.height);
    let (cb_src, cr_src) = rest.split_at(chroma.width * chroma.height);
    // Crop in decoded luma pixels, clamped to the real (unpadded) image.
    let crop = plan.crop;
    let (left, top) = ((crop.left * sx).min(w as f64 - 1.0), (crop.top * sy).min(hgt as f64 - 1.0));
    let region = (left, top, (crop.width * sx).min(w as f64 - left), (crop.height * sy).min(hgt as f64 - top));
    let mut plane = |src: &[u8], g: &PlaneGeom, dst: &mut Vec<u8>, out: (usize, usize)| {
        resize_plane(resizer, src, g, region, dst, out).map_err(|e| internal(&e))
    };
    plane(y_src, &luma, &mut bufs.y, (cw, ch))?;
    plane(cb_src, &chroma, &mut bufs.cb, (ow, oh))?;
    plane(cr_src, &chroma, &mut bufs.cr, (ow, oh))?;
    let y_stride = pad_to_chroma_grid(&mut bufs.y, (cw, ch), (ow * OUT.0, oh * OUT.1));

    compressor.set_quality(quality as i32).map_err(|e| internal(&e))?;
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

/// Resamples one plane: `region` is in luma pixels of the decoded image and is
/// mapped into this plane's own sample grid.
fn resize_plane(
    resizer: &mut fr::Resizer,
    src: &[u8],
    g: &PlaneGeom,
    region: (f64, f64, f64, f64),
    dst: &mut Vec<u8>,
    (dw, dh): (usize, usize),
) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let src = ImageRef::new(g.width as u32, g.height as u32, src, PixelType::U8).map_err(|x| e(&x))?;
    dst.resize(dw * dh, 0);
    let mut out = Image::from_slice_u8(dw as u32, dh as u32, &mut dst[..], PixelType::U8).map_err(|x| e(&x))?;
    let (hs, vs) = (g.hs as f64, g.vs as f64);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(lanczos::filter())).crop(
        region.0 / hs,
        region.1 / vs,
        region.2 / hs,
        region.3 / vs,
    );
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

    #[test]
    fn subsampling_factors() {
        assert_eq!(factors(Subsamp::Sub2x2), Some((2, 2)));
        assert_eq!(factors(Subsamp::Sub2x1), Some((2, 1)));
        assert_eq!(factors(Subsamp::None), Some((1, 1)));
        assert_eq!(factors(Subsamp::Gray), None);
    }
}
