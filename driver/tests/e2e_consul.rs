//! End-to-end tests of positions kept in Consul (`dtle run --consul`): the key layout dtle users read, resuming a
//! re-created job from Consul, `dtle positions reset`, and Consul going away. Real MariaDB servers
//! (`tests/mariadb.sh up`) and a real Consul agent (`tests/consul.sh start`).
//!
//!   eval "$(tests/mariadb.sh env)"; eval "$(tests/consul.sh env)"
//!   cargo test -p dtle --test e2e_consul -- --test-threads=2 --nocapture
//! Without DTLE_TEST_CONSUL_ADDR (or the MariaDB servers) the tests print "skipping: ..." and pass, unless
//! DTLE_TEST_REQUIRE_SERVERS=1.

mod common;

use std::ffi::OsStr;

use common::*;
use mysql_async::Conn;

fn refs(v: &[std::ffi::OsString]) -> Vec<&OsStr> {
    v.iter().map(|a| a.as_os_str()).collect()
}

async fn fresh_schema(src: &mut Conn, dst: &mut Conn, schema: &str, job: &str) {
    reset_source_schema(src, schema).await;
    reset_target(dst, schema, job).await;
}

/// `t (id, v)` with `n` rows.
async fn create_t(src: &mut Conn, schema: &str, n: u32) {
    exec(src, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, v VARCHAR(40))")).await;
    exec(src, &format!("INSERT INTO {schema}.t SELECT seq, CONCAT('row ', seq) FROM {schema}.seq_1_to_{n}")).await;
}

/// A few streamed changes on `t`, ids from `base`.
async fn some_changes(src: &mut Conn, schema: &str, base: u32) {
    for i in 0..10 {
        exec(src, &format!("INSERT INTO {schema}.t VALUES ({}, 'streamed {}')", base + i, base + i)).await;
    }
    exec(src, &format!("UPDATE {schema}.t SET v = CONCAT(v, ' upd') WHERE id % 7 = 0")).await;
    exec(src, &format!("DELETE FROM {schema}.t WHERE id % 11 = 0")).await;
}

/// The job's keys in Consul: `(key, decoded value)` from `GET /v1/kv/dtle/<job>?recurse`, `None` on 404.
fn consul_job_keys(addr: &str, job: &str) -> Option<(String, Vec<(String, String)>)> {
    let (status, body) = http_request(addr, "GET", &format!("/v1/kv/dtle/{job}?recurse"))
        .unwrap_or_else(|e| panic!("consul GET dtle/{job}?recurse: {e}"));
    match status {
        404 => return None,
        200 => {}
        other => panic!("consul GET dtle/{job}?recurse: HTTP {other}: {}", String::from_utf8_lossy(&body)),
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("consul answer is not a JSON list ({e}): {text}"));
    let keys = entries
        .iter()
        .map(|e| {
            let key = e["Key"].as_str().unwrap_or_default().to_string();
            let value = match e["Value"].as_str() {
                Some(b64) => String::from_utf8_lossy(&base64_decode(b64).expect("base64 value")).into_owned(),
                None => String::new(),
            };
            (key, value)
        })
        .collect();
    Some((text, keys))
}

/// Polls until the process's log contains `needle`.
async fn wait_log(dtle: &mut Dtle, needle: &str) {
    let w = Waiter::new(format!("the log of {} says {needle:?}", dtle.label));
    loop {
        if dtle.log_text().contains(needle) {
            return;
        }
        w.tick(Some(dtle)).await;
    }
}

// ---------------------------------------------------------------------------------------------

const PW_USER: &str = "e2e_consul_pw";
const PW_SECRET: &str = "Sekr1t-e2e-consul-7f3a9Q";

/// A user of our own with a password that appears nowhere else (not in the binlog either).
async fn create_secret_user(conn: &mut Conn) {
    exec(conn, "SET SESSION sql_log_bin = 0").await;
    exec(conn, &format!("CREATE OR REPLACE USER '{PW_USER}'@'127.0.0.1' IDENTIFIED BY '{PW_SECRET}'")).await;
    exec(conn, &format!("GRANT ALL PRIVILEGES ON *.* TO '{PW_USER}'@'127.0.0.1'")).await;
    exec(conn, "SET SESSION sql_log_bin = 1").await;
}

