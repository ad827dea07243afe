//! `dtle run`: both tasks of a job in one process — the src engine, the in-process transport, the MySQL applier,
//! and the local position store. Restarts itself after transient failures, always from the target's position.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dtle_metadata::{
    Checkpoint, CheckpointStore, ConsulConfig, ConsulStore, GtidState, JobStage, LocalFileStore, Position,
};
use dtle_mysql::applier::{describe, Applier};
use dtle_mysql::conn::{server_info, Flavor};
use dtle_mysql::snapshot::{current_position, SnapshotResume, TableResume};
use dtle_mysql::source::{replica_server_id_for, run_source, SourceOptions, StartFrom};
use dtle_mysql::Change;
use dtle_transport::in_process;
use dtle_transport::nats::{NatsOptions, NatsSource};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};

use crate::config::ResolvedJob;
use crate::engine;
use crate::error::DriverError;
use crate::meeting::NatsMeeting;
use crate::metrics;
use crate::watchdog::ApplyWatchdog;
use crate::wire;

/// At most this many changes, or about this many bytes of them, go into one target transaction group. While it is
/// built and sent, a group's SQL text takes about 3x its bytes (measured with tests/bench/bigtx.sh).
pub(crate) const MAX_GROUP_CHANGES: usize = 4096;
pub(crate) const MAX_GROUP_BYTES: usize = 4 << 20;

/// Bytes of changes between the src and the dest of one process (besides the batches counted by the window).
const IN_FLIGHT_BYTES: usize = 16 << 20;

/// Which tasks of the job this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Roles {
    Both,
    SrcOnly,
    DestOnly,
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub data_dir: PathBuf,
    /// Show a progress bar (a terminal); otherwise progress lines in the log.
    pub progress_bar: bool,
    /// `None`: src and dest meet in process. `Some`: over NATS.
    pub nats: Option<NatsOptions>,
    pub roles: Roles,
    /// Positions in Consul instead of the local store.
    pub consul: Option<ConsulConfig>,
    /// How src and dest meet over NATS (see [`crate::meeting`]).
    pub nats_meeting: NatsMeeting,
}

impl RunOptions {
    pub fn new(data_dir: PathBuf) -> Self {
        RunOptions {
            data_dir,
            progress_bar: std::io::stderr().is_terminal(),
            nats: None,
            roles: Roles::Both,
            consul: None,
            nats_meeting: NatsMeeting::Shared,
        }
    }

    /// The position store: Consul when configured, else the local store under the data dir.
    pub fn open_store(&self) -> Result<Arc<dyn CheckpointStore>, DriverError> {
        Ok(match &self.consul {
            Some(cfg) => Arc::new(ConsulStore::connect(cfg.clone())?),
            None => Arc::new(open_store(&self.data_dir)?),
        })
    }
}

/// Where positions live for `dtle run` without Consul.
pub fn open_store(data_dir: &std::path::Path) -> Result<LocalFileStore, DriverError> {
    Ok(LocalFileStore::open(data_dir.join("positions"))?)
}

/// Runs the job until `shutdown`, a definite error, or (with SkipIncrementalCopy) the end of the full copy.
pub async fn run_job(job: ResolvedJob, opts: RunOptions, shutdown: CancellationToken) -> Result<(), DriverError> {
    // What needs no server is refused before anything starts; the start of each task checks it all again
    // (`validate_roles`), with the servers, and logs the warnings.
    crate::plan::Plan::build(&job)?;
    let store = opts.open_store()?;
    if job.src.two_way_sync {
        return run_two_way(job, opts, store, shutdown).await;
    }
    match (&opts.nats, opts.roles) {
        (None, Roles::Both) => {}
        (None, _) => {
            return Err(DriverError::InvalidField {
                field: "--only".into(),
                value: format!("{:?}", opts.roles),
                reason: "running one task needs a transport between processes: add --transport nats --nats <url>"
                    .into(),
            })
        }
        (Some(_), Roles::Both) => {
            let mut src_opts = opts.clone();
            src_opts.roles = Roles::SrcOnly;
            let mut dest_opts = opts.clone();
            dest_opts.roles = Roles::DestOnly;
            let dest =
                tokio::spawn(run_job_role(job.clone(), dest_opts, store.clone(), shutdown.clone()).in_current_span());
            let src = run_job_role(job, src_opts, store, shutdown.clone()).await;
            shutdown.cancel();
            let dest = dest.await.unwrap_or_else(|e| Err(DriverError::Other(format!("dest task failed: {e}"))));
            return src.and(dest);
        }
        (Some(_), _) => {}
    }
    run_job_role(job, opts, store, shutdown).await
}

