//! Row filters (`Where`): the seed's 1:N split of test.t3 by `id<10` / `id>=10` into two targets, with rows written
//! before the full copy and after it, including an update that moves a row across the boundary.

mod common;

use common::*;

fn split_job(ctx: &Ctx, file: &str, name: &str, schema: &str, dst_port: u16, where_text: &str) -> std::path::PathBuf {
    ctx.job(
        file,
        name,
        ctx.s.src,
        dst_port,
        &format!(
            "ReplicateDoDb = [{{ TableSchema = \"{schema}\", Tables = [{{ TableName = \"t3\", Where = \"{where_text}\" }}] }}]\nGtid = \"\""
        ),
    )
}

async fn ids_and_values(conn: &mut mysql_async::Conn, table: &str) -> Vec<(i64, String)> {
    use mysql_async::prelude::*;
    conn.query(format!("SELECT id, v FROM {table} ORDER BY id")).await.unwrap_or_default()
}

#[tokio::test]
async fn split_by_where_into_two_targets() {
    let Some(ctx) = Ctx::new("where_split").await else {
        return;
    };
    let s = &ctx.s;
    let schema = "e2e_where_split";
    let (job_lo, job_hi) = ("e2e_where_lo", "e2e_where_hi");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    let mut dst2 = s.conn(s.dst2).await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_lo).await;
    reset_target(&mut dst2, schema, job_hi).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.t3 (id INT PRIMARY KEY, v VARCHAR(20))")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.t3 VALUES (1,'a'),(2,'b'),(9,'c'),(10,'d')")).await;

    let lo = split_job(&ctx, "lo.hcl", job_lo, schema, s.dst, "id<10");
    let hi = split_job(&ctx, "hi.hcl", job_hi, schema, s.dst2, "id>=10");
    let mut dtle_lo = Dtle::run_with(ctx.path(), &lo, "lo.log", "data_lo", &[]);
    let mut dtle_hi = Dtle::run_with(ctx.path(), &hi, "hi.log", "data_hi", &[]);
    wait_target_caught_up(s, &mut dst, job_lo, &mut dtle_lo).await;
    let mut s2 = s.clone();
    s2.dst = s.dst2;
    wait_target_caught_up(&s2, &mut dst2, job_hi, &mut dtle_hi).await;
    let table = format!("{schema}.t3");
    assert_eq!(ids_and_values(&mut dst, &table).await.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2, 9]);
    assert_eq!(ids_and_values(&mut dst2, &table).await.iter().map(|r| r.0).collect::<Vec<_>>(), vec![10]);

    // After the copy: inserts on both sides of the boundary, an update inside one side, an update that moves a
    // row across the boundary (9 -> 19), and a delete.
    exec(&mut src, &format!("INSERT INTO {schema}.t3 VALUES (5,'e'),(15,'f')")).await;
    exec(&mut src, &format!("UPDATE {schema}.t3 SET v = 'a2' WHERE id = 1")).await;
    exec(&mut src, &format!("UPDATE {schema}.t3 SET id = 19 WHERE id = 9")).await;
    exec(&mut src, &format!("DELETE FROM {schema}.t3 WHERE id = 2")).await;
    wait_target_caught_up(s, &mut dst, job_lo, &mut dtle_lo).await;
    wait_target_caught_up(&s2, &mut dst2, job_hi, &mut dtle_hi).await;
    assert_eq!(
        ids_and_values(&mut dst, &table).await,
        vec![(1, "a2".to_string()), (5, "e".to_string())],
        "the id<10 side"
    );
    assert_eq!(
        ids_and_values(&mut dst2, &table).await,
        vec![(10, "d".to_string()), (15, "f".to_string()), (19, "c".to_string())],
        "the id>=10 side"
    );
    dtle_lo.stop_cleanly().await;
    dtle_hi.stop_cleanly().await;
}

#[tokio::test]
async fn bad_where_is_a_clear_error_before_anything_is_written() {
    let Some(ctx) = Ctx::new("where_bad").await else {
        return;
    };
    let s = &ctx.s;
    let schema = "e2e_where_bad";
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, "e2e_where_bad").await;
    exec(&mut src, &format!("CREATE TABLE {schema}.t3 (id INT PRIMARY KEY, v VARCHAR(20))")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.t3 VALUES (1,'a')")).await;
    // Both are problems of the job file (exit 2), the unknown column found by binding the job to the source.
    for (where_text, code, needle) in [("nosuchcol < 3", 2, "nosuchcol"), ("id <", 2, "Where")] {
        let job = split_job(&ctx, "bad.hcl", "e2e_where_bad", schema, s.dst, where_text);
        let args: Vec<std::ffi::OsString> = vec![
            "run".into(),
            job.into_os_string(),
            "--data-dir".into(),
            ctx.path().join("data").into_os_string(),
            "--no-progress-bar".into(),
        ];
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let finished = run_to_exit(ctx.path(), "bad", &refs).await;
        let log = format!("{}{}", finished.stdout, finished.stderr);
        assert_eq!(finished.code, Some(code), "{where_text}: {log}");
        assert!(log.contains(needle), "{where_text}: the error names {needle}: {log}");
        assert_eq!(count_if_exists(&mut dst, &format!("{schema}.t3")).await, 0, "nothing written");
    }
}
