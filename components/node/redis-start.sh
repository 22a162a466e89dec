#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# Start-up of a Redis node of a Sentinel deployment: decide the role, then run
# redis-server (docs/node-scripts.md).
#
# The role a node was deployed with is right only until the first failover; a pod
# that restarts with its rendered `replicaof` could follow a demoted master or, worse,
# come back as a second master. So before redis-server starts, ask the Sentinels:
#   - a majority of the answers names another node -> start as its replica
#   - they name this node                          -> start as master
#   - no Sentinel answers                          -> the deploy-time role, at once on a fresh node
#                                                     (empty volume), after a wait when it has data
# While redis-server runs, SIGTERM (a container stop: `docker stop`, a replaced
# container, a deleted pod) first hands mastership over, then stops Redis, which saves
# and waits for its replicas (`shutdown-timeout`) before it exits.
#
# Other commands:
#   prestop     the Kubernetes preStop hook: hand mastership over if this node has it
#   switchover  the planned switchover (`redis-ha switchover`): the same hand-over, but
#               it fails (exit 1) when this node is not the master or cannot hand over
#   master      print "<host> <port>" of the master most Sentinels name
#
# Secrets change without a restart (docs/redis-notes.md#rotating-passwords): the
# backend delivers the files holding passwords or hashes into REDIS_HA_SECRETS_DIR
# with their version in secrets.version; while redis-server runs, the watcher applies
# a change live (apply_secrets below) and records the version in REDIS_HA_APPLIED_FILE.
#
# The hand-over (docs/redis-notes.md#zero-loss-switchover): hold writes (CLIENT PAUSE
# WRITE), wait until every replica has applied the master's whole replication stream,
# SENTINEL FAILOVER, and as soon as the Sentinels name the new master, REPLICAOF it and
# release the writes. A held write then gets -READONLY: it was never acknowledged, and
# every write acknowledged before the pause is on the new master.
#
# Settings: node.env next to this script, or the environment (which wins).
# REDIS_HA_DRY_RUN=1 prints the decision ("master" or "replicaof <host> <port>")
# instead of starting redis-server.
set -eu

# shellcheck source=lib.sh
. "${0%/*}/lib.sh"
init redis-start
need REDIS_HA_CONF REDIS_HA_PORT REDIS_HA_MASTER_NAME REDIS_HA_SENTINELS REDIS_HA_DEPLOY_MASTER \
    REDIS_HA_SENTINEL_PASSWORD_FILE REDIS_HA_ADMIN_PASSWORD_FILE REDIS_HA_FAILOVER_WAIT REDIS_HA_DATA_DIR

conf=$REDIS_HA_CONF
port=$REDIS_HA_PORT
master_name=$REDIS_HA_MASTER_NAME
sentinels=$REDIS_HA_SENTINELS
pod=${POD_NAME:-$(hostname)}
self_host=${REDIS_HA_HOSTNAME:-$pod${REDIS_HA_HOSTNAME_SUFFIX:-}}
# Sentinel answers with hostnames when announce-hostnames is on, else with addresses.
self_addrs="$self_host ${POD_IP:-}"
deploy_master=$REDIS_HA_DEPLOY_MASTER
client_password_file=$REDIS_HA_SENTINEL_PASSWORD_FILE
admin_password_file=$REDIS_HA_ADMIN_PASSWORD_FILE
failover_wait=$REDIS_HA_FAILOVER_WAIT
data_dir=$REDIS_HA_DATA_DIR
# How long a node with a dataset waits for a Sentinel to answer at start.
sentinel_wait=${REDIS_HA_SENTINEL_WAIT:-30}
# How long the replicas may take to catch up with the paused master.
catch_up_wait=${REDIS_HA_CATCH_UP_WAIT:-10}
# How long the hand-over asks the Sentinels again while none accepts SENTINEL FAILOVER.
accept_wait=${REDIS_HA_ACCEPT_WAIT:-10}
# Delivered secrets (empty: none, no watcher); one Kubernetes Secret per group names
# the node's own files `<pod>.<file>`.
secrets_dir=${REDIS_HA_SECRETS_DIR:-}
delivered_conf=$secrets_dir/redis.conf
[ "${REDIS_HA_PER_NODE_FILES:-0}" != 1 ] || delivered_conf=$secrets_dir/$pod.redis.conf

