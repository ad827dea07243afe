//! The dtle task config (`config { }` of a dtle task) and its validation.

use std::fmt;

use dtle_transport::compression::CompressionSpec;
use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::spec::{canonical_sql_filter, defaults, SQL_FILTER_NAMES};

/// A MySQL connection. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    #[serde(rename = "Host", default)]
    pub host: String,
    #[serde(rename = "Port", default)]
    pub port: u16,
    #[serde(rename = "User", default)]
    pub user: String,
    #[serde(rename = "Password", default)]
    pub password: String,
    #[serde(rename = "Charset", default = "defaults::charset")]
    pub charset: String,
}

impl ConnectionConfig {
    /// `host:port` (IPv6 hosts in brackets).
    pub fn addr(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &Redacted(!self.password.is_empty()))
            .field("charset", &self.charset)
            .finish()
    }
}

struct Redacted(bool);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 {
            f.write_str("<redacted>")
        } else {
            f.write_str("\"\"")
        }
    }
}

/// Kafka target. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    #[serde(rename = "Topic", default)]
    pub topic: String,
    #[serde(rename = "Brokers", default)]
    pub brokers: Vec<String>,
    #[serde(rename = "Converter", default = "defaults::kafka_converter")]
    pub converter: String,
    #[serde(rename = "TopicWithSchemaTable", default = "defaults::kafka_topic_with_schema_table")]
    pub topic_with_schema_table: bool,
    /// Unset means `schema-changes.<Topic>`; see [`KafkaConfig::schema_change_topic`].
    #[serde(rename = "SchemaChangeTopic", default)]
    pub schema_change_topic: Option<String>,
    #[serde(rename = "MessageGroupMaxSize", default = "defaults::kafka_message_group_max_size")]
    pub message_group_max_size: i64,
    /// Milliseconds.
    #[serde(rename = "MessageGroupTimeout", default = "defaults::kafka_message_group_timeout")]
    pub message_group_timeout: i64,
    #[serde(rename = "DateTimeZone", alias = "TimeZone", default = "defaults::kafka_date_time_zone")]
    pub date_time_zone: String,
    #[serde(rename = "User", default)]
    pub user: Option<String>,
    #[serde(rename = "Password", default)]
    pub password: Option<String>,
}

impl KafkaConfig {
    /// The topic DDL messages go to.
    pub fn schema_change_topic(&self) -> String {
        match &self.schema_change_topic {
            Some(t) if !t.is_empty() => t.clone(),
            _ => format!("schema-changes.{}", self.topic),
        }
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("topic", &self.topic)
            .field("brokers", &self.brokers)
            .field("converter", &self.converter)
            .field("topic_with_schema_table", &self.topic_with_schema_table)
            .field("schema_change_topic", &self.schema_change_topic)
            .field("message_group_max_size", &self.message_group_max_size)
            .field("message_group_timeout", &self.message_group_timeout)
            .field("date_time_zone", &self.date_time_zone)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|p| Redacted(!p.is_empty())))
            .finish()
    }
}

/// `SrcOracleConfig`, kept as the object the user wrote (Oracle sources are not implemented).
/// `Debug` hides every `Password`.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct OracleConfig(pub serde_json::Map<String, serde_json::Value>);

impl fmt::Debug for OracleConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.0 {
            if k.eq_ignore_ascii_case("password") {
                m.entry(k, &Redacted(true));
            } else {
                m.entry(k, v);
            }
        }
        m.finish()
    }
}

/// An element of `ReplicateDoDb[].Tables` / `ReplicateIgnoreDb[].Tables`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    #[serde(rename = "TableName", default)]
    pub table_name: String,
    #[serde(rename = "TableRegex", default)]
    pub table_regex: String,
    #[serde(rename = "TableRename", default)]
    pub table_rename: String,
    #[serde(rename = "ColumnMapFrom", default)]
    pub column_map_from: Vec<String>,
    #[serde(rename = "ColumnMapTo", default)]
    pub column_map_to: Vec<String>,
    #[serde(rename = "Where", default)]
    pub r#where: String,
    /// Ignored (dtle accepts it but does not use it).
    #[serde(rename = "TableRenameRegex", default)]
    pub table_rename_regex: Option<String>,
    /// Ignored (dtle accepts it but does not use it).
    #[serde(rename = "TableSchema", default)]
    pub table_schema: Option<String>,
    /// Ignored (dtle accepts it but does not use it).
    #[serde(rename = "TableSchemaRename", default)]
    pub table_schema_rename: Option<String>,
}

