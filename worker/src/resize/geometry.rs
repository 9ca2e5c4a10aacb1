//! Where the output pixels come from: a pure function of the source size and the operation.

use contracts::{Fit, ResizeOp};
use image::metadata::Orientation;

/// A rectangle in source pixels (fractional, as the resampler accepts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crop {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

/// The resize plan, in the coordinates of the upright (orientation applied) image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Region of the source that is resampled (the whole image except for `cover`).
    pub crop: Crop,
    /// Size the cropped region is resampled to.
    pub content: (u32, u32),
    /// Size of the output image; larger than `content` only for `contain` (padding).
    pub canvas: (u32, u32),
    /// Where the content sits on the canvas.
    pub offset: (u32, u32),
}

impl Plan {
    /// The same plan in the coordinates of the pixels as stored, for an
    /// upright image of `upright` size that is stored with `orientation`: the
    /// resampler works on the stored pixels, the orientation is applied to
    /// its small result. The crop moves with the pixels (a `gravity=n` crop of
    /// a photo stored upside down is taken from the bottom of the stored
    /// pixels); the sizes swap for the orientations that transpose.
    pub fn stored(&self, orientation: Orientation, upright: (u32, u32)) -> Self {
        let (uw, uh) = (upright.0 as f64, upright.1 as f64);
        let Crop { left, top, width, height } = self.crop;
        let (right, bottom) = (uw - left - width, uh - top - height);
        let (left, top, swap) = match orientation {
            Orientation::NoTransforms => (left, top, false),
            Orientation::FlipHorizontal => (right, top, false),
            Orientation::Rotate180 => (right, bottom, false),
            Orientation::FlipVertical => (left, bottom, false),
            // Stored (x, y) is upright (y, x).
            Orientation::Rotate90FlipH => (top, left, true),
            // Stored (x, y) is upright (H - 1 - y, x).
            Orientation::Rotate90 => (top, right, true),
            // Stored (x, y) is upright (H - 1 - y, W - 1 - x).
            Orientation::Rotate270FlipH => (bottom, right, true),
            // Stored (x, y) is upright (y, W - 1 - x).
            Orientation::Rotate270 => (bottom, left, true),
        };
        if !swap {
            return Self { crop: Crop { left, top, width, height }, ..*self };
        }
        Self {
            crop: Crop { left, top, width: height, height: width },
            content: (self.content.1, self.content.0),
            canvas: (self.canvas.1, self.canvas.0),
            offset: (self.offset.1, self.offset.0),
        }
    }

    /// Smallest scale factor (output/source) the content needs on either axis:
    /// a shrink-on-load decoder may go down to this and no further without losing detail.
    pub fn min_scale(&self) -> f64 {
        (self.content.0 as f64 / self.crop.width).max(self.content.1 as f64 / self.crop.height)
    }
}

fn round_dim(x: f64) -> u32 {
    (x.round() as u32).max(1)
}

