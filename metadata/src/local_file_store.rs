//! [`LocalFileStore`]: checkpoints as JSON files in one directory, for standalone `dtle run`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, MutexGuard};

use crate::checkpoint::{validate_job_name, Checkpoint, CheckpointStore, Versioned};
use crate::error::StoreError;

/// File name suffix of a job's checkpoint: `<dir>/<job>.checkpoint.json`.
const FILE_SUFFIX: &str = ".checkpoint.json";

/// Serialises saves and deletes of every [`LocalFileStore`] in this process. It also remembers, per
/// checkpoint file, the highest version this process has written or removed, so a job that is deleted and
/// created again gets versions above any a stale writer could still hold.
static WRITE_LOCK: Mutex<BTreeMap<PathBuf, u64>> = Mutex::const_new(BTreeMap::new());

/// On-disk content of a checkpoint file.
#[derive(Serialize, Deserialize)]
struct StoredCheckpoint {
    version: u64,
    checkpoint: Checkpoint,
}

/// One file per job, `<dir>/<job>.checkpoint.json`, holding `{"version":N,"checkpoint":{...}}`.
///
/// Saves are crash-safe: the new content goes to `<file>.tmp`, which is fsynced and renamed over the file,
/// then the directory is fsynced. After a crash the file holds either the old or the new checkpoint; a
/// leftover `.tmp` is ignored and overwritten by the next save.
///
/// Compare-and-set is exact within one process (a process-wide lock serialises saves); the directory must
/// not be shared by several processes at once.
#[derive(Debug, Clone)]
pub struct LocalFileStore {
    dir: PathBuf,
}

impl LocalFileStore {
    /// Opens (creating it when missing) the directory that holds the checkpoint files.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| io_error("create directory", &dir, e))?;
        // Canonical so that two stores opened on the same directory share the version memory.
        let dir = fs::canonicalize(&dir).map_err(|e| io_error("resolve directory", &dir, e))?;
        if !dir.is_dir() {
            return Err(io_error("open directory", &dir, io::Error::other("not a directory")));
        }
        Ok(LocalFileStore { dir })
    }

    /// The directory holding the checkpoint files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_for(&self, job: &str) -> PathBuf {
        self.dir.join(format!("{job}{FILE_SUFFIX}"))
    }

    /// Runs `work` on the blocking pool while holding the process-wide write lock. The lock guard moves
    /// into the blocking task, so the lock stays held until the file work is finished even if the caller's
    /// future is dropped half-way.
    async fn locked_blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut BTreeMap<PathBuf, u64>) -> Result<T, StoreError> + Send + 'static,
    {
        let guard: MutexGuard<'static, BTreeMap<PathBuf, u64>> = WRITE_LOCK.lock().await;
        tokio::task::spawn_blocking(move || {
            let mut guard = guard;
            work(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Unavailable { reason: format!("checkpoint file task did not finish: {e}") })?
    }
}

fn io_error(action: &str, path: &Path, source: io::Error) -> StoreError {
    StoreError::Io { action: action.to_string(), path: path.to_path_buf(), source }
}

/// Reads and checks a checkpoint file. `Ok(None)` when it does not exist.
fn read_checkpoint(path: &Path, job: &str) -> Result<Option<Versioned<Checkpoint>>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", path, e)),
    };
    decode_checkpoint(path, job, &bytes).map(Some)
}

fn decode_checkpoint(path: &Path, job: &str, bytes: &[u8]) -> Result<Versioned<Checkpoint>, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { path: path.display().to_string(), reason };
    let stored: StoredCheckpoint = serde_json::from_slice(bytes).map_err(|e| {
        corrupt(format!("not a checkpoint file ({e}); expected {{\"version\":N,\"checkpoint\":{{...}}}}"))
    })?;
    if stored.version == 0 {
        return Err(corrupt("version is 0; stored versions start at 1".to_string()));
    }
    if stored.checkpoint.job != job {
        return Err(corrupt(format!("it holds the checkpoint of job {:?}, not of {job:?}", stored.checkpoint.job)));
    }
    Ok(Versioned { value: stored.checkpoint, version: stored.version })
}

