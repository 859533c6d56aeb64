#!/usr/bin/env bash
# A local Redis Cluster for trying the daemon's --cluster mode: 3 masters and 3 replicas from
# Debian's redis-server, on ports BASE..BASE+5 (7000 by default, COORD_CLUSTER_PORT), data in
# .run/cluster/<port>.
#
#   scripts/cluster.sh start    # starts the six nodes, joins them, waits until the cluster is ok
#   scripts/cluster.sh stop     # stops them (and keeps the data; `start` then reuses it)
#   scripts/cluster.sh reset    # stops them and removes the data
#
# Then: REDIS_URL=redis+cluster://127.0.0.1:7000,127.0.0.1:7001 scripts/run.sh --sim-speed 0.1
set -euo pipefail
cd "$(dirname "$0")/.."
base="${COORD_CLUSTER_PORT:-7000}"
ports=$(seq "$base" $((base + 5)))
dir="$PWD/.run/cluster"

# Stops only the servers this script started (by their pid files), never another on a port.
stop() {
    for port in $ports; do
        pidfile="$dir/$port/redis.pid"
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null && grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$pidfile"
    done
}

case "${1:-}" in
start)
    command -v redis-server >/dev/null || { echo "cluster: redis-server is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
    fresh=1
    for port in $ports; do
        mkdir -p "$dir/$port"
        [ -f "$dir/$port/nodes.conf" ] && fresh=0
        # --cluster-node-timeout 1000: a dead master is failed over in about 2 s.
        redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/$port" --daemonize yes --pidfile "$dir/$port/redis.pid" \
            --logfile "$dir/$port/redis.log" --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-node-timeout 1000 --appendonly yes --repl-diskless-sync-delay 0
    done
    for port in $ports; do
        for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
        # Another server on the port (not ours, not a cluster node) is no node of this cluster.
        redis-cli -p "$port" info cluster 2>/dev/null | grep -q cluster_enabled:1 \
            || { echo "cluster: no cluster node answers on port $port (taken? see $dir/$port/redis.log; COORD_CLUSTER_PORT picks others)" >&2; stop; exit 1; }
    done
    if [ "$fresh" = 1 ]; then
        redis-cli --cluster create $(for port in $ports; do printf '127.0.0.1:%s ' "$port"; done) \
            --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
            || { echo "cluster: redis-cli --cluster create failed; see $dir/create.log" >&2; stop; exit 1; }
    fi
    for _ in $(seq 1 100); do
        ok=1
        for port in $ports; do
            redis-cli -p "$port" cluster info 2>/dev/null | grep -q cluster_state:ok || ok=0
        done
        [ "$ok" = 1 ] && break
        sleep 0.1
    done
    [ "$ok" = 1 ] || { echo "cluster: not ok after 10 s; see $dir/*/redis.log" >&2; exit 1; }
    echo "cluster: 3 masters and 3 replicas on 127.0.0.1:$base-$((base + 5)); REDIS_URL=redis+cluster://127.0.0.1:$base,127.0.0.1:$((base + 1))"
    ;;
stop)
    stop
    ;;
reset)
    stop
    rm -rf "$dir"
    ;;
*)
    echo "usage: scripts/cluster.sh start|stop|reset" >&2
    exit 2
    ;;
esac
