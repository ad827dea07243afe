//! One shape over both backends: a [`LinkSender`] / [`LinkReceiver`] pair moving byte payloads with sequence
//! numbers 1, 2, 3, ... and acknowledgements back, with a window of unacknowledged batches that holds the sender.
//!
//! * [`in_process_link`] wraps [`crate::in_process::channel`].
//! * [`NatsLinkSender`] / [`NatsLinkReceiver`] wrap [`NatsSource`] / [`NatsDest`] and do the hello/answer handshake
//!   themselves.
//!
//! The same conformance suite (`tests/link_conformance.rs`) runs against both. The backends' own APIs stay as
//! they are; these adapters add nothing the engine depends on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dtle_proto::v1::{Hello, HelloReply};
use dtle_proto::WIRE_FORMAT_VERSION;
use tokio::sync::{mpsc, watch};

use crate::in_process::{self, BatchReceiver, BatchSender};
use crate::nats::{DestEvent, NatsDest, NatsOptions, NatsSource};
use crate::{Ack, TransportError};

/// The sending half of a link.
#[async_trait]
pub trait LinkSender: Send {
    /// Sends one batch, waiting while the window of unacknowledged batches is full. Returns its sequence number
    /// (1 for the first batch). An error when the other side is known to be gone (or silent too long).
    async fn send(&mut self, payload: Vec<u8>) -> Result<u64, TransportError>;
    /// The next acknowledgement: every batch up to the returned sequence number is acknowledged. `None` when no
    /// acknowledgement can come any more.
    async fn next_ack(&mut self) -> Option<u64>;
    /// Batches sent and not yet acknowledged.
    fn in_flight(&self) -> u64;
}

/// The receiving half of a link.
#[async_trait]
pub trait LinkReceiver: Send {
    /// The next batch, in order: `(seq, payload)`. `Ok(None)` when the sender is gone for good and everything
    /// was received (a backend that cannot tell keeps waiting).
    async fn recv(&mut self) -> Result<Option<(u64, Vec<u8>)>, TransportError>;
    /// Acknowledges every batch up to `seq` (acknowledgements never go backwards), freeing their window slots.
    async fn ack(&mut self, seq: u64) -> Result<(), TransportError>;
}

#[async_trait]
impl<T: LinkSender + ?Sized> LinkSender for Box<T> {
    async fn send(&mut self, payload: Vec<u8>) -> Result<u64, TransportError> {
        (**self).send(payload).await
    }
    async fn next_ack(&mut self) -> Option<u64> {
        (**self).next_ack().await
    }
    fn in_flight(&self) -> u64 {
        (**self).in_flight()
    }
}

#[async_trait]
impl<T: LinkReceiver + ?Sized> LinkReceiver for Box<T> {
    async fn recv(&mut self) -> Result<Option<(u64, Vec<u8>)>, TransportError> {
        (**self).recv().await
    }
    async fn ack(&mut self, seq: u64) -> Result<(), TransportError> {
        (**self).ack(seq).await
    }
}

// ---------------------------------------------------------------------------------------------------------------
// In-process

/// An in-process link allowing `window` unacknowledged batches and `window_bytes` bytes of them (a batch larger
/// than `window_bytes` passes alone); see [`in_process::channel`].
pub fn in_process_link(window: usize, window_bytes: usize) -> (InProcessLinkSender, InProcessLinkReceiver) {
    let (tx, acks, rx) = in_process::channel::<Vec<u8>, ()>(window, window_bytes);
    let acked = Arc::new(AtomicU64::new(0));
    let (alive_tx, alive_rx) = watch::channel(());
    (
        InProcessLinkSender { tx, acks, acked: acked.clone(), sent: 0, receiver_alive: alive_rx },
        InProcessLinkReceiver { rx, acked, _alive: alive_tx },
    )
}

pub struct InProcessLinkSender {
    tx: BatchSender<Vec<u8>>,
    acks: mpsc::UnboundedReceiver<Ack<()>>,
    acked: Arc<AtomicU64>,
    sent: u64,
    /// Ends (`changed()` fails) when the receiver is dropped, so a sender held by a full window is released.
    receiver_alive: watch::Receiver<()>,
}

#[async_trait]
impl LinkSender for InProcessLinkSender {
    async fn send(&mut self, payload: Vec<u8>) -> Result<u64, TransportError> {
        if self.receiver_alive.has_changed().is_err() {
            return Err(TransportError::Closed);
        }
        let size = payload.len();
        let alive = &mut self.receiver_alive;
        let gone = async move { while alive.changed().await.is_ok() {} };
        let seq = tokio::select! {
            sent = self.tx.send(payload, size) => sent?,
            () = gone => return Err(TransportError::Closed),
        };
        self.sent = seq;
        Ok(seq)
    }

    async fn next_ack(&mut self) -> Option<u64> {
        self.acks.recv().await.map(|a| a.seq)
    }

    fn in_flight(&self) -> u64 {
        self.sent.saturating_sub(self.acked.load(Ordering::Acquire))
    }
}

