//! Fetching a staged input from the api-server that holds it, and posting the
//! answer back there (the exchange is specified in [`contracts::staging`]).

use bytes::{Bytes, BytesMut};
use contracts::{job::StagedInput, outcome::OutcomeHeaders, staging};
use std::time::Duration;

/// Why a staged input could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request has ended: nobody waits for the answer.
    #[error("nobody waits for this request any more: {0}")]
    Gone(String),
    /// Nothing answers at the reference's address: its api-server died, or
    /// this worker cannot reach it (a partition, a wrong `PEER_ADVERTISE`).
    #[error("the api-server that holds the input is unreachable: {0}")]
    Unreachable(String),
    /// The bytes are not the ones the job names.
    #[error("the staged input does not match its reference: {0}")]
    Mismatch(String),
    /// Anything else (a timeout, a reset): worth another try while the deadline lasts.
    #[error("fetching the staged input failed: {0}")]
    Transport(String),
}

impl FetchError {
    /// Static label for `worker_staged_fetches_total{result}`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Gone(_) => "gone",
            Self::Unreachable(_) => "unreachable",
            Self::Mismatch(_) => "mismatch",
            Self::Transport(_) => "transport",
        }
    }
}

/// What a staged body must be before it is used: exactly the size and digest
/// the job names.
pub fn check(body: &[u8], staged: &StagedInput) -> Result<(), FetchError> {
    if body.len() as u64 != staged.size {
        return Err(FetchError::Mismatch(format!("{} bytes, not {}", body.len(), staged.size)));
    }
    let digest = staging::sha256_hex(body);
    if digest != staged.sha256 {
        return Err(FetchError::Mismatch(format!("sha-256 {digest}, not {}", staged.sha256)));
    }
    Ok(())
}

/// An HTTP client for the fleet's api-servers, with pooled connections.
#[derive(Clone)]
pub struct Peers {
    http: reqwest::Client,
}

impl Peers {
    pub fn new() -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self { http })
    }

    /// The staged body, checked against its reference, within `timeout`.
    pub async fn fetch(&self, staged: &StagedInput, timeout: Duration) -> Result<Bytes, FetchError> {
        let res = self
            .http
            .get(&staged.url)
            .header(reqwest::header::AUTHORIZATION, staging::bearer(&staged.token))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    FetchError::Unreachable(format!("{}: {e}", staged.url))
                } else {
                    FetchError::Transport(e.to_string())
                }
            })?;
        if res.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(FetchError::Gone("the api-server no longer holds the body".into()));
        }
        if !res.status().is_success() {
            return Err(FetchError::Transport(format!("the api-server answered {}", res.status())));
        }
        // Never more than the reference names, whatever the peer says.
        let mut res = res;
        let mut body = BytesMut::with_capacity(staged.size as usize);
        while let Some(chunk) = res.chunk().await.map_err(|e| FetchError::Transport(e.to_string()))? {
            if (body.len() + chunk.len()) as u64 > staged.size {
                return Err(FetchError::Mismatch(format!("more than the {} bytes named", staged.size)));
            }
            body.extend_from_slice(&chunk);
        }
        check(&body, staged)?;
        Ok(body.freeze())
    }

    /// Posts the answer; `Ok(false)` when the request no longer waits for it.
    pub async fn answer(
        &self,
        staged: &StagedInput,
        answer: &OutcomeHeaders,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<bool, String> {
        let mut req = self
            .http
            .post(staging::result_url(&staged.url))
            .header(reqwest::header::AUTHORIZATION, staging::bearer(&staged.token))
            .timeout(timeout);
        for (name, value) in answer.fields() {
            req = req.header(name, value);
        }
        let res = req.body(body).send().await.map_err(|e| e.to_string())?;
        match res.status() {
            s if s.is_success() => Ok(true),
            reqwest::StatusCode::NOT_FOUND => Ok(false),
            s => Err(format!("the api-server answered {s}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(body: &[u8]) -> StagedInput {
        StagedInput {
            url: "http://127.0.0.1:1/v1/staged/r1".into(),
            token: "0123456789abcdef0123456789abcdef".into(),
            size: body.len() as u64,
            sha256: staging::sha256_hex(body),
        }
    }

    #[test]
    fn only_the_named_bytes_pass() {
        let s = staged(b"the image");
        check(b"the image", &s).unwrap();
        assert!(matches!(check(b"the imagE", &s), Err(FetchError::Mismatch(m)) if m.contains("sha-256")));
        assert!(matches!(check(b"the image!", &s), Err(FetchError::Mismatch(m)) if m.contains("10 bytes")));
    }

    #[tokio::test]
    async fn an_api_server_that_does_not_answer_is_unreachable() {
        // Port 1 on loopback: nothing listens, the connection is refused.
        let peers = Peers::new().unwrap();
        let err = peers.fetch(&staged(b"x"), Duration::from_secs(2)).await.unwrap_err();
        assert!(matches!(&err, FetchError::Unreachable(why) if why.contains("127.0.0.1:1")), "{err}");
        assert_eq!(err.label(), "unreachable");
    }
}
