#!/usr/bin/env bash
# Builds the binaries of the local test cluster from the Go module proxy and caches them
# outside the repo, keyed by version, so only the first run pays for the build:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (k8s.io/kubernetes)
#   etcd (go.etcd.io/etcd/server/v3, the version Kubernetes itself requires)
#   kwok (sigs.k8s.io/kwok), plus the kwok Stage manifests from the same module
#   cosign (only with `hack/testbed-build.sh cosign`: interop checks of signatures)
#   with `hack/testbed-build.sh node`, what a real node runs: kubelet and kube-proxy (the same
#     wrapper module as the control plane), CoreDNS, crane (pushes images), and the images
#     of the node's own pods as OCI layouts: pause (built with gcc from the pause.c that
#     ships in the Kubernetes module) and CoreDNS
#   helm (only with `hack/testbed-build.sh helm`: the Helm CLI, to test fluxop's chart)
#   flux-operator (only with `hack/testbed-build.sh flux-operator`: the incumbent's CLI, for
#     the conformance test of `build instance`)
#   incumbent-module (only with `hack/testbed-build.sh incumbent-module`: the incumbent's Go
#     module in the Go module cache, whose docs, CRDs and test corpora the tests read; prints
#     its directory)
#   flux (only with `hack/testbed-build.sh flux`: the flux CLI, a client of the clusters fluxop
#     installs; needs the release vendored first, hack/vendor-flux.sh)
#   flux-operator-controller (only with `hack/testbed-build.sh flux-operator-controller`: the
#     incumbent's operator, for `hack/bench.sh incumbent`; next to the bin directory, the
#     distribution data its image carries in /data (../data) and its CRDs (../crds))
# Prints the bin directory on its last line of stdout.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.34.4}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
COSIGN_VERSION="${COSIGN_VERSION:-v2.6.4}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.7}"
CRANE_VERSION="${CRANE_VERSION:-v0.21.5}"
HELM_VERSION="${HELM_VERSION:-v4.2.4}"
FLUX_OPERATOR_VERSION="${FLUX_OPERATOR_VERSION:-v0.58.1}"
FLUX_CLI_VERSION="${FLUX_CLI_VERSION:-v2.9.4}"
CACHE="${FLUXOP_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fluxop-testbed}"
BIN="$CACHE/k8s-$K8S_VERSION-kwok-$KWOK_VERSION/bin"
STAGES="$CACHE/k8s-$K8S_VERSION-kwok-$KWOK_VERSION/stages"

log() { echo "testbed-build: $*" >&2; }

command -v go >/dev/null || { log "Go is required (https://go.dev/doc/install); none on PATH"; exit 1; }
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}"

# Staging modules that k8s.io/kubernetes replaces with ./staging paths; a module that
# requires k8s.io/kubernetes must replace each with its published v0.x.y twin.
kubernetes_gomod() {
  curl -fsSL --retry 3 "${GOPROXY_URL:-https://proxy.golang.org}/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
}
staging_modules() {
  kubernetes_gomod | sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p'
}

build_kubernetes() {
  local work="$CACHE/src/k8s-$K8S_VERSION" staging_ver="v0.${K8S_VERSION#v1.}"
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  mkdir -p "$work" "$BIN"
  local mods; mods=$(staging_modules)
  [ -n "$mods" ] || { log "could not read the staging module list of k8s.io/kubernetes $K8S_VERSION"; exit 1; }
  {
    echo "module fluxop.local/testbed"
    echo
    echo "go 1.24.0"
    echo
    echo "replace ("
    for m in $mods; do echo "	$m => $m $staging_ver"; done
    echo ")"
  } > "$work/go.mod"
  cd "$work"
  log "resolving k8s.io/kubernetes $K8S_VERSION (staging $staging_ver)"
  # `go get` of the packages (not the module) pulls exactly the dependencies they need.
  # etcd at exactly the version this Kubernetes release was tested with.
  local etcd_ver; etcd_ver=$(kubernetes_gomod | sed -n 's#^\s*go.etcd.io/etcd/server/v3 \(v[0-9.]*\).*#\1#p')
  go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kube-scheduler@$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION" "go.etcd.io/etcd/server/v3@${etcd_ver:?}" >&2
  local vpkg ldflags=""
  for vpkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor"
    ldflags+=" -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
  done
  log "building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd (slow on a cold cache)"
  go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "-s -w$ldflags" -o "$BIN/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl >&2
  go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3 >&2
}

