# Real nodes of the test bed: containerd, kubelet and kube-proxy in a network namespace of
# their own, pods on a CNI bridge inside it. Sourced by cluster-up.sh and cluster-down.sh.
# shellcheck shell=bash
#
# Network of the cluster that holds slot S (0-49, one per cluster with real nodes, taken
# host-wide, since bridges, namespaces and cgroups are):
#   host bridge fxop<S>           172.30.S.1/24   the gateway: forwarders to 127.0.0.1 listen here
#   node i: netns fxop<S>-n<i>    172.30.S.(10+i) on a veth to the bridge
#           pods                  10.(100+S).i.0/24 on the bridge cni0 inside the netns
#   services                      10.96.0.0/16 (kube-proxy's rules inside each node netns)
# Nothing routes or masquerades towards outside addresses: the node netns have no default
# route, the bridge does not forward, and CoreDNS serves the cluster domain only. The API
# server and registries stay on 127.0.0.1; socat forwards the gateway's ports to them, and
# the `kubernetes` Service's EndpointSlice points at the gateway.
#
# Host-wide things a node touches, and how they are put back: the kubelet sets a few kernel
# sysctls at start (vm.overcommit_memory, kernel.panic, kernel.panic_on_oops, ...): their
# values from before the first node are saved and restored as soon as each kubelet is up,
# and again when it stops. Pod log links in /var/log/containers, CNI result files in
# /var/lib/cni/results and the kubelet's device-plugin socket are removed with the node (or
# with the last node). Sockets, containerd's state and pod network namespaces live under
# /run/fluxop-testbed/s<S>-n<i>, logs and images under the cluster's state directory.

RUN_ROOT=/run/fluxop-testbed
# Kernel settings the kubelet changes (protectKernelDefaults: false).
HOST_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

# slot_allocate STATE: prints a free slot, taken for the cluster whose state dir is STATE. A
# slot whose owner's state dir is gone (a killed run) is taken back.
slot_allocate() {
  local owner=$1 s dir
  mkdir -p "$RUN_ROOT/slots"
  exec {lock}>"$RUN_ROOT/slots/.lock"
  flock "$lock"
  for s in $(seq 0 49); do
    dir="$RUN_ROOT/slots/$s"
    if [ -f "$dir" ]; then
      [ -d "$(cat "$dir")" ] && continue
      log "taking back slot $s of a cluster that is gone ($(cat "$dir"))"
      slot_leftovers_down "$s"
    fi
    echo "$owner" > "$dir"
    exec {lock}>&-
    echo "$s"
    return 0
  done
  exec {lock}>&-
  die "no free network slot for real nodes (50 clusters with real nodes are running?)"
}

# slot_release S STATE: frees slot S if STATE holds it.
slot_release() {
  local s=$1 owner=$2
  [ "$(cat "$RUN_ROOT/slots/$s" 2>/dev/null)" = "$owner" ] && rm -f "$RUN_ROOT/slots/$s"
  return 0
}

gateway_of() { echo "172.30.$1.1"; }
node_ip_of() { echo "172.30.$1.$(( 10 + $2 ))"; }
pod_cidr_of() { echo "10.$(( 100 + $1 )).$2.0/24"; }
cluster_cidr_of() { echo "10.$(( 100 + $1 )).0.0/16"; }
bridge_of() { echo "fxop$1"; }
netns_of() { echo "fxop$1-n$2"; }
run_dir_of() { echo "$RUN_ROOT/s$1-n$2"; }
cgroup_of() { echo "fluxop-s$1-n$2"; }

# net_up S: the host bridge with the gateway address; it forwards nothing.
net_up() {
  local s=$1 br; br=$(bridge_of "$s")
  ip link show "$br" >/dev/null 2>&1 && die "bridge $br exists already: is another test bed using slot $s?"
  ip link add "$br" type bridge
  sysctl -qw "net.ipv4.conf.$br.forwarding=0" "net.ipv6.conf.$br.disable_ipv6=1"
  ip addr add "$(gateway_of "$s")/24" dev "$br"
  ip link set "$br" up
}

