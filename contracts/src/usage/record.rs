//! The usage record: what the business bills from and what the audit trail
//! keeps. JSON, one record per message, `v` = [`RECORD_VERSION`]; a reader
//! refuses versions it does not know instead of guessing.

use crate::{format::ImageFormat, problem::ProblemKind};
use serde::{Deserialize, Serialize};

/// Version written by this code. Readers accept `1..=RECORD_VERSION`.
pub const RECORD_VERSION: u32 = 1;
/// Longest accepted tenant or key id; both end up in storage keys.
pub const MAX_ID_LEN: usize = 64;

/// Which component measured the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A worker processed the job (successfully or not).
    Worker,
    /// The api-server answered without a worker (bad input, limits, overload, queue trouble).
    Edge,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub v: u32,
    /// Also the `Nats-Msg-Id` of the record, so a second publish of it is dropped by JetStream.
    pub request_id: String,
    pub tenant: String,
    #[serde(default)]
    pub key_id: String,
    /// When the request arrived, unix milliseconds; rollups bucket by this time.
    pub received_ms: u64,
    /// When its answer was ready, unix milliseconds.
    pub finished_ms: u64,
    /// HTTP status of the answer.
    pub status: u16,
    /// Problem slug of a failed request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub pixels_in: u64,
    pub pixels_out: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_in: Option<ImageFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_out: Option<ImageFormat>,
    /// CPU time the worker spent on the job (0 for edge records).
    pub cpu_us: u64,
    /// Time from enqueue to the start of processing (0 for edge records).
    pub queue_us: u64,
    /// Time from arrival to the answer.
    pub latency_us: u64,
    pub source: Source,
}

