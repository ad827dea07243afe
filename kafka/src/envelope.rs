//! Debezium-compatible messages, byte for byte as Debezium 3.x's MySQL connector and Kafka Connect's JsonConverter
//! (schemas enabled) write them: a key struct (the row's key columns in key order; no key for tables without one)
//! and a value envelope (`before`, `after`, `source`, `transaction`, `op`, `ts_ms`, `ts_us`, `ts_ns`), each as
//! `{"schema": ..., "payload": ...}`; tombstones after deletes; schema-change events for DDL. Pure functions: no I/O.
//! `tests/compat/` compares them with Debezium's own recorded output.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;

use dtle_mysql::schema::TableMeta;
use dtle_mysql::{RowChange, Value};

use crate::connect::Schema;
use crate::error::{KafkaError, Result};
use crate::types::{column_kind, default_json, field_schema, write_json_str, write_value, Kind};

/// What the envelopes need from the job's KafkaConfig.
#[derive(Clone, Debug)]
pub struct EnvelopeOptions {
    /// KafkaConfig.Topic: the topic prefix, Debezium's `source.name` and the schema-name prefix.
    pub server_name: String,
    /// `<Topic>.<db>.<table>` when true, else everything in `<Topic>`.
    pub topic_with_schema_table: bool,
    /// Where DDL goes (`schema-changes.<Topic>` unless set).
    pub schema_change_topic: String,
    /// KafkaConfig.DateTimeZone, in which DATETIME values are read.
    pub date_time_zone: DateTimeZone,
}

/// KafkaConfig.DateTimeZone: a fixed offset, or a zone of the tz database (its offset, DST included, at each value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateTimeZone {
    /// Seconds east of UTC.
    Fixed(i64),
    Named(chrono_tz::Tz),
}

impl Default for DateTimeZone {
    fn default() -> Self {
        DateTimeZone::Fixed(0)
    }
}

impl DateTimeZone {
    /// The zone's offset (seconds east of UTC) for a wall-clock time given as seconds since 1970-01-01 00:00 of
    /// that wall clock. An ambiguous time (the hour repeated when DST ends) takes the earlier offset; a time that
    /// does not exist (skipped when DST starts) the offset before the change, as MySQL does when converting.
    pub fn offset_at_local(&self, local_secs: i64) -> i64 {
        use chrono::{Offset, TimeZone};
        match self {
            DateTimeZone::Fixed(offset) => *offset,
            DateTimeZone::Named(tz) => {
                let Some(naive) = chrono::DateTime::from_timestamp(local_secs, 0).map(|d| d.naive_utc()) else {
                    return 0;
                };
                match tz.offset_from_local_datetime(&naive).earliest() {
                    Some(o) => i64::from(o.fix().local_minus_utc()),
                    // In a gap: the offset in force just before it.
                    None => i64::from(tz.offset_from_utc_datetime(&naive).fix().local_minus_utc()),
                }
            }
        }
    }
}

/// Parses KafkaConfig.DateTimeZone: `UTC` (the default), a fixed offset like `+08:00`, or a tz database name like
/// `Asia/Shanghai`.
pub fn parse_time_zone(tz: &str) -> std::result::Result<DateTimeZone, String> {
    let t = tz.trim();
    if t.is_empty()
        || ["utc", "z", "gmt", "etc/utc", "etc/gmt", "+00:00", "-00:00"].contains(&t.to_ascii_lowercase().as_str())
    {
        return Ok(DateTimeZone::Fixed(0));
    }
    let bad = || {
        format!("{tz:?} is not a time zone: write UTC, a fixed offset like +08:00, or a tz database name like Asia/Shanghai")
    };
    let (sign, rest) = match t.as_bytes()[0] {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return t.parse::<chrono_tz::Tz>().map(DateTimeZone::Named).map_err(|_| bad()),
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    let h: i64 = h.parse().map_err(|_| bad())?;
    let m: i64 = m.parse().map_err(|_| bad())?;
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(DateTimeZone::Fixed(sign * (h * 3600 + m * 60)))
}

/// `source.snapshot`: Debezium 3.x marks the first record of the full copy, the first and last of each table and
/// the last of all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Snapshot {
    /// A binlog event.
    #[default]
    False,
    True,
    First,
    FirstInDataCollection,
    LastInDataCollection,
    Last,
}

