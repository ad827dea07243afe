#!/usr/bin/env bash
# Kafka target benchmark: dtle run into the local Apache Kafka broker (tests/kafka.sh), Debezium JSON.
#
#   tests/bench/kafka.sh [ROWS=200000]
#
# Three phases on one sysbench-shaped table bench.sbtest1 (id, k, c CHAR(120), pad CHAR(60)):
#   snapshot   full copy of ROWS rows as op=r events, timed until the checkpoint says job_stage_incr
#   steady     TX single-row UPDATE transactions from one client while dtle runs, timed from the first write
#              until the checkpoint reaches the last one (so: the source's commit rate, plus the tail lag)
#   backlog    TX more transactions written while dtle is stopped, then the catch-up time of a fresh dtle
# Each phase ends with a clean stop, whose log line gives the messages and bytes (key + value JSON, before the
# producer's lz4) produced; the topic's end offsets are checked against the expected message count.
# Env: TX=20000, BENCH_DURABLE=1 (default; 0 = fast, non-durable instance), BENCH_KEEP=1, DTLE_BIN.
# Prints figures only; never fails on timings. Fails (exit 1) only when a tool errors or hangs.
# Instance: its own bench_kafka_src (${BENCH_KAFKA_SRC_PORT:-3327}, server_id 21; not the shared bench_src, so it
# can run beside the other benches), created fresh and destroyed at the end. Broker: 127.0.0.1:9092 (started if needed,
# left running).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ROWS="${1:-200000}"
[[ "$ROWS" =~ ^[0-9]+$ && "$ROWS" -gt 0 ]] || bdie "ROWS must be a positive integer"
TX="${TX:-20000}"
SRC="${BENCH_KAFKA_SRC_PORT:-3327}"
INSTANCE=bench_kafka_src
JOB=bench_kafka
TOPIC="bench$(date +%s)"
TMP="$(mktemp -d /tmp/dtle-bench-kafka.XXXXXX)"
DTLE_PID=""
cleanup() {
    [[ -n "$DTLE_PID" ]] && kill -KILL "$DTLE_PID" 2>/dev/null || true
    bench_destroy "$INSTANCE"
    [[ "${BENCH_KEEP:-0}" == 1 ]] && blog "logs and job files kept in $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

ensure_dtle
"$REPO/tests/kafka.sh" start
eval "$("$REPO/tests/kafka.sh" env)"
BROKERS="$DTLE_TEST_KAFKA"
KAFKA_CLASSPATH="$("$REPO/tests/kafka.sh" classpath)"
bench_instance "$INSTANCE" "$SRC" 21

blog "creating bench.sbtest1 with $ROWS rows on $INSTANCE"
q "$SRC" "CREATE DATABASE bench"
grp="LPAD(FLOOR(RAND()*99999999999),11,'0')"
q "$SRC" "CREATE TABLE bench.sbtest1 (
  id INT NOT NULL AUTO_INCREMENT, k INT NOT NULL DEFAULT 0, c CHAR(120) NOT NULL DEFAULT '',
  pad CHAR(60) NOT NULL DEFAULT '', PRIMARY KEY (id), KEY k_1 (k)) ENGINE=InnoDB"
for ((lo = 1; lo <= ROWS; lo += 100000)); do
    hi=$((lo + 99999))
    ((hi > ROWS)) && hi=$ROWS
    q "$SRC" "INSERT INTO bench.sbtest1 (id, k, c, pad)
              SELECT seq, FLOOR(1 + RAND() * $ROWS), CONCAT_WS('-',$grp,$grp,$grp,$grp,$grp,$grp,$grp,$grp,$grp,$grp),
                     CONCAT_WS('-',$grp,$grp,$grp,$grp,$grp) FROM bench.seq_${lo}_to_${hi}"
done

cat >"$TMP/job.hcl" <<HCL
job "$JOB" {
  group "src" {
    task "src" {
      driver = "dtle"
      config {
        ReplicateDoDb = [{ TableSchema = "bench" }]
        ChunkSize = 2000
        ConnectionConfig = { Host = "127.0.0.1", Port = $SRC, User = "dtle", Password = "dtle" }
      }
    }
  }
  group "dest" {
    task "dest" {
      driver = "dtle"
      config {
        KafkaConfig = { Topic = "$TOPIC", Brokers = ["$BROKERS"] }
      }
    }
  }
}
HCL

