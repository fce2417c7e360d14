#!/usr/bin/env bash
# Starts a local Kubernetes cluster on 127.0.0.1: etcd, kube-apiserver (RBAC and the
# default admission chain on), kube-controller-manager, kube-scheduler, kwok with a few
# fake nodes that run Pods as Running/Ready without running anything, and optionally real
# nodes that run containers. Every port is chosen at run time, so several clusters can run
# side by side.
#
#   hack/cluster-up.sh [NAME] [NODES] [--real-nodes N] [--registry 127.0.0.1:PORT]...
#                      [--expose 127.0.0.1:PORT]... [--audit] [--client NAME]...
#       NAME          default: default
#       NODES         kwok nodes (label type=kwok), default 3, or 0 with --real-nodes
#       --real-nodes  N real nodes (label type=real): containerd, kubelet and kube-proxy in
#                     a network namespace each, pods on a CNI bridge, CoreDNS as a pod;
#                     needs root. Next to real nodes, kwok nodes carry the taint
#                     kwok.x-k8s.io/node=fake:NoSchedule, so only pods that tolerate it
#                     land on them. See hack/node.sh for the network.
#       --registry    a registry on loopback that pods and the nodes' containerd reach at
#                     GATEWAY:PORT (and containerd also under its loopback name)
#       --expose      another server on loopback (a Git server) that pods reach at GATEWAY:PORT
#       --audit       the API server logs every request as it arrives (audit stage
#                     RequestReceived, level Metadata: user, user agent, verb, URI, object)
#                     to STATE/logs/audit.log, one JSON line each
#       --client      another admin kubeconfig, STATE/clients/NAME.kubeconfig, with a client
#                     certificate of its own (user NAME, group system:masters), so the
#                     audit log tells that client's requests apart
#
# Writes STATE/clusters/NAME/kubeconfig and STATE/clusters/NAME/env (KUBECONFIG, API
# server URL, ports; FLUXOP_CLUSTER_GATEWAY with real nodes) and prints the kubeconfig
# path. Stop it with hack/cluster-down.sh NAME: that leaves nothing behind.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/node.sh"

NAME=default NODES="" REAL_NODES=0 REGISTRIES=() EXPOSED=() AUDIT=0 CLIENTS=()
positional=()
while [ $# -gt 0 ]; do
  case "$1" in
    --real-nodes) REAL_NODES="${2:?--real-nodes needs a number}"; shift 2 ;;
    --registry) REGISTRIES+=("${2:?--registry needs HOST:PORT}"); shift 2 ;;
    --expose) EXPOSED+=("${2:?--expose needs HOST:PORT}"); shift 2 ;;
    --audit) AUDIT=1; shift ;;
    --client) CLIENTS+=("${2:?--client needs a NAME}"); shift 2 ;;
    -*) die "unknown option $1 (see the header of $0)" ;;
    *) positional+=("$1"); shift ;;
  esac
