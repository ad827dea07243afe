//! Verify results kept on the target: `dtle.verify_runs` (one row per run) and `dtle.verify_chunks` (one row per
//! chunk compared), read back by `dtle verify job.hcl --status`.

use dtle_mysql::error::MysqlError;
use dtle_mysql::schema::quote_str;
use mysql_async::prelude::*;
use mysql_async::Conn;

pub const RUNS_TABLE: &str = "`dtle`.`verify_runs`";
pub const CHUNKS_TABLE: &str = "`dtle`.`verify_chunks`";

const CREATE: &[&str] = &[
    "CREATE DATABASE IF NOT EXISTS `dtle`",
    "CREATE TABLE IF NOT EXISTS `dtle`.`verify_runs` (\
     run_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
     job_name VARCHAR(64) NOT NULL, \
     started_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
     finished_at TIMESTAMP(6) NULL DEFAULT NULL, \
     status VARCHAR(16) NOT NULL, \
     tables_checked INT UNSIGNED NOT NULL DEFAULT 0, \
     chunks_equal BIGINT UNSIGNED NOT NULL DEFAULT 0, \
     chunks_different BIGINT UNSIGNED NOT NULL DEFAULT 0, \
     chunks_not_verified BIGINT UNSIGNED NOT NULL DEFAULT 0, \
     rows_checked BIGINT UNSIGNED NOT NULL DEFAULT 0, \
     options VARCHAR(1024) NOT NULL DEFAULT '', \
     message TEXT NULL, \
     KEY job_run (job_name, run_id)\
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE IF NOT EXISTS `dtle`.`verify_chunks` (\
     run_id BIGINT UNSIGNED NOT NULL, \
     seq INT UNSIGNED NOT NULL, \
     source_table VARCHAR(200) NOT NULL, \
     target_table VARCHAR(200) NOT NULL, \
     chunk_no INT UNSIGNED NOT NULL, \
     key_range TEXT NOT NULL, \
     verdict VARCHAR(16) NOT NULL, \
     source_rows BIGINT UNSIGNED NOT NULL, \
     target_rows BIGINT UNSIGNED NOT NULL, \
     detail TEXT NULL, \
     PRIMARY KEY (run_id, seq)\
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
];

/// One compared chunk as stored.
#[derive(Clone, Debug)]
pub struct ChunkRow {
    pub source_table: String,
    pub target_table: String,
    pub chunk_no: u64,
    pub key_range: String,
    /// `equal`, `different` or `not_verified`.
    pub verdict: &'static str,
    pub source_rows: u64,
    pub target_rows: u64,
    pub detail: String,
}

/// Counts of a run.
#[derive(Clone, Debug, Default)]
pub struct RunCounts {
    pub tables: u64,
    pub equal: u64,
    pub different: u64,
    pub not_verified: u64,
    pub rows: u64,
}

pub struct Store {
    conn: Conn,
    pub run_id: u64,
    seq: u64,
}

impl Store {
    /// Creates the tables when missing and records a new run (`running`).
    pub async fn start(mut conn: Conn, job: &str, options: &str) -> Result<Store, MysqlError> {
        for sql in CREATE {
            conn.query_drop(*sql)
                .await
                .map_err(|e| MysqlError::query(format!("creating {RUNS_TABLE} / {CHUNKS_TABLE} on the target"), e))?;
        }
        conn.exec_drop(
            format!("INSERT INTO {RUNS_TABLE} (job_name, status, options) VALUES (?, 'running', ?)"),
            (job, options),
        )
        .await
        .map_err(|e| MysqlError::query(format!("recording the run in {RUNS_TABLE}"), e))?;
        let run_id = conn.last_insert_id().unwrap_or(0);
        Ok(Store { conn, run_id, seq: 0 })
    }

    pub async fn chunks(&mut self, rows: &[ChunkRow]) -> Result<(), MysqlError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut sql = format!(
            "INSERT INTO {CHUNKS_TABLE} (run_id, seq, source_table, target_table, chunk_no, key_range, verdict, source_rows, target_rows, detail) VALUES "
        );
        for (i, r) in rows.iter().enumerate() {
            self.seq += 1;
            sql.push_str(&format!(
                "{}({}, {}, {}, {}, {}, {}, '{}', {}, {}, {})",
                if i > 0 { "," } else { "" },
                self.run_id,
                self.seq,
                quote_str(&r.source_table),
                quote_str(&r.target_table),
                r.chunk_no,
                quote_str(&r.key_range),
                r.verdict,
                r.source_rows,
                r.target_rows,
                if r.detail.is_empty() { "NULL".to_string() } else { quote_str(&r.detail) }
            ));
        }
        self.conn
            .query_drop(sql)
            .await
            .map_err(|e| MysqlError::query(format!("recording chunk results in {CHUNKS_TABLE}"), e))
    }

    pub async fn finish(mut self, status: &str, counts: &RunCounts, message: &str) -> Result<(), MysqlError> {
        let result = self
            .conn
            .exec_drop(
                format!(
                    "UPDATE {RUNS_TABLE} SET finished_at = CURRENT_TIMESTAMP(6), status = ?, tables_checked = ?, chunks_equal = ?, \
                     chunks_different = ?, chunks_not_verified = ?, rows_checked = ?, message = ? WHERE run_id = ?"
                ),
                (status, counts.tables, counts.equal, counts.different, counts.not_verified, counts.rows, message, self.run_id),
            )
            .await
            .map_err(|e| MysqlError::query(format!("recording the end of the run in {RUNS_TABLE}"), e));
        let _ = self.conn.disconnect().await;
        result
    }
}

