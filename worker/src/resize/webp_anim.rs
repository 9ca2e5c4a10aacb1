//! Animated WebP through libwebp's own animation API: `WebPAnimDecoder`
//! composes each frame onto the canvas (blending and disposal as browsers
//! do), `WebPAnimEncoder` picks each frame's sub-rectangle, blending and
//! key frames the way libvips' and cwebp's animated output does.

use super::ResizeError;
use libwebp_sys as sys;

/// Browsers show delays this short as 100 ms (the rule they apply to GIF);
/// written as such, the animation plays at the speed it was seen.
const SHORTEST_SHOWN_MS: u32 = 20;
const BROWSER_DEFAULT_MS: u32 = 100;

/// The delay a browser shows a frame for.
pub fn shown_delay(delay_ms: u32) -> u32 {
    if delay_ms < SHORTEST_SHOWN_MS { BROWSER_DEFAULT_MS } else { delay_ms }
}

fn corrupt(what: &str) -> ResizeError {
    ResizeError::Corrupt(format!("animated WebP: {what}"))
}

/// Composed frames of an animated WebP, one canvas of RGBA at a time.
pub struct Decoder<'a> {
    dec: *mut sys::WebPAnimDecoder,
    canvas: (u32, u32),
    /// The previous frame's end, to turn libwebp's timestamps into delays.
    last_ms: i32,
    /// libwebp reads from this for the decoder's lifetime.
    _input: std::marker::PhantomData<&'a [u8]>,
}

impl<'a> Decoder<'a> {
    pub fn new(input: &'a [u8]) -> Result<Self, ResizeError> {
        // SAFETY: options are initialised by libwebp; `data` points into
        // `input`, which outlives the decoder (the lifetime says so).
        unsafe {
            let mut opts = std::mem::zeroed::<sys::WebPAnimDecoderOptions>();
            if sys::WebPAnimDecoderOptionsInit(&mut opts) == 0 {
                return Err(ResizeError::Internal("libwebp: animation decoder version mismatch".into()));
            }
            opts.color_mode = sys::WEBP_CSP_MODE::MODE_RGBA;
            opts.use_threads = 0;
            let data = sys::WebPData { bytes: input.as_ptr(), size: input.len() };
            let dec = sys::WebPAnimDecoderNew(&data, &opts);
            if dec.is_null() {
                return Err(corrupt("the container could not be parsed"));
            }
            let mut info = std::mem::zeroed::<sys::WebPAnimInfo>();
            if sys::WebPAnimDecoderGetInfo(dec, &mut info) == 0 {
                sys::WebPAnimDecoderDelete(dec);
                return Err(corrupt("no animation info"));
            }
            Ok(Self {
                dec,
                canvas: (info.canvas_width, info.canvas_height),
                last_ms: 0,
                _input: std::marker::PhantomData,
            })
        }
    }

    pub fn canvas(&self) -> (u32, u32) {
        self.canvas
    }

    /// The next composed frame (the whole canvas, RGBA) and how long it shows.
    pub fn next_frame(&mut self) -> Result<Option<(&[u8], u32)>, ResizeError> {
        // SAFETY: the decoder is live; the buffer it returns holds the
        // canvas and stays valid until the next call, which needs `&mut self`.
        unsafe {
            if sys::WebPAnimDecoderHasMoreFrames(self.dec) == 0 {
                return Ok(None);
            }
            let (mut buf, mut timestamp) = (std::ptr::null_mut::<u8>(), 0);
            if sys::WebPAnimDecoderGetNext(self.dec, &mut buf, &mut timestamp) == 0 || buf.is_null() {
                return Err(corrupt("a frame could not be decoded"));
            }
            let delay = timestamp.saturating_sub(self.last_ms).max(0) as u32;
            self.last_ms = timestamp;
            let len = self.canvas.0 as usize * self.canvas.1 as usize * 4;
            Ok(Some((std::slice::from_raw_parts(buf, len), delay)))
        }
    }
}

impl Drop for Decoder<'_> {
    fn drop(&mut self) {
        // SAFETY: created by WebPAnimDecoderNew, deleted once.
        unsafe { sys::WebPAnimDecoderDelete(self.dec) }
    }
}

/// An animated WebP, written frame by frame (libwebp keeps the previous
/// canvas and the candidate encodings of the current frame, not the animation).
pub struct Encoder {
    enc: *mut sys::WebPAnimEncoder,
    config: sys::WebPConfig,
    size: (u32, u32),
    timestamp_ms: i32,
    frames: u32,
}

