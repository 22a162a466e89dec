#!/usr/bin/env bash
# Write tests/unit/data/rdb/<engine>-<version>.rdb: a small RDB file saved by each engine
# image of engines.txt (and by the host-built redis-ha-test/redis:7.0), holding every
# encoding that engine writes. tests/unit/test_engine_rdb.py walks them with the backup
# reader; rerun this after adding a line to engines.txt (the images must be built).
set -euo pipefail
HERE="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
OUT="$HERE/../unit/data/rdb"
mkdir -p "$OUT"

# Every structure, in its small and its large encoding (above the default *-max-listpack-
# entries: 128 for sets and sorted sets, 512 for hashes).
DATASET='
for i = 1, 200 do
  redis.call("sadd", "set:hashtable", "member-" .. i)
  redis.call("zadd", "zset:skiplist", i / 7, "member-" .. i)
  redis.call("rpush", "list:quicklist", string.rep("x", 100) .. i)
  redis.call("pfadd", "hll", "visitor-" .. i)
  redis.call("xadd", "stream", "*", "n", tostring(i))
end
for i = 1, 600 do redis.call("hset", "hash:hashtable", "field-" .. i, "value-" .. i) end
redis.call("sadd", "set:intset", 1, 2, 3)
redis.call("sadd", "set:listpack", "a", "b", "c")
redis.call("hset", "hash:listpack", "a", "1", "b", "2")
redis.call("zadd", "zset:listpack", 1, "a", 2, "b")
redis.call("rpush", "list:small", "a", "b")
redis.call("set", "string:ttl", "value", "PX", 3600000)
redis.call("set", "string:int", 123456789)
redis.call("set", "string:long", string.rep("compressible-", 200))
redis.call("xgroup", "create", "stream", "workers", "0")
redis.call("xreadgroup", "group", "workers", "consumer-1", "count", 5, "streams", "stream", ">")
return "ok"
'
FIELD_TTL='
redis.call("hset", "hash:ttl:listpack", "a", "1", "b", "2")
for i = 1, 600 do redis.call("hset", "hash:ttl:hashtable", "f" .. i, "v" .. i) end
redis.call("hpexpire", "hash:ttl:listpack", 3600000, "FIELDS", 1, "a")
redis.call("hpexpire", "hash:ttl:hashtable", 3600000, "FIELDS", 1, "f1")
return "ok"
'

sample() {
    local tag="$1" name="$2" container="rdb-sample-$$-$RANDOM"
    docker run -d --rm --name "$container" --network none "$tag" redis-server --save "" --appendonly no >/dev/null
    trap 'docker rm -f "$container" >/dev/null 2>&1 || true' RETURN
    for _ in $(seq 50); do docker exec "$container" redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
    docker exec "$container" redis-cli eval "$DATASET" 0 >/dev/null
    if docker exec "$container" redis-cli command info hpexpire | grep -q hpexpire; then
        docker exec "$container" redis-cli eval "$FIELD_TTL" 0 >/dev/null
    fi
    [[ "$(docker exec "$container" redis-cli save)" == OK ]] || { echo "SAVE failed on $tag" >&2; exit 1; }
    docker cp "$container:/data/dump.rdb" "$OUT/$name.rdb"
    echo "$OUT/$name.rdb"
}

sample redis-ha-test/redis:7.0 redis-7.0.15
while read -r tag _ <&3; do
    [[ -z "$tag" || "$tag" == \#* ]] && continue
    engine="${tag##*/}"
    version="$(docker run --rm --network none "$tag" redis-server --version | sed -E 's/.* v=([0-9.]+).*/\1/')"
    sample "$tag" "${engine%%:*}-$version"
done 3<"$HERE/engines.txt"
