#!/usr/bin/env bash
# Start a single-node Kubernetes from the binaries build.sh left in the cache.
#
# Stage 1, the control plane (failure here fails the script): a CA and certificates
# (openssl) in a fresh state dir, etcd, kube-apiserver (PodSecurity admission on),
# kube-controller-manager and kube-scheduler, all on 127.0.0.1 only; an admin
# kubeconfig; then it waits for /readyz.
# Stage 2, the node (may fail without failing the script): a private containerd (its
# own socket, root and state under the state dir, so a Docker engine's containerd is
# left alone) with the CRI plugin, a CNI bridge (Debian's containernetworking-plugins),
# the kubelet registered as a node, kube-proxy, CoreDNS and kube-router's network
# policy controller. If it cannot work here, one line says what failed, and the
# control plane keeps running. K8S_NODE=0 skips stage 2.
#
# Everything started is recorded under the state dir; stop.sh ends it. The env file
# $K8S_STATE/env has KUBECONFIG and K8S_API for scripts and tests.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$HERE/versions.env"
# shellcheck source=common.sh
. "$HERE/common.sh"

if api_ready; then
    echo "k8s: already running: $K8S_API (KUBECONFIG=$S/admin.kubeconfig)"
    exit 0
fi
for b in $K8S_BINARIES; do
    [ -x "$K8S_BIN/$b" ] || { echo "k8s start: FAILED: $K8S_BIN/$b missing: run scripts/k8s/build.sh" >&2; exit 1; }
done
if [ -d "$S" ]; then
    "$HERE/stop.sh" >/dev/null 2>&1 || true
fi
mkdir -p "$S"/{pki,logs,pids,etcd,run}
chmod 700 "$S"

# --- certificates -------------------------------------------------------------------
PKI="$S/pki"
openssl_quiet() { openssl "$@" >>"$S/logs/openssl.log" 2>&1; }
openssl_quiet req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=redis-ha-local-ca" \
    -keyout "$PKI/ca.key" -out "$PKI/ca.crt"
# cert NAME SUBJECT [SANS] [serverAuth|clientAuth|both]
cert() {
    local name="$1" subj="$2" sans="${3:-}" usage="${4:-clientAuth}" ext="$PKI/$1.ext"
    case "$usage" in
        both) usage="serverAuth,clientAuth" ;;
    esac
    {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$usage"
        [ -z "$sans" ] || echo "subjectAltName=$sans"
    } >"$ext"
    openssl_quiet req -newkey rsa:2048 -nodes -subj "$subj" -keyout "$PKI/$name.key" -out "$PKI/$name.csr"
    openssl_quiet x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
        -days 30 -extfile "$ext" -out "$PKI/$name.crt"
}
cert apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:$K8S_SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
    serverAuth
cert admin "/O=system:masters/CN=redis-ha-admin"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
cert controller-manager "/CN=system:kube-controller-manager"
cert scheduler "/CN=system:kube-scheduler"
cert kubelet "/O=system:nodes/CN=system:node:$K8S_NODE_NAME" "IP:$K8S_NODE_IP,IP:127.0.0.1,DNS:$K8S_NODE_NAME,DNS:localhost" both
cert kube-proxy "/CN=system:kube-proxy"
# CoreDNS (node.sh): a user of its own, bound to a read-only ClusterRole there.
cert coredns "/CN=redis-ha-coredns"
# kube-router's network policy controller (node.sh): likewise, read-only.
cert kube-router "/CN=redis-ha-kube-router"
openssl_quiet genrsa -out "$PKI/sa.key" 2048
openssl_quiet rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"

