//! The target side of the full copy: chunks written by several target connections at once, each chunk committed
//! with a progress row, and an interrupted copy resumed from those rows instead of redone.
//!
//! # Parallel writers
//!
//! One reader on the source (a single consistent snapshot reads several times faster than one target connection
//! writes), [`SNAPSHOT_WRITERS`] target connections writing chunks. A chunk commits in one target transaction with
//! its row in `dtle.snapshot_progress` (job, table, chunk number, the chunk's last key as SQL literals); consecutive
//! chunks of one table that reach the dest in one group share that transaction (and one `LOAD DATA`), each keeping
//! its own progress row. Chunks of one table commit in any order; the applier waits for every writer before the full
//! copy's end is recorded (the position row moves to `job_stage_incr` only when every chunk is durable).
//!
//! # Resuming an interrupted copy
//!
//! Run 1 took snapshot S1 at binlog position P1 (recorded with stage `job_stage_full`) and was killed. On the target,
//! for each table, the chunks numbered 0..n without a gap are a prefix of the table in key order as of S1, ending at
//! key K (chunks committed after a gap are discarded: `DELETE ... WHERE key > K`). A table whose done marker is in its
//! prefix is complete as of S1.
//!
//! Run 2 takes a new snapshot S2 at position P2 (P2 is after P1), skips the complete tables, copies the rows after K
//! of the partly copied ones and every other table (emptied first) from S2, and then replays the binlog from **P1**.
//! The target then holds rows as of S1 (complete tables, and keys up to K) and rows as of S2 (the rest). Replaying
//! P1..P2 strictly would fail on the S2 rows (an insert finds its key, a delete finds no row), so until P2 the
//! applier applies idempotently: an insert or update writes the after image with `REPLACE` (an update that changes
//! the key first deletes the old key), a delete removes the key if present, and no row count is checked. That is
//! exact: with full row images, every row ends in the image of the last event that touched it, which is its state
//! at P2 for rows already at P2 and the normal replay for rows at P1; a `REPLACE` that removes another row through a
//! unique key only does so when the source had that key free at that time, so that row has a later event that puts
//! it back. After P2 the applier is strict again. P2 is kept on the target (`dtle.snapshot_catchup`) so a restart
//! during the replay stays idempotent until P2; a second interruption takes S3 and replaces P2 with P3 (the binlog
//! still starts at P1).
//!
//! Limits: a table without a usable key cannot be resumed (its chunks have no key to continue from, and an
//! idempotent replay cannot tell its duplicate rows apart), so an interrupted copy with such a table not complete
//! is redone from scratch, as before. Over NATS (src and dest in different processes) the dest reads the progress
//! when the src says hello and answers with it (stage 3), and the src continues from there. A DDL between P1 and P2 on a table copied from S2 is replayed
//! on a table that already has it.

use std::collections::{HashMap, HashSet};

use mysql_async::prelude::*;
use mysql_async::Conn;
use tokio::task::JoinSet;
use tracing::info;

use crate::conn::Endpoint;
use crate::error::{MysqlError, Result};
use crate::schema::{quote_ident, quote_str, TableMeta};
use crate::shared::resume::{key_literals, write_key_after, TableResume};
use crate::value::Value;

/// Target connections writing full-copy chunks at once.
pub const SNAPSHOT_WRITERS: usize = 3;

pub const PROGRESS_TABLE: &str = "`dtle`.`snapshot_progress`";
pub const CATCHUP_TABLE: &str = "`dtle`.`snapshot_catchup`";

pub const CREATE_PROGRESS_TABLE: &str = "CREATE TABLE IF NOT EXISTS `dtle`.`snapshot_progress` (\
    job_name VARCHAR(64) NOT NULL, \
    table_schema VARCHAR(64) NOT NULL, \
    table_name VARCHAR(64) NOT NULL, \
    chunk BIGINT UNSIGNED NOT NULL, \
    last_key LONGTEXT NULL, \
    rows_copied BIGINT UNSIGNED NOT NULL, \
    done TINYINT NOT NULL DEFAULT 0, \
    PRIMARY KEY (job_name, table_schema, table_name, chunk)\
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

