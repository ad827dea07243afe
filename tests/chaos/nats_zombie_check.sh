#!/usr/bin/env bash
# Regression check for tests/nats.sh: a killed nats-server that its parent has not reaped yet (a zombie) answers
# `kill -0`, so `nats.sh start` took it for a running server and started nothing (a long chaos run lost its NATS
# this way after a kill -9). Here the pid file names a zombie; `start` must start a real server.
#
#   tests/chaos/nats_zombie_check.sh [PORT=4299]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
# shellcheck source=tests/lib.sh
. "$HERE/lib.sh"
LOG_TAG="nats_zombie_check"
port="${1:-4299}"
export DTLE_TEST_DIR
DTLE_TEST_DIR="$(mktemp -d /tmp/dtle-nats-zombie-check.XXXXXX)"
trap '"$HERE/nats.sh" stop "$port" >/dev/null 2>&1 || true; [[ -n "${parent:-}" ]] && kill "$parent" 2>/dev/null; rm -rf "$DTLE_TEST_DIR"' EXIT

# A parent that never reaps its child: the child exits at once and stays a zombie while the parent sleeps.
bash -c 'sleep 0.1 & exec sleep 30' &
parent=$!
zombie=""
for _ in $(seq 1 50); do
    zombie="$(pgrep -P "$parent" || true)"
    [[ -n "$zombie" ]] && [[ "$(sed 's/^.*) //' "/proc/$zombie/stat" 2>/dev/null | cut -d' ' -f1)" == Z ]] && break
    sleep 0.1
done
[[ -n "$zombie" ]] || die "could not make a zombie process"
kill -0 "$zombie" || die "the zombie $zombie does not answer kill -0 (the check would prove nothing)"

mkdir -p "$DTLE_TEST_DIR/nats-$port"
echo "$zombie" >"$DTLE_TEST_DIR/nats-$port/pid"
"$HERE/nats.sh" start "$port"
pid="$(cat "$DTLE_TEST_DIR/nats-$port/pid")"
[[ "$pid" != "$zombie" ]] || die "nats.sh start took the zombie $zombie for a running server"
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "no nats-server answers on $port"
log "ok: nats.sh start replaced the zombie $zombie with a server (pid $pid) on $port"
