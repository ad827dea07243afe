#!/usr/bin/env bash
# Incremental benchmark: binlog backlog catch-up, native MariaDB replica vs dtle, then steady-state lag of dtle
# and of the native replica, measured the same way.
#
#   tests/bench/incremental.sh [TX=20000]
#
# Catch-up: native replica single-threaded, 4 threads optimistic and 4 threads conservative; dtle per
# PARALLEL_WORKERS; dtle's ratios to each and to the fastest native configuration.
# Steady-state lag: LAG_RATE tx/s on the source plus a probe row (bench.lagprobe, ts = source NOW(6)) every 100 ms.
# On the dtle target and the replica, lagprobe has an extra column `seen DATETIME(6)` set by a BEFORE INSERT
# trigger to SYSDATE(6) (not NOW(6): a replica's SQL thread fakes NOW() to the source's event time; the replica
# runs with slave_run_triggers_for_rbr=YES so row events fire it). Lag = seen - ts, read after the run: the moment
# the row is written on the target (before its commit there), with no polling granularity. The old measure is
# kept beside it: a connection polling the target every ~20 ms for new probe rows (visible = committed; the
# poll interval adds ~10 ms on average); visible - applied per probe = the follower's commit wait + the poll wait. The probe's own connection also reads SYSDATE(6) right after each
# insert returns, which splits the lag into source commit (insert + binlog/redo fsync) and the rest.
# LAG_NATIVE=separate (default): the load runs twice, first followed by dtle alone (replica stopped), then by
# the native replica alone (dtle stopped, restarted afterwards to catch up): each follower has the machine to
# itself. LAG_NATIVE=together: one load, dtle and the replica following it at the same time. off: dtle only.
#
# Env: CLIENTS=4 (parallel clients generating the backlog), ROWS_PER_TABLE=100000 (the issue's 4 x 100k),
#      LAG_RATE=1000 (tx/s of the steady-state load; auto = half of the native single-threaded catch-up rate),
#      LAG_SECONDS=20, LAG_CLIENTS=4 (connections writing it, on disjoint ids), LAG_PACING=smooth (each
#      transaction at its own time, rate/LAG_CLIENTS apart per client; tick = the older bursts every 100 ms,
#      aligned with the probes), LAG_NATIVE=separate|together|off, LAG_NATIVE_CONFIG=fastest (the fastest
#      catch-up configuration; or single, optimistic4, conservative4), LAG_POLL=1 (0: no polling during the
#      run, only the trigger measure), LAG_POLL_MS=20 (the poll interval), IDLE_SECONDS=10 (idle time before the idle RSS sample),
#      BENCH_DURABLE=1 (default; 0 = fast, non-durable instances), BENCH_KEEP=1, DTLE_BIN.
# Prints figures only; never fails on timings. Fails (exit 1) only when a tool errors or hangs.
# Instances: bench_src (3317), bench_dst (3318, dtle target), bench_replica (3319, native replica);
# created fresh and destroyed at the end.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TX="${1:-20000}"
[[ "$TX" =~ ^[0-9]+$ && "$TX" -gt 0 ]] || bdie "TX must be a positive integer"
CLIENTS="${CLIENTS:-4}"
ROWS_PER_TABLE="${ROWS_PER_TABLE:-100000}"
LAG_RATE="${LAG_RATE:-1000}"
IDLE_SECONDS="${IDLE_SECONDS:-10}"
LAG_SECONDS="${LAG_SECONDS:-20}"
LAG_CLIENTS="${LAG_CLIENTS:-4}"
LAG_PACING="${LAG_PACING:-smooth}"
LAG_NATIVE="${LAG_NATIVE:-separate}"
# dtle serves its metrics here, for the breakdown of its own time in the lag phase (dtle_histogram)
export DTLE_METRICS_ADDR="${DTLE_METRICS_ADDR:-127.0.0.1:${BENCH_METRICS_PORT:-18191}}"
LAG_NATIVE_CONFIG="${LAG_NATIVE_CONFIG:-fastest}"
LAG_POLL="${LAG_POLL:-1}"
LAG_POLL_MS="${LAG_POLL_MS:-20}"
[[ "$LAG_POLL_MS" =~ ^[0-9]+$ && "$LAG_POLL_MS" -gt 0 ]] || bdie "LAG_POLL_MS must be a positive integer"
[[ "$LAG_PACING" == smooth || "$LAG_PACING" == tick ]] || bdie "LAG_PACING must be smooth or tick"
[[ "$LAG_NATIVE" =~ ^(separate|together|off)$ ]] || bdie "LAG_NATIVE must be separate, together or off"
[[ "$LAG_NATIVE_CONFIG" =~ ^(fastest|single|optimistic4|conservative4)$ ]] ||
    bdie "LAG_NATIVE_CONFIG must be fastest, single, optimistic4 or conservative4"
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
    [[ -n "${POLL_PIDS[*]:-}" ]] && for p in "${POLL_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    bench_destroy bench_src
    bench_destroy bench_dst
    bench_destroy bench_replica
    [[ "${BENCH_KEEP:-0}" == 1 ]] && blog "logs and job files kept in $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

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
# add_seen PORT -> bench.lagprobe gets `seen DATETIME(6)`, set by a BEFORE INSERT trigger to SYSDATE(6) (the wall
# clock when the row is written; NOW(6) would be the source's event time on a native replica)
add_seen() {
    q "$1" "SET SESSION sql_log_bin = 0;
            ALTER TABLE bench.lagprobe ADD COLUMN seen DATETIME(6) NULL;
            CREATE TRIGGER bench.lagprobe_seen BEFORE INSERT ON bench.lagprobe FOR EACH ROW SET NEW.seen = SYSDATE(6)"
}
qi "$DST" <"$TMP/start.sql"
add_seen "$DST"

