#!/usr/bin/env bash
# Stops a registry started by hack/registry-up.sh and removes its data.
#   hack/registry-down.sh [NAME]    (default: default; --all stops every registry)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

names=("${1:-default}")
if [ "${1:-}" = --all ]; then
  mapfile -t names < <(ls "$STATE_ROOT/registries" 2>/dev/null)
fi
for name in "${names[@]}"; do
  state="$STATE_ROOT/registries/$name"
  [ -d "$state" ] || { log "no registry named $name"; continue; }
  stop_daemons "$state"
  rm -rf "$state"
  log "registry $name stopped and removed"
done
