#!/usr/bin/env bash
# Throwaway MariaDB instances for dtle tests.
#
#   tests/mariadb.sh start NAME PORT [SERVER_ID]   create (if absent) + start, create dtle/dtle user
#   tests/mariadb.sh stop NAME                     shutdown (SIGKILL after 20 s)
#   tests/mariadb.sh destroy NAME                  stop + remove its directory
#   tests/mariadb.sh reset NAME                    kill client connections, drop non-system dbs, RESET MASTER
#   tests/mariadb.sh sql NAME [PORT] ["SQL"]       run SQL as root (SQL from stdin if omitted)
#   tests/mariadb.sh status [NAME...]              show running state of instances
#   tests/mariadb.sh env                           print export lines for the conventional instances
#   tests/mariadb.sh up | down                     start / stop src(3307,id 1) dst(3308,id 2) dst2(3309,id 3)
#
# Instances live in ${DTLE_TEST_DIR:-$REPO/tests/.run}/NAME:
#   my.cnf  data/  mariadb-bin.*  error.log  mariadbd.pid  mariadbd.sock  mariadbd.out  install.log
# Env: DTLE_TEST_DURABLE=1 -> innodb_flush_log_at_trx_commit=1 + sync_binlog=1 (default 2 + 0, fast).
#      DTLE_TEST_{SRC,DST,DST2}_PORT, DTLE_TEST_HOST, DTLE_TEST_USER, DTLE_TEST_PASSWORD override `env`/`up`.
#      DTLE_TEST_MARIADB_EXTRA="opt=value;opt2=value" -> extra [mysqld] lines for instances started now.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
SCRIPT="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
# shellcheck source=tests/lib.sh
. "$SCRIPT_DIR/lib.sh"
LOG_TAG="mariadb.sh${1:+ $1}${2:+ $2}"

: "${DTLE_TEST_SRC_PORT:=3307}"
: "${DTLE_TEST_DST_PORT:=3308}"
: "${DTLE_TEST_DST2_PORT:=3309}"
: "${DTLE_TEST_HOST:=127.0.0.1}"
: "${DTLE_TEST_USER:=dtle}"
: "${DTLE_TEST_PASSWORD:=dtle}"

START_TIMEOUT=60
STOP_TIMEOUT=20
LOCK_FD=8

