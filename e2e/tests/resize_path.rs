//! The resize path end to end: HTTP → api-server → JetStream → worker process → back,
//! over real sockets and a real nats-server, including every error of the public table.

use async_nats::jetstream;
use contracts::subjects;
use e2e::{
    api::{self, Api},
    corpus,
    nats::NatsServer,
    procs::Worker,
};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Stack {
    nats: NatsServer,
    api: Api,
    workers: Vec<Worker>,
    http: reqwest::Client,
}

async fn stack_with(cfg: impl FnOnce(&mut api_server::config::Config), workers: usize, worker_args: &[&str]) -> Stack {
    let nats = NatsServer::start().expect("nats-server");
    let mut c = api::config(&nats.client_url);
    cfg(&mut c);
    let api = Api::start(c).await.expect("api-server");
    let workers = (0..workers).map(|_| Worker::spawn(&nats.client_url, worker_args).expect("worker")).collect();
    Stack { nats, api, workers, http: reqwest::Client::new() }
}

async fn stack() -> Stack {
    stack_with(|_| {}, 1, &[]).await
}

impl Stack {
    async fn post(&self, query: &str, content_type: Option<&str>, body: Vec<u8>) -> reqwest::Response {
        let mut req = self.http.post(self.api.url(&format!("/v1/resize?{query}"))).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send().await.expect("request")
    }
}

/// Asserts an RFC 9457 answer with the given status and problem slug; returns the document.
async fn assert_problem(res: reqwest::Response, status: u16, slug: &str) -> serde_json::Value {
    assert_eq!(res.status().as_u16(), status, "status for {slug}");
    assert_eq!(
        res.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{slug}"
    );
    let retry_after = res.headers().get("retry-after").is_some();
    let doc: serde_json::Value = res.json().await.expect("problem body is JSON");
    assert_eq!(doc["type"], format!("/problems/{slug}"), "{doc}");
    assert_eq!(doc["status"], status, "{doc}");
    assert!(doc["title"].as_str().is_some_and(|t| !t.is_empty()), "{doc}");
    assert!(doc["detail"].as_str().is_some_and(|t| !t.is_empty()), "{doc}");
    assert_eq!(retry_after, status == 503, "Retry-After only on 503: {doc}");
    doc
}

fn jpeg() -> Vec<u8> {
    corpus::read("jpeg/020_bridge.jpg")
}

#[tokio::test]
async fn a_photo_comes_back_resized_with_headers() {
    let s = stack().await;
    let input = jpeg();
    let src = image::load_from_memory(&input).unwrap();
    let res = s.post("w=320&h=320", Some("image/jpeg"), input.clone()).await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "image/jpeg");
    assert!(h["etag"].to_str().unwrap().starts_with('"'));
    let timing = h["server-timing"].to_str().unwrap();
    assert!(
        timing.contains("queue;dur=") && timing.contains("process;dur=") && timing.contains("total;dur="),
        "{timing}"
    );
    let len: usize = h["content-length"].to_str().unwrap().parse().unwrap();
    let body = res.bytes().await.unwrap();
    assert_eq!(body.len(), len);
    let out = image::load_from_memory(&body).unwrap();
    assert_eq!(out.width().max(out.height()), 320);
    let (ar_in, ar_out) = (src.width() as f64 / src.height() as f64, out.width() as f64 / out.height() as f64);
    assert!((ar_in - ar_out).abs() / ar_in < 0.01);

    // Same request, same bytes, same ETag: the pipeline is deterministic.
    let again = s.post("w=320&h=320", Some("image/jpeg"), input).await;
    assert_eq!(again.headers()["etag"], h["etag"]);
}

