//! Walk a task config (as JSON, whether it came from HCL or Nomad JSON) along the field tables:
//! reject unknown fields (with a suggestion), check types (naming the field), and coerce the loose
//! forms users and tools write: numeric strings for integers, "true"/"false" strings for bools,
//! numbers and bools for strings (as Nomad's HCL does), a block (object) where a list of objects is
//! expected, a one-element list where an object is expected (HCL1-era JSON), and `null` = unset.

use serde_json::{Map, Value};

use super::error::{ConfigError, Location};
use super::spec::{find_field, suggest, FieldKind, FieldSpec};

pub(crate) fn normalize_object(
    at: &Location,
    path: &str,
    obj: &mut Map<String, Value>,
    fields: &'static [FieldSpec],
) -> Result<(), ConfigError> {
    let keys: Vec<String> = obj.keys().cloned().collect();
    for key in keys {
        let child_path = join(path, &key);
        let Some(spec) = find_field(fields, &key) else {
            let names = fields.iter().map(|f| f.name);
            return Err(ConfigError::UnknownField {
                at: Box::new(at.clone()),
                path: child_path,
                suggestion: suggest(names, &key).map(str::to_string),
                valid: fields.iter().map(|f| f.name.to_string()).collect(),
            });
        };
        let mut value = obj.remove(&key).unwrap_or(Value::Null);
        if key != spec.name {
            // An alias: store under the canonical name.
            if obj.contains_key(spec.name) {
                return Err(ConfigError::invalid(
                    &at.job,
                    &at.task,
                    child_path,
                    format!("{key} is another name for {}; set only one of them", spec.name),
                ));
            }
        }
        if value.is_null() {
            continue;
        }
        normalize_value(at, &join(path, spec.name), &mut value, &spec.kind, spec.name)?;
        obj.insert(spec.name.to_string(), value);
    }
    Ok(())
}

fn normalize_value(
    at: &Location,
    path: &str,
    value: &mut Value,
    kind: &FieldKind,
    field_name: &str,
) -> Result<(), ConfigError> {
    let secret = field_name.eq_ignore_ascii_case("password");
    let wrong = |v: &Value| ConfigError::WrongType {
        at: Box::new(at.clone()),
        path: path.to_string(),
        expected: kind.describe(),
        given: describe_value(v, secret),
    };
    match kind {
        FieldKind::Bool => match value {
            Value::Bool(_) => {}
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => *value = Value::Bool(true),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => *value = Value::Bool(false),
            other => return Err(wrong(other)),
        },
        FieldKind::Int | FieldKind::Port => {
            let n = match &*value {
                Value::Number(n) => {
                    if let Some(i) = n.as_i64() {
                        Some(i)
                    } else if let Some(f) = n.as_f64() {
                        (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
                    } else {
                        None
                    }
                }
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            };
            let Some(n) = n else {
                return Err(wrong(value));
            };
            if *kind == FieldKind::Port && !(0..=65535).contains(&n) {
                return Err(wrong(value));
            }
            *value = Value::from(n);
        }
        FieldKind::String => match value {
            Value::String(_) => {}
            Value::Number(n) => *value = Value::String(n.to_string()),
            Value::Bool(b) => *value = Value::String(b.to_string()),
            other => return Err(wrong(other)),
        },
        FieldKind::List(inner) => {
            if let (FieldKind::Object(_), Value::Object(_)) = (inner, &*value) {
                // A single block, or `Tables = { ... }`: a list of one.
                let one = value.take();
                *value = Value::Array(vec![one]);
            }
            let Value::Array(items) = value else {
                return Err(wrong(value));
            };
            items.retain(|v| !v.is_null());
            for (i, item) in items.iter_mut().enumerate() {
                normalize_value(at, &format!("{path}[{i}]"), item, inner, field_name)?;
            }
        }
        FieldKind::Object(fields) => {
            if let Value::Array(items) = value {
                if items.len() == 1 && items[0].is_object() {
                    let one = items.remove(0);
                    *value = one;
                }
            }
            let Value::Object(obj) = value else {
                return Err(wrong(value));
            };
            normalize_object(at, path, obj, fields)?;
        }
    }
    Ok(())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// What a value is, for "expected X, got Y" messages. Secrets show only their type.
pub(crate) fn describe_value(v: &Value, secret: bool) -> String {
    if secret {
        return match v {
            Value::Null => "null",
            Value::Bool(_) => "a bool",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a list",
            Value::Object(_) => "an object",
        }
        .to_string();
    }
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("bool {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => {
            let shown: String = s.chars().take(60).collect();
            let more = if s.chars().count() > 60 { "..." } else { "" };
            format!("string \"{shown}{more}\"")
        }
        Value::Array(a) => format!("a list of {} item(s)", a.len()),
        Value::Object(_) => "an object".to_string(),
    }
}
