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
# Each stage's output is also kept in a file: when a stage fails, its lines
# that say why are printed again at the very end, where a reader of only the
# tail of a long run looks.
STAGE_LOGS="$REPO_ROOT/target/stage-logs"
mkdir -p "$STAGE_LOGS"
for stage in scripts/test.d/*.sh; do
  name=$(basename "$stage" .sh)
  if [ $# -gt 0 ]; then
    keep=0; for want in "$@"; do [[ "$name" == *"$want"* ]] && keep=1; done
    [ $keep = 1 ] || continue
  fi
  log "=== stage $name"
  s=$(date +%s)
  # A process substitution, not a pipe: a daemon a stage leaves running
  # (dockerd, the node) keeps the tee alive, and the loop must not wait on it.
  if bash "$stage" > >(tee "$STAGE_LOGS/$name.log") 2>&1; then
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
    tools_pid=$!
  fi
done
# Only the tools build: a bare `wait` would also wait on the last stage's tee.
[ -z "${tools_pid:-}" ] || wait "$tools_pid" || true
log "all stages done in $(( $(date +%s) - start ))s"
if [ ${#failed[@]} -gt 0 ]; then
  for name in "${failed[@]}"; do
    log "--- why $name failed (whole output: $STAGE_LOGS/$name.log)"
    # The lines that name a failure, then the stage's last lines.
    grep -E 'BROKEN|FAILED|panicked|^error|Error:|failed|not ok' "$STAGE_LOGS/$name.log" | grep -v '^\[.*\] ok' | tail -n 40 >&2 || true
    log "--- the last lines of $name"
    tail -n 40 "$STAGE_LOGS/$name.log" >&2
  done
  log "failed: ${failed[*]}"
  exit 1
fi