#[tokio::test]
async fn output_format_and_fit_follow_the_query() {
    let s = stack().await;
    for (q, ct, size) in [
        ("w=200&h=100&fit=cover&format=webp", "image/webp", (200, 100)),
        ("w=200&h=200&fit=contain&format=png", "image/png", (200, 200)),
        ("w=64&h=64&fit=fill&quality=50", "image/jpeg", (64, 64)),
        ("w=90&h=160&fit=cover&gravity=smart", "image/jpeg", (90, 160)),
        ("w=90&h=160&fit=cover&fx=0.8&fy=0.2&format=png", "image/png", (90, 160)),
    ] {
        let res = s.post(q, Some("image/jpeg"), jpeg()).await;
        assert_eq!(res.status(), 200, "{q}");
        assert_eq!(res.headers()["content-type"], ct, "{q}");
        let img = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
        assert_eq!((img.width(), img.height()), size, "{q}");
    }
    // AVIF out, with its speed; AVIF in stays AVIF; HEIC in becomes JPEG.
    let res = s.post("w=100&format=avif&speed=9", Some("image/jpeg"), jpeg()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/avif");
    let avif = res.bytes().await.unwrap().to_vec();
    assert_eq!(&avif[4..12], b"ftypavif");
    let res = s.post("w=50", Some("image/avif"), avif).await;
    assert_eq!((res.status().as_u16(), &res.headers()["content-type"]), (200, &"image/avif".parse().unwrap()));
    let heic = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../worker/tests/data/photo.heic")).unwrap();
    let res = s.post("w=100", Some("image/heic"), heic).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(image::load_from_memory(&res.bytes().await.unwrap()).unwrap().width(), 100);
    // PNG in → PNG out by default.
    let png = std::fs::read(&corpus::files("png")[0]).unwrap();
    let res = s.post("w=100", Some("image/png"), png).await;
    assert_eq!(res.headers()["content-type"], "image/png");
    // SVG in → rendered, PNG out by default.
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="20" height="20" fill="blue"/></svg>"#;
    let res = s.post("w=80", Some("image/svg+xml"), svg.as_bytes().to_vec()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    let img = image::load_from_memory(&res.bytes().await.unwrap()).unwrap().to_rgba8();
    assert_eq!((img.width(), img.height(), img.get_pixel(10, 10).0), (80, 40, [0, 0, 255, 255]));
    // BMP and TIFF in → PNG out by default.
    let photo = image::load_from_memory(&jpeg()).unwrap().thumbnail(400, 400);
    for (format, ct) in [(image::ImageFormat::Bmp, "image/bmp"), (image::ImageFormat::Tiff, "image/tiff")] {
        let mut body = std::io::Cursor::new(Vec::new());
        photo.write_to(&mut body, format).unwrap();
        let res = s.post("w=100", Some(ct), body.into_inner()).await;
        assert_eq!(res.status(), 200, "{ct}");
        assert_eq!(res.headers()["content-type"], "image/png", "{ct}");
        let img = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
        assert_eq!(img.width(), 100, "{ct}");
    }
}

impl Stack {
    async fn post_with(
        &self,
        query: &str,
        body: Vec<u8>,
        content_type: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.api.url(&format!("/v1/resize?{query}")))
            .header("content-type", content_type)
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("request")
    }

    async fn jobs_published(&self) -> f64 {
        let text = self.http.get(self.api.url("/metrics")).send().await.unwrap().text().await.unwrap();
        e2e::metrics::sum(&text, "api_jobs_published_total")
    }
}

/// An animated GIF through the whole path: its frames kept as GIF or as
/// animated WebP (`format=auto` with `Accept: image/webp`), its first frame
/// with `frames=first`, its frame count in `X-Image-Frames` and in the usage
/// record's pixels; an animation bomb refused with its own problem type.
#[tokio::test]
async fn animations_keep_their_frames_end_to_end() {
    let s = stack().await;
    let frames: Vec<image::Frame> = (0..4u32)
        .map(|i| {
            let img = image::RgbaImage::from_fn(120, 80, |x, _| {
                if x / 30 == i { image::Rgba([200, 30, 30, 255]) } else { image::Rgba([250, 250, 250, 255]) }
            });
            image::Frame::from_parts(img, 0, 0, image::Delay::from_numer_denom_ms(120, 1))
        })
        .collect();
    let mut gif = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut gif);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite).unwrap();
        enc.encode_frames(frames).unwrap();
    }
    let res = s.post("w=60", Some("image/gif"), gif.clone()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/gif");
    assert_eq!(res.headers()["x-image-frames"], "4");
    let body = res.bytes().await.unwrap();
    let layout = contracts::animation::gif(&body).unwrap();
    assert_eq!((layout.canvas, layout.frames, layout.loops), ((60, 40), 4, Some(0)));

    let res = s.post_with("w=60&format=auto", gif.clone(), "image/gif", &[("accept", "image/avif,image/webp")]).await;
    assert_eq!((res.status().as_u16(), &res.headers()["content-type"]), (200, &"image/webp".parse().unwrap()));
    assert_eq!(res.headers()["vary"], "Accept");
    let layout = contracts::animation::webp(&res.bytes().await.unwrap()).unwrap();
    assert_eq!((layout.canvas, layout.frames), ((60, 40), 4));

    let res = s.post("w=60&frames=first", Some("image/gif"), gif.clone()).await;
    assert_eq!((res.status().as_u16(), &res.headers()["content-type"]), (200, &"image/png".parse().unwrap()));
    assert_eq!(res.headers()["x-image-frames"], "1");

    // A thousand-and-one frames on a 4 K screen, a few kilobytes on the wire.
    let mut bomb = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut bomb, 3840, 2160, &[0, 0, 0, 255, 255, 255]).unwrap();
        for _ in 0..1001 {
            enc.write_frame(&gif::Frame { width: 1, height: 1, buffer: vec![1].into(), ..gif::Frame::default() })
                .unwrap();
        }
    }
    let doc =
        assert_problem(s.post("w=60", Some("image/gif"), bomb.clone()).await, 422, "animation-limit-exceeded").await;
    assert!(doc["detail"].as_str().unwrap().contains("1001 frames"), "{doc}");
    assert_problem(s.post("w=60&frames=bogus", Some("image/gif"), bomb).await, 400, "invalid-parameter").await;
}

