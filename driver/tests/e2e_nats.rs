//! End-to-end tests of the NATS link: the src and dest tasks of a job in separate `dtle` processes (or one process
//! with `--transport nats`), against real MariaDB servers (`tests/mariadb.sh up`) and nats-server (`tests/nats.sh`).
//!
//!   eval "$(tests/mariadb.sh env)"; eval "$(tests/nats.sh env)"
//!   cargo test -p dtle --test e2e_nats -- --test-threads=2 --nocapture
//! Without DTLE_TEST_NATS_URL (or the MariaDB servers) the tests print "skipping: ..." and pass, unless
//! DTLE_TEST_REQUIRE_SERVERS=1.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::*;
use mysql_async::Conn;

/// The src and dest processes of a job over NATS.
fn start_pair(dir: &Path, job: &Path, nats: &str, extra: &[&str]) -> (Dtle, Dtle) {
    let mut dest_args = vec!["--transport", "nats", "--nats", nats, "--only", "dest"];
    dest_args.extend_from_slice(extra);
    let mut src_args = vec!["--transport", "nats", "--nats", nats, "--only", "src"];
    src_args.extend_from_slice(extra);
    let dest = Dtle::run_with(dir, job, "dest.log", "data-dest", &dest_args);
    let src = Dtle::run_with(dir, job, "src.log", "data-src", &src_args);
    (src, dest)
}

