//! The `contain` step: the resized image placed on its canvas.

use super::encode;
use image::DynamicImage;

/// Places `img` on a canvas: transparent where the output has alpha, white otherwise.
pub fn pad(img: DynamicImage, canvas: (u32, u32), offset: (u32, u32), transparent: bool) -> DynamicImage {
    let (x, y) = (i64::from(offset.0), i64::from(offset.1));
    if transparent {
        let mut out = image::RgbaImage::from_pixel(canvas.0, canvas.1, image::Rgba([0, 0, 0, 0]));
        image::imageops::overlay(&mut out, &img.into_rgba8(), x, y);
        DynamicImage::ImageRgba8(out)
    } else {
        let mut out = image::RgbImage::from_pixel(canvas.0, canvas.1, image::Rgb([255, 255, 255]));
        let rgb = match img {
            DynamicImage::ImageRgba8(rgba) => {
                let (w, h) = rgba.dimensions();
                image::RgbImage::from_raw(w, h, encode::flatten(rgba.as_raw())).expect("flatten keeps the size")
            }
            other => other.into_rgb8(),
        };
        image::imageops::overlay(&mut out, &rgb, x, y);
        DynamicImage::ImageRgb8(out)
    }
}
