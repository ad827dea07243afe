//! Nomad's `BasePlugin` and `Driver` services. Each dtle task runs inside this process (as dtle always did): the
//! src or dest role of a job, started by StartTask through `standalone::run_job` with one role, meeting the other
//! role over NATS and keeping positions in Consul (or local files).

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dtle_proto::nomad::drivers::{self, driver_capabilities, fingerprint_response, network_isolation_spec};
use dtle_proto::nomad::{base, structs, RpcStatus, DRIVER_API_VERSION, RECOVERABLE_ERROR_TYPE_URL};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::{error, info, warn, Instrument};

use super::config::{plugin_config_spec, PluginConfig};
use super::cty::msgpack_to_json;
use super::hclspec::task_config_spec;
use super::log::{self, TaskLog, TASK_SPAN};
use super::resolve::{first_endpoint, resolve_task, role_of, Resolved};
use super::stats::Sampler;
use crate::config::{JobShape, ResolvedJob, TargetConfig, TaskRole};
use crate::standalone::{run_job, Roles, RunOptions};

/// The driver name jobs use (`driver = "dtle"`) and the plugin's name.
pub const PLUGIN_NAME: &str = "dtle";
/// Seconds between fingerprints (Nomad's drivers and Go dtle use 30).
const FINGERPRINT_INTERVAL: Duration = Duration::from_secs(30);
/// How long a probe of a server may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// What recovery needs, kept by Nomad in the task handle.
const DRIVER_STATE_VERSION: u32 = 1;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// How a task ended.
#[derive(Debug, Clone)]
struct TaskExit {
    code: i32,
    signal: i32,
    err: String,
    at: SystemTime,
}

/// A task started in this process.
struct Task {
    id: String,
    name: String,
    alloc_id: String,
    job: String,
    role: TaskRole,
    /// The request's TaskConfig, echoed in the handle.
    handle_config: drivers::TaskConfig,
    resolved: ResolvedJob,
    started_at: SystemTime,
    cancel: CancellationToken,
    exit: watch::Sender<Option<TaskExit>>,
    runner: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Nomad's stdout FIFO for this task (`nomad alloc logs`), opened on first use.
    log_output: Mutex<Option<std::fs::File>>,
}

impl Task {
    /// Writes one log line to the task's stdout (warnings and errors to stderr) as `nomad alloc logs` shows it.
    /// Never blocks: the FIFOs are opened non-blocking, and a line that does not fit is dropped.
    fn write_log_line(&self, level: tracing::Level, line: &str) {
        use std::io::Write;
        let path = if level <= tracing::Level::WARN {
            &self.handle_config.stderr_path
        } else {
            &self.handle_config.stdout_path
        };
        if path.is_empty() {
            return;
        }
        let Ok(mut slot) = self.log_output.lock() else { return };
        if level <= tracing::Level::WARN {
            if let Ok(mut f) = open_log_output(path) {
                let _ = f.write_all(line.as_bytes());
            }
            return;
        }
        if slot.is_none() {
            *slot = open_log_output(path).ok();
        }
        if let Some(f) = slot.as_mut() {
            if f.write_all(line.as_bytes()).is_err() {
                *slot = None;
            }
        }
    }

    fn exited(&self) -> Option<TaskExit> {
        self.exit.borrow().clone()
    }

    /// Records the exit unless one is recorded already.
    fn set_exit(&self, exit: TaskExit) -> bool {
        self.exit.send_if_modified(|slot| {
            if slot.is_none() {
                *slot = Some(exit);
                true
            } else {
                false
            }
        })
    }

    async fn wait(&self) -> TaskExit {
        let mut rx = self.exit.subscribe();
        loop {
            if let Some(e) = rx.borrow_and_update().clone() {
                return e;
            }
            if rx.changed().await.is_err() {
                return self.exited().unwrap_or(TaskExit {
                    code: 1,
                    signal: 0,
                    err: "the task's runner went away".into(),
                    at: SystemTime::now(),
                });
            }
        }
    }

    /// Stops the runner at once (after a graceful stop ran out of time, or a forced destroy).
    fn kill(&self, why: &str) {
        self.cancel.cancel();
        if let Ok(mut runner) = self.runner.lock() {
            if let Some(h) = runner.take() {
                h.abort();
            }
        }
        self.set_exit(TaskExit { code: 137, signal: 9, err: why.to_string(), at: SystemTime::now() });
    }
}

/// What the handle's `driver_state` holds (JSON).
#[derive(Debug, Serialize, Deserialize)]
pub struct DriverState {
    pub version: u32,
    pub task_id: String,
    pub job: String,
    pub task_name: String,
    pub role: String,
    pub started_at_unix_ms: u64,
    /// The plugin process the task runs in.
    pub plugin_pid: u32,
}

/// The plugin's state, shared by both services.
pub struct Shared {
    config: RwLock<Option<PluginConfig>>,
    config_version: watch::Sender<u64>,
    tasks: Mutex<HashMap<String, Arc<Task>>>,
    events: broadcast::Sender<drivers::DriverTaskEvent>,
    /// The process is shutting down: long-lived streams end.
    pub shutdown: CancellationToken,
    /// The address the HTTP listener (`api_addr`: status, metrics) was started on, once started.
    api_listener: Mutex<Option<String>>,
    /// The plugin's own NATS server (`nats_bind` without a shared `nats` list), once started.
    own_nats: Mutex<Option<super::nats_server::OwnNatsServer>>,
}

