#!/usr/bin/env bash
# Records Debezium 3.6.1's own Kafka messages for dtle's compatibility test (tests/compat/README.md).
#
#   tests/compat/record.sh            record recorded/debezium.tsv, then dtle's messages into recorded/dtle.tsv
#   tests/compat/record.sh debezium   only Debezium's side
#   tests/compat/record.sh dtle       only dtle's side (the comparison test run against this script's servers)
#   tests/compat/record.sh down       stop this script's servers
#
# Debezium's side: a MariaDB 10.11 instance of its own (`src`, port $DTLE_COMPAT_PORT, default 3351, under
# $DTLE_TEST_DIR, default tests/.run-compat) started with --version=5.7.19-MariaDB-10.11.19-log (Debezium 3.6.1's
# MySQL connector refuses a MariaDB 10.11 version string), emptied (RESET MASTER), loaded with schema.sql; then
# Debezium's embedded engine (io.debezium:debezium-embedded + debezium-connector-mysql 3.6.1.Final, mysql-connector-j
# 8.4.0, resolved from Maven Central by pom.xml) reads the full copy, workload.sql runs, and every record's key and
# value, as Kafka Connect's JsonConverter (schemas enabled, its defaults) writes them, go into recorded/debezium.tsv.
#
# dtle's side: `cargo test -p dtle --test e2e_kafka debezium_compat` with DTLE_COMPAT_RECORD_DTLE set, against the
# same instance (plus two more, 3352/3353, which the e2e harness wants) and a broker of its own on port
# $DTLE_COMPAT_KAFKA_PORT (default 9292; 9192 is e2e_kafka's own broker-restart test's) unless DTLE_TEST_KAFKA names one; it writes recorded/dtle.tsv and compares.
# Needs java 17+, mvn, MariaDB; cargo for dtle's side.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
REPO="$(cd "$HERE/../.." && pwd -P)"
: "${DTLE_TEST_DIR:=$REPO/tests/.run-compat}"
export DTLE_TEST_DIR
# shellcheck source=tests/lib.sh
. "$REPO/tests/lib.sh"
LOG_TAG="compat/record.sh${1:+ $1}"

: "${DTLE_COMPAT_PORT:=3351}"
: "${DTLE_COMPAT_KAFKA_PORT:=9292}"
# The e2e harness's source instance of this directory (`tests/mariadb.sh up` finds it running).
NAME=src
VERSION_OPTION="version=5.7.19-MariaDB-10.11.19-log"
LIBS="$HERE/target/libs"
CLASSES="$HERE/target/classes"
OUT="$HERE/recorded"
WORK="$DTLE_TEST_DIR/compat-work"

sql() { "$REPO/tests/mariadb.sh" sql "$NAME" "$DTLE_COMPAT_PORT"; }

