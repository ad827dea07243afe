//! Debezium-compatible messages: a key struct (the row's key columns) and a value envelope (`before`, `after`,
//! `source`, `op`, `ts_ms`), each as `{"schema": ..., "payload": ...}` like Kafka Connect's JSON converter with
//! schemas enabled; tombstones after deletes; schema-change events for DDL. Pure functions: no I/O.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;

use dtle_mysql::schema::TableMeta;
use dtle_mysql::{RowChange, Value};
use serde_json::{json, Value as Json};

use crate::error::{KafkaError, Result};
use crate::types::{column_kind, field_schema, write_json_str, write_value, Kind};

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

/// Where a change was read, for the envelope's `source` block.
#[derive(Clone, Debug, Default)]
pub struct SourceInfo {
    pub snapshot: bool,
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
    pub key: Vec<u8>,
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

fn source_schema() -> Json {
    json!({
        "type": "struct",
        "fields": [
            {"type": "string", "optional": false, "field": "version"},
            {"type": "string", "optional": false, "field": "connector"},
            {"type": "string", "optional": false, "field": "name"},
            {"type": "int64", "optional": false, "field": "ts_ms"},
            {"type": "string", "optional": true, "name": "io.debezium.data.Enum", "version": 1,
             "parameters": {"allowed": "true,last,false,incremental"}, "default": "false", "field": "snapshot"},
            {"type": "string", "optional": false, "field": "db"},
            {"type": "string", "optional": true, "field": "sequence"},
            {"type": "string", "optional": true, "field": "table"},
            {"type": "int64", "optional": false, "field": "server_id"},
            {"type": "string", "optional": true, "field": "gtid"},
            {"type": "string", "optional": false, "field": "file"},
            {"type": "int64", "optional": false, "field": "pos"},
            {"type": "int32", "optional": false, "field": "row"},
            {"type": "int64", "optional": true, "field": "thread"},
            {"type": "string", "optional": true, "field": "query"}
        ],
        "optional": false,
        "name": "io.debezium.connector.mysql.Source",
        "field": "source"
    })
}

/// The connector version written in `source.version`.
pub const SOURCE_VERSION: &str = concat!("dtle-", env!("CARGO_PKG_VERSION"));

/// Builds messages; keeps one plan per table (rebuilt when the table's definition changes).
pub struct Encoder {
    opts: EnvelopeOptions,
    /// Per target schema, per target table (looked up per row without building a key).
    plans: HashMap<String, HashMap<String, Arc<TablePlan>>>,
    source_schema: Json,
}

impl Encoder {
    pub fn new(opts: EnvelopeOptions) -> Encoder {
        Encoder { opts, plans: HashMap::new(), source_schema: source_schema() }
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
                Ok(ColumnPlan { name: c.name.clone(), field, kind, optional: c.nullable })
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
        let key_fields: Vec<Json> =
            table.key_columns.iter().map(|&i| field_schema(&columns[i].kind, false, &columns[i].name)).collect();
        let key_schema =
            json!({"type": "struct", "fields": key_fields, "optional": false, "name": format!("{prefix}.Key")});
        let row_schema = |field: &str| {
            json!({
                "type": "struct",
                "fields": columns.iter().map(|c| field_schema(&c.kind, c.optional, &c.name)).collect::<Vec<_>>(),
                "optional": true,
                "name": format!("{prefix}.Value"),
                "field": field
            })
        };
        let envelope = json!({
            "type": "struct",
            "fields": [
                row_schema("before"),
                row_schema("after"),
                self.source_schema.clone(),
                {"type": "string", "optional": false, "field": "op"},
                {"type": "int64", "optional": true, "field": "ts_ms"}
            ],
            "optional": false,
            "name": format!("{prefix}.Envelope"),
            "version": 1
        });
        Ok(TablePlan {
            meta: table.clone(),
            topic: topic.into(),
            label,
            key_prefix: format!("{{\"schema\":{key_schema},\"payload\":").into_bytes(),
            value_prefix: format!("{{\"schema\":{envelope},\"payload\":").into_bytes(),
            columns,
        })
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

    /// Column `i` of a row; `optional` as in the schema the value goes with.
    fn write_cell(&self, out: &mut Vec<u8>, plan: &TablePlan, i: usize, v: &Value, optional: bool) -> Result<()> {
        let c = &plan.columns[i];
        write_value(out, &c.kind, v, optional, &self.opts.date_time_zone).map_err(|reason| KafkaError::Convert {
            table: plan.label.to_string(),
            column: c.name.clone(),
            column_type: plan.meta.columns[i].column_type.clone(),
            reason,
        })
    }

    fn key(&self, plan: &TablePlan, row: &[Value]) -> Result<Vec<u8>> {
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
        Ok(out)
    }

    fn write_source(&self, out: &mut Vec<u8>, src: &SourceInfo, db: &str, table: Option<&str>, row: u32) {
        out.extend_from_slice(b"{\"version\":");
        write_json_str(out, SOURCE_VERSION);
        out.extend_from_slice(b",\"connector\":\"mysql\",\"name\":");
        write_json_str(out, &self.opts.server_name);
        let _ = write!(out, ",\"ts_ms\":{},\"snapshot\":\"{}\",\"db\":", src.ts_ms, src.snapshot);
        write_json_str(out, db);
        out.extend_from_slice(b",\"sequence\":null,\"table\":");
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
        now_ms: u64,
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
        let _ = write!(out, ",\"op\":\"{}\",\"ts_ms\":{}}}}}", op as char, now_ms);
        Ok(out)
    }

    fn record(&self, plan: &TablePlan, key: Vec<u8>, value: Option<Vec<u8>>) -> Record {
        Record { topic: plan.topic.clone(), key, value, table: plan.label.clone() }
    }

    /// The messages of one row change: `c`, `u`, or `d` followed by a tombstone. An update that changes the key
    /// becomes a `d` (and tombstone) for the old key and a `c` for the new one, as Debezium does. Tables without a
    /// key get an empty key struct (so all their rows keep their order on one partition) and no tombstones.
    pub fn row_change(
        &mut self,
        change: &RowChange,
        src: &SourceInfo,
        row: u32,
        now_ms: u64,
        out: &mut Vec<Record>,
    ) -> Result<()> {
        let plan = self.plan(change.table())?;
        match change {
            RowChange::Insert { after, .. } => {
                let key = self.key(&plan, after)?;
                let value = self.envelope(&plan, b'c', None, Some(after), src, row, now_ms)?;
                out.push(self.record(&plan, key, Some(value)));
            }
            RowChange::Update { before, after, .. } => {
                let old_key = self.key(&plan, before)?;
                let new_key = self.key(&plan, after)?;
                if old_key == new_key {
                    let value = self.envelope(&plan, b'u', Some(before), Some(after), src, row, now_ms)?;
                    out.push(self.record(&plan, new_key, Some(value)));
                } else {
                    let value = self.envelope(&plan, b'd', Some(before), None, src, row, now_ms)?;
                    out.push(self.record(&plan, old_key.clone(), Some(value)));
                    out.push(self.record(&plan, old_key, None));
                    let value = self.envelope(&plan, b'c', None, Some(after), src, row, now_ms)?;
                    out.push(self.record(&plan, new_key, Some(value)));
                }
            }
            RowChange::Delete { before, .. } => {
                let key = self.key(&plan, before)?;
                let value = self.envelope(&plan, b'd', Some(before), None, src, row, now_ms)?;
                out.push(self.record(&plan, key.clone(), Some(value)));
                if plan.meta.has_key() {
                    out.push(self.record(&plan, key, None));
                }
            }
        }
        Ok(())
    }

    /// One row of the full copy: op `r`.
    pub fn snapshot_row(
        &mut self,
        table: &Arc<TableMeta>,
        row: &[Value],
        src: &SourceInfo,
        now_ms: u64,
        out: &mut Vec<Record>,
    ) -> Result<()> {
        let plan = self.plan(table)?;
        let key = self.key(&plan, row)?;
        let value = self.envelope(&plan, b'r', None, Some(row), src, 0, now_ms)?;
        out.push(self.record(&plan, key, Some(value)));
        Ok(())
    }

    /// A schema-change event (Debezium's `SchemaChangeKey` / `SchemaChangeValue`) for the schema-change topic.
    pub fn schema_change(&self, database: &str, ddl: &str, src: &SourceInfo, now_ms: u64) -> Record {
        let key_schema = json!({
            "type": "struct",
            "fields": [{"type": "string", "optional": false, "field": "databaseName"}],
            "optional": false,
            "name": "io.debezium.connector.mysql.SchemaChangeKey",
            "version": 1
        });
        let value_schema = json!({
            "type": "struct",
            "fields": [
                self.source_schema.clone(),
                {"type": "int64", "optional": false, "field": "ts_ms"},
                {"type": "string", "optional": true, "field": "databaseName"},
                {"type": "string", "optional": true, "field": "schemaName"},
                {"type": "string", "optional": true, "field": "ddl"},
                {"type": "array", "items": {
                    "type": "struct",
                    "fields": [
                        {"type": "string", "optional": false, "field": "type"},
                        {"type": "string", "optional": false, "field": "id"}
                    ],
                    "optional": false,
                    "name": "io.debezium.connector.schema.Change",
                    "version": 1
                 }, "optional": false, "field": "tableChanges"}
            ],
            "optional": false,
            "name": "io.debezium.connector.mysql.SchemaChangeValue",
            "version": 1
        });
        let mut key = format!("{{\"schema\":{key_schema},\"payload\":{{\"databaseName\":").into_bytes();
        write_json_str(&mut key, database);
        key.extend_from_slice(b"}}");
        let mut value = format!("{{\"schema\":{value_schema},\"payload\":{{\"source\":").into_bytes();
        self.write_source(&mut value, src, database, None, 0);
        let _ = write!(value, ",\"ts_ms\":{now_ms},\"databaseName\":");
        write_json_str(&mut value, database);
        value.extend_from_slice(b",\"schemaName\":null,\"ddl\":");
        write_json_str(&mut value, ddl);
        value.extend_from_slice(b",\"tableChanges\":[]}}");
        Record {
            topic: sanitize_topic(&self.opts.schema_change_topic).into(),
            key,
            value: Some(value),
            table: database.into(),
        }
    }
}
