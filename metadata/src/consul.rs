//! [`ConsulStore`]: checkpoints in Consul's KV store, in the layout dtle users inspect.
//!
//! Keys of job `<job>` under the key prefix (default `dtle`):
//!
//! | key                        | value                                                                     |
//! |----------------------------|---------------------------------------------------------------------------|
//! | `dtle/<job>/Gtid`          | executed GTID set as MySQL prints it (multi-line `uuid:1-5,\nuuid2:1-3`), or the MariaDB GTID list (`0-1-100,1-2-7`); empty without a GTID |
//! | `dtle/<job>/BinlogFilePos` | `mysql-bin.000003//dtle//1234`; empty without a binlog file               |
//! | `dtle/<job>/JobStage`      | `job_stage_full`, `job_stage_incr`, `job_stage_stopped`, `job_stage_failed` |
//! | `dtle/<job>/Checkpoint`    | the whole [`Checkpoint`] as JSON (GTID flavour included); its ModifyIndex is the version |
//! | `dtle/<job>/NatsAddr`      | the NATS address of the dest task's node (cluster mode with `nats_bind`), as Go dtle writes it |
//! | `dtle/<job>/NatsSessionKey`| the secret the dest's current process authenticates src sessions with (hex) |
//!
//! Users read them with `curl 127.0.0.1:8500/v1/kv/dtle/job1/Gtid?raw` and start a job over with
//! `curl -X DELETE '127.0.0.1:8500/v1/kv/dtle/job1?recurse'`. No password is ever written.
//!
//! A save is one `/v1/txn` request: a `cas` on the `Checkpoint` key at the writer's version plus `set`s of
//! the other keys, applied all together or not at all, so a fenced (stale) writer changes nothing.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::json;

use crate::checkpoint::{validate_job_name, Checkpoint, CheckpointStore, Versioned};
use crate::error::{quote_limited, StoreError};
use crate::position::GtidState;

/// Address used when none is configured: the local Consul agent's HTTP API.
pub const DEFAULT_CONSUL_ADDRESS: &str = "127.0.0.1:8500";
/// First path segment of every key dtle writes (`dtle/<job>/...`).
pub const DEFAULT_KEY_PREFIX: &str = "dtle";
/// Per-request timeout used when none is configured.
pub const DEFAULT_CONSUL_TIMEOUT: Duration = Duration::from_secs(10);

/// Key (below `<prefix>/<job>/`) of the executed GTID set.
pub const KEY_GTID: &str = "Gtid";
/// Key (below `<prefix>/<job>/`) of the binlog file/pos, `file//dtle//pos`.
pub const KEY_BINLOG_FILE_POS: &str = "BinlogFilePos";
/// Key (below `<prefix>/<job>/`) of the job stage word.
pub const KEY_JOB_STAGE: &str = "JobStage";
/// Key (below `<prefix>/<job>/`) of the JSON checkpoint; its ModifyIndex is the checkpoint version.
pub const KEY_CHECKPOINT: &str = "Checkpoint";
/// Full-copy progress as dtle writes it: JSON `[exec_rows,total_rows]`.
pub const KEY_DUMP_PROGRESS: &str = "DumpProgress";
/// Where the job's src finds its dest (Go dtle's cluster mode): the NATS address the dest's node advertises.
pub const KEY_NATS_ADDR: &str = "NatsAddr";
/// The key the dest's current process authenticates src sessions with (hex); readable by whoever may read `dtle/`.
pub const KEY_NATS_SESSION_KEY: &str = "NatsSessionKey";

/// Ports assumed when the address names none (Consul's conventional HTTP and HTTPS ports).
const DEFAULT_HTTP_PORT: u16 = 8500;
const DEFAULT_HTTPS_PORT: u16 = 8501;
/// Longest Consul answer quoted back in an error message.
const MAX_QUOTED_BODY: usize = 300;

