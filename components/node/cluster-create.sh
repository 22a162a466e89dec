#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# Creation and scale-out of a Redis Cluster (docs/node-scripts.md): a one-shot step (a
# container that runs once on Docker, a Job on Kubernetes), safe to run any number of
# times, also after restarts. It reads the cluster before it changes anything:
#   - no node is part of a cluster yet -> `redis-cli --cluster create` with the
#     masters, then every replica joins its shard's master (--cluster-slave): the
#     shards are the deployed ones, so the deploy-time roles in the outputs are true
#     (`create --cluster-replicas N` pairs masters and replicas by its own order)
#   - a cluster exists -> the nodes it does not know join it (masters empty, replicas
#     of their shard's current master), then slots are rebalanced onto the masters
#     that have none (--cluster-use-empty-masters): scaling out needs both
#     (docs/redis-notes.md#redis-cluster)
#   - every node is known and every master has slots -> nothing to change
# Then it waits until every node reports cluster_state:ok with all 16384 slots.
#
# The admin password is read from a file and handed to every redis-cli on its stdin
# (--askpass): never an argument, never in the environment of a process. Settings:
# node.env next to this script, or the environment (which wins).
set -eu

# shellcheck source=lib.sh
. "${0%/*}/lib.sh"
init cluster-create
need REDIS_HA_ADMIN_PASSWORD_FILE REDIS_HA_CLUSTER_MASTERS REDIS_HA_WAIT_SECONDS

password_file=$REDIS_HA_ADMIN_PASSWORD_FILE
user=${REDIS_HA_CLUSTER_USER:-admin}
masters=$REDIS_HA_CLUSTER_MASTERS
# <replica>,<the deploy-time master of its shard>
replicas=${REDIS_HA_CLUSTER_REPLICAS:-}
wait_seconds=$REDIS_HA_WAIT_SECONDS
REDIS_HA_CLI_TIMEOUT=${REDIS_HA_CLI_TIMEOUT:-5}

password=$(password_of "$password_file") || die "cannot read $password_file"
[ -n "$password" ] || die "$password_file is empty"

deadline=$(($(date +%s) + wait_seconds))

# wait_for <what>: one more second, unless the deadline has passed
wait_for() {
    [ "$(date +%s)" -lt "$deadline" ] || die "gave up after ${wait_seconds}s waiting for $1"
    sleep 1
}

# cli <host:port> <command...>: one command as the admin user; an error reply fails.
cli() {
    _addr=$1
    shift
    cli_as "$user" "$password" "${_addr%:*}" "${_addr##*:}" "$@"
}

# manager <redis-cli --cluster command and arguments...>
manager() {
    printf '%s\n' "$password" | redis-cli --no-auth-warning --askpass --user "$user" --cluster "$@" --cluster-yes
}

# cluster_info <host:port> <field>
cluster_info() {
    cli "$1" CLUSTER INFO 2> /dev/null | tr -d '\r' | sed -n "s/^$2://p"
}

# node_id <host:port>
node_id() {
    _id=$(cli "$1" CLUSTER MYID) || die "$1 does not answer CLUSTER MYID"
    [ -n "$_id" ] || die "$1 has no node id"
    echo "$_id"
}

replica_addresses() {
    for _pair in $replicas; do
        echo "${_pair%%,*}"
    done
}

# Every node, one word each.
# shellcheck disable=SC2086
all=$({ printf '%s\n' $masters && replica_addresses; } | tr '\n' ' ')
# shellcheck disable=SC2086
total=$(printf '%s\n' $all | grep -c .)

for addr in $all; do
    until [ "$(cli "$addr" PING 2> /dev/null)" = PONG ]; do
        wait_for "$addr to answer PING"
    done
done

# A node that knows other nodes or serves slots is part of the cluster; prefer one
# that serves slots as the entry point of every redis-cli --cluster command.
entry=""
for addr in $all; do
    known=$(cluster_info "$addr" cluster_known_nodes)
    assigned=$(cluster_info "$addr" cluster_slots_assigned)
    if [ "${assigned:-0}" -gt 0 ]; then
        entry=$addr
        break
    fi
    if [ -z "$entry" ] && [ "${known:-1}" -gt 1 ]; then
        entry=$addr
    fi
done

changed=0
if [ -z "$entry" ]; then
    log "no node is part of a cluster: creating it from the masters $masters"
    # shellcheck disable=SC2086
    manager create $masters --cluster-replicas 0
    entry=${masters%% *}
    changed=1
else
    log "a cluster exists; entry point $entry"
fi

nodes_view() {
    cli "$entry" CLUSTER NODES
}

# known <node id>: the entry node lists the node (past the handshake)
# add_node <id> <host:port>: `redis-cli --cluster add-node` checks the cluster first and
# refuses while the nodes disagree (right after a previous CLUSTER REPLICATE, until
# gossip has spread it): try again until it has joined.
add_node() {
    until manager add-node "$2" "$entry"; do
        known "$1" && return 0
        wait_for "the nodes to agree before $2 joins"
    done
}

known() {
    nodes_view | awk -v id="$1" '$1 == id && $3 !~ /handshake/ { found = 1 } END { exit !found }'
}

# current_master <node id of a shard's deploy-time master>: that node, or the master
# it replicates since a failover
current_master() {
    nodes_view | awk -v id="$1" '$1 == id { if ($3 ~ /slave/) print $4; else print $1 }'
}

