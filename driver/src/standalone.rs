//! `dtle run` and the plugin's tasks: wires the pipeline ([`crate::pipeline`]) for the roles this process runs —
//! both tasks in one process (the in-process link), or one of them meeting the other over NATS — with the position
//! store (local file or Consul), two-way sync, and restarts after transient failures (always from the target's
//! position). The loops themselves live in the pipeline.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dtle_metadata::{CheckpointStore, ConsulConfig, ConsulStore, LocalFileStore};
use dtle_mysql::applier::Applier;
use dtle_transport::nats::{NatsOptions, NatsSource};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};

use crate::config::{ResolvedJob, TargetConfig};
use crate::engine;
use crate::error::DriverError;
use crate::meeting::NatsMeeting;
use crate::metrics;
use crate::pipeline::dest::run_dest;
use crate::pipeline::link::{self, NatsDestLink, NatsSrcLink};
use crate::pipeline::session::new_session_id;
use crate::pipeline::sink::{KafkaTarget, MysqlSink, Sink};
use crate::pipeline::src::run_src;

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

/// Several jobs in one process (`dtle run a.hcl b.hcl ...`): the set is checked first ([`check_job_set`], each
/// job's plan), so nothing starts when one of them is wrong; then every job runs on its own tasks, as it would
/// alone, its log lines in a `job{name=..}` span. A job that ends (an error, or the end of a copy with
/// `SkipIncrementalCopy`) does not stop the others, as one Nomad task does not stop another; the call returns when
/// every job has ended (or `shutdown`), with an error naming each job that failed.
pub async fn run_jobs(jobs: Vec<(ResolvedJob, RunOptions)>, shutdown: CancellationToken) -> Result<(), DriverError> {
    let mut problems = Vec::new();
    for (job, _) in &jobs {
        if let Err(e) = crate::plan::Plan::build(job) {
            problems.push(format!("job {:?}: {e}", job.name));
        }
    }
    if !problems.is_empty() {
        return Err(DriverError::JobsRefused { total: jobs.len(), refused: problems });
    }
    let total = jobs.len();
    info!(jobs = total, "running {total} jobs in this process");
    let mut running = tokio::task::JoinSet::new();
    for (job, opts) in jobs {
        let name = job.name.clone();
        let span = tracing::info_span!("job", name = %name);
        let shutdown = shutdown.clone();
        running.spawn(async move { (name, run_job(job, opts, shutdown).await) }.instrument(span));
    }
    let mut failed = Vec::new();
    while let Some(ended) = running.join_next().await {
        match ended {
            Ok((name, Ok(()))) => info!(job = %name, remaining = running.len(), "job ended"),
            Ok((name, Err(e))) => {
                error!(job = %name, error = %e, remaining = running.len(), "job failed; the other jobs go on");
                failed.push(format!("job {name:?}: {e}"));
            }
            Err(e) => failed.push(format!("a job's task ended abnormally: {e}")),
        }
    }
    match failed.len() {
        0 => Ok(()),
        n => Err(DriverError::Other(format!("{n} of {total} jobs failed:\n{}", failed.join("\n")))),
    }
}

