//! The ordered ack feed: what the dest acknowledged becomes the job's checkpoint, once, in source order.
//!
//! The src loop tells the [`AckFeed`] what each batch it sent carries (does it start or end the full copy, how many
//! full-copy rows); acknowledgements (cumulative: every batch up to a sequence number, with the position durable
//! after it) then give each position its stage — positions acknowledged before the batch that ended the full copy
//! belong to the snapshot stage — and count the full-copy rows written (`DumpProgress`). [`save_checkpoints`] saves
//! the newest acknowledged position to the `CheckpointStore`, compare-and-set, at most once a second and on stop.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dtle_metadata::{Checkpoint, CheckpointStore, JobStage, Position};
use dtle_mysql::applier::describe;
use dtle_mysql::Change;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};

use crate::error::DriverError;
use crate::metrics;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// What one batch carries for the checkpoint and the full-copy progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BatchSummary {
    /// The full copy starts in this batch (with this estimate of its rows).
    pub copy_started: Option<u64>,
    pub copy_rows: u64,
    pub copy_done: bool,
}

impl BatchSummary {
    pub(crate) fn of(changes: &[Change]) -> BatchSummary {
        let mut s = BatchSummary::default();
        for c in changes {
            match c {
                Change::SnapshotStart { estimated_rows, .. } => {
                    s.copy_started = Some(*estimated_rows);
                    s.copy_rows = 0;
                    s.copy_done = false;
                }
                Change::SnapshotRows { rows, .. } => s.copy_rows += rows.len() as u64,
                Change::SnapshotDone { .. } => s.copy_done = true,
                _ => {}
            }
        }
        s
    }
}

/// Turns acknowledgements into checkpoints with their stage, in order, and counts the full-copy rows written.
pub(crate) struct AckFeed {
    checkpoints: mpsc::UnboundedSender<(JobStage, Position)>,
    dump_progress: DumpProgressReporter,
    /// Batches sent and not yet acknowledged, in order, with when they were sent.
    sent: VecDeque<(u64, BatchSummary, Instant)>,
    /// Where each batch's time from sent to acknowledged is observed (`dtle_batch_ack_seconds`).
    job_metrics: Arc<metrics::JobMetrics>,
    /// The batch that ends the full copy (`u64::MAX` while it runs): positions acknowledged before it are of the
    /// snapshot stage.
    copy_done_seq: Option<u64>,
    last_acked: u64,
}

impl AckFeed {
    pub(crate) fn new(
        checkpoints: mpsc::UnboundedSender<(JobStage, Position)>,
        dump_progress: DumpProgressReporter,
        job_metrics: Arc<metrics::JobMetrics>,
    ) -> Self {
        AckFeed { checkpoints, dump_progress, sent: VecDeque::new(), job_metrics, copy_done_seq: None, last_acked: 0 }
    }

    /// Batch `seq` was sent with `summary`.
    pub(crate) fn sent(&mut self, seq: u64, summary: BatchSummary) {
        if summary.copy_started.is_some() {
            self.copy_done_seq = Some(u64::MAX);
        }
        if summary.copy_done {
            self.copy_done_seq = Some(seq);
        }
        self.sent.push_back((seq, summary, Instant::now()));
    }

    /// Every batch up to `seq` is durable; `position` (when the sink gives one) is where a restart may continue.
    pub(crate) fn acked(&mut self, seq: u64, position: Option<Position>) {
        if seq <= self.last_acked {
            return;
        }
        self.last_acked = seq;
        while let Some(&(s, summary, sent_at)) = self.sent.front() {
            if s > seq {
                break;
            }
            self.sent.pop_front();
            self.job_metrics.batch_ack.observe(sent_at.elapsed());
            self.dump_progress.observe(summary);
        }
        let Some(position) = position.filter(|p| *p != Position::default()) else {
            return;
        };
        let stage = match self.copy_done_seq {
            Some(done) if seq < done => JobStage::Snapshot,
            _ => JobStage::Incremental,
        };
        let _ = self.checkpoints.send((stage, position));
    }
}

/// Saves acknowledged positions in order, at most once a second, and the last one on stop. A store that is down
/// does not stop replication (the target holds the truth): saves are retried with backoff and a warning says the
/// stored position is stale. A fencing error (another process wrote a newer position) stops the task.
pub(crate) async fn save_checkpoints(
    job: String,
    store: Arc<dyn CheckpointStore>,
    progress: mpsc::UnboundedReceiver<(JobStage, Position)>,
    stop_on_failure: CancellationToken,
) -> Result<(), DriverError> {
    let result = save_checkpoints_until_closed(&job, store, progress).await;
    if let Err(e) = &result {
        error!(job = %job, error = %e, "stopping: positions can no longer be saved");
        stop_on_failure.cancel();
    }
    result
}

