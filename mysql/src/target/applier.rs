//! The MySQL/MariaDB applier: writes source transactions to the target exactly once.
//!
//! Every target transaction also writes the job's row in `dtle.replication_position` (the source position
//! after the last source transaction it contains), so the rows and the position commit together. On start the
//! dest reads that row back and the source resumes right after it: nothing is applied twice, nothing skipped.
//! Consecutive source transactions are grouped into one target transaction, and the whole group goes to the
//! server as one multi-statement request (no per-row round trip). Inserts that would hit an existing key,
//! and updates or deletes that find no row, are conflicts: the group rolls back and the error names the table
//! and key, because the target no longer matches the source.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use dtle_metadata::{GtidState, JobStage, Position};
use mysql_async::prelude::*;
use mysql_async::Conn;
use tracing::{debug, error, info, warn};

use crate::change::{Change, RowChange, Transaction, TxEvent};
use crate::conn::Endpoint;
use crate::error::{codes, MysqlError, Result};
use crate::load_data::LoadPlan;
use crate::schema::{load_table_meta, load_write_dependencies, quote_ident, quote_str, ForeignKeyLinks, TableMeta};
use crate::shared::resume::SnapshotResume;
use crate::snapshot_apply::{self, SnapshotWriters};
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
    origin VARCHAR(255) NOT NULL DEFAULT '', \
    marker_seq BIGINT UNSIGNED NOT NULL DEFAULT 0, \
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
    /// Target connections writing full-copy chunks at once.
    pub snapshot_writers: usize,
    /// Target connections applying independent source transactions at once (`ParallelWorkers`); 1 = serial.
    pub parallel_workers: usize,
    /// Full-copy chunks go as `LOAD DATA LOCAL INFILE` when the target allows it (see [`crate::load_data`]).
    pub snapshot_load_data: bool,
    /// Tables dtle creates for a full copy get their plain secondary indexes once filled (see
    /// [`snapshot_apply::split_secondary_indexes`]).
    pub snapshot_defer_indexes: bool,
}

