#!/usr/bin/env bash
# Many jobs per node: N jobs in one `dtle run job_1.hcl ... job_N.hcl` process, each a small table pair under a
# light load; how memory and CPU grow from 1 to N jobs, and every job's lag.
#
#   tests/bench/jobs.sh [JOB_COUNTS="1 10 25 50"]
#
# Env: ROWS=1000 (rows per job's table), TPS_PER_JOB=10 (the light load: single-row UPDATE transactions per second
#      and job), LOAD_SECONDS=20, IDLE_SECONDS=20, CLIENTS=4 (connections writing the load), BENCH_DURABLE=1,
#      BENCH_JOBS_SRC_PORT=3357 / BENCH_JOBS_DST_PORT=3358, BENCH_KEEP=1, DTLE_BIN.
# Per job count: the target is emptied, the jobs start (full copy of their table, then the binlog), and once every
#   job is incremental: idle CPU and RSS over IDLE_SECONDS without writes; then the load (TPS_PER_JOB on every job's
#   table, and one lag probe a second per job) for LOAD_SECONDS: CPU, peak RSS, lag; then every table is compared.
# Lag of a probe: the source's NOW(6) in the probe row -> SYSDATE(6) when the row is inserted on the target (a
#   BEFORE INSERT trigger on the target's probe table fills an extra column), so no polling is in the figure; the
#   target's commit (one fsync) comes after it.
# Prints figures only; never fails on timings. Fails (exit 1) only when a tool errors or hangs, or a table differs.
# Instances: bench_jobs_src and bench_jobs_dst, created fresh and destroyed at the end.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

read -r -a COUNTS <<<"${1:-1 10 25 50}"
ROWS="${ROWS:-1000}"
TPS_PER_JOB="${TPS_PER_JOB:-10}"
LOAD_SECONDS="${LOAD_SECONDS:-20}"
IDLE_SECONDS="${IDLE_SECONDS:-20}"
CLIENTS="${CLIENTS:-4}"
SRC="${BENCH_JOBS_SRC_PORT:-3357}"
DST="${BENCH_JOBS_DST_PORT:-3358}"
MAX=0
for n in "${COUNTS[@]}"; do
    [[ "$n" =~ ^[0-9]+$ && "$n" -gt 0 ]] || bdie "job counts must be positive integers, not '$n'"
    ((n > MAX)) && MAX=$n
