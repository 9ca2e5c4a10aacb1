//! AVIF output, AVIF and HEIC input, through the system's libheif
//! (`heif_shim.c`): libaom encodes, dav1d and libde265 decode, the same
//! libraries libvips and imgproxy load.
//!
//! The JPEG plane path hands its resized Y'CbCr planes over as they are,
//! tagged as what they are (BT.601 matrix, full range): AV1 stores that
//! natively, so neither side converts colour. Everything else is RGB(A),
//! converted by libheif.

use super::encode::Pixels;
use std::ffi::{CStr, c_char, c_int};

const OK: c_int = 0;
const OOM: c_int = 2;
const UNSUPPORTED: c_int = 3;
const YCBCR420: c_int = 0;
const RGB: c_int = 1;
const RGBA: c_int = 2;

/// libheif's own bound on either side, checked when it parses the header. Set
/// to JPEG's largest side so that the service's pixel limit, checked from
/// [`info`] before any decoding, is the one that refuses large images.
const MAX_SIDE: c_int = 65_535;

#[repr(C)]
struct RzPixels {
    kind: c_int,
    width: c_int,
    height: c_int,
    p: [*const u8; 3],
    stride: [c_int; 3],
}

#[repr(C)]
struct RzInfo {
    width: c_int,
    height: c_int,
    alpha: c_int,
    icc: *mut u8,
    icc_len: usize,
}

unsafe extern "C" {
    fn rz_heif_encode_avif(
        px: *const RzPixels,
        quality: c_int,
        speed: c_int,
        out: *mut *mut u8,
        out_len: *mut usize,
        err: *mut c_char,
        errlen: usize,
    ) -> c_int;
    fn rz_heif_info(
        data: *const u8,
        len: usize,
        max_side: c_int,
        info: *mut RzInfo,
        err: *mut c_char,
        errlen: usize,
    ) -> c_int;
    fn rz_heif_decode(
        data: *const u8,
        len: usize,
        max_side: c_int,
        alpha: c_int,
        out: *mut u8,
        out_len: usize,
        width: c_int,
        height: c_int,
        err: *mut c_char,
        errlen: usize,
    ) -> c_int;
    fn rz_heif_free(p: *mut u8);
}

/// Why libheif refused.
#[derive(Debug)]
pub enum Error {
    /// Malformed input, or (encoding) a request the encoder cannot take.
    Refused(String),
    /// A feature or codec this libheif does not have (e.g. HEVC without libde265).
    Unsupported(String),
    OutOfMemory(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(m) | Self::Unsupported(m) | Self::OutOfMemory(m) => f.write_str(m),
        }
    }
}

impl From<Error> for super::ResizeError {
    fn from(e: Error) -> Self {
        match e {
            Error::Refused(m) => Self::Corrupt(m),
            Error::Unsupported(m) => Self::Unsupported(m),
            Error::OutOfMemory(m) => Self::Internal(m),
        }
    }
}

fn error(rc: c_int, err: &[c_char; 256]) -> Error {
    // SAFETY: the shim writes a NUL-terminated message with snprintf into this buffer; it starts zeroed.
    let message = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
    match rc {
        OOM => Error::OutOfMemory(message),
        UNSUPPORTED => Error::Unsupported(message),
        _ => Error::Refused(message),
    }
}

fn side(n: u32) -> Result<c_int, Error> {
    c_int::try_from(n).ok().filter(|&n| n > 0 && n <= MAX_SIDE).ok_or_else(|| Error::Refused(format!("side {n}")))
}

