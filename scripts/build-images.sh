#!/usr/bin/env bash
# Builds the container images from images/*.Dockerfile and prints their tags,
# one a line. Idempotent: unchanged inputs hit the build cache.
#
#   scripts/build-images.sh [--profile release|debug] [--from host|source]
#                           [--base IMAGE] [--rust-image IMAGE] [NAME...]
#
# NAME is any of api-server worker usage-aggregator auth-cache operator nats (default: all).
# --from host (default): cargo builds the binaries on this machine; they are
#   stripped into target/image-bin/PROFILE and the Dockerfiles' `host` stage copies
#   them in. For machines without a pullable Rust image.
# --from source: the Dockerfiles' builder stage compiles (needs --rust-image pullable).
# --base: the runtime base. Default: a Debian bookworm base made here with
#   debootstrap from the configured apt mirror, cached under $RESIZER_CACHE/images.
# Tags: resizer/NAME:VERSION, VERSION from `cargo metadata` (nats: the
#   nats-server version). IMAGE_PREFIX (default resizer/) changes the prefix.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO_ROOT"

profile=release; from=host; base=""; rust_image=""
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift ;;
    --from) from=$2; shift ;;
    --base) base=$2; shift ;;
    --rust-image) rust_image=$2; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    -*) echo "unknown argument: $1" >&2; exit 2 ;;
    *) names+=("$1") ;;
  esac
  shift