/// `(raw_bytes, sent_bytes)` of the last "src: link totals" line of a log.
fn link_totals(log: &str) -> Option<(u64, u64)> {
    let line = log.lines().rev().find(|l| l.contains("link totals"))?;
    let field = |name: &str| -> Option<u64> {
        let at = line.find(&format!("{name}="))? + name.len() + 1;
        line[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
    };
    Some((field("raw_bytes")?, field("sent_bytes")?))
}

/// How many lines of a log contain `needle`.
fn lines_with(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

async fn fresh_schema(src: &mut Conn, dst: &mut Conn, schema: &str, job: &str) {
    reset_source_schema(src, schema).await;
    reset_target(dst, schema, job).await;
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_over_nats() {
    let Some(nats) = nats_url() else {
        return;
    };
    let Some(ctx) = Ctx::new("nats_two").await else {
        return;
    };
    let (schema, job_name) = ("e2e_nats_two", "e2e_nats_two");
    let mut src = ctx.s.src_conn().await;
    let mut dst = ctx.s.dst_conn().await;
    fresh_schema(&mut src, &mut dst, schema, job_name).await;
    create_load_tables(&mut src, schema).await;
    let job = ctx.job(
        "job.hcl",
        job_name,
        ctx.s.src,
        ctx.s.dst,
        &format!("{}\nGtid = \"\"\nChunkSize = 50", replicate_schema(schema)),
    );

    let (mut srcp, mut dest) = start_pair(ctx.path(), &job, &nats, &[]);
    // The load starts while the full copy may still be running.
    let mut load = Load::start(&ctx.s, schema);
    load.wait_progress(200, &mut [&mut srcp, &mut dest]).await;
    wait_position_moves(&mut dst, job_name, 5, &mut [&mut srcp, &mut dest]).await;
    load.wait_progress(100, &mut [&mut srcp, &mut dest]).await;
    load.stop().await;

    wait_caught_up_all(&ctx.s, &mut dst, job_name, &mut [&mut srcp, &mut dest]).await;
    assert_load_tables_equal(&mut src, &mut dst, schema).await;

    srcp.stop_cleanly().await;
    dest.stop_cleanly().await;
    let (src_log, dest_log) = (srcp.log_text(), dest.log_text());
    assert!(dest_log.contains("dest: src connected"), "the dest never saw the src over NATS:\n{}", tail(&dest_log, 30));
    let totals = link_totals(&src_log);
    println!("link totals (raw, sent): {totals:?}");
    assert!(
        totals.is_some_and(|(raw, sent)| raw > 0 && sent > 0),
        "the src sent nothing over NATS:\n{}",
        tail(&src_log, 30)
    );
    // Still equal after the clean stop of both.
    assert_load_tables_equal(&mut src, &mut dst, schema).await;
    let p = position_row(&mut dst, job_name).await.expect("a position row on the target");
    assert_eq!(p.stage, "job_stage_incr", "position row: {p:?}");
}

// ---------------------------------------------------------------------------------------------

const OWN_NATS_PORT: u16 = 4230;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_restart_under_load_loses_nothing() {
    let Some(_) = nats_url() else {
        return;
    };
    let Some(ctx) = Ctx::new("nats_restart").await else {
        return;
    };
    let (schema, job_name) = ("e2e_nats_restart", "e2e_nats_restart");
    let mut src = ctx.s.src_conn().await;
    let mut dst = ctx.s.dst_conn().await;
    fresh_schema(&mut src, &mut dst, schema, job_name).await;
    create_load_tables(&mut src, schema).await;
    let job = ctx.job(
        "job.hcl",
        job_name,
        ctx.s.src,
        ctx.s.dst,
        &format!("{}\nGtid = \"\"\nChunkSize = 50", replicate_schema(schema)),
    );

    let server = ScriptServer::start("nats.sh", OWN_NATS_PORT, "stop").await;
    let url = format!("nats://127.0.0.1:{OWN_NATS_PORT}");
    let (mut srcp, mut dest) = start_pair(ctx.path(), &job, &url, &["--ack-timeout", "5"]);
    let mut load = Load::start(&ctx.s, schema);

    for round in 1..=2 {
        load.wait_progress(150, &mut [&mut srcp, &mut dest]).await;
        wait_position_moves(&mut dst, job_name, 5, &mut [&mut srcp, &mut dest]).await;
        println!("restarting nats-server #{round} after {} source transactions", load.txs());
        server.run("restart").await;
    }
    // Replication picks up again after the second restart, with the load still running.
    load.wait_progress(150, &mut [&mut srcp, &mut dest]).await;
    wait_position_moves(&mut dst, job_name, 5, &mut [&mut srcp, &mut dest]).await;
    load.stop().await;

    wait_caught_up_all(&ctx.s, &mut dst, job_name, &mut [&mut srcp, &mut dest]).await;
    assert_load_tables_equal(&mut src, &mut dst, schema).await;
    srcp.stop_cleanly().await;
    dest.stop_cleanly().await;
    let (src_log, dest_log) = (srcp.log_text(), dest.log_text());
    println!(
        "src sessions started: {}, dest refusals (gaps): {}, src restarts: {}",
        lines_with(&src_log, "asking the dest task"),
        lines_with(&dest_log, "refusing the src session"),
        lines_with(&src_log, "transient failure")
    );
    assert_load_tables_equal(&mut src, &mut dst, schema).await;
    drop(server);
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dest_sigkill_and_restart_under_load() {
    let Some(nats) = nats_url() else {
        return;
    };
    let Some(ctx) = Ctx::new("nats_kill").await else {
        return;
    };
    let (schema, job_name) = ("e2e_nats_kill", "e2e_nats_kill");
    let mut src = ctx.s.src_conn().await;
    let mut dst = ctx.s.dst_conn().await;
    fresh_schema(&mut src, &mut dst, schema, job_name).await;
    create_load_tables(&mut src, schema).await;
    let job = ctx.job(
        "job.hcl",
        job_name,
        ctx.s.src,
        ctx.s.dst,
        &format!("{}\nGtid = \"\"\nChunkSize = 50", replicate_schema(schema)),
    );
    let extra = ["--ack-timeout", "3"];
    let dest_args = ["--transport", "nats", "--nats", nats.as_str(), "--only", "dest", extra[0], extra[1]];
    let src_args = ["--transport", "nats", "--nats", nats.as_str(), "--only", "src", extra[0], extra[1]];

    let (mut srcp, mut dest) = start_pair(ctx.path(), &job, &nats, &extra);
    let mut load = Load::start(&ctx.s, schema);
    load.wait_progress(150, &mut [&mut srcp, &mut dest]).await;
    wait_position_moves(&mut dst, job_name, 5, &mut [&mut srcp, &mut dest]).await;

    println!("kill -9 of the dest after {} source transactions", load.txs());
    dest.kill9();
    drop(dest);
    // The source keeps changing while the dest is gone; the src process must survive it.
    load.wait_progress(50, &mut [&mut srcp]).await;
    let mut dest = Dtle::run_with(ctx.path(), &job, "dest.log", "data-dest", &dest_args);
    load.wait_progress(150, &mut [&mut srcp, &mut dest]).await;
    wait_position_moves(&mut dst, job_name, 5, &mut [&mut srcp, &mut dest]).await;

    println!("kill -9 of the src after {} source transactions", load.txs());
    srcp.kill9();
    drop(srcp);
    load.wait_progress(50, &mut [&mut dest]).await;
    let mut srcp = Dtle::run_with(ctx.path(), &job, "src.log", "data-src", &src_args);
    load.wait_progress(150, &mut [&mut srcp, &mut dest]).await;
    wait_position_moves(&mut dst, job_name, 5, &mut [&mut srcp, &mut dest]).await;
    load.stop().await;

    wait_caught_up_all(&ctx.s, &mut dst, job_name, &mut [&mut srcp, &mut dest]).await;
    assert_load_tables_equal(&mut src, &mut dst, schema).await;
    srcp.stop_cleanly().await;
    dest.stop_cleanly().await;
    assert_load_tables_equal(&mut src, &mut dst, schema).await;
}

// ---------------------------------------------------------------------------------------------

/// src and dest in two processes, both killed with -9 in the middle of the full copy: the restarted dest tells the
/// src (hello reply, stage 3) what the target has, and the copy continues per chunk instead of starting again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_full_copy_over_nats_continues_per_chunk() {
    let Some(nats) = nats_url() else {
        return;
    };
    let Some(ctx) = Ctx::new("nats_snapshot_resume").await else {
        return;
    };
    let (schema, job_name) = ("e2e_nats_snap_resume", "e2e_nats_snap_resume");
    let mut src = ctx.s.src_conn().await;
    let mut dst = ctx.s.dst_conn().await;
    fresh_schema(&mut src, &mut dst, schema, job_name).await;
    const ROWS: u64 = 40_000;
    let tables = ["t1", "t2", "t3"];
    for t in tables {
        exec(
            &mut src,
            &format!("CREATE TABLE {schema}.{t} (id BIGINT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(200), KEY kv (v))"),
        )
        .await;
        exec(
            &mut src,
            &format!("INSERT INTO {schema}.{t} SELECT seq, seq % 97, REPEAT('p', 150) FROM {schema}.seq_1_to_{ROWS}"),
        )
        .await;
    }
    let total = ROWS * tables.len() as u64;
    let job = ctx.job(
        "job.hcl",
        job_name,
        ctx.s.src,
        ctx.s.dst,
        &format!("{}\nGtid = \"\"\nChunkSize = 500", replicate_schema(schema)),
    );
    async fn target_rows(dst: &mut Conn, schema: &str, tables: &[&str]) -> u64 {
        let mut n = 0;
        for t in tables {
            n += count_if_exists(dst, &format!("{schema}.{t}")).await;
        }
        n
    }
    let (mut srcp, mut dest) = start_pair(ctx.path(), &job, &nats, &[]);
    let w = Waiter::new("a third of the rows on the target");
    loop {
        let n = target_rows(&mut dst, schema, &tables).await;
        if n >= total / 3 {
            break;
        }
        w.note(format!("{n} rows"));
        assert!(srcp.try_exited().is_none() && dest.try_exited().is_none(), "a process exited during the copy");
        assert!(!w.expired(), "timed out with {n} rows on the target");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    srcp.kill9();
    dest.kill9();
    drop((srcp, dest));
    let at_kill = target_rows(&mut dst, schema, &tables).await;
    let stage = position_row(&mut dst, job_name).await.map(|p| p.stage).unwrap_or_default();
    println!("kill -9 of src and dest with {at_kill} of {total} rows on the target, stage {stage}");
    assert_eq!(stage, "job_stage_full", "the copy finished before the kill; the test needs a slower copy");

    let dest_args = ["--transport", "nats", "--nats", nats.as_str(), "--only", "dest"];
    let src_args = ["--transport", "nats", "--nats", nats.as_str(), "--only", "src"];
    let mut dest = Dtle::run_with(ctx.path(), &job, "dest2.log", "data-dest", &dest_args);
    let mut srcp = Dtle::run_with(ctx.path(), &job, "src2.log", "data-src", &src_args);
    for t in tables {
        wait_tables_equal(&mut src, &mut dst, &format!("{schema}.{t}"), Some("id"), &mut dest).await;
    }
    let w = Waiter::new("the position reaches job_stage_incr");
    while position_row(&mut dst, job_name).await.map(|p| p.stage).as_deref() != Some("job_stage_incr") {
        assert!(srcp.try_exited().is_none() && dest.try_exited().is_none(), "a process exited during the copy");
        assert!(!w.expired(), "the resumed copy did not end");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    exec(&mut src, &format!("UPDATE {schema}.t1 SET v = v + 1 WHERE id <= 10")).await;
    wait_tables_equal(&mut src, &mut dst, &format!("{schema}.t1"), Some("id"), &mut dest).await;
    let (src_log, dest_log) = (srcp.log_text(), dest.log_text());
    srcp.stop_cleanly().await;
    dest.stop_cleanly().await;
    assert!(
        dest_log.contains("resuming the full copy from the chunks on the target"),
        "the dest did not offer to continue:\n{}",
        tail(&dest_log, 30)
    );
    assert!(
        src_log.contains("continuing it from the chunks on the target"),
        "the src did not continue:\n{}",
        tail(&src_log, 30)
    );
    let copied: u64 = src_log
        .lines()
        .filter(|l| l.contains("full copy: table read"))
        .filter_map(|l| l.split("rows=").nth(1)?.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    println!("the resumed src copied {copied} rows (the target had {at_kill} at the kill)");
    assert!(copied + at_kill / 2 <= total, "the resumed src copied {copied} rows: started again from zero?");
    for t in tables {
        let show = format!("SHOW CREATE TABLE {schema}.{t}");
        let (a, b) = (query_raw(&mut src, &show).await, query_raw(&mut dst, &show).await);
        assert_eq!(show_row(&a[0]), show_row(&b[0]), "{t}: the target's definition differs");
    }
}

// ---------------------------------------------------------------------------------------------

/// A full copy of a small, compressible table plus a few streamed changes, in one process over NATS with `link`
/// options; returns the src's link totals `(raw_bytes, sent_bytes)`.
async fn small_job_over_nats(ctx: &Ctx, nats: &str, schema: &str, link: &[&str]) -> (u64, u64) {
    let job_name = schema;
    let table = format!("{schema}.t");
    let mut src = ctx.s.src_conn().await;
    let mut dst = ctx.s.dst_conn().await;
    fresh_schema(&mut src, &mut dst, schema, job_name).await;
    exec(&mut src, &format!("CREATE TABLE {table} (id INT PRIMARY KEY, k INT NOT NULL, pad VARCHAR(200), b BLOB)"))
        .await;
    exec(
        &mut src,
        &format!(
            "INSERT INTO {table} SELECT seq, seq % 17, CONCAT(REPEAT('abcdef', 20), seq), \
             IF(seq % 5 = 0, NULL, REPEAT(CHAR(seq % 256), 64)) FROM {schema}.seq_1_to_3000"
        ),
    )
    .await;
    let job = ctx.job(
        &format!("{schema}.hcl"),
        job_name,
        ctx.s.src,
        ctx.s.dst,
        &format!("{}\nGtid = \"\"\nChunkSize = 200", replicate_schema(schema)),
    );
    let mut args = vec!["--transport", "nats", "--nats", nats];
    args.extend_from_slice(link);
    let mut dtle = Dtle::run_with(ctx.path(), &job, &format!("{schema}.log"), &format!("data-{schema}"), &args);
    wait_tables_equal(&mut src, &mut dst, &table, Some("id"), &mut dtle).await;

    exec(&mut src, &format!("INSERT INTO {table} VALUES (5001, 1, REPEAT('x', 200), 0x00ff), (5002, 2, NULL, NULL)"))
        .await;
    exec(&mut src, &format!("UPDATE {table} SET pad = CONCAT('upd ', id), b = NULL WHERE id % 100 = 0")).await;
    exec(&mut src, &format!("DELETE FROM {table} WHERE id BETWEEN 10 AND 60")).await;
    wait_target_caught_up(&ctx.s, &mut dst, job_name, &mut dtle).await;
    assert_tables_equal(&mut src, &mut dst, &table, Some("id")).await;
    dtle.stop_cleanly().await;
    let log = dtle.log_text();
    let totals = link_totals(&log).unwrap_or_else(|| panic!("no link totals in the log:\n{}", tail(&log, 30)));
    println!("{schema} {link:?}: link totals (raw, sent) = {totals:?}");
    totals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compression_and_rate_limit_options() {
    let Some(nats) = nats_url() else {
        return;
    };
    let Some(ctx) = Ctx::new("nats_compression").await else {
        return;
    };

    let (raw, sent) = small_job_over_nats(&ctx, &nats, "e2e_nats_lz4", &["--compression", "lz4"]).await;
    assert!(raw > 0 && sent < raw, "lz4 should shrink repetitive rows: raw {raw} bytes, sent {sent} bytes");

    let (raw, sent) =
        small_job_over_nats(&ctx, &nats, "e2e_nats_rate", &["--compression", "none", "--rate-limit", "200000"]).await;
    assert!(raw > 200_000, "the data set should exceed one second of the rate limit: raw {raw} bytes");
    assert_eq!(sent, raw, "--compression none should send the batches as they are");

    // An unknown compression is refused before anything runs.
    let job = ctx.job(
        "bad.hcl",
        "e2e_nats_bad_compression",
        ctx.s.src,
        ctx.s.dst,
        &format!("{}\nGtid = \"\"", replicate_schema("e2e_nats_bad_compression")),
    );
    let data = ctx.path().join("data-bad");
    let args: Vec<&OsStr> = vec![
        "run".as_ref(),
        job.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--no-progress-bar".as_ref(),
        "--transport".as_ref(),
        "nats".as_ref(),
        "--nats".as_ref(),
        nats.as_ref(),
        "--compression".as_ref(),
        "brotli".as_ref(),
    ];
    let f = run_to_exit(ctx.path(), "bad_compression", &args).await;
    println!("bad --compression: exit {:?}: {}", f.code, f.stderr.trim());
    assert!(
        f.code == Some(2) || f.code == Some(1),
        "--compression brotli: exit {:?}\n{}\n{}",
        f.code,
        f.stdout,
        f.stderr
    );
    assert!(f.stderr.contains("--compression"), "the error should name --compression:\n{}", f.stderr);
}

// ---------------------------------------------------------------------------------------------

/// Table names of a schema on a server (empty when the schema does not exist).
async fn table_names(conn: &mut Conn, schema: &str) -> Vec<String> {
    query_raw(
        conn,
        &format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{schema}' ORDER BY TABLE_NAME"
        ),
    )
    .await
    .into_iter()
    .map(|r| String::from_utf8_lossy(r[0].as_deref().unwrap_or_default()).into_owned())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_jobs_on_one_nats_do_not_mix() {
    let Some(nats) = nats_url() else {
        return;
    };
    let Some(ctx) = Ctx::new("nats_mix").await else {
        return;
    };
    let s = &ctx.s;
    // Job A: src -> dst; job B: src -> dst2. Same table name `t` in both, plus one table of each's own.
    let (schema_a, job_a) = ("e2e_nats_mix_a", "e2e_nats_mix_a");
    let (schema_b, job_b) = ("e2e_nats_mix_b", "e2e_nats_mix_b");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    let mut dst2 = s.conn(s.dst2).await;
    for (schema, job) in [(schema_a, job_a), (schema_b, job_b)] {
        reset_source_schema(&mut src, schema).await;
        reset_target(&mut dst, schema, job).await;
        reset_target(&mut dst2, schema, job).await;
    }
    exec(&mut src, &format!("CREATE TABLE {schema_a}.t (id INT PRIMARY KEY, who VARCHAR(10))")).await;
    exec(&mut src, &format!("CREATE TABLE {schema_a}.only_a (x INT)")).await;
    exec(&mut src, &format!("CREATE TABLE {schema_b}.t (id INT PRIMARY KEY, who VARCHAR(10))")).await;
    exec(&mut src, &format!("CREATE TABLE {schema_b}.only_b (y VARCHAR(5))")).await;
    exec(&mut src, &format!("INSERT INTO {schema_a}.t SELECT seq, 'a' FROM {schema_a}.seq_1_to_50")).await;
    exec(&mut src, &format!("INSERT INTO {schema_a}.only_a VALUES (1), (1), (2)")).await;
    exec(&mut src, &format!("INSERT INTO {schema_b}.t SELECT seq, 'b' FROM {schema_b}.seq_1_to_60")).await;
    exec(&mut src, &format!("INSERT INTO {schema_b}.only_b VALUES ('b1'), (NULL)")).await;

    let cfg = |schema: &str| format!("{}\nGtid = \"\"\nChunkSize = 20", replicate_schema(schema));
    let hcl_a = job_hcl(job_a, &cfg(schema_a), &s.conn_hcl(s.src), &s.conn_hcl(s.dst));
    let hcl_b = job_hcl(job_b, &cfg(schema_b), &s.conn_hcl(s.src), &s.conn_hcl(s.dst2));
    let dir_a = ctx.path().join("a");
    let dir_b = ctx.path().join("b");
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let (file_a, file_b) = (dir_a.join("job.hcl"), dir_b.join("job.hcl"));
    write_file(&file_a, &hcl_a);
    write_file(&file_b, &hcl_b);
    let (mut src_a, mut dest_a) = start_pair(&dir_a, &file_a, &nats, &[]);
    let (mut src_b, mut dest_b) = start_pair(&dir_b, &file_b, &nats, &[]);

    // Streamed changes on both while both run.
    for i in 0..20 {
        exec(&mut src, &format!("INSERT INTO {schema_a}.t VALUES ({}, 'a stream')", 100 + i)).await;
        exec(&mut src, &format!("INSERT INTO {schema_b}.t VALUES ({}, 'b stream')", 200 + i)).await;
    }
    exec(&mut src, &format!("UPDATE {schema_a}.t SET who = 'a upd' WHERE id <= 10")).await;
    exec(&mut src, &format!("DELETE FROM {schema_b}.t WHERE id <= 10")).await;
    exec(&mut src, &format!("INSERT INTO {schema_a}.only_a VALUES (3)")).await;
    exec(&mut src, &format!("INSERT INTO {schema_b}.only_b VALUES ('b2')")).await;

    {
        let mut all = [&mut src_a, &mut dest_a, &mut src_b, &mut dest_b];
        wait_caught_up_all(s, &mut dst, job_a, &mut all).await;
        wait_caught_up_all(s, &mut dst2, job_b, &mut all).await;
    }
    assert_tables_equal(&mut src, &mut dst, &format!("{schema_a}.t"), Some("id")).await;
    assert_tables_equal(&mut src, &mut dst, &format!("{schema_a}.only_a"), None).await;
    assert_tables_equal(&mut src, &mut dst2, &format!("{schema_b}.t"), Some("id")).await;
    assert_tables_equal(&mut src, &mut dst2, &format!("{schema_b}.only_b"), None).await;

    // Each target has only its own job's schema, tables and position.
    assert_eq!(table_names(&mut dst, schema_a).await, ["only_a", "t"], "tables of {schema_a} on dst");
    assert_eq!(table_names(&mut dst2, schema_b).await, ["only_b", "t"], "tables of {schema_b} on dst2");
    let schemata =
        |schema: &str| format!("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{schema}'");
    assert_eq!(query_u64(&mut dst, &schemata(schema_b)).await, 0, "job B's schema appeared on job A's target");
    assert_eq!(query_u64(&mut dst2, &schemata(schema_a)).await, 0, "job A's schema appeared on job B's target");
    assert!(position_row(&mut dst, job_b).await.is_none(), "job B has a position on job A's target");
    assert!(position_row(&mut dst2, job_a).await.is_none(), "job A has a position on job B's target");
    let whos = |schema: &str| format!("SELECT DISTINCT LEFT(who, 1) FROM {schema}.t ORDER BY 1");
    assert_eq!(query_raw(&mut dst, &whos(schema_a)).await, vec![vec![Some(b"a".to_vec())]], "rows of {schema_a}.t");
    assert_eq!(query_raw(&mut dst2, &whos(schema_b)).await, vec![vec![Some(b"b".to_vec())]], "rows of {schema_b}.t");

    src_a.stop_cleanly().await;
    src_b.stop_cleanly().await;
    dest_a.stop_cleanly().await;
    dest_b.stop_cleanly().await;
}
