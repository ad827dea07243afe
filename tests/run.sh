#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts throwaway MariaDB instances, runs formatting and lint
# checks, unit tests, binlog fixture tests and end-to-end tests against the real servers, then stops the servers.
#
#   tests/run.sh            everything
#   DTLE_SKIP_LINT=1 tests/run.sh    skip cargo fmt --check / clippy
#   DTLE_KEEP_SERVERS=1 tests/run.sh leave the MariaDB instances running afterwards
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=tests/lib.sh
. "$HERE/lib.sh"
LOG_TAG="run.sh"
cd "$REPO"

ensure_rust
ensure_mariadb_installed
log "disk: $(df -h --output=avail "$REPO" | tail -1 | tr -d ' ') free where the build goes"
# Extra real binlog files written by MySQL 8.0 (optional input of the fixture tests).
if [[ ! -d /usr/share/mysql/mysql-test/std_data ]] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q mariadb-test-data >/dev/null 2>&1 ||
        log "note: mariadb-test-data not installed; fixture tests use shared/fixtures only"
fi

if [[ "${DTLE_SKIP_LINT:-0}" != 1 ]]; then
    log "cargo fmt --check"
    cargo fmt --all -- --check
    log "cargo clippy"
    cargo clippy --workspace --all-targets -q -- -D warnings
fi

# Every server the suite started, the tests' own included: the chaos campaign's (MariaDB chaos_src/chaos_dst,
# nats 4232, Consul 8640), the private instances of fault tests, and the agents of the Consul tests.
stop_servers() {
    local name port
    for name in $("$HERE/mariadb.sh" status 2>/dev/null | awk '/ running$/ {print $1}'); do
        "$HERE/mariadb.sh" stop "$name" >/dev/null 2>&1 || true
    done
    for port in 4222 4223 4232; do "$HERE/nats.sh" stop "$port" || true; done
    for port in 8500 8540 8560 8580 8620 8640; do "$HERE/consul.sh" stop "$port" >/dev/null 2>&1 || true; done
    "$HERE/kafka.sh" stop >/dev/null 2>&1 || true
}

log "starting MariaDB instances, nats-server (4222, and 4223 with a 64 KiB max_payload), Consul and Kafka (9092)"
if [[ "${DTLE_KEEP_SERVERS:-0}" != 1 ]]; then
    trap stop_servers EXIT
fi
"$HERE/mariadb.sh" up
"$HERE/nats.sh" start 4222
"$HERE/nats.sh" start 4223 65536
"$HERE/consul.sh" start
"$HERE/kafka.sh" start
eval "$("$HERE/mariadb.sh" env)"
eval "$("$HERE/kafka.sh" env)"
eval "$("$HERE/nats.sh" env)"
eval "$("$HERE/consul.sh" env)"
export DTLE_TEST_REQUIRE_SERVERS=1

log "packages: build the .deb and .rpm and check them by installing into scratch roots"
"$HERE/package_check.sh"

log "cargo test (unit, fixtures, end-to-end)"
cargo test --workspace --no-fail-fast -- --test-threads=2
log "disk: target/ takes $(du -sh "$REPO/target" 2>/dev/null | cut -f1), $(df -h --output=avail "$REPO" | tail -1 | tr -d ' ') free"
log "all tests passed"
