//! The resize pipeline on real photos and on every kind of bad input.

use contracts::{ImageFormat, ProblemKind, ResizeOp};
use image::{GenericImageView, ImageEncoder};
use std::path::PathBuf;
use worker::resize::{Limits, ResizeError, resize};

fn corpus(rel: &str) -> PathBuf {
    let base = std::env::var_os("CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus")));
    base.join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(corpus(rel)).unwrap_or_else(|e| panic!("corpus file {rel}: {e}"))
}

fn op(q: &str) -> ResizeOp {
    ResizeOp::parse_canonical(q).unwrap()
}

fn decode(bytes: &[u8]) -> image::DynamicImage {
    image::load_from_memory(bytes).expect("output decodes")
}

fn run(input: &[u8], q: &str) -> Result<worker::resize::Resized, ResizeError> {
    heic_helper();
    resize(input, &op(q), &Limits::default())
}

/// HEIC is decoded by the worker binary in a process of its own; this test executable is not it.
fn heic_helper() {
    worker::resize::set_heic_helper(env!("CARGO_BIN_EXE_worker").into());
}

fn sample_jpeg() -> Vec<u8> {
    read("jpeg/000_aitzgorri.jpg") // 866×576
}

#[test]
fn every_corpus_jpeg_fits_320_box_with_its_aspect_ratio() {
    let dir = corpus("jpeg");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let input = std::fs::read(&path).unwrap();
        let src = decode(&input);
        let out = run(&input, "w=320&h=320&format=jpeg&quality=80").unwrap();
        let img = decode(&out.bytes);
        assert_eq!(ImageFormat::sniff(&out.bytes), Some(ImageFormat::Jpeg));
        assert_eq!((img.width(), img.height()), (out.rendered.width, out.rendered.height));
        assert_eq!(img.width().max(img.height()), 320, "{path:?}");
        let (ar_in, ar_out) = (src.width() as f64 / src.height() as f64, img.width() as f64 / img.height() as f64);
        assert!((ar_in - ar_out).abs() / ar_in < 0.01, "{path:?}: aspect {ar_in} became {ar_out}");
        n += 1;
    }
    assert!(n >= 70, "corpus has {n} JPEGs");
}

#[test]
fn resized_content_matches_a_plain_downscale() {
    // Guards against swapped channels, wrong crops or a broken DCT-scaled path:
    // our 64×43 result must be close to image's own Lanczos3 downscale.
    let input = sample_jpeg();
    let out = decode(&run(&input, "w=64&format=png").unwrap().bytes).to_rgb8();
    let reference =
        decode(&input).resize_exact(out.width(), out.height(), image::imageops::FilterType::Lanczos3).to_rgb8();
    let diff: f64 =
        out.as_raw().iter().zip(reference.as_raw()).map(|(a, b)| (*a as f64 - *b as f64).abs()).sum::<f64>()
            / out.as_raw().len() as f64;
    assert!(diff < 6.0, "mean absolute difference {diff}");
}

#[test]
fn jpeg_to_jpeg_in_ycbcr_planes_matches_a_plain_downscale() {
    // JPEG → JPEG stays in YCbCr planes; odd output sizes need the luma plane
    // padded to whole chroma samples, so check several, against image's own
    // Lanczos3 downscale of the full decode.
    let input = sample_jpeg();
    let full = decode(&input);
    for w in [64, 63, 101, 320] {
        let out = decode(&run(&input, &format!("w={w}&format=jpeg&quality=95")).unwrap().bytes).to_rgb8();
        assert_eq!(out.width(), w);
        let reference = full.resize_exact(out.width(), out.height(), image::imageops::FilterType::Lanczos3).to_rgb8();
        let diff: f64 =
            out.as_raw().iter().zip(reference.as_raw()).map(|(a, b)| (*a as f64 - *b as f64).abs()).sum::<f64>()
                / out.as_raw().len() as f64;
        assert!(diff < 6.0, "w={w}: mean absolute difference {diff}");
    }
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / a.len() as f64
}

#[test]
fn every_chroma_layout_and_scale_on_the_plane_path_matches_a_plain_downscale() {
    // Luma and chroma are DCT-scaled by different factors on the plane path,
    // each plane mapped to the output on its own grid: check each stored
    // subsampling, grey, progressive and a cropping fit, at sizes that pick
    // different scales (1/8 to 1), against image's Lanczos3 of the full decode.
    let src = decode(&sample_jpeg()).to_rgb8();
    let (w, h) = (src.width() as usize, src.height() as usize);
    let encode = |subsamp: turbojpeg::Subsamp, progressive: bool| {
        let mut c = turbojpeg::Compressor::new().unwrap();
        c.set_quality(95).unwrap();
        c.set_subsamp(subsamp).unwrap();
        c.set_progressive(progressive).unwrap();
        let image = turbojpeg::Image {
            pixels: src.as_raw().as_slice(),
            width: w,
            pitch: w * 3,
            height: h,
            format: turbojpeg::PixelFormat::RGB,
        };
        c.compress_to_vec(image).unwrap()
    };
    use turbojpeg::Subsamp::*;
    for (subsamp, progressive) in
        [(None, false), (Sub2x1, false), (Sub2x2, false), (Sub1x2, false), (Gray, false), (Sub2x2, true)]
    {
        let input = encode(subsamp, progressive);
        let full = decode(&input);
        // WebP stores 4:2:0 planes too, in VP8's limited range: the same path.
        for (q, format) in ["w=50", "w=101", "w=300", "w=700", "w=120&h=120&fit=cover"]
            .into_iter()
            .flat_map(|q| [(q, "jpeg"), (q, "webp")])
        {
            let out = decode(&run(&input, &format!("{q}&format={format}&quality=95")).unwrap().bytes);
            let (ow, oh) = (out.width(), out.height());
            let reference = if q.contains("cover") {
                full.resize_to_fill(ow, oh, image::imageops::FilterType::Lanczos3)
            } else {
                full.resize_exact(ow, oh, image::imageops::FilterType::Lanczos3)
            };
            let diff = mean_abs_diff(out.to_rgb8().as_raw(), reference.to_rgb8().as_raw());
            assert!(diff < 6.0, "{subsamp:?} progressive={progressive} {q} {format}: mean absolute difference {diff}");
            if subsamp == Gray && format == "jpeg" {
                assert_eq!(out.color(), image::ColorType::L8, "grey stays grey");
            }
            if subsamp == Gray && format == "webp" {
                // WebP has no grey: neutral chroma keeps every pixel grey.
                let spread =
                    out.to_rgb8().pixels().map(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap()).max();
                assert!(spread <= Some(2), "{q}: a grey JPEG became colours (spread {spread:?})");
            }
        }
    }
}

