//! The consistent snapshot (full copy): one REPEATABLE READ transaction whose position is exactly where the
//! binlog then starts, tables read in key-range chunks of `ChunkSize` rows.
//!
//! MariaDB gives the binlog position of a `WITH CONSISTENT SNAPSHOT` transaction without any lock
//! (`binlog_snapshot_file` / `binlog_snapshot_position`), and `BINLOG_GTID_POS()` turns it into a GTID position.
//! MySQL needs `FLUSH TABLES WITH READ LOCK` around the snapshot start to read `gtid_executed` consistently.

use std::sync::Arc;

use dtle_metadata::{GtidState, MariadbGtidList, MysqlGtidSet, Position};
use mysql_async::prelude::*;
use mysql_async::{Conn, Value as DriverValue};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::change::Change;
use crate::conn::{Endpoint, Flavor};
use crate::error::{MysqlError, Result};
use crate::filter::TableFilter;
use crate::schema::{load_table_meta, quote_ident, ColumnMeta, TableMeta};
use crate::sql::column_list;
use crate::value::Value;

/// Session settings of every connection that reads rows: UTC for TIMESTAMP, raw bytes for strings.
pub const DATA_SESSION_SETUP: &[&str] =
    &["SET time_zone = '+00:00'", "SET NAMES utf8mb4", "SET character_set_results = binary"];

/// A table being read in key-range chunks (see [`Snapshot::next_chunk`]).
pub struct ChunkCursor {
    /// The table as sent (through a column map, if any).
    pub output: Arc<TableMeta>,
    /// The table as read.
    source: Arc<TableMeta>,
    /// Per output column, its source column (a column map).
    projection: Option<Vec<usize>>,
    row_filter: Option<String>,
    /// SQL literals of the last key read.
    last_key: Option<Vec<String>>,
    /// Rows read so far.
    pub rows: u64,
    done: bool,
}

impl ChunkCursor {
    /// The table can be read in key ranges (else it is read in one scan, see [`Snapshot::copy_table`]).
    pub fn chunkable(&self) -> bool {
        self.source.chunkable()
    }

    fn emit(&self, rows: Vec<Vec<Value>>) -> Change {
        let rows = match &self.projection {
            None => rows,
            Some(indexes) => rows
                .into_iter()
                .map(|r| indexes.iter().map(|&i| r.get(i).cloned().unwrap_or(Value::Absent)).collect())
                .collect(),
        };
        Change::SnapshotRows { table: self.output.clone(), rows }
    }
}

pub struct Snapshot {
    data: Conn,
    meta: Conn,
    pub position: Position,
    /// SQL of the row filter (`Where`) per source table.
    row_filters: std::collections::HashMap<(String, String), String>,
    /// Tables copied through a column map: the source table and, per output column, its source column.
    projections: std::collections::HashMap<(String, String), (Arc<TableMeta>, Vec<usize>)>,
}

/// MariaDB: the binlog file and position of the consistent snapshot open on `conn` (`binlog_snapshot_file` /
/// `binlog_snapshot_position`, taken atomically with the snapshot); an empty file name without a binary log.
pub async fn mariadb_snapshot_position(conn: &mut mysql_async::Conn) -> Result<(String, u64)> {
    let status: Vec<(String, String)> = conn
        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .await
        .map_err(|e| MysqlError::query("reading binlog_snapshot_file/position", e))?;
    let get = |name: &str| status.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    // Some MariaDB versions return trailing bytes after the file name here; keep the name only.
    let file: String = get("binlog_snapshot_file")
        .unwrap_or_default()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
        .collect();
    let pos: u64 = get("binlog_snapshot_position").and_then(|p| p.parse().ok()).unwrap_or(0);
    Ok((file, pos))
}

