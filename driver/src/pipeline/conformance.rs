//! One conformance suite for the pipeline's links and sinks.
//!
//! - **Links**: every [`DestLink`] / [`SrcLink`] pair goes through the same cases, with the real dest loop
//!   ([`run_dest`]) in between and a recording sink (an in-memory fake of our own [`Sink`] trait): the hello's
//!   typed answer, batches applied in order, cumulative acknowledgements with the sink's durable positions, a new
//!   session asking the sink again (a src restarted while a transaction was open), a stalled sink ending the dest.
//! - **Sinks**: every [`Sink`] against its real server: what becomes durable and with which position, what a
//!   restarted dest answers a new session, and a new session while a big transaction is open (MySQL: rolled back;
//!   Kafka has no transaction and no position of its own: it answers `NoPosition` and the src resumes from the
//!   position store).
//!
//! NATS, MariaDB and Kafka come from `DTLE_TEST_NATS_URL`, `DTLE_TEST_DST_PORT` (with `DTLE_TEST_HOST/USER/
//! PASSWORD`) and `DTLE_TEST_KAFKA`; a case whose server is not configured is skipped unless
//! `DTLE_TEST_REQUIRE_SERVERS=1`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dtle_metadata::{GtidState, Position};
use dtle_mysql::applier::ApplyStats;
use dtle_mysql::Change;
use dtle_transport::nats::{NatsDest, NatsOptions, NatsSource};
use tokio_util::sync::CancellationToken;

use super::dest::run_dest;
use super::link::{self, DestLink, NatsDestLink, NatsSrcLink, SrcLink};
use super::session::SessionStart;
use super::sink::{Durable, Sink};
use crate::config::ResolvedJob;
use crate::error::DriverError;

fn pos(seq: u64) -> Position {
    Position {
        gtid: Some(GtidState::Mariadb(format!("0-1-{seq}").parse().unwrap())),
        binlog_file: "b.000001".into(),
        binlog_pos: seq,
    }
}