/// The service implementation (cheap to clone).
#[derive(Clone)]
pub struct DtlePlugin {
    shared: Arc<Shared>,
}

impl DtlePlugin {
    /// A plugin with no config yet. Starts the forwarding of task-scoped log events into task events.
    pub fn new(shutdown: CancellationToken) -> Self {
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            config: RwLock::new(None),
            config_version: watch::channel(0).0,
            tasks: Mutex::new(HashMap::new()),
            events,
            shutdown,
            api_listener: Mutex::new(None),
            own_nats: Mutex::new(None),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        log::set_task_log_sink(tx);
        tokio::spawn(forward_task_logs(Arc::downgrade(&shared), rx));
        DtlePlugin { shared }
    }

    fn config(&self) -> PluginConfig {
        self.shared.config.read().ok().and_then(|c| c.clone()).unwrap_or_default()
    }

    /// Serves `/v1/status` (and `/metrics` with `publish_metrics`) on `api_addr`, once per process: Go dtle's
    /// listener. A later config naming another address is warned about (the first stays until the plugin restarts).
    fn start_api_listener(&self, config: &PluginConfig) -> Result<(), Status> {
        let addr_text = config.api_addr.trim();
        if addr_text.is_empty() {
            return Ok(());
        }
        let addr: std::net::SocketAddr = addr_text.parse().map_err(|e| {
            Status::invalid_argument(format!(
                "plugin \"dtle\" config: api_addr = {addr_text:?} is not an address to listen on ({e}); give \
                 host:port, e.g. \"127.0.0.1:8190\", or \"\" to turn the listener off"
            ))
        })?;
        let mut started = self.shared.api_listener.lock().unwrap_or_else(|e| e.into_inner());
        match started.as_deref() {
            Some(running) if running == addr_text => return Ok(()),
            Some(running) => {
                warn!(
                    running,
                    requested = addr_text,
                    "api_addr changed: the listener stays on the first address until the plugin restarts"
                );
                return Ok(());
            }
            None => {}
        }
        *started = Some(addr_text.to_string());
        let (shutdown, with_metrics) = (self.shared.shutdown.clone(), config.publish_metrics);
        info!(%addr, with_metrics, "serving /v1/status{} on api_addr", if with_metrics { " and /metrics" } else { "" });
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve_paths(addr, shutdown, with_metrics).await {
                error!(error = %e, "api_addr: the status and metrics listener could not start");
            }
        });
        Ok(())
    }

    /// Go dtle's cluster mode: with `nats_bind` and no shared `nats` list, this plugin serves NATS itself (once per
    /// process; a later config naming another address is warned about until the plugin restarts).
    async fn start_own_nats(&self, config: &PluginConfig) {
        let Some(bind) = config.own_nats_bind() else { return };
        {
            let mut own = self.shared.own_nats.lock().unwrap_or_else(|e| e.into_inner());
            match own.as_ref() {
                Some(running) if running.bind() == bind => return,
                Some(running) => {
                    warn!(running = running.bind(), requested = %bind, "nats_bind changed: the plugin's NATS server stays on the first address until the plugin restarts");
                    return;
                }
                None => {
                    info!(nats_bind = %bind, nats_meeting = ?config.nats_meeting(), "running this node's NATS server (nats_bind); dest tasks publish its address in Consul");
                    *own = Some(super::nats_server::OwnNatsServer::start(
                        &bind,
                        &config.data_dir(),
                        self.shared.shutdown.clone(),
                    ));
                }
            }
        }
        // The first fingerprint after the config should find it answering.
        let local = config.nats_urls().first().map(|url| host_port(url, 4222)).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(5);
        while probe_tcp(&local).await.is_err() && Instant::now() < deadline && self.own_nats_problem().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Why the plugin's own NATS server is not running, when it should be and the supervisor knows why.
    fn own_nats_problem(&self) -> Option<String> {
        self.shared.own_nats.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|s| s.problem())
    }

    fn task(&self, id: &str) -> Option<Arc<Task>> {
        self.shared.tasks.lock().ok().and_then(|t| t.get(id).cloned())
    }

    fn all_tasks(&self) -> Vec<Arc<Task>> {
        self.shared.tasks.lock().map(|t| t.values().cloned().collect()).unwrap_or_default()
    }

    /// Cancels every task and waits up to `grace` for them to save their positions.
    pub async fn stop_all(&self, grace: Duration) {
        let tasks = self.all_tasks();
        for t in &tasks {
            t.cancel.cancel();
        }
        let all = futures_util::future::join_all(tasks.iter().map(|t| t.wait()));
        let _ = tokio::time::timeout(grace, all).await;
    }

    fn emit(&self, task: &Task, message: String, annotations: HashMap<String, String>) {
        self.shared.emit(task, message, annotations);
    }
}

impl Shared {
    fn emit(&self, task: &Task, message: String, annotations: HashMap<String, String>) {
        let _ = self.events.send(drivers::DriverTaskEvent {
            task_id: task.id.clone(),
            alloc_id: task.alloc_id.clone(),
            task_name: task.name.clone(),
            timestamp: Some(timestamp(SystemTime::now())),
            message,
            annotations,
        });
    }
}

