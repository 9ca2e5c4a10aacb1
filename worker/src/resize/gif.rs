//! GIF output: resized RGBA frames mapped onto a palette and LZW-coded.
//!
//! A resized GIF keeps its source's palette (each frame's own, else the
//! global one), as gifsicle does: the frames were drawn in those colours, and
//! mapping to them costs a table lookup per pixel where quantising afresh
//! costs a NeuQuant pass per frame. Inputs without a palette (a WebP, a
//! photo asked for as `format=gif`) get one NeuQuant palette from their first
//! frame.
//!
//! Frames are written whole, except that an opaque frame following an opaque
//! frame is cut to the rectangle where it differs from the one before (what
//! the browser shows is the same; the file is smaller and LZW has less to
//! code). A frame with transparent pixels needs a clean canvas below it, so
//! the frame before it is written whole and disposed to the background.

use super::ResizeError;
use std::borrow::Cow;

/// Opacity from which a pixel is drawn; GIF has one bit of alpha.
const OPAQUE_FROM: u8 = 128;
/// NeuQuant's sampling factor (1: every pixel … 30: one in 30) is chosen so
/// that it learns from this many pixels at least: fewer leave neurons untrained.
const NEUQUANT_SAMPLES: usize = 100 * 256;

/// How the animation plays, as its container said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loops {
    /// No looping extension: played once.
    Once,
    /// The NETSCAPE2.0 count; 0 is forever.
    Count(u16),
}

/// The colours a source frame was drawn in.
#[derive(Debug, Clone, Copy)]
pub enum Palette<'a> {
    /// The source's global table (given to [`Writer::new`]), with this frame's transparent index.
    Global { transparent: Option<u8> },
    /// The frame's own table and transparent index.
    Local(&'a [u8], Option<u8>),
    /// None: a NeuQuant palette of the first such frame serves them all.
    Unknown,
}

/// Bits per channel of the colour a [`Mapper`] caches its answers by: 6
/// keeps the mapping within a level or two of the exact nearest colour
/// (5 bits cost 0.008 of SSIM against libvips on the `gif-320` clips, at
/// 1.25 × the speed), for 512 KiB of cache.
const CACHE_BITS: u32 = 6;
const CACHE_SIZE: usize = 1 << (3 * CACHE_BITS);

/// A palette and the transparent index it reserves, with a cache from
/// [`CACHE_BITS`]-bit colour to palette index.
struct Mapper {
    palette: Vec<u8>,
    transparent: Option<u8>,
    /// `u16::MAX`: not looked up yet.
    cache: Vec<u16>,
}

impl Mapper {
    fn new(mut palette: Vec<u8>, transparent: Option<u8>) -> Self {
        palette.truncate(256 * 3);
        palette.truncate(palette.len() / 3 * 3);
        if palette.is_empty() {
            palette.extend([0, 0, 0]);
        }
        let transparent = transparent.filter(|&t| usize::from(t) < palette.len() / 3);
        Self { palette, transparent, cache: vec![u16::MAX; CACHE_SIZE] }
    }

    /// A transparent index, reserved now if the palette has none.
    fn transparent_index(&mut self) -> u8 {
        if let Some(t) = self.transparent {
            return t;
        }
        let t = if self.palette.len() < 256 * 3 {
            self.palette.extend([0, 0, 0]);
            self.palette.len() / 3 - 1
        } else {
            // A full palette gives up its last colour; what mapped to it maps again.
            self.cache.fill(u16::MAX);
            255
        };
        self.transparent = Some(t as u8);
        t as u8
    }

    fn nearest(&self, r: u8, g: u8, b: u8) -> u8 {
        let mut best = (u32::MAX, 0);
        for (i, c) in self.palette.chunks_exact(3).enumerate() {
            if Some(i as u8) == self.transparent {
                continue;
            }
            let d = |a: u8, b: u8| (i32::from(a) - i32::from(b)).pow(2) as u32;
            let dist = 2 * d(c[0], r) + 4 * d(c[1], g) + 3 * d(c[2], b);
            if dist < best.0 {
                best = (dist, i);
            }
        }
        best.1 as u8
    }

