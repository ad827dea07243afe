//! Turns a resolved job file into engine options: endpoints, the table filter, the source and applier settings.
//! Settings the engine does not implement yet are refused here with a message, never silently ignored.

use std::time::Duration;

use dtle_mysql::applier::ApplierOptions;
use std::sync::Arc;

use dtle_mysql::error::BoundedRetry;
use dtle_mysql::filter::{ColumnMap, NameMatch, SchemaRule, TableFilter, TableRule, UnmatchedKind, UnmatchedRule};
use dtle_mysql::where_expr::WhereExpr;
use dtle_mysql::{Endpoint, Role};
use tokio_util::sync::CancellationToken;

use crate::config::{defaults, ConnectionConfig, DataSource, ResolvedJob, TargetConfig, TaskConfig};
use crate::error::{DriverError, Problem};

pub fn endpoint(conn: &ConnectionConfig, role: Role, field: &'static str) -> Endpoint {
    Endpoint {
        host: conn.host.clone(),
        port: conn.port,
        user: conn.user.clone(),
        password: conn.password.clone(),
        role,
        field,
    }
}

/// The source endpoint of a job (any target).
pub fn source_endpoint(job: &ResolvedJob) -> Endpoint {
    let source_field = match job.shape {
        crate::config::JobShape::V3 => "src task ConnectionConfig",
        crate::config::JobShape::V4 => "src task SrcConnectionConfig",
    };
    endpoint(&job.source, Role::Source, source_field)
}

/// The source and target endpoints of a MySQL → MySQL job.
pub fn endpoints(job: &ResolvedJob) -> Result<(Endpoint, Endpoint), DriverError> {
    let target_field = match job.shape {
        crate::config::JobShape::V3 => "dest task ConnectionConfig",
        crate::config::JobShape::V4 => "src task DestConnectionConfig",
    };
    let source = source_endpoint(job);
    let target = match &job.target {
        TargetConfig::Mysql(c) => endpoint(c, Role::Target, target_field),
        TargetConfig::Kafka(_) => {
            return Err(unsupported(
                job,
                "KafkaConfig",
                "this operation needs a MySQL target; the job's target is Kafka",
            ))
        }
    };
    Ok((source, target))
}

fn unsupported(job: &ResolvedJob, field: &str, why: &str) -> DriverError {
    DriverError::Unsupported { job: job.name.clone(), field: field.to_string(), reason: why.to_string() }
}

/// The settings this build cannot honour, each as a problem naming the field (all of them, not the first).
pub(crate) fn unsupported_settings(job: &ResolvedJob) -> Vec<Problem> {
    let c = &job.src;
    let mut problems = Vec::new();
    for (i, ds) in c.replicate_do_db.iter().enumerate() {
        for (j, t) in ds.tables.iter().enumerate() {
            if !t.column_map_from.is_empty() && !c.skip_create_db_table {
                problems.push(Problem::new(
                    format!("ReplicateDoDb[{i}].Tables[{j}].ColumnMapFrom"),
                    t.column_map_from.join(","),
                    "a column map writes into a target table you create: set SkipCreateDbTable = true and create it by hand",
                ));
            }
        }
    }
    let refuse = [
        (
            c.binlog_relay,
            "BinlogRelay",
            "true",
            "the binlog relay is not available in this build yet; set BinlogRelay = false",
        ),
        (c.src_oracle_config.is_some(), "SrcOracleConfig", "{...}", "Oracle sources are not supported"),
        (
            c.expand_syntax_support,
            "ExpandSyntaxSupport",
            "true",
            "replicating users and routines is not available in this build yet; set ExpandSyntaxSupport = false",
        ),
        (
            c.set_gtid_next,
            "SetGtidNext",
            "true",
            "keeping source GTIDs on the target is not available in this build yet; set SetGtidNext = false",
        ),
        (
            !c.gtid_start.is_empty(),
            "GtidStart",
            c.gtid_start.as_str(),
            "GtidStart is not available in this build yet; give Gtid (the executed set) instead",
        ),
        (
            !c.wait_on_job.is_empty(),
            "WaitOnJob",
            c.wait_on_job.as_str(),
            "WaitOnJob is not available in this build yet; remove it and start the jobs in order",
        ),
    ];
    for (set, field, value, why) in refuse {
        if set {
            problems.push(Problem::new(field, value, why));
        }
    }
    problems
}

