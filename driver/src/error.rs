//! The binary's error type: what went wrong, and whether a retry can help.

use dtle_metadata::StoreError;
use dtle_mysql::MysqlError;

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error(transparent)]
    Mysql(Box<MysqlError>),

    #[error("position store: {0}")]
    Store(#[from] StoreError),

    #[error("transport: {0}")]
    Transport(#[from] dtle_transport::TransportError),

    #[error("kafka: {0}")]
    Kafka(Box<dtle_kafka::KafkaError>),

    #[error("{count} prerequisite check(s) failed:\n{list}", count = .0.len(), list = .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Prerequisites(Vec<MysqlError>),

    #[error("job {job:?}: {field}: {reason}")]
    Unsupported { job: String, field: String, reason: String },

    #[error("config field {field} = {value:?}: {reason}")]
    InvalidField { field: String, value: String, reason: String },

    /// Everything the start checks found wrong at once: values of the job that cannot work (each with its field
    /// path, value and fix) and, when the servers were checked too, the prerequisites they fail.
    #[error("{}", describe_problems(.job, .problems, .prerequisites))]
    Problems { job: String, problems: Vec<Problem>, prerequisites: Vec<MysqlError> },

    #[error(
        "job {job:?}: an apply on the target made no progress for {seconds} s (WatchdogTimeout); restarting from the \
         target's position — if the target is busy with something legitimate for that long, raise WatchdogTimeout"
    )]
    Stalled { job: String, seconds: u64 },

    /// `dtle run`/`dtle validate` of several jobs: the jobs that cannot start, each line naming its job (none was
    /// started).
    #[error("{} of {total} jobs cannot start (none was started):\n{}", .refused.len(), .refused.join("\n"))]
    JobsRefused { total: usize, refused: Vec<String> },

    #[error("{0}")]
    Other(String),
}

/// One value of a job that cannot work: where it is (`ReplicateDoDb[0].Tables[1].Where`), what it is, and why,
/// ending with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub value: String,
    pub reason: String,
}

impl Problem {
    pub fn new(field: impl Into<String>, value: impl Into<String>, reason: impl Into<String>) -> Self {
        Problem { field: field.into(), value: value.into(), reason: reason.into() }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {:?}: {}", self.field, self.value, self.reason)
    }
}

fn describe_problems(job: &str, problems: &[Problem], prerequisites: &[MysqlError]) -> String {
    let mut text = format!("job {job:?}: {} problem(s) in the job", problems.len());
    if !prerequisites.is_empty() {
        text.push_str(&format!(" and {} failed prerequisite check(s)", prerequisites.len()));
    }
    text.push(':');
    for p in problems {
        text.push_str(&format!("\n  - {p}"));
    }
    for e in prerequisites {
        text.push_str(&format!("\n  - {e}"));
    }
    text
}

impl From<MysqlError> for DriverError {
    fn from(e: MysqlError) -> Self {
        DriverError::Mysql(Box::new(e))
    }
}

impl From<dtle_kafka::KafkaError> for DriverError {
    fn from(e: dtle_kafka::KafkaError) -> Self {
        DriverError::Kafka(Box::new(e))
    }
}

impl DriverError {
    /// Worth a retry (the network, a restarting server); otherwise the job stops with the message.
    pub fn is_transient(&self) -> bool {
        match self {
            DriverError::Mysql(e) => e.is_transient(),
            DriverError::Store(e) => e.is_transient(),
            DriverError::Transport(e) => e.is_transient(),
            DriverError::Kafka(e) => e.is_transient(),
            DriverError::Stalled { .. } => true,
            _ => false,
        }
    }
}
