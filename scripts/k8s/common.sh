# Shared by start.sh, node.sh and stop.sh (sourced after versions.env): where the
# running instance keeps its state, its ports, and helpers over its processes.

# The state dir: certificates, kubeconfigs, etcd data, logs, pid files, kubelet and
# containerd roots. Deleted by stop.sh.
S="${K8S_STATE:-${TMPDIR:-/tmp}/redis-ha-k8s}"
K8S_API_PORT="${K8S_API_PORT:-16443}"
K8S_ETCD_PORT="${K8S_ETCD_PORT:-23790}"
K8S_ETCD_PEER_PORT="${K8S_ETCD_PEER_PORT:-23800}"
K8S_CM_PORT="${K8S_CM_PORT:-10257}"
K8S_SCHED_PORT="${K8S_SCHED_PORT:-10259}"
K8S_KUBELET_PORT="${K8S_KUBELET_PORT:-10250}"
K8S_NODE_NAME="${K8S_NODE_NAME:-redis-ha-local}"
K8S_SERVICE_CIDR="${K8S_SERVICE_CIDR:-10.96.0.0/16}"
K8S_SERVICE_IP="${K8S_SERVICE_IP:-10.96.0.1}"
K8S_POD_CIDR="${K8S_POD_CIDR:-10.88.0.0/16}"
K8S_API="https://127.0.0.1:$K8S_API_PORT"
# The node's own address (the kubelet refuses a loopback node IP): a /32 on an
# interface node.sh creates (a dummy one, or an empty bridge where the kernel has no
# dummy driver). Outside every range this machine routes; stop.sh removes it.
K8S_NODE_IP="${K8S_NODE_IP:-10.89.0.1}"
K8S_NODE_IFACE="${K8S_NODE_IFACE:-rhk8s-node}"

# launch NAME CMD...: start CMD in its own session, log and pid under the state dir.
launch() {
    local name="$1"
    shift
    setsid "$@" >"$S/logs/$name.log" 2>&1 </dev/null &
    echo $! >"$S/pids/$name.pid"
}

# alive NAME: the process launched as NAME still runs.
alive() {
    local pid
    pid="$(cat "$S/pids/$1.pid" 2>/dev/null)" || return 1
    kill -0 "$pid" 2>/dev/null
}

# api_ready: /readyz of the apiserver answers ok (with the admin certificate).
api_ready() {
    [ -f "$S/pki/admin.crt" ] || return 1
    [ "$(curl -sS --max-time 3 --cacert "$S/pki/ca.crt" --cert "$S/pki/admin.crt" --key "$S/pki/admin.key" \
        "$K8S_API/readyz" 2>/dev/null)" = ok ]
}
