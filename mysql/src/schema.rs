//! Table definitions read from `information_schema`: column names and types, generated columns, and the key
//! the applier uses to find a row (primary key, else a unique key over NOT NULL columns, else none).

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::error::{MysqlError, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnMeta {
    pub name: String,
    /// `int`, `varchar`, `json`, ... lower case.
    pub data_type: String,
    /// Full type, e.g. `int(10) unsigned`, `enum('a','b')`.
    pub column_type: String,
    pub unsigned: bool,
    pub nullable: bool,
    /// Virtual or stored generated column: never written on the target.
    pub generated: bool,
    /// Character set and collation of character columns (`None` for numbers, binary strings, blobs).
    pub charset: Option<String>,
    pub collation: Option<String>,
}

/// A table as the engine knows it: where it comes from and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableMeta {
    pub schema: String,
    pub name: String,
    /// Target names (equal to the source names unless renamed).
    pub target_schema: String,
    pub target_name: String,
    pub columns: Vec<ColumnMeta>,
    /// Indexes into `columns` of the key used to find rows; empty when the table has no usable key.
    pub key_columns: Vec<usize>,
    /// Estimated rows (information_schema.TABLES.TABLE_ROWS), for progress.
    pub estimated_rows: u64,
    /// Only some target columns are written (a column map): the target may have more columns.
    pub column_subset: bool,
}

impl TableMeta {
    pub fn source_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
    pub fn target_ident(&self) -> String {
        format!("{}.{}", quote_ident(&self.target_schema), quote_ident(&self.target_name))
    }
    pub fn source_ident(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
    pub fn has_key(&self) -> bool {
        !self.key_columns.is_empty()
    }
    /// The full copy can read the table in key ranges: it has a key, and the key's order (`ORDER BY`) is the order
    /// of its comparisons (`>`). ENUM and SET sort by their index but compare as strings: such keys are scanned.
    pub fn chunkable(&self) -> bool {
        self.has_key()
            && self
                .key_columns
                .iter()
                .all(|&k| self.columns.get(k).is_some_and(|c| !matches!(c.data_type.as_str(), "enum" | "set")))
    }
    /// Columns written on the target (generated columns are computed there).
    pub fn writable_columns(&self) -> impl Iterator<Item = (usize, &ColumnMeta)> {
        self.columns.iter().enumerate().filter(|(_, c)| !c.generated)
    }
    pub fn column_unsigned(&self) -> Vec<bool> {
        self.columns.iter().map(|c| c.unsigned).collect()
    }

    /// The table as written through a column map (`ColumnMapFrom` → `ColumnMapTo`): the chosen source columns, in
    /// that order, under their target names; and for each of them the index of its source column. The key is kept
    /// when all its columns are mapped.
    pub fn project(&self, from: &[String], to: &[String]) -> Result<(TableMeta, Vec<usize>), String> {
        let mut indexes = Vec::with_capacity(from.len());
        let mut columns = Vec::with_capacity(from.len());
        for (i, name) in from.iter().enumerate() {
            let Some(index) = self.columns.iter().position(|c| c.name.eq_ignore_ascii_case(name)) else {
                let known: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
                return Err(format!(
                    "column {name:?} is not in {} (columns: {})",
                    self.source_name(),
                    known.join(", ")
                ));
            };
            let mut column = self.columns[index].clone();
            column.name = to.get(i).cloned().unwrap_or_else(|| column.name.clone());
            indexes.push(index);
            columns.push(column);
        }
        let key_columns: Option<Vec<usize>> =
            self.key_columns.iter().map(|k| indexes.iter().position(|i| i == k)).collect();
        let projected =
            TableMeta { columns, key_columns: key_columns.unwrap_or_default(), column_subset: true, ..self.clone() };
        Ok((projected, indexes))
    }
}

/// Coarse kinds of column types (`int`, `string`, `datetime`, ...), to compare definitions across DDL and servers.
pub fn data_type_kind(data_type: &str) -> &'static str {
    match data_type {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => "int",
        "decimal" | "numeric" => "decimal",
        "float" | "double" | "real" => "float",
        "year" => "year",
        "date" | "newdate" => "date",
        "time" => "time",
        "datetime" => "datetime",
        "timestamp" => "timestamp",
        "enum" => "enum",
        "set" => "set",
        "bit" => "bit",
        "json" => "json",
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon"
        | "geometrycollection" => "geometry",
        _ => "string",
    }
}

