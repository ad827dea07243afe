//! The agent's `plugin "dtle" { config { ... } }` block: its field table (which generates the hclspec returned by
//! ConfigSchema and holds each default once), and the decoding of what SetConfig receives.

use std::path::PathBuf;
use std::time::Duration;

use dtle_metadata::ConsulConfig;
use dtle_proto::nomad::hclspec::{spec, Object, Spec};
use dtle_transport::compression::CompressionSpec;
use dtle_transport::nats::NatsOptions;

use crate::meeting::NatsMeeting;

/// Where tasks meet when neither a `nats` list nor `nats_bind` is given.
const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// `host:port` with a port number, else `None`.
fn host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = text.trim().rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    (!host.is_empty()).then_some((host, port))
}

/// A bind address as a client on this node reaches it: a wildcard host becomes the loopback address.
fn local_address(bind: &str) -> String {
    match host_port(bind) {
        Some(("0.0.0.0" | "[::]" | "::" | "*", port)) => format!("127.0.0.1:{port}"),
        _ => bind.trim().to_string(),
    }
}
use serde::Deserialize;
use serde_json::{Map, Value};

use super::cty::msgpack_to_json;
use super::hclspec::attr_with_default;

/// One key of the plugin config block.
#[derive(Debug, Clone, Copy)]
pub struct PluginField {
    pub name: &'static str,
    /// HCL type expression: `string`, `number`, `bool`, `list(string)`.
    pub cty_type: &'static str,
    /// The default as an HCL literal (also valid JSON); `None` = unset.
    pub default: Option<&'static str>,
    /// Accepted so agent configs written for Go dtle keep loading, but without effect in this build.
    pub ignored: bool,
    pub doc: &'static str,
}

const fn used(name: &'static str, cty_type: &'static str, default: &'static str, doc: &'static str) -> PluginField {
    PluginField { name, cty_type, default: Some(default), ignored: false, doc }
}

/// A field without a default (unset unless given), with an effect.
const fn optional(name: &'static str, cty_type: &'static str, doc: &'static str) -> PluginField {
    PluginField { name, cty_type, default: None, ignored: false, doc }
}

const fn compat(name: &'static str, cty_type: &'static str, doc: &'static str) -> PluginField {
    PluginField { name, cty_type, default: None, ignored: true, doc }
}

/// Every key of `plugin "dtle" { config { ... } }`.
pub const PLUGIN_CONFIG_FIELDS: &[PluginField] = &[
    used("log_level", "string", "\"info\"", "Level of dtle's log lines: trace, debug, info, warn, error."),
    used(
        "data_dir",
        "string",
        "\"/var/lib/nomad\"",
        "Where positions are kept (<data_dir>/dtle/positions) when no Consul is configured.",
    ),
    used(
        "consul",
        "string",
        "\"127.0.0.1:8500\"",
        "Consul HTTP address for positions (dtle/<job>/...); \"\" = local files.",
    ),
    used("consul_token", "string", "\"\"", "Consul ACL token (write on key prefix dtle/)."),
    used(
        "nats",
        "list(string)",
        "[]",
        "Shared NATS server address(es) where src and dest tasks meet (every node of a job must reach them); empty: \
         the plugin's own NATS on nats_bind, else nats://127.0.0.1:4222.",
    ),
    used("nats_token", "string", "\"\"", "NATS token."),
    used("nats_user", "string", "\"\"", "NATS user."),
    used("nats_password", "string", "\"\"", "NATS password."),
    used("nats_creds", "string", "\"\"", "NATS credentials file."),
    used("compression", "string", "\"zstd:1\"", "Batch compression on the link: none, lz4, zstd, zstd:<level>, gzip."),
    used("rate_limit", "number", "0", "Link rate limit of each src task in bytes per second; 0 = unlimited."),
    used(
        "api_addr",
        "string",
        "\"\"",
        "dtle HTTP listener (e.g. 127.0.0.1:8190): /v1/status (JSON) and, with publish_metrics, /metrics; \"\" = off.",
    ),
    used("nomad_addr", "string", "\"127.0.0.1:4646\"", "Nomad HTTP address, for the API layer."),
    used("publish_metrics", "bool", "false", "Serve Prometheus metrics at http://<api_addr>/metrics."),
    used("stats_collection_interval", "number", "15", "Seconds between statistics collections."),
    optional(
        "nats_bind",
        "string",
        "Without a `nats` list: the plugin runs a NATS server (the nats-server program) on this host:port, as Go \
         dtle does; its dest tasks publish nats_advertise in Consul (dtle/<job>/NatsAddr), where src tasks find it.",
    ),
    optional("nats_advertise", "string", "The address src nodes reach this node's NATS at (default: nats_bind)."),
    compat("log_file", "string", "Go dtle's own log file; dtle logs through Nomad's plugin log."),
    compat("debug_job", "string", "Go dtle's per-job debug log."),
    compat("big_tx_max_jobs", "number", "Go dtle's limit of jobs holding big transactions."),
    compat("rsa_private_key_path", "string", "Go dtle's API password decryption key."),
    compat("cert_file_path", "string", "Go dtle's API TLS certificate."),
    compat("key_file_path", "string", "Go dtle's API TLS key."),
    compat("ui_dir", "string", "Go dtle's web UI files."),
    compat("memory", "string", "Parsed but unused by Go dtle."),
];