/// Encodes lossy AVIF (4:2:0, 8 bits) at `quality` (1–100) and libaom
/// `speed` (0 slowest … 9 fastest), on one thread.
pub fn encode_avif(pixels: Pixels<'_>, width: u32, height: u32, quality: u8, speed: u8) -> Result<Vec<u8>, Error> {
    let (w, h) = (side(width)?, side(height)?);
    let short = || Error::Refused("pixel buffer smaller than the image".into());
    if !pixels.covers(width as usize, height as usize) {
        return Err(short());
    }
    let stride = |s: usize| c_int::try_from(s).map_err(|_| short());
    let px = match pixels {
        Pixels::Rgb(buf) | Pixels::Rgba(buf) => {
            let (kind, n) = if matches!(pixels, Pixels::Rgb(_)) { (RGB, 3) } else { (RGBA, 4) };
            RzPixels {
                kind,
                width: w,
                height: h,
                p: [buf.as_ptr(), std::ptr::null(), std::ptr::null()],
                stride: [stride(width as usize * n)?, 0, 0],
            }
        }
        // JPEG's full range: the shim tags the image with it.
        Pixels::Yuv420 { y, y_stride, u, v, uv_stride } => RzPixels {
            kind: YCBCR420,
            width: w,
            height: h,
            p: [y.as_ptr(), u.as_ptr(), v.as_ptr()],
            stride: [stride(y_stride)?, stride(uv_stride)?, stride(uv_stride)?],
        },
    };
    let mut out: *mut u8 = std::ptr::null_mut();
    let mut len = 0usize;
    let mut err = [0 as c_char; 256];
    // SAFETY: the buffers were checked above to hold every row at the strides
    // given; the shim only reads them, and only during this call. `out` is
    // malloc'd by the shim and freed below after copying.
    let rc = unsafe {
        rz_heif_encode_avif(
            &px,
            c_int::from(quality.clamp(1, 100)),
            c_int::from(speed.min(9)),
            &mut out,
            &mut len,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if rc != OK {
        return Err(error(rc, &err));
    }
    // SAFETY: on success the shim returns `len` initialised bytes at `out`.
    let bytes = unsafe { std::slice::from_raw_parts(out, len) }.to_vec();
    // SAFETY: `out` came from the shim's allocator and is not used after this.
    unsafe { rz_heif_free(out) };
    Ok(bytes)
}

/// The primary image as its header says, before any pixel is decoded: size
/// after libheif's own rotation and mirroring (which it applies when decoding),
/// alpha, and an embedded ICC profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub width: u32,
    pub height: u32,
    pub alpha: bool,
    pub icc: Option<Vec<u8>>,
}

pub fn info(input: &[u8]) -> Result<Info, Error> {
    let mut raw = RzInfo { width: 0, height: 0, alpha: 0, icc: std::ptr::null_mut(), icc_len: 0 };
    let mut err = [0 as c_char; 256];
    // SAFETY: libheif reads `input` during this call only; `raw` is written by the shim.
    let rc = unsafe { rz_heif_info(input.as_ptr(), input.len(), MAX_SIDE, &mut raw, err.as_mut_ptr(), err.len()) };
    if rc != OK {
        return Err(error(rc, &err));
    }
    let icc = (!raw.icc.is_null()).then(|| {
        // SAFETY: the shim sets `icc_len` bytes at a non-null `icc` it malloc'd; freed right after copying.
        let bytes = unsafe { std::slice::from_raw_parts(raw.icc, raw.icc_len) }.to_vec();
        unsafe { rz_heif_free(raw.icc) };
        bytes
    });
    let size = |n: c_int| u32::try_from(n).map_err(|_| Error::Refused(format!("size {n}")));
    Ok(Info {
        width: size(raw.width)?,
        height: size(raw.height)?,
        alpha: raw.alpha != 0,
        icc: icc.filter(|p| !p.is_empty()),
    })
}

/// Decodes the primary image to interleaved RGB, or RGBA when it has alpha,
/// at the size [`info`] gave.
pub fn decode(input: &[u8], info: &Info) -> Result<Vec<u8>, Error> {
    let (w, h) = (side(info.width)?, side(info.height)?);
    let channels = if info.alpha { 4 } else { 3 };
    let mut out = vec![0u8; info.width as usize * info.height as usize * channels];
    let mut err = [0 as c_char; 256];
    // SAFETY: `out` holds width × height × channels bytes, which the shim
    // checks against the decoded size before writing rows of exactly that.
    let rc = unsafe {
        rz_heif_decode(
            input.as_ptr(),
            input.len(),
            MAX_SIDE,
            c_int::from(info.alpha),
            out.as_mut_ptr(),
            out.len(),
            w,
            h,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if rc != OK {
        return Err(error(rc, &err));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: usize, h: usize) -> Vec<u8> {
        (0..w * h).flat_map(|i| [(i % w * 255 / w) as u8, (i / w * 255 / h) as u8, 90]).collect()
    }

    #[test]
    fn rgb_round_trips_through_avif() {
        let (w, h) = (64, 48);
        let rgb = gradient(w, h);
        let avif = encode_avif(Pixels::Rgb(&rgb), w as u32, h as u32, 90, 9).unwrap();
        assert_eq!(&avif[4..12], b"ftypavif");
        let info = info(&avif).unwrap();
        assert_eq!((info.width, info.height, info.alpha), (64, 48, false));
        let back = decode(&avif, &info).unwrap();
        let worst = rgb.iter().zip(&back).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        assert!(worst < 24, "largest channel error {worst}");
    }

    #[test]
    fn jpeg_range_planes_keep_their_colour() {
        // Full-range BT.601 mid-grey and a saturated red as planes: decoded, they must come back as those colours.
        let (w, h) = (32, 32);
        let y = vec![76u8; w * h]; // red: Y' 76, Cb 85, Cr 255
        let (u, v) = (vec![85u8; 16 * 16], vec![255u8; 16 * 16]);
        let avif =
            encode_avif(Pixels::Yuv420 { y: &y, y_stride: w, u: &u, v: &v, uv_stride: 16 }, 32, 32, 95, 9).unwrap();
        let info = info(&avif).unwrap();
        let back = decode(&avif, &info).unwrap();
        let centre = &back[(16 * w + 16) * 3..][..3];
        assert!(centre[0] > 240 && centre[1] < 16 && centre[2] < 16, "red came back as {centre:?}");
    }

    #[test]
    fn short_buffers_and_garbage_are_refused() {
        assert!(matches!(encode_avif(Pixels::Rgb(&[0; 10]), 4, 4, 80, 8), Err(Error::Refused(_))));
        let (y, u) = (vec![0u8; 16], vec![0u8; 3]);
        let short = Pixels::Yuv420 { y: &y, y_stride: 4, u: &u, v: &u, uv_stride: 2 };
        assert!(matches!(encode_avif(short, 4, 4, 80, 8), Err(Error::Refused(_))));
        assert!(info(b"\0\0\0\x18ftypavif\0\0\0\0mif1avif").is_err());
        assert!(info(b"not an image").is_err());
    }
}
