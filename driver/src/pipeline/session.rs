//! The session protocol between a src and a dest, and the start decision.
//!
//! A src starting a session asks the dest where the target stands; the dest answers with a [`SessionStart`] (the
//! sink's own answer: a MySQL target reads its position table, a Kafka target has no position). The src then
//! decides where to start ([`decide_start`]): the target's position wins, else the position store's, else the job
//! file's start settings. Over NATS the answer travels as a `HelloReply`; [`SessionStart::to_reply`] and
//! [`SessionStart::from_reply`] are the only places that know its stage numbers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dtle_metadata::{Checkpoint, CheckpointStore, GtidState, JobStage, Position};
use dtle_mysql::applier::describe;
use dtle_mysql::conn::Flavor;
use dtle_mysql::snapshot::{current_position, SnapshotResume};
use dtle_mysql::source::StartFrom;
use dtle_proto::v1 as w;
use tracing::{info, warn};

use crate::config::ResolvedJob;
use crate::error::DriverError;
use crate::wire;

/// Where the target stands, as the dest answers a new session.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SessionStart {
    /// The target holds no position for the job (or cannot: Kafka): the src starts from the position store or the
    /// job file.
    NoPosition,
    /// A full copy was interrupted and cannot be continued from what the target has: it starts again.
    CopyAgain,
    /// A full copy was interrupted: it continues from the chunks on the target.
    ContinueCopy(SnapshotResume),
    /// Incremental replication continues after this position.
    Position(Position),
}

impl std::fmt::Display for SessionStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionStart::NoPosition => f.write_str("no position on the target"),
            SessionStart::CopyAgain => f.write_str("an interrupted full copy, to start again"),
            SessionStart::ContinueCopy(resume) => write!(
                f,
                "an interrupted full copy to continue ({} table(s) with chunks, binlog from {})",
                resume.tables.len(),
                describe(&resume.binlog_from)
            ),
            SessionStart::Position(p) => write!(f, "position {}", describe(p)),
        }
    }
}

/// `HelloReply.stage` on the wire (dtle.v1).
mod wire_stage {
    pub const NO_POSITION: u32 = 0;
    pub const COPY_AGAIN: u32 = 1;
    pub const POSITION: u32 = 2;
    pub const CONTINUE_COPY: u32 = 3;
}

impl SessionStart {
    /// The answer as a `HelloReply` accepting the session.
    pub(crate) fn to_reply(&self) -> w::HelloReply {
        let (stage, position, resume_tables) = match self {
            SessionStart::NoPosition => (wire_stage::NO_POSITION, None, Vec::new()),
            SessionStart::CopyAgain => (wire_stage::COPY_AGAIN, None, Vec::new()),
            SessionStart::ContinueCopy(resume) => (
                wire_stage::CONTINUE_COPY,
                Some(wire::position_to_wire(&resume.binlog_from)),
                wire::resume_to_wire(resume),
            ),
            SessionStart::Position(p) => (wire_stage::POSITION, Some(wire::position_to_wire(p)), Vec::new()),
        };
        w::HelloReply {
            version: dtle_proto::WIRE_FORMAT_VERSION,
            error: String::new(),
            stage,
            position,
            resume_tables,
            retry: false,
        }
    }

    /// Reads an accepting `HelloReply`; an unknown stage or a damaged position is an error naming it.
    pub(crate) fn from_reply(reply: w::HelloReply) -> Result<SessionStart, DriverError> {
        let damaged = |e: wire::WireError| DriverError::Other(format!("the dest's answer to the hello: {e}"));
        Ok(match reply.stage {
            wire_stage::NO_POSITION => SessionStart::NoPosition,
            wire_stage::COPY_AGAIN => SessionStart::CopyAgain,
            wire_stage::POSITION => SessionStart::Position(wire::position_from_wire(reply.position).map_err(damaged)?),
            wire_stage::CONTINUE_COPY => SessionStart::ContinueCopy(
                wire::resume_from_wire(reply.position, reply.resume_tables).map_err(damaged)?,
            ),
            other => {
                return Err(DriverError::Other(format!(
                    "the dest answered the hello with an unknown stage {other}; run the same dtle version on both sides"
                )))
            }
        })
    }
}

/// Why a dest of job `job` refuses a src's hello (another wire format or another job), if it does.
pub(crate) fn hello_refusal(hello: &w::Hello, job: &str) -> Option<String> {
    if hello.version != dtle_proto::WIRE_FORMAT_VERSION {
        Some(format!(
            "the src speaks wire format {} and this dest {}; run the same dtle version on both sides",
            hello.version,
            dtle_proto::WIRE_FORMAT_VERSION
        ))
    } else if hello.job != job {
        Some(format!("this dest runs job {job:?}, not {:?}", hello.job))
    } else {
        None
    }
}

/// A session id for one run of the src task.
pub(crate) fn new_session_id() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    nanos ^ (u64::from(std::process::id()) << 32) | 1
}

/// Where the src starts: the target's position wins; else the position store's; else the job file's settings.
pub(crate) async fn decide_start(
    job: &ResolvedJob,
    answer: SessionStart,
    flavor: Flavor,
    store: &dyn CheckpointStore,
    source: &dtle_mysql::Endpoint,
) -> Result<StartFrom, DriverError> {
    Ok(match answer {
        SessionStart::CopyAgain => {
            info!(job = %job.name, "the last full copy did not finish: starting it again");
            StartFrom::Snapshot
        }
        SessionStart::ContinueCopy(resume) => {
            info!(job = %job.name, tables = resume.tables.len(), binlog_from = %describe(&resume.binlog_from), "the last full copy did not finish: continuing it from the chunks on the target");
            StartFrom::ResumeSnapshot(resume)
        }
        SessionStart::Position(position) => {
            info!(job = %job.name, position = %describe(&position), "resuming from the position recorded on the target");
            StartFrom::Position(position)
        }
        SessionStart::NoPosition => start_from_store_or_config(job, flavor, store, source).await?,
    })
}

