//! Converts engine changes to the `dtle.v1` wire messages and back. Decoding checks every index and value, so a
//! damaged or hostile batch is an error naming what is wrong, never a panic.

use std::collections::HashMap;
use std::sync::Arc;

use dtle_metadata::{GtidState, Position};
use dtle_mysql::schema::{ColumnMeta, TableMeta};
use dtle_mysql::snapshot::{SnapshotResume, TableResume};
use dtle_mysql::{Change, EventSource, RowChange, Transaction, TxEvent, Value};
use dtle_proto::v1 as w;

#[derive(Debug, thiserror::Error)]
#[error("invalid batch from the src task: {0}")]
pub struct WireError(pub String);

/// Encodes changes with a table dictionary (each table definition once per batch).
pub fn encode_batch(changes: &[Change]) -> w::ChangeBatch {
    let mut enc = Encoder { tables: Vec::new(), index: HashMap::new() };
    let changes = changes.iter().map(|c| enc.change(c)).collect();
    w::ChangeBatch { tables: enc.tables, changes }
}

struct Encoder {
    tables: Vec<w::Table>,
    index: HashMap<*const TableMeta, u32>,
}

impl Encoder {
    fn table(&mut self, t: &Arc<TableMeta>) -> u32 {
        let key = Arc::as_ptr(t);
        if let Some(i) = self.index.get(&key) {
            return *i;
        }
        let i = self.tables.len() as u32;
        self.tables.push(w::Table {
            schema: t.schema.clone(),
            name: t.name.clone(),
            target_schema: t.target_schema.clone(),
            target_name: t.target_name.clone(),
            columns: t
                .columns
                .iter()
                .map(|c| w::Column {
                    name: c.name.clone(),
                    data_type: c.data_type.clone(),
                    column_type: c.column_type.clone(),
                    unsigned: c.unsigned,
                    nullable: c.nullable,
                    generated: c.generated,
                    charset: c.charset.clone(),
                    collation: c.collation.clone(),
                })
                .collect(),
            key_columns: t.key_columns.iter().map(|&k| k as u32).collect(),
            estimated_rows: t.estimated_rows,
            column_subset: t.column_subset,
        });
        self.index.insert(key, i);
        i
    }

    fn change(&mut self, c: &Change) -> w::Change {
        use w::change::Kind;
        let kind = match c {
            // `resume_from` stays in process: a src over NATS never resumes a copy (it always starts it again).
            Change::SnapshotStart { position, tables, estimated_rows, resume_from } => {
                Kind::SnapshotStart(w::SnapshotStart {
                    position: Some(position_to_wire(position)),
                    tables: tables.iter().map(|t| self.table(t)).collect(),
                    estimated_rows: *estimated_rows,
                    resume_from: resume_from.as_ref().map(position_to_wire),
                })
            }
            Change::CreateTable { table, create_sql, drop_first } => Kind::CreateTable(w::CreateTable {
                table: self.table(table),
                create_sql: create_sql.clone(),
                drop_first: *drop_first,
            }),
            Change::SnapshotRows { table, rows } => Kind::SnapshotRows(w::SnapshotRows {
                table: self.table(table),
                rows: rows.iter().map(|r| row_to_wire(r)).collect(),
            }),
            Change::SnapshotTableDone { table } => Kind::SnapshotTableDone(self.table(table)),
            Change::SnapshotDone { position } => Kind::SnapshotDone(position_to_wire(position)),
            Change::Tx(tx) => Kind::Tx(w::Transaction {
                gtid: tx.gtid.clone(),
                position: Some(position_to_wire(&tx.position)),
                source_timestamp: tx.source_timestamp,
                size: tx.size as u64,
                partial: tx.partial,
                origin: tx.origin.clone(),
                event_pos: tx.sources.iter().map(|s| s.pos).collect(),
                event_row: tx.sources.iter().map(|s| s.row).collect(),
                events: tx
                    .events
                    .iter()
                    .map(|e| w::TxEvent {
                        kind: Some(match e {
                            TxEvent::Row(r) => w::tx_event::Kind::Row(self.row_change(r)),
                            TxEvent::Ddl { schema, sql, tables } => w::tx_event::Kind::Ddl(w::Ddl {
                                schema: schema.clone(),
                                sql: sql.clone(),
                                tables: tables.iter().flat_map(|(s, t)| [s.clone(), t.clone()]).collect(),
                            }),
                        }),
                    })
                    .collect(),
            }),
            Change::Heartbeat { position, source_timestamp } => Kind::Heartbeat(w::Heartbeat {
                position: Some(position_to_wire(position)),
                source_timestamp: *source_timestamp,
            }),
        };
        w::Change { kind: Some(kind) }
    }

