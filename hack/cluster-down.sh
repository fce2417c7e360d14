#!/usr/bin/env bash
# Stops a cluster started by hack/cluster-up.sh and removes its state.
#   hack/cluster-down.sh [NAME]    (default: default; --all stops every cluster)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

names=("${1:-default}")
if [ "${1:-}" = --all ]; then
  mapfile -t names < <(ls "$STATE_ROOT/clusters" 2>/dev/null)
fi
for name in "${names[@]}"; do
  state="$STATE_ROOT/clusters/$name"
  [ -d "$state" ] || { log "no cluster named $name"; continue; }
  stop_daemons "$state"
  rm -rf "$state"
  log "cluster $name stopped and removed"
done