fn job(name: &str, watchdog_seconds: u64) -> ResolvedJob {
    let conn = serde_json::json!({ "Host": "127.0.0.1", "Port": 1, "User": "u", "Password": "p" });
    let text = serde_json::json!({ "Job": { "ID": name, "TaskGroups": [
        { "Name": "src", "Tasks": [{ "Name": "src", "Driver": "dtle", "Config": {
            "SrcConnectionConfig": conn.clone(), "DestConnectionConfig": conn, "WatchdogTimeout": watchdog_seconds } }] },
        { "Name": "dest", "Tasks": [{ "Name": "dest", "Driver": "dtle", "Config": { "DestType": "mysql" } }] }
    ] } });
    crate::config::parse_job_str(&text.to_string(), crate::config::JobFormat::Json)
        .and_then(|f| f.resolve())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// What the recording sink saw.
#[derive(Default)]
struct Seen {
    sessions: u32,
    applied: Vec<u64>,
}

/// Records what it applies; durable at once, with the newest heartbeat's position; `stall` never finishes.
struct RecordingSink {
    seen: Arc<Mutex<Seen>>,
    answer: SessionStart,
    stall: bool,
    /// How long each apply takes (a slow target).
    apply_time: Duration,
    stats: ApplyStats,
}

#[async_trait]
impl Sink for RecordingSink {
    async fn session_start(&mut self, _job: &str) -> Result<SessionStart, DriverError> {
        self.seen.lock().unwrap().sessions += 1;
        Ok(self.answer.clone())
    }

    async fn apply(&mut self, changes: &[Change]) -> Result<Durable, DriverError> {
        if self.stall {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(self.apply_time).await;
        let mut newest = None;
        for c in changes {
            if let Change::Heartbeat { position, .. } = c {
                self.seen.lock().unwrap().applied.push(position.binlog_pos);
                newest = Some(position.clone());
                self.stats.transactions += 1;
            }
        }
        Ok(Durable::Now(newest))
    }

    fn stats(&self) -> ApplyStats {
        self.stats.clone()
    }
}

fn sink(answer: SessionStart, stall: bool) -> (RecordingSink, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    (
        RecordingSink { seen: seen.clone(), answer, stall, apply_time: Duration::ZERO, stats: ApplyStats::default() },
        seen,
    )
}

fn heartbeat(seq: u64) -> Vec<Change> {
    vec![Change::Heartbeat { position: pos(seq), source_timestamp: 0 }]
}

/// Starts the dest loop on `dest` with `sink`; stopped by the returned token.
fn start_dest(
    name: &str,
    watchdog_seconds: u64,
    mut sink: RecordingSink,
    mut dest: Box<dyn DestLink>,
) -> (tokio::task::JoinHandle<Result<(), DriverError>>, CancellationToken) {
    let stop = CancellationToken::new();
    let job = job(name, watchdog_seconds);
    let task = {
        let stop = stop.clone();
        tokio::spawn(async move { run_dest(&job, &mut sink, dest.as_mut(), false, &stop).await })
    };
    (task, stop)
}

/// Waits for the acknowledgement of batch `seq`; returns the position of the last acknowledgement.
async fn acked_up_to(src: &mut dyn SrcLink, seq: u64) -> Option<Position> {
    let mut last = (0, None);
    while last.0 < seq {
        let ack = tokio::time::timeout(Duration::from_secs(20), src.next_ack())
            .await
            .expect("acknowledged in time")
            .expect("the dest is there");
        assert!(ack.0 > last.0, "acknowledgements go forward: {} after {}", ack.0, last.0);
        last = ack;
    }
    last.1
}

// The cases -----------------------------------------------------------------------------------------------------

async fn the_answer_batches_and_acks_flow_in_order(name: &str, src: &mut dyn SrcLink, dest: Box<dyn DestLink>) {
    let (sink, seen) = sink(SessionStart::Position(pos(7)), false);
    let (task, stop) = start_dest(name, 300, sink, dest);
    assert_eq!(src.hello(name).await.unwrap(), SessionStart::Position(pos(7)));
    for seq in 1..=50u64 {
        assert_eq!(src.send(heartbeat(seq)).await.unwrap(), seq);
    }
    assert_eq!(acked_up_to(src, 50).await, Some(pos(50)), "the last acknowledgement carries the newest position");
    assert_eq!(seen.lock().unwrap().applied, (1..=50).collect::<Vec<_>>(), "applied once each, in order");
    stop.cancel();
    task.await.unwrap().unwrap();
}

async fn a_stalled_sink_ends_the_dest(name: &str, src: &mut dyn SrcLink, dest: Box<dyn DestLink>) {
    let (sink, _) = sink(SessionStart::NoPosition, true);
    let (task, _stop) = start_dest(name, 1, sink, dest);
    assert_eq!(src.hello(name).await.unwrap(), SessionStart::NoPosition);
    src.send(heartbeat(1)).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(20), task).await.expect("the watchdog ends it").unwrap();
    assert!(matches!(result, Err(DriverError::Stalled { .. })), "{result:?}");
    assert!(result.unwrap_err().is_transient(), "a stall restarts the task");
}

// In process ----------------------------------------------------------------------------------------------------

#[tokio::test]
async fn in_process_the_answer_batches_and_acks_flow_in_order() {
    let (mut src, dest) = link::in_process(4, 1 << 20);
    the_answer_batches_and_acks_flow_in_order("conf_ip_order", &mut src, Box::new(dest)).await;
}

#[tokio::test]
async fn in_process_a_stalled_sink_ends_the_dest() {
    let (mut src, dest) = link::in_process(4, 1 << 20);
    a_stalled_sink_ends_the_dest("conf_ip_stall", &mut src, Box::new(dest)).await;
    // The src's side sees the link closed rather than waiting forever.
    let mut closed = false;
    for seq in 2..=10 {
        if src.send(heartbeat(seq)).await.is_err() {
            closed = true;
            break;
        }
    }
    assert!(closed, "sending after the dest ended fails");
}

#[tokio::test]
async fn in_process_a_finished_src_lets_the_dest_apply_everything_and_end() {
    let (mut src, dest) = link::in_process(64, 1 << 20);
    let (sink, seen) = sink(SessionStart::NoPosition, false);
    let (task, _stop) = start_dest("conf_ip_finish", 300, sink, Box::new(dest));
    src.hello("conf_ip_finish").await.unwrap();
    for seq in 1..=20 {
        src.send(heartbeat(seq)).await.unwrap();
    }
    assert_eq!(src.finish(true).await, 0);
    let mut last = 0;
    while let Some((seq, _)) = src.try_ack() {
        last = seq;
    }
    assert_eq!(last, 20, "every batch acknowledged before finish returns");
    task.await.unwrap().unwrap();
    assert_eq!(seen.lock().unwrap().applied.len(), 20);
}

// NATS ----------------------------------------------------------------------------------------------------------

fn nats_options() -> Option<NatsOptions> {
    match std::env::var("DTLE_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(NatsOptions { urls: vec![url], window: 8, ..Default::default() }),
        _ => {
            assert!(
                std::env::var("DTLE_TEST_REQUIRE_SERVERS").as_deref() != Ok("1"),
                "DTLE_TEST_REQUIRE_SERVERS=1 but DTLE_TEST_NATS_URL is not set"
            );
            eprintln!("skipped: set DTLE_TEST_NATS_URL (tests/nats.sh start; eval \"$(tests/nats.sh env)\")");
            None
        }
    }
}

async fn nats_pair(opts: &NatsOptions, job: &str, session: u64) -> (NatsSrcLink, Option<NatsDestLink>) {
    let dest = NatsDest::bind(opts, job).await.unwrap();
    let src = nats_src(opts, job, session).await;
    (src, Some(NatsDestLink::new(dest, job)))
}

async fn nats_src(opts: &NatsOptions, job: &str, session: u64) -> NatsSrcLink {
    let (src, acks) = NatsSource::connect(opts.clone(), job, session).await.unwrap();
    NatsSrcLink::new(src, acks, None, crate::metrics::job(job))
}

fn unique(name: &str) -> String {
    format!("{name}_{}", std::process::id())
}

#[tokio::test]
async fn nats_the_answer_batches_and_acks_flow_in_order() {
    let Some(opts) = nats_options() else { return };
    let name = unique("conf_nats_order");
    let (mut src, dest) = nats_pair(&opts, &name, 11).await;
    the_answer_batches_and_acks_flow_in_order(&name, &mut src, Box::new(dest.unwrap())).await;
}

#[tokio::test]
async fn nats_a_stalled_sink_ends_the_dest() {
    let Some(opts) = nats_options() else { return };
    let name = unique("conf_nats_stall");
    let (mut src, dest) = nats_pair(&opts, &name, 12).await;
    a_stalled_sink_ends_the_dest(&name, &mut src, Box::new(dest.unwrap())).await;
}

#[tokio::test]
async fn nats_a_new_session_asks_the_sink_again_and_continues() {
    let Some(opts) = nats_options() else { return };
    let name = unique("conf_nats_session");
    let (mut first, dest) = nats_pair(&opts, &name, 21).await;
    let (sink, seen) = sink(SessionStart::Position(pos(3)), false);
    let (task, stop) = start_dest(&name, 300, sink, Box::new(dest.unwrap()));
    first.hello(&name).await.unwrap();
    for seq in 1..=5 {
        first.send(heartbeat(seq)).await.unwrap();
    }
    acked_up_to(&mut first, 5).await;
    // The src restarts (say inside a big transaction): a new session asks where the target stands again, and its
    // batches start at 1.
    let mut second = nats_src(&opts, &name, 22).await;
    assert_eq!(second.hello(&name).await.unwrap(), SessionStart::Position(pos(3)));
    for seq in 1..=5 {
        assert_eq!(second.send(heartbeat(100 + seq)).await.unwrap(), seq);
    }
    assert_eq!(acked_up_to(&mut second, 5).await, Some(pos(105)));
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.sessions, 2, "each session asked the sink");
        assert_eq!(seen.applied, vec![1, 2, 3, 4, 5, 101, 102, 103, 104, 105]);
    }
    // A batch of the first session after the second started is not applied.
    let _ = first.send(heartbeat(6)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!seen.lock().unwrap().applied.contains(&6), "the old session's batch is ignored");
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// Regression (issue 12's risk, fixed in issue 18): a group that takes longer to apply than the src's ack timeout (a
/// whole window on a slow target) keeps its session: the dest tells the src every second that it is still applying.
/// Before, the src gave up on the silence, started a new session, and the group was applied again from the target's
/// position, again and again.
#[tokio::test]
async fn nats_a_group_applied_longer_than_the_ack_timeout_keeps_its_session() {
    let Some(mut opts) = nats_options() else { return };
    opts.ack_timeout = Duration::from_secs(2);
    opts.window = 2;
    let name = unique("conf_nats_keepalive");
    let (mut src, dest) = nats_pair(&opts, &name, 41).await;
    let (mut sink, seen) = sink(SessionStart::NoPosition, false);
    sink.apply_time = Duration::from_secs(5);
    let (task, stop) = start_dest(&name, 300, sink, Box::new(dest.unwrap()));
    src.hello(&name).await.unwrap();
    // The third batch waits for window space, so for the first group's acknowledgement (5 s of apply).
    for seq in 1..=3u64 {
        assert_eq!(src.send(heartbeat(seq)).await.expect("the session lives through the long apply"), seq);
    }
    assert_eq!(acked_up_to(&mut src, 3).await, Some(pos(3)));
    assert_eq!(seen.lock().unwrap().sessions, 1, "one session");
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn nats_a_hello_of_another_job_is_refused_by_the_link() {
    let Some(opts) = nats_options() else { return };
    let name = unique("conf_nats_refuse");
    let (_src, dest) = nats_pair(&opts, &name, 31).await;
    let (sink, seen) = sink(SessionStart::NoPosition, false);
    let (task, stop) = start_dest(&name, 300, sink, Box::new(dest.unwrap()));
    // The same subjects, another job's name in the hello.
    let mut other = nats_src(&opts, &name, 32).await;
    let e = other.hello("another_job").await.unwrap_err().to_string();
    assert!(e.contains("another_job"), "{e}");
    assert_eq!(seen.lock().unwrap().sessions, 0, "the sink is not asked for a refused session");
    stop.cancel();
    task.await.unwrap().unwrap();
}

// Sinks ---------------------------------------------------------------------------------------------------------

/// A server's address from the environment, or `None` (skipped) when it is not configured and not required.
fn server_env(var: &str, how: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
        _ => {
            assert!(
                std::env::var("DTLE_TEST_REQUIRE_SERVERS").as_deref() != Ok("1"),
                "DTLE_TEST_REQUIRE_SERVERS=1 but {var} is not set ({how})"
            );
            eprintln!("skipped: set {var} ({how})");
            None
        }
    }
}

