//! Job-file errors. Each message names where the problem is (file and line, or job, task and config
//! field path), what was found and how to fix it. No message ever carries a password.

use std::fmt;

/// "job "x", task "src"" prefix shared by most messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub job: String,
    pub task: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job \"{}\", task \"{}\"", self.job, self.task)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read job file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{file}:{line}:{column}: HCL syntax error: {message}")]
    HclSyntax { file: String, line: usize, column: usize, message: String },

    #[error("{file}:{line}:{column}: JSON syntax error: {message}")]
    JsonSyntax { file: String, line: usize, column: usize, message: String },

    /// The file is valid HCL/JSON but not a Nomad job of the expected shape.
    #[error("{file}: {message}")]
    JobShape { file: String, message: String },

    #[error("{at}: config field {path}: cannot evaluate HCL expression: {message}")]
    HclExpression { at: Box<Location>, path: String, message: String },

    #[error(
        "job \"{job}\": task \"{task}\" has no dtle role: name the task \"src\" or \"source\" for the \
         extractor, or \"dest\", \"dst\" or \"destination\" for the applier"
    )]
    BadTaskName { job: String, task: String },

    #[error(
        "job \"{job}\": tasks \"{first}\" and \"{second}\" both have the {role} role: a job has at \
         most one src task and one dest task"
    )]
    DuplicateRole { job: String, role: &'static str, first: String, second: String },

    #[error("job \"{job}\" has no dtle task: add a task \"src\" and/or a task \"dest\" with driver = \"dtle\"")]
    NoTasks { job: String },

    #[error("{at}: unknown config field {path}{}", suggestion_text(.suggestion, .valid))]
    UnknownField {
        at: Box<Location>,
        /// Full path of the unknown field, e.g. `ReplicateDoDb[0].TableNme`.
        path: String,
        suggestion: Option<String>,
        /// Valid names at that level (used when there is no close match).
        valid: Vec<String>,
    },

    #[error("{at}: config field {path}: expected {expected}, got {given}")]
    WrongType { at: Box<Location>, path: String, expected: String, given: String },

    /// A value that parsed but breaks one of dtle's rules.
    #[error("{at}: config field {path}: {message}")]
    Invalid { at: Box<Location>, path: String, message: String },

    #[error(
        "job \"{job}\": the job name is {len} characters long; dtle allows at most {max} (it is \
         stored in a varchar(64) column): use a shorter name"
    )]
    JobNameTooLong { job: String, len: usize, max: usize },

    /// The tasks, taken together, do not say where to read from or where to write to.
    #[error("job \"{job}\": {message}")]
    Unresolved { job: String, message: String },

    /// Fallback for a serde error the field walk did not catch first.
    #[error("{at}: {message}")]
    Decode { at: Box<Location>, message: String },
}

fn suggestion_text(suggestion: &Option<String>, valid: &[String]) -> String {
    match suggestion {
        Some(s) => format!("; did you mean \"{s}\"?"),
        None if valid.is_empty() => String::new(),
        None => format!("; valid fields here: {}", valid.join(", ")),
    }
}

impl ConfigError {
    /// Config errors never go away by retrying: the job file has to change.
    pub fn is_definite(&self) -> bool {
        true
    }

    pub(crate) fn invalid(job: &str, task: &str, path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            at: Box::new(Location { job: job.to_string(), task: task.to_string() }),
            path: path.into(),
            message: message.into(),
        }
    }
}