build_recorder() {
    command -v java >/dev/null && command -v mvn >/dev/null || die "java 17+ and mvn are needed (apt-get install openjdk-17-jdk-headless maven)"
    if [[ ! -f "$LIBS/.complete" ]]; then
        log "resolving Debezium 3.6.1.Final and its dependencies from Maven Central into $LIBS"
        rm -rf "$LIBS"
        mvn -B -q -f "$HERE/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS" \
            >"$HERE/target/mvn.log" 2>&1 || { tail -40 "$HERE/target/mvn.log" >&2; die "mvn could not resolve Debezium"; }
        touch "$LIBS/.complete"
    fi
    mkdir -p "$CLASSES"
    javac -encoding UTF-8 -d "$CLASSES" -cp "$LIBS/*" "$HERE"/src/main/java/dtle/compat/*.java
}

start_source() {
    # Restarted so that the version option is in force even if the instance ran without it.
    "$REPO/tests/mariadb.sh" stop "$NAME" >/dev/null 2>&1 || true
    DTLE_TEST_MARIADB_EXTRA="$VERSION_OPTION" "$REPO/tests/mariadb.sh" start "$NAME" "$DTLE_COMPAT_PORT" 1
}

record_debezium() {
    build_recorder
    start_source
    "$REPO/tests/mariadb.sh" reset "$NAME"
    sql <"$HERE/schema.sql"
    mkdir -p "$WORK" "$OUT"
    sed "s/@PORT@/$DTLE_COMPAT_PORT/" "$HERE/debezium.properties" >"$WORK/debezium.properties"
    local out="$WORK/debezium.tsv" pid last count stable=0 waited=0
    rm -f "$out" "$out.count" "$out.stop"
    log "running Debezium's embedded engine (log: $WORK/debezium.log)"
    java -cp "$CLASSES:$LIBS/*" dtle.compat.Recorder debezium "$WORK/debezium.properties" "$out" \
        >"$WORK/debezium.log" 2>&1 &
    pid=$!
    trap 'kill $pid 2>/dev/null || true' EXIT
    until [[ -f "$out" ]] && grep -q '"snapshot":"last"' "$out"; do
        kill -0 "$pid" 2>/dev/null || { tail -40 "$WORK/debezium.log" >&2; die "Debezium exited during its full copy"; }
        ((waited++ < 600)) || die "Debezium's full copy did not end within 120 s"
        sleep 0.2
    done
    log "full copy recorded ($(cat "$out.count") records); running workload.sql"
    sql <"$HERE/workload.sql"
    # Done when the count has not moved for 5 s.
    last=-1
    while ((stable < 25)); do
        count="$(cat "$out.count" 2>/dev/null || echo 0)"
        if [[ "$count" == "$last" ]]; then stable=$((stable + 1)); else stable=0; last="$count"; fi
        kill -0 "$pid" 2>/dev/null || { tail -40 "$WORK/debezium.log" >&2; die "Debezium exited"; }
        sleep 0.2
    done
    touch "$out.stop"
    wait "$pid" || { tail -40 "$WORK/debezium.log" >&2; die "Debezium did not stop cleanly"; }
    trap - EXIT
    cp "$out" "$OUT/debezium.tsv"
    log "recorded $(wc -l <"$OUT/debezium.tsv") Debezium records into $OUT/debezium.tsv"
}

record_dtle() {
    local brokers="${DTLE_TEST_KAFKA:-}"
    if [[ -z "$brokers" ]]; then
        DTLE_KAFKA_PORT="$DTLE_COMPAT_KAFKA_PORT" "$REPO/tests/kafka.sh" start
        brokers="127.0.0.1:$DTLE_COMPAT_KAFKA_PORT"
    fi
    [[ -f "$DTLE_TEST_DIR/$NAME/my.cnf" ]] || start_source
    DTLE_TEST_SRC_PORT="$DTLE_COMPAT_PORT" DTLE_TEST_DST_PORT=$((DTLE_COMPAT_PORT + 1)) \
        DTLE_TEST_DST2_PORT=$((DTLE_COMPAT_PORT + 2)) "$REPO/tests/mariadb.sh" up
    mkdir -p "$OUT"
    log "running dtle against the same source (brokers $brokers)"
    (
        cd "$REPO"
        DTLE_TEST_KAFKA="$brokers" DTLE_TEST_SRC_PORT="$DTLE_COMPAT_PORT" DTLE_TEST_DST_PORT=$((DTLE_COMPAT_PORT + 1)) \
            DTLE_TEST_DST2_PORT=$((DTLE_COMPAT_PORT + 2)) DTLE_TEST_REQUIRE_SERVERS=1 \
            DTLE_COMPAT_RECORD_DTLE="$OUT/dtle.tsv" \
            cargo test -p dtle --test e2e_kafka debezium_compat -- --nocapture
    )
    log "recorded $(wc -l <"$OUT/dtle.tsv") dtle records into $OUT/dtle.tsv"
}

down() {
    DTLE_TEST_SRC_PORT="$DTLE_COMPAT_PORT" DTLE_TEST_DST_PORT=$((DTLE_COMPAT_PORT + 1)) \
        DTLE_TEST_DST2_PORT=$((DTLE_COMPAT_PORT + 2)) "$REPO/tests/mariadb.sh" down || true
    "$REPO/tests/mariadb.sh" stop "$NAME" || true
    DTLE_KAFKA_PORT="$DTLE_COMPAT_KAFKA_PORT" "$REPO/tests/kafka.sh" stop || true
}

case "${1:-all}" in
    all) record_debezium; record_dtle ;;
    debezium) record_debezium ;;
    dtle) record_dtle ;;
    down) down ;;
    *) sed -n '2,/^set -euo pipefail/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2; exit 2 ;;
esac