impl Snapshot {
    /// Opens the snapshot transaction and reads its position.
    pub async fn begin(ep: &Endpoint, flavor: Flavor) -> Result<Snapshot> {
        let mut data = ep.connect(DATA_SESSION_SETUP).await?;
        let meta = ep.connect(&["SET NAMES utf8mb4"]).await?;
        let q = |ctx: &'static str| move |e| MysqlError::query(ctx, e);
        data.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .await
            .map_err(q("setting REPEATABLE READ for the snapshot"))?;
        let position = match flavor {
            Flavor::Mariadb => {
                data.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                    .await
                    .map_err(q("starting the snapshot transaction"))?;
                let (file, pos) = mariadb_snapshot_position(&mut data).await?;
                if file.is_empty() {
                    return Err(MysqlError::Prerequisite {
                        role: "source",
                        addr: ep.addr(),
                        setting: "log_bin".into(),
                        actual: "OFF (no binlog_snapshot_file)".into(),
                        expected: "ON".into(),
                        fix: "enable the binary log on the source".into(),
                    });
                }
                let gtid: Option<String> = data
                    .exec_first("SELECT CAST(BINLOG_GTID_POS(?, ?) AS CHAR)", (file.clone(), pos))
                    .await
                    .map_err(q("reading BINLOG_GTID_POS of the snapshot"))?;
                let gtid_text = gtid.map(|g| String::from_utf8_lossy(g.as_bytes()).into_owned()).unwrap_or_default();
                let list: MariadbGtidList = gtid_text.parse().map_err(|e| MysqlError::Stream {
                    at: crate::error::BinlogAt::file_pos(file.clone(), pos),
                    reason: format!("the source returned an unreadable GTID position {gtid_text:?}: {e}"),
                    transient: false,
                })?;
                Position { gtid: Some(GtidState::Mariadb(list)), binlog_file: file, binlog_pos: pos }
            }
            Flavor::Mysql => {
                data.query_drop("FLUSH TABLES WITH READ LOCK").await.map_err(q(
                    "FLUSH TABLES WITH READ LOCK (the source user needs the RELOAD privilege for a full copy)",
                ))?;
                let result = async {
                    data.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                        .await
                        .map_err(q("starting the snapshot transaction"))?;
                    let gtid: Option<String> = data
                        .query_first("SELECT CAST(@@GLOBAL.gtid_executed AS CHAR)")
                        .await
                        .map_err(q("reading gtid_executed"))?;
                    let row: Option<mysql_async::Row> = match data.query_first("SHOW MASTER STATUS").await {
                        Ok(r) => r,
                        Err(_) => {
                            data.query_first("SHOW BINARY LOG STATUS").await.map_err(q("SHOW BINARY LOG STATUS"))?
                        }
                    };
                    let (file, pos) = row
                        .map(|r| {
                            let file: Option<Vec<u8>> = r.get(0);
                            let pos: Option<u64> = r.get(1);
                            (String::from_utf8_lossy(&file.unwrap_or_default()).into_owned(), pos.unwrap_or(0))
                        })
                        .unwrap_or_default();
                    let gtid_text = gtid.unwrap_or_default();
                    let set: MysqlGtidSet = gtid_text.parse().map_err(|e| MysqlError::Stream {
                        at: crate::error::BinlogAt::file_pos(file.clone(), pos),
                        reason: format!("the source returned an unreadable gtid_executed {gtid_text:?}: {e}"),
                        transient: false,
                    })?;
                    let gtid = if set.is_empty() { None } else { Some(GtidState::Mysql(set)) };
                    Ok::<_, MysqlError>(Position { gtid, binlog_file: file, binlog_pos: pos })
                }
                .await;
                let unlock = data.query_drop("UNLOCK TABLES").await;
                let position = result?;
                unlock.map_err(q("UNLOCK TABLES"))?;
                position
            }
        };
        Ok(Snapshot { data, meta, position, row_filters: Default::default(), projections: Default::default() })
    }

