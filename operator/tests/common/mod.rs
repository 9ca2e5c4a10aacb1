//! What the operator's integration tests share.

use std::path::PathBuf;

/// The nats-server binary: `$NATS_SERVER_BIN`, else the one scripts/install-nats-server.sh puts in the cache.
pub fn nats_server() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return p.into();
    }
    let cache = std::env::var_os("RESIZER_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/resizer"));
    cache.join("bin/nats-server")
}

/// Waits (up to 10 s) until a server started by the test listens on `port`.
pub fn wait_listening(port: u16) {
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "nats-server did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// nats-server with the configuration file `conf`, its log to `log`.
pub fn spawn_with_config(conf: &std::path::Path, log: std::process::Stdio) -> std::process::Child {
    std::process::Command::new(nats_server())
        .arg("-c")
        .arg(conf)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("nats-server (scripts/install-nats-server.sh)")
}
