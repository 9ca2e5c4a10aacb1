#!/usr/bin/env bash
# Runs the whole service on this machine as local processes (no Kubernetes):
# nats-server with JetStream, the api-server, the workers and the usage
# aggregator (rollups and GET /v1/usage), on loopback.
# Prints the endpoint and an example request; Ctrl-C stops everything.
#
#   scripts/run-local.sh [--release] [--port N] [--workers N]
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO_ROOT"

profile=dev; target_sub=debug; port=${PORT:-8080}; workers=${WORKERS:-1}
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=release; target_sub=release ;;
    --port) port=$2; shift ;;
    --workers) workers=$2; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

bash scripts/install-system-packages.sh
nats_bin=$(bash scripts/install-nats-server.sh)
log "building the service ($profile profile; the first build takes a few minutes)"
cargo build --profile "$profile" --bins -p api-server -p worker -p usage-aggregator
bin="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/$target_sub"

state=$(mktemp -d "${TMPDIR:-/tmp}/resizer-local.XXXXXX")
pids=()
cleanup() {
  trap - INT TERM EXIT
  log "stopping"
  # Reverse start order: the api-server and workers drain while nats-server still runs.
  for ((i=${#pids[@]}-1; i>=0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  rm -rf "$state"
}
trap cleanup INT TERM EXIT

cat > "$state/nats.conf" <<CONF
listen: 127.0.0.1:-1
http: 127.0.0.1:-1
max_payload: 8MB
jetstream { store_dir: "$state/js" }
CONF
"$nats_bin" -c "$state/nats.conf" --ports_file_dir "$state" >"$state/nats.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do ls "$state"/*.ports >/dev/null 2>&1 && break; sleep 0.1; done
nats_url=$(python3 -c 'import json,glob,sys; print(json.load(open(glob.glob(sys.argv[1]+"/*.ports")[0]))["nats"][0])' "$state")
log "nats-server at $nats_url (logs: $state/nats.log)"

if ! python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; then
  log "port $port is busy; picking a free one"; port=0
fi
"$bin/api-server" --listen "127.0.0.1:$port" --nats-url "$nats_url" >"$state/api.out" 2>"$state/api.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^listening on' "$state/api.out" 2>/dev/null && break; sleep 0.1; done
endpoint=$(sed -n 's/^listening on //p' "$state/api.out" | head -n1)
[ -n "$endpoint" ] || { cat "$state/api.log" >&2; log "api-server did not start"; exit 1; }

for i in $(seq "$workers"); do
  "$bin/worker" --nats-url "$nats_url" --metrics-addr 127.0.0.1:0 2>"$state/worker-$i.log" &
  pids+=($!)
done
admin_token=${USAGE_ADMIN_TOKEN:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
USAGE_ADMIN_TOKEN=$admin_token "$bin/usage-aggregator" --nats-url "$nats_url" --listen 127.0.0.1:0 \
  >"$state/usage.out" 2>"$state/usage.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^listening on' "$state/usage.out" 2>/dev/null && break; sleep 0.1; done
usage_endpoint=$(sed -n 's/^listening on //p' "$state/usage.out" | head -n1)
[ -n "$usage_endpoint" ] || { cat "$state/usage.log" >&2; log "usage-aggregator did not start"; exit 1; }

for _ in $(seq 100); do curl -sf "$endpoint/readyz" >/dev/null && break; sleep 0.1; done

photo=$(realpath -m "$REPO_ROOT/../shared/corpus/jpeg/020_bridge.jpg")
[ -f "$photo" ] || photo=photo.jpg
cat <<MSG

The resize service is running ($workers worker process(es), logs in $state).
  curl --data-binary @$photo -H 'Content-Type: image/jpeg' '$endpoint/v1/resize?w=320&h=320' -o thumb.jpg
  API description: $endpoint/openapi.json   metrics: $endpoint/metrics
  usage (anonymous tenant, today by hour):
    curl "$usage_endpoint/v1/usage?from=$(date -u +%F)&to=$(date -u -d tomorrow +%F)&window=hour"
  usage of any tenant: add -H 'Authorization: Bearer $admin_token' and &tenant=NAME; CSV: -H 'Accept: text/csv'
Press Ctrl-C to stop.
endpoint=$endpoint
usage_endpoint=$usage_endpoint
MSG
wait -n "${pids[@]}" || true
log "a component exited; see the logs above"