#[test]
fn fits_produce_the_requested_geometry() {
    let input = sample_jpeg();
    for (q, size) in [
        ("w=200&h=200&fit=contain&format=png", (200, 200)),
        ("w=200&h=200&fit=cover", (200, 200)),
        ("w=200&h=50&fit=fill", (200, 50)),
        ("w=433", (433, 288)),
        ("h=144", (217, 144)),
        ("w=2000", (2000, 1330)),
    ] {
        let img = decode(&run(&input, q).unwrap().bytes);
        assert_eq!((img.width(), img.height()), size, "{q}");
    }
    // contain pads with transparency where the format has alpha.
    let img = decode(&run(&input, "w=200&h=200&fit=contain&format=png").unwrap().bytes);
    assert_eq!(img.get_pixel(100, 0)[3], 0);
    assert_eq!(img.get_pixel(100, 100)[3], 255);
}

#[test]
fn output_formats_follow_the_request() {
    let input = sample_jpeg();
    for (q, f) in
        [("w=100", ImageFormat::Jpeg), ("w=100&format=png", ImageFormat::Png), ("w=100&format=webp", ImageFormat::Webp)]
    {
        let out = run(&input, q).unwrap();
        assert_eq!(ImageFormat::sniff(&out.bytes), Some(f), "{q}");
        assert_eq!(out.rendered.format, f);
        assert_eq!(decode(&out.bytes).width(), 100);
    }
    let small = run(&input, "w=300&quality=20").unwrap().bytes.len();
    let large = run(&input, "w=300&quality=95").unwrap().bytes.len();
    assert!(small < large, "quality 20 gave {small} bytes, 95 gave {large}");
}

#[test]
fn png_and_webp_photos_from_the_corpus() {
    for dir in ["png", "webp"] {
        for entry in std::fs::read_dir(corpus(dir)).unwrap() {
            let input = std::fs::read(entry.unwrap().path()).unwrap();
            let out = run(&input, "w=256&h=256").unwrap();
            let img = decode(&out.bytes);
            assert_eq!(img.width().max(img.height()), 256);
            assert_eq!(ImageFormat::sniff(&out.bytes), ImageFormat::sniff(&input), "format kept");
        }
    }
}

fn encode_png(img: &image::DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

#[test]
fn sixteen_bit_png_with_alpha() {
    let img = image::DynamicImage::ImageRgba16(image::ImageBuffer::from_fn(300, 200, |x, y| {
        image::Rgba([(x * 200) as u16, (y * 300) as u16, 40000, if x < 150 { 65535 } else { 0 }])
    }));
    let out = run(&encode_png(&img), "w=150").unwrap();
    let back = decode(&out.bytes);
    assert_eq!((back.width(), back.height()), (150, 100));
    assert_eq!(back.get_pixel(10, 50)[3], 255);
    assert_eq!(back.get_pixel(140, 50)[3], 0);
    // to JPEG, transparency becomes white
    let jpeg = decode(&run(&encode_png(&img), "w=150&format=jpeg").unwrap().bytes).to_rgb8();
    assert!(jpeg.get_pixel(140, 50).0.iter().all(|&c| c > 240));
}

#[test]
fn gif_first_frame_becomes_png_with_frames_first() {
    let mut gif = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut gif);
        let red = image::RgbaImage::from_pixel(40, 20, image::Rgba([255, 0, 0, 255]));
        let blue = image::RgbaImage::from_pixel(40, 20, image::Rgba([0, 0, 255, 255]));
        enc.encode_frames([image::Frame::new(red), image::Frame::new(blue)]).unwrap();
    }
    let out = run(&gif, "w=20&frames=first").unwrap();
    assert_eq!((out.rendered.format, out.rendered.frames), (ImageFormat::Png, 1));
    let px = decode(&out.bytes).to_rgb8().get_pixel(10, 5).0;
    assert!(px[0] > 200 && px[2] < 50, "first (red) frame expected, got {px:?}");
    // Without it the animation stays one (tests/animation.rs has the rest).
    let all = run(&gif, "w=20").unwrap();
    assert_eq!((all.rendered.format, all.rendered.frames), (ImageFormat::Gif, 2));
}