/// `TwoWaySync`: the job, and its reverse direction (`<job>_dtrev`, target → source) once the job's full copy is
/// done, both in this process. dtle's markers (see `dtle_mysql::applier::marker_upsert`) keep each direction from
/// sending back what the other applied. Conflicting writes on both sides are not resolved: the last writer wins.
async fn run_two_way(
    job: ResolvedJob,
    opts: RunOptions,
    store: Arc<dyn CheckpointStore>,
    shutdown: CancellationToken,
) -> Result<(), DriverError> {
    if opts.nats.is_some() || opts.roles != Roles::Both {
        return Err(DriverError::InvalidField {
            field: "TwoWaySync".into(),
            value: "true".into(),
            reason: "two-way sync runs both directions in one process: run without --transport nats/--only, or run two jobs (A to B and B to A)".into(),
        });
    }
    let reverse = engine::reverse_job(&job)?;
    let (_, target) = engine::endpoints(&job)?;
    let forward_name = job.name.clone();
    let mut forward = tokio::spawn(
        run_job_role(job, opts.clone(), store.clone(), shutdown.clone()).instrument(tracing::info_span!("forward")),
    );
    let reverse_task = {
        let shutdown = shutdown.clone();
        async move {
            // The reverse direction starts after the full copy (and a resumed copy's catch-up), so the copied rows
            // are not read back.
            let mut last_note = Instant::now();
            loop {
                if shutdown.is_cancelled() {
                    return Ok(());
                }
                if dtle_mysql::applier::incremental_and_strict(&target, &forward_name).await {
                    break;
                }
                if last_note.elapsed() > Duration::from_secs(60) {
                    info!(job = %forward_name, "two-way sync: the reverse direction waits for the full copy to finish");
                    last_note = Instant::now();
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            info!(job = %reverse.name, "two-way sync: starting the reverse direction");
            run_job_role(reverse, opts, store, shutdown).await
        }
        .instrument(tracing::info_span!("reverse"))
    };
    let joined = |r: Result<Result<(), DriverError>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| Err(DriverError::Other(format!("forward direction failed: {e}"))))
    };
    // Either direction ending (an error, or the end of the job) ends both.
    tokio::pin!(reverse_task);
    tokio::select! {
        forward_result = &mut forward => {
            shutdown.cancel();
            let reverse_result = reverse_task.await;
            joined(forward_result).and(reverse_result)
        }
        reverse_result = &mut reverse_task => {
            shutdown.cancel();
            let forward_result = joined(forward.await);
            forward_result.and(reverse_result)
        }
    }
}

/// Runs one role (or both in process) with restarts after transient failures (see [`engine::retry_transient`]:
/// backoff, a warning each time, and a bounded time for a read-only target or a host that does not resolve).
async fn run_job_role(
    job: ResolvedJob,
    opts: RunOptions,
    store: Arc<dyn CheckpointStore>,
    shutdown: CancellationToken,
) -> Result<(), DriverError> {
    let (job, opts, shutdown) = (&job, &opts, &shutdown);
    engine::retry_transient(&job.name, shutdown, || {
        let store = store.clone();
        async move {
            match opts.roles {
                Roles::Both => run_once(job, opts, store, shutdown).await,
                Roles::SrcOnly => run_src_remote(job, opts, store, shutdown).await,
                Roles::DestOnly => run_dest_remote(job, opts, shutdown).await,
            }
        }
    })
    .await
}

/// The start checks of a job ([`crate::plan::check`]); warnings are logged.
pub async fn validate_job(job: &ResolvedJob) -> Result<(), DriverError> {
    validate_roles(job, Roles::Both).await
}

/// `dtle validate`: the start checks of a job ([`crate::plan::check`]), and the warnings to print.
pub async fn validate_job_report(job: &ResolvedJob) -> Result<Vec<String>, DriverError> {
    crate::plan::check(job, Roles::Both).await.map(|(_, warnings)| warnings)
}

/// The start checks of the tasks `roles` says this process runs ([`crate::plan::check`]); warnings are logged.
pub(crate) async fn validate_roles(job: &ResolvedJob, roles: Roles) -> Result<(), DriverError> {
    for warning in crate::plan::check(job, roles).await?.1 {
        warn!(job = %job.name, "{warning}");
    }
    Ok(())
}

