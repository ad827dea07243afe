//! `dtle validate` reports everything `dtle run` would refuse at start, with the field path, and `dtle run` of
//! the same job refuses it with the same message before writing anything on the target (against the real servers:
//! `tests/mariadb.sh up`).
//!
//!   DTLE_TEST_REQUIRE_SERVERS=1 cargo test -p dtle --test e2e_validate -- --nocapture

mod common;

use std::ffi::{OsStr, OsString};

use common::*;

const SCHEMA: &str = "e2e_validate_src";

/// The schemas these jobs would create on the target.
const TARGET_SCHEMAS: &str =
    "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'e2e\\_validate\\_%'";

/// The problem lines (`  - <field> = <value>: <reason>`) of a failed command's error.
fn problem_lines(f: &Finished) -> Vec<String> {
    let mut lines: Vec<String> =
        f.stderr.lines().filter(|l| l.starts_with("  - ")).map(|l| l.trim_start().to_string()).collect();
    lines.sort();
    lines
}

fn show(f: &Finished) -> String {
    format!("exit code {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}", f.code, tail(&f.stdout, 30), tail(&f.stderr, 30))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_and_run_refuse_what_cannot_bind_to_the_source() {
    let Some(ctx) = Ctx::new("validate").await else {
        return;
    };
    let s = &ctx.s;
    let dir = ctx.path();
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, SCHEMA).await;
    exec(&mut src, &format!("CREATE TABLE {SCHEMA}.t (id INT PRIMARY KEY, name VARCHAR(20))")).await;
    exec(&mut src, &format!("CREATE TABLE {SCHEMA}.u (id INT PRIMARY KEY, amount INT)")).await;
    exec(&mut src, &format!("INSERT INTO {SCHEMA}.t VALUES (1, 'a'), (2, 'b')")).await;
    // What an earlier run (of a dtle that let these jobs through) left on the target.
    for row in query_raw(&mut dst, TARGET_SCHEMAS).await {
        let name = row.first().cloned().flatten().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        exec(&mut dst, &format!("DROP DATABASE `{name}`")).await;
    }

    let long_name = "x".repeat(70);
    // (case, src task config, the field paths the error must name, a word of the reason)
    let cases: Vec<(&str, String, Vec<&str>, &str)> = vec![
        (
            "where_syntax",
            format!(
                r#"ReplicateDoDb = [{{ TableSchema = "{SCHEMA}", Tables = [{{ TableName = "t", Where = "id <<< 10 and" }}] }}]"#
            ),
            vec!["ReplicateDoDb[0].Tables[0].Where = \"id <<< 10 and\""],
            "bitwise operator <<",
        ),
        (
            "where_incomplete",
            format!(
                r#"ReplicateDoDb = [{{ TableSchema = "{SCHEMA}", Tables = [{{ TableName = "t", Where = "id < 10 and" }}] }}]"#
            ),
            vec!["ReplicateDoDb[0].Tables[0].Where = \"id < 10 and\""],
            "cannot parse",
        ),
        (
            "where_column",
            format!(
                r#"ReplicateDoDb = [{{ TableSchema = "{SCHEMA}", Tables = [{{ TableName = "t", Where = "nosuch > 1" }}] }}]"#
            ),
            vec!["ReplicateDoDb[0].Tables[0].Where = \"nosuch > 1\""],
            "nosuch",
        ),
        (
            "rename_group",
            r#"ReplicateDoDb = [{ TableSchemaRegex = "e2e_validate_(src)", TableSchemaRename = "e2e_validate_$${2}" }]"#
                .to_string(),
            vec!["ReplicateDoDb[0].TableSchemaRename = \"e2e_validate_${2}\""],
            "capture group",
        ),
        (
            "rename_too_long",
            format!(
                r#"ReplicateDoDb = [{{ TableSchema = "{SCHEMA}", Tables = [{{ TableRegex = "(t|u)", TableRename = "$${{1}}{long_name}" }}] }}]"#
            ),
            vec!["ReplicateDoDb[0].Tables[0].TableRename"],
            "64 characters",
        ),
        (
            "column_map",
            format!(
                r#"ReplicateDoDb = [{{ TableSchema = "{SCHEMA}", Tables = [{{ TableName = "t", ColumnMapFrom = ["id", "nosuch"] }}] }}]
                SkipCreateDbTable = true"#
            ),
            vec!["ReplicateDoDb[0].Tables[0].ColumnMapFrom = \"id,nosuch\""],
            "nosuch",
        ),
        (
            "all_at_once",
            format!(
                r#"ReplicateDoDb = [{{ TableSchema = "{SCHEMA}", Tables = [{{ TableName = "t", ColumnMapFrom = ["id", "nme"] }}, {{ TableName = "u", Where = "amout > 0" }}] }}]
                SkipCreateDbTable = true"#
            ),
            vec!["ReplicateDoDb[0].Tables[0].ColumnMapFrom", "ReplicateDoDb[0].Tables[1].Where = \"amout > 0\""],
            "amout",
        ),
    ];

    let mut failures = Vec::new();
    for (case, config, fields, word) in &cases {
        let job_name = format!("e2e_validate_{case}");
        reset_target(&mut dst, SCHEMA, &job_name).await;
        let job = ctx.job(&format!("{case}.hcl"), &job_name, s.src, s.dst, &format!("{config}\nGtid = \"\""));

        let validate = run_to_exit(dir, &format!("{case}_validate"), &[OsStr::new("validate"), job.as_os_str()]).await;
        let data = dir.join(format!("data_{case}"));
        let run_args: Vec<OsString> =
            vec!["run".into(), job.clone().into(), "--data-dir".into(), data.into(), "--no-progress-bar".into()];
        let run_refs: Vec<&OsStr> = run_args.iter().map(|a| a.as_os_str()).collect();
        let run = run_to_exit(dir, &format!("{case}_run"), &run_refs).await;
        println!("({case}) validate exit {:?}, run exit {:?}: {:?}", validate.code, run.code, problem_lines(&validate));

        let mut check = |ok: bool, what: String| {
            if !ok {
                failures.push(format!("({case}) {what}"));
            }
        };
        check(validate.code.is_some_and(|c| c != 0), format!("dtle validate should fail: {}", show(&validate)));
        for field in fields {
            check(validate.stderr.contains(field), format!("dtle validate should name {field}: {}", show(&validate)));
        }
        check(validate.stderr.contains(word), format!("dtle validate should say {word:?}: {}", show(&validate)));
        check(run.code.is_some_and(|c| c != 0), format!("dtle run should fail at start: {}", show(&run)));
        let (v, r) = (problem_lines(&validate), problem_lines(&run));
        check(!v.is_empty() && v == r, format!("run and validate should give the same problems: {v:#?} vs {r:#?}"));
        check(
            query_raw(&mut dst, TARGET_SCHEMAS).await.is_empty(),
            "dtle run should create no schema on the target".into(),
        );
        check(position_row(&mut dst, &job_name).await.is_none(), "dtle run should write no position row".into());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_that_matches_no_table_stays_a_warning() {
    let Some(ctx) = Ctx::new("validate_warn").await else {
        return;
    };
    let s = &ctx.s;
    let mut src = s.src_conn().await;
    let schema = "e2e_validate_warn";
    reset_source_schema(&mut src, schema).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY)")).await;
    // Tables created later are picked up, so an entry that matches nothing today is a warning, not an error.
    let job = ctx.job(
        "warn.hcl",
        "e2e_validate_warn",
        s.src,
        s.dst,
        &format!(
            r#"ReplicateDoDb = [{{ TableSchema = "{schema}", Tables = [{{ TableRegex = "shard_(\\d+)", TableRename = "all_$${{1}}" }}] }}]
            Gtid = """#
        ),
    );
    let f = run_to_exit(ctx.path(), "warn", &[OsStr::new("validate"), job.as_os_str()]).await;
    assert_eq!(f.code, Some(0), "{}", show(&f));
    assert!(
        f.stdout.contains("warning: ReplicateDoDb[0].Tables[0].TableRegex = \"shard_(\\\\d+)\" matches no table"),
        "{}",
        show(&f)
    );
}