done
case "$profile" in release|debug) ;; *) echo "--profile is release or debug" >&2; exit 2 ;; esac
case "$from" in host|source) ;; *) echo "--from is host or source" >&2; exit 2 ;; esac
[ ${#names[@]} -gt 0 ] || names=(api-server worker usage-aggregator auth-cache operator nats)
prefix=${IMAGE_PREFIX:-resizer/}
binaries=(api-server worker usage-aggregator auth-cache resizer-admin operator)

docker=$(bash scripts/install-docker.sh)
export DOCKER_BUILDKIT=1 # only the stages the chosen one depends on are built

# --- the runtime base: a minimal Debian rootfs from debootstrap, imported ---
make_base() {
  local suite=bookworm variant=minbase include=ca-certificates
  # The key names the recipe: change any of it (or this function) and a new base is made.
  local key
  key=$(printf '%s\n' "$suite" "$variant" "$include" "$(declare -f make_base)" | sha256sum | cut -c1-12)
  local tag="${prefix}base:$suite-$key"
  if "$docker" image inspect "$tag" >/dev/null 2>&1; then echo "$tag"; return; fi
  local tarball="$RESIZER_CACHE/images/rootfs-$suite-$variant-$key.tar"
  if [ ! -s "$tarball" ]; then
    local mirror
    mirror=${DEBIAN_MIRROR:-$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Identifier: Packages' 2>/dev/null \
      | awk -v s="$suite" '$2 == s { print $1; exit }')}
    mirror=${mirror:-http://deb.debian.org/debian/}
    log "debootstrap $suite ($variant, +$include) from $mirror; cached as $tarball"
    local root; root=$(mktemp -d "${TMPDIR:-/tmp}/resizer-rootfs.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$root'" EXIT
    debootstrap --variant="$variant" --include="$include" "$suite" "$root" "$mirror" >"$root.log" 2>&1 \
      || { tail -n 30 "$root.log" >&2; log "debootstrap failed"; exit 1; }
    rm -f "$root.log"
    # What a runtime does not need: package caches, docs, locales, logs.
    rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/* \
      "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
    # The unprivileged user the images run as, under the UID distroless :nonroot uses.
    echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin' >>"$root/etc/passwd"
    echo 'nonroot:x:65532:' >>"$root/etc/group"
    install -d -m 0750 -o 65532 -g 65532 "$root/home/nonroot"
    mkdir -p "$(dirname "$tarball")"
    tar -C "$root" --numeric-owner --sort=name -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$root"; trap - EXIT
  fi
  log "importing $tarball as $tag"
  "$docker" import -m "debootstrap $suite $variant +$include" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL org.opencontainers.image.title=resizer-base org.opencontainers.image.description=\"Debian $suite ($variant) runtime base\"" \
    "$tarball" "$tag" >/dev/null
  echo "$tag"
}

# --- what goes into the build context ---
stage_host_binaries() {
  local out="target/image-bin/$profile" src="${CARGO_TARGET_DIR:-target}/$profile"
  # The whole workspace, as the test stage builds it: one feature set, so no rebuilds between them.
  log "cargo build ($profile) of the workspace binaries"
  if [ "$profile" = release ]; then cargo build -q --release --workspace --bins; else cargo build -q --workspace --bins; fi
  mkdir -p "$out"
  local b
  for b in "${binaries[@]}"; do
    [ -x "$src/$b" ] || { log "missing $src/$b"; exit 1; }
    # Debug info out, symbols kept (readable backtraces); redone only when the binary changed.
    if [ ! -f "$out/$b" ] || [ "$src/$b" -nt "$out/$b" ]; then
      objcopy --strip-debug "$src/$b" "$out/$b.tmp" && mv "$out/$b.tmp" "$out/$b"
    fi
  done
  # The worker's shared libraries beyond glibc (libheif and its AV1/HEVC codecs), from this
  # machine's Debian packages; the image puts them on its LD_LIBRARY_PATH.
  local libs="$out/worker-lib"
  rm -rf "$libs.tmp" && mkdir -p "$libs.tmp"
  ldd "$src/worker" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' \
    | grep -vE '/(libc|libm|libpthread|libdl|librt|libresolv|libgcc_s|ld-linux[^/]*)\.so' \
    | xargs -r cp -L -t "$libs.tmp"
  if [ -d "$libs" ] && diff -rq "$libs" "$libs.tmp" >/dev/null; then rm -rf "$libs.tmp"; else rm -rf "$libs" && mv "$libs.tmp" "$libs"; fi
  local nats; nats=$(bash scripts/install-nats-server.sh)
  if [ ! -f "$out/nats-server" ] || ! cmp -s "$nats" "$out/nats-server"; then install -m 0755 "$nats" "$out/nats-server"; fi
}

version_of() { # the crate version from cargo metadata; nats: the nats-server binary's
  if [ "$1" = nats ]; then
    "$(bash scripts/install-nats-server.sh)" --version | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p'
  else
    cargo metadata -q --no-deps --format-version 1 --offline \
      | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == sys.argv[1]))' "$1"
  fi
}

[ -n "$base" ] || base=$(make_base)
[ "$from" = host ] || profile=release # the builder stage compiles release binaries
args=(--build-arg "RUNTIME_IMAGE=$base" --build-arg "BINARIES=$from" --build-arg "PROFILE=$profile")
args+=(--build-arg "REVISION=$(git rev-parse HEAD)" --build-arg "CREATED=$(git log -1 --format=%cI)")
if [ "$from" = host ]; then
  stage_host_binaries
  args+=(--build-arg "HOST_BIN_DIR=target/image-bin/$profile")
fi
[ -n "$rust_image" ] && args+=(--build-arg "RUST_IMAGE=$rust_image")

for name in "${names[@]}"; do
  file="images/$name.Dockerfile"
  [ -f "$file" ] || { log "no $file"; exit 1; }
  tag="$prefix$name:$(version_of "$name")"
  log "building $tag ($file, binaries from $from, $profile, base $base)"
  s=$(date +%s)
  if ! out=$("$docker" build -q "${args[@]}" --build-arg "VERSION=${tag##*:}" -f "$file" -t "$tag" . 2>&1); then
    printf '%s\n' "$out" >&2; log "building $tag failed"; exit 1
  fi
  log "built $tag in $(( $(date +%s) - s ))s, $("$docker" image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.1f MB", $1/1e6}')"
  # The image this tag named before (another revision's labels) is dangling now.
  "$docker" image prune -f --filter "label=org.opencontainers.image.title=resizer-$name" >/dev/null
  echo "$tag"
done
