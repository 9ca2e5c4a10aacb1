#!/usr/bin/env bash
# The end-to-end run on a kind cluster, for machines with Docker that can pull
# kind's node image and the upstream NATS and ingress-nginx images:
#   create a cluster → build and `kind load` the images → ingress-nginx →
#   the chart scenario (e2e/scenarios/chart.sh, shared with the local control
#   plane) → helm install → a fleet with an Ingress → Ready → resize a real
#   photo through the ingress → the operator scenario (operator/tests/controlplane.rs,
#   shared with the local control plane, against the installed operator) →
#   uninstall → delete the cluster.
#
#   e2e/kind/run.sh              runs if it can; otherwise says why and exits 0
#   e2e/kind/run.sh --required   exits non-zero when kind cannot run
#
# Settings: KIND_NODE_IMAGE, KIND_CLUSTER (resizer-e2e), KIND_HTTP_PORT (8088),
# INGRESS_NGINX_MANIFEST (the kind provider manifest of ingress-nginx), KEEP_CLUSTER=1.
set -euo pipefail
source "$(dirname "$0")/../../scripts/env.sh"
cd "$REPO_ROOT"
required=0
[ "${1:-}" = --required ] && required=1
KIND_VERSION=${KIND_VERSION:-0.33.0}
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5}
KIND_CLUSTER=${KIND_CLUSTER:-resizer-e2e}
KIND_HTTP_PORT=${KIND_HTTP_PORT:-8088}
INGRESS_NGINX_MANIFEST=${INGRESS_NGINX_MANIFEST:-https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-v1.13.3/deploy/static/provider/kind/deploy.yaml}
NAMESPACE=resizer-system
FLEET_NS=photos

cannot() {
  log "kind e2e cannot run here: $*"
  if [ "$required" = 1 ]; then exit 1; fi
  log "kind e2e skipped (run with --required to make this an error)"
  exit 0
}

# --- Can kind run here at all?
command -v docker >/dev/null || cannot "no docker client"
docker info >/dev/null 2>&1 || cannot "no Docker engine answers (start dockerd, or scripts/install-docker.sh)"
bash scripts/install-k8s-tools.sh >/dev/null
KUBECTL="$RESIZER_BIN/kubectl"; HELM="$RESIZER_BIN/helm"
if ! docker image inspect "$KIND_NODE_IMAGE" >/dev/null 2>&1; then
  log "pulling $KIND_NODE_IMAGE"
  timeout 600 docker pull "$KIND_NODE_IMAGE" >/dev/null 2>&1 || cannot "kind's node image $KIND_NODE_IMAGE cannot be pulled (no registry reachable)"
fi
if ! command -v kind >/dev/null; then
  log "installing kind $KIND_VERSION with go install"
  GOBIN="$RESIZER_BIN" go install "sigs.k8s.io/kind@v$KIND_VERSION" || cannot "kind does not build"
fi

