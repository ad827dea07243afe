//! One Nomad task → what its role runs. Nomad hands the plugin one task at a time, so the task's config goes
//! through the config module's Nomad-JSON path as a one-task job (same field checks and messages as `dtle run`),
//! then is reduced to the job the role needs:
//!
//! - src task, 4.x shape (`SrcConnectionConfig` + `DestConnectionConfig`/`KafkaConfig`): the whole job;
//! - src task, 3.x shape (`ConnectionConfig` = source): the source and the settings; the target lives in the dest
//!   task and the src role never connects to it;
//! - dest task, 3.x shape (`ConnectionConfig` = target, or `KafkaConfig`): the target and the dest's settings;
//! - dest task, 4.x shape (only `DestType`): the target is in the src task; see [`Resolved::NeedsSrcTask`].

use serde_json::{json, Value};

use crate::config::{
    parse_job_str, ConfigError, ConnectionConfig, JobFormat, JobShape, ResolvedJob, TargetConfig, TaskConfig, TaskRole,
};

/// What a task resolves to.
#[derive(Debug)]
pub enum Resolved {
    /// The task has what its role needs.
    Ready(Box<ResolvedJob>),
    /// A 4.x-shape dest task: its target is in the job's src task.
    NeedsSrcTask,
}

/// The role a task name gives (dtle's rule).
pub fn role_of(task_name: &str) -> Result<TaskRole, String> {
    TaskRole::from_task_name(task_name).ok_or_else(|| {
        format!(
            "task {task_name:?}: dtle takes the task's role from its name: name the task \"src\" (or \"source\") \
             for the side that reads the source, \"dest\" (or \"dst\", \"destination\") for the side that writes \
             the target"
        )
    })
}

/// Checks a task's config (as JSON from the cty msgpack) and reduces it to what its role runs.
pub fn resolve_task(job: &str, group: &str, task_name: &str, config: Value) -> Result<(TaskRole, Resolved), String> {
    let role = role_of(task_name)?;
    let config = match config {
        Value::Null => json!({}),
        Value::Object(m) => Value::Object(m),
        other => return Err(format!("task {task_name:?}: the config must be a block of fields, not {other}")),
    };
    let text = json!({"Job": {"ID": job, "TaskGroups": [{"Name": group, "Tasks": [
        {"Name": task_name, "Driver": "dtle", "Config": config}
    ]}]}})
    .to_string();
    let file = parse_job_str(&text, JobFormat::Json).map_err(|e| e.to_string())?;
    file.validate().map_err(|e| e.to_string())?;
    let resolved = match role {
        TaskRole::Src => {
            let s = file.src.as_ref().ok_or_else(|| format!("task {task_name:?}: no config"))?;
            if s.dest_connection_config.is_some() || s.kafka_config.is_some() {
                Resolved::Ready(Box::new(file.resolve().map_err(|e| e.to_string())?))
            } else {
                match s.src_connection_config.clone().or_else(|| s.connection_config.clone()) {
                    Some(source) => Resolved::Ready(Box::new(src_only(job, source, s))),
                    // No source at all: the config module's message says what to add.
                    None => return Err(file.resolve().err().map(|e| e.to_string()).unwrap_or_default()),
                }
            }
        }
        TaskRole::Dest => {
            let d = file.dest.as_ref().ok_or_else(|| format!("task {task_name:?}: no config"))?;
            let mysql = d.connection_config.clone().or_else(|| d.dest_connection_config.clone());
            let target = match (mysql, &d.kafka_config) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::invalid(
                        job,
                        task_name,
                        "KafkaConfig",
                        "the dest task sets both a MySQL target (ConnectionConfig) and KafkaConfig: keep one",
                    )
                    .to_string())
                }
                (Some(c), None) => Some(TargetConfig::Mysql(c)),
                (None, Some(k)) => Some(TargetConfig::Kafka(k.clone())),
                (None, None) => None,
            };
            match target {
                Some(target) => Resolved::Ready(Box::new(dest_only(job, target, d))),
                None if d.dest_type.is_some() => Resolved::NeedsSrcTask,
                None => {
                    return Err(format!(
                        "job {job:?}, task {task_name:?}: the dest task has no target: set ConnectionConfig \
                         {{ Host, Port, User, Password }} (the target MySQL) or KafkaConfig in it"
                    ))
                }
            }
        }
    };
    Ok((role, resolved))
}