impl ApplierOptions {
    pub fn new(job: impl Into<String>) -> Self {
        ApplierOptions {
            job: job.into(),
            foreign_key_checks: true,
            max_statement_bytes: 4 << 20,
            retry_tx_limit: 5,
            snapshot_writers: snapshot_apply::SNAPSHOT_WRITERS,
            parallel_workers: 1,
            snapshot_load_data: true,
            snapshot_defer_indexes: true,
        }
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
    /// Source transactions skipped because they came from this target (two-way sync).
    pub looped_back: u64,
    /// Groups applied on several connections at once, their partitions, and partitions redone one at a time.
    pub parallel_groups: u64,
    pub parallel_partitions: u64,
    pub retried_partitions: u64,
    /// Source transactions a parallel group had committed before a restart (skipped when read again).
    pub skipped_applied: u64,
    /// Groups written as their net effect per row ([`crate::net_effect`]), and those that failed on a row that way
    /// and were written again statement by statement.
    pub net_effect_groups: u64,
    pub net_effect_fallbacks: u64,
}

pub struct Applier {
    conn: Conn,
    endpoint: Endpoint,
    opts: ApplierOptions,
    /// Target tables already compared with their source definition, with their columns on the target.
    checked_tables: HashMap<String, Vec<crate::schema::ColumnMeta>>,
    /// Full-copy chunks go as `LOAD DATA LOCAL INFILE` (the option is on and the target's `local_infile` too).
    load_data: bool,
    /// Per (source table, target table): how its chunks are loaded; `None` = as `INSERT` statements.
    load_plans: HashMap<(String, String), Option<LoadPlan>>,
    /// A full copy is being redone after an interruption: empty each table before its first rows.
    redo_snapshot: bool,
    /// Full-copy chunks are written by these connections, several at once (see [`crate::snapshot_apply`]).
    writers: SnapshotWriters,
    /// The next chunk number per target table of the full copy.
    next_chunk: HashMap<String, u64>,
    /// Tables (target idents) with chunks kept from an interrupted copy: never emptied when it resumes.
    resumed_tables: HashSet<String>,
    /// A resumed full copy: the first snapshot's position, where the binlog starts.
    resume_from: Option<Position>,
    /// The snapshot position of a resumed copy, until which the binlog is applied idempotently once it starts.
    pending_catchup: Option<Position>,
    /// How binlog changes are written now: strictly, or idempotently while catching up after a resumed copy.
    mode: ApplyMode,
    /// The first DDL after start may be a replay of one that committed before its position did.
    ddl_replay_possible: bool,
    /// A big source transaction is being applied in parts: its target transaction is open across `apply` calls.
    tx_open: bool,
    /// The target server as dtle's markers name origins: MariaDB's server_id, MySQL's server_uuid.
    target_identity: String,
    /// The marker statement to run first in the next target transaction (see [`marker_upsert`]).
    pending_marker: Option<String>,
    /// More target connections for parallel apply (the main connection is the first worker).
    workers: Vec<Conn>,
    /// Session setup of every worker connection.
    session_setup: Vec<String>,
    /// Source transactions a parallel group committed before the last restart, beyond the recorded position; each
    /// is removed when it is read (and skipped) again.
    applied_before_restart: HashSet<String>,
    /// Their records are deleted with the first position written once all of them were read again.
    applied_cleanup_due: bool,
    /// Tells this process's parallel groups apart in [`APPLIED_TABLE`].
    batch_base: u64,
    /// The target user may turn off binary logging for its session: position-only writes are then not logged, so
    /// a two-way partner (or any job reading this server) does not see them.
    position_unlogged: bool,
    /// Target tables created by this full copy (several source tables may go into one).
    copied_targets: HashSet<String>,
    /// Unique indexes and foreign-key links of the target tables, for splitting groups (see [`crate::parallel`]).
    table_keys: crate::parallel::KeyMap,
    /// Target tables whose rows are written statement by statement after a net-effect group failed on one of them.
    net_effect_refused: HashSet<String>,
    /// The target's foreign-key links, read when a table is first compared after start or a DDL.
    foreign_key_links: Option<ForeignKeyLinks>,
    pub stats: ApplyStats,
}

/// How the applier writes binlog changes now. A resumed full copy mixes rows of two snapshots, so the binlog from
/// the first snapshot's position is applied idempotently until it passes the second snapshot's (`until`); then
/// strictly again. (Parallel apply is not a mode: each strict group goes in parallel when `ParallelWorkers` > 1 and
/// the group allows it, see [`Applier::flush_dml`].)
#[derive(Clone, Debug, PartialEq, Eq)]
enum ApplyMode {
    /// Every row change is checked against what the target holds.
    Strict,
    /// Row changes are made to hold whatever the target held, until the binlog passes `until`.
    CatchingUp { until: Position },
}

/// How row changes are written: checked against what the target holds, or made to hold whatever it held (the
/// catch-up after a resumed full copy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RowMode {
    Strict,
    Idempotent,
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
        for create in [
            snapshot_apply::CREATE_PROGRESS_TABLE,
            snapshot_apply::CREATE_CATCHUP_TABLE,
            snapshot_apply::CREATE_DEFERRED_INDEX_TABLE,
        ] {
            conn.query_drop(create)
                .await
                .map_err(|e| MysqlError::query("creating the full-copy progress tables", e))?;
        }
        conn.query_drop(CREATE_APPLIED_TABLE)
            .await
            .map_err(|e| MysqlError::query(format!("creating {APPLIED_TABLE} on the target"), e))?;
        let applied_before_restart: HashSet<String> = conn
            .exec::<String, _, _>(format!("SELECT tx_id FROM {APPLIED_TABLE} WHERE job_name = ?"), (opts.job.as_str(),))
            .await
            .map_err(|e| MysqlError::query(format!("reading {APPLIED_TABLE}"), e))?
            .into_iter()
            .collect();
        if !applied_before_restart.is_empty() {
            info!(job = %opts.job, transactions = applied_before_restart.len(), "transactions a parallel group committed after the recorded position: skipped when read again");
        }
        let catchup_until = read_catchup(&mut conn, &opts.job).await?;
        let snapshot_writers = opts.snapshot_writers;
        let load_data = opts.snapshot_load_data
            && {
                let local_infile: Option<u8> = conn
                    .query_first("SELECT @@GLOBAL.local_infile + 0")
                    .await
                    .map_err(|e| MysqlError::query("reading the target's local_infile", e))?;
                if local_infile != Some(1) {
                    info!(job = %opts.job, "the target has local_infile = OFF: full-copy chunks go as INSERT statements (slower; SET GLOBAL local_infile = ON to load them)");
                }
                local_infile == Some(1)
            };
        let mut writer_setup = setup.to_vec();
        writer_setup.push("SET foreign_key_checks = 0".to_string());
        let marker_columns: Option<u64> = conn
            .query_first(
                "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'dtle' \
                 AND TABLE_NAME = 'replication_position' AND COLUMN_NAME IN ('origin', 'marker_seq')",
            )
            .await
            .map_err(|e| MysqlError::query(format!("reading the columns of {POSITION_TABLE}"), e))?;
        if marker_columns == Some(0) {
            // A position table from an earlier version: add the marker columns (two-way loop prevention).
            conn.query_drop(format!(
                "ALTER TABLE {POSITION_TABLE} ADD COLUMN origin VARCHAR(255) NOT NULL DEFAULT '' AFTER binlog_pos, \
                 ADD COLUMN marker_seq BIGINT UNSIGNED NOT NULL DEFAULT 0 AFTER origin"
            ))
            .await
            .map_err(|e| MysqlError::query(format!("adding the marker columns to {POSITION_TABLE}"), e))?;
        }
        let position_unlogged = conn.query_drop("SET SESSION sql_log_bin = 0").await.is_ok()
            && conn.query_drop("SET SESSION sql_log_bin = 1").await.is_ok();
        let info = crate::conn::server_info(&mut conn).await?;
        let target_identity = if info.flavor == crate::conn::Flavor::Mariadb {
            info.server_id.to_string()
        } else {
            let uuid: Option<String> = conn
                .query_first("SELECT @@server_uuid")
                .await
                .map_err(|e| MysqlError::query("reading the target's server_uuid", e))?;
            uuid.unwrap_or_default().to_ascii_lowercase()
        };
        Ok(Applier {
            conn,
            endpoint: endpoint.clone(),
            opts,
            checked_tables: HashMap::new(),
            load_data,
            load_plans: HashMap::new(),
            redo_snapshot: false,
            writers: SnapshotWriters::new(endpoint.clone(), writer_setup, snapshot_writers),
            next_chunk: HashMap::new(),
            resumed_tables: HashSet::new(),
            resume_from: None,
            pending_catchup: None,
            mode: match catchup_until {
                Some(until) => ApplyMode::CatchingUp { until },
                None => ApplyMode::Strict,
            },
            ddl_replay_possible: true,
            tx_open: false,
            target_identity,
            pending_marker: None,
            workers: Vec::new(),
            session_setup: setup.to_vec(),
            position_unlogged,
            applied_cleanup_due: !applied_before_restart.is_empty(),
            applied_before_restart,
            batch_base: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0)
                << 8,
            table_keys: crate::parallel::KeyMap::new(),
            net_effect_refused: HashSet::new(),
            foreign_key_links: None,
            copied_targets: HashSet::new(),
            stats: ApplyStats::default(),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Rolls back the target transaction of a big source transaction whose parts were being applied (it stays open
    /// across `apply` calls until its last part). A new src session starts again from the committed position, so the
    /// parts of the old session must never be continued: they would be applied twice. Returns whether one was open.
    pub async fn abandon_open_transaction(&mut self) -> Result<bool> {
        if !self.tx_open {
            return Ok(false);
        }
        self.tx_open = false;
        self.pending_marker = None;
        self.conn
            .query_drop("ROLLBACK")
            .await
            .map_err(|e| MysqlError::query("rolling back the open target transaction of an earlier src session", e))?;
        Ok(true)
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
        if flavor.is_empty() && file.is_empty() && gtid.is_empty() {
            // A row without a position (parallel partitions keep their markers in rows of their own, so dtle does
            // not leave one; an earlier build could): not a position.
            return Ok(None);
        }
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
        for table in [POSITION_TABLE, snapshot_apply::PROGRESS_TABLE, snapshot_apply::CATCHUP_TABLE, APPLIED_TABLE] {
            self.conn
                .exec_drop(
                    format!("DELETE FROM {table} WHERE job_name = ? OR LEFT(job_name, CHAR_LENGTH(?)) = ?"),
                    (
                        self.opts.job.as_str(),
                        worker_marker_prefix(&self.opts.job).as_str(),
                        worker_marker_prefix(&self.opts.job).as_str(),
                    ),
                )
                .await
                .map_err(|e| MysqlError::query("deleting the job's position", e))?;
        }
        Ok(())
    }

    /// Applies a group of changes. When it returns Ok, everything in it is durable on the target, and the returned
    /// position (if any) is the one recorded there.
    pub async fn apply(&mut self, changes: &[Change]) -> Result<Option<Position>> {
        let mut durable = None;
        let mut rest = changes;
        while !rest.is_empty() {
            // The end of a full copy may start a catch-up (a resumed copy): what follows it in the same group is
            // applied in the mode it sets.
            let end = rest.iter().position(|c| matches!(c, Change::SnapshotDone { .. })).map_or(rest.len(), |i| i + 1);
            let segment = &rest[..end];
            // Full-copy chunks in flight finish before any binlog change.
            if self.writers.pending() > 0
                && segment.iter().any(|c| matches!(c, Change::Tx(_) | Change::Heartbeat { .. }))
            {
                self.writers.wait_all().await?;
            }
            let (applied, taken) = match self.mode.clone() {
                ApplyMode::Strict => (self.apply_strict(segment).await?, segment.len()),
                ApplyMode::CatchingUp { until } => self.apply_catching_up(segment, &until).await?,
            };
            if applied.is_some() {
                durable = applied;
            }
            rest = &rest[taken..];
        }
        Ok(durable)
    }

    /// Applies `changes` in [`ApplyMode::Strict`].
    async fn apply_strict(&mut self, changes: &[Change]) -> Result<Option<Position>> {
        let mut txs: Vec<&Transaction> = Vec::new();
        let mut group_position: Option<Position> = None;
        let mut group_origin = std::borrow::Cow::Borrowed("");
        let mut durable: Option<Position> = None;
        let mut next = 0;
        while let Some(change) = changes.get(next) {
            next += 1;
            match change {
                Change::Tx(tx) if tx.origin.as_deref().is_some_and(|o| o == self.target_identity) => {
                    // dtle applied this on the source from a change made on this target: sending it back would loop.
                    if !tx.partial {
                        debug!(gtid = %tx.gtid, origin = %self.target_identity, "skipping a transaction that came from this target");
                        self.stats.looped_back += 1;
                        group_position = Some(tx.position.clone());
                    }
                }
                Change::Tx(tx)
                    if !tx.partial
                        && !self.applied_before_restart.is_empty()
                        && self.applied_before_restart.contains(&tx_id(tx)) =>
                {
                    self.applied_before_restart.remove(&tx_id(tx));
                    debug!(gtid = %tx.gtid, "already applied before the restart by a parallel group");
                    self.stats.skipped_applied += 1;
                    group_position = Some(tx.position.clone());
                }
                Change::Tx(tx) if tx.has_ddl() => {
                    self.flush_dml(&txs, group_position.take()).await?;
                    txs.clear();
                    self.apply_ddl_tx(tx).await?;
                    durable = Some(tx.position.clone());
                }
                Change::Tx(tx) => {
                    // One origin per target transaction: the marker written with it names that origin.
                    let origin = tx.first_origin();
                    let after_complete = !txs.is_empty() && !txs.last().is_some_and(|t| t.partial);
                    // A big transaction that starts after complete ones: those commit first. An open target
                    // transaction holds one source transaction at most; else big transactions coming back to back
                    // chain into one target transaction that grows until a group happens to end between two of
                    // them, and a src that restarts meanwhile has it all rolled back and sent again.
                    if after_complete && (origin != group_origin || tx.partial) {
                        if let Some(p) = self.flush_dml(&txs, group_position.take()).await? {
                            durable = Some(p);
                        }
                        txs.clear();
                    }
                    group_origin = origin;
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
                    if let Change::SnapshotRows { table, rows } = other {
                        // The chunks of this table that follow in the group go into the same target transaction.
                        let mut chunks = vec![rows.as_slice()];
                        let mut bytes = other.approx_size();
                        while let Some(more @ Change::SnapshotRows { table: t, rows: r }) = changes.get(next) {
                            // Compared by name, without building the quoted idents for every chunk.
                            let same_table = std::sync::Arc::ptr_eq(t, table)
                                || (t.schema == table.schema
                                    && t.name == table.name
                                    && t.target_schema == table.target_schema
                                    && t.target_name == table.target_name);
                            if !same_table || bytes >= SNAPSHOT_MERGE_BYTES {
                                break;
                            }
                            bytes += more.approx_size();
                            chunks.push(r.as_slice());
                            next += 1;
                        }
                        self.insert_snapshot_rows(table, &chunks).await?;
                    } else if let Some(p) = self.apply_snapshot_change(other).await? {
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
            Change::SnapshotStart { position, resume_from, .. } => {
                let job = quote_str(&self.opts.job);
                let sql = match resume_from {
                    // The binlog still starts at the first snapshot; until this snapshot it applies idempotently.
                    Some(first) => format!(
                        "START TRANSACTION;{};{};COMMIT",
                        position_upsert(&self.opts.job, JobStage::Snapshot, first),
                        catchup_upsert(&self.opts.job, position)
                    ),
                    None => {
                        // A new copy: progress of an earlier one means nothing now.
                        self.copied_targets.clear();
                        self.resumed_tables.clear();
                        self.next_chunk.clear();
                        format!(
                            "START TRANSACTION;{};DELETE FROM {} WHERE job_name = {job};DELETE FROM {} WHERE job_name = {job};COMMIT",
                            position_upsert(&self.opts.job, JobStage::Snapshot, position),
                            snapshot_apply::PROGRESS_TABLE,
                            snapshot_apply::CATCHUP_TABLE
                        )
                    }
                };
                self.conn.query_drop(sql).await.map_err(|e| MysqlError::query("recording the full-copy start", e))?;
                self.mode = ApplyMode::Strict;
                self.pending_catchup = resume_from.as_ref().map(|_| position.clone());
                match resume_from {
                    Some(first) => {
                        info!(job = %self.opts.job, position = %describe(position), binlog_from = %describe(first), "full copy resumed from a new snapshot")
                    }
                    None => info!(job = %self.opts.job, position = %describe(position), "full copy started"),
                }
                Ok(None)
            }
            Change::CreateTable { table, create_sql, drop_first } => {
                self.create_table(table, create_sql, *drop_first).await?;
                Ok(None)
            }
            Change::SnapshotRows { table, rows } => {
                self.insert_snapshot_rows(table, &[rows.as_slice()]).await?;
                Ok(None)
            }
            Change::SnapshotTableDone { table } => {
                // The table's end marker; a resumed copy skips the table once every chunk before it is there.
                let chunk = self.next_chunk_of(table);
                let sql = snapshot_apply::progress_insert(&self.opts.job, table, chunk, None, 0);
                if !self.add_deferred_indexes(table, &sql).await? {
                    self.conn
                        .query_drop(sql)
                        .await
                        .map_err(|e| MysqlError::query("recording a table's full copy", e))?;
                }
                Ok(None)
            }
            Change::SnapshotDone { position } => {
                // Every chunk is durable before the position moves to the incremental stage.
                self.writers.wait_all().await?;
                self.writers.close().await;
                let sql = format!(
                    "START TRANSACTION;{};DELETE FROM {} WHERE job_name = {};COMMIT",
                    position_upsert(&self.opts.job, JobStage::Incremental, position),
                    snapshot_apply::PROGRESS_TABLE,
                    quote_str(&self.opts.job)
                );
                self.conn.query_drop(sql).await.map_err(|e| MysqlError::query("recording the full-copy end", e))?;
                self.redo_snapshot = false;
                self.resumed_tables.clear();
                self.next_chunk.clear();
                info!(job = %self.opts.job, position = %describe(position), "full copy done");
                if let Some(until) = self.pending_catchup.take() {
                    info!(job = %self.opts.job, until = %describe(&until), "the binlog applies idempotently until the resumed copy's snapshot");
                    self.mode = ApplyMode::CatchingUp { until };
                }
                Ok(Some(position.clone()))
            }
            Change::Tx(_) | Change::Heartbeat { .. } => Ok(None),
        }
    }

    async fn create_table(&mut self, table: &TableMeta, create_sql: &str, drop_first: bool) -> Result<()> {
        if !self.copied_targets.insert(table.target_ident()) {
            // Several source tables into one target table (shards merged by a rename): created (and emptied) once;
            // its chunks keep counting.
            return self.ensure_target_table(table).await;
        }
        let mut statements = vec![format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(&table.target_schema))];
        if drop_first {
            statements.push(format!("DROP TABLE IF EXISTS {}", table.target_ident()));
        }
        let mut create_sql = create_sql.to_string();
        // A table this copy creates gets its plain secondary indexes once filled; they are recorded first, so a
        // table created without them always has them owed. A table that exists already is left as it is (if an
        // earlier run created it, what that run recorded is still owed).
        if !create_sql.is_empty() {
            let exists = !drop_first
                && self
                    .conn
                    .exec_first::<u64, _, _>(
                        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                        (table.target_schema.as_str(), table.target_name.as_str()),
                    )
                    .await
                    .map_err(|e| MysqlError::query(format!("looking for {} on the target", table.target_ident()), e))?
                    .unwrap_or(0)
                    > 0;
            if !exists {
                let (schema, name) = (quote_str(&table.target_schema), quote_str(&table.target_name));
                let mut record = format!(
                    "START TRANSACTION;DELETE FROM {} WHERE table_schema = {schema} AND table_name = {name};",
                    snapshot_apply::DEFERRED_INDEX_TABLE
                );
                let split = match self.opts.snapshot_defer_indexes {
                    true => snapshot_apply::split_secondary_indexes(&create_sql),
                    false => None,
                };
                if let Some((without, deferred)) = split {
                    for (ordinal, (index, definition)) in deferred.iter().enumerate() {
                        let _ = write!(
                            record,
                            "INSERT INTO {} (table_schema, table_name, index_name, ordinal, definition, job_name) \
                             VALUES ({schema}, {name}, {}, {ordinal}, {}, {});",
                            snapshot_apply::DEFERRED_INDEX_TABLE,
                            quote_str(index),
                            quote_str(definition),
                            quote_str(&self.opts.job)
                        );
                    }
                    create_sql = without;
                    info!(table = %table.target_ident(), indexes = deferred.len(), "secondary indexes are added once the table is copied");
                }
                record.push_str("COMMIT");
                statements.push(record);
            }
        }
        for sql in statements {
            self.conn
                .query_drop(&sql)
                .await
                .map_err(|e| MysqlError::query(format!("creating {} on the target", table.target_ident()), e))?;
        }
        if !create_sql.is_empty() {
            self.run_create_table(table, &create_sql).await?;
        }
        self.checked_tables.remove(&table.target_ident());
        self.load_plans.clear();
        self.ensure_target_table(table).await?;
        if !self.resumed_tables.contains(&table.target_ident()) {
            self.next_chunk.insert(table.target_ident(), 0);
        }
        if self.redo_snapshot && !self.resumed_tables.contains(&table.target_ident()) {
            info!(table = %table.target_ident(), "emptying the table: the interrupted full copy starts again");
            self.conn.query_drop(format!("TRUNCATE TABLE {}", table.target_ident())).await.map_err(|e| {
                MysqlError::query(format!("emptying {} for the new full copy", table.target_ident()), e)
            })?;
        }
        Ok(())
    }

    /// Runs a table's `CREATE TABLE`. A child table may come before its parent (tables go in name order): created
    /// without checking its foreign keys, as mariadb-dump's output does. A parent this copy created without the
    /// index a foreign key needs gets its owed indexes at once, and the child is created again.
    async fn run_create_table(&mut self, table: &TableMeta, create_sql: &str) -> Result<()> {
        let fk = u8::from(self.opts.foreign_key_checks);
        let create = |create_sql: String| {
            format!("SET SESSION foreign_key_checks = 0;{create_sql};SET SESSION foreign_key_checks = {fk}")
        };
        let context = || format!("creating {} on the target", table.target_ident());
        let error = match self.conn.query_drop(create(create_sql.to_string())).await {
            Ok(()) => return Ok(()),
            Err(e) => MysqlError::query(context(), e),
        };
        let _ = self.conn.query_drop(format!("SET SESSION foreign_key_checks = {fk}")).await;
        // 1005 errno 150 (MariaDB) / 1822 (MySQL): a referenced table lacks an index for the foreign key.
        if !matches!(error.server_code(), Some(1005 | 1822)) || !create_sql.contains("FOREIGN KEY") {
            return Err(error);
        }
        let owed: Vec<String> = self
            .conn
            .exec(
                format!(
                    "SELECT DISTINCT table_name FROM {} WHERE table_schema = ?",
                    snapshot_apply::DEFERRED_INDEX_TABLE
                ),
                (table.target_schema.as_str(),),
            )
            .await
            .map_err(|e| MysqlError::query("reading the secondary indexes owed to copied tables", e))?;
        if owed.is_empty() {
            return Err(error);
        }
        for name in owed {
            let (_, alter) = self.owed_indexes(&table.target_schema, &name).await?;
            info!(table = %table.target_ident(), parent = %name, "a foreign key needs an index of a table being copied: adding its secondary indexes now");
            let ident = format!("{}.{}", quote_ident(&table.target_schema), quote_ident(&name));
            let mut sql = alter.map(|a| format!("{a};")).unwrap_or_default();
            let _ = write!(
                sql,
                "DELETE FROM {} WHERE table_schema = {} AND table_name = {}",
                snapshot_apply::DEFERRED_INDEX_TABLE,
                quote_str(&table.target_schema),
                quote_str(&name)
            );
            self.conn
                .query_drop(sql)
                .await
                .map_err(|e| MysqlError::query(format!("adding the secondary indexes of {ident}"), e))?;
        }
        self.conn.query_drop(create(create_sql.to_string())).await.map_err(|e| MysqlError::query(context(), e))
    }

    /// Whether secondary indexes are recorded as owed to the target table `schema`.`name`, and the `ALTER TABLE`
    /// that adds those not on it yet (added before a crash but not yet struck off: not added twice).
    async fn owed_indexes(&mut self, schema: &str, name: &str) -> Result<(bool, Option<String>)> {
        let owed: Vec<(String, String)> = self
            .conn
            .exec(
                format!(
                    "SELECT index_name, definition FROM {} WHERE table_schema = ? AND table_name = ? ORDER BY ordinal",
                    snapshot_apply::DEFERRED_INDEX_TABLE
                ),
                (schema, name),
            )
            .await
            .map_err(|e| MysqlError::query("reading the secondary indexes owed to a copied table", e))?;
        if owed.is_empty() {
            return Ok((false, None));
        }
        let present: HashSet<String> = self
            .conn
            .exec::<String, _, _>(
                "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (schema, name),
            )
            .await
            .map_err(|e| MysqlError::query(format!("reading the indexes of {schema}.{name}"), e))?
            .into_iter()
            .map(|n| n.to_lowercase())
            .collect();
        let adds: Vec<String> = owed
            .iter()
            .filter(|(index, _)| !present.contains(&index.to_lowercase()))
            .map(|(_, definition)| format!("ADD {definition}"))
            .collect();
        let alter = (!adds.is_empty())
            .then(|| format!("ALTER TABLE {}.{} {}", quote_ident(schema), quote_ident(name), adds.join(", ")));
        Ok((true, alter))
    }

    /// At the end of a table's copy: the secondary indexes owed to it (see [`Self::create_table`]) are added once
    /// its chunks are committed, then `done` (its end marker) is recorded with the owed records gone, by one writer
    /// while the others go on with other tables. Returns false when nothing is owed (the caller records `done`).
    async fn add_deferred_indexes(&mut self, table: &TableMeta, done: &str) -> Result<bool> {
        let ident = table.target_ident();
        // Its chunks, and the index build of an earlier source table merged into the same target, end first.
        self.writers.wait_target(&ident).await?;
        let (recorded, alter) = self.owed_indexes(&table.target_schema, &table.target_name).await?;
        if !recorded {
            return Ok(false);
        }
        let tag = snapshot_apply::writer_tag(&self.opts.job);
        let mut requests = Vec::new();
        if let Some(alter) = &alter {
            requests.push(snapshot_apply::ChunkRequest::Sql(format!("{tag}{alter}")));
        }
        requests.push(snapshot_apply::ChunkRequest::Sql(format!(
            "{tag}START TRANSACTION;{tag}DELETE FROM {} WHERE table_schema = {} AND table_name = {};{tag}{done};{tag}COMMIT",
            snapshot_apply::DEFERRED_INDEX_TABLE,
            quote_str(&table.target_schema),
            quote_str(&table.target_name)
        )));
        info!(table = %ident, adding = alter.is_some(), "copied; adding its secondary indexes");
        let what = format!("adding the secondary indexes of {ident} after its full copy");
        self.writers.submit(ident, requests, what).await?;
        Ok(true)
    }

    /// Compares the target table with the source definition once per table.
    async fn ensure_target_table(&mut self, table: &TableMeta) -> Result<()> {
        let ident = table.target_ident();
        if self.checked_tables.contains_key(&ident) {
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
                Some(t)
                    if crate::schema::data_type_kind(&t.data_type)
                        != crate::schema::data_type_kind(&column.data_type)
                        || t.unsigned != column.unsigned =>
                {
                    problems.push(format!(
                        "column {} is {} on the source but {} on the target",
                        column.name, column.column_type, t.column_type
                    ))
                }
                Some(_) => {}
            }
        }
        // More target columns keep their defaults: a column map writes some of them; rows from before a DDL that
        // already ran on the target (a backlog, or two-way sync) do not have the new ones.
        for t in target.columns.iter().filter(|t| !t.generated && !table.column_subset) {
            if !table.columns.iter().any(|c| c.name.eq_ignore_ascii_case(&t.name)) {
                info!(table = %ident, column = %t.name, "the target table has a column these source rows do not have; it keeps its default");
            }
        }
        if !problems.is_empty() {
            return Err(MysqlError::SchemaMismatch {
                table: format!("{} (source {})", ident, table.source_name()),
                detail: problems.join("; "),
            });
        }
        // Needed by parallel apply (which rows depend on each other) and by net-effect groups (whether a table's rows
        // depend on their key alone); read once per table and start or DDL.
        if self.foreign_key_links.is_none() {
            self.foreign_key_links = Some(ForeignKeyLinks::load(&mut self.conn).await?);
        }
        let links = self.foreign_key_links.as_ref().expect("loaded above");
        let deps = load_write_dependencies(&mut self.conn, &table.target_schema, &table.target_name, links).await?;
        let position_of = |name: &String| table.columns.iter().position(|c| c.name.eq_ignore_ascii_case(name));
        let unique_indexes: Option<Vec<Vec<usize>>> =
            deps.unique_indexes.iter().map(|index| index.iter().map(position_of).collect()).collect();
        let (unique_indexes, foreign_keys) = match unique_indexes {
            Some(unique_indexes) if !deps.prefix_index => (unique_indexes, deps.foreign_keys),
            // Values equal on a prefix would need the prefix's length in characters, and a unique index over columns
            // these rows do not carry (a column map) cannot be seen: order the table's writes instead.
            _ => (Vec::new(), true),
        };
        let keys = crate::parallel::TableKeys { unique_indexes, foreign_keys, triggers: deps.triggers };
        self.table_keys.insert(ident.clone(), keys);
        self.checked_tables.insert(ident, target.columns);
        Ok(())
    }

    /// Consecutive full-copy chunks of `table` (as they came in one group) in one target transaction with their
    /// progress rows, on one of several writer connections. Several chunks per transaction spare the target a commit
    /// (two fsyncs on a durable server) per chunk; each chunk keeps its progress row, so a resumed copy sees the same
    /// prefix of chunks. Chunks that cannot be loaded with `LOAD DATA` go as `INSERT` statements, one transaction
    /// each.
    async fn insert_snapshot_rows(&mut self, table: &TableMeta, chunks: &[&[Vec<Value>]]) -> Result<()> {
        self.ensure_target_table(table).await?;
        // Every statement carries the job's tag, so a restarted job sees them still running (see prepare_resume).
        let tag = snapshot_apply::writer_tag(&self.opts.job);
        let rows: usize = chunks.iter().map(|c| c.len()).sum();
        let first = self.next_chunk.get(&table.target_ident()).copied().unwrap_or(0);
        let mut progress = Vec::with_capacity(chunks.len());
        for chunk_rows in chunks {
            let chunk = self.next_chunk_of(table);
            let last = chunk_rows.last().map(Vec::as_slice).unwrap_or_default();
            progress.push(snapshot_apply::progress_insert(
                &self.opts.job,
                table,
                chunk,
                Some(last),
                chunk_rows.len() as u64,
            ));
        }
        let what = match chunks.len() {
            1 => format!("copying {rows} row(s) into {} (chunk {first})", table.target_ident()),
            n => format!(
                "copying {rows} row(s) into {} (chunks {first}..={})",
                table.target_ident(),
                first + n as u64 - 1
            ),
        };
        let loaded = self.load_plan(table).and_then(|plan| {
            let mut data = Vec::new();
            for chunk_rows in chunks {
                data.extend_from_slice(&plan.encode(chunk_rows)?);
            }
            Some(snapshot_apply::load_requests(&tag, plan.statement(), data, &progress.join(";")))
        });
        match loaded {
            Some(requests) => self.writers.submit(table.target_ident(), requests, what).await?,
            None => {
                for ((chunk_rows, progress), chunk) in chunks.iter().zip(progress).zip(first..) {
                    let requests = self.insert_requests(table, chunk_rows, &tag, progress);
                    let what =
                        format!("copying {} row(s) into {} (chunk {chunk})", chunk_rows.len(), table.target_ident());
                    self.writers.submit(table.target_ident(), requests, what).await?;
                }
            }
        }
        self.stats.snapshot_rows += rows as u64;
        Ok(())
    }

    /// How chunks of `table` are loaded, planned once per source and target table (after
    /// [`Self::ensure_target_table`]); `None` when they go as `INSERT` statements.
    fn load_plan(&mut self, table: &TableMeta) -> Option<&LoadPlan> {
        if !self.load_data {
            return None;
        }
        let target = table.target_ident();
        let columns = self.checked_tables.get(&target)?;
        self.load_plans
            .entry((table.source_ident(), target))
            .or_insert_with(|| {
                let plan = LoadPlan::new(table, columns);
                if plan.is_none() {
                    info!(table = %table.target_ident(), "full-copy chunks of this table go as INSERT statements: a column has no exact LOAD DATA form (spatial, or binary on one side and text on the other)");
                }
                plan
            })
            .as_ref()
    }

    /// A chunk as multi-row `INSERT` statements, in requests of bounded size.
    fn insert_requests(
        &self,
        table: &TableMeta,
        rows: &[Vec<Value>],
        tag: &str,
        progress: String,
    ) -> Vec<snapshot_apply::ChunkRequest> {
        let mut statements = Vec::new();
        let mut checks = Vec::new();
        let mut builder = MultiRowStatement::new("inserting");
        for row in rows {
            push_insert(
                "INSERT",
                &mut builder,
                table,
                row,
                self.opts.max_statement_bytes,
                &mut statements,
                &mut checks,
            );
        }
        builder.finish(&mut statements, &mut checks);
        let max_request = (self.opts.max_statement_bytes * 2).max(1 << 20);
        snapshot_apply::chunk_requests(statements, progress, max_request, tag)
    }

    /// The statements (and their row-count checks) that apply the row changes of `txs`, in order.
    async fn row_statements(&mut self, txs: &[&Transaction], mode: RowMode) -> Result<(Vec<String>, Vec<Check>, u64)> {
        self.ensure_target_tables(txs).await?;
        let changes = txs.iter().flat_map(|tx| &tx.events).filter_map(|event| match event {
            TxEvent::Row(change) => Some(change),
            _ => None,
        });
        Ok(statements_in_order(changes, mode, self.opts.max_statement_bytes))
    }

    /// Applies DML transactions (and heartbeats) as one target transaction with the position. When the group ends
    /// with a part of a big source transaction, its statements run and the target transaction stays open; the part
    /// that completes it commits everything with its position.
    async fn flush_dml(&mut self, txs: &[&Transaction], position: Option<Position>) -> Result<Option<Position>> {
        let ends_open = txs.last().is_some_and(|t| t.partial);
        if txs.is_empty() && position.is_none() {
            return Ok(None);
        }
        // A small group (a steady load, a few source transactions per group) is applied serially: in parallel it
        // would take two commit rounds on the target (the partitions', then the position's) where one does, which is
        // most of the lag at such a load. Backlogs come in big groups, which gain from the parallel apply.
        let big_enough = txs.len() >= PARALLEL_MIN_GROUP_PER_WORKER * self.opts.parallel_workers;
        if self.opts.parallel_workers > 1 && !self.tx_open && big_enough && !txs.iter().any(|t| t.partial) {
            if let Some(position) = &position {
                if let Some(done) = self.flush_parallel(txs, position).await? {
                    return Ok(Some(done));
                }
            }
        }
        // A group whose tables allow it goes as its net effect per row: a few statements per table where the target
        // would parse and run one per row change (what limits a catch-up on a small machine).
        if !self.tx_open && !ends_open {
            if let Some((statements, checks, rows)) = self.net_effect_statements(txs).await? {
                match self.write_group(txs, statements, checks, rows, position.clone(), false).await {
                    Ok(done) => {
                        self.stats.net_effect_groups += 1;
                        return Ok(done);
                    }
                    Err(e) if self.net_effect_failed(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let (statements, checks, rows) = self.row_statements(txs, RowMode::Strict).await?;
        if statements.is_empty() && !self.tx_open && !ends_open && self.position_unlogged {
            if let Some(position) = position {
                // Only the position moved (filtered transactions, heartbeats): it rows nothing that needs logging.
                let mut sql = position_upsert(&self.opts.job, JobStage::Incremental, &position);
                let cleanup = self.applied_cleanup_sql();
                if let Some(cleanup) = &cleanup {
                    let _ = write!(sql, ";{cleanup}");
                }
                self.write_unlogged(&sql).await?;
                if cleanup.is_some() {
                    self.applied_cleanup_due = false;
                }
                self.stats.transactions += txs.len() as u64;
                return Ok(Some(position));
            }
        }
        self.write_group(txs, statements, checks, rows, position, ends_open).await
    }

    /// Runs a group's statements with its marker and position (none when it ends inside a big source transaction,
    /// whose target transaction then stays open).
    async fn write_group(
        &mut self,
        txs: &[&Transaction],
        statements: Vec<String>,
        checks: Vec<Check>,
        rows: u64,
        position: Option<Position>,
        ends_open: bool,
    ) -> Result<Option<Position>> {
        if !self.tx_open && !statements.is_empty() {
            if let Some(origin) = txs.first().map(|t| t.first_origin()).filter(|o| !o.is_empty()) {
                self.pending_marker = Some(marker_upsert(&self.opts.job, &origin));
            }
        }
        let position = if ends_open { None } else { position };
        let mut position_sql = position.as_ref().map(|p| position_upsert(&self.opts.job, JobStage::Incremental, p));
        let cleanup = self.applied_cleanup_sql();
        if let (Some(sql), Some(cleanup)) = (position_sql.as_mut(), &cleanup) {
            let _ = write!(sql, ";{cleanup}");
        }
        let wrote_position = position_sql.is_some();
        self.execute_group(statements, checks, position_sql, false, !ends_open).await?;
        if wrote_position && cleanup.is_some() {
            self.applied_cleanup_due = false;
        }
        self.stats.transactions += txs.iter().filter(|t| !t.partial).count() as u64;
        self.stats.row_changes += rows;
        Ok(position)
    }

    /// Whether a group (or partition) written as its net effect failed in a way that writing it statement by statement
    /// settles: rolled back on a row (a count or a server error), it is written again that way, whose checks name the
    /// row. The table it failed on (a target column that stores two source values alike, so a changed row looks
    /// unchanged) is written statement by statement from then on.
    fn net_effect_failed(&mut self, e: &MysqlError) -> bool {
        if !(e.is_row_conflict() || e.server_code().is_some()) {
            return false;
        }
        if let MysqlError::Conflict { table, .. } = e {
            self.net_effect_refused.insert(table.clone());
        }
        info!(error = %e, "a group written as its net effect per row failed on a row; writing it statement by statement");
        self.stats.net_effect_fallbacks += 1;
        true
    }

    /// Compares every table of `txs` with its source definition (once per table; see [`Self::ensure_target_table`]).
    async fn ensure_target_tables(&mut self, txs: &[&Transaction]) -> Result<()> {
        let mut checked: Option<&TableMeta> = None;
        for tx in txs {
            for event in &tx.events {
                if let TxEvent::Row(change) = event {
                    if !checked.is_some_and(|t| std::ptr::eq(t, &**change.table())) {
                        self.ensure_target_table(change.table()).await?;
                        checked = Some(&**change.table());
                    }
                }
            }
        }
        Ok(())
    }

    /// The statements of `txs` as their net effect per row ([`crate::net_effect`]): per table a multi-row `DELETE`,
    /// `INSERT` and `INSERT ... ON DUPLICATE KEY UPDATE`, each checked row by row through its count. `None` when the
    /// group does not fit (then it goes statement by statement).
    async fn net_effect_statements(&mut self, txs: &[&Transaction]) -> Result<Option<(Vec<String>, Vec<Check>, u64)>> {
        self.ensure_target_tables(txs).await?;
        Ok(self.net_effect_plan(txs))
    }

    /// [`Self::net_effect_statements`] of transactions whose tables were already compared with the target.
    fn net_effect_plan(&self, txs: &[&Transaction]) -> Option<(Vec<String>, Vec<Check>, u64)> {
        let (keys, refused) = (&self.table_keys, &self.net_effect_refused);
        let eligible = |t: &TableMeta| {
            let ident = t.target_ident();
            !refused.contains(&ident) && keys.get(&ident).is_some_and(|k| k.rows_depend_on_key_alone(&t.key_columns))
        };
        let group = crate::net_effect::reduce(txs, &eligible)?;
        let max = self.opts.max_statement_bytes;
        // The other tables' row changes, in source order (they commute with the reduced tables').
        let (mut statements, mut checks, mut rows) =
            statements_in_order(group.in_order.iter().copied(), RowMode::Strict, max);
        for net in &group.tables {
            let table = net.table;
            rows += net.row_changes;
            let mut delete = MultiRowStatement::new("deleting by key");
            for before in &net.deleted {
                push_delete(&mut delete, table, before, max, &mut statements, &mut checks);
            }
            delete.finish(&mut statements, &mut checks);
            let mut insert = MultiRowStatement::new("inserting");
            for after in &net.inserted {
                push_insert("INSERT", &mut insert, table, after, max, &mut statements, &mut checks);
            }
            insert.finish(&mut statements, &mut checks);
            let mut update_list = String::new();
            for (_, column) in table.writable_columns().filter(|(i, _)| !table.key_columns.contains(i)) {
                let name = quote_ident(&column.name);
                let _ = write!(update_list, "{}{name}=VALUES({name})", if update_list.is_empty() { "" } else { "," });
            }
            let mut upsert = MultiRowStatement::upsert(&update_list);
            for (first, last) in &net.changed {
                if update_list.is_empty() || crate::net_effect::same_written_values(table, first, last) {
                    // Ends as the group found it (in the columns written here): the server would count its upsert as
                    // one row, like an insert. Written as an update, which is checked to find its row.
                    let (sql, check) = update_statement(table, first, last);
                    statements.push(sql);
                    checks.push(check);
                } else {
                    push_insert("INSERT", &mut upsert, table, last, max, &mut statements, &mut checks);
                }
            }
            upsert.finish(&mut statements, &mut checks);
        }
        Some((statements, checks, rows))
    }

    /// Runs `sql` (autocommitted statements) with this session's binary logging off.
    async fn write_unlogged(&mut self, sql: &str) -> Result<()> {
        let result = self
            .conn
            .query_drop(format!("SET SESSION sql_log_bin = 0;{sql}"))
            .await
            .map_err(|e| MysqlError::query("recording the position", e));
        let restored = self
            .conn
            .query_drop("SET SESSION sql_log_bin = 1")
            .await
            .map_err(|e| MysqlError::query("turning binary logging back on", e));
        result.and(restored)
    }

    /// Once every transaction recorded by parallel groups before the restart was read again, the statement that
    /// deletes those records (they are covered by the position it goes with).
    fn applied_cleanup_sql(&self) -> Option<String> {
        (self.applied_cleanup_due && self.applied_before_restart.is_empty())
            .then(|| format!("DELETE FROM {APPLIED_TABLE} WHERE job_name = {}", quote_str(&self.opts.job)))
    }

    /// Applies `txs` (whole source transactions with one origin) on several connections at once: the run is split
    /// into partitions of transactions that touch disjoint rows ([`crate::parallel::partition`]), each applied as one
    /// target transaction that also records its source transactions in [`APPLIED_TABLE`]; then the position row is
    /// written (and those records deleted). A crash in between leaves the records, and the transactions they name
    /// are skipped when the binlog is read again from the older position. A partition that fails on a row (an
    /// ordering its keys could not see, such as a unique value moving between rows) is redone after the others, one
    /// partition at a time in source order. `None` when the run does not split (applied serially by the caller).
    async fn flush_parallel(&mut self, txs: &[&Transaction], position: &Position) -> Result<Option<Position>> {
        self.ensure_target_tables(txs).await?;
        let parts = crate::parallel::partition(txs, self.opts.parallel_workers, &self.table_keys);
        if parts.len() < 2 {
            return Ok(None);
        }
        while self.workers.len() + 1 < parts.len() {
            let setup: Vec<&str> = self.session_setup.iter().map(String::as_str).collect();
            self.workers.push(self.endpoint.connect(&setup).await?);
        }
        let origin = txs.first().map(|t| t.first_origin()).unwrap_or_default();
        let job = quote_str(&self.opts.job);
        let batch = self.batch_base + self.stats.parallel_groups + 1;
        let mut built: Vec<(Vec<String>, Vec<Check>, usize)> = Vec::with_capacity(parts.len());
        let mut rows = 0u64;
        // Each partition as its net effect per row where its tables allow it (see `flush_dml`).
        let mut as_net_effect = Vec::with_capacity(parts.len());
        let job_name = self.opts.job.clone();
        let partition_requests = |worker: usize, part_txs: &[&Transaction], mut statements: Vec<String>| {
            let mut head = vec!["START TRANSACTION".to_string()];
            if !origin.is_empty() {
                // One marker row per connection, so that the partitions do not wait for each other's lock on it; not
                // the job's row, which holds a position only.
                head.push(marker_upsert(&worker_marker_job(&job_name, worker), &origin));
            }
            let mut record = format!("INSERT INTO {APPLIED_TABLE} (job_name, tx_id, batch) VALUES ");
            for (n, tx) in part_txs.iter().enumerate() {
                let _ = write!(record, "{}({job}, {}, {batch})", if n > 0 { "," } else { "" }, quote_str(&tx_id(tx)));
            }
            let skip = head.len();
            head.append(&mut statements);
            head.push(record);
            (head, skip)
        };
        for (worker, part) in parts.iter().enumerate() {
            let part_txs: Vec<&Transaction> = part.iter().map(|&i| txs[i]).collect();
            let net = self.net_effect_plan(&part_txs);
            as_net_effect.push(net.is_some());
            let (statements, checks, part_rows) = match net {
                Some(net) => net,
                None => self.row_statements(&part_txs, RowMode::Strict).await?,
            };
            rows += part_rows;
            let (requests, skip) = partition_requests(worker, &part_txs, statements);
            built.push((requests, checks, skip));
        }
        let max_request = (self.opts.max_statement_bytes * 2).max(1 << 20);
        let failpoint = parallel_failpoint(self.stats.parallel_groups + 1);
        let outcomes = {
            let conns = std::iter::once(&mut self.conn).chain(self.workers.iter_mut());
            let runs = conns
                .zip(&built)
                .map(|(conn, (statements, checks, skip))| run_partition(conn, statements, checks, *skip, max_request));
            futures_util::future::join_all(runs).await
        };
        let mut failed = Vec::new();
        for (index, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Ok(()) => {}
                // Only failures that surely rolled the partition back are redone here: a row conflict between
                // partitions, a deadlock or a lock wait timeout. A lost connection may have lost it after its COMMIT
                // reached the server (redoing it would apply it twice): the task restarts instead, and the
                // partitions that committed are skipped through their records in APPLIED_TABLE.
                Err(e)
                    if (as_net_effect[index] && self.net_effect_failed(&e))
                        || e.is_row_conflict()
                        || matches!(e.server_code(), Some(codes::LOCK_DEADLOCK) | Some(codes::LOCK_WAIT_TIMEOUT)) =>
                {
                    debug!(partition = index, error = %e, "a partition failed in parallel; it is redone after the others");
                    failed.push(index);
                }
                Err(e) => return Err(e),
            }
        }
        // Redone one at a time, in source order (by each partition's first transaction).
        failed.sort_by_key(|&index| parts[index].first().copied().unwrap_or(usize::MAX));
        for &index in &failed {
            if as_net_effect[index] {
                // Redone statement by statement, whose checks name the row (see `net_effect_failed`).
                let part_txs: Vec<&Transaction> = parts[index].iter().map(|&i| txs[i]).collect();
                let (statements, checks, _) = self.row_statements(&part_txs, RowMode::Strict).await?;
                let (requests, skip) = partition_requests(index, &part_txs, statements);
                built[index] = (requests, checks, skip);
            }
            let (statements, checks, skip) = &built[index];
            self.stats.retried_partitions += 1;
            run_partition(&mut self.conn, statements, checks, *skip, max_request).await?;
        }
        if failpoint {
            error!("failpoint parallel-before-position: aborting after the partitions committed");
            std::process::abort();
        }
        let mut sql = format!("START TRANSACTION;{}", position_upsert(&self.opts.job, JobStage::Incremental, position));
        let _ = write!(sql, ";DELETE FROM {APPLIED_TABLE} WHERE job_name = {job} AND batch = {batch}");
        let cleanup = self.applied_cleanup_sql();
        if let Some(cleanup) = &cleanup {
            let _ = write!(sql, ";{cleanup}");
        }
        sql.push_str(";COMMIT");
        self.conn
            .query_drop(&sql)
            .await
            .map_err(|e| MysqlError::query("recording the position after a parallel group", e))?;
        if cleanup.is_some() {
            self.applied_cleanup_due = false;
        }
        self.stats.parallel_groups += 1;
        if as_net_effect.contains(&true) {
            self.stats.net_effect_groups += 1;
        }
        self.stats.parallel_partitions += parts.len() as u64;
        self.stats.target_commits += parts.len() as u64 + 1;
        self.stats.transactions += txs.len() as u64;
        self.stats.row_changes += rows;
        Ok(Some(position.clone()))
    }

    async fn apply_ddl_tx(&mut self, tx: &Transaction) -> Result<()> {
        for event in &tx.events {
            match event {
                TxEvent::Ddl { schema, sql, .. } => {
                    let mut text = String::new();
                    if !schema.is_empty() {
                        let _ = write!(text, "USE {}; ", quote_ident(schema));
                    }
                    // dtle's marker, so a job reading this target's binlog knows where the statement came from.
                    let origin = tx.first_origin();
                    if origin.is_empty() {
                        text.push_str(sql);
                    } else {
                        let gno = tx.gtid.rsplit([':', '-']).next().and_then(|n| n.parse().ok()).unwrap_or(0);
                        text.push_str(&crate::shared::markers::with_marker(sql, &crate::shared::markers::ddl_marker(&self.opts.job, &origin, gno)));
                    }
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
                    // Any table may have changed (a rename moves names around): compare them again when next written.
                    self.checked_tables.clear();
                    self.load_plans.clear();
                    self.table_keys.clear();
                    self.foreign_key_links = None;
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
        if self.position_unlogged {
            self.write_unlogged(&sql).await?;
        } else {
            self.conn.query_drop(sql).await.map_err(|e| MysqlError::query("recording the position after a DDL", e))?;
        }
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
        let pending_marker = self.pending_marker.take();
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
            if let Some(marker) = &pending_marker {
                add(&mut sql, &mut request_checks, marker, None);
            }
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
        run_checked_on(&mut self.conn, sql, checks).await
    }
}

/// Runs a multi-statement request on `conn`, checking each statement's affected-row count in order (see
/// [`Applier::run_checked`]).
async fn run_checked_on(conn: &mut Conn, sql: &str, checks: &[Option<&Check>]) -> Result<()> {
    let mut index = 0usize;
    let outcome: std::result::Result<Option<(String, String)>, mysql_async::Error> = async {
        let mut result = conn.query_iter(sql).await?;
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
                (_, Some(check)) => Err(MysqlError::query(format!("applying to {} ({})", check.table, check.what), e)),
                _ => Err(MysqlError::query("applying a transaction group on the target", e)),
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
    /// Text that ends every statement (`ON DUPLICATE KEY UPDATE ...`).
    suffix: String,
    /// The server's affected-row count for each row (2 for a row an upsert found and changed).
    affected_per_row: u64,
}

impl MultiRowStatement {
    fn new(action: &'static str) -> Self {
        MultiRowStatement {
            action,
            table: None,
            sql: String::new(),
            rows: 0,
            suffix: String::new(),
            affected_per_row: 1,
        }
    }

    /// A multi-row `INSERT ... ON DUPLICATE KEY UPDATE` of rows that must all exist and change: the server counts two
    /// affected rows for each (one for a row it inserted, or one it found already holding the values).
    fn upsert(update_list: &str) -> Self {
        MultiRowStatement {
            suffix: format!(" ON DUPLICATE KEY UPDATE {update_list}"),
            affected_per_row: 2,
            ..MultiRowStatement::new("updating by key")
        }
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
            self.sql.push_str(&self.suffix);
            out.push(std::mem::take(&mut self.sql));
            checks.push(Check {
                expected: Some(self.rows * self.affected_per_row),
                table,
                what: format!("{} {} row(s)", self.action, self.rows),
            });
            self.rows = 0;
        }
    }
}

/// The statements (and their row-count checks) that apply `changes` one after the other, consecutive inserts (and
/// deletes by key) of a table joined into multi-row statements of at most about `max` bytes.
fn statements_in_order<'c>(
    changes: impl Iterator<Item = &'c RowChange>,
    mode: RowMode,
    max: usize,
) -> (Vec<String>, Vec<Check>, u64) {
    let (verb, action) = match mode {
        RowMode::Strict => ("INSERT", "inserting"),
        RowMode::Idempotent => ("REPLACE", "replacing"),
    };
    let mut statements = Vec::new();
    let mut checks = Vec::new();
    let mut insert = MultiRowStatement::new(action);
    let mut delete = MultiRowStatement::new("deleting by key");
    let mut rows = 0u64;
    for change in changes {
        rows += 1;
        match change {
            RowChange::Insert { table, after } => {
                delete.finish(&mut statements, &mut checks);
                push_insert(verb, &mut insert, table, after, max, &mut statements, &mut checks);
            }
            RowChange::Delete { table, before } => {
                insert.finish(&mut statements, &mut checks);
                push_delete(&mut delete, table, before, max, &mut statements, &mut checks);
            }
            // Idempotent: the row as it is after the change, whatever the target holds (a moved key first frees
            // its old key).
            RowChange::Update { table, before, after } if mode == RowMode::Idempotent && table.has_key() => {
                if crate::shared::resume::key_literals(table, before)
                    != crate::shared::resume::key_literals(table, after)
                {
                    insert.finish(&mut statements, &mut checks);
                    push_delete(&mut delete, table, before, max, &mut statements, &mut checks);
                }
                delete.finish(&mut statements, &mut checks);
                push_insert(verb, &mut insert, table, after, max, &mut statements, &mut checks);
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
    insert.finish(&mut statements, &mut checks);
    delete.finish(&mut statements, &mut checks);
    if mode == RowMode::Idempotent {
        for check in &mut checks {
            check.expected = None;
        }
    }
    (statements, checks, rows)
}

/// Adds a row to a multi-row `INSERT` (strict) or `REPLACE` (idempotent), as `verb` says.
fn push_insert(
    verb: &str,
    statement: &mut MultiRowStatement,
    table: &TableMeta,
    row: &[Value],
    max_bytes: usize,
    out: &mut Vec<String>,
    checks: &mut Vec<Check>,
) {
    let ident = table.target_ident();
    let header = |sql: &mut String| {
        let _ = write!(sql, "{verb} INTO {ident} ({}) VALUES ", column_list(table.writable_columns().map(|(_, c)| c)));
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

/// The marker row of parallel worker `worker` of a job: `<job>#w<worker>`.
fn worker_marker_job(job: &str, worker: usize) -> String {
    format!("{}{worker}", worker_marker_prefix(job))
}

fn worker_marker_prefix(job: &str) -> String {
    format!("{job}#w")
}

/// Consecutive full-copy chunks of one table in one group go into one target transaction up to about this many bytes.
pub const SNAPSHOT_MERGE_BYTES: usize = 2 << 20;

/// A group of fewer than this many source transactions per parallel worker is applied serially (see `flush_dml`).
pub const PARALLEL_MIN_GROUP_PER_WORKER: usize = 2;

/// Source transactions a parallel group committed, until the job's position row covers them (see
/// [`Applier::flush_parallel`]).
pub const APPLIED_TABLE: &str = "`dtle`.`replication_applied`";

const CREATE_APPLIED_TABLE: &str = "CREATE TABLE IF NOT EXISTS `dtle`.`replication_applied` (\
    job_name VARCHAR(64) NOT NULL, \
    tx_id VARCHAR(255) NOT NULL, \
    batch BIGINT UNSIGNED NOT NULL, \
    PRIMARY KEY (job_name, tx_id)\
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

/// A source transaction's identity in [`APPLIED_TABLE`]: its GTID, else the binlog position after it.
fn tx_id(tx: &Transaction) -> String {
    if tx.gtid.is_empty() {
        format!("{}:{}", tx.position.binlog_file, tx.position.binlog_pos)
    } else {
        tx.gtid.clone()
    }
}

/// `DTLE_FAILPOINT=parallel-before-position:N`: the process aborts after the partitions of its N-th parallel group
/// committed and before the position row is written (crash tests). Only with the `failpoints` feature (the tests'
/// builds); a release build ignores the variable.
#[cfg(feature = "failpoints")]
fn parallel_failpoint(group: u64) -> bool {
    std::env::var("DTLE_FAILPOINT")
        .ok()
        .and_then(|v| v.strip_prefix("parallel-before-position:").and_then(|n| n.parse::<u64>().ok()))
        .is_some_and(|n| n == group)
}

#[cfg(not(feature = "failpoints"))]
fn parallel_failpoint(_group: u64) -> bool {
    false
}

/// Runs one partition as one target transaction (`statements` start with START TRANSACTION; the first `skip` of
/// them and the last one have no row-count check), then COMMIT; rolls back on any error.
async fn run_partition(
    conn: &mut Conn,
    statements: &[String],
    checks: &[Check],
    skip: usize,
    max_request: usize,
) -> Result<()> {
    let mut requests: Vec<(String, Vec<Option<&Check>>)> = Vec::new();
    let mut sql = String::new();
    let mut request_checks: Vec<Option<&Check>> = Vec::new();
    let last = statements.len().saturating_sub(1);
    for (i, statement) in statements.iter().enumerate() {
        if !sql.is_empty() && sql.len() + statement.len() > max_request {
            requests.push((std::mem::take(&mut sql), std::mem::take(&mut request_checks)));
        }
        if !sql.is_empty() {
            sql.push(';');
        }
        sql.push_str(statement);
        let check = if i < skip || i == last { None } else { checks.get(i - skip) };
        request_checks.push(check);
    }
    if !sql.is_empty() {
        requests.push((sql, request_checks));
    }
    let mut result = Ok(());
    for (request, request_checks) in &requests {
        if let Err(e) = run_checked_on(conn, request, request_checks).await {
            result = Err(e);
            break;
        }
    }
    if result.is_ok() {
        result = conn.query_drop("COMMIT").await.map_err(|e| MysqlError::query("committing a parallel partition", e));
    }
    if result.is_err() {
        let _ = conn.query_drop("ROLLBACK").await;
    }
    result
}

/// Whether the target records `job` as replicating incrementally with every change applied strictly: its full
/// copy is done and a resumed copy's idempotent catch-up is over. `false` while the target cannot be read.
pub async fn incremental_and_strict(endpoint: &Endpoint, job: &str) -> bool {
    let Ok(mut conn) = endpoint.connect(&[]).await else {
        return false;
    };
    let stage: Option<String> =
        conn.exec_first(format!("SELECT stage FROM {POSITION_TABLE} WHERE job_name = ?"), (job,)).await.ok().flatten();
    let catching_up: Option<u64> = conn
        .exec_first(format!("SELECT COUNT(*) FROM {} WHERE job_name = ?", snapshot_apply::CATCHUP_TABLE), (job,))
        .await
        .unwrap_or(Some(1));
    let _ = conn.disconnect().await;
    stage.as_deref() == Some("job_stage_incr") && catching_up == Some(0)
}

/// The first statement of every target transaction dtle opens for source transactions that have an origin: it
/// changes the job's row (so row-based binlogs always log it, first in the transaction) and names the server where
/// the changes were first made. A job reading this target's binlog (two-way sync) carries that origin along, and
/// the applier whose target is that server skips the transaction.
pub fn marker_upsert(job: &str, origin: &str) -> String {
    format!(
        "INSERT INTO {POSITION_TABLE} (job_name, stage, flavor, gtid_set, binlog_file, binlog_pos, origin) \
         VALUES ({}, 'job_stage_incr', '', '', '', 0, {}) \
         ON DUPLICATE KEY UPDATE origin = VALUES(origin), marker_seq = marker_seq + 1",
        quote_str(job),
        quote_str(origin)
    )
}

/// The statement that records a job's position.
pub fn position_upsert(job: &str, stage: JobStage, position: &Position) -> String {
    let (flavor, gtid) = position.gtid.as_ref().map(|g| (g.flavor(), g.to_string())).unwrap_or_default();
    format!(
        "INSERT INTO {POSITION_TABLE} (job_name, stage, flavor, gtid_set, binlog_file, binlog_pos) VALUES ({}, '{}', '{}', {}, {}, {}) \
         ON DUPLICATE KEY UPDATE stage = VALUES(stage), flavor = VALUES(flavor), gtid_set = VALUES(gtid_set), \
         binlog_file = VALUES(binlog_file), binlog_pos = VALUES(binlog_pos)",
        quote_str(job),
        JobStage::as_str(stage),
        flavor,
        quote_str(&gtid),
        quote_str(&position.binlog_file),
        position.binlog_pos
    )
}

pub use crate::shared::describe;

/// The full copy's parallel writers and a resumed copy's idempotent catch-up (design: [`crate::snapshot_apply`]).
impl Applier {
    /// The target holds an interrupted full copy of this job: keeps the chunks that can be kept and says what the
    /// source still has to copy. `None`: it cannot be continued (no interrupted copy, or a partly copied table
    /// without a key); the copy starts again and every table is emptied first.
    pub async fn prepare_snapshot_resume(&mut self) -> Result<Option<SnapshotResume>> {
        self.resumed_tables.clear();
        self.next_chunk.clear();
        self.resume_from = None;
        let Some(rp) = self.resume_point().await? else {
            self.redo_snapshot = false;
            return Ok(None);
        };
        self.redo_snapshot = rp.stage == JobStage::Snapshot;
        if rp.stage != JobStage::Snapshot {
            return Ok(None);
        }
        let Some(plan) =
            snapshot_apply::prepare_resume(&mut self.conn, &self.opts.job, self.opts.foreign_key_checks).await?
        else {
            return Ok(None);
        };
        if plan.tables.is_empty() {
            return Ok(None);
        }
        self.resumed_tables = snapshot_apply::resumed_idents(&plan);
        self.next_chunk = plan.next_chunk;
        self.resume_from = Some(rp.position.clone());
        Ok(Some(SnapshotResume { binlog_from: rp.position, tables: plan.tables }))
    }

    /// Waits for every full-copy chunk still being written (a clean stop).
    pub async fn finish_snapshot_writes(&mut self) -> Result<()> {
        self.writers.wait_all().await
    }

    fn next_chunk_of(&mut self, table: &TableMeta) -> u64 {
        let next = self.next_chunk.entry(table.target_ident()).or_insert(0);
        let chunk = *next;
        *next += 1;
        chunk
    }

    /// Applies the first changes of `changes` in [`ApplyMode::CatchingUp`]: idempotently up to `until`. Ends the
    /// catch-up once the binlog passes or reaches `until` (or a full copy starts again); returns what became durable
    /// and how many changes it took (the rest follow in the mode it leaves).
    async fn apply_catching_up(&mut self, changes: &[Change], until: &Position) -> Result<(Option<Position>, usize)> {
        let split = changes.iter().position(|c| past_catchup(c, until)).unwrap_or(changes.len());
        let (durable, taken) = self.apply_idempotent(&changes[..split]).await?;
        if taken < split {
            // A full copy starts again: the rest goes the normal way.
            return Ok((durable, taken));
        }
        // Reaching the catch-up position exactly also ends it (an idle source sends nothing after it).
        let reached = split == changes.len()
            && changes
                .iter()
                .rev()
                .find_map(|c| match c {
                    Change::Tx(t) if !t.partial => Some(&t.position),
                    Change::Heartbeat { position, .. } => Some(position),
                    _ => None,
                })
                .is_some_and(|p| matches!(p.try_partial_cmp(until), Ok(Some(std::cmp::Ordering::Equal))));
        if split < changes.len() || reached {
            self.mode = ApplyMode::Strict;
            self.conn
                .exec_drop(
                    format!("DELETE FROM {} WHERE job_name = ?", snapshot_apply::CATCHUP_TABLE),
                    (self.opts.job.as_str(),),
                )
                .await
                .map_err(|e| MysqlError::query("ending the idempotent catch-up", e))?;
            info!(job = %self.opts.job, until = %describe(until), "catch-up after the resumed copy done: applying strictly again");
        }
        Ok((durable, split))
    }

    /// Like `apply_strict`, with row changes written idempotently (see [`Applier::flush_dml_idempotent`]). Stops
    /// before a change of a full copy starting again (which ends the catch-up); returns what became durable and how
    /// many changes it took.
    async fn apply_idempotent(&mut self, changes: &[Change]) -> Result<(Option<Position>, usize)> {
        let mut txs: Vec<&Transaction> = Vec::new();
        let mut group_position: Option<Position> = None;
        let mut durable: Option<Position> = None;
        for (i, change) in changes.iter().enumerate() {
            match change {
                Change::Tx(tx) if tx.has_ddl() => {
                    self.flush_dml_idempotent(&txs, group_position.take()).await?;
                    txs.clear();
                    // Tables copied from the second snapshot already have this DDL: "already done" errors are fine.
                    self.ddl_replay_possible = true;
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
                _ => {
                    // A full copy starts again: the normal path from here.
                    let flushed = self.flush_dml_idempotent(&txs, group_position.take()).await?;
                    self.mode = ApplyMode::Strict;
                    return Ok((flushed.or(durable), i));
                }
            }
        }
        if let Some(p) = self.flush_dml_idempotent(&txs, group_position.take()).await? {
            durable = Some(p);
        }
        Ok((durable, changes.len()))
    }

    /// One target transaction for `txs` whose rows may already be on the target: inserts and updates write the after
    /// image with `REPLACE` (an update that changes the key deletes the old key first), deletes remove the key if it
    /// is there, and no row count is checked.
    async fn flush_dml_idempotent(
        &mut self,
        txs: &[&Transaction],
        position: Option<Position>,
    ) -> Result<Option<Position>> {
        let ends_open = txs.last().is_some_and(|t| t.partial);
        if txs.is_empty() && position.is_none() {
            return Ok(None);
        }
        let (statements, checks, rows) = self.row_statements(txs, RowMode::Idempotent).await?;
        let position = if ends_open { None } else { position };
        let position_sql = position.as_ref().map(|p| position_upsert(&self.opts.job, JobStage::Incremental, p));
        self.execute_group(statements, checks, position_sql, false, !ends_open).await?;
        self.stats.transactions += txs.iter().filter(|t| !t.partial).count() as u64;
        self.stats.row_changes += rows;
        Ok(position)
    }
}

/// Whether a binlog change comes after `until` (the snapshot of a resumed copy). A part of a big transaction carries
/// the position before it; a position that cannot be compared ends the catch-up.
fn past_catchup(change: &Change, until: &Position) -> bool {
    let (position, at_counts) = match change {
        Change::Tx(tx) => (&tx.position, tx.partial),
        Change::Heartbeat { position, .. } => (position, false),
        _ => return false,
    };
    match position.try_partial_cmp(until) {
        Ok(Some(std::cmp::Ordering::Less)) => false,
        Ok(Some(std::cmp::Ordering::Equal)) => at_counts,
        Ok(Some(std::cmp::Ordering::Greater)) => true,
        Ok(None) | Err(_) => {
            warn!(position = %describe(position), until = %describe(until), "cannot compare with the catch-up position; applying strictly from here");
            true
        }
    }
}

/// Records the position until which a resumed copy's binlog replay is idempotent.
fn catchup_upsert(job: &str, position: &Position) -> String {
    let (flavor, gtid) = position.gtid.as_ref().map(|g| (g.flavor(), g.to_string())).unwrap_or_default();
    format!(
        "REPLACE INTO {} (job_name, flavor, gtid_set, binlog_file, binlog_pos) VALUES ({}, '{flavor}', {}, {}, {})",
        snapshot_apply::CATCHUP_TABLE,
        quote_str(job),
        quote_str(&gtid),
        quote_str(&position.binlog_file),
        position.binlog_pos
    )
}

/// The job's catch-up position, if a resumed copy's replay has not passed it yet.
async fn read_catchup(conn: &mut Conn, job: &str) -> Result<Option<Position>> {
    let row: Option<(String, String, String, u64)> = conn
        .exec_first(
            format!(
                "SELECT flavor, gtid_set, binlog_file, binlog_pos FROM {} WHERE job_name = ?",
                snapshot_apply::CATCHUP_TABLE
            ),
            (job,),
        )
        .await
        .map_err(|e| MysqlError::query("reading the full copy's catch-up position", e))?;
    let Some((flavor, gtid, file, pos)) = row else {
        return Ok(None);
    };
    let gtid = match flavor.as_str() {
        "mysql" => gtid.parse().map(GtidState::Mysql).ok(),
        "mariadb" => gtid.parse().map(GtidState::Mariadb).ok(),
        _ => None,
    };
    Ok(Some(Position { gtid, binlog_file: file, binlog_pos: pos }))
}
