//! The child objects of a `ResizeDeployment`, as a pure function of its spec
//! and the replica counts the capacity math chose.
//!
//! Objects are written as JSON shaped like the manifests an operator of the
//! fleet would read, then parsed into typed k8s-openapi structs: a field the
//! apiserver would reject fails here, in a unit test, instead.

use crate::crd::{PodSettings, ResizeDeployment};
use crate::error::Error;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, ResourceRequirements, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::DynamicObject;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The field manager every server-side apply of the operator uses.
pub const MANAGER: &str = "resizer-operator";
/// Label selecting the operator's own pods, which may reach NATS to create streams and read the queue.
pub const OPERATOR_LABEL: (&str, &str) = ("app.kubernetes.io/name", "resizer-operator");

const CLIENT_PORT: i32 = 4222;
const CLUSTER_PORT: i32 = 6222;
const MONITOR_PORT: i32 = 8222;
const HTTP_PORT: i32 = 8080;
/// Port of the http Services in front of the api and the usage API.
const SERVICE_PORT: i32 = 80;
/// The api-server's peer listener: workers fetch staged bodies and post answers there.
const PEER_PORT: i32 = 8081;
/// Where the usage-aggregator serves its API; the Ingress sends this prefix there.
pub const USAGE_PATH: &str = "/v1/usage";
/// The worker serves no API, only `/metrics` and `/healthz` here (WORKER_METRICS_ADDR).
const WORKER_METRICS_PORT: i32 = 9091;
/// How long a deleted api pod keeps serving before its SIGTERM: longer than
/// kube-proxy takes to drop it from the Service (about a second here).
const API_PRE_STOP_SECONDS: i64 = 5;

/// The parts of the fleet; each gets its own name, labels and service account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Api,
    Worker,
    Queue,
    AuthCache,
    UsageAggregator,
}

impl Component {
    pub const ALL: [Component; 5] =
        [Component::Api, Component::Worker, Component::Queue, Component::AuthCache, Component::UsageAggregator];

    pub fn as_str(self) -> &'static str {
        match self {
            Component::Api => "api",
            Component::Worker => "worker",
            Component::Queue => "nats",
            Component::AuthCache => "auth-cache",
            Component::UsageAggregator => "usage-aggregator",
        }
    }

    /// The component's field in `status.components`, which messages use so they match what `kubectl get` shows.
    pub fn field(self) -> &'static str {
        match self {
            Component::Api => "api",
            Component::Worker => "worker",
            Component::Queue => "queue",
            Component::AuthCache => "authCache",
            Component::UsageAggregator => "usageAggregator",
        }
    }

    /// The component as the first word of a condition reason (`WorkerUnschedulable`).
    pub fn camel_case(self) -> &'static str {
        match self {
            Component::Api => "Api",
            Component::Worker => "Worker",
            Component::Queue => "Queue",
            Component::AuthCache => "AuthCache",
            Component::UsageAggregator => "UsageAggregator",
        }
    }

    /// The NATS user the component's pods connect as (the servers themselves are none).
    pub fn role(self) -> Option<contracts::access::Role> {
        use contracts::access::Role;
        match self {
            Component::Api => Some(Role::ApiServer),
            Component::Worker => Some(Role::Worker),
            Component::Queue => None,
            Component::AuthCache => Some(Role::AuthCache),
            Component::UsageAggregator => Some(Role::UsageAggregator),
        }
    }

    /// `<resizedeployment>-<component>`: one name per component for its workload, service and account.
    pub fn name(self, rd: &ResizeDeployment) -> String {
        format!("{}-{}", rd.name_any(), self.as_str())
    }
}

pub fn labels(rd: &ResizeDeployment, c: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "resizer".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), rd.name_any()),
        ("app.kubernetes.io/component".to_owned(), c.as_str().to_owned()),
        ("app.kubernetes.io/managed-by".to_owned(), MANAGER.to_owned()),
    ])
}

/// Labels a selector may use; `managed-by` stays out so a selector never changes if it does.
fn selector(rd: &ResizeDeployment, c: Component) -> Value {
    json!({
        "app.kubernetes.io/name": "resizer",
        "app.kubernetes.io/instance": rd.name_any(),
        "app.kubernetes.io/component": c.as_str(),
    })
}

/// Client URL of the JetStream cluster, for the fleet and the operator.
pub fn nats_url(rd: &ResizeDeployment) -> String {
    format!("nats://{}.{}.svc:{CLIENT_PORT}", Component::Queue.name(rd), rd.namespace().unwrap_or_default())
}

/// Every object the operator owns for one `ResizeDeployment`.
#[derive(Debug, Clone, Default)]
pub struct Children {
    pub service_accounts: Vec<ServiceAccount>,
    pub config_maps: Vec<ConfigMap>,
    pub services: Vec<Service>,
    pub stateful_sets: Vec<StatefulSet>,
    pub deployments: Vec<Deployment>,
    pub disruption_budgets: Vec<PodDisruptionBudget>,
    pub ingresses: Vec<Ingress>,
    pub network_policies: Vec<NetworkPolicy>,
    /// The PodMonitor, when the cluster has the Prometheus Operator's CRDs.
    pub pod_monitors: Vec<DynamicObject>,
    /// The PrometheusRule with the fleet's SLO rules, likewise.
    pub prometheus_rules: Vec<DynamicObject>,
}

/// Replica counts decided by the capacity math.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replicas {
    pub api: i32,
    /// `None` when something else (an HPA) scales the workers: the field is then left out of the apply.
    pub workers: Option<i32>,
}

/// What the children depend on besides the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inputs<'a> {
    pub replicas: Replicas,
    /// Where the operator's own pods run: the NATS policy admits the operator
    /// from that namespace only, not any pod that copies its labels elsewhere.
    pub operator_namespace: &'a str,
    /// Whether the cluster has PodMonitor and PrometheusRule.
    pub monitoring: crate::monitoring::Monitoring,
    /// The operator's own OTLP endpoint: the fleet's when its spec names none.
    pub otlp_endpoint: Option<&'a str>,
    /// The fleet's credentials Secret's data (`crate::credentials`): the
    /// servers' users and certificate revision come from it.
    pub credentials: &'a BTreeMap<String, String>,
}

/// Where every connecting pod finds its role's seed and the fleet's CA.
const CREDENTIALS_DIR: &str = "/etc/resizer/nats";
/// Where the NATS pods find their certificate.
const NATS_TLS_DIR: &str = "/etc/nats-tls";

