//! Interoperability of the signature profile: requests signed by an
//! independent RFC 9421 implementation (the PyPI package
//! http-message-signatures, driven by e2e/interop/sign_request.py) against the
//! whole stack with authentication required. A good request is served; the
//! same library's signature over a body that was then changed, or made with a
//! key other than the registered one, is refused with its problem type; a
//! request without a query string authenticates too (then fails validation).
//!
//! The interpreter comes from `RESIZER_INTEROP_PYTHON`
//! (`scripts/install-interop.sh` prints it; `scripts/test.sh` sets it).

use contracts::identity::RateLimit;
use e2e::{corpus, identity::AuthStack};
use identity::client;
use std::io::Write;

const PYTHON_ENV: &str = "RESIZER_INTEROP_PYTHON";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/sign_request.py");
const KEY_ID: &str = "interop-sig";

/// The interpreter with the library installed; `None` skips the test outside CI.
fn python() -> Option<String> {
    match std::env::var(PYTHON_ENV) {
        Ok(p) if !p.is_empty() => Some(p),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{PYTHON_ENV} is not set: run scripts/install-interop.sh and export the python it prints")
        }
        _ => {
            eprintln!(
                "notice: {PYTHON_ENV} is not set, skipping the interoperability test \
                 (run scripts/install-interop.sh and export the python it prints)"
            );
            None
        }
    }
}

/// What the signer script reports: status, content type, and the response body.
struct Outcome {
    status: u16,
    content_type: String,
    body: String,
    stderr: String,
}

async fn sign_and_send(python: &str, url: &str, seed_b64: &str, body_file: &str, extra: &[&str]) -> Outcome {
    let out = tokio::process::Command::new(python)
        .arg(SCRIPT)
        .args([url, KEY_ID, seed_b64, "image/jpeg", body_file])
        .args(extra)
        .output()
        .await
        .expect("run the signer script");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "signer script failed: {}\n{stdout}\n{stderr}", out.status);
    let mut lines = stdout.splitn(3, '\n');
    let status = lines.next().and_then(|s| s.trim().parse().ok()).unwrap_or_else(|| panic!("no status: {stdout}"));
    let content_type = lines.next().unwrap_or_default().trim().to_owned();
    let body = lines.next().unwrap_or_default().to_owned();
    Outcome { status, content_type, body, stderr }
}

fn assert_problem(o: &Outcome, status: u16, slug: &str) {
    assert_eq!(o.status, status, "{slug}: {}\n{}", o.body, o.stderr);
    assert_eq!(o.content_type, "application/problem+json", "{slug}");
    let doc: serde_json::Value = serde_json::from_str(&o.body).expect("problem body is JSON");
    assert_eq!(doc["type"], format!("/problems/{slug}"), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_signed_by_an_independent_implementation_are_verified() {
    let Some(python) = python() else { return };
    let stack = AuthStack::start().await.expect("stack");
    let AuthStack { store, auth, api, .. } = &stack;

    store
        .create_tenant("interop", "interop", RateLimit { per_second: 100, burst: 100 }, Default::default())
        .await
        .expect("tenant");
    let key = client::generate_key();
    store.add_ed25519("interop", Some(KEY_ID), &client::encode_public(&key)).await.expect("key");
    auth.caught_up(store).await.expect("auth-cache has the key");

    let mut photo = tempfile::NamedTempFile::new().expect("temp file");
    photo.write_all(&corpus::read("jpeg/020_bridge.jpg")).expect("write the photo");
    let photo = photo.path().to_str().expect("UTF-8 temp path").to_owned();
    let url = api.url("/v1/resize?w=64&h=64");
    let seed = client::encode_private(&key);

    let good = sign_and_send(&python, &url, &seed, &photo, &[]).await;
    assert_eq!(good.status, 200, "{}\n{}", good.body, good.stderr);
    assert_eq!(good.content_type, "image/jpeg");

    let tampered = sign_and_send(&python, &url, &seed, &photo, &["--tamper-body"]).await;
    assert_problem(&tampered, 401, "digest-mismatch");

    let other = client::encode_private(&client::generate_key());
    let wrong_key = sign_and_send(&python, &url, &other, &photo, &[]).await;
    assert_problem(&wrong_key, 401, "signature-invalid");

    // No query at all: both sides serialise `@query` as "?" (RFC 9421 §2.2.7),
    // so the request authenticates and reaches the parameter check.
    let bare = sign_and_send(&python, &api.url("/v1/resize"), &seed, &photo, &[]).await;
    assert_problem(&bare, 400, "invalid-parameter");
}
