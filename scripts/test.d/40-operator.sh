#!/usr/bin/env bash
# The operator: CRD drift check, then its integration test against a real
# control plane (etcd + kube-apiserver + kube-controller-manager on loopback,
# started by e2e/controlplane/up.sh). Fails, never skips, when a piece is missing.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
cd "$REPO_ROOT"

# Every cargo call here selects the whole workspace, so dependencies keep the
# features stage 10 built them with and nothing is compiled twice.
cargo build -q --workspace --bins
target="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug"
if ! diff <("$target/crdgen") crds/resizedeployments.yaml; then
  log "crds/resizedeployments.yaml differs from the CRD types; regenerate it:"
  log "  cargo run -q -p operator --bin crdgen > crds/resizedeployments.yaml && cp crds/resizedeployments.yaml charts/resizer/crds/"
  exit 1
fi

if [ ! -f e2e/controlplane/up.sh ]; then
  log "e2e/controlplane/up.sh is missing: no control plane to test the operator against"
  exit 1
fi
if [ -f scripts/install-k8s-tools.sh ]; then bash scripts/install-k8s-tools.sh >/dev/null; fi
KUBECTL="$(command -v kubectl)"
export KUBECTL

# Build before the control plane starts, so it is not kept waiting on a compile.
cargo test --workspace --test controlplane --no-run

source e2e/controlplane/session.sh
control_plane_up
log "control plane up, KUBECONFIG=$KUBECONFIG, kubectl $KUBECTL"

"$KUBECTL" apply -f crds/
kube_wait 60 --for condition=established crd/resizedeployments.resizer.dev
cargo test --workspace --test controlplane -- --ignored --nocapture
