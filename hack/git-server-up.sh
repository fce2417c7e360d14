#!/usr/bin/env bash
# Serves throwaway Git repositories over smart HTTP on 127.0.0.1 at a port chosen at run
# time: Debian's lighttpd in front of git's own `git http-backend` (CGI), so clients speak
# the protocol of any real Git host (clone, fetch, push).
#
#   hack/git-server-up.sh [NAME] [--basic-auth USER:PASSWORD]
#
#   --basic-auth  require these credentials for every request (read and push)
#
# Repositories live in STATE/git-servers/NAME/repos/<repo>.git and are served at
# http://127.0.0.1:PORT/<repo>.git; `hack/git-server-up.sh NAME --create REPO` (also on a
# running server) makes an empty bare repository that accepts pushes. Installs the packages
# when missing; lighttpd's own service (which listens on every interface) never runs.
# Writes STATE/git-servers/NAME/env (FLUXOP_GIT_SERVER=127.0.0.1:PORT) and prints the address.
# Stop: hack/git-server-down.sh NAME. Pods reach it through the gateway of a test cluster
# started with `hack/cluster-up.sh ... --expose 127.0.0.1:PORT`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NAME="${1:-default}"
shift || true
valid_name "$NAME"
BASIC_AUTH="" CREATE=()
while [ $# -gt 0 ]; do
  case "$1" in
    --basic-auth) BASIC_AUTH="${2:?--basic-auth needs USER:PASSWORD}"; shift 2 ;;
    --create) CREATE+=("${2:?--create needs a repository name}"); shift 2 ;;
    *) die "unknown option $1 (see the header of $0)" ;;
  esac
done
STATE="$STATE_ROOT/git-servers/$NAME"
BACKEND=/usr/lib/git-core/git-http-backend

create_repos() {
  local repo
  for repo in "${CREATE[@]}"; do
    [[ "$repo" =~ ^[a-z0-9][a-z0-9._-]{0,62}$ ]] || die "invalid repository name '$repo'"
    [ -d "$STATE/repos/$repo.git" ] && continue
    git init -q --bare -b main "$STATE/repos/$repo.git"
    # Pushes over HTTP are accepted without a REMOTE_USER (the server may run without auth).
    git -C "$STATE/repos/$repo.git" config http.receivepack true
    log "repository $repo.git created"
  done
}

command -v lighttpd >/dev/null && [ -x "$BACKEND" ] || apt_install lighttpd git
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now lighttpd >/dev/null 2>&1 || true
fi
pkill -f "lighttpd -D -f /etc/lighttpd/lighttpd.conf" 2>/dev/null || true

if [ -f "$STATE/env" ] && daemon_alive "$STATE" lighttpd; then
  create_repos
  log "git server $NAME is already running"
  sed -n 's/^FLUXOP_GIT_SERVER=//p' "$STATE/env"
  exit 0
fi
stop_daemons "$STATE"
rm -rf "$STATE"
mkdir -p "$STATE/repos" "$STATE/www" "$STATE/logs"
read -r PORT <<<"$(free_ports 1)"
{
  echo "server.modules = (\"mod_alias\", \"mod_setenv\", \"mod_cgi\", \"mod_auth\", \"mod_authn_file\")"
  echo "server.bind = \"127.0.0.1\""
  echo "server.port = $PORT"
  echo "server.document-root = \"$STATE/www\""
  echo "server.errorlog = \"$STATE/logs/lighttpd-error.log\""
  echo "server.pid-file = \"$STATE/lighttpd.pid\""
  # Every path goes to git's backend, which serves GIT_PROJECT_ROOT and nothing else.
  echo "alias.url = (\"/\" => \"$BACKEND/\")"
  echo "cgi.assign = (\"\" => \"\")"
  echo "setenv.add-environment = (\"GIT_PROJECT_ROOT\" => \"$STATE/repos\", \"GIT_HTTP_EXPORT_ALL\" => \"1\")"
  if [ -n "$BASIC_AUTH" ]; then
    echo "auth.backend = \"plain\""
    echo "auth.backend.plain.userfile = \"$STATE/users\""
    echo "auth.require = (\"/\" => (\"method\" => \"basic\", \"realm\" => \"fluxop-testbed\", \"require\" => \"valid-user\"))"
  fi
} > "$STATE/lighttpd.conf"
if [ -n "$BASIC_AUTH" ]; then
  (umask 077; echo "$BASIC_AUTH" > "$STATE/users")
fi
lighttpd -tt -f "$STATE/lighttpd.conf" >/dev/null || die "lighttpd refuses $STATE/lighttpd.conf"
start_daemon "$STATE" lighttpd lighttpd -D -f "$STATE/lighttpd.conf"
# git's backend answers 404 for a repository that does not exist (401 with auth on).
server_answers() {
  curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/none.git/info/refs?service=git-upload-pack" | grep -qE '^(404|401)$'
}
wait_for 30 "git server on :$PORT" server_answers || { tail -n 20 "$STATE/logs/"*.log >&2; exit 1; }
create_repos
echo "FLUXOP_GIT_SERVER=127.0.0.1:$PORT" > "$STATE/env"
log "git server $NAME serving $STATE/repos on http://127.0.0.1:$PORT/"
echo "127.0.0.1:$PORT"
