#!/usr/bin/env bash
# A real Consul agent for dtle tests, built from the open-source (MPL-2.0) Consul 1.14 release.
#
#   tests/consul.sh build                 print the path of the consul binary (builds it once, cached by version)
#   tests/consul.sh start [PORT] [MODE]   start a single-node server on 127.0.0.1:PORT (default 8500), wait for
#                                         a leader; idempotent. MODE (remembered for restart):
#                                         acl: ACLs on, default deny, management token "root";
#                                         tls: also HTTPS on PORT+13 with a CA of its own and verify_incoming
#                                         (files in <dir>/tls: ca.pem, client.pem, client-key.pem)
#   tests/consul.sh stop [PORT]           stop it (SIGTERM, SIGKILL after 20 s); data is kept
#   tests/consul.sh restart [PORT]        stop then start; KV data survives (persistent server, not -dev)
#   tests/consul.sh destroy [PORT]        stop and remove its directory (data included)
#   tests/consul.sh status [PORT]         running / stopped
#   tests/consul.sh env [PORT]            print: export DTLE_TEST_CONSUL_ADDR=127.0.0.1:PORT
#
# The agent runs as `consul agent -server -bootstrap-expect=1 -data-dir=...` (not `-dev`, whose in-memory
# state is lost on restart); DTLE_TEST_CONSUL_DEV=1 runs `-dev` instead.  Its files live in
# ${DTLE_TEST_DIR:-$REPO/tests/.run}/consul-PORT/ (data/, consul.log, consul.pid, mode, tls/).  Ports other than the
# HTTP one: 8500 uses Consul's defaults (8300-8302); any other PORT uses PORT+10 (server), PORT+11 (serf lan),
# PORT+12 (serf wan), so agents on 8500, 8520, 8540... coexist.  DNS, gRPC and gRPC-TLS are off.
#
# Build: github.com/hashicorp/consul $DTLE_CONSUL_VERSION (default v1.14.11, the newest 1.14 the Go module proxy
# serves) with its nested modules api/sdk/proto-public taken at their tagged versions instead of the ./api
# replace directives (those directories are not in the module zip).  Every module's LICENSE is checked: the four
# consul modules must be MPL-2.0, no module may carry the Business Source License, and envoyextensions,
# troubleshoot and github.com/hashicorp/nomad must not appear.  Cache:
# ${DTLE_TEST_CACHE:-$HOME/.cache/dtle-test}/consul-<version>/consul ; build log beside it.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
SCRIPT="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
# shellcheck source=tests/lib.sh
. "$SCRIPT_DIR/lib.sh"
LOG_TAG="consul.sh${1:+ $1}${2:+ $2}"

: "${DTLE_CONSUL_VERSION:=v1.14.11}"
: "${DTLE_TEST_CACHE:=$HOME/.cache/dtle-test}"
# Tagged nested modules matching v1.14.11's go.mod requirements.
: "${DTLE_CONSUL_API_VERSION:=v1.18.1}"
: "${DTLE_CONSUL_SDK_VERSION:=v0.13.0}"
: "${DTLE_CONSUL_PROTO_PUBLIC_VERSION:=v0.2.1}"

START_TIMEOUT=60
STOP_TIMEOUT=20

usage() {
    sed -n '2,/^set -euo pipefail/p' "$SCRIPT" | sed -n 's/^# \{0,1\}//p' >&2
    exit 2
}

cache_dir() { printf '%s/consul-%s' "$DTLE_TEST_CACHE" "${DTLE_CONSUL_VERSION#v}"; }

# ---------------------------------------------------------------- build

# license_kind FILE... -> "MPL-2.0", "BUSL" or "other"
license_kind() {
    if grep -qiE 'Business Source License|BUSL-1' "$@" 2>/dev/null; then
        echo BUSL
    elif grep -qE 'Mozilla Public License,? [Vv]ersion 2\.0' "$@" 2>/dev/null; then
        echo MPL-2.0
    else
        echo other
    fi
}

# check_consul_module_license DIR NAME: DIR/LICENSE must be MPL-2.0.
check_consul_module_license() {
    local dir="$1" name="$2" kind
    [[ -f "$dir/LICENSE" ]] || die "licence check: $name has no LICENSE file in $dir"
    kind="$(license_kind "$dir/LICENSE")"
    [[ "$kind" == MPL-2.0 ]] || die "licence check: $name LICENSE is $kind, not MPL-2.0 ($dir/LICENSE); refusing to build"
    log "licence check: $name is MPL-2.0"
}

