#!/usr/bin/env bash
# Installs the observability tools the metrics and tracing tests need into $RESIZER_BIN
# (idempotent; each binary is kept until its version or build flavour changes):
#   promtool, prometheus     built from the github.com/prometheus/prometheus Go module
#                            (PROMETHEUS_MODULE_VERSION) in one go build; only the
#                            kubernetes and dns service discoveries are compiled in
#                            besides static, file and http, and the web UI is left
#                            out (its assets come from npm): the HTTP API is all there
#   jaeger                   Jaeger v2 (cmd/jaeger, all-in-one with in-memory storage
#                            when started without --config) built from the
#                            github.com/jaegertracing/jaeger Go module (JAEGER_MODULE_VERSION);
#                            its UI is a placeholder (npm again), the query API is all there
#   prometheus-operator CRDs PodMonitor, PrometheusRule and ServiceMonitor as the
#                            Prometheus Operator publishes them (example/prometheus-operator-crd
#                            of its Go module, PROMETHEUS_OPERATOR_VERSION), for the node
#                            scenario to validate the objects the operator and chart write
# Both modules are built from a go.mod of our own under $RESIZER_CACHE: Jaeger's
# module has a replace directive, which `go install mod@version` refuses.
# Prints one line per tool: NAME=PATH.
set -euo pipefail
source "$(dirname "$0")/env.sh"
# One installer at a time per cache: scripts/test.sh starts this one early in
# the background, and a stage that needs the tools waits here for it to finish.
exec 9>"$RESIZER_CACHE/.observability-tools.lock"
flock 9

PROMETHEUS_MODULE_VERSION=${PROMETHEUS_MODULE_VERSION:-0.316.0}
PROMETHEUS_SD_TAGS=${PROMETHEUS_SD_TAGS:-remove_all_sd,enable_kubernetes_sd,enable_dns_sd}
JAEGER_MODULE_VERSION=${JAEGER_MODULE_VERSION:-1.76.0}
PROMETHEUS_OPERATOR_VERSION=${PROMETHEUS_OPERATOR_VERSION:-0.94.0}

stamp() { echo "$RESIZER_BIN/.$1.version"; }
have() { [ -x "$RESIZER_BIN/$1" ] && [ "$(cat "$(stamp "$1")" 2>/dev/null)" = "$2" ]; }
mark() { echo "$2" >"$(stamp "$1")"; }

# Go only from what the module proxy serves: no toolchain switch.
export GOTOOLCHAIN=local CGO_ENABLED=0

# prepare_build DIR MODULE VERSION PKG...: a module of our own in DIR that
# requires MODULE@VERSION, repeats the module's replace directives that point
# at other modules (a replace only applies in the main module), imports PKG...
# from a tools.go and is tidied. Sets src to the module's download directory.
prepare_build() {
  local dir=$1 mod=$2 ver=$3 info p
  shift 3
  mkdir -p "$dir"
  info=$(cd "$dir" && go mod download -json "$mod@$ver")
  (cd "$dir" && go mod edit -json "$(json_field "$info" GoMod)") | python3 -c '
import json, sys
m = json.load(sys.stdin)
print("module resizer.local/" + sys.argv[1])
print()
print("go " + m["Go"])
print()
print("require " + sys.argv[2] + " " + sys.argv[3])
for r in m.get("Replace") or []:
    old, new = r["Old"], r["New"]
    if new.get("Version"):  # a local directory (./staging/...) is not in the download
        print("replace %s%s => %s %s" % (old["Path"], " " + old["Version"] if old.get("Version") else "",
                                         new["Path"], new["Version"]))
' "$(basename "$dir")" "$mod" "$ver" >"$dir/go.mod"
  {
    echo '//go:build tools'
    echo
    echo 'package tools'
    echo
    echo 'import ('
    for p in "$@"; do echo "	_ \"$p\""; done
    echo ')'
  } >"$dir/tools.go"
  if ! (cd "$dir" && GOFLAGS=-mod=mod go mod tidy >"$dir/tidy.log" 2>&1); then
    tail -n 20 "$dir/tidy.log" >&2
    log "go mod tidy failed in $dir (log: $dir/tidy.log)"
    return 1
  fi
  src=$(json_field "$info" Dir)
}
json_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# module_time DIR MODULE LAYOUT: the module's commit time (the proxy's .info) in
# Go time LAYOUT, the build date its release would carry.
module_time() { (cd "$1" && go list -m -f "{{.Time.UTC.Format \"$3\"}}" "$2"); }

