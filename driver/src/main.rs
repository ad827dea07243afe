//! The `dtle` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dtle::config::{parse_job_file, ResolvedJob};
use dtle::error::DriverError;
use dtle::standalone::{check_job_set, open_store, run_job, run_jobs, validate_job_report, Roles, RunOptions};
use dtle_metadata::{CheckpointStore, ConsulConfig, ConsulStore};
use dtle_transport::compression::CompressionSpec;
use dtle_transport::nats::NatsOptions;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// The process's allocator. Rows are many small heap values (a `Vec` per row, one per string column): with glibc's
/// malloc, allocating and freeing them took about a quarter of dtle's CPU in a full copy (profiled; figures in
/// tests/bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "dtle", version, about = "MySQL/MariaDB change data capture and replication")]
struct Cli {
    /// Log level: error, warn, info, debug, trace (or a RUST_LOG-style filter).
    #[arg(long, global = true, default_value = "info", env = "DTLE_LOG_LEVEL")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command {
    /// Run a job's src and dest tasks in this process until Ctrl-C. Several job files run side by side in this
    /// process (each with its own position; one job's failure does not stop the others; names must differ).
    Run {
        /// Job file(s): Nomad HCL (`job "x" { ... }`) or Nomad JSON (`{"Job": {...}}`).
        #[arg(required = true, num_args = 1..)]
        jobs: Vec<PathBuf>,
        /// Where positions are kept between runs.
        #[arg(long, default_value = "./dtle-data", env = "DTLE_DATA_DIR")]
        data_dir: PathBuf,
        /// Plain progress lines instead of a progress bar.
        #[arg(long)]
        no_progress_bar: bool,
        #[command(flatten)]
        link: LinkArgs,
        #[command(flatten)]
        consul: ConsulArgs,
        /// Serve Prometheus metrics (`dtle_*`) at http://<addr>/metrics, e.g. 127.0.0.1:8190.
        #[arg(long, env = "DTLE_METRICS_ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
    },
    /// Check job files and the servers' prerequisites without replicating (several files: as `dtle run` of them).
    Validate {
        #[arg(required = true, num_args = 1..)]
        jobs: Vec<PathBuf>,
    },
    /// Check that the target equals the source, chunk by chunk, while the job runs (consistent reads, no lock).
    /// MySQL/MariaDB targets only: a Kafka target is refused. Exit status: 0 everything equal, 1 differences
    /// found, 2 a problem of the job file or the options, 3 not everything could be verified.
    Verify(dtle::verify::VerifyArgs),
    /// Show or clear a job's saved position.
    Positions {
        #[command(subcommand)]
        action: PositionsAction,
    },
    /// Print the version.
    Version,
}

/// How src and dest meet.
#[derive(clap::Args)]
struct LinkArgs {
    /// `in-process` (one process) or `nats` (src and dest meet on a NATS server).
    #[arg(long, default_value = "in-process", value_parser = ["in-process", "nats"])]
    transport: String,
    /// NATS server URL(s), comma separated.
    #[arg(long, env = "DTLE_NATS", default_value = "nats://127.0.0.1:4222", value_delimiter = ',')]
    nats: Vec<String>,
    /// Run only this task of the job (with --transport nats): `src` or `dest`.
    #[arg(long, value_parser = ["src", "dest"])]
    only: Option<String>,
    /// Batch compression on the link: none, lz4, zstd, zstd:<level>, gzip (default: the job's `Compression`).
    #[arg(long)]
    compression: Option<String>,
    /// Link rate limit in bytes per second (after compression).
    #[arg(long)]
    rate_limit: Option<u64>,
    /// Seconds without an acknowledgement before the src starts a new session.
    #[arg(long, default_value_t = 30)]
    ack_timeout: u64,
    #[arg(long, env = "DTLE_NATS_TOKEN", hide_env_values = true)]
    nats_token: Option<String>,
    #[arg(long, env = "DTLE_NATS_USER")]
    nats_user: Option<String>,
    #[arg(long, env = "DTLE_NATS_PASSWORD", hide_env_values = true)]
    nats_password: Option<String>,
    #[arg(long)]
    nats_creds: Option<PathBuf>,
    #[arg(long)]
    nats_ca: Option<PathBuf>,
    #[arg(long)]
    nats_cert: Option<PathBuf>,
    #[arg(long)]
    nats_key: Option<PathBuf>,
}

