#!/usr/bin/env bash
# The main job, end to end on this machine: a local cluster and registry on 127.0.0.1, the
# Flux releases pushed there as a signed bundle, fluxop's CRDs installed, fluxop running
# against the cluster, and a FluxInstance applied that verifies and uses the bundle.
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
log "vendoring the Flux releases and building fluxop"
hack/vendor-flux.sh >&2
cargo build -p fluxop --bin fluxop >&2
FLUXOP="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/fluxop"

KUBECONFIG="$(hack/cluster-up.sh "$NAME")"
REGISTRY="$(hack/registry-up.sh "$NAME")"
export KUBECONFIG
KUBECTL="$BIN/kubectl"

log "pushing and signing the bundle"
mkdir -p "$STATE"
rm -f "$STATE/cosign.key" "$STATE/cosign.pub"
COSIGN_PASSWORD="" "$FLUXOP" bundle keygen --output-key-prefix "$STATE/cosign" >/dev/null
BUNDLE="$("$FLUXOP" bundle push manifests-bundle "oci://$REGISTRY/flux/bundle:latest" --insecure)"
COSIGN_PASSWORD="" "$FLUXOP" bundle sign --key "$STATE/cosign.key" --insecure "$BUNDLE"

log "installing the CRDs"
"$FLUXOP" crds | "$KUBECTL" apply --server-side --field-manager fluxop -f - >&2
"$KUBECTL" wait --for=condition=Established --timeout=60s \
  crd/fluxinstances.fluxcd.controlplane.io crd/fluxreports.fluxcd.controlplane.io >&2
"$KUBECTL" create namespace flux-system --dry-run=client -o yaml | "$KUBECTL" apply -f - >&2
"$KUBECTL" -n flux-system create secret generic flux-bundle-cosign --from-file=cosign.pub="$STATE/cosign.pub" \
  --dry-run=client -o yaml | "$KUBECTL" apply -f - >&2

log "starting fluxop"
stop_daemons "$STATE"
read -r METRICS_PORT HEALTH_PORT <<<"$(free_ports 2)"
start_daemon "$STATE" fluxop env KUBECONFIG="$KUBECONFIG" "$FLUXOP" run --namespace flux-system \
  --log-format json --metrics-addr "127.0.0.1:$METRICS_PORT" --health-addr "127.0.0.1:$HEALTH_PORT" \
  --cache-dir "$STATE/cache" --insecure-registry "$REGISTRY"
wait_for 60 "fluxop /readyz" curl -fsS "http://127.0.0.1:$HEALTH_PORT/readyz" \
  || { tail -n 20 "$STATE/logs/fluxop.log" >&2; exit 1; }

log "applying a FluxInstance that verifies the bundle"
sed -e "s#oci://registry.example.com/flux/bundle:latest#oci://$REGISTRY/flux/bundle:latest#" \
  examples/flux-instance-signed.yaml | "$KUBECTL" apply -f - >&2
if ! "$KUBECTL" wait fluxinstance/flux -n flux-system --for=condition=Ready --timeout=180s >&2; then
  "$KUBECTL" describe fluxinstance flux -n flux-system >&2 || true
  tail -n 20 "$STATE/logs/fluxop.log" >&2
  exit 1
fi
"$KUBECTL" get fluxinstance -n flux-system >&2
"$KUBECTL" get deployments -n flux-system >&2

cat <<MSG

fluxop is running against a local cluster. To look around:

  export KUBECONFIG=$KUBECONFIG PATH=$BIN:\$PATH
  kubectl get fluxinstance -n flux-system     # the instance: Ready, Status, Revision columns
  kubectl get nodes                           # the kwok nodes
  curl -s http://127.0.0.1:$HEALTH_PORT/readyz
  curl -s http://127.0.0.1:$METRICS_PORT/metrics
  tail -f $STATE/logs/fluxop.log
  kubectl describe fluxinstance flux -n flux-system   # conditions and Events
  kubectl get deployments -n flux-system      # the Flux controllers, Available on kwok nodes
  kubectl scale deployment/source-controller -n flux-system --replicas=0   # reverted in <1s
  $FLUXOP bundle list --insecure oci://$REGISTRY/flux/bundle
  bundle: $BUNDLE (signed; public key in Secret flux-system/flux-bundle-cosign)

fluxop verified the bundle's signature, rendered the chosen Flux version, applied it with
server-side apply, waited for the controllers to become Available and reported Ready.

Stop everything with: hack/demo.sh down
MSG
