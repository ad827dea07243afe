//! `dtle verify`: chunk-by-chunk comparison of source and target while the job runs. A job under continuous writes
//! verifies equal run after run; a row changed by hand on the target is reported with exactly its table and key
//! range, and passes again once fixed by hand or by `--repair` (also under writes); `Where` + renames + column maps, `ParallelWorkers = 4` and a table without a
//! key verify too; results are kept on the target and shown by `--status`; refusals exit 2.

mod common;

use std::path::Path;

use common::*;

/// `dtle verify JOB ARGS...` to completion.
async fn verify(ctx: &Ctx, name: &str, job: &Path, args: &[&str]) -> Finished {
    let mut all: Vec<&std::ffi::OsStr> = vec!["verify".as_ref(), job.as_os_str()];
    all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
    let finished = run_to_exit(ctx.path(), name, &all).await;
    println!(
        "--- dtle verify {} ({name}): exit {:?}\n{}{}",
        args.join(" "),
        finished.code,
        finished.stdout,
        finished.stderr
    );
    finished
}

/// The report's lines naming a chunk that is not equal.
fn unequal_lines(f: &Finished) -> Vec<String> {
    f.stdout.lines().filter(|l| l.contains(": chunk ")).map(str::to_string).collect()
}

/// Static rows `tk` keeps beyond the load's ids (the load writes ids below 410).
async fn add_static_rows(src: &mut mysql_async::Conn, schema: &str) {
    exec(
        src,
        &format!("INSERT INTO {schema}.tk SELECT 1000 + seq, seq, CONCAT('static', seq) FROM {schema}.seq_0_to_99"),
    )
    .await;
}

