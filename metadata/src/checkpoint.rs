//! [`Checkpoint`] (a job's acknowledged position and stage) and the [`CheckpointStore`] trait that keeps
//! it with compare-and-set versioning.

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::position::Position;

/// Longest job name a store accepts.
pub const MAX_JOB_NAME_LEN: usize = 64;

/// The stage a job is in, serialized as dtle's words (Consul `dtle/<job>/JobStage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStage {
    /// Full copy (snapshot) in progress.
    #[serde(rename = "job_stage_full")]
    Snapshot,
    /// Streaming the binlog.
    #[serde(rename = "job_stage_incr")]
    Incremental,
    #[serde(rename = "job_stage_stopped")]
    Stopped,
    #[serde(rename = "job_stage_failed")]
    Failed,
}

impl JobStage {
    /// dtle's word for the stage (as serialized): `job_stage_full`, `job_stage_incr`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            JobStage::Snapshot => "job_stage_full",
            JobStage::Incremental => "job_stage_incr",
            JobStage::Stopped => "job_stage_stopped",
            JobStage::Failed => "job_stage_failed",
        }
    }
}

/// A job's last acknowledged position: what a restarted job resumes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub job: String,
    pub stage: JobStage,
    pub position: Position,
    pub updated_at_unix_ms: u64,
}

/// A stored value with its version. version: monotonically increasing per key (also across a delete and
/// re-create), > 0 once stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// Where checkpoints live: memory (tests), a local directory (standalone `dtle run`), Consul (cluster).
///
/// Every write is a compare-and-set on the version the writer last saw, so a stale copy of a task (one that
/// lost its allocation but still runs) cannot overwrite a newer position: it gets
/// [`StoreError::Fenced`] and must stop.
#[async_trait::async_trait]
pub trait CheckpointStore: Send + Sync {
    async fn load(&self, job: &str) -> Result<Option<Versioned<Checkpoint>>, StoreError>;
    /// Compare-and-set: succeeds only if the stored version equals `expected_version` (0 = must not exist yet).
    /// Returns the new version. A mismatch is StoreError::Fenced { job, expected, found } — a stale writer must stop.
    async fn save(&self, cp: &Checkpoint, expected_version: u64) -> Result<u64, StoreError>;
    /// Removes the job's checkpoint; removing a missing one is not an error.
    async fn delete(&self, job: &str) -> Result<(), StoreError>;
    /// Job names that have a checkpoint, sorted.
    async fn list(&self) -> Result<Vec<String>, StoreError>;
    /// Records full-copy progress (rows copied, rows estimated) for people and tools to read; not a position, so no
    /// compare-and-set. Stores without a place for it ignore it.
    async fn save_dump_progress(&self, job: &str, copied_rows: u64, total_rows: u64) -> Result<(), StoreError> {
        let _ = (job, copied_rows, total_rows);
        Ok(())
    }
}

/// Checks that `name` can be a store key (and a file name): 1..=64 characters from `[A-Za-z0-9_.-]`, not
/// starting with '.'. Every backend applies this rule so a job behaves the same wherever it is stored.
pub fn validate_job_name(name: &str) -> Result<(), StoreError> {
    let invalid = |reason: String| Err(StoreError::InvalidJobName { name: name.to_string(), reason });
    if name.is_empty() {
        return invalid("the name is empty".to_string());
    }
    let length = name.chars().count();
    if length > MAX_JOB_NAME_LEN {
        return invalid(format!("the name has {length} characters, at most {MAX_JOB_NAME_LEN} are allowed"));
    }
    if name.starts_with('.') {
        return invalid("the name starts with '.'".to_string());
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return invalid(format!("the character {bad:?} is not allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_stage_uses_dtle_words() {
        for (stage, word) in [
            (JobStage::Snapshot, "job_stage_full"),
            (JobStage::Incremental, "job_stage_incr"),
            (JobStage::Stopped, "job_stage_stopped"),
            (JobStage::Failed, "job_stage_failed"),
        ] {
            let json = serde_json::to_string(&stage).expect("serialize");
            assert_eq!(json, format!("\"{word}\""));
            assert_eq!(stage.as_str(), word);
            let back: JobStage = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, stage);
        }
        assert!(serde_json::from_str::<JobStage>("\"Snapshot\"").is_err());
    }

    #[test]
    fn checkpoint_json_round_trip() {
        let cp = Checkpoint {
            job: "job1".into(),
            stage: JobStage::Incremental,
            position: Position {
                gtid: Some(
                    crate::GtidState::parse_for_config("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9").expect("gtid"),
                ),
                binlog_file: "mysql-bin.000002".into(),
                binlog_pos: 77,
            },
            updated_at_unix_ms: 1_700_000_000_000,
        };
        let json = serde_json::to_value(&cp).expect("serialize");
        assert_eq!(json["stage"], "job_stage_incr");
        assert_eq!(json["position"]["flavor"], "mysql");
        let back: Checkpoint = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, cp);
    }

    #[test]
    fn job_names() {
        let long_ok = "a".repeat(64);
        for ok in ["a", "job-1", "Job_2.v3", "x.", long_ok.as_str(), "-dash", "_"] {
            validate_job_name(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        let long_bad = "a".repeat(65);
        for (bad, why) in [
            ("", "empty"),
            (".hidden", "starts with '.'"),
            ("..", "starts with '.'"),
            ("a/b", "'/'"),
            ("../x", "starts with '.'"),
            ("a b", "' '"),
            ("é", "'é'"),
            ("a\0", "'\\0'"),
            (long_bad.as_str(), "65 characters"),
        ] {
            match validate_job_name(bad) {
                Err(e @ StoreError::InvalidJobName { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(&format!("{bad:?}")), "{msg}");
                    assert!(msg.contains(why), "{bad:?}: {msg} lacks {why}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
