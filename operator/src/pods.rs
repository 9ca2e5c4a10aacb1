//! Why a component's pods cannot run. A Deployment only says "0/7 ready";
//! the cause (no node fits the requests, the image cannot be pulled) is on
//! the pods, where a platform team would not look first. The round lists the
//! fleet's pods and [`diagnose`] turns them into the reason and message of
//! the Ready condition.

use crate::conditions::Reason;
use crate::crd::ResizeDeployment;
use crate::desired::{Component, MANAGER};
use crate::error::Error;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

/// Waiting reasons of a container whose image the kubelet cannot get.
const IMAGE_PULL_REASONS: [&str; 3] = ["ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff"];

/// One component whose pods cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trouble {
    pub component: Component,
    pub reason: Reason,
    pub message: String,
}

/// The pods of every component of the fleet. Served from the apiserver's
/// watch cache: a reading a moment old is as good for a diagnosis, and a large
/// worker fleet listed every round should not reach etcd.
pub async fn list(client: &Client, ns: &str, rd: &ResizeDeployment) -> Result<Vec<Pod>, Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = format!("app.kubernetes.io/instance={},app.kubernetes.io/managed-by={MANAGER}", rd.name_any());
    Ok(pods.list(&ListParams::default().labels(&selector).match_any()).await?.items)
}

/// Every component's trouble, in [`Component::ALL`] order.
pub fn diagnose_all(pods: &[Pod]) -> Vec<Trouble> {
    Component::ALL
        .into_iter()
        .filter_map(|c| {
            let mine: Vec<&Pod> = pods
                .iter()
                .filter(|p| p.labels().get("app.kubernetes.io/component").map(String::as_str) == Some(c.as_str()))
                .collect();
            diagnose(c, &mine)
        })
        .collect()
}

/// Why `component`'s pods cannot run, if they cannot. A bad image wins over
/// unschedulable pods: it fails on every node, so more nodes would not help.
pub fn diagnose(component: Component, pods: &[&Pod]) -> Option<Trouble> {
    // A pod on its way out or finished says nothing about the current spec.
    let live: Vec<&PodStatus> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.status.as_ref())
        .filter(|s| !matches!(s.phase.as_deref(), Some("Succeeded" | "Failed")))
        .collect();
    let total = live.len();
    let pulls: Vec<&ContainerStatus> = live.iter().filter_map(|s| image_pull_failure(s)).collect();
    if let Some(first) = pulls.first() {
        let waiting = first.state.as_ref().and_then(|s| s.waiting.as_ref());
        let why = waiting.and_then(|w| w.reason.as_deref()).unwrap_or_default();
        let detail = waiting.and_then(|w| w.message.as_deref()).unwrap_or(why);
        return Some(Trouble {
            component,
            reason: Reason::ImagePullFailed(component),
            message: format!(
                "{}: image {} cannot be pulled ({why}, {} of {total} pods): {detail}",
                component.field(),
                first.image,
                pulls.len()
            ),
        });
    }
    let unscheduled: Vec<&str> = live.iter().filter_map(|s| unschedulable(s)).collect();
    let first = unscheduled.first()?;
    Some(Trouble {
        component,
        reason: Reason::Unschedulable(component),
        message: format!("{}: {} of {total} pods cannot be scheduled: {first}", component.field(), unscheduled.len()),
    })
}

fn image_pull_failure(s: &PodStatus) -> Option<&ContainerStatus> {
    s.init_container_statuses.iter().chain(s.container_statuses.iter()).flatten().find(|c| {
        let reason = c.state.as_ref().and_then(|st| st.waiting.as_ref()).and_then(|w| w.reason.as_deref());
        reason.is_some_and(|r| IMAGE_PULL_REASONS.contains(&r))
    })
}

/// The scheduler's explanation when it found no node for the pod.
fn unschedulable(s: &PodStatus) -> Option<&str> {
    let c = s.conditions.iter().flatten().find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    Some(c.message.as_deref().or(c.reason.as_deref()).unwrap_or("no node was found for the pod"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pod(component: &str, status: Value) -> Pod {
        serde_json::from_value(crate::fixtures::pod(component, status)).unwrap()
    }

    fn unschedulable_pod(component: &str) -> Pod {
        pod(
            component,
            json!({"phase": "Pending", "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 Insufficient cpu.",
            }]}),
        )
    }

    fn waiting_pod(component: &str, image: &str, reason: &str, message: &str) -> Pod {
        pod(
            component,
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
                   "containerStatuses": [{"name": component, "image": image, "imageID": "", "ready": false, "restartCount": 0,
                                          "state": {"waiting": {"reason": reason, "message": message}}}]}),
        )
    }

    fn running_pod(component: &str) -> Pod {
        pod(
            component,
            json!({"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": component, "image": "i", "imageID": "x", "ready": true, "restartCount": 0,
                                          "state": {"running": {}}}]}),
        )
    }

    #[test]
    fn unschedulable_pods_carry_the_schedulers_message() {
        let pods = [running_pod("worker"), unschedulable_pod("worker"), unschedulable_pod("worker")];
        let t = diagnose(Component::Worker, &pods.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(t.reason, Reason::Unschedulable(Component::Worker));
        assert_eq!(t.reason.to_string(), "WorkerUnschedulable");
        assert_eq!(t.message, "worker: 2 of 3 pods cannot be scheduled: 0/1 nodes are available: 1 Insufficient cpu.");
    }

    #[test]
    fn every_image_pull_failure_names_the_image() {
        for why in ["ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff"] {
            let p = waiting_pod("api", "resizer/api-server:0.9.9", why, "Container image is not present");
            let t = diagnose(Component::Api, &[&p]).unwrap();
            assert_eq!(t.reason, Reason::ImagePullFailed(Component::Api), "{why}");
            assert!(t.message.contains("image resizer/api-server:0.9.9"), "{}", t.message);
            assert!(t.message.contains(why) && t.message.contains("1 of 1 pods"), "{}", t.message);
            assert!(t.message.ends_with(": Container image is not present"), "{}", t.message);
        }
    }

    #[test]
    fn a_bad_image_wins_over_a_missing_node() {
        let pods = [unschedulable_pod("nats"), waiting_pod("nats", "nats:9", "ErrImagePull", "not found")];
        let t = diagnose(Component::Queue, &pods.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(t.reason.to_string(), "QueueImagePullFailed");
        assert!(t.message.starts_with("queue: image nats:9"), "{}", t.message);
    }

    #[test]
    fn healthy_starting_finished_and_terminating_pods_are_no_trouble() {
        let starting = waiting_pod("api", "a", "ContainerCreating", "");
        let never_scheduled = pod("api", json!({"phase": "Pending"}));
        let finished =
            pod("api", json!({"phase": "Failed", "conditions": [{"type": "PodScheduled", "status": "False"}]}));
        let mut terminating = unschedulable_pod("api");
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        let pods = [running_pod("api"), starting, never_scheduled, finished, terminating];
        assert_eq!(diagnose(Component::Api, &pods.iter().collect::<Vec<_>>()), None);
        assert_eq!(diagnose(Component::Api, &[]), None);
    }

    #[test]
    fn pods_are_grouped_by_their_component_label() {
        let pods = [
            running_pod("api"),
            unschedulable_pod("worker"),
            waiting_pod("auth-cache", "resizer/auth-cache:x", "ImagePullBackOff", "back-off"),
            unschedulable_pod("something-else"),
        ];
        let got: Vec<String> = diagnose_all(&pods).iter().map(|t| t.reason.to_string()).collect();
        assert_eq!(got, ["WorkerUnschedulable", "AuthCacheImagePullFailed"]);
    }
}