/// `format=auto` answers the best format the client accepts and says
/// `Vary: Accept`; alpha survives when WebP is not accepted.
#[tokio::test]
async fn format_auto_follows_accept_and_varies() {
    let s = stack().await;
    let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
    let encode = |img: image::DynamicImage, f: image::ImageFormat| {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, f).unwrap();
        out.into_inner()
    };
    let rgba = image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(40, 30, |x, _| {
        image::Rgba([200, 10, 10, if x < 20 { 0 } else { 255 }])
    }));
    let webp_alpha = encode(rgba.clone(), image::ImageFormat::WebP);
    let png_alpha = encode(rgba.clone(), image::ImageFormat::Png);
    let webp_opaque = encode(image::DynamicImage::ImageRgb8(rgba.to_rgb8()), image::ImageFormat::WebP);
    for (input, ct, accept, want) in [
        (jpeg(), "image/jpeg", Some(chrome), "image/avif"),
        (jpeg(), "image/jpeg", Some("image/webp,image/*"), "image/webp"),
        (jpeg(), "image/jpeg", Some("image/webp;q=0, image/*"), "image/jpeg"),
        (jpeg(), "image/jpeg", None, "image/jpeg"),
        (png_alpha.clone(), "image/png", Some("image/*"), "image/png"),
        (webp_alpha, "image/webp", Some("image/png,image/jpeg"), "image/png"),
        (webp_opaque, "image/webp", Some("image/jpeg"), "image/jpeg"),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let res = s.post_with("w=20&format=auto", input, ct, &headers).await;
        if res.status() != 200 {
            panic!("{ct} with Accept {accept:?}: {} {}", res.status(), res.text().await.unwrap());
        }
        assert_eq!(res.headers()["content-type"], want, "{ct} with Accept {accept:?}");
        assert_eq!(res.headers()["vary"], "Accept", "{ct} with Accept {accept:?}");
        let body = res.bytes().await.unwrap();
        if want == "image/avif" {
            assert_eq!(&body[4..12], b"ftypavif", "{ct} with Accept {accept:?}");
            continue; // the `image` crate here reads no AVIF; the worker's tests decode it
        }
        let out = image::load_from_memory(&body).unwrap();
        if want == "image/png" {
            assert_eq!(out.to_rgba8().get_pixel(2, 2).0[3], 0, "{ct}: the transparent half stays transparent");
        }
    }
    // A fixed format, or none, does not depend on Accept.
    for q in ["w=20&format=png", "w=20"] {
        let res = s.post_with(q, png_alpha.clone(), "image/png", &[("accept", chrome)]).await;
        assert_eq!(res.headers()["content-type"], "image/png", "{q}");
        assert!(res.headers().get("vary").is_none(), "{q}");
    }
}