build_kwok() {
  mkdir -p "$BIN" "$STAGES"
  log "building kwok $KWOK_VERSION"
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
  # The Stages kwokctl uses by default: nodes initialize and renew a Lease (so the node
  # lifecycle controller keeps them Ready); pods become Ready at once and go on delete.
  local src; src="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
  cp "$src/node/fast/node-initialize.yaml" "$src/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
    "$src/pod/fast/pod-ready.yaml" "$src/pod/fast/pod-complete.yaml" "$src/pod/fast/pod-delete.yaml" "$STAGES/"
  chmod -R u+w "$STAGES"
}

build_cosign() {
  local cbin="$CACHE/cosign-$COSIGN_VERSION/bin"
  if [ ! -x "$cbin/cosign" ]; then
    mkdir -p "$cbin"
    log "building cosign $COSIGN_VERSION"
    GOBIN="$cbin" go install -trimpath -ldflags "-s -w" "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION" >&2
  fi
  echo "$cbin"
}

# kubelet and kube-proxy come from the control plane's wrapper module (built first).
build_node() {
  local node="$CACHE/node-k8s-$K8S_VERSION-coredns-$COREDNS_VERSION"
  if [ -f "$node/bin/.complete" ]; then echo "$node/bin"; return; fi
  local start; start=$(date +%s)
  mkdir -p "$node/bin" "$node/images"
  local work="$CACHE/src/k8s-$K8S_VERSION" minor="${K8S_VERSION#v1.}" vpkg ldflags=""
  minor="${minor%%.*}"
  for vpkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor"
    ldflags+=" -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
  done
  if [ ! -x "$node/bin/kubelet" ] || [ ! -x "$node/bin/kube-proxy" ]; then
    log "building kubelet and kube-proxy $K8S_VERSION"
    (cd "$work" && go get "k8s.io/kubernetes/cmd/kubelet@$K8S_VERSION" "k8s.io/kubernetes/cmd/kube-proxy@$K8S_VERSION" >&2 \
      && go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "-s -w$ldflags" -o "$node/bin/" \
        k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy >&2)
  fi
  if [ ! -x "$node/bin/coredns" ]; then
    log "building CoreDNS $COREDNS_VERSION"
    GOBIN="$node/bin" go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION" >&2
  fi
  if [ ! -x "$node/bin/crane" ]; then
    log "building crane $CRANE_VERSION"
    GOBIN="$node/bin" go install -trimpath -ldflags "-s -w" "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION" >&2
  fi
  if [ ! -x "$node/bin/pause" ]; then
    # The sandbox image's program, from the Kubernetes module this test bed already built.
    local pause_src; pause_src="$(go env GOMODCACHE)/k8s.io/kubernetes@$K8S_VERSION/build/pause/linux/pause.c"
    [ -f "$pause_src" ] || (cd "$work" && go mod download "k8s.io/kubernetes@$K8S_VERSION" >&2)
    command -v gcc >/dev/null || { log "gcc is needed to build the pause program"; exit 1; }
    gcc -Os -Wall -Werror -static -DVERSION="$K8S_VERSION-fluxop" -o "$node/bin/pause" "$pause_src" >&2
  fi
  local here; here="$(cd "$(dirname "$0")" && pwd)"
  python3 "$here/oci-image.py" --out "$node/images/pause" --name registry.k8s.io/pause:3.10 \
    --entrypoint /pause --user 65535:65535 "$node/bin/pause:/pause" >/dev/null
  # CoreDNS answers for the cluster domain only and forwards nowhere (no packet leaves).
  python3 "$here/oci-image.py" --out "$node/images/coredns" --name "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" \
    --entrypoint /coredns --user 65532:65532 "$node/bin/coredns:/coredns" >/dev/null
  echo "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" > "$node/coredns-image"
  touch "$node/bin/.complete"
  log "node binaries and images ready in $node ($(( $(date +%s) - start ))s)"
  echo "$node/bin"
}