done
TMP="$(mktemp -d /tmp/dtle-bench-jobs.XXXXXX)"
DTLE_PID=""
BG_PIDS=()
cleanup() {
    local p
    [[ -n "$DTLE_PID" ]] && kill -KILL "$DTLE_PID" 2>/dev/null || true
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    bench_destroy bench_jobs_src
    bench_destroy bench_jobs_dst
    [[ "${BENCH_KEEP:-0}" == 1 ]] && blog "logs and job files kept in $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

ensure_dtle
# Every job holds a few connections on each server: room for them.
export DTLE_TEST_MARIADB_EXTRA="max_connections=$((MAX * 8 + 100))"
bench_instance bench_jobs_src "$SRC" 21
bench_instance bench_jobs_dst "$DST" 22
unset DTLE_TEST_MARIADB_EXTRA

blog "creating $MAX schemas bench_job_1..$MAX with a $ROWS-row table and a probe table each on bench_jobs_src"
sql=""
for ((j = 1; j <= MAX; j++)); do
    sql+="CREATE DATABASE bench_job_$j;
CREATE TABLE bench_job_$j.t (id INT NOT NULL PRIMARY KEY, k INT NOT NULL, c VARCHAR(64) NOT NULL) ENGINE=InnoDB;
INSERT INTO bench_job_$j.t SELECT seq, seq, MD5(seq) FROM bench_job_$j.seq_1_to_$ROWS;
CREATE TABLE bench_job_$j.lagprobe (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, ts DATETIME(6) NOT NULL) ENGINE=InnoDB;
"
done
q "$SRC" "$sql"

write_jobs() { # write_jobs N -> job files job_1..N in $TMP/jobs_N
    local n=$1 j dir="$TMP/jobs_$1"
    mkdir -p "$dir"
    for ((j = 1; j <= n; j++)); do
        cat >"$dir/job_$j.hcl" <<HCL
job "bench_job_$j" {
  group "src" {
    task "src" {
      driver = "dtle"
      config {
        ReplicateDoDb = [{ TableSchema = "bench_job_$j" }]
        ConnectionConfig = { Host = "127.0.0.1", Port = $SRC, User = "dtle", Password = "dtle" }
      }
    }
  }
  group "dest" {
    task "dest" {
      driver = "dtle"
      config {
        ConnectionConfig = { Host = "127.0.0.1", Port = $DST, User = "dtle", Password = "dtle" }
      }
    }
  }
}
HCL
    done
}

incr_jobs() { q "$DST" "SELECT COUNT(*) FROM dtle.replication_position WHERE stage = 'job_stage_incr' AND job_name LIKE 'bench_job_%'" 2>/dev/null || echo 0; }
# min_job_seq -> the smallest GTID sequence (domain 0) of the jobs' positions
min_job_seq() {
    local row s min=""
    while IFS= read -r row; do
        s="$(gtid_seq "$row")"
        [[ -z "$min" || "$s" -lt "$min" ]] && min=$s
    done < <(q "$DST" "SELECT gtid_set FROM dtle.replication_position WHERE job_name LIKE 'bench_job_%'")
    echo "${min:-0}"
}
wait_caught_up() { # wait_caught_up SEQ N WHAT
    local deadline=$((SECONDS + 300))
    while (($(q "$DST" "SELECT COUNT(*) FROM dtle.replication_position WHERE job_name LIKE 'bench_job_%'") < $2)) ||
        (($(min_job_seq) < $1)); do
        dtle_sample_rss
        dtle_alive || dtle_died "$DLOG" "$3"
        ((SECONDS < deadline)) || bdie "the jobs did not reach source seq $1 within 300 s ($3); log: $DLOG"
        sleep 0.2
    done
}

RESULTS=() # "jobs|startup s|idle rss KiB|idle cpu %|load cpu %|peak rss KiB|tx/s|p50|p99|max|worst job p99|probes"
for n in "${COUNTS[@]}"; do
    blog "== $n job(s) in one process"
    q "$DST" "DROP DATABASE IF EXISTS dtle"
    for ((j = 1; j <= MAX; j++)); do q "$DST" "DROP DATABASE IF EXISTS bench_job_$j"; done
    write_jobs "$n"
    DLOG="$TMP/dtle_$n.log"
    jobs_files=()
    for ((j = 1; j <= n; j++)); do jobs_files+=("$TMP/jobs_$n/job_$j.hcl"); done
    rm -rf "$TMP/data_$n"
    t0=$(now)
    "$DTLE_BIN" run "${jobs_files[@]}" --data-dir "$TMP/data_$n" --no-progress-bar >"$DLOG" 2>&1 &
    DTLE_PID=$!
    DTLE_HWM_KB=0
    deadline=$((SECONDS + 600))
    until (($(incr_jobs) >= n)); do
        dtle_sample_rss
        dtle_alive || dtle_died "$DLOG" "copying"
        ((SECONDS < deadline)) || bdie "not every job reached the incremental stage within 600 s; log: $DLOG"
        sleep 0.2
    done
    startup="$(calc "$(now) - $t0" %.1f)"
    # The probe tables get the column the trigger fills (after the copy created them).
    sql=""
    for ((j = 1; j <= n; j++)); do
        sql+="ALTER TABLE bench_job_$j.lagprobe ADD COLUMN seen DATETIME(6) NULL;
CREATE TRIGGER bench_job_$j.lagprobe_seen BEFORE INSERT ON bench_job_$j.lagprobe FOR EACH ROW SET NEW.seen = SYSDATE(6);
"
    done
    q "$DST" "$sql"

    # ---- idle
    sleep 3
    c0="$(cpu_s "$DTLE_PID")"
    sleep "$IDLE_SECONDS"
    idle_cpu="$(calc "($(cpu_s "$DTLE_PID") - $c0) * 100 / $IDLE_SECONDS" %.2f)"
    idle_rss="$(dtle_rss_kb)"
    dtle_sample_rss

    # ---- light load: TPS_PER_JOB single-row updates per job and second, one probe per job and second
    total_tps=$((n * TPS_PER_JOB))
    load_start=$(($(us) + 300000))
    load_end=$((load_start + LOAD_SECONDS * 1000000))
    seq0="$(gtid_seq "$(q "$SRC" "SELECT @@gtid_binlog_pos")")"
    c0="$(cpu_s "$DTLE_PID")"
    LOAD_PIDS=()
    for ((cl = 0; cl < CLIENTS; cl++)); do
        {
            tick=0
            while :; do
                sleep_until_us $((load_start + tick * 100000))
                (($(us) >= load_end)) && break
                # this tick's share of the load: statements k with k % CLIENTS == cl
                awk -v n="$n" -v tps="$TPS_PER_JOB" -v tick="$tick" -v cl="$cl" -v ncl="$CLIENTS" -v rows="$ROWS" 'BEGIN {
                    srand(tick * 131 + cl)
                    per = n * tps / 10; k0 = int(tick * per); k1 = int((tick + 1) * per)
                    for (k = k0; k < k1; k++) if (k % ncl == cl)
                        printf "UPDATE bench_job_%d.t SET k=k+1 WHERE id=%d;\n", (k % n) + 1, int(rand() * rows) + 1
                    for (j = 1; j <= n; j++) if ((j % 10) == (tick % 10) && (j % ncl) == cl)
                        printf "INSERT INTO bench_job_%d.lagprobe (ts) VALUES (NOW(6));\n", j
                }'
                tick=$((tick + 1))
            done
        } | qi "$SRC" &
        LOAD_PIDS+=($!)
        BG_PIDS+=($!)
    done
    for p in "${LOAD_PIDS[@]}"; do
        while kill -0 "$p" 2>/dev/null; do
            dtle_sample_rss
            sleep 0.5
        done
        wait "$p" || bdie "a load writer failed"
    done
    BG_PIDS=()
    load_cpu="$(calc "($(cpu_s "$DTLE_PID") - $c0) * 100 / $LOAD_SECONDS" %.1f)"
    seq1="$(gtid_seq "$(q "$SRC" "SELECT @@gtid_binlog_pos")")"
    achieved="$(calc "($seq1 - $seq0) / $LOAD_SECONDS" %.0f)"
    wait_caught_up "$seq1" "$n" "catching up the load"
    dtle_sample_rss
    peak_rss=$DTLE_HWM_KB

    # ---- lag per probe, and each job's p99
    : >"$TMP/lag_$n.txt"
    worst=0
    for ((j = 1; j <= n; j++)); do
        q "$DST" "SELECT TIMESTAMPDIFF(MICROSECOND, ts, seen) FROM bench_job_$j.lagprobe WHERE seen IS NOT NULL" >"$TMP/lag_job.txt"
        [[ -s "$TMP/lag_job.txt" ]] || bdie "job bench_job_$j: no probe reached the target with its arrival time"
        cat "$TMP/lag_job.txt" >>"$TMP/lag_$n.txt"
        p="$(percentile "$TMP/lag_job.txt" 99)"
        ((p > worst)) && worst=$p
    done
    ms() { calc "$1 / 1000" %.1f; }
    probes=$(wc -l <"$TMP/lag_$n.txt")

    # ---- every job's table equals the source's
    for ((j = 1; j <= n; j++)); do
        [[ "$(checksum "$SRC" "bench_job_$j.t")" == "$(checksum "$DST" "bench_job_$j.t")" ]] ||
            bdie "bench_job_$j.t differs between source and target ($n jobs)"
    done
    dtle_stop "$DLOG"
    [[ "$DTLE_RC" == 0 ]] || bdie "dtle exited with status $DTLE_RC on SIGINT ($n jobs)"
    DTLE_PID=""
    RESULTS+=("$n|$startup|$idle_rss|$idle_cpu|$load_cpu|$peak_rss|$achieved|$(ms "$(percentile "$TMP/lag_$n.txt" 50)")|$(ms "$(percentile "$TMP/lag_$n.txt" 99)")|$(ms "$(percentile "$TMP/lag_$n.txt" 100)")|$(ms "$worst")|$probes")
