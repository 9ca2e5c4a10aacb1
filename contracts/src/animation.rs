//! The frame structure of animated GIF and WebP, read from the container
//! alone: no pixel is decoded, so the edge can tell an animation from a still
//! image and the worker can refuse an animation bomb (a thousand 4 K frames)
//! before it decodes the first frame.

/// What an animated container declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The logical screen (GIF) or canvas (WebP) every frame is drawn on.
    pub canvas: (u32, u32),
    /// Frames in the file; 1 for a still image.
    pub frames: u32,
    /// The loop count as the container writes it (GIF's NETSCAPE2.0
    /// extension, WebP's `ANIM` chunk), 0 meaning forever; `None`: a GIF
    /// without the extension, which plays once.
    pub loops: Option<u16>,
}

impl Layout {
    pub fn animated(&self) -> bool {
        self.frames > 1
    }

    /// Pixels over all frames as they are composed: each frame is a whole canvas.
    pub fn total_pixels(&self) -> u64 {
        u64::from(self.canvas.0) * u64::from(self.canvas.1) * u64::from(self.frames)
    }
}

/// Why a container's structure is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("truncated {0} container")]
    Truncated(&'static str),
    #[error("frame {frame} at {left},{top} size {width}×{height} reaches outside the {canvas_w}×{canvas_h} canvas")]
    OutsideCanvas { frame: u32, left: u32, top: u32, width: u32, height: u32, canvas_w: u32, canvas_h: u32 },
    #[error("frame {0} is empty (zero width or height)")]
    EmptyFrame(u32),
}

/// The layout of a GIF: its blocks are walked, the image data of each frame
/// skipped sub-block by sub-block. Frames must lie within the logical screen:
/// browsers clip what reaches outside, decoders differ, and a frame larger
/// than its canvas is the usual shape of a crafted file. A file that ends
/// early counts the frames begun, as decoders show them.
pub fn gif(bytes: &[u8]) -> Result<Layout, LayoutError> {
    const WHAT: &str = "GIF";
    let cut = || LayoutError::Truncated(WHAT);
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]])).ok_or_else(cut);
    let canvas = (u32::from(u16_at(6)?), u32::from(u16_at(8)?));
    let flags = *bytes.get(10).ok_or_else(cut)?;
    let mut at = 13 + color_table_len(flags);
    let mut frames = 0u32;
    let mut loops = None;
    // A missing trailer or a cut in a block ends the walk like a trailer.
    while let Some(&block) = bytes.get(at) {
        match block {
            // Trailer.
            0x3B => break,
            // Extension: label, then sub-blocks.
            0x21 => {
                let Some(&label) = bytes.get(at + 1) else { break };
                let first = bytes.get(at + 2).map(|&n| n as usize);
                if label == 0xFF
                    && first == Some(11)
                    && matches!(bytes.get(at + 3..at + 14), Some(b"NETSCAPE2.0" | b"ANIMEXTS1.0"))
                    && bytes.get(at + 14) == Some(&3)
                    && bytes.get(at + 15) == Some(&1)
                {
                    loops = u16_at(at + 16).ok();
                }
                let Some(next) = skip_sub_blocks(bytes, at + 2) else { break };
                at = next;
            }
            // Image descriptor: position, size, flags, then the LZW code size and data.
            0x2C => {
                let (Ok(left), Ok(top), Ok(width), Ok(height)) =
                    (u16_at(at + 1), u16_at(at + 3), u16_at(at + 5), u16_at(at + 7))
                else {
                    break;
                };
                let (left, top, width, height) = (u32::from(left), u32::from(top), u32::from(width), u32::from(height));
                if width == 0 || height == 0 {
                    return Err(LayoutError::EmptyFrame(frames));
                }
                inside(frames, (left, top, width, height), canvas)?;
                frames += 1;
                let Some(&local) = bytes.get(at + 9) else { break };
                let Some(next) = skip_sub_blocks(bytes, at + 10 + color_table_len(local) + 1) else { break };
                at = next;
            }
            // Anything else ends the stream as decoders treat it: what came before counts.
            _ => break,
        }
    }
    Ok(Layout { canvas, frames, loops })
}

