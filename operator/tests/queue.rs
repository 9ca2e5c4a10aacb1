//! `NatsQueue` against a real nats-server: it creates the JOBS stream from the
//! contracts, reads the backlog, and reports an unreachable server as such.

mod common;

use async_nats::jetstream;
use contracts::subjects::{JOBS_SUBJECT, workers_consumer};
use operator::queue::{NatsQueue, Queue, QueueError};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child, PathBuf);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn start() -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("operator-queue-{}-{port}", std::process::id()));
    let child = Command::new(common::nats_server())
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server (scripts/install-nats-server.sh)");
    common::wait_listening(port);
    (Server(child, dir), format!("nats://127.0.0.1:{port}"))
}

#[tokio::test]
async fn creates_the_stream_and_reads_the_backlog() {
    let (_server, url) = start();
    let queue = NatsQueue::new(Duration::from_secs(2));
    let empty = queue.observe(&url, 1).await.unwrap();
    assert_eq!((empty.num_pending, empty.last_sequence), (0, 0));

    let js = jetstream::new(async_nats::connect(&url).await.unwrap());
    for _ in 0..3 {
        js.publish(JOBS_SUBJECT, "job".into()).await.unwrap().await.unwrap();
    }
    // Before the workers created their consumer, every stored job is backlog.
    let before = queue.observe(&url, 1).await.unwrap();
    assert_eq!((before.num_pending, before.num_ack_pending, before.last_sequence), (3, 0, 3));

    let stream = js.get_stream(contracts::subjects::JOBS_STREAM).await.unwrap();
    let consumer = stream.create_consumer(workers_consumer(Duration::from_secs(30), 16)).await.unwrap();
    let mut batch = consumer.fetch().max_messages(1).messages().await.unwrap();
    use futures::StreamExt;
    let _held = batch.next().await.unwrap().unwrap(); // fetched, not acked
    let after = queue.observe(&url, 1).await.unwrap();
    assert_eq!((after.num_pending, after.num_ack_pending), (2, 1));
}

#[tokio::test]
async fn an_unreachable_server_is_reported_quickly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let queue = NatsQueue::new(Duration::from_millis(500));
    let started = Instant::now();
    let err = queue.observe(&format!("nats://127.0.0.1:{port}"), 3).await.unwrap_err();
    assert!(matches!(err, QueueError::Unreachable { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// `n` distinct free ports: the listeners are held until all are picked, so no two coincide.
fn ports(n: usize) -> Vec<u16> {
    let held: Vec<_> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    held.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// Three servers on loopback with routes to each other, as the StatefulSet runs them.
fn start_cluster() -> (Vec<Server>, Vec<String>) {
    let all = ports(6);
    let (clients, routes) = all.split_at(3);
    let route_list = routes.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect::<Vec<_>>().join(", ");
    let mut servers = Vec::new();
    for i in 0..3 {
        let dir = std::env::temp_dir().join(format!("operator-cluster-{}-{}", std::process::id(), clients[i]));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{}\njetstream {{ store_dir: \"{}\" }}\n\
                 cluster {{ name: c, listen: 127.0.0.1:{}, routes: [{route_list}] }}\n",
                clients[i],
                dir.join("js").display(),
                routes[i]
            ),
        )
        .unwrap();
        let child = common::spawn_with_config(&conf, Stdio::null());
        servers.push(Server(child, dir));
    }
    (servers, clients.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect())
}

#[tokio::test]
async fn step_down_moves_the_jobs_leader_to_a_follower() {
    let (_servers, urls) = start_cluster();
    let queue = NatsQueue::new(Duration::from_secs(2));
    let started = Instant::now();
    // The cluster needs a meta leader before it accepts an R3 stream.
    let first = loop {
        match queue.observe(&urls[0], 3).await {
            Ok(s) if s.leader.is_some() && s.current_followers == 2 => break s,
            other => {
                // Generous: on a loaded machine the three servers take a while to form a meta group.
                assert!(started.elapsed() < Duration::from_secs(60), "no R3 stream with a leader: {other:?}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let old = first.leader.clone().unwrap();
    queue.step_down(&urls[0]).await.unwrap();
    let asked = Instant::now();
    loop {
        if let Ok(s) = queue.observe(&urls[1], 3).await
            && s.leader.as_ref().is_some_and(|l| *l != old)
        {
            println!("JOBS leader moved from {old} to {} in {:?}", s.leader.unwrap(), asked.elapsed());
            break;
        }
        assert!(asked.elapsed() < Duration::from_secs(10), "leader still {old} after step-down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn one_connection_serves_every_reading_of_a_fleet() {
    let port = ports(2);
    let dir = std::env::temp_dir().join(format!("operator-queue-conn-{}-{}", std::process::id(), port[0]));
    let child = Command::new(common::nats_server())
        .args(["-js", "-a", "127.0.0.1", "-p", &port[0].to_string(), "-m", &port[1].to_string(), "-sd"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server");
    let _server = Server(child, dir);
    let url = format!("nats://127.0.0.1:{}", port[0]);
    let queue = NatsQueue::new(Duration::from_secs(2));
    let started = Instant::now();
    while queue.observe(&url, 1).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "nats-server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connz = || {
        use std::io::{Read, Write};
        let mut http = std::net::TcpStream::connect(("127.0.0.1", port[1])).unwrap();
        http.write_all(b"GET /connz HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        http.read_to_string(&mut body).unwrap();
        serde_json::from_str::<serde_json::Value>(&body[body.find("\r\n\r\n").unwrap() + 4..]).unwrap()
    };
    let first = connz()["connections"][0]["cid"].clone();
    for _ in 0..5 {
        queue.observe(&url, 1).await.unwrap();
    }
    assert_eq!(queue.kept_connections(), 1);
    // The server's own view: one client connection, the same one as before the readings.
    let json = connz();
    assert_eq!(json["num_connections"], 1, "{json}");
    assert_eq!(json["connections"][0]["cid"], first, "{json}");
}