    /// The source tables the filter selects, with their target names.
    pub async fn list_tables(&mut self, filter: &TableFilter) -> Result<Vec<Arc<TableMeta>>> {
        self.row_filters.clear();
        let names: Vec<(String, String)> = self
            .meta
            .query(
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' \
                 ORDER BY TABLE_SCHEMA, TABLE_NAME",
            )
            .await
            .map_err(|e| MysqlError::query("listing the source tables", e))?;
        let mut tables = Vec::new();
        for (schema, name) in names {
            let Some(selection) = filter.selection_of(&schema, &name) else {
                continue;
            };
            let (target_schema, target_name, row_filter) =
                (selection.target_schema, selection.target_name, selection.row_filter);
            if let Some(mut meta) = load_table_meta(&mut self.meta, &schema, &name).await? {
                if let Some(expr) = &row_filter {
                    // Checks the column names now, so a typo fails before anything is copied.
                    expr.bind(&meta.columns).map_err(|e| MysqlError::InvalidConfig {
                        field: format!("Where of {schema}.{name}"),
                        value: expr.to_sql(),
                        reason: e.to_string(),
                    })?;
                    self.row_filters.insert((schema.clone(), name.clone()), expr.to_sql());
                }
                meta.target_schema = target_schema;
                meta.target_name = target_name;
                let source = Arc::new(meta);
                let output = match &selection.column_map {
                    None => source.clone(),
                    Some(map) => {
                        let (projected, indexes) =
                            source.project(&map.from, &map.to).map_err(|reason| MysqlError::InvalidConfig {
                                field: format!("ColumnMapFrom of {schema}.{name}"),
                                value: map.from.join(","),
                                reason,
                            })?;
                        self.projections.insert((schema.clone(), name.clone()), (source.clone(), indexes));
                        Arc::new(projected)
                    }
                };
                tables.push(output);
            }
        }
        Ok(tables)
    }

    /// `CREATE TABLE` for the target, named with the target's schema and table.
    pub async fn create_table_sql(&mut self, table: &TableMeta) -> Result<String> {
        let row: Option<(String, String)> = self
            .meta
            .query_first(format!("SHOW CREATE TABLE {}", table.source_ident()))
            .await
            .map_err(|e| MysqlError::query(format!("SHOW CREATE TABLE {}", table.source_name()), e))?;
        let create = row.map(|(_, sql)| sql).unwrap_or_default();
        Ok(rename_create_table(&create, table))
    }

    /// The tables foreign keys link on the source (see [`crate::schema::ForeignKeyLinks`]).
    pub async fn foreign_key_links(&mut self) -> Result<crate::schema::ForeignKeyLinks> {
        crate::schema::ForeignKeyLinks::load(&mut self.meta).await
    }

    /// The unique indexes and triggers of a source table (see [`crate::schema::load_write_dependencies`]).
    pub async fn write_dependencies(
        &mut self,
        table: &TableMeta,
        links: &crate::schema::ForeignKeyLinks,
    ) -> Result<crate::schema::WriteDependencies> {
        crate::schema::load_write_dependencies(&mut self.meta, &table.schema, &table.name, links).await
    }

    /// Whether the source still has the binlog from `position` on.
    pub async fn binlog_available(&mut self, flavor: Flavor, position: &Position) -> bool {
        crate::stream::check_position_available(&mut self.meta, flavor, position).await.is_ok()
    }

    /// A cursor over a table with a usable key, from its start or (a resumed copy) after the key `after` (SQL
    /// literals of the key columns, as [`key_literals`] wrote them). Read it with [`Snapshot::next_chunk`].
    pub fn chunk_cursor(&self, output: &Arc<TableMeta>, after: Option<Vec<String>>) -> ChunkCursor {
        // Rows are read with the source table and sent as `output` (projected through a column map, if any).
        let (source, projection) = match self.projections.get(&(output.schema.clone(), output.name.clone())) {
            Some((source, indexes)) => (source.clone(), Some(indexes.clone())),
            None => (output.clone(), None),
        };
        let row_filter = self.row_filters.get(&(source.schema.clone(), source.name.clone())).cloned();
        ChunkCursor { output: output.clone(), source, projection, row_filter, last_key: after, rows: 0, done: false }
    }

