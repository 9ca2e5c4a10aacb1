//! Whether the cluster runs the Prometheus Operator: with its CRDs a fleet
//! gets a PodMonitor and a PrometheusRule; without them its pods carry the
//! `prometheus.io/*` annotations that annotation-driven scrape configs read,
//! and its rules stay in a ConfigMap (`desired`).

use crate::error::Error;
use kube::Client;
use kube::core::{ApiResource, GroupVersionKind};

pub const GROUP_VERSION: &str = "monitoring.coreos.com/v1";

/// What the cluster offers for scraping and rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Monitoring {
    pub pod_monitor: bool,
    pub prometheus_rule: bool,
}

pub fn pod_monitor_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "PodMonitor"),
        "podmonitors",
    )
}

pub fn prometheus_rule_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "PrometheusRule"),
        "prometheusrules",
    )
}

/// Reads the group's resources from discovery. A group that is not served is
/// "no Prometheus Operator"; any other failure fails the round, so a passing
/// apiserver hiccup never flips the pods between the two scrape styles.
pub async fn detect(client: &Client) -> Result<Monitoring, Error> {
    match client.list_api_group_resources(GROUP_VERSION).await {
        Ok(list) => Ok(Monitoring {
            pod_monitor: list.resources.iter().any(|r| r.name == "podmonitors"),
            prometheus_rule: list.resources.iter().any(|r| r.name == "prometheusrules"),
        }),
        // An apiserver answers an unserved group with a plain-text "404 page not found", not a Status.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Monitoring::default()),
        Err(e) => Err(e.into()),
    }
}
