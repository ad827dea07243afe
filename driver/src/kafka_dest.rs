//! The dest task for a Kafka target (`KafkaConfig`): Debezium-compatible messages through `dtle_kafka::KafkaSink`.
//!
//! There is no position on the target: the start point comes from the position store (local file, or Consul with
//! `--consul`), else from the job file. A position is handed to the checkpoint saver only after the broker
//! acknowledged every message before it, so a crash re-sends at most what was not yet acknowledged
//! (at-least-once). The full copy is sent as `op=r` events; the binlog then continues from the copy's position.

use std::sync::Arc;
use std::time::Duration;

use dtle_kafka::{EnvelopeOptions, KafkaSink, Produced, SinkOptions, SinkStats};
use dtle_metadata::{CheckpointStore, JobStage, Position};
use dtle_mysql::applier::ApplyStats;
use dtle_mysql::conn::server_info;
use dtle_mysql::prereq::{check_source, SourceRequirements};
use dtle_mysql::Change;
use dtle_transport::nats::NatsOptions;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::{KafkaConfig, ResolvedJob};
use crate::engine;
use crate::error::DriverError;
use crate::metrics;
use crate::standalone::{
    gather_batches, hello_refusal, source_options, start_from_store_or_config, Progress, Roles, RunOptions, SrcSide,
    MAX_GROUP_BYTES, MAX_GROUP_CHANGES,
};

/// Groups produced and not yet acknowledged by the broker, at most (librdkafka's own queue bounds the bytes).
const MAX_GROUPS_IN_FLIGHT: usize = 256;

/// The sink's settings from the job's KafkaConfig; invalid values are refused with the field's name.
pub fn sink_options(job: &ResolvedJob, k: &KafkaConfig) -> Result<SinkOptions, DriverError> {
    let date_time_zone = dtle_kafka::parse_time_zone(&k.date_time_zone).map_err(|reason| {
        DriverError::InvalidField { field: "KafkaConfig.DateTimeZone".into(), value: k.date_time_zone.clone(), reason }
    })?;
    let envelope = EnvelopeOptions {
        server_name: k.topic.trim().to_string(),
        topic_with_schema_table: k.topic_with_schema_table,
        schema_change_topic: k.schema_change_topic(),
        date_time_zone,
    };
    let mut opts = SinkOptions::new(k.brokers.iter().map(|b| b.trim().to_string()).collect(), envelope);
    opts.user = k.user.clone();
    opts.password = k.password.clone();
    opts.client_id = format!("dtle-{}", job.name);
    opts.defaults_from = Some(engine::source_endpoint(job));
    Ok(opts)
}

/// `dtle validate` and the start checks for a Kafka target: the source's prerequisites, the KafkaConfig values, and
/// a metadata request to the brokers.
pub(crate) async fn validate(job: &ResolvedJob, k: &KafkaConfig, roles: Roles) -> Result<(), DriverError> {
    let opts = sink_options(job, k)?;
    if roles != Roles::DestOnly {
        let req = SourceRequirements {
            needs_gtid: !job.src.gtid.is_empty() || job.src.auto_gtid,
            skip_privilege_check: job.src.skip_privilege_check,
            snapshot_only: job.src.skip_incremental_copy,
        };
        match check_source(&engine::source_endpoint(job), req).await {
            Ok((_, f)) if f.is_empty() => {}
            Ok((_, f)) => return Err(DriverError::Prerequisites(f)),
            Err(e) => return Err(e.into()),
        }
    }
    if roles != Roles::SrcOnly {
        KafkaSink::connect(&opts).await?;
    }
    Ok(())
}

/// Counts what one `apply` produced, in the metrics the MySQL applier also feeds.
fn record_metrics(m: &metrics::JobMetrics, before: &SinkStats, after: &SinkStats) {
    m.add_snapshot_rows(after.snapshot_rows - before.snapshot_rows);
    m.add_transactions(after.transactions - before.transactions);
    m.add_row_changes(after.row_changes - before.row_changes);
    m.add_target_commits(u64::from(after.messages != before.messages));
}

/// The sink's counters in the shape the progress reporter reads.
fn as_apply_stats(s: &SinkStats) -> ApplyStats {
    ApplyStats {
        snapshot_rows: s.snapshot_rows,
        transactions: s.transactions,
        row_changes: s.row_changes,
        target_commits: s.messages,
        ..Default::default()
    }
}

