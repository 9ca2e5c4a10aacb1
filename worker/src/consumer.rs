//! The job loop: one pull slot per core, FIFO from the shared consumer, deadline
//! check, resize on a blocking thread, usage record, answer, then ack.
//!
//! Each slot pulls exactly one message at a time, so a busy worker never holds
//! jobs it is not working on: they stay in the stream for idle workers, which
//! keeps the queue FIFO across the fleet and makes queue depth an honest
//! scaling signal.

use crate::{
    config::Config,
    metrics::{Metrics, OutcomeLabel, ResultLabel},
    pull::{self, Puller},
    resize::{self, Limits},
    staged::{FetchError, Peers},
    usage,
};
use anyhow::Context as _;
use async_nats::jetstream::{self, AckKind, consumer};
use contracts::clock::FleetClock;
use contracts::{
    Job, Outcome, ProblemKind,
    outcome::{OutcomeHeaders, STATUS_OK},
    subjects,
    usage::streams as usage_streams,
};
use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant, UNIX_EPOCH},
};
use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

/// Connects, makes sure the stream and consumer exist, and processes jobs until `shutdown` resolves.
/// Jobs in progress at shutdown are finished and answered before this returns.
pub async fn run(cfg: Config, metrics: Metrics, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let creds = &cfg.nats_credentials;
    let client = contracts::connect::options(contracts::access::Role::Worker, creds, metrics.nats_refusals.clone())?
        .retry_on_initial_connect()
        .connect(contracts::servers::server_urls(&cfg.nats_url).as_slice())
        .await
        .context("connecting to NATS")?;
    let js = jetstream::new(client.clone());
    let stream = js
        .get_or_create_stream(subjects::jobs_stream(cfg.stream_replicas))
        .await
        .context("creating the JOBS stream")?;
    // Same replication as JOBS: both live on the same JetStream cluster.
    js.get_or_create_stream(usage_streams::usage_stream(cfg.stream_replicas))
        .await
        .context("creating the USAGE stream")?;
    let consumer_cfg = subjects::workers_consumer(cfg.ack_wait, 1024);
    if stream.get_consumer::<consumer::pull::Config>(subjects::WORKERS_CONSUMER).await.is_err() {
        stream.create_consumer(consumer_cfg).await.context("creating the workers consumer")?;
    }
    let slots = cfg.concurrency();
    info!(slots, nats = %cfg.nats_url, "worker ready");

    let clock = Arc::new(FleetClock::default());
    let info = subjects::consumer_info(subjects::JOBS_STREAM, subjects::WORKERS_CONSUMER);
    tokio::spawn(contracts::clock::keep(clock.clone(), client.clone(), info, metrics.clock_offset.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctx = Ctx {
        clock,
        client: client.clone(),
        js,
        metrics,
        limits: Limits {
            max_pixels: cfg.max_pixels,
            max_frames: cfg.max_frames,
            max_animation_pixels: cfg.max_animation_pixels,
        },
        ack_wait: cfg.ack_wait,
        peers: Peers::new()?,
        max_output: cfg.max_output_bytes,
    };
    let mut tasks = Vec::with_capacity(slots);
    for slot in 0..slots {
        let puller = Puller::new(&ctx.js, &client, subjects::JOBS_STREAM, subjects::WORKERS_CONSUMER)
            .await
            .context("subscribing a slot's inbox")?;
        let (ctx, stop) = (ctx.clone(), stop_rx.clone());
        tasks.push(tokio::spawn(async move { slot_loop(slot, puller, ctx, stop).await }));
    }
    shutdown.await;
    info!("shutting down: finishing jobs in progress");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    // Answers and acks are buffered; give them a moment to leave, but never hang
    // on a server that is already gone.
    let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    Ok(())
}

/// What every slot shares; clones are cheap (handles to the same connections).
#[derive(Clone)]
struct Ctx {
    client: async_nats::Client,
    js: jetstream::Context,
    metrics: Metrics,
    limits: Limits,
    ack_wait: Duration,
    /// Connections to the api-servers that hold staged inputs.
    peers: Peers,
    /// `MAX_OUTPUT_BYTES`.
    max_output: u64,
    /// What deadlines are judged and usage dated by; corrected by a task of its own.
    clock: Arc<FleetClock>,
}

/// How [`handle`] left a job.
enum Settled {
    /// Done and answered: the slot acks it, asking for the next job in the same message.
    ToAck,
    /// Already termed or nak'd: the slot asks for the next job on its own.
    Done,
}

async fn slot_loop(slot: usize, mut puller: Puller, ctx: Ctx, mut stop: watch::Receiver<bool>) {
    // The job the next ask also acks, if any.
    let mut to_ack: Option<Box<jetstream::Message>> = None;
    while !*stop.borrow() {
        let asked = match to_ack.take() {
            Some(done) => puller.ack_and_ask(&done).await,
            None => puller.ask().await,
        };
        if let Err(e) = asked {
            // A lost ack only means a redelivery, which the job's request id makes harmless.
            warn!(slot, error = %e, "asking for a job failed; retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let delivery = tokio::select! {
            d = puller.next() => d,
            _ = stop.changed() => break,
        };
        match delivery {
            pull::Delivery::Job(msg) => {
                if let Settled::ToAck = handle(&msg, &ctx).await {
                    to_ack = Some(msg);
                }
            }
            pull::Delivery::Ask => {}
            pull::Delivery::Refused => {
                tokio::select! {
                    _ = tokio::time::sleep(pull::BACKOFF) => {}
                    _ = stop.changed() => break,
                }
            }
            pull::Delivery::Closed => {
                warn!(slot, "the connection closed; stopping the slot");
                break;
            }
        }
    }
    if let Some(done) = to_ack
        && let Err(e) = done.ack().await
    {
        warn!(error = %e, "ack failed; the job may be redelivered");
    }
    let released = puller.release().await;
    if released > 0 {
        info!(slot, released, "handed back jobs delivered while stopping");
    }
}

async fn handle(msg: &jetstream::Message, ctx: &Ctx) -> Settled {
    let Ctx { client, js, metrics, limits, ack_wait, peers, max_output, clock } = ctx;
    let (limits, ack_wait) = (*limits, *ack_wait);
    let received = clock.now();
    let headers = msg.headers.clone().unwrap_or_default();
    let job = match Job::from_headers(&headers) {
        Ok(j) => j,
        Err(e) => {
            // Nobody can be answered and a retry cannot fix it: drop it for good.
            warn!(error = %e, "malformed job; terminating it");
            metrics.jobs.get_or_create(&OutcomeLabel { outcome: "malformed".into() }).inc();
            let _ = msg.ack_with(AckKind::Term).await;
            return Settled::Done;
        }
    };
    let delivered = msg.info().map_or(1, |i| i.delivered);
    if delivered > 1 {
        metrics.redelivered.inc();
    }
    let queue_us = contracts::job::unix_us(received).saturating_sub(job.enqueued_us);
    // The wait is a span of its own, dated from the api-server's publish to now:
    // next to the processing it shows where a slow request spent its time.
    telemetry::trace::record_interval(
        "queue_wait",
        job.traceparent.as_deref(),
        (UNIX_EPOCH + Duration::from_micros(job.enqueued_us)).min(received),
        received,
        vec![
            telemetry::trace::KeyValue::new("messaging.destination.name", subjects::JOBS_SUBJECT),
            telemetry::trace::KeyValue::new("messaging.nats.delivered", delivered),
        ],
    );
    let span = info_span!(
        "process",
        otel.kind = "consumer",
        request_id = %job.request_id,
        tenant = %job.tenant,
        trace_id = tracing::field::Empty,
        op = %job.op,
    );
    telemetry::trace::continue_trace(&span, job.traceparent.as_deref());
    let queue_ms = queue_us as f64 / 1000.0;
    if job.expired_at(received) {
        // The api-server has already answered 503; doing the work would only delay live jobs.
        metrics.expired.inc();
        span.in_scope(|| info!(queue_ms, "job expired in the queue; dropped"));
        let _ = msg.ack_with(AckKind::Term).await;
        return Settled::Done;
    }
    async {
        metrics.queue_wait.observe(queue_us as f64 / 1e6);
        // The input: in the message, or fetched from the api-server that staged it.
        let payload = match &job.staged {
            None => Ok(msg.payload.clone()),
            Some(staged) => {
                let fetching = Instant::now();
                let fetched = peers.fetch(staged, job.remaining_at(clock.now())).instrument(info_span!("fetch_input", otel.kind = "client")).await;
                metrics.fetch.observe(fetching.elapsed().as_secs_f64());
                let result = fetched.as_ref().map_or_else(FetchError::label, |_| "ok");
                metrics.staged_fetches.get_or_create(&ResultLabel { result: result.into() }).inc();
                fetched
            }
        };
        let payload = match payload {
            Ok(p) => Ok(p),
            Err(e @ (FetchError::Gone(_) | FetchError::Unreachable(_))) => {
                // Nobody waits, or nobody can be answered over HTTP: the work would be
                // wasted. The usage record says why the job ended; if the api-server
                // metered the request itself (a deadline), the record's request id makes
                // USAGE keep only one of the two.
                info!(error = %e, "the input could not be fetched; dropped");
                if let FetchError::Unreachable(why) = &e {
                    // An api-server that is alive but unreachable (a partition, a wrong
                    // PEER_ADVERTISE) still hears NATS: tell it now rather than let its
                    // client wait out the deadline.
                    let answer = OutcomeHeaders {
                        request_id: job.request_id.clone(),
                        outcome: Outcome::Failed {
                            kind: ProblemKind::QueueUnavailable,
                            detail: format!("a worker could not fetch the image from this api-server: {why}"),
                        },
                        queue_us,
                        process_us: 0,
                    };
                    let _ = client.publish_with_headers(job.reply.clone(), answer.to_headers(), Vec::new().into()).await;
                }
                let outcome = Outcome::Failed { kind: ProblemKind::ClientGone, detail: e.to_string() };
                let measured = usage::Measured {
                    finished_us: contracts::job::unix_us(clock.now()),
                    bytes_in: 0,
                    bytes_out: 0,
                    pixels_in: 0,
                    cpu_us: 0,
                    queue_us,
                };
                if let Err(e) = publish_usage(js, &usage::record(&job, &outcome, measured)).await {
                    warn!(error = %e, "publishing the usage record failed; leaving the job for redelivery");
                    let _ = msg.ack_with(AckKind::Nak(Some(Duration::from_millis(500)))).await;
                    return Settled::Done;
                }
                let _ = msg.ack_with(AckKind::Term).await;
                metrics.jobs.get_or_create(&OutcomeLabel { outcome: ProblemKind::ClientGone.slug().into() }).inc();
                return Settled::Done;
            }
            Err(FetchError::Transport(why)) => {
                warn!(%why, "fetching the staged input failed; leaving the job for redelivery");
                let _ = msg.ack_with(AckKind::Nak(Some(Duration::from_millis(200)))).await;
                return Settled::Done;
            }
            // Not the bytes the job names: never resize them; the request gets a 500.
            Err(e @ FetchError::Mismatch(_)) => {
                tracing::error!(error = %e, "staged input refused");
                Err(e.to_string())
            }
        };
        metrics.in_flight.inc();
        let started = Instant::now();
        let bytes_in = payload.as_ref().map_or(0, |p| p.len() as u64);
        let op = job.op;
        let current = tracing::Span::current();
        let work = tokio::task::spawn_blocking(move || {
            let _in = current.enter();
            let cpu = usage::thread_cpu_us();
            let result = payload.map(|p| resize::resize(&p, &op, &limits));
            (result, usage::thread_cpu_us().saturating_sub(cpu))
        });
        tokio::pin!(work);
        // Progress acks keep a long job (a 24 MP PNG) from being redelivered while still running.
        let mut progress = tokio::time::interval(ack_wait / 3);
        progress.tick().await;
        let (result, cpu_us) = loop {
            tokio::select! {
                r = &mut work => break match r { Ok((r, cpu)) => (Ok(r), cpu), Err(e) => (Err(e), 0) },
                _ = progress.tick() => { let _ = msg.ack_with(AckKind::Progress).await; }
            }
        };
        let process_us = started.elapsed().as_micros() as u64;
        metrics.process.observe(process_us as f64 / 1e6);
        metrics.in_flight.dec();
        let max_body = match &job.staged {
            Some(_) => *max_output,
            // Inline answers travel as one NATS message.
            None => (*max_output).min(client.server_info().max_payload.saturating_sub(subjects::HEADER_ALLOWANCE) as u64),
        } as usize;
        let pixels_in = result.as_ref().ok().and_then(|r| r.as_ref().ok()).and_then(|r| r.as_ref().ok()).map_or(0, |r| r.input_pixels);
        let (outcome, body) = match result {
            Ok(Ok(Ok(r))) if r.bytes.len() > max_body => (
                Outcome::Failed {
                    kind: ProblemKind::OutputTooLarge,
                    detail: format!(
                        "the {}×{} {} result is {} bytes, over the limit of {max_body}; ask for smaller dimensions or a compressed format",
                        r.rendered.width,
                        r.rendered.height,
                        r.rendered.format.name(),
                        r.bytes.len()
                    ),
                },
                Vec::new(),
            ),
            Ok(Ok(Ok(r))) => (Outcome::Ok(r.rendered), r.bytes),
            Ok(Ok(Err(e))) => (
                Outcome::Failed {
                    kind: e.kind(),
                    detail: e.to_string(),
                },
                Vec::new(),
            ),
            Ok(Err(refused)) => (Outcome::Failed { kind: ProblemKind::Internal, detail: refused }, Vec::new()),
            Err(join) => (
                Outcome::Failed {
                    kind: contracts::ProblemKind::Internal,
                    detail: format!("resize task failed: {join}"),
                },
                Vec::new(),
            ),
        };
        let label = match &outcome {
            Outcome::Ok(_) => STATUS_OK.to_owned(),
            Outcome::Failed { kind, .. } => kind.slug().to_owned(),
        };
        let measured = usage::Measured {
            finished_us: contracts::job::unix_us(clock.now()),
            bytes_in,
            bytes_out: body.len() as u64,
            pixels_in,
            cpu_us,
            queue_us,
        };
        // Usage record first, then the answer, then the ack. A crash after the
        // record redoes the job and republishes the record under the same
        // `Nats-Msg-Id`, which USAGE drops; had the answer gone first, a crash
        // followed by an expired redelivery would leave an answered request unmetered.
        let record = usage::record(&job, &outcome, measured);
        let answer = OutcomeHeaders {
            request_id: job.request_id.clone(),
            outcome,
            queue_us,
            process_us,
        };
        if let Err(e) = publish_usage(js, &record).await {
            warn!(error = %e, "publishing the usage record failed; leaving the job for redelivery");
            let _ = msg.ack_with(AckKind::Nak(Some(Duration::from_millis(500)))).await;
            return Settled::Done;
        }
        // Answer before the ack: a crash in between redelivers the job, and the
        // api-server ignores a second answer for a request it already served.
        match &job.staged {
            Some(staged) => {
                let left = job.remaining_at(clock.now()).max(Duration::from_secs(1));
                match peers.answer(staged, &answer, body, left).await {
                    Ok(true) => {}
                    // The request ended meanwhile; the api-server metered it itself.
                    Ok(false) => info!("the request ended before its answer arrived"),
                    // Whoever held the connection is gone with it: nobody to answer, nothing to retry.
                    Err(e) => warn!(error = %e, "posting the answer failed; the request is lost with its api-server"),
                }
            }
            None => {
                if let Err(e) = client.publish_with_headers(job.reply.clone(), answer.to_headers(), body.into()).await {
                    warn!(error = %e, "publishing the result failed; leaving the job for redelivery");
                    let _ = msg.ack_with(AckKind::Nak(Some(Duration::from_millis(100)))).await;
                    return Settled::Done;
                }
            }
        }
        info!(outcome = %label, queue_ms, process_ms = process_us as f64 / 1000.0, "job finished");
        metrics
            .jobs
            .get_or_create(&OutcomeLabel { outcome: label })
            .inc();
        Settled::ToAck
    }
    .instrument(span)
    .await
}

/// Publishes a job's usage record, deduplicated by its request id.
async fn publish_usage(js: &jetstream::Context, record: &contracts::usage::UsageRecord) -> anyhow::Result<()> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(contracts::job::H_MSG_ID, record.request_id.as_str());
    let span = info_span!("publish_usage", otel.kind = "producer");
    // The aggregator's log lines about this record can then name the trace.
    if let Some(tp) = telemetry::trace::traceparent(&span) {
        headers.insert(contracts::job::H_TRACEPARENT, tp.as_str());
    }
    async { js.publish_with_headers(usage_streams::USAGE_SUBJECT, headers, record.encode().into()).await?.await }
        .instrument(span)
        .await?;
    Ok(())
}