#[tokio::test]
async fn under_writes_equal_then_a_changed_row_is_found_and_fixed() {
    let Some(ctx) = Ctx::new("verify_load").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job_name) = ("e2e_verify_load", "e2e_verify_load");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    create_load_tables(&mut src, schema).await;
    add_static_rows(&mut src, schema).await;
    // Only tk: the load's writes to tn are transactions the job filters out.
    let job = ctx.job(
        "job.hcl",
        job_name,
        s.src,
        s.dst,
        &format!(
            "ReplicateDoDb = [{{ TableSchema = \"{schema}\", Tables = [{{ TableName = \"tk\" }}] }}]\nGtid = \"\""
        ),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    let mut load = Load::start(s, schema);
    load.wait_progress(50, &mut [&mut dtle]).await;

    // (a) Under continuous writes: no difference, run after run.
    for run in 0..4 {
        let f = verify(&ctx, &format!("equal{run}"), &job, &["--chunk-size", "20", "--hot-retries", "30"]).await;
        assert_eq!(f.code, Some(0), "run {run}: {}{}", f.stdout, f.stderr);
        assert!(f.stdout.contains(&format!("{schema}.tk -> {schema}.tk: equal")), "{}", f.stdout);
        assert!(unequal_lines(&f).is_empty(), "{}", f.stdout);
        assert!(f.stdout.contains("0 different, 0 not verified"), "{}", f.stdout);
    }
    let status = verify(&ctx, "status_equal", &job, &["--status"]).await;
    assert_eq!(status.code, Some(0), "{}", status.stdout);
    assert!(status.stdout.contains("status equal"), "{}", status.stdout);

    // (b) A row the load never writes, changed by hand on the target: exactly that table and key range.
    exec(&mut dst, &format!("UPDATE {schema}.tk SET s = 'changed by hand' WHERE id = 1050")).await;
    let f = verify(&ctx, "different", &job, &["--chunk-size", "20", "--hot-retries", "30"]).await;
    assert_eq!(f.code, Some(1), "{}{}", f.stdout, f.stderr);
    let lines = unequal_lines(&f);
    assert_eq!(lines.len(), 1, "exactly one chunk differs: {}", f.stdout);
    let line = &lines[0];
    assert!(line.contains(&format!("{schema}.tk -> {schema}.tk")) && line.contains("different"), "{line}");
    assert!(line.contains("1 row(s) differ (key 1050)"), "{line}");
    // The range is (lower, upper] with lower < 1050 <= upper, both in the static rows.
    let range =
        line.split(" id (").nth(1).and_then(|r| r.split(']').next()).unwrap_or_else(|| panic!("range in {line}"));
    let (lower, upper) = range.split_once(", ").unwrap_or_else(|| panic!("range {range}"));
    let (lower, upper): (i64, i64) = (lower.parse().expect("lower"), upper.parse().expect("upper"));
    assert!(lower < 1050 && 1050 <= upper && lower >= 1000, "{line}");
    assert!(f.stdout.contains("1 different, 0 not verified"), "{}", f.stdout);
    let status = verify(&ctx, "status_different", &job, &["--status"]).await;
    assert_eq!(status.code, Some(1), "{}", status.stdout);
    assert!(status.stdout.contains("status different") && status.stdout.contains("key 1050"), "{}", status.stdout);
    let stored: u64 = query_u64(
        &mut dst,
        "SELECT COUNT(*) FROM dtle.verify_chunks WHERE verdict = 'different' AND run_id = \
         (SELECT MAX(run_id) FROM dtle.verify_runs WHERE job_name = 'e2e_verify_load' AND status = 'different')",
    )
    .await;
    assert_eq!(stored, 1, "the differing chunk is stored on the target");

    // Fixed by hand: equal again.
    exec(&mut dst, &format!("UPDATE {schema}.tk SET s = 'static50' WHERE id = 1050")).await;
    let f = verify(&ctx, "fixed", &job, &["--chunk-size", "20", "--hot-retries", "30"]).await;
    assert_eq!(f.code, Some(0), "{}{}", f.stdout, f.stderr);

    // A row missing on the target and one the target has extra are differences too.
    exec(&mut dst, &format!("DELETE FROM {schema}.tk WHERE id = 1070")).await;
    exec(&mut dst, &format!("INSERT INTO {schema}.tk VALUES (5000, 1, 'extra')")).await;
    let f = verify(&ctx, "missing_extra", &job, &["--chunk-size", "20", "--hot-retries", "30"]).await;
    assert_eq!(f.code, Some(1), "{}{}", f.stdout, f.stderr);
    let lines = unequal_lines(&f);
    assert_eq!(lines.len(), 2, "{}", f.stdout);
    assert!(lines.iter().any(|l| l.contains("missing on the target (key 1070)")), "{}", f.stdout);
    assert!(
        lines.iter().any(|l| l.contains("the source does not have (key 5000)") && l.contains("+inf)")),
        "{}",
        f.stdout
    );
    // ... which --ignore-extra-rows (N:1 jobs) shows without counting.
    exec(&mut dst, &format!("INSERT INTO {schema}.tk VALUES (1070, 70, 'static70')")).await;
    let f =
        verify(&ctx, "ignore_extra", &job, &["--chunk-size", "20", "--hot-retries", "30", "--ignore-extra-rows"]).await;
    assert_eq!(f.code, Some(0), "{}{}", f.stdout, f.stderr);

    // --repair under writes: the changed row and the extra row are rewritten at the job's position, the chunks
    // checked again; the next run is equal.
    exec(&mut dst, &format!("UPDATE {schema}.tk SET v = -1 WHERE id = 1060")).await;
    let f = verify(&ctx, "repair", &job, &["--chunk-size", "20", "--hot-retries", "30", "--repair"]).await;
    assert_eq!(f.code, Some(1), "differences were found: {}{}", f.stdout, f.stderr);
    let lines = unequal_lines(&f);
    assert_eq!(lines.len(), 2, "{}", f.stdout);
    assert!(lines.iter().all(|l| l.contains(": repaired: ") && l.contains("equal when checked again")), "{}", f.stdout);
    assert!(
        lines.iter().any(|l| l.contains("(key 1060)") && l.contains("1 row(s) written, 0 deleted")),
        "{}",
        f.stdout
    );
    assert!(
        lines.iter().any(|l| l.contains("(key 5000)") && l.contains("0 row(s) written, 1 deleted")),
        "{}",
        f.stdout
    );
    let f = verify(&ctx, "after_repair", &job, &["--chunk-size", "20", "--hot-retries", "30"]).await;
    assert_eq!(f.code, Some(0), "{}{}", f.stdout, f.stderr);
    load.wait_progress(20, &mut [&mut dtle]).await;

    load.stop().await;
    dtle.stop_cleanly().await;
}

