//! A group's row changes reduced to their net effect per row, for tables where rows depend on their key alone.
//!
//! A group of source transactions is applied as one target transaction, so only its end state is ever visible on
//! the target. Where a table's primary key is its only unique index (no foreign keys, no triggers, no floating-point
//! key columns), the rows of different keys commute: the group can be written per table as one multi-row `DELETE` of
//! the keys that end deleted, one multi-row `INSERT` of the new keys and one multi-row
//! `INSERT ... ON DUPLICATE KEY UPDATE` of the keys that existed and end changed, instead of one statement per row
//! change. The target parses and runs a few statements where it ran thousands (a backlog's catch-up is the target's
//! CPU on a small machine).
//!
//! Every row keeps its check: a key that existed must exist (deleted: one row each; changed: two affected rows each,
//! the server's count for a row found and updated), a new key must not (inserted: one row each). When anything does
//! not fit — a table outside the rule, a key that moves, a column missing from an image, a sequence the target could
//! not have followed (an insert of a key already there) — the group is not reduced and goes statement by statement as
//! before; the applier also goes back to that when a reduced group fails on a row, so the error names the row.
//! Must not import the source half.

use std::collections::HashMap;

use crate::change::{RowChange, Transaction, TxEvent};
use crate::schema::TableMeta;
use crate::value::Value;

/// A row's key: its key columns' values.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// One integer column (the usual primary key), without an allocation.
    Int(i128),
    Many(Vec<KeyPart>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum KeyPart {
    Int(i128),
    /// A string or binary string, as its bytes. The binlog carries a row's stored bytes, so a key keeps them while
    /// its row lives; two keys equal under the target's collation but not in bytes (`abc`, `ABC`) are both rows of a
    /// group only when one was deleted before the other was inserted — and a table's deletes are written first.
    Bytes(Vec<u8>),
    /// A decimal or temporal value, as its literal (exact: one column has one scale and precision).
    Literal(String),
}

fn key_part(value: Option<&Value>) -> Option<KeyPart> {
    match value? {
        Value::Int(v) => Some(KeyPart::Int(i128::from(*v))),
        Value::UInt(v) => Some(KeyPart::Int(i128::from(*v))),
        Value::Bytes(b) => Some(KeyPart::Bytes(b.clone())),
        v @ (Value::Decimal(_)
        | Value::Date { .. }
        | Value::DateTime { .. }
        | Value::Timestamp { .. }
        | Value::Time { .. }
        | Value::Year(_)) => {
            let mut literal = String::new();
            v.write_sql_literal(&mut literal);
            Some(KeyPart::Literal(literal))
        }
        // NULL (not a key), floating point (equal values with different bits), and the rest: not reduced.
        _ => None,
    }
}

fn key_of(table: &TableMeta, row: &[Value]) -> Option<Key> {
    match table.key_columns.as_slice() {
        [one] => match key_part(row.get(*one))? {
            KeyPart::Int(v) => Some(Key::Int(v)),
            other => Some(Key::Many(vec![other])),
        },
        many => many.iter().map(|&i| key_part(row.get(i))).collect::<Option<Vec<_>>>().map(Key::Many),
    }
}

/// What one key went through in the group.
struct Entry<'a> {
    /// The row as the group found it (`None`: the key was new).
    first: Option<&'a [Value]>,
    /// The row as the group leaves it (`None`: deleted).
    last: Option<&'a [Value]>,
}

/// One table's keys while a group is read, in first-seen order.
struct Seen<'a> {
    table: &'a TableMeta,
    /// Reduced per key; else its row changes stay in source order.
    net: bool,
    order: Vec<Key>,
    entries: HashMap<Key, Entry<'a>>,
    row_changes: u64,
}

/// The net effect of a group on one table, in the order its keys first appeared.
pub struct NetTable<'a> {
    pub table: &'a TableMeta,
    /// Keys that existed and end deleted: their row as the group found it.
    pub deleted: Vec<&'a [Value]>,
    /// Keys that were new and end present: their last row.
    pub inserted: Vec<&'a [Value]>,
    /// Keys that existed and end changed: (the row as found, its last row).
    pub changed: Vec<(&'a [Value], &'a [Value])>,
    /// Row changes of the group on this table.
    pub row_changes: u64,
}

