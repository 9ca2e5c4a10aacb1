#!/usr/bin/env bash
# Starts a real Kubernetes control plane on loopback, without containers:
# etcd, kube-apiserver (RBAC, service-account tokens, client-certificate auth)
# and kube-controller-manager (garbage collection, Deployments → ReplicaSets,
# service accounts). No kubelet: pods are created but never run.
#
#   e2e/controlplane/up.sh DIR     state, logs and kubeconfig go to DIR
#   e2e/controlplane/down.sh DIR   stops it
#
# Prints `KUBECONFIG=DIR/kubeconfig` as its last line. Binaries come from
# scripts/install-k8s-tools.sh (built once, cached under $RESIZER_CACHE).
#
# e2e/node/up.sh runs this with a node behind it; these settings are for it:
#   CP_ADDRESS (127.0.0.1)        address the apiserver binds and advertises
#   CP_API_PORT (a free port)     its port
#   CP_SERVICE_CIDR (10.0.0.0/24) the Service range; its first address is the `kubernetes` Service
#   CP_ENDPOINTS (none)           `lease`: the `kubernetes` Service gets endpoints (pods reach the apiserver)
#   CP_SCHEDULER (0)              1: kube-scheduler runs too
set -euo pipefail
source "$(dirname "$0")/../../scripts/env.sh"
dir=${1:?usage: up.sh DIR}
mkdir -p "$dir"/{pki,etcd,logs}
dir=$(cd "$dir" && pwd)
bash "$REPO_ROOT/scripts/install-k8s-tools.sh" >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
etcd_port=$(free_port); etcd_peer=$(free_port)
address=${CP_ADDRESS:-127.0.0.1}
api_port=${CP_API_PORT:-$(free_port)}
service_cidr=${CP_SERVICE_CIDR:-10.0.0.0/24}
# The first address of the range is the `kubernetes` Service's ClusterIP.
service_ip=$(python3 -c 'import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1])[1])' "$service_cidr")

pki="$dir/pki"
fail() { log "control plane: $1; last lines of $2:"; tail -n 30 "$dir/logs/$2.log" >&2; bash "$(dirname "$0")/down.sh" "$dir"; exit 1; }
source "$(dirname "$0")/lib.sh"
if [ ! -f "$pki/ca.crt" ]; then
  log "control plane: certificates in $pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=resizer-test-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  issue apiserver "/CN=kube-apiserver" "IP:127.0.0.1,IP:$address,IP:$service_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  issue admin "/O=system:masters/CN=resizer-admin"
  issue controller-manager "/CN=system:kube-controller-manager"
  issue scheduler "/CN=system:kube-scheduler"
  # The apiserver's identity towards kubelets (logs, exec, port-forward).
  issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
fi

kubeconfig "$dir/kubeconfig" admin
kubeconfig "$dir/controller-manager.kubeconfig" controller-manager
kubeconfig "$dir/scheduler.kubeconfig" scheduler

: >"$dir/pids"
kubectl_admin() { "$RESIZER_BIN/kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }

log "control plane: etcd on 127.0.0.1:$etcd_port"
start etcd "$RESIZER_BIN/etcd" --name default --data-dir "$dir/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-cluster "default=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync --quota-backend-bytes 2147483648
ready etcd 20 "healthy" curl -fsS "http://127.0.0.1:$etcd_port/health"

log "control plane: kube-apiserver on https://$address:$api_port"
start kube-apiserver "$RESIZER_BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address "$address" --advertise-address "$address" --secure-port "$api_port" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" \
  --service-account-issuer https://kubernetes.default.svc \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --api-audiences https://kubernetes.default.svc \
  --service-cluster-ip-range "$service_cidr" \
  --authorization-mode Node,RBAC --allow-privileged=true \
  --endpoint-reconciler-type "${CP_ENDPOINTS:-none}" \
  --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types InternalIP \
  --profiling=false
ready kube-apiserver 150 "/readyz" kubectl_admin get --raw /readyz

log "control plane: kube-controller-manager"
start kube-controller-manager "$RESIZER_BIN/kube-controller-manager" \
  --kubeconfig "$dir/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --use-service-account-credentials=true
# Ready when the default service account of a namespace appears: the serviceaccount controller runs.
ready kube-controller-manager 60 "a default service account" kubectl_admin -n default get serviceaccount default

if [ "${CP_SCHEDULER:-0}" = 1 ]; then
  log "control plane: kube-scheduler"
  start kube-scheduler "$RESIZER_BIN/kube-scheduler" \
    --kubeconfig "$dir/scheduler.kubeconfig" \
    --authentication-kubeconfig "$dir/scheduler.kubeconfig" --authorization-kubeconfig "$dir/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false
  ready kube-scheduler 60 "its start" grep -q "Starting Kubernetes Scheduler" "$dir/logs/kube-scheduler.log"
fi

log "control plane: up (logs in $dir/logs)"
echo "KUBECONFIG=$dir/kubeconfig"
