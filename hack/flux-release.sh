#!/usr/bin/env bash
# Rebuilds a Flux release's manifests (the content of its manifests.tar.gz: one file per
# controller, rbac.yaml, policies.yaml) from sources the Go module proxy serves, the way the
# release pipeline builds them: the flux2 module's manifests/ at the release tag, each
# controller's config/ at the version flux2 pins, kustomize v5.5. For v2.9.4 the output is
# byte-for-byte the published files, which is what makes the method trustworthy.
#
#   hack/flux-release.sh VERSION [--allow-missing]
#       --allow-missing   a controller whose source the proxy refuses is left out (listed in
#                         MISSING) instead of failing: instances that do not install it work
#
# Cached per version (FLUXOP_TESTBED_CACHE/flux-releases/VERSION); prints that directory.
# Used where neither the team's copy of the releases nor GitHub is reachable.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

VERSION="${1:?usage: hack/flux-release.sh VERSION [--allow-missing]}"
ALLOW_MISSING=""
[ "${2:-}" = --allow-missing ] && ALLOW_MISSING=1
[[ "$VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "VERSION must look like v2.9.5"
KUSTOMIZE_VERSION=v5.5.0
CACHE="${FLUXOP_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fluxop-testbed}"
OUT="$CACHE/flux-releases/$VERSION"
if [ -f "$OUT/.complete" ]; then
  echo "$OUT"
  exit 0
fi
command -v go >/dev/null || die "Go is required (kustomize is built from the Go module proxy)"
PROXY="$(go env GOPROXY | tr ',|' '\n\n' | grep -m1 '^https\?://' || echo https://proxy.golang.org)"

KUSTOMIZE="$CACHE/kustomize-$KUSTOMIZE_VERSION/kustomize"
if [ ! -x "$KUSTOMIZE" ]; then
  log "building kustomize $KUSTOMIZE_VERSION from the Go module proxy"
  GOBIN="$(dirname "$KUSTOMIZE")" GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local \
    go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2
fi

work="$(mktemp -d)"
# A failed rebuild leaves no half-written release in the cache.
trap 'rm -rf "$work" "$OUT.new"' EXIT
# fetch MODULE VERSION DIR: the module's files under DIR (the proxy's zip, paths unprefixed).
fetch() {
  local module=$1 version=$2 dir=$3
  curl -fsS --retry 3 -o "$work/module.zip" "$PROXY/$module/@v/$version.zip" || return 1
  mkdir -p "$dir"
  python3 - "$work/module.zip" "$module@$version/" "$dir" <<'PY'
import sys, zipfile, os
archive, prefix, out = sys.argv[1:]
with zipfile.ZipFile(archive) as z:
    for name in z.namelist():
        if not name.startswith(prefix) or name.endswith("/"):
            continue
        rel = name[len(prefix):]
        if not (rel.startswith("manifests/") or rel.startswith("config/")):
            continue
        path = os.path.join(out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(z.read(name))
PY
}

fetch github.com/fluxcd/flux2/v2 "$VERSION" "$work/flux2" \
  || die "the Go module proxy does not serve github.com/fluxcd/flux2/v2@$VERSION"
rm -rf "$OUT.new"
mkdir -p "$OUT.new"
missing=()
for base in "$work/flux2/manifests/bases"/*/; do
  controller="$(basename "$base")"
  url="$(grep -oE "https://github.com/fluxcd/$controller/releases/download/v[^/]+/" "$base/kustomization.yaml" | head -n1)"
  [ -n "$url" ] || die "no release URL for $controller in flux2 $VERSION"
  tag="$(basename "$url")"
  module="github.com/fluxcd/$controller"
  major="${tag%%.*}"
  [ "$major" = v0 ] || [ "$major" = v1 ] || module="$module/$major"
  if ! fetch "$module" "$tag" "$work/src/$controller"; then
    [ -n "$ALLOW_MISSING" ] || die "the Go module proxy refuses $module@$tag (--allow-missing leaves $controller out)"
    log "the Go module proxy refuses $module@$tag: $controller left out"
    missing+=("$controller $tag")
    continue
  fi
  # The controller's release assets, then flux2's base on top of them (its labels, patches).
  "$KUSTOMIZE" build "$work/src/$controller/config/crd" > "$base/$controller.crds.yaml"
  "$KUSTOMIZE" build "$work/src/$controller/config/manager" > "$base/$controller.deployment.yaml"
  sed -i "s#$url##" "$base/kustomization.yaml"
  "$KUSTOMIZE" build "$base" > "$OUT.new/$controller.yaml"
done
"$KUSTOMIZE" build "$work/flux2/manifests/rbac" > "$OUT.new/rbac.yaml"
"$KUSTOMIZE" build "$work/flux2/manifests/policies" > "$OUT.new/policies.yaml"
if [ ${#missing[@]} -gt 0 ]; then
  printf '%s\n' "${missing[@]}" > "$OUT.new/MISSING"
fi
touch "$OUT.new/.complete"
rm -rf "$OUT"
mv "$OUT.new" "$OUT"
log "Flux $VERSION rebuilt from Go module sources in $OUT${missing[*]:+ (left out: ${missing[*]})}"
echo "$OUT"
