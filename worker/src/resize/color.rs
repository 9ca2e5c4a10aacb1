//! Conversion to sRGB from an embedded ICC profile.
//!
//! Outputs carry no metadata, so they are read as sRGB: an Adobe RGB, Display
//! P3 or CMYK input must be converted or its colours shift. RGB profiles are
//! applied to the resized result (a few thousand pixels instead of millions);
//! CMYK has to be converted at decode time, before there is RGB to resize.

use moxcms::{ColorProfile, DataColorSpace, Layout, Transform8BitExecutor, TransformOptions};
use std::{cell::RefCell, collections::HashMap, sync::Arc};

/// Whether `icc` is an RGB profile that maps every colour to itself in sRGB
/// (±1 of 255): the sRGB profiles cameras, phones and editors embed, whatever
/// their encoding (matrix and curves, or tables). Such an image is treated as
/// untagged, so a JPEG keeps the fast path in YCbCr planes.
///
/// Deciding builds a transform (a fraction of a millisecond, and kept for
/// converting), and the same few profiles recur in nearly every tagged file:
/// answers are kept per thread.
pub fn is_srgb(icc: &[u8]) -> bool {
    thread_local! {
        static SEEN: RefCell<HashMap<Box<[u8]>, bool>> = RefCell::new(HashMap::new());
    }
    SEEN.with(|seen| {
        if let Some(&known) = seen.borrow().get(icc) {
            return known;
        }
        let answer = maps_to_itself_in_srgb(icc);
        let mut seen = seen.borrow_mut();
        if seen.len() >= 32 {
            seen.clear(); // a bound, not an eviction policy: distinct profiles are few
        }
        seen.insert(icc.into(), answer);
        answer
    })
}

fn maps_to_itself_in_srgb(icc: &[u8]) -> bool {
    let Some(t) = transform_to_srgb(icc, false) else {
        return false;
    };
    // Every combination of 9 levels per channel, the extremes included.
    let levels = [0u8, 32, 64, 96, 128, 160, 192, 224, 255];
    let mut grid = Vec::with_capacity(levels.len().pow(3) * 3);
    for r in levels {
        for g in levels {
            for b in levels {
                grid.extend([r, g, b]);
            }
        }
    }
    let mut out = vec![0u8; grid.len()];
    t.transform(&grid, &mut out).is_ok() && grid.iter().zip(&out).all(|(a, b)| a.abs_diff(*b) <= 1)
}

