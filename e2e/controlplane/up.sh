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
set -euo pipefail
source "$(dirname "$0")/../../scripts/env.sh"
dir=${1:?usage: up.sh DIR}
mkdir -p "$dir"/{pki,etcd,logs}
dir=$(cd "$dir" && pwd)
bash "$REPO_ROOT/scripts/install-k8s-tools.sh" >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
etcd_port=$(free_port); etcd_peer=$(free_port); api_port=$(free_port)

pki="$dir/pki"
if [ ! -f "$pki/ca.crt" ]; then
  log "control plane: certificates in $pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=resizer-test-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  issue() { # issue NAME SUBJECT [SAN]
    openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
    # Extensions make it an X.509 v3 certificate: rustls (the operator's client) refuses v1.
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' >"$pki/$1.ext"
    if [ -n "${3:-}" ]; then printf 'subjectAltName=%s\n' "$3" >>"$pki/$1.ext"; fi
    openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 30 \
      -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
  }
  issue apiserver "/CN=kube-apiserver" "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  issue admin "/O=system:masters/CN=resizer-admin"
  issue controller-manager "/CN=system:kube-controller-manager"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
fi

kubeconfig() { # kubeconfig FILE CERT
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $pki/$2.crt
    client-key: $pki/$2.key
contexts:
- name: local
  context: {cluster: local, user: $2, namespace: default}
current-context: local
KC
}
kubeconfig "$dir/kubeconfig" admin
kubeconfig "$dir/controller-manager.kubeconfig" controller-manager

: >"$dir/pids"
start() { # start NAME CMD...: runs in the background, logging to DIR/logs/NAME.log
  local name=$1; shift
  "$@" >"$dir/logs/$name.log" 2>&1 &
  echo "$! $name" >>"$dir/pids"
}
fail() { log "control plane: $1; last lines of $2:"; tail -n 30 "$dir/logs/$2.log" >&2; bash "$(dirname "$0")/down.sh" "$dir"; exit 1; }
ready() { # ready NAME SECONDS WHAT CMD...: polls CMD until it succeeds, failing when NAME exits or time runs out
  local name=$1 secs=$2 what=$3; shift 3
  local pid end=$(( $(date +%s) + secs ))
  pid=$(awk -v n="$name" '$2 == n { print $1 }' "$dir/pids")
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || fail "$name exited" "$name"
    [ "$(date +%s)" -lt "$end" ] || fail "$name: $what not within ${secs}s" "$name"
    sleep 0.5
  done
}
kubectl_admin() { "$RESIZER_BIN/kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }

log "control plane: etcd on 127.0.0.1:$etcd_port"
start etcd "$RESIZER_BIN/etcd" --name default --data-dir "$dir/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-cluster "default=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync --quota-backend-bytes 2147483648
ready etcd 20 "healthy" curl -fsS "http://127.0.0.1:$etcd_port/health"

log "control plane: kube-apiserver on https://127.0.0.1:$api_port"
start kube-apiserver "$RESIZER_BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" \
  --service-account-issuer https://kubernetes.default.svc \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --api-audiences https://kubernetes.default.svc \
  --service-cluster-ip-range 10.0.0.0/24 \
  --authorization-mode Node,RBAC --allow-privileged=true \
  --endpoint-reconciler-type none \
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

log "control plane: up (logs in $dir/logs)"
echo "KUBECONFIG=$dir/kubeconfig"
