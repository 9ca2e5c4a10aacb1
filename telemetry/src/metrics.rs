//! Serving a Prometheus registry.

use axum::{Router, http::header, response::IntoResponse, routing::get};
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// Histogram buckets for latencies in seconds, 0.5 ms to 10 s: one scale for
/// every component so their histograms can be compared and summed.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0].into_iter()
}

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry in OpenMetrics text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Encoding into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// A `GET /metrics` route for `registry`, to merge into a component's router.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&registry)).into_response() }
        }),
    )
}

/// Serves `/metrics` and a trivial `/healthz` on `addr` until the process ends
/// (for components without an HTTP API of their own).
pub async fn serve(addr: std::net::SocketAddr, registry: Arc<Registry>) -> anyhow::Result<std::net::SocketAddr> {
    let app = router(registry).route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(local)
}

/// Every sample name an exposition can carry. A family's `# TYPE` line names
/// it even before it has a child, and counters and histograms add suffixes:
/// what a rule or dashboard may select on, whether or not it has happened yet.
pub fn sample_names(exposition: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for line in exposition.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            let suffixes: &[&str] = match kind {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                "info" => &["_info"],
                _ => &[""],
            };
            for s in suffixes {
                out.insert(format!("{name}{s}"));
            }
        }
    }
    out
}

/// The metric names a PromQL expression selects whose name starts with one of
/// `prefixes` (recorded series, which have a colon, are not metrics of a component).
pub fn names_in_query(expr: &str, prefixes: &[&str]) -> std::collections::BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| !w.contains(':') && prefixes.iter().any(|p| w.starts_with(p)))
        .map(str::to_owned)
        .collect()
}

/// Every `expr` of a Prometheus rule file, read as JSON; `None` when it is not
/// shaped like one (a group without rules, a rule without an expression).
pub fn rule_expressions(file: &serde_json::Value) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for group in file["groups"].as_array()? {
        for rule in group["rules"].as_array()? {
            out.push(rule["expr"].as_str()?.to_owned());
        }
    }
    Some(out)
}

/// Every panel query of a Grafana dashboard; `None` when a panel has no
/// targets or a target no expression.
pub fn dashboard_expressions(dashboard: &serde_json::Value) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array()? {
        for target in panel["targets"].as_array()? {
            out.push(target["expr"].as_str()?.to_owned());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_in_expressions_and_expositions() {
        let e = r#"histogram_quantile(0.99, sum by (le) (rate(worker_queue_wait_seconds_bucket{fleet="x"}[5m]))) > resizer:sla_errors:ratio_rate5m"#;
        let got = names_in_query(e, &["worker_", "resizer_"]);
        assert_eq!(got, ["worker_queue_wait_seconds_bucket".to_owned()].into());
        let text = "# HELP api_shed Requests refused.\n# TYPE api_shed counter\n# TYPE api_in_flight gauge\n\
                    # TYPE api_wait histogram\n";
        let got = sample_names(text);
        assert!(got.contains("api_shed_total") && got.contains("api_in_flight") && got.contains("api_wait_bucket"));
        assert!(!got.contains("api_shed"), "a counter's samples end in _total");
    }

    #[test]
    fn expressions_are_read_from_rule_files_and_dashboards() {
        let rules = serde_json::json!({"groups": [{"rules": [{"record": "a:b", "expr": "x"}, {"alert": "A", "expr": "y > 1"}]}]});
        assert_eq!(rule_expressions(&rules), Some(vec!["x".to_owned(), "y > 1".to_owned()]));
        assert_eq!(rule_expressions(&serde_json::json!({"groups": [{"rules": [{"alert": "A"}]}]})), None);
        let d = serde_json::json!({"panels": [{"targets": [{"expr": "up"}, {"expr": "rate(x[1m])"}]}]});
        assert_eq!(dashboard_expressions(&d), Some(vec!["up".to_owned(), "rate(x[1m])".to_owned()]));
        assert_eq!(dashboard_expressions(&serde_json::json!({"panels": [{"title": "text"}]})), None);
    }
}
