//! The seed's N:1 aggregation: test.t2 from two sources (jobs with their own `Gtid` starts, taken from each
//! source's executed set) into one target table; each job keeps its own position and neither overwrites the other's.

mod common;

use common::*;

#[tokio::test]
async fn two_sources_aggregate_into_one_target() {
    let Some(ctx) = Ctx::new("n_to_1").await else {
        return;
    };
    let s = &ctx.s;
    let schema = "e2e_n_to_1";
    let (job1, job2) = ("e2e_n1_job1", "e2e_n1_job2");
    // Sources: src (3307) and dst2 (3309); target: dst (3308).
    let mut a = s.src_conn().await;
    let mut b = s.conn(s.dst2).await;
    let mut dst = s.dst_conn().await;
    for c in [&mut a, &mut b] {
        reset_source_schema(c, schema).await;
        exec(c, &format!("CREATE TABLE {schema}.t2 (id INT PRIMARY KEY, origin VARCHAR(8))")).await;
    }
    reset_target(&mut dst, schema, job1).await;
    reset_target(&mut dst, schema, job2).await;
    exec(&mut dst, &format!("CREATE DATABASE IF NOT EXISTS {schema}")).await;
    exec(&mut dst, &format!("CREATE TABLE {schema}.t2 (id INT PRIMARY KEY, origin VARCHAR(8))")).await;
    // Rows from before the jobs' start positions are not replicated (the target table was created by hand).
    exec(&mut a, &format!("INSERT INTO {schema}.t2 VALUES (1,'a-old')")).await;
    exec(&mut b, &format!("INSERT INTO {schema}.t2 VALUES (2,'b-old')")).await;
    let gtid_a = gtid_binlog_pos(&mut a).await;
    let gtid_b = gtid_binlog_pos(&mut b).await;
    println!("job1 starts after {gtid_a}, job2 after {gtid_b}");

    let conf = |gtid: &str| {
        format!(
            "ReplicateDoDb = [{{ TableSchema = \"{schema}\", Tables = [{{ TableName = \"t2\" }}] }}]\nGtid = \"{gtid}\""
        )
    };
    let j1 = ctx.job("job1.hcl", job1, s.src, s.dst, &conf(&gtid_a));
    let j2 = ctx.job("job2.hcl", job2, s.dst2, s.dst, &conf(&gtid_b));
    let mut d1 = Dtle::run_with(ctx.path(), &j1, "job1.log", "data1", &[]);
    let mut d2 = Dtle::run_with(ctx.path(), &j2, "job2.log", "data2", &[]);
    for i in 0..20 {
        exec(&mut a, &format!("INSERT INTO {schema}.t2 VALUES ({}, 'a')", 100 + i)).await;
        exec(&mut b, &format!("INSERT INTO {schema}.t2 VALUES ({}, 'b')", 200 + i)).await;
    }
    exec(&mut a, &format!("UPDATE {schema}.t2 SET origin = 'a2' WHERE id = 100")).await;
    exec(&mut b, &format!("DELETE FROM {schema}.t2 WHERE id = 200")).await;

    let mut s_b = s.clone();
    s_b.src = s.dst2;
    wait_target_caught_up(s, &mut dst, job1, &mut d1).await;
    wait_target_caught_up(&s_b, &mut dst, job2, &mut d2).await;
    let rows: Vec<(i64, String)> = {
        use mysql_async::prelude::*;
        dst.query(format!("SELECT id, origin FROM {schema}.t2 ORDER BY id")).await.expect("target rows")
    };
    let mut expected: Vec<(i64, String)> = (0..20).map(|i| (100 + i, "a".to_string())).collect();
    expected[0].1 = "a2".into();
    expected.extend((1..20).map(|i| (200 + i, "b".to_string())));
    assert_eq!(rows, expected, "the union of both sources' changes after their start positions");
    // Separate positions, each with its own source's GTID domain/server.
    let p1 = position_row(&mut dst, job1).await.expect("job1 position");
    let p2 = position_row(&mut dst, job2).await.expect("job2 position");
    assert!(p1.gtid_set.contains("-1-"), "job1 follows server 1: {p1:?}");
    assert!(p2.gtid_set.contains("-3-"), "job2 follows server 3: {p2:?}");
    d1.stop_cleanly().await;
    d2.stop_cleanly().await;
}

