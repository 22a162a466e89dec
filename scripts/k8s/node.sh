#!/usr/bin/env bash
# Stage 2 of start.sh: the node. A private containerd (own socket, root and state in
# the state dir; the CRI plugin on, runc with cgroupfs), a CNI bridge (Debian's
# containernetworking-plugins in /usr/lib/cni; no masquerading and no default route in
# the pods, so pod traffic stays on this machine; their only routes are the Service
# CIDR and the node's address), the kubelet registered as node $K8S_NODE_NAME on the
# node address, kube-proxy (iptables), CoreDNS on the node address for cluster.local
# only, and kube-router's network policy controller, which enforces NetworkPolicies on
# the bridge (iptables chains KUBE-ROUTER-*, KUBE-POD-FW-*, KUBE-NWPLCY-*, and ipsets).
# The sandbox image is the `pause` that build.sh compiles, imported with ctr (no
# registry here).
# On failure the last line of its output says what failed; start.sh prints it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$HERE/versions.env"
# shellcheck source=common.sh
. "$HERE/common.sh"

PKI="$S/pki"
CTRD="$S/containerd"
SOCK="$CTRD/containerd.sock"
BRIDGE="${K8S_CNI_BRIDGE:-rhk8s0}"
PAUSE_IMAGE="registry.k8s.io/pause:3.10"
KUBECTL=("$K8S_BIN/kubectl" --kubeconfig "$S/admin.kubeconfig")

fail() { echo "$1" >&2; exit 1; }
need() { command -v "$1" >/dev/null || fail "$2"; }

# grant USER: a ClusterRole named USER with the rules on stdin, bound to the user USER
# (the CN of its client certificate, start.sh).
grant() {
    local rules
    rules="$(cat)"
    "${KUBECTL[@]}" apply -f - >>"$S/logs/kubectl.log" 2>&1 <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: $1}
rules:
$rules
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: $1}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: $1}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: $1}
EOF
}

need containerd "containerd: not installed (apt-get install containerd)"
need runc "runc: not installed (apt-get install runc)"
[ -x /usr/lib/cni/bridge ] || fail "CNI: /usr/lib/cni/bridge missing (apt-get install containernetworking-plugins)"
need iptables "kube-proxy: iptables not installed"
need ipset "kube-router: ipset not installed (apt-get install ipset)"
[ -x "$K8S_BIN/kube-router" ] || fail "kube-router: $K8S_BIN/kube-router missing (scripts/k8s/build.sh)"
[ -x "$K8S_BIN/pause" ] || fail "pause: $K8S_BIN/pause missing (scripts/k8s/build.sh)"
[ "$(id -u)" = 0 ] || fail "kubelet: needs root"

mkdir -p "$CTRD"/{root,state,opt} "$S/cni/net.d" "$S/cni/ipam" "$S/kubelet"
# Network namespaces that exist before: stop.sh removes only the ones made after.
ls -d /run/netns/cni-* >"$S/netns.before" 2>/dev/null || true
# Likewise the ipsets: stop.sh destroys only the ones made after (kube-router's).
ipset list -n >"$S/ipsets.before" 2>"$S/logs/ipset.log" || fail "kube-router: ipset list failed: $(tail -n1 "$S/logs/ipset.log")"
echo "$BRIDGE" >"$S/cni.bridge"
# containerd 1.6 keeps its shims' sockets in /run/containerd/s whatever its state dir:
# if /run/containerd is new, stop.sh removes what is left of it (empty dirs only).
[ -e /run/containerd ] || touch "$S/run-containerd.created"

# --- the node's address ---------------------------------------------------------------
# The kubelet refuses a loopback node IP, and without an InternalIP the apiserver cannot
# reach it (no `kubectl exec/logs`). A dummy interface holds a private /32; a kernel
# without the dummy driver gets an empty bridge instead (also no ports, no traffic out).
if ip -o addr show | grep -qF " $K8S_NODE_IP/"; then
    # On our own interface with no kubelet running: left by a run killed before its
    # stop.sh (CI's machine may keep what an earlier run left); removed, then made again.
    if ip -o addr show dev "$K8S_NODE_IFACE" 2>/dev/null | grep -qF " $K8S_NODE_IP/" && ! pgrep -x kubelet >/dev/null; then
        echo "node address: removing $K8S_NODE_IFACE ($K8S_NODE_IP), left by a run that did not stop" >&2
        ip link del "$K8S_NODE_IFACE" || fail "node address: ip link del $K8S_NODE_IFACE failed"
    else
        fail "node address: $K8S_NODE_IP is already on an interface here (set K8S_NODE_IP)"
    fi
