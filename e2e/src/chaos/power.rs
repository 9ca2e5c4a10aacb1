//! Power loss on all three JetStream nodes at once, on the streams the
//! product keeps: JOBS, USAGE and the IDENTITY bucket, each created by the
//! product's own configuration at three replicas.
//!
//! A process kill leaves the page cache to the kernel, so it can never show
//! whether what JetStream acknowledged had reached the disk; losing power
//! can. Each store is a lazyfs mount, which keeps file data that was never
//! fsynced in memory only: the servers are SIGKILLed together and every
//! mount then drops its unsynced data, which is what the disks would have
//! held after the power came back. The servers start again on that.
//!
//! Every write the cluster acknowledged must then be readable, unchanged:
//! a usage record is a bill, an identity record a tenant's keys, a job a
//! client's request. The fleet runs `sync_interval: always` for that. The
//! same run with nats-server's default lazy sync is the control: it must
//! lose acknowledged writes, or lazyfs dropped nothing and the durable run
//! proved nothing. The control's stores are synced once after the streams
//! are created (as the periodic sync of a cluster that has run for a while
//! would have), so its streams come back and its loss is found write by
//! write, by the same reading back that finds none in the durable run.

use crate::cluster::{Cluster, Stores};
use anyhow::Context;
use async_nats::{
    HeaderMap,
    jetstream::{self, message::StreamMessage, stream},
};
use bytes::Bytes;
use contracts::{
    access::Role,
    identity::{self as ident, Entry, TenantRecord},
    job::{self, Job, StagedInput},
    subjects,
    usage::{Source, UsageRecord, record::RECORD_VERSION, streams as usage},
};
use std::{
    path::Path,
    time::{Duration, Instant, SystemTime},
};

/// Jobs published to JOBS, records to USAGE, records put into IDENTITY.
pub const JOBS: usize = 1_000;
pub const USAGE_RECORDS: usize = 1_000;
pub const IDENTITY_PUTS: usize = 200;
/// Writes in flight per stream: acks are awaited a window at a time, so the
/// servers share their fsyncs between the writes of a window.
const WINDOW: usize = 50;
/// How long the streams get after the restart to have leaders again; one
/// that has none by then lost everything it had acknowledged.
pub const RECOVERY: Duration = Duration::from_secs(60);
/// How long a stream is reported missing by a meta leader before it is
/// believed gone (a restarted meta leader may not have replayed its log).
const GONE_AFTER: Duration = Duration::from_secs(15);

/// What became of a stream after the restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It has a leader again.
    Back,
    /// The cluster no longer knows it.
    Gone,
    /// It exists but elected no leader within [`RECOVERY`].
    Leaderless,
}

impl std::fmt::Display for Fate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fate::Back => "back",
            Fate::Gone => "gone",
            Fate::Leaderless => "no leader",
        })
    }
}

/// One stream's acknowledged writes and how many of them the power loss took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLoss {
    pub stream: &'static str,
    pub acked: usize,
    /// Acknowledged writes missing or different afterwards (all of them if the stream is not back).
    pub lost: usize,
    pub fate: Fate,
}

/// One power loss: what each stream lost, what the stores dropped, how long the cluster took.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerLoss {
    /// `sync_interval: always` (the fleet's setting), else the lazy-sync control.
    pub durable: bool,
    /// JOBS, USAGE and KV_IDENTITY, in that order.
    pub streams: Vec<StreamLoss>,
    /// Unsynced bytes each node's store dropped.
    pub dropped: Vec<u64>,
    /// From the restart until every stream had a leader; `None` if one never did.
    pub recovered_after: Option<Duration>,
}