# forward STATE NAME PORT S: socat from the gateway's PORT to 127.0.0.1:PORT.
forward() {
  local state=$1 name=$2 port=$3 s=$4
  start_daemon "$state" "forward-$name" socat \
    "TCP-LISTEN:$port,bind=$(gateway_of "$s"),reuseaddr,fork" "TCP:127.0.0.1:$port"
}

# Installs what a real node needs from Debian when it is missing.
node_packages() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v conntrack >/dev/null || missing+=(conntrack)
  command -v socat >/dev/null || missing+=(socat)
  command -v nsenter >/dev/null || missing+=(util-linux)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v sysctl >/dev/null && command -v pgrep >/dev/null || missing+=(procps)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} = 0 ] && return 0
  apt_install "${missing[@]}"
}

cni_bin_dir() { if [ -x /usr/lib/cni/bridge ]; then echo /usr/lib/cni; else echo /opt/cni/bin; fi; }

# The v1 hierarchies (and the unified one, in hybrid mode) a node's cgroups live in.
cgroup_roots() {
  awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/mounts | grep '^/sys/fs/cgroup' || true
}

# node_cgroup_up NAME: creates /NAME in every hierarchy, as kubelet's cgroupRoot must exist.
node_cgroup_up() {
  local name=$1 root
  for root in $(cgroup_roots); do
    mkdir -p "$root/$name"
    if [ -f "$root/cpuset.cpus" ] && [ -f "$root/$name/cpuset.cpus" ]; then
      cat "$root/cpuset.cpus" > "$root/$name/cpuset.cpus"
      cat "$root/cpuset.mems" > "$root/$name/cpuset.mems"
    fi
  done
}

# node_cgroup_down NAME: kills what is left in /NAME and removes it, deepest first.
node_cgroup_down() {
  local name=$1 root pid
  for root in $(cgroup_roots); do
    [ -d "$root/$name" ] || continue
    for _ in 1 2 3 4 5 6; do
      for pid in $(find "$root/$name" -name cgroup.procs -exec cat {} + 2>/dev/null); do
        kill -KILL "$pid" 2>/dev/null || true
      done
      find "$root/$name" -depth -type d -exec rmdir {} \; 2>/dev/null || true
      [ -d "$root/$name" ] || break
      sleep 0.5
    done
    if [ -d "$root/$name" ]; then log "warning: could not remove cgroup $root/$name"; fi
  done
}

