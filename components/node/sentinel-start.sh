#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# Start-up of a Sentinel: its state survives, its settings follow the stack
# (docs/node-scripts.md).
#
# Sentinel rewrites its config file with what it learned: the current master (after a
# failover), the epochs, the replicas and the other Sentinels. That file lives on the
# node's own volume (REDIS_HA_SENTINEL_STATE); the rendered file (REDIS_HA_SENTINEL_SEED)
# only seeds it (docs/redis-notes.md#sentinel-state-survives):
#   - no state yet: the rendered file, monitoring the master that the other Sentinels
#     name (a majority), else the one Redis node that reports itself master, else the
#     deploy-time master
#   - state for the same master name: the rendered settings (ports, users, passwords,
#     quorum, timeouts) with the state's current master, epochs, known replicas and
#     known Sentinels
#
# While Sentinel runs, the watcher applies a change of the delivered secrets
# (REDIS_HA_SECRETS_DIR, their version in secrets.version) live
# (docs/redis-notes.md#rotating-passwords):
#   - the `user` lines of the delivered file as ACL SETUSER <user> resetpass ... <rules>
#   - `sentinel auth-pass` (how it logs in to the Redis nodes) with SENTINEL SET, only
#     once the master and every Redis node that answers accept the new password
#   - `sentinel sentinel-pass` (how it logs in to its peers) with SENTINEL CONFIG SET,
#     only once every peer that answers accepts it
# and records the version in REDIS_HA_APPLIED_FILE. Sentinel saves both settings in its
# state file itself.
#
# Settings: node.env next to this script, or the environment (which wins).
set -eu

# shellcheck source=lib.sh
. "${0%/*}/lib.sh"
init sentinel-start
need REDIS_HA_SENTINEL_SEED REDIS_HA_SENTINEL_STATE REDIS_HA_MASTER_NAME REDIS_HA_PORT \
    REDIS_HA_SENTINEL_PASSWORD_FILE

seed=$REDIS_HA_SENTINEL_SEED
state=$REDIS_HA_SENTINEL_STATE
master_name=$REDIS_HA_MASTER_NAME
# Either list may be empty: a lone Sentinel, or none of the Redis nodes to ask.
peers=${REDIS_HA_SENTINELS:-}
redis_nodes=${REDIS_HA_REDIS_NODES:-}
self_host=${REDIS_HA_HOSTNAME:-$(hostname)${REDIS_HA_HOSTNAME_SUFFIX:-}}
port=$REDIS_HA_PORT
secrets_dir=${REDIS_HA_SECRETS_DIR:-}
delivered_seed=$secrets_dir/sentinel.conf
[ "${REDIS_HA_PER_NODE_FILES:-0}" != 1 ] || delivered_seed=$secrets_dir/$(hostname).sentinel.conf
# The other Sentinels are asked as the read-only `sentinel-client`, the Redis nodes as
# `sentinel` (its password is in the rendered file).
client_password_file=$REDIS_HA_SENTINEL_PASSWORD_FILE

# The delivered file, when there is one, is the current one (a password may have
# changed since the last start).
if [ -n "$secrets_dir" ] && [ -f "$delivered_seed" ]; then
    seed=$delivered_seed
fi
sentinel_password=$(sed -n 's/^sentinel auth-pass [^ ]* //p' "$seed" | head -n 1 | tr -d '"')

# "<host> <port>" most other Sentinels name, if any answers.
peers_master() {
    sentinel_answers "$client_password_file" "$master_name" "$peers" "$self_host" | majority
}

# "<host> <port>" of the one Redis node that reports role:master, if exactly one does.
reported_master() {
    _found=""
    _count=0
    for _node in $redis_nodes; do
        _role=$(cli_as sentinel "$sentinel_password" "${_node%:*}" "${_node##*:}" INFO replication 2> /dev/null |
            tr -d '\r' | sed -n 's/^role://p') || continue
        if [ "$_role" = master ]; then
            _found="${_node%:*} ${_node##*:}"
            _count=$((_count + 1))
        fi
    done
    [ "$_count" -eq 1 ] && echo "$_found"
    return 0
}

# seed_with <host> <port>: the rendered file, monitoring <host> <port>.
seed_with() {
    awk -v name="$master_name" -v host="$1" -v port="$2" '
        $1 == "sentinel" && $2 == "monitor" && $3 == name { $4 = host; $5 = port }
        { print }' "$seed"
}

state_monitor=""
if [ -s "$state" ]; then
    state_monitor=$(awk -v name="$master_name" '$1 == "sentinel" && $2 == "monitor" && $3 == name { print $4, $5 }' "$state")
fi
tmp="$state.start.$$"
if [ -n "$state_monitor" ]; then
    log "state found: $master_name is at $state_monitor"
    # shellcheck disable=SC2086
    set -- $state_monitor
    {
        seed_with "$1" "$2"
        # What this Sentinel learned; everything else comes from the rendered file.
        awk -v name="$master_name" '
            $1 == "sentinel" && ($2 == "myid" || $2 == "current-epoch") { print; next }
            $1 == "sentinel" && $3 == name && ($2 == "config-epoch" || $2 == "leader-epoch" ||
                $2 == "known-replica" || $2 == "known-sentinel") { print }' "$state"
    } > "$tmp"
