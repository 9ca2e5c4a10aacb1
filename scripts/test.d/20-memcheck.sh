#!/usr/bin/env bash
# The worker's C decoders (worker/src/resize/jpeg_planes.c, jpeg_huffman.c,
# heif_shim.c, and the libjpeg-turbo, libwebp and libheif they drive) under
# valgrind's memcheck:
#   - the entropy decoder against libjpeg's on every plane of the corpus and
#     the seeds, at every scale (own_entropy_decoder_matches_libjpeg_on_every_plane);
#   - the same on mutants of the JPEG seeds (own_entropy_decoder_never_accepts_what_libjpeg_refuses);
#   - the whole resize path on mutants of every seed (worker/tests/mutations.rs).
# Natively (stage 10) a stray read or a use of uninitialised memory in C goes
# unnoticed unless it crashes; here any memcheck error fails the stage
# (valgrind exits 9), as does any test failure.
#
# No suppressions: the three runs are clean without any. Leaks are not
# checked (memcheck's default): the ones it reports are the test harness's
# and the Rust runtime's, none in the decoders.
#
# The corpus run takes most of the time (about a minute under valgrind, 3 s
# natively) and cannot be split, so it runs beside the two mutant runs, one
# valgrind process each (valgrind runs a process's threads one at a time, so
# two processes, not test threads, use the two cores). MEMCHECK_MUTATIONS
# mutants per mutant test (30000 by default: about 20 s each) fill the second
# lane to about the corpus run's length.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
cd "$REPO_ROOT"
bash scripts/install-system-packages.sh
CORPUS_DIR="${CORPUS_DIR:-$(bash scripts/corpus.sh)}"
export CORPUS_DIR
mutants="${MEMCHECK_MUTATIONS:-30000}"
target="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
logs="$target/memcheck"
rm -rf "$logs"
mkdir -p "$logs"

# The test executables. With --workspace, the features match stage 10's
# `cargo test --workspace`, so after it nothing is built again (with -p worker
# alone, image and the worker would be rebuilt with other features: minutes).
# When some other crate does not compile, the worker's tests alone still get
# checked.
build() {
  cargo test --no-run --lib --test mutations --message-format=json-render-diagnostics "$@" >"$logs/build.json"
}
if ! build --workspace; then
  log "the workspace's tests do not build; building the worker's alone"
  build -p worker
fi
exes=$(python3 - "$logs/build.json" "$REPO_ROOT/worker/Cargo.toml" <<'EOF'
import json, sys
lib = mutations = None
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or m.get("manifest_path") != sys.argv[2] or not m.get("executable"):
        continue
    if m["target"]["kind"] == ["lib"]:
        lib = m["executable"]
    elif m["target"]["name"] == "mutations":
        mutations = m["executable"]
if not (lib and mutations):
    sys.exit("no worker lib test or mutations test executable in cargo's output")
print(lib, mutations)
EOF
)
read -r lib_test mutations_test <<<"$exes"

# run NAME MUTATIONS EXECUTABLE TEST: one test under memcheck, its output in
# $logs/NAME.log; prints what it runs, then the outcome, the time and the
# test's own summary line; on failure the start of the log (valgrind's report).
run() {
  local name=$1 n=$2 exe=$3 test=$4 s=$SECONDS rc=0
  log "memcheck $name: $(basename "$exe") $test${n:+, $n mutants}"
  # Smaller superblocks: libaom's and dav1d's long SIMD functions (AVIF and
  # HEIC mutants reach them through libheif) exhaust VEX's translation
  # storage at the default size, and valgrind aborts.
  MUTATIONS=$n valgrind --error-exitcode=9 -q --vex-guest-max-insns=25 \
    "$exe" --exact "$test" --test-threads=1 --nocapture >"$logs/$name.log" 2>&1 || rc=$?
  # A renamed test would otherwise "pass" by running nothing.
  if [ $rc = 0 ] && ! grep -q '^test result: ok\. 1 passed' "$logs/$name.log"; then rc=1; fi
  local summary
  summary=$(grep -ho '[0-9]* mutants: .*' "$logs/$name.log" | head -n1 || true)
  if [ $rc = 0 ]; then
    log "memcheck $name passed in $((SECONDS - s))s${summary:+: $summary}"
  else
    case $rc in
      9) log "memcheck $name: valgrind found memory errors (after $((SECONDS - s))s); the start of $logs/$name.log:" ;;
      *) log "memcheck $name FAILED with exit status $rc after $((SECONDS - s))s; the start of $logs/$name.log:" ;;
    esac
    head -n 150 "$logs/$name.log" >&2
  fi
  return $rc
}

unit=resize::rawjpeg::tests::own_entropy_decoder_
start=$SECONDS
run corpus "" "$lib_test" "${unit}matches_libjpeg_on_every_plane" &
corpus_pid=$!
(
  rc=0
  run entropy-mutants "$mutants" "$lib_test" "${unit}never_accepts_what_libjpeg_refuses" || rc=1
  run resize-mutants "$mutants" "$mutations_test" mutated_images_are_refused_or_resized_never_crash || rc=1
  exit $rc
) &
mutants_pid=$!
failed=0
wait $corpus_pid || failed=1
wait $mutants_pid || failed=1
if [ $failed = 1 ]; then
  log "memcheck failed after $((SECONDS - start))s (logs: $logs)"
  exit 1
fi
log "memcheck: all three runs clean in $((SECONDS - start))s"