    /// Maps RGBA pixels to indices; returns whether any is transparent.
    fn map(&mut self, rgba: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        out.reserve(rgba.len() / 4);
        let mut any_transparent = false;
        for px in rgba.chunks_exact(4) {
            if px[3] < OPAQUE_FROM {
                any_transparent = true;
                out.push(self.transparent_index());
                continue;
            }
            let shift = 8 - CACHE_BITS;
            let key = (usize::from(px[0] >> shift) << (2 * CACHE_BITS))
                | (usize::from(px[1] >> shift) << CACHE_BITS)
                | usize::from(px[2] >> shift);
            let mut index = self.cache[key];
            if index == u16::MAX {
                index = u16::from(self.nearest(px[0], px[1], px[2]));
                self.cache[key] = index;
            }
            out.push(index as u8);
        }
        any_transparent
    }
}

/// A frame mapped to indices, held until the next frame says how it must be disposed.
struct Pending {
    indices: Vec<u8>,
    transparent_pixels: bool,
    delay_cs: u16,
    /// Its own palette, when it is not the global one.
    palette: Option<Vec<u8>>,
    transparent: Option<u8>,
    /// Whether the frame before it stayed on the canvas below it, whole.
    over_previous: bool,
}

/// Writes a GIF frame by frame; memory is the output, two frames of indices
/// and the palettes.
pub struct Writer {
    encoder: ::gif::Encoder<Vec<u8>>,
    size: (u16, u16),
    global: Option<Mapper>,
    /// The current frame's palette when it is not the global one.
    local: Option<Mapper>,
    pending: Option<Pending>,
    /// The indices of the frame before the pending one, as shown.
    shown: Vec<u8>,
    /// Colours in the header's global table (0: none).
    header_palette_len: usize,
    frames: u32,
}

fn gif_error(e: impl std::fmt::Display) -> ResizeError {
    ResizeError::Internal(format!("gif encoder: {e}"))
}

impl Writer {
    /// A GIF of `size`, with the source's global palette if it had one.
    pub fn new(size: (u32, u32), global_palette: Option<&[u8]>, loops: Loops) -> Result<Self, ResizeError> {
        let w = u16::try_from(size.0).map_err(|_| ResizeError::Internal("GIF is at most 65535 wide".into()))?;
        let h = u16::try_from(size.1).map_err(|_| ResizeError::Internal("GIF is at most 65535 high".into()))?;
        let global = global_palette.filter(|p| p.len() >= 3).map(|p| Mapper::new(p.to_vec(), None));
        // The header carries the global palette; its transparent slot, if one
        // is needed later, is reserved per frame in a local copy instead.
        let header_palette = global.as_ref().map_or(&[][..], |m| &m.palette[..]);
        let mut encoder = ::gif::Encoder::new(Vec::new(), w, h, header_palette).map_err(gif_error)?;
        if let Loops::Count(n) = loops {
            let repeat = if n == 0 { ::gif::Repeat::Infinite } else { ::gif::Repeat::Finite(n) };
            encoder.set_repeat(repeat).map_err(gif_error)?;
        }
        let header_palette_len = header_palette.len();
        Ok(Self {
            encoder,
            size: (w, h),
            global,
            local: None,
            pending: None,
            shown: Vec::new(),
            header_palette_len,
            frames: 0,
        })
    }

    /// Adds a frame: `rgba` of the whole canvas, shown for `delay_ms`, drawn
    /// in the source frame's `palette`.
    pub fn push(&mut self, rgba: &[u8], delay_ms: u32, palette: Palette<'_>) -> Result<(), ResizeError> {
        let expected = usize::from(self.size.0) * usize::from(self.size.1) * 4;
        if rgba.len() != expected {
            return Err(ResizeError::Internal(format!("GIF frame of {} bytes, expected {expected}", rgba.len())));
        }
        let own_palette = matches!(palette, Palette::Local(p, _) if p.len() >= 3);
        let mapper = match palette {
            Palette::Local(p, transparent) if p.len() >= 3 => {
                let same =
                    self.local.as_ref().is_some_and(|m| m.palette.starts_with(p) && m.transparent == transparent);
                if !same {
                    self.local = Some(Mapper::new(p.to_vec(), transparent));
                }
                self.local.as_mut().expect("set above")
            }
            Palette::Global { transparent } if self.global.is_some() => {
                self.local = None;
                let global = self.global.as_mut().expect("matched");
                let valid = transparent.filter(|&t| usize::from(t) < global.palette.len() / 3);
                if valid.is_some() && global.transparent != valid {
                    global.transparent = valid;
                    global.cache.fill(u16::MAX);
                }
                global
            }
            _ => {
                if self.global.is_none() {
                    // No palette anywhere: one from the first frame, for all.
                    let mut pixels = rgba.to_vec();
                    let factor = (pixels.len() / 4 / NEUQUANT_SAMPLES).clamp(1, 10) as i32;
                    let nq = color_quant::NeuQuant::new(factor, 256, &pixels);
                    pixels.clear();
                    self.global = Some(Mapper::new(nq.color_map_rgb(), None));
                }
                self.local = None;
                self.global.as_mut().expect("set above")
            }
        };
        let mut indices = Vec::new();
        let transparent_pixels = mapper.map(rgba, &mut indices);
        // The header's table cannot change once written: a transparent slot
        // added to it, or a palette made after it, travels as a local table.
        let palette_out =
            (own_palette || mapper.palette.len() != self.header_palette_len).then(|| mapper.palette.clone());
        let next = Pending {
            indices,
            transparent_pixels,
            delay_cs: u16::try_from(delay_ms.div_ceil(10)).unwrap_or(u16::MAX),
            palette: palette_out,
            transparent: mapper.transparent,
            over_previous: false,
        };
        self.flush(Some(next))
    }