fn target_endpoint() -> Option<dtle_mysql::Endpoint> {
    let port = server_env("DTLE_TEST_DST_PORT", "tests/mariadb.sh up; eval \"$(tests/mariadb.sh env)\"")?;
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    Some(dtle_mysql::Endpoint {
        host: env("DTLE_TEST_HOST", "127.0.0.1"),
        port: port.parse().expect("DTLE_TEST_DST_PORT is a port"),
        user: env("DTLE_TEST_USER", "dtle"),
        password: env("DTLE_TEST_PASSWORD", "dtle"),
        role: dtle_mysql::Role::Target,
        field: "DestConnectionConfig",
    })
}

async fn mysql_sink(endpoint: &dtle_mysql::Endpoint, job: &str) -> super::sink::MysqlSink {
    let opts = dtle_mysql::applier::ApplierOptions::new(job);
    super::sink::MysqlSink { applier: dtle_mysql::applier::Applier::connect(endpoint, opts).await.unwrap() }
}

/// The case every sink goes through: groups become durable with their last position, and what a restarted dest
/// answers a new session (`restarted`: the answer after `pos(5)` was durable).
async fn durable_positions_and_the_answer_after_a_restart(
    first: &mut dyn Sink,
    restart: impl std::future::Future<Output = Box<dyn Sink>>,
    restarted: SessionStart,
) {
    assert_eq!(first.session_start("conf").await.unwrap(), SessionStart::NoPosition, "a new job");
    let mut group = heartbeat(4);
    group.extend(heartbeat(5));
    let durable = first.apply(&group).await.unwrap().wait().await.unwrap();
    assert_eq!(durable, Some(pos(5)), "durable after its last change");
    assert!(first.stats().transactions <= 2);
    first.close().await;
    let mut again = restart.await;
    assert_eq!(again.session_start("conf").await.unwrap(), restarted);
}

