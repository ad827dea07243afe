//! Splitting a run of source transactions into independent partitions for parallel apply (`ParallelWorkers`).
//!
//! Two transactions depend on each other when they touch the same row or the same unique value: the same value of
//! any unique index of the target table (its primary key included) in a before or after image, or any row of a
//! table without a usable key, or any row of tables linked by foreign keys (those serialise). This is MySQL's
//! writeset idea. Transactions are joined with union-find over those keys, so a partition holds every transaction
//! that must stay in source order relative to another; partitions touch disjoint rows and values, and commute.
//! Unique values containing NULL never conflict and are left out.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::change::{RowChange, Transaction, TxEvent};
use crate::schema::TableMeta;
use crate::value::Value;

/// How the rows of one target table depend on each other (from the target's indexes; see
/// [`crate::schema::WriteDependencies`]): each unique index as indexes into the change's columns, and whether
/// foreign keys link the table with others.
#[derive(Clone, Debug, Default)]
pub struct TableKeys {
    pub unique_indexes: Vec<Vec<usize>>,
    pub foreign_keys: bool,
    /// The target table has triggers (its rows are then written one statement per row change, as the source made
    /// them: see [`crate::net_effect`]).
    pub triggers: bool,
}

impl TableKeys {
    /// The table's rows depend on their key alone: its only unique index is `key_columns` (the key the applier
    /// matches rows by), no foreign key links it, no trigger runs on it.
    pub fn rows_depend_on_key_alone(&self, key_columns: &[usize]) -> bool {
        let sorted = |columns: &[usize]| {
            let mut c = columns.to_vec();
            c.sort_unstable();
            c
        };
        !self.foreign_keys
            && !self.triggers
            && !key_columns.is_empty()
            && matches!(self.unique_indexes.as_slice(), [only] if sorted(only) == sorted(key_columns))
    }
}

/// Keys of a table, by [`TableMeta::target_ident`]; tables missing here use their `key_columns` only.
pub type KeyMap = HashMap<String, TableKeys>;

