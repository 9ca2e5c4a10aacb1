//! A fleet's SLA as Prometheus rules: recording rules for the two SLIs
//! (availability and latency of `POST /v1/resize`), the multi-window,
//! multi-burn-rate alerts of the Google SRE workbook on them, and alerts for
//! what threatens the SLA before it burns (queue wait over the drain budget,
//! a stale auth-cache, a tenant out of quota, an unsteady JetStream leader).
//!
//! Pure: the same spec gives the same rule file, which the operator applies
//! as a PrometheusRule (when the Prometheus Operator's CRDs exist) and always
//! as a ConfigMap holding the file, and which `promtool test rules` exercises
//! from `rulegen`'s output in CI.
//!
//! # Labels the rules expect
//! Every fleet series carries `namespace` and `fleet` (the ResizeDeployment's
//! name): the PodMonitor the operator creates sets them, and a scrape
//! configuration of one's own must too (README, "Monitoring"). The operator's
//! own series name the fleet in `namespace` and `name`; its ServiceMonitor
//! honours those labels.

use crate::capacity;
use crate::crd::ResizeDeployment;
use kube::ResourceExt;
use serde::Serialize;

/// The route whose requests the SLA speaks of.
pub const SLA_ROUTE: &str = "/v1/resize";

/// The workbook's page-worthy pairs: a long window that says the budget is
/// really burning and a short one that says it still is (so the alert stops
/// soon after the burn does), with the burn rate that spends 2 % (1 h) and
/// 5 % (6 h) of a 30-day budget.
pub const BURN_WINDOWS: [BurnWindow; 2] = [
    BurnWindow { long: "1h", short: "5m", factor: 14.4, speed: "Fast" },
    BurnWindow { long: "6h", short: "30m", factor: 6.0, speed: "Slow" },
];

/// Every window of [`BURN_WINDOWS`], shortest first: the SLIs are recorded over each.
pub const SLI_WINDOWS: [&str; 4] = ["5m", "30m", "1h", "6h"];

#[derive(Debug, Clone, Copy)]
pub struct BurnWindow {
    pub long: &'static str,
    pub short: &'static str,
    pub factor: f64,
    /// The alert name's middle word: `ResizerAvailabilityFastBurn`.
    pub speed: &'static str,
}

/// A Prometheus rule file (also the `spec` of a PrometheusRule).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleFile {
    pub groups: Vec<Group>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Group {
    pub name: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Rule {
    Record {
        record: String,
        expr: String,
    },
    Alert {
        alert: String,
        expr: String,
        #[serde(rename = "for")]
        for_: String,
        labels: std::collections::BTreeMap<String, String>,
        annotations: std::collections::BTreeMap<String, String>,
    },
}

impl RuleFile {
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("rule files serialise")
    }

    /// Every alert's name, in file order.
    pub fn alerts(&self) -> Vec<&str> {
        self.rules()
            .filter_map(|r| match r {
                Rule::Alert { alert, .. } => Some(alert.as_str()),
                Rule::Record { .. } => None,
            })
            .collect()
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.groups.iter().flat_map(|g| g.rules.iter())
    }
}

/// The latency threshold the rules count against: the largest histogram
/// bucket at or under the p99 target, so a request counted as fast really
/// was. A target below the smallest bucket counts against the smallest.
pub fn latency_bucket(p99_ms: i32) -> f64 {
    let target = f64::from(p99_ms) / 1000.0;
    let buckets: Vec<f64> = telemetry::metrics::latency_buckets().collect();
    buckets.iter().copied().rfind(|b| *b <= target + 1e-9).unwrap_or(buckets[0])
}

/// A bucket bound as Prometheus 3 stores the `le` label (`1.0`, `0.5`).
pub fn le_label(bound: f64) -> String {
    format!("{bound:?}")
}

