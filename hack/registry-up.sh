#!/usr/bin/env bash
# Serves a throwaway OCI registry (Debian's docker-registry, distribution 2.8) on
# 127.0.0.1 at a port chosen at run time.
#
#   hack/registry-up.sh [NAME] [--basic-auth USER:PASSWORD] [--tls]
#
#   --basic-auth  require these credentials (htpasswd, bcrypt)
#   --tls         serve HTTPS with a certificate from a CA made for this registry; the CA is
#                 in STATE/registries/NAME/ca.crt (FLUXOP_REGISTRY_CA in the env file)
#
# Installs the package when missing and makes sure the package's own service (which
# listens on every interface) is not running. Writes STATE/registries/NAME/env
# (FLUXOP_REGISTRY=127.0.0.1:PORT, FLUXOP_REGISTRY_DATA, FLUXOP_REGISTRY_CA) and prints the
# address. Stop: hack/registry-down.sh NAME.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NAME="${1:-default}"
shift || true
BASIC_AUTH="" TLS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --basic-auth) BASIC_AUTH="${2:?--basic-auth needs USER:PASSWORD}"; shift 2 ;;
    --tls) TLS=1; shift ;;
    *) die "unknown option $1 (see the header of $0)" ;;
  esac
done
STATE="$STATE_ROOT/registries/$NAME"
REGISTRY_BIN="${FLUXOP_REGISTRY_BIN:-/usr/bin/docker-registry}"

if [ ! -x "$REGISTRY_BIN" ]; then
  apt_install docker-registry
fi
# The packaged service serves on 0.0.0.0:5000 with the package's config: never let it run.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
pkill -f "docker-registry serve /etc/docker/registry/config.yml" 2>/dev/null || true

if [ -f "$STATE/env" ] && daemon_alive "$STATE" registry; then
  log "registry $NAME is already running"
  sed -n 's/^FLUXOP_REGISTRY=//p' "$STATE/env"
  exit 0
fi
stop_daemons "$STATE"
rm -rf "$STATE"
mkdir -p "$STATE/data"
read -r PORT DEBUG_PORT <<<"$(free_ports 2)"
if [ -n "$BASIC_AUTH" ]; then
  user="${BASIC_AUTH%%:*}" password="${BASIC_AUTH#*:}"
  # The registry reads only bcrypt entries.
  hash=$(python3 -W ignore -c 'import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))' "$password" 2>/dev/null) \
    || hash=$(htpasswd -nbB "$user" "$password" 2>/dev/null | cut -d: -f2-) \
    || die "--basic-auth needs python3 with the crypt module or htpasswd (apache2-utils) to make a bcrypt hash"
  echo "$user:$hash" > "$STATE/htpasswd"
fi
SCHEME=http
if [ -n "$TLS" ]; then
  SCHEME=https
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=fluxop-testbed-registry-ca-$NAME" -keyout "$STATE/ca.key" -out "$STATE/ca.crt" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$STATE/tls.key" -out "$STATE/tls.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$STATE/tls.ext"
  openssl x509 -req -in "$STATE/tls.csr" -CA "$STATE/ca.crt" -CAkey "$STATE/ca.key" -CAcreateserial \
    -days 30 -extfile "$STATE/tls.ext" -out "$STATE/tls.crt" 2>/dev/null
fi
{
  echo "version: 0.1"
  echo "log: {level: warn, accesslog: {disabled: true}}"
  echo "storage:"
  echo "  filesystem: {rootdirectory: $STATE/data}"
  echo "  delete: {enabled: true}"
  echo "http:"
  echo "  addr: 127.0.0.1:$PORT"
  echo "  secret: $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  echo "  debug: {addr: 127.0.0.1:$DEBUG_PORT}"
  if [ -n "$TLS" ]; then
    echo "  tls: {certificate: $STATE/tls.crt, key: $STATE/tls.key}"
  fi
  if [ -n "$BASIC_AUTH" ]; then
    echo "auth:"
    echo "  htpasswd: {realm: fluxop-testbed, path: $STATE/htpasswd}"
  fi
} > "$STATE/config.yml"
start_daemon "$STATE" registry "$REGISTRY_BIN" serve "$STATE/config.yml"
# /v2/ answers 200, or 401 with auth on: either way the registry is serving.
registry_answers() {
  curl -s -o /dev/null -w '%{http_code}' ${TLS:+--cacert "$STATE/ca.crt"} "$SCHEME://127.0.0.1:$PORT/v2/" | grep -qE '^(200|401)$'
}
wait_for 30 "registry on :$PORT" registry_answers || { tail -n 20 "$STATE/logs/registry.log" >&2; exit 1; }
{
  echo "FLUXOP_REGISTRY=127.0.0.1:$PORT"
  echo "FLUXOP_REGISTRY_DATA=$STATE/data"
  [ -z "$TLS" ] || echo "FLUXOP_REGISTRY_CA=$STATE/ca.crt"
} > "$STATE/env"
log "registry $NAME serving on 127.0.0.1:$PORT (data in $STATE/data)"
echo "127.0.0.1:$PORT"