#[tokio::test]
async fn mysql_sink_durable_positions_and_the_answer_after_a_restart() {
    let Some(endpoint) = target_endpoint() else { return };
    let job = unique("conf_sink_mysql");
    let mut first = mysql_sink(&endpoint, &job).await;
    first.applier.reset_position().await.unwrap();
    let restart = async { Box::new(mysql_sink(&endpoint, &job).await) as Box<dyn Sink> };
    durable_positions_and_the_answer_after_a_restart(&mut first, restart, SessionStart::Position(pos(5))).await;
    first.applier.reset_position().await.unwrap();
}

#[tokio::test]
async fn mysql_sink_a_new_session_rolls_back_an_open_big_transaction() {
    use dtle_mysql::{RowChange, Transaction, TxEvent, Value};
    let Some(endpoint) = target_endpoint() else { return };
    let job = unique("conf_sink_open");
    let schema = "conf_sink_open";
    let (mut conn, meta) = fresh_table(&endpoint, schema, "id INT PRIMARY KEY").await;
    let mut sink = mysql_sink(&endpoint, &job).await;
    sink.applier.reset_position().await.unwrap();
    assert_eq!(sink.apply(&heartbeat(5)).await.unwrap().wait().await.unwrap(), Some(pos(5)));
    // The first part of a big transaction: its target transaction stays open, nothing is durable yet.
    let part = Transaction {
        gtid: "0-1-6".into(),
        position: pos(5),
        source_timestamp: 0,
        events: vec![TxEvent::Row(RowChange::Insert { table: meta, after: vec![Value::Int(1)] })],
        sources: Vec::new(),
        size: 1,
        partial: true,
        origin: None,
    };
    assert_eq!(sink.apply(&[Change::Tx(part)]).await.unwrap().wait().await.unwrap(), None);
    // The src restarts: the new session continues from the committed position, the open part is rolled back.
    assert_eq!(sink.session_start(&job).await.unwrap(), SessionStart::Position(pos(5)));
    let rows: Option<i64> =
        mysql_async::prelude::Queryable::query_first(&mut conn, format!("SELECT COUNT(*) FROM {schema}.t"))
            .await
            .unwrap();
    assert_eq!(rows, Some(0), "the open part was rolled back");
    sink.applier.reset_position().await.unwrap();
}

/// Regression (issue 12, the 200-fault nats run): big transactions coming back to back. A group that completes one
/// big transaction, holds small ones, and starts the next big one commits everything up to the new one (durable:
/// the last complete transaction's position); the open target transaction holds the new big one only. Before, it
/// all stayed in one open target transaction that grew with every big transaction until a group happened to end
/// between two of them: nothing was durable, and a src restarting meanwhile (an ack timeout on a slow target) had
/// it all rolled back and sent again, so the job stopped moving.
#[tokio::test]
async fn mysql_sink_a_big_transaction_after_complete_ones_commits_them_first() {
    use dtle_mysql::{RowChange, Transaction, TxEvent, Value};
    use mysql_async::prelude::Queryable;
    let Some(endpoint) = target_endpoint() else { return };
    let job = unique("conf_sink_chain");
    let schema = "conf_sink_chain";
    let (mut conn, table) = fresh_table(&endpoint, schema, "id INT PRIMARY KEY").await;
    let tx = |seq: u64, id: i64, partial: bool| {
        Change::Tx(Transaction {
            gtid: format!("0-1-{seq}"),
            // A part carries the position before its transaction; the last part the one after it.
            position: if partial { pos(seq - 1) } else { pos(seq) },
            source_timestamp: 0,
            events: vec![TxEvent::Row(RowChange::Insert { table: table.clone(), after: vec![Value::Int(id)] })],
            sources: Vec::new(),
            size: 1,
            partial,
            origin: None,
        })
    };
    let mut sink = mysql_sink(&endpoint, &job).await;
    sink.applier.reset_position().await.unwrap();
    assert_eq!(sink.apply(&heartbeat(5)).await.unwrap().wait().await.unwrap(), Some(pos(5)));
    // Big transaction 6: its first part.
    assert_eq!(sink.apply(&[tx(6, 1, true)]).await.unwrap().wait().await.unwrap(), None);
    // Its last part, small transaction 7, and the first part of big transaction 8, in one group.
    let group = [tx(6, 2, false), tx(7, 3, false), tx(8, 4, true)];
    assert_eq!(
        sink.apply(&group).await.unwrap().wait().await.unwrap(),
        Some(pos(7)),
        "6 and 7 are committed before 8 opens"
    );
    let rows: Option<u64> = conn.query_first(format!("SELECT COUNT(*) FROM {schema}.t")).await.unwrap();
    assert_eq!(rows, Some(3), "rows 1-3 are committed, row 4 is in the open transaction");
    // A new session rolls back only big transaction 8.
    assert_eq!(sink.session_start(&job).await.unwrap(), SessionStart::Position(pos(7)));
    let rows: Option<u64> = conn.query_first(format!("SELECT COUNT(*) FROM {schema}.t")).await.unwrap();
    assert_eq!(rows, Some(3));
    sink.applier.reset_position().await.unwrap();
}

