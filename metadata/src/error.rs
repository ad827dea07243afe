//! Errors of this crate: [`PositionError`] for parsing and comparing positions, [`StoreError`] for
//! checkpoint stores.

use std::path::PathBuf;

/// Longest input quoted back in an error message; longer inputs are cut (GTID sets can be huge).
const MAX_QUOTED_INPUT: usize = 200;

/// A position (GTID set, MariaDB GTID list, binlog file/pos) could not be parsed or compared.
/// Always definite: the text has to be fixed by whoever wrote it.
#[derive(Debug, thiserror::Error)]
pub enum PositionError {
    /// `input` is the text as given (cut when very long); `reason` names the bad piece and the expected form.
    #[error("invalid position {input:?}: {reason}")]
    Parse { input: String, reason: String },
    /// Two positions have nothing in common to compare (different GTID flavours and no common binlog file
    /// numbering, or no GTID on one side and no binlog file on the other).
    #[error(
        "cannot compare positions {left} and {right}: they share neither a GTID flavour nor a binlog file \
         sequence; give both positions a GTID set of the same flavour or binlog files of the same server"
    )]
    Incomparable { left: String, right: String },
}

impl PositionError {
    pub(crate) fn parse(input: &str, reason: impl Into<String>) -> Self {
        PositionError::Parse { input: quote_limited(input), reason: reason.into() }
    }
}

/// Cuts `s` to [`MAX_QUOTED_INPUT`] characters (on a char boundary), marking the cut with "...".
pub(crate) fn quote_limited(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED_INPUT) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}...", &s[..cut]),
    }
}

/// A checkpoint store operation failed.
///
/// [`StoreError::is_transient`] tells callers whether to retry (with backoff) or stop with the message.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing the store's files failed. Transient (disk full, permissions fixed later, ...).
    #[error("checkpoint store: cannot {action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "read", "write", "rename", "fsync directory".
        action: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A stored checkpoint cannot be decoded. Definite: the data will not fix itself.
    #[error(
        "checkpoint {path} is corrupt: {reason}; repair it or move it away (without it the job starts from \
         its configured position)"
    )]
    Corrupt {
        /// File path or key of the bad entry.
        path: String,
        reason: String,
    },
    /// Compare-and-set failed: somebody else wrote (or deleted) the checkpoint since this writer read it.
    /// Definite: the writer is stale and must stop.
    #[error(
        "checkpoint of job {job:?} was changed by another writer (expected version {expected}, found \
         {found}; 0 means absent): this task is stale and must stop; make sure only one copy of the job runs"
    )]
    Fenced { job: String, expected: u64, found: u64 },
    /// The job name cannot be used as a store key. Definite.
    #[error(
        "invalid job name {name:?}: {reason} (use 1 to 64 characters from A-Z a-z 0-9 _ . -, not starting \
         with '.')"
    )]
    InvalidJobName { name: String, reason: String },
    /// The store cannot be reached right now (network, leader election, task aborted). Transient.
    #[error("checkpoint store unavailable: {reason}")]
    Unavailable { reason: String },
    /// The store's configuration is unusable (bad address, unreadable TLS file, ...). Definite.
    #[error("checkpoint store: invalid {field} {value:?}: {reason}")]
    InvalidConfig {
        /// The setting, e.g. "consul address", "ca_file".
        field: String,
        /// The value as given (never a secret).
        value: String,
        reason: String,
    },
    /// The store refused access (Consul ACL). Definite: the token has to be fixed.
    #[error("checkpoint store at {address}: access denied: {reason}")]
    AccessDenied { address: String, reason: String },
    /// The store refused the request for another reason that retrying will not change (a 4xx answer, or
    /// something that is not the expected server at that address). Definite.
    #[error("checkpoint store at {address} refused the request: {reason}")]
    Rejected { address: String, reason: String },
}

impl StoreError {
    /// `true` when retrying later may succeed (Io, Unavailable); `false` for definite errors
    /// (Fenced, Corrupt, InvalidJobName, InvalidConfig, AccessDenied, Rejected) that need a person or a
    /// stop.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Io { .. } | StoreError::Unavailable { .. } => true,
            StoreError::Corrupt { .. }
            | StoreError::Fenced { .. }
            | StoreError::InvalidJobName { .. }
            | StoreError::InvalidConfig { .. }
            | StoreError::AccessDenied { .. }
            | StoreError::Rejected { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_classification() {
        let io =
            StoreError::Io { action: "read".into(), path: PathBuf::from("/x"), source: std::io::Error::other("boom") };
        assert!(io.is_transient());
        assert!(StoreError::Unavailable { reason: "x".into() }.is_transient());
        assert!(!StoreError::Corrupt { path: "p".into(), reason: "r".into() }.is_transient());
        assert!(!StoreError::Fenced { job: "j".into(), expected: 1, found: 2 }.is_transient());
        assert!(!StoreError::InvalidJobName { name: "n".into(), reason: "r".into() }.is_transient());
    }

    #[test]
    fn long_input_is_cut_in_messages() {
        let long = "x".repeat(1000);
        let e = PositionError::parse(&long, "bad");
        let msg = e.to_string();
        assert!(msg.len() < 300, "{msg}");
        assert!(msg.contains("..."));
        // multi-byte characters are cut on a boundary, not panicking
        let wide = "é".repeat(500);
        assert!(quote_limited(&wide).ends_with("..."));
    }

    #[test]
    fn messages_say_what_to_fix() {
        let e = StoreError::Fenced { job: "j1".into(), expected: 3, found: 4 };
        let m = e.to_string();
        assert!(m.contains("\"j1\"") && m.contains('3') && m.contains('4') && m.contains("stop"));
        let e = StoreError::InvalidJobName { name: "a/b".into(), reason: "'/' is not allowed".into() };
        assert!(e.to_string().contains("\"a/b\""));
    }
}
