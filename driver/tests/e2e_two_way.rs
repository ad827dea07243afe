//! Two-way replication: writes on both sides for a while, then both sides equal, nothing applied twice and no
//! transaction looping back (the servers' binlogs stop growing once the writes stop). Two separate jobs (A→B and
//! B→A), and one job with `TwoWaySync = true`; DML and DDL alike.

mod common;

use std::time::Duration;

use common::*;
use mysql_async::Conn;

/// The two tests share server 3307 and look for writes that should not happen: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn wait_equal(a: &mut Conn, b: &mut Conn, table: &str, dtles: &mut [&mut Dtle]) {
    let w = Waiter::new(format!("{table} equal on both sides"));
    loop {
        if count_if_exists(a, table).await == 0 || count_if_exists(b, table).await == 0 {
            w.note("the table is not on both sides yet");
            w.tick(None).await;
            continue;
        }
        let x = table_rows(a, table, Some("id")).await;
        let y = table_rows(b, table, Some("id")).await;
        match diff_rows(&x, &y) {
            None => return,
            Some(d) => w.note(d),
        }
        for d in dtles.iter_mut() {
            if let Some(st) = d.try_exited() {
                panic!("{} exited: {st}\n{}", d.label, tail(&d.log_text(), 40));
            }
        }
        w.tick(None).await;
    }
}

/// Nothing bounces between the servers once the writes stopped: the jobs' marker counters (one per target
/// transaction dtle opens) and their position rows stay where they are. Other tests may write to the same servers,
/// so only this test's jobs are looked at.
async fn assert_quiet(a: &mut Conn, b: &mut Conn, jobs_on_b: &[&str], jobs_on_a: &[&str]) {
    async fn snapshot(c: &mut Conn, jobs: &[&str], column: &str) -> Vec<String> {
        let mut out = Vec::new();
        for job in jobs {
            let sql = format!("SELECT {column} FROM dtle.replication_position WHERE job_name = '{job}'");
            out.push(format!("{job}: {:?}", query_str(c, &sql).await));
        }
        out
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let markers = (snapshot(b, jobs_on_b, "marker_seq").await, snapshot(a, jobs_on_a, "marker_seq").await);
    let positions = (snapshot(b, jobs_on_b, "gtid_set").await, snapshot(a, jobs_on_a, "gtid_set").await);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let markers_after = (snapshot(b, jobs_on_b, "marker_seq").await, snapshot(a, jobs_on_a, "marker_seq").await);
    let positions_after = (snapshot(b, jobs_on_b, "gtid_set").await, snapshot(a, jobs_on_a, "gtid_set").await);
    assert_eq!(markers, markers_after, "dtle kept applying transactions after the writes stopped: a loop");
    // A position moves when its source has other traffic (other tests); two positions moving together, each write
    // feeding the other, would be a ping-pong of position rows.
    assert!(
        positions.0 == positions_after.0 || positions.1 == positions_after.1,
        "both positions kept moving: {positions:?} -> {positions_after:?}"
    );
}

/// Writes on both sides: inserts of own ids, updates and deletes of own rows, plus a DDL on `a`.
async fn write_both_sides(a: &mut Conn, b: &mut Conn, table: &str, rounds: u32) {
    for i in 0..rounds {
        exec(a, &format!("INSERT INTO {table} (id, v, side) VALUES ({}, {i}, 'a')", 1000 + i)).await;
        exec(b, &format!("INSERT INTO {table} (id, v, side) VALUES ({}, {i}, 'b')", 2000 + i)).await;
        if i % 3 == 0 {
            exec(a, &format!("UPDATE {table} SET v = v + 100 WHERE id = {}", 1000 + i / 2)).await;
            exec(b, &format!("UPDATE {table} SET v = v + 100 WHERE id = {}", 2000 + i / 2)).await;
        }
        if i % 7 == 6 {
            exec(a, &format!("DELETE FROM {table} WHERE id = {}", 1000 + i - 1)).await;
            exec(b, &format!("DELETE FROM {table} WHERE id = {}", 2000 + i - 1)).await;
        }
        if i == rounds / 2 {
            exec(a, &format!("ALTER TABLE {table} ADD COLUMN note VARCHAR(10) NULL")).await;
        }
        // A table created on one side, used, and dropped (DROP TABLE is logged rebuilt by the server: dtle's
        // marker must survive that, or the drop would bounce back).
        let extra = format!("{}_extra", table);
        if i == rounds / 4 {
            exec(b, &format!("CREATE TABLE {extra} (id INT PRIMARY KEY)")).await;
            exec(b, &format!("INSERT INTO {extra} VALUES (1), (2)")).await;
        }
        if i == rounds / 4 + 5 {
            // DDL on both sides at once is a conflict dtle does not resolve: each side waits for the other's.
            let w = Waiter::new(format!("{extra} and its rows on A"));
            while count_if_exists(a, &extra).await < 2 {
                w.tick(None).await;
            }
            exec(b, &format!("DROP TABLE {extra}")).await;
            let w = Waiter::new(format!("{extra} dropped on A"));
            while table_exists(a, &extra).await {
                w.tick(None).await;
            }
            exec(a, &format!("CREATE TABLE {extra} (id INT PRIMARY KEY, v INT)")).await;
            exec(a, &format!("INSERT INTO {extra} VALUES (7, 7)")).await;
        }
        if i == rounds / 4 + 10 {
            exec(a, &format!("DROP TABLE IF EXISTS {extra}")).await;
        }
        // Transactions of several statements.
        if i % 10 == 0 {
            exec(
                b,
                &format!(
                    "START TRANSACTION; INSERT INTO {table} (id, v, side) VALUES ({}, 0, 'b'); UPDATE {table} SET v = v + 1 WHERE id = {}; COMMIT",
                    3000 + i,
                    3000 + i
                ),
            )
            .await;
        }
    }
}

async fn table_exists(c: &mut Conn, table: &str) -> bool {
    let (schema, name) = table.split_once('.').expect("schema.table");
    query_u64(
        c,
        &format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{schema}' AND TABLE_NAME = '{name}'"
        ),
    )
    .await
        > 0
}

