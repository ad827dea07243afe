//! The walkthrough users follow, with the job files of `deploy/examples/topologies/` as they are (only the ports,
//! user and password are replaced when the harness runs the servers elsewhere, and the `Gtid` starts of the N:1
//! jobs are taken from each source's executed set, as the files tell users to):
//! test.t1 one to one; test.t2 from two sources into one target; test.t3 split by `Where` into two targets with
//! rows 1, 2, 9, 10 ending on the right sides; then more writes followed. Also the rename/filter example.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use mysql_async::Conn;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/topologies").join(name)
}

/// The example file adapted to the harness: ports (3307/3308/3309 are the defaults of both), credentials, and
/// `Gtid` when given.
fn adapt(s: &Servers, dir: &Path, name: &str, gtid: Option<&str>) -> PathBuf {
    let mut text = std::fs::read_to_string(example(name)).expect("example job file");
    for (default, port) in [("3307", s.src), ("3308", s.dst), ("3309", s.dst2)] {
        text = text.replace(&format!("Port     = {default}"), &format!("Port     = {port}"));
    }
    let (user, password) = (std::env::var("DTLE_TEST_USER"), std::env::var("DTLE_TEST_PASSWORD"));
    if let Ok(user) = user {
        text = text.replace("User     = \"dtle\"", &format!("User     = \"{user}\""));
    }
    if let Ok(password) = password {
        text = text.replace("Password = \"dtle\"", &format!("Password = \"{password}\""));
    }
    if let Some(gtid) = gtid {
        let line = text.lines().find(|l| l.trim_start().starts_with("Gtid ")).expect("a Gtid line").to_string();
        text = text.replace(&line, &format!("        Gtid = \"{gtid}\""));
    }
    let path = dir.join(name);
    write_file(&path, &text);
    path
}

async fn ids(conn: &mut Conn, table: &str) -> Vec<i64> {
    use mysql_async::prelude::*;
    conn.query(format!("SELECT id FROM {table} ORDER BY id")).await.unwrap_or_default()
}

async fn wait_ids(conn: &mut Conn, table: &str, want: &[i64], d: &mut [&mut Dtle]) {
    let w = Waiter::new(format!("{table} holds ids {want:?}"));
    loop {
        let got = ids(conn, table).await;
        if got == want {
            return;
        }
        w.note(format!("{got:?}"));
        for d in d.iter_mut() {
            if let Some(st) = d.try_exited() {
                panic!("{} exited: {st}\n{}", d.label, tail(&d.log_text(), 40));
            }
        }
        w.tick(None).await;
    }
}

