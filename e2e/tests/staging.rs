//! Bodies staged at the api-server: the job carries a reference, the worker
//! fetches the bytes from the api-server that holds them and answers there.
//! Real nats-server, real worker processes, real sockets.

use async_nats::jetstream;
use contracts::{Job, staging, subjects};
use e2e::{
    api::{self, Api},
    corpus,
    nats::NatsServer,
    procs::{ApiServer, Worker},
};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn jpeg() -> Vec<u8> {
    corpus::read("jpeg/020_bridge.jpg")
}

/// Waits until JOBS holds `n` messages; returns the stream.
async fn jobs_hold(nats: &NatsServer, n: u64) -> jetstream::stream::Stream {
    let js = jetstream::new(nats.client().await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut stream) = js.get_stream(subjects::JOBS_STREAM).await
            && stream.info().await.unwrap().state.messages == n
        {
            return stream;
        }
        assert!(Instant::now() < deadline, "JOBS never held {n} messages");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_job_carries_a_reference_and_only_its_token_reads_the_body() {
    let nats = NatsServer::start().unwrap();
    let api = Api::start(api::config(&nats.client_url)).await.unwrap();
    let http = reqwest::Client::new();
    let body = jpeg();
    let request = tokio::spawn({
        let (http, url, body) = (http.clone(), api.url("/v1/resize?w=64"), body.clone());
        async move { http.post(url).header("content-type", "image/jpeg").body(body).send().await.unwrap() }
    });
    // No worker yet: the job waits in the stream, and it holds no image.
    let stream = jobs_hold(&nats, 1).await;
    let msg = stream.get_raw_message(1).await.unwrap();
    assert!(msg.payload.is_empty(), "the image is not in the queue: {} bytes", msg.payload.len());
    let job = Job::from_headers(&msg.headers).unwrap();
    let staged = job.staged.expect("a reference");
    assert_eq!(staged.size, body.len() as u64);
    assert_eq!(staged.sha256, staging::sha256_hex(&body));
    assert_eq!(e2e::metrics::value(&api.url("/metrics"), "api_staged_bytes").await, body.len() as f64);
    // Only the token reads it; a wrong one is told the same as for an unknown request.
    let fetched = http.get(&staged.url).header("authorization", staging::bearer(&staged.token)).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.unwrap(), body);
    let wrong = staging::bearer(&"0".repeat(32));
    for auth in [None, Some(wrong.as_str()), Some(staged.token.as_str())] {
        let mut req = http.get(&staged.url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        assert_eq!(req.send().await.unwrap().status(), 404, "{auth:?}");
    }
    let unknown = staged.url.replace(&job.request_id, "01a23780-0000-7000-8000-000000000000");
    let res = http.get(&unknown).header("authorization", staging::bearer(&staged.token)).send().await.unwrap();
    assert_eq!(res.status(), 404);
    // A worker fetches it, and the answer comes back to the waiting client.
    let worker = Worker::spawn(&nats.client_url, &[]).unwrap();
    let res = request.await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(image::load_from_memory(&res.bytes().await.unwrap()).unwrap().width(), 64);
    assert_eq!(e2e::metrics::value(&worker.metrics_url, "worker_staged_fetches_total").await, 1.0);
    // Freed with the request.
    assert_eq!(e2e::metrics::value(&api.url("/metrics"), "api_staged_bytes").await, 0.0);
    let gone = http.get(&staged.url).header("authorization", staging::bearer(&staged.token)).send().await.unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn a_client_that_leaves_frees_its_body_and_the_worker_drops_the_job_with_a_record() {
    let nats = NatsServer::start().unwrap();
    let api = Api::start(api::config(&nats.client_url)).await.unwrap();
    let body = jpeg();
    let request = tokio::spawn({
        let url = api.url("/v1/resize?w=64");
        let body = body.clone();
        async move { reqwest::Client::new().post(url).header("content-type", "image/jpeg").body(body).send().await }
    });
    let stream = jobs_hold(&nats, 1).await;
    let job = Job::from_headers(&stream.get_raw_message(1).await.unwrap().headers).unwrap();
    // The client goes away while its job waits.
    request.abort();
    let metrics = api.url("/metrics");
    eventually("the body was never freed", async || e2e::metrics::value(&metrics, "api_staged_bytes").await == 0.0)
        .await;
    let worker = Worker::spawn(&nats.client_url, &[]).unwrap();
    eventually("the worker never dropped the job", async || {
        e2e::metrics::value(&worker.metrics_url, "worker_jobs_total").await == 1.0
    })
    .await;
    let text = e2e::metrics::scrape(&worker.metrics_url).await;
    assert!(text.contains("worker_jobs_total{outcome=\"client-gone\"} 1"), "{text}");
    assert!(text.contains("worker_staged_fetches_total{result=\"gone\"} 1"), "{text}");
    assert_eq!(e2e::metrics::sum(&text, "worker_process_seconds_count"), 0.0, "no work was done for nobody");
    // The stream is empty, and usage says why the job ended.
    jobs_hold(&nats, 0).await;
    let client = nats.client().await.unwrap();
    let mut record = None;
    eventually("no usage record for the dropped job", async || {
        let (records, _) = e2e::usage::stored_records(&client).await.unwrap();
        record = records.into_iter().find(|r| r.request_id == job.request_id);
        record.is_some()
    })
    .await;
    let record = record.unwrap();
    assert_eq!((record.status, record.problem.as_deref()), (499, Some("client-gone")), "{record:?}");
    assert_eq!(record.pixels_out, 0);
}

#[tokio::test]
async fn a_client_that_stops_halfway_frees_its_reservation_and_queues_nothing() {
    let nats = NatsServer::start().unwrap();
    let api = Api::start(api::config(&nats.client_url)).await.unwrap();
    let metrics = api.url("/metrics");
    let body = jpeg();
    let mut tcp = tokio::net::TcpStream::connect(api.addr()).await.unwrap();
    let head = format!(
        "POST /v1/resize?w=64 HTTP/1.1\r\nhost: x\r\ncontent-type: image/jpeg\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&body[..body.len() / 2]).await.unwrap();
    // The whole declared length is reserved while the body arrives.
    eventually("the declared length was never reserved", async || {
        e2e::metrics::value(&metrics, "api_staged_bytes").await == body.len() as f64
    })
    .await;
    drop(tcp);
    eventually("the reservation was never given back", async || {
        e2e::metrics::value(&metrics, "api_staged_bytes").await == 0.0
    })
    .await;
    let js = jetstream::new(nats.client().await.unwrap());
    let mut stream = js.get_stream(subjects::JOBS_STREAM).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 0, "no job for a body that never arrived");
}

#[tokio::test]
async fn a_forged_reference_to_bytes_that_do_not_match_is_refused_by_the_worker() {
    // A peer that serves other bytes than the job names, and records the answer it gets.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answers = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::<String>::new()));
    let seen = answers.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 16];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                if req.starts_with("POST") {
                    seen.lock().await.push(req);
                    let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n").await;
                } else {
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nevil").await;
                }
            });
        }
    });
    let nats = NatsServer::start().unwrap();
    let worker = Worker::spawn(&nats.client_url, &[]).unwrap();
    let js = jetstream::new(nats.client().await.unwrap());
    js.get_or_create_stream(subjects::jobs_stream(1)).await.unwrap();
    let now = std::time::SystemTime::now();
    let job = Job {
        request_id: "01a23780-0000-7000-8000-00000000beef".into(),
        deadline_ms: contracts::job::unix_ms(now + Duration::from_secs(20)),
        reply: subjects::results_subject("nobody"),
        op: contracts::ResizeOp::parse_canonical("w=10").unwrap(),
        input: contracts::ImageFormat::Jpeg,
        enqueued_us: contracts::job::unix_us(now),
        traceparent: None,
        tenant: "anonymous".into(),
        key_id: String::new(),
        staged: Some(contracts::job::StagedInput {
            url: format!("http://{addr}{}", staging::body_path("01a23780-0000-7000-8000-00000000beef")),
            token: "0123456789abcdef0123456789abcdef".into(),
            size: 4,
            sha256: staging::sha256_hex(b"good"),
        }),
    };
    js.publish_with_headers(subjects::JOBS_SUBJECT, job.to_headers(), Vec::new().into()).await.unwrap().await.unwrap();
    eventually("the worker never answered", async || !answers.lock().await.is_empty()).await;
    let answer = answers.lock().await[0].to_lowercase();
    assert!(answer.contains("resize-status: internal"), "{answer}");
    assert!(answer.contains("does not match its reference"), "{answer}");
    let text = e2e::metrics::scrape(&worker.metrics_url).await;
    assert!(text.contains("worker_staged_fetches_total{result=\"mismatch\"} 1"), "{text}");
    assert_eq!(e2e::metrics::sum(&text, "worker_process_seconds_count"), 1.0);
}

