//! Decoding an animation one composed frame at a time: the whole canvas as
//! the viewer sees it after each frame, so each can be resized on its own.
//! Memory is one canvas (two for GIF's "restore previous" disposal), never
//! the animation.

use super::{ResizeError, gif::Palette, webp_anim};
use contracts::ImageFormat;

/// One composed frame.
pub struct Frame<'a> {
    /// The whole canvas, RGBA.
    pub rgba: &'a [u8],
    /// How long it shows, as the file says (GIF: hundredths × 10).
    pub delay_ms: u32,
    /// What it was drawn in, for a GIF written from it.
    pub palette: Palette<'a>,
}

/// The frames of an animated GIF or WebP.
pub enum Frames<'a> {
    Gif(Box<GifFrames<'a>>),
    Webp(webp_anim::Decoder<'a>),
}

impl<'a> Frames<'a> {
    /// `memory_limit` bounds what the GIF decoder may allocate for one frame.
    pub fn new(input: &'a [u8], format: ImageFormat, memory_limit: u64) -> Result<Self, ResizeError> {
        match format {
            ImageFormat::Gif => Ok(Self::Gif(Box::new(GifFrames::new(input, memory_limit)?))),
            ImageFormat::Webp => Ok(Self::Webp(webp_anim::Decoder::new(input)?)),
            other => Err(ResizeError::Internal(format!("{} is not animated", other.name()))),
        }
    }

    pub fn canvas(&self) -> (u32, u32) {
        match self {
            Self::Gif(g) => g.canvas,
            Self::Webp(w) => w.canvas(),
        }
    }

    /// The source's global palette (GIF), which a GIF written from it keeps.
    pub fn global_palette(&self) -> Option<&[u8]> {
        match self {
            Self::Gif(g) => g.global.as_deref(),
            Self::Webp(_) => None,
        }
    }

    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, ResizeError> {
        match self {
            Self::Gif(g) => g.next_frame(),
            Self::Webp(w) => {
                Ok(w.next_frame()?.map(|(rgba, delay_ms)| Frame { rgba, delay_ms, palette: Palette::Unknown }))
            }
        }
    }
}

/// A GIF's frames, composed here from its palette indices: gif's decoder
/// gives each frame's rectangle, disposal is the viewer's job.
pub struct GifFrames<'a> {
    decoder: ::gif::Decoder<&'a [u8]>,
    canvas: (u32, u32),
    global: Option<Vec<u8>>,
    pixels: Vec<u8>,
    /// The canvas before the last frame, when that frame restores it after showing.
    saved: Vec<u8>,
    /// How the last frame leaves the canvas, and its rectangle.
    dispose: Option<(::gif::DisposalMethod, Rect)>,
    /// The last frame's own palette, kept while its frame is lent out.
    local: Vec<u8>,
}

#[derive(Clone, Copy)]
struct Rect {
    left: usize,
    top: usize,
    width: usize,
    height: usize,
}

fn gif_error(e: ::gif::DecodingError) -> ResizeError {
    match e {
        ::gif::DecodingError::Io(io) => ResizeError::Corrupt(format!("GIF: {io}")),
        other => ResizeError::Corrupt(format!("GIF: {other}")),
    }
}

impl<'a> GifFrames<'a> {
    fn new(input: &'a [u8], memory_limit: u64) -> Result<Self, ResizeError> {
        let mut opts = ::gif::DecodeOptions::new();
        opts.set_color_output(::gif::ColorOutput::Indexed);
        if let Some(limit) = std::num::NonZeroU64::new(memory_limit) {
            opts.set_memory_limit(::gif::MemoryLimit::Bytes(limit));
        }
        let decoder = opts.read_info(input).map_err(gif_error)?;
        let canvas = (u32::from(decoder.width()), u32::from(decoder.height()));
        let global = decoder.global_palette().map(<[u8]>::to_vec);
        // Before the first frame the canvas is transparent, as browsers start it.
        let pixels = vec![0; canvas.0 as usize * canvas.1 as usize * 4];
        Ok(Self { decoder, canvas, global, pixels, saved: Vec::new(), dispose: None, local: Vec::new() })
    }

    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, ResizeError> {
        let stride = self.canvas.0 as usize * 4;
        if let Some((method, r)) = self.dispose.take() {
            for y in r.top..r.top + r.height {
                let row = y * stride + r.left * 4..y * stride + (r.left + r.width) * 4;
                match method {
                    ::gif::DisposalMethod::Background => self.pixels[row].fill(0),
                    ::gif::DisposalMethod::Previous if !self.saved.is_empty() => {
                        self.pixels[row.clone()].copy_from_slice(&self.saved[row]);
                    }
                    _ => {}
                }
            }
        }
        let Some(frame) = self.decoder.read_next_frame().map_err(gif_error)? else {
            return Ok(None);
        };
        let r = Rect {
            left: usize::from(frame.left),
            top: usize::from(frame.top),
            width: usize::from(frame.width),
            height: usize::from(frame.height),
        };
        let (cw, ch) = (self.canvas.0 as usize, self.canvas.1 as usize);
        if r.left + r.width > cw || r.top + r.height > ch || frame.buffer.len() < r.width * r.height {
            return Err(ResizeError::Corrupt(format!(
                "GIF frame at {},{} size {}×{} reaches outside the {cw}×{ch} canvas",
                r.left, r.top, r.width, r.height
            )));
        }
        if frame.dispose == ::gif::DisposalMethod::Previous {
            self.saved.clone_from(&self.pixels);
        }
        let (palette_ref, palette) = match (&frame.palette, &self.global) {
            (Some(local), _) => {
                self.local.clone_from(local);
                (&self.local[..], true)
            }
            (None, Some(global)) => (&global[..], false),
            (None, None) => return Err(ResizeError::Corrupt("GIF frame without a colour table".into())),
        };
        let colours = palette_ref.len() / 3;
        let transparent = frame.transparent.map(usize::from);
        for (y, src) in frame.buffer.chunks_exact(r.width).take(r.height).enumerate() {
            let row = &mut self.pixels[(r.top + y) * stride + r.left * 4..][..r.width * 4];
            for (px, &index) in row.chunks_exact_mut(4).zip(src) {
                let i = usize::from(index);
                if Some(i) == transparent {
                    continue;
                }
                // An index past the table is black, as browsers draw it.
                let c = if i < colours { &palette_ref[i * 3..i * 3 + 3] } else { &[0, 0, 0][..] };
                px.copy_from_slice(&[c[0], c[1], c[2], 255]);
            }
        }
        self.dispose = Some((frame.dispose, r));
        let delay_ms = u32::from(frame.delay) * 10;
        let transparent = frame.transparent;
        let palette = if palette { Palette::Local(&self.local, transparent) } else { Palette::Global { transparent } };
        Ok(Some(Frame { rgba: &self.pixels, delay_ms, palette }))
    }
}