/// Schema `schema` created afresh on the target with one table `t (columns)`: a connection, and the table's
/// description (same names on both sides).
async fn fresh_table(
    endpoint: &dtle_mysql::Endpoint,
    schema: &str,
    columns: &str,
) -> (mysql_async::Conn, Arc<dtle_mysql::schema::TableMeta>) {
    let mut conn = endpoint.connect(&[]).await.unwrap();
    for sql in [
        format!("DROP DATABASE IF EXISTS {schema}"),
        format!("CREATE DATABASE {schema}"),
        format!("CREATE TABLE {schema}.t ({columns})"),
    ] {
        mysql_async::prelude::Queryable::query_drop(&mut conn, sql).await.unwrap();
    }
    let mut meta = dtle_mysql::schema::load_table_meta(&mut conn, schema, "t").await.unwrap().unwrap();
    meta.target_schema = schema.into();
    meta.target_name = "t".into();
    (conn, Arc::new(meta))
}

/// Where the server's binlog ends now.
async fn binlog_end(conn: &mut mysql_async::Conn) -> (String, u64) {
    let row: mysql_async::Row =
        mysql_async::prelude::Queryable::query_first(conn, "SHOW MASTER STATUS").await.unwrap().expect("binlog on");
    (row.get(0).unwrap(), row.get(1).unwrap())
}

/// Transactions the server wrote to its binlog since `from` that changed rows of `schema` (counted from the binlog,
/// so that tests writing other schemas at the same time do not count).
async fn binlog_commits_on(conn: &mut mysql_async::Conn, from: &(String, u64), schema: &str) -> u64 {
    let events: Vec<mysql_async::Row> =
        mysql_async::prelude::Queryable::query(conn, format!("SHOW BINLOG EVENTS IN '{}' FROM {}", from.0, from.1))
            .await
            .unwrap();
    let (mut commits, mut touched) = (0, false);
    for event in events {
        let kind: String = event.get("Event_type").unwrap();
        let info: String = event.get("Info").unwrap_or_default();
        match kind.as_str() {
            "Gtid" => touched = false,
            "Table_map" if info.contains(&format!("({schema}.")) => touched = true,
            "Xid" if touched => commits += 1,
            _ => {}
        }
    }
    commits
}

/// Regression (issue 18, full copy): consecutive chunks of one table that reach the dest in one group go into one
/// target transaction (one commit — two fsyncs on a durable target — instead of one per chunk), each with its
/// progress row, so a resumed copy sees the same chunks.
#[tokio::test]
async fn mysql_sink_chunks_of_one_table_in_a_group_share_one_target_transaction() {
    use dtle_mysql::Value;
    use mysql_async::prelude::Queryable;
    let Some(endpoint) = target_endpoint() else { return };
    let job = unique("conf_sink_chunks");
    let schema = "conf_sink_chunks";
    let (mut conn, table) = fresh_table(&endpoint, schema, "id INT PRIMARY KEY, v VARCHAR(20)").await;
    let mut sink = mysql_sink(&endpoint, &job).await;
    sink.applier.reset_position().await.unwrap();
    let start =
        Change::SnapshotStart { position: pos(5), tables: vec![table.clone()], estimated_rows: 500, resume_from: None };
    sink.apply(&[start]).await.unwrap().wait().await.unwrap();
    let from = binlog_end(&mut conn).await;
    let chunks: Vec<Change> = (0..10)
        .map(|c| Change::SnapshotRows {
            table: table.clone(),
            rows: (0..50)
                .map(|i| vec![Value::Int(c * 50 + i + 1), Value::Bytes(format!("r{i}").into_bytes())])
                .collect(),
        })
        .collect();
    sink.apply(&chunks).await.unwrap();
    sink.apply(&[Change::SnapshotTableDone { table: table.clone() }]).await.unwrap();
    let commits = binlog_commits_on(&mut conn, &from, schema).await;
    let rows: Option<u64> = conn.query_first(format!("SELECT COUNT(*) FROM {schema}.t")).await.unwrap();
    assert_eq!(rows, Some(500));
    let progress: Vec<(u64, u64)> = conn
        .query(format!(
            "SELECT chunk, rows_copied FROM dtle.snapshot_progress WHERE job_name = '{job}' AND rows_copied > 0 ORDER BY chunk"
        ))
        .await
        .unwrap();
    assert_eq!(progress, (0..10).map(|c| (c, 50)).collect::<Vec<_>>(), "one progress row per chunk");
    // The ten chunks and the table's end marker: two commits, not one per chunk.
    assert!(commits <= 2, "{commits} target commits for 10 chunks in one group and the end marker");
    sink.apply(&[Change::SnapshotDone { position: pos(6) }]).await.unwrap().wait().await.unwrap();
    sink.applier.reset_position().await.unwrap();
}

