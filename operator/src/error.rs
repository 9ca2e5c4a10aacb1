//! Errors of a reconcile round. Each variant says which step failed, so the
//! `error_policy` log line and the metrics label point at the cause.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),

    #[error("building the {0} child: {1}")]
    Build(String, #[source] serde_json::Error),

    #[error("the resource has no {0}")]
    MissingObjectKey(&'static str),

    #[error("issuing the fleet's NATS credentials: {0}")]
    Credentials(String),
}

impl Error {
    /// Every value [`Error::metric_label`] can take: a fleet's error counters
    /// exist at zero for each, so a rate over them says "none" instead of "no data".
    pub const METRIC_LABELS: [&'static str; 4] = ["kube", "build", "missing_key", "credentials"];

    /// Short label for the errors metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Build(..) => "build",
            Error::MissingObjectKey(_) => "missing_key",
            Error::Credentials(_) => "credentials",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_is_listed() {
        let all = [
            Error::Kube(kube::Error::LinesCodecMaxLineLengthExceeded),
            Error::Build("x".into(), serde_json::from_str::<u8>("x").unwrap_err()),
            Error::MissingObjectKey("metadata.uid"),
            Error::Credentials("x".into()),
        ];
        for e in &all {
            assert!(Error::METRIC_LABELS.contains(&e.metric_label()), "{}", e.metric_label());
        }
        assert_eq!(all.len(), Error::METRIC_LABELS.len());
    }
}