/// Why bytes on the USAGE stream are not a usable record; the reason travels
/// with the record to the dead-letter subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("not a usage record: {0}")]
    Json(String),
    #[error("record version {0} is not supported (this reader knows 1..={RECORD_VERSION})")]
    Version(u32),
    #[error("field `{0}` is empty")]
    Empty(&'static str),
    #[error("field `{field}` has characters outside [A-Za-z0-9_-] or more than {MAX_ID_LEN}: `{value}`")]
    BadId { field: &'static str, value: String },
    #[error("finished ({finished}) is before received ({received})")]
    TimeOrder { received: u64, finished: u64 },
    #[error("status {0} is not an HTTP status")]
    Status(u16),
    #[error("unknown problem type `{0}`")]
    Problem(String),
}

/// Tenants and key ids become parts of storage keys and object names.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl UsageRecord {
    /// The record of a request answered with `problem` before any worker saw it:
    /// the anonymous tenant, nothing processed. Callers fill in what they
    /// measured (times, bytes in) with struct update syntax.
    pub fn refused(request_id: &str, problem: ProblemKind) -> Self {
        Self::at_edge(request_id, problem.status(), Some(problem))
    }

    /// The record of a request the edge answered itself with `status`
    /// (a refusal, or a 304 from the request's entity tag); otherwise as [`Self::refused`].
    pub fn at_edge(request_id: &str, status: u16, problem: Option<ProblemKind>) -> Self {
        Self {
            v: RECORD_VERSION,
            request_id: request_id.to_owned(),
            tenant: crate::job::ANONYMOUS_TENANT.to_owned(),
            key_id: String::new(),
            received_ms: 0,
            finished_ms: 0,
            status,
            problem: problem.map(|p| p.slug().to_owned()),
            bytes_in: 0,
            bytes_out: 0,
            pixels_in: 0,
            pixels_out: 0,
            format_in: None,
            format_out: None,
            cpu_us: 0,
            queue_us: 0,
            latency_us: 0,
            source: Source::Edge,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record always serialises")
    }

    /// Parses and checks a record as read from the stream.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let v = serde_json::from_slice::<Version>(bytes).map_err(|e| RecordError::Json(e.to_string()))?.v;
        if v == 0 || v > RECORD_VERSION {
            return Err(RecordError::Version(v));
        }
        let r: Self = serde_json::from_slice(bytes).map_err(|e| RecordError::Json(e.to_string()))?;
        r.validate()?;
        Ok(r)
    }

    pub fn validate(&self) -> Result<(), RecordError> {
        if self.request_id.is_empty() {
            return Err(RecordError::Empty("request_id"));
        }
        if !valid_id(&self.tenant) {
            return Err(RecordError::BadId { field: "tenant", value: self.tenant.clone() });
        }
        if !self.key_id.is_empty() && !valid_id(&self.key_id) {
            return Err(RecordError::BadId { field: "key_id", value: self.key_id.clone() });
        }
        if self.finished_ms < self.received_ms {
            return Err(RecordError::TimeOrder { received: self.received_ms, finished: self.finished_ms });
        }
        if !(100..600).contains(&self.status) {
            return Err(RecordError::Status(self.status));
        }
        if let Some(p) = &self.problem
            && ProblemKind::from_slug(p).is_none()
        {
            return Err(RecordError::Problem(p.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_refused_request_is_an_edge_record_that_validates() {
        let r = UsageRecord {
            received_ms: 1_764_000_000_000,
            finished_ms: 1_764_000_000_002,
            ..UsageRecord::refused("r1", ProblemKind::Overloaded)
        };
        assert_eq!((r.status, r.problem.as_deref(), r.source), (503, Some("overloaded"), Source::Edge));
        assert_eq!(r.tenant, crate::job::ANONYMOUS_TENANT);
        assert_eq!(UsageRecord::decode(&r.encode()), Ok(r));
    }

    pub fn sample() -> UsageRecord {
        UsageRecord {
            v: RECORD_VERSION,
            request_id: "0190f5a2-7c1e-7000-8000-000000000001".into(),
            tenant: "acme".into(),
            key_id: "k1".into(),
            received_ms: 1_764_000_000_000,
            finished_ms: 1_764_000_000_040,
            status: 200,
            problem: None,
            bytes_in: 250_000,
            bytes_out: 18_000,
            pixels_in: 12_000_000,
            pixels_out: 102_400,
            format_in: Some(ImageFormat::Jpeg),
            format_out: Some(ImageFormat::Webp),
            cpu_us: 3_100,
            queue_us: 400,
            latency_us: 40_000,
            source: Source::Worker,
        }
    }

    #[test]
    fn round_trips() {
        let r = sample();
        assert_eq!(UsageRecord::decode(&r.encode()).unwrap(), r);
        let edge = UsageRecord { problem: Some("overloaded".into()), status: 503, source: Source::Edge, ..sample() };
        assert_eq!(UsageRecord::decode(&edge.encode()).unwrap(), edge);
    }

    #[test]
    fn refuses_what_it_cannot_trust() {
        let enc = |r: UsageRecord| r.encode();
        assert!(matches!(UsageRecord::decode(b"{not json"), Err(RecordError::Json(_))));
        assert!(matches!(UsageRecord::decode(br#"{"v":1}"#), Err(RecordError::Json(_))));
        assert_eq!(UsageRecord::decode(&enc(UsageRecord { v: 2, ..sample() })), Err(RecordError::Version(2)));
        assert_eq!(
            UsageRecord::decode(&enc(UsageRecord { request_id: String::new(), ..sample() })),
            Err(RecordError::Empty("request_id"))
        );
        for tenant in ["", "a.b", "a b", "ü", &"x".repeat(65)] {
            let bad = enc(UsageRecord { tenant: tenant.into(), ..sample() });
            assert!(matches!(UsageRecord::decode(&bad), Err(RecordError::BadId { field: "tenant", .. })), "{tenant}");
        }
        assert!(matches!(
            UsageRecord::decode(&enc(UsageRecord { finished_ms: 1, ..sample() })),
            Err(RecordError::TimeOrder { .. })
        ));
        assert_eq!(UsageRecord::decode(&enc(UsageRecord { status: 99, ..sample() })), Err(RecordError::Status(99)));
        assert!(matches!(
            UsageRecord::decode(&enc(UsageRecord { problem: Some("boom".into()), ..sample() })),
            Err(RecordError::Problem(_))
        ));
    }
}
