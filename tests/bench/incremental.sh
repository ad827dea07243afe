#!/usr/bin/env bash
# Incremental benchmark: binlog backlog catch-up, native MariaDB replica vs dtle, then steady-state lag of dtle.
#
#   tests/bench/incremental.sh [TX=20000]
#
# Env: CLIENTS=4 (parallel clients generating the backlog), ROWS_PER_TABLE=100000 (the issue's 4 x 100k),
#      LAG_RATE=auto (tx/s of the steady-state load; auto = half of the native single-threaded catch-up rate),
#      LAG_SECONDS=20, LAG_CLIENTS=2 (connections writing it), IDLE_SECONDS=10 (idle time before the idle RSS sample), BENCH_DURABLE=1 (default; 0 = fast,
#      non-durable instances), BENCH_KEEP=1, DTLE_BIN.
# Prints figures only; never fails on timings. Fails (exit 1) only when a tool errors or hangs.
# Instances: bench_src (3317), bench_dst (3318, dtle target), bench_replica (3319, native replica);
# created fresh and destroyed at the end.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TX="${1:-20000}"
[[ "$TX" =~ ^[0-9]+$ && "$TX" -gt 0 ]] || bdie "TX must be a positive integer"
CLIENTS="${CLIENTS:-4}"
ROWS_PER_TABLE="${ROWS_PER_TABLE:-100000}"
LAG_RATE="${LAG_RATE:-auto}"
IDLE_SECONDS="${IDLE_SECONDS:-10}"
LAG_SECONDS="${LAG_SECONDS:-20}"
TABLES=4
SRC=$BENCH_SRC_PORT
DST=$BENCH_DST_PORT
REP=$BENCH_REPLICA_PORT
JOB=bench_incr
CATCHUP_TIMEOUT=1800
TMP="$(mktemp -d /tmp/dtle-bench-incremental.XXXXXX)"
DTLE_PID=""
BG_PIDS=()
cleanup() {
    local p
    [[ -n "$DTLE_PID" ]] && kill -KILL "$DTLE_PID" 2>/dev/null || true
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    bench_destroy bench_src
    bench_destroy bench_dst
    bench_destroy bench_replica
    [[ "${BENCH_KEEP:-0}" == 1 ]] && blog "logs and job files kept in $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

# µs since the epoch, as an integer
us() { local t=$EPOCHREALTIME; echo $((10#${t/./})); }
# sleep_until_us T
sleep_until_us() {
    local d=$(($1 - $(us)))
    ((d > 0)) && sleep "$(printf '%d.%06d' $((d / 1000000)) $((d % 1000000)))"
    return 0
}

# gen_tx SEED N CLIENT NCLIENTS -> N transactions, one a line, each with 4 row changes on one random table;
# ids are taken from the client's own residue class (id % NCLIENTS == CLIENT) so parallel clients never conflict.
gen_tx() {
    awk -v seed="$1" -v n="$2" -v cl="$3" -v ncl="$4" -v rows="$ROWS_PER_TABLE" -v tables="$TABLES" '
    function rid() { return ncl * int(rand() * int(rows / ncl)) + cl + 1 }
    function grp() { return sprintf("%011d", int(rand() * 99999999999)) }
    function str(g,   s, i) { s = grp(); for (i = 1; i < g; i++) s = s "-" grp(); return s }
    BEGIN {
        srand(seed)
        for (t = 0; t < n; t++) {
            tb = "bench.sbtest" (int(rand() * tables) + 1)
            r1 = rid(); r2 = rid(); r3 = rid()
            printf "BEGIN; UPDATE %s SET k=k+1 WHERE id=%d; UPDATE %s SET c=\x27%s\x27 WHERE id=%d; DELETE FROM %s WHERE id=%d; INSERT INTO %s (id,k,c,pad) VALUES (%d,%d,\x27%s\x27,\x27%s\x27); COMMIT;\n", \
                tb, r1, tb, str(10), r2, tb, r3, tb, r3, int(rand() * rows) + 1, str(10), str(5)
        }
    }'
}

src_seq() { gtid_seq "$(q "$SRC" "SELECT @@gtid_binlog_pos")"; }

ensure_dtle
bench_instance bench_src "$SRC" 11
bench_instance bench_dst "$DST" 12
bench_instance bench_replica "$REP" 13

# ---------------------------------------------------------------- start state
blog "creating bench.sbtest1..$TABLES with $ROWS_PER_TABLE rows each on bench_src"
grp="LPAD(FLOOR(RAND()*99999999999),11,'0')"
sql="CREATE DATABASE bench;
CREATE TABLE bench.lagprobe (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, ts DATETIME(6) NOT NULL) ENGINE=InnoDB;"
for ((t = 1; t <= TABLES; t++)); do
    sql+="
CREATE TABLE bench.sbtest$t (id INT NOT NULL AUTO_INCREMENT, k INT NOT NULL DEFAULT 0,
  c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', PRIMARY KEY (id), KEY k_1 (k)) ENGINE=InnoDB;
INSERT INTO bench.sbtest$t (id, k, c, pad) SELECT seq, FLOOR(1 + RAND() * $ROWS_PER_TABLE),
  CONCAT_WS('-',$grp,$grp,$grp,$grp,$grp,$grp,$grp,$grp,$grp,$grp), CONCAT_WS('-',$grp,$grp,$grp,$grp,$grp)
  FROM bench.seq_1_to_$ROWS_PER_TABLE;"
done
q "$SRC" "$sql"
START="$(q "$SRC" "SELECT @@gtid_binlog_pos")"
mariadb-dump --no-defaults --protocol=tcp -h127.0.0.1 -P"$SRC" -uroot --single-transaction --databases bench >"$TMP/start.sql"
[[ "$(q "$SRC" "SELECT @@gtid_binlog_pos")" == "$START" ]] || bdie "bench_src moved during the start-state dump"
blog "START = $START; loading the start state into bench_dst and bench_replica"
qi "$DST" <"$TMP/start.sql"

# load_replica -> bench_replica: stopped, start state loaded without binlogging, own binlog reset
load_replica() {
    q "$REP" "STOP SLAVE; RESET SLAVE ALL; DROP DATABASE IF EXISTS bench"
    qi "$REP" --init-command="SET SESSION sql_log_bin=0" <"$TMP/start.sql"
    q "$REP" "RESET MASTER"
}
load_replica

# ---------------------------------------------------------------- backlog
blog "generating the backlog: $TX transactions x 4 row changes, $CLIENTS clients"
per=$((TX / CLIENTS))
for ((cl = 0; cl < CLIENTS; cl++)); do
    n=$per
    ((cl == 0)) && n=$((per + TX % CLIENTS))
    gen_tx $((1000 + cl)) "$n" "$cl" "$CLIENTS" >"$TMP/backlog_$cl.sql"
done
t0=$(now)
pids=()
for ((cl = 0; cl < CLIENTS; cl++)); do
    qi "$SRC" <"$TMP/backlog_$cl.sql" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || bdie "a backlog client failed"; done
t1=$(now)
FINAL="$(q "$SRC" "SELECT @@gtid_binlog_pos")"
START_SEQ="$(gtid_seq "$START")"
FINAL_SEQ="$(gtid_seq "$FINAL")"
((FINAL_SEQ - START_SEQ == TX)) || bdie "expected $TX transactions in the binlog, got $((FINAL_SEQ - START_SEQ))"
SRC_TPS="$(calc "$TX / ($t1 - $t0)" %.0f)"
blog "backlog written in $(calc "$t1 - $t0") s ($SRC_TPS tx/s on the source); FINAL = $FINAL"

RESULTS=()   # "name|seconds"

# ---------------------------------------------------------------- (a) native replica
# native_run LABEL THREADS MODE
native_run() {
    local label="$1" threads="$2" mode="$3" t0 t1 deadline seq err
    q "$REP" "SET GLOBAL slave_parallel_threads=$threads; SET GLOBAL slave_parallel_mode='$mode';
              SET GLOBAL gtid_slave_pos='$START';
              CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$SRC, MASTER_USER='dtle', MASTER_PASSWORD='dtle',
                MASTER_USE_GTID=slave_pos"
    blog "native replica: $label"
    t0=$(now)
    q "$REP" "START SLAVE"
    deadline=$((SECONDS + CATCHUP_TIMEOUT))
    while :; do
        seq="$(gtid_seq "$(q "$REP" "SELECT @@gtid_slave_pos")")"
        ((seq >= FINAL_SEQ)) && break
        err="$(q "$REP" "SHOW SLAVE STATUS\G" | sed -n 's/^ *Last_\(SQL\|IO\)_Error: \(..*\)$/\2/p' | head -n2)"
        [[ -z "$err" ]] || bdie "native replica error: $err"
        ((SECONDS < deadline)) || bdie "native replica did not catch up within $CATCHUP_TIMEOUT s (at seq $seq of $FINAL_SEQ)"
        sleep 0.1
    done
    t1=$(now)
    RESULTS+=("native replica, $label|$(calc "$t1 - $t0" %.3f)")
    q "$REP" "STOP SLAVE"
}
native_run "single-threaded" 0 conservative
load_replica
native_run "4 threads optimistic" 4 optimistic

# ---------------------------------------------------------------- (b) dtle, for each ParallelWorkers value
# PARALLEL_WORKERS="1 4": one catch-up per value, each into bench_dst reset to the start state; the last one keeps
# running for the steady-state phase.
read -r -a WORKER_RUNS <<<"${PARALLEL_WORKERS:-1 4}"
DTLE_RESULTS=()
for ((wr = 0; wr < ${#WORKER_RUNS[@]}; wr++)); do
    workers="${WORKER_RUNS[$wr]}"
    if ((wr > 0)); then
        dtle_stop "$DLOG"
        blog "resetting bench_dst to the start state"
        q "$DST" "DROP DATABASE IF EXISTS bench; DROP DATABASE IF EXISTS dtle"
        qi "$DST" <"$TMP/start.sql"
    fi
    write_job "$TMP/incr.hcl" "$JOB" "$SRC" "$DST" "$START" 2000 true "$workers"
    DLOG="$TMP/dtle_incr_w$workers.log"
    blog "dtle run from Gtid = $START, ParallelWorkers = $workers (log: $DLOG)"
    t0=$(now)
    dtle_start "$TMP/incr.hcl" "$TMP/data" "$DLOG"
    deadline=$((SECONDS + CATCHUP_TIMEOUT))
    while :; do
        dtle_sample_rss
        dtle_alive || dtle_died "$DLOG" "catching up"
        row="$(position_row "$DST" "$JOB")"
        seq="$(gtid_seq "${row#*$'\t'}")"
        ((seq >= FINAL_SEQ)) && break
        if ((SECONDS >= deadline)); then
            blog "dtle did not catch up within $CATCHUP_TIMEOUT s (position row: ${row:-none}); last log lines:"
            tail -n 30 "$DLOG" >&2
            exit 1
        fi
        sleep 0.1
    done
    t1=$(now)
    for t in $(seq 1 "$TABLES"); do
        [[ "$(checksum "$SRC" "bench.sbtest$t")" == "$(checksum "$DST" "bench.sbtest$t")" ]] ||
            bdie "bench.sbtest$t differs between source and target after dtle (ParallelWorkers=$workers)"
    done
    DTLE_RESULTS+=("dtle ParallelWorkers=$workers|$(calc "$t1 - $t0" %.3f)")
    CATCHUP_RSS_KB=$DTLE_HWM_KB
done
RESULTS+=("${DTLE_RESULTS[@]}")

# ---------------------------------------------------------------- (c) steady-state lag (dtle keeps running)
if [[ "$LAG_RATE" == auto ]]; then
    LAG_RATE="$(calc "$TX / ${RESULTS[0]#*|} / 2" %.0f)"
    ((LAG_RATE >= 10)) || LAG_RATE=10
fi
LAG_TX=$((LAG_RATE * LAG_SECONDS))
LAG_CLIENTS="${LAG_CLIENTS:-2}"
PER_TICK=$(((LAG_RATE + 5) / 10 / LAG_CLIENTS))   # transactions per 100 ms tick and client
((PER_TICK >= 1)) || PER_TICK=1
blog "steady state: $LAG_RATE tx/s ($LAG_CLIENTS clients) for $LAG_SECONDS s + a lagprobe row every 100 ms; polling the target"
load_start=$(($(us) + 300000))
load_end=$((load_start + LAG_SECONDS * 1000000))
LOAD_PIDS=()
for ((cl = 0; cl < LAG_CLIENTS; cl++)); do
    # A durable source commits only a few hundred transactions a second on one connection: several clients, each on
    # its own ids (no conflicts), paced together.
    gen_tx $((4242 + cl)) $((LAG_TX / LAG_CLIENTS + PER_TICK)) "$cl" "$LAG_CLIENTS" >"$TMP/load_$cl.sql"
    {
        exec 5<"$TMP/load_$cl.sql"
        tick=0
        while :; do
            sleep_until_us $((load_start + tick * 100000))
            (($(us) >= load_end)) && break
            for ((j = 0; j < PER_TICK; j++)); do
                IFS= read -r -u5 line || break 2
                printf '%s\n' "$line"
            done
            tick=$((tick + 1))
        done
    } | qi "$SRC" &
    LOAD_PIDS+=($!)
    BG_PIDS+=($!)
done
{
    tick=0
    while :; do
        sleep_until_us $((load_start + tick * 100000))
        (($(us) >= load_end)) && break
        echo "INSERT INTO bench.lagprobe (ts) VALUES (NOW(6));"
        tick=$((tick + 1))
    done
} | qi "$SRC" &
PROBE_PID=$!
BG_PIDS+=("$PROBE_PID")

# Poll the target over one connection: new probe rows and their age (target NOW(6) - source ts) when first seen.
coproc POLL { mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$DST" -uroot -N -B --unbuffered 2>&1; }
SAMPLES="$TMP/lag_us.txt"
: >"$SAMPLES"
last=0
want=""
poll_deadline=$((SECONDS + LAG_SECONDS + 60))
while :; do
    printf 'SELECT id, TIMESTAMPDIFF(MICROSECOND, ts, NOW(6)) FROM bench.lagprobe WHERE id > %d ORDER BY id; SELECT "END";\n' "$last" >&"${POLL[1]}"
    while IFS=$'\t' read -r -u "${POLL[0]}" a b; do
        [[ "$a" == END ]] && break
        [[ "$a" =~ ^[0-9]+$ ]] || bdie "target poll failed: $a $b"
        echo "$b" >>"$SAMPLES"
        last=$a
    done
    dtle_sample_rss
    dtle_alive || dtle_died "$DLOG" "following the steady-state load"
    if [[ -z "$want" ]] && ! kill -0 "$PROBE_PID" 2>/dev/null; then
        wait "$PROBE_PID" || bdie "the lagprobe writer failed"
        want="$(q "$SRC" "SELECT COALESCE(MAX(id), 0) FROM bench.lagprobe")"
    fi
    [[ -n "$want" ]] && ((last >= want)) && break
    ((SECONDS < poll_deadline)) || bdie "target did not show lagprobe id ${want:-?} (last seen $last); dtle log: $DLOG"
    sleep 0.02
done
for p in "${LOAD_PIDS[@]}"; do wait "$p" || bdie "a steady-state load writer failed"; done
BG_PIDS=()
eval "exec ${POLL[1]}>&-"
LOAD_DONE_SEQ="$(src_seq)"
# let dtle finish the tail of the load before stopping it
deadline=$((SECONDS + 120))
while :; do
    row="$(position_row "$DST" "$JOB")"
    (($(gtid_seq "${row#*$'\t'}") >= LOAD_DONE_SEQ)) && break
    ((SECONDS < deadline)) || bdie "dtle did not reach the end of the steady-state load"
    sleep 0.1
done
# ---------------------------------------------------------------- (d) idle RSS: nothing to replicate for IDLE_SECONDS
blog "idle: sampling dtle's resident set after $IDLE_SECONDS s without writes"
sleep "$IDLE_SECONDS"
dtle_alive || dtle_died "$DLOG" "idle"
IDLE_RSS_KB="$(dtle_rss_kb)"
dtle_stop "$DLOG"
DTLE_PID=""
STOP_RC=$DTLE_RC

# ---------------------------------------------------------------- the replica catches up the lag load too, then checksums
q "$REP" "START SLAVE"
deadline=$((SECONDS + 300))
until (($(gtid_seq "$(q "$REP" "SELECT @@gtid_slave_pos")") >= LOAD_DONE_SEQ)); do
    ((SECONDS < deadline)) || bdie "native replica did not reach the end of the steady-state load"
    sleep 0.1
done
q "$REP" "STOP SLAVE"

# ---------------------------------------------------------------- report
echo
echo "== incremental catch-up: backlog of $TX transactions x 4 row changes on $TABLES tables x $ROWS_PER_TABLE rows =="
durability_note
echo "(source wrote the backlog at $SRC_TPS tx/s with $CLIENTS clients; START $START -> FINAL $FINAL)"
printf '%-36s %9s %9s\n' applier seconds tx/s
for r in "${RESULTS[@]}"; do
    IFS='|' read -r name secs <<<"$r"
    printf '%-36s %9s %9s\n' "$name" "$secs" "$(calc "$TX/$secs" %.0f)"
done
for r in "${DTLE_RESULTS[@]}"; do
    IFS='|' read -r name dtle_secs <<<"$r"
    echo "ratio $name / native single-threaded: $(calc "${RESULTS[0]#*|} / $dtle_secs" %.2f)x throughput"
    echo "ratio $name / native 4 threads optimistic: $(calc "${RESULTS[1]#*|} / $dtle_secs" %.2f)x throughput"
done
echo "(checksums of every table equal on source and target after each dtle run)"
echo "dtle peak RSS during catch-up: $(calc "$CATCHUP_RSS_KB/1024" %.0f) MiB; at the end: $(calc "$DTLE_HWM_KB/1024" %.0f) MiB; stop on SIGINT: status $STOP_RC"
echo "dtle idle RSS (VmRSS after $IDLE_SECONDS s without source writes, job caught up): $(calc "$IDLE_RSS_KB/1024" %.1f) MiB"
echo
n=$(wc -l <"$SAMPLES")
load_tx=$((LOAD_DONE_SEQ - FINAL_SEQ - want))
echo "== steady-state lag (dtle): $LAG_RATE tx/s for $LAG_SECONDS s, $n probes (source NOW(6) at insert -> first seen on target, polled every ~20 ms) =="
echo "(source committed $load_tx load transactions = $(calc "$load_tx/$LAG_SECONDS" %.0f) tx/s, plus $want probe rows)"
if ((n > 0)); then
    echo "lag p50 $(calc "$(percentile "$SAMPLES" 50)/1000" %.1f) ms, p99 $(calc "$(percentile "$SAMPLES" 99)/1000" %.1f) ms, max $(calc "$(percentile "$SAMPLES" 100)/1000" %.1f) ms"
else
    echo "lag: no samples"
fi
echo
echo "== CHECKSUM TABLE: source vs native replica vs dtle target (after the backlog and the steady-state load) =="
printf '%-18s %12s %12s %12s  %s\n' table source replica dtle result
for t in $(seq 1 $TABLES) lagprobe; do
    [[ "$t" == lagprobe ]] && tbl=bench.lagprobe || tbl=bench.sbtest$t
    s="$(checksum "$SRC" "$tbl")"
    r="$(checksum "$REP" "$tbl")"
    d="$(checksum "$DST" "$tbl")"
    res=""
    [[ "$s" == "$r" ]] || res+="DIFF(replica) "
    [[ "$s" == "$d" ]] || res+="DIFF(dtle) "
    printf '%-18s %12s %12s %12s  %s\n' "$tbl" "$s" "$r" "$d" "${res:-OK}"
done
