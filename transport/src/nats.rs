//! NATS backend: the src and dest tasks of a job meet on subjects `dtle.<job>.hello|batch|ack` of a NATS server.
//!
//! * `hello` (request/reply): the src announces a new session; the dest answers with where the target stands, so
//!   the src resumes exactly there.
//! * `batch`: frames of compressed batches with a sequence number per session; big batches are cut below the
//!   server's `max_payload` and reassembled in order.
//! * `ack`: the dest's acknowledgements (highest durable sequence and its position), or a refusal.
//!
//! Core NATS may drop messages (a server restart, a slow consumer). Nothing is lost because the dest applies
//! strictly in sequence: a gap makes it refuse the session, and a src that stops getting acks gives up; either
//! way the src starts a new session from the target's position. The window of unacknowledged batches bounds
//! memory and makes the src stop reading the binlog when the dest falls behind.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::{Client, Subscriber};
use bytes::Bytes;
use dtle_proto::v1::{Ack, BatchFrame, Compression, Hello, HelloReply};
use dtle_proto::WIRE_FORMAT_VERSION;
use futures_util::StreamExt;
use prost::Message;
use tokio::sync::{mpsc, Notify};
use tracing::{debug, warn};

use crate::compression::{compress, decompress, CompressionSpec};
use crate::TransportError;

/// How to reach NATS and how to use the link.
#[derive(Clone, Debug)]
pub struct NatsOptions {
    /// `nats://host:port` (several for a cluster).
    pub urls: Vec<String>,
    pub token: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub credentials_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub compression: CompressionSpec,
    /// Unacknowledged batches in flight.
    pub window: usize,
    /// Give up on a session when no ack arrives for this long while batches are in flight.
    pub ack_timeout: Duration,
    /// Bytes per second on the link (after compression); `None` = unlimited.
    pub rate_limit_bytes_per_s: Option<u64>,
    /// The job's session key ([`SessionKey`]): the src signs its hello with it, the dest accepts only hellos signed
    /// with it, each session once. `None`: sessions are not authenticated.
    pub session_key: Option<SessionKey>,
}

/// A secret shared by a job's src and dest (the dest makes one per process and publishes it where only the job's
/// tasks read it, e.g. Consul's `dtle/<job>/NatsSessionKey`), so a dest accepts new sessions only from its src.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(Vec<u8>);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(hidden)")
    }
}

impl SessionKey {
    /// 32 random bytes from the system's generator.
    pub fn generate() -> Result<SessionKey, TransportError> {
        let mut key = vec![0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
            .map_err(|_| TransportError::Unavailable("the system's random generator failed".into()))?;
        Ok(SessionKey(key))
    }

    /// As stored: lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Result<SessionKey, String> {
        let text = text.trim();
        if text.len() < 32 || !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("a session key is at least 16 bytes of hex, not {} characters", text.len()));
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|e| e.to_string()))
            .collect::<Result<Vec<u8>, String>>()?;
        Ok(SessionKey(bytes))
    }

    fn hello_message(job: &str, session: u64) -> Vec<u8> {
        let mut message = b"dtle hello\0".to_vec();
        message.extend_from_slice(job.as_bytes());
        message.push(0);
        message.extend_from_slice(&session.to_be_bytes());
        message
    }

    /// The `auth` of a hello of `session` of `job`.
    pub fn sign_hello(&self, job: &str, session: u64) -> Vec<u8> {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        ring::hmac::sign(&key, &Self::hello_message(job, session)).as_ref().to_vec()
    }

    /// Whether `auth` signs a hello of `session` of `job` with this key (constant time).
    pub fn verify_hello(&self, job: &str, session: u64, auth: &[u8]) -> bool {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        ring::hmac::verify(&key, &Self::hello_message(job, session), auth).is_ok()
    }
}

impl Default for NatsOptions {
    fn default() -> Self {
        NatsOptions {
            urls: vec!["nats://127.0.0.1:4222".into()],
            token: None,
            user: None,
            password: None,
            credentials_file: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            compression: CompressionSpec::default(),
            window: 32,
            ack_timeout: Duration::from_secs(30),
            rate_limit_bytes_per_s: None,
            session_key: None,
        }
    }
}

/// The subjects of one job. Characters NATS treats specially are escaped, so two jobs never share subjects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subjects {
    pub hello: String,
    pub batch: String,
    pub ack: String,
}

