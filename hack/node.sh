# Real nodes of the test bed: containerd, kubelet and kube-proxy in a network namespace of
# their own, pods on a CNI bridge inside it. Sourced by cluster-up.sh and cluster-down.sh.
# shellcheck shell=bash
#
# Network of the cluster that holds slot S (0-49, one per cluster with real nodes):
#   host bridge fxop<S>           172.30.S.1/24   the gateway: forwarders to 127.0.0.1 listen here
#   node i: netns fxop<S>-n<i>    172.30.S.(10+i) on a veth to the bridge
#           pods                  10.(100+S).i.0/24 on the bridge cni0 inside the netns
#   services                      10.96.0.0/16 (kube-proxy's rules inside each node netns)
# Nothing routes or masquerades towards outside addresses: the node netns have no default
# route, the host keeps ip_forward off, and CoreDNS serves the cluster domain only. The API
# server and registries stay on 127.0.0.1; socat forwards the gateway's ports to them, and
# the `kubernetes` Service's EndpointSlice points at the gateway.

NODE_ROOT_CGROUP_PREFIX=fluxop

# slot_allocate NAME: prints a free slot, taken atomically for cluster NAME.
slot_allocate() {
  local name=$1 s
  mkdir -p "$STATE_ROOT/slots"
  for s in $(seq 0 49); do
    local dir="$STATE_ROOT/slots/$s"
    if [ -d "$dir" ]; then
      # A slot whose cluster is gone is stale (a killed test run): take it back.
      local owner; owner=$(cat "$dir/owner" 2>/dev/null || true)
      [ -n "$owner" ] && [ -d "$STATE_ROOT/clusters/$owner" ] && continue
      rm -rf "$dir"
    fi
    if mkdir "$dir" 2>/dev/null; then
      echo "$name" > "$dir/owner"
      echo "$s"
      return 0
    fi
  done
  die "no free network slot for real nodes (50 clusters with real nodes are running?)"
}

slot_release() {
  local s=$1
  rm -rf "$STATE_ROOT/slots/$s"
}

gateway_of() { echo "172.30.$1.1"; }
node_ip_of() { echo "172.30.$1.$(( 10 + $2 ))"; }
pod_cidr_of() { echo "10.$(( 100 + $1 )).$2.0/24"; }
cluster_cidr_of() { echo "10.$(( 100 + $1 )).0.0/16"; }
bridge_of() { echo "fxop$1"; }
netns_of() { echo "fxop$1-n$2"; }

# net_up S: the host bridge with the gateway address.
net_up() {
  local s=$1 br; br=$(bridge_of "$s")
  ip link show "$br" >/dev/null 2>&1 && ip link del "$br"
  ip link add "$br" type bridge
  ip addr add "$(gateway_of "$s")/24" dev "$br"
  ip link set "$br" up
}

