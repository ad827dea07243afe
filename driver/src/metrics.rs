//! Prometheus metrics: a process-wide registry of `dtle_*` metrics with a `job` label, served in the Prometheus
//! text format (0.0.4) at `/metrics` by [`serve`].
//!
//! The engine takes a handle once per job with [`job`] and updates it on hot paths: every update is one relaxed
//! atomic operation, no lock, no allocation. The registry is only locked to find or add a job's handle and to
//! render a scrape.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `dtle_snapshot_rows_total` | counter | rows copied by the full copy |
//! | `dtle_applied_transactions_total` | counter | source transactions applied on the target |
//! | `dtle_applied_row_changes_total` | counter | row changes (insert/update/delete rows) applied |
//! | `dtle_target_commits_total` | counter | target transactions committed (a group of source transactions) |
//! | `dtle_link_bytes_raw_total` | counter | batch bytes before compression on the src → dest link |
//! | `dtle_link_bytes_sent_total` | counter | batch bytes after compression (what went over the link) |
//! | `dtle_delay_seconds` | gauge | replication delay (dtle's `dtle_delay_time`) |
//! | `dtle_position_stale` | gauge | 1 while the stored position could not be saved (e.g. Consul down) |
//! | `dtle_checkpoint_saves_total{result="ok"\|"error"}` | counter | position saves by outcome |
//! | `dtle_batch_ack_seconds` | histogram | per batch: sent by the src → acknowledged as durable by the dest (the wait on the link and at the dest, the apply, the commit) |
//! | `dtle_dest_queue_seconds` | histogram | per group of changes: from its first batch taken off the link by the dest to the start of its apply (grouping waits) |
//! | `dtle_dest_apply_seconds` | histogram | per group: from the start of its apply to durable on the target (MySQL: committed; Kafka: acknowledged by the broker) |

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The `Content-Type` of a scrape.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics of one job. Fields are public for reading; update through the methods.
#[derive(Debug)]
pub struct JobMetrics {
    job: String,
    pub snapshot_rows: AtomicU64,
    pub transactions: AtomicU64,
    pub row_changes: AtomicU64,
    pub target_commits: AtomicU64,
    pub link_bytes_raw: AtomicU64,
    pub link_bytes_sent: AtomicU64,
    /// The delay in seconds, as the bits of an `f64` (see [`JobMetrics::lag_seconds`]).
    pub lag_seconds_bits: AtomicU64,
    /// 0 or 1.
    pub position_stale: AtomicU64,
    pub checkpoint_saves_ok: AtomicU64,
    pub checkpoint_saves_error: AtomicU64,
    /// Full copy: rows sent so far, the estimated total, when it started (Unix ms; 0 = no copy in this run).
    pub copy_rows: AtomicU64,
    pub copy_total: AtomicU64,
    pub copy_started_unix_ms: AtomicU64,
    /// Where the dest's time goes, per group of changes (see the module's table).
    pub batch_ack: Histogram,
    pub dest_queue: Histogram,
    pub dest_apply: Histogram,
    /// The last saved (stage, position): for the status API; written at most once a second.
    saved: Mutex<(String, String)>,
}

/// Upper bounds (seconds) of the latency histograms' buckets; the last bucket is `+Inf`.
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0, 30.0];

/// A Prometheus histogram with the fixed [`LATENCY_BUCKETS`]: an observation is three relaxed atomic additions.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last one counts those above every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let i = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(elapsed.as_micros().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Cumulative counts per bound (the `_bucket` samples, `+Inf` last), the sum in seconds and the count.
    pub fn snapshot(&self) -> (Vec<u64>, f64, u64) {
        let mut cumulative = Vec::with_capacity(self.buckets.len());
        let mut total = 0;
        for b in &self.buckets {
            total += b.load(Ordering::Relaxed);
            cumulative.push(total);
        }
        (cumulative, self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6, self.count.load(Ordering::Relaxed))
    }
}

