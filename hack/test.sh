#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. builds (or reuses) the test bed binaries: hack/testbed-build.sh
#   2. cargo fmt --check and clippy -D warnings
#   3. unit tests (pure, no cluster)
#   4. starts a throwaway cluster and registry on 127.0.0.1 and runs the end-to-end tests
#      against them; both are stopped and removed afterwards, their logs kept in
#      target/testbed-logs/ when a test fails.
# Set FLUXOP_TEST_KEEP=1 to leave the cluster and registry running for a look afterwards.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

started=$(date +%s)
step() { log "== $* (+$(( $(date +%s) - started ))s)"; }

step "test bed binaries"
BIN="$(hack/testbed-build.sh | tail -n 1)"
COSIGN_BIN="$(hack/testbed-build.sh cosign | tail -n 1)"

step "vendor the Flux releases into manifests-bundle/"
hack/vendor-flux.sh

step "format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --workspace --all-targets --locked

step "unit tests"
cargo test -p fluxop --locked

NAME="test-$$"
cleanup() {
  local code=$?
  if [ "${FLUXOP_TEST_KEEP:-}" = 1 ]; then
    log "leaving cluster and registry $NAME running (hack/cluster-down.sh $NAME; hack/registry-down.sh $NAME)"
    exit $code
  fi
  if [ $code != 0 ]; then
    mkdir -p target/testbed-logs
    cp -r "$STATE_ROOT/clusters/$NAME/logs" "target/testbed-logs/cluster-$NAME" 2>/dev/null || true
    cp -r "$STATE_ROOT/registries/$NAME/logs" "target/testbed-logs/registry-$NAME" 2>/dev/null || true
    log "tests failed; test bed logs kept in target/testbed-logs/"
  fi
  hack/cluster-down.sh "$NAME" >/dev/null 2>&1 || true
  hack/registry-down.sh "$NAME" >/dev/null 2>&1 || true
  exit $code
}
trap cleanup EXIT

step "local cluster and registry"
KUBECONFIG_PATH="$(hack/cluster-up.sh "$NAME")"
REGISTRY="$(hack/registry-up.sh "$NAME")"
export FLUXOP_E2E_KUBECONFIG="$KUBECONFIG_PATH" FLUXOP_E2E_KUBECTL="$BIN/kubectl" FLUXOP_E2E_REGISTRY="$REGISTRY" \
  FLUXOP_E2E_REGISTRY_DATA="$STATE_ROOT/registries/$NAME/data" FLUXOP_E2E_COSIGN="$COSIGN_BIN/cosign"

step "end-to-end tests"
cargo test -p fluxop-e2e --locked

step "all tests passed"
