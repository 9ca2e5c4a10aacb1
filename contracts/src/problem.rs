//! Stable RFC 9457 problem types.
//!
//! The `type` URI of a problem is part of the public API: clients branch on it,
//! so a kind's slug never changes once published. Workers report failures as a
//! kind plus a detail; the api-server renders them.

use serde::Serialize;

/// Every failure the service reports to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    InvalidParameter,
    MissingBody,
    Unauthorized,
    Forbidden,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    ContentTypeMismatch,
    CorruptImage,
    PixelLimitExceeded,
    AnimationLimitExceeded,
    OutputTooLarge,
    DeadlineExceeded,
    QueueUnavailable,
    Overloaded,
    NotFound,
    MethodNotAllowed,
    Internal,
    SignatureMalformed,
    SignatureIncomplete,
    SignatureExpired,
    SignatureNotYetValid,
    SignatureInvalid,
    DigestMismatch,
    UnknownKey,
    ApiKeyInvalid,
    KeyRevoked,
    TenantDisabled,
    HeaderTooLarge,
    RateLimited,
    QuotaExhausted,
    AuthUnavailable,
    ClientGone,
    InvalidPrecondition,
    PreconditionFailed,
}

/// The problem `type` URIs are relative references (RFC 9457 §3.1.1) under this path;
/// `GET /problems/<slug>` on the api-server describes each one.
pub const TYPE_PREFIX: &str = "/problems/";

