//! The usage side of the harness: the aggregator as a process, and reading
//! what is really in USAGE.

use async_nats::jetstream::{self, consumer::pull::OrderedConfig};
use contracts::usage::{UsageRecord, streams};
use futures::StreamExt;
use std::{collections::HashSet, process::Child, time::Duration};

/// A usage-aggregator process.
pub struct Aggregator {
    child: Child,
    pub base: String,
}

impl Aggregator {
    /// Starts `usage-aggregator` on a free port against `nats_url`, with extra flags.
    pub fn spawn(nats_url: &str, admin_token: &str, extra: &[&str]) -> anyhow::Result<Self> {
        Self::launch(nats_url, admin_token, extra, &crate::procs::Launch::default())
    }

    /// [`Aggregator::spawn`] with extra environment and its log in a file.
    pub fn launch(
        nats_url: &str,
        admin_token: &str,
        extra: &[&str],
        launch: &crate::procs::Launch,
    ) -> anyhow::Result<Self> {
        let mut args = vec!["--nats-url", nats_url, "--listen", "127.0.0.1:0", "--admin-token", admin_token];
        args.extend_from_slice(extra);
        let (child, base) = crate::procs::launch_listening("usage-aggregator", &args, "USAGE_LOG", launch)?;
        Ok(Self { child, base })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Every record in USAGE (a batch holds several): the valid records and the number of undecodable messages.
///
/// Right after a node is killed the cluster may still be electing a meta or
/// stream leader, and a read started then stalls: each stalled or failed read is
/// started again, for up to a minute.
pub async fn stored_records(client: &async_nats::Client) -> anyhow::Result<(Vec<UsageRecord>, usize)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match read_all(client).await {
            Ok(read) => return Ok(read),
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("reading USAGE: {e}; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn read_all(client: &async_nats::Client) -> anyhow::Result<(Vec<UsageRecord>, usize)> {
    let js = jetstream::new(client.clone());
    let mut stream = js.get_stream(streams::USAGE_STREAM).await?;
    let total = stream.info().await?.state.messages;
    let mut records = Vec::new();
    let mut bad = 0;
    if total == 0 {
        return Ok((records, 0));
    }
    let consumer = stream.create_consumer(OrderedConfig::default()).await?;
    let mut messages = consumer.messages().await?;
    while let Some(m) = tokio::time::timeout(Duration::from_secs(5), messages.next()).await? {
        let m = m.map_err(|e| anyhow::anyhow!(e))?;
        match contracts::usage::records_of(&m.payload) {
            Ok(rs) => records.extend(rs),
            Err(_) => bad += 1,
        }
        if m.info().map_err(|e| anyhow::anyhow!(e))?.pending == 0 {
            break;
        }
    }
    Ok((records, bad))
}

/// Distinct request ids among `records`.
pub fn distinct(records: &[UsageRecord]) -> usize {
    records.iter().map(|r| r.request_id.as_str()).collect::<HashSet<_>>().len()
}

/// `base?k=v&…` with the values percent-encoded as far as a query needs.
/// `agg`'s usage of `tenant` for today (UTC), by day.
pub fn today(agg: &Aggregator, tenant: &str) -> String {
    let day = |d: u64| contracts::usage::calendar::day_name(contracts::job::unix_ms(std::time::SystemTime::now()) + d);
    with_query(
        &agg.url("/v1/usage"),
        &[("from", &day(0)), ("to", &day(86_400_000)), ("window", "day"), ("tenant", tenant)],
    )
}

pub fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let enc = |v: &str| v.replace('%', "%25").replace('+', "%2B").replace('&', "%26").replace(' ', "%20");
    let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
    format!("{base}?{}", q.join("&"))
}
