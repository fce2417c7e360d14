#!/usr/bin/env bash
# Starts a local Kubernetes cluster on 127.0.0.1: etcd, kube-apiserver (RBAC and the
# default admission chain on), kube-controller-manager, kube-scheduler and kwok with a few
# fake nodes that run Pods as Running/Ready. Every port is chosen at run time, so several
# clusters can run side by side.
#
#   hack/cluster-up.sh [NAME] [NODES]     (defaults: NAME=default, NODES=3)
#
# Writes STATE/clusters/NAME/kubeconfig and STATE/clusters/NAME/env (KUBECONFIG, API
# server URL, ports) and prints the kubeconfig path. Stop it with hack/cluster-down.sh NAME.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NAME="${1:-default}"
NODES="${2:-3}"
STATE="$STATE_ROOT/clusters/$NAME"
BIN="$("$REPO_ROOT/hack/testbed-build.sh" | tail -n 1)"
STAGES="$(dirname "$BIN")/stages"

if [ -f "$STATE/env" ] && daemon_alive "$STATE" kube-apiserver; then
  log "cluster $NAME is already running"
  echo "$STATE/kubeconfig"
  exit 0
fi
stop_daemons "$STATE"
rm -rf "$STATE"
mkdir -p "$STATE/pki" "$STATE/etcd" "$STATE/logs"
PKI="$STATE/pki"

read -r ETCD_PORT ETCD_PEER_PORT API_PORT KCM_PORT SCHED_PORT KWOK_PORT <<<"$(free_ports 6)"

# --- PKI: one CA for serving and client certificates, an ECDSA key for service accounts.
ossl() { openssl "$@" 2>/dev/null; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
  -subj "/CN=fluxop-testbed-ca-$NAME" -keyout "$PKI/ca.key" -out "$PKI/ca.crt"
ossl ecparam -name prime256v1 -genkey -noout -out "$PKI/sa.key"
ossl ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"
# issue NAME SUBJECT EXTENSIONS
issue() {
  ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$2" \
    -keyout "$PKI/$1.key" -out "$PKI/$1.csr"
  printf '%s\n' "$3" > "$PKI/$1.ext"
  ossl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -extfile "$PKI/$1.ext" -out "$PKI/$1.crt"
}
issue apiserver "/CN=kube-apiserver" \
  "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth"
issue admin "/O=system:masters/CN=fluxop-testbed-admin" "extendedKeyUsage=clientAuth"
issue controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth"
issue scheduler "/CN=system:kube-scheduler" "extendedKeyUsage=clientAuth"

SERVER="https://127.0.0.1:$API_PORT"
# kubeconfig FILE USER: a kubeconfig with embedded certificates, so it can be copied anywhere.
kubeconfig() {
  b64() { base64 -w0 < "$1"; }
  cat > "$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: fluxop-$NAME
  cluster:
    server: $SERVER
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(b64 "$PKI/$2.crt")
    client-key-data: $(b64 "$PKI/$2.key")
contexts:
- name: fluxop-$NAME
  context: {cluster: fluxop-$NAME, user: $2}
current-context: fluxop-$NAME
KC
}
kubeconfig "$STATE/kubeconfig" admin
kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager
kubeconfig "$STATE/scheduler.kubeconfig" scheduler

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
  --allow-privileged=true
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
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
NODE
done > "$STATE/nodes.yaml"
"${KUBECTL[@]}" apply -f "$STATE/nodes.yaml" >/dev/null
wait_for 120 "$NODES kwok nodes Ready" "${KUBECTL[@]}" wait --for=condition=Ready node --all --timeout=2s \
  || { tail -n 30 "$STATE/logs/kwok.log" >&2; exit 1; }
# Pods need the default ServiceAccount, which the controller-manager creates.
wait_for 60 "the default ServiceAccount" "${KUBECTL[@]}" get serviceaccount default -n default

cat > "$STATE/env" <<ENV
KUBECONFIG=$STATE/kubeconfig
FLUXOP_CLUSTER_NAME=$NAME
FLUXOP_CLUSTER_SERVER=$SERVER
FLUXOP_CLUSTER_ETCD=http://127.0.0.1:$ETCD_PORT
FLUXOP_CLUSTER_BIN=$BIN
ENV
log "cluster $NAME is up at $SERVER with $NODES kwok nodes (state in $STATE)"
echo "$STATE/kubeconfig"
