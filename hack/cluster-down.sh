#!/usr/bin/env bash
# Stops a cluster started by hack/cluster-up.sh and removes its state; with real nodes also
# their containers, mounts, network namespaces, cgroups, the host bridge and forwarders.
#   hack/cluster-down.sh [NAME]    (default: default; --all stops every cluster; --stale
#                                   those whose API server is gone, as a killed run leaves)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/node.sh"

names=("${1:-default}")
case "${1:-}" in
  --all) mapfile -t names < <(ls "$STATE_ROOT/clusters" 2>/dev/null) ;;
  --stale)
    names=()
    for dir in "$STATE_ROOT"/clusters/*; do
      [ -d "$dir" ] && ! daemon_alive "$dir" kube-apiserver && names+=("$(basename "$dir")")
    done
    ;;
esac
for name in "${names[@]}"; do
  state="$STATE_ROOT/clusters/$name"
  [ -d "$state" ] || { log "no cluster named $name"; continue; }
  for node in "$state"/nodes/*; do
    [ -d "$node" ] && node_down "$node"
  done
  stop_daemons "$state"
  if [ -f "$state/slot" ]; then net_down "$(cat "$state/slot")"; fi
  rm -rf "$state"
  log "cluster $name stopped and removed"
done