#[tokio::test]
async fn where_rename_and_column_map_verify_equal() {
    let Some(ctx) = Ctx::new("verify_map").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, target_schema, job_name) = ("e2e_verify_map", "e2e_verify_map_t", "e2e_verify_map");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    exec(&mut dst, &format!("DROP DATABASE IF EXISTS {target_schema}")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, a VARCHAR(10), b DECIMAL(10,2), c DATETIME(3), j JSON)"),
    )
    .await;
    exec(
        &mut src,
        &format!(
            "INSERT INTO {schema}.t SELECT seq, CONCAT('a', seq), seq / 4, '2024-01-02 03:04:05.678' + INTERVAL seq SECOND, \
             JSON_OBJECT('k', seq, 'b', 'x') FROM {schema}.seq_1_to_300"
        ),
    )
    .await;
    exec(&mut dst, &format!("CREATE DATABASE {target_schema}")).await;
    exec(
        &mut dst,
        &format!(
            "CREATE TABLE {target_schema}.t2 (pk INT PRIMARY KEY, when_at DATETIME(3), label VARCHAR(10), amount DECIMAL(12,4), \
             doc JSON, note VARCHAR(10) DEFAULT 'n/a')"
        ),
    )
    .await;
    let job = ctx.job(
        "job.hcl",
        job_name,
        s.src,
        s.dst,
        &format!(
            "ReplicateDoDb = [{{ TableSchema = \"{schema}\", TableSchemaRename = \"{target_schema}\", Tables = [{{ TableName = \"t\", \
             TableRename = \"t2\", Where = \"id % 3 <> 0 AND a <> 'a7'\", ColumnMapFrom = [\"id\", \"c\", \"a\", \"b\", \"j\"], \
             ColumnMapTo = [\"pk\", \"when_at\", \"label\", \"amount\", \"doc\"] }}] }}]\nGtid = \"\"\nSkipCreateDbTable = true"
        ),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    // Changes after the copy, one moving a row out of the filter and one into it.
    exec(&mut src, &format!("UPDATE {schema}.t SET a = 'a7' WHERE id = 8")).await;
    exec(&mut src, &format!("UPDATE {schema}.t SET id = 1000 WHERE id = 9")).await;
    exec(&mut src, &format!("UPDATE {schema}.t SET b = b + 1 WHERE id < 50")).await;
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    let f = verify(&ctx, "map", &job, &["--chunk-size", "64"]).await;
    assert_eq!(f.code, Some(0), "{}{}", f.stdout, f.stderr);
    assert!(f.stdout.contains(&format!("{schema}.t -> {target_schema}.t2: equal")), "{}", f.stdout);
    assert!(
        f.stdout.contains("300 source rows")
            || f.stdout.contains("301 source rows")
            || f.stdout.contains("source rows")
    );
    // A target row the Where leaves out on the source is extra; a changed mapped column differs.
    exec(&mut dst, &format!("INSERT INTO {target_schema}.t2 (pk, label) VALUES (3, 'filtered')")).await;
    exec(&mut dst, &format!("UPDATE {target_schema}.t2 SET amount = amount + 1 WHERE pk = 200")).await;
    exec(&mut dst, &format!("UPDATE {target_schema}.t2 SET note = 'not mapped' WHERE pk = 100")).await;
    let f = verify(&ctx, "map_different", &job, &["--chunk-size", "64"]).await;
    assert_eq!(f.code, Some(1), "{}{}", f.stdout, f.stderr);
    let lines = unequal_lines(&f);
    assert_eq!(lines.len(), 2, "{}", f.stdout);
    assert!(lines.iter().any(|l| l.contains("pk (-inf, ") && l.contains("(key 3)")), "{}", f.stdout);
    assert!(lines.iter().any(|l| l.contains("1 row(s) differ (key 200)")), "{}", f.stdout);
    dtle.stop_cleanly().await;
}