usage() {
    sed -n '2,17p' "$SCRIPT" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

validate_name() {
    [[ "$1" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || die "invalid instance name '$1' (use [A-Za-z0-9_.-])"
}

validate_port() {
    [[ "$1" =~ ^[0-9]+$ ]] && (("$1" > 0 && "$1" < 65536)) || die "invalid port '$1'"
    [[ "$1" != 3306 ]] || die "refusing to use port 3306 (reserved for a system MariaDB)"
}

inst_dir() { printf '%s/%s' "$DTLE_TEST_DIR" "$1"; }

# Per-instance lock (outside the instance dir so destroy can remove the dir while holding it).
lock_instance() {
    mkdir -p "$DTLE_TEST_DIR/.locks"
    eval "exec $LOCK_FD>\"\$DTLE_TEST_DIR/.locks/\$1.lock\""
    flock -w 300 "$LOCK_FD" || die "timed out waiting for lock on instance '$1'"
}

# cnf_get DIR KEY -> value of KEY= in DIR/my.cnf ([mysqld] section, first match)
cnf_get() {
    [[ -f "$1/my.cnf" ]] || return 1
    sed -n "s/^$2=//p" "$1/my.cnf" | head -n1
}

# True if PID is a live (non-zombie) mariadbd/mysqld process.
pid_alive() {
    local pid="$1" state comm
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/stat" ]]; then
        state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
        [[ "$state" != Z && "$state" != X ]] || return 1
        comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || return 1
        [[ "$comm" == mariadbd || "$comm" == mysqld ]] || return 1
    fi
    return 0
}

# True while PID (a process this script launched) exists and is not a zombie, whatever its name: right after
# `setsid mariadbd &` the child is still `bash` or `setsid` until it has exec'd the server.
launched_alive() {
    local pid="$1" state
    kill -0 "$pid" 2>/dev/null || return 1
    state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 0
    [[ "$state" != Z && "$state" != X ]]
}

# Prints the pid of the running server of instance DIR, if any.
running_pid() {
    local pid
    [[ -f "$1/mariadbd.pid" ]] || return 1
    pid="$(tr -dc '0-9' <"$1/mariadbd.pid" 2>/dev/null)"
    pid_alive "$pid" || return 1
    printf '%s' "$pid"
}

client_root() { # client_root PORT [args...]
    local port="$1"
    shift
    "$MARIADB_CLIENT" --no-defaults --protocol=tcp -h127.0.0.1 -P"$port" -uroot \
        --connect-timeout=10 --max-allowed-packet=256M "$@"
}

ping_port() {
    "$MARIADB_ADMIN" --no-defaults --protocol=tcp -h127.0.0.1 -P"$1" -uroot \
        --connect-timeout=2 ping >/dev/null 2>&1
}

show_error_log() {
    local dir="$1"
    if [[ -f "$dir/error.log" ]]; then
        log "last 30 lines of $dir/error.log:"
        tail -n 30 "$dir/error.log" >&2
    fi
    if [[ -s "$dir/mariadbd.out" ]]; then
        log "last 10 lines of $dir/mariadbd.out:"
        tail -n 10 "$dir/mariadbd.out" >&2
    fi
}

socket_path() {
    local dir="$1" sock="$1/mariadbd.sock"
    # sun_path is limited to 108 bytes; fall back to /tmp for deep test dirs.
    if ((${#sock} > 100)); then
        sock="/tmp/dtle-mariadb-$(printf '%s' "$dir" | md5sum | cut -c1-16).sock"
    fi
    printf '%s' "$sock"
}

write_cnf() {
    local dir="$1" port="$2" sid="$3" sock="$4" flush sync user_line=""
    if [[ "${DTLE_TEST_DURABLE:-0}" == 1 ]]; then
        flush=1 sync=1
    else
        flush=2 sync=0
    fi
    # mariadbd refuses to run as root unless told to.
    [[ "$(id -u)" == 0 ]] && user_line="user=root"
    cat >"$dir/my.cnf.tmp" <<EOF
# Generated by tests/mariadb.sh -- rewritten on every start.
[mysqld]
$user_line
datadir=$dir/data
tmpdir=$dir/tmp
port=$port
bind_address=127.0.0.1
socket=$sock
pid_file=$dir/mariadbd.pid
log_error=$dir/error.log
server_id=$sid
log_bin=$dir/mariadb-bin
log_bin_index=$dir/mariadb-bin.index
relay_log=$dir/relay-bin
binlog_format=ROW
binlog_row_image=FULL
binlog_row_metadata=FULL
gtid_strict_mode=1
gtid_domain_id=0
log_slave_updates=1
expire_logs_days=0
innodb_buffer_pool_size=128M
innodb_log_file_size=64M
innodb_flush_log_at_trx_commit=$flush
sync_binlog=$sync
max_allowed_packet=256M
character_set_server=utf8mb4
collation_server=utf8mb4_general_ci
skip_name_resolve
performance_schema=OFF
max_connections=500
$(tr ';' '\n' <<<"${DTLE_TEST_MARIADB_EXTRA:-}")

[client]
protocol=tcp
host=127.0.0.1
port=$port
socket=$sock
user=root
max_allowed_packet=256M
EOF
    mv -f "$dir/my.cnf.tmp" "$dir/my.cnf"
}

init_datadir() {
    local dir="$1" user_args=()
    [[ -d "$dir/data/mysql" ]] && return 0
    [[ "$(id -u)" == 0 ]] && user_args=(--user=root)
    log "initialising data dir $dir/data"
    rm -rf "$dir/data.tmp"
    mkdir -p "$dir/tmp"
    # Its own tmpdir, and one install at a time: concurrent bootstraps sharing /tmp collide on temporary tables
    # ("Unknown table 'mysql.tmp_user_sys'").
    if ! (
        flock 7
        "$MARIADB_INSTALL_DB" --no-defaults "${user_args[@]}" \
            --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
            --datadir="$dir/data.tmp" --tmpdir="$dir/tmp" --innodb-log-file-size=64M >"$dir/install.log" 2>&1 </dev/null
    ) 7>"$DTLE_TEST_DIR/.install.lock"; then
        log "mariadb-install-db failed; last 30 lines of $dir/install.log:"
        tail -n 30 "$dir/install.log" >&2
        exit 1
    fi
    mv "$dir/data.tmp" "$dir/data"
}

setup_users() {
    local port="$1" u="$DTLE_TEST_USER" p="$DTLE_TEST_PASSWORD" h sql
    sql="SET SESSION sql_log_bin=0;
DELETE FROM mysql.global_priv WHERE User='';"
    for h in '%' '127.0.0.1' 'localhost'; do
        sql+="
CREATE USER IF NOT EXISTS '$u'@'$h' IDENTIFIED BY '$p';
ALTER USER '$u'@'$h' IDENTIFIED BY '$p';
GRANT ALL PRIVILEGES ON *.* TO '$u'@'$h' WITH GRANT OPTION;"
    done
    # install-db also creates root@<hostname>, which only produces warnings under skip_name_resolve.
    for h in $(client_root "$port" -N -B -e "SELECT Host FROM mysql.global_priv WHERE User='root'
        AND Host NOT IN ('localhost','127.0.0.1','::1','%')" 2>/dev/null || true); do
        sql+="
DROP USER IF EXISTS 'root'@'$h';"
    done
    sql+="
FLUSH PRIVILEGES;"
    client_root "$port" -e "$sql" || die "creating user $u on port $port failed"
}

# ---------------------------------------------------------------- commands

cmd_start() {
    [[ $# -ge 2 && $# -le 3 ]] || usage
    local name="$1" port="$2" sid="${3:-$2}" dir pid sock cur_port other deadline launched
    validate_name "$name"
    validate_port "$port"
    [[ "$sid" =~ ^[0-9]+$ ]] || die "invalid server id '$sid'"
    ensure_mariadb_installed
    dir="$(inst_dir "$name")"
    lock_instance "$name"

    if pid="$(running_pid "$dir")"; then
        cur_port="$(cnf_get "$dir" port || true)"
        [[ "$cur_port" == "$port" ]] ||
            die "instance '$name' already running (pid $pid) on port ${cur_port:-?}, not $port"
        deadline=$((SECONDS + START_TIMEOUT))
        until ping_port "$port"; do
            ((SECONDS < deadline)) || { show_error_log "$dir"; die "running instance '$name' does not answer"; }
            sleep 0.2
        done
        setup_users "$port"
        log "instance '$name' already running on port $port (pid $pid)"
        return 0
    fi

    if ping_port "$port"; then
        other="$(client_root "$port" -N -B -e 'SELECT @@datadir' 2>/dev/null || true)"
        die "port $port is already used by another server (datadir: ${other:-unknown}); not ours ($dir/data)"
    fi

    mkdir -p "$dir" "$dir/tmp"
    init_datadir "$dir"
    sock="$(socket_path "$dir")"
    write_cnf "$dir" "$port" "$sid" "$sock"
    rm -f "$dir/mariadbd.pid" "$sock"

    log "starting mariadbd '$name' on 127.0.0.1:$port (server_id $sid)"
    # setsid: detach from our session; close the lock fd so the server does not hold it.
    eval "setsid \"\$MARIADBD\" --defaults-file=\"\$dir/my.cnf\" >>\"\$dir/mariadbd.out\" 2>&1 </dev/null $LOCK_FD>&- &"
    launched=$!

    # Bounded by START_TIMEOUT. Never `wait` here: the launched pid becomes the long-running server itself.
    deadline=$((SECONDS + START_TIMEOUT))
    until ping_port "$port"; do
        if ! launched_alive "$launched"; then
            show_error_log "$dir"
            die "mariadbd '$name' exited during startup"
        fi
        if ((SECONDS >= deadline)); then
            show_error_log "$dir"
            kill -TERM "$launched" 2>/dev/null || true
            die "mariadbd '$name' did not answer on port $port within ${START_TIMEOUT}s"
        fi
        sleep 0.2
    done
    setup_users "$port"
    log "instance '$name' ready on 127.0.0.1:$port (pid $launched, dir $dir)"
}

do_stop() {
    local name="$1" dir pid port sock deadline
    dir="$(inst_dir "$name")"
    if ! pid="$(running_pid "$dir")"; then
        rm -f "$dir/mariadbd.pid"
        log "instance '$name' is not running"
        return 0
    fi
    port="$(cnf_get "$dir" port || true)"
    sock="$(cnf_get "$dir" socket || true)"
    log "stopping instance '$name' (pid $pid, port ${port:-?})"
    deadline=$((SECONDS + STOP_TIMEOUT))
    if ! { [[ -n "$port" ]] && timeout "$STOP_TIMEOUT" "$MARIADB_ADMIN" --no-defaults --protocol=tcp \
        -h127.0.0.1 -P"$port" -uroot --connect-timeout=5 shutdown >/dev/null 2>&1; }; then
        if ! { [[ -n "$sock" ]] && timeout "$STOP_TIMEOUT" "$MARIADB_ADMIN" --no-defaults \
            --protocol=socket -S"$sock" -uroot --connect-timeout=5 shutdown >/dev/null 2>&1; }; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    fi
    while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if pid_alive "$pid"; then
        log "instance '$name' still alive after ${STOP_TIMEOUT}s; sending SIGKILL to $pid"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 10))
        while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
        pid_alive "$pid" && die "could not kill mariadbd pid $pid"
    fi
    rm -f "$dir/mariadbd.pid"
    [[ -n "$sock" && "$sock" == /tmp/dtle-mariadb-* ]] && rm -f "$sock"
    log "instance '$name' stopped"
}

cmd_stop() {
    [[ $# -eq 1 ]] || usage
    validate_name "$1"
    find_mariadb_binaries || true
    [[ -d "$(inst_dir "$1")" ]] || { log "instance '$1' does not exist"; return 0; }
    lock_instance "$1"
    do_stop "$1"
}

cmd_destroy() {
    [[ $# -eq 1 ]] || usage
    local name="$1" dir
    validate_name "$name"
    find_mariadb_binaries || true
    dir="$(inst_dir "$name")"
    [[ -d "$dir" ]] || { log "instance '$name' does not exist"; return 0; }
    lock_instance "$name"
    do_stop "$name"
    rm -rf -- "$dir"
    log "instance '$name' destroyed"
}

# Resolve the port for NAME from its my.cnf.
instance_port() {
    local dir port
    dir="$(inst_dir "$1")"
    port="$(cnf_get "$dir" port)" || die "instance '$1' does not exist ($dir/my.cnf missing)"
    printf '%s' "$port"
}

cmd_reset() {
    [[ $# -eq 1 ]] || usage
    local name="$1" port ids dbs sql id db
    validate_name "$name"
    ensure_mariadb_installed
    port="$(instance_port "$name")"
    ping_port "$port" || die "instance '$name' is not running on port $port"
    # Kill leftover client connections (binlog dumps, idle sessions holding MDL) first.
    ids="$(client_root "$port" -N -B -e "SELECT ID FROM information_schema.PROCESSLIST
        WHERE ID <> CONNECTION_ID() AND USER NOT IN ('system user','event_scheduler','unauthenticated user')")"
    for id in $ids; do
        client_root "$port" -e "KILL $id" 2>/dev/null || true
    done
    dbs="$(client_root "$port" -N -B -e "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA
        WHERE SCHEMA_NAME NOT IN ('mysql','information_schema','performance_schema','sys')")"
    sql="SET SESSION sql_log_bin=0;"
    while IFS= read -r db; do
        [[ -n "$db" ]] || continue
        sql+=" DROP DATABASE IF EXISTS \`${db//\`/\`\`}\`;"
    done <<<"$dbs"
    sql+=" STOP ALL SLAVES; RESET SLAVE ALL; RESET MASTER; SET GLOBAL gtid_slave_pos='';"
    client_root "$port" -e "$sql" || die "reset of '$name' failed"
    log "instance '$name' reset (dropped: $(echo $dbs | tr -s ' ' ',' ) ; binlog/GTID cleared)"
}

cmd_sql() {
    [[ $# -ge 1 && $# -le 3 ]] || usage
    local name="$1" port
    validate_name "$name"
    shift
    if [[ $# -ge 1 && "$1" =~ ^[0-9]+$ ]]; then
        port="$1"
        shift
    else
        port="$(instance_port "$name")"
    fi
    find_mariadb_binaries || die "MariaDB client not installed"
    if [[ $# -ge 1 ]]; then
        client_root "$port" -e "$1"
    else
        client_root "$port"
    fi
}

cmd_status() {
    local name dir pid port names=("$@")
    if [[ ${#names[@]} -eq 0 ]]; then
        [[ -d "$DTLE_TEST_DIR" ]] || return 0
        for dir in "$DTLE_TEST_DIR"/*/; do
            [[ -f "$dir/my.cnf" ]] && names+=("$(basename "$dir")")
        done
    fi
    for name in "${names[@]}"; do
        dir="$(inst_dir "$name")"
        port="$(cnf_get "$dir" port 2>/dev/null || echo '?')"
        if pid="$(running_pid "$dir")"; then
            echo "$name port=$port pid=$pid running"
        else
            echo "$name port=$port stopped"
        fi
    done
}

cmd_env() {
    local v
    for v in DTLE_TEST_SRC_PORT DTLE_TEST_DST_PORT DTLE_TEST_DST2_PORT DTLE_TEST_HOST \
        DTLE_TEST_USER DTLE_TEST_PASSWORD; do
        printf 'export %s=%q\n' "$v" "${!v}"
    done
}

# run_parallel "name port sid" ... with the given subcommand
run_parallel() {
    local sub="$1" spec pids=() rc=0 p
    shift
    for spec in "$@"; do
        # shellcheck disable=SC2086
        "$SCRIPT" "$sub" $spec &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p" || rc=1
    done
    return "$rc"
}

cmd_up() {
    ensure_mariadb_installed
    run_parallel start "src $DTLE_TEST_SRC_PORT 1" "dst $DTLE_TEST_DST_PORT 2" \
        "dst2 $DTLE_TEST_DST2_PORT 3" || die "starting the test instances failed"
}

cmd_down() {
    run_parallel stop src dst dst2 || die "stopping the test instances failed"
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd="$1"
    shift
    case "$cmd" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    destroy) cmd_destroy "$@" ;;
    reset) cmd_reset "$@" ;;
    sql) cmd_sql "$@" ;;
    status) cmd_status "$@" ;;
    env) cmd_env ;;
    up) cmd_up ;;
    down) cmd_down ;;
    -h | --help | help) usage ;;
    *) log "unknown command '$cmd'"; usage ;;
    esac
}

main "$@"
