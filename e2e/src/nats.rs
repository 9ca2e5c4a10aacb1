//! A real nats-server (≥ 2.12, JetStream on) for one test, with the
//! fleet's users and permissions (`contracts::access`) in force.
//!
//! Every role has a fixed test key, so any process of a test run can connect
//! as any role through [`key_file`]. Besides the roles, the servers know one
//! user of the tests' own, the observer, which may do anything: the tests
//! read streams and set up fixtures through it. It is not a user of any fleet.

use anyhow::{Context, bail};
use contracts::access::{self, Role};
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

/// The nkey of a role, or of the observer (`None`): fixed for tests, derived from the role's name.
fn test_key(role: Option<Role>) -> nkeys::KeyPair {
    let name = role.map_or("observer", Role::name);
    let mut raw = [0u8; 32];
    for (i, b) in name.bytes().enumerate() {
        raw[i % 32] ^= b;
    }
    raw[31] ^= 0x5a;
    nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, raw).expect("a user key from 32 bytes")
}

/// The directory holding every role's seed file, written once per test process.
fn keys_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("resizer-test-nkeys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the test key directory");
        for role in Role::ALL.into_iter().map(Some).chain([None]) {
            let name = role.map_or("observer", Role::name);
            let seed = test_key(role).seed().expect("seed");
            std::fs::write(dir.join(format!("{name}.nk")), seed + "\n").expect("writing a test key");
        }
        dir
    })
}

/// The seed file a process of `role` connects with.
pub fn key_file(role: Role) -> PathBuf {
    keys_dir().join(format!("{}.nk", role.name()))
}

/// Connect options as `role` (its inbox prefix, its key).
pub fn options_as(role: Role) -> async_nats::ConnectOptions {
    contracts::connect::options(role, &credentials(role), Default::default()).expect("test keys are valid")
}

/// Credentials flags of `role` for a component started inside the test process.
pub fn credentials(role: Role) -> contracts::connect::Credentials {
    contracts::connect::Credentials { nkey_file: Some(key_file(role)), ca_file: None }
}

/// A connection as the tests' observer, which may do anything, to any of the comma-separated `urls`.
pub async fn observer(urls: &str) -> anyhow::Result<async_nats::Client> {
    let seed = test_key(None).seed()?;
    Ok(async_nats::ConnectOptions::with_nkey(seed).connect(contracts::servers::server_urls(urls).as_slice()).await?)
}

/// The `authorization` block every test server runs with: each role's user
/// as a fleet renders it, plus the observer.
pub fn authorization() -> String {
    let users: Vec<_> = Role::ALL
        .into_iter()
        .map(|role| access::User { role, public_key: test_key(Some(role)).public_key() })
        .collect();
    let block = access::authorization_block(&users);
    let observer = format!("    {{ nkey: {:?} }}\n  ]\n}}\n", test_key(None).public_key());
    block.strip_suffix("  ]\n}\n").expect("the block ends its users list").to_owned() + &observer
}

pub struct NatsServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub client_url: String,
    pub monitor_url: String,
}

/// The nats-server binary: `$NATS_SERVER_BIN`, else the one `scripts/install-nats-server.sh` installs.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return p.into();
    }
    let cache = std::env::var_os("RESIZER_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
        home.join("resizer")
    });
    cache.join("bin/nats-server")
}

impl NatsServer {
    /// A server with the fleet's users and permissions.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(&authorization())
    }

    /// A server that lets anyone do anything, for benchmarks that compare.
    pub fn start_open() -> anyhow::Result<Self> {
        Self::start_with("")
    }

    fn start_with(authorization: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let conf = dir.path().join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:-1\nhttp: 127.0.0.1:-1\nmax_payload: 8MB\n{}jetstream {{ store_dir: \"{}\"{} }}\n{authorization}",
                contracts::servers::SERVER_LIVENESS,
                dir.path().join("js").display(),
                // Benchmarks compare fsync policies (`always` vs the default 2 min).
                std::env::var("NATS_SYNC_INTERVAL")
                    .ok()
                    .filter(|v| !v.is_empty())
                    .map(|v| format!(", sync_interval: {v}"))
                    .unwrap_or_default()
            ),
        )?;
        let bin = binary();
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf)
            .arg("--ports_file_dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.path().join("nats.log"))?))
            .spawn()
            .with_context(|| format!("starting {} (run scripts/install-nats-server.sh)", bin.display()))?;
        let ports_file = dir.path().join(format!("nats-server_{}.ports", child.id()));
        let started = Instant::now();
        let ports: serde_json::Value = loop {
            if let Ok(text) = std::fs::read_to_string(&ports_file)
                && let Ok(v) = serde_json::from_str(&text)
            {
                break v;
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("nats-server wrote no ports file within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let first = |key: &str| ports[key][0].as_str().map(str::to_owned).context(format!("no {key} port"));
        Ok(Self { client_url: first("nats")?, monitor_url: first("monitoring")?, child: Some(child), dir })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("js")
    }

    /// Stops the server with SIGKILL (no lame-duck, no flush).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A connection as the tests' observer, which may do anything.
    pub async fn client(&self) -> anyhow::Result<async_nats::Client> {
        observer(&self.client_url).await
    }

    /// A connection as `role`, with exactly its permissions.
    pub async fn client_as(&self, role: Role) -> anyhow::Result<async_nats::Client> {
        Ok(options_as(role).connect(self.client_url.as_str()).await?)
    }

    /// The server's log: permission violations are named there.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        // A refused operation nobody expected is a missing permission: name it in the test's output.
        for line in self.log().lines().filter(|l| l.contains("Violation")) {
            eprintln!("nats-server: {line}");
        }
    }
}
