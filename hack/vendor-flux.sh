#!/usr/bin/env bash
# Vendors the upstream Flux release manifests and image catalogs into manifests-bundle/
# (gitignored): flux/<version>/{<controller>,rbac,policies}.yaml and
# flux-images/<version>/upstream-alpine.yaml.
#
#   hack/vendor-flux.sh [VERSION...]
#       default: every release of the local copy; with none, v2.9.4 (what hack/demo.sh installs)
#
# Where a release comes from, first that works:
#   1. the local copy: FLUX_DIST/<version>/ (default ../shared/flux-dist, the team folder
#      beside the repo), holding the files of the release's manifests.tar.gz unpacked, or
#      that manifests.tar.gz as downloaded; catalogs from FLUX_IMAGES (default
#      FLUX_DIST/../flux-images) when it has them
#   2. the upstream release asset FLUX_RELEASES_URL/<version>/manifests.tar.gz
#      (default https://github.com/fluxcd/flux2/releases/download; a mirror works too)
#   3. for a pinned release, hack/flux-release.sh: the same files rebuilt from the sources the
#      Go module proxy serves (FLUX_REBUILD=0 turns this off)
# A release pinned in hack/flux-releases.sha256 must match it file by file, from any source,
# or it is refused; a release that is not pinned is taken with a warning (nothing to check
# it against). Without a catalog the one written lists the release's tags, no digests.
# Each release is assembled beside its final place and moved in only once complete and
# verified: a failed run leaves manifests-bundle/ as it was.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# The release hack/demo.sh installs: what a clone with no local copy of the releases needs.
DEFAULT_VERSIONS=(v2.9.4)
PINS="$REPO_ROOT/hack/flux-releases.sha256"
TEAM_DIST="$(realpath -m "$REPO_ROOT/../shared/flux-dist")"
DIST="${FLUX_DIST:-$TEAM_DIST}"
IMAGES="${FLUX_IMAGES:-$(dirname "$DIST")/flux-images}"
RELEASES_URL="${FLUX_RELEASES_URL:-https://github.com/fluxcd/flux2/releases/download}"
UPSTREAM_URL=https://github.com/fluxcd/flux2/releases/download
OUT="$REPO_ROOT/manifests-bundle"

[ -f "$PINS" ] || die "$PINS is missing (it comes with the repository)"
if [ -n "${FLUX_DIST:-}" ] && [ ! -d "$FLUX_DIST" ]; then
  die "FLUX_DIST=$FLUX_DIST is not a directory (it holds one directory per release: $FLUX_DIST/v2.9.4/...)"
fi

# pinned_list: the pinned versions, on one line.
pinned_list() { sed -nE 's#^[0-9a-f]{64}  (v[^/]+)/.*#\1#p' "$PINS" | sort -uV | paste -sd' '; }
# pinned VERSION: whether hack/flux-releases.sha256 has checksums for VERSION.
pinned() { grep -qE "^[0-9a-f]{64}  ${1//./\\.}/" "$PINS"; }

