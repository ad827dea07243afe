//! The source half: reads a MySQL/MariaDB source — connection checks, the table filter with `Where` and
//! `SqlFilter`, the consistent snapshot, the binlog stream and its decoder, DDL routing — and [`run_source`], the
//! src task's engine side: a full copy when the job needs one, then the binlog from exactly the copy's position (or
//! from a given position), as one ordered stream of [`Change`]s. Must not import the target half
//! ([`crate::target`]); what both need is in the crate's foundations and [`crate::shared`].

pub mod binlog;
pub mod ddl;
pub mod filter;
pub mod prereq;
pub mod snapshot;
pub mod sql_filter;
pub mod stream;
pub mod where_expr;

use std::time::Duration;

use dtle_metadata::Position;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::change::Change;
use crate::conn::{Endpoint, Flavor};
use crate::error::Result;
use crate::filter::TableFilter;
use crate::snapshot::{ChunkCursor, Snapshot, SnapshotResume, TableResume};
use crate::stream::{stream_binlog, BinlogOptions};

/// Tables of the full copy read at once, a chunk of each in turn: consecutive chunks then go to different target
/// tables, which the target's writers fill in parallel (chunks of one table mostly wait for each other there).
pub const INTERLEAVED_TABLES: usize = 4;

#[derive(Clone, Debug)]
pub struct SourceOptions {
    pub endpoint: Endpoint,
    pub flavor: Flavor,
    pub filter: TableFilter,
    pub chunk_size: usize,
    pub drop_table_if_exists: bool,
    pub skip_create_db_table: bool,
    pub skip_incremental: bool,
    pub replica_server_id: u32,
    pub heartbeat: Duration,
    /// Big transactions are sent in parts of about this many bytes of row data.
    pub max_tx_part_bytes: usize,
    pub sql_filter: crate::sql_filter::SqlFilter,
    /// DDL on replicated tables that cannot be replayed is skipped (logged) instead of stopping the job.
    pub skip_unreplayable_ddl: bool,
}

/// Where the src task begins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartFrom {
    /// A full copy, then the binlog from its position.
    Snapshot,
    /// The binlog after this position.
    Position(Position),
    /// An interrupted full copy continues: tables already on the target are skipped, partly copied ones continue
    /// after their last recorded key, all from a new snapshot; the binlog then starts at the first snapshot's
    /// position (see [`crate::applier`] for why that is exact).
    ResumeSnapshot(SnapshotResume),
}

