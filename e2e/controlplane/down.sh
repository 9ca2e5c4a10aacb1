#!/usr/bin/env bash
# Stops what e2e/controlplane/up.sh DIR started, newest first.
set -uo pipefail
dir=${1:?usage: down.sh DIR}
[ -f "$dir/pids" ] || exit 0
tac "$dir/pids" | while read -r pid name; do
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null && echo "killed $name ($pid) after 5 s" >&2
done
rm -f "$dir/pids"