/// The spec returned by ConfigSchema.
pub fn plugin_config_spec() -> Spec {
    let attributes = PLUGIN_CONFIG_FIELDS
        .iter()
        .map(|f| (f.name.to_string(), attr_with_default(f.name, f.cty_type, false, f.default.map(str::to_string))))
        .collect();
    Spec { block: Some(spec::Block::Object(Object { attributes })) }
}

/// The decoded plugin config. Built only through [`PluginConfig::decode`], which applies the table's defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    pub log_level: String,
    pub data_dir: String,
    pub consul: String,
    pub consul_token: String,
    pub nats: Vec<String>,
    pub nats_token: String,
    pub nats_user: String,
    pub nats_password: String,
    pub nats_creds: String,
    pub compression: String,
    pub rate_limit: i64,
    pub api_addr: String,
    pub nomad_addr: String,
    pub publish_metrics: bool,
    pub stats_collection_interval: i64,
    #[serde(default)]
    pub nats_bind: Option<String>,
    #[serde(default)]
    pub nats_advertise: Option<String>,
    #[serde(default)]
    pub log_file: Option<String>,
    #[serde(default)]
    pub debug_job: Option<String>,
    #[serde(default)]
    pub big_tx_max_jobs: Option<i64>,
    #[serde(default)]
    pub rsa_private_key_path: Option<String>,
    #[serde(default)]
    pub cert_file_path: Option<String>,
    #[serde(default)]
    pub key_file_path: Option<String>,
    #[serde(default)]
    pub ui_dir: Option<String>,
    #[serde(default)]
    pub memory: Option<String>,
}

impl Default for PluginConfig {
    /// Every default of the table (what an absent `config { }` block means).
    fn default() -> Self {
        match Self::from_json(Value::Null) {
            Ok(c) => c,
            Err(e) => unreachable!("the plugin config defaults do not decode: {e}"),
        }
    }
}

impl PluginConfig {
    /// Decodes SetConfig's `msgpack_config` (empty = defaults).
    pub fn decode(msgpack: &[u8]) -> Result<PluginConfig, String> {
        Self::from_json(msgpack_to_json(msgpack)?)
    }

