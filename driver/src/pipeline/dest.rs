//! The dest loop: link → sink → durable → acknowledgement, the same for every sink and link.
//!
//! It takes the next event of the link: a hello starts a new session (the sink answers where the target stands); a
//! batch is grouped with the batches of the same session already waiting (up to the group limits, and the sink's
//! group wait), applied under the apply watchdog, observed (metrics, progress), and handed with its
//! [`Durable`] to the acknowledger. The acknowledger waits for each group to be durable, in order, and acknowledges
//! it on the link with its position: acknowledgements leave in the order the batches came. While a group is applied
//! or waits to be durable, the src is told every [`KEEPALIVE`] that the dest is still at it.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument};

use super::link::{AckToken, Acker, DestLink, LinkEvent};
use super::observe::Observer;
use super::sink::{Durable, Sink};
use super::{MAX_GROUP_BYTES, MAX_GROUP_CHANGES};
use crate::config::ResolvedJob;
use crate::error::DriverError;
use crate::metrics::{self, JobMetrics};
use crate::watchdog::ApplyWatchdog;
use dtle_mysql::Change;

/// Groups applied and not yet durable, at most (a Kafka producer's own queue bounds the bytes).
const MAX_GROUPS_IN_FLIGHT: usize = 256;

/// How often a dest applying one group (or waiting for it to be durable) tells the src it is alive. A group can be
/// a whole window of batches (megabytes) on a slow target: without this, the src's ack timeout ended the session
/// and the group was redone, again and again (the chaos campaign on a starved machine, issue 12). A stuck target is
/// the apply watchdog's to catch.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long sending one keepalive may take (the link's connection is down: skipped).
const KEEPALIVE_SEND_LIMIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Runs `work` for a group of `session`, sending keepalives on `acker` meanwhile.
async fn with_keepalive<T>(acker: &dyn Acker, session: u64, work: impl std::future::Future<Output = T>) -> T {
    crate::watchdog::with_ticks(work, KEEPALIVE, || async move {
        // A keepalive that cannot go out is no error of the group: the acknowledgement will tell.
        match tokio::time::timeout(KEEPALIVE_SEND_LIMIT, acker.keepalive(session)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(session, error = %e, "could not send a keepalive to the src"),
            Err(_) => debug!(session, "a keepalive to the src did not go out in time"),
        }
    })
    .await
}

/// Runs the dest until `stop`, the link's end (the src side is gone for good), or an error.
pub(crate) async fn run_dest(
    job: &ResolvedJob,
    sink: &mut dyn Sink,
    link: &mut dyn DestLink,
    progress_bar: bool,
    stop: &CancellationToken,
) -> Result<(), DriverError> {
    let job_metrics = metrics::job(&job.name);
    let mut observer = Observer::new(&job.name, progress_bar, job_metrics.clone());
    let watchdog = ApplyWatchdog::new(job, job_metrics.clone());
    let (to_ack, acks) = mpsc::channel::<(AckToken, Durable, Instant)>(MAX_GROUPS_IN_FLIGHT);
    let mut acknowledger = tokio::spawn(acknowledge(link.acker(), acks, job_metrics.clone()).in_current_span());
    let keepalive = link.acker();
    let mut acknowledger_result = None;
    // An event taken from the link by `gather` that belongs to the next group, and when it arrived.
    let mut pending: Option<(LinkEvent, Instant)> = None;
    let result: Result<(), DriverError> = loop {
        let (event, received) = match pending.take() {
            Some(event) => event,
            None => tokio::select! {
                _ = stop.cancelled() => break Ok(()),
                // A failed acknowledgement (a delivery or the link) ends the dest: nothing after it may go out.
                done = &mut acknowledger => {
                    acknowledger_result = Some(joined(done));
                    break Ok(());
                }
                event = link.next() => match event {
                    Ok(Some(event)) => (event, Instant::now()),
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                },
            },
        };
        match event {
            LinkEvent::Hello(hello) => {
                let session = hello.session;
                let start = match sink.session_start(&job.name).await {
                    Ok(start) => start,
                    Err(e) => break Err(e),
                };
                info!(job = %job.name, session, target = %start, "dest: src connected");
                if let Err(e) = link.answer(hello, start).await {
                    break Err(e);
                }
            }
            LinkEvent::Batch { token, changes } => {
                let (changes, token, next) = match gather(link, token, changes, sink.group_wait()).await {
                    Ok(gathered) => gathered,
                    Err(e) => break Err(e),
                };
                pending = next.map(|event| (event, Instant::now()));
                if to_ack.is_closed() {
                    break Ok(());
                }
                observer.starting(&changes);
                let apply_started = Instant::now();
                job_metrics.dest_queue.observe(apply_started - received);
                let before = sink.stats();
                let applying = watchdog.guard(&changes, sink.apply(&changes));
                let durable = match with_keepalive(keepalive.as_ref(), token.session, applying).await {
                    Ok(durable) => durable,
                    Err(e) => break Err(e),
                };
                let after = sink.stats();
                observer.applied(&changes, &before, &after);
                // Waits while MAX_GROUPS_IN_FLIGHT groups are not durable yet; fails once the acknowledger stopped.
                if to_ack.send((token, durable, apply_started)).await.is_err() {
                    break Ok(());
                }
            }
        }
    };
    observer.finish();
    drop(to_ack);
    let acked = match acknowledger_result {
        Some(done) => done,
        None => joined(acknowledger.await),
    };
    sink.close().await;
    info!(job = %job.name, transactions = sink.stats().transactions, "dest: stopped");
    // An acknowledgement's failure is the cause when both failed.
    acked.and(result)
}

