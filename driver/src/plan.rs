//! One plan: the job resolved into what the engine runs, and the checks every start makes.
//!
//! [`Plan::build`] turns a [`ResolvedJob`] into the engine's settings — the table selection (regexes, renames,
//! parsed `Where` expressions, column maps), the `SqlFilter`, the applier options and the size of big-transaction
//! parts — and reports *every* value that cannot work at once, each with its field path, value and fix.
//! [`check`] is what `dtle validate`, every start of `dtle run` (each task, each restart) and the Nomad plugin's
//! `StartTask` run before anything is written: the plan, then the plan bound to the live source (each `Where`
//! against its table's columns, column maps against the columns, renames against the tables they rename), then
//! the servers' prerequisites. The same function for all three, so they accept and refuse the same jobs with the
//! same messages.

use std::collections::BTreeSet;

use dtle_mysql::applier::ApplierOptions;
use dtle_mysql::filter::{TableFilter, SYSTEM_SCHEMAS};
use dtle_mysql::prereq::{check_source, check_target, SourceRequirements};
use dtle_mysql::sql_filter::SqlFilter;
use dtle_mysql::MysqlError;

use crate::config::{DataSource, ResolvedJob, TargetConfig};
use crate::engine;
use crate::error::{DriverError, Problem};
use crate::standalone::Roles;

/// The longest schema or table name MySQL accepts.
const MAX_NAME_LEN: usize = 64;

/// The job as the engine runs it.
#[derive(Clone, Debug)]
pub struct Plan {
    pub filter: TableFilter,
    pub sql_filter: SqlFilter,
    pub applier: ApplierOptions,
    /// Bytes of row data per part of a big source transaction (`DumpEntryLimit`, brought into its range).
    pub tx_part_bytes: usize,
    /// Values used differently than written (brought into their range).
    pub warnings: Vec<String>,
}

impl Plan {
    /// The plan of a job, without any server. Every problem is reported at once ([`DriverError::Problems`]).
    pub fn build(job: &ResolvedJob) -> Result<Plan, DriverError> {
        let mut problems = engine::unsupported_settings(job);
        let filter = match engine::table_filter(&job.src) {
            Ok(filter) => Some(filter),
            Err(p) => {
                problems.extend(p);
                None
            }
        };
        let sql_filter = match SqlFilter::from_names(job.src.sql_filters()) {
            Ok(f) => Some(f),
            Err(name) => {
                problems.push(Problem::new(
                    "SqlFilter",
                    name,
                    format!("unknown filter name; known filters: {}", crate::config::SQL_FILTER_NAMES.join(", ")),
                ));
                None
            }
        };
        match (filter, sql_filter) {
            (Some(filter), Some(sql_filter)) if problems.is_empty() => Ok(Plan {
                filter,
                sql_filter,
                applier: engine::applier_options(job),
                tx_part_bytes: engine::tx_part_bytes(&job.src),
                warnings: engine::adjusted_settings(&job.src),
            }),
            _ => Err(problems_error(job, problems, Vec::new())),
        }
    }
}

fn problems_error(job: &ResolvedJob, problems: Vec<Problem>, prerequisites: Vec<MysqlError>) -> DriverError {
    DriverError::Problems { job: job.name.clone(), problems, prerequisites }
}

/// The checks before a task writes anything, for the tasks `roles` says this process runs: the [`Plan`], bound
/// to the live source when the src task is here, and the prerequisites of the servers the tasks talk to. All
/// problems come back at once; `Ok` holds the plan and the warnings (values brought into range, selection
/// entries that match no table on the source). A server that cannot be reached is a transient error.
pub async fn check(job: &ResolvedJob, roles: Roles) -> Result<(Plan, Vec<String>), DriverError> {
    let plan = Plan::build(job)?;
    let mut warnings = plan.warnings.clone();
    let mut problems = Vec::new();
    if roles != Roles::DestOnly {
        // A source that cannot be read is reported by its prerequisite check below.
        match bind_to_source(job, &plan).await {
            Ok((p, w)) => {
                problems.extend(p);
                warnings.extend(w);
            }
            Err(e) => tracing::debug!(job = %job.name, error = %e, "cannot read the source's tables to bind the plan"),
        }
    }
    let mut prerequisites = Vec::new();
    match &job.target {
        TargetConfig::Kafka(k) => {
            if let Err(e) = crate::kafka_dest::validate(job, k, roles).await {
                match e {
                    DriverError::Prerequisites(f) => prerequisites.extend(f),
                    e if problems.is_empty() => return Err(e),
                    e => problems.push(Problem::new("KafkaConfig", k.topic.clone(), e.to_string())),
                }
            }
        }
        TargetConfig::Mysql(_) => {
            let (source, target) = engine::endpoints(job)?;
            let req = SourceRequirements {
                needs_gtid: !job.src.gtid.is_empty() || job.src.auto_gtid,
                skip_privilege_check: job.src.skip_privilege_check,
                snapshot_only: job.src.skip_incremental_copy,
            };
            if roles != Roles::DestOnly {
                match check_source(&source, req).await {
                    Ok((_, f)) => prerequisites.extend(f),
                    Err(e) => prerequisites.push(e),
                }
            }
            if roles != Roles::SrcOnly {
                match check_target(&target, job.src.skip_privilege_check).await {
                    Ok((_, f)) => prerequisites.extend(f),
                    Err(e) => prerequisites.push(e),
                }
            }
        }
    }
    if problems.is_empty() && prerequisites.is_empty() {
        Ok((plan, warnings))
    } else if problems.is_empty() && prerequisites.len() == 1 && prerequisites[0].is_transient() {
        Err(prerequisites.remove(0).into())
    } else if problems.is_empty() {
        Err(DriverError::Prerequisites(prerequisites))
    } else {
        Err(problems_error(job, problems, prerequisites))
    }
}

