//! Kubernetes operator for the `ResizeDeployment` custom resource: a platform
//! team declares an SLA (target rate, p99 latency) and capacity inputs, and the
//! operator runs the whole resizing fleet sized from them (DESIGN §3, §4).
//!
//! # Layout
//! - [`crd`]: the resource's spec and status types, CEL rules and printer columns.
//! - [`capacity`]: the capacity math and the scaling decision, pure.
//! - [`desired`]: the child objects as a pure function of spec and replica counts.
//! - [`queue`]: what the operator reads from JetStream, behind a trait.
//! - [`reconcile`]: one reconcile round, the controller loop and its error policy.
//! - [`leader`]: Lease-based leader election; only the holder reconciles.
//! - [`metrics`]: Prometheus metrics and the `/metrics`, `/healthz`, `/readyz` endpoints.
//! - [`error`]: the errors of a round.
//!
//! The binary (`main.rs`) wires these together; `bin/crdgen.rs` prints the CRD
//! committed in `crds/`.

pub mod capacity;
pub mod crd;
pub mod desired;
pub mod error;
#[cfg(test)]
mod fixtures;
pub mod leader;
pub mod metrics;
pub mod queue;
pub mod reconcile;