# kubeconfig NAME CERT: a kubeconfig for the client cert CERT
kubeconfig() {
    cat >"$S/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $K8S_API
    certificate-authority: $PKI/ca.crt
users:
- name: $2
  user:
    client-certificate: $PKI/$2.crt
    client-key: $PKI/$2.key
contexts:
- name: local
  context: {cluster: local, user: $2}
current-context: local
EOF
}
kubeconfig admin admin
kubeconfig controller-manager controller-manager
kubeconfig scheduler scheduler
kubeconfig kubelet kubelet
kubeconfig kube-proxy kube-proxy
kubeconfig coredns coredns
kubeconfig kube-router kube-router
cat >"$S/env" <<EOF
export KUBECONFIG=$S/admin.kubeconfig
export K8S_API=$K8S_API
export K8S_STATE=$S
export PATH=$K8S_BIN:\$PATH
EOF

# --- stage 1: the control plane -----------------------------------------------------
launch etcd "$K8S_BIN/etcd" --name local --data-dir "$S/etcd" \
    --listen-client-urls "http://127.0.0.1:$K8S_ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$K8S_ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$K8S_ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$K8S_ETCD_PEER_PORT" \
    --initial-cluster "local=http://127.0.0.1:$K8S_ETCD_PEER_PORT" \
    --unsafe-no-fsync --quota-backend-bytes=$((1024 * 1024 * 1024))

launch kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$K8S_ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$K8S_API_PORT" \
    --endpoint-reconciler-type none \
    --cert-dir "$S/run" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range "$K8S_SERVICE_CIDR" \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins "NodeRestriction,PodSecurity" \
    --allow-privileged=true \
    --profiling=false

# wait_healthy WHAT PROBE PROCESS...: until PROBE succeeds, while the processes live.
wait_healthy() {
    local what="$1" probe="$2" p
    shift 2
    local deadline=$((SECONDS + ${K8S_START_TIMEOUT:-180}))
    until $probe; do
        for p in "$@"; do
            alive "$p" || { echo "k8s start: FAILED: $p exited: $(grep -E '^[EF][0-9]|error|fatal' "$S/logs/$p.log" | tail -n1)" >&2; exit 1; }
        done
        [ $SECONDS -lt $deadline ] || { echo "k8s start: FAILED: $what not healthy after ${K8S_START_TIMEOUT:-180}s" >&2; exit 1; }
        sleep 1
    done
}
# The controller-manager and scheduler need the apiserver's bootstrap RBAC: start them
# once /readyz is ok.
wait_healthy "$K8S_API/readyz" api_ready etcd kube-apiserver

launch kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$S/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$S/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$S/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$K8S_CM_PORT" --cert-dir "$S/run" \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --use-service-account-credentials=true --leader-elect=false \
    --service-cluster-ip-range "$K8S_SERVICE_CIDR" --cluster-cidr "$K8S_POD_CIDR"

launch kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$S/scheduler.kubeconfig" \
    --authentication-kubeconfig "$S/scheduler.kubeconfig" \
    --authorization-kubeconfig "$S/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$K8S_SCHED_PORT" --leader-elect=false

healthz() { curl -ksS --max-time 3 "https://127.0.0.1:$1/healthz" 2>/dev/null | grep -qx ok; }
cm_healthy() { healthz "$K8S_CM_PORT"; }
sched_healthy() { healthz "$K8S_SCHED_PORT"; }
wait_healthy kube-controller-manager cm_healthy kube-controller-manager kube-apiserver
wait_healthy kube-scheduler sched_healthy kube-scheduler kube-apiserver
api_ready || { echo "k8s start: FAILED: $K8S_API/readyz no longer ok" >&2; exit 1; }
echo "k8s: control plane ready at $K8S_API (KUBECONFIG=$S/admin.kubeconfig)"

# --- stage 2: the node --------------------------------------------------------------
if [ "${K8S_NODE:-1}" = 0 ]; then
    echo "k8s: node stage skipped (K8S_NODE=0)"
    exit 0
fi
if msg="$(bash "$HERE/node.sh" 2>&1)"; then
    echo "k8s: node $K8S_NODE_NAME ready (containerd, CNI bridge, kubelet, kube-proxy, CoreDNS, kube-router network policies)"
else
    echo "k8s: node stage FAILED (control plane still running): $(printf '%s\n' "$msg" | tail -n1)"
fi