fi
if ! ip link show "$K8S_NODE_IFACE" >/dev/null 2>&1; then
    ip link add "$K8S_NODE_IFACE" type dummy 2>/dev/null || ip link add "$K8S_NODE_IFACE" type bridge ||
        fail "node address: cannot create interface $K8S_NODE_IFACE (dummy or bridge)"
    echo "$K8S_NODE_IFACE" >"$S/node.iface"
fi
ip addr add "$K8S_NODE_IP/32" dev "$K8S_NODE_IFACE" || fail "node address: ip addr add $K8S_NODE_IP/32 dev $K8S_NODE_IFACE failed"
ip link set "$K8S_NODE_IFACE" up || fail "node address: ip link set $K8S_NODE_IFACE up failed"

# --- CNI ----------------------------------------------------------------------------
POD_SUBNET="${K8S_POD_SUBNET:-${K8S_POD_CIDR%.*.*}.0.0/24}"
cat >"$S/cni/net.d/10-redis-ha.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "redis-ha-k8s",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$S/cni/ipam",
        "ranges": [[{"subnet": "$POD_SUBNET"}]],
        "routes": [{"dst": "$K8S_SERVICE_CIDR"}, {"dst": "$K8S_NODE_IP/32"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

# Pod to pod on the bridge: with br_netfilter on (bridge-nf-call-iptables=1), bridged
# frames cross the FORWARD chain, whose policy a Docker engine sets to DROP, and the
# kube-proxy rules accept only replies there. Accept what stays on the bridge (in and
# out of it), nothing else; stop.sh deletes the rule by this same spec.
FORWARD_RULE=(FORWARD -i "$BRIDGE" -o "$BRIDGE" -m comment --comment "redis-ha-k8s: pod to pod on $BRIDGE" -j ACCEPT)
if ! iptables -w -C "${FORWARD_RULE[@]}" 2>/dev/null; then
    iptables -w -I "${FORWARD_RULE[@]}" || fail "CNI: iptables -I FORWARD (pod to pod on $BRIDGE) failed"
    echo "$BRIDGE" >"$S/forward.bridge"
fi

# --- containerd ---------------------------------------------------------------------
cat >"$CTRD/config.toml" <<EOF
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$CTRD/debug.sock"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_selinux = false
  # No CAP_SYS_RESOURCE here: runc cannot lower oom_score_adj below containerd's own
  # (the sandbox's -998 fails with "can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$CTRD/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$S/cni/net.d"
EOF
# Registry pulls go to a proxy that is not there (127.0.0.1:9): an image that is not
# imported fails at once ("proxyconnect ... connection refused"), nothing is contacted.
HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY=127.0.0.1,localhost \
    http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 no_proxy=127.0.0.1,localhost \
    launch containerd containerd --config "$CTRD/config.toml"
for _ in $(seq 60); do
    [ -S "$SOCK" ] && ctr --address "$SOCK" version >/dev/null 2>&1 && break
    alive containerd || fail "containerd: exited: $(tail -n1 "$S/logs/containerd.log")"
    sleep 0.5
done
ctr --address "$SOCK" version >/dev/null 2>&1 || fail "containerd: socket $SOCK not answering"
ctr --address "$SOCK" plugins ls 2>/dev/null | grep -E '^io\.containerd\.grpc\.v1[[:space:]]+cri[[:space:]]+.*ok' >/dev/null ||
    fail "containerd: CRI plugin not ok: $(ctr --address "$SOCK" plugins ls 2>&1 | grep -E '[[:space:]]cri[[:space:]]')"

python3 "$HERE/oci_image.py" "$K8S_BIN/pause" "$PAUSE_IMAGE" "$S/pause.tar"
ctr --address "$SOCK" -n k8s.io images import "$S/pause.tar" >>"$S/logs/ctr.log" 2>&1 ||
    fail "containerd: importing the pause image failed: $(tail -n1 "$S/logs/ctr.log")"
ctr --address "$SOCK" -n k8s.io images label "$PAUSE_IMAGE" io.cri-containerd.pinned=pinned >>"$S/logs/ctr.log" 2>&1 || true

# --- kubelet ------------------------------------------------------------------------
cat >"$S/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The apiserver reaches the kubelet (exec, logs) at the node's InternalIP.
address: $K8S_NODE_IP
port: $K8S_KUBELET_PORT
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$SOCK
failSwapOn: false
failCgroupV1: false
# Leave the host's iptables alone (no KUBE-FIREWALL); stop.sh removes the canaries.
makeIPTablesUtilChains: false
resolvConf: ""
clusterDomain: cluster.local
clusterDNS: ["$K8S_NODE_IP"]
registerNode: true
maxPods: 50
serializeImagePulls: true
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
EOF
launch kubelet "$K8S_BIN/kubelet" --config "$S/kubelet.yaml" --kubeconfig "$S/kubelet.kubeconfig" \
    --root-dir "$S/kubelet" --cert-dir "$S/kubelet/pki" \
    --hostname-override "$K8S_NODE_NAME" --node-ip "$K8S_NODE_IP"

# --- kube-proxy ---------------------------------------------------------------------
cat >"$S/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $S/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $K8S_POD_CIDR
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
hostnameOverride: $K8S_NODE_NAME
# Node ports on the bridge's address only: on 127.0.0.1 kube-proxy would set
# net.ipv4.conf.all.route_localnet=1 on the host.
nodePortAddresses: ["${POD_SUBNET%.*}.1/32"]
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
sysctl -n net.ipv4.conf.all.route_localnet >"$S/route_localnet.before" 2>/dev/null || true
launch kube-proxy "$K8S_BIN/kube-proxy" --config "$S/kube-proxy.yaml"

# --- CoreDNS --------------------------------------------------------------------------
# The pods' cluster DNS, on the node's address: cluster.local from the apiserver (its
# own read-only user), and REFUSED for every other name (no forwarding anywhere).
grant redis-ha-coredns <<'EOF' || fail "coredns: RBAC apply failed: $(tail -n1 "$S/logs/kubectl.log")"
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
EOF
cat >"$S/Corefile" <<EOF
cluster.local:53 {
    bind $K8S_NODE_IP
    errors
    kubernetes cluster.local {
        kubeconfig $S/coredns.kubeconfig local
        ttl 5
    }
}
EOF
launch coredns "$K8S_BIN/coredns" -conf "$S/Corefile"
for _ in $(seq 60); do
    ss -Hlnu "src $K8S_NODE_IP:53" 2>/dev/null | grep -q . && break
    alive coredns || fail "coredns: exited: $(tail -n1 "$S/logs/coredns.log")"
    sleep 0.5
done
ss -Hlnu "src $K8S_NODE_IP:53" | grep -q . || fail "coredns: not listening on $K8S_NODE_IP:53: $(tail -n1 "$S/logs/coredns.log")"

# --- wait for the node --------------------------------------------------------------
for _ in $(seq 90); do
    ready="$("${KUBECTL[@]}" get node "$K8S_NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)"
    [ "$ready" = True ] && break
    alive kubelet || fail "kubelet: exited: $(grep -E '^E|error|fail' "$S/logs/kubelet.log" | tail -n1)"
    alive containerd || fail "containerd: exited: $(tail -n1 "$S/logs/containerd.log")"
    sleep 1
done
[ "$ready" = True ] || fail "kubelet: node $K8S_NODE_NAME not Ready after 90s: $("${KUBECTL[@]}" get node "$K8S_NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].message}' 2>&1 || grep -E '^E' "$S/logs/kubelet.log" | tail -n1)"
alive kube-proxy || fail "kube-proxy: exited: $(grep -E '^E|error' "$S/logs/kube-proxy.log" | tail -n1)"