async fn reset_both(a: &mut Conn, b: &mut Conn, schema: &str, jobs: &[&str]) {
    for c in [&mut *a, &mut *b] {
        for job in jobs {
            reset_target(c, schema, job).await;
        }
        exec(c, &format!("CREATE DATABASE {schema}")).await;
        exec(c, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, v INT NOT NULL, side CHAR(1) NOT NULL)")).await;
    }
}

#[tokio::test]
async fn two_jobs_a_to_b_and_b_to_a_do_not_loop() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(ctx) = Ctx::new("two_way_jobs").await else {
        return;
    };
    two_jobs_case(&ctx, None).await;
}

/// The same with a user that may not turn binary logging off (no SUPER / BINLOG ADMIN): position-only writes are
/// logged, each job sees the other's as dtle bookkeeping, and passes it on at most every 30 s, not in a loop.
#[tokio::test]
async fn two_jobs_without_binlog_admin_do_not_ping_pong() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(ctx) = Ctx::new("two_way_jobs_np").await else {
        return;
    };
    let s = &ctx.s;
    for port in [s.src, s.dst] {
        let mut c = s.conn(port).await;
        for sql in [
            "DROP USER IF EXISTS 'dtle_np'@'%'",
            "CREATE USER 'dtle_np'@'%' IDENTIFIED BY 'np'",
            "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, PROCESS, RELOAD, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'dtle_np'@'%'",
        ] {
            exec(&mut c, sql).await;
        }
    }
    two_jobs_case(&ctx, Some(("dtle_np", "np"))).await;
}

