//! DDL mid-stream: add/drop/modify column with rows before and after, rename, truncate, CREATE ... LIKE, a gh-ost
//! style swap under a schema rename; a backlog of DDL decoded with the binlog's own table definitions; DDL that
//! cannot be replayed stops the job with the statement and its position.

mod common;

use std::time::Duration;

use common::*;

/// Waits until every listed table on the target equals the source (rows and column definitions).
async fn wait_same(src: &mut mysql_async::Conn, dst: &mut mysql_async::Conn, pairs: &[(&str, &str)], d: &mut Dtle) {
    for (src_table, dst_table) in pairs {
        let w = Waiter::new(format!("{dst_table} on the target equals {src_table} on the source"));
        loop {
            let n = count(src, src_table).await;
            let m = count_if_exists(dst, dst_table).await;
            if n == m {
                let a = table_rows(src, src_table, Some("id")).await;
                let b = table_rows(dst, dst_table, Some("id")).await;
                match diff_rows(&a, &b) {
                    None => break,
                    Some(diff) => w.note(diff),
                }
            } else {
                w.note(format!("source has {n} rows, target has {m}"));
            }
            w.tick(Some(d)).await;
        }
    }
}

async fn column_names(conn: &mut mysql_async::Conn, schema: &str, table: &str) -> Vec<String> {
    columns(conn, schema, table)
        .await
        .into_iter()
        .map(|r| String::from_utf8_lossy(r[0].as_deref().unwrap_or_default()).into_owned())
        .collect()
}

#[tokio::test]
async fn ddl_mid_stream_follows_the_source() {
    let Some(ctx) = Ctx::new("ddl_mid_stream").await else {
        return;
    };
    let s = &ctx.s;
    let schema = "e2e_ddl";
    let job = "e2e_ddl_job";
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, a INT, b VARCHAR(10))")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.t VALUES (1, 10, 'one'), (2, 20, 'two')")).await;

    let j = ctx.job("job.hcl", job, s.src, s.dst, &format!("ReplicateDoDb = [{{ TableSchema = \"{schema}\" }}]"));
    let mut d = Dtle::run(ctx.path(), &j);
    wait_same(&mut src, &mut dst, &[(&format!("{schema}.t"), &format!("{schema}.t"))], &mut d).await;

    let steps = [
        // add a column with a default, rows before and after
        "INSERT INTO t VALUES (3, 30, 'three')",
        "ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 7",
        "INSERT INTO t VALUES (4, 40, 'four', 44)",
        "UPDATE t SET c = c + 1 WHERE id IN (1, 4)",
        // modify a column's type
        "ALTER TABLE t MODIFY b VARCHAR(64) CHARACTER SET utf8mb4",
        "INSERT INTO t VALUES (5, 50, 'a longer value than ten', 55)",
        // drop a column
        "ALTER TABLE t DROP COLUMN a",
        "INSERT INTO t VALUES (6, 'six', 66)",
        "DELETE FROM t WHERE id = 2",
        // rename, then rows under the new name
        "RENAME TABLE t TO t_renamed",
        "INSERT INTO t_renamed VALUES (7, 'seven', 77)",
        "UPDATE t_renamed SET b = 'uno' WHERE id = 1",
        // CREATE ... LIKE and rows into the new table
        "CREATE TABLE t_copy LIKE t_renamed",
        "INSERT INTO t_copy SELECT * FROM t_renamed WHERE id < 5",
        // truncate, then more rows
        "TRUNCATE TABLE t_copy",
        "INSERT INTO t_copy VALUES (100, 'after truncate', 1)",
        // a table created and dropped while running never shows up on the target
        "CREATE TABLE gone (id INT PRIMARY KEY)",
        "INSERT INTO gone VALUES (1)",
        "DROP TABLE gone",
    ];
    for step in steps {
        exec(&mut src, &format!("USE {schema}")).await;
        exec(&mut src, step).await;
    }
    let renamed = format!("{schema}.t_renamed");
    let copy = format!("{schema}.t_copy");
    wait_same(&mut src, &mut dst, &[(&renamed, &renamed), (&copy, &copy)], &mut d).await;
    assert_eq!(column_names(&mut dst, schema, "t_renamed").await, ["id", "b", "c"]);
    assert_eq!(count_if_exists(&mut dst, &format!("{schema}.t")).await, 0, "t was renamed on the target too");
    assert_eq!(count_if_exists(&mut dst, &format!("{schema}.gone")).await, 0);
    let b_type = query_str(
        &mut dst,
        &format!(
            "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{schema}' AND TABLE_NAME = 't_renamed' AND COLUMN_NAME = 'b'"
        ),
    )
    .await;
    assert_eq!(b_type.as_deref(), Some("varchar(64)"));
    d.stop_cleanly().await;
}

