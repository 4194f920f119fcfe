#!/bin/sh
# Starts one Redis Sentinel of docker-compose.yml, watching master "swerve" (redis-1 at
# first). Its configuration is written once, into its volume: a sentinel records the current
# master there, which must survive a restart. Users from the swerve-sentinel-users secret
# (`swerve acl --sentinel-output`); the sentinel user's password from swerve-sentinel.
set -eu
umask 077
config=/data/sentinel.conf
if [ ! -s "$config" ]; then
    password=$(cat /run/secrets/swerve-sentinel)
    {
        echo "port 26379"
        echo "sentinel resolve-hostnames yes"
        echo "sentinel announce-hostnames yes"
        echo "sentinel announce-ip $(hostname)"
        echo "sentinel monitor swerve redis-1 6379 2"
        echo "sentinel down-after-milliseconds swerve 2000"
        echo "sentinel failover-timeout swerve 10000"
        echo "sentinel parallel-syncs swerve 1"
        echo "sentinel auth-user swerve swerve-sentinel"
        echo "sentinel auth-pass swerve $password"
        echo "sentinel sentinel-user swerve-sentinel"
        echo "sentinel sentinel-pass $password"
        cat /run/secrets/swerve-sentinel-users
    } >"$config.new"
    mv "$config.new" "$config"
fi
exec redis-server "$config" --sentinel