/// Turns task-scoped log events into Nomad task events: warnings and errors each time (repeats of the same text
/// at most every 10 s), informational ones at most once a minute per text, so progress lines do not push the
/// important events out of Nomad's short event list.
async fn forward_task_logs(shared: std::sync::Weak<Shared>, mut rx: mpsc::UnboundedReceiver<TaskLog>) {
    let mut last_sent: HashMap<(String, String), Instant> = HashMap::new();
    while let Some(ev) = rx.recv().await {
        let Some(shared) = shared.upgrade() else { return };
        let tasks: Vec<Arc<Task>> = match shared.tasks.lock() {
            Ok(t) => t
                .values()
                .filter(|t| match (&ev.task_id, &ev.job) {
                    (Some(id), _) => &t.id == id,
                    (None, Some(job)) => &t.job == job && t.exited().is_none(),
                    (None, None) => false,
                })
                .cloned()
                .collect(),
            Err(_) => continue,
        };
        let min_gap = if ev.level <= tracing::Level::WARN { Duration::from_secs(10) } else { Duration::from_secs(60) };
        let fields_text: Vec<String> = ev.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let line =
            format!("{} {:>5} {} {}\n", humantime_utc(SystemTime::now()), ev.level, ev.message, fields_text.join(" "));
        for task in &tasks {
            task.write_log_line(ev.level, &line);
        }
        for task in tasks {
            let key = (task.id.clone(), ev.message.clone());
            if last_sent.get(&key).is_some_and(|t| t.elapsed() < min_gap) {
                continue;
            }
            last_sent.insert(key, Instant::now());
            let mut message = ev.message.clone();
            let shown: Vec<String> =
                ev.fields.iter().filter(|(k, _)| k.as_str() != "task_id").map(|(k, v)| format!("{k}={v}")).collect();
            if !shown.is_empty() {
                message = format!("{message} ({})", shown.join(", "));
            }
            let mut annotations: HashMap<String, String> = ev.fields.clone().into_iter().collect();
            annotations.insert("level".into(), ev.level.to_string().to_ascii_lowercase());
            shared.emit(&task, message, annotations);
        }
        if last_sent.len() > 10_000 {
            last_sent.retain(|_, t| t.elapsed() < Duration::from_secs(60));
        }
    }
}

/// Opens a task's log FIFO (or file) for appending without blocking on a missing reader.
fn open_log_output(path: &str) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().append(true).custom_flags(libc_o_nonblock()).open(path)
}

const fn libc_o_nonblock() -> i32 {
    // O_NONBLOCK on Linux (all architectures Nomad supports run this value).
    0o4000
}

/// `2026-11-25T10:20:05.123Z`
fn humantime_utc(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (y, mo, day, h, mi, sec) = dtle_mysql::value::civil_from_unix(d.as_secs() as i64);
    format!("{y:04}-{mo:02}-{day:02}T{h:02}:{mi:02}:{sec:02}.{:03}Z", d.subsec_millis())
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A failure Nomad does not retry: the task fails with this message (shown by `nomad alloc status`).
fn fatal(message: impl Into<String>) -> Status {
    Status::invalid_argument(message.into())
}

/// A failure Nomad retries within the job's restart policy: FailedPrecondition carrying RecoverableError.
pub fn recoverable(message: impl Into<String>) -> Status {
    let message = message.into();
    let detail = prost::Message::encode_to_vec(&structs::RecoverableError { recoverable: true });
    let status = RpcStatus {
        code: tonic::Code::FailedPrecondition as i32,
        message: message.clone(),
        details: vec![prost_types::Any { type_url: RECOVERABLE_ERROR_TYPE_URL.to_string(), value: detail }],
    };
    Status::with_details(
        tonic::Code::FailedPrecondition,
        message,
        bytes::Bytes::from(prost::Message::encode_to_vec(&status)),
    )
}

/// Connects to `addr` (`host:port`) and disconnects.
async fn probe_tcp(addr: &str) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
    }
}

/// `host:port` of a URL-ish address (`nats://user:pw@h:4222`, `http://h:8500`, `h:8500`), with a default port.
fn host_port(address: &str, default_port: u16) -> String {
    let rest = address.split_once("://").map(|(_, r)| r).unwrap_or(address);
    let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
    let rest = rest.split('/').next().unwrap_or(rest);
    let has_port = match rest.rsplit_once(':') {
        Some((h, p)) => !h.is_empty() && p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')),
        None => false,
    };
    if has_port {
        rest.to_string()
    } else {
        format!("{rest}:{default_port}")
    }
}