#[tokio::test]
async fn gh_ost_swap_under_schema_and_table_renames() {
    let Some(ctx) = Ctx::new("ddl_gh_ost").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, target) = ("e2e_ghost", "e2e_ghost_t");
    let job = "e2e_ghost_job";
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, target, job).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.g (id INT PRIMARY KEY, v VARCHAR(20))")).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.other (id INT PRIMARY KEY)")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.g VALUES (1, 'a'), (2, 'b'), (3, 'c')")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.other VALUES (1)")).await;

    let conf = format!(
        "ReplicateDoDb = [{{ TableSchema = \"{schema}\", TableSchemaRename = \"{target}\", Tables = [{{ TableName = \"g\", TableRename = \"g_t\" }}] }}]"
    );
    let j = ctx.job("job.hcl", job, s.src, s.dst, &conf);
    let mut d = Dtle::run(ctx.path(), &j);
    let (g, g_t) = (format!("{schema}.g"), format!("{target}.g_t"));
    wait_same(&mut src, &mut dst, &[(&g, &g_t)], &mut d).await;

    // What gh-ost does: a ghost table altered, filled by a row copy, kept current from the binlog, then swapped.
    exec(&mut src, &format!("USE {schema}")).await;
    for step in [
        "CREATE TABLE _g_gho LIKE g",
        "ALTER TABLE _g_gho ADD COLUMN added INT NOT NULL DEFAULT 0",
        "CREATE TABLE _g_ghc (id BIGINT AUTO_INCREMENT PRIMARY KEY, hint VARCHAR(64))",
        "INSERT INTO _g_ghc (hint) VALUES ('heartbeat')",
        "INSERT INTO _g_gho (id, v) SELECT id, v FROM g WHERE id <= 2",
        "INSERT INTO g VALUES (4, 'd')",
        "INSERT INTO _g_gho (id, v) VALUES (4, 'd')",
        "INSERT INTO _g_gho (id, v) SELECT id, v FROM g WHERE id = 3",
        "UPDATE g SET v = 'A' WHERE id = 1",
        "UPDATE _g_gho SET v = 'A' WHERE id = 1",
        "RENAME TABLE g TO _g_del, _g_gho TO g",
        "DROP TABLE IF EXISTS _g_del",
        "DROP TABLE IF EXISTS _g_ghc",
        "INSERT INTO g VALUES (5, 'e', 5)",
        "INSERT INTO other VALUES (2)",
    ] {
        exec(&mut src, step).await;
    }
    wait_same(&mut src, &mut dst, &[(&g, &g_t)], &mut d).await;
    assert_eq!(column_names(&mut dst, target, "g_t").await, ["id", "v", "added"]);
    for leftover in ["_g_t_gho", "_g_t_del", "_g_t_ghc", "other"] {
        assert_eq!(count_if_exists(&mut dst, &format!("{target}.{leftover}")).await, 0, "{leftover} on the target");
    }
    d.stop_cleanly().await;
}

