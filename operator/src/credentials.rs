//! The fleet's NATS credentials, kept in one Secret the operator owns
//! (`<fleet>-nats-credentials`): an nkey seed per component role, a CA of the
//! fleet's own, and the servers' certificate, which the operator renews.
//!
//! Why a CA of our own rather than cert-manager's: the certificate must exist
//! before the first NATS pod starts, on clusters that have no cert-manager,
//! and nothing outside the fleet needs to trust it. The CA's key stays in the
//! Secret and in no pod.
//!
//! Everything here is a pure function of the Secret's current data and the
//! time: what is missing is made, what is due is renewed, the rest is kept
//! byte for byte (a new seed would lock out every running component).

use crate::error::Error;
use contracts::access::{Role, User};
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime};

/// The CA certificate (PEM), mounted into every pod that connects.
pub const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
/// The servers' certificate and key (PEM), mounted into the NATS pods only.
pub const TLS_CERT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
/// When the servers' certificate expires (Unix seconds), so renewal needs no X.509 parsing.
const TLS_NOT_AFTER: &str = "tls.not-after";
/// The names the certificate was issued for: a fleet renamed or moved gets a new one.
const TLS_NAMES: &str = "tls.names";

/// How long a server certificate is valid, and how much of that may be left before it is renewed.
pub const CERT_LIFETIME: Duration = Duration::days(90);
pub const RENEW_BEFORE: Duration = Duration::days(30);
const CA_LIFETIME: Duration = Duration::days(3650);
const CA_NAME: &str = "resizer fleet NATS CA";

/// The Secret key holding `role`'s nkey seed.
pub fn seed_key(role: Role) -> String {
    format!("{}.nk", role.name())
}

/// `<fleet>-nats-credentials`.
pub fn secret_name(fleet: &str) -> String {
    format!("{fleet}-nats-credentials")
}

/// The DNS names the servers answer to: the client Service, and every pod of
/// the StatefulSet through the headless Service (the routes' addresses).
pub fn server_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("*.{service}.{namespace}.svc"),
        format!("*.{service}.{namespace}.svc.cluster.local"),
        service.to_owned(),
    ]
}

/// The Secret's data with everything that was missing or due made; whether anything changed.
pub fn complete(
    mut data: BTreeMap<String, String>,
    names: &[String],
    now: OffsetDateTime,
) -> Result<(BTreeMap<String, String>, bool), Error> {
    let mut changed = false;
    for role in Role::ALL {
        let key = seed_key(role);
        if data.get(&key).is_none_or(|s| contracts::access::public_key_of(s).is_err()) {
            data.insert(key, contracts::access::generate_user_key().0);
            changed = true;
        }
    }
    let ca_key = match data.get(CA_KEY).and_then(|pem| rcgen::KeyPair::from_pem(pem).ok()) {
        Some(k) if data.contains_key(CA_CERT) => k,
        _ => {
            let key = rcgen::KeyPair::generate().map_err(cert_error)?;
            let ca = ca_params(now)?.self_signed(&key).map_err(cert_error)?;
            data.insert(CA_CERT.into(), ca.pem());
            data.insert(CA_KEY.into(), key.serialize_pem());
            // A new CA invalidates the servers' certificate.
            data.remove(TLS_NOT_AFTER);
            changed = true;
            key
        }
    };
    let joined = names.join(",");
    let due = data
        .get(TLS_NOT_AFTER)
        .and_then(|s| s.parse::<i64>().ok())
        .is_none_or(|not_after| not_after - now.unix_timestamp() < RENEW_BEFORE.whole_seconds());
    if due || data.get(TLS_NAMES) != Some(&joined) || !data.contains_key(TLS_CERT) || !data.contains_key(TLS_KEY) {
        // The issuer is rebuilt from its key and fixed name: what a signature
        // and the authority key id depend on, so chains verify against the stored CA.
        let issuer = ca_params(now)?.self_signed(&ca_key).map_err(cert_error)?;
        let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(cert_error)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, names.first().cloned().unwrap_or_default());
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + CERT_LIFETIME;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature, rcgen::KeyUsagePurpose::KeyEncipherment];
        // Routes are mutual TLS: each server is also the client of its peers.
        params.extended_key_usages =
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let not_after = params.not_after.unix_timestamp();
        let key = rcgen::KeyPair::generate().map_err(cert_error)?;
        let cert = params.signed_by(&key, &issuer, &ca_key).map_err(cert_error)?;
        data.insert(TLS_CERT.into(), cert.pem());
        data.insert(TLS_KEY.into(), key.serialize_pem());
        data.insert(TLS_NOT_AFTER.into(), not_after.to_string());
        data.insert(TLS_NAMES.into(), joined);
        changed = true;
    }
    Ok((data, changed))
}

