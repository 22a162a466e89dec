#!/bin/sh
# The self-fence of a Redis master (docs/partitions.md). Started in the background by
# the node's supervisor (redis-start) and stopped with it; POSIX sh (dash, busybox ash).
#
# Every check interval it reads this node's role and, while the node is a master, asks
# every deployed Sentinel in parallel, with a short deadline, which node is the master:
#   - a majority of the deployed Sentinels names another node -> fence at once
#   - no majority has named this node for REDIS_HA_FENCE_AFTER_MS -> fence
#   - a majority names this node again, or the node is a replica   -> lift the fence
# The fence is `CONFIG SET min-replicas-to-write <FENCE_MARK>`: more replicas than any
# deployment has, so every write (and EXEC, and a writing script) gets -NOREPLICAS at
# once and nothing written after it can be acknowledged, by the reply or by WAIT. The
# lift restores the value the node had. Once a second while fenced it records an error
# of type FENCED (INFO errorstats; redis_exporter: redis_errors_total{err="FENCED"}),
# so the fenced seconds are a counter Prometheus scrapes.
#
# Environment (redis-start passes its own values; the unit tests their own):
#   REDIS_HA_PORT, REDIS_HA_MASTER_NAME, REDIS_HA_SENTINELS ("host:port ..."),
#   REDIS_HA_SELF_ADDRS (the names and addresses Sentinel may give this node),
#   REDIS_HA_SENTINEL_PASSWORD_FILE, REDIS_HA_ADMIN_PASSWORD_FILE, REDIS_HA_CONF,
#   REDIS_HA_TLS_ARGS, REDIS_HA_MIN_REPLICAS_TO_WRITE (the deployed value: restored when
#   the node started fenced), REDIS_HA_FENCE_AFTER_MS, REDIS_HA_FENCE_INTERVAL_MS,
#   REDIS_HA_FENCE_TIMEOUT_MS (the deadline of one round of questions),
#   REDIS_HA_FENCE_TRACE=1 (a line per round: how the bench measures the rounds).
# shellcheck shell=sh
# Word splitting of lists and replies is wanted below, and globbing is off (set -f).
# shellcheck disable=SC2086,SC2046
set -eu
# Replies are split into words; never expand them as globs.
set -f
umask 077

port=${REDIS_HA_PORT:?REDIS_HA_PORT is not set}
master_name=${REDIS_HA_MASTER_NAME:?REDIS_HA_MASTER_NAME is not set}
sentinels=${REDIS_HA_SENTINELS:?REDIS_HA_SENTINELS is not set}
self_addrs=${REDIS_HA_SELF_ADDRS:?REDIS_HA_SELF_ADDRS is not set}
client_password_file=${REDIS_HA_SENTINEL_PASSWORD_FILE:?REDIS_HA_SENTINEL_PASSWORD_FILE is not set}
admin_password_file=${REDIS_HA_ADMIN_PASSWORD_FILE:?REDIS_HA_ADMIN_PASSWORD_FILE is not set}
conf=${REDIS_HA_CONF:-}
tls_args=${REDIS_HA_TLS_ARGS:-}
deployed_min_replicas=${REDIS_HA_MIN_REPLICAS_TO_WRITE:-0}
fence_after=${REDIS_HA_FENCE_AFTER_MS:-1000}
interval=${REDIS_HA_FENCE_INTERVAL_MS:-250}
deadline=${REDIS_HA_FENCE_TIMEOUT_MS:-250}
# No deployment has this many replicas (at most 8): its writes are all refused.
FENCE_MARK=1000