pub const CREATE_CATCHUP_TABLE: &str = "CREATE TABLE IF NOT EXISTS `dtle`.`snapshot_catchup` (\
    job_name VARCHAR(64) NOT NULL PRIMARY KEY, \
    flavor VARCHAR(16) NOT NULL, \
    gtid_set LONGTEXT NOT NULL, \
    binlog_file VARCHAR(255) NOT NULL, \
    binlog_pos BIGINT UNSIGNED NOT NULL\
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

pub const DEFERRED_INDEX_TABLE: &str = "`dtle`.`snapshot_deferred_index`";

/// Secondary indexes dtle left out of a table it created for a full copy, to be added once the table is copied
/// (see [`split_secondary_indexes`]). Keyed by the target table: whichever job finishes copying it adds them.
pub const CREATE_DEFERRED_INDEX_TABLE: &str = "CREATE TABLE IF NOT EXISTS `dtle`.`snapshot_deferred_index` (\
    table_schema VARCHAR(64) COLLATE utf8mb4_bin NOT NULL, \
    table_name VARCHAR(64) COLLATE utf8mb4_bin NOT NULL, \
    index_name VARCHAR(64) NOT NULL, \
    ordinal INT UNSIGNED NOT NULL, \
    definition TEXT NOT NULL, \
    job_name VARCHAR(64) NOT NULL, \
    PRIMARY KEY (table_schema, table_name, index_name)\
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

/// A table's plain secondary indexes (`KEY name (...)` lines of `SHOW CREATE TABLE`) taken out of its `CREATE TABLE`:
/// filling a table and then building its secondary indexes by sorting costs the target about a fifth less CPU than
/// inserting every row into every index (measured on the sysbench table). Returns the statement without them and
/// each index's name and definition; `None` when there is nothing to defer or the table has foreign keys (their
/// indexes must exist from the start). Primary, unique, fulltext and spatial indexes stay in the statement, and so
/// does an index that starts with the AUTO_INCREMENT column (the table cannot be created without one).
pub fn split_secondary_indexes(create: &str) -> Option<(String, Vec<(String, String)>)> {
    let lines: Vec<&str> = create.lines().collect();
    if lines.len() < 3 || !lines[0].trim_end().ends_with('(') {
        return None;
    }
    let close = lines.iter().position(|l| l.starts_with(')'))?;
    let body = &lines[1..close];
    if body.iter().any(|l| l.contains("FOREIGN KEY")) {
        return None;
    }
    let auto_increment = body
        .iter()
        .map(|l| l.trim())
        .find(|l| l.starts_with('`') && l.contains(" AUTO_INCREMENT"))
        .and_then(|l| backquoted_name(&l[1..]));
    let mut kept = Vec::new();
    let mut deferred = Vec::new();
    for line in body {
        let definition = line.trim().trim_end_matches(',');
        let name = definition.strip_prefix("KEY `").and_then(backquoted_name);
        // The first column: after the name's closing backquote and " (`".
        let first_column = name.as_ref().and_then(|n| {
            let after_name = definition.get("KEY `".len() + n.replace('`', "``").len() + 1..)?;
            after_name.strip_prefix(" (`").and_then(backquoted_name)
        });
        match name {
            Some(name) if auto_increment.is_none() || first_column != auto_increment => {
                deferred.push((name, definition.to_string()))
            }
            _ => kept.push(definition),
        }
    }
    if deferred.is_empty() || kept.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(create.len());
    out.push_str(lines[0]);
    out.push('\n');
    out.push_str("  ");
    out.push_str(&kept.join(",\n  "));
    for line in &lines[close..] {
        out.push('\n');
        out.push_str(line);
    }
    Some((out, deferred))
}

/// The name in `name` rest` (after an opening backquote; a doubled backquote is one in the name).
fn backquoted_name(rest: &str) -> Option<String> {
    let mut name = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '`' {
            if chars.peek() == Some(&'`') {
                chars.next();
            } else {
                return Some(name);
            }
        }
        name.push(c);
    }
    None
}

/// The last key of a chunk as stored in `last_key`: the key columns' target names and SQL literals.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredKey {
    columns: Vec<String>,
    values: Vec<String>,
}

