#!/bin/sh
# The example application: every 10 s it asks a Sentinel for the master and writes a
# heartbeat there as the `cache` role. Passwords go to redis-cli on its stdin (AUTH),
# never on a command line or in the environment.
set -u
# shellcheck source=/dev/null # written by the program: SENTINELS="host:port ...", MASTER_NAME
. /run/app/redis.env
while :; do
    master=""
    for sentinel in $SENTINELS; do
        master=$({
            printf 'AUTH sentinel-client '
            cat /run/app/sentinel-client-password
            printf '\nSENTINEL GET-MASTER-ADDR-BY-NAME %s\n' "$MASTER_NAME"
        } | redis-cli -h "${sentinel%:*}" -p "${sentinel##*:}" 2>/dev/null | tail -n 2 | tr '\n' ' ')
        [ -n "${master% }" ] && break
    done
    # shellcheck disable=SC2086 # "host port", split on purpose
    set -- $master
    written=0
    if [ $# -eq 2 ]; then
        # Two OKs: the AUTH's and the SET's.
        written=$({
            printf 'AUTH cache '
            cat /run/app/cache-password
            printf '\nSET cache:example:heartbeat %s EX 60\n' "$(date +%s)"
        } | redis-cli -h "$1" -p "$2" 2>/dev/null | grep -c '^OK$')
    fi
    if [ "$written" = 2 ]; then
        echo "heartbeat written to the master $1:$2"
    elif [ $# -eq 2 ]; then
        echo "the master $1:$2 refused the heartbeat (login or write as cache)" >&2
    else
        echo "no master found through the Sentinels ($SENTINELS)" >&2
    fi
    sleep 10
done