/// How to reach Consul. `Debug` hides the token.
#[derive(Clone)]
pub struct ConsulConfig {
    /// `host:port`, `host` (port 8500, or 8501 with https) or `http(s)://host:port`. Without a scheme, https is used when a
    /// TLS file is configured, http otherwise.
    pub address: String,
    /// ACL token sent as `X-Consul-Token`; it needs `key_prefix "<key_prefix>/" { policy = "write" }`.
    pub token: Option<String>,
    /// PEM file of the CA(s) that signed Consul's certificate; when set, only these CAs are trusted.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (with `key_file`) for Consul's `verify_incoming`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// First path segment(s) of the keys, default `dtle`: segments of `[A-Za-z0-9_.-]` joined by `/`.
    pub key_prefix: String,
    /// Timeout of each HTTP request (connect included).
    pub timeout: Duration,
}

impl Default for ConsulConfig {
    fn default() -> Self {
        ConsulConfig {
            address: DEFAULT_CONSUL_ADDRESS.to_string(),
            token: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            key_prefix: DEFAULT_KEY_PREFIX.to_string(),
            timeout: DEFAULT_CONSUL_TIMEOUT,
        }
    }
}

impl fmt::Debug for ConsulConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsulConfig")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "(hidden)"))
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A [`CheckpointStore`] on Consul's HTTP KV API (see the module docs for the key layout).
///
/// Versions are the `ModifyIndex` of the `Checkpoint` key: Raft indexes, so they keep increasing across a
/// delete and re-create. Transport failures, timeouts and 5xx answers are [`StoreError::Unavailable`]
/// (transient); 403 is [`StoreError::AccessDenied`]; other refusals are [`StoreError::Rejected`].
#[derive(Clone)]
pub struct ConsulStore {
    client: reqwest::Client,
    /// `scheme://host:port`, no trailing slash.
    base: String,
    token: Option<HeaderValue>,
    prefix: String,
}

impl fmt::Debug for ConsulStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsulStore")
            .field("address", &self.base)
            .field("key_prefix", &self.prefix)
            .field("token", &self.token.as_ref().map(|_| "(hidden)"))
            .finish()
    }
}

fn invalid_config(field: &str, value: impl Into<String>, reason: impl Into<String>) -> StoreError {
    StoreError::InvalidConfig { field: field.to_string(), value: value.into(), reason: reason.into() }
}

/// Turns the configured address into `scheme://host:port`.
fn parse_address(address: &str, tls: bool) -> Result<String, StoreError> {
    let bad = |reason: &str| invalid_config("consul address", address, reason);
    let text = address.trim();
    if text.is_empty() {
        return Err(bad("the address is empty (expected host:port such as 127.0.0.1:8500)"));
    }
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("{}://{text}", if tls { "https" } else { "http" })
    };
    let url = Url::parse(&with_scheme)
        .map_err(|e| bad(&format!("{e} (expected host:port or http(s)://host:port such as 127.0.0.1:8500)")))?;
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(bad(&format!("the scheme {scheme:?} is not supported (use http:// or https://)")));
    }
    if scheme == "http" && tls {
        return Err(bad("TLS files are configured but the address says http://; use https:// or drop the TLS files"));
    }
    let host = match url.host_str() {
        Some(h) if !h.is_empty() => h,
        _ => return Err(bad("the address names no host")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("user/password in the address are not supported (use the token setting)"));
    }
    if !(url.path().is_empty() || url.path() == "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("the address must be only scheme, host and port (no path or query)"));
    }
    // Url hides the scheme's default port (80/443); Consul's is 8500 unless written out.
    let port = match url.port() {
        Some(p) => p,
        None if has_explicit_port(text) => url.port_or_known_default().unwrap_or(DEFAULT_HTTP_PORT),
        None if scheme == "https" => DEFAULT_HTTPS_PORT,
        None => DEFAULT_HTTP_PORT,
    };
    Ok(format!("{scheme}://{host}:{port}"))
}