go_mod_dir() { # go_mod_dir MODULE@VERSION -> Dir in the module cache (downloads it)
    local json dir
    json="$(go mod download -json "$1" 2>&1)" || die "go mod download $1 failed: $json"
    dir="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
    [[ -n "$dir" && -d "$dir" ]] || die "go mod download $1 gave no Dir: $json"
    printf '%s' "$dir"
}

do_build() {
    local cache bin work blog src m dir forbidden bad_list kind n_checked=0 n_nolicense=0 t0=$SECONDS
    cache="$(cache_dir)"
    bin="$cache/consul"
    blog="$cache/build.log"
    command -v go >/dev/null 2>&1 || die "go not found: the Consul test agent is built with the Go toolchain"
    mkdir -p "$cache"
    : >"$blog"
    export GOFLAGS=-mod=mod GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GO111MODULE=on
    log "building consul $DTLE_CONSUL_VERSION into $bin (log: $blog)"

    src="$(go_mod_dir "github.com/hashicorp/consul@$DTLE_CONSUL_VERSION")"
    check_consul_module_license "$src" "github.com/hashicorp/consul@$DTLE_CONSUL_VERSION"
    for m in "api@$DTLE_CONSUL_API_VERSION" "sdk@$DTLE_CONSUL_SDK_VERSION" \
        "proto-public@$DTLE_CONSUL_PROTO_PUBLIC_VERSION"; do
        dir="$(go_mod_dir "github.com/hashicorp/consul/$m")"
        check_consul_module_license "$dir" "github.com/hashicorp/consul/$m"
    done

    work="$(mktemp -d "${TMPDIR:-/tmp}/dtle-consul-build.XXXXXX")"
    # shellcheck disable=SC2064
    trap "chmod -R u+w '$work' 2>/dev/null; rm -rf '$work'" EXIT
    cp -R "$src/." "$work/"
    chmod -R u+w "$work"
    (
        cd "$work"
        go mod edit \
            -dropreplace=github.com/hashicorp/consul/api \
            -dropreplace=github.com/hashicorp/consul/sdk \
            -dropreplace=github.com/hashicorp/consul/proto-public \
            -require="github.com/hashicorp/consul/api@$DTLE_CONSUL_API_VERSION" \
            -require="github.com/hashicorp/consul/sdk@$DTLE_CONSUL_SDK_VERSION" \
            -require="github.com/hashicorp/consul/proto-public@$DTLE_CONSUL_PROTO_PUBLIC_VERSION"
        grep -n 'replace\|hashicorp/consul/' go.mod
        go build -trimpath -o "$bin.tmp" .
    ) >>"$blog" 2>&1 || {
        log "consul build failed; last 40 lines of $blog:"
        tail -n 40 "$blog" >&2
        rm -f "$bin.tmp"
        exit 1
    }

    # Licence check of every module linked into the binary.
    forbidden='^github\.com/hashicorp/(consul/envoyextensions|consul/troubleshoot|nomad)(/|$)'
    bad_list=""
    while read -r m dir; do
        [[ -n "$m" ]] || continue
        if [[ "$m" =~ $forbidden ]]; then
            bad_list+=" $m(forbidden module)"
            continue
        fi
        [[ -n "$dir" && -d "$dir" ]] || continue
        n_checked=$((n_checked + 1))
        shopt -s nullglob nocaseglob
        local lic=("$dir"/LICEN[CS]E* "$dir"/COPYING*)
        shopt -u nullglob nocaseglob
        if [[ ${#lic[@]} -eq 0 ]]; then
            n_nolicense=$((n_nolicense + 1))
            echo "licence: $m has no LICENSE file" >>"$blog"
            continue
        fi
        kind="$(license_kind "${lic[@]}")"
        echo "licence: $m $kind" >>"$blog"
        [[ "$kind" != BUSL ]] || bad_list+=" $m(BUSL)"
        case "$m" in
        github.com/hashicorp/consul | github.com/hashicorp/consul/api | github.com/hashicorp/consul/sdk | \
            github.com/hashicorp/consul/proto-public)
            [[ "$kind" == MPL-2.0 ]] || bad_list+=" $m($kind, expected MPL-2.0)"
            ;;
        esac
    done < <(cd "$work" && go list -deps -f '{{with .Module}}{{.Path}} {{.Dir}}{{end}}' . 2>>"$blog" | sort -u)
    if [[ -n "$bad_list" ]]; then
        rm -f "$bin.tmp"
        die "licence check failed, binary discarded:$bad_list"
    fi
    "$bin.tmp" version >>"$blog" 2>&1 || die "the built binary does not run: $bin.tmp version failed (see $blog)"
    mv -f "$bin.tmp" "$bin"
    log "consul $DTLE_CONSUL_VERSION built in $((SECONDS - t0)) s; $n_checked modules' licences checked" \
        "($n_nolicense without a LICENSE file, none BUSL/forbidden)"
}

cmd_build() {
    [[ $# -eq 0 ]] || usage
    local cache bin
    cache="$(cache_dir)"
    bin="$cache/consul"
    if [[ ! -x "$bin" ]]; then
        mkdir -p "$cache"
        (
            flock -w 1800 9 || die "timed out waiting for another consul build ($cache/.build.lock)"
            [[ -x "$bin" ]] || do_build
        ) 9>"$cache/.build.lock"
    fi
    printf '%s\n' "$bin"
}

# ---------------------------------------------------------------- agent

validate_port() {
    [[ "$1" =~ ^[0-9]+$ ]] && (("$1" > 0 && "$1" < 65524)) || die "invalid port '$1'"
}

agent_dir() { printf '%s/consul-%s' "$DTLE_TEST_DIR" "$1"; }

pid_alive() {
    local pid="$1" state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/stat" ]]; then
        state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
        [[ "$state" != Z && "$state" != X ]] || return 1
        [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == consul ]] || return 1
    fi
    return 0
}

running_pid() {
    local pid
    [[ -f "$1/consul.pid" ]] || return 1
    pid="$(tr -dc '0-9' <"$1/consul.pid" 2>/dev/null)"
    pid_alive "$pid" || return 1
    printf '%s' "$pid"
}

lock_agent() {
    mkdir -p "$DTLE_TEST_DIR/.locks"
    exec 8>"$DTLE_TEST_DIR/.locks/consul-$1.lock"
    flock -w 300 8 || die "timed out waiting for lock on consul agent $1"
}

leader_of() { # leader_of PORT -> the leader address, empty if none
    local out
    out="$(curl -s -m 2 "http://127.0.0.1:$1/v1/status/leader" 2>/dev/null || true)"
    out="${out//\"/}"
    printf '%s' "$out"
}

show_log() {
    if [[ -f "$1/consul.log" ]]; then
        log "last 30 lines of $1/consul.log:"
        tail -n 30 "$1/consul.log" >&2
    fi
}

do_start() {
    local port="$1" mode="$2" dir bin pid deadline leader args launched tls note=""
    dir="$(agent_dir "$port")"
    if pid="$(running_pid "$dir")"; then
        deadline=$((SECONDS + START_TIMEOUT))
        until [[ -n "$(leader_of "$port")" ]]; do
            ((SECONDS < deadline)) || { show_log "$dir"; die "running consul agent $port (pid $pid) has no leader"; }
            sleep 0.2
        done
        log "consul agent already running on 127.0.0.1:$port (pid $pid)"
        return 0
    fi
    if curl -s -m 2 -o /dev/null "http://127.0.0.1:$port/v1/status/leader"; then
        die "port $port already answers HTTP but is not our agent ($dir/consul.pid); stop it first"
    fi
    bin="$(cmd_build)"
    mkdir -p "$dir/data"
    [[ -z "$mode" ]] || echo "$mode" >"$dir/mode"
    [[ -f "$dir/mode" ]] && mode="$(cat "$dir/mode")"

    args=(agent -node "dtle-test-$port" -client 127.0.0.1 -bind 127.0.0.1 -http-port "$port"
        -dns-port -1 -grpc-port -1 -grpc-tls-port -1 -log-level info)
    if [[ "$port" != 8500 ]]; then
        args+=(-server-port $((port + 10)) -serf-lan-port $((port + 11)) -serf-wan-port $((port + 12)))
    fi
    if [[ "${DTLE_TEST_CONSUL_DEV:-0}" == 1 ]]; then
        args+=(-dev)
    else
        args+=(-server -bootstrap-expect 1 -data-dir "$dir/data" -ui=false
            -hcl 'performance { raft_multiplier = 1 }' -hcl 'disable_update_check = true')
    fi
    case "$mode" in
    acl)
        args+=(-hcl 'acl { enabled = true default_policy = "deny" tokens { initial_management = "root" } }')
        note=" (ACLs on, management token root)"
        ;;
    tls)
        tls="$dir/tls"
        make_tls_files "$bin" "$tls"
        args+=(-hcl "ports { https = $((port + 13)) }"
            -hcl "tls { defaults { ca_file = \"$tls/ca.pem\" cert_file = \"$tls/server.pem\"
                  key_file = \"$tls/server-key.pem\" } https { verify_incoming = true } }")
        note=" (HTTPS on 127.0.0.1:$((port + 13)), client certificate required, files in $tls)"
        ;;
    esac

    log "starting consul agent on 127.0.0.1:$port$note (dir $dir)"
    printf '%q ' "$bin" "${args[@]}" >"$dir/cmdline"
    setsid "$bin" "${args[@]}" >>"$dir/consul.log" 2>&1 </dev/null 8>&- &
    launched=$!
    echo "$launched" >"$dir/consul.pid"
    deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        leader="$(leader_of "$port")"
        [[ -z "$leader" ]] || break
        if ! pid_alive "$launched"; then
            show_log "$dir"
            die "consul agent $port exited during startup"
        fi
        if ((SECONDS >= deadline)); then
            show_log "$dir"
            kill -TERM "$launched" 2>/dev/null || true
            die "consul agent $port had no leader within ${START_TIMEOUT}s"
        fi
        sleep 0.2
    done
    log "consul agent ready on 127.0.0.1:$port (pid $launched, leader $leader)"
}

# make_tls_files CONSUL_BIN DIR: a CA, a server certificate (127.0.0.1, localhost) and a client certificate.
make_tls_files() {
    local bin="$1" tls="$2"
    [[ -f "$tls/client-key.pem" ]] && return 0
    rm -rf "$tls" "$tls.tmp"
    mkdir -p "$tls.tmp"
    (
        cd "$tls.tmp"
        "$bin" tls ca create -days 3650
        "$bin" tls cert create -server -dc dc1 -days 3650
        "$bin" tls cert create -client -dc dc1 -days 3650
        mv consul-agent-ca.pem ca.pem
        mv consul-agent-ca-key.pem ca-key.pem
        mv dc1-server-consul-0.pem server.pem
        mv dc1-server-consul-0-key.pem server-key.pem
        mv dc1-client-consul-0.pem client.pem
        mv dc1-client-consul-0-key.pem client-key.pem
    ) >"$tls.tmp.log" 2>&1 || {
        cat "$tls.tmp.log" >&2
        die "creating TLS files with consul tls failed"
    }
    rm -f "$tls.tmp.log"
    mv "$tls.tmp" "$tls"
}

do_stop() {
    local port="$1" dir pid deadline
    dir="$(agent_dir "$port")"
    if ! pid="$(running_pid "$dir")"; then
        rm -f "$dir/consul.pid"
        log "consul agent $port is not running"
        return 0
    fi
    log "stopping consul agent $port (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if pid_alive "$pid"; then
        log "consul agent $port still alive after ${STOP_TIMEOUT}s; SIGKILL $pid"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 10))
        while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
        pid_alive "$pid" && die "could not kill consul pid $pid"
    fi
    rm -f "$dir/consul.pid"
    log "consul agent $port stopped"
}

