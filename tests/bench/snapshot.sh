#!/usr/bin/env bash
# Full-copy benchmark: mariadb-dump | mariadb  vs  dtle run (snapshot stage), sysbench-shaped tables.
#
#   tests/bench/snapshot.sh [ROWS_PER_TABLE=100000]     # TABLES=4: the issue's 4 x 100k sbtest schema
#   TABLES=1 tests/bench/snapshot.sh 1000000            # the older single-table figures
#
# Env: TABLES=4, CHUNK_SIZES="2000" (dtle ChunkSize values to try), BENCH_DURABLE=1 (default; 0 = fast,
#      non-durable instances), RESUME=1 (default: also kill -9 dtle mid-copy and time the resumed copy),
#      VERIFY=1 (default: also time `dtle verify` of the last copy; VERIFY_CHUNK_SIZE=1000),
#      BENCH_KEEP=1 (keep instances), DTLE_BIN.
# Prints figures only; never fails on timings. Fails (exit 1) only when a tool errors or hangs.
# Instances: bench_src (3317) and bench_dst (3318), created fresh and destroyed at the end.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ROWS="${1:-100000}"
[[ "$ROWS" =~ ^[0-9]+$ && "$ROWS" -gt 0 ]] || bdie "ROWS_PER_TABLE must be a positive integer"
TABLES="${TABLES:-4}"
[[ "$TABLES" =~ ^[0-9]+$ && "$TABLES" -gt 0 ]] || bdie "TABLES must be a positive integer"
TOTAL=$((ROWS * TABLES))
CHUNK_SIZES="${CHUNK_SIZES:-2000}"
RESUME="${RESUME:-1}"
SRC=$BENCH_SRC_PORT
DST=$BENCH_DST_PORT
TMP="$(mktemp -d /tmp/dtle-bench-snapshot.XXXXXX)"
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

# ---------------------------------------------------------------- data
blog "creating bench.sbtest1..$TABLES with $ROWS rows each on bench_src"
q "$SRC" "CREATE DATABASE bench"
# sysbench-style strings: groups of 11 random digits joined by '-' (c: 10 groups, pad: 5 groups).
grp="LPAD(FLOOR(RAND()*99999999999),11,'0')"
c_expr="CONCAT_WS('-',$grp,$grp,$grp,$grp,$grp,$grp,$grp,$grp,$grp,$grp)"
pad_expr="CONCAT_WS('-',$grp,$grp,$grp,$grp,$grp)"
t0=$(now)
step=100000
for ((t = 1; t <= TABLES; t++)); do
    q "$SRC" "CREATE TABLE bench.sbtest$t (
      id INT NOT NULL AUTO_INCREMENT,
      k INT NOT NULL DEFAULT 0,
      c CHAR(120) NOT NULL DEFAULT '',
      pad CHAR(60) NOT NULL DEFAULT '',
      PRIMARY KEY (id),
      KEY k_1 (k)
    ) ENGINE=InnoDB"
    for ((lo = 1; lo <= ROWS; lo += step)); do
        hi=$((lo + step - 1))
        ((hi > ROWS)) && hi=$ROWS
        q "$SRC" "INSERT INTO bench.sbtest$t (id, k, c, pad)
                  SELECT seq, FLOOR(1 + RAND() * $ROWS), $c_expr, $pad_expr FROM bench.seq_${lo}_to_${hi}"
    done
done
DATA_BYTES=0
INDEX_BYTES=0
SRC_SUMS=""
for ((t = 1; t <= TABLES; t++)); do
    q "$SRC" "ANALYZE TABLE bench.sbtest$t" >/dev/null
    read -r d i <<<"$(q "$SRC" "SELECT data_length, index_length FROM information_schema.tables WHERE table_schema='bench' AND table_name='sbtest$t'")"
    DATA_BYTES=$((DATA_BYTES + d))
    INDEX_BYTES=$((INDEX_BYTES + i))
    SRC_SUMS+="$(checksum "$SRC" "bench.sbtest$t") "
done
blog "loaded in $(calc "$(now) - $t0" %.1f) s; data_length $(calc "$DATA_BYTES/1e6" %.1f) MB, index_length $(calc "$INDEX_BYTES/1e6" %.1f) MB"