impl JobMetrics {
    fn new(job: &str) -> JobMetrics {
        JobMetrics {
            job: job.to_string(),
            snapshot_rows: AtomicU64::new(0),
            transactions: AtomicU64::new(0),
            row_changes: AtomicU64::new(0),
            target_commits: AtomicU64::new(0),
            link_bytes_raw: AtomicU64::new(0),
            link_bytes_sent: AtomicU64::new(0),
            lag_seconds_bits: AtomicU64::new(0f64.to_bits()),
            position_stale: AtomicU64::new(0),
            checkpoint_saves_ok: AtomicU64::new(0),
            checkpoint_saves_error: AtomicU64::new(0),
            copy_rows: AtomicU64::new(0),
            copy_total: AtomicU64::new(0),
            copy_started_unix_ms: AtomicU64::new(0),
            batch_ack: Histogram::default(),
            dest_queue: Histogram::default(),
            dest_apply: Histogram::default(),
            saved: Mutex::new((String::new(), String::new())),
        }
    }

    /// The job name (the `job` label).
    pub fn job(&self) -> &str {
        &self.job
    }

    /// A number that grows whenever the job moves on in this process (rows copied, transactions applied, batches
    /// acknowledged to the src): two equal readings mean no progress in between.
    pub fn progress_marker(&self) -> u64 {
        self.snapshot_rows
            .load(Ordering::Relaxed)
            .wrapping_add(self.transactions.load(Ordering::Relaxed))
            .wrapping_add(self.batch_ack.count.load(Ordering::Relaxed))
    }

