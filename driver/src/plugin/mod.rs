//! The Nomad task-driver plugin: when Nomad starts the `dtle` binary from its `plugin_dir`, the binary serves
//! go-plugin's gRPC protocol on a unix socket instead of acting as the CLI.
//!
//! Launch (go-plugin): Nomad sets `NOMAD_PLUGIN_MAGIC_COOKIE` and `PLUGIN_PROTOCOL_VERSIONS`; the plugin binds a
//! unix socket, starts serving, then prints `1|2|unix|<path>|grpc|` as its first (and only) stdout line. Logs go to
//! stderr as hclog JSON lines. Services: Nomad's `BasePlugin` and `Driver` ([`driver`]), go-plugin's controller,
//! stdio and broker ([`goplugin`]), and gRPC health (`plugin` = SERVING). SIGINT is ignored (the plugin shares the
//! agent's process group); GRPCController.Shutdown or SIGTERM stop the tasks (they save their positions), remove
//! the socket and exit 0.

pub mod config;
pub mod cty;
pub mod driver;
pub mod goplugin;
pub mod hclspec;
pub mod log;
pub mod nats_server;
pub mod resolve;
pub mod stats;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dtle_proto::nomad::base::base_plugin_server::BasePluginServer;
use dtle_proto::nomad::drivers::driver_server::DriverServer;
use dtle_proto::nomad::go_plugin::grpc_broker_server::GrpcBrokerServer;
use dtle_proto::nomad::go_plugin::grpc_controller_server::GrpcControllerServer;
use dtle_proto::nomad::go_plugin::grpc_stdio_server::GrpcStdioServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use tracing_subscriber::layer::SubscriberExt;

/// The environment variable Nomad's plugin loader sets, and its value (`hashicorp/nomad:plugins/base`).
pub const MAGIC_COOKIE_KEY: &str = "NOMAD_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str = "e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255";
/// go-plugin's core protocol version and Nomad's application protocol version.
pub const CORE_PROTOCOL_VERSION: u32 = 1;
pub const APP_PROTOCOL_VERSION: u32 = 2;
/// HTTP/2 streams per connection: Nomad keeps about two open per running task (WaitTask, TaskStats) on one
/// connection, beyond hyper's default of 200.
pub const MAX_CONCURRENT_STREAMS: u32 = 65_536;
/// How long tasks get to save their positions when the process is asked to exit (Nomad kills after 2 s).
const EXIT_GRACE: Duration = Duration::from_millis(1500);

/// Whether Nomad (or another go-plugin client) started this process as a plugin.
pub fn launched_as_plugin() -> bool {
    std::env::var_os(MAGIC_COOKIE_KEY).is_some()
}

/// Serves the plugin until Nomad asks it to exit. Returns the process exit code.
pub fn serve() -> ExitCode {
    if let Err(message) = check_environment() {
        eprintln_safe(&message);
        return ExitCode::from(1);
    }
    let subscriber = tracing_subscriber::registry().with(log::HclogLayer);
    let _ = tracing::subscriber::set_global_default(subscriber);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the runtime");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(run());
    // Tasks that ignored the stop are not waited for.
    runtime.shutdown_timeout(Duration::from_millis(200));
    code
}

/// The go-plugin handshake rules for the environment Nomad gives.
fn check_environment() -> Result<(), String> {
    match std::env::var(MAGIC_COOKIE_KEY) {
        Ok(v) if v == MAGIC_COOKIE_VALUE => {}
        _ => {
            return Err(format!(
                "This binary is a plugin. These are not meant to be executed directly. Please execute the program \
                 that consumes these plugins, which will load any plugins automatically ({MAGIC_COOKIE_KEY} has the \
                 wrong value; unset it to use the dtle command line)"
            ))
        }
    }
    if std::env::var_os("PLUGIN_CLIENT_CERT").is_some_and(|v| !v.is_empty()) {
        return Err("PLUGIN_CLIENT_CERT is set: automatic mTLS is not supported by the dtle plugin".into());
    }
    if let Ok(versions) = std::env::var("PLUGIN_PROTOCOL_VERSIONS") {
        let wanted = APP_PROTOCOL_VERSION.to_string();
        if !versions.trim().is_empty() && !versions.split(',').any(|v| v.trim() == wanted) {
            return Err(format!(
                "Incompatible API version with plugin. Plugin version: {APP_PROTOCOL_VERSION}, Client versions: \
                 {versions}"
            ));
        }
    }
    Ok(())
}

/// Writes a line to stderr, ignoring a broken pipe.
fn eprintln_safe(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}

