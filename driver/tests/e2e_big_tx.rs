//! Big source transactions are sent and applied in parts (memory bounded by the part size) and still commit on the
//! target as one transaction with their position: exactly once across a kill -9 in the middle, in process and
//! over NATS; a target that dies or hangs under them, or a source that hangs, is reconnected, never waited for in
//! silence.

mod common;

use std::time::Duration;

use common::*;

/// One source transaction of `rows` inserts plus updates and deletes of earlier rows, ~100 bytes a row.
async fn big_transaction(src: &mut mysql_async::Conn, schema: &str, first_id: u64, rows: u64) {
    exec(
        src,
        &format!(
            "START TRANSACTION;\
             INSERT INTO {schema}.t (id, v, pad) SELECT {first_id} + seq, seq, REPEAT(CHAR(65 + seq % 26), 90) FROM {schema}.seq_0_to_{};\
             UPDATE {schema}.t SET v = v + 1 WHERE id % 7 = 0;\
             DELETE FROM {schema}.t WHERE id % 11 = 0;\
             COMMIT",
            rows - 1
        ),
    )
    .await;
}

async fn run_case(ctx: &Ctx, schema: &str, job_name: &str, extra_args: &[&str]) {
    let s = &ctx.s;
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.t (id BIGINT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(100))")).await;
    // DumpEntryLimit is dtle's size for splitting big transactions: 64 KiB parts here.
    let job = ctx.job(
        "job.hcl",
        job_name,
        s.src,
        s.dst,
        &format!("{}\nGtid = \"\"\nDumpEntryLimit = 65536", replicate_schema(schema)),
    );
    let mut dtle = Dtle::run_with(ctx.path(), &job, "dtle1.log", "data", extra_args);
    let table = format!("{schema}.t");
    // Wait for the (empty) full copy to finish: the job's position row reaches the incremental stage.
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;

    // ~5 MB of row data in one transaction: about 80 parts.
    big_transaction(&mut src, schema, 1, 50_000).await;
    // Kill while it is being applied (or just after: either way nothing may be lost or doubled).
    let w = Waiter::new("the target starts receiving the big transaction").with_limit(Duration::from_secs(30));
    while query_u64(&mut dst, "SELECT COUNT(*) FROM information_schema.INNODB_TRX").await == 0 && !w.expired() {
        if count_if_exists(&mut dst, &table).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    dtle.kill9();
    drop(dtle);
    // Rows of a transaction in progress are never visible on the target: all of it or none of it.
    let visible = count_if_exists(&mut dst, &table).await;
    println!("after kill -9: {visible} rows visible on the target");
    let expected_after_first = query_u64(&mut src, &format!("SELECT COUNT(*) FROM {table}")).await;
    assert!(visible == 0 || visible == expected_after_first, "a partly applied transaction became visible: {visible}");

    let mut dtle = Dtle::run_with(ctx.path(), &job, "dtle2.log", "data", extra_args);
    big_transaction(&mut src, schema, 100_001, 30_000).await;
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    assert_tables_equal(&mut src, &mut dst, &table, Some("id")).await;
    dtle.stop_cleanly().await;
    let log = read_log(&ctx.path().join("dtle2.log"));
    assert!(
        log.contains("big transaction: sending it in parts"),
        "the big transaction was not split: {}",
        tail(&log, 20)
    );
}

#[tokio::test]
async fn big_transactions_in_parts_survive_kill9_in_process() {
    let Some(ctx) = Ctx::new("big_tx").await else {
        return;
    };
    run_case(&ctx, "e2e_big_tx", "e2e_big_tx", &[]).await;
}

#[tokio::test]
async fn big_transactions_in_parts_survive_kill9_over_nats() {
    let Some(url) = nats_url() else {
        return;
    };
    let Some(ctx) = Ctx::new("big_tx_nats").await else {
        return;
    };
    run_case(&ctx, "e2e_big_tx_nats", "e2e_big_tx_nats", &["--transport", "nats", "--nats", &url]).await;
}

/// Waits until the target has an open transaction that already modified `min_rows` rows (the dest is inside a big
/// transaction).
async fn wait_open_target_transaction(dst: &mut mysql_async::Conn, min_rows: u64, dtles: &mut [&mut Dtle]) {
    let w =
        Waiter::new(format!("the dest is inside the big transaction (an open target transaction, {min_rows} rows)"));
    loop {
        let modified =
            query_u64(dst, "SELECT COALESCE(MAX(trx_rows_modified), 0) FROM information_schema.INNODB_TRX").await;
        if modified >= min_rows {
            return;
        }
        w.note(format!("rows modified by open transactions: {modified}"));
        w.tick_all(dtles).await;
    }
}

async fn keyed_and_keyless_tables(src: &mut mysql_async::Conn, schema: &str) {
    exec(src, &format!("CREATE TABLE {schema}.t (id BIGINT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(100))")).await;
    exec(src, &format!("CREATE TABLE {schema}.n (id BIGINT, pad VARCHAR(100))")).await;
}

/// One source transaction filling both tables with `rows` rows each (~100 bytes a row).
async fn big_insert_both(src: &mut mysql_async::Conn, schema: &str, first_id: u64, rows: u64) {
    exec(
        src,
        &format!(
            "START TRANSACTION;\
             INSERT INTO {schema}.t (id, v, pad) SELECT {first_id} + seq, seq, REPEAT('x', 90) FROM {schema}.seq_0_to_{last};\
             INSERT INTO {schema}.n (id, pad) SELECT {first_id} + seq, REPEAT('y', 90) FROM {schema}.seq_0_to_{last};\
             COMMIT",
            last = rows - 1
        ),
    )
    .await;
}

/// A fresh keyed + keyless table pair on the source, the job's target (on `dst_port`) emptied, and a job file with
/// 64 KiB parts; returns the source and target connections and the job file.
async fn big_tx_job(
    ctx: &Ctx,
    schema: &str,
    job_name: &str,
    dst_port: u16,
) -> (mysql_async::Conn, mysql_async::Conn, std::path::PathBuf) {
    let s = &ctx.s;
    let mut src = s.src_conn().await;
    let mut dst = s.conn(dst_port).await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    keyed_and_keyless_tables(&mut src, schema).await;
    let config = format!("{}\nGtid = \"\"\nDumpEntryLimit = 65536", replicate_schema(schema));
    let job = ctx.job("job.hcl", job_name, s.src, dst_port, &config);
    (src, dst, job)
}

/// Both tables of [`keyed_and_keyless_tables`] equal on source and target: nothing lost, nothing doubled.
async fn assert_both_tables_equal(src: &mut mysql_async::Conn, dst: &mut mysql_async::Conn, schema: &str) {
    assert_tables_equal(src, dst, &format!("{schema}.t"), Some("id")).await;
    assert_tables_equal(src, dst, &format!("{schema}.n"), None).await;
}

/// Regression (issue 12, defect 1): a src killed while the dest is inside a big transaction, then restarted. The new
/// session is answered from the committed position and sends the transaction again; the dest used to append it to
/// the old session's still-open target transaction (keyless table: rows doubled silently; keyed table: a false
/// "Duplicate entry" conflict). The dest must roll the old transaction back first.
#[tokio::test]
async fn a_src_restarted_inside_a_big_transaction_does_not_continue_the_old_target_transaction() {
    let Some(url) = nats_url() else {
        return;
    };
    let Some(ctx) = Ctx::new("big_tx_src_restart").await else {
        return;
    };
    let (schema, job_name) = ("e2e_big_tx_src_restart", "e2e_big_tx_src_restart");
    let s = &ctx.s;
    let (mut src, mut dst, job) = big_tx_job(&ctx, schema, job_name, s.dst).await;
    let nats = ["--transport", "nats", "--nats", url.as_str()];
    let only = |role: &'static str| -> Vec<&str> {
        let mut args = nats.to_vec();
        args.extend(["--only", role]);
        args
    };
    let mut dest = Dtle::run_with(ctx.path(), &job, "dest.log", "data-dest", &only("dest"));
    let mut srcp = Dtle::run_with(ctx.path(), &job, "src1.log", "data-src", &only("src"));
    wait_caught_up_all(s, &mut dst, job_name, &mut [&mut srcp, &mut dest]).await;

    big_insert_both(&mut src, schema, 1, 150_000).await;
    wait_open_target_transaction(&mut dst, 1, &mut [&mut srcp, &mut dest]).await;
    srcp.kill9();
    drop(srcp);
    let mut srcp = Dtle::run_with(ctx.path(), &job, "src2.log", "data-src", &only("src"));
    wait_caught_up_all(s, &mut dst, job_name, &mut [&mut srcp, &mut dest]).await;
    assert_both_tables_equal(&mut src, &mut dst, schema).await;
    srcp.stop_cleanly().await;
    dest.stop_cleanly().await;
}