/// The progress row of one chunk (`rows` is the last row of the chunk, for its key; `None` for the table's end).
pub fn progress_insert(job: &str, table: &TableMeta, chunk: u64, last_row: Option<&[Value]>, rows: u64) -> String {
    let last_key = match last_row {
        Some(row) if table.chunkable() => {
            let key = StoredKey {
                columns: table.key_columns.iter().map(|&i| table.columns[i].name.clone()).collect(),
                values: key_literals(table, row),
            };
            serde_json::to_string(&key).map(|k| quote_str(&k)).unwrap_or_else(|_| "NULL".into())
        }
        _ => "NULL".into(),
    };
    format!(
        "INSERT INTO {PROGRESS_TABLE} (job_name, table_schema, table_name, chunk, last_key, rows_copied, done) \
         VALUES ({}, {}, {}, {chunk}, {last_key}, {rows}, {})",
        quote_str(job),
        quote_str(&table.target_schema),
        quote_str(&table.target_name),
        u8::from(last_row.is_none())
    )
}

/// What the target says about an interrupted full copy.
pub struct ResumePlan {
    /// Per table (target schema, target name): complete, or copied up to a key.
    pub tables: HashMap<(String, String), TableResume>,
    /// The next chunk number per target table ident (`schema`.`table`) that has progress.
    pub next_chunk: HashMap<String, u64>,
}

/// Reads the job's chunk rows and brings every table to a prefix without gaps: chunks committed after a gap are
/// deleted with their rows, tables without a first chunk lose their progress rows (they are copied again, emptied
/// first). Returns `None` when the copy cannot be resumed (a partly copied table without a key).
pub async fn prepare_resume(conn: &mut Conn, job: &str, foreign_key_checks: bool) -> Result<Option<ResumePlan>> {
    wait_for_earlier_writers(conn, job).await?;
    let rows: Vec<(String, String, u64, Option<String>, u8)> = conn
        .exec(
            format!(
                "SELECT table_schema, table_name, chunk, last_key, done FROM {PROGRESS_TABLE} \
                 WHERE job_name = ? ORDER BY table_schema, table_name, chunk"
            ),
            (job,),
        )
        .await
        .map_err(|e| MysqlError::query(format!("reading the full-copy progress from {PROGRESS_TABLE}"), e))?;
    let tables = chunk_prefixes(rows);
    let mut plan = ResumePlan { tables: HashMap::new(), next_chunk: HashMap::new() };
    let mut cleanup: Vec<String> = Vec::new();
    for ((schema, name), p) in tables {
        let ident = format!("{}.{}", quote_ident(&schema), quote_ident(&name));
        let progress_rows = |from: u64| {
            format!(
                "DELETE FROM {PROGRESS_TABLE} WHERE job_name = {} AND table_schema = {} AND table_name = {} \
                 AND chunk >= {from}",
                quote_str(job),
                quote_str(&schema),
                quote_str(&name)
            )
        };
        if p.done {
            if p.more {
                cleanup.push(progress_rows(p.len));
            }
            plan.tables.insert((schema, name), TableResume::Done);
            continue;
        }
        if p.len == 0 {
            // Nothing usable: the table is emptied and copied again.
            cleanup.push(progress_rows(0));
            continue;
        }
        let Some(key) = p.last_key.as_deref().and_then(|k| serde_json::from_str::<StoredKey>(k).ok()) else {
            info!(table = %ident, "the interrupted full copy of this table cannot be continued (no key): copying everything again");
            return Ok(None);
        };
        if p.more {
            info!(table = %ident, chunks_kept = p.len, "discarding the chunks committed after the first missing one");
            let names: Vec<&str> = key.columns.iter().map(String::as_str).collect();
            let mut delete = format!("DELETE FROM {ident} WHERE ");
            write_key_after(&mut delete, &names, &key.values);
            cleanup.push(delete);
            cleanup.push(progress_rows(p.len));
        }
        plan.next_chunk.insert(ident, p.len);
        plan.tables.insert((schema, name), TableResume::After(key.values));
    }
    if !cleanup.is_empty() {
        let sql = format!("START TRANSACTION;SET foreign_key_checks = 0;{};COMMIT", cleanup.join(";"));
        let result = conn.query_drop(&sql).await;
        let _ = conn.query_drop(format!("SET foreign_key_checks = {}", u8::from(foreign_key_checks))).await;
        result
            .map_err(|e| MysqlError::query("removing chunks committed after a gap in the interrupted full copy", e))?;
    }
    Ok(Some(plan))
}