total=$(echo $sentinels | wc -w)
majority=$((total / 2 + 1))
work=$(mktemp -d "${TMPDIR:-/tmp}/redis-ha-fence.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 0' TERM INT

log() {
    echo "redis-ha-fence: $*" >&2
}

# Milliseconds since boot (10 ms steps); whole seconds where /proc is missing.
now_ms() {
    if read -r _up _ < /proc/uptime 2> /dev/null; then
        _cs=${_up%.*}${_up#*.}
        echo $((${_cs#0} * 10))
    else
        echo $(($(date +%s) * 1000))
    fi
}

# seconds <milliseconds>: "1.250", what sleep takes.
seconds() {
    printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000))
}

# ask <name> <user> <password> <host> <port> <commands>: starts redis-cli in the
# background, its reply into $work/<name>. The password and the commands go on stdin
# (--askpass reads the first line), never into an argument or the environment.
ask() {
    redis-cli --no-auth-warning --askpass $tls_args --user "$2" -h "$4" -p "$5" > "$work/$1" 2> /dev/null << EOF &
$3
$6
EOF
    pids="$pids $!"
}

# Waits for every started redis-cli, killing those still running at the deadline
# (redis-cli 7.0 has no connect timeout; a dropped SYN would hang it for minutes).
collect() {
    [ -n "$pids" ] || return 0
    (
        sleep "$(seconds "$deadline")"
        kill $pids 2> /dev/null
    ) &
    _dog=$!
    wait $pids 2> /dev/null || true
    kill "$_dog" 2> /dev/null || true
    wait "$_dog" 2> /dev/null || true
    pids=""
}

read_password() {
    tr -d '\r\n' < "$1" 2> /dev/null || true
}

is_self() {
    for _addr in $self_addrs; do
        [ "$1:$2" = "$_addr:$port" ] && return 0
    done
    return 1
}

# local_state: sets role ("" when the node did not answer) and live (its
# min-replicas-to-write) from the reply in $work/local.
local_state() {
    role=$(tr -d '\r' < "$work/local" | sed -n 's/^role://p')
    live=$(tr -d '\r' < "$work/local" | sed -n '/^min-replicas-to-write$/{n;p;}')
}

# count_answers: sets named_self (answers naming this node), named_other (the most
# answers naming one other node) and other (that node).
count_answers() {
    named_self=0
    named_other=0
    other=""
    _others=""
    _i=0
    for _s in $sentinels; do
        _i=$((_i + 1))
        set -- $(tr -d '\r' 2> /dev/null < "$work/s$_i" || true)
        [ $# -eq 2 ] || continue
        case $2 in '' | *[!0-9]*) continue ;; esac
        if is_self "$1" "$2"; then
            named_self=$((named_self + 1))
        else
            _others="$_others$1:$2
"
        fi
    done
    [ -n "$_others" ] || return 0
    set -- $(printf '%s' "$_others" | sort | uniq -c | sort -k1,1nr | head -n 1)
    named_other=$1
    other=$2
}

# admin <commands>: runs them on this node within the deadline; prints the reply.
admin() {
    pids=""
    ask admin admin "$(read_password "$admin_password_file")" 127.0.0.1 "$port" "$1"
    collect
    tr -d '\r' < "$work/admin"
}

fence() {
    if [ "$fenced" = 0 ]; then
        # What the node runs with now is what the lift restores; a node that started
        # with the mark (a config rewritten while fenced) gets the deployed value.
        saved=$live
        [ -n "$saved" ] && [ "$saved" != "$FENCE_MARK" ] || saved=$deployed_min_replicas
    fi
    if [ "$(admin "CONFIG SET min-replicas-to-write $FENCE_MARK")" != OK ]; then
        log "could not fence this master (CONFIG SET failed); trying again"
        return 0
    fi
    if [ "$fenced" = 0 ]; then
        fenced=1
        fenced_at=$now
        log "FENCED: $1; writes are refused (NOREPLICAS) until a majority of the Sentinels names this node again or it is a replica"
    fi
}

lift() {
    if [ "$(admin "CONFIG SET min-replicas-to-write $saved")" != OK ]; then
        log "could not lift the fence (CONFIG SET failed); trying again"
        return 0
    fi
    # Sentinel's demotion ends with CONFIG REWRITE: never leave the mark in the file.
    if [ -n "$conf" ] && grep -qx "min-replicas-to-write $FENCE_MARK" "$conf" 2> /dev/null; then
        [ "$(admin "CONFIG REWRITE")" = OK ] || log "CONFIG REWRITE failed: $conf still has the fence"
    fi
    log "fence lifted: $1 (fenced for $(seconds $((now - fenced_at)))s); min-replicas-to-write is $saved again"
    fenced=0
}

fenced=0
fenced_at=0
saved=$deployed_min_replicas
counted_at=0
pids=""
confirmed_at=$(now_ms)
log "watching $master_name: fence after ${fence_after} ms without a majority of the $total Sentinels naming this node"
while :; do
    started=$(now_ms)
    pids=""
    _local="INFO replication
CONFIG GET min-replicas-to-write"
    ask local admin "$(read_password "$admin_password_file")" 127.0.0.1 "$port" "$_local"
    _pw=$(read_password "$client_password_file")
    _i=0
    for _s in $sentinels; do
        _i=$((_i + 1))
        rm -f "$work/s$_i"
        ask "s$_i" sentinel-client "$_pw" "${_s%:*}" "${_s##*:}" "SENTINEL GET-MASTER-ADDR-BY-NAME $master_name"
    done
    collect
    now=$(now_ms)
    local_state
    if [ "$live" = "$FENCE_MARK" ] && [ "$fenced" = 0 ]; then
        # Started with the mark (the config was rewritten while fenced): fenced.
        fenced=1
        fenced_at=$now
        saved=$deployed_min_replicas
    fi
    if [ "$role" = slave ]; then
        confirmed_at=$now
        [ "$fenced" = 0 ] || lift "this node is a replica"
    elif [ "$role" = master ]; then
        count_answers
        [ "${REDIS_HA_FENCE_TRACE:-0}" = 0 ] ||
            log "round: $((now - started)) ms, $named_self name this node, $named_other name ${other:-another}"
        if [ "$named_self" -ge "$majority" ]; then
            confirmed_at=$now
            [ "$fenced" = 0 ] || lift "$named_self of $total Sentinels name this node"
        elif [ "$fenced" = 1 ] && [ "$live" = "$FENCE_MARK" ]; then
            : # fenced, and it stays so
        elif [ "$named_other" -ge "$majority" ]; then
            fence "$named_other of $total Sentinels name $other the master"
        elif [ $((now - confirmed_at)) -ge "$fence_after" ]; then
            fence "no majority of the $total Sentinels named this node for $((now - confirmed_at)) ms ($named_self named it)"
        fi
        if [ "$fenced" = 1 ] && [ $((now - counted_at)) -ge 1000 ]; then
            counted_at=$now
            admin "EVAL \"return redis.error_reply('FENCED this master is fenced by redis-ha')\" 0" > /dev/null
        fi
    fi
    # One round every interval (a round that ran into the deadline starts the next at once).
    _spent=$(($(now_ms) - started))
    [ "$_spent" -ge "$interval" ] || sleep "$(seconds $((interval - _spent)))"
done
