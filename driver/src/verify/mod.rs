//! `dtle verify job.hcl`: proves, while replication runs, that the target holds what the source holds — after the
//! job's selection, `Where`, renames and column maps — chunk by chunk, with consistent reads only (no lock).
//!
//! # How a chunk is checked
//!
//! The pipeline is not involved: verify reads the source, the target and the job's position row on the target
//! (`dtle.replication_position`, written in the same target transaction as the rows it covers).
//!
//! 1. **S1** — a consistent snapshot of the source (`START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY`) and
//!    the binlog position G1 it corresponds to. The chunk's rows are read by key range, the job's `Where` is
//!    evaluated on them in Rust (the evaluator the binlog path uses), the column map projects them, and each row
//!    is digested from a canonical encoding (`dtle_mysql::checksum`). Several consecutive chunks of a table
//!    (a *round*, up to [`ROUND_CHUNKS`]) share one snapshot, so waits are paid per round, not per chunk.
//! 2. **T** — a consistent snapshot of the target, read again (a short backoff each time) until the job's position
//!    row in it covers G1, its stage is incremental, no resumed-copy catch-up runs and no parallel-applied
//!    transaction waits for its position row (`dtle.replication_applied`; the target would hold more than its
//!    position says). Its position is Gt ≥ G1. The same key ranges are read.
//! 3. **S2** — a new source snapshot at G2 ≥ Gt (read again until it is: MariaDB writes its binlog before it
//!    commits, so a transaction dtle already applied may not be visible on the source yet).
//!
//! S1 == S2 == T: the chunk is **equal**. S1 == S2 != T: the rows did not change on the source between G1 and G2,
//! and the target at Gt, in between, differs — re-checked `--rechecks` times (a row changed A→B→A on the source
//! is not mistaken for a difference), then reported **different** with the keys that differ. S1 != S2: the chunk
//! changed meanwhile (**hot**); it is retried with backoff, `--hot-retries` times, then reported **not verified**
//! rather than guessed.
//!
//! Positions: for MariaDB, G1 and G2 are exact (`binlog_snapshot_file/position`, taken atomically with the
//! snapshot) and compared with the job's position by binlog file/pos when both name files of one server (same base
//! name), else as GTIDs (`BINLOG_GTID_POS`, which scans the binlog file, so only then). MySQL has no snapshot
//! position: G is read right after the snapshot starts (`gtid_executed`, `SHOW MASTER STATUS`), an upper bound of
//! what S1 sees (which is what waiting for the target needs); for S2 it is not a lower bound by the same measure,
//! so a transaction committing at that moment can make a chunk look different once — the re-checks absorb it.
//! MySQL sources are supported this way but are not in this project's CI. No `FLUSH TABLES WITH READ LOCK`.
//!
//! # Chunks
//!
//! A table is cut by its key (the key the applier uses: the primary key, else the first unique key over NOT NULL
//! columns) into ranges of `--chunk-size` source rows, `(lower, upper]` with open first and last ends, so rows
//! inserted anywhere, and target rows beyond the source's last key, are covered. Tables without a usable key (or
//! whose key a column map leaves out, or keyed by ENUM/SET, which sort differently than they compare) are one
//! chunk: the whole table, compared as a multiset of rows. Generated columns are not compared (the target computes
//! them). With a column map only the mapped columns are compared; without one, target columns the source lacks
//! are a difference of the table.
//!
//! # N:1
//!
//! Target rows in a chunk's key range whose key the source chunk lacks are *extra*. They are a difference (a
//! missed delete), except where other writers are expected: for a target table that several source tables of the
//! job write (shards merged by a rename) and with `--ignore-extra-rows` (several jobs writing one target table),
//! they are counted and shown but do not make the chunk different; each source is then verified against its own
//! rows only.
//!
//! # Repair, and what is refused
//!
//! `--repair` rewrites a chunk found different at the job's position (see `repair`), then checks it again.
//! Kafka targets are refused. Jobs whose `SqlFilter` leaves out row changes are refused (their target is not
//! meant to equal the source). Under
//! Nomad, run the same command with the job file (it reads the job's servers from it).

mod compare;
mod read;
mod repair;
mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dtle_metadata::Position;
use dtle_mysql::checksum::Canon;
use dtle_mysql::conn::Endpoint;
use dtle_mysql::error::MysqlError;
use dtle_mysql::schema::{load_table_meta, quote_ident, ColumnMeta, TableMeta};
use dtle_mysql::snapshot::{key_literals, write_key_after};
use dtle_mysql::sql::column_list;
use dtle_mysql::where_expr::BoundWhere;
use dtle_mysql::Value;
use mysql_async::prelude::*;

