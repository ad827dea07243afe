//! The plugin's own NATS server (Go dtle's `nats_bind`, with no shared `nats` list): a `nats-server` child process
//! listening on the bind address, started when the config arrives, started again whenever it exits, and ended with
//! the plugin (it gets SIGTERM when the plugin process dies, even by SIGKILL). Its config file and log are under the
//! plugin's data directory. The fingerprint is healthy when the server answers (see `driver::health`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// The program run; Debian and our packages install it (`nats-server`).
const NATS_SERVER_PROGRAM: &str = "nats-server";
/// Largest message the server accepts: big enough for any frame the link cuts (it keeps frames below it).
const MAX_PAYLOAD: u64 = 8 << 20;

/// A running supervisor; the last problem it met, for the fingerprint.
#[derive(Clone, Default)]
pub struct OwnNatsServer {
    bind: String,
    problem: Arc<Mutex<Option<String>>>,
}

impl OwnNatsServer {
    /// Starts supervising a `nats-server` on `bind` (`host:port`) until `shutdown`.
    pub fn start(bind: &str, data_dir: &Path, shutdown: CancellationToken) -> OwnNatsServer {
        let server = OwnNatsServer { bind: bind.to_string(), problem: Arc::new(Mutex::new(None)) };
        let dir = data_dir.join("nats");
        tokio::spawn(supervise(server.clone(), dir, shutdown));
        server
    }

    pub fn bind(&self) -> &str {
        &self.bind
    }

    /// Why the server is not running, when the supervisor knows.
    pub fn problem(&self) -> Option<String> {
        self.problem.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_problem(&self, problem: Option<String>) {
        *self.problem.lock().unwrap_or_else(|e| e.into_inner()) = problem;
    }
}

fn write_config(dir: &Path, bind: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("nats-server.conf");
    std::fs::write(
        &path,
        format!("# Written by the dtle plugin (nats_bind).\nlisten: \"{bind}\"\nmax_payload: {MAX_PAYLOAD}\n"),
    )?;
    Ok(path)
}

async fn supervise(server: OwnNatsServer, dir: PathBuf, shutdown: CancellationToken) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = tokio::time::Instant::now();
        match run_once(&server, &dir, &shutdown).await {
            Ok(()) => return,
            Err(problem) => {
                warn!(nats_bind = %server.bind, problem = %problem, retry_in_s = backoff.as_secs(), "the plugin's NATS server is not running; starting it again");
                server.set_problem(Some(problem));
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Runs the server until it exits (an error saying how) or `shutdown` (Ok, after stopping it).
async fn run_once(server: &OwnNatsServer, dir: &Path, shutdown: &CancellationToken) -> Result<(), String> {
    let config = write_config(dir, &server.bind).map_err(|e| format!("writing {}: {e}", dir.display()))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("nats-server.log"))
        .map_err(|e| format!("opening the NATS server log in {}: {e}", dir.display()))?;
    let mut command = tokio::process::Command::new(NATS_SERVER_PROGRAM);
    command
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    // SAFETY: prctl(PR_SET_PDEATHSIG) only asks the kernel to signal the child when its parent dies; it touches no
    // memory of the forked process.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "nats_bind is set but the {NATS_SERVER_PROGRAM} program is not installed (apt-get install \
                 nats-server, or give a shared `nats` list instead)"
            )
        } else {
            format!("starting {NATS_SERVER_PROGRAM}: {e}")
        }
    })?;
    info!(nats_bind = %server.bind, pid = child.id().unwrap_or(0), "the plugin's NATS server started");
    server.set_problem(None);
    tokio::select! {
        status = child.wait() => {
            let status = status.map_err(|e| e.to_string())?;
            Err(format!(
                "{NATS_SERVER_PROGRAM} on {} exited ({status}); see {}",
                server.bind,
                dir.join("nats-server.log").display()
            ))
        }
        _ = shutdown.cancelled() => {
            if let Some(pid) = child.id() {
                // SAFETY: a plain kill(2) of our own child.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            }
            if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
                error!(nats_bind = %server.bind, "the plugin's NATS server did not stop within 5 s; killing it");
                let _ = child.kill().await;
            }
            Ok(())
        }
    }
}
