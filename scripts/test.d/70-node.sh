#!/usr/bin/env bash
# The fleet as real pods: a one-node Kubernetes cluster built here
# (e2e/node/up.sh: control plane, containerd, kubelet, kube-proxy, CoreDNS),
# the project's images imported into it, then the scenario of
# e2e/scenarios/fleet.sh (helm install → kubectl apply → Ready → resize →
# usage → live checks of the operator). Afterwards the machine must be as it
# was: no bridge, no Service route, no KUBE-/CNI- chains, sysctls restored.
# Fails, never skips, when the node cannot start.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
cd "$REPO_ROOT"
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
bash scripts/install-node-tools.sh >/dev/null
export KUBECTL="$RESIZER_BIN/kubectl" HELM="$RESIZER_BIN/helm"
# The scenario scrapes the fleet with a real Prometheus and checks the dashboards and rules against it.
tools=$(bash scripts/install-observability-tools.sh)
PROMETHEUS=$(sed -n 's/^PROMETHEUS=//p' <<<"$tools")
PROMETHEUS_OPERATOR_CRDS=$(sed -n 's/^PROMETHEUS_OPERATOR_CRDS=//p' <<<"$tools")
export PROMETHEUS PROMETHEUS_OPERATOR_CRDS
corpus=$(bash scripts/corpus.sh)
PHOTO=$(find "$corpus/jpeg" -name '*.jpg' | sort | head -n1)
export PHOTO

# dockerd (which builds the images) adds docker0 when it starts: start it before the snapshot.
bash scripts/install-docker.sh >/dev/null
before=$(mktemp)
snapshot() { # what down.sh must restore
  ip -br link | awk '{print $1}' | grep -v '^veth' | sort
  ip route | grep -v '^default' | sort
  for t in filter nat mangle raw; do iptables -t "$t" -S 2>/dev/null | grep -E '(KUBE|CNI)-' || true; done
  sysctl -n net.ipv4.ip_forward vm.overcommit_memory kernel.panic kernel.panic_on_oops
}
snapshot >"$before"
dir=$(mktemp -d /tmp/resizer-node.XXXXXX)
down() {
  local rc=$?
  $SUDO bash e2e/node/down.sh "$dir"
  if ! diff <(snapshot) "$before" >&2; then log "node: down.sh left the machine changed (diff above)"; rc=1; else log "node: machine restored"; fi
  rm -rf "$dir" "$before"
  exit $rc
}
trap down EXIT
s=$(date +%s)
$SUDO bash e2e/node/up.sh "$dir" >/dev/null
log "node: up in $(( $(date +%s) - s ))s"
export KUBECONFIG="$dir/kubeconfig" NODE_DIR="$dir"
s=$(date +%s)
IMAGES=$(bash e2e/node/images.sh "$dir" --profile debug | tr '\n' ' ')
export IMAGES
log "node: images built and imported in $(( $(date +%s) - s ))s: $IMAGES"
bash e2e/scenarios/fleet.sh