/// True when the authority part of `text` ends in `:<digits>` (handles `[v6]:port`).
fn has_explicit_port(text: &str) -> bool {
    let rest = text.split_once("://").map_or(text, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((host, port)) => {
            !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    }
}

fn validate_key_prefix(prefix: &str) -> Result<String, StoreError> {
    let bad = |reason: &str| invalid_config("consul key_prefix", prefix, reason);
    if prefix.is_empty() {
        return Err(bad("the prefix is empty (the default is \"dtle\")"));
    }
    for segment in prefix.split('/') {
        if segment.is_empty() {
            return Err(bad("empty path segment (no leading, trailing or double '/')"));
        }
        if segment == "." || segment == ".." {
            return Err(bad("'.' and '..' are not allowed as segments"));
        }
        if let Some(c) = segment.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
            return Err(bad(&format!("the character {c:?} is not allowed (use A-Z a-z 0-9 _ . - and '/')")));
        }
    }
    Ok(prefix.to_string())
}

fn read_tls_file(field: &str, path: &Path) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|e| invalid_config(field, path.display().to_string(), format!("cannot read it: {e}")))
}

/// Adds the CA and client identity to `builder`.
fn configure_tls(
    mut builder: reqwest::ClientBuilder,
    cfg: &ConsulConfig,
) -> Result<reqwest::ClientBuilder, StoreError> {
    if let Some(ca_file) = &cfg.ca_file {
        let pem = read_tls_file("ca_file", ca_file)?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            invalid_config("ca_file", ca_file.display().to_string(), format!("not a PEM certificate bundle: {e}"))
        })?;
        if certs.is_empty() {
            return Err(invalid_config(
                "ca_file",
                ca_file.display().to_string(),
                "no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)",
            ));
        }
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    match (&cfg.cert_file, &cfg.key_file) {
        (None, None) => {}
        (Some(cert_file), Some(key_file)) => {
            let mut pem = read_tls_file("cert_file", cert_file)?;
            let key = read_tls_file("key_file", key_file)?;
            pem.push(b'\n');
            pem.extend_from_slice(&key);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                invalid_config(
                    "cert_file",
                    cert_file.display().to_string(),
                    format!(
                        "cannot use it with key_file {}: {e} (expected PEM certificate and PEM private key)",
                        key_file.display()
                    ),
                )
            })?;
            builder = builder.identity(identity);
        }
        (Some(cert_file), None) => {
            return Err(invalid_config(
                "cert_file",
                cert_file.display().to_string(),
                "a client certificate needs key_file too",
            ))
        }
        (None, Some(key_file)) => {
            return Err(invalid_config("key_file", key_file.display().to_string(), "a client key needs cert_file too"))
        }
    }
    Ok(builder)
}

/// One entry of a KV GET answer.
#[derive(Deserialize)]
struct KvEntry {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Value", default)]
    value: Option<String>,
    #[serde(rename = "ModifyIndex")]
    modify_index: u64,
}

#[derive(Deserialize)]
struct TxnResponse {
    #[serde(rename = "Results", default)]
    results: Option<Vec<TxnResult>>,
    #[serde(rename = "Errors", default)]
    errors: Option<Vec<TxnError>>,
}

#[derive(Deserialize)]
struct TxnResult {
    #[serde(rename = "KV", default)]
    kv: Option<TxnKv>,
}

#[derive(Deserialize)]
struct TxnKv {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "ModifyIndex")]
    modify_index: u64,
}

#[derive(Deserialize)]
struct TxnError {
    #[serde(rename = "OpIndex", default)]
    op_index: u64,
    #[serde(rename = "What", default)]
    what: String,
}

/// Full text of an error and its sources ("a: b: c"), without repeating a source already in the text.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let piece = s.to_string();
        if !text.contains(&piece) {
            text.push_str(": ");
            text.push_str(&piece);
        }
        source = s.source();
    }
    text
}

fn body_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    if trimmed.chars().count() > MAX_QUOTED_BODY {
        let cut: String = trimmed.chars().take(MAX_QUOTED_BODY).collect();
        format!("{cut}...")
    } else {
        trimmed.to_string()
    }
}

