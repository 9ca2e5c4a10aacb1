#!/usr/bin/env bash
# The worker's resize speed against libvips, sharp and Pillow-SIMD on one core.
# Installs the peers (cached), builds the harness in release mode and runs it
# pinned to one core; arguments go to the harness (--reps N, --seconds S, --ops a,b).
# BENCH_CORE picks the core (default 1). The report is on stdout, progress on stderr.
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$REPO_ROOT/scripts/install-system-packages.sh"
peers=$(bash "$REPO_ROOT/scripts/install-bench-peers.sh")
cd "$REPO_ROOT"
# The photos: CORPUS_DIR, ../shared/corpus beside the clone, or built here once.
CORPUS_DIR=$(bash scripts/corpus.sh)
export CORPUS_DIR
cargo build --release --quiet --workspace --bins # the whole workspace: one feature set for every build
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec taskset -c "${BENCH_CORE:-1}" "$target/release/resize-bench" --peers-dir "$peers" "$@"