impl Subjects {
    pub fn for_job(job: &str) -> Subjects {
        let mut token = String::with_capacity(job.len());
        for b in job.bytes() {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                token.push(b as char);
            } else {
                token.push_str(&format!("~{b:02x}"));
            }
        }
        Subjects {
            hello: format!("dtle.{token}.hello"),
            batch: format!("dtle.{token}.batch"),
            ack: format!("dtle.{token}.ack"),
        }
    }
}

pub async fn connect(opts: &NatsOptions, name: &str) -> Result<Client, TransportError> {
    let mut o = async_nats::ConnectOptions::new().name(name).connection_timeout(Duration::from_secs(5));
    if let Some(t) = &opts.token {
        o = o.token(t.clone());
    }
    if let (Some(u), Some(p)) = (&opts.user, &opts.password) {
        o = o.user_and_password(u.clone(), p.clone());
    }
    if let Some(f) = &opts.credentials_file {
        o = o
            .credentials_file(f)
            .await
            .map_err(|e| TransportError::Config(format!("NATS credentials file {}: {e}", f.display())))?;
    }
    if let Some(ca) = &opts.ca_file {
        if !ca.is_file() {
            return Err(TransportError::Config(format!("NATS CA file {} does not exist", ca.display())));
        }
        o = o.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(c), Some(k)) = (&opts.cert_file, &opts.key_file) {
        o = o.add_client_certificate(c.clone(), k.clone());
    }
    let urls: Vec<async_nats::ServerAddr> = opts
        .urls
        .iter()
        .map(|u| u.parse().map_err(|e| TransportError::Config(format!("NATS address {u:?}: {e}"))))
        .collect::<Result<_, _>>()?;
    let connecting = o.connect(urls.as_slice());
    match tokio::time::timeout(Duration::from_secs(10), connecting).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => {
            Err(TransportError::Unavailable(format!("cannot connect to NATS at {}: {e}", opts.urls.join(","))))
        }
        Err(_) => {
            Err(TransportError::Unavailable(format!("cannot connect to NATS at {}: timed out", opts.urls.join(","))))
        }
    }
}

/// The src side of a job's NATS link.
pub struct NatsSource {
    client: Client,
    subjects: Subjects,
    opts: NatsOptions,
    session: u64,
    next_seq: u64,
    acked: Arc<AtomicU64>,
    ack_arrived: Arc<Notify>,
    refused: Arc<std::sync::Mutex<Option<String>>>,
    last_ack_at: Arc<std::sync::Mutex<Instant>>,
    max_frame: usize,
    rate_window: (Instant, u64),
    pub bytes_raw: u64,
    pub bytes_sent: u64,
}

