//! End-to-end tests of the Kafka target: real MariaDB servers (`tests/mariadb.sh up`) and a real Apache Kafka broker
//! (`tests/kafka.sh start`), read back with rdkafka's consumer and compared with the golden files of
//! `kafka/tests/golden/`: every column type (full copy and binlog), inserts/updates/deletes with tombstones, DDL on
//! the schema-change topic, a dest SIGKILL mid-stream (every change present at least once, in order per key), and
//! the errors for unreachable brokers and oversized messages.
//!
//!   eval "$(tests/mariadb.sh env)"; eval "$(tests/kafka.sh env)"
//!   cargo test -p dtle --test e2e_kafka -- --test-threads=2 --nocapture
//! Without DTLE_TEST_KAFKA (or the MariaDB servers) the tests print "skipping: ..." and pass, unless
//! DTLE_TEST_REQUIRE_SERVERS=1 or CI is set.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{json, Value as Json};

/// The broker address, or `None` (after printing why) outside CI when DTLE_TEST_KAFKA is unset.
fn kafka() -> Option<String> {
    let ci = std::env::var("CI").map(|v| !v.is_empty() && v != "false").unwrap_or(false);
    match std::env::var("DTLE_TEST_KAFKA").ok().filter(|v| !v.trim().is_empty()) {
        Some(v) => Some(v.trim().to_string()),
        None if ci || servers_required() => {
            panic!("DTLE_TEST_KAFKA is not set (tests/kafka.sh start; eval \"$(tests/kafka.sh env)\")")
        }
        None => {
            println!("skipping: DTLE_TEST_KAFKA is not set (tests/kafka.sh start; eval \"$(tests/kafka.sh env)\")");
            None
        }
    }
}

async fn setup(test: &str) -> Option<(Ctx, String)> {
    let brokers = kafka()?;
    let ctx = Ctx::new(test).await?;
    Some((ctx, brokers))
}

/// A topic prefix no earlier run used (topics are not deleted between runs).
fn unique_prefix(base: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{base}{}", nanos % 1_000_000_000_000)
}

/// A MariaDB → Kafka job (3.x shape: KafkaConfig in the dest task).
fn kafka_job(ctx: &Ctx, name: &str, src_config: &str, kafka_config: &str) -> PathBuf {
    let hcl = kafka_job_hcl(name, src_config, &ctx.s.conn_hcl(ctx.s.src), kafka_config);
    let p = ctx.path().join(format!("{name}.hcl"));
    write_file(&p, &hcl);
    p
}

#[derive(Clone, Debug)]
struct Msg {
    key: Option<Json>,
    /// `None`: a tombstone.
    value: Option<Json>,
}

impl Msg {
    fn op(&self) -> &str {
        self.value.as_ref().and_then(|v| v["payload"]["op"].as_str()).unwrap_or("tombstone")
    }
    fn after(&self) -> &Json {
        self.value.as_ref().map(|v| &v["payload"]["after"]).unwrap_or(&Json::Null)
    }
    fn before(&self) -> &Json {
        self.value.as_ref().map(|v| &v["payload"]["before"]).unwrap_or(&Json::Null)
    }
    fn key_payload(&self) -> Json {
        self.key.as_ref().map(|k| k["payload"].clone()).unwrap_or(Json::Null)
    }
}

/// Every message in `topics` from the beginning, in partition order, read until `done` says so (or the deadline).
async fn consume_until(
    brokers: &str,
    topics: &[String],
    what: &str,
    dtle: Option<&mut Dtle>,
    mut done: impl FnMut(&[Msg]) -> bool,
) -> Vec<Msg> {
    let w = Waiter::new(what.to_string()).with_limit(Duration::from_secs(120));
    let mut dtle = dtle;
    loop {
        let msgs = read_all(brokers, topics);
        if done(&msgs) {
            return msgs;
        }
        w.note(format!("{} messages so far", msgs.len()));
        w.tick(dtle.as_deref_mut()).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

/// Reads every message now in `topics` (missing topics count as empty).
fn read_all(brokers: &str, topics: &[String]) -> Vec<Msg> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "dtle-e2e-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let mut partitions = 0;
    for topic in topics {
        let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) else { continue };
        for t in md.topics() {
            if t.error().is_some() {
                continue;
            }
            for p in t.partitions() {
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning).expect("partition");
                partitions += 1;
            }
        }
    }
    if partitions == 0 {
        return Vec::new();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut eof = 0;
    let started = Instant::now();
    while eof < partitions && started.elapsed() < Duration::from_secs(30) {
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eof += 1,
            Some(Err(e)) => panic!("consuming {topics:?}: {e}"),
            Some(Ok(m)) => {
                let parse = |b: &[u8]| -> Json {
                    serde_json::from_slice(b)
                        .unwrap_or_else(|e| panic!("message is not JSON ({e}): {}", String::from_utf8_lossy(b)))
                };
                out.push(Msg { key: m.key().map(parse), value: m.payload().map(parse) });
            }
        }
    }
    out
}

fn golden_dir() -> PathBuf {
    repo_root().join("kafka").join("tests").join("golden")
}