impl PowerLoss {
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped.iter().sum()
    }

    pub fn lost(&self) -> usize {
        self.streams.iter().map(|s| s.lost).sum()
    }

    /// How this run's `sync_interval` reads in the table.
    pub fn sync(&self) -> &'static str {
        if self.durable { "always" } else { "default (lazy, control)" }
    }

    /// The invariants this run broke. A durable run must lose no
    /// acknowledged write; the control must lose some, or the check cannot
    /// fail and so proves nothing. A stream that acknowledged nothing was not checked at all.
    pub fn violations(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .streams
            .iter()
            .filter(|s| s.acked == 0)
            .map(|s| format!("{}: no write acknowledged before the power loss, nothing checked", s.stream))
            .collect();
        if self.durable {
            v.extend(self.streams.iter().filter(|s| s.lost > 0).map(|s| {
                format!(
                    "{}: {} of {} acknowledged writes lost with sync_interval: always (stream {})",
                    s.stream, s.lost, s.acked, s.fate
                )
            }));
        } else if self.dropped_bytes() == 0 {
            v.push("lazyfs dropped nothing: the check proves nothing".into());
        } else if self.lost() == 0 {
            v.push(format!(
                "no acknowledged write lost without fsync although lazyfs dropped {} bytes: the check proves nothing",
                self.dropped_bytes()
            ));
        }
        v
    }
}

/// A write the cluster acknowledged: where it went and what it was.
#[derive(Debug, Clone)]
struct Acked {
    /// Stream sequence (a bucket's revision).
    seq: u64,
    /// `Nats-Msg-Id`, or the bucket key.
    id: String,
    headers: HeaderMap,
    payload: Bytes,
}

/// Starts a 3-node cluster on lazyfs stores (`durable`: `sync_interval:
/// always`, else the default lazy sync), writes to JOBS, USAGE and IDENTITY
/// until acknowledged, cuts the power of all three nodes, restarts them and
/// counts the acknowledged writes that did not survive. Logs in `logs/power-…`.
pub async fn run(logs: &Path, durable: bool) -> anyhow::Result<PowerLoss> {
    crate::lazyfs::usable()?;
    let logs = logs.join(if durable { "power-sync-always" } else { "power-sync-default" });
    std::fs::create_dir_all(&logs)?;
    let mut cluster = Cluster::start_on(Some(&logs), Stores::Lazy { sync_always: durable }, |_| Vec::new())?;
    cluster.ready(Duration::from_secs(90)).await.context("JetStream cluster on lazyfs")?;
    let urls = cluster.urls();
    let (jobs_js, usage_js, store) = tokio::try_join!(
        async { ensure(Role::ApiServer, &urls, subjects::jobs_stream(3)).await.context("JOBS") },
        async { ensure(Role::Worker, &urls, usage::usage_stream(3)).await.context("USAGE") },
        async { crate::identity::replicated_store(&urls, 3).await.context("IDENTITY") },
    )?;
    if !durable {
        // What the periodic sync would have done by now in a cluster that has
        // run for a while: the streams survive, and the writes that follow
        // are lost one by one, each found missing by reading it back.
        let synced = cluster.sync_stores()?;
        progress!("  streams created; their stores synced once ({synced:?} bytes), as a periodic sync would");
    }

    let started = Instant::now();
    let (jobs, records, identity) = tokio::try_join!(
        async { write_jobs(&jobs_js).await.context("JOBS") },
        async { write_usage(&usage_js).await.context("USAGE") },
        async { write_identity(&store).await.context("IDENTITY") },
    )?;
    drop((jobs_js, usage_js, store));
    let burst = started.elapsed();
    progress!(
        "  {} jobs, {} usage records, {} identity records acknowledged in {:.1} s; cutting the power",
        jobs.len(),
        records.len(),
        identity.len(),
        burst.as_secs_f64()
    );

    let dropped = cluster.power_cycle()?;
    let restarted = Instant::now();
    let js = jetstream::new(observer(&urls, Duration::from_secs(30)).await?);
    let timed = |name: &'static str| {
        let js = js.clone();
        async move {
            let fate = led(&js, name, RECOVERY).await;
            (fate, restarted.elapsed())
        }
    };
    let (jobs_back, usage_back, identity_back) =
        tokio::join!(timed(subjects::JOBS_STREAM), timed(usage::USAGE_STREAM), timed(ident::STREAM));
    let recovered_after = [&jobs_back, &usage_back, &identity_back]
        .into_iter()
        .map(|(s, t)| s.as_ref().ok().map(|_| *t))
        .collect::<Option<Vec<_>>>()
        .and_then(|ts| ts.into_iter().max());

    let same_job = |m: &StreamMessage, a: &Acked| {
        m.payload == a.payload
            && matches!((Job::from_headers(&m.headers), Job::from_headers(&a.headers)), (Ok(x), Ok(y)) if x == y)
    };
    let same_record = |m: &StreamMessage, a: &Acked| {
        m.payload == a.payload && m.headers.get(job::H_MSG_ID).map(|v| v.as_str()) == Some(a.id.as_str())
    };
    let streams = vec![
        loss(subjects::JOBS_STREAM, &jobs, jobs_back.0, |s| by_sequence(s, &jobs, same_job)).await?,
        loss(usage::USAGE_STREAM, &records, usage_back.0, |s| by_sequence(s, &records, same_record)).await?,
        loss(ident::STREAM, &identity, identity_back.0, |_| by_key(&js, &identity)).await?,
    ];
    drop(cluster);
    Ok(PowerLoss { durable, streams, dropped, recovered_after })
}

