//! `gravity=smart`: where a `cover` crop keeps the part of a photo that draws
//! the eye, in the spirit of libvips' `interesting=attention`.
//!
//! Both decode paths hand this step small Y'CbCr planes of the decoded image
//! ([`MAP_SIDE`] on the long side: the decoded pixels are read once, by the
//! resampler, and everything after works on a few thousand samples). Each
//! sample scores detail (luma Laplacian), colourfulness (chroma distance from
//! grey) and skin tones; the crop window slides along its free axis over the
//! score's prefix sums and takes the best total, with a slight pull to the
//! centre so that a featureless image is cropped as `center` would crop it.

use super::geometry::Crop;
use fast_image_resize::{self as fr, FilterType, PixelType, ResizeAlg, ResizeOptions, images::Image, images::ImageRef};

/// The decoded image, as either path holds it: each plane spans the whole
/// stored image, at its own resolution.
pub enum Decoded<'a> {
    /// Luma and, for colour, the two chroma planes (`(samples, width, height)`, rows packed).
    Planes { y: (&'a [u8], u32, u32), chroma: Option<[(&'a [u8], u32, u32); 2]> },
    /// Interleaved RGB or RGBA.
    Rgb { pixels: &'a [u8], width: u32, height: u32, alpha: bool },
}

/// Moves `crop` (in stored pixels of a `stored` size image; only its position
/// changes) to where the image draws the eye.
pub fn place(
    resizer: &mut fr::Resizer,
    decoded: Decoded<'_>,
    crop: &mut Crop,
    stored: (f64, f64),
) -> Result<(), String> {
    let _span = tracing::info_span!("attention").entered();
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let boxed = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box));
    let mut shrink = |src: &[u8], (w, h): (u32, u32), pixel: PixelType, to: (u32, u32)| {
        let src = ImageRef::new(w, h, src, pixel).map_err(|x| e(&x))?;
        let mut dst = Image::new(to.0, to.1, pixel);
        resizer.resize(&src, &mut dst, &boxed).map_err(|x| e(&x))?;
        Ok::<_, String>(dst.into_vec())
    };
    let (y, cb, cr, (mw, mh)) = match decoded {
        Decoded::Planes { y: (luma, w, h), chroma } => {
            let size = map_size(w, h);
            let y = shrink(luma, (w, h), PixelType::U8, size)?;
            let (cb, cr) = match chroma {
                Some([(cb, cw, ch), (cr, _, _)]) => {
                    (shrink(cb, (cw, ch), PixelType::U8, size)?, shrink(cr, (cw, ch), PixelType::U8, size)?)
                }
                None => (vec![128; y.len()], vec![128; y.len()]),
            };
            (y, cb, cr, size)
        }
        Decoded::Rgb { pixels, width, height, alpha } => {
            let size = map_size(width, height);
            let pixel = if alpha { PixelType::U8x4 } else { PixelType::U8x3 };
            let small = shrink(pixels, (width, height), pixel, size)?;
            let n = (size.0 * size.1) as usize;
            let (mut y, mut cb, mut cr) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
            for px in small.chunks_exact(if alpha { 4 } else { 3 }) {
                let (r, g, b) = (f32::from(px[0]), f32::from(px[1]), f32::from(px[2]));
                // JPEG's full-range BT.601, as the plane path's samples are.
                y.push((0.299 * r + 0.587 * g + 0.114 * b).round() as u8);
                cb.push((128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b).round().clamp(0.0, 255.0) as u8);
                cr.push((128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b).round().clamp(0.0, 255.0) as u8);
            }
            (y, cb, cr, size)
        }
    };
    let (mw, mh) = (mw as usize, mh as usize);
    let scores = score(&Planes { y: &y, cb: &cb, cr: &cr, width: mw, height: mh });
    let window = (crop.width / stored.0 * mw as f64, crop.height / stored.1 * mh as f64);
    let (gx, gy) = placement(&scores, (mw, mh), window);
    crop.left = (stored.0 - crop.width).max(0.0) * gx;
    crop.top = (stored.1 - crop.height).max(0.0) * gy;
    Ok(())
}

/// Long side of the score map, in samples. Fine enough to place a crop within
/// 1/128 of the image, coarse enough to cost a small fraction of a conversion.
pub const MAP_SIDE: u32 = 128;

/// Small planes of the same size, full-range Y'CbCr as JPEG stores it.
pub struct Planes<'a> {
    pub y: &'a [u8],
    pub cb: &'a [u8],
    pub cr: &'a [u8],
    pub width: usize,
    pub height: usize,
}

/// Map size for a `w`×`h` image: [`MAP_SIDE`] on the long side, the aspect kept.
pub fn map_size(w: u32, h: u32) -> (u32, u32) {
    let scale = f64::from(MAP_SIDE) / f64::from(w.max(h));
    if scale >= 1.0 {
        return (w.max(1), h.max(1));
    }
    (((f64::from(w) * scale).round() as u32).max(1), ((f64::from(h) * scale).round() as u32).max(1))
}

