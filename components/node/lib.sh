# The library every node script sources (docs/node-scripts.md): POSIX sh, for dash
# and busybox ash. It defines functions only, plus `log_tag`; the caller sets `set -eu`.
#
# Every deploy-time value comes from the node's env file (`node.env` next to the
# scripts, rendered by components/node_env.py; it holds no secret) or the environment,
# which wins: that is how the unit tests drive the scripts against local processes.
# shellcheck shell=sh

log_tag=${log_tag:-node}

# init <tag>: how every script starts after sourcing this file: logs as <tag>, never
# expands a split reply as a glob, writes files for its own user only (a rewritten
# config holds passwords), and loads REDIS_HA_ENV_FILE, by default node.env beside the
# script.
init() {
    log_tag=$1
    set -f
    umask 077
    load_env "${REDIS_HA_ENV_FILE:-${0%/*}/node.env}"
}

log() {
    echo "$log_tag: $*" >&2
}

die() {
    log "error: $*"
    exit 1
}

# load_env <file>: every `KEY=value` line (the value is the rest of the line, taken
# as is) sets KEY unless the environment already sets it. A missing file sets nothing.
load_env() {
    [ -r "$1" ] || return 0
    while IFS= read -r _line || [ -n "$_line" ]; do
        case $_line in
            '' | '#'*) continue ;;
        esac
        _key=${_line%%=*}
        case $_key in
            '' | [0-9]* | *[!A-Za-z0-9_]*) die "$1: not a KEY=value line: $_line" ;;
        esac
        eval "_set=\${$_key+1}"
        [ -n "$_set" ] || eval "$_key=\${_line#*=}"
    done < "$1"
}

# need <variable...>: fails naming the first one that is unset or empty.
need() {
    for _name in "$@"; do
        eval "_value=\${$_name:-}"
        [ -n "$_value" ] || die "$_name is not set (node.env or the environment)"
    done
}

# --- redis-cli ------------------------------------------------------------------------

# cli_as <user> <password> <host> <port> <command...>; without a command, the commands
# come one a line on stdin. The password goes on stdin (--askpass), never into an
# argument or the environment of redis-cli. REDIS_HA_TLS_ARGS: extra redis-cli
# arguments (--tls --cacert <file>); REDIS_HA_CLI_TIMEOUT: seconds per call, because
# redis-cli 7.0 has no connect timeout (a SYN dropped by a NetworkPolicy would hang);
# 0: no limit here (the probe, which its runtime times out itself).
cli_as() {
    _user=$1 _pw=$2 _host=$3 _port=$4
    shift 4
    _timeout=""
    if [ "${REDIS_HA_CLI_TIMEOUT:-3}" != 0 ] && command -v timeout > /dev/null 2>&1; then
        _timeout="timeout ${REDIS_HA_CLI_TIMEOUT:-3}"
    fi
    # Word splitting of the timeout prefix and the TLS arguments is wanted.
    if [ "$#" -gt 0 ]; then
        # shellcheck disable=SC2086
        printf '%s\n' "$_pw" | $_timeout redis-cli --no-auth-warning --askpass -e ${REDIS_HA_TLS_ARGS:-} \
            --user "$_user" -h "$_host" -p "$_port" "$@"
    else
        # shellcheck disable=SC2086
        { printf '%s\n' "$_pw" && cat; } | $_timeout redis-cli --no-auth-warning --askpass -e ${REDIS_HA_TLS_ARGS:-} \
            --user "$_user" -h "$_host" -p "$_port"
    fi
}

# password_of <file>: the password a file holds, without line ends.
password_of() {
    [ -r "$1" ] || { log "cannot read $1"; return 1; }
    tr -d '\r\n' < "$1"
}

# cli <user> <password file> <host> <port> <command...>
cli() {
    _pw=$(password_of "$2") || return 1
    _u=$1 _h=$3 _p=$4
    shift 4
    cli_as "$_u" "$_pw" "$_h" "$_p" "$@"
}

# answers <user> <password> <host> <port>: "yes" (PONG), "no" (an error: refused), or
# "down" (no reply at all).
answers() {
    _reply=$(printf 'PING\n' | cli_as "$1" "$2" "$3" "$4" 2> /dev/null | tr -d '\r' | head -n 1) || true
    case $_reply in
        PONG) echo yes ;;
        '') echo down ;;
        *) echo no ;;
    esac
}

# --- the Sentinels' view of the master --------------------------------------------------

# sentinel_answers <password file> <master name> <addresses> [<host to skip>]: one
# "<host> <port>" line per Sentinel that names a master (as sentinel-client); a Sentinel
# that does not answer, refuses the login or knows no such master prints nothing.
sentinel_answers() {
    _file=$1 _name=$2 _skip=${4:-}
    for _sentinel in $3; do
        [ "${_sentinel%:*}" != "$_skip" ] || continue
        _reply=$(cli sentinel-client "$_file" "${_sentinel%:*}" "${_sentinel##*:}" \
            SENTINEL GET-MASTER-ADDR-BY-NAME "$_name" 2> /dev/null) || continue
        # A known master is two lines, host and port; an unknown one is an empty reply.
        # shellcheck disable=SC2086
        set -- $_reply
        [ $# -eq 2 ] || continue
        case $2 in
            '' | *[!0-9]*) continue ;;
        esac
        echo "$1 $2"
    done
}

# majority: of the "<host> <port>" lines on stdin, the one given most often (ties: the
# first in sort order); nothing for no lines. A Sentinel that restarted with its
# rendered config may name the deploy-time master until its peers correct it: the
# majority wins.
majority() {
    grep . | sort | uniq -c | sort -k1,1nr -k2 | head -n 1 | awk '{ print $2, $3 }'
}

