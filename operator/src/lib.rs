//! Kubernetes operator for the `ResizeDeployment` custom resource: a platform
//! team declares an SLA (target rate, p99 latency) and capacity inputs, and the
//! operator runs the whole resizing fleet sized from them (DESIGN §3, §4).
//!
//! # Layout
//! - [`crd`]: the resource's spec and status types, CEL rules and printer columns.
//! - [`capacity`]: the capacity math and the scaling decision, pure.
//! - [`desired`]: the child objects as a pure function of spec and replica counts.
//! - [`credentials`]: the fleet's NATS keys, CA and server certificate in one Secret, pure.
//! - [`slo`]: the SLA as Prometheus recording rules and burn-rate alerts, pure.
//! - [`monitoring`]: whether the cluster has the Prometheus Operator's CRDs.
//! - [`queue`]: what the operator reads from JetStream, behind a trait.
//! - [`failover`]: when to step a browned-out JOBS leader down, pure.
//! - [`reconcile`]: one reconcile round as its phases, the controller loop and its error policy.
//! - [`apply`]: server-side apply of the children, pruning those the spec dropped
//!   (which ones is pure), the status patch.
//! - [`pods`]: why a component's pods cannot run (unschedulable, image not pulled), pure.
//! - [`queue_leader`]: stepping the JOBS leader down and mirroring it into a Lease.
//! - [`conditions`]: the condition types and reasons, and how they are set.
//! - [`events`]: the Events on the resource, their reasons and actions.
//! - [`leader`]: Lease-based leader election; only the holder reconciles.
//! - [`metrics`]: Prometheus metrics and the `/metrics`, `/healthz`, `/readyz` endpoints.
//! - [`error`]: the errors of a round.
//!
//! The binary (`main.rs`) wires these together; `bin/crdgen.rs` prints the CRD
//! committed in `crds/` (and in the Helm chart, `charts/resizer/crds/`). The
//! chart installs the operator with its RBAC; `charts/resizer/examples/` holds a
//! small fleet to apply.
//!
//! # Running
//! `operator --lease-namespace NS` with a kubeconfig (or in a pod, with
//! `POD_NAME`/`POD_NAMESPACE` from the downward API). Replicas compete for the
//! `resizer-operator` Lease; the holder reconciles, the others wait and serve
//! `/metrics`. Outside the cluster, `--nats-url` points the queue readings at
//! a reachable NATS instead of each fleet's in-cluster service.
//!
//! # Tests
//! Unit tests cover the pure parts and reconcile rounds over a mock apiserver;
//! `tests/queue.rs` runs against a real nats-server; `tests/controlplane.rs`
//! against a real kube-apiserver (`scripts/test.d/40-operator.sh`).

pub mod apply;
pub mod capacity;
pub mod conditions;
pub mod crd;
pub mod credentials;
pub mod desired;
pub mod error;
pub mod events;
pub mod failover;
#[cfg(test)]
mod fixtures;
pub mod leader;
pub mod metrics;
pub mod monitoring;
pub mod pods;
pub mod queue;
pub mod queue_leader;
pub mod reconcile;
pub mod slo;
