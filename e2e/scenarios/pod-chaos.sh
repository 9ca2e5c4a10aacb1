# Sourced by fleet.sh once the fleet serves: the chaos suite's pod-level
# scenarios on the real node. Each runs the open-loop load of load.py
# (POD_CHAOS_RATE req/s of thumbnails, POD_CHAOS_SECONDS long), takes a pod
# away POD_CHAOS_AT seconds in, and prints one row of a table: offered, 200,
# other answers by status, transport errors, p50/p99. Faults: an api pod, a
# worker pod, the operator pod holding its Lease and the NATS pod leading the
# JOBS stream deleted; then a rolling upgrade of the api and worker images
# (retagged in the node's containerd, NODE_DIR) through the ResizeDeployment.
# Invariants (any breach fails the scenario): no request ever sees a
# transport error (a reset, a refused connection), every answer that is not
# an image is a 503; the rolling upgrade answers every request with an
# image; the fleet is Ready again after each fault.
#
# Expects fleet.sh's k, kn, ns, rd, op_ns, op, api, key_a, PHOTO, work,
# here, fail, ok, eventually.

chaos_rate=${POD_CHAOS_RATE:-4}
chaos_seconds=${POD_CHAOS_SECONDS:-20}
chaos_at=${POD_CHAOS_AT:-5}
chaos_rows=()

# jobs_leader: the NATS pod leading the JOBS stream, as its peers report it.
jobs_leader() {
  local ip
  for ip in $(kn get pods -l app.kubernetes.io/component=nats -o jsonpath='{range .items[*]}{.status.podIP}{" "}{end}'); do
    curl -fsS --max-time 3 "http://$ip:8222/jsz?streams=true" 2>/dev/null | python3 -c '
import json, sys
for a in json.load(sys.stdin).get("account_details") or []:
    for s in a.get("stream_detail") or []:
        leader = (s.get("cluster") or {}).get("leader")
        if s["name"] == "JOBS" and leader:
            print(leader); sys.exit(0)
sys.exit(1)' && return 0
  done
  return 1
}

# under_load NAME STRICT CMD...: the load, CMD at chaos_at seconds, the verdict.
# STRICT=1: every request must be answered with an image.
under_load() {
  local name=$1 strict=$2; shift 2
  local out="$work/pod-chaos-$(tr -c 'a-z0-9' '-' <<<"$name").json"
  python3 "$here/load.py" "$api/v1/resize?w=320&h=320" "$PHOTO" "$key_a" "$chaos_rate" "$chaos_seconds" >"$out" &
  # fleet.sh's cleanup stops the load if a check fails meanwhile.
  load_pid=$!
  sleep "$chaos_at"
  local what
  what=$("$@") || fail "pod chaos, $name: the fault could not be injected: $what"
  wait "$load_pid" || fail "pod chaos, $name: the load did not finish"
  load_pid=
  local row
  row=$(python3 - "$out" "$name" "$what" "$strict" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
name, what, strict = sys.argv[2], sys.argv[3], sys.argv[4] == "1"
st = {int(k): v for k, v in d["status"].items()}
ok = st.get(200, 0)
others = ", ".join(f"{v} × {k}" for k, v in sorted(st.items()) if k != 200) or "–"
transport = ", ".join(f"{v} × {k}" for k, v in d["transport_errors"].items()) or "–"
answered = sum(st.values())
avail = 100.0 * ok / d["offered"] if d["offered"] else 100.0
print(f"| {name} | {d['offered']} | {ok} | {avail:.2f} % | {others} | {transport} | {d['p50_ms']} / {d['p99_ms']} | {what} |")
broken = []
if d["transport_errors"]:
    broken.append(f"transport errors: {transport}")
if any(k not in (200, 503) for k in st):
    broken.append(f"answers other than 200 and 503: {others}")
if answered + sum(d["transport_errors"].values()) != d["offered"]:
    broken.append(f"{d['offered'] - answered} requests never answered")
if strict and ok != d["offered"]:
    broken.append(f"{d['offered'] - ok} requests without an image during a rolling upgrade")
if broken:
    print("BROKEN: " + "; ".join(broken), file=sys.stderr)
    sys.exit(1)
PY
  ) || fail "pod chaos, $name: an invariant broke ($(cat "$out"))"
  chaos_rows+=("$row")
  ok "pod chaos, $name: $row"
  kube_wait 300 -n "$ns" --for condition=Ready "rd/$rd" >/dev/null || fail "pod chaos, $name: the fleet is not Ready again"
}

first_pod() { kn get pods -l "app.kubernetes.io/component=$1" --field-selector=status.phase=Running -o jsonpath='{.items[0].metadata.name}'; }
delete_pod() { # delete_pod NAMESPACE POD: what was deleted
  [ -n "$2" ] || { echo "no pod"; return 1; }
  "$KUBECTL" -n "$1" delete pod "$2" --wait=false >/dev/null && echo "$2 deleted"
}
kill_api() { delete_pod "$ns" "$(first_pod api)"; }
kill_worker() { delete_pod "$ns" "$(first_pod worker)"; }
kill_operator() { delete_pod "$op_ns" "$(k -n "$op_ns" get lease "$op" -o jsonpath='{.spec.holderIdentity}')"; }
kill_jobs_leader() { local l; l=$(jobs_leader) || { echo "no JOBS leader found"; return 1; }; delete_pod "$ns" "$l"; }
rolling_upgrade() { # new tags for the api and worker images, applied through the ResizeDeployment
  local sock="${NODE_DIR:?}/containerd/containerd.sock" c img next patch=
  for c in api-server worker; do
    img=$(kn get rd "$rd" -o jsonpath="{.spec.${c%-server}.image}")
    next="${img%:*}:${img##*:}-next"
    ctr --address "$sock" -n k8s.io images tag --force "docker.io/$img" "docker.io/$next" >/dev/null ||
      { echo "retagging $img"; return 1; }
    patch+="\"${c%-server}\":{\"image\":\"$next\"},"
  done
  kn patch rd "$rd" --type merge -p "{\"spec\":{${patch%,}}}" >/dev/null || { echo "patching the images"; return 1; }
  # The load must outlast the rollout: wait for it here, inside the load.
  kn rollout status deploy "$rd-api" --timeout 120s >/dev/null &&
    kn rollout status deploy "$rd-worker" --timeout 120s >/dev/null || { echo "rollout did not finish"; return 1; }
  echo "api and worker images → *-next, rolled out"
}

log "fleet: pod chaos: $chaos_rate req/s for ${chaos_seconds}s per scenario, the fault ${chaos_at}s in"
under_load "delete an api pod" 0 kill_api
under_load "delete a worker pod" 0 kill_worker
under_load "delete the operator pod holding the Lease" 0 kill_operator
under_load "delete the JOBS-leader NATS pod" 0 kill_jobs_leader
if [ -n "${NODE_DIR:-}" ]; then
  # Long enough to hold the whole rollout.
  chaos_seconds=$(( chaos_seconds * 2 )) under_load "rolling upgrade of the api and worker images" 1 rolling_upgrade
fi
{
  echo "| pod scenario | offered | 200 | availability | other answers | transport errors | p50 / p99 ms | fault |"
  echo "|---|---:|---:|---:|---|---|---|---|"
  printf '%s\n' "${chaos_rows[@]}"
} >&2
