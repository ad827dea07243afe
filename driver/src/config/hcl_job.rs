//! Nomad HCL job files → raw tasks. Only the dtle `config { }` contents are checked; everything else
//! Nomad accepts (`datacenters`, `constraint`, `resources`, `restart`, `meta`, ...) is skipped.

use hcl::eval::{Context, Evaluate};
use hcl::{Block, Body, Structure};
use serde_json::{Map, Value};

use super::error::{ConfigError, Location};
use super::spec::{find_field, FieldKind, FieldSpec, TASK_CONFIG_FIELDS};
use super::RawTask;

pub(crate) fn parse(text: &str, file: &str) -> Result<(String, Vec<RawTask>), ConfigError> {
    // Strict HCL2 first. Job files from the HCL1 era put nested blocks on one line
    // (`group "src" { task "src" { ... } }`), which HCL2 rejects; retry those with a newline after
    // every `{` and before every `}`, and report the strict error if that fails too.
    let body = match hcl::parse(text) {
        Ok(body) => body,
        Err(strict) => hcl::parse(&relax_braces(text)).map_err(|_| syntax_error(strict, file))?,
    };
    let shape = |message: String| ConfigError::JobShape { file: file.to_string(), message };

    let jobs: Vec<&Block> = body.blocks().filter(|b| b.identifier() == "job").collect();
    let job = match jobs.as_slice() {
        [one] => *one,
        [] => return Err(shape("no `job \"<name>\" { ... }` block found; a dtle job file is a Nomad job".into())),
        _ => return Err(shape(format!("{} job blocks found; put one job per file", jobs.len()))),
    };
    let name = match job.labels() {
        [label] => label.as_str().to_string(),
        _ => return Err(shape("the job block needs exactly one label, its name: `job \"job1\" { ... }`".into())),
    };
    let ctx = Context::new();

    let mut tasks = Vec::new();
    for group in job.body().blocks().filter(|b| b.identifier() == "group") {
        let group_name = group.labels().first().map(|l| l.as_str().to_string()).unwrap_or_default();
        for task in group.body().blocks().filter(|b| b.identifier() == "task") {
            let task_name = match task.labels() {
                [label] => label.as_str().to_string(),
                _ => {
                    return Err(shape(format!(
                        "job \"{name}\", group \"{group_name}\": a task block needs exactly one \
                         label, its name: `task \"src\" {{ ... }}`"
                    )))
                }
            };
            let at = Location { job: name.clone(), task: task_name.clone() };
            let mut driver = None;
            let mut config: Option<Map<String, Value>> = None;
            for s in task.body() {
                match s {
                    Structure::Attribute(a) if a.key() == "driver" => match a.expr().evaluate(&ctx) {
                        Ok(hcl::Value::String(d)) => driver = Some(d),
                        _ => {
                            return Err(shape(format!(
                                "job \"{name}\", task \"{task_name}\": driver must be a \
                                     string such as \"dtle\""
                            )))
                        }
                    },
                    Structure::Attribute(a) if a.key() == "config" => {
                        let v = eval(&at, "config", a.expr(), &ctx)?;
                        match v {
                            Value::Object(m) => config = Some(m),
                            other => {
                                return Err(ConfigError::WrongType {
                                    at: Box::new(at.clone()),
                                    path: "config".into(),
                                    expected: "a block `config { ... }`".into(),
                                    given: super::normalize::describe_value(&other, false),
                                })
                            }
                        }
                    }
                    Structure::Block(b) if b.identifier() == "config" => {
                        if config.is_some() {
                            return Err(ConfigError::invalid(
                                &at.job,
                                &at.task,
                                "config",
                                "the task has more than one config block; merge them into one",
                            ));
                        }
                        config = Some(body_to_map(&at, "", b.body(), Some(TASK_CONFIG_FIELDS), &ctx)?);
                    }
                    _ => {}
                }
            }
            tasks.push(RawTask {
                name: task_name,
                group: group_name.clone(),
                driver,
                config: config.unwrap_or_default(),
            });
        }
    }
    Ok((name, tasks))
}

