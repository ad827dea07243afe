//! The field tables of the dtle task config: one place that names every field, its kind and its
//! default. The serde defaults in `task.rs` read the constants in [`defaults`], the same constants
//! that appear in these tables, and the Nomad hclspec is generated from the tables.

/// What a field holds. `List` and `Object` nest, so the tables describe the whole task config tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Bool,
    Int,
    /// An integer in 0..=65535 (a TCP port). The hclspec type is `number`.
    Port,
    String,
    List(&'static FieldKind),
    Object(&'static [FieldSpec]),
}

impl FieldKind {
    /// The cty type expression Nomad's hclspec uses for an attribute of this kind.
    pub fn cty_type(&self) -> String {
        match self {
            FieldKind::Bool => "bool".to_string(),
            FieldKind::Int | FieldKind::Port => "number".to_string(),
            FieldKind::String => "string".to_string(),
            FieldKind::List(inner) => format!("list({})", inner.cty_type()),
            FieldKind::Object(fields) => {
                let inner: Vec<String> = fields.iter().map(|f| format!("{}={}", f.name, f.kind.cty_type())).collect();
                format!("object({{{}}})", inner.join(","))
            }
        }
    }

    /// Human wording used in "wrong type" errors.
    pub fn describe(&self) -> String {
        match self {
            FieldKind::Bool => "a bool (true or false)".to_string(),
            FieldKind::Int => "an integer".to_string(),
            FieldKind::Port => "a port number (integer 1..65535)".to_string(),
            FieldKind::String => "a string".to_string(),
            FieldKind::List(inner) => match inner {
                FieldKind::Object(_) => "a list of objects ([{ ... }, ...])".to_string(),
                other => format!("a list of {}", other.describe_plural()),
            },
            FieldKind::Object(_) => "an object ({ Key = value, ... })".to_string(),
        }
    }

    fn describe_plural(&self) -> &'static str {
        match self {
            FieldKind::Bool => "bools",
            FieldKind::Int | FieldKind::Port => "integers",
            FieldKind::String => "strings",
            FieldKind::List(_) => "lists",
            FieldKind::Object(_) => "objects",
        }
    }

    /// The nested field table if this kind is an object or a list of objects.
    pub fn object_fields(&self) -> Option<&'static [FieldSpec]> {
        match self {
            FieldKind::Object(fields) => Some(fields),
            FieldKind::List(FieldKind::Object(fields)) => Some(fields),
            _ => None,
        }
    }
}

/// The default of a field, as a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldDefault {
    /// No default: the field is absent (`None`) unless set, or it is required.
    None,
    Bool(bool),
    Int(i64),
    Str(&'static str),
    EmptyList,
}

impl FieldDefault {
    /// The default as the JSON value that a parse of an empty config yields for the field.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            FieldDefault::None => serde_json::Value::Null,
            FieldDefault::Bool(b) => serde_json::Value::Bool(*b),
            FieldDefault::Int(i) => serde_json::Value::from(*i),
            FieldDefault::Str(s) => serde_json::Value::String((*s).to_string()),
            FieldDefault::EmptyList => serde_json::Value::Array(Vec::new()),
        }
    }

    /// The default as an HCL literal (what hclspec's `default` block takes), if there is one.
    pub fn hcl_literal(&self) -> Option<String> {
        match self {
            FieldDefault::None => None,
            FieldDefault::Bool(b) => Some(b.to_string()),
            FieldDefault::Int(i) => Some(i.to_string()),
            FieldDefault::Str(s) => Some(serde_json::Value::String((*s).to_string()).to_string()),
            FieldDefault::EmptyList => Some("[]".to_string()),
        }
    }
}

/// One row of a field table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The field name in job files (dtle's spelling, PascalCase).
    pub name: &'static str,
    pub kind: FieldKind,
    pub default: FieldDefault,
    /// Required by dtle's hclspec (checked by `validate`, not by the parser).
    pub required: bool,
    /// Accepted for compatibility but has no effect.
    pub ignored: bool,
    /// Other names accepted for this field (e.g. `TimeZone` for `DateTimeZone`).
    pub aliases: &'static [&'static str],
    pub doc: &'static str,
}