/// Plans the operation for a `src_w`×`src_h` upright source.
pub fn plan(src_w: u32, src_h: u32, op: &ResizeOp) -> Plan {
    let (sw, sh) = (src_w as f64, src_h as f64);
    let whole = Crop { left: 0.0, top: 0.0, width: sw, height: sh };
    let fit_inside = |w: u32, h: u32| {
        let scale = (w as f64 / sw).min(h as f64 / sh);
        (round_dim(sw * scale).min(w), round_dim(sh * scale).min(h))
    };
    match (op.fit, op.width, op.height) {
        (Fit::Inside, Some(w), None) => {
            let content = (w, round_dim(sh * w as f64 / sw));
            Plan { crop: whole, content, canvas: content, offset: (0, 0) }
        }
        (Fit::Inside, None, Some(h)) => {
            let content = (round_dim(sw * h as f64 / sh), h);
            Plan { crop: whole, content, canvas: content, offset: (0, 0) }
        }
        (_, None, None) | (_, None, _) | (_, _, None) => {
            // ResizeOp validation guarantees both sides for every fit but `inside`.
            let content = (src_w, src_h);
            Plan { crop: whole, content, canvas: content, offset: (0, 0) }
        }
        (Fit::Inside, Some(w), Some(h)) => {
            let content = fit_inside(w, h);
            Plan { crop: whole, content, canvas: content, offset: (0, 0) }
        }
        (Fit::Contain, Some(w), Some(h)) => {
            let content = fit_inside(w, h);
            Plan { crop: whole, content, canvas: (w, h), offset: ((w - content.0) / 2, (h - content.1) / 2) }
        }
        (Fit::Fill, Some(w), Some(h)) => Plan { crop: whole, content: (w, h), canvas: (w, h), offset: (0, 0) },
        (Fit::Cover, Some(w), Some(h)) => {
            let scale = (w as f64 / sw).max(h as f64 / sh);
            let (cw, ch) = ((w as f64 / scale).min(sw), (h as f64 / scale).min(sh));
            let (gx, gy) = op.gravity.placement((sw, sh), (cw, ch));
            let crop = Crop { left: (sw - cw) * gx, top: (sh - ch) * gy, width: cw, height: ch };
            Plan { crop, content: (w, h), canvas: (w, h), offset: (0, 0) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(q: &str) -> ResizeOp {
        ResizeOp::parse_canonical(q).unwrap()
    }

    #[test]
    fn inside_keeps_aspect_ratio() {
        let p = plan(4000, 3000, &op("w=320&h=320"));
        assert_eq!(p.content, (320, 240));
        assert_eq!(p.canvas, (320, 240));
        let p = plan(3000, 4000, &op("w=320&h=320"));
        assert_eq!(p.content, (240, 320));
        assert_eq!(plan(4000, 3000, &op("w=100")).content, (100, 75));
        assert_eq!(plan(4000, 3000, &op("h=30")).content, (40, 30));
        // Extreme aspect ratios never produce a zero-sized side.
        assert_eq!(plan(10000, 1, &op("w=10")).content, (10, 1));
    }

    #[test]
    fn contain_pads_and_centres() {
        let p = plan(4000, 3000, &op("w=320&h=320&fit=contain"));
        assert_eq!(p.content, (320, 240));
        assert_eq!(p.canvas, (320, 320));
        assert_eq!(p.offset, (0, 40));
    }

    #[test]
    fn cover_crops_the_centre() {
        let p = plan(4000, 3000, &op("w=300&h=300&fit=cover"));
        assert_eq!(p.content, (300, 300));
        assert_eq!(p.crop, Crop { left: 500.0, top: 0.0, width: 3000.0, height: 3000.0 });
        assert!((p.min_scale() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn cover_keeps_the_side_or_point_asked_for() {
        let crop = |q: &str| plan(4000, 3000, &op(&format!("w=300&h=300&fit=cover&{q}"))).crop;
        assert_eq!(crop("gravity=w").left, 0.0);
        assert_eq!(crop("gravity=e").left, 1000.0);
        assert_eq!(crop("gravity=se").left, 1000.0);
        assert_eq!(crop("gravity=n").top, 0.0);
        // A focal point is centred where the crop allows: x = 1200 → 1200 - 1500 < 0, flush left.
        assert_eq!(crop("fx=0.3&fy=0.5").left, 0.0);
        // x = 2200 → 700..3700.
        assert!((crop("fx=0.55&fy=0.5").left - 700.0).abs() < 1e-9);
        // Portrait: the slack is vertical; fy = 0.25 of 4000 = 1000, crop 3000 high → flush top.
        let p = plan(3000, 4000, &op("w=300&h=300&fit=cover&fx=0.5&fy=0.25"));
        assert_eq!((p.crop.left, p.crop.top), (0.0, 0.0));
    }

    #[test]
    fn fill_stretches() {
        let p = plan(4000, 3000, &op("w=100&h=400&fit=fill"));
        assert_eq!(p.content, (100, 400));
        assert!((p.min_scale() - 400.0 / 3000.0).abs() < 1e-9);
    }

    #[test]
    fn the_stored_plan_takes_the_same_pixels_for_every_orientation() {
        // A 4×3 upright image with every pixel numbered; stored under each
        // orientation, the stored crop must hold the same numbers as the upright crop.
        let (w, h) = (4u32, 3u32);
        let upright: Vec<u32> = (0..w * h).collect();
        let op = op("w=1&h=2&fit=cover&gravity=ne");
        let p = plan(w, h, &op);
        assert_eq!(p.crop, Crop { left: 2.5, top: 0.0, width: 1.5, height: 3.0 });
        let inside = |c: &Crop, x: u32, y: u32| {
            let (x, y) = (x as f64 + 0.5, y as f64 + 0.5);
            x > c.left && x < c.left + c.width && y > c.top && y < c.top + c.height
        };
        let mut want: Vec<u32> = (0..w * h).filter(|i| inside(&p.crop, i % w, i / w)).collect();
        want.sort();
        for orientation in [
            Orientation::NoTransforms,
            Orientation::FlipHorizontal,
            Orientation::Rotate180,
            Orientation::FlipVertical,
            Orientation::Rotate90FlipH,
            Orientation::Rotate90,
            Orientation::Rotate270FlipH,
            Orientation::Rotate270,
        ] {
            // Store the upright image: undo the orientation the reader will apply.
            let mut dynimg = image::DynamicImage::ImageRgb32F(image::Rgb32FImage::from_fn(w, h, |x, y| {
                image::Rgb([upright[(y * w + x) as usize] as f32, 0.0, 0.0])
            }));
            // Applying an orientation's inverse: rotations invert to the other way, flips to themselves.
            let inverse = match orientation {
                Orientation::Rotate90 => Orientation::Rotate270,
                Orientation::Rotate270 => Orientation::Rotate90,
                o => o,
            };
            dynimg.apply_orientation(inverse);
            let stored = dynimg.to_rgb32f();
            let (sw, sh) = stored.dimensions();
            let sp = p.stored(orientation, (w, h));
            let mut got: Vec<u32> = (0..sw * sh)
                .filter(|i| inside(&sp.crop, i % sw, i / sw))
                .map(|i| stored.get_pixel(i % sw, i / sw).0[0] as u32)
                .collect();
            got.sort();
            assert_eq!(got, want, "{orientation:?}");
            // And reading it back gives the upright image.
            let mut back = image::DynamicImage::ImageRgb32F(stored.clone());
            back.apply_orientation(orientation);
            assert_eq!(back.to_rgb32f().get_pixel(2, 0).0[0] as u32, 2, "{orientation:?}");
        }
    }

    #[test]
    fn transposed_orientations_swap_axes() {
        let p = plan(3000, 4000, &op("w=320&h=320&fit=contain")).stored(Orientation::Rotate90, (3000, 4000));
        assert_eq!(p.content, (320, 240));
        assert_eq!(p.crop.width, 4000.0);
        assert_eq!(p.offset, (0, 40));
    }
}