/// Runs the source until cancelled, the receiver goes away, or an error.
pub async fn run_source(
    opts: SourceOptions,
    start: StartFrom,
    out: mpsc::Sender<Change>,
    cancel: CancellationToken,
) -> Result<()> {
    let (resume, given) = match start {
        StartFrom::Position(p) => (None, Some(p)),
        StartFrom::Snapshot => (None, None),
        StartFrom::ResumeSnapshot(r) => (Some(r), None),
    };
    let position = match given {
        Some(p) => p,
        None => {
            let mut snapshot = Snapshot::begin(&opts.endpoint, opts.flavor).await?;
            let position = snapshot.position.clone();
            let tables = snapshot.list_tables(&opts.filter).await?;
            // A table without a key that is not complete on the target cannot be continued, and its rows from the
            // new snapshot could not be told apart from the binlog's replay: the whole copy starts again.
            let mut resume = resume;
            if let Some(r) = &resume {
                if let Some(t) = tables.iter().find(|t| {
                    !t.chunkable()
                        && r.tables.get(&(t.target_schema.clone(), t.target_name.clone())) != Some(&TableResume::Done)
                }) {
                    info!(table = %t.source_name(), "full copy: a table without a usable key is not complete on the target; copying everything again");
                    resume = None;
                }
            }
            if let Some(r) = &resume {
                if let Some(why) = resume_refused(&opts, &mut snapshot, &tables, r).await? {
                    info!(reason = %why, "full copy: the interrupted copy cannot be continued exactly; copying everything again");
                    resume = None;
                }
            }
            let estimated_rows = tables.iter().map(|t| t.estimated_rows).sum();
            info!(tables = tables.len(), estimated_rows, position = %crate::shared::describe(&position), "full copy: snapshot taken");
            if out
                .send(Change::SnapshotStart {
                    position: position.clone(),
                    tables: tables.clone(),
                    estimated_rows,
                    resume_from: resume.as_ref().map(|r| r.binlog_from.clone()),
                })
                .await
                .is_err()
            {
                return Ok(());
            }
            // Tables are read in turn, a chunk of each (see [`INTERLEAVED_TABLES`]); a table without a usable key is
            // read whole when its turn comes, and a table waits while another one with the same target is read.
            let mut queue = std::collections::VecDeque::new();
            for table in &tables {
                let progress = resume
                    .as_ref()
                    .and_then(|r| r.tables.get(&(table.target_schema.clone(), table.target_name.clone())));
                match progress {
                    Some(TableResume::Done) => info!(table = %table.source_name(), "full copy: already on the target"),
                    Some(TableResume::After(key)) => queue.push_back((table.clone(), Some(key.clone()))),
                    None => queue.push_back((table.clone(), None)),
                }
            }
            let mut active: Vec<ChunkCursor> = Vec::new();
            let mut turn = 0;
            loop {
                if cancel.is_cancelled() {
                    return Ok(());
                }
                while active.len() < INTERLEAVED_TABLES {
                    let Some((next, _)) = queue.front() else {
                        break;
                    };
                    if active.iter().any(|c| c.output.target_ident() == next.target_ident()) {
                        break;
                    }
                    let Some((table, after)) = queue.pop_front() else {
                        break;
                    };
                    // A partly copied table keeps its rows: no DROP, no CREATE.
                    let create_sql = if opts.skip_create_db_table || after.is_some() {
                        String::new()
                    } else {
                        snapshot.create_table_sql(&table).await?
                    };
                    let drop_first = opts.drop_table_if_exists && after.is_none();
                    let create = Change::CreateTable { table: table.clone(), create_sql, drop_first };
                    if out.send(create).await.is_err() {
                        return Ok(());
                    }
                    if after.is_some() {
                        info!(table = %table.source_name(), "full copy: continuing after the last chunk on the target");
                    }
                    let cursor = snapshot.chunk_cursor(&table, after.clone());
                    if cursor.chunkable() {
                        active.push(cursor);
                        continue;
                    }
                    let rows = snapshot.copy_table(&table, opts.chunk_size, after.as_deref(), &out, &cancel).await?;
                    if cancel.is_cancelled() {
                        return Ok(());
                    }
                    info!(table = %table.source_name(), rows, "full copy: table read");
                    if out.send(Change::SnapshotTableDone { table }).await.is_err() {
                        return Ok(());
                    }
                }
                if active.is_empty() {
                    break;
                }
                turn %= active.len();
                match snapshot.next_chunk(&mut active[turn], opts.chunk_size).await? {
                    Some(chunk) => {
                        if out.send(chunk).await.is_err() {
                            return Ok(());
                        }
                        turn += 1;
                    }
                    None => {
                        let done = active.remove(turn);
                        info!(table = %done.output.source_name(), rows = done.rows, "full copy: table read");
                        if out.send(Change::SnapshotTableDone { table: done.output }).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
            snapshot.finish().await;
            // A resumed copy: the binlog starts where the first snapshot was taken.
            let position = resume.map(|r| r.binlog_from).unwrap_or(position);
            if out.send(Change::SnapshotDone { position: position.clone() }).await.is_err() {
                return Ok(());
            }
            position
        }
    };
    if opts.skip_incremental {
        info!("SkipIncrementalCopy is set: the job ends after the full copy");
        return Ok(());
    }
    let binlog = BinlogOptions {
        endpoint: opts.endpoint.clone(),
        flavor: opts.flavor,
        start: position,
        filter: opts.filter.clone(),
        replica_server_id: opts.replica_server_id,
        heartbeat: opts.heartbeat,
        max_tx_part_bytes: opts.max_tx_part_bytes,
        sql_filter: opts.sql_filter.clone(),
        skip_unreplayable_ddl: opts.skip_unreplayable_ddl,
    };
    stream_binlog(binlog, out, cancel).await
}

/// Why an interrupted copy must start again rather than continue (see [`crate::applier`]): the binlog from the
/// first snapshot is gone, or replaying it idempotently over rows of two snapshots could go wrong — a secondary
/// unique key (a recopied row could meet a value an older row still holds), foreign keys (REPLACE deletes and
/// re-inserts parents), a column map (REPLACE would reset the target's other columns), or DML filtered out by
/// SqlFilter (the event that would restore a displaced row may be dropped).
async fn resume_refused(
    opts: &SourceOptions,
    snapshot: &mut Snapshot,
    tables: &[std::sync::Arc<crate::schema::TableMeta>],
    resume: &SnapshotResume,
) -> Result<Option<String>> {
    if !snapshot.binlog_available(opts.flavor, &resume.binlog_from).await {
        return Ok(Some(format!(
            "the source no longer has the binlog from the first snapshot's position {}",
            crate::shared::describe(&resume.binlog_from)
        )));
    }
    if opts.sql_filter.no_insert || opts.sql_filter.no_update || opts.sql_filter.no_delete {
        return Ok(Some("SqlFilter leaves some row changes out".into()));
    }
    let mut targets = std::collections::HashSet::new();
    for t in tables {
        if !targets.insert((t.target_schema.as_str(), t.target_name.as_str())) {
            return Ok(Some(format!("several source tables go into {}.{}", t.target_schema, t.target_name)));
        }
    }
    let links = snapshot.foreign_key_links().await?;
    for t in tables {
        if t.column_subset {
            return Ok(Some(format!("{} is written through a column map", t.source_name())));
        }
        let deps = snapshot.write_dependencies(t, &links).await?;
        if deps.foreign_keys {
            return Ok(Some(format!("{} has foreign keys", t.source_name())));
        }
        if deps.unique_indexes.len() > 1 {
            return Ok(Some(format!("{} has a unique key besides its primary key", t.source_name())));
        }
    }
    Ok(None)
}

/// A replica server id for a job: stable per job name, away from small ids that real servers use.
pub fn replica_server_id_for(job: &str) -> u32 {
    // FNV-1a, folded into 1_000_000_000 ..= 1_999_999_999.
    let mut hash: u32 = 0x811c_9dc5;
    for b in job.as_bytes() {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    1_000_000_000 + hash % 1_000_000_000
}

#[cfg(test)]
mod tests {
    #[test]
    fn replica_ids_are_stable_and_large() {
        let a = super::replica_server_id_for("job1");
        assert_eq!(a, super::replica_server_id_for("job1"));
        assert_ne!(a, super::replica_server_id_for("job2"));
        assert!(a >= 1_000_000_000);
    }
}