    /// Writes the pending frame, now that the next one (if any) is known.
    fn flush(&mut self, next: Option<Pending>) -> Result<(), ResizeError> {
        let Some(mut frame) = self.pending.take() else {
            // The first frame: nothing below it (`push` made it with `over_previous: false`).
            self.pending = next;
            return Ok(());
        };
        // A frame with transparent pixels must not show the frame before
        // through them: that one is disposed to the background, whole.
        let next_needs_clean = next.as_ref().is_some_and(|n| n.transparent_pixels);
        let dispose = if next_needs_clean { ::gif::DisposalMethod::Background } else { ::gif::DisposalMethod::Keep };
        let (w, h) = (usize::from(self.size.0), usize::from(self.size.1));
        let mut rect = (0, 0, w, h);
        if frame.over_previous
            && !frame.transparent_pixels
            && !next_needs_clean
            && self.shown.len() == frame.indices.len()
        {
            rect = changed(&self.shown, &frame.indices, w, h).unwrap_or((0, 0, 1, 1));
        }
        let (x, y, rw, rh) = rect;
        let buffer: Cow<'_, [u8]> = if (rw, rh) == (w, h) {
            Cow::Borrowed(&frame.indices)
        } else {
            Cow::Owned(
                frame.indices.chunks_exact(w).skip(y).take(rh).flat_map(|row| &row[x..x + rw]).copied().collect(),
            )
        };
        let out = ::gif::Frame {
            delay: frame.delay_cs,
            dispose,
            transparent: frame.transparent,
            left: x as u16,
            top: y as u16,
            width: rw as u16,
            height: rh as u16,
            palette: frame.palette.take(),
            buffer,
            ..::gif::Frame::default()
        };
        self.encoder.write_frame(&out).map_err(gif_error)?;
        drop(out);
        self.frames += 1;
        // What the canvas shows under the next frame: this one if kept.
        let kept = dispose == ::gif::DisposalMethod::Keep;
        self.shown = frame.indices;
        self.pending = next.map(|mut n| {
            n.over_previous = kept;
            n
        });
        Ok(())
    }

    /// Writes the last frame and the trailer; returns the file and its frame count.
    pub fn finish(mut self) -> Result<(Vec<u8>, u32), ResizeError> {
        self.flush(None)?;
        let frames = self.frames;
        let bytes = self.encoder.into_inner().map_err(gif_error)?;
        Ok((bytes, frames))
    }
}

/// The smallest rectangle (x, y, w, h) outside which `a` and `b` agree;
/// `None` when they are equal.
fn changed(a: &[u8], b: &[u8], w: usize, h: usize) -> Option<(usize, usize, usize, usize)> {
    let rows = |y: usize| a[y * w..(y + 1) * w] != b[y * w..(y + 1) * w];
    let top = (0..h).find(|&y| rows(y))?;
    let bottom = (top..h).rev().find(|&y| rows(y)).unwrap_or(top);
    let (mut left, mut right) = (w, 0);
    for y in top..=bottom {
        let (ra, rb) = (&a[y * w..(y + 1) * w], &b[y * w..(y + 1) * w]);
        if let Some(l) = ra.iter().zip(rb).position(|(p, q)| p != q) {
            left = left.min(l);
            let r = w - 1 - ra.iter().rev().zip(rb.iter().rev()).position(|(p, q)| p != q).unwrap_or(0);
            right = right.max(r);
        }
    }
    Some((left, top, right + 1 - left, bottom + 1 - top))
}