/// An element of `ReplicateDoDb` / `ReplicateIgnoreDb`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataSource {
    #[serde(rename = "TableSchema", default)]
    pub table_schema: String,
    #[serde(rename = "TableSchemaRegex", default)]
    pub table_schema_regex: String,
    #[serde(rename = "TableSchemaRename", default)]
    pub table_schema_rename: String,
    #[serde(rename = "Tables", default)]
    pub tables: Vec<Table>,
    /// Ignored (dtle accepts it but does not use it).
    #[serde(rename = "TableSchemaRenameRegex", default)]
    pub table_schema_rename_regex: Option<String>,
    /// Ignored (dtle accepts it but does not use it).
    #[serde(rename = "TableSchemaScope", default)]
    pub table_schema_scope: Option<String>,
}

/// The `config { }` of one dtle task. Field names in job files are dtle's (see `TASK_CONFIG_FIELDS`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// 3.x shape: source (src task) or target (dest task) MySQL.
    #[serde(rename = "ConnectionConfig", default)]
    pub connection_config: Option<ConnectionConfig>,
    /// 4.x shape: source MySQL.
    #[serde(rename = "SrcConnectionConfig", default)]
    pub src_connection_config: Option<ConnectionConfig>,
    /// 4.x shape: target MySQL.
    #[serde(rename = "DestConnectionConfig", default)]
    pub dest_connection_config: Option<ConnectionConfig>,
    #[serde(rename = "SrcOracleConfig", default)]
    pub src_oracle_config: Option<OracleConfig>,
    #[serde(rename = "KafkaConfig", default)]
    pub kafka_config: Option<KafkaConfig>,
    /// 4.x shape, dest task: `mysql` or `kafka`.
    #[serde(rename = "DestType", default)]
    pub dest_type: Option<String>,

    #[serde(rename = "ReplicateDoDb", default)]
    pub replicate_do_db: Vec<DataSource>,
    #[serde(rename = "ReplicateIgnoreDb", default)]
    pub replicate_ignore_db: Vec<DataSource>,

    #[serde(rename = "Gtid", default)]
    pub gtid: String,
    #[serde(rename = "GtidStart", default)]
    pub gtid_start: String,
    #[serde(rename = "AutoGtid", default)]
    pub auto_gtid: bool,
    #[serde(rename = "BinlogFile", default)]
    pub binlog_file: String,
    #[serde(rename = "BinlogPos", default)]
    pub binlog_pos: i64,
    #[serde(rename = "BinlogRelay", default)]
    pub binlog_relay: bool,

    #[serde(rename = "ChunkSize", default = "defaults::chunk_size")]
    pub chunk_size: i64,
    #[serde(rename = "DumpEntryLimit", default = "defaults::dump_entry_limit")]
    pub dump_entry_limit: i64,
    /// dtle (Rust) extension: target connections writing full-copy chunks.
    #[serde(rename = "SnapshotWriters", default = "defaults::snapshot_writers")]
    pub snapshot_writers: i64,
    /// dtle (Rust) extension: full-copy chunks as LOAD DATA LOCAL INFILE when the target allows it.
    #[serde(rename = "SnapshotLoadData", default = "defaults::snapshot_load_data")]
    pub snapshot_load_data: bool,
    /// dtle (Rust) extension: secondary indexes of the tables the copy creates are added once they are filled.
    #[serde(rename = "SnapshotDeferIndexes", default = "defaults::snapshot_defer_indexes")]
    pub snapshot_defer_indexes: bool,
    #[serde(rename = "ReplChanBufferSize", default = "defaults::repl_chan_buffer_size")]
    pub repl_chan_buffer_size: i64,
    /// Bytes.
    #[serde(rename = "GroupMaxSize", default = "defaults::group_max_size")]
    pub group_max_size: i64,
    /// Milliseconds.
    #[serde(rename = "GroupTimeout", default = "defaults::group_timeout")]
    pub group_timeout: i64,
    #[serde(rename = "SqlFilter", default)]
    pub sql_filter: Vec<String>,

    #[serde(rename = "DropTableIfExists", default)]
    pub drop_table_if_exists: bool,
    #[serde(rename = "SkipCreateDbTable", default)]
    pub skip_create_db_table: bool,
    #[serde(rename = "SkipIncrementalCopy", default)]
    pub skip_incremental_copy: bool,
    /// dtle (Rust) extension: skip (and log) DDL on replicated tables that cannot be replayed.
    #[serde(rename = "SkipUnreplayableDdl", default)]
    pub skip_unreplayable_ddl: bool,
    #[serde(rename = "SkipPrivilegeCheck", default)]
    pub skip_privilege_check: bool,
    #[serde(rename = "ExpandSyntaxSupport", default)]
    pub expand_syntax_support: bool,
    /// GiB; 0 = off.
    #[serde(rename = "TrafficAgainstLimits", default)]
    pub traffic_against_limits: i64,
    /// Seconds.
    #[serde(rename = "SlaveNetWriteTimeout", default = "defaults::slave_net_write_timeout")]
    pub slave_net_write_timeout: i64,
    #[serde(rename = "BigTxSrcQueue", default = "defaults::big_tx_src_queue")]
    pub big_tx_src_queue: i64,
    #[serde(rename = "WaitOnJob", default)]
    pub wait_on_job: String,
    #[serde(rename = "TwoWaySync", default)]
    pub two_way_sync: bool,
    #[serde(rename = "TwoWaySyncGtid", default)]
    pub two_way_sync_gtid: String,

    #[serde(rename = "ParallelWorkers", default = "defaults::parallel_workers")]
    pub parallel_workers: i64,
    #[serde(rename = "UseMySQLDependency", default = "defaults::use_mysql_dependency")]
    pub use_mysql_dependency: bool,
    #[serde(rename = "DependencyHistorySize", default = "defaults::dependency_history_size")]
    pub dependency_history_size: i64,
    #[serde(rename = "ForeignKeyChecks", default = "defaults::foreign_key_checks")]
    pub foreign_key_checks: bool,
    #[serde(rename = "BulkInsert1", default = "defaults::bulk_insert1")]
    pub bulk_insert1: i64,
    #[serde(rename = "BulkInsert2", default = "defaults::bulk_insert2")]
    pub bulk_insert2: i64,
    #[serde(rename = "BulkInsert3", default = "defaults::bulk_insert3")]
    pub bulk_insert3: i64,
    #[serde(rename = "RetryTxLimit", default = "defaults::retry_tx_limit")]
    pub retry_tx_limit: i64,
    /// dtle (Rust) extension. Seconds; 0 = off.
    #[serde(rename = "WatchdogTimeout", default = "defaults::watchdog_timeout")]
    pub watchdog_timeout: i64,
    #[serde(rename = "SetGtidNext", default)]
    pub set_gtid_next: bool,
    /// Batch compression on a NATS link; see [`TaskConfig::compression_spec`].
    #[serde(rename = "Compression", default = "defaults::compression")]
    pub compression: String,

    /// Ignored (dtle accepts it but does not use it).
    #[serde(rename = "MaxRetries", default)]
    pub max_retries: Option<i64>,
}