/// The Secret of the fleet's NATS credentials, with `data` as
/// [`crate::credentials::complete`] made it.
pub fn credentials_secret(rd: &ResizeDeployment, data: &BTreeMap<String, String>) -> Result<Secret, Error> {
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(crate::credentials::secret_name(&rd.name_any())),
            namespace: rd.namespace(),
            labels: Some(labels(rd, Component::Queue)),
            owner_references: Some(vec![owner(rd)?]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data.iter().map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes()))).collect()),
        ..Default::default()
    })
}

pub fn children(rd: &ResizeDeployment, inputs: &Inputs) -> Result<Children, Error> {
    let replicas = inputs.replicas;
    let otlp = rd.spec.observability.otlp_endpoint.as_deref().or(inputs.otlp_endpoint).filter(|e| !e.is_empty());
    let b = Builder {
        rd,
        owner: owner(rd)?,
        operator_namespace: inputs.operator_namespace,
        monitoring: inputs.monitoring,
        otlp_endpoint: otlp,
        credentials: inputs.credentials,
    };
    let spec = &rd.spec;
    let mut out = Children::default();
    for c in Component::ALL {
        out.service_accounts.push(b.object(c.name(rd), c, json!({"automountServiceAccountToken": false}))?);
    }
    out.config_maps.push(b.nats_config()?);
    let rules = crate::slo::rules(rd);
    out.config_maps.push(b.rules_config(&rules)?);
    if inputs.monitoring.pod_monitor {
        out.pod_monitors.push(b.pod_monitor()?);
    }
    if inputs.monitoring.prometheus_rule {
        out.prometheus_rules.push(b.prometheus_rule(&rules)?);
    }
    out.services.push(b.nats_service()?);
    out.stateful_sets.push(b.nats_statefulset()?);
    out.disruption_budgets.push(b.pdb(Component::Queue)?);

    let nats = nats_url(rd);
    let jobs_replicas = spec.queue.replicas.to_string();
    let api_env = json!([
        {"name": "API_LISTEN", "value": format!("0.0.0.0:{HTTP_PORT}")},
        // Workers fetch a request's body from the pod that holds it, by the pod's own address.
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "PEER_LISTEN", "value": format!("0.0.0.0:{PEER_PORT}")},
        {"name": "PEER_ADVERTISE", "value": format!("http://$(POD_IP):{PEER_PORT}")},
        // Spelled out, not left to the default: under AUTH=none every request is the
        // `anonymous` tenant, whose usage the usage API shows to any caller without credentials.
        {"name": "AUTH", "value": "required"},
        {"name": "NATS_URL", "value": nats},
        {"name": "JOBS_REPLICAS", "value": jobs_replicas},
        {"name": "MAX_BODY_BYTES", "value": spec.sla.max_image_bytes.to_string()},
        // Shed when jobs stand in the queue longer than the SLA leaves for waiting (the p99
        // target minus one service time), not at a constant: slow jobs may queue up to it.
        {"name": "LATENCY_TARGET", "value": latency_target(rd)},
    ]);
    out.deployments.push(b.deployment(
        Component::Api,
        Some(replicas.api),
        &spec.api.image,
        spec.api.resources.as_ref(),
        &spec.api.pod,
        api_env,
        true,
    )?);
    out.services.push(b.http_service(Component::Api, SERVICE_PORT)?);
    out.disruption_budgets.push(b.pdb(Component::Api)?);
    if let Some(ingress) = &spec.api.ingress {
        out.ingresses.push(b.ingress(ingress)?);
    }

    let cores = spec.capacity.cores_per_worker;
    // One job per core: request exactly the cores the capacity math counted on.
    let worker_resources = spec.worker.resources.clone().unwrap_or_else(|| cpu_resources(cores));
    let worker_env = json!([
        {"name": "NATS_URL", "value": nats},
        {"name": "JOBS_REPLICAS", "value": jobs_replicas},
        {"name": "WORKER_CONCURRENCY", "value": cores.to_string()},
        {"name": "WORKER_METRICS_ADDR", "value": format!("0.0.0.0:{WORKER_METRICS_PORT}")},
    ]);
    out.deployments.push(b.deployment(
        Component::Worker,
        replicas.workers,
        &spec.worker.image,
        Some(&worker_resources),
        &spec.worker.pod,
        worker_env,
        false,
    )?);

    // api-servers reach the auth-caches over NATS (one queue group), not this port:
    // it serves probes and metrics.
    let auth_env = json!([
        {"name": "NATS_URL", "value": nats},
        {"name": "AUTH_CACHE_LISTEN", "value": format!("0.0.0.0:{HTTP_PORT}")},
        {"name": "IDENTITY_REPLICAS", "value": jobs_replicas},
    ]);
    out.deployments.push(b.deployment(
        Component::AuthCache,
        Some(spec.auth_cache.replicas),
        &spec.auth_cache.image,
        spec.auth_cache.resources.as_ref(),
        &spec.auth_cache.pod,
        auth_env,
        false,
    )?);
    out.services.push(b.http_service(Component::AuthCache, HTTP_PORT)?);
    out.deployments.push(b.deployment(
        Component::UsageAggregator,
        Some(spec.usage_aggregator.replicas),
        &spec.usage_aggregator.image,
        spec.usage_aggregator.resources.as_ref(),
        &spec.usage_aggregator.pod,
        json!([
            {"name": "NATS_URL", "value": nats},
            {"name": "USAGE_LISTEN", "value": format!("0.0.0.0:{HTTP_PORT}")},
            {"name": "USAGE_REPLICAS", "value": jobs_replicas},
            // Like the api: a request without an API key is refused, never read as the anonymous tenant.
            {"name": "AUTH", "value": "required"},
        ]),
        false,
    )?);
    // The usage API is its own Service so the Ingress can route `/v1/usage` to it.
    // USAGE_ADMIN_TOKEN stays unset: a caller reads only the tenant of its API key,
    // which the aggregator verifies through an auth-cache.
    out.services.push(b.http_service(Component::UsageAggregator, SERVICE_PORT)?);

    out.network_policies.push(b.api_policy()?);
    out.network_policies.push(b.open_policy(Component::Worker, WORKER_METRICS_PORT)?);
    out.network_policies.push(b.open_policy(Component::UsageAggregator, HTTP_PORT)?);
    out.network_policies.push(b.auth_cache_policy()?);
    out.network_policies.push(b.nats_policy()?);
    Ok(out)
}

