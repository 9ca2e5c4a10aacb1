#!/usr/bin/env bash
# Runs the whole service on this machine as local processes (no Kubernetes):
# nats-server with JetStream, the auth-cache, the admin API, the api-server,
# the workers and the usage aggregator (rollups and GET /v1/usage), on
# loopback. NATS runs with one user per component role (nkeys made by
# `resizer-admin nats-config`, subject permissions from contracts::access):
# each process connects with its role's seed (NATS_NKEY_FILE), and anonymous
# connections are refused. Creates a demo tenant with an API key and a signing key.
# Prints the endpoint and example requests; Ctrl-C stops everything.
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
# The whole workspace, as the tests and images build it: one feature set, so no build repeats another.
cargo build --profile "$profile" --workspace --bins
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

# One nkey seed per role (mode 0600 in a 0700 directory) and the server's
# authorization block with their public keys and permissions.
keys="$state/nats-keys"
cat > "$state/nats.conf" <<CONF
listen: 127.0.0.1:-1
http: 127.0.0.1:-1
max_payload: 8MB
# The fleet's liveness settings (contracts::servers::SERVER_LIVENESS).
ping_interval: "2s"
ping_max: 3
jetstream { store_dir: "$state/js" }
CONF
"$bin/resizer-admin" nats-config --dir "$keys" >>"$state/nats.conf"
key() { echo "$keys/$1.nk"; }
"$nats_bin" -c "$state/nats.conf" --ports_file_dir "$state" >"$state/nats.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do ls "$state"/*.ports >/dev/null 2>&1 && break; sleep 0.1; done
read -r nats_url nats_monitor < <(python3 -c 'import json,glob,sys
p = json.load(open(glob.glob(sys.argv[1] + "/*.ports")[0])); print(p["nats"][0], p["monitoring"][0])' "$state")
log "nats-server at $nats_url (logs: $state/nats.log)"

# Identity first: the api-server refuses every request it cannot verify.
NATS_NKEY_FILE=$(key auth-cache) "$bin/auth-cache" --nats-url "$nats_url" --listen 127.0.0.1:0 \
  >"$state/auth.out" 2>"$state/auth.log" &
pids+=($!)
admin_api_token=${ADMIN_TOKEN:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
ADMIN_TOKEN=$admin_api_token NATS_NKEY_FILE=$(key admin) "$bin/resizer-admin" --nats-url "$nats_url" \
  serve --listen 127.0.0.1:0 >"$state/admin.out" 2>"$state/admin.log" &
pids+=($!)
admin=(env NATS_NKEY_FILE="$(key admin)" "$bin/resizer-admin" --nats-url "$nats_url")
"${admin[@]}" tenant create demo --name "Demo tenant" --rate 200 --burst 400 >/dev/null
api_key=$("${admin[@]}" key issue demo | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
"${admin[@]}" keygen --out "$state/demo.key" >"$state/demo.pub"
"${admin[@]}" key add demo --key-id demo-signing --public-key "$(cat "$state/demo.pub")" >/dev/null
for f in auth admin; do
  for _ in $(seq 100); do grep -q '^listening on' "$state/$f.out" 2>/dev/null && break; sleep 0.1; done
done
admin_endpoint=$(sed -n 's/^listening on //p' "$state/admin.out" | head -n1)
auth_endpoint=$(sed -n 's/^listening on //p' "$state/auth.out" | head -n1)
for _ in $(seq 100); do curl -sf "$auth_endpoint/readyz" >/dev/null && break; sleep 0.1; done

if ! python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; then
  log "port $port is busy; picking a free one"; port=0
fi
NATS_NKEY_FILE=$(key api-server) "$bin/api-server" --listen "127.0.0.1:$port" --nats-url "$nats_url" \
  >"$state/api.out" 2>"$state/api.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^listening on' "$state/api.out" 2>/dev/null && break; sleep 0.1; done
endpoint=$(sed -n 's/^listening on //p' "$state/api.out" | head -n1)
[ -n "$endpoint" ] || { cat "$state/api.log" >&2; log "api-server did not start"; exit 1; }

for i in $(seq "$workers"); do
  NATS_NKEY_FILE=$(key worker) "$bin/worker" --nats-url "$nats_url" --metrics-addr 127.0.0.1:0 \
    2>"$state/worker-$i.log" &
  pids+=($!)
done
admin_token=${USAGE_ADMIN_TOKEN:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
USAGE_ADMIN_TOKEN=$admin_token NATS_NKEY_FILE=$(key usage-aggregator) "$bin/usage-aggregator" \
  --nats-url "$nats_url" --listen 127.0.0.1:0 >"$state/usage.out" 2>"$state/usage.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^listening on' "$state/usage.out" 2>/dev/null && break; sleep 0.1; done
usage_endpoint=$(sed -n 's/^listening on //p' "$state/usage.out" | head -n1)
[ -n "$usage_endpoint" ] || { cat "$state/usage.log" >&2; log "usage-aggregator did not start"; exit 1; }

for _ in $(seq 100); do curl -sf "$endpoint/readyz" >/dev/null && break; sleep 0.1; done

photo="$(bash scripts/corpus.sh)/jpeg/020_bridge.jpg"
[ -f "$photo" ] || photo=photo.jpg
cat <<MSG

The resize service is running ($workers worker process(es), logs in $state).
Tenant "demo" has an API key and an Ed25519 signing key:
  curl --data-binary @$photo -H 'Content-Type: image/jpeg' -H 'Authorization: Bearer $api_key' '$endpoint/v1/resize?w=320&h=320' -o thumb.jpg
  $bin/resizer-client --endpoint $endpoint --key-id demo-signing --private-key $state/demo.key --query 'w=320&h=320&format=webp' -o thumb.webp $photo
  API description: $endpoint/openapi.json   metrics: $endpoint/metrics
  admin API (tenants, keys, limits): $admin_endpoint/v1/tenants with -H 'Authorization: Bearer $admin_api_token'
    or the CLI: NATS_NKEY_FILE=$(key admin) $bin/resizer-admin --nats-url $nats_url tenant list
  usage of the demo tenant, today by hour:
    curl -H 'Authorization: Bearer $admin_token' "$usage_endpoint/v1/usage?tenant=demo&from=$(date -u +%F)&to=$(date -u -d tomorrow +%F)&window=hour"
  CSV: add -H 'Accept: text/csv'
  NATS: one user per component (seeds in $keys, the authorization block in $state/nats.conf);
    connections without a key are refused. Users connected: curl -s '$nats_monitor/connz?auth=true'
Press Ctrl-C to stop.
endpoint=$endpoint
api_key=$api_key
usage_endpoint=$usage_endpoint
admin_endpoint=$admin_endpoint
MSG
wait -n "${pids[@]}" || true
log "a component exited; see the logs above"