build_helm() {
  local hbin="$CACHE/helm-$HELM_VERSION/bin"
  if [ ! -x "$hbin/helm" ]; then
    mkdir -p "$hbin"
    log "building helm $HELM_VERSION"
    GOBIN="$hbin" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >&2
  fi
  echo "$hbin"
}

# The Flux Operator's CLI (the incumbent), built through a wrapper module: v0.58.1 requires a
# pseudo-version of go-containerregistry's authn/kubernetes that the Go module proxy does not
# serve, so it is replaced with one the proxy does serve.
build_flux_operator() {
  local fbin="$CACHE/flux-operator-$FLUX_OPERATOR_VERSION/bin"
  local pkg=github.com/controlplaneio-fluxcd/flux-operator/cmd/cli
  local authn=github.com/google/go-containerregistry/pkg/authn/kubernetes
  if [ ! -x "$fbin/flux-operator" ]; then
    local work="$CACHE/src/flux-operator-$FLUX_OPERATOR_VERSION" start; start=$(date +%s)
    mkdir -p "$fbin" "$work"
    printf 'module fluxop.local/flux-operator-cli\n\ngo 1.26.0\n\nreplace %s => %s %s\n' \
      "$authn" "$authn" "${FLUX_OPERATOR_AUTHN_K8S:-v0.0.0-20260224031529-85f2bf5f7303}" > "$work/go.mod"
    log "building flux-operator $FLUX_OPERATOR_VERSION (the incumbent's CLI)"
    (cd "$work" && go get "$pkg@$FLUX_OPERATOR_VERSION" >&2 \
      && go build -trimpath -ldflags "-s -w -X main.VERSION=${FLUX_OPERATOR_VERSION#v}" -o "$fbin/flux-operator" "$pkg" >&2)
    log "flux-operator ready in $fbin ($(( $(date +%s) - start ))s)"
  fi
  echo "$fbin"
}

# The Flux Operator's operator (the incumbent), through a wrapper module with the same
# replace as the CLI. Its module as the proxy serves it lacks the web UI's built assets
# (web/dist, embedded at build time), so it is built from a copy of the module with an
# empty page in their place (the bench runs it with the web server off), and with
# GOFIPS140=latest as its image is (it refuses to start outside FIPS 140-3 mode). The
# distribution data its image carries in /data (config/data) goes to ../data, its CRDs
# (config/crd/bases) to ../crds.
build_flux_operator_controller() {
  local root="$CACHE/flux-operator-$FLUX_OPERATOR_VERSION"
  local fbin="$root/bin" mod=github.com/controlplaneio-fluxcd/flux-operator
  local authn=github.com/google/go-containerregistry/pkg/authn/kubernetes
  if [ ! -f "$root/controller.complete" ]; then
    local work="$CACHE/src/flux-operator-controller-$FLUX_OPERATOR_VERSION" start dir; start=$(date +%s)
    rm -rf "$work" "$root/data" "$root/crds"
    mkdir -p "$fbin" "$work"
    printf 'module fluxop.local/flux-operator-controller\n\ngo 1.26.0\n\nreplace %s => %s %s\n' \
      "$authn" "$authn" "${FLUX_OPERATOR_AUTHN_K8S:-v0.0.0-20260224031529-85f2bf5f7303}" > "$work/go.mod"
    log "building flux-operator $FLUX_OPERATOR_VERSION (the incumbent's operator)"
    (cd "$work" && go get "$mod/cmd/operator@$FLUX_OPERATOR_VERSION" >&2)
    dir=$(cd "$work" && go list -m -f '{{.Dir}}' "$mod")
    [ -d "$dir/config/data/flux" ] || { log "no config/data/flux in $dir"; exit 1; }
    cp -r "$dir" "$work/module" && chmod -R u+w "$work/module"
    mkdir -p "$work/module/web/dist"
    printf '<!doctype html><title>web UI not built</title>\n' > "$work/module/web/dist/index.html"
    (cd "$work" && go mod edit -replace "$mod=./module" \
      && GOFIPS140=latest go build -trimpath -ldflags "-s -w -X main.VERSION=${FLUX_OPERATOR_VERSION#v}" \
        -o "$fbin/flux-operator-controller" "$mod/cmd/operator" >&2)
    cp -r "$dir/config/data" "$root/data" && cp -r "$dir/config/crd/bases" "$root/crds"
    chmod -R u+w "$root/data" "$root/crds"
    touch "$root/controller.complete"
    log "flux-operator-controller ready in $fbin, its data in $root/data ($(( $(date +%s) - start ))s)"
  fi
  echo "$fbin"
}