# load_replica -> bench_replica: stopped, start state loaded without binlogging, own binlog reset, the lagprobe
# trigger, which row events fire (slave_run_triggers_for_rbr, MariaDB)
load_replica() {
    q "$REP" "STOP SLAVE; RESET SLAVE ALL; DROP DATABASE IF EXISTS bench"
    qi "$REP" --init-command="SET SESSION sql_log_bin=0" <"$TMP/start.sql"
    add_seen "$REP"
    q "$REP" "RESET MASTER; SET GLOBAL slave_run_triggers_for_rbr = YES"
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

RESULTS=()          # "name|seconds"
NATIVE_RESULTS=()   # "name|seconds|slave_parallel_threads|slave_parallel_mode|short name"

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
    NATIVE_RESULTS+=("native replica, $label|$(calc "$t1 - $t0" %.3f)|$threads|$mode|$4")
    q "$REP" "STOP SLAVE"
}
native_run "single-threaded" 0 conservative single
load_replica
native_run "4 threads optimistic" 4 optimistic optimistic4
load_replica
native_run "4 threads conservative" 4 conservative conservative4
# the fastest native configuration (and the one LAG_NATIVE_CONFIG names, for the steady-state phase)
FASTEST=""
for r in "${NATIVE_RESULTS[@]}"; do
    IFS='|' read -r _ secs _ _ _ <<<"$r"
    [[ -z "$FASTEST" ]] && FASTEST="$r" && continue
    awk -v a="$secs" -v b="$(cut -d'|' -f2 <<<"$FASTEST")" 'BEGIN {exit !(a < b)}' && FASTEST="$r"
done
LAG_NATIVE_RESULT="$FASTEST"
for r in "${NATIVE_RESULTS[@]}"; do
    [[ "$(cut -d'|' -f5 <<<"$r")" == "$LAG_NATIVE_CONFIG" ]] && LAG_NATIVE_RESULT="$r"
done

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
        add_seen "$DST"
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


# ---------------------------------------------------------------- (c) steady-state lag
if [[ "$LAG_RATE" == auto ]]; then
    LAG_RATE="$(calc "$TX / $(cut -d'|' -f2 <<<"${NATIVE_RESULTS[0]}") / 2" %.0f)"
    ((LAG_RATE >= 10)) || LAG_RATE=10
fi
[[ "$LAG_RATE" =~ ^[0-9]+$ && "$LAG_RATE" -gt 0 ]] || bdie "LAG_RATE must be a positive integer or auto"
LAG_TX=$((LAG_RATE * LAG_SECONDS))
PER_TICK=$(((LAG_RATE + 5) / 10 / LAG_CLIENTS))   # LAG_PACING=tick: transactions per 100 ms tick and client
((PER_TICK >= 1)) || PER_TICK=1
# A FIFO nobody writes to: `read -t` on it sleeps without forking a `sleep` (the writers wait ~1000 times a second).
mkfifo "$TMP/sleep.fifo"
exec {SLEEP_FD}<>"$TMP/sleep.fifo"
POLL_PIDS=()

