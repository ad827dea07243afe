//! `SqlFilter`: event kinds left out of replication (dtle's NoDML… / NoDDL… names).

mod common;

use common::*;

#[tokio::test]
async fn sql_filter_leaves_out_deletes_and_drop_table() {
    let Some(ctx) = Ctx::new("sql_filter").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job_name) = ("e2e_sql_filter", "e2e_sql_filter");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, v INT)")).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.keep (id INT PRIMARY KEY)")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.t VALUES (1,1),(2,2),(3,3)")).await;
    let job = ctx.job(
        "job.hcl",
        job_name,
        s.src,
        s.dst,
        &format!(
            "ReplicateDoDb = [{{ TableSchema = \"{schema}\" }}]\nGtid = \"\"\nSqlFilter = [\"NoDMLDelete\", \"nodDLDropTable\"]"
        ),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    exec(&mut src, &format!("DELETE FROM {schema}.t WHERE id = 1")).await;
    exec(&mut src, &format!("UPDATE {schema}.t SET v = 20 WHERE id = 2")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.t VALUES (4,4)")).await;
    exec(&mut src, &format!("ALTER TABLE {schema}.t ADD COLUMN w INT DEFAULT 7")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.t VALUES (5,5,5)")).await;
    exec(&mut src, &format!("DROP TABLE {schema}.keep")).await;
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    let rows: Vec<(i64, i64, Option<i64>)> = {
        use mysql_async::prelude::*;
        dst.query(format!("SELECT id, v, w FROM {schema}.t ORDER BY id")).await.expect("target rows")
    };
    assert_eq!(
        rows,
        vec![(1, 1, Some(7)), (2, 20, Some(7)), (3, 3, Some(7)), (4, 4, Some(7)), (5, 5, Some(5))],
        "the delete is left out, everything else (including the ALTER) replicated"
    );
    assert_eq!(count_if_exists(&mut dst, &format!("{schema}.keep")).await, 0);
    let kept = query_u64(
        &mut dst,
        &format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{schema}' AND TABLE_NAME = 'keep'"
        ),
    )
    .await;
    assert_eq!(kept, 1, "DROP TABLE is left out: the target keeps the table");
    dtle.stop_cleanly().await;
}
