#!/usr/bin/env bash
# A real Prometheus for a cluster's fleets, as a platform's own would scrape
# them: Kubernetes pod discovery through KUBECONFIG, every resizer pod's `http`
# port (fleet components and the operator), the labels the shipped rules and
# dashboards select on (namespace, fleet, component, pod; the operator's own
# namespace/name labels honoured, as the chart's ServiceMonitor does), and the
# rule files given.
#
#   prometheus.sh start DIR PORT RULE_FILE...   starts it in the background, waits until ready
#   prometheus.sh stop DIR
#
# Environment: PROMETHEUS (the binary; scripts/install-observability-tools.sh
# prints it), KUBECONFIG.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/env.sh"
cmd=${1:?start or stop}
dir=${2:?DIR}

case "$cmd" in
start)
  port=${3:?PORT}
  shift 3
  : "${KUBECONFIG:?KUBECONFIG must point at the cluster}"
  : "${PROMETHEUS:?PROMETHEUS must name the prometheus binary}"
  mkdir -p "$dir/data" "$dir/rules"
  for f in "$@"; do cp "$f" "$dir/rules/"; done
  cat >"$dir/prometheus.yml" <<EOF
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - $dir/rules/*.yaml
scrape_configs:
  - job_name: resizer
    honor_labels: true
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: $KUBECONFIG
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name]
        regex: resizer|resizer-operator
        action: keep
      - source_labels: [__meta_kubernetes_pod_container_port_name]
        regex: http
        action: keep
      - source_labels: [__meta_kubernetes_pod_phase]
        regex: Running
        action: keep
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_instance]
        target_label: fleet
      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_component]
        target_label: component
EOF
  "$PROMETHEUS" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$port" >"$dir/prometheus.log" 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 120); do
    if curl -fsS --max-time 2 "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1; then
      echo "http://127.0.0.1:$port"
      exit 0
    fi
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
    sleep 0.5
  done
  log "prometheus did not become ready:"; tail -n 20 "$dir/prometheus.log" >&2
  exit 1
  ;;
stop)
  if [ -f "$dir/pid" ]; then
    kill "$(cat "$dir/pid")" 2>/dev/null || true
    rm -f "$dir/pid"
  fi
  ;;
*)
  echo "usage: prometheus.sh start DIR PORT RULE_FILE... | stop DIR" >&2
  exit 2
  ;;
esac