impl ProblemKind {
    pub const ALL: [ProblemKind; 35] = [
        Self::InvalidParameter,
        Self::MissingBody,
        Self::Unauthorized,
        Self::Forbidden,
        Self::PayloadTooLarge,
        Self::RequestTimeout,
        Self::UnsupportedMediaType,
        Self::ContentTypeMismatch,
        Self::CorruptImage,
        Self::PixelLimitExceeded,
        Self::AnimationLimitExceeded,
        Self::OutputTooLarge,
        Self::DeadlineExceeded,
        Self::QueueUnavailable,
        Self::Overloaded,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Internal,
        Self::SignatureMalformed,
        Self::SignatureIncomplete,
        Self::SignatureExpired,
        Self::SignatureNotYetValid,
        Self::SignatureInvalid,
        Self::DigestMismatch,
        Self::UnknownKey,
        Self::ApiKeyInvalid,
        Self::KeyRevoked,
        Self::TenantDisabled,
        Self::HeaderTooLarge,
        Self::RateLimited,
        Self::QuotaExhausted,
        Self::AuthUnavailable,
        Self::ClientGone,
        Self::InvalidPrecondition,
        Self::PreconditionFailed,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            Self::InvalidParameter => "invalid-parameter",
            Self::MissingBody => "missing-body",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::PayloadTooLarge => "payload-too-large",
            Self::RequestTimeout => "request-timeout",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::ContentTypeMismatch => "content-type-mismatch",
            Self::CorruptImage => "corrupt-image",
            Self::PixelLimitExceeded => "pixel-limit-exceeded",
            Self::AnimationLimitExceeded => "animation-limit-exceeded",
            Self::OutputTooLarge => "output-too-large",
            Self::DeadlineExceeded => "deadline-exceeded",
            Self::QueueUnavailable => "queue-unavailable",
            Self::Overloaded => "overloaded",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::Internal => "internal",
            Self::SignatureMalformed => "signature-malformed",
            Self::SignatureIncomplete => "signature-incomplete",
            Self::SignatureExpired => "signature-expired",
            Self::SignatureNotYetValid => "signature-not-yet-valid",
            Self::SignatureInvalid => "signature-invalid",
            Self::DigestMismatch => "digest-mismatch",
            Self::UnknownKey => "unknown-key",
            Self::ApiKeyInvalid => "api-key-invalid",
            Self::KeyRevoked => "key-revoked",
            Self::TenantDisabled => "tenant-disabled",
            Self::HeaderTooLarge => "header-too-large",
            Self::RateLimited => "rate-limited",
            Self::QuotaExhausted => "quota-exhausted",
            Self::AuthUnavailable => "auth-unavailable",
            Self::ClientGone => "client-gone",
            Self::InvalidPrecondition => "invalid-precondition",
            Self::PreconditionFailed => "precondition-failed",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.slug() == slug)
    }

    pub fn status(self) -> u16 {
        match self {
            Self::InvalidParameter | Self::MissingBody | Self::InvalidPrecondition => 400,
            Self::PreconditionFailed => 412,
            Self::Unauthorized
            | Self::SignatureMalformed
            | Self::SignatureIncomplete
            | Self::SignatureExpired
            | Self::SignatureNotYetValid
            | Self::SignatureInvalid
            | Self::DigestMismatch
            | Self::UnknownKey
            | Self::ApiKeyInvalid => 401,
            Self::Forbidden | Self::KeyRevoked | Self::TenantDisabled => 403,
            Self::RateLimited | Self::QuotaExhausted => 429,
            Self::HeaderTooLarge => 431,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType | Self::ContentTypeMismatch => 415,
            Self::CorruptImage | Self::PixelLimitExceeded | Self::AnimationLimitExceeded | Self::OutputTooLarge => 422,
            Self::Internal => 500,
            // nginx's "client closed request": never sent, since nobody is listening;
            // it is what usage records and metrics say of such a job.
            Self::ClientGone => 499,
            Self::DeadlineExceeded | Self::QueueUnavailable | Self::Overloaded | Self::AuthUnavailable => 503,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::InvalidParameter => "A query parameter is missing or invalid",
            Self::MissingBody => "The request has no image body",
            Self::Unauthorized => "The credentials are missing or not valid",
            Self::Forbidden => "The credentials do not allow this request",
            Self::PayloadTooLarge => "The image is larger than the accepted maximum",
            Self::RequestTimeout => "The request body was not received in time",
            Self::UnsupportedMediaType => "The image format is not supported",
            Self::ContentTypeMismatch => "The Content-Type does not match the image bytes",
            Self::CorruptImage => "The image could not be decoded",
            Self::PixelLimitExceeded => "The image declares more pixels than allowed",
            Self::AnimationLimitExceeded => "The animation declares more frames or pixels than allowed",
            Self::OutputTooLarge => "The resized image is larger than the maximum response size",
            Self::DeadlineExceeded => "The request could not be served before its deadline",
            Self::QueueUnavailable => "The job queue is unavailable",
            Self::Overloaded => "The service is at capacity",
            Self::NotFound => "No such resource",
            Self::MethodNotAllowed => "Method not allowed on this resource",
            Self::Internal => "Internal error",
            Self::SignatureMalformed => "The signature headers are missing, malformed or duplicated",
            Self::SignatureIncomplete => "The signature does not cover every required component",
            Self::SignatureExpired => "The signature is too old or has expired",
            Self::SignatureNotYetValid => "The signature was created in the future",
            Self::SignatureInvalid => "The signature does not verify with the key",
            Self::DigestMismatch => "The body does not match its Content-Digest",
            Self::UnknownKey => "No such key",
            Self::ApiKeyInvalid => "The API key is malformed or its secret is wrong",
            Self::KeyRevoked => "The key has been revoked",
            Self::TenantDisabled => "The tenant is disabled",
            Self::HeaderTooLarge => "A request header is larger than allowed",
            Self::RateLimited => "The tenant's request rate limit is exceeded",
            Self::QuotaExhausted => "The tenant's monthly quota is used up",
            Self::AuthUnavailable => "Requests cannot be authenticated right now",
            Self::ClientGone => "The client went away before its request was answered",
            Self::InvalidPrecondition => "A conditional request header is malformed",
            Self::PreconditionFailed => "The request's precondition does not hold",
        }
    }

    /// Whether retrying the same request later may succeed (drives `Retry-After`).
    pub fn is_transient(self) -> bool {
        self.status() == 503
    }

    pub fn type_uri(self) -> String {
        format!("{TYPE_PREFIX}{}", self.slug())
    }
}

/// The problem+json document (RFC 9457 §3).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ProblemDocument {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl ProblemDocument {
    pub fn new(kind: ProblemKind, detail: impl Into<String>, instance: Option<String>) -> Self {
        Self {
            type_uri: kind.type_uri(),
            title: kind.title().to_owned(),
            status: kind.status(),
            detail: detail.into(),
            instance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for k in ProblemKind::ALL {
            assert!(seen.insert(k.slug()), "duplicate slug {}", k.slug());
            assert_eq!(ProblemKind::from_slug(k.slug()), Some(k));
            assert!(k.type_uri().starts_with(TYPE_PREFIX));
        }
        assert_eq!(ProblemKind::from_slug("nope"), None);
    }

    #[test]
    fn only_unavailability_is_transient() {
        assert!(ProblemKind::DeadlineExceeded.is_transient());
        assert!(ProblemKind::Overloaded.is_transient());
        assert!(!ProblemKind::CorruptImage.is_transient());
        assert_eq!(ProblemKind::PixelLimitExceeded.status(), 422);
    }
}