else
    master=$(peers_master)
    if [ -n "$master" ]; then
        log "no state; the other Sentinels name $master"
    else
        master=$(reported_master)
        if [ -n "$master" ]; then
            log "no state and no other Sentinel answered; $master reports itself master"
        fi
    fi
    if [ -n "$master" ]; then
        # shellcheck disable=SC2086
        set -- $master
        seed_with "$1" "$2" > "$tmp"
    else
        log "no state, no Sentinel and no master answered: the deploy-time master"
        # Not cp: it would give the state the seed's mode (0400 on Kubernetes, where
        # the init container copies it from a 0440 Secret), and Sentinel refuses to
        # start with a config file it cannot rewrite.
        cat "$seed" > "$tmp"
    fi
fi
mv "$tmp" "$state"
[ "${REDIS_HA_DRY_RUN:-0}" = 1 ] && exit 0

# --- live secrets (docs/redis-notes.md#rotating-passwords) ---------------------------

# The admin password that logs in to this Sentinel: the delivered one, else the one
# that worked last (before the ACL change that brings the delivered one is applied).
# Sets admin_pw (no command substitution: what it learns must outlive the call).
admin_known=$(tr -d '\r\n' 2> /dev/null < "$secrets_dir/admin.password" || true)
admin_pw=""
admin_password() {
    _candidate=$(tr -d '\r\n' 2> /dev/null < "$secrets_dir/admin.password" || true)
    for _try in "$_candidate" "$admin_known"; do
        [ -n "$_try" ] || continue
        if [ "$(answers admin "$_try" 127.0.0.1 "$port")" = yes ]; then
            admin_known=$_try
            admin_pw=$_try
            return 0
        fi
    done
    log "secrets: neither admin password logs in to this Sentinel"
    return 1
}

# sentinel_admin <command...>: admin on this Sentinel, commands on stdin without one.
sentinel_admin() {
    cli_as admin "$admin_pw" 127.0.0.1 "$port" "$@"
}

# conf_value <file> <prefix>: the rest of the first line that starts with <prefix>.
conf_value() {
    awk -v prefix="$2 " 'index($0, prefix) == 1 { print substr($0, length(prefix) + 1); exit }' "$1" | tr -d '"'
}

apply_auth_pass() {
    _new=$(conf_value "$seed" "sentinel auth-pass $master_name")
    _current=$(conf_value "$state" "sentinel auth-pass $master_name")
    [ -n "$_new" ] && [ "$_new" != "$_current" ] || return 0
    _master=$(sentinel_admin SENTINEL GET-MASTER-ADDR-BY-NAME "$master_name" | tr -d '\r' | tr '\n' ' ')
    # shellcheck disable=SC2086
    set -- $_master
    [ $# -eq 2 ] || { log "secrets: no master known; auth-pass unchanged"; return 1; }
    if [ "$(answers sentinel "$_new" "$1" "$2")" != yes ]; then
        log "secrets: the master does not accept the new sentinel password yet; auth-pass unchanged"
        return 1
    fi
    for _node in $redis_nodes; do
        if [ "$(answers sentinel "$_new" "${_node%:*}" "${_node##*:}")" = no ]; then
            log "secrets: ${_node%:*} does not accept the new sentinel password yet; auth-pass unchanged"
            return 1
        fi
    done
    _reply=$(printf 'SENTINEL SET %s auth-pass %s\n' "$master_name" "$_new" | sentinel_admin 2>&1 | tr -d '\r')
    [ "$_reply" = OK ] || { log "secrets: SENTINEL SET auth-pass failed"; return 1; }
    log "secrets: auth-pass changed"
}

apply_sentinel_pass() {
    _new=$(conf_value "$seed" "sentinel sentinel-pass")
    _current=$(conf_value "$state" "sentinel sentinel-pass")
    [ -n "$_new" ] && [ "$_new" != "$_current" ] || return 0
    for _peer in $peers; do
        [ "${_peer%:*}" = "$self_host" ] && [ "${_peer##*:}" = "$port" ] && continue
        if [ "$(answers sentinel "$_new" "${_peer%:*}" "${_peer##*:}")" = no ]; then
            log "secrets: ${_peer%:*} does not accept the new peer password yet; sentinel-pass unchanged"
            return 1
        fi
    done
    _reply=$(printf 'SENTINEL CONFIG SET sentinel-pass %s\n' "$_new" | sentinel_admin 2>&1 | tr -d '\r')
    [ "$_reply" = OK ] || { log "secrets: SENTINEL CONFIG SET sentinel-pass failed"; return 1; }
    log "secrets: sentinel-pass changed"
}

apply_secrets() {
    admin_password || return 1
    apply_acl "$seed" sentinel_admin || return 1
    apply_auth_pass || return 1
    apply_sentinel_pass || return 1
    # The delivered admin password logs in from now on.
    admin_password || true
}

# The one place background watchers start beside Sentinel (supervise calls it).
start_watchers() {
    if watching; then
        background watch_secrets apply_secrets
    fi
}

# Sentinel runs as a child, so that this script can watch the delivered secrets; a stop
# is passed on to it.
supervise : "${REDIS_HA_SERVER:-redis-server}" "$state" --sentinel
