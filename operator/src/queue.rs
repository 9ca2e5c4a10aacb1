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
    /// Round trip of the stream-info requests (the slower of a sample's two),
    /// which the leader answers: the brownout signal.
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

/// How the operator proves itself to one fleet's NATS: its role's seed, and
/// the fleet's CA when the servers speak TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueAccess {
    pub nkey_seed: String,
    pub ca_pem: Option<String>,
}

pub trait Queue: Send + Sync + 'static {
    /// Sets the credentials for `url`'s connection (before it is first used, and
    /// again after a rotation, which replaces the kept connection).
    fn authorize(&self, _url: &str, _access: QueueAccess) {}

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
    /// Credentials per fleet URL, set by each round from the fleet's Secret; same locking rule.
    access: Mutex<HashMap<String, QueueAccess>>,
}

impl NatsQueue {
    pub fn new(connect_timeout: Duration) -> Self {
        Self { connect_timeout, connections: Mutex::default(), access: Mutex::default() }
    }

    async fn client(&self, url: &str) -> Result<async_nats::Client, QueueError> {
        let kept = self.connections.lock().unwrap_or_else(|e| e.into_inner()).get(url).cloned();
        if let Some(c) = kept.filter(|c| c.connection_state() == async_nats::connection::State::Connected) {
            return Ok(c);
        }
        let access = self.access.lock().unwrap_or_else(|e| e.into_inner()).get(url).cloned();
        let unreachable = |reason: String| QueueError::Unreachable { url: url.to_owned(), reason };
        let client = options(access.as_ref())
            .map_err(unreachable)?
            .connection_timeout(self.connect_timeout)
            .connect(url)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        self.connections.lock().unwrap_or_else(|e| e.into_inner()).insert(url.to_owned(), client.clone());
        Ok(client)
    }

    /// Fleets whose connection is kept (for tests and metrics).
    pub fn kept_connections(&self) -> usize {
        self.connections.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Connect options as the operator's NATS user, over TLS with the fleet's CA when it has one.
fn options(access: Option<&QueueAccess>) -> Result<async_nats::ConnectOptions, String> {
    let mut opts = contracts::connect::role_options(contracts::access::Role::Operator, Default::default());
    let Some(access) = access else { return Ok(opts) };
    opts = opts.nkey(access.nkey_seed.clone());
    if let Some(pem) = &access.ca_pem {
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.map_err(|e| format!("the fleet's CA: {e}"))?).map_err(|e| format!("the fleet's CA: {e}"))?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        opts = opts.tls_client_config(config).require_tls(true);
    }
    Ok(opts)
}

impl Queue for NatsQueue {
    fn authorize(&self, url: &str, access: QueueAccess) {
        let mut known = self.access.lock().unwrap_or_else(|e| e.into_inner());
        if known.get(url) != Some(&access) {
            known.insert(url.to_owned(), access);
            // The kept connection used the old credentials.
            self.connections.lock().unwrap_or_else(|e| e.into_inner()).remove(url);
        }
    }

    fn observe<'a>(&'a self, url: &'a str, replicas: usize) -> BoxFuture<'a, Result<QueueSample, QueueError>> {
        Box::pin(async move {
            let unreachable = |reason: String| QueueError::Unreachable { url: url.to_owned(), reason };
            let js = jetstream::new(self.client(url).await?);
            let js_err = |e: &dyn std::fmt::Display| QueueError::JetStream(e.to_string());
            let asked = std::time::Instant::now();
            let mut stream = tokio::time::timeout(self.connect_timeout, js.get_or_create_stream(jobs_stream(replicas)))
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .map_err(|e| js_err(&e))?;
            let first = asked.elapsed();
            let asked = std::time::Instant::now();
            let info = stream.info().await.map_err(|e| js_err(&e))?.clone();
            // The slower of the two round trips: a leader that runs in bursts
            // answers the second request in the same burst as the first, so
            // the second alone would always look fast.
            let info_latency_ms = first.max(asked.elapsed()).as_millis() as u64;
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
