# shellcheck shell=bash
# Shared helpers for the dtle shell test harness.  Source it:
#     . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Provides: REPO, DTLE_TEST_DIR, log, die, ensure_mariadb_installed, ensure_rust,
#           find_mariadb_binaries (sets MARIADBD, MARIADB_INSTALL_DB, MARIADB_CLIENT,
#           MARIADB_ADMIN).

if [[ -n "${_DTLE_TEST_LIB_SOURCED:-}" ]]; then
    return 0
fi
_DTLE_TEST_LIB_SOURCED=1

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
export REPO
: "${DTLE_TEST_DIR:=$REPO/tests/.run}"
[[ "$DTLE_TEST_DIR" == /* ]] || DTLE_TEST_DIR="$PWD/$DTLE_TEST_DIR"
export DTLE_TEST_DIR

# Server binaries live in sbin, which is often missing from a non-root PATH.
case ":$PATH:" in *":/usr/sbin:"*) ;; *) PATH="$PATH:/usr/sbin" ;; esac
case ":$PATH:" in *":/usr/local/sbin:"*) ;; *) PATH="$PATH:/usr/local/sbin" ;; esac
export PATH

log() {
    printf '%s [%s] %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "${LOG_TAG:-dtle-test}" "$*" >&2
}

die() {
    log "ERROR: $*"
    exit 1
}

# first_cmd NAME... -> prints the path of the first command found
first_cmd() {
    local c
    for c in "$@"; do
        if command -v "$c" >/dev/null 2>&1; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

find_mariadb_binaries() {
    MARIADBD="$(first_cmd mariadbd mysqld)" || return 1
    MARIADB_INSTALL_DB="$(first_cmd mariadb-install-db mysql_install_db)" || return 1
    MARIADB_CLIENT="$(first_cmd mariadb mysql)" || return 1
    MARIADB_ADMIN="$(first_cmd mariadb-admin mysqladmin)" || return 1
    export MARIADBD MARIADB_INSTALL_DB MARIADB_CLIENT MARIADB_ADMIN
}

# Installs mariadb-server/mariadb-client with apt if the server binary is missing.
# Serialised with flock so concurrent callers do not fight over the dpkg lock.
ensure_mariadb_installed() {
    if find_mariadb_binaries; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "mariadbd/mysqld not found and apt-get unavailable; install MariaDB 10.11 manually"
    local sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "mariadbd not found; run as root or install mariadb-server"
        sudo=(sudo -n)
    fi
    mkdir -p "$DTLE_TEST_DIR"
    (
        flock 9
        if find_mariadb_binaries; then exit 0; fi
        log "mariadbd not found; installing mariadb-server mariadb-client via apt-get"
        export DEBIAN_FRONTEND=noninteractive
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            mariadb-server mariadb-client </dev/null
    ) 9>"$DTLE_TEST_DIR/.apt.lock" || die "apt-get install of mariadb-server failed"
    find_mariadb_binaries || die "MariaDB binaries still missing after apt-get install"
}

ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
        PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
        export PATH
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        log "ERROR: cargo not found. Install the Rust toolchain with rustup:"
        log "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y"
        log "  . \"\$HOME/.cargo/env\""
        exit 1
    fi
}
