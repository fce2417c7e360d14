#!/usr/bin/env bash
# in-cgroup.sh CGROUP CMD...: runs CMD in /CGROUP of every cgroup hierarchy (which must
# exist), so that CMD and everything it starts can be found, and killed, by cgroup.
set -euo pipefail
cgroup=$1
shift
for root in $(awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/mounts | grep '^/sys/fs/cgroup' || true); do
  if [ -d "$root/$cgroup" ]; then echo $$ > "$root/$cgroup/cgroup.procs"; fi
done
exec "$@"