/// Row keys a transaction touches, as hashes.
pub fn row_keys(tx: &Transaction, keys: &KeyMap) -> Vec<u64> {
    let mut out = Vec::new();
    // Consecutive rows mostly share their table: look its keys up once per run of rows, not per row.
    let mut last: Option<(&TableMeta, Option<&TableKeys>)> = None;
    for event in &tx.events {
        let TxEvent::Row(change) = event else {
            continue;
        };
        let table: &TableMeta = change.table();
        let table_keys = match last {
            Some((t, k)) if std::ptr::eq(t, table) => k,
            _ => {
                let k = keys.get(&table.target_ident());
                last = Some((table, k));
                k
            }
        };
        let mut add = |row: &[Value]| row_hashes(table, table_keys, row, &mut out);
        match change {
            RowChange::Insert { after, .. } => add(after),
            RowChange::Delete { before, .. } => add(before),
            RowChange::Update { before, after, .. } => {
                add(before);
                add(after);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn row_hashes(table: &TableMeta, keys: Option<&TableKeys>, row: &[Value], out: &mut Vec<u64>) {
    let base = |h: &mut DefaultHasher| {
        table.target_schema.hash(h);
        table.target_name.hash(h);
    };
    if keys.is_some_and(|k| k.foreign_keys) {
        // Tables linked by foreign keys (possibly across schemas): one key for all of them.
        let mut h = DefaultHasher::new();
        "foreign keys".hash(&mut h);
        out.push(h.finish());
        return;
    }
    let mut indexes: Vec<&[usize]> =
        keys.map(|k| k.unique_indexes.iter().map(Vec::as_slice).collect()).unwrap_or_default();
    if indexes.is_empty() && table.has_key() {
        indexes.push(&table.key_columns);
    }
    if indexes.is_empty() {
        // No usable key: every row of the table is the same row.
        let mut h = DefaultHasher::new();
        base(&mut h);
        out.push(h.finish());
        return;
    }
    let mut literal = String::new();
    'index: for (n, columns) in indexes.iter().enumerate() {
        let mut h = DefaultHasher::new();
        base(&mut h);
        n.hash(&mut h);
        for &c in columns.iter() {
            literal.clear();
            match row.get(c) {
                None | Some(Value::Null) => continue 'index,
                // Strings compare case- and trailing-space-insensitively under the usual collations: hash them so,
                // (values equal under the collation must collide; extra collisions only order more).
                Some(Value::Bytes(b)) => {
                    let mut end = b.len();
                    while end > 0 && b[end - 1] == b' ' {
                        end -= 1;
                    }
                    for byte in &b[..end] {
                        byte.to_ascii_lowercase().hash(&mut h);
                    }
                    continue;
                }
                Some(v) => {
                    v.write_sql_literal(&mut literal);
                }
            }
            literal.hash(&mut h);
        }
        out.push(h.finish());
    }
}

/// Splits `txs` (in source order) into at most `max_partitions` groups of transaction indexes, each in source
/// order; dependent transactions share a group. Independent components are spread over the groups, largest first.
pub fn partition(txs: &[&Transaction], max_partitions: usize, keys: &KeyMap) -> Vec<Vec<usize>> {
    let n = txs.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut owner: HashMap<u64, usize> = HashMap::new();
    for (i, tx) in txs.iter().enumerate() {
        for key in row_keys(tx, keys) {
            match owner.get(&key) {
                Some(&j) => {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    if a != b {
                        parent[a.max(b)] = a.min(b);
                    }
                }
                None => {
                    owner.insert(key, i);
                }
            }
        }
    }
    let mut components: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..n {
        let root = find(&mut parent, i);
        components.entry(root).or_default().push(i);
    }
    let mut components: Vec<Vec<usize>> = components.into_values().collect();
    // Largest first onto the least loaded group (by row events), for balance.
    let weight = |c: &Vec<usize>| c.iter().map(|&i| txs[i].events.len().max(1)).sum::<usize>();
    components.sort_by_key(|c| std::cmp::Reverse((weight(c), std::cmp::Reverse(c[0]))));
    let groups = max_partitions.max(1).min(components.len().max(1));
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); groups];
    let mut load = vec![0usize; groups];
    for c in components {
        let k = (0..groups).min_by_key(|&k| (load[k], k)).unwrap_or(0);
        load[k] += weight(&c);
        out[k].extend(c);
    }
    for g in &mut out {
        g.sort_unstable();
    }
    out.retain(|g| !g.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::target::test_rows::{table, tx};

    fn ins(t: &Arc<TableMeta>, id: i64) -> RowChange {
        RowChange::Insert { table: t.clone(), after: vec![Value::Int(id), Value::Int(0)] }
    }

    fn upd(t: &Arc<TableMeta>, from: i64, to: i64) -> RowChange {
        RowChange::Update {
            table: t.clone(),
            before: vec![Value::Int(from), Value::Int(0)],
            after: vec![Value::Int(to), Value::Int(1)],
        }
    }

    #[test]
    fn independent_rows_spread_and_dependent_rows_stay_in_order() {
        let t = table("t", Some("int"));
        let txs = [
            tx(vec![ins(&t, 1)]),
            tx(vec![ins(&t, 2)]),
            tx(vec![upd(&t, 1, 1)]),
            tx(vec![ins(&t, 3)]),
            tx(vec![upd(&t, 2, 3)]), // moves row 2 onto key 3: joins 1, 3 and 4
        ];
        let refs: Vec<&Transaction> = txs.iter().collect();
        let parts = partition(&refs, 4, &KeyMap::new());
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert!(parts.contains(&vec![0, 2]), "{parts:?}");
        assert!(parts.contains(&vec![1, 3, 4]), "{parts:?}");
        // One partition when asked for one.
        assert_eq!(partition(&refs, 1, &KeyMap::new()), vec![vec![0, 1, 2, 3, 4]]);
    }

    #[test]
    fn keyless_tables_serialise_their_transactions() {
        let keyed = table("k", Some("int"));
        let keyless = table("n", None);
        let txs = [tx(vec![ins(&keyless, 1)]), tx(vec![ins(&keyed, 1)]), tx(vec![ins(&keyless, 2)])];
        let refs: Vec<&Transaction> = txs.iter().collect();
        let parts = partition(&refs, 4, &KeyMap::new());
        assert!(parts.contains(&vec![0, 2]), "{parts:?}");
        assert!(parts.contains(&vec![1]), "{parts:?}");
    }

    #[test]
    fn a_unique_value_moving_between_rows_orders_its_transactions() {
        let t = table("t", Some("int"));
        let mut keys = KeyMap::new();
        keys.insert(
            t.target_ident(),
            TableKeys { unique_indexes: vec![vec![0], vec![1]], foreign_keys: false, triggers: false },
        );
        let row = |id: i64, v: i64| vec![Value::Int(id), Value::Int(v)];
        let txs = [
            // row 1 gives up value 7, then row 2 takes it: the second must follow the first
            tx(vec![RowChange::Update { table: t.clone(), before: row(1, 7), after: row(1, 8) }]),
            tx(vec![RowChange::Update { table: t.clone(), before: row(2, 2), after: row(2, 7) }]),
            tx(vec![RowChange::Update { table: t.clone(), before: row(3, 3), after: row(3, 9) }]),
            tx(vec![RowChange::Insert { table: t.clone(), after: vec![Value::Int(4), Value::Null] }]),
            tx(vec![RowChange::Insert { table: t.clone(), after: vec![Value::Int(5), Value::Null] }]),
        ];
        let refs: Vec<&Transaction> = txs.iter().collect();
        let parts = partition(&refs, 8, &keys);
        assert!(parts.contains(&vec![0, 1]), "{parts:?}");
        assert_eq!(parts.len(), 4, "NULLs never conflict: {parts:?}");
        // Without the unique index the two would be independent.
        assert_eq!(partition(&refs, 8, &KeyMap::new()).len(), 5);
        // Foreign keys serialise the table.
        keys.insert(t.target_ident(), TableKeys { unique_indexes: vec![vec![0]], foreign_keys: true, triggers: false });
        assert_eq!(partition(&refs, 8, &keys).len(), 1);
    }

    #[test]
    fn the_same_key_in_another_table_is_another_row() {
        let (a, b) = (table("a", Some("int")), table("b", Some("int")));
        let txs = [tx(vec![ins(&a, 1)]), tx(vec![ins(&b, 1)])];
        let refs: Vec<&Transaction> = txs.iter().collect();
        assert_eq!(partition(&refs, 2, &KeyMap::new()).len(), 2);
    }
}