    /// Checks and decodes a config given as JSON (`null` = defaults).
    pub fn from_json(json: Value) -> Result<PluginConfig, String> {
        let given = match json {
            Value::Null => Map::new(),
            Value::Object(m) => m,
            other => return Err(format!("plugin \"dtle\" config must be a block of attributes, not {other}")),
        };
        for key in given.keys() {
            if !PLUGIN_CONFIG_FIELDS.iter().any(|f| f.name == key) {
                let valid: Vec<&str> = PLUGIN_CONFIG_FIELDS.iter().map(|f| f.name).collect();
                return Err(format!(
                    "plugin \"dtle\" config: unknown field {key:?}; valid fields: {}",
                    valid.join(", ")
                ));
            }
        }
        let mut out = Map::new();
        for f in PLUGIN_CONFIG_FIELDS {
            let value = match given.get(f.name) {
                Some(v) if !v.is_null() => v.clone(),
                _ => match f.default {
                    Some(lit) => serde_json::from_str(lit)
                        .map_err(|e| format!("default of plugin config field {}: {e}", f.name))?,
                    None => Value::Null,
                },
            };
            if value.is_null() {
                continue;
            }
            let value = coerce(f, value)?;
            out.insert(f.name.to_string(), value);
        }
        let config: PluginConfig =
            serde_json::from_value(Value::Object(out)).map_err(|e| format!("plugin \"dtle\" config: {e}"))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        let bad = |field: &str, why: String| Err(format!("plugin \"dtle\" config field {field}: {why}"));
        if !matches!(self.log_level.trim().to_ascii_lowercase().as_str(), "trace" | "debug" | "info" | "warn" | "error")
        {
            return bad("log_level", format!("{:?} is not one of trace, debug, info, warn, error", self.log_level));
        }
        if let Err(e) = CompressionSpec::parse(&self.compression) {
            return bad("compression", e);
        }
        if let NatsMeeting::ViaConsul { .. } = self.nats_meeting() {
            let bind = self.nats_bind.as_deref().unwrap_or_default();
            if host_port(bind).is_none() {
                return bad("nats_bind", format!("{bind:?} is not host:port, e.g. \"10.0.0.5:8193\""));
            }
            if let Some(advertise) = &self.nats_advertise {
                if host_port(advertise).is_none() {
                    return bad("nats_advertise", format!("{advertise:?} is not host:port, e.g. \"10.0.0.5:8193\""));
                }
            }
            if self.consul.trim().is_empty() {
                return bad(
                    "nats_bind",
                    "the plugin's own NATS needs Consul: src tasks find their dest's address there \
                     (dtle/<job>/NatsAddr); set consul, or give a shared `nats` list instead"
                        .into(),
                );
            }
        }
        if self.stats_collection_interval <= 0 {
            return bad("stats_collection_interval", "must be a positive number of seconds".into());
        }
        if self.rate_limit < 0 {
            return bad("rate_limit", "must be 0 (unlimited) or a number of bytes per second".into());
        }
        Ok(())
    }

    /// Fields set that have no effect in this build, for a warning.
    pub fn ignored_fields_set(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let shared_list = !self.shared_nats().is_empty();
        for (set, name) in [
            // With a shared `nats` list the plugin runs no NATS of its own.
            (shared_list && self.nats_bind.is_some(), "nats_bind"),
            (shared_list && self.nats_advertise.is_some(), "nats_advertise"),
            (self.log_file.is_some(), "log_file"),
            (self.debug_job.is_some(), "debug_job"),
            (self.big_tx_max_jobs.is_some(), "big_tx_max_jobs"),
            (self.rsa_private_key_path.is_some(), "rsa_private_key_path"),
            (self.cert_file_path.is_some(), "cert_file_path"),
            (self.key_file_path.is_some(), "key_file_path"),
            (self.ui_dir.is_some(), "ui_dir"),
            (self.memory.is_some(), "memory"),
        ] {
            if set {
                out.push(name);
            }
        }
        out
    }

    /// Positions in Consul, unless `consul = ""`.
    pub fn consul_config(&self) -> Option<ConsulConfig> {
        let address = self.consul.trim();
        if address.is_empty() {
            return None;
        }
        Some(ConsulConfig {
            address: address.to_string(),
            token: Some(self.consul_token.clone()).filter(|t| !t.is_empty()),
            ..Default::default()
        })
    }

