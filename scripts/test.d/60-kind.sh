#!/usr/bin/env bash
# The kind e2e where it can run (Docker, kind's node image). Where it cannot,
# e2e/kind/run.sh says why and this stage passes; `e2e/kind/run.sh --required`
# (or RESIZER_KIND=required here) makes that an error.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
cd "$REPO_ROOT"
if [ "${RESIZER_KIND:-}" = required ]; then exec bash e2e/kind/run.sh --required; fi
exec bash e2e/kind/run.sh
