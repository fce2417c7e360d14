#!/usr/bin/env bash
# Builds container images of the Flux controllers from the Go module proxy, for the real
# nodes of the test bed (no registry outside this machine is reachable), and makes a bundle
# whose image catalogs point at them.
#
#   hack/flux-images.sh [--push HOST:PORT] [--bundle DIR] VERSION[:CONTROLLER,...]...
#       VERSION      a vendored Flux release (hack/vendor-flux.sh); the controllers default
#                    to source, kustomize, helm and notification controllers
#       --push       pushes each image to HOST:PORT/fluxcd/<controller>:<tag> (plain HTTP)
#       --bundle     writes a bundle directory: manifests-bundle/ with the catalogs of these
#                    releases (flux-images/VERSION/upstream-alpine.yaml) naming the digests of
#                    the images built here (controllers not built keep their upstream entry)
#
# For each controller it reads the controller's version from the vendored release
# (manifests-bundle/flux/VERSION/<controller>.yaml), builds the binary through a wrapper
# module (the upstream go.mod without its `=> ./api` replaces, which make `go install
# pkg@version` refuse the module) and packs it as a one-layer image (hack/oci-image.py): the
# static binary as the entrypoint, a CA bundle, user 65534. Binaries and images are cached
# by controller version outside the repo, and builds are reproducible: the same sources give
# the same digests. Prints the bundle directory (or the image cache) on its last line.
#
# The Go module proxy refuses some module versions; each is pinned to a served neighbour
# (and the README says so):
#   - helm-controller replaces helm.sh/helm/v4 with a Flux fork that the proxy refuses;
#     upstream Helm of the same base version is used instead.
#   - github.com/fluxcd/pkg/artifact v0.18.2 and v0.18.3 are refused; v0.18.1 is used.
#   - any other dependency version the proxy refuses is replaced by the nearest patch release
#     it serves; the build says which, and <cache>/flux/<controller>-<tag>/pins lists them.
# It refuses whole controller versions too (checked 2026-12): of the vendored releases,
# every controller of v2.9.4 is served; of v2.8.8 only source-controller (v1.8.5); of v2.7.5
# only kustomize-controller (v1.7.3); of v2.6.4 only notification-controller (v1.6.0). A
# controller the proxy does not serve cannot be built here, and no other version stands in
# for it: the catalog would lie about what runs. Of v2.9.5 (a release newer than the
# vendored ones, rebuilt from module sources by hack/flux-release.sh) the proxy serves
# source, kustomize and helm controllers.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PUSH="" BUNDLE="" specs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --push) PUSH="${2:?--push needs HOST:PORT}"; shift 2 ;;
    --bundle) BUNDLE="${2:?--bundle needs a directory}"; shift 2 ;;
    -*) die "unknown option $1 (see the header of $0)" ;;
    *) specs+=("$1"); shift ;;
  esac