# forward STATE NAME PORT S: socat from the gateway's PORT to 127.0.0.1:PORT.
forward() {
  local state=$1 name=$2 port=$3 s=$4
  command -v socat >/dev/null || die "socat is needed to give real nodes a path to $name"
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
  [ ${#missing[@]} = 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "real nodes need root (network namespaces, mounts, cgroups); missing: ${missing[*]}"
  log "installing ${missing[*]} from Debian"
  # policy-rc.d 101 keeps the packages from starting services of their own.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >&2 \
    || { rm -f /usr/sbin/policy-rc.d; die "apt-get install ${missing[*]} failed"; }
  rm -f /usr/sbin/policy-rc.d
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
  local name=$1 root dir pid
  for root in $(cgroup_roots); do
    [ -d "$root/$name" ] || continue
    for _ in 1 2 3; do
      for pid in $(cat $(find "$root/$name" -name cgroup.procs 2>/dev/null) 2>/dev/null); do
        kill -KILL "$pid" 2>/dev/null || true
      done
      find "$root/$name" -depth -type d -exec rmdir {} \; 2>/dev/null || true
      [ -d "$root/$name" ] || break
      sleep 0.5
    done
    [ ! -d "$root/$name" ] || log "warning: could not remove cgroup $root/$name"
  done
}

# unmount_under DIR: unmounts every mount below DIR, deepest first.
unmount_under() {
  local dir=$1 m
  [ -n "$dir" ] || return 0
  for _ in 1 2 3; do
    local mounts
    mounts=$(awk -v d="$dir/" 'index($2, d) == 1 || $2 == substr(d, 1, length(d) - 1) { print $2 }' /proc/mounts | sort -r)
    [ -n "$mounts" ] || return 0
    for m in $mounts; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  done
}

# node_up STATE CLUSTER S I NODE_NAME API_PORT REGISTRIES...: starts real node I of the cluster.
node_up() {
  local state=$1 cluster=$2 s=$3 i=$4 node=$5 api_port=$6; shift 6
  local registries=("$@")
  local dir="$state/nodes/$i" ns ip gw br veth bin
  ns=$(netns_of "$s" "$i"); ip=$(node_ip_of "$s" "$i"); gw=$(gateway_of "$s"); br=$(bridge_of "$s")
  veth="fxop${s}v$i"
  bin="$NODE_BIN"
  mkdir -p "$dir"/{pki,cni,certs.d,kubelet,containerd,logs,pids,run}
  echo "$ns" > "$dir/netns"
  echo "$NODE_ROOT_CGROUP_PREFIX-$cluster-$i" > "$dir/cgroup"

  # --- network namespace, wired to the host bridge; no default route.
  ip netns add "$ns"
  ip link add "$veth" type veth peer name eth0 netns "$ns"
  ip link set "$veth" master "$br" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
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

  # --- containerd, with its own root, state, socket and runc root.
  local sock="$dir/run/containerd.sock" cni_bin; cni_bin=$(cni_bin_dir)
  cat > "$dir/containerd.toml" <<TOML
version = 2
root = "$dir/containerd/root"
state = "$dir/run/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
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
        Root = "$dir/run/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni_bin"
    conf_dir = "$dir/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
TOML
  # Registries are plain HTTP on loopback; the node reaches them through the gateway.
  local registry port
  for registry in "${registries[@]}"; do
    port=${registry##*:}
    for name in "127.0.0.1:$port" "$gw:$port"; do
      mkdir -p "$dir/certs.d/$name"
      printf 'server = "http://%s:%s"\n\n[host."http://%s:%s"]\n  capabilities = ["pull", "resolve"]\n' \
        "$gw" "$port" "$gw" "$port" > "$dir/certs.d/$name/hosts.toml"
    done
  done
  cat > "$dir/cni/10-bridge.conflist" <<CNI
{
  "cniVersion": "0.4.0",
  "name": "fluxop-testbed",
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
        "dataDir": "$dir/run/cni-ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI
  node_cgroup_up "$(cat "$dir/cgroup")"
  # nsenter joins only the network namespace: kubelet, containerd and runc must share the
  # host's mount namespace, or volumes kubelet mounts would not reach the containers.
  start_daemon "$dir" containerd nsenter --net="/run/netns/$ns" containerd --config "$dir/containerd.toml"
  wait_for 30 "containerd of node $node" ctr --address "$sock" version \
    || { tail -n 20 "$dir/logs/containerd.log" >&2; return 1; }
  # The node's own images (sandbox, CoreDNS) are imported, never pulled.
  local image
  for image in "$NODE_IMAGES"/*; do
    tar -C "$image" -cf "$dir/run/image.tar" . \
      && ctr --address "$sock" -n k8s.io images import --no-unpack=false "$dir/run/image.tar" >/dev/null \
      || { log "importing $(basename "$image") into node $node failed"; return 1; }
  done
  rm -f "$dir/run/image.tar"

  # --- kubelet
  printf '' > "$dir/resolv.conf"
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
cgroupRoot: /$(cat "$dir/cgroup")
failSwapOn: false
clusterDNS: [10.96.0.10]
clusterDomain: cluster.local
resolvConf: $dir/resolv.conf
staticPodPath: ""
serializeImagePulls: false
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
enforceNodeAllocatable: [pods]
nodeStatusReportFrequency: 10s
YAML
  start_daemon "$dir" kubelet nsenter --net="/run/netns/$ns" "$bin/kubelet" \
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
  start_daemon "$dir" kube-proxy nsenter --net="/run/netns/$ns" "$bin/kube-proxy" --config "$dir/kube-proxy.yaml"
}

# node_down DIR: stops a real node and removes every trace of it (processes, containers,
# mounts, network namespace, cgroups), also when it only half started.
node_down() {
  local dir=$1 ns cgroup sock
  [ -d "$dir" ] || return 0
  ns=$(cat "$dir/netns" 2>/dev/null || true)
  cgroup=$(cat "$dir/cgroup" 2>/dev/null || true)
  sock="$dir/run/containerd.sock"
  # kubelet first (it would restart containers), then every container, shim and containerd.
  [ -f "$dir/pids/kubelet" ] && kill -KILL "$(cat "$dir/pids/kubelet")" 2>/dev/null
  [ -f "$dir/pids/kube-proxy" ] && kill -KILL "$(cat "$dir/pids/kube-proxy")" 2>/dev/null
  [ -n "$cgroup" ] && node_cgroup_down "$cgroup"
  # Shims listen on /run/containerd/s/<sha256 of "<containerd address>/<namespace>/<id>">
  # (containerd's fixed socket root): those of this containerd go with it.
  local pid args id ns_name shim_sockets=()
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null); do
    read -r -a args < <(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || continue
    id="" ns_name=""
    for ((k = 0; k < ${#args[@]}; k++)); do
      case "${args[k]}" in -id) id=${args[k + 1]:-} ;; -namespace) ns_name=${args[k + 1]:-} ;; esac
    done
    [ -n "$id" ] && shim_sockets+=("/run/containerd/s/$(printf '%s' "$sock/$ns_name/$id" | sha256sum | cut -d' ' -f1)")
    kill -KILL "$pid" 2>/dev/null || true
  done
  stop_daemons "$dir"
  rm -f "${shim_sockets[@]}"
  unmount_under "$dir"
  if [ -n "$ns" ] && ip netns list | grep -qw "$ns"; then
    ip netns del "$ns" 2>/dev/null || true
  fi
  [ -n "$cgroup" ] && node_cgroup_down "$cgroup"
  orphans_down
}

# orphans_down: pod network namespaces mounted in /run/netns that are nobody's any more:
# no link but loopback (their veth died with a node's namespace).
orphans_down() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ { print $1 }'); do
    [ "$(ip -n "$ns" -o link show 2>/dev/null | grep -vc ': lo:')" = 0 ] && ip netns del "$ns" 2>/dev/null
  done
  return 0
}

# net_down S: the host bridge (and with it the routes through it).
net_down() {
  local s=$1 br; br=$(bridge_of "$s")
  ip link show "$br" >/dev/null 2>&1 && ip link del "$br"
  slot_release "$s"
}
