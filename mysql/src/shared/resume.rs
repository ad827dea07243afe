//! What an interrupted full copy left on the target, as both halves see it: the source reads the rest after each
//! table's last key, the target records and checks those keys.

use dtle_metadata::Position;

use crate::schema::{quote_ident, TableMeta};
use crate::sql::write_column_literal;
use crate::value::Value;

/// `(k1 > v1) OR (k1 = v1 AND k2 > v2) ...` — the rows after `key` (SQL literals of the key columns `names`) in
/// key order.
pub fn write_key_after(sql: &mut String, names: &[&str], key: &[String]) {
    sql.push('(');
    for i in 0..names.len().min(key.len()) {
        if i > 0 {
            sql.push_str(" OR ");
        }
        sql.push('(');
        for (j, (name, literal)) in names.iter().zip(key).take(i + 1).enumerate() {
            if j > 0 {
                sql.push_str(" AND ");
            }
            sql.push_str(&quote_ident(name));
            sql.push_str(if j == i { " > " } else { " = " });
            sql.push_str(literal);
        }
        sql.push(')');
    }
    sql.push(')');
}

/// The key of `row` as SQL literals (one per key column, in key order), comparable with the column on both servers.
pub fn key_literals(table: &TableMeta, row: &[Value]) -> Vec<String> {
    table
        .key_columns
        .iter()
        .map(|&i| {
            let mut literal = String::new();
            write_column_literal(&mut literal, row.get(i).unwrap_or(&Value::Null), &table.columns[i], true);
            literal
        })
        .collect()
}

/// How a resumed full copy treats one table (by target schema and name), from the chunks the target recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableResume {
    /// Every chunk is on the target: not read again.
    Done,
    /// The rows up to this key (SQL literals of the key columns) are on the target: read the rest.
    After(Vec<String>),
}

/// A full copy that continues after an interruption: the tables (target schema, target name) with progress on the
/// target, and the position of the first snapshot, where the binlog will start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotResume {
    pub binlog_from: Position,
    pub tables: std::collections::HashMap<(String, String), TableResume>,
}
