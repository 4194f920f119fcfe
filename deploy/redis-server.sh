#!/bin/sh
# Starts one Redis server of docker-compose.yml: the ACL file `swerve acl` wrote (secret
# swerve-acl), and the replication user's password for following a master (a replica's job,
# and a demoted master's once the sentinels turn it into one) written into a configuration
# file readable by this user alone, never onto a command line. Extra arguments go to
# redis-server (e.g. --replicaof redis-1 6379).
set -eu
umask 077
config=/tmp/swerve-redis.conf
{
    echo "aclfile /run/secrets/swerve-acl"
    echo "masteruser swerve-replication"
    echo "masterauth $(cat /run/secrets/swerve-replication)"
    # Sentinels and replicas know each server by its service name, which survives a restart
    # that changes the container's address.
    echo "replica-announce-ip $(hostname)"
} >"$config"
exec redis-server "$config" --bind 0.0.0.0 --port 6379 --dir /data \
    --appendonly yes --appendfsync everysec \
    --min-replicas-to-write 1 --min-replicas-max-lag 10 "$@"