pub struct InProcessLinkReceiver {
    rx: BatchReceiver<Vec<u8>, ()>,
    acked: Arc<AtomicU64>,
    _alive: watch::Sender<()>,
}

#[async_trait]
impl LinkReceiver for InProcessLinkReceiver {
    async fn recv(&mut self) -> Result<Option<(u64, Vec<u8>)>, TransportError> {
        Ok(self.rx.recv().await.map(|b| (b.seq, b.payload)))
    }

    async fn ack(&mut self, seq: u64) -> Result<(), TransportError> {
        self.rx.ack(seq, ())?;
        self.acked.store(seq, Ordering::Release);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// NATS

/// The src side of a NATS link, after a dest accepted its session.
pub struct NatsLinkSender {
    source: NatsSource,
    acks: mpsc::UnboundedReceiver<dtle_proto::v1::Ack>,
}

impl NatsLinkSender {
    /// Connects, announces session `session` of `job` until a dest accepts it (or `give_up` passes), and returns
    /// the link with the dest's answer (where the target stands).
    pub async fn connect(
        opts: NatsOptions,
        job: &str,
        session: u64,
        give_up: Duration,
    ) -> Result<(NatsLinkSender, HelloReply), TransportError> {
        let (source, acks) = NatsSource::connect(opts, job, session).await?;
        let reply = source.hello(job, give_up).await?;
        Ok((NatsLinkSender { source, acks }, reply))
    }

    /// The backend, e.g. for its byte counters or [`NatsSource::drain`].
    pub fn source(&self) -> &NatsSource {
        &self.source
    }
}

#[async_trait]
impl LinkSender for NatsLinkSender {
    async fn send(&mut self, payload: Vec<u8>) -> Result<u64, TransportError> {
        self.source.send(&payload).await
    }

    async fn next_ack(&mut self) -> Option<u64> {
        self.acks.recv().await.map(|a| a.seq)
    }

    fn in_flight(&self) -> u64 {
        self.source.in_flight()
    }
}

/// The dest side of a NATS link. It answers every hello itself with the configured reply, and a new session
/// starts again at sequence number 1.
pub struct NatsLinkReceiver {
    dest: NatsDest,
    reply: HelloReply,
    session: Option<u64>,
    last_acked: u64,
}

impl NatsLinkReceiver {
    /// Subscribes to `job`'s subjects. `reply` is the answer to every hello (its `error` must be empty; its
    /// `version` is set to this build's wire format).
    pub async fn bind(opts: &NatsOptions, job: &str, reply: HelloReply) -> Result<NatsLinkReceiver, TransportError> {
        let dest = NatsDest::bind(opts, job).await?;
        Ok(NatsLinkReceiver {
            dest,
            reply: HelloReply { version: WIRE_FORMAT_VERSION, error: String::new(), ..reply },
            session: None,
            last_acked: 0,
        })
    }

    /// Waits for a src's hello and accepts it; returns the hello. [`LinkReceiver::recv`] does this too, for
    /// hellos that arrive while batches are awaited.
    pub async fn accept(&mut self) -> Result<Hello, TransportError> {
        loop {
            if let DestEvent::Hello { hello, reply } = self.dest.next().await? {
                if self.answer(&hello, reply).await? {
                    return Ok(hello);
                }
            }
        }
    }

    /// The session being received, once a hello was accepted.
    pub fn session(&self) -> Option<u64> {
        self.session
    }

    /// Answers a hello; `false` when it was refused (another wire format version).
    async fn answer(&mut self, hello: &Hello, reply: Option<async_nats::Subject>) -> Result<bool, TransportError> {
        if hello.version != WIRE_FORMAT_VERSION {
            let refusal = HelloReply {
                version: WIRE_FORMAT_VERSION,
                error: format!(
                    "wire format version {} is not supported by this dest (it speaks {WIRE_FORMAT_VERSION})",
                    hello.version
                ),
                ..Default::default()
            };
            self.dest.answer_hello(hello, reply, refusal).await?;
            return Ok(false);
        }
        self.dest.answer_hello(hello, reply, self.reply.clone()).await?;
        self.session = Some(hello.session);
        self.last_acked = 0;
        Ok(true)
    }
}

#[async_trait]
impl LinkReceiver for NatsLinkReceiver {
    async fn recv(&mut self) -> Result<Option<(u64, Vec<u8>)>, TransportError> {
        loop {
            match self.dest.next().await? {
                DestEvent::Hello { hello, reply } => {
                    self.answer(&hello, reply).await?;
                }
                DestEvent::Batch { seq, payload, .. } => return Ok(Some((seq, payload))),
            }
        }
    }

    async fn ack(&mut self, seq: u64) -> Result<(), TransportError> {
        let Some(session) = self.session else {
            return Err(TransportError::Unavailable("no src session to acknowledge yet".into()));
        };
        if seq <= self.last_acked {
            return Err(TransportError::AckOutOfOrder { acked: seq, last: self.last_acked });
        }
        self.dest.ack(session, seq, None).await?;
        self.last_acked = seq;
        Ok(())
    }
}
