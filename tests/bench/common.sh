# shellcheck shell=bash
# Shared helpers for tests/bench/*.sh.  Source it.
# Bench instances (own names and ports, never the conventional src/dst/dst2 test instances):
#   bench_src     ${BENCH_SRC_PORT:-3317}      server_id 11
#   bench_dst     ${BENCH_DST_PORT:-3318}      server_id 12
#   bench_replica ${BENCH_REPLICA_PORT:-3319}  server_id 13
# Env: DTLE_BIN (default target/release/dtle, built if missing), BENCH_KEEP=1 (keep the instances at the end),
#      DTLE_TEST_DIR (where tests/mariadb.sh keeps instances),
#      BENCH_DURABLE=1 (default: sync_binlog=1 + innodb_flush_log_at_trx_commit=1 on every instance, the
#      settings of the performance issue; 0: sync_binlog=0 + innodb_flush_log_at_trx_commit=2, the test default).

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO="$(cd "$BENCH_DIR/../.." && pwd -P)"
MARIADB_SH="$REPO/tests/mariadb.sh"
: "${BENCH_SRC_PORT:=3317}"
: "${BENCH_DST_PORT:=3318}"
: "${BENCH_REPLICA_PORT:=3319}"
: "${DTLE_BIN:=$REPO/target/release/dtle}"
: "${BENCH_DURABLE:=1}"
[[ "$BENCH_DURABLE" == 0 || "$BENCH_DURABLE" == 1 ]] || { echo "BENCH_DURABLE must be 0 or 1" >&2; exit 2; }
case ":$PATH:" in *":/usr/sbin:"*) ;; *) PATH="$PATH:/usr/sbin" ;; esac

blog() { printf '%s [bench] %s\n' "$(date '+%H:%M:%S')" "$*" >&2; }
bdie() { blog "ERROR: $*"; exit 1; }

# q PORT SQL... -> runs SQL as root, tab-separated output without column names
q() {
    local port="$1"
    shift
    mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$port" -uroot -N -B --max-allowed-packet=256M -e "$*"
}
# qi PORT -> mariadb client reading SQL from stdin
qi() {
    local port="$1"
    shift
    mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$port" -uroot --max-allowed-packet=256M "$@"
}

