//! The `ResizeDeployment` custom resource: what a platform team declares
//! (SLA and capacity inputs) and what the operator reports back.
//!
//! Every rule the apiserver can check is a CEL rule or a schema bound here, so
//! a bad spec is refused at `kubectl apply` time; the few checks CEL cannot
//! express live in [`ResizeDeploymentSpec::problems`].

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A whole resizing fleet, sized from its SLA.
// clippy reads the repeated `type_ = ...` keys of separate printcolumn entries as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "resizer.dev",
    version = "v1alpha1",
    kind = "ResizeDeployment",
    namespaced,
    shortname = "rd",
    status = "ResizeDeploymentStatus",
    printcolumn(name = "Target", type_ = "number", json_path = ".spec.sla.targetRequestsPerSecond"),
    printcolumn(name = "Workers", type_ = "integer", json_path = ".status.components.worker.ready"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".status.components.worker.desired"),
    printcolumn(name = "Queue-Leader", type_ = "string", json_path = ".status.queue.leader"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ResizeDeploymentSpec {
    pub sla: Sla,
    #[serde(default)]
    pub capacity: Capacity,
    #[serde(default)]
    pub api: ApiSpec,
    #[serde(default)]
    pub worker: WorkerSpec,
    #[serde(default)]
    pub queue: QueueSpec,
    #[serde(default)]
    pub auth_cache: AuthCacheSpec,
    #[serde(default)]
    pub usage_aggregator: UsageAggregatorSpec,
}

/// What the fleet promises.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sla {
    /// Requests per second the fleet must sustain (λ).
    #[x_kube(validation = Rule::new("self > 0.0").message("targetRequestsPerSecond must be positive"))]
    pub target_requests_per_second: f64,
    /// p99 end-to-end latency target in milliseconds.
    #[serde(default = "default_p99_ms")]
    #[schemars(range(min = 1))]
    pub p99_latency_ms: i32,
    /// Availability target, e.g. 0.999.
    #[serde(default = "default_availability")]
    #[x_kube(validation = Rule::new("self > 0.0 && self < 1.0").message("availability must be between 0 and 1"))]
    pub availability: f64,
    /// Largest accepted image; bounded by the queue's message size.
    #[serde(default = "default_max_image_bytes")]
    #[x_kube(validation = Rule::new("self > 0 && self <= 8372224").message("maxImageBytes must be within the queue's 8 MiB max_payload minus header room"))]
    pub max_image_bytes: i64,
}

/// Inputs of the capacity math (DESIGN §3).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "self.minWorkers <= self.maxWorkers", "message": "minWorkers must not exceed maxWorkers"}]))]
#[serde(default)]
pub struct Capacity {
    /// Headroom h over the target rate, e.g. 0.2 for 20 %.
    #[schemars(range(min = 0.0, max = 10.0))]
    pub headroom: f64,
    /// Conversions per core per second (μ), as measured by the benchmark.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self > 0.0", "message": "conversionsPerCorePerSecond must be positive"}]))]
    pub conversions_per_core_per_second: f64,
    /// Cores per worker pod (c); each worker runs one job per core.
    #[schemars(range(min = 1))]
    pub cores_per_worker: i32,
    /// Requests per second one api replica handles (r).
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self > 0.0", "message": "apiRequestsPerSecondPerReplica must be positive"}]))]
    pub api_requests_per_second_per_replica: f64,
    /// Measured service time of one job, subtracted from the p99 target to get the drain budget.
    #[schemars(range(min = 0))]
    pub service_time_ms: i32,
    /// Fewest worker pods, however idle the queue.
    #[schemars(range(min = 0))]
    pub min_workers: i32,
    /// Most worker pods; a target rate that needs more at baseline is refused as InvalidSpec.
    #[schemars(range(min = 1))]
    pub max_workers: i32,
}

impl Default for Capacity {
    fn default() -> Self {
        Self {
            headroom: 0.2,
            conversions_per_core_per_second: 10.0,
            cores_per_worker: 1,
            api_requests_per_second_per_replica: 5000.0,
            service_time_ms: 50,
            min_workers: 1,
            max_workers: 100,
        }
    }
}

/// Pod settings a platform team may need that the operator has no opinion on.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodSettings {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// The api tier; its replica count comes from the capacity math.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[serde(default)]
pub struct ApiSpec {
    /// Container image of the api-server.
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default)]
    pub pod: PodSettings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
}

