//! The resize function: bytes in, bytes out, no I/O. The worker's job loop and
//! the benchmarks call the same code.
//!
//! Steps: sniff the format → read the header and refuse pixel bombs before any
//! pixel is decoded → plan the geometry on the upright image → decode (JPEG
//! downscaled in the DCT domain) → resample with Lanczos3 → convert to sRGB
//! from an embedded profile → apply the EXIF orientation to the small result →
//! pad (`contain`) → encode without metadata.
//!
//! A JPEG that becomes a JPEG or a WebP without padding (the common
//! thumbnail and display sizes, EXIF-rotated or not) skips RGB at full size:
//! see [`planes`].

mod attention;
mod color;
mod decode;
mod encode;
mod error;
pub mod geometry;
mod lanczos;
mod planes;
mod rawjpeg;
mod webp;

pub use error::ResizeError;

use contracts::{ImageFormat, Rendered, ResizeOp};
use fast_image_resize::{self as fr, PixelType, ResizeAlg, ResizeOptions, images::Image};
use image::DynamicImage;
use std::cell::RefCell;

/// Bounds on the work one job may cause.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest width × height accepted, checked from the header before decoding.
    pub max_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        // imgproxy's default maximum source resolution; a 24 MP camera photo passes.
        Self { max_pixels: 50_000_000 }
    }
}

/// A resized, encoded image.
#[derive(Debug, Clone)]
pub struct Resized {
    pub bytes: Vec<u8>,
    pub rendered: Rendered,
    /// Input size as stored in the file (before orientation).
    pub input_pixels: u64,
}

/// Codec and resampler state, reused across jobs on one thread.
pub struct Engine {
    decompressor: turbojpeg::Decompressor,
    raw: rawjpeg::Decoder,
    compressor: turbojpeg::Compressor,
    resizer: fr::Resizer,
    planes: planes::Buffers,
}

impl Engine {
    pub fn new() -> Result<Self, ResizeError> {
        let tj = |e: turbojpeg::Error| ResizeError::Internal(e.to_string());
        Ok(Self {
            decompressor: turbojpeg::Decompressor::new().map_err(tj)?,
            raw: rawjpeg::Decoder::new()
                .ok_or_else(|| ResizeError::Internal("JPEG plane decoder: out of memory".into()))?,
            compressor: turbojpeg::Compressor::new().map_err(tj)?,
            resizer: fr::Resizer::new(),
            planes: planes::Buffers::default(),
        })
    }

    pub fn resize(&mut self, input: &[u8], op: &ResizeOp, limits: &Limits) -> Result<Resized, ResizeError> {
        let result = self.run(input, op, limits);
        if result.is_err() {
            // libjpeg keeps what it read of a refused stream (tables, markers,
            // its error state) in the handle, and the next photo decoded with
            // it fails ("Bogus DQT index") or worse: start the next job afresh.
            *self = Self::new()?;
        }
        result
    }

