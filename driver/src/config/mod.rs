//! Job files: Nomad jobs in HCL or JSON whose dtle tasks (`src`, `dest`) carry a dtle task config.
//!
//! - [`parse_job_file`] / [`parse_job_str`] read a job into a [`JobFile`]: the job name and the
//!   config of each dtle task, type-checked, unknown fields rejected, defaults applied.
//! - [`JobFile::resolve`] combines the tasks of either job shape (3.x: `ConnectionConfig` in each
//!   task; 4.x: everything in the src task, `DestType` in the dest task) into a [`ResolvedJob`]:
//!   one source, one target and the replication settings, validated.
//! - [`TASK_CONFIG_FIELDS`] is the one table of task-config fields, kinds and defaults.

mod error;
mod hcl_job;
mod json_job;
mod normalize;
mod spec;
mod task;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Map, Value};

pub use error::{ConfigError, Location};
pub use spec::{
    canonical_sql_filter, defaults, find_field, FieldDefault, FieldKind, FieldSpec, CONNECTION_CONFIG_FIELDS,
    DATA_SOURCE_FIELDS, KAFKA_CONFIG_FIELDS, ORACLE_CONFIG_FIELDS, SQL_FILTER_NAMES, TABLE_FIELDS, TASK_CONFIG_FIELDS,
};
pub use task::{ConnectionConfig, DataSource, DestType, KafkaConfig, OracleConfig, Table, TaskConfig, TaskRole};

/// dtle's job name limit (`job_name varchar(64)`).
pub const JOB_NAME_MAX_LEN: usize = 64;

/// How a job file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobFormat {
    Hcl,
    Json,
}

/// Where a dtle task sits in the job, and which config fields it set explicitly.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskMeta {
    /// The Nomad task name (`src`, `source`, `dest`, ...).
    pub name: String,
    /// The Nomad task group name.
    pub group: String,
    /// Top-level config fields written in the job file (canonical names).
    pub set_fields: BTreeSet<String>,
}

/// A parsed job file: the job name and the config of each dtle task present.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFile {
    pub name: String,
    pub src: Option<TaskConfig>,
    pub dest: Option<TaskConfig>,
    pub src_task: Option<TaskMeta>,
    pub dest_task: Option<TaskMeta>,
    pub format: JobFormat,
}

/// Where the job writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetConfig {
    Mysql(ConnectionConfig),
    Kafka(KafkaConfig),
}

/// Which way the job file was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobShape {
    /// `ConnectionConfig` in the src task (source) and in the dest task (target), or dest `KafkaConfig`.
    V3,
    /// src task holds `SrcConnectionConfig` + `DestConnectionConfig`/`KafkaConfig`; dest holds `DestType`.
    V4,
}

/// A job reduced to what the engine runs: one source, one target, the replication settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedJob {
    pub name: String,
    pub source: ConnectionConfig,
    pub target: TargetConfig,
    /// The replication settings, in the 4.x shape: `SrcConnectionConfig` = source, and
    /// `DestConnectionConfig` or `KafkaConfig` = target, `DestType` set, `ConnectionConfig` unset.
    /// For 3.x jobs, fields set only in the dest task (e.g. `ParallelWorkers`) are merged in.
    pub src: TaskConfig,
    pub shape: JobShape,
}

/// One task as found in the file, before its config is checked.
pub(crate) struct RawTask {
    pub name: String,
    pub group: String,
    pub driver: Option<String>,
    pub config: Map<String, Value>,
}

/// Read a job file. `.hcl`/`.nomad` → HCL, `.json` → JSON, otherwise JSON if the first
/// non-space character is `{`, else HCL.
pub fn parse_job_file(path: &Path) -> Result<JobFile, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: file.clone(), source })?;
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some("hcl") | Some("nomad") => JobFormat::Hcl,
        Some("json") => JobFormat::Json,
        _ => sniff_format(&text),
    };
    parse_job_text(&text, format, &file)
}

/// Parse job text in the given format.
pub fn parse_job_str(text: &str, format: JobFormat) -> Result<JobFile, ConfigError> {
    parse_job_text(text, format, "<job>")
}

/// JSON if the first non-space character is `{`, else HCL.
pub fn sniff_format(text: &str) -> JobFormat {
    match text.trim_start_matches('\u{feff}').trim_start().chars().next() {
        Some('{') => JobFormat::Json,
        _ => JobFormat::Hcl,
    }
}