/// A repeated request that names the tag of its answer gets 304 without a
/// job; the tag follows the input and the effective operation; the 304 is
/// counted in usage; malformed and `*` conditions get their problem types.
#[tokio::test]
async fn a_repeated_request_with_its_etag_is_304_without_a_job() {
    let s = stack().await;
    let first = s.post_with("w=120&format=auto", jpeg(), "image/jpeg", &[("accept", "image/webp")]).await;
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let published = s.jobs_published().await;
    assert_eq!(published, 1.0);

    let weak = format!("\"other\", W/{etag}");
    for condition in [etag.as_str(), weak.as_str()] {
        let res = s
            .post_with(
                "w=120&format=auto",
                jpeg(),
                "image/jpeg",
                &[("accept", "image/webp"), ("if-none-match", condition)],
            )
            .await;
        assert_eq!(res.status(), 304, "{condition}");
        assert_eq!(res.headers()["etag"], etag.as_str());
        assert_eq!(res.headers()["vary"], "Accept");
        assert!(res.bytes().await.unwrap().is_empty());
    }
    assert_eq!(s.jobs_published().await, published, "a 304 queues no job");

    // Another format (from Accept), another size, another input: another tag, a full answer.
    let if_none = [("if-none-match", etag.as_str())];
    let res = s.post_with("w=120&format=auto", jpeg(), "image/jpeg", &if_none).await;
    assert_eq!(res.status(), 200, "JPEG for a client without WebP is another representation");
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_ne!(res.headers()["etag"], etag.as_str());
    let mut other = jpeg();
    other.extend_from_slice(b"trailing bytes");
    let res = s.post_with("w=120&format=webp", other, "image/jpeg", &if_none).await;
    assert_eq!(res.status(), 200);
    // The same request again answers the same tag (and a 200 says it too).
    let again = s.post_with("w=120&format=auto", jpeg(), "image/jpeg", &[("accept", "image/webp")]).await;
    assert_eq!(again.headers()["etag"], etag.as_str());

    for bad in ["abc", "\"unterminated", "W/abc", "*, \"a\""] {
        let res = s.post_with("w=120", jpeg(), "image/jpeg", &[("if-none-match", bad)]).await;
        assert_problem(res, 400, "invalid-precondition").await;
    }
    assert_problem(
        s.post_with("w=120", jpeg(), "image/jpeg", &[("if-none-match", "*")]).await,
        412,
        "precondition-failed",
    )
    .await;

    // The 304s are in USAGE: status 304, no problem, the tenant's input counted.
    let client = s.nats.client().await.unwrap();
    let Stack { api, workers, .. } = s;
    api.shutdown().await;
    drop(workers);
    let (records, _) = e2e::usage::stored_records(&client).await.unwrap();
    let not_modified: Vec<_> = records.iter().filter(|r| r.status == 304).collect();
    assert_eq!(not_modified.len(), 2, "{records:?}");
    assert!(not_modified.iter().all(|r| r.problem.is_none() && r.bytes_in > 0 && r.cpu_us == 0), "{not_modified:?}");
    assert_eq!(records.iter().filter(|r| r.problem.as_deref() == Some("invalid-precondition")).count(), 4);
}

