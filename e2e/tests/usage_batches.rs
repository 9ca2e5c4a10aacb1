//! Refusals published as batches (one USAGE message per flush) against a real
//! nats-server and real aggregator processes: each record counted once in the
//! rollups and stored once in the archive, when a flush is sent again, when an
//! aggregator dies holding a written but unacked batch, next to single worker
//! records, and with a damaged batch dead-lettered whole.

use async_nats::jetstream;
use contracts::{
    ProblemKind,
    job::{ANONYMOUS_TENANT, H_MSG_ID},
    usage::{UsageRecord, UsageReport, batch, streams},
};
use e2e::{
    nats::NatsServer,
    procs::ApiServer,
    usage::{Aggregator, distinct, stored_records, today},
};
use std::time::{Duration, Instant, SystemTime};

const TOKEN: &str = "test-admin-token";

fn now_ms() -> u64 {
    contracts::job::unix_ms(SystemTime::now())
}

fn refusal(i: usize) -> UsageRecord {
    let t = now_ms();
    UsageRecord {
        received_ms: t,
        finished_ms: t + 1,
        latency_us: 900,
        ..UsageRecord::refused(&format!("refusal-{i:05}"), ProblemKind::RateLimited)
    }
}

/// Publishes `payload` under `msg_id`; whether the stream called it a duplicate.
async fn publish(js: &jetstream::Context, msg_id: &str, payload: Vec<u8>) -> bool {
    let mut h = async_nats::HeaderMap::new();
    h.insert(H_MSG_ID, msg_id);
    js.publish_with_headers(streams::USAGE_SUBJECT, h, payload.into()).await.unwrap().await.unwrap().duplicate
}

async fn requests(agg: &Aggregator) -> u64 {
    let res = reqwest::Client::new().get(today(agg, ANONYMOUS_TENANT)).bearer_auth(TOKEN).send().await;
    match res {
        Ok(r) if r.status() == 200 => r.json::<UsageReport>().await.map(|r| r.total.requests).unwrap_or(0),
        _ => 0,
    }
}

/// Waits for the rollups to hold `expected` requests, then checks they stay there.
async fn settle(agg: &Aggregator, expected: u64) -> u64 {
    let started = Instant::now();
    while requests(agg).await != expected && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    requests(agg).await
}

async fn metric(agg: &Aggregator, name: &str) -> f64 {
    let Ok(res) = reqwest::get(agg.url("/metrics")).await else { return 0.0 };
    e2e::metrics::sum(&res.text().await.unwrap_or_default(), name)
}