fn parse_job_text(text: &str, format: JobFormat, file: &str) -> Result<JobFile, ConfigError> {
    let text = text.trim_start_matches('\u{feff}');
    let (name, tasks) = match format {
        JobFormat::Hcl => hcl_job::parse(text, file)?,
        JobFormat::Json => json_job::parse(text, file)?,
    };
    if name.trim().is_empty() {
        return Err(ConfigError::JobShape { file: file.to_string(), message: "the job name is empty".into() });
    }
    let mut job = JobFile { name: name.clone(), src: None, dest: None, src_task: None, dest_task: None, format };
    for raw in tasks {
        if raw.driver.as_deref().is_some_and(|d| !d.eq_ignore_ascii_case("dtle")) {
            continue; // not ours (e.g. a sidecar task)
        }
        let role = TaskRole::from_task_name(&raw.name)
            .ok_or_else(|| ConfigError::BadTaskName { job: name.clone(), task: raw.name.clone() })?;
        let (config, meta) = task_from_raw(&name, raw)?;
        let (slot, meta_slot) = match role {
            TaskRole::Src => (&mut job.src, &mut job.src_task),
            TaskRole::Dest => (&mut job.dest, &mut job.dest_task),
        };
        if let Some(first) = meta_slot {
            return Err(ConfigError::DuplicateRole {
                job: name.clone(),
                role: role.as_str(),
                first: first.name.clone(),
                second: meta.name,
            });
        }
        *slot = Some(config);
        *meta_slot = Some(meta);
    }
    if job.src.is_none() && job.dest.is_none() {
        return Err(ConfigError::NoTasks { job: name });
    }
    Ok(job)
}

fn task_from_raw(job: &str, raw: RawTask) -> Result<(TaskConfig, TaskMeta), ConfigError> {
    let at = Location { job: job.to_string(), task: raw.name.clone() };
    let mut config = raw.config;
    normalize::normalize_object(&at, "", &mut config, TASK_CONFIG_FIELDS)?;
    let set_fields = config.keys().cloned().collect();
    let mut task = decode_task(&at, config)?;
    task.apply_zero_defaults();
    Ok((task, TaskMeta { name: raw.name, group: raw.group, set_fields }))
}

fn decode_task(at: &Location, config: Map<String, Value>) -> Result<TaskConfig, ConfigError> {
    serde_json::from_value(Value::Object(config)).map_err(|e| decode_error(at, e))
}

/// The field walk catches unknown fields and type errors first; this only turns what serde still
/// finds into a message with the job and task.
fn decode_error(at: &Location, e: serde_json::Error) -> ConfigError {
    let msg = e.to_string();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        if let Some(end) = rest.find('`') {
            let field = &rest[..end];
            return ConfigError::UnknownField {
                at: Box::new(at.clone()),
                path: field.to_string(),
                suggestion: spec::suggest(TASK_CONFIG_FIELDS.iter().map(|f| f.name), field).map(str::to_string),
                valid: Vec::new(),
            };
        }
    }
    ConfigError::Decode { at: Box::new(at.clone()), message: msg }
}

/// Fields of the dest task that say where to write, not how: never merged into the src settings.
const TARGET_FIELDS: &[&str] =
    &["ConnectionConfig", "SrcConnectionConfig", "DestConnectionConfig", "SrcOracleConfig", "KafkaConfig", "DestType"];

impl JobFile {
    /// The config of the task with this role, if the job has one.
    pub fn task(&self, role: TaskRole) -> Option<&TaskConfig> {
        match role {
            TaskRole::Src => self.src.as_ref(),
            TaskRole::Dest => self.dest.as_ref(),
        }
    }

    /// The Nomad task name for a role (falls back to the role name).
    pub fn task_name(&self, role: TaskRole) -> &str {
        let meta = match role {
            TaskRole::Src => self.src_task.as_ref(),
            TaskRole::Dest => self.dest_task.as_ref(),
        };
        meta.map(|m| m.name.as_str()).unwrap_or(role.as_str())
    }

