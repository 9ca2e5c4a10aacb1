#!/usr/bin/env bash
# Formatting, lints and every cargo test (unit tests and integration tests over real sockets and a real nats-server).
set -euo pipefail
source "$(dirname "$0")/../env.sh"
cd "$REPO_ROOT"
export NATS_SERVER_BIN="$RESIZER_BIN/nats-server"
# The RFC 9421 interoperability test signs with an independent implementation (00-prereqs installs it).
RESIZER_INTEROP_PYTHON="$(bash "$REPO_ROOT/scripts/install-interop.sh")"
export RESIZER_INTEROP_PYTHON
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests run the service binaries as processes: build them first.
cargo build --workspace --bins
# The tracing test runs a real Jaeger: scripts/test.sh builds it in the
# background after stage 00, while the above compiles; this waits for that
# build (or makes it) only now.
JAEGER_BIN=$(bash "$REPO_ROOT/scripts/install-observability-tools.sh" | sed -n 's/^JAEGER=//p')
export JAEGER_BIN
cargo test --workspace