const fn f(name: &'static str, kind: FieldKind, default: FieldDefault, doc: &'static str) -> FieldSpec {
    FieldSpec { name, kind, default, required: false, ignored: false, aliases: &[], doc }
}

const fn required(name: &'static str, kind: FieldKind, doc: &'static str) -> FieldSpec {
    FieldSpec { name, kind, default: FieldDefault::None, required: true, ignored: false, aliases: &[], doc }
}

const fn ignored(name: &'static str, kind: FieldKind) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        default: FieldDefault::None,
        required: false,
        ignored: true,
        aliases: &[],
        doc: "Accepted for compatibility with dtle job files; has no effect.",
    }
}

/// Default values, each defined once. The serde `default = "..."` functions return these, and the
/// field tables below list them.
pub mod defaults {
    pub const CHARSET: &str = "utf8mb4";
    pub const CHUNK_SIZE: i64 = 2000;
    /// dtle's default. Bytes of row data per part of a big transaction; see [`DUMP_ENTRY_LIMIT_RANGE`].
    pub const DUMP_ENTRY_LIMIT: i64 = 64 * 1024 * 1024;
    /// The part sizes dtle uses: a value outside is brought into the range (with a warning, except for the
    /// default). Parts wait in memory on both sides and their SQL text takes about 3x their size, so the top is
    /// what keeps a big transaction's memory bounded (tests/bench/bigtx.sh).
    pub const DUMP_ENTRY_LIMIT_RANGE: std::ops::RangeInclusive<i64> = (64 << 10)..=(2 << 20);
    /// Target connections writing full-copy chunks at once.
    pub const SNAPSHOT_WRITERS: i64 = dtle_mysql::snapshot_apply::SNAPSHOT_WRITERS as i64;
    /// The most target connections `SnapshotWriters` may ask for.
    pub const SNAPSHOT_WRITERS_MAX: i64 = 64;
    pub const SNAPSHOT_LOAD_DATA: bool = true;
    pub const SNAPSHOT_DEFER_INDEXES: bool = true;
    pub const REPL_CHAN_BUFFER_SIZE: i64 = 32;
    pub const GROUP_MAX_SIZE: i64 = 1;
    pub const GROUP_TIMEOUT_MS: i64 = 100;
    pub const SLAVE_NET_WRITE_TIMEOUT: i64 = 28800;
    pub const BIG_TX_SRC_QUEUE: i64 = 3;
    pub const PARALLEL_WORKERS: i64 = 1;
    pub const USE_MYSQL_DEPENDENCY: bool = true;
    pub const DEPENDENCY_HISTORY_SIZE: i64 = 2500;
    pub const FOREIGN_KEY_CHECKS: bool = true;
    pub const BULK_INSERT1: i64 = 4;
    pub const BULK_INSERT2: i64 = 8;
    pub const BULK_INSERT3: i64 = 128;
    pub const RETRY_TX_LIMIT: i64 = 5;
    /// Seconds an apply may make no progress before the task restarts its pipeline (0 = never).
    pub const WATCHDOG_TIMEOUT_S: i64 = 300;
    pub const KAFKA_CONVERTER: &str = "json";
    pub const KAFKA_TOPIC_WITH_SCHEMA_TABLE: bool = true;
    pub const KAFKA_MESSAGE_GROUP_MAX_SIZE: i64 = 1;
    pub const KAFKA_MESSAGE_GROUP_TIMEOUT_MS: i64 = 100;
    pub const KAFKA_DATE_TIME_ZONE: &str = "UTC";
    /// Compression of batches on a NATS link (parsed by `dtle_transport::compression::CompressionSpec`).
    pub const COMPRESSION: &str = "zstd:1";