use crate::config::{parse_job_file, ResolvedJob, TargetConfig};
use crate::error::DriverError;
use crate::plan::Plan;

use compare::{compare, show_key, show_range, RowSet};
use read::{backoff, Reader};
use store::{ChunkRow, RunCounts, Store};

/// Chunks of a table read in one source snapshot (one wait for the target per round).
pub const ROUND_CHUNKS: usize = 8;

/// Keys listed per chunk in a report (the counts are complete).
const SHOWN_KEYS: usize = 10;

/// `dtle verify` options.
#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
    /// Job file (Nomad HCL or JSON), as for `dtle run`. Under Nomad, the job file you submitted.
    pub job: PathBuf,
    /// Only these source tables (`db.table`, comma separated) of the job's selection.
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// Source rows per chunk (key range).
    #[arg(long, default_value_t = 1000)]
    pub chunk_size: usize,
    /// At most this many source rows read per second (both source reads of each chunk count).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Seconds to wait for the target to reach a source snapshot's position before giving up.
    #[arg(long, default_value_t = 120)]
    pub max_lag: u64,
    /// Times a chunk that differs is checked again before it is reported different.
    #[arg(long, default_value_t = 2)]
    pub rechecks: u32,
    /// Times a chunk that changed on the source during its check is tried again before it is reported not verified.
    #[arg(long, default_value_t = 5)]
    pub hot_retries: u32,
    /// Target rows whose key the source lacks are shown but are not a difference (several jobs write the table).
    #[arg(long)]
    pub ignore_extra_rows: bool,
    /// Show the job's last verify run (stored on the target) instead of verifying.
    #[arg(long)]
    pub status: bool,
    /// Rewrite each chunk found different with the source's rows, on the target, at the job's position (while the
    /// job runs: it waits for the repair), then check it again.
    #[arg(long)]
    pub repair: bool,
}

/// Exit statuses of `dtle verify`.
pub const EXIT_EQUAL: u8 = 0;
pub const EXIT_DIFFERENT: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_INCOMPLETE: u8 = 3;

/// Runs `dtle verify` and prints its report; the exit status: 0 everything equal, 1 differences found, 2 a
/// problem of the job file or the options, 3 not everything could be verified (chunks that kept changing, a
/// target that did not reach the source's position in time, a server error) and no difference found.
pub async fn run_cli(args: VerifyArgs) -> ExitCode {
    match verify(&args).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            let usage = matches!(
                e,
                DriverError::Config(_)
                    | DriverError::InvalidField { .. }
                    | DriverError::Problems { .. }
                    | DriverError::Unsupported { .. }
            );
            ExitCode::from(if usage { EXIT_USAGE } else { EXIT_INCOMPLETE })
        }
    }
}

fn invalid(field: &str, value: impl Into<String>, reason: impl Into<String>) -> DriverError {
    DriverError::InvalidField { field: field.into(), value: value.into(), reason: reason.into() }
}

async fn verify(args: &VerifyArgs) -> Result<u8, DriverError> {
    let job = parse_job_file(&args.job)?.resolve()?;
    if matches!(job.target, TargetConfig::Kafka(_)) {
        return Err(DriverError::Unsupported {
            job: job.name.clone(),
            field: "KafkaConfig".into(),
            reason: "dtle verify compares MySQL/MariaDB targets only; a Kafka topic holds events, not tables".into(),
        });
    }
    if args.chunk_size == 0 || args.chunk_size > 1_000_000 {
        return Err(invalid("--chunk-size", args.chunk_size.to_string(), "give a number of rows from 1 to 1000000"));
    }
    if args.rate == Some(0) {
        return Err(invalid("--rate", "0", "give rows per second above 0, or leave it out for no limit"));
    }
    let plan = Plan::build(&job)?;
    let f = &plan.sql_filter;
    if f.no_insert || f.no_update || f.no_delete {
        return Err(DriverError::Unsupported {
            job: job.name.clone(),
            field: "SqlFilter".into(),
            reason: "the job leaves out row changes (NoDML...), so its target is not meant to equal the source; \
                     verify cannot tell a difference from a filtered change"
                .into(),
        });
    }
    let (source_ep, target_ep) = crate::engine::endpoints(&job)?;
    if args.status {
        let mut conn = target_ep.connect(&[]).await?;
        let last = store::last_run(&mut conn, &job.name).await?;
        let _ = conn.disconnect().await;
        return Ok(match last {
            Some((text, status)) => {
                print!("{text}");
                match status.as_str() {
                    "equal" => EXIT_EQUAL,
                    "different" => EXIT_DIFFERENT,
                    _ => EXIT_INCOMPLETE,
                }
            }
            None => {
                println!("job {:?}: no verify run recorded on the target ({})", job.name, store::RUNS_TABLE);
                EXIT_INCOMPLETE
            }
        });
    }
    Verifier::new(&job, &plan, args, source_ep, target_ep).await?.run().await
}

