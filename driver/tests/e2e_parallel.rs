//! Parallel apply (`ParallelWorkers`) keeps the target exact: a backlog with hot rows updated by many
//! transactions, rows moving between keys, a secondary unique key whose values move between rows (an ordering the
//! row keys cannot see), a table without a key, and DDL between DML; then a crash after a parallel group's
//! partitions committed but before its position was written (a failpoint), which must neither lose nor repeat any
//! transaction.

mod common;

use std::time::Duration;

use common::*;
use mysql_async::Conn;

const TABLES: [&str; 4] = ["tp", "th", "tu", "tn"];

async fn create_tables(src: &mut Conn, schema: &str) {
    exec(src, &format!("CREATE TABLE {schema}.tp (id INT PRIMARY KEY, v INT NOT NULL, s VARCHAR(20))")).await;
    exec(src, &format!("INSERT INTO {schema}.tp SELECT seq, 0, 'init' FROM seq_1_to_5000")).await;
    exec(src, &format!("CREATE TABLE {schema}.th (id INT PRIMARY KEY, v INT NOT NULL)")).await;
    exec(src, &format!("INSERT INTO {schema}.th SELECT seq, 0 FROM seq_1_to_5")).await;
    exec(
        src,
        &format!("CREATE TABLE {schema}.tu (id INT PRIMARY KEY, email VARCHAR(20) NOT NULL, UNIQUE KEY (email))"),
    )
    .await;
    exec(src, &format!("INSERT INTO {schema}.tu SELECT seq, CONCAT('e', seq) FROM seq_1_to_50")).await;
    exec(src, &format!("CREATE TABLE {schema}.tn (a INT, b VARCHAR(10))")).await;
}

/// `n` source transactions of the kinds above, with an ALTER in the middle.
async fn backlog(src: &mut Conn, schema: &str, n: u32, rng: &mut Rng) {
    let mut next_email = 1000;
    for i in 0..n {
        if i == n / 2 {
            exec(src, &format!("ALTER TABLE {schema}.tp ADD COLUMN added INT NOT NULL DEFAULT 5")).await;
        }
        let sql = match rng.below(6) {
            // independent rows
            0 | 1 => {
                let id = 1 + rng.below(5000);
                format!("UPDATE {schema}.tp SET v = v + 1, s = 'u{i}' WHERE id = {id}")
            }
            // hot rows, several per transaction
            2 => format!(
                "BEGIN; UPDATE {schema}.th SET v = v + 1 WHERE id = {}; UPDATE {schema}.th SET v = (v * 2 + 1) % 1000003 WHERE id = {}; COMMIT",
                1 + rng.below(5),
                1 + rng.below(5)
            ),
            // a row moves to a new key; a row is deleted and inserted again
            3 => {
                let id = 1 + rng.below(5000);
                format!(
                    "BEGIN; DELETE FROM {schema}.tp WHERE id = {id}; INSERT INTO {schema}.tp (id, v, s) VALUES ({id}, {i}, 'again') ON DUPLICATE KEY UPDATE v = {i}; COMMIT"
                )
            }
            // a unique value moves from one row to another in two transactions: the second must follow the first
            4 => {
                let (a, b) = (1 + rng.below(50), 1 + rng.below(50));
                if a == b {
                    continue;
                }
                next_email += 1;
                let moved: Option<String> = {
                    use mysql_async::prelude::*;
                    src.query_first(format!("SELECT email FROM {schema}.tu WHERE id = {a}")).await.unwrap()
                };
                let Some(moved) = moved else { continue };
                exec(src, &format!("UPDATE {schema}.tu SET email = 'n{next_email}' WHERE id = {a}")).await;
                format!("UPDATE {schema}.tu SET email = '{moved}' WHERE id = {b}")
            }
            // a table without a key
            _ => format!("INSERT INTO {schema}.tn VALUES ({}, 'b{}')", rng.below(20), rng.below(3)),
        };
        exec(src, &sql).await;
    }
}

async fn assert_all_equal(src: &mut Conn, dst: &mut Conn, schema: &str) {
    for t in TABLES {
        let order = if t == "tn" { None } else { Some("id") };
        assert_tables_equal(src, dst, &format!("{schema}.{t}"), order).await;
    }
}

fn conf(schema: &str) -> String {
    format!("{}\nParallelWorkers = 4", replicate_schema(schema))
}