# replica_seq -> the replica's applied sequence number;  dtle_seq -> the one in dtle's position row on the target
replica_seq() { gtid_seq "$(q "$REP" "SELECT @@gtid_slave_pos")"; }
dtle_seq() {
    local row
    row="$(position_row "$DST" "$JOB")"
    gtid_seq "${row#*$'\t'}"
}
# wait_seq WHAT FUNCTION SEQ -> until FUNCTION prints at least SEQ (300 s at most)
wait_seq() {
    local deadline=$((SECONDS + 300))
    until (($($2) >= $3)); do
        [[ "$2" != dtle_seq ]] || dtle_alive || dtle_died "$DLOG" "catching up ($1)"
        ((SECONDS < deadline)) || bdie "$1 did not reach sequence $3 within 300 s (at $($2))"
        sleep 0.1
    done
}
# replica_follow THREADS MODE -> the replica (stopped) started with that configuration
replica_follow() {
    q "$REP" "SET GLOBAL slave_parallel_threads=$1; SET GLOBAL slave_parallel_mode='$2'; START SLAVE"
}

# lag_phase NAME SEED LABEL:PORT... -> runs the steady-state load once while the followers (LABEL on the target at
# PORT) apply it. Writes $TMP/lag_NAME_LABEL_{applied,polled,commit,after}.txt (µs per probe) and sets PH_* figures.
lag_phase() {
    local name="$1" seed="$2" k f t a b
    shift 2
    local labels=() ports=() last=() done_at=() in_fd=() out_fd=()
    for f in "$@"; do
        labels+=("${f%%:*}")
        ports+=("${f#*:}")
    done
    PH_FIRST_ID=$(($(q "$SRC" "SELECT COALESCE(MAX(id), 0) FROM bench.lagprobe") + 1))
    local first_seq
    first_seq="$(src_seq)"
    blog "steady state ($name): $LAG_RATE tx/s ($LAG_CLIENTS clients, pacing $LAG_PACING) for $LAG_SECONDS s + a lagprobe row every 100 ms; followers: ${labels[*]}"
    local load_start load_end writer_pids=() cl
    load_start=$(($(us) + 300000))
    load_end=$((load_start + LAG_SECONDS * 1000000))
    for ((cl = 0; cl < LAG_CLIENTS; cl++)); do
        gen_tx $((seed + cl)) $((LAG_TX / LAG_CLIENTS + PER_TICK + 1)) "$cl" "$LAG_CLIENTS" >"$TMP/load_${name}_$cl.sql"
        {
            exec 5<"$TMP/load_${name}_$cl.sql"
            j=0
            while IFS= read -r -u5 line; do
                if [[ "$LAG_PACING" == tick ]]; then
                    due=$((load_start + (j / PER_TICK) * 100000))
                else
                    due=$((load_start + (j * LAG_CLIENTS + cl) * 1000000 / LAG_RATE))
                fi
                ((due >= load_end)) && break
                t=$EPOCHREALTIME
                d=$((due - 10#${t/./}))
                ((d > 0)) && { read -r -t "$(printf '%d.%06d' $((d / 1000000)) $((d % 1000000)))" -u "$SLEEP_FD" _ || true; }
                printf '%s\n' "$line"
                j=$((j + 1))
            done
        } | qi "$SRC" &
        writer_pids+=($!)
        BG_PIDS+=($!)
    done
    # The probes: each insert, then (its commit returned) the source's wall clock, on the probe's own connection.
    {
        tick=0
        while :; do
            sleep_until_us $((load_start + tick * 100000))
            (($(us) >= load_end)) && break
            echo "INSERT INTO bench.lagprobe (ts) VALUES (NOW(6)); SELECT LAST_INSERT_ID(), UNIX_TIMESTAMP(SYSDATE(6));"
            tick=$((tick + 1))
        done
    } | qi "$SRC" -N -B --unbuffered >"$TMP/probes_$name.txt" &
    local probe_pid=$!
    writer_pids+=("$probe_pid")
    BG_PIDS+=("$probe_pid")
    # One polling connection per follower (LAG_POLL=1), through FIFOs.
    for k in "${!ports[@]}"; do
        last[k]=$((PH_FIRST_ID - 1))
        done_at[k]=""
        : >"$TMP/lag_${name}_${labels[k]}_polled.txt"
        : >"$TMP/lag_${name}_${labels[k]}_polled_ids.txt"
        if [[ "$LAG_POLL" == 1 ]]; then
            rm -f "$TMP/poll_in_$k" "$TMP/poll_out_$k"
            mkfifo "$TMP/poll_in_$k" "$TMP/poll_out_$k"
            mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"${ports[k]}" -uroot -N -B --unbuffered \
                <"$TMP/poll_in_$k" >"$TMP/poll_out_$k" 2>&1 &
            POLL_PIDS+=($!)
            exec {a}>"$TMP/poll_in_$k"
            exec {b}<"$TMP/poll_out_$k"
            in_fd[k]=$a
            out_fd[k]=$b
        fi
    done
    local writers_done="" want="" deadline=$((SECONDS + LAG_SECONDS + 300)) all
    while :; do
        if [[ "$LAG_POLL" == 1 ]]; then
            for k in "${!ports[@]}"; do
                printf 'SELECT id, TIMESTAMPDIFF(MICROSECOND, ts, NOW(6)) FROM bench.lagprobe WHERE id > %d ORDER BY id; SELECT "END";\n' \
                    "${last[k]}" >&"${in_fd[k]}"
                while IFS=$'\t' read -r -u "${out_fd[k]}" a b; do
                    [[ "$a" == END ]] && break
                    [[ "$a" =~ ^[0-9]+$ ]] || bdie "poll of ${labels[k]} failed: $a $b"
                    echo "$b" >>"$TMP/lag_${name}_${labels[k]}_polled.txt"
                    echo "$a $b" >>"$TMP/lag_${name}_${labels[k]}_polled_ids.txt"
                    last[k]=$a
                done
            done
        fi
        if [[ -n "$DTLE_PID" ]]; then
            dtle_sample_rss
            dtle_alive || dtle_died "$DLOG" "following the steady-state load"
        fi
        if [[ -z "$writers_done" ]]; then
            writers_done=1
            for f in "${writer_pids[@]}"; do kill -0 "$f" 2>/dev/null && writers_done=""; done
            if [[ -n "$writers_done" ]]; then
                for f in "${writer_pids[@]}"; do wait "$f" || bdie "a steady-state writer failed ($name)"; done
                BG_PIDS=()
                PH_SECONDS="$(calc "($(us) - $load_start) / 1e6")"
                want="$(q "$SRC" "SELECT COALESCE(MAX(id), 0) FROM bench.lagprobe")"
                PH_LAST_SEQ="$(src_seq)"
            fi
        fi
        if [[ -n "$want" ]]; then
            # Ended when every follower has every probe row of the phase (parallel appliers may show them out of order).
            all=1
            for k in "${!ports[@]}"; do
                [[ -n "${done_at[k]}" ]] && continue
                if (($(q "${ports[k]}" "SELECT COUNT(*) FROM bench.lagprobe WHERE id BETWEEN $PH_FIRST_ID AND $want") == want - PH_FIRST_ID + 1)); then
                    done_at[k]=1
                else
                    all=""
                fi
            done
            [[ -n "$all" ]] && break
        fi
        ((SECONDS < deadline)) || bdie "the followers did not show every lagprobe row ($PH_FIRST_ID..${want:-?}) in time"
        if [[ "$LAG_POLL" == 1 ]]; then
            read -r -t "$(calc "$LAG_POLL_MS / 1000" %.3f)" -u "$SLEEP_FD" _ || true
        else
            sleep 0.1
        fi
    done
    if [[ "$LAG_POLL" == 1 ]]; then
        for k in "${!ports[@]}"; do
            eval "exec ${in_fd[k]}>&- ${out_fd[k]}<&-"
        done
        for f in "${POLL_PIDS[@]}"; do wait "$f" 2>/dev/null || true; done
        POLL_PIDS=()
    fi
    PH_PROBES=$((want - PH_FIRST_ID + 1))
    PH_LOAD_TX=$((PH_LAST_SEQ - first_seq - PH_PROBES))
    # After the run: per probe, seen - ts on each follower, and the source commit time from the probe's connection.
    for k in "${!ports[@]}"; do
        f="$TMP/lag_${name}_${labels[k]}"
        (($(q "${ports[k]}" "SELECT COUNT(*) FROM bench.lagprobe WHERE id BETWEEN $PH_FIRST_ID AND $want AND seen IS NULL") == 0)) ||
            bdie "${labels[k]}: lagprobe rows without seen: the trigger did not fire (slave_run_triggers_for_rbr?)"
        q "${ports[k]}" "SELECT id, UNIX_TIMESTAMP(ts), UNIX_TIMESTAMP(seen) FROM bench.lagprobe
                         WHERE id BETWEEN $PH_FIRST_ID AND $want" >"$f.rows"
        awk -v f="$f" 'NR == FNR {c[$1] = $2; next}
            {printf "%.0f\n", ($3 - $2) * 1e6 > (f "_applied.txt")}
            ($1 in c) {printf "%.0f\n", (c[$1] - $2) * 1e6 > (f "_commit.txt"); printf "%.0f\n", ($3 - c[$1]) * 1e6 > (f "_after.txt")}' \
            "$TMP/probes_$name.txt" "$f.rows"
        awk 'NR == FNR {v[$1] = $2; next} ($1 in v) {printf "%.0f\n", v[$1] - ($3 - $2) * 1e6}' \
            "${f}_polled_ids.txt" "$f.rows" >"${f}_vis_minus_applied.txt"
    done
}

# lag_line LABEL MEASURE FILE -> one row of the lag table (ms)
lag_line() {
    local n p
    n=$(wc -l <"$3" 2>/dev/null || echo 0)
    if ((n == 0)); then
        printf '%-8s %-48s %6s\n' "$1" "$2" 0
        return
    fi
    printf '%-8s %-48s %6d' "$1" "$2" "$n"
    for p in 50 90 99 100; do printf ' %8s' "$(calc "$(percentile "$3" "$p")/1000" %.1f)"; done
    echo
}
LAG_REPORT=()   # lines printed in the report
# lag_report NAME LABEL... -> the table rows of a phase
lag_report() {
    local name="$1" l
    shift
    LAG_REPORT+=("phase $name: source committed $PH_LOAD_TX load transactions in $PH_SECONDS s = $(calc "$PH_LOAD_TX/$LAG_SECONDS" %.0f) tx/s over the asked $LAG_SECONDS s (asked $LAG_RATE), plus $PH_PROBES probes")
    for l in "$@"; do
        LAG_REPORT+=("$(lag_line "$l" "applied (trigger SYSDATE(6) - source ts)" "$TMP/lag_${name}_${l}_applied.txt")")
        [[ "$LAG_POLL" != 1 ]] ||
            LAG_REPORT+=("$(lag_line "$l" "visible (polled every ~$LAG_POLL_MS ms, NOW(6) - ts)" "$TMP/lag_${name}_${l}_polled.txt")")
        LAG_REPORT+=("$(lag_line "$l" "  of which source commit (insert -> its OK)" "$TMP/lag_${name}_${l}_commit.txt")")
        LAG_REPORT+=("$(lag_line "$l" "  of which source OK -> applied" "$TMP/lag_${name}_${l}_after.txt")")
        if [[ "$LAG_POLL" == 1 ]]; then
            LAG_REPORT+=("$(lag_line "$l" "visible - applied (commit there + poll wait)" "$TMP/lag_${name}_${l}_vis_minus_applied.txt")")
        fi
    done
}

# dtle_breakdown BEFORE_DIR AFTER_DIR -> report lines: dtle's own time per group of changes during the phase, from
# its histograms (dtle_batch_ack_seconds: a batch sent by the src -> acknowledged, i.e. waiting behind the group being
# applied + its own group's apply and commit; dtle_dest_queue_seconds: a group taken off the link -> its apply
# starts; dtle_dest_apply_seconds: apply start -> committed on the target)
dtle_breakdown() {
    local h c mean p50 p99 label
    for h in ack queue apply; do
        read -r c mean p50 p99 <<<"$(histogram_delta "$1/$h" "$2/$h")"
        case $h in
        ack) label="in dtle: batch sent -> acknowledged committed" ;;
        queue) label="in dtle:   group taken at the dest -> apply start" ;;
        apply) label="in dtle:   group apply start -> committed" ;;
        esac
        LAG_REPORT+=("$(printf '%-8s %-48s %6s %8s %8s %8s %8s' dtle "$label" "$c" "<=$p50" "" "<=$p99" "mean $mean")")
    done
    LAG_REPORT+=("(dtle: $c target transactions (groups) for the phase's $((PH_LOAD_TX + PH_PROBES)) source transactions; <= = upper bound of the histogram bucket)")
}
# dtle_scrape DIR -> the two histograms into DIR
dtle_scrape() {
    mkdir -p "$1"
    dtle_histogram dtle_batch_ack_seconds >"$1/ack" || bdie "cannot read dtle's metrics at $DTLE_METRICS_ADDR"
    dtle_histogram dtle_dest_queue_seconds >"$1/queue"
    dtle_histogram dtle_dest_apply_seconds >"$1/apply"
}