    /// The next `chunk_size` rows of the cursor's table in key order, as a [`Change::SnapshotRows`]; `None` once the
    /// table is read.
    pub async fn next_chunk(&mut self, cursor: &mut ChunkCursor, chunk_size: usize) -> Result<Option<Change>> {
        if cursor.done {
            return Ok(None);
        }
        let table = cursor.source.clone();
        let columns = column_list(table.columns.iter());
        let order =
            table.key_columns.iter().map(|&i| quote_ident(&table.columns[i].name)).collect::<Vec<_>>().join(",");
        let key_names: Vec<&str> = table.key_columns.iter().map(|&i| table.columns[i].name.as_str()).collect();
        let mut sql = format!("SELECT {columns} FROM {} WHERE ", table.source_ident());
        match &cursor.row_filter {
            Some(f) => sql.push_str(&format!("({f})")),
            None => sql.push('1'),
        }
        if let Some(key) = &cursor.last_key {
            sql.push_str(" AND ");
            write_key_after(&mut sql, &key_names, key);
        }
        sql.push_str(&format!(" ORDER BY {order} LIMIT {chunk_size}"));
        let rows = self.read_rows(&sql, &table).await?;
        if rows.len() < chunk_size {
            cursor.done = true;
        }
        if rows.is_empty() {
            return Ok(None);
        }
        cursor.last_key = rows.last().map(|r| key_literals(&table, r));
        cursor.rows += rows.len() as u64;
        Ok(Some(cursor.emit(rows)))
    }

    /// Reads one table in key order, `chunk_size` rows at a time, and sends the chunks: the whole table, or (a resumed
    /// copy) the rows after the key `after` (SQL literals of the key columns, as [`key_literals`] wrote them).
    /// Returns the number of rows read; stops early (Ok) when cancelled.
    pub async fn copy_table(
        &mut self,
        output: &Arc<TableMeta>,
        chunk_size: usize,
        after: Option<&[String]>,
        out: &mpsc::Sender<Change>,
        cancel: &CancellationToken,
    ) -> Result<u64> {
        let mut cursor = self.chunk_cursor(output, after.map(<[String]>::to_vec));
        if cursor.chunkable() {
            loop {
                if cancel.is_cancelled() {
                    return Ok(cursor.rows);
                }
                let Some(chunk) = self.next_chunk(&mut cursor, chunk_size).await? else {
                    return Ok(cursor.rows);
                };
                if out.send(chunk).await.is_err() {
                    return Ok(cursor.rows);
                }
            }
        }
        let table = cursor.source.clone();
        let columns = column_list(table.columns.iter());
        let row_filter = cursor.row_filter.clone();
        let mut copied = 0u64;
        {
            // No usable key: one ordered scan, cut into chunks as it streams.
            let mut sql = format!("SELECT {columns} FROM {}", table.source_ident());
            if let Some(f) = &row_filter {
                sql.push_str(&format!(" WHERE ({f})"));
            }
            let stmt =
                self.data.prep(sql.as_str()).await.map_err(|e| MysqlError::query(format!("preparing {sql}"), e))?;
            let mut result = self
                .data
                .exec_iter(stmt, ())
                .await
                .map_err(|e| MysqlError::query(format!("reading {}", table.source_name()), e))?;
            let mut chunk = Vec::with_capacity(chunk_size.min(10_000));
            while let Some(row) =
                result.next().await.map_err(|e| MysqlError::query(format!("reading {}", table.source_name()), e))?
            {
                chunk.push(convert_row(row.unwrap_raw(), &table.columns));
                if chunk.len() >= chunk_size {
                    copied += chunk.len() as u64;
                    let rows = std::mem::replace(&mut chunk, Vec::with_capacity(chunk_size.min(10_000)));
                    if cancel.is_cancelled() || out.send(cursor.emit(rows)).await.is_err() {
                        return Ok(copied);
                    }
                }
            }
            drop(result);
            if !chunk.is_empty() {
                copied += chunk.len() as u64;
                let _ = out.send(cursor.emit(chunk)).await;
            }
        }
        Ok(copied)
    }

    async fn read_rows(&mut self, sql: &str, table: &TableMeta) -> Result<Vec<Vec<Value>>> {
        // The binary protocol keeps FLOAT/DOUBLE exact and gives typed temporals.
        let stmt = self.data.prep(sql).await.map_err(|e| MysqlError::query(format!("preparing {sql}"), e))?;
        let rows: Vec<mysql_async::Row> = self
            .data
            .exec(&stmt, ())
            .await
            .map_err(|e| MysqlError::query(format!("reading {}", table.source_name()), e))?;
        let _ = self.data.close(stmt).await;
        Ok(rows.into_iter().map(|r| convert_row(r.unwrap_raw(), &table.columns)).collect())
    }

