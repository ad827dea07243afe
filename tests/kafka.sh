#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft, broker + controller in one JVM) for dtle tests.
#
#   tests/kafka.sh fetch           resolve the broker's jars from Maven Central once (cached by version)
#   tests/kafka.sh start           format the storage if new, start the broker on 127.0.0.1:9092 (controller on
#                                  9093, and a SASL_PLAINTEXT listener with mechanism PLAIN on 9094: user
#                                  `dtle`, password `dtle-secret`), wait until it answers; idempotent
#   tests/kafka.sh stop            stop it (SIGTERM, SIGKILL after 30 s); data is kept
#   tests/kafka.sh restart         stop then start
#   tests/kafka.sh destroy         stop and remove its directory (data included)
#   tests/kafka.sh classpath       print the Java classpath of the cached broker jars (for Kafka's command-line tools)
#   tests/kafka.sh env             print: export DTLE_TEST_KAFKA=127.0.0.1:9092 DTLE_TEST_KAFKA_SASL=127.0.0.1:9094
#
# Jars: org.apache.kafka:kafka_2.13:$DTLE_KAFKA_VERSION and its runtime dependencies, copied by
# `mvn dependency:copy-dependencies` (with kafka-tools, for the readiness check) from a generated pom into
# ${DTLE_TEST_CACHE:-$HOME/.cache/dtle-test}/kafka-<version>/libs. Needs java (17+) and mvn; installs
# openjdk-17-jre-headless and maven with apt-get when missing. Files of the running broker:
# ${DTLE_TEST_DIR:-$REPO/tests/.run}/kafka-9092/ (data/, server.properties, kafka.log, pid).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
SCRIPT="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
# shellcheck source=tests/lib.sh
. "$SCRIPT_DIR/lib.sh"
LOG_TAG="kafka.sh${1:+ $1}"

: "${DTLE_KAFKA_VERSION:=4.1.1}"
: "${DTLE_TEST_CACHE:=$HOME/.cache/dtle-test}"
: "${DTLE_KAFKA_PORT:=9092}"
CONTROLLER_PORT=$((DTLE_KAFKA_PORT + 1))
SASL_PORT=$((DTLE_KAFKA_PORT + 2))
START_TIMEOUT=90
STOP_TIMEOUT=30

cache="$DTLE_TEST_CACHE/kafka-$DTLE_KAFKA_VERSION"
dir="$DTLE_TEST_DIR/kafka-$DTLE_KAFKA_PORT"

usage() {
    sed -n '2,/^set -euo pipefail/p' "$SCRIPT" | sed -n 's/^# \{0,1\}//p' >&2
    exit 2
}

ensure_tools() {
    local missing=()
    command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null 2>&1 || missing+=(maven)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is unavailable: install Java 17+ and Maven"
    log "installing ${missing[*]}"
    (
        flock 9
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
    ) 9>"/tmp/dtle-apt.lock"
}

fetch() {
    [[ -f "$cache/libs/.complete" ]] && return 0
    ensure_tools
    mkdir -p "$cache"
    (
        flock 9
        [[ -f "$cache/libs/.complete" ]] && exit 0
        log "resolving Apache Kafka $DTLE_KAFKA_VERSION jars from Maven Central into $cache/libs"
        cat >"$cache/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dtle.test</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$DTLE_KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-server</artifactId><version>$DTLE_KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-clients</artifactId><version>$DTLE_KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$DTLE_KAFKA_VERSION</version></dependency>
  </dependencies>
</project>
POM
        rm -rf "$cache/libs"
        (cd "$cache" && mvn -B -q dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=libs) \
            >"$cache/mvn.log" 2>&1 || { tail -40 "$cache/mvn.log" >&2; die "mvn could not resolve the Kafka jars"; }
        ls "$cache/libs"/kafka_2.13-*.jar >/dev/null 2>&1 || die "kafka_2.13 jar missing after mvn"
        touch "$cache/libs/.complete"
    ) 9>"$cache.lock"
}

classpath() { printf '%s/libs/*' "$cache"; }

running() {
    [[ -f "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
    fetch
    mkdir -p "$dir"
    if running; then return 0; fi
    port_open "$DTLE_KAFKA_PORT" && die "port $DTLE_KAFKA_PORT is taken by another process"
    port_open "$SASL_PORT" && die "port $SASL_PORT (SASL listener) is taken by another process"
    cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$DTLE_KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$DTLE_KAFKA_PORT,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_dtle="dtle-secret";
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=3
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.segment.bytes=67108864
PROPS
    local java_opts=(-Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true)
    if [[ ! -f "$dir/data/meta.properties" ]]; then
        log "formatting the KRaft storage in $dir/data"
        java "${java_opts[@]}" -cp "$(classpath)" kafka.tools.StorageTool format \
            -t "MkU3OEVBNTcwNTJENDM2Qg" -c "$dir/server.properties" >"$dir/format.log" 2>&1 ||
            { cat "$dir/format.log" >&2; die "kafka-storage format failed"; }
    fi
    log "starting Kafka $DTLE_KAFKA_VERSION on 127.0.0.1:$DTLE_KAFKA_PORT"
    nohup java "${java_opts[@]}" -cp "$(classpath)" kafka.Kafka "$dir/server.properties" \
        >>"$dir/kafka.log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
    local waited=0
    while ! port_open "$DTLE_KAFKA_PORT"; do
        running || { tail -40 "$dir/kafka.log" >&2; die "the broker exited during start"; }
        ((waited++ < START_TIMEOUT * 10)) || { tail -40 "$dir/kafka.log" >&2; die "the broker did not open port $DTLE_KAFKA_PORT"; }
        sleep 0.1
    done
    # The port opens before the broker has registered with its controller: ask for metadata until it answers.
    waited=0
    until java -cp "$(classpath)" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$DTLE_KAFKA_PORT" \
        --list >/dev/null 2>&1; do
        running || { tail -40 "$dir/kafka.log" >&2; die "the broker exited during start"; }
        ((waited++ < START_TIMEOUT)) || { tail -40 "$dir/kafka.log" >&2; die "the broker does not answer metadata requests"; }
        sleep 1
    done
    log "Kafka is ready on 127.0.0.1:$DTLE_KAFKA_PORT"
}

stop() {
    if running; then
        local pid
        pid="$(cat "$dir/pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 $((STOP_TIMEOUT * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pid"
}

case "${1:-}" in
    fetch) fetch ;;
    start) start ;;
    stop) stop ;;
    restart) stop; start ;;
    destroy) stop; rm -rf "$dir" ;;
    classpath) classpath ;;
    env) echo "export DTLE_TEST_KAFKA=127.0.0.1:$DTLE_KAFKA_PORT DTLE_TEST_KAFKA_SASL=127.0.0.1:$SASL_PORT" ;;
    *) usage ;;
esac
