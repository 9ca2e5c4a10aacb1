#!/usr/bin/env bash
# Imports image tarballs (`docker save` or image_tar.py output) into the local
# node's containerd (e2e/node/up.sh DIR), where the kubelet finds them: no
# registry is ever asked. Prints the images the node then holds.
#
#   e2e/node/import.sh DIR TARBALL...
set -euo pipefail
dir=${1:?usage: import.sh DIR TARBALL...}; shift
sock="$dir/containerd/containerd.sock"
for t in "$@"; do
  # --all-platforms: a `docker save` tarball carries no platform index to match against.
  ctr --address "$sock" -n k8s.io images import --all-platforms "$t" >/dev/null
done
ctr --address "$sock" -n k8s.io images ls -q | grep -v '^sha256:' || true
