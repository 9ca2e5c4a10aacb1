//! The RFC 9421 HTTP Message Signatures profile of the resize API.
//!
//! A request carries one signature (`Signature-Input` and `Signature`, one
//! label) that covers at least [`REQUIRED`], with `created`, an optional
//! `expires` and `keyid`. The verifier rebuilds the signature base (§2.5)
//! from the request as received and checks it with the key's public key; the
//! algorithm comes from the key record, never from the request.
//!
//! Construction of the base is general (any covered header or the derived
//! components below), so the RFC's own test vectors check it; the profile
//! ([`Signed::check_profile`]) is what makes it strict.

use crate::sf::{self, Bare, Item, Member, Params};
use base64::{Engine, engine::general_purpose::STANDARD};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

/// Components every signature must cover.
pub const REQUIRED: [&str; 6] = ["@method", "@authority", "@path", "@query", "content-type", "content-digest"];
/// Largest allowed distance between `created` and now, either way.
pub const MAX_SKEW_S: i64 = 300;
/// Longest allowed `expires - created`.
pub const MAX_LIFETIME_S: i64 = 300;
/// Larger `Signature-Input` or `Signature` values are refused before parsing.
pub const MAX_HEADER_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("{0}")]
    Malformed(String),
    #[error("the signature does not cover {0}")]
    Incomplete(String),
    #[error("{0}")]
    Expired(String),
    #[error("`created` is {0} s in the future")]
    NotYetValid(i64),
    #[error("{0} is larger than {MAX_HEADER_BYTES} bytes")]
    TooLarge(&'static str),
}

/// Seconds since the Unix epoch: the `now` of [`Signed::check_profile`] and
/// the `created` of [`sign`].
pub fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn malformed(s: impl Into<String>) -> SigError {
    SigError::Malformed(s.into())
}

/// What the verifier needs of a request.
pub trait Message {
    fn method(&self) -> &str;
    /// Host and port as the client addressed them.
    fn authority(&self) -> Option<&str>;
    fn path(&self) -> &str;
    fn query(&self) -> Option<&str>;
    /// Every value of a header field, in order.
    fn header_values(&self, name: &str) -> Vec<&[u8]>;
}

fn authority<'a>(uri: &'a http::Uri, headers: &'a http::HeaderMap) -> Option<&'a str> {
    uri.authority().map(|a| a.as_str()).or_else(|| headers.get(http::header::HOST).and_then(|h| h.to_str().ok()))
}

impl<B> Message for http::Request<B> {
    fn method(&self) -> &str {
        self.method().as_str()
    }
    fn authority(&self) -> Option<&str> {
        authority(self.uri(), self.headers())
    }
    fn path(&self) -> &str {
        self.uri().path()
    }
    fn query(&self) -> Option<&str> {
        self.uri().query()
    }
    fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.headers().get_all(name).iter().map(|v| v.as_bytes()).collect()
    }
}

/// The server side sees the head of a request before deciding to read its body.
impl Message for http::request::Parts {
    fn method(&self) -> &str {
        self.method.as_str()
    }
    fn authority(&self) -> Option<&str> {
        authority(&self.uri, &self.headers)
    }
    fn path(&self) -> &str {
        self.uri.path()
    }
    fn query(&self) -> Option<&str> {
        self.uri.query()
    }
    fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.headers.get_all(name).iter().map(|v| v.as_bytes()).collect()
    }
}

/// A parsed signature, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub label: String,
    pub components: Vec<String>,
    params: Params,
    pub key_id: String,
    pub created: Option<i64>,
    pub expires: Option<i64>,
    pub alg: Option<String>,
    pub signature: Vec<u8>,
}

fn only_line<'a>(values: &[&'a [u8]], name: &'static str) -> Result<Option<&'a str>, SigError> {
    match values {
        [] => Ok(None),
        [one] if one.len() > MAX_HEADER_BYTES => Err(SigError::TooLarge(name)),
        [one] => std::str::from_utf8(one).map(Some).map_err(|_| malformed(format!("{name} is not ASCII"))),
        _ => Err(malformed(format!("{name} appears more than once; send one signature"))),
    }
}