impl Snapshot {
    pub fn as_str(self) -> &'static str {
        match self {
            Snapshot::False => "false",
            Snapshot::True => "true",
            Snapshot::First => "first",
            Snapshot::FirstInDataCollection => "first_in_data_collection",
            Snapshot::LastInDataCollection => "last_in_data_collection",
            Snapshot::Last => "last",
        }
    }
}

/// Where a change was read, for the envelope's `source` block.
#[derive(Clone, Debug, Default)]
pub struct SourceInfo {
    pub snapshot: Snapshot,
    /// `uuid:gno` or MariaDB `domain-server-seq`; `None` in the snapshot.
    pub gtid: Option<String>,
    pub file: String,
    pub pos: u64,
    pub server_id: u64,
    /// Source commit time (snapshot: read time), milliseconds.
    pub ts_ms: u64,
}

/// One Kafka message to produce.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub topic: Arc<str>,
    /// `None` for a table without a key (Debezium sends such rows without a key).
    pub key: Option<Vec<u8>>,
    /// `None`: a tombstone.
    pub value: Option<Vec<u8>>,
    /// `db.table` (or the database of a DDL), for error messages.
    pub table: Arc<str>,
}

struct ColumnPlan {
    name: String,
    /// `"name":`, escaped once for every row.
    field: Vec<u8>,
    kind: Kind,
    optional: bool,
    /// The column's default as JSON: in the schema, and written for a null value as JsonConverter does
    /// (`replace.null.with.default`, on by default).
    default: Option<Vec<u8>>,
}

/// Everything about one table that does not change from row to row: topic, schemas (serialized once), column kinds.
struct TablePlan {
    meta: Arc<TableMeta>,
    topic: Arc<str>,
    label: Arc<str>,
    key_prefix: Vec<u8>,
    value_prefix: Vec<u8>,
    columns: Vec<ColumnPlan>,
}

/// Kafka topic names allow `[a-zA-Z0-9._-]`; anything else becomes `_` (as Debezium does).
pub fn sanitize_topic(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect()
}

/// `io.debezium.connector.mysql.Source` of Debezium 3.x.
fn source_schema() -> Schema {
    let f = |name: &str, ty: &'static str, optional: bool| (name.to_string(), Schema::primitive(ty, optional));
    Schema::structure(
        vec![
            f("version", "string", false),
            f("connector", "string", false),
            f("name", "string", false),
            f("ts_ms", "int64", false),
            (
                "snapshot".into(),
                Schema::primitive("string", true)
                    .named("io.debezium.data.Enum")
                    .version(1)
                    .param(
                        "allowed",
                        "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental",
                    )
                    .default_json(b"\"false\"".to_vec()),
            ),
            f("db", "string", false),
            f("sequence", "string", true),
            f("ts_us", "int64", true),
            f("ts_ns", "int64", true),
            f("table", "string", true),
            f("server_id", "int64", false),
            f("gtid", "string", true),
            f("file", "string", false),
            f("pos", "int64", false),
            f("row", "int32", false),
            f("thread", "int64", true),
            f("query", "string", true),
        ],
        false,
    )
    .named("io.debezium.connector.mysql.Source")
    .version(1)
}

/// The envelope's `transaction` block (null unless Debezium's `provide.transaction.metadata` is on).
fn transaction_schema() -> Schema {
    Schema::structure(
        vec![
            ("id".into(), Schema::primitive("string", false)),
            ("total_order".into(), Schema::primitive("int64", false)),
            ("data_collection_order".into(), Schema::primitive("int64", false)),
        ],
        true,
    )
    .named("event.block")
    .version(1)
}