/// The comment every chunk request of a job starts with, so that a restarted job can see requests of an earlier
/// process still running on the server (a killed client's request runs to its end, COMMIT included).
pub fn writer_tag(job: &str) -> String {
    format!("/*dtle-copy {}*/ ", job.replace(['*', '/', '\'', '\\'], "_"))
}

/// Waits (up to 10 minutes) until no chunk request of an earlier process of `job` runs on the target, so the
/// progress read next is final.
async fn wait_for_earlier_writers(conn: &mut Conn, job: &str) -> Result<()> {
    let tag = writer_tag(job).replace('%', "\\%").replace('_', "\\_");
    let like = format!("{tag}%");
    // An index build (see `split_secondary_indexes`) of a big table may take longer than any chunk: it is waited for
    // as long as it runs; chunk writes for at most 10 minutes.
    let index_build = format!("{tag}ALTER TABLE%");
    let mut started = std::time::Instant::now();
    loop {
        let (running, index_builds): (u64, u64) = conn
            .exec_first(
                "SELECT COUNT(*), CAST(COALESCE(SUM(INFO LIKE ?), 0) AS UNSIGNED) FROM information_schema.PROCESSLIST \
                 WHERE ID <> CONNECTION_ID() AND INFO LIKE ?",
                (index_build.as_str(), like.as_str()),
            )
            .await
            .map_err(|e| MysqlError::query("looking for chunk writes of an earlier process", e))?
            .unwrap_or((0, 0));
        if running == 0 {
            return Ok(());
        }
        if index_builds == running {
            started = std::time::Instant::now();
        } else if started.elapsed() > std::time::Duration::from_secs(600) {
            return Err(MysqlError::Stream {
                at: crate::error::BinlogAt::default(),
                reason: format!(
                    "chunk writes of an earlier process of job {job} still run on the target after 10 minutes"
                ),
                transient: true,
            });
        }
        tracing::info!(
            job,
            requests = running,
            index_builds,
            "waiting for chunk writes or index builds of an earlier process to end on the target"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Per table: the chunks numbered from 0 without a gap, and whether chunks follow a gap.
#[derive(Debug, PartialEq, Eq)]
struct Prefix {
    len: u64,
    /// `last_key` of the prefix's last data chunk.
    last_key: Option<String>,
    /// The table's end marker is in the prefix.
    done: bool,
    /// Chunks after a gap (or after the end marker).
    more: bool,
}

/// Groups the progress rows `(schema, table, chunk, last_key, done)`, ordered by table and chunk, into prefixes.
fn chunk_prefixes(rows: Vec<(String, String, u64, Option<String>, u8)>) -> Vec<((String, String), Prefix)> {
    let mut tables: Vec<((String, String), Prefix)> = Vec::new();
    for (schema, name, chunk, last_key, done) in rows {
        if tables.last().map(|(k, _)| k.0 != schema || k.1 != name).unwrap_or(true) {
            tables.push(((schema, name), Prefix { len: 0, last_key: None, done: false, more: false }));
        }
        let Some((_, p)) = tables.last_mut() else { continue };
        if chunk == p.len && !p.done {
            p.len += 1;
            if done != 0 {
                p.done = true;
            } else {
                p.last_key = last_key;
            }
        } else {
            p.more = true;
        }
    }
    tables
}

/// A pool of target connections that write chunks concurrently, each chunk in its own transaction.
pub struct SnapshotWriters {
    endpoint: Endpoint,
    setup: Vec<String>,
    max: usize,
    idle: Vec<Conn>,
    open: usize,
    running: JoinSet<Finished>,
    /// Requests in flight per target table (ident).
    in_flight: HashMap<String, usize>,
}

/// What a writer task gives back: its connection (unless it failed), its result and its target table.
type Finished = (Option<Conn>, Result<()>, String);

/// One request of a chunk: SQL text, or a `LOAD DATA LOCAL INFILE` statement and the data it loads.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkRequest {
    Sql(String),
    Load { sql: String, data: Vec<u8> },
}

impl SnapshotWriters {
    pub fn new(endpoint: Endpoint, setup: Vec<String>, max: usize) -> Self {
        SnapshotWriters {
            endpoint,
            setup,
            max: max.max(1),
            idle: Vec::new(),
            open: 0,
            running: JoinSet::new(),
            in_flight: HashMap::new(),
        }
    }

    /// Starts one chunk of the target table `target` (ident): `requests` run in order on one connection (the first
    /// opens the transaction, the last commits it). Waits for a free connection when all are busy; returns an error
    /// of an earlier chunk.
    pub async fn submit(&mut self, target: String, requests: Vec<ChunkRequest>, what: String) -> Result<()> {
        while let Some(done) = self.running.try_join_next() {
            self.finished(done)?;
        }
        let conn = loop {
            if let Some(conn) = self.idle.pop() {
                break conn;
            }
            if self.open < self.max {
                let setup: Vec<&str> = self.setup.iter().map(String::as_str).collect();
                let conn = self.endpoint.connect(&setup).await?;
                self.open += 1;
                break conn;
            }
            match self.running.join_next().await {
                Some(done) => self.finished(done)?,
                None => self.open = 0,
            }
        };
        *self.in_flight.entry(target.clone()).or_default() += 1;
        self.running.spawn(run_chunk(conn, requests, what, target));
        Ok(())
    }

    /// Waits until every request started for the target table `target` is done (or returns the first error);
    /// requests for other tables go on.
    pub async fn wait_target(&mut self, target: &str) -> Result<()> {
        while self.in_flight.get(target).is_some_and(|&n| n > 0) {
            match self.running.join_next().await {
                Some(done) => self.finished(done)?,
                None => self.in_flight.clear(),
            }
        }
        Ok(())
    }

    /// Waits until every chunk started is committed (or returns the first error).
    pub async fn wait_all(&mut self) -> Result<()> {
        while let Some(done) = self.running.join_next().await {
            self.finished(done)?;
        }
        Ok(())
    }

    /// Chunks not yet committed.
    pub fn pending(&self) -> usize {
        self.running.len()
    }

    /// Closes the idle connections (the full copy is over).
    pub async fn close(&mut self) {
        for conn in self.idle.drain(..) {
            let _ = conn.disconnect().await;
        }
        self.open = self.running.len();
    }

    #[allow(clippy::result_large_err)] // the crate's one error type, as everywhere else
    fn finished(&mut self, done: std::result::Result<Finished, tokio::task::JoinError>) -> Result<()> {
        match done {
            Ok((Some(conn), Ok(()), target)) => {
                self.done_with(&target);
                self.idle.push(conn);
                Ok(())
            }
            Ok((conn, result, target)) => {
                self.done_with(&target);
                if conn.is_none() {
                    self.open = self.open.saturating_sub(1);
                }
                // Stop the other chunks: the run restarts from what the target has.
                self.running.abort_all();
                result
            }
            Err(e) => {
                self.open = self.open.saturating_sub(1);
                self.in_flight.clear();
                self.running.abort_all();
                Err(MysqlError::Unsupported {
                    what: format!("a full-copy writer task failed ({e})"),
                    fix: "report this as a bug".into(),
                })
            }
        }
    }

    fn done_with(&mut self, target: &str) {
        if let Some(n) = self.in_flight.get_mut(target) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(target);
            }
        }
    }
}

