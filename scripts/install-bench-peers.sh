#!/usr/bin/env bash
# Installs the tools the resize benchmark compares the worker with (idempotent, cached):
#   vipsthumbnail  Debian libvips-tools
#   sharp          npm, into $RESIZER_CACHE/bench/node
#   pillow-simd    PyPI, built from source into its own venv $RESIZER_CACHE/bench/pillow-simd
#                  (a separate venv: it installs as the module PIL and would shadow a stock Pillow)
#   imgproxy       its Go module against Debian libvips-dev, when the module can be had
# Prints the bench directory. A peer that cannot be installed leaves a note in
# $BENCH/<peer>.unavailable, which the benchmark prints instead of figures.
set -euo pipefail
source "$(dirname "$0")/env.sh"
BENCH="$RESIZER_CACHE/bench"
mkdir -p "$BENCH"
SHARP_VERSION=${SHARP_VERSION:-0.35.5}
PILLOW_SIMD_VERSION=${PILLOW_SIMD_VERSION:-12.1.1.post0}
IMGPROXY_VERSION=${IMGPROXY_VERSION:-latest}
IMGPROXY_BUILD_TIMEOUT=${IMGPROXY_BUILD_TIMEOUT:-900}

unavailable() { printf '%s\n' "$2" >"$BENCH/$1.unavailable"; log "$1 unavailable: $2"; }

SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
need=()
command -v vipsthumbnail >/dev/null || need+=(libvips-tools)
dpkg -s libvips-dev >/dev/null 2>&1 || need+=(libvips-dev)
dpkg -s libjpeg-dev >/dev/null 2>&1 || need+=(libjpeg-dev)
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
dpkg -s libwebp-dev >/dev/null 2>&1 || need+=(libwebp-dev) # Pillow-SIMD's WebP encoder
command -v node >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  # Other scripts may hold the dpkg lock for a while on a shared machine: try again once.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null \
    || { sleep 20; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null; }
fi

if ! (cd "$BENCH/node" 2>/dev/null && node -e "process.exit(require('sharp').versions.sharp === '$SHARP_VERSION' ? 0 : 1)" 2>/dev/null); then
  log "npm install sharp@$SHARP_VERSION into $BENCH/node"
  mkdir -p "$BENCH/node"
  rm -f "$BENCH/sharp.unavailable"
  npm install --silent --no-save --prefix "$BENCH/node" "sharp@$SHARP_VERSION" \
    || unavailable sharp "npm install sharp@$SHARP_VERSION failed"
fi

venv="$BENCH/pillow-simd"
if ! "$venv/bin/python" -c "import PIL, sys; sys.exit(0 if PIL.__version__ == '$PILLOW_SIMD_VERSION' else 1)" 2>/dev/null; then
  log "building pillow-simd $PILLOW_SIMD_VERSION into $venv (a few minutes)"
  rm -f "$BENCH/pillow-simd.unavailable"
  python3 -m venv --clear "$venv"
  # AVX2 where the CPU has it: the resize kernels are why Pillow-SIMD is a peer at all.
  if CC="${CC:-cc} -mavx2" "$venv/bin/python" -m pip install --quiet --no-cache-dir --no-binary :all: \
       "pillow-simd==$PILLOW_SIMD_VERSION"; then :; else
    unavailable pillow-simd "pip install pillow-simd==$PILLOW_SIMD_VERSION failed"
  fi
fi

if [ ! -x "$BENCH/imgproxy" ] && [ ! -f "$BENCH/imgproxy.unavailable" ] || [ "${RETRY_IMGPROXY:-0}" = 1 ]; then
  rm -f "$BENCH/imgproxy.unavailable"
  log "building imgproxy@$IMGPROXY_VERSION against libvips-dev (limit ${IMGPROXY_BUILD_TIMEOUT}s)"
  out="$BENCH/imgproxy-build.log"
  if GOBIN="$BENCH/gobin" CGO_ENABLED=1 timeout "$IMGPROXY_BUILD_TIMEOUT" \
       go install "github.com/imgproxy/imgproxy/v3@$IMGPROXY_VERSION" >"$out" 2>&1; then
    install -m 0755 "$BENCH/gobin/imgproxy" "$BENCH/imgproxy"
  else
    rc=$?
    reason=$(grep -m1 -E 'error|cannot' "$out" | sed 's/^[[:space:]]*//' || true)
    if grep -q '403 Forbidden' "$out"; then reason="the Go module proxy refuses the module (403 Forbidden)"; fi
    if [ "$rc" = 124 ]; then reason="build took longer than ${IMGPROXY_BUILD_TIMEOUT}s"; fi
    unavailable imgproxy "not built: go install github.com/imgproxy/imgproxy/v3@$IMGPROXY_VERSION: ${reason:-exit $rc} (log: $out)"
  fi
fi
echo "$BENCH"
