#!/usr/bin/env bash
# The Helm chart on a real cluster, shared by the local control plane
# (scripts/test.d/45-chart.sh) and kind (e2e/kind/run.sh):
#   lint and schema, template | apply --dry-run=server, install, the objects
#   and RBAC it made, the operator reconciling a ResizeDeployment with the
#   chart's own ServiceAccount, uninstall leaving only the CRD.
#
# Environment: KUBECONFIG (required), KUBECTL, HELM, RELEASE (resizer),
# NAMESPACE (resizer-system), OPERATOR_IMAGE_TAG (the chart's appVersion),
# IN_CLUSTER=1 when kubelets run the operator's pods (kind); otherwise no pod
# runs, and the operator binary runs here with the chart's ServiceAccount token
# (OPERATOR_BIN, default target/debug/operator).
set -euo pipefail
source "$(dirname "$0")/../../scripts/env.sh"
: "${KUBECONFIG:?KUBECONFIG must point at the cluster}"
KUBECTL=${KUBECTL:-kubectl}
HELM=${HELM:-helm}
RELEASE=${RELEASE:-resizer}
NAMESPACE=${NAMESPACE:-resizer-system}
IN_CLUSTER=${IN_CLUSTER:-0}
OPERATOR_BIN=${OPERATOR_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/operator}
chart="$REPO_ROOT/charts/resizer"
fleet_ns="chart-photos-$$"
full="$RELEASE-resizer-operator"
[[ "$RELEASE" == *resizer* ]] && full="$RELEASE-operator"
k() { "$KUBECTL" "$@"; }
scenario=chart
fail() { log "chart: FAILED: $*"; exit 1; }
source "$(dirname "$0")/lib.sh"
operator_pid=
work=$(mktemp -d)
cleanup() {
  [ -n "$operator_pid" ] && kill "$operator_pid" 2>/dev/null
  k delete namespace "$fleet_ns" --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- Offline checks: lint, schema, CRD copy.
cmp -s "$chart/crds/resizedeployments.yaml" "$REPO_ROOT/crds/resizedeployments.yaml" \
  || fail "charts/resizer/crds/ differs from crds/ (copy crds/resizedeployments.yaml into the chart)"
ok "the chart's CRD is crds/resizedeployments.yaml"
check "helm lint --strict" "$HELM" lint --strict "$chart"
if "$HELM" template t "$chart" --set replicaCount=0 >"$work/bad.txt" 2>&1; then fail "the schema accepted replicaCount=0"; fi
grep -q "replicaCount" "$work/bad.txt" || fail "the schema error does not name replicaCount: $(cat "$work/bad.txt")"
if "$HELM" template t "$chart" --set unknownKey=1 >/dev/null 2>&1; then fail "the schema accepted an unknown key"; fi
ok "values.schema.json rejects bad values"
# Rendered to files first: `helm … | grep -q` under pipefail fails when grep leaves before helm is done.
"$HELM" template t "$chart" --set metrics.serviceMonitor.enabled=true >"$work/monitor.yaml"
grep -q "kind: ServiceMonitor" "$work/monitor.yaml" || fail "metrics.serviceMonitor.enabled renders no ServiceMonitor"
"$HELM" template t "$chart" >"$work/default.yaml"
if grep -q "kind: ServiceMonitor" "$work/default.yaml"; then fail "a ServiceMonitor without asking"; fi
ok "ServiceMonitor only when enabled"
"$HELM" template t "$chart" --set metrics.prometheusRule.enabled=true >"$work/rule.yaml"
grep -q "kind: PrometheusRule" "$work/rule.yaml" || fail "metrics.prometheusRule.enabled renders no PrometheusRule"
if grep -q "kind: PrometheusRule" "$work/default.yaml"; then fail "a PrometheusRule without asking"; fi
grep -q "alert: ResizerReconcileErrors" "$work/default.yaml" || fail "the rules ConfigMap does not hold the operator's alerts"
dashboards=$(grep -c '^    grafana_dashboard: "1"' "$work/default.yaml" || true)
[ "$dashboards" = 2 ] || fail "$dashboards ConfigMaps carry the Grafana sidecar label, want 2 (fleet, operator)"
ok "PrometheusRule only when enabled; rules ConfigMap and 2 dashboard ConfigMaps by default"

# --- Against the apiserver: the rendered chart validates server-side.
k create namespace "$NAMESPACE" --dry-run=client -o yaml | k apply -f - >/dev/null
"$HELM" template "$RELEASE" "$chart" -n "$NAMESPACE" --include-crds >"$work/rendered.yaml"
k apply --dry-run=server -f "$work/rendered.yaml" >"$work/dry.txt" 2>&1 || fail "dry-run=server: $(cat "$work/dry.txt")"
ok "helm template | kubectl apply --dry-run=server ($(wc -l <"$work/dry.txt") objects)"

# --- Install.
set_tag=()
[ -n "${OPERATOR_IMAGE_TAG:-}" ] && set_tag=(--set "image.tag=$OPERATOR_IMAGE_TAG")
"$HELM" install "$RELEASE" "$chart" -n "$NAMESPACE" "${set_tag[@]}" >"$work/install.txt" \
  || fail "helm install"
grep -q "ResizeDeployment" "$work/install.txt" || fail "NOTES.txt does not say what to apply next"
ok "helm install (NOTES printed)"
check "CRD established" kube_wait 60 --for condition=established crd/resizedeployments.resizer.dev
[ "$(k -n "$NAMESPACE" get deploy "$full" -o jsonpath='{.spec.replicas}')" = 2 ] || fail "operator Deployment is not 2 replicas"
for kind in serviceaccount service poddisruptionbudget lease.coordination.k8s.io; do
  check "$kind made" k -n "$NAMESPACE" get "$kind" "$([ "$kind" = service ] && echo "$full-metrics" || echo "$full")"
done
check "ClusterRole and binding" k get clusterrole,clusterrolebinding "$full"
sa="system:serviceaccount:$NAMESPACE:$full"
check "RBAC: may patch Deployments anywhere" k auth can-i patch deployments.apps -n "$fleet_ns" --as "$sa"
check "RBAC: may patch ResizeDeployment status" k auth can-i patch resizedeployments.resizer.dev --subresource=status -n "$fleet_ns" --as "$sa"
check "RBAC: may delete Ingresses (pruning a dropped spec.api.ingress)" k auth can-i delete ingresses.networking.k8s.io -n "$fleet_ns" --as "$sa"
check "RBAC: may list pods (why they cannot run)" k auth can-i list pods -n "$fleet_ns" --as "$sa"
check "RBAC: may watch pods" k auth can-i watch pods -n "$fleet_ns" --as "$sa"
check "RBAC: may create and patch Secrets (the fleet's NATS credentials)" k auth can-i patch secrets -n "$fleet_ns" --as "$sa"
for verb_res in "list secrets" "watch secrets" "delete secrets" "delete deployments.apps" "delete statefulsets.apps" "delete services" \
  "delete configmaps" "delete serviceaccounts" "delete networkpolicies.networking.k8s.io" \
  "delete poddisruptionbudgets.policy" "delete pods" "create pods" "patch pods" \
  "update resizedeployments.resizer.dev"; do
  # shellcheck disable=SC2086
  if k auth can-i $verb_res -n "$fleet_ns" --as "$sa" >/dev/null 2>&1; then fail "RBAC allows more than it should: $verb_res"; fi
done
ok "RBAC refuses listing or deleting secrets, deletes but of Ingresses, pod writes and spec writes"

# --- The operator reconciles a fleet with the chart's identity.
if [ "$IN_CLUSTER" = 1 ]; then
  check "operator Deployment available" kube_wait 180 -n "$NAMESPACE" --for condition=available "deploy/$full"
else
  # No kubelet: the operator's pods stay Pending. The binary runs here with the
  # ServiceAccount's own token, so only the chart's RBAC stands behind it.
  eventually 60 "operator pods created by the ReplicaSet (pending without kubelets)" \
    bash -c "[ \"\$('$KUBECTL' -n '$NAMESPACE' get pods -l app.kubernetes.io/instance=$RELEASE -o name | wc -l)\" = 2 ]"
  [ -x "$OPERATOR_BIN" ] || fail "no operator binary at $OPERATOR_BIN (cargo build -p operator)"
  token=$(k -n "$NAMESPACE" create token "$full" --duration=1h)
  server=$(k config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')
  ca=$(k config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority}')
  cadata=$(k config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
  {
    echo "apiVersion: v1"; echo "kind: Config"; echo "clusters:"; echo "- name: c"; echo "  cluster:"
    echo "    server: $server"
    if [ -n "$cadata" ]; then echo "    certificate-authority-data: $cadata"; else echo "    certificate-authority: $ca"; fi
    echo "users:"; echo "- name: sa"; echo "  user:"; echo "    token: $token"
    echo "contexts:"; echo "- name: c"; echo "  context: {cluster: c, user: sa}"; echo "current-context: c"
  } >"$work/sa.kubeconfig"
  KUBECONFIG="$work/sa.kubeconfig" POD_NAMESPACE="$NAMESPACE" POD_NAME=chart-scenario RUST_LOG=info \
    "$OPERATOR_BIN" --listen 127.0.0.1:0 --lease-name "$full" --lease-seconds 6 \
    --nats-url nats://127.0.0.1:1 --nats-timeout 500ms >"$work/operator.log" 2>&1 &
  operator_pid=$!
fi
k create namespace "$fleet_ns" >/dev/null
k -n "$fleet_ns" apply -f "$chart/examples/resizedeployment.yaml" >/dev/null
eventually 90 "the example ResizeDeployment is reconciled (observedGeneration 1)" \
  bash -c "[ \"\$('$KUBECTL' -n '$fleet_ns' get rd photos -o jsonpath='{.status.observedGeneration}')\" = 1 ]"
for d in photos-api photos-worker; do check "child Deployment $d" k -n "$fleet_ns" get deploy "$d"; done
check "NATS StatefulSet" k -n "$fleet_ns" get statefulset photos-nats
workers=$(k -n "$fleet_ns" get rd photos -o jsonpath='{.status.capacity.baselineWorkers}')
[ "$workers" = 30 ] || fail "status.capacity.baselineWorkers is '$workers', want 30 (1,000 × 1.2 / (10 × 4))"
ok "status answers why 30 workers"
# Pruning with the chart's identity: an Ingress declared, then dropped from the spec.
k -n "$fleet_ns" patch rd photos --type=merge -p '{"spec":{"api":{"ingress":{"host":"photos.chart.local"}}}}' >/dev/null
eventually 60 "spec.api.ingress makes an Ingress" k -n "$fleet_ns" get ingress photos-api
k -n "$fleet_ns" patch rd photos --type=merge -p '{"spec":{"api":{"ingress":null}}}' >/dev/null
eventually 60 "the Ingress dropped from the spec is deleted" \
  bash -c "! '$KUBECTL' -n '$fleet_ns' get ingress photos-api >/dev/null 2>&1"
if [ "$IN_CLUSTER" != 1 ]; then
  holder=$(k -n "$NAMESPACE" get lease "$full" -o jsonpath='{.spec.holderIdentity}')
  [ "$holder" = chart-scenario ] || fail "the chart's Lease is held by '$holder', not the running operator"
  ok "the operator holds the chart's Lease"
  if grep -qi "forbidden" "$work/operator.log"; then fail "the operator hit a forbidden call: $(grep -i forbidden "$work/operator.log" | head -3)"; fi
  ok "no forbidden API call in the operator's log"
  kill "$operator_pid"; wait "$operator_pid" 2>/dev/null || true; operator_pid=
fi
k delete namespace "$fleet_ns" --wait=false >/dev/null

# --- Uninstall: nothing of the release is left but the CRD.
"$HELM" uninstall "$RELEASE" -n "$NAMESPACE" --wait >/dev/null || fail "helm uninstall"
eventually 60 "no object of the release left in $NAMESPACE" bash -c \
  "[ -z \"\$('$KUBECTL' -n '$NAMESPACE' get deploy,rs,pods,svc,sa,pdb,lease,configmap,secret -l app.kubernetes.io/instance=$RELEASE -o name 2>/dev/null)\" ]"
if k get clusterrole,clusterrolebinding "$full" >/dev/null 2>&1; then fail "ClusterRole/binding left after uninstall"; fi
if k -n "$NAMESPACE" get lease "$full" >/dev/null 2>&1; then fail "leader Lease left after uninstall"; fi
check "the CRD stays after uninstall (documented)" k get crd resizedeployments.resizer.dev
log "chart: all checks passed"
