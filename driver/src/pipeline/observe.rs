//! Progress and metrics, the same for every sink and link: the dest loop calls the [`Observer`] before and after
//! each group it applies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dtle_mysql::applier::ApplyStats;
use dtle_mysql::Change;
use indicatif::{ProgressBar, ProgressStyle};
use tracing::info;

use super::checkpoint::now_ms;
use crate::metrics::JobMetrics;

pub(crate) struct Observer {
    progress: Progress,
    metrics: Arc<JobMetrics>,
}

impl Observer {
    pub(crate) fn new(job: &str, progress_bar: bool, metrics: Arc<JobMetrics>) -> Self {
        Observer { progress: Progress::new(job, progress_bar), metrics }
    }

    /// Before `changes` are applied.
    pub(crate) fn starting(&mut self, changes: &[Change]) {
        self.progress.starting(changes);
    }

    /// After `changes` were applied: the counters (the sink's stats before and after) and the lag of the newest
    /// source event among them.
    pub(crate) fn applied(&mut self, changes: &[Change], before: &ApplyStats, after: &ApplyStats) {
        let m = &self.metrics;
        m.add_snapshot_rows(after.snapshot_rows - before.snapshot_rows);
        m.add_transactions(after.transactions - before.transactions);
        m.add_row_changes(after.row_changes - before.row_changes);
        m.add_target_commits(after.target_commits - before.target_commits);
        if let Some(ts) = newest_source_timestamp(changes).filter(|ts| *ts > 0) {
            m.set_lag_seconds((now_ms() as f64 / 1000.0 - f64::from(ts)).max(0.0));
        }
        self.progress.applied(changes, after);
    }

    pub(crate) fn finish(&mut self) {
        self.progress.finish();
    }
}

fn newest_source_timestamp(changes: &[Change]) -> Option<u32> {
    changes.iter().rev().find_map(|c| match c {
        Change::Tx(t) => Some(t.source_timestamp),
        Change::Heartbeat { source_timestamp, .. } => Some(*source_timestamp),
        _ => None,
    })
}

/// Progress for people: a bar during the full copy on a terminal, log lines otherwise.
struct Progress {
    job: String,
    bar: Option<ProgressBar>,
    use_bar: bool,
    snapshot_rows: u64,
    snapshot_total: u64,
    last_line: Instant,
    last_tx: u64,
    started: Instant,
}

impl Progress {
    fn new(job: &str, use_bar: bool) -> Self {
        Progress {
            job: job.to_string(),
            bar: None,
            use_bar,
            snapshot_rows: 0,
            snapshot_total: 0,
            last_line: Instant::now(),
            last_tx: 0,
            started: Instant::now(),
        }
    }

    /// Before `changes` are applied: a full copy that starts among them gets its progress bar.
    fn starting(&mut self, changes: &[Change]) {
        for c in changes {
            if let Change::SnapshotStart { estimated_rows, tables, .. } = c {
                self.snapshot_started(*estimated_rows, tables.len());
            }
        }
    }

    fn snapshot_started(&mut self, estimated_rows: u64, tables: usize) {
        self.snapshot_total = estimated_rows.max(1);
        self.started = Instant::now();
        info!(job = %self.job, tables, estimated_rows, "full copy: copying");
        if self.use_bar {
            let bar = ProgressBar::new(self.snapshot_total);
            if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} rows ({per_sec}, ETA {eta})")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(format!("{}: full copy of {tables} table(s)", self.job));
            self.bar = Some(bar);
        }
    }

    fn applied(&mut self, changes: &[Change], stats: &ApplyStats) {
        for c in changes {
            match c {
                Change::SnapshotRows { rows, .. } => {
                    self.snapshot_rows += rows.len() as u64;
                    if let Some(bar) = &self.bar {
                        if self.snapshot_rows > bar.length().unwrap_or(0) {
                            bar.set_length(self.snapshot_rows);
                        }
                        bar.set_position(self.snapshot_rows);
                    }
                }
                Change::SnapshotDone { .. } => {
                    if let Some(bar) = self.bar.take() {
                        bar.finish_and_clear();
                    }
                    let secs = self.started.elapsed().as_secs_f64().max(0.001);
                    info!(job = %self.job, rows = self.snapshot_rows, rows_per_s = (self.snapshot_rows as f64 / secs) as u64, "full copy: done");
                }
                _ => {}
            }
        }
        if self.last_line.elapsed() >= Duration::from_secs(5) {
            let secs = self.last_line.elapsed().as_secs_f64();
            if self.bar.is_none() && self.snapshot_rows > 0 && self.snapshot_rows < self.snapshot_total {
                info!(job = %self.job, rows = self.snapshot_rows, of_estimated = self.snapshot_total, "full copy: progress");
            }
            let tx = stats.transactions;
            if tx > self.last_tx {
                let lag_s = newest_source_timestamp(changes)
                    .map(|ts| (now_ms() / 1000).saturating_sub(u64::from(ts)))
                    .unwrap_or(0);
                info!(job = %self.job, transactions = tx, tx_per_s = ((tx - self.last_tx) as f64 / secs) as u64, lag_s, "incremental: applied");
            }
            self.last_tx = tx;
            self.last_line = Instant::now();
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}