#[tokio::test]
async fn parallel_workers_and_a_keyless_table_verify() {
    let Some(ctx) = Ctx::new("verify_parallel").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job_name) = ("e2e_verify_parallel", "e2e_verify_parallel");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    create_load_tables(&mut src, schema).await;
    let job = ctx.job(
        "job.hcl",
        job_name,
        s.src,
        s.dst,
        &format!("{}\nGtid = \"\"\nParallelWorkers = 4", replicate_schema(schema)),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    let mut load = Load::start(s, schema);
    load.wait_progress(50, &mut [&mut dtle]).await;
    // (d) ParallelWorkers = 4 under writes: the keyed table is equal (tn, without a key, changes all the time: one
    // chunk that is hot or equal, never different).
    for run in 0..2 {
        let f = verify(
            &ctx,
            &format!("parallel{run}"),
            &job,
            &["--chunk-size", "25", "--hot-retries", "30", "--tables", &format!("{schema}.tk")],
        )
        .await;
        assert_eq!(f.code, Some(0), "run {run}: {}{}", f.stdout, f.stderr);
    }
    // --repair while ParallelWorkers = 4 applies the load: rows the load keeps writing, changed by hand on the
    // target, are repaired (or overwritten by the job first); afterwards the table is exactly the source's.
    exec(&mut dst, &format!("UPDATE {schema}.tk SET s = 'by hand' WHERE id IN (10, 100, 200)")).await;
    let tk = format!("{schema}.tk");
    let f = verify(
        &ctx,
        "parallel_repair",
        &job,
        &["--chunk-size", "25", "--hot-retries", "30", "--tables", &tk, "--repair"],
    )
    .await;
    assert!(matches!(f.code, Some(0) | Some(1)), "{}{}", f.stdout, f.stderr);
    for line in unequal_lines(&f) {
        assert!(line.contains(": repaired: ") && line.contains("equal when checked again"), "{}", f.stdout);
    }
    let f =
        verify(&ctx, "parallel_repaired", &job, &["--chunk-size", "25", "--hot-retries", "30", "--tables", &tk]).await;
    assert_eq!(f.code, Some(0), "{}{}", f.stdout, f.stderr);
    let f = verify(&ctx, "parallel_all", &job, &["--chunk-size", "25", "--hot-retries", "2"]).await;
    assert_ne!(f.code, Some(1), "no difference: {}{}", f.stdout, f.stderr);
    assert!(!f.stdout.contains(": different"), "{}", f.stdout);
    load.stop().await;
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    assert_tables_equal(&mut src, &mut dst, &tk, Some("id")).await;

    // (e) The table without a key: one whole-table chunk, compared as a multiset (duplicates and NULLs included).
    let f = verify(&ctx, "keyless", &job, &["--tables", &format!("{schema}.tn")]).await;
    assert_eq!(f.code, Some(0), "{}{}", f.stdout, f.stderr);
    assert!(f.stdout.contains("no usable key: the whole table as one chunk"), "{}", f.stdout);
    exec(&mut dst, &format!("DELETE FROM {schema}.tn LIMIT 1")).await;
    let f = verify(&ctx, "keyless_different", &job, &["--tables", &format!("{schema}.tn")]).await;
    assert_eq!(f.code, Some(1), "{}{}", f.stdout, f.stderr);
    let lines = unequal_lines(&f);
    assert_eq!(lines.len(), 1, "{}", f.stdout);
    assert!(lines[0].contains("whole table") && lines[0].contains("1 source row(s) not on the target"), "{}", lines[0]);
    let f = verify(&ctx, "keyless_repair", &job, &["--tables", &format!("{schema}.tn"), "--repair"]).await;
    assert_eq!(f.code, Some(1), "{}{}", f.stdout, f.stderr);
    assert!(f.stdout.contains("repaired (") && f.stdout.contains("equal when checked again"), "{}", f.stdout);
    let f = verify(&ctx, "keyless_repaired", &job, &["--tables", &format!("{schema}.tn")]).await;
    assert_eq!(f.code, Some(0), "{}{}", f.stdout, f.stderr);
    assert_load_tables_equal(&mut src, &mut dst, schema).await;
    dtle.stop_cleanly().await;
}

