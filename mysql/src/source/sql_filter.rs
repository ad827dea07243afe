//! `SqlFilter`: event kinds a job does not replicate (dtle's NoDML…, NoDDL… names). Filtering never affects
//! schema tracking: a filtered DDL still refreshes the engine's table definitions.

use std::sync::OnceLock;

use regex::Regex;

use crate::change::RowChange;

/// What a job leaves out. Built from dtle's names (already validated by the job file parser).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SqlFilter {
    pub no_insert: bool,
    pub no_update: bool,
    pub no_delete: bool,
    pub no_ddl: bool,
    pub no_create_schema: bool,
    pub no_drop_schema: bool,
    pub no_create_table: bool,
    pub no_drop_table: bool,
    pub no_drop_index: bool,
    pub no_truncate: bool,
    pub no_alter_table: bool,
    pub no_add_column: bool,
    pub no_drop_column: bool,
    pub no_modify_column: bool,
    pub no_change_column: bool,
    pub no_alter_column: bool,
}

impl SqlFilter {
    /// From dtle's names (case-insensitive); an unknown name is returned as the error.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<SqlFilter, String> {
        let mut f = SqlFilter::default();
        for name in names {
            let flag = match name.to_ascii_lowercase().as_str() {
                "nodml" => {
                    f.no_insert = true;
                    f.no_update = true;
                    f.no_delete = true;
                    continue;
                }
                "nodmlinsert" => &mut f.no_insert,
                "nodmlupdate" => &mut f.no_update,
                "nodmldelete" => &mut f.no_delete,
                "noddl" => &mut f.no_ddl,
                "noddlcreateschema" => &mut f.no_create_schema,
                "noddldropschema" => &mut f.no_drop_schema,
                "noddlcreatetable" => &mut f.no_create_table,
                "noddldroptable" => &mut f.no_drop_table,
                "noddldropindex" => &mut f.no_drop_index,
                "noddltruncate" => &mut f.no_truncate,
                "noddlaltertable" => &mut f.no_alter_table,
                "noddlaltertableaddcolumn" => &mut f.no_add_column,
                "noddlaltertabledropcolumn" => &mut f.no_drop_column,
                "noddlaltertablemodifycolumn" => &mut f.no_modify_column,
                "noddlaltertablechangecolumn" => &mut f.no_change_column,
                "noddlaltertablealtercolumn" => &mut f.no_alter_column,
                _ => return Err(name.to_string()),
            };
            *flag = true;
        }
        Ok(f)
    }

    pub fn keeps_row(&self, change: &RowChange) -> bool {
        match change {
            RowChange::Insert { .. } => !self.no_insert,
            RowChange::Update { .. } => !self.no_update,
            RowChange::Delete { .. } => !self.no_delete,
        }
    }

    /// Whether a DDL statement is replicated.
    pub fn keeps_ddl(&self, sql: &str) -> bool {
        if self.no_ddl {
            return false;
        }
        let head = leading_words(sql);
        let starts = |p: &str| head.starts_with(p);
        if starts("CREATE DATABASE") || starts("CREATE SCHEMA") {
            return !self.no_create_schema;
        }
        if starts("DROP DATABASE") || starts("DROP SCHEMA") {
            return !self.no_drop_schema;
        }
        if starts("CREATE TABLE") || starts("CREATE TEMPORARY TABLE") || starts("CREATE OR REPLACE TABLE") {
            return !self.no_create_table;
        }
        if starts("DROP TABLE") || starts("DROP TEMPORARY TABLE") {
            return !self.no_drop_table;
        }
        if starts("DROP INDEX") {
            return !self.no_drop_index;
        }
        if starts("TRUNCATE") {
            return !self.no_truncate;
        }
        if starts("ALTER TABLE") || starts("ALTER ONLINE TABLE") || starts("ALTER IGNORE TABLE") {
            if self.no_alter_table {
                return false;
            }
            let c = alter_column_clauses(sql);
            return !((self.no_add_column && c.add)
                || (self.no_drop_column && c.drop)
                || (self.no_modify_column && c.modify)
                || (self.no_change_column && c.change)
                || (self.no_alter_column && c.alter));
        }
        true
    }
}

/// The statement's first words, upper case, single-spaced, without leading comments.
fn leading_words(sql: &str) -> String {
    let mut rest = sql.trim_start();
    while let Some(stripped) = rest.strip_prefix("/*") {
        rest = stripped.split_once("*/").map(|(_, r)| r.trim_start()).unwrap_or("");
    }
    rest.split_whitespace().take(4).collect::<Vec<_>>().join(" ").to_ascii_uppercase()
}