impl NatsSource {
    /// Connects and subscribes to acks; the acks of this session are delivered on the returned channel.
    pub async fn connect(
        opts: NatsOptions,
        job: &str,
        session: u64,
    ) -> Result<(NatsSource, mpsc::UnboundedReceiver<Ack>), TransportError> {
        let client = connect(&opts, &format!("dtle src {job}")).await?;
        let subjects = Subjects::for_job(job);
        let mut acks: Subscriber = client
            .subscribe(subjects.ack.clone())
            .await
            .map_err(|e| TransportError::Unavailable(format!("subscribing to {}: {e}", subjects.ack)))?;
        client.flush().await.map_err(|e| TransportError::Unavailable(format!("NATS flush: {e}")))?;
        let acked = Arc::new(AtomicU64::new(0));
        let ack_arrived = Arc::new(Notify::new());
        let refused = Arc::new(std::sync::Mutex::new(None));
        let last_ack_at = Arc::new(std::sync::Mutex::new(Instant::now()));
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let (acked, ack_arrived, refused, last_ack_at) =
                (acked.clone(), ack_arrived.clone(), refused.clone(), last_ack_at.clone());
            tokio::spawn(async move {
                while let Some(msg) = acks.next().await {
                    let Ok(ack) = Ack::decode(msg.payload.as_ref()) else {
                        continue;
                    };
                    if ack.session != session {
                        continue;
                    }
                    if !ack.error.is_empty() {
                        if let Ok(mut r) = refused.lock() {
                            *r = Some(ack.error.clone());
                        }
                        ack_arrived.notify_waiters();
                        continue;
                    }
                    if ack.seq > acked.load(Ordering::Acquire) {
                        acked.store(ack.seq, Ordering::Release);
                        if let Ok(mut t) = last_ack_at.lock() {
                            *t = Instant::now();
                        }
                        ack_arrived.notify_waiters();
                        if tx.send(ack).is_err() {
                            return;
                        }
                    } else if let Ok(mut t) = last_ack_at.lock() {
                        // Nothing new acknowledged: the dest of this session says it is still applying (a keepalive,
                        // see [`NatsAcker::keepalive`]), so its silence is not an ack timeout.
                        *t = Instant::now();
                    }
                }
            });
        }
        let max_payload = client.server_info().max_payload.max(64 * 1024);
        Ok((
            NatsSource {
                client,
                subjects,
                opts,
                session,
                next_seq: 1,
                acked,
                ack_arrived,
                refused,
                last_ack_at,
                max_frame: max_payload - 4096,
                rate_window: (Instant::now(), 0),
                bytes_raw: 0,
                bytes_sent: 0,
            },
            rx,
        ))
    }

    /// Announces this session until a dest answers (or `give_up` passes); returns where the target stands.
    pub async fn hello(&self, job: &str, give_up: Duration) -> Result<HelloReply, TransportError> {
        let auth = self.opts.session_key.as_ref().map(|k| k.sign_hello(job, self.session)).unwrap_or_default();
        let hello =
            Hello { version: WIRE_FORMAT_VERSION, job: job.to_string(), session: self.session, auth }.encode_to_vec();
        let deadline = Instant::now() + give_up;
        loop {
            let request = self.client.request(self.subjects.hello.clone(), Bytes::from(hello.clone()));
            match tokio::time::timeout(Duration::from_secs(3), request).await {
                Ok(Ok(msg)) => {
                    let reply = HelloReply::decode(msg.payload.as_ref())
                        .map_err(|e| TransportError::Codec(format!("hello reply: {e}")))?;
                    if !reply.error.is_empty() && reply.retry {
                        return Err(TransportError::SessionReset(reply.error));
                    }
                    if !reply.error.is_empty() {
                        return Err(TransportError::Refused(reply.error));
                    }
                    return Ok(reply);
                }
                Ok(Err(e)) => debug!(error = %e, "no dest answered the hello yet"),
                Err(_) => debug!("hello timed out"),
            }
            if Instant::now() >= deadline {
                return Err(TransportError::Unavailable(format!(
                    "no dest task answered on {} within {} s (is the dest task running and connected to the same NATS?)",
                    self.subjects.hello,
                    give_up.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    pub fn in_flight(&self) -> u64 {
        self.next_seq - 1 - self.acked.load(Ordering::Acquire)
    }

    fn check_refused(&self) -> Result<(), TransportError> {
        match self.refused.lock().ok().and_then(|r| r.clone()) {
            Some(reason) => Err(TransportError::SessionReset(reason)),
            None => Ok(()),
        }
    }

    /// Waits until at most `limit` batches are unacknowledged; an ack silence longer than the timeout is an error.
    pub async fn wait_for_window(&self, limit: u64) -> Result<(), TransportError> {
        loop {
            self.check_refused()?;
            if self.in_flight() <= limit {
                return Ok(());
            }
            let notified = self.ack_arrived.notified();
            let silent_for = self.last_ack_at.lock().map(|t| t.elapsed()).unwrap_or_default();
            if silent_for >= self.opts.ack_timeout {
                return Err(TransportError::AckTimeout {
                    in_flight: self.in_flight(),
                    seconds: self.opts.ack_timeout.as_secs(),
                });
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), notified).await;
        }
    }

    /// Sends one batch (waiting for window space first). Returns its sequence number.
    pub async fn send(&mut self, payload: &[u8]) -> Result<u64, TransportError> {
        self.wait_for_window(self.opts.window.max(1) as u64 - 1).await?;
        if self.in_flight() == 0 {
            if let Ok(mut t) = self.last_ack_at.lock() {
                *t = Instant::now();
            }
        }
        let seq = self.next_seq;
        let packed = compress(self.opts.compression, payload)?;
        let chunks: Vec<&[u8]> = if packed.is_empty() { vec![&[]] } else { packed.chunks(self.max_frame).collect() };
        let parts = chunks.len();
        for (part, chunk) in chunks.into_iter().enumerate() {
            let frame = BatchFrame {
                version: WIRE_FORMAT_VERSION,
                session: self.session,
                seq,
                part: part as u32,
                parts: parts as u32,
                compression: self.opts.compression.kind as i32,
                uncompressed_len: payload.len() as u64,
                data: chunk.to_vec(),
            }
            .encode_to_vec();
            self.throttle(frame.len() as u64).await;
            self.client
                .publish(self.subjects.batch.clone(), Bytes::from(frame))
                .await
                .map_err(|e| TransportError::Unavailable(format!("publishing to {}: {e}", self.subjects.batch)))?;
        }
        self.bytes_raw += payload.len() as u64;
        self.bytes_sent += packed.len() as u64;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Waits until every sent batch is acknowledged (on clean stop).
    pub async fn drain(&self) -> Result<(), TransportError> {
        let _ = self.client.flush().await;
        self.wait_for_window(0).await
    }

    /// Like [`NatsSource::drain`], but gives up after `limit`; returns how many batches stayed unacknowledged.
    pub async fn drain_for(&self, limit: Duration) -> u64 {
        match tokio::time::timeout(limit, self.drain()).await {
            Ok(Ok(())) => 0,
            _ => self.in_flight(),
        }
    }

    async fn throttle(&mut self, bytes: u64) {
        let Some(limit) = self.opts.rate_limit_bytes_per_s else {
            return;
        };
        let (start, used) = &mut self.rate_window;
        if start.elapsed() >= Duration::from_secs(1) {
            *start = Instant::now();
            *used = 0;
        }
        *used += bytes;
        if *used > limit {
            let wait = Duration::from_secs(1).saturating_sub(start.elapsed());
            tokio::time::sleep(wait).await;
            self.rate_window = (Instant::now(), 0);
        }
    }
}

/// What the dest side receives.
#[derive(Debug)]
pub enum DestEvent {
    /// A src announces a session; answer with [`NatsDest::answer_hello`].
    Hello { hello: Hello, reply: Option<async_nats::Subject> },
    /// The next complete batch of the current session, in order.
    Batch { session: u64, seq: u64, payload: Vec<u8> },
}

/// Sends the dest's acks; see [`NatsDest::acker`].
#[derive(Clone)]
pub struct NatsAcker {
    client: Client,
    subject: String,
}

impl NatsAcker {
    /// Acknowledges every batch up to `seq` of `session`, like [`NatsDest::ack`].
    pub async fn ack(
        &self,
        session: u64,
        seq: u64,
        position: Option<dtle_proto::v1::Position>,
    ) -> Result<(), TransportError> {
        let ack = Ack { session, seq, position, error: String::new() };
        self.client
            .publish(self.subject.clone(), Bytes::from(ack.encode_to_vec()))
            .await
            .map_err(|e| TransportError::Unavailable(format!("publishing ack: {e}")))?;
        // Acks are few (one per applied group) and the src waits for them: send now, not when a buffer fills. A
        // flush waits for the connection: bounded, so a NATS that stays down makes the task restart (and a stop
        // request be heard) instead of waiting for it forever.
        match tokio::time::timeout(ACK_FLUSH_LIMIT, self.client.flush()).await {
            Ok(flushed) => flushed.map_err(|e| TransportError::Unavailable(format!("flushing ack: {e}"))),
            Err(_) => Err(TransportError::Unavailable(format!(
                "flushing ack: NATS did not take it within {} s (the server is unreachable)",
                ACK_FLUSH_LIMIT.as_secs()
            ))),
        }
    }
}

impl NatsAcker {
    /// Tells the src of `session` that the dest is alive and still applying what it sent (an ack of nothing new):
    /// a group that takes longer than the src's ack timeout does not end the session. Not flushed: it goes with the
    /// connection's next write, and a NATS that is down fails the next real ack instead.
    pub async fn keepalive(&self, session: u64) -> Result<(), TransportError> {
        let ack = Ack { session, seq: 0, position: None, error: String::new() };
        self.client
            .publish(self.subject.clone(), Bytes::from(ack.encode_to_vec()))
            .await
            .map_err(|e| TransportError::Unavailable(format!("publishing a keepalive: {e}")))
    }
}

/// How long an ack may wait for NATS to take it.
const ACK_FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// The dest side of a job's NATS link.
pub struct NatsDest {
    client: Client,
    subjects: Subjects,
    hellos: Subscriber,
    batches: Subscriber,
    session: Option<u64>,
    expected_seq: u64,
    broken: bool,
    partial: Vec<u8>,
    partial_parts: u32,
    max_batch_bytes: u64,
    job: String,
    session_key: Option<SessionKey>,
    /// Sessions accepted by this process: a hello of one of them again (a replay, or a src retrying a hello whose
    /// answer was lost) is refused without touching the live session; a real src then starts a new session.
    accepted_sessions: std::collections::HashSet<u64>,
}

impl NatsDest {
    pub async fn bind(opts: &NatsOptions, job: &str) -> Result<NatsDest, TransportError> {
        let client = connect(opts, &format!("dtle dest {job}")).await?;
        let subjects = Subjects::for_job(job);
        let sub = |s: String| {
            let client = client.clone();
            async move {
                client
                    .subscribe(s.clone())
                    .await
                    .map_err(|e| TransportError::Unavailable(format!("subscribing to {s}: {e}")))
            }
        };
        let hellos = sub(subjects.hello.clone()).await?;
        let batches = sub(subjects.batch.clone()).await?;
        client.flush().await.map_err(|e| TransportError::Unavailable(format!("NATS flush: {e}")))?;
        Ok(NatsDest {
            client,
            subjects,
            hellos,
            batches,
            session: None,
            expected_seq: 1,
            broken: false,
            partial: Vec::new(),
            partial_parts: 0,
            max_batch_bytes: 1 << 30,
            job: job.to_string(),
            session_key: opts.session_key.clone(),
            accepted_sessions: std::collections::HashSet::new(),
        })
    }

    /// Why a hello may not start a session here (not signed with the job's session key, or a session seen before),
    /// if it may not. Such a hello is refused without touching the live session.
    fn hello_rejection(&self, hello: &Hello) -> Option<String> {
        if let Some(key) = &self.session_key {
            if hello.auth.is_empty() {
                return Some(
                    "this dest accepts only authenticated sessions (signed with dtle/<job>/NatsSessionKey); run the \
                     same dtle version on both sides, with the same Consul"
                        .into(),
                );
            }
            if hello.job != self.job || !key.verify_hello(&self.job, hello.session, &hello.auth) {
                return Some(
                    "the hello is not signed with this dest's session key (a forged hello, or a key read before the \
                     dest restarted: read dtle/<job>/NatsSessionKey again)"
                        .into(),
                );
            }
        }
        if self.accepted_sessions.contains(&hello.session) {
            return Some(format!(
                "session {} was already started with this dest (a replayed hello); start a new session",
                hello.session
            ));
        }
        None
    }

    /// Accepts (error empty) or refuses a hello. Accepting starts expecting batch 1 of that session.
    pub async fn answer_hello(
        &mut self,
        hello: &Hello,
        reply: Option<async_nats::Subject>,
        answer: HelloReply,
    ) -> Result<(), TransportError> {
        if answer.error.is_empty() {
            self.accepted_sessions.insert(hello.session);
            self.session = Some(hello.session);
            self.expected_seq = 1;
            self.broken = false;
            self.partial.clear();
            self.partial_parts = 0;
        }
        if let Some(reply) = reply {
            self.client
                .publish(reply, Bytes::from(answer.encode_to_vec()))
                .await
                .map_err(|e| TransportError::Unavailable(format!("answering hello: {e}")))?;
        }
        Ok(())
    }

    /// Acknowledges every batch up to `seq` of `session`.
    pub async fn ack(
        &self,
        session: u64,
        seq: u64,
        position: Option<dtle_proto::v1::Position>,
    ) -> Result<(), TransportError> {
        self.acker().ack(session, seq, position).await
    }

    /// A handle that sends acks from another task (a dest that acknowledges after an asynchronous delivery).
    pub fn acker(&self) -> NatsAcker {
        NatsAcker { client: self.client.clone(), subject: self.subjects.ack.clone() }
    }

    async fn refuse(&mut self, session: u64, reason: String) {
        warn!(session, %reason, "refusing the src session; it will start again from the target's position");
        self.broken = true;
        let ack = Ack { session, seq: 0, position: None, error: reason };
        let _ = self.client.publish(self.subjects.ack.clone(), Bytes::from(ack.encode_to_vec())).await;
    }

    /// The next hello or complete in-order batch. Frames of other sessions are ignored; a gap refuses the session.
    pub async fn next(&mut self) -> Result<DestEvent, TransportError> {
        loop {
            tokio::select! {
                msg = self.hellos.next() => {
                    let msg = msg.ok_or(TransportError::Closed)?;
                    match Hello::decode(msg.payload.as_ref()) {
                        Ok(hello) => match self.hello_rejection(&hello) {
                            None => return Ok(DestEvent::Hello { hello, reply: msg.reply }),
                            Some(error) => {
                                warn!(session = hello.session, %error, "refusing a hello; the live session goes on");
                                if let Some(reply) = msg.reply {
                                    let answer =
                                        HelloReply { version: WIRE_FORMAT_VERSION, error, retry: true, ..Default::default() };
                                    let _ = self.client.publish(reply, Bytes::from(answer.encode_to_vec())).await;
                                }
                            }
                        },
                        Err(e) => warn!(error = %e, "ignoring an unreadable hello"),
                    }
                }
                msg = self.batches.next() => {
                    let msg = msg.ok_or(TransportError::Closed)?;
                    let Ok(frame) = BatchFrame::decode(msg.payload.as_ref()) else {
                        warn!("ignoring an unreadable batch frame");
                        continue;
                    };
                    if Some(frame.session) != self.session || self.broken {
                        continue;
                    }
                    if frame.version != WIRE_FORMAT_VERSION {
                        self.refuse(frame.session, format!("wire format version {} is not supported by this dest (it speaks {WIRE_FORMAT_VERSION}); run the same dtle version on both sides", frame.version)).await;
                        continue;
                    }
                    let expected_part = self.partial_parts;
                    if frame.seq != self.expected_seq || frame.part != expected_part || frame.parts == 0 {
                        let reason = format!("gap in the batch stream: expected batch {} part {expected_part}, got batch {} part {}", self.expected_seq, frame.seq, frame.part);
                        self.refuse(frame.session, reason).await;
                        continue;
                    }
                    if frame.uncompressed_len > self.max_batch_bytes {
                        self.refuse(frame.session, format!("batch of {} bytes exceeds the limit", frame.uncompressed_len)).await;
                        continue;
                    }
                    self.partial.extend_from_slice(&frame.data);
                    self.partial_parts = frame.part + 1;
                    if self.partial_parts < frame.parts {
                        continue;
                    }
                    let kind = Compression::try_from(frame.compression).unwrap_or(Compression::None);
                    let data = std::mem::take(&mut self.partial);
                    self.partial_parts = 0;
                    let payload = match decompress(kind, &data, frame.uncompressed_len as usize) {
                        Ok(p) => p,
                        Err(e) => {
                            self.refuse(frame.session, format!("batch {}: {e}", frame.seq)).await;
                            continue;
                        }
                    };
                    self.expected_seq += 1;
                    return Ok(DestEvent::Batch { session: frame.session, seq: frame.seq, payload });
                }
            }
        }
    }
}

#[cfg(test)]
mod session_key_tests {
    use super::SessionKey;

    #[test]
    fn a_hello_verifies_only_with_its_key_job_and_session() {
        let key = SessionKey::generate().unwrap();
        let auth = key.sign_hello("job1", 42);
        assert!(key.verify_hello("job1", 42, &auth));
        assert!(!key.verify_hello("job1", 43, &auth), "another session");
        assert!(!key.verify_hello("job2", 42, &auth), "another job");
        assert!(!SessionKey::generate().unwrap().verify_hello("job1", 42, &auth), "another key");
        assert!(!key.verify_hello("job1", 42, &auth[..31]), "truncated");
        assert!(!key.verify_hello("job1", 42, b""), "unsigned");
    }

    #[test]
    fn keys_round_trip_through_hex_and_bad_text_is_refused() {
        let key = SessionKey::generate().unwrap();
        assert_eq!(SessionKey::from_hex(&key.to_hex()).unwrap(), key);
        assert_eq!(key.to_hex().len(), 64);
        assert!(SessionKey::from_hex("00ff").is_err(), "too short");
        assert!(SessionKey::from_hex(&"zz".repeat(16)).is_err(), "not hex");
        assert_eq!(format!("{key:?}"), "SessionKey(hidden)", "never printed");
    }
}