/// The items of `tableChanges` in schema-change events (`io.debezium.connector.schema.Change`).
fn table_change_schema() -> Schema {
    let f = |name: &str, ty: &'static str, optional: bool| (name.to_string(), Schema::primitive(ty, optional));
    let strings = |name: &str| (name.to_string(), Schema::array(Schema::primitive("string", false), true));
    let column = Schema::structure(
        vec![
            f("name", "string", false),
            f("jdbcType", "int32", false),
            f("nativeType", "int32", true),
            f("typeName", "string", false),
            f("typeExpression", "string", true),
            f("charsetName", "string", true),
            f("length", "int32", true),
            f("scale", "int32", true),
            f("position", "int32", false),
            f("optional", "boolean", true),
            f("autoIncremented", "boolean", true),
            f("generated", "boolean", true),
            f("comment", "string", true),
            f("defaultValueExpression", "string", true),
            strings("enumValues"),
        ],
        false,
    )
    .named("io.debezium.connector.schema.Column")
    .version(1);
    let table = Schema::structure(
        vec![
            f("defaultCharsetName", "string", true),
            strings("primaryKeyColumnNames"),
            ("columns".into(), Schema::array(column, false)),
            f("comment", "string", true),
        ],
        true,
    )
    .named("io.debezium.connector.schema.Table")
    .version(1);
    Schema::structure(vec![f("type", "string", false), f("id", "string", false), ("table".into(), table)], false)
        .named("io.debezium.connector.schema.Change")
        .version(1)
}

/// The connector version written in `source.version`.
pub const SOURCE_VERSION: &str = concat!("dtle-", env!("CARGO_PKG_VERSION"));

/// Builds messages; keeps one plan per table (rebuilt when the table's definition changes).
pub struct Encoder {
    opts: EnvelopeOptions,
    /// Per target schema, per target table (looked up per row without building a key).
    plans: HashMap<String, HashMap<String, Arc<TablePlan>>>,
    source_schema: Schema,
    /// Column defaults (SQL text as the source prints it) per source schema and table, from the `CREATE TABLE`
    /// statements the encoder saw ([`Encoder::note_create_table`]).
    defaults: HashMap<(String, String), crate::ddl::Defaults>,
}

impl Encoder {
    pub fn new(opts: EnvelopeOptions) -> Encoder {
        Encoder { opts, plans: HashMap::new(), source_schema: source_schema(), defaults: HashMap::new() }
    }

    /// The topic of a table's row changes.
    pub fn topic_for(&self, target_schema: &str, target_table: &str) -> String {
        if self.opts.topic_with_schema_table {
            sanitize_topic(&format!("{}.{}.{}", self.opts.server_name, target_schema, target_table))
        } else {
            sanitize_topic(&self.opts.server_name)
        }
    }

    fn plan(&mut self, table: &Arc<TableMeta>) -> Result<Arc<TablePlan>> {
        if let Some(p) = self.plans.get(&table.target_schema).and_then(|t| t.get(&table.target_name)) {
            if Arc::ptr_eq(&p.meta, table)
                || (p.meta.columns == table.columns && p.meta.key_columns == table.key_columns)
            {
                return Ok(p.clone());
            }
        }
        let plan = Arc::new(self.build_plan(table)?);
        self.plans.entry(table.target_schema.clone()).or_default().insert(table.target_name.clone(), plan.clone());
        Ok(plan)
    }