#[tokio::test]
async fn bad_parameters_are_400_before_the_body_matters() {
    let s = stack().await;
    for q in [
        "w=0",
        "w=-5",
        "w=abc",
        "w=8193",
        "h=99999",
        "w=10&fit=stretch",
        "w=10&format=tiff",
        "",
        "w=10&quality=0",
        "w=1&w=2",
        "w=10&h=10&fit=cover&gravity=sideways",
        "w=10&h=10&fit=cover&fx=2&fy=0.5",
        "w=10&h=10&fit=cover&fx=0.5",
        "w=10&h=10&fit=contain&gravity=n",
        "w=10&format=heic",
        "w=10&format=avif&speed=10",
        "w=10&format=avif&quality=abc",
        "w=10&format=jpeg&speed=5",
    ] {
        let doc = assert_problem(s.post(q, Some("image/jpeg"), jpeg()).await, 400, "invalid-parameter").await;
        assert!(doc["detail"].as_str().unwrap().contains('`'), "{q}: detail names the parameter: {doc}");
    }
    assert_problem(s.post("w=10", Some("image/jpeg"), Vec::new()).await, 400, "missing-body").await;
}

#[tokio::test]
async fn bad_images_are_rejected_with_their_own_types() {
    let s = stack().await;
    let input = jpeg();
    let mut corrupt = input.clone();
    for b in corrupt.iter_mut().skip(600).step_by(3) {
        *b = 0x00;
    }
    // (what, Content-Type, body, status, problem slug)
    let cases = [
        ("corrupt", Some("image/jpeg"), corrupt, 422, "corrupt-image"),
        ("truncated", Some("image/jpeg"), input[..input.len() / 3].to_vec(), 422, "corrupt-image"),
        ("BMP", Some("image/bmp"), b"BM\x36\0\0\0\0\0".to_vec(), 415, "unsupported-media-type"),
        ("unknown bytes", Some("image/jpeg"), b"GIF87 not really".to_vec(), 415, "unsupported-media-type"),
        ("no Content-Type", None, input.clone(), 415, "unsupported-media-type"),
        ("PNG label on JPEG bytes", Some("image/png"), input.clone(), 415, "content-type-mismatch"),
        ("text Content-Type", Some("text/plain"), input.clone(), 415, "unsupported-media-type"),
    ];
    for (what, ct, body, status, slug) in cases {
        eprintln!("case: {what}");
        assert_problem(s.post("w=10", ct, body).await, status, slug).await;
    }
    // pixel bomb: a small real JPEG whose header claims 64,250 × 64,250
    let mut bomb = input.clone();
    let sof = bomb.windows(2).position(|m| m[0] == 0xFF && (m[1] == 0xC0 || m[1] == 0xC2)).unwrap();
    bomb[sof + 5..sof + 7].copy_from_slice(&64250u16.to_be_bytes());
    bomb[sof + 7..sof + 9].copy_from_slice(&64250u16.to_be_bytes());
    let started = Instant::now();
    let doc = assert_problem(s.post("w=10", Some("image/jpeg"), bomb).await, 422, "pixel-limit-exceeded").await;
    assert!(doc["detail"].as_str().unwrap().contains("64250"), "{doc}");
    assert!(started.elapsed() < Duration::from_secs(2), "refused from the header, not after a decode");
}