/// The pid of the mariadbd of a `tests/mariadb.sh` instance.
fn mariadb_instance_pid(name: &str) -> u32 {
    let dir = std::env::var("DTLE_TEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("tests").join(".run"));
    let file = dir.join(name).join("mariadbd.pid");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.trim().parse().unwrap_or_else(|_| panic!("{}: not a pid: {text:?}", file.display()))
}

/// Regression (issue 12, defect 2): the target's mariadbd killed with -9 while a big transaction is applied in parts,
/// then started again. dtle used to stop silently for good (the dest failed on a full window and the src stayed
/// parked on it); it must reconnect, say so, and apply the transaction again from the committed position.
#[tokio::test]
async fn a_target_killed_inside_a_big_transaction_is_reconnected_and_the_transaction_redone() {
    let Some(ctx) = Ctx::new("big_tx_target_kill").await else {
        return;
    };
    // A target of its own: killing the shared one would disturb the other tests.
    let (instance, port) = ("e2e_target_kill", 3328u16);
    run_script("mariadb.sh", &["start", instance, &port.to_string(), "28"]).await;
    let (schema, job_name) = ("e2e_big_tx_target_kill", "e2e_big_tx_target_kill");
    let s = &ctx.s;
    let (mut src, mut dst, job) = big_tx_job(&ctx, schema, job_name, port).await;
    let mut dtle = Dtle::run_with(ctx.path(), &job, "dtle.log", "data", &[]);
    wait_caught_up_all(s, &mut dst, job_name, &mut [&mut dtle]).await;

    big_insert_both(&mut src, schema, 1, 300_000).await;
    wait_open_target_transaction(&mut dst, 200_000, &mut [&mut dtle]).await;
    let pid = mariadb_instance_pid(instance);
    let killed = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().expect("run kill");
    assert!(killed.success(), "kill -9 {pid}");
    drop(dst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    run_script("mariadb.sh", &["start", instance, &port.to_string(), "28"]).await;

    let mut dst = s.conn(port).await;
    wait_caught_up_all(s, &mut dst, job_name, &mut [&mut dtle]).await;
    assert_both_tables_equal(&mut src, &mut dst, schema).await;
    dtle.stop_cleanly().await;
    let log = dtle.log_text();
    assert!(log.contains("transient failure; restarting from the target's position"), "{}", tail(&log, 30));
}

/// A target that stops answering (its mariadbd stopped with SIGSTOP: a hung server or a network black hole) while
/// changes are applied: the apply watchdog abandons the stuck apply after `WatchdogTimeout`, says so, and the task
/// restarts from the target's position once the server answers again.
#[tokio::test]
async fn a_hung_target_trips_the_watchdog_and_the_job_resumes_when_it_answers() {
    let Some(ctx) = Ctx::new("watchdog_hung_target").await else {
        return;
    };
    let (instance, port) = ("e2e_target_hang", 3326u16);
    run_script("mariadb.sh", &["start", instance, &port.to_string(), "26"]).await;
    let (schema, job_name) = ("e2e_watchdog_hung_target", "e2e_watchdog_hung_target");
    let s = &ctx.s;
    let mut src = s.src_conn().await;
    let mut dst = s.conn(port).await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    create_load_tables(&mut src, schema).await;
    let job = ctx.job(
        "job.hcl",
        job_name,
        s.src,
        port,
        &format!("{}\nGtid = \"\"\nWatchdogTimeout = 3", replicate_schema(schema)),
    );
    let mut dtle = Dtle::run_with(ctx.path(), &job, "dtle.log", "data", &[]);
    let mut load = Load::start(s, schema);
    load.wait_progress(100, &mut [&mut dtle]).await;
    wait_position_moves(&mut dst, job_name, 3, &mut [&mut dtle]).await;
    drop(dst);

    let stopped = StoppedServer::stop(instance);
    let w = Waiter::new("the watchdog abandons the stuck apply").with_limit(Duration::from_secs(30));
    while !dtle.log_text().contains("watchdog: an apply on the target made no progress") {
        w.tick_all(&mut [&mut dtle]).await;
    }
    load.wait_progress(50, &mut [&mut dtle]).await;
    drop(stopped);
    load.stop().await;

    let mut dst = s.conn(port).await;
    wait_caught_up_all(s, &mut dst, job_name, &mut [&mut dtle]).await;
    assert_load_tables_equal(&mut src, &mut dst, schema).await;
    dtle.stop_cleanly().await;
    let log = dtle.log_text();
    assert!(log.contains("WatchdogTimeout"), "the restart names the setting: {}", tail(&log, 30));
}

/// A `tests/mariadb.sh` instance stopped with SIGSTOP (it keeps its connections open and answers nothing); resumed
/// with SIGCONT when dropped, also when the test fails.
struct StoppedServer {
    pid: String,
}

impl StoppedServer {
    fn stop(instance: &str) -> StoppedServer {
        let pid = mariadb_instance_pid(instance).to_string();
        let st = std::process::Command::new("kill").args(["-STOP", &pid]).status().expect("run kill");
        assert!(st.success(), "kill -STOP {pid}");
        StoppedServer { pid }
    }
}

impl Drop for StoppedServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-CONT", &self.pid]).status();
    }
}