/// How one source table is compared with its target table.
struct TablePlan {
    source: TableMeta,
    target_schema: String,
    target_name: String,
    row_filter: Option<BoundWhere>,
    /// Source column indexes compared, in order, and the matching target columns.
    compared: Vec<usize>,
    target_columns: Vec<ColumnMeta>,
    canons: Vec<Canon>,
    /// Positions in `compared` of the key columns; empty: the table is one chunk compared as a multiset.
    key: Vec<usize>,
    /// Target rows whose key the source lacks are a difference.
    count_extra: bool,
    /// A difference of the whole table found before reading rows (missing table or columns).
    problem: Option<String>,
}

impl TablePlan {
    fn source_name(&self) -> String {
        self.source.source_name()
    }
    fn target_label(&self) -> String {
        format!("{}.{}", self.target_schema, self.target_name)
    }
    fn target_ident(&self) -> String {
        format!("{}.{}", quote_ident(&self.target_schema), quote_ident(&self.target_name))
    }
    fn keyed(&self) -> bool {
        !self.key.is_empty()
    }
    fn source_key_names(&self) -> Vec<&str> {
        self.source.key_columns.iter().map(|&i| self.source.columns[i].name.as_str()).collect()
    }
    fn target_key_names(&self) -> Vec<&str> {
        self.key.iter().map(|&k| self.target_columns[k].name.as_str()).collect()
    }
    /// Source rows (all columns) → the compared rows: `Where` applied, projected.
    fn transform(&self, rows: Vec<Vec<Value>>) -> Result<Vec<Vec<Value>>, DriverError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(f) = &self.row_filter {
                let keep = f.matches(&row).map_err(|e| {
                    DriverError::Other(format!("evaluating the Where of {} on a source row: {e}", self.source_name()))
                })?;
                if !keep {
                    continue;
                }
            }
            out.push(self.compared.iter().map(|&i| row.get(i).cloned().unwrap_or(Value::Null)).collect());
        }
        Ok(out)
    }
}

/// A chunk's end: the key of a source row as SQL literals (for both servers) and as canonical bytes (reports).
#[derive(Clone, Debug)]
struct Bound {
    literals: Vec<String>,
    shown: Vec<u8>,
}

/// The SQL condition of the key range `(lower, upper]` over the key columns `names`.
fn range_condition(names: &[&str], lower: Option<&Bound>, upper: Option<&Bound>) -> String {
    let mut sql = String::from("1");
    if let Some(l) = lower {
        sql.push_str(" AND ");
        write_key_after(&mut sql, names, &l.literals);
    }
    if let Some(u) = upper {
        sql.push_str(" AND NOT ");
        write_key_after(&mut sql, names, &u.literals);
    }
    sql
}

/// One chunk in the works.
struct Chunk {
    no: u64,
    lower: Option<Bound>,
    upper: Option<Bound>,
    s1: RowSet,
}

enum Verdict {
    Equal,
    Different(compare::Difference),
    Hot,
}

/// A source-rows-per-second bound.
struct Rate {
    per_second: Option<u64>,
    start: Instant,
    rows: u64,
}

impl Rate {
    async fn account(&mut self, rows: usize) {
        self.rows += rows as u64;
        if let Some(limit) = self.per_second {
            let due = Duration::from_secs_f64(self.rows as f64 / limit as f64);
            let elapsed = self.start.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
        }
    }
}

struct Verifier<'a> {
    job: &'a ResolvedJob,
    args: &'a VerifyArgs,
    tables: Vec<TablePlan>,
    source: Reader,
    target: Reader,
    store: Store,
    rate: Rate,
    counts: RunCounts,
    /// Source rows read once per chunk (the S1 reads), for the rows/s figure.
    rows_verified: u64,
    source_addr: String,
    target_addr: String,
}