# verify VERSION DIR: DIR holds exactly the pinned files of VERSION, byte for byte. Prints
# what differs, one line each.
verify() {
  local version=$1 dir=$2 hash path name actual problems=()
  local -A want=()
  while read -r hash path; do
    [[ "$hash" =~ ^[0-9a-f]{64}$ && "$path" == "$version/"* ]] && want[${path#"$version/"}]=$hash
  done < "$PINS"
  for name in "${!want[@]}"; do
    if [ ! -f "$dir/$name" ]; then problems+=("$name is missing"); continue; fi
    actual=$(sha256sum < "$dir/$name")
    actual=${actual%% *}
    [ "$actual" = "${want[$name]}" ] || problems+=("$name has sha256 $actual, pinned ${want[$name]}")
  done
  for path in "$dir"/*; do
    [ -e "$path" ] || continue
    name=$(basename "$path")
    [ -n "${want[$name]+set}" ] || problems+=("$name is not a file of the release")
  done
  [ ${#problems[@]} = 0 ] && return 0
  printf '  %s\n' "${problems[@]}" | sort
  return 1
}

# take_files FROM TO: the release's files (the manifests.tar.gz content: every .yaml but the
# separate install.yaml asset) from a directory.
take_files() {
  find -L "$1" -maxdepth 1 -type f -name '*.yaml' ! -name install.yaml -exec cp {} "$2/" \;
}

# unpack TARBALL DIR: a manifests.tar.gz into DIR. The release holds a few flat .yaml files,
# so anything else (links, devices, directories, paths, huge or many entries) is refused
# before a byte is written.
unpack() {
  python3 - "$1" "$2" <<'PY'
import os, re, sys, tarfile, zlib
archive, out = sys.argv[1:]
try:
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        files, total = [], 0
        for m in members:
            name = m.name[2:] if m.name.startswith("./") else m.name
            if m.isdir() and name in ("", "."):
                continue
            if not m.isfile():
                sys.exit(f"{m.name}: not a regular file")
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*\.yaml", name):
                sys.exit(f"{m.name}: not a top-level .yaml file, which is all a release holds")
            total += m.size
            if m.size > 32 << 20 or total > 64 << 20 or len(files) >= 100:
                sys.exit(f"{m.name}: larger than a Flux release (32 MiB a file, 64 MiB, 100 files)")
            files.append((name, m))
        for name, m in files:
            with open(os.path.join(out, name), "xb") as f:
                f.write(tar.extractfile(m).read())
except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
    sys.exit(f"not a readable .tar.gz: {e}")
PY
}

# Versions: the ones named, else every release of the local copy, else the demo's.
versions=("$@")
if [ ${#versions[@]} = 0 ]; then
  if [ -d "$DIST" ]; then
    for path in "$DIST"/v*; do
      if [[ -d "$path" && "${path##*/}" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then versions+=("${path##*/}"); fi
    done
    [ ${#versions[@]} -gt 0 ] || die "$DIST has no release directories (expected $DIST/v2.9.4/ and the like)"
  else
    versions=("${DEFAULT_VERSIONS[@]}")
    log "no local copy of the Flux releases (FLUX_DIST is not set, $TEAM_DIST does not exist): fetching ${versions[*]}"
  fi
fi
for version in "${versions[@]}"; do
  [[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "'$version' is not a Flux release version (like v2.9.4)"
done
# Which of them have no local copy: the instructions for an offline machine name all of them.
remote=()
for version in "${versions[@]}"; do
  [ -d "$DIST/$version" ] || remote+=("$version")
done
if [ -n "${FLUX_DIST:-}" ]; then
  no_local="not in FLUX_DIST=$FLUX_DIST"
elif [ -d "$TEAM_DIST" ]; then
  no_local="not in $TEAM_DIST"
else
  no_local="no local copy (FLUX_DIST is not set, $TEAM_DIST does not exist)"
fi

# instructions VERSION...: how to get releases onto a machine that cannot download them.
instructions() {
  local v
  echo "To vendor without reaching GitHub from here: on a machine that does, download the release"
  echo "manifests (any way of fetching these URLs will do):"
  echo
  echo "    mkdir -p flux-dist && cd flux-dist"
  for v in "$@"; do
    echo "    mkdir -p $v && curl -fsSL -o $v/manifests.tar.gz $UPSTREAM_URL/$v/manifests.tar.gz"
  done
  echo
  echo "copy that flux-dist directory here and run the same command again with FLUX_DIST set to it:"
  echo
  echo "    FLUX_DIST=/path/to/flux-dist hack/demo.sh      (or hack/vendor-flux.sh)"
  echo
  echo "FLUX_DIST holds one directory per release, named like v2.9.4, with either the"
  echo "manifests.tar.gz as downloaded or its files unpacked (<controller>.yaml, rbac.yaml,"
  echo "policies.yaml). Pinned releases ($(pinned_list)) are checked file by file against"
  echo "hack/flux-releases.sha256 and refused if anything differs. FLUX_RELEASES_URL points the"
  echo "download at a mirror of $UPSTREAM_URL instead."
  if [ "${FLUX_REBUILD:-1}" = 0 ]; then
    echo "Without FLUX_REBUILD=0, pinned releases are also rebuilt from the Go module proxy's sources."
  fi
}

work="$(mktemp -d)"
mkdir -p "$OUT/flux" "$OUT/flux-images"
stage=""
# The staging directory is hidden (bundle readers skip dot-entries) and removed on any exit.
trap 'rm -rf "$work" ${stage:+"$stage"}' EXIT

for version in "${versions[@]}"; do
  stage="$(mktemp -d "$OUT/flux/.vendor-$version.XXXXXX")"
  mkdir "$stage/flux" "$stage/images"
  rm -rf "$work/unpacked"
  mkdir "$work/unpacked"
  from=""
  if [ -d "$DIST/$version" ]; then
    from="$DIST/$version"
    if [ -n "$(find -L "$from" -maxdepth 1 -type f -name '*.yaml' ! -name install.yaml)" ]; then
      take_files "$from" "$stage/flux"
    elif [ -f "$from/manifests.tar.gz" ]; then
      from="$from/manifests.tar.gz"
      why=$(unpack "$from" "$work/unpacked" 2>&1) || die "$from is refused: $why"
      take_files "$work/unpacked" "$stage/flux"
    else
      die "$from has neither the release's files (<controller>.yaml, rbac.yaml, policies.yaml) nor its manifests.tar.gz"
    fi
  else
    url="$RELEASES_URL/$version/manifests.tar.gz"
    log "downloading Flux $version manifests from $url"
    # Timeouts so an unreachable host fails in seconds, not minutes; no downgrade to plain
    # HTTP on GitHub's redirect to its asset storage.
    if curl -fsSL --proto-redir =https --connect-timeout 10 --max-time 300 --retry 2 \
        --max-filesize $((32 << 20)) -o "$work/manifests.tar.gz" "$url" 2> "$work/curl.err"; then
      from="$url"
      why=$(unpack "$work/manifests.tar.gz" "$work/unpacked" 2>&1) || die "$url is refused: $why"
      take_files "$work/unpacked" "$stage/flux"
    else
      # curl repeats its error once per attempt: the last one says it.
      download_error="$(grep . "$work/curl.err" | tail -n 1 || true)"
      log "cannot download $url: ${download_error:-curl failed}"
      if ! pinned "$version"; then
        log "error: cannot get Flux $version: $no_local, and the download failed"
        instructions "${remote[@]}" >&2
        exit 1
      elif [ "${FLUX_REBUILD:-1}" = 0 ]; then
        log "error: cannot get Flux $version: $no_local, the download failed, and the rebuild from Go module sources is off (FLUX_REBUILD=0)"
        instructions "${remote[@]}" >&2
        exit 1
      fi
      # The published files rebuilt from module sources (what the release pipeline runs);
      # the pinned checksums below decide whether they are the same.
      log "rebuilding Flux $version from the sources the Go module proxy serves (hack/flux-release.sh)"
      if ! from="$("$REPO_ROOT/hack/flux-release.sh" "$version")"; then
        log "error: cannot get Flux $version: $no_local, the download failed, and so did the rebuild from Go module sources (see above)"
        instructions "${remote[@]}" >&2
        exit 1
      fi
      take_files "$from" "$stage/flux"
    fi
  fi
  [ -n "$(ls -A "$stage/flux")" ] || die "$from holds no release files (<controller>.yaml, rbac.yaml, policies.yaml)"
  if pinned "$version"; then
    if ! mismatch="$(verify "$version" "$stage/flux")"; then
      log "error: Flux $version from $from does not match hack/flux-releases.sha256:"
      echo "$mismatch" >&2
      log "refusing it: a pinned release is vendored only byte for byte as published, as the files of $UPSTREAM_URL/$version/manifests.tar.gz; put those there instead (manifests-bundle/ is left as it was)"
      exit 1
    fi
    log "Flux $version from $from matches the checksums pinned in hack/flux-releases.sha256"
  else
    log "warning: Flux $version is not pinned in hack/flux-releases.sha256: taken from $from unchecked"
  fi
  if [ -f "$IMAGES/$version/upstream-alpine.yaml" ]; then
    cp "$IMAGES/$version"/*.yaml "$stage/images/"
  else
    # Tags from the release's own manifests; no digests without a registry to ask.
    { echo "images:"
      grep -hoE 'image: (docker.io/)?fluxcd/[a-z-]+:v[0-9.]+' "$stage/flux"/*.yaml | sort -u \
        | sed -E 's#image: (docker.io/)?fluxcd/([a-z-]+):(v[0-9.]+)#  - name: ghcr.io/fluxcd/\2\n    newTag: \3#'
    } > "$stage/images/upstream-alpine.yaml"
  fi
  chmod -R u+w "$stage"
  # Complete and verified: replace the previous copy (renames within manifests-bundle/).
  rm -rf "$OUT/flux/$version" "$OUT/flux-images/$version"
  mv "$stage/flux" "$OUT/flux/$version"
  mv "$stage/images" "$OUT/flux-images/$version"
  rm -rf "$stage"
  stage=""
  log "vendored Flux $version into manifests-bundle/ ($(ls "$OUT/flux/$version" | wc -l) files)"
done
