//! dtle-kafka: the Kafka target. Owns the Debezium-compatible JSON envelope (Kafka Connect schemas for every
//! MySQL column type, `c`/`u`/`d`/`r` events, tombstones, schema-change events) and the producer sink that sends
//! them with an idempotent producer and reports which source position is safe to checkpoint. Depends on dtle-mysql
//! for the change types and dtle-metadata for positions; must not import Nomad, NATS or Consul code: `driver/`
//! connects this crate to those.

pub mod connect;
mod ddl;
pub mod envelope;
pub mod error;
pub mod sink;
pub mod types;

pub use envelope::{parse_time_zone, DateTimeZone, Encoder, EnvelopeOptions, Record, Snapshot, SourceInfo};
pub use error::KafkaError;
pub use sink::{KafkaSink, Produced, SinkOptions, SinkStats};
