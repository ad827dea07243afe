//! `dtle verify --repair`: rewrites a differing chunk on the target with the source's rows, exactly at the job's
//! position, while replication goes on.
//!
//! In one target transaction: the job's position row is locked (`SELECT ... FOR UPDATE`: the applier writes that
//! row in every target transaction, so it waits for the repair, which is short), its position Pt read, and no
//! parallel-applied transaction may be pending. The source's rows of the chunk are read in two snapshots, at
//! Ga <= Pt (before the lock) and at Gb >= Pt (after it); when they agree, the rows did not change on the source
//! between Ga and Gb, so they are the rows the target must hold at Pt. The target's rows of the range are locked
//! (`FOR UPDATE`), the rows that differ or are missing are written (`INSERT ... ON DUPLICATE KEY UPDATE` of the
//! compared columns, so target columns outside a column map keep their values), target rows the source lacks are
//! deleted (unless other writers are expected, see `--ignore-extra-rows`), and the transaction commits. A table
//! without a key is rewritten whole. Replication then continues after Pt on top of the repaired rows.
//!
//! Why not the applier itself: its writes run in transactions of its own, and the repair must run in the
//! transaction that holds the job's position row, or the job could apply a newer change first and have it
//! overwritten with older rows. The rows are rendered with the applier's literal code (`dtle_mysql::sql`).
//!
//! A chunk that keeps changing, a target that does not reach the source, a deadlock with the applier (retried)
//! and a write the target refuses (say a unique value another row still holds) end the repair of that chunk with
//! the reason; the chunk is then reported different.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dtle_mysql::applier::{APPLIED_TABLE, POSITION_TABLE};
use dtle_mysql::checksum::RowEncoder;
use dtle_mysql::error::{codes, MysqlError};
use dtle_mysql::schema::quote_ident;
use dtle_mysql::sql::{column_list, write_column_literal};
use dtle_mysql::Value;
use mysql_async::prelude::*;

use super::compare::RowSet;
use super::read::{backoff, covers, position_from_row, TargetState};
use super::{range_condition, Chunk, TablePlan, Verifier};
use crate::error::DriverError;

/// What one repair changed.
pub struct Repaired {
    pub written: usize,
    pub deleted: usize,
}

impl Verifier<'_> {
    /// Repairs a chunk (see the module doc); retried while the chunk changes or the target is not ready, up to
    /// `--max-lag` seconds.
    pub(super) async fn repair(&mut self, table: &TablePlan, chunk: &Chunk) -> Result<Repaired, DriverError> {
        let deadline = Instant::now() + Duration::from_secs(self.args.max_lag);
        let mut attempt = 0u32;
        loop {
            let last_reason;
            match self.try_repair(table, chunk).await {
                Ok(Ok(done)) => return Ok(done),
                Ok(Err(reason)) => last_reason = reason,
                Err(DriverError::Mysql(e))
                    if matches!(e.server_code(), Some(codes::LOCK_DEADLOCK) | Some(codes::LOCK_WAIT_TIMEOUT)) =>
                {
                    let _ = self.target.conn().query_drop("ROLLBACK").await;
                    last_reason = format!("a lock conflict with the job's applier ({e})");
                }
                Err(e) => {
                    let _ = self.target.conn().query_drop("ROLLBACK").await;
                    return Err(e);
                }
            }
            if Instant::now() >= deadline {
                return Err(DriverError::Other(format!(
                    "could not repair {} within {} s (--max-lag): {last_reason}",
                    table.target_label(),
                    self.args.max_lag
                )));
            }
            tracing::debug!(job = %self.job.name, table = %table.source_name(), chunk = chunk.no, reason = %last_reason, "repair: again");
            backoff(attempt).await;
            attempt += 1;
        }
    }

    /// One attempt: `Ok(Err(reason))` when it has to be tried again (nothing written).
    async fn try_repair(&mut self, table: &TablePlan, chunk: &Chunk) -> Result<Result<Repaired, String>, DriverError> {
        let ga = self.source.begin_source().await?;
        let rows_a = self.source_range_rows(table, chunk).await?;
        self.source.end().await?;
        let job = self.job.name.clone();
        let target = self.target.conn();
        target
            .query_drop("START TRANSACTION")
            .await
            .map_err(|e| MysqlError::query("starting the repair on the target", e))?;
        let row: Option<(String, String, String, String, u64)> = target
            .exec_first(
                format!("SELECT stage, flavor, gtid_set, binlog_file, binlog_pos FROM {POSITION_TABLE} WHERE job_name = ? FOR UPDATE"),
                (job.as_str(),),
            )
            .await
            .map_err(|e| MysqlError::query(format!("locking the job's position row in {POSITION_TABLE}"), e))?;
        // The range's rows are locked before the parallel records are counted: a partition that committed rows
        // of the range beyond Pt left records (counted below, so this attempt is dropped), and one that has not
        // committed yet waits for this transaction and applies its changes on top of the repaired rows.
        let mut sql = format!("SELECT {} FROM {}", column_list(table.target_columns.iter()), table.target_ident());
        if table.keyed() {
            sql.push_str(" WHERE ");
            sql.push_str(&range_condition(&table.target_key_names(), chunk.lower.as_ref(), chunk.upper.as_ref()));
        }
        sql.push_str(" FOR UPDATE");
        let target_rows = self.target.rows(&sql, &table.target_columns, &table.target_label()).await?;
        let target = self.target.conn();
        let applied: Option<u64> = match target
            .exec_first(
                format!("SELECT COUNT(*) FROM {APPLIED_TABLE} WHERE job_name = ? LOCK IN SHARE MODE"),
                (job.as_str(),),
            )
            .await
        {
            Ok(n) => n,
            Err(mysql_async::Error::Server(e)) if e.code == 1146 => Some(0),
            Err(e) => return Err(MysqlError::query(format!("reading {APPLIED_TABLE}"), e).into()),
        };
        let state = TargetState {
            stage: row.as_ref().map(|r| r.0.clone()),
            position: row.map(|(_, flavor, gtid, file, pos)| position_from_row(&flavor, &gtid, file, pos)),
            applied_pending: applied.unwrap_or(0),
            catching_up: false,
        };
        if let Some(why) = state.not_ready(&ga) {
            self.rollback_target().await?;
            return Ok(Err(why));
        }
        let pt = state.position.unwrap_or_default();
        let gb = self.source.begin_source().await?;
        if covers(&gb, &pt) != Some(true) {
            self.source.end().await?;
            self.rollback_target().await?;
            return Ok(Err("the source snapshot has not reached the target's position yet".into()));
        }
        let rows_b = self.source_range_rows(table, chunk).await?;
        self.source.end().await?;
        if RowSet::build(&rows_a, &table.key, &table.canons) != RowSet::build(&rows_b, &table.key, &table.canons) {
            self.rollback_target().await?;
            return Ok(Err("the chunk kept changing on the source".into()));
        }
        let (statements, written, deleted) = repair_statements(table, &rows_b, &target_rows);
        let target = self.target.conn();
        for statement in &statements {
            target
                .query_drop(statement)
                .await
                .map_err(|e| MysqlError::query(format!("repairing {} on the target", table.target_label()), e))?;
        }
        target.query_drop("COMMIT").await.map_err(|e| MysqlError::query("committing the repair", e))?;
        tracing::info!(job = %self.job.name, table = %table.target_label(), chunk = chunk.no, written, deleted,
            position = %dtle_mysql::applier::describe(&pt), "repaired a chunk");
        Ok(Ok(Repaired { written, deleted }))
    }

    async fn rollback_target(&mut self) -> Result<(), DriverError> {
        self.target
            .conn()
            .query_drop("ROLLBACK")
            .await
            .map_err(|e| MysqlError::query("rolling back on the target", e))?;
        Ok(())
    }
}

