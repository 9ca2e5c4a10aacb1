//! Lossy WebP through libwebp's advanced API.
//!
//! Lossy WebP stores 4:2:0 Y'CbCr in BT.601's limited range. Interleaved RGB
//! is converted by libwebp (as every encoder hands it over); the JPEG plane
//! path instead passes its resized planes, after [`jpeg_to_vp8_range`], and
//! skips both the RGB round trip and libwebp's own chroma downsampling.
//!
//! libwebp is built from source with its SSE4.1 kernels (the `sse41` feature
//! of `libwebp-sys`): without it only the SSE2 ones are compiled, while the
//! distributions' builds that libvips and Pillow load pick SSE4.1 at run time.

use super::encode::Pixels;
use libwebp_sys as sys;

/// Encodes lossy WebP at `quality` (0–100) with libwebp's defaults otherwise
/// (method 4, as libvips' `webpsave` and Pillow use them).
pub fn encode(pixels: Pixels<'_>, width: u32, height: u32, quality: u8) -> Result<Vec<u8>, String> {
    check_size(width, height)?;
    let (w, h) = (width as usize, height as usize);
    if !pixels.covers(w, h) {
        return Err("pixel buffer smaller than the image".into());
    }
    let mut config = sys::WebPConfig::new().map_err(|()| "libwebp refused its own default configuration")?;
    config.quality = f32::from(quality.min(100));
    let mut picture = Picture::new(width, height)?;
    let pic = &mut picture.0;
    // SAFETY: `covers` checked that every buffer holds the rows and strides
    // given; libwebp only reads through these pointers (imports copy, external
    // planes are read during WebPEncode), all before this function returns.
    let imported = unsafe {
        match pixels {
            Pixels::Rgb(buf) => sys::WebPPictureImportRGB(pic, buf.as_ptr(), (w * 3) as i32) != 0,
            Pixels::Rgba(buf) => sys::WebPPictureImportRGBA(pic, buf.as_ptr(), (w * 4) as i32) != 0,
            Pixels::Yuv420 { y, y_stride, u, v, uv_stride } => {
                pic.colorspace = sys::WebPEncCSP::WEBP_YUV420;
                pic.y = y.as_ptr().cast_mut();
                pic.u = u.as_ptr().cast_mut();
                pic.v = v.as_ptr().cast_mut();
                pic.y_stride = y_stride as i32;
                pic.uv_stride = uv_stride as i32;
                true
            }
        }
    };
    if !imported {
        return Err("libwebp could not import the pixels (out of memory)".into());
    }
    let mut writer = std::mem::MaybeUninit::<sys::WebPMemoryWriter>::uninit();
    // SAFETY: the writer is initialised before use and cleared after the copy;
    // `custom_ptr` points at it for the duration of WebPEncode only.
    unsafe {
        sys::WebPMemoryWriterInit(writer.as_mut_ptr());
        pic.writer = Some(sys::WebPMemoryWrite);
        pic.custom_ptr = writer.as_mut_ptr().cast();
        let ok = sys::WebPEncode(&config, pic) != 0;
        let mut writer = writer.assume_init();
        let out = if ok && !writer.mem.is_null() {
            Ok(std::slice::from_raw_parts(writer.mem, writer.size).to_vec())
        } else {
            Err(format!("libwebp: {:?}", pic.error_code))
        };
        sys::WebPMemoryWriterClear(&mut writer);
        out
    }
}

/// Refuses sizes WebP cannot store (1–16383 pixels per side).
pub fn check_size(width: u32, height: u32) -> Result<(), String> {
    let max = sys::WEBP_MAX_DIMENSION;
    if width == 0 || height == 0 || width > max || height > max {
        return Err(format!("{width}×{height} is outside WebP's 1–{max} pixels per side"));
    }
    Ok(())
}

/// A `WebPPicture` freed on drop (imports allocate; external planes are not
/// owned, and libwebp's free leaves them alone). Lossy (YUV) unless the
/// caller sets `use_argb`.
pub struct Picture(pub sys::WebPPicture);