async fn save_checkpoints_until_closed(
    job: &str,
    store: Arc<dyn CheckpointStore>,
    mut progress: mpsc::UnboundedReceiver<(JobStage, Position)>,
) -> Result<(), DriverError> {
    let job = job.to_string();
    let job_metrics = metrics::job(&job);
    let mut version = match store.load(&job).await {
        Ok(v) => v.map(|v| v.version).unwrap_or(0),
        Err(e) if e.is_transient() => {
            warn!(job = %job, error = %e, "position store unavailable at start; positions will be saved when it is back");
            u64::MAX
        }
        Err(e) => return Err(e.into()),
    };
    let mut latest: Option<(JobStage, Position)> = None;
    let mut next_save = Instant::now();
    let mut backoff = Duration::from_secs(1);
    let mut closed = false;
    loop {
        if !closed {
            match tokio::time::timeout(Duration::from_millis(500), progress.recv()).await {
                Ok(Some(newest)) => {
                    latest = Some(newest);
                    // Take every position already queued, keeping the newest.
                    while let Ok(newer) = progress.try_recv() {
                        latest = Some(newer);
                    }
                }
                Ok(None) => closed = true,
                Err(_) => {}
            }
        }
        if let Some((stage, position)) = latest.clone().filter(|_| closed || Instant::now() >= next_save) {
            if version == u64::MAX {
                version = match store.load(&job).await {
                    Ok(v) => v.map(|v| v.version).unwrap_or(0),
                    Err(_) => u64::MAX,
                };
            }
            let result = if version == u64::MAX {
                Err(dtle_metadata::StoreError::Unavailable { reason: "position store unreachable".into() })
            } else {
                job_metrics.set_saved_position(stage.as_str(), describe(&position));
                let cp = Checkpoint { job: job.clone(), stage, position, updated_at_unix_ms: now_ms() };
                store.save(&cp, version).await
            };
            match result {
                Ok(v) => {
                    job_metrics.add_checkpoint_saves(true);
                    job_metrics.set_position_stale(false);
                    if backoff > Duration::from_secs(1) {
                        info!(job = %job, "position store reachable again; positions are current");
                    }
                    version = v;
                    latest = None;
                    backoff = Duration::from_secs(1);
                    next_save = Instant::now() + Duration::from_secs(1);
                }
                Err(e) if e.is_transient() => {
                    job_metrics.add_checkpoint_saves(false);
                    job_metrics.set_position_stale(true);
                    warn!(job = %job, error = %e, retry_in_s = backoff.as_secs(), "cannot save the position; the stored position is stale (replication goes on)");
                    if closed && backoff >= Duration::from_secs(8) {
                        warn!(job = %job, "giving up saving the last position; the target's position table still has it");
                        return Ok(());
                    }
                    next_save = Instant::now() + backoff;
                    if closed {
                        tokio::time::sleep(backoff).await;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Err(e.into()),
            }
        }
        if closed && latest.is_none() {
            return Ok(());
        }
    }
}

/// Writes full-copy progress (`DumpProgress`, dtle's `[exec_rows,total_rows]`) to the position store every 10 s and
/// when the copy ends, counting the rows the dest acknowledged. Saves run in the background; a store that is down
/// only delays them.
pub(crate) struct DumpProgressReporter {
    job: String,
    metrics: Arc<metrics::JobMetrics>,
    started_unix_ms: u64,
    store: Arc<dyn CheckpointStore>,
    rows: u64,
    total: u64,
    active: bool,
    last_save: Instant,
}

impl DumpProgressReporter {
    pub(crate) fn new(job: &str, store: Arc<dyn CheckpointStore>) -> Self {
        DumpProgressReporter {
            job: job.to_string(),
            metrics: metrics::job(job),
            started_unix_ms: 0,
            store,
            rows: 0,
            total: 0,
            active: false,
            last_save: Instant::now(),
        }
    }

    fn observe(&mut self, batch: BatchSummary) {
        if let Some(estimated_rows) = batch.copy_started {
            self.active = true;
            self.rows = 0;
            self.total = estimated_rows;
            self.last_save = Instant::now();
            self.started_unix_ms = now_ms();
        }
        self.rows += batch.copy_rows;
        let done = batch.copy_done;
        if self.active {
            let total = if done { self.rows } else { self.total.max(self.rows) };
            self.metrics.set_copy_progress(self.rows, total, self.started_unix_ms);
        }
        if !self.active || !(done || self.last_save.elapsed() >= Duration::from_secs(10)) {
            return;
        }
        if done {
            self.active = false;
            self.total = self.rows;
        }
        self.last_save = Instant::now();
        let (store, job, rows, total) = (self.store.clone(), self.job.clone(), self.rows, self.total.max(self.rows));
        tokio::spawn(
            async move {
                if let Err(e) = store.save_dump_progress(&job, rows, total).await {
                    warn!(job = %job, error = %e, "cannot save the full-copy progress");
                }
            }
            .in_current_span(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtle_metadata::{GtidState, MemoryStore};

    fn pos(seq: u64) -> Position {
        Position {
            gtid: Some(GtidState::Mariadb(format!("0-1-{seq}").parse().unwrap())),
            binlog_file: "b.000001".into(),
            binlog_pos: seq,
        }
    }

    #[tokio::test]
    async fn saves_the_newest_acknowledged_position_and_the_last_one_on_stop() {
        let store: Arc<dyn CheckpointStore> = Arc::new(MemoryStore::new());
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let task = tokio::spawn(save_checkpoints("j".into(), store.clone(), rx, stop.clone()));
        for seq in 1..=100 {
            tx.send((JobStage::Incremental, pos(seq))).unwrap();
        }
        drop(tx);
        task.await.unwrap().unwrap();
        let saved = store.load("j").await.unwrap().unwrap();
        assert_eq!(saved.value.position, pos(100));
        assert_eq!(saved.value.stage, JobStage::Incremental);
        assert!(!stop.is_cancelled());
    }

    #[tokio::test]
    async fn a_newer_writer_fences_this_one_and_stops_the_task() {
        let store: Arc<dyn CheckpointStore> = Arc::new(MemoryStore::new());
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let task = tokio::spawn(save_checkpoints("j".into(), store.clone(), rx, stop.clone()));
        tx.send((JobStage::Incremental, pos(1))).unwrap();
        // Wait for the first save, then let another process write a newer position.
        for _ in 0..100 {
            if store.load("j").await.unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let current = store.load("j").await.unwrap().unwrap();
        let newer =
            Checkpoint { job: "j".into(), stage: JobStage::Incremental, position: pos(50), updated_at_unix_ms: 1 };
        store.save(&newer, current.version).await.unwrap();
        tx.send((JobStage::Incremental, pos(2))).unwrap();
        drop(tx);
        let result = task.await.unwrap();
        assert!(matches!(result, Err(DriverError::Store(dtle_metadata::StoreError::Fenced { .. }))), "{result:?}");
        assert!(stop.is_cancelled());
        assert_eq!(store.load("j").await.unwrap().unwrap().value.position, pos(50), "the newer position is kept");
    }

    #[tokio::test]
    async fn acknowledged_positions_get_the_stage_of_their_batch_and_empty_ones_are_skipped() {
        let store: Arc<dyn CheckpointStore> = Arc::new(MemoryStore::new());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut feed = AckFeed::new(tx, DumpProgressReporter::new("feed", store), metrics::job("feed"));
        feed.sent(1, BatchSummary { copy_started: Some(10), copy_rows: 4, copy_done: false });
        feed.sent(2, BatchSummary { copy_rows: 6, copy_done: true, ..Default::default() });
        feed.sent(3, BatchSummary::default());
        feed.acked(1, Some(pos(1)));
        feed.acked(1, Some(pos(9))); // a repeated ack is ignored
        feed.acked(2, None); // the sink had no position for it
        feed.acked(3, Some(Position::default()));
        feed.sent(4, BatchSummary::default());
        feed.acked(4, Some(pos(4)));
        drop(feed);
        let mut got = Vec::new();
        while let Some(cp) = rx.recv().await {
            got.push(cp);
        }
        assert_eq!(got, vec![(JobStage::Snapshot, pos(1)), (JobStage::Incremental, pos(4))]);
        let m = metrics::job("feed");
        assert_eq!(
            m.copy_rows.load(std::sync::atomic::Ordering::Relaxed),
            10,
            "rows of acknowledged batches are counted"
        );
    }
}
