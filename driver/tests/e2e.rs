//! End-to-end tests: the `dtle` binary against real MariaDB servers (`tests/mariadb.sh up`).
//!
//! Each test owns its schema and job names, so the tests can run in parallel against the same servers:
//!   cargo test -p dtle --test e2e -- --test-threads=2 --nocapture
//! Without servers the tests print "skipping: ..." and pass, unless DTLE_TEST_REQUIRE_SERVERS=1.

mod common;

use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use mysql_async::Conn;

/// Waits until the job's position row on the target has changed `times` times (in the incremental stage).
async fn wait_position_changes(dst: &mut Conn, job: &str, times: usize, dtle: &mut Dtle) {
    let w = Waiter::new(format!("the position of {job} changes {times} times"));
    let mut last: Option<String> = None;
    let mut changes = 0;
    loop {
        if let Some(p) = position_row(dst, job).await {
            if p.stage == "job_stage_incr" {
                if last.as_deref().is_some_and(|l| l != p.gtid_set) {
                    changes += 1;
                    if changes >= times {
                        return;
                    }
                }
                last = Some(p.gtid_set.clone());
            }
            w.note(format!("{changes} changes so far, position {p:?}"));
        }
        w.tick(Some(dtle)).await;
    }
}

/// Waits until the full copy is over (the position row says `job_stage_incr`).
async fn wait_stage_incr(dst: &mut Conn, job: &str, dtle: &mut Dtle) {
    let w = Waiter::new(format!("the position of {job} reaches job_stage_incr"));
    loop {
        let p = position_row(dst, job).await;
        if p.as_ref().is_some_and(|p| p.stage == "job_stage_incr") {
            return;
        }
        w.note(format!("{p:?}"));
        w.tick(Some(dtle)).await;
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_to_one_flow() {
    let Some(ctx) = Ctx::new("one_to_one").await else {
        return;
    };
    let (schema, job_name) = ("e2e_one_to_one", "e2e_one_to_one");
    let table = format!("{schema}.t1");
    let mut src = ctx.s.src_conn().await;
    let mut dst = ctx.s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    exec(&mut src, &format!("CREATE TABLE {table} (id INT PRIMARY KEY, val VARCHAR(20))")).await;
    exec(&mut src, &format!("INSERT INTO {table} VALUES (1, 'one'), (2, 'two'), (3, 'three')")).await;

    let job = ctx.job(
        "job.hcl",
        job_name,
        ctx.s.src,
        ctx.s.dst,
        &format!("{}\nGtid = \"\"\nChunkSize = 2000", replicate_schema(schema)),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);

    let w = Waiter::new(format!("{table} has 3 rows on the target"));
    loop {
        let n = count_if_exists(&mut dst, &table).await;
        if n == 3 {
            break;
        }
        w.note(format!("{n} rows"));
        w.tick(Some(&mut dtle)).await;
    }
    assert_tables_equal(&mut src, &mut dst, &table, Some("id")).await;

    exec(&mut src, &format!("INSERT INTO {table} VALUES (7, 'seven'), (8, 'eight'), (9, 'nine')")).await;
    exec(&mut src, &format!("UPDATE {table} SET val = 'uno' WHERE id = 1")).await;
    exec(&mut src, &format!("DELETE FROM {table} WHERE id = 2")).await;
    wait_tables_equal(&mut src, &mut dst, &table, Some("id"), &mut dtle).await;
    let ids = query_raw(&mut dst, &format!("SELECT id, val FROM {table} ORDER BY id")).await;
    assert_eq!(ids.len(), 5, "target rows: {:?}", ids.iter().map(show_row).collect::<Vec<_>>());

    dtle.stop_cleanly().await;
    let p = position_row(&mut dst, job_name).await.expect("a position row on the target after the job");
    assert_eq!(p.stage, "job_stage_incr", "position row: {p:?}");
    assert_eq!(p.flavor.to_ascii_lowercase(), "mariadb", "position row: {p:?}");
    assert!(gtid_seq(&p.gtid_set, 0).is_some(), "position row has no domain-0 GTID: {p:?}");
    // Still equal after the clean stop.
    assert_tables_equal(&mut src, &mut dst, &table, Some("id")).await;
}

// ---------------------------------------------------------------------------------------------

const TYPE_COLUMNS: &str = "id, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, d65, d10, f, dbl, dt, dtm, ts, tm, yr, \
     c_utf, vc_utf, tx_utf, c_lat, vc_lat, tx_lat, c_gbk, vc_gbk, tx_gbk, bn, vbn, bl, en, st, b1, b64, js";

/// One row of each kind for the type matrix table, ids `base + 1 ..= base + 6`.
fn type_rows(base: i32) -> Vec<String> {
    let d65_max = format!("{}.{}", "9".repeat(35), "9".repeat(30));
    let id = |k: i32| base + k;
    vec![
        // 1: maxima
        format!(
            "({}, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615, \
             {d65_max}, 9999999999, 3.40282e38, -1.5e300, \
             '9999-12-31', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', '838:59:59', 2155, \
             '😀中文abc', '𝄞 emoji 😀 CJK 漢字 한국어', REPEAT('😀中', 1000), \
             'éÿ', 'café ÿ Ü ß', REPEAT('é', 5000), \
             '中文', '中文 gbk 测试', REPEAT('中', 3000), \
             0xff00ff00, 0x00ff00ff00, REPEAT(0xff00, 3000), 'c', 'x,y,z', b'1', 0xffffffffffffffff, \
             '{{\"a\": [1, 2.5, {{\"b\": null}}], \"u\": \"中文😀\", \"big\": 18446744073709551615}}')",
            id(1)
        ),
        // 2: minima, zero dates, empty strings
        format!(
            "({}, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, \
             -{d65_max}, -9999999999, -3.40282e38, 1e-300, \
             '0000-00-00', '0000-00-00 00:00:00.000000', '1970-01-01 00:00:01', '-838:59:59.000000', 0, \
             '', '', '', '', '', '', '', '', '', 0x00000000, '', '', 'a', '', b'0', 0, '[]')",
            id(2)
        ),
        // 3: small fractions and odd characters
        format!(
            "({}, 0, 1, -1, 1, -1, 1, -1, 1, -1, 1, \
             -0.000000000000000000000000000001, 0, 1.17549e-38, -2.2250738585072014e-308, \
             '2024-02-29', '2024-02-29 12:34:56.123456', '2024-02-29 12:34:56.500000', '-00:00:00.000001', 1901, \
             'a ', 'trailing space ', 'line\\nbreak\\ttab\\\\ back''quote \"dq\"', 'é', 'naïve façade', 'ÿ', \
             '中', 'gbk中文', '汉字', 0x00ff, 0xff, 0x00, 'b', 'y', b'1', 0x8000000000000001, '\"just a string\"')",
            id(3)
        ),
        // 4: zero timestamp and partial zero dates, middling values
        format!(
            "({}, 42, 200, 1234, 54321, -70000, 70000, 123456789, 3000000000, -1234567890123456789, 12345678901234567890, \
             12345.678900000000000000000000000001, 1234567890, 0.1, 0.1, \
             '2024-00-15', '2024-00-00 00:00:00.000000', '0000-00-00 00:00:00', '00:00:00', 1970, \
             'x', 'mixed ascii', 'text', 'x', 'ÀÁÂÃÄÅ', 'latin', 'x', '混合 text', '文本', \
             0x61626364, 0x00, 0xff, 'a', 'x,z', b'0', 0x0102030405060708, '{{\"k\": \"v\", \"n\": -0.5e-10}}')",
            id(4)
        ),
        // 5: every nullable column NULL
        format!(
            "({}, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
             NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
            id(5)
        ),
        // 6: negative zero-ish and DST-ish timestamps
        format!(
            "({}, -1, 128, -2, 32768, -3, 8388608, -4, 2147483648, -5, 9223372036854775808, \
             -0.5, -1, -0.0, -0.0, \
             '1000-01-01', '1000-01-01 00:00:00.000001', '2021-03-28 02:30:00.000001', '-12:34:56.789', 1999, \
             '  ', '\\0nul byte', '', ' ', 'ÿÿÿ', '', ' ', '', '', \
             '\\0\\0\\0\\0', 0xffffffff, 0x00ffff00, 'c', 'x', b'1', 0x7fffffffffffffff, 'null')",
            id(6)
        ),
    ]
}

async fn prepare_type_session(conn: &mut Conn) {
    exec(conn, "SET NAMES utf8mb4").await;
    exec(conn, "SET SESSION sql_mode = ''").await;
    exec(conn, "SET time_zone = '+00:00'").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_matrix_before_and_after_snapshot() {
    let Some(ctx) = Ctx::new("types").await else {
        return;
    };
    let (schema, job_name) = ("e2e_types", "e2e_types");
    let table = format!("{schema}.t");
    let mut src = ctx.s.src_conn().await;
    let mut dst = ctx.s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    prepare_type_session(&mut src).await;
    exec(
        &mut src,
        &format!(
            "CREATE TABLE {table} (
               id INT NOT NULL PRIMARY KEY,
               ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
               mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
               d65 DECIMAL(65,30), d10 DECIMAL(10,0), f FLOAT, dbl DOUBLE,
               dt DATE, dtm DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, tm TIME(6), yr YEAR,
               c_utf CHAR(10) CHARACTER SET utf8mb4, vc_utf VARCHAR(100) CHARACTER SET utf8mb4, tx_utf TEXT CHARACTER SET utf8mb4,
               c_lat CHAR(10) CHARACTER SET latin1, vc_lat VARCHAR(100) CHARACTER SET latin1, tx_lat TEXT CHARACTER SET latin1,
               c_gbk CHAR(10) CHARACTER SET gbk, vc_gbk VARCHAR(100) CHARACTER SET gbk, tx_gbk TEXT CHARACTER SET gbk,
               bn BINARY(4), vbn VARBINARY(50), bl BLOB,
               en ENUM('a','b','c'), st SET('x','y','z'), b1 BIT(1), b64 BIT(64),
               js JSON,
               gv BIGINT AS (i + 1) VIRTUAL,
               gs VARCHAR(120) CHARACTER SET utf8mb4 AS (CONCAT(vc_utf, '!')) STORED
             ) DEFAULT CHARSET utf8mb4"
        ),
    )
    .await;
    // Before the job: the full-copy path.
    for row in type_rows(0) {
        exec(&mut src, &format!("INSERT INTO {table} ({TYPE_COLUMNS}) VALUES {row}")).await;
    }

    let job = ctx.job(
        "job.hcl",
        job_name,
        ctx.s.src,
        ctx.s.dst,
        &format!("{}\nGtid = \"\"\nChunkSize = 2", replicate_schema(schema)),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);
    wait_tables_equal(&mut src, &mut dst, &table, Some("id"), &mut dtle).await;
    wait_stage_incr(&mut dst, job_name, &mut dtle).await;

    // While streaming: the binlog path, inserts then updates and deletes.
    prepare_type_session(&mut src).await;
    for row in type_rows(100) {
        exec(&mut src, &format!("INSERT INTO {table} ({TYPE_COLUMNS}) VALUES {row}")).await;
    }
    let updates = [
        // NULL -> values, values -> NULL, values -> other values, extremes swapped.
        format!("UPDATE {table} SET i = 42, vc_lat = 'ÿé', bl = 0x00, b64 = b'1', ts = '2000-01-01 00:00:00', js = '{{}}', en = 'b' WHERE id IN (5, 105)"),
        format!("UPDATE {table} SET d65 = NULL, dt = NULL, tx_gbk = NULL, b1 = NULL, st = NULL WHERE id IN (2, 102)"),
        format!("UPDATE {table} SET ti = ti - 1, biu = biu - 1, vc_utf = 'updated 😀', dtm = '2001-02-03 04:05:06.7', tm = '-838:59:58.999999' WHERE id IN (1, 101)"),
        format!("UPDATE {table} SET dbl = 1e-300, f = -3.40282e38, d10 = -9999999999, yr = 2155, vbn = 0x00ff00 WHERE id IN (3, 103)"),
        format!("UPDATE {table} SET dt = '0000-00-00', dtm = '0000-00-00 00:00:00', ts = '1970-01-01 00:00:01' WHERE id = 104"),
        format!("UPDATE {table} SET id = 200, c_gbk = '改' WHERE id = 106"),
        format!("DELETE FROM {table} WHERE id = 6"),
    ];
    for sql in &updates {
        exec(&mut src, sql).await;
    }
    // A multi-row transaction mixing all of it.
    exec(&mut src, "BEGIN").await;
    exec(&mut src, &format!("INSERT INTO {table} ({TYPE_COLUMNS}) SELECT id + 1000, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, d65, d10, f, dbl, dt, dtm, ts, tm, yr, c_utf, vc_utf, tx_utf, c_lat, vc_lat, tx_lat, c_gbk, vc_gbk, tx_gbk, bn, vbn, bl, en, st, b1, b64, js FROM {table} WHERE id < 100")).await;
    exec(&mut src, &format!("UPDATE {table} SET tx_utf = CONCAT(COALESCE(tx_utf, ''), '✓') WHERE id > 1000")).await;
    exec(&mut src, "COMMIT").await;

    wait_tables_equal(&mut src, &mut dst, &table, Some("id"), &mut dtle).await;
    wait_target_caught_up(&ctx.s, &mut dst, job_name, &mut dtle).await;
    assert_tables_equal(&mut src, &mut dst, &table, Some("id")).await;
    let n = count(&mut src, &table).await;
    assert_eq!(n, 16, "source row count (6 + 6 - 1 deleted + 5 copies)");
    // The target table was created by dtle: same columns, types and character sets.
    let (a, b) = (columns(&mut src, schema, "t").await, columns(&mut dst, schema, "t").await);
    assert!(
        a == b,
        "column definitions differ:\n source: {:?}\n target: {:?}",
        a.iter().map(show_row).collect::<Vec<_>>(),
        b.iter().map(show_row).collect::<Vec<_>>()
    );
    dtle.stop_cleanly().await;
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_after_kill9_mid_stream() {
    let Some(ctx) = Ctx::new("kill_stream").await else {
        return;
    };
    let (schema, job_name) = ("e2e_kill_stream", "e2e_kill_stream");
    let mut src = ctx.s.src_conn().await;
    let mut dst = ctx.s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.tk (id INT PRIMARY KEY, v INT NOT NULL, s VARCHAR(32))")).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.tn (a INT, b VARCHAR(16))")).await;
    exec(
        &mut src,
        &format!("INSERT INTO {schema}.tk SELECT seq, seq * 3, CONCAT('init', seq) FROM {schema}.seq_0_to_199"),
    )
    .await;
    exec(&mut src, &format!("INSERT INTO {schema}.tn SELECT seq % 40, IF(seq % 7 = 0, NULL, CONCAT('b', seq % 3)) FROM {schema}.seq_0_to_99")).await;

    let job = ctx.job(
        "job.hcl",
        job_name,
        ctx.s.src,
        ctx.s.dst,
        &format!("{}\nGtid = \"\"\nChunkSize = 50", replicate_schema(schema)),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);

    let (_, seed) = Rng::from_time();
    println!("resume_after_kill9_mid_stream: load seed {seed}");
    let stop = Arc::new(AtomicBool::new(false));
    let txs = Arc::new(AtomicU64::new(0));
    let load = tokio::spawn(load_loop(ctx.s.clone(), schema.to_string(), stop.clone(), txs.clone(), seed));
    let stop_guard = StopOnDrop(stop.clone());

    for round in 1..=2 {
        // Some progress on both sides: source transactions and target positions.
        wait_load_progress(&txs, 150, &mut dtle).await;
        wait_position_changes(&mut dst, job_name, 5, &mut dtle).await;
        println!("kill -9 #{round} after {} source transactions", txs.load(Ordering::Relaxed));
        dtle.kill9();
        drop(dtle);
        dtle = Dtle::run(ctx.path(), &job);
    }
    wait_load_progress(&txs, 100, &mut dtle).await;
    wait_position_changes(&mut dst, job_name, 2, &mut dtle).await;

    stop.store(true, Ordering::Relaxed);
    load.await.expect("load task panicked").unwrap_or_else(|e| panic!("{e}"));
    drop(stop_guard);
    println!("load stopped after {} source transactions", txs.load(Ordering::Relaxed));
    assert!(txs.load(Ordering::Relaxed) > 0, "the load did nothing");

    wait_target_caught_up(&ctx.s, &mut dst, job_name, &mut dtle).await;
    assert_tables_equal(&mut src, &mut dst, &format!("{schema}.tk"), Some("id")).await;
    assert_tables_equal(&mut src, &mut dst, &format!("{schema}.tn"), None).await;
    dtle.stop_cleanly().await;
}

/// Waits until the load has committed `more` transactions beyond what it had when called.
async fn wait_load_progress(txs: &AtomicU64, more: u64, dtle: &mut Dtle) {
    let want = txs.load(Ordering::Relaxed) + more;
    let w = Waiter::new(format!("the load reaches {want} transactions"));
    while txs.load(Ordering::Relaxed) < want {
        w.note(format!("{} transactions", txs.load(Ordering::Relaxed)));
        w.tick(Some(dtle)).await;
    }
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_kill9_mid_snapshot() {
    let Some(ctx) = Ctx::new("kill_snapshot").await else {
        return;
    };
    let (schema, job_name) = ("e2e_kill_snapshot", "e2e_kill_snapshot");
    let table = format!("{schema}.big");
    let rows: u64 = 300_000;
    let mut src = ctx.s.src_conn().await;
    let mut dst = ctx.s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    exec(
        &mut src,
        &format!("CREATE TABLE {table} (id INT PRIMARY KEY, k INT NOT NULL, pad VARCHAR(100) NOT NULL, KEY (k))"),
    )
    .await;
    exec(&mut src, "SET SESSION max_recursive_iterations = 1000000").await;
    exec(
        &mut src,
        &format!(
            "INSERT INTO {table} (id, k, pad) WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) \
             SELECT i, i % 1000, CONCAT(MD5(i), MD5(i + 1)) FROM n"
        ),
    )
    .await;
    assert_eq!(count(&mut src, &table).await, rows);

    let job = ctx.job(
        "job.hcl",
        job_name,
        ctx.s.src,
        ctx.s.dst,
        &format!("{}\nGtid = \"\"\nChunkSize = 500", replicate_schema(schema)),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);
    let w = Waiter::new(format!("{table} partly copied"));
    let mut finished_first = false;
    loop {
        let n = count_if_exists(&mut dst, &table).await;
        if n > 0 && n < rows {
            println!("kill -9 during the full copy: target has {n} of {rows} rows");
            break;
        }
        if n >= rows {
            finished_first = true;
            println!(
                "note: the full copy finished before it could be interrupted; killing in the incremental stage instead"
            );
            break;
        }
        w.note(format!("{n} rows"));
        if let Some(st) = dtle.try_exited() {
            panic!("dtle exited ({st}) during the full copy");
        }
        if w.expired() {
            panic!("timed out waiting for the copy to start");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    dtle.kill9();
    drop(dtle);
    let p = position_row(&mut dst, job_name).await;
    println!("position after kill -9: {p:?}");
    if !finished_first {
        if let Some(p) = &p {
            // Either the copy was interrupted (redo it) or it had just finished.
            assert!(p.stage == "job_stage_full" || p.stage == "job_stage_incr", "unexpected stage {p:?}");
        }
    }

    // Changes while dtle is down.
    exec(
        &mut src,
        &format!("INSERT INTO {table} VALUES (300001, 1, 'new a'), (300002, 2, 'new b'), (300003, 3, 'new c')"),
    )
    .await;
    exec(&mut src, &format!("UPDATE {table} SET pad = 'changed' WHERE id IN (1, 150000, {rows})")).await;
    exec(&mut src, &format!("DELETE FROM {table} WHERE id IN (2, 150001)")).await;

    let mut dtle = Dtle::run(ctx.path(), &job);
    let total = count(&mut src, &table).await;
    let w = Waiter::new(format!("{table} has {total} rows on the target")).with_limit(Duration::from_secs(600));
    loop {
        let n = count_if_exists(&mut dst, &table).await;
        if n == total && position_row(&mut dst, job_name).await.is_some_and(|p| p.stage == "job_stage_incr") {
            break;
        }
        w.note(format!("{n} rows"));
        w.tick(Some(&mut dtle)).await;
    }
    wait_target_caught_up(&ctx.s, &mut dst, job_name, &mut dtle).await;
    assert_tables_equal(&mut src, &mut dst, &table, Some("id")).await;
    dtle.stop_cleanly().await;
}

// ---------------------------------------------------------------------------------------------

fn as_refs(v: &[std::ffi::OsString]) -> Vec<&OsStr> {
    v.iter().map(|a| a.as_os_str()).collect()
}

fn contains_addr(text: &str, addr: &str) -> bool {
    text.match_indices(addr).any(|(i, _)| !text[i + addr.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs() {
    let Some(ctx) = Ctx::new("bad_inputs").await else {
        return;
    };
    let s = &ctx.s;
    let dir = ctx.path();
    let data = dir.join("data");
    let run_args = |job: &std::path::Path| -> Vec<std::ffi::OsString> {
        vec!["run".into(), job.into(), "--data-dir".into(), data.clone().into(), "--no-progress-bar".into()]
    };
    let error_line = |case: &str, f: &Finished| {
        let line = f.stderr.lines().find(|l| l.contains("error")).unwrap_or("<no error line>");
        println!("({case}) exit {:?}: {line}", f.code)
    };
    let show = |f: &Finished| {
        format!(
            "exit code {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            f.code,
            tail(&f.stdout, 30),
            tail(&f.stderr, 30)
        )
    };

    // (a) a misspelt field: exit 2, naming it and the right spelling.
    let schema_a = "e2e_bad_a";
    let job = ctx.job(
        "a.hcl",
        "e2e_bad_a",
        s.src,
        s.dst,
        &format!("{}\nGtid = \"\"\nChunkSise = 2000", replicate_schema(schema_a)),
    );
    let f = run_to_exit(dir, "a", &as_refs(&run_args(&job))).await;
    error_line("a", &f);
    assert_eq!(f.code, Some(2), "(a) unknown field: {}", show(&f));
    assert!(
        f.stderr.contains("ChunkSise") && f.stderr.contains("ChunkSize"),
        "(a) stderr should name ChunkSise and suggest ChunkSize: {}",
        show(&f)
    );

    // (b) a wrong password: exit 1, naming the source address and the refusal.
    let schema_b = "e2e_bad_b";
    let mut dst = s.dst_conn().await;
    reset_target(&mut dst, schema_b, "e2e_bad_b").await;
    let hcl = job_hcl(
        "e2e_bad_b",
        &format!("{}\nGtid = \"\"", replicate_schema(schema_b)),
        &s.conn_hcl_with(&s.host, s.src, &s.user, "definitely-not-the-password"),
        &s.conn_hcl(s.dst),
    );
    let job = dir.join("b.hcl");
    write_file(&job, &hcl);
    let f = run_to_exit(dir, "b", &as_refs(&run_args(&job))).await;
    error_line("b", &f);
    assert_eq!(f.code, Some(1), "(b) wrong password: {}", show(&f));
    let src_addr = format!("{}:{}", s.host, s.src);
    let lower = f.stderr.to_ascii_lowercase();
    assert!(contains_addr(&f.stderr, &src_addr), "(b) stderr should name {src_addr}: {}", show(&f));
    assert!(
        lower.contains("access") || lower.contains("password"),
        "(b) stderr should mention access/password: {}",
        show(&f)
    );
    assert!(f.stderr.contains("error:"), "(b) stderr should have an `error:` line: {}", show(&f));

    // (c) nothing listening: `dtle validate` does not retry; exit 1 naming the address.
    let hcl = job_hcl(
        "e2e_bad_c",
        &format!("{}\nGtid = \"\"", replicate_schema("e2e_bad_c")),
        &s.conn_hcl_with("127.0.0.1", 1, &s.user, &s.password),
        &s.conn_hcl(s.dst),
    );
    let job = dir.join("c.hcl");
    write_file(&job, &hcl);
    let f = run_to_exit(dir, "c", &[OsStr::new("validate"), job.as_os_str()]).await;
    error_line("c", &f);
    assert_eq!(f.code, Some(1), "(c) unreachable source: {}", show(&f));
    assert!(contains_addr(&f.stderr, "127.0.0.1:1"), "(c) stderr should name 127.0.0.1:1: {}", show(&f));

    // (d) a start position the source (dst2 here) has purged: exit 1, "purged".
    let schema_d = "e2e_bad_purged";
    let mut src2 = s.conn(s.dst2).await;
    let server_id = query_u64(&mut src2, "SELECT @@server_id").await;
    let before = gtid_binlog_pos(&mut src2).await;
    let seq0 = gtid_seq(&before, 0).unwrap_or(0);
    reset_source_schema(&mut src2, schema_d).await;
    exec(&mut src2, &format!("CREATE TABLE {schema_d}.t (id INT PRIMARY KEY)")).await;
    for i in 1..=3 {
        exec(&mut src2, &format!("INSERT INTO {schema_d}.t VALUES ({i})")).await;
    }
    exec(&mut src2, "FLUSH BINARY LOGS").await;
    for i in 4..=5 {
        exec(&mut src2, &format!("INSERT INTO {schema_d}.t VALUES ({i})")).await;
    }
    let file = {
        let rows = query_raw(&mut src2, "SHOW MASTER STATUS").await;
        String::from_utf8(rows[0][0].clone().expect("binlog file")).unwrap()
    };
    // MariaDB keeps a binlog until its binlog checkpoint is done: retry the purge until the old files are gone.
    let w = Waiter::new(format!("dst2 binlogs before {file} purged"));
    loop {
        exec(&mut src2, &format!("PURGE BINARY LOGS TO '{file}'")).await;
        let logs = query_raw(&mut src2, "SHOW BINARY LOGS").await;
        let first = logs.first().and_then(|r| r[0].clone()).map(|b| String::from_utf8_lossy(&b).into_owned());
        if first.as_deref() == Some(file.as_str()) {
            break;
        }
        w.note(format!("binlogs: {:?}", logs.iter().map(show_row).collect::<Vec<_>>()));
        w.tick(None).await;
    }
    let purged_gtid = format!("0-{server_id}-{}", seq0 + 1);
    println!(
        "(d) dst2 gtid before: {before:?}, now {:?}, binlogs from {file}; starting after {purged_gtid}",
        gtid_binlog_pos(&mut src2).await
    );
    reset_target(&mut dst, schema_d, "e2e_bad_purged").await;
    let job = ctx.job(
        "d.hcl",
        "e2e_bad_purged",
        s.dst2,
        s.dst,
        &format!("{}\nGtid = \"{purged_gtid}\"", replicate_schema(schema_d)),
    );
    let f = run_to_exit(dir, "d", &as_refs(&run_args(&job))).await;
    error_line("d", &f);
    assert_eq!(f.code, Some(1), "(d) purged start position: {}", show(&f));
    assert!(f.stderr.contains("purged"), "(d) stderr should say the position was purged: {}", show(&f));

    // (e) a pre-created target table that differs (a source column missing there) with SkipCreateDbTable: exit 1,
    // nothing written. (An extra target column is fine: it keeps its default.)
    let schema_e = "e2e_bad_mismatch";
    let mut src = s.src_conn().await;
    reset_source_schema(&mut src, schema_e).await;
    reset_target(&mut dst, schema_e, "e2e_bad_mismatch").await;
    exec(&mut src, &format!("CREATE TABLE {schema_e}.t (id INT PRIMARY KEY, v VARCHAR(10))")).await;
    exec(&mut src, &format!("INSERT INTO {schema_e}.t VALUES (1, 'a'), (2, 'b')")).await;
    exec(&mut dst, &format!("CREATE DATABASE {schema_e}")).await;
    exec(&mut dst, &format!("CREATE TABLE {schema_e}.t (id INT PRIMARY KEY, other_col VARCHAR(10), surplus_col INT)"))
        .await;
    let job = ctx.job(
        "e.hcl",
        "e2e_bad_mismatch",
        s.src,
        s.dst,
        &format!("{}\nGtid = \"\"\nSkipCreateDbTable = true", replicate_schema(schema_e)),
    );
    let f = run_to_exit(dir, "e", &as_refs(&run_args(&job))).await;
    error_line("e", &f);
    assert_eq!(f.code, Some(1), "(e) differing target table: {}", show(&f));
    assert!(f.stderr.contains("column v is missing on the target"), "(e) stderr should name the column: {}", show(&f));
    assert!(
        f.stderr.contains(&format!("`{schema_e}`.`t`")) || f.stderr.contains(&format!("{schema_e}.t")),
        "(e) stderr should name the table {schema_e}.t: {}",
        show(&f)
    );
    assert_eq!(
        count(&mut dst, &format!("{schema_e}.t")).await,
        0,
        "(e) rows were written to the differing target table"
    );

    // (f) a good job validates.
    let job = ctx.job(
        "f.hcl",
        "e2e_bad_f",
        s.src,
        s.dst,
        &format!("{}\nGtid = \"\"\nChunkSize = 2000", replicate_schema("e2e_bad_f")),
    );
    let f = run_to_exit(dir, "f", &[OsStr::new("validate"), job.as_os_str()]).await;
    error_line("f", &f);
    assert_eq!(f.code, Some(0), "(f) validate of a good job: {}", show(&f));
}

// ---------------------------------------------------------------------------------------------

/// The full copy loads chunks with LOAD DATA LOCAL INFILE: bytes the format gives a meaning (tab, newline,
/// backslash, NUL, a literal `\N`), empty strings vs NULL, YEAR 0, BIT, ENUM members named like numbers, JSON, a
/// latin1 column going into a utf8mb4 one, and a spatial table that goes as INSERT; then a row the target rejects
/// stops the copy with the server's message and nothing of its chunk written, with LOAD DATA and with INSERT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_copy_load_data_values_and_rejections() {
    let Some(ctx) = Ctx::new("load_data").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job_name) = ("e2e_load_data", "e2e_load_data");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    prepare_type_session(&mut src).await;
    let columns = "id INT PRIMARY KEY, v VARCHAR(50) CHARACTER SET utf8mb4, l VARCHAR(50) CHARACTER SET %L, y YEAR, \
                   b BIT(10), e ENUM('2','1','x'), j JSON, bl BLOB";
    exec(&mut src, &format!("CREATE TABLE {schema}.t ({})", columns.replace("%L", "latin1"))).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.g (id INT PRIMARY KEY, p POINT NOT NULL)")).await;
    exec(
        &mut src,
        &format!(
            "INSERT INTO {schema}.t VALUES
             (1, 'tab\there nl\nthere back\\\\slash', 'café', 0, b'1010101010', '1', '{{\"a\": \"x\\\\ty\"}}', 0x005C090A4E),
             (2, '\\\\N', 'ÿ', 2000, b'0', '2', 'null', 0x5C4E),
             (3, '', '', 1901, b'1111111111', 'x', '[]', ''),
             (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
             (5, 'nul\\0byte', '\\t', 2155, b'1', 'x', '\"\\\\N\"', 0x00)"
        ),
    )
    .await;
    for id in 6..=25 {
        exec(
            &mut src,
            &format!(
                "INSERT INTO {schema}.t VALUES ({id}, 'v{id}', 'l{id}', {}, {id}, 'x', '{{}}', 0x{id:02x})",
                1990 + id
            ),
        )
        .await;
    }
    exec(&mut src, &format!("INSERT INTO {schema}.g VALUES (1, ST_GeomFromText('POINT(1 2)')), (2, ST_GeomFromText('POINT(-3.5 1e10)'))")).await;
    // The target's tables exist already: `l` is utf8mb4 there (LOAD DATA converts it from latin1).
    exec(&mut dst, &format!("CREATE DATABASE {schema}")).await;
    exec(&mut dst, &format!("CREATE TABLE {schema}.t ({})", columns.replace("%L", "utf8mb4"))).await;
    exec(&mut dst, &format!("CREATE TABLE {schema}.g (id INT PRIMARY KEY, p POINT NOT NULL)")).await;
    let loads_before = query_u64(
        &mut dst,
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'COM_LOAD'",
    )
    .await;

    let job = ctx.job(
        "job.hcl",
        job_name,
        s.src,
        s.dst,
        &format!("{}\nGtid = \"\"\nChunkSize = 2\nSkipCreateDbTable = true", replicate_schema(schema)),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);
    wait_stage_incr(&mut dst, job_name, &mut dtle).await;
    // `l` holds other bytes on the target (utf8mb4): compare what both sides read as utf8mb4.
    let every_value = format!(
        "SELECT id, HEX(v), HEX(CONVERT(l USING utf8mb4)), y + 0, b + 0, e + 0, HEX(j), HEX(bl), ISNULL(v), ISNULL(l), \
         ISNULL(bl) FROM {schema}.t ORDER BY id"
    );
    let (a, b) = (query_raw(&mut src, &every_value).await, query_raw(&mut dst, &every_value).await);
    assert_eq!(a.len(), 25);
    assert!(diff_rows(&a, &b).is_none(), "{schema}.t differs: {:?}", diff_rows(&a, &b));
    assert_tables_equal(&mut src, &mut dst, &format!("{schema}.g"), Some("id")).await;
    for (sql, what) in [
        (format!("SELECT HEX(bl) FROM {schema}.t WHERE id = 1"), "the BLOB with NUL, backslash, tab, newline"),
        (format!("SELECT HEX(v) FROM {schema}.t WHERE id = 2"), "a literal \\N string"),
        (
            format!("SELECT CONCAT(y + 0, '/', b + 0, '/', e + 0) FROM {schema}.t WHERE id = 1"),
            "YEAR 0, BIT, ENUM index",
        ),
        (format!("SELECT ISNULL(v) + ISNULL(bl) FROM {schema}.t WHERE id = 3"), "empty strings stay empty"),
        (format!("SELECT ST_AsText(p) FROM {schema}.g WHERE id = 2"), "a point"),
    ] {
        let (a, b) = (query_str(&mut src, &sql).await, query_str(&mut dst, &sql).await);
        assert_eq!(a, b, "{what}: {sql}");
    }
    assert_eq!(
        query_str(&mut dst, &format!("SELECT HEX(l) FROM {schema}.t WHERE id = 1")).await.as_deref(),
        Some("636166C3A9")
    );
    assert_eq!(
        query_str(&mut dst, &format!("SELECT CONCAT(y + 0, '/', b + 0, '/', e + 0) FROM {schema}.t WHERE id = 1"))
            .await
            .as_deref(),
        Some("0/682/2")
    );
    let loads = query_u64(
        &mut dst,
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'COM_LOAD'",
    )
    .await
        - loads_before;
    // 13 chunks; consecutive chunks in one group share a LOAD DATA (and a target transaction), so 1 to 13 loads.
    assert!(
        (1..=13).contains(&loads),
        "the 25 rows of t in chunks of 2 should have gone as LOAD DATA (COM_LOAD grew by {loads})"
    );
    dtle.stop_cleanly().await;

    // A value the target cannot hold: the copy stops naming it, and its chunk is not on the target.
    for (case, load_data) in [("load", "true"), ("insert", "false")] {
        let (schema, job_name) = (format!("e2e_load_reject_{case}"), format!("e2e_load_reject_{case}"));
        reset_source_schema(&mut src, &schema).await;
        reset_target(&mut dst, &schema, &job_name).await;
        exec(&mut src, &format!("CREATE TABLE {schema}.r (id INT PRIMARY KEY, v VARCHAR(20))")).await;
        exec(
            &mut src,
            &format!("INSERT INTO {schema}.r VALUES (1, 'ok'), (2, 'ok'), (3, 'ok'), (4, 'much too long'), (5, 'ok')"),
        )
        .await;
        exec(&mut dst, &format!("CREATE DATABASE {schema}")).await;
        exec(&mut dst, &format!("CREATE TABLE {schema}.r (id INT PRIMARY KEY, v VARCHAR(5))")).await;
        let job = ctx.job(
            &format!("{case}.hcl"),
            &job_name,
            s.src,
            s.dst,
            &format!(
                "{}\nGtid = \"\"\nChunkSize = 3\nSkipCreateDbTable = true\nSnapshotLoadData = {load_data}",
                replicate_schema(&schema)
            ),
        );
        let log = ctx.path().join(format!("{case}.log"));
        let data = ctx.path().join(format!("data-{case}"));
        let mut dtle = Dtle::spawn(
            &log,
            &["run".as_ref(), job.as_os_str(), "--data-dir".as_ref(), data.as_os_str(), "--no-progress-bar".as_ref()],
        );
        let status = dtle.wait_exit(Duration::from_secs(60)).await;
        let text = read_log(&log);
        assert_eq!(status.code(), Some(1), "({case}) a rejected row should stop the job:\n{}", tail(&text, 30));
        // With LOAD DATA, chunks that reached the dest in one group share a target transaction: the error then
        // names them all, and none of them is on the target.
        let merged = text.contains(&format!("`{schema}`.`r` (chunks 0..=1)"));
        assert!(
            text.contains(&format!("`{schema}`.`r` (chunk 1)")) || (case == "load" && merged),
            "({case}) the error should name the table and chunk:\n{}",
            tail(&text, 30)
        );
        assert!(text.contains("'v'"), "({case}) the error should name the column:\n{}", tail(&text, 30));
        if case == "load" {
            assert!(
                text.contains("SnapshotLoadData = false"),
                "({case}) the error should say how LOAD DATA is turned off:\n{}",
                tail(&text, 30)
            );
        }
        let ids = query_str(&mut dst, &format!("SELECT GROUP_CONCAT(id ORDER BY id) FROM {schema}.r")).await;
        let first_chunk = if merged { None } else { Some("1,2,3") };
        assert_eq!(ids.as_deref(), first_chunk, "({case}) only the chunks before the failed one are on the target");
        // (The table's end marker may be there too: after a missing chunk it counts for nothing on resume.)
        let chunks = query_str(
            &mut dst,
            &format!(
                "SELECT GROUP_CONCAT(chunk ORDER BY chunk) FROM dtle.snapshot_progress WHERE job_name = '{job_name}' \
                 AND done = 0"
            ),
        )
        .await;
        let progress = if merged { None } else { Some("0") };
        assert_eq!(chunks.as_deref(), progress, "({case}) only the committed chunks' progress rows are on the target");
    }
}

// ---------------------------------------------------------------------------------------------

/// A target with `local_infile` OFF gets the full copy as INSERT statements (dst2, so the other tests' copies on
/// dst keep loading).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_copy_without_local_infile_uses_insert() {
    let Some(ctx) = Ctx::new("no_local_infile").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job_name) = ("e2e_no_local_infile", "e2e_no_local_infile");
    let mut src = s.src_conn().await;
    let mut dst = s.conn(s.dst2).await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, v VARCHAR(20), b BIT(3), KEY kv (v))")).await;
    exec(
        &mut src,
        &format!("INSERT INTO {schema}.t SELECT seq, CONCAT('v\t', seq), seq % 8 FROM {schema}.seq_1_to_100"),
    )
    .await;
    exec(&mut dst, "SET GLOBAL local_infile = OFF").await;
    let job = ctx.job(
        "job.hcl",
        job_name,
        s.src,
        s.dst2,
        &format!("{}\nGtid = \"\"\nChunkSize = 30", replicate_schema(schema)),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);
    let reached = tokio::time::timeout(Duration::from_secs(60), wait_stage_incr(&mut dst, job_name, &mut dtle)).await;
    exec(&mut dst, "SET GLOBAL local_infile = ON").await;
    reached.expect("the copy did not end within 60 s");
    assert_tables_equal(&mut src, &mut dst, &format!("{schema}.t"), Some("id")).await;
    let log = dtle.log_text();
    assert!(log.contains("local_infile = OFF: full-copy chunks go as INSERT statements"), "{}", tail(&log, 20));
    dtle.stop_cleanly().await;
}

// ---------------------------------------------------------------------------------------------

/// Tables the full copy creates get their plain secondary indexes once filled; unique keys, and every index of a
/// table with foreign keys, exist from the start; a table that was on the target already is left as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_copy_adds_secondary_indexes_once_filled() {
    let Some(ctx) = Ctx::new("deferred_indexes").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job_name) = ("e2e_deferred_idx", "e2e_deferred_idx");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    exec(
        &mut src,
        &format!(
            "CREATE TABLE {schema}.a (id INT PRIMARY KEY, k INT NOT NULL, u VARCHAR(20) NOT NULL, note TEXT,
               UNIQUE KEY u (u), KEY k_1 (k), KEY `k u` (k, u(5)) COMMENT 'two', FULLTEXT KEY ft (note)) ENGINE=InnoDB"
        ),
    )
    .await;
    exec(&mut src, &format!("CREATE TABLE {schema}.parent (id INT PRIMARY KEY, k INT, KEY pk (k)) ENGINE=InnoDB"))
        .await;
    exec(
        &mut src,
        &format!(
            "CREATE TABLE {schema}.child (id INT PRIMARY KEY, p INT, k INT, KEY ck (k),
               CONSTRAINT fk_p FOREIGN KEY (p) REFERENCES {schema}.parent (id)) ENGINE=InnoDB"
        ),
    )
    .await;
    exec(&mut src, &format!("CREATE TABLE {schema}.kept (id INT PRIMARY KEY, k INT, KEY kk (k)) ENGINE=InnoDB")).await;
    // A foreign key on a plain index of a table that sorts (and is created) first; an AUTO_INCREMENT column whose only
    // index is a secondary one.
    exec(&mut src, &format!("CREATE TABLE {schema}.fa_parent (id INT PRIMARY KEY, k INT, KEY fk_k (k)) ENGINE=InnoDB"))
        .await;
    exec(
        &mut src,
        &format!(
            "CREATE TABLE {schema}.fb_child (id INT PRIMARY KEY, pk INT,
               CONSTRAINT fb_fk FOREIGN KEY (pk) REFERENCES {schema}.fa_parent (k)) ENGINE=InnoDB"
        ),
    )
    .await;
    exec(
        &mut src,
        &format!(
            "CREATE TABLE {schema}.inc (t INT NOT NULL, id INT NOT NULL AUTO_INCREMENT, k INT,
               PRIMARY KEY (t, id), KEY id (id), KEY k (k, id)) ENGINE=InnoDB"
        ),
    )
    .await;
    exec(&mut src, &format!("INSERT INTO {schema}.fa_parent SELECT seq, seq FROM {schema}.seq_1_to_30")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.fb_child SELECT seq, seq FROM {schema}.seq_1_to_30")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.inc (t, k) SELECT seq % 3, seq FROM {schema}.seq_1_to_100")).await;
    exec(
        &mut src,
        &format!(
            "INSERT INTO {schema}.a SELECT seq, seq % 7, CONCAT('u', seq), 'some words' FROM {schema}.seq_1_to_300"
        ),
    )
    .await;
    exec(&mut src, &format!("INSERT INTO {schema}.parent SELECT seq, seq FROM {schema}.seq_1_to_20")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.child SELECT seq, 1 + seq % 20, seq FROM {schema}.seq_1_to_50"))
        .await;
    exec(&mut src, &format!("INSERT INTO {schema}.kept SELECT seq, seq FROM {schema}.seq_1_to_10")).await;
    // `kept` is on the target already, without the source's index: the copy fills it and adds nothing.
    exec(&mut dst, &format!("CREATE DATABASE {schema}")).await;
    exec(&mut dst, &format!("CREATE TABLE {schema}.kept (id INT PRIMARY KEY, k INT) ENGINE=InnoDB")).await;

    let job = ctx.job(
        "job.hcl",
        job_name,
        s.src,
        s.dst,
        &format!("{}\nGtid = \"\"\nChunkSize = 40", replicate_schema(schema)),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);
    wait_stage_incr(&mut dst, job_name, &mut dtle).await;
    for t in ["a", "parent", "child", "kept", "fa_parent", "fb_child", "inc"] {
        assert_tables_equal(&mut src, &mut dst, &format!("{schema}.{t}"), Some("id")).await;
    }
    for t in ["a", "parent", "child", "fa_parent", "fb_child", "inc"] {
        let show = format!("SHOW CREATE TABLE {schema}.{t}");
        let (a, b) = (query_raw(&mut src, &show).await, query_raw(&mut dst, &show).await);
        assert_eq!(show_row(&a[0]), show_row(&b[0]), "{t}: the target's definition differs");
    }
    let kept = query_raw(&mut dst, &format!("SHOW CREATE TABLE {schema}.kept")).await;
    assert!(!show_row(&kept[0]).contains("kk"), "an existing target table got an index: {}", show_row(&kept[0]));
    let log = dtle.log_text();
    let deferred: Vec<&str> =
        log.lines().filter(|l| l.contains("secondary indexes are added once the table is copied")).collect();
    assert!(
        deferred.len() == 4 && ["`a`", "`parent`", "`fa_parent`", "`inc`"].iter().all(|t| deferred.iter().any(|l| l.contains(t))),
        "the indexes of a, parent, fa_parent and inc (not child, fb_child: foreign keys; not kept: existed) should have \
         been deferred:\n{}",
        deferred.join("\n")
    );
    assert!(
        log.contains("a foreign key needs an index of a table being copied"),
        "fb_child's foreign key needed fa_parent's index at once:\n{}",
        tail(&log, 30)
    );
    let owed = query_u64(
        &mut dst,
        &format!("SELECT COUNT(*) FROM dtle.snapshot_deferred_index WHERE table_schema = '{schema}'"),
    )
    .await;
    assert_eq!(owed, 0, "secondary indexes still owed after the copy");
    // Replication goes on using them.
    exec(&mut src, &format!("UPDATE {schema}.a SET k = k + 1 WHERE k = 3")).await;
    wait_tables_equal(&mut src, &mut dst, &format!("{schema}.a"), Some("id"), &mut dtle).await;
    dtle.stop_cleanly().await;
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_from_configured_gtid() {
    let Some(ctx) = Ctx::new("gtid_start").await else {
        return;
    };
    let (schema, job_name) = ("e2e_gtid_start", "e2e_gtid_start");
    let table = format!("{schema}.t");
    let mut src = ctx.s.src_conn().await;
    let mut dst = ctx.s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    let ddl = format!("CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(20) CHARACTER SET utf8mb4)");
    exec(&mut src, &ddl).await;
    exec(&mut dst, &format!("CREATE DATABASE {schema} DEFAULT CHARSET utf8mb4")).await;
    exec(&mut dst, &ddl).await;

    for i in 1..=3 {
        exec(&mut src, &format!("INSERT INTO {table} VALUES ({i}, 'before {i}')")).await;
    }
    let start = gtid_binlog_pos(&mut src).await;
    assert!(gtid_seq(&start, 0).is_some(), "source @@gtid_binlog_pos {start:?}");
    for i in 4..=6 {
        exec(&mut src, &format!("INSERT INTO {table} VALUES ({i}, 'after {i}')")).await;
    }
    exec(&mut src, &format!("UPDATE {table} SET v = 'after 6 updated' WHERE id = 6")).await;

    let job = ctx.job(
        "job.hcl",
        job_name,
        ctx.s.src,
        ctx.s.dst,
        &format!("{}\nGtid = \"{start}\"", replicate_schema(schema)),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);
    wait_target_caught_up(&ctx.s, &mut dst, job_name, &mut dtle).await;
    let want = table_rows(&mut src, &format!("(SELECT * FROM {table} WHERE id >= 4) AS q"), Some("id")).await;
    let got = table_rows(&mut dst, &table, Some("id")).await;
    assert_eq!(want.len(), 3);
    if let Some(d) = diff_rows(&want, &got) {
        panic!("the target should have exactly rows 4-6 (started after {start}):\n{d}");
    }
    dtle.stop_cleanly().await;
    let p = position_row(&mut dst, job_name).await.expect("position row");
    assert_eq!(p.stage, "job_stage_incr");
}

// ---------------------------------------------------------------------------------------------

/// The comparison itself must notice a lost row, a duplicate, a changed byte and NULL vs empty.
#[test]
fn comparison_detects_differences() {
    let row = |id: &str, v: Option<&[u8]>| -> RawRow { vec![Some(id.as_bytes().to_vec()), v.map(<[u8]>::to_vec)] };
    let base = vec![row("1", Some(b"a")), row("2", None), row("3", Some(b"\x00\xff"))];
    assert!(diff_rows(&base, &base.clone()).is_none());
    let mut lost = base.clone();
    lost.pop();
    assert!(diff_rows(&base, &lost).is_some());
    let mut dup = base.clone();
    dup.push(row("3", Some(b"\x00\xff")));
    assert!(diff_rows(&base, &dup).is_some());
    let mut changed = base.clone();
    changed[2] = row("3", Some(b"\x00\xfe"));
    assert!(diff_rows(&base, &changed).unwrap().contains("0x00fe"));
    let mut empty = base.clone();
    empty[1] = row("2", Some(b""));
    assert!(diff_rows(&base, &empty).is_some());
    assert_eq!(gtid_seq("1-9-3,0-1-42", 0), Some(42));
    assert_eq!(gtid_seq("", 0), None);
}

/// Regression (issue 14): MySQL and MariaDB write BINARY(n) values into the binlog without their trailing 0x00
/// bytes. dtle's decoder did not pad them back, so an update of a row keyed `x'ff000000'` looked for `x'ff'` and
/// stopped the job ("expected 1 row(s), the target had 0"), and keyless tables matched the wrong rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_values_ending_in_zero_bytes_match_their_rows_after_the_copy() {
    let Some(ctx) = Ctx::new("binary_pad").await else {
        return;
    };
    let (schema, job_name) = ("e2e_binary_pad", "e2e_binary_pad");
    let s = &ctx.s;
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.bk (id BINARY(4) PRIMARY KEY, v INT)")).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.bn (b BINARY(16), v INT)")).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.uk (id INT PRIMARY KEY, u BINARY(3) NOT NULL, UNIQUE KEY (u))"))
        .await;
    exec(&mut src, &format!("INSERT INTO {schema}.bk VALUES (x'ff000000', 1), (x'01020300', 2), (x'00000000', 3)"))
        .await;
    exec(&mut src, &format!("INSERT INTO {schema}.bn VALUES (x'aa', 1), (x'aa00', 2), (NULL, 3), (x'', 4)")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.uk VALUES (1, x'01'), (2, x'0200')")).await;
    let job = ctx.job("job.hcl", job_name, s.src, s.dst, &format!("{}\nGtid = \"\"", replicate_schema(schema)));
    let mut dtle = Dtle::run(ctx.path(), &job);
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;

    // Every row changed through the binlog: keys, keyless rows and unique values that end in 0x00.
    exec(&mut src, &format!("UPDATE {schema}.bk SET v = v + 10")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.bk VALUES (x'7f7f0000', 4)")).await;
    exec(&mut src, &format!("DELETE FROM {schema}.bk WHERE id = x'01020300'")).await;
    exec(&mut src, &format!("UPDATE {schema}.bn SET v = v * 100 WHERE b = x'aa00' OR b = x''")).await;
    exec(&mut src, &format!("DELETE FROM {schema}.bn WHERE v = 1")).await;
    exec(&mut src, &format!("UPDATE {schema}.uk SET id = id + 10")).await;
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    for table in ["bk", "bn", "uk"] {
        assert_tables_equal(&mut src, &mut dst, &format!("{schema}.{table}"), None).await;
    }
    assert!(dtle.try_exited().is_none(), "dtle stopped: {}", tail(&dtle.log_text(), 20));
    dtle.stop_cleanly().await;
}
