//! dtle (binary crate): CLI (`run`, `validate`, `positions`, `version`), job file parsing (HCL and Nomad JSON),
//! task lifecycle. The only crate that connects the engine crates (mysql, metadata, transport) together.

pub mod config;
pub mod engine;
pub mod error;
pub mod kafka_dest;
pub mod meeting;
pub mod metrics;
pub mod pipeline;
pub mod plan;
pub mod plugin;
pub mod standalone;
pub mod verify;
mod watchdog;
pub mod wire;
