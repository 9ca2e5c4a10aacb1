#!/usr/bin/env bash
# Runs the whole product on a local Kubernetes node, as a platform team would
# meet it: builds a one-node cluster here (e2e/node/up.sh), builds the images
# and imports them, `helm install`s the operator, `kubectl apply`s
# charts/resizer/examples/small-node.yaml, waits for Ready=True, makes a tenant
# with an API key, starts a Prometheus that scrapes the fleet with its rules,
# and prints the endpoints and a working curl.
#
#   scripts/run-node.sh [DIR]    (root; DIR defaults to $RESIZER_CACHE/node)
#   e2e/node/down.sh DIR         stops the node and restores the machine
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO_ROOT"
dir=${1:-$RESIZER_CACHE/node}
[ ! -f "$dir/pids" ] || { log "a node already runs in $dir: e2e/node/down.sh $dir first"; exit 1; }
bash scripts/install-node-tools.sh >/dev/null
mkdir -p "$dir"
bash e2e/node/up.sh "$dir" >/dev/null
export KUBECONFIG="$dir/kubeconfig" KUBECTL="$RESIZER_BIN/kubectl" HELM="$RESIZER_BIN/helm"
IMAGES=$(bash e2e/node/images.sh "$dir" --profile "${PROFILE:-release}" | tr '\n' ' ')
PHOTO=$(find "$(bash scripts/corpus.sh)/jpeg" -name '*.jpg' | sort | head -n1)
export IMAGES PHOTO
# A Prometheus scraping the fleet with the rules the operator rendered (down.sh stops it too).
PROMETHEUS=$(bash scripts/install-observability-tools.sh | sed -n 's/^PROMETHEUS=//p')
export PROMETHEUS PROMETHEUS_DIR="$dir/prometheus" PROMETHEUS_PORT=${PROMETHEUS_PORT:-9090}
FLEET_MODE=try bash e2e/scenarios/fleet.sh
echo "KUBECONFIG=$KUBECONFIG  (kubectl get rd -n photos; stop with: e2e/node/down.sh $dir)"
