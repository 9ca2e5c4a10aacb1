//! Safe wrapper of `jpeg_planes.c`: a JPEG decoded to its stored planes,
//! luma and chroma each DCT-scaled by its own factor, baseline scans through
//! the entropy decoder of `jpeg_huffman.c`.

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
    #[cfg(test)]
    fn rz_set_own_entropy(d: *mut RawDecoder, on: i32);
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

    /// Hands baseline scans back to libjpeg-turbo's own entropy decoder, the
    /// reference `jpeg_huffman.c` is checked against.
    #[cfg(test)]
    fn use_libjpeg_entropy(&mut self) {
        // SAFETY: a plain flag on a live decoder.
        unsafe { rz_set_own_entropy(self.0.as_ptr(), 0) }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    /// Every plane of a decode, or libjpeg's message.
    fn planes(decoder: &mut Decoder, input: &[u8], luma: u8, chroma: u8) -> Result<Option<Vec<u8>>, String> {
        let Some(started) = decoder.start(input, luma, chroma, 100)? else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        started.read(&mut buf)?;
        Ok(Some(buf))
    }

    fn jpegs(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
            .collect();
        files.sort();
        files
    }

    fn corpus() -> PathBuf {
        std::env::var_os("CORPUS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus")))
    }

    const SCALES: [(u8, u8); 5] = [(8, 8), (8, 4), (4, 2), (2, 1), (1, 1)];

    /// The entropy decoder of `jpeg_huffman.c` hands libjpeg the same
    /// coefficients as libjpeg's own: every plane of every corpus photo and
    /// seed (4:2:0, 4:2:2, 4:4:4, grey, restart intervals) is identical at
    /// every scale.
    #[test]
    fn own_entropy_decoder_matches_libjpeg_on_every_plane() {
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
        let mut files = jpegs(&seeds);
        files.extend(jpegs(&corpus().join("jpeg")));
        assert!(files.len() > 20, "corpus and seeds found: {}", files.len());
        let (mut ours, mut theirs) = (Decoder::new().unwrap(), Decoder::new().unwrap());
        theirs.use_libjpeg_entropy();
        let mut compared = 0;
        let mut restarts = 0;
        for file in &files {
            let input = std::fs::read(file).unwrap();
            restarts += usize::from(input.windows(2).any(|w| w == [0xFF, 0xDD]));
            for (luma, chroma) in SCALES {
                let a = planes(&mut ours, &input, luma, chroma);
                let b = planes(&mut theirs, &input, luma, chroma);
                assert!(a == b, "{} at {luma}/{chroma}: planes differ", file.display());
                compared += usize::from(matches!(a, Ok(Some(_))));
            }
        }
        assert!(compared >= 5 * 20, "decoded and compared {compared}");
        assert!(restarts >= 2, "files with restart intervals: {restarts}");
    }

    /// On damaged input the decoder may refuse where libjpeg's own would
    /// have carried on (it treats an invalid code as an error), but whatever
    /// it decodes is exactly what libjpeg decodes. The one difference the
    /// other way is harmless: stray bytes between the last block and the
    /// next marker are an error (a warning made one) only when the reader
    /// had not loaded them yet, and the two readers load ahead differently.
    ///
    ///   MUTATIONS=300000 cargo test --release -p worker --lib rawjpeg
    #[test]
    fn own_entropy_decoder_never_accepts_what_libjpeg_refuses() {
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
        let files = jpegs(&seeds);
        let (mut ours, mut theirs) = (Decoder::new().unwrap(), Decoder::new().unwrap());
        theirs.use_libjpeg_entropy();
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut both_ok, mut both_err, mut only_ours_err, mut stray) = (0, 0, 0, 0);
        let n: usize = std::env::var("MUTATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(6000);
        for i in 0..n {
            let mut input = std::fs::read(&files[i % files.len()]).unwrap();
            for _ in 0..1 + next() % 3 {
                let at = (next() % input.len() as u64) as usize;
                match next() % 3 {
                    0 => input[at] ^= 1 << (next() % 8),
                    1 => input.truncate(at.max(2)),
                    _ => input[at] = next() as u8,
                }
            }
            let (luma, chroma) = SCALES[i % SCALES.len()];
            match (planes(&mut ours, &input, luma, chroma), planes(&mut theirs, &input, luma, chroma)) {
                (Ok(a), Ok(b)) => {
                    assert!(a == b, "mutant {i} decodes differently");
                    both_ok += 1;
                }
                (Ok(_), Err(e)) if e.contains("extraneous bytes before marker") => stray += 1,
                (Ok(_), Err(e)) => panic!("mutant {i}: accepted, libjpeg refused: {e}"),
                (Err(_), Ok(_)) => only_ours_err += 1,
                (Err(_), Err(_)) => both_err += 1,
            }
        }
        assert!(both_ok > 100 && both_err > 100, "ok {both_ok}, refused {both_err}");
        assert!(only_ours_err * 20 < both_err, "refused by ours only: {only_ours_err}");
        assert!(stray * 100 < both_ok, "stray bytes libjpeg's reader refused: {stray}");
        eprintln!(
            "{n} mutants: {both_ok} decoded alike, {both_err} refused by both, {only_ours_err} by ours only, {stray} with stray bytes"
        );
    }
}