async fn run_chunk(mut conn: Conn, requests: Vec<ChunkRequest>, what: String, target: String) -> Finished {
    for request in requests {
        let result = match request {
            ChunkRequest::Sql(sql) => conn.query_drop(sql).await,
            ChunkRequest::Load { sql, data } => load(&mut conn, &sql, data).await,
        };
        if let Err(e) = result {
            let _ = conn.query_drop("ROLLBACK").await;
            return (None, Err(MysqlError::query(what, e)), target);
        }
    }
    (Some(conn), Ok(()), target)
}

/// Runs a `LOAD DATA LOCAL INFILE` that reads `data`. `LOCAL` makes the server report rejected values and
/// duplicate keys as warnings and go on: a warning about the data is returned as the error the strict `INSERT`
/// would have raised (the caller rolls the chunk back). Notes (a value rounded as an `INSERT` would round it) and
/// warnings about the statement's own syntax (deprecated `utf8` names) are not errors.
async fn load(conn: &mut Conn, sql: &str, data: Vec<u8>) -> std::result::Result<(), mysql_async::Error> {
    use futures_util::StreamExt as _;
    // The server reads the data in packets of at most max_allowed_packet: sent in pieces of 1 MiB.
    const PIECE: usize = 1 << 20;
    let data = bytes::Bytes::from(data);
    let pieces: Vec<bytes::Bytes> =
        (0..data.len()).step_by(PIECE).map(|at| data.slice(at..(at + PIECE).min(data.len()))).collect();
    conn.set_infile_handler(async move { Ok(futures_util::stream::iter(pieces.into_iter().map(Ok)).boxed()) });
    conn.query_drop(sql).await.map_err(|e| match e {
        // LOAD DATA LOCAL refused although local_infile is ON (a proxy, or a setting changed since the start).
        mysql_async::Error::Server(mut e) if matches!(e.code, 1148 | 3948 | 4166) => {
            e.message.push_str(
                ". The target does not take LOAD DATA LOCAL INFILE here: set SnapshotLoadData = false in the job to \
                 copy with INSERT statements",
            );
            mysql_async::Error::Server(e)
        }
        e => e,
    })?;
    let warnings = conn.get_warnings();
    if warnings == 0 {
        return Ok(());
    }
    let shown: Vec<(String, u16, String)> = conn.query("SHOW WARNINGS").await?;
    let rejected: Vec<&(String, u16, String)> = shown
        .iter()
        .filter(|(level, code, _)| {
            !level.eq_ignore_ascii_case("Note") && !matches!(code, 1287 | 3719 | 3720 /* deprecated syntax */)
        })
        .collect();
    let Some((_, code, _)) = rejected.first() else {
        return Ok(());
    };
    let messages: Vec<String> =
        rejected.iter().take(3).map(|(level, code, message)| format!("{level} {code}: {message}")).collect();
    Err(mysql_async::Error::Server(mysql_async::ServerError {
        code: *code,
        message: format!(
            "the target rejected rows of the chunk ({} warning(s) of LOAD DATA LOCAL INFILE: {}); the chunk's \
             transaction was rolled back. Fix the target table or the data; SnapshotLoadData = false in the job \
             copies with INSERT statements instead",
            rejected.len(),
            messages.join("; ")
        ),
        state: "HY000".into(),
    }))
}