/// N:1 inside one job: shards `e2e_shard_1` and `e2e_shard_2` (same table, disjoint ids) merged into one target
/// schema by a regex rename, full copy then binlog.
#[tokio::test]
async fn sharded_schemas_merge_into_one_target_in_one_job() {
    let Some(ctx) = Ctx::new("shards").await else {
        return;
    };
    let s = &ctx.s;
    let job = "e2e_shards";
    let target = "e2e_shards_merged";
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_target(&mut dst, target, job).await;
    for (n, shard) in ["e2e_shard_1", "e2e_shard_2"].iter().enumerate() {
        reset_source_schema(&mut src, shard).await;
        exec(&mut src, &format!("CREATE TABLE {shard}.t (id INT PRIMARY KEY, v INT NOT NULL, KEY kv (v))")).await;
        exec(&mut src, &format!("INSERT INTO {shard}.t SELECT seq * 2 + {n}, seq FROM {shard}.seq_1_to_3000")).await;
    }
    let conf = format!(
        "ReplicateDoDb = [{{ TableSchemaRegex = \"e2e_shard_(\\\\d+)\", TableSchemaRename = \"{target}\" }}]\nGtid = \"\"\nChunkSize = 500"
    );
    let j = ctx.job("job.hcl", job, s.src, s.dst, &conf);
    let mut d = Dtle::run(ctx.path(), &j);
    wait_target_caught_up(s, &mut dst, job, &mut d).await;
    exec(&mut src, "INSERT INTO e2e_shard_1.t VALUES (100001, 1)").await;
    exec(&mut src, "INSERT INTO e2e_shard_2.t VALUES (100002, 2)").await;
    exec(&mut src, "DELETE FROM e2e_shard_1.t WHERE id = 3").await;
    wait_target_caught_up(s, &mut dst, job, &mut d).await;
    let union =
        query_raw(&mut src, "SELECT id, v FROM e2e_shard_1.t UNION ALL SELECT id, v FROM e2e_shard_2.t ORDER BY id")
            .await;
    let merged = query_raw(&mut dst, &format!("SELECT id, v FROM {target}.t ORDER BY id")).await;
    assert_eq!(union.len(), merged.len(), "row counts");
    assert!(union == merged, "the merged table differs from the union of the shards");
    // The secondary index, built once the first shard was copied, is there once (not added again for the second).
    let kv = query_u64(
        &mut dst,
        &format!(
            "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '{target}' AND INDEX_NAME = 'kv'"
        ),
    )
    .await;
    assert_eq!(kv, 1, "index kv on the merged table");
    d.stop_cleanly().await;
}

/// A job started at a binlog file/pos keeps file/pos positions (a GTID set built from what it read since would lack
/// everything before, and a restart from it would replay that), and a restart resumes exactly.
#[tokio::test]
async fn a_file_pos_start_keeps_file_pos_positions() {
    let Some(ctx) = Ctx::new("file_pos").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job) = ("e2e_file_pos", "e2e_file_pos");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, v INT)")).await;
    exec(&mut dst, &format!("CREATE DATABASE {schema}")).await;
    exec(&mut dst, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, v INT)")).await;
    let row = query_raw(&mut src, "SHOW MASTER STATUS").await;
    let file = String::from_utf8_lossy(row[0][0].as_deref().unwrap_or_default()).into_owned();
    let pos = String::from_utf8_lossy(row[0][1].as_deref().unwrap_or_default()).into_owned();
    let conf = format!("{}\nBinlogFile = \"{file}\"\nBinlogPos = {pos}", replicate_schema(schema));
    let j = ctx.job("job.hcl", job, s.src, s.dst, &conf);
    let mut d = Dtle::run(ctx.path(), &j);
    for i in 0..20 {
        exec(&mut src, &format!("INSERT INTO {schema}.t VALUES ({i}, {i})")).await;
    }
    let table = format!("{schema}.t");
    wait_tables_equal(&mut src, &mut dst, &table, Some("id"), &mut d).await;
    d.stop_cleanly().await;
    let p = position_row(&mut dst, job).await.expect("a position");
    assert!(p.gtid_set.is_empty() && p.binlog_pos > 4, "a file/pos position: {p:?}");
    // Restart: nothing replayed (a replay would stop the job on an existing key), the rest follows.
    exec(&mut src, &format!("UPDATE {schema}.t SET v = v + 100 WHERE id < 5")).await;
    let mut d = Dtle::run(ctx.path(), &j);
    exec(&mut src, &format!("INSERT INTO {schema}.t VALUES (100, 100)")).await;
    wait_tables_equal(&mut src, &mut dst, &table, Some("id"), &mut d).await;
    d.stop_cleanly().await;
}

