//! The api-server's side of the job queue: publish to JetStream, wait for the
//! worker's answer on this instance's own results subject.

use crate::{metrics::Metrics, problem::Problem};
use async_nats::{Client, jetstream};
use bytes::Bytes;
use contracts::{Job, ProblemKind, access::Role, outcome::OutcomeHeaders, subjects};
use futures::StreamExt;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::oneshot;
use tracing::{Instrument, debug, info_span, warn};

/// A worker's answer: outcome headers plus the image bytes (empty on failure).
pub struct Answer {
    pub headers: OutcomeHeaders,
    pub body: Bytes,
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Answer>>>>;

/// Publishes jobs and routes answers back to the request that waits for them.
#[derive(Clone)]
pub struct Queue {
    client: Client,
    js: jetstream::Context,
    reply_subject: String,
    /// Requests waiting for their answer, by request id. Inserted by the
    /// request's handler, removed by whoever delivers the answer or by the
    /// handler's guard when it stops waiting.
    waiters: Waiters,
    metrics: Metrics,
}

/// Removes the waiter when the request ends for any reason (answer, timeout, client gone).
struct WaiterGuard<'a> {
    waiters: &'a Waiters,
    id: &'a str,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut w) = self.waiters.lock() {
            w.remove(self.id);
        }
    }
}

impl Queue {
    /// Connects, creates the JOBS stream if missing and starts routing answers.
    pub async fn connect(
        nats_url: &str,
        creds: &contracts::connect::Credentials,
        replicas: usize,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let client = contracts::connect::options(Role::ApiServer, creds, metrics.nats_refusals.clone())?
            .retry_on_initial_connect()
            .connect(contracts::servers::server_urls(nats_url).as_slice())
            .await?;
        let js = jetstream::new(client.clone());
        if let Err(e) = js.get_or_create_stream(subjects::jobs_stream(replicas)).await {
            // Not fatal: readiness reports it and requests get 503 until JetStream is back.
            warn!(error = %e, "JOBS stream not available yet");
        }
        let instance = uuid::Uuid::now_v7().simple().to_string();
        let reply_subject = subjects::results_subject(&instance);
        let waiters: Waiters = Arc::default();
        let mut sub = client.subscribe(reply_subject.clone()).await?;
        let queue = Self { client, js, reply_subject, waiters, metrics };
        let routes = queue.clone();
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let Some(headers) = msg.headers.as_ref() else {
                    continue;
                };
                match OutcomeHeaders::from_headers(headers) {
                    Ok(h) => {
                        routes.deliver(Answer { headers: h, body: msg.payload });
                    }
                    Err(e) => warn!(error = %e, "malformed answer from a worker"),
                }
            }
        });
        Ok(queue)
    }

    /// Hands a worker's answer to the request waiting for it; `false` when none waits.
    pub fn deliver(&self, answer: Answer) -> bool {
        let waiter = self.waiters.lock().ok().and_then(|mut w| w.remove(&answer.headers.request_id));
        match waiter {
            Some(tx) => tx.send(answer).is_ok(),
            None => {
                // Redelivered job answered twice, or the request already timed out.
                debug!(request_id = %answer.headers.request_id, "answer without a waiting request");
                self.metrics.late_results.inc();
                false
            }
        }
    }

    /// The connection, for core NATS requests (verifications).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn jetstream(&self) -> jetstream::Context {
        self.js.clone()
    }

    pub fn reply_subject(&self) -> &str {
        &self.reply_subject
    }

    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Whether JetStream answers (the JOBS stream is reachable), within `timeout`.
    pub async fn is_ready(&self, timeout: Duration) -> bool {
        self.is_connected()
            && tokio::time::timeout(timeout, self.js.get_stream(subjects::JOBS_STREAM)).await.is_ok_and(|r| r.is_ok())
    }

    /// Publishes `job` and waits for its answer until `timeout` (the job's
    /// deadline). `body` is the message payload: the image for an inline job,
    /// empty for a staged one.
    pub async fn submit(&self, job: &Job, body: Bytes, timeout: Duration) -> Result<Answer, Problem> {
        if !self.is_connected() {
            return Err(Problem::new(ProblemKind::QueueUnavailable, "the job queue is not reachable"));
        }
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .map_err(|_| Problem::new(ProblemKind::Internal, "waiter table poisoned"))?
            .insert(job.request_id.clone(), tx);
        let _guard = WaiterGuard { waiters: &self.waiters, id: &job.request_id };
        let deadline = tokio::time::Instant::now() + timeout;

        let unavailable = |e: &dyn std::fmt::Display| {
            Problem::new(ProblemKind::QueueUnavailable, format!("publishing the job failed: {e}"))
        };
        // The publish until JetStream's ack; the worker's queue wait starts here.
        let publish = info_span!(
            "publish",
            otel.kind = "producer",
            messaging.system = "nats",
            messaging.destination.name = subjects::JOBS_SUBJECT,
            otel.status_code = tracing::field::Empty,
        );
        let ack = tokio::time::timeout_at(deadline, async {
            self.js
                .publish_with_headers(subjects::JOBS_SUBJECT, job.to_headers(), body)
                .await
                .map_err(|e| unavailable(&e))?
                .await
                .map_err(|e| unavailable(&e))
        })
        .instrument(publish.clone())
        .await
        .map_err(|_| Problem::new(ProblemKind::QueueUnavailable, "JetStream did not acknowledge the job in time"))
        .flatten()
        .inspect_err(|_| {
            publish.record("otel.status_code", "error");
        })?;
        publish.in_scope(|| debug!(seq = ack.sequence, duplicate = ack.duplicate, "job queued"));
        drop(publish);

        let waiting = info_span!("await_result");
        match tokio::time::timeout_at(deadline, rx).instrument(waiting).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(Problem::new(ProblemKind::Internal, "answer channel closed")),
            Err(_) => Err(Problem::new(
                ProblemKind::DeadlineExceeded,
                format!("no worker finished the job within {} ms", timeout.as_millis()),
            )),
        }
    }
}
