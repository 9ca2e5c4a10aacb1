#!/usr/bin/env bash
# Installs the tools the benchmarks compare the service with (idempotent, cached):
#   vipsthumbnail  Debian libvips-tools
#   sharp          npm, into $RESIZER_CACHE/bench/node
#   pillow-simd    PyPI, built from source into its own venv $RESIZER_CACHE/bench/pillow-simd
#                  (a separate venv: it installs as the module PIL and would shadow a stock Pillow)
#   gifsicle       Debian gifsicle (animated GIF)
#   imgproxy       built from a source directory against Debian libvips-dev (the Go module
#                  proxy refuses its module): IMGPROXY_SRC=DIR is a checkout of
#                  github.com/imgproxy/imgproxy, or a bare git directory of it from which
#                  IMGPROXY_REF (default v4.0.12) is exported. The binary is kept in
#                  $RESIZER_CACHE/bench/imgproxy with the ref it came from; without a source
#                  and without a cached binary it is reported unavailable.
# Arguments name the peers to install (default: all), e.g. `install-bench-peers.sh imgproxy`.
# Prints the bench directory. A peer that cannot be installed leaves a note in
# $BENCH/<peer>.unavailable, which the benchmark prints instead of figures.
set -euo pipefail
source "$(dirname "$0")/env.sh"
BENCH="$RESIZER_CACHE/bench"
mkdir -p "$BENCH"
SHARP_VERSION=${SHARP_VERSION:-0.35.5}
PILLOW_SIMD_VERSION=${PILLOW_SIMD_VERSION:-12.1.1.post0}
IMGPROXY_REF=${IMGPROXY_REF:-v4.0.12}
IMGPROXY_BUILD_TIMEOUT=${IMGPROXY_BUILD_TIMEOUT:-1800}
IMGPROXY_SRC=${IMGPROXY_SRC:-}

peers=("$@")
wanted() { [ ${#peers[@]} -eq 0 ] || [[ " ${peers[*]} " == *" $1 "* ]]; }

unavailable() { printf '%s\n' "$2" >"$BENCH/$1.unavailable"; log "$1 unavailable: $2"; }

SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
need=()
if wanted vipsthumbnail; then command -v vipsthumbnail >/dev/null || need+=(libvips-tools); fi
if wanted imgproxy; then
  dpkg -s libvips-dev >/dev/null 2>&1 || need+=(libvips-dev)
  command -v pkg-config >/dev/null || need+=(pkg-config)
fi
if wanted pillow-simd; then
  dpkg -s libjpeg-dev >/dev/null 2>&1 || need+=(libjpeg-dev)
  dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
  dpkg -s libwebp-dev >/dev/null 2>&1 || need+=(libwebp-dev) # Pillow-SIMD's WebP encoder
fi
if wanted sharp; then command -v node >/dev/null || need+=(nodejs npm); fi
if wanted gifsicle; then command -v gifsicle >/dev/null || need+=(gifsicle); fi
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  # Other scripts may hold the dpkg lock for a while on a shared machine: try again once.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null \
    || { sleep 20; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null; }
fi

if wanted sharp && ! (cd "$BENCH/node" 2>/dev/null && node -e "process.exit(require('sharp').versions.sharp === '$SHARP_VERSION' ? 0 : 1)" 2>/dev/null); then
  log "npm install sharp@$SHARP_VERSION into $BENCH/node"
  mkdir -p "$BENCH/node"
  rm -f "$BENCH/sharp.unavailable"
  npm install --silent --no-save --prefix "$BENCH/node" "sharp@$SHARP_VERSION" \
    || unavailable sharp "npm install sharp@$SHARP_VERSION failed"
fi

venv="$BENCH/pillow-simd"
if wanted pillow-simd && ! "$venv/bin/python" -c "import PIL, sys; sys.exit(0 if PIL.__version__ == '$PILLOW_SIMD_VERSION' else 1)" 2>/dev/null; then
  log "building pillow-simd $PILLOW_SIMD_VERSION into $venv (a few minutes)"
  rm -f "$BENCH/pillow-simd.unavailable"
  python3 -m venv --clear "$venv"
  # AVX2 where the CPU has it: the resize kernels are why Pillow-SIMD is a peer at all.
  if CC="${CC:-cc} -mavx2" "$venv/bin/python" -m pip install --quiet --no-cache-dir --no-binary :all: \
       "pillow-simd==$PILLOW_SIMD_VERSION"; then :; else
    unavailable pillow-simd "pip install pillow-simd==$PILLOW_SIMD_VERSION failed"
  fi
fi

# imgproxy_src_id DIR: which source a cached binary was built from: the commit of
# IMGPROXY_REF in a bare git directory, a checkout's HEAD, or the path of a plain tree.
imgproxy_src_id() {
  if [ -f "$1/go.mod" ]; then
    git -C "$1" rev-parse HEAD 2>/dev/null || echo "tree:$(cd "$1" && pwd)"
  else
    git --git-dir="$1" rev-parse --verify --quiet "$IMGPROXY_REF^{commit}" 2>/dev/null
  fi
}

build_imgproxy() {
  local stamp="$BENCH/.imgproxy.source" src="$IMGPROXY_SRC" id tree out rc reason
  if [ -z "$src" ]; then
    if [ -x "$BENCH/imgproxy" ]; then rm -f "$BENCH/imgproxy.unavailable"; return 0; fi
    unavailable imgproxy "not built: no source (set IMGPROXY_SRC to a checkout or a bare git directory of github.com/imgproxy/imgproxy; the Go module proxy refuses its module)"
    return 0
  fi
  if ! id=$(imgproxy_src_id "$src") || [ -z "$id" ]; then
    unavailable imgproxy "not built: $src is neither a checkout (go.mod) nor a git directory holding $IMGPROXY_REF"
    return 0
  fi
  if [ -x "$BENCH/imgproxy" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$id" ]; then return 0; fi
  command -v go >/dev/null || { unavailable imgproxy "not built: go is not on PATH"; return 0; }
  rm -f "$BENCH/imgproxy.unavailable"
  tree=$src
  if [ ! -f "$src/go.mod" ]; then
    # A fresh export every time: a half-extracted tree from an interrupted run must not be built.
    tree="$BENCH/imgproxy-src"
    rm -rf "$tree" && mkdir -p "$tree"
    git --git-dir="$src" archive "$IMGPROXY_REF" | tar -x -C "$tree"
  fi
  out="$BENCH/imgproxy-build.log"
  log "building imgproxy ($IMGPROXY_REF from $src) against libvips-dev, a few minutes (limit ${IMGPROXY_BUILD_TIMEOUT}s)"
  # ./cli is the main package: building the module root only makes an archive.
  if (cd "$tree" && CGO_ENABLED=1 timeout "$IMGPROXY_BUILD_TIMEOUT" \
        go build -trimpath -o "$BENCH/imgproxy.new" ./cli) >"$out" 2>&1; then
    mv -f "$BENCH/imgproxy.new" "$BENCH/imgproxy"
    echo "$id" >"$stamp"
    rm -rf "$BENCH/imgproxy-src"
  else
    rc=$?
    reason=$(grep -m1 -E 'error|cannot|refused|Forbidden' "$out" | sed 's/^[[:space:]]*//' || true)
    if [ "$rc" = 124 ]; then reason="build took longer than ${IMGPROXY_BUILD_TIMEOUT}s"; fi
    rm -f "$BENCH/imgproxy.new"
    unavailable imgproxy "not built from $src ($IMGPROXY_REF): ${reason:-exit $rc} (log: $out)"
  fi
}
if wanted imgproxy; then build_imgproxy; fi
echo "$BENCH"