/// A group as the target gets it: the net effect on the tables that allow it, and the other tables' row changes in
/// source order. The two parts commute: a table reduced per key has no foreign key to any other and no trigger.
pub struct NetGroup<'a> {
    pub tables: Vec<NetTable<'a>>,
    pub in_order: Vec<&'a RowChange>,
}

/// Whether `table`'s rows may be reduced per key on the target: decided by the applier from the target's indexes,
/// foreign keys and triggers.
pub type Eligible<'f> = dyn Fn(&TableMeta) -> bool + 'f;

/// Reduces `txs` (whole source transactions, in source order) to their net effect per table and key, keeping the
/// row changes of tables that do not allow it in source order; `None` when nothing is reduced, or when the group
/// does not fit the rule (see the module's text) and must go statement by statement.
pub fn reduce<'a>(txs: &[&'a Transaction], eligible: &Eligible<'_>) -> Option<NetGroup<'a>> {
    let mut in_order: Vec<&'a RowChange> = Vec::new();
    // Per table (by address: a group's rows share their table's Arc), its keys in first-seen order.
    let mut tables: Vec<Seen<'a>> = Vec::new();
    // Each batch of a group brings its own copy of a table's description: every copy, by address, to its table.
    let mut by_address: HashMap<*const TableMeta, usize> = HashMap::new();
    let mut last_table: Option<usize> = None;
    for tx in txs {
        if tx.partial {
            return None;
        }
        for event in &tx.events {
            let TxEvent::Row(change) = event else {
                continue;
            };
            let table: &'a TableMeta = change.table();
            let index = match last_table {
                Some(i) if std::ptr::eq(tables[i].table, table) => i,
                _ => match by_address.get(&(table as *const TableMeta)) {
                    Some(&i) => i,
                    None => {
                        let same = tables.iter().position(|seen| {
                            seen.table.target_schema == table.target_schema
                                && seen.table.target_name == table.target_name
                        });
                        let i = match same {
                            // Another copy of the same description.
                            Some(i) if *tables[i].table == *table => i,
                            // Two descriptions of one target table (several source tables written into one, or a
                            // description from before a DDL): their keys may not line up.
                            Some(i) if tables[i].net => return None,
                            Some(i) => i,
                            None => {
                                let net = table.has_key() && eligible(table);
                                tables.push(Seen {
                                    table,
                                    net,
                                    order: Vec::new(),
                                    entries: HashMap::new(),
                                    row_changes: 0,
                                });
                                tables.len() - 1
                            }
                        };
                        by_address.insert(table as *const TableMeta, i);
                        i
                    }
                },
            };
            last_table = Some(index);
            let Seen { net, order, entries, row_changes, .. } = &mut tables[index];
            if !*net {
                in_order.push(change);
                continue;
            }
            *row_changes += 1;
            let (key, before, after): (Key, Option<&'a [Value]>, Option<&'a [Value]>) = match change {
                RowChange::Insert { after, .. } => (key_of(table, after)?, None, Some(after)),
                RowChange::Delete { before, .. } => (key_of(table, before)?, Some(before), None),
                RowChange::Update { before, after, .. } => {
                    let key = key_of(table, before)?;
                    if key_of(table, after)? != key {
                        return None;
                    }
                    (key, Some(before), Some(after))
                }
            };
            if [before, after].iter().flatten().any(|row| row.iter().any(|v| matches!(v, Value::Absent))) {
                return None;
            }
            match entries.get_mut(&key) {
                None => {
                    order.push(key.clone());
                    entries.insert(key, Entry { first: before, last: after });
                }
                // A sequence the target could not follow: an insert of a key that is there, an update or delete of
                // one that is not. Statement by statement, it fails on that row and names it.
                Some(entry) if entry.last.is_some() != before.is_some() => return None,
                Some(entry) => entry.last = after,
            }
        }
    }
    let mut out = Vec::with_capacity(tables.len());
    for Seen { table, net, order, mut entries, row_changes } in tables {
        if !net {
            continue;
        }
        let mut net = NetTable { table, deleted: Vec::new(), inserted: Vec::new(), changed: Vec::new(), row_changes };
        for key in &order {
            let Some(entry) = entries.remove(key) else { continue };
            match (entry.first, entry.last) {
                (Some(first), None) => net.deleted.push(first),
                (None, Some(last)) => net.inserted.push(last),
                (Some(first), Some(last)) => net.changed.push((first, last)),
                // Inserted and deleted again within the group: the insert's check (the key must not be there) has
                // nothing to stand on in the net effect.
                (None, None) => return None,
            }
        }
        out.push(net);
    }
    (!out.is_empty()).then_some(NetGroup { tables: out, in_order })
}