fn read_golden(name: &str) -> Json {
    let p = golden_dir().join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// Blanks what differs from run to run (times, binlog coordinates) and renames the topic prefix and database.
fn normalize(v: &Json, prefix: &str, db: &str) -> Json {
    let text =
        v.to_string().replace(&format!("{prefix}.{db}."), "dtle1.shop.").replace(&format!("\"{prefix}\""), "\"dtle1\"");
    let mut v: Json = serde_json::from_str(&text).unwrap();
    if let Some(p) = v.get_mut("payload").filter(|p| p.is_object()) {
        for f in ["ts_ms", "ts_us", "ts_ns"] {
            p[f] = json!(0);
        }
        if let Some(s) = p.get_mut("source").filter(|s| s.is_object()) {
            for f in ["ts_ms", "ts_us", "ts_ns", "pos", "server_id", "row"] {
                s[f] = json!(0);
            }
            s["file"] = json!("");
            s["gtid"] = json!(s["gtid"].is_string());
            s["db"] = json!("shop");
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_column_type_in_snapshot_and_binlog_matches_the_golden_files() {
    let Some((ctx, brokers)) = setup("kafka-types").await else { return };
    let mut src = ctx.s.src_conn().await;
    reset_source_schema(&mut src, "kafka_types").await;
    exec(&mut src, "SET time_zone = '+00:00'").await;
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(ty) = name.strip_prefix("type_").and_then(|n| n.strip_suffix(".json")) else { continue };
        // MariaDB's JSON is an alias of LONGTEXT: it arrives as a plain string (checked below).
        if ty == "json" {
            continue;
        }
        let g = read_golden(&name);
        let column = g["column"].as_str().unwrap().to_string();
        exec(&mut src, &format!("CREATE TABLE kafka_types.t_{ty} (id INT PRIMARY KEY, c {column})")).await;
        for (i, v) in g["values"].as_array().unwrap().iter().enumerate() {
            let sql = v["sql"].as_str().unwrap();
            exec(&mut src, &format!("INSERT INTO kafka_types.t_{ty} VALUES ({}, {sql})", i + 1)).await;
        }
        cases.push((ty.to_string(), g));
    }
    exec(&mut src, "CREATE TABLE kafka_types.t_json (id INT PRIMARY KEY, c JSON)").await;
    exec(&mut src, "INSERT INTO kafka_types.t_json VALUES (1, '{\"a\": [1, 2]}')").await;
    assert!(cases.len() >= 30, "golden files missing: {}", cases.len());

    let prefix = unique_prefix("types");
    let job = kafka_job(
        &ctx,
        "kafka-types",
        &replicate_schema("kafka_types"),
        &format!("Topic = \"{prefix}\"\nBrokers = [\"{brokers}\"]"),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);
    // The binlog: the same values again, after the full copy.
    let topics: Vec<String> = cases.iter().map(|(ty, _)| format!("{prefix}.kafka_types.t_{ty}")).collect();
    let first = topics[0].clone();
    consume_until(&brokers, std::slice::from_ref(&first), "the full copy reaches Kafka", Some(&mut dtle), |m| {
        !m.is_empty()
    })
    .await;
    exec(&mut src, "SET time_zone = '+00:00'").await;
    for (ty, g) in &cases {
        for (i, v) in g["values"].as_array().unwrap().iter().enumerate() {
            let sql = v["sql"].as_str().unwrap();
            exec(&mut src, &format!("INSERT INTO kafka_types.t_{ty} VALUES ({}, {sql})", 101 + i)).await;
        }
    }
    exec(&mut src, "INSERT INTO kafka_types.t_json VALUES (101, '{\"a\": [1, 2]}')").await;
    for (ty, g) in &cases {
        let topic = format!("{prefix}.kafka_types.t_{ty}");
        let values = g["values"].as_array().unwrap();
        let msgs = consume_until(
            &brokers,
            std::slice::from_ref(&topic),
            &format!("{topic} has every row"),
            Some(&mut dtle),
            |m| m.len() >= values.len() * 2,
        )
        .await;
        let mut by_id: BTreeMap<i64, &Msg> = BTreeMap::new();
        for m in &msgs {
            by_id.insert(m.after()["id"].as_i64().unwrap(), m);
        }
        for (i, v) in values.iter().enumerate() {
            for (id, op) in [(1 + i as i64, "r"), (101 + i as i64, "c")] {
                let m = by_id.get(&id).unwrap_or_else(|| panic!("{topic}: no message for id {id}"));
                assert_eq!(m.op(), op, "{topic} id {id}");
                // Debezium writes a few values of its full copy differently (TIMESTAMP fractions without their
                // trailing zeros): `json_full_copy` in the golden file.
                let want = match op {
                    "r" => v.get("json_full_copy").unwrap_or(&v["json"]),
                    _ => &v["json"],
                };
                assert_eq!(
                    &m.after()["c"],
                    want,
                    "{ty}: {} read by the {} gives a different value",
                    v["sql"],
                    if op == "r" { "snapshot" } else { "binlog" }
                );
                let schema = &m.value.as_ref().unwrap()["schema"]["fields"][1]["fields"][1];
                assert_eq!(schema, &g["schema"], "{ty}: field schema");
                assert_eq!(m.key_payload(), json!({"id": id}));
            }
        }
    }
    let topic = format!("{prefix}.kafka_types.t_json");
    let msgs = consume_until(&brokers, std::slice::from_ref(&topic), "t_json has both rows", Some(&mut dtle), |m| {
        m.len() >= 2
    })
    .await;
    for m in &msgs {
        let text = m.after()["c"].as_str().unwrap_or_else(|| panic!("json column is not a string: {:?}", m.after()));
        assert_eq!(serde_json::from_str::<Json>(text).unwrap(), json!({"a": [1, 2]}));
    }
    dtle.stop_cleanly().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_changes_tombstones_and_ddl() {
    let Some((ctx, brokers)) = setup("kafka-events").await else { return };
    let db = "kafka_events";
    let mut src = ctx.s.src_conn().await;
    reset_source_schema(&mut src, db).await;
    exec(&mut src, &format!("CREATE TABLE {db}.items (id INT NOT NULL PRIMARY KEY, name VARCHAR(20) CHARACTER SET utf8mb4, price DECIMAL(10,2))")).await;
    exec(&mut src, &format!("INSERT INTO {db}.items VALUES (1, 'pen', 1.50), (3, 'ink', 0.99)")).await;
    let prefix = unique_prefix("events");
    let job = kafka_job(
        &ctx,
        "kafka-events",
        &replicate_schema(db),
        &format!("Topic = \"{prefix}\"\nBrokers = [\"{brokers}\"]"),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);
    let topic = format!("{prefix}.{db}.items");
    let ddl_topic = format!("schema-changes.{prefix}");
    consume_until(&brokers, std::slice::from_ref(&topic), "the full copy", Some(&mut dtle), |m| m.len() >= 2).await;
    exec(&mut src, &format!("INSERT INTO {db}.items VALUES (2, 'cup', 3.00)")).await;
    exec(&mut src, &format!("UPDATE {db}.items SET price = 2.00 WHERE id = 1")).await;
    exec(&mut src, &format!("DELETE FROM {db}.items WHERE id = 1")).await;
    exec(&mut src, &format!("UPDATE {db}.items SET id = 7 WHERE id = 3")).await;
    exec(&mut src, &format!("ALTER TABLE {db}.items ADD COLUMN note VARCHAR(10) CHARACTER SET utf8mb4")).await;
    exec(&mut src, &format!("INSERT INTO {db}.items VALUES (4, 'pad', 5.25, 'new')")).await;
    let msgs = consume_until(&brokers, std::slice::from_ref(&topic), "every change of items", Some(&mut dtle), |m| {
        m.len() >= 10
    })
    .await;

    // Per key, in order (one key stays on one partition).
    let mut per_key: BTreeMap<String, Vec<&Msg>> = BTreeMap::new();
    for m in &msgs {
        per_key.entry(m.key_payload().to_string()).or_default().push(m);
    }
    let ops = |id: i64| -> Vec<String> {
        per_key
            .get(&json!({"id": id}).to_string())
            .map(|v| v.iter().map(|m| m.op().to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(ops(1), ["r", "u", "d", "tombstone"]);
    assert_eq!(ops(2), ["c"]);
    assert_eq!(ops(3), ["r", "d", "tombstone"], "a key change deletes the old key");
    assert_eq!(ops(7), ["c"]);
    assert_eq!(ops(4), ["c"]);
    let pen = &per_key[&json!({"id": 1}).to_string()];
    assert_eq!(pen[1].before()["price"], json!("AJY="));
    assert_eq!(pen[1].after()["price"], json!("AMg="));
    assert!(pen[3].value.is_none() && pen[3].key == pen[2].key, "a real tombstone: null value, same key");
    let pad = &per_key[&json!({"id": 4}).to_string()][0];
    assert_eq!(pad.after()["note"], json!("new"), "the new column after the DDL");

    // The same shapes as the envelope's golden files.
    let insert = per_key[&json!({"id": 2}).to_string()][0];
    let golden_insert = &read_golden("event_insert.json")[0];
    assert_eq!(normalize(insert.value.as_ref().unwrap(), &prefix, db)["schema"], golden_insert["value"]["schema"]);
    assert_eq!(normalize(insert.key.as_ref().unwrap(), &prefix, db)["schema"], golden_insert["key"]["schema"]);
    let got = normalize(pen[2].value.as_ref().unwrap(), &prefix, db);
    let want = normalize(&read_golden("event_delete.json")[0]["value"], "dtle1", "shop");
    assert_eq!(got, want, "delete event differs from golden/event_delete.json");
    let snap = normalize(pen[0].value.as_ref().unwrap(), &prefix, db);
    let mut want = normalize(&read_golden("event_snapshot_read.json")[0]["value"], "dtle1", "shop");
    want["payload"]["after"] = json!({"id": 1, "name": "pen", "price": "AJY="});
    assert_eq!(snap, want, "snapshot read differs from golden/event_snapshot_read.json");

    // DDL: the CREATE of the full copy (snapshot) and the ALTER.
    let ddl = consume_until(&brokers, std::slice::from_ref(&ddl_topic), "the schema changes", Some(&mut dtle), |m| {
        m.len() >= 2
    })
    .await;
    let statements: Vec<(String, String)> = ddl
        .iter()
        .map(|m| {
            let p = &m.value.as_ref().unwrap()["payload"];
            (p["ddl"].as_str().unwrap().to_string(), p["source"]["snapshot"].as_str().unwrap().to_string())
        })
        .collect();
    assert!(statements[0].0.contains("CREATE TABLE") && statements[0].1 == "true", "{statements:?}");
    assert!(statements.iter().any(|(s, snap)| s.contains("ADD COLUMN note") && snap == "false"), "{statements:?}");
    let golden_ddl = read_golden("event_ddl.json");
    assert_eq!(ddl[0].value.as_ref().unwrap()["schema"], golden_ddl["value"]["schema"]);
    assert_eq!(ddl[0].key.as_ref().unwrap()["payload"], json!({"databaseName": db}));
    dtle.stop_cleanly().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dest_sigkill_mid_stream_loses_nothing_and_keeps_order_per_key() {
    let Some((ctx, brokers)) = setup("kafka-kill").await else { return };
    let db = "kafka_kill";
    let mut src = ctx.s.src_conn().await;
    reset_source_schema(&mut src, db).await;
    exec(&mut src, &format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT NOT NULL)")).await;
    const KEYS: i64 = 10;
    const ROUNDS: i64 = 150;
    exec(&mut src, &format!("INSERT INTO {db}.t SELECT seq, 0 FROM {db}.seq_0_to_{}", KEYS - 1)).await;
    let prefix = unique_prefix("kill");
    let job = kafka_job(
        &ctx,
        "kafka-kill",
        &replicate_schema(db),
        &format!("Topic = \"{prefix}\"\nBrokers = [\"{brokers}\"]"),
    );
    let topic = format!("{prefix}.{db}.t");
    let mut dtle = Dtle::run(ctx.path(), &job);
    consume_until(&brokers, std::slice::from_ref(&topic), "the full copy", Some(&mut dtle), |m| {
        m.len() >= KEYS as usize
    })
    .await;

    // Spread over a few seconds, so the kill lands mid-stream.
    let writer = spawn_rounds(&ctx.s, db, KEYS, ROUNDS, Duration::from_millis(20));
    consume_until(&brokers, std::slice::from_ref(&topic), "some changes before the kill", Some(&mut dtle), |m| {
        m.len() >= (KEYS * 20) as usize
    })
    .await;
    dtle.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut dtle = Dtle::run(ctx.path(), &job);
    writer.await.unwrap();
    let msgs =
        consume_until(&brokers, std::slice::from_ref(&topic), "every change after the restart", Some(&mut dtle), |m| {
            let done = m.iter().filter(|m| m.after()["v"] == json!(ROUNDS)).count();
            done >= KEYS as usize
        })
        .await;
    check_every_change_in_order(&msgs, KEYS, ROUNDS, "after the kill");
    dtle.stop_cleanly().await;
}

/// A steady stream of single-row transactions on `<db>.t (id, v)`: round r sets v = r for every key, then pauses.
fn spawn_rounds(s: &Servers, db: &str, keys: i64, rounds: i64, pause: Duration) -> tokio::task::JoinHandle<()> {
    let (s, db) = (s.clone(), db.to_string());
    tokio::spawn(async move {
        let mut c = s.src_conn().await;
        for round in 1..=rounds {
            for id in 0..keys {
                exec(&mut c, &format!("UPDATE {db}.t SET v = {round} WHERE id = {id}")).await;
            }
            tokio::time::sleep(pause).await;
        }
    })
}

/// `t (id, v)`: every key went 0, 1, ..., `rounds`. Each value must be there, in order per key; a value may come
/// again only where re-sending started (a step back), never after a gap.
fn check_every_change_in_order(msgs: &[Msg], keys: i64, rounds: i64, when: &str) {
    let mut per_key: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for m in msgs {
        per_key.entry(m.after()["id"].as_i64().unwrap()).or_default().push(m.after()["v"].as_i64().unwrap());
    }
    let total: usize = per_key.values().map(Vec::len).sum();
    let expected = (keys * (rounds + 1)) as usize;
    println!("{total} messages for {expected} source changes ({} re-sent {when})", total - expected.min(total));
    for (id, vs) in &per_key {
        // In order, nothing skipped: each value is the next one, or a step back where re-sending started.
        let mut seen_max = -1;
        for w in vs.windows(2) {
            assert!(w[1] == w[0] + 1 || w[1] <= w[0], "key {id}: {} follows {} (gap): {vs:?}", w[1], w[0]);
        }
        for v in vs {
            assert!(*v <= seen_max + 1, "key {id}: {v} before {}: {vs:?}", seen_max + 1);
            seen_max = seen_max.max(*v);
        }
        assert_eq!(seen_max, rounds, "key {id}: {vs:?}");
    }
    assert_eq!(per_key.len(), keys as usize);
}

/// A broker of this test's own (`tests/kafka.sh` on another port), destroyed on drop.
struct OwnBroker {
    port: u16,
}

impl OwnBroker {
    fn run(port: u16, action: &str) {
        let out = std::process::Command::new(repo_root().join("tests").join("kafka.sh"))
            .arg(action)
            .env("DTLE_KAFKA_PORT", port.to_string())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run tests/kafka.sh");
        assert!(
            out.status.success(),
            "tests/kafka.sh {action} (port {port}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo_root().join("tests").join("kafka.sh"))
            .arg("destroy")
            .env("DTLE_KAFKA_PORT", self.port.to_string())
            .stdin(std::process::Stdio::null())
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_restart_mid_stream_is_retried_and_loses_nothing() {
    let Some((ctx, _)) = setup("kafka-broker-restart").await else { return };
    let port = 9192;
    let broker = OwnBroker { port };
    OwnBroker::run(port, "destroy");
    tokio::task::spawn_blocking(move || OwnBroker::run(port, "start")).await.unwrap();
    let brokers = format!("127.0.0.1:{port}");
    let db = "kafka_restart";
    let mut src = ctx.s.src_conn().await;
    reset_source_schema(&mut src, db).await;
    exec(&mut src, &format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT NOT NULL)")).await;
    const KEYS: i64 = 5;
    const ROUNDS: i64 = 120;
    exec(&mut src, &format!("INSERT INTO {db}.t SELECT seq, 0 FROM {db}.seq_0_to_{}", KEYS - 1)).await;
    let job =
        kafka_job(&ctx, "kafka-restart", &replicate_schema(db), &format!("Topic = \"rs\"\nBrokers = [\"{brokers}\"]"));
    let topic = format!("rs.{db}.t");
    let mut dtle = Dtle::run(ctx.path(), &job);
    consume_until(&brokers, std::slice::from_ref(&topic), "the full copy", Some(&mut dtle), |m| {
        m.len() >= KEYS as usize
    })
    .await;
    let writer = spawn_rounds(&ctx.s, db, KEYS, ROUNDS, Duration::from_millis(50));
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The broker goes away for a few seconds while the source keeps writing.
    tokio::task::spawn_blocking(move || OwnBroker::run(port, "stop")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(dtle.try_exited().is_none(), "dtle must wait for the broker, not exit");
    tokio::task::spawn_blocking(move || OwnBroker::run(port, "start")).await.unwrap();
    writer.await.unwrap();
    let msgs = consume_until(
        &brokers,
        std::slice::from_ref(&topic),
        "every change after the broker restart",
        Some(&mut dtle),
        |m| m.iter().filter(|m| m.after()["v"] == json!(ROUNDS)).count() >= KEYS as usize,
    )
    .await;
    check_every_change_in_order(&msgs, KEYS, ROUNDS, "after the broker restart");
    dtle.stop_cleanly().await;
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_brokers_and_oversized_messages_fail_clearly() {
    let Some((ctx, brokers)) = setup("kafka-errors").await else { return };
    let db = "kafka_errors";
    let mut src = ctx.s.src_conn().await;
    reset_source_schema(&mut src, db).await;
    exec(&mut src, &format!("CREATE TABLE {db}.big (id INT PRIMARY KEY, body LONGTEXT)")).await;

    let job = kafka_job(&ctx, "kafka-down", &replicate_schema(db), "Topic = \"down\"\nBrokers = [\"127.0.0.1:1\"]");
    let out = run_to_exit(ctx.path(), "validate-down", &["validate".as_ref(), job.as_os_str()]).await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("127.0.0.1:1") && out.stderr.contains("KafkaConfig.Brokers"), "{}", out.stderr);

    // About 5 MB of incompressible text in one row: over the broker's default 1 MB message limit.
    exec(&mut src, "SET SESSION group_concat_max_len = 16777216").await;
    exec(
        &mut src,
        &format!("INSERT INTO {db}.big SELECT 1, GROUP_CONCAT(MD5(RAND()), SHA2(RAND(), 256) SEPARATOR '') FROM {db}.seq_1_to_52000"),
    )
    .await;
    let prefix = unique_prefix("errors");
    let job = kafka_job(
        &ctx,
        "kafka-big",
        &replicate_schema(db),
        &format!("Topic = \"{prefix}\"\nBrokers = [\"{brokers}\"]"),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);
    let status = dtle.wait_exit(Duration::from_secs(120)).await;
    assert_ne!(status.code(), Some(0));
    let log = dtle.log_text();
    assert!(
        log.contains(&format!("{prefix}.{db}.big")) && log.contains("max.message.bytes"),
        "the error names the topic and the setting to raise:\n{}",
        tail(&log, 30)
    );
}

/// SASL PLAIN against the broker's SASL_PLAINTEXT listener: the right password produces; a wrong one stops the job
/// with a definite error that names the user and the fields to fix (no endless retry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_plain_credentials_and_a_wrong_password() {
    let Some((ctx, brokers)) = setup("kafka-sasl").await else { return };
    let Some(sasl) = std::env::var("DTLE_TEST_KAFKA_SASL").ok().filter(|v| !v.trim().is_empty()) else {
        assert!(!servers_required(), "DTLE_TEST_KAFKA_SASL is not set (eval \"$(tests/kafka.sh env)\")");
        println!("skipping: DTLE_TEST_KAFKA_SASL is not set");
        return;
    };
    let db = "kafka_sasl";
    let mut src = ctx.s.src_conn().await;
    reset_source_schema(&mut src, db).await;
    exec(&mut src, &format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT NOT NULL)")).await;
    exec(&mut src, &format!("INSERT INTO {db}.t SELECT seq, seq FROM {db}.seq_1_to_5")).await;

    let prefix = unique_prefix("sasl");
    let job = kafka_job(
        &ctx,
        "kafka-sasl",
        &replicate_schema(db),
        &format!("Topic = \"{prefix}\"\nBrokers = [\"{sasl}\"]\nUser = \"dtle\"\nPassword = \"dtle-secret\""),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);
    let topic = format!("{prefix}.{db}.t");
    consume_until(
        &brokers,
        std::slice::from_ref(&topic),
        "the full copy through the SASL listener",
        Some(&mut dtle),
        |m| m.len() >= 5,
    )
    .await;
    dtle.stop_cleanly().await;

    let job = kafka_job(
        &ctx,
        "kafka-sasl-wrong",
        &replicate_schema(db),
        &format!("Topic = \"{prefix}w\"\nBrokers = [\"{sasl}\"]\nUser = \"dtle\"\nPassword = \"not-the-password\""),
    );
    let mut dtle = Dtle::run_with(ctx.path(), &job, "wrong.log", "data-wrong", &[]);
    let status = dtle.wait_exit(Duration::from_secs(120)).await;
    let log = dtle.log_text();
    assert_eq!(status.code(), Some(1), "a wrong password should stop the job:\n{}", tail(&log, 30));
    assert!(
        log.contains("refused to authenticate user \"dtle\"") && log.contains("KafkaConfig.User/Password"),
        "the error names the user and the fields:\n{}",
        tail(&log, 30)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn src_and_dest_over_nats_into_kafka_resume_from_the_store() {
    let Some((ctx, brokers)) = setup("kafka-nats").await else { return };
    let Some(nats) = nats_url() else { return };
    let db = "kafka_nats";
    let mut src = ctx.s.src_conn().await;
    reset_source_schema(&mut src, db).await;
    exec(&mut src, &format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT NOT NULL)")).await;
    const KEYS: i64 = 5;
    exec(&mut src, &format!("INSERT INTO {db}.t SELECT seq, 0 FROM {db}.seq_0_to_{}", KEYS - 1)).await;
    let prefix = unique_prefix("nats");
    let job = kafka_job(
        &ctx,
        "kafka-nats",
        &replicate_schema(db),
        &format!("Topic = \"{prefix}\"\nBrokers = [\"{brokers}\"]"),
    );
    let topic = format!("{prefix}.{db}.t");
    let start = |round: &str| {
        let link = ["--transport", "nats", "--nats", nats.as_str()];
        let dest = Dtle::run_with(
            ctx.path(),
            &job,
            &format!("dest{round}.log"),
            "data-dest",
            &[&link[..], &["--only", "dest"]].concat(),
        );
        let srcp = Dtle::run_with(
            ctx.path(),
            &job,
            &format!("src{round}.log"),
            "data-src",
            &[&link[..], &["--only", "src"]].concat(),
        );
        (srcp, dest)
    };
    let (mut srcp, mut dest) = start("1");
    consume_until(&brokers, std::slice::from_ref(&topic), "the full copy over NATS", Some(&mut dest), |m| {
        m.len() >= KEYS as usize
    })
    .await;
    for round in 1..=10 {
        for id in 0..KEYS {
            exec(&mut src, &format!("UPDATE {db}.t SET v = {round} WHERE id = {id}")).await;
        }
    }
    consume_until(&brokers, std::slice::from_ref(&topic), "the changes over NATS", Some(&mut dest), |m| {
        m.iter().filter(|m| m.after()["v"] == json!(10)).count() >= KEYS as usize
    })
    .await;
    srcp.stop_cleanly().await;
    dest.stop_cleanly().await;
    // Started again: the src resumes from its stored position (no second full copy).
    let (mut srcp, mut dest) = start("2");
    for id in 0..KEYS {
        exec(&mut src, &format!("UPDATE {db}.t SET v = 11 WHERE id = {id}")).await;
    }
    let msgs =
        consume_until(&brokers, std::slice::from_ref(&topic), "the changes after the restart", Some(&mut dest), |m| {
            m.iter().filter(|m| m.after()["v"] == json!(11)).count() >= KEYS as usize
        })
        .await;
    assert_eq!(msgs.iter().filter(|m| m.op() == "r").count(), KEYS as usize, "one full copy only");
    check_every_change_in_order(&msgs, KEYS, 11, "over NATS");
    srcp.stop_cleanly().await;
    dest.stop_cleanly().await;
}

/// Regression (issue 14): a BINARY(4) value ending in 0x00 bytes has one encoding in the topic, whether it comes
/// from the full copy or from the binlog (which cuts the trailing zeros): `/wAAAA==` for x'ff000000', never `/w==`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_values_have_one_encoding_from_the_copy_and_the_binlog() {
    let Some((ctx, brokers)) = setup("kafka-binary").await else { return };
    let db = "kafka_binary";
    let mut src = ctx.s.src_conn().await;
    reset_source_schema(&mut src, db).await;
    exec(&mut src, &format!("CREATE TABLE {db}.bk (id BINARY(4) PRIMARY KEY, v INT)")).await;
    exec(&mut src, &format!("INSERT INTO {db}.bk VALUES (x'ff000000', 1)")).await;
    let prefix = unique_prefix("binary");
    let job = kafka_job(
        &ctx,
        "kafka-binary",
        &replicate_schema(db),
        &format!("Topic = \"{prefix}\"\nBrokers = [\"{brokers}\"]"),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);
    let topic = format!("{prefix}.{db}.bk");
    consume_until(&brokers, std::slice::from_ref(&topic), "the full copy", Some(&mut dtle), |m| !m.is_empty()).await;
    exec(&mut src, &format!("UPDATE {db}.bk SET v = 2")).await;
    exec(&mut src, &format!("INSERT INTO {db}.bk VALUES (x'00000000', 3)")).await;
    let msgs =
        consume_until(&brokers, std::slice::from_ref(&topic), "the binlog events", Some(&mut dtle), |m| m.len() >= 3)
            .await;
    // Partitions are read one after another: order by op (c, r, u) across keys.
    let mut ops: Vec<(&str, Json, Json, Json)> = msgs
        .iter()
        .map(|m| (m.op(), m.key_payload()["id"].clone(), m.before()["id"].clone(), m.after()["id"].clone()))
        .collect();
    ops.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        ops,
        [
            ("c", json!("AAAAAA=="), Json::Null, json!("AAAAAA==")),
            ("r", json!("/wAAAA=="), Json::Null, json!("/wAAAA==")),
            ("u", json!("/wAAAA=="), json!("/wAAAA=="), json!("/wAAAA==")),
        ]
    );
    dtle.stop_cleanly().await;
}

/// Column defaults are in Debezium's schemas and replace null values (JsonConverter). A job that starts from its
/// saved position runs no full copy, so it has seen no `CREATE TABLE`: it asks the source for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_defaults_after_a_restart_from_the_saved_position() {
    let Some((ctx, brokers)) = setup("kafka-defaults").await else { return };
    let db = "kafka_defaults";
    let mut src = ctx.s.src_conn().await;
    reset_source_schema(&mut src, db).await;
    exec(&mut src, &format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT DEFAULT 5)")).await;
    exec(&mut src, &format!("INSERT INTO {db}.t VALUES (1, 1)")).await;
    let prefix = unique_prefix("defaults");
    let job = kafka_job(
        &ctx,
        "kafka-defaults",
        &replicate_schema(db),
        &format!("Topic = \"{prefix}\"\nBrokers = [\"{brokers}\"]"),
    );
    let topic = format!("{prefix}.{db}.t");
    let mut dtle = Dtle::run(ctx.path(), &job);
    consume_until(&brokers, std::slice::from_ref(&topic), "the full copy", Some(&mut dtle), |m| !m.is_empty()).await;
    exec(&mut src, &format!("INSERT INTO {db}.t VALUES (2, NULL)")).await;
    consume_until(&brokers, std::slice::from_ref(&topic), "row 2", Some(&mut dtle), |m| m.len() >= 2).await;
    dtle.stop_cleanly().await;
    exec(&mut src, &format!("INSERT INTO {db}.t VALUES (3, NULL)")).await;
    let mut dtle = Dtle::run(ctx.path(), &job);
    let msgs = consume_until(&brokers, std::slice::from_ref(&topic), "row 3 after the restart", Some(&mut dtle), |m| {
        m.iter().any(|m| m.after()["id"] == json!(3))
    })
    .await;
    dtle.stop_cleanly().await;
    for id in [1, 2, 3] {
        let m = msgs.iter().find(|m| m.after()["id"] == json!(id)).unwrap_or_else(|| panic!("no message for {id}"));
        let v = &m.value.as_ref().unwrap()["schema"]["fields"][1]["fields"][1];
        assert_eq!(v["default"], json!(5), "id {id}: the schema of v has its default: {v}");
        assert_eq!(m.after()["v"], json!(if id == 1 { 1 } else { 5 }), "id {id}: NULL is written as the default");
    }
}

/// Debezium's `source.pos` and `source.row`: the start of the change's binlog event (as the source's `SHOW BINLOG
/// EVENTS` lists it) and the row's index in that event — also for a big transaction sent in parts
/// (`DumpEntryLimit`), whose rows are unique by (`source.pos`, `source.row`) across its parts (regression found by
/// the chaos campaign: rows of different parts shared a de-duplication key and a de-duplicating consumer lost them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_pos_and_row_are_the_binlog_event_and_the_row_in_it() {
    let Some((ctx, brokers)) = setup("kafka-big-tx-rows").await else { return };
    let db = "kafka_big_tx_rows";
    let mut src = ctx.s.src_conn().await;
    reset_source_schema(&mut src, db).await;
    exec(&mut src, &format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, pad VARCHAR(100))")).await;
    let prefix = unique_prefix("bigtxrows");
    let job = kafka_job(
        &ctx,
        "kafka-big-tx-rows",
        &format!("{}\nDumpEntryLimit = 65536", replicate_schema(db)),
        &format!("Topic = \"{prefix}\"\nBrokers = [\"{brokers}\"]"),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);
    let topic = format!("{prefix}.{db}.t");
    // The (empty) full copy is done once the table's CREATE reached the schema-change topic.
    let ddl_topic = format!("schema-changes.{prefix}");
    consume_until(&brokers, std::slice::from_ref(&ddl_topic), "the full copy", Some(&mut dtle), |m| !m.is_empty())
        .await;
    let (file, start): (String, u64) = {
        let row: (String, u64, String, String) =
            mysql_async::prelude::Queryable::query_first(&mut src, "SHOW MASTER STATUS").await.unwrap().unwrap();
        (row.0, row.1)
    };
    let rows = 20_000u64;
    exec(&mut src, &format!("INSERT INTO {db}.t SELECT seq, REPEAT('x', 90) FROM {db}.seq_1_to_{rows}")).await;
    exec(&mut src, &format!("UPDATE {db}.t SET pad = 'y' WHERE id IN (1, 2, 3)")).await;
    let msgs = consume_until(&brokers, std::slice::from_ref(&topic), "the big transaction", Some(&mut dtle), |m| {
        m.len() as u64 >= rows + 3
    })
    .await;
    // The rows events the source wrote since, by start position, with their row counts still to be matched.
    let events: Vec<(String, u64, String, u64, u64, String)> =
        mysql_async::prelude::Queryable::query(&mut src, format!("SHOW BINLOG EVENTS IN '{file}' FROM {start}"))
            .await
            .unwrap();
    let rows_events: std::collections::BTreeSet<u64> = events
        .iter()
        .filter(|e| matches!(e.2.as_str(), "Write_rows_v1" | "Update_rows_v1" | "Write_rows" | "Update_rows"))
        .map(|e| e.1)
        .collect();
    assert!(rows_events.len() > 2, "the big insert is several rows events: {events:?}");
    let mut per_event: std::collections::BTreeMap<u64, Vec<u64>> = std::collections::BTreeMap::new();
    for m in &msgs {
        let source = &m.value.as_ref().expect("no tombstones")["payload"]["source"];
        let pos = source["pos"].as_u64().expect("source.pos");
        assert!(rows_events.contains(&pos), "source.pos {pos} is not the start of a rows event: {rows_events:?}");
        per_event.entry(pos).or_default().push(source["row"].as_u64().expect("source.row"));
    }
    let mut total = 0;
    for (pos, mut numbers) in per_event {
        numbers.sort_unstable();
        let n = numbers.len() as u64;
        assert_eq!(numbers, (0..n).collect::<Vec<_>>(), "the rows of the event at {pos} are numbered 0..{n}");
        total += n;
    }
    assert_eq!(total, rows + 3, "(source.pos, source.row) is unique per row");
    assert!(dtle.log_text().contains("sending it in parts"), "the transaction was not split");
    dtle.stop_cleanly().await;
}

// ---------------------------------------------------------------------------------------------
// Byte-for-byte compatibility with Debezium 3.6.1 (tests/compat/README.md).

/// One Kafka record as bytes: `None` key (a table without a key) or value (a tombstone).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RawRecord {
    topic: String,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// `topic TAB key TAB value` lines (an empty key or value: none), as tests/compat's recorder writes them.
fn read_tsv(path: &std::path::Path) -> Vec<RawRecord> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let field = |b: &[u8]| (!b.is_empty()).then(|| b.to_vec());
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            let parts: Vec<&[u8]> = line.splitn(3, |&b| b == b'\t').collect();
            assert_eq!(parts.len(), 3, "{}: a line without topic, key and value", path.display());
            RawRecord {
                topic: String::from_utf8(parts[0].to_vec()).unwrap(),
                key: field(parts[1]),
                value: field(parts[2]),
            }
        })
        .collect()
}

fn write_tsv(path: &std::path::Path, records: &[RawRecord]) {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(r.topic.as_bytes());
        out.push(b'\t');
        out.extend_from_slice(r.key.as_deref().unwrap_or_default());
        out.push(b'\t');
        out.extend_from_slice(r.value.as_deref().unwrap_or_default());
        out.push(b'\n');
    }
    write_file(path, &String::from_utf8(out).unwrap());
}

/// Every message now in `topics`, as bytes, partition by partition in offset order.
fn read_raw(brokers: &str, topics: &[String]) -> Vec<RawRecord> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "dtle-e2e-compat-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut out = Vec::new();
    for topic in topics {
        let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) else { continue };
        let ids: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        for id in ids {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, id, Offset::Beginning).expect("partition");
            consumer.assign(&tpl).expect("assign");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(30) {
                match consumer.poll(Duration::from_millis(500)) {
                    None => {}
                    Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                    Some(Err(e)) => panic!("consuming {topic}: {e}"),
                    Some(Ok(m)) => out.push(RawRecord {
                        topic: topic.clone(),
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().map(<[u8]>::to_vec),
                    }),
                }
            }
        }
    }
    out
}

/// The statements of one of tests/compat's SQL files (each ends with `;` at the end of a line).
fn sql_statements(file: &str) -> Vec<String> {
    let p = repo_root().join("tests").join("compat").join(file);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("--")) {
        cur.push_str(line);
        cur.push('\n');
        if line.trim_end().ends_with(';') {
            out.push(cur.trim().trim_end_matches(';').to_string());
            cur.clear();
        }
    }
    out
}

/// What legitimately differs between two runs, or between Debezium and dtle, blanked in the bytes (everything else
/// is compared byte for byte; tests/compat/README.md lists each): times (`ts_ms`, `ts_us`, `ts_ns`), the
/// connector's version, binlog coordinates (`file`, `pos`, `row`: dtle gives the transaction's end position and the
/// row's index in the transaction), the server id (only zero or not), the GTID (Debezium's MySQL connector on
/// MariaDB writes none), `tableChanges` of schema-change events (dtle writes none), and which table's row is the
/// copy's `first`/`last` (each tool's own table order: they count as the table's first/last here, and the caller
/// checks that dtle marks exactly one of each).
fn normalize_bytes(bytes: &[u8]) -> String {
    use regex::Regex;
    use std::sync::OnceLock;
    static RULES: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (r#""(ts_ms|ts_us|ts_ns)":\d+"#, r#""$1":0"#),
            (r#""version":"[^"]*","connector":"#, r#""version":"","connector":"#),
            (r#""server_id":[1-9]\d*,"#, r#""server_id":1,"#),
            (
                r#""gtid":(null|"[^"]*"),"file":"[^"]*","pos":\d+,"row":\d+,"#,
                r#""gtid":null,"file":"","pos":0,"row":0,"#,
            ),
            (r#""tableChanges":\[.*\]\}\}$"#, r#""tableChanges":[]}}"#),
            (r#""snapshot":"(first|last)","#, r#""snapshot":"${1}_in_data_collection","#),
        ]
        .into_iter()
        .map(|(re, to)| (Regex::new(re).unwrap(), to))
        .collect()
    });
    let mut text = String::from_utf8(bytes.to_vec()).expect("UTF-8 JSON");
    for (re, to) in rules {
        text = re.replace_all(&text, *to).into_owned();
    }
    // A binlog DDL statement is sent as dtle runs it on a target: its table names quoted (and qualified).
    if let Some(at) = text.find(r#""ddl":"ALTER "#) {
        let end = text[at..].find(r#"","tableChanges""#).map_or(text.len(), |e| at + e);
        let ddl = text[at..end].replace('`', "");
        text.replace_range(at..end, &ddl);
    }
    text
}

fn op_of(r: &RawRecord) -> String {
    r.value
        .as_deref()
        .and_then(|v| serde_json::from_slice::<Json>(v).ok())
        .and_then(|v| v["payload"]["op"].as_str().map(str::to_string))
        .unwrap_or_else(|| "tombstone".into())
}

/// Runs dtle on tests/compat's source (schema.sql, then workload.sql after the full copy) into a real broker and
/// compares every message with Debezium 3.6.1's recorded ones (tests/compat/recorded/debezium.tsv): keys byte for
/// byte, values byte for byte after `normalize_bytes`. DTLE_COMPAT_RECORD_DTLE=path also writes dtle's messages there
/// (tests/compat/record.sh does, into recorded/dtle.tsv).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debezium_compat_every_message_matches_debeziums_recording() {
    let Some((ctx, brokers)) = setup("kafka-compat").await else { return };
    let recorded = read_tsv(&repo_root().join("tests/compat/recorded/debezium.tsv"));
    let mut src = ctx.s.src_conn().await;
    for stmt in sql_statements("schema.sql") {
        exec(&mut src, &stmt).await;
    }
    let prefix = unique_prefix("compat");
    let job = kafka_job(
        &ctx,
        "kafka-compat",
        &replicate_schema("dtle_compat"),
        // Debezium's layout: schema changes in the topic named like the prefix.
        &format!("Topic = \"{prefix}\"\nBrokers = [\"{brokers}\"]\nSchemaChangeTopic = \"{prefix}\""),
    );
    let row_topics: BTreeMap<String, usize> =
        recorded.iter().filter(|r| r.topic != "compat").fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r.topic.clone()).or_default() += 1;
            m
        });
    let dtle_topics: Vec<String> = row_topics.keys().map(|t| t.replacen("compat", &prefix, 1)).collect();
    let copy_rows = recorded.iter().filter(|r| op_of(r) == "r").count();
    let mut dtle = Dtle::run(ctx.path(), &job);
    consume_until(&brokers, &dtle_topics, "the full copy", Some(&mut dtle), |m| m.len() >= copy_rows).await;
    for stmt in sql_statements("workload.sql") {
        exec(&mut src, &stmt).await;
    }
    consume_until(&brokers, &dtle_topics, "every change", Some(&mut dtle), |m| m.len() >= row_topics.values().sum())
        .await;
    let mut all_topics = dtle_topics.clone();
    all_topics.push(prefix.clone());
    let ddl_in_binlog = sql_statements("workload.sql").iter().filter(|s| s.starts_with("ALTER")).count();
    let tables =
        recorded.iter().filter(|r| op_of(r) == "r").map(|r| r.topic.clone()).collect::<std::collections::BTreeSet<_>>();
    let _ = consume_until(&brokers, std::slice::from_ref(&prefix), "the schema changes", Some(&mut dtle), |m| {
        m.len() >= tables.len() + 1 + ddl_in_binlog
    })
    .await;
    dtle.stop_cleanly().await;

    // dtle's messages under Debezium's prefix: the prefix is the only text that differs by construction.
    let ours: Vec<RawRecord> = read_raw(&brokers, &all_topics)
        .into_iter()
        .map(|r| {
            let rename = |b: Vec<u8>| String::from_utf8(b).unwrap().replace(&prefix, "compat").into_bytes();
            RawRecord { topic: r.topic.replace(&prefix, "compat"), key: r.key.map(rename), value: r.value.map(rename) }
        })
        .collect();
    if let Ok(path) = std::env::var("DTLE_COMPAT_RECORD_DTLE") {
        write_tsv(std::path::Path::new(&path), &ours);
    }
    for mark in ["first", "last"] {
        let needle = format!("\"snapshot\":\"{mark}\",");
        let n = ours
            .iter()
            .filter(|r| r.value.as_deref().is_some_and(|v| String::from_utf8_lossy(v).contains(&needle)))
            .count();
        assert_eq!(n, 1, "dtle marks {n} rows of the full copy as {mark:?}");
    }
    compare_with_debezium(&recorded, &ours);
}

