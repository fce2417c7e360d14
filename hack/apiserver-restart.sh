#!/usr/bin/env bash
# A fault for tests: stops the kube-apiserver of a cluster started by hack/cluster-up.sh,
# keeps it down for a while, and starts it again with the same command line (recorded by
# start_daemon in STATE/cmdlines/kube-apiserver). etcd keeps running, so nothing stored is
# lost: clients see connection refused, then the same server back.
#
#   hack/apiserver-restart.sh NAME [--down-seconds N] [--graceful]
#       --down-seconds  how long it stays down once stopped (default 5)
#       --graceful      stop it with TERM (a rolling restart; kube-apiserver may take half a
#                       minute to drain), instead of KILL (a crash: gone at once)
#
# Returns once the API server answers /readyz again; prints the seconds it was unreachable
# (from the stop to the first ready answer). The earlier log is appended to
# STATE/logs/kube-apiserver.previous.log.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NAME="" DOWN=5 SIGNAL=KILL
while [ $# -gt 0 ]; do
  case "$1" in
    --down-seconds) DOWN="${2:?--down-seconds needs a number}"; shift 2 ;;
    --graceful) SIGNAL=TERM; shift ;;
    -*) die "unknown option $1 (see the header of $0)" ;;
    *) [ -z "$NAME" ] || die "one cluster name only"; NAME=$1; shift ;;
  esac
done
[ -n "$NAME" ] || die "usage: $0 NAME [--down-seconds N]"
valid_name "$NAME"
[[ "$DOWN" =~ ^[0-9]+$ ]] || die "--down-seconds takes whole seconds"
STATE="$STATE_ROOT/clusters/$NAME"
[ -f "$STATE/env" ] || die "no cluster named $NAME is up"
[ -s "$STATE/cmdlines/kube-apiserver" ] \
  || die "cluster $NAME has no recorded kube-apiserver command line (started before hack/lib.sh recorded them?)"
SERVER=$(sed -n 's/^FLUXOP_CLUSTER_SERVER=//p' "$STATE/env")
PKI="$STATE/pki"

# `cluster-down.sh --stale` (hack/test.sh runs it) must not take this cluster, whose API
# server is down for a moment, for a dead one: it leaves alone a cluster whose lock (the one
# cluster-up.sh holds while starting) is held. The cluster's daemons inherited that lock
# from cluster-up.sh and hold it still; should they not, this script holds it meanwhile.
exec {lock}>"$STATE_ROOT/clusters/.$NAME.lock"
flock -n "$lock" || true

pid=$(recorded_pid "$STATE/pids/kube-apiserver") || die "the kube-apiserver of $NAME is not running"
stopped=$(date +%s.%N)
kill "-$SIGNAL" -- "-$pid" 2>/dev/null || kill "-$SIGNAL" "$pid"
for _ in $(seq 1 120); do
  recorded_pid "$STATE/pids/kube-apiserver" >/dev/null || break
  sleep 0.5
done
if pid=$(recorded_pid "$STATE/pids/kube-apiserver"); then
  log "kube-apiserver of $NAME still running 60s after $SIGNAL; killing it"
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  sleep 0.5
fi
log "kube-apiserver of $NAME stopped ($SIGNAL); starting it again in ${DOWN}s"
sleep "$DOWN"

mapfile -d '' command < "$STATE/cmdlines/kube-apiserver"
cat "$STATE/logs/kube-apiserver.log" >> "$STATE/logs/kube-apiserver.previous.log" 2>/dev/null || true
start_daemon "$STATE" kube-apiserver "${command[@]}" {lock}>&-
curl_api() { curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$SERVER$1"; }
wait_for 120 "kube-apiserver of $NAME ready again" curl_api /readyz \
  || { tail -n 30 "$STATE/logs/kube-apiserver.log" >&2; exit 1; }
ready=$(date +%s.%N)
log "kube-apiserver of $NAME is back"
python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$stopped" "$ready"