    /// The `nats` list as given (`host:port` gets `nats://`).
    fn shared_nats(&self) -> Vec<String> {
        self.nats
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
            .map(|a| if a.contains("://") { a.to_string() } else { format!("nats://{a}") })
            .collect()
    }

    /// The NATS server URLs this node's tasks connect to: the shared `nats` list; else the plugin's own server on
    /// `nats_bind` (reached locally); else `nats://127.0.0.1:4222`.
    pub fn nats_urls(&self) -> Vec<String> {
        let shared = self.shared_nats();
        if !shared.is_empty() {
            return shared;
        }
        match self.own_nats_bind() {
            Some(bind) => vec![format!("nats://{}", local_address(&bind))],
            None => vec![DEFAULT_NATS_URL.to_string()],
        }
    }

    /// `nats_bind` when the plugin runs its own NATS server (no shared `nats` list).
    pub fn own_nats_bind(&self) -> Option<String> {
        let bind = self.nats_bind.as_deref().map(str::trim).filter(|b| !b.is_empty())?;
        self.shared_nats().is_empty().then(|| bind.to_string())
    }

    /// How this node's src and dest tasks meet (see [`NatsMeeting`]).
    pub fn nats_meeting(&self) -> NatsMeeting {
        match self.own_nats_bind() {
            Some(bind) => {
                let advertise = self.nats_advertise.as_deref().map(str::trim).filter(|a| !a.is_empty());
                NatsMeeting::ViaConsul { advertise: advertise.map(str::to_string).unwrap_or(bind) }
            }
            None => NatsMeeting::Shared,
        }
    }

    /// The link options of a task; `window` = unacknowledged batches in flight.
    pub fn nats_options(&self, window: usize) -> Result<NatsOptions, String> {
        let opt = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        Ok(NatsOptions {
            urls: self.nats_urls(),
            token: opt(&self.nats_token),
            user: opt(&self.nats_user),
            password: opt(&self.nats_password),
            credentials_file: opt(&self.nats_creds).map(PathBuf::from),
            ca_file: None,
            cert_file: None,
            key_file: None,
            compression: CompressionSpec::parse(&self.compression)?,
            window,
            ack_timeout: Duration::from_secs(30),
            rate_limit_bytes_per_s: u64::try_from(self.rate_limit).ok().filter(|r| *r > 0),
            session_key: None,
        })
    }

    /// The local data directory of this plugin.
    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(&self.data_dir).join("dtle")
    }
}