# promtool and prometheus share most of their packages: one go build for both.
# The stamp names the build flavour too, so a change of tags or flags rebuilds.
prom_stamp="$PROMETHEUS_MODULE_VERSION-tags-$PROMETHEUS_SD_TAGS-ldflags-version"
if ! have promtool "$prom_stamp" || ! have prometheus "$prom_stamp"; then
  command -v go >/dev/null || { log "go is needed to build promtool and prometheus"; exit 1; }
  build="$RESIZER_CACHE/prometheus-build-$PROMETHEUS_MODULE_VERSION"
  mod=github.com/prometheus/prometheus
  log "building promtool and prometheus from the $mod v$PROMETHEUS_MODULE_VERSION Go module (several minutes on 2 cores, once)"
  prepare_build "$build" "$mod" "v$PROMETHEUS_MODULE_VERSION" "$mod/cmd/promtool" "$mod/cmd/prometheus"
  # Module v0.X.Y is release 3.X.Y; the module carries its release number in VERSION.
  release=$(cat "$src/VERSION")
  v=github.com/prometheus/common/version
  ver="-X $v.Version=$release -X $v.BuildDate=$(module_time "$build" "$mod" 20060102-15:04:05)"
  (cd "$build" && GOFLAGS=-mod=mod go build -trimpath -tags "netgo,$PROMETHEUS_SD_TAGS" \
    -ldflags "-s -w $ver" -o "$RESIZER_BIN/" "$mod/cmd/promtool" "$mod/cmd/prometheus")
  mark promtool "$prom_stamp"
  mark prometheus "$prom_stamp"
fi

jaeger_stamp="$JAEGER_MODULE_VERSION-ldflags-version"
if ! have jaeger "$jaeger_stamp"; then
  command -v go >/dev/null || { log "go is needed to build jaeger"; exit 1; }
  build="$RESIZER_CACHE/jaeger-build-$JAEGER_MODULE_VERSION"
  mod=github.com/jaegertracing/jaeger
  log "building jaeger (v2) from the $mod v$JAEGER_MODULE_VERSION Go module (5 to 10 minutes on 2 cores, once)"
  prepare_build "$build" "$mod" "v$JAEGER_MODULE_VERSION" "$mod/cmd/jaeger"
  # The module is tagged v1.x; the changelog names the v2 release built from it
  # ("v1.76.0 / v2.13.0 (date)"), which `jaeger version` reports.
  release=$(sed -n "/^v$JAEGER_MODULE_VERSION \/ v2/{s#^[^/]*/ \(v2[^ ]*\).*#\1#p;q}" "$src/CHANGELOG.md")
  v=$mod/internal/version
  ver="-X $v.latestVersion=${release:-v$JAEGER_MODULE_VERSION}"
  ver="$ver -X $v.date=$(module_time "$build" "$mod" 2006-01-02T15:04:05Z)"
  (cd "$build" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w $ver" -o "$RESIZER_BIN/jaeger" "$mod/cmd/jaeger")
  mark jaeger "$jaeger_stamp"
fi

crds="$RESIZER_CACHE/prometheus-operator-crds-$PROMETHEUS_OPERATOR_VERSION"
if [ ! -s "$crds/monitoring.coreos.com_podmonitors.yaml" ]; then
  log "fetching the Prometheus Operator $PROMETHEUS_OPERATOR_VERSION CRDs from its Go module"
  src=$(go mod download -json "github.com/prometheus-operator/prometheus-operator@v$PROMETHEUS_OPERATOR_VERSION" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error")))')
  mkdir -p "$crds.tmp"
  for kind in podmonitors prometheusrules servicemonitors; do
    cp "$src/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$crds.tmp/"
  done
  rm -rf "$crds" && mv "$crds.tmp" "$crds"
fi

echo "PROMTOOL=$RESIZER_BIN/promtool"
echo "PROMETHEUS=$RESIZER_BIN/prometheus"
echo "JAEGER=$RESIZER_BIN/jaeger"
echo "PROMETHEUS_OPERATOR_CRDS=$crds"
