//! `ColumnMapFrom` / `ColumnMapTo`: chosen source columns, reordered, written into named columns of a target table
//! created by hand (which may have more columns), for the full copy and the binlog alike.

mod common;

use common::*;

#[tokio::test]
async fn column_map_writes_chosen_columns_into_named_target_columns() {
    let Some(ctx) = Ctx::new("column_map").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job_name) = ("e2e_column_map", "e2e_column_map");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, a VARCHAR(10), b INT, c DATE)")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.t VALUES (1,'one',10,'2024-01-01'),(2,'two',20,'2024-02-02')")).await;
    exec(&mut dst, &format!("CREATE DATABASE IF NOT EXISTS {schema}")).await;
    exec(
        &mut dst,
        &format!(
            "CREATE TABLE {schema}.t (pk INT PRIMARY KEY, day DATE, label VARCHAR(10), note VARCHAR(10) DEFAULT 'n/a')"
        ),
    )
    .await;
    let job = ctx.job(
        "job.hcl",
        job_name,
        s.src,
        s.dst,
        &format!(
            "ReplicateDoDb = [{{ TableSchema = \"{schema}\", Tables = [{{ TableName = \"t\", ColumnMapFrom = [\"id\", \"c\", \"a\"], ColumnMapTo = [\"pk\", \"day\", \"label\"] }}] }}]\nGtid = \"\"\nSkipCreateDbTable = true"
        ),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    exec(&mut src, &format!("INSERT INTO {schema}.t VALUES (3,'three',30,'2024-03-03')")).await;
    exec(&mut src, &format!("UPDATE {schema}.t SET a = 'ONE', b = 11 WHERE id = 1")).await;
    exec(&mut src, &format!("DELETE FROM {schema}.t WHERE id = 2")).await;
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    let rows: Vec<(i64, String, String, String)> = {
        use mysql_async::prelude::*;
        dst.query(format!("SELECT pk, CAST(day AS CHAR), label, note FROM {schema}.t ORDER BY pk")).await.expect("rows")
    };
    assert_eq!(
        rows,
        vec![
            (1, "2024-01-01".to_string(), "ONE".to_string(), "n/a".to_string()),
            (3, "2024-03-03".to_string(), "three".to_string(), "n/a".to_string()),
        ]
    );
    dtle.stop_cleanly().await;

    // Without SkipCreateDbTable the job is refused with a message saying what to do.
    let bad = ctx.job(
        "bad.hcl",
        "e2e_column_map_bad",
        s.src,
        s.dst,
        &format!(
            "ReplicateDoDb = [{{ TableSchema = \"{schema}\", Tables = [{{ TableName = \"t\", ColumnMapFrom = [\"id\"] }}] }}]"
        ),
    );
    let finished = run_to_exit(ctx.path(), "bad", &["validate".as_ref(), bad.as_os_str()]).await;
    let text = format!("{}{}", finished.stdout, finished.stderr);
    assert_ne!(finished.code, Some(0), "{text}");
    assert!(text.contains("ColumnMapFrom") && text.contains("SkipCreateDbTable"), "{text}");
}