local_cli() {
    cli admin "$admin_password_file" 127.0.0.1 "$port" "$@"
}

# "<host> <port>" of the master most Sentinels name; nothing if none answers.
sentinel_master() {
    sentinel_answers "$client_password_file" "$master_name" "$sentinels" | majority
}

# is_self <host> <port>
is_self() {
    [ "$2" = "$port" ] || return 1
    for _addr in $self_addrs; do
        [ "$1" = "$_addr" ] && return 0
    done
    return 1
}

# A node that has a dataset has been part of the deployment: its role may have changed
# since the deploy, so it must not fall back to the deploy-time role just because the
# Sentinels are restarting too (all containers restarted at once). Only a fresh node
# (an empty volume: a first deploy) takes the deploy-time role at once.
has_dataset() {
    [ -s "$data_dir/dump.rdb" ] || [ -d "$data_dir/appendonlydir" ]
}

# Prints "master" or "replicaof <host> <port>".
decide() {
    _tries=0
    while :; do
        _master=$(sentinel_master)
        [ -n "$_master" ] && break
        has_dataset || break
        _tries=$((_tries + 1))
        [ "$_tries" -le $((sentinel_wait * 2)) ] || break
        [ "$_tries" = 1 ] && log "no Sentinel answered; this node has a dataset: waiting up to ${sentinel_wait}s for one"
        sleep 0.5
    done
    if [ -n "$_master" ]; then
        _source="the Sentinels"
    elif has_dataset; then
        _master="${deploy_master%:*} ${deploy_master##*:}"
        _source="no Sentinel answered within ${sentinel_wait}s; deploy-time role"
    else
        _master="${deploy_master%:*} ${deploy_master##*:}"
        _source="no Sentinel answered and no dataset (a fresh node); deploy-time role"
    fi
    # shellcheck disable=SC2086
    set -- $_master
    if is_self "$1" "$2"; then
        log "$_source: this node ($self_host:$port) is the master"
        echo master
    else
        log "$_source: the master is $1:$2"
        echo "replicaof $1 $2"
    fi
}

# The one place background watchers start beside redis-server (supervise calls it).
start_watchers() {
    if watching; then
        background watch_secrets apply_secrets
    fi
    start_fence
}

