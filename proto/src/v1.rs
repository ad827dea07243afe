//! `dtle.v1`: what the src task sends the dest task.

/// A column value. Exactly one field of `kind` is set; an unset `kind` is SQL NULL.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(oneof = "value::Kind", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16")]
    pub kind: Option<value::Kind>,
}

pub mod value {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(sint64, tag = "1")]
        Int(i64),
        #[prost(uint64, tag = "2")]
        Uint(u64),
        #[prost(float, tag = "3")]
        Float(f32),
        #[prost(double, tag = "4")]
        Double(f64),
        #[prost(string, tag = "5")]
        Decimal(String),
        #[prost(bytes = "vec", tag = "6")]
        Bytes(Vec<u8>),
        /// year << 9 | month << 5 | day
        #[prost(uint32, tag = "7")]
        Date(u32),
        #[prost(message, tag = "8")]
        DateTime(super::DateTime),
        #[prost(message, tag = "9")]
        Timestamp(super::Timestamp),
        #[prost(message, tag = "10")]
        Time(super::Time),
        #[prost(uint32, tag = "11")]
        Year(u32),
        #[prost(uint32, tag = "12")]
        Enum(u32),
        #[prost(uint64, tag = "13")]
        Set(u64),
        #[prost(uint64, tag = "14")]
        Bit(u64),
        #[prost(string, tag = "15")]
        Json(String),
        /// Column not in the row image.
        #[prost(bool, tag = "16")]
        Absent(bool),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DateTime {
    /// year << 9 | month << 5 | day
    #[prost(uint32, tag = "1")]
    pub date: u32,
    /// hour * 3600 + minute * 60 + second
    #[prost(uint32, tag = "2")]
    pub seconds_of_day: u32,
    #[prost(uint32, tag = "3")]
    pub micros: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub unix_secs: i64,
    #[prost(uint32, tag = "2")]
    pub micros: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Time {
    #[prost(bool, tag = "1")]
    pub negative: bool,
    #[prost(uint32, tag = "2")]
    pub hours: u32,
    #[prost(uint32, tag = "3")]
    pub minutes: u32,
    #[prost(uint32, tag = "4")]
    pub seconds: u32,
    #[prost(uint32, tag = "5")]
    pub micros: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Row {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<Value>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Column {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub data_type: String,
    #[prost(string, tag = "3")]
    pub column_type: String,
    #[prost(bool, tag = "4")]
    pub unsigned: bool,
    #[prost(bool, tag = "5")]
    pub nullable: bool,
    #[prost(bool, tag = "6")]
    pub generated: bool,
    #[prost(string, optional, tag = "7")]
    pub charset: Option<String>,
    #[prost(string, optional, tag = "8")]
    pub collation: Option<String>,
}

/// A table definition, sent once per batch that uses it and referred to by index.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Table {
    #[prost(string, tag = "1")]
    pub schema: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub target_schema: String,
    #[prost(string, tag = "4")]
    pub target_name: String,
    #[prost(message, repeated, tag = "5")]
    pub columns: Vec<Column>,
    #[prost(uint32, repeated, tag = "6")]
    pub key_columns: Vec<u32>,
    #[prost(uint64, tag = "7")]
    pub estimated_rows: u64,
    /// Only some target columns are written (a column map).
    #[prost(bool, tag = "8")]
    pub column_subset: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Position {
    /// "", "mysql" or "mariadb"
    #[prost(string, tag = "1")]
    pub flavor: String,
    #[prost(string, tag = "2")]
    pub gtid: String,
    #[prost(string, tag = "3")]
    pub binlog_file: String,
    #[prost(uint64, tag = "4")]
    pub binlog_pos: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RowChange {
    /// 1 insert, 2 update, 3 delete
    #[prost(uint32, tag = "1")]
    pub kind: u32,
    #[prost(uint32, tag = "2")]
    pub table: u32,
    #[prost(message, optional, tag = "3")]
    pub before: Option<Row>,
    #[prost(message, optional, tag = "4")]
    pub after: Option<Row>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Ddl {
    #[prost(string, tag = "1")]
    pub schema: String,
    #[prost(string, tag = "2")]
    pub sql: String,
    /// schema, table pairs flattened: [s0, t0, s1, t1, ...]
    #[prost(string, repeated, tag = "3")]
    pub tables: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TxEvent {
    #[prost(oneof = "tx_event::Kind", tags = "1, 2")]
    pub kind: Option<tx_event::Kind>,
}

pub mod tx_event {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "1")]
        Row(super::RowChange),
        #[prost(message, tag = "2")]
        Ddl(super::Ddl),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Transaction {
    #[prost(string, tag = "1")]
    pub gtid: String,
    #[prost(message, optional, tag = "2")]
    pub position: Option<Position>,
    #[prost(uint32, tag = "3")]
    pub source_timestamp: u32,
    #[prost(message, repeated, tag = "4")]
    pub events: Vec<TxEvent>,
    #[prost(uint64, tag = "5")]
    pub size: u64,
    /// More parts of this source transaction follow (a big transaction sent in parts).
    #[prost(bool, tag = "6")]
    pub partial: bool,
    /// For a transaction dtle applied on its source: the server where the change was first made.
    #[prost(string, optional, tag = "7")]
    pub origin: Option<String>,
    /// Where each event was in the source's binlog, aligned with `events` (both empty when not known): the start
    /// of its binlog event, and its row's index in that event.
    #[prost(uint64, repeated, tag = "8")]
    pub event_pos: Vec<u64>,
    #[prost(uint32, repeated, tag = "9")]
    pub event_row: Vec<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotStart {
    #[prost(message, optional, tag = "1")]
    pub position: Option<Position>,
    #[prost(uint32, repeated, tag = "2")]
    pub tables: Vec<u32>,
    #[prost(uint64, tag = "3")]
    pub estimated_rows: u64,
    /// An interrupted copy continues: the first snapshot's position, where the binlog starts.
    #[prost(message, optional, tag = "4")]
    pub resume_from: Option<Position>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateTable {
    #[prost(uint32, tag = "1")]
    pub table: u32,
    #[prost(string, tag = "2")]
    pub create_sql: String,
    #[prost(bool, tag = "3")]
    pub drop_first: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotRows {
    #[prost(uint32, tag = "1")]
    pub table: u32,
    #[prost(message, repeated, tag = "2")]
    pub rows: Vec<Row>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Heartbeat {
    #[prost(message, optional, tag = "1")]
    pub position: Option<Position>,
    #[prost(uint32, tag = "2")]
    pub source_timestamp: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Change {
    #[prost(oneof = "change::Kind", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub kind: Option<change::Kind>,
}

pub mod change {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "1")]
        SnapshotStart(super::SnapshotStart),
        #[prost(message, tag = "2")]
        CreateTable(super::CreateTable),
        #[prost(message, tag = "3")]
        SnapshotRows(super::SnapshotRows),
        #[prost(uint32, tag = "4")]
        SnapshotTableDone(u32),
        #[prost(message, tag = "5")]
        SnapshotDone(super::Position),
        #[prost(message, tag = "6")]
        Tx(super::Transaction),
        #[prost(message, tag = "7")]
        Heartbeat(super::Heartbeat),
    }
}

/// The payload of one batch: its table definitions and changes, in source order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChangeBatch {
    #[prost(message, repeated, tag = "1")]
    pub tables: Vec<Table>,
    #[prost(message, repeated, tag = "2")]
    pub changes: Vec<Change>,
}

/// Compression of a batch payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Compression {
    None = 0,
    Zstd = 1,
    Lz4 = 2,
    Gzip = 3,
}

/// One message on the batch subject. Large payloads are cut into parts `part` = 0..`parts` that share `seq`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchFrame {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// Identifies one run of the src task; the dest resets its expectations when it changes.
    #[prost(uint64, tag = "2")]
    pub session: u64,
    #[prost(uint64, tag = "3")]
    pub seq: u64,
    #[prost(uint32, tag = "4")]
    pub part: u32,
    #[prost(uint32, tag = "5")]
    pub parts: u32,
    #[prost(enumeration = "Compression", tag = "6")]
    pub compression: i32,
    #[prost(uint64, tag = "7")]
    pub uncompressed_len: u64,
    #[prost(bytes = "vec", tag = "8")]
    pub data: Vec<u8>,
}

/// The dest's acknowledgement: every batch up to `seq` of `session` is durable on the target.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Ack {
    #[prost(uint64, tag = "1")]
    pub session: u64,
    #[prost(uint64, tag = "2")]
    pub seq: u64,
    #[prost(message, optional, tag = "3")]
    pub position: Option<Position>,
    /// Set when the dest refuses the stream (version mismatch, gap): the src must start over with a new hello.
    #[prost(string, tag = "4")]
    pub error: String,
}

/// src → dest on start: who I am. The dest answers with where the target stands.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Hello {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(string, tag = "2")]
    pub job: String,
    #[prost(uint64, tag = "3")]
    pub session: u64,
    /// HMAC-SHA256 of (job, session) with the dest's session key (`dtle/<job>/NatsSessionKey`), when the dest
    /// published one: proves the src belongs to the job. Empty without a key.
    #[prost(bytes = "vec", tag = "4")]
    pub auth: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// "" = accepted; otherwise why not.
    #[prost(string, tag = "2")]
    pub error: String,
    /// 0 none, 1 snapshot in progress (redo), 2 incremental, 3 snapshot in progress (continue: `position` is the
    /// first snapshot's, where the binlog starts, and `resume_tables` says what the target has)
    #[prost(uint32, tag = "3")]
    pub stage: u32,
    #[prost(message, optional, tag = "4")]
    pub position: Option<Position>,
    #[prost(message, repeated, tag = "5")]
    pub resume_tables: Vec<TableProgress>,
    /// A refusal the src gets past by starting again (a session key read before the dest restarted, a session
    /// already used): the src reads the key again and starts a new session.
    #[prost(bool, tag = "6")]
    pub retry: bool,
}

/// How far an interrupted full copy got with one target table.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TableProgress {
    #[prost(string, tag = "1")]
    pub schema: String,
    #[prost(string, tag = "2")]
    pub name: String,
    /// Every chunk is on the target.
    #[prost(bool, tag = "3")]
    pub done: bool,
    /// Else: the rows up to this key (SQL literals of the key columns) are on the target.
    #[prost(string, repeated, tag = "4")]
    pub after_key: Vec<String>,
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn round_trip() {
        let batch = ChangeBatch {
            tables: vec![Table { schema: "s".into(), name: "t".into(), key_columns: vec![0], ..Default::default() }],
            changes: vec![Change {
                kind: Some(change::Kind::Tx(Transaction {
                    gtid: "0-1-5".into(),
                    events: vec![TxEvent {
                        kind: Some(tx_event::Kind::Row(RowChange {
                            kind: 1,
                            table: 0,
                            before: None,
                            after: Some(Row {
                                values: vec![
                                    Value { kind: Some(value::Kind::Int(-3)) },
                                    Value { kind: None },
                                    Value { kind: Some(value::Kind::Bytes(vec![0, 255])) },
                                ],
                            }),
                        })),
                    }],
                    ..Default::default()
                })),
            }],
        };
        let bytes = batch.encode_to_vec();
        assert_eq!(ChangeBatch::decode(bytes.as_slice()).unwrap(), batch);
        assert!(ChangeBatch::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
