//! [`MemoryStore`]: an in-process [`CheckpointStore`] for tests and for wiring components together.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::checkpoint::{validate_job_name, Checkpoint, CheckpointStore, Versioned};
use crate::error::StoreError;

/// Keeps checkpoints in a map. Versions come from one store-wide counter (like Consul's modify index), so
/// they keep increasing for a job even after it is deleted and created again.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    entries: BTreeMap<String, Versioned<Checkpoint>>,
    last_version: u64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, MemoryState> {
        // A panic while holding the lock cannot leave the map half-updated (each change is one insert or
        // remove), so a poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait::async_trait]
impl CheckpointStore for MemoryStore {
    async fn load(&self, job: &str) -> Result<Option<Versioned<Checkpoint>>, StoreError> {
        validate_job_name(job)?;
        Ok(self.state().entries.get(job).cloned())
    }

    async fn save(&self, cp: &Checkpoint, expected_version: u64) -> Result<u64, StoreError> {
        validate_job_name(&cp.job)?;
        let mut state = self.state();
        let found = state.entries.get(&cp.job).map_or(0, |v| v.version);
        if found != expected_version {
            return Err(StoreError::Fenced { job: cp.job.clone(), expected: expected_version, found });
        }
        let version = state.last_version + 1;
        state.last_version = version;
        state.entries.insert(cp.job.clone(), Versioned { value: cp.clone(), version });
        Ok(version)
    }

    async fn delete(&self, job: &str) -> Result<(), StoreError> {
        validate_job_name(job)?;
        self.state().entries.remove(job);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.state().entries.keys().cloned().collect())
    }
}
