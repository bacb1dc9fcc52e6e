#!/usr/bin/env bash
# A local Redis Cluster for the tests: 3 masters with one replica each on
# loopback ports 7101-7106 (REDIS_CLUSTER_PORT_BASE=7100 moves them), data in
# target/redis-cluster-7100/ (the base port), nothing saved to disk.
#
#   scripts/redis-cluster.sh start   # then: export REDIS_CLUSTER_URLS=redis://127.0.0.1:7101,...
#   scripts/redis-cluster.sh stop    # stops every node and deletes its directory
#
# `start` prints the REDIS_CLUSTER_URLS line. cluster-node-timeout is 1 s, so a
# replica takes over a failed master within a few seconds; and the other
# masters keep serving their slots meanwhile (cluster-require-full-coverage no).
set -euo pipefail

base=${REDIS_CLUSTER_PORT_BASE:-7100}
ports=$(seq $((base + 1)) $((base + 6)))
root="$(cd "$(dirname "$0")/.." && pwd)/target/redis-cluster-$base"

urls() {
    local out=""
    for port in $ports; do out+="${out:+,}redis://127.0.0.1:$port"; done
    echo "$out"
}

start() {
    mkdir -p "$root"
    for port in $ports; do
        mkdir -p "$root/$port"
        redis-server --port "$port" --bind 127.0.0.1 --dir "$root/$port" \
            --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-node-timeout 1000 --cluster-require-full-coverage no \
            --save "" --appendonly no \
            --maxmemory-policy noeviction \
            --daemonize yes --pidfile "$root/$port/redis.pid" --logfile "$root/$port/redis.log"
    done
    for port in $ports; do
        for _ in $(seq 50); do
            redis-cli -p "$port" ping >/dev/null 2>&1 && break
            sleep 0.1
        done
    done
    local first=$((base + 1))
    if [ "$(redis-cli -p "$first" cluster info | tr -d '\r' | grep cluster_state)" != "cluster_state:ok" ]; then
        local nodes=()
        for port in $ports; do nodes+=("127.0.0.1:$port"); done
        redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >/dev/null
    fi
    for port in $ports; do
        for i in $(seq 100); do
            state=$(redis-cli -p "$port" cluster info | tr -d '\r' | grep cluster_state || true)
            [ "$state" = "cluster_state:ok" ] && break
            [ "$i" = 100 ] && { echo "node $port: $state after 10 s" >&2; exit 1; }
            sleep 0.1
        done
    done
    echo "REDIS_CLUSTER_URLS=$(urls)"
}

stop() {
    for port in $ports; do
        redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    done
    rm -rf "$root"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    urls) urls ;;
    *) echo "usage: $0 start|stop|urls" >&2; exit 2 ;;
esac