    fn row_change(&mut self, r: &RowChange) -> w::RowChange {
        match r {
            RowChange::Insert { table, after } => {
                w::RowChange { kind: 1, table: self.table(table), before: None, after: Some(row_to_wire(after)) }
            }
            RowChange::Update { table, before, after } => w::RowChange {
                kind: 2,
                table: self.table(table),
                before: Some(row_to_wire(before)),
                after: Some(row_to_wire(after)),
            },
            RowChange::Delete { table, before } => {
                w::RowChange { kind: 3, table: self.table(table), before: Some(row_to_wire(before)), after: None }
            }
        }
    }
}

fn pack_date(year: u16, month: u8, day: u8) -> u32 {
    (u32::from(year) << 9) | (u32::from(month) << 5) | u32::from(day)
}

fn unpack_date(d: u32) -> Result<(u16, u8, u8), WireError> {
    let (year, month, day) = (d >> 9, (d >> 5) & 0xf, d & 0x1f);
    if year > 9999 {
        return Err(WireError(format!("date with year {year}")));
    }
    Ok((year as u16, month as u8, day as u8))
}

fn row_to_wire(row: &[Value]) -> w::Row {
    w::Row { values: row.iter().map(value_to_wire).collect() }
}

fn value_to_wire(v: &Value) -> w::Value {
    use w::value::Kind;
    let kind = match v {
        Value::Null => None,
        Value::Int(i) => Some(Kind::Int(*i)),
        Value::UInt(u) => Some(Kind::Uint(*u)),
        Value::Float(f) => Some(Kind::Float(*f)),
        Value::Double(d) => Some(Kind::Double(*d)),
        Value::Decimal(s) => Some(Kind::Decimal(s.clone())),
        Value::Bytes(b) => Some(Kind::Bytes(b.clone())),
        Value::Date { year, month, day } => Some(Kind::Date(pack_date(*year, *month, *day))),
        Value::DateTime { year, month, day, hour, minute, second, micros } => Some(Kind::DateTime(w::DateTime {
            date: pack_date(*year, *month, *day),
            seconds_of_day: u32::from(*hour) * 3600 + u32::from(*minute) * 60 + u32::from(*second),
            micros: *micros,
        })),
        Value::Timestamp { unix_secs, micros } => {
            Some(Kind::Timestamp(w::Timestamp { unix_secs: *unix_secs, micros: *micros }))
        }
        Value::Time { negative, hours, minutes, seconds, micros } => Some(Kind::Time(w::Time {
            negative: *negative,
            hours: *hours,
            minutes: u32::from(*minutes),
            seconds: u32::from(*seconds),
            micros: *micros,
        })),
        Value::Year(y) => Some(Kind::Year(u32::from(*y))),
        Value::Enum(e) => Some(Kind::Enum(u32::from(*e))),
        Value::Set(s) => Some(Kind::Set(*s)),
        Value::Bit(b) => Some(Kind::Bit(*b)),
        Value::Json(j) => Some(Kind::Json(j.clone())),
        Value::Absent => Some(Kind::Absent(true)),
    };
    w::Value { kind }
}

fn small<T: TryFrom<u32>>(v: u32, what: &str) -> Result<T, WireError> {
    T::try_from(v).map_err(|_| WireError(format!("{what} {v} out of range")))
}