#[tokio::test]
async fn batched_refusals_count_once_through_retries_crashes_and_the_archive() {
    let nats = NatsServer::start().unwrap();
    let client = nats.client().await.unwrap();
    let js = jetstream::new(client.clone());
    js.get_or_create_stream(streams::usage_stream(1)).await.unwrap();

    // 1. 2,000 refusals in batches, each batch sent twice (a flush whose ack was lost and is sent again).
    let refusals: Vec<UsageRecord> = (0..2000).map(refusal).collect();
    let mut n = 0;
    let batches = batch::split(&refusals, || {
        n += 1;
        format!("flush-{n}")
    });
    assert!(batches.len() >= 10, "2,000 refusals need several batches, got {}", batches.len());
    // The first aggregator writes a round and dies before acking it.
    let mut first =
        Aggregator::spawn(&nats.client_url, TOKEN, &["--ack-wait", "3s", "--batch", "4", "--pause-before-ack", "60s"])
            .unwrap();
    for b in &batches {
        assert!(!publish(&js, &b.id, b.payload.clone()).await, "first publish of {}", b.id);
        assert!(publish(&js, &b.id, b.payload.clone()).await, "a retried flush is dropped by the stream");
    }
    let started = Instant::now();
    while metric(&first, "usage_unacked_batches").await < 1.0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the aggregator never wrote a batch");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Written into the rollups, not acked.
    let written = requests(&first).await;
    first.kill9();

    // 2. Worker records (one per message) next to the batches, and a batch with a damaged record.
    let singles: Vec<UsageRecord> =
        (0..25).map(|i| UsageRecord { request_id: format!("job-{i:03}"), ..refusal(10_000 + i) }).collect();
    for r in &singles {
        publish(&js, &r.request_id, r.encode()).await;
    }
    let mut damaged = batch::split(&[refusal(50_000), refusal(50_001)], || "damaged".into()).remove(0).payload;
    let cut = damaged.iter().rposition(|b| *b == b',').unwrap();
    damaged.truncate(cut);
    publish(&js, "damaged", damaged).await;

    // 3. Replicas take over: the unacked batches come back and count once.
    let replicas: Vec<Aggregator> = (0..2)
        .map(|_| Aggregator::spawn(&nats.client_url, TOKEN, &["--ack-wait", "3s", "--batch", "3"]).unwrap())
        .collect();
    let expected = (refusals.len() + singles.len()) as u64;
    let counted = settle(&replicas[0], expected).await;
    let (stored, malformed) = stored_records(&client).await.unwrap();
    println!(
        "{} refusals in {} batches (each sent twice) + {} singles: {written} in the rollups before the kill, rollups {counted}, {} records stored in USAGE ({malformed} malformed messages)",
        refusals.len(),
        batches.len(),
        singles.len(),
        stored.len()
    );
    assert!(written > 0, "the killed aggregator had written a batch");
    assert_eq!(counted, expected, "every record of every batch counted exactly once");
    assert_eq!(requests(&replicas[1]).await, expected);
    assert_eq!((stored.len(), distinct(&stored)), (expected as usize, expected as usize));
    assert_eq!(malformed, 1);
    let dead = js.get_stream(streams::DEAD_STREAM).await.unwrap();
    let m = dead.get_last_raw_message_by_subject(streams::DEAD_SUBJECT).await.unwrap();
    let reason = m.headers.get(streams::H_DEAD_REASON).unwrap().as_str().to_owned();
    assert!(reason.contains("record 2 of usage batch"), "{reason}");
    assert_eq!(
        metric(&replicas[0], "usage_records_dead_lettered_total").await
            + metric(&replicas[1], "usage_records_dead_lettered_total").await,
        1.0
    );

    // 4. The archive of the day holds every record of the batches and the singles, once.
    let store = usage_aggregator::store::Store::with_client(client.clone(), 1).await.unwrap();
    let day = now_ms() / 86_400_000 * 86_400_000;
    let raw = usage_aggregator::archive::day_records(&store, day, 0).await.unwrap();
    assert_eq!((raw.len(), distinct(&raw)), (expected as usize, expected as usize));
    let summary = usage_aggregator::archive::archive_day(&store, day, 0).await.unwrap();
    assert_eq!(summary.records, expected as usize);
    let name = streams::archive_object(&usage_aggregator::time::day_name(day), ANONYMOUS_TENANT);
    let mut object = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut store.archive.get(name.as_str()).await.unwrap(), &mut object)
        .await
        .unwrap();
    assert_eq!(usage_aggregator::archive::read_object(&object).unwrap().len(), expected as usize);
}

#[tokio::test]
async fn the_api_server_publishes_its_refusals_in_batches() {
    let nats = NatsServer::start().unwrap();
    let mut api = ApiServer::spawn(&nats.client_url, &["--auth", "none"]).unwrap();
    let agg = Aggregator::spawn(&nats.client_url, TOKEN, &[]).unwrap();
    let http = reqwest::Client::new();
    let n = 600;
    for _ in 0..n {
        let res = http.post(format!("{}/v1/resize?w=0", api.base)).send().await.unwrap();
        assert_eq!(res.status(), 400);
    }
    // Shutdown publishes what is still buffered.
    assert!(api.terminate(), "the api-server exits cleanly");
    let client = nats.client().await.unwrap();
    let (stored, malformed) = stored_records(&client).await.unwrap();
    let mut usage = jetstream::new(client).get_stream(streams::USAGE_STREAM).await.unwrap();
    let messages = usage.info().await.unwrap().state.messages;
    println!("{n} refusals: {messages} USAGE messages, {} records", stored.len());
    assert_eq!((stored.len(), distinct(&stored), malformed), (n, n, 0));
    assert!(messages * 20 <= n as u64, "{messages} messages for {n} refusals: not batched");
    assert_eq!(settle(&agg, n as u64).await, n as u64);
}
