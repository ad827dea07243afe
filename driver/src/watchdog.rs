//! The dest's apply watchdog: an apply that makes no progress never waits in silence.
//!
//! Every apply of a group of changes runs under [`ApplyWatchdog::guard`]. While it runs, the job's
//! `dtle_delay_seconds` gauge follows the oldest source commit time of the group once a second, so a stalled apply
//! shows as a growing lag and alerts fire. An apply still unfinished after `WatchdogTimeout` seconds is abandoned
//! (its target connection is dropped, which rolls its transaction back) with a transient error: the task logs why
//! and restarts its pipeline from the target's position. Groups with DDL and the end of a table's full copy (which
//! builds its deferred indexes) are exempt: an `ALTER TABLE` of a big table can legitimately run for hours.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dtle_mysql::Change;
use tracing::warn;

use crate::config::ResolvedJob;
use crate::error::DriverError;
use crate::metrics::JobMetrics;

/// How often the lag gauge is refreshed while an apply runs.
const LAG_REFRESH: Duration = Duration::from_secs(1);

pub(crate) struct ApplyWatchdog {
    job: String,
    /// `None`: never abandon an apply (`WatchdogTimeout = 0`).
    limit: Option<Duration>,
    metrics: Arc<JobMetrics>,
}

impl ApplyWatchdog {
    pub(crate) fn new(job: &ResolvedJob, metrics: Arc<JobMetrics>) -> Self {
        let seconds = job.src.watchdog_timeout.max(0) as u64;
        Self::with_limit(&job.name, (seconds > 0).then(|| Duration::from_secs(seconds)), metrics)
    }

    pub(crate) fn with_limit(job: &str, limit: Option<Duration>, metrics: Arc<JobMetrics>) -> Self {
        ApplyWatchdog { job: job.to_string(), limit, metrics }
    }

    /// Runs `apply` (the apply of `changes`), refreshing the lag gauge while it runs, and abandons it with
    /// [`DriverError::Stalled`] when it has not finished within the limit (see the module doc for the exemptions).
    pub(crate) async fn guard<T, E>(
        &self,
        changes: &[Change],
        apply: impl Future<Output = Result<T, E>>,
    ) -> Result<T, DriverError>
    where
        E: Into<DriverError>,
    {
        let oldest_source_ts = changes.iter().find_map(source_timestamp).filter(|ts| *ts > 0);
        let limit = self.limit.filter(|_| !changes.iter().any(may_run_long));
        let refreshing = with_ticks(apply, LAG_REFRESH, || {
            if let Some(ts) = oldest_source_ts {
                let lag = (unix_now_secs() - f64::from(ts)).max(0.0);
                if lag > self.metrics.lag_seconds() {
                    self.metrics.set_lag_seconds(lag);
                }
            }
            std::future::ready(())
        });
        let Some(limit) = limit else {
            return refreshing.await.map_err(Into::into);
        };
        match tokio::time::timeout(limit, refreshing).await {
            Ok(result) => result.map_err(Into::into),
            Err(_) => {
                let seconds = limit.as_secs();
                warn!(job = %self.job, seconds, changes = changes.len(), "watchdog: an apply on the target made no progress; abandoning it and restarting from the target's position");
                Err(DriverError::Stalled { job: self.job.clone(), seconds })
            }
        }
    }
}

/// Runs `work`, running `tick` every `period` while it is not done (the first one a period after the start): the
/// one loop for "say something while it runs" (the lag gauge here, the dest's keepalives to the src). `work` is not
/// polled while a tick runs, so ticks stay short.
pub(crate) async fn with_ticks<T, F: Future<Output = ()>>(
    work: impl Future<Output = T>,
    period: Duration,
    mut tick: impl FnMut() -> F,
) -> T {
    tokio::pin!(work);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = ticks.tick() => tick().await,
        }
    }
}

fn source_timestamp(change: &Change) -> Option<u32> {
    match change {
        Change::Tx(t) => Some(t.source_timestamp),
        Change::Heartbeat { source_timestamp, .. } => Some(*source_timestamp),
        _ => None,
    }
}

/// Applies that may legitimately take long: DDL, and the end of a table's full copy (its deferred indexes).
fn may_run_long(change: &Change) -> bool {
    match change {
        Change::Tx(t) => t.has_ddl(),
        Change::SnapshotDone { .. } | Change::CreateTable { .. } => true,
        _ => false,
    }
}

fn unix_now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtle_metadata::Position;

    fn heartbeat(source_timestamp: u32) -> Change {
        Change::Heartbeat { position: Position::default(), source_timestamp }
    }

    fn watchdog(job: &str, limit: Option<Duration>) -> (ApplyWatchdog, Arc<JobMetrics>) {
        let metrics = crate::metrics::job(job);
        (ApplyWatchdog::with_limit(job, limit, metrics.clone()), metrics)
    }

    #[tokio::test(start_paused = true)]
    async fn an_apply_that_never_finishes_is_abandoned_with_a_transient_error() {
        let (w, _) = watchdog("watchdog-abandons", Some(Duration::from_secs(5)));
        let started = tokio::time::Instant::now();
        let result: Result<(), DriverError> =
            w.guard(&[heartbeat(1)], std::future::pending::<Result<(), DriverError>>()).await;
        assert!(matches!(result, Err(DriverError::Stalled { seconds: 5, .. })), "{result:?}");
        assert!(result.unwrap_err().is_transient());
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_apply_passes_its_result_and_off_means_no_limit() {
        let (w, _) = watchdog("watchdog-passes", Some(Duration::from_secs(5)));
        let ok: Result<u32, DriverError> = w.guard(&[heartbeat(1)], async { Ok::<_, DriverError>(7) }).await;
        assert_eq!(ok.unwrap(), 7);
        let (off, _) = watchdog("watchdog-off", None);
        let changes = [heartbeat(1)];
        let slow = off.guard(&changes, async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, DriverError>(())
        });
        assert!(slow.await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_lag_gauge_grows_while_an_apply_is_stuck() {
        let (w, metrics) = watchdog("watchdog-lag", None);
        let ten_minutes_ago = (unix_now_secs() - 600.0) as u32;
        metrics.set_lag_seconds(0.0);
        let changes = [heartbeat(ten_minutes_ago)];
        let stuck = w.guard(&changes, std::future::pending::<Result<(), DriverError>>());
        let _ = tokio::time::timeout(Duration::from_millis(2500), stuck).await;
        assert!(metrics.lag_seconds() >= 599.0, "lag {}", metrics.lag_seconds());
    }
}