IFS='|' read -r NATIVE_LAG_LABEL _ NATIVE_LAG_THREADS NATIVE_LAG_MODE _ <<<"$LAG_NATIVE_RESULT"
NATIVE_LAG_LABEL="${NATIVE_LAG_LABEL#native replica, }"
case "$LAG_NATIVE" in
together)
    # dtle (still running) and the replica (stopped at FINAL) follow the same load at the same time
    replica_follow "$NATIVE_LAG_THREADS" "$NATIVE_LAG_MODE"
    dtle_scrape "$TMP/hist_before"
    lag_phase together 4242 dtle:"$DST" native:"$REP"
    dtle_scrape "$TMP/hist_after"
    lag_report together dtle native
    dtle_breakdown "$TMP/hist_before" "$TMP/hist_after"
    wait_seq "dtle" dtle_seq "$PH_LAST_SEQ"
    wait_seq "the native replica" replica_seq "$PH_LAST_SEQ"
    ;;
*)
    dtle_scrape "$TMP/hist_before"
    lag_phase dtle 4242 dtle:"$DST"
    dtle_scrape "$TMP/hist_after"
    lag_report dtle dtle
    dtle_breakdown "$TMP/hist_before" "$TMP/hist_after"
    wait_seq "dtle" dtle_seq "$PH_LAST_SEQ"
    ;;
