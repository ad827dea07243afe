#!/usr/bin/env bash
# Full-copy benchmark: dtle run (snapshot stage) vs the anchors, sysbench-shaped tables, all in one run:
#   * mariadb-dump --single-transaction | mariadb
#   * mydumper + myloader (MYDUMPER=1): `mydumper -t N --rows R --trx-consistency-only -B bench -o DIR`, then
#     `myloader -t N --enable-binlog --overwrite-tables -d DIR`, run one after the other as a DBA does, timed
#     end to end. N = MYDUMPER_THREADS (default: nproc). R = MYDUMPER_ROWS (default 100000: tables split into
#     chunks of 100k rows by primary key, so one big table still loads on N threads; 0 = no --rows). No
#     compression, default statement size (1 MB) and queries per transaction (1000). --enable-binlog: myloader
#     turns the binlog off for its sessions by default; the target is binlogged as for every other tool here.
#     --trx-consistency-only: InnoDB-only, the global read lock is held only until the threads' snapshots start.
#     mydumper is installed with apt-get when missing (root only; Debian 12 has 0.10.x).
#   * the target's own limit (TARGET_LIMIT=1): the source rows exported beforehand (SELECT ... INTO OUTFILE,
#     not timed); timed on the target: CREATE TABLE without the secondary indexes, server-side LOAD DATA
#     INFILE of each table's file (one connection per table, up to nproc at once), then that connection's
#     ALTER TABLE ... ADD KEY for the secondary indexes. Printed as dtle time / target limit time.
#
#   tests/bench/snapshot.sh [ROWS_PER_TABLE=100000]     # TABLES=4: the issue's 4 x 100k sbtest schema
#   TABLES=1 tests/bench/snapshot.sh 1000000            # the older single-table figures
#
# Env: TABLES=4, CHUNK_SIZES="2000" (dtle ChunkSize values to try), BENCH_DURABLE=1 (default; 0 = fast,
#      non-durable instances), RESUME=1 (default: also kill -9 dtle mid-copy and time the resumed copy),
#      VERIFY=1 (default: also time `dtle verify` of the last copy; VERIFY_CHUNK_SIZE=1000),
#      MYDUMPER=1 (default: the mydumper + myloader anchor; MYDUMPER_THREADS, MYDUMPER_ROWS),
#      TARGET_LIMIT=1 (default: the target's own limit; TARGET_LIMIT_THREADS, default nproc),
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
MYDUMPER="${MYDUMPER:-1}"
TARGET_LIMIT="${TARGET_LIMIT:-1}"
NPROC="$(nproc)"
MYDUMPER_THREADS="${MYDUMPER_THREADS:-$NPROC}"
MYDUMPER_ROWS="${MYDUMPER_ROWS:-100000}"
TARGET_LIMIT_THREADS="${TARGET_LIMIT_THREADS:-$NPROC}"
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
# ensure_mydumper -> mydumper and myloader on PATH (apt-get install as root), or a clear error
ensure_mydumper() {
    command -v mydumper >/dev/null && command -v myloader >/dev/null && return 0
    [[ "$(id -u)" == 0 ]] || bdie "mydumper/myloader not installed: run 'apt-get install -y mydumper' as root, or MYDUMPER=0 to skip that anchor"
    blog "installing mydumper (apt-get install -y mydumper)"
    { DEBIAN_FRONTEND=noninteractive apt-get install -y mydumper ||
        { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y mydumper; }; } >&2 ||
        bdie "apt-get install -y mydumper failed (MYDUMPER=0 skips that anchor)"
    if ! command -v mydumper >/dev/null || ! command -v myloader >/dev/null; then bdie "mydumper installed but not on PATH"; fi
}
[[ "$MYDUMPER" == 1 ]] && ensure_mydumper
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
    local n t sums=""
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

