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
    #[serde(default)]
    pub observability: ObservabilitySpec,
}

/// Where the fleet's traces go and how Prometheus finds its metrics and rules.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[serde(default)]
pub struct ObservabilitySpec {
    /// OTLP/HTTP endpoint every component exports traces to (e.g.
    /// `http://otel-collector.observability:4318`). Unset: the operator's own
    /// endpoint (the chart's `otlpEndpoint`); neither: no export.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// Labels for the PodMonitor and PrometheusRule, for a Prometheus that
    /// selects them by label (e.g. `release: kube-prometheus-stack`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub monitor_labels: BTreeMap<String, String>,
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
    /// Largest accepted image (bodies are staged at the api-server, not carried by the queue).
    #[serde(default = "default_max_image_bytes")]
    #[x_kube(validation = Rule::new("self > 0 && self <= 67108864").message("maxImageBytes must be within 64 MiB"))]
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
    contracts::staging::DEFAULT_MAX_INPUT_BYTES as i64
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
    /// The `metadata.generation` of the spec this status describes; older than the
    /// generation means the operator has not acted on the latest change yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (the fleet as declared runs and its queue can be read; when pods cannot
    /// run, the reason names the component, e.g. WorkerUnschedulable or
    /// ApiImagePullFailed, and the message carries the scheduler's or kubelet's words),
    /// Progressing (a rollout is under way), Degraded (the spec is invalid or a write
    /// was refused), QueueHealthy (the JOBS stream can be read and its leader answers
    /// in time) and Scaling (whether the worker count is changing, and why).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Ready and desired replicas of each component, as their workloads report them.
    #[serde(default)]
    pub components: ComponentsStatus,
    /// The last reading of the JOBS stream, which the scaling decision works from.
    #[serde(default)]
    pub queue: QueueStatus,
    /// Why this many workers: the inputs, each intermediate figure and the
    /// decision. The baseline is W = ceil(λ(1+h)/(μc)) workers and
    /// A = max(2, ceil(λ(1+h)/r)) api replicas, from targetRate λ, headroom h,
    /// conversionsPerCorePerSecond μ, coresPerWorker c and
    /// apiRequestsPerSecondPerReplica r. Once two queue readings give the arrival
    /// rate λₒ, the recommendation is max(ceil(λₒ(1+h)/(μc)), ceil((λₒ + P/T)/(μc))):
    /// enough for the arrivals plus draining the backlog P within the drain budget
    /// T = (p99LatencyMs − serviceTimeMs)/1000 seconds. That is clamped to [minWorkers, maxWorkers],
    /// applied at once upwards, downwards only to the highest recommendation of the
    /// last 5 minutes, and not at all when within 10 % of the current count. Without a
    /// queue reading the workers are kept (a new fleet starts at the baseline); with an
    /// HorizontalPodAutoscaler on the workers the operator does not set their count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityStatus>,
}

/// Ready and desired replicas per component.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ComponentsStatus {
    /// The api-server Deployment (`<name>-api`); desired is the capacity math's api replicas.
    pub api: ReplicaCount,
    /// The worker Deployment (`<name>-worker`); desired is status.capacity.desiredWorkers
    /// unless an HorizontalPodAutoscaler scales it.
    pub worker: ReplicaCount,
    /// The NATS JetStream StatefulSet (`<name>-nats`); desired is spec.queue.replicas.
    pub queue: ReplicaCount,
    /// The auth-cache Deployment (`<name>-auth-cache`); desired is spec.authCache.replicas.
    pub auth_cache: ReplicaCount,
    /// The usage-aggregator Deployment (`<name>-usage-aggregator`); desired is spec.usageAggregator.replicas.
    pub usage_aggregator: ReplicaCount,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaCount {
    /// Pods passing their readiness probe.
    pub ready: i32,
    /// Pods the workload is asked to run.
    pub desired: i32,
}

/// The last reading of the JOBS stream.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    /// The JOBS stream's raft leader, as JetStream reports it; unset while the queue cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Jobs in the stream no worker has fetched yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_pending: Option<i64>,
    /// Jobs fetched by a worker and not yet acknowledged (in progress, or lost with a worker until redelivery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_ack_pending: Option<i64>,
    /// The stream's last sequence at the reading: the next reading turns the difference into an arrival rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sequence: Option<i64>,
    /// When lastSequence was read, in seconds since the Unix epoch.
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
    /// λ: spec.sla.targetRequestsPerSecond.
    pub target_rate: f64,
    /// h: spec.capacity.headroom.
    pub headroom: f64,
    /// μ: spec.capacity.conversionsPerCorePerSecond.
    pub conversions_per_core_per_second: f64,
    /// c: spec.capacity.coresPerWorker; one worker converts μc images per second.
    pub cores_per_worker: i32,
    /// λₒ: jobs per second entering the queue between the last two readings; unset until there are two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_arrival_rate: Option<f64>,
    /// P: numPending + numAckPending at the last reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<i64>,
    /// T: seconds the backlog may take to drain, (p99LatencyMs − serviceTimeMs)/1000.
    pub drain_budget_seconds: f64,
    /// W = ceil(λ(1+h)/(μc)): the workers the declared target rate needs.
    pub baseline_workers: i32,
    /// max(ceil(λₒ(1+h)/(μc)), ceil((λₒ + P/T)/(μc))): the workers the queue asks for; unset without λₒ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_workers: Option<i32>,
    /// queueWorkers (baselineWorkers until there is one) clamped to [minWorkers, maxWorkers];
    /// without a queue reading, the count kept.
    pub recommended_workers: i32,
    /// The worker count applied after the scale-down window and the 10 % tolerance.
    pub desired_workers: i32,
    /// A = max(2, ceil(λ(1+h)/r)): api replicas; two at least so one node loss keeps the front door up.
    pub api_replicas: i32,
    /// Why desiredWorkers is what it is: Initial, ScaleUp, ScaleDown, ScaleDownWindow
    /// (a higher recommendation of the last 5 minutes holds it), WithinTolerance,
    /// Bounds (pulled back into [minWorkers, maxWorkers]) or QueueUnavailable (no reading: kept).
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
    /// The recommendedWorkers of that round.
    pub workers: i32,
}