RESULTS=()   # "tool|rows|seconds|rss_kb|check|cpu seconds target/source/tool"
SRC_PID="$(instance_pid bench_src)"
DST_PID="$(instance_pid bench_dst)"
# cpu_mark -> "target source" CPU seconds now;  cpu_since MARK TOOL_CPU -> "target/source/tool" used since MARK
cpu_mark() { echo "$(cpu_s "$DST_PID") $(cpu_s "$SRC_PID")"; }
cpu_since() {
    local d0 s0
    read -r d0 s0 <<<"$1"
    echo "$(calc "$(cpu_s "$DST_PID") - $d0")/$(calc "$(cpu_s "$SRC_PID") - $s0")/$2"
}
# index_columns PORT -> every index column of the bench tables (the full copy may build secondary indexes last)
index_columns() {
    q "$1" "SELECT GROUP_CONCAT(CONCAT(TABLE_NAME, '.', INDEX_NAME, '.', SEQ_IN_INDEX, '.', COLUMN_NAME)
            ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'bench'"
}
verify() {   # verify -> OK / DIFF (row count + CHECKSUM TABLE of every target table vs the source, and their indexes)
    local n s t sums=""
    n=0
    for ((t = 1; t <= TABLES; t++)); do
        n=$((n + $(q "$DST" "SELECT COUNT(*) FROM bench.sbtest$t" 2>/dev/null || echo 0)))
        sums+="$(checksum "$DST" "bench.sbtest$t" 2>/dev/null || echo -1) "
    done
    if [[ "$n" != "$TOTAL" || "$sums" != "$SRC_SUMS" ]]; then
        echo "DIFF(rows=$n,checksums=$sums,want $TOTAL/$SRC_SUMS)"
    elif [[ "$(index_columns "$DST")" != "$(index_columns "$SRC")" ]]; then
        echo "DIFF(indexes: $(index_columns "$DST"))"
    else
        echo OK
    fi
}
reset_dst() { q "$DST" "DROP DATABASE IF EXISTS bench; DROP DATABASE IF EXISTS dtle; RESET MASTER"; }