/// The node's health as far as dtle can tell: Consul and at least one NATS server reachable.
async fn health(
    config: &PluginConfig,
    own_nats_problem: Option<String>,
) -> (fingerprint_response::HealthState, String) {
    let mut problems: Vec<String> = own_nats_problem.into_iter().collect();
    if let Some(consul) = config.consul_config() {
        let default_port = if consul.address.starts_with("https://") { 8501 } else { 8500 };
        let addr = host_port(&consul.address, default_port);
        if let Err(e) = probe_tcp(&addr).await {
            problems.push(format!("Consul at {addr} is unreachable ({e})"));
        }
    }
    let urls = config.nats_urls();
    let mut nats_errors = Vec::new();
    for url in &urls {
        let addr = host_port(url, 4222);
        match probe_tcp(&addr).await {
            Ok(()) => {
                nats_errors.clear();
                break;
            }
            Err(e) => nats_errors.push(format!("{addr} ({e})")),
        }
    }
    if !nats_errors.is_empty() {
        problems.push(format!("no NATS server is reachable: {}", nats_errors.join(", ")));
    }
    if problems.is_empty() {
        (fingerprint_response::HealthState::Healthy, "Healthy".to_string())
    } else {
        (fingerprint_response::HealthState::Unhealthy, problems.join("; "))
    }
}

fn string_attr(s: &str) -> structs::Attribute {
    structs::Attribute { value: Some(structs::attribute::Value::StringVal(s.to_string())), unit: String::new() }
}

/// `version-commit` when the build says which commit it is.
pub fn full_version() -> String {
    match option_env!("DTLE_BUILD_COMMIT") {
        Some(c) if !c.is_empty() => format!("{}-{c}", env!("CARGO_PKG_VERSION")),
        _ => env!("CARGO_PKG_VERSION").to_string(),
    }
}

async fn fingerprint(config: &PluginConfig, own_nats_problem: Option<String>) -> drivers::FingerprintResponse {
    let (health, description) = health(config, own_nats_problem).await;
    let mut attributes = HashMap::new();
    attributes.insert(
        "driver.dtle".to_string(),
        structs::Attribute { value: Some(structs::attribute::Value::BoolVal(true)), unit: String::new() },
    );
    attributes.insert("driver.dtle.version".to_string(), string_attr(env!("CARGO_PKG_VERSION")));
    attributes.insert("driver.dtle.full_version".to_string(), string_attr(&full_version()));
    drivers::FingerprintResponse {
        attributes,
        health: health as i32,
        health_description: description,
        err: String::new(),
    }
}

#[tonic::async_trait]
impl base::base_plugin_server::BasePlugin for DtlePlugin {
    async fn plugin_info(
        &self,
        _: Request<base::PluginInfoRequest>,
    ) -> Result<Response<base::PluginInfoResponse>, Status> {
        Ok(Response::new(base::PluginInfoResponse {
            r#type: base::PluginType::Driver as i32,
            plugin_api_versions: vec![DRIVER_API_VERSION.to_string()],
            plugin_version: env!("CARGO_PKG_VERSION").to_string(),
            name: PLUGIN_NAME.to_string(),
        }))
    }

    async fn config_schema(
        &self,
        _: Request<base::ConfigSchemaRequest>,
    ) -> Result<Response<base::ConfigSchemaResponse>, Status> {
        Ok(Response::new(base::ConfigSchemaResponse { spec: Some(plugin_config_spec()) }))
    }

    /// Decodes and keeps the config. Starts nothing: Nomad calls this twice in a short-lived validation process
    /// (without `nomad_config`) before the long-lived process gets it once more.
    async fn set_config(
        &self,
        request: Request<base::SetConfigRequest>,
    ) -> Result<Response<base::SetConfigResponse>, Status> {
        let req = request.into_inner();
        let config = PluginConfig::decode(&req.msgpack_config).map_err(Status::invalid_argument)?;
        if !req.plugin_api_version.is_empty() && req.plugin_api_version != DRIVER_API_VERSION {
            return Err(Status::invalid_argument(format!(
                "plugin API version {:?} is not supported; dtle speaks {DRIVER_API_VERSION}",
                req.plugin_api_version
            )));
        }
        log::set_level(&config.log_level);
        let validation_only = req.nomad_config.is_none();
        for field in config.ignored_fields_set() {
            if !validation_only {
                warn!(field, "plugin \"dtle\" config: this setting has no effect in this build");
            }
        }
        info!(
            consul = %config.consul,
            nats = %config.nats_urls().join(","),
            data_dir = %config.data_dir().display(),
            validation_only,
            "plugin configured"
        );
        if !validation_only {
            self.start_api_listener(&config)?;
            self.start_own_nats(&config).await;
        }
        if let Ok(mut slot) = self.shared.config.write() {
            *slot = Some(config);
        }
        self.shared.config_version.send_modify(|v| *v += 1);
        Ok(Response::new(base::SetConfigResponse {}))
    }
}

#[tonic::async_trait]
impl drivers::driver_server::Driver for DtlePlugin {
    async fn init(&self, _: Request<drivers::InitRequest>) -> Result<Response<drivers::InitResponse>, Status> {
        Ok(Response::new(drivers::InitResponse {}))
    }

    async fn task_config_schema(
        &self,
        _: Request<drivers::TaskConfigSchemaRequest>,
    ) -> Result<Response<drivers::TaskConfigSchemaResponse>, Status> {
        Ok(Response::new(drivers::TaskConfigSchemaResponse { spec: Some(task_config_spec()) }))
    }