# ---------------------------------------------------------------- (a2) mydumper + myloader
MYD_SECS=""
MYD_NOTE=""
if [[ "$MYDUMPER" == 1 ]]; then
    reset_dst
    mdir="$TMP/mydumper"
    rows_opt=()
    [[ "$MYDUMPER_ROWS" != 0 ]] && rows_opt=(--rows "$MYDUMPER_ROWS")
    myd_cmd=(mydumper -h 127.0.0.1 -P "$SRC" -u root -t "$MYDUMPER_THREADS" "${rows_opt[@]}" --trx-consistency-only
        -B bench -o "$mdir" -v 2)
    myl_cmd=(myloader -h 127.0.0.1 -P "$DST" -u root -t "$MYDUMPER_THREADS" --enable-binlog --overwrite-tables
        -d "$mdir" -v 2)
    blog "${myd_cmd[*]}; then ${myl_cmd[*]} (logs: $TMP/mydumper.log, $TMP/myloader.log)"
    cpu0="$(cpu_mark)"
    t0=$(now)
    rc=0
    if ((${#TIMEV[@]})); then
        "${TIMEV[@]}" "$TMP/mydumper_time" "${myd_cmd[@]}" >"$TMP/mydumper.log" 2>&1 || rc=$?
    else
        "${myd_cmd[@]}" >"$TMP/mydumper.log" 2>&1 || rc=$?
    fi
    ((rc == 0)) || { blog "mydumper exited with status $rc:"; tail -n 20 "$TMP/mydumper.log" >&2; exit 1; }
    t_dumped=$(now)
    if ((${#TIMEV[@]})); then
        "${TIMEV[@]}" "$TMP/myloader_time" "${myl_cmd[@]}" >"$TMP/myloader.log" 2>&1 || rc=$?
    else
        "${myl_cmd[@]}" >"$TMP/myloader.log" 2>&1 || rc=$?
    fi
    t1=$(now)
    ((rc == 0)) || { blog "myloader exited with status $rc:"; tail -n 20 "$TMP/myloader.log" >&2; exit 1; }
    tool_cpu="?"
    if [[ -s "$TMP/mydumper_time" && -s "$TMP/myloader_time" ]]; then
        tool_cpu="$(calc "$(tail -n1 "$TMP/mydumper_time" | awk '{print $2 + $3}') + $(tail -n1 "$TMP/myloader_time" | awk '{print $2 + $3}')")"
        MYD_NOTE=", peak RSS mydumper $(calc "$(tail -n1 "$TMP/mydumper_time" | awk '{print $1}')/1024" %.0f) MiB, myloader $(calc "$(tail -n1 "$TMP/myloader_time" | awk '{print $1}')/1024" %.0f) MiB"
    fi
    MYD_SECS="$(calc "$t1 - $t0" %.3f)"
    # binlog_bytes PORT -> bytes in the server's binary logs (reset_dst ran RESET MASTER before the load)
    binlog_bytes() { q "$1" "SHOW BINARY LOGS" | awk '{s += $2} END {print s + 0}'; }
    myd_version="$(mydumper --version 2>&1 | head -n1 | awk '{sub(/,$/, "", $2); print $1, $2}')"
    myd_pkg="$(dpkg-query -W -f '${Version}' mydumper 2>/dev/null || true)"
    MYD_NOTE="$myd_version${myd_pkg:+ (package $myd_pkg)}: dump $(calc "$t_dumped - $t0" %.3f) s ($(find "$mdir" -name 'bench.sbtest*.sql' ! -name '*-schema.sql' | wc -l) data files, $(du -sm "$mdir" | cut -f1) MiB), then load $(calc "$t1 - $t_dumped" %.3f) s (target binlog $(calc "$(binlog_bytes "$DST")/1e6" %.1f) MB); -t $MYDUMPER_THREADS${rows_opt[*]:+ ${rows_opt[*]}}$MYD_NOTE; its tool CPU is both"
    RESULTS+=("mydumper+myloader|$TOTAL|$MYD_SECS|-|$(verify)|$(cpu_since "$cpu0" "$tool_cpu")")
    rm -rf "$mdir"
fi

# ---------------------------------------------------------------- (a3) the target's own limit
# What the target alone does with the same rows: server-side LOAD DATA INFILE of files exported beforehand (not
# timed) into tables created without their secondary indexes, then ALTER TABLE ... ADD KEY; one connection per
# table, TARGET_LIMIT_THREADS (nproc) at once.
LIMIT_SECS=""
LIMIT_NOTE=""
if [[ "$TARGET_LIMIT" == 1 ]]; then
    # MariaDB: secure_file_priv NULL (not set, as on these instances) or empty = any file the server can reach; a
    # directory = only there. The servers run as this script's user (tests/mariadb.sh), so they can write and
    # read files under $TMP.
    src_sfp="$(q "$SRC" "SELECT COALESCE(@@secure_file_priv, '')")"
    dst_sfp="$(q "$DST" "SELECT COALESCE(@@secure_file_priv, '')")"
    xdir="$TMP/limit"
    [[ -n "$src_sfp" ]] && xdir="${src_sfp%/}/dtle-bench-$$"
    mkdir -p "$xdir"
    ldir="$xdir"
    [[ -n "$dst_sfp" && "${dst_sfp%/}" != "${src_sfp%/}" ]] && ldir="${dst_sfp%/}/dtle-bench-$$-load"
    blog "target limit: exporting the source rows with SELECT ... INTO OUTFILE into $xdir (not timed)"
    t0=$(now)
    for ((t = 1; t <= TABLES; t++)); do
        q "$SRC" "SELECT * INTO OUTFILE '$xdir/sbtest$t.txt' CHARACTER SET utf8mb4 FROM bench.sbtest$t"
        # The CREATE TABLE without plain secondary KEYs, and one ALTER TABLE adding them.
        mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$SRC" -uroot -N -B -r -e "SHOW CREATE TABLE bench.sbtest$t" |
            cut -f2- >"$TMP/create_$t.sql"
        awk '/^  KEY / {next} {l[++n]=$0} END {for (i = 1; i <= n; i++) {if (i < n && l[i+1] ~ /^\)/) sub(/,$/, "", l[i]); print l[i]}}' \
            "$TMP/create_$t.sql" >"$TMP/create_nokeys_$t.sql"
        awk -v t="sbtest$t" '/^  KEY / {sub(/^  /, ""); sub(/,$/, ""); k = k (k == "" ? "" : ", ") "ADD " $0}
            END {if (k != "") print "ALTER TABLE `" t "` " k}' "$TMP/create_$t.sql" >"$TMP/add_keys_$t.sql"
    done
    if [[ "$ldir" != "$xdir" ]]; then
        mkdir -p "$ldir"
        cp "$xdir"/sbtest*.txt "$ldir"/
    fi
    LIMIT_NOTE="export $(calc "$(now) - $t0" %.2f) s (not counted), $(du -sm "$xdir" | cut -f1) MiB of files"
    # limit_table T -> on one target connection: CREATE TABLE without secondary keys, LOAD DATA INFILE, ADD KEY
    limit_table() {
        q "$DST" "USE bench; SET SESSION foreign_key_checks = 0; $(cat "$TMP/create_nokeys_$1.sql");
                  LOAD DATA INFILE '$ldir/sbtest$1.txt' INTO TABLE sbtest$1 CHARACTER SET utf8mb4;
                  $(cat "$TMP/add_keys_$1.sql")"
    }
    reset_dst
    blog "target limit: CREATE TABLE (no secondary keys) + LOAD DATA INFILE + ADD KEY, $TARGET_LIMIT_THREADS tables at once"
    cpu0="$(cpu_mark)"
    t0=$(now)
    q "$DST" "CREATE DATABASE bench"
    running=0
    fails=0
    for ((t = 1; t <= TABLES; t++)); do
        limit_table "$t" &
        running=$((running + 1))
        if ((running >= TARGET_LIMIT_THREADS)); then
            wait -n || fails=$((fails + 1))
            running=$((running - 1))
        fi
    done
    while ((running > 0)); do
        wait -n || fails=$((fails + 1))
        running=$((running - 1))
    done
    t1=$(now)
    ((fails == 0)) || bdie "target limit: $fails of the LOAD DATA INFILE connections failed"
    LIMIT_SECS="$(calc "$t1 - $t0" %.3f)"
    RESULTS+=("target limit (LOAD)|$TOTAL|$LIMIT_SECS|-|$(verify)|$(cpu_since "$cpu0" "-")")
    rm -rf "$xdir" "$ldir"
fi

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
[[ -n "$MYD_NOTE" ]] && echo "(mydumper+myloader row: $MYD_NOTE)"
[[ -n "$LIMIT_NOTE" ]] && echo "(target limit row: server-side LOAD DATA INFILE of files exported from the source, tables created without secondary keys, then ADD KEY; $TARGET_LIMIT_THREADS tables at once; $LIMIT_NOTE)"
echo
for r in "${RESULTS[@]:1}"; do
    IFS='|' read -r tool rows secs rss chk _ <<<"$r"
    echo "ratio $tool / mariadb-dump throughput: $(calc "$base/$secs" %.2f)x  (time $(calc "$secs/$base" %.2f)x)"
done
for r in "${RESULTS[@]}"; do
    IFS='|' read -r tool rows secs rss chk _ <<<"$r"
    [[ "$tool" == "dtle ChunkSize="* ]] || continue
    [[ -n "$MYD_SECS" ]] &&
        echo "ratio $tool / mydumper+myloader throughput: $(calc "$MYD_SECS/$secs" %.2f)x  (issue: >= 1.5)"
    [[ -n "$LIMIT_SECS" ]] &&
        echo "ratio $tool time / target limit time: $(calc "$secs/$LIMIT_SECS" %.2f)  (issue: <= 1.15)"
done
[[ -n "$RESUME_LINE" ]] && echo "resume: $RESUME_LINE"
exit 0