esac
LOAD_DONE_SEQ=$PH_LAST_SEQ

# ---------------------------------------------------------------- (d) idle RSS: nothing to replicate for IDLE_SECONDS
blog "idle: sampling dtle's resident set after $IDLE_SECONDS s without writes"
sleep "$IDLE_SECONDS"
dtle_alive || dtle_died "$DLOG" "idle"
IDLE_RSS_KB="$(dtle_rss_kb)"
dtle_stop "$DLOG"
DTLE_PID=""
STOP_RC=$DTLE_RC
END_HWM_KB=$DTLE_HWM_KB
RESTART_LINE=""

if [[ "$LAG_NATIVE" == separate ]]; then
    # The replica catches up dtle's phase, then follows a second run of the load alone; dtle is restarted after it
    # (from its position on the target) to catch up that second load too.
    blog "native replica ($NATIVE_LAG_LABEL) catching up dtle's steady-state load"
    replica_follow "$NATIVE_LAG_THREADS" "$NATIVE_LAG_MODE"
    wait_seq "the native replica" replica_seq "$LOAD_DONE_SEQ"
    lag_phase native 5252 native:"$REP"
    lag_report native native
    wait_seq "the native replica" replica_seq "$PH_LAST_SEQ"
    LOAD_DONE_SEQ=$PH_LAST_SEQ
    DLOG="$TMP/dtle_incr_restart.log"
    blog "dtle restarted to catch up the native phase's load (log: $DLOG)"
    t0=$(now)
    dtle_start "$TMP/incr.hcl" "$TMP/data_restart" "$DLOG"
    wait_seq "dtle (restarted)" dtle_seq "$LOAD_DONE_SEQ"
    t1=$(now)
    dtle_stop "$DLOG"
    DTLE_PID=""
    RESTART_LINE="dtle restarted after the native phase (its position from the target): caught up $PH_LOAD_TX+$PH_PROBES transactions in $(calc "$t1 - $t0") s, stop on SIGINT: status $DTLE_RC"