    fn build_plan(&self, table: &Arc<TableMeta>) -> Result<TablePlan> {
        let label: Arc<str> = table.source_name().into();
        let defaults = self.defaults.get(&(table.target_schema.clone(), table.target_name.clone()));
        let columns = table
            .columns
            .iter()
            .map(|c| {
                let kind = column_kind(c).map_err(|reason| KafkaError::Convert {
                    table: table.source_name(),
                    column: c.name.clone(),
                    column_type: c.column_type.clone(),
                    reason: format!("{reason}; leave the table out of the job or change the column's type"),
                })?;
                let mut field = Vec::with_capacity(c.name.len() + 3);
                write_json_str(&mut field, &c.name);
                field.push(b':');
                let default = defaults
                    .and_then(|d| d.get(&c.name))
                    .and_then(|d| d.as_ref())
                    .and_then(|sql| default_json(&kind, c.nullable, sql, &self.opts.date_time_zone));
                Ok(ColumnPlan { name: c.name.clone(), field, kind, optional: c.nullable, default })
            })
            .collect::<Result<Vec<_>>>()?;
        let topic = self.topic_for(&table.target_schema, &table.target_name);
        if topic.len() > 249 {
            return Err(KafkaError::InvalidConfig {
                field: "KafkaConfig.Topic".into(),
                value: self.opts.server_name.clone(),
                reason: format!("the topic of {label} would be {topic:?}, longer than Kafka's 249 characters: use a shorter Topic, rename the table (TableRename) or set TopicWithSchemaTable = false"),
            });
        }
        let prefix = format!("{}.{}.{}", self.opts.server_name, table.target_schema, table.target_name);
        let column_schema =
            |c: &ColumnPlan, optional: bool| (c.name.clone(), field_schema(&c.kind, optional, c.default.clone()));
        let key_schema =
            Schema::structure(table.key_columns.iter().map(|&i| column_schema(&columns[i], false)).collect(), false)
                .named(format!("{prefix}.Key"));
        let row_schema = Schema::structure(columns.iter().map(|c| column_schema(c, c.optional)).collect(), true)
            .named(format!("{prefix}.Value"));
        let envelope = Schema::structure(
            vec![
                ("before".into(), row_schema.clone()),
                ("after".into(), row_schema),
                ("source".into(), self.source_schema.clone()),
                ("transaction".into(), transaction_schema()),
                ("op".into(), Schema::primitive("string", false)),
                ("ts_ms".into(), Schema::primitive("int64", true)),
                ("ts_us".into(), Schema::primitive("int64", true)),
                ("ts_ns".into(), Schema::primitive("int64", true)),
            ],
            false,
        )
        .named(format!("{prefix}.Envelope"))
        .version(2);
        let mut key_prefix = b"{\"schema\":".to_vec();
        key_schema.write(&mut key_prefix, None);
        key_prefix.extend_from_slice(b",\"payload\":");
        let mut value_prefix = b"{\"schema\":".to_vec();
        envelope.write(&mut value_prefix, None);
        value_prefix.extend_from_slice(b",\"payload\":");
        Ok(TablePlan { meta: table.clone(), topic: topic.into(), label, key_prefix, value_prefix, columns })
    }