# --- applying delivered secrets (docs/redis-notes.md#rotating-passwords) ----------------

# replace_file <source> <target>: a copy that readers see whole or not at all.
replace_file() {
    cmp -s "$1" "$2" 2> /dev/null && return 0
    cp "$1" "$2.new.$$" && mv -f "$2.new.$$" "$2"
}

# record_applied <version>: into REDIS_HA_APPLIED_FILE, if set (the Docker writer and
# the tests wait for it).
record_applied() {
    [ -n "${REDIS_HA_APPLIED_FILE:-}" ] || return 0
    printf '%s\n' "$1" > "$REDIS_HA_APPLIED_FILE.new.$$" && mv -f "$REDIS_HA_APPLIED_FILE.new.$$" "$REDIS_HA_APPLIED_FILE"
}

# apply_acl <file> <admin command...>: every `user` line of <file> as one ACL SETUSER
# <user> resetpass ... <rules> (atomic per user; connections stay), then every live
# user no longer in the file deleted. The admin command runs redis-cli as admin on this
# node, commands on its stdin.
apply_acl() {
    _acl=$1
    shift
    [ -r "$_acl" ] || { log "cannot read $_acl"; return 1; }
    _script=$(awk '$1 == "user" { printf "ACL SETUSER %s resetpass resetkeys resetchannels -@all clearselectors", $2; for (i = 3; i <= NF; i++) printf " %s", $i; printf "\n" }' "$_acl")
    _wanted=$(awk '$1 == "user" { print $2 }' "$_acl")
    _count=$(printf '%s\n' "$_script" | grep -c .)
    _ok=$(printf '%s\n' "$_script" | "$@" 2>&1 | tr -d '\r' | grep -cx OK) || true
    if [ "$_ok" != "$_count" ]; then
        log "secrets: ACL SETUSER accepted $_ok of $_count users"
        return 1
    fi
    _live=$(printf 'ACL USERS\n' | "$@" | tr -d '\r') || return 1
    for _gone in $_live; do
        printf '%s\n' "$_wanted" | grep -qxF "$_gone" && continue
        printf 'ACL DELUSER %s\n' "$_gone" | "$@" > /dev/null || return 1
        log "secrets: user $_gone is no longer in the ACL file; deleted"
    done
}

# watch_secrets <apply command...>: polls REDIS_HA_SECRETS_DIR/secrets.version every
# REDIS_HA_WATCH_INTERVAL seconds and runs the apply command on a change, again on the
# next poll until it succeeds; records each applied version. With
# REDIS_HA_EXPORTER_RELOAD (a URL), asks the exporter beside the node to read its
# password file again once applied (it has no data to lose).
watch_secrets() {
    _version_file=$REDIS_HA_SECRETS_DIR/secrets.version
    _applied=$(cat "$_version_file" 2> /dev/null || true)
    # What the server started with is what the start just installed.
    record_applied "$_applied" || log "secrets: cannot write $REDIS_HA_APPLIED_FILE"
    while sleep "${REDIS_HA_WATCH_INTERVAL:-2}"; do
        _version=$(cat "$_version_file" 2> /dev/null) || continue
        [ "$_version" != "$_applied" ] || continue
        "$@" || continue
        _applied=$_version
        record_applied "$_version" || log "secrets: cannot write $REDIS_HA_APPLIED_FILE"
        log "secrets: the delivered secrets are applied"
        if [ -n "${REDIS_HA_EXPORTER_RELOAD:-}" ]; then
            wget -q -O /dev/null "$REDIS_HA_EXPORTER_RELOAD" 2> /dev/null ||
                log "secrets: the exporter did not reload its password file"
        fi
    done
}

# watching: the delivered secrets are there to watch (and the tests have not turned
# the watcher off with REDIS_HA_WATCH=0).
watching() {
    [ -n "${REDIS_HA_SECRETS_DIR:-}" ] && [ -f "$REDIS_HA_SECRETS_DIR/secrets.version" ] &&
        [ "${REDIS_HA_WATCH:-1}" = 1 ]
}

# --- the supervisor ---------------------------------------------------------------------

# The server runs as a child, so that the script (the container's first process, which
# gets the SIGTERM) can act on a stop first, and run watchers beside it.
child=""
watchers=""

# background <command...>: runs a watcher beside the server; supervise stops it when the
# server exits or a stop is requested. The one way a script starts a background task.
background() {
    "$@" &
    watchers="$watchers $!"
}

stop_watchers() {
    for _pid in $watchers; do
        kill "$_pid" 2> /dev/null || true
    done
    watchers=""
}

# supervise <on-stop command> <server command...>: starts the server, then the caller's
# `start_watchers` (a function, run once the server's pid is in $child), and waits;
# SIGTERM/SIGINT stops the watchers, runs <on-stop command> (":" for none) and passes
# the signal on. Exits with the server's status.
supervise() {
    _on_stop=$1
    shift
    # Set first: a stop that comes while the server starts is acted on too (a child
    # started in the background gets the default action back).
    # shellcheck disable=SC2064
    trap "trap '' TERM INT; log 'stop requested'; stop_watchers; $_on_stop || true; kill -TERM \$child 2> /dev/null || true" TERM INT
    "$@" &
    child=$!
    start_watchers
    while :; do
        _status=0
        wait "$child" || _status=$?
        if ! kill -0 "$child" 2> /dev/null; then
            stop_watchers
            exit "$_status"
        fi
    done
}
