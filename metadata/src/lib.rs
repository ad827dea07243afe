//! dtle-metadata: where a replication job stands, and where that is kept.
//!
//! This crate owns positions ([`MysqlGtidSet`], [`MariadbGtidList`], binlog file/pos in [`Position`], with
//! parsing, canonical formatting and partial comparison), checkpoints ([`Checkpoint`], [`JobStage`]), the
//! [`CheckpointStore`] trait with compare-and-set versioning, and its local backends: [`MemoryStore`] for
//! tests and [`LocalFileStore`] for standalone runs. A Consul backend will live here too, behind the same
//! trait and checked by the same conformance suite.
//!
//! It must not import MySQL, NATS, Consul client or Nomad code: it is plain data, text formats and storage,
//! so every other crate can depend on it.

mod checkpoint;
#[cfg(test)]
mod conformance;
mod error;
mod gtid;
mod local_file_store;
mod memory_store;
mod position;

pub use checkpoint::{
    validate_job_name, Checkpoint, CheckpointStore, JobStage, Versioned, MAX_JOB_NAME_LEN,
};
pub use error::{PositionError, StoreError};
pub use gtid::{format_uuid, parse_uuid, MariadbGtidList, MysqlGtidSet};
pub use local_file_store::LocalFileStore;
pub use memory_store::MemoryStore;
pub use position::{GtidState, Position};
