//! SVG input: rendered at the output's size, transparent where it draws
//! nothing, never reading anything outside the document, and refused when
//! it declares too many pixels or would cost the parser too much.

use contracts::{ImageFormat, ProblemKind, ResizeOp};
use worker::resize::{Limits, ResizeError, Resized, resize};

fn run(input: &str, q: &str) -> Result<Resized, ResizeError> {
    resize(input.as_bytes(), &ResizeOp::parse_canonical(q).unwrap(), &Limits::default())
}

fn pixels(out: &Resized) -> image::RgbaImage {
    image::load_from_memory(&out.bytes).unwrap().into_rgba8()
}

const HALVES: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100">
  <rect x="0" y="0" width="100" height="100" fill="#d01010"/>
  <rect x="100" y="0" width="100" height="100" fill="#1010d0"/>
</svg>"##;

#[test]
fn an_svg_is_rendered_at_the_output_size_and_answered_as_png() {
    let out = run(HALVES, "w=100").unwrap();
    assert_eq!((out.rendered.format, out.rendered.width, out.rendered.height), (ImageFormat::Png, 100, 50));
    assert_eq!(out.input_pixels, 200 * 100, "usage counts the declared size");
    let img = pixels(&out);
    assert_eq!(img.get_pixel(25, 25).0, [0xd0, 0x10, 0x10, 255]);
    assert_eq!(img.get_pixel(75, 25).0, [0x10, 0x10, 0xd0, 255]);
    let jpeg = run(HALVES, "w=60&h=60&fit=cover&format=jpeg").unwrap();
    assert_eq!((jpeg.rendered.format, jpeg.rendered.width, jpeg.rendered.height), (ImageFormat::Jpeg, 60, 60));
}

#[test]
fn vectors_stay_sharp_when_enlarged_and_empty_space_stays_transparent() {
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">
        <rect width="5" height="10" fill="red"/></svg>"#;
    let out = run(svg, "w=1000").unwrap();
    assert_eq!((out.rendered.width, out.rendered.height), (1000, 1000), "the viewBox gives the aspect ratio");
    let img = pixels(&out);
    // Rendered at 1000 px, not a 10-pixel raster enlarged: the edge is within a pixel or two.
    assert_eq!(img.get_pixel(497, 500).0, [255, 0, 0, 255]);
    assert_eq!(img.get_pixel(503, 500).0[3], 0, "right of the edge: nothing drawn, transparent");
    let flat = pixels(&run(svg, "w=100&format=jpeg").unwrap());
    assert!(flat.get_pixel(90, 50).0[..3].iter().all(|&c| c > 245), "JPEG: transparency over white");
}

#[test]
fn nothing_outside_the_document_is_read() {
    // If these were resolved, a file's bytes would be decoded (or the read of
    // /dev/zero would never end); they are ignored and the rest is drawn.
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="40" height="40">
        <image href="/etc/passwd" width="40" height="40"/>
        <image xlink:href="file:///dev/zero" width="40" height="40"/>
        <image href="http://169.254.169.254/latest/meta-data" width="40" height="40"/>
        <image href="data:image/png;base64,iVBORw0KGgo=" width="40" height="40"/>
        <rect x="10" y="10" width="20" height="20" fill="lime"/>
        <script>alert(1)</script>
    </svg>"#;
    let img = pixels(&run(svg, "w=40").unwrap());
    assert_eq!(img.get_pixel(20, 20).0, [0, 255, 0, 255]);
    assert_eq!(img.get_pixel(2, 2).0[3], 0, "no image was drawn");
}

#[test]
fn bombs_and_broken_documents_are_refused() {
    let huge =
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"><rect width="1" height="1"/></svg>"#;
    assert_eq!(run(huge, "w=10").unwrap_err().kind(), ProblemKind::PixelLimitExceeded);
    let deep =
        format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9">{}</svg>"#, "<g>".repeat(100_000));
    assert_eq!(run(&deep, "w=10").unwrap_err().kind(), ProblemKind::CorruptImage);
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">
        <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]><svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><text>&c;</text></svg>"#;
    assert_eq!(run(laughs, "w=10").unwrap_err().kind(), ProblemKind::CorruptImage);
    for broken in [
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"9\" height=\"9\"><rect",
        "<svg width=\"9\" height=\"9\"></g></svg>",
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"0\" height=\"9\"/>",
    ] {
        let err = run(broken, "w=10").unwrap_err();
        assert!(matches!(err.kind(), ProblemKind::CorruptImage), "{broken}: {err}");
    }
    let not_utf8 = b"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"9\" height=\"9\">\xff\xfe</svg>";
    let err = resize(not_utf8, &ResizeOp::parse_canonical("w=10").unwrap(), &Limits::default()).unwrap_err();
    assert_eq!(err.kind(), ProblemKind::CorruptImage, "{err}");
}

#[test]
fn an_illustrator_style_doctype_with_namespace_entities_is_read() {
    let svg = r##"<?xml version="1.0" encoding="utf-8"?>
<!-- Generator: an editor -->
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd" [
  <!ENTITY ns_svg "http://www.w3.org/2000/svg">
]>
<svg xmlns="&ns_svg;" width="30" height="20"><rect width="30" height="20" fill="#000080"/></svg>"##;
    let img = pixels(&run(svg, "w=15").unwrap());
    assert_eq!(img.get_pixel(7, 5).0, [0, 0, 0x80, 255]);
}