/// Whether `a` and `b` hold the same values in the columns written to the target.
pub fn same_written_values(table: &TableMeta, a: &[Value], b: &[Value]) -> bool {
    table.writable_columns().all(|(i, _)| a.get(i) == b.get(i))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::target::test_rows::{table, tx};

    fn row(id: i64, v: i64) -> Vec<Value> {
        vec![Value::Int(id), Value::Int(v)]
    }
    fn ins(t: &Arc<TableMeta>, id: i64, v: i64) -> RowChange {
        RowChange::Insert { table: t.clone(), after: row(id, v) }
    }
    fn upd(t: &Arc<TableMeta>, id: i64, from: i64, to: i64) -> RowChange {
        RowChange::Update { table: t.clone(), before: row(id, from), after: row(id, to) }
    }
    fn del(t: &Arc<TableMeta>, id: i64, v: i64) -> RowChange {
        RowChange::Delete { table: t.clone(), before: row(id, v) }
    }

    trait RowAt {
        fn events_row(&self, n: usize) -> &RowChange;
    }
    impl RowAt for Transaction {
        fn events_row(&self, n: usize) -> &RowChange {
            match &self.events[n] {
                TxEvent::Row(change) => change,
                other => panic!("not a row: {other:?}"),
            }
        }
    }

    fn any(_: &TableMeta) -> bool {
        true
    }

    fn reduce_all(txs: &[Transaction]) -> Option<Vec<NetTable<'_>>> {
        let refs: Vec<&Transaction> = txs.iter().collect();
        reduce(&refs, &any).map(|group| {
            assert!(group.in_order.is_empty());
            group.tables
        })
    }

    #[test]
    fn each_key_ends_as_one_delete_insert_or_change() {
        let t = table("t", Some("int"));
        let u = table("u", Some("int"));
        let txs = [
            tx(vec![upd(&t, 1, 10, 11), upd(&t, 2, 20, 21), del(&t, 3, 30), ins(&t, 3, 31)]),
            tx(vec![upd(&u, 1, 0, 1)]),
            tx(vec![upd(&t, 1, 11, 12), ins(&t, 4, 40), del(&t, 5, 50)]),
            tx(vec![del(&t, 2, 21)]),
        ];
        let nets = reduce_all(&txs).expect("reduced");
        assert_eq!(nets.len(), 2);
        let n = &nets[0];
        assert!(std::ptr::eq(n.table, &*t));
        assert_eq!(n.row_changes, 8);
        // Key 2 was found (20) and ends deleted; key 5 was deleted.
        assert_eq!(n.deleted, vec![&row(2, 20)[..], &row(5, 50)[..]]);
        assert_eq!(n.inserted, vec![&row(4, 40)[..]]);
        // Key 1 found at 10 ends at 12; key 3 deleted and inserted again is a change from 30 to 31.
        assert_eq!(n.changed, vec![(&row(1, 10)[..], &row(1, 12)[..]), (&row(3, 30)[..], &row(3, 31)[..])]);
        assert_eq!(nets[1].changed, vec![(&row(1, 0)[..], &row(1, 1)[..])]);
    }

    #[test]
    fn groups_the_target_could_not_follow_or_that_do_not_fit_are_not_reduced() {
        let t = table("t", Some("int"));
        let cases: Vec<(&str, Vec<Transaction>)> = vec![
            ("insert of a key already there", vec![tx(vec![upd(&t, 1, 0, 1)]), tx(vec![ins(&t, 1, 2)])]),
            ("update of a deleted key", vec![tx(vec![del(&t, 1, 0)]), tx(vec![upd(&t, 1, 0, 1)])]),
            ("inserted then deleted", vec![tx(vec![ins(&t, 1, 0)]), tx(vec![del(&t, 1, 0)])]),
            (
                "a key that moves",
                vec![tx(vec![RowChange::Update { table: t.clone(), before: row(1, 0), after: row(2, 0) }])],
            ),
            (
                "a column missing from an image",
                vec![tx(vec![RowChange::Update {
                    table: t.clone(),
                    before: row(1, 0),
                    after: vec![Value::Int(1), Value::Absent],
                }])],
            ),
            (
                "a NULL key",
                vec![tx(vec![RowChange::Delete { table: t.clone(), before: vec![Value::Null, Value::Int(0)] }])],
            ),
            ("a part of a big transaction", vec![Transaction { partial: true, ..tx(vec![upd(&t, 1, 0, 1)]) }]),
        ];
        for (what, txs) in &cases {
            assert!(reduce_all(txs).is_none(), "{what}");
        }
        // Floating-point keys (0.0 and -0.0 are one key on the target): not reduced.
        let f = table("f", Some("double"));
        let txs = [tx(vec![RowChange::Delete { table: f.clone(), before: vec![Value::Double(0.5), Value::Int(0)] }])];
        assert!(reduce_all(&txs).is_none(), "a floating-point key");
        let refs: Vec<&Transaction> = vec![];
        assert!(reduce(&refs, &any).is_none(), "nothing to reduce");
    }

    #[test]
    fn tables_the_applier_does_not_allow_keep_their_row_changes_in_source_order() {
        // Another unique index, a foreign key, a trigger (the applier's call), or no key at all.
        let t = table("t", Some("int"));
        let o = table("o", Some("int"));
        let mut k = (*table("k", Some("int"))).clone();
        k.key_columns.clear();
        let k = Arc::new(k);
        let txs =
            [tx(vec![upd(&o, 1, 0, 1), upd(&t, 1, 0, 1)]), tx(vec![del(&k, 7, 0), upd(&o, 1, 1, 2), upd(&t, 1, 1, 2)])];
        let refs: Vec<&Transaction> = txs.iter().collect();
        let group = reduce(&refs, &|table| table.name != "o").expect("t is reduced");
        assert_eq!(group.tables.len(), 1);
        assert_eq!(group.tables[0].changed, vec![(&row(1, 0)[..], &row(1, 2)[..])]);
        let kept: Vec<&RowChange> = vec![&txs[0].events_row(0), &txs[1].events_row(0), &txs[1].events_row(1)];
        assert_eq!(group.in_order.len(), kept.len());
        for (a, b) in group.in_order.iter().zip(kept) {
            assert!(std::ptr::eq(*a, b), "source order");
        }
        // Nothing allowed: nothing reduced.
        assert!(reduce(&refs, &|_| false).is_none(), "no table allowed");
    }

    #[test]
    fn string_keys_are_rows_by_their_bytes_and_a_deleted_key_frees_its_value_first() {
        let s = table("s", Some("varchar"));
        let r = |k: &str, v: i64| vec![Value::Bytes(k.as_bytes().to_vec()), Value::Int(v)];
        // 'abc' is deleted and 'ABC' (equal under a _ci collation) inserted: two rows of the group, the delete first.
        let txs = [
            tx(vec![RowChange::Update { table: s.clone(), before: r("abc", 0), after: r("abc", 1) }]),
            tx(vec![RowChange::Delete { table: s.clone(), before: r("abc", 1) }]),
            tx(vec![RowChange::Insert { table: s.clone(), after: r("ABC", 2) }]),
            tx(vec![RowChange::Update { table: s.clone(), before: r("x", 0), after: r("x", 3) }]),
        ];
        let nets = reduce_all(&txs).expect("reduced");
        assert_eq!(nets[0].deleted, vec![&r("abc", 0)[..]]);
        assert_eq!(nets[0].inserted, vec![&r("ABC", 2)[..]]);
        assert_eq!(nets[0].changed, vec![(&r("x", 0)[..], &r("x", 3)[..])]);
    }

    #[test]
    fn copies_of_one_description_share_their_keys_and_two_descriptions_of_one_target_do_not_reduce() {
        let t = table("t", Some("int"));
        let copy = Arc::new((*t).clone());
        let txs = [tx(vec![upd(&t, 1, 0, 1)]), tx(vec![upd(&copy, 1, 1, 2)])];
        let nets = reduce_all(&txs).expect("reduced");
        assert_eq!(nets.len(), 1);
        assert_eq!(nets[0].changed, vec![(&row(1, 0)[..], &row(1, 2)[..])]);
        let mut other = (*t).clone();
        other.columns.swap(0, 1);
        other.key_columns = vec![1];
        let other = Arc::new(other);
        let txs = [tx(vec![upd(&t, 1, 0, 1)]), tx(vec![RowChange::Delete { table: other, before: row(5, 1) }])];
        assert!(reduce_all(&txs).is_none());
    }
}