impl Signed {
    /// Reads the signature headers of `msg`; `Ok(None)` if it carries none.
    pub fn from_message(msg: &impl Message) -> Result<Option<Self>, SigError> {
        let input = only_line(&msg.header_values("signature-input"), "Signature-Input")?;
        let sig = only_line(&msg.header_values("signature"), "Signature")?;
        match (input, sig) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(malformed("Signature-Input without Signature")),
            (None, Some(_)) => Err(malformed("Signature without Signature-Input")),
            (Some(i), Some(s)) => Self::parse(i, s).map(Some),
        }
    }

    pub fn parse(signature_input: &str, signature: &str) -> Result<Self, SigError> {
        let input = sf::dictionary(signature_input).map_err(|e| malformed(format!("Signature-Input: {e}")))?;
        let sigs = sf::dictionary(signature).map_err(|e| malformed(format!("Signature: {e}")))?;
        let ([(label, member)], [(sig_label, sig_member)]) = (input.as_slice(), sigs.as_slice()) else {
            return Err(malformed("exactly one signature label is accepted"));
        };
        if label != sig_label {
            return Err(malformed(format!("Signature-Input labels `{label}` but Signature labels `{sig_label}`")));
        }
        let Member::Item(Item { bare: Bare::Bytes(signature), .. }) = sig_member else {
            return Err(malformed("Signature must be a byte sequence"));
        };
        let Member::Inner(items, params) = member else {
            return Err(malformed("Signature-Input must be an inner list of components"));
        };
        let mut components = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Item { bare: Bare::Str(name), params } if params.is_empty() => {
                    let canonical = name.to_ascii_lowercase() == *name && !name.is_empty();
                    if !canonical || components.contains(name) {
                        return Err(malformed(format!("component `{name}` is not lowercase or appears twice")));
                    }
                    components.push(name.clone());
                }
                _ => return Err(malformed("components are plain strings (no component parameters)")),
            }
        }
        let mut key_id = None;
        let (mut created, mut expires, mut alg) = (None, None, None);
        for (k, v) in params {
            match (k.as_str(), v) {
                ("keyid", Bare::Str(s)) => key_id = Some(s.clone()),
                ("created", Bare::Int(i)) => created = Some(*i),
                ("expires", Bare::Int(i)) => expires = Some(*i),
                ("alg", Bare::Str(s)) => alg = Some(s.clone()),
                ("nonce" | "tag", Bare::Str(_)) => {}
                (k, _) => return Err(malformed(format!("signature parameter `{k}` is unknown or of the wrong type"))),
            }
        }
        let key_id = key_id.ok_or_else(|| malformed("the signature has no `keyid`"))?;
        Ok(Self {
            label: label.clone(),
            components,
            params: params.clone(),
            key_id,
            created,
            expires,
            alg,
            signature: signature.clone(),
        })
    }

    /// The profile: required components, `created` within ±[`MAX_SKEW_S`] of
    /// `now`, `expires` not passed and at most [`MAX_LIFETIME_S`] after `created`.
    pub fn check_profile(&self, now: i64) -> Result<(), SigError> {
        let missing: Vec<&str> = REQUIRED.iter().copied().filter(|r| !self.components.iter().any(|c| c == r)).collect();
        if !missing.is_empty() {
            return Err(SigError::Incomplete(missing.join(", ")));
        }
        let created = self.created.ok_or_else(|| malformed("the signature has no `created`"))?;
        if created - now > MAX_SKEW_S {
            return Err(SigError::NotYetValid(created - now));
        }
        if now - created > MAX_SKEW_S {
            return Err(SigError::Expired(format!(
                "`created` is {} s old; at most {MAX_SKEW_S} s is accepted",
                now - created
            )));
        }
        if let Some(expires) = self.expires {
            if expires < created || expires - created > MAX_LIFETIME_S {
                return Err(malformed(format!("`expires` must be within {MAX_LIFETIME_S} s after `created`")));
            }
            if expires < now {
                return Err(SigError::Expired(format!("the signature expired {} s ago", now - expires)));
            }
        }
        Ok(())
    }

    /// The signature base (RFC 9421 §2.5) of `msg` for this signature.
    pub fn base(&self, msg: &impl Message) -> Result<String, SigError> {
        base(&self.components, &self.params, msg)
    }
}