async fn run_once(
    job: &ResolvedJob,
    opts: &RunOptions,
    store: Arc<dyn CheckpointStore>,
    shutdown: &CancellationToken,
) -> Result<(), DriverError> {
    if let crate::config::TargetConfig::Kafka(k) = &job.target {
        return crate::kafka_dest::run_once(job, k, opts, store, shutdown).await;
    }
    validate_job(job).await?;
    let (source_ep, target_ep) = engine::endpoints(job)?;
    let flavor = {
        let mut conn = source_ep.connect(&[]).await?;
        let info = server_info(&mut conn).await?;
        let _ = conn.disconnect().await;
        info.flavor
    };
    let mut applier = Applier::connect(&target_ep, engine::applier_options(job)).await?;
    let mut start = decide_start(job, flavor, &mut applier, store.as_ref(), &source_ep).await?;
    if start == StartFrom::Snapshot {
        // An interrupted full copy continues from the chunks on the target when it can; else it starts again.
        if let Some(resume) = continue_copy(&job.name, &mut applier).await? {
            start = StartFrom::ResumeSnapshot(resume);
        }
    }

    let mut src = SrcSide::start(job, source_options(job, source_ep, flavor)?, start, store, shutdown);
    // In one process the byte budget bounds memory; the batch window only needs to be large enough that the dest can
    // group many small transactions into one target transaction when it falls behind.
    let window = (job.src.repl_chan_buffer_size.max(1) as usize).clamp(1024, 4096);
    let (batch_sender, mut ack_rx, mut batch_rx) =
        in_process::channel::<Vec<Change>, (JobStage, Position)>(window, IN_FLIGHT_BYTES);
    let progress_tx = src.progress.clone();
    let forward_acks = tokio::spawn(async move {
        while let Some(ack) = ack_rx.recv().await {
            if progress_tx.send(ack.progress).is_err() {
                return;
            }
        }
    });
    let mut groups = src.take_groups();
    let forward_batches = tokio::spawn(async move {
        let mut sender = batch_sender;
        while let Some(group) = groups.recv().await {
            let size = group.iter().map(Change::approx_size).sum();
            if sender.send(group, size).await.is_err() {
                return;
            }
        }
    });

    let mut progress = Progress::new(&job.name, opts.progress_bar);
    let watchdog = ApplyWatchdog::new(job, src.metrics.clone());
    let mut dest_result: Result<(), DriverError> = Ok(());
    let mut stage = JobStage::Incremental;
    // The dest: apply what arrives, grouping whatever is already queued into one target transaction.
    while let Some(first) = batch_rx.recv().await {
        let mut seq = first.seq;
        let mut changes = first.payload;
        let mut bytes: usize = changes.iter().map(Change::approx_size).sum();
        while changes.len() < MAX_GROUP_CHANGES && bytes < MAX_GROUP_BYTES {
            match batch_rx.try_recv() {
                Some(more) => {
                    seq = more.seq;
                    bytes += more.payload.iter().map(Change::approx_size).sum::<usize>();
                    changes.extend(more.payload);
                }
                None => break,
            }
        }
        progress.starting(&changes);
        for c in &changes {
            match c {
                Change::SnapshotStart { .. } => stage = JobStage::Snapshot,
                Change::SnapshotDone { .. } => stage = JobStage::Incremental,
                _ => {}
            }
        }
        let before = applier.stats.clone();
        match watchdog.guard(&changes, applier.apply(&changes)).await {
            Ok(durable) => {
                record_apply_metrics(&src.metrics, &before, &applier.stats, &changes);
                progress.applied(&changes, &applier.stats);
                src.dump_progress.observe(&changes);
                if let Some(position) = durable {
                    let _ = batch_rx.ack(seq, (stage, position));
                } else {
                    let _ = batch_rx.ack(seq, (stage, Position::default()));
                }
            }
            Err(e) => {
                dest_result = Err(e);
                break;
            }
        }
    }
    src.cancel.cancel();
    drop(batch_rx);
    progress.finish();
    let _ = forward_batches.await;
    let _ = forward_acks.await;
    let (source_result, checkpoint_result) = src.finish().await;
    dest_result?;
    checkpoint_result?;
    match source_result {
        Ok(()) => {
            let st = &applier.stats;
            if job.src.parallel_workers > 1 {
                info!(
                    "parallel apply: parallel_groups={} partitions={} retried_partitions={} skipped_applied={} ",
                    st.parallel_groups, st.parallel_partitions, st.retried_partitions, st.skipped_applied
                );
            }
            info!(job = %job.name, transactions = st.transactions, "stopped cleanly; position saved");
            Ok(())
        }
        Err(e) => {
            error!(job = %job.name, error = %e, "source failed");
            Err(e)
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
                info!(job = %job.name, "the last full copy did not finish: continuing it or starting it again");
                StartFrom::Snapshot
            }
            _ => {
                info!(job = %job.name, position = %describe(&rp.position), "resuming from the position recorded on the target");
                StartFrom::Position(rp.position)
            }
        });
    }
    start_from_store_or_config(job, flavor, store, source).await
}