/// Converts interleaved RGB(A) pixels from `icc` to sRGB in place. Profiles
/// that cannot be parsed or applied are ignored: the pixels are then taken as
/// sRGB, as every browser does with a broken profile.
pub fn rgb_to_srgb(icc: &[u8], pixels: &mut [u8], alpha: bool) {
    thread_local! {
        /// The transformed copy, kept between images: a thumbnail's worth is
        /// above malloc's mmap threshold, and a fresh mapping per image costs
        /// its page faults.
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    let Some(t) = transform_to_srgb(icc, alpha) else {
        return;
    };
    SCRATCH.with(|scratch| {
        let mut out = scratch.borrow_mut();
        out.clear();
        out.resize(pixels.len(), 0);
        if t.transform(pixels, &mut out).is_ok() {
            pixels.copy_from_slice(&out);
        }
    });
}

/// The transform from `icc` to sRGB, `None` for a profile that is not RGB or
/// cannot be applied. Building one evaluates the profile's curves (a good
/// part of a thumbnail's time), and the same few profiles recur: transforms
/// are kept per thread, profile and layout.
fn transform_to_srgb(icc: &[u8], alpha: bool) -> Option<Arc<Transform8BitExecutor>> {
    type Cache = HashMap<Box<[u8]>, Option<Arc<Transform8BitExecutor>>>;
    thread_local! {
        /// Indexed by `alpha`.
        static BUILT: RefCell<[Cache; 2]> = RefCell::new([HashMap::new(), HashMap::new()]);
    }
    BUILT.with(|built| {
        if let Some(known) = built.borrow()[usize::from(alpha)].get(icc) {
            return known.clone();
        }
        let transform =
            ColorProfile::new_from_slice(icc).ok().filter(|p| p.color_space == DataColorSpace::Rgb).and_then(|src| {
                let layout = if alpha { Layout::Rgba } else { Layout::Rgb };
                src.create_transform_8bit(layout, &ColorProfile::new_srgb(), layout, TransformOptions::default()).ok()
            });
        let built = &mut built.borrow_mut()[usize::from(alpha)];
        if built.len() >= 16 {
            built.clear(); // a bound, not an eviction policy: distinct profiles are few
        }
        built.insert(icc.into(), transform.clone());
        transform
    })
}

/// Interleaved RGB, into `rgb`, from a `w`×`h` luma plane and 4:2:0 chroma
/// planes of ⌈w/2⌉×⌈h/2⌉: JFIF's full-range YCbCr in libjpeg's 16-bit fixed
/// point. Each chroma sample is repeated over its 2×2 luma samples: a JPEG
/// encoder's 2×2 average brings back the same chroma.
pub fn ycbcr420_to_rgb(y: &[u8], (w, h): (usize, usize), cb: &[u8], cr: &[u8], rgb: &mut Vec<u8>) {
    const HALF: i32 = 1 << 15;
    let cw = w.div_ceil(2);
    rgb.clear();
    rgb.reserve(w * h * 3);
    for row in 0..h {
        let (luma, chroma) = (&y[row * w..row * w + w], (row / 2) * cw);
        for (col, &l) in luma.iter().enumerate() {
            let l = l as i32;
            let c = chroma + col / 2;
            let (b, r) = (cb[c] as i32 - 128, cr[c] as i32 - 128);
            let red = l + ((91_881 * r + HALF) >> 16);
            let green = l + ((-22_554 * b - 46_802 * r + HALF) >> 16);
            let blue = l + ((116_130 * b + HALF) >> 16);
            rgb.extend([red.clamp(0, 255) as u8, green.clamp(0, 255) as u8, blue.clamp(0, 255) as u8]);
        }
    }
}

/// Converts the inverted CMYK that Adobe applications write (nearly every CMYK
/// JPEG in the wild) to sRGB: through the embedded profile when there is a
/// usable one, else with the naive formula libjpeg-based tools use.
pub fn cmyk_to_srgb(icc: Option<&[u8]>, cmyk: &[u8]) -> Vec<u8> {
    if let Some(rgb) = icc.and_then(|icc| cmyk_through_profile(icc, cmyk)) {
        return rgb;
    }
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for px in cmyk.chunks_exact(4) {
        let k = px[3] as u32;
        rgb.extend([px[0], px[1], px[2]].map(|c| ((c as u32 * k + 127) / 255) as u8));
    }
    rgb
}

fn cmyk_through_profile(icc: &[u8], cmyk: &[u8]) -> Option<Vec<u8>> {
    let src = ColorProfile::new_from_slice(icc).ok()?;
    if src.color_space != DataColorSpace::Cmyk {
        return None;
    }
    let t = src
        .create_transform_8bit(Layout::Rgba, &ColorProfile::new_srgb(), Layout::Rgb, TransformOptions::default())
        .ok()?;
    // Profiles describe ink amounts (0 = no ink); Adobe JPEGs store them inverted.
    let ink: Vec<u8> = cmyk.iter().map(|v| 255 - v).collect();
    let mut rgb = vec![0u8; cmyk.len() / 4 * 3];
    t.transform(&ink, &mut rgb).ok()?;
    Some(rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ycbcr_planes_become_rgb_with_chroma_over_2x2() {
        // 3×3 luma, 2×2 chroma: the last column and row share the edge chroma.
        let y = [128, 128, 76, 128, 128, 76, 255, 255, 0];
        let (cb, cr) = ([128, 85, 128, 128], [128, 255, 128, 128]);
        let mut rgb = Vec::new();
        ycbcr420_to_rgb(&y, (3, 3), &cb, &cr, &mut rgb);
        assert_eq!(rgb.len(), 27);
        assert_eq!(&rgb[0..3], &[128, 128, 128]);
        // JFIF red: Y 76, Cb 85, Cr 255.
        let red = &rgb[6..9];
        assert!(red[0] >= 253 && red[1] <= 2 && red[2] <= 2, "red: {red:?}");
        assert_eq!(&rgb[18..21], &[255, 255, 255]);
        assert_eq!(&rgb[24..27], &[0, 0, 0]);
    }

    #[test]
    fn naive_cmyk_treats_values_as_inverted() {
        assert_eq!(cmyk_to_srgb(None, &[255, 255, 255, 255]), vec![255, 255, 255]);
        assert_eq!(cmyk_to_srgb(None, &[255, 0, 255, 255]), vec![255, 0, 255]);
        assert_eq!(cmyk_to_srgb(None, &[255, 255, 255, 0]), vec![0, 0, 0]);
        // A profile that is not CMYK falls back to the formula.
        let rgb_profile = ColorProfile::new_adobe_rgb().encode().unwrap();
        assert_eq!(cmyk_to_srgb(Some(&rgb_profile), &[255, 0, 255, 255]), vec![255, 0, 255]);
    }

    #[test]
    fn srgb_profiles_are_recognised_and_others_are_not() {
        assert!(is_srgb(&ColorProfile::new_srgb().encode().unwrap()));
        for other in [ColorProfile::new_adobe_rgb(), ColorProfile::new_display_p3(), ColorProfile::new_pro_photo_rgb()]
        {
            assert!(!is_srgb(&other.encode().unwrap()));
        }
        assert!(!is_srgb(b"not a profile"));
        assert!(is_srgb(&ColorProfile::new_srgb().encode().unwrap()), "answered again from the cache");
    }

    #[test]
    fn wide_gamut_rgb_is_converted_and_srgb_is_kept() {
        let pro_photo = ColorProfile::new_pro_photo_rgb().encode().unwrap();
        let mut px = vec![100, 150, 50];
        rgb_to_srgb(&pro_photo, &mut px, false);
        assert_ne!(px, vec![100, 150, 50], "ProPhoto values differ in sRGB");
        let srgb = ColorProfile::new_srgb().encode().unwrap();
        let mut px = vec![100, 150, 50, 7];
        rgb_to_srgb(&srgb, &mut px, true);
        for (a, b) in px.iter().zip([100, 150, 50, 7]) {
            assert!(a.abs_diff(b) <= 1, "sRGB stays sRGB: {px:?}");
        }
        let mut px = vec![1, 2, 3];
        rgb_to_srgb(b"not a profile", &mut px, false);
        assert_eq!(px, vec![1, 2, 3]);
    }
}