/// Stands for the side of the job this task does not run; the role never connects to it.
fn elsewhere() -> ConnectionConfig {
    ConnectionConfig {
        host: String::new(),
        port: 0,
        user: String::new(),
        password: String::new(),
        charset: crate::config::defaults::CHARSET.to_string(),
    }
}

fn src_only(job: &str, source: ConnectionConfig, s: &TaskConfig) -> ResolvedJob {
    let mut settings = s.clone();
    settings.connection_config = None;
    settings.src_connection_config = Some(source.clone());
    settings.src_oracle_config = None;
    ResolvedJob {
        name: job.to_string(),
        source,
        target: TargetConfig::Mysql(elsewhere()),
        src: settings,
        shape: JobShape::V3,
    }
}

fn dest_only(job: &str, target: TargetConfig, d: &TaskConfig) -> ResolvedJob {
    let mut settings = d.clone();
    settings.connection_config = None;
    settings.src_connection_config = None;
    settings.src_oracle_config = None;
    match &target {
        TargetConfig::Mysql(c) => {
            settings.dest_connection_config = Some(c.clone());
            settings.kafka_config = None;
            settings.dest_type = Some("mysql".into());
        }
        TargetConfig::Kafka(k) => {
            settings.dest_connection_config = None;
            settings.kafka_config = Some(k.clone());
            settings.dest_type = Some("kafka".into());
        }
    }
    ResolvedJob { name: job.to_string(), source: elsewhere(), target, src: settings, shape: JobShape::V3 }
}

/// `host:port` of the server the role connects to first (src: the source, dest: the MySQL target).
pub fn first_endpoint(role: TaskRole, job: &ResolvedJob) -> Option<String> {
    match role {
        TaskRole::Src => Some(job.source.addr()),
        TaskRole::Dest => match &job.target {
            TargetConfig::Mysql(c) => Some(c.addr()),
            TargetConfig::Kafka(_) => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(port: u16) -> Value {
        json!({"Host": "127.0.0.1", "Port": port, "User": "u", "Password": "p"})
    }

    #[test]
    fn v3_src_and_dest() {
        let (role, r) = resolve_task(
            "j",
            "src",
            "src",
            json!({"ConnectionConfig": [conn(3307)], "ReplicateDoDb": [{"TableSchema": "a"}], "ChunkSize": "500"}),
        )
        .unwrap();
        assert_eq!(role, TaskRole::Src);
        let Resolved::Ready(job) = r else { panic!() };
        assert_eq!(job.source.port, 3307);
        assert_eq!(job.src.chunk_size, 500);
        let (role, r) =
            resolve_task("j", "dest", "dest", json!({"ConnectionConfig": conn(3308), "ParallelWorkers": 4})).unwrap();
        assert_eq!(role, TaskRole::Dest);
        let Resolved::Ready(job) = r else { panic!() };
        assert!(matches!(&job.target, TargetConfig::Mysql(c) if c.port == 3308));
        assert_eq!(job.src.parallel_workers, 4);
    }

    #[test]
    fn v4_shapes() {
        let (_, r) = resolve_task(
            "j",
            "src",
            "src",
            json!({"SrcConnectionConfig": conn(3307), "DestConnectionConfig": conn(3308)}),
        )
        .unwrap();
        assert!(matches!(r, Resolved::Ready(j) if j.shape == JobShape::V4));
        let (_, r) = resolve_task("j", "dest", "dest", json!({"DestType": "mysql"})).unwrap();
        assert!(matches!(r, Resolved::NeedsSrcTask));
    }

    #[test]
    fn errors() {
        let e = resolve_task("j", "g", "worker", json!({})).unwrap_err();
        assert!(e.contains("\"src\""), "{e}");
        let e = resolve_task("j", "g", "src", json!({"ConnectionConfig": conn(1), "ChunkSiz": 5})).unwrap_err();
        assert!(e.contains("ChunkSiz"), "{e}");
        let e = resolve_task("j", "g", "dest", json!({})).unwrap_err();
        assert!(e.contains("no target"), "{e}");
        let e = resolve_task("j", "g", "src", json!({})).unwrap_err();
        assert!(e.contains("SrcConnectionConfig"), "{e}");
    }
}