impl Default for TaskConfig {
    /// The config of an empty `config { }` block: every default applied.
    fn default() -> Self {
        serde_json::from_value(serde_json::Value::Object(serde_json::Map::new()))
            .expect("an empty task config always deserializes") // ok: no input, only the field defaults
    }
}

/// The role of a task, from its name (dtle's `TaskTypeFromString`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskRole {
    Src,
    Dest,
}

impl TaskRole {
    /// `src`/`source` → Src; `dst`/`dest`/`destination` → Dest (case-insensitive); else None.
    pub fn from_task_name(name: &str) -> Option<TaskRole> {
        match name.to_ascii_lowercase().as_str() {
            "src" | "source" => Some(TaskRole::Src),
            "dst" | "dest" | "destination" => Some(TaskRole::Dest),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            TaskRole::Src => "src",
            TaskRole::Dest => "dest",
        }
    }
}

/// Where a task writes, from `DestType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestType {
    Mysql,
    Kafka,
}

impl TaskConfig {
    /// `DestType`, parsed (case-insensitive). `Ok(None)` when unset.
    pub fn dest_type(&self) -> Result<Option<DestType>, String> {
        match self.dest_type.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(t) if t.eq_ignore_ascii_case("mysql") => Ok(Some(DestType::Mysql)),
            Some(t) if t.eq_ignore_ascii_case("kafka") => Ok(Some(DestType::Kafka)),
            Some(t) => Err(t.to_string()),
        }
    }

    /// SqlFilter names in dtle's canonical spelling (unknown names are dropped; `validate` rejects them).
    pub fn sql_filters(&self) -> Vec<&'static str> {
        self.sql_filter.iter().filter_map(|n| canonical_sql_filter(n)).collect()
    }

    /// `Compression`, parsed. The error says what is wrong and lists the accepted forms.
    pub fn compression_spec(&self) -> Result<CompressionSpec, String> {
        parse_compression(&self.compression)
    }

    /// Names of the fields that are set but have no effect, for a warning.
    pub fn ignored_fields_set(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.max_retries.is_some() {
            out.push("MaxRetries".to_string());
        }
        for (list, name) in [(&self.replicate_do_db, "ReplicateDoDb"), (&self.replicate_ignore_db, "ReplicateIgnoreDb")]
        {
            for (i, ds) in list.iter().enumerate() {
                if ds.table_schema_rename_regex.is_some() {
                    out.push(format!("{name}[{i}].TableSchemaRenameRegex"));
                }
                if ds.table_schema_scope.is_some() {
                    out.push(format!("{name}[{i}].TableSchemaScope"));
                }
                for (j, t) in ds.tables.iter().enumerate() {
                    for (set, field) in [
                        (t.table_rename_regex.is_some(), "TableRenameRegex"),
                        (t.table_schema.is_some(), "TableSchema"),
                        (t.table_schema_rename.is_some(), "TableSchemaRename"),
                    ] {
                        if set {
                            out.push(format!("{name}[{i}].Tables[{j}].{field}"));
                        }
                    }
                }
            }
        }
        out
    }

    /// dtle treats 0 (and for some fields any value ≤ 0) as "use the default" for these fields
    /// (`SetDefaultForEmpty`); job files written by tools often carry explicit zeros.
    pub(crate) fn apply_zero_defaults(&mut self) {
        if self.chunk_size == 0 {
            self.chunk_size = defaults::CHUNK_SIZE;
        }
        if self.repl_chan_buffer_size == 0 {
            self.repl_chan_buffer_size = defaults::REPL_CHAN_BUFFER_SIZE;
        }
        if self.parallel_workers == 0 {
            self.parallel_workers = defaults::PARALLEL_WORKERS;
        }
        if self.snapshot_writers == 0 {
            self.snapshot_writers = defaults::SNAPSHOT_WRITERS;
        }
        if self.group_max_size == 0 {
            self.group_max_size = defaults::GROUP_MAX_SIZE;
        }
        if self.group_timeout == 0 {
            self.group_timeout = defaults::GROUP_TIMEOUT_MS;
        }
        if let Some(k) = &mut self.kafka_config {
            if k.message_group_max_size == 0 {
                k.message_group_max_size = defaults::KAFKA_MESSAGE_GROUP_MAX_SIZE;
            }
            if k.message_group_timeout == 0 {
                k.message_group_timeout = defaults::KAFKA_MESSAGE_GROUP_TIMEOUT_MS;
            }
        }
    }

    /// Check dtle's rules on this task's config. Returns the first problem; see [`Self::problems`].
    pub fn validate(&self, job: &str, task: &str) -> Result<(), ConfigError> {
        match self.problems(job, task).into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every rule this task's config breaks, in field order.
    pub fn problems(&self, job: &str, task: &str) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let mut bad = |path: String, message: String| {
            errs.push(ConfigError::invalid(job, task, path, message));
        };

        // Connections.
        for (name, conn) in [
            ("ConnectionConfig", &self.connection_config),
            ("SrcConnectionConfig", &self.src_connection_config),
            ("DestConnectionConfig", &self.dest_connection_config),
        ] {
            if let Some(c) = conn {
                check_connection(name, c, &mut bad);
            }
        }
        if self.src_connection_config.is_some() && self.src_oracle_config.is_some() {
            bad(
                "SrcOracleConfig".into(),
                "both SrcConnectionConfig and SrcOracleConfig are set; set only one source".into(),
            );
        }
        if self.dest_connection_config.is_some() && self.kafka_config.is_some() {
            bad("KafkaConfig".into(), "both DestConnectionConfig and KafkaConfig are set; set only one target".into());
        }
        if self.connection_config.is_some() && self.src_connection_config.is_some() {
            bad(
                "ConnectionConfig".into(),
                "both ConnectionConfig (3.x shape) and SrcConnectionConfig (4.x shape) are set; \
                 use SrcConnectionConfig for the source"
                    .into(),
            );
        }
        if let Some(k) = &self.kafka_config {
            check_kafka(k, &mut bad);
        }
        if let Err(t) = self.dest_type() {
            bad("DestType".into(), format!("unknown destination type \"{t}\"; set DestType = \"mysql\" or \"kafka\""));
        }

        // Object selection.
        for (i, ds) in self.replicate_do_db.iter().enumerate() {
            check_do_db(&format!("ReplicateDoDb[{i}]"), ds, &mut bad);
        }
        for (i, ds) in self.replicate_ignore_db.iter().enumerate() {
            let path = format!("ReplicateIgnoreDb[{i}]");
            if ds.table_schema.is_empty() {
                let hint = if ds.table_schema_regex.is_empty() {
                    String::new()
                } else {
                    format!(" (TableSchemaRegex \"{}\" is not supported here)", ds.table_schema_regex)
                };
                bad(
                    format!("{path}.TableSchema"),
                    format!("TableSchema is empty{hint}; ReplicateIgnoreDb needs the exact schema name"),
                );
            }
            for (j, t) in ds.tables.iter().enumerate() {
                if t.table_name.is_empty() {
                    bad(
                        format!("{path}.Tables[{j}].TableName"),
                        format!(
                            "TableName is empty (schema \"{}\"); give the exact table name, or remove \
                             Tables to ignore the whole schema",
                            ds.table_schema
                        ),
                    );
                }
            }
        }

        // Start position.
        if !self.gtid_start.is_empty() && !self.gtid.is_empty() {
            bad(
                "GtidStart".into(),
                format!(
                    "GtidStart \"{}\" is set together with Gtid \"{}\"; dtle computes Gtid from \
                     GtidStart, so leave Gtid empty",
                    self.gtid_start, self.gtid
                ),
            );
        }
        if self.auto_gtid {
            for (set, name, value) in [
                (!self.gtid.is_empty(), "Gtid", &self.gtid),
                (!self.gtid_start.is_empty(), "GtidStart", &self.gtid_start),
                (!self.binlog_file.is_empty(), "BinlogFile", &self.binlog_file),
            ] {
                if set {
                    bad(
                        "AutoGtid".into(),
                        format!(
                            "AutoGtid = true starts from the source's current position, but {name} \
                             is also set (\"{value}\"); set only one of AutoGtid, Gtid, GtidStart \
                             or BinlogFile"
                        ),
                    );
                }
            }
        }
        if !self.gtid_start.is_empty() && !self.binlog_file.is_empty() {
            bad(
                "BinlogFile".into(),
                format!(
                    "BinlogFile \"{}\" is set together with GtidStart \"{}\"; set only one start \
                     position",
                    self.binlog_file, self.gtid_start
                ),
            );
        }
        if self.binlog_pos < 0 {
            bad("BinlogPos".into(), format!("BinlogPos is {}; it must be ≥ 0", self.binlog_pos));
        } else if self.binlog_pos > 0 && self.binlog_file.is_empty() {
            bad(
                "BinlogPos".into(),
                format!("BinlogPos is {} but BinlogFile is empty; set BinlogFile too", self.binlog_pos),
            );
        }
        if self.binlog_relay && !self.binlog_file.is_empty() && self.gtid.is_empty() {
            bad(
                "BinlogRelay".into(),
                format!(
                    "with BinlogRelay = true an incremental-only job must start from a Gtid, not \
                     from BinlogFile \"{}\"; set Gtid",
                    self.binlog_file
                ),
            );
        }

        // Sizes.
        for (name, value, min) in [
            ("ChunkSize", self.chunk_size, 1),
            ("DumpEntryLimit", self.dump_entry_limit, 1),
            ("ReplChanBufferSize", self.repl_chan_buffer_size, 1),
            ("ParallelWorkers", self.parallel_workers, 1),
            ("SnapshotWriters", self.snapshot_writers, 1),
            ("GroupMaxSize", self.group_max_size, 0),
            ("GroupTimeout", self.group_timeout, 0),
            ("TrafficAgainstLimits", self.traffic_against_limits, 0),
            ("SlaveNetWriteTimeout", self.slave_net_write_timeout, 0),
            ("BigTxSrcQueue", self.big_tx_src_queue, 1),
            ("DependencyHistorySize", self.dependency_history_size, 0),
            ("RetryTxLimit", self.retry_tx_limit, 0),
            ("WatchdogTimeout", self.watchdog_timeout, 0),
        ] {
            if value < min {
                let rule = if min == 1 { "> 0" } else { "≥ 0" };
                bad(name.into(), format!("{name} is {value}; it must be {rule}"));
            }
        }
        let (b1, b2, b3) = (self.bulk_insert1, self.bulk_insert2, self.bulk_insert3);
        if !(1 <= b1 && b1 <= b2 && b2 <= b3) {
            let path = if b1 < 1 {
                "BulkInsert1"
            } else if b1 > b2 {
                "BulkInsert2"
            } else {
                "BulkInsert3"
            };
            bad(
                path.into(),
                format!(
                    "BulkInsert1/2/3 are {b1}/{b2}/{b3}; they must satisfy 1 ≤ BulkInsert1 ≤ \
                     BulkInsert2 ≤ BulkInsert3 (defaults {}/{}/{})",
                    defaults::BULK_INSERT1,
                    defaults::BULK_INSERT2,
                    defaults::BULK_INSERT3
                ),
            );
        }

        if let Err(message) = self.compression_spec() {
            bad("Compression".into(), message);
        }

        for (i, name) in self.sql_filter.iter().enumerate() {
            if canonical_sql_filter(name).is_none() {
                let hint = match super::spec::suggest(SQL_FILTER_NAMES.iter().copied(), name) {
                    Some(s) => format!("did you mean \"{s}\"?"),
                    None => format!("known filters: {}", SQL_FILTER_NAMES.join(", ")),
                };
                bad(format!("SqlFilter[{i}]"), format!("unknown filter \"{name}\"; {hint}"));
            }
        }

        errs
    }
}