/// Sends raw bytes and returns the response head and body as text.
async fn raw_exchange(addr: &str, head: &str, body: &[u8], read_timeout: Duration) -> String {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(read_timeout, conn.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn oversized_bodies_are_refused_without_being_read() {
    let s = stack_with(|c| c.max_body_bytes = 1 << 20, 1, &[]).await;
    // Content-Length of 100 MB, then only a few bytes: the answer must come at once.
    let started = Instant::now();
    let head = "POST /v1/resize?w=10 HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n";
    let reply = raw_exchange(&s.api.addr(), head, b"\xFF\xD8\xFF", Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("/problems/payload-too-large"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // Chunked, no length: refused once the limit is crossed.
    let big = vec![0xFFu8; 2 << 20];
    let res = s
        .http
        .post(s.api.url("/v1/resize?w=10"))
        .header("content-type", "image/jpeg")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(
            big.chunks(64 * 1024).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
        )))
        .send()
        .await
        .unwrap();
    assert_problem(res, 413, "payload-too-large").await;
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let s = stack_with(
        |c| {
            c.header_timeout = Duration::from_millis(500);
            c.body_timeout = Duration::from_millis(500);
        },
        1,
        &[],
    )
    .await;
    // Headers that never finish: the connection is closed.
    let started = Instant::now();
    let reply =
        raw_exchange(&s.api.addr(), "POST /v1/resize?w=10 HTTP/1.1\r\nHost: x\r\n", b"", Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(4), "closed after the header timeout");
    assert!(!reply.contains("200 OK"), "{reply}");
    // A body that stalls: 408 problem.
    let head = "POST /v1/resize?w=10 HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n";
    let reply = raw_exchange(&s.api.addr(), head, b"\xFF\xD8\xFF\xE0", Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("/problems/request-timeout"), "{reply}");
}

async fn consumer_info(nats: &NatsServer) -> async_nats::jetstream::consumer::Info {
    let js = jetstream::new(nats.client().await.unwrap());
    let stream = js.get_stream(subjects::JOBS_STREAM).await.unwrap();
    let mut c: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer(subjects::WORKERS_CONSUMER).await.unwrap();
    c.info().await.unwrap().clone()
}

#[tokio::test]
async fn a_job_past_its_deadline_is_503_and_never_processed() {
    // No worker: the request waits out its deadline.
    let mut s = stack_with(|c| c.job_timeout = Duration::from_millis(800), 0, &[]).await;
    let started = Instant::now();
    let res = s.post("w=10", Some("image/jpeg"), jpeg()).await;
    let elapsed = started.elapsed();
    assert_eq!(res.headers()["retry-after"], "1");
    assert_problem(res, 503, "deadline-exceeded").await;
    assert!(elapsed >= Duration::from_millis(800) && elapsed < Duration::from_secs(3), "{elapsed:?}");
    // A worker that comes later drops the expired job instead of working on it.
    s.workers.push(Worker::spawn(&s.nats.client_url, &[]).unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let expired = e2e::metrics::value(&s.workers[0].metrics_url.clone(), "worker_jobs_expired_total").await;
        if expired == 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "worker never dropped the expired job");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(e2e::metrics::value(&s.workers[0].metrics_url, "worker_jobs_total").await, 0.0, "no work done on it");
    let info = consumer_info(&s.nats).await;
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0));
}

