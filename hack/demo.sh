#!/usr/bin/env bash
# The main job, end to end on this machine: a local cluster with a real node and a registry
# on 127.0.0.1; the Flux controllers built from source and pushed there; the Flux releases
# pushed as a signed bundle whose catalog pins those images; fluxop's own image built and
# installed in the cluster from deploy/; and a FluxInstance that verifies the bundle, which
# fluxop (running as a pod) turns into Flux controllers Running and Ready on the real node.
#
#   hack/demo.sh          bring everything up and print where to look
#   hack/demo.sh down     stop the cluster (containers, node, network) and the registry
#
# Needs root (the real node: network namespaces, mounts, cgroups). The Flux release comes
# from FLUX_DIST or ../shared/flux-dist when there, else from GitHub or rebuilt from Go module
# sources, checked against hack/flux-releases.sha256 (hack/vendor-flux.sh).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

NAME=demo
STATE="$STATE_ROOT/demo"
if [ "${1:-}" = down ]; then
  hack/cluster-down.sh "$NAME" || true
  hack/registry-down.sh "$NAME" || true
  rm -rf "$STATE"
  exit 0
fi
# First, before half an hour of building: without the Flux release (no local copy, no way to
# download it) this stops with instructions.
hack/vendor-flux.sh >&2
[ "$(id -u)" = 0 ] || die "the demo runs a real node (network namespaces, mounts, cgroups): run it as root"
started=$(date +%s)
step() { log "$* (+$(( $(date +%s) - started ))s)"; }

step "building the test bed (the first run compiles Kubernetes, the node and the Flux controllers: ~30 minutes)"
BIN="$(hack/testbed-build.sh | tail -n 1)"
NODE_BIN="$(hack/testbed-build.sh node | tail -n 1)"
hack/flux-images.sh v2.9.4 >/dev/null
step "building fluxop (release)"
cargo build --release --locked -p fluxop --bin fluxop >&2
FLUXOP="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/fluxop"

step "starting a registry and a cluster with a real node"
mkdir -p "$STATE"
REGISTRY="$(hack/registry-up.sh "$NAME")"
KUBECONFIG="$(hack/cluster-up.sh "$NAME" --real-nodes 1 --registry "$REGISTRY")"
export KUBECONFIG
KUBECTL="$BIN/kubectl"
GATEWAY="$(sed -n 's/^FLUXOP_CLUSTER_GATEWAY=//p' "$STATE_ROOT/clusters/$NAME/env")"
# Pods (and this machine) reach the registry through the cluster's gateway.
IN_CLUSTER="$GATEWAY:${REGISTRY##*:}"

step "pushing the Flux images and a signed bundle that pins them"
hack/flux-images.sh --push "$REGISTRY" --bundle "$STATE/bundle" v2.9.4 >/dev/null
rm -f "$STATE/cosign.key" "$STATE/cosign.pub"
COSIGN_PASSWORD="" "$FLUXOP" bundle keygen --output-key-prefix "$STATE/cosign" >/dev/null
BUNDLE="$("$FLUXOP" bundle push "$STATE/bundle" "oci://$REGISTRY/flux/bundle:latest" --insecure)"
COSIGN_PASSWORD="" "$FLUXOP" bundle sign --key "$STATE/cosign.key" --insecure "$BUNDLE"

step "building fluxop's image and installing fluxop from deploy/"
IMAGE="$(hack/fluxop-image.sh --binary "$FLUXOP" --push "$REGISTRY/fluxop/fluxop:demo" --insecure | tail -n 1)"
mkdir -p "$STATE/deploy"
cat > "$STATE/deploy/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$REPO_ROOT/deploy" "$STATE/deploy")
images:
  - name: fluxop
    newName: $IN_CLUSTER/fluxop/fluxop
    digest: ${IMAGE##*@}
patches:
  - target: {kind: Deployment, name: fluxop}
    patch: |
      - op: add
        path: /spec/template/spec/containers/0/args/-
        value: --insecure-registry=$IN_CLUSTER
YAML
"$KUBECTL" apply --server-side --field-manager fluxop-demo -k "$STATE/deploy" >&2
"$KUBECTL" -n flux-system rollout status deployment/fluxop --timeout=180s >&2
"$KUBECTL" -n flux-system create secret generic flux-bundle-cosign --from-file=cosign.pub="$STATE/cosign.pub" \
  --dry-run=client -o yaml | "$KUBECTL" apply -f - >&2

step "applying a FluxInstance that verifies the bundle"
sed -e "s#oci://registry.example.com/flux/bundle:latest#oci://$IN_CLUSTER/flux/bundle:latest#" \
  -e "s#registry: ghcr.io/fluxcd#registry: $IN_CLUSTER/fluxcd#" \
  examples/flux-instance-signed.yaml | "$KUBECTL" apply -f - >&2
if ! "$KUBECTL" wait fluxinstance/flux -n flux-system --for=condition=Ready --timeout=300s >&2; then
  "$KUBECTL" describe fluxinstance flux -n flux-system >&2 || true
  "$KUBECTL" -n flux-system logs deployment/fluxop --tail=30 >&2 || true
  exit 1
fi
"$KUBECTL" get fluxinstance -n flux-system >&2
"$KUBECTL" get pods -n flux-system -o wide >&2
# Every controller answers on its health port, over the pod network.
for ip in $("$KUBECTL" get pods -n flux-system -l app.kubernetes.io/part-of=flux -o jsonpath='{.items[*].status.podIP}'); do
  curl -fsS --max-time 5 "http://$ip:9440/readyz" >/dev/null || die "a controller at $ip does not answer /readyz"
done
step "done"

cat <<MSG

fluxop runs in a local cluster with a real node, and has installed Flux there. Look around:

  export KUBECONFIG=$KUBECONFIG PATH=$BIN:\$PATH
  kubectl get fluxinstance -n flux-system         # READY, STATUS, REVISION
  kubectl get pods -n flux-system -o wide         # fluxop and the Flux controllers, Running on the real node
  kubectl logs -n flux-system deployment/fluxop   # fluxop's JSON logs
  kubectl describe fluxinstance flux -n flux-system   # conditions and Events
  $FLUXOP get report                              # what fluxop reports about Flux
  kubectl scale deployment/source-controller -n flux-system --replicas=0   # reverted in a second
  $FLUXOP bundle list --insecure oci://$REGISTRY/flux/bundle
  bundle: $BUNDLE (signed; public key in Secret flux-system/flux-bundle-cosign)
  fluxop image: $IMAGE

fluxop verified the bundle's signature, rendered Flux v2.9.4 with images pinned by digest in
the local registry, applied it with server-side apply and waited for the controllers to run.

Stop everything with: hack/demo.sh down
MSG
