#!/usr/bin/env bash
# The product's front door on a cluster whose kubelets run our images (the
# local node of e2e/node/up.sh, or kind): helm install → the operator as two
# pods (one holds the Lease) → kubectl apply of charts/resizer/examples/small-node.yaml
# → Ready=True with a formed 3-pod JetStream cluster → a tenant and an API key
# made with `kubectl exec … resizer-admin` → a real photo resized through the
# api Service (or the Ingress, when INGRESS_URL is given) → usage read back by
# its tenant and refused to another → the live checks of what the operator
# claims (workers follow the queue, Lease handover, a deleted child comes back,
# deleting the ResizeDeployment collects the fleet) → pods deleted under load and
# a rolling upgrade (pod-chaos.sh). Each check prints its figure.
#
# Environment: KUBECONFIG (required), KUBECTL, HELM, PHOTO (a JPEG), IMAGES
# (the tags scripts/build-images.sh printed, space separated), INGRESS_URL
# (optional: http://HOST:PORT of an Ingress controller), KEEP=1 leaves the fleet,
# FLEET_MODE=try stops after the first resize, leaves everything running and
# prints the endpoint, the API key and a working curl (scripts/run-node.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/env.sh"
: "${KUBECONFIG:?KUBECONFIG must point at the cluster}"
: "${PHOTO:?PHOTO must name a JPEG}"
KUBECTL=${KUBECTL:-kubectl}
HELM=${HELM:-helm}
release=resizer
op_ns=resizer-system
ns=photos
rd=photos
op="$release-operator"
chart="$REPO_ROOT/charts/resizer"
k() { "$KUBECTL" "$@"; }
kn() { "$KUBECTL" -n "$ns" "$@"; }
work=$(mktemp -d)
load_pid=
diagnose() {
  log "fleet: --- state at failure"
  k get nodes -o wide >&2 || true
  k get pods -A -o wide >&2 || true
  kn get rd "$rd" -o yaml 2>/dev/null | sed -n '/^status:/,$p' >&2 || true
  kn get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 25 >&2 || true
  for p in $(k get pods -A --no-headers 2>/dev/null | awk '$4 != "Running" || $3 !~ /^([0-9]+)\/\1$/ { print $1 "/" $2 }' | head -n 6); do
    log "fleet: --- logs of $p"; k -n "${p%%/*}" logs "${p#*/}" --all-containers --tail 30 >&2 2>&1 || true
  done
  log "fleet: --- operator logs"; k -n "$op_ns" logs -l app.kubernetes.io/instance=$release --tail 30 >&2 2>&1 || true
}
scenario=fleet
fail() { log "fleet: FAILED: $*"; diagnose; exit 1; }
source "$here/lib.sh"
prom=
prom_dir=${PROMETHEUS_DIR:-$work/prometheus}
cleanup() {
  [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null
  [ -n "$prom" ] && [ "${KEEP:-0}" != 1 ] && bash "$REPO_ROOT/e2e/observability/prometheus.sh" stop "$prom_dir"
  if [ "${KEEP:-0}" != 1 ]; then
    k delete namespace "$ns" "$ns-bad" --wait=false >/dev/null 2>&1
    "$HELM" uninstall "$release" -n "$op_ns" >/dev/null 2>&1
  fi
  rm -rf "$work"
}
trap cleanup EXIT

tag_of() { # tag_of NAME: the built tag of resizer/NAME
  local t; for t in ${IMAGES:-}; do [[ "$t" == */"$1":* ]] && { echo "${t##*:}"; return; }; done
  fail "no image resizer/$1 in IMAGES"
}

# --- The operator, as two pods of the chart.
t0=$(date +%s)
"$HELM" install "$release" "$chart" -n "$op_ns" --create-namespace \
  --set "image.tag=$(tag_of operator)" --set image.pullPolicy=Never --set leaseSeconds=10 \
  --wait --timeout 4m >/dev/null || fail "helm install (operator pods not ready in 4 minutes)"
ready=$(k -n "$op_ns" get deploy "$op" -o jsonpath='{.status.readyReplicas}')
[ "$ready" = 2 ] || fail "operator Deployment has $ready ready replicas, want 2"
holder=$(k -n "$op_ns" get lease "$op" -o jsonpath='{.spec.holderIdentity}')
k -n "$op_ns" get pod "$holder" >/dev/null 2>&1 || fail "the Lease holder '$holder' is not an operator pod"
ok "helm install: 2 operator pods Ready in $(( $(date +%s) - t0 ))s; $holder holds the Lease"

# --- The example fleet, with the images this run built.
k create namespace "$ns" >/dev/null
sed -e "s#resizer/nats:[^ ]*#resizer/nats:$(tag_of nats)#" \
  -e "s#resizer/api-server:[^ ]*#resizer/api-server:$(tag_of api-server)#" \
  -e "s#resizer/worker:[^ ]*#resizer/worker:$(tag_of worker)#" \
  -e "s#resizer/auth-cache:[^ ]*#resizer/auth-cache:$(tag_of auth-cache)#" \
  -e "s#resizer/usage-aggregator:[^ ]*#resizer/usage-aggregator:$(tag_of usage-aggregator)#" \
  "$chart/examples/small-node.yaml" >"$work/fleet.yaml"
t0=$(date +%s)
kn apply -f "$work/fleet.yaml" >/dev/null
kube_wait 600 -n "$ns" --for condition=Ready "rd/$rd" >/dev/null || fail "the ResizeDeployment is not Ready in 10 minutes"
ok "ResizeDeployment Ready=True in $(( $(date +%s) - t0 ))s"
kn get rd "$rd" >&2
for c in api worker queue authCache usageAggregator; do
  r=$(kn get rd "$rd" -o jsonpath="{.status.components.$c.ready}")
  [ "${r:-0}" -ge 1 ] || fail "component $c has ${r:-0} ready pods"
done
ok "every component ready: $(kn get rd "$rd" -o jsonpath='{.status.components}')"

# --- A real Prometheus, scraping the pods as a platform's would, with the rules
# the operator rendered for the fleet and the chart's rules for the operator.
if [ -n "${PROMETHEUS:-}" ]; then
  kn get configmap "$rd-prometheus-rules" -o jsonpath='{.data.resizer\.rules\.yaml}' >"$work/fleet.rules.yaml"
  k -n "$op_ns" get configmap "$op-prometheus-rules" -o jsonpath='{.data.operator\.rules\.yaml}' >"$work/operator.rules.yaml"
  grep -c 'alert:' "$work/fleet.rules.yaml" >"$work/n" || fail "ConfigMap $rd-prometheus-rules holds no alerts"
  prom_started=$(date +%s)
  prom=$(bash "$REPO_ROOT/e2e/observability/prometheus.sh" start "$prom_dir" "${PROMETHEUS_PORT:-19090}" \
    "$work/fleet.rules.yaml" "$work/operator.rules.yaml") || fail "Prometheus did not start"
  ok "Prometheus at $prom: pod discovery, $(cat "$work/n") fleet alerts from ConfigMap $rd-prometheus-rules, the chart's operator rules"
elif [ "${FLEET_MODE:-test}" != try ]; then
  fail "PROMETHEUS is not set: the dashboards and rules are checked against a real Prometheus"
fi

# The JetStream cluster formed its routes over the headless Service and holds the streams.
mapfile -t nats_ips < <(kn get pods -l app.kubernetes.io/component=nats -o jsonpath='{range .items[*]}{.status.podIP}{"\n"}{end}')
[ "${#nats_ips[@]}" = 3 ] || fail "${#nats_ips[@]} NATS pods, want 3"
for ip in "${nats_ips[@]}"; do
  routes=$(curl -fsS --max-time 5 "http://$ip:8222/routez" | python3 -c 'import json,sys; print(len({r["remote_name"] for r in json.load(sys.stdin)["routes"]}))')
  [ "$routes" = 2 ] || fail "NATS at $ip routes to $routes peers, want 2"
done
streams=$(for ip in "${nats_ips[@]}"; do
  curl -fsS --max-time 5 "http://$ip:8222/jsz?streams=true" | python3 -c '
import json, sys
for a in json.load(sys.stdin).get("account_details") or []:
    for s in a.get("stream_detail") or []:
        print(s["name"])'
done | sort -u | tr '\n' ' ')
for s in JOBS USAGE KV_IDENTITY KV_USAGE_ROLLUPS; do
  [[ " $streams " == *" $s "* ]] || fail "JetStream holds no $s (streams: $streams)"
done
ok "3 NATS pods, each routed to the other 2; streams: $streams"

# Every server requires TLS and credentials, and every client is one of the
# fleet's users (an nkey) on a TLS connection.
conns=$(for ip in "${nats_ips[@]}"; do
  curl -fsS --max-time 5 "http://$ip:8222/varz" | python3 -c '
import json, sys
v = json.load(sys.stdin)
if not (v.get("auth_required") and v.get("tls_required")):
    sys.exit("auth_required=%s tls_required=%s" % (v.get("auth_required"), v.get("tls_required")))' ||
    fail "NATS at $ip does not require TLS and credentials"
  curl -fsS --max-time 5 "http://$ip:8222/connz?auth=true" | python3 -c '
import json, sys
for c in json.load(sys.stdin).get("connections") or []:
    user = c.get("authorized_user") or ""
    print("%s %s %s" % (c.get("name") or "-", "nkey" if user.startswith("U") else "NO-NKEY", c.get("tls_version") or "NO-TLS"))'
done)
[ -n "$conns" ] || fail "no client connections on the NATS servers"
if grep -q 'NO-NKEY\|NO-TLS' <<<"$conns"; then fail "a NATS client without an nkey or TLS: $conns"; fi
ok "NATS requires TLS and a fleet user; $(wc -l <<<"$conns") client connections, all nkey users over TLS ($(cut -d' ' -f1 <<<"$conns" | sort | uniq -c | tr -s ' ' | tr '\n' ','))"

# --- Tenants and keys, with the admin CLI of the auth-cache image.
# The admin's NATS key is in the fleet's credentials Secret and mounted in no
# pod: it is handed to resizer-admin on its standard input for one command.
admin() {
  kn get secret "$rd"-nats-credentials -o jsonpath='{.data.admin\.nk}' | base64 -d |
    kn exec -i deploy/"$rd"-auth-cache -- /usr/local/bin/resizer-admin --nats-nkey-file /dev/stdin "$@"
}
admin tenant create node-a >/dev/null || fail "resizer-admin tenant create"
admin tenant create node-b >/dev/null || fail "resizer-admin tenant create"
key_a=$(admin key issue node-a | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
key_b=$(admin key issue node-b | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
[[ "$key_a" == rsz_* && "$key_b" == rsz_* ]] || fail "no API keys issued"
ok "tenants node-a and node-b with API keys (kubectl exec … resizer-admin)"

# --- Requests as a user would send them.
if [ -n "${INGRESS_URL:-}" ]; then
  api="$INGRESS_URL"; usage="$INGRESS_URL"; host=(-H "Host: $(kn get ingress "$rd-api" -o jsonpath='{.spec.rules[0].host}')")
else
  api="http://$(kn get svc "$rd-api" -o jsonpath='{.spec.clusterIP}'):80"
  usage="http://$(kn get svc "$rd-usage-aggregator" -o jsonpath='{.spec.clusterIP}'):80"
  host=()
fi
# The Ingress object exists and routes both APIs, whatever controller serves it.
paths=$(kn get ingress "$rd-api" -o jsonpath='{range .spec.rules[0].http.paths[*]}{.path}={.backend.service.name} {end}')
[[ "$paths" == *"/v1/usage=$rd-usage-aggregator"* && "$paths" == *"/=$rd-api"* ]] || fail "Ingress paths: $paths"
ok "Ingress $rd-api routes $paths"
code=$(curl -sS -o "$work/thumb.jpg" -w '%{http_code}' --max-time 30 --retry 10 --retry-all-errors --retry-delay 2 "${host[@]}" \
  -H 'Content-Type: image/jpeg' -H "Authorization: Bearer $key_a" --data-binary @"$PHOTO" "$api/v1/resize?w=320&h=320")
[ "$code" = 200 ] || fail "resize answered $code: $(head -c 400 "$work/thumb.jpg")"
size=$(python3 "$REPO_ROOT/e2e/kind/jpeg_size.py" "$work/thumb.jpg")
[ "${size%% *}" = 320 ] || [ "${size##* }" = 320 ] || fail "thumbnail is $size, want a 320-px side"
ok "resized $(basename "$PHOTO") through $api: 200 image/jpeg $size"
if [ "${FLEET_MODE:-test}" = try ]; then
  KEEP=1
  echo "endpoint=$api"
  echo "usage_endpoint=$usage"
  echo "api_key=$key_a"
  [ -z "$prom" ] || echo "prometheus=$prom  (the fleet's rules loaded; e2e/observability/dashboards.py check|plot --prometheus $prom --namespace $ns --fleet $rd charts/resizer/dashboards/resizer-fleet.json)"
  echo "curl --data-binary @$PHOTO -H 'Content-Type: image/jpeg' -H 'Authorization: Bearer $key_a' '$api/v1/resize?w=320&h=320' -o thumb.jpg"
  echo "curl -H 'Authorization: Bearer $key_a' '$usage/v1/usage?from=$(date -u +%Y-%m-01)&to=$(date -u -d "$(date -u +%Y-%m-01) +1 month" +%Y-%m-01)&window=day'"
  exit 0
fi
# The README's way in: kubectl port-forward to the api Service.
kn port-forward svc/"$rd"-api 18080:80 >"$work/pf.log" 2>&1 &
pf_pid=$!
code=000
for _ in $(seq 30); do
  code=$(curl -sS -o "$work/pf.jpg" -w '%{http_code}' --max-time 10 -H 'Content-Type: image/jpeg' \
    -H "Authorization: Bearer $key_a" --data-binary @"$PHOTO" 'http://127.0.0.1:18080/v1/resize?w=320&h=320' 2>/dev/null) && break
  sleep 0.5
done
kill "$pf_pid" 2>/dev/null; wait "$pf_pid" 2>/dev/null || true
[ "$code" = 200 ] || fail "resize through kubectl port-forward answered $code ($(cat "$work/pf.log"))"
ok "resized through kubectl port-forward svc/$rd-api, as the README does: 200"
code=$(curl -sS -o "$work/p.json" -w '%{http_code} %{content_type}' "${host[@]}" -H 'Content-Type: image/jpeg' \
  --data-binary @"$PHOTO" "$api/v1/resize?w=320")
[ "$code" = "401 application/problem+json" ] || fail "no key answered '$code'"
ok "no key: 401 problem+json ($(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["type"])' "$work/p.json"))"
month_from=$(date -u +%Y-%m-01); month_to=$(date -u -d "$month_from +1 month" +%Y-%m-01)
usage_of() { # usage_of KEY TENANT: the tenant's images this month, as KEY sees them (or the HTTP status)
  curl -sS -o "$work/u.json" -w '%{http_code}' "${host[@]}" -H "Authorization: Bearer $1" \
    "$usage/v1/usage?tenant=$2&from=$month_from&to=$month_to&window=day"
}
end=$(( $(date +%s) + 60 ))
while :; do
  code=$(usage_of "$key_a" node-a)
  images=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total"]["ok"])' "$work/u.json" 2>/dev/null || echo 0)
  [ "$code" = 200 ] && [ "${images:-0}" -ge 1 ] && break
  [ "$(date +%s)" -lt "$end" ] || fail "node-a's usage: $code $(head -c 400 "$work/u.json")"
  sleep 2
done
ok "node-a reads its own usage: $images resized image(s) this month"
code=$(usage_of "$key_b" node-a)
[ "$code" = 403 ] || fail "node-b reading node-a's usage answered $code, want 403"
ok "node-b's key reading node-a's usage: 403"

# --- Workers follow the queue: load over the declared capacity scales them up.
declared=$(kn get rd "$rd" -o jsonpath='{.status.capacity.desiredWorkers}')
rate=${LOAD_RATE:-15}
t0=$(date +%s)
python3 "$here/load.py" "$api/v1/resize?w=1024&h=1024&format=webp" "$PHOTO" "$key_a" "$rate" "${LOAD_SECONDS:-90}" >"$work/load.json" &
load_pid=$!
peak=0 t_desired= t_ready=
end=$(( t0 + ${LOAD_SECONDS:-90} + 30 ))
while [ "$(date +%s)" -lt "$end" ]; do
  b=$(kn get rd "$rd" -o jsonpath='{.status.capacity.backlog}'); [ "${b:-0}" -gt "$peak" ] && peak=$b
  want=$(kn get deploy "$rd-worker" -o jsonpath='{.spec.replicas}')
  have=$(kn get deploy "$rd-worker" -o jsonpath='{.status.readyReplicas}')
  [ -z "$t_desired" ] && [ "${want:-0}" -gt "$declared" ] && t_desired=$(( $(date +%s) - t0 ))
  [ -n "$t_desired" ] && [ -z "$t_ready" ] && [ "${have:-0}" -ge "$want" ] && t_ready=$(( $(date +%s) - t0 ))
  [ -n "$t_ready" ] && ! kill -0 "$load_pid" 2>/dev/null && break
  sleep 2
done
wait "$load_pid" || true; load_pid=
[ -n "$t_desired" ] || fail "offered $rate req/s against a declared $declared worker(s); the operator never scaled up ($(kn get rd "$rd" -o jsonpath='{.status.capacity}'))"
[ -n "$t_ready" ] || fail "workers scaled to $want but only ${have:-0} became Ready"
log "fleet: load: $(cat "$work/load.json")"
log "fleet: capacity inputs at the peak: $(kn get rd "$rd" -o jsonpath='{.status.capacity}' | python3 -c 'import json,sys; d=json.load(sys.stdin); d.pop("recent",None); print(json.dumps(d))')"

# --- What Prometheus made of the load: every target up, every rule healthy,
# every dashboard query answered with data.
if [ -n "$prom" ]; then
  q() { curl -fsS --max-time 10 --get "$prom/api/v1/$1" ${2:+--data-urlencode "query=$2"}; }
  q targets >"$work/targets.json"
  python3 - "$work/targets.json" <<'PY' || fail "Prometheus targets: $(head -c 600 "$work/targets.json")"
import json, sys
t = json.load(open(sys.argv[1]))["data"]["activeTargets"]
comps = sorted({x["labels"].get("component", "operator") for x in t})
down = [x["scrapeUrl"] + ": " + x.get("lastError", "") for x in t if x["health"] != "up"]
print(f"{len(t)} targets ({', '.join(comps)})", file=sys.stderr)
sys.exit(1 if down or not {"api", "worker", "auth-cache", "usage-aggregator", "operator"} <= set(comps) else 0)
PY
  q rules >"$work/rules.json"
  python3 - "$work/rules.json" <<'PY' || fail "a rule Prometheus could not evaluate"
import json, sys
groups = json.load(open(sys.argv[1]))["data"]["groups"]
rules = [r for g in groups for r in g["rules"]]
bad = [f'{r["name"]}: {r.get("lastError")}' for r in rules if r["health"] != "ok"]
for b in bad:
    print(b, file=sys.stderr)
print(f"{len(rules)} rules in {len(groups)} groups, {len(bad)} unhealthy", file=sys.stderr)
sys.exit(1 if bad or len(rules) < 20 else 0)
PY
  sli=$(q query "resizer:sla_errors:ratio_rate5m{namespace=\"$ns\",fleet=\"$rd\"}" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "none")')
  [ "$sli" != none ] || fail "the recording rule resizer:sla_errors:ratio_rate5m has no value for $ns/$rd"
  ok "Prometheus: every target up, every rule healthy; 5m error ratio of the load: $sli"
  python3 "$REPO_ROOT/e2e/observability/dashboards.py" check --prometheus "$prom" --namespace "$ns" --fleet "$rd" \
    "$REPO_ROOT"/charts/resizer/dashboards/*.json >"$work/panels.txt" 2>&1 || { cat "$work/panels.txt" >&2; fail "a dashboard query returned no data"; }
  ok "every dashboard query returns data from the real components: $(grep -c '^ok' "$work/panels.txt") queries"
  alerts=$(q query 'ALERTS' | python3 -c 'import json,sys; print(" ".join(sorted({a["metric"]["alertname"] + "/" + a["metric"]["alertstate"] for a in json.load(sys.stdin)["data"]["result"]})) or "none")')
  log "fleet: alerts pending or firing after the load: $alerts"
  out=${OBSERVABILITY_OUT:-$work}
  python3 "$REPO_ROOT/e2e/observability/dashboards.py" plot --prometheus "$prom" --namespace "$ns" --fleet "$rd" \
    --minutes "$(python3 -c "print(($(date +%s) - $prom_started) / 60)")" --out "$out/fleet-dashboard.svg" "$REPO_ROOT/charts/resizer/dashboards/resizer-fleet.json" >&2 \
    || fail "plotting the fleet dashboard"
fi
eventually 120 "backlog drained after the load" bash -c "[ \"\$('$KUBECTL' -n '$ns' get rd '$rd' -o jsonpath='{.status.queue.numPending}')\" = 0 ]"
# Refusals under overload (503, and resets until the api drains refused bodies) are counted, not failed on here.
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["status"].get("200",0) > 0 else 1)' "$work/load.json" \
  || fail "no request of the load succeeded: $(cat "$work/load.json")"
ok "workers $declared → $want: desired after ${t_desired}s, Ready after ${t_ready}s, peak backlog $peak"

# --- Pods taken away under load, and a rolling upgrade: the chaos suite's pod-level scenarios.
source "$here/pod-chaos.sh"

# --- The operator's Lease moves to the standby when the leader pod goes.
holder=$(k -n "$op_ns" get lease "$op" -o jsonpath='{.spec.holderIdentity}')
lease_s=$(k -n "$op_ns" get lease "$op" -o jsonpath='{.spec.leaseDurationSeconds}')
t0=$(date +%s)
k -n "$op_ns" delete pod "$holder" --wait=false >/dev/null
eventually $(( lease_s + 20 )) "the Lease left $holder" bash -c \
  "h=\$('$KUBECTL' -n '$op_ns' get lease '$op' -o jsonpath='{.spec.holderIdentity}'); [ -n \"\$h\" ] && [ \"\$h\" != '$holder' ]"
new=$(k -n "$op_ns" get lease "$op" -o jsonpath='{.spec.holderIdentity}')
took=$(( $(date +%s) - t0 ))
[ "$took" -le $(( lease_s + 5 )) ] || fail "handover took ${took}s, lease duration ${lease_s}s"
ok "leader pod $holder deleted: $new holds the Lease after ${took}s (lease duration ${lease_s}s)"

# --- Pods that cannot run are named in the status: a worker larger than the node, then an image the node lacks.
bad_ns="$ns-bad"
k create namespace "$bad_ns" >/dev/null
sed -e 's/^  name: photos$/  name: broken/' "$work/fleet.yaml" >"$work/broken.yaml"
k -n "$bad_ns" apply -f "$work/broken.yaml" >/dev/null
k -n "$bad_ns" patch rd broken --type merge -p '{"spec":{"worker":{"resources":{"requests":{"cpu":"64"},"limits":{"cpu":"64"}}}}}' >/dev/null
ready_reason() { k -n "$bad_ns" get rd broken -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}'; }
ready_message() { k -n "$bad_ns" get rd broken -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}'; }
eventually 180 "a 64-CPU worker on a 2-CPU node: Ready=False, reason WorkerUnschedulable" bash -c \
  "[ \"\$('$KUBECTL' -n '$bad_ns' get rd broken -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].reason}')\" = WorkerUnschedulable ]"
msg=$(ready_message)
[[ "$msg" == *"Insufficient cpu"* ]] || fail "the Unschedulable message does not carry the scheduler's words: $msg"
[ -n "$(k -n "$bad_ns" get events --field-selector reason=WorkerUnschedulable -o name)" ] || fail "no WorkerUnschedulable Event"
ok "status says: $msg (and a Warning Event)"
k -n "$bad_ns" patch rd broken --type merge -p '{"spec":{"worker":{"image":"resizer/worker:not-on-this-node","resources":{"requests":{"cpu":"100m"},"limits":{"cpu":"1"}}}}}' >/dev/null
eventually 180 "a worker image the node lacks: Ready=False, reason WorkerImagePullFailed" bash -c \
  "[ \"\$('$KUBECTL' -n '$bad_ns' get rd broken -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].reason}')\" = WorkerImagePullFailed ]"
msg=$(ready_message)
[[ "$msg" == *"resizer/worker:not-on-this-node"* ]] || fail "the image failure does not name the image: $msg"
ok "status says: $msg"
k delete namespace "$bad_ns" --wait=false >/dev/null

# --- A deleted child comes back; deleting the ResizeDeployment collects the fleet.
uid=$(kn get deploy "$rd-api" -o jsonpath='{.metadata.uid}')
kn delete deploy "$rd-api" --wait=false >/dev/null
eventually 60 "deleted Deployment $rd-api recreated by the operator" bash -c \
  "u=\$('$KUBECTL' -n '$ns' get deploy '$rd-api' -o jsonpath='{.metadata.uid}'); [ -n \"\$u\" ] && [ \"\$u\" != '$uid' ]"
# --- With the Prometheus Operator's CRDs (as it publishes them): the operator
# switches the fleet to a PodMonitor and a PrometheusRule, which the upstream
# schemas accept, and the chart's ServiceMonitor and PrometheusRule install.
monitors=
if [ -n "${PROMETHEUS_OPERATOR_CRDS:-}" ]; then
  k apply --server-side -f "$PROMETHEUS_OPERATOR_CRDS" >/dev/null || fail "applying the Prometheus Operator's CRDs"
  kube_wait 60 --for condition=Established crd/podmonitors.monitoring.coreos.com crd/prometheusrules.monitoring.coreos.com \
    crd/servicemonitors.monitoring.coreos.com >/dev/null || fail "the Prometheus Operator's CRDs are not Established"
  eventually 90 "with the CRDs the operator writes PodMonitor/$rd and PrometheusRule/$rd" \
    "$KUBECTL" -n "$ns" get podmonitor/"$rd" prometheusrule/"$rd"
  groups=$(kn get prometheusrule "$rd" -o jsonpath='{range .spec.groups[*]}{.name} {end}')
  [[ "$groups" == *"resizer-alerts-$ns-$rd"* ]] || fail "PrometheusRule/$rd groups: $groups"
  eventually 60 "the fleet's pods drop the prometheus.io annotations the PodMonitor replaces" bash -c \
    "[ -z \"\$('$KUBECTL' -n '$ns' get deploy '$rd-worker' -o jsonpath='{.spec.template.metadata.annotations.prometheus\.io/scrape}')\" ]"
  "$HELM" upgrade "$release" "$chart" -n "$op_ns" --reuse-values --set metrics.serviceMonitor.enabled=true \
    --set metrics.prometheusRule.enabled=true --wait --timeout 2m >/dev/null || fail "helm upgrade with the ServiceMonitor and PrometheusRule"
  check "the chart's ServiceMonitor and PrometheusRule are in the cluster" \
    "$KUBECTL" -n "$op_ns" get servicemonitor/"$op" prometheusrule/"$op"
  monitors=",podmonitor,prometheusrule"
fi

kn delete rd "$rd" --wait=false >/dev/null
eventually 120 "deleting the ResizeDeployment collected its Deployments, StatefulSet, Services, Ingress${monitors:+, PodMonitor and PrometheusRule}" bash -c \
  "[ -z \"\$('$KUBECTL' -n '$ns' get deploy,statefulset,svc,ingress,networkpolicy,configmap$monitors -l app.kubernetes.io/instance=$rd -o name 2>/dev/null)\" ]"
log "fleet: all checks passed"
