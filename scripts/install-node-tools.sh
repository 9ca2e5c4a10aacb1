#!/usr/bin/env bash
# What the local Kubernetes node (e2e/node/up.sh) needs beyond the control
# plane's tools (scripts/install-k8s-tools.sh, which also builds kubelet,
# kube-scheduler and kube-proxy): idempotent, cached under $RESIZER_CACHE,
# each piece kept until its version changes.
#   containerd, runc, CNI plugins, iptables, conntrack   Debian packages
#   coredns        built from its Go module (COREDNS_VERSION)
#   pause          e2e/node/pause.c, compiled statically
#   the pause and CoreDNS images, as tarballs made by e2e/node/image_tar.py
# Prints shell assignments: PAUSE_IMAGE, PAUSE_TAR, COREDNS_IMAGE, COREDNS_TAR.
set -euo pipefail
source "$(dirname "$0")/env.sh"
# One installer at a time per cache: scripts/test.sh starts this one early in
# the background, and a stage that needs the tools waits here for it to finish.
exec 9>"$RESIZER_CACHE/.node-tools.lock"
flock 9
COREDNS_VERSION=${COREDNS_VERSION:-1.15.0}
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo

need=()
for p in containerd:containerd runc:runc iptables:iptables conntrack:conntrack; do
  command -v "${p%%:*}" >/dev/null || need+=("${p#*:}")
done
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

bash "$REPO_ROOT/scripts/install-k8s-tools.sh" >/dev/null

stamp="$RESIZER_BIN/.coredns.version"
if [ ! -x "$RESIZER_BIN/coredns" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$COREDNS_VERSION" ]; then
  log "building coredns $COREDNS_VERSION from its Go module (about 3 minutes, once)"
  GOBIN="$RESIZER_BIN" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@v$COREDNS_VERSION"
  echo "$COREDNS_VERSION" >"$stamp"
fi

images="$RESIZER_CACHE/node-images"
mkdir -p "$images"
src="$REPO_ROOT/e2e/node"
key=$(cat "$src/pause.c" "$src/image_tar.py" | sha256sum | cut -c1-12)
pause_image="resizer.local/pause:$key"
pause_tar="$images/pause-$key.tar"
if [ ! -s "$pause_tar" ]; then
  log "making the pause image $pause_image"
  gcc -static -O2 -o "$images/pause-$key" "$src/pause.c"
  python3 "$src/image_tar.py" "$pause_tar" "$pause_image" --entrypoint '["/pause"]' --user 65535:65535 "$images/pause-$key:/pause"
fi
coredns_image="resizer.local/coredns:$COREDNS_VERSION"
coredns_tar="$images/coredns-$COREDNS_VERSION-$key.tar"
if [ ! -s "$coredns_tar" ]; then
  log "making the CoreDNS image $coredns_image"
  python3 "$src/image_tar.py" "$coredns_tar" "$coredns_image" --entrypoint '["/coredns"]' --user 65532:65532 "$RESIZER_BIN/coredns:/coredns"
fi
echo "PAUSE_IMAGE=$pause_image PAUSE_TAR=$pause_tar COREDNS_IMAGE=$coredns_image COREDNS_TAR=$coredns_tar"
