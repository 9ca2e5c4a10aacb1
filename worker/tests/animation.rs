//! Animated GIF and WebP: every frame kept, with its delay and the loop
//! count; the limits that refuse animation bombs before a frame is decoded;
//! `frames=first` and the still formats answering with the first frame.

use contracts::animation;
use contracts::{ImageFormat, ProblemKind, ResizeOp};
use image::AnimationDecoder;
use worker::resize::{Limits, ResizeError, Resized, resize};

fn op(q: &str) -> ResizeOp {
    ResizeOp::parse_canonical(q).unwrap()
}

fn run(input: &[u8], q: &str) -> Result<Resized, ResizeError> {
    resize(input, &op(q), &Limits::default())
}

/// Six colours: a frame is a background with a block in one of them.
const PALETTE: [u8; 18] = [255, 255, 255, 220, 20, 20, 20, 160, 40, 30, 40, 200, 0, 0, 0, 240, 200, 0];

/// A 200×120 GIF: frame `i` moves a 40×40 block of colour `i % 5 + 1`
/// across a white background; the frames after the first cover only the
/// block's old and new place (as GIF optimisers write them).
fn moving_block(delays_cs: &[u16], repeat: Option<gif::Repeat>, transparent_bg: bool) -> Vec<u8> {
    let (w, h) = (200u16, 120u16);
    let mut out = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut out, w, h, &PALETTE).unwrap();
        if let Some(r) = repeat {
            enc.set_repeat(r).unwrap();
        }
        for (i, &delay) in delays_cs.iter().enumerate() {
            let block = (i as u8 % 5) + 1;
            let x0 = (i * 30 % 160) as u16;
            let mut frame = gif::Frame {
                delay,
                width: w,
                height: h,
                dispose: if transparent_bg { gif::DisposalMethod::Background } else { gif::DisposalMethod::Keep },
                transparent: transparent_bg.then_some(0),
                ..gif::Frame::default()
            };
            let buf: Vec<u8> = (0..h)
                .flat_map(|y| (0..w).map(move |x| (x, y)))
                .map(|(x, y)| if (x0..x0 + 40).contains(&x) && (40..80).contains(&y) { block } else { 0 })
                .collect();
            frame.buffer = buf.into();
            enc.write_frame(&frame).unwrap();
        }
    }
    out
}

struct Decoded {
    frames: Vec<(image::RgbaImage, u32)>,
    loops: Option<u16>,
}

fn frames_of<'a>(decoder: impl AnimationDecoder<'a>) -> Vec<(image::RgbaImage, u32)> {
    let frame = |f: image::ImageResult<image::Frame>| {
        let f = f.unwrap();
        let (n, d) = f.delay().numer_denom_ms();
        (f.into_buffer(), n / d)
    };
    decoder.into_frames().map(frame).collect()
}

fn decode_gif(bytes: &[u8]) -> Decoded {
    let frames = frames_of(image::codecs::gif::GifDecoder::new(std::io::Cursor::new(bytes)).unwrap());
    Decoded { frames, loops: animation::gif(bytes).unwrap().loops }
}

fn decode_webp(bytes: &[u8]) -> Decoded {
    let frames = frames_of(image::codecs::webp::WebPDecoder::new(std::io::Cursor::new(bytes)).unwrap());
    Decoded { frames, loops: animation::webp(bytes).unwrap().loops }
}

fn close(a: [u8; 4], b: [u8; 4], tolerance: u8) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= tolerance)
}

