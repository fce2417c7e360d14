#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. builds (or reuses) the test bed binaries: hack/testbed-build.sh
#   2. cargo fmt --check and clippy -D warnings
#   3. unit tests (pure, no cluster)
#   4. builds (or reuses) the Flux controller images the real-node tests install
#      (hack/flux-images.sh) and fluxop's own image (hack/fluxop-image.sh)
#   5. starts a throwaway registry and cluster on 127.0.0.1, pushes those images, and runs
#      the end-to-end tests against them (tests that run pods start clusters of their own
#      with a real node); everything is stopped and removed afterwards, logs kept in
#      target/testbed-logs/ when a test fails.
# Set FLUXOP_TEST_KEEP=1 to leave the cluster and registry running for a look afterwards.
#
#   hack/test.sh e2e [CARGO TEST ARGS...]   only the end-to-end tier (steps 1, 4, 5), e.g.
#                                           `hack/test.sh e2e --test gitops` while iterating
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

E2E_ONLY="" E2E_ARGS=()
if [ "${1:-}" = e2e ]; then E2E_ONLY=1; shift; E2E_ARGS=("$@"); fi
started=$(date +%s)
step() { log "== $* (+$(( $(date +%s) - started ))s)"; }

step "test bed binaries"
BIN="$(hack/testbed-build.sh | tail -n 1)"
NODE_BIN="$(hack/testbed-build.sh node | tail -n 1)"
COSIGN_BIN="$(hack/testbed-build.sh cosign | tail -n 1)"
HELM_BIN="$(hack/testbed-build.sh helm | tail -n 1)"
FLUX_OPERATOR_BIN="$(hack/testbed-build.sh flux-operator | tail -n 1)"
# Clusters left by a run that was killed (their API server is gone) are removed first.
hack/cluster-down.sh --stale >/dev/null 2>&1 || true

step "vendor the Flux releases into manifests-bundle/"
hack/vendor-flux.sh

if [ -z "$E2E_ONLY" ]; then
  step "format and lint"
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets --locked -- -D warnings

  step "build"
  cargo build --workspace --all-targets --locked

  step "unit tests"
  cargo test -p fluxop --locked
else
  step "build fluxop"
  cargo build -p fluxop --bin fluxop --locked
fi

# The releases the real-node tests install, and which of their controllers: 2.9.4 (the
# default set) and v2.9.5, the newest release, rebuilt from the sources the Go module proxy
# serves (hack/flux-release.sh; its source, kustomize and helm controllers are served): the
# real-pod upgrade 2.9.4 -> 2.9.5, and the self-managed Flux upgrading itself with the
# kustomize-controller that applies the bump.
FLUX_RELEASES=(v2.9.4 v2.9.5:source-controller,kustomize-controller)
step "Flux controller images"
hack/flux-release.sh v2.9.5 --allow-missing >/dev/null
hack/flux-images.sh "${FLUX_RELEASES[@]}" >/dev/null

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

step "local registry and cluster"
REGISTRY="$(hack/registry-up.sh "$NAME")"
KUBECONFIG_PATH="$(hack/cluster-up.sh "$NAME")"

step "images in the registry"
TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
REAL_BUNDLE="$(hack/flux-images.sh --push "$REGISTRY" --bundle "$TARGET/testbed-bundle" "${FLUX_RELEASES[@]}" | tail -n 1)"
FLUXOP_IMAGE="$(hack/fluxop-image.sh --debug --push "$REGISTRY/fluxop/fluxop:dev" --insecure | tail -n 1)"
# A small image for apps that Flux deploys in the tests: the node's own pause image.
APP_IMAGE="$REGISTRY/testbed/pause:3.10"
"$NODE_BIN/crane" push --insecure "$(dirname "$NODE_BIN")/images/pause" "$APP_IMAGE" >/dev/null 2>&1

export FLUXOP_E2E_KUBECONFIG="$KUBECONFIG_PATH" FLUXOP_E2E_KUBECTL="$BIN/kubectl" FLUXOP_E2E_REGISTRY="$REGISTRY" \
  FLUXOP_E2E_REGISTRY_DATA="$STATE_ROOT/registries/$NAME/data" FLUXOP_E2E_COSIGN="$COSIGN_BIN/cosign" \
  FLUXOP_E2E_HELM="$HELM_BIN/helm" FLUXOP_E2E_REAL_BUNDLE="$REAL_BUNDLE" FLUXOP_E2E_FLUXOP_IMAGE="$FLUXOP_IMAGE" \
  FLUXOP_E2E_APP_IMAGE="$APP_IMAGE" FLUXOP_E2E_FLUX_OPERATOR="$FLUX_OPERATOR_BIN/flux-operator"

step "end-to-end tests"
cargo test -p fluxop-e2e --locked --no-fail-fast ${E2E_ARGS[@]+"${E2E_ARGS[@]}"}

step "all tests passed"