impl<'a> Verifier<'a> {
    async fn new(
        job: &'a ResolvedJob,
        plan: &Plan,
        args: &'a VerifyArgs,
        source_ep: Endpoint,
        target_ep: Endpoint,
    ) -> Result<Verifier<'a>, DriverError> {
        let mut source = Reader::connect(&source_ep).await?;
        let mut target = Reader::connect(&target_ep).await?;
        let tables = plan_tables(job, plan, args, &mut source, &mut target).await?;
        let options = format!(
            "chunk_size={} rate={} tables={} ignore_extra_rows={}",
            args.chunk_size,
            args.rate.map_or("none".to_string(), |r| r.to_string()),
            if args.tables.is_empty() { "all".to_string() } else { args.tables.join(",") },
            args.ignore_extra_rows
        );
        let store = Store::start(target_ep.connect(&[]).await?, &job.name, &options).await?;
        Ok(Verifier {
            job,
            args,
            tables,
            source,
            target,
            store,
            rate: Rate { per_second: args.rate, start: Instant::now(), rows: 0 },
            counts: RunCounts::default(),
            rows_verified: 0,
            source_addr: source_ep.addr(),
            target_addr: target_ep.addr(),
        })
    }

    async fn run(mut self) -> Result<u8, DriverError> {
        let started = Instant::now();
        println!(
            "verify job {:?}: source {}, target {}, {} table(s), chunks of {} rows (run {} in {})",
            self.job.name,
            self.source_addr,
            self.target_addr,
            self.tables.len(),
            self.args.chunk_size,
            self.store.run_id,
            store::RUNS_TABLE
        );
        let tables = std::mem::take(&mut self.tables);
        let mut failure = None;
        for table in &tables {
            self.counts.tables += 1;
            if let Err(e) = self.verify_table(table).await {
                failure = Some(e);
                break;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let c = &self.counts;
        let summary = format!(
            "{} table(s), {} chunk(s): {} equal, {} different, {} not verified; {} source rows in {:.1} s ({:.0} rows/s)",
            c.tables,
            c.equal + c.different + c.not_verified,
            c.equal,
            c.different,
            c.not_verified,
            self.rows_verified,
            seconds,
            self.rows_verified as f64 / seconds.max(0.001)
        );
        let (status, code) = match (&failure, c.different, c.not_verified) {
            (_, d, _) if d > 0 => ("different", EXIT_DIFFERENT),
            (Some(_), _, _) => ("failed", EXIT_INCOMPLETE),
            (None, _, n) if n > 0 => ("not_verified", EXIT_INCOMPLETE),
            _ => ("equal", EXIT_EQUAL),
        };
        let message = failure.as_ref().map(|e| e.to_string()).unwrap_or_default();
        let counts = RunCounts { rows: self.rows_verified, ..self.counts.clone() };
        let run_id = self.store.run_id;
        let stored = self.store.finish(status, &counts, &message).await;
        println!("summary: {summary}: {status} (run {run_id})");
        tracing::info!(job = %self.job.name, run = run_id, status, equal = counts.equal, different = counts.different,
            not_verified = counts.not_verified, rows = counts.rows, seconds, "verify finished");
        self.source.close().await;
        self.target.close().await;
        if let Some(e) = failure {
            if code == EXIT_DIFFERENT {
                eprintln!("error: {e}");
                return Ok(code);
            }
            return Err(e);
        }
        stored?;
        Ok(code)
    }

    async fn verify_table(&mut self, table: &TablePlan) -> Result<(), DriverError> {
        let label = format!("{} -> {}", table.source_name(), table.target_label());
        if let Some(problem) = &table.problem {
            println!("  {label}: different: {problem}");
            self.counts.different += 1;
            self.store
                .chunks(&[ChunkRow {
                    source_table: table.source_name(),
                    target_table: table.target_label(),
                    chunk_no: 1,
                    key_range: "whole table".into(),
                    verdict: "different",
                    source_rows: 0,
                    target_rows: 0,
                    detail: problem.clone(),
                }])
                .await?;
            return Ok(());
        }
        let before = (self.counts.equal, self.counts.different, self.counts.not_verified, self.rows_verified);
        let mut lower: Option<Bound> = None;
        let mut next_no = 1u64;
        let mut done = false;
        while !done {
            // S1 of a round: up to ROUND_CHUNKS chunks in one snapshot.
            let g1 = self.source.begin_source().await?;
            let mut round = Vec::new();
            for _ in 0..ROUND_CHUNKS {
                let (rows, upper) = self.first_read(table, lower.as_ref()).await?;
                done = upper.is_none();
                self.rows_verified += rows.len() as u64;
                self.rate.account(rows.len()).await;
                let s1 = RowSet::build(&table.transform(rows)?, &table.key, &table.canons);
                round.push(Chunk { no: next_no, lower: lower.clone(), upper: upper.clone(), s1 });
                next_no += 1;
                lower = upper;
                if done {
                    break;
                }
            }
            self.source.end().await?;
            let verdicts = self.check(table, &round, &g1).await?;
            let mut results = Vec::with_capacity(round.len());
            for (chunk, (verdict, t_rows)) in round.iter_mut().zip(verdicts) {
                let result = self.settle(table, chunk, verdict, t_rows).await?;
                results.push(result);
            }
            for r in &results {
                match r.verdict {
                    "equal" => self.counts.equal += 1,
                    "different" | "repaired" => {
                        self.counts.different += 1;
                        println!("  {label}: chunk {} {}: {}: {}", r.chunk_no, r.key_range, r.verdict, r.detail);
                    }
                    _ => {
                        self.counts.not_verified += 1;
                        println!("  {label}: chunk {} {}: not verified: {}", r.chunk_no, r.key_range, r.detail);
                    }
                }
            }
            self.store.chunks(&results).await?;
        }
        let (equal, different, not_verified) =
            (self.counts.equal - before.0, self.counts.different - before.1, self.counts.not_verified - before.2);
        let verdict = if different > 0 {
            "DIFFERENT"
        } else if not_verified > 0 {
            "NOT VERIFIED"
        } else {
            "equal"
        };
        println!(
            "  {label}: {verdict}: {} chunk(s), {equal} equal, {different} different, {not_verified} not verified, {} source rows{}",
            equal + different + not_verified,
            self.rows_verified - before.3,
            if table.keyed() { "" } else { " (no usable key: the whole table as one chunk)" }
        );
        tracing::info!(job = %self.job.name, table = %table.source_name(), target = %table.target_label(), equal, different,
            not_verified, "table verified");
        Ok(())
    }

    /// S1's read of the next chunk after `lower`, in the open source snapshot: the source rows (all columns) and
    /// the chunk's upper end (`None`: the table's end).
    async fn first_read(
        &mut self,
        table: &TablePlan,
        lower: Option<&Bound>,
    ) -> Result<(Vec<Vec<Value>>, Option<Bound>), DriverError> {
        let columns = column_list(table.source.columns.iter());
        if !table.keyed() {
            let sql = format!("SELECT {columns} FROM {}", table.source.source_ident());
            let rows = self.source.rows(&sql, &table.source.columns, &table.source_name()).await?;
            return Ok((rows, None));
        }
        let names = table.source_key_names();
        let order = names.iter().map(|n| quote_ident(n)).collect::<Vec<_>>().join(",");
        let sql = format!(
            "SELECT {columns} FROM {} WHERE {} ORDER BY {order} LIMIT {}",
            table.source.source_ident(),
            range_condition(&names, lower, None),
            self.args.chunk_size
        );
        let rows = self.source.rows(&sql, &table.source.columns, &table.source_name()).await?;
        let upper = if rows.len() >= self.args.chunk_size {
            rows.last().map(|last| Bound {
                literals: key_literals(&table.source, last),
                shown: dtle_mysql::checksum::RowEncoder::default().key(last, &table.source.key_columns, &[]),
            })
        } else {
            None
        };
        Ok((rows, upper))
    }

    /// Source rows of a chunk's range in the open source snapshot, as a row set.
    async fn source_range(&mut self, table: &TablePlan, chunk: &Chunk) -> Result<RowSet, DriverError> {
        let rows = self.source_range_rows(table, chunk).await?;
        Ok(RowSet::build(&rows, &table.key, &table.canons))
    }

    /// Source rows of a chunk's range in the open source snapshot, transformed (`Where`, column map).
    async fn source_range_rows(&mut self, table: &TablePlan, chunk: &Chunk) -> Result<Vec<Vec<Value>>, DriverError> {
        let sql = if table.keyed() {
            format!(
                "SELECT {} FROM {} WHERE {}",
                column_list(table.source.columns.iter()),
                table.source.source_ident(),
                range_condition(&table.source_key_names(), chunk.lower.as_ref(), chunk.upper.as_ref())
            )
        } else {
            format!("SELECT {} FROM {}", column_list(table.source.columns.iter()), table.source.source_ident())
        };
        let rows = self.source.rows(&sql, &table.source.columns, &table.source_name()).await?;
        self.rate.account(rows.len()).await;
        table.transform(rows)
    }

    /// Target rows of a chunk's range in the open target snapshot.
    async fn target_range(&mut self, table: &TablePlan, chunk: &Chunk) -> Result<RowSet, DriverError> {
        let mut sql = format!("SELECT {} FROM {}", column_list(table.target_columns.iter()), table.target_ident());
        if table.keyed() {
            sql.push_str(" WHERE ");
            sql.push_str(&range_condition(&table.target_key_names(), chunk.lower.as_ref(), chunk.upper.as_ref()));
        }
        let rows = self.target.rows(&sql, &table.target_columns, &table.target_label()).await?;
        Ok(RowSet::build(&rows, &table.key, &table.canons))
    }

    /// T and S2 of a round whose S1 was read at `g1`: per chunk its verdict and the target's row count.
    async fn check(
        &mut self,
        table: &TablePlan,
        round: &[Chunk],
        g1: &Position,
    ) -> Result<Vec<(Verdict, u64)>, DriverError> {
        // T: a target snapshot whose position covers G1.
        let deadline = Instant::now() + Duration::from_secs(self.args.max_lag);
        let mut attempt = 0;
        let mut g1_gtid: Option<Position> = None;
        let gt = loop {
            let state = self.target.begin_target(&self.job.name).await?;
            let mut why = state.not_ready(g1);
            if why.as_deref().is_some_and(|w| w.contains("cannot be compared")) {
                // Different binlog file names (another server): compare GTIDs.
                if g1_gtid.is_none() {
                    let gtid = self.source.gtid_of(g1).await?;
                    g1_gtid = Some(Position { gtid, ..g1.clone() });
                }
                why = g1_gtid.as_ref().and_then(|g| state.not_ready(g));
            }
            match why {
                None => break state.position.unwrap_or_default(),
                Some(why) => {
                    self.target.end().await?;
                    if state.stage.is_none()
                        || state.stage.as_deref() == Some("job_stage_full")
                        || Instant::now() >= deadline
                    {
                        return Err(DriverError::Other(format!(
                            "job {:?}: the target {} cannot be compared with the source {}: {why}; after {} s (--max-lag). \
                             Is the job running and replicating (dtle positions show {})?",
                            self.job.name,
                            self.target_addr,
                            self.source_addr,
                            self.args.max_lag,
                            self.args.job.display()
                        )));
                    }
                    tracing::debug!(job = %self.job.name, table = %table.source_name(), why = %why, "waiting for the target");
                    backoff(attempt).await;
                    attempt += 1;
                }
            }
        };
        let mut targets = Vec::with_capacity(round.len());
        for chunk in round {
            targets.push(self.target_range(table, chunk).await?);
        }
        self.target.end().await?;
        // S2: a source snapshot at G2 >= Gt.
        let mut attempt = 0;
        loop {
            let g2 = self.source.begin_source().await?;
            let covered = match read::covers(&g2, &gt) {
                Some(c) => c,
                None => {
                    let gtid = self.source.gtid_of(&g2).await?;
                    read::covers(&Position { gtid, ..g2.clone() }, &gt).unwrap_or(true)
                }
            };
            if covered {
                break;
            }
            self.source.end().await?;
            if Instant::now() >= deadline {
                return Err(DriverError::Other(format!(
                    "job {:?}: the source {} did not reach the target's position {} within {} s (--max-lag); last source snapshot at {}",
                    self.job.name,
                    self.source_addr,
                    dtle_mysql::applier::describe(&gt),
                    self.args.max_lag,
                    dtle_mysql::applier::describe(&g2)
                )));
            }
            backoff(attempt).await;
            attempt += 1;
        }
        let mut verdicts = Vec::with_capacity(round.len());
        for (chunk, t) in round.iter().zip(targets) {
            let s2 = self.source_range(table, chunk).await?;
            let verdict = if s2 != chunk.s1 {
                Verdict::Hot
            } else {
                let d = compare(&chunk.s1, &t, table.keyed());
                if d.is_equal(table.count_extra || !table.keyed()) {
                    Verdict::Equal
                } else {
                    Verdict::Different(d)
                }
            };
            verdicts.push((verdict, t.len() as u64));
        }
        self.source.end().await?;
        Ok(verdicts)
    }

    /// A fresh check of one chunk: S1 read again, then T and S2.
    async fn check_again(&mut self, table: &TablePlan, chunk: &mut Chunk) -> Result<(Verdict, u64), DriverError> {
        let g1 = self.source.begin_source().await?;
        chunk.s1 = self.source_range(table, chunk).await?;
        self.source.end().await?;
        let mut result = self.check(table, std::slice::from_ref(chunk), &g1).await?;
        Ok(result.pop().unwrap_or((Verdict::Hot, 0)))
    }

    /// Checks a chunk again until its verdict is final: equal, different `--rechecks` more times, or hot
    /// `--hot-retries` more times. Returns the verdict, the target's rows, and the hot and different counts.
    async fn recheck(
        &mut self,
        table: &TablePlan,
        chunk: &mut Chunk,
        first: (Verdict, u64),
    ) -> Result<(Verdict, u64, u32, u32), DriverError> {
        let (mut verdict, mut target_rows) = first;
        let (mut hot, mut different) = (0u32, 0u32);
        loop {
            match &verdict {
                Verdict::Equal => break,
                Verdict::Hot => {
                    hot += 1;
                    if hot > self.args.hot_retries {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(hot))).await;
                }
                Verdict::Different(_) => {
                    different += 1;
                    if different > self.args.rechecks {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            (verdict, target_rows) = self.check_again(table, chunk).await?;
        }
        Ok((verdict, target_rows, hot, different))
    }

    /// Re-checks a chunk until its verdict is final (repairs it with `--repair`), and returns its result row.
    async fn settle(
        &mut self,
        table: &TablePlan,
        chunk: &mut Chunk,
        first: Verdict,
        first_target_rows: u64,
    ) -> Result<ChunkRow, DriverError> {
        let (verdict, mut target_rows, hot, different) = self.recheck(table, chunk, (first, first_target_rows)).await?;
        let mut repaired = None;
        if self.args.repair && matches!(verdict, Verdict::Different(_)) {
            let done = self.repair(table, chunk).await?;
            let again = self.check_again(table, chunk).await?;
            let (after, rows, _, _) = self.recheck(table, chunk, again).await?;
            repaired = Some((done, matches!(after, Verdict::Equal)));
            target_rows = rows;
        }
        let key_range = if table.keyed() {
            format!(
                "{} {}",
                table.target_key_names().join(","),
                show_range(
                    chunk.lower.as_ref().map(|b| b.shown.as_slice()),
                    chunk.upper.as_ref().map(|b| b.shown.as_slice())
                )
            )
        } else {
            "whole table".to_string()
        };
        let (verdict, detail) = match verdict {
            Verdict::Equal => ("equal", String::new()),
            Verdict::Hot => (
                "not_verified",
                format!("kept changing on the source during {} attempts (a busy range: run verify again later)", hot),
            ),
            Verdict::Different(d) => {
                let keys = |ks: &[Vec<u8>]| -> String {
                    let mut shown: Vec<String> = ks.iter().take(SHOWN_KEYS).map(|k| show_key(k)).collect();
                    if ks.len() > SHOWN_KEYS {
                        shown.push("...".into());
                    }
                    shown.join("; ")
                };
                let mut parts = Vec::new();
                if table.keyed() {
                    if !d.changed.is_empty() {
                        parts.push(format!("{} row(s) differ (key {})", d.changed.len(), keys(&d.changed)));
                    }
                    if !d.missing.is_empty() {
                        parts.push(format!(
                            "{} row(s) missing on the target (key {})",
                            d.missing.len(),
                            keys(&d.missing)
                        ));
                    }
                    if !d.extra.is_empty() {
                        parts.push(format!(
                            "{} row(s) on the target the source does not have (key {}){}",
                            d.extra.len(),
                            keys(&d.extra),
                            if table.count_extra { "" } else { " (not counted: other writers)" }
                        ));
                    }
                } else {
                    parts.push(format!(
                        "{} source row(s) not on the target, {} target row(s) not on the source",
                        d.missing.len(),
                        d.extra.len()
                    ));
                }
                let mut detail = format!("{}; checked {} times", parts.join(", "), different);
                match &repaired {
                    Some((done, true)) => {
                        detail.push_str(&format!(
                            "; repaired ({} row(s) written, {} deleted) and equal when checked again",
                            done.written, done.deleted
                        ));
                        ("repaired", detail)
                    }
                    Some((done, false)) => {
                        detail.push_str(&format!(
                            "; repaired ({} row(s) written, {} deleted) but not found equal when checked again (still different, or kept changing): \
                             run verify again",
                            done.written, done.deleted
                        ));
                        ("different", detail)
                    }
                    None => ("different", detail),
                }
            }
        };
        Ok(ChunkRow {
            source_table: table.source_name(),
            target_table: table.target_label(),
            chunk_no: chunk.no,
            key_range,
            verdict,
            source_rows: chunk.s1.len() as u64,
            target_rows,
            detail,
        })
    }
}

/// The tables to verify: the job's selection on the source (after filters), narrowed by `--tables`, each bound to
/// its target table.
async fn plan_tables(
    job: &ResolvedJob,
    plan: &Plan,
    args: &VerifyArgs,
    source: &mut Reader,
    target: &mut Reader,
) -> Result<Vec<TablePlan>, DriverError> {
    let names: Vec<(String, String)> = source
        .conn()
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' \
             ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await
        .map_err(|e| MysqlError::query("listing the source tables", e))?;
    let mut selected = Vec::new();
    for (schema, name) in names {
        let Some(selection) = plan.filter.selection_of(&schema, &name) else { continue };
        if plan.filter.selecting_rule(&schema, &name).is_none() && !plan.filter.replicate.is_empty() {
            // A gh-ost / pt-osc shadow table: it comes and goes with a schema change.
            continue;
        }
        selected.push((schema, name, selection));
    }
    for wanted in &args.tables {
        let Some((schema, name)) = wanted.split_once('.') else {
            return Err(invalid("--tables", wanted.clone(), "give source tables as db.table, comma separated"));
        };
        if !selected.iter().any(|(s, n, _)| s == schema && n == name) {
            let known: Vec<String> = selected.iter().map(|(s, n, _)| format!("{s}.{n}")).take(50).collect();
            return Err(invalid(
                "--tables",
                wanted.clone(),
                format!(
                    "the job {:?} does not replicate this source table; its tables: {}",
                    job.name,
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            ));
        }
    }
    if !args.tables.is_empty() {
        selected.retain(|(s, n, _)| args.tables.iter().any(|w| w == &format!("{s}.{n}")));
    }
    // Target tables several source tables of the job write (shards merged by a rename).
    let mut writers: HashMap<(String, String), usize> = HashMap::new();
    for (_, _, sel) in &selected {
        *writers.entry((sel.target_schema.clone(), sel.target_name.clone())).or_default() += 1;
    }
    let mut tables = Vec::new();
    for (schema, name, selection) in selected {
        let Some(meta) = load_table_meta(source.conn(), &schema, &name).await? else { continue };
        let row_filter = match &selection.row_filter {
            Some(expr) => Some(expr.bind(&meta.columns).map_err(|e| {
                invalid(&format!("Where of {schema}.{name}"), expr.to_sql(), format!("{e}; fix the job's Where"))
            })?),
            None => None,
        };
        let (output, projection) = match &selection.column_map {
            None => (meta.clone(), (0..meta.columns.len()).collect::<Vec<_>>()),
            Some(map) => meta
                .project(&map.from, &map.to)
                .map_err(|why| invalid(&format!("ColumnMapFrom of {schema}.{name}"), map.from.join(","), why))?,
        };
        let target_meta = load_table_meta(target.conn(), &selection.target_schema, &selection.target_name).await?;
        let mut problem = None;
        let mut compared = Vec::new();
        let mut target_columns = Vec::new();
        let mut canons = Vec::new();
        let mut key = Vec::new();
        match &target_meta {
            None => problem = Some("the table does not exist on the target".to_string()),
            Some(t) => {
                let mut missing = Vec::new();
                for (out_index, column) in output.columns.iter().enumerate() {
                    if column.generated {
                        continue;
                    }
                    match t.columns.iter().find(|c| c.name.eq_ignore_ascii_case(&column.name)) {
                        Some(tc) => {
                            if output.key_columns.contains(&out_index) {
                                key.push((
                                    output.key_columns.iter().position(|&k| k == out_index).unwrap_or(0),
                                    compared.len(),
                                ));
                            }
                            canons.push(Canon::for_columns(column, tc));
                            compared.push(projection[out_index]);
                            target_columns.push(tc.clone());
                        }
                        None => missing.push(column.name.clone()),
                    }
                }
                let extra: Vec<&str> = t
                    .columns
                    .iter()
                    .filter(|c| !c.generated && !output.columns.iter().any(|o| o.name.eq_ignore_ascii_case(&c.name)))
                    .map(|c| c.name.as_str())
                    .collect();
                if !missing.is_empty() {
                    problem = Some(format!("the target table lacks column(s) {}", missing.join(", ")));
                } else if !extra.is_empty() && selection.column_map.is_none() {
                    problem = Some(format!("the target table has column(s) the source lacks: {}", extra.join(", ")));
                }
            }
        }
        key.sort();
        let mut key: Vec<usize> = key.into_iter().map(|(_, pos)| pos).collect();
        // Chunk by key ranges only when the whole source key is compared and its order is its comparison.
        if key.len() != meta.key_columns.len() || key.len() != output.key_columns.len() || !meta.chunkable() {
            key.clear();
        }
        let multiple_writers =
            writers.get(&(selection.target_schema.clone(), selection.target_name.clone())).copied().unwrap_or(0) > 1;
        tables.push(TablePlan {
            source: meta,
            target_schema: selection.target_schema,
            target_name: selection.target_name,
            row_filter,
            compared,
            target_columns,
            canons,
            key,
            count_extra: !args.ignore_extra_rows && !multiple_writers,
            problem,
        });
    }
    if tables.is_empty() {
        return Err(DriverError::Unsupported {
            job: job.name.clone(),
            field: "ReplicateDoDb".into(),
            reason: "the job selects no table on the source: nothing to verify".into(),
        });
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ranges_are_half_open_with_open_ends() {
        let b = |v: &str| Bound { literals: vec![v.to_string()], shown: Vec::new() };
        assert_eq!(range_condition(&["id"], None, None), "1");
        assert_eq!(range_condition(&["id"], Some(&b("5")), None), "1 AND ((`id` > 5))");
        assert_eq!(range_condition(&["id"], Some(&b("5")), Some(&b("9"))), "1 AND ((`id` > 5)) AND NOT ((`id` > 9))");
        let two = Bound { literals: vec!["1".into(), "'x'".into()], shown: Vec::new() };
        assert_eq!(range_condition(&["a", "b"], None, Some(&two)), "1 AND NOT ((`a` > 1) OR (`a` = 1 AND `b` > 'x'))");
    }
}
