#!/usr/bin/env bash
# Quick start: installs what is missing, builds dtle, starts two local MariaDB instances (source 127.0.0.1:3307,
# target 127.0.0.1:3308), loads sample data into `demo` on the source and runs
#     dtle run deploy/examples/job.hcl
# while a writer keeps changing the source, printing the target's row counts as rows arrive.
# Ctrl-C (or DEMO_SECONDS=N for an unattended run) stops dtle cleanly and leaves the instances running;
# `tests/mariadb.sh down` stops them.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
# shellcheck source=tests/lib.sh
. "$REPO/tests/lib.sh"
LOG_TAG="demo"
cd "$REPO"

ensure_rust
ensure_mariadb_installed
log "building dtle (release)"
cargo build --release -q -p dtle
DTLE="$REPO/target/release/dtle"

log "starting MariaDB: source on 3307, target on 3308"
tests/mariadb.sh start src 3307 1 >/dev/null
tests/mariadb.sh start dst 3308 2 >/dev/null
src() { mariadb -h127.0.0.1 -P3307 -uroot "$@"; }
dst() { mariadb -h127.0.0.1 -P3308 -uroot "$@"; }

log "loading sample data into demo on the source (target's demo schema and position are reset)"
dst -e "DROP DATABASE IF EXISTS demo; CREATE DATABASE IF NOT EXISTS dtle; DELETE FROM dtle.replication_position WHERE job_name='demo'" 2>/dev/null ||
    dst -e "DROP DATABASE IF EXISTS demo"
src <<'SQL'
DROP DATABASE IF EXISTS demo;
CREATE DATABASE demo DEFAULT CHARSET utf8mb4;
USE demo;
CREATE TABLE demo.customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(64), city VARCHAR(64), created DATETIME(6) DEFAULT NOW(6));
CREATE TABLE demo.orders (id BIGINT PRIMARY KEY AUTO_INCREMENT, customer_id INT, amount DECIMAL(12,2), note TEXT, KEY (customer_id));
INSERT INTO demo.customers (name, city) SELECT CONCAT('customer ', seq), ELT(1 + seq % 4, 'Shanghai', 'Berlin', 'São Paulo', 'Nairobi') FROM seq_1_to_1000;
INSERT INTO demo.orders (customer_id, amount, note) SELECT 1 + seq % 1000, ROUND(RAND() * 500, 2), CONCAT('order ', seq) FROM seq_1_to_20000;
SQL
DATA="$REPO/dtle-data"
rm -rf "$DATA"
LOGFILE="$REPO/dtle-data.log"
log "running: dtle run deploy/examples/job.hcl (log in $LOGFILE)"
"$DTLE" run deploy/examples/job.hcl --data-dir "$DATA" --no-progress-bar >"$LOGFILE" 2>&1 &
DTLE_PID=$!
stop() {
    kill -INT "$DTLE_PID" 2>/dev/null || true
    wait "$DTLE_PID" 2>/dev/null || true
    log "dtle stopped; position: $("$DTLE" positions show demo --data-dir "$DATA" | head -1)"
    exit 0
}
trap stop INT TERM

END=$(( $(date +%s) + ${DEMO_SECONDS:-86400} ))
i=0
while (( $(date +%s) < END )); do
    if ! kill -0 "$DTLE_PID" 2>/dev/null; then
        log "dtle exited:"; tail -20 "$LOGFILE"; exit 1
    fi
    i=$((i + 1))
    src -e "INSERT INTO demo.orders (customer_id, amount, note) VALUES (1 + $i % 1000, $i.50, 'live order $i'); UPDATE demo.customers SET city = 'Hangzhou' WHERE id = $i;"
    s=$(src -N -e "SELECT (SELECT COUNT(*) FROM demo.customers), (SELECT COUNT(*) FROM demo.orders)")
    t=$(dst -N -e "SELECT (SELECT COUNT(*) FROM demo.customers), (SELECT COUNT(*) FROM demo.orders)" 2>/dev/null || echo "- -")
    printf 'source customers/orders: %-14s target: %-14s\n' "$(echo $s | tr ' ' /)" "$(echo $t | tr ' ' /)"
    sleep 1
done
stop