/// Values that are used differently than written (brought into their range), one warning each.
pub(crate) fn adjusted_settings(c: &TaskConfig) -> Vec<String> {
    let mut warnings = Vec::new();
    if c.parallel_workers > PARALLEL_WORKERS_MAX {
        warnings.push(format!(
            "ParallelWorkers = {}: at most {PARALLEL_WORKERS_MAX} target connections are used",
            c.parallel_workers
        ));
    }
    if c.snapshot_writers > defaults::SNAPSHOT_WRITERS_MAX {
        warnings.push(format!(
            "SnapshotWriters = {}: at most {} target connections write the full copy",
            c.snapshot_writers,
            defaults::SNAPSHOT_WRITERS_MAX
        ));
    }
    let range = defaults::DUMP_ENTRY_LIMIT_RANGE;
    if c.dump_entry_limit != defaults::DUMP_ENTRY_LIMIT && !range.contains(&c.dump_entry_limit) {
        warnings.push(format!(
            "DumpEntryLimit = {}: big transactions are sent in parts of {} bytes (the range is {}..={} bytes: \
             parts wait in memory on both sides, so larger ones are not used); set a value in the range to silence this",
            c.dump_entry_limit,
            tx_part_bytes(c),
            range.start(),
            range.end()
        ));
    }
    warnings
}