/// The plan against the source's tables: the problems (a `Where` naming a column its table lacks, a column map
/// naming a missing column, a rename giving a name MySQL refuses or a system schema) and the warnings (selection
/// entries that match no table). One problem per field, for the first table that shows it.
async fn bind_to_source(job: &ResolvedJob, plan: &Plan) -> Result<(Vec<Problem>, Vec<String>), MysqlError> {
    let endpoint = engine::source_endpoint(job);
    let (schemas, tables) = dtle_mysql::prereq::source_tables(&endpoint).await?;
    let warnings = engine::describe_unmatched(&job.src, &plan.filter.unmatched_rules(&schemas, &tables));
    let mut problems = Vec::new();
    let mut reported = BTreeSet::new();
    let mut report = |problems: &mut Vec<Problem>, p: Problem| {
        if reported.insert(p.field.clone()) {
            problems.push(p);
        }
    };
    let mut conn = None;
    for (schema, table) in &tables {
        let Some((i, j)) = plan.filter.selecting_rule(schema, table) else { continue };
        let Some(selection) = plan.filter.selection_of(schema, table) else { continue };
        let Some(ds) = job.src.replicate_do_db.get(i) else { continue };
        let entry = Entry { i, j, ds };
        for (field, value, name) in [
            (entry.schema_rename_field(), ds.table_schema_rename.as_str(), &selection.target_schema),
            (entry.table_rename_field(), entry.table_rename(), &selection.target_name),
        ] {
            if let Some(why) = target_name_problem(name) {
                let reason = format!(
                    "source table {schema}.{table} would be written to {name:?}, which {why}; change the rename"
                );
                report(&mut problems, Problem::new(field, value, reason));
            }
        }
        if selection.row_filter.is_none() && selection.column_map.is_none() {
            continue;
        }
        let c = match &mut conn {
            Some(c) => c,
            None => conn.insert(endpoint.connect(&[]).await?),
        };
        let Some(meta) = dtle_mysql::schema::load_table_meta(c, schema, table).await? else { continue };
        let table_rule = j.and_then(|j| ds.tables.get(j));
        if let (Some(expr), Some(t)) = (&selection.row_filter, table_rule) {
            if let Err(e) = expr.bind(&meta.columns) {
                let reason = format!("table {schema}.{table}: {}", engine::where_fix(&e));
                report(&mut problems, Problem::new(entry.field("Where"), t.r#where.trim(), reason));
            }
        }
        if let (Some(map), Some(t)) = (&selection.column_map, table_rule) {
            if let Err(why) = meta.project(&map.from, &map.to) {
                let reason = format!("{why}; list columns of the source table");
                report(&mut problems, Problem::new(entry.field("ColumnMapFrom"), t.column_map_from.join(","), reason));
            }
        }
    }
    if let Some(c) = conn {
        let _ = c.disconnect().await;
    }
    Ok((problems, warnings))
}

/// A `ReplicateDoDb[i]` entry and, when the table rule selected the table, its `Tables[j]`.
struct Entry<'a> {
    i: usize,
    j: Option<usize>,
    ds: &'a DataSource,
}

impl Entry<'_> {
    fn field(&self, name: &str) -> String {
        match self.j {
            Some(j) => format!("ReplicateDoDb[{}].Tables[{j}].{name}", self.i),
            None => format!("ReplicateDoDb[{}].{name}", self.i),
        }
    }
    fn schema_rename_field(&self) -> String {
        format!("ReplicateDoDb[{}].TableSchemaRename", self.i)
    }
    fn table_rename_field(&self) -> String {
        self.field("TableRename")
    }
    fn table_rename(&self) -> &str {
        self.j.and_then(|j| self.ds.tables.get(j)).map_or("", |t| t.table_rename.as_str())
    }
}