/// Brings a value to the field's type the way HCL would convert it (numbers and bools from strings, scalars to
/// strings, one string to a one-element list).
fn coerce(f: &PluginField, value: Value) -> Result<Value, String> {
    let wrong = |v: &Value| format!("plugin \"dtle\" config field {}: expected {}, got {v}", f.name, f.cty_type);
    Ok(match (f.cty_type, value) {
        ("string", Value::String(s)) => Value::String(s),
        ("string", Value::Number(n)) => Value::String(n.to_string()),
        ("string", Value::Bool(b)) => Value::String(b.to_string()),
        ("number", Value::Number(n)) => match n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)) {
            Some(i) => Value::from(i),
            None => return Err(wrong(&Value::Number(n))),
        },
        ("number", Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => Value::from(x as i64),
            _ => return Err(wrong(&Value::String(s))),
        },
        ("bool", Value::Bool(b)) => Value::Bool(b),
        ("bool", Value::String(s)) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
        ("bool", Value::String(s)) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
        ("list(string)", Value::String(s)) => {
            Value::Array(s.split(',').map(|p| Value::String(p.trim().to_string())).collect())
        }
        ("list(string)", Value::Array(items)) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => out.push(Value::String(s)),
                    other => return Err(wrong(&other)),
                }
            }
            Value::Array(out)
        }
        (_, other) => return Err(wrong(&other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let d = PluginConfig::default();
        assert_eq!(d.log_level, "info");
        assert_eq!(d.consul, "127.0.0.1:8500");
        assert_eq!(d.nats_urls(), vec!["nats://127.0.0.1:4222".to_string()]);
        assert_eq!(d.stats_collection_interval, 15);
        let c = PluginConfig::from_json(serde_json::json!({
            "nats": "127.0.0.1:4222, 10.0.0.2:4222", "consul": "", "stats_collection_interval": "30",
            "nats_bind": "0.0.0.0:8193"
        }))
        .unwrap();
        assert_eq!(c.nats_urls(), vec!["nats://127.0.0.1:4222", "nats://10.0.0.2:4222"]);
        assert!(c.consul_config().is_none());
        assert_eq!(c.stats_collection_interval, 30);
        assert_eq!(c.ignored_fields_set(), vec!["nats_bind"]);
    }

    #[test]
    fn the_seed_agent_config_runs_its_own_nats_and_meets_through_consul() {
        // The seed's and Go dtle's agent config: nats_bind/nats_advertise, no `nats` list.
        let c = PluginConfig::from_json(serde_json::json!({
            "nats_bind": "0.0.0.0:8193", "nats_advertise": "10.0.0.5:8193", "consul": "10.0.0.5:8500"
        }))
        .unwrap();
        assert_eq!(c.nats_urls(), vec!["nats://127.0.0.1:8193"], "the node's own server, reached locally");
        assert_eq!(c.own_nats_bind().as_deref(), Some("0.0.0.0:8193"));
        assert_eq!(c.nats_meeting(), NatsMeeting::ViaConsul { advertise: "10.0.0.5:8193".into() });
        assert!(c.ignored_fields_set().is_empty(), "{:?}", c.ignored_fields_set());
        // Without nats_advertise the bind address is advertised.
        let c = PluginConfig::from_json(serde_json::json!({"nats_bind": "10.0.0.6:8193"})).unwrap();
        assert_eq!(c.nats_meeting(), NatsMeeting::ViaConsul { advertise: "10.0.0.6:8193".into() });
        // A shared list wins; nothing set means the shared default.
        let c = PluginConfig::from_json(serde_json::json!({"nats": ["n1:4222"], "nats_bind": "0.0.0.0:8193"})).unwrap();
        assert_eq!((c.nats_meeting(), c.own_nats_bind()), (NatsMeeting::Shared, None));
        assert_eq!(PluginConfig::default().nats_meeting(), NatsMeeting::Shared);
        // Errors name the field.
        let e = PluginConfig::from_json(serde_json::json!({"nats_bind": "8193"})).unwrap_err();
        assert!(e.contains("nats_bind") && e.contains("host:port"), "{e}");
        let e = PluginConfig::from_json(serde_json::json!({"nats_bind": "0.0.0.0:8193", "consul": ""})).unwrap_err();
        assert!(e.contains("nats_bind") && e.contains("needs Consul"), "{e}");
    }

    #[test]
    fn errors_name_the_field() {
        let e = PluginConfig::from_json(serde_json::json!({"nats_url": "x"})).unwrap_err();
        assert!(e.contains("\"nats_url\""), "{e}");
        let e = PluginConfig::from_json(serde_json::json!({"compression": "brotli"})).unwrap_err();
        assert!(e.contains("compression"), "{e}");
        let e = PluginConfig::from_json(serde_json::json!({"log_level": "loud"})).unwrap_err();
        assert!(e.contains("log_level"), "{e}");
    }

    #[test]
    fn spec_has_every_field() {
        match plugin_config_spec().block {
            Some(spec::Block::Object(o)) => assert_eq!(o.attributes.len(), PLUGIN_CONFIG_FIELDS.len()),
            other => panic!("{other:?}"),
        }
    }
}