#[tokio::test]
async fn jetstream_down_is_a_fast_503_and_not_ready() {
    let mut s = stack().await;
    let ready = s.http.get(s.api.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    s.nats.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let res = s.post("w=10", Some("image/jpeg"), jpeg()).await;
    assert_problem(res, 503, "queue-unavailable").await;
    assert!(started.elapsed() < Duration::from_secs(3), "no hang: {:?}", started.elapsed());
    let ready = s.http.get(s.api.url("/readyz")).send().await.unwrap();
    assert_problem(ready, 503, "queue-unavailable").await;
    assert_eq!(s.http.get(s.api.url("/healthz")).send().await.unwrap().status(), 200, "alive, just not ready");
}

#[tokio::test]
async fn a_worker_killed_mid_job_does_not_lose_the_request() {
    let mut s =
        stack_with(|c| c.job_timeout = Duration::from_secs(40), 1, &["--ack-wait", "2s", "--concurrency", "1"]).await;
    // A slow job: the 24 MP photo to a large PNG takes a while.
    let large = corpus::files("large").into_iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap();
    let body = std::fs::read(large).unwrap();
    let http = s.http.clone();
    let url = s.api.url("/v1/resize?w=2400&format=png");
    let request =
        tokio::spawn(
            async move { http.post(url).header("content-type", "image/jpeg").body(body).send().await.unwrap() },
        );
    // Wait until the worker holds the job, then kill it without warning.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(info) = tokio::time::timeout(Duration::from_secs(1), async {
            let js = jetstream::new(s.nats.client().await.ok()?);
            let stream = js.get_stream(subjects::JOBS_STREAM).await.ok()?;
            let mut c: async_nats::jetstream::consumer::PullConsumer =
                stream.get_consumer(subjects::WORKERS_CONSUMER).await.ok()?;
            Some(c.info().await.ok()?.num_ack_pending)
        })
        .await
            && info == Some(1)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the worker never took the job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.workers[0].kill9();
    let second = Worker::spawn(&s.nats.client_url, &["--ack-wait", "2s"]).unwrap();
    let res = request.await.unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_eq!(res.headers()["content-type"], "image/png");
    let img = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(img.width(), 2400);
    assert!(
        e2e::metrics::value(&second.metrics_url, "worker_jobs_redelivered_total").await >= 1.0,
        "the second worker got a redelivery"
    );
}

