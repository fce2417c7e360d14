# Shared helpers of the hack/ scripts; sourced, not run.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Runtime state (clusters, registries, logs) lives outside the repo; binaries are cached
# separately by testbed-build.sh and survive a `down`.
STATE_ROOT="${FLUXOP_TESTBED_STATE:-${TMPDIR:-/tmp}/fluxop-testbed}"

log() { echo "$(basename "$0"): $*" >&2; }
die() { log "error: $*"; exit 1; }

# free_ports N: prints N distinct TCP ports on 127.0.0.1 that were free a moment ago.
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()
PY
}

# wait_for SECONDS WHAT CMD...: polls CMD every half second until it succeeds.
wait_for() {
  local timeout=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

# start_daemon STATE NAME CMD...: starts CMD in its own session, logs to STATE/logs/NAME.log,
# records its pid in STATE/pids/NAME.
start_daemon() {
  local state=$1 name=$2; shift 2
  mkdir -p "$state/logs" "$state/pids"
  setsid "$@" >"$state/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$state/pids/$name"
}

# daemon_alive STATE NAME
daemon_alive() { kill -0 "$(cat "$1/pids/$2" 2>/dev/null)" 2>/dev/null; }

# stop_daemons STATE: TERM every recorded process (newest first), then KILL what lingers.
stop_daemons() {
  local state=$1 pidfile pid
  [ -d "$state/pids" ] || return 0
  for pidfile in $(ls -t "$state/pids"/* 2>/dev/null); do
    pid=$(cat "$pidfile"); kill -TERM "$pid" 2>/dev/null || true
  done
  for _ in $(seq 1 20); do
    local alive=0
    for pidfile in "$state/pids"/*; do
      [ -e "$pidfile" ] || continue
      kill -0 "$(cat "$pidfile")" 2>/dev/null && alive=1
    done
    [ $alive = 0 ] && break
    sleep 0.5
  done
  for pidfile in "$state/pids"/*; do
    [ -e "$pidfile" ] || continue
    kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
}
