//! How src and dest meet: the [`SrcLink`] / [`DestLink`] traits and their two implementations.
//!
//! - **In process** ([`in_process`]): the changes pass as they are (no encoding), through a window of batches and
//!   bytes (`dtle_transport::in_process`); the hello is a call through a channel.
//! - **NATS** ([`NatsSrcLink`], [`NatsDestLink`]): batches in the `dtle.v1` wire format, compressed and framed by
//!   `dtle_transport::nats`; the hello answer is a `HelloReply` (see [`SessionStart::to_reply`]).
//!
//! Both carry the same things: a session's hello and its answer, batches numbered 1, 2, 3, ... in order, and
//! cumulative acknowledgements with the position durable after them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dtle_metadata::Position;
use dtle_mysql::Change;
use dtle_proto::v1 as w;
use dtle_transport::in_process::{self, BatchAcker, BatchReceiver, BatchSender};
use dtle_transport::nats::{DestEvent, NatsAcker, NatsDest, NatsSource};
use dtle_transport::Ack;
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::session::{hello_refusal, SessionStart};
use crate::error::DriverError;
use crate::meeting::DestMoved;
use crate::metrics::JobMetrics;
use crate::wire;

/// Which batches an acknowledgement covers: every batch of `session` up to `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AckToken {
    pub session: u64,
    pub seq: u64,
}

/// What the dest side receives.
pub(crate) enum LinkEvent {
    /// A src starts a session: answer with [`DestLink::answer`].
    Hello(HelloRequest),
    /// The next batch of the current session, in order.
    Batch { token: AckToken, changes: Vec<Change> },
}

/// A session's hello, waiting for the dest's answer.
pub(crate) struct HelloRequest {
    pub session: u64,
    reply: HelloReplyTo,
}

enum HelloReplyTo {
    InProcess(oneshot::Sender<SessionStart>),
    Nats { hello: w::Hello, reply: Option<dtle_transport::async_nats::Subject> },
}

/// The dest's side of a link.
#[async_trait]
pub(crate) trait DestLink: Send {
    /// The next event; `None` when the src side is gone for good and everything was received.
    async fn next(&mut self) -> Result<Option<LinkEvent>, DriverError>;
    /// An event already waiting, without blocking.
    fn try_next(&mut self) -> Result<Option<LinkEvent>, DriverError>;
    /// Accepts the session of `hello`, answering where the target stands.
    async fn answer(&mut self, hello: HelloRequest, start: SessionStart) -> Result<(), DriverError>;
    /// Acknowledges from another task (acknowledgements that complete after the batch was taken).
    fn acker(&self) -> Arc<dyn Acker>;
}

#[async_trait]
pub(crate) trait Acker: Send + Sync {
    /// Every batch up to `token` is durable; `position` is where a restart may continue after, if any.
    async fn ack(&self, token: AckToken, position: Option<Position>) -> Result<(), DriverError>;
    /// The dest is alive and still applying what `session` sent (see [`super::dest`]); nothing for a link whose
    /// src does not time out.
    async fn keepalive(&self, _session: u64) -> Result<(), DriverError> {
        Ok(())
    }
}

/// The src's side of a link.
#[async_trait]
pub(crate) trait SrcLink: Send {
    /// Starts a session: asks the dest where the target stands.
    async fn hello(&mut self, job: &str) -> Result<SessionStart, DriverError>;
    /// Sends one batch (waiting while the window is full); its sequence number.
    async fn send(&mut self, changes: Vec<Change>) -> Result<u64, DriverError>;
    /// The next acknowledgement `(seq, position)`; pending forever when none can come. An error when the dest is
    /// known to be gone (it moved to another node).
    async fn next_ack(&mut self) -> Result<(u64, Option<Position>), DriverError>;
    /// An acknowledgement already received, without blocking.
    fn try_ack(&mut self) -> Option<(u64, Option<Position>)>;
    /// No more batches: waits for the dest to acknowledge what was sent (`clean`: a normal end; the in-process dest
    /// applies everything, the NATS dest gets 10 s); returns how many batches stayed unacknowledged.
    async fn finish(&mut self, clean: bool) -> u64;
}

// ---------------------------------------------------------------------------------------------------------------
// In process

/// A connected pair allowing `window` unacknowledged batches and `window_bytes` bytes of them.
pub(crate) fn in_process(window: usize, window_bytes: usize) -> (InProcessSrc, InProcessDest) {
    let (batches, acks, receiver) = in_process::channel::<Vec<Change>, Option<Position>>(window, window_bytes);
    let (hellos_tx, hellos) = mpsc::channel(1);
    (
        InProcessSrc { batches: Some(batches), acks, hellos: hellos_tx, received: VecDeque::new() },
        InProcessDest { batches: receiver, hellos, hellos_open: true },
    )
}