/// Quotes an identifier with backticks.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Quotes a string literal for SQL (for names and metadata, not row values).
pub fn quote_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for ch in s.chars() {
        match ch {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            _ => out.push(ch),
        }
    }
    out.push('\'');
    out
}

/// What orders writes to a table besides its key: the columns of each unique index, and whether a foreign key
/// links it with another table (either way).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteDependencies {
    pub unique_indexes: Vec<Vec<String>>,
    pub foreign_keys: bool,
    /// A unique index over a prefix of a column (`UNIQUE (email(5))`).
    pub prefix_index: bool,
    /// Triggers run on the table's writes.
    pub triggers: bool,
}

/// The tables a foreign key links (either end), read once from `information_schema.KEY_COLUMN_USAGE`. Asked per
/// table, the server opens every table of the instance for each question (0.3 s each with 3,000 tables).
#[derive(Clone, Debug, Default)]
pub struct ForeignKeyLinks(std::collections::HashSet<(String, String)>);

impl ForeignKeyLinks {
    pub async fn load(conn: &mut Conn) -> Result<ForeignKeyLinks> {
        let rows: Vec<(String, String, String, String)> = conn
            .query(
                "SELECT TABLE_SCHEMA, TABLE_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME \
                 FROM information_schema.KEY_COLUMN_USAGE WHERE REFERENCED_TABLE_NAME IS NOT NULL",
            )
            .await
            .map_err(|e| MysqlError::query("reading the foreign keys (information_schema.KEY_COLUMN_USAGE)", e))?;
        let mut linked = std::collections::HashSet::new();
        for (schema, table, referenced_schema, referenced_table) in rows {
            linked.insert(Self::name(&schema, &table));
            linked.insert(Self::name(&referenced_schema, &referenced_table));
        }
        Ok(ForeignKeyLinks(linked))
    }

    /// Whether a foreign key links `schema.table` with another table (or itself). Names compare as information_schema
    /// compares them, without case.
    pub fn links(&self, schema: &str, table: &str) -> bool {
        self.0.contains(&Self::name(schema, table))
    }

    fn name(schema: &str, table: &str) -> (String, String) {
        (schema.to_lowercase(), table.to_lowercase())
    }
}

/// Reads the unique indexes and triggers of a table; `links` says whether foreign keys link it.
pub async fn load_write_dependencies(
    conn: &mut Conn,
    schema: &str,
    table: &str,
    links: &ForeignKeyLinks,
) -> Result<WriteDependencies> {
    let ctx = || format!("reading the unique indexes and triggers of {schema}.{table}");
    let rows: Vec<(String, String, Option<u64>)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (schema, table),
        )
        .await
        .map_err(|e| MysqlError::query(ctx(), e))?;
    let mut unique_indexes: Vec<Vec<String>> = Vec::new();
    let mut last: Option<String> = None;
    let mut prefix_index = false;
    for (index, column, sub_part) in rows {
        prefix_index |= sub_part.is_some();
        if last.as_deref() != Some(index.as_str()) {
            unique_indexes.push(Vec::new());
            last = Some(index);
        }
        if let Some(columns) = unique_indexes.last_mut() {
            columns.push(column);
        }
    }
    let triggers: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?",
            (schema, table),
        )
        .await
        .map_err(|e| MysqlError::query(ctx(), e))?;
    Ok(WriteDependencies {
        unique_indexes,
        foreign_keys: links.links(schema, table),
        prefix_index,
        triggers: triggers.unwrap_or(0) > 0,
    })
}

