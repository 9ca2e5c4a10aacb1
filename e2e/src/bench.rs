//! Pieces shared by the benchmark binaries: closed-loop HTTP load, latency
//! statistics, and reading `Server-Timing`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

/// What one measured run produced.
pub struct Run {
    pub count: usize,
    pub elapsed: Duration,
    pub latencies_ms: Vec<f64>,
    /// Queue wait per request as reported in `Server-Timing` (HTTP runs only).
    pub queue_ms: Vec<f64>,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
    pub fn pct(&self, p: f64) -> f64 {
        percentile(&self.latencies_ms, p)
    }
}

pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
}

/// The `queue` duration of a `Server-Timing` header, in milliseconds.
pub fn queue_ms(server_timing: Option<&reqwest::header::HeaderValue>) -> Option<f64> {
    let text = server_timing?.to_str().ok()?;
    let queue = text.split(',').map(str::trim).find(|m| m.starts_with("queue;"))?;
    queue.split_once("dur=")?.1.parse().ok()
}

/// Closed loop: `clients` concurrent clients POST the files in turn for `secs` seconds.
pub async fn over_http(base: &str, files: &Arc<Vec<Vec<u8>>>, op: &str, clients: usize, secs: u64) -> Run {
    let http = reqwest::Client::new();
    let url = format!("{base}/v1/resize?{op}");
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, url, files) = (http.clone(), url.clone(), files.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = Vec::new();
            let mut i = c;
            while Instant::now() < end {
                let t0 = Instant::now();
                let res = http
                    .post(&url)
                    .header("content-type", "image/jpeg")
                    .body(files[i % files.len()].clone())
                    .send()
                    .await
                    .expect("request");
                assert_eq!(res.status(), 200, "{:?}", res.text().await);
                let queue = queue_ms(res.headers().get("server-timing"));
                res.bytes().await.expect("body");
                local.push((t0.elapsed().as_secs_f64() * 1000.0, queue));
                i += clients;
            }
            local
        }));
    }
    let (mut latencies_ms, mut queue) = (Vec::new(), Vec::new());
    for t in tasks {
        for (latency, q) in t.await.expect("client task") {
            latencies_ms.push(latency);
            queue.extend(q);
        }
    }
    Run { count: latencies_ms.len(), elapsed: started.elapsed(), latencies_ms, queue_ms: queue }
}
