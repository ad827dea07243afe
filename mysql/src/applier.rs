//! The MySQL/MariaDB applier: writes source transactions to the target exactly once.
//!
//! Every target transaction also writes the job's row in `dtle.replication_position` (the source position
//! after the last source transaction it contains), so the rows and the position commit together. On start the
//! dest reads that row back and the source resumes right after it: nothing is applied twice, nothing skipped.
//! Consecutive source transactions are grouped into one target transaction, and the whole group goes to the
//! server as one multi-statement request (no per-row round trip). Inserts that would hit an existing key,
//! and updates or deletes that find no row, are conflicts: the group rolls back and the error names the table
//! and key, because the target no longer matches the source.

use std::collections::HashSet;
use std::fmt::Write as _;

use dtle_metadata::{GtidState, JobStage, Position};
use mysql_async::prelude::*;
use mysql_async::Conn;
use tracing::{info, warn};

use crate::change::{Change, RowChange, Transaction, TxEvent};
use crate::conn::Endpoint;
use crate::error::{codes, MysqlError, Result};
use crate::schema::{load_table_meta, quote_ident, quote_str, TableMeta};
use crate::sql::{column_list, write_column_literal};
use crate::value::Value;

/// The table on the target that holds each job's position.
pub const POSITION_TABLE: &str = "`dtle`.`replication_position`";

const CREATE_POSITION_TABLE: &str = "CREATE TABLE IF NOT EXISTS `dtle`.`replication_position` (\
    job_name VARCHAR(64) NOT NULL PRIMARY KEY, \
    stage VARCHAR(32) NOT NULL, \
    flavor VARCHAR(16) NOT NULL, \
    gtid_set LONGTEXT NOT NULL, \
    binlog_file VARCHAR(255) NOT NULL, \
    binlog_pos BIGINT UNSIGNED NOT NULL, \
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)\
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

/// DDL errors that mean "already done" when a DDL is replayed after a crash between it and its position write.
const DDL_ALREADY_APPLIED: &[u16] = &[1007, 1008, 1050, 1051, 1060, 1061, 1091, 1146];

#[derive(Clone, Debug)]
pub struct ApplierOptions {
    pub job: String,
    /// `foreign_key_checks` for incremental apply (the full copy always runs without).
    pub foreign_key_checks: bool,
    /// Upper bound of one statement's text; larger groups are split into several statements.
    pub max_statement_bytes: usize,
    /// Retries of a group after a deadlock or lock wait timeout.
    pub retry_tx_limit: u32,
}

impl ApplierOptions {
    pub fn new(job: impl Into<String>) -> Self {
        ApplierOptions { job: job.into(), foreign_key_checks: true, max_statement_bytes: 4 << 20, retry_tx_limit: 5 }
    }
}

/// What the target says about a job: its stage and the position its last transaction committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumePoint {
    pub stage: JobStage,
    pub position: Position,
}

/// Counters for progress and metrics.
#[derive(Clone, Debug, Default)]
pub struct ApplyStats {
    pub snapshot_rows: u64,
    pub transactions: u64,
    pub row_changes: u64,
    pub target_commits: u64,
}

pub struct Applier {
    conn: Conn,
    endpoint: Endpoint,
    opts: ApplierOptions,
    /// Target tables already compared with their source definition.
    checked_tables: HashSet<String>,
    /// A full copy is being redone after an interruption: empty each table before its first rows.
    redo_snapshot: bool,
    /// The first DDL after start may be a replay of one that committed before its position did.
    ddl_replay_possible: bool,
    /// A big source transaction is being applied in parts: its target transaction is open across `apply` calls.
    tx_open: bool,
    pub stats: ApplyStats,
}

/// One statement of a group and what its affected-row count must be.
struct Check {
    expected: Option<u64>,
    table: String,
    what: String,
}

