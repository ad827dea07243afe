//! A full copy killed with -9 in the middle, while the source keeps changing, continues from the chunks already on
//! the target instead of starting again, and the target ends identical to the source (keys moved by updates,
//! deleted and re-inserted rows, a keyless table copied before the kill).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use mysql_async::prelude::Queryable;

const SCHEMA: &str = "e2e_snap_resume";
const JOB: &str = "e2e_snap_resume";
const TABLES: [&str; 3] = ["t1", "t2", "t3"];
const ROWS: u64 = 40_000;

/// Small transactions on every table until `stop`: inserts, updates, deletes, key changes.
async fn writes(s: Servers, stop: Arc<AtomicBool>, txs: Arc<AtomicU64>, seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let mut conn = s.try_conn(s.src).await?;
    let mut next_id = 10_000_000u64;
    while !stop.load(Ordering::Relaxed) {
        let t = TABLES[rng.below(3) as usize];
        let id = 1 + rng.below(ROWS);
        next_id += 1;
        let sql = match rng.below(6) {
            0 => format!("INSERT INTO {SCHEMA}.{t} (id, v, pad) VALUES ({next_id}, {id}, 'new')"),
            1 => format!("UPDATE {SCHEMA}.{t} SET v = v + 1, pad = 'upd' WHERE id = {id}"),
            2 => format!("DELETE FROM {SCHEMA}.{t} WHERE id = {id}"),
            // Moves a row to another key (possibly from the copied part to the part still to copy, or back).
            3 => format!(
                "UPDATE IGNORE {SCHEMA}.{t} SET id = {} WHERE id = {id}",
                if rng.below(2) == 0 { next_id } else { 1 + rng.below(ROWS) }
            ),
            4 => format!(
                "DELETE FROM {SCHEMA}.{t} WHERE id = {id}; INSERT INTO {SCHEMA}.{t} (id, v, pad) VALUES ({id}, 7, 'again')"
            ),
            _ => format!("INSERT INTO {SCHEMA}.a_nokey (a, b) VALUES ({}, 'x'), ({}, NULL)", rng.below(20), rng.below(20)),
        };
        conn.query_drop(format!("BEGIN; {sql}; COMMIT")).await.map_err(|e| format!("{e}\n  SQL: {sql}"))?;
        txs.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1 + rng.below(3))).await;
    }
    let _ = conn.disconnect().await;
    Ok(())
}

async fn target_rows(dst: &mut mysql_async::Conn) -> u64 {
    let mut n = 0;
    for t in TABLES {
        n += count_if_exists(dst, &format!("{SCHEMA}.{t}")).await;
    }
    n
}

