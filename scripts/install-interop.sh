#!/usr/bin/env bash
# Installs the independent RFC 9421 implementation the interoperability test
# signs requests with (idempotent, cached): the PyPI package
# http-message-signatures (pyauth) in its own venv $RESIZER_CACHE/interop-venv.
# Prints the venv's python, which the tests read from RESIZER_INTEROP_PYTHON.
set -euo pipefail
source "$(dirname "$0")/env.sh"
WANT=${HTTP_MESSAGE_SIGNATURES_VERSION:-3.0.0}
venv="$RESIZER_CACHE/interop-venv"
stamp="$venv/.installed"
spec="http-message-signatures==$WANT"

if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$spec" ] \
   && "$venv/bin/python" -c "import http_message_signatures" 2>/dev/null; then
  echo "$venv/bin/python"; exit 0
fi
log "installing $spec into $venv"
python3 -m venv --clear "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$spec"
"$venv/bin/python" -c "import http_message_signatures.algorithms as a; a.ED25519" \
  || { log "$spec does not provide ED25519"; exit 1; }
printf '%s\n' "$spec" >"$stamp"
log "$spec ready"
echo "$venv/bin/python"