/// A JPEG of about 25 MB: 13.5 MP of fine detail at quality 100.
fn large_jpeg() -> Vec<u8> {
    let (w, h) = (4500u32, 3000u32);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let pixels: Vec<u8> = (0..w as usize * h as usize * 3)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Noise over a gradient: incompressible enough to make the size.
            ((i / 3 % w as usize) as u64 * 255 / u64::from(w)) as u8 / 2 + (state as u8) / 12
        })
        .collect();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 100)
        .encode(&pixels, w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

#[tokio::test]
async fn a_25_mb_jpeg_resizes_end_to_end_and_staged_bytes_stay_under_the_cap() {
    let big = large_jpeg();
    assert!(big.len() > 20 << 20 && big.len() < 32 << 20, "{} bytes", big.len());
    let nats = NatsServer::start().unwrap();
    // The api-server as its own process, so its memory can be read from /proc.
    let cap = 128usize << 20;
    let cap_arg = cap.to_string();
    let api = ApiServer::spawn(
        &nats.client_url,
        &["--auth", "none", "--staging-cap-bytes", &cap_arg, "--job-timeout", "90s", "--max-in-flight", "512"],
    )
    .unwrap();
    let rss = |field: &str| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", api.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap().to_owned();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    };
    let baseline = rss("VmRSS:");
    let http = reqwest::Client::new();
    let body = bytes::Bytes::from(big);
    // 64 clients send a 25 MB photo at once, with no worker to take them: at most
    // cap / 25 MB are held, the rest are shed with a complete 503.
    let url = format!("{}/v1/resize?w=320", api.base);
    let sends: Vec<_> = (0..64)
        .map(|_| {
            let (http, url, body) = (http.clone(), url.clone(), body.clone());
            tokio::spawn(async move {
                let res = http.post(url).header("content-type", "image/jpeg").body(body).send().await?;
                let status = res.status().as_u16();
                let doc = match status {
                    200 => serde_json::json!({"bytes": res.bytes().await?.len()}),
                    _ => res.json().await?,
                };
                Ok::<_, reqwest::Error>((status, doc))
            })
        })
        .collect();
    let metrics = format!("{}/metrics", api.base);
    let mut peak_staged = 0.0f64;
    eventually("the stage never filled", async || {
        peak_staged = peak_staged.max(e2e::metrics::value(&metrics, "api_staged_bytes").await);
        peak_staged >= (cap - (body.len() + 1)) as f64
    })
    .await;
    let stream = jobs_hold(&nats, (cap / body.len()) as u64).await;
    drop(stream);
    let mut shed = 0;
    // A worker takes the staged ones; the shed ones were answered already.
    let worker = Worker::spawn(&nats.client_url, &[]).unwrap();
    let mut ok = 0;
    for s in sends {
        let (status, doc) = s.await.unwrap().expect("a complete exchange, never a reset");
        match status {
            200 => ok += 1,
            503 => {
                assert_eq!(doc["type"], "/problems/overloaded", "{doc}");
                shed += 1;
            }
            other => panic!("{other}: {doc}"),
        }
    }
    peak_staged = peak_staged.max(e2e::metrics::value(&metrics, "api_staged_bytes").await);
    assert!(peak_staged <= cap as f64, "staged {peak_staged} over the cap {cap}");
    assert_eq!(ok + shed, 64);
    assert!(ok >= (cap / body.len()) as i32, "{ok} served");
    assert!(shed > 0, "64 × 25 MB cannot all fit under {cap}");
    let peak = rss("VmHWM:");
    assert!(
        peak.saturating_sub(baseline) <= cap as u64 + (32 << 20),
        "peak RSS {} MiB over a baseline of {} MiB, cap {} MiB",
        peak >> 20,
        baseline >> 20,
        cap >> 20
    );
    eprintln!(
        "{ok} served, {shed} shed; peak staged {} MiB, peak RSS {} MiB (baseline {} MiB, cap {} MiB)",
        peak_staged as u64 >> 20,
        peak >> 20,
        baseline >> 20,
        cap >> 20
    );
    assert_eq!(e2e::metrics::value(&worker.metrics_url, "worker_staged_fetches_total").await, ok as f64);
}

#[tokio::test]
async fn an_api_server_its_workers_cannot_reach_answers_503_at_once_not_at_the_deadline() {
    let nats = NatsServer::start().unwrap();
    let mut c = api::config(&nats.client_url);
    // Advertises an address where nothing listens (a wrong PEER_ADVERTISE, a partition).
    c.peer_advertise = Some("http://127.0.0.1:1".into());
    c.job_timeout = Duration::from_secs(20);
    let api = Api::start(c).await.unwrap();
    let worker = Worker::spawn(&nats.client_url, &[]).unwrap();
    let started = Instant::now();
    let res = reqwest::Client::new()
        .post(api.url("/v1/resize?w=64"))
        .header("content-type", "image/jpeg")
        .body(jpeg())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(10), "answered before the deadline: {:?}", started.elapsed());
    let doc: serde_json::Value = res.json().await.unwrap();
    assert_eq!(doc["type"], "/problems/queue-unavailable", "{doc}");
    assert!(doc["detail"].as_str().unwrap().contains("127.0.0.1:1"), "the detail names the address: {doc}");
    let text = e2e::metrics::scrape(&worker.metrics_url).await;
    assert!(text.contains("worker_staged_fetches_total{result=\"unreachable\"} 1"), "{text}");
}