/// Without a position on the target: the position store's (dtle's behaviour: it wins over the job file's Gtid),
/// else the job file's start settings.
async fn start_from_store_or_config(
    job: &ResolvedJob,
    flavor: Flavor,
    store: &dyn CheckpointStore,
    source: &dtle_mysql::Endpoint,
) -> Result<StartFrom, DriverError> {
    if let Some(cp) = load_stored_position(job, store).await? {
        if cp.value.stage == JobStage::Incremental && cp.value.position != Position::default() {
            info!(job = %job.name, position = %describe(&cp.value.position), "the target has no position for this job; resuming from the position store");
            return Ok(StartFrom::Position(cp.value.position));
        }
    }
    let c = &job.src;
    if !c.gtid.trim().is_empty() {
        let gtid = GtidState::parse_for_config(c.gtid.trim()).map_err(|e| DriverError::InvalidField {
            field: "Gtid".into(),
            value: c.gtid.clone(),
            reason: format!("{e}"),
        })?;
        let matches =
            matches!((&gtid, flavor), (GtidState::Mysql(_), Flavor::Mysql) | (GtidState::Mariadb(_), Flavor::Mariadb));
        if !matches {
            return Err(DriverError::InvalidField {
                field: "Gtid".into(),
                value: c.gtid.clone(),
                reason: format!(
                    "the source is {}; it takes {}",
                    if flavor == Flavor::Mariadb { "MariaDB" } else { "MySQL" },
                    if flavor == Flavor::Mariadb {
                        "a GTID list like 0-1-100"
                    } else {
                        "a GTID set like 3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5"
                    }
                ),
            });
        }
        info!(job = %job.name, gtid = %gtid, "starting incremental replication after the configured Gtid");
        return Ok(StartFrom::Position(Position { gtid: Some(gtid), ..Default::default() }));
    }
    if !c.binlog_file.is_empty() {
        info!(job = %job.name, file = %c.binlog_file, pos = c.binlog_pos, "starting incremental replication at the configured binlog file/position");
        return Ok(StartFrom::Position(Position {
            gtid: None,
            binlog_file: c.binlog_file.clone(),
            binlog_pos: c.binlog_pos.max(4) as u64,
        }));
    }
    if c.auto_gtid {
        let mut conn = source.connect(&[]).await?;
        let position = current_position(&mut conn, flavor).await?;
        let _ = conn.disconnect().await;
        info!(job = %job.name, position = %describe(&position), "AutoGtid: starting incremental replication at the source's current position");
        return Ok(StartFrom::Position(position));
    }
    Ok(StartFrom::Snapshot)
}

/// Reads the job's stored position. A store that stays unreachable (about 10 s) does not block a job whose target
/// has no position: it starts as configured, with a warning.
async fn load_stored_position(
    job: &ResolvedJob,
    store: &dyn CheckpointStore,
) -> Result<Option<dtle_metadata::Versioned<Checkpoint>>, DriverError> {
    let mut attempt = 0;
    loop {
        match store.load(&job.name).await {
            Ok(cp) => return Ok(cp),
            Err(e) if e.is_transient() && attempt < 3 => {
                attempt += 1;
                warn!(job = %job.name, error = %e, attempt, "cannot read the stored position; retrying");
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            Err(e) if e.is_transient() => {
                warn!(job = %job.name, error = %e, "the position store is unreachable and the target has no position for this job: starting as the job file says");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dtle_mysql::snapshot::TableResume;

    fn pos(seq: u64) -> Position {
        Position {
            gtid: Some(GtidState::Mariadb(format!("0-1-{seq}").parse().unwrap())),
            binlog_file: "b.000001".into(),
            binlog_pos: seq,
        }
    }

    #[test]
    fn every_answer_round_trips_through_the_hello_reply() {
        let mut resume = SnapshotResume { binlog_from: pos(7), ..Default::default() };
        resume.tables.insert(("db".into(), "t".into()), TableResume::Done);
        for answer in [
            SessionStart::NoPosition,
            SessionStart::CopyAgain,
            SessionStart::Position(pos(42)),
            SessionStart::ContinueCopy(resume),
        ] {
            assert_eq!(SessionStart::from_reply(answer.to_reply()).unwrap(), answer);
        }
    }

    #[test]
    fn answers_read_shortly_in_logs() {
        assert_eq!(SessionStart::NoPosition.to_string(), "no position on the target");
        assert_eq!(SessionStart::Position(pos(3)).to_string(), "position 0-1-3 (b.000001:3)");
        let resume = SnapshotResume { binlog_from: pos(7), ..Default::default() };
        assert_eq!(
            SessionStart::ContinueCopy(resume).to_string(),
            "an interrupted full copy to continue (0 table(s) with chunks, binlog from 0-1-7 (b.000001:7))"
        );
    }

    #[test]
    fn an_unknown_stage_or_a_missing_position_is_an_error() {
        let reply = w::HelloReply { stage: 9, ..SessionStart::NoPosition.to_reply() };
        let e = SessionStart::from_reply(reply).unwrap_err().to_string();
        assert!(e.contains("unknown stage 9"), "{e}");
        let reply = w::HelloReply { position: None, ..SessionStart::Position(pos(1)).to_reply() };
        assert!(SessionStart::from_reply(reply).is_err());
    }
}
