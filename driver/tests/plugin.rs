//! The Nomad driver plugin, driven the way Nomad's plugin client drives it: launch the `dtle` binary with Nomad's
//! environment (magic cookie, `PLUGIN_PROTOCOL_VERSIONS`, ...), read the go-plugin handshake line, connect over the
//! unix socket (h2c, authority `unused`) and call the RPCs in Nomad's order, with task configs encoded as Nomad
//! encodes them: the job file's task config (HCL jobs in jobspec2's JSON form, object attributes and blocks wrapped
//! in one-element lists; JSON jobs as written) decoded against the plugin's own hclspec the way Nomad's client does
//! (hcldec semantics: every attribute present, defaults applied, blocks as objects), then written as cty msgpack.
//!
//!   cargo test -p dtle --test plugin -- --nocapture
//! The replication tests need MariaDB (tests/mariadb.sh up) and NATS (tests/nats.sh start; eval "$(tests/nats.sh
//! env)"); Consul (DTLE_TEST_CONSUL_ADDR) is used when set. Without them those tests print "skipping: ..." and
//! pass, unless DTLE_TEST_REQUIRE_SERVERS=1.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use dtle::config::{FieldKind, FieldSpec, TASK_CONFIG_FIELDS};
use dtle::plugin::config::PLUGIN_CONFIG_FIELDS;
use dtle_proto::nomad::base::base_plugin_client::BasePluginClient;
use dtle_proto::nomad::drivers::driver_client::DriverClient;
use dtle_proto::nomad::go_plugin::grpc_controller_client::GrpcControllerClient;
use dtle_proto::nomad::go_plugin::grpc_stdio_client::GrpcStdioClient;
use dtle_proto::nomad::hclspec::{self, spec::Block as S};
use dtle_proto::nomad::{base, drivers, go_plugin, structs, RpcStatus, RECOVERABLE_ERROR_TYPE_URL};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tonic::transport::{Channel, Endpoint};

const COOKIE: &str = "e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255";

// ---------------------------------------------------------------------------------------------------------------
// The plugin process, as Nomad's plugin client sees it.

struct Plugin {
    child: Child,
    socket: PathBuf,
    channel: Channel,
    stderr: Arc<Mutex<Vec<String>>>,
    extra_stdout: Arc<Mutex<Vec<String>>>,
}

impl Plugin {
    async fn launch(extra_env: &[(&str, &str)]) -> Plugin {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dtle"));
        cmd.env("NOMAD_PLUGIN_MAGIC_COOKIE", COOKIE)
            .env("PLUGIN_PROTOCOL_VERSIONS", "2")
            .env("PLUGIN_MIN_PORT", "10000")
            .env("PLUGIN_MAX_PORT", "25000")
            .env_remove("PLUGIN_CLIENT_CERT")
            .env_remove("PLUGIN_MULTIPLEX_GRPC")
            .env_remove("PLUGIN_UNIX_SOCKET_DIR")
            .env_remove("PLUGIN_UNIX_SOCKET_GROUP")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn the dtle binary");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let err_pipe = child.stderr.take().expect("stderr pipe");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let out_pipe = child.stdout.take().expect("stdout pipe");
        let extra_stdout = Arc::new(Mutex::new(Vec::new()));
        let extra = extra_stdout.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out_pipe).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = tx.send(first);
            // go-plugin reads and discards later lines; the plugin must not print any.
            for line in lines.map_while(Result::ok) {
                extra.lock().unwrap().push(line);
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            panic!("no handshake line within 60 s; stderr:\n{}", stderr.lock().unwrap().join("\n"))
        });
        let parts: Vec<&str> = line.trim_end_matches('\n').split('|').collect();
        assert_eq!(parts.len(), 6, "handshake line {line:?} must have 6 fields (no multiplexing field)");
        assert_eq!(parts[0], "1", "core protocol version");
        assert_eq!(parts[1], "2", "app protocol version");
        assert_eq!(parts[2], "unix", "network");
        assert_eq!(parts[4], "grpc", "protocol");
        assert_eq!(parts[5], "", "server certificate (no AutoMTLS)");
        let socket = PathBuf::from(parts[3]);
        assert!(socket.is_absolute(), "socket path {socket:?}");
        let path = socket.clone();
        let channel = Endpoint::from_static("http://unused")
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
            }))
            .await
            .expect("connect to the plugin's socket");
        Plugin { child, socket, channel, stderr, extra_stdout }
    }

    fn base(&self) -> BasePluginClient<Channel> {
        BasePluginClient::new(self.channel.clone()).max_decoding_message_size(i32::MAX as usize)
    }

    fn driver(&self) -> DriverClient<Channel> {
        DriverClient::new(self.channel.clone()).max_decoding_message_size(i32::MAX as usize)
    }

    fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// The node is lost: SIGKILL, reaped (the plugin's own NATS server goes with it).
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Nomad's `client.Kill()`: GRPCController.Shutdown, then the process must exit within 2 s.
    async fn shutdown(mut self) -> ExitStatus {
        let _ = GrpcControllerClient::new(self.channel.clone()).shutdown(go_plugin::Empty {}).await;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(!self.socket.exists(), "the socket {:?} is left behind", self.socket);
                let extra = self.extra_stdout.lock().unwrap().clone();
                assert!(extra.is_empty(), "the plugin printed more than the handshake on stdout: {extra:?}");
                return status;
            }
            if Instant::now() > deadline {
                panic!("the plugin did not exit within 2 s of Shutdown; stderr:\n{}", tail(&self.stderr_text(), 30));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Config encoding as Nomad does it: job task config (JSON) → hcldec against the plugin's spec → cty msgpack.

#[derive(Clone, Debug, PartialEq)]
enum Cty {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Cty>),
    Obj(BTreeMap<String, Cty>),
}

/// Decodes a body (JSON object) with a spec like Nomad's client (hcldec over HCL's JSON syntax). `strict`: keys
/// the spec does not know are errors ("Unsupported argument"), as in Nomad; off, they pass through unchanged so
/// the plugin's own check can be tested.
fn hcldec(spec: &hclspec::Spec, body: &Map<String, Value>, strict: bool) -> Result<Cty, String> {
    let Some(S::Object(obj)) = &spec.block else { return Err("the top-level spec must be an object".into()) };
    let mut out = BTreeMap::new();
    for (k, v) in body {
        if !obj.attributes.contains_key(k) {
            if strict {
                return Err(format!("Unsupported argument; An argument named {k:?} is not expected here."));
            }
            out.insert(k.clone(), from_json(v));
        }
    }
    for (name, s) in &obj.attributes {
        out.insert(name.clone(), decode_spec(s, name, body, strict)?);
    }
    Ok(Cty::Obj(out))
}

fn decode_spec(spec: &hclspec::Spec, implied: &str, body: &Map<String, Value>, strict: bool) -> Result<Cty, String> {
    let named = |n: &str| if n.is_empty() { implied.to_string() } else { n.to_string() };
    match spec.block.as_ref().ok_or("empty spec")? {
        S::Attr(a) => {
            let name = named(&a.name);
            match body.get(&name) {
                None | Some(Value::Null) if a.required => Err(format!("Missing required argument {name:?}")),
                None | Some(Value::Null) => Ok(Cty::Null),
                Some(v) => convert(v, &a.r#type).map_err(|e| format!("{name}: {e}")),
            }
        }
        S::BlockValue(b) => {
            let name = named(&b.name);
            let nested = b.nested.as_deref().ok_or("block without nested spec")?;
            match body.get(&name) {
                None | Some(Value::Null) if b.required => Err(format!("Missing {name} block")),
                None | Some(Value::Null) => Ok(Cty::Null),
                Some(Value::Object(m)) => hcldec(nested, m, strict),
                Some(Value::Array(items)) => match items.as_slice() {
                    [] => Ok(Cty::Null),
                    [Value::Object(m)] => hcldec(nested, m, strict),
                    _ => Err(format!("Duplicate {name} block")),
                },
                Some(other) => Err(format!("{name}: a block is expected, not {other}")),
            }
        }
        S::BlockList(b) => {
            let name = named(&b.name);
            let nested = b.nested.as_deref().ok_or("block list without nested spec")?;
            let items: Vec<&Value> = match body.get(&name) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items.iter().collect(),
                Some(v @ Value::Object(_)) => vec![v],
                Some(other) => return Err(format!("{name}: blocks are expected, not {other}")),
            };
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::Object(m) => out.push(hcldec(nested, m, strict)?),
                    other => return Err(format!("{name}: a block is expected, not {other}")),
                }
            }
            Ok(Cty::List(out))
        }
        S::Default(d) => {
            let primary = d.primary.as_deref().ok_or("default without primary")?;
            match decode_spec(primary, implied, body, strict)? {
                Cty::Null => match d.default.as_deref().and_then(|s| s.block.as_ref()) {
                    Some(S::Literal(l)) => Ok(from_json(
                        &serde_json::from_str::<Value>(&l.value).map_err(|e| format!("literal {:?}: {e}", l.value))?,
                    )),
                    other => Err(format!("unsupported default {other:?}")),
                },
                v => Ok(v),
            }
        }
        other => Err(format!("spec kind not used by dtle: {other:?}")),
    }
}