/// Refuses frame `frame` at (`left`, `top`) of `width`×`height` unless it lies within `canvas`.
fn inside(frame: u32, (left, top, width, height): (u32, u32, u32, u32), canvas: (u32, u32)) -> Result<(), LayoutError> {
    if left + width > canvas.0 || top + height > canvas.1 {
        let (canvas_w, canvas_h) = canvas;
        return Err(LayoutError::OutsideCanvas { frame, left, top, width, height, canvas_w, canvas_h });
    }
    Ok(())
}

/// Bytes of the colour table a GIF flags byte announces.
fn color_table_len(flags: u8) -> usize {
    if flags & 0x80 == 0 { 0 } else { 3 << ((flags & 7) + 1) }
}

/// The offset after the sub-blocks starting at `at` (each a length byte and
/// that many bytes, a zero length ends them).
fn skip_sub_blocks(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *bytes.get(at)? as usize;
        at += 1;
        if len == 0 {
            return Some(at);
        }
        at += len;
    }
}

/// The layout of a WebP: a still image unless its `VP8X` header sets the
/// animation flag, then its `ANIM` chunk and every `ANMF` frame header.
pub fn webp(bytes: &[u8]) -> Result<Layout, LayoutError> {
    const WHAT: &str = "WebP";
    let cut = || LayoutError::Truncated(WHAT);
    let u24_at = |at: usize| bytes.get(at..at + 3).map(|b| u32::from_le_bytes([b[0], b[1], b[2], 0])).ok_or_else(cut);
    if bytes.get(12..16) != Some(b"VP8X") || bytes.get(20).is_none_or(|flags| flags & 0x02 == 0) {
        // The still image's own size is the decoder's to read.
        return Ok(Layout { canvas: (0, 0), frames: 1, loops: None });
    }
    let canvas = (u24_at(24)? + 1, u24_at(27)? + 1);
    let mut at = 12;
    let (mut frames, mut loops) = (0u32, None);
    while let Some(head) = bytes.get(at..at + 8) {
        let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let body = at + 8;
        match &head[..4] {
            b"ANIM" => {
                loops = Some(bytes.get(body + 4..body + 6).map(|b| u16::from_le_bytes([b[0], b[1]])).ok_or_else(cut)?);
            }
            b"ANMF" => {
                let (left, top) = (u24_at(body)? * 2, u24_at(body + 3)? * 2);
                let (width, height) = (u24_at(body + 6)? + 1, u24_at(body + 9)? + 1);
                inside(frames, (left, top, width, height), canvas)?;
                frames += 1;
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        at = body.saturating_add(size).saturating_add(size & 1);
    }
    if frames == 0 {
        return Err(cut());
    }
    Ok(Layout { canvas, frames, loops })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A GIF of `frames` 1×1 frames at (`left`, `top`) on a `w`×`h` screen.
    pub(crate) fn gif_bytes(w: u16, h: u16, frames: &[(u16, u16, u16, u16)], loops: Option<u16>) -> Vec<u8> {
        let mut b = b"GIF89a".to_vec();
        b.extend(w.to_le_bytes());
        b.extend(h.to_le_bytes());
        b.extend([0x80, 0, 0]); // global table of 2 colours
        b.extend([0, 0, 0, 255, 255, 255]);
        if let Some(n) = loops {
            b.extend([0x21, 0xFF, 11]);
            b.extend(b"NETSCAPE2.0");
            b.extend([3, 1]);
            b.extend(n.to_le_bytes());
            b.push(0);
        }
        for &(left, top, fw, fh) in frames {
            b.extend([0x21, 0xF9, 4, 0, 10, 0, 0, 0]); // graphic control: 100 ms
            b.push(0x2C);
            for v in [left, top, fw, fh] {
                b.extend(v.to_le_bytes());
            }
            b.extend([0, 2, 2, 0x4C, 0x01, 0]); // LZW data of one pixel
        }
        b.push(0x3B);
        b
    }

    #[test]
    fn gif_frames_and_loops_are_counted_without_decoding() {
        let l = gif(&gif_bytes(4, 3, &[(0, 0, 1, 1), (3, 2, 1, 1), (0, 0, 4, 3)], Some(0))).unwrap();
        assert_eq!(l, Layout { canvas: (4, 3), frames: 3, loops: Some(0) });
        assert!(l.animated());
        assert_eq!(l.total_pixels(), 36);
        let still = gif(&gif_bytes(4, 3, &[(0, 0, 4, 3)], None)).unwrap();
        assert_eq!((still.frames, still.loops, still.animated()), (1, None, false));
        assert_eq!(gif(&gif_bytes(4, 3, &[(0, 0, 1, 1)], Some(7))).unwrap().loops, Some(7));
    }

    #[test]
    fn gif_frames_outside_the_canvas_or_truncated_files_are_refused() {
        let err = gif(&gif_bytes(4, 3, &[(0, 0, 1, 1), (3, 0, 2, 1)], None)).unwrap_err();
        assert!(matches!(err, LayoutError::OutsideCanvas { frame: 1, left: 3, width: 2, .. }), "{err}");
        assert_eq!(gif(&gif_bytes(4, 3, &[(0, 0, 0, 1)], None)).unwrap_err(), LayoutError::EmptyFrame(0));
        let whole = gif_bytes(4, 3, &[(0, 0, 1, 1), (0, 0, 1, 1)], Some(0));
        assert!(gif(&whole[..10]).is_err(), "no logical screen");
        let mut counts = Vec::new();
        for cut in 13..whole.len() {
            counts.push(gif(&whole[..cut]).unwrap().frames);
        }
        assert!(counts.windows(2).all(|w| w[0] <= w[1]) && counts.last() == Some(&2), "{counts:?}");
        assert_eq!(counts[0], 0);
    }

    fn chunk(name: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut c = name.to_vec();
        c.extend((body.len() as u32).to_le_bytes());
        c.extend(body);
        if body.len() % 2 == 1 {
            c.push(0);
        }
        c
    }

    fn u24(v: u32) -> [u8; 3] {
        let b = v.to_le_bytes();
        [b[0], b[1], b[2]]
    }

    /// An animated WebP's container with frame headers (and no real frame data).
    pub(crate) fn webp_bytes(w: u32, h: u32, frames: &[(u32, u32, u32, u32)], loops: u16) -> Vec<u8> {
        let mut vp8x = vec![0x02, 0, 0, 0];
        vp8x.extend(u24(w - 1));
        vp8x.extend(u24(h - 1));
        let mut body = b"WEBP".to_vec();
        body.extend(chunk(b"VP8X", &vp8x));
        let mut anim = vec![0; 4];
        anim.extend(loops.to_le_bytes());
        body.extend(chunk(b"ANIM", &anim));
        for &(x, y, fw, fh) in frames {
            let mut f = Vec::new();
            for v in [x / 2, y / 2, fw - 1, fh - 1, 100] {
                f.extend(u24(v));
            }
            f.extend([0, 1, 2, 3]); // flags, then a stand-in for the frame's bitstream
            body.extend(chunk(b"ANMF", &f));
        }
        let mut b = b"RIFF".to_vec();
        b.extend((body.len() as u32).to_le_bytes());
        b.extend(body);
        b
    }

    #[test]
    fn webp_frames_and_loops_are_counted_from_the_chunks() {
        let l = webp(&webp_bytes(640, 480, &[(0, 0, 640, 480), (100, 50, 20, 20)], 3)).unwrap();
        assert_eq!(l, Layout { canvas: (640, 480), frames: 2, loops: Some(3) });
        let err = webp(&webp_bytes(64, 48, &[(0, 0, 64, 48), (50, 0, 16, 8)], 0)).unwrap_err();
        assert!(matches!(err, LayoutError::OutsideCanvas { frame: 1, .. }), "{err}");
        // A still WebP (no animation flag) is one frame.
        assert_eq!(webp(b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0").unwrap().frames, 1);
        assert_eq!(webp(&webp_bytes(8, 8, &[], 0)).unwrap_err(), LayoutError::Truncated("WebP"));
    }
}