/// A JPEG with an EXIF APP1 segment carrying `orientation`, stored 60×30 with a red left half.
fn oriented_jpeg(orientation: u16) -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(60, 30, |x, _| if x < 30 { image::Rgb([255, 0, 0]) } else { image::Rgb([0, 0, 255]) });
    with_orientation(&img, orientation)
}

/// `img` as a JPEG (q95) whose EXIF APP1 segment carries `orientation`.
fn with_orientation(img: &image::RgbImage, orientation: u16) -> Vec<u8> {
    let mut plain = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 95)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .unwrap();
    // TIFF header (big endian), one IFD entry: tag 0x0112 SHORT count 1 value.
    let mut tiff = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
    tiff.extend(orientation.to_be_bytes());
    tiff.extend([0, 0, 0, 0, 0, 0]);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut out = plain[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((app1.len() + 2) as u16).to_be_bytes());
    out.extend(app1);
    out.extend(&plain[2..]);
    out
}

#[test]
fn exif_orientations_1_to_8_are_applied() {
    for o in 1..=8u16 {
        let out = decode(&run(&oriented_jpeg(o), "w=600&h=600&format=png").unwrap().bytes).to_rgb8();
        let transposed = o >= 5;
        assert_eq!(out.dimensions(), if transposed { (300, 600) } else { (600, 300) }, "orientation {o}");
        // Where does the red half of the stored image end up?
        let (w, h) = out.dimensions();
        let red = |x: u32, y: u32| out.get_pixel(x, y).0[0] > 200;
        let expect_red_at = match o {
            1 | 4 => (w / 4, h / 2),     // left stays left
            2 | 3 => (3 * w / 4, h / 2), // mirrored to the right
            5 | 6 => (w / 2, h / 4),     // left becomes top
            7 | 8 => (w / 2, 3 * h / 4), // left becomes bottom
            _ => unreachable!(),
        };
        assert!(red(expect_red_at.0, expect_red_at.1), "orientation {o}: no red at {expect_red_at:?}");
    }
}

/// JPEG → JPEG resamples the stored planes and turns them afterwards; the
/// RGB path (PNG output here) turns the resized RGB image. Both must put the
/// same colour in each corner, for every orientation: the stored image has a
/// different colour in each quadrant (red, blue / green, white), so each of
/// the eight orientations gives a different arrangement. Odd sizes, so that
/// the 4:2:0 output's chroma grid does not divide the image evenly.
#[test]
fn exif_orientations_on_the_jpeg_plane_path_match_the_rgb_path() {
    let colours = [[255, 0, 0], [0, 0, 255], [0, 255, 0], [255, 255, 255]];
    let stored =
        image::RgbImage::from_fn(90, 50, |x, y| image::Rgb(colours[(x >= 45) as usize + 2 * (y >= 25) as usize]));
    let mut arrangements = std::collections::HashSet::new();
    for o in 1..=8u16 {
        let input = with_orientation(&stored, o);
        let jpeg = decode(&run(&input, "w=61&h=61&format=jpeg&quality=95").unwrap().bytes).to_rgb8();
        let webp = decode(&run(&input, "w=61&h=61&format=webp&quality=95").unwrap().bytes).to_rgb8();
        let rgb = decode(&run(&input, "w=61&h=61&format=png").unwrap().bytes).to_rgb8();
        assert_eq!(jpeg.dimensions(), rgb.dimensions(), "orientation {o}");
        assert_eq!(webp.dimensions(), rgb.dimensions(), "orientation {o}");
        assert_eq!(jpeg.dimensions(), if o >= 5 { (34, 61) } else { (61, 34) }, "orientation {o}");
        let (w, h) = jpeg.dimensions();
        let corners = [(w / 4, h / 4), (3 * w / 4, h / 4), (w / 4, 3 * h / 4), (3 * w / 4, 3 * h / 4)];
        let mut arrangement = Vec::new();
        for (x, y) in corners {
            let b = rgb.get_pixel(x, y).0;
            for (path, a) in [("JPEG", jpeg.get_pixel(x, y).0), ("WebP", webp.get_pixel(x, y).0)] {
                let far = a.iter().zip(b).any(|(p, q)| p.abs_diff(q) > 40);
                assert!(!far, "orientation {o} at ({x}, {y}): {path} plane path {a:?}, RGB path {b:?}");
            }
            arrangement.push(b.map(|c| c > 127));
        }
        arrangements.insert(arrangement);
    }
    assert_eq!(arrangements.len(), 8, "each orientation arranges the quadrants differently");
}

