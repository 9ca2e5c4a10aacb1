//! Safe wrapper of `jpeg_planes.c`: a JPEG decoded to its stored planes,
//! luma and chroma each DCT-scaled by its own factor.

use std::{ffi::CStr, marker::PhantomData, os::raw::c_char, ptr::NonNull};

#[repr(C)]
struct RawDecoder {
    _opaque: [u8; 0],
}

/// Plane geometry, per component (Y, then Cb and Cr when present).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Layout {
    pub components: i32,
    /// Allocated row length (whole DCT blocks).
    pub stride: [i32; 3],
    /// Allocated rows (whole iMCU rows).
    pub rows: [i32; 3],
    /// Meaningful samples per row and rows.
    pub width: [i32; 3],
    pub height: [i32; 3],
}

impl Layout {
    pub fn components(&self) -> usize {
        self.components as usize
    }

    /// Bytes plane `c` occupies.
    pub fn len(&self, c: usize) -> usize {
        self.stride[c] as usize * self.rows[c] as usize
    }
}

unsafe extern "C" {
    fn rz_new() -> *mut RawDecoder;
    fn rz_free(d: *mut RawDecoder);
    fn rz_message(d: *const RawDecoder) -> *const c_char;
    fn rz_start(
        d: *mut RawDecoder,
        data: *const u8,
        len: usize,
        luma_size: i32,
        chroma_size: i32,
        scan_limit: u32,
        out: *mut Layout,
    ) -> i32;
    fn rz_read(d: *mut RawDecoder, planes: *mut *mut u8) -> i32;
}

pub struct Decoder(NonNull<RawDecoder>);

// SAFETY: the libjpeg state is used by one thread at a time (`&mut self`) and has no thread affinity.
unsafe impl Send for Decoder {}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: allocated by rz_new, freed once.
        unsafe { rz_free(self.0.as_ptr()) }
    }
}

/// A decode whose header has been read; holds the input until [`Started::read`].
pub struct Started<'a> {
    decoder: &'a mut Decoder,
    pub layout: Layout,
    _input: PhantomData<&'a [u8]>,
}

/// DCT sizes libjpeg-turbo has IDCTs for that also keep the sample grid aligned across components.
fn valid_size(s: u8) -> bool {
    matches!(s, 1 | 2 | 4 | 8)
}

impl Decoder {
    pub fn new() -> Option<Self> {
        // SAFETY: returns an initialised decoder or null.
        NonNull::new(unsafe { rz_new() }).map(Self)
    }

    fn message(&self) -> String {
        // SAFETY: rz_message returns the decoder's NUL-terminated message buffer.
        unsafe { CStr::from_ptr(rz_message(self.0.as_ptr())) }.to_string_lossy().into_owned()
    }

    /// Reads the header and fixes the scales: luma at `luma_size`/8 and chroma at
    /// `chroma_size`/8 of their stored resolution. `Ok(None)` when the image is
    /// not grey or YCbCr with chroma subsampled at most 2×2.
    pub fn start<'a>(
        &'a mut self,
        input: &'a [u8],
        luma_size: u8,
        chroma_size: u8,
        scan_limit: u32,
    ) -> Result<Option<Started<'a>>, String> {
        assert!(valid_size(luma_size) && valid_size(chroma_size) && chroma_size <= luma_size);
        let mut layout = Layout::default();
        // SAFETY: `input` outlives the returned `Started`, which is the only way to read pixels.
        let rc = unsafe {
            rz_start(
                self.0.as_ptr(),
                input.as_ptr(),
                input.len(),
                luma_size.into(),
                chroma_size.into(),
                scan_limit,
                &mut layout,
            )
        };
        match rc {
            0 => Ok(Some(Started { decoder: self, layout, _input: PhantomData })),
            1 => Ok(None),
            _ => Err(self.message()),
        }
    }
}

impl Started<'_> {
    /// Decodes into `buf` (resized to fit): the planes one after the other, each
    /// `layout.stride[c]` × `layout.rows[c]`. Returns each plane's offset.
    pub fn read(self, buf: &mut Vec<u8>) -> Result<[usize; 3], String> {
        let l = self.layout;
        let mut offsets = [0usize; 3];
        let mut total = 0;
        for (c, off) in offsets.iter_mut().enumerate().take(l.components()) {
            *off = total;
            total += l.len(c);
        }
        buf.resize(total, 0);
        let base = buf.as_mut_ptr();
        // SAFETY: every offset plus its plane length is within `buf`.
        let mut planes = offsets.map(|o| unsafe { base.add(o) });
        // SAFETY: rz_read writes at most stride × rows bytes to each plane, per the layout it reported.
        let rc = unsafe { rz_read(self.decoder.0.as_ptr(), planes.as_mut_ptr()) };
        if rc == 0 { Ok(offsets) } else { Err(self.decoder.message()) }
    }
}
