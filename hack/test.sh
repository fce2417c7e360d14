#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. vendors the Flux releases into manifests-bundle/ (hack/vendor-flux.sh)
#   2. the Go builds — test bed binaries (hack/testbed-build.sh), the Flux controller images
#      the real-node tests install (hack/flux-images.sh), the flux CLI — in one lane, while
#      3. cargo fmt --check, clippy -D warnings, the build and the unit tests run beside it
#      (on 2 cores the two fill each other's single-threaded stretches: links, the last crate)
#   4. fluxop's own image (hack/fluxop-image.sh)
#   5. starts a throwaway registry and cluster on 127.0.0.1 as soon as the control plane is
#      built, and runs the end-to-end test binaries on two workers: the kwok-only ones at
#      once (while the Go lane still builds the node and the Flux images), the real-node ones
#      when those images are pushed; each worker has at most one cluster of its own at a
#      time; everything is stopped and removed afterwards, logs kept in
#      target/testbed-logs/ when a test fails.
# Set FLUXOP_TEST_KEEP=1 to leave the cluster and registry running for a look afterwards.
#
#   hack/test.sh e2e [CARGO TEST ARGS...]   only the end-to-end tier (steps 1, 2, 4, 5; with
#                                           args, those alone once everything is built),
#                                           e.g. `hack/test.sh e2e --test gitops`
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
# checks. It builds first what the kwok-only tests need (control plane, kwok, cosign, helm,
# the incumbent's CLI) and says so in a marker file, so those tests start while it builds
# the real node and the Flux images. Its output goes to a log, shown when it fails; each
# line of its own timing is printed at the end.
KWOK_READY="$LOGS/go-lane.kwok-ready"
rm -f "$KWOK_READY"
go_lane() {
  local t0; t0=$(date +%s)
  lap() { echo "go lane: $* (+$(( $(date +%s) - t0 ))s)"; }
  hack/testbed-build.sh | tail -n 1 > "$LOGS/bin"; lap "control plane and kwok"
  hack/testbed-build.sh cosign | tail -n 1 > "$LOGS/cosign-bin"; lap cosign
  hack/testbed-build.sh helm | tail -n 1 > "$LOGS/helm-bin"; lap helm
  hack/testbed-build.sh flux-operator | tail -n 1 > "$LOGS/flux-operator-bin"; lap "the incumbent's CLI"
  touch "$KWOK_READY"
  hack/testbed-build.sh node | tail -n 1 > "$LOGS/node-bin"; lap "kubelet, kube-proxy, CoreDNS, crane"
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
WORKERS=()
stop_background() {
  kill -- "-$GO_LANE" 2>/dev/null || true
  for pid in "${WORKERS[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
}
trap stop_background EXIT
go_lane_failed() {
  tail -n 60 "$LOGS/go-lane.log" >&2
  die "the Go builds failed (whole log: $LOGS/go-lane.log)"
}
go_lane_done() {
  wait "$GO_LANE" || go_lane_failed
  grep '^go lane:' "$LOGS/go-lane.log" >&2
}
# Waits until the kwok-only tests' binaries are built (or the lane failed).
go_lane_kwok_ready() {
  while [ ! -f "$KWOK_READY" ]; do
    kill -0 "$GO_LANE" 2>/dev/null || { wait "$GO_LANE" || go_lane_failed; [ -f "$KWOK_READY" ] && break; die "the Go lane ended before the test bed binaries were built"; }
    sleep 2
  done
}

# Unit and conformance tests read the incumbent's CRDs and corpora from its Go module.
hack/testbed-build.sh incumbent-module >/dev/null

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

# The end-to-end test binaries, by what they need. The kwok-only ones run on the control
# plane alone and start as soon as it is built; the real-node ones need the node, the Flux
# images, fluxop's image and the flux CLI. Each list is longest first (seconds of a warm run
# in the comment), so the two workers below end close together.
KWOK_TESTS=(render:330 faults:157 hub:146 fleet:91 operator:85 conformance:21 report:20 bundle:12 api:4 validation:3 clone:3 chart:1 lib:1)
REAL_TESTS=(toolkit:270 gitops:258 lifecycle:245 pods:198 resourcesets:120 testbed:22)
# Every test binary must be in a list: a new one left out would never run.
for test in e2e/tests/*.rs e2e/tests/*/main.rs; do
  name=$(basename "$test" .rs); [ "$name" = main ] && name=$(basename "$(dirname "$test")")
  [[ " ${KWOK_TESTS[*]%%:*} ${REAL_TESTS[*]%%:*} " == *" $name "* ]] || die "e2e test $name is in neither list of hack/test.sh"
done

step "waiting for the test bed binaries"
go_lane_kwok_ready
BIN="$(cat "$LOGS/bin")" COSIGN_BIN="$(cat "$LOGS/cosign-bin")"
HELM_BIN="$(cat "$LOGS/helm-bin")" FLUX_OPERATOR_BIN="$(cat "$LOGS/flux-operator-bin")"
# Clusters left by a run that was killed (their API server is gone) are removed first.
hack/cluster-down.sh --stale >/dev/null 2>&1 || true

NAME="test-$$"
QUEUE="$LOGS/e2e-queue"
rm -rf "$QUEUE"; mkdir -p "$QUEUE"
cleanup() {
  local code=$?
  stop_background
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
export FLUXOP_E2E_KUBECONFIG="$KUBECONFIG_PATH" FLUXOP_E2E_KUBECTL="$BIN/kubectl" FLUXOP_E2E_REGISTRY="$REGISTRY" \
  FLUXOP_E2E_REGISTRY_DATA="$STATE_ROOT/registries/$NAME/data" FLUXOP_E2E_COSIGN="$COSIGN_BIN/cosign" \
  FLUXOP_E2E_HELM="$HELM_BIN/helm" FLUXOP_E2E_FLUX_OPERATOR="$FLUX_OPERATOR_BIN/flux-operator"

# What the real-node tests need, once the Go lane has built it: written to an env file that
# a worker reads before it starts such a test.
real_node_env() {
  step "waiting for the Go builds"
  go_lane_done
  NODE_BIN="$(cat "$LOGS/node-bin")" FLUX_BIN="$(cat "$LOGS/flux-bin")"
  step "images in the registry"
  local real_bundle fluxop_image app_image="$REGISTRY/testbed/pause:3.10"
  real_bundle="$(hack/flux-images.sh --push "$REGISTRY" --bundle "$TARGET/testbed-bundle" "${FLUX_RELEASES[@]}" | tail -n 1)"
  fluxop_image="$(hack/fluxop-image.sh --debug --push "$REGISTRY/fluxop/fluxop:dev" --insecure | tail -n 1)"
  # A small image for apps that Flux deploys in the tests: the node's own pause image.
  "$NODE_BIN/crane" push --insecure "$(dirname "$NODE_BIN")/images/pause" "$app_image" >/dev/null 2>&1
  cat > "$QUEUE/real.env.tmp" <<ENV
export FLUXOP_E2E_REAL_BUNDLE="$real_bundle" FLUXOP_E2E_FLUXOP_IMAGE="$fluxop_image"
export FLUXOP_E2E_APP_IMAGE="$app_image" FLUXOP_E2E_FLUX="$FLUX_BIN/flux" FLUXOP_E2E_NODE_BIN="$NODE_BIN"
ENV
  mv "$QUEUE/real.env.tmp" "$QUEUE/real.env"
}

if [ ${#E2E_ARGS[@]} -gt 0 ]; then
  real_node_env
  step "end-to-end tests"
  source "$QUEUE/real.env"
  cargo test -p fluxop-e2e --locked --no-fail-fast "${E2E_ARGS[@]}"
  step "all tests passed"
  exit 0
fi

# Two workers take test binaries from the queue: kwok-only ones first, then the real-node
# ones once real.env exists. The tests' one-own-cluster-at-a-time lock is per process, so
# each worker runs at most one such cluster, beside the shared one.
printf '%s\n' "${KWOK_TESTS[@]%%:*}" > "$QUEUE/kwok"
printf '%s\n' "${REAL_TESTS[@]%%:*}" > "$QUEUE/real"
# Prints the next binary as "CLASS NAME", "wait" when only real-node ones are left and their
# environment is not there yet, or nothing when the queue is empty.
queue_take() {
  local fd next class
  exec {fd}>"$QUEUE/lock"; flock "$fd"
  for class in kwok real; do
    next=$(head -n 1 "$QUEUE/$class")
    [ -n "$next" ] || continue
    if [ $class = real ] && [ ! -f "$QUEUE/real.env" ]; then next=wait; break; fi
    sed -i 1d "$QUEUE/$class"; next="$class $next"; break
  done
  exec {fd}>&-
  echo "$next"
}
worker() {
  local id=$1 item class name t0 code
  while :; do
    item=$(queue_take)
    [ -n "$item" ] || return 0
    [ -f "$QUEUE/abort" ] && return 0
    if [ "$item" = wait ]; then sleep 2; continue; fi
    class=${item% *} name=${item#* }
    t0=$(date +%s) code=0
    (
      [ $class = kwok ] || source "$QUEUE/real.env"
      if [ "$name" = lib ]; then cargo test -p fluxop-e2e --locked --no-fail-fast --lib
      else cargo test -p fluxop-e2e --locked --no-fail-fast --test "$name"; fi
    ) >> "$QUEUE/worker-$id.log" 2>&1 || code=$?
    echo "test $name ($class): exit $code after $(( $(date +%s) - t0 ))s on worker $id" | tee -a "$QUEUE/summary" >> "$QUEUE/worker-$id.log"
  done
}
step "end-to-end tests: kwok-only ones start now, real-node ones when their images are pushed"
for id in 1 2; do
  set -m; worker $id & WORKERS+=($!); set +m
done
real_node_env
step "real-node tests queued"
for pid in "${WORKERS[@]}"; do wait "$pid" || true; done
for id in 1 2; do
  echo "---- worker $id ----"
  cat "$QUEUE/worker-$id.log"
done
grep -h -E '^     Running|^test result' "$QUEUE"/worker-*.log >&2 || true
cat "$QUEUE/summary" >&2
failed=$(grep -v ': exit 0 after' "$QUEUE/summary" | sed -E 's/^test ([^ ]+).*/\1/' | tr '\n' ' ' || true)
[ "$(wc -l < "$QUEUE/summary")" = $(( ${#KWOK_TESTS[@]} + ${#REAL_TESTS[@]} )) ] || die "not every test binary ran (see $QUEUE/summary)"
[ -z "$failed" ] || die "end-to-end tests failed: $failed(logs: $QUEUE/worker-{1,2}.log)"

step "all tests passed"
