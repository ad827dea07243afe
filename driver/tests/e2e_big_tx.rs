//! Big source transactions are sent and applied in parts (memory bounded by the part size) and still commit on the
//! target as one transaction with their position: exactly once across a kill -9 in the middle, in process and
//! over NATS.

mod common;

use std::time::Duration;

use common::*;

/// One source transaction of `rows` inserts plus updates and deletes of earlier rows, ~100 bytes a row.
async fn big_transaction(src: &mut mysql_async::Conn, schema: &str, first_id: u64, rows: u64) {
    exec(
        src,
        &format!(
            "START TRANSACTION;\
             INSERT INTO {schema}.t (id, v, pad) SELECT {first_id} + seq, seq, REPEAT(CHAR(65 + seq % 26), 90) FROM {schema}.seq_0_to_{};\
             UPDATE {schema}.t SET v = v + 1 WHERE id % 7 = 0;\
             DELETE FROM {schema}.t WHERE id % 11 = 0;\
             COMMIT",
            rows - 1
        ),
    )
    .await;
}

async fn run_case(ctx: &Ctx, schema: &str, job_name: &str, extra_args: &[&str]) {
    let s = &ctx.s;
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.t (id BIGINT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(100))")).await;
    // DumpEntryLimit is dtle's size for splitting big transactions: 64 KiB parts here.
    let job = ctx.job(
        "job.hcl",
        job_name,
        s.src,
        s.dst,
        &format!("{}\nGtid = \"\"\nDumpEntryLimit = 65536", replicate_schema(schema)),
    );
    let mut dtle = Dtle::run_with(ctx.path(), &job, "dtle1.log", "data", extra_args);
    let table = format!("{schema}.t");
    // Wait for the (empty) full copy to finish: the job's position row reaches the incremental stage.
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;

    // ~5 MB of row data in one transaction: about 80 parts.
    big_transaction(&mut src, schema, 1, 50_000).await;
    // Kill while it is being applied (or just after: either way nothing may be lost or doubled).
    let w = Waiter::new("the target starts receiving the big transaction").with_limit(Duration::from_secs(30));
    while query_u64(&mut dst, "SELECT COUNT(*) FROM information_schema.INNODB_TRX").await == 0 && !w.expired() {
        if count_if_exists(&mut dst, &table).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    dtle.kill9();
    drop(dtle);
    // Rows of a transaction in progress are never visible on the target: all of it or none of it.
    let visible = count_if_exists(&mut dst, &table).await;
    println!("after kill -9: {visible} rows visible on the target");
    let expected_after_first = query_u64(&mut src, &format!("SELECT COUNT(*) FROM {table}")).await;
    assert!(visible == 0 || visible == expected_after_first, "a partly applied transaction became visible: {visible}");

    let mut dtle = Dtle::run_with(ctx.path(), &job, "dtle2.log", "data", extra_args);
    big_transaction(&mut src, schema, 100_001, 30_000).await;
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    assert_tables_equal(&mut src, &mut dst, &table, Some("id")).await;
    dtle.stop_cleanly().await;
    let log = read_log(&ctx.path().join("dtle2.log"));
    assert!(
        log.contains("big transaction: sending it in parts"),
        "the big transaction was not split: {}",
        tail(&log, 20)
    );
}

#[tokio::test]
async fn big_transactions_in_parts_survive_kill9_in_process() {
    let Some(ctx) = Ctx::new("big_tx").await else {
        return;
    };
    run_case(&ctx, "e2e_big_tx", "e2e_big_tx", &[]).await;
}

#[tokio::test]
async fn big_transactions_in_parts_survive_kill9_over_nats() {
    let Some(url) = nats_url() else {
        return;
    };
    let Some(ctx) = Ctx::new("big_tx_nats").await else {
        return;
    };
    run_case(&ctx, "e2e_big_tx_nats", "e2e_big_tx_nats", &["--transport", "nats", "--nats", &url]).await;
}