# stored_position -> "stage gtid" from the local position store
stored_position() {
    "$DTLE_BIN" positions show "$TMP/job.hcl" --data-dir "$TMP/data" 2>/dev/null |
        sed -n 's/^local store: stage=\([^ ]*\) gtid=\([^ ]*\).*/\1 \2/p'
}
# wait_checkpoint WHAT PRED_SEQ -> waits until the stored stage is incremental and its domain-0 seq >= PRED_SEQ
wait_checkpoint() {
    local deadline=$((SECONDS + 1800)) stage gtid
    while :; do
        dtle_sample_rss
        dtle_alive || dtle_died "$LOG" "$1"
        read -r stage gtid <<<"$(stored_position)" || true
        if [[ "${stage:-}" == job_stage_incr ]] && (($(gtid_seq "${gtid:-}") >= $2)); then return 0; fi
        ((SECONDS < deadline)) || bdie "$1: no checkpoint at sequence $2 after 1800 s"
        sleep 0.1
    done
}
# produced LOG -> "messages bytes" from the clean-stop line
produced() { sed -n 's/.*kafka: stopped.* messages=\([0-9]*\) bytes=\([0-9]*\).*/\1 \2/p' "$1" | tail -n1; }
end_offsets() {
    java -cp "$KAFKA_CLASSPATH" org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BROKERS" \
        --topic "$TOPIC.bench.sbtest1" 2>/dev/null | awk -F: '{s += $NF} END {print s+0}'
}
# write_updates N FILE -> N autocommit single-row UPDATEs (random ids), one client
write_updates() {
    awk -v n="$1" -v rows="$ROWS" 'BEGIN { srand(7); for (i = 0; i < n; i++)
        printf "UPDATE bench.sbtest1 SET k = k + 1 WHERE id = %d;\n", 1 + int(rand() * rows) }' >"$2"
}
src_seq() { gtid_seq "$(q "$SRC" "SELECT @@gtid_binlog_pos")"; }

RESULTS=()   # "phase|events|seconds|bytes|rss_kb"
HWM_MAX=0

# ---------------------------------------------------------------- snapshot
LOG="$TMP/dtle_snapshot.log"
blog "snapshot: dtle run (log: $LOG)"
t0=$(now)
dtle_start "$TMP/job.hcl" "$TMP/data" "$LOG"
wait_checkpoint "copying" 0
t1=$(now)
dtle_stop "$LOG"
DTLE_PID=""
read -r msgs bytes <<<"$(produced "$LOG")"
RESULTS+=("snapshot|$ROWS|$(calc "$t1 - $t0" %.3f)|${bytes:-0}|$DTLE_HWM_KB")
((DTLE_HWM_KB > HWM_MAX)) && HWM_MAX=$DTLE_HWM_KB
snap_offsets="$(end_offsets)"

# ---------------------------------------------------------------- steady write load
write_updates "$TX" "$TMP/steady.sql"
LOG="$TMP/dtle_steady.log"
blog "steady: $TX single-row transactions while dtle runs (log: $LOG)"
"$DTLE_BIN" run "$TMP/job.hcl" --data-dir "$TMP/data" --no-progress-bar >"$LOG" 2>&1 &
DTLE_PID=$!
DTLE_HWM_KB=0
wait_checkpoint "starting" 0
t0=$(now)
qi "$SRC" <"$TMP/steady.sql"
t_written=$(now)
target="$(src_seq)"
wait_checkpoint "steady load" "$target"
t1=$(now)
dtle_stop "$LOG"
DTLE_PID=""
read -r msgs bytes <<<"$(produced "$LOG")"
RESULTS+=("steady|$TX|$(calc "$t1 - $t0" %.3f)|${bytes:-0}|$DTLE_HWM_KB")
((DTLE_HWM_KB > HWM_MAX)) && HWM_MAX=$DTLE_HWM_KB
STEADY_NOTE="source commit rate $(calc "$TX / ($t_written - $t0)" %.0f) tx/s; checkpoint $(calc "$t1 - $t_written" %.2f) s after the last commit"

# ---------------------------------------------------------------- backlog catch-up
write_updates "$TX" "$TMP/backlog.sql"
blog "backlog: $TX transactions written with dtle stopped"
qi "$SRC" <"$TMP/backlog.sql"
target="$(src_seq)"
LOG="$TMP/dtle_backlog.log"
t0=$(now)
"$DTLE_BIN" run "$TMP/job.hcl" --data-dir "$TMP/data" --no-progress-bar >"$LOG" 2>&1 &
DTLE_PID=$!
DTLE_HWM_KB=0
wait_checkpoint "catching up" "$target"
t1=$(now)
dtle_stop "$LOG"
DTLE_PID=""
read -r msgs bytes <<<"$(produced "$LOG")"
RESULTS+=("backlog catch-up|$TX|$(calc "$t1 - $t0" %.3f)|${bytes:-0}|$DTLE_HWM_KB")
((DTLE_HWM_KB > HWM_MAX)) && HWM_MAX=$DTLE_HWM_KB
all_offsets="$(end_offsets)"

# ---------------------------------------------------------------- report
echo
echo "== kafka: bench.sbtest1, $ROWS rows + 2 x $TX single-row updates -> Kafka $BROKERS (topic $TOPIC.bench.sbtest1) =="
durability_note
printf '%-18s %9s %9s %10s %8s %10s\n' phase events seconds events/s MB/s peak_RSS
for r in "${RESULTS[@]}"; do
    IFS='|' read -r phase n secs b rss <<<"$r"
    printf '%-18s %9s %9s %10s %8s %10s\n' "$phase" "$n" "$secs" "$(calc "$n/$secs" %.0f)" \
        "$(calc "$b/1e6/$secs" %.1f)" "$(calc "$rss/1024" %.0f) MiB"
done
echo "(MB/s: JSON key + value bytes handed to the producer, before lz4; steady: $STEADY_NOTE)"
echo "topic end offsets: $snap_offsets after the snapshot (want >= $ROWS), $all_offsets at the end (want >= $((ROWS + 2 * TX)); more means re-sent messages)"
echo "peak RSS of dtle over all phases: $(calc "$HWM_MAX/1024" %.0f) MiB"
