//! Builders of table descriptions and source transactions for the target half's unit tests (`parallel`,
//! `net_effect`).

use std::sync::Arc;

use dtle_metadata::Position;

use crate::change::{RowChange, Transaction, TxEvent};
use crate::schema::{ColumnMeta, TableMeta};

/// Table `s.<name>` (same name on the target) with columns `id` of `key_type` and `v` INT, keyed by `id` unless
/// `key_type` is `None` (then `id` is an INT and the table has no key).
pub(crate) fn table(name: &str, key_type: Option<&str>) -> Arc<TableMeta> {
    let col = |n: &str, t: &str| ColumnMeta {
        name: n.into(),
        data_type: t.into(),
        column_type: t.into(),
        unsigned: false,
        nullable: false,
        generated: false,
        charset: None,
        collation: None,
    };
    Arc::new(TableMeta {
        schema: "s".into(),
        name: name.into(),
        target_schema: "s".into(),
        target_name: name.into(),
        columns: vec![col("id", key_type.unwrap_or("int")), col("v", "int")],
        key_columns: if key_type.is_some() { vec![0] } else { vec![] },
        estimated_rows: 0,
        column_subset: false,
    })
}

/// A whole source transaction of `changes`.
pub(crate) fn tx(changes: Vec<RowChange>) -> Transaction {
    Transaction {
        gtid: String::new(),
        position: Position::default(),
        source_timestamp: 0,
        events: changes.into_iter().map(TxEvent::Row).collect(),
        sources: Vec::new(),
        size: 0,
        partial: false,
        origin: None,
    }
}
