#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# Health of a node: `healthcheck.sh live` or `healthcheck.sh [ready]` (docs/node-scripts.md).
#   live   the process answers: PONG, or -LOADING while it loads its dataset or a
#          full resync (killing it then would only start the load again)
#   ready  PONG and, by REDIS_HA_KIND:
#          redis     a master; a replica also needs its link to the master up, no sync
#                    in progress and the master heard from within REDIS_HA_MAX_LAG
#                    seconds (docs/redis-notes.md#probes-that-fit-ha)
#          sentinel  the Sentinel knows the master it monitors
#          cluster   cluster_state:ok, or a node that has not joined a cluster yet (the
#                    creation step joins it, and waits for it to answer first)
# A Sentinel answers as the read-only sentinel-client, a Redis node as admin; the
# password is read from its file at run time, never from the container definition.
set -eu

# shellcheck source=lib.sh
. "${0%/*}/lib.sh"
init healthcheck
need REDIS_HA_KIND REDIS_HA_PORT

mode=${1:-ready}
# A probe has its own timeout (Docker's healthcheck, the kubelet's): no second one here,
# and no process more than needed (a loaded host runs probes slowly).
REDIS_HA_CLI_TIMEOUT=${REDIS_HA_CLI_TIMEOUT:-0}
kind=$REDIS_HA_KIND
if [ "$kind" = sentinel ]; then
    need REDIS_HA_SENTINEL_PASSWORD_FILE REDIS_HA_MASTER_NAME
    user=sentinel-client password_file=$REDIS_HA_SENTINEL_PASSWORD_FILE
else
    need REDIS_HA_ADMIN_PASSWORD_FILE
    user=admin password_file=$REDIS_HA_ADMIN_PASSWORD_FILE
fi
pass=$(tr -d '\r\n' 2> /dev/null < "$password_file") || pass=""
[ -n "$pass" ] || die "no password for $user"

probe() {
    cli_as "$user" "$pass" 127.0.0.1 "$REDIS_HA_PORT" "$@"
}

reply=$(probe PING 2>&1 | tr -d '\r' | head -n 1)
case $reply in
    PONG) ;;
    LOADING*)
        [ "$mode" != live ] || exit 0
        echo "$reply"
        exit 1
        ;;
    *) echo "$reply"; exit 1 ;;
esac
[ "$mode" = live ] && exit 0

case $kind in
    sentinel)
        probe SENTINEL GET-MASTER-ADDR-BY-NAME "$REDIS_HA_MASTER_NAME" | tr -d '\r' | grep -q .
        ;;
    cluster)
        info=$(probe CLUSTER INFO | tr -d '\r')
        echo "$info" | grep -qx 'cluster_state:ok' && exit 0
        echo "$info" | grep -qx 'cluster_known_nodes:1' && exit 0
        echo "cluster: $(echo "$info" | grep '^cluster_state')"
        exit 1
        ;;
    redis)
        probe INFO replication | tr -d '\r' | awk -F: -v max="${REDIS_HA_MAX_LAG:-10}" '
            { v[$1] = $2 }
            END {
                if (v["role"] == "master") exit 0
                if (v["master_link_status"] != "up") { print "link " v["master_link_status"]; exit 1 }
                if (v["master_sync_in_progress"] != "0") { print "sync in progress"; exit 1 }
                if (v["master_last_io_seconds_ago"] + 0 > max) { print "master silent " v["master_last_io_seconds_ago"] "s"; exit 1 }
            }'
        ;;
    *) die "REDIS_HA_KIND is $kind; allowed: redis, sentinel, cluster" ;;
esac