/// A source transaction of `changes` ending at `pos(seq)`.
fn row_tx(seq: u64, changes: Vec<dtle_mysql::RowChange>) -> Change {
    Change::Tx(dtle_mysql::Transaction {
        gtid: format!("0-1-{seq}"),
        position: pos(seq),
        source_timestamp: 0,
        events: changes.into_iter().map(dtle_mysql::TxEvent::Row).collect(),
        sources: Vec::new(),
        size: 1,
        partial: false,
        origin: None,
    })
}

/// `(id, v)` rows of `schema.t`, by id.
async fn id_v_rows(conn: &mut mysql_async::Conn, schema: &str) -> Vec<(i64, String)> {
    mysql_async::prelude::Queryable::query(conn, format!("SELECT id, v FROM {schema}.t ORDER BY id")).await.unwrap()
}

/// A row `(id, v)` of the net-effect tests' tables.
fn id_v(id: i64, v: &str) -> Vec<dtle_mysql::Value> {
    vec![dtle_mysql::Value::Int(id), dtle_mysql::Value::Bytes(v.as_bytes().to_vec())]
}

/// Row `id` of `table` changing its `v` from `from` to `to`.
fn update_v(table: &Arc<dtle_mysql::schema::TableMeta>, id: i64, from: &str, to: &str) -> dtle_mysql::RowChange {
    dtle_mysql::RowChange::Update { table: table.clone(), before: id_v(id, from), after: id_v(id, to) }
}

/// Issue 18 (catch-up): a group on a table whose primary key is its only unique index goes as its net effect per
/// row — a few multi-row statements — and ends exactly as statement by statement would: a key changed twice, a key
/// deleted and inserted again, a key changed and changed back (the server would count its upsert like an insert:
/// written as an update), a new key.
#[tokio::test]
async fn mysql_sink_a_group_goes_as_its_net_effect_per_row() {
    use dtle_mysql::RowChange;
    use mysql_async::prelude::Queryable;
    let Some(endpoint) = target_endpoint() else { return };
    let job = unique("conf_sink_net");
    let schema = "conf_sink_net";
    let (mut conn, t) = fresh_table(&endpoint, schema, "id INT PRIMARY KEY, v VARCHAR(20), KEY v (v)").await;
    conn.query_drop(format!("INSERT INTO {schema}.t VALUES (1,'a'),(2,'a'),(3,'a'),(4,'a'),(5,'a')")).await.unwrap();
    let (row, upd) = (id_v, |id, from, to| update_v(&t, id, from, to));
    let mut sink = mysql_sink(&endpoint, &job).await;
    sink.applier.reset_position().await.unwrap();
    let group = [
        row_tx(6, vec![upd(1, "a", "b"), upd(2, "a", "b")]),
        row_tx(7, vec![RowChange::Delete { table: t.clone(), before: row(3, "a") }]),
        row_tx(8, vec![RowChange::Insert { table: t.clone(), after: row(3, "n") }, upd(1, "b", "c")]),
        row_tx(9, vec![upd(4, "a", "z"), RowChange::Insert { table: t.clone(), after: row(6, "new") }]),
        row_tx(10, vec![upd(4, "z", "a"), RowChange::Delete { table: t.clone(), before: row(5, "a") }]),
    ];
    assert_eq!(sink.apply(&group).await.unwrap().wait().await.unwrap(), Some(pos(10)));
    let expected: Vec<(i64, String)> =
        [(1, "c"), (2, "b"), (3, "n"), (4, "a"), (6, "new")].iter().map(|(i, v)| (*i, v.to_string())).collect();
    assert_eq!(id_v_rows(&mut conn, schema).await, expected);
    let st = sink.applier.stats.clone();
    assert_eq!((st.net_effect_groups, st.net_effect_fallbacks), (1, 0), "{st:?}");
    assert_eq!((st.transactions, st.row_changes, st.target_commits), (5, 9, 1), "{st:?}");
    sink.applier.reset_position().await.unwrap();
}

/// Issue 18: string keys too, by their bytes: a key deleted and one equal to it under the column's collation
/// inserted in the same group (`abc` then `ABC`) are two rows, and the delete is written first.
#[tokio::test]
async fn mysql_sink_a_net_effect_group_with_string_keys_equal_under_the_collation() {
    use dtle_mysql::{RowChange, Value};
    use mysql_async::prelude::Queryable;
    let Some(endpoint) = target_endpoint() else { return };
    let job = unique("conf_sink_net_str");
    let schema = "conf_sink_net_str";
    let (mut conn, t) =
        fresh_table(&endpoint, schema, "k VARCHAR(20) COLLATE utf8mb4_general_ci PRIMARY KEY, v INT").await;
    conn.query_drop(format!("INSERT INTO {schema}.t VALUES ('abc', 0), ('x', 0)")).await.unwrap();
    let row = |k: &str, v: i64| vec![Value::Bytes(k.as_bytes().to_vec()), Value::Int(v)];
    let mut sink = mysql_sink(&endpoint, &job).await;
    sink.applier.reset_position().await.unwrap();
    let group = [
        row_tx(6, vec![RowChange::Update { table: t.clone(), before: row("abc", 0), after: row("abc", 1) }]),
        row_tx(7, vec![RowChange::Delete { table: t.clone(), before: row("abc", 1) }]),
        row_tx(8, vec![RowChange::Insert { table: t.clone(), after: row("ABC", 2) }]),
        row_tx(9, vec![RowChange::Update { table: t.clone(), before: row("x", 0), after: row("x", 3) }]),
    ];
    assert_eq!(sink.apply(&group).await.unwrap().wait().await.unwrap(), Some(pos(9)));
    let rows: Vec<(String, i64)> =
        conn.query(format!("SELECT CAST(k AS BINARY), v FROM {schema}.t ORDER BY k")).await.unwrap();
    assert_eq!(rows, vec![("ABC".to_string(), 2), ("x".to_string(), 3)]);
    let st = sink.applier.stats.clone();
    assert_eq!((st.net_effect_groups, st.net_effect_fallbacks), (1, 0), "{st:?}");
    sink.applier.reset_position().await.unwrap();
}