/// Writes `bytes` to `path` crash-safely: `<path>.tmp`, fsync, rename over `path`, fsync `dir`.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut tmp_name: OsString = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let result = (|| {
        let mut file = File::create(&tmp).map_err(|e| io_error("create", &tmp, e))?;
        file.write_all(bytes).map_err(|e| io_error("write", &tmp, e))?;
        file.sync_all().map_err(|e| io_error("fsync", &tmp, e))?;
        drop(file);
        fs::rename(&tmp, path).map_err(|e| io_error("rename into place", path, e))
    })();
    if result.is_err() {
        // Best effort: a leftover .tmp is harmless (ignored, overwritten by the next save).
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error("fsync directory", dir, e))
}

#[async_trait::async_trait]
impl CheckpointStore for LocalFileStore {
    async fn load(&self, job: &str) -> Result<Option<Versioned<Checkpoint>>, StoreError> {
        validate_job_name(job)?;
        let path = self.path_for(job);
        // Saves replace the file by rename, so a read sees either the old or the new content: no lock.
        match tokio::fs::read(&path).await {
            Ok(bytes) => decode_checkpoint(&path, job, &bytes).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("read", &path, e)),
        }
    }

    async fn save(&self, cp: &Checkpoint, expected_version: u64) -> Result<u64, StoreError> {
        validate_job_name(&cp.job)?;
        let path = self.path_for(&cp.job);
        let dir = self.dir.clone();
        let cp = cp.clone();
        self.locked_blocking(move |highest| {
            let found = read_checkpoint(&path, &cp.job)?.map_or(0, |v| v.version);
            if found != expected_version {
                return Err(StoreError::Fenced { job: cp.job, expected: expected_version, found });
            }
            let highest_written = highest.get(&path).copied().unwrap_or(0);
            let version = found.max(highest_written).checked_add(1).ok_or_else(|| StoreError::Corrupt {
                path: path.display().to_string(),
                reason: "the version counter is exhausted".to_string(),
            })?;
            let mut bytes = serde_json::to_vec_pretty(&StoredCheckpoint { version, checkpoint: cp }).map_err(|e| {
                StoreError::Corrupt {
                    path: path.display().to_string(),
                    reason: format!("cannot encode the checkpoint: {e}"),
                }
            })?;
            bytes.push(b'\n');
            write_atomically(&dir, &path, &bytes)?;
            highest.insert(path, version);
            Ok(version)
        })
        .await
    }

    async fn delete(&self, job: &str) -> Result<(), StoreError> {
        validate_job_name(job)?;
        let path = self.path_for(job);
        let dir = self.dir.clone();
        let job = job.to_string();
        self.locked_blocking(move |highest| {
            // Remember the version being removed (best effort: a corrupt file is deleted all the same).
            if let Ok(Some(current)) = read_checkpoint(&path, &job) {
                let entry = highest.entry(path.clone()).or_insert(0);
                *entry = (*entry).max(current.version);
            }
            match fs::remove_file(&path) {
                Ok(()) => sync_dir(&dir),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_error("remove", &path, e)),
            }
        })
        .await
    }

    async fn list(&self) -> Result<Vec<String>, StoreError> {
        let mut entries = tokio::fs::read_dir(&self.dir).await.map_err(|e| io_error("list", &self.dir, e))?;
        let mut jobs = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(|e| io_error("list", &self.dir, e))? {
            let name = entry.file_name();
            let Some(job) = name.to_str().and_then(|n| n.strip_suffix(FILE_SUFFIX)) else {
                continue;
            };
            let is_file = entry.file_type().await.is_ok_and(|t| t.is_file());
            if is_file && validate_job_name(job).is_ok() {
                jobs.push(job.to_string());
            }
        }
        jobs.sort();
        Ok(jobs)
    }
}

#[cfg(test)]
mod tests;