/// Both tasks in one process: the source, the sink, and the checkpoint saver fed with acknowledged positions.
pub(crate) async fn run_once(
    job: &ResolvedJob,
    k: &KafkaConfig,
    opts: &RunOptions,
    store: Arc<dyn CheckpointStore>,
    shutdown: &CancellationToken,
) -> Result<(), DriverError> {
    crate::standalone::validate_roles(job, Roles::SrcOnly).await?;
    let sink_opts = sink_options(job, k)?;
    let mut sink = KafkaSink::connect(&sink_opts).await?;
    let source_ep = engine::source_endpoint(job);
    let flavor = {
        let mut conn = source_ep.connect(&[]).await?;
        let info = server_info(&mut conn).await?;
        let _ = conn.disconnect().await;
        info.flavor
    };
    let start = start_from_store_or_config(job, flavor, store.as_ref(), &source_ep).await?;
    info!(job = %job.name, topic = %k.topic, brokers = %k.brokers.join(","), "kafka: producing Debezium-compatible JSON");
    let mut src = SrcSide::start(job, source_options(job, source_ep, flavor)?, start, store, shutdown);
    let mut groups = src.take_groups();
    let mut progress = Progress::new(&job.name, opts.progress_bar);
    let mut result: Result<(), DriverError> = Ok(());
    // Producing and acknowledging overlap: the acknowledger waits for each group's deliveries in order and only then
    // hands its position to the checkpoint saver; on a failure it stops the source and ends, which closes `acks`:
    // nothing is produced after that (a later message could otherwise reach the topic before the failed one is sent
    // again).
    let (acks, mut acks_rx) = tokio::sync::mpsc::channel::<Produced>(MAX_GROUPS_IN_FLIGHT);
    let acknowledger = {
        let progress_tx = src.progress.clone();
        let stop = src.cancel.clone();
        tokio::spawn(async move {
            while let Some(produced) = acks_rx.recv().await {
                match produced.acknowledged().await {
                    Ok(Some(safe)) => {
                        let _ = progress_tx.send(safe);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        stop.cancel();
                        return Err(DriverError::from(e));
                    }
                }
            }
            Ok(())
        })
    };
    let group_max_bytes = k.message_group_max_size.max(1) as usize;
    let group_timeout = Duration::from_millis(k.message_group_timeout.clamp(0, 60_000) as u64);
    while let Some(mut changes) = groups.recv().await {
        if acks.is_closed() {
            break;
        }
        // Produce whatever is already queued together: one wait for the acknowledgements of all of it.
        // KafkaConfig.MessageGroupMaxSize / MessageGroupTimeout: wait up to the timeout for more while the group is
        // smaller than the size (the default, 1 byte, sends at once).
        let mut bytes: usize = changes.iter().map(Change::approx_size).sum();
        let group_deadline = tokio::time::Instant::now() + group_timeout;
        while changes.len() < MAX_GROUP_CHANGES && bytes < MAX_GROUP_BYTES {
            let more = match groups.try_recv() {
                Ok(more) => Some(more),
                Err(_) if bytes < group_max_bytes => {
                    tokio::time::timeout_at(group_deadline, groups.recv()).await.ok().flatten()
                }
                Err(_) => None,
            };
            match more {
                Some(more) => {
                    bytes += more.iter().map(Change::approx_size).sum::<usize>();
                    changes.extend(more);
                }
                None => break,
            }
        }
        progress.starting(&changes);
        if acks.is_closed() {
            break;
        }
        let before = sink.stats.clone();
        let produced = match sink.produce(&changes).await {
            Ok(p) => p,
            Err(e) => {
                result = Err(e.into());
                break;
            }
        };
        record_metrics(&src.metrics, &before, &sink.stats);
        progress.applied(&changes, &as_apply_stats(&sink.stats));
        src.dump_progress.observe(&changes);
        // Blocks while MAX_GROUPS_IN_FLIGHT groups wait for the broker; fails once the acknowledger stopped.
        if acks.send(produced).await.is_err() {
            break;
        }
    }
    src.cancel.cancel();
    drop(groups);
    drop(acks);
    progress.finish();
    let ack_result = acknowledger.await.unwrap_or_else(|e| Err(DriverError::Other(format!("ack task failed: {e}"))));
    let (source_result, checkpoint_result) = src.finish().await;
    // A delivery failure is the cause; the source only stopped because of it.
    ack_result?;
    info!(job = %job.name, messages = sink.stats.messages, bytes = sink.stats.bytes, "kafka: stopped");
    result?;
    checkpoint_result?;
    source_result
}