/// A stream's loss: all of `acked` unless it came back, else what `count` finds missing.
async fn loss<F, Fut>(
    name: &'static str,
    acked: &[Acked],
    back: Result<stream::Stream, Fate>,
    count: F,
) -> anyhow::Result<StreamLoss>
where
    F: FnOnce(stream::Stream) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    let (lost, fate) = match back {
        Ok(s) => (count(s).await.with_context(|| format!("reading {name} back"))?, Fate::Back),
        Err(fate) => (acked.len(), fate),
    };
    Ok(StreamLoss { stream: name, acked: acked.len(), lost, fate })
}

/// Acknowledged messages missing from `stream` at their sequence, or not `same` there.
async fn by_sequence(
    stream: stream::Stream,
    acked: &[Acked],
    same: impl Fn(&StreamMessage, &Acked) -> bool,
) -> anyhow::Result<usize> {
    let mut lost = 0;
    for a in acked {
        lost += usize::from(
            !retrying(|| async {
                match stream.get_raw_message(a.seq).await {
                    Ok(m) => Ok(Some(same(&m, a))),
                    Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(Some(false)),
                    Err(e) => Err(anyhow::anyhow!("sequence {}: {e}", a.seq)),
                }
            })
            .await?,
        );
    }
    Ok(lost)
}

/// Acknowledged puts whose key no longer holds the value at the revision acknowledged.
async fn by_key(js: &jetstream::Context, acked: &[Acked]) -> anyhow::Result<usize> {
    let kv = retrying(|| async { Ok(Some(js.get_key_value(ident::BUCKET).await?)) }).await?;
    let mut lost = 0;
    for a in acked {
        lost += usize::from(
            !retrying(|| async {
                let entry = kv.entry(a.id.as_str()).await.map_err(|e| anyhow::anyhow!("key {}: {e}", a.id))?;
                Ok(Some(entry.is_some_and(|e| e.value == a.payload && e.revision == a.seq)))
            })
            .await?,
        );
    }
    Ok(lost)
}

