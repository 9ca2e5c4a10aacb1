//! The result message a worker sends to the api-server's inbox on core NATS.

use crate::{format::ImageFormat, problem::ProblemKind};
use async_nats::HeaderMap;

pub const H_REQUEST: &str = "Resize-Request";
pub const H_STATUS: &str = "Resize-Status";
pub const H_DETAIL: &str = "Resize-Detail";
pub const H_FORMAT: &str = "Resize-Format";
pub const H_WIDTH: &str = "Resize-Width";
pub const H_HEIGHT: &str = "Resize-Height";
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

fn get<'a>(h: &'a HeaderMap, name: &'static str) -> Result<&'a str, OutcomeDecodeError> {
    h.get(name).map(|v| v.as_str()).ok_or(OutcomeDecodeError(name))
}

fn number<T: std::str::FromStr>(h: &HeaderMap, name: &'static str) -> Result<T, OutcomeDecodeError> {
    get(h, name)?.parse().map_err(|_| OutcomeDecodeError(name))
}

impl OutcomeHeaders {
    pub fn to_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(H_REQUEST, self.request_id.as_str());
        h.insert(H_QUEUE_US, self.queue_us.to_string().as_str());
        h.insert(H_PROCESS_US, self.process_us.to_string().as_str());
        match &self.outcome {
            Outcome::Ok(r) => {
                h.insert(H_STATUS, STATUS_OK);
                h.insert(H_FORMAT, r.format.name());
                h.insert(H_WIDTH, r.width.to_string().as_str());
                h.insert(H_HEIGHT, r.height.to_string().as_str());
            }
            Outcome::Failed { kind, detail } => {
                h.insert(H_STATUS, kind.slug());
                // Header values cannot carry line breaks.
                let detail: String = detail.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
                h.insert(H_DETAIL, detail.as_str());
            }
        }
        h
    }

    pub fn from_headers(h: &HeaderMap) -> Result<Self, OutcomeDecodeError> {
        let status = get(h, H_STATUS)?;
        let outcome = if status == STATUS_OK {
            let format = match get(h, H_FORMAT)? {
                "jpeg" => ImageFormat::Jpeg,
                "png" => ImageFormat::Png,
                "webp" => ImageFormat::Webp,
                _ => return Err(OutcomeDecodeError(H_FORMAT)),
            };
            Outcome::Ok(Rendered { format, width: number(h, H_WIDTH)?, height: number(h, H_HEIGHT)? })
        } else {
            Outcome::Failed {
                kind: ProblemKind::from_slug(status).ok_or(OutcomeDecodeError(H_STATUS))?,
                detail: h.get(H_DETAIL).map(|v| v.as_str().to_owned()).unwrap_or_default(),
            }
        };
        Ok(Self {
            request_id: get(h, H_REQUEST)?.to_owned(),
            outcome,
            queue_us: number(h, H_QUEUE_US)?,
            process_us: number(h, H_PROCESS_US)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_and_failure_round_trip() {
        for outcome in [
            Outcome::Ok(Rendered { format: ImageFormat::Webp, width: 320, height: 213 }),
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
    fn unknown_status_is_an_error() {
        let mut h = HeaderMap::new();
        h.insert(H_STATUS, "exploded");
        assert_eq!(OutcomeHeaders::from_headers(&h), Err(OutcomeDecodeError(H_STATUS)));
    }
}