fi

# ---------------------------------------------------------------- the replica catches up everything, then checksums
[[ "$LAG_NATIVE" == off ]] && q "$REP" "START SLAVE"
wait_seq "the native replica" replica_seq "$LOAD_DONE_SEQ"
q "$REP" "STOP SLAVE"

# ---------------------------------------------------------------- report
echo
echo "== incremental catch-up: backlog of $TX transactions x 4 row changes on $TABLES tables x $ROWS_PER_TABLE rows =="
durability_note
echo "(source wrote the backlog at $SRC_TPS tx/s with $CLIENTS clients; START $START -> FINAL $FINAL)"
printf '%-40s %9s %9s\n' applier seconds tx/s
for r in "${RESULTS[@]}"; do
    IFS='|' read -r name secs <<<"$r"
    printf '%-40s %9s %9s\n' "$name" "$secs" "$(calc "$TX/$secs" %.0f)"
done
IFS='|' read -r fastest_name fastest_secs _ <<<"$FASTEST"
for r in "${DTLE_RESULTS[@]}"; do
    IFS='|' read -r name dtle_secs <<<"$r"
    for n in "${NATIVE_RESULTS[@]}"; do
        IFS='|' read -r nname nsecs _ <<<"$n"
        echo "ratio $name / ${nname}: $(calc "$nsecs / $dtle_secs" %.2f)x throughput"
    done
    echo "ratio $name / fastest native (${fastest_name#native replica, }): $(calc "$fastest_secs / $dtle_secs" %.2f)x throughput  (issue: >= 2)"