    pub fn charset() -> String {
        CHARSET.to_string()
    }
    pub fn chunk_size() -> i64 {
        CHUNK_SIZE
    }
    pub fn dump_entry_limit() -> i64 {
        DUMP_ENTRY_LIMIT
    }
    pub fn snapshot_writers() -> i64 {
        SNAPSHOT_WRITERS
    }
    pub fn snapshot_load_data() -> bool {
        SNAPSHOT_LOAD_DATA
    }
    pub fn snapshot_defer_indexes() -> bool {
        SNAPSHOT_DEFER_INDEXES
    }
    pub fn repl_chan_buffer_size() -> i64 {
        REPL_CHAN_BUFFER_SIZE
    }
    pub fn group_max_size() -> i64 {
        GROUP_MAX_SIZE
    }
    pub fn group_timeout() -> i64 {
        GROUP_TIMEOUT_MS
    }
    pub fn slave_net_write_timeout() -> i64 {
        SLAVE_NET_WRITE_TIMEOUT
    }
    pub fn big_tx_src_queue() -> i64 {
        BIG_TX_SRC_QUEUE
    }
    pub fn parallel_workers() -> i64 {
        PARALLEL_WORKERS
    }
    pub fn use_mysql_dependency() -> bool {
        USE_MYSQL_DEPENDENCY
    }
    pub fn dependency_history_size() -> i64 {
        DEPENDENCY_HISTORY_SIZE
    }
    pub fn foreign_key_checks() -> bool {
        FOREIGN_KEY_CHECKS
    }
    pub fn bulk_insert1() -> i64 {
        BULK_INSERT1
    }
    pub fn bulk_insert2() -> i64 {
        BULK_INSERT2
    }
    pub fn bulk_insert3() -> i64 {
        BULK_INSERT3
    }
    pub fn retry_tx_limit() -> i64 {
        RETRY_TX_LIMIT
    }
    pub fn watchdog_timeout() -> i64 {
        WATCHDOG_TIMEOUT_S
    }
    pub fn kafka_converter() -> String {
        KAFKA_CONVERTER.to_string()
    }
    pub fn kafka_topic_with_schema_table() -> bool {
        KAFKA_TOPIC_WITH_SCHEMA_TABLE
    }
    pub fn kafka_message_group_max_size() -> i64 {
        KAFKA_MESSAGE_GROUP_MAX_SIZE
    }
    pub fn kafka_message_group_timeout() -> i64 {
        KAFKA_MESSAGE_GROUP_TIMEOUT_MS
    }
    pub fn kafka_date_time_zone() -> String {
        KAFKA_DATE_TIME_ZONE.to_string()
    }
    pub fn compression() -> String {
        COMPRESSION.to_string()
    }
}

use FieldDefault as D;
use FieldKind as K;

const STRING_LIST: FieldKind = K::List(&K::String);

/// `ConnectionConfig`, `SrcConnectionConfig`, `DestConnectionConfig`.
pub const CONNECTION_CONFIG_FIELDS: &[FieldSpec] = &[
    required("Host", K::String, "MySQL host name or address."),
    required("Port", K::Port, "MySQL port."),
    required("User", K::String, "MySQL user."),
    required("Password", K::String, "MySQL password."),
    f("Charset", K::String, D::Str(defaults::CHARSET), "Connection character set."),
];

/// `SrcOracleConfig` (accepted, kept opaque; Oracle sources are not implemented).
pub const ORACLE_CONFIG_FIELDS: &[FieldSpec] = &[
    required("Host", K::String, "Oracle host."),
    required("Port", K::Port, "Oracle port."),
    required("User", K::String, "Oracle user."),
    required("Password", K::String, "Oracle password."),
    f("ServiceName", K::String, D::None, "Oracle service name (dtle's docs default to XE)."),
    f("Scn", K::Int, D::None, "Start SCN; 0 means now."),
];