/// Groups statements into requests of at most `max_request` bytes: `START TRANSACTION` first, `COMMIT` last; every
/// statement after the first carries `tag`.
pub fn chunk_requests(statements: Vec<String>, progress: String, max_request: usize, tag: &str) -> Vec<ChunkRequest> {
    let mut requests = Vec::new();
    let mut sql = String::from("START TRANSACTION");
    for statement in statements.into_iter().chain(std::iter::once(progress)) {
        if sql.len() + tag.len() + statement.len() > max_request && !sql.is_empty() {
            requests.push(ChunkRequest::Sql(std::mem::take(&mut sql)));
        }
        if !sql.is_empty() {
            sql.push(';');
        }
        sql.push_str(tag);
        sql.push_str(&statement);
    }
    if !sql.is_empty() {
        sql.push(';');
    }
    sql.push_str(tag);
    sql.push_str("COMMIT");
    requests.push(ChunkRequest::Sql(sql));
    requests
}

/// The requests of a chunk loaded with `LOAD DATA LOCAL INFILE`: open, load, progress row and commit. Every
/// statement carries `tag`.
pub fn load_requests(tag: &str, load: &str, data: Vec<u8>, progress: &str) -> Vec<ChunkRequest> {
    vec![
        ChunkRequest::Sql(format!("{tag}START TRANSACTION")),
        ChunkRequest::Load { sql: format!("{tag}{load}"), data },
        ChunkRequest::Sql(format!("{tag}{progress};{tag}COMMIT")),
    ]
}