#[tokio::test]
async fn refusals_and_bad_options_exit_2_with_the_field_named() {
    let Some(ctx) = Ctx::new("verify_refuse").await else {
        return;
    };
    let s = &ctx.s;
    let schema = "e2e_verify_refuse";
    let mut src = s.src_conn().await;
    reset_source_schema(&mut src, schema).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY)")).await;
    let job = ctx.job("job.hcl", "e2e_verify_refuse", s.src, s.dst, &replicate_schema(schema));
    for (name, args, needle) in [
        ("tables", vec!["--tables", "nosuch.t"], "--tables"),
        ("tables_shape", vec!["--tables", "nodot"], "db.table"),
        ("chunk", vec!["--chunk-size", "0"], "--chunk-size"),
    ] {
        let f = verify(&ctx, name, &job, &args).await;
        assert_eq!(f.code, Some(2), "{name}: {}{}", f.stdout, f.stderr);
        assert!(f.stderr.contains(needle), "{name}: {}", f.stderr);
    }
    let kafka = ctx.path().join("kafka.hcl");
    write_file(
        &kafka,
        &kafka_job_hcl(
            "e2e_verify_kafka",
            &replicate_schema(schema),
            &s.conn_hcl(s.src),
            "Topic = \"t\"\nBrokers = [\"127.0.0.1:1\"]",
        ),
    );
    let f = verify(&ctx, "kafka", &kafka, &[]).await;
    assert_eq!(f.code, Some(2), "{}{}", f.stdout, f.stderr);
    assert!(f.stderr.contains("KafkaConfig") && f.stderr.contains("MySQL/MariaDB targets only"), "{}", f.stderr);
    // A job that never ran: no position on the target, a clear error (exit 3).
    let mut dst = s.dst_conn().await;
    reset_target(&mut dst, schema, "e2e_verify_refuse").await;
    exec(&mut dst, &format!("CREATE DATABASE {schema}")).await;
    exec(&mut dst, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY)")).await;
    let f = verify(&ctx, "never_ran", &job, &["--max-lag", "2"]).await;
    assert_eq!(f.code, Some(3), "{}{}", f.stdout, f.stderr);
    assert!(f.stderr.contains("no position row for the job") && f.stderr.contains("e2e_verify_refuse"), "{}", f.stderr);
}

#[tokio::test]
async fn shards_merged_into_one_table_are_each_verified_against_their_rows() {
    let Some(ctx) = Ctx::new("verify_shards").await else {
        return;
    };
    let s = &ctx.s;
    let (target, job_name) = ("e2e_verify_merged", "e2e_verify_shards");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_target(&mut dst, target, job_name).await;
    for (n, first) in [(1, 1), (2, 101)] {
        let schema = format!("e2e_verify_shard_{n}");
        reset_source_schema(&mut src, &schema).await;
        exec(&mut src, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, v VARCHAR(20))")).await;
        exec(
            &mut src,
            &format!("INSERT INTO {schema}.t SELECT {first} + seq, CONCAT('s{n}-', seq) FROM {schema}.seq_0_to_49"),
        )
        .await;
    }
    let job = ctx.job(
        "job.hcl",
        job_name,
        s.src,
        s.dst,
        &format!(
            "ReplicateDoDb = [{{ TableSchemaRegex = \"e2e_verify_shard_(\\\\d+)\", TableSchemaRename = \"{target}\" }}]\nGtid = \"\""
        ),
    );
    let mut dtle = Dtle::run(ctx.path(), &job);
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    assert_eq!(count(&mut dst, &format!("{target}.t")).await, 100);
    // Each shard's range holds the other shard's rows on the target: shown, not counted.
    let f = verify(&ctx, "shards", &job, &["--chunk-size", "30"]).await;
    assert_eq!(f.code, Some(0), "{}{}", f.stdout, f.stderr);
    assert!(f.stdout.contains(&format!("e2e_verify_shard_1.t -> {target}.t: equal")), "{}", f.stdout);
    assert!(f.stdout.contains(&format!("e2e_verify_shard_2.t -> {target}.t: equal")), "{}", f.stdout);
    // A row of shard 2 lost on the target: shard 2's range, not shard 1's.
    exec(&mut dst, &format!("DELETE FROM {target}.t WHERE id = 120")).await;
    let f = verify(&ctx, "shards_missing", &job, &["--chunk-size", "30"]).await;
    assert_eq!(f.code, Some(1), "{}{}", f.stdout, f.stderr);
    let lines = unequal_lines(&f);
    assert_eq!(lines.len(), 1, "{}", f.stdout);
    assert!(lines[0].starts_with(&format!("  e2e_verify_shard_2.t -> {target}.t: chunk 1 ")), "{}", lines[0]);
    assert!(lines[0].contains("1 row(s) missing on the target (key 120)"), "{}", lines[0]);
    dtle.stop_cleanly().await;
}