async fn drop_secret_user(conn: &mut Conn) {
    exec(conn, "SET SESSION sql_log_bin = 0").await;
    exec(conn, &format!("DROP USER IF EXISTS '{PW_USER}'@'127.0.0.1'")).await;
    exec(conn, "SET SESSION sql_log_bin = 1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn positions_in_consul_layout() {
    let Some(consul) = consul_addr() else {
        return;
    };
    let Some(ctx) = Ctx::new("consul_layout").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job_name) = ("e2e_consul_layout", "e2e_consul_layout");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    consul_delete_tree(&consul, &format!("dtle/{job_name}"));
    fresh_schema(&mut src, &mut dst, schema, job_name).await;
    create_secret_user(&mut src).await;
    create_secret_user(&mut dst).await;
    create_t(&mut src, schema, 100).await;

    let hcl = job_hcl(
        job_name,
        &format!("{}\nGtid = \"\"\nChunkSize = 30", replicate_schema(schema)),
        &s.conn_hcl_with(&s.host, s.src, PW_USER, PW_SECRET),
        &s.conn_hcl_with(&s.host, s.dst, PW_USER, PW_SECRET),
    );
    let job = ctx.path().join("job.hcl");
    write_file(&job, &hcl);
    let mut dtle = Dtle::run_with(ctx.path(), &job, "dtle.log", "data", &["--consul", &consul]);
    let table = format!("{schema}.t");
    wait_tables_equal(&mut src, &mut dst, &table, Some("id"), &mut dtle).await;
    some_changes(&mut src, schema, 1000).await;
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    assert_tables_equal(&mut src, &mut dst, &table, Some("id")).await;
    dtle.stop_cleanly().await;

    let p = position_row(&mut dst, job_name).await.expect("a position row on the target");
    println!("target position: {p:?}");
    let gtid = consul_get_raw(&consul, &format!("dtle/{job_name}/Gtid")).expect("dtle/<job>/Gtid in consul");
    assert_eq!(gtid, p.gtid_set, "consul Gtid vs the target's position row");
    assert!(gtid_seq(&gtid, 0).is_some(), "consul Gtid {gtid:?} is not a MariaDB GTID list (0-1-100)");
    let bfp = consul_get_raw(&consul, &format!("dtle/{job_name}/BinlogFilePos")).expect("BinlogFilePos in consul");
    let (file, pos) =
        bfp.split_once("//dtle//").unwrap_or_else(|| panic!("BinlogFilePos {bfp:?} is not file//dtle//pos"));
    assert!(!file.is_empty() && pos.parse::<u64>().is_ok(), "BinlogFilePos {bfp:?} is not file//dtle//pos");
    if !p.binlog_file.is_empty() {
        assert_eq!(bfp, format!("{}//dtle//{}", p.binlog_file, p.binlog_pos), "consul BinlogFilePos vs the target");
    }
    let stage = consul_get_raw(&consul, &format!("dtle/{job_name}/JobStage")).expect("JobStage in consul");
    assert_eq!(stage, "job_stage_incr");
    // dtle's full-copy progress: [exec_rows,total_rows], complete once the copy is done (100 rows copied).
    let dump = consul_get_raw(&consul, &format!("dtle/{job_name}/DumpProgress")).expect("DumpProgress in consul");
    assert_eq!(dump, "[100,100]", "DumpProgress after the full copy");

    let (text, keys) = consul_job_keys(&consul, job_name).expect("the job's keys in consul");
    println!("consul keys: {:?}", keys.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>());
    let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    for leaf in ["Gtid", "BinlogFilePos", "JobStage", "Checkpoint"] {
        let key = format!("dtle/{job_name}/{leaf}");
        assert!(names.contains(&key.as_str()), "{key} missing from consul: {names:?}");
    }
    assert!(!text.contains(PW_SECRET), "the password is in consul (raw answer)");
    for (k, v) in &keys {
        assert!(!v.contains(PW_SECRET), "the password is in consul key {k}: {v}");
        assert!(!v.to_ascii_lowercase().contains("password"), "consul key {k} has a password field: {v}");
    }
    let cp = &keys.iter().find(|(k, _)| k.ends_with("/Checkpoint")).unwrap().1;
    let cp: serde_json::Value =
        serde_json::from_str(cp).unwrap_or_else(|e| panic!("Checkpoint is not JSON ({e}): {cp}"));
    assert!(cp.is_object(), "Checkpoint: {cp}");

    drop_secret_user(&mut src).await;
    drop_secret_user(&mut dst).await;
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recreated_job_resumes_from_consul() {
    let Some(consul) = consul_addr() else {
        return;
    };
    let Some(ctx) = Ctx::new("consul_resume").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job_name) = ("e2e_consul_resume", "e2e_consul_resume");
    let table = format!("{schema}.t");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    consul_delete_tree(&consul, &format!("dtle/{job_name}"));
    fresh_schema(&mut src, &mut dst, schema, job_name).await;
    create_t(&mut src, schema, 200).await;
    let job = ctx.job(
        "job.hcl",
        job_name,
        s.src,
        s.dst,
        &format!("{}\nGtid = \"\"\nChunkSize = 50", replicate_schema(schema)),
    );

    let mut dtle = Dtle::run_with(ctx.path(), &job, "run1.log", "data", &["--consul", &consul]);
    wait_tables_equal(&mut src, &mut dst, &table, Some("id"), &mut dtle).await;
    some_changes(&mut src, schema, 1000).await;
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    dtle.stop_cleanly().await;
    drop(dtle);
    let p = position_row(&mut dst, job_name).await.expect("a position row after the first run");
    let stored = consul_get_raw(&consul, &format!("dtle/{job_name}/Gtid")).expect("a position in consul");
    assert_eq!(stored, p.gtid_set, "consul and the target after the first run");

    // The target's bookkeeping is re-created (its position row is gone) but its data stays.
    exec(&mut dst, &format!("DELETE FROM dtle.replication_position WHERE job_name = '{job_name}'")).await;
    assert!(position_row(&mut dst, job_name).await.is_none());
    some_changes(&mut src, schema, 2000).await;
    exec(&mut src, &format!("UPDATE {table} SET v = 'changed while stopped' WHERE id BETWEEN 1 AND 5")).await;

    // Gtid = "" alone would mean a full copy; the position in Consul must win.
    let mut dtle = Dtle::run_with(ctx.path(), &job, "run2.log", "data", &["--consul", &consul]);
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    assert_tables_equal(&mut src, &mut dst, &table, Some("id")).await;
    dtle.stop_cleanly().await;
    let log = dtle.log_text();
    assert!(
        log.contains("resuming from the position store"),
        "the second run did not say it resumed from the position store:\n{}",
        tail(&log, 40)
    );
    assert!(
        log.contains(&stored),
        "the second run's log does not name Consul's position {stored}:\n{}",
        tail(&log, 40)
    );
    assert!(!log.contains("full copy"), "the second run did a full copy:\n{}", tail(&log, 40));
    assert!(
        !log.contains("Duplicate entry") && !log.contains("1062"),
        "duplicate-key errors in the second run:\n{}",
        tail(&log, 40)
    );
    assert_tables_equal(&mut src, &mut dst, &table, Some("id")).await;
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn positions_reset() {
    let Some(consul) = consul_addr() else {
        return;
    };
    let Some(ctx) = Ctx::new("consul_reset").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job_name) = ("e2e_consul_reset", "e2e_consul_reset");
    let table = format!("{schema}.t");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    consul_delete_tree(&consul, &format!("dtle/{job_name}"));
    fresh_schema(&mut src, &mut dst, schema, job_name).await;
    create_t(&mut src, schema, 150).await;
    let job = ctx.job(
        "job.hcl",
        job_name,
        s.src,
        s.dst,
        &format!("{}\nGtid = \"\"\nChunkSize = 40", replicate_schema(schema)),
    );
    let data = ctx.path().join("data");

    let mut dtle = Dtle::run_with(ctx.path(), &job, "run1.log", "data", &["--consul", &consul]);
    wait_tables_equal(&mut src, &mut dst, &table, Some("id"), &mut dtle).await;
    some_changes(&mut src, schema, 1000).await;
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    dtle.stop_cleanly().await;
    drop(dtle);
    assert!(consul_job_keys(&consul, job_name).is_some(), "no keys in consul after the first run");
    assert!(position_row(&mut dst, job_name).await.is_some(), "no position row after the first run");

    let cmd = |action: &'static str| -> Vec<std::ffi::OsString> {
        vec![
            "positions".into(),
            action.into(),
            job.clone().into(),
            "--consul".into(),
            consul.clone().into(),
            "--data-dir".into(),
            data.clone().into(),
        ]
    };
    let shown = run_to_exit(ctx.path(), "show_before", &refs(&cmd("show"))).await;
    println!("positions show (before reset): exit {:?}\n{}", shown.code, shown.stdout.trim());
    assert_eq!(shown.code, Some(0), "positions show: {}", shown.stderr);
    assert!(shown.stdout.contains("stage=job_stage_incr"), "positions show: {}", shown.stdout);

    let f = run_to_exit(ctx.path(), "reset", &refs(&cmd("reset"))).await;
    println!("positions reset: exit {:?}: {}", f.code, f.stdout.trim());
    assert_eq!(f.code, Some(0), "positions reset failed:\n{}\n{}", f.stdout, f.stderr);
    let left = consul_job_keys(&consul, job_name);
    assert!(left.is_none(), "keys left in consul after reset: {:?}", left.map(|l| l.1));
    assert!(position_row(&mut dst, job_name).await.is_none(), "the target's position row survived the reset");
    let shown = run_to_exit(ctx.path(), "show_after", &refs(&cmd("show"))).await;
    println!("positions show (after reset): exit {:?}\n{}", shown.code, shown.stdout.trim());
    assert!(shown.stdout.contains("no position"), "positions show after reset: {}", shown.stdout);

    // The next run starts as configured: a full copy into a fresh target schema.
    exec(&mut dst, &format!("DROP DATABASE `{schema}`")).await;
    exec(&mut src, &format!("INSERT INTO {table} VALUES (5000, 'after reset')")).await;
    let mut dtle = Dtle::run_with(ctx.path(), &job, "run2.log", "data", &["--consul", &consul]);
    wait_tables_equal(&mut src, &mut dst, &table, Some("id"), &mut dtle).await;
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    some_changes(&mut src, schema, 3000).await;
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    assert_tables_equal(&mut src, &mut dst, &table, Some("id")).await;
    dtle.stop_cleanly().await;
    let log = dtle.log_text();
    assert!(log.contains("full copy"), "the run after the reset did not do a full copy:\n{}", tail(&log, 40));
    assert!(!log.contains("resuming from"), "the run after the reset resumed instead:\n{}", tail(&log, 40));
    let p = position_row(&mut dst, job_name).await.expect("a position row after the second run");
    let stored = consul_get_raw(&consul, &format!("dtle/{job_name}/Gtid"));
    assert_eq!(stored.as_deref(), Some(p.gtid_set.as_str()), "consul and the target after the second run");
}