done

echo
echo "== many jobs in one process: N jobs x a $ROWS-row table each, light load $TPS_PER_JOB tx/s per job for $LOAD_SECONDS s =="
durability_note
echo "(lag: source NOW(6) at the probe insert -> SYSDATE(6) at its insert on the target, one probe per job and second)"
printf '%5s %10s %10s %9s %12s %9s %10s %9s %22s %12s %7s\n' jobs "start s" "idle RSS" "idle CPU" "MiB/job more" "load CPU" "peak RSS" "src tx/s" "lag p50/p99/max ms" "worst job p99" probes
first_n="" first_rss=""
for r in "${RESULTS[@]}"; do
    IFS='|' read -r n st irss icpu lcpu prss tps p50 p99 pmax worst probes <<<"$r"
    # what each job beyond the first count's costs in idle RSS
    if [[ -z "$first_n" ]]; then
        first_n=$n first_rss=$irss per="-"
    else
        per="$(calc "($irss - $first_rss) / 1024 / ($n - $first_n)" %.2f)"
    fi
    printf '%5s %10s %8s MiB %8s%% %12s %8s%% %6s MiB %9s %22s %9s ms %7s\n' "$n" "$st" "$(calc "$irss/1024" %.1f)" "$icpu" \
        "$per" "$lcpu" "$(calc "$prss/1024" %.0f)" "$tps" "$p50 / $p99 / $pmax" "$worst" "$probes"
done
echo "(CPU in % of one core, dtle process only; idle = every job caught up, no source writes; RSS = VmRSS, peak = VmHWM;"
echo " MiB/job more = idle RSS added per job beyond the first row's count)"
exit 0
