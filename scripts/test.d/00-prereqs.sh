#!/usr/bin/env bash
# Toolchain and system packages every later stage relies on.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
bash "$REPO_ROOT/scripts/install-system-packages.sh"
bash "$REPO_ROOT/scripts/install-nats-server.sh" >/dev/null
bash "$REPO_ROOT/scripts/install-interop.sh" >/dev/null