/// At most 20 names, then how many more.
fn name_list(names: &[String]) -> String {
    const SHOWN: usize = 20;
    if names.is_empty() {
        return "none".into();
    }
    let mut text = names.iter().take(SHOWN).map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// One message per unmatched entry, naming its field path and value, what the source has, and what follows.
pub fn describe_unmatched(c: &TaskConfig, unmatched: &[UnmatchedRule]) -> Vec<String> {
    unmatched
        .iter()
        .filter_map(|u| {
            let (list_name, list) =
                if u.ignore { ("ReplicateIgnoreDb", &c.replicate_ignore_db) } else { ("ReplicateDoDb", &c.replicate_do_db) };
            let ds = list.get(u.schema_rule)?;
            let (schema_field, schema_value) = if ds.table_schema_regex.is_empty() {
                ("TableSchema", &ds.table_schema)
            } else {
                ("TableSchemaRegex", &ds.table_schema_regex)
            };
            let schema_entry = format!("{list_name}[{}].{schema_field} = {schema_value:?}", u.schema_rule);
            let effect = if u.ignore {
                "so it leaves nothing out"
            } else {
                "so it replicates nothing (tables created there later are picked up)"
            };
            Some(match (&u.kind, u.table_rule) {
                (UnmatchedKind::NoSchema { existing }, _) => format!(
                    "{schema_entry} matches no schema on the source, {effect}. The source's schemas: {}. Check the name (names are case-sensitive)",
                    name_list(existing)
                ),
                (UnmatchedKind::SystemSchema, _) => format!(
                    "{schema_entry} names a system schema, which dtle never replicates (mysql, sys, information_schema, performance_schema, dtle): the entry has no effect"
                ),
                (UnmatchedKind::EmptySchema { schemas }, _) => format!(
                    "{schema_entry}: schema {} has no tables on the source yet, {effect}",
                    name_list(schemas)
                ),
                (UnmatchedKind::NoTable { schemas, existing }, Some(j)) => {
                    let t = ds.tables.get(j)?;
                    let (table_field, table_value) =
                        if t.table_regex.is_empty() { ("TableName", &t.table_name) } else { ("TableRegex", &t.table_regex) };
                    format!(
                        "{list_name}[{}].Tables[{j}].{table_field} = {table_value:?} matches no table of schema {} on the source, {}. The tables there: {}. Check the name (names are case-sensitive)",
                        u.schema_rule,
                        name_list(schemas),
                        if u.ignore { "so it leaves nothing out" } else { "so it replicates nothing (a table created later with that name is picked up)" },
                        name_list(existing)
                    )
                }
                (UnmatchedKind::NoTable { .. }, None) => return None,
            })
        })
        .collect()
}

/// How long consecutive failures of one [`BoundedRetry`] kind (a read-only target, a host name that does not
/// resolve) are retried before the task stops with the last error: long enough for a failover or a DNS update.
pub const BOUNDED_RETRY_LIMIT: Duration = Duration::from_secs(300);

/// An attempt that ran at least this long made progress: its failure starts a new streak and the backoff again.
pub const RETRY_RESET_AFTER: Duration = Duration::from_secs(60);

/// The first and the longest wait between attempts after a transient failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The bounded kind of a transient failure, if it is one.
pub fn bounded_retry_of(e: &DriverError) -> Option<BoundedRetry> {
    match e {
        DriverError::Mysql(e) => e.bounded_retry(),
        _ => None,
    }
}

/// Consecutive failures of a bounded kind, and since when they go on.
#[derive(Debug, Default)]
pub struct BoundedRetries {
    streak: Option<(BoundedRetry, tokio::time::Instant)>,
}

impl BoundedRetries {
    /// Records a transient failure of `kind` after an attempt that ran `attempt_lasted`: `Ok(how long failures of
    /// this kind have gone on)` to retry, `Err(that time)` once it reaches [`BOUNDED_RETRY_LIMIT`]. A failure of
    /// another kind, or after an attempt that ran [`RETRY_RESET_AFTER`], starts a new streak.
    pub fn on_failure(&mut self, kind: Option<BoundedRetry>, attempt_lasted: Duration) -> Result<Duration, Duration> {
        let now = tokio::time::Instant::now();
        let Some(kind) = kind else {
            self.streak = None;
            return Ok(Duration::ZERO);
        };
        let since = match self.streak {
            Some((k, since)) if k == kind && attempt_lasted < RETRY_RESET_AFTER => since,
            _ => now,
        };
        self.streak = Some((kind, since));
        let lasted = now - since;
        if lasted >= BOUNDED_RETRY_LIMIT {
            Err(lasted)
        } else {
            Ok(lasted)
        }
    }
}

/// Runs `attempt` again after transient failures, with backoff (1 s doubling to 30 s, from 1 s again after an
/// attempt that ran a while or moved the job forward — its metrics counted applied or acknowledged work), until it
/// succeeds, fails definitely, `shutdown` is cancelled (`Ok`), or failures of
/// a bounded kind (a read-only target, a host that does not resolve) went on for [`BOUNDED_RETRY_LIMIT`]: then
/// the last error, with what to check. Every retry is logged with its reason.
pub async fn retry_transient<F, Fut>(job: &str, shutdown: &CancellationToken, mut attempt: F) -> Result<(), DriverError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), DriverError>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut bounded = BoundedRetries::default();
    let job_metrics = crate::metrics::job(job);
    loop {
        let started = tokio::time::Instant::now();
        let progress_before = job_metrics.progress_marker();
        match attempt().await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && !shutdown.is_cancelled() => {
                let lasted = started.elapsed();
                // A slow target can fail attempts again and again (an ack timeout) while each one moves the job on:
                // waiting longer and longer between them would only slow the catch-up down.
                if lasted >= RETRY_RESET_AFTER || job_metrics.progress_marker() != progress_before {
                    backoff = FIRST_BACKOFF;
                }
                let kind = bounded_retry_of(&e);
                match (kind, bounded.on_failure(kind, lasted)) {
                    (Some(kind), Err(failing_for)) => {
                        return Err(DriverError::Other(format!(
                            "{} It lasted {} s (the limit is {} s), so the task stops. Last error: {e}. {}",
                            kind.describe(),
                            failing_for.as_secs(),
                            BOUNDED_RETRY_LIMIT.as_secs(),
                            kind.what_to_check()
                        )))
                    }
                    (Some(kind), Ok(failing_for)) => {
                        tracing::warn!(
                            job = %job,
                            error = %e,
                            retry_in_s = backoff.as_secs(),
                            failing_for_s = failing_for.as_secs(),
                            limit_s = BOUNDED_RETRY_LIMIT.as_secs(),
                            "{} Retrying from the target's position; the task stops if this lasts {} s",
                            kind.describe(),
                            BOUNDED_RETRY_LIMIT.as_secs()
                        );
                    }
                    (None, _) => {
                        tracing::warn!(job = %job, error = %e, retry_in_s = backoff.as_secs(), "transient failure; restarting from the target's position");
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            // Asked to stop while the network failed: the stop wins; the next run resumes from the target's position.
            Err(e) if e.is_transient() => {
                tracing::warn!(job = %job, error = %e, "stopping; a transient failure was pending (the next run resumes from the target's position)");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
}

/// The suffix dtle gives the reverse direction of a `TwoWaySync` job (its positions and logs).
pub const REVERSE_JOB_SUFFIX: &str = "_dtrev";

/// The reverse direction of a `TwoWaySync` job: target → source under `<job>_dtrev`, the same tables, starting at
/// `TwoWaySyncGtid` (or the target's current position when it is empty or `"auto"`). Both sides must use the same
/// names, so renames, column maps and row filters are refused.
pub fn reverse_job(job: &ResolvedJob) -> Result<ResolvedJob, DriverError> {
    let c = &job.src;
    let TargetConfig::Mysql(target) = &job.target else {
        return Err(unsupported(job, "TwoWaySync", "two-way sync needs a MySQL target, not Kafka"));
    };
    for (i, ds) in c.replicate_do_db.iter().enumerate() {
        if !ds.table_schema_rename.is_empty() {
            return Err(unsupported(
                job,
                &format!("ReplicateDoDb[{i}].TableSchemaRename"),
                "with TwoWaySync both sides use the same names: remove the rename",
            ));
        }
        for (j, t) in ds.tables.iter().enumerate() {
            let field = |f: &str| format!("ReplicateDoDb[{i}].Tables[{j}].{f}");
            let refused = [
                (!t.table_rename.is_empty(), "TableRename"),
                (!t.column_map_from.is_empty(), "ColumnMapFrom"),
                (!t.r#where.trim().is_empty(), "Where"),
            ];
            if let Some((_, f)) = refused.iter().find(|(set, _)| *set) {
                return Err(unsupported(
                    job,
                    &field(f),
                    "with TwoWaySync both sides replicate the same rows under the same names: remove it, or run two jobs",
                ));
            }
        }
    }
    let mut reverse = job.clone();
    reverse.name = format!("{}{REVERSE_JOB_SUFFIX}", job.name);
    reverse.source = target.clone();
    reverse.target = TargetConfig::Mysql(job.source.clone());
    let r = &mut reverse.src;
    r.two_way_sync = false;
    r.binlog_file.clear();
    r.binlog_pos = 0;
    let gtid = c.two_way_sync_gtid.trim();
    if gtid.is_empty() || gtid.eq_ignore_ascii_case("auto") {
        r.gtid.clear();
        r.auto_gtid = true;
    } else {
        r.gtid = gtid.to_string();
        r.auto_gtid = false;
    }
    Ok(reverse)
}

/// The table selection from ReplicateDoDb / ReplicateIgnoreDb: regexes compiled, rename templates checked
/// against their regexes, `Where` expressions parsed. Every problem is returned, each with its field path.
pub fn table_filter(c: &TaskConfig) -> Result<TableFilter, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut rules = |list: &[DataSource], field: &str| -> Vec<SchemaRule> {
        let mut out = Vec::new();
        for (i, ds) in list.iter().enumerate() {
            let path = format!("{field}[{i}]");
            let schema = name_match(
                &ds.table_schema,
                &ds.table_schema_regex,
                &ds.table_schema_rename,
                (&format!("{path}.TableSchemaRegex"), &format!("{path}.TableSchemaRename")),
                &mut problems,
            );
            let rename = Some(ds.table_schema_rename.clone()).filter(|s| !s.is_empty());
            let mut tables = Vec::new();
            for (j, t) in ds.tables.iter().enumerate() {
                let path = format!("{path}.Tables[{j}]");
                let table = name_match(
                    &t.table_name,
                    &t.table_regex,
                    &t.table_rename,
                    (&format!("{path}.TableRegex"), &format!("{path}.TableRename")),
                    &mut problems,
                );
                let row_filter = match t.r#where.trim() {
                    "" => None,
                    text => match WhereExpr::parse(text) {
                        Ok(expr) => Some(Arc::new(expr)),
                        Err(e) => {
                            problems.push(Problem::new(format!("{path}.Where"), text, where_fix(&e)));
                            None
                        }
                    },
                };
                let column_map = (!t.column_map_from.is_empty()).then(|| {
                    Arc::new(ColumnMap {
                        from: t.column_map_from.clone(),
                        to: if t.column_map_to.is_empty() {
                            t.column_map_from.clone()
                        } else {
                            t.column_map_to.clone()
                        },
                    })
                });
                if let Some(table) = table {
                    tables.push(TableRule {
                        table,
                        rename: Some(t.table_rename.clone()).filter(|s| !s.is_empty()),
                        row_filter,
                        column_map,
                    });
                }
            }
            if let Some(schema) = schema {
                out.push(SchemaRule { schema, rename, tables });
            }
        }
        out
    };
    let filter = TableFilter {
        replicate: rules(&c.replicate_do_db, "ReplicateDoDb"),
        ignore: rules(&c.replicate_ignore_db, "ReplicateIgnoreDb"),
    };
    if problems.is_empty() {
        Ok(filter)
    } else {
        Err(problems)
    }
}

/// A `Where` problem's reason, ending with the fix.
pub(crate) fn where_fix(e: &dtle_mysql::where_expr::WhereError) -> String {
    use dtle_mysql::where_expr::WhereError;
    match e {
        WhereError::UnknownColumn { .. } => format!("{e}; name a column of the table (or fix the table rule)"),
        WhereError::Unsupported { .. } => {
            format!(
                "{e}; use columns, literals, comparisons, AND/OR/NOT, IN, BETWEEN, LIKE and deterministic functions"
            )
        }
        _ => format!(
            "{e}; write one MySQL boolean expression over the table's columns, e.g. \"id < 10 AND state = 'ok'\""
        ),
    }
}

/// The name matcher of a schema or table entry; a bad regex or a rename template that refers to groups the regex
/// lacks is a problem (`None` then). `fields` = (regex field path, rename field path).
fn name_match(
    exact: &str,
    regex: &str,
    rename: &str,
    fields: (&str, &str),
    problems: &mut Vec<Problem>,
) -> Option<NameMatch> {
    if regex.is_empty() {
        return Some(NameMatch::Exact(exact.to_string()));
    }
    match TableFilter::compile_regex(regex) {
        Ok(re) => {
            if let Some(why) = TableFilter::rename_template_problem(&re, rename) {
                problems.push(Problem::new(fields.1, rename, format!("{why} (in HCL write $${{1}} for ${{1}})")));
            }
            Some(NameMatch::Regex(re))
        }
        Err(reason) => {
            problems.push(Problem::new(fields.0, regex, format!("{reason}; fix the pattern")));
            None
        }
    }
}

/// The most target connections `ParallelWorkers` uses.
pub const PARALLEL_WORKERS_MAX: i64 = 64;

pub fn applier_options(job: &ResolvedJob) -> ApplierOptions {
    let c = &job.src;
    let mut opts = ApplierOptions::new(job.name.clone());
    opts.foreign_key_checks = c.foreign_key_checks;
    opts.retry_tx_limit = c.retry_tx_limit.clamp(0, 1000) as u32;
    opts.parallel_workers = c.parallel_workers.clamp(1, PARALLEL_WORKERS_MAX) as usize;
    opts.snapshot_writers = c.snapshot_writers.clamp(1, defaults::SNAPSHOT_WRITERS_MAX) as usize;
    opts.snapshot_load_data = c.snapshot_load_data;
    opts.snapshot_defer_indexes = c.snapshot_defer_indexes;
    opts
}

/// dtle's batching knobs: send a batch when it reaches `GroupMaxSize` bytes or `GroupTimeout` ms.
pub fn group_limits(c: &TaskConfig) -> (usize, Duration) {
    (c.group_max_size.max(1) as usize, Duration::from_millis(c.group_timeout.clamp(1, 60_000) as u64))
}

/// Big source transactions are sent in parts of `DumpEntryLimit` bytes of row data (dtle's knob for splitting big
/// transactions), brought into [`defaults::DUMP_ENTRY_LIMIT_RANGE`] so memory stays bounded whatever the
/// transaction's size (values outside are warned about by [`adjusted_settings`]).
pub fn tx_part_bytes(c: &TaskConfig) -> usize {
    let range = defaults::DUMP_ENTRY_LIMIT_RANGE;
    c.dump_entry_limit.clamp(*range.start(), *range.end()) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_only() -> DriverError {
        DriverError::Mysql(Box::new(dtle_mysql::MysqlError::query(
            "applying a transaction group on the target",
            mysql_async::Error::Server(mysql_async::ServerError {
                code: 1290,
                message:
                    "The MariaDB server is running with the --read-only option so it cannot execute this statement"
                        .into(),
                state: "HY000".into(),
            }),
        )))
    }

    fn host_not_found() -> DriverError {
        DriverError::Mysql(Box::new(dtle_mysql::MysqlError::Connect {
            role: "target",
            addr: "nosuch.invalid:3306".into(),
            field: "dest task ConnectionConfig",
            source: mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::other(
                "failed to lookup address information: Name or service not known",
            ))),
        }))
    }

    fn refused() -> DriverError {
        DriverError::Mysql(Box::new(dtle_mysql::MysqlError::Connect {
            role: "target",
            addr: "127.0.0.1:3308".into(),
            field: "dest task ConnectionConfig",
            source: mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            ))),
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_failures_are_retried_until_the_limit() {
        let quick = Duration::from_millis(200);
        let mut r = BoundedRetries::default();
        let read_only = Some(BoundedRetry::ReadOnly);
        assert_eq!(r.on_failure(read_only, quick), Ok(Duration::ZERO));
        tokio::time::advance(Duration::from_secs(299)).await;
        assert_eq!(r.on_failure(read_only, quick), Ok(Duration::from_secs(299)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(r.on_failure(read_only, quick), Err(BOUNDED_RETRY_LIMIT));
        // Another kind, a plain transient failure, or an attempt that ran a while start a new streak.
        assert_eq!(r.on_failure(Some(BoundedRetry::HostNotFound), quick), Ok(Duration::ZERO));
        tokio::time::advance(Duration::from_secs(200)).await;
        assert_eq!(r.on_failure(Some(BoundedRetry::HostNotFound), quick), Ok(Duration::from_secs(200)));
        assert_eq!(r.on_failure(None, quick), Ok(Duration::ZERO));
        tokio::time::advance(Duration::from_secs(200)).await;
        assert_eq!(r.on_failure(Some(BoundedRetry::HostNotFound), quick), Ok(Duration::ZERO));
        tokio::time::advance(Duration::from_secs(200)).await;
        assert_eq!(r.on_failure(Some(BoundedRetry::HostNotFound), RETRY_RESET_AFTER), Ok(Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_during_a_transient_failure_is_a_clean_stop() {
        // A src asked to stop while NATS was down used to exit 1 with the pending ack timeout.
        let shutdown = CancellationToken::new();
        let result = retry_transient("j", &shutdown, || {
            shutdown.cancel();
            async {
                Err(DriverError::Transport(dtle_transport::TransportError::AckTimeout { in_flight: 3, seconds: 10 }))
            }
        })
        .await;
        assert!(result.is_ok(), "{result:?}");
        // A definite error is still reported.
        let result =
            retry_transient("j", &shutdown, || async { Err(DriverError::Other("a definite failure".into())) }).await;
        assert!(result.is_err());
    }

    /// Regression (issue 12, a 200-fault campaign on a loaded machine): attempts that each moved the job on and
    /// then failed (the src's ack timeout while the target was slow) waited 1, 2, 4, ... 30 s in between, so the job
    /// spent most of its time idle and fell further behind.
    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_moved_the_job_on_restarts_the_backoff() {
        // Each attempt applies something, then fails after 10 s.
        let gaps = gaps_between_failing_attempts("retry_progress_job", 6, true).await;
        assert_eq!(gaps, vec![11; 6], "10 s of work, then 1 s of backoff each time: {gaps:?}");
        // Attempts that move nothing back off as before.
        let gaps = gaps_between_failing_attempts("retry_no_progress_job", 5, false).await;
        assert_eq!(gaps, vec![11, 12, 14, 18, 26], "{gaps:?}");
    }

    /// `failures` attempts of 10 s that end in an ack timeout (each applying transactions first when `progress`),
    /// then one that succeeds: the seconds between the attempts' starts.
    async fn gaps_between_failing_attempts(job: &'static str, failures: usize, progress: bool) -> Vec<u64> {
        let shutdown = CancellationToken::new();
        let mut starts: Vec<tokio::time::Instant> = Vec::new();
        let result = retry_transient(job, &shutdown, || {
            starts.push(tokio::time::Instant::now());
            let n = starts.len();
            async move {
                if n > failures {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_secs(10)).await;
                if progress {
                    crate::metrics::job(job).add_transactions(100);
                }
                Err(DriverError::Transport(dtle_transport::TransportError::AckTimeout { in_flight: 32, seconds: 10 }))
            }
        })
        .await;
        assert!(result.is_ok(), "{result:?}");
        starts.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_only_target_or_unknown_host_is_retried_then_fails_with_what_to_check() {
        let shutdown = CancellationToken::new();
        // Read-only for a while (a failover), then writable: the job goes on.
        let mut attempts = 0;
        let result = retry_transient("j", &shutdown, || {
            attempts += 1;
            let n = attempts;
            async move {
                if n <= 5 {
                    Err(read_only())
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(attempts, 6);

        // Read-only for good: the task stops after about BOUNDED_RETRY_LIMIT with the last error.
        for (error, check) in [(read_only as fn() -> DriverError, "read_only"), (host_not_found, "getent hosts")] {
            let start = tokio::time::Instant::now();
            let mut attempts = 0;
            let result = retry_transient("j", &shutdown, || {
                attempts += 1;
                async { Err(error()) }
            })
            .await;
            let waited = start.elapsed();
            let message = result.expect_err("gives up").to_string();
            assert!(
                waited >= BOUNDED_RETRY_LIMIT && waited <= BOUNDED_RETRY_LIMIT + MAX_BACKOFF,
                "gave up after {waited:?}"
            );
            assert!(attempts > 5, "retried with backoff: {attempts} attempts");
            assert!(message.contains("Last error:") && message.contains(check), "{message}");
        }

        // A server that refuses connections (restarting) stays retried without a bound.
        let start = tokio::time::Instant::now();
        let mut attempts = 0;
        let result = retry_transient("j", &shutdown, || {
            attempts += 1;
            let n = attempts;
            async move {
                if tokio::time::Instant::now() - start < BOUNDED_RETRY_LIMIT * 3 {
                    Err(refused())
                } else {
                    assert!(n > 10);
                    Ok(())
                }
            }
        })
        .await;
        assert!(result.is_ok(), "{result:?}");

        // A definite error stops at once.
        let mut attempts = 0;
        let result = retry_transient("j", &shutdown, || {
            attempts += 1;
            async { Err(DriverError::Other("definite".into())) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(attempts, 1);
    }

    #[test]
    fn unmatched_selection_entries_are_named_by_their_field_path() {
        let c: TaskConfig = serde_json::from_value(serde_json::json!({
            "ReplicateDoDb": [
                { "TableSchema": "shop", "Tables": [{ "TableName": "orders" }, { "TableRegex": "ordrs_.*" }] },
                { "TableSchemaRegex": "nosuch_.*" },
                { "TableSchema": "empty" }
            ],
            "ReplicateIgnoreDb": [{ "TableSchema": "gone" }]
        }))
        .expect("task config");
        let filter = table_filter(&c).expect("filter");
        let schemas: Vec<String> = ["empty", "shop"].iter().map(|s| s.to_string()).collect();
        let tables = vec![("shop".to_string(), "orders".to_string()), ("shop".to_string(), "items".to_string())];
        let warnings = describe_unmatched(&c, &filter.unmatched_rules(&schemas, &tables));
        assert_eq!(warnings.len(), 4, "{warnings:#?}");
        assert!(
            warnings[0].starts_with(
                "ReplicateDoDb[0].Tables[1].TableRegex = \"ordrs_.*\" matches no table of schema \"shop\""
            ) && warnings[0].contains("\"items\", \"orders\""),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[1].starts_with("ReplicateDoDb[1].TableSchemaRegex = \"nosuch_.*\" matches no schema")
                && warnings[1].contains("\"empty\", \"shop\""),
            "{}",
            warnings[1]
        );
        assert!(warnings[2].starts_with("ReplicateDoDb[2].TableSchema = \"empty\": schema \"empty\" has no tables"));
        assert!(
            warnings[3].starts_with("ReplicateIgnoreDb[0].TableSchema = \"gone\"")
                && warnings[3].contains("leaves nothing out")
        );
    }
}
