//! Writing the children: server-side apply under one field manager, the
//! deletion of children the spec dropped, and the status patch.

use crate::crd::{ComponentsStatus, ReplicaCount, ResizeDeployment, ResizeDeploymentStatus};
use crate::desired::{Children, MANAGER};
use crate::error::Error;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions};
use kube::core::ApiResource;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::collections::BTreeSet;
use std::fmt::Debug;

async fn apply<K>(client: &Client, ns: &str, obj: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Serialize + DeserializeOwned + Clone + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    // force: this operator is the one owner of these fields; a hand edit is corrected, not a conflict.
    let params = PatchParams::apply(MANAGER).force();
    Ok(api.patch(&obj.name_any(), &params, &Patch::Apply(obj)).await?)
}

async fn apply_each<K>(client: &Client, ns: &str, objs: &[K]) -> Result<Vec<K>, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Serialize + DeserializeOwned + Clone + Debug,
{
    let mut out = Vec::with_capacity(objs.len());
    for o in objs {
        out.push(apply(client, ns, o).await?);
    }
    Ok(out)
}

/// Applies objects of a kind the operator knows only at run time (the Prometheus Operator's).
async fn apply_dynamic(client: &Client, ns: &str, resource: &ApiResource, objs: &[DynamicObject]) -> Result<(), Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, resource);
    let params = PatchParams::apply(MANAGER).force();
    for o in objs {
        api.patch(&o.name_any(), &params, &Patch::Apply(o)).await?;
    }
    Ok(())
}

/// Reads the fleet's credentials Secret, makes what is missing and renews what
/// is due ([`crate::credentials::complete`]), and writes it back only when
/// something changed; returns its data for the round.
pub async fn ensure_credentials(
    client: &Client,
    rd: &ResizeDeployment,
    ns: &str,
) -> Result<std::collections::BTreeMap<String, String>, Error> {
    use k8s_openapi::api::core::v1::Secret;
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let name = crate::credentials::secret_name(&rd.name_any());
    let stored = api.get_opt(&name).await?.and_then(|s| s.data).unwrap_or_default();
    let data = stored.into_iter().filter_map(|(k, v)| Some((k, String::from_utf8(v.0).ok()?))).collect();
    let names = crate::credentials::server_names(&crate::desired::Component::Queue.name(rd), ns);
    let (data, changed) = crate::credentials::complete(data, &names, time::OffsetDateTime::now_utc())?;
    if changed {
        apply(client, ns, &crate::desired::credentials_secret(rd, &data)?).await?;
    }
    Ok(data)
}

/// Applies every child (accounts and config first, so workloads never start without them)
/// and returns the replica counts the workloads report.
pub async fn apply_all(client: &Client, ns: &str, c: &Children) -> Result<ComponentsStatus, Error> {
    apply_each(client, ns, &c.service_accounts).await?;
    apply_each(client, ns, &c.config_maps).await?;
    apply_each(client, ns, &c.services).await?;
    apply_each(client, ns, &c.network_policies).await?;
    apply_each(client, ns, &c.disruption_budgets).await?;
    let sets = apply_each(client, ns, &c.stateful_sets).await?;
    let deps = apply_each(client, ns, &c.deployments).await?;
    apply_each(client, ns, &c.ingresses).await?;
    apply_dynamic(client, ns, &crate::monitoring::pod_monitor_resource(), &c.pod_monitors).await?;
    apply_dynamic(client, ns, &crate::monitoring::prometheus_rule_resource(), &c.prometheus_rules).await?;

    let mut out = ComponentsStatus::default();
    for d in &deps {
        let count = ReplicaCount {
            ready: d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0),
            desired: d.spec.replicas.unwrap_or(1),
        };
        match d.labels().get("app.kubernetes.io/component").map(String::as_str) {
            Some("api") => out.api = count,
            Some("worker") => out.worker = count,
            Some("auth-cache") => out.auth_cache = count,
            Some("usage-aggregator") => out.usage_aggregator = count,
            _ => {}
        }
    }
    if let Some(s) = sets.first() {
        out.queue = ReplicaCount {
            ready: s.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0),
            desired: s.spec.replicas.unwrap_or(1),
        };
    }
    Ok(out)
}

/// Deletes the children of the kinds the spec can drop that are no longer
/// desired, and returns what went (`Kind/name`). Only Ingress comes and goes
/// with the spec (`spec.api.ingress`); every other kind lives as long as the
/// resource and goes with it through the garbage collector. A kind added here
/// needs `delete` in the chart's ClusterRole, which grants it on nothing else.
pub async fn prune_all(client: &Client, rd: &ResizeDeployment, ns: &str, c: &Children) -> Result<Vec<String>, Error> {
    prune(client, rd, ns, &c.ingresses).await
}

