#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what the tests
# need (idempotently, cached under $RESIZER_CACHE), then runs each stage in
# scripts/test.d in order. `scripts/test.sh NAME...` runs only stages whose file name contains NAME.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$REPO_ROOT"
# The photos every stage reads: ../shared/corpus beside the clone, or built here once.
CORPUS_DIR=$(bash scripts/corpus.sh)
export CORPUS_DIR
start=$(date +%s)
failed=()
for stage in scripts/test.d/*.sh; do
  name=$(basename "$stage" .sh)
  if [ $# -gt 0 ]; then
    keep=0; for want in "$@"; do [[ "$name" == *"$want"* ]] && keep=1; done
    [ $keep = 1 ] || continue
  fi
  log "=== stage $name"
  s=$(date +%s)
  if bash "$stage"; then
    log "=== stage $name passed in $(( $(date +%s) - s ))s"
  else
    log "=== stage $name FAILED after $(( $(date +%s) - s ))s"
    failed+=("$name")
  fi
  # After the prerequisites (apt is free again): the observability tools
  # (prometheus, promtool, jaeger) and the Kubernetes and node tools take
  # minutes to build from their Go modules. Build them now at the lowest
  # priority, so they use the CPU that stage 10 leaves idle (links, tests
  # waiting on servers); the stages that need them wait on the installer's lock.
  # One after the other, so two big Go builds do not share the 2 cores: the
  # observability tools first, since they are wanted earlier (by stage 10's
  # end-to-end tests when present and by stage 30), the Kubernetes and node
  # tools only from stage 40 on. A failed build here only costs the head start:
  # the stage that needs the tools runs the installer again and fails there.
  if [[ "$name" == 00-* ]] && [ "${RESIZER_EARLY_TOOLS:-1}" = 1 ]; then
    log "building the observability, Kubernetes and node tools in the background" \
      "(logs: $RESIZER_CACHE/observability-tools-build.log, $RESIZER_CACHE/tools-build.log)"
    (
      nice -n 19 bash scripts/install-observability-tools.sh >"$RESIZER_CACHE/observability-tools-build.log" 2>&1 ||
        log "background build of the observability tools failed (log: $RESIZER_CACHE/observability-tools-build.log)"
      nice -n 19 bash scripts/install-node-tools.sh >"$RESIZER_CACHE/tools-build.log" 2>&1 ||
        log "background build of the Kubernetes and node tools failed (log: $RESIZER_CACHE/tools-build.log)"
    ) &
  fi
done
wait
log "all stages done in $(( $(date +%s) - start ))s"
if [ ${#failed[@]} -gt 0 ]; then log "failed: ${failed[*]}"; exit 1; fi
