#!/usr/bin/env bash
# The Helm chart against a real control plane of its own (e2e/controlplane/up.sh):
# the scenario in e2e/scenarios/chart.sh, which the kind e2e runs too.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
cd "$REPO_ROOT"
bash scripts/install-k8s-tools.sh >/dev/null
export KUBECTL="$RESIZER_BIN/kubectl" HELM="$RESIZER_BIN/helm"
# The operator binary runs with the chart's ServiceAccount token (no kubelet runs its pods here).
cargo build -q --workspace --bins # the whole workspace: the same dependency features as every other stage
export OPERATOR_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/operator"

source e2e/controlplane/session.sh
control_plane_up
bash e2e/scenarios/chart.sh