#[tokio::test]
async fn seed_walkthrough_with_the_example_jobs() {
    let Some(ctx) = Ctx::new("seed").await else {
        return;
    };
    let s = &ctx.s;
    let mut src = s.src_conn().await;
    let mut src2 = s.conn(s.dst2).await;
    let mut dst = s.dst_conn().await;
    let mut dst2 = s.conn(s.dst2).await;
    for (c, jobs) in [(&mut dst, &["t1", "job1", "job2", "t3_lt10"][..]), (&mut dst2, &["t3_ge10"][..])] {
        for job in jobs {
            reset_target(c, "test", job).await;
        }
    }
    reset_source_schema(&mut src, "test").await;

    // --- t1: one to one -------------------------------------------------------------------------------------
    exec(&mut src, "CREATE TABLE test.t1 (id INT PRIMARY KEY, val VARCHAR(20))").await;
    exec(&mut src, "INSERT INTO test.t1 VALUES (1, 'a'), (2, 'b')").await;
    let mut t1 = Dtle::run_with(ctx.path(), &adapt(s, ctx.path(), "t1_one_to_one.hcl", None), "t1.log", "d_t1", &[]);
    wait_tables_equal(&mut src, &mut dst, "test.t1", Some("id"), &mut t1).await;
    exec(&mut src, "INSERT INTO test.t1 VALUES (3, 'c')").await;
    exec(&mut src, "UPDATE test.t1 SET val = 'B' WHERE id = 2").await;
    exec(&mut src, "DELETE FROM test.t1 WHERE id = 1").await;
    wait_tables_equal(&mut src, &mut dst, "test.t1", Some("id"), &mut t1).await;
    t1.stop_cleanly().await;

    // --- t2: two sources, one target, each job from its source's executed GTID set ---------------------------
    // The second source is the harness's third server; its `test` schema is this test's.
    reset_source_schema(&mut src2, "test").await;
    for c in [&mut src, &mut src2] {
        exec(c, "CREATE TABLE test.t2 (id INT PRIMARY KEY, src VARCHAR(8))").await;
    }
    exec(&mut dst, "CREATE TABLE test.t2 (id INT PRIMARY KEY, src VARCHAR(8))").await;
    let gtid1 = gtid_binlog_pos(&mut src).await;
    let gtid2 = gtid_binlog_pos(&mut src2).await;
    let j1 = adapt(s, ctx.path(), "t2_job1.hcl", Some(&gtid1));
    let j2 = adapt(s, ctx.path(), "t2_job2.hcl", Some(&gtid2));
    let mut d1 = Dtle::run_with(ctx.path(), &j1, "job1.log", "d_job1", &[]);
    let mut d2 = Dtle::run_with(ctx.path(), &j2, "job2.log", "d_job2", &[]);
    exec(&mut src, "INSERT INTO test.t2 VALUES (1, 's1'), (2, 's1')").await;
    exec(&mut src2, "INSERT INTO test.t2 VALUES (101, 's2'), (102, 's2')").await;
    wait_ids(&mut dst, "test.t2", &[1, 2, 101, 102], &mut [&mut d1, &mut d2]).await;
    exec(&mut src, "DELETE FROM test.t2 WHERE id = 1").await;
    exec(&mut src2, "INSERT INTO test.t2 VALUES (103, 's2')").await;
    wait_ids(&mut dst, "test.t2", &[2, 101, 102, 103], &mut [&mut d1, &mut d2]).await;
    let (p1, p2) = (position_row(&mut dst, "job1").await, position_row(&mut dst, "job2").await);
    assert!(p1.is_some_and(|p| p.gtid_set.contains("-1-")), "job1's own position");
    assert!(p2.is_some_and(|p| p.gtid_set.contains("-3-")), "job2's own position");
    d1.stop_cleanly().await;
    d2.stop_cleanly().await;

    // --- t3: split by Where into two targets ------------------------------------------------------------------
    // dst2 is a target here; the t2 part used its `test` schema as a source, so it starts clean.
    exec(&mut dst2, "DROP DATABASE IF EXISTS test").await;
    exec(&mut src, "CREATE TABLE test.t3 (id INT PRIMARY KEY, val VARCHAR(20))").await;
    exec(&mut src, "INSERT INTO test.t3 VALUES (1, 'a'), (2, 'b'), (9, 'i'), (10, 'j')").await;
    let lt = adapt(s, ctx.path(), "t3_split_lt10.hcl", None);
    let ge = adapt(s, ctx.path(), "t3_split_ge10.hcl", None);
    let mut dl = Dtle::run_with(ctx.path(), &lt, "lt10.log", "d_lt10", &[]);
    let mut dg = Dtle::run_with(ctx.path(), &ge, "ge10.log", "d_ge10", &[]);
    wait_ids(&mut dst, "test.t3", &[1, 2, 9], &mut [&mut dl, &mut dg]).await;
    wait_ids(&mut dst2, "test.t3", &[10], &mut [&mut dl, &mut dg]).await;
    // More writes: one row crosses the boundary each way.
    exec(&mut src, "INSERT INTO test.t3 VALUES (3, 'c'), (11, 'k')").await;
    exec(&mut src, "UPDATE test.t3 SET id = 12 WHERE id = 9").await;
    exec(&mut src, "UPDATE test.t3 SET id = 4 WHERE id = 10").await;
    wait_ids(&mut dst, "test.t3", &[1, 2, 3, 4], &mut [&mut dl, &mut dg]).await;
    wait_ids(&mut dst2, "test.t3", &[11, 12], &mut [&mut dl, &mut dg]).await;
    dl.stop_cleanly().await;
    dg.stop_cleanly().await;
}

#[tokio::test]
async fn rename_and_filter_example() {
    let Some(ctx) = Ctx::new("seed_rename").await else {
        return;
    };
    let s = &ctx.s;
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_target(&mut dst, "all_eu", "rename_and_filter").await;
    reset_target(&mut dst, "all_us", "rename_and_filter").await;
    for schema in ["shop_eu", "shop_us"] {
        reset_source_schema(&mut src, schema).await;
        exec(
            &mut src,
            &format!(
                "CREATE TABLE {schema}.orders (id INT PRIMARY KEY, customer_id INT, amount DECIMAL(10,2), status VARCHAR(8), note TEXT)"
            ),
        )
        .await;
        exec(
            &mut src,
            &format!("INSERT INTO {schema}.orders VALUES (1, 7, 10.50, 'paid', 'x'), (2, 8, 3.00, 'open', 'y')"),
        )
        .await;
    }
    for schema in ["all_eu", "all_us"] {
        exec(&mut dst, &format!("CREATE DATABASE {schema}")).await;
        exec(
            &mut dst,
            &format!(
                "CREATE TABLE {schema}.orders_archive (id INT PRIMARY KEY, customer_id INT, amount DECIMAL(10,2))"
            ),
        )
        .await;
    }
    let j = adapt(s, ctx.path(), "rename_and_filter.hcl", None);
    let mut d = Dtle::run_with(ctx.path(), &j, "rename.log", "d_rename", &[]);
    wait_ids(&mut dst, "all_eu.orders_archive", &[1], &mut [&mut d]).await;
    wait_ids(&mut dst, "all_us.orders_archive", &[1], &mut [&mut d]).await;
    exec(&mut src, "UPDATE shop_eu.orders SET status = 'paid' WHERE id = 2").await;
    exec(&mut src, "INSERT INTO shop_us.orders VALUES (3, 9, 1.00, 'paid', 'z')").await;
    exec(&mut src, "DELETE FROM shop_us.orders WHERE id = 1").await;
    wait_ids(&mut dst, "all_eu.orders_archive", &[1, 2], &mut [&mut d]).await;
    wait_ids(&mut dst, "all_us.orders_archive", &[1, 3], &mut [&mut d]).await;
    d.stop_cleanly().await;
}
