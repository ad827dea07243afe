//! Where changes go: the [`Sink`] trait and its two implementations. What "durable" means is the sink's: the MySQL
//! applier's groups are durable when their target transaction committed (with the position in it); the Kafka
//! producer's when the broker acknowledged every message before the position.

use std::time::Duration;

use async_trait::async_trait;
use dtle_kafka::{KafkaSink, Produced};
use dtle_metadata::{JobStage, Position};
use dtle_mysql::applier::{Applier, ApplyStats};
use dtle_mysql::snapshot::TableResume;
use dtle_mysql::Change;
use tracing::{info, warn};

use super::session::SessionStart;
use crate::config::KafkaConfig;
use crate::error::DriverError;

/// A group of changes handed to a sink, on its way to being durable.
pub(crate) enum Durable {
    /// Durable already; the position a restart may continue after (when the group gave one).
    Now(Option<Position>),
    /// Durable once the broker acknowledged these messages.
    Broker(Produced),
}

impl Durable {
    /// Waits until the group is durable; its position, if it ends at one a restart may continue after.
    pub(crate) async fn wait(self) -> Result<Option<Position>, DriverError> {
        match self {
            Durable::Now(position) => Ok(position),
            // A Kafka target resumes only incremental positions: a full copy interrupted is sent again.
            Durable::Broker(produced) => Ok(match produced.acknowledged().await? {
                Some((JobStage::Incremental, position)) => Some(position),
                _ => None,
            }),
        }
    }
}

/// A target of the dest loop.
#[async_trait]
pub(crate) trait Sink: Send {
    /// A new session starts (the src (re)started): where the target stands. Called between groups only.
    async fn session_start(&mut self, job: &str) -> Result<SessionStart, DriverError>;
    /// Applies one group of changes, in order.
    async fn apply(&mut self, changes: &[Change]) -> Result<Durable, DriverError>;
    /// Counters, in the applier's shape, for metrics and progress.
    fn stats(&self) -> ApplyStats;
    /// `(bytes, time)`: wait up to `time` for more changes while a group is smaller than `bytes` (Kafka's
    /// MessageGroupMaxSize / MessageGroupTimeout). `None`: take what is queued, never wait.
    fn group_wait(&self) -> Option<(usize, Duration)> {
        None
    }
    /// The dest stops: what is buffered goes out (bounded).
    async fn close(&mut self) {}
}

/// A MySQL/MariaDB target: the applier (the position in the same target transaction as the rows).
pub(crate) struct MysqlSink {
    pub(crate) applier: Applier,
}

#[async_trait]
impl Sink for MysqlSink {
    async fn session_start(&mut self, job: &str) -> Result<SessionStart, DriverError> {
        let applier = &mut self.applier;
        // A big transaction of an earlier session may be half applied in an open target transaction: the new
        // session sends it again from the committed position, so it must not be continued.
        if applier.abandon_open_transaction().await? {
            warn!(job, "a new src session started while a big transaction of the earlier one was being applied; rolled it back, the new session sends it again");
        }
        Ok(match applier.resume_point().await? {
            None => SessionStart::NoPosition,
            Some(rp) if rp.stage == JobStage::Snapshot => {
                // An interrupted full copy continues from the chunks on the target when it can (chunks of an
                // earlier session of this process are committed first); else it starts again.
                applier.finish_snapshot_writes().await?;
                match applier.prepare_snapshot_resume().await? {
                    Some(resume) => {
                        let done = resume.tables.values().filter(|t| **t == TableResume::Done).count();
                        info!(
                            job,
                            tables_done = done,
                            tables_partly_copied = resume.tables.len() - done,
                            "resuming the full copy from the chunks on the target"
                        );
                        SessionStart::ContinueCopy(resume)
                    }
                    None => SessionStart::CopyAgain,
                }
            }
            Some(rp) => SessionStart::Position(rp.position),
        })
    }

    async fn apply(&mut self, changes: &[Change]) -> Result<Durable, DriverError> {
        Ok(Durable::Now(self.applier.apply(changes).await?))
    }

    fn stats(&self) -> ApplyStats {
        self.applier.stats.clone()
    }

    async fn close(&mut self) {
        let st = &self.applier.stats;
        if st.parallel_groups > 0 {
            info!(
                parallel_groups = st.parallel_groups,
                partitions = st.parallel_partitions,
                retried_partitions = st.retried_partitions,
                skipped_applied = st.skipped_applied,
                "parallel apply"
            );
        }
        if st.net_effect_groups > 0 || st.net_effect_fallbacks > 0 {
            info!(
                groups = st.net_effect_groups,
                redone_statement_by_statement = st.net_effect_fallbacks,
                "groups written as their net effect per row"
            );
        }
    }
}

/// A Kafka target: Debezium-compatible messages; no position of its own (the src starts from the position store
/// or the job file), so a crash re-sends at most what the broker had not acknowledged (at-least-once).
pub(crate) struct KafkaTarget {
    sink: KafkaSink,
    group_wait: Option<(usize, Duration)>,
    /// Groups that produced messages (the "target commits" of a Kafka target).
    groups: u64,
}

impl KafkaTarget {
    pub(crate) async fn connect(job: &crate::config::ResolvedJob, k: &KafkaConfig) -> Result<Self, DriverError> {
        let sink = KafkaSink::connect(&crate::kafka_dest::sink_options(job, k)?).await?;
        info!(job = %job.name, topic = %k.topic, brokers = %k.brokers.join(","), "kafka: producing Debezium-compatible JSON");
        let max_bytes = k.message_group_max_size.max(1) as usize;
        let timeout = Duration::from_millis(k.message_group_timeout.clamp(0, 60_000) as u64);
        let group_wait = (max_bytes > 1 && !timeout.is_zero()).then_some((max_bytes, timeout));
        Ok(KafkaTarget { sink, group_wait, groups: 0 })
    }
}

#[async_trait]
impl Sink for KafkaTarget {
    async fn session_start(&mut self, _job: &str) -> Result<SessionStart, DriverError> {
        Ok(SessionStart::NoPosition)
    }

    async fn apply(&mut self, changes: &[Change]) -> Result<Durable, DriverError> {
        let before = self.sink.stats.messages;
        let produced = self.sink.produce(changes).await?;
        self.groups += u64::from(self.sink.stats.messages != before);
        Ok(Durable::Broker(produced))
    }

    fn stats(&self) -> ApplyStats {
        let s = &self.sink.stats;
        ApplyStats {
            snapshot_rows: s.snapshot_rows,
            transactions: s.transactions,
            row_changes: s.row_changes,
            target_commits: self.groups,
            ..Default::default()
        }
    }

    fn group_wait(&self) -> Option<(usize, Duration)> {
        self.group_wait
    }

    async fn close(&mut self) {
        self.sink.flush(Duration::from_secs(10)).await;
        info!(messages = self.sink.stats.messages, bytes = self.sink.stats.bytes, "kafka: stopped");
    }
}