    pub async fn finish(self) {
        let Snapshot { mut data, meta, .. } = self;
        let _ = data.query_drop("COMMIT").await;
        let _ = data.disconnect().await;
        let _ = meta.disconnect().await;
    }
}

pub use crate::shared::resume::{key_literals, write_key_after, SnapshotResume, TableResume};

/// Replaces the table name in `SHOW CREATE TABLE` output with the qualified target name.
pub fn rename_create_table(create: &str, table: &TableMeta) -> String {
    let prefix = format!("CREATE TABLE {}", quote_ident(&table.name));
    match create.strip_prefix(&prefix) {
        Some(rest) => format!("CREATE TABLE IF NOT EXISTS {}{rest}", table.target_ident()),
        None => create.to_string(),
    }
}

/// Converts a binary-protocol row to engine values using the table's column types.
pub fn convert_row(values: Vec<Option<DriverValue>>, columns: &[ColumnMeta]) -> Vec<Value> {
    values.into_iter().zip(columns).map(|(v, c)| convert_value(v.unwrap_or(DriverValue::NULL), c)).collect()
}

fn convert_value(v: DriverValue, column: &ColumnMeta) -> Value {
    let dt = column.data_type.as_str();
    match v {
        DriverValue::NULL => Value::Null,
        DriverValue::Int(i) => match dt {
            "year" => Value::Year(i as u16),
            _ if column.unsigned => Value::UInt(i as u64),
            _ => Value::Int(i),
        },
        DriverValue::UInt(u) => match dt {
            "year" => Value::Year(u as u16),
            _ if column.unsigned => Value::UInt(u),
            _ => Value::Int(u as i64),
        },
        DriverValue::Float(f) => Value::Float(f),
        DriverValue::Double(d) => match dt {
            "float" => Value::Float(d as f32),
            _ => Value::Double(d),
        },
        DriverValue::Bytes(b) => match dt {
            "decimal" | "numeric" => Value::Decimal(String::from_utf8_lossy(&b).into_owned()),
            "bit" => Value::Bit(b.iter().fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte))),
            _ => Value::Bytes(b),
        },
        DriverValue::Date(year, month, day, hour, minute, second, micros) => match dt {
            "date" => Value::Date { year, month, day },
            _ => Value::DateTime { year, month, day, hour, minute, second, micros },
        },
        DriverValue::Time(negative, days, hours, minutes, seconds, micros) => {
            Value::Time { negative, hours: days * 24 + u32::from(hours), minutes, seconds, micros }
        }
    }
}

/// Reads the source's current position (for a job started with AutoGtid, or to compare).
pub async fn current_position(conn: &mut Conn, flavor: Flavor) -> Result<Position> {
    match flavor {
        Flavor::Mariadb => {
            let gtid: Option<String> = conn
                .query_first("SELECT CAST(@@GLOBAL.gtid_binlog_pos AS CHAR)")
                .await
                .map_err(|e| MysqlError::query("reading gtid_binlog_pos", e))?;
            let list: MariadbGtidList = gtid.unwrap_or_default().parse().map_err(|e| MysqlError::InvalidConfig {
                field: "gtid_binlog_pos".into(),
                value: String::new(),
                reason: format!("{e}"),
            })?;
            Ok(Position { gtid: Some(GtidState::Mariadb(list)), ..Default::default() })
        }
        Flavor::Mysql => {
            let gtid: Option<String> = conn
                .query_first("SELECT CAST(@@GLOBAL.gtid_executed AS CHAR)")
                .await
                .map_err(|e| MysqlError::query("reading gtid_executed", e))?;
            let set: MysqlGtidSet = gtid.unwrap_or_default().parse().map_err(|e| MysqlError::InvalidConfig {
                field: "gtid_executed".into(),
                value: String::new(),
                reason: format!("{e}"),
            })?;
            Ok(Position { gtid: Some(GtidState::Mysql(set)), ..Default::default() })
        }
    }
}
