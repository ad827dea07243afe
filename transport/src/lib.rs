//! dtle-transport: moves batches of changes from the src task to the dest task and acknowledgements back,
//! with a bounded window of unacknowledged batches (back-pressure: the src waits when the dest falls behind).
//!
//! The in-process backend serves `dtle run`; the NATS backend (wire format in dtle-proto) comes with the
//! transport issue behind the same shape. Must not import MySQL, Consul or Nomad code: payloads are opaque.

pub mod in_process;

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
}

impl TransportError {
    pub fn is_transient(&self) -> bool {
        matches!(self, TransportError::Closed)
    }
}
