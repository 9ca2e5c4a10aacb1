#!/usr/bin/env bash
# The monitoring the product ships, checked with Prometheus' own tooling:
#   - the SLO rules the operator renders (rulegen, for every example fleet) and
#     the chart's operator alerts pass `promtool check rules`;
#   - their unit tests (operator/tests/rules/*.test.yaml) pass `promtool test
#     rules`: every alert fires on the series that should page and stays silent
#     on a healthy fleet (that each alert has both is a cargo test);
#   - every Grafana panel query parses (`promtool check rules` over them as
#     recording rules). That they return data from real components is checked
#     against a real Prometheus on the node (stage 70), and that every metric
#     they name is exported by a cargo test (e2e/tests/observability.rs).
set -euo pipefail
source "$(dirname "$0")/../env.sh"
cd "$REPO_ROOT"

tools=$(bash scripts/install-observability-tools.sh)
PROMTOOL=$(sed -n 's/^PROMTOOL=//p' <<<"$tools")
[ -x "$PROMTOOL" ] || { log "promtool was not installed"; exit 1; }

cargo build -q --workspace --bins
target="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! diff -u operator/tests/rules/fleet.rules.yaml \
  <("$target/rulegen" charts/resizer/examples/resizedeployment.yaml --namespace media); then
  log "operator/tests/rules/fleet.rules.yaml differs from what the operator renders; regenerate it:"
  log "  cargo run -q -p operator --bin rulegen -- charts/resizer/examples/resizedeployment.yaml --namespace media > operator/tests/rules/fleet.rules.yaml"
  exit 1
fi
for example in charts/resizer/examples/*.yaml; do
  "$target/rulegen" "$example" >"$work/$(basename "$example" .yaml).rules.yaml"
done
"$PROMTOOL" check rules "$work"/*.rules.yaml charts/resizer/rules/operator.rules.yaml
log "promtool test rules (fleet and operator alerts)"
"$PROMTOOL" test rules operator/tests/rules/fleet.test.yaml operator/tests/rules/operator.test.yaml

python3 e2e/observability/dashboards.py rules charts/resizer/dashboards/*.json >"$work/dashboards.yaml"
panels=$(grep -c 'record:' "$work/dashboards.yaml")
"$PROMTOOL" check rules "$work/dashboards.yaml" >/dev/null
log "all $panels dashboard queries parse"
