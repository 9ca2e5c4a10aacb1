//! Sends an authenticated resize request: signed with an Ed25519 key (RFC
//! 9421) or with a bearer API key.

use anyhow::{Context, bail};
use clap::Parser;
use identity::client::{self, Credentials};

#[derive(Parser)]
#[command(name = "resizer-client", version, about = "Resize an image through the API, authenticated")]
struct Cli {
    /// API base URL.
    #[arg(long, env = "RESIZER_ENDPOINT", default_value = "http://127.0.0.1:8080")]
    endpoint: String,
    /// Key id of an Ed25519 key registered with `resizer-admin key add`.
    #[arg(long, env = "RESIZER_KEY_ID", requires = "private_key")]
    key_id: Option<String>,
    /// File with the private key (`resizer-admin keygen`).
    #[arg(long, env = "RESIZER_PRIVATE_KEY")]
    private_key: Option<std::path::PathBuf>,
    /// A bearer API key instead of a signature.
    #[arg(long, env = "RESIZER_API_KEY", hide_env_values = true, conflicts_with = "key_id")]
    api_key: Option<String>,
    /// Query of the resize operation, e.g. `w=320&h=320&format=webp`.
    #[arg(long, default_value = "w=320&h=320")]
    query: String,
    /// Where to write the result (`-` for standard output).
    #[arg(short, long, default_value = "-")]
    out: String,
    /// The image to resize.
    input: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let creds = match (&cli.key_id, &cli.private_key, &cli.api_key) {
        (Some(id), Some(path), None) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let key = client::decode_private(&text).context("the private key file is not a base64 Ed25519 seed")?;
            Credentials::Signature { key_id: id.clone(), key }
        }
        (None, _, Some(token)) => Credentials::ApiKey(token.clone()),
        _ => bail!("give --key-id with --private-key, or --api-key"),
    };
    let body = std::fs::read(&cli.input).with_context(|| format!("reading {}", cli.input.display()))?;
    let media = match contracts::ImageFormat::sniff(&body) {
        Some(f) => f.media_type(),
        None => "application/octet-stream",
    };
    let url = format!("{}/v1/resize?{}", cli.endpoint.trim_end_matches('/'), cli.query);
    let mut req = http::Request::post(&url).header("content-type", media).body(())?;
    client::authorize(&mut req, &body, &creds, httpsig::signature::now_s())?;
    let (parts, ()) = req.into_parts();
    let res = reqwest::Client::new().post(&url).headers(parts.headers).body(body).send().await?;
    let status = res.status();
    let bytes = res.bytes().await?;
    if !status.is_success() {
        bail!("{status}: {}", String::from_utf8_lossy(&bytes));
    }
    if cli.out == "-" {
        use std::io::Write;
        std::io::stdout().write_all(&bytes)?;
    } else {
        std::fs::write(&cli.out, &bytes)?;
        eprintln!("{status}: {} bytes to {}", bytes.len(), cli.out);
    }
    Ok(())
}