/// Maps a non-success HTTP answer to a [`StoreError`]: 403 → AccessDenied, 5xx/429/408 → Unavailable,
/// anything else → Rejected. `what` says what was being done, `prefix` which keys the token needs.
pub(crate) fn status_error(address: &str, prefix: &str, what: &str, status: StatusCode, body: &[u8]) -> StoreError {
    let said = body_text(body);
    if status == StatusCode::FORBIDDEN {
        return access_denied(address, prefix, what, &said);
    }
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT {
        return StoreError::Unavailable {
            reason: format!("Consul at {address} answered {status} to {what}: {said:?}"),
        };
    }
    StoreError::Rejected { address: address.to_string(), reason: format!("{what}: HTTP {status}: {said:?}") }
}

/// TLS failures that retrying will not fix (untrusted certificate, client certificate refused, plain HTTP
/// on the other side), with what to check; `None` for anything else.
fn tls_misconfiguration_hint(error_chain: &str) -> Option<&'static str> {
    if error_chain.contains("invalid peer certificate") {
        Some(
            "Consul's certificate is not trusted: set ca_file to the CA that signed it and use an address \
             whose host the certificate names",
        )
    } else if error_chain.contains("received fatal alert") {
        Some(
            "Consul refused the TLS connection: with verify_incoming it needs a client certificate signed by \
             its CA (cert_file and key_file)",
        )
    } else if error_chain.contains("InvalidContentType") || error_chain.contains("corrupt message") {
        Some("the port does not speak TLS: use http:// (and no TLS files) for Consul's plain HTTP port")
    } else {
        None
    }
}

fn access_denied(address: &str, prefix: &str, what: &str, said: &str) -> StoreError {
    let hint = if said.contains("ACL not found") {
        "the ACL token is not known to Consul (check the token setting)"
    } else {
        "the ACL token (or the agent's default token when none is set) lacks"
    };
    StoreError::AccessDenied {
        address: address.to_string(),
        reason: format!("{what}: Consul said {said:?}; {hint} `key_prefix \"{prefix}/\" {{ policy = \"write\" }}`"),
    }
}

impl ConsulStore {
    /// Checks the configuration and builds the HTTP client; does not contact Consul (the first request
    /// does). A bad address, key prefix, token or TLS file is [`StoreError::InvalidConfig`] naming it.
    pub fn connect(cfg: ConsulConfig) -> Result<ConsulStore, StoreError> {
        let tls = cfg.ca_file.is_some() || cfg.cert_file.is_some() || cfg.key_file.is_some();
        let base = parse_address(&cfg.address, tls)?;
        let prefix = validate_key_prefix(&cfg.key_prefix)?;
        if cfg.timeout.is_zero() {
            return Err(invalid_config("consul timeout", format!("{:?}", cfg.timeout), "must be more than 0"));
        }
        let token = match cfg.token.as_deref() {
            None | Some("") => None,
            Some(t) => {
                let mut value = HeaderValue::from_str(t).map_err(|_| {
                    invalid_config("consul token", "(hidden)", "it contains characters not allowed in an HTTP header")
                })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        // The agent is addressed directly: proxy variables meant for the internet are not used.
        let builder = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .no_proxy()
            .user_agent(concat!("dtle/", env!("CARGO_PKG_VERSION")));
        let builder = configure_tls(builder, &cfg)?;
        let client = builder
            .build()
            .map_err(|e| invalid_config("consul client configuration", cfg.address.clone(), error_chain(&e)))?;
        Ok(ConsulStore { client, base, token, prefix })
    }

    /// `scheme://host:port` of the Consul HTTP API.
    pub fn address(&self) -> &str {
        &self.base
    }

    /// The key prefix (`dtle` by default).
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// Full key of `leaf` of `job`, e.g. `dtle/job1/Gtid`.
    pub fn key(&self, job: &str, leaf: &str) -> String {
        format!("{}/{job}/{leaf}", self.prefix)
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// Sends one request and reads the whole answer. Transport failures and timeouts are Unavailable.
    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        what: &str,
    ) -> Result<(StatusCode, Vec<u8>), StoreError> {
        let mut request = self.client.request(method, self.url(path_and_query));
        if let Some(token) = &self.token {
            request = request.header("X-Consul-Token", token.clone());
        }
        if let Some(body) = body {
            request = request.header("Content-Type", "application/json").body(body);
        }
        let unavailable = |e: reqwest::Error| {
            let chain = error_chain(&e);
            if let Some(hint) = tls_misconfiguration_hint(&chain) {
                return StoreError::Rejected {
                    address: self.base.clone(),
                    reason: format!("{what}: TLS failed: {chain}; {hint}"),
                };
            }
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "cannot connect"
            } else {
                "request failed"
            };
            StoreError::Unavailable { reason: format!("Consul at {} ({what}): {kind}: {chain}", self.base) }
        };
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unavailable)?;
        Ok((status, bytes.to_vec()))
    }

