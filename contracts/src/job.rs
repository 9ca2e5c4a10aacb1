//! The job message: headers carry the metadata. The image itself is either
//! staged at the api-server that took the request, and the headers say where
//! to fetch it ([`StagedInput`], the default), or carried as the message body
//! untouched (no base64, no copy into a JSON document).

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
pub const H_SOURCE: &str = "Resize-Source";
pub const H_SOURCE_TOKEN: &str = "Resize-Source-Token";
pub const H_SOURCE_SIZE: &str = "Resize-Source-Size";
pub const H_SOURCE_SHA256: &str = "Resize-Source-Sha256";

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
    /// Where the input waits, when it is staged at the api-server; `None`: the
    /// message body is the input, and the answer goes to [`Job::reply`].
    pub staged: Option<StagedInput>,
}

/// An input staged at the api-server that holds the client connection: the
/// worker fetches it from `url` and posts the answer back there (see
/// [`crate::staging`] for the exchange).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedInput {
    /// The staged body's address on the api-server's peer listener.
    pub url: String,
    /// A 128-bit capability, lowercase hex: whoever shows it may read the body
    /// and answer the request. It travels only inside the JOBS stream.
    pub token: String,
    /// Exact size of the body in bytes.
    pub size: u64,
    /// SHA-256 of the body, lowercase hex: the worker checks the bytes it
    /// fetched against it before using them.
    pub sha256: String,
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

/// A header of exactly `len` lowercase hex digits.
fn hex_header(h: &HeaderMap, name: &'static str, len: usize) -> Result<String, JobDecodeError> {
    let v = get(h, name)?;
    if v.len() != len || !v.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(JobDecodeError::Malformed(name, format!("expected {len} lowercase hex digits")));
    }
    Ok(v.to_owned())
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
        if let Some(s) = &self.staged {
            h.insert(H_SOURCE, s.url.as_str());
            h.insert(H_SOURCE_TOKEN, s.token.as_str());
            h.insert(H_SOURCE_SIZE, s.size.to_string().as_str());
            h.insert(H_SOURCE_SHA256, s.sha256.as_str());
        }
        h
    }

    pub fn from_headers(h: &HeaderMap) -> Result<Self, JobDecodeError> {
        let input = get(h, H_INPUT)?;
        Ok(Self {
            request_id: get(h, H_MSG_ID)?.to_owned(),
            deadline_ms: number(h, H_DEADLINE)?,
            reply: get(h, H_REPLY)?.to_owned(),
            op: ResizeOp::parse_canonical(get(h, H_OP)?).map_err(|e| JobDecodeError::Malformed(H_OP, e.to_string()))?,
            input: ImageFormat::ALL
                .into_iter()
                .find(|f| f.name() == input)
                .ok_or_else(|| JobDecodeError::Malformed(H_INPUT, input.to_owned()))?,
            enqueued_us: number(h, H_ENQUEUED)?,
            traceparent: h.get(H_TRACEPARENT).map(|v| v.as_str().to_owned()),
            tenant: get(h, H_TENANT)?.to_owned(),
            key_id: h.get(H_KEY).map(|v| v.as_str().to_owned()).unwrap_or_default(),
            staged: match h.get(H_SOURCE) {
                None => None,
                Some(url) => Some(StagedInput {
                    url: url.as_str().to_owned(),
                    token: hex_header(h, H_SOURCE_TOKEN, 32)?,
                    size: number(h, H_SOURCE_SIZE)?,
                    sha256: hex_header(h, H_SOURCE_SHA256, 64)?,
                }),
            },
        })
    }

    /// Whether the deadline has passed at `now`.
    pub fn expired_at(&self, now: SystemTime) -> bool {
        unix_ms(now) >= self.deadline_ms
    }

    /// Time left until the deadline at `now` (zero once it has passed).
    pub fn remaining_at(&self, now: SystemTime) -> Duration {
        Duration::from_millis(self.deadline_ms.saturating_sub(unix_ms(now)))
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
            staged: None,
        }
    }

    fn staged() -> StagedInput {
        StagedInput {
            url: "http://10.1.2.3:8081/v1/staged/01J0000000000000000000000".into(),
            token: "0123456789abcdef0123456789abcdef".into(),
            size: 250_000,
            sha256: "ab".repeat(32),
        }
    }

    #[test]
    fn headers_round_trip() {
        let j = job();
        assert_eq!(Job::from_headers(&j.to_headers()).unwrap(), j);
        let j = Job { traceparent: None, ..job() };
        assert_eq!(Job::from_headers(&j.to_headers()).unwrap(), j);
        let j = Job { staged: Some(staged()), ..job() };
        assert_eq!(Job::from_headers(&j.to_headers()).unwrap(), j);
    }

    #[test]
    fn a_staged_reference_is_whole_or_refused() {
        let good = Job { staged: Some(staged()), ..job() }.to_headers();
        for (name, bad) in [
            (H_SOURCE_TOKEN, "0123"),
            (H_SOURCE_TOKEN, "0123456789ABCDEF0123456789ABCDEF"),
            (H_SOURCE_SHA256, "zz"),
            (H_SOURCE_SIZE, "-1"),
        ] {
            let mut h = good.clone();
            h.insert(name, bad);
            assert!(matches!(Job::from_headers(&h), Err(JobDecodeError::Malformed(n, _)) if n == name), "{name}={bad}");
        }
        let mut h = HeaderMap::new();
        for (k, v) in good.iter() {
            if AsRef::<str>::as_ref(k) != H_SOURCE_SHA256 {
                for v in v {
                    h.append(k.clone(), v.clone());
                }
            }
        }
        assert_eq!(Job::from_headers(&h), Err(JobDecodeError::Missing(H_SOURCE_SHA256)));
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
        assert_eq!(j.remaining_at(at - Duration::from_millis(250)), Duration::from_millis(250));
        assert_eq!(j.remaining_at(at + Duration::from_secs(1)), Duration::ZERO);
    }
}
