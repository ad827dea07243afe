//! Consistent reads: a source snapshot with the binlog position it corresponds to, and a target snapshot with the
//! job's position row (written in the same target transactions as the rows, so the two agree).

use std::time::Duration;

use dtle_metadata::{GtidState, MariadbGtidList, MysqlGtidSet, Position};
use dtle_mysql::applier::{APPLIED_TABLE, POSITION_TABLE};
use dtle_mysql::conn::{server_info, Endpoint, Flavor};
use dtle_mysql::error::MysqlError;
use dtle_mysql::schema::ColumnMeta;
use dtle_mysql::snapshot::{convert_row, DATA_SESSION_SETUP};
use dtle_mysql::snapshot_apply::CATCHUP_TABLE;
use dtle_mysql::Value;
use mysql_async::prelude::*;
use mysql_async::Conn;

/// `START TRANSACTION` of every read: a consistent snapshot, no locks, nothing written.
const BEGIN: &str = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY";

/// Server error codes: no such table / no such database.
const NO_SUCH_TABLE: u16 = 1146;
const NO_SUCH_DATABASE: u16 = 1049;

/// A connection that reads rows in consistent snapshots (UTC, raw string bytes, REPEATABLE READ).
pub struct Reader {
    conn: Conn,
    pub flavor: Flavor,
}

impl Reader {
    pub async fn connect(endpoint: &Endpoint) -> Result<Reader, MysqlError> {
        let mut setup: Vec<&str> = DATA_SESSION_SETUP.to_vec();
        setup.push("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ");
        let mut conn = endpoint.connect(&setup).await?;
        let flavor = server_info(&mut conn).await?.flavor;
        Ok(Reader { conn, flavor })
    }

    pub fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    /// Opens a snapshot on the source and returns the binlog position it corresponds to.
    ///
    /// MariaDB: exactly the snapshot's position (`binlog_snapshot_file` / `binlog_snapshot_position`, taken
    /// atomically with the snapshot), without its GTID (see [`Reader::gtid_of`]). MySQL has no such status: the
    /// position read right after the snapshot started (`gtid_executed`, `SHOW MASTER STATUS`), which includes at
    /// least everything the snapshot sees (see the module doc of `verify`).
    pub async fn begin_source(&mut self) -> Result<Position, MysqlError> {
        let q = |ctx: &'static str| move |e| MysqlError::query(ctx, e);
        self.conn.query_drop(BEGIN).await.map_err(q("starting a consistent snapshot on the source"))?;
        match self.flavor {
            Flavor::Mariadb => {
                let (file, pos) = dtle_mysql::snapshot::mariadb_snapshot_position(&mut self.conn).await?;
                Ok(Position { gtid: None, binlog_file: file, binlog_pos: pos })
            }
            Flavor::Mysql => {
                let gtid: Option<String> = self
                    .conn
                    .query_first("SELECT CAST(@@GLOBAL.gtid_executed AS CHAR)")
                    .await
                    .map_err(q("reading gtid_executed"))?;
                let row: Option<mysql_async::Row> = match self.conn.query_first("SHOW MASTER STATUS").await {
                    Ok(r) => r,
                    Err(_) => {
                        self.conn.query_first("SHOW BINARY LOG STATUS").await.map_err(q("SHOW BINARY LOG STATUS"))?
                    }
                };
                let (file, pos) = row
                    .map(|r| {
                        let file: Option<Vec<u8>> = r.get(0);
                        let pos: Option<u64> = r.get(1);
                        (String::from_utf8_lossy(&file.unwrap_or_default()).into_owned(), pos.unwrap_or(0))
                    })
                    .unwrap_or_default();
                let set: Option<MysqlGtidSet> =
                    gtid.and_then(|g| g.parse().ok()).filter(|s: &MysqlGtidSet| !s.is_empty());
                Ok(Position { gtid: set.map(GtidState::Mysql), binlog_file: file, binlog_pos: pos })
            }
        }
    }

    /// The MariaDB GTID position of a binlog file/pos (`BINLOG_GTID_POS`, which reads the binlog file up to it:
    /// used only when file/pos cannot be compared with the job's position).
    pub async fn gtid_of(&mut self, position: &Position) -> Result<Option<GtidState>, MysqlError> {
        if self.flavor != Flavor::Mariadb || position.binlog_file.is_empty() {
            return Ok(None);
        }
        let gtid: Option<Option<String>> = self
            .conn
            .exec_first(
                "SELECT CAST(BINLOG_GTID_POS(?, ?) AS CHAR)",
                (position.binlog_file.as_str(), position.binlog_pos),
            )
            .await
            .map_err(|e| MysqlError::query("reading BINLOG_GTID_POS of the snapshot", e))?;
        Ok(gtid.flatten().and_then(|g| g.parse::<MariadbGtidList>().ok()).map(GtidState::Mariadb))
    }

