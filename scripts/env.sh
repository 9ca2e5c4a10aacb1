# Sourced by every script: where cached tools live and how to find them.
# Tools are installed once per machine under $RESIZER_CACHE and reused by every clone.
export RESIZER_CACHE="${RESIZER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/resizer}"
export RESIZER_BIN="$RESIZER_CACHE/bin"
mkdir -p "$RESIZER_BIN"
case ":$PATH:" in *":$RESIZER_BIN:"*) ;; *) export PATH="$RESIZER_BIN:$PATH" ;; esac
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# kube_wait SECONDS ARGS...: `kubectl wait --timeout ARGS`, tried again until
# SECONDS have passed. Right after an object is created its
# .status.conditions can still be null, and kubectl wait then fails at once
# ("accessor error: <nil>") instead of waiting.
kube_wait() {
  local deadline=$((SECONDS + $1)) left
  shift
  while :; do
    left=$((deadline - SECONDS))
    [ "$left" -gt 0 ] || left=1
    "$KUBECTL" wait --timeout="${left}s" "$@" && return 0
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 1
  done
}

# version_ge A B: true when version A >= B (dotted numbers).
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }
