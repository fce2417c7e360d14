#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. vendors the Flux releases into manifests-bundle/ (hack/vendor-flux.sh)
#   2. the Go builds — test bed binaries (hack/testbed-build.sh), the Flux controller images
#      the real-node tests install (hack/flux-images.sh), the flux CLI — in one lane, while
#      3. cargo fmt --check, clippy -D warnings, the build and the unit tests run beside it
#      (on 2 cores the two fill each other's single-threaded stretches: links, the last crate)
#   4. fluxop's own image (hack/fluxop-image.sh)
#   5. starts a throwaway registry and cluster on 127.0.0.1, pushes the images, and runs the
#      end-to-end tests against them in two lanes side by side, each with at most one cluster
#      of its own at a time (tests that run pods start clusters with a real node); everything
#      is stopped and removed afterwards, logs kept in target/testbed-logs/ when a test fails.
# Set FLUXOP_TEST_KEEP=1 to leave the cluster and registry running for a look afterwards.
#
#   hack/test.sh e2e [CARGO TEST ARGS...]   only the end-to-end tier (steps 1, 2, 4, 5, one
#                                           lane), e.g. `hack/test.sh e2e --test gitops`
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

E2E_ONLY="" E2E_ARGS=()
if [ "${1:-}" = e2e ]; then E2E_ONLY=1; shift; E2E_ARGS=("$@"); fi
started=$(date +%s)
step() { log "== $* (+$(( $(date +%s) - started ))s)"; }
TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
LOGS="$TARGET/test-logs"
mkdir -p "$LOGS"

step "vendor the Flux releases into manifests-bundle/"
hack/vendor-flux.sh

# The releases the real-node tests install, and which of their controllers: 2.9.4 with all
# seven (the whole toolkit at work); v2.9.3's notification-controller (kustomize-controller
# is the same build in both), the release a rolled-back and then a successful upgrade start
# from; and v2.9.5, the newest release, rebuilt from the sources the Go module proxy serves
# (hack/flux-release.sh; its source, kustomize and helm controllers are served): the
# real-pod upgrade 2.9.4 -> 2.9.5, and the self-managed Flux upgrading itself with the
# kustomize-controller that applies the bump.
FLUX_RELEASES=(
  v2.9.4:source-controller,kustomize-controller,helm-controller,notification-controller,image-reflector-controller,image-automation-controller,source-watcher
  v2.9.3:kustomize-controller,notification-controller
  v2.9.5:source-controller,kustomize-controller
)
# The Go lane: each build is cached outside the repo (keyed by version), so a warm run only
# checks. Its output goes to a log, shown when it fails; each line of its own timing is
# printed at the end.
go_lane() {
  local t0; t0=$(date +%s)
  lap() { echo "go lane: $* (+$(( $(date +%s) - t0 ))s)"; }
  hack/testbed-build.sh | tail -n 1 > "$LOGS/bin"; lap "control plane and kwok"
  hack/testbed-build.sh node | tail -n 1 > "$LOGS/node-bin"; lap "kubelet, kube-proxy, CoreDNS, crane"
  hack/testbed-build.sh cosign | tail -n 1 > "$LOGS/cosign-bin"; lap cosign
  hack/testbed-build.sh helm | tail -n 1 > "$LOGS/helm-bin"; lap helm
  hack/testbed-build.sh flux-operator | tail -n 1 > "$LOGS/flux-operator-bin"; lap "the incumbent's CLI"
  hack/flux-release.sh v2.9.3 --allow-missing >/dev/null
  hack/flux-release.sh v2.9.5 --allow-missing >/dev/null; lap "v2.9.3 and v2.9.5 manifests"
  hack/flux-images.sh "${FLUX_RELEASES[@]}" >/dev/null; lap "Flux controller images"
  hack/testbed-build.sh flux | tail -n 1 > "$LOGS/flux-bin"; lap "the flux CLI"
}
step "Go builds (in the background) beside the Rust ones"
# A process group of its own (job control on for the start), so an early exit stops it.
set -m
go_lane > "$LOGS/go-lane.log" 2>&1 &
GO_LANE=$!
set +m
trap 'kill -- "-$GO_LANE" 2>/dev/null || true' EXIT
go_lane_done() {
  if ! wait "$GO_LANE"; then
    tail -n 60 "$LOGS/go-lane.log" >&2
    die "the Go builds failed (whole log: $LOGS/go-lane.log)"
  fi
  grep '^go lane:' "$LOGS/go-lane.log" >&2
}

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
cargo test -p fluxop-e2e --locked --no-run 2>&1 | grep -v '^ *Executable' >&2

step "waiting for the Go builds"
go_lane_done
BIN="$(cat "$LOGS/bin")" NODE_BIN="$(cat "$LOGS/node-bin")" COSIGN_BIN="$(cat "$LOGS/cosign-bin")"
HELM_BIN="$(cat "$LOGS/helm-bin")" FLUX_OPERATOR_BIN="$(cat "$LOGS/flux-operator-bin")" FLUX_BIN="$(cat "$LOGS/flux-bin")"
# Clusters left by a run that was killed (their API server is gone) are removed first.
hack/cluster-down.sh --stale >/dev/null 2>&1 || true

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
REAL_BUNDLE="$(hack/flux-images.sh --push "$REGISTRY" --bundle "$TARGET/testbed-bundle" "${FLUX_RELEASES[@]}" | tail -n 1)"
FLUXOP_IMAGE="$(hack/fluxop-image.sh --debug --push "$REGISTRY/fluxop/fluxop:dev" --insecure | tail -n 1)"
# A small image for apps that Flux deploys in the tests: the node's own pause image.
APP_IMAGE="$REGISTRY/testbed/pause:3.10"
"$NODE_BIN/crane" push --insecure "$(dirname "$NODE_BIN")/images/pause" "$APP_IMAGE" >/dev/null 2>&1

export FLUXOP_E2E_KUBECONFIG="$KUBECONFIG_PATH" FLUXOP_E2E_KUBECTL="$BIN/kubectl" FLUXOP_E2E_REGISTRY="$REGISTRY" \
  FLUXOP_E2E_REGISTRY_DATA="$STATE_ROOT/registries/$NAME/data" FLUXOP_E2E_COSIGN="$COSIGN_BIN/cosign" \
  FLUXOP_E2E_HELM="$HELM_BIN/helm" FLUXOP_E2E_REAL_BUNDLE="$REAL_BUNDLE" FLUXOP_E2E_FLUXOP_IMAGE="$FLUXOP_IMAGE" \
  FLUXOP_E2E_APP_IMAGE="$APP_IMAGE" FLUXOP_E2E_FLUX_OPERATOR="$FLUX_OPERATOR_BIN/flux-operator" \
  FLUXOP_E2E_FLUX="$FLUX_BIN/flux" FLUXOP_E2E_NODE_BIN="$NODE_BIN"

# Two lanes of test binaries, about even in time (each binary's time is printed at the end
# of its lane): the tests' one-own-cluster-at-a-time lock is per process, so each lane runs at
# most one such cluster, beside the shared one.
LANE_A=(--lib --test lifecycle --test toolkit --test hub --test report --test api --test validation --test clone --test chart)
LANE_B=(--test pods --test gitops --test faults --test operator --test fleet --test render --test bundle --test conformance --test testbed)
lane() {
  local name=$1; shift
  local t0 code=0; t0=$(date +%s)
  cargo test -p fluxop-e2e --locked --no-fail-fast "$@" > "$LOGS/e2e-$name.log" 2>&1 || code=$?
  echo "lane $name: exit $code after $(( $(date +%s) - t0 ))s" >> "$LOGS/e2e-$name.log"
  return $code
}
step "end-to-end tests"
if [ ${#E2E_ARGS[@]} -gt 0 ]; then
  cargo test -p fluxop-e2e --locked --no-fail-fast "${E2E_ARGS[@]}"
else
  # Every test binary must be in a lane: a new one left out would never run.
  for test in e2e/tests/*.rs e2e/tests/*/main.rs; do
    name=$(basename "$test" .rs); [ "$name" = main ] && name=$(basename "$(dirname "$test")")
    [[ " ${LANE_A[*]} ${LANE_B[*]} " == *" $name "* ]] || die "e2e test $name is in no lane of hack/test.sh"
  done
  lane a "${LANE_A[@]}" & A=$!
  lane b "${LANE_B[@]}" & B=$!
  failed=""
  wait $A || failed+=" a"
  wait $B || failed+=" b"
  for name in a b; do
    echo "---- lane $name ----"
    cat "$LOGS/e2e-$name.log"
  done
  grep -h -E '^     Running|^test result|^lane ' "$LOGS/e2e-a.log" "$LOGS/e2e-b.log" >&2
  [ -z "$failed" ] || die "end-to-end tests failed in lane(s)$failed (logs: $LOGS/e2e-{a,b}.log)"
fi

step "all tests passed"
