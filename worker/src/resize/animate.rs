//! The animation path: an animated GIF or WebP whose answer keeps its frames
//! ([`contracts::ResizeOp::animates`]). Each composed frame goes through the
//! same crop, resample and pad as a still image, and straight into the
//! encoder, so memory is a canvas, a resized frame and the output however
//! long the animation. Delays and the loop count are kept; a `gravity=smart`
//! crop is placed on the first frame and holds for all (a crop that moved
//! between frames would shake).

use super::{ResizeError, attention, frames, geometry::Plan, gif, resample, webp_anim};
use contracts::ImageFormat;
use fast_image_resize as fr;

/// One animation to resize.
pub struct Request<'a> {
    pub input: &'a [u8],
    pub format: ImageFormat,
    /// On the canvas (animations carry no orientation).
    pub plan: &'a Plan,
    pub output: ImageFormat,
    pub quality: u8,
    /// The container's loop count ([`contracts::animation::Layout::loops`]).
    pub loops: Option<u16>,
    pub smart: bool,
    /// What the GIF decoder may allocate for one frame.
    pub memory_limit: u64,
}

/// Where resized frames go.
enum Sink {
    Gif(gif::Writer),
    Webp(webp_anim::Encoder),
}

impl Sink {
    fn new(req: &Request<'_>, global_palette: Option<&[u8]>) -> Result<Self, ResizeError> {
        let canvas = req.plan.canvas;
        match req.output {
            ImageFormat::Gif => {
                // WebP's ANIM count is plays; 1 is a GIF without the extension.
                let loops = match (req.format, req.loops) {
                    (_, None) | (ImageFormat::Webp, Some(1)) => gif::Loops::Once,
                    (_, Some(n)) => gif::Loops::Count(n),
                };
                Ok(Self::Gif(gif::Writer::new(canvas, global_palette, loops)?))
            }
            ImageFormat::Webp => {
                let loops = req.loops.unwrap_or(1);
                Ok(Self::Webp(webp_anim::Encoder::new(canvas, req.quality, loops)?))
            }
            other => Err(ResizeError::Internal(format!("{} does not animate", other.name()))),
        }
    }

    fn push(&mut self, rgba: &[u8], delay_ms: u32, palette: gif::Palette<'_>) -> Result<(), ResizeError> {
        match self {
            Self::Gif(w) => w.push(rgba, delay_ms, palette),
            Self::Webp(e) => e.push(rgba, delay_ms),
        }
    }

    fn finish(self) -> Result<(Vec<u8>, u32), ResizeError> {
        match self {
            Self::Gif(w) => w.finish(),
            Self::Webp(e) => e.finish(),
        }
    }
}

/// Resizes every frame; returns the file and its frame count.
pub fn resize(resizer: &mut fr::Resizer, req: &Request<'_>) -> Result<(Vec<u8>, u32), ResizeError> {
    let mut source = frames::Frames::new(req.input, req.format, req.memory_limit)?;
    let canvas = source.canvas();
    let mut sink = Sink::new(req, source.global_palette())?;
    let mut crop = req.plan.crop;
    let mut first = true;
    let mut padded = Vec::new();
    while let Some(frame) = source.next_frame()? {
        if std::mem::take(&mut first) && req.smart {
            let rgb = attention::Decoded::Rgb { pixels: frame.rgba, width: canvas.0, height: canvas.1, alpha: true };
            let whole = (f64::from(canvas.0), f64::from(canvas.1));
            attention::place(resizer, rgb, &mut crop, whole).map_err(ResizeError::Internal)?;
        }
        let resized = resample::resample_rgba(resizer, frame.rgba, canvas, crop, req.plan.content)?;
        let rgba = if req.plan.canvas == req.plan.content {
            &resized
        } else {
            pad(&resized, req.plan, &mut padded);
            &padded
        };
        sink.push(rgba, frame.delay_ms, frame.palette)?;
    }
    sink.finish()
}

/// `contain`'s canvas around an RGBA frame: transparent, as both animated formats allow.
fn pad(content: &[u8], plan: &Plan, out: &mut Vec<u8>) {
    let ((cw, _), (w, h), (x, y)) = (plan.content, plan.canvas, plan.offset);
    out.clear();
    out.resize(w as usize * h as usize * 4, 0);
    let row = cw as usize * 4;
    for (i, src) in content.chunks_exact(row).enumerate() {
        let at = ((y as usize + i) * w as usize + x as usize) * 4;
        out[at..at + row].copy_from_slice(src);
    }
}
