#!/usr/bin/env bash
# Stops a git server started by hack/git-server-up.sh and removes its repositories.
#   hack/git-server-down.sh [NAME]    (default: default; --all stops every git server)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

names=("${1:-default}")
if [ "${1:-}" = --all ]; then
  mapfile -t names < <(ls "$STATE_ROOT/git-servers" 2>/dev/null)
fi
for name in "${names[@]}"; do
  state="$STATE_ROOT/git-servers/$name"
  [ -d "$state" ] || { log "no git server named $name"; continue; }
  stop_daemons "$state"
  rm -rf "$state"
  log "git server $name stopped and removed"
done