/// The forms `Compression` accepts, for error messages.
const COMPRESSION_FORMS: &str = "none, lz4, zstd, zstd:<level 1..22>, gzip or gzip:<level 0..9>";

/// Parses a `Compression` value: the forms of [`COMPRESSION_FORMS`] (names case-insensitive). Stricter than
/// [`CompressionSpec::parse`]: no empty value and no level on `none` or `lz4`.
fn parse_compression(value: &str) -> Result<CompressionSpec, String> {
    let invalid = |why: String| format!("Compression \"{value}\" is not valid ({why}); use {COMPRESSION_FORMS}");
    let name = value.split_once(':').map_or(value, |(n, _)| n).trim();
    if name.is_empty() {
        return Err(invalid("no compression named".into()));
    }
    if value.contains(':') && (name.eq_ignore_ascii_case("none") || name.eq_ignore_ascii_case("lz4")) {
        return Err(invalid(format!("{name} takes no level")));
    }
    CompressionSpec::parse(value.trim()).map_err(invalid)
}

fn check_connection(name: &str, c: &ConnectionConfig, bad: &mut impl FnMut(String, String)) {
    if c.host.trim().is_empty() {
        bad(format!("{name}.Host"), "Host is empty; set the MySQL host name or address".into());
    }
    if c.port == 0 {
        bad(format!("{name}.Port"), "Port is 0 or missing; set the MySQL port (e.g. 3306)".into());
    }
}