fn value_from_wire(v: w::Value) -> Result<Value, WireError> {
    use w::value::Kind;
    Ok(match v.kind {
        None => Value::Null,
        Some(Kind::Int(i)) => Value::Int(i),
        Some(Kind::Uint(u)) => Value::UInt(u),
        Some(Kind::Float(f)) => Value::Float(f),
        Some(Kind::Double(d)) => Value::Double(d),
        Some(Kind::Decimal(s)) => {
            if !s.bytes().all(|b| b.is_ascii_digit() || b == b'-' || b == b'.') || s.is_empty() {
                return Err(WireError(format!("decimal {s:?}")));
            }
            Value::Decimal(s)
        }
        Some(Kind::Bytes(b)) => Value::Bytes(b),
        Some(Kind::Date(d)) => {
            let (year, month, day) = unpack_date(d)?;
            Value::Date { year, month, day }
        }
        Some(Kind::DateTime(dt)) => {
            let (year, month, day) = unpack_date(dt.date)?;
            if dt.seconds_of_day >= 86_400 || dt.micros >= 1_000_000 {
                return Err(WireError("datetime out of range".into()));
            }
            Value::DateTime {
                year,
                month,
                day,
                hour: (dt.seconds_of_day / 3600) as u8,
                minute: ((dt.seconds_of_day / 60) % 60) as u8,
                second: (dt.seconds_of_day % 60) as u8,
                micros: dt.micros,
            }
        }
        Some(Kind::Timestamp(t)) => Value::Timestamp { unix_secs: t.unix_secs, micros: t.micros.min(999_999) },
        Some(Kind::Time(t)) => Value::Time {
            negative: t.negative,
            hours: t.hours,
            minutes: small(t.minutes.min(59), "minutes")?,
            seconds: small(t.seconds.min(59), "seconds")?,
            micros: t.micros.min(999_999),
        },
        Some(Kind::Year(y)) => Value::Year(small(y, "year")?),
        Some(Kind::Enum(e)) => Value::Enum(small(e, "enum index")?),
        Some(Kind::Set(s)) => Value::Set(s),
        Some(Kind::Bit(b)) => Value::Bit(b),
        Some(Kind::Json(j)) => Value::Json(j),
        Some(Kind::Absent(_)) => Value::Absent,
    })
}

fn row_from_wire(row: Option<w::Row>, width: usize) -> Result<Vec<Value>, WireError> {
    let row = row.ok_or_else(|| WireError("row image missing".into()))?;
    if row.values.len() != width {
        return Err(WireError(format!("row with {} values for a table of {width} columns", row.values.len())));
    }
    row.values.into_iter().map(value_from_wire).collect()
}

pub fn position_to_wire(p: &Position) -> w::Position {
    let (flavor, gtid) = p.gtid.as_ref().map(|g| (g.flavor(), g.to_string())).unwrap_or_default();
    w::Position { flavor: flavor.into(), gtid, binlog_file: p.binlog_file.clone(), binlog_pos: p.binlog_pos }
}

pub fn position_from_wire(p: Option<w::Position>) -> Result<Position, WireError> {
    let p = p.ok_or_else(|| WireError("position missing".into()))?;
    let gtid = match p.flavor.as_str() {
        "mysql" => Some(GtidState::Mysql(p.gtid.parse().map_err(|e| WireError(format!("GTID set: {e}")))?)),
        "mariadb" => Some(GtidState::Mariadb(p.gtid.parse().map_err(|e| WireError(format!("GTID list: {e}")))?)),
        "" => None,
        other => return Err(WireError(format!("unknown flavor {other:?}"))),
    };
    Ok(Position { gtid, binlog_file: p.binlog_file, binlog_pos: p.binlog_pos })
}

/// The per-table progress of an interrupted full copy, for the hello reply (stage 3).
pub fn resume_to_wire(resume: &SnapshotResume) -> Vec<w::TableProgress> {
    let mut tables: Vec<w::TableProgress> = resume
        .tables
        .iter()
        .map(|((schema, name), progress)| w::TableProgress {
            schema: schema.clone(),
            name: name.clone(),
            done: *progress == TableResume::Done,
            after_key: match progress {
                TableResume::Done => Vec::new(),
                TableResume::After(key) => key.clone(),
            },
        })
        .collect();
    tables.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    tables
}