    /// Opens a snapshot on the target and reads the job's state in it.
    pub async fn begin_target(&mut self, job: &str) -> Result<TargetState, MysqlError> {
        self.conn
            .query_drop(BEGIN)
            .await
            .map_err(|e| MysqlError::query("starting a consistent snapshot on the target", e))?;
        let row: Option<(String, String, String, String, u64)> = self
            .conn
            .exec_first(
                format!(
                    "SELECT stage, flavor, gtid_set, binlog_file, binlog_pos FROM {POSITION_TABLE} WHERE job_name = ?"
                ),
                (job,),
            )
            .await
            .or_else(missing_table_is_none)
            .map_err(|e| MysqlError::query(format!("reading the job's position from {POSITION_TABLE}"), e))?;
        let position =
            row.map(|(stage, flavor, gtid, file, pos)| (stage, position_from_row(&flavor, &gtid, file, pos)));
        let applied_sql = format!("SELECT COUNT(*) FROM {APPLIED_TABLE} WHERE job_name = ?");
        let applied: Option<u64> = self
            .conn
            .exec_first(applied_sql, (job,))
            .await
            .or_else(missing_table_is_none)
            .map_err(|e| MysqlError::query(format!("reading {APPLIED_TABLE}"), e))?;
        let catchup_sql = format!("SELECT COUNT(*) FROM {CATCHUP_TABLE} WHERE job_name = ?");
        let catchup: Option<u64> = self
            .conn
            .exec_first(catchup_sql, (job,))
            .await
            .or_else(missing_table_is_none)
            .map_err(|e| MysqlError::query(format!("reading {CATCHUP_TABLE}"), e))?;
        Ok(TargetState {
            stage: position.as_ref().map(|(s, _)| s.clone()),
            position: position.map(|(_, p)| p),
            applied_pending: applied.unwrap_or(0),
            catching_up: catchup.unwrap_or(0) > 0,
        })
    }

    /// Ends the snapshot.
    pub async fn end(&mut self) -> Result<(), MysqlError> {
        self.conn.query_drop("COMMIT").await.map_err(|e| MysqlError::query("ending a snapshot", e))
    }

    /// Rows of a query, typed by `columns` (binary protocol: exact FLOAT/DOUBLE, typed temporals).
    pub async fn rows(&mut self, sql: &str, columns: &[ColumnMeta], what: &str) -> Result<Vec<Vec<Value>>, MysqlError> {
        let rows: Vec<mysql_async::Row> =
            self.conn.exec(sql, ()).await.map_err(|e| MysqlError::query(format!("reading {what}"), e))?;
        Ok(rows.into_iter().map(|r| convert_row(r.unwrap_raw(), columns)).collect())
    }

    pub async fn close(self) {
        let _ = self.conn.disconnect().await;
    }
}

/// A position row's columns (`flavor`, `gtid_set`, `binlog_file`, `binlog_pos`) as a position; a GTID that does not
/// parse is left out (file/pos still compare).
pub fn position_from_row(flavor: &str, gtid: &str, binlog_file: String, binlog_pos: u64) -> Position {
    let gtid = match flavor {
        "mysql" if !gtid.trim().is_empty() => gtid.parse().ok().map(GtidState::Mysql),
        "mariadb" => gtid.parse().ok().map(GtidState::Mariadb),
        _ => None,
    };
    Position { gtid, binlog_file, binlog_pos }
}

fn missing_table_is_none<T>(e: mysql_async::Error) -> Result<Option<T>, mysql_async::Error> {
    match &e {
        mysql_async::Error::Server(s) if s.code == NO_SUCH_TABLE || s.code == NO_SUCH_DATABASE => Ok(None),
        _ => Err(e),
    }
}

/// What the target says about the job inside one snapshot.
#[derive(Clone, Debug, Default)]
pub struct TargetState {
    /// `job_stage_full` / `job_stage_incr`; `None` when the target has no position row for the job.
    pub stage: Option<String>,
    pub position: Option<Position>,
    /// Source transactions committed by parallel partitions whose position row is not written yet: the target
    /// then holds more than its position says, so it is read again a moment later.
    pub applied_pending: u64,
    /// A resumed full copy's idempotent catch-up is still running: the target is not yet at any one source position.
    pub catching_up: bool,
}

impl TargetState {
    /// Why the target, in this snapshot, cannot be compared with a source snapshot at `need` (`None`: it can).
    pub fn not_ready(&self, need: &Position) -> Option<String> {
        let Some(position) = &self.position else {
            return Some(format!("the target has no position row for the job in {POSITION_TABLE}"));
        };
        if self.stage.as_deref() != Some("job_stage_incr") {
            return Some(format!("the job is still in its full copy (stage {})", self.stage.as_deref().unwrap_or("?")));
        }
        if self.catching_up {
            return Some("the job is catching up after a resumed full copy".into());
        }
        if self.applied_pending > 0 {
            return Some(format!(
                "{} parallel-applied transaction(s) wait for their position row",
                self.applied_pending
            ));
        }
        match covers(position, need) {
            Some(true) => None,
            Some(false) => Some(format!(
                "the target's position {} has not reached the source snapshot's {}",
                dtle_mysql::applier::describe(position),
                dtle_mysql::applier::describe(need)
            )),
            None => Some(format!(
                "the target's position {} cannot be compared with the source snapshot's {}",
                dtle_mysql::applier::describe(position),
                dtle_mysql::applier::describe(need)
            )),
        }
    }
}