// ---------------------------------------------------------------------------------------------

const OWN_CONSUL_PORT: u16 = 8620;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consul_restart_mid_stream() {
    let Some(_) = consul_addr() else {
        return;
    };
    let Some(ctx) = Ctx::new("consul_restart").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job_name) = ("e2e_consul_restart", "e2e_consul_restart");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    fresh_schema(&mut src, &mut dst, schema, job_name).await;
    create_load_tables(&mut src, schema).await;
    let job = ctx.job(
        "job.hcl",
        job_name,
        s.src,
        s.dst,
        &format!("{}\nGtid = \"\"\nChunkSize = 50", replicate_schema(schema)),
    );
    // A fresh agent of our own (destroyed, data included, when the test ends).
    let server = ScriptServer::start("consul.sh", OWN_CONSUL_PORT, "destroy").await;
    let consul = format!("127.0.0.1:{OWN_CONSUL_PORT}");
    consul_delete_tree(&consul, &format!("dtle/{job_name}"));

    let mut dtle = Dtle::run_with(ctx.path(), &job, "dtle.log", "data", &["--consul", &consul]);
    let mut load = Load::start(s, schema);
    load.wait_progress(150, &mut [&mut dtle]).await;
    wait_position_moves(&mut dst, job_name, 5, &mut [&mut dtle]).await;
    {
        let w = Waiter::new("a position in consul before it stops");
        while consul_get_raw(&consul, &format!("dtle/{job_name}/Gtid")).is_none() {
            w.tick(Some(&mut dtle)).await;
        }
    }

    server.run("stop").await;
    println!("consul stopped after {} source transactions", load.txs());
    // Replication goes on without Consul: the target keeps following.
    load.wait_progress(150, &mut [&mut dtle]).await;
    wait_position_moves(&mut dst, job_name, 5, &mut [&mut dtle]).await;
    wait_log(&mut dtle, "stored position is stale").await;
    load.wait_progress(100, &mut [&mut dtle]).await;

    server.run("start").await;
    println!("consul started again after {} source transactions", load.txs());
    load.wait_progress(150, &mut [&mut dtle]).await;
    wait_position_moves(&mut dst, job_name, 5, &mut [&mut dtle]).await;
    wait_log(&mut dtle, "position store reachable again").await;
    load.stop().await;

    wait_caught_up_all(s, &mut dst, job_name, &mut [&mut dtle]).await;
    assert_load_tables_equal(&mut src, &mut dst, schema).await;
    dtle.stop_cleanly().await;
    assert_load_tables_equal(&mut src, &mut dst, schema).await;
    let p = position_row(&mut dst, job_name).await.expect("a position row on the target");
    let stored = consul_get_raw(&consul, &format!("dtle/{job_name}/Gtid"));
    assert_eq!(stored.as_deref(), Some(p.gtid_set.as_str()), "consul's Gtid vs the target's position");
    let stage = consul_get_raw(&consul, &format!("dtle/{job_name}/JobStage"));
    assert_eq!(stage.as_deref(), Some("job_stage_incr"));
    drop(server);
}

