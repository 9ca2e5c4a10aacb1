//! A worker slot that stops hands back the job the server already sent it,
//! against a real nats-server: the job goes to the next puller at once, not
//! after the consumer's ack wait (longer than any request waits for it).

use async_nats::jetstream::{self, consumer, stream};
use e2e::nats::NatsServer;
use std::time::{Duration, Instant};
use worker::pull::{Delivery, Puller};

#[tokio::test]
async fn a_stopping_slot_hands_back_what_was_delivered_to_it() {
    let nats = NatsServer::start().unwrap();
    let client = nats.client().await.unwrap();
    let js = jetstream::new(client.clone());
    let s = js
        .create_stream(stream::Config { name: "R".into(), subjects: vec!["r.jobs".into()], ..Default::default() })
        .await
        .unwrap();
    s.create_consumer(consumer::pull::Config {
        durable_name: Some("w".into()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        ..Default::default()
    })
    .await
    .unwrap();

    // A slot asks, and the job is sent to it while it is stopping: not read.
    let stopping = Puller::new(&js, &client, "R", "w").await.unwrap();
    stopping.ask().await.unwrap();
    js.publish("r.jobs", "job-1".into()).await.unwrap().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // delivered into the slot's inbox
    assert_eq!(stopping.release().await, 1, "the delivered job is handed back");

    // Another slot gets it at once (as a redelivery), far inside the 30 s ack wait.
    let mut next = Puller::new(&js, &client, "R", "w").await.unwrap();
    let asked = Instant::now();
    next.ask().await.unwrap();
    let Delivery::Job(msg) = next.next().await else { panic!("no job for the next slot") };
    assert_eq!(&msg.payload[..], b"job-1");
    assert_eq!(msg.info().unwrap().delivered, 2);
    assert!(asked.elapsed() < Duration::from_secs(2), "took {:?}", asked.elapsed());
    msg.ack().await.unwrap();

    // An idle slot releases nothing and leaves nothing behind.
    let idle = Puller::new(&js, &client, "R", "w").await.unwrap();
    idle.ask().await.unwrap();
    assert_eq!(idle.release().await, 0);
    let mut w = s.get_consumer::<consumer::pull::Config>("w").await.unwrap();
    let info = w.info().await.unwrap();
    assert_eq!((info.num_ack_pending, info.num_pending), (0, 0));
}
