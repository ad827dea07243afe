#!/usr/bin/env bash
# Runs both benchmarks with moderate defaults and prints their figures.
#
#   tests/bench/run_all.sh            # snapshot 4 x 100,000 rows; incremental 20,000 transactions (durable instances)
#   SNAPSHOT_ROWS=50000 INCREMENTAL_TX=5000 tests/bench/run_all.sh
#
# Needs a release build of dtle (built if missing); uses its own instances on ports 3317-3319.
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
SNAPSHOT_ROWS="${SNAPSHOT_ROWS:-100000}"   # per table (TABLES=4 by default)
INCREMENTAL_TX="${INCREMENTAL_TX:-20000}"

echo "dtle benchmarks on $(hostname), $(nproc) cores, $(date '+%Y-%m-%d %H:%M')"
echo "MariaDB $(mariadb --version | sed -n 's/.*Distrib \([^,]*\),.*/\1/p')"
echo
rc=0
"$DIR/snapshot.sh" "$SNAPSHOT_ROWS" || { echo "snapshot.sh failed (status $?)"; rc=1; }
echo
"$DIR/incremental.sh" "$INCREMENTAL_TX" || { echo "incremental.sh failed (status $?)"; rc=1; }
exit $rc
