//! The fleet's NATS security against real nats-servers: the certificates
//! `credentials::complete` issues, the `tls` blocks and users the operator
//! renders, and the operator's own connection. A client with the fleet's CA
//! and key gets in; another fleet's CA, another fleet's key or an expired
//! certificate does not; a server with a certificate of another CA cannot
//! join the cluster's routes.

mod common;

use operator::credentials::{self, CA_CERT, TLS_CERT, TLS_KEY};
use operator::queue::{NatsQueue, Queue, QueueAccess};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A fleet's credentials for a server reached as `localhost`, issued at `at`.
fn fleet(at: OffsetDateTime) -> BTreeMap<String, String> {
    credentials::complete(BTreeMap::new(), &["localhost".to_owned()], at).unwrap().0
}

fn write_tls(dir: &Path, data: &BTreeMap<String, String>) {
    std::fs::create_dir_all(dir).unwrap();
    for key in [TLS_CERT, TLS_KEY, CA_CERT] {
        std::fs::write(dir.join(key), &data[key]).unwrap();
    }
}

/// A server's place in a cluster: its route port, the route ports of its
/// peers, and a monitoring port when the test reads its routes.
struct Routes<'a> {
    port: u16,
    peers: &'a [u16],
    monitor: Option<u16>,
}

/// A server with `data`'s certificate and users, optionally in a cluster.
fn server(root: &Path, name: &str, data: &BTreeMap<String, String>, client: u16, cluster: Option<Routes>) -> Server {
    let dir = root.join(name);
    write_tls(&dir, data);
    let tls_dir = dir.to_str().unwrap();
    let mut conf = format!(
        "server_name: {name}\nlisten: 127.0.0.1:{client}\njetstream {{ store_dir: \"{tls_dir}/js\" }}\n{}\n",
        operator::desired::tls_block(tls_dir, false)
    );
    if let Some(Routes { port, peers, monitor }) = cluster {
        let routes = peers.iter().map(|p| format!("\"nats://localhost:{p}\"")).collect::<Vec<_>>().join(", ");
        conf += &format!(
            "cluster {{ name: fleet, listen: 127.0.0.1:{port}, routes: [{routes}]\n  {} }}\n",
            operator::desired::tls_block(tls_dir, true)
        );
        if let Some(monitor) = monitor {
            conf += &format!("http: 127.0.0.1:{monitor}\n");
        }
    }
    conf += &contracts::access::authorization_block(&credentials::users(data));
    std::fs::write(dir.join("nats.conf"), conf).unwrap();
    let child =
        common::spawn_with_config(&dir.join("nats.conf"), Stdio::from(std::fs::File::create(dir.join("log")).unwrap()));
    common::wait_listening(client);
    Server(child)
}

fn access(key_of: &BTreeMap<String, String>, ca_of: &BTreeMap<String, String>) -> QueueAccess {
    QueueAccess {
        nkey_seed: key_of[&credentials::seed_key(contracts::access::Role::Operator)].clone(),
        ca_pem: Some(ca_of[CA_CERT].clone()),
    }
}

async fn observe_with(url: &str, access: QueueAccess) -> Result<(), String> {
    let queue = NatsQueue::new(Duration::from_secs(2));
    queue.authorize(url, access);
    queue.observe(url, 1).await.map(|_| ()).map_err(|e| e.to_string())
}

#[tokio::test]
async fn only_the_fleets_ca_and_keys_get_in() {
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let (ours, theirs) = (fleet(now), fleet(now));
    let client = port();
    let _s = server(root.path(), "n0", &ours, client, None);
    let url = format!("nats://localhost:{client}");
    observe_with(&url, access(&ours, &ours)).await.expect("the fleet's own CA and key");
    let e = observe_with(&url, access(&ours, &theirs)).await.expect_err("another fleet's CA");
    println!("another CA: {e}");
    let e = observe_with(&url, access(&theirs, &ours)).await.expect_err("another fleet's key");
    println!("another key: {e}");
    let plain = async_nats::ConnectOptions::with_nkey(access(&ours, &ours).nkey_seed).connect(url.as_str()).await;
    assert!(plain.is_err(), "a client that does not verify the server is still refused without TLS");
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let root = tempfile::tempdir().unwrap();
    // Issued 100 days ago: its 90 days are over.
    let old = fleet(OffsetDateTime::now_utc() - time::Duration::days(100));
    let client = port();
    let _s = server(root.path(), "n0", &old, client, None);
    let e = observe_with(&format!("nats://localhost:{client}"), access(&old, &old)).await.expect_err("expired");
    println!("expired: {e}");
    // The same fleet renewed (what the next round does) gets in again.
    let (renewed, changed) = credentials::complete(old, &["localhost".to_owned()], OffsetDateTime::now_utc()).unwrap();
    assert!(changed);
    let client = port();
    let _s = server(root.path(), "n1", &renewed, client, None);
    observe_with(&format!("nats://localhost:{client}"), access(&renewed, &renewed)).await.expect("renewed");
}

/// The servers n0 has routes to (a pooled route counts once).
fn routes_of(monitor: u16) -> Vec<String> {
    let body = std::process::Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{monitor}/routez")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let mut names: Vec<String> = v["routes"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r["remote_name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    names.sort();
    names.dedup();
    names
}

#[tokio::test]
async fn a_server_with_another_cas_certificate_cannot_join_the_routes() {
    let root = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let (ours, theirs) = (fleet(now), fleet(now));
    let (c0, c1, c2, r0, r1, r2, m0) = (port(), port(), port(), port(), port(), port(), port());
    // n0 shows its routes on a monitoring port.
    let _n0 = server(root.path(), "n0", &ours, c0, Some(Routes { port: r0, peers: &[r1, r2], monitor: Some(m0) }));
    let _impostor = server(root.path(), "n1", &theirs, c1, Some(Routes { port: r1, peers: &[r0], monitor: None }));
    std::thread::sleep(Duration::from_secs(3));
    assert!(routes_of(m0).is_empty(), "a route from a server of another CA is refused: {:?}", routes_of(m0));
    let _peer = server(root.path(), "n2", &ours, c2, Some(Routes { port: r2, peers: &[r0], monitor: None }));
    let started = Instant::now();
    while routes_of(m0).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(15), "a peer of the same CA forms a route");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(routes_of(m0), ["n2"], "only the peer of the same CA");
}
