#!/usr/bin/env bash
# Installs Debian's Docker engine (docker.io) and debootstrap if missing, starts
# dockerd when it is not running, waits until it answers, and prints the path of
# the docker client that matches the engine. Idempotent.
#
# The client is Debian's /usr/bin/docker, not whatever `docker` comes first on
# PATH: a newer client alone may speak another API version than the engine.
# DOCKER=/path/to/client overrides it (an engine installed some other way).
set -euo pipefail
source "$(dirname "$0")/env.sh"

SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
DOCKER=${DOCKER:-/usr/bin/docker}

need=()
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || need+=(docker.io)
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ -x "$DOCKER" ] || { log "no docker client at $DOCKER"; exit 1; }

if ! $SUDO "$DOCKER" info >/dev/null 2>&1; then
  if [ -S /var/run/docker.sock ] && pgrep -x dockerd >/dev/null; then
    log "dockerd runs but does not answer yet; waiting"
  else
    # No service manager here: start the engine by hand, detached from this script.
    log "starting dockerd (log: $RESIZER_CACHE/dockerd.log)"
    $SUDO setsid /usr/sbin/dockerd >>"$RESIZER_CACHE/dockerd.log" 2>&1 </dev/null &
  fi
  for _ in $(seq 120); do
    $SUDO "$DOCKER" info >/dev/null 2>&1 && break
    sleep 0.5
  done
  if ! $SUDO "$DOCKER" info >/dev/null 2>&1; then
    tail -n 30 "$RESIZER_CACHE/dockerd.log" >&2 || true
    log "dockerd did not come up"
    exit 1
  fi
fi
log "docker engine $($SUDO "$DOCKER" version --format '{{.Server.Version}}') ready ($($SUDO "$DOCKER" info --format '{{.Driver}}, cgroup v{{.CgroupVersion}}'))"
echo "$DOCKER"