/// `cover` with a gravity or a focal point keeps the part of the upright image
/// it names, for every EXIF orientation, on the plane paths (JPEG, WebP) and
/// the RGB path (PNG) alike: each output sample has the colour of the upright
/// pixel it was taken from (samples near a quadrant's edge are skipped).
#[test]
fn cover_gravity_keeps_the_named_part_of_the_upright_image() {
    let colours = [[255, 0, 0], [0, 0, 255], [0, 255, 0], [255, 255, 255]];
    let stored =
        image::RgbImage::from_fn(90, 50, |x, y| image::Rgb(colours[(x >= 45) as usize + 2 * (y >= 25) as usize]));
    for o in 1..=8u16 {
        let input = with_orientation(&stored, o);
        let mut upright = image::DynamicImage::ImageRgb8(stored.clone());
        upright.apply_orientation(image::metadata::Orientation::from_exif(o as u8).unwrap());
        let upright = upright.to_rgb8();
        let (uw, uh) = (upright.width() as f64, upright.height() as f64);
        let edge = |x: f64, y: f64| {
            let near = |v: f64, whole: f64| (v - whole / 2.0).abs() < 6.0 || v < 2.0 || v > whole - 2.0;
            near(x, uw) || near(y, uh)
        };
        for gravity in ["gravity=nw", "gravity=se", "gravity=e", "gravity=s", "fx=0.9&fy=0.1", "fx=0.2&fy=0.8"] {
            let op = op(&format!("w=20&h=20&fit=cover&{gravity}"));
            let side = uw.min(uh);
            let (gx, gy) = op.gravity.placement((uw, uh), (side, side));
            let (left, top) = ((uw - side) * gx, (uh - side) * gy);
            for format in ["jpeg", "webp", "png"] {
                let q = format!("{op}&format={format}").replace("&quality=80", "&quality=95");
                let out = decode(&run(&input, &q).unwrap().bytes).to_rgb8();
                assert_eq!(out.dimensions(), (20, 20), "{q} orientation {o}");
                for (x, y) in [(4, 4), (15, 4), (4, 15), (15, 15), (10, 10)] {
                    let (ux, uy) = (left + (x as f64 + 0.5) * side / 20.0, top + (y as f64 + 0.5) * side / 20.0);
                    if edge(ux, uy) {
                        continue;
                    }
                    let want = upright.get_pixel(ux as u32, uy as u32).0;
                    let got = out.get_pixel(x, y).0;
                    let far = got.iter().zip(want).any(|(a, b)| a.abs_diff(b) > 60);
                    assert!(!far, "{q} orientation {o} at ({x}, {y}) ← upright ({ux}, {uy}): {got:?}, want {want:?}");
                }
            }
        }
    }
}

/// `gravity=smart` keeps the busy, colourful part of an otherwise flat photo,
/// whatever its EXIF orientation, on the plane path (JPEG) and the RGB path
/// (PNG): the smart crop is the crop of the side the detail is on.
#[test]
fn smart_gravity_keeps_the_detail() {
    // Upright 120×60: flat grey, a coloured checkerboard in the right quarter.
    let upright = image::RgbImage::from_fn(120, 60, |x, y| {
        if x >= 95 && (x / 3 + y / 3) % 2 == 0 { image::Rgb([220, 30, 40]) } else { image::Rgb([110, 120, 115]) }
    });
    for o in 1..=8u8 {
        let orientation = image::metadata::Orientation::from_exif(o).unwrap();
        let inverse = match orientation {
            image::metadata::Orientation::Rotate90 => image::metadata::Orientation::Rotate270,
            image::metadata::Orientation::Rotate270 => image::metadata::Orientation::Rotate90,
            other => other,
        };
        let mut stored = image::DynamicImage::ImageRgb8(upright.clone());
        stored.apply_orientation(inverse);
        let input = with_orientation(&stored.to_rgb8(), u16::from(o));
        for format in ["jpeg", "png"] {
            let out = |gravity: &str| {
                let q = format!("w=30&h=30&fit=cover&gravity={gravity}&format={format}&quality=95");
                decode(&run(&input, &q).unwrap().bytes).to_rgb8()
            };
            let (smart, east, west) = (out("smart"), out("e"), out("w"));
            let (to_east, to_west) = (mean_abs_diff(&smart, &east), mean_abs_diff(&smart, &west));
            assert!(to_east < 3.0 && to_west > 8.0, "orientation {o} {format}: {to_east} from e, {to_west} from w");
        }
    }
}

#[test]
fn cmyk_jpeg_becomes_rgb() {
    // Inverted CMYK (as Adobe writes it): C=M=Y=255 and K=255 is white, K=0 is black.
    let (w, h) = (64usize, 32usize);
    let mut px = Vec::with_capacity(w * h * 4);
    for _y in 0..h {
        for x in 0..w {
            px.extend(if x < w / 2 { [255, 255, 255, 255] } else { [255, 0, 255, 255] });
        }
    }
    let mut c = turbojpeg::Compressor::new().unwrap();
    c.set_quality(95).unwrap();
    c.set_colorspace(turbojpeg::Colorspace::YCCK).unwrap();
    let jpeg = c
        .compress_to_vec(turbojpeg::Image {
            pixels: &px[..],
            width: w,
            pitch: w * 4,
            height: h,
            format: turbojpeg::PixelFormat::CMYK,
        })
        .unwrap();
    assert_eq!(turbojpeg::read_header(&jpeg).unwrap().colorspace, turbojpeg::Colorspace::YCCK);
    let out = decode(&run(&jpeg, "w=32&format=png").unwrap().bytes).to_rgb8();
    let white = out.get_pixel(4, 8).0;
    let magenta = out.get_pixel(28, 8).0;
    assert!(white.iter().all(|&c| c > 230), "white, got {white:?}");
    assert!(magenta[0] > 200 && magenta[1] < 60 && magenta[2] > 200, "magenta, got {magenta:?}");
}

