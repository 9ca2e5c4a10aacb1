//! The rule files promtool tests (`scripts/test.d/30-observability.sh`) are
//! the ones the product ships: the fleet's is what the operator renders for
//! the chart's example, and every alert of both files has a test that fires
//! it and one that keeps it silent.

use operator::crd::ResizeDeployment;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn example() -> ResizeDeployment {
    let text = std::fs::read_to_string(repo().join("charts/resizer/examples/resizedeployment.yaml")).unwrap();
    let mut rd: ResizeDeployment = serde_yaml::from_str(&text).unwrap();
    rd.metadata.namespace = Some("media".into());
    rd
}

fn alert_names(rules: &Value) -> BTreeSet<String> {
    rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect()
}

/// (alerts some test expects firing, alerts some test expects silent).
fn coverage(tests: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut fire, mut silent) = (BTreeSet::new(), BTreeSet::new());
    for t in tests["tests"].as_array().unwrap() {
        // A test may check recording rules alone (`promql_expr_test`).
        for case in t["alert_rule_test"].as_array().into_iter().flatten() {
            let name = case["alertname"].as_str().unwrap().to_owned();
            let expected = case["exp_alerts"].as_array().map_or(0, Vec::len);
            if expected > 0 {
                fire.insert(name)
            } else {
                silent.insert(name)
            };
        }
    }
    (fire, silent)
}

fn assert_covered(rules: &Value, tests: &Value, what: &str) {
    let alerts = alert_names(rules);
    assert!(alerts.len() >= 5, "{what}: {alerts:?}");
    let (fire, silent) = coverage(tests);
    for a in &alerts {
        assert!(fire.contains(a), "{what}: no test fires {a}");
        assert!(silent.contains(a), "{what}: no test keeps {a} silent");
    }
    for a in fire.union(&silent) {
        assert!(alerts.contains(a), "{what}: a test names {a}, which no rule defines");
    }
}

#[test]
fn the_tested_fleet_rules_are_what_the_operator_renders() {
    let dir = repo().join("operator/tests/rules");
    let committed = std::fs::read_to_string(dir.join("fleet.rules.yaml")).unwrap();
    let rendered = operator::slo::rules(&example()).to_yaml();
    assert!(
        committed == rendered,
        "operator/tests/rules/fleet.rules.yaml is stale; regenerate it:\n  \
         cargo run -q -p operator --bin rulegen -- charts/resizer/examples/resizedeployment.yaml --namespace media \
         > operator/tests/rules/fleet.rules.yaml"
    );
}

#[test]
fn every_fleet_alert_fires_and_stays_silent_in_a_test() {
    let dir = repo().join("operator/tests/rules");
    let rules: Value = serde_yaml::from_str(&operator::slo::rules(&example()).to_yaml()).unwrap();
    assert_covered(&rules, &yaml(&dir.join("fleet.test.yaml")), "fleet");
}

#[test]
fn every_operator_alert_fires_and_stays_silent_in_a_test() {
    let rules = yaml(&repo().join("charts/resizer/rules/operator.rules.yaml"));
    assert_covered(&rules, &yaml(&repo().join("operator/tests/rules/operator.test.yaml")), "operator");
}
