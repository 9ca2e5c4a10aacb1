#!/usr/bin/env bash
# Builds the project's images (scripts/build-images.sh, docker) and imports
# them into the local node of e2e/node/up.sh DIR: `docker save`, then
# e2e/node/import.sh. Prints the tags, one a line.
#
#   e2e/node/images.sh DIR [build-images.sh options...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/env.sh"
dir=${1:?usage: images.sh DIR [build-images options]}; shift
docker=$(bash "$REPO_ROOT/scripts/install-docker.sh")
mapfile -t tags < <(bash "$REPO_ROOT/scripts/build-images.sh" "$@")
[ "${#tags[@]}" -gt 0 ] || { log "node: build-images.sh made no image"; exit 1; }
tar="$dir/images.tar"
"$docker" save -o "$tar" "${tags[@]}"
bash "$here/import.sh" "$dir" "$tar" >/dev/null
rm -f "$tar"
# One listing for every check: `ctr … | grep -q` under pipefail fails whenever
# grep stops reading before ctr has written everything.
present=$(ctr --address "$dir/containerd/containerd.sock" -n k8s.io images ls -q)
for t in "${tags[@]}"; do
  grep -qx "docker.io/$t\|$t" <<<"$present" \
    || { log "node: $t is not in the node's containerd after the import"; exit 1; }
  echo "$t"
done
