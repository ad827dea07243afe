//! The src loop: source → filter → batch → link, and acknowledgements → checkpoints.
//!
//! [`SrcSide`] runs the source (snapshot, then the binlog; filters, renames and `Where` are applied there), the
//! batcher (dtle's GroupMaxSize / GroupTimeout) and the checkpoint saver. [`run_src`] starts a session on the link
//! (the dest answers where the target stands, see [`super::session`]), then sends each batch and feeds the
//! acknowledgements to the [`AckFeed`] until the source ends, the link fails or the dest is lost.

use std::sync::Arc;
use std::time::Duration;

use dtle_metadata::{CheckpointStore, JobStage, Position};
use dtle_mysql::conn::{server_info, Flavor};
use dtle_mysql::source::{replica_server_id_for, run_source, SourceOptions, StartFrom};
use dtle_mysql::Change;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{warn, Instrument};

use super::checkpoint::{save_checkpoints, AckFeed, BatchSummary, DumpProgressReporter};
use super::link::SrcLink;
use super::session::decide_start;
use crate::config::ResolvedJob;
use crate::engine;
use crate::error::DriverError;

/// Runs the src task's side of one session on `link` until the source ends (`shutdown`, or the end of a copy-only
/// job), the link fails, or the dest is lost.
pub(crate) async fn run_src(
    job: &ResolvedJob,
    link: &mut dyn SrcLink,
    store: Arc<dyn CheckpointStore>,
    shutdown: &CancellationToken,
) -> Result<(), DriverError> {
    let source_ep = engine::source_endpoint(job);
    let flavor = {
        let mut conn = source_ep.connect(&[]).await?;
        let info = server_info(&mut conn).await?;
        let _ = conn.disconnect().await;
        info.flavor
    };
    let answer = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        answer = link.hello(&job.name) => answer?,
    };
    let start = decide_start(job, answer, flavor, store.as_ref(), &source_ep).await?;
    let source_opts = source_options(job, source_ep, flavor)?;
    let mut src = SrcSide::start(job, source_opts, start, store.clone(), shutdown);
    let mut groups = src.groups.take().unwrap_or_else(|| mpsc::channel(1).1);
    let mut feed = AckFeed::new(
        src.checkpoints.clone(),
        DumpProgressReporter::new(&job.name, store),
        crate::metrics::job(&job.name),
    );
    let mut link_result: Result<(), DriverError> = Ok(());
    loop {
        tokio::select! {
            group = groups.recv() => {
                let Some(group) = group else { break };
                let summary = BatchSummary::of(&group);
                match link.send(group).await {
                    Ok(seq) => feed.sent(seq, summary),
                    Err(e) => {
                        link_result = Err(e);
                        break;
                    }
                }
            }
            ack = link.next_ack() => match ack {
                Ok((seq, position)) => feed.acked(seq, position),
                Err(lost) => {
                    warn!(job = %job.name, error = %lost, "src: the dest task is gone");
                    link_result = Err(lost);
                    break;
                }
            },
        }
    }
    src.cancel.cancel();
    drop(groups);
    let unacked = link.finish(link_result.is_ok()).await;
    if unacked > 0 && link_result.is_ok() {
        warn!(job = %job.name, unacked, "the dest did not acknowledge every batch before the stop; the next run resumes from the target's position");
    }
    while let Some((seq, position)) = link.try_ack() {
        feed.acked(seq, position);
    }
    drop(feed);
    let (source_result, checkpoint_result) = src.finish().await;
    link_result?;
    checkpoint_result?;
    source_result
}

/// The src task's moving parts: the source reading the database, the batcher grouping its changes like dtle's
/// GroupMaxSize/GroupTimeout, and the checkpoint saver fed with the positions the dest made durable.
struct SrcSide {
    cancel: CancellationToken,
    source_task: tokio::task::JoinHandle<Result<(), dtle_mysql::MysqlError>>,
    batcher_task: tokio::task::JoinHandle<()>,
    checkpoint_task: tokio::task::JoinHandle<Result<(), DriverError>>,
    groups: Option<mpsc::Receiver<Vec<Change>>>,
    /// Durable positions, in order, for the checkpoint saver.
    checkpoints: mpsc::UnboundedSender<(JobStage, Position)>,
}

impl SrcSide {
    fn start(
        job: &ResolvedJob,
        source_opts: SourceOptions,
        start: StartFrom,
        store: Arc<dyn CheckpointStore>,
        shutdown: &CancellationToken,
    ) -> SrcSide {
        let cancel = shutdown.child_token();
        // Few changes in flight: a snapshot chunk is ChunkSize rows, so memory stays bounded by chunks, not tables.
        let (change_tx, change_rx) = mpsc::channel::<Change>(4);
        let source_task = tokio::spawn(run_source(source_opts, start, change_tx, cancel.clone()).in_current_span());
        let (max_bytes, timeout) = engine::group_limits(&job.src);
        let (grouped_tx, groups) = mpsc::channel::<Vec<Change>>(1);
        let batcher_task = tokio::spawn(batch_changes(change_rx, grouped_tx, max_bytes, timeout).in_current_span());
        let (checkpoints, checkpoints_rx) = mpsc::unbounded_channel();
        let checkpoint_task =
            tokio::spawn(save_checkpoints(job.name.clone(), store, checkpoints_rx, cancel.clone()).in_current_span());
        SrcSide { cancel, source_task, batcher_task, checkpoint_task, groups: Some(groups), checkpoints }
    }

