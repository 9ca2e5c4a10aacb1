#!/usr/bin/env bash
# Stops the node of e2e/node/up.sh DIR and puts the machine back as it was:
# containers and their shims killed, kube-proxy's and the CNI's iptables
# chains removed, every mount under DIR unmounted, the kubelet's cgroups
# removed depth-first, the bridge and the Service route deleted, the sysctls
# it changed restored, the host paths the kubelet created removed. Safe to run
# twice, and on a half-started node.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/env.sh"
dir=${1:?usage: down.sh DIR}
[ -d "$dir" ] || exit 0
dir=$(cd "$dir" && pwd)
sock="$dir/containerd/containerd.sock"

stop() { # stop NAME: the recorded process, TERM then KILL after 5 s
  local pid
  pid=$(awk -v n="$1" '$2 == n { print $1 }' "$dir/pids" 2>/dev/null)
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null && log "node: killed $1 ($pid) after 5 s"
}

# The Prometheus scripts/run-node.sh leaves scraping the fleet, if any.
[ -f "$dir/prometheus/pid" ] && bash "$here/../observability/prometheus.sh" stop "$dir/prometheus"
stop kube-proxy
[ -f "$dir/kube-proxy.yaml" ] && "$RESIZER_BIN/kube-proxy" --cleanup >/dev/null 2>&1
stop kubelet
# Containers outlive containerd (their shims hold them): kill every task, then the shims.
if [ -S "$sock" ]; then
  for t in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
    ctr --address "$sock" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1
  done
  sleep 0.5
fi
pkill -9 -f "containerd-shim.*-address $sock" 2>/dev/null
stop containerd
# The control plane's own processes (etcd, apiserver, controller-manager, scheduler).
bash "$REPO_ROOT/e2e/controlplane/down.sh" "$dir" >/dev/null 2>&1

# Mounts under DIR (overlay roots, pod volumes, network namespaces), deepest first.
awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
  umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
done
for m in /var/lib/kubelet/pods; do mountpoint -q "$m" && umount -l "$m"; done

# iptables: jumps from the built-in chains into KUBE-*/CNI-* chains first, then the chains themselves.
for cmd in iptables ip6tables; do
  command -v "$cmd" >/dev/null || continue
  for table in filter nat mangle raw; do
    "$cmd" -t "$table" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j (KUBE|CNI)-' | while read -r rule; do
      # -S quotes comments the way a shell does: eval keeps them one argument.
      eval "\"\$cmd\" -t \"\$table\" ${rule/#-A/-D}" 2>/dev/null
    done
    chains=$("$cmd" -t "$table" -S 2>/dev/null | sed -n 's/^-N \(\(KUBE\|CNI\)-[^ ]*\)$/\1/p')
    for c in $chains; do "$cmd" -t "$table" -F "$c" 2>/dev/null; done
    for c in $chains; do "$cmd" -t "$table" -X "$c" 2>/dev/null; done
  done
done
# The CNI's masquerade rule names the pod range, not a chain.
# awk reads the whole listing (an early exit would break the pipe under pipefail).
while rule=$(iptables -t nat -S POSTROUTING 2>/dev/null | awk '/-s 10\.244\.0\.0\/24/ && !found { print; found = 1 }') \
  && [ -n "$rule" ]; do
  eval "iptables -t nat ${rule/#-A/-D}" 2>/dev/null || break
done

# cgroups the kubelet made (kubepods, and its own under each hierarchy), leaves first.
for h in /sys/fs/cgroup/*/; do
  for c in kubepods kubepods.slice; do
    [ -d "$h$c" ] && find "$h$c" -depth -type d -exec rmdir {} + 2>/dev/null
  done
done

# The network: the bridge (and with it any veth left), the Service route.
bridge=$(cat "$dir/bridge" 2>/dev/null || echo rzbr0)
ip route del 10.96.0.0/16 dev "$bridge" 2>/dev/null
ip link del "$bridge" 2>/dev/null

# Sysctls and host paths, as they were before up.sh.
if [ -f "$dir/sysctls" ]; then
  while IFS== read -r k v; do sysctl -qw "$k=$v" 2>/dev/null; done <"$dir/sysctls"
fi
if [ -f "$dir/created-paths" ]; then
  while read -r p; do [ -n "$p" ] && rm -rf "$p"; done <"$dir/created-paths"
fi
log "node: down"
exit 0
