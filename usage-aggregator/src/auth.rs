//! Who is asking, and which tenant's usage they may read.
//!
//! A bearer token equal to the configured admin token is an administrator
//! who may name any tenant. A tenant's API key (`rsz_…`) is verified by an
//! auth-cache, like at the api-server, and reads its own tenant only. A
//! request without credentials is refused, unless the fleet runs with
//! `AUTH=none`: it is then the anonymous tenant (the tenant of an api-server
//! running without authentication). [`tenant_for`] confines a tenant to itself.

use contracts::{
    identity::{AuthMode, VerifyRequest, apikey, same_secret},
    job::ANONYMOUS_TENANT,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Tenant(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("credentials are required: `Authorization: Bearer <API key>`")]
    Missing,
    #[error("the bearer token is not valid")]
    BadToken,
    #[error("the Authorization header must be `Bearer <token>`")]
    BadScheme,
    #[error("tenant `{asked}` is not yours; you may read `{own}` only")]
    OtherTenant { asked: String, own: String },
    #[error("parameter `tenant` is required for an administrator")]
    TenantRequired,
    #[error("parameter `tenant`: `{0}` is not a tenant id")]
    BadTenant(String),
}

/// What the Authorization header says: a caller, or an API key to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Caller(Caller),
    ApiKey(VerifyRequest),
}

pub fn credential(
    authorization: Option<&str>,
    admin_token: Option<&str>,
    mode: AuthMode,
) -> Result<Credential, AuthError> {
    let Some(value) = authorization else {
        return match mode {
            AuthMode::None => Ok(Credential::Caller(Caller::Tenant(ANONYMOUS_TENANT.to_owned()))),
            AuthMode::Required => Err(AuthError::Missing),
        };
    };
    let token = value.strip_prefix("Bearer ").ok_or(AuthError::BadScheme)?.trim();
    match admin_token {
        Some(admin) if !admin.is_empty() && same_secret(token.as_bytes(), admin.as_bytes()) => {
            Ok(Credential::Caller(Caller::Admin))
        }
        _ => match apikey::parse(token) {
            Some(k) => Ok(Credential::ApiKey(VerifyRequest::Bearer {
                key_id: k.key_id.to_owned(),
                secret_sha256: apikey::secret_sha256(k.secret),
            })),
            None => Err(AuthError::BadToken),
        },
    }
}

/// The tenant whose usage the caller gets for a `tenant=` parameter (if any).
pub fn tenant_for(caller: &Caller, asked: Option<&str>) -> Result<String, AuthError> {
    if let Some(t) = asked
        && !contracts::usage::record::valid_id(t)
    {
        return Err(AuthError::BadTenant(t.to_owned()));
    }
    match (caller, asked) {
        (Caller::Admin, Some(t)) => Ok(t.to_owned()),
        (Caller::Admin, None) => Err(AuthError::TenantRequired),
        (Caller::Tenant(own), None) => Ok(own.clone()),
        (Caller::Tenant(own), Some(t)) if t == own => Ok(own.clone()),
        (Caller::Tenant(own), Some(t)) => Err(AuthError::OtherTenant { asked: t.to_owned(), own: own.clone() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_sees_only_itself_and_an_admin_anyone() {
        let caller = |a, b| match credential(a, b, AuthMode::None) {
            Ok(Credential::Caller(c)) => Ok(c),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        let anon = caller(None, Some("s3cret")).unwrap();
        assert_eq!(anon, Caller::Tenant(ANONYMOUS_TENANT.into()));
        assert_eq!(tenant_for(&anon, None).unwrap(), ANONYMOUS_TENANT);
        assert_eq!(tenant_for(&anon, Some(ANONYMOUS_TENANT)).unwrap(), ANONYMOUS_TENANT);
        assert!(matches!(tenant_for(&anon, Some("acme")), Err(AuthError::OtherTenant { .. })));
        let admin = caller(Some("Bearer s3cret"), Some("s3cret")).unwrap();
        assert_eq!(tenant_for(&admin, Some("acme")).unwrap(), "acme");
        assert_eq!(tenant_for(&admin, None), Err(AuthError::TenantRequired));
        assert_eq!(tenant_for(&admin, Some("a.b")), Err(AuthError::BadTenant("a.b".into())));
    }

    #[test]
    fn without_credentials_an_authenticated_fleet_refuses() {
        assert_eq!(credential(None, Some("s3cret"), AuthMode::Required), Err(AuthError::Missing));
        assert_eq!(credential(None, None, AuthMode::Required), Err(AuthError::Missing));
    }

    #[test]
    fn wrong_or_unconfigured_tokens_are_refused() {
        for mode in [AuthMode::Required, AuthMode::None] {
            assert_eq!(credential(Some("Bearer nope"), Some("s3cret"), mode), Err(AuthError::BadToken));
            assert_eq!(credential(Some("Bearer s3cret"), None, mode), Err(AuthError::BadToken));
            assert_eq!(credential(Some("Bearer "), Some(""), mode), Err(AuthError::BadToken));
            assert_eq!(credential(Some("Basic czNjcmV0"), Some("s3cret"), mode), Err(AuthError::BadScheme));
        }
    }

    #[test]
    fn api_keys_go_to_verification() {
        let c = credential(Some("Bearer rsz_k1_secret"), Some("s3cret"), AuthMode::Required).unwrap();
        let want = VerifyRequest::Bearer { key_id: "k1".into(), secret_sha256: apikey::secret_sha256("secret") };
        assert_eq!(c, Credential::ApiKey(want));
    }
}