/// The api-server's latency budget: the fleet's p99 target. The api-server
/// learns service times itself and admits while the queue plus a request's
/// own service time fits it.
fn latency_target(rd: &ResizeDeployment) -> String {
    format!("{}ms", rd.spec.sla.p99_latency_ms.max(1))
}

fn owner(rd: &ResizeDeployment) -> Result<OwnerReference, Error> {
    rd.controller_owner_ref(&()).ok_or(Error::MissingObjectKey("metadata.uid"))
}

fn cpu_resources(cores: i32) -> ResourceRequirements {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    let cpu = BTreeMap::from([("cpu".to_owned(), Quantity(cores.to_string()))]);
    ResourceRequirements { requests: Some(cpu.clone()), limits: Some(cpu), ..Default::default() }
}

struct Builder<'a> {
    rd: &'a ResizeDeployment,
    owner: OwnerReference,
    operator_namespace: &'a str,
    monitoring: crate::monitoring::Monitoring,
    otlp_endpoint: Option<&'a str>,
    credentials: &'a BTreeMap<String, String>,
}

/// The ConfigMap key holding the fleet's rule file.
pub const RULES_KEY: &str = "resizer.rules.yaml";

/// `<resizedeployment>-prometheus-rules`: the rule file where no PrometheusRule can carry it.
pub fn rules_config_name(rd: &ResizeDeployment) -> String {
    format!("{}-prometheus-rules", rd.name_any())
}

