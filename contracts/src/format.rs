//! Image formats known to the service.

use serde::{Deserialize, Serialize};

/// A format the service decodes; [`ImageFormat::is_encodable`] says which it also writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Jpeg,
    Png,
    Webp,
    Gif,
}

impl ImageFormat {
    pub const ALL: [ImageFormat; 4] = [Self::Jpeg, Self::Png, Self::Webp, Self::Gif];

    pub fn media_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Webp => "webp",
            Self::Gif => "gif",
        }
    }

    /// Output formats. GIF is read (first frame) but never written: a resized
    /// photo as a 256-colour GIF is never what a caller wants.
    pub fn is_encodable(self) -> bool {
        !matches!(self, Self::Gif)
    }

    /// Parses an output format name as given in the `format` query parameter.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "jpeg" | "jpg" => Some(Self::Jpeg),
            "png" => Some(Self::Png),
            "webp" => Some(Self::Webp),
            _ => None,
        }
    }

    /// Parses a `Content-Type` value (parameters and case ignored).
    pub fn from_media_type(value: &str) -> Option<Self> {
        let essence = value.split(';').next().unwrap_or("").trim();
        let essence = essence.to_ascii_lowercase();
        match essence.as_str() {
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Some(Self::Jpeg),
            "image/png" => Some(Self::Png),
            "image/webp" => Some(Self::Webp),
            "image/gif" => Some(Self::Gif),
            _ => None,
        }
    }

    /// Identifies a format from its leading bytes; the body, not the header, is the truth.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [0xFF, 0xD8, 0xFF, ..] => Some(Self::Jpeg),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Self::Png),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(Self::Webp),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Self::Gif),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_each_format_and_rejects_others() {
        assert_eq!(ImageFormat::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ImageFormat::Jpeg));
        assert_eq!(ImageFormat::sniff(b"\x89PNG\r\n\x1a\nrest"), Some(ImageFormat::Png));
        assert_eq!(ImageFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageFormat::Webp));
        assert_eq!(ImageFormat::sniff(b"GIF89a..."), Some(ImageFormat::Gif));
        assert_eq!(ImageFormat::sniff(b"BM\0\0"), None);
        assert_eq!(ImageFormat::sniff(b""), None);
        assert_eq!(ImageFormat::sniff(&[0xFF, 0xD8]), None);
    }

    #[test]
    fn media_types_round_trip_and_ignore_parameters() {
        for f in ImageFormat::ALL {
            assert_eq!(ImageFormat::from_media_type(f.media_type()), Some(f));
        }
        assert_eq!(ImageFormat::from_media_type("Image/JPEG; q=1"), Some(ImageFormat::Jpeg));
        assert_eq!(ImageFormat::from_media_type("image/tiff"), None);
        assert_eq!(ImageFormat::from_name("gif"), None);
    }
}
