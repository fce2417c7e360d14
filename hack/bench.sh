#!/usr/bin/env bash
# Benchmarks on this machine's real test bed (release builds). Prints figures; asserts nothing.
#   hack/bench.sh            every bench
#   hack/bench.sh bundle     fetching a bundle: resolve, verify, pull or cache, unpack
#   hack/bench.sh render     rendering the default and the all-features instance
#   hack/bench.sh lifecycle  install, upgrade, drift revert, uninstall on a local cluster; peak RSS
#   hack/bench.sh report     the FluxReport with 10,000 Flux objects: computation time, fluxop's RSS
#   hack/bench.sh fleet      fleet convergence with 1, 3 and 5 member clusters
#   hack/bench.sh pods       the lifecycle with real pods (fluxop in the cluster) next to kwok;
#                            fluxop's pod memory from its cgroup (needs root)
#   hack/bench.sh gitops     publish -> app updated on a real node, OCI and Git (needs root)
#   hack/bench.sh toolkit    the toolkit's loops on a real node: tag pushed -> pod runs it,
#                            Receiver call -> applied, breaking commit -> alert (needs root)
#   hack/bench.sh incumbent  fluxop next to the Flux Operator's operator (built from the Go
#                            module proxy), each a process against a fresh kwok cluster:
#                            install, API requests per forced reconcile, drift revert, memory
#   hack/bench.sh resourcesets  a ResourceSet of 100 inputs x 5 resources applied by fluxop and
#                            by the Flux Operator, each on a fresh kwok cluster: time, memory
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

which="${1:-all}"
hack/vendor-flux.sh >/dev/null 2>&1
NAME="bench-$$"
trap 'hack/registry-down.sh "$NAME" >/dev/null 2>&1 || true' EXIT
if [ "$which" = all ] || [ "$which" = render ]; then
  log "render time per Flux release"
  cargo bench -p fluxop --bench render
fi
if [ "$which" = all ] || [ "$which" = bundle ]; then
  export FLUXOP_E2E_REGISTRY
  FLUXOP_E2E_REGISTRY="$(hack/registry-up.sh "$NAME")"
  log "bundle fetch against the registry at $FLUXOP_E2E_REGISTRY"
  cargo bench -p fluxop-e2e --bench bundle_fetch
fi
if [ "$which" = all ] || [ "$which" = lifecycle ] || [ "$which" = report ] || [ "$which" = fleet ] || [ "$which" = pods ] || [ "$which" = gitops ] || [ "$which" = toolkit ] || [ "$which" = incumbent ] || [ "$which" = resourcesets ]; then
  export FLUXOP_E2E_KUBECTL
  FLUXOP_E2E_KUBECTL="$("$REPO_ROOT/hack/testbed-build.sh" | tail -n 1)/kubectl"
  cargo build --release -p fluxop --bin fluxop
fi
if [ "$which" = all ] || [ "$which" = lifecycle ]; then
  log "lifecycle on a local cluster (release build of fluxop)"
  cargo bench -p fluxop-e2e --bench lifecycle
fi
if [ "$which" = all ] || [ "$which" = report ]; then
  log "FluxReport with 10,000 Flux objects (release build of fluxop)"
  cargo bench -p fluxop-e2e --bench report
fi
if [ "$which" = all ] || [ "$which" = fleet ]; then
  export FLUXOP_E2E_REGISTRY
  FLUXOP_E2E_REGISTRY="$(hack/registry-up.sh "$NAME")"
  log "fleet convergence with 1, 3 and 5 members (release build of fluxop)"
  cargo bench -p fluxop-e2e --bench fleet
fi
if [ "$which" = all ] || [ "$which" = pods ]; then
  export FLUXOP_E2E_REGISTRY FLUXOP_E2E_REAL_BUNDLE FLUXOP_E2E_FLUXOP_IMAGE
  FLUXOP_E2E_REGISTRY="$(hack/registry-up.sh "$NAME")"
  hack/testbed-build.sh node >/dev/null
  FLUXOP_E2E_REAL_BUNDLE="$(hack/flux-images.sh --push "$FLUXOP_E2E_REGISTRY" \
    --bundle "${CARGO_TARGET_DIR:-$REPO_ROOT/target}/bench-bundle" v2.9.4 v2.8.8:source-controller | tail -n 1)"
  FLUXOP_E2E_FLUXOP_IMAGE="$(hack/fluxop-image.sh --push "$FLUXOP_E2E_REGISTRY/fluxop/fluxop:bench" --insecure | tail -n 1)"
  log "lifecycle with real pods and on kwok nodes (release build of fluxop)"
  cargo bench -p fluxop-e2e --bench pods
fi
if [ "$which" = all ] || [ "$which" = gitops ]; then
  export FLUXOP_E2E_REGISTRY FLUXOP_E2E_REAL_BUNDLE
  FLUXOP_E2E_REGISTRY="$(hack/registry-up.sh "$NAME")"
  hack/testbed-build.sh node >/dev/null
  FLUXOP_E2E_REAL_BUNDLE="$(hack/flux-images.sh --push "$FLUXOP_E2E_REGISTRY" \
    --bundle "${CARGO_TARGET_DIR:-$REPO_ROOT/target}/bench-bundle" v2.9.4:source-controller,kustomize-controller | tail -n 1)"
  log "publish -> app updated, OCI and Git, on a real node (release build of fluxop)"
  cargo bench -p fluxop-e2e --bench gitops
fi
if [ "$which" = all ] || [ "$which" = toolkit ]; then
  export FLUXOP_E2E_REGISTRY FLUXOP_E2E_REAL_BUNDLE FLUXOP_E2E_NODE_BIN
  FLUXOP_E2E_REGISTRY="$(hack/registry-up.sh "$NAME")"
  FLUXOP_E2E_NODE_BIN="$(hack/testbed-build.sh node | tail -n 1)"
  FLUXOP_E2E_REAL_BUNDLE="$(hack/flux-images.sh --push "$FLUXOP_E2E_REGISTRY" \
    --bundle "${CARGO_TARGET_DIR:-$REPO_ROOT/target}/bench-bundle" \
    v2.9.4:source-controller,kustomize-controller,notification-controller,image-reflector-controller,image-automation-controller | tail -n 1)"
  log "the toolkit's loops on a real node (release build of fluxop)"
  cargo bench -p fluxop-e2e --bench toolkit
fi
if [ "$which" = all ] || [ "$which" = resourcesets ]; then
  export FLUXOP_E2E_INCUMBENT
  FLUXOP_E2E_INCUMBENT="$(hack/testbed-build.sh flux-operator-controller | tail -n 1)/flux-operator-controller"
  log "a ResourceSet of 100 inputs x 5 resources, fluxop next to the Flux Operator (release build of fluxop)"
  cargo bench -p fluxop-e2e --bench resourcesets
fi
if [ "$which" = all ] || [ "$which" = incumbent ]; then
  export FLUXOP_E2E_REGISTRY FLUXOP_E2E_INCUMBENT
  FLUXOP_E2E_REGISTRY="$(hack/registry-up.sh "$NAME")"
  FLUXOP_E2E_INCUMBENT="$(hack/testbed-build.sh flux-operator-controller | tail -n 1)/flux-operator-controller"
  log "fluxop next to the Flux Operator, each on a fresh cluster (release build of fluxop)"
  cargo bench -p fluxop-e2e --bench incumbent
fi
