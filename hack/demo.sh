#!/usr/bin/env bash
# The main job, end to end on this machine: a local cluster and registry on 127.0.0.1,
# fluxop's CRDs installed, fluxop running against the cluster, and a FluxInstance applied.
#
#   hack/demo.sh          bring everything up and print where to look
#   hack/demo.sh down     stop fluxop, the cluster and the registry
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

NAME=demo
STATE="$STATE_ROOT/demo"
if [ "${1:-}" = down ]; then
  stop_daemons "$STATE"; rm -rf "$STATE"
  hack/cluster-down.sh "$NAME" || true
  hack/registry-down.sh "$NAME" || true
  exit 0
fi

log "building the test bed binaries (the first run compiles Kubernetes: ~25 minutes)"
BIN="$(hack/testbed-build.sh | tail -n 1)"
log "building fluxop"
cargo build -p fluxop --bin fluxop >&2
FLUXOP="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/fluxop"

KUBECONFIG="$(hack/cluster-up.sh "$NAME")"
REGISTRY="$(hack/registry-up.sh "$NAME")"
export KUBECONFIG
KUBECTL="$BIN/kubectl"

log "installing the CRDs"
"$FLUXOP" crds | "$KUBECTL" apply --server-side --field-manager fluxop -f - >&2
"$KUBECTL" wait --for=condition=Established --timeout=60s \
  crd/fluxinstances.fluxcd.controlplane.io crd/fluxreports.fluxcd.controlplane.io >&2
"$KUBECTL" create namespace flux-system --dry-run=client -o yaml | "$KUBECTL" apply -f - >&2

log "starting fluxop"
stop_daemons "$STATE"
read -r METRICS_PORT HEALTH_PORT <<<"$(free_ports 2)"
start_daemon "$STATE" fluxop env KUBECONFIG="$KUBECONFIG" "$FLUXOP" run --namespace flux-system \
  --log-format json --metrics-addr "127.0.0.1:$METRICS_PORT" --health-addr "127.0.0.1:$HEALTH_PORT"
wait_for 60 "fluxop /readyz" curl -fsS "http://127.0.0.1:$HEALTH_PORT/readyz" \
  || { tail -n 20 "$STATE/logs/fluxop.log" >&2; exit 1; }

log "applying examples/flux-instance.yaml"
"$KUBECTL" apply -f examples/flux-instance.yaml >&2
sleep 1
"$KUBECTL" get fluxinstance -n flux-system >&2

cat <<MSG

fluxop is running against a local cluster. To look around:

  export KUBECONFIG=$KUBECONFIG PATH=$BIN:\$PATH
  kubectl get fluxinstance -n flux-system     # the instance: Ready, Status, Revision columns
  kubectl get nodes                           # the kwok nodes
  curl -s http://127.0.0.1:$HEALTH_PORT/readyz
  curl -s http://127.0.0.1:$METRICS_PORT/metrics
  tail -f $STATE/logs/fluxop.log
  OCI registry for bundles: $REGISTRY

fluxop accepts, validates and watches the instance; pulling a signed bundle and installing
Flux from it come next.

Stop everything with: hack/demo.sh down
MSG
