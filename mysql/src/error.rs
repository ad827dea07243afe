//! The crate's one error type. Every error says whether it is transient (retry with backoff, then let the
//! scheduler restart the task) or definite (stop with a message that says what to fix).

use crate::binlog::rows::DecodeError;

/// Where in the source's binlog something happened: the file and position of the event, the GTID of its
/// transaction and the table of its rows, when there are ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BinlogAt {
    pub file: String,
    pub pos: u64,
    pub gtid: String,
    pub table: String,
}

impl BinlogAt {
    pub fn file_pos(file: impl Into<String>, pos: u64) -> BinlogAt {
        BinlogAt { file: file.into(), pos, ..Default::default() }
    }
}

impl std::fmt::Display for BinlogAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)?;
        if !self.gtid.is_empty() {
            write!(f, ", GTID {}", self.gtid)?;
        }
        if !self.table.is_empty() {
            write!(f, ", table {}", self.table)?;
        }
        Ok(())
    }
}

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

    #[error("cannot decode binlog event at {at}: {source}")]
    Decode { at: BinlogAt, source: DecodeError },

    #[error("the source logged a data change as a statement, not as rows (binlog_format=STATEMENT or MIXED in the session that ran it): {statement:?} writes the replicated table(s) {tables} at binlog {file}:{pos} ({gtid}). dtle cannot replay a statement exactly, so it stops rather than leave the target without this change. Fix: make every session that writes replicated tables use ROW format (binlog_format=ROW globally, and no SET SESSION binlog_format=STATEMENT/MIXED in applications); then either apply the same change on the target by hand and restart with SkipUnreplayableDdl = true in the src task config (it goes past such statements, each one logged; remove it afterwards), or copy the tables again: `dtle positions reset <job file>`, then run the job with an empty Gtid and DropTableIfExists = true")]
    StatementDml { statement: String, tables: String, file: String, pos: u64, gtid: String },

    #[error("binlog stream from the source failed at {at}: {reason}")]
    Stream { at: BinlogAt, reason: String, transient: bool },

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
    /// `The MariaDB server is running with the --read-only option so it cannot execute this statement` (also
    /// used for other options).
    pub const OPTION_PREVENTS_STATEMENT: u16 = 1290;
    /// `Running in read-only mode`.
    pub const READ_ONLY_MODE: u16 = 1836;
}

impl MysqlError {
    /// A row was not as expected on the target (missing, duplicate key, foreign key): the ordering of changes
    /// matters, or the target differs from the source.
    pub fn is_row_conflict(&self) -> bool {
        matches!(self, MysqlError::Conflict { .. })
    }

    /// Transient errors are worth a retry: the network, a restarting server, a deadlock, and the kinds of
    /// [`MysqlError::bounded_retry`] (retried only for a while).
    pub fn is_transient(&self) -> bool {
        match self {
            MysqlError::Connect { .. } => true,
            MysqlError::Query { source, .. } => is_transient_driver_error(source) || is_read_only_error(source),
            MysqlError::Stream { transient, .. } => *transient,
            _ => false,
        }
    }

    /// Failures that usually pass within seconds or minutes but may also be a lasting mistake: retried with
    /// backoff, and only for a bounded time of consecutive failures of the kind.
    pub fn bounded_retry(&self) -> Option<BoundedRetry> {
        match self {
            MysqlError::Connect { source, .. } if is_host_not_found(source) => Some(BoundedRetry::HostNotFound),
            MysqlError::Query { source, .. } if is_read_only_error(source) => Some(BoundedRetry::ReadOnly),
            _ => None,
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

/// A kind of failure retried only for a bounded time (see [`MysqlError::bounded_retry`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundedRetry {
    /// The server refuses writes (`read_only` / `super_read_only`, ERROR 1290 or 1836): a failover in progress.
    ReadOnly,
    /// The host name does not resolve: DNS not updated yet after a move, or a wrong `Host`.
    HostNotFound,
}

impl BoundedRetry {
    /// What is going on, for the log line of each retry.
    pub fn describe(self) -> &'static str {
        match self {
            BoundedRetry::ReadOnly => "the server is read-only (read_only/super_read_only); a failover in progress?",
            BoundedRetry::HostNotFound => "the host name does not resolve (DNS)",
        }
    }

    /// What to check once it lasted too long.
    pub fn what_to_check(self) -> &'static str {
        match self {
            BoundedRetry::ReadOnly => "Check that the job's target is the writable primary (SELECT @@read_only, @@global.read_only on it; after a failover point the dest ConnectionConfig Host/Port at the new primary), or SET GLOBAL read_only = OFF if it should take writes",
            BoundedRetry::HostNotFound => "Check Host in the job's ConnectionConfig (a typo?) and that DNS resolves it on this machine (getent hosts <Host>)",
        }
    }
}