fn component_value(name: &str, msg: &impl Message) -> Result<String, SigError> {
    Ok(match name {
        "@method" => msg.method().to_owned(),
        "@authority" => {
            let a = msg.authority().ok_or_else(|| malformed("the request has no authority"))?.to_ascii_lowercase();
            // §2.2.3: the default port is not part of the value. Behind TLS
            // termination the scheme is unknown here, so both defaults go.
            a.strip_suffix(":80").or_else(|| a.strip_suffix(":443")).map_or(a.clone(), str::to_owned)
        }
        "@path" => if msg.path().is_empty() { "/" } else { msg.path() }.to_owned(),
        "@query" => format!("?{}", msg.query().unwrap_or("")),
        "@target-uri" | "@request-target" | "@scheme" | "@query-param" | "@status" | "@signature-params" => {
            return Err(malformed(format!("component `{name}` is not supported")));
        }
        header => {
            let values = msg.header_values(header);
            if values.is_empty() {
                return Err(malformed(format!("covered header `{header}` is not in the request")));
            }
            let mut parts = Vec::with_capacity(values.len());
            for v in values {
                let v = std::str::from_utf8(v).map_err(|_| malformed(format!("header `{header}` is not ASCII")))?;
                parts.push(v.trim().to_owned());
            }
            parts.join(", ")
        }
    })
}

fn base(components: &[String], params: &Params, msg: &impl Message) -> Result<String, SigError> {
    let mut out = String::with_capacity(256);
    for c in components {
        if c.starts_with('@') && c.len() > 1 && !c[1..].bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
            return Err(malformed(format!("component `{c}` is not valid")));
        }
        let v = component_value(c, msg)?;
        if v.contains('\n') || v.contains('\r') {
            return Err(malformed(format!("component `{c}` contains a line break")));
        }
        out.push_str(&format!("\"{c}\": {v}\n"));
    }
    let items: Vec<Item> = components.iter().map(|c| Item { bare: Bare::Str(c.clone()), params: vec![] }).collect();
    out.push_str(&format!("\"@signature-params\": {}", sf::serialize_inner(&items, params)));
    Ok(out)
}

/// Checks an Ed25519 signature over `base` with a raw 32-byte public key.
pub fn verify_ed25519(key: &VerifyingKey, base: &str, signature: &[u8]) -> bool {
    let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else { return false };
    key.verify_strict(base.as_bytes(), &sig).is_ok()
}

/// Parses a base64 Ed25519 public key (the `public_key` of a key record).
pub fn public_key(b64: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = STANDARD.decode(b64.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// What a signer puts on a request.
#[derive(Debug, Clone)]
pub struct SignatureHeaders {
    pub signature_input: String,
    pub signature: String,
}

/// Signs `msg` over `components` (the client side of the profile).
pub fn sign(
    key: &SigningKey,
    key_id: &str,
    label: &str,
    components: &[&str],
    created: i64,
    expires: Option<i64>,
    msg: &impl Message,
) -> Result<SignatureHeaders, SigError> {
    let mut params: Params = vec![("created".into(), Bare::Int(created))];
    if let Some(e) = expires {
        params.push(("expires".into(), Bare::Int(e)));
    }
    params.push(("keyid".into(), Bare::Str(key_id.into())));
    params.push(("alg".into(), Bare::Str("ed25519".into())));
    let components: Vec<String> = components.iter().map(|c| (*c).to_owned()).collect();
    let b = base(&components, &params, msg)?;
    let sig = key.sign(b.as_bytes());
    let items: Vec<Item> = components.iter().map(|c| Item { bare: Bare::Str(c.clone()), params: vec![] }).collect();
    Ok(SignatureHeaders {
        signature_input: format!("{label}={}", sf::serialize_inner(&items, &params)),
        signature: format!("{label}=:{}:", STANDARD.encode(sig.to_bytes())),
    })
}

#[cfg(test)]
mod tests;