/// Across NATS (src and dest in two processes, as under Nomad): verify reads only the job file, the two servers and
/// the target's position row, so the transport makes no difference — equal under writes, a changed row found with
/// its key range, equal again once fixed.
#[tokio::test]
async fn a_job_over_nats_verifies_like_one_in_process() {
    let Some(ctx) = Ctx::new("verify_nats").await else {
        return;
    };
    let Some(nats) = nats_url() else { return };
    let s = &ctx.s;
    let (schema, job_name) = ("e2e_verify_nats", "e2e_verify_nats");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    create_load_tables(&mut src, schema).await;
    add_static_rows(&mut src, schema).await;
    let job = ctx.job("job.hcl", job_name, s.src, s.dst, &format!("{}\nGtid = \"\"", replicate_schema(schema)));
    let link = ["--transport", "nats", "--nats", nats.as_str()];
    let mut dest =
        Dtle::run_with(ctx.path(), &job, "dest.log", "data-dest", &[&link[..], &["--only", "dest"]].concat());
    let mut srcp = Dtle::run_with(ctx.path(), &job, "src.log", "data-src", &[&link[..], &["--only", "src"]].concat());
    wait_target_caught_up(s, &mut dst, job_name, &mut dest).await;
    let mut load = Load::start(s, schema);
    load.wait_progress(50, &mut [&mut srcp, &mut dest]).await;
    let tk = format!("{schema}.tk");
    let f = verify(&ctx, "nats_equal", &job, &["--chunk-size", "25", "--hot-retries", "30", "--tables", &tk]).await;
    assert_eq!(f.code, Some(0), "{}{}", f.stdout, f.stderr);
    // A static row (the load never writes it) changed by hand on the target: exactly its chunk is reported.
    exec(&mut dst, &format!("UPDATE {tk} SET s = 'by hand' WHERE id = 1050")).await;
    let f = verify(&ctx, "nats_changed", &job, &["--chunk-size", "25", "--hot-retries", "30", "--tables", &tk]).await;
    assert_eq!(f.code, Some(1), "{}{}", f.stdout, f.stderr);
    let lines = unequal_lines(&f);
    assert_eq!(lines.len(), 1, "{}", f.stdout);
    assert!(lines[0].contains("key 1050"), "{}", lines[0]);
    exec(&mut dst, &format!("UPDATE {tk} SET s = 'static50' WHERE id = 1050")).await;
    let f = verify(&ctx, "nats_fixed", &job, &["--chunk-size", "25", "--hot-retries", "30", "--tables", &tk]).await;
    assert_eq!(f.code, Some(0), "{}{}", f.stdout, f.stderr);
    load.stop().await;
    srcp.stop_cleanly().await;
    dest.stop_cleanly().await;
}