/// HCL's conversion of a JSON value to an attribute type.
fn convert(v: &Value, ty: &str) -> Result<Cty, String> {
    if let Some(inner) = ty.strip_prefix("list(").and_then(|t| t.strip_suffix(')')) {
        return match v {
            Value::Array(items) => items.iter().map(|i| convert(i, inner)).collect::<Result<_, _>>().map(Cty::List),
            other => Err(format!("a list is required, not {other}")),
        };
    }
    match (ty, v) {
        ("string", Value::String(s)) => Ok(Cty::Str(s.clone())),
        ("string", Value::Number(n)) => Ok(Cty::Str(n.to_string())),
        ("string", Value::Bool(b)) => Ok(Cty::Str(b.to_string())),
        ("number", Value::Number(n)) => Ok(number(&n.to_string())),
        ("number", Value::String(s)) if s.trim().parse::<f64>().is_ok() => Ok(number(s.trim())),
        ("bool", Value::Bool(b)) => Ok(Cty::Bool(*b)),
        ("bool", Value::String(s)) if s == "true" || s == "false" => Ok(Cty::Bool(s == "true")),
        (_, other) => Err(format!("a {ty} is required, not {other}")),
    }
}

/// go-cty's number encoding: exact int64 → int; exact binary fraction → float64; anything else → decimal text.
fn number(text: &str) -> Cty {
    if let Ok(i) = text.parse::<i64>() {
        return Cty::Int(i);
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && (f * 1_048_576.0).fract() == 0.0 && f.abs() < 9.0e15 => {
            if f.fract() == 0.0 {
                Cty::Int(f as i64)
            } else {
                Cty::Float(f)
            }
        }
        _ => Cty::Str(text.to_string()),
    }
}

fn from_json(v: &Value) -> Cty {
    match v {
        Value::Null => Cty::Null,
        Value::Bool(b) => Cty::Bool(*b),
        Value::Number(n) => number(&n.to_string()),
        Value::String(s) => Cty::Str(s.clone()),
        Value::Array(items) => Cty::List(items.iter().map(from_json).collect()),
        Value::Object(m) => Cty::Obj(m.iter().map(|(k, v)| (k.clone(), from_json(v))).collect()),
    }
}

/// go-cty's msgpack (reference §3.2): compact ints, float64, str8/16/32, arrays, maps with sorted keys.
fn msgpack(v: &Cty) -> Vec<u8> {
    let mut out = Vec::new();
    write_cty(v, &mut out);
    out
}