#[test]
fn truncated_and_corrupt_inputs_are_corrupt_image() {
    let input = sample_jpeg();
    for cut in [input.len() / 2, 600, 40, 4] {
        let err = run(&input[..cut], "w=100").unwrap_err();
        assert_eq!(err.kind(), ProblemKind::CorruptImage, "cut at {cut}: {err}");
    }
    let mut garbage = input.clone();
    for b in garbage.iter_mut().skip(800).step_by(7) {
        *b = 0xFF;
    }
    assert!(run(&garbage, "w=100").is_err());
    let png = encode_png(&image::DynamicImage::new_rgb8(50, 50));
    assert_eq!(run(&png[..png.len() - 20], "w=10").unwrap_err().kind(), ProblemKind::CorruptImage);
    assert_eq!(run(&png[..30], "w=10").unwrap_err().kind(), ProblemKind::CorruptImage);
}

#[test]
fn unknown_bytes_are_unsupported() {
    for input in [&b"BM\x36\0\0\0"[..], b"", b"hello world", b"II+\0\x08\0\0\0", b"BM is not a bitmap, it is text"] {
        assert_eq!(run(input, "w=10").unwrap_err().kind(), ProblemKind::UnsupportedMediaType);
    }
}

fn encode_as(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// BMP and TIFF photos are read like the other inputs: resized, answered as
/// PNG unless asked otherwise, alpha kept; their headers' sizes are checked
/// against the pixel limit before any pixel is decoded; truncated ones are corrupt.
#[test]
fn bmp_and_tiff_inputs() {
    let photo = decode(&sample_jpeg());
    let rgba = image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(64, 48, |x, _| {
        image::Rgba([30, 160, 90, if x < 32 { 0 } else { 255 }])
    }));
    for format in [image::ImageFormat::Bmp, image::ImageFormat::Tiff] {
        let input = encode_as(&photo, format);
        let out = run(&input, "w=100").unwrap();
        assert_eq!(out.rendered.format, contracts::ImageFormat::Png, "{format:?}");
        let img = decode(&out.bytes);
        let expect = photo.resize(100, 100, image::imageops::FilterType::Lanczos3);
        assert_eq!((img.width(), img.height()), (expect.width(), expect.height()), "{format:?}");
        let diff = mean_abs_diff(img.to_rgb8().as_raw(), expect.to_rgb8().as_raw());
        assert!(diff < 4.0, "{format:?}: mean difference {diff} from a plain downscale");
        let jpeg = run(&input, "w=100&format=jpeg").unwrap();
        assert_eq!(jpeg.rendered.format, contracts::ImageFormat::Jpeg);
        // Alpha survives into the PNG.
        let out = decode(&run(&encode_as(&rgba, format), "w=32").unwrap().bytes).to_rgba8();
        assert_eq!((out.get_pixel(2, 2).0[3], out.get_pixel(29, 2).0[3]), (0, 255), "{format:?}");
        // Truncated: corrupt, not a panic.
        for cut in [input.len() / 2, 60] {
            let err = run(&input[..cut], "w=10").unwrap_err();
            assert_eq!(err.kind(), ProblemKind::CorruptImage, "{format:?} cut at {cut}: {err}");
        }
    }
    // A BMP whose header claims 60000 × 60000 (biWidth, biHeight at 18..26; the
    // decoder itself refuses sides over 65535).
    let mut bomb = encode_as(&image::DynamicImage::new_rgb8(2, 2), image::ImageFormat::Bmp);
    bomb[18..22].copy_from_slice(&60_000i32.to_le_bytes());
    bomb[22..26].copy_from_slice(&60_000i32.to_le_bytes());
    let err = run(&bomb, "w=10").unwrap_err();
    assert_eq!(err.kind(), ProblemKind::PixelLimitExceeded, "{err}");
    // A TIFF whose ImageWidth and ImageLength tags claim 100000 × 100000.
    let tiff = encode_as(&image::DynamicImage::new_rgb8(3, 3), image::ImageFormat::Tiff);
    let bomb = patch_tiff_size(tiff, 100_000);
    let err = run(&bomb, "w=10").unwrap_err();
    assert_eq!(err.kind(), ProblemKind::PixelLimitExceeded, "{err}");
}

/// Rewrites the first IFD's ImageWidth (256) and ImageLength (257) entries of a little-endian TIFF.
fn patch_tiff_size(mut tiff: Vec<u8>, side: u32) -> Vec<u8> {
    assert_eq!(&tiff[..4], b"II*\0");
    let ifd = u32::from_le_bytes(tiff[4..8].try_into().unwrap()) as usize;
    let count = u16::from_le_bytes([tiff[ifd], tiff[ifd + 1]]) as usize;
    let mut patched = 0;
    for i in 0..count {
        let e = ifd + 2 + 12 * i;
        let tag = u16::from_le_bytes([tiff[e], tiff[e + 1]]);
        if tag == 256 || tag == 257 {
            // Type LONG (4), count 1, the value in place.
            tiff[e + 2..e + 4].copy_from_slice(&4u16.to_le_bytes());
            tiff[e + 4..e + 8].copy_from_slice(&1u32.to_le_bytes());
            tiff[e + 8..e + 12].copy_from_slice(&side.to_le_bytes());
            patched += 1;
        }
    }
    assert_eq!(patched, 2);
    tiff
}