# The self-fence (components/node/fence.sh, docs/partitions.md), beside this script;
# REDIS_HA_FENCE_AFTER_MS 0 or unset: none. Its settings are this script's (the
# environment's overrides included); no secret among them: passwords stay in files.
start_fence() {
    _fence_after=${REDIS_HA_FENCE_AFTER_MS:-0}
    [ "$_fence_after" != 0 ] || return 0
    _fence=${REDIS_HA_FENCE_SCRIPT:-${0%/*}/fence.sh}
    [ -r "$_fence" ] || { log "no $_fence: this node is never fenced"; return 0; }
    background env REDIS_HA_PORT="$port" REDIS_HA_MASTER_NAME="$master_name" REDIS_HA_SENTINELS="$sentinels" \
        REDIS_HA_SELF_ADDRS="$self_addrs" REDIS_HA_SENTINEL_PASSWORD_FILE="$client_password_file" \
        REDIS_HA_ADMIN_PASSWORD_FILE="$admin_password_file" REDIS_HA_CONF="$conf" \
        REDIS_HA_TLS_ARGS="${REDIS_HA_TLS_ARGS:-}" REDIS_HA_FENCE_AFTER_MS="$_fence_after" \
        REDIS_HA_MIN_REPLICAS_TO_WRITE="${REDIS_HA_MIN_REPLICAS_TO_WRITE:-0}" sh "$_fence"
}

start() {
    decision=$(decide)
    if [ "${REDIS_HA_DRY_RUN:-0}" = 1 ]; then
        echo "$decision"
        exit 0
    fi
    # The delivered config, when there is one, is the current one (a password may have
    # changed since the last start); else the file in place.
    base=$conf
    if [ -n "$secrets_dir" ] && [ -f "$delivered_conf" ]; then
        base=$delivered_conf
        install_files
    fi
    [ -f "$base" ] || die "no config file $base"
    # Replace the replicaof rendered at deploy time or written by CONFIG REWRITE (which
    # may still say slaveof); the file's directory is writable
    # (docs/redis-notes.md#sentinel-rewrites-its-config).
    tmp="$conf.start.$$"
    grep -v -i -E '^[[:space:]]*(replicaof|slaveof)[[:space:]]' "$base" > "$tmp" || true
    case $decision in
        replicaof\ *) echo "$decision" >> "$tmp" ;;
    esac
    mv "$tmp" "$conf"
    supervise "hand_over stop" "${REDIS_HA_SERVER:-redis-server}" "$conf" "$@"
}

# --- live secrets (docs/redis-notes.md#rotating-passwords) ---------------------------
#   - users.acl: apply_acl (lib.sh); then the file replaces the aclfile next to
#     redis.conf: the live ACL is what a restart loads
#   - masterauth: CONFIG SET (and CONFIG REWRITE) only once the node it replicates
#     from (a master: each of its replicas) accepts the new `replica` password, so the
#     replication link never fails on a password
#   - admin.password and sentinel-client.password: the copies this script, the probe
#     and the hand-over read, replaced with the aclfile

# The copies next to redis.conf: the aclfile Redis loads at start, the password files
# this script, the probe and the hand-over read.
install_files() {
    [ "$secrets_dir" != "${admin_password_file%/*}" ] || return 0
    for _f in "${conf%/*}/users.acl" "$admin_password_file" "$client_password_file"; do
        [ ! -f "$secrets_dir/${_f##*/}" ] || replace_file "$secrets_dir/${_f##*/}" "$_f" || return 1
    done
}

# admin on this node with whichever of the two admin passwords works: the one in use
# (the copy) or the delivered one (a node that missed a phase).
admin_cli() {
    if [ "$(local_cli PING 2> /dev/null)" = PONG ]; then
        local_cli "$@"
    else
        cli admin "$secrets_dir/${admin_password_file##*/}" 127.0.0.1 "$port" "$@"
    fi
}

# The nodes that use this node's masterauth, or whose ACL it must match: its master
# (a replica), else its replicas (a master becomes a replica of one of them).
replication_peers() {
    local_cli INFO replication | tr -d '\r' | awk -F: '
        $1 == "role" { role = $2 }
        $1 == "master_host" { host = $2 }
        $1 == "master_port" { mport = $2 }
        $1 ~ /^slave[0-9]+$/ {
            n = split($2, kv, ",")
            for (i = 1; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }
            replicas = replicas v["ip"] " " v["port"] "\n"
        }
        END { if (role == "slave") print host " " mport; else printf "%s", replicas }'
}

apply_masterauth() {
    _new=$(sed -n 's/^masterauth[[:space:]][[:space:]]*//p' "$delivered_conf" | head -n 1 | tr -d '"\r')
    [ -n "$_new" ] || return 0
    _current=$(admin_cli CONFIG GET masterauth | tr -d '\r' | sed -n 2p)
    [ "$_new" = "$_current" ] && return 0
    _peers=$(replication_peers) || return 1
    _refused=$(printf '%s\n' "$_peers" | while read -r _h _p; do
        [ -n "$_h" ] || continue
        [ "$(answers replica "$_new" "$_h" "$_p")" = yes ] || echo "$_h:$_p"
    done)
    if [ -n "$_refused" ]; then
        log "secrets: the new replica password is not accepted by $(echo "$_refused" | tr '\n' ' ')yet; masterauth unchanged"
        return 1
    fi
    _ok=$(printf 'CONFIG SET masterauth %s\nCONFIG REWRITE\n' "$_new" | admin_cli 2>&1 | tr -d '\r' | grep -cx OK) || true
    [ "$_ok" = 2 ] || { log "secrets: CONFIG SET masterauth failed"; return 1; }
    log "secrets: masterauth changed"
}

apply_secrets() {
    apply_acl "$secrets_dir/users.acl" admin_cli || return 1
    # The ACL file Redis loads on a restart is the live ACL from here on.
    install_files || return 1
    apply_masterauth || return 1
}

# --- the hand-over --------------------------------------------------------------------

# The master's replication offset, and one "<host> <port> <offset>" line per replica.
master_offset() {
    local_cli INFO replication | tr -d '\r' | sed -n 's/^master_repl_offset://p'
}

replica_lines() {
    local_cli INFO replication | tr -d '\r' |
        sed -n 's/^slave[0-9]*:ip=\([^,]*\),port=\([0-9]*\),.*offset=\([0-9]*\).*/\1 \2 \3/p'
}

# The offset a replica has applied, as the replica itself reports it (the master
# learns it only from the once-a-second REPLCONF ACK).
replica_offset() {
    cli admin "$admin_password_file" "$1" "$2" INFO replication 2> /dev/null | tr -d '\r' |
        awk -F: '$1 == "master_link_status" && $2 != "up" { down = 1 }
                 $1 == "master_repl_offset" { offset = $2 }
                 END { if (!down && offset != "") print offset }'
}

# Succeeds once every replica has applied everything the (paused) master has.
replicas_caught_up() {
    _target=$(master_offset)
    [ -n "$_target" ] || return 1
    _lines=$(replica_lines)
    [ -n "$_lines" ] || return 1
    _behind=$(printf '%s\n' "$_lines" | while read -r _h _p _o; do
        [ "$(replica_offset "$_h" "$_p")" = "$_target" ] || echo "$_h:$_p"
    done)
    [ -z "$_behind" ]
}

unpause() {
    local_cli CLIENT UNPAUSE > /dev/null 2>&1 || true
}

# ask_failover: the first Sentinel that sees a majority of its peers (CKQUORUM) and
# accepts SENTINEL FAILOVER, which needs no vote: a stop never fails over from a
# minority side. Prints its address, else "refused: <the last Sentinel's reply>".
ask_failover() {
    _refusal="no Sentinel sees a majority of its peers"
    for _sentinel in $sentinels; do
        cli admin "$admin_password_file" "${_sentinel%:*}" "${_sentinel##*:}" \
            SENTINEL CKQUORUM "$master_name" 2> /dev/null | grep -q '^OK' || continue
        _reply=$(cli admin "$admin_password_file" "${_sentinel%:*}" "${_sentinel##*:}" \
            SENTINEL FAILOVER "$master_name" 2>&1 | tr -d '\r' | head -n 1) || true
        if [ "$_reply" = OK ]; then
            echo "$_sentinel"
            return 0
        fi
        _refusal="${_reply:-no reply}"
    done
    echo "refused: $_refusal"
}

# hand_over <why>: returns 0 when another node is master afterwards (or this node was
# not the master), 1 when this node is still the master.
hand_over() {
    _why=$1
    _master=$(sentinel_master)
    if [ -z "$_master" ]; then
        log "$_why: no Sentinel answered; nothing to hand over"
        return 1
    fi
    # shellcheck disable=SC2086
    set -- $_master
    if ! is_self "$1" "$2"; then
        log "$_why: $1:$2 is the master; nothing to hand over"
        NOT_MASTER=1
        return 0
    fi
    # A forced failover needs no vote, and a Sentinel counts a stopped peer as usable
    # until down-after-milliseconds has passed: so ask them all now, and hand over only
    # when a majority of the deployed Sentinels answer (never from a minority side).
    _answering=$(sentinel_answers "$client_password_file" "$master_name" "$sentinels" | grep -c .) || true
    # shellcheck disable=SC2086
    _total=$(echo $sentinels | wc -w)
    if [ "$_answering" -lt $((_total / 2 + 1)) ]; then
        log "$_why: only $_answering of $_total Sentinels answer; no hand-over without a majority"
        return 1
    fi
    # Held, not refused: nothing acknowledged from here on can miss the new master.
    if ! local_cli CLIENT PAUSE $(((failover_wait + catch_up_wait + accept_wait + 5) * 1000)) WRITE > /dev/null; then
        log "$_why: could not pause writes"
        return 1
    fi
    _tries=0
    until replicas_caught_up; do
        _tries=$((_tries + 1))
        if [ "$_tries" -ge $((catch_up_wait * 10)) ]; then
            log "$_why: the replicas did not catch up within ${catch_up_wait}s; staying master"
            unpause
            return 1
        fi
        sleep 0.1
    done
    # A replica restarted moments ago (a rolling update restarts the replicas, then the
    # master) is down for the Sentinels until one of their PINGs reaches it again, so
    # they refuse with NOGOODSLAVE: ask again for up to accept_wait seconds, writes held.
    _tries=0
    while :; do
        _asked=$(ask_failover)
        case $_asked in
            refused:*) ;;
            *) break ;;
        esac
        _tries=$((_tries + 1))
        if [ "$_tries" -gt $((accept_wait * 2)) ]; then
            log "$_why: no Sentinel with a majority accepted SENTINEL FAILOVER within ${accept_wait}s (${_asked#refused: }); staying master"
            unpause
            return 1
        fi
        [ "$_tries" != 1 ] || log "$_why: SENTINEL FAILOVER ${_asked}; asking again for up to ${accept_wait}s"
        sleep 0.5
    done
    log "$_why: replicas caught up; $_asked is failing over $master_name"
    _tries=0
    while [ "$_tries" -lt $((failover_wait * 10)) ]; do
        sleep 0.1
        _tries=$((_tries + 1))
        # The Sentinel leading the failover names the promoted replica as soon as it
        # reports itself master; the others learn it from the leader's hello messages
        # once every replica is reconfigured, a second or two later. Writes are held
        # until then only if the leader is not asked.
        _new=$(sentinel_answers "$client_password_file" "$master_name" "$_asked")
        [ -n "$_new" ] || continue
        # shellcheck disable=SC2086
        set -- $_new
        is_self "$1" "$2" && continue
        # Stop being a master now rather than when Sentinel converts this node
        # (seconds later); PSYNC lets it continue from the new master's backlog.
        local_cli REPLICAOF "$1" "$2" > /dev/null || log "$_why: REPLICAOF $1 $2 failed"
        unpause
        log "$_why: $1:$2 is the master after $((_tries / 10)).$((_tries % 10))s"
        return 0
    done
    log "$_why: still the master after ${failover_wait}s"
    unpause
    return 1
}

NOT_MASTER=0
case ${1:-start} in
    prestop)
        # Never fails: the pod is going away whatever the hook returns.
        hand_over prestop || true
        ;;
    switchover)
        hand_over switchover || exit 1
        if [ "$NOT_MASTER" = 1 ]; then
            log "switchover: run it on the master"
            exit 3
        fi
        ;;
    master)
        _master=$(sentinel_master)
        [ -n "$_master" ] || die "no Sentinel answered"
        echo "$_master"
        ;;
    start)
        [ $# -eq 0 ] || shift
        start "$@"
        ;;
    *) start "$@" ;;
esac