pub(crate) struct InProcessSrc {
    batches: Option<BatchSender<Vec<Change>>>,
    acks: mpsc::UnboundedReceiver<Ack<Option<Position>>>,
    hellos: mpsc::Sender<oneshot::Sender<SessionStart>>,
    /// Acknowledgements taken while finishing.
    received: VecDeque<(u64, Option<Position>)>,
}

pub(crate) struct InProcessDest {
    batches: BatchReceiver<Vec<Change>, Option<Position>>,
    hellos: mpsc::Receiver<oneshot::Sender<SessionStart>>,
    hellos_open: bool,
}

const IN_PROCESS_SESSION: u64 = 1;

fn closed() -> DriverError {
    DriverError::Transport(dtle_transport::TransportError::Closed)
}

#[async_trait]
impl SrcLink for InProcessSrc {
    async fn hello(&mut self, _job: &str) -> Result<SessionStart, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.hellos.send(tx).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())
    }

    async fn send(&mut self, changes: Vec<Change>) -> Result<u64, DriverError> {
        let size = changes.iter().map(Change::approx_size).sum();
        let batches = self.batches.as_mut().ok_or_else(closed)?;
        Ok(batches.send(changes, size).await?)
    }

    async fn next_ack(&mut self) -> Result<(u64, Option<Position>), DriverError> {
        match self.acks.recv().await {
            Some(ack) => Ok((ack.seq, ack.progress)),
            None => std::future::pending().await,
        }
    }

    fn try_ack(&mut self) -> Option<(u64, Option<Position>)> {
        self.received.pop_front().or_else(|| self.acks.try_recv().ok().map(|a| (a.seq, a.progress)))
    }

    async fn finish(&mut self, _clean: bool) -> u64 {
        // The dest applies everything it was sent, then ends (dropping its side closes the acks).
        self.batches = None;
        while let Some(ack) = self.acks.recv().await {
            self.received.push_back((ack.seq, ack.progress));
        }
        0
    }
}

#[async_trait]
impl DestLink for InProcessDest {
    async fn next(&mut self) -> Result<Option<LinkEvent>, DriverError> {
        loop {
            tokio::select! {
                biased;
                hello = self.hellos.recv(), if self.hellos_open => match hello {
                    Some(reply) => return Ok(Some(in_process_hello(reply))),
                    None => self.hellos_open = false,
                },
                batch = self.batches.recv() => return Ok(batch.map(in_process_batch)),
            }
        }
    }

    fn try_next(&mut self) -> Result<Option<LinkEvent>, DriverError> {
        if let Ok(reply) = self.hellos.try_recv() {
            return Ok(Some(in_process_hello(reply)));
        }
        Ok(self.batches.try_recv().map(in_process_batch))
    }

    async fn answer(&mut self, hello: HelloRequest, start: SessionStart) -> Result<(), DriverError> {
        if let HelloReplyTo::InProcess(reply) = hello.reply {
            reply.send(start).map_err(|_| closed())?;
        }
        Ok(())
    }

    fn acker(&self) -> Arc<dyn Acker> {
        Arc::new(InProcessAcker(self.batches.acker()))
    }
}

fn in_process_hello(reply: oneshot::Sender<SessionStart>) -> LinkEvent {
    LinkEvent::Hello(HelloRequest { session: IN_PROCESS_SESSION, reply: HelloReplyTo::InProcess(reply) })
}

fn in_process_batch(batch: dtle_transport::Batch<Vec<Change>>) -> LinkEvent {
    LinkEvent::Batch { token: AckToken { session: IN_PROCESS_SESSION, seq: batch.seq }, changes: batch.payload }
}

struct InProcessAcker(BatchAcker<Option<Position>>);