#[test]
fn an_animated_gif_stays_an_animated_gif_with_its_delays_and_loops() {
    let input = moving_block(&[10, 20, 0, 50, 7], Some(gif::Repeat::Infinite), false);
    let out = run(&input, "w=100").unwrap();
    assert_eq!(out.rendered.format, ImageFormat::Gif, "no format: an animation keeps its own");
    assert_eq!((out.rendered.width, out.rendered.height, out.rendered.frames), (100, 60, 5));
    assert_eq!(out.input_pixels, 200 * 120 * 5, "usage counts every frame read");
    let d = decode_gif(&out.bytes);
    assert_eq!(d.loops, Some(0), "loops forever, as the input");
    let delays: Vec<u32> = d.frames.iter().map(|f| f.1).collect();
    assert_eq!(delays, [100, 200, 0, 500, 70], "delays as written, a zero delay included");
    for (i, (frame, _)) in d.frames.iter().enumerate() {
        assert_eq!(frame.dimensions(), (100, 60));
        // The block's centre at half size, in the colour the input drew it.
        let x = (i * 30 % 160) as u32 / 2 + 10;
        let c = &PALETTE[(i % 5 + 1) * 3..][..3];
        assert!(close(frame.get_pixel(x, 30).0, [c[0], c[1], c[2], 255], 0), "frame {i}: {:?}", frame.get_pixel(x, 30));
        // What the block left behind is white again.
        assert!(close(frame.get_pixel(95, 5).0, [255, 255, 255, 255], 0), "frame {i}");
    }
}

#[test]
fn a_gif_without_a_loop_extension_plays_once_and_webp_says_so() {
    let input = moving_block(&[10, 10, 10], None, false);
    let gif_out = run(&input, "w=50").unwrap();
    assert_eq!(decode_gif(&gif_out.bytes).loops, None);
    let webp_out = run(&input, "w=50&format=webp").unwrap();
    assert_eq!(decode_webp(&webp_out.bytes).loops, Some(1));
    let looping = run(&moving_block(&[10, 10], Some(gif::Repeat::Finite(3)), false), "w=50").unwrap();
    assert_eq!(decode_gif(&looping.bytes).loops, Some(3));
}

#[test]
fn format_webp_makes_an_animated_webp_and_back() {
    let input = moving_block(&[10, 20, 0, 50, 7], Some(gif::Repeat::Infinite), false);
    let out = run(&input, "w=100&format=webp&quality=90").unwrap();
    assert_eq!((out.rendered.format, out.rendered.frames), (ImageFormat::Webp, 5));
    let layout = animation::webp(&out.bytes).unwrap();
    assert_eq!((layout.canvas, layout.frames, layout.loops), ((100, 60), 5, Some(0)));
    let d = decode_webp(&out.bytes);
    let delays: Vec<u32> = d.frames.iter().map(|f| f.1).collect();
    assert_eq!(delays, [100, 200, 100, 500, 70], "a zero delay becomes the 100 ms browsers show");
    for (i, (frame, _)) in d.frames.iter().enumerate() {
        let x = (i * 30 % 160) as u32 / 2 + 10;
        let c = &PALETTE[(i % 5 + 1) * 3..][..3];
        assert!(
            close(frame.get_pixel(x, 30).0, [c[0], c[1], c[2], 255], 24),
            "frame {i}: {:?}",
            frame.get_pixel(x, 30)
        );
    }
    // The animated WebP in, a GIF out: frames and delays kept again.
    let back = run(&out.bytes, "w=50&format=gif").unwrap();
    assert_eq!((back.rendered.format, back.rendered.frames, back.rendered.width), (ImageFormat::Gif, 5, 50));
    let delays: Vec<u32> = decode_gif(&back.bytes).frames.iter().map(|f| f.1).collect();
    assert_eq!(delays, [100, 200, 100, 500, 70]);
    // And an animated WebP with no format stays one; as JPEG it is its first frame.
    let again = run(&out.bytes, "w=40").unwrap();
    assert_eq!((again.rendered.format, again.rendered.frames), (ImageFormat::Webp, 5));
    let still = run(&out.bytes, "w=40&format=jpeg").unwrap();
    assert_eq!((still.rendered.format, still.rendered.frames), (ImageFormat::Jpeg, 1));
    let first = image::load_from_memory(&still.bytes).unwrap().into_rgba8();
    assert!(close(first.get_pixel(5, 12).0, [220, 20, 20, 255], 40), "{:?}", first.get_pixel(5, 12));
}