/// Issue 18: a net-effect group keeps every row's check. A row missing on the target fails the group; it is written
/// again statement by statement, whose error names the row, and nothing of the group stays.
#[tokio::test]
async fn mysql_sink_a_net_effect_group_that_misses_a_row_fails_naming_it_and_writes_nothing() {
    use dtle_mysql::RowChange;
    use mysql_async::prelude::Queryable;
    let Some(endpoint) = target_endpoint() else { return };
    let job = unique("conf_sink_net_miss");
    let schema = "conf_sink_net_miss";
    let (mut conn, t) = fresh_table(&endpoint, schema, "id INT PRIMARY KEY, v VARCHAR(20)").await;
    conn.query_drop(format!("INSERT INTO {schema}.t VALUES (1,'a'),(2,'a')")).await.unwrap();
    let (row, upd) = (id_v, |id, from, to| update_v(&t, id, from, to));
    let mut sink = mysql_sink(&endpoint, &job).await;
    sink.applier.reset_position().await.unwrap();
    assert_eq!(sink.apply(&heartbeat(5)).await.unwrap().wait().await.unwrap(), Some(pos(5)));
    // What statement by statement says: the row of an update, the statement of a delete, the server's duplicate.
    for (what, says, group) in [
        (
            "an update of a missing row",
            "updating the row (id=9)",
            vec![row_tx(6, vec![upd(1, "a", "b")]), row_tx(7, vec![upd(9, "a", "b")])],
        ),
        (
            "a delete of a missing row",
            "deleting by key 1 row(s)",
            vec![row_tx(6, vec![upd(1, "a", "b"), RowChange::Delete { table: t.clone(), before: row(9, "a") }])],
        ),
        (
            "an insert of a row that is there",
            "Duplicate entry '2'",
            vec![row_tx(6, vec![upd(1, "a", "b"), RowChange::Insert { table: t.clone(), after: row(2, "x") }])],
        ),
    ] {
        let fallbacks = sink.applier.stats.net_effect_fallbacks;
        let err = match sink.apply(&group).await {
            Ok(durable) => durable.wait().await.expect_err(what),
            Err(e) => e,
        }
        .to_string();
        assert!(err.contains(says) && err.contains("conf_sink_net_miss"), "{what}: {err}");
        assert_eq!(sink.applier.stats.net_effect_fallbacks, fallbacks + 1, "{what}");
        let expected: Vec<(i64, String)> = vec![(1, "a".into()), (2, "a".into())];
        assert_eq!(id_v_rows(&mut conn, schema).await, expected, "{what}: nothing of the group stays");
        assert_eq!(sink.session_start(&job).await.unwrap(), SessionStart::Position(pos(5)), "{what}");
        // The table is written statement by statement after a failure; a fresh applier tries again.
        sink = mysql_sink(&endpoint, &job).await;
    }
    sink.applier.reset_position().await.unwrap();
}

/// Issue 18: tables whose rows do not depend on their key alone — another unique index, a trigger — are written
/// statement by statement, in source order (a unique value moving between rows needs that order).
#[tokio::test]
async fn mysql_sink_tables_with_another_unique_index_or_a_trigger_go_statement_by_statement() {
    use mysql_async::prelude::Queryable;
    let Some(endpoint) = target_endpoint() else { return };
    for (case, extra) in [("unique", "UNIQUE KEY v (v)"), ("trigger", "KEY v (v)")] {
        let job = unique(&format!("conf_sink_net_{case}"));
        let schema = format!("conf_sink_net_{case}");
        let (mut conn, t) =
            fresh_table(&endpoint, &schema, &format!("id INT PRIMARY KEY, v VARCHAR(20), {extra}")).await;
        if case == "trigger" {
            conn.query_drop(format!(
                "CREATE TRIGGER {schema}.t_bi BEFORE UPDATE ON {schema}.t FOR EACH ROW SET NEW.v = NEW.v"
            ))
            .await
            .unwrap();
        }
        conn.query_drop(format!("INSERT INTO {schema}.t VALUES (1,'a'),(2,'b')")).await.unwrap();
        let upd = |id, from, to| update_v(&t, id, from, to);
        let mut sink = mysql_sink(&endpoint, &job).await;
        sink.applier.reset_position().await.unwrap();
        // The value 'a' moves from row 1 to row 2: fine in source order, a duplicate in any other.
        let group = [row_tx(6, vec![upd(1, "a", "c")]), row_tx(7, vec![upd(2, "b", "a")])];
        assert_eq!(sink.apply(&group).await.unwrap().wait().await.unwrap(), Some(pos(7)), "{case}");
        let expected: Vec<(i64, String)> = vec![(1, "c".into()), (2, "a".into())];
        assert_eq!(id_v_rows(&mut conn, &schema).await, expected, "{case}");
        let st = sink.applier.stats.clone();
        assert_eq!((st.net_effect_groups, st.net_effect_fallbacks), (0, 0), "{case}: {st:?}");
        sink.applier.reset_position().await.unwrap();
    }
}