/// The fleet's rule file.
pub fn rules(rd: &ResizeDeployment) -> RuleFile {
    let ns = rd.namespace().unwrap_or_default();
    let fleet = rd.name_any();
    let sla = &rd.spec.sla;
    let sel = format!(r#"namespace="{ns}",fleet="{fleet}""#);
    let route = format!(r#"{sel},route="{SLA_ROUTE}""#);
    let error_budget = 1.0 - sla.availability;
    // p99 under the target: 1 % of requests may be slower.
    let latency_budget = 0.01;
    let bucket = le_label(latency_bucket(sla.p99_latency_ms));
    let drain = capacity::drain_budget_secs(sla, &rd.spec.capacity);
    let who = format!("{ns}/{fleet}");

    let mut sli = Vec::new();
    for w in SLI_WINDOWS {
        // A counter of 5xx answers exists only after the first one: `or` the
        // total times 0, so a fleet that never failed records 0, not nothing.
        let all = format!("sum by (namespace, fleet) (rate(api_http_requests_total{{{route}}}[{w}]))");
        sli.push(Rule::Record {
            record: format!("resizer:sla_errors:ratio_rate{w}"),
            expr: format!(
                r#"(sum by (namespace, fleet) (rate(api_http_requests_total{{{route},status=~"5.."}}[{w}])) or 0 * {all}) / {all}"#
            ),
        });
        sli.push(Rule::Record {
            record: format!("resizer:sla_slow:ratio_rate{w}"),
            expr: format!(
                r#"1 - sum by (namespace, fleet) (rate(api_http_request_duration_seconds_bucket{{{route},le="{bucket}"}}[{w}])) / sum by (namespace, fleet) (rate(api_http_request_duration_seconds_count{{{route}}}[{w}]))"#
            ),
        });
    }

    let mut alerts = Vec::new();
    for w in BURN_WINDOWS {
        let f = w.factor;
        let (long, short) = (w.long, w.short);
        alerts.push(alert(
            format!("ResizerAvailability{}Burn", w.speed),
            format!(
                r#"resizer:sla_errors:ratio_rate{long}{{{sel}}} > ({f} * {error_budget:.6}) and resizer:sla_errors:ratio_rate{short}{{{sel}}} > ({f} * {error_budget:.6})"#
            ),
            "2m",
            "critical",
            format!(
                "{who}: 5xx answers spend the {:.3} % availability budget {f}× too fast ({long} and {short} windows)",
                error_budget * 100.0
            ),
            "5xx answers (refusals at the edge, deadlines, failed jobs) are burning the monthly error budget; see the fleet dashboard's status panel.".into(),
        ));
        alerts.push(alert(
            format!("ResizerLatency{}Burn", w.speed),
            format!(
                r#"resizer:sla_slow:ratio_rate{long}{{{sel}}} > ({f} * {latency_budget}) and resizer:sla_slow:ratio_rate{short}{{{sel}}} > ({f} * {latency_budget})"#
            ),
            "2m",
            "critical",
            format!(
                "{who}: requests slower than {bucket}s (p99 target {} ms) spend the latency budget {f}× too fast",
                sla.p99_latency_ms
            ),
            "More than 1 % of resize requests take longer than the target; see queue wait and worker time on the fleet dashboard.".into(),
        ));
    }
    alerts.push(alert(
        "ResizerQueueWaitOverDrainBudget".into(),
        format!(
            r#"histogram_quantile(0.99, sum by (namespace, fleet, le) (rate(worker_queue_wait_seconds_bucket{{{sel}}}[5m]))) > {drain}"#
        ),
        "5m",
        "warning",
        format!("{who}: jobs wait longer in JOBS than the {drain} s the SLA leaves for waiting"),
        "The workers cannot keep up: see the fleet's Scaling condition and maxWorkers.".into(),
    ));
    alerts.push(alert(
        "ResizerAuthCacheReplicationLag".into(),
        format!(r#"max by (namespace, fleet, pod) (auth_cache_replication_lag_seconds{{{sel}}}) > 30"#),
        "5m",
        "warning",
        format!("{who}: an auth-cache has not confirmed it is current with IDENTITY for over 30 s"),
        "{{ $labels.pod }} is behind: key changes and revocations do not reach it.".into(),
    ));
    alerts.push(alert(
        "ResizerTenantQuotaExhausted".into(),
        format!(
            r#"sum by (namespace, fleet, tenant) (increase(usage_tenant_requests_total{{{sel},problem="quota-exhausted"}}[15m])) > 0"#
        ),
        "0m",
        "info",
        format!("{who}: a tenant's requests are refused for exhausted quota"),
        "Tenant {{ $labels.tenant }} is answered 429 quota-exhausted until its quota resets or is raised.".into(),
    ));
    let op = format!(r#"namespace="{ns}",name="{fleet}""#);
    alerts.push(alert(
        "ResizerQueueLeaderUnsteady".into(),
        format!(r#"sum by (namespace, name) (increase(resizer_operator_queue_leader_changes_total{{{op}}}[1h])) > 3"#),
        "0m",
        "warning",
        format!("{who}: the JOBS stream changed leader more than 3 times in an hour"),
        "A server keeps losing its peers or its disk; see the NATS pods' restarts and logs.".into(),
    ));
    alerts.push(alert(
        "ResizerQueueLeaderSteppedDown".into(),
        format!(r#"sum by (namespace, name) (increase(resizer_operator_queue_step_downs_total{{{op}}}[15m])) > 0"#),
        "0m",
        "warning",
        format!("{who}: the operator stepped a browned-out JOBS leader down"),
        "The leader answered too slowly and was asked to hand over; see the fleet's Events.".into(),
    ));
    alerts.push(alert(
        "ResizerQueueUnreachable".into(),
        format!(r#"max by (namespace, name) (resizer_operator_queue_healthy{{{op}}}) == 0"#),
        "5m",
        "critical",
        format!("{who}: the operator cannot read the JOBS stream"),
        "Without a reading the workers stay at their count; see the QueueHealthy condition.".into(),
    ));

    RuleFile {
        groups: vec![
            Group { name: format!("resizer-sla-{ns}-{fleet}"), rules: sli },
            Group { name: format!("resizer-alerts-{ns}-{fleet}"), rules: alerts },
        ],
    }
}

fn alert(name: String, expr: String, for_: &str, severity: &str, summary: String, description: String) -> Rule {
    Rule::Alert {
        alert: name,
        expr,
        for_: for_.to_owned(),
        labels: [("severity".to_owned(), severity.to_owned())].into(),
        annotations: [("summary".to_owned(), summary), ("description".to_owned(), description)].into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ResizeDeploymentSpec;
    use serde_json::json;

    fn rd(p99: i32, availability: f64) -> ResizeDeployment {
        let spec: ResizeDeploymentSpec = serde_json::from_value(json!({
            "sla": {"targetRequestsPerSecond": 100.0, "p99LatencyMs": p99, "availability": availability},
        }))
        .unwrap();
        let mut rd = ResizeDeployment::new("photos", spec);
        rd.metadata.namespace = Some("media".into());
        rd
    }

    fn expr<'a>(f: &'a RuleFile, name: &str) -> &'a str {
        f.rules()
            .find_map(|r| match r {
                Rule::Alert { alert, expr, .. } if alert == name => Some(expr.as_str()),
                Rule::Record { record, expr } if record == name => Some(expr.as_str()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no rule {name}"))
    }

    #[test]
    fn the_latency_threshold_is_the_bucket_at_or_under_the_target() {
        assert_eq!(latency_bucket(500), 0.5);
        assert_eq!(latency_bucket(2000), 2.0);
        assert_eq!(latency_bucket(750), 0.5, "0.75 s is no bucket: count against 0.5 s, never 1 s");
        assert_eq!(latency_bucket(0), 0.0005);
        assert_eq!(le_label(2.0), "2.0");
        assert_eq!(le_label(0.5), "0.5");
    }

    #[test]
    fn burn_alerts_follow_the_sla() {
        let f = rules(&rd(2000, 0.999));
        let fast = expr(&f, "ResizerAvailabilityFastBurn");
        assert!(fast.contains("resizer:sla_errors:ratio_rate1h{"), "{fast}");
        assert!(fast.contains("resizer:sla_errors:ratio_rate5m{"), "{fast}");
        assert!(fast.contains("> (14.4 * 0.001000)"), "{fast}");
        let slow = expr(&f, "ResizerLatencySlowBurn");
        assert!(slow.contains("ratio_rate6h{") && slow.contains("ratio_rate30m{"), "{slow}");
        assert!(slow.contains("> (6 * 0.01)"), "{slow}");
        let slow_sli = expr(&f, "resizer:sla_slow:ratio_rate30m");
        assert!(slow_sli.contains(r#"le="2.0""#), "{slow_sli}");
        assert!(slow_sli.contains(r#"namespace="media",fleet="photos",route="/v1/resize""#), "{slow_sli}");
        let errors = expr(&f, "resizer:sla_errors:ratio_rate6h");
        assert!(errors.contains(r#"status=~"5..""#) && errors.contains("[6h]"), "{errors}");
        assert!(errors.contains(") or 0 * sum by (namespace, fleet) (rate(api_http_requests_total{"), "{errors}");
        // The drain budget: p99 2000 ms minus the default 50 ms service time.
        assert!(expr(&f, "ResizerQueueWaitOverDrainBudget").ends_with("> 1.95"));
        let avail = rules(&rd(500, 0.99));
        assert!(expr(&avail, "ResizerAvailabilityFastBurn").contains("(14.4 * 0.010000)"));
    }

    #[test]
    fn every_window_of_every_pair_is_recorded_for_both_slis() {
        let f = rules(&rd(500, 0.999));
        for w in BURN_WINDOWS {
            for window in [w.long, w.short] {
                for sli in ["sla_errors", "sla_slow"] {
                    let name = format!("resizer:{sli}:ratio_rate{window}");
                    assert!(expr(&f, &name).contains(&format!("[{window}]")), "{name}");
                }
            }
        }
        assert_eq!(f.groups[0].rules.len(), 8);
    }

    #[test]
    fn the_file_is_what_prometheus_reads() {
        let f = rules(&rd(500, 0.999));
        let yaml = f.to_yaml();
        let back: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
        let first_alert = &back["groups"][1]["rules"][0];
        assert_eq!(first_alert["alert"], "ResizerAvailabilityFastBurn");
        assert_eq!(first_alert["for"], "2m");
        assert_eq!(first_alert["labels"]["severity"], "critical");
        assert!(back["groups"][0]["rules"][0].get("for").is_none(), "recording rules have no `for`");
        let names = f.alerts();
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "alert names are unique");
    }
}