# join_wait <node id> <address>
join_wait() {
    until known "$1"; do
        wait_for "$2 to join the cluster"
    done
}

# add-node copies the cluster's functions to the new node first (FUNCTION RESTORE, a
# write), which a node with min-replicas-to-write and no replica yet refuses with
# NOREPLICAS. The node is empty and outside the cluster: relax it until its shard
# has its replicas again (restored below; redis.conf keeps the configured value).
relaxed=""
relax() {
    _saved=$(cli "$1" CONFIG GET min-replicas-to-write | sed -n 2p)
    if [ "${_saved:-0}" -gt 0 ]; then
        cli "$1" CONFIG SET min-replicas-to-write 0 > /dev/null
        relaxed="$relaxed $1=$_saved"
    fi
}

for addr in $masters; do
    id=$(node_id "$addr")
    known "$id" && continue
    log "adding master $addr"
    relax "$addr"
    add_node "$id" "$addr"
    join_wait "$id" "$addr"
    changed=1
done

for pair in $replicas; do
    addr=${pair%%,*}
    id=$(node_id "$addr")
    known "$id" && continue
    shard_master=${pair##*,}
    master_id=$(current_master "$(node_id "$shard_master")")
    [ -n "$master_id" ] || die "the master of $addr's shard ($shard_master) is not part of the cluster"
    log "adding $addr as a replica of $master_id (shard of $shard_master)"
    relax "$addr"
    # Not `add-node --cluster-slave`: it sends CLUSTER REPLICATE as soon as the MEET is
    # answered, and a new node that has not yet heard of the master through gossip
    # replies "ERR Unknown node" (seen on a loaded host). Join first, then replicate
    # once the node itself lists the master.
    add_node "$id" "$addr"
    join_wait "$id" "$addr"
    until cli "$addr" CLUSTER NODES | awk -v id="$master_id" '$1 == id && $3 !~ /handshake/ { found = 1 } END { exit !found }' &&
        [ "$(cli "$addr" CLUSTER REPLICATE "$master_id" 2> /dev/null)" = OK ]; do
        wait_for "$addr to learn about $master_id and replicate it"
    done
    changed=1
done

# Masters that serve no slot (new ones, or left empty by an interrupted run), each by
# its own account: right after CLUSTER REPLICATE the other nodes still list a new
# replica as a master without slots until gossip tells them otherwise.
empty_masters() {
    _n=0
    for _addr in $all; do
        if cli "$_addr" CLUSTER NODES 2> /dev/null |
            awk '$3 ~ /myself/ && $3 ~ /master/ && NF < 9 { found = 1 } END { exit !found }'; then
            _n=$((_n + 1))
        fi
    done
    echo "$_n"
}

# in_sync <host:port>: a master, or a replica whose link to its master is up. By the
# node's live role: after a failover a deploy-time replica may be the master.
in_sync() {
    _info=$(cli "$1" INFO replication 2> /dev/null | tr -d '\r') || return 1
    case $_info in
        *role:master*) return 0 ;;
    esac
    echo "$_info" | grep -qx 'master_link_status:up'
}

# Replicas in sync before any slot moves: with min-replicas-to-write a master whose
# replica is still syncing refuses the keys a rebalance migrates to it.
for addr in $all; do
    until in_sync "$addr"; do
        wait_for "$addr to finish its sync with its master"
    done
done

for setting in $relaxed; do
    cli "${setting%=*}" CONFIG SET min-replicas-to-write "${setting##*=}" > /dev/null
done

# Every node up and agreeing: a master that just joined answers CLUSTERDOWN (to the
# MIGRATE of a rebalance too) until it has seen every slot and waited its rejoin delay.
wait_state_ok() {
    for _addr in $all; do
        until [ "$(cluster_info "$_addr" cluster_state)" = ok ] &&
            [ "$(cluster_info "$_addr" cluster_slots_assigned)" = 16384 ] &&
            [ "$(cluster_info "$_addr" cluster_known_nodes)" -ge "$total" ]; do
            wait_for "$_addr to report cluster_state:ok with every slot and node (redis-cli --cluster check/fix $entry)"
        done
    done
}

if [ "$(empty_masters)" -gt 0 ]; then
    wait_state_ok
    # rebalance refuses to run while the nodes disagree about the configuration.
    until manager check "$entry" > /dev/null 2>&1; do
        wait_for "the nodes to agree about the configuration"
    done
    log "rebalancing slots onto $(empty_masters) master(s) without slots"
    manager rebalance "$entry" --cluster-use-empty-masters
    changed=1
fi

wait_state_ok
until manager check "$entry" > /dev/null 2>&1; do
    wait_for "the nodes to agree about the configuration (redis-cli --cluster check $entry)"
done
[ "$(empty_masters)" -eq 0 ] || die "a master still serves no slot"
# `--cluster check` compares slots only: wait until gossip has told every node about
# every replica too (no node lists a master without slots), so that the roles every
# node reports are the final ones when this step ends.
views_settled() {
    for _addr in $all; do
        cli "$_addr" CLUSTER NODES 2> /dev/null |
            awk '$3 ~ /master/ && NF < 9 { found = 1 } END { exit found }' || return 1
    done
}
until views_settled; do
    wait_for "every node to see every replica as a replica"
done

if [ "$changed" -eq 1 ]; then
    log "done: $total nodes, cluster_state ok"
else
    log "nothing to change: $total nodes, cluster_state ok"
fi
