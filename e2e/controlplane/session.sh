# Sourced by the test stages that need a control plane: `control_plane_up`
# starts one in a fresh directory, exports KUBECONFIG, and stops and removes it
# when the sourcing script exits.
control_plane_up() {
  local up_out
  CONTROL_PLANE_DIR="$(mktemp -d)"
  trap 'bash "$REPO_ROOT/e2e/controlplane/down.sh" "$CONTROL_PLANE_DIR" || true; rm -rf "$CONTROL_PLANE_DIR"' EXIT
  up_out="$(bash "$REPO_ROOT/e2e/controlplane/up.sh" "$CONTROL_PLANE_DIR")"
  KUBECONFIG="$(printf '%s\n' "$up_out" | sed -n 's/^KUBECONFIG=//p' | tail -n1)"
  export KUBECONFIG
}