impl Builder<'_> {
    /// A namespaced object with the common metadata merged into `body`.
    fn object<K: DeserializeOwned + Resource<DynamicType = ()>>(
        &self,
        name: String,
        c: Component,
        mut body: Value,
    ) -> Result<K, Error> {
        body["apiVersion"] = json!(K::api_version(&()));
        body["kind"] = json!(K::kind(&()));
        body["metadata"] = json!({
            "name": name,
            "namespace": self.rd.namespace(),
            "labels": labels(self.rd, c),
            "ownerReferences": [self.owner],
        });
        serde_json::from_value(body).map_err(|e| Error::Build(K::kind(&()).into_owned(), e))
    }

    fn pod_template(&self, c: Component, pod: &PodSettings, containers: Value, volumes: Value) -> Value {
        let mut template = json!({
            "metadata": {"labels": labels(self.rd, c), "annotations": pod.annotations},
            "spec": {
                "serviceAccountName": c.name(self.rd),
                "automountServiceAccountToken": false,
                "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": containers,
                "volumes": volumes,
                "nodeSelector": pod.node_selector,
                "tolerations": pod.tolerations,
            }
        });
        if let Some(p) = &pod.priority_class_name {
            template["spec"]["priorityClassName"] = json!(p);
        }
        template
    }

    #[allow(clippy::too_many_arguments)]
    fn deployment(
        &self,
        c: Component,
        replicas: Option<i32>,
        image: &str,
        resources: Option<&ResourceRequirements>,
        pod: &PodSettings,
        mut env: Value,
        spread: bool,
    ) -> Result<Deployment, Error> {
        // One JSON object per line: what a cluster's log pipeline parses without a custom grok.
        if let Some(vars) = env.as_array_mut() {
            vars.push(json!({"name": "LOG_FORMAT", "value": "json"}));
            // Paths, not secrets: `kubectl describe` shows these, the files stay in the Secret.
            vars.push(json!({"name": contracts::connect::NKEY_FILE_ENV, "value": format!("{CREDENTIALS_DIR}/nkey")}));
            vars.push(json!({"name": contracts::connect::CA_FILE_ENV, "value": format!("{CREDENTIALS_DIR}/ca.crt")}));
            if let Some(endpoint) = self.otlp_endpoint {
                vars.push(json!({"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": endpoint}));
            }
        }
        // The worker has no readiness endpoint of its own; it is ready when it is alive.
        let (port, ready_path) =
            if c == Component::Worker { (WORKER_METRICS_PORT, "/healthz") } else { (HTTP_PORT, "/readyz") };
        let mut container = json!({
            "name": c.as_str(),
            "image": image,
            "env": env,
            "ports": [{"name": "http", "containerPort": port}],
            "readinessProbe": {"httpGet": {"path": ready_path, "port": "http"}, "periodSeconds": 5},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10, "failureThreshold": 3},
            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "nats-credentials", "mountPath": CREDENTIALS_DIR, "readOnly": true}],
        });
        if let Some(r) = resources {
            container["resources"] = json!(r);
        }
        if c == Component::Api {
            // A deleted pod leaves the Service's endpoints only as fast as
            // kube-proxy hears of it: it keeps accepting meanwhile, so a
            // rolling upgrade refuses no connection, then drains on SIGTERM.
            container["lifecycle"] = json!({"preStop": {"sleep": {"seconds": API_PRE_STOP_SECONDS}}});
        }
        // This component's own seed only, and the CA: no pod holds another role's key.
        let role = c.role().map(crate::credentials::seed_key).unwrap_or_default();
        let volumes = json!([{"name": "nats-credentials", "secret": {
            "secretName": crate::credentials::secret_name(&self.rd.name_any()),
            "defaultMode": 0o440,
            "items": [{"key": role, "path": "nkey"}, {"key": crate::credentials::CA_CERT, "path": "ca.crt"}],
        }}]);
        let mut template = self.pod_template(c, pod, json!([container]), volumes);
        // Without a PodMonitor, the annotations annotation-driven scrape configs
        // look for; the spec's own annotations win over them.
        if !self.monitoring.pod_monitor {
            let mut annotations = json!({
                "prometheus.io/scrape": "true",
                "prometheus.io/port": port.to_string(),
                "prometheus.io/path": "/metrics",
            });
            for (k, v) in &pod.annotations {
                annotations[k] = json!(v);
            }
            template["metadata"]["annotations"] = annotations;
        }
        if spread {
            template["spec"]["topologySpreadConstraints"] = json!([{
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                // A one-node cluster must still run the api; spreading is best effort there.
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector(self.rd, c)},
            }]);
        }
        let mut spec = json!({
            "selector": {"matchLabels": selector(self.rd, c)},
            "template": template,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
        });
        if let Some(n) = replicas {
            spec["replicas"] = json!(n);
        }
        self.object(c.name(self.rd), c, json!({ "spec": spec }))
    }

    fn http_service(&self, c: Component, port: i32) -> Result<Service, Error> {
        self.object(
            c.name(self.rd),
            c,
            json!({"spec": {
                "selector": selector(self.rd, c),
                "ports": [{"name": "http", "port": port, "targetPort": "http"}],
            }}),
        )
    }

    fn pdb(&self, c: Component) -> Result<PodDisruptionBudget, Error> {
        self.object(
            c.name(self.rd),
            c,
            json!({"spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(self.rd, c)}}}),
        )
    }

    fn ingress(&self, spec: &crate::crd::IngressSpec) -> Result<Ingress, Error> {
        let path = |path: &str, c: Component| {
            json!({
                "path": path,
                "pathType": "Prefix",
                "backend": {"service": {"name": c.name(self.rd), "port": {"name": "http"}}},
            })
        };
        // Listed most specific first: controllers that match in order would otherwise send everything to `/`.
        let mut rule =
            json!({"http": {"paths": [path(USAGE_PATH, Component::UsageAggregator), path("/", Component::Api)]}});
        if let Some(h) = &spec.host {
            rule["host"] = json!(h);
        }
        let mut body = json!({"spec": {"rules": [rule]}});
        if let Some(class) = &spec.class_name {
            body["spec"]["ingressClassName"] = json!(class);
        }
        if let (Some(secret), Some(host)) = (&spec.tls_secret_name, &spec.host) {
            body["spec"]["tls"] = json!([{"hosts": [host], "secretName": secret}]);
        }
        self.object(Component::Api.name(self.rd), Component::Api, body)
    }

    fn rules_config(&self, rules: &crate::slo::RuleFile) -> Result<ConfigMap, Error> {
        let body = json!({"data": {RULES_KEY: rules.to_yaml()}});
        self.object(rules_config_name(self.rd), Component::Api, body)
    }

    /// A monitoring.coreos.com object with the common metadata and the spec's monitor labels.
    fn monitoring_object(
        &self,
        resource: &kube::core::ApiResource,
        c: Component,
        spec: Value,
    ) -> Result<DynamicObject, Error> {
        let mut labels = labels(self.rd, c);
        labels.extend(self.rd.spec.observability.monitor_labels.clone());
        let body = json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {
                "name": self.rd.name_any(),
                "namespace": self.rd.namespace(),
                "labels": labels,
                "ownerReferences": [self.owner],
            },
            "spec": spec,
        });
        serde_json::from_value(body).map_err(|e| Error::Build(resource.kind.clone(), e))
    }

    /// Scrapes the `http` port of every fleet pod (NATS has none: its
    /// monitoring port is not Prometheus' format), naming fleet and component
    /// in the labels the SLO rules and dashboards select on.
    fn pod_monitor(&self) -> Result<DynamicObject, Error> {
        let relabel = |label: &str, target: &str| json!({"sourceLabels": [format!("__meta_kubernetes_pod_label_{label}")], "targetLabel": target});
        let spec = json!({
            "selector": {"matchLabels": {
                "app.kubernetes.io/name": "resizer",
                "app.kubernetes.io/instance": self.rd.name_any(),
            }},
            "podMetricsEndpoints": [{
                "port": "http",
                "path": "/metrics",
                "relabelings": [
                    relabel("app_kubernetes_io_instance", "fleet"),
                    relabel("app_kubernetes_io_component", "component"),
                ],
            }],
        });
        self.monitoring_object(&crate::monitoring::pod_monitor_resource(), Component::Api, spec)
    }

    fn prometheus_rule(&self, rules: &crate::slo::RuleFile) -> Result<DynamicObject, Error> {
        let spec = serde_json::to_value(rules).map_err(|e| Error::Build("PrometheusRule".into(), e))?;
        self.monitoring_object(&crate::monitoring::prometheus_rule_resource(), Component::Api, spec)
    }

    fn nats_config(&self) -> Result<ConfigMap, Error> {
        let name = Component::Queue.name(self.rd);
        let ns = self.rd.namespace().unwrap_or_default();
        let routes: Vec<String> = (0..self.rd.spec.queue.replicas)
            .map(|i| format!("nats://{name}-{i}.{name}.{ns}.svc:{CLUSTER_PORT}"))
            .collect();
        // POD_NAME comes from the downward API, so each server has a stable raft identity.
        // sync_interval: always fsyncs every write before it is acknowledged (DESIGN §4): a
        // usage record or key change acked by a majority must survive those servers losing power
        // together, which the default (a sync every two minutes) does not promise.
        let conf = format!(
            "server_name: $POD_NAME\n\
             port: {CLIENT_PORT}\n\
             http_port: {MONITOR_PORT}\n\
             max_payload: {max_payload}\n\
             pid_file: /var/run/nats/nats.pid\n\
             lame_duck_duration: 30s\n\
             lame_duck_grace_period: 10s\n\
             {liveness}\
             jetstream {{\n  store_dir: /data\n  max_file_store: {store}\n  sync_interval: always\n}}\n\
             {client_tls}\n\
             cluster {{\n  name: {cluster}\n  port: {CLUSTER_PORT}\n  routes: [\n{routes}\n  ]\n  {route_tls}\n}}\n\
             {authorization}",
            max_payload = contracts::subjects::MAX_PAYLOAD,
            liveness = contracts::servers::SERVER_LIVENESS,
            store = nats_store_size(&self.rd.spec.queue.storage_size),
            cluster = self.rd.name_any(),
            routes = routes.iter().map(|r| format!("    {r}")).collect::<Vec<_>>().join("\n"),
            // Client TLS (clients verify the servers), mutual TLS between servers, and
            // one user per component role: anonymous clients are refused.
            authorization = contracts::access::authorization_block(&crate::credentials::users(self.credentials)),
            client_tls = tls_block(NATS_TLS_DIR, false),
            route_tls = tls_block(NATS_TLS_DIR, true),
        );
        self.object(name, Component::Queue, json!({"data": {"nats.conf": conf}}))
    }

    fn nats_service(&self) -> Result<Service, Error> {
        let c = Component::Queue;
        self.object(
            c.name(self.rd),
            c,
            json!({"spec": {
                "clusterIP": "None",
                // Routes must resolve before the servers are ready: a cluster forms only once peers find each other.
                "publishNotReadyAddresses": true,
                "selector": selector(self.rd, c),
                "ports": [
                    {"name": "client", "port": CLIENT_PORT},
                    {"name": "cluster", "port": CLUSTER_PORT},
                    {"name": "monitor", "port": MONITOR_PORT},
                ],
            }}),
        )
    }

    fn nats_statefulset(&self) -> Result<StatefulSet, Error> {
        let c = Component::Queue;
        let q = &self.rd.spec.queue;
        let mut container = json!({
            "name": "nats",
            "image": q.image,
            "args": ["--config", "/etc/nats/nats.conf"],
            "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "ports": [
                {"name": "client", "containerPort": CLIENT_PORT},
                {"name": "cluster", "containerPort": CLUSTER_PORT},
                {"name": "monitor", "containerPort": MONITOR_PORT},
            ],
            "startupProbe": {"httpGet": {"path": "/healthz", "port": "monitor"}, "periodSeconds": 5, "failureThreshold": 60},
            "livenessProbe": {"httpGet": {"path": "/healthz?js-enabled-only=true", "port": "monitor"}, "periodSeconds": 10, "failureThreshold": 3},
            "readinessProbe": {"httpGet": {"path": "/healthz?js-server-only=true", "port": "monitor"}, "periodSeconds": 5},
            // Lame-duck mode hands clients over to the other servers before this one stops.
            "lifecycle": {"preStop": {"exec": {"command": ["nats-server", "--signal", "ldm=/var/run/nats/nats.pid"]}}},
            "volumeMounts": [
                {"name": "config", "mountPath": "/etc/nats"},
                {"name": "data", "mountPath": "/data"},
                {"name": "pid", "mountPath": "/var/run/nats"},
                {"name": "tls", "mountPath": NATS_TLS_DIR, "readOnly": true},
            ],
            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
        });
        if let Some(r) = &q.resources {
            container["resources"] = json!(r);
        }
        let volumes = json!([
            {"name": "config", "configMap": {"name": c.name(self.rd)}},
            {"name": "pid", "emptyDir": {}},
            {"name": "tls", "secret": {
                "secretName": crate::credentials::secret_name(&self.rd.name_any()),
                "defaultMode": 0o440,
                "items": [
                    {"key": crate::credentials::TLS_CERT, "path": "tls.crt"},
                    {"key": crate::credentials::TLS_KEY, "path": "tls.key"},
                    {"key": crate::credentials::CA_CERT, "path": "ca.crt"},
                ],
            }},
        ]);
        let mut template = self.pod_template(c, &q.pod, json!([container]), volumes);
        // A renewed certificate rolls the servers one by one (the user list is in the
        // ConfigMap, which nats-server reads at start).
        template["metadata"]["annotations"]["resizer.dev/nats-credentials"] =
            json!(crate::credentials::revision(self.credentials));
        // Longer than lame_duck_duration + grace so lame-duck mode finishes.
        template["spec"]["terminationGracePeriodSeconds"] = json!(60);
        let mut claim = json!({
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": q.storage_size}}},
        });
        if let Some(class) = &q.storage_class_name {
            claim["spec"]["storageClassName"] = json!(class);
        }
        self.object(
            c.name(self.rd),
            c,
            json!({"spec": {
                "replicas": q.replicas,
                "serviceName": c.name(self.rd),
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": selector(self.rd, c)},
                "template": template,
                "volumeClaimTemplates": [claim],
            }}),
        )
    }

    /// A policy admitting ingress to the component's pods on `rules` only.
    fn policy(&self, c: Component, rules: Value) -> Result<NetworkPolicy, Error> {
        self.object(
            c.name(self.rd),
            c,
            json!({"spec": {
                "podSelector": {"matchLabels": selector(self.rd, c)},
                "policyTypes": ["Ingress"],
                "ingress": rules,
            }}),
        )
    }

    /// Open to any source on `port` and closed on every other: the api is
    /// reached by the ingress controller and clients, and every component's
    /// metrics by Prometheus, wherever those run.
    fn open_policy(&self, c: Component, port: i32) -> Result<NetworkPolicy, Error> {
        self.policy(c, json!([{"ports": [{"port": port}]}]))
    }

    /// The public port from anywhere (ingress controller, clients, Prometheus);
    /// the peer port, where staged bodies are read, from the fleet's workers only.
    fn api_policy(&self) -> Result<NetworkPolicy, Error> {
        self.policy(
            Component::Api,
            json!([
                {"ports": [{"port": HTTP_PORT}]},
                {"from": [{"podSelector": {"matchLabels": selector(self.rd, Component::Worker)}}], "ports": [{"port": PEER_PORT}]},
            ]),
        )
    }

    /// api-servers reach the auth-cache over NATS, not HTTP; its HTTP port
    /// serves probes and `/metrics`, so Prometheus (any namespace) is the client.
    fn auth_cache_policy(&self) -> Result<NetworkPolicy, Error> {
        self.policy(
            Component::AuthCache,
            json!([{"from": [{"namespaceSelector": {}}], "ports": [{"port": HTTP_PORT}]}]),
        )
    }

    fn nats_policy(&self) -> Result<NetworkPolicy, Error> {
        let c = Component::Queue;
        let mut clients: Vec<Value> =
            [Component::Api, Component::Worker, Component::AuthCache, Component::UsageAggregator]
                .into_iter()
                .map(|f| json!({"podSelector": {"matchLabels": selector(self.rd, f)}}))
                .collect();
        // Both selectors in one peer: operator pods, and only those in the operator's namespace.
        clients.push(json!({
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.operator_namespace}},
            "podSelector": {"matchLabels": {OPERATOR_LABEL.0: OPERATOR_LABEL.1}},
        }));
        self.policy(
            c,
            json!([
                {"from": clients, "ports": [{"port": CLIENT_PORT}]},
                {"from": [{"podSelector": {"matchLabels": selector(self.rd, c)}}], "ports": [{"port": CLUSTER_PORT}]},
                // The monitoring endpoint: Prometheus and the operator's health reads, from wherever they run.
                {"ports": [{"port": MONITOR_PORT}]},
            ]),
        )
    }
}