done
NAME="${positional[0]:-default}"
NODES="${positional[1]:-}"
valid_name "$NAME"
for client in "${CLIENTS[@]}"; do valid_name "$client"; done
[ -n "$NODES" ] || { if [ "$REAL_NODES" -gt 0 ]; then NODES=0; else NODES=3; fi; }
STATE="$STATE_ROOT/clusters/$NAME"
BIN="$("$REPO_ROOT/hack/testbed-build.sh" | tail -n 1)"
STAGES="$(dirname "$BIN")/stages"
if [ "$REAL_NODES" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "--real-nodes needs root: network namespaces, mounts and cgroups"
  node_packages
  NODE_BIN="$("$REPO_ROOT/hack/testbed-build.sh" node | tail -n 1)"
  NODE_IMAGES="$(dirname "$NODE_BIN")/images"
fi

if [ -f "$STATE/env" ] && daemon_alive "$STATE" kube-apiserver; then
  log "cluster $NAME is already running"
  echo "$STATE/kubeconfig"
  exit 0
fi
"$REPO_ROOT/hack/cluster-down.sh" "$NAME" >/dev/null || die "could not stop the earlier cluster $NAME"
# Held while starting, so `cluster-down.sh --stale` leaves a cluster alone that is not up yet.
mkdir -p "$STATE_ROOT/clusters"
exec {starting}>"$STATE_ROOT/clusters/.$NAME.lock"
flock -n "$starting" || die "cluster $NAME is being started or stopped by another process"
mkdir -p "$STATE/pki" "$STATE/etcd" "$STATE/logs"
PKI="$STATE/pki"
# A failed or interrupted start leaves nothing running; its logs are kept in
# $STATE_ROOT/failed/NAME for a look.
started=""
on_exit() {
  [ -n "$started" ] && return 0
  rm -rf "$STATE_ROOT/failed/$NAME" && mkdir -p "$STATE_ROOT/failed/$NAME"
  cp -r "$STATE/logs" "$STATE_ROOT/failed/$NAME/" 2>/dev/null || true
  for node in "$STATE"/nodes/*; do
    [ -d "$node/logs" ] && cp -r "$node/logs" "$STATE_ROOT/failed/$NAME/node-$(basename "$node")"
  done
  flock -u "$starting"
  "$REPO_ROOT/hack/cluster-down.sh" "$NAME" >/dev/null 2>&1 || true
  log "cluster $NAME did not start; its logs are in $STATE_ROOT/failed/$NAME"
}
trap on_exit EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
GATEWAY=""
if [ "$REAL_NODES" -gt 0 ]; then
  SLOT=$(slot_allocate "$STATE")
  echo "$SLOT" > "$STATE/slot"
  GATEWAY=$(gateway_of "$SLOT")
fi

read -r ETCD_PORT ETCD_PEER_PORT API_PORT KCM_PORT SCHED_PORT KWOK_PORT <<<"$(free_ports 6)"

# --- PKI: one CA for serving and client certificates, an ECDSA key for service accounts.
ossl() { openssl "$@" 2>/dev/null; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
  -subj "/CN=fluxop-testbed-ca-$NAME" -keyout "$PKI/ca.key" -out "$PKI/ca.crt"
ossl ecparam -name prime256v1 -genkey -noout -out "$PKI/sa.key"
ossl ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"
# issue NAME SUBJECT EXTENSIONS
issue() {
  mkdir -p "$(dirname "$PKI/$1")"
  ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$2" \
    -keyout "$PKI/$1.key" -out "$PKI/$1.csr"
  printf '%s\n' "$3" > "$PKI/$1.ext"
  ossl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -extfile "$PKI/$1.ext" -out "$PKI/$1.crt"
}
issue apiserver "/CN=kube-apiserver" \
  "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,${GATEWAY:+IP:$GATEWAY,}DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth"
issue admin "/O=system:masters/CN=fluxop-testbed-admin" "extendedKeyUsage=clientAuth"
issue controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth"
issue scheduler "/CN=system:kube-scheduler" "extendedKeyUsage=clientAuth"
# How the API server authenticates to kubelets (logs, exec, port-forward).
issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth"

SERVER="https://127.0.0.1:$API_PORT"
# kubeconfig FILE USER [SERVER]: a kubeconfig with embedded certificates, so it can be
# copied anywhere.
kubeconfig() {
  b64() { base64 -w0 < "$1"; }
  cat > "$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: fluxop-$NAME
  cluster:
    server: ${3:-$SERVER}
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: ${2##*/}
  user:
    client-certificate-data: $(b64 "$PKI/$2.crt")
    client-key-data: $(b64 "$PKI/$2.key")
contexts:
- name: fluxop-$NAME
  context: {cluster: fluxop-$NAME, user: ${2##*/}}
current-context: fluxop-$NAME
KC
}
kubeconfig "$STATE/kubeconfig" admin
kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager
kubeconfig "$STATE/scheduler.kubeconfig" scheduler
for client in "${CLIENTS[@]}"; do
  mkdir -p "$STATE/clients"
  issue "clients/$client" "/O=system:masters/CN=$client" "extendedKeyUsage=clientAuth"
  kubeconfig "$STATE/clients/$client.kubeconfig" "clients/$client"
done
AUDIT_ARGS=()
if [ "$AUDIT" = 1 ]; then
  # One event per request, written when it arrives: watches count once, when they start.
  cat > "$STATE/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [ResponseStarted, ResponseComplete, Panic]
rules:
- level: Metadata
POLICY
  AUDIT_ARGS=(--audit-policy-file "$STATE/audit-policy.yaml" --audit-log-path "$STATE/logs/audit.log"
    --audit-log-format json --audit-log-mode blocking --audit-log-maxsize 0)
fi

# --- etcd
start_daemon "$STATE" etcd "$BIN/etcd" --name "$NAME" --data-dir "$STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "$NAME=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync --quota-backend-bytes 4294967296 --log-level warn
wait_for 30 "etcd on :$ETCD_PORT" curl -fsS "http://127.0.0.1:$ETCD_PORT/health" \
  || { tail -n 20 "$STATE/logs/etcd.log" >&2; exit 1; }

# --- kube-apiserver. The advertise address is loopback, which Endpoints may not hold,
# so the endpoint reconciler is off; nothing in the cluster dials the apiserver service.
start_daemon "$STATE" kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
  --endpoint-reconciler-type none \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --client-ca-file "$PKI/ca.crt" \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range 10.96.0.0/16 \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
  --allow-privileged=true "${AUDIT_ARGS[@]}"
curl_api() { curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$SERVER$1"; }
wait_for 120 "kube-apiserver on :$API_PORT" curl_api /readyz \
  || { tail -n 30 "$STATE/logs/kube-apiserver.log" >&2; exit 1; }

# --- controllers, scheduler, kwok
start_daemon "$STATE" kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig "$STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false \
  --root-ca-file "$PKI/ca.crt" --service-account-private-key-file "$PKI/sa.key" \
  --use-service-account-credentials=true \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key"
start_daemon "$STATE" kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig "$STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
  --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --leader-elect=false
# kwok plays the kubelet for nodes annotated kwok.x-k8s.io/node=fake, driven by its Stages.
for stage in "$STAGES"/*.yaml; do echo "---"; cat "$stage"; done > "$STATE/kwok-stages.yaml"
start_daemon "$STATE" kwok "$BIN/kwok" \
  --kubeconfig "$STATE/kubeconfig" --config "$STATE/kwok-stages.yaml" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
  --server-address "127.0.0.1:$KWOK_PORT" --node-ip 127.0.0.1 --cidr 10.0.0.1/16 \
  --node-lease-duration-seconds 40

KUBECTL=("$BIN/kubectl" --kubeconfig "$STATE/kubeconfig")
for i in $(seq 0 $(( NODES - 1 ))); do
  cat <<NODE
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
$( [ "$REAL_NODES" = 0 ] || printf '%s' 'spec:
  taints: [{key: kwok.x-k8s.io/node, value: fake, effect: NoSchedule}]' )
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
NODE
done > "$STATE/nodes.yaml"
if [ "$NODES" -gt 0 ]; then
  "${KUBECTL[@]}" apply -f "$STATE/nodes.yaml" >/dev/null
  wait_for 120 "$NODES kwok nodes Ready" "${KUBECTL[@]}" wait --for=condition=Ready node -l type=kwok --timeout=2s \
    || { tail -n 30 "$STATE/logs/kwok.log" >&2; exit 1; }
fi
# Pods need the default ServiceAccount, which the controller-manager creates.
wait_for 60 "the default ServiceAccount" "${KUBECTL[@]}" get serviceaccount default -n default

if [ "$REAL_NODES" -gt 0 ]; then
  net_up "$SLOT"
  forward "$STATE" apiserver "$API_PORT" "$SLOT"
  for registry in "${REGISTRIES[@]}"; do forward "$STATE" "registry-${registry##*:}" "${registry##*:}" "$SLOT"; done
  for server in "${EXPOSED[@]}"; do forward "$STATE" "exposed-${server##*:}" "${server##*:}" "$SLOT"; done
  # Pods reach the API server through the `kubernetes` Service: its endpoint is the gateway.
  "${KUBECTL[@]}" apply --server-side --field-manager fluxop-testbed -f - >/dev/null <<YAML
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kubernetes
  namespace: default
  labels:
    kubernetes.io/service-name: kubernetes
    endpointslice.kubernetes.io/managed-by: fluxop-testbed
addressType: IPv4
endpoints: [{addresses: ["$GATEWAY"], conditions: {ready: true}}]
ports: [{name: https, port: $API_PORT, protocol: TCP}]
YAML
  for i in $(seq 0 $(( REAL_NODES - 1 ))); do
    node_up "$STATE" "$SLOT" "$i" "$NAME-node-$i" "$API_PORT" "${REGISTRIES[@]}"
  done
  real_nodes_ready() {
    [ "$("${KUBECTL[@]}" get nodes -l type=real -o name | wc -l)" = "$REAL_NODES" ] \
      && "${KUBECTL[@]}" wait --for=condition=Ready node -l type=real --timeout=2s
  }
  wait_for 120 "$REAL_NODES real nodes Ready" real_nodes_ready \
    || { tail -n 30 "$STATE/nodes/0/logs/kubelet.log" >&2; exit 1; }
  # The kubelets are up: put back the kernel settings they changed (see hack/node.sh).
  host_sysctls_restore
  sed -e "s#COREDNS_IMAGE#$(cat "$NODE_IMAGES/../coredns-image")#" "$REPO_ROOT/hack/coredns.yaml" \
    | "${KUBECTL[@]}" apply --server-side --field-manager fluxop-testbed -f - >/dev/null
  wait_for 180 "CoreDNS Available" "${KUBECTL[@]}" -n kube-system wait --for=condition=Available deployment/coredns --timeout=2s \
    || { "${KUBECTL[@]}" -n kube-system describe pods -l k8s-app=kube-dns >&2; tail -n 30 "$STATE/nodes/0/logs/kubelet.log" >&2; exit 1; }
fi

cat > "$STATE/env" <<ENV
KUBECONFIG=$STATE/kubeconfig
FLUXOP_CLUSTER_NAME=$NAME
FLUXOP_CLUSTER_SERVER=$SERVER
FLUXOP_CLUSTER_ETCD=http://127.0.0.1:$ETCD_PORT
FLUXOP_CLUSTER_BIN=$BIN
FLUXOP_CLUSTER_REAL_NODES=$REAL_NODES
FLUXOP_CLUSTER_GATEWAY=$GATEWAY
FLUXOP_CLUSTER_AUDIT_LOG=$( [ "$AUDIT" = 0 ] || echo "$STATE/logs/audit.log" )
ENV
started=1
log "cluster $NAME is up at $SERVER with $NODES kwok and $REAL_NODES real nodes (state in $STATE)"
echo "$STATE/kubeconfig"
