//! The answer a worker sends back: header fields on a core NATS message to the
//! api-server's inbox (inline jobs), or on an HTTP post to the api-server that
//! staged the input (see [`crate::staging`]).

use crate::{format::ImageFormat, problem::ProblemKind};
use async_nats::HeaderMap;

pub const H_REQUEST: &str = "Resize-Request";
pub const H_STATUS: &str = "Resize-Status";
pub const H_DETAIL: &str = "Resize-Detail";
pub const H_FORMAT: &str = "Resize-Format";
pub const H_WIDTH: &str = "Resize-Width";
pub const H_HEIGHT: &str = "Resize-Height";
/// Frames of an animated answer; absent (as older workers send it) means 1.
pub const H_FRAMES: &str = "Resize-Frames";
pub const H_QUEUE_US: &str = "Resize-Queue-Us";
pub const H_PROCESS_US: &str = "Resize-Process-Us";

/// Value of [`H_STATUS`] for success; failures carry the problem slug instead.
pub const STATUS_OK: &str = "ok";

/// A successfully resized image (the bytes travel as the message body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rendered {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    /// 1 for a still image; an animation's frame count.
    pub frames: u32,
}

impl Rendered {
    /// Pixels written over all frames (what usage counts as `pixels_out`).
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height) * u64::from(self.frames)
    }
}

/// What happened to a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok(Rendered),
    Failed { kind: ProblemKind, detail: String },
}

/// The outcome plus the worker's timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeHeaders {
    pub request_id: String,
    pub outcome: Outcome,
    pub queue_us: u64,
    pub process_us: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("result header `{0}` missing or malformed")]
pub struct OutcomeDecodeError(pub &'static str);

impl OutcomeHeaders {
    /// The header fields of the answer, in order: the same names on a NATS
    /// message (inline jobs) and on the HTTP post of a staged job's answer.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![
            (H_REQUEST, self.request_id.clone()),
            (H_QUEUE_US, self.queue_us.to_string()),
            (H_PROCESS_US, self.process_us.to_string()),
        ];
        match &self.outcome {
            Outcome::Ok(r) => {
                f.push((H_STATUS, STATUS_OK.to_owned()));
                f.push((H_FORMAT, r.format.name().to_owned()));
                f.push((H_WIDTH, r.width.to_string()));
                f.push((H_HEIGHT, r.height.to_string()));
                if r.frames != 1 {
                    f.push((H_FRAMES, r.frames.to_string()));
                }
            }
            Outcome::Failed { kind, detail } => {
                f.push((H_STATUS, kind.slug().to_owned()));
                // Header values cannot carry line breaks.
                f.push((H_DETAIL, detail.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()));
            }
        }
        f
    }

    /// Reads the fields back through `get` (a header lookup by name).
    pub fn from_fields<'a>(get: impl Fn(&'static str) -> Option<&'a str>) -> Result<Self, OutcomeDecodeError> {
        let field = |name: &'static str| get(name).ok_or(OutcomeDecodeError(name));
        fn number<T: std::str::FromStr>(v: &str, name: &'static str) -> Result<T, OutcomeDecodeError> {
            v.parse().map_err(|_| OutcomeDecodeError(name))
        }
        let status = field(H_STATUS)?;
        let outcome = if status == STATUS_OK {
            // Only output formats: the names `format=` takes, written by `name()` above.
            let format = ImageFormat::from_name(field(H_FORMAT)?).ok_or(OutcomeDecodeError(H_FORMAT))?;
            Outcome::Ok(Rendered {
                format,
                width: number(field(H_WIDTH)?, H_WIDTH)?,
                height: number(field(H_HEIGHT)?, H_HEIGHT)?,
                frames: get(H_FRAMES).map_or(Ok(1), |v| number(v, H_FRAMES))?,
            })
        } else {
            Outcome::Failed {
                kind: ProblemKind::from_slug(status).ok_or(OutcomeDecodeError(H_STATUS))?,
                detail: get(H_DETAIL).unwrap_or_default().to_owned(),
            }
        };
        Ok(Self {
            request_id: field(H_REQUEST)?.to_owned(),
            outcome,
            queue_us: number(field(H_QUEUE_US)?, H_QUEUE_US)?,
            process_us: number(field(H_PROCESS_US)?, H_PROCESS_US)?,
        })
    }

    pub fn to_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in self.fields() {
            h.insert(name, value.as_str());
        }
        h
    }

    pub fn from_headers(h: &HeaderMap) -> Result<Self, OutcomeDecodeError> {
        Self::from_fields(|name| h.get(name).map(|v| v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_and_failure_round_trip() {
        for outcome in [
            Outcome::Ok(Rendered { format: ImageFormat::Webp, width: 320, height: 213, frames: 1 }),
            Outcome::Ok(Rendered { format: ImageFormat::Gif, width: 160, height: 90, frames: 37 }),
            Outcome::Failed { kind: ProblemKind::CorruptImage, detail: "bad huffman\ncode".into() },
        ] {
            let o = OutcomeHeaders { request_id: "r1".into(), outcome, queue_us: 12, process_us: 3456 };
            let back = OutcomeHeaders::from_headers(&o.to_headers()).unwrap();
            assert_eq!(back.request_id, "r1");
            assert_eq!((back.queue_us, back.process_us), (12, 3456));
            match (&back.outcome, &o.outcome) {
                (Outcome::Failed { detail, .. }, Outcome::Failed { .. }) => {
                    assert_eq!(detail, "bad huffman code")
                }
                (a, b) => assert_eq!(a, b),
            }
        }
    }

    #[test]
    fn every_output_format_round_trips_and_input_only_ones_do_not() {
        for format in ImageFormat::ALL {
            let outcome = Outcome::Ok(Rendered { format, width: 1, height: 1, frames: 1 });
            let o = OutcomeHeaders { request_id: "r".into(), outcome, queue_us: 0, process_us: 0 };
            let back = OutcomeHeaders::from_headers(&o.to_headers());
            assert_eq!(back.is_ok(), format.is_encodable(), "{format:?}");
        }
    }

    #[test]
    fn unknown_status_is_an_error() {
        let mut h = HeaderMap::new();
        h.insert(H_STATUS, "exploded");
        assert_eq!(OutcomeHeaders::from_headers(&h), Err(OutcomeDecodeError(H_STATUS)));
    }
}