/// The comparison, per topic and per key (Kafka keeps order per key only; rows without a key, spread over
/// partitions by both tools, as a sorted list).
fn compare_with_debezium(theirs: &[RawRecord], ours: &[RawRecord]) {
    type Streams = BTreeMap<(String, Option<Vec<u8>>), Vec<String>>;
    let streams = |records: &[RawRecord]| -> Streams {
        let mut m: Streams = BTreeMap::new();
        for r in records {
            m.entry((r.topic.clone(), r.key.clone()))
                .or_default()
                .push(r.value.as_deref().map(normalize_bytes).unwrap_or_else(|| "<tombstone>".into()));
        }
        for ((_, key), values) in m.iter_mut() {
            if key.is_none() {
                values.sort();
            }
        }
        m
    };
    // Schema changes: Debezium's full copy also sends `SET character_set_server`, `DROP TABLE IF EXISTS`,
    // `DROP/CREATE DATABASE` and `USE` statements; dtle sends each table's CREATE TABLE (README: Kafka).
    let is_debezium_only = |r: &RawRecord| {
        r.topic == "compat"
            && r.value.as_deref().is_some_and(|v| {
                let v: Json = serde_json::from_slice(v).unwrap();
                let ddl = v["payload"]["ddl"].as_str().unwrap_or_default();
                !(ddl.starts_with("CREATE TABLE") || ddl.starts_with("ALTER"))
            })
    };
    let skipped = theirs.iter().filter(|r| is_debezium_only(r)).count();
    let theirs: Vec<RawRecord> = theirs.iter().filter(|r| !is_debezium_only(r)).cloned().collect();
    let (t, o) = (streams(&theirs), streams(ours));
    let mut problems = Vec::new();
    let (mut keys_same, mut values_same, mut compared) = (0, 0, 0);
    for ((topic, key), want) in &t {
        let shown_key = key.as_deref().map(String::from_utf8_lossy).unwrap_or("<no key>".into());
        let Some(got) = o.get(&(topic.clone(), key.clone())) else {
            problems.push(format!("{topic}: Debezium's key {shown_key} is not among dtle's keys"));
            continue;
        };
        keys_same += want.len().min(got.len());
        if want.len() != got.len() {
            problems.push(format!("{topic} key {shown_key}: Debezium {} messages, dtle {}", want.len(), got.len()));
        }
        for (i, (w, g)) in want.iter().zip(got).enumerate() {
            compared += 1;
            if w == g {
                values_same += 1;
            } else {
                let at = w.bytes().zip(g.bytes()).take_while(|(a, b)| a == b).count();
                let from = at.saturating_sub(150);
                problems.push(format!(
                    "{topic} key {shown_key} message {i}: values differ at byte {at}\n  Debezium: …{}\n  dtle:     …{}",
                    w.get(from..(at + 200).min(w.len())).unwrap_or(w),
                    g.get(from..(at + 200).min(g.len())).unwrap_or(g)
                ));
            }
        }
    }
    for (topic, key) in o.keys().filter(|k| !t.contains_key(*k)) {
        let shown = key.as_deref().map(String::from_utf8_lossy).unwrap_or("<no key>".into());
        problems.push(format!("{topic}: dtle's key {shown} is not among Debezium's keys"));
    }
    println!(
        "compared with Debezium 3.6.1: {compared} messages ({} recorded, {skipped} Debezium-only schema changes \
         left out), {keys_same} identical keys, {values_same} identical values",
        theirs.len() + skipped
    );
    assert!(problems.is_empty(), "{} differences from Debezium:\n{}", problems.len(), problems.join("\n"));
}
