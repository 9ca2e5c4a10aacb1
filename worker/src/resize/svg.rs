//! SVG input, rendered by resvg straight at the size the plan needs (a
//! vector image has no pixels to shrink from).
//!
//! Rendered safely: nothing outside the document is ever read (resvg is
//! built without raster images and text, and the `<image>` resolver
//! resolves nothing, so `href="/etc/passwd"` or `file:` URLs are never
//! opened); there are no scripts in resvg at all. Before the parser sees the
//! text, a scan bounds what would cost it memory or stack: nesting, element
//! count, and entity declarations that expand other entities (the "billion
//! laughs"). The size an SVG declares is held to the still-image pixel limit
//! like any header, and what is rendered to [`MAX_RENDER_PIXELS`].

use super::{ResizeError, decode::Pixels};
use resvg::{tiny_skia, usvg};

/// Deepest element nesting parsed: usvg converts the tree recursively, and a
/// file of nested groups must not reach the end of a worker thread's stack.
const MAX_DEPTH: usize = 128;
/// Most elements (icons have tens, maps and charts thousands).
const MAX_ELEMENTS: usize = 100_000;
/// Most entity declarations (Illustrator writes a handful for namespaces).
const MAX_ENTITIES: usize = 64;
/// Most pixels rendered; the resampler scales from there.
const MAX_RENDER_PIXELS: f64 = 50_000_000.0;

fn corrupt(what: impl std::fmt::Display) -> ResizeError {
    ResizeError::Corrupt(format!("SVG: {what}"))
}

/// Refuses text the parser should not be given (see the module doc).
fn scan(text: &[u8]) -> Result<(), ResizeError> {
    let (mut depth, mut elements, mut entities, mut at) = (0usize, 0usize, 0usize, 0usize);
    let find = |from: usize, what: &[u8]| text[from..].windows(what.len()).position(|w| w == what).map(|p| from + p);
    while let Some(open) = find(at, b"<") {
        let rest = &text[open..];
        if rest.starts_with(b"<!--") {
            at = find(open + 4, b"-->").ok_or_else(|| corrupt("unterminated comment"))? + 3;
        } else if rest.starts_with(b"<![CDATA[") {
            at = find(open + 9, b"]]>").ok_or_else(|| corrupt("unterminated CDATA"))? + 3;
        } else if rest.starts_with(b"<!ENTITY") {
            entities += 1;
            let end = find(open, b">").ok_or_else(|| corrupt("unterminated entity declaration"))?;
            if entities > MAX_ENTITIES || text[open..end].contains(&b'&') {
                return Err(corrupt("entity declarations that expand other entities, or too many of them"));
            }
            at = end + 1;
        } else if rest.starts_with(b"<!") || rest.starts_with(b"<?") {
            at = open + 2;
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            at = open + 2;
        } else {
            // A start tag: it ends at the first `>` outside quotes; `/>` closes it too.
            let mut quote = None;
            let mut end = None;
            for (i, &b) in rest.iter().enumerate().skip(1) {
                match (quote, b) {
                    (None, b'"' | b'\'') => quote = Some(b),
                    (Some(q), _) if b == q => quote = None,
                    (None, b'>') => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end.ok_or_else(|| corrupt("unterminated tag"))?;
            elements += 1;
            if rest[end - 1] != b'/' {
                depth += 1;
            }
            if depth > MAX_DEPTH || elements > MAX_ELEMENTS {
                return Err(corrupt(format!("more than {MAX_DEPTH} levels of nesting or {MAX_ELEMENTS} elements")));
            }
            at = open + end + 1;
        }
    }
    Ok(())
}

/// A parsed SVG document.
pub struct Svg(usvg::Tree);

impl Svg {
    pub fn parse(input: &[u8]) -> Result<Self, ResizeError> {
        scan(input)?;
        let options = usvg::Options {
            image_href_resolver: usvg::ImageHrefResolver {
                resolve_data: Box::new(|_, _, _| None),
                resolve_string: Box::new(|_, _| None),
            },
            ..usvg::Options::default()
        };
        usvg::Tree::from_data(input, &options).map(Self).map_err(|e| match e {
            usvg::Error::SvgzFeatureNotEnabled | usvg::Error::MalformedGZip => {
                ResizeError::Unsupported("compressed SVG (svgz) is not read".into())
            }
            other => corrupt(other),
        })
    }

    /// The size the document declares, in pixels (rounded up).
    pub fn size(&self) -> (u32, u32) {
        let size = self.0.size();
        (size.width().ceil().max(1.0) as u32, size.height().ceil().max(1.0) as u32)
    }

    /// Renders the whole document at `scale` × its declared size (less when
    /// that would pass [`MAX_RENDER_PIXELS`]), as straight-alpha RGBA.
    pub fn render(&self, scale: f64) -> Result<Pixels, ResizeError> {
        let size = self.0.size();
        let (w, h) = (f64::from(size.width()), f64::from(size.height()));
        let scale = scale.min((MAX_RENDER_PIXELS / (w * h)).sqrt());
        let (width, height) = (((w * scale).ceil() as u32).max(1), ((h * scale).ceil() as u32).max(1));
        let mut pixmap =
            tiny_skia::Pixmap::new(width, height).ok_or_else(|| corrupt(format!("no {width}×{height} canvas")))?;
        let transform = tiny_skia::Transform::from_scale(width as f32 / size.width(), height as f32 / size.height());
        resvg::render(&self.0, transform, &mut pixmap.as_mut());
        let buf = pixmap
            .pixels()
            .iter()
            .flat_map(|p| {
                let c = p.demultiply();
                [c.red(), c.green(), c.blue(), c.alpha()]
            })
            .collect();
        Ok(Pixels { buf, width, height, alpha: true, in_srgb: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_bounds_nesting_elements_and_entities() {
        assert!(scan(b"<svg><g><rect width='1' height='1'/></g><!-- <g><g> --></svg>").is_ok());
        let deep = format!("<svg>{}{}</svg>", "<g>".repeat(MAX_DEPTH), "</g>".repeat(MAX_DEPTH));
        assert!(scan(deep.as_bytes()).is_err());
        let ok = format!("<svg>{}{}</svg>", "<g>".repeat(MAX_DEPTH - 1), "</g>".repeat(MAX_DEPTH - 1));
        assert!(scan(ok.as_bytes()).is_ok());
        let wide = format!("<svg>{}</svg>", "<rect/>".repeat(MAX_ELEMENTS));
        assert!(scan(wide.as_bytes()).is_err());
        assert!(scan(b"<svg a='>'><g b=\"/>\"></g></svg>").is_ok(), "quoted > and /> are not the tag's end");
        let laughs = b"<!DOCTYPE svg [<!ENTITY a 'ha'><!ENTITY b '&a;&a;&a;'>]><svg>&b;</svg>";
        assert!(scan(laughs).is_err());
        let illustrator = b"<!DOCTYPE svg [<!ENTITY ns_svg 'http://www.w3.org/2000/svg'>]><svg xmlns='&ns_svg;'/>";
        assert!(scan(illustrator).is_ok());
        assert!(scan(b"<svg><rect").is_err());
    }
}