#[tokio::test]
async fn killed_full_copy_resumes_per_chunk() {
    let Some(ctx) = Ctx::new("snapshot_resume").await else {
        return;
    };
    let s = &ctx.s;
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, SCHEMA).await;
    reset_target(&mut dst, SCHEMA, JOB).await;
    // A keyless table sorts first: it is complete before the kill, so the copy can still be resumed.
    exec(&mut src, &format!("CREATE TABLE {SCHEMA}.a_nokey (a INT, b VARCHAR(16))")).await;
    exec(&mut src, &format!("INSERT INTO {SCHEMA}.a_nokey SELECT seq % 10, 'b' FROM {SCHEMA}.seq_1_to_50")).await;
    for t in TABLES {
        exec(
            &mut src,
            &format!("CREATE TABLE {SCHEMA}.{t} (id BIGINT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(200), KEY v_pad (v, pad(8)))"),
        )
        .await;
        exec(
            &mut src,
            &format!("INSERT INTO {SCHEMA}.{t} SELECT seq, seq % 97, REPEAT('p', 150) FROM {SCHEMA}.seq_1_to_{ROWS}"),
        )
        .await;
    }
    let job =
        ctx.job("job.hcl", JOB, s.src, s.dst, &format!("{}\nGtid = \"\"\nChunkSize = 500", replicate_schema(SCHEMA)));

    let stop = Arc::new(AtomicBool::new(false));
    let txs = Arc::new(AtomicU64::new(0));
    let (_, seed) = Rng::from_time();
    println!("writes: seed {seed}");
    let load = tokio::spawn(writes(s.clone(), stop.clone(), txs.clone(), seed));

    let mut dtle = Dtle::run_with(ctx.path(), &job, "dtle1.log", "data", &[]);
    // Kill -9 once part of the rows are on the target, well before the end.
    let total = ROWS * TABLES.len() as u64;
    let w = Waiter::new("a third of the rows on the target");
    loop {
        let n = target_rows(&mut dst).await;
        if n >= total / 3 {
            break;
        }
        w.note(format!("{n} rows"));
        if let Some(st) = dtle.try_exited() {
            panic!("dtle exited ({st}) during the copy");
        }
        assert!(!w.expired(), "timed out with {n} rows on the target");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    dtle.kill9();
    drop(dtle);
    let at_kill = target_rows(&mut dst).await;
    let stage = position_row(&mut dst, JOB).await.map(|p| p.stage).unwrap_or_default();
    println!("kill -9 with {at_kill} of about {total} rows on the target, stage {stage}");
    assert_eq!(stage, "job_stage_full", "the copy finished before the kill; the test needs a slower copy");

    // More changes while dtle is down: a longer binlog for the catch-up between the two snapshots.
    let before = txs.load(Ordering::Relaxed);
    while txs.load(Ordering::Relaxed) < before + 1000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut dtle = Dtle::run_with(ctx.path(), &job, "dtle2.log", "data", &[]);
    // The copy continues. If the idempotent catch-up after it can be caught running, kill -9 again there: the next
    // run must stay idempotent until the second snapshot's position.
    let w = Waiter::new("the resumed copy ends");
    let mut killed_in_catchup = false;
    loop {
        if position_row(&mut dst, JOB).await.map(|p| p.stage).as_deref() == Some("job_stage_incr") {
            let catchup =
                query_u64(&mut dst, &format!("SELECT COUNT(*) FROM dtle.snapshot_catchup WHERE job_name = '{JOB}'"))
                    .await;
            if catchup > 0 {
                dtle.kill9();
                killed_in_catchup = true;
            }
            break;
        }
        if let Some(st) = dtle.try_exited() {
            panic!("dtle exited ({st}) during the resumed copy");
        }
        assert!(!w.expired(), "the resumed copy did not end");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let last_log = if killed_in_catchup {
        println!("kill -9 during the catch-up after the resumed copy");
        drop(dtle);
        dtle = Dtle::run_with(ctx.path(), &job, "dtle3.log", "data", &[]);
        "dtle3.log"
    } else {
        println!("the catch-up was over before it could be killed");
        "dtle2.log"
    };
    // Writes go on for a while, then stop; the target catches up.
    let before = txs.load(Ordering::Relaxed);
    while txs.load(Ordering::Relaxed) < before + 100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    load.await.expect("writes panicked").unwrap_or_else(|e| panic!("writes failed: {e}"));
    wait_target_caught_up(s, &mut dst, JOB, &mut dtle).await;
    for t in TABLES {
        assert_tables_equal(&mut src, &mut dst, &format!("{SCHEMA}.{t}"), Some("id")).await;
        // Created without its secondary index, which was added once the table was copied (in the second run).
        let show = format!("SHOW CREATE TABLE {SCHEMA}.{t}");
        let (a, b) = (query_raw(&mut src, &show).await, query_raw(&mut dst, &show).await);
        assert_eq!(show_row(&a[0]), show_row(&b[0]), "{t}: the target's definition differs");
    }
    let owed = query_u64(
        &mut dst,
        &format!("SELECT COUNT(*) FROM dtle.snapshot_deferred_index WHERE table_schema = '{SCHEMA}'"),
    )
    .await;
    assert_eq!(owed, 0, "secondary indexes still owed after the copy");
    assert_tables_equal(&mut src, &mut dst, &format!("{SCHEMA}.a_nokey"), None).await;
    dtle.stop_cleanly().await;

    let log = read_log(&ctx.path().join("dtle2.log"));
    assert!(log.contains("resuming the full copy from the chunks on the target"), "not resumed:\n{}", tail(&log, 30));
    assert!(log.contains("full copy: already on the target"), "no table was skipped:\n{}", tail(&log, 30));
    // The keyed tables are read in turn, a chunk of each: at the kill several were partly copied, and each continued.
    let continued = log.matches("full copy: continuing after the last chunk on the target").count();
    assert!(continued >= 2, "{continued} table(s) continued after their last chunk:\n{}", tail(&log, 30));
    // The second run read only what was missing (the source logs each table it read).
    let copied: u64 = log
        .lines()
        .filter(|l| l.contains("full copy: table read"))
        .filter_map(|l| l.split("rows=").nth(1)?.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    println!("the resumed run copied {copied} rows (the target had {at_kill} at the kill)");
    assert!(copied < total * 9 / 10, "the resumed run copied {copied} rows: started again from zero?");
    let last = read_log(&ctx.path().join(last_log));
    assert!(
        last.contains("catch-up after the resumed copy done"),
        "the idempotent catch-up did not end:\n{}",
        tail(&last, 30)
    );
    // Nothing of the copy's bookkeeping is left.
    let left = query_u64(&mut dst, &format!("SELECT COUNT(*) FROM dtle.snapshot_progress WHERE job_name = '{JOB}'"))
        .await
        + query_u64(&mut dst, &format!("SELECT COUNT(*) FROM dtle.snapshot_catchup WHERE job_name = '{JOB}'")).await;
    assert_eq!(left, 0, "progress rows left after the copy and its catch-up");
}

/// A table with a unique key besides its primary key cannot be continued exactly (a recopied row could meet a value
/// an older row still holds): the interrupted copy starts again, and the target still ends equal to the source.
#[tokio::test]
async fn a_secondary_unique_key_makes_the_copy_start_again() {
    let Some(ctx) = Ctx::new("snapshot_resume_unique").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job) = ("e2e_snap_unique", "e2e_snap_unique");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job).await;
    exec(
        &mut src,
        &format!("CREATE TABLE {schema}.u (id BIGINT PRIMARY KEY, email VARCHAR(40) NOT NULL, pad VARCHAR(200), UNIQUE KEY (email))"),
    )
    .await;
    exec(
        &mut src,
        &format!("INSERT INTO {schema}.u SELECT seq, CONCAT('e', seq), REPEAT('p', 150) FROM {schema}.seq_1_to_60000"),
    )
    .await;
    let job_file =
        ctx.job("job.hcl", job, s.src, s.dst, &format!("{}\nGtid = \"\"\nChunkSize = 500", replicate_schema(schema)));
    let table = format!("{schema}.u");
    let mut dtle = Dtle::run_with(ctx.path(), &job_file, "dtle1.log", "data", &[]);
    let w = Waiter::new("part of the rows on the target");
    while count_if_exists(&mut dst, &table).await < 10_000 {
        if let Some(st) = dtle.try_exited() {
            panic!("dtle exited ({st}) during the copy");
        }
        assert!(!w.expired(), "timed out");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    dtle.kill9();
    drop(dtle);
    assert_eq!(position_row(&mut dst, job).await.map(|p| p.stage).as_deref(), Some("job_stage_full"));
    // The value e1 moves from row 1 (copied) to a row beyond the copied part.
    exec(&mut src, &format!("DELETE FROM {table} WHERE id = 1")).await;
    exec(&mut src, &format!("UPDATE {table} SET email = 'e1' WHERE id = 59999")).await;
    let mut dtle = Dtle::run_with(ctx.path(), &job_file, "dtle2.log", "data", &[]);
    wait_target_caught_up(s, &mut dst, job, &mut dtle).await;
    assert_tables_equal(&mut src, &mut dst, &table, Some("id")).await;
    dtle.stop_cleanly().await;
    let log = read_log(&ctx.path().join("dtle2.log"));
    assert!(
        log.contains("cannot be continued exactly") && log.contains("unique key besides its primary key"),
        "{}",
        tail(&log, 30)
    );
}

/// ENUM and SET sort by their index but compare as strings: a table keyed by one is read in one scan (key ranges
/// would skip rows), and every row arrives.
#[tokio::test]
async fn an_enum_key_is_copied_whole() {
    let Some(ctx) = Ctx::new("snapshot_enum_key").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job) = ("e2e_snap_enum", "e2e_snap_enum");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job).await;
    exec(
        &mut src,
        &format!("CREATE TABLE {schema}.e (k ENUM('b','a','c') NOT NULL, n INT NOT NULL, PRIMARY KEY (k, n))"),
    )
    .await;
    exec(&mut src, &format!("INSERT INTO {schema}.e VALUES ('b',1),('b',2),('a',1),('a',2),('c',1),('c',2)")).await;
    let job_file =
        ctx.job("job.hcl", job, s.src, s.dst, &format!("{}\nGtid = \"\"\nChunkSize = 1", replicate_schema(schema)));
    let mut dtle = Dtle::run_with(ctx.path(), &job_file, "dtle.log", "data", &[]);
    wait_target_caught_up(s, &mut dst, job, &mut dtle).await;
    assert_tables_equal(&mut src, &mut dst, &format!("{schema}.e"), Some("k, n")).await;
    dtle.stop_cleanly().await;
}

