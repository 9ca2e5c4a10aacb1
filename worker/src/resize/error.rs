use contracts::ProblemKind;

/// Why an image could not be resized. Every variant maps to a stable problem type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResizeError {
    #[error("unsupported image: {0}")]
    Unsupported(String),
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
    #[error("image declares {width}×{height} = {pixels} pixels, over the limit of {limit}")]
    PixelLimit { width: u64, height: u64, pixels: u64, limit: u64 },
    #[error(
        "animation of {frames} frames and {pixels} pixels over all frames is over the limit of {max_frames} frames and {max_pixels} pixels; `frames=first` resizes its first frame"
    )]
    AnimationLimit { frames: u32, pixels: u64, max_frames: u32, max_pixels: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ResizeError {
    pub fn kind(&self) -> ProblemKind {
        match self {
            Self::Unsupported(_) => ProblemKind::UnsupportedMediaType,
            Self::Corrupt(_) => ProblemKind::CorruptImage,
            Self::PixelLimit { .. } => ProblemKind::PixelLimitExceeded,
            Self::AnimationLimit { .. } => ProblemKind::AnimationLimitExceeded,
            Self::Internal(_) => ProblemKind::Internal,
        }
    }
}

impl From<image::ImageError> for ResizeError {
    fn from(e: image::ImageError) -> Self {
        use image::ImageError as E;
        match e {
            E::Unsupported(u) => Self::Unsupported(u.to_string()),
            E::Limits(l) => Self::Corrupt(format!("decoder limit: {l}")),
            E::Decoding(d) => Self::Corrupt(d.to_string()),
            E::IoError(io) => Self::Corrupt(io.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}