/// The jobs given to one `dtle run`/`dtle validate` must have distinct names (positions, metrics and the target's
/// position rows are kept per job name; a `TwoWaySync` job also uses `<name>_dtrev`).
pub fn check_job_set(jobs: &[(PathBuf, ResolvedJob)]) -> Result<(), DriverError> {
    let mut seen: std::collections::HashMap<String, &PathBuf> = std::collections::HashMap::new();
    for (path, job) in jobs {
        let mut names = vec![job.name.clone()];
        if job.src.two_way_sync {
            names.push(format!("{}{}", job.name, engine::REVERSE_JOB_SUFFIX));
        }
        for name in names {
            if let Some(first) = seen.insert(name.clone(), path) {
                if first == path {
                    return Err(DriverError::InvalidField {
                        field: "job file".into(),
                        value: path.display().to_string(),
                        reason: "given twice: list each job file once".into(),
                    });
                }
                return Err(DriverError::InvalidField {
                    field: "job name".into(),
                    value: name,
                    reason: format!(
                        "{} and {} both use this name; positions, metrics and the target's position row are kept \
                         per job name, so two jobs of one process need different names: rename one of them",
                        first.display(),
                        path.display()
                    ),
                });
            }
        }
    }
    Ok(())
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

/// Both tasks in one process: the dest loop on its own task, the src loop here, meeting through the in-process
/// link (changes passed as they are).
async fn run_once(
    job: &ResolvedJob,
    opts: &RunOptions,
    store: Arc<dyn CheckpointStore>,
    shutdown: &CancellationToken,
) -> Result<(), DriverError> {
    // A Kafka target is checked when its producer connects.
    let checked = if matches!(job.target, TargetConfig::Kafka(_)) { Roles::SrcOnly } else { Roles::Both };
    validate_roles(job, checked).await?;
    let mut sink = connect_sink(job).await?;
    // In one process the byte budget bounds memory; the batch window only needs to be large enough that the dest can
    // group many small transactions into one target transaction when it falls behind.
    let window = (job.src.repl_chan_buffer_size.max(1) as usize).clamp(1024, 4096);
    let (mut src_link, mut dest_link) = link::in_process(window, IN_FLIGHT_BYTES);
    let dest = {
        let (job, progress_bar) = (job.clone(), opts.progress_bar);
        // The dest ends when the src side is gone and everything it sent was applied.
        tokio::spawn(
            async move { run_dest(&job, sink.as_mut(), &mut dest_link, progress_bar, &CancellationToken::new()).await }
                .in_current_span(),
        )
    };
    let src_result = run_src(job, &mut src_link, store, shutdown).await;
    drop(src_link);
    let dest_result = dest.await.unwrap_or_else(|e| Err(DriverError::Other(format!("dest task failed: {e}"))));
    // The dest's failure is the cause when both failed (the src only saw its side of the link close).
    dest_result?;
    match src_result {
        Ok(()) => {
            info!(job = %job.name, "stopped cleanly; position saved");
            Ok(())
        }
        Err(e) => {
            error!(job = %job.name, error = %e, "source failed");
            Err(e)
        }
    }
}

/// The job's target: the MySQL applier or the Kafka producer.
async fn connect_sink(job: &ResolvedJob) -> Result<Box<dyn Sink>, DriverError> {
    Ok(match &job.target {
        TargetConfig::Kafka(k) => Box::new(KafkaTarget::connect(job, k).await?),
        _ => {
            let (_, target_ep) = engine::endpoints(job)?;
            Box::new(MysqlSink { applier: Applier::connect(&target_ep, engine::applier_options(job)).await? })
        }
    })
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
    let Some(meeting) = crate::meeting::meet_dest(&job.name, nats, opts, shutdown).await? else {
        return Ok(());
    };
    let session = new_session_id();
    let (link, acks) = NatsSource::connect(meeting.nats, &job.name, session).await?;
    info!(job = %job.name, session, "src: asking the dest task where the target stands");
    let mut link = NatsSrcLink::new(link, acks, meeting.dest_moved, metrics::job(&job.name));
    let result = run_src(job, &mut link, store, shutdown).await;
    let (raw_bytes, sent_bytes) = link.totals();
    info!(job = %job.name, raw_bytes, sent_bytes, "src: link totals");
    result
}

/// The dest task alone: answers the src's hello with where the target stands, applies batches in order, acks them.
async fn run_dest_remote(
    job: &ResolvedJob,
    opts: &RunOptions,
    shutdown: &CancellationToken,
) -> Result<(), DriverError> {
    let nats = opts.nats.clone().ok_or_else(|| DriverError::Other("the dest task needs NATS options".into()))?;
    if !matches!(job.target, TargetConfig::Kafka(_)) {
        validate_roles(job, Roles::DestOnly).await?;
    }
    let mut sink = connect_sink(job).await?;
    let link = crate::meeting::bind_dest(&job.name, nats, opts).await?;
    info!(job = %job.name, "dest: waiting for the src task");
    let mut link = NatsDestLink::new(link, &job.name);
    run_dest(job, sink.as_mut(), &mut link, opts.progress_bar, shutdown).await
}