fn joined(done: Result<Result<(), DriverError>, tokio::task::JoinError>) -> Result<(), DriverError> {
    done.unwrap_or_else(|e| Err(DriverError::Other(format!("the acknowledger failed: {e}"))))
}

/// Acknowledges each group once it is durable, in the order the groups were applied (and observes how long each
/// took from the start of its apply).
async fn acknowledge(
    acker: Arc<dyn Acker>,
    mut groups: mpsc::Receiver<(AckToken, Durable, Instant)>,
    job_metrics: Arc<JobMetrics>,
) -> Result<(), DriverError> {
    while let Some((token, durable, apply_started)) = groups.recv().await {
        let position = with_keepalive(acker.as_ref(), token.session, durable.wait()).await?;
        job_metrics.dest_apply.observe(apply_started.elapsed());
        acker.ack(token, position).await?;
    }
    Ok(())
}

/// The changes of the batch `token` and of the batches of the same session already waiting on `link` (up to the
/// group limits; with the sink's group wait, waiting for more while the group is small), the last batch taken, and
/// an event of another kind or session that ended the group (to handle next).
async fn gather(
    link: &mut dyn DestLink,
    mut token: AckToken,
    mut changes: Vec<Change>,
    group_wait: Option<(usize, std::time::Duration)>,
) -> Result<(Vec<Change>, AckToken, Option<LinkEvent>), DriverError> {
    let mut bytes: usize = changes.iter().map(Change::approx_size).sum();
    let deadline = group_wait.map(|(_, wait)| tokio::time::Instant::now() + wait);
    while changes.len() < MAX_GROUP_CHANGES && bytes < MAX_GROUP_BYTES {
        let next = match link.try_next()? {
            Some(event) => Some(event),
            None => match (group_wait, deadline) {
                (Some((group_bytes, _)), Some(deadline)) if bytes < group_bytes => {
                    match tokio::time::timeout_at(deadline, link.next()).await {
                        Ok(event) => event?,
                        Err(_) => None,
                    }
                }
                _ => None,
            },
        };
        match next {
            Some(LinkEvent::Batch { token: t, changes: more }) if t.session == token.session => {
                bytes += more.iter().map(Change::approx_size).sum::<usize>();
                changes.extend(more);
                token = t;
            }
            Some(other) => return Ok((changes, token, Some(other))),
            None => break,
        }
    }
    Ok((changes, token, None))
}
