//! Where the output pixels come from: a pure function of the source size and the operation.

use contracts::{Fit, ResizeOp};

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
    /// The same plan for a source stored transposed (EXIF orientations 5–8):
    /// the resampler works on the stored pixels, orientation is applied after.
    pub fn transposed(&self) -> Self {
        Self {
            crop: Crop { left: self.crop.top, top: self.crop.left, width: self.crop.height, height: self.crop.width },
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
            let crop = Crop { left: (sw - cw) / 2.0, top: (sh - ch) / 2.0, width: cw, height: ch };
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
    fn fill_stretches() {
        let p = plan(4000, 3000, &op("w=100&h=400&fit=fill"));
        assert_eq!(p.content, (100, 400));
        assert!((p.min_scale() - 400.0 / 3000.0).abs() < 1e-9);
    }

    #[test]
    fn transposed_swaps_axes() {
        let p = plan(3000, 4000, &op("w=320&h=320&fit=contain")).transposed();
        assert_eq!(p.content, (320, 240));
        assert_eq!(p.crop.width, 4000.0);
        assert_eq!(p.offset, (0, 40));
    }
}