fn check_kafka(k: &KafkaConfig, bad: &mut impl FnMut(String, String)) {
    if k.topic.trim().is_empty() {
        bad("KafkaConfig.Topic".into(), "Topic is empty; set the base topic name".into());
    }
    if k.brokers.is_empty() {
        bad("KafkaConfig.Brokers".into(), "Brokers is empty; list at least one broker as \"host:port\"".into());
    }
    for (i, b) in k.brokers.iter().enumerate() {
        if b.trim().is_empty() {
            bad(format!("KafkaConfig.Brokers[{i}]"), "broker address is empty; write \"host:port\"".into());
        }
    }
    if !k.converter.eq_ignore_ascii_case("json") {
        bad(
            "KafkaConfig.Converter".into(),
            format!("Converter \"{}\" is not supported; only \"json\" is implemented", k.converter),
        );
    }
    for (name, v) in
        [("MessageGroupMaxSize", k.message_group_max_size), ("MessageGroupTimeout", k.message_group_timeout)]
    {
        if v < 0 {
            bad(format!("KafkaConfig.{name}"), format!("{name} is {v}; it must be ≥ 0"));
        }
    }
}

fn check_regex(path: &str, what: &str, pattern: &str, bad: &mut impl FnMut(String, String)) {
    if let Err(e) = regex::Regex::new(pattern) {
        // The regex crate's message spans several lines; keep the first useful one.
        let msg = e.to_string();
        let short =
            msg.lines().rev().find(|l| l.starts_with("error:")).unwrap_or_else(|| msg.lines().next().unwrap_or(""));
        bad(
            path.to_string(),
            format!("{what} \"{pattern}\" is not a valid regular expression ({short}); fix the pattern"),
        );
    }
}

