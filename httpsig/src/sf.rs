//! The part of RFC 8941 Structured Field Values that signatures use:
//! dictionaries whose members are inner lists of strings or byte sequences,
//! with parameters. Strict: anything else is an error, never a guess.

use base64::{Engine, engine::general_purpose::STANDARD};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bare {
    Int(i64),
    Str(String),
    Token(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

pub type Params = Vec<(String, Bare)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub bare: Bare,
    pub params: Params,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    Item(Item),
    Inner(Vec<Item>, Params),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("structured field: {0}")]
pub struct SfError(pub &'static str);

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }
    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), SfError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(SfError(what))
        }
    }

    fn key(&mut self) -> Result<String, SfError> {
        let start = self.i;
        match self.peek() {
            Some(c) if c.is_ascii_lowercase() || c == b'*' => self.i += 1,
            _ => return Err(SfError("a key must start with a lowercase letter or *")),
        }
        while matches!(self.peek(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.*".contains(&c)) {
            self.i += 1;
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn bare(&mut self) -> Result<Bare, SfError> {
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b':') => self.bytes(),
            Some(b'?') => {
                self.i += 1;
                let b = match self.peek() {
                    Some(b'1') => true,
                    Some(b'0') => false,
                    _ => return Err(SfError("a boolean is ?0 or ?1")),
                };
                self.i += 1;
                Ok(Bare::Bool(b))
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => self.integer(),
            Some(c) if c.is_ascii_alphabetic() || c == b'*' => {
                let start = self.i;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&c)) {
                    self.i += 1;
                }
                Ok(Bare::Token(String::from_utf8_lossy(&self.s[start..self.i]).into_owned()))
            }
            _ => Err(SfError("expected a string, byte sequence, boolean, integer or token")),
        }
    }

    fn integer(&mut self) -> Result<Bare, SfError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
            self.i += 1;
        }
        if self.i == digits || self.i - digits > 15 {
            return Err(SfError("an integer has 1 to 15 digits"));
        }
        if self.peek() == Some(b'.') {
            return Err(SfError("decimals are not accepted here"));
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|t| t.parse().ok())
            .map(Bare::Int)
            .ok_or(SfError("bad integer"))
    }

    fn string(&mut self) -> Result<Bare, SfError> {
        self.i += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(SfError("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Bare::Str(out));
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => out.push(c as char),
                        _ => return Err(SfError("bad escape in string")),
                    }
                    self.i += 1;
                }
                Some(c) if (0x20..0x7f).contains(&c) => {
                    out.push(c as char);
                    self.i += 1;
                }
                Some(_) => return Err(SfError("strings are printable ASCII")),
            }
        }
    }

    fn bytes(&mut self) -> Result<Bare, SfError> {
        self.i += 1;
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || b"+/=".contains(&c)) {
            self.i += 1;
        }
        let b64 = &self.s[start..self.i];
        self.expect(b':', "unterminated byte sequence")?;
        STANDARD.decode(b64).map(Bare::Bytes).map_err(|_| SfError("bad base64 in byte sequence"))
    }

    fn params(&mut self) -> Result<Params, SfError> {
        let mut out: Params = Vec::new();
        while self.peek() == Some(b';') {
            self.i += 1;
            self.skip_sp();
            let k = self.key()?;
            let v = if self.peek() == Some(b'=') {
                self.i += 1;
                self.bare()?
            } else {
                Bare::Bool(true)
            };
            if out.iter().any(|(have, _)| *have == k) {
                return Err(SfError("a parameter appears twice"));
            }
            out.push((k, v));
        }
        Ok(out)
    }

    fn item(&mut self) -> Result<Item, SfError> {
        let bare = self.bare()?;
        Ok(Item { bare, params: self.params()? })
    }

    fn member(&mut self) -> Result<Member, SfError> {
        if self.peek() != Some(b'(') {
            return Ok(Member::Item(self.item()?));
        }
        self.i += 1;
        let mut items = Vec::new();
        loop {
            self.skip_sp();
            if self.peek() == Some(b')') {
                self.i += 1;
                return Ok(Member::Inner(items, self.params()?));
            }
            items.push(self.item()?);
            if !matches!(self.peek(), Some(b' ' | b')')) {
                return Err(SfError("inner list items are separated by spaces"));
            }
        }
    }
}