async fn prune<K>(client: &Client, rd: &ResizeDeployment, ns: &str, desired: &[K]) -> Result<Vec<String>, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + DeserializeOwned + Clone + Debug,
{
    let uid = rd.uid().ok_or(Error::MissingObjectKey("metadata.uid"))?;
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let selector = format!("app.kubernetes.io/instance={},app.kubernetes.io/managed-by={MANAGER}", rd.name_any());
    // A consistent read, not the watch cache: the list is small, and a stale one could miss a dropped child.
    let existing = api.list_metadata(&ListParams::default().labels(&selector)).await?;
    let metas: Vec<ObjectMeta> = existing.items.into_iter().map(|o| o.metadata).collect();
    let names: BTreeSet<String> = desired.iter().map(|o| o.name_any()).collect();
    let mut gone = Vec::new();
    for doomed in to_prune(&rd.name_any(), &uid, &names, &metas) {
        let name = doomed.name.clone().unwrap_or_default();
        // The uid precondition: if the object was replaced since the list, the new one is not what was judged.
        let params = DeleteParams {
            preconditions: Some(Preconditions { uid: doomed.uid.clone(), resource_version: None }),
            ..DeleteParams::background()
        };
        match api.delete(&name, &params).await {
            Ok(_) => gone.push(format!("{}/{name}", K::kind(&()))),
            Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(gone)
}

/// The existing objects to delete: those both the labels and the controller
/// owner reference mark as this resource's (`rd_name`, `rd_uid`), not being
/// deleted already, whose name is not `desired`. Anything short of both marks
/// is someone else's object that merely looks alike, and stays.
pub fn to_prune<'a>(
    rd_name: &str,
    rd_uid: &str,
    desired: &BTreeSet<String>,
    existing: &'a [ObjectMeta],
) -> Vec<&'a ObjectMeta> {
    existing
        .iter()
        .filter(|m| {
            let label = |k: &str| m.labels.as_ref().and_then(|l| l.get(k)).map(String::as_str);
            let ours = label("app.kubernetes.io/instance") == Some(rd_name)
                && label("app.kubernetes.io/managed-by") == Some(MANAGER)
                && m.owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.controller == Some(true) && o.uid == rd_uid && o.kind == "ResizeDeployment");
            let name = m.name.as_deref().unwrap_or_default();
            ours && !name.is_empty() && !desired.contains(name) && m.deletion_timestamp.is_none()
        })
        .collect()
}

pub async fn patch_status(
    client: &Client,
    rd: &ResizeDeployment,
    status: &ResizeDeploymentStatus,
) -> Result<(), Error> {
    let api: Api<ResizeDeployment> = Api::namespaced(client.clone(), &rd.namespace().unwrap_or_default());
    let body = json!({
        "apiVersion": ResizeDeployment::api_version(&()),
        "kind": ResizeDeployment::kind(&()),
        "status": status,
    });
    api.patch_status(&rd.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&body)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn meta(v: Value) -> ObjectMeta {
        serde_json::from_value(v).unwrap()
    }

    fn ours(name: &str) -> Value {
        json!({
            "name": name,
            "uid": format!("uid-{name}"),
            "labels": {"app.kubernetes.io/instance": "photos", "app.kubernetes.io/managed-by": "resizer-operator"},
            "ownerReferences": [{"apiVersion": "resizer.dev/v1alpha1", "kind": "ResizeDeployment", "name": "photos",
                                 "uid": "rd-1", "controller": true}],
        })
    }

    fn names(v: Vec<&ObjectMeta>) -> Vec<&str> {
        v.into_iter().map(|m| m.name.as_deref().unwrap()).collect()
    }

    #[test]
    fn an_owned_child_no_longer_desired_is_pruned() {
        let existing = [meta(ours("photos-api")), meta(ours("photos-old"))];
        let desired = BTreeSet::from(["photos-api".to_owned()]);
        assert_eq!(names(to_prune("photos", "rd-1", &desired, &existing)), ["photos-old"]);
        assert_eq!(names(to_prune("photos", "rd-1", &BTreeSet::new(), &existing)), ["photos-api", "photos-old"]);
    }

    #[test]
    fn nothing_is_pruned_while_everything_is_desired() {
        let existing = [meta(ours("photos-api"))];
        let desired = BTreeSet::from(["photos-api".to_owned(), "photos-new".to_owned()]);
        assert!(to_prune("photos", "rd-1", &desired, &existing).is_empty());
        assert!(to_prune("photos", "rd-1", &desired, &[]).is_empty());
    }

    #[test]
    fn objects_without_both_marks_are_left_alone() {
        let mut other_owner = ours("a");
        other_owner["ownerReferences"][0]["uid"] = json!("rd-2");
        let mut not_controller = ours("b");
        not_controller["ownerReferences"][0]["controller"] = json!(false);
        let mut no_owner = ours("c");
        no_owner.as_object_mut().unwrap().remove("ownerReferences");
        let mut other_instance = ours("d");
        other_instance["labels"]["app.kubernetes.io/instance"] = json!("videos");
        let mut other_manager = ours("e");
        other_manager["labels"]["app.kubernetes.io/managed-by"] = json!("Helm");
        let mut unlabelled = ours("f");
        unlabelled.as_object_mut().unwrap().remove("labels");
        let mut other_kind = ours("g");
        other_kind["ownerReferences"][0]["kind"] = json!("Deployment");
        let mut terminating = ours("h");
        terminating["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let existing: Vec<ObjectMeta> =
            [other_owner, not_controller, no_owner, other_instance, other_manager, unlabelled, other_kind, terminating]
                .into_iter()
                .map(meta)
                .collect();
        assert!(to_prune("photos", "rd-1", &BTreeSet::new(), &existing).is_empty());
    }
}
