#!/usr/bin/env bash
# Stop everything start.sh (and node.sh) started, unmount what they mounted, remove the
# CNI bridge, kube-proxy's and kube-router's iptables chains, kube-router's ipsets and
# the kubelet's pod cgroups, and delete the state dir. Only processes recorded in the state dir (and the containerd shims
# and pod processes of that private containerd) are ended, each by its pid.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$HERE/versions.env"
# shellcheck source=common.sh
. "$HERE/common.sh"

if [ ! -d "$S" ]; then
    echo "k8s: nothing to stop ($S does not exist)"
    exit 0
fi

# stop_pids PID...: TERM, up to 15 s, then KILL.
stop_pids() {
    local pids=() p i
    for p in "$@"; do kill -0 "$p" 2>/dev/null && pids+=("$p"); done
    [ ${#pids[@]} -gt 0 ] || return 0
    kill -TERM "${pids[@]}" 2>/dev/null
    for i in $(seq 30); do
        local left=()
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left+=("$p"); done
        [ ${#left[@]} -gt 0 ] || return 0
        sleep 0.5
    done
    kill -KILL "${left[@]}" 2>/dev/null
    sleep 0.5
}
stop_named() {
    local name pid
    for name in "$@"; do
        pid="$(cat "$S/pids/$name.pid" 2>/dev/null)" || continue
        stop_pids "$pid"
    done
}
# Processes whose command line names the state dir (containerd shims, kubelet children).
state_pids() {
    local d
    for d in /proc/[0-9]*; do
        { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null | grep -qF -- "$S/" && echo "${d#/proc/}"
    done
}
# Processes in the kubelet's pod cgroups (kubepods*, under any v1 controller or v2).
pod_pids() {
    find /sys/fs/cgroup -path '*kubepods*' -name cgroup.procs 2>/dev/null | xargs -r cat 2>/dev/null | sort -u
}

# The chains a kubelet makes even with makeIPTablesUtilChains off (canaries, hint),
# and the ones it makes with it on; kube-proxy --cleanup removes kube-proxy's own.
kubelet_chains_cleanup() {
    local ipt table chain rule
    for ipt in iptables ip6tables; do
        command -v "$ipt" >/dev/null || continue
        for table in filter nat mangle; do
            for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT KUBE-PROXY-CANARY; do
                "$ipt" -w -t "$table" -S 2>/dev/null | grep -E -- "-j $chain( |\$)" | sed 's/^-A /-D /' |
                    while read -r rule; do
                        # shellcheck disable=SC2086 # the rule is a word list
                        "$ipt" -w -t "$table" $rule 2>/dev/null
                    done
                "$ipt" -w -t "$table" -F "$chain" 2>/dev/null
                "$ipt" -w -t "$table" -X "$chain" 2>/dev/null
            done
        done
    done
}

# kube-router's filter chains: the jumps into them from the built-in chains first, then
# the chains themselves (flushed, so that none is still referenced, then deleted).
kube_router_chains() { iptables -w -S 2>/dev/null | sed -n 's/^-N //p' | grep -E '^KUBE-(ROUTER-|POD-FW-|NWPLCY-)'; }
# The ipsets made after node.sh listed those there were (kube-router's).
new_ipsets() {
    local set
    [ -f "$S/ipsets.before" ] || return 0
    for set in $(ipset list -n 2>/dev/null); do grep -qxF "$set" "$S/ipsets.before" || echo "$set"; done
}
kube_router_cleanup() {
    local rule chain
    iptables -w -S 2>/dev/null | grep -E -- "^-A (INPUT|FORWARD|OUTPUT) .*-j KUBE-ROUTER-" | sed 's/^-A /-D /' |
        while read -r rule; do
            # shellcheck disable=SC2086 # the rule is a word list
            eval iptables -w $rule 2>/dev/null
        done
    mapfile -t chains < <(kube_router_chains)
    for chain in "${chains[@]}"; do iptables -w -F "$chain" 2>/dev/null; done
    for chain in "${chains[@]}"; do iptables -w -X "$chain" 2>/dev/null; done
    for set in $(new_ipsets); do ipset destroy "$set" 2>/dev/null; done
}

stop_named kube-router
[ ! -f "$S/pids/kube-router.pid" ] || kube_router_cleanup
stop_named coredns kube-proxy
if [ -f "$S/kube-proxy.yaml" ] && [ -x "$K8S_BIN/kube-proxy" ]; then
    "$K8S_BIN/kube-proxy" --cleanup --config "$S/kube-proxy.yaml" >>"$S/logs/kube-proxy-cleanup.log" 2>&1 || true
fi
if [ -s "$S/route_localnet.before" ]; then
    sysctl -qw net.ipv4.conf.all.route_localnet="$(cat "$S/route_localnet.before")" 2>/dev/null
fi
stop_named kubelet
[ ! -f "$S/kubelet.yaml" ] || kubelet_chains_cleanup
# Pod processes and shims of the private containerd, then containerd itself.
if [ -f "$S/pids/containerd.pid" ]; then
    # Through containerd first, so each shim removes its socket in /run/containerd/s.
    sock="$S/containerd/containerd.sock"
    if [ -S "$sock" ]; then
        for id in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
            ctr --address "$sock" -n k8s.io tasks kill -s KILL "$id" >/dev/null 2>&1
        done
        sleep 1
        for id in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
            ctr --address "$sock" -n k8s.io tasks delete -f "$id" >/dev/null 2>&1
        done
    fi
    mapfile -t pods < <(pod_pids)
    [ ${#pods[@]} -eq 0 ] || kill -KILL "${pods[@]}" 2>/dev/null
    mapfile -t shims < <(state_pids)
    stop_pids "${shims[@]}"
fi
stop_named containerd
stop_named kube-scheduler kube-controller-manager kube-apiserver etcd
mapfile -t rest < <(state_pids)
stop_pids "${rest[@]}"

# Mounts under the state dir (kubelet volumes, containerd snapshots, sandbox shm),
# deepest first; then the network namespaces the CNI made for our pods.
for _ in 1 2 3; do
    mapfile -t mounts < <(awk -v s="$S/" 'index($2, s) == 1 {print $2}' /proc/self/mounts | sort -r)
    [ ${#mounts[@]} -gt 0 ] || break
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
done
if [ -f "$S/netns.before" ]; then
    for ns in /run/netns/cni-*; do
        [ -e "$ns" ] || continue
        grep -qxF "$ns" "$S/netns.before" && continue
        umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null
        rm -f "$ns"
    done
fi
if [ -f "$S/cni.bridge" ]; then
    br="$(cat "$S/cni.bridge")"
    ip link show "$br" >/dev/null 2>&1 && ip link delete "$br" 2>/dev/null
fi
if [ -f "$S/forward.bridge" ]; then
    fbr="$(cat "$S/forward.bridge")"
    while iptables -w -D FORWARD -i "$fbr" -o "$fbr" -m comment --comment "redis-ha-k8s: pod to pod on $fbr" -j ACCEPT 2>/dev/null; do :; done
fi
if [ -f "$S/node.iface" ]; then
    iface="$(cat "$S/node.iface")"
    ip link show "$iface" >/dev/null 2>&1 && ip link delete "$iface" 2>/dev/null
fi
if [ -f "$S/run-containerd.created" ] && [ -d /run/containerd ]; then
    find /run/containerd -depth -type d -empty -delete 2>/dev/null
fi
# The kubelet's pod cgroups: leaves first.
find /sys/fs/cgroup -depth -type d -path '*kubepods*' -exec rmdir {} + 2>/dev/null

left="$(awk -v s="$S/" 'index($2, s) == 1' /proc/self/mounts | wc -l)"
running="$(state_pids | wc -l)"
links=""
for f in node.iface cni.bridge; do
    [ -f "$S/$f" ] && ip link show "$(cat "$S/$f")" >/dev/null 2>&1 && links+=" $(cat "$S/$f")"
done
if [ -f "$S/forward.bridge" ] && iptables -w -S FORWARD 2>/dev/null | grep -qF "redis-ha-k8s: pod to pod on $(cat "$S/forward.bridge")"; then
    links+=" (FORWARD rule for $(cat "$S/forward.bridge"))"
fi
if [ -f "$S/pids/kube-router.pid" ]; then
    n="$(kube_router_chains | wc -l)"
    [ "$n" -eq 0 ] || links+=" ($n kube-router chains)"
    n="$(new_ipsets | wc -l)"
    [ "$n" -eq 0 ] || links+=" ($n kube-router ipsets)"
fi
rm -rf "$S" 2>/dev/null
if [ "$left" -ne 0 ] || [ "$running" -ne 0 ] || [ -e "$S" ] || [ -n "$links" ]; then
    echo "k8s stop: FAILED: $left mounts, $running processes left under $S; interfaces left:${links:- none}" >&2
    exit 1
fi
echo "k8s: stopped; $S removed"