/// The dest task alone, behind NATS: answers the src's hello (a Kafka target has no position of its own, so the
/// src starts from the position store or the job file), produces the batches in order and acknowledges each one
/// with the position that is safe once the broker acknowledged it.
pub(crate) async fn run_dest_remote(
    job: &ResolvedJob,
    k: &KafkaConfig,
    nats: NatsOptions,
    opts: &RunOptions,
    shutdown: &CancellationToken,
) -> Result<(), DriverError> {
    use dtle_proto::v1::HelloReply;
    use dtle_transport::nats::DestEvent;
    let mut sink = KafkaSink::connect(&sink_options(job, k)?).await?;
    let mut link = crate::meeting::bind_dest(&job.name, nats, opts).await?;
    info!(job = %job.name, "dest: waiting for the src task (Kafka target)");
    let mut progress = Progress::new(&job.name, opts.progress_bar);
    let job_metrics = metrics::job(&job.name);
    // Producing and acknowledging overlap, as in one process: an acknowledger task waits for each group's deliveries
    // in order and then acks its batches to the src with the position that is safe.
    let (acks, mut acks_rx) = tokio::sync::mpsc::channel::<(u64, u64, dtle_kafka::Produced)>(MAX_GROUPS_IN_FLIGHT);
    let mut acknowledger = {
        let acker = link.acker();
        tokio::spawn(async move {
            while let Some((session, seq, produced)) = acks_rx.recv().await {
                let position: Option<Position> = match produced.acknowledged().await? {
                    Some((JobStage::Incremental, p)) => Some(p),
                    _ => None,
                };
                acker.ack(session, seq, position.as_ref().map(crate::wire::position_to_wire)).await?;
            }
            Ok::<(), DriverError>(())
        })
    };
    let mut pending = None;
    let mut result: Result<(), DriverError> = Ok(());
    loop {
        let event = match pending.take() {
            Some(ev) => ev,
            None => tokio::select! {
                _ = shutdown.cancelled() => break,
                // A delivery failure ends the task (the src then restarts from the saved position).
                done = &mut acknowledger => {
                    result = done.unwrap_or_else(|e| Err(DriverError::Other(format!("ack task failed: {e}"))));
                    if result.is_ok() {
                        result = Err(DriverError::Other("the acknowledger stopped".into()));
                    }
                    progress.finish();
                    return result;
                }
                ev = link.next() => ev?,
            },
        };
        match event {
            DestEvent::Hello { hello, reply } => {
                let error = hello_refusal(&hello, &job.name).unwrap_or_default();
                info!(job = %job.name, session = hello.session, "dest: src connected");
                let answer = HelloReply { version: dtle_proto::WIRE_FORMAT_VERSION, error, ..Default::default() };
                link.answer_hello(&hello, reply, answer).await?;
            }
            DestEvent::Batch { session, seq, payload } => {
                let (changes, last_seq, next) = gather_batches(&mut link, session, seq, &payload)?;
                pending = next;
                progress.starting(&changes);
                let before = sink.stats.clone();
                let produced = sink.produce(&changes).await?;
                record_metrics(&job_metrics, &before, &sink.stats);
                progress.applied(&changes, &as_apply_stats(&sink.stats));
                // Blocks while MAX_GROUPS_IN_FLIGHT groups wait for the broker.
                if acks.send((session, last_seq, produced)).await.is_err() {
                    break;
                }
            }
        }
    }
    progress.finish();
    drop(acks);
    let acked = acknowledger.await.unwrap_or_else(|e| Err(DriverError::Other(format!("ack task failed: {e}"))));
    sink.flush(Duration::from_secs(10)).await;
    info!(job = %job.name, messages = sink.stats.messages, "dest: stopped");
    result.and(acked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_job_file, TargetConfig};

    fn example(name: &str) -> ResolvedJob {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples").join(name);
        parse_job_file(&path).and_then(|j| j.resolve()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn the_kafka_examples_are_the_same_job_in_hcl_and_json() {
        let (h, j) = (example("job_kafka.hcl"), example("job_kafka.json"));
        let (TargetConfig::Kafka(hk), TargetConfig::Kafka(jk)) = (&h.target, &j.target) else {
            panic!("expected Kafka targets")
        };
        assert_eq!(hk, jk);
        let o = sink_options(&h, hk).unwrap();
        assert_eq!(o.brokers, ["127.0.0.1:9092"]);
        assert_eq!(o.envelope.server_name, "demo");
        assert_eq!(o.envelope.schema_change_topic, "schema-changes.demo");
        assert!(o.envelope.topic_with_schema_table);
        assert_eq!(o.client_id, "dtle-demo-kafka");
    }

    #[test]
    fn an_unknown_time_zone_names_the_field() {
        let job = example("job_kafka.hcl");
        let TargetConfig::Kafka(mut k) = job.target.clone() else { panic!() };
        k.date_time_zone = "Mars/Olympus".into();
        let e = sink_options(&job, &k).unwrap_err().to_string();
        assert!(
            e.contains("KafkaConfig.DateTimeZone") && e.contains("Mars/Olympus") && e.contains("Asia/Shanghai"),
            "{e}"
        );
    }
}