/// Target tables (idents) with progress rows, for the applier: they are not emptied when the copy resumes.
pub fn resumed_idents(plan: &ResumePlan) -> HashSet<String> {
    plan.tables.keys().map(|(s, t)| format!("{}.{}", quote_ident(s), quote_ident(t))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_stop_at_the_first_gap() {
        let row = |t: &str, chunk: u64, key: Option<&str>, done: u8| {
            ("s".to_string(), t.to_string(), chunk, key.map(str::to_string), done)
        };
        let prefixes = chunk_prefixes(vec![
            row("a", 0, Some("k0"), 0),
            row("a", 1, Some("k1"), 0),
            row("a", 2, None, 1),
            row("b", 0, Some("k0"), 0),
            row("b", 1, Some("k1"), 0),
            row("b", 3, Some("k3"), 0),
            row("b", 4, None, 1),
            row("c", 1, Some("k1"), 0),
        ]);
        let get = |t: &str| &prefixes.iter().find(|(k, _)| k.1 == t).unwrap().1;
        assert_eq!(get("a"), &Prefix { len: 3, last_key: Some("k1".into()), done: true, more: false });
        assert_eq!(get("b"), &Prefix { len: 2, last_key: Some("k1".into()), done: false, more: true });
        assert_eq!(get("c"), &Prefix { len: 0, last_key: None, done: false, more: true });
    }

    #[test]
    fn secondary_indexes_are_split_off_the_create_statement() {
        let create = "CREATE TABLE IF NOT EXISTS `s`.`t` (\n  `id` int(11) NOT NULL,\n  `k` int(11) NOT NULL,\n  \
            `e` varchar(20) DEFAULT 'KEY `x`',\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `e` (`e`),\n  KEY `k_1` (`k`),\n  \
            KEY `we``ird` (`k`,`e`(5)) COMMENT 'c'\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
        let (without, deferred) = split_secondary_indexes(create).unwrap();
        assert_eq!(
            without,
            "CREATE TABLE IF NOT EXISTS `s`.`t` (\n  `id` int(11) NOT NULL,\n  `k` int(11) NOT NULL,\n  \
             `e` varchar(20) DEFAULT 'KEY `x`',\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `e` (`e`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        );
        assert_eq!(
            deferred,
            vec![
                ("k_1".to_string(), "KEY `k_1` (`k`)".to_string()),
                ("we`ird".to_string(), "KEY `we``ird` (`k`,`e`(5)) COMMENT 'c'".to_string())
            ]
        );
        // Foreign keys need their indexes from the start; no secondary index, nothing to do.
        let fk = "CREATE TABLE `c` (\n  `id` int NOT NULL,\n  `p` int,\n  PRIMARY KEY (`id`),\n  KEY `p` (`p`),\n  \
                  CONSTRAINT `f` FOREIGN KEY (`p`) REFERENCES `par` (`id`)\n) ENGINE=InnoDB";
        assert!(split_secondary_indexes(fk).is_none());
        assert!(split_secondary_indexes("CREATE TABLE `x` (\n  `id` int NOT NULL,\n  PRIMARY KEY (`id`)\n)").is_none());
        assert!(split_secondary_indexes("CREATE TABLE x (id int, KEY (id))").is_none());
        // The AUTO_INCREMENT column needs an index that starts with it.
        let auto = "CREATE TABLE `a` (\n  `t` int NOT NULL,\n  `id` int NOT NULL AUTO_INCREMENT,\n  `k` int,\n  \
                    PRIMARY KEY (`t`,`id`),\n  KEY `id` (`id`),\n  KEY `k` (`k`,`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=5";
        let (without, deferred) = split_secondary_indexes(auto).unwrap();
        assert!(without.contains("KEY `id` (`id`)"), "{without}");
        assert_eq!(deferred, vec![("k".to_string(), "KEY `k` (`k`,`id`)".to_string())]);
    }

    #[test]
    fn requests_open_and_commit_the_transaction() {
        let r = chunk_requests(vec!["A".into(), "B".into()], "P".into(), 1 << 20, "");
        assert_eq!(r, vec![ChunkRequest::Sql("START TRANSACTION;A;B;P;COMMIT".to_string())]);
        let r = chunk_requests(vec!["AAAA".into(), "BBBB".into()], "P".into(), 24, "");
        assert_eq!(
            r,
            vec![
                ChunkRequest::Sql("START TRANSACTION;AAAA".to_string()),
                ChunkRequest::Sql("BBBB;P;COMMIT".to_string())
            ]
        );
    }
}