fn ca_params(now: OffsetDateTime) -> Result<rcgen::CertificateParams, Error> {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    p.distinguished_name.push(rcgen::DnType::CommonName, CA_NAME);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + CA_LIFETIME;
    Ok(p)
}

fn cert_error(e: rcgen::Error) -> Error {
    Error::Credentials(e.to_string())
}

/// Every role's user, for the servers' configuration (public keys only).
pub fn users(data: &BTreeMap<String, String>) -> Vec<User> {
    Role::ALL
        .into_iter()
        .filter_map(|role| {
            let seed = data.get(&seed_key(role))?;
            Some(User { role, public_key: contracts::access::public_key_of(seed).ok()? })
        })
        .collect()
}

/// A short digest of the servers' certificate and users: a pod-template
/// annotation, so a renewed certificate or a new key rolls the NATS pods one at a time.
pub fn revision(data: &BTreeMap<String, String>) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(data.get(TLS_CERT).map(String::as_bytes).unwrap_or_default());
    for user in users(data) {
        hasher.update(user.public_key.as_bytes());
    }
    let digest = hasher.finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        server_names("photos-nats", "media")
    }

    #[test]
    fn a_new_secret_gets_every_seed_a_ca_and_a_server_certificate() {
        let now = OffsetDateTime::now_utc();
        let (data, changed) = complete(BTreeMap::new(), &names(), now).unwrap();
        assert!(changed);
        for role in Role::ALL {
            assert!(data[&seed_key(role)].starts_with("SU"), "{}", role.name());
        }
        assert!(data[CA_CERT].starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(data[TLS_CERT].starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(users(&data).len(), Role::ALL.len());
        // Run again: nothing is due, nothing changes.
        let (again, changed) = complete(data.clone(), &names(), now + Duration::days(1)).unwrap();
        assert!(!changed);
        assert_eq!(again, data);
    }

    #[test]
    fn the_server_certificate_is_renewed_when_due_or_renamed_and_seeds_are_kept() {
        let now = OffsetDateTime::now_utc();
        let (data, _) = complete(BTreeMap::new(), &names(), now).unwrap();
        let later = now + CERT_LIFETIME - RENEW_BEFORE + Duration::hours(1);
        let (renewed, changed) = complete(data.clone(), &names(), later).unwrap();
        assert!(changed);
        assert_ne!(renewed[TLS_CERT], data[TLS_CERT]);
        assert_ne!(revision(&renewed), revision(&data));
        assert_eq!(renewed[CA_CERT], data[CA_CERT], "the CA is kept");
        for role in Role::ALL {
            assert_eq!(renewed[&seed_key(role)], data[&seed_key(role)], "{}'s seed is kept", role.name());
        }
        let moved = server_names("photos-nats", "elsewhere");
        let (reissued, changed) = complete(renewed.clone(), &moved, later).unwrap();
        assert!(changed);
        assert_ne!(reissued[TLS_CERT], renewed[TLS_CERT]);
    }

    #[test]
    fn a_corrupt_seed_is_replaced() {
        let now = OffsetDateTime::now_utc();
        let (mut data, _) = complete(BTreeMap::new(), &names(), now).unwrap();
        data.insert(seed_key(Role::Worker), "garbage".into());
        let (fixed, changed) = complete(data, &names(), now).unwrap();
        assert!(changed);
        assert!(contracts::access::public_key_of(&fixed[&seed_key(Role::Worker)]).is_ok());
    }
}
