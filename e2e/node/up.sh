#!/usr/bin/env bash
# A real one-node Kubernetes cluster inside this machine, without a registry
# or a cluster installer: the control plane of e2e/controlplane/up.sh (etcd,
# kube-apiserver, kube-controller-manager) plus kube-scheduler, containerd +
# runc, a kubelet, kube-proxy (iptables), CoreDNS as a pod, and hostPath
# PersistentVolumes for the NATS StatefulSet's claims. Every address is
# private to this VM: pods live on the bridge $NODE_BRIDGE (10.244.0.0/24),
# Services on 10.96.0.0/16 routed onto that bridge, never out of eth0.
#
#   e2e/node/up.sh DIR     state, logs and kubeconfig go to DIR (must be root)
#   e2e/node/down.sh DIR   stops it and leaves the machine as it found it
#
# Images are never pulled: the pause and CoreDNS images are made here
# (scripts/install-node-tools.sh) and imported into the node's containerd;
# import more with e2e/node/import.sh DIR IMAGE... Prints
# `KUBECONFIG=DIR/kubeconfig` as its last line.
#
# Settings: NODE_BRIDGE (rzbr0), NODE_NAME (resizer-node), NODE_PVS (12 volumes of 1Gi).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/env.sh"
dir=${1:?usage: up.sh DIR}
[ "$(id -u)" = 0 ] || { log "node: must run as root (containerd, iptables, a bridge)"; exit 1; }
mkdir -p "$dir"/{logs,pv}
dir=$(cd "$dir" && pwd)
eval "$(bash "$REPO_ROOT/scripts/install-node-tools.sh")" # PAUSE_IMAGE, PAUSE_TAR, COREDNS_IMAGE, COREDNS_TAR