/// A small real JPEG whose frame header claims `w`×`h`.
pub fn pixel_bomb(w: u16, h: u16) -> Vec<u8> {
    let mut jpeg = sample_jpeg();
    let sof = jpeg.windows(2).position(|m| m[0] == 0xFF && (m[1] == 0xC0 || m[1] == 0xC2)).unwrap();
    jpeg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    jpeg
}

#[test]
fn pixel_bombs_are_refused_from_the_header() {
    let bomb = pixel_bomb(64250, 64250);
    let start = std::time::Instant::now();
    let err = run(&bomb, "w=100").unwrap_err();
    assert_eq!(err.kind(), ProblemKind::PixelLimitExceeded, "{err}");
    assert!(err.to_string().contains("64250"));
    // Same for PNG: a 1×1 PNG with its IHDR patched to 100000×100000.
    let mut png = encode_png(&image::DynamicImage::new_rgb8(1, 1));
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let err = run(&png, "w=100").unwrap_err();
    assert!(matches!(err.kind(), ProblemKind::PixelLimitExceeded | ProblemKind::CorruptImage), "{err}");
    // A limit is a limit: a legitimate image over a small limit is refused too.
    let err = resize(&sample_jpeg(), &op("w=10"), &Limits::with_max_pixels(1000)).unwrap_err();
    assert_eq!(err.kind(), ProblemKind::PixelLimitExceeded);
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn progressive_jpeg_is_decoded() {
    let src = decode(&sample_jpeg()).to_rgb8();
    let mut c = turbojpeg::Compressor::new().unwrap();
    c.set_progressive(true).unwrap();
    c.set_quality(85).unwrap();
    let (w, h) = (src.width() as usize, src.height() as usize);
    let compress = |c: &mut turbojpeg::Compressor| {
        c.compress_to_vec(turbojpeg::Image {
            pixels: src.as_raw().as_slice(),
            width: w,
            pitch: w * 3,
            height: h,
            format: turbojpeg::PixelFormat::RGB,
        })
        .unwrap()
    };
    let prog = compress(&mut c);
    assert!(turbojpeg::read_header(&prog).unwrap().is_progressive);
    assert_eq!(decode(&run(&prog, "w=100").unwrap().bytes).width(), 100);
    c.set_progressive(false).unwrap();
    c.set_arithmetic(true).unwrap();
    let arith = compress(&mut c);
    assert_eq!(run(&arith, "w=100").unwrap().rendered.width, 100);
}

#[test]
fn large_24mp_jpeg_to_thumbnail() {
    let dir = corpus("large");
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let out = run(&std::fs::read(&path).unwrap(), "w=320&h=320").unwrap();
    assert!(out.input_pixels > 20_000_000);
    assert_eq!(out.rendered.width.max(out.rendered.height), 320);
}

/// A flat 64×64 image of `rgb` tagged with `icc`, as PNG and as JPEG.
fn tagged(rgb: [u8; 3], icc: &[u8]) -> [Vec<u8>; 2] {
    let img = image::RgbImage::from_pixel(64, 64, image::Rgb(rgb));
    let mut png = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut png);
    enc.set_icc_profile(icc.to_vec()).unwrap();
    enc.write_image(img.as_raw(), 64, 64, image::ExtendedColorType::Rgb8).unwrap();
    let mut jpeg = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 100);
    enc.set_icc_profile(icc.to_vec()).unwrap();
    enc.write_image(img.as_raw(), 64, 64, image::ExtendedColorType::Rgb8).unwrap();
    [png, jpeg]
}

#[test]
fn an_embedded_srgb_profile_is_treated_as_none() {
    // Cameras and phones tag their JPEGs sRGB; converting sRGB to sRGB is the
    // identity, so such a file must come out exactly as the untagged one
    // (and a JPEG stays on the plane path).
    let src = decode(&sample_jpeg()).to_rgb8();
    let encode = |icc: Option<Vec<u8>>| {
        let mut jpeg = Vec::new();
        let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90);
        if let Some(icc) = icc {
            enc.set_icc_profile(icc).unwrap();
        }
        enc.write_image(src.as_raw(), src.width(), src.height(), image::ExtendedColorType::Rgb8).unwrap();
        jpeg
    };
    let srgb = moxcms::ColorProfile::new_srgb().encode().unwrap();
    let (tagged, plain) = (encode(Some(srgb)), encode(None));
    assert_ne!(tagged, plain);
    for q in ["w=100&format=jpeg", "w=100&format=png"] {
        assert_eq!(run(&tagged, q).unwrap().bytes, run(&plain, q).unwrap().bytes, "{q}");
    }
}

#[test]
fn embedded_profiles_are_converted_to_srgb() {
    let pro_photo = moxcms::ColorProfile::new_pro_photo_rgb();
    let icc = pro_photo.encode().unwrap();
    let input = [100u8, 150, 50];
    let mut expected = [0u8; 3];
    pro_photo
        .create_transform_8bit(
            moxcms::Layout::Rgb,
            &moxcms::ColorProfile::new_srgb(),
            moxcms::Layout::Rgb,
            moxcms::TransformOptions::default(),
        )
        .unwrap()
        .transform(&input, &mut expected)
        .unwrap();
    assert!(expected.iter().zip(input).any(|(e, i)| e.abs_diff(i) > 10), "test colour must move: {expected:?}");
    for bytes in tagged(input, &icc) {
        let out = decode(&run(&bytes, "w=16&format=png").unwrap().bytes).to_rgb8();
        let got = out.get_pixel(8, 8).0;
        for (g, e) in got.iter().zip(expected) {
            assert!(g.abs_diff(e) <= 3, "{:?}: got {got:?}, expected {expected:?}", ImageFormat::sniff(&bytes));
        }
    }
    // JPEG → JPEG and → WebP convert the resized planes (their own path): same colour.
    let [_, jpeg] = tagged(input, &icc);
    for format in ["jpeg", "webp"] {
        let out = decode(&run(&jpeg, &format!("w=16&format={format}&quality=95")).unwrap().bytes).to_rgb8();
        let got = out.get_pixel(8, 8).0;
        for (g, e) in got.iter().zip(expected) {
            assert!(g.abs_diff(e) <= 4, "JPEG → {format}: got {got:?}, expected {expected:?}");
        }
    }
}

