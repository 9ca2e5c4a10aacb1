#!/usr/bin/env bash
# The chaos suite's whole matrix, short: two seconds per fault on the debug
# binaries stage 10 built (the full run is scripts/chaos.sh), then the power
# loss of the whole JetStream cluster on lazyfs stores. Every invariant
# fails the stage; the time budgets (recovery, re-election) are measured and
# printed, since this machine is busy with the other stages' tools meanwhile.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
cd "$REPO_ROOT"
export NATS_SERVER_BIN="$RESIZER_BIN/nats-server"
cargo build --quiet --workspace --bins
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
"$target/debug/chaos" --seconds 2 --capacity-seconds 3 --logs "$target/chaos-logs" --budgets report
