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
            // Every group applied is timed: queued at the dest, then applied until durable.
            let queued = metric(text, "dtle_dest_queue_seconds_count", job_name);
            let applied = metric(text, "dtle_dest_apply_seconds_count", job_name);
            let acked = metric(text, "dtle_batch_ack_seconds_count", job_name);
            if snapshot == Some(50.0)
                && txs.is_some_and(|t| t >= 20.0)
                && commits.is_some_and(|c| c >= 1.0)
                && applied.is_some_and(|a| a >= 1.0)
            {
                assert!(text.contains("# TYPE dtle_delay_seconds gauge"), "{text}");
                assert!(queued >= applied, "a group is queued before it is applied: {text}");
                assert!(acked >= applied, "every batch of a group is acknowledged: {text}");
                let inf = format!("dtle_dest_apply_seconds_bucket{{job=\"{job_name}\",le=\"+Inf\"}} ");
                let total = text.lines().find_map(|l| l.strip_prefix(&inf)).and_then(|v| v.parse::<f64>().ok());
                assert_eq!(total, applied, "the +Inf bucket counts every group: {text}");
                break;
            }
            w.note(format!("metrics so far: {text}"));
        }
        w.tick(Some(&mut dtle)).await;
    }
    dtle.stop_cleanly().await;
}

/// The broker for the Kafka case, or `None` (after printing why) when it is not configured and not required.
fn kafka_brokers() -> Option<String> {
    match std::env::var("DTLE_TEST_KAFKA").ok().filter(|v| !v.trim().is_empty()) {
        Some(v) => Some(v.trim().to_string()),
        None if servers_required() => {
            panic!("DTLE_TEST_KAFKA is not set (tests/kafka.sh start; eval \"$(tests/kafka.sh env)\")")
        }
        None => {
            println!("skipping: DTLE_TEST_KAFKA is not set");
            None
        }
    }
}

/// Regression (issue 13): the lag gauge is the dest loop's, the same for every sink — Kafka jobs never set it. A
/// source transaction logged 1000 s in the past (`SET TIMESTAMP`) shows as about 1000 s of lag with a MySQL target
/// and with a Kafka target, in one process and with src and dest over NATS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_gauge_follows_the_source_for_every_target() {
    let Some(ctx) = Ctx::new("metrics-lag").await else {
        return;
    };
    let Some(brokers) = kafka_brokers() else { return };
    let s = &ctx.s;
    let schema = "e2e_metrics_lag";
    let mut src = s.src_conn().await;
    let mut dst = s.dst_conn().await;
    reset_source_schema(&mut src, schema).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, v INT)")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.t VALUES (1, 0)")).await;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let topic = format!("lag{}", nanos % 1_000_000_000_000);
    let mysql_job = ctx.job("mysql.hcl", "e2e_metrics_lag_mysql", s.src, s.dst, &replicate_schema(schema));
    reset_target(&mut dst, schema, "e2e_metrics_lag_mysql").await;
    let kafka_job = ctx.path().join("kafka.hcl");
    write_file(
        &kafka_job,
        &kafka_job_hcl(
            "e2e_metrics_lag_kafka",
            &replicate_schema(schema),
            &s.conn_hcl(s.src),
            &format!("Topic = \"{topic}\"\nBrokers = [\"{brokers}\"]"),
        ),
    );
    let mut cases = vec![
        ("mysql", mysql_job, "e2e_metrics_lag_mysql", None),
        ("kafka", kafka_job.clone(), "e2e_metrics_lag_kafka", None),
    ];
    if let Some(nats) = nats_url() {
        cases.push(("kafka over NATS", kafka_job, "e2e_metrics_lag_kafka", Some(nats)));
    }
    for (round, (what, job, job_name, nats)) in cases.into_iter().enumerate() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        let addr = format!("127.0.0.1:{port}");
        let data = format!("data-{round}");
        let mut procs = Vec::new();
        match &nats {
            None => {
                procs.push(Dtle::run_with(ctx.path(), &job, &format!("{round}.log"), &data, &["--metrics-addr", &addr]))
            }
            Some(url) => {
                let link = ["--transport", "nats", "--nats", url.as_str()];
                procs.push(Dtle::run_with(
                    ctx.path(),
                    &job,
                    &format!("{round}-dest.log"),
                    &format!("{data}-dest"),
                    &[&link[..], &["--only", "dest", "--metrics-addr", &addr]].concat(),
                ));
                procs.push(Dtle::run_with(
                    ctx.path(),
                    &job,
                    &format!("{round}-src.log"),
                    &format!("{data}-src"),
                    &[&link[..], &["--only", "src"]].concat(),
                ));
            }
        }
        // A transaction the source logs as 1000 s old, once the job runs.
        let mut written = false;
        let w =
            Waiter::new(format!("{what}: the lag gauge shows the old transaction")).with_limit(Duration::from_secs(60));
        loop {
            let body = http_request(&addr, "GET", "/metrics").map(|(_, b)| String::from_utf8_lossy(&b).into_owned());
            if let Ok(text) = &body {
                let copied = metric(text, "dtle_snapshot_rows_total", job_name).is_some_and(|r| r >= 1.0);
                if copied && !written {
                    exec(&mut src, "SET TIMESTAMP = UNIX_TIMESTAMP() - 1000").await;
                    exec(&mut src, &format!("UPDATE {schema}.t SET v = v + 1 WHERE id = 1")).await;
                    exec(&mut src, "SET TIMESTAMP = DEFAULT").await;
                    written = true;
                }
                let lag = metric(text, "dtle_delay_seconds", job_name).unwrap_or(0.0);
                if written && lag > 900.0 {
                    assert!(lag < 1200.0, "{what}: lag {lag}");
                    break;
                }
                w.note(format!("{what}: copied {copied}, lag {lag}; metrics: {text}"));
            }
            w.tick(procs.first_mut()).await;
        }
        for mut p in procs.into_iter().rev() {
            p.stop_cleanly().await;
        }
    }
}