fn syntax_error(e: hcl::Error, file: &str) -> ConfigError {
    match e {
        hcl::Error::Parse(p) => ConfigError::HclSyntax {
            file: file.to_string(),
            line: p.location().line(),
            column: p.location().column(),
            // Only the parser's message: the offending source line could hold a password.
            message: p.message().to_string(),
        },
        other => ConfigError::JobShape { file: file.to_string(), message: format!("cannot parse HCL: {other}") },
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn eval(at: &Location, path: &str, expr: &hcl::Expression, ctx: &Context) -> Result<Value, ConfigError> {
    if has_template_code(expr) {
        return Err(ConfigError::HclExpression {
            at: Box::new(at.clone()),
            path: path.to_string(),
            message: "a string contains `${...}` or `%{...}`, which HCL would interpolate (\"${1}\" \
                      becomes \"1\"); write `$${` for a literal `${` (e.g. TableRename = \"new_$${1}\")"
                .to_string(),
        });
    }
    let value = expr.evaluate(ctx).map_err(|e| {
        let secret = path.rsplit('.').next().is_some_and(|k| k.eq_ignore_ascii_case("password"));
        let detail =
            if secret { "the value uses variables, functions or interpolation".to_string() } else { e.to_string() };
        ConfigError::HclExpression {
            at: Box::new(at.clone()),
            path: path.to_string(),
            message: format!(
                "{detail}; dtle job config values must be literals (HCL interpolation is not \
                 available here: write `$${{` to get a literal `${{`)"
            ),
        }
    })?;
    serde_json::to_value(&value).map_err(|e| ConfigError::HclExpression {
        at: Box::new(at.clone()),
        path: path.to_string(),
        message: e.to_string(),
    })
}

/// A config body as a JSON object: attributes → values, blocks → objects, repeated blocks (or a block
/// whose field is a list of objects) → a list.
fn body_to_map(
    at: &Location,
    path: &str,
    body: &Body,
    fields: Option<&'static [FieldSpec]>,
    ctx: &Context,
) -> Result<Map<String, Value>, ConfigError> {
    let mut out = Map::new();
    for s in body {
        match s {
            Structure::Attribute(a) => {
                let key = a.key().to_string();
                let p = join(path, &key);
                if out.contains_key(&key) {
                    return Err(ConfigError::invalid(
                        &at.job,
                        &at.task,
                        p,
                        format!("{key} is set more than once; keep one"),
                    ));
                }
                let v = eval(at, &p, a.expr(), ctx)?;
                out.insert(key, v);
            }
            Structure::Block(b) => {
                let key = b.identifier().to_string();
                let p = join(path, &key);
                if !b.labels().is_empty() {
                    return Err(ConfigError::invalid(
                        &at.job,
                        &at.task,
                        p,
                        format!("block {key} has a label; config blocks take none: `{key} {{ ... }}`"),
                    ));
                }
                let spec = fields.and_then(|f| find_field(f, &key));
                let nested = spec.and_then(|s| s.kind.object_fields());
                let obj = Value::Object(body_to_map(at, &p, b.body(), nested, ctx)?);
                let is_list = matches!(spec.map(|s| s.kind), Some(FieldKind::List(_)));
                match out.get_mut(&key) {
                    None if is_list => {
                        out.insert(key, Value::Array(vec![obj]));
                    }
                    None => {
                        out.insert(key, obj);
                    }
                    Some(Value::Array(items)) if is_list => items.push(obj),
                    Some(_) if spec.is_some() => {
                        return Err(ConfigError::invalid(
                            &at.job,
                            &at.task,
                            p,
                            format!("{key} is set more than once; keep one"),
                        ))
                    }
                    Some(prev) => {
                        // Unknown field: keep the data; the field walk reports the name.
                        let first = prev.take();
                        *prev = Value::Array(vec![first, obj]);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// True if a string in the expression has an interpolation or directive (`${...}`, `%{...}`).
/// Escaped `$${`/`%%{` are literals and do not count.
fn has_template_code(expr: &hcl::Expression) -> bool {
    use hcl::Expression as E;
    match expr {
        E::TemplateExpr(t) => match hcl::Template::from_expr(t) {
            Ok(tpl) => tpl.elements().iter().any(|e| !matches!(e, hcl::template::Element::Literal(_))),
            Err(_) => false,
        },
        E::Array(items) => items.iter().any(has_template_code),
        E::Object(obj) => obj.values().any(has_template_code),
        E::Parenthesis(inner) => has_template_code(inner),
        _ => false,
    }
}

/// Put a newline after every `{` and before every `}` that are HCL structure (not inside strings,
/// interpolations, comments or heredocs), so one-line nested blocks become valid HCL2.
fn relax_braces(text: &str) -> String {
    enum St {
        Code { interp: bool, depth: usize },
        Str,
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut stack = vec![St::Code { interp: false, depth: 0 }];
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match stack.last_mut() {
            Some(St::Str) => {
                if c == '\\' {
                    out.push(c);
                    if let Some(n) = next {
                        out.push(n);
                    }
                    i += 2;
                    continue;
                }
                if (c == '$' || c == '%') && next == Some(c) && chars.get(i + 2) == Some(&'{') {
                    out.extend([c, c, '{']);
                    i += 3;
                    continue;
                }
                if (c == '$' || c == '%') && next == Some('{') {
                    out.extend([c, '{']);
                    stack.push(St::Code { interp: true, depth: 0 });
                    i += 2;
                    continue;
                }
                if c == '"' || c == '\n' {
                    stack.pop();
                }
                out.push(c);
                i += 1;
            }
            Some(St::Code { interp, depth }) => {
                let interp = *interp;
                match c {
                    '"' => {
                        out.push(c);
                        stack.push(St::Str);
                        i += 1;
                    }
                    '{' if interp => {
                        if let Some(St::Code { depth, .. }) = stack.last_mut() {
                            *depth += 1;
                        }
                        out.push(c);
                        i += 1;
                    }
                    '}' if interp => {
                        if *depth == 0 {
                            stack.pop();
                        } else {
                            *depth -= 1;
                        }
                        out.push(c);
                        i += 1;
                    }
                    '{' => {
                        out.push_str("{\n");
                        i += 1;
                    }
                    '}' => {
                        out.push_str("\n}");
                        i += 1;
                    }
                    '#' => i = copy_until_newline(&chars, i, &mut out),
                    '/' if next == Some('/') => i = copy_until_newline(&chars, i, &mut out),
                    '/' if next == Some('*') => {
                        let start = i;
                        i += 2;
                        while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                            i += 1;
                        }
                        i = (i + 2).min(chars.len());
                        out.extend(&chars[start..i]);
                    }
                    '<' if next == Some('<') && !interp => i = copy_heredoc(&chars, i, &mut out),
                    _ => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            None => {
                // Unbalanced `}` in an interpolation: copy the rest as it is.
                out.extend(&chars[i..]);
                break;
            }
        }
    }
    out
}

fn copy_until_newline(chars: &[char], mut i: usize, out: &mut String) -> usize {
    while i < chars.len() && chars[i] != '\n' {
        out.push(chars[i]);
        i += 1;
    }
    i
}

/// At `<<`: if a heredoc starts here, copy it whole and return the index after it.
fn copy_heredoc(chars: &[char], start: usize, out: &mut String) -> usize {
    let mut i = start + 2;
    if chars.get(i) == Some(&'-') {
        i += 1;
    }
    let id_start = i;
    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
        i += 1;
    }
    if i == id_start || chars.get(i) != Some(&'\n') {
        out.extend(&chars[start..start + 2]);
        return start + 2;
    }
    let ident: String = chars[id_start..i].iter().collect();
    out.extend(&chars[start..i]);
    loop {
        // i is at a newline: copy the next line and stop after the terminator line.
        out.push('\n');
        i += 1;
        let line_start = i;
        while i < chars.len() && chars[i] != '\n' {
            i += 1;
        }
        let line: String = chars[line_start..i].iter().collect();
        out.push_str(&line);
        if line.trim() == ident || i >= chars.len() {
            return i;
        }
    }
}