#[test]
fn transparency_survives_and_old_frames_do_not_show_through() {
    let input = moving_block(&[10, 10, 10, 10], Some(gif::Repeat::Infinite), true);
    let d = decode_gif(&run(&input, "w=100").unwrap().bytes);
    assert_eq!(d.frames.len(), 4);
    for (i, (frame, _)) in d.frames.iter().enumerate() {
        assert_eq!(frame.get_pixel(95, 5).0[3], 0, "frame {i}: the background stays transparent");
        let x = (i * 30 % 160) as u32 / 2 + 10;
        assert_eq!(frame.get_pixel(x, 30).0[3], 255, "frame {i}: the block is opaque");
        // Where the block was in the frame before (and is not now), nothing is left behind.
        if i > 0 {
            let before = ((i - 1) * 30 % 160) as u32 / 2 + 2;
            if !(x - 10..x + 10).contains(&before) {
                assert_eq!(frame.get_pixel(before, 30).0[3], 0, "frame {i}");
            }
        }
    }
    let webp = decode_webp(&run(&input, "w=100&format=webp").unwrap().bytes);
    assert_eq!(webp.frames[2].0.get_pixel(95, 5).0[3], 0);
}

#[test]
fn frames_first_and_still_formats_answer_with_the_first_frame() {
    let input = moving_block(&[10, 20, 30], Some(gif::Repeat::Infinite), false);
    for (q, format) in [
        ("w=100&frames=first", ImageFormat::Png),
        ("w=100&format=jpeg", ImageFormat::Jpeg),
        ("w=100&format=png", ImageFormat::Png),
        ("w=100&format=gif&frames=first", ImageFormat::Gif),
        ("w=100&format=webp&frames=first", ImageFormat::Webp),
    ] {
        let out = run(&input, q).unwrap();
        assert_eq!((out.rendered.format, out.rendered.frames), (format, 1), "{q}");
        let img = image::load_from_memory(&out.bytes).unwrap().into_rgba8();
        let c = &PALETTE[3..6];
        assert!(close(img.get_pixel(10, 30).0, [c[0], c[1], c[2], 255], 12), "{q}: {:?}", img.get_pixel(10, 30));
        if format == ImageFormat::Gif {
            assert_eq!(animation::gif(&out.bytes).unwrap().frames, 1, "{q}");
        }
    }
}

#[test]
fn crops_and_padding_apply_to_every_frame() {
    let input = moving_block(&[10, 10, 10, 10, 10, 10], Some(gif::Repeat::Infinite), false);
    let contain = run(&input, "w=100&h=100&fit=contain").unwrap();
    assert_eq!((contain.rendered.width, contain.rendered.height, contain.rendered.frames), (100, 100, 6));
    let d = decode_gif(&contain.bytes);
    for (frame, _) in &d.frames {
        assert_eq!(frame.dimensions(), (100, 100));
        assert_eq!(frame.get_pixel(50, 5).0[3], 0, "the padding is transparent");
        assert_eq!(frame.get_pixel(50, 50).0[3], 255);
    }
    for q in ["w=60&h=60&fit=cover", "w=60&h=60&fit=cover&gravity=smart", "w=60&h=60&fit=cover&fx=0.1&fy=0.5"] {
        let out = run(&input, q).unwrap();
        assert_eq!((out.rendered.width, out.rendered.height, out.rendered.frames), (60, 60, 6), "{q}");
        assert_eq!(decode_gif(&out.bytes).frames.len(), 6, "{q}");
    }
}

