//! Nomad JSON jobs (as posted to `/v1/jobs`, with or without the `{"Job": ...}` wrapper) → raw tasks.
//! Nomad-level keys are matched case-insensitively, as Nomad's own decoder does; the task `Config`
//! keys are dtle's and are checked exactly.

use serde_json::{Map, Value};

use super::error::ConfigError;
use super::RawTask;

pub(crate) fn parse(text: &str, file: &str) -> Result<(String, Vec<RawTask>), ConfigError> {
    let root: Value = serde_json::from_str(text).map_err(|e| {
        let full = e.to_string();
        let message = match full.rfind(" at line ") {
            Some(i) => full[..i].to_string(),
            None => full,
        };
        ConfigError::JsonSyntax { file: file.to_string(), line: e.line(), column: e.column(), message }
    })?;
    let shape = |message: String| ConfigError::JobShape { file: file.to_string(), message };

    let Value::Object(root) = root else {
        return Err(shape("the top level must be a JSON object (a Nomad job)".into()));
    };
    let job = match get(&root, "Job") {
        Some(Value::Object(job)) => job,
        Some(_) => return Err(shape("\"Job\" must be an object".into())),
        None => &root,
    };

    let name = [get(job, "ID"), get(job, "Name")]
        .into_iter()
        .flatten()
        .find_map(|v| v.as_str().filter(|s| !s.is_empty()))
        .ok_or_else(|| shape("the job has no \"ID\" or \"Name\"; set \"ID\": \"job1\"".into()))?
        .to_string();

    let groups = match get(job, "TaskGroups") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(g)) => g.as_slice(),
        Some(_) => return Err(shape(format!("job \"{name}\": \"TaskGroups\" must be a list"))),
    };

    let mut tasks = Vec::new();
    for (gi, group) in groups.iter().enumerate() {
        let Value::Object(group) = group else {
            return Err(shape(format!("job \"{name}\": TaskGroups[{gi}] must be an object")));
        };
        let group_name = get(group, "Name").and_then(Value::as_str).unwrap_or_default().to_string();
        let list = match get(group, "Tasks") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(t)) => t.as_slice(),
            Some(_) => return Err(shape(format!("job \"{name}\", group \"{group_name}\": \"Tasks\" must be a list"))),
        };
        for (ti, task) in list.iter().enumerate() {
            let Value::Object(task) = task else {
                return Err(shape(format!("job \"{name}\", group \"{group_name}\": Tasks[{ti}] must be an object")));
            };
            let task_name = get(task, "Name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| shape(format!("job \"{name}\", group \"{group_name}\": Tasks[{ti}] has no \"Name\"")))?
                .to_string();
            let driver = get(task, "Driver").and_then(Value::as_str).map(str::to_string);
            let config = match get(task, "Config") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(c)) => c.clone(),
                Some(_) => {
                    return Err(ConfigError::WrongType {
                        at: Box::new(super::error::Location { job: name.clone(), task: task_name }),
                        path: "Config".into(),
                        expected: "an object".into(),
                        given: super::normalize::describe_value(get(task, "Config").unwrap_or(&Value::Null), false),
                    })
                }
            };
            tasks.push(RawTask { name: task_name, group: group_name.clone(), driver, config });
        }
    }
    Ok((name, tasks))
}

/// Exact key first, then case-insensitive (Go's encoding/json matches struct fields that way).
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}