/// Issue 18: in a group that also writes a table outside the rule (here one whose unique value moves between rows,
/// which needs source order), the table that allows it is still reduced; the other keeps its order.
#[tokio::test]
async fn mysql_sink_a_group_mixing_tables_reduces_the_ones_that_allow_it() {
    use mysql_async::prelude::Queryable;
    let Some(endpoint) = target_endpoint() else { return };
    let job = unique("conf_sink_net_mix");
    let schema = "conf_sink_net_mix";
    let (mut conn, t) = fresh_table(&endpoint, schema, "id INT PRIMARY KEY, v VARCHAR(20)").await;
    conn.query_drop(format!("CREATE TABLE {schema}.u (id INT PRIMARY KEY, v VARCHAR(20), UNIQUE KEY v (v))"))
        .await
        .unwrap();
    conn.query_drop(format!(
        "INSERT INTO {schema}.t VALUES (1,'a'),(2,'b'); INSERT INTO {schema}.u VALUES (1,'a'),(2,'b')"
    ))
    .await
    .unwrap();
    let mut u = dtle_mysql::schema::load_table_meta(&mut conn, schema, "u").await.unwrap().unwrap();
    u.target_schema = schema.into();
    u.target_name = "u".into();
    let u = Arc::new(u);
    let upd = update_v;
    let mut sink = mysql_sink(&endpoint, &job).await;
    sink.applier.reset_position().await.unwrap();
    let group = [
        row_tx(6, vec![upd(&u, 1, "a", "c"), upd(&t, 1, "a", "x")]),
        row_tx(7, vec![upd(&t, 2, "b", "y"), upd(&u, 2, "b", "a")]),
        row_tx(8, vec![upd(&t, 1, "x", "z")]),
    ];
    assert_eq!(sink.apply(&group).await.unwrap().wait().await.unwrap(), Some(pos(8)));
    let t_rows: Vec<(i64, String)> = vec![(1, "z".into()), (2, "y".into())];
    assert_eq!(id_v_rows(&mut conn, schema).await, t_rows);
    let u_rows: Vec<(i64, String)> = conn.query(format!("SELECT id, v FROM {schema}.u ORDER BY id")).await.unwrap();
    assert_eq!(u_rows, vec![(1, "c".to_string()), (2, "a".to_string())]);
    let st = sink.applier.stats.clone();
    assert_eq!((st.net_effect_groups, st.net_effect_fallbacks, st.row_changes), (1, 0, 5), "{st:?}");
    sink.applier.reset_position().await.unwrap();
}

/// The target's foreign-key links are read once (per start or DDL) for every table: both ends of a link count,
/// names compare without case, and a table without one is not linked.
#[tokio::test]
async fn foreign_key_links_name_both_ends_of_a_link() {
    use mysql_async::prelude::Queryable;
    let Some(endpoint) = target_endpoint() else { return };
    let schema = "conf_fk_links";
    let (mut conn, _) = fresh_table(&endpoint, schema, "id INT PRIMARY KEY").await;
    conn.query_drop(format!(
        "CREATE TABLE {schema}.child (id INT PRIMARY KEY, t_id INT, FOREIGN KEY (t_id) REFERENCES {schema}.t (id)); \
         CREATE TABLE {schema}.alone (id INT PRIMARY KEY)"
    ))
    .await
    .unwrap();
    let links = dtle_mysql::schema::ForeignKeyLinks::load(&mut conn).await.unwrap();
    assert!(links.links(schema, "t"), "the referenced table");
    assert!(links.links(schema, "CHILD"), "the referencing table, any case");
    assert!(!links.links(schema, "alone"));
}

#[tokio::test]
async fn kafka_sink_durable_positions_and_the_answer_after_a_restart() {
    let Some(brokers) = server_env("DTLE_TEST_KAFKA", "tests/kafka.sh start; eval \"$(tests/kafka.sh env)\"") else {
        return;
    };
    let conn = serde_json::json!({ "Host": "127.0.0.1", "Port": 1, "User": "u", "Password": "p" });
    let text = serde_json::json!({ "Job": { "ID": unique("conf_sink_kafka"), "TaskGroups": [
        { "Name": "src", "Tasks": [{ "Name": "src", "Driver": "dtle", "Config": { "SrcConnectionConfig": conn } }] },
        { "Name": "dest", "Tasks": [{ "Name": "dest", "Driver": "dtle", "Config": {
            "KafkaConfig": { "Topic": unique("conf_sink_kafka"), "Brokers": [brokers] } } }] }
    ] } });
    let job = crate::config::parse_job_str(&text.to_string(), crate::config::JobFormat::Json)
        .and_then(|f| f.resolve())
        .unwrap_or_else(|e| panic!("{e}"));
    let crate::config::TargetConfig::Kafka(k) = job.target.clone() else { panic!("a Kafka job") };
    let mut first = super::sink::KafkaTarget::connect(&job, &k).await.unwrap();
    let restart = async { Box::new(super::sink::KafkaTarget::connect(&job, &k).await.unwrap()) as Box<dyn Sink> };
    // Kafka keeps no position: a restarted dest answers NoPosition and the src resumes from the position store.
    durable_positions_and_the_answer_after_a_restart(&mut first, restart, SessionStart::NoPosition).await;
}