    fn write_row(&self, out: &mut Vec<u8>, plan: &TablePlan, row: &[Value]) -> Result<()> {
        out.push(b'{');
        for (i, c) in plan.columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&c.field);
            self.write_cell(out, plan, i, row.get(i).unwrap_or(&Value::Null), c.optional)?;
        }
        out.push(b'}');
        Ok(())
    }

    /// Column `i` of a row; `optional` as in the schema the value goes with. A null (a zero date included) is the
    /// column's default when it has one, as JsonConverter writes it.
    fn write_cell(&self, out: &mut Vec<u8>, plan: &TablePlan, i: usize, v: &Value, optional: bool) -> Result<()> {
        let c = &plan.columns[i];
        let start = out.len();
        write_value(out, &c.kind, v, optional || c.default.is_some(), &self.opts.date_time_zone).map_err(|reason| {
            KafkaError::Convert {
                table: plan.label.to_string(),
                column: c.name.clone(),
                column_type: plan.meta.columns[i].column_type.clone(),
                reason,
            }
        })?;
        if let Some(d) = &c.default {
            if &out[start..] == b"null" {
                out.truncate(start);
                out.extend_from_slice(d);
            }
        }
        Ok(())
    }

    /// The record key: `None` for a table without a key, as Debezium sends it.
    fn key(&self, plan: &TablePlan, row: &[Value]) -> Result<Option<Vec<u8>>> {
        if plan.meta.key_columns.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(plan.key_prefix.len() + 64);
        out.extend_from_slice(&plan.key_prefix);
        out.push(b'{');
        for (n, &i) in plan.meta.key_columns.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&plan.columns[i].field);
            // Key fields are required in the key schema, so zero dates are written as the epoch there.
            self.write_cell(&mut out, plan, i, row.get(i).unwrap_or(&Value::Null), false)?;
        }
        out.extend_from_slice(b"}}");
        Ok(Some(out))
    }

    fn write_source(&self, out: &mut Vec<u8>, src: &SourceInfo, db: &str, table: Option<&str>, row: u32) {
        out.extend_from_slice(b"{\"version\":");
        write_json_str(out, SOURCE_VERSION);
        out.extend_from_slice(b",\"connector\":\"mysql\",\"name\":");
        write_json_str(out, &self.opts.server_name);
        let _ = write!(out, ",\"ts_ms\":{},\"snapshot\":\"{}\",\"db\":", src.ts_ms, src.snapshot.as_str());
        write_json_str(out, db);
        let _ = write!(
            out,
            ",\"sequence\":null,\"ts_us\":{},\"ts_ns\":{},\"table\":",
            src.ts_ms * 1000,
            src.ts_ms * 1_000_000
        );
        match table {
            Some(t) => write_json_str(out, t),
            None => out.extend_from_slice(b"null"),
        }
        let _ = write!(out, ",\"server_id\":{},\"gtid\":", src.server_id);
        match &src.gtid {
            Some(g) => write_json_str(out, g),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"file\":");
        write_json_str(out, &src.file);
        let _ = write!(out, ",\"pos\":{},\"row\":{},\"thread\":null,\"query\":null}}", src.pos, row);
    }

    #[allow(clippy::too_many_arguments)]
    fn envelope(
        &self,
        plan: &TablePlan,
        op: u8,
        before: Option<&[Value]>,
        after: Option<&[Value]>,
        src: &SourceInfo,
        row: u32,
        now_ns: u64,
    ) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(plan.value_prefix.len() + 256);
        out.extend_from_slice(&plan.value_prefix);
        out.extend_from_slice(b"{\"before\":");
        match before {
            Some(r) => self.write_row(&mut out, plan, r)?,
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"after\":");
        match after {
            Some(r) => self.write_row(&mut out, plan, r)?,
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"source\":");
        self.write_source(&mut out, src, &plan.meta.schema, Some(&plan.meta.name), row);
        let _ = write!(
            out,
            ",\"transaction\":null,\"op\":\"{}\",\"ts_ms\":{},\"ts_us\":{},\"ts_ns\":{}}}}}",
            op as char,
            now_ns / 1_000_000,
            now_ns / 1000,
            now_ns
        );
        Ok(out)
    }

    fn record(&self, plan: &TablePlan, key: Option<Vec<u8>>, value: Option<Vec<u8>>) -> Record {
        Record { topic: plan.topic.clone(), key, value, table: plan.label.clone() }
    }

    /// The messages of one row change: `c`, `u`, or `d` followed by a tombstone. An update that changes the key
    /// becomes a `d` (and tombstone) for the old key and a `c` for the new one, as Debezium does. Rows of tables
    /// without a key have no key (Debezium's), and their deletes are followed by a tombstone too. `now_ns`: when the
    /// message is made (the envelope's `ts_ms`/`ts_us`/`ts_ns`).
    pub fn row_change(
        &mut self,
        change: &RowChange,
        src: &SourceInfo,
        row: u32,
        now_ns: u64,
        out: &mut Vec<Record>,
    ) -> Result<()> {
        let plan = self.plan(change.table())?;
        match change {
            RowChange::Insert { after, .. } => {
                let key = self.key(&plan, after)?;
                let value = self.envelope(&plan, b'c', None, Some(after), src, row, now_ns)?;
                out.push(self.record(&plan, key, Some(value)));
            }
            RowChange::Update { before, after, .. } => {
                let old_key = self.key(&plan, before)?;
                let new_key = self.key(&plan, after)?;
                if old_key == new_key {
                    let value = self.envelope(&plan, b'u', Some(before), Some(after), src, row, now_ns)?;
                    out.push(self.record(&plan, new_key, Some(value)));
                } else {
                    let value = self.envelope(&plan, b'd', Some(before), None, src, row, now_ns)?;
                    out.push(self.record(&plan, old_key.clone(), Some(value)));
                    out.push(self.record(&plan, old_key, None));
                    let value = self.envelope(&plan, b'c', None, Some(after), src, row, now_ns)?;
                    out.push(self.record(&plan, new_key, Some(value)));
                }
            }
            RowChange::Delete { before, .. } => {
                let key = self.key(&plan, before)?;
                let value = self.envelope(&plan, b'd', Some(before), None, src, row, now_ns)?;
                out.push(self.record(&plan, key.clone(), Some(value)));
                out.push(self.record(&plan, key, None));
            }
        }
        Ok(())
    }

    /// One row of the full copy: op `r` (`src.snapshot` says which of the copy's records it is).
    pub fn snapshot_row(
        &mut self,
        table: &Arc<TableMeta>,
        row: &[Value],
        src: &SourceInfo,
        now_ns: u64,
        out: &mut Vec<Record>,
    ) -> Result<()> {
        let plan = self.plan(table)?;
        let key = self.key(&plan, row)?;
        let value = self.envelope(&plan, b'r', None, Some(row), src, 0, now_ns)?;
        out.push(self.record(&plan, key, Some(value)));
        Ok(())
    }

    /// Remembers the column defaults of a table from its `CREATE TABLE` statement (`SHOW CREATE TABLE` of the full
    /// copy, or one replayed from the binlog), for the schemas and for null values (Debezium's schemas carry column
    /// defaults, and JsonConverter writes a null as the default). Plans made since are rebuilt.
    pub fn note_create_table(&mut self, table: &TableMeta, create_sql: &str) {
        let Some((_, defaults)) = crate::ddl::create_table_defaults(create_sql) else { return };
        self.plans.remove(&table.target_schema);
        self.defaults.insert((table.target_schema.clone(), table.target_name.clone()), defaults);
    }

    /// Whether the column defaults of `table` are known (from a `CREATE TABLE` seen).
    pub fn knows_defaults(&self, table: &TableMeta) -> bool {
        self.defaults.contains_key(&(table.target_schema.clone(), table.target_name.clone()))
    }

    /// Follows a DDL statement of the binlog (as run on the target: target names, `schema` its default database): defaults of `ALTER TABLE ... ADD/MODIFY/CHANGE/ALTER COLUMN`,
    /// `CREATE TABLE` (and `DROP`/`RENAME` forgetting or moving them).
    pub fn note_ddl(&mut self, schema: &str, sql: &str) {
        // The statement may name another database than its default one: every plan is rebuilt (DDL is rare).
        if crate::ddl::apply_ddl_defaults(&mut self.defaults, schema, sql) {
            self.plans.clear();
        }
    }

    /// A schema-change event (Debezium's `SchemaChangeKey` / `SchemaChangeValue`) for the schema-change topic.
    /// `table`: the one table the statement is about (Debezium's `source.table`), if any. `tableChanges` is empty:
    /// dtle does not describe table structures.
    pub fn schema_change(
        &self,
        database: &str,
        table: Option<&str>,
        ddl: &str,
        src: &SourceInfo,
        now_ns: u64,
    ) -> Record {
        let key_schema = Schema::structure(vec![("databaseName".into(), Schema::primitive("string", false))], false)
            .named("io.debezium.connector.mysql.SchemaChangeKey")
            .version(1);
        let value_schema = Schema::structure(
            vec![
                ("source".into(), self.source_schema.clone()),
                ("ts_ms".into(), Schema::primitive("int64", false)),
                ("databaseName".into(), Schema::primitive("string", true)),
                ("schemaName".into(), Schema::primitive("string", true)),
                ("ddl".into(), Schema::primitive("string", true)),
                ("tableChanges".into(), Schema::array(table_change_schema(), false)),
            ],
            false,
        )
        .named("io.debezium.connector.mysql.SchemaChangeValue")
        .version(1);
        let mut key = b"{\"schema\":".to_vec();
        key_schema.write(&mut key, None);
        key.extend_from_slice(b",\"payload\":{\"databaseName\":");
        write_json_str(&mut key, database);
        key.extend_from_slice(b"}}");
        let mut value = b"{\"schema\":".to_vec();
        value_schema.write(&mut value, None);
        value.extend_from_slice(b",\"payload\":{\"source\":");
        self.write_source(&mut value, src, database, table, 0);
        let _ = write!(value, ",\"ts_ms\":{},\"databaseName\":", now_ns / 1_000_000);
        write_json_str(&mut value, database);
        value.extend_from_slice(b",\"schemaName\":null,\"ddl\":");
        write_json_str(&mut value, ddl);
        value.extend_from_slice(b",\"tableChanges\":[]}}");
        Record {
            topic: sanitize_topic(&self.opts.schema_change_topic).into(),
            key: Some(key),
            value: Some(value),
            table: database.into(),
        }
    }
}
