#!/usr/bin/env bash
# Regression check for `tests/mariadb.sh start` hanging forever: the launched pid was declared dead while it was
# still `setsid`/`bash` (its /proc/PID/comm not yet `mariadbd`), and the script then `wait`ed for the live server.
# A wrapper named mariadbd, first on PATH, renames itself and sleeps 2 s before exec'ing the real server, so that
# window is 2 s wide instead of a few milliseconds: before the fix this start never returned (timeout exit 124).
#
#   tests/chaos/mariadb_start_check.sh [PORT=3336]
# Uses a throwaway DTLE_TEST_DIR (removed at the end); exits 0 when the start returned within its bound.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=tests/lib.sh
. "$HERE/../lib.sh"
LOG_TAG="mariadb_start_check"
port="${1:-3336}"
ensure_mariadb_installed
real="$MARIADBD"

work="$(mktemp -d /tmp/dtle-mariadb-start-check.XXXXXX)"
export DTLE_TEST_DIR="$work/run"
cleanup() {
    "$REPO/tests/mariadb.sh" destroy slow_exec >/dev/null 2>&1 || true
    rm -rf -- "$work"
}
trap cleanup EXIT
mkdir -p "$work/bin"
cat >"$work/bin/mariadbd" <<WRAPPER
#!/usr/bin/env bash
printf 'slow-exec' >/proc/\$\$/comm
sleep 2
exec "$real" "\$@"
WRAPPER
chmod +x "$work/bin/mariadbd"

# START_TIMEOUT of mariadb.sh is 60 s; the bound here leaves room for mariadb-install-db.
if PATH="$work/bin:$PATH" timeout 150 "$REPO/tests/mariadb.sh" start slow_exec "$port" 26; then
    log "ok: the start returned while the launched process was still being exec'd"
else
    rc=$?
    [[ $rc == 124 ]] && die "tests/mariadb.sh start hung (killed after 150 s): the launched-pid check regressed"
    die "tests/mariadb.sh start failed (exit $rc)"
fi