done
echo "(checksums of every table equal on source and target after each dtle run)"
echo "dtle peak RSS during catch-up: $(calc "$CATCHUP_RSS_KB/1024" %.0f) MiB; at the end: $(calc "$END_HWM_KB/1024" %.0f) MiB; stop on SIGINT: status $STOP_RC"
echo "dtle idle RSS (VmRSS after $IDLE_SECONDS s without source writes, job caught up): $(calc "$IDLE_RSS_KB/1024" %.1f) MiB"
echo
case "$LAG_NATIVE" in
separate) how="the load run twice: first followed by dtle alone (replica stopped), then by the native replica alone (dtle stopped)" ;;
together) how="one load, dtle and the native replica following it at the same time" ;;
off) how="dtle only" ;;
esac
echo "== steady-state lag: $LAG_RATE tx/s asked for $LAG_SECONDS s ($LAG_CLIENTS clients, pacing $LAG_PACING), a probe row every 100 ms =="
if [[ "$LAG_NATIVE" == off ]]; then
    echo "($how)"
else
    echo "(native = replica $NATIVE_LAG_LABEL [LAG_NATIVE_CONFIG=$LAG_NATIVE_CONFIG], slave_run_triggers_for_rbr=YES; $how)"
fi
echo "(applied: SYSDATE(6) of a BEFORE INSERT trigger on the follower's lagprobe minus the source's NOW(6), read after the run;"
echo " visible: a connection polling the follower every ~$LAG_POLL_MS ms, which adds ~half of that on average; source commit: the probe's"
echo " connection reads SYSDATE(6) once its INSERT has returned; per probe, the two 'of which' add up to applied)"
printf '%-8s %-48s %6s %8s %8s %8s %8s\n' follower "measure (ms)" n p50 p90 p99 max
printf '%s\n' "${LAG_REPORT[@]}"
[[ -n "$RESTART_LINE" ]] && echo "$RESTART_LINE"
echo
echo "== CHECKSUM TABLE: source vs native replica vs dtle target (after the backlog and the steady-state load) =="
echo "(lagprobe: COUNT and BIT_XOR(CRC32(id, ts)): the targets have the extra column seen)"
# probe_sum PORT -> a checksum of lagprobe's source columns
probe_sum() { q "$1" "SELECT CONCAT(COUNT(*), '/', COALESCE(BIT_XOR(CRC32(CONCAT_WS('|', id, ts))), 0)) FROM bench.lagprobe"; }
printf '%-18s %12s %12s %12s  %s\n' table source replica dtle result
for t in $(seq 1 $TABLES) lagprobe; do
    if [[ "$t" == lagprobe ]]; then
        tbl=bench.lagprobe
        s="$(probe_sum "$SRC")"
        r="$(probe_sum "$REP")"
        d="$(probe_sum "$DST")"
    else
        tbl=bench.sbtest$t
        s="$(checksum "$SRC" "$tbl")"
        r="$(checksum "$REP" "$tbl")"
        d="$(checksum "$DST" "$tbl")"
    fi
    res=""
    [[ "$s" == "$r" ]] || res+="DIFF(replica) "
    [[ "$s" == "$d" ]] || res+="DIFF(dtle) "
    printf '%-18s %12s %12s %12s  %s\n' "$tbl" "$s" "$r" "$d" "${res:-OK}"
done
