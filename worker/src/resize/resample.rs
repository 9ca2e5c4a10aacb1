//! The general path's resampling step: the plan's crop, mapped into the
//! decoded (possibly DCT-shrunk) pixels, resized with Lanczos3.

use super::{ResizeError, decode::Pixels, geometry::Crop, lanczos};
use fast_image_resize::{
    self as fr, PixelType, ResizeAlg, ResizeOptions,
    images::{Image, ImageRef},
};

/// Resamples the `crop` (in stored pixels of a `stored` size image) of
/// `decoded` to `size`; returns the interleaved pixels (the decoded buffer is
/// consumed, and freed before the caller goes on).
pub fn resample(
    resizer: &mut fr::Resizer,
    decoded: Pixels,
    stored: (u32, u32),
    crop: Crop,
    size: (u32, u32),
) -> Result<Vec<u8>, ResizeError> {
    let internal = |e: &dyn std::fmt::Display| ResizeError::Internal(e.to_string());
    let pixel_type = if decoded.alpha { PixelType::U8x4 } else { PixelType::U8x3 };
    let (width, height) = (decoded.width, decoded.height);
    let src = Image::from_vec_u8(width, height, decoded.buf, pixel_type).map_err(|e| internal(&e))?;
    convolve(resizer, &src, stored, crop, size)
}

/// [`resample`] of a borrowed RGBA canvas at its stored size (an animation's frame).
pub fn resample_rgba(
    resizer: &mut fr::Resizer,
    rgba: &[u8],
    stored: (u32, u32),
    crop: Crop,
    size: (u32, u32),
) -> Result<Vec<u8>, ResizeError> {
    let src =
        ImageRef::new(stored.0, stored.1, rgba, PixelType::U8x4).map_err(|e| ResizeError::Internal(e.to_string()))?;
    convolve(resizer, &src, stored, crop, size)
}

fn convolve(
    resizer: &mut fr::Resizer,
    src: &impl fr::IntoImageView,
    stored: (u32, u32),
    crop: Crop,
    size: (u32, u32),
) -> Result<Vec<u8>, ResizeError> {
    let internal = |e: &dyn std::fmt::Display| ResizeError::Internal(e.to_string());
    let (w, h) = (src.width(), src.height());
    let pixel_type = src.pixel_type().ok_or_else(|| ResizeError::Internal("pixels of no known type".into()))?;
    // The decoder may have shrunk the image: map the crop into decoded pixels.
    let (sx, sy) = (f64::from(w) / f64::from(stored.0), f64::from(h) / f64::from(stored.1));
    // Clamp: the decoder rounds scaled sizes up, float products may overshoot by an ulp.
    let (dw, dh) = (f64::from(w), f64::from(h));
    let mut dst = Image::new(size.0, size.1, pixel_type);
    let (left, top) = ((crop.left * sx).min(dw - 1.0), (crop.top * sy).min(dh - 1.0));
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(lanczos::filter())).crop(
        left,
        top,
        (crop.width * sx).min(dw - left),
        (crop.height * sy).min(dh - top),
    );
    resizer.resize(src, &mut dst, &options).map_err(|e| internal(&e))?;
    Ok(dst.into_vec())
}