    async fn capabilities(
        &self,
        _: Request<drivers::CapabilitiesRequest>,
    ) -> Result<Response<drivers::CapabilitiesResponse>, Status> {
        Ok(Response::new(drivers::CapabilitiesResponse {
            capabilities: Some(drivers::DriverCapabilities {
                send_signals: true,
                exec: false,
                fs_isolation: driver_capabilities::FsIsolation::None as i32,
                network_isolation_modes: vec![
                    network_isolation_spec::NetworkIsolationMode::Host as i32,
                    network_isolation_spec::NetworkIsolationMode::Group as i32,
                ],
                must_create_network: false,
                mount_configs: driver_capabilities::MountConfigs::NoMounts as i32,
                disable_log_collection: false,
                dynamic_workload_users: false,
            }),
        }))
    }

    type FingerprintStream = BoxStream<drivers::FingerprintResponse>;

    /// The first answer at once, then every 30 s and after each SetConfig; the stream stays open.
    async fn fingerprint(
        &self,
        _: Request<drivers::FingerprintRequest>,
    ) -> Result<Response<Self::FingerprintStream>, Status> {
        let (tx, rx) = mpsc::channel(4);
        let this = self.clone();
        let mut config_changes = self.shared.config_version.subscribe();
        tokio::spawn(async move {
            loop {
                let fp = fingerprint(&this.config(), this.own_nats_problem()).await;
                if tx.send(Ok(fp)).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = this.shared.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(FINGERPRINT_INTERVAL) => {}
                    r = config_changes.changed() => if r.is_err() { return },
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    /// Re-attaches to a task still running in this process. A task this process does not know ran in a plugin
    /// process that is gone: say so, and Nomad starts the task again, which resumes from the saved position.
    async fn recover_task(
        &self,
        request: Request<drivers::RecoverTaskRequest>,
    ) -> Result<Response<drivers::RecoverTaskResponse>, Status> {
        let req = request.into_inner();
        let handle = req.handle.ok_or_else(|| Status::invalid_argument("RecoverTask without a task handle"))?;
        let id = handle.config.as_ref().map(|c| c.id.clone()).filter(|id| !id.is_empty()).unwrap_or(req.task_id);
        if id.is_empty() {
            return Err(Status::invalid_argument("RecoverTask: the handle has no task id"));
        }
        if self.task(&id).is_some() {
            info!(task_id = %id, "task recovered: still running in this plugin process");
            return Ok(Response::new(drivers::RecoverTaskResponse {}));
        }
        let state: Option<DriverState> = serde_json::from_slice(&handle.driver_state).ok();
        let message = match state {
            Some(s) => format!(
                "dtle task {id} (job {:?}, {} task) is not running in this plugin process (it ran in plugin process \
                 {}, which is gone; dtle tasks live inside the plugin): Nomad starts it again and it resumes from \
                 the saved position",
                s.job, s.role, s.plugin_pid
            ),
            None => format!(
                "dtle task {id} is not running in this plugin process and its driver state is unreadable: Nomad \
                 starts it again and it resumes from the saved position"
            ),
        };
        info!(task_id = %id, "{message}");
        Err(Status::not_found(message))
    }

    async fn start_task(
        &self,
        request: Request<drivers::StartTaskRequest>,
    ) -> Result<Response<drivers::StartTaskResponse>, Status> {
        let cfg = request.into_inner().task.ok_or_else(|| fatal("StartTask without a task config"))?;
        if cfg.id.is_empty() {
            return Err(fatal("StartTask: the task config has no id"));
        }
        if let Some(existing) = self.task(&cfg.id) {
            if existing.exited().is_none() {
                return Err(Status::already_exists(format!("task {} is already running", cfg.id)));
            }
        }
        let job_name = if cfg.job_name.is_empty() { cfg.job_id.clone() } else { cfg.job_name.clone() };
        let role = role_of(&cfg.name).map_err(|e| fatal(format!("job {job_name:?}: {e}")))?;
        let config_json =
            msgpack_to_json(&cfg.msgpack_driver_config).map_err(|e| fatal(format!("task {:?}: {e}", cfg.name)))?;
        let (_, resolved) = resolve_task(&job_name, &cfg.task_group_name, &cfg.name, config_json).map_err(fatal)?;
        let job = match resolved {
            Resolved::Ready(job) => *job,
            Resolved::NeedsSrcTask => self.job_from_src_task(&job_name, &cfg.namespace)?,
        };
        let plugin = self.config();
        let window = (job.src.repl_chan_buffer_size.max(1) as usize).min(4096);
        let nats = plugin.nats_options(window).map_err(|e| fatal(format!("plugin \"dtle\" config: {e}")))?;
        // The start checks `dtle run` and `dtle validate` make (crate::plan::check), for this task's role.
        let checked_roles = if role == TaskRole::Src { Roles::SrcOnly } else { Roles::DestOnly };
        let (_, warnings) = crate::plan::check(&job, checked_roles).await.map_err(|e| {
            if e.is_transient() {
                recoverable(e.to_string())
            } else {
                fatal(e.to_string())
            }
        })?;
        if job.src.two_way_sync {
            return Err(fatal(format!(
                "job {job_name:?}: TwoWaySync runs both directions in one `dtle run` process; under Nomad run two jobs \
                 (A to B and B to A): dtle's markers keep them from looping"
            )));
        }

        // Fail fast while Nomad can restart the task: the server this role talks to first must answer.
        if let Some(addr) = first_endpoint(role, &job) {
            if let Err(e) = probe_tcp(&addr).await {
                let what = if role == TaskRole::Src { "source" } else { "target" };
                return Err(recoverable(format!(
                    "job {job_name:?}, task {:?}: cannot reach the {what} MySQL at {addr}: {e}; Nomad retries the \
                     task within the job's restart policy",
                    cfg.name
                )));
            }
        }

        let opts = RunOptions {
            data_dir: plugin.data_dir(),
            progress_bar: false,
            nats: Some(nats),
            roles: if role == TaskRole::Src { Roles::SrcOnly } else { Roles::DestOnly },
            consul: plugin.consul_config(),
            nats_meeting: plugin.nats_meeting(),
        };
        let started_at = SystemTime::now();
        let state = DriverState {
            version: DRIVER_STATE_VERSION,
            task_id: cfg.id.clone(),
            job: job_name.clone(),
            task_name: cfg.name.clone(),
            role: role.as_str().to_string(),
            started_at_unix_ms: unix_ms(started_at),
            plugin_pid: std::process::id(),
        };
        let driver_state = serde_json::to_vec(&state).map_err(|e| Status::internal(e.to_string()))?;
        let task = Arc::new(Task {
            id: cfg.id.clone(),
            name: cfg.name.clone(),
            alloc_id: cfg.alloc_id.clone(),
            job: job_name.clone(),
            role,
            handle_config: cfg.clone(),
            resolved: job.clone(),
            started_at,
            cancel: CancellationToken::new(),
            exit: watch::channel(None).0,
            runner: Mutex::new(None),
            log_output: Mutex::new(None),
        });
        let span = tracing::info_span!(TASK_SPAN, task_id = %cfg.id, job = %job_name, role = role.as_str());
        let runner_task = task.clone();
        let runner = tokio::spawn(
            async move {
                let result = run_job(job, opts, runner_task.cancel.clone()).await;
                let exit = match result {
                    Ok(()) => {
                        info!(job = %runner_task.job, "task stopped");
                        TaskExit { code: 0, signal: 0, err: String::new(), at: SystemTime::now() }
                    }
                    Err(e) => {
                        error!(job = %runner_task.job, error = %e, "task failed");
                        TaskExit { code: 1, signal: 0, err: e.to_string(), at: SystemTime::now() }
                    }
                };
                runner_task.set_exit(exit);
            }
            .instrument(span),
        );
        if let Ok(mut slot) = task.runner.lock() {
            *slot = Some(runner);
        }
        if let Ok(mut tasks) = self.shared.tasks.lock() {
            tasks.insert(cfg.id.clone(), task.clone());
        }
        let endpoint = first_endpoint(role, &task.resolved).unwrap_or_default();
        info!(task_id = %cfg.id, job = %job_name, role = role.as_str(), endpoint = %endpoint, "task started");
        for w in warnings {
            warn!(task_id = %cfg.id, job = %job_name, "{w}");
        }
        self.emit(
            &task,
            format!(
                "dtle {} task of job {job_name:?} started ({} {endpoint})",
                role.as_str(),
                if role == TaskRole::Src { "source" } else { "target" }
            ),
            HashMap::new(),
        );
        Ok(Response::new(drivers::StartTaskResponse {
            result: drivers::start_task_response::Result::Success as i32,
            driver_error_msg: String::new(),
            handle: Some(drivers::TaskHandle {
                version: 1,
                config: Some(cfg),
                state: drivers::TaskState::Running as i32,
                driver_state,
            }),
            network_override: None,
        }))
    }

    async fn wait_task(
        &self,
        request: Request<drivers::WaitTaskRequest>,
    ) -> Result<Response<drivers::WaitTaskResponse>, Status> {
        let id = request.into_inner().task_id;
        let task = self.task(&id).ok_or_else(|| Status::not_found(format!("task {id} is not known to this plugin")))?;
        let exit = tokio::select! {
            e = task.wait() => e,
            _ = self.shared.shutdown.cancelled() => return Err(Status::unavailable("the plugin is shutting down")),
        };
        Ok(Response::new(drivers::WaitTaskResponse {
            result: Some(drivers::ExitResult { exit_code: exit.code, signal: exit.signal, oom_killed: false }),
            err: exit.err,
        }))
    }

    /// Asks the task to stop (it flushes what is in flight and saves its position), waits up to the timeout, then
    /// stops it at once. OK for unknown and exited tasks.
    async fn stop_task(
        &self,
        request: Request<drivers::StopTaskRequest>,
    ) -> Result<Response<drivers::StopTaskResponse>, Status> {
        let req = request.into_inner();
        let Some(task) = self.task(&req.task_id) else {
            return Ok(Response::new(drivers::StopTaskResponse {}));
        };
        if task.exited().is_some() {
            return Ok(Response::new(drivers::StopTaskResponse {}));
        }
        let timeout = req
            .timeout
            .and_then(|d| Duration::try_from(d).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(5));
        info!(task_id = %task.id, job = %task.job, timeout_ms = timeout.as_millis() as u64, signal = %req.signal, "stopping task");
        task.cancel.cancel();
        if tokio::time::timeout(timeout, task.wait()).await.is_err() {
            warn!(task_id = %task.id, job = %task.job, "task did not stop within the timeout; stopping it at once (the next start resumes from the saved position)");
            task.kill(&format!("did not stop within {}s; stopped at once", timeout.as_secs_f64()));
        }
        Ok(Response::new(drivers::StopTaskResponse {}))
    }

    async fn destroy_task(
        &self,
        request: Request<drivers::DestroyTaskRequest>,
    ) -> Result<Response<drivers::DestroyTaskResponse>, Status> {
        let req = request.into_inner();
        let Some(task) = self.task(&req.task_id) else {
            return Ok(Response::new(drivers::DestroyTaskResponse {}));
        };
        if task.exited().is_none() {
            if !req.force {
                return Err(Status::failed_precondition(format!(
                    "task {} is still running: stop it first, or destroy it with force",
                    task.id
                )));
            }
            task.kill("destroyed while running");
        }
        if let Ok(mut tasks) = self.shared.tasks.lock() {
            tasks.remove(&req.task_id);
        }
        Ok(Response::new(drivers::DestroyTaskResponse {}))
    }

    async fn inspect_task(
        &self,
        request: Request<drivers::InspectTaskRequest>,
    ) -> Result<Response<drivers::InspectTaskResponse>, Status> {
        let id = request.into_inner().task_id;
        let task = self.task(&id).ok_or_else(|| Status::not_found(format!("task {id} is not known to this plugin")))?;
        let exit = task.exited();
        let mut attributes = HashMap::new();
        attributes.insert("job".to_string(), task.job.clone());
        attributes.insert("role".to_string(), task.role.as_str().to_string());
        if let Some(addr) = first_endpoint(task.role, &task.resolved) {
            attributes.insert("endpoint".to_string(), addr);
        }
        Ok(Response::new(drivers::InspectTaskResponse {
            task: Some(drivers::TaskStatus {
                id: task.id.clone(),
                name: task.name.clone(),
                state: if exit.is_some() { drivers::TaskState::Exited } else { drivers::TaskState::Running } as i32,
                started_at: Some(timestamp(task.started_at)),
                completed_at: Some(timestamp(exit.as_ref().map(|e| e.at).unwrap_or(UNIX_EPOCH))),
                // Always present: Nomad's Go client dereferences it (`exitResultFromProto`) even for a running task;
                // zeros while it runs, as Go plugins send.
                result: Some(exit.map_or(drivers::ExitResult { exit_code: 0, signal: 0, oom_killed: false }, |e| {
                    drivers::ExitResult { exit_code: e.code, signal: e.signal, oom_killed: false }
                })),
            }),
            driver: Some(drivers::TaskDriverStatus { attributes }),
            network_override: None,
        }))
    }

    type TaskStatsStream = BoxStream<drivers::TaskStatsResponse>;

    /// One sample per interval until the client goes away or the task ends: the task's share of the plugin process
    /// (every dtle task of this node runs in it), so that Nomad's sums over the node's tasks match the process.
    async fn task_stats(
        &self,
        request: Request<drivers::TaskStatsRequest>,
    ) -> Result<Response<Self::TaskStatsStream>, Status> {
        let req = request.into_inner();
        let task =
            self.task(&req.task_id).ok_or_else(|| Status::not_found(format!("task {} is not known", req.task_id)))?;
        let interval = req
            .collection_interval
            .and_then(|d| Duration::try_from(d).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(100));
        let (tx, rx) = mpsc::channel(2);
        let shutdown = self.shared.shutdown.clone();
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            let mut sampler = Sampler::new();
            loop {
                if task.exited().is_some() {
                    return;
                }
                // This task's share of the process (every dtle task of the node runs in it).
                let running = shared
                    .upgrade()
                    .and_then(|s| s.tasks.lock().ok().map(|t| t.values().filter(|t| t.exited().is_none()).count()))
                    .unwrap_or(1);
                let usage = super::stats::share_of(&sampler.sample(), running);
                let stats = drivers::TaskStats {
                    id: task.id.clone(),
                    timestamp: Some(timestamp(SystemTime::now())),
                    agg_resource_usage: Some(usage),
                    resource_usage_by_pid: HashMap::new(),
                };
                if tx.send(Ok(drivers::TaskStatsResponse { stats: Some(stats) })).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type TaskEventsStream = BoxStream<drivers::DriverTaskEvent>;

    async fn task_events(
        &self,
        _: Request<drivers::TaskEventsRequest>,
    ) -> Result<Response<Self::TaskEventsStream>, Status> {
        let mut events = self.shared.events.subscribe();
        let (tx, rx) = mpsc::channel(64);
        let shutdown = self.shared.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let ev = tokio::select! {
                    _ = tx.closed() => return,
                    _ = shutdown.cancelled() => return,
                    ev = events.recv() => ev,
                };
                match ev {
                    Ok(ev) => {
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    /// The agent is shutting down (Nomad 2.0.5+): let the tasks save their positions.
    async fn shutdown(
        &self,
        _: Request<drivers::ShutdownRequest>,
    ) -> Result<Response<drivers::ShutdownResponse>, Status> {
        self.stop_all(Duration::from_millis(1500)).await;
        Ok(Response::new(drivers::ShutdownResponse {}))
    }

    /// Stop signals end the task gracefully (like StopTask without waiting); others are refused with the list.
    async fn signal_task(
        &self,
        request: Request<drivers::SignalTaskRequest>,
    ) -> Result<Response<drivers::SignalTaskResponse>, Status> {
        let req = request.into_inner();
        let task = self
            .task(&req.task_id)
            .ok_or_else(|| Status::not_found(format!("task {} is not known to this plugin", req.task_id)))?;
        let name = req.signal.trim().to_ascii_uppercase();
        let name = name.strip_prefix("SIG").unwrap_or(&name);
        match name {
            "INT" | "TERM" | "QUIT" | "KILL" => {
                info!(task_id = %task.id, job = %task.job, signal = %req.signal, "signal: stopping the task");
                task.cancel.cancel();
                Ok(Response::new(drivers::SignalTaskResponse {}))
            }
            // Go dtle's way of reading a task's status (`nomad alloc signal -s stats`): the JSON comes back as the
            // error text, since Nomad has no API for it.
            "STATS" => {
                let status = crate::metrics::job(&task.job).status();
                let mut stats = serde_json::json!({ "task": task.name, "role": task.role.as_str() });
                if let (Some(out), Some(fields)) = (stats.as_object_mut(), status.as_object()) {
                    out.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                Err(Status::unknown(stats.to_string()))
            }
            _ => Err(Status::invalid_argument(format!(
                "signal {:?} is not supported by dtle tasks; SIGINT, SIGTERM, SIGQUIT and SIGKILL stop the task \
                 (it saves its position first), stats answers with the task's status as JSON",
                req.signal
            ))),
        }
    }

    async fn exec_task(
        &self,
        _: Request<drivers::ExecTaskRequest>,
    ) -> Result<Response<drivers::ExecTaskResponse>, Status> {
        Err(Status::unimplemented("dtle tasks run inside the plugin process; there is nothing to exec into"))
    }

    type ExecTaskStreamingStream = BoxStream<drivers::ExecTaskStreamingResponse>;

    async fn exec_task_streaming(
        &self,
        _: Request<tonic::Streaming<drivers::ExecTaskStreamingRequest>>,
    ) -> Result<Response<Self::ExecTaskStreamingStream>, Status> {
        Err(Status::unimplemented("dtle tasks run inside the plugin process; there is nothing to exec into"))
    }

    async fn create_network(
        &self,
        _: Request<drivers::CreateNetworkRequest>,
    ) -> Result<Response<drivers::CreateNetworkResponse>, Status> {
        Err(Status::unimplemented("dtle does not create networks"))
    }

    async fn destroy_network(
        &self,
        _: Request<drivers::DestroyNetworkRequest>,
    ) -> Result<Response<drivers::DestroyNetworkResponse>, Status> {
        Err(Status::unimplemented("dtle does not create networks"))
    }
}

impl DtlePlugin {
    /// A 4.x-shape dest task (only `DestType`) takes the target and settings from its job's src task when that
    /// task runs in this plugin process. Otherwise the start fails as recoverable: Nomad retries (the src task may
    /// not have started yet), and the message says how to make the dest task self-sufficient.
    fn job_from_src_task(&self, job: &str, namespace: &str) -> Result<ResolvedJob, Status> {
        let found = self.all_tasks().into_iter().find(|t| {
            t.role == TaskRole::Src
                && t.job == job
                && t.handle_config.namespace == namespace
                && t.exited().is_none()
                && t.resolved.shape == JobShape::V4
                && matches!(t.resolved.target, TargetConfig::Mysql(_))
        });
        match found {
            Some(t) => {
                info!(job, src_task = %t.id, "4.x-shape dest task: using the target of the src task running in this plugin");
                Ok(t.resolved.clone())
            }
            None => Err(recoverable(format!(
                "job {job:?}: the dest task holds only DestType (dtle 4.x shape), so its target is in the src \
                 task, and no src task of this job runs on this node's plugin yet. Put the target in the dest \
                 task (3.x shape: ConnectionConfig {{ Host, Port, User, Password }} in the dest task's config), \
                 or run both groups on the same node; Nomad retries this task meanwhile"
            ))),
        }
    }
}

/// Task names by id, for logs at shutdown.
pub fn describe_tasks(plugin: &DtlePlugin) -> BTreeMap<String, String> {
    plugin.all_tasks().into_iter().map(|t| (t.id.clone(), format!("{} {}", t.job, t.role.as_str()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        assert_eq!(host_port("nats://127.0.0.1:4222", 4222), "127.0.0.1:4222");
        assert_eq!(host_port("nats://u:p@h", 4222), "h:4222");
        assert_eq!(host_port("127.0.0.1:8500", 8500), "127.0.0.1:8500");
        assert_eq!(host_port("http://consul.local", 8500), "consul.local:8500");
        assert_eq!(host_port("[::1]:8500", 1), "[::1]:8500");
    }

    #[test]
    fn recoverable_status_carries_the_detail() {
        let s = recoverable("x");
        assert_eq!(s.code(), tonic::Code::FailedPrecondition);
        let st: RpcStatus = prost::Message::decode(s.details()).unwrap();
        assert_eq!(st.code, 9);
        assert_eq!(st.details[0].type_url, RECOVERABLE_ERROR_TYPE_URL);
        let re: structs::RecoverableError = prost::Message::decode(st.details[0].value.as_slice()).unwrap();
        assert!(re.recoverable);
    }
}
