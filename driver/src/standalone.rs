//! `dtle run`: both tasks of a job in one process — the src engine, the in-process transport, the MySQL applier,
//! and the local position store. Restarts itself after transient failures, always from the target's position.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dtle_metadata::{Checkpoint, CheckpointStore, GtidState, JobStage, LocalFileStore, Position};
use dtle_mysql::applier::{describe, Applier};
use dtle_mysql::conn::{server_info, Flavor};
use dtle_mysql::prereq::{check_source, check_target, SourceRequirements};
use dtle_mysql::snapshot::current_position;
use dtle_mysql::source::{replica_server_id_for, run_source, SourceOptions, StartFrom};
use dtle_mysql::Change;
use dtle_transport::in_process;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::ResolvedJob;
use crate::engine;
use crate::error::DriverError;

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub data_dir: PathBuf,
    /// Show a progress bar (a terminal); otherwise progress lines in the log.
    pub progress_bar: bool,
}

impl RunOptions {
    pub fn new(data_dir: PathBuf) -> Self {
        RunOptions {
            data_dir,
            progress_bar: std::io::stderr().is_terminal(),
        }
    }
}

/// Where positions live for `dtle run`.
pub fn open_store(data_dir: &std::path::Path) -> Result<LocalFileStore, DriverError> {
    Ok(LocalFileStore::open(data_dir.join("positions"))?)
}

