#!/usr/bin/env bash
# The main job, end to end on this machine: a local cluster with a real node and a registry
# on 127.0.0.1; the Flux controllers built from source and pushed there; the Flux releases
# pushed as a signed bundle whose catalog pins those images; fluxop's own image built and
# installed in the cluster from deploy/; and a FluxInstance that verifies the bundle, which
# fluxop (running as a pod) turns into Flux controllers Running and Ready on the real node;
# Flux then syncs an app from a Git server on this machine, and image automation keeps the
# app on the newest tag of its image.
#
#   hack/demo.sh              bring everything up and print where to look
#   hack/demo.sh tag VERSION  push VERSION of the app's image: image automation commits it
#                             to Git and the app's pod runs it
#   hack/demo.sh down         stop the cluster (containers, node, network), the registry and
#                             the Git server
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
  hack/git-server-down.sh "$NAME" || true
  rm -rf "$STATE"
  exit 0
fi

# push_app_image VERSION: the demo app's image (the node's pause program and a /version file,
# so each version has a digest of its own) as $REGISTRY/demo/app:VERSION.
push_app_image() {
  local version=$1 dir="$STATE/app-image/$1"
  rm -rf "$dir" && mkdir -p "$dir"
  echo "$version" > "$dir/version"
  python3 hack/oci-image.py --out "$dir/layout" --name "$REGISTRY/demo/app:$version" --entrypoint /pause \
    --user 65535:65535 "$NODE_BIN/pause:/pause" "$dir/version:/version" >/dev/null
  "$NODE_BIN/crane" push --insecure "$dir/layout" "$REGISTRY/demo/app:$version" >/dev/null 2>&1 \
    || die "pushing the app image $version to $REGISTRY failed"
}

if [ "${1:-}" = tag ]; then
  VERSION="${2:?usage: hack/demo.sh tag VERSION (e.g. 1.0.1)}"
  [ -f "$STATE/env" ] || die "the demo is not running (hack/demo.sh)"
  source "$STATE/env"
  push_app_image "$VERSION"
  log "pushed $REGISTRY/demo/app:$VERSION; within a minute image-automation-controller commits it to Git"
  log "and the app's pod runs it: kubectl -n demo get deployment app -o jsonpath='{..image}'"
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
COMPONENTS=source-controller,kustomize-controller,helm-controller,notification-controller,image-reflector-controller,image-automation-controller
hack/flux-images.sh "v2.9.4:$COMPONENTS" >/dev/null
step "building fluxop (release)"
cargo build --release --locked -p fluxop --bin fluxop >&2
FLUXOP="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/fluxop"

step "starting a registry, a Git server and a cluster with a real node"
mkdir -p "$STATE"
REGISTRY="$(hack/registry-up.sh "$NAME")"
GIT="$(hack/git-server-up.sh "$NAME" --create fleet)"
KUBECONFIG="$(hack/cluster-up.sh "$NAME" --real-nodes 1 --registry "$REGISTRY" --expose "$GIT")"
export KUBECONFIG
KUBECTL="$BIN/kubectl"
GATEWAY="$(sed -n 's/^FLUXOP_CLUSTER_GATEWAY=//p' "$STATE_ROOT/clusters/$NAME/env")"
# Pods (and this machine) reach the registry through the cluster's gateway.
IN_CLUSTER="$GATEWAY:${REGISTRY##*:}"
GIT_IN_CLUSTER="http://$GATEWAY:${GIT##*:}/fleet.git"
printf 'REGISTRY=%s\nNODE_BIN=%s\n' "$REGISTRY" "$NODE_BIN" > "$STATE/env"

step "publishing the app to Git: a Deployment, and image automation that keeps it on the newest 1.x tag"
push_app_image 1.0.0
FLEET="$STATE/fleet"
rm -rf "$FLEET" && mkdir -p "$FLEET/clusters/demo"
cat > "$FLEET/clusters/demo/app.yaml" <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: demo
spec:
  replicas: 1
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      containers:
        - name: app
          image: $IN_CLUSTER/demo/app:1.0.0 # {"\$imagepolicy": "flux-system:app"}
YAML
cat > "$FLEET/clusters/demo/image-automation.yaml" <<YAML
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: app
  namespace: flux-system
