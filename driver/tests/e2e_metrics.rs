//! `dtle run --metrics-addr` serves Prometheus metrics that move with replication.

mod common;

use std::time::Duration;

use common::*;

fn metric(text: &str, name: &str, job: &str) -> Option<f64> {
    let prefix = format!("{name}{{job=\"{job}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn metrics_follow_replication() {
    let Some(ctx) = Ctx::new("metrics").await else {
        return;
    };
    let s = &ctx.s;
    let (schema, job_name) = ("e2e_metrics", "e2e_metrics");
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    reset_target(&mut dst, schema, job_name).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, v INT)")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.t SELECT seq, seq FROM {schema}.seq_1_to_50")).await;
    let job = ctx.job(
        "job.hcl",
        job_name,
        s.src,
        s.dst,
        &format!("ReplicateDoDb = [{{ TableSchema = \"{schema}\" }}]\nGtid = \"\""),
    );
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let addr = format!("127.0.0.1:{port}");
    let mut dtle = Dtle::run_with(ctx.path(), &job, "dtle.log", "data", &["--metrics-addr", &addr]);
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;
    for i in 0..20 {
        exec(&mut src, &format!("UPDATE {schema}.t SET v = v + 1 WHERE id = {}", i + 1)).await;
    }
    wait_target_caught_up(s, &mut dst, job_name, &mut dtle).await;

    let w = Waiter::new("metrics show the applied transactions").with_limit(Duration::from_secs(30));
    loop {
        let body = http_request(&addr, "GET", "/metrics").map(|(_, b)| String::from_utf8_lossy(&b).into_owned());
        if let Ok(text) = &body {
            let snapshot = metric(text, "dtle_snapshot_rows_total", job_name);
            let txs = metric(text, "dtle_applied_transactions_total", job_name);
            let commits = metric(text, "dtle_target_commits_total", job_name);
            if snapshot == Some(50.0) && txs.is_some_and(|t| t >= 20.0) && commits.is_some_and(|c| c >= 1.0) {
                assert!(text.contains("# TYPE dtle_delay_seconds gauge"), "{text}");
                break;
            }
            w.note(format!("metrics so far: {text}"));
        }
        w.tick(Some(&mut dtle)).await;
    }
    dtle.stop_cleanly().await;
}
