//! Jaeger v2 for one test: OTLP/HTTP in, the query API out, traces in memory,
//! every port a free loopback one.

use anyhow::{Context, bail};
use serde_json::Value;
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The jaeger binary: `$JAEGER_BIN`, else the one `scripts/install-observability-tools.sh`
/// installs into `$RESIZER_BIN` (by default `~/.cache/resizer/bin`).
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("JAEGER_BIN") {
        return p.into();
    }
    if let Some(dir) = std::env::var_os("RESIZER_BIN") {
        return PathBuf::from(dir).join("jaeger");
    }
    let cache = std::env::var_os("RESIZER_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
        home.join("resizer")
    });
    cache.join("bin/jaeger")
}

pub struct Jaeger {
    child: Child,
    _dir: tempfile::TempDir,
    /// Base URL for `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter appends `/v1/traces`).
    pub otlp_endpoint: String,
    /// Base URL of the query API (`/api/traces/<id>`).
    pub query: String,
    http: reqwest::Client,
}

impl Jaeger {
    /// Starts Jaeger and waits until both the receiver and the query API answer.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = binary();
        if !bin.is_file() {
            bail!(
                "no jaeger binary at {} (set JAEGER_BIN or run scripts/install-observability-tools.sh)",
                bin.display()
            );
        }
        let dir = tempfile::tempdir()?;
        let [otlp, query, grpc] = [0; 3].map(|_| crate::procs::free_port());
        let config = dir.path().join("jaeger.yaml");
        std::fs::write(&config, config_yaml(otlp, query, grpc))?;
        let log = std::fs::File::create(dir.path().join("jaeger.log"))?;
        let child = Command::new(&bin)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut me = Self {
            child,
            otlp_endpoint: format!("http://127.0.0.1:{otlp}"),
            query: format!("http://127.0.0.1:{query}"),
            _dir: dir,
            http: reqwest::Client::new(),
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = me.child.try_wait() {
                bail!("jaeger exited with {status} at start-up:\n{}", me.log());
            }
            let receiving = tokio::net::TcpStream::connect(("127.0.0.1", otlp)).await.is_ok();
            let answering =
                me.http.get(format!("{}/api/services", me.query)).send().await.is_ok_and(|r| r.status().is_success());
            if receiving && answering {
                return Ok(me);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("jaeger did not answer within 30 s:\n{}", me.log())
    }

    /// Jaeger's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("jaeger.log")).unwrap_or_default()
    }

    /// The trace as the query API has it now (`data[0]` of `/api/traces/<id>`), if any.
    pub async fn trace(&self, trace_id: &str) -> anyhow::Result<Option<Value>> {
        let res = self.http.get(format!("{}/api/traces/{trace_id}", self.query)).send().await?;
        if res.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let doc: Value = res.error_for_status()?.json().await?;
        let traces = doc["data"].as_array().cloned().unwrap_or_default();
        if traces.len() > 1 {
            bail!("{} traces for one id: {doc}", traces.len());
        }
        Ok(traces.into_iter().next())
    }

    /// Polls until the trace holds every span named in `names`, or `timeout`; returns it as it is then.
    pub async fn wait_for(&self, trace_id: &str, names: &[&str], timeout: Duration) -> anyhow::Result<Value> {
        let started = Instant::now();
        let mut last = None;
        while started.elapsed() < timeout {
            if let Some(t) = self.trace(trace_id).await? {
                let have = span_names(&t);
                if names.iter().all(|n| have.iter().any(|h| h == n)) {
                    return Ok(t);
                }
                last = Some(t);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        match last {
            Some(t) => bail!("after {timeout:?} trace {trace_id} has only {:?}, not all of {names:?}", span_names(&t)),
            None => bail!("after {timeout:?} Jaeger has no trace {trace_id}:\n{}", self.log()),
        }
    }
}

fn span_names(trace: &Value) -> Vec<String> {
    trace["spans"]
        .as_array()
        .map(|spans| spans.iter().filter_map(|s| s["operationName"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// All-in-one with memory storage, as Jaeger runs without a config, but on the
/// given ports and with its own metrics endpoint (a fixed :8888) switched off.
fn config_yaml(otlp: u16, query: u16, grpc: u16) -> String {
    format!(
        r#"service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{grpc}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"#
    )
}

impl Drop for Jaeger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