/// Without a position on the target: the position store's (dtle's behaviour: it wins over the job file's Gtid),
/// else the job file's start settings.
pub(crate) async fn start_from_store_or_config(
    job: &ResolvedJob,
    flavor: Flavor,
    store: &dyn CheckpointStore,
    source: &dtle_mysql::Endpoint,
) -> Result<StartFrom, DriverError> {
    if let Some(cp) = load_stored_position(job, store).await? {
        if cp.value.stage == JobStage::Incremental && cp.value.position != Position::default() {
            info!(job = %job.name, position = %describe(&cp.value.position), "the target has no position for this job; resuming from the position store");
            return Ok(StartFrom::Position(cp.value.position));
        }
    }
    let c = &job.src;
    if !c.gtid.trim().is_empty() {
        let gtid = GtidState::parse_for_config(c.gtid.trim()).map_err(|e| DriverError::InvalidField {
            field: "Gtid".into(),
            value: c.gtid.clone(),
            reason: format!("{e}"),
        })?;
        let matches =
            matches!((&gtid, flavor), (GtidState::Mysql(_), Flavor::Mysql) | (GtidState::Mariadb(_), Flavor::Mariadb));
        if !matches {
            return Err(DriverError::InvalidField {
                field: "Gtid".into(),
                value: c.gtid.clone(),
                reason: format!(
                    "the source is {}; it takes {}",
                    if flavor == Flavor::Mariadb { "MariaDB" } else { "MySQL" },
                    if flavor == Flavor::Mariadb {
                        "a GTID list like 0-1-100"
                    } else {
                        "a GTID set like 3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5"
                    }
                ),
            });
        }
        info!(job = %job.name, gtid = %gtid, "starting incremental replication after the configured Gtid");
        return Ok(StartFrom::Position(Position { gtid: Some(gtid), ..Default::default() }));
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

/// Reads the job's stored position. A store that stays unreachable (about 10 s) does not block a job whose target
/// has no position: it starts as configured, with a warning.
async fn load_stored_position(
    job: &ResolvedJob,
    store: &dyn CheckpointStore,
) -> Result<Option<dtle_metadata::Versioned<Checkpoint>>, DriverError> {
    let mut attempt = 0;
    loop {
        match store.load(&job.name).await {
            Ok(cp) => return Ok(cp),
            Err(e) if e.is_transient() && attempt < 3 => {
                attempt += 1;
                warn!(job = %job.name, error = %e, attempt, "cannot read the stored position; retrying");
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            Err(e) if e.is_transient() => {
                warn!(job = %job.name, error = %e, "the position store is unreachable and the target has no position for this job: starting as the job file says");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
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

/// Saves acknowledged positions in order, at most once a second, and the last one on stop. A store that is down
/// does not stop replication (the target holds the truth): saves are retried with backoff and a warning says the
/// stored position is stale. A fencing error (another process wrote a newer position) stops the task.
async fn save_checkpoints(
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
                Ok(Some((stage, position))) => {
                    if position != Position::default() {
                        latest = Some((stage, position));
                    }
                    continue_if_more(&mut progress, &mut latest);
                }
                Ok(None) => closed = true,
                Err(_) => {}
            }
        }
        if latest.is_some() && (closed || Instant::now() >= next_save) {
            let (stage, position) = latest.clone().unwrap_or_default_pair();
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

/// Takes every progress message already queued, keeping the newest position.
fn continue_if_more(
    progress: &mut mpsc::UnboundedReceiver<(JobStage, Position)>,
    latest: &mut Option<(JobStage, Position)>,
) {
    while let Ok((stage, position)) = progress.try_recv() {
        if position != Position::default() {
            *latest = Some((stage, position));
        }
    }
}

trait PairOrDefault {
    fn unwrap_or_default_pair(self) -> (JobStage, Position);
}

impl PairOrDefault for Option<(JobStage, Position)> {
    fn unwrap_or_default_pair(self) -> (JobStage, Position) {
        self.unwrap_or((JobStage::Incremental, Position::default()))
    }
}

/// Counts what one `apply` did, and the lag of the newest source event applied.
fn record_apply_metrics(
    m: &metrics::JobMetrics,
    before: &dtle_mysql::applier::ApplyStats,
    after: &dtle_mysql::applier::ApplyStats,
    changes: &[Change],
) {
    m.add_snapshot_rows(after.snapshot_rows - before.snapshot_rows);
    m.add_transactions(after.transactions - before.transactions);
    m.add_row_changes(after.row_changes - before.row_changes);
    m.add_target_commits(after.target_commits - before.target_commits);
    let newest = changes.iter().rev().find_map(|c| match c {
        Change::Tx(t) => Some(t.source_timestamp),
        Change::Heartbeat { source_timestamp, .. } => Some(*source_timestamp),
        _ => None,
    });
    if let Some(ts) = newest.filter(|ts| *ts > 0) {
        m.set_lag_seconds((now_ms() as f64 / 1000.0 - f64::from(ts)).max(0.0));
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The src task's moving parts: the source reading the database, the batcher grouping its changes like dtle's
/// GroupMaxSize/GroupTimeout, and the checkpoint saver fed with the positions the dest made durable.
pub(crate) struct SrcSide {
    pub(crate) cancel: CancellationToken,
    source_task: tokio::task::JoinHandle<Result<(), dtle_mysql::MysqlError>>,
    batcher_task: tokio::task::JoinHandle<()>,
    checkpoint_task: tokio::task::JoinHandle<Result<(), DriverError>>,
    groups: Option<mpsc::Receiver<Vec<Change>>>,
    /// Durable positions, in order, for the checkpoint saver.
    pub(crate) progress: mpsc::UnboundedSender<(JobStage, Position)>,
    pub(crate) dump_progress: DumpProgressReporter,
    pub(crate) metrics: Arc<metrics::JobMetrics>,
}

impl SrcSide {
    pub(crate) fn start(
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
        let (progress, progress_rx) = mpsc::unbounded_channel();
        let dump_progress = DumpProgressReporter::new(&job.name, store.clone());
        let checkpoint_task =
            tokio::spawn(save_checkpoints(job.name.clone(), store, progress_rx, cancel.clone()).in_current_span());
        SrcSide {
            cancel,
            source_task,
            batcher_task,
            checkpoint_task,
            groups: Some(groups),
            progress,
            dump_progress,
            metrics: metrics::job(&job.name),
        }
    }

    /// The grouped changes, for the transport (taken once).
    pub(crate) fn take_groups(&mut self) -> mpsc::Receiver<Vec<Change>> {
        self.groups.take().unwrap_or_else(|| mpsc::channel(1).1)
    }

    /// Stops the source and waits for every part. Returns the source's result and the checkpoint saver's (which ends
    /// once every clone of the progress sender is gone).
    pub(crate) async fn finish(self) -> (Result<(), DriverError>, Result<(), DriverError>) {
        let SrcSide { cancel, source_task, batcher_task, checkpoint_task, progress, .. } = self;
        cancel.cancel();
        drop(progress);
        let source_result = join_source(source_task).await;
        let _ = batcher_task.await;
        let checkpoint_result =
            checkpoint_task.await.unwrap_or_else(|e| Err(DriverError::Other(format!("checkpoint task failed: {e}"))));
        (source_result, checkpoint_result)
    }
}

/// Writes full-copy progress (`DumpProgress`, dtle's `[exec_rows,total_rows]`) to the position store every 10 s and
/// when the copy ends. Saves run in the background; a store that is down only delays them.
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
    fn new(job: &str, store: Arc<dyn CheckpointStore>) -> Self {
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

    pub(crate) fn observe(&mut self, changes: &[Change]) {
        let mut done = false;
        for c in changes {
            match c {
                Change::SnapshotStart { estimated_rows, .. } => {
                    self.active = true;
                    self.rows = 0;
                    self.total = *estimated_rows;
                    self.last_save = Instant::now();
                    self.started_unix_ms = now_ms();
                }
                Change::SnapshotRows { rows, .. } => self.rows += rows.len() as u64,
                Change::SnapshotDone { .. } => done = true,
                _ => {}
            }
        }
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

/// Progress for people: a bar during the full copy on a terminal, log lines otherwise.
pub(crate) struct Progress {
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
    pub(crate) fn new(job: &str, use_bar: bool) -> Self {
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
    pub(crate) fn starting(&mut self, changes: &[Change]) {
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

    pub(crate) fn applied(&mut self, changes: &[Change], stats: &dtle_mysql::applier::ApplyStats) {
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
                let lag = changes.iter().rev().find_map(|c| match c {
                    Change::Tx(t) => Some(t.source_timestamp),
                    Change::Heartbeat { source_timestamp, .. } => Some(*source_timestamp),
                    _ => None,
                });
                let lag_s = lag.map(|ts| (now_ms() / 1000).saturating_sub(u64::from(ts))).unwrap_or(0);
                info!(job = %self.job, transactions = tx, tx_per_s = ((tx - self.last_tx) as f64 / secs) as u64, lag_s, "incremental: applied");
            }
            self.last_tx = tx;
            self.last_line = Instant::now();
        }
    }

    pub(crate) fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}

/// A session id for one run of the src task over NATS.
fn new_session_id() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    nanos ^ (u64::from(std::process::id()) << 32) | 1
}

/// The src task alone: reads the source and sends batches over NATS; saves what the dest acknowledged.
async fn run_src_remote(
    job: &ResolvedJob,
    opts: &RunOptions,
    store: Arc<dyn CheckpointStore>,
    shutdown: &CancellationToken,
) -> Result<(), DriverError> {
    let nats = opts.nats.clone().ok_or_else(|| DriverError::Other("the src task needs NATS options".into()))?;
    validate_roles(job, Roles::SrcOnly).await?;
    let source_ep = engine::source_endpoint(job);
    let flavor = {
        let mut conn = source_ep.connect(&[]).await?;
        let info = server_info(&mut conn).await?;
        let _ = conn.disconnect().await;
        info.flavor
    };
    let Some(meeting) = crate::meeting::meet_dest(&job.name, nats, opts, shutdown).await? else {
        return Ok(());
    };
    let mut dest_moved = meeting.dest_moved;
    let session = new_session_id();
    let (mut link, mut acks) = NatsSource::connect(meeting.nats, &job.name, session).await?;
    info!(job = %job.name, session, "src: asking the dest task where the target stands");
    let reply = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        r = link.hello(&job.name, Duration::from_secs(60)) => r?,
    };
    let start = match reply.stage {
        1 => {
            info!(job = %job.name, "the last full copy did not finish: starting it again");
            StartFrom::Snapshot
        }
        3 => {
            let resume = wire::resume_from_wire(reply.position, reply.resume_tables)
                .map_err(|e| DriverError::Other(e.to_string()))?;
            info!(job = %job.name, tables = resume.tables.len(), binlog_from = %describe(&resume.binlog_from), "the last full copy did not finish: continuing it from the chunks on the target");
            StartFrom::ResumeSnapshot(resume)
        }
        2 => {
            let position = wire::position_from_wire(reply.position).map_err(|e| DriverError::Other(e.to_string()))?;
            info!(job = %job.name, position = %describe(&position), "resuming from the position recorded on the target");
            StartFrom::Position(position)
        }
        _ => start_from_store_or_config(job, flavor, store.as_ref(), &source_ep).await?,
    };
    let mut src = SrcSide::start(job, source_options(job, source_ep, flavor)?, start, store, shutdown);
    let mut groups = src.take_groups();
    let progress_tx = src.progress.clone();

    // Which batch ended the full copy: positions acknowledged before it belong to the snapshot stage.
    let mut snapshot_done_seq: Option<u64> = None;
    let mut link_result: Result<(), DriverError> = Ok(());
    let handle_ack = move |ack: dtle_proto::v1::Ack, snapshot_done_seq: Option<u64>| {
        if let Ok(position) = wire::position_from_wire(ack.position) {
            let stage = match snapshot_done_seq {
                Some(done) if ack.seq < done => JobStage::Snapshot,
                _ => JobStage::Incremental,
            };
            let _ = progress_tx.send((stage, position));
        }
    };
    loop {
        tokio::select! {
            group = groups.recv() => {
                let Some(group) = group else { break };
                if group.iter().any(|c| matches!(c, Change::SnapshotStart { .. })) {
                    snapshot_done_seq = Some(u64::MAX);
                }
                let is_done = group.iter().any(|c| matches!(c, Change::SnapshotDone { .. }));
                src.dump_progress.observe(&group);
                let bytes = prost::Message::encode_to_vec(&wire::encode_batch(&group));
                let (raw_before, sent_before) = (link.bytes_raw, link.bytes_sent);
                match link.send(&bytes).await {
                    Ok(seq) => {
                        src.metrics.add_link_bytes(link.bytes_raw - raw_before, link.bytes_sent - sent_before);
                        if is_done {
                            snapshot_done_seq = Some(seq);
                        }
                    }
                    Err(e) => {
                        link_result = Err(e.into());
                        break;
                    }
                }
            }
            ack = acks.recv() => {
                if let Some(ack) = ack {
                    handle_ack(ack, snapshot_done_seq);
                }
            }
            moved = async {
                match dest_moved.as_mut() {
                    Some(watch) => watch.moved().await,
                    None => std::future::pending().await,
                }
            } => {
                warn!(job = %job.name, error = %moved, "src: the dest task moved");
                link_result = Err(moved);
                break;
            }
        }
    }
    src.cancel.cancel();
    drop(groups);
    if link_result.is_ok() {
        // Clean stop: give the dest a moment to apply what was sent. What it does not acknowledge is not lost:
        // the next run resumes from the target's position.
        let unacked = link.drain_for(Duration::from_secs(10)).await;
        if unacked > 0 {
            warn!(job = %job.name, unacked, "the dest did not acknowledge every batch before the stop; the next run resumes from the target's position");
        }
    }
    while let Ok(ack) = acks.try_recv() {
        handle_ack(ack, snapshot_done_seq);
    }
    drop(handle_ack);
    let (source_result, checkpoint_result) = src.finish().await;
    info!(job = %job.name, raw_bytes = link.bytes_raw, sent_bytes = link.bytes_sent, "src: link totals");
    link_result?;
    checkpoint_result?;
    source_result
}

/// The dest task alone: answers the src's hello with the target's position, applies batches in order, acks them.
async fn run_dest_remote(
    job: &ResolvedJob,
    opts: &RunOptions,
    shutdown: &CancellationToken,
) -> Result<(), DriverError> {
    use dtle_proto::v1::HelloReply;
    use dtle_transport::nats::DestEvent;
    let nats = opts.nats.clone().ok_or_else(|| DriverError::Other("the dest task needs NATS options".into()))?;
    if let crate::config::TargetConfig::Kafka(k) = &job.target {
        return crate::kafka_dest::run_dest_remote(job, k, nats, opts, shutdown).await;
    }
    validate_roles(job, Roles::DestOnly).await?;
    let (_, target_ep) = engine::endpoints(job)?;
    let mut applier = Applier::connect(&target_ep, engine::applier_options(job)).await?;
    let mut link = crate::meeting::bind_dest(&job.name, nats, opts).await?;
    info!(job = %job.name, "dest: waiting for the src task");
    let mut progress = Progress::new(&job.name, opts.progress_bar);
    let job_metrics = metrics::job(&job.name);
    let watchdog = ApplyWatchdog::new(job, job_metrics.clone());
    let mut pending_hello = None;
    loop {
        let event = match pending_hello.take() {
            Some(ev) => ev,
            None => tokio::select! {
                _ = shutdown.cancelled() => break,
                ev = link.next() => ev?,
            },
        };
        match event {
            DestEvent::Hello { hello, reply } => {
                let answer = if let Some(error) = hello_refusal(&hello, &job.name) {
                    HelloReply { version: dtle_proto::WIRE_FORMAT_VERSION, error, ..Default::default() }
                } else {
                    // A big transaction of the earlier session may be half applied in an open target transaction:
                    // the new session resends it from the committed position, so it must not be continued.
                    if applier.abandon_open_transaction().await? {
                        warn!(job = %job.name, session = hello.session, "dest: a new src session started while a big transaction of the earlier one was being applied; rolled it back, the new session sends it again");
                    }
                    let rp = applier.resume_point().await?;
                    let (stage, position, resume_tables) = match rp {
                        Some(rp) if rp.stage == JobStage::Snapshot => {
                            // An interrupted full copy continues from the chunks on the target when it can (chunks
                            // of an earlier session of this process are committed first); else it starts again.
                            applier.finish_snapshot_writes().await?;
                            match continue_copy(&job.name, &mut applier).await? {
                                Some(resume) => (
                                    3,
                                    Some(wire::position_to_wire(&resume.binlog_from)),
                                    wire::resume_to_wire(&resume),
                                ),
                                None => (1, Some(wire::position_to_wire(&rp.position)), Vec::new()),
                            }
                        }
                        Some(rp) => (2, Some(wire::position_to_wire(&rp.position)), Vec::new()),
                        None => (0, None, Vec::new()),
                    };
                    info!(job = %job.name, session = hello.session, stage, "dest: src connected");
                    HelloReply {
                        version: dtle_proto::WIRE_FORMAT_VERSION,
                        error: String::new(),
                        stage,
                        position,
                        resume_tables,
                        retry: false,
                    }
                };
                link.answer_hello(&hello, reply, answer).await?;
            }
            DestEvent::Batch { session, seq, payload } => {
                // Group what is already waiting into the same target transaction.
                let (changes, last_seq, next) = gather_batches(&mut link, session, seq, &payload)?;
                pending_hello = next;
                progress.starting(&changes);
                let before = applier.stats.clone();
                let durable = watchdog.guard(&changes, applier.apply(&changes)).await?;
                record_apply_metrics(&job_metrics, &before, &applier.stats, &changes);
                progress.applied(&changes, &applier.stats);
                link.ack(session, last_seq, durable.as_ref().map(wire::position_to_wire)).await?;
            }
        }
    }
    progress.finish();
    info!(job = %job.name, transactions = applier.stats.transactions, "dest: stopped");
    Ok(())
}

/// Why a dest of job `job` refuses a src's hello (another wire format or another job), if it does.
pub(crate) fn hello_refusal(hello: &dtle_proto::v1::Hello, job: &str) -> Option<String> {
    if hello.version != dtle_proto::WIRE_FORMAT_VERSION {
        Some(format!(
            "the src speaks wire format {} and this dest {}; run the same dtle version on both sides",
            hello.version,
            dtle_proto::WIRE_FORMAT_VERSION
        ))
    } else if hello.job != job {
        Some(format!("this dest runs job {job:?}, not {:?}", hello.job))
    } else {
        None
    }
}

/// The interrupted full copy of the job, as far as it can be continued from the chunks on the target (`None`: it
/// starts again, every table emptied first).
async fn continue_copy(job: &str, applier: &mut Applier) -> Result<Option<SnapshotResume>, DriverError> {
    let resume = applier.prepare_snapshot_resume().await?;
    if let Some(resume) = &resume {
        let done = resume.tables.values().filter(|t| **t == TableResume::Done).count();
        info!(
            job,
            tables_done = done,
            tables_partly_copied = resume.tables.len() - done,
            "resuming the full copy from the chunks on the target"
        );
    }
    Ok(resume)
}

/// The changes of batch `seq` of `session` and of the batches of that session already waiting on `link` (up to the
/// group limits), the last sequence number taken, and an event of another kind that ended the run (to handle next).
pub(crate) fn gather_batches(
    link: &mut dtle_transport::nats::NatsDest,
    session: u64,
    seq: u64,
    payload: &[u8],
) -> Result<(Vec<Change>, u64, Option<dtle_transport::nats::DestEvent>), DriverError> {
    use dtle_transport::nats::DestEvent;
    let mut changes = decode_payload(payload)?;
    let mut bytes: usize = changes.iter().map(Change::approx_size).sum();
    let mut last_seq = seq;
    while changes.len() < MAX_GROUP_CHANGES && bytes < MAX_GROUP_BYTES {
        match futures_util::FutureExt::now_or_never(link.next()) {
            Some(Ok(DestEvent::Batch { session: s, seq: n, payload })) if s == session => {
                let more = decode_payload(&payload)?;
                bytes += more.iter().map(Change::approx_size).sum::<usize>();
                changes.extend(more);
                last_seq = n;
            }
            Some(Ok(other)) => return Ok((changes, last_seq, Some(other))),
            Some(Err(e)) => return Err(e.into()),
            None => break,
        }
    }
    Ok((changes, last_seq, None))
}

pub(crate) fn decode_payload(payload: &[u8]) -> Result<Vec<Change>, DriverError> {
    let batch = <dtle_proto::v1::ChangeBatch as prost::Message>::decode(payload)
        .map_err(|e| DriverError::Other(format!("unreadable batch: {e}")))?;
    wire::decode_batch(batch).map_err(|e| DriverError::Other(e.to_string()))
}

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

/// The source task's result; a panic in it is reported as an error.
async fn join_source(task: tokio::task::JoinHandle<Result<(), dtle_mysql::MysqlError>>) -> Result<(), DriverError> {
    match task.await {
        Ok(result) => result.map_err(DriverError::from),
        Err(e) => Err(DriverError::Other(format!("source task failed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtle_metadata::MemoryStore;

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
        // A snapshot-stage ack without a durable position must not replace a real one.
        tx.send((JobStage::Snapshot, Position::default())).unwrap();
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