// ---------------------------------------------------------------------------------------------

/// Like `wait_tables_equal`, but fails at once (naming the cause) when the run keeps restarting because the
/// position store is unreachable: an unreachable store must not stop replication.
async fn wait_equal_despite_store(src: &mut Conn, dst: &mut Conn, table: &str, dtle: &mut Dtle) {
    let w = Waiter::new(format!("{table} on the target equals the source (position store unreachable)"));
    loop {
        let (n, m) = (count(src, table).await, count_if_exists(dst, table).await);
        if n == m && table_diff(src, dst, table, Some("id")).await.is_none() {
            return;
        }
        w.note(format!("source has {n} rows, target has {m}"));
        let log = dtle.log_text();
        if let Some(line) = log.lines().find(|l| l.contains("transient failure") && l.contains("store unavailable")) {
            panic!(
                "replication does not start while the position store is unreachable: the run restarts on a failed \
                 position-store read instead of going on (source {n} rows, target {m}):\n  {line}"
            );
        }
        w.tick(Some(dtle)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_consul_address() {
    let Some(ctx) = Ctx::new("consul_bad").await else {
        return;
    };
    let s = &ctx.s;
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    let bad = ["--consul", "127.0.0.1:1"];

    // (a) The target already has the job's position (a first run with the local store): with an unreachable
    // Consul, the job resumes, the target follows, the log warns, and SIGINT still exits 0.
    let (schema, job_name) = ("e2e_consul_bad_a", "e2e_consul_bad_a");
    let table = format!("{schema}.t");
    fresh_schema(&mut src, &mut dst, schema, job_name).await;
    create_t(&mut src, schema, 100).await;
    let job =
        ctx.job("a.hcl", job_name, s.src, s.dst, &format!("{}\nGtid = \"\"\nChunkSize = 30", replicate_schema(schema)));
    let mut dtle = Dtle::run_with(ctx.path(), &job, "a1.log", "data-a", &[]);
    wait_tables_equal(&mut src, &mut dst, &table, Some("id"), &mut dtle).await;
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    dtle.stop_cleanly().await;
    drop(dtle);
    some_changes(&mut src, schema, 1000).await;
    let mut dtle = Dtle::run_with(ctx.path(), &job, "a2.log", "data-a", &bad);
    wait_equal_despite_store(&mut src, &mut dst, &table, &mut dtle).await;
    some_changes(&mut src, schema, 2000).await;
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    assert_tables_equal(&mut src, &mut dst, &table, Some("id")).await;
    wait_log(&mut dtle, "stored position is stale").await;
    dtle.stop_cleanly().await;
    drop(dtle);

    // (b) A new job (nothing on the target, Gtid = ""): the full copy and streaming must work as well.
    let (schema, job_name) = ("e2e_consul_bad_b", "e2e_consul_bad_b");
    let table = format!("{schema}.t");
    fresh_schema(&mut src, &mut dst, schema, job_name).await;
    create_t(&mut src, schema, 100).await;
    let job =
        ctx.job("b.hcl", job_name, s.src, s.dst, &format!("{}\nGtid = \"\"\nChunkSize = 30", replicate_schema(schema)));
    let mut dtle = Dtle::run_with(ctx.path(), &job, "b.log", "data-b", &bad);
    wait_equal_despite_store(&mut src, &mut dst, &table, &mut dtle).await;
    some_changes(&mut src, schema, 1000).await;
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    assert_tables_equal(&mut src, &mut dst, &table, Some("id")).await;
    wait_log(&mut dtle, "stored position is stale").await;
    dtle.stop_cleanly().await;
    assert_tables_equal(&mut src, &mut dst, &table, Some("id")).await;
}