/// Regression (issue 13): KafkaConfig's MessageGroupMaxSize / MessageGroupTimeout group messages in the dest loop
/// for every link — they only worked with src and dest in one process. Five source transactions 300 ms apart (each
/// its own batch: GroupTimeout is 100 ms) go to the broker in one or two groups when the dest may wait 3 s for
/// more, over NATS as in one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_message_groups_wait_for_more_over_nats_as_in_one_process() {
    let Some(ctx) = Ctx::new("metrics-kafka-groups").await else {
        return;
    };
    let Some(brokers) = kafka_brokers() else { return };
    let Some(nats) = nats_url() else { return };
    let s = &ctx.s;
    let schema = "e2e_metrics_kgroups";
    let job_name = "e2e_metrics_kgroups";
    let mut src = s.src_conn().await;
    reset_source_schema(&mut src, schema).await;
    exec(&mut src, &format!("CREATE TABLE {schema}.t (id INT PRIMARY KEY, v INT)")).await;
    exec(&mut src, &format!("INSERT INTO {schema}.t VALUES (1, 0)")).await;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let job = ctx.path().join("kafka.hcl");
    write_file(
        &job,
        &kafka_job_hcl(
            job_name,
            &replicate_schema(schema),
            &s.conn_hcl(s.src),
            &format!(
                "Topic = \"kgroups{}\"\nBrokers = [\"{brokers}\"]\nMessageGroupMaxSize = 1048576\nMessageGroupTimeout = 3000",
                nanos % 1_000_000_000_000
            ),
        ),
    );
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let addr = format!("127.0.0.1:{port}");
    let link = ["--transport", "nats", "--nats", nats.as_str()];
    let mut dest = Dtle::run_with(
        ctx.path(),
        &job,
        "dest.log",
        "data-dest",
        &[&link[..], &["--only", "dest", "--metrics-addr", &addr]].concat(),
    );
    let mut srcp = Dtle::run_with(ctx.path(), &job, "src.log", "data-src", &[&link[..], &["--only", "src"]].concat());
    let read = |name: &'static str| {
        let addr = addr.clone();
        move || -> Option<f64> {
            let (_, body) = http_request(&addr, "GET", "/metrics").ok()?;
            metric(&String::from_utf8_lossy(&body), name, job_name)
        }
    };
    let (commits, txs) = (read("dtle_target_commits_total"), read("dtle_applied_transactions_total"));
    let w = Waiter::new("the full copy").with_limit(Duration::from_secs(60));
    while !read("dtle_snapshot_rows_total")().is_some_and(|r| r >= 1.0) {
        w.tick(Some(&mut dest)).await;
    }
    // The copy's group is acknowledged; nothing else is in flight.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (commits_before, txs_before) = (commits().unwrap_or(0.0), txs().unwrap_or(0.0));
    for i in 0..5 {
        exec(&mut src, &format!("UPDATE {schema}.t SET v = {} WHERE id = 1", i + 1)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let w = Waiter::new("the five transactions are produced").with_limit(Duration::from_secs(60));
    while txs().unwrap_or(0.0) < txs_before + 5.0 {
        let text = http_request(&addr, "GET", "/metrics").map(|(_, b)| String::from_utf8_lossy(&b).into_owned());
        w.note(format!("transactions {:?} (before {txs_before}); metrics: {text:?}", txs()));
        w.tick(Some(&mut dest)).await;
    }
    let groups = commits().unwrap_or(0.0) - commits_before;
    assert!(
        (1.0..=2.0).contains(&groups),
        "5 transactions went out in {groups} groups; expected 1 or 2 (MessageGroupTimeout = 3000)"
    );
    srcp.stop_cleanly().await;
    dest.stop_cleanly().await;
}
