//! Usage metering end to end: records from workers and from the edge, the
//! aggregator's rollups, the query API, the dead-letter subject, the archive,
//! and the invariant "sum of rollups = distinct request ids in USAGE =
//! requests answered" under faults on a 3-node JetStream cluster.

use async_nats::jetstream::{self, consumer::PullConsumer};
use contracts::{
    ProblemKind,
    job::{ANONYMOUS_TENANT, H_MSG_ID},
    subjects,
    usage::{UsageRecord, UsageReport, streams},
};
use e2e::{
    api::{self, Api},
    cluster::Cluster,
    corpus,
    nats::NatsServer,
    procs::{ApiServer, Worker},
    usage::{Aggregator, distinct, stored_records, with_query},
};
use std::time::{Duration, Instant, SystemTime};

const TOKEN: &str = "test-admin-token";
const DAY_MS: u64 = 86_400_000;

fn now_ms() -> u64 {
    contracts::job::unix_ms(SystemTime::now())
}

/// Yesterday to the day after tomorrow, daily: a window no test run can fall outside of.
fn wide_range() -> (String, String) {
    let today = now_ms() / DAY_MS * DAY_MS;
    (usage_aggregator::time::format_rfc3339(today - DAY_MS), usage_aggregator::time::format_rfc3339(today + 2 * DAY_MS))
}

async fn report(agg: &Aggregator, window: &str) -> anyhow::Result<UsageReport> {
    let (from, to) = match window {
        "day" => wide_range(),
        _ => {
            let hour = now_ms() / 3_600_000 * 3_600_000;
            let f = usage_aggregator::time::format_rfc3339;
            (f(hour - 6 * 3_600_000), f(hour + 6 * 3_600_000))
        }
    };
    let res = reqwest::Client::new()
        .get(with_query(
            &agg.url("/v1/usage"),
            &[("from", &from), ("to", &to), ("window", window), ("tenant", ANONYMOUS_TENANT)],
        ))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    anyhow::ensure!(res.status() == 200, "usage API answered {}", res.status());
    Ok(res.json().await?)
}

