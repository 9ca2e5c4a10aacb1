#!/usr/bin/env bash
# Container images: builds every image from the debug binaries (the ones stage
# 10 built), runs each once with --version and checks its metadata, then runs
# nats + auth-cache + worker + api-server as containers on their own network,
# creates a tenant and an API key with the admin CLI from the auth-cache
# image, and resizes a real photo through the api-server container's
# published port with that key. Fails, never
# skips, when a piece is missing.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
cd "$REPO_ROOT"

docker=$(bash scripts/install-docker.sh)
corpus=${CORPUS_DIR:-$REPO_ROOT/../shared/corpus}
photo=$( (find "$corpus/jpeg" -name '*.jpg' 2>/dev/null || true) | sort | head -n1)
[ -n "$photo" ] || { log "no JPEG in $corpus/jpeg (set CORPUS_DIR)"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mapfile -t tags < <(bash scripts/build-images.sh --profile debug)
declare -A tag
for t in "${tags[@]}"; do n=${t##*/}; tag[${n%%:*}]=$t; done
for n in api-server worker usage-aggregator auth-cache operator nats; do
  [ -n "${tag[$n]:-}" ] || { log "build-images.sh made no $n image"; exit 1; }
done

# Each image: runs as a numeric non-root user, has no HEALTHCHECK, carries its
# version label, and answers --version with a read-only root and no network.
for n in api-server worker usage-aggregator auth-cache operator nats; do
  t=${tag[$n]} v=${tag[$n]##*:}
  meta=$("$docker" image inspect -f '{{.Config.User}}|{{.Config.Healthcheck}}|{{index .Config.Labels "org.opencontainers.image.version"}}' "$t")
  [ "$meta" = "65532:65532|<nil>|$v" ] || { log "$t: user|healthcheck|version label = $meta"; exit 1; }
  out=$("$docker" run --rm --read-only --network none --cap-drop ALL "$t" --version 2>"$work/err") \
    || { cat "$work/err" >&2; log "$t --version failed"; exit 1; }
  [[ "$out" == *"$v"* ]] || { printf '%s\n' "$out" >&2; log "$t --version does not print $v"; exit 1; }
  log "$t: $out"
done

# The service as containers: nats, the auth-cache, one worker, the api-server with a published port.
net="resizer-images-$$"
containers=()
cleanup() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    for c in "${containers[@]}"; do log "--- logs of $c"; "$docker" logs --tail 40 "$c" >&2 2>&1 || true; done
  fi
  for c in "${containers[@]}"; do "$docker" rm -f "$c" >/dev/null 2>&1 || true; done
  "$docker" network rm "$net" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
"$docker" network create "$net" >/dev/null
run() { # NAME IMAGE [docker run options...]: a locked-down container on the test network
  local alias=$1 name="$net-$1" image=$2; shift 2
  containers+=("$name")
  "$docker" run -d --name "$name" --network "$net" --network-alias "$alias" \
    --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges "$@" "$image" >/dev/null
}
run nats "${tag[nats]}"
run auth "${tag[auth-cache]}" -e NATS_URL=nats://nats:4222
run worker "${tag[worker]}" -e NATS_URL=nats://nats:4222 -e WORKER_CONCURRENCY=1
run api "${tag[api-server]}" -e NATS_URL=nats://nats:4222 -p 127.0.0.1::8080
endpoint="http://$("$docker" port "$net-api" 8080/tcp | head -n1)"
log "api-server container at $endpoint"
for _ in $(seq 120); do curl -sf "$endpoint/readyz" >/dev/null && break; sleep 0.5; done
curl -sf "$endpoint/readyz" >/dev/null || { log "api-server container not ready (JetStream unreachable?)"; exit 1; }

admin() { # the admin CLI, shipped in the auth-cache image
  "$docker" run --rm --network "$net" --read-only --cap-drop ALL -e NATS_URL=nats://nats:4222 \
    --entrypoint /usr/local/bin/resizer-admin "${tag[auth-cache]}" "$@"
}
admin tenant create images-test >/dev/null
api_key=$(admin key issue images-test | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
[[ "$api_key" == rsz_* ]] || { log "no API key issued"; exit 1; }
got=$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$photo" -H 'Content-Type: image/jpeg' "$endpoint/v1/resize?w=8")
[ "$got" = 401 ] || { log "a request without credentials answered $got, want 401"; exit 1; }

width=320
# The first attempt may find no worker subscribed yet; it answers 503 and is retried.
for attempt in 1 2 3 4 5; do
  got=$(curl -s -o "$work/out" -w '%{http_code} %{content_type}' --data-binary @"$photo" \
    -H 'Content-Type: image/jpeg' -H "Authorization: Bearer $api_key" "$endpoint/v1/resize?w=$width")
  # 503 until a worker subscribed; 401 until the auth-cache saw the new key.
  case "${got%% *}" in 503|401) ;; *) break ;; esac
  sleep 1
done
[ "$got" = "200 image/jpeg" ] || { head -c 600 "$work/out" >&2; echo >&2; log "resize answered '$got'"; exit 1; }
size=$(python3 - "$work/out" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
assert d[:2] == b"\xff\xd8", "not a JPEG"
i = 2
while i < len(d):
    while d[i] == 0xFF and d[i + 1] == 0xFF:
        i += 1
    m = d[i + 1]
    if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):
        h, w = struct.unpack(">HH", d[i + 5:i + 9])
        print(f"{w}x{h}")
        break
    i += 2 + struct.unpack(">H", d[i + 2:i + 4])[0]
PY
)
[ "${size%%x*}" = "$width" ] || { log "resized $(basename "$photo") is $size, want width $width"; exit 1; }
log "resized $(basename "$photo") through the containers with an API key: 200 image/jpeg $size"