impl Encoder {
    /// `loops`: how many times it plays, 0 forever.
    pub fn new(size: (u32, u32), quality: u8, loops: u16) -> Result<Self, ResizeError> {
        super::webp::check_size(size.0, size.1).map_err(ResizeError::Internal)?;
        let mut config = sys::WebPConfig::new()
            .map_err(|()| ResizeError::Internal("libwebp refused its own default configuration".into()))?;
        config.quality = f32::from(quality.min(100));
        // SAFETY: options are initialised by libwebp before they are changed and read.
        let enc = unsafe {
            let mut opts = std::mem::zeroed::<sys::WebPAnimEncoderOptions>();
            if sys::WebPAnimEncoderOptionsInitInternal(&mut opts, sys::WEBP_MUX_ABI_VERSION as i32) == 0 {
                return Err(ResizeError::Internal("libwebp: animation encoder version mismatch".into()));
            }
            opts.anim_params.loop_count = i32::from(loops);
            // Lossy frames only, as the still path writes them.
            opts.allow_mixed = 0;
            sys::WebPAnimEncoderNewInternal(size.0 as i32, size.1 as i32, &opts, sys::WEBP_MUX_ABI_VERSION as i32)
        };
        if enc.is_null() {
            return Err(ResizeError::Internal("libwebp: out of memory for the animation encoder".into()));
        }
        Ok(Self { enc, config, size, timestamp_ms: 0, frames: 0 })
    }

    /// Adds a frame of the whole canvas, RGBA, shown for `delay_ms`.
    pub fn push(&mut self, rgba: &[u8], delay_ms: u32) -> Result<(), ResizeError> {
        let (w, h) = self.size;
        if rgba.len() != w as usize * h as usize * 4 {
            return Err(ResizeError::Internal("WebP frame of the wrong size".into()));
        }
        let internal = |what: String| ResizeError::Internal(format!("libwebp: {what}"));
        let mut picture = super::webp::Picture::new(w, h).map_err(internal)?;
        // The encoder compares frames in ARGB before it picks what to encode.
        picture.0.use_argb = 1;
        let pic = &mut picture.0;
        // SAFETY: the length was checked; the import copies the pixels, the
        // picture is freed when `picture` drops; the encoder is live.
        let ok = unsafe {
            sys::WebPPictureImportRGBA(pic, rgba.as_ptr(), (w * 4) as i32) != 0
                && sys::WebPAnimEncoderAdd(self.enc, pic, self.timestamp_ms, &self.config) != 0
        };
        if !ok {
            return Err(internal(format!("frame {} not added: {:?}", self.frames, pic.error_code)));
        }
        let delay = i32::try_from(shown_delay(delay_ms)).unwrap_or(i32::MAX);
        self.timestamp_ms = self.timestamp_ms.saturating_add(delay);
        self.frames += 1;
        Ok(())
    }

    /// The file and its frame count.
    pub fn finish(self) -> Result<(Vec<u8>, u32), ResizeError> {
        let internal = |what: &str| ResizeError::Internal(format!("libwebp: {what}"));
        // SAFETY: the encoder is live; the assembled data is copied, then freed.
        unsafe {
            if sys::WebPAnimEncoderAdd(self.enc, std::ptr::null_mut(), self.timestamp_ms, std::ptr::null()) == 0 {
                return Err(internal("the last frame could not be closed"));
            }
            let mut data = sys::WebPData { bytes: std::ptr::null(), size: 0 };
            if sys::WebPAnimEncoderAssemble(self.enc, &mut data) == 0 || data.bytes.is_null() {
                return Err(internal("the animation could not be assembled"));
            }
            let bytes = std::slice::from_raw_parts(data.bytes, data.size).to_vec();
            sys::WebPDataClear(&mut data);
            Ok((bytes, self.frames))
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: created by WebPAnimEncoderNew, deleted once.
        unsafe { sys::WebPAnimEncoderDelete(self.enc) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_delays_and_loops_survive_a_round_trip() {
        let (w, h) = (16u32, 12u32);
        let mut enc = Encoder::new((w, h), 90, 3).unwrap();
        for (shade, delay) in [(20u8, 70), (200, 0), (120, 150)] {
            enc.push(&[shade, shade, shade, 255].repeat((w * h) as usize), delay).unwrap();
        }
        let (bytes, frames) = enc.finish().unwrap();
        assert_eq!(frames, 3);
        let layout = contracts::animation::webp(&bytes).unwrap();
        assert_eq!((layout.canvas, layout.frames, layout.loops), ((16, 12), 3, Some(3)));
        let mut dec = Decoder::new(&bytes).unwrap();
        assert_eq!(dec.canvas(), (16, 12));
        let mut seen = Vec::new();
        while let Some((rgba, delay)) = dec.next_frame().unwrap() {
            seen.push((rgba[0], delay));
        }
        let delays: Vec<u32> = seen.iter().map(|s| s.1).collect();
        assert_eq!(delays, [70, 100, 150], "a zero delay is written as the 100 ms browsers show");
        assert!(seen[0].0.abs_diff(20) <= 3 && seen[1].0.abs_diff(200) <= 3, "{seen:?}");
    }

    #[test]
    fn garbage_is_corrupt_not_a_crash() {
        assert!(matches!(Decoder::new(b"RIFF\x10\0\0\0WEBPVP8X").err(), Some(ResizeError::Corrupt(_))));
        assert!(Encoder::new((0, 5), 80, 0).is_err());
    }
}