/// A wide-gamut photo: JPEG → JPEG, which applies the profile to the resized
/// planes, agrees with the RGB path's result (PNG output, encoded here with
/// the same JPEG settings), and both differ from ignoring the profile.
#[test]
fn a_profiled_jpeg_to_jpeg_matches_the_rgb_path() {
    let src = decode(&sample_jpeg()).to_rgb8();
    let icc = moxcms::ColorProfile::new_pro_photo_rgb().encode().unwrap();
    let encode = |icc: Option<&[u8]>| {
        let mut jpeg = Vec::new();
        let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90);
        if let Some(icc) = icc {
            enc.set_icc_profile(icc.to_vec()).unwrap();
        }
        enc.write_image(src.as_raw(), src.width(), src.height(), image::ExtendedColorType::Rgb8).unwrap();
        jpeg
    };
    let (tagged, plain) = (encode(Some(&icc)), encode(None));
    let q = "w=200&h=200&format=jpeg&quality=95";
    let jpeg = decode(&run(&tagged, q).unwrap().bytes).to_rgb8();
    let rgb = decode(&run(&tagged, "w=200&h=200&format=png").unwrap().bytes).to_rgb8();
    let untouched = decode(&run(&plain, q).unwrap().bytes).to_rgb8();
    assert_eq!(jpeg.dimensions(), rgb.dimensions());
    // Each RGB path result through the same encoder settings (q95, 4:2:0).
    let mut c = turbojpeg::Compressor::new().unwrap();
    c.set_quality(95).unwrap();
    c.set_subsamp(turbojpeg::Subsamp::Sub2x2).unwrap();
    let mut as_jpeg = |rgb: &image::RgbImage| {
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        let pixels = rgb.as_raw().as_slice();
        let image = turbojpeg::Image { pixels, width: w, pitch: w * 3, height: h, format: turbojpeg::PixelFormat::RGB };
        decode(&c.compress_to_vec(image).unwrap()).to_rgb8()
    };
    let reference = as_jpeg(&rgb);
    let plain_reference = as_jpeg(&decode(&run(&plain, "w=200&h=200&format=png").unwrap().bytes).to_rgb8());
    let mean_diff = |a: &image::RgbImage, b: &image::RgbImage| {
        let total: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y) as u64).sum();
        total as f64 / a.as_raw().len() as f64
    };
    // Untagged, the two paths differ by the plane path's own approximations
    // (chroma decoded smaller, resampled at half size); ProPhoto's wide gamut
    // stretches those differences on the way to sRGB, by about 1.75 ×.
    let baseline = mean_diff(&untouched, &plain_reference);
    let (same, ignored) = (mean_diff(&jpeg, &reference), mean_diff(&untouched, &reference));
    assert!(same < 2.0 * baseline, "JPEG path vs RGB path: mean difference {same:.2}, untagged {baseline:.2}");
    assert!(ignored > 3.0 * same, "ignoring the profile must show: {ignored:.2} vs {same:.2}");
}