# The flux CLI. Its module cannot be built as the proxy serves it: `go install` refuses the
# module's own `replace` (copied into the wrapper module here), and cmd/flux embeds the
# release manifests that flux2's Makefile generates (manifests/*.yaml, not in the module),
# which `flux install` would apply. They are the release's files, taken from the copy
# vendored into manifests-bundle/ (checked against hack/flux-releases.sha256).
build_flux_cli() {
  local fbin="$CACHE/flux-cli-$FLUX_CLI_VERSION/bin" mod=github.com/fluxcd/flux2/v2
  if [ ! -x "$fbin/flux" ]; then
    local here manifests work start; start=$(date +%s)
    here="$(cd "$(dirname "$0")/.." && pwd)"
    manifests="$here/manifests-bundle/flux/$FLUX_CLI_VERSION"
    [ -f "$manifests/rbac.yaml" ] || { log "Flux $FLUX_CLI_VERSION is not vendored: run hack/vendor-flux.sh first"; exit 1; }
    work="$CACHE/src/flux-cli-$FLUX_CLI_VERSION"
    rm -rf "$work" && mkdir -p "$work" "$fbin"
    { printf 'module fluxop.local/flux-cli\n\ngo 1.26.0\n\n'
      curl -fsSL --retry 3 "${GOPROXY_URL:-https://proxy.golang.org}/$mod/@v/$FLUX_CLI_VERSION.mod" | grep '^replace '
    } > "$work/go.mod"
    log "building the flux CLI $FLUX_CLI_VERSION"
    # Some Flux module versions the proxy serves have no record in the checksum database.
    export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}github.com/fluxcd"
    (cd "$work" && go get "$mod/cmd/flux@$FLUX_CLI_VERSION" >&2)
    local dir; dir=$(cd "$work" && go list -m -f '{{.Dir}}' "$mod")
    cp -r "$dir" "$work/module" && chmod -R u+w "$work/module"
    mkdir -p "$work/module/cmd/flux/manifests"
    cp "$manifests"/*.yaml "$work/module/cmd/flux/manifests/"
    (cd "$work" && go mod edit -replace "$mod=./module" \
      && GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath -ldflags "-s -w -X main.VERSION=${FLUX_CLI_VERSION#v}" \
        -o "$fbin/flux" "$mod/cmd/flux" >&2)
    log "flux CLI ready in $fbin ($(( $(date +%s) - start ))s)"
  fi
  echo "$fbin"
}

# The incumbent's module source (nothing is built): its CRDs and ResourceSet corpora are
# test data, read where the Go module cache keeps them.
incumbent_module() {
  local mod=github.com/controlplaneio-fluxcd/flux-operator
  go mod download "$mod@$FLUX_OPERATOR_VERSION" >&2
  echo "$(go env GOMODCACHE)/$mod@$FLUX_OPERATOR_VERSION"
}

case "${1:-}" in
  incumbent-module) incumbent_module; exit 0 ;;
  flux) build_flux_cli; exit 0 ;;
  cosign) build_cosign; exit 0 ;;
  helm) build_helm; exit 0 ;;
  flux-operator) build_flux_operator; exit 0 ;;
  flux-operator-controller) build_flux_operator_controller; exit 0 ;;
  node) "$0" >/dev/null; build_node; exit 0 ;;
esac

if [ -f "$BIN/.complete" ]; then echo "$BIN"; exit 0; fi
start=$(date +%s)
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd; do
  [ -x "$BIN/$b" ] || { build_kubernetes; break; }
done
[ -x "$BIN/kwok" ] && [ -f "$STAGES/node-heartbeat-with-lease.yaml" ] || build_kwok
touch "$BIN/.complete"
log "testbed binaries ready in $BIN ($(( $(date +%s) - start ))s)"
echo "$BIN"
