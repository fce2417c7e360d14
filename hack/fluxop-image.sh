#!/usr/bin/env bash
# Builds fluxop's container image without a container engine: the fluxop binary, the
# shared libraries it links (as `ldd` lists them, with the dynamic loader), a CA bundle and
# an empty /tmp, in one layer; entrypoint `fluxop`, user 65534, linux/amd64.
#
#   hack/fluxop-image.sh [--debug] [--binary PATH] [--push HOST:PORT/REPO:TAG] [--insecure]
#
#   (default)  builds the release binary (cargo build --release -p fluxop)
#   --debug    uses the debug binary instead (what the test suite builds anyway)
#   --binary   packs this binary as it is
#   --push     pushes the image with crane (from hack/testbed-build.sh node); --insecure
#              for a plain-HTTP registry
#
# Writes the OCI image layout to $CARGO_TARGET_DIR/fluxop-image/ and prints the pushed
# reference with its digest (HOST:PORT/REPO:TAG@sha256:...), or only the digest without
# --push. The layer is deterministic: the same binary gives the same digest.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

PROFILE=release BINARY="" PUSH="" INSECURE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) PROFILE=debug; shift ;;
    --binary) BINARY="${2:?--binary needs a path}"; shift 2 ;;
    --push) PUSH="${2:?--push needs HOST:PORT/REPO:TAG}"; shift 2 ;;
    --insecure) INSECURE=1; shift ;;
    *) die "unknown option $1 (see the header of $0)" ;;
  esac
done
TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
if [ -z "$BINARY" ]; then
  if [ "$PROFILE" = release ]; then
    cargo build --release --locked -p fluxop --bin fluxop >&2
  else
    cargo build --locked -p fluxop --bin fluxop >&2
  fi
  BINARY="$TARGET/$PROFILE/fluxop"
fi
[ -x "$BINARY" ] || die "no fluxop binary at $BINARY"

# The binary's shared libraries and loader, at the paths the binary looks for them.
files=("$BINARY:/usr/local/bin/fluxop")
if ldd "$BINARY" | grep -q 'not found'; then die "$BINARY links libraries this machine lacks: $(ldd "$BINARY" | grep 'not found')"; fi
while read -r lib; do
  [ -n "$lib" ] && files+=("$lib:$lib")
done < <(ldd "$BINARY" | grep -oE '(/[^ ]+)' | sort -u)
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] && files+=("$ca:$ca")

OUT="$TARGET/fluxop-image"
digest=$(python3 hack/oci-image.py --out "$OUT" --name "fluxop:$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)" \
  --entrypoint /usr/local/bin/fluxop --user 65534:65534 "${files[@]}" +/tmp)
log "image layout in $OUT ($(du -sh "$OUT" | cut -f1)), $digest"
if [ -z "$PUSH" ]; then
  echo "$digest"
  exit 0
fi
CRANE="$("$REPO_ROOT/hack/testbed-build.sh" node | tail -n 1)/crane"
"$CRANE" push ${INSECURE:+--insecure} "$OUT" "$PUSH" >&2
echo "$PUSH@$digest"
