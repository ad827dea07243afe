#!/usr/bin/env bash
# Memory of dtle while one big source transaction passes through (both tasks in one process).
#
#   tests/bench/bigtx.sh [MB=1024]     # one INSERT ... SELECT transaction of about MB MiB of binlog row data
#
# Env: DUMP_ENTRY_LIMIT (the job's DumpEntryLimit, default: not set = dtle's default part size),
#      BENCH_DURABLE=1 (default), BENCH_KEEP=1, DTLE_BIN.
# Prints the transaction's binlog size, the time until all its rows are on the target, dtle's peak RSS (VmHWM,
# sampled every 0.1 s) and its RSS once idle again. Prints figures only; fails only when a tool errors or hangs.
# Instances: bench_src (3317) and bench_dst (3318), created fresh and destroyed at the end.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

MB="${1:-1024}"
[[ "$MB" =~ ^[0-9]+$ && "$MB" -gt 0 ]] || bdie "MB must be a positive integer"
ROW_BYTES=230   # binlog bytes of one row image below (8 + 4 + 2 + 200 + row header)
ROWS=$((MB * 1048576 / ROW_BYTES))
SRC=$BENCH_SRC_PORT
DST=$BENCH_DST_PORT
JOB=bench_bigtx
TMP="$(mktemp -d /tmp/dtle-bench-bigtx.XXXXXX)"
DTLE_PID=""
cleanup() {
    [[ -n "$DTLE_PID" ]] && kill -KILL "$DTLE_PID" 2>/dev/null || true
    bench_destroy bench_src
    bench_destroy bench_dst
    [[ "${BENCH_KEEP:-0}" == 1 ]] && blog "logs and job files kept in $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

ensure_dtle
bench_instance bench_src "$SRC" 11
bench_instance bench_dst "$DST" 12
q "$SRC" "CREATE DATABASE bench; CREATE TABLE bench.big (id BIGINT NOT NULL PRIMARY KEY, v INT NOT NULL, pad VARCHAR(200) NOT NULL) ENGINE=InnoDB"

write_job "$TMP/job.hcl" "$JOB" "$SRC" "$DST" "" 2000 false 1 "${DUMP_ENTRY_LIMIT:+DumpEntryLimit = $DUMP_ENTRY_LIMIT}"
LOG="$TMP/dtle.log"
dtle_start "$TMP/job.hcl" "$TMP/data" "$LOG"
deadline=$((SECONDS + 120))
until [[ "$(position_row "$DST" "$JOB" | cut -f1)" == job_stage_incr ]]; do
    dtle_alive || dtle_died "$LOG" "starting"
    ((SECONDS < deadline)) || bdie "dtle did not reach the incremental stage"
    sleep 0.2
done
sleep 2
START_RSS_KB="$(dtle_rss_kb)"

binlog_bytes() { q "$SRC" "SHOW BINARY LOGS" | awk '{s += $2} END {print s}'; }
b0="$(binlog_bytes)"
blog "one transaction of $ROWS rows (~$MB MiB of row data) on bench_src"
# The source's own time to commit it; dtle reads it only after the commit.
(
    q "$SRC" "INSERT INTO bench.big (id, v, pad) SELECT seq, seq % 1000, REPEAT(CHAR(65 + seq % 26), 200) FROM bench.seq_1_to_$ROWS"
) &
INS_PID=$!
while kill -0 "$INS_PID" 2>/dev/null; do
    dtle_sample_rss
    sleep 0.1
done
wait "$INS_PID" || bdie "the big transaction failed on the source"
t0=$(now)
b1="$(binlog_bytes)"
blog "committed on the source: $(calc "($b1 - $b0)/1048576" %.0f) MiB of binlog; waiting for the target"
deadline=$((SECONDS + 3600))
while :; do
    dtle_sample_rss
    dtle_alive || dtle_died "$LOG" "applying the big transaction"
    n="$(q "$DST" "SELECT COUNT(*) FROM bench.big" 2>/dev/null || echo 0)"
    ((n >= ROWS)) && break
    ((SECONDS < deadline)) || bdie "the target has $n of $ROWS rows after 3600 s"
    sleep 0.1
done
t1=$(now)
for _ in $(seq 1 50); do
    dtle_sample_rss
    sleep 0.1
done
IDLE_RSS_KB="$(dtle_rss_kb)"
dtle_stop "$LOG"
DTLE_PID=""
parts="$(grep -c "big transaction: sending it in parts" "$LOG" || true)"

echo
echo "== one source transaction of $ROWS rows, $(calc "($b1 - $b0)/1048576" %.0f) MiB of binlog, through dtle run (src and dest in one process) =="
durability_note
echo "DumpEntryLimit: ${DUMP_ENTRY_LIMIT:-default}; 'sending it in parts' log lines: $parts"
echo "all rows on the target $(calc "$t1 - $t0" %.1f) s after the source committed"
echo "dtle RSS before: $(calc "$START_RSS_KB/1024" %.1f) MiB; peak (VmHWM): $(calc "$DTLE_HWM_KB/1024" %.0f) MiB; 5 s after: $(calc "$IDLE_RSS_KB/1024" %.1f) MiB; stop status $DTLE_RC"