/// `attempt` until it gives an answer, for up to 10 s: right after an
/// election a read may time out or find no responder.
async fn retrying<T, F, Fut>(attempt: F) -> anyhow::Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), attempt()).await {
            Ok(Ok(Some(v))) => return Ok(v),
            Ok(Err(e)) if Instant::now() >= deadline => return Err(e),
            _ if Instant::now() >= deadline => anyhow::bail!("no answer within 10 s"),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// The stream once it has a leader, or its [`Fate`]: [`Fate::Gone`] once
/// the meta leader has denied it for [`GONE_AFTER`].
async fn led(js: &jetstream::Context, name: &str, within: Duration) -> Result<stream::Stream, Fate> {
    let deadline = Instant::now() + within;
    let mut denied_since = None;
    while Instant::now() < deadline {
        // Short attempts: one asked in the middle of an election is never
        // answered, and the time it waits would count as recovery.
        match tokio::time::timeout(Duration::from_secs(1), js.get_stream(name)).await {
            Ok(Ok(s)) => {
                denied_since = None;
                if s.cached_info().cluster.as_ref().is_some_and(|c| c.leader.is_some()) {
                    return Ok(s);
                }
            }
            Ok(Err(e))
                if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(ref j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
            {
                if denied_since.get_or_insert_with(Instant::now).elapsed() > GONE_AFTER {
                    return Err(Fate::Gone);
                }
            }
            _ => denied_since = None,
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(Fate::Leaderless)
}

/// The tests' observer, once a server of `urls` accepts it.
async fn observer(urls: &str, within: Duration) -> anyhow::Result<async_nats::Client> {
    let deadline = Instant::now() + within;
    loop {
        match crate::nats::observer(urls).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => return Err(e.context("no server took a connection")),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Connected as `role`, the stream of `config` created as that role's
/// component creates it, once it has a leader.
async fn ensure(role: Role, urls: &str, config: stream::Config) -> anyhow::Result<jetstream::Context> {
    let client = crate::nats::options_as(role).connect(contracts::servers::server_urls(urls).as_slice()).await?;
    let js = jetstream::new(client);
    js.get_or_create_stream(config.clone()).await?;
    led(&js, &config.name, RECOVERY).await.map_err(|f| anyhow::anyhow!("new stream: {f}"))?;
    Ok(js)
}

/// Publishes `messages` on `subject`, [`WINDOW`] at a time; those acknowledged.
/// Refused ones are sent again for a while: a stream created a moment ago
/// may not have elected its leader yet, and its first writes then find no
/// responder (seen once: every JOBS write refused in 0.1 s, nothing to check).
async fn publish(js: &jetstream::Context, subject: &'static str, messages: Vec<Acked>) -> anyhow::Result<Vec<Acked>> {
    let give_up = Instant::now() + Duration::from_secs(15);
    let mut acked = Vec::new();
    let mut pending = messages;
    loop {
        let mut refused = Vec::new();
        for window in pending.chunks(WINDOW) {
            let mut inflight = Vec::new();
            for m in window {
                inflight.push((m, js.publish_with_headers(subject, m.headers.clone(), m.payload.clone()).await?));
            }
            for (m, ack) in inflight {
                match ack.await {
                    Ok(ack) => acked.push(Acked { seq: ack.sequence, ..m.clone() }),
                    Err(_) => refused.push(m.clone()),
                }
            }
        }
        if refused.is_empty() || Instant::now() > give_up {
            return Ok(acked);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        pending = refused;
    }
}

/// Jobs as an api-server queues them (staged input).
async fn write_jobs(js: &jetstream::Context) -> anyhow::Result<Vec<Acked>> {
    let now = SystemTime::now();
    let jobs = (0..JOBS).map(|i| {
        let request_id = format!("power-job-{i:06}");
        let staged = StagedInput {
            url: format!("http://127.0.0.1:1{}", contracts::staging::body_path(&request_id)),
            token: format!("{i:032x}"),
            size: 100_000 + i as u64,
            sha256: contracts::staging::sha256_hex(request_id.as_bytes()),
        };
        let job = Job {
            request_id: request_id.clone(),
            deadline_ms: job::unix_ms(now) + 600_000,
            reply: subjects::results_subject("power"),
            op: contracts::op::ResizeOp::parse_canonical("w=320&h=320&format=webp&quality=70").expect("a canonical op"),
            input: contracts::format::ImageFormat::Jpeg,
            enqueued_us: job::unix_us(now) + i as u64,
            traceparent: None,
            tenant: "chaos-a".into(),
            key_id: "power".into(),
            staged: Some(staged),
        };
        Acked { seq: 0, id: request_id, headers: job.to_headers(), payload: Bytes::new() }
    });
    publish(js, subjects::JOBS_SUBJECT, jobs.collect()).await
}

/// Records as a worker publishes them (`Nats-Msg-Id` = request id).
async fn write_usage(js: &jetstream::Context) -> anyhow::Result<Vec<Acked>> {
    let now = job::unix_ms(SystemTime::now());
    let records = (0..USAGE_RECORDS).map(|i| {
        let request_id = format!("power-usage-{i:06}");
        let record = UsageRecord {
            v: RECORD_VERSION,
            request_id: request_id.clone(),
            tenant: "chaos-a".into(),
            key_id: "power".into(),
            received_ms: now,
            finished_ms: now + 40,
            status: 200,
            problem: None,
            bytes_in: 250_000 + i as u64,
            bytes_out: 20_000,
            pixels_in: 12_000_000,
            pixels_out: 102_400,
            format_in: Some(contracts::format::ImageFormat::Jpeg),
            format_out: Some(contracts::format::ImageFormat::Webp),
            cpu_us: 30_000,
            queue_us: 1_000,
            latency_us: 40_000,
            source: Source::Worker,
        };
        let mut headers = HeaderMap::new();
        headers.insert(job::H_MSG_ID, request_id.as_str());
        Acked { seq: 0, id: request_id, headers, payload: record.encode().into() }
    });
    publish(js, usage::USAGE_SUBJECT, records.collect()).await
}

/// Tenant records put into IDENTITY through the management plane's store.
async fn write_identity(store: &::identity::store::Store) -> anyhow::Result<Vec<Acked>> {
    let now = job::unix_ms(SystemTime::now());
    let puts: Vec<Acked> = (0..IDENTITY_PUTS)
        .map(|i| {
            let id = format!("power-{i:04}");
            let record = TenantRecord {
                v: ident::records::RECORD_VERSION,
                id: id.clone(),
                name: id.clone(),
                disabled: false,
                rate: Default::default(),
                quota: Default::default(),
                presets: Default::default(),
                cache_control: None,
                created_ms: now,
                updated_ms: now,
            };
            let payload = serde_json::to_vec(&record).expect("records serialise").into();
            Acked { seq: 0, id: Entry::Tenant(id).kv_key(), headers: HeaderMap::new(), payload }
        })
        .collect();
    let kv = store.kv();
    let mut acked = Vec::new();
    for window in puts.chunks(WINDOW) {
        let writes = window.iter().map(|p| async move { (p, kv.put(p.id.as_str(), p.payload.clone()).await) });
        for (p, revision) in futures::future::join_all(writes).await {
            if let Ok(seq) = revision {
                acked.push(Acked { seq, ..p.clone() });
            }
        }
    }
    Ok(acked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(durable: bool, lost: [usize; 3], dropped: u64) -> PowerLoss {
        let names = [subjects::JOBS_STREAM, usage::USAGE_STREAM, ident::STREAM];
        PowerLoss {
            durable,
            streams: names
                .iter()
                .zip(lost)
                .map(|(n, lost)| StreamLoss { stream: n, acked: 100, lost, fate: Fate::Back })
                .collect(),
            dropped: vec![dropped, 0, 0],
            recovered_after: Some(Duration::from_secs(3)),
        }
    }

    #[test]
    fn a_durable_run_may_lose_nothing_acknowledged() {
        assert!(run(true, [0, 0, 0], 0).violations().is_empty());
        assert!(run(true, [0, 0, 0], 4096).violations().is_empty(), "dropping unsynced data is no loss");
        let v = run(true, [0, 1, 0], 4096).violations();
        assert_eq!(v.len(), 1);
        assert!(v[0].starts_with("USAGE: 1 of 100"), "{v:?}");
        let mut gone = run(true, [0, 0, 100], 0);
        gone.streams[2].fate = Fate::Gone;
        assert!(gone.violations()[0].contains("(stream gone)"), "{:?}", gone.violations());
    }

    #[test]
    fn the_control_must_lose_something() {
        assert!(run(false, [100, 100, 100], 1 << 20).violations().is_empty());
        assert!(run(false, [0, 3, 0], 1 << 20).violations().is_empty());
        assert_eq!(run(false, [0, 0, 0], 0).violations(), ["lazyfs dropped nothing: the check proves nothing"]);
        let v = run(false, [0, 0, 0], 1 << 20).violations();
        assert!(v.len() == 1 && v[0].contains("proves nothing"), "{v:?}");
    }

    #[test]
    fn a_stream_without_acknowledged_writes_was_not_checked() {
        for durable in [true, false] {
            let mut r = run(durable, [0, 5, 0], 1 << 20);
            r.streams[0].acked = 0;
            assert!(r.violations().iter().any(|v| v.starts_with("JOBS: no write acknowledged")), "{durable}");
        }
    }
}