#[tokio::test]
async fn overload_is_shed_with_503() {
    let s = stack_with(|c| c.max_in_flight = 1, 0, &[]).await;
    // One request occupies the only slot (no worker, so it waits for its deadline).
    let http = s.http.clone();
    let url = s.api.url("/v1/resize?w=10");
    let body = jpeg();
    let first =
        tokio::spawn(async move { http.post(url).header("content-type", "image/jpeg").body(body).send().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    assert_problem(s.post("w=10", Some("image/jpeg"), jpeg()).await, 503, "overloaded").await;
    assert!(started.elapsed() < Duration::from_secs(1), "shed at once");
    // A refusal of a request with a photo-sized body is a whole exchange, never a
    // reset: the body is read (up to 1 MiB) before the answer, on every attempt.
    let photo = vec![0xAB_u8; 700_000];
    for attempt in 0..20 {
        let res = s
            .http
            .post(s.api.url("/v1/resize?w=10"))
            .header("content-type", "image/jpeg")
            .body(photo.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("attempt {attempt}: transport error instead of a 503: {e:?}"));
        assert_problem(res, 503, "overloaded").await;
    }
    // Over the bound the body is not waited for: the answer says the connection
    // ends, and the server closes it only after the answer, reading and dropping
    // what the client still sends, so the client gets the answer, never a reset.
    let big = vec![0xAB_u8; 6 << 20];
    for attempt in 0..5 {
        let res = s
            .http
            .post(s.api.url("/v1/resize?w=10"))
            .header("content-type", "image/jpeg")
            .body(big.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("attempt {attempt}: transport error instead of a 503: {e:?}"));
        assert_eq!(res.headers().get("connection").map(|v| v.to_str().unwrap()), Some("close"));
        assert_problem(res, 503, "overloaded").await;
    }
    // A client that waits for `100 Continue` is answered without being asked for its body.
    let head = format!(
        "POST /v1/resize?w=10 HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        big.len()
    );
    let answer = raw_exchange(&s.api.addr(), &head, &[], Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    first.abort();
}

#[tokio::test]
async fn meta_endpoints() {
    let s = stack().await;
    // Unknown routes and methods are problems too.
    assert_problem(s.http.get(s.api.url("/nope")).send().await.unwrap(), 404, "not-found").await;
    assert_problem(s.http.get(s.api.url("/v1/resize")).send().await.unwrap(), 405, "method-not-allowed").await;
    // The OpenAPI document describes the endpoint and every problem type.
    let doc: serde_json::Value = s.http.get(s.api.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["paths"]["/v1/resize"]["post"].is_object());
    let text = doc.to_string();
    for k in contracts::ProblemKind::ALL {
        assert!(text.contains(k.slug()), "OpenAPI document lacks problem type {}", k.slug());
    }
    // ...and every output format the parameter parser takes.
    let formats = doc["paths"]["/v1/resize"]["post"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "format")
        .map(|p| p["schema"]["enum"].clone())
        .unwrap();
    for f in contracts::ImageFormat::ALL.into_iter().filter(|f| f.is_encodable()) {
        assert!(formats.as_array().unwrap().iter().any(|v| v == f.name()), "OpenAPI `format` lacks {}", f.name());
    }
    let p: serde_json::Value =
        s.http.get(s.api.url("/problems/corrupt-image")).send().await.unwrap().json().await.unwrap();
    assert_eq!(p["status"], 422);
    // Metrics count what happened.
    s.post("w=10", Some("image/jpeg"), Vec::new()).await;
    let m = s.http.get(s.api.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("api_http_requests_total{route=\"/v1/resize\",status=\"400\"} 1"), "{m}");
}

#[tokio::test]
async fn workers_share_the_queue_and_stop_cleanly() {
    let mut s = stack_with(|_| {}, 2, &["--concurrency", "1"]).await;
    let files = corpus::files("jpeg");
    let mut tasks = Vec::new();
    for f in files.iter().take(16) {
        let (http, url, body) = (s.http.clone(), s.api.url("/v1/resize?w=100"), std::fs::read(f).unwrap());
        tasks.push(tokio::spawn(async move {
            http.post(url).header("content-type", "image/jpeg").body(body).send().await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    // A worker counts a job once it is acked, just after the client has its answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (a, b) = loop {
        let a = e2e::metrics::value(&s.workers[0].metrics_url, "worker_jobs_total").await;
        let b = e2e::metrics::value(&s.workers[1].metrics_url, "worker_jobs_total").await;
        if a + b >= 16.0 || Instant::now() > deadline {
            break (a, b);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(a + b, 16.0);
    assert!(a > 0.0 && b > 0.0, "both workers took jobs: {a} / {b}");
    for w in &mut s.workers {
        assert!(w.terminate(), "worker exits 0 on SIGTERM");
    }
}

#[tokio::test]
async fn a_result_over_the_output_limit_is_422_not_a_retry_loop() {
    // A 4000-px PNG of the 24 MP photo is about 12 MB; on a busy machine it takes a while.
    let s = stack_with(|c| c.job_timeout = Duration::from_secs(60), 1, &["--max-output-bytes", "8000000"]).await;
    let large = corpus::files("large").into_iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap();
    let res = s.post("w=4000&format=png", Some("image/jpeg"), std::fs::read(large).unwrap()).await;
    let doc = assert_problem(res, 422, "output-too-large").await;
    assert!(doc["detail"].as_str().unwrap().contains("4000"), "{doc}");
}

#[tokio::test]
async fn the_trace_continues_from_the_client() {
    let s = stack().await;
    let res = s
        .http
        .post(s.api.url("/v1/resize?w=50"))
        .header("content-type", "image/jpeg")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .body(jpeg())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let tr = res.headers()["traceresponse"].to_str().unwrap().to_owned();
    let parts: Vec<_> = tr.split('-').collect();
    assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace: {tr}");
    assert_ne!(parts[2], "00f067aa0ba902b7", "the server's own span: {tr}");
}

#[tokio::test]
async fn a_worker_stops_promptly_even_when_nats_is_gone() {
    let mut s = stack().await;
    // Make sure it is connected and pulling before the server goes away.
    assert_eq!(s.post("w=10", Some("image/jpeg"), jpeg()).await.status(), 200);
    s.nats.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    assert!(s.workers[0].terminate(), "worker exits 0 within 10 s of SIGTERM");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}
