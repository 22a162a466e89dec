#!/bin/sh
# The self-fence of a Redis master (docs/partitions.md). Started in the background by
# the node's supervisor (redis-start) and stopped with it; POSIX sh (dash, busybox ash).
#
# Every check interval it reads this node's role and, while the node is a master,
# starts a round of questions: every deployed Sentinel is asked in parallel which node
# is the master. Rounds run in the background (a slow or silent Sentinel never delays
# the next round, nor a decision), each question with a deadline. A Sentinel's answer
# naming this node is timed when it arrives (it was sent no later than that), and a
# round confirms the node as of the arrival of the answer that made the majority: a
# silent Sentinel holding the round open until the deadline adds nothing to the time
# a cut-off master stays confirmed, and a machine too loaded to run the rounds on time
# does not fence its master for that. Then, every interval:
#   - a majority of the deployed Sentinels names another node -> fence at once
#   - a node that was this master's replica answers ROLE as a master (a failover
#     promoted it while this node is alive: the Sentinels name it only seconds
#     later)                                                   -> fence at once
#   - no round started in the last REDIS_HA_FENCE_AFTER_MS got a majority naming this
#     node                                                     -> fence
#   - a majority names this node again and no replica of it is a master, or the node
#     is a replica                                             -> lift the fence
# A node that just became master (a failover, a hand-over) is named by the Sentinel that
# promoted it at once and by the others only once they hear of it (their hello messages,
# seconds later): for REDIS_HA_FENCE_SETTLE_MS after its promotion, one Sentinel naming
# it confirms it and the others naming the old master do not fence it. Even the
# promoting Sentinel names it only once it saw the promotion in the node's INFO (polled
# every second during a failover): for REDIS_HA_FENCE_GRACE_MS after its promotion, a
# majority naming another node does not fence it at once (a node promoted by hand,
# which no Sentinel will name, is fenced when that time is over).
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
#   REDIS_HA_FENCE_TIMEOUT_MS (the deadline of one question), REDIS_HA_FENCE_SETTLE_MS,
#   REDIS_HA_FENCE_GRACE_MS,
#   REDIS_HA_FENCE_TRACE=1 (a line per round: how the bench measures the rounds).
# shellcheck shell=sh
# Word splitting of lists and replies is wanted below, and globbing is off (set -f).
# shellcheck disable=SC2086,SC2046
set -eu
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
fence_after=${REDIS_HA_FENCE_AFTER_MS:-2000}
interval=${REDIS_HA_FENCE_INTERVAL_MS:-250}
deadline=${REDIS_HA_FENCE_TIMEOUT_MS:-1000}
trace=${REDIS_HA_FENCE_TRACE:-0}
# Sentinels exchange hello messages every 2 s: two of them, and a second to spare.
settle=${REDIS_HA_FENCE_SETTLE_MS:-5000}
# Sentinel's INFO period during a failover (1 s), and a round and some slack.
grace=${REDIS_HA_FENCE_GRACE_MS:-1500}
# No deployment has this many replicas (at most 8): its writes are all refused.
FENCE_MARK=1000

total=$(echo $sentinels | wc -w)
majority=$((total / 2 + 1))
# Rounds still waiting for answers; no more are started beyond this.
most_rounds=$((deadline / interval + 2))
# A writable place for the answers: TMPDIR or /tmp, else next to redis.conf (a pod's
# root filesystem is read-only; its config directory is a memory-backed volume).
work=$(mktemp -d "${TMPDIR:-/tmp}/redis-ha-fence.XXXXXX" 2> /dev/null) ||
    work=$(mktemp -d "${conf%/*}/redis-ha-fence.XXXXXX")