/// Positions in Consul (`dtle/<job>/Gtid`, ...) instead of the local store.
#[derive(clap::Args)]
struct ConsulArgs {
    /// Consul HTTP address, e.g. 127.0.0.1:8500.
    #[arg(long, env = "DTLE_CONSUL")]
    consul: Option<String>,
    #[arg(long, env = "CONSUL_HTTP_TOKEN", hide_env_values = true)]
    consul_token: Option<String>,
    #[arg(long)]
    consul_ca: Option<PathBuf>,
    #[arg(long)]
    consul_cert: Option<PathBuf>,
    #[arg(long)]
    consul_key: Option<PathBuf>,
}

impl ConsulArgs {
    fn config(&self) -> Option<ConsulConfig> {
        self.consul.as_ref().map(|address| ConsulConfig {
            address: address.clone(),
            token: self.consul_token.clone(),
            ca_file: self.consul_ca.clone(),
            cert_file: self.consul_cert.clone(),
            key_file: self.consul_key.clone(),
            ..Default::default()
        })
    }
}

#[derive(Subcommand)]
enum PositionsAction {
    /// Print the position: from the local store, and from the target when a job file is given.
    Show {
        /// Job name, or a job file (then the target's position table is read too).
        job: String,
        #[arg(long, default_value = "./dtle-data", env = "DTLE_DATA_DIR")]
        data_dir: PathBuf,
        #[command(flatten)]
        consul: ConsulArgs,
    },
    /// Forget the position, so the next run starts as configured (a full copy when Gtid is empty).
    Reset {
        job: String,
        #[arg(long, default_value = "./dtle-data", env = "DTLE_DATA_DIR")]
        data_dir: PathBuf,
        #[command(flatten)]
        consul: ConsulArgs,
    },
}