/// nats-server's `tls` block for the fleet's certificate, key and CA in `dir`;
/// `verify` makes the peer present a certificate of the same CA too (routes).
pub fn tls_block(dir: &str, verify: bool) -> String {
    let verify = if verify { ", verify: true" } else { "" };
    format!(
        "tls {{ cert_file: \"{dir}/tls.crt\", key_file: \"{dir}/tls.key\", ca_file: \"{dir}/ca.crt\", timeout: 5{verify} }}"
    )
}

/// nats-server wants a byte size ("10G"); Kubernetes quantities say "10Gi". Keep
/// room for the filesystem's own overhead by handing NATS the decimal unit.
fn nats_store_size(quantity: &str) -> String {
    quantity.trim_end_matches('i').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{IngressSpec, ResizeDeploymentSpec};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn rd() -> ResizeDeployment {
        let spec: ResizeDeploymentSpec =
            serde_json::from_value(json!({"sla": {"targetRequestsPerSecond": 1000.0}})).unwrap();
        let mut rd = ResizeDeployment::new("photos", spec);
        rd.metadata.namespace = Some("media".into());
        rd.metadata.uid = Some("1234".into());
        rd
    }

    static CREDENTIALS_FOR_TESTS: std::sync::LazyLock<BTreeMap<String, String>> = std::sync::LazyLock::new(|| {
        let names = crate::credentials::server_names("photos-nats", "media");
        crate::credentials::complete(BTreeMap::new(), &names, time::OffsetDateTime::now_utc()).unwrap().0
    });

    fn inputs(replicas: Replicas) -> Inputs<'static> {
        Inputs {
            replicas,
            operator_namespace: "resizer-system",
            monitoring: Default::default(),
            otlp_endpoint: None,
            credentials: &CREDENTIALS_FOR_TESTS,
        }
    }

    fn all(rd: &ResizeDeployment) -> Children {
        children(rd, &inputs(Replicas { api: 3, workers: Some(7) })).unwrap()
    }

    /// A NetworkPolicy's ingress rules, as JSON.
    fn rules(c: &Children, name: &str) -> Vec<Value> {
        let np = c.network_policies.iter().find(|n| n.metadata.name.as_deref() == Some(name)).unwrap();
        let v = serde_json::to_value(np).unwrap();
        assert_eq!(v["spec"]["policyTypes"], json!(["Ingress"]));
        v["spec"]["ingress"].as_array().unwrap().clone()
    }

    fn env(c: &Children, deployment: &str) -> BTreeMap<String, String> {
        let d = c.deployments.iter().find(|d| d.metadata.name.as_deref() == Some(deployment)).unwrap();
        let ctr = &d.spec.template.spec.as_ref().unwrap().containers[0];
        ctr.env.iter().flatten().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect()
    }

    #[test]
    fn every_child_is_owned_by_the_resource() {
        let rd = rd();
        let c = all(&rd);
        let metas: Vec<_> = c
            .service_accounts
            .iter()
            .map(|o| &o.metadata)
            .chain(c.config_maps.iter().map(|o| &o.metadata))
            .chain(c.services.iter().map(|o| &o.metadata))
            .chain(c.stateful_sets.iter().map(|o| &o.metadata))
            .chain(c.deployments.iter().map(|o| &o.metadata))
            .chain(c.disruption_budgets.iter().map(|o| &o.metadata))
            .chain(c.network_policies.iter().map(|o| &o.metadata))
            .collect();
        assert_eq!(metas.len(), 5 + 2 + 4 + 1 + 4 + 2 + 5);
        for m in metas {
            let owners = m.owner_references.as_ref().unwrap();
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].kind, "ResizeDeployment");
            assert_eq!(owners[0].controller, Some(true));
            assert_eq!(m.namespace.as_deref(), Some("media"));
        }
    }

    #[test]
    fn nats_is_a_three_node_jetstream_cluster() {
        let rd = rd();
        let c = all(&rd);
        let sts = &c.stateful_sets[0];
        let spec = &sts.spec;
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.service_name.as_deref(), Some("photos-nats"));
        let pod = spec.template.spec.as_ref().unwrap();
        let ctr = &pod.containers[0];
        assert!(ctr.lifecycle.as_ref().unwrap().pre_stop.is_some());
        assert!(
            ctr.liveness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .as_deref()
                .unwrap()
                .starts_with("/healthz")
        );
        let headless = c.services.iter().find(|s| s.metadata.name.as_deref() == Some("photos-nats")).unwrap();
        let hs = headless.spec.as_ref().unwrap();
        assert_eq!(hs.cluster_ip.as_deref(), Some("None"));
        assert_eq!(hs.publish_not_ready_addresses, Some(true));
        let conf = &c.config_maps[0].data.as_ref().unwrap()["nats.conf"];
        assert!(conf.contains("max_payload: 8388608"), "{conf}");
        assert!(conf.contains(contracts::servers::SERVER_LIVENESS), "{conf}");
        assert!(conf.contains("store_dir: /data"));
        // Inside the jetstream block, where nats-server reads it.
        let js = &conf[conf.find("jetstream {").unwrap()..];
        let js = &js[..js.find('}').unwrap()];
        assert!(js.contains("\n  sync_interval: always\n"), "{conf}");
        for i in 0..3 {
            assert!(conf.contains(&format!("nats://photos-nats-{i}.photos-nats.media.svc:6222")), "{conf}");
        }
        assert_eq!(spec.volume_claim_templates.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn api_spreads_and_workers_follow_the_math() {
        let rd = rd();
        let c = all(&rd);
        let api = c.deployments.iter().find(|d| d.metadata.name.as_deref() == Some("photos-api")).unwrap();
        let spec = &api.spec;
        assert_eq!(spec.replicas, Some(3));
        assert!(spec.template.spec.as_ref().unwrap().topology_spread_constraints.is_some());
        let sleep =
            spec.template.spec.as_ref().unwrap().containers[0].lifecycle.clone().unwrap().pre_stop.unwrap().sleep;
        assert_eq!(sleep.unwrap().seconds, API_PRE_STOP_SECONDS);
        let worker = c.deployments.iter().find(|d| d.metadata.name.as_deref() == Some("photos-worker")).unwrap();
        assert_eq!(worker.spec.replicas, Some(7));
        let probe = worker.spec.template.spec.as_ref().unwrap().containers[0].readiness_probe.clone().unwrap();
        assert_eq!(probe.http_get.unwrap().path.as_deref(), Some("/healthz"));
        assert!(c.ingresses.is_empty());
    }

    #[test]
    fn hpa_owned_workers_have_no_replicas_field() {
        let rd = rd();
        let c = children(&rd, &inputs(Replicas { api: 2, workers: None })).unwrap();
        let worker = c.deployments.iter().find(|d| d.metadata.name.as_deref() == Some("photos-worker")).unwrap();
        assert_eq!(worker.spec.replicas, None);
        let v = serde_json::to_value(worker).unwrap();
        assert!(v["spec"].get("replicas").is_none());
    }

    #[test]
    fn the_auth_cache_admits_its_http_port_from_any_namespace() {
        let rules = rules(&all(&rd()), "photos-auth-cache");
        // api-servers ask over NATS; this port is probes and /metrics, scraped from Prometheus's namespace.
        assert_eq!(rules, vec![json!({"from": [{"namespaceSelector": {}}], "ports": [{"port": 8080}]})]);
    }

    #[test]
    fn api_worker_and_usage_admit_their_port_from_anywhere() {
        let c = all(&rd());
        for (name, port) in [("photos-api", 8080), ("photos-worker", 9091), ("photos-usage-aggregator", 8080)] {
            let rules = rules(&c, name);
            assert_eq!(rules[0], json!({"ports": [{"port": port}]}), "{name}");
            assert_eq!(rules.len(), if name == "photos-api" { 2 } else { 1 }, "{name}");
            let np = c.network_policies.iter().find(|n| n.metadata.name.as_deref() == Some(name)).unwrap();
            let sel = np.spec.as_ref().unwrap().pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap();
            assert_eq!(sel["app.kubernetes.io/component"], name.trim_start_matches("photos-"));
        }
    }

    #[test]
    fn only_workers_reach_the_api_servers_staged_bodies() {
        let c = all(&rd());
        let rules = rules(&c, "photos-api");
        assert_eq!(
            rules[1],
            json!({"from": [{"podSelector": {"matchLabels": selector(&rd(), Component::Worker)}}], "ports": [{"port": 8081}]})
        );
        let env = env(&c, "photos-api");
        assert_eq!(env["PEER_LISTEN"], "0.0.0.0:8081");
        assert_eq!(env["PEER_ADVERTISE"], "http://$(POD_IP):8081");
        let d = c.deployments.iter().find(|d| d.metadata.name.as_deref() == Some("photos-api")).unwrap();
        let vars = d.spec.template.spec.as_ref().unwrap().containers[0].env.clone().unwrap();
        let pod_ip = vars.iter().position(|v| v.name == "POD_IP").unwrap();
        let source = vars[pod_ip].value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
        assert_eq!(source.field_path, "status.podIP");
        assert!(pod_ip < vars.iter().position(|v| v.name == "PEER_ADVERTISE").unwrap(), "defined before it is used");
    }

    #[test]
    fn nats_admits_clients_from_the_fleet_and_the_operators_namespace_only() {
        let rules = rules(&all(&rd()), "photos-nats");
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0]["ports"], json!([{"port": 4222}]));
        let from = rules[0]["from"].as_array().unwrap();
        let components: Vec<&str> = from[..4]
            .iter()
            .map(|p| {
                assert!(p.get("namespaceSelector").is_none(), "a fleet peer is in the fleet's namespace: {p}");
                p["podSelector"]["matchLabels"]["app.kubernetes.io/component"].as_str().unwrap()
            })
            .collect();
        assert_eq!(components, ["api", "worker", "auth-cache", "usage-aggregator"]);
        assert_eq!(
            from[4],
            json!({
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "resizer-system"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "resizer-operator"}},
            })
        );
        assert_eq!(from.len(), 5);
        assert_eq!(
            rules[1],
            json!({"from": [{"podSelector": {"matchLabels": {
                "app.kubernetes.io/name": "resizer", "app.kubernetes.io/instance": "photos", "app.kubernetes.io/component": "nats",
            }}}], "ports": [{"port": 6222}]})
        );
        assert_eq!(rules[2], json!({"ports": [{"port": 8222}]}));
    }

    #[test]
    fn the_usage_aggregator_has_a_service_and_no_admin_token() {
        let c = all(&rd());
        let svc = c.services.iter().find(|s| s.metadata.name.as_deref() == Some("photos-usage-aggregator")).unwrap();
        let spec = svc.spec.as_ref().unwrap();
        let port = &spec.ports.as_ref().unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("http"), 80));
        assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
        assert_eq!(spec.selector.as_ref().unwrap()["app.kubernetes.io/component"], "usage-aggregator");
        assert!(!env(&c, "photos-usage-aggregator").contains_key("USAGE_ADMIN_TOKEN"));
        assert_eq!(env(&c, "photos-api")["AUTH"], "required");
        assert_eq!(env(&c, "photos-usage-aggregator")["AUTH"], "required");
        assert_eq!(env(&c, "photos-api")["LATENCY_TARGET"], "500ms");
        let mut slow = rd();
        slow.spec.sla.p99_latency_ms = 2000;
        assert_eq!(env(&all(&slow), "photos-api")["LATENCY_TARGET"], "2000ms");
        for d in ["photos-api", "photos-worker", "photos-auth-cache", "photos-usage-aggregator"] {
            assert_eq!(env(&c, d)["LOG_FORMAT"], "json", "{d}");
        }
    }

    #[test]
    fn ingress_with_tls() {
        let mut rd = rd();
        rd.spec.api.ingress = Some(IngressSpec {
            class_name: Some("nginx".into()),
            host: Some("img.example.com".into()),
            tls_secret_name: Some("img-tls".into()),
        });
        let c = all(&rd);
        let ing = c.ingresses[0].spec.as_ref().unwrap();
        assert_eq!(ing.ingress_class_name.as_deref(), Some("nginx"));
        assert_eq!(ing.tls.as_ref().unwrap()[0].secret_name.as_deref(), Some("img-tls"));
        let rule = &ing.rules.as_ref().unwrap()[0];
        assert_eq!(rule.host.as_deref(), Some("img.example.com"));
        let paths: Vec<(&str, &str, &str)> = rule
            .http
            .as_ref()
            .unwrap()
            .paths
            .iter()
            .map(|p| {
                let svc = p.backend.service.as_ref().unwrap();
                (p.path.as_deref().unwrap(), p.path_type.as_str(), svc.name.as_str())
            })
            .collect();
        assert_eq!(
            paths,
            [("/v1/usage", "Prefix", "photos-usage-aggregator"), ("/", "Prefix", "photos-api")],
            "the usage prefix first"
        );
        for p in &rule.http.as_ref().unwrap().paths {
            let port = p.backend.service.as_ref().unwrap().port.as_ref().unwrap();
            assert_eq!(port.name.as_deref(), Some("http"));
        }
    }

    fn template_annotations(c: &Children, deployment: &str) -> BTreeMap<String, String> {
        let d = c.deployments.iter().find(|d| d.metadata.name.as_deref() == Some(deployment)).unwrap();
        d.spec.template.metadata.as_ref().unwrap().annotations.clone().unwrap_or_default()
    }

    #[test]
    fn without_the_prometheus_operator_pods_are_annotated_and_rules_sit_in_a_config_map() {
        let mut rd = rd();
        rd.spec.api.pod.annotations.insert("prometheus.io/path".into(), "/custom".into());
        let c = all(&rd);
        assert!(c.pod_monitors.is_empty() && c.prometheus_rules.is_empty());
        let worker = template_annotations(&c, "photos-worker");
        assert_eq!(worker["prometheus.io/scrape"], "true");
        assert_eq!(worker["prometheus.io/port"], "9091");
        assert_eq!(template_annotations(&c, "photos-api")["prometheus.io/path"], "/custom", "the spec's own win");
        let rules =
            c.config_maps.iter().find(|m| m.metadata.name.as_deref() == Some("photos-prometheus-rules")).unwrap();
        let file = &rules.data.as_ref().unwrap()[RULES_KEY];
        assert_eq!(file, &crate::slo::rules(&rd).to_yaml());
    }

    #[test]
    fn with_the_prometheus_operator_a_pod_monitor_and_a_prometheus_rule() {
        let mut rd = rd();
        rd.spec.observability.monitor_labels.insert("release".into(), "kube-prometheus-stack".into());
        let monitoring = crate::monitoring::Monitoring { pod_monitor: true, prometheus_rule: true };
        let c = children(&rd, &Inputs { monitoring, ..inputs(Replicas { api: 2, workers: Some(2) }) }).unwrap();
        assert!(!template_annotations(&c, "photos-worker").contains_key("prometheus.io/scrape"));
        let pm = serde_json::to_value(&c.pod_monitors[0]).unwrap();
        assert_eq!(pm["kind"], "PodMonitor");
        assert_eq!(pm["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(pm["metadata"]["labels"]["release"], "kube-prometheus-stack");
        assert_eq!(pm["metadata"]["ownerReferences"][0]["kind"], "ResizeDeployment");
        assert_eq!(pm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"], "photos");
        let ep = &pm["spec"]["podMetricsEndpoints"][0];
        assert_eq!(ep["port"], "http");
        let targets: Vec<&str> =
            ep["relabelings"].as_array().unwrap().iter().map(|r| r["targetLabel"].as_str().unwrap()).collect();
        assert_eq!(targets, ["fleet", "component"], "the labels the SLO rules select on");
        let pr = serde_json::to_value(&c.prometheus_rules[0]).unwrap();
        assert_eq!(pr["kind"], "PrometheusRule");
        assert_eq!(pr["spec"], serde_json::to_value(crate::slo::rules(&rd)).unwrap());
    }

    #[test]
    fn every_component_exports_traces_where_asked() {
        let c = all(&rd());
        assert!(!env(&c, "photos-api").contains_key("OTEL_EXPORTER_OTLP_ENDPOINT"), "no endpoint: no export");
        let operator_default =
            Inputs { otlp_endpoint: Some("http://otel.obs:4318"), ..inputs(Replicas { api: 1, workers: Some(1) }) };
        let c = children(&rd(), &operator_default).unwrap();
        for d in ["photos-api", "photos-worker", "photos-auth-cache", "photos-usage-aggregator"] {
            assert_eq!(env(&c, d)["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://otel.obs:4318", "{d}");
        }
        let mut own = rd();
        own.spec.observability.otlp_endpoint = Some("http://tempo.team:4318".into());
        let c = children(&own, &operator_default).unwrap();
        assert_eq!(env(&c, "photos-worker")["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://tempo.team:4318", "the spec wins");
    }

    #[test]
    fn service_accounts_carry_no_token() {
        let rd = rd();
        for sa in all(&rd).service_accounts {
            assert_eq!(sa.automount_service_account_token, Some(false));
        }
    }

    #[test]
    fn every_pod_mounts_its_own_key_and_the_servers_speak_tls_to_known_users_only() {
        let c = all(&rd());
        let conf = &c.config_maps[0].data.as_ref().unwrap()["nats.conf"];
        assert!(conf.contains("authorization {"), "{conf}");
        for user in crate::credentials::users(&CREDENTIALS_FOR_TESTS) {
            assert!(conf.contains(&user.public_key), "{} is a user", user.role.name());
        }
        let seeds: Vec<&String> =
            CREDENTIALS_FOR_TESTS.iter().filter(|(k, _)| k.ends_with(".nk")).map(|(_, v)| v).collect();
        assert!(seeds.iter().all(|seed| !conf.contains(seed.as_str())), "no seed in the ConfigMap");
        let cluster = &conf[conf.find("cluster {").unwrap()..];
        assert!(cluster.contains("verify: true"), "routes are mutual TLS: {cluster}");
        assert!(conf[..conf.find("cluster {").unwrap()].contains("tls {"), "clients speak TLS: {conf}");
        for d in &c.deployments {
            let pod = serde_json::to_value(d).unwrap()["spec"]["template"].clone();
            let items = &pod["spec"]["volumes"][0]["secret"]["items"];
            let keys: Vec<&str> = items.as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap()).collect();
            let component = d.metadata.labels.as_ref().unwrap()["app.kubernetes.io/component"].clone();
            let role = Component::ALL.into_iter().find(|c| c.as_str() == component).unwrap().role().unwrap();
            assert_eq!(keys, [crate::credentials::seed_key(role).as_str(), crate::credentials::CA_CERT], "{component}");
            let env = serde_json::to_string(&pod["spec"]["containers"][0]["env"]).unwrap();
            assert!(
                seeds.iter().all(|seed| !env.contains(seed.as_str())) && !env.contains("BEGIN"),
                "{component}: {env}"
            );
        }
        let set = serde_json::to_value(&c.stateful_sets[0]).unwrap()["spec"]["template"].clone();
        assert!(set["metadata"]["annotations"]["resizer.dev/nats-credentials"].as_str().is_some_and(|r| r.len() == 16));
        let secret = credentials_secret(&rd(), &CREDENTIALS_FOR_TESTS).unwrap();
        assert_eq!(secret.metadata.owner_references.as_ref().unwrap()[0].kind, "ResizeDeployment");
    }
}