/// Reads a table's definition; `None` when the table does not exist.
pub async fn load_table_meta(conn: &mut Conn, schema: &str, table: &str) -> Result<Option<TableMeta>> {
    let ctx = || format!("reading the columns of {schema}.{table} from information_schema");
    type ColumnRow = (String, String, String, String, String, Option<String>, Option<String>);
    let columns: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, IS_NULLABLE, UPPER(EXTRA), \
             CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .await
        .map_err(|e| MysqlError::query(ctx(), e))?;
    if columns.is_empty() {
        return Ok(None);
    }
    let columns: Vec<ColumnMeta> = columns
        .into_iter()
        .map(|(name, data_type, column_type, nullable, extra, charset, collation)| ColumnMeta {
            unsigned: column_type.to_ascii_lowercase().contains("unsigned"),
            nullable: nullable == "YES",
            generated: extra.contains("VIRTUAL") || extra.contains("STORED") || extra.contains("PERSISTENT"),
            name,
            data_type,
            column_type,
            charset,
            collation,
        })
        .collect();
    let index_rows: Vec<(String, String, i64)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME, NON_UNIQUE FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
            (schema, table),
        )
        .await
        .map_err(|e| MysqlError::query(format!("reading the indexes of {schema}.{table}"), e))?;
    let key_columns = choose_key(&columns, &index_rows);
    let estimated_rows: Option<u64> = conn
        .exec_first(
            "SELECT CAST(IFNULL(TABLE_ROWS, 0) AS UNSIGNED) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (schema, table),
        )
        .await
        .map_err(|e| MysqlError::query(format!("reading the size of {schema}.{table}"), e))?;
    Ok(Some(TableMeta {
        schema: schema.to_string(),
        name: table.to_string(),
        target_schema: schema.to_string(),
        target_name: table.to_string(),
        columns,
        key_columns,
        estimated_rows: estimated_rows.unwrap_or(0),
        column_subset: false,
    }))
}

/// The primary key; else the first unique index whose columns are all NOT NULL; else nothing.
fn choose_key(columns: &[ColumnMeta], index_rows: &[(String, String, i64)]) -> Vec<usize> {
    let mut indexes: Vec<(&str, bool, Vec<&str>)> = Vec::new();
    for (index, column, non_unique) in index_rows {
        match indexes.last_mut() {
            Some((name, _, cols)) if *name == index.as_str() => cols.push(column),
            _ => indexes.push((index, *non_unique == 0, vec![column])),
        }
    }
    for (name, unique, cols) in &indexes {
        if !unique {
            continue;
        }
        let positions: Option<Vec<usize>> = cols.iter().map(|c| columns.iter().position(|m| m.name == *c)).collect();
        let Some(positions) = positions else { continue };
        if *name == "PRIMARY" || positions.iter().all(|&p| !columns[p].nullable) {
            return positions;
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, nullable: bool) -> ColumnMeta {
        ColumnMeta {
            name: name.into(),
            data_type: "int".into(),
            column_type: "int(11)".into(),
            unsigned: false,
            nullable,
            generated: false,
            charset: None,
            collation: None,
        }
    }

    #[test]
    fn key_choice() {
        let cols = vec![col("a", false), col("b", true), col("c", false)];
        let idx =
            |v: &[(&str, &str, i64)]| v.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), *c)).collect::<Vec<_>>();
        assert_eq!(choose_key(&cols, &idx(&[("PRIMARY", "c", 0), ("PRIMARY", "a", 0)])), vec![2, 0]);
        assert_eq!(choose_key(&cols, &idx(&[("ub", "b", 0), ("uc", "c", 0)])), vec![2]);
        assert_eq!(choose_key(&cols, &idx(&[("k", "a", 1)])), Vec::<usize>::new());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(quote_str("it's\\"), "'it''s\\\\'");
    }
}