    fn status_error(&self, what: &str, status: StatusCode, body: &[u8]) -> StoreError {
        status_error(&self.base, &self.prefix, what, status, body)
    }

    /// An answer with status 200 that is not what Consul sends: something else listens there.
    fn not_consul(&self, what: &str, detail: impl fmt::Display, body: &[u8]) -> StoreError {
        StoreError::Rejected {
            address: self.base.clone(),
            reason: format!(
                "{what}: unexpected answer ({detail}): {:?}; is this the HTTP API of a Consul agent?",
                body_text(body)
            ),
        }
    }

    /// GET of one key: its decoded value and ModifyIndex, `None` when absent.
    async fn get_key(&self, key: &str, what: &str) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
        let (status, body) = self.send(Method::GET, &format!("/v1/kv/{key}"), None, what).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status != StatusCode::OK {
            return Err(self.status_error(what, status, &body));
        }
        let entries: Vec<KvEntry> = serde_json::from_slice(&body).map_err(|e| self.not_consul(what, e, &body))?;
        let Some(entry) = entries.into_iter().find(|e| e.key == key) else {
            return Ok(None);
        };
        let value = match entry.value {
            None => Vec::new(),
            Some(b64) => BASE64.decode(b64.as_bytes()).map_err(|e| StoreError::Corrupt {
                path: key.to_string(),
                reason: format!("Consul returned a value that is not base64: {e}"),
            })?,
        };
        Ok(Some((value, entry.modify_index)))
    }

    /// The current version (ModifyIndex) of the job's Checkpoint key, 0 when absent.
    async fn current_version(&self, job: &str) -> Result<u64, StoreError> {
        let key = self.key(job, KEY_CHECKPOINT);
        Ok(self.get_key(&key, &format!("read {key}")).await?.map_or(0, |(_, index)| index))
    }

    /// Writes `<prefix>/<job>/<leaf>` (the src/dest rendezvous keys [`KEY_NATS_ADDR`], [`KEY_NATS_SESSION_KEY`]).
    pub async fn put_job_key(&self, job: &str, leaf: &str, value: &[u8]) -> Result<(), StoreError> {
        validate_job_name(job)?;
        let key = self.key(job, leaf);
        let what = format!("put {key}");
        let (status, answer) = self.send(Method::PUT, &format!("/v1/kv/{key}"), Some(value.to_vec()), &what).await?;
        if status != StatusCode::OK {
            return Err(self.status_error(&what, status, &answer));
        }
        Ok(())
    }

    /// Reads `<prefix>/<job>/<leaf>`: its value, `None` when absent.
    pub async fn get_job_key(&self, job: &str, leaf: &str) -> Result<Option<Vec<u8>>, StoreError> {
        validate_job_name(job)?;
        let key = self.key(job, leaf);
        Ok(self.get_key(&key, &format!("read {key}")).await?.map(|(value, _)| value))
    }

    /// Every key below `<prefix>/<job>/` with its text value and ModifyIndex, sorted by key (leaf name
    /// only, e.g. `Gtid`). Includes keys written by other programs (the Go dtle's `DumpProgress`, ...).
    pub async fn read_job_keys(&self, job: &str) -> Result<Vec<(String, Versioned<String>)>, StoreError> {
        validate_job_name(job)?;
        let dir = format!("{}/{job}/", self.prefix);
        let what = format!("read {dir}");
        let (status, body) = self.send(Method::GET, &format!("/v1/kv/{dir}?recurse"), None, &what).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if status != StatusCode::OK {
            return Err(self.status_error(&what, status, &body));
        }
        let entries: Vec<KvEntry> = serde_json::from_slice(&body).map_err(|e| self.not_consul(&what, e, &body))?;
        let mut out = Vec::new();
        for entry in entries {
            let Some(leaf) = entry.key.strip_prefix(&dir) else {
                continue;
            };
            let bytes = match entry.value {
                None => Vec::new(),
                Some(b64) => BASE64.decode(b64.as_bytes()).map_err(|e| StoreError::Corrupt {
                    path: entry.key.clone(),
                    reason: format!("Consul returned a value that is not base64: {e}"),
                })?,
            };
            // The session key is a secret: listed, never shown.
            let value = if leaf == KEY_NATS_SESSION_KEY {
                "(secret, not shown)".to_string()
            } else {
                String::from_utf8_lossy(&bytes).into_owned()
            };
            out.push((leaf.to_string(), Versioned { value, version: entry.modify_index }));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// The text of `dtle/<job>/Gtid`: MySQL's multi-line form, the MariaDB list, or "" without a GTID.
pub(crate) fn gtid_key_text(cp: &Checkpoint) -> String {
    match &cp.position.gtid {
        None => String::new(),
        Some(GtidState::Mysql(set)) => set.to_multiline_string(),
        Some(GtidState::Mariadb(list)) => list.to_string(),
    }
}

fn job_stage_word(cp: &Checkpoint) -> String {
    match serde_json::to_value(cp.stage) {
        Ok(serde_json::Value::String(word)) => word,
        // JobStage serializes to a string; anything else would be a bug caught by the layout tests.
        other => format!("{other:?}"),
    }
}

#[async_trait::async_trait]
impl CheckpointStore for ConsulStore {
    async fn load(&self, job: &str) -> Result<Option<Versioned<Checkpoint>>, StoreError> {
        validate_job_name(job)?;
        let key = self.key(job, KEY_CHECKPOINT);
        let Some((value, version)) = self.get_key(&key, &format!("read {key}")).await? else {
            return Ok(None);
        };
        let corrupt = |reason: String| StoreError::Corrupt { path: format!("{}/v1/kv/{key}", self.base), reason };
        let checkpoint: Checkpoint = serde_json::from_slice(&value).map_err(|e| {
            corrupt(format!("not a dtle checkpoint ({e}): {:?}", quote_limited(&String::from_utf8_lossy(&value))))
        })?;
        if checkpoint.job != job {
            return Err(corrupt(format!("it holds the checkpoint of job {:?}, not of {job:?}", checkpoint.job)));
        }
        if version == 0 {
            return Err(corrupt("its ModifyIndex is 0".to_string()));
        }
        Ok(Some(Versioned { value: checkpoint, version }))
    }

    async fn save(&self, cp: &Checkpoint, expected_version: u64) -> Result<u64, StoreError> {
        validate_job_name(&cp.job)?;
        let checkpoint_key = self.key(&cp.job, KEY_CHECKPOINT);
        let checkpoint_json = serde_json::to_vec(cp).map_err(|e| StoreError::Corrupt {
            path: checkpoint_key.clone(),
            reason: format!("cannot encode the checkpoint: {e}"),
        })?;
        let set = |leaf: &str, value: String| json!({"KV": {"Verb": "set", "Key": self.key(&cp.job, leaf), "Value": BASE64.encode(value)}});
        let ops = json!([
            {"KV": {
                "Verb": "cas",
                "Key": checkpoint_key,
                "Value": BASE64.encode(&checkpoint_json),
                "Index": expected_version,
            }},
            set(KEY_GTID, gtid_key_text(cp)),
            set(KEY_BINLOG_FILE_POS, cp.position.binlog_file_pos_string()),
            set(KEY_JOB_STAGE, job_stage_word(cp)),
        ]);
        let body = serde_json::to_vec(&ops).map_err(|e| StoreError::Corrupt {
            path: checkpoint_key.clone(),
            reason: format!("cannot encode the transaction: {e}"),
        })?;
        let what = format!("save {}/{}/", self.prefix, cp.job);
        let (status, answer) = self.send(Method::PUT, "/v1/txn", Some(body), &what).await?;
        match status {
            StatusCode::OK => {
                let response: TxnResponse =
                    serde_json::from_slice(&answer).map_err(|e| self.not_consul(&what, e, &answer))?;
                response
                    .results
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|r| r.kv)
                    .find(|kv| kv.key == checkpoint_key)
                    .map(|kv| kv.modify_index)
                    .filter(|index| *index > 0)
                    .ok_or_else(|| self.not_consul(&what, "no ModifyIndex for the Checkpoint key", &answer))
            }
            StatusCode::CONFLICT => {
                // The transaction was rolled back: nothing was written.
                let response: TxnResponse =
                    serde_json::from_slice(&answer).map_err(|e| self.not_consul(&what, e, &answer))?;
                let errors = response.errors.unwrap_or_default();
                if let Some(denied) =
                    errors.iter().find(|e| e.what.contains("Permission denied") || e.what.contains("ACL not found"))
                {
                    return Err(access_denied(&self.base, &self.prefix, &what, &denied.what));
                }
                let found = self.current_version(&cp.job).await?;
                if found != expected_version {
                    return Err(StoreError::Fenced { job: cp.job.clone(), expected: expected_version, found });
                }
                let detail: Vec<String> = errors.iter().map(|e| format!("op {}: {}", e.op_index, e.what)).collect();
                Err(StoreError::Rejected {
                    address: self.base.clone(),
                    reason: format!("{what}: transaction rolled back: {}", detail.join("; ")),
                })
            }
            _ => Err(self.status_error(&what, status, &answer)),
        }
    }

    async fn delete(&self, job: &str) -> Result<(), StoreError> {
        validate_job_name(job)?;
        // The trailing '/' keeps `dtle/job1` from also removing `dtle/job10/...`.
        let dir = format!("{}/{job}/", self.prefix);
        let what = format!("delete {dir}");
        let (status, body) = self.send(Method::DELETE, &format!("/v1/kv/{dir}?recurse"), None, &what).await?;
        if status != StatusCode::OK {
            return Err(self.status_error(&what, status, &body));
        }
        Ok(())
    }

    async fn save_dump_progress(&self, job: &str, copied_rows: u64, total_rows: u64) -> Result<(), StoreError> {
        validate_job_name(job)?;
        let key = self.key(job, KEY_DUMP_PROGRESS);
        let what = format!("put {key}");
        let body = format!("[{copied_rows},{total_rows}]").into_bytes();
        let (status, answer) = self.send(Method::PUT, &format!("/v1/kv/{key}"), Some(body), &what).await?;
        if status != StatusCode::OK {
            return Err(self.status_error(&what, status, &answer));
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        let dir = format!("{}/", self.prefix);
        let what = format!("list {dir}");
        let (status, body) = self.send(Method::GET, &format!("/v1/kv/{dir}?keys"), None, &what).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if status != StatusCode::OK {
            return Err(self.status_error(&what, status, &body));
        }
        let keys: Vec<String> = serde_json::from_slice(&body).map_err(|e| self.not_consul(&what, e, &body))?;
        let suffix = format!("/{KEY_CHECKPOINT}");
        let mut jobs: Vec<String> = keys
            .iter()
            .filter_map(|k| k.strip_prefix(&dir)?.strip_suffix(&suffix))
            .filter(|job| validate_job_name(job).is_ok())
            .map(str::to_string)
            .collect();
        jobs.sort();
        jobs.dedup();
        Ok(jobs)
    }
}

#[cfg(test)]
mod tests;