#[tokio::test]
async fn a_backlog_of_ddl_decodes_with_the_binlogs_definitions() {
    let Some(ctx) = Ctx::new("ddl_backlog").await else {
        return;
    };
    let s = &ctx.s;
    let schema = "e2e_ddl_backlog";
    let job = "e2e_ddl_backlog_job";
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job).await;
    let create = format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, a INT, b VARCHAR(10))");
    exec(&mut src, &create).await;
    exec(&mut dst, &format!("CREATE DATABASE {schema}")).await;
    exec(&mut dst, &create).await;
    let start = gtid_binlog_pos(&mut src).await;
    // All of this happens before the job starts: when it reads these rows, the table no longer has column c, and
    // table x no longer exists. Only the binlog's TABLE_MAP (binlog_row_metadata=FULL) knows their shape then.
    exec(&mut src, &format!("USE {schema}")).await;
    for step in [
        "INSERT INTO t VALUES (1, 1, 'x')",
        "ALTER TABLE t ADD COLUMN c VARCHAR(5) AFTER a",
        "INSERT INTO t VALUES (2, 2, 'cc', 'y')",
        "UPDATE t SET c = 'cz' WHERE id = 2",
        "ALTER TABLE t DROP COLUMN c",
        "INSERT INTO t VALUES (3, 3, 'z')",
        "CREATE TABLE x (id INT PRIMARY KEY, v INT)",
        "INSERT INTO x VALUES (1, 1), (2, 2)",
        "UPDATE x SET v = 3 WHERE id = 2",
        "DROP TABLE x",
    ] {
        exec(&mut src, step).await;
    }
    let j = ctx.job(
        "job.hcl",
        job,
        s.src,
        s.dst,
        &format!("ReplicateDoDb = [{{ TableSchema = \"{schema}\" }}]\nGtid = \"{start}\""),
    );
    let mut d = Dtle::run(ctx.path(), &j);
    wait_target_caught_up(s, &mut dst, job, &mut d).await;
    let t = format!("{schema}.t");
    wait_same(&mut src, &mut dst, &[(&t, &t)], &mut d).await;
    assert_eq!(count_if_exists(&mut dst, &format!("{schema}.x")).await, 0);
    d.stop_cleanly().await;
}

#[tokio::test]
async fn ddl_that_cannot_be_replayed_stops_the_job_with_its_position() {
    let Some(ctx) = Ctx::new("ddl_unreplayable").await else {
        return;
    };
    let s = &ctx.s;
    let schema = "e2e_ddl_stop";
    let job = "e2e_ddl_stop_job";
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.t1 (id INT PRIMARY KEY)")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.t1 VALUES (1)")).await;
    let conf = format!("ReplicateDoDb = [{{ TableSchema = \"{schema}\", Tables = [{{ TableName = \"t1\" }}] }}]");
    let j = ctx.job("job.hcl", job, s.src, s.dst, &conf);
    let mut d = Dtle::run(ctx.path(), &j);
    let t1 = format!("{schema}.t1");
    wait_same(&mut src, &mut dst, &[(&t1, &t1)], &mut d).await;
    // The replicated table leaves the selection: the target cannot follow without guessing.
    exec(&mut src, &format!("RENAME TABLE {schema}.t1 TO {schema}.elsewhere")).await;
    let st = d.wait_exit(Duration::from_secs(60)).await;
    assert_ne!(st.code(), Some(0), "the job must stop");
    let log = d.log_text();
    assert!(log.contains("cannot replay the DDL"), "{}", tail(&log, 20));
    assert!(log.contains("elsewhere") && log.contains("SkipUnreplayableDdl"), "{}", tail(&log, 20));
    assert!(log.contains("mariadb-bin."), "the error names the binlog position: {}", tail(&log, 20));

    // With the explicit skip, the job goes past it (logged) and keeps replicating.
    exec(&mut src, &format!("CREATE TABLE {schema}.t1 (id INT PRIMARY KEY)")).await;
    exec(&mut dst, &format!("RENAME TABLE {schema}.t1 TO {schema}.elsewhere")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.t1 VALUES (2)")).await;
    let j = ctx.job("job2.hcl", job, s.src, s.dst, &format!("{conf}\nSkipUnreplayableDdl = true"));
    let mut d = Dtle::run(ctx.path(), &j);
    wait_same(&mut src, &mut dst, &[(&t1, &t1)], &mut d).await;
    assert!(d.log_text().contains("SkipUnreplayableDdl: skipping"), "the skip is logged");
    d.stop_cleanly().await;
}