/// The statements that make the target's rows of a chunk equal to `source` rows (compared columns): the rows
/// written and the rows deleted.
fn repair_statements(table: &TablePlan, source: &[Vec<Value>], target: &[Vec<Value>]) -> (Vec<String>, usize, usize) {
    let mut enc = RowEncoder::default();
    let mut statements = Vec::new();
    let columns = column_list(table.target_columns.iter());
    let write_row = |out: &mut String, row: &[Value]| {
        out.push('(');
        for (i, (value, column)) in row.iter().zip(&table.target_columns).enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_column_literal(out, value, column, false);
        }
        out.push(')');
    };
    if !table.keyed() {
        // Rewritten whole.
        statements.push(format!("DELETE FROM {}", table.target_ident()));
        for part in source.chunks(500) {
            let mut sql = format!("INSERT INTO {} ({columns}) VALUES ", table.target_ident());
            for (i, row) in part.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                write_row(&mut sql, row);
            }
            statements.push(sql);
        }
        return (statements, source.len(), target.len());
    }
    let target_by_key: HashMap<Vec<u8>, (u128, &Vec<Value>)> =
        target.iter().map(|r| (enc.key(r, &table.key, &table.canons), (enc.row(r, &table.canons), r))).collect();
    let mut source_keys = std::collections::HashSet::new();
    let mut upserts: Vec<&Vec<Value>> = Vec::new();
    for row in source {
        let key = enc.key(row, &table.key, &table.canons);
        let digest = enc.row(row, &table.canons);
        if target_by_key.get(&key).map(|(d, _)| *d) != Some(digest) {
            upserts.push(row);
        }
        source_keys.insert(key);
    }
    let mut deleted = 0;
    if table.count_extra {
        for (key, (_, row)) in &target_by_key {
            if source_keys.contains(key) {
                continue;
            }
            let mut sql = format!("DELETE FROM {} WHERE ", table.target_ident());
            for (n, &k) in table.key.iter().enumerate() {
                if n > 0 {
                    sql.push_str(" AND ");
                }
                sql.push_str(&quote_ident(&table.target_columns[k].name));
                sql.push_str(" = ");
                write_column_literal(&mut sql, row.get(k).unwrap_or(&Value::Null), &table.target_columns[k], true);
            }
            statements.push(sql);
            deleted += 1;
        }
    }
    let update = table
        .target_columns
        .iter()
        .map(|c| format!("{0} = VALUES({0})", quote_ident(&c.name)))
        .collect::<Vec<_>>()
        .join(", ");
    for part in upserts.chunks(500) {
        let mut sql = format!("INSERT INTO {} ({columns}) VALUES ", table.target_ident());
        for (i, row) in part.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            write_row(&mut sql, row);
        }
        sql.push_str(" ON DUPLICATE KEY UPDATE ");
        sql.push_str(&update);
        statements.push(sql);
    }
    (statements, upserts.len(), deleted)
}