/// `KafkaConfig`.
pub const KAFKA_CONFIG_FIELDS: &[FieldSpec] = &[
    required("Topic", K::String, "Base topic; also the Debezium source name and schema-name prefix."),
    required("Brokers", STRING_LIST, "Kafka brokers, host:port."),
    f("Converter", K::String, D::Str(defaults::KAFKA_CONVERTER), "Message format; only json is implemented."),
    f(
        "TopicWithSchemaTable",
        K::Bool,
        D::Bool(defaults::KAFKA_TOPIC_WITH_SCHEMA_TABLE),
        "Topic is <Topic>.<schema>.<table>; false sends everything to <Topic>.",
    ),
    f("SchemaChangeTopic", K::String, D::None, "Topic for DDL messages; unset means schema-changes.<Topic>."),
    f(
        "MessageGroupMaxSize",
        K::Int,
        D::Int(defaults::KAFKA_MESSAGE_GROUP_MAX_SIZE),
        "Batch transactions up to this many bytes before producing.",
    ),
    f(
        "MessageGroupTimeout",
        K::Int,
        D::Int(defaults::KAFKA_MESSAGE_GROUP_TIMEOUT_MS),
        "Flush a partial batch after this many milliseconds.",
    ),
    FieldSpec {
        aliases: &["TimeZone"],
        ..f(
            "DateTimeZone",
            K::String,
            D::Str(defaults::KAFKA_DATE_TIME_ZONE),
            "Time zone used to interpret DATETIME values.",
        )
    },
    f("User", K::String, D::None, "SASL user."),
    f("Password", K::String, D::None, "SASL password."),
];

/// An element of `ReplicateDoDb[].Tables` / `ReplicateIgnoreDb[].Tables`.
pub const TABLE_FIELDS: &[FieldSpec] = &[
    f("TableName", K::String, D::Str(""), "Exact table name. Set this or TableRegex."),
    f("TableRegex", K::String, D::Str(""), "Table name regex; requires TableRename."),
    f("TableRename", K::String, D::Str(""), "Target table name, or a regex expansion (${1}) with TableRegex."),
    f("ColumnMapFrom", STRING_LIST, D::EmptyList, "Source columns to replicate, in target order."),
    f("ColumnMapTo", STRING_LIST, D::EmptyList, "Target columns for ColumnMapFrom (empty or the same length)."),
    f("Where", K::String, D::Str(""), "SQL boolean expression over the row's columns."),
    ignored("TableRenameRegex", K::String),
    ignored("TableSchema", K::String),
    ignored("TableSchemaRename", K::String),
];

/// An element of `ReplicateDoDb` / `ReplicateIgnoreDb`.
pub const DATA_SOURCE_FIELDS: &[FieldSpec] = &[
    f("TableSchema", K::String, D::Str(""), "Exact schema name. Set this or TableSchemaRegex."),
    f("TableSchemaRegex", K::String, D::Str(""), "Schema name regex; requires TableSchemaRename."),
    f(
        "TableSchemaRename",
        K::String,
        D::Str(""),
        "Target schema name, or a regex expansion (${1}) with TableSchemaRegex.",
    ),
    f(
        "Tables",
        K::List(&K::Object(TABLE_FIELDS)),
        D::EmptyList,
        "Tables to select; empty means all tables of the schema.",
    ),
    ignored("TableSchemaRenameRegex", K::String),
    ignored("TableSchemaScope", K::String),
];

/// The SqlFilter names dtle knows (matched case-insensitively).
pub const SQL_FILTER_NAMES: &[&str] = &[
    "NoDML",
    "NoDMLInsert",
    "NoDMLDelete",
    "NoDMLUpdate",
    "NoDDL",
    "NoDDLCreateSchema",
    "NoDDLCreateTable",
    "NoDDLDropSchema",
    "NoDDLDropTable",
    "NoDDLDropIndex",
    "NoDDLTruncate",
    "NoDDLAlterTable",
    "NoDDLAlterTableAddColumn",
    "NoDDLAlterTableDropColumn",
    "NoDDLAlterTableModifyColumn",
    "NoDDLAlterTableChangeColumn",
    "NoDDLAlterTableAlterColumn",
];

/// The canonical spelling of a SqlFilter name, if it is one dtle knows.
pub fn canonical_sql_filter(name: &str) -> Option<&'static str> {
    SQL_FILTER_NAMES.iter().copied().find(|known| known.eq_ignore_ascii_case(name.trim()))
}