    /// Check the job name and each task present against dtle's rules (no cross-task checks).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let len = self.name.chars().count();
        if len > JOB_NAME_MAX_LEN {
            return Err(ConfigError::JobNameTooLong { job: self.name.clone(), len, max: JOB_NAME_MAX_LEN });
        }
        for role in [TaskRole::Src, TaskRole::Dest] {
            if let Some(t) = self.task(role) {
                t.validate(&self.name, self.task_name(role))?;
            }
        }
        Ok(())
    }

    /// Combine the tasks (either shape) into one source, one target and the settings; validated.
    pub fn resolve(&self) -> Result<ResolvedJob, ConfigError> {
        self.validate()?;
        let job = &self.name;
        let unresolved = |message: String| ConfigError::Unresolved { job: job.clone(), message };
        let src_name = self.task_name(TaskRole::Src).to_string();
        let dest_name = self.task_name(TaskRole::Dest).to_string();

        let Some(s) = &self.src else {
            return Err(unresolved(
                "the job has no src task, so there is no source: add a task \"src\" holding \
                 SrcConnectionConfig (4.x shape) or ConnectionConfig (3.x shape)"
                    .into(),
            ));
        };

        // Source.
        let (source, src_shape) = match (&s.src_connection_config, &s.connection_config) {
            (Some(c), _) => (c.clone(), JobShape::V4),
            (None, Some(c)) => (c.clone(), JobShape::V3),
            (None, None) if s.src_oracle_config.is_some() => {
                return Err(unresolved(format!(
                    "task \"{src_name}\" reads from Oracle (SrcOracleConfig), which this dtle does \
                     not support: use a MySQL source (SrcConnectionConfig)"
                )))
            }
            (None, None) => {
                return Err(unresolved(format!(
                    "task \"{src_name}\" has no source: set SrcConnectionConfig (4.x shape) or \
                     ConnectionConfig (3.x shape) in it"
                )))
            }
        };

        // Target: from the src task (4.x) and/or the dest task (3.x).
        let from_src = match (&s.dest_connection_config, &s.kafka_config) {
            (Some(c), _) => Some(TargetConfig::Mysql(c.clone())),
            (None, Some(k)) => Some(TargetConfig::Kafka(k.clone())),
            (None, None) => None,
        };
        let from_dest = match &self.dest {
            Some(d) => {
                let mysql = d.connection_config.as_ref().or(d.dest_connection_config.as_ref());
                match (mysql, &d.kafka_config) {
                    (Some(_), Some(_)) => {
                        return Err(unresolved(format!(
                            "task \"{dest_name}\" sets both a MySQL target (ConnectionConfig) and \
                             KafkaConfig: keep one"
                        )))
                    }
                    (Some(c), None) => Some(TargetConfig::Mysql(c.clone())),
                    (None, Some(k)) => Some(TargetConfig::Kafka(k.clone())),
                    (None, None) => None,
                }
            }
            None => None,
        };
        let (target, shape) = match (from_src, from_dest) {
            (Some(a), Some(b)) if a != b => {
                return Err(unresolved(format!(
                    "the target is set in both task \"{src_name}\" (DestConnectionConfig/KafkaConfig) \
                     and task \"{dest_name}\" (ConnectionConfig/KafkaConfig), differently: set it \
                     in one place (4.x shape: in the src task, with DestType in the dest task)"
                )))
            }
            (Some(a), _) => (a, JobShape::V4),
            (None, Some(b)) => (b, JobShape::V3),
            (None, None) => {
                let hint = if self.dest.is_none() { " (the job has no dest task)" } else { "" };
                return Err(unresolved(format!(
                    "no target{hint}: set DestConnectionConfig or KafkaConfig in task \
                     \"{src_name}\" (4.x shape), or ConnectionConfig or KafkaConfig in the dest \
                     task (3.x shape)"
                )));
            }
        };
        let shape = if src_shape == JobShape::V3 && shape == JobShape::V3 { JobShape::V3 } else { JobShape::V4 };

        // DestType, where given, must agree with the target.
        let kind = match &target {
            TargetConfig::Mysql(_) => DestType::Mysql,
            TargetConfig::Kafka(_) => DestType::Kafka,
        };
        for (task_name, t) in [(&src_name, Some(s)), (&dest_name, self.dest.as_ref())] {
            if let Some(Ok(Some(declared))) = t.map(TaskConfig::dest_type) {
                if declared != kind {
                    return Err(ConfigError::invalid(
                        job,
                        task_name,
                        "DestType",
                        format!(
                            "DestType is \"{}\" but the job's target is {}: set DestType = \"{}\"",
                            dest_type_name(declared),
                            match kind {
                                DestType::Mysql => "a MySQL server (DestConnectionConfig)",
                                DestType::Kafka => "Kafka (KafkaConfig)",
                            },
                            dest_type_name(kind)
                        ),
                    ));
                }
            }
        }

        // Settings: the src task, plus fields written only in the dest task.
        let mut settings = s.clone();
        if let (Some(d), Some(dmeta)) = (&self.dest, &self.dest_task) {
            let src_set: BTreeSet<String> = self.src_task.as_ref().map(|m| m.set_fields.clone()).unwrap_or_default();
            let extra: Vec<&String> = dmeta
                .set_fields
                .iter()
                .filter(|f| !src_set.contains(*f) && !TARGET_FIELDS.contains(&f.as_str()))
                .collect();
            if !extra.is_empty() {
                let at = Location { job: job.clone(), task: src_name.clone() };
                let to_map = |t: &TaskConfig| match serde_json::to_value(t) {
                    Ok(Value::Object(m)) => Ok(m),
                    Ok(_) => Err(ConfigError::Decode {
                        at: Box::new(at.clone()),
                        message: "task config did not serialize to an object".into(),
                    }),
                    Err(e) => Err(decode_error(&at, e)),
                };
                let mut merged = to_map(s)?;
                let dmap = to_map(d)?;
                for f in extra {
                    if let Some(v) = dmap.get(f) {
                        merged.insert(f.clone(), v.clone());
                    }
                }
                settings = decode_task(&at, merged)?;
            }
        }
        settings.connection_config = None;
        settings.src_connection_config = Some(source.clone());
        settings.src_oracle_config = None;
        match &target {
            TargetConfig::Mysql(c) => {
                settings.dest_connection_config = Some(c.clone());
                settings.kafka_config = None;
            }
            TargetConfig::Kafka(k) => {
                settings.dest_connection_config = None;
                settings.kafka_config = Some(k.clone());
            }
        }
        settings.dest_type = Some(dest_type_name(kind).to_string());
        settings.validate(job, &src_name)?;

        Ok(ResolvedJob { name: job.clone(), source, target, src: settings, shape })
    }
}

fn dest_type_name(t: DestType) -> &'static str {
    match t {
        DestType::Mysql => "mysql",
        DestType::Kafka => "kafka",
    }
}