impl Default for ApiSpec {
    fn default() -> Self {
        Self { image: "resizer/api-server:0.1.0".into(), resources: None, pod: PodSettings::default(), ingress: None }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.tlsSecretName) || has(self.host)").message("ingress TLS needs a host"))]
pub struct IngressSpec {
    /// IngressClass to use; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
}

/// The worker fleet; its replica count comes from the capacity math unless an HPA owns it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[serde(default)]
pub struct WorkerSpec {
    /// Container image of the worker.
    pub image: String,
    /// Defaults to exactly `capacity.coresPerWorker` CPUs, requested and limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default)]
    pub pod: PodSettings,
}

impl Default for WorkerSpec {
    fn default() -> Self {
        Self { image: "resizer/worker:0.1.0".into(), resources: None, pod: PodSettings::default() }
    }
}

/// The NATS JetStream cluster.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[serde(default)]
pub struct QueueSpec {
    /// nats-server image; 2.12.3 or later (earlier releases can lose acknowledged writes).
    pub image: String,
    /// Raft needs an odd member count to keep a majority through one loss.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self >= 1 && self % 2 == 1", "message": "queue replicas must be odd (raft quorum)"}]))]
    pub replicas: i32,
    /// Size of each server's JetStream volume, e.g. `10Gi`.
    pub storage_size: String,
    /// StorageClass of the JetStream volumes; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default)]
    pub pod: PodSettings,
}

impl Default for QueueSpec {
    fn default() -> Self {
        Self {
            image: "nats:2.12.3-alpine".into(),
            replicas: 3,
            storage_size: "10Gi".into(),
            storage_class_name: None,
            resources: None,
            pod: PodSettings::default(),
        }
    }
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[serde(default)]
pub struct AuthCacheSpec {
    /// Container image of the auth-cache.
    pub image: String,
    #[schemars(range(min = 1))]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default)]
    pub pod: PodSettings,
}

impl Default for AuthCacheSpec {
    fn default() -> Self {
        Self { image: "resizer/auth-cache:0.1.0".into(), replicas: 2, resources: None, pod: PodSettings::default() }
    }
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[serde(default)]
pub struct UsageAggregatorSpec {
    /// Container image of the usage-aggregator.
    pub image: String,
    #[schemars(range(min = 0))]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default)]
    pub pod: PodSettings,
}

impl Default for UsageAggregatorSpec {
    fn default() -> Self {
        Self {
            image: "resizer/usage-aggregator:0.1.0".into(),
            replicas: 1,
            resources: None,
            pod: PodSettings::default(),
        }
    }
}

fn default_p99_ms() -> i32 {
    500
}
fn default_availability() -> f64 {
    0.999
}
fn default_max_image_bytes() -> i64 {
    (contracts::subjects::MAX_PAYLOAD - contracts::subjects::HEADER_ALLOWANCE) as i64
}

impl ResizeDeploymentSpec {
    /// Contradictions CEL cannot express (they need the capacity math); each
    /// is a reason the operator refuses to touch the children.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let baseline = crate::capacity::baseline(&self.sla, &self.capacity);
        if baseline.workers > self.capacity.max_workers {
            out.push(format!(
                "the target rate needs {} workers at baseline but maxWorkers is {}",
                baseline.workers, self.capacity.max_workers
            ));
        }
        if self.capacity.service_time_ms >= self.sla.p99_latency_ms {
            out.push(format!(
                "serviceTimeMs {} leaves no queueing budget within p99LatencyMs {}",
                self.capacity.service_time_ms, self.sla.p99_latency_ms
            ));
        }
        out
    }
}

/// What the operator observed and decided.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResizeDeploymentStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub components: ComponentsStatus,
    #[serde(default)]
    pub queue: QueueStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityStatus>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ComponentsStatus {
    pub api: ReplicaCount,
    pub worker: ReplicaCount,
    pub queue: ReplicaCount,
    pub auth_cache: ReplicaCount,
    pub usage_aggregator: ReplicaCount,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaCount {
    pub ready: i32,
    pub desired: i32,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    /// The JOBS stream's raft leader, as JetStream reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_pending: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_ack_pending: Option<i64>,
    /// Last stream sequence and when it was read: the next reading turns them into an arrival rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sequence: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled_at: Option<String>,
    /// When the operator last asked the leader to step down (seconds since the epoch), for the cooldown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step_down: Option<i64>,
}

/// The capacity computation, inputs and outputs, so "why this many workers" is answered by the CR itself.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CapacityStatus {
    pub target_rate: f64,
    pub headroom: f64,
    pub conversions_per_core_per_second: f64,
    pub cores_per_worker: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_arrival_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<i64>,
    pub drain_budget_seconds: f64,
    pub baseline_workers: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_workers: Option<i32>,
    pub recommended_workers: i32,
    pub desired_workers: i32,
    pub api_replicas: i32,
    pub decision: String,
    /// Recent recommendations (the scale-down window), kept here so a restarted operator remembers them.
    #[serde(default)]
    pub recent: Vec<Recommendation>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// Seconds since the Unix epoch.
    pub at: i64,
    pub workers: i32,
}