/// The interrupted full copy a hello reply (stage 3) describes.
pub fn resume_from_wire(
    position: Option<w::Position>,
    tables: Vec<w::TableProgress>,
) -> Result<SnapshotResume, WireError> {
    let binlog_from = position_from_wire(position)?;
    let mut progress = HashMap::new();
    for t in tables {
        let state = match (t.done, t.after_key.is_empty()) {
            (true, _) => TableResume::Done,
            (false, false) => TableResume::After(t.after_key),
            (false, true) => return Err(WireError(format!("table {}.{}: neither done nor a key", t.schema, t.name))),
        };
        progress.insert((t.schema, t.name), state);
    }
    Ok(SnapshotResume { binlog_from, tables: progress })
}

fn table_from_wire(t: w::Table) -> Result<TableMeta, WireError> {
    let columns: Vec<ColumnMeta> = t
        .columns
        .into_iter()
        .map(|c| ColumnMeta {
            name: c.name,
            data_type: c.data_type,
            column_type: c.column_type,
            unsigned: c.unsigned,
            nullable: c.nullable,
            generated: c.generated,
            charset: c.charset,
            collation: c.collation,
        })
        .collect();
    let key_columns = t
        .key_columns
        .iter()
        .map(|&k| {
            let k = k as usize;
            if k < columns.len() {
                Ok(k)
            } else {
                Err(WireError(format!("key column {k} of {}.{} out of range", t.schema, t.name)))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TableMeta {
        schema: t.schema,
        name: t.name,
        target_schema: t.target_schema,
        target_name: t.target_name,
        columns,
        key_columns,
        estimated_rows: t.estimated_rows,
        column_subset: t.column_subset,
    })
}

/// Decodes a batch back into engine changes.
pub fn decode_batch(batch: w::ChangeBatch) -> Result<Vec<Change>, WireError> {
    let tables: Vec<Arc<TableMeta>> =
        batch.tables.into_iter().map(|t| table_from_wire(t).map(Arc::new)).collect::<Result<_, _>>()?;
    let table =
        |i: u32| tables.get(i as usize).cloned().ok_or_else(|| WireError(format!("table index {i} out of range")));
    let mut out = Vec::with_capacity(batch.changes.len());
    for c in batch.changes {
        use w::change::Kind;
        let change = match c.kind.ok_or_else(|| WireError("empty change".into()))? {
            Kind::SnapshotStart(s) => Change::SnapshotStart {
                position: position_from_wire(s.position)?,
                tables: s.tables.iter().map(|&i| table(i)).collect::<Result<_, _>>()?,
                estimated_rows: s.estimated_rows,
                resume_from: s.resume_from.map(|p| position_from_wire(Some(p))).transpose()?,
            },
            Kind::CreateTable(c) => {
                Change::CreateTable { table: table(c.table)?, create_sql: c.create_sql, drop_first: c.drop_first }
            }
            Kind::SnapshotRows(s) => {
                let t = table(s.table)?;
                let width = t.columns.len();
                let rows = s.rows.into_iter().map(|r| row_from_wire(Some(r), width)).collect::<Result<_, _>>()?;
                Change::SnapshotRows { table: t, rows }
            }
            Kind::SnapshotTableDone(i) => Change::SnapshotTableDone { table: table(i)? },
            Kind::SnapshotDone(p) => Change::SnapshotDone { position: position_from_wire(Some(p))? },
            Kind::Tx(tx) => {
                let mut events = Vec::with_capacity(tx.events.len());
                for e in tx.events {
                    match e.kind.ok_or_else(|| WireError("empty transaction event".into()))? {
                        w::tx_event::Kind::Row(r) => {
                            let t = table(r.table)?;
                            let width = t.columns.len();
                            let change = match r.kind {
                                1 => RowChange::Insert { after: row_from_wire(r.after, width)?, table: t },
                                2 => RowChange::Update {
                                    before: row_from_wire(r.before, width)?,
                                    after: row_from_wire(r.after, width)?,
                                    table: t,
                                },
                                3 => RowChange::Delete { before: row_from_wire(r.before, width)?, table: t },
                                k => return Err(WireError(format!("row change kind {k}"))),
                            };
                            events.push(TxEvent::Row(change));
                        }
                        w::tx_event::Kind::Ddl(d) => {
                            if d.tables.len() % 2 != 0 {
                                return Err(WireError("DDL table list of odd length".into()));
                            }
                            let mut names = d.tables.into_iter();
                            let mut tables = Vec::new();
                            while let (Some(schema), Some(table)) = (names.next(), names.next()) {
                                tables.push((schema, table));
                            }
                            events.push(TxEvent::Ddl { schema: d.schema, sql: d.sql, tables });
                        }
                    }
                }
                if tx.event_pos.len() != tx.event_row.len()
                    || (!tx.event_pos.is_empty() && tx.event_pos.len() != events.len())
                {
                    return Err(WireError(format!(
                        "transaction {}: {} event positions and {} row indexes for {} events",
                        tx.gtid,
                        tx.event_pos.len(),
                        tx.event_row.len(),
                        events.len()
                    )));
                }
                let sources =
                    tx.event_pos.iter().zip(&tx.event_row).map(|(&pos, &row)| EventSource { pos, row }).collect();
                Change::Tx(Transaction {
                    gtid: tx.gtid,
                    position: position_from_wire(tx.position)?,
                    source_timestamp: tx.source_timestamp,
                    events,
                    sources,
                    size: tx.size as usize,
                    partial: tx.partial,
                    origin: tx.origin,
                })
            }
            Kind::Heartbeat(h) => {
                Change::Heartbeat { position: position_from_wire(h.position)?, source_timestamp: h.source_timestamp }
            }
        };
        out.push(change);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn table() -> Arc<TableMeta> {
        Arc::new(TableMeta {
            schema: "s".into(),
            name: "t".into(),
            target_schema: "s2".into(),
            target_name: "t2".into(),
            columns: ["id", "v"]
                .iter()
                .map(|n| ColumnMeta {
                    name: n.to_string(),
                    data_type: "int".into(),
                    column_type: "int(11)".into(),
                    unsigned: false,
                    nullable: true,
                    generated: false,
                    charset: Some("utf8mb4".into()),
                    collation: None,
                })
                .collect(),
            key_columns: vec![0],
            estimated_rows: 9,
            column_subset: true,
        })
    }

    fn sample() -> Vec<Change> {
        let t = table();
        let position = Position {
            gtid: Some(GtidState::Mariadb("0-1-5".parse().unwrap())),
            binlog_file: "b.000001".into(),
            binlog_pos: 99,
        };
        let values = vec![
            Value::Null,
            Value::Int(-1),
            Value::UInt(u64::MAX),
            Value::Float(1.5),
            Value::Double(-2.25),
            Value::Decimal("-1.50".into()),
            Value::Bytes(vec![0, 255]),
            Value::Date { year: 2024, month: 2, day: 29 },
            Value::DateTime { year: 0, month: 0, day: 0, hour: 23, minute: 59, second: 58, micros: 999_999 },
            Value::Timestamp { unix_secs: 2_147_483_647, micros: 1 },
            Value::Time { negative: true, hours: 838, minutes: 59, seconds: 59, micros: 0 },
            Value::Year(2155),
            Value::Enum(3),
            Value::Set(5),
            Value::Bit(u64::MAX),
            Value::Json("{\"a\":1}".into()),
            Value::Absent,
        ];
        vec![
            Change::SnapshotStart {
                position: position.clone(),
                tables: vec![t.clone()],
                estimated_rows: 9,
                resume_from: Some(position.clone()),
            },
            Change::CreateTable { table: t.clone(), create_sql: "CREATE TABLE x".into(), drop_first: true },
            Change::SnapshotRows {
                table: t.clone(),
                rows: values.chunks(2).filter(|c| c.len() == 2).map(|c| c.to_vec()).collect(),
            },
            Change::SnapshotTableDone { table: t.clone() },
            Change::SnapshotDone { position: position.clone() },
            Change::Tx(Transaction {
                gtid: "0-1-6".into(),
                position: position.clone(),
                source_timestamp: 7,
                size: 3,
                partial: true,
                origin: Some("12".into()),
                sources: vec![
                    EventSource { pos: 100, row: 0 },
                    EventSource { pos: 300, row: 0 },
                    EventSource { pos: 300, row: 1 },
                    EventSource { pos: 500, row: 0 },
                ],
                events: vec![
                    TxEvent::Row(RowChange::Insert { table: t.clone(), after: vec![Value::Int(1), Value::Null] }),
                    TxEvent::Row(RowChange::Update {
                        table: t.clone(),
                        before: vec![Value::Int(1), Value::Null],
                        after: vec![Value::Int(1), Value::Int(2)],
                    }),
                    TxEvent::Row(RowChange::Delete { table: t.clone(), before: vec![Value::Int(1), Value::Int(2)] }),
                    TxEvent::Ddl {
                        schema: "s".into(),
                        sql: "ALTER TABLE t ADD c INT".into(),
                        tables: vec![("s".into(), "t".into())],
                    },
                ],
            }),
            Change::Heartbeat { position, source_timestamp: 8 },
        ]
    }

    #[test]
    fn every_change_and_value_round_trips() {
        let changes = sample();
        let bytes = encode_batch(&changes).encode_to_vec();
        let back = decode_batch(w::ChangeBatch::decode(bytes.as_slice()).unwrap()).unwrap();
        assert_eq!(format!("{changes:?}"), format!("{back:?}"));
        // One table definition for the whole batch.
        assert_eq!(encode_batch(&changes).tables.len(), 1);
    }

    #[test]
    fn event_positions_must_match_the_events() {
        let mut batch = encode_batch(&sample());
        for c in &mut batch.changes {
            if let Some(w::change::Kind::Tx(tx)) = &mut c.kind {
                tx.event_pos.pop();
                tx.event_row.pop();
            }
        }
        let e = decode_batch(batch).unwrap_err().to_string();
        assert!(e.contains("3 event positions and 3 row indexes for 4 events"), "{e}");
    }

    #[test]
    fn resume_progress_round_trips() {
        let resume = SnapshotResume {
            binlog_from: Position { binlog_file: "f.000001".into(), binlog_pos: 4, ..Default::default() },
            tables: HashMap::from([
                (("s".to_string(), "a".to_string()), TableResume::Done),
                (("s".to_string(), "b".to_string()), TableResume::After(vec!["5".into(), "X'61'".into()])),
            ]),
        };
        let back = resume_from_wire(Some(position_to_wire(&resume.binlog_from)), resume_to_wire(&resume)).unwrap();
        assert_eq!(back.binlog_from, resume.binlog_from);
        assert_eq!(back.tables, resume.tables);
        let neither = w::TableProgress { schema: "s".into(), name: "c".into(), done: false, after_key: vec![] };
        assert!(resume_from_wire(Some(position_to_wire(&resume.binlog_from)), vec![neither]).is_err());
    }

    #[test]
    fn damaged_batches_are_errors_not_panics() {
        let good = encode_batch(&sample());
        let mut bad = good.clone();
        bad.tables.clear();
        assert!(decode_batch(bad).unwrap_err().to_string().contains("table index 0"));
        let mut bad = good.clone();
        bad.tables[0].key_columns = vec![7];
        assert!(decode_batch(bad).is_err());
        let bytes = good.encode_to_vec();
        for cut in 0..bytes.len() {
            if let Ok(b) = w::ChangeBatch::decode(&bytes[..cut]) {
                let _ = decode_batch(b);
            }
        }
        let mut seed = 1u64;
        for _ in 0..2000 {
            let mut m = bytes.clone();
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let i = (seed >> 33) as usize % m.len();
            m[i] ^= (seed >> 17) as u8 | 1;
            if let Ok(b) = w::ChangeBatch::decode(m.as_slice()) {
                let _ = decode_batch(b);
            }
        }
    }
}