done
[ ${#specs[@]} -gt 0 ] || die "usage: hack/flux-images.sh [--push HOST:PORT] [--bundle DIR] VERSION[:CONTROLLER,...]..."
DEFAULT_CONTROLLERS=(source-controller kustomize-controller helm-controller notification-controller)
CACHE="${FLUXOP_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fluxop-testbed}"
command -v go >/dev/null || die "Go is required to build the Flux controllers"

# The checksum database has no record of some Flux module versions the proxy serves (its
# lookups answer 404); those are checked against the proxy's TLS only.
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -mod=mod" GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}github.com/fluxcd"
PROXY="$(go env GOPROXY | tr ',|' '\n\n' | grep -m1 '^https\?://' || echo https://proxy.golang.org)"

# The upstream go.mod of MODULE@VERSION, rewritten as a wrapper module that requires it.
wrapper_gomod() {
  local module=$1 version=$2
  curl -fsSL --retry 3 "$PROXY/$module/@v/$version.mod" \
    || die "the Go module proxy does not serve $module@$version"
  echo
  echo "require $module $version"
  # Module versions the proxy refuses (403 is final), pinned to served neighbours.
  echo "replace github.com/fluxcd/pkg/artifact v0.18.2 => github.com/fluxcd/pkg/artifact v0.18.1"
  echo "replace github.com/fluxcd/pkg/artifact v0.18.3 => github.com/fluxcd/pkg/artifact v0.18.1"
}

# A CA bundle for the images (the controllers talk TLS to registries and Git servers).
ca_bundle() {
  local ca=/etc/ssl/certs/ca-certificates.crt
  [ -f "$ca" ] || die "no CA bundle at $ca (Debian's ca-certificates)"
  echo "$ca"
}

build_controller() {
  local controller=$1 tag=$2 dir=$3
  local major=${tag#v}; major=${major%%.*}
  local module="github.com/fluxcd/$controller"
  [ "$major" -lt 2 ] || module="$module/v$major"
  local work="$CACHE/src/flux/$controller-$tag"
  mkdir -p "$work" "$dir/bin"
  {
    wrapper_gomod "$module" "$tag" | sed -E \
      -e "s#^module .*#module fluxop.local/flux/$controller#" \
      -e '/^toolchain /d' \
      -e '/=> \.\.?\//d' \
      -e 's#^(replace +)?helm\.sh/helm/v4 => github\.com/fluxcd/helm/v4 v([0-9.]+)-flux\.[0-9]+#\1helm.sh/helm/v4 => helm.sh/helm/v4 v\2#' \
      -e 's#^(\s+)helm\.sh/helm/v4 => github\.com/fluxcd/helm/v4 v([0-9.]+)-flux\.[0-9]+#\1helm.sh/helm/v4 => helm.sh/helm/v4 v\2#'
  } > "$work/go.mod.new"
  # Keep go.sum across runs (it only grows) but always start from the upstream go.mod.
  mv "$work/go.mod.new" "$work/go.mod"
  log "building $controller $tag (Flux $VERSION)"
  rm -f "$dir/pins.new"
  local attempt output refused pinned
  for attempt in $(seq 1 30); do
    if output=$(cd "$work" && go get "$module@$tag" 2>&1); then break; fi
    # `[go: | <package>: ]MODULE@VERSION: reading https://PROXY/.../@v/VERSION.mod: 403 ...`
    refused=$(sed -nE 's#.*[[:space:]]([^[:space:]@]+)@(v[^ :]+): reading [^ ]+: 403.*#\1 \2#p' <<<"$output" | head -n1)
    [ -n "$refused" ] && [ "$attempt" -lt 30 ] || { echo "$output" >&2; die "building $controller $tag failed (see above)"; }
    set -- $refused
    [ "$1" != "$module" ] || die "the Go module proxy does not serve $module@$tag itself"
    pinned=$(served_neighbour "$1" "$2") || die "the proxy refuses $1@$2 and serves no neighbouring version"
    echo "replace $1 $2 => $1 $pinned" >> "$work/go.mod"
    echo "$1 $2 => $pinned" >> "$dir/pins.new"
    log "  $1@$2 is refused by the Go module proxy: using $pinned"
  done
  # Most controllers keep their main package at the module root; source-watcher in cmd/.
  local main_package=$module
  [ "$controller" != source-watcher ] || main_package="$module/cmd"
  (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$dir/bin/$controller" "$main_package" >&2) \
    || die "building $controller $tag failed (see above)"
  # What differs from upstream's dependency versions, next to the binary.
  if [ -f "$dir/pins.new" ]; then mv "$dir/pins.new" "$dir/pins"; else : > "$dir/pins"; fi
}

# served_neighbour MODULE VERSION: the nearest version of MODULE the proxy serves in full
# (.mod and .zip): lower patches of the same minor first, then higher ones.
served_neighbour() {
  local module=$1 version=$2 escaped candidate
  escaped=$(sed -E 's/([A-Z])/!\L\1/g' <<<"$module")
  [[ "$version" =~ ^v([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || return 1
  local major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]} patch=${BASH_REMATCH[3]} p
  for p in $(seq $(( patch - 1 )) -1 0) $(seq $(( patch + 1 )) $(( patch + 5 ))); do
    candidate="v$major.$minor.$p"
    if curl -fsS -o /dev/null "$PROXY/$escaped/@v/$candidate.mod" 2>/dev/null \
      && curl -fsS -o /dev/null -r 0-0 "$PROXY/$escaped/@v/$candidate.zip" 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# release_dir VERSION: the release's manifests: vendored in manifests-bundle/, or rebuilt
# from the Go module proxy by hack/flux-release.sh (a release newer than the vendored ones).
release_dir() {
  local dir
  for dir in "$REPO_ROOT/manifests-bundle/flux/$1" "$CACHE/flux-releases/$1"; do
    if [ -f "$dir/rbac.yaml" ]; then echo "$dir"; return 0; fi
  done
  return 1
}

# build_release VERSION CONTROLLER...: builds (or reuses) the images; writes
# $CACHE/flux-images/VERSION/{catalog.yaml,layouts/<controller>}.
build_release() {
  local VERSION=$1; shift
  local RELEASE OUT="$CACHE/flux-images/$VERSION"
  RELEASE="$(release_dir "$VERSION")" \
    || die "Flux $VERSION is neither vendored (hack/vendor-flux.sh $VERSION) nor rebuilt from the Go module proxy (hack/flux-release.sh $VERSION)"
  mkdir -p "$OUT/layouts"
  echo "images:" > "$OUT/catalog.yaml.new"
  local controller manifest tag dir
  for controller in "$@"; do
    manifest="$RELEASE/$controller.yaml"
    [ -f "$manifest" ] || die "Flux $VERSION has no $controller"
    tag=$(grep -oE "image: (docker.io/)?fluxcd/$controller:v[0-9.]+" "$manifest" | head -n1 | sed 's/.*://' || true)
    [ -n "$tag" ] || die "no $controller image tag in $manifest"
    dir="$CACHE/flux/$controller-$tag"
    [ -x "$dir/bin/$controller" ] || build_controller "$controller" "$tag" "$dir"
    if [ ! -f "$dir/image/digest" ]; then
      mkdir -p "$dir/image"
      python3 "$REPO_ROOT/hack/oci-image.py" --out "$dir/image/layout" --name "ghcr.io/fluxcd/$controller:$tag" \
        --entrypoint "/usr/local/bin/$controller" \
        "$dir/bin/$controller:/usr/local/bin/$controller" "$(ca_bundle):/etc/ssl/certs/ca-certificates.crt" +/tmp \
        > "$dir/image/digest.new"
      mv "$dir/image/digest.new" "$dir/image/digest"
    fi
    rm -rf "$OUT/layouts/$controller"
    ln -s "$dir/image/layout" "$OUT/layouts/$controller"
    printf '  - name: ghcr.io/fluxcd/%s\n    newTag: %s\n    digest: %s\n' "$controller" "$tag" "$(cat "$dir/image/digest")" \
      >> "$OUT/catalog.yaml.new"
    if [ -n "$PUSH" ]; then
      "$CRANE" push --insecure "$dir/image/layout" "$PUSH/fluxcd/$controller:$tag" >/dev/null 2>&1 \
        || "$CRANE" push --insecure "$dir/image/layout" "$PUSH/fluxcd/$controller:$tag" >&2 \
        || die "pushing $controller:$tag to $PUSH failed"
    fi
  done
  mv "$OUT/catalog.yaml.new" "$OUT/catalog.yaml"
  log "Flux $VERSION images ready: $*${PUSH:+ (pushed to $PUSH/fluxcd)}"
}

# merge_catalog UPSTREAM LOCAL: the upstream catalog with the entries LOCAL has replaced.
merge_catalog() {
  python3 - "$1" "$2" <<'PY'
import re, sys
def entries(path):
    text = open(path).read() if path else ""
    return {m.group(1): m.group(0).rstrip("\n") for m in re.finditer(r"  - name: (\S+)\n(?:    .*\n?)*", text)}
upstream, local = entries(sys.argv[1]), entries(sys.argv[2])
print("images:")
for name in list(upstream) + [n for n in local if n not in upstream]:
    print(local.get(name, upstream.get(name)))
PY
}

[ -z "$PUSH" ] || CRANE="$("$REPO_ROOT/hack/testbed-build.sh" node | tail -n 1)/crane"
versions=()
for spec in "${specs[@]}"; do
  version=${spec%%:*}
  if [ "$spec" = "$version" ]; then
    build_release "$version" "${DEFAULT_CONTROLLERS[@]}"
  else
    IFS=, read -r -a list <<<"${spec#*:}"
    build_release "$version" "${list[@]}"
  fi
  versions+=("$version")
done
if [ -z "$BUNDLE" ]; then
  echo "$CACHE/flux-images"
  exit 0
fi
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE"
cp -r "$REPO_ROOT/manifests-bundle/." "$BUNDLE/"
for version in "${versions[@]}"; do
  catalog="$BUNDLE/flux-images/$version/upstream-alpine.yaml"
  mkdir -p "$(dirname "$catalog")"
  if [ ! -d "$BUNDLE/flux/$version" ]; then
    # A release rebuilt from the proxy joins the bundle with a catalog of its own tags.
    mkdir -p "$BUNDLE/flux/$version"
    cp "$(release_dir "$version")"/*.yaml "$BUNDLE/flux/$version/"
    { echo "images:"
      grep -hoE 'image: fluxcd/[a-z-]+:v[0-9.]+' "$BUNDLE/flux/$version"/*.yaml | sort -u \
        | sed -E 's#image: fluxcd/([a-z-]+):(v[0-9.]+)#  - name: ghcr.io/fluxcd/\1\n    newTag: \2#'
    } > "$catalog"
  fi
  merge_catalog "$( [ -f "$catalog" ] && echo "$catalog" )" "$CACHE/flux-images/$version/catalog.yaml" > "$catalog.new"
  mv "$catalog.new" "$catalog"
done
log "bundle with the images built here in $BUNDLE"
echo "$BUNDLE"