port_arg() {
    local port="${1:-8500}"
    validate_port "$port"
    printf '%s' "$port"
}

cmd_start() {
    [[ $# -le 2 ]] || usage
    local port mode="${2:-}"
    port="$(port_arg "${1:-}")"
    [[ -z "$mode" || "$mode" == acl || "$mode" == tls ]] || usage
    lock_agent "$port"
    do_start "$port" "$mode"
}

cmd_stop() {
    [[ $# -le 1 ]] || usage
    local port
    port="$(port_arg "${1:-}")"
    lock_agent "$port"
    do_stop "$port"
}

cmd_restart() {
    [[ $# -le 1 ]] || usage
    local port
    port="$(port_arg "${1:-}")"
    lock_agent "$port"
    [[ "${DTLE_TEST_CONSUL_DEV:-0}" != 1 ]] || log "note: -dev mode keeps KV in memory; restart loses it"
    do_stop "$port"
    do_start "$port" ""
}

cmd_destroy() {
    [[ $# -le 1 ]] || usage
    local port dir
    port="$(port_arg "${1:-}")"
    dir="$(agent_dir "$port")"
    lock_agent "$port"
    do_stop "$port"
    rm -rf -- "$dir"
    log "consul agent $port destroyed"
}

cmd_status() {
    [[ $# -le 1 ]] || usage
    local port dir pid
    port="$(port_arg "${1:-}")"
    dir="$(agent_dir "$port")"
    if pid="$(running_pid "$dir")"; then
        echo "consul-$port pid=$pid running leader=$(leader_of "$port")"
    else
        echo "consul-$port stopped"
    fi
}

cmd_env() {
    [[ $# -le 1 ]] || usage
    local port
    port="$(port_arg "${1:-}")"
    printf 'export DTLE_TEST_CONSUL_ADDR=%q\n' "127.0.0.1:$port"
}

[[ $# -ge 1 ]] || usage
cmd="$1"
shift
case "$cmd" in
build) cmd_build "$@" ;;
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
restart) cmd_restart "$@" ;;
destroy) cmd_destroy "$@" ;;
status) cmd_status "$@" ;;
env) cmd_env "$@" ;;
-h | --help | help) usage ;;
*) usage ;;
esac
