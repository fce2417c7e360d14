#!/usr/bin/env bash
# Stops a cluster started by hack/cluster-up.sh and removes its state; with real nodes also
# their containers, mounts, network namespaces, cgroups, the host bridge and forwarders.
#   hack/cluster-down.sh [NAME]    (default: default; --all stops every cluster; --stale
#                                   those whose API server is gone, as a killed run leaves)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/node.sh"

# Is cluster NAME being started right now (cluster-up.sh holds its lock)?
starting() {
  local lock="$STATE_ROOT/clusters/.$1.lock"
  [ -e "$lock" ] || return 1
  exec {probe}>"$lock"
  if flock -n "$probe"; then exec {probe}>&-; return 1; fi
  exec {probe}>&-
  return 0
}

names=("${1:-default}")
case "${1:-}" in
  --all) mapfile -t names < <(ls "$STATE_ROOT/clusters" 2>/dev/null) ;;
  --stale)
    names=()
    for dir in "$STATE_ROOT"/clusters/*; do
      [ -d "$dir" ] || continue
      name=$(basename "$dir")
      daemon_alive "$dir" kube-apiserver || starting "$name" || names+=("$name")
    done
    ;;
  *) valid_name "${names[0]}" ;;
esac
failed=0
for name in "${names[@]}"; do
  state="$STATE_ROOT/clusters/$name"
  [ -d "$state" ] || { log "no cluster named $name"; continue; }
  clean=1
  for node in "$state"/nodes/*; do
    if [ -d "$node" ]; then node_down "$node" || clean=0; fi
  done
  stop_daemons "$state"
  if [ -f "$state/slot" ]; then net_down "$(cat "$state/slot")" "$state"; fi
  # Never remove state through something still mounted into it (a pod volume could be a
  # host path).
  if [ $clean = 1 ] && [ -z "$(mounts_under "$state")" ]; then
    rm -rf --one-file-system "$state"
    log "cluster $name stopped and removed"
  else
    log "error: cluster $name stopped, but mounts remain under $state; not removing it"
    failed=1
  fi
done
exit $failed