/// Waits until the rollups hold `expected` requests and stay there (no late double count).
async fn settle(agg: &Aggregator, expected: u64, within: Duration) -> u64 {
    let started = Instant::now();
    loop {
        let total = report(agg, "day").await.map(|r| r.total.requests).unwrap_or(0);
        if total == expected {
            tokio::time::sleep(Duration::from_secs(3)).await;
            return report(agg, "day").await.expect("report").total.requests;
        }
        assert!(total <= expected, "rollups hold {total} requests, more than the {expected} answered");
        if started.elapsed() > within {
            return total;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn record(id: &str) -> UsageRecord {
    let t = now_ms();
    UsageRecord {
        received_ms: t,
        finished_ms: t + 1,
        latency_us: 1000,
        ..UsageRecord::refused(id, ProblemKind::MissingBody)
    }
}

/// Publishes to USAGE and returns whether JetStream called it a duplicate. Right
/// after a node kill the stream may still be electing a leader: a publish that
/// gets no ack is sent again (same message id, so it is stored at most once).
async fn publish(js: &jetstream::Context, msg_id: &str, payload: Vec<u8>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut h = async_nats::HeaderMap::new();
        h.insert(H_MSG_ID, msg_id);
        let ack = match js.publish_with_headers(streams::USAGE_SUBJECT, h, payload.clone().into()).await {
            Ok(pending) => pending.await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match ack {
            Ok(ack) => return ack.duplicate,
            Err(e) => {
                assert!(Instant::now() < deadline, "publishing {msg_id} to USAGE: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Sends `n` requests, a third of them valid small resizes, the rest refused at the edge; returns how many got an answer.
async fn traffic(http: &reqwest::Client, base: &str, n: usize) -> usize {
    let img = corpus::read("jpeg/020_bridge.jpg");
    let mut tasks = Vec::new();
    for i in 0..n {
        let (http, base, img) = (http.clone(), base.to_owned(), img.clone());
        tasks.push(tokio::spawn(async move {
            let req = match i % 3 {
                0 => http.post(format!("{base}/v1/resize?w=32")).header("content-type", "image/jpeg").body(img),
                1 => http.post(format!("{base}/v1/resize?w=0")).header("content-type", "image/jpeg").body(img),
                _ => http.post(format!("{base}/v1/resize?w=32")).header("content-type", "image/jpeg"),
            };
            req.send().await.is_ok()
        }));
    }
    let mut answered = 0;
    for t in tasks {
        answered += usize::from(t.await.unwrap());
    }
    answered
}

async fn metric(url: &str, name: &str) -> f64 {
    let Ok(res) = reqwest::get(url).await else { return 0.0 };
    let text = res.text().await.unwrap_or_default();
    e2e::metrics::sum(&text, name)
}

#[tokio::test]
async fn the_invariant_holds_under_faults_on_a_cluster() {
    let mut cluster = Cluster::start().expect("cluster");
    cluster.ready(Duration::from_secs(90)).await.expect("cluster ready");
    // Every component gets the whole comma-separated list, as the operator hands it out.
    let all = cluster.urls();
    let urls = cluster.nodes[1].client_url.clone();
    let mut cfg = api::config(&all);
    cfg.stream_replicas = 3;
    cfg.job_timeout = Duration::from_secs(20);
    let api = Api::start(cfg).await.expect("api-server");
    let worker_args = ["--ack-wait", "2s", "--stream-replicas", "3", "--concurrency", "1"];
    let mut workers: Vec<Worker> = (0..2).map(|_| Worker::spawn(&all, &worker_args).expect("worker")).collect();
    let http = reqwest::Client::new();
    let mut answered = 0usize;

    // 1. The aggregator dies between writing rollups and acking; two replicas take over.
    let mut first = Aggregator::spawn(
        &all,
        TOKEN,
        &["--replicas", "3", "--ack-wait", "3s", "--batch", "10", "--pause-before-ack", "30s"],
    )
    .expect("aggregator");
    answered += traffic(&http, &api.base, 30).await;
    let started = Instant::now();
    while metric(&first.url("/metrics"), "usage_unacked_batches").await < 1.0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the aggregator never wrote a batch");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let written_before_kill = metric(&first.url("/metrics"), "usage_records_aggregated_total").await;
    first.kill9();
    println!("aggregator killed while holding a written, unacked batch ({written_before_kill} records acked before)");
    let replica_args = ["--replicas", "3", "--ack-wait", "3s", "--batch", "7"];
    let a = Aggregator::spawn(&all, TOKEN, &replica_args).expect("replica a");
    let b = Aggregator::spawn(&all, TOKEN, &replica_args).expect("replica b");

    // 2. A worker dies mid-job; the job is redelivered and metered once.
    let large = corpus::files("large").into_iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap();
    let body = std::fs::read(large).unwrap();
    let slow = {
        let (http, url) = (http.clone(), api.url("/v1/resize?w=2400&format=png"));
        tokio::spawn(async move { http.post(url).header("content-type", "image/jpeg").body(body).send().await.is_ok() })
    };
    let client = e2e::nats::observer(&urls).await.unwrap();
    let js = jetstream::new(client.clone());
    let started = Instant::now();
    loop {
        let pending = async {
            let stream = js.get_stream(subjects::JOBS_STREAM).await.ok()?;
            let mut c: PullConsumer = stream.get_consumer(subjects::WORKERS_CONSUMER).await.ok()?;
            Some(c.info().await.ok()?.num_ack_pending)
        };
        if tokio::time::timeout(Duration::from_secs(1), pending).await.ok().flatten() == Some(1) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no worker took the slow job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for w in &mut workers {
        w.kill9();
    }
    workers = (0..2).map(|_| Worker::spawn(&all, &worker_args).expect("worker")).collect();
    answered += usize::from(slow.await.unwrap());

    // 3. A JetStream node dies under traffic.
    let traffic_during = {
        let (http, base) = (http.clone(), api.base.clone());
        tokio::spawn(async move {
            let mut n = 0;
            for _ in 0..6 {
                n += traffic(&http, &base, 9).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let leader = async {
        let mut s = jetstream::new(client.clone()).get_stream(streams::USAGE_STREAM).await.ok()?;
        s.info().await.ok()?.cluster.clone()?.leader
    };
    let leader = leader.await.unwrap_or_default();
    cluster.nodes[0].kill();
    println!("killed JetStream node {} (USAGE leader was {leader})", cluster.nodes[0].name);
    answered += traffic_during.await.unwrap();

    // 4. The same record published twice, and a malformed one that must not block the stream.
    let client = e2e::nats::observer(&cluster.nodes[1].client_url).await.unwrap();
    let js = jetstream::new(client.clone());
    let twice = record("synthetic-twice-0001");
    // The first publish may itself have been retried, so only the second one's verdict is certain.
    publish(&js, &twice.request_id, twice.encode()).await;
    assert!(publish(&js, &twice.request_id, twice.encode()).await, "the second publish is a duplicate");
    answered += 1;
    publish(&js, "synthetic-garbage", b"{\"v\":1,\"oops\":true}".to_vec()).await;

    // The api-server publishes what it still holds at shutdown.
    api.shutdown().await;
    drop(workers);

    let (records, malformed) = stored_records(&client).await.expect("reading USAGE");
    let ids = distinct(&records);
    let counted = settle(&a, ids as u64, Duration::from_secs(120)).await;
    let hourly: u64 = report(&b, "hour").await.unwrap().rows.iter().map(|r| r.counters.requests).sum();
    println!(
        "answered {answered}, distinct request ids in USAGE {ids} ({} messages, {malformed} malformed), rollups {counted} (hourly {hourly})",
        records.len()
    );
    assert_eq!(malformed, 1);
    assert_eq!(ids, answered, "every answered request left exactly one record");
    assert_eq!(counted, ids as u64, "the rollups count each record once");
    assert_eq!(hourly, counted, "hourly and daily rollups agree");
    // The dead-letter stream may still be electing a leader after the node loss: ask until it answers.
    let started = Instant::now();
    let reason = loop {
        let last = async {
            let dead = js.get_stream(streams::DEAD_STREAM).await.ok()?;
            let m = dead.get_last_raw_message_by_subject(streams::DEAD_SUBJECT).await.ok()?;
            Some(m.headers.get(streams::H_DEAD_REASON)?.as_str().to_owned())
        };
        if let Ok(Some(r)) = tokio::time::timeout(Duration::from_secs(5), last).await {
            break r;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the malformed record was never dead-lettered");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(reason.contains("not a usage record"), "{reason}");
}

#[tokio::test]
async fn the_usage_api_validates_confines_and_formats() {
    let nats = NatsServer::start().unwrap();
    // The anonymous tenant of a fleet without authentication reads its usage without credentials.
    let agg = Aggregator::spawn(&nats.client_url, TOKEN, &["--ack-wait", "2s", "--auth", "none"]).unwrap();
    let client = nats.client().await.unwrap();
    let js = jetstream::new(client.clone());
    // One valid record for another tenant, a malformed one, then one for the anonymous tenant:
    // the malformed record in the middle must neither block nor vanish.
    publish(&js, "acme-1", UsageRecord { tenant: "acme".into(), ..record("acme-1") }.encode()).await;
    publish(&js, "bad-1", b"not json".to_vec()).await;
    publish(&js, "anon-1", record("anon-1").encode()).await;
    assert_eq!(settle(&agg, 1, Duration::from_secs(30)).await, 1);

    let http = reqwest::Client::new();
    let (from, to) = wide_range();
    let get = |query: Vec<(&'static str, String)>, token: Option<&'static str>| {
        let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut req = http.get(with_query(&agg.url("/v1/usage"), &pairs));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let q = |extra: &[(&'static str, &str)]| {
        let mut v = vec![("from", from.clone()), ("to", to.clone()), ("window", "day".to_owned())];
        for (k, val) in extra {
            v.retain(|(name, _)| name != k);
            v.push((*k, (*val).to_owned()));
        }
        v
    };
    // Bad input: 400 problem+json naming the parameter.
    for (extra, param) in [
        (vec![("from", "yesterday")], "from"),
        (vec![("to", "2026-13-01")], "to"),
        (vec![("from", to.as_str()), ("to", from.as_str())], "to"),
        (vec![("from", "2020-01-01"), ("to", "2026-01-01")], "to"),
        (vec![("window", "week")], "window"),
        (vec![("from", "2026-01-01T00:30:00Z"), ("window", "hour")], "from"),
    ] {
        let res = get(q(&extra), None).await.unwrap();
        assert_eq!(res.status(), 400, "{extra:?}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let doc: serde_json::Value = res.json().await.unwrap();
        assert_eq!(doc["type"], "/problems/invalid-parameter");
        assert!(doc["detail"].as_str().unwrap().contains(&format!("`{param}`")), "{doc}");
    }
    // A tenant sees only itself; the admin anyone; a wrong token nothing.
    let own: UsageReport = get(q(&[]), None).await.unwrap().json().await.unwrap();
    assert_eq!((own.tenant.as_str(), own.total.requests), (ANONYMOUS_TENANT, 1));
    assert!(own.complete_through.is_some(), "the report says how far it is complete");
    assert_eq!(get(q(&[("tenant", "acme")]), None).await.unwrap().status(), 403);
    assert_eq!(get(q(&[("tenant", "acme")]), Some("wrong")).await.unwrap().status(), 401);
    let acme: UsageReport = get(q(&[("tenant", "acme")]), Some(TOKEN)).await.unwrap().json().await.unwrap();
    assert_eq!(acme.total.requests, 1);
    // With authentication on (the default), nobody reads the anonymous tenant without credentials.
    let authed = Aggregator::spawn(&nats.client_url, TOKEN, &[]).unwrap();
    let pairs = q(&[]);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = http.get(with_query(&authed.url("/v1/usage"), &pairs)).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let doc: serde_json::Value = res.json().await.unwrap();
    assert_eq!(doc["type"], "/problems/unauthorized", "{doc}");
    // CSV on request, same rows.
    let pairs = q(&[]);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let csv = http.get(with_query(&agg.url("/v1/usage"), &pairs)).header("accept", "text/csv").send().await.unwrap();
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    assert!(text.lines().nth(1).unwrap().starts_with("start,requests,ok"), "{text}");
    assert_eq!(text.lines().count(), 3, "comment, header, one day: {text}");
    // The malformed record went to the dead-letter subject with its reason.
    let dead = js.get_stream(streams::DEAD_STREAM).await.unwrap();
    let dead = dead.get_last_raw_message_by_subject(streams::DEAD_SUBJECT).await.unwrap();
    assert_eq!(&dead.payload[..], b"not json");
    assert!(dead.headers.get(streams::H_DEAD_REASON).is_some_and(|r| !r.as_str().is_empty()));

    // The archive of the day holds each tenant's records, compressed.
    let store = usage_aggregator::store::Store::open(
        &nats.client_url,
        &e2e::nats::credentials(contracts::access::Role::UsageAggregator),
        1,
        Default::default(),
    )
    .await
    .unwrap();
    let today = now_ms() / DAY_MS * DAY_MS;
    let summary = usage_aggregator::archive::archive_day(&store, today, 0).await.unwrap();
    assert_eq!((summary.objects, summary.records), (2, 2));
    let name = streams::archive_object(&usage_aggregator::time::day_name(today), ANONYMOUS_TENANT);
    let mut object = store.archive.get(name.as_str()).await.expect("archived object");
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut object, &mut bytes).await.unwrap();
    let back = usage_aggregator::archive::read_object(&bytes).unwrap();
    assert_eq!(back.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(), ["anon-1"]);
}

#[tokio::test]
async fn a_killed_api_server_loses_at_most_its_unflushed_window() {
    let nats = NatsServer::start().unwrap();
    let api = ApiServer::spawn(&nats.client_url, &["--auth", "none"]).unwrap();
    let http = reqwest::Client::new();
    // Refused requests at a steady pace for 3 s, then SIGKILL without warning.
    let mut answered: Vec<(String, Instant)> = Vec::new();
    let end = Instant::now() + Duration::from_millis(3000);
    while Instant::now() < end {
        let res = http.post(format!("{}/v1/resize?w=0", api.base)).send().await.unwrap();
        assert_eq!(res.status(), 400);
        answered.push((res.headers()["x-request-id"].to_str().unwrap().to_owned(), Instant::now()));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed_at = Instant::now();
    let _ = std::process::Command::new("kill").args(["-9", &api.pid().to_string()]).status();
    drop(api);
    let (records, _) = stored_records(&nats.client().await.unwrap()).await.unwrap();
    let stored: std::collections::HashSet<_> = records.iter().map(|r| r.request_id.clone()).collect();
    let lost: Vec<_> = answered.iter().filter(|(id, _)| !stored.contains(id)).collect();
    let oldest_lost = lost.iter().map(|(_, t)| killed_at.duration_since(*t)).max().unwrap_or_default();
    println!(
        "api-server SIGKILL: {} requests answered, {} records lost ({:.1} %), oldest lost answered {:?} before the kill",
        answered.len(),
        lost.len(),
        100.0 * lost.len() as f64 / answered.len() as f64,
        oldest_lost
    );
    assert!(!stored.is_empty(), "records were flushed before the kill");
    assert!(
        oldest_lost <= Duration::from_millis(1500),
        "only the last flush window may be lost, but a record answered {oldest_lost:?} before the kill is missing"
    );
    assert_eq!(records.len(), stored.len(), "no duplicates");
}