bridge=${NODE_BRIDGE:-rzbr0}
node=${NODE_NAME:-resizer-node}
node_ip=10.244.0.1
pod_cidr=10.244.0.0/24
service_cidr=10.96.0.0/16
dns_ip=10.96.0.10
api_port=6443
echo "$bridge" >"$dir/bridge"
kubectl_admin() { "$RESIZER_BIN/kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }
fail() { log "node: $1"; [ -n "${2:-}" ] && tail -n 40 "$dir/logs/$2.log" >&2; bash "$here/down.sh" "$dir"; exit 1; }

# --- Host state we change, recorded so down.sh can put it back.
if [ ! -f "$dir/sysctls" ]; then
  for k in net.ipv4.ip_forward vm.overcommit_memory kernel.panic kernel.panic_on_oops \
    net.bridge.bridge-nf-call-iptables; do
    v=$(sysctl -n "$k" 2>/dev/null) && echo "$k=$v"
  done >"$dir/sysctls"
  for d in /var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni /etc/cni /opt/cni; do
    [ -e "$d" ] || echo "$d"
  done >"$dir/created-paths"
fi
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true

# --- The pod network: a bridge of our own, and the Service range routed onto it.
if ! ip link show "$bridge" >/dev/null 2>&1; then
  ip link add "$bridge" type bridge
fi
ip addr replace "$node_ip/24" dev "$bridge"
ip link set "$bridge" up
ip route replace "$service_cidr" dev "$bridge" src "$node_ip"
mkdir -p "$dir/cni/net.d"
cat >"$dir/cni/net.d/10-resizer.conflist" <<CNI
{
  "cniVersion": "0.4.0",
  "name": "resizer-node",
  "plugins": [
    {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr", "gateway": "$node_ip"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$dir/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "firewall"}
  ]
}
CNI

# --- The control plane, on the bridge address so pods reach it through the `kubernetes` Service.
CP_ADDRESS=$node_ip CP_API_PORT=$api_port CP_SERVICE_CIDR=$service_cidr CP_ENDPOINTS=lease CP_SCHEDULER=1 \
  bash "$REPO_ROOT/e2e/controlplane/up.sh" "$dir" >/dev/null || fail "control plane did not start"
pki="$dir/pki"

address=$node_ip
source "$REPO_ROOT/e2e/controlplane/lib.sh"
[ -f "$pki/kubelet.crt" ] || issue kubelet "/O=system:nodes/CN=system:node:$node" "IP:$node_ip,DNS:$node"
[ -f "$pki/kube-proxy.crt" ] || issue kube-proxy "/CN=system:kube-proxy"
kubeconfig "$dir/kubelet.kubeconfig" kubelet
kubeconfig "$dir/kube-proxy.kubeconfig" kube-proxy

# --- containerd: its own config, root, state and socket, out of the way of any other containerd.
sock="$dir/containerd/containerd.sock"
mkdir -p "$dir/containerd"
cat >"$dir/containerd/config.toml" <<TOML
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
[grpc]
  address = "$sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This VM withholds CAP_SYS_RESOURCE: without this every sandbox fails writing oom_score_adj.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
TOML
log "node: containerd ($sock)"
start containerd containerd --config "$dir/containerd/config.toml"
ready containerd 30 "its socket" ctr --address "$sock" version
bash "$here/import.sh" "$dir" "$PAUSE_TAR" "$COREDNS_TAR" >/dev/null

# --- The kubelet.
mkdir -p "$dir/kubelet" "$dir/pod-logs"
cat >"$dir/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The host is cgroup v1, has swap accounting we do not control, and no systemd.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://$sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
address: $node_ip
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
clusterDomain: cluster.local
clusterDNS: [$dns_ip]
resolvConf: $dir/resolv.conf
podLogsDir: $dir/pod-logs
maxPods: 60
serializeImagePulls: false
# Shared machines fill their disks: evict only when truly out of room.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
protectKernelDefaults: false
YAML
# Pods resolve cluster names through CoreDNS; nothing outside this VM is reachable anyway.
grep -v '^search' /etc/resolv.conf >"$dir/resolv.conf" || true
log "node: kubelet ($node, $node_ip)"
start kubelet "$RESIZER_BIN/kubelet" --config "$dir/kubelet.yaml" --kubeconfig "$dir/kubelet.kubeconfig" \
  --root-dir "$dir/kubelet" --hostname-override "$node" --node-ip "$node_ip" --v 1
ready kubelet 90 "node Ready" kubectl_admin wait --for condition=Ready "node/$node" --timeout 2s

# --- kube-proxy in iptables mode.
cat >"$dir/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $dir/kube-proxy.kubeconfig}
hostnameOverride: $node
clusterCIDR: $pod_cidr
iptables: {localhostNodePorts: false}
# This VM refuses conntrack sysctls: leave them as they are.
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
YAML
log "node: kube-proxy (iptables)"
start kube-proxy "$RESIZER_BIN/kube-proxy" --config "$dir/kube-proxy.yaml"
ready kube-proxy 60 "its rules" iptables -t nat -S KUBE-SERVICES

# --- CoreDNS, as a pod behind the cluster DNS Service.
sed -e "s#@IMAGE@#$COREDNS_IMAGE#" -e "s#@DNS_IP@#$dns_ip#" "$here/coredns.yaml" | kubectl_admin apply -f - >/dev/null
ready kubelet 180 "CoreDNS Ready" kubectl_admin -n kube-system wait --for condition=Available deploy/coredns --timeout 2s

# --- Volumes for StatefulSet claims: hostPath PVs without a class, bound to claims that name none.
for i in $(seq 1 "${NODE_PVS:-12}"); do
  mkdir -p "$dir/pv/$i" && chmod 0777 "$dir/pv/$i"
  cat <<PV
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: node-pv-$i, labels: {resizer.dev/node-volume: "true"}}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: $dir/pv/$i, type: Directory}
PV
done | kubectl_admin apply -f - >/dev/null

log "node: up (logs in $dir/logs, pods on $bridge, Services on $service_cidr, DNS $dns_ip)"
echo "KUBECONFIG=$dir/kubeconfig"
