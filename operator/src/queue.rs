//! What the operator reads from (and ensures in) the JetStream cluster,
//! behind a trait so the scaling decision can be driven by canned
//! observations in tests.

use async_nats::jetstream::{self, consumer::pull};
use contracts::subjects::{JOBS_STREAM, WORKERS_CONSUMER, jobs_stream};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use thiserror::Error;

/// One reading of the JOBS stream and the workers consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSample {
    /// Server name of the JOBS stream's raft leader.
    pub leader: Option<String>,
    pub num_pending: u64,
    pub num_ack_pending: u64,
    /// Last stream sequence: two readings give the arrival rate.
    pub last_sequence: u64,
    /// Round trip of the stream-info request, which the leader answers: the brownout signal.
    pub info_latency_ms: u64,
    /// Followers that are caught up and could take over leadership.
    pub current_followers: u32,
}

#[derive(Debug, Error)]
pub enum QueueError {
    #[error("cannot reach NATS at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("JetStream: {0}")]
    JetStream(String),
}

pub trait Queue: Send + Sync + 'static {
    /// Ensures the JOBS stream exists with `replicas` copies and reads its load.
    fn observe<'a>(&'a self, url: &'a str, replicas: usize) -> BoxFuture<'a, Result<QueueSample, QueueError>>;

    /// Asks the JOBS stream's leader to hand leadership to a follower.
    fn step_down<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<(), QueueError>>;
}

/// The real cluster, over async-nats.
pub struct NatsQueue {
    /// A reconcile must not hang on a dead cluster: it reports QueueHealthy=False instead.
    connect_timeout: Duration,
    /// One connection per fleet, kept between rounds: a reading every 15 s must not
    /// cost a TCP handshake, a NATS handshake and a goodbye each time. Locked only to
    /// look up or insert (never across an await); a connection that is not connected
    /// any more is replaced by a fresh one on the next round.
    connections: Mutex<HashMap<String, async_nats::Client>>,
}

impl NatsQueue {
    pub fn new(connect_timeout: Duration) -> Self {
        Self { connect_timeout, connections: Mutex::default() }
    }

    async fn client(&self, url: &str) -> Result<async_nats::Client, QueueError> {
        let kept = self.connections.lock().unwrap_or_else(|e| e.into_inner()).get(url).cloned();
        if let Some(c) = kept.filter(|c| c.connection_state() == async_nats::connection::State::Connected) {
            return Ok(c);
        }
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(self.connect_timeout)
            .connect(url)
            .await
            .map_err(|e| QueueError::Unreachable { url: url.to_owned(), reason: e.to_string() })?;
        self.connections.lock().unwrap_or_else(|e| e.into_inner()).insert(url.to_owned(), client.clone());
        Ok(client)
    }

    /// Fleets whose connection is kept (for tests and metrics).
    pub fn kept_connections(&self) -> usize {
        self.connections.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Queue for NatsQueue {
    fn observe<'a>(&'a self, url: &'a str, replicas: usize) -> BoxFuture<'a, Result<QueueSample, QueueError>> {
        Box::pin(async move {
            let unreachable = |reason: String| QueueError::Unreachable { url: url.to_owned(), reason };
            let js = jetstream::new(self.client(url).await?);
            let js_err = |e: &dyn std::fmt::Display| QueueError::JetStream(e.to_string());
            let mut stream = tokio::time::timeout(self.connect_timeout, js.get_or_create_stream(jobs_stream(replicas)))
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .map_err(|e| js_err(&e))?;
            let asked = std::time::Instant::now();
            let info = stream.info().await.map_err(|e| js_err(&e))?.clone();
            let info_latency_ms = asked.elapsed().as_millis() as u64;
            let current_followers = info
                .cluster
                .as_ref()
                .map_or(0, |c| c.replicas.iter().filter(|p| p.current && !p.offline).count() as u32);
            // The workers create their consumer; until they have, everything in the stream is backlog.
            let (num_pending, num_ack_pending) = match stream.get_consumer::<pull::Config>(WORKERS_CONSUMER).await {
                Ok(mut consumer) => {
                    let ci = consumer.info().await.map_err(|e| js_err(&e))?;
                    (ci.num_pending, ci.num_ack_pending as u64)
                }
                Err(_) => (info.state.messages, 0),
            };
            debug_assert_eq!(info.config.name, JOBS_STREAM);
            Ok(QueueSample {
                leader: info.cluster.and_then(|c| c.leader),
                num_pending,
                num_ack_pending,
                last_sequence: info.state.last_sequence,
                info_latency_ms,
                current_followers,
            })
        })
    }

    fn step_down<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(async move {
            let js = jetstream::new(self.client(url).await?);
            let subject = format!("STREAM.LEADER.STEPDOWN.{JOBS_STREAM}");
            let reply: serde_json::Value = tokio::time::timeout(self.connect_timeout, js.request(subject, &()))
                .await
                .map_err(|e| QueueError::JetStream(e.to_string()))?
                .map_err(|e| QueueError::JetStream(e.to_string()))?;
            match reply.get("error") {
                Some(err) => Err(QueueError::JetStream(err.to_string())),
                None => Ok(()),
            }
        })
    }
}
