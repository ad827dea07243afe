#!/usr/bin/env bash
# Throwaway nats-server instances for dtle tests (Debian package nats-server, installed when missing).
#
#   tests/nats.sh start [PORT=4222] [MAX_PAYLOAD=1048576]   start (idempotent), wait until it accepts connections
#   tests/nats.sh stop [PORT=4222]
#   tests/nats.sh restart [PORT=4222]
#   tests/nats.sh env                                        export lines for tests (DTLE_TEST_NATS_URL)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=tests/lib.sh
. "$HERE/lib.sh"
LOG_TAG="nats.sh${1:+ $1}"

cmd="${1:-}"
port="${2:-4222}"
max_payload="${3:-1048576}"
dir="$DTLE_TEST_DIR/nats-$port"

ensure_nats_installed() {
    command -v nats-server >/dev/null 2>&1 && return 0
    command -v apt-get >/dev/null 2>&1 || die "nats-server not found and apt-get unavailable"
    log "installing nats-server"
    (
        flock 9
        command -v nats-server >/dev/null 2>&1 || {
            DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q nats-server >/dev/null
        }
    ) 9>"/tmp/dtle-apt.lock"
}

# True if the recorded server lives: a killed server not yet reaped by its parent (a zombie) answers kill -0 but
# serves nothing, and its pid may have been reused by another program.
running() {
    local pid state
    [[ -f "$dir/pid" ]] || return 1
    pid="$(cat "$dir/pid")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$state" && "$state" != Z && "$state" != X ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == nats-server ]]
}

wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

start() {
    ensure_nats_installed
    mkdir -p "$dir"
    if running; then return 0; fi
    cat >"$dir/nats.conf" <<CONF
listen: 127.0.0.1:$port
max_payload: $max_payload
CONF
    nohup nats-server -c "$dir/nats.conf" >"$dir/nats.log" 2>&1 &
    echo $! >"$dir/pid"
    wait_port || { tail -20 "$dir/nats.log" >&2; die "nats-server did not start on port $port"; }
}

stop() {
    if running; then
        local pid
        pid="$(cat "$dir/pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pid"
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    restart) stop; start ;;
    env) echo "export DTLE_TEST_NATS_URL=${DTLE_TEST_NATS_URL:-nats://127.0.0.1:4222}" ;;
    *) sed -n '2,8p' "$0" >&2; exit 2 ;;
esac
