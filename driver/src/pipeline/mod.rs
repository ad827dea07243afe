//! The one path a change takes, whatever the target and however src and dest meet. Where is ...
//!
//! - **the src loop** (source → filter → batch → link, acknowledgements → checkpoints): [`src`];
//! - **the dest loop** (link → sink → durable → acknowledgement): [`dest`];
//! - **the ordered ack feed** into the `CheckpointStore` (a checkpoint's stage, the full-copy progress, saving in
//!   order with compare-and-set): [`checkpoint`];
//! - **the session protocol** between src and dest (typed answers: where the target stands) and **the start
//!   decision** (target position > position store > job file): [`session`];
//! - **the targets**: the [`sink::Sink`] trait — the MySQL applier (durable when its transaction committed) and the
//!   Kafka producer (durable when the broker acknowledged every message);
//! - **the transports**: the [`link::SrcLink`] / [`link::DestLink`] traits — in process (changes passed as they
//!   are, no encoding) and NATS (the `dtle.v1` wire format);
//! - **progress and metrics**, the same for every sink: [`observe`].
//!
//! `crate::standalone` only wires these together for `dtle run` and the plugin's tasks. This module tree must not
//! know job-file syntax beyond `ResolvedJob`, Nomad, or the plugin.

pub(crate) mod checkpoint;
pub(crate) mod dest;
pub(crate) mod link;
pub(crate) mod observe;
pub(crate) mod session;
pub(crate) mod sink;
pub(crate) mod src;

#[cfg(test)]
mod conformance;

/// At most this many changes, or about this many bytes of them, go into one target transaction group. While it is
/// built and sent, a group's SQL text takes about 3x its bytes (measured with tests/bench/bigtx.sh).
pub(crate) const MAX_GROUP_CHANGES: usize = 4096;
pub(crate) const MAX_GROUP_BYTES: usize = 4 << 20;