/// Parses a dictionary, keeping duplicate keys (the caller decides; RFC 8941
/// would keep the last, which would let a second signature hide the first).
pub fn dictionary(s: &str) -> Result<Vec<(String, Member)>, SfError> {
    let mut p = Parser { s: s.as_bytes(), i: 0 };
    p.skip_sp();
    let mut out = Vec::new();
    if p.peek().is_none() {
        return Err(SfError("empty dictionary"));
    }
    loop {
        let k = p.key()?;
        let v = if p.peek() == Some(b'=') {
            p.i += 1;
            p.member()?
        } else {
            Member::Item(Item { bare: Bare::Bool(true), params: p.params()? })
        };
        out.push((k, v));
        p.skip_ows();
        match p.peek() {
            None => return Ok(out),
            Some(b',') => {
                p.i += 1;
                p.skip_ows();
                if p.peek().is_none() {
                    return Err(SfError("trailing comma"));
                }
            }
            _ => return Err(SfError("dictionary members are separated by commas")),
        }
    }
}

pub fn serialize_bare(b: &Bare) -> String {
    match b {
        Bare::Int(i) => i.to_string(),
        Bare::Str(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        Bare::Token(t) => t.clone(),
        Bare::Bytes(b) => format!(":{}:", STANDARD.encode(b)),
        Bare::Bool(true) => "?1".into(),
        Bare::Bool(false) => "?0".into(),
    }
}

pub fn serialize_params(params: &Params) -> String {
    params
        .iter()
        .map(|(k, v)| match v {
            Bare::Bool(true) => format!(";{k}"),
            v => format!(";{k}={}", serialize_bare(v)),
        })
        .collect()
}

pub fn serialize_inner(items: &[Item], params: &Params) -> String {
    let inner: Vec<String> =
        items.iter().map(|i| format!("{}{}", serialize_bare(&i.bare), serialize_params(&i.params))).collect();
    format!("({}){}", inner.join(" "), serialize_params(params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_input_round_trips() {
        let v = r#"sig1=("@method" "@path" "content-digest");created=1618884473;keyid="test-key-ed25519""#;
        let d = dictionary(v).unwrap();
        assert_eq!(d.len(), 1);
        let Member::Inner(items, params) = &d[0].1 else { panic!("inner list expected") };
        assert_eq!(items.len(), 3);
        assert_eq!(params[0], ("created".into(), Bare::Int(1618884473)));
        assert_eq!(format!("sig1={}", serialize_inner(items, params)), v);
    }

    #[test]
    fn byte_sequences_and_lists() {
        let d = dictionary("a=:AQID:, b=?0, c;x=1").unwrap();
        assert_eq!(d[0].1, Member::Item(Item { bare: Bare::Bytes(vec![1, 2, 3]), params: vec![] }));
        assert_eq!(d[1].1, Member::Item(Item { bare: Bare::Bool(false), params: vec![] }));
        assert_eq!(d[2].0, "c");
        assert_eq!(dictionary("a=1, a=2").unwrap().len(), 2, "duplicates are kept for the caller");
    }

    #[test]
    fn malformed_input_is_an_error() {
        for bad in [
            "",
            "A=1",
            "a=(\"x\"",
            "a=\"unterminated",
            "a=:not base64!:",
            "a=1,",
            "a=1 b=2",
            "a=(\"x\"\"y\")",
            "a=1.5",
            "a=\"\\x\"",
            "a=1;p;p",
            "a=1234567890123456",
        ] {
            assert!(dictionary(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
