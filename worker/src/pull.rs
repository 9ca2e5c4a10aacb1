//! One slot's pull from the workers consumer, one job at a time.
//!
//! A slot keeps one subscription for its whole life and asks for each job on
//! it. The ack of a finished job asks for the next one in the same message
//! (JetStream's `+NXT`), so beyond the job itself a job costs one message to
//! the server instead of three (ack, pull request, and the subscribe and
//! unsubscribe of a fresh inbox per pull), and the server does one wakeup
//! fewer per job. The request still asks for one message: a busy slot never
//! holds a job an idle worker could take.

use async_nats::{Client, StatusCode, Subject, Subscriber, jetstream};
use bytes::Bytes;
use futures::StreamExt;
use std::time::Duration;

/// How long one request waits on the server for a job before it expires.
pub const EXPIRES: Duration = Duration::from_secs(5);

/// How long a slot waits before asking again after a refusal.
pub const BACKOFF: Duration = Duration::from_millis(200);

/// Past [`EXPIRES`], how long a slot waits for the server's own "expired"
/// before it asks again (a request lost with a consumer leader that died).
const GRACE: Duration = Duration::from_secs(2);

/// What waiting for the next delivery gave.
pub enum Delivery {
    /// A job.
    Job(Box<jetstream::Message>),
    /// The request expired without a job: ask again.
    Ask,
    /// The server refused or dropped the request (a new consumer leader, no
    /// JetStream to answer, the consumer gone): ask again after [`BACKOFF`],
    /// or a slot would spin on refusals for as long as they last.
    Refused,
    /// The subscription ended: the connection is closed for good.
    Closed,
}

/// A slot's subscription, and the subjects and payloads it asks with (the
/// same for every job, so built once).
pub struct Puller {
    client: Client,
    js: jetstream::Context,
    sub: Subscriber,
    inbox: Subject,
    /// `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`.
    next_subject: Subject,
    /// The pull request, alone and after an ack.
    ask: Bytes,
    ack_and_ask: Bytes,
}

impl Puller {
    pub async fn new(js: &jetstream::Context, client: &Client, stream: &str, consumer: &str) -> anyhow::Result<Self> {
        let inbox = Subject::from(client.new_inbox());
        let sub = client.subscribe(inbox.clone()).await?;
        Ok(Self {
            client: client.clone(),
            js: js.clone(),
            sub,
            inbox,
            next_subject: contracts::subjects::consumer_next(stream, consumer).into(),
            ask: request().into(),
            ack_and_ask: format!("+NXT {}", request()).into(),
        })
    }

    /// Asks for one job.
    pub async fn ask(&self) -> anyhow::Result<()> {
        self.client.publish_with_reply(self.next_subject.clone(), self.inbox.clone(), self.ask.clone()).await?;
        Ok(())
    }

    /// Acks `done` and asks for the next job in the same message.
    pub async fn ack_and_ask(&self, done: &jetstream::Message) -> anyhow::Result<()> {
        let reply = done.reply.clone().ok_or_else(|| anyhow::anyhow!("a job without an ack subject"))?;
        self.client.publish_with_reply(reply, self.inbox.clone(), self.ack_and_ask.clone()).await?;
        Ok(())
    }

    /// Waits for what answers the last ask.
    pub async fn next(&mut self) -> Delivery {
        loop {
            let msg = match tokio::time::timeout(EXPIRES + GRACE, self.sub.next()).await {
                Err(_) => return Delivery::Ask,
                Ok(None) => return Delivery::Closed,
                Ok(Some(m)) => m,
            };
            match status_of(msg.status) {
                Status::Job => {
                    return Delivery::Job(Box::new(jetstream::Message { message: msg, context: self.js.clone() }));
                }
                Status::Expired => return Delivery::Ask,
                Status::Refused => return Delivery::Refused,
                Status::KeepWaiting => continue,
            }
        }
    }

    /// Ends the slot's pull without losing a job to it: withdraws interest in
    /// the inbox (so the server stops delivering to the open request) and
    /// hands every job already on its way back at once, with a nak. Without
    /// this, a job the server sent to a stopping slot would wait out the ack
    /// wait, longer than the request that waits for it. Returns how many.
    pub async fn release(mut self) -> usize {
        let _ = self.sub.unsubscribe().await;
        let mut released = 0;
        // Buffered deliveries come out before the end of the stream; a short
        // wait covers the ones the server sent before it read the UNSUB.
        while let Ok(Some(msg)) = tokio::time::timeout(RELEASE_WAIT, self.sub.next()).await {
            if status_of(msg.status) == Status::Job {
                let job = jetstream::Message { message: msg, context: self.js.clone() };
                if job.ack_with(jetstream::AckKind::Nak(None)).await.is_ok() {
                    released += 1;
                }
            }
        }
        released
    }
}

/// How long [`Puller::release`] waits for deliveries already on the wire.
const RELEASE_WAIT: Duration = Duration::from_millis(100);

/// The pull request: one job, waiting up to [`EXPIRES`] for it.
fn request() -> String {
    format!("{{\"batch\":1,\"expires\":{}}}", EXPIRES.as_nanos())
}

#[derive(Debug, PartialEq)]
enum Status {
    Job,
    /// The request's wait is over without a job.
    Expired,
    /// The request was refused or dropped.
    Refused,
    /// A heartbeat or flow control: the request is still waiting.
    KeepWaiting,
}

/// Sorts a delivery on the slot's inbox: jobs carry no status; the server
/// ends a request that found nothing with 404/408, refuses or drops one with
/// 409 (the consumer's leader changed, it was deleted, too many requests) or
/// 503 (no JetStream to answer), and keeps one alive with 100.
fn status_of(status: Option<StatusCode>) -> Status {
    match status {
        None | Some(StatusCode::OK) => Status::Job,
        Some(StatusCode::IDLE_HEARTBEAT) => Status::KeepWaiting,
        Some(StatusCode::NOT_FOUND | StatusCode::TIMEOUT) => Status::Expired,
        Some(_) => Status::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_endings_and_heartbeats_are_told_apart() {
        assert_eq!(status_of(None), Status::Job);
        assert_eq!(status_of(Some(StatusCode::IDLE_HEARTBEAT)), Status::KeepWaiting);
        for expired in [StatusCode::NOT_FOUND, StatusCode::TIMEOUT] {
            assert_eq!(status_of(Some(expired)), Status::Expired, "{expired:?}");
        }
        for refused in [StatusCode::REQUEST_TERMINATED, StatusCode::NO_RESPONDERS] {
            assert_eq!(status_of(Some(refused)), Status::Refused, "{refused:?}");
        }
    }

    #[test]
    fn the_request_asks_for_one_job_at_a_time() {
        // JetStream reads `expires` in nanoseconds.
        assert_eq!(request(), r#"{"batch":1,"expires":5000000000}"#);
    }
}
