//! The crate's one error type. Every error says whether it is transient (retry with backoff, then let the
//! scheduler restart the task) or definite (stop with a message that says what to fix).

use crate::binlog::rows::DecodeError;

#[derive(Debug, thiserror::Error)]
pub enum MysqlError {
    #[error("cannot connect to the {role} MySQL at {addr}: {source}. Check that the server runs, that Host/Port in {field} are right and that the network allows it")]
    Connect { role: &'static str, addr: String, field: &'static str, source: mysql_async::Error },

    #[error("the {role} MySQL at {addr} refused user {user:?}: {source}. Check User/Password in {field} and the user's host grants")]
    AccessDenied { role: &'static str, addr: String, user: String, field: &'static str, source: mysql_async::Error },

    #[error("{context}: {source}")]
    Query { context: String, source: mysql_async::Error },

    #[error("{role} MySQL at {addr}: {setting} is {actual}, it must be {expected}. Fix: {fix}")]
    Prerequisite { role: &'static str, addr: String, setting: String, actual: String, expected: String, fix: String },

    #[error("the start position {requested} is no longer in the source's binlog ({available}). The source purged it: start the job again with an empty Gtid for a new full copy, or give a position the source still has")]
    PositionPurged { requested: String, available: String },

    #[error("the start position {requested} {problem}. {fix}")]
    StartPositionInvalid { requested: String, problem: String, fix: String },

    #[error("cannot decode binlog event at {file}:{pos} (table {table}): {source}")]
    Decode { file: String, pos: u64, table: String, source: DecodeError },

    #[error("the source logged a data change as a statement, not as rows (binlog_format=STATEMENT or MIXED in the session that ran it): {statement:?} writes the replicated table(s) {tables} at binlog {file}:{pos} ({gtid}). dtle cannot replay a statement exactly, so it stops rather than leave the target without this change. Fix: make every session that writes replicated tables use ROW format (binlog_format=ROW globally, and no SET SESSION binlog_format=STATEMENT/MIXED in applications); then either apply the same change on the target by hand and restart with SkipUnreplayableDdl = true in the src task config (it goes past such statements, each one logged; remove it afterwards), or copy the tables again: `dtle positions reset <job file>`, then run the job with an empty Gtid and DropTableIfExists = true")]
    StatementDml { statement: String, tables: String, file: String, pos: u64, gtid: String },

    #[error("binlog stream from the source failed at {file}:{pos}: {reason}")]
    Stream { file: String, pos: u64, reason: String, transient: bool },

    #[error("conflict applying to target table {table}: {detail}. The target differs from the source; dtle does not overwrite rows it did not expect. Compare the table, fix the row (or start the job again with a full copy)")]
    Conflict { table: String, detail: String },

    #[error("table {table} differs between source and target: {detail}")]
    SchemaMismatch { table: String, detail: String },

    #[error("{what} is not supported: {fix}")]
    Unsupported { what: String, fix: String },

    #[error("invalid value {value:?} for {field}: {reason}")]
    InvalidConfig { field: String, value: String, reason: String },
}

pub type Result<T, E = MysqlError> = std::result::Result<T, E>;

/// MySQL/MariaDB server error codes the engine reacts to.
pub mod codes {
    pub const ACCESS_DENIED: u16 = 1045;
    pub const DB_ACCESS_DENIED: u16 = 1044;
    pub const DUP_ENTRY: u16 = 1062;
    pub const LOCK_DEADLOCK: u16 = 1213;
    pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
    pub const SOURCE_FATAL_ERROR_READING_BINLOG: u16 = 1236;
    pub const NO_REFERENCED_ROW: u16 = 1452;
    pub const ROW_IS_REFERENCED: u16 = 1451;
}

impl MysqlError {
    /// A row was not as expected on the target (missing, duplicate key, foreign key): the ordering of changes
    /// matters, or the target differs from the source.
    pub fn is_row_conflict(&self) -> bool {
        matches!(self, MysqlError::Conflict { .. })
    }

    /// Transient errors are worth a retry: the network, a restarting server, a deadlock.
    pub fn is_transient(&self) -> bool {
        match self {
            MysqlError::Connect { .. } => true,
            MysqlError::Query { source, .. } => is_transient_driver_error(source),
            MysqlError::Stream { transient, .. } => *transient,
            _ => false,
        }
    }

    pub fn query(context: impl Into<String>, source: mysql_async::Error) -> Self {
        MysqlError::Query { context: context.into(), source }
    }

    /// The server error code, when this error came from the server.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            MysqlError::Query { source: mysql_async::Error::Server(e), .. } => Some(e.code),
            _ => None,
        }
    }
}

/// Network and server-restart failures are transient; SQL errors are not (except deadlocks and lock waits).
pub fn is_transient_driver_error(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => true,
        mysql_async::Error::Server(s) => matches!(
            s.code,
            codes::LOCK_DEADLOCK | codes::LOCK_WAIT_TIMEOUT | 1053 /* server shutdown */ | 1927 /* connection killed */ | 2013
        ),
        _ => false,
    }
}