spec:
  image: $IN_CLUSTER/demo/app
  interval: 20s
  insecure: true
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: app
  namespace: flux-system
spec:
  imageRepositoryRef:
    name: app
  policy:
    semver:
      range: ">=1.0.0 <2.0.0"
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 20s
  sourceRef:
    kind: GitRepository
    name: flux-system
  git:
    checkout:
      ref:
        branch: main
    commit:
      author:
        name: fluxcdbot
        email: fluxcdbot@example.invalid
      messageTemplate: "demo: {{range .Changed.Changes}}{{print .OldValue}} -> {{println .NewValue}}{{end}}"
    push:
      branch: main
  update:
    path: ./clusters/demo
    strategy: Setters
YAML
git -C "$FLEET" init -q -b main
git -C "$FLEET" add -A
git -C "$FLEET" -c user.name=demo -c user.email=demo@example.invalid commit -q -m "the demo app"
git -C "$FLEET" push -q "http://$GIT/fleet.git" main

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

step "applying a FluxInstance that verifies the bundle and syncs the cluster from Git"
sed -e "s#oci://registry.example.com/flux/bundle:latest#oci://$IN_CLUSTER/flux/bundle:latest#" \
  -e "s#registry: ghcr.io/fluxcd#registry: $IN_CLUSTER/fluxcd#" \
  -e "s#http://git.example.com/fleet.git#$GIT_IN_CLUSTER#" \
  examples/flux-instance-gitops.yaml | "$KUBECTL" apply -f - >&2
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
step "waiting for Flux to sync the app from Git"
wait_for 180 "the app synced from Git" "$KUBECTL" -n demo get deployment app \
  || { "$KUBECTL" -n flux-system get gitrepositories,kustomizations >&2 || true; die "Flux did not sync the app"; }
"$KUBECTL" -n demo rollout status deployment/app --timeout=180s >&2
"$KUBECTL" -n demo get pods -o wide >&2
step "done"

cat <<MSG

fluxop runs in a local cluster with a real node, and has installed Flux there. Look around:

  export KUBECONFIG=$KUBECONFIG PATH=$BIN:\$PATH
  kubectl get fluxinstance -n flux-system         # READY, STATUS, REVISION
  kubectl get pods -n flux-system -o wide         # fluxop and the Flux controllers, Running on the real node
  kubectl logs -n flux-system deployment/fluxop   # fluxop's JSON logs
  kubectl describe fluxinstance flux -n flux-system   # conditions and Events
  $FLUXOP get report                              # what fluxop reports about Flux
  $FLUXOP get all                                 # the sync and the image automation, Ready
  kubectl get pods -n demo -o wide                # the app Flux synced from Git, on the real node
  kubectl scale deployment/source-controller -n flux-system --replicas=0   # reverted in a second
  $FLUXOP bundle list --insecure oci://$REGISTRY/flux/bundle
  bundle: $BUNDLE (signed; public key in Secret flux-system/flux-bundle-cosign)
  fluxop image: $IMAGE

fluxop verified the bundle's signature, rendered Flux v2.9.4 with images pinned by digest in
the local registry, applied it with server-side apply and waited for the controllers to run.
Flux synced $GIT_IN_CLUSTER (clusters/demo, cloned in $FLEET) into the cluster.

See image automation move a tag: push a new version of the app's image; within a minute
image-automation-controller commits it to Git and the app's pod runs it:

  hack/demo.sh tag 1.0.1
  git -C $FLEET pull -q && git -C $FLEET log -1 --format='%an: %s'
  kubectl -n demo get deployment app -o jsonpath='{..image}'

Upgrade Flux with a one-line change: the instance asks for "2.x", the newest release in the
bundle (v2.9.4 here); pin or move it by editing spec.distribution.version, and fluxop rolls
the controllers over (and back, if the new version does not become healthy):

  kubectl -n flux-system patch fluxinstance flux --type=merge -p '{"spec":{"distribution":{"version":"2.9.x"}}}'
  kubectl -n flux-system get fluxinstance flux -w

A bundle that gains a newer release is picked up by "2.x" on its own (fluxop bundle push +
fluxop bundle sign to the same tag).

Stop everything with: hack/demo.sh down
MSG