# --- kube-router: NetworkPolicy enforcement -------------------------------------------
# Only its firewall: no BGP routing (one node, the bridge routes), no service proxy
# (kube-proxy's). It reads pods, namespaces and policies, and writes iptables rules in
# the filter table that send bridged traffic to a pod through that pod's policy chain
# (REJECT unless a rule of a policy selecting it admits the source); traffic from the
# node itself (the kubelet, host-side clients) is always admitted, as on every node
# kube-router runs on. Started once the node exists: it reads its InternalIP at start.
grant redis-ha-kube-router <<'EOF' || fail "kube-router: RBAC apply failed: $(tail -n1 "$S/logs/kubectl.log")"
- apiGroups: [""]
  resources: [pods, namespaces, nodes, services, endpoints]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
EOF
NODE_NAME="$K8S_NODE_NAME" launch kube-router "$K8S_BIN/kube-router" \
    --kubeconfig "$S/kube-router.kubeconfig" --hostname-override "$K8S_NODE_NAME" \
    --run-firewall=true --run-router=false --run-service-proxy=false \
    --service-cluster-ip-range "$K8S_SERVICE_CIDR" --health-port 0 --metrics-port 0
# Enforcing once its jump is the first rule of FORWARD, ahead of the bridge rule above.
forward_first() { iptables -w -S FORWARD 2>/dev/null | sed -n 2p | grep -q -- "-j KUBE-ROUTER-FORWARD"; }
for _ in $(seq 60); do
    forward_first && break
    alive kube-router || fail "kube-router: exited: $(grep -E '^[EF][0-9]|error|fail' "$S/logs/kube-router.log" | tail -n1)"
    sleep 1
done
forward_first || fail "kube-router: its FORWARD jump is not the first rule after 60s: $(tail -n1 "$S/logs/kube-router.log")"