impl Picture {
    pub fn new(width: u32, height: u32) -> Result<Self, String> {
        let mut pic = sys::WebPPicture::new().map_err(|()| "libwebp refused to initialise a picture")?;
        // Lossy: YUV inside, which is what the planes already are.
        pic.use_argb = 0;
        pic.width = width as i32;
        pic.height = height as i32;
        Ok(Self(pic))
    }
}

impl Drop for Picture {
    fn drop(&mut self) {
        // SAFETY: initialised by WebPPictureInit; frees only what libwebp allocated.
        unsafe { sys::WebPPictureFree(&mut self.0) }
    }
}

/// Maps JPEG's full-range Y'CbCr (JFIF) to VP8's limited range in place:
/// luma 0–255 → 16–235, chroma 0–255 → 16–240 around 128, the scale libwebp's
/// own RGB conversion produces.
pub fn jpeg_to_vp8_range(y: &mut [u8], cb: &mut [u8], cr: &mut [u8]) {
    let luma: [u8; 256] = std::array::from_fn(|v| (16 + (v as u32 * 219 + 127) / 255) as u8);
    let chroma: [u8; 256] = std::array::from_fn(|v| (128.0 + (v as f64 - 128.0) * 224.0 / 255.0).round() as u8);
    y.iter_mut().for_each(|s| *s = luma[*s as usize]);
    for s in cb.iter_mut().chain(cr.iter_mut()) {
        *s = chroma[*s as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_maps_onto_vp8s_limits() {
        let (mut y, mut cb, mut cr) = (vec![0, 128, 255], vec![0, 128, 255], vec![1, 127, 254]);
        jpeg_to_vp8_range(&mut y, &mut cb, &mut cr);
        assert_eq!(y, [16, 126, 235]);
        assert_eq!(cb, [16, 128, 240]);
        assert_eq!(cr, [16, 127, 239]);
    }

    #[test]
    fn short_buffers_and_sizes_out_of_range_are_refused() {
        assert!(encode(Pixels::Rgb(&[0; 11]), 2, 2, 80).is_err());
        assert!(encode(Pixels::Rgb(&[0; 12]), 0, 4, 80).is_err());
        assert!(encode(Pixels::Rgb(&[0; 12]), 20_000, 1, 80).is_err());
        let (y, c) = ([128u8; 9], [128u8; 3]);
        // 3×3 luma needs 2×2 chroma: 3 samples are one short.
        let short = Pixels::Yuv420 { y: &y, y_stride: 3, u: &c, v: &c, uv_stride: 2 };
        assert!(encode(short, 3, 3, 80).is_err());
    }

    #[test]
    fn planes_and_rgb_of_one_image_decode_alike() {
        // A grey ramp: Y' = the grey level, chroma neutral.
        let (w, h) = (33usize, 17usize);
        let grey: Vec<u8> = (0..w * h).map(|i| ((i % w) * 255 / (w - 1)) as u8).collect();
        let rgb: Vec<u8> = grey.iter().flat_map(|&g| [g, g, g]).collect();
        let (mut y, mut u, mut v) = (grey.clone(), vec![128u8; 17 * 9], vec![128u8; 17 * 9]);
        jpeg_to_vp8_range(&mut y, &mut u, &mut v);
        let from_planes =
            encode(Pixels::Yuv420 { y: &y, y_stride: w, u: &u, v: &v, uv_stride: 17 }, w as u32, h as u32, 90).unwrap();
        let from_rgb = encode(Pixels::Rgb(&rgb), w as u32, h as u32, 90).unwrap();
        let decode = |b: &[u8]| image::load_from_memory(b).unwrap().into_rgb8();
        let (a, b) = (decode(&from_planes), decode(&from_rgb));
        assert_eq!(a.dimensions(), (w as u32, h as u32));
        let worst = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
        assert!(worst <= 4, "planes and RGB differ by up to {worst} levels");
        // And the grey survived: the last column is near white, the first near black.
        assert!(a.get_pixel(w as u32 - 1, 8).0[0] >= 245 && a.get_pixel(0, 8).0[0] <= 10);
    }
}
