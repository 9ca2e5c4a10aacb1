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
}

impl Error {
    /// Short label for the errors metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Build(..) => "build",
            Error::MissingObjectKey(_) => "missing_key",
        }
    }
}