/// How much each sample draws attention.
pub fn score(p: &Planes<'_>) -> Vec<f32> {
    let (w, h) = (p.width, p.height);
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let at = |dx: isize, dy: isize| {
                let xx = (x as isize + dx).clamp(0, w as isize - 1) as usize;
                let yy = (y as isize + dy).clamp(0, h as isize - 1) as usize;
                f32::from(p.y[yy * w + xx])
            };
            let edge = (4.0 * at(0, 0) - at(-1, 0) - at(1, 0) - at(0, -1) - at(0, 1)).abs();
            let i = y * w + x;
            let (cb, cr) = (f32::from(p.cb[i]) - 128.0, f32::from(p.cr[i]) - 128.0);
            let saturation = (cb * cb + cr * cr).sqrt();
            // The classic Y'CbCr skin cluster (Chai and Ngan), on lit samples only.
            let skin = (-51.0..=-1.0).contains(&cb) && (5.0..=45.0).contains(&cr) && p.y[i] > 60;
            out[i] = edge + 0.5 * saturation + if skin { 40.0 } else { 0.0 };
        }
    }
    out
}

/// Where a `window` (in map samples, at most the map) sits on the `w`×`h`
/// score map: as a fraction of the slack on each axis, like
/// [`contracts::Gravity::placement`].
pub fn placement(scores: &[f32], (w, h): (usize, usize), window: (f64, f64)) -> (f64, f64) {
    let (ww, wh) = (window.0.clamp(1.0, w as f64), window.1.clamp(1.0, h as f64));
    // Totals per column and per row: a `cover` crop spans one axis whole, so
    // the search is along the other; if both have slack (rounding), each
    // axis is placed on its own totals.
    let mut columns = vec![0f64; w];
    let mut rows = vec![0f64; h];
    for y in 0..h {
        for x in 0..w {
            let s = f64::from(scores[y * w + x]);
            columns[x] += s;
            rows[y] += s;
        }
    }
    (along(&columns, ww), along(&rows, wh))
}

/// The best start of a run of `len` (fractional) samples over `totals`, as a fraction of the slack.
fn along(totals: &[f64], len: f64) -> f64 {
    let n = totals.len();
    let slack = n as f64 - len;
    if slack < 0.5 {
        return 0.5;
    }
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0.0);
    for t in totals {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + t);
    }
    // The window's sum at a fractional start, interpolating the prefix sums.
    let sum_to = |x: f64| {
        let i = (x.floor() as usize).min(n);
        let frac = x - i as f64;
        prefix[i] + if i < n { frac * totals[i] } else { 0.0 }
    };
    let total = prefix[n].max(f64::EPSILON);
    let steps = (slack.ceil() as usize).max(1) * 2;
    let mut best = (f64::MIN, 0.5);
    for k in 0..=steps {
        let fraction = k as f64 / steps as f64;
        let start = slack * fraction;
        let share = (sum_to(start + len) - sum_to(start)) / total;
        // A pull to the centre worth a tenth of the share at the far edges: ties go to the middle.
        let value = share - 0.1 * (fraction - 0.5).abs() * 2.0 * (len / n as f64);
        if value > best.0 {
            best = (value, fraction);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planes(w: usize, h: usize, f: impl Fn(usize, usize) -> (u8, u8, u8)) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let (mut y, mut cb, mut cr) = (vec![0; w * h], vec![0; w * h], vec![0; w * h]);
        for j in 0..h {
            for i in 0..w {
                (y[j * w + i], cb[j * w + i], cr[j * w + i]) = f(i, j);
            }
        }
        (y, cb, cr)
    }

    fn place(w: usize, h: usize, window: (f64, f64), f: impl Fn(usize, usize) -> (u8, u8, u8)) -> (f64, f64) {
        let (y, cb, cr) = planes(w, h, f);
        let s = score(&Planes { y: &y, cb: &cb, cr: &cr, width: w, height: h });
        placement(&s, (w, h), window)
    }

    #[test]
    fn a_featureless_image_is_cropped_in_the_middle() {
        assert_eq!(place(100, 50, (50.0, 50.0), |_, _| (128, 128, 128)), (0.5, 0.5));
    }

    #[test]
    fn the_crop_follows_detail_colour_and_skin() {
        // A checkerboard (detail) in the right fifth of a flat grey landscape.
        let detail =
            place(100, 50, (50.0, 50.0), |x, y| (if x > 80 && (x + y) % 2 == 0 { 255 } else { 100 }, 128, 128));
        assert_eq!(detail.0, 1.0, "{detail:?}");
        // A saturated red patch at the left.
        let colour = place(100, 50, (50.0, 50.0), |x, _| if x < 15 { (80, 90, 240) } else { (120, 128, 128) });
        assert_eq!(colour.0, 0.0, "{colour:?}");
        // Skin at the top of a portrait.
        let face =
            place(40, 100, (40.0, 40.0), |_, y| if (20..40).contains(&y) { (170, 110, 150) } else { (170, 128, 128) });
        assert!(face.1 > 0.1 && face.1 < 0.5, "{face:?}");
        // The window over the feature in the middle: placed so the feature is inside it.
        let mid = place(100, 50, (50.0, 50.0), |x, y| {
            (if (55..65).contains(&x) && (x + y) % 2 == 0 { 255 } else { 0 }, 128, 128)
        });
        let start = mid.0 * 50.0;
        assert!(start <= 55.0 && start + 50.0 >= 65.0, "{mid:?}");
    }

    #[test]
    fn map_sizes_keep_the_aspect_and_never_grow() {
        assert_eq!(map_size(4000, 3000), (128, 96));
        assert_eq!(map_size(3000, 4000), (96, 128));
        assert_eq!(map_size(60, 30), (60, 30));
        assert_eq!(map_size(100_000, 10), (128, 1));
    }
}
