//! The general path's resampling step: the plan's crop, mapped into the
//! decoded (possibly DCT-shrunk) pixels, resized with Lanczos3.

use super::{ResizeError, decode::Pixels, geometry::Crop, lanczos};
use fast_image_resize::{self as fr, PixelType, ResizeAlg, ResizeOptions, images::Image};

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
    // The decoder may have shrunk the image: map the crop into decoded pixels.
    let (sx, sy) = (f64::from(decoded.width) / f64::from(stored.0), f64::from(decoded.height) / f64::from(stored.1));
    let pixel_type = if decoded.alpha { PixelType::U8x4 } else { PixelType::U8x3 };
    // Clamp: the decoder rounds scaled sizes up, float products may overshoot by an ulp.
    let (dw, dh) = (f64::from(decoded.width), f64::from(decoded.height));
    let src = Image::from_vec_u8(decoded.width, decoded.height, decoded.buf, pixel_type).map_err(|e| internal(&e))?;
    let mut dst = Image::new(size.0, size.1, pixel_type);
    let (left, top) = ((crop.left * sx).min(dw - 1.0), (crop.top * sy).min(dh - 1.0));
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(lanczos::filter())).crop(
        left,
        top,
        (crop.width * sx).min(dw - left),
        (crop.height * sy).min(dh - top),
    );
    resizer.resize(&src, &mut dst, &options).map_err(|e| internal(&e))?;
    Ok(dst.into_vec())
}