/// ERROR 1290 for `--read-only`/`--super-read-only` (the code is shared with other options such as
/// `--secure-file-priv`, so the message decides) or 1836 (read-only mode).
pub fn is_read_only_error(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Server(s) => {
            s.code == codes::READ_ONLY_MODE
                || (s.code == codes::OPTION_PREVENTS_STATEMENT && s.message.to_ascii_lowercase().contains("read-only"))
        }
        _ => false,
    }
}

/// A connection that failed because the host name does not resolve (getaddrinfo's messages on Linux, macOS and
/// musl).
pub fn is_host_not_found(e: &mysql_async::Error) -> bool {
    let mysql_async::Error::Io(_) = e else { return false };
    let text = e.to_string().to_ascii_lowercase();
    [
        "failed to lookup address information",
        "name or service not known",
        "no address associated with hostname",
        "nodename nor servname provided",
        "name does not resolve",
        "temporary failure in name resolution",
    ]
    .iter()
    .any(|m| text.contains(m))
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

#[cfg(test)]
mod tests {
    #[test]
    fn binlog_errors_name_the_file_position_gtid_and_table() {
        let at = BinlogAt {
            file: "mariadb-bin.000003".into(),
            pos: 1234,
            gtid: "0-1-42".into(),
            table: "shop.orders".into(),
        };
        let e = MysqlError::Stream { at: at.clone(), reason: "boom".into(), transient: false }.to_string();
        assert_eq!(
            e,
            "binlog stream from the source failed at mariadb-bin.000003:1234, GTID 0-1-42, table shop.orders: boom"
        );
        // Outside a transaction and a table, only the place.
        assert_eq!(BinlogAt::file_pos("b.000001", 4).to_string(), "b.000001:4");
    }

    use super::*;

    fn server_error(code: u16, message: &str) -> mysql_async::Error {
        mysql_async::Error::Server(mysql_async::ServerError { code, message: message.into(), state: "HY000".into() })
    }

    #[test]
    fn read_only_and_unresolvable_hosts_are_retried_for_a_bounded_time() {
        let read_only = MysqlError::query(
            "applying a transaction group on the target",
            server_error(
                1290,
                "The MariaDB server is running with the --read-only option so it cannot execute this statement",
            ),
        );
        assert!(read_only.is_transient());
        assert_eq!(read_only.bounded_retry(), Some(BoundedRetry::ReadOnly));
        let super_read_only = MysqlError::query(
            "x",
            server_error(
                1290,
                "The MySQL server is running with the --super-read-only option so it cannot execute this statement",
            ),
        );
        assert_eq!(super_read_only.bounded_retry(), Some(BoundedRetry::ReadOnly));
        assert_eq!(
            MysqlError::query("x", server_error(1836, "Running in read-only mode")).bounded_retry(),
            Some(BoundedRetry::ReadOnly)
        );
        // The same code for another option is not a passing state.
        let secure_file = MysqlError::query(
            "x",
            server_error(
                1290,
                "The MariaDB server is running with the --secure-file-priv option so it cannot execute this statement",
            ),
        );
        assert!(!secure_file.is_transient());
        assert_eq!(secure_file.bounded_retry(), None);

        let connect = |message: &str| MysqlError::Connect {
            role: "target",
            addr: "nosuch.invalid:3306".into(),
            field: "dest task ConnectionConfig",
            source: mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::other(message.to_string()))),
        };
        let not_found = connect("failed to lookup address information: Name or service not known");
        assert!(not_found.is_transient());
        assert_eq!(not_found.bounded_retry(), Some(BoundedRetry::HostNotFound));
        let refused = connect("Connection refused (os error 111)");
        assert!(refused.is_transient());
        assert_eq!(refused.bounded_retry(), None, "a server restarting is retried without a bound");
    }
}
