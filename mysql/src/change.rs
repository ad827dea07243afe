//! What the source yields, in source commit order, and what the applier consumes.

use std::sync::Arc;

use dtle_metadata::Position;

use crate::schema::TableMeta;
use crate::value::Value;

/// One row change of a source transaction.
#[derive(Clone, Debug)]
pub enum RowChange {
    Insert { table: Arc<TableMeta>, after: Vec<Value> },
    Update { table: Arc<TableMeta>, before: Vec<Value>, after: Vec<Value> },
    Delete { table: Arc<TableMeta>, before: Vec<Value> },
}

impl RowChange {
    pub fn table(&self) -> &Arc<TableMeta> {
        match self {
            RowChange::Insert { table, .. } | RowChange::Update { table, .. } | RowChange::Delete { table, .. } => {
                table
            }
        }
    }
}

/// One event of a source transaction, after filtering.
#[derive(Clone, Debug)]
pub enum TxEvent {
    Row(RowChange),
    /// A DDL statement to run on the target with `schema` as the default database.
    Ddl {
        schema: String,
        sql: String,
        tables: Vec<(String, String)>,
    },
}

impl TxEvent {
    /// In-memory size of the event's row images (or statement).
    pub fn approx_size(&self) -> usize {
        let row = |r: &Vec<Value>| std::mem::size_of::<Vec<Value>>() + r.iter().map(Value::approx_size).sum::<usize>();
        std::mem::size_of::<TxEvent>()
            + match self {
                TxEvent::Row(RowChange::Insert { after, .. }) => row(after),
                TxEvent::Row(RowChange::Update { before, after, .. }) => row(before) + row(after),
                TxEvent::Row(RowChange::Delete { before, .. }) => row(before),
                TxEvent::Ddl { sql, .. } => sql.len(),
            }
    }
}

/// Where a change was in the source's binlog: the position at which its binlog event starts, and the index of its
/// row within that event (0 for a statement).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventSource {
    pub pos: u64,
    pub row: u32,
}

/// One source transaction, kept whole.
#[derive(Clone, Debug)]
pub struct Transaction {
    /// The GTID of the transaction as text (`uuid:gno` or `domain-server-seq`), empty without GTIDs.
    pub gtid: String,
    /// The source position right after this transaction.
    pub position: Position,
    /// Source commit time (binlog header timestamp, seconds).
    pub source_timestamp: u32,
    pub events: Vec<TxEvent>,
    /// Where each of `events` was in the source's binlog (aligned with `events`; empty when not known): the start of
    /// its binlog event and its row's index in that event (Debezium's `source.pos` and `source.row`).
    pub sources: Vec<EventSource>,
    /// Approximate bytes of row data, for batching.
    pub size: usize,
    /// More events of this same source transaction follow in the next `Tx` (a big transaction sent in parts, so
    /// memory is bounded by the part size). `position` is then the one before the transaction; only the last part,
    /// with `partial == false`, carries the position after it.
    pub partial: bool,
    /// Set when dtle itself wrote this transaction on its source (it carries dtle's marker: a row of
    /// `dtle.replication_position` or a DDL comment): the server where the change was first made. An applier whose
    /// target is that server skips it, so two-way replication does not loop.
    pub origin: Option<String>,
}

impl Transaction {
    /// The server where this transaction's changes were first made, as dtle's markers name it: the marker's origin
    /// for a transaction dtle applied, else the server part of its GTID (MariaDB `domain-server-seq` → server id,
    /// MySQL `uuid:gno` → uuid). Empty without GTIDs.
    pub fn first_origin(&self) -> std::borrow::Cow<'_, str> {
        match &self.origin {
            Some(origin) => std::borrow::Cow::Borrowed(origin),
            None => gtid_origin(&self.gtid),
        }
    }
    pub fn has_ddl(&self) -> bool {
        self.events.iter().any(|e| matches!(e, TxEvent::Ddl { .. }))
    }
    pub fn row_count(&self) -> usize {
        self.events.iter().filter(|e| matches!(e, TxEvent::Row(_))).count()
    }
}

/// What a source yields.
#[derive(Clone, Debug)]
pub enum Change {
    /// The full copy starts; the binlog will continue from `position` when it is done.
    SnapshotStart {
        position: Position,
        tables: Vec<Arc<TableMeta>>,
        estimated_rows: u64,
        /// An interrupted copy continues (tables on the target are kept): the first snapshot's position, where the
        /// binlog will start. In process only: the wire format does not carry it (a copy over NATS is redone).
        resume_from: Option<Position>,
    },
    /// Create the database and the table on the target (the target names are in `table`).
    CreateTable {
        table: Arc<TableMeta>,
        create_sql: String,
        drop_first: bool,
    },
    /// Rows of one table from the snapshot, in key order.
    SnapshotRows {
        table: Arc<TableMeta>,
        rows: Vec<Vec<Value>>,
    },
    SnapshotTableDone {
        table: Arc<TableMeta>,
    },
    /// The full copy is complete: the position it corresponds to (where the binlog starts).
    SnapshotDone {
        position: Position,
    },
    Tx(Transaction),
    /// Progress while idle or while every transaction is filtered out.
    Heartbeat {
        position: Position,
        source_timestamp: u32,
    },
}

impl Change {
    /// Approximate size in bytes, for batching and memory bounds.
    pub fn approx_size(&self) -> usize {
        match self {
            Change::SnapshotRows { rows, .. } => rows
                .iter()
                .map(|r| std::mem::size_of::<Vec<Value>>() + r.iter().map(Value::approx_size).sum::<usize>())
                .sum(),
            Change::Tx(tx) => tx.events.iter().map(TxEvent::approx_size).sum::<usize>() + 128,
            _ => 64,
        }
    }
}

/// The server part of a GTID: MariaDB `domain-server-seq` → `server`, MySQL `uuid[:tag]:gno` → `uuid`.
/// Borrowed from `gtid` unless a MySQL uuid needs lower-casing (called per transaction by the applier).
pub fn gtid_origin(gtid: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    if let Some((uuid, _)) = gtid.split_once(':') {
        return if uuid.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(uuid.to_ascii_lowercase())
        } else {
            Cow::Borrowed(uuid)
        };
    }
    let mut parts = gtid.split('-');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(server), Some(_)) => Cow::Borrowed(server),
        _ => Cow::Borrowed(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_of_gtids() {
        assert_eq!(gtid_origin("0-12-345"), "12");
        assert_eq!(gtid_origin("3E11FA47-71CA-11E1-9E33-C80AA9429562:23"), "3e11fa47-71ca-11e1-9e33-c80aa9429562");
        assert_eq!(gtid_origin(""), "");
    }
}