# ---------------------------------------------------------------- (a) mariadb-dump | mariadb
reset_dst
blog "mariadb-dump --single-transaction bench | mariadb (bench_src -> bench_dst)"
TIMEV=()
[[ -x /usr/bin/time ]] && TIMEV=(/usr/bin/time -f '%M %U %S' -o)   # GNU time: peak RSS (KiB), CPU of the clients
cpu0="$(cpu_mark)"
t0=$(now)
if ((${#TIMEV[@]})); then
    "${TIMEV[@]}" "$TMP/dump_rss" mariadb-dump --no-defaults --protocol=tcp -h127.0.0.1 -P"$SRC" -uroot \
        --single-transaction --databases bench |
        "${TIMEV[@]}" "$TMP/load_rss" mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$DST" -uroot --max-allowed-packet=256M
else
    mariadb-dump --no-defaults --protocol=tcp -h127.0.0.1 -P"$SRC" -uroot --single-transaction --databases bench |
        qi "$DST"
fi
t1=$(now)
clients_cpu="?"
if [[ -s "$TMP/dump_rss" && -s "$TMP/load_rss" ]]; then
    clients_cpu="$(calc "$(tail -n1 "$TMP/dump_rss" | awk '{print $2 + $3}') + $(tail -n1 "$TMP/load_rss" | awk '{print $2 + $3}')")"
fi
RESULTS+=("mariadb-dump|$TOTAL|$(calc "$t1 - $t0" %.3f)|-|$(verify)|$(cpu_since "$cpu0" "$clients_cpu")")

# ---------------------------------------------------------------- (b) dtle run, per ChunkSize
for chunk in $CHUNK_SIZES; do
    reset_dst
    job="$TMP/snap_$chunk.hcl"
    log="$TMP/dtle_snap_$chunk.log"
    # The job ends after the full copy (SkipIncrementalCopy), so it is timed like mariadb-dump | mariadb: to the
    # exit, with no poller taking CPU from it (a `mariadb` client every 50 ms costs ~0.3 CPU s per second here).
    write_job "$job" "bench_snap" "$SRC" "$DST" "" "$chunk" false 1 "SkipIncrementalCopy = true"
    blog "dtle run, ChunkSize $chunk, SkipIncrementalCopy (log: $log)"
    rm -rf "$TMP/data_$chunk"
    mkdir -p "$TMP/data_$chunk"
    cpu0="$(cpu_mark)"
    t0=$(now)
    rc=0
    if ((${#TIMEV[@]})); then
        "${TIMEV[@]}" "$TMP/dtle_time" "$DTLE_BIN" run "$job" --data-dir "$TMP/data_$chunk" --no-progress-bar >"$log" 2>&1 || rc=$?
    else
        "$DTLE_BIN" run "$job" --data-dir "$TMP/data_$chunk" --no-progress-bar >"$log" 2>&1 || rc=$?
    fi
    t1=$(now)
    ((rc == 0)) || { blog "dtle exited with status $rc; last log lines:"; tail -n 30 "$log" >&2; exit 1; }
    [[ "$(position_row "$DST" bench_snap | cut -f1)" == job_stage_incr ]] ||
        bdie "dtle exited but the target has no job_stage_incr position (log: $log)"
    DTLE_HWM_KB="$(tail -n1 "$TMP/dtle_time" 2>/dev/null | awk '{print $1}')"
    cpu="$(cpu_since "$cpu0" "$(tail -n1 "$TMP/dtle_time" 2>/dev/null | awk '{print $2 + $3}')")"
    [[ -n "$DTLE_HWM_KB" ]] || DTLE_HWM_KB=0
    RESULTS+=("dtle ChunkSize=$chunk|$TOTAL|$(calc "$t1 - $t0" %.3f)|$DTLE_HWM_KB|$(verify)|$cpu")
done

# ---------------------------------------------------------------- (b2) dtle verify of the copy
# The last copy's job (stopped, its position on the target) against the unchanged source: every row read from
# both servers, hashed and compared chunk by chunk (dtle verify, issue 17). Rows/s are source rows verified.
if [[ "${VERIFY:-1}" == 1 ]]; then
    vlog="$TMP/dtle_verify.log"
    blog "dtle verify, --chunk-size ${VERIFY_CHUNK_SIZE:-1000} (log: $vlog)"
    cpu0="$(cpu_mark)"
    t0=$(now)
    rc=0
    if ((${#TIMEV[@]})); then
        "${TIMEV[@]}" "$TMP/verify_time" "$DTLE_BIN" verify "$job" --chunk-size "${VERIFY_CHUNK_SIZE:-1000}" >"$vlog" 2>&1 || rc=$?
    else
        "$DTLE_BIN" verify "$job" --chunk-size "${VERIFY_CHUNK_SIZE:-1000}" >"$vlog" 2>&1 || rc=$?
    fi
    t1=$(now)
    ((rc == 0)) && vcheck=OK || { vcheck="DIFF(exit $rc)"; tail -n 20 "$vlog" >&2; }
    vrss="$(tail -n1 "$TMP/verify_time" 2>/dev/null | awk '{print $1}')"
    RESULTS+=("dtle verify|$TOTAL|$(calc "$t1 - $t0" %.3f)|${vrss:-0}|$vcheck|$(cpu_since "$cpu0" "$(tail -n1 "$TMP/verify_time" 2>/dev/null | awk '{print $2 + $3}')")")
fi

# ---------------------------------------------------------------- (c) kill -9 mid-copy, then resume
# target_rows -> rows in the target's sbtest tables (0 while they do not exist)
target_rows() {
    local t sql="SELECT 0"
    for ((t = 1; t <= TABLES; t++)); do sql+=" + (SELECT COUNT(*) FROM bench.sbtest$t)"; done
    q "$DST" "$sql" 2>/dev/null || echo 0
}
RESUME_LINE=""
if [[ "$RESUME" == 1 ]]; then
    chunk="${CHUNK_SIZES##* }"
    reset_dst
    job="$TMP/resume.hcl"
    write_job "$job" "bench_snap" "$SRC" "$DST" "" "$chunk" false
    blog "dtle run, ChunkSize $chunk, kill -9 at half of the rows (log: $TMP/dtle_resume1.log)"
    t0=$(now)
    dtle_start "$job" "$TMP/data_resume" "$TMP/dtle_resume1.log"
    deadline=$((SECONDS + 3600))
    until (($(target_rows) >= TOTAL / 2)); do
        dtle_alive || dtle_died "$TMP/dtle_resume1.log" "copying before the kill"
        ((SECONDS < deadline)) || bdie "the first half of the copy took over 3600 s"
        sleep 0.05
    done
    kill -KILL "$DTLE_PID"
    wait "$DTLE_PID" 2>/dev/null || true
    DTLE_PID=""
    t_kill=$(now)
    at_kill="$(target_rows)"
    blog "killed after $(calc "$t_kill - $t0") s with $at_kill rows on the target; restarting"
    # dtle_start empties the data dir; the target's tables say how far the copy got.
    "$DTLE_BIN" run "$job" --data-dir "$TMP/data_resume" --no-progress-bar >"$TMP/dtle_resume2.log" 2>&1 &
    DTLE_PID=$!
    DTLE_HWM_KB=0
    t_restart=$(now)
    while :; do
        dtle_alive || dtle_died "$TMP/dtle_resume2.log" "resuming the copy"
        row="$(position_row "$DST" bench_snap)"
        [[ "${row%%$'\t'*}" == job_stage_incr ]] && break
        ((SECONDS < deadline)) || bdie "no job_stage_incr after the restart"
        sleep 0.2
    done
    t1=$(now)
    dtle_stop "$TMP/dtle_resume2.log"
    DTLE_PID=""
    copied2="$(sed -n 's/.*full copy: done.* rows=\([0-9]*\).*/\1/p' "$TMP/dtle_resume2.log" | tail -n1)"
    how="full copy again"
    grep -q "resuming the full copy" "$TMP/dtle_resume2.log" && how="resumed per chunk"
    RESUME_LINE="kill -9 at $at_kill of $TOTAL rows ($(calc "$t_kill - $t0") s), restart: $how, copied ${copied2:-?} rows in $(calc "$t1 - $t_restart") s; total $(calc "$t1 - $t0 - ($t_restart - $t_kill)") s of dtle; check $(verify)"
fi

# ---------------------------------------------------------------- report
MB="$(calc "$DATA_BYTES/1e6" %.1f)"
echo
echo "== snapshot: bench.sbtest1..$TABLES, $TABLES x $ROWS = $TOTAL rows, data_length $MB MB (MB = 10^6 bytes of InnoDB data_length) =="
durability_note
printf '%-22s %10s %9s %10s %8s %10s  %-5s  %s\n' tool rows seconds rows/s MB/s peak_RSS check "CPU s target/source/tool"
base=""
for r in "${RESULTS[@]}"; do
    IFS='|' read -r tool rows secs rss chk cpu <<<"$r"
    [[ "$rss" == - ]] && rss_s="-" || rss_s="$(calc "$rss/1024" %.0f) MiB"
    printf '%-22s %10s %9s %10s %8s %10s  %-5s  %s\n' "$tool" "$rows" "$secs" \
        "$(calc "$rows/$secs" %.0f)" "$(calc "$DATA_BYTES/1e6/$secs" %.1f)" "$rss_s" "$chk" "$cpu"
    [[ -z "$base" ]] && base="$secs"
done
if [[ -s "$TMP/dump_rss" && -s "$TMP/load_rss" ]]; then
    echo "(mariadb-dump row: peak RSS of the mariadb-dump process $(calc "$(tail -n1 "$TMP/dump_rss" | awk '{print $1}')/1024" %.0f) MiB," \
        "of the mariadb client $(calc "$(tail -n1 "$TMP/load_rss" | awk '{print $1}')/1024" %.0f) MiB; server memory is not counted for any row;" \
        "its tool CPU is both clients')"
fi
echo
for r in "${RESULTS[@]:1}"; do
    IFS='|' read -r tool rows secs rss chk _ <<<"$r"
    echo "ratio $tool / mariadb-dump throughput: $(calc "$base/$secs" %.2f)x  (time $(calc "$secs/$base" %.2f)x)"
done
[[ -n "$RESUME_LINE" ]] && echo "resume: $RESUME_LINE"
exit 0
