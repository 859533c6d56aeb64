#!/usr/bin/env bash
# The run command: installs what is missing, builds the daemon (release) and runs it with the
# given flags. Without REDIS_URL it uses the redis-server on 127.0.0.1:6379, starting one
# (data in .run/redis, log in .run/redis.log) when none answers there, and stops it on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build -c release --product coordinatord
bin="$(swift build -c release --show-bin-path)/coordinatord"

redis_pid=""
daemon_pid=""
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; fi
    if [ -n "$redis_pid" ]; then kill -TERM "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 0' INT TERM

if [ -z "${REDIS_URL:-}" ]; then
    port="${COORD_LOCAL_REDIS_PORT:-6379}"
    if redis-cli -p "$port" ping >/dev/null 2>&1; then
        echo "run: using the redis-server already answering on 127.0.0.1:$port" >&2
    else
        mkdir -p .run/redis
        echo "run: starting redis-server on 127.0.0.1:$port (data in .run/redis)" >&2
        # Its own session, so Ctrl-C reaches the daemon, which then stops before Redis does.
        setsid redis-server --port "$port" --bind 127.0.0.1 --dir "$PWD/.run/redis" \
            --appendonly yes --daemonize no >.run/redis.log 2>&1 &
        redis_pid=$!
        for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
        redis-cli -p "$port" ping >/dev/null || { echo "run: redis-server did not start; see .run/redis.log" >&2; exit 1; }
    fi
    export REDIS_URL="redis://127.0.0.1:$port/0"
fi

"$bin" run "$@" &
daemon_pid=$!
wait "$daemon_pid"
