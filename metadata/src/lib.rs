//! dtle-metadata: where a replication job stands, and where that is kept.
//!
//! This crate owns positions ([`MysqlGtidSet`], [`MariadbGtidList`], binlog file/pos in [`Position`], with
//! parsing, canonical formatting and partial comparison), checkpoints ([`Checkpoint`], [`JobStage`]), the
//! [`CheckpointStore`] trait with compare-and-set versioning, and its backends: [`MemoryStore`] for
//! tests, [`LocalFileStore`] for standalone runs and [`ConsulStore`] (Consul's HTTP KV API, in the
//! `dtle/<job>/...` layout dtle users inspect), all checked by the same conformance suite.
//!
//! It must not import MySQL, NATS, a Consul client library or Nomad code: it is plain data, text formats
//! and storage (the Consul backend is a few HTTP calls of its own), so every other crate can depend on it.

mod checkpoint;
#[cfg(test)]
mod conformance;
mod consul;
mod error;
mod gtid;
mod local_file_store;
mod memory_store;
mod position;

pub use checkpoint::{validate_job_name, Checkpoint, CheckpointStore, JobStage, Versioned, MAX_JOB_NAME_LEN};
pub use consul::{
    ConsulConfig, ConsulStore, DEFAULT_CONSUL_ADDRESS, DEFAULT_CONSUL_TIMEOUT, DEFAULT_KEY_PREFIX, KEY_BINLOG_FILE_POS,
    KEY_CHECKPOINT, KEY_GTID, KEY_JOB_STAGE, KEY_NATS_ADDR, KEY_NATS_SESSION_KEY,
};
pub use error::{PositionError, StoreError};
pub use gtid::{format_uuid, parse_uuid, MariadbGtidList, MysqlGtidSet};
pub use local_file_store::LocalFileStore;
pub use memory_store::MemoryStore;
pub use position::{GtidState, Position};
