//! Step 1: what the input is, from its first bytes and its header alone, and
//! the pixel-limit refusal that must come before any pixel is decoded.

use super::{Limits, ResizeError, decode};
use contracts::ImageFormat;
use contracts::animation::{self, Layout};
use turbojpeg::Decompressor;

/// The input as its header describes it.
pub struct Probe {
    /// From the bytes, never from what the client declared.
    pub format: ImageFormat,
    pub header: decode::Header,
    /// Stored width × height (what the limit and usage count).
    pub pixels: u64,
    /// The frames of a GIF or WebP, from the container.
    pub layout: Option<Layout>,
}

/// Sniffs `input`, reads its header and refuses it when it declares more
/// pixels than `limits` allow (or none at all).
pub fn probe(jpeg: &mut Decompressor, input: &[u8], limits: &Limits) -> Result<Probe, ResizeError> {
    let format = ImageFormat::sniff(input)
        .ok_or_else(|| ResizeError::Unsupported(format!("not a {} image", contracts::format::READABLE)))?;
    let header = decode::header(jpeg, input, format)?;
    let pixels = u64::from(header.width) * u64::from(header.height);
    if pixels > limits.max_pixels || header.width == 0 || header.height == 0 {
        return Err(ResizeError::PixelLimit {
            width: header.width.into(),
            height: header.height.into(),
            pixels,
            limit: limits.max_pixels,
        });
    }
    // A frame outside its canvas is refused whether or not the frames are kept: decoders disagree on it.
    let layout = match format {
        ImageFormat::Gif => Some(animation::gif(input)),
        ImageFormat::Webp => Some(animation::webp(input)),
        _ => None,
    }
    .transpose()
    .map_err(|e| ResizeError::Corrupt(e.to_string()))?;
    Ok(Probe { format, header, pixels, layout })
}

/// Refuses an animation whose frames are kept when it has more frames, or
/// more pixels over all frames, than `limits` allow.
pub fn animation_limits(layout: &Layout, limits: &Limits) -> Result<(), ResizeError> {
    if layout.frames > limits.max_frames || layout.total_pixels() > limits.max_animation_pixels {
        return Err(ResizeError::AnimationLimit {
            frames: layout.frames,
            pixels: layout.total_pixels(),
            max_frames: limits.max_frames,
            max_pixels: limits.max_animation_pixels,
        });
    }
    Ok(())
}