now() { printf '%s' "$EPOCHREALTIME"; }
# us -> µs since the epoch, as an integer;  sleep_until_us T -> sleeps until that µs time (at once when past)
us() { local t=$EPOCHREALTIME; echo $((10#${t/./})); }
sleep_until_us() {
    local d=$(($1 - $(us)))
    ((d > 0)) && sleep "$(printf '%d.%06d' $((d / 1000000)) $((d % 1000000)))"
    return 0
}
# calc EXPR -> awk arithmetic, printed with printf-like FORMAT (default %.2f)
calc() { awk "BEGIN { printf \"${2:-%.2f}\", $1 }"; }

# bench_instance NAME PORT SERVER_ID -> a fresh instance (destroyed first, so every run starts from the same state),
# durable or not as BENCH_DURABLE says (checked on the running server)
bench_instance() {
    local want flush sync
    "$MARIADB_SH" destroy "$1" >/dev/null 2>&1 || true
    DTLE_TEST_DURABLE="$BENCH_DURABLE" "$MARIADB_SH" start "$1" "$2" "$3" 2>&1 | tail -n1 >&2
    q "$2" "SELECT 1" >/dev/null || bdie "instance $1 on port $2 does not answer"
    read -r flush sync <<<"$(q "$2" "SELECT @@innodb_flush_log_at_trx_commit, @@sync_binlog")"
    if [[ "$BENCH_DURABLE" == 1 ]]; then want="1 1"; else want="2 0"; fi
    [[ "$flush $sync" == "$want" ]] ||
        bdie "instance $1: innodb_flush_log_at_trx_commit=$flush sync_binlog=$sync, expected $want"
}
# durability_note -> one line saying which settings the instances run with
durability_note() {
    if [[ "$BENCH_DURABLE" == 1 ]]; then
        echo "(all instances: sync_binlog=1, innodb_flush_log_at_trx_commit=1 -- durable, BENCH_DURABLE=1)"
    else
        echo "(all instances: sync_binlog=0, innodb_flush_log_at_trx_commit=2 -- not durable, BENCH_DURABLE=0)"
    fi
}
# cpu_s PID -> CPU seconds (user + system) the process has used so far (0 when it is gone)
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# instance_pid NAME -> the mariadbd pid of a tests/mariadb.sh instance
instance_pid() { cat "${DTLE_TEST_DIR:-$REPO/tests/.run}/$1/mariadbd.pid"; }
# dtle_rss_kb -> the current resident set of the dtle process (VmRSS, KiB)
dtle_rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$DTLE_PID/status" 2>/dev/null || echo 0; }
bench_destroy() {
    if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
        blog "BENCH_KEEP=1: keeping instance $1"
        return 0
    fi
    "$MARIADB_SH" destroy "$1" 2>&1 | tail -n1 >&2 || true
}

ensure_dtle() {
    if [[ ! -x "$DTLE_BIN" ]]; then
        blog "building dtle (release)"
        (cd "$REPO" && cargo build --release -p dtle) >&2 || bdie "cargo build --release -p dtle failed"
    fi
    [[ -x "$DTLE_BIN" ]] || bdie "no dtle binary at $DTLE_BIN"
}

# write_job FILE NAME SRC_PORT DST_PORT GTID CHUNK_SIZE SKIP_CREATE(true|false) [PARALLEL_WORKERS] [MORE_SRC_CONFIG]
# The full-copy job fields come from SNAPSHOT_WRITERS, SNAPSHOT_LOAD_DATA and SNAPSHOT_DEFER_INDEXES when set.
write_job() {
    local snapshot_fields=""
    [[ -n "${SNAPSHOT_WRITERS:-}" ]] && snapshot_fields+="SnapshotWriters = $SNAPSHOT_WRITERS
        "
    [[ -n "${SNAPSHOT_LOAD_DATA:-}" ]] && snapshot_fields+="SnapshotLoadData = $SNAPSHOT_LOAD_DATA
        "
    [[ -n "${SNAPSHOT_DEFER_INDEXES:-}" ]] && snapshot_fields+="SnapshotDeferIndexes = $SNAPSHOT_DEFER_INDEXES
        "
    cat >"$1" <<HCL
job "$2" {
  group "src" {
    task "src" {
      driver = "dtle"
      config {
        ReplicateDoDb = [{ TableSchema = "bench" }]
        Gtid = "$5"
        ChunkSize = $6
        SkipCreateDbTable = $7
        ParallelWorkers = ${8:-1}
        ${9:-}
        ${snapshot_fields}ConnectionConfig = { Host = "127.0.0.1", Port = $3, User = "dtle", Password = "dtle" }
      }
    }
  }
  group "dest" {
    task "dest" {
      driver = "dtle"
      config {
        ConnectionConfig = { Host = "127.0.0.1", Port = $4, User = "dtle", Password = "dtle" }
      }
    }
  }
}
HCL
}

# dtle_start JOBFILE DATADIR LOGFILE -> sets DTLE_PID, DTLE_HWM_KB=0 (with DTLE_METRICS_ADDR set, dtle serves its
# metrics there: see dtle_histogram)
dtle_start() {
    rm -rf "$2"
    mkdir -p "$2"
    "$DTLE_BIN" run "$1" --data-dir "$2" --no-progress-bar ${DTLE_METRICS_ADDR:+--metrics-addr "$DTLE_METRICS_ADDR"} >"$3" 2>&1 &
    DTLE_PID=$!
    DTLE_HWM_KB=0
}
# dtle_sample_rss -> updates DTLE_HWM_KB from /proc/PID/status VmHWM (peak resident set)
dtle_sample_rss() {
    local v
    v="$(awk '/^VmHWM:/ {print $2}' "/proc/$DTLE_PID/status" 2>/dev/null || true)"
    [[ -n "$v" ]] && ((v > DTLE_HWM_KB)) && DTLE_HWM_KB=$v
    return 0
}
dtle_alive() { kill -0 "$DTLE_PID" 2>/dev/null; }
# dtle_stop LOGFILE -> SIGINT, wait up to 60 s; sets DTLE_RC (exit code, or "hang")
dtle_stop() {
    local deadline=$((SECONDS + 60))
    dtle_sample_rss
    kill -INT "$DTLE_PID" 2>/dev/null || true
    while dtle_alive && ((SECONDS < deadline)); do
        dtle_sample_rss
        sleep 0.1
    done
    if dtle_alive; then
        blog "dtle (pid $DTLE_PID) did not stop within 60 s of SIGINT; killing it. Last log lines:"
        tail -n 20 "$1" >&2
        kill -KILL "$DTLE_PID" 2>/dev/null || true
        wait "$DTLE_PID" 2>/dev/null || true
        DTLE_RC=hang
        return 0
    fi
    DTLE_RC=0
    wait "$DTLE_PID" || DTLE_RC=$?
    if [[ "$DTLE_RC" != 0 ]]; then
        blog "dtle exited with status $DTLE_RC after SIGINT. Last log lines:"
        tail -n 20 "$1" >&2
    fi
}
# dtle_died LOGFILE WHAT -> report a dtle that exited on its own, and fail
dtle_died() {
    local rc=0
    wait "$DTLE_PID" || rc=$?
    blog "dtle exited (status $rc) while $2. Last log lines:"
    tail -n 30 "$1" >&2
    exit 1
}

# position_row PORT JOB -> "stage<TAB>gtid_set" from the target's position table (empty if none)
position_row() {
    q "$1" "SELECT stage, gtid_set FROM dtle.replication_position WHERE job_name = '$2'" 2>/dev/null || true
}
# gtid_seq GTID_LIST [DOMAIN] -> the sequence number of DOMAIN (default 0) in a MariaDB GTID list, or 0
gtid_seq() {
    printf '%s\n' "$1" | tr ',' '\n' | awk -F- -v d="${2:-0}" '{gsub(/ /,"")} $1==d {s=$3} END {print s+0}'
}

# checksum PORT SCHEMA.TABLE -> the CHECKSUM TABLE value
checksum() { q "$1" "CHECKSUM TABLE $2" | awk '{print $2}'; }

# percentile FILE P -> the P-th percentile (nearest rank) of the numbers in FILE, one a line
percentile() {
    sort -n "$1" | awk -v p="$2" '{a[NR]=$1} END { if (NR==0) {print "n/a"; exit} i=int((p/100)*NR+0.999999); if (i<1) i=1; if (i>NR) i=NR; print a[i] }'
}

# dtle_histogram NAME -> "le cumulative_count" lines of dtle's histogram NAME (e.g. dtle_dest_apply_seconds), summed
# over its jobs, scraped from DTLE_METRICS_ADDR; then "sum S" and "count N"
dtle_histogram() {
    curl -fsS "http://$DTLE_METRICS_ADDR/metrics" | awk -v n="$1" '
        index($0, n "_bucket{") == 1 { match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); c[le] += $NF; if (!(le in seen)) { seen[le] = 1; order[++k] = le } }
        index($0, n "_sum{") == 1 { sum += $NF }
        index($0, n "_count{") == 1 { cnt += $NF }
        END { for (i = 1; i <= k; i++) print order[i], c[order[i]]; print "sum", sum + 0; print "count", cnt + 0 }'
}
# histogram_delta BEFORE AFTER -> "count mean_ms p50_bound_ms p99_bound_ms" of the observations between two
# dtle_histogram outputs (a percentile is the upper bound of the bucket it falls in: "<=")
histogram_delta() {
    awk 'NR == FNR { b[$1] = $2; next }
        $1 == "sum" { ds = $2 - b["sum"]; next }
        $1 == "count" { dc = $2 - b["count"]; next }
        { le[++k] = $1; d[k] = $2 - b[$1] }
        END {
            if (dc <= 0) { print 0, "-", "-", "-"; exit }
            p50 = ""; p99 = ""
            for (i = 1; i <= k; i++) {
                if (p50 == "" && d[i] >= 0.5 * dc) p50 = le[i]
                if (p99 == "" && d[i] >= 0.99 * dc) p99 = le[i]
            }
            printf "%d %.2f %s %s\n", dc, ds / dc * 1000, (p50 == "+Inf" ? p50 : p50 * 1000), (p99 == "+Inf" ? p99 : p99 * 1000)
        }' "$1" "$2"
}