# --- Cluster.
work=$(mktemp -d)
export KUBECONFIG="$work/kubeconfig"
cleanup() {
  if [ "${KEEP_CLUSTER:-0}" = 1 ]; then log "keeping cluster $KIND_CLUSTER (KUBECONFIG=$KUBECONFIG)"; return; fi
  kind delete cluster --name "$KIND_CLUSTER" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
cat >"$work/kind.yaml" <<KIND
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    labels:
      ingress-ready: "true"
    extraPortMappings:
      - containerPort: 80
        hostPort: $KIND_HTTP_PORT
        protocol: TCP
KIND
log "creating kind cluster $KIND_CLUSTER ($KIND_NODE_IMAGE)"
kind create cluster --name "$KIND_CLUSTER" --image "$KIND_NODE_IMAGE" --config "$work/kind.yaml" --kubeconfig "$KUBECONFIG" --wait 180s

# --- Images: the project's own build, loaded into the node.
log "building images"
bash scripts/build-images.sh | tee "$work/images.txt"
mapfile -t images < <(grep -Eo '^resizer/[a-z-]+:[^ ]+' "$work/images.txt")
[ "${#images[@]}" -gt 0 ] || { log "scripts/build-images.sh printed no image tags"; exit 1; }
for img in "${images[@]}"; do log "kind load $img"; kind load docker-image --name "$KIND_CLUSTER" "$img"; done
tag_of() { printf '%s\n' "${images[@]}" | sed -n "s#^resizer/$1:##p" | head -n1; }

# --- Ingress controller.
log "installing ingress-nginx"
"$KUBECTL" apply -f "$INGRESS_NGINX_MANIFEST" >/dev/null
kube_wait 300 -n ingress-nginx --for=condition=ready pod -l app.kubernetes.io/component=controller

# --- Scenario shared with the local control plane: the chart, with the operator running in pods.
IN_CLUSTER=1 KUBECTL="$KUBECTL" HELM="$HELM" OPERATOR_IMAGE_TAG="$(tag_of operator)" bash e2e/scenarios/chart.sh

# --- A fleet behind the ingress, and a real photo through it.
"$HELM" install resizer charts/resizer -n "$NAMESPACE" --create-namespace --set "image.tag=$(tag_of operator)" --wait --timeout 5m
"$KUBECTL" create namespace "$FLEET_NS" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
sed -e "s#^spec:#spec:\n  worker:\n    image: resizer/worker:$(tag_of worker)\n  authCache:\n    image: resizer/auth-cache:$(tag_of auth-cache)\n  usageAggregator:\n    image: resizer/usage-aggregator:$(tag_of usage-aggregator)#" \
    -e "s#^  api:#  api:\n    image: resizer/api-server:$(tag_of api-server)#" e2e/kind/fleet.yaml \
  | "$KUBECTL" -n "$FLEET_NS" apply -f -
log "waiting for the api, worker and queue of the fleet"
for c in api worker queue; do
  end=$(( $(date +%s) + 600 ))
  until ready=$("$KUBECTL" -n "$FLEET_NS" get rd photos -o jsonpath="{.status.components.$c.ready}") \
     && [ "${ready:-0}" -ge 1 ]; do
    [ "$(date +%s)" -lt "$end" ] || { "$KUBECTL" -n "$FLEET_NS" get rd,pods -o wide; log "component $c not ready in 600 s"; exit 1; }
    sleep 5
  done
  log "component $c ready"
done
kube_wait 600 -n "$FLEET_NS" --for=condition=Ready rd/photos
"$KUBECTL" -n "$FLEET_NS" get rd photos

# A tenant and an API key, made with the admin CLI that ships in the auth-cache image.
admin() {
  "$KUBECTL" -n "$FLEET_NS" get secret photos-nats-credentials -o jsonpath='{.data.admin\.nk}' | base64 -d |
    "$KUBECTL" -n "$FLEET_NS" exec -i deploy/photos-auth-cache -- /usr/local/bin/resizer-admin --nats-nkey-file /dev/stdin "$@"
}
admin tenant create kind-e2e >/dev/null
api_key=$(admin key issue kind-e2e | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

photo=$(ls "$(bash scripts/corpus.sh)"/jpeg/*.jpg | head -n1)
log "resizing $photo through the ingress"
code=$(curl -sS -o "$work/thumb.jpg" -w '%{http_code}' --max-time 30 --retry 10 --retry-all-errors --retry-delay 3 \
  -H 'Host: photos.kind.local' -H 'Content-Type: image/jpeg' -H "Authorization: Bearer $api_key" --data-binary @"$photo" \
  "http://127.0.0.1:$KIND_HTTP_PORT/v1/resize?w=320&h=320")
[ "$code" = 200 ] || { log "resize through the ingress answered $code: $(head -c 500 "$work/thumb.jpg")"; exit 1; }
width=$(python3 "$REPO_ROOT/e2e/kind/jpeg_size.py" "$work/thumb.jpg" | cut -d' ' -f1)
[ "$width" -le 320 ] && [ "$width" -gt 0 ] || { log "thumbnail width $width"; exit 1; }
log "ok: resized through the ingress ($(python3 "$REPO_ROOT/e2e/kind/jpeg_size.py" "$work/thumb.jpg"))"

# --- Scenario shared with the local control plane: the operator test against the installed operator.
RESIZER_OPERATOR_EXTERNAL=1 KUBECTL="$KUBECTL" cargo test --workspace --test controlplane -- --ignored --nocapture

"$HELM" uninstall resizer -n "$NAMESPACE" --wait
log "kind e2e passed"