/// Which column clauses an ALTER TABLE has.
#[derive(Default)]
struct ColumnClauses {
    add: bool,
    drop: bool,
    modify: bool,
    change: bool,
    alter: bool,
}

/// Words after ADD/DROP that make the clause about something other than a column.
const NOT_A_COLUMN: &[&str] = &[
    "INDEX",
    "KEY",
    "UNIQUE",
    "PRIMARY",
    "FOREIGN",
    "CONSTRAINT",
    "FULLTEXT",
    "SPATIAL",
    "PARTITION",
    "CHECK",
    "PERIOD",
    "SYSTEM",
    "IF",
];

fn alter_column_clauses(sql: &str) -> ColumnClauses {
    static SPLIT: OnceLock<Regex> = OnceLock::new();
    // ok: constant pattern
    let split = SPLIT
        .get_or_init(|| Regex::new(r"`(?:[^`]|``)*`|'(?:[^'\\]|\\.)*'|\(|\)|,|[^\s,()`']+").expect("static regex")); // ok: constant pattern
    let words: Vec<String> = split.find_iter(sql).map(|m| m.as_str().to_ascii_uppercase()).collect();
    let mut c = ColumnClauses::default();
    // Clauses start after "ALTER TABLE <name>" and after each top-level comma.
    let mut depth = 0i32;
    let mut clause_start = true;
    for (i, w) in words.iter().enumerate() {
        match w.as_str() {
            "(" => depth += 1,
            ")" => depth -= 1,
            "," if depth == 0 => {
                clause_start = true;
                continue;
            }
            _ => {}
        }
        if !clause_start && i > 3 {
            continue;
        }
        let next = words.get(i + 1).map(String::as_str).unwrap_or("");
        match w.as_str() {
            "ADD" => {
                c.add |= next == "COLUMN" || next == "(" || (!next.is_empty() && !NOT_A_COLUMN.contains(&next));
                clause_start = false;
            }
            "DROP" => {
                c.drop |= next == "COLUMN" || (!next.is_empty() && !NOT_A_COLUMN.contains(&next));
                clause_start = false;
            }
            "MODIFY" => {
                c.modify = true;
                clause_start = false;
            }
            "CHANGE" => {
                c.change = true;
                clause_start = false;
            }
            "ALTER" if i > 0 => {
                c.alter |= next == "COLUMN" || (!next.is_empty() && !NOT_A_COLUMN.contains(&next));
                clause_start = false;
            }
            _ => {}
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ddl_kinds() {
        let f = SqlFilter::from_names(["NoDMLDelete", "noddldroptable", "NoDDLAlterTableAddColumn"]).unwrap();
        assert!(f.no_delete && !f.no_insert && f.no_drop_table && f.no_add_column);
        assert!(!f.keeps_ddl("DROP TABLE t1"));
        assert!(f.keeps_ddl("/* x */ CREATE TABLE t (id int)"));
        assert!(!f.keeps_ddl("ALTER TABLE t ADD COLUMN c INT"));
        assert!(!f.keeps_ddl("alter table t add c int"));
        assert!(f.keeps_ddl("ALTER TABLE t ADD INDEX i (c)"));
        assert!(f.keeps_ddl("ALTER TABLE t DROP COLUMN c"));
        let all_ddl = SqlFilter::from_names(["NoDDL"]).unwrap();
        assert!(!all_ddl.keeps_ddl("CREATE DATABASE x"));
        let dml = SqlFilter::from_names(["NoDML"]).unwrap();
        assert!(dml.no_insert && dml.no_update && dml.no_delete && !dml.no_ddl);
        assert_eq!(SqlFilter::from_names(["NoSuch"]), Err("NoSuch".to_string()));
        let cols = SqlFilter::from_names(["NoDDLAlterTableDropColumn", "NoDDLAlterTableModifyColumn"]).unwrap();
        assert!(!cols.keeps_ddl("ALTER TABLE t DROP COLUMN c"));
        assert!(!cols.keeps_ddl("ALTER TABLE t DROP c"));
        assert!(cols.keeps_ddl("ALTER TABLE t DROP INDEX i"));
        assert!(!cols.keeps_ddl("ALTER TABLE t MODIFY c BIGINT"));
        assert!(!cols.keeps_ddl("ALTER TABLE t ADD INDEX i (a, b), DROP c"));
        assert!(cols.keeps_ddl("ALTER TABLE t ADD INDEX i (a, b), DROP PRIMARY KEY"));
        assert!(!f.keeps_ddl("ALTER TABLE t ADD INDEX i (a), ADD c INT"));
    }
}
