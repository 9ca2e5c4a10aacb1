# Sourced by the scenarios (chart.sh, fleet.sh): how a check reports and how a
# condition is waited for. Expects $scenario (the prefix of every line) and a
# `fail MESSAGE` function of the scenario's, which reports and exits.

ok() { log "$scenario: ok: $*"; }

check() { # check WHAT CMD...: runs CMD, fails the scenario with WHAT when it fails
  local what=$1; shift
  "$@" >/dev/null 2>&1 || fail "$what"
  ok "$what"
}

eventually() { # eventually SECONDS WHAT CMD...: polls CMD until it succeeds, else fails with WHAT
  local secs=$1 what=$2; shift 2
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || fail "$what (not within ${secs}s)"
    sleep 1
  done
  ok "$what"
}