impl Applier {
    pub async fn connect(endpoint: &Endpoint, opts: ApplierOptions) -> Result<Applier> {
        let fk = if opts.foreign_key_checks { 1 } else { 0 };
        let setup = [
            "SET NAMES utf8mb4".to_string(),
            "SET time_zone = '+00:00'".to_string(),
            "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION,STRICT_ALL_TABLES,ALLOW_INVALID_DATES'".to_string(),
            format!("SET foreign_key_checks = {fk}"),
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".to_string(),
        ];
        let setup_refs: Vec<&str> = setup.iter().map(String::as_str).collect();
        let mut conn = endpoint.connect(&setup_refs).await?;
        conn.query_drop("CREATE DATABASE IF NOT EXISTS `dtle`").await.map_err(|e| {
            MysqlError::query("creating the `dtle` schema on the target (the target user needs CREATE)", e)
        })?;
        conn.query_drop(CREATE_POSITION_TABLE)
            .await
            .map_err(|e| MysqlError::query(format!("creating {POSITION_TABLE} on the target"), e))?;
        Ok(Applier {
            conn,
            endpoint: endpoint.clone(),
            opts,
            checked_tables: HashSet::new(),
            redo_snapshot: false,
            ddl_replay_possible: true,
            tx_open: false,
            stats: ApplyStats::default(),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Reads the job's position back from the target.
    pub async fn resume_point(&mut self) -> Result<Option<ResumePoint>> {
        let row: Option<(String, String, String, String, u64)> = self
            .conn
            .exec_first(
                format!(
                    "SELECT stage, flavor, gtid_set, binlog_file, binlog_pos FROM {POSITION_TABLE} WHERE job_name = ?"
                ),
                (self.opts.job.as_str(),),
            )
            .await
            .map_err(|e| MysqlError::query(format!("reading the job's position from {POSITION_TABLE}"), e))?;
        let Some((stage, flavor, gtid, file, pos)) = row else {
            return Ok(None);
        };
        let stage = match stage.as_str() {
            "job_stage_full" => JobStage::Snapshot,
            _ => JobStage::Incremental,
        };
        let gtid_state = match flavor.as_str() {
            "mysql" | "mariadb" if !gtid.trim().is_empty() || flavor == "mariadb" => {
                let parsed = if flavor == "mysql" {
                    gtid.parse().map(GtidState::Mysql)
                } else {
                    gtid.parse().map(GtidState::Mariadb)
                };
                Some(parsed.map_err(|e| MysqlError::InvalidConfig {
                    field: format!("{POSITION_TABLE}.gtid_set for job {}", self.opts.job),
                    value: gtid.clone(),
                    reason: format!("{e}; fix or delete that row"),
                })?)
            }
            _ => None,
        };
        Ok(Some(ResumePoint { stage, position: Position { gtid: gtid_state, binlog_file: file, binlog_pos: pos } }))
    }

    /// Deletes the job's position row (`dtle positions reset`).
    pub async fn reset_position(&mut self) -> Result<()> {
        self.conn
            .exec_drop(format!("DELETE FROM {POSITION_TABLE} WHERE job_name = ?"), (self.opts.job.as_str(),))
            .await
            .map_err(|e| MysqlError::query("deleting the job's position", e))
    }

    /// The full copy is being redone: tables are emptied before their first rows.
    pub fn set_redo_snapshot(&mut self, redo: bool) {
        self.redo_snapshot = redo;
    }

    /// Applies a group of changes. When it returns Ok, everything in it is durable on the target, and the returned
    /// position (if any) is the one recorded there.
    pub async fn apply(&mut self, changes: &[Change]) -> Result<Option<Position>> {
        let mut txs: Vec<&Transaction> = Vec::new();
        let mut group_position: Option<Position> = None;
        let mut durable: Option<Position> = None;
        for change in changes {
            match change {
                Change::Tx(tx) if tx.has_ddl() => {
                    self.flush_dml(&txs, group_position.take()).await?;
                    txs.clear();
                    self.apply_ddl_tx(tx).await?;
                    durable = Some(tx.position.clone());
                }
                Change::Tx(tx) => {
                    txs.push(tx);
                    if !tx.partial {
                        group_position = Some(tx.position.clone());
                    }
                }
                Change::Heartbeat { position, .. } => group_position = Some(position.clone()),
                other => {
                    if let Some(p) = self.flush_dml(&txs, group_position.take()).await? {
                        durable = Some(p);
                    }
                    txs.clear();
                    if let Some(p) = self.apply_snapshot_change(other).await? {
                        durable = Some(p);
                    }
                }
            }
        }
        if let Some(p) = self.flush_dml(&txs, group_position.take()).await? {
            durable = Some(p);
        }
        Ok(durable)
    }

    async fn apply_snapshot_change(&mut self, change: &Change) -> Result<Option<Position>> {
        match change {
            Change::SnapshotStart { position, .. } => {
                let sql = position_upsert(&self.opts.job, JobStage::Snapshot, position);
                self.conn.query_drop(sql).await.map_err(|e| MysqlError::query("recording the full-copy start", e))?;
                info!(job = %self.opts.job, position = %describe(position), "full copy started");
                Ok(None)
            }
            Change::CreateTable { table, create_sql, drop_first } => {
                self.create_table(table, create_sql, *drop_first).await?;
                Ok(None)
            }
            Change::SnapshotRows { table, rows } => {
                self.insert_snapshot_rows(table, rows).await?;
                Ok(None)
            }
            Change::SnapshotTableDone { .. } => Ok(None),
            Change::SnapshotDone { position } => {
                let sql = position_upsert(&self.opts.job, JobStage::Incremental, position);
                self.conn.query_drop(sql).await.map_err(|e| MysqlError::query("recording the full-copy end", e))?;
                self.redo_snapshot = false;
                info!(job = %self.opts.job, position = %describe(position), "full copy done");
                Ok(Some(position.clone()))
            }
            Change::Tx(_) | Change::Heartbeat { .. } => Ok(None),
        }
    }

    async fn create_table(&mut self, table: &TableMeta, create_sql: &str, drop_first: bool) -> Result<()> {
        let mut statements = vec![format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(&table.target_schema))];
        if drop_first {
            statements.push(format!("DROP TABLE IF EXISTS {}", table.target_ident()));
        }
        if !create_sql.is_empty() {
            statements.push(create_sql.to_string());
        }
        for sql in statements {
            self.conn
                .query_drop(&sql)
                .await
                .map_err(|e| MysqlError::query(format!("creating {} on the target", table.target_ident()), e))?;
        }
        self.checked_tables.remove(&table.target_ident());
        self.ensure_target_table(table).await?;
        if self.redo_snapshot {
            info!(table = %table.target_ident(), "emptying the table: the interrupted full copy starts again");
            self.conn.query_drop(format!("TRUNCATE TABLE {}", table.target_ident())).await.map_err(|e| {
                MysqlError::query(format!("emptying {} for the new full copy", table.target_ident()), e)
            })?;
        }
        Ok(())
    }

    /// Compares the target table with the source definition once per table.
    async fn ensure_target_table(&mut self, table: &TableMeta) -> Result<()> {
        let ident = table.target_ident();
        if self.checked_tables.contains(&ident) {
            return Ok(());
        }
        let target = load_table_meta(&mut self.conn, &table.target_schema, &table.target_name).await?;
        let Some(target) = target else {
            return Err(MysqlError::SchemaMismatch {
                table: ident,
                detail: "it does not exist on the target. Create it, or let dtle create it (SkipCreateDbTable = false with a full copy)".into(),
            });
        };
        let mut problems = Vec::new();
        for (_, column) in table.writable_columns() {
            match target.columns.iter().find(|c| c.name.eq_ignore_ascii_case(&column.name)) {
                None => problems.push(format!("column {} is missing on the target", column.name)),
                Some(t) if t.data_type != column.data_type || t.unsigned != column.unsigned => problems.push(format!(
                    "column {} is {} on the source but {} on the target",
                    column.name, column.column_type, t.column_type
                )),
                Some(_) => {}
            }
        }
        // Through a column map the target may have more columns (they keep their defaults).
        for t in target.columns.iter().filter(|t| !t.generated && !table.column_subset) {
            if !table.columns.iter().any(|c| c.name.eq_ignore_ascii_case(&t.name)) {
                problems.push(format!("column {} exists only on the target", t.name));
            }
        }
        if !problems.is_empty() {
            return Err(MysqlError::SchemaMismatch {
                table: format!("{} (source {})", ident, table.source_name()),
                detail: problems.join("; "),
            });
        }
        self.checked_tables.insert(ident);
        Ok(())
    }

    async fn insert_snapshot_rows(&mut self, table: &TableMeta, rows: &[Vec<Value>]) -> Result<()> {
        self.ensure_target_table(table).await?;
        let mut statements = Vec::new();
        let mut checks = Vec::new();
        let mut builder = MultiRowStatement::new("inserting");
        for row in rows {
            push_insert(&mut builder, table, row, self.opts.max_statement_bytes, &mut statements, &mut checks);
        }
        builder.finish(&mut statements, &mut checks);
        self.execute_group(statements, checks, None, true, true).await?;
        self.stats.snapshot_rows += rows.len() as u64;
        Ok(())
    }

    /// Applies DML transactions (and heartbeats) as one target transaction with the position. When the group ends
    /// with a part of a big source transaction, its statements run and the target transaction stays open; the part
    /// that completes it commits everything with its position.
    async fn flush_dml(&mut self, txs: &[&Transaction], position: Option<Position>) -> Result<Option<Position>> {
        let ends_open = txs.last().is_some_and(|t| t.partial);
        if txs.is_empty() && position.is_none() {
            return Ok(None);
        }
        let mut statements = Vec::new();
        let mut checks = Vec::new();
        let mut insert = MultiRowStatement::new("inserting");
        let mut delete = MultiRowStatement::new("deleting by key");
        let mut rows = 0u64;
        for tx in txs {
            for event in &tx.events {
                let TxEvent::Row(change) = event else {
                    continue;
                };
                self.ensure_target_table(change.table()).await?;
                rows += 1;
                match change {
                    RowChange::Insert { table, after } => {
                        delete.finish(&mut statements, &mut checks);
                        push_insert(
                            &mut insert,
                            table,
                            after,
                            self.opts.max_statement_bytes,
                            &mut statements,
                            &mut checks,
                        );
                    }
                    RowChange::Delete { table, before } => {
                        insert.finish(&mut statements, &mut checks);
                        push_delete(
                            &mut delete,
                            table,
                            before,
                            self.opts.max_statement_bytes,
                            &mut statements,
                            &mut checks,
                        );
                    }
                    RowChange::Update { table, before, after } => {
                        insert.finish(&mut statements, &mut checks);
                        delete.finish(&mut statements, &mut checks);
                        let (sql, check) = update_statement(table, before, after);
                        statements.push(sql);
                        checks.push(check);
                    }
                }
            }
        }
        insert.finish(&mut statements, &mut checks);
        delete.finish(&mut statements, &mut checks);
        let position = if ends_open { None } else { position };
        let position_sql = position.as_ref().map(|p| position_upsert(&self.opts.job, JobStage::Incremental, p));
        self.execute_group(statements, checks, position_sql, false, !ends_open).await?;
        self.stats.transactions += txs.iter().filter(|t| !t.partial).count() as u64;
        self.stats.row_changes += rows;
        Ok(position)
    }

    async fn apply_ddl_tx(&mut self, tx: &Transaction) -> Result<()> {
        for event in &tx.events {
            match event {
                TxEvent::Ddl { schema, sql, tables } => {
                    let mut text = String::new();
                    if !schema.is_empty() {
                        let _ = write!(text, "USE {}; ", quote_ident(schema));
                    }
                    text.push_str(sql);
                    if let Err(e) = self.conn.query_drop(&text).await {
                        let code = match &e {
                            mysql_async::Error::Server(s) => Some(s.code),
                            _ => None,
                        };
                        let replay = self.ddl_replay_possible && code.is_some_and(|c| DDL_ALREADY_APPLIED.contains(&c));
                        if !replay {
                            return Err(MysqlError::query(format!("applying DDL of source transaction {} on the target: {sql}", tx.gtid), e));
                        }
                        warn!(gtid = %tx.gtid, %sql, error = %e, "DDL already applied before the last restart; continuing");
                    }
                    for (s, t) in tables {
                        self.checked_tables.retain(|ident| ident != &format!("{}.{}", quote_ident(s), quote_ident(t)));
                    }
                    self.checked_tables.clear();
                }
                TxEvent::Row(_) => {
                    return Err(MysqlError::Unsupported {
                        what: format!("source transaction {} mixes DDL and row changes", tx.gtid),
                        fix: "this happens with CREATE TABLE ... SELECT under ROW format; create the table and copy its rows separately".into(),
                    })
                }
            }
        }
        self.ddl_replay_possible = false;
        let sql = position_upsert(&self.opts.job, JobStage::Incremental, &tx.position);
        self.conn.query_drop(sql).await.map_err(|e| MysqlError::query("recording the position after a DDL", e))?;
        self.stats.transactions += 1;
        Ok(())
    }

    /// Runs `START TRANSACTION; statements; position` in requests of bounded size, checking each statement's row
    /// count, then `COMMIT` (unless `commit` is false: a big source transaction continues in the next call).
    /// `snapshot_session` runs the group with foreign key checks off (the full copy).
    async fn execute_group(
        &mut self,
        statements: Vec<String>,
        checks: Vec<Check>,
        position_sql: Option<String>,
        snapshot_session: bool,
        commit: bool,
    ) -> Result<()> {
        if statements.is_empty() && position_sql.is_none() && !(commit && self.tx_open) {
            return Ok(());
        }
        // Requests stay well below the server's max_allowed_packet; statements are already bounded in size.
        let max_request = (self.opts.max_statement_bytes * 2).max(1 << 20);
        let mut requests: Vec<(String, Vec<Option<&Check>>)> = Vec::new();
        let mut sql = String::new();
        let mut request_checks: Vec<Option<&Check>> = Vec::new();
        fn add<'c>(sql: &mut String, checks: &mut Vec<Option<&'c Check>>, statement: &str, check: Option<&'c Check>) {
            if !sql.is_empty() {
                sql.push(';');
            }
            sql.push_str(statement);
            checks.push(check);
        }
        if snapshot_session {
            add(&mut sql, &mut request_checks, "SET foreign_key_checks = 0", None);
        }
        if !self.tx_open {
            add(&mut sql, &mut request_checks, "START TRANSACTION", None);
        }
        for (statement, check) in statements.iter().zip(&checks) {
            if !sql.is_empty() && sql.len() + statement.len() > max_request {
                requests.push((std::mem::take(&mut sql), std::mem::take(&mut request_checks)));
            }
            add(&mut sql, &mut request_checks, statement, Some(check));
        }
        if let Some(p) = &position_sql {
            add(&mut sql, &mut request_checks, p, None);
        }
        if !sql.is_empty() {
            requests.push((sql, request_checks));
        }
        // COMMIT goes in a request of its own, after every statement's row count was checked: a statement that found
        // no row is not a server error, so the server would otherwise commit the group before we see the count.
        let mut finish = String::new();
        if commit {
            finish.push_str("COMMIT");
            if snapshot_session {
                let fk = if self.opts.foreign_key_checks { 1 } else { 0 };
                let _ = write!(finish, ";SET foreign_key_checks = {fk}");
            }
        }

        let was_open = self.tx_open;
        let mut attempt = 0;
        loop {
            let mut applied = Ok(());
            for (request, request_checks) in &requests {
                if let Err(e) = self.run_checked(request, request_checks).await {
                    applied = Err(e);
                    break;
                }
                self.tx_open = true;
            }
            if applied.is_ok() && commit {
                applied =
                    self.conn.query_drop(&finish).await.map_err(|e| MysqlError::query("committing on the target", e));
            }
            match applied {
                Ok(()) => {
                    self.tx_open = !commit;
                    if commit {
                        self.stats.target_commits += 1;
                    }
                    return Ok(());
                }
                Err(e) => {
                    let _ = self.conn.query_drop("ROLLBACK").await;
                    self.tx_open = false;
                    let retry = matches!(e.server_code(), Some(codes::LOCK_DEADLOCK) | Some(codes::LOCK_WAIT_TIMEOUT));
                    // Earlier parts of a big transaction are rolled back too: only the whole pipeline can redo them.
                    if retry && !was_open && attempt < self.opts.retry_tx_limit {
                        attempt += 1;
                        warn!(attempt, error = %e, "retrying the target transaction");
                        tokio::time::sleep(std::time::Duration::from_millis(10 * u64::from(attempt))).await;
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Runs a multi-statement request, checking each statement's affected-row count in order.
    ///
    /// mysql_async reports an error of a later statement only when the rest of the result is dropped (the failed
    /// statement shows up as an empty result), so every path ends in `drop_result`, and a request that did not run
    /// to its last statement is an error even when no error surfaced.
    async fn run_checked(&mut self, sql: &str, checks: &[Option<&Check>]) -> Result<()> {
        let mut index = 0usize;
        let outcome: std::result::Result<Option<(String, String)>, mysql_async::Error> = async {
            let mut result = self.conn.query_iter(sql).await?;
            let mut mismatch = None;
            loop {
                if let Some(Some(check)) = checks.get(index) {
                    if let Some(expected) = check.expected {
                        let affected = result.affected_rows();
                        if affected != expected {
                            mismatch = Some((
                                check.table.clone(),
                                format!("{}: expected {expected} row(s), the target had {affected}", check.what),
                            ));
                            break;
                        }
                    }
                }
                if result.is_empty() {
                    break;
                }
                result.next().await?;
                index += 1;
            }
            // Surfaces the error of a statement that failed after the first one.
            result.drop_result().await?;
            if mismatch.is_none() && index + 1 < checks.len() {
                mismatch = Some((
                    "(group)".to_string(),
                    format!("only {} of {} statements ran on the target", index + 1, checks.len()),
                ));
            }
            Ok(mismatch)
        }
        .await;
        match outcome {
            Ok(None) => Ok(()),
            Ok(Some((table, detail))) => Err(MysqlError::Conflict { table, detail }),
            Err(e) => {
                let failed = checks.get(index).copied().flatten().or(checks.get(index + 1).copied().flatten());
                match (&e, failed) {
                    (mysql_async::Error::Server(s), Some(check))
                        if matches!(s.code, codes::DUP_ENTRY | codes::NO_REFERENCED_ROW | codes::ROW_IS_REFERENCED) =>
                    {
                        Err(MysqlError::Conflict {
                            table: check.table.clone(),
                            detail: format!("{} ({})", s.message, check.what),
                        })
                    }
                    (_, Some(check)) => {
                        Err(MysqlError::query(format!("applying to {} ({})", check.table, check.what), e))
                    }
                    _ => Err(MysqlError::query("applying a transaction group on the target", e)),
                }
            }
        }
    }
}

/// A statement that grows one row at a time for consecutive rows of one table: a multi-row INSERT, or a DELETE
/// of several keys. It is closed (and its row count checked) when the table changes or it gets long.
struct MultiRowStatement {
    /// What the statement does, for error messages ("inserting", "deleting by key").
    action: &'static str,
    table: Option<String>,
    sql: String,
    rows: u64,
}

impl MultiRowStatement {
    fn new(action: &'static str) -> Self {
        MultiRowStatement { action, table: None, sql: String::new(), rows: 0 }
    }

    /// Makes room for one more row of `table` and returns the text to append it to: after `separator` when the open
    /// statement continues, or after `header` in a new statement.
    fn next_row(
        &mut self,
        table: &str,
        max_bytes: usize,
        separator: &str,
        header: impl FnOnce(&mut String),
        out: &mut Vec<String>,
        checks: &mut Vec<Check>,
    ) -> &mut String {
        if self.table.as_deref() != Some(table) || self.sql.len() >= max_bytes {
            self.finish(out, checks);
            self.table = Some(table.to_string());
            header(&mut self.sql);
        } else {
            self.sql.push_str(separator);
        }
        self.rows += 1;
        &mut self.sql
    }

    fn finish(&mut self, out: &mut Vec<String>, checks: &mut Vec<Check>) {
        if let Some(table) = self.table.take() {
            out.push(std::mem::take(&mut self.sql));
            checks.push(Check {
                expected: Some(self.rows),
                table,
                what: format!("{} {} row(s)", self.action, self.rows),
            });
            self.rows = 0;
        }
    }
}

fn push_insert(
    statement: &mut MultiRowStatement,
    table: &TableMeta,
    row: &[Value],
    max_bytes: usize,
    out: &mut Vec<String>,
    checks: &mut Vec<Check>,
) {
    let ident = table.target_ident();
    let header = |sql: &mut String| {
        let _ = write!(sql, "INSERT INTO {ident} ({}) VALUES ", column_list(table.writable_columns().map(|(_, c)| c)));
    };
    let sql = statement.next_row(&ident, max_bytes, ",", header, out, checks);
    sql.push('(');
    for (n, (i, column)) in table.writable_columns().enumerate() {
        if n > 0 {
            sql.push(',');
        }
        let value = row.get(i).unwrap_or(&Value::Null);
        if !write_column_literal(sql, value, column, false) {
            sql.push_str("DEFAULT");
        }
    }
    sql.push(')');
}

/// Deletes by key join one `DELETE ... WHERE (k=1) OR (k=2) ...`; keyless tables delete row by row.
fn push_delete(
    statement: &mut MultiRowStatement,
    table: &TableMeta,
    row: &[Value],
    max_bytes: usize,
    out: &mut Vec<String>,
    checks: &mut Vec<Check>,
) {
    let ident = table.target_ident();
    if !table.has_key() {
        statement.finish(out, checks);
        let mut sql = format!("DELETE FROM {ident} WHERE ");
        write_row_match(&mut sql, table, row);
        sql.push_str(" LIMIT 1");
        out.push(sql);
        checks.push(Check {
            expected: Some(1),
            table: ident,
            what: format!("deleting the row {}", describe_row(table, row)),
        });
        return;
    }
    let header = |sql: &mut String| {
        let _ = write!(sql, "DELETE FROM {ident} WHERE ");
    };
    let sql = statement.next_row(&ident, max_bytes, " OR ", header, out, checks);
    write_key_match(sql, table, row);
}

fn update_statement(table: &TableMeta, before: &[Value], after: &[Value]) -> (String, Check) {
    let mut sql = format!("UPDATE {} SET ", table.target_ident());
    let mut first = true;
    for (i, column) in table.writable_columns() {
        let value = after.get(i).unwrap_or(&Value::Null);
        if matches!(value, Value::Absent) {
            continue;
        }
        if !first {
            sql.push(',');
        }
        first = false;
        sql.push_str(&quote_ident(&column.name));
        sql.push('=');
        write_column_literal(&mut sql, value, column, false);
    }
    sql.push_str(" WHERE ");
    if table.has_key() {
        write_key_match(&mut sql, table, before);
    } else {
        write_row_match(&mut sql, table, before);
        sql.push_str(" LIMIT 1");
    }
    let what = format!("updating the row {}", describe_row(table, before));
    (sql, Check { expected: Some(1), table: table.target_ident(), what })
}

/// `(k1=v1 AND k2=v2)` on the key columns.
fn write_key_match(sql: &mut String, table: &TableMeta, row: &[Value]) {
    sql.push('(');
    for (n, &i) in table.key_columns.iter().enumerate() {
        if n > 0 {
            sql.push_str(" AND ");
        }
        let column = &table.columns[i];
        sql.push_str(&quote_ident(&column.name));
        sql.push('=');
        write_column_literal(sql, row.get(i).unwrap_or(&Value::Null), column, true);
    }
    sql.push(')');
}

/// Every stored column compared null-safely, for tables without a key.
fn write_row_match(sql: &mut String, table: &TableMeta, row: &[Value]) {
    let mut first = true;
    for (i, column) in table.writable_columns() {
        let value = row.get(i).unwrap_or(&Value::Null);
        if matches!(value, Value::Absent) {
            continue;
        }
        if !first {
            sql.push_str(" AND ");
        }
        first = false;
        sql.push_str(&quote_ident(&column.name));
        sql.push_str("<=>");
        write_column_literal(sql, value, column, true);
    }
    if first {
        sql.push('1');
    }
}

/// The key (or, without a key, the first columns) of a row, for error messages.
fn describe_row(table: &TableMeta, row: &[Value]) -> String {
    let columns: Vec<usize> =
        if table.has_key() { table.key_columns.clone() } else { (0..table.columns.len().min(4)).collect() };
    let parts: Vec<String> = columns
        .iter()
        .map(|&i| {
            let mut literal = row.get(i).map(Value::to_sql_literal).unwrap_or_default();
            if literal.len() > 64 {
                literal.truncate(64);
                literal.push('…');
            }
            format!("{}={}", table.columns[i].name, literal)
        })
        .collect();
    format!("({})", parts.join(", "))
}

fn stage_name(stage: JobStage) -> &'static str {
    match stage {
        JobStage::Snapshot => "job_stage_full",
        JobStage::Incremental => "job_stage_incr",
        JobStage::Stopped => "job_stage_stopped",
        JobStage::Failed => "job_stage_failed",
    }
}

/// The statement that records a job's position.
pub fn position_upsert(job: &str, stage: JobStage, position: &Position) -> String {
    let (flavor, gtid) = match &position.gtid {
        Some(GtidState::Mysql(set)) => ("mysql", set.to_string()),
        Some(GtidState::Mariadb(list)) => ("mariadb", list.to_string()),
        None => ("", String::new()),
    };
    format!(
        "INSERT INTO {POSITION_TABLE} (job_name, stage, flavor, gtid_set, binlog_file, binlog_pos) VALUES ({}, '{}', '{}', {}, {}, {}) \
         ON DUPLICATE KEY UPDATE stage = VALUES(stage), flavor = VALUES(flavor), gtid_set = VALUES(gtid_set), \
         binlog_file = VALUES(binlog_file), binlog_pos = VALUES(binlog_pos)",
        quote_str(job),
        stage_name(stage),
        flavor,
        quote_str(&gtid),
        quote_str(&position.binlog_file),
        position.binlog_pos
    )
}

/// Short text of a position for logs.
pub fn describe(position: &Position) -> String {
    match &position.gtid {
        Some(g) => format!("{g} ({}:{})", position.binlog_file, position.binlog_pos),
        None => format!("{}:{}", position.binlog_file, position.binlog_pos),
    }
}
