//! The resize function: bytes in, bytes out, no I/O. The worker's job loop and
//! the benchmarks call the same code.
//!
//! # Steps
//! [`Engine::run`] is the sequence; each step is a file of its own:
//! - `probe`: sniff the format, read the header, refuse pixel bombs (and
//!   animation bombs: too many frames, too many pixels over all frames)
//!   before any pixel is decoded.
//! - [`geometry`]: plan the crop, size and canvas on the upright image, and map
//!   the plan onto the pixels as stored (EXIF orientation).
//! - `animate`: an animated GIF or WebP whose answer keeps its frames: each
//!   composed frame (`frames`) cropped, resampled and padded as below, into
//!   `gif` or `webp_anim`.
//! - `planes`: a JPEG that becomes a JPEG, WebP or AVIF without padding (the
//!   common thumbnail and display sizes, EXIF-rotated or not) stays in Y'CbCr
//!   planes from decode to encode; everything below is the general path.
//! - `decode`: to RGB(A), JPEG downscaled in the DCT domain, AVIF and HEIC
//!   through libheif (`heif`), HEIC in a process of its own (`heic_process`),
//!   SVG rendered by resvg at the output's scale (`svg`).
//! - `attention`: for `gravity=smart`, move the crop to what draws the eye
//!   (both paths).
//! - `resample`: the crop, resized with Lanczos3 (`lanczos`).
//! - `color`: an embedded profile converted to sRGB, on the small result.
//! - orientation: the EXIF orientation applied to the small result.
//! - `pad`: `contain`'s canvas.
//! - `encode` (and `webp`, `heif` for AVIF): without metadata.

mod animate;
mod attention;
mod color;
mod decode;
mod encode;
mod error;
mod frames;
pub mod geometry;
mod gif;
mod heic_process;
mod heif;
mod lanczos;
mod pad;
mod planes;
mod probe;
mod rawjpeg;
mod resample;
mod svg;
mod webp;
mod webp_anim;

pub use error::ResizeError;
pub use heic_process::{HELPER_ARG as HEIC_HELPER_ARG, helper_main as heic_helper_main, set_helper as set_heic_helper};

use contracts::{ImageFormat, Rendered, ResizeOp};
use fast_image_resize as fr;
use image::DynamicImage;
use std::cell::RefCell;

/// Bounds on the work one job may cause.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest width × height accepted, checked from the header before
    /// decoding; for an animation, of its canvas.
    pub max_pixels: u64,
    /// Most frames of an animation whose frames are kept.
    pub max_frames: u32,
    /// Most pixels over all frames of such an animation (canvas × frames):
    /// a thousand frames of 4 K are a bomb however small each frame's data.
    pub max_animation_pixels: u64,
}

impl Limits {
    /// The default animation bounds with this still-image limit.
    pub fn with_max_pixels(max_pixels: u64) -> Self {
        Self { max_pixels, ..Self::default() }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // imgproxy's default maximum source resolution; a 24 MP camera photo passes.
            max_pixels: 50_000_000,
            max_frames: 1000,
            // Every frame is decoded, resized and encoded: on one core of the
            // benchmark machine 100 MP take 2 s to GIF, 4.3 s to WebP (the
            // encoder's search), inside the api-server's default 5 s job
            // timeout; 700 frames of 480×270, 430 of 640×360 pass.
            max_animation_pixels: 100_000_000,
        }
    }
}

/// A resized, encoded image.
#[derive(Debug, Clone)]
pub struct Resized {
    pub bytes: Vec<u8>,
    pub rendered: Rendered,
    /// Input size as stored in the file (before orientation); over all
    /// frames of an animation whose frames were kept.
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

    /// The steps, in order; each file named here holds one.
    fn run(&mut self, input: &[u8], op: &ResizeOp, limits: &Limits) -> Result<Resized, ResizeError> {
        let probe::Probe { format, header, pixels, layout } = probe::probe(&mut self.decompressor, input, limits)?;
        let (up_w, up_h) = header.upright_size();
        let plan = geometry::plan(up_w, up_h, op);
        let stored_plan = plan.stored(header.orientation, (up_w, up_h));
        let animated = layout.is_some_and(|l| l.animated());
        let out_format = op.output_format(format, animated);
        let output = encode::Output { format: out_format, quality: op.quality, speed: op.avif_speed() };
        let done = |bytes, (width, height): (u32, u32)| Resized {
            bytes,
            rendered: Rendered { format: out_format, width, height, frames: 1 },
            input_pixels: pixels,
        };
        if let Some(layout) = layout.filter(|_| op.animates(animated, out_format)) {
            probe::animation_limits(&layout, limits)?;
            let _span = tracing::info_span!("animate", frames = layout.frames).entered();
            let request = animate::Request {
                input,
                format,
                plan: &plan,
                output: out_format,
                quality: op.quality,
                loops: layout.loops,
                smart: smart(op),
                memory_limit: limits.max_pixels.saturating_mul(4),
            };
            let (bytes, frames) = animate::resize(&mut self.resizer, &request)?;
            let (width, height) = plan.canvas;
            return Ok(Resized {
                bytes,
                rendered: Rendered { format: out_format, width, height, frames },
                input_pixels: layout.total_pixels(),
            });
        }
        if format == ImageFormat::Jpeg
            && matches!(out_format, ImageFormat::Jpeg | ImageFormat::Webp | ImageFormat::Avif)
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
                    output,
                    scan_limit: decode::MAX_JPEG_SCANS,
                    smart: smart(op),
                },
            )?
        {
            return Ok(done(bytes, plan.canvas));
        }

        let decoding = tracing::info_span!("decode", path = "general").entered();
        let decoded = decode::decode(&mut self.decompressor, input, format, &header, stored_plan.min_scale())?;
        drop(decoding);
        let resampling = tracing::info_span!("resize", path = "general").entered();
        let stored = (header.width, header.height);
        let mut crop = stored_plan.crop;
        if smart(op) {
            let rgb = attention::Decoded::Rgb {
                pixels: &decoded.buf,
                width: decoded.width,
                height: decoded.height,
                alpha: decoded.alpha,
            };
            let stored = (f64::from(stored.0), f64::from(stored.1));
            attention::place(&mut self.resizer, rgb, &mut crop, stored).map_err(ResizeError::Internal)?;
        }
        let (alpha, in_srgb) = (decoded.alpha, decoded.in_srgb);
        let (cw, ch) = stored_plan.content;
        let mut out = resample::resample(&mut self.resizer, decoded, stored, crop, (cw, ch))?;
        if let (Some(icc), false) = (&header.icc, in_srgb) {
            color::rgb_to_srgb(icc, &mut out, alpha);
        }
        let mut img = to_dynamic(out, cw, ch, alpha)?;
        img.apply_orientation(header.orientation);
        if plan.canvas != plan.content {
            img = pad::pad(img, plan.canvas, plan.offset, out_format != ImageFormat::Jpeg);
        }
        drop(resampling);

        let _encoding = tracing::info_span!("encode", path = "general").entered();
        let (width, height, alpha) = (img.width(), img.height(), img.color().has_alpha());
        let bytes = encode::encode(&mut self.compressor, output, img.as_bytes(), width, height, alpha)?;
        Ok(done(bytes, (width, height)))
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