fn main() -> ExitCode {
    if dtle::plugin::launched_as_plugin() {
        return dtle::plugin::serve();
    }
    let cli = Cli::parse();
    let filter = EnvFilter::try_new(&cli.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    bound_memory_retention();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = match cli.command {
        Command::Verify(args) => return runtime.block_on(dtle::verify::run_cli(args)),
        command => command,
    };
    match runtime.block_on(run(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(
                e,
                DriverError::Config(_)
                    | DriverError::InvalidField { .. }
                    | DriverError::Problems { .. }
                    | DriverError::JobsRefused { .. }
            ) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn load_job(path: &std::path::Path) -> Result<ResolvedJob, DriverError> {
    Ok(parse_job_file(path)?.resolve()?)
}

/// The job files of one `dtle run`/`dtle validate`: every file read and resolved (one file: its own error; several:
/// every file that cannot be read, named, before anything starts), and their names distinct.
fn load_jobs(paths: &[PathBuf]) -> Result<Vec<(PathBuf, ResolvedJob)>, DriverError> {
    if let [path] = paths {
        return Ok(vec![(path.clone(), load_job(path)?)]);
    }
    let mut jobs = Vec::with_capacity(paths.len());
    let mut refused = Vec::new();
    for path in paths {
        match load_job(path) {
            Ok(job) => jobs.push((path.clone(), job)),
            Err(e) => {
                let text = e.to_string();
                let shown = path.display().to_string();
                refused.push(if text.contains(&shown) { text } else { format!("{shown}: {text}") });
            }
        }
    }
    if !refused.is_empty() {
        return Err(DriverError::JobsRefused { total: paths.len(), refused });
    }
    check_job_set(&jobs)?;
    Ok(jobs)
}

async fn run(command: Command) -> Result<(), DriverError> {
    match command {
        Command::Version => {
            println!("dtle {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Validate { jobs } => {
            let jobs = load_jobs(&jobs)?;
            let mut refused = Vec::new();
            for (_, job) in &jobs {
                match validate_job_report(job).await {
                    Ok(warnings) => {
                        for warning in &warnings {
                            println!("warning: {warning}");
                        }
                        match warnings.len() {
                            0 => println!("job {:?}: configuration and prerequisites OK", job.name),
                            n => println!(
                                "job {:?}: configuration and prerequisites OK, with {n} warning(s) above",
                                job.name
                            ),
                        }
                    }
                    Err(e) if jobs.len() == 1 => return Err(e),
                    Err(e) => {
                        println!("job {:?}: REFUSED", job.name);
                        refused.push(format!("job {:?}: {e}", job.name));
                    }
                }
            }
            match refused.is_empty() {
                true => Ok(()),
                false => Err(DriverError::JobsRefused { total: jobs.len(), refused }),
            }
        }
        Command::Run { jobs, data_dir, no_progress_bar, link, consul, metrics_addr } => {
            let jobs = load_jobs(&jobs)?;
            let several = jobs.len() > 1;
            let mut runs = Vec::with_capacity(jobs.len());
            for (_, job) in jobs {
                // One progress bar cannot show several jobs: progress lines then.
                let opts = run_options(&job, data_dir.clone(), no_progress_bar || several, &link, &consul)?;
                runs.push((job, opts));
            }
            let shutdown = CancellationToken::new();
            let signal = shutdown.clone();
            tokio::spawn(async move {
                wait_for_stop_signal().await;
                tracing::info!(
                    "stopping: finishing the work in flight and saving the position (Ctrl-C again to abort)"
                );
                signal.cancel();
                wait_for_stop_signal().await;
                std::process::exit(130);
            });
            if let Some(addr) = metrics_addr {
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    if let Err(e) = dtle::metrics::serve(addr, stop).await {
                        tracing::error!(error = %e, "metrics endpoint failed");
                    }
                });
            }
            match (several, runs.pop()) {
                (false, Some((job, opts))) => run_job(job, opts, shutdown).await,
                (_, last) => {
                    runs.extend(last);
                    run_jobs(runs, shutdown).await
                }
            }
        }
        Command::Positions { action } => positions(action).await,
        Command::Verify(_) => Err(DriverError::Other("dtle verify is run by main".into())),
    }
}

/// What `dtle run`'s options mean for one job (the link's compression and window come from the job).
fn run_options(
    job: &ResolvedJob,
    data_dir: PathBuf,
    no_progress_bar: bool,
    link: &LinkArgs,
    consul: &ConsulArgs,
) -> Result<RunOptions, DriverError> {
    let mut opts = RunOptions::new(data_dir);
    if no_progress_bar {
        opts.progress_bar = false;
    }
    opts.consul = consul.config();
    opts.roles = match link.only.as_deref() {
        Some("src") => Roles::SrcOnly,
        Some("dest") => Roles::DestOnly,
        _ => Roles::Both,
    };
    if link.transport == "nats" {
        let compression = match &link.compression {
            Some(text) => CompressionSpec::parse(text).map_err(|reason| DriverError::InvalidField {
                field: "--compression".into(),
                value: text.clone(),
                reason,
            })?,
            None => job.src.compression_spec().map_err(|reason| DriverError::InvalidField {
                field: "Compression".into(),
                value: job.src.compression.clone(),
                reason,
            })?,
        };
        opts.nats = Some(NatsOptions {
            urls: link.nats.clone(),
            token: link.nats_token.clone(),
            user: link.nats_user.clone(),
            password: link.nats_password.clone(),
            credentials_file: link.nats_creds.clone(),
            ca_file: link.nats_ca.clone(),
            cert_file: link.nats_cert.clone(),
            key_file: link.nats_key.clone(),
            compression,
            window: (job.src.repl_chan_buffer_size.max(1) as usize).min(4096),
            ack_timeout: std::time::Duration::from_secs(link.ack_timeout.max(1)),
            rate_limit_bytes_per_s: link.rate_limit,
            // Read from Consul by run_job when positions are there (see standalone::RunOptions).
            session_key: None,
        });
    }
    Ok(opts)
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn positions(action: PositionsAction) -> Result<(), DriverError> {
    let (job_arg, data_dir, consul, reset) = match action {
        PositionsAction::Show { job, data_dir, consul } => (job, data_dir, consul, false),
        PositionsAction::Reset { job, data_dir, consul } => (job, data_dir, consul, true),
    };
    let path = PathBuf::from(&job_arg);
    let resolved = if path.is_file() { Some(load_job(&path)?) } else { None };
    let name = resolved.as_ref().map(|j| j.name.clone()).unwrap_or(job_arg);
    let (store, store_name): (Box<dyn CheckpointStore>, String) = match consul.config() {
        Some(cfg) => {
            let address = cfg.address.clone();
            (Box::new(ConsulStore::connect(cfg)?), format!("consul {address}"))
        }
        None => (Box::new(open_store(&data_dir)?), "local store".to_string()),
    };
    let mut applier = match &resolved {
        // A Kafka target keeps no position of its own: only the store's counts.
        Some(job) if matches!(job.target, dtle::config::TargetConfig::Kafka(_)) => None,
        Some(job) => {
            let (_, target) = dtle::engine::endpoints(job)?;
            Some(dtle_mysql::applier::Applier::connect(&target, dtle::engine::applier_options(job)).await?)
        }
        None => None,
    };
    if reset {
        store.delete(&name).await?;
        if let Some(applier) = applier.as_mut() {
            applier.reset_position().await?;
        }
        println!(
            "job {name:?}: position cleared{}",
            if applier.is_some() {
                " (local store and target)"
            } else {
                " (local store; give the job file to clear the target's too)"
            }
        );
        return Ok(());
    }
    match store.load(&name).await? {
        Some(cp) => println!(
            "{store_name}: stage={} gtid={} binlog={} updated_at_unix_ms={}",
            serde_json::to_string(&cp.value.stage).unwrap_or_default().trim_matches('"'),
            cp.value.position.gtid.as_ref().map(|g| g.to_string()).unwrap_or_default(),
            cp.value.position.binlog_file_pos_string(),
            cp.value.updated_at_unix_ms
        ),
        None => println!("{store_name}: no position for job {name:?}"),
    }
    if let Some(applier) = applier.as_mut() {
        match applier.resume_point().await? {
            Some(rp) => println!(
                "target: stage={:?} gtid={} binlog={}",
                rp.stage,
                rp.position.gtid.as_ref().map(|g| g.to_string()).unwrap_or_default(),
                rp.position.binlog_file_pos_string()
            ),
            None => println!("target: no position for job {name:?}"),
        }
    }
    Ok(())
}

/// Keeps memory that passed through from staying resident (measured with a 1 GiB source transaction:
/// tests/bench/bigtx.sh). Before any thread starts:
/// - mysql_async pools up to 128 packet buffers and keeps each at up to 4 MiB; the buffers of big statements then
///   stay allocated (tens of MiB). 256 KiB per pooled buffer is plenty for binlog events and replies.
/// - glibc raises its mmap threshold after big frees, so later multi-MiB statement buffers come from the heap and
///   their memory is not returned. A fixed threshold keeps them mmapped (returned on free).
fn bound_memory_retention() {
    if std::env::var_os("MYSQL_ASYNC_BUFFER_SIZE_CAP").is_none() {
        std::env::set_var("MYSQL_ASYNC_BUFFER_SIZE_CAP", (256 << 10).to_string());
    }
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only changes allocator tuning; called before other threads exist.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
        }
    }
}