#[async_trait]
impl Acker for InProcessAcker {
    async fn ack(&self, token: AckToken, position: Option<Position>) -> Result<(), DriverError> {
        Ok(self.0.ack(token.seq, position)?)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// NATS

/// How long a src waits for a dest to answer its hello.
const HELLO_GIVE_UP: Duration = Duration::from_secs(60);
/// How long a src stopping cleanly waits for the dest to acknowledge what it sent.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

pub(crate) struct NatsSrcLink {
    link: NatsSource,
    acks: mpsc::UnboundedReceiver<w::Ack>,
    dest_moved: Option<DestMoved>,
    metrics: Arc<JobMetrics>,
}

impl NatsSrcLink {
    pub(crate) fn new(
        link: NatsSource,
        acks: mpsc::UnboundedReceiver<w::Ack>,
        dest_moved: Option<DestMoved>,
        metrics: Arc<JobMetrics>,
    ) -> Self {
        NatsSrcLink { link, acks, dest_moved, metrics }
    }

    /// Bytes given to the link and bytes sent after compression.
    pub(crate) fn totals(&self) -> (u64, u64) {
        (self.link.bytes_raw, self.link.bytes_sent)
    }
}

fn ack_from_wire(ack: w::Ack) -> (u64, Option<Position>) {
    (ack.seq, ack.position.and_then(|p| wire::position_from_wire(Some(p)).ok()))
}

#[async_trait]
impl SrcLink for NatsSrcLink {
    async fn hello(&mut self, job: &str) -> Result<SessionStart, DriverError> {
        SessionStart::from_reply(self.link.hello(job, HELLO_GIVE_UP).await?)
    }

    async fn send(&mut self, changes: Vec<Change>) -> Result<u64, DriverError> {
        let bytes = prost::Message::encode_to_vec(&wire::encode_batch(&changes));
        drop(changes);
        let (raw_before, sent_before) = self.totals();
        let seq = self.link.send(&bytes).await?;
        self.metrics.add_link_bytes(self.link.bytes_raw - raw_before, self.link.bytes_sent - sent_before);
        Ok(seq)
    }

    async fn next_ack(&mut self) -> Result<(u64, Option<Position>), DriverError> {
        let moved = async {
            match self.dest_moved.as_mut() {
                Some(watch) => watch.moved().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ack = self.acks.recv() => match ack {
                Some(ack) => Ok(ack_from_wire(ack)),
                None => std::future::pending().await,
            },
            moved = moved => Err(moved),
        }
    }

    fn try_ack(&mut self) -> Option<(u64, Option<Position>)> {
        self.acks.try_recv().ok().map(ack_from_wire)
    }

    async fn finish(&mut self, clean: bool) -> u64 {
        if !clean {
            return self.link.in_flight();
        }
        // What the dest does not acknowledge is not lost: the next run resumes from the target's position.
        self.link.drain_for(DRAIN_LIMIT).await
    }
}

pub(crate) struct NatsDestLink {
    link: NatsDest,
    job: String,
}

impl NatsDestLink {
    pub(crate) fn new(link: NatsDest, job: &str) -> Self {
        NatsDestLink { link, job: job.to_string() }
    }

    /// An event of the link as the dest loop sees it; a hello from another job or wire format is refused here.
    async fn take(&mut self, event: DestEvent) -> Result<Option<LinkEvent>, DriverError> {
        match event {
            DestEvent::Hello { hello, reply } => {
                if let Some(error) = hello_refusal(&hello, &self.job) {
                    warn!(job = %self.job, session = hello.session, %error, "dest: refusing a src");
                    let answer =
                        w::HelloReply { version: dtle_proto::WIRE_FORMAT_VERSION, error, ..Default::default() };
                    self.link.answer_hello(&hello, reply, answer).await?;
                    return Ok(None);
                }
                Ok(Some(LinkEvent::Hello(HelloRequest {
                    session: hello.session,
                    reply: HelloReplyTo::Nats { hello, reply },
                })))
            }
            DestEvent::Batch { session, seq, payload } => {
                let batch = <w::ChangeBatch as prost::Message>::decode(payload.as_slice())
                    .map_err(|e| DriverError::Other(format!("unreadable batch {seq} of session {session}: {e}")))?;
                let changes = wire::decode_batch(batch)
                    .map_err(|e| DriverError::Other(format!("batch {seq} of session {session}: {e}")))?;
                Ok(Some(LinkEvent::Batch { token: AckToken { session, seq }, changes }))
            }
        }
    }
}

#[async_trait]
impl DestLink for NatsDestLink {
    async fn next(&mut self) -> Result<Option<LinkEvent>, DriverError> {
        loop {
            let event = self.link.next().await?;
            if let Some(event) = self.take(event).await? {
                return Ok(Some(event));
            }
        }
    }

    fn try_next(&mut self) -> Result<Option<LinkEvent>, DriverError> {
        match self.link.next().now_or_never() {
            None => Ok(None),
            Some(event) => {
                let event = event?;
                // Taking a batch or an acceptable hello does not wait; a refusal's answer is sent on the next call.
                match self.take(event).now_or_never() {
                    Some(taken) => taken,
                    None => Ok(None),
                }
            }
        }
    }

    async fn answer(&mut self, hello: HelloRequest, start: SessionStart) -> Result<(), DriverError> {
        if let HelloReplyTo::Nats { hello, reply } = hello.reply {
            self.link.answer_hello(&hello, reply, start.to_reply()).await?;
        }
        Ok(())
    }

    fn acker(&self) -> Arc<dyn Acker> {
        Arc::new(NatsLinkAcker(self.link.acker()))
    }
}

struct NatsLinkAcker(NatsAcker);

#[async_trait]
impl Acker for NatsLinkAcker {
    async fn ack(&self, token: AckToken, position: Option<Position>) -> Result<(), DriverError> {
        Ok(self.0.ack(token.session, token.seq, position.as_ref().map(wire::position_to_wire)).await?)
    }

    async fn keepalive(&self, session: u64) -> Result<(), DriverError> {
        Ok(self.0.keepalive(session).await?)
    }
}
