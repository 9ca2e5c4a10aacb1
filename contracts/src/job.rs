//! The job message: headers carry the metadata, the body carries the image
//! bytes untouched (no base64, no copy into a JSON document).

use crate::{format::ImageFormat, op::ResizeOp};
use async_nats::HeaderMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const H_MSG_ID: &str = "Nats-Msg-Id";
pub const H_DEADLINE: &str = "Resize-Deadline";
pub const H_REPLY: &str = "Resize-Reply";
pub const H_OP: &str = "Resize-Op";
pub const H_INPUT: &str = "Resize-Input";
pub const H_ENQUEUED: &str = "Resize-Enqueued";
pub const H_TRACEPARENT: &str = "traceparent";
pub const H_TENANT: &str = "Resize-Tenant";
pub const H_KEY: &str = "Resize-Key";

/// Tenant of requests made without credentials (local development only).
pub const ANONYMOUS_TENANT: &str = "anonymous";

/// Metadata of one resize job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Request id; also the JetStream `Nats-Msg-Id`, so a retried publish is deduplicated.
    pub request_id: String,
    /// Absolute deadline, unix milliseconds. Past it nobody waits for the answer.
    pub deadline_ms: u64,
    /// Core NATS subject of the api-server instance that holds the client connection.
    pub reply: String,
    pub op: ResizeOp,
    /// Input format as sniffed from the bytes by the api-server.
    pub input: ImageFormat,
    /// When the api-server published the job, unix microseconds (queue-wait accounting).
    pub enqueued_us: u64,
    /// W3C trace context of the api-server span, if any.
    pub traceparent: Option<String>,
    /// Tenant the request was authenticated as; usage is metered against it.
    pub tenant: String,
    /// Key id the request was authenticated with (empty for anonymous requests).
    pub key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobDecodeError {
    #[error("job header `{0}` missing")]
    Missing(&'static str),
    #[error("job header `{0}` malformed: {1}")]
    Malformed(&'static str, String),
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as u64
}

pub fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_micros() as u64
}

fn get<'a>(h: &'a HeaderMap, name: &'static str) -> Result<&'a str, JobDecodeError> {
    h.get(name).map(|v| v.as_str()).ok_or(JobDecodeError::Missing(name))
}

fn number(h: &HeaderMap, name: &'static str) -> Result<u64, JobDecodeError> {
    get(h, name)?.parse().map_err(|e: std::num::ParseIntError| JobDecodeError::Malformed(name, e.to_string()))
}

impl Job {
    pub fn to_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(H_MSG_ID, self.request_id.as_str());
        h.insert(H_DEADLINE, self.deadline_ms.to_string().as_str());
        h.insert(H_REPLY, self.reply.as_str());
        h.insert(H_OP, self.op.to_string().as_str());
        h.insert(H_INPUT, self.input.name());
        h.insert(H_ENQUEUED, self.enqueued_us.to_string().as_str());
        if let Some(tp) = &self.traceparent {
            h.insert(H_TRACEPARENT, tp.as_str());
        }
        h.insert(H_TENANT, self.tenant.as_str());
        h.insert(H_KEY, self.key_id.as_str());
        h
    }

    pub fn from_headers(h: &HeaderMap) -> Result<Self, JobDecodeError> {
        let input = get(h, H_INPUT)?;
        Ok(Self {
            request_id: get(h, H_MSG_ID)?.to_owned(),
            deadline_ms: number(h, H_DEADLINE)?,
            reply: get(h, H_REPLY)?.to_owned(),
            op: ResizeOp::parse_canonical(get(h, H_OP)?).map_err(|e| JobDecodeError::Malformed(H_OP, e.to_string()))?,
            input: match input {
                "jpeg" => ImageFormat::Jpeg,
                "png" => ImageFormat::Png,
                "webp" => ImageFormat::Webp,
                "gif" => ImageFormat::Gif,
                other => return Err(JobDecodeError::Malformed(H_INPUT, other.to_owned())),
            },
            enqueued_us: number(h, H_ENQUEUED)?,
            traceparent: h.get(H_TRACEPARENT).map(|v| v.as_str().to_owned()),
            tenant: get(h, H_TENANT)?.to_owned(),
            key_id: h.get(H_KEY).map(|v| v.as_str().to_owned()).unwrap_or_default(),
        })
    }

    /// Whether the deadline has passed at `now`.
    pub fn expired_at(&self, now: SystemTime) -> bool {
        unix_ms(now) >= self.deadline_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            request_id: "01J0000000000000000000000".into(),
            deadline_ms: 1_700_000_000_000,
            reply: "resize.results.abc".into(),
            op: ResizeOp::parse_canonical("w=320&h=320&format=webp&quality=70").unwrap(),
            input: ImageFormat::Jpeg,
            enqueued_us: 1_699_999_999_000_000,
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            tenant: "acme".into(),
            key_id: "k1".into(),
        }
    }

    #[test]
    fn headers_round_trip() {
        let j = job();
        assert_eq!(Job::from_headers(&j.to_headers()).unwrap(), j);
        let j = Job { traceparent: None, ..job() };
        assert_eq!(Job::from_headers(&j.to_headers()).unwrap(), j);
    }

    #[test]
    fn missing_and_malformed_headers_are_reported() {
        let mut h = job().to_headers();
        h.insert(H_DEADLINE, "soon");
        assert!(matches!(Job::from_headers(&h), Err(JobDecodeError::Malformed(H_DEADLINE, _))));
        assert_eq!(Job::from_headers(&HeaderMap::new()), Err(JobDecodeError::Missing(H_INPUT)));
        let mut h = job().to_headers();
        h.insert(H_OP, "w=0");
        assert!(matches!(Job::from_headers(&h), Err(JobDecodeError::Malformed(H_OP, _))));
    }

    #[test]
    fn expiry_is_inclusive_of_the_deadline() {
        let j = job();
        let at = UNIX_EPOCH + Duration::from_millis(j.deadline_ms);
        assert!(j.expired_at(at));
        assert!(!j.expired_at(at - Duration::from_millis(1)));
    }
}
