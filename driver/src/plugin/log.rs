//! Logging inside the plugin process: one JSON object per line on stderr in hclog's shape (`@level`, `@message`,
//! `@timestamp`, `@module`, then the event's fields), which Nomad's plugin loader turns into its own log lines.
//! Write errors are ignored: when the agent dies the stderr pipe breaks, and the process must live on for reattach.
//!
//! Events recorded inside a task's span (or carrying a `job` field) at INFO and above are also handed to the driver,
//! which turns them into Nomad task events.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The name of the span a task's runner is instrumented with; its `task_id` field routes events to the task.
pub const TASK_SPAN: &str = "dtle_task";

/// A log event that belongs to a task (by span) or to a job (by its `job` field).
#[derive(Debug, Clone)]
pub struct TaskLog {
    pub task_id: Option<String>,
    pub job: Option<String>,
    pub level: Level,
    pub message: String,
    pub fields: BTreeMap<String, String>,
}

static MAX_LEVEL: AtomicU8 = AtomicU8::new(3);
static TASK_LOGS: OnceLock<mpsc::UnboundedSender<TaskLog>> = OnceLock::new();

fn level_rank(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// Sets the level of dtle's own events (`trace`, `debug`, `info`, `warn`, `error`, case-insensitive).
/// Returns false for an unknown name.
pub fn set_level(name: &str) -> bool {
    let rank = match name.trim().to_ascii_lowercase().as_str() {
        "error" | "err" => 1,
        "warn" | "warning" => 2,
        "info" => 3,
        "debug" => 4,
        "trace" => 5,
        _ => return false,
    };
    MAX_LEVEL.store(rank, Ordering::Relaxed);
    true
}

/// Where task-scoped events go (set once by the driver).
pub fn set_task_log_sink(tx: mpsc::UnboundedSender<TaskLog>) {
    let _ = TASK_LOGS.set(tx);
}

/// `2006-01-02T15:04:05.000000Z07:00` in UTC, the layout go-plugin parses.
pub fn hclog_timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let micros = d.subsec_micros();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, day) = civil_from_days(days);
    format!("{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The task id a task span carries.
struct TaskTag(String);

#[derive(Default)]
struct Fields {
    message: String,
    map: BTreeMap<String, Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.map.insert(field.name().to_string(), Value::String(value.to_string()));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.map.insert(field.name().to_string(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.map.insert(field.name().to_string(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.map.insert(field.name().to_string(), Value::Bool(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.map
            .insert(field.name().to_string(), serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        if field.name() == "message" {
            self.message = s;
        } else {
            self.map.insert(field.name().to_string(), Value::String(s));
        }
    }
}

/// The hclog layer.
pub struct HclogLayer;

impl HclogLayer {
    fn wanted(meta: &tracing::Metadata<'_>) -> bool {
        let rank = level_rank(meta.level());
        if meta.target().starts_with("dtle") {
            rank <= MAX_LEVEL.load(Ordering::Relaxed)
        } else {
            // Libraries (h2, hyper, tonic, ...): warnings and errors only.
            rank <= 2
        }
    }
}

impl<S> Layer<S> for HclogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != TASK_SPAN {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(Value::String(task_id)), Some(span)) = (fields.map.get("task_id"), ctx.span(id)) {
            span.extensions_mut().insert(TaskTag(task_id.clone()));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let forward = level_rank(meta.level()) <= 3 && TASK_LOGS.get().is_some();
        let log = Self::wanted(meta);
        if !log && !forward {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let task_id = ctx.event_scope(event).and_then(|scope| {
            scope.from_root().find_map(|span| span.extensions().get::<TaskTag>().map(|t| t.0.clone()))
        });

        if log {
            let mut obj = Map::new();
            obj.insert("@level".into(), Value::String(level_name(meta.level()).into()));
            obj.insert("@message".into(), Value::String(fields.message.clone()));
            obj.insert("@timestamp".into(), Value::String(hclog_timestamp(SystemTime::now())));
            obj.insert("@module".into(), Value::String(meta.target().replace("::", ".")));
            if let Some(id) = &task_id {
                obj.insert("task_id".into(), Value::String(id.clone()));
            }
            for (k, v) in &fields.map {
                obj.insert(k.clone(), v.clone());
            }
            let mut line = Value::Object(obj).to_string();
            line.push('\n');
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }

        // The driver reports its own task events; forward what the tasks' code logs.
        if forward && meta.target().starts_with("dtle") && !meta.target().starts_with("dtle::plugin") {
            let job = match fields.map.get("job") {
                Some(Value::String(s)) => Some(s.clone()),
                _ => None,
            };
            if task_id.is_none() && job.is_none() {
                return;
            }
            if let Some(tx) = TASK_LOGS.get() {
                let message = fields.message;
                let fields = fields
                    .map
                    .into_iter()
                    .filter(|(k, _)| k != "job")
                    .map(|(k, v)| {
                        let s = match v {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        (k, s)
                    })
                    .collect();
                let _ = tx.send(TaskLog { task_id, job, level: *meta.level(), message, fields });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_layout() {
        let t = UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(hclog_timestamp(t), "2023-11-14T22:13:20.123456Z");
        assert_eq!(hclog_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400); // 2000-02-29
        assert!(hclog_timestamp(leap).starts_with("2000-02-29T00:00:00"));
    }

    #[test]
    fn levels() {
        assert!(set_level("DEBUG"));
        assert!(!set_level("loud"));
        assert!(set_level("info"));
    }
}