/// Every top-level field of a dtle task `config { }` block (both the 3.x and the 4.x shape).
pub const TASK_CONFIG_FIELDS: &[FieldSpec] = &[
    f(
        "ConnectionConfig",
        K::Object(CONNECTION_CONFIG_FIELDS),
        D::None,
        "3.x shape: source MySQL in the src task, target MySQL in the dest task.",
    ),
    f("SrcConnectionConfig", K::Object(CONNECTION_CONFIG_FIELDS), D::None, "4.x shape: source MySQL (src task)."),
    f(
        "DestConnectionConfig",
        K::Object(CONNECTION_CONFIG_FIELDS),
        D::None,
        "4.x shape: target MySQL (src task). Either this or KafkaConfig.",
    ),
    f("SrcOracleConfig", K::Object(ORACLE_CONFIG_FIELDS), D::None, "Oracle source (accepted, not implemented)."),
    f("KafkaConfig", K::Object(KAFKA_CONFIG_FIELDS), D::None, "Kafka target."),
    f("DestType", K::String, D::None, "4.x shape, dest task only: mysql or kafka."),
    f(
        "ReplicateDoDb",
        K::List(&K::Object(DATA_SOURCE_FIELDS)),
        D::EmptyList,
        "Objects to replicate; empty means the whole instance.",
    ),
    f(
        "ReplicateIgnoreDb",
        K::List(&K::Object(DATA_SOURCE_FIELDS)),
        D::EmptyList,
        "Objects to exclude; wins over ReplicateDoDb.",
    ),
    f("Gtid", K::String, D::Str(""), "Executed GTID set; non-empty means incremental only, after this set."),
    f("GtidStart", K::String, D::Str(""), "Start GTID point; Gtid = source executed set - GtidStart."),
    f("AutoGtid", K::Bool, D::Bool(false), "Incremental only, from the source's current GTID set."),
    f("BinlogFile", K::String, D::Str(""), "Start binlog file (incremental only)."),
    f("BinlogPos", K::Int, D::Int(0), "Start binlog position."),
    f("BinlogRelay", K::Bool, D::Bool(false), "Relay the source binlog to local disk first."),
    f("ChunkSize", K::Int, D::Int(defaults::CHUNK_SIZE), "Rows per SELECT chunk in full copy."),
    f(
        "DumpEntryLimit",
        K::Int,
        D::Int(defaults::DUMP_ENTRY_LIMIT),
        "Bytes of row data per part of a big source transaction (sent and applied part by part in one target \
         transaction). Effective range 64 KiB..2 MiB: larger values (the default, dtle's 64 MiB, included) mean 2 MiB, \
         which bounds memory; a value set outside the range is warned about.",
    ),
    f(
        "SnapshotWriters",
        K::Int,
        D::Int(defaults::SNAPSHOT_WRITERS),
        "Target connections writing full-copy chunks at once (1..64; 0 = the default).",
    ),
    f(
        "SnapshotLoadData",
        K::Bool,
        D::Bool(defaults::SNAPSHOT_LOAD_DATA),
        "Full-copy chunks go as LOAD DATA LOCAL INFILE when the target's local_infile is ON; false = multi-row INSERTs.",
    ),
    f(
        "SnapshotDeferIndexes",
        K::Bool,
        D::Bool(defaults::SNAPSHOT_DEFER_INDEXES),
        "Tables the full copy creates get their plain secondary indexes once filled; false = created with the table.",
    ),
    f("ReplChanBufferSize", K::Int, D::Int(defaults::REPL_CHAN_BUFFER_SIZE), "Queue length in transaction groups."),
    f(
        "GroupMaxSize",
        K::Int,
        D::Int(defaults::GROUP_MAX_SIZE),
        "Send a batch once its transactions reach this many bytes.",
    ),
    f(
        "GroupTimeout",
        K::Int,
        D::Int(defaults::GROUP_TIMEOUT_MS),
        "Flush a partial batch after this many milliseconds.",
    ),
    f("SqlFilter", STRING_LIST, D::EmptyList, "Event filters, e.g. NoDDL, NoDMLDelete."),
    f("DropTableIfExists", K::Bool, D::Bool(false), "Full copy sends DROP TABLE IF EXISTS before CREATE TABLE."),
    f("SkipCreateDbTable", K::Bool, D::Bool(false), "Do not create schemas or tables on the target."),
    f("SkipIncrementalCopy", K::Bool, D::Bool(false), "Full copy only."),
    f("SkipPrivilegeCheck", K::Bool, D::Bool(false), "Skip the privilege checks on source and target."),
    f("ExpandSyntaxSupport", K::Bool, D::Bool(false), "Also replicate user/DCL statements and routines."),
    f("TrafficAgainstLimits", K::Int, D::Int(0), "Fail the src task after this many GiB sent; 0 = off."),
    f(
        "SlaveNetWriteTimeout",
        K::Int,
        D::Int(defaults::SLAVE_NET_WRITE_TIMEOUT),
        "net_write_timeout for the binlog dump session (seconds).",
    ),
    f(
        "BigTxSrcQueue",
        K::Int,
        D::Int(defaults::BIG_TX_SRC_QUEUE),
        "Un-acked big-transaction parts in flight before src pauses.",
    ),
    f(
        "SkipUnreplayableDdl",
        K::Bool,
        D::Bool(false),
        "Skip (and log) DDL on replicated tables that dtle cannot replay instead of stopping the job.",
    ),
    f("WaitOnJob", K::String, D::Str(""), "Start only after this job has finished."),
    f("TwoWaySync", K::Bool, D::Bool(false), "Bidirectional sync inside one job."),
    f("TwoWaySyncGtid", K::String, D::Str(""), "Start Gtid for the reverse direction; \"auto\" = current."),
    f("ParallelWorkers", K::Int, D::Int(defaults::PARALLEL_WORKERS), "Number of dest apply workers."),
    f(
        "UseMySQLDependency",
        K::Bool,
        D::Bool(defaults::USE_MYSQL_DEPENDENCY),
        "Use the binlog logical clock; false = compute writesets.",
    ),
    f(
        "DependencyHistorySize",
        K::Int,
        D::Int(defaults::DEPENDENCY_HISTORY_SIZE),
        "Writeset history rows for dtle's own dependency tracking.",
    ),
    f(
        "ForeignKeyChecks",
        K::Bool,
        D::Bool(defaults::FOREIGN_KEY_CHECKS),
        "Incremental apply runs with foreign_key_checks=1.",
    ),
    f("BulkInsert1", K::Int, D::Int(defaults::BULK_INSERT1), "Rows of the smallest cached multi-row insert."),
    f("BulkInsert2", K::Int, D::Int(defaults::BULK_INSERT2), "Rows of the middle cached multi-row insert."),
    f("BulkInsert3", K::Int, D::Int(defaults::BULK_INSERT3), "Rows of the largest cached multi-row insert."),
    f("RetryTxLimit", K::Int, D::Int(defaults::RETRY_TX_LIMIT), "Retries of a transaction on deadlock."),
    f(
        "WatchdogTimeout",
        K::Int,
        D::Int(defaults::WATCHDOG_TIMEOUT_S),
        "Seconds an apply may make no progress (DDL excepted) before the task restarts from the target's position; 0 = off.",
    ),
    f("SetGtidNext", K::Bool, D::Bool(false), "Keep source GTIDs on the target (set gtid_next)."),
    f(
        "Compression",
        K::String,
        D::Str(defaults::COMPRESSION),
        "Batch compression on a NATS link: none, lz4, zstd, zstd:<1..22>, gzip or gzip:<0..9>.",
    ),
    ignored("MaxRetries", K::Int),
];

/// Find a field (by name or alias) in a table.
pub fn find_field<'a>(fields: &'a [FieldSpec], name: &str) -> Option<&'a FieldSpec> {
    fields.iter().find(|f| f.name == name || f.aliases.contains(&name))
}

/// A close valid name for a misspelt one: same name in another case, or a small edit distance.
pub fn suggest<'a>(candidates: impl IntoIterator<Item = &'a str>, wrong: &str) -> Option<&'a str> {
    let wrong_lower = wrong.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for cand in candidates {
        let cand_lower = cand.to_ascii_lowercase();
        if cand_lower == wrong_lower {
            return Some(cand);
        }
        let d = levenshtein(&cand_lower, &wrong_lower);
        let limit = (cand.len().max(wrong.len()) / 4).clamp(1, 3);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}
