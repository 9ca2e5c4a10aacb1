//! Answering verification requests: core NATS request/reply on
//! `identity.verify`, one queue group across all auth-cache replicas, so
//! api-servers need no address of their own and no replica gets more than
//! its share. A replica joins the group only once its snapshot is loaded:
//! before that it could only say "unknown key" to keys that exist.

use crate::{
    metrics::{Metrics, VerdictLabel},
    state::Shared,
};
use contracts::identity::{self, Refusal, Verdict, VerifyRequest};
use futures::StreamExt;
use std::{sync::Arc, time::Instant};

pub async fn serve(
    client: async_nats::Client,
    shared: Arc<Shared>,
    metrics: Metrics,
    tasks: usize,
) -> anyhow::Result<()> {
    shared.wait_loaded().await;
    let mut set = tokio::task::JoinSet::new();
    // The queue group shares the requests among the tasks and the other
    // auth-caches; the hedge subject reaches this process once, on one more task.
    let mut subs = Vec::new();
    for _ in 0..tasks.max(1) {
        subs.push(client.queue_subscribe(identity::VERIFY_SUBJECT, identity::VERIFY_QUEUE_GROUP.to_owned()).await?);
    }
    subs.push(client.subscribe(identity::VERIFY_EVERY_SUBJECT).await?);
    // A subscription is live once the server has read it, not once it is
    // written: a round trip sent after them (the server handles one
    // connection's messages in order) proves they are. Only then does this
    // replica say it answers; without JetStream to answer the round trip the
    // subscriptions are taken as live after it timed out.
    if let Err(e) = client.request(contracts::subjects::ACCOUNT_INFO, bytes::Bytes::new()).await {
        tracing::warn!(error = %e, "could not confirm the verify subscriptions with a round trip");
    }
    shared.now_answering();
    for mut sub in subs {
        let (client, shared, metrics) = (client.clone(), shared.clone(), metrics.clone());
        set.spawn(async move {
            while let Some(msg) = sub.next().await {
                let Some(reply) = msg.reply else { continue };
                let header = |name| msg.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str());
                let span = tracing::info_span!(
                    "verify",
                    otel.kind = "server",
                    request_id = header(telemetry::REQUEST_ID_HEADER),
                    tenant = tracing::field::Empty,
                    trace_id = tracing::field::Empty,
                );
                telemetry::trace::continue_trace(&span, header(contracts::job::H_TRACEPARENT));
                let answer = span.in_scope(|| answer(&shared, &metrics, &msg.payload));
                let _ = client.publish(reply, answer.into()).await;
            }
        });
    }
    tracing::info!(tasks, subject = identity::VERIFY_SUBJECT, "answering verification requests");
    while set.join_next().await.is_some() {}
    Ok(())
}

/// Decides one request payload and renders the answer.
pub fn answer(shared: &Shared, metrics: &Metrics, payload: &[u8]) -> Vec<u8> {
    let started = Instant::now();
    let verdict = match serde_json::from_slice::<VerifyRequest>(payload) {
        Ok(req) => {
            let month = contracts::usage::calendar::month_name(contracts::job::unix_ms(std::time::SystemTime::now()));
            shared.replica().verify(&req, &month, started)
        }
        Err(e) => {
            Verdict::Refused { reason: Refusal::BadSignature, detail: format!("unreadable verification request: {e}") }
        }
    };
    let label = match &verdict {
        Verdict::Allowed { tenant, key_id, .. } => {
            tracing::Span::current().record("tenant", tenant.as_str());
            tracing::debug!(%key_id, "allowed");
            "allowed".to_owned()
        }
        Verdict::Refused { reason, detail } => {
            let reason = serde_json::to_value(reason).ok().and_then(|v| v.as_str().map(str::to_owned));
            let reason = reason.unwrap_or_default();
            // Refusals are rarer and someone may be asking why: worth a line at the default level.
            tracing::info!(%reason, %detail, "refused");
            reason
        }
    };
    metrics.verifications.get_or_create(&VerdictLabel { verdict: label }).inc();
    metrics.verify_seconds.observe(started.elapsed().as_secs_f64());
    serde_json::to_vec(&verdict).expect("verdicts serialise")
}
