//! How every component opens its NATS connection: as its [`Role`]'s user,
//! with its replies under the role's private inbox, over TLS when the fleet
//! has a CA, and with every refusal by the server logged and counted.
//!
//! Credentials come from files whose paths are in the environment (the
//! Kubernetes fleet mounts them from Secrets), never from the values of
//! variables or flags, which `ps` and `kubectl describe` would show.

use crate::access::{self, Role};
use async_nats::{ConnectOptions, Event, ServerError};
use prometheus_client::metrics::counter::Counter;
use std::path::PathBuf;

/// The nkey seed file of this process's role (`SU…`, one line).
pub const NKEY_FILE_ENV: &str = "NATS_NKEY_FILE";
/// The CA certificate (PEM) that signed the servers' certificates; when set, TLS is required.
pub const CA_FILE_ENV: &str = "NATS_CA_FILE";

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("reading the NATS key {path}: {source}")]
    ReadKey { path: PathBuf, source: std::io::Error },
    #[error("the NATS key in {path} is not a user seed: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("the NATS CA file {0} does not exist")]
    MissingCa(PathBuf),
}

/// Where a process finds its credentials: flags every component's
/// configuration flattens in.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct Credentials {
    /// File holding this component's NATS nkey seed; without it the connection is anonymous (refused by a fleet).
    #[arg(long = "nats-nkey-file", env = NKEY_FILE_ENV)]
    pub nkey_file: Option<PathBuf>,
    /// CA certificate (PEM) of the NATS servers; when given, the connection must be TLS.
    #[arg(long = "nats-ca-file", env = CA_FILE_ENV)]
    pub ca_file: Option<PathBuf>,
}

/// Connect options for `role` with `creds` read from their files: [`role_options`]
/// plus the nkey and the CA. Without a key file the connection is anonymous,
/// which a fleet refuses.
pub fn options(role: Role, creds: &Credentials, refusals: Counter) -> Result<ConnectOptions, ConnectError> {
    let mut opts = role_options(role, refusals);
    if let Some(path) = &creds.nkey_file {
        let seed =
            std::fs::read_to_string(path).map_err(|source| ConnectError::ReadKey { path: path.clone(), source })?;
        access::public_key_of(&seed).map_err(|reason| ConnectError::BadKey { path: path.clone(), reason })?;
        opts = opts.nkey(seed.trim().to_owned());
    }
    if let Some(ca) = &creds.ca_file {
        if !ca.is_file() {
            return Err(ConnectError::MissingCa(ca.clone()));
        }
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    Ok(opts)
}

/// Connect options as `role` before any credential: its name, its private
/// inbox prefix, and `refusals` counting what the server refused this
/// connection (credentials, permissions), each also logged naming the
/// subject, so a missing permission is found at once. For a process that
/// holds its credentials in memory rather than in files (the operator).
pub fn role_options(role: Role, refusals: Counter) -> ConnectOptions {
    ConnectOptions::new()
        .name(role.name())
        .custom_inbox_prefix(role.inbox_prefix())
        .ping_interval(crate::servers::CLIENT_PING_INTERVAL)
        .connection_timeout(crate::servers::CLIENT_CONNECT_TIMEOUT)
        .event_callback(move |event| {
            let refusals = refusals.clone();
            async move {
                match event {
                    Event::ServerError(ServerError::AuthorizationViolation) => {
                        refusals.inc();
                        tracing::error!(role = role.name(), "NATS refused this component's credentials");
                    }
                    // A (re)connect the server refused: missing, unknown or wrong credentials.
                    Event::ClientError(async_nats::ClientError::Other(e)) if e.contains("authorization") => {
                        refusals.inc();
                        tracing::error!(role = role.name(), error = %e, "NATS refused this component's credentials");
                    }
                    Event::ServerError(e) => {
                        refusals.inc();
                        tracing::error!(role = role.name(), error = %e, "NATS refused an operation");
                    }
                    other => tracing::info!(role = role.name(), event = %other, "NATS connection"),
                }
            }
        })
}

/// The counter every component exports as `nats_refusals_total`, registered in `registry`.
pub fn register_refusals(registry: &mut prometheus_client::registry::Registry) -> Counter {
    let c = Counter::default();
    registry.register(
        "nats_refusals",
        "Operations the NATS server refused this process (authorization, permissions)",
        c.clone(),
    );
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_or_missing_key_file_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("connect-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = Credentials { nkey_file: Some(dir.join("none.nk")), ca_file: None };
        let e = options(Role::Worker, &missing, Counter::default()).err().unwrap();
        assert!(e.to_string().contains("none.nk"), "{e}");
        let bad = dir.join("bad.nk");
        std::fs::write(&bad, "not a seed\n").unwrap();
        let e = options(Role::Worker, &Credentials { nkey_file: Some(bad), ca_file: None }, Counter::default());
        assert!(matches!(e, Err(ConnectError::BadKey { .. })));
        let good = dir.join("good.nk");
        std::fs::write(&good, format!("{}\n", access::generate_user_key().0)).unwrap();
        assert!(
            options(Role::Worker, &Credentials { nkey_file: Some(good), ca_file: None }, Counter::default()).is_ok()
        );
        let no_ca = Credentials { nkey_file: None, ca_file: Some(dir.join("ca.pem")) };
        assert!(matches!(options(Role::Worker, &no_ca, Counter::default()), Err(ConnectError::MissingCa(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