# mounts_under DIR: mount points at or below DIR, deepest first (from mountinfo, with its
# octal escapes decoded).
mounts_under() {
  local dir; dir=$(realpath -m "$1")
  awk '{ print $5 }' /proc/self/mountinfo | while IFS= read -r m; do
    m=$(printf '%b' "${m//\\/\\0}")
    case "$m" in "$dir"|"$dir"/*) echo "$m" ;; esac
  done | sort -r
}

# unmount_under DIR: unmounts everything at or below DIR; fails if something stays.
unmount_under() {
  local dir=$1 m
  for _ in 1 2 3; do
    local mounts; mounts=$(mounts_under "$dir")
    [ -n "$mounts" ] || return 0
    while IFS= read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done <<<"$mounts"
  done
  [ -z "$(mounts_under "$dir")" ] || { log "error: mounts remain under $dir"; return 1; }
}

# The kubelet's changes to host-wide sysctls, undone: the values from before the first
# real node of this host are kept in RUN_ROOT and written back.
host_sysctls_save() {
  mkdir -p "$RUN_ROOT"
  [ -f "$RUN_ROOT/host-sysctls" ] || sysctl "${HOST_SYSCTLS[@]}" 2>/dev/null | sed 's/ = /=/' > "$RUN_ROOT/host-sysctls"
}
host_sysctls_restore() {
  [ -f "$RUN_ROOT/host-sysctls" ] || return 0
  local setting
  while IFS= read -r setting; do sysctl -qw "$setting" 2>/dev/null || true; done < "$RUN_ROOT/host-sysctls"
}

# node_up STATE S I NODE_NAME API_PORT REGISTRIES...: starts real node I of the cluster.
# Called plainly (not in a condition), so `set -e` stops at the first failing step.
node_up() {
  local state=$1 s=$2 i=$3 node=$4 api_port=$5; shift 5
  local registries=("$@")
  local dir="$state/nodes/$i" run ns ip gw br veth bin cgroup
  run=$(run_dir_of "$s" "$i"); ns=$(netns_of "$s" "$i"); ip=$(node_ip_of "$s" "$i")
  gw=$(gateway_of "$s"); br=$(bridge_of "$s"); cgroup=$(cgroup_of "$s" "$i")
  veth="fxop${s}v$i"
  bin="$NODE_BIN"
  mkdir -p "$dir"/{pki,cni,certs.d,kubelet,containerd,logs,pids,pod-logs} "$run"
  echo "$ns" > "$dir/netns"
  echo "$cgroup" > "$dir/cgroup"
  echo "$run" > "$dir/run"

  # --- network namespace, wired to the host bridge; no default route.
  ip netns add "$ns"
  ip link add "$veth" type veth peer name eth0 netns "$ns"
  ip link set "$veth" master "$br" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  # kube-proxy's rules must see bridged pod traffic (a Service whose backend is on the same
  # node); the module may not be loaded on a fresh machine.
  [ -e /proc/sys/net/bridge ] || modprobe br_netfilter 2>/dev/null || true
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
  # The host reaches this node's pods (answers of the forwarders) through the node.
  ip route add "$(pod_cidr_of "$s" "$i")" via "$ip" dev "$br"
  local other
  for other in $(seq 0 $(( REAL_NODES - 1 ))); do
    [ "$other" = "$i" ] && continue
    ip -n "$ns" route add "$(pod_cidr_of "$s" "$other")" via "$(node_ip_of "$s" "$other")" dev eth0
  done

  # --- credentials: kubelet (client and serving) and kube-proxy, from the cluster CA.
  issue "nodes/$i/kubelet" "/O=system:nodes/CN=system:node:$node" "extendedKeyUsage=clientAuth"
  issue "nodes/$i/kubelet-serving" "/CN=$node" "subjectAltName=IP:$ip,DNS:$node
extendedKeyUsage=serverAuth"
  issue "nodes/$i/kube-proxy" "/CN=system:kube-proxy" "extendedKeyUsage=clientAuth"
  kubeconfig "$dir/kubelet.kubeconfig" "nodes/$i/kubelet" "https://$gw:$api_port"
  kubeconfig "$dir/kube-proxy.kubeconfig" "nodes/$i/kube-proxy" "https://$gw:$api_port"

  # --- containerd, with its own root, state, sockets and runc root.
  local sock="$run/containerd.sock" cni_bin; cni_bin=$(cni_bin_dir)
  cat > "$dir/containerd.toml" <<TOML
version = 2
root = "$dir/containerd/root"
state = "$run/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing", "io.containerd.internal.v1.opt"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # The sandbox has no CAP_SYS_RESOURCE: without this, runc fails every sandbox.
  restrict_oom_score_adj = true
  # Pod network namespaces are mounted under the state dir, so they go with the node.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$run/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni_bin"
    conf_dir = "$dir/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
TOML
  # Registries are plain HTTP on loopback; the node reaches them through the gateway.
  local registry port name
  for registry in "${registries[@]}"; do
    port=${registry##*:}
    for name in "127.0.0.1:$port" "$gw:$port"; do
      mkdir -p "$dir/certs.d/$name"
      printf 'server = "http://%s:%s"\n\n[host."http://%s:%s"]\n  capabilities = ["pull", "resolve"]\n' \
        "$gw" "$port" "$gw" "$port" > "$dir/certs.d/$name/hosts.toml"
    done
  done
  # The network name prefixes containerd's CNI result files in /var/lib/cni/results.
  cat > "$dir/cni/10-bridge.conflist" <<CNI
{
  "cniVersion": "0.4.0",
  "name": "$cgroup",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$(pod_cidr_of "$s" "$i")"}]],
        "routes": [{"dst": "$(cluster_cidr_of "$s")"}, {"dst": "10.96.0.0/16"}, {"dst": "172.30.$s.0/24"}],
        "dataDir": "$run/cni-ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI
  node_cgroup_up "$cgroup"
  # The node's daemons (and the shims containerd starts) live in a cgroup of their own, and
  # its pods in another (the kubelet's cgroupRoot): the node is stopped by killing both.
  node_cgroup_up "$cgroup-system"
  local in_node=("$REPO_ROOT/hack/in-cgroup.sh" "$cgroup-system" nsenter --net="/run/netns/$ns")
  # nsenter joins only the network namespace: kubelet, containerd and runc must share the
  # host's mount namespace, or volumes kubelet mounts would not reach the containers.
  start_daemon "$dir" containerd "${in_node[@]}" containerd --config "$dir/containerd.toml"
  wait_for 30 "containerd of node $node" ctr --address "$sock" version \
    || { tail -n 20 "$dir/logs/containerd.log" >&2; return 1; }
  # The node's own images (sandbox, CoreDNS) are imported, never pulled.
  local image
  for image in "$NODE_IMAGES"/*; do
    tar -C "$image" -cf "$run/image.tar" .
    ctr --address "$sock" -n k8s.io images import "$run/image.tar" >/dev/null
  done
  rm -f "$run/image.tar"

  # --- kubelet
  : > "$dir/resolv.conf"
  cat > "$dir/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/nodes/$i/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/nodes/$i/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$sock
cgroupDriver: cgroupfs
cgroupRoot: /$cgroup
failSwapOn: false
clusterDNS: [10.96.0.10]
clusterDomain: cluster.local
resolvConf: $dir/resolv.conf
podLogsDir: $dir/pod-logs
staticPodPath: ""
serializeImagePulls: false
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
enforceNodeAllocatable: [pods]
nodeStatusReportFrequency: 10s
YAML
  host_sysctls_save
  start_daemon "$dir" kubelet "${in_node[@]}" "$bin/kubelet" \
    --config "$dir/kubelet.yaml" --kubeconfig "$dir/kubelet.kubeconfig" \
    --root-dir "$dir/kubelet" --cert-dir "$dir/pki" \
    --hostname-override "$node" --node-ip "$ip" \
    --node-labels "type=real,node.fluxop.io/real=true"

  # --- kube-proxy (iptables mode), only inside the node's netns.
  cat > "$dir/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $dir/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $(cluster_cidr_of "$s")
hostnameOverride: $node
bindAddress: $ip
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
nodePortAddresses: [$ip/32]
iptables: {localhostNodePorts: false, masqueradeAll: false}
# Host-wide conntrack sysctls are not ours to change.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
  start_daemon "$dir" kube-proxy "${in_node[@]}" "$bin/kube-proxy" --config "$dir/kube-proxy.yaml"
}

# node_down DIR: stops a real node and removes every trace of it (processes, containers,
# mounts, network namespace, cgroups, files outside its directories), also when it only
# half started. Never fails half-way: each step tolerates what an earlier failure left.
node_down() {
  local dir=$1 ns cgroup run sock
  [ -d "$dir" ] || return 0
  ns=$(cat "$dir/netns" 2>/dev/null || true)
  cgroup=$(cat "$dir/cgroup" 2>/dev/null || true)
  run=$(cat "$dir/run" 2>/dev/null || true)
  sock="$run/containerd.sock"
  # Shims listen on /run/containerd/s/<sha256 of "<containerd address>/<namespace>/<id>">
  # (containerd's fixed socket root): those of this containerd go with it.
  local pid id ns_name k args=() shim_sockets=()
  if [ -n "$run" ]; then
    for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null || true); do
      mapfile -d '' -t args < "/proc/$pid/cmdline" 2>/dev/null || continue
      id="" ns_name=""
      for ((k = 0; k < ${#args[@]}; k++)); do
        case "${args[k]}" in -id) id=${args[k + 1]:-} ;; -namespace) ns_name=${args[k + 1]:-} ;; esac
      done
      if [ -n "$id" ]; then
        shim_sockets+=("/run/containerd/s/$(printf '%s' "$sock/$ns_name/$id" | sha256sum | cut -d' ' -f1)")
      fi
    done
  fi
  # The daemons first (the kubelet would restart containers, containerd start shims), then
  # everything left in the node's cgroups: shims, containers.
  stop_daemons "$dir"
  if [ -n "$cgroup" ]; then
    node_cgroup_down "$cgroup-system"
    node_cgroup_down "$cgroup"
  fi
  if [ ${#shim_sockets[@]} -gt 0 ]; then rm -f "${shim_sockets[@]}"; fi
  # Files the kubelet and CNI keep in fixed host paths: pod log links into this node, and
  # the CNI results of this node's network (named after its cgroup) and sandboxes.
  find /var/log/containers -maxdepth 1 -lname "$dir/*" -delete 2>/dev/null || true
  if [ -n "$cgroup" ] && [ -d /var/lib/cni/results ]; then
    rm -f /var/lib/cni/results/"$cgroup"-*
    local sandbox
    for sandbox in "$dir"/containerd/root/io.containerd.grpc.v1.cri/sandboxes/*; do
      [ -e "$sandbox" ] && rm -f /var/lib/cni/results/*-"$(basename "$sandbox")"-*
    done
  fi
  local unmounted=0
  if [ -n "$run" ]; then unmount_under "$run" || unmounted=1; fi
  unmount_under "$dir" || unmounted=1
  if [ -n "$ns" ] && ip netns list | grep -qw "$ns"; then ip netns del "$ns" 2>/dev/null || true; fi
  if [ -n "$run" ] && [ $unmounted = 0 ]; then rm -rf --one-file-system "$run"; fi
  host_sysctls_restore
  return $unmounted
}

# net_down S STATE: the host bridge (and with it the routes through it), then the slot.
# When no real node is left on this host, what the kubelets left in fixed host paths goes
# too.
net_down() {
  local s=$1 state=$2 br; br=$(bridge_of "$s")
  [ "$(cat "$RUN_ROOT/slots/$s" 2>/dev/null)" = "$state" ] || return 0
  if ip link show "$br" >/dev/null 2>&1; then ip link del "$br" || true; fi
  slot_release "$s" "$state"
  if [ -z "$(ls "$RUN_ROOT/slots" 2>/dev/null)" ]; then
    host_sysctls_restore
    rm -f "$RUN_ROOT/host-sysctls" /var/lib/kubelet/device-plugins/kubelet.sock
    rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet /var/log/containers /var/log/pods 2>/dev/null || true
  fi
  return 0
}

# slot_leftovers_down S: what a killed run left of slot S (its state dir is gone): node
# namespaces, the bridge, cgroups and runtime dirs. Processes of a killed run are in those
# cgroups or hold those namespaces; they are killed with them.
slot_leftovers_down() {
  local s=$1 ns i
  for ns in $(ip netns list 2>/dev/null | awk -v p="fxop$s-n" 'index($1, p) == 1 { print $1 }'); do
    i=${ns#fxop"$s"-n}
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    node_cgroup_down "$(cgroup_of "$s" "$i")-system"
    node_cgroup_down "$(cgroup_of "$s" "$i")"
    unmount_under "$(run_dir_of "$s" "$i")" && rm -rf --one-file-system "$(run_dir_of "$s" "$i")"
    ip netns del "$ns" 2>/dev/null || true
  done
  if ip link show "$(bridge_of "$s")" >/dev/null 2>&1; then ip link del "$(bridge_of "$s")" || true; fi
}