    /// Stops the source and waits for every part. Returns the source's result and the checkpoint saver's (which ends
    /// once every clone of the checkpoint sender is gone).
    async fn finish(self) -> (Result<(), DriverError>, Result<(), DriverError>) {
        let SrcSide { cancel, source_task, batcher_task, checkpoint_task, checkpoints, .. } = self;
        cancel.cancel();
        drop(checkpoints);
        let source_result = match source_task.await {
            Ok(result) => result.map_err(DriverError::from),
            Err(e) => Err(DriverError::Other(format!("source task failed: {e}"))),
        };
        let _ = batcher_task.await;
        let checkpoint_result =
            checkpoint_task.await.unwrap_or_else(|e| Err(DriverError::Other(format!("checkpoint task failed: {e}"))));
        (source_result, checkpoint_result)
    }
}

/// Groups changes into batches of about `max_bytes` or after `timeout`, like dtle's GroupMaxSize/GroupTimeout.
/// Snapshot and DDL boundaries are sent at once.
async fn batch_changes(
    mut rx: mpsc::Receiver<Change>,
    tx: mpsc::Sender<Vec<Change>>,
    max_bytes: usize,
    timeout: Duration,
) {
    let mut pending: Vec<Change> = Vec::new();
    let mut bytes = 0usize;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = match deadline {
            Some(d) => tokio::select! {
                c = rx.recv() => Some(c),
                _ = tokio::time::sleep_until(d) => None,
            },
            None => Some(rx.recv().await),
        };
        match next {
            Some(Some(change)) => {
                bytes += change.approx_size();
                let flush_now =
                    !matches!(change, Change::Tx(ref t) if !t.has_ddl()) && !matches!(change, Change::Heartbeat { .. });
                pending.push(change);
                if deadline.is_none() {
                    deadline = Some(tokio::time::Instant::now() + timeout);
                }
                if bytes >= max_bytes || flush_now {
                    if tx.send(std::mem::take(&mut pending)).await.is_err() {
                        return;
                    }
                    bytes = 0;
                    deadline = None;
                }
            }
            Some(None) => {
                if !pending.is_empty() {
                    let _ = tx.send(pending).await;
                }
                return;
            }
            None => {
                if !pending.is_empty() && tx.send(std::mem::take(&mut pending)).await.is_err() {
                    return;
                }
                bytes = 0;
                deadline = None;
            }
        }
    }
}

/// The source's settings from the job's plan.
pub(crate) fn source_options(
    job: &ResolvedJob,
    endpoint: dtle_mysql::Endpoint,
    flavor: Flavor,
) -> Result<SourceOptions, DriverError> {
    let plan = crate::plan::Plan::build(job)?;
    Ok(SourceOptions {
        endpoint,
        flavor,
        filter: plan.filter,
        chunk_size: job.src.chunk_size.max(1) as usize,
        drop_table_if_exists: job.src.drop_table_if_exists,
        skip_create_db_table: job.src.skip_create_db_table,
        skip_incremental: job.src.skip_incremental_copy,
        replica_server_id: replica_server_id_for(&job.name),
        heartbeat: Duration::from_secs(1),
        max_tx_part_bytes: plan.tx_part_bytes,
        sql_filter: plan.sql_filter,
        skip_unreplayable_ddl: job.src.skip_unreplayable_ddl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtle_metadata::GtidState;

    fn pos(seq: u64) -> Position {
        Position {
            gtid: Some(GtidState::Mariadb(format!("0-1-{seq}").parse().unwrap())),
            binlog_file: "b.000001".into(),
            binlog_pos: seq,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn batches_group_by_size_and_time() {
        let (tx, rx) = mpsc::channel(16);
        let (out_tx, mut out_rx) = mpsc::channel(16);
        tokio::spawn(batch_changes(rx, out_tx, 1 << 20, Duration::from_millis(100)));
        for seq in 1..=3 {
            tx.send(Change::Heartbeat { position: pos(seq), source_timestamp: 0 }).await.unwrap();
        }
        // Nothing is sent before GroupTimeout while the batch is small...
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(out_rx.try_recv().is_err());
        // ...and everything pending is sent once it passes.
        let batch = out_rx.recv().await.unwrap();
        assert_eq!(batch.len(), 3);
        drop(tx);
        assert!(out_rx.recv().await.is_none());
    }
}