/// A still image as a GIF (`format=gif`): interleaved RGB or RGBA.
pub fn encode_still(buf: &[u8], width: u32, height: u32, alpha: bool) -> Result<Vec<u8>, ResizeError> {
    let rgba: Cow<'_, [u8]> = if alpha {
        Cow::Borrowed(buf)
    } else {
        Cow::Owned(buf.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect())
    };
    let mut writer = Writer::new((width, height), None, Loops::Once)?;
    writer.push(&rgba, 0, Palette::Unknown)?;
    Ok(writer.finish()?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoded frame: its RGBA, delay and rectangle (left, top, width, height).
    type Decoded = (Vec<u8>, u16, (u16, u16, u16, u16));

    fn decode(bytes: &[u8]) -> Vec<Decoded> {
        let mut opts = ::gif::DecodeOptions::new();
        opts.set_color_output(::gif::ColorOutput::RGBA);
        let mut d = opts.read_info(bytes).unwrap();
        let mut out = Vec::new();
        while let Some(f) = d.read_next_frame().unwrap() {
            out.push((f.buffer.to_vec(), f.delay, (f.left, f.top, f.width, f.height)));
        }
        out
    }

    #[test]
    fn opaque_frames_after_the_first_are_cut_to_what_changed() {
        let palette = [0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255];
        let (w, h) = (8u32, 6u32);
        let red = [255u8, 0, 0, 255].repeat((w * h) as usize);
        let mut second = red.clone();
        second[(2 * w as usize + 3) * 4..][..4].copy_from_slice(&[0, 0, 250, 255]); // (3, 2) turns blue
        let mut writer = Writer::new((w, h), Some(&palette), Loops::Count(0)).unwrap();
        let global = Palette::Global { transparent: None };
        writer.push(&red, 100, global).unwrap();
        writer.push(&second, 40, global).unwrap();
        writer.push(&second, 40, global).unwrap();
        let (bytes, frames) = writer.finish().unwrap();
        assert_eq!(frames, 3);
        let decoded = decode(&bytes);
        assert_eq!(decoded[0].2, (0, 0, 8, 6), "the first frame is whole");
        assert_eq!(decoded[1].2, (3, 2, 1, 1));
        assert_eq!(decoded[1].0, vec![0, 0, 255, 255], "mapped to the palette's blue");
        assert_eq!(decoded[2].2, (0, 0, 1, 1), "an unchanged frame is one pixel, kept for its delay");
        assert_eq!((decoded[0].1, decoded[1].1), (10, 4), "delays in hundredths");
        assert_eq!(contracts::animation::gif(&bytes).unwrap().loops, Some(0));
    }

    #[test]
    fn transparent_frames_are_whole_and_the_frame_before_is_cleared() {
        let (w, h) = (4u32, 4u32);
        let opaque = [10u8, 200, 30, 255].repeat(16);
        let mut holed = opaque.clone();
        holed[..4].copy_from_slice(&[0, 0, 0, 0]);
        let mut writer = Writer::new((w, h), None, Loops::Once).unwrap();
        writer.push(&opaque, 50, Palette::Unknown).unwrap();
        writer.push(&holed, 50, Palette::Unknown).unwrap();
        let (bytes, _) = writer.finish().unwrap();
        let mut opts = ::gif::DecodeOptions::new();
        opts.set_color_output(::gif::ColorOutput::Indexed);
        let mut d = opts.read_info(&bytes[..]).unwrap();
        let first = d.read_next_frame().unwrap().unwrap();
        assert_eq!(first.dispose, ::gif::DisposalMethod::Background);
        let second = d.read_next_frame().unwrap().unwrap();
        assert_eq!((second.width, second.height), (4, 4));
        assert_eq!(second.buffer[0], second.transparent.unwrap());
        assert_eq!(contracts::animation::gif(&bytes).unwrap().loops, None, "played once: no extension");
    }

    #[test]
    fn a_still_photo_gets_a_palette_of_its_own() {
        let rgb: Vec<u8> = (0..64u32 * 64).flat_map(|i| [(i % 64 * 4) as u8, (i / 64 * 4) as u8, 128]).collect();
        let bytes = encode_still(&rgb, 64, 64, false).unwrap();
        let frames = decode(&bytes);
        assert_eq!(frames.len(), 1);
        let err: u64 =
            frames[0].0.chunks_exact(4).zip(rgb.chunks_exact(3)).map(|(a, b)| u64::from(a[0].abs_diff(b[0]))).sum();
        assert!(err / (64 * 64) < 8, "mean error {} on red", err / (64 * 64));
    }
}