/// `dtle run a.hcl b.hcl c.hcl`: several jobs in one process, each with its own position; a job that ends (a copy
/// with `SkipIncrementalCopy`) leaves the others running; a set with a bad job or two jobs of one name starts nothing
/// (exit 2, naming the file and the fix); `dtle validate` takes the same set.
#[tokio::test]
async fn several_jobs_run_side_by_side_in_one_process() {
    let Some(ctx) = Ctx::new("multi_job").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, copy_schema) = ("e2e_multi_job", "e2e_multi_job_copy");
    let (job1, job2, job3) = ("e2e_multi1", "e2e_multi2", "e2e_multi3");
    let mut a = s.src_conn().await;
    let mut b = s.conn(s.dst2).await;
    let mut dst = s.dst_conn().await;
    for c in [&mut a, &mut b] {
        reset_source_schema(c, schema).await;
        exec(c, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, origin VARCHAR(8))")).await;
    }
    reset_source_schema(&mut a, copy_schema).await;
    exec(&mut a, &format!("CREATE TABLE {copy_schema}.c (id INT PRIMARY KEY, v INT)")).await;
    exec(&mut a, &format!("INSERT INTO {copy_schema}.c SELECT seq, seq * 2 FROM mysql.seq_1_to_500")).await;
    for (sch, job) in [(schema, job1), (schema, job2), (copy_schema, job3)] {
        reset_target(&mut dst, sch, job).await;
    }
    exec(&mut dst, &format!("CREATE DATABASE IF NOT EXISTS {schema}")).await;
    exec(&mut dst, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, origin VARCHAR(8))")).await;
    let gtid_a = gtid_binlog_pos(&mut a).await;
    let gtid_b = gtid_binlog_pos(&mut b).await;
    let conf = |gtid: &str| format!("ReplicateDoDb = [{{ TableSchema = \"{schema}\" }}]\nGtid = \"{gtid}\"");
    let j1 = ctx.job("j1.hcl", job1, s.src, s.dst, &conf(&gtid_a));
    let j2 = ctx.job("j2.hcl", job2, s.dst2, s.dst, &conf(&gtid_b));
    let j3 = ctx.job(
        "j3.hcl",
        job3,
        s.src,
        s.dst,
        &format!("ReplicateDoDb = [{{ TableSchema = \"{copy_schema}\" }}]\nSkipIncrementalCopy = true"),
    );
    let data = ctx.path().join("data");
    let run_args = |jobs: &[&std::path::PathBuf]| -> Vec<std::ffi::OsString> {
        let mut v: Vec<std::ffi::OsString> = vec!["run".into()];
        v.extend(jobs.iter().map(|j| j.as_os_str().to_owned()));
        v.extend(["--data-dir".into(), data.as_os_str().to_owned(), "--no-progress-bar".into()]);
        v
    };

    // Refused sets start nothing: two files with one job name, and a file with a bad value among good ones.
    let twin = ctx.job("twin.hcl", job1, s.dst2, s.dst, &conf(&gtid_b));
    let f = run_to_exit(ctx.path(), "twin", &os_refs(&run_args(&[&j1, &twin]))).await;
    assert_eq!(f.code, Some(2), "two jobs named {job1}: {f:?}");
    assert!(
        f.stderr.contains("j1.hcl") && f.stderr.contains("twin.hcl") && f.stderr.contains("rename one"),
        "the error names both files and the fix: {}",
        f.stderr
    );
    let bad =
        ctx.job("bad.hcl", "e2e_multi_bad", s.src, s.dst, "ReplicateDoDb = [{ TableSchema = \"x\" }]\nChunkSize = -5");
    let f = run_to_exit(ctx.path(), "bad", &os_refs(&run_args(&[&j1, &bad]))).await;
    assert_eq!(f.code, Some(2), "a bad job among good ones: {f:?}");
    assert!(f.stderr.contains("bad.hcl") && f.stderr.contains("ChunkSize"), "names the file and field: {}", f.stderr);
    assert!(position_row(&mut dst, job1).await.is_none(), "nothing started: job1 has no position");
    let f = run_to_exit(ctx.path(), "validate", &["validate".as_ref(), j1.as_os_str(), j2.as_os_str()]).await;
    assert_eq!(f.code, Some(0), "validate of two good jobs: {f:?}");
    assert!(f.stdout.contains(job1) && f.stdout.contains(job2), "validate reports each job: {}", f.stdout);

    // Three jobs in one process.
    let mut d = Dtle::spawn(&ctx.path().join("multi.log"), &os_refs(&run_args(&[&j1, &j2, &j3])));
    let w = Waiter::new("the copy job ends by itself while the others run");
    while !d.log_text().contains("job ended") {
        assert!(d.try_exited().is_none(), "dtle exited: {}", tail(&d.log_text(), 40));
        w.tick(Some(&mut d)).await;
    }
    assert_eq!(count(&mut dst, &format!("{copy_schema}.c")).await, 500, "the copy job copied its table");
    for i in 0..20 {
        exec(&mut a, &format!("INSERT INTO {schema}.t VALUES ({}, 'a')", 100 + i)).await;
        exec(&mut b, &format!("INSERT INTO {schema}.t VALUES ({}, 'b')", 200 + i)).await;
    }
    let mut s_b = s.clone();
    s_b.src = s.dst2;
    wait_target_caught_up(s, &mut dst, job1, &mut d).await;
    wait_target_caught_up(&s_b, &mut dst, job2, &mut d).await;
    assert_eq!(count(&mut dst, &format!("{schema}.t")).await, 40, "both sources' rows after the copy job ended");
    let p1 = position_row(&mut dst, job1).await.expect("job1 position");
    let p2 = position_row(&mut dst, job2).await.expect("job2 position");
    assert!(p1.gtid_set.contains("-1-") && p2.gtid_set.contains("-3-"), "own positions: {p1:?} {p2:?}");
    let log = d.log_text();
    assert!(log.contains("running 3 jobs"), "{}", tail(&log, 20));
    assert!(log.contains(&format!("job{{name={job1}}}")), "log lines carry their job: {}", tail(&log, 20));
    d.stop_cleanly().await;
}

fn os_refs(args: &[std::ffi::OsString]) -> Vec<&std::ffi::OsStr> {
    args.iter().map(|a| a.as_os_str()).collect()
}