async fn two_jobs_case(ctx: &Ctx, user: Option<(&str, &str)>) {
    let s = &ctx.s;
    let schema = "e2e_two_way";
    let (ab, ba) = ("e2e_2w_ab", "e2e_2w_ba");
    let mut a = s.src_conn().await;
    let mut b = s.dst_conn().await;
    reset_both(&mut a, &mut b, schema, &[ab, ba]).await;
    let conf = |gtid: &str| format!("ReplicateDoDb = [{{ TableSchema = \"{schema}\" }}]\nGtid = \"{gtid}\"");
    let write_job = |file: &str, name: &str, from: u16, to: u16, gtid: &str| {
        let conn = |port: u16| match user {
            None => s.conn_hcl(port),
            Some((u, p)) => s.conn_hcl_with("127.0.0.1", port, u, p),
        };
        let path = ctx.path().join(file);
        write_file(&path, &job_hcl(name, &conf(gtid), &conn(from), &conn(to)));
        path
    };
    let ja = write_job("ab.hcl", ab, s.src, s.dst, &gtid_binlog_pos(&mut a).await);
    let jb = write_job("ba.hcl", ba, s.dst, s.src, &gtid_binlog_pos(&mut b).await);
    let mut d1 = Dtle::run_with(ctx.path(), &ja, "ab.log", "data_ab", &[]);
    let mut d2 = Dtle::run_with(ctx.path(), &jb, "ba.log", "data_ba", &[]);

    let table = format!("{schema}.t");
    write_both_sides(&mut a, &mut b, &table, 60).await;
    wait_equal(&mut a, &mut b, &table, &mut [&mut d1, &mut d2]).await;
    assert_quiet(&mut a, &mut b, &[ab], &[ba]).await;
    if user.is_some() {
        // Over 40 s, each position moves a few times at most (bookkeeping every 30 s), never in a loop.
        let mut seen = (std::collections::HashSet::new(), std::collections::HashSet::new());
        for _ in 0..40 {
            seen.0.insert(position_row(&mut b, ab).await.map(|p| p.gtid_set));
            seen.1.insert(position_row(&mut a, ba).await.map(|p| p.gtid_set));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        println!("positions seen in 40 s: {} and {}", seen.0.len(), seen.1.len());
        assert!(seen.0.len() <= 4 && seen.1.len() <= 4, "positions kept moving: {seen:?}");
    }
    // Every row exactly once, with its side's values (a duplicate apply would have stopped a job on its key).
    let n = count(&mut a, &table).await;
    assert!(n > 100, "rows from both sides: {n}");
    assert_eq!(columns(&mut b, schema, "t").await.len(), 4, "the ALTER on A reached B once");
    for c in [&mut a, &mut b] {
        assert_eq!(count_if_exists(c, &format!("{schema}.t_extra")).await, 0, "the dropped table stays dropped");
    }
    d1.stop_cleanly().await;
    d2.stop_cleanly().await;
    for d in [&d1, &d2] {
        let log = d.log_text();
        assert!(!log.contains("ERROR"), "{}", tail(&log, 30));
    }
}

#[tokio::test]
async fn one_job_with_two_way_sync() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(ctx) = Ctx::new("two_way_sync").await else {
        return;
    };
    let s = &ctx.s;
    let schema = "e2e_two_way_sync";
    let job = "e2e_2w_sync";
    let mut a = s.src_conn().await;
    let mut b = s.conn(s.dst2).await;
    reset_target(&mut b, schema, job).await;
    reset_target(&mut a, schema, &format!("{job}_dtrev")).await;
    reset_source_schema(&mut a, schema).await;
    exec(&mut a, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, v INT NOT NULL, side CHAR(1) NOT NULL)")).await;
    exec(&mut a, &format!("INSERT INTO {schema}.t VALUES (1, 1, 'a'), (2, 2, 'a')")).await;
    // A full copy A → B first, then both directions.
    let j = ctx.job(
        "job.hcl",
        job,
        s.src,
        s.dst2,
        &format!("ReplicateDoDb = [{{ TableSchema = \"{schema}\" }}]\nTwoWaySync = true"),
    );
    let mut d = Dtle::run(ctx.path(), &j);
    let table = format!("{schema}.t");
    wait_equal(&mut a, &mut b, &table, &mut [&mut d]).await;
    // The reverse direction starts once the copy is done.
    // The reverse direction starts at B's position once the copy is done (AutoGtid); writes on B count from there.
    let w = Waiter::new("the reverse direction starts");
    while !d.log_text().lines().any(|l| l.contains("AutoGtid") && l.contains(&format!("{job}_dtrev"))) {
        w.tick(Some(&mut d)).await;
    }
    write_both_sides(&mut a, &mut b, &table, 40).await;
    wait_equal(&mut a, &mut b, &table, &mut [&mut d]).await;
    assert_quiet(&mut a, &mut b, &[job], &[&format!("{job}_dtrev")]).await;
    d.stop_cleanly().await;
    let log = d.log_text();
    assert!(log.contains("starting the reverse direction"), "{}", tail(&log, 30));
}