    pub fn add_snapshot_rows(&self, n: u64) {
        self.snapshot_rows.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_transactions(&self, n: u64) {
        self.transactions.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_row_changes(&self, n: u64) {
        self.row_changes.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_target_commits(&self, n: u64) {
        self.target_commits.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes of batches on the link: `raw` before compression, `sent` after.
    pub fn add_link_bytes(&self, raw: u64, sent: u64) {
        self.link_bytes_raw.fetch_add(raw, Ordering::Relaxed);
        self.link_bytes_sent.fetch_add(sent, Ordering::Relaxed);
    }

    /// The replication delay in seconds (dtle's `dtle_delay_time`).
    pub fn set_lag_seconds(&self, seconds: f64) {
        self.lag_seconds_bits.store(seconds.to_bits(), Ordering::Relaxed);
    }

    pub fn lag_seconds(&self) -> f64 {
        f64::from_bits(self.lag_seconds_bits.load(Ordering::Relaxed))
    }

    /// Whether the stored position is stale (saves are failing).
    pub fn set_position_stale(&self, stale: bool) {
        self.position_stale.store(u64::from(stale), Ordering::Relaxed);
    }

    /// Full-copy progress: `rows` of about `total` sent; `started_unix_ms` when the copy began.
    pub fn set_copy_progress(&self, rows: u64, total: u64, started_unix_ms: u64) {
        self.copy_rows.store(rows, Ordering::Relaxed);
        self.copy_total.store(total, Ordering::Relaxed);
        self.copy_started_unix_ms.store(started_unix_ms, Ordering::Relaxed);
    }

    /// The stage (`job_stage_full` / `job_stage_incr`) and position last saved to the position store.
    pub fn set_saved_position(&self, stage: &str, position: String) {
        let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        *saved = (stage.to_string(), position);
    }

    /// What the status API and the `stats` signal show for this job: stage, position, full-copy progress and ETA,
    /// lag, applied counts.
    pub fn status(&self) -> serde_json::Value {
        let (stage, position) = self.saved.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (rows, total, started) = (load(&self.copy_rows), load(&self.copy_total), load(&self.copy_started_unix_ms));
        let full_copy = (started > 0).then(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(started);
            let secs = now.saturating_sub(started) as f64 / 1000.0;
            let rate = if secs > 0.0 { rows as f64 / secs } else { 0.0 };
            let remaining = total.saturating_sub(rows);
            let eta_seconds = if remaining == 0 { Some(0.0) } else { (rate > 0.0).then(|| remaining as f64 / rate) };
            serde_json::json!({
                "rows": rows,
                "estimated_total_rows": total.max(rows),
                "percent": if total == 0 { 100.0 } else { (rows as f64 * 100.0 / total as f64).min(100.0) },
                "rows_per_second": rate,
                "eta_seconds": eta_seconds,
            })
        });
        serde_json::json!({
            "job": self.job,
            "stage": stage,
            "position": position,
            "full_copy": full_copy,
            "delay_seconds": self.lag_seconds(),
            "snapshot_rows": load(&self.snapshot_rows),
            "applied_transactions": load(&self.transactions),
            "applied_row_changes": load(&self.row_changes),
            "target_commits": load(&self.target_commits),
            "position_stale": load(&self.position_stale) == 1,
        })
    }

    /// Counts one position save, successful or not.
    pub fn add_checkpoint_saves(&self, ok: bool) {
        let counter = if ok { &self.checkpoint_saves_ok } else { &self.checkpoint_saves_error };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A set of job metrics. The process has one ([`registry`]); tests make their own.
#[derive(Debug, Default)]
pub struct Registry {
    jobs: Mutex<BTreeMap<String, Arc<JobMetrics>>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The handle of `name`, created on first use; the same handle afterwards.
    pub fn job(&self, name: &str) -> Arc<JobMetrics> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = jobs.get(name) {
            return m.clone();
        }
        let m = Arc::new(JobMetrics::new(name));
        jobs.insert(name.to_string(), m.clone());
        m
    }

    /// Stops exporting `name` (a job that ended); handles still held keep working, unexported.
    pub fn forget(&self, name: &str) {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
    }

    /// The status of every job (see [`JobMetrics::status`]), in name order.
    pub fn status(&self) -> serde_json::Value {
        let jobs: Vec<Arc<JobMetrics>> =
            self.jobs.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        serde_json::Value::Array(jobs.iter().map(|m| m.status()).collect())
    }

    /// Every metric in the Prometheus text format, jobs in name order.
    pub fn render(&self) -> String {
        let jobs: Vec<Arc<JobMetrics>> =
            self.jobs.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        let mut out = String::with_capacity(1024 + jobs.len() * 800);
        let counters: [(&str, &str, CounterField); 6] = [
            ("dtle_snapshot_rows_total", "Rows copied to the target by the full copy.", |m| &m.snapshot_rows),
            ("dtle_applied_transactions_total", "Source transactions applied on the target.", |m| &m.transactions),
            (
                "dtle_applied_row_changes_total",
                "Row changes (inserted, updated, deleted rows) applied on the target.",
                |m| &m.row_changes,
            ),
            ("dtle_target_commits_total", "Transactions committed on the target.", |m| &m.target_commits),
            ("dtle_link_bytes_raw_total", "Batch bytes on the src to dest link, before compression.", |m| {
                &m.link_bytes_raw
            }),
            ("dtle_link_bytes_sent_total", "Batch bytes on the src to dest link, after compression.", |m| {
                &m.link_bytes_sent
            }),
        ];
        for (name, help, field) in counters {
            header(&mut out, name, help, "counter");
            for m in &jobs {
                sample(&mut out, name, &m.job, None, &field(m).load(Ordering::Relaxed).to_string());
            }
        }
        let name = "dtle_delay_seconds";
        header(&mut out, name, "Replication delay in seconds (dtle's dtle_delay_time).", "gauge");
        for m in &jobs {
            sample(&mut out, name, &m.job, None, &float(m.lag_seconds()));
        }
        let name = "dtle_position_stale";
        header(&mut out, name, "1 while the stored position could not be saved, else 0.", "gauge");
        for m in &jobs {
            sample(&mut out, name, &m.job, None, &m.position_stale.load(Ordering::Relaxed).to_string());
        }
        let name = "dtle_checkpoint_saves_total";
        header(&mut out, name, "Position saves, by result.", "counter");
        for m in &jobs {
            for (result, counter) in [("ok", &m.checkpoint_saves_ok), ("error", &m.checkpoint_saves_error)] {
                let value = counter.load(Ordering::Relaxed).to_string();
                sample(&mut out, name, &m.job, Some(("result", result)), &value);
            }
        }
        let histograms: [(&str, &str, HistogramField); 3] = [
            (
                "dtle_batch_ack_seconds",
                "Per batch: sent by the src to acknowledged as durable by the dest.",
                |m| &m.batch_ack,
            ),
            (
                "dtle_dest_queue_seconds",
                "Per group of changes: from its first batch taken off the link by the dest to the start of its apply.",
                |m| &m.dest_queue,
            ),
            (
                "dtle_dest_apply_seconds",
                "Per group of changes: from the start of its apply to durable on the target (committed, or acknowledged by the broker).",
                |m| &m.dest_apply,
            ),
        ];
        for (name, help, field) in histograms {
            header(&mut out, name, help, "histogram");
            let bucket = format!("{name}_bucket");
            for m in &jobs {
                let (cumulative, sum, count) = field(m).snapshot();
                for (i, n) in cumulative.iter().enumerate() {
                    let le = LATENCY_BUCKETS.get(i).map_or_else(|| "+Inf".to_string(), |b| b.to_string());
                    sample(&mut out, &bucket, &m.job, Some(("le", &le)), &n.to_string());
                }
                sample(&mut out, &format!("{name}_sum"), &m.job, None, &float(sum));
                sample(&mut out, &format!("{name}_count"), &m.job, None, &count.to_string());
            }
        }
        out
    }
}

/// Reads one histogram of a job.
type HistogramField = fn(&JobMetrics) -> &Histogram;

/// Reads one counter of a job.
type CounterField = fn(&JobMetrics) -> &AtomicU64;

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, job: &str, extra: Option<(&str, &str)>, value: &str) {
    let _ = write!(out, "{name}{{job=\"{}\"", escape_label_value(job));
    if let Some((k, v)) = extra {
        let _ = write!(out, ",{k}=\"{}\"", escape_label_value(v));
    }
    let _ = writeln!(out, "}} {value}");
}

/// A label value as the text format wants it: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A float as the text format wants it (`+Inf`, `-Inf`, `NaN`).
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

/// The process-wide registry.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::new)
}

/// The handle of job `name` in the process-wide registry (created on first use, then the same handle).
pub fn job(name: &str) -> Arc<JobMetrics> {
    registry().job(name)
}

/// The process-wide registry in the Prometheus text format.
pub fn render() -> String {
    registry().render()
}

/// Serves the process-wide registry at `http://<addr>/metrics` (Prometheus) and `/v1/status` (JSON, one object per
/// job: stage, position, full-copy progress and ETA, lag, applied counts) until `shutdown` is cancelled. Other
/// paths get 404. Fails only when `addr` cannot be bound (the error names it).
pub async fn serve(addr: SocketAddr, shutdown: CancellationToken) -> Result<(), String> {
    serve_paths(addr, shutdown, true).await
}

/// Like [`serve`]; without `with_metrics` only `/v1/status` is served (the plugin's `api_addr` without
/// `publish_metrics`).
pub async fn serve_paths(addr: SocketAddr, shutdown: CancellationToken, with_metrics: bool) -> Result<(), String> {
    let listener = TcpListener::bind(addr).await.map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
    debug!(%addr, "serving metrics at /metrics");
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // E.g. out of file descriptors: keep serving once it passes.
                    warn!(%addr, error = %e, "metrics endpoint: accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req| async move { Ok::<_, Infallible>(respond(&req, with_metrics)) });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                debug!(error = %e, "metrics connection ended with an error");
            }
        });
    }
}