fn check_do_db(path: &str, ds: &DataSource, bad: &mut impl FnMut(String, String)) {
    match (ds.table_schema.is_empty(), ds.table_schema_regex.is_empty()) {
        (true, true) => bad(
            path.to_string(),
            "neither TableSchema nor TableSchemaRegex is set; set exactly one of TableSchema or \
             TableSchemaRegex"
                .into(),
        ),
        (false, false) => bad(
            path.to_string(),
            format!(
                "both TableSchema \"{}\" and TableSchemaRegex \"{}\" are set; set exactly one of \
                 TableSchema or TableSchemaRegex",
                ds.table_schema, ds.table_schema_regex
            ),
        ),
        _ => {}
    }
    if !ds.table_schema_regex.is_empty() {
        check_regex(&format!("{path}.TableSchemaRegex"), "TableSchemaRegex", &ds.table_schema_regex, bad);
        if ds.table_schema_rename.is_empty() {
            bad(
                format!("{path}.TableSchemaRename"),
                format!(
                    "TableSchemaRegex \"{}\" needs TableSchemaRename (e.g. \"new_${{1}}\"; write \
                     \"new_$${{1}}\" in HCL)",
                    ds.table_schema_regex
                ),
            );
        }
    }
    for (j, t) in ds.tables.iter().enumerate() {
        let tpath = format!("{path}.Tables[{j}]");
        match (t.table_name.is_empty(), t.table_regex.is_empty()) {
            (true, true) => bad(
                tpath.clone(),
                "neither TableName nor TableRegex is set; set exactly one of TableName or TableRegex".into(),
            ),
            (false, false) => bad(
                tpath.clone(),
                format!(
                    "both TableName \"{}\" and TableRegex \"{}\" are set; set exactly one of \
                     TableName or TableRegex",
                    t.table_name, t.table_regex
                ),
            ),
            _ => {}
        }
        if !t.table_regex.is_empty() {
            check_regex(&format!("{tpath}.TableRegex"), "TableRegex", &t.table_regex, bad);
            if t.table_rename.is_empty() {
                bad(
                    format!("{tpath}.TableRename"),
                    format!(
                        "TableRegex \"{}\" needs TableRename (e.g. \"new_${{1}}\"; write \
                         \"new_$${{1}}\" in HCL)",
                        t.table_regex
                    ),
                );
            }
        }
        if !t.column_map_to.is_empty() && t.column_map_to.len() != t.column_map_from.len() {
            bad(
                format!("{tpath}.ColumnMapTo"),
                format!(
                    "ColumnMapTo has {} columns but ColumnMapFrom has {}; make ColumnMapTo empty or \
                     list one target column per ColumnMapFrom column",
                    t.column_map_to.len(),
                    t.column_map_from.len()
                ),
            );
        }
    }
}