/// A refused input leaves nothing behind in the thread's codec state: the
/// next photo on the same thread resizes as if it were the first.
#[test]
fn a_corrupt_input_does_not_poison_the_next_one() {
    let photo = sample_jpeg();
    let first = run(&photo, "w=100&format=jpeg").unwrap();
    let bad_table: Vec<u8> = [0xff, 0xd8, 0xff, 0xdb].into_iter().chain(std::iter::repeat_n(0, 4096)).collect();
    let mut truncated = photo.clone();
    truncated.truncate(photo.len() / 2);
    for corrupt in [bad_table, truncated, photo[..600].to_vec()] {
        let _ = run(&corrupt, "w=100&format=jpeg");
        let again = run(&photo, "w=100&format=jpeg").expect("the photo after a corrupt input");
        assert_eq!(again.bytes, first.bytes, "same photo, same thread, same answer");
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/").to_owned() + name).unwrap()
}

/// Decodes an AVIF output by reading it back through the pipeline as input:
/// same size, PNG out, so the comparison sees every pixel.
fn avif_pixels(avif: &[u8], (w, h): (u32, u32)) -> image::DynamicImage {
    assert_eq!(ImageFormat::sniff(avif), Some(ImageFormat::Avif));
    decode(&run(avif, &format!("w={w}&h={h}&fit=fill&format=png")).unwrap().bytes)
}

#[test]
fn avif_output_on_both_paths_and_avif_input() {
    let jpeg = sample_jpeg();
    // The JPEG plane path (planes handed to the encoder as they are) and the RGB path (a contain pad).
    for q in ["w=160&format=avif&quality=90", "w=160&h=160&fit=contain&format=avif&quality=90"] {
        let out = run(&jpeg, q).unwrap();
        assert_eq!(out.rendered.format, ImageFormat::Avif, "{q}");
        let reference = decode(&run(&jpeg, &q.replace("avif", "png")).unwrap().bytes).to_rgba8();
        let back = avif_pixels(&out.bytes, reference.dimensions()).to_rgba8();
        let diff = mean_abs_diff(back.as_raw(), reference.as_raw());
        assert!(diff < 4.0, "{q}: mean difference {diff} from the PNG of the same operation");
    }
    // Speed and quality reach the encoder: the fastest speed and a low quality change the bytes.
    let slow = run(&jpeg, "w=160&format=avif&speed=4").unwrap().bytes;
    let fast = run(&jpeg, "w=160&format=avif&speed=9").unwrap().bytes;
    assert_ne!(slow, fast);
    let small = run(&jpeg, "w=160&format=avif&quality=20").unwrap().bytes.len();
    assert!(small < slow.len(), "quality 20 gave {small} bytes, 80 gave {}", slow.len());
    // Alpha survives into AVIF and back.
    let rgba = image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(64, 48, |x, _| {
        image::Rgba([30, 160, 90, if x < 32 { 0 } else { 255 }])
    }));
    let avif = run(&encode_png(&rgba), "w=64&format=avif&quality=95").unwrap().bytes;
    assert!(ImageFormat::Avif.may_have_alpha(&avif), "the alpha plane is declared in the header");
    let back = avif_pixels(&avif, (64, 48)).to_rgba8();
    assert!(back.get_pixel(5, 20)[3] < 10 && back.get_pixel(60, 20)[3] > 245, "alpha kept");
    // An AVIF input without a format asked for stays AVIF.
    assert_eq!(run(&avif, "w=32").unwrap().rendered.format, ImageFormat::Avif);
}

#[test]
fn heic_input_is_read_and_answered_as_jpeg() {
    let photo = fixture("photo.heic"); // 256×170, HEVC
    assert_eq!(ImageFormat::sniff(&photo), Some(ImageFormat::Heif));
    let out = run(&photo, "w=128").unwrap();
    assert_eq!(out.rendered.format, ImageFormat::Jpeg, "HEIC is read, not written");
    assert_eq!(out.input_pixels, 256 * 170);
    let img = decode(&out.bytes);
    assert_eq!(img.dimensions(), (128, 85));
    // The same photo as the corpus JPEG it was made from, within lossy-codec noise.
    let reference = decode(&run(&sample_jpeg(), "w=128&h=85&fit=fill").unwrap().bytes).to_rgb8();
    let diff = mean_abs_diff(img.to_rgb8().as_raw(), reference.as_raw());
    assert!(diff < 8.0, "mean difference {diff}");
    for q in ["w=100&format=webp", "w=100&format=png", "w=100&format=avif"] {
        assert!(run(&photo, q).is_ok(), "{q}");
    }
    // A HEIC with an alpha plane keeps it where the output can.
    let alpha = fixture("alpha.heic");
    assert!(ImageFormat::Heif.may_have_alpha(&alpha) && !ImageFormat::Heif.may_have_alpha(&photo));
    // Its left half is opaque, its right half transparent.
    let png = decode(&run(&alpha, "w=64&format=png").unwrap().bytes).to_rgba8();
    assert!(png.get_pixel(5, 20)[3] > 245 && png.get_pixel(60, 20)[3] < 10);
}

#[test]
fn bad_heif_inputs_are_refused_before_decoding() {
    heic_helper();
    let photo = fixture("photo.heic");
    // Its `ispe` box declares the size: patched to 20000×20000, it is a pixel bomb.
    let at = photo.windows(4).position(|w| w == b"ispe").unwrap() + 8;
    let mut bomb = photo.clone();
    bomb[at..at + 4].copy_from_slice(&20_000u32.to_be_bytes());
    bomb[at + 4..at + 8].copy_from_slice(&20_000u32.to_be_bytes());
    let err = run(&bomb, "w=100").unwrap_err();
    assert_eq!(err.kind(), ProblemKind::PixelLimitExceeded, "{err}");
    // Past any side libheif takes: refused as corrupt, not as a server error.
    bomb[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let err = run(&bomb, "w=100").unwrap_err();
    assert!(matches!(err.kind(), ProblemKind::PixelLimitExceeded | ProblemKind::CorruptImage), "{err}");
    // A legitimate image over a small limit is refused too.
    let err = resize(&photo, &op("w=10"), &Limits::with_max_pixels(1000)).unwrap_err();
    assert_eq!(err.kind(), ProblemKind::PixelLimitExceeded);
    // Truncated anywhere: corrupt, never a panic or a server error.
    for cut in [photo.len() - 100, photo.len() / 2, 400, 40, 20] {
        let err = run(&photo[..cut], "w=100").unwrap_err();
        assert!(
            matches!(err.kind(), ProblemKind::CorruptImage | ProblemKind::UnsupportedMediaType),
            "cut at {cut}: {err}"
        );
    }
    let avif = run(&sample_jpeg(), "w=64&format=avif").unwrap().bytes;
    let err = run(&avif[..avif.len() / 2], "w=10").unwrap_err();
    assert_eq!(err.kind(), ProblemKind::CorruptImage, "{err}");
}