/// The last run of a job as text (the run and its chunks that were not equal) and its status; `None` when the
/// target has no run of the job.
pub async fn last_run(conn: &mut Conn, job: &str) -> Result<Option<(String, String)>, MysqlError> {
    type RunRow = (u64, String, Option<String>, String, u64, u64, u64, u64, u64, String, Option<String>);
    let run: Option<RunRow> = match conn
        .exec_first(
            format!(
                "SELECT run_id, CAST(started_at AS CHAR), CAST(finished_at AS CHAR), status, tables_checked, chunks_equal, \
                 chunks_different, chunks_not_verified, rows_checked, options, message FROM {RUNS_TABLE} \
                 WHERE job_name = ? ORDER BY run_id DESC LIMIT 1"
            ),
            (job,),
        )
        .await
    {
        Ok(r) => r,
        Err(mysql_async::Error::Server(e)) if e.code == 1146 || e.code == 1049 => None,
        Err(e) => return Err(MysqlError::query(format!("reading {RUNS_TABLE}"), e)),
    };
    let Some((run_id, started, finished, status, tables, equal, different, not_verified, rows, options, message)) = run
    else {
        return Ok(None);
    };
    let mut text = format!(
        "last verify run of job {job:?}: run {run_id}, started {started} UTC, {}\n  status {status}: {tables} table(s), \
         {equal} chunk(s) equal, {different} different, {not_verified} not verified, {rows} source rows; options: {options}\n",
        finished.map_or("not finished".to_string(), |f| format!("finished {f} UTC"))
    );
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        text.push_str(&format!("  {m}\n"));
    }
    type ChunkLine = (String, String, u64, String, String, u64, u64, Option<String>);
    let chunks: Vec<ChunkLine> = conn
        .exec(
            format!(
                "SELECT source_table, target_table, chunk_no, key_range, verdict, source_rows, target_rows, detail FROM {CHUNKS_TABLE} \
                 WHERE run_id = ? AND verdict <> 'equal' ORDER BY seq LIMIT 1000"
            ),
            (run_id,),
        )
        .await
        .map_err(|e| MysqlError::query(format!("reading {CHUNKS_TABLE}"), e))?;
    for (source, target, no, range, verdict, source_rows, target_rows, detail) in chunks {
        text.push_str(&format!(
            "  {source} -> {target} chunk {no} {range}: {verdict} (source rows {source_rows}, target rows {target_rows}){}\n",
            detail.map(|d| format!(": {d}")).unwrap_or_default()
        ));
    }
    Ok(Some((text, status)))
}