/// Why MySQL (or dtle) would refuse this target schema or table name, if it would.
fn target_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("is empty".into())
    } else if name.chars().count() > MAX_NAME_LEN {
        Some(format!("is longer than the {MAX_NAME_LEN} characters MySQL allows"))
    } else if name.ends_with(' ') {
        Some("ends with a space, which MySQL does not allow in names".into())
    } else if SYSTEM_SCHEMAS.contains(&name) {
        Some("is a system schema dtle never writes".into())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(src: serde_json::Value) -> ResolvedJob {
        let conn = serde_json::json!({ "Host": "127.0.0.1", "Port": 1, "User": "u", "Password": "p" });
        let mut task = src;
        task["SrcConnectionConfig"] = conn.clone();
        task["DestConnectionConfig"] = conn;
        let text = serde_json::json!({ "Job": { "ID": "plan_test", "TaskGroups": [
            { "Name": "src", "Tasks": [{ "Name": "src", "Driver": "dtle", "Config": task }] },
            { "Name": "dest", "Tasks": [{ "Name": "dest", "Driver": "dtle", "Config": { "DestType": "mysql" } }] }
        ] } });
        crate::config::parse_job_str(&text.to_string(), crate::config::JobFormat::Json)
            .and_then(|f| f.resolve())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn problems(job: &ResolvedJob) -> Vec<Problem> {
        match Plan::build(job) {
            Err(DriverError::Problems { problems, .. }) => problems,
            Err(e) => panic!("another error: {e}"),
            Ok(_) => Vec::new(),
        }
    }

    #[test]
    fn every_problem_of_the_job_is_reported_with_its_field_path() {
        let j = job(serde_json::json!({
            "ReplicateDoDb": [
                { "TableSchema": "a", "Tables": [{ "TableName": "t" }, { "TableName": "u", "Where": "id < 10 and" }] },
                { "TableSchemaRegex": "shard_(.*)", "TableSchemaRename": "all_${2}" },
                { "TableSchema": "b", "Tables": [{ "TableRegex": "log_.*", "TableRename": "$1_new" }] }
            ],
            "WaitOnJob": "other",
        }));
        let found = problems(&j);
        let fields: Vec<&str> = found.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "WaitOnJob",
                "ReplicateDoDb[0].Tables[1].Where",
                "ReplicateDoDb[1].TableSchemaRename",
                "ReplicateDoDb[2].Tables[0].TableRename"
            ],
            "{found:#?}"
        );
        assert_eq!(found[1].value, "id < 10 and");
        let text = problems_error(&j, found, Vec::new()).to_string();
        assert!(text.starts_with("job \"plan_test\": 4 problem(s) in the job:\n  - WaitOnJob = \"other\""), "{text}");
        assert!(text.contains("ReplicateDoDb[0].Tables[1].Where = \"id < 10 and\": cannot parse"), "{text}");
    }

    #[test]
    fn dump_entry_limit_is_brought_into_its_range_with_a_warning_unless_it_is_the_default() {
        let mib = 1 << 20;
        let plan = |limit: Option<i64>| {
            let j = match limit {
                Some(l) => job(serde_json::json!({ "DumpEntryLimit": l })),
                None => job(serde_json::json!({})),
            };
            Plan::build(&j).expect("plan")
        };
        let default = plan(None);
        assert_eq!(default.tx_part_bytes, 2 * mib, "dtle's default, 64 MiB, means the largest part: 2 MiB");
        assert!(default.warnings.is_empty(), "{:?}", default.warnings);
        let in_range = plan(Some(mib as i64));
        assert_eq!(in_range.tx_part_bytes, mib);
        assert!(in_range.warnings.is_empty());
        let big = plan(Some(16 * mib as i64));
        assert_eq!(big.tx_part_bytes, 2 * mib);
        assert_eq!(big.warnings.len(), 1);
        assert!(
            big.warnings[0]
                .starts_with("DumpEntryLimit = 16777216: big transactions are sent in parts of 2097152 bytes"),
            "{:?}",
            big.warnings
        );
        let small = plan(Some(1000));
        assert_eq!(small.tx_part_bytes, 64 << 10);
        assert!(small.warnings[0].contains("DumpEntryLimit = 1000"), "{:?}", small.warnings);
    }

    #[test]
    fn snapshot_fields_reach_the_applier_options() {
        let defaults = Plan::build(&job(serde_json::json!({}))).expect("plan").applier;
        assert_eq!(defaults.snapshot_writers, dtle_mysql::snapshot_apply::SNAPSHOT_WRITERS);
        assert!(defaults.snapshot_load_data && defaults.snapshot_defer_indexes);
        let set = Plan::build(&job(serde_json::json!({
            "SnapshotWriters": 2, "SnapshotLoadData": false, "SnapshotDeferIndexes": false
        })))
        .expect("plan");
        assert_eq!(set.applier.snapshot_writers, 2);
        assert!(!set.applier.snapshot_load_data && !set.applier.snapshot_defer_indexes);
        assert!(set.warnings.is_empty());
        let many = Plan::build(&job(serde_json::json!({ "SnapshotWriters": 100 }))).expect("plan");
        assert_eq!(many.applier.snapshot_writers, 64);
        assert!(many.warnings[0].starts_with("SnapshotWriters = 100: at most 64"), "{:?}", many.warnings);
    }

    #[test]
    fn target_names_mysql_refuses_are_found() {
        assert!(target_name_problem("").is_some());
        assert!(target_name_problem(&"x".repeat(65)).is_some());
        assert!(target_name_problem("mysql").is_some());
        assert!(target_name_problem("shop_1").is_none());
    }
}
