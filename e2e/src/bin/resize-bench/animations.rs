//! The animated inputs of `gif-320`: short clips made from the corpus
//! photos, as a screen recording or a video turned GIF looks: a 640×360
//! window panning and zooming slowly across a photo, 16 frames at 60 ms,
//! every pixel changing a little from frame to frame. Each frame is quantised
//! on its own (NeuQuant, local palettes); `scripts/bench-resize.sh` then runs
//! them through `gifsicle -O2 --colors 256` where gifsicle is installed, which
//! leaves one global palette and changed-rectangle frames, as most GIFs on
//! the web are written.

use anyhow::Context;
use image::{Delay, Frame, codecs::gif::GifEncoder, imageops::FilterType};
use std::path::Path;

/// First argument that turns this binary into the maker of these clips.
pub const MAKE: &str = "--make-animations";

const FRAMES: u32 = 16;
const SIZE: (u32, u32) = (640, 360);
const CLIPS: usize = 8;

/// Writes [`CLIPS`] animated GIFs made from the first JPEGs of `photos` into `out`.
pub fn make(photos: &[std::path::PathBuf], out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    for photo in photos.iter().take(CLIPS) {
        let img = image::open(photo).with_context(|| format!("reading {}", photo.display()))?.into_rgba8();
        // The photo at 1.25 × the window's width: room to pan and zoom.
        let scale = f64::from(SIZE.0) * 1.25 / f64::from(img.width());
        let (w, h) = ((f64::from(img.width()) * scale) as u32, (f64::from(img.height()) * scale) as u32);
        let big = image::imageops::resize(&img, w, h.max(SIZE.1 + 40), FilterType::Triangle);
        let stem = photo.file_stem().context("file name")?.to_string_lossy();
        let path = out.join(format!("{stem}.gif"));
        let mut enc = GifEncoder::new_with_speed(std::fs::File::create(&path)?, 10);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite)?;
        for i in 0..FRAMES {
            // Pan right and down, zooming in by 1 % a frame.
            let zoom = 1.0 - 0.01 * f64::from(i);
            let (cw, ch) = ((f64::from(SIZE.0) * zoom) as u32, (f64::from(SIZE.1) * zoom) as u32);
            let (x, y) = ((i * 8).min(big.width() - cw), (i * 2).min(big.height() - ch));
            let window = image::imageops::crop_imm(&big, x, y, cw, ch).to_image();
            let frame = image::imageops::resize(&window, SIZE.0, SIZE.1, FilterType::Triangle);
            enc.encode_frame(Frame::from_parts(frame, 0, 0, Delay::from_numer_denom_ms(60, 1)))?;
        }
        eprintln!("made {}", path.display());
    }
    Ok(())
}
