//! Slow clients, as slowloris sends them: connections that hold an
//! api-server's attention while sending one byte a second. Half never finish
//! their headers; half (with a valid API key, so they pass authentication)
//! declare a photo-sized body and dribble it.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a slow connection was sending when it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Headers,
    Body,
}

/// How one slow connection ended.
#[derive(Debug, Clone)]
pub struct Ended {
    pub stage: Stage,
    /// When the server answered or closed, from the connection's start;
    /// `None` if the connection was still open when the client gave up.
    pub cut_after: Option<Duration>,
    /// The status of the answer the server sent, if it sent one.
    pub status: Option<u16>,
}

/// The body size slow uploads declare: a typical photo.
const DECLARED: usize = 200_000;

/// Opens `n` slow connections to `base` and keeps them dribbling until `until`.
pub async fn hold(base: &str, api_key: &str, n: usize, until: Instant) -> Vec<Ended> {
    let authority = base.trim_start_matches("http://").to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let stage = if i % 2 == 0 { Stage::Headers } else { Stage::Body };
        let (authority, key) = (authority.clone(), api_key.to_owned());
        tasks.spawn(async move { dribble(&authority, &key, stage, until).await });
    }
    let mut out = Vec::with_capacity(n);
    while let Some(e) = tasks.join_next().await {
        out.push(e.expect("slow client task"));
    }
    out
}

async fn dribble(authority: &str, key: &str, stage: Stage, until: Instant) -> Ended {
    let started = Instant::now();
    let Ok(sock) = tokio::net::TcpStream::connect(authority).await else {
        return Ended { stage, cut_after: Some(Duration::ZERO), status: None };
    };
    let (mut rx, mut tx) = sock.into_split();
    let head = match stage {
        Stage::Headers => format!("POST /v1/resize?w=64&format=jpeg HTTP/1.1\r\nhost: {authority}\r\n"),
        Stage::Body => format!(
            "POST /v1/resize?w=64&format=jpeg HTTP/1.1\r\nhost: {authority}\r\nauthorization: Bearer {key}\r\n\
             content-type: image/jpeg\r\ncontent-length: {DECLARED}\r\n\r\n\u{ff}"
        ),
    };
    let send = async {
        tx.write_all(head.as_bytes()).await?;
        for k in 0u64.. {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let more = match stage {
                Stage::Headers => format!("x-slow-{k}: 1\r\n").into_bytes(),
                Stage::Body => vec![0u8],
            };
            tx.write_all(&more).await?;
        }
        std::io::Result::Ok(())
    };
    let mut answer = [0u8; 12];
    tokio::select! {
        () = tokio::time::sleep_until(until.into()) => Ended { stage, cut_after: None, status: None },
        _ = send => Ended { stage, cut_after: Some(started.elapsed()), status: None },
        read = rx.read(&mut answer) => {
            let status = read.ok().and_then(|n| status_of(&answer[..n]));
            Ended { stage, cut_after: Some(started.elapsed()), status }
        }
    }
}

/// The status code of a raw HTTP/1.1 answer (`HTTP/1.1 503 …`), if it has one.
pub fn status_of(answer: &[u8]) -> Option<u16> {
    std::str::from_utf8(answer.get(9..12)?).ok()?.parse().ok()
}

/// One line for the scenario's notes: how the server dealt with them.
pub fn summary(ended: &[Ended]) -> String {
    let part = |stage: Stage| {
        let of: Vec<&Ended> = ended.iter().filter(|e| e.stage == stage).collect();
        let cut: Vec<f64> = of.iter().filter_map(|e| e.cut_after).map(|d| d.as_secs_f64()).collect();
        let mut statuses: Vec<u16> = of.iter().filter_map(|e| e.status).collect();
        statuses.sort_unstable();
        statuses.dedup();
        let name = match stage {
            Stage::Headers => "slow headers",
            Stage::Body => "slow bodies",
        };
        if cut.is_empty() {
            format!("{} {name}: all held to the end", of.len())
        } else {
            format!(
                "{} {name}: {} cut by the server after {:.0}–{:.0} s (answers {statuses:?})",
                of.len(),
                cut.len(),
                cut.iter().copied().fold(f64::INFINITY, f64::min),
                cut.iter().copied().fold(0.0, f64::max),
            )
        }
    };
    format!("{}; {}", part(Stage::Headers), part(Stage::Body))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_status_comes_from_the_status_line_or_not_at_all() {
        assert_eq!(super::status_of(b"HTTP/1.1 408 Request Timeout\r\n"), Some(408));
        assert_eq!(super::status_of(b"HTTP/1.1 50"), None);
        assert_eq!(super::status_of(b"garbage that is long"), None);
    }
}
