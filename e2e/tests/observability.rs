//! The monitoring the product ships reads what the components export: after
//! traffic through a real stack, every metric a fleet rule or a dashboard
//! panel names is in some component's `/metrics` (the operator's own names are
//! checked by a reconcile test of the operator).

use e2e::{identity::AuthStack, usage::Aggregator};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Prefixes of the fleet components' metrics (the operator's are `resizer_operator_`).
const PREFIXES: [&str; 4] = ["api_", "worker_", "auth_cache_", "usage_"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The file at `path` (JSON, or YAML when it ends in `.yaml`) as JSON.
fn read(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.extension().is_some_and(|e| e == "yaml") {
        serde_yaml::from_str(&text).unwrap()
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

/// A family appears in an exposition once it has a child: traffic of every
/// kind the rules and panels read (an image, a refusal, its usage counted).
async fn drive(stack: &AuthStack, agg: &Aggregator) {
    let rate = contracts::identity::RateLimit { per_second: 1000, burst: 1000 };
    let tenant = e2e::identity::tenant(&stack.store, "observed", rate).await.unwrap();
    stack.auth.caught_up(&stack.store).await.unwrap();
    let photo = std::fs::read(&e2e::corpus::files("jpeg")[0]).unwrap();
    let http = reqwest::Client::new();
    let url = stack.api.url("/v1/resize?w=64");
    let h = e2e::identity::auth_headers(&url, "image/jpeg", &photo, &tenant.api_key);
    let res = http.post(&url).headers(h).body(photo.clone()).send().await.unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let bad = stack.api.url("/v1/resize?w=0");
    let h = e2e::identity::auth_headers(&bad, "image/jpeg", &photo, &tenant.api_key);
    assert_eq!(http.post(&bad).headers(h).body(photo).send().await.unwrap().status(), 400);
    // The aggregator counts both once the api-server and the worker have flushed their records.
    for _ in 0..300 {
        let text = http.get(agg.url("/metrics")).send().await.unwrap().text().await.unwrap();
        if e2e::metrics::sum(&text, "usage_tenant_requests_total") >= 2.0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the aggregator never counted the two requests per tenant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_dashboards_name_is_exported() {
    let stack = AuthStack::start().await.unwrap();
    let agg = Aggregator::spawn(&stack.nats.client_url, "observability-test-token", &[]).unwrap();
    drive(&stack, &agg).await;
    let http = reqwest::Client::new();
    let mut names = BTreeSet::new();
    let endpoints = [
        ("api-server", stack.api.url("/metrics")),
        ("worker", stack.worker.metrics_url.clone()),
        ("auth-cache", format!("{}/metrics", stack.auth.base)),
        ("usage-aggregator", agg.url("/metrics")),
    ];
    for (component, url) in &endpoints {
        let mut text = String::new();
        for _ in 0..100 {
            if let Ok(r) = http.get(url).send().await {
                text = r.text().await.unwrap();
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let found = telemetry::metrics::sample_names(&text);
        assert!(found.len() > 5, "{component} at {url} exports almost nothing: {text}");
        names.extend(found);
    }

    let rules = repo().join("operator/tests/rules/fleet.rules.yaml");
    let mut exprs = telemetry::metrics::rule_expressions(&read(&rules)).expect("a rule file");
    let dashboards = repo().join("charts/resizer/dashboards");
    for entry in std::fs::read_dir(&dashboards).unwrap() {
        let path = entry.unwrap().path();
        exprs.extend(telemetry::metrics::dashboard_expressions(&read(&path)).expect("every panel has queries"));
    }
    let referenced: BTreeSet<String> =
        exprs.iter().flat_map(|e| telemetry::metrics::names_in_query(e, &PREFIXES)).collect();
    assert!(referenced.len() >= 10, "the rules and dashboards read fleet metrics: {referenced:?}");
    let missing: Vec<&String> = referenced.difference(&names).collect();
    assert!(missing.is_empty(), "named by a rule or dashboard but exported by no component: {missing:?}");
}