/// A source that stops answering (SIGSTOP) while the job idles in the binlog: the connection stays open and
/// delivers nothing, not even the heartbeat asked for. dtle notices after the silence limit, says so, and
/// reconnects once the source answers; changes made meanwhile arrive.
#[tokio::test]
async fn a_hung_source_is_noticed_by_its_missing_heartbeats_and_reconnected() {
    let Some(ctx) = Ctx::new("hung_source").await else {
        return;
    };
    let (instance, port) = ("e2e_source_hang", 3325u16);
    run_script("mariadb.sh", &["start", instance, &port.to_string(), "25"]).await;
    let (schema, job_name) = ("e2e_hung_source", "e2e_hung_source");
    let s = Servers { src: port, ..ctx.s.clone() };
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    create_load_tables(&mut src, schema).await;
    let job = ctx.job("job.hcl", job_name, port, s.dst, &format!("{}\nGtid = \"\"", replicate_schema(schema)));
    let mut dtle = Dtle::run_with(ctx.path(), &job, "dtle.log", "data", &[]);
    wait_caught_up_all(&s, &mut dst, job_name, &mut [&mut dtle]).await;
    drop(src);

    let stopped = StoppedServer::stop(instance);
    let limit = Duration::from_secs(50);
    let w = Waiter::new("dtle notices the silent source").with_limit(limit);
    while !dtle.log_text().contains("not even its heartbeat") {
        w.tick_all(&mut [&mut dtle]).await;
    }
    drop(stopped);

    let mut src = s.src_conn().await;
    exec(&mut src, &format!("UPDATE {schema}.tk SET v = v + 1000 WHERE id < 50")).await;
    wait_caught_up_all(&s, &mut dst, job_name, &mut [&mut dtle]).await;
    assert_load_tables_equal(&mut src, &mut dst, schema).await;
    dtle.stop_cleanly().await;
}