# On the way out: end the rounds still running (they would write into $work), then remove it.
cleanup() {
    set +f
    for _f in "$work"/running.*; do
        _pid=""
        read -r _pid 2> /dev/null < "$_f" || true
        [ -z "$_pid" ] || kill "$_pid" 2> /dev/null || true
    done
    rm -rf "$work" 2> /dev/null || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 0' TERM INT

log() {
    echo "redis-ha-fence: $*" >&2
}

# Sets `now`: milliseconds since boot (10 ms steps); whole seconds where /proc is
# missing. Builtins only: this loop runs four times a second on every node, and a fork
# is what a loaded machine makes slow.
clock() {
    if read -r _up _ < /proc/uptime 2> /dev/null; then
        _cs=${_up%.*}${_up#*.}
        now=$((${_cs#0} * 10))
    else
        now=$(($(date +%s) * 1000))
    fi
}

# secs <milliseconds>: sets `secs` to "1.250", what sleep takes.
secs() {
    _ms=$(($1 % 1000))
    while [ ${#_ms} -lt 3 ]; do _ms=0$_ms; done
    secs=$(($1 / 1000)).$_ms
}

# cli <file> <user> <password> <host> <port> <commands>: starts redis-cli in the
# background, its reply into <file>, its pid in `_cli`. The password and the commands go
# on stdin (--askpass reads the first line), never into an argument or the environment.
cli() {
    redis-cli --no-auth-warning --askpass $tls_args --user "$2" -h "$4" -p "$5" > "$1" 2> /dev/null << EOF &
$3
$6
EOF
    _cli=$!
}

# ask <file> <user> <password> <host> <port> <commands> [<then>]: cli in the background,
# added to `pids` (collect waits for them). With <then>, a background job waits for the
# reply and runs `<then> <file>` as it arrives; killed at the deadline, it kills its
# redis-cli first.
ask() {
    if [ -z "${7:-}" ]; then
        cli "$@"
    else
        (
            _cli=""
            trap '[ -z "$_cli" ] || kill "$_cli" 2> /dev/null; exit 0' TERM
            cli "$@"
            wait "$_cli" 2> /dev/null || true
            $7 "$1"
        ) &
        _cli=$!
    fi
    pids="$pids $_cli"
}

# refused <file>: true when the reply in <file> is a refused login.
refused() {
    line "$1"
    case $line in NOAUTH* | WRONGPASS*) return 0 ;; esac
    return 1
}

# again <file> <user> <previous password> <host> <port> <commands>: when the reply in
# <file> is a refused login and there is a previous password, asks again with it.
# A rotation changes this node's password file and a peer's ACL at different moments
# (docs/operations.md#rotating-passwords); a peer that refuses the new password is
# reachable and still takes the previous one, and the fence must not mistake it for a
# silent one.
again() {
    [ -n "$3" ] && refused "$1" || return 0
    ask "$@"
}

# named <file>: sets `_host` and `_port` to the master a Sentinel's reply in <file>
# names; false for anything else (no reply, an error, no known master).
named() {
    _host="" _port="" _more=""
    { IFS= read -r _host && IFS= read -r _port && IFS= read -r _more; } 2> /dev/null < "$1" || true
    _host=${_host%"$CR"} _port=${_port%"$CR"}
    [ -n "$_host" ] && [ -z "$_more" ] || return 1
    case $_port in '' | *[!0-9]*) return 1 ;; esac
}

# arrived <file q.<round>.<i>>: run as a Sentinel's reply arrives; when it names this
# node, writes the arrival time into yes.<round>.<i> (the main loop reads those while
# the round still waits for the others).
arrived() {
    named "$1" && is_self "$_host" "$_port" || return 0
    clock
    _yes=$work/yes.${1##*/q.}
    echo "$now" > "$_yes.tmp"
    mv -f "$_yes.tmp" "$_yes"
}
ask_timed() { ask "$@" arrived; }
again_timed() { again "$@" arrived; }

# Waits for every started redis-cli, killing those still running at the deadline
# (redis-cli 7.0 has no connect timeout; a dropped SYN would hang it for minutes).
collect() {
    [ -n "$pids" ] || return 0
    secs "$deadline"
    (
        sleep "$secs"
        kill $pids 2> /dev/null
    ) &
    _dog=$!
    wait $pids 2> /dev/null || true
    kill "$_dog" 2> /dev/null || true
    wait "$_dog" 2> /dev/null || true
    pids=""
}

CR=$(printf '\r')

# line <file>: sets `line` to the first line of <file> (without a CR), "" if none.
line() {
    line=""
    IFS= read -r line 2> /dev/null < "$1" || true
    line=${line%"$CR"}
}

# kth <k> <numbers>...: sets `kth` to the k-th smallest of the numbers, 0 if fewer.
kth() {
    _k=$1
    shift
    kth=0
    for _a in "$@"; do
        _le=0
        for _b in "$@"; do
            [ "$_b" -gt "$_a" ] || _le=$((_le + 1))
        done
        [ "$_le" -ge "$_k" ] && { [ "$kth" = 0 ] || [ "$_a" -lt "$kth" ]; } && kth=$_a
    done
    return 0
}

is_self() {
    for _addr in $self_addrs; do
        [ "$1:$2" = "$_addr:$port" ] && return 0
    done
    return 1
}

# each <ask|again> <file prefix> <user> <password> <commands> <host:port>...: runs it for
# every address, the reply of the i-th into <file prefix>.<i>.
each() {
    _fn=$1 _pre=$2 _u=$3 _pw=$4 _c=$5
    shift 5
    _i=0
    for _a in "$@"; do
        _i=$((_i + 1))
        $_fn "$_pre.$_i" "$_u" "$_pw" "${_a%:*}" "${_a##*:}" "$_c"
    done
}

# round <start>: asks every Sentinel which node is master and every node this one has
# had as a replica its ROLE; writes "<Sentinels naming this node> <most naming one other
# node> <that node> <when the round ended> <a replica answering master, or ->" into
# $work/answer.<start>. Runs in the background.
round() {
    _start=$1
    _files=""
    pids=""
    _q="SENTINEL GET-MASTER-ADDR-BY-NAME $master_name"
    each ask_timed "$work/q.$_start" sentinel-client "$sent_pw" "$_q" $sentinels
    each ask "$work/p.$_start" admin "$adm_pw" ROLE $peers
    collect
    each again_timed "$work/q.$_start" sentinel-client "$sent_prev" "$_q" $sentinels
    each again "$work/p.$_start" admin "$adm_prev" ROLE $peers
    collect
    # A node that was this master's replica and now answers that it is a master: a
    # failover promoted it (or an operator did), whatever the Sentinels say yet.
    _rival=-
    _i=0
    for _p in $peers; do
        _i=$((_i + 1))
        _files="$_files $work/p.$_start.$_i"
        line "$work/p.$_start.$_i"
        [ "$line" != master ] || _rival=$_p
    done
    _self=0
    _others=""
    _i=0
    for _s in $sentinels; do
        _i=$((_i + 1))
        _files="$_files $work/q.$_start.$_i"
        named "$work/q.$_start.$_i" || continue
        if is_self "$_host" "$_port"; then
            _self=$((_self + 1))
        else
            _others="$_others $_host:$_port"
        fi
    done
    # The other node most answers name, and how many name it.
    _best=0 _other=-
    for _a in $_others; do
        _n=0
        for _b in $_others; do
            [ "$_a" != "$_b" ] || _n=$((_n + 1))
        done
        [ "$_n" -le "$_best" ] || _best=$_n _other=$_a
    done
    clock
    echo "$_self $_best $_other $now $_rival" > "$work/tmp.$_start"
    mv -f "$work/tmp.$_start" "$work/answer.$_start"
    rm -f $_files
}

# local_ask <file> <commands>: runs them on this node within the deadline (the previous
# admin password too, if the node refuses the file's).
local_ask() {
    pids=""
    ask "$1" admin "$adm_pw" 127.0.0.1 "$port" "$2"
    collect
    again "$1" admin "$adm_prev" 127.0.0.1 "$port" "$2"
    collect
}

# admin <commands>: runs them on this node within the deadline; sets `line` to the
# first line of the reply.
admin() {
    local_ask "$work/admin" "$1"
    line "$work/admin"
}

# passwords: reads both password files; the value each had before its last change is
# kept as the previous one (in this shell's memory only).
passwords() {
    line "$admin_password_file"
    [ -z "$line" ] || [ "$line" = "$adm_pw" ] || adm_prev=$adm_pw adm_pw=$line
    line "$client_password_file"
    [ -z "$line" ] || [ "$line" = "$sent_pw" ] || sent_prev=$sent_pw sent_pw=$line
}

fence() {
    [ "$fenced" = 1 ] || saved=$live
    [ -n "$saved" ] && [ "$saved" != "$FENCE_MARK" ] || saved=$deployed_min_replicas
    admin "CONFIG SET min-replicas-to-write $FENCE_MARK"
    _reply=$line
    if [ "$fenced" = 0 ]; then
        log "FENCED: $1; writes are refused (NOREPLICAS) until a majority of the Sentinels names this node again or it is a replica"
        fenced_at=$now
    fi
    # Checked again next interval (the live value), whatever the reply.
    [ "$_reply" = OK ] || log "the fence (CONFIG SET) got no OK within ${deadline} ms"
    fenced=1
}

lift() {
    admin "CONFIG SET min-replicas-to-write $saved"
    if [ "$line" != OK ]; then
        log "no answer to the lift (CONFIG SET) yet; trying again"
        return 0
    fi
    # Sentinel's demotion ends with CONFIG REWRITE: never leave the mark in the file.
    if [ -n "$conf" ] && grep -qx "min-replicas-to-write $FENCE_MARK" "$conf" 2> /dev/null; then
        admin "CONFIG REWRITE"
        [ "$line" = OK ] || log "CONFIG REWRITE failed: $conf still has the fence"
    fi
    secs $((now - fenced_at))
    log "fence lifted: $1 (fenced for ${secs}s); min-replicas-to-write is $saved again"
    fenced=0
}

adm_pw="" adm_prev="" sent_pw="" sent_prev=""
# remember <INFO replication line of a replica>: adds "<host>:<port>" to `peers`, the
# nodes this one has had as replicas (at most MOST_PEERS, the newest kept).
MOST_PEERS=8
remember() {
    _h=${1#*:ip=}
    _h=${_h%%,*}
    _pt=${1#*,port=}
    _pt=${_pt%%,*}
    case " $peers " in *" $_h:$_pt "*) return 0 ;; esac
    peers="$peers $_h:$_pt"
    set -- $peers
    while [ $# -gt "$MOST_PEERS" ]; do shift; done
    peers="$*"
}

peers=""
rival=-
fenced=0
fenced_at=0
saved=$deployed_min_replicas
counted_at=0
clock
confirmed_at=$now
promoted_at=-$settle
was_master=""
log "watching $master_name: fence after ${fence_after} ms without a majority of the $total Sentinels naming this node"
while :; do
    clock
    started=$now
    passwords
    local_ask "$work/local" "INFO replication
CONFIG GET min-replicas-to-write"
    clock
    role="" live="" _next=0
    while IFS= read -r _l; do
        _l=${_l%"$CR"}
        [ "$_next" = 0 ] || live=$_l _next=0
        case $_l in
            role:*) role=${_l#role:} ;;
            min-replicas-to-write) _next=1 ;;
            slave[0-9]*:ip=*,port=*) remember "$_l" ;;
        esac
    done < "$work/local"
    if [ "$live" = "$FENCE_MARK" ] && [ "$fenced" = 0 ]; then
        # The mark without this script's fence: a config rewritten while fenced, or a
        # fence whose reply came late. Fenced, and the lift restores the deployed value.
        fenced=1
        fenced_at=$now
        [ "$saved" != "$FENCE_MARK" ] || saved=$deployed_min_replicas
        log "FENCED: the node runs with min-replicas-to-write $FENCE_MARK"
    fi
    # Just promoted: one Sentinel naming this node is enough for a while.
    if [ "$role" = master ] && [ "$was_master" = 0 ]; then
        promoted_at=$now confirmed_at=$now
        log "this node is master now: for ${settle} ms one Sentinel naming it confirms it"
    fi
    [ -z "$role" ] || { [ "$role" = master ] && was_master=1; } || was_master=0
    _needed=$majority
    [ $((now - promoted_at)) -ge "$settle" ] || _needed=1
    # The answers of the rounds that ended; the latest decides about another master.
    named_self=0 named_other=0 _latest=0 _running=0 _renamed=0
    set +f
    # Rounds running or ended: this node is confirmed as of the arrival of the answer
    # that made the needed count (yes.<round>.<i>, written as each answer arrives).
    for _r in "$work"/running.*; do
        [ -e "$_r" ] || continue
        _at=${_r##*.} _times=""
        for _y in "$work"/yes."$_at".*; do
            _t=""
            read -r _t 2> /dev/null < "$_y" || true
            [ -z "$_t" ] || _times="$_times $_t"
        done
        kth "$_needed" $_times
        [ "$kth" -le "$confirmed_at" ] || confirmed_at=$kth
    done
    for _f in "$work"/answer.*; do
        [ -e "$_f" ] || continue
        _at=${_f##*.}
        read -r _self _count _other _end _rival < "$_f" || true
        # Reap the round (its job would stay in the shell's table).
        _pid=""
        read -r _pid < "$work/running.$_at" || true
        [ -z "$_pid" ] || wait "$_pid" 2> /dev/null || true
        rm -f "$_f" "$work/running.$_at" "$work"/yes."$_at".*
        if [ "${_self:-0}" -ge "$_needed" ] && [ "${_self:-0}" -gt 0 ]; then
            named_self=$_self
            # Only a round that started after the fence lifts it.
            [ "$_at" -le "$fenced_at" ] || _renamed=1
        fi
        if [ "$_at" -gt "$_latest" ]; then
            _latest=$_at named_other=0 rival=-
            [ "${_count:-0}" -lt "$majority" ] || [ "${_self:-0}" -ge "$_needed" ] || named_other=$_count other=$_other
            rival=${_rival:--}
        fi
        [ "$trace" = 0 ] || log "round: $((now - _at)) ms, $_self name this node, $_count name $_other"
    done
    for _f in "$work"/running.*; do
        [ ! -e "$_f" ] || _running=$((_running + 1))
    done
    set -f
    if [ "$role" = slave ]; then
        confirmed_at=$now
        [ "$fenced" = 0 ] || lift "this node is a replica"
    elif [ "$role" = master ]; then
        if [ "$_running" -lt "$most_rounds" ]; then
            (round "$started") &
            echo "$!" > "$work/running.$started"
        fi
        if [ "$named_other" -ge "$majority" ] && [ $((now - promoted_at)) -ge "$grace" ]; then
            if [ "$fenced" = 0 ] || [ "$live" != "$FENCE_MARK" ]; then
                fence "$named_other of $total Sentinels name $other the master"
            fi
        elif [ "$rival" != - ]; then
            if [ "$fenced" = 0 ] || [ "$live" != "$FENCE_MARK" ]; then
                fence "$rival, a replica of this node, answers that it is a master"
            fi
        elif [ "$fenced" = 1 ]; then
            if [ "$_renamed" = 1 ]; then
                lift "$named_self of $total Sentinels name this node"
            elif [ "$live" != "$FENCE_MARK" ]; then
                fence "the fence was removed while no majority names this node"
            fi
        elif [ $((now - confirmed_at)) -ge "$fence_after" ]; then
            fence "no majority of the $total Sentinels named this node for $((now - confirmed_at)) ms"
        fi
        if [ "$fenced" = 1 ] && [ $((now - counted_at)) -ge 1000 ]; then
            counted_at=$now
            admin "EVAL \"return redis.error_reply('FENCED this master is fenced by redis-ha')\" 0"
        fi
    fi
    # One round every interval; a replica only looks at its role, once a second.
    _period=$interval
    [ "$role" = master ] || _period=$((interval * 4))
    clock
    if [ $((now - started)) -lt "$_period" ]; then
        secs $((_period - (now - started)))
        sleep "$secs"
    fi
done
