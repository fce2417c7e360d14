#!/usr/bin/env bash
# Benchmarks on this machine's real test bed (release builds). Prints figures; asserts nothing.
#   hack/bench.sh            every bench
#   hack/bench.sh bundle     fetching a bundle: resolve, verify, pull or cache, unpack
#   hack/bench.sh render     rendering the default and the all-features instance
#   hack/bench.sh lifecycle  install, upgrade, drift revert, uninstall on a local cluster; peak RSS
#   hack/bench.sh report     the FluxReport with 10,000 Flux objects: computation time, fluxop's RSS
#   hack/bench.sh fleet      fleet convergence with 1, 3 and 5 member clusters
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
if [ "$which" = all ] || [ "$which" = lifecycle ] || [ "$which" = report ] || [ "$which" = fleet ]; then
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