#[test]
fn animations_over_the_frame_or_pixel_limit_are_refused_before_decoding() {
    let input = moving_block(&[10; 12], Some(gif::Repeat::Infinite), false);
    let few = Limits { max_frames: 10, ..Limits::default() };
    let err = resize(&input, &op("w=50"), &few).unwrap_err();
    assert_eq!(err.kind(), ProblemKind::AnimationLimitExceeded, "{err}");
    assert!(err.to_string().contains("12 frames"), "{err}");
    // 12 frames of 200×120 are 288,000 pixels.
    let small = Limits { max_animation_pixels: 287_999, ..Limits::default() };
    assert_eq!(resize(&input, &op("w=50"), &small).unwrap_err().kind(), ProblemKind::AnimationLimitExceeded);
    assert!(resize(&input, &op("w=50"), &Limits { max_animation_pixels: 288_000, ..Limits::default() }).is_ok());
    // The first frame alone is a still image, under the still limits.
    assert!(resize(&input, &op("w=50&frames=first"), &few).is_ok());
    assert!(resize(&input, &op("w=50&format=jpeg"), &few).is_ok());
    // A thousand frames of 4 K declared by a few kilobytes: refused from the container alone.
    let bomb = gif_with_screen(3840, 2160, 1001);
    assert!(bomb.len() < 40_000, "{} bytes", bomb.len());
    let err = run(&bomb, "w=50").unwrap_err();
    assert_eq!(err.kind(), ProblemKind::AnimationLimitExceeded, "{err}");
}

/// A `w`×`h` screen with `frames` frames of one pixel each.
fn gif_with_screen(w: u16, h: u16, frames: usize) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut out, w, h, &PALETTE).unwrap();
        for _ in 0..frames {
            let f = gif::Frame { width: 1, height: 1, buffer: vec![1].into(), delay: 1, ..gif::Frame::default() };
            enc.write_frame(&f).unwrap();
        }
    }
    out
}

#[test]
fn a_frame_outside_its_canvas_is_corrupt() {
    let mut input = moving_block(&[10, 10], None, false);
    // The second image descriptor: move its frame 50 px to the right of a 200 px screen.
    // Each frame's graphic control extension (8 bytes) comes right before its descriptor.
    let second = input.windows(3).enumerate().filter(|(_, w)| w == &[0x21, 0xF9, 0x04]).nth(1).unwrap().0 + 8;
    assert_eq!(input[second], 0x2C);
    assert_eq!(&input[second + 5..second + 9], &[200, 0, 120, 0], "found the descriptor");
    input[second + 1] = 50;
    let err = run(&input, "w=50").unwrap_err();
    assert_eq!(err.kind(), ProblemKind::CorruptImage, "{err}");
    assert!(err.to_string().contains("outside"), "{err}");
}

#[test]
fn a_photo_asked_for_as_gif_is_a_still_gif() {
    let photo =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/jpeg/000_aitzgorri.jpg")).unwrap();
    let out = run(&photo, "w=160&format=gif").unwrap();
    assert_eq!((out.rendered.format, out.rendered.frames, out.rendered.width), (ImageFormat::Gif, 1, 160));
    let gif = image::load_from_memory(&out.bytes).unwrap().into_rgb8();
    let reference = image::load_from_memory(&run(&photo, "w=160&format=png").unwrap().bytes).unwrap().into_rgb8();
    let err: u64 = gif.as_raw().iter().zip(reference.as_raw()).map(|(a, b)| u64::from(a.abs_diff(*b))).sum();
    let mean = err as f64 / gif.as_raw().len() as f64;
    assert!(mean < 6.0, "mean error {mean:.2} per sample against the PNG");
}

#[test]
fn truncated_and_mangled_animations_are_refused_or_resized_never_a_crash() {
    let gif = moving_block(&[10, 20, 30, 40], Some(gif::Repeat::Infinite), true);
    let webp = run(&gif, "w=100&format=webp").unwrap().bytes;
    for input in [&gif, &webp] {
        for cut in (0..input.len()).step_by(97) {
            match run(&input[..cut], "w=40") {
                Ok(r) => assert!(r.rendered.frames >= 1),
                Err(e) => assert!(
                    matches!(e.kind(), ProblemKind::CorruptImage | ProblemKind::UnsupportedMediaType),
                    "cut at {cut}: {e}"
                ),
            }
        }
        let mut flipped = input.clone();
        for i in (40..flipped.len()).step_by(53) {
            flipped[i] ^= 0x5A;
            let _ = run(&flipped, "w=40");
        }
    }
}