fn write_cty(v: &Cty, out: &mut Vec<u8>) {
    match v {
        Cty::Null => out.push(0xc0),
        Cty::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Cty::Int(i) => write_int(*i, out),
        Cty::Float(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Cty::Str(s) => {
            let n = s.len();
            if n < 32 {
                out.push(0xa0 | n as u8);
            } else if n < 256 {
                out.extend_from_slice(&[0xd9, n as u8]);
            } else if n < 65536 {
                out.push(0xda);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            out.extend_from_slice(s.as_bytes());
        }
        Cty::List(items) => {
            let n = items.len();
            if n < 16 {
                out.push(0x90 | n as u8);
            } else if n < 65536 {
                out.push(0xdc);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            } else {
                out.push(0xdd);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            for i in items {
                write_cty(i, out);
            }
        }
        Cty::Obj(m) => {
            let n = m.len();
            if n < 16 {
                out.push(0x80 | n as u8);
            } else if n < 65536 {
                out.push(0xde);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            } else {
                out.push(0xdf);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            // BTreeMap<String> iterates in byte order, like Go's sort.Strings.
            for (k, v) in m {
                write_cty(&Cty::Str(k.clone()), out);
                write_cty(v, out);
            }
        }
    }
}

fn write_int(i: i64, out: &mut Vec<u8>) {
    if i >= 0 {
        let u = i as u64;
        if u < 128 {
            out.push(u as u8);
        } else if u <= u64::from(u8::MAX) {
            out.extend_from_slice(&[0xcc, u as u8]);
        } else if u <= u64::from(u16::MAX) {
            out.push(0xcd);
            out.extend_from_slice(&(u as u16).to_be_bytes());
        } else if u <= u64::from(u32::MAX) {
            out.push(0xce);
            out.extend_from_slice(&(u as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&u.to_be_bytes());
        }
    } else if i >= -32 {
        out.push(i as i8 as u8);
    } else if i >= i64::from(i8::MIN) {
        out.extend_from_slice(&[0xd0, i as i8 as u8]);
    } else if i >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Job files → each dtle task's config as the JSON Nomad stores for it.

#[derive(Clone, Debug)]
struct JobTask {
    group: String,
    name: String,
    config: Map<String, Value>,
}

fn examples_dir() -> PathBuf {
    repo_root().join("deploy").join("examples")
}

/// An HCL job as jobspec2 turns it into JSON: attributes as values, except that object-valued attributes and
/// blocks become lists of objects.
fn hcl_job_tasks(path: &Path) -> (String, Vec<JobTask>) {
    use hcl::eval::{Context, Evaluate};
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let body = hcl::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    fn body_json(body: &hcl::Body) -> Map<String, Value> {
        let ctx = Context::new();
        let mut out = Map::new();
        for s in body.iter() {
            match s {
                hcl::Structure::Attribute(a) => {
                    let v = a.expr().evaluate(&ctx).unwrap_or_else(|e| panic!("{}: {e}", a.key()));
                    let v = serde_json::to_value(v).expect("HCL value as JSON");
                    let v = if v.is_object() { Value::Array(vec![v]) } else { v };
                    out.insert(a.key().to_string(), v);
                }
                hcl::Structure::Block(b) => {
                    assert!(b.labels().is_empty(), "labelled blocks are not used in dtle configs");
                    let entry = out.entry(b.identifier().to_string()).or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(items) = entry {
                        items.push(Value::Object(body_json(b.body())));
                    }
                }
            }
        }
        out
    }
    let job = body.blocks().find(|b| b.identifier() == "job").expect("job block");
    let name = job.labels()[0].as_str().to_string();
    let mut tasks = Vec::new();
    for group in job.body().blocks().filter(|b| b.identifier() == "group") {
        for task in group.body().blocks().filter(|b| b.identifier() == "task") {
            let config = task.body().blocks().find(|b| b.identifier() == "config").expect("config block");
            tasks.push(JobTask {
                group: group.labels()[0].as_str().to_string(),
                name: task.labels()[0].as_str().to_string(),
                config: body_json(config.body()),
            });
        }
    }
    (name, tasks)
}

/// A JSON job (`POST /v1/jobs` body): `Task.Config` as written.
fn json_job_tasks(path: &Path) -> (String, Vec<JobTask>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let root: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let job = &root["Job"];
    let mut tasks = Vec::new();
    for g in job["TaskGroups"].as_array().expect("TaskGroups") {
        for t in g["Tasks"].as_array().expect("Tasks") {
            tasks.push(JobTask {
                group: g["Name"].as_str().unwrap_or_default().to_string(),
                name: t["Name"].as_str().unwrap_or_default().to_string(),
                config: t["Config"].as_object().cloned().unwrap_or_default(),
            });
        }
    }
    (job["ID"].as_str().expect("job ID").to_string(), tasks)
}

fn task_named<'a>(tasks: &'a [JobTask], name: &str) -> &'a JobTask {
    tasks.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no task {name}"))
}

/// Points a task config (either form) at a test server and, for a src task, at a test schema.
fn retarget(config: &mut Map<String, Value>, s: &Servers, port: u16, schema: Option<&str>) {
    let conn = config.get_mut("ConnectionConfig").expect("ConnectionConfig");
    let obj = match conn {
        Value::Array(items) => items.get_mut(0).and_then(Value::as_object_mut),
        Value::Object(m) => Some(m),
        _ => None,
    }
    .expect("ConnectionConfig object");
    obj.insert("Host".into(), json!(s.host));
    obj.insert("Port".into(), json!(port));
    obj.insert("User".into(), json!(s.user));
    obj.insert("Password".into(), json!(s.password));
    if let Some(schema) = schema {
        config.insert("ReplicateDoDb".into(), json!([{ "TableSchema": schema }]));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// RPC helpers.

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

fn task_config(job: &str, group: &str, name: &str, msgpack: Vec<u8>) -> drivers::TaskConfig {
    let alloc_id = unique("alloc").replace('_', "-");
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    // Nomad hands the task FIFOs read by logmon; plain files stand in for them here.
    let log_dir = std::env::temp_dir().join(format!("dtle-harness-{alloc_id}"));
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let stdout_path = log_dir.join(format!("{name}.stdout"));
    let stderr_path = log_dir.join(format!("{name}.stderr"));
    std::fs::write(&stdout_path, b"").expect("stdout file");
    std::fs::write(&stderr_path, b"").expect("stderr file");
    drivers::TaskConfig {
        stdout_path: stdout_path.display().to_string(),
        stderr_path: stderr_path.display().to_string(),
        id: format!("{alloc_id}/{name}/{nanos:08x}"),
        name: name.to_string(),
        msgpack_driver_config: msgpack,
        task_group_name: group.to_string(),
        job_name: job.to_string(),
        job_id: job.to_string(),
        alloc_id,
        namespace: "default".to_string(),
        node_name: "harness".to_string(),
        ..Default::default()
    }
}

async fn task_spec(p: &Plugin) -> hclspec::Spec {
    p.driver()
        .task_config_schema(drivers::TaskConfigSchemaRequest {})
        .await
        .expect("TaskConfigSchema")
        .into_inner()
        .spec
        .expect("spec")
}

async fn plugin_spec(p: &Plugin) -> hclspec::Spec {
    p.base().config_schema(base::ConfigSchemaRequest {}).await.expect("ConfigSchema").into_inner().spec.expect("spec")
}

/// SetConfig as the long-lived process gets it (with `nomad_config`).
async fn set_config(p: &Plugin, config: Value) {
    let spec = plugin_spec(p).await;
    let body = config.as_object().cloned().unwrap_or_default();
    let bytes = msgpack(&hcldec(&spec, &body, true).expect("plugin config decodes with the spec"));
    p.base()
        .set_config(base::SetConfigRequest {
            msgpack_config: bytes,
            nomad_config: Some(base::NomadConfig {
                driver: Some(base::NomadDriverConfig {
                    client_max_port: 14512,
                    client_min_port: 14000,
                    topology: None,
                }),
            }),
            plugin_api_version: "v0.1.0".into(),
        })
        .await
        .expect("SetConfig");
}

/// `Some(flag)` when the status carries a RecoverableError detail.
fn recoverable_flag(status: &tonic::Status) -> Option<bool> {
    if status.details().is_empty() {
        return None;
    }
    let st: RpcStatus =
        prost::Message::decode(status.details()).expect("grpc-status-details-bin is a google.rpc.Status");
    assert_eq!(st.code, status.code() as i32, "embedded code equals the status code");
    let any = st.details.first()?;
    assert_eq!(any.type_url, RECOVERABLE_ERROR_TYPE_URL);
    let re: structs::RecoverableError = prost::Message::decode(any.value.as_slice()).expect("RecoverableError");
    Some(re.recoverable)
}

fn attr_str(a: &structs::Attribute) -> String {
    match &a.value {
        Some(structs::attribute::Value::StringVal(s)) => s.clone(),
        Some(structs::attribute::Value::BoolVal(b)) => b.to_string(),
        Some(structs::attribute::Value::IntVal(i)) => i.to_string(),
        Some(structs::attribute::Value::FloatVal(f)) => f.to_string(),
        None => String::new(),
    }
}

/// The hclspec holds every field of the table, with the table's default (recursively).
fn check_spec_fields(spec: &hclspec::Spec, fields: &[FieldSpec], path: &str) {
    let Some(S::Object(obj)) = &spec.block else { panic!("{path}: not an object spec") };
    assert_eq!(obj.attributes.len(), fields.len(), "{path}: one spec entry per field");
    for f in fields {
        let at = format!("{path}{}", f.name);
        let s = obj.attributes.get(f.name).unwrap_or_else(|| panic!("{at} missing from the hclspec"));
        match (&f.kind, s.block.as_ref()) {
            (FieldKind::Object(nested), Some(S::BlockValue(b))) => {
                assert_eq!(b.name, f.name);
                check_spec_fields(b.nested.as_deref().expect("nested"), nested, &format!("{at}."));
            }
            (FieldKind::List(FieldKind::Object(nested)), Some(S::BlockList(b))) => {
                assert_eq!(b.name, f.name);
                assert!(f.default.hcl_literal().is_none_or(|l| l == "[]"), "{at}: a block list defaults to []");
                check_spec_fields(b.nested.as_deref().expect("nested"), nested, &format!("{at}[]."));
            }
            (kind, Some(S::Default(d))) => {
                let lit = match d.default.as_deref().and_then(|s| s.block.as_ref()) {
                    Some(S::Literal(l)) => l.value.clone(),
                    other => panic!("{at}: default is {other:?}"),
                };
                assert_eq!(Some(lit), f.default.hcl_literal(), "{at}: default");
                match d.primary.as_deref().and_then(|s| s.block.as_ref()) {
                    Some(S::Attr(a)) => {
                        assert_eq!(a.name, f.name, "{at}: a Default's attribute carries its name");
                        assert_eq!(a.r#type, kind.cty_type(), "{at}: type");
                    }
                    other => panic!("{at}: primary is {other:?}"),
                }
            }
            (kind, Some(S::Attr(a))) => {
                assert!(f.default.hcl_literal().is_none(), "{at}: has a default but no Default spec");
                assert_eq!(a.name, f.name);
                assert_eq!(a.r#type, kind.cty_type(), "{at}: type");
                assert_eq!(a.required, f.required, "{at}: required");
            }
            (kind, other) => panic!("{at}: kind {kind:?} has spec {other:?}"),
        }
    }
}

/// A port on which nothing listens.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

// ---------------------------------------------------------------------------------------------------------------
// Tests that need no servers.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_schemas_config_fingerprint_shutdown() {
    let sock_dir = tempfile::tempdir().expect("tempdir");
    let p = Plugin::launch(&[("PLUGIN_UNIX_SOCKET_DIR", sock_dir.path().to_str().unwrap())]).await;
    assert!(p.socket.starts_with(sock_dir.path()), "PLUGIN_UNIX_SOCKET_DIR honoured: {:?}", p.socket);

    // go-plugin side services.
    let mut health = tonic_health::pb::health_client::HealthClient::new(p.channel.clone());
    let h = health.check(tonic_health::pb::HealthCheckRequest { service: "plugin".into() }).await.expect("health");
    assert_eq!(h.into_inner().status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    let mut stdio = GrpcStdioClient::new(p.channel.clone()).stream_stdio(()).await.expect("StreamStdio").into_inner();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stdio.message()).await.is_err(),
        "the stdio stream stays open and quiet"
    );

    // Fingerprint process: PluginInfo, ConfigSchema.
    let info = p.base().plugin_info(base::PluginInfoRequest {}).await.expect("PluginInfo").into_inner();
    assert_eq!(info.r#type, base::PluginType::Driver as i32);
    assert_eq!(info.name, "dtle");
    assert!(info.plugin_api_versions.contains(&"v0.1.0".to_string()));
    assert_eq!(info.plugin_version, env!("CARGO_PKG_VERSION"));
    let pspec = plugin_spec(&p).await;
    let Some(S::Object(pobj)) = &pspec.block else { panic!("plugin spec is not an object") };
    for f in PLUGIN_CONFIG_FIELDS {
        assert!(pobj.attributes.contains_key(f.name), "plugin config field {} in the spec", f.name);
    }

    // Validation process: SetConfig twice without nomad_config, from an agent `config {}` block.
    let agent_block = json!({"nats": ["nats://127.0.0.1:4222"], "consul": "", "log_level": "debug"});
    let bytes = msgpack(&hcldec(&pspec, agent_block.as_object().unwrap(), true).unwrap());
    for _ in 0..2 {
        p.base()
            .set_config(base::SetConfigRequest {
                msgpack_config: bytes.clone(),
                nomad_config: None,
                plugin_api_version: "v0.1.0".into(),
            })
            .await
            .expect("SetConfig (validation)");
    }
    // An empty config (no `config {}` block) means the defaults.
    p.base().set_config(base::SetConfigRequest::default()).await.expect("SetConfig without config");
    // A bad value names the field.
    let bad = msgpack(&hcldec(&pspec, json!({"compression": "brotli"}).as_object().unwrap(), true).unwrap());
    let e = p
        .base()
        .set_config(base::SetConfigRequest { msgpack_config: bad, ..Default::default() })
        .await
        .expect_err("bad compression");
    assert!(e.message().contains("compression"), "{}", e.message());

    // Long-lived process: SetConfig with nomad_config, Init, TaskConfigSchema, Capabilities, Fingerprint.
    // Stand-ins for Consul and NATS: the fingerprint probes their TCP ports.
    let consul = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nats = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    set_config(
        &p,
        json!({
            "consul": consul.local_addr().unwrap().to_string(),
            "nats": [format!("nats://{}", nats.local_addr().unwrap())],
        }),
    )
    .await;
    p.driver().init(drivers::InitRequest {}).await.expect("Init");
    let tspec = task_spec(&p).await;
    check_spec_fields(&tspec, TASK_CONFIG_FIELDS, "");
    let caps = p.driver().capabilities(drivers::CapabilitiesRequest {}).await.expect("Capabilities").into_inner();
    let caps = caps.capabilities.expect("capabilities");
    assert_eq!(caps.fs_isolation, drivers::driver_capabilities::FsIsolation::None as i32);
    assert!(caps
        .network_isolation_modes
        .contains(&(drivers::network_isolation_spec::NetworkIsolationMode::Host as i32)));

    let mut fp = p.driver().fingerprint(drivers::FingerprintRequest {}).await.expect("Fingerprint").into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), fp.message()).await.expect("first fingerprint at once");
    let first = first.expect("stream ok").expect("a message");
    assert_eq!(first.health, drivers::fingerprint_response::HealthState::Healthy as i32, "{first:?}");
    assert_eq!(first.attributes.get("driver.dtle").map(attr_str).as_deref(), Some("true"));
    assert_eq!(first.attributes.get("driver.dtle.version").map(attr_str).as_deref(), Some(env!("CARGO_PKG_VERSION")));
    assert!(first.attributes.get("driver.dtle.full_version").map(attr_str).is_some_and(|v| !v.is_empty()));

    // Consul goes away: a new SetConfig re-sends the fingerprint, now unhealthy with the reason.
    drop(consul);
    let dead = format!("127.0.0.1:{}", free_port());
    set_config(&p, json!({"consul": dead, "nats": [format!("nats://{}", nats.local_addr().unwrap())]})).await;
    let next = tokio::time::timeout(Duration::from_secs(10), fp.message()).await.expect("fingerprint after SetConfig");
    let next = next.expect("stream ok").expect("a message");
    assert_eq!(next.health, drivers::fingerprint_response::HealthState::Unhealthy as i32);
    assert!(next.health_description.contains("Consul") && next.health_description.contains(&dead), "{next:?}");
    // The stream stays open.
    assert!(tokio::time::timeout(Duration::from_millis(300), fp.message()).await.is_err());

    // Unknown tasks: Stop/Destroy OK, Wait/Inspect/Stats not found.
    let d = p.driver();
    d.clone()
        .stop_task(drivers::StopTaskRequest { task_id: "nope".into(), ..Default::default() })
        .await
        .expect("StopTask unknown");
    d.clone()
        .destroy_task(drivers::DestroyTaskRequest { task_id: "nope".into(), force: true })
        .await
        .expect("DestroyTask unknown");
    let e =
        d.clone().wait_task(drivers::WaitTaskRequest { task_id: "nope".into() }).await.expect_err("WaitTask unknown");
    assert_eq!(e.code(), tonic::Code::NotFound);

    // Logs: hclog JSON lines on stderr.
    let log = p.stderr_text();
    let first_line = log.lines().next().expect("some log line");
    let obj: Value = serde_json::from_str(first_line).unwrap_or_else(|e| panic!("not JSON ({e}): {first_line}"));
    assert!(obj["@level"].is_string() && obj["@message"].is_string(), "{first_line}");
    let ts = obj["@timestamp"].as_str().expect("@timestamp");
    assert_eq!(ts.len(), "2006-01-02T15:04:05.000000Z".len(), "{ts}");
    assert!(log.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()), "every stderr line is JSON:\n{log}");

    let status = p.shutdown().await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_jobs_encode_the_same_from_hcl_and_json() {
    let p = Plugin::launch(&[]).await;
    let spec = task_spec(&p).await;
    for name in ["job1", "job_src1", "job_src2", "job_dst1"] {
        let hcl_path = examples_dir().join(format!("{name}.hcl"));
        let json_path = examples_dir().join(format!("{name}.json"));
        // Valid dtle jobs for `dtle run` as well.
        for path in [&hcl_path, &json_path] {
            dtle::config::parse_job_file(path)
                .and_then(|j| j.resolve())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        let (hname, htasks) = hcl_job_tasks(&hcl_path);
        let (jname, jtasks) = json_job_tasks(&json_path);
        assert_eq!(hname, jname);
        assert_eq!(htasks.len(), 2, "{name}: a src and a dest task");
        for ht in &htasks {
            let jt = task_named(&jtasks, &ht.name);
            let from_hcl = hcldec(&spec, &ht.config, true).unwrap_or_else(|e| panic!("{name}/{}: {e}", ht.name));
            let from_json = hcldec(&spec, &jt.config, true).unwrap_or_else(|e| panic!("{name}/{}: {e}", jt.name));
            assert_eq!(msgpack(&from_hcl), msgpack(&from_json), "{name}/{}: HCL and JSON forms differ", ht.name);
        }
    }
    assert!(p.shutdown().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_is_a_task_failure_naming_the_field() {
    let p = Plugin::launch(&[]).await;
    set_config(&p, json!({"consul": "", "nats": ["nats://127.0.0.1:4222"]})).await;
    let spec = task_spec(&p).await;
    let (job, tasks) = hcl_job_tasks(&examples_dir().join("job1.hcl"));
    let src = task_named(&tasks, "src");

    // An unknown field: Nomad's own decoding rejects it before the plugin; a plugin given one must too.
    let mut config = src.config.clone();
    config.insert("ChunkSiz".into(), json!(500));
    assert!(hcldec(&spec, &config, true).unwrap_err().contains("ChunkSiz"), "Nomad's decoding rejects it too");
    let bytes = msgpack(&hcldec(&spec, &config, false).unwrap());
    let e = p
        .driver()
        .start_task(drivers::StartTaskRequest { task: Some(task_config(&job, "src", "src", bytes)) })
        .await
        .expect_err("unknown field");
    assert_ne!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert_eq!(recoverable_flag(&e), None, "a definite error is not recoverable: {e:?}");
    assert!(e.message().contains("ChunkSiz") && e.message().contains("ChunkSize"), "{}", e.message());

    // A value the spec accepts but dtle does not: an unknown SqlFilter name.
    let mut config = src.config.clone();
    config.insert("SqlFilter".into(), json!(["NoDDL", "NoSuchFilter"]));
    let bytes = msgpack(&hcldec(&spec, &config, true).unwrap());
    let e = p
        .driver()
        .start_task(drivers::StartTaskRequest { task: Some(task_config(&job, "src", "src", bytes)) })
        .await
        .expect_err("unknown SqlFilter");
    assert!(e.message().contains("SqlFilter") && e.message().contains("NoSuchFilter"), "{}", e.message());
    assert_eq!(recoverable_flag(&e), None);

    // A task name without a dtle role.
    let bytes = msgpack(&hcldec(&spec, &src.config, true).unwrap());
    let e = p
        .driver()
        .start_task(drivers::StartTaskRequest { task: Some(task_config(&job, "src", "worker", bytes)) })
        .await
        .expect_err("bad task name");
    assert!(e.message().contains("worker") && e.message().contains("\"src\""), "{}", e.message());

    // A decimal (go-cty writes 0.5-like numbers it cannot hold exactly as strings) in an integer field.
    let mut raw = BTreeMap::new();
    raw.insert("ChunkSize".to_string(), Cty::Str("0.5".into()));
    let e = p
        .driver()
        .start_task(drivers::StartTaskRequest { task: Some(task_config(&job, "src", "src", msgpack(&Cty::Obj(raw)))) })
        .await
        .expect_err("not an integer");
    assert!(e.message().contains("ChunkSize"), "{}", e.message());

    // Loose shapes are accepted: an object attribute as a one-element list (HCL jobs with loosely typed fields),
    // numbers as strings. The config decodes; the start then fails only on the unreachable source.
    let port = free_port();
    let mut conn = BTreeMap::new();
    conn.insert("Host".to_string(), Cty::Str("127.0.0.1".into()));
    conn.insert("Port".to_string(), Cty::Str(port.to_string()));
    conn.insert("User".to_string(), Cty::Str("u".into()));
    conn.insert("Password".to_string(), Cty::Str("p".into()));
    let mut raw = BTreeMap::new();
    raw.insert("ConnectionConfig".to_string(), Cty::List(vec![Cty::Obj(conn)]));
    raw.insert("ChunkSize".to_string(), Cty::Str("500".into()));
    raw.insert("ReplicateDoDb".to_string(), Cty::Null);
    let e = p
        .driver()
        .start_task(drivers::StartTaskRequest { task: Some(task_config(&job, "src", "src", msgpack(&Cty::Obj(raw)))) })
        .await
        .expect_err("source down");
    assert_eq!(recoverable_flag(&e), Some(true), "decoded, then the source is unreachable: {e:?}");
    assert!(p.shutdown().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_source_is_recoverable() {
    let p = Plugin::launch(&[]).await;
    set_config(&p, json!({"consul": "", "nats": ["nats://127.0.0.1:4222"]})).await;
    let spec = task_spec(&p).await;
    let (job, tasks) = json_job_tasks(&examples_dir().join("job1.json"));
    let mut config = task_named(&tasks, "src").config.clone();
    let port = free_port();
    let s = Servers::from_env();
    retarget(&mut config, &s, port, Some("nothing_here"));
    let bytes = msgpack(&hcldec(&spec, &config, true).unwrap());
    let e = p
        .driver()
        .start_task(drivers::StartTaskRequest { task: Some(task_config(&job, "src", "src", bytes)) })
        .await
        .expect_err("source down");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert_eq!(recoverable_flag(&e), Some(true), "{e:?}");
    assert!(e.message().contains(&format!(":{port}")), "{}", e.message());
    assert!(p.shutdown().await.success());
}

// ---------------------------------------------------------------------------------------------------------------
// Replication through the plugin (MariaDB + NATS; Consul when available).

struct Replication {
    servers: Servers,
    nats: String,
    consul: Option<String>,
    schema: String,
    job: String,
    /// The plugin's `api_addr` (status API, and metrics: `publish_metrics = true`).
    api_addr: String,
    _data: tempfile::TempDir,
    plugin: Plugin,
}

impl Replication {
    async fn new(prefix: &str) -> Option<Replication> {
        let servers = servers().await?;
        let nats = nats_url()?;
        let consul = std::env::var("DTLE_TEST_CONSUL_ADDR").ok().filter(|v| !v.trim().is_empty());
        let schema = unique(prefix);
        let job = schema.replace('_', "-");
        let data = tempfile::tempdir().expect("tempdir");
        let plugin = Plugin::launch(&[]).await;
        let api_addr = format!("127.0.0.1:{}", free_port());
        set_config(
            &plugin,
            json!({
                "nats": [nats.clone()],
                "consul": consul.clone().unwrap_or_default(),
                "data_dir": data.path().to_str().unwrap(),
                "log_level": "debug",
                "api_addr": api_addr.clone(),
                "publish_metrics": true,
            }),
        )
        .await;
        let mut src = servers.src_conn().await;
        let mut dst = servers.dst_conn().await;
        reset_source_schema(&mut src, &schema).await;
        reset_target(&mut dst, &schema, &job).await;
        exec(&mut src, &format!("CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v VARCHAR(32))")).await;
        exec(
            &mut src,
            &format!("INSERT INTO `{schema}`.t SELECT seq, CONCAT('row ', seq) FROM `{schema}`.seq_1_to_100"),
        )
        .await;
        Some(Replication { servers, nats, consul, schema, job, api_addr, _data: data, plugin })
    }

    async fn start(&self, config: &Map<String, Value>, group: &str, name: &str) -> drivers::TaskHandle {
        start_task_on(&self.plugin, &self.job, config, group, name).await
    }

    async fn wait_rows(&self, n: u64) {
        let mut dst = self.servers.dst_conn().await;
        let table = format!("`{}`.t", self.schema);
        let deadline = Instant::now() + DEADLINE;
        loop {
            let c = count_if_exists(&mut dst, &table).await;
            if c == n {
                return;
            }
            if Instant::now() > deadline {
                panic!("target has {c} of {n} rows; plugin log:\n{}", tail(&self.plugin.stderr_text(), 60));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn cleanup(self) {
        let mut src = self.servers.src_conn().await;
        let mut dst = self.servers.dst_conn().await;
        exec(&mut src, &format!("DROP DATABASE IF EXISTS `{}`", self.schema)).await;
        reset_target(&mut dst, &self.schema, &self.job).await;
        if let Some(c) = &self.consul {
            consul_delete_tree(c, &format!("dtle/{}", self.job));
        }
        let status = self.plugin.shutdown().await;
        assert!(status.success());
    }
}

/// StartTask of `config` (a task of `job`) on `plugin`, checked as Nomad checks the handle.
async fn start_task_on(
    plugin: &Plugin,
    job: &str,
    config: &Map<String, Value>,
    group: &str,
    name: &str,
) -> drivers::TaskHandle {
    let spec = task_spec(plugin).await;
    let bytes = msgpack(&hcldec(&spec, config, true).unwrap_or_else(|e| panic!("{name}: {e}")));
    let cfg = task_config(job, group, name, bytes);
    let resp = plugin
        .driver()
        .start_task(drivers::StartTaskRequest { task: Some(cfg.clone()) })
        .await
        .unwrap_or_else(|e| panic!("StartTask {name}: {e:?}\n{}", tail(&plugin.stderr_text(), 40)))
        .into_inner();
    let handle = resp.handle.expect("a handle");
    assert_eq!(handle.version, 1);
    assert_eq!(handle.state, drivers::TaskState::Running as i32);
    assert_eq!(handle.config.as_ref(), Some(&cfg), "the handle echoes the task config");
    let state: Value = serde_json::from_slice(&handle.driver_state).expect("driver_state is JSON");
    assert_eq!(state["task_id"], json!(cfg.id));
    handle
}

fn task_id(h: &drivers::TaskHandle) -> String {
    h.config.as_ref().map(|c| c.id.clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn src_and_dest_tasks_replicate_then_stop_recover_destroy() {
    let Some(r) = Replication::new("plugin_e2e").await else { return };
    let d = r.plugin.driver();
    let mut fp = d.clone().fingerprint(drivers::FingerprintRequest {}).await.expect("Fingerprint").into_inner();
    let first = fp.message().await.expect("fingerprint").expect("a message");
    assert_eq!(
        first.health,
        drivers::fingerprint_response::HealthState::Healthy as i32,
        "NATS {} / Consul {:?}: {first:?}",
        r.nats,
        r.consul
    );
    let mut events = d.clone().task_events(drivers::TaskEventsRequest {}).await.expect("TaskEvents").into_inner();

    // The dest task from the JSON job, the src task from the HCL job (3.x shape: each has what it needs).
    let (_, jtasks) = json_job_tasks(&examples_dir().join("job1.json"));
    let (_, htasks) = hcl_job_tasks(&examples_dir().join("job1.hcl"));
    let (dest_task, src_task) = (task_named(&jtasks, "dest"), task_named(&htasks, "src"));
    let mut dest_cfg = dest_task.config.clone();
    retarget(&mut dest_cfg, &r.servers, r.servers.dst, None);
    let mut src_cfg = src_task.config.clone();
    retarget(&mut src_cfg, &r.servers, r.servers.src, Some(&r.schema));
    let dest = r.start(&dest_cfg, &dest_task.group, &dest_task.name).await;
    let src = r.start(&src_cfg, &src_task.group, &src_task.name).await;
    let (src_id, dest_id) = (task_id(&src), task_id(&dest));

    // Nomad waits on each task at once.
    let src_wait = tokio::spawn({
        let mut d = d.clone();
        let id = src_id.clone();
        async move { d.wait_task(drivers::WaitTaskRequest { task_id: id }).await }
    });

    r.wait_rows(100).await;
    let mut src_conn = r.servers.src_conn().await;
    exec(&mut src_conn, &format!("INSERT INTO `{0}`.t SELECT seq, 'more' FROM `{0}`.seq_101_to_150", r.schema)).await;
    exec(&mut src_conn, &format!("UPDATE `{}`.t SET v = 'changed' WHERE id <= 10", r.schema)).await;
    r.wait_rows(150).await;
    let mut dst_conn = r.servers.dst_conn().await;
    wait_tables_equal_plain(&mut src_conn, &mut dst_conn, &format!("`{}`.t", r.schema), &r.plugin).await;

    // The plugin's api_addr: Prometheus metrics (publish_metrics) and the status API, as `dtle run` serves them.
    let (code, body) = http_request(&r.api_addr, "GET", "/metrics").expect("GET /metrics on api_addr");
    let metrics = String::from_utf8_lossy(&body);
    assert_eq!(code, 200, "{metrics}");
    assert!(metrics.contains(&format!("dtle_applied_transactions_total{{job=\"{}\"}}", r.job)), "{metrics}");
    let (code, body) = http_request(&r.api_addr, "GET", "/v1/status").expect("GET /v1/status on api_addr");
    assert_eq!(code, 200);
    let status: Value = serde_json::from_slice(&body).expect("the status is JSON");
    let job_status = status.as_array().and_then(|jobs| jobs.iter().find(|j| j["job"] == json!(r.job))).cloned();
    let job_status = job_status.unwrap_or_else(|| panic!("no status of {} in {status}", r.job));
    assert!(job_status["applied_transactions"].as_u64().is_some_and(|n| n > 0), "{job_status}");
    assert_eq!(job_status["full_copy"]["rows"], json!(100), "{job_status}");
    // `nomad alloc signal -s stats`: Go dtle answers with the status JSON as the error text.
    let stats = d
        .clone()
        .signal_task(drivers::SignalTaskRequest { task_id: src_id.clone(), signal: "stats".into() })
        .await
        .expect_err("stats answers through the error text");
    let stats: Value = serde_json::from_str(stats.message()).expect("stats JSON");
    assert_eq!((stats["job"].clone(), stats["role"].clone()), (json!(r.job), json!("src")), "{stats}");

    // TaskStats: timestamp, CPU and memory.
    let mut stats = d
        .clone()
        .task_stats(drivers::TaskStatsRequest {
            task_id: src_id.clone(),
            collection_interval: Some(prost_types::Duration { seconds: 0, nanos: 200_000_000 }),
        })
        .await
        .expect("TaskStats")
        .into_inner();
    for _ in 0..2 {
        let s = stats.message().await.expect("stats").expect("a sample").stats.expect("stats");
        assert_eq!(s.id, src_id);
        assert!(s.timestamp.is_some());
        let usage = s.agg_resource_usage.expect("agg_resource_usage");
        assert!(usage.cpu.is_some());
        let task_rss = usage.memory.expect("memory").rss;
        assert!(task_rss > 0);
        // Two tasks run in the plugin process: each reports its share, not the whole process.
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", r.plugin.child.id())).expect("statm");
        let process_rss = statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).expect("rss") * 4096;
        assert!(task_rss * 4 < process_rss * 3, "task {task_rss} of process {process_rss}");
    }
    drop(stats);

    // InspectTask.
    let inspect =
        d.clone().inspect_task(drivers::InspectTaskRequest { task_id: src_id.clone() }).await.expect("Inspect");
    let status = inspect.into_inner().task.expect("status");
    assert_eq!(status.state, drivers::TaskState::Running as i32);
    assert!(status.started_at.is_some() && status.completed_at.is_some());
    // Nomad's Go client dereferences the result (`exitResultFromProto`) without a nil check: a running task must
    // carry one too (zeros), as Go plugins send it.
    let running_result = status.result.expect("InspectTask of a running task carries an ExitResult");
    assert_eq!((running_result.exit_code, running_result.signal, running_result.oom_killed), (0, 0, false));

    // TaskEvents: the start of each task was reported.
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(seen.contains_key(&src_id) && seen.contains_key(&dest_id)) && Instant::now() < deadline {
        if let Ok(Ok(Some(ev))) = tokio::time::timeout(Duration::from_secs(1), events.message()).await {
            assert!(ev.timestamp.is_some());
            seen.entry(ev.task_id.clone()).or_default().push(ev.message.clone());
        }
    }
    assert!(seen.get(&src_id).is_some_and(|m| m.iter().any(|m| m.contains("started"))), "events: {seen:?}");
    assert!(seen.contains_key(&dest_id), "events: {seen:?}");

    // RecoverTask with the handle Nomad stored: the task still runs here, so it is reattached.
    d.clone()
        .recover_task(drivers::RecoverTaskRequest { task_id: String::new(), handle: Some(src.clone()) })
        .await
        .expect("RecoverTask of a running task");
    // A handle from a plugin process that is gone: a clear error, so Nomad restarts the task.
    let mut gone = src.clone();
    if let Some(c) = gone.config.as_mut() {
        c.id = format!("{}-old", c.id);
    }
    let e = d
        .clone()
        .recover_task(drivers::RecoverTaskRequest { task_id: String::new(), handle: Some(gone) })
        .await
        .expect_err("unknown task");
    assert!(e.message().contains("not running in this plugin process"), "{}", e.message());
    assert!(e.message().contains("resumes from the saved position"), "{}", e.message());

    // SignalTask: only stop signals mean something to a dtle task.
    let e = d
        .clone()
        .signal_task(drivers::SignalTaskRequest { task_id: src_id.clone(), signal: "SIGHUP".into() })
        .await
        .expect_err("SIGHUP");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("SIGTERM"), "{}", e.message());

    // StopTask: graceful, within the timeout; WaitTask then reports a clean exit.
    let timeout = Some(prost_types::Duration { seconds: 20, nanos: 0 });
    let t0 = Instant::now();
    d.clone()
        .stop_task(drivers::StopTaskRequest { task_id: src_id.clone(), timeout, signal: String::new() })
        .await
        .expect("StopTask src");
    assert!(t0.elapsed() < Duration::from_secs(20), "the src task stopped within the timeout");
    let waited = src_wait.await.expect("join").expect("WaitTask").into_inner();
    let exit = waited.result.expect("exit result");
    assert_eq!((exit.exit_code, exit.signal, waited.err.as_str()), (0, 0, ""), "clean stop");
    d.clone()
        .stop_task(drivers::StopTaskRequest { task_id: dest_id.clone(), timeout, signal: "SIGINT".into() })
        .await
        .expect("StopTask dest");
    let dest_exit = d.clone().wait_task(drivers::WaitTaskRequest { task_id: dest_id.clone() }).await.expect("WaitTask");
    assert_eq!(dest_exit.into_inner().result.map(|r| r.exit_code), Some(0));
    let inspect =
        d.clone().inspect_task(drivers::InspectTaskRequest { task_id: src_id.clone() }).await.expect("Inspect");
    let exited = inspect.into_inner().task.expect("status");
    assert_eq!(exited.state, drivers::TaskState::Exited as i32);
    assert!(exited.result.is_some(), "an exited task carries its ExitResult");

    // Positions: in Consul when configured.
    if let Some(c) = &r.consul {
        let stage = consul_get_raw(c, &format!("dtle/{}/JobStage", r.job));
        assert!(stage.is_some(), "position saved in Consul under dtle/{}/", r.job);
    }

    // What `nomad alloc logs` shows: the task's log lines in the stdout Nomad gave it.
    let src_stdout = &src.config.as_ref().expect("config").stdout_path;
    let logged = std::fs::read_to_string(src_stdout).expect("src stdout");
    assert!(logged.contains("full copy"), "the src task's log lines reach its stdout: {logged:?}");

    // DestroyTask (Nomad always forces), twice: idempotent; the ids are then unknown.
    for id in [&src_id, &dest_id, &src_id] {
        d.clone()
            .destroy_task(drivers::DestroyTaskRequest { task_id: id.clone(), force: true })
            .await
            .expect("DestroyTask");
    }
    let e = d.clone().wait_task(drivers::WaitTaskRequest { task_id: src_id.clone() }).await.expect_err("gone");
    assert_eq!(e.code(), tonic::Code::NotFound);
    if std::env::var_os("DTLE_TEST_SHOW_LOG").is_some() {
        println!("{}\nevents: {seen:#?}", r.plugin.stderr_text());
    }
    r.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn v4_shape_dest_takes_the_target_of_its_src_task() {
    let Some(r) = Replication::new("plugin_v4").await else { return };
    let d = r.plugin.driver();
    // deploy/examples/job.json: the 4.x shape (everything in the src task, DestType in the dest task).
    let (_, tasks) = json_job_tasks(&examples_dir().join("job.json"));
    let (src_task, dest_task) = (task_named(&tasks, "src"), task_named(&tasks, "dest"));
    let mut src_cfg = src_task.config.clone();
    for (key, port) in [("SrcConnectionConfig", r.servers.src), ("DestConnectionConfig", r.servers.dst)] {
        let c = src_cfg.get_mut(key).and_then(Value::as_object_mut).expect(key);
        c.insert("Host".into(), json!(r.servers.host));
        c.insert("Port".into(), json!(port));
        c.insert("User".into(), json!(r.servers.user));
        c.insert("Password".into(), json!(r.servers.password));
    }
    src_cfg.insert("ReplicateDoDb".into(), json!([{ "TableSchema": r.schema }]));
    let spec = task_spec(&r.plugin).await;

    // The dest task first: its target is in the src task, which is not running yet: recoverable.
    let bytes = msgpack(&hcldec(&spec, &dest_task.config, true).expect("dest config"));
    let e = d
        .clone()
        .start_task(drivers::StartTaskRequest { task: Some(task_config(&r.job, &dest_task.group, "dest", bytes)) })
        .await
        .expect_err("no src task yet");
    assert_eq!(recoverable_flag(&e), Some(true), "{e:?}");
    assert!(e.message().contains("ConnectionConfig"), "the message says how to fix it: {}", e.message());

    // Nomad's restart: the src task runs now, so the dest task takes the target from it.
    let src = r.start(&src_cfg, &src_task.group, &src_task.name).await;
    let dest = r.start(&dest_task.config, &dest_task.group, &dest_task.name).await;
    r.wait_rows(100).await;
    for h in [&src, &dest] {
        let id = task_id(h);
        d.clone()
            .stop_task(drivers::StopTaskRequest {
                task_id: id.clone(),
                timeout: Some(prost_types::Duration { seconds: 20, nanos: 0 }),
                signal: String::new(),
            })
            .await
            .expect("StopTask");
        let w = d.clone().wait_task(drivers::WaitTaskRequest { task_id: id.clone() }).await.expect("WaitTask");
        assert_eq!(w.into_inner().result.map(|x| x.exit_code), Some(0));
        d.clone().destroy_task(drivers::DestroyTaskRequest { task_id: id, force: true }).await.expect("Destroy");
    }
    r.cleanup().await;
}

/// Waits until a table has the same rows on both sides.
async fn wait_tables_equal_plain(src: &mut mysql_async::Conn, dst: &mut mysql_async::Conn, table: &str, p: &Plugin) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match table_diff(src, dst, table, Some("id")).await {
            None => return,
            Some(diff) if Instant::now() > deadline => {
                panic!("{table} differs: {diff}\nplugin log:\n{}", tail(&p.stderr_text(), 40))
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Issue 15: Go dtle's cluster mode with the seed's agent config — `nats_bind`/`nats_advertise`, no `nats` list —
/// on two plugin processes as two nodes: each serves NATS itself and is healthy, the dest task publishes its node's
/// address under `dtle/<job>/NatsAddr`, the src on the other node finds it there, and when the dest is rescheduled
/// to the src's node the src follows the key; nothing is lost or duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_with_the_seed_agent_config_meet_through_consul_and_follow_a_moved_dest() {
    let Some((servers, consul, schema, job, mut src, mut dst)) = cluster_job("plugin_nodes").await else { return };
    exec(&mut src, &format!("CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v VARCHAR(32))")).await;
    exec(&mut src, &format!("INSERT INTO `{schema}`.t SELECT seq, CONCAT('row ', seq) FROM `{schema}`.seq_1_to_100"))
        .await;

    // Two nodes: the seed's agent config, each with its own NATS address.
    let data = tempfile::tempdir().expect("tempdir");
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let (plugin, bind) = seed_config_node(&consul, &data.path().join(name)).await;
        let mut fp =
            plugin.driver().fingerprint(drivers::FingerprintRequest {}).await.expect("Fingerprint").into_inner();
        let first = fp.message().await.expect("fingerprint").expect("a message");
        assert_eq!(
            first.health,
            drivers::fingerprint_response::HealthState::Healthy as i32,
            "node {name}: {first:?}\n{}",
            tail(&plugin.stderr_text(), 30)
        );
        nodes.push((plugin, bind));
    }
    let (_, jtasks) = json_job_tasks(&examples_dir().join("job1.json"));
    let (_, htasks) = hcl_job_tasks(&examples_dir().join("job1.hcl"));
    let (dest_task, src_task) = (task_named(&jtasks, "dest"), task_named(&htasks, "src"));
    let mut dest_cfg = dest_task.config.clone();
    retarget(&mut dest_cfg, &servers, servers.dst, None);
    let mut src_cfg = src_task.config.clone();
    retarget(&mut src_cfg, &servers, servers.src, Some(&schema));

    let rows = |n: u64| {
        let (servers, schema) = (servers.clone(), schema.clone());
        async move {
            let mut dst = servers.dst_conn().await;
            let table = format!("`{schema}`.t");
            let deadline = Instant::now() + DEADLINE;
            while count_if_exists(&mut dst, &table).await != n {
                assert!(Instant::now() < deadline, "the target did not reach {n} rows");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let dest_a = start_task_on(&nodes[0].0, &job, &dest_cfg, &dest_task.group, &dest_task.name).await;
    let src_b = start_task_on(&nodes[1].0, &job, &src_cfg, &src_task.group, &src_task.name).await;
    rows(100).await;
    assert_eq!(consul_get_raw(&consul, &format!("dtle/{job}/NatsAddr")).as_deref(), Some(nodes[0].1.as_str()));
    assert!(consul_get_raw(&consul, &format!("dtle/{job}/NatsSessionKey")).is_some_and(|k| k.len() == 64));
    exec(&mut src, &format!("INSERT INTO `{schema}`.t SELECT seq, 'more' FROM `{schema}`.seq_101_to_150")).await;
    rows(150).await;

    // The dest is rescheduled: node a loses it, node b starts it.
    let a = nodes[0].0.driver();
    let dest_a_id = task_id(&dest_a);
    a.clone()
        .stop_task(drivers::StopTaskRequest {
            task_id: dest_a_id.clone(),
            timeout: Some(prost_types::Duration { seconds: 10, nanos: 0 }),
            signal: "SIGINT".into(),
        })
        .await
        .expect("StopTask dest on a");
    a.clone().destroy_task(drivers::DestroyTaskRequest { task_id: dest_a_id, force: true }).await.expect("Destroy");
    exec(&mut src, &format!("INSERT INTO `{schema}`.t SELECT seq, 'moved' FROM `{schema}`.seq_151_to_200")).await;
    exec(&mut src, &format!("UPDATE `{schema}`.t SET v = 'changed' WHERE id <= 10")).await;
    let dest_b = start_task_on(&nodes[1].0, &job, &dest_cfg, &dest_task.group, &dest_task.name).await;
    rows(200).await;
    assert_eq!(consul_get_raw(&consul, &format!("dtle/{job}/NatsAddr")).as_deref(), Some(nodes[1].1.as_str()));
    wait_tables_equal_plain(&mut src, &mut dst, &format!("`{schema}`.t"), &nodes[1].0).await;
    let log_b = nodes[1].0.stderr_text();
    assert!(log_b.contains("the dest task moved"), "the src followed NatsAddr: {}", tail(&log_b, 40));

    let b = nodes[1].0.driver();
    for handle in [&src_b, &dest_b] {
        b.clone()
            .stop_task(drivers::StopTaskRequest {
                task_id: task_id(handle),
                timeout: Some(prost_types::Duration { seconds: 10, nanos: 0 }),
                signal: "SIGINT".into(),
            })
            .await
            .expect("StopTask");
    }
    exec(&mut src, &format!("DROP DATABASE IF EXISTS `{schema}`")).await;
    reset_target(&mut dst, &schema, &job).await;
    consul_delete_tree(&consul, &format!("dtle/{job}"));
    for (plugin, _) in nodes {
        assert!(plugin.shutdown().await.success());
    }
}

/// The servers, Consul, and a fresh schema and job (source schema, target and Consul keys emptied) for a cluster-mode
/// test, with connections to the source and the target; `None` when the servers are not there.
async fn cluster_job(prefix: &str) -> Option<(Servers, String, String, String, mysql_async::Conn, mysql_async::Conn)> {
    let servers = servers().await?;
    let consul = consul_addr()?;
    let schema = unique(prefix);
    let job = schema.replace('_', "-");
    let mut src = servers.src_conn().await;
    let mut dst = servers.dst_conn().await;
    reset_source_schema(&mut src, &schema).await;
    reset_target(&mut dst, &schema, &job).await;
    consul_delete_tree(&consul, &format!("dtle/{job}"));
    Some((servers, consul, schema, job, src, dst))
}

/// A node of the cluster-mode tests: a plugin process with the seed's agent config (its own NATS on `bind`).
async fn seed_config_node(consul: &str, data_dir: &std::path::Path) -> (Plugin, String) {
    let plugin = Plugin::launch(&[]).await;
    let bind = format!("127.0.0.1:{}", free_port());
    set_config(
        &plugin,
        json!({
            "nats_bind": bind.clone(),
            "nats_advertise": bind.clone(),
            "consul": consul,
            "data_dir": data_dir.to_str().unwrap(),
            "log_level": "debug",
        }),
    )
    .await;
    (plugin, bind)
}

/// Issue 15, failover shown: src and dest on two nodes under load; the dest's node is lost (kill -9 of its plugin
/// process, its NATS server with it) and the dest is started on the other node, as Nomad reschedules it; then that
/// plugin is killed too and a new plugin process takes both tasks (RecoverTask of the old handles is refused, Nomad
/// starts them anew). Every time the job continues from the target's position: nothing lost or duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_of_killed_nodes_under_load_loses_and_repeats_nothing() {
    let Some((servers, consul, schema, job, mut src, mut dst)) = cluster_job("plugin_failover").await else { return };
    exec(&mut src, &format!("CREATE TABLE `{schema}`.t (id INT PRIMARY KEY, v INT NOT NULL)")).await;
    exec(&mut src, &format!("CREATE TABLE `{schema}`.n (id INT, v INT)")).await;
    exec(&mut src, &format!("INSERT INTO `{schema}`.t SELECT seq, 0 FROM `{schema}`.seq_1_to_1000")).await;
    let data = tempfile::tempdir().expect("tempdir");
    let (mut node_a, _) = seed_config_node(&consul, &data.path().join("a")).await;
    let (mut node_b, bind_b) = seed_config_node(&consul, &data.path().join("b")).await;
    let (_, jtasks) = json_job_tasks(&examples_dir().join("job1.json"));
    let (_, htasks) = hcl_job_tasks(&examples_dir().join("job1.hcl"));
    let (dest_task, src_task) = (task_named(&jtasks, "dest"), task_named(&htasks, "src"));
    let mut dest_cfg = dest_task.config.clone();
    retarget(&mut dest_cfg, &servers, servers.dst, None);
    let mut src_cfg = src_task.config.clone();
    retarget(&mut src_cfg, &servers, servers.src, Some(&schema));

    // A load of small transactions (a keyed and a keyless table) until stopped.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (servers, schema, stop) = (servers.clone(), schema.clone(), stop.clone());
        tokio::spawn(async move {
            let mut conn = servers.src_conn().await;
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let sql = format!(
                    "START TRANSACTION; UPDATE `{schema}`.t SET v = v + 1 WHERE id = {}; \
                     INSERT INTO `{schema}`.n VALUES ({n}, {n} % 7); COMMIT",
                    1 + n % 1000
                );
                exec(&mut conn, &sql).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            n
        })
    };
    let wait_caught_up = |what: &'static str| {
        let servers = servers.clone();
        let job = job.clone();
        async move {
            let mut src = servers.src_conn().await;
            let want = gtid_seq(&gtid_binlog_pos(&mut src).await, 0).expect("domain 0");
            let mut dst = servers.dst_conn().await;
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                if let Some(p) = position_row(&mut dst, &job).await {
                    if p.stage == "job_stage_incr" && gtid_seq(&p.gtid_set, 0).is_some_and(|s| s >= want) {
                        return;
                    }
                }
                assert!(Instant::now() < deadline, "{what}: the target did not catch up with the source");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };

    start_task_on(&node_a, &job, &dest_cfg, &dest_task.group, &dest_task.name).await;
    let src_b = start_task_on(&node_b, &job, &src_cfg, &src_task.group, &src_task.name).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The dest's node is lost under load; Nomad starts the dest on the other node.
    node_a.kill9();
    tokio::time::sleep(Duration::from_secs(1)).await;
    start_task_on(&node_b, &job, &dest_cfg, &dest_task.group, &dest_task.name).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(consul_get_raw(&consul, &format!("dtle/{job}/NatsAddr")).as_deref(), Some(bind_b.as_str()));

    // Node b's plugin is killed; a new plugin process comes up there (Nomad restarts it) and cannot recover the
    // tasks of the dead one: they are started anew.
    node_b.kill9();
    let (node_c, _) = seed_config_node(&consul, &data.path().join("c")).await;
    let refused = node_c
        .driver()
        .recover_task(drivers::RecoverTaskRequest { task_id: String::new(), handle: Some(src_b.clone()) })
        .await
        .expect_err("the old plugin's task is gone");
    assert!(refused.message().contains("not running in this plugin process"), "{}", refused.message());
    start_task_on(&node_c, &job, &dest_cfg, &dest_task.group, &dest_task.name).await;
    start_task_on(&node_c, &job, &src_cfg, &src_task.group, &src_task.name).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let transactions = load.await.expect("load");
    assert!(transactions > 100, "the load ran: {transactions} transactions");
    wait_caught_up("after the failovers").await;
    for table in ["t", "n"] {
        let table = format!("`{schema}`.{table}");
        if let Some(diff) = table_diff(&mut src, &mut dst, &table, None).await {
            panic!("{table} differs after the failovers: {diff}\n{}", tail(&node_c.stderr_text(), 40));
        }
    }
    exec(&mut src, &format!("DROP DATABASE IF EXISTS `{schema}`")).await;
    reset_target(&mut dst, &schema, &job).await;
    consul_delete_tree(&consul, &format!("dtle/{job}"));
    assert!(node_c.shutdown().await.success());
}