/// The job's tables on the source, copied to the target by a first run, then `n` transactions of backlog written
/// while dtle is down. Returns the source and target connections and the job file.
async fn copied_then_backlog(ctx: &Ctx, schema: &str, job: &str, n: u32) -> (Conn, Conn, std::path::PathBuf) {
    let s = &ctx.s;
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job).await;
    exec(&mut src, "USE mysql").await;
    create_tables(&mut src, schema).await;
    let j = ctx.job("job.hcl", job, s.src, s.dst, &conf(schema));
    let mut d = Dtle::run(ctx.path(), &j);
    wait_target_caught_up(s, &mut dst, job, &mut d).await;
    d.stop_cleanly().await;
    seeded_backlog(&mut src, schema, n).await;
    (src, dst, j)
}

async fn seeded_backlog(src: &mut Conn, schema: &str, n: u32) {
    let (mut rng, seed) = Rng::from_time();
    println!("backlog seed {seed}");
    backlog(src, schema, n, &mut rng).await;
}

/// Runs the job with `DTLE_FAILPOINT=parallel-before-position:<group>`: the process aborts after the partitions of
/// that parallel group committed, before the position row.
async fn run_until_failpoint(ctx: &Ctx, job_file: &std::path::Path, group: u32) {
    let log = ctx.path().join("crash.log");
    let data = ctx.path().join("data");
    let mut crashing = Dtle::spawn_with_env(
        &log,
        &["run".as_ref(), job_file.as_os_str(), "--data-dir".as_ref(), data.as_os_str(), "--no-progress-bar".as_ref()],
        &[("DTLE_FAILPOINT", &format!("parallel-before-position:{group}"))],
    );
    let st = crashing.wait_exit(Duration::from_secs(120)).await;
    assert!(!st.success(), "the failpoint stops the process: {st}");
    assert!(read_log(&log).contains("failpoint parallel-before-position"), "{}", tail(&read_log(&log), 20));
}

#[tokio::test]
async fn parallel_apply_of_a_backlog_with_conflicting_rows_and_ddl() {
    let Some(ctx) = Ctx::new("parallel").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job) = ("e2e_parallel", "e2e_parallel_job");
    let (mut src, mut dst, j) = copied_then_backlog(&ctx, schema, job, 3000).await;
    let mut d = Dtle::run(ctx.path(), &j);
    wait_target_caught_up(s, &mut dst, job, &mut d).await;
    assert_all_equal(&mut src, &mut dst, schema).await;
    d.stop_cleanly().await;
    let log = d.log_text();
    let line = log.lines().rev().find(|l| l.contains("parallel apply")).unwrap_or_default().to_string();
    println!("{line}");
    assert!(line.contains("parallel_groups="), "the dest reports its parallel groups: {}", tail(&log, 20));
    assert!(!line.contains("parallel_groups=0 "), "the backlog was applied in parallel: {line}");
}

#[tokio::test]
async fn a_crash_between_parallel_commits_and_the_position_loses_and_repeats_nothing() {
    let Some(ctx) = Ctx::new("parallel_crash").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job) = ("e2e_parallel_crash", "e2e_parallel_crash_job");
    let (mut src, mut dst, j) = copied_then_backlog(&ctx, schema, job, 2000).await;
    run_until_failpoint(&ctx, &j, 2).await;
    let applied: u64 =
        query_u64(&mut dst, &format!("SELECT COUNT(*) FROM dtle.replication_applied WHERE job_name = '{job}'")).await;
    assert!(applied > 0, "transactions committed by the partitions are recorded as applied");

    let mut d = Dtle::run(ctx.path(), &j);
    wait_target_caught_up(s, &mut dst, job, &mut d).await;
    assert_all_equal(&mut src, &mut dst, schema).await;
    d.stop_cleanly().await;
    assert!(d.log_text().contains("skipped when read again"), "{}", tail(&d.log_text(), 20));
}

#[tokio::test]
async fn a_crash_in_an_early_parallel_group_of_a_gtid_started_job() {
    let Some(ctx) = Ctx::new("parallel_first").await else {
        return;
    };
    let s = &ctx.s;
    let schema = "e2e_parallel_first";
    let job = "e2e_parallel_first_job";
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job).await;
    // Same tables on both sides, then the job starts after the source's GTID: no full copy, no position row yet.
    exec(&mut dst, &format!("CREATE DATABASE {schema}")).await;
    for c in [&mut src, &mut dst] {
        exec(c, "USE mysql").await;
        create_tables(c, schema).await;
    }
    let start = gtid_binlog_pos(&mut src).await;
    seeded_backlog(&mut src, schema, 1500).await;
    let j = ctx.job("job.hcl", job, s.src, s.dst, &format!("{}\nGtid = \"{start}\"", conf(schema)));
    run_until_failpoint(&ctx, &j, 1).await;

    // Whether a position was recorded before the crash depends on how the first groups formed; with only the
    // partitions' marker row (no position in it), the restart must start from the job file's Gtid again.
    let recorded = position_row(&mut dst, job).await.filter(|p| !p.flavor.is_empty());
    println!("position before the restart: {recorded:?}");

    let mut d = Dtle::run(ctx.path(), &j);
    wait_target_caught_up(s, &mut dst, job, &mut d).await;
    assert_all_equal(&mut src, &mut dst, schema).await;
    d.stop_cleanly().await;
    let log = d.log_text();
    assert!(log.contains("skipped when read again"), "{}", tail(&log, 20));
    let expected = match recorded {
        None => "starting incremental replication after the configured Gtid",
        Some(_) => "resuming from the position recorded on the target",
    };
    assert!(log.contains(expected), "{}", tail(&log, 20));
}

