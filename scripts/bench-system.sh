#!/usr/bin/env bash
# The whole service (nats-server, api-server with API keys, auth-cache, worker,
# usage-aggregator) against imgproxy on this machine: same photos, same
# operations, closed and open loop. Arguments go to the benchmark
# (--reps N, --seconds S, --ops a,b, --clients 1,4,16, --factors 0.8,2,5, --timeout S,
# --staging reference|inline: how bodies reach the worker, --queue-nodes 1|3);
# the defaults are short, `--reps 5 --seconds 20` is the full setting.
#
# imgproxy is built once into $RESIZER_CACHE/bench when IMGPROXY_SRC names its
# source (a checkout, or a bare git directory with IMGPROXY_REF, default
# v4.0.12; see scripts/install-bench-peers.sh); without it and without a cached
# binary the benchmark measures ours alone and says why.
# The report is on stdout, progress on stderr.
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$REPO_ROOT/scripts/install-nats-server.sh" >/dev/null
peers=$(bash "$REPO_ROOT/scripts/install-bench-peers.sh" imgproxy)
cd "$REPO_ROOT"
CORPUS_DIR=$(bash scripts/corpus.sh)
export CORPUS_DIR
# One invocation over the whole workspace: one feature set, so the release
# binaries the benchmark starts are the ones built together with it.
cargo build --release --quiet --workspace --bins
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$target/release/system-bench" --peers-dir "$peers" "$@"