/// Runs the job until `shutdown`, a definite error, or (with SkipIncrementalCopy) the end of the full copy.
pub async fn run_job(
    job: ResolvedJob,
    opts: RunOptions,
    shutdown: CancellationToken,
) -> Result<(), DriverError> {
    for warning in engine::check_supported(&job)? {
        warn!(job = %job.name, "{warning}");
    }
    let store: Arc<dyn CheckpointStore> = Arc::new(open_store(&opts.data_dir)?);
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        match run_once(&job, &opts, store.clone(), &shutdown).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && !shutdown.is_cancelled() => {
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_secs(1);
                }
                warn!(job = %job.name, error = %e, retry_in_s = backoff.as_secs(), "transient failure; restarting from the target's position");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs the prerequisite checks of a job (also `dtle validate`).
pub async fn validate_job(job: &ResolvedJob) -> Result<(), DriverError> {
    engine::check_supported(job)?;
    let (source, target) = engine::endpoints(job)?;
    let req = SourceRequirements {
        needs_gtid: !job.src.gtid.is_empty() || job.src.auto_gtid,
        skip_privilege_check: job.src.skip_privilege_check,
        snapshot_only: job.src.skip_incremental_copy,
    };
    let mut failures = Vec::new();
    match check_source(&source, req).await {
        Ok((_, f)) => failures.extend(f),
        Err(e) => failures.push(e),
    }
    match check_target(&target, job.src.skip_privilege_check).await {
        Ok((_, f)) => failures.extend(f),
        Err(e) => failures.push(e),
    }
    if failures.is_empty() {
        Ok(())
    } else if failures.len() == 1 && failures[0].is_transient() {
        Err(failures.remove(0).into())
    } else {
        Err(DriverError::Prerequisites(failures))
    }
}

async fn run_once(
    job: &ResolvedJob,
    opts: &RunOptions,
    store: Arc<dyn CheckpointStore>,
    shutdown: &CancellationToken,
) -> Result<(), DriverError> {
    validate_job(job).await?;
    let (source_ep, target_ep) = engine::endpoints(job)?;
    let flavor = {
        let mut conn = source_ep.connect(&[]).await?;
        let info = server_info(&mut conn).await?;
        let _ = conn.disconnect().await;
        info.flavor
    };
    let mut applier = Applier::connect(&target_ep, engine::applier_options(job)).await?;
    let start = decide_start(job, flavor, &mut applier, store.as_ref(), &source_ep).await?;
    if start == StartFrom::Snapshot {
        let redo = applier
            .resume_point()
            .await?
            .is_some_and(|rp| rp.stage == JobStage::Snapshot);
        applier.set_redo_snapshot(redo);
    }

    let source_opts = SourceOptions {
        endpoint: source_ep,
        flavor,
        filter: engine::table_filter(&job.src)?,
        chunk_size: job.src.chunk_size.max(1) as usize,
        drop_table_if_exists: job.src.drop_table_if_exists,
        skip_create_db_table: job.src.skip_create_db_table,
        skip_incremental: job.src.skip_incremental_copy,
        replica_server_id: replica_server_id_for(&job.name),
        heartbeat: Duration::from_secs(1),
    };

    let src_cancel = shutdown.child_token();
    // Few changes in flight: a snapshot chunk is ChunkSize rows, so memory stays bounded by chunks, not tables.
    let (change_tx, change_rx) = mpsc::channel::<Change>(16);
    let window = (job.src.repl_chan_buffer_size.max(1) as usize).min(4096);
    let (batch_tx, mut batch_rx) = in_process::channel::<Vec<Change>, (JobStage, Position)>(window);
    let (batch_sender, ack_rx) = batch_tx.split();

    let source_task = tokio::spawn(run_source(
        source_opts,
        start,
        change_tx,
        src_cancel.clone(),
    ));
    let (max_bytes, timeout) = engine::group_limits(&job.src);
    let batcher_task = tokio::spawn(batch_changes(change_rx, batch_sender, max_bytes, timeout));
    let checkpoint_task = tokio::spawn(save_checkpoints(job.name.clone(), store, ack_rx));

    let mut progress = Progress::new(&job.name, opts.progress_bar);
    let mut dest_result: Result<(), DriverError> = Ok(());
    let mut stage = JobStage::Incremental;
    // The dest: apply what arrives, grouping whatever is already queued into one target transaction.
    while let Some(first) = batch_rx.recv().await {
        let mut seq = first.seq;
        let mut changes = first.payload;
        while changes.len() < 4096 {
            match batch_rx.try_recv() {
                Some(more) => {
                    seq = more.seq;
                    changes.extend(more.payload);
                }
                None => break,
            }
        }
        for c in &changes {
            match c {
                Change::SnapshotStart {
                    estimated_rows,
                    tables,
                    ..
                } => {
                    stage = JobStage::Snapshot;
                    progress.snapshot_started(*estimated_rows, tables.len());
                }
                Change::SnapshotDone { .. } => stage = JobStage::Incremental,
                _ => {}
            }
        }
        match applier.apply(&changes).await {
            Ok(durable) => {
                progress.applied(&changes, &applier.stats);
                if let Some(position) = durable {
                    let _ = batch_rx.ack(seq, (stage, position));
                } else {
                    let _ = batch_rx.ack(seq, (stage, Position::default()));
                }
            }
            Err(e) => {
                dest_result = Err(e.into());
                break;
            }
        }
    }
    src_cancel.cancel();
    drop(batch_rx);
    progress.finish();
    let source_result = source_task.await.unwrap_or_else(|e| {
        Err(dtle_mysql::MysqlError::Unsupported {
            what: format!("source task panicked: {e}"),
            fix: "report this bug".into(),
        })
    });
    let _ = batcher_task.await;
    let checkpoint_result = checkpoint_task
        .await
        .unwrap_or_else(|e| Err(DriverError::Other(format!("checkpoint task failed: {e}"))));
    dest_result?;
    checkpoint_result?;
    match source_result {
        Ok(()) => {
            info!(job = %job.name, transactions = applier.stats.transactions, "stopped cleanly; position saved");
            Ok(())
        }
        Err(e) => {
            error!(job = %job.name, error = %e, "source failed");
            Err(e.into())
        }
    }
}

/// The target's position wins; else the local store's; else the job file's start settings.
async fn decide_start(
    job: &ResolvedJob,
    flavor: Flavor,
    applier: &mut Applier,
    store: &dyn CheckpointStore,
    source: &dtle_mysql::Endpoint,
) -> Result<StartFrom, DriverError> {
    if let Some(rp) = applier.resume_point().await? {
        return Ok(match rp.stage {
            JobStage::Snapshot => {
                info!(job = %job.name, "the last full copy did not finish: starting it again");
                StartFrom::Snapshot
            }
            _ => {
                info!(job = %job.name, position = %describe(&rp.position), "resuming from the position recorded on the target");
                StartFrom::Position(rp.position)
            }
        });
    }
    if let Some(cp) = store.load(&job.name).await? {
        if cp.value.stage == JobStage::Incremental && cp.value.position != Position::default() {
            info!(job = %job.name, position = %describe(&cp.value.position), "the target has no position for this job; resuming from the local position store");
            return Ok(StartFrom::Position(cp.value.position));
        }
    }
    let c = &job.src;
    if !c.gtid.trim().is_empty() {
        let gtid =
            GtidState::parse_for_config(c.gtid.trim()).map_err(|e| DriverError::InvalidField {
                field: "Gtid".into(),
                value: c.gtid.clone(),
                reason: format!("{e}"),
            })?;
        let matches = matches!(
            (&gtid, flavor),
            (GtidState::Mysql(_), Flavor::Mysql) | (GtidState::Mariadb(_), Flavor::Mariadb)
        );
        if !matches {
            return Err(DriverError::InvalidField {
                field: "Gtid".into(),
                value: c.gtid.clone(),
                reason: format!(
                    "the source is {}; it takes {}",
                    if flavor == Flavor::Mariadb {
                        "MariaDB"
                    } else {
                        "MySQL"
                    },
                    if flavor == Flavor::Mariadb {
                        "a GTID list like 0-1-100"
                    } else {
                        "a GTID set like 3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5"
                    }
                ),
            });
        }
        info!(job = %job.name, gtid = %gtid, "starting incremental replication after the configured Gtid");
        return Ok(StartFrom::Position(Position {
            gtid: Some(gtid),
            ..Default::default()
        }));
    }
    if !c.binlog_file.is_empty() {
        info!(job = %job.name, file = %c.binlog_file, pos = c.binlog_pos, "starting incremental replication at the configured binlog file/position");
        return Ok(StartFrom::Position(Position {
            gtid: None,
            binlog_file: c.binlog_file.clone(),
            binlog_pos: c.binlog_pos.max(4) as u64,
        }));
    }
    if c.auto_gtid {
        let mut conn = source.connect(&[]).await?;
        let position = current_position(&mut conn, flavor).await?;
        let _ = conn.disconnect().await;
        info!(job = %job.name, position = %describe(&position), "AutoGtid: starting incremental replication at the source's current position");
        return Ok(StartFrom::Position(position));
    }
    Ok(StartFrom::Snapshot)
}

/// Groups changes into batches of about `max_bytes` or after `timeout`, like dtle's GroupMaxSize/GroupTimeout.
/// Snapshot and DDL boundaries are sent at once.
async fn batch_changes(
    mut rx: mpsc::Receiver<Change>,
    mut tx: in_process::BatchOnlySender<Vec<Change>>,
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
                let flush_now = !matches!(change, Change::Tx(ref t) if !t.has_ddl())
                    && !matches!(change, Change::Heartbeat { .. });
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

/// Saves acknowledged positions in order, at most once a second, and always the last one.
async fn save_checkpoints(
    job: String,
    store: Arc<dyn CheckpointStore>,
    mut acks: mpsc::UnboundedReceiver<dtle_transport::Ack<(JobStage, Position)>>,
) -> Result<(), DriverError> {
    let mut version = store.load(&job).await?.map(|v| v.version).unwrap_or(0);
    let mut latest: Option<(JobStage, Position)> = None;
    let mut last_save = Instant::now() - Duration::from_secs(10);
    let save = |stage: JobStage, position: Position, version: u64| {
        let store = store.clone();
        let job = job.clone();
        async move {
            let cp = Checkpoint {
                job,
                stage,
                position,
                updated_at_unix_ms: now_ms(),
            };
            store.save(&cp, version).await
        }
    };
    loop {
        let ack = tokio::time::timeout(Duration::from_secs(1), acks.recv()).await;
        match ack {
            Ok(Some(ack)) => {
                if ack.progress.1 != Position::default() {
                    latest = Some(ack.progress);
                }
            }
            Ok(None) => {
                if let Some((stage, position)) = latest.take() {
                    save(stage, position, version).await?;
                }
                return Ok(());
            }
            Err(_) => {}
        }
        if last_save.elapsed() >= Duration::from_secs(1) {
            if let Some((stage, position)) = latest.take() {
                version = save(stage, position, version).await?;
                last_save = Instant::now();
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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

    fn snapshot_started(&mut self, estimated_rows: u64, tables: usize) {
        self.snapshot_total = estimated_rows.max(1);
        self.started = Instant::now();
        info!(job = %self.job, tables, estimated_rows, "full copy: copying");
        if self.use_bar {
            let bar = ProgressBar::new(self.snapshot_total);
            if let Ok(style) = ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} rows ({per_sec}, ETA {eta})",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(format!("{}: full copy of {tables} table(s)", self.job));
            self.bar = Some(bar);
        }
    }

    fn applied(&mut self, changes: &[Change], stats: &dtle_mysql::applier::ApplyStats) {
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
            if self.bar.is_none()
                && self.snapshot_rows > 0
                && self.snapshot_rows < self.snapshot_total
            {
                info!(job = %self.job, rows = self.snapshot_rows, of_estimated = self.snapshot_total, "full copy: progress");
            }
            let tx = stats.transactions;
            if tx > self.last_tx {
                let lag = changes.iter().rev().find_map(|c| match c {
                    Change::Tx(t) => Some(t.source_timestamp),
                    Change::Heartbeat {
                        source_timestamp, ..
                    } => Some(*source_timestamp),
                    _ => None,
                });
                let lag_s = lag
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