/// What a partition leaves when it commits before the job ever recorded a position: its marker row, with no
/// position in it. That is not a position: the job starts from its job file (and skips what the partitions applied).
#[tokio::test]
async fn a_marker_only_row_is_not_a_position() {
    let Some(ctx) = Ctx::new("parallel_marker_only").await else {
        return;
    };
    let s = &ctx.s;
    let schema = "e2e_parallel_marker";
    let job = "e2e_parallel_marker_job";
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job).await;
    exec(&mut dst, &format!("CREATE DATABASE {schema}")).await;
    for c in [&mut src, &mut dst] {
        exec(c, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY)")).await;
    }
    let start = gtid_binlog_pos(&mut src).await;
    exec(&mut src, &format!("INSERT INTO {schema}.t VALUES (1), (2)")).await;
    exec(&mut dst, "CREATE DATABASE IF NOT EXISTS dtle").await;
    let j = ctx.job("job.hcl", job, s.src, s.dst, &format!("{}\nGtid = \"{start}\"", conf(schema)));
    // The applier creates its tables on connect; a first run that stops at once makes them.
    let mut d = Dtle::run(ctx.path(), &j);
    wait_target_caught_up(s, &mut dst, job, &mut d).await;
    d.stop_cleanly().await;
    reset_target(&mut dst, schema, job).await;
    exec(&mut dst, &format!("CREATE DATABASE {schema}")).await;
    exec(&mut dst, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY)")).await;
    exec(
        &mut dst,
        &format!(
            "INSERT INTO dtle.replication_position (job_name, stage, flavor, gtid_set, binlog_file, binlog_pos, origin) \
             VALUES ('{job}', 'job_stage_incr', '', '', '', 0, '1')"
        ),
    )
    .await;
    // A new data dir: no position in the local store either.
    let mut d = Dtle::run_with(ctx.path(), &j, "second.log", "data2", &[]);
    wait_target_caught_up(s, &mut dst, job, &mut d).await;
    assert_tables_equal(&mut src, &mut dst, &format!("{schema}.t"), Some("id")).await;
    d.stop_cleanly().await;
    let log = d.log_text();
    assert!(log.contains("starting incremental replication after the configured Gtid"), "{}", tail(&log, 20));
}

/// Regression (issue 18, lag): with `ParallelWorkers = 4` a small group — a few source transactions, as a steady
/// load brings them — is applied serially in one target transaction. In parallel it took two commit rounds (the
/// partitions', then the position's), most of the lag at 1,000 tx/s.
#[tokio::test]
async fn a_small_group_is_applied_serially_even_with_parallel_workers() {
    let Some(ctx) = Ctx::new("parallel_small").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job) = ("e2e_parallel_small", "e2e_parallel_small_job");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, v INT NOT NULL)")).await;
    let j = ctx.job("job.hcl", job, s.src, s.dst, &conf(schema));
    let mut d = Dtle::run(ctx.path(), &j);
    wait_target_caught_up(s, &mut dst, job, &mut d).await;
    d.stop_cleanly().await;
    // Six independent transactions while dtle is down: read again at once, they form one small group (fewer than
    // two per worker), which the parallel apply would split into partitions.
    for id in 1..=6 {
        exec(&mut src, &format!("INSERT INTO {schema}.t VALUES ({id}, {id})")).await;
    }
    let log = ctx.path().join("second.log");
    let mut d = Dtle::run_with(ctx.path(), &j, "second.log", "data", &[]);
    wait_target_caught_up(s, &mut dst, job, &mut d).await;
    d.stop_cleanly().await;
    assert_tables_equal(&mut src, &mut dst, &format!("{schema}.t"), Some("id")).await;
    let text = read_log(&log);
    assert!(!text.contains("parallel apply"), "the small group was split across workers: {}", tail(&text, 20));
}