/// A fresh socket path `plugin<random>` in `$PLUGIN_UNIX_SOCKET_DIR` or the temp dir.
fn socket_path(attempt: u32) -> PathBuf {
    let dir = std::env::var_os("PLUGIN_UNIX_SOCKET_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let n = (u64::from(std::process::id()) << 32 | u64::from(nanos)).wrapping_add(u64::from(attempt) * 7919);
    dir.join(format!("plugin{}", n % 10_000_000_000))
}

fn bind_socket() -> std::io::Result<(UnixListener, PathBuf)> {
    let mut last = None;
    for attempt in 0..20 {
        let path = socket_path(attempt);
        match UnixListener::bind(&path) {
            Ok(l) => return Ok((l, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free socket name")))
}

/// go-plugin ≥ 1.5: `PLUGIN_UNIX_SOCKET_GROUP` (name or gid) gets group ownership and write access.
fn apply_socket_group(path: &Path) -> Result<(), String> {
    let Some(group) = std::env::var("PLUGIN_UNIX_SOCKET_GROUP").ok().filter(|g| !g.trim().is_empty()) else {
        return Ok(());
    };
    let gid = match group.trim().parse::<u32>() {
        Ok(gid) => gid,
        Err(_) => {
            let name = std::ffi::CString::new(group.trim()).map_err(|e| e.to_string())?;
            // SAFETY: getgrnam reads the group database; the result is used before any other call.
            let entry = unsafe { libc::getgrnam(name.as_ptr()) };
            if entry.is_null() {
                return Err(format!("PLUGIN_UNIX_SOCKET_GROUP: no group named {group:?}"));
            }
            // SAFETY: entry is non-null and points to a static group record.
            unsafe { (*entry).gr_gid }
        }
    };
    std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| format!("chgrp {}: {e}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).map_err(|e| e.to_string())?.permissions().mode();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o020)).map_err(|e| e.to_string())
}

async fn run() -> ExitCode {
    let shutdown = CancellationToken::new();
    let (listener, path) = match bind_socket() {
        Ok(x) => x,
        Err(e) => {
            error!(error = %e, "cannot create the plugin's unix socket");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = apply_socket_group(&path) {
        error!(error = %e, "cannot set the socket's group");
        let _ = std::fs::remove_file(&path);
        return ExitCode::from(1);
    }

    let plugin = driver::DtlePlugin::new(shutdown.clone());
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_service_status("plugin", tonic_health::ServingStatus::Serving).await;
    health_reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
    let max = i32::MAX as usize;
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .add_service(health_service)
        .add_service(
            BasePluginServer::new(plugin.clone()).max_decoding_message_size(max).max_encoding_message_size(max),
        )
        .add_service(DriverServer::new(plugin.clone()).max_decoding_message_size(max).max_encoding_message_size(max))
        .add_service(GrpcControllerServer::new(goplugin::Controller { shutdown: shutdown.clone() }))
        .add_service(GrpcStdioServer::new(goplugin::Stdio { shutdown: shutdown.clone() }))
        .add_service(GrpcBrokerServer::new(goplugin::Broker { shutdown: shutdown.clone() }));
    let stop = shutdown.clone();
    let server = tokio::spawn(
        router.serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move { stop.cancelled().await }),
    );

    // The listener is bound and being served: tell the client where.
    let line = format!("{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|unix|{}|grpc|\n", path.display());
    {
        let mut out = std::io::stdout().lock();
        if out.write_all(line.as_bytes()).and_then(|()| out.flush()).is_err() {
            error!("cannot write the handshake line to stdout");
            let _ = std::fs::remove_file(&path);
            return ExitCode::from(1);
        }
    }
    info!(socket = %path.display(), version = env!("CARGO_PKG_VERSION"), pid = std::process::id(), "dtle plugin serving");

    watch_signals(shutdown.clone());
    shutdown.cancelled().await;
    let running = driver::describe_tasks(&plugin);
    if !running.is_empty() {
        info!(tasks = ?running, "exiting: stopping the tasks in this process (they save their positions)");
    }
    plugin.stop_all(EXIT_GRACE).await;
    // The server ends once its connections close; do not wait for a client that keeps one open.
    let _ = tokio::time::timeout(Duration::from_millis(300), server).await;
    let _ = std::fs::remove_file(&path);
    info!("dtle plugin exited");
    ExitCode::SUCCESS
}

/// SIGINT is ignored (the agent's Ctrl-C reaches the plugin too); SIGTERM exits like GRPCController.Shutdown.
fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = int.recv() => warn!("plugin received interrupt signal, ignoring"),
                        _ = term.recv() => {
                            info!("plugin received SIGTERM, exiting");
                            shutdown.cancel();
                            return;
                        }
                    }
                }
            });
        }
        _ => warn!("cannot install signal handlers"),
    }
}
