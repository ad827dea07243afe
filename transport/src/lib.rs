//! dtle-transport: moves batches of changes from the src task to the dest task and acknowledgements back,
//! with a bounded window of unacknowledged batches (back-pressure: the src waits when the dest falls behind).
//!
//! The in-process backend serves `dtle run`; the NATS backend (wire format in dtle-proto) comes with the
//! transport issue behind the same shape. Must not import MySQL, Consul or Nomad code: payloads are opaque.

pub mod compression;
pub mod in_process;
pub mod link;
pub mod nats;

/// The NATS client crate, for the types of [`nats`]'s API (a hello's reply subject).
pub use async_nats;

/// A batch: a sequence number (1, 2, 3, ... per stream) and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<T> {
    pub seq: u64,
    pub payload: T,
}

/// The dest's acknowledgement: every batch up to `seq` is durable downstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack<P> {
    pub seq: u64,
    pub progress: P,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("the other side of the transport has gone away")]
    Closed,
    #[error("acknowledgement for batch {acked} out of order (last acknowledged {last})")]
    AckOutOfOrder { acked: u64, last: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("transport configuration: {0}")]
    Config(String),
    #[error("batch encoding: {0}")]
    Codec(String),
    #[error("the dest task refused this src: {0}")]
    Refused(String),
    #[error("the dest task reset the session: {0}")]
    SessionReset(String),
    #[error("the dest task acknowledged nothing for {seconds} s with {in_flight} batch(es) in flight")]
    AckTimeout { in_flight: u64, seconds: u64 },
}

impl TransportError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            TransportError::Closed
                | TransportError::Unavailable(_)
                | TransportError::SessionReset(_)
                | TransportError::AckTimeout { .. }
        )
    }
}
