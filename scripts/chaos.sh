#!/usr/bin/env bash
# The chaos suite: the fleet as local processes (3-node JetStream with
# sync_interval: always, two api-servers, workers, auth-caches and
# usage-aggregators) under open-loop load at half its measured capacity;
# every member killed and paused in turn, JetStream leaders and a follower
# included, then overload at 2× and 5×. The invariants are checked after each
# scenario and over the usage ledger; the table goes to stdout, progress to
# stderr, and the exit status is non-zero when an invariant broke. Last, on a
# cluster of its own with lazyfs stores (root), all three JetStream nodes lose
# power at once: no acknowledged write to JOBS, USAGE or IDENTITY may be lost
# (and with the default lazy sync, as a control, some must be).
#
# Arguments go to the suite: --seconds S (each fault's length; default 10, the
# full run), --load F (fraction of capacity, default 0.5), --only a,b (scenario
# name filters), --logs DIR (the processes' logs). CI runs `--seconds 2` on the
# debug build (scripts/test.d/15-chaos.sh); this script builds release.
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$REPO_ROOT/scripts/install-nats-server.sh" >/dev/null
cd "$REPO_ROOT"
CORPUS_DIR=$(bash scripts/corpus.sh)
export CORPUS_DIR NATS_SERVER_BIN="$RESIZER_BIN/nats-server"
# One invocation over the whole workspace: one feature set for every binary.
cargo build --release --quiet --workspace --bins
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$target/release/chaos" "$@"