/// Whether `have` includes everything up to `need`: `Some(true)` / `Some(false)`, `None` when they cannot be
/// compared. GTIDs when both have GTIDs of one flavour (a MariaDB domain missing from `have` falls back to
/// file/pos), else binlog file/pos of the same server (same base name).
pub fn covers(have: &Position, need: &Position) -> Option<bool> {
    let by_file = || {
        let strip = |p: &Position| Position { gtid: None, ..p.clone() };
        match strip(need).try_partial_cmp(&strip(have)) {
            Ok(Some(order)) => Some(order != std::cmp::Ordering::Greater),
            _ => None,
        }
    };
    match (&have.gtid, &need.gtid) {
        (Some(GtidState::Mysql(h)), Some(GtidState::Mysql(n))) => Some(n.is_subset_of(h)),
        (Some(GtidState::Mariadb(h)), Some(GtidState::Mariadb(n))) => {
            if n.is_reached_by(h) {
                Some(true)
            } else if n.iter().all(|(domain, _, _)| h.get(domain).is_some()) {
                Some(false)
            } else {
                by_file().or(Some(false))
            }
        }
        _ => by_file(),
    }
}

/// Sleeps a little more each time (20 ms .. 500 ms).
pub async fn backoff(attempt: u32) {
    let ms = (20u64 << attempt.min(5)).min(500);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_pos(file: &str, pos: u64) -> Position {
        Position { gtid: None, binlog_file: file.into(), binlog_pos: pos }
    }

    fn mariadb(list: &str, file: &str, pos: u64) -> Position {
        Position { gtid: Some(GtidState::Mariadb(list.parse().unwrap())), binlog_file: file.into(), binlog_pos: pos }
    }

    #[test]
    fn positions_are_covered_by_file_pos_or_gtids() {
        assert_eq!(covers(&file_pos("b.000002", 4), &file_pos("b.000001", 900)), Some(true));
        assert_eq!(covers(&file_pos("b.000001", 900), &file_pos("b.000001", 900)), Some(true));
        assert_eq!(covers(&file_pos("b.000001", 899), &file_pos("b.000001", 900)), Some(false));
        assert_eq!(covers(&file_pos("other.000001", 899), &file_pos("b.000001", 900)), None);
        // The target keeps GTID and file/pos; the MariaDB snapshot gives file/pos: compared by file/pos.
        assert_eq!(covers(&mariadb("0-1-10", "b.000001", 900), &file_pos("b.000001", 800)), Some(true));
        assert_eq!(covers(&mariadb("0-1-10", "b.000001", 900), &mariadb("0-1-11", "b.000001", 950)), Some(false));
        assert_eq!(covers(&mariadb("0-1-10,1-1-5", "x", 0), &mariadb("0-1-10", "b.000001", 950)), Some(true));
        // A domain the target never saw: file/pos decides.
        assert_eq!(covers(&mariadb("0-1-10", "b.000001", 990), &mariadb("0-1-10,7-1-3", "b.000001", 950)), Some(true));
        let mysql = |s: &str| Position { gtid: Some(GtidState::Mysql(s.parse().unwrap())), ..Default::default() };
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        assert_eq!(covers(&mysql(&format!("{uuid}:1-10")), &mysql(&format!("{uuid}:1-9"))), Some(true));
        assert_eq!(covers(&mysql(&format!("{uuid}:1-8")), &mysql(&format!("{uuid}:1-9"))), Some(false));
    }

    #[test]
    fn a_target_that_is_not_ready_says_why() {
        let need = file_pos("b.000001", 900);
        let mut t = TargetState::default();
        assert!(t.not_ready(&need).unwrap().contains("no position row"));
        t.position = Some(file_pos("b.000001", 1000));
        t.stage = Some("job_stage_full".into());
        assert!(t.not_ready(&need).unwrap().contains("full copy"));
        t.stage = Some("job_stage_incr".into());
        assert_eq!(t.not_ready(&need), None);
        t.applied_pending = 2;
        assert!(t.not_ready(&need).unwrap().contains("parallel"));
        t.applied_pending = 0;
        t.position = Some(file_pos("b.000001", 10));
        let why = t.not_ready(&need).unwrap();
        assert!(why.contains("b.000001:10") && why.contains("b.000001:900"), "{why}");
    }
}
