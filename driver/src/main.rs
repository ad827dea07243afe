//! The `dtle` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dtle::config::{parse_job_file, ResolvedJob};
use dtle::error::DriverError;
use dtle::standalone::{open_store, run_job, validate_job, RunOptions};
use dtle_metadata::CheckpointStore;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "dtle",
    version,
    about = "MySQL/MariaDB change data capture and replication"
)]
struct Cli {
    /// Log level: error, warn, info, debug, trace (or a RUST_LOG-style filter).
    #[arg(long, global = true, default_value = "info", env = "DTLE_LOG_LEVEL")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a job's src and dest tasks in this process until Ctrl-C.
    Run {
        /// Job file: Nomad HCL (`job "x" { ... }`) or Nomad JSON (`{"Job": {...}}`).
        job: PathBuf,
        /// Where positions are kept between runs.
        #[arg(long, default_value = "./dtle-data", env = "DTLE_DATA_DIR")]
        data_dir: PathBuf,
        /// Plain progress lines instead of a progress bar.
        #[arg(long)]
        no_progress_bar: bool,
    },
    /// Check a job file and the servers' prerequisites without replicating.
    Validate { job: PathBuf },
    /// Show or clear a job's saved position.
    Positions {
        #[command(subcommand)]
        action: PositionsAction,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum PositionsAction {
    /// Print the position: from the local store, and from the target when a job file is given.
    Show {
        /// Job name, or a job file (then the target's position table is read too).
        job: String,
        #[arg(long, default_value = "./dtle-data", env = "DTLE_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Forget the position, so the next run starts as configured (a full copy when Gtid is empty).
    Reset {
        job: String,
        #[arg(long, default_value = "./dtle-data", env = "DTLE_DATA_DIR")]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_new(&cli.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(e, DriverError::Config(_)) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn load_job(path: &PathBuf) -> Result<ResolvedJob, DriverError> {
    Ok(parse_job_file(path)?.resolve()?)
}

async fn run(command: Command) -> Result<(), DriverError> {
    match command {
        Command::Version => {
            println!("dtle {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Validate { job } => {
            let job = load_job(&job)?;
            validate_job(&job).await?;
            println!("job {:?}: configuration and prerequisites OK", job.name);
            Ok(())
        }
        Command::Run {
            job,
            data_dir,
            no_progress_bar,
        } => {
            let job = load_job(&job)?;
            let shutdown = CancellationToken::new();
            let signal = shutdown.clone();
            tokio::spawn(async move {
                wait_for_stop_signal().await;
                tracing::info!("stopping: finishing the work in flight and saving the position (Ctrl-C again to abort)");
                signal.cancel();
                wait_for_stop_signal().await;
                std::process::exit(130);
            });
            let mut opts = RunOptions::new(data_dir);
            if no_progress_bar {
                opts.progress_bar = false;
            }
            run_job(job, opts, shutdown).await
        }
        Command::Positions { action } => positions(action).await,
    }
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
    let (job_arg, data_dir, reset) = match action {
        PositionsAction::Show { job, data_dir } => (job, data_dir, false),
        PositionsAction::Reset { job, data_dir } => (job, data_dir, true),
    };
    let path = PathBuf::from(&job_arg);
    let resolved = if path.is_file() {
        Some(load_job(&path)?)
    } else {
        None
    };
    let name = resolved.as_ref().map(|j| j.name.clone()).unwrap_or(job_arg);
    let store = open_store(&data_dir)?;
    let mut applier = match &resolved {
        Some(job) => {
            let (_, target) = dtle::engine::endpoints(job)?;
            Some(
                dtle_mysql::applier::Applier::connect(&target, dtle::engine::applier_options(job))
                    .await?,
            )
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
            "local store: stage={} gtid={} binlog={} updated_at_unix_ms={}",
            serde_json::to_string(&cp.value.stage)
                .unwrap_or_default()
                .trim_matches('"'),
            cp.value
                .position
                .gtid
                .as_ref()
                .map(|g| g.to_string())
                .unwrap_or_default(),
            cp.value.position.binlog_file_pos_string(),
            cp.value.updated_at_unix_ms
        ),
        None => println!("local store: no position for job {name:?}"),
    }
    if let Some(applier) = applier.as_mut() {
        match applier.resume_point().await? {
            Some(rp) => println!(
                "target: stage={:?} gtid={} binlog={}",
                rp.stage,
                rp.position
                    .gtid
                    .as_ref()
                    .map(|g| g.to_string())
                    .unwrap_or_default(),
                rp.position.binlog_file_pos_string()
            ),
            None => println!("target: no position for job {name:?}"),
        }
    }
    Ok(())
}
