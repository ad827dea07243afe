//! Where a job's src and dest tasks meet over NATS, and how the dest knows that a src belongs to the job.
//!
//! - **Session key.** With positions in Consul, each dest process makes a random session key and publishes it
//!   under `dtle/<job>/NatsSessionKey` before it answers anyone; the src reads it and signs its hello with it
//!   (`dtle_transport::nats::SessionKey`). The dest accepts a new session only when the hello is signed with its key
//!   and the session is new: a forged or replayed hello is refused and the live session goes on. Consul is the trust
//!   boundary dtle users already run: whoever may read `dtle/` (with ACLs, dtle's token) can start a session.
//!   Without Consul, sessions are not authenticated: protect the NATS subjects with NATS credentials.
//! - **Cluster mode** ([`NatsMeeting::ViaConsul`], Go dtle's `nats_bind`): every node's plugin serves NATS itself.
//!   The dest connects to its own node's server and publishes the address src nodes reach it at under
//!   `dtle/<job>/NatsAddr`; the src connects to whatever address the key holds, and starts again when the key
//!   changes (the dest was rescheduled to another node).

use std::time::{Duration, Instant};

use dtle_metadata::{ConsulStore, KEY_NATS_ADDR, KEY_NATS_SESSION_KEY};
use dtle_transport::nats::{NatsDest, NatsOptions, SessionKey};
use dtle_transport::TransportError;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::DriverError;
use crate::standalone::RunOptions;

/// How often a src reads the meeting keys while it waits for them, and while it watches `NatsAddr`.
const KEY_POLL: Duration = Duration::from_secs(2);
/// How often a src that waits for its dest says so.
const WAITING_NOTE: Duration = Duration::from_secs(30);

/// How the src and dest tasks of a job over NATS meet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NatsMeeting {
    /// Both connect to the NATS servers in the options' `urls` (a shared NATS deployment).
    #[default]
    Shared,
    /// Go dtle's cluster mode: the dest's node serves NATS; the dest publishes `advertise` (`host:port`) under
    /// `dtle/<job>/NatsAddr` and the src connects to what that key holds.
    ViaConsul { advertise: String },
}

fn consul(opts: &RunOptions) -> Result<Option<ConsulStore>, DriverError> {
    Ok(match &opts.consul {
        Some(cfg) => Some(ConsulStore::connect(cfg.clone())?),
        None => None,
    })
}

/// The dest's side: binds the link (with a new session key when Consul is there), then publishes the key, and in
/// cluster mode the node's NATS address, so the src finds and proves itself to this process.
pub async fn bind_dest(job: &str, mut nats: NatsOptions, opts: &RunOptions) -> Result<NatsDest, DriverError> {
    let store = consul(opts)?;
    let key = match &store {
        Some(_) => Some(SessionKey::generate()?),
        None => None,
    };
    nats.session_key = key.clone();
    let link = NatsDest::bind(&nats, job).await?;
    if let (Some(store), Some(key)) = (&store, &key) {
        store.put_job_key(job, KEY_NATS_SESSION_KEY, key.to_hex().as_bytes()).await?;
        if let NatsMeeting::ViaConsul { advertise } = &opts.nats_meeting {
            store.put_job_key(job, KEY_NATS_ADDR, advertise.as_bytes()).await?;
            info!(job, nats_addr = %advertise, "dest: published this node's NATS address for the src task");
        }
    }
    Ok(link)
}

/// What a src connects with: the options (session key, and in cluster mode the dest's address), and in cluster
/// mode a watch that ends when the dest moves.
pub struct SrcMeeting {
    pub nats: NatsOptions,
    pub dest_moved: Option<DestMoved>,
}

/// The src's side: reads the dest's session key (and address) from Consul, waiting until the dest published them.
/// `None` when `shutdown` came first.
pub async fn meet_dest(
    job: &str,
    mut nats: NatsOptions,
    opts: &RunOptions,
    shutdown: &CancellationToken,
) -> Result<Option<SrcMeeting>, DriverError> {
    let Some(store) = consul(opts)? else {
        return Ok(Some(SrcMeeting { nats, dest_moved: None }));
    };
    let via_consul = matches!(opts.nats_meeting, NatsMeeting::ViaConsul { .. });
    let started = Instant::now();
    let mut last_note = Instant::now();
    loop {
        let key = store.get_job_key(job, KEY_NATS_SESSION_KEY).await?;
        let addr = if via_consul { store.get_job_key(job, KEY_NATS_ADDR).await? } else { Some(Vec::new()) };
        if let (Some(key), Some(addr)) = (key, addr) {
            let key_text = String::from_utf8_lossy(&key);
            let key = SessionKey::from_hex(&key_text).map_err(|reason| DriverError::InvalidField {
                field: format!("Consul key {}/{job}/{KEY_NATS_SESSION_KEY}", store.key_prefix()),
                value: "(secret, not shown)".into(),
                reason: format!("{reason}; delete the key and restart the dest task, which writes a new one"),
            })?;
            nats.session_key = Some(key);
            let mut dest_moved = None;
            if via_consul {
                let addr = String::from_utf8_lossy(&addr).trim().to_string();
                nats.urls = vec![if addr.contains("://") { addr.clone() } else { format!("nats://{addr}") }];
                info!(job, nats_addr = %addr, "src: the dest task's NATS address, from Consul");
                dest_moved = Some(DestMoved::watch(store, job, addr));
            }
            return Ok(Some(SrcMeeting { nats, dest_moved }));
        }
        if last_note.elapsed() >= WAITING_NOTE {
            warn!(
                job,
                waited_s = started.elapsed().as_secs(),
                "src: waiting for the dest task to publish {}/{job}/{KEY_NATS_SESSION_KEY}{} in Consul (is the dest \
                 task running, with the same Consul?)",
                store.key_prefix(),
                if via_consul { format!(" and {KEY_NATS_ADDR}") } else { String::new() }
            );
            last_note = Instant::now();
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(KEY_POLL) => {}
        }
    }
}

/// Watches `dtle/<job>/NatsAddr` for a src connected to the address it held.
pub struct DestMoved {
    moved: tokio::sync::oneshot::Receiver<String>,
    watcher: tokio::task::JoinHandle<()>,
}

impl DestMoved {
    fn watch(store: ConsulStore, job: &str, connected_to: String) -> DestMoved {
        let (tx, moved) = tokio::sync::oneshot::channel();
        let job = job.to_string();
        let watcher = tokio::spawn(async move {
            loop {
                tokio::time::sleep(KEY_POLL).await;
                // Consul being away is not a move: the link itself tells whether the dest is still there.
                if let Ok(Some(value)) = store.get_job_key(&job, KEY_NATS_ADDR).await {
                    let now = String::from_utf8_lossy(&value).trim().to_string();
                    if now != connected_to {
                        let _ = tx.send(now);
                        return;
                    }
                }
            }
        });
        DestMoved { moved, watcher }
    }

    /// Ends with the transient error that restarts the src when the dest published another address.
    pub async fn moved(&mut self) -> DriverError {
        match (&mut self.moved).await {
            Ok(addr) => DriverError::Transport(TransportError::Unavailable(format!(
                "the dest task moved to {addr} (dtle/<job>/NatsAddr); starting a new session there"
            ))),
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for DestMoved {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}
