#!/usr/bin/env bash
# The worker's resize speed against libvips, sharp, Pillow-SIMD and gifsicle on one core.
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
# The animated inputs of gif-320, made once from the photos (e2e/src/bin/resize-bench/animations.rs),
# then optimised by gifsicle as GIFs on the web are: one global palette, changed rectangles.
ANIMATED_DIR="$RESIZER_CACHE/animated-$(cat e2e/src/bin/resize-bench/animations.rs | sha256sum | cut -c1-12)"
if [ ! -d "$ANIMATED_DIR" ]; then
  log "making the animated GIFs of gif-320 in $ANIMATED_DIR"
  rm -rf "$ANIMATED_DIR.tmp"
  "$target/release/resize-bench" --make-animations "$ANIMATED_DIR.tmp"
  for f in "$ANIMATED_DIR.tmp"/*.gif; do gifsicle -w -O2 --colors 256 "$f" -o "$f.opt" && mv "$f.opt" "$f"; done
  mv "$ANIMATED_DIR.tmp" "$ANIMATED_DIR"
fi
export ANIMATED_DIR
exec taskset -c "${BENCH_CORE:-1}" "$target/release/resize-bench" --peers-dir "$peers" "$@"