    fn run(&mut self, input: &[u8], op: &ResizeOp, limits: &Limits) -> Result<Resized, ResizeError> {
        let format = ImageFormat::sniff(input)
            .ok_or_else(|| ResizeError::Unsupported(format!("not a {} image", contracts::format::READABLE)))?;
        let header = decode::header(&mut self.decompressor, input, format)?;
        let pixels = header.width as u64 * header.height as u64;
        if pixels > limits.max_pixels || header.width == 0 || header.height == 0 {
            return Err(ResizeError::PixelLimit {
                width: header.width.into(),
                height: header.height.into(),
                pixels,
                limit: limits.max_pixels,
            });
        }
        let (up_w, up_h) = header.upright_size();
        let plan = geometry::plan(up_w, up_h, op);
        let stored_plan = plan.stored(header.orientation, (up_w, up_h));
        let out_format = op.output_format(format);
        if format == ImageFormat::Jpeg
            && matches!(out_format, ImageFormat::Jpeg | ImageFormat::Webp)
            && plan.canvas == plan.content
            && let Some(bytes) = planes::resize(
                planes::Codecs {
                    jpeg: &mut self.decompressor,
                    raw: &mut self.raw,
                    compressor: &mut self.compressor,
                    resizer: &mut self.resizer,
                    bufs: &mut self.planes,
                },
                &planes::Request {
                    input,
                    plan: &stored_plan,
                    orientation: header.orientation,
                    icc: header.icc.as_deref(),
                    format: out_format,
                    quality: op.quality,
                    scan_limit: decode::MAX_JPEG_SCANS,
                    smart: smart(op),
                },
            )?
        {
            let (width, height) = plan.canvas;
            return Ok(Resized {
                bytes,
                rendered: Rendered { format: out_format, width, height },
                input_pixels: pixels,
            });
        }
        let decoding = tracing::info_span!("decode", path = "general").entered();
        let decoded = decode::decode(&mut self.decompressor, input, format, &header, stored_plan.min_scale())?;
        drop(decoding);
        let resampling = tracing::info_span!("resize", path = "general").entered();

        // The decoder may have shrunk the image: map the crop into decoded pixels.
        let (sx, sy) = (decoded.width as f64 / header.width as f64, decoded.height as f64 / header.height as f64);
        let mut crop = stored_plan.crop;
        if smart(op) {
            let rgb = attention::Decoded::Rgb {
                pixels: &decoded.buf,
                width: decoded.width,
                height: decoded.height,
                alpha: decoded.alpha,
            };
            let stored = (f64::from(header.width), f64::from(header.height));
            attention::place(&mut self.resizer, rgb, &mut crop, stored).map_err(ResizeError::Internal)?;
        }
        let pixel_type = if decoded.alpha { PixelType::U8x4 } else { PixelType::U8x3 };
        let src = Image::from_vec_u8(decoded.width, decoded.height, decoded.buf, pixel_type)
            .map_err(|e| ResizeError::Internal(e.to_string()))?;
        let (cw, ch) = stored_plan.content;
        let mut dst = Image::new(cw, ch, pixel_type);
        // Clamp: the decoder rounds scaled sizes up, float products may overshoot by an ulp.
        let (dw, dh) = (decoded.width as f64, decoded.height as f64);
        let (left, top) = ((crop.left * sx).min(dw - 1.0), (crop.top * sy).min(dh - 1.0));
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(lanczos::filter())).crop(
            left,
            top,
            (crop.width * sx).min(dw - left),
            (crop.height * sy).min(dh - top),
        );
        self.resizer.resize(&src, &mut dst, &options).map_err(|e| ResizeError::Internal(e.to_string()))?;
        drop(src);

        let mut out = dst.into_vec();
        if let (Some(icc), false) = (&header.icc, decoded.in_srgb) {
            color::rgb_to_srgb(icc, &mut out, decoded.alpha);
        }
        let mut img = to_dynamic(out, cw, ch, decoded.alpha)?;
        img.apply_orientation(header.orientation);

        if plan.canvas != plan.content {
            img = pad(img, plan.canvas, plan.offset, out_format != ImageFormat::Jpeg);
        }
        drop(resampling);
        let _encoding = tracing::info_span!("encode", path = "general").entered();
        let (width, height, alpha) = (img.width(), img.height(), img.color().has_alpha());
        let bytes = encode::encode(&mut self.compressor, out_format, img.as_bytes(), width, height, alpha, op.quality)?;
        Ok(Resized { bytes, rendered: Rendered { format: out_format, width, height }, input_pixels: pixels })
    }
}

/// `gravity=smart` on a crop: the crop's place is found in the decoded pixels.
fn smart(op: &ResizeOp) -> bool {
    op.fit == contracts::Fit::Cover && op.gravity == contracts::Gravity::Smart
}

fn to_dynamic(buf: Vec<u8>, w: u32, h: u32, alpha: bool) -> Result<DynamicImage, ResizeError> {
    let bad = || ResizeError::Internal("resampler returned a buffer of the wrong size".into());
    Ok(if alpha {
        DynamicImage::ImageRgba8(image::RgbaImage::from_raw(w, h, buf).ok_or_else(bad)?)
    } else {
        DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, buf).ok_or_else(bad)?)
    })
}

/// Places `img` on a canvas: transparent where the output has alpha, white otherwise.
fn pad(img: DynamicImage, canvas: (u32, u32), offset: (u32, u32), transparent: bool) -> DynamicImage {
    let (x, y) = (offset.0 as i64, offset.1 as i64);
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

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

/// Resizes with this thread's [`Engine`] (created on first use).
pub fn resize(input: &[u8], op: &ResizeOp, limits: &Limits) -> Result<Resized, ResizeError> {
    ENGINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(Engine::new()?);
        }
        slot.as_mut().expect("engine initialised above").resize(input, op, limits)
    })
}
