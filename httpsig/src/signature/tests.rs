use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// RFC 9421 Appendix B.1.4 `test-key-ed25519`, JWK coordinates.
const RFC_X: &str = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";
const RFC_D: &str = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU";
const B26_INPUT: &str = r#"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#;
const B26_SIGNATURE: &str =
    "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:";

fn rfc_request() -> http::Request<()> {
    http::Request::post("https://example.com/foo?param=Value&Pet=dog")
        .header("host", "example.com")
        .header("date", "Tue, 20 Apr 2021 02:07:55 GMT")
        .header("content-type", "application/json")
        .header(
            "content-digest",
            "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
        )
        .header("content-length", "18")
        .body(())
        .unwrap()
}

fn rfc_public() -> VerifyingKey {
    let x: [u8; 32] = URL_SAFE_NO_PAD.decode(RFC_X).unwrap().try_into().unwrap();
    VerifyingKey::from_bytes(&x).unwrap()
}

#[test]
fn appendix_b_2_6_base_and_signature_verify() {
    let signed = Signed::parse(B26_INPUT, B26_SIGNATURE).unwrap();
    assert_eq!(signed.key_id, "test-key-ed25519");
    let base = signed.base(&rfc_request()).unwrap();
    let expected = [
        r#""date": Tue, 20 Apr 2021 02:07:55 GMT"#,
        r#""@method": POST"#,
        r#""@path": /foo"#,
        r#""@authority": example.com"#,
        r#""content-type": application/json"#,
        r#""content-length": 18"#,
        r#""@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#,
    ]
    .join("\n");
    assert_eq!(base, expected);
    assert!(verify_ed25519(&rfc_public(), &base, &signed.signature));
    // Ed25519 is deterministic: signing the same base with the RFC's private key gives the RFC's signature.
    let d: [u8; 32] = URL_SAFE_NO_PAD.decode(RFC_D).unwrap().try_into().unwrap();
    let ours = SigningKey::from_bytes(&d).sign(base.as_bytes());
    assert_eq!(ours.to_bytes().as_slice(), signed.signature.as_slice());
    // The vector does not meet this API's profile (no @query, no content-digest).
    assert!(matches!(signed.check_profile(1618884473), Err(SigError::Incomplete(_))));
}

#[test]
fn a_changed_request_does_not_verify() {
    let signed = Signed::parse(B26_INPUT, B26_SIGNATURE).unwrap();
    let mut req = rfc_request();
    *req.method_mut() = http::Method::PUT;
    let base = signed.base(&req).unwrap();
    assert!(!verify_ed25519(&rfc_public(), &base, &signed.signature));
}

fn profile_request() -> http::Request<()> {
    http::Request::post("http://api.example:8080/v1/resize?w=320&h=320")
        .header("content-type", "image/jpeg")
        .header("content-digest", "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:")
        .body(())
        .unwrap()
}

#[test]
fn signing_and_the_profile() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let req = profile_request();
    let h = sign(&key, "k1", "sig1", &REQUIRED, 1000, Some(1100), &req).unwrap();
    let signed = Signed::parse(&h.signature_input, &h.signature).unwrap();
    assert_eq!(signed.alg.as_deref(), Some("ed25519"));
    signed.check_profile(1000).unwrap();
    signed.check_profile(1099).unwrap();
    assert!(matches!(signed.check_profile(1101), Err(SigError::Expired(_))));
    assert!(matches!(signed.check_profile(1000 - MAX_SKEW_S - 1), Err(SigError::NotYetValid(_))));
    let base = signed.base(&req).unwrap();
    assert!(base.contains("\"@authority\": api.example:8080\n\"@path\": /v1/resize\n\"@query\": ?w=320&h=320\n"));
    assert!(verify_ed25519(&key.verifying_key(), &base, &signed.signature));
    assert!(!verify_ed25519(&SigningKey::from_bytes(&[8; 32]).verifying_key(), &base, &signed.signature));

    let long = sign(&key, "k1", "sig1", &REQUIRED, 1000, Some(1000 + MAX_LIFETIME_S + 1), &req).unwrap();
    let long = Signed::parse(&long.signature_input, &long.signature).unwrap();
    assert!(matches!(long.check_profile(1000), Err(SigError::Malformed(_))));
    let old = sign(&key, "k1", "sig1", &REQUIRED, 1000, None, &req).unwrap();
    let old = Signed::parse(&old.signature_input, &old.signature).unwrap();
    assert!(matches!(old.check_profile(1000 + MAX_SKEW_S + 1), Err(SigError::Expired(_))));
    let partial = sign(&key, "k1", "sig1", &REQUIRED[..5], 1000, None, &req).unwrap();
    let partial = Signed::parse(&partial.signature_input, &partial.signature).unwrap();
    assert_eq!(partial.check_profile(1000), Err(SigError::Incomplete("content-digest".into())));
}

#[test]
fn malformed_and_duplicated_headers_are_refused() {
    let sig = ":AAAA:";
    for (input, signature) in [
        (r#"a=("@method");keyid="k""#, r#"b=:AAAA:"#),
        (r#"a=("@method");keyid="k", b=("@path");keyid="k""#, r#"a=:AAAA:, b=:AAAA:"#),
        (r#"a=("@method");keyid="k", a=("@path");keyid="k""#, r#"a=:AAAA:"#),
        (r#"a=("@method");created=1"#, &format!("a={sig}")),
        (r#"a=("@method";req);keyid="k""#, &format!("a={sig}")),
        (r#"a=("@Method");keyid="k""#, &format!("a={sig}")),
        (r#"a=("@method" "@method");keyid="k""#, &format!("a={sig}")),
        (r#"a=("@method");keyid="k";foo=1"#, &format!("a={sig}")),
        (r#"a=("@method");keyid="k""#, r#"a="not bytes""#),
        (r#"a="@method";keyid="k""#, &format!("a={sig}")),
        ("garbage", "garbage"),
    ] {
        assert!(matches!(Signed::parse(input, signature), Err(SigError::Malformed(_))), "{input} / {signature}");
    }
    let req = http::Request::post("/")
        .header("signature-input", r#"a=("@method");keyid="k""#)
        .header("signature-input", r#"a=("@method");keyid="k""#)
        .header("signature", "a=:AAAA:")
        .body(())
        .unwrap();
    assert!(matches!(Signed::from_message(&req), Err(SigError::Malformed(m)) if m.contains("more than once")));
    let big = format!("a=:{}:", "A".repeat(MAX_HEADER_BYTES));
    let req = http::Request::post("/").header("signature-input", "a=()").header("signature", big).body(()).unwrap();
    assert_eq!(Signed::from_message(&req), Err(SigError::TooLarge("Signature")));
    assert_eq!(Signed::from_message(&http::Request::post("/").body(()).unwrap()), Ok(None));
}

#[test]
fn a_covered_header_missing_from_the_request_is_malformed() {
    let signed = Signed::parse(r#"a=("x-missing");keyid="k""#, "a=:AAAA:").unwrap();
    assert!(matches!(signed.base(&profile_request()), Err(SigError::Malformed(_))));
}

#[test]
fn default_ports_are_not_part_of_the_authority() {
    let signed = Signed::parse(r#"a=("@authority");keyid="k""#, "a=:AAAA:").unwrap();
    for (host, want) in [
        ("Example.COM:443", "example.com"),
        ("example.com:80", "example.com"),
        ("example.com:8443", "example.com:8443"),
    ] {
        let req = http::Request::post("/").header("host", host).body(()).unwrap();
        assert!(signed.base(&req).unwrap().starts_with(&format!("\"@authority\": {want}\n")), "{host}");
    }
}
