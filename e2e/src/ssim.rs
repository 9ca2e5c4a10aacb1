//! Structural similarity (Wang et al. 2004) of two images of equal size, on
//! luma: 11×11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03, mean over
//! every pixel. Luma because the outputs are 4:2:0 JPEGs, whose chroma is
//! half resolution in every encoder alike; colour mistakes (swapped channels)
//! still show, as they change luma.

use image::RgbImage;

const RADIUS: usize = 5;
const SIGMA: f64 = 1.5;

/// SSIM of `a` against `b`; `None` when their sizes differ.
pub fn ssim(a: &RgbImage, b: &RgbImage) -> Option<f64> {
    if a.dimensions() != b.dimensions() {
        return None;
    }
    let (w, h) = (a.width() as usize, a.height() as usize);
    let (x, y) = (luma(a), luma(b));
    let product = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(u, v)| u * v).collect::<Vec<_>>();
    let kernel = gaussian();
    let blur = |img: &[f64]| blur(img, w, h, &kernel);
    let (mx, my) = (blur(&x), blur(&y));
    let (sxx, syy, sxy) = (blur(&product(&x, &x)), blur(&product(&y, &y)), blur(&product(&x, &y)));
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let sum: f64 = (0..w * h)
        .map(|i| {
            let (ux, uy) = (mx[i], my[i]);
            let (vx, vy, cxy) = (sxx[i] - ux * ux, syy[i] - uy * uy, sxy[i] - ux * uy);
            ((2.0 * ux * uy + c1) * (2.0 * cxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        })
        .sum();
    Some(sum / (w * h) as f64)
}

/// BT.601 luma, as JPEG's YCbCr uses.
fn luma(img: &RgbImage) -> Vec<f64> {
    img.pixels().map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64).collect()
}

fn gaussian() -> Vec<f64> {
    let k: Vec<f64> =
        (0..=2 * RADIUS).map(|i| (-((i as f64 - RADIUS as f64).powi(2)) / (2.0 * SIGMA * SIGMA)).exp()).collect();
    let total: f64 = k.iter().sum();
    k.into_iter().map(|v| v / total).collect()
}

/// Separable Gaussian blur; edges are clamped, so small images still get a full window.
fn blur(img: &[f64], w: usize, h: usize, k: &[f64]) -> Vec<f64> {
    let tap = |i: usize, j: usize, n: usize| (i + j).saturating_sub(RADIUS).min(n - 1);
    let mut rows = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            rows[y * w + x] = k.iter().enumerate().map(|(j, c)| c * img[y * w + tap(x, j, w)]).sum();
        }
    }
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = k.iter().enumerate().map(|(j, c)| c * rows[tap(y, j, h) * w + x]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(w: u32, h: u32, seed: u32) -> RgbImage {
        let mut s = seed;
        RgbImage::from_fn(w, h, |x, y| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let v = ((x * 7 + y * 13) % 200) as u8 + (s >> 28) as u8;
            image::Rgb([v, v / 2, 255 - v])
        })
    }

    #[test]
    fn identical_images_score_one() {
        let a = noise(40, 30, 1);
        assert!((ssim(&a, &a).unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn distortion_lowers_the_score_in_order() {
        let a = noise(64, 48, 1);
        let slightly = RgbImage::from_fn(64, 48, |x, y| {
            let p = a.get_pixel(x, y);
            image::Rgb(p.0.map(|c| c.saturating_add(((x + y) % 3) as u8)))
        });
        let s1 = ssim(&a, &slightly).unwrap();
        let s2 = ssim(&a, &image::imageops::flip_horizontal(&a)).unwrap();
        assert!(s1 > 0.9 && s1 < 1.0, "small noise: {s1}");
        assert!(s2 < s1, "a mirrored image scores lower ({s2}) than a slightly noisy one ({s1})");
        let swapped = RgbImage::from_fn(64, 48, |x, y| {
            let p = a.get_pixel(x, y);
            image::Rgb([p[2], p[1], p[0]])
        });
        assert!(ssim(&a, &swapped).unwrap() < 0.9, "swapped red and blue change luma");
    }

    #[test]
    fn sizes_must_match() {
        assert_eq!(ssim(&noise(10, 10, 1), &noise(10, 11, 1)), None);
    }
}