fn respond(req: &Request<Incoming>, with_metrics: bool) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String, content_type: &str| {
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        if let Ok(v) = content_type.parse() {
            resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        resp
    };
    let body = match req.uri().path() {
        "/metrics" if with_metrics => (render(), CONTENT_TYPE),
        "/v1/status" => (format!("{}\n", registry().status()), "application/json"),
        _ => {
            return reply(
                StatusCode::NOT_FOUND,
                "not found: metrics are at /metrics, the status of each job at /v1/status\n".into(),
                "text/plain",
            )
        }
    };
    match *req.method() {
        Method::GET | Method::HEAD => reply(StatusCode::OK, body.0, body.1),
        _ => {
            let mut resp = reply(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into(), "text/plain");
            resp.headers_mut().insert(hyper::header::ALLOW, hyper::header::HeaderValue::from_static("GET, HEAD"));
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn one_job_renders_exactly() {
        let r = Registry::new();
        let m = r.job("job1");
        m.add_snapshot_rows(1000);
        m.add_snapshot_rows(234);
        m.add_transactions(7);
        m.add_row_changes(21);
        m.add_target_commits(3);
        m.add_link_bytes(4096, 1024);
        m.set_lag_seconds(1.5);
        m.set_position_stale(true);
        m.add_checkpoint_saves(true);
        m.add_checkpoint_saves(true);
        m.add_checkpoint_saves(false);
        let expected = "\
# HELP dtle_snapshot_rows_total Rows copied to the target by the full copy.
# TYPE dtle_snapshot_rows_total counter
dtle_snapshot_rows_total{job=\"job1\"} 1234
# HELP dtle_applied_transactions_total Source transactions applied on the target.
# TYPE dtle_applied_transactions_total counter
dtle_applied_transactions_total{job=\"job1\"} 7
# HELP dtle_applied_row_changes_total Row changes (inserted, updated, deleted rows) applied on the target.
# TYPE dtle_applied_row_changes_total counter
dtle_applied_row_changes_total{job=\"job1\"} 21
# HELP dtle_target_commits_total Transactions committed on the target.
# TYPE dtle_target_commits_total counter
dtle_target_commits_total{job=\"job1\"} 3
# HELP dtle_link_bytes_raw_total Batch bytes on the src to dest link, before compression.
# TYPE dtle_link_bytes_raw_total counter
dtle_link_bytes_raw_total{job=\"job1\"} 4096
# HELP dtle_link_bytes_sent_total Batch bytes on the src to dest link, after compression.
# TYPE dtle_link_bytes_sent_total counter
dtle_link_bytes_sent_total{job=\"job1\"} 1024
# HELP dtle_delay_seconds Replication delay in seconds (dtle's dtle_delay_time).
# TYPE dtle_delay_seconds gauge
dtle_delay_seconds{job=\"job1\"} 1.5
# HELP dtle_position_stale 1 while the stored position could not be saved, else 0.
# TYPE dtle_position_stale gauge
dtle_position_stale{job=\"job1\"} 1
# HELP dtle_checkpoint_saves_total Position saves, by result.
# TYPE dtle_checkpoint_saves_total counter
dtle_checkpoint_saves_total{job=\"job1\",result=\"ok\"} 2
dtle_checkpoint_saves_total{job=\"job1\",result=\"error\"} 1
";
        let text = r.render();
        assert_eq!(&text[..expected.len().min(text.len())], expected);
        assert!(text[expected.len()..].starts_with("# HELP dtle_batch_ack_seconds"), "{text}");
        m.set_position_stale(false);
        m.set_lag_seconds(0.0);
        let text = r.render();
        assert!(text.contains("dtle_position_stale{job=\"job1\"} 0\n"), "{text}");
        assert!(text.contains("dtle_delay_seconds{job=\"job1\"} 0\n"), "{text}");
    }

    #[test]
    fn handles_are_cached_per_job_and_jobs_render_in_order() {
        let r = Registry::new();
        let a = r.job("b-job");
        assert!(Arc::ptr_eq(&a, &r.job("b-job")));
        r.job("a-job").add_transactions(1);
        let text = r.render();
        let first = text.find("dtle_applied_transactions_total{job=\"a-job\"} 1").expect("a-job");
        let second = text.find("dtle_applied_transactions_total{job=\"b-job\"} 0").expect("b-job");
        assert!(first < second, "{text}");
        r.forget("b-job");
        assert!(!r.render().contains("b-job"));
        // An empty registry still describes its metrics.
        let empty = Registry::new().render();
        assert_eq!(empty.lines().count(), 24, "{empty}");
        assert!(empty.lines().all(|l| l.starts_with("# ")), "{empty}");
    }

    #[test]
    fn latency_histograms_render_cumulative_buckets_sum_and_count() {
        let r = Registry::new();
        let m = r.job("j");
        for ms in [0.3, 3.0, 3.5, 12.0, 40_000.0] {
            m.dest_apply.observe(Duration::from_secs_f64(ms / 1000.0));
        }
        let text = r.render();
        let bucket = |le: &str| format!("dtle_dest_apply_seconds_bucket{{job=\"j\",le=\"{le}\"}}");
        for (le, n) in [("0.0005", 1), ("0.001", 1), ("0.002", 1), ("0.005", 3), ("0.015", 4), ("30", 4), ("+Inf", 5)] {
            assert!(text.contains(&format!("{} {n}\n", bucket(le))), "le={le}: {text}");
        }
        assert!(text.contains("dtle_dest_apply_seconds_sum{job=\"j\"} 40.0188\n"), "{text}");
        assert!(text.contains("dtle_dest_apply_seconds_count{job=\"j\"} 5\n"), "{text}");
        assert!(text.contains("dtle_dest_queue_seconds_count{job=\"j\"} 0\n"), "{text}");
        assert!(text.contains("# TYPE dtle_dest_queue_seconds histogram\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label_value("x\ny"), r"x\ny");
        assert_eq!(escape_label_value("plain job-1.ü"), "plain job-1.ü");
        let r = Registry::new();
        r.job("we\"ird\\job\nname").add_target_commits(2);
        let text = r.render();
        assert!(text.contains("dtle_target_commits_total{job=\"we\\\"ird\\\\job\\nname\"} 2\n"), "{text}");
        assert!(text.contains("dtle_checkpoint_saves_total{job=\"we\\\"ird\\\\job\\nname\",result=\"ok\"} 0\n"));
        // Every sample stays on one line.
        assert!(text.lines().all(|l| l.starts_with('#') || l.starts_with("dtle_")), "{text}");
    }

    #[test]
    fn special_floats_use_the_text_format_spelling() {
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(0.25), "0.25");
        assert_eq!(float(3.0), "3");
    }

    #[test]
    fn concurrent_increments_add_up() {
        let r = Arc::new(Registry::new());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        // Half look the handle up each time, half keep it: both land on the same counters.
                        let m = r.job("busy");
                        m.add_transactions(1);
                        m.add_row_changes(2);
                        m.add_link_bytes(10, 3);
                        m.add_checkpoint_saves(i % 2 == 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let m = r.job("busy");
        assert_eq!(m.transactions.load(Ordering::Relaxed), 80_000);
        assert_eq!(m.row_changes.load(Ordering::Relaxed), 160_000);
        assert_eq!(m.link_bytes_raw.load(Ordering::Relaxed), 800_000);
        assert_eq!(m.link_bytes_sent.load(Ordering::Relaxed), 240_000);
        assert_eq!(m.checkpoint_saves_ok.load(Ordering::Relaxed), 40_000);
        assert_eq!(m.checkpoint_saves_error.load(Ordering::Relaxed), 40_000);
        assert!(r.render().contains("dtle_applied_transactions_total{job=\"busy\"} 80000\n"));
    }

    async fn http_get(addr: SocketAddr, path: &str) -> String {
        let mut last_err = None;
        for _ in 0..50 {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(mut s) => {
                    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
                    s.write_all(req.as_bytes()).await.unwrap();
                    let mut buf = String::new();
                    s.read_to_string(&mut buf).await.unwrap();
                    return buf;
                }
                Err(e) => last_err = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("cannot connect to {addr}: {last_err:?}");
    }

    #[tokio::test]
    async fn serves_metrics_over_http_and_404_elsewhere() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(addr, shutdown.clone()));
        let m = job("metrics-http-test");
        m.add_transactions(5);
        m.set_lag_seconds(2.0);

        let resp = http_get(addr, "/metrics").await;
        let (head, body) = resp.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4; charset=utf-8"));
        assert!(body.contains("# TYPE dtle_applied_transactions_total counter\n"), "{body}");
        assert!(body.contains("dtle_applied_transactions_total{job=\"metrics-http-test\"} 5\n"), "{body}");
        assert!(body.contains("dtle_delay_seconds{job=\"metrics-http-test\"} 2\n"), "{body}");

        let with_query = http_get(addr, "/metrics?name[]=x").await;
        assert!(with_query.starts_with("HTTP/1.1 200 OK\r\n"), "{with_query}");
        for path in ["/", "/metric", "/metrics/x"] {
            let resp = http_get(addr, path).await;
            assert!(resp.starts_with("HTTP/1.1 404 Not Found\r\n"), "{path}: {resp}");
        }

        // A second server on the same address fails, naming it.
        let err = serve(addr, CancellationToken::new()).await.unwrap_err();
        assert!(err.contains(&addr.to_string()), "{err}");

        shutdown.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(5), server).await.expect("serve stops").unwrap();
        assert_eq!(stopped, Ok(()));
        registry().forget("metrics-http-test");
    }
}
