# Shared helpers of the hack/ scripts; sourced, not run.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Runtime state (clusters, registries, logs) lives outside the repo; binaries are cached
# separately by testbed-build.sh and survive a `down`.
# Canonical, so paths compare equal to those in /proc/mounts.
STATE_ROOT="$(realpath -m "${FLUXOP_TESTBED_STATE:-${TMPDIR:-/tmp}/fluxop-testbed}")"

# FLUX_DIST and FLUX_IMAGES (hack/vendor-flux.sh) are read after the scripts cd to the repo:
# a relative path means the directory the user ran the command from.
if [ -n "${FLUX_DIST:-}" ]; then FLUX_DIST="$(realpath -m -- "$FLUX_DIST")"; export FLUX_DIST; fi
if [ -n "${FLUX_IMAGES:-}" ]; then FLUX_IMAGES="$(realpath -m -- "$FLUX_IMAGES")"; export FLUX_IMAGES; fi

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

# apt_install PACKAGE...: installs Debian packages (with sudo when not root) without
# letting them start services of their own (a policy-rc.d answering 101 during the install;
# one that was there before is put back).
apt_install() {
  sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  local policy=/usr/sbin/policy-rc.d saved="" ok=0
  log "installing $* from Debian"
  if [ -e "$policy" ]; then saved=$(mktemp); sudo_if_needed cp -p "$policy" "$saved"; fi
  printf '#!/bin/sh\nexit 101\n' | sudo_if_needed tee "$policy" >/dev/null
  sudo_if_needed chmod +x "$policy"
  { sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      && sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >&2 && ok=1
  if [ -n "$saved" ]; then sudo_if_needed mv "$saved" "$policy"; else sudo_if_needed rm -f "$policy"; fi
  [ $ok = 1 ] || die "apt-get install $* failed"
}

# valid_name NAME: cluster and registry names end up in paths, cgroups and process
# patterns, so only DNS-label-like names are accepted.
valid_name() {
  [[ "$1" =~ ^[a-z0-9][a-z0-9-]{0,40}$ ]] || die "invalid name '$1': use lowercase letters, digits and '-'"
}

# The start time of PID (clock ticks since boot), which tells a recycled pid from ours.
start_time_of() { awk '{ print $22 }' "/proc/$1/stat" 2>/dev/null; }

# start_daemon STATE NAME CMD...: starts CMD in its own session (so it leads a process
# group of its own), logs to STATE/logs/NAME.log, records "PID STARTTIME" in STATE/pids/NAME
# and the command line (NUL-separated) in STATE/cmdlines/NAME, for a restart
# (hack/apiserver-restart.sh).
start_daemon() {
  local state=$1 name=$2; shift 2
  mkdir -p "$state/logs" "$state/pids" "$state/cmdlines"
  printf '%s\0' "$@" > "$state/cmdlines/$name"
  setsid "$@" >"$state/logs/$name.log" 2>&1 < /dev/null &
  local pid=$!
  echo "$pid $(start_time_of "$pid")" > "$state/pids/$name"
}

# recorded_pid PIDFILE: the pid, if that process is still the one recorded.
recorded_pid() {
  local pid start
  read -r pid start < "$1" 2>/dev/null || return 1
  [ -n "$pid" ] && [ -n "$start" ] && [ "$(start_time_of "$pid")" = "$start" ] && echo "$pid"
}

# daemon_alive STATE NAME
daemon_alive() { recorded_pid "$1/pids/$2" >/dev/null; }

# stop_daemons STATE: TERM every recorded process group (newest first), then KILL what
# lingers; children (socat's per-connection forks) go with their group.
stop_daemons() {
  local state=$1 pidfile pid
  [ -d "$state/pids" ] || return 0
  for pidfile in $(ls -t "$state/pids"/* 2>/dev/null); do
    if pid=$(recorded_pid "$pidfile"); then kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for _ in $(seq 1 20); do
    local alive=0
    for pidfile in "$state/pids"/*; do
      [ -e "$pidfile" ] || continue
      if recorded_pid "$pidfile" >/dev/null; then alive=1; fi
    done
    [ $alive = 0 ] && break
    sleep 0.5
  done
  for pidfile in "$state/pids"/*; do
    [ -e "$pidfile" ] || continue
    if pid=$(recorded_pid "$pidfile"); then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$pidfile"
  done
}
