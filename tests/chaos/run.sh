#!/usr/bin/env bash
# The chaos campaign (driver/tests/chaos.rs) as a long run, or a replay of a printed seed.
#
#   tests/chaos/run.sh [--faults N] [--seed N] [--modes one,nats,parallel,kafka] [--ports SRC,DST] [--servers NATS,CONSUL] [--release]
#
# Installs what is missing and starts what the campaign needs (the same scripts as tests/run.sh): its own MariaDB
# instances chaos_src (3317) and chaos_dst (3318), nats-server (4232) and Consul (8640) are started by the test
# itself; this script builds Consul once and starts the suite's Kafka broker (9092) when the kafka mode runs. It
# then runs `cargo test -p dtle --test chaos` with the knobs below and prints the campaign's summary. Only
# 127.0.0.1 is used; nothing is read from standard input. The servers are left running (the campaign's are its
# own; `tests/mariadb.sh stop chaos_src`, `tests/nats.sh stop 4232`, `tests/consul.sh stop 8640` stop them).
#
#   --faults N   faults per mode (DTLE_CHAOS_FAULTS; default 200 here, 6 in the suite)
#   --seed N     the fault sequence to replay (DTLE_CHAOS_SEED; default: from the clock, printed)
#   --modes L    comma-separated modes (DTLE_CHAOS_MODES; default all four)
#   --ports S,D  the MariaDB ports (DTLE_CHAOS_SRC_PORT/DST_PORT; default 3317,3318; 3337,3338 are free: the suite uses 3307-3309, 3320, 3325-3328, 3336, 3351-3358); on other ports the instances
#                are chaos_src_<port>/chaos_dst_<port>, so a second campaign without the nats mode (nats-server and
#                Consul are shared) can run beside the first
#   --servers N,C  the nats-server and Consul ports of the nats mode (DTLE_CHAOS_NATS_PORT/CONSUL_PORT; default
#                4232,8640), for a nats campaign beside another one (or beside the suite)
#   --release    dtle and the campaign built with --release (what users run; the suite uses the debug build)
# The full output goes to target/tmp/chaos/run-<time>.log; each mode's dtle logs to target/tmp/chaos/<seed>-<mode>/.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=tests/lib.sh
. "$HERE/../lib.sh"
LOG_TAG="chaos/run.sh"
cd "$REPO"

usage() {
    sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed -n 's/^# \{0,1\}//p' >&2
    exit 2
}

faults=200
seed=""
modes="one,nats,parallel,kafka"
ports=""
profile=()
while [[ $# -gt 0 ]]; do
    case "$1" in
    --faults) faults="${2:?--faults needs a number}"; shift 2 ;;
    --seed) seed="${2:?--seed needs a number}"; shift 2 ;;
    --modes) modes="${2:?--modes needs a list}"; shift 2 ;;
    --ports) ports="${2:?--ports needs SRC,DST}"; shift 2 ;;
    --release) profile=(--release); shift ;;
    --servers)
        [[ "${2:-}" =~ ^[0-9]+,[0-9]+$ ]] || die "--servers '${2:-}' is not NATS,CONSUL (two port numbers, e.g. 4242,8650)"
        export DTLE_CHAOS_NATS_PORT="${2%,*}" DTLE_CHAOS_CONSUL_PORT="${2#*,}"
        shift 2
        ;;
    -h | --help) usage ;;
    *) log "unknown argument '$1'"; usage ;;
    esac
done
[[ "$faults" =~ ^[0-9]+$ ]] || die "--faults '$faults' is not a number"
[[ -z "$seed" || "$seed" =~ ^[0-9]+$ ]] || die "--seed '$seed' is not a number"
if [[ -n "$ports" ]]; then
    [[ "$ports" =~ ^[0-9]+,[0-9]+$ ]] || die "--ports '$ports' is not SRC,DST (two port numbers, e.g. 3337,3338)"
    export DTLE_CHAOS_SRC_PORT="${ports%,*}" DTLE_CHAOS_DST_PORT="${ports#*,}"
fi

ensure_rust
ensure_mariadb_installed
case ",$modes," in
*,nats,*)
    # The campaign starts nats-server and Consul itself; building Consul (once, ~7 minutes) is done here.
    "$REPO/tests/consul.sh" build >/dev/null
    ;;
esac
case ",$modes," in
*,kafka,*)
    "$REPO/tests/kafka.sh" start
    eval "$("$REPO/tests/kafka.sh" env)"
    ;;
esac

export DTLE_TEST_REQUIRE_SERVERS=1 DTLE_CHAOS_FAULTS="$faults" DTLE_CHAOS_MODES="$modes"
[[ -z "$seed" ]] || export DTLE_CHAOS_SEED="$seed"
out="$REPO/target/tmp/chaos/run-$(date '+%Y%m%d-%H%M%S')-${modes//,/-}.log"
mkdir -p "$(dirname "$out")"
log "chaos campaign: $faults faults per mode, modes $modes${seed:+, seed $seed}; output in $out"
rc=0
cargo test "${profile[@]}" -p dtle --test chaos -- --nocapture --test-threads=1 chaos_campaign 2>&1 | tee "$out" || rc=$?
# The summary block, printed again at the end (the output above is long).
echo
sed -n '/^===== chaos summary/,/^===== end of chaos summary/p' "$out"
if [[ $rc != 0 ]]; then
    log "the campaign failed (exit $rc); failures and log tails above, full output in $out"
else
    log "the campaign passed; full output in $out"
fi
exit "$rc"
