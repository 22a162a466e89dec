"""Backup and restore of a redis-ha deployment, in the standard library alone (it runs
as a zipapp in a plain python3 image: see zipapp.py).

Backups are taken from replicas: the Sentinels' (a majority, agreeing) or one per
cluster shard, whose link to the master is up, with the smallest lag. Each node sends
its snapshot over the replication protocol (replication.py); the engine walks every
RDB file completely (rdb.py) before it stores it, and writes the manifest last
(manifest.py). A restore refuses before its first write unless the manifest, every
file's size, sha256 and structure, the topology and the versions all check out; it
then replays every key as RESTORE ... ABSTTL REPLACE through the master owning it,
and waits for every replica (restore.py).

API (engine.py, restore.py):
    take_backup(config, *, target=None) -> Manifest
    list_backups(config, *, target=None) -> list[dict]
    verify_backup(config, backup_id, *, target=None) -> Manifest   (raises Refused)
    prune(config, *, target=None) -> list[str]                      (ids deleted)
    restore(config, backup_id, admin_password, *, target=None) -> dict (the report)
    run_schedule(config, *, max_runs=None, now=..., sleep=..., out=None) -> int
    config.load_config(path) / config.config_from_dict(dict) -> Config
Errors: config.Refused (exit code 2: nothing changed), config.BackupError (1).

Commands each server kind sees (for the ACL users):
    backup user, on a Redis node (Sentinel topology):
        info, replconf, sync                     (+ auth, always allowed)
    backup user, on a cluster node:
        info, replconf, sync, cluster|shards
    Sentinel-port user (sentinelUser, the read-only sentinel-client):
        sentinel|get-master-addr-by-name, sentinel|replicas, sentinel|master
    restore user (admin; its password from stdin, never argv or env):
        info, flushall, select, restore, wait, function|load, cluster|shards
INFO is asked for its server, replication and keyspace sections only. SYNC runs
after `REPLCONF rdb-only 1`, so the node ends the link once the snapshot is sent (no
PSYNC: the user cannot become a replica).

Config keys (JSON; paths only, no secrets): deployment, topology (sentinel|cluster),
masterName, sentinels [[host, port]...], clusterNodes [[host, port]...], tls (caFile,
certFile, keyFile, verifyHostname), backupUser and sentinelUser ({user,
passwordFile}), restoreUser, schedule (5-field cron, UTC), retention, target
({kind: directory, path, prefix} or {kind: s3, endpoint, bucket, prefix, region,
credentialsFile, caFile, pageSize}), addressMap {"announced host:port": "dialled
host:port"}, workDir, allowMaster, disklessSync, batchSize, waitTimeoutSeconds,
syncTimeoutSeconds.
"""