/// A restarted job waits for an index build that its killed predecessor left running on the target (one may take
/// longer than any chunk write, and is waited for without the chunk writes' 10-minute limit), then continues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_waits_for_an_index_build_left_running() {
    let Some(ctx) = Ctx::new("snapshot_wait_index").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job) = ("e2e_snap_wait_idx", "e2e_snap_wait_idx");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.t (id BIGINT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(200))")).await;
    exec(
        &mut src,
        &format!("INSERT INTO {schema}.t SELECT seq, seq % 97, REPEAT('p', 150) FROM {schema}.seq_1_to_60000"),
    )
    .await;
    let job_file =
        ctx.job("job.hcl", job, s.src, s.dst, &format!("{}\nGtid = \"\"\nChunkSize = 500", replicate_schema(schema)));
    let mut dtle = Dtle::run_with(ctx.path(), &job_file, "dtle1.log", "data", &[]);
    let w = Waiter::new("a quarter of the rows on the target");
    while count_if_exists(&mut dst, &format!("{schema}.t")).await < 15_000 {
        assert!(dtle.try_exited().is_none(), "dtle exited during the copy");
        assert!(!w.expired(), "timed out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    dtle.kill9();
    drop(dtle);
    let stage = position_row(&mut dst, job).await.map(|p| p.stage).unwrap_or_default();
    assert_eq!(stage, "job_stage_full", "the copy finished before the kill; the test needs a slower copy");

    // An index build as the killed process would have left it: tagged like its writes, still running.
    exec(&mut dst, &format!("CREATE TABLE {schema}.slow (id INT PRIMARY KEY, pad VARCHAR(200))")).await;
    exec(&mut dst, &format!("INSERT INTO {schema}.slow SELECT seq, MD5(seq) FROM {schema}.seq_1_to_300000")).await;
    let mut builder = s.dst_conn().await;
    let build = tokio::spawn(async move {
        exec(&mut builder, &format!("/*dtle-copy {job}*/ ALTER TABLE {schema}.slow ADD KEY kp (pad)")).await;
        std::time::Instant::now()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut dtle = Dtle::run_with(ctx.path(), &job_file, "dtle2.log", "data", &[]);
    let w = Waiter::new("the resumed copy ends");
    while position_row(&mut dst, job).await.map(|p| p.stage).as_deref() != Some("job_stage_incr") {
        assert!(dtle.try_exited().is_none(), "dtle exited during the resumed copy");
        assert!(!w.expired(), "the resumed copy did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    build.await.expect("the index build panicked");
    assert_tables_equal(&mut src, &mut dst, &format!("{schema}.t"), Some("id")).await;
    let log = dtle.log_text();
    dtle.stop_cleanly().await;
    assert!(
        log.contains("waiting for chunk writes or index builds of an earlier process")
            && log.contains("index_builds=1"),
        "the restart did not wait for the index build:\n{}",
        tail(&log, 30)
    );
    assert!(log.contains("resuming the full copy from the chunks on the target"), "not resumed:\n{}", tail(&log, 30));
}
