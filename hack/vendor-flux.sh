#!/usr/bin/env bash
# Vendors the upstream Flux release manifests and image catalogs into manifests-bundle/
# (gitignored): flux/<version>/{<controller>,rbac,policies}.yaml and
# flux-images/<version>/upstream-alpine.yaml.
#
#   hack/vendor-flux.sh [VERSION...]     (default: every release the source has)
#
# Source: FLUX_DIST (default ../shared/flux-dist beside the repo, with ../shared/flux-images),
# else the upstream release's manifests.tar.gz when this machine can reach GitHub (then the
# catalog lists the release's tags without digests).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DIST="${FLUX_DIST:-$REPO_ROOT/../shared/flux-dist}"
IMAGES="${FLUX_IMAGES:-$(dirname "$DIST")/flux-images}"
OUT="$REPO_ROOT/manifests-bundle"

versions=("$@")
if [ ${#versions[@]} = 0 ]; then
  [ -d "$DIST" ] || die "no versions given and $DIST does not exist; name the versions to download, e.g. v2.8.8"
  mapfile -t versions < <(ls "$DIST" | grep -E '^v[0-9]+\.[0-9]+\.[0-9]+$')
fi

for version in "${versions[@]}"; do
  dest="$OUT/flux/$version"
  rm -rf "$dest" "$OUT/flux-images/$version"
  mkdir -p "$dest" "$OUT/flux-images/$version"
  if [ -d "$DIST/$version" ]; then
    # The release's manifests.tar.gz content: everything but the install.yaml asset.
    find "$DIST/$version" -maxdepth 1 -name '*.yaml' ! -name install.yaml -exec cp {} "$dest/" \;
    if [ -f "$IMAGES/$version/upstream-alpine.yaml" ]; then
      cp "$IMAGES/$version"/*.yaml "$OUT/flux-images/$version/"
    fi
  else
    log "downloading Flux $version manifests from the upstream release"
    curl -fsSL --retry 3 "https://github.com/fluxcd/flux2/releases/download/$version/manifests.tar.gz" \
      | tar -xz -C "$dest" || die "cannot get Flux $version: not in $DIST and the upstream release is unreachable"
  fi
  if [ ! -f "$OUT/flux-images/$version/upstream-alpine.yaml" ]; then
    # Tags from the release's own manifests; no digests without a registry to ask.
    { echo "images:"
      grep -hoE 'image: (docker.io/)?fluxcd/[a-z-]+:v[0-9.]+' "$dest"/*.yaml | sort -u \
        | sed -E 's#image: (docker.io/)?fluxcd/([a-z-]+):(v[0-9.]+)#  - name: ghcr.io/fluxcd/\2\n    newTag: \3#'
    } > "$OUT/flux-images/$version/upstream-alpine.yaml"
  fi
  chmod -R u+w "$dest" "$OUT/flux-images/$version"
  log "vendored Flux $version into manifests-bundle/ ($(ls "$dest" | wc -l) files)"
done
