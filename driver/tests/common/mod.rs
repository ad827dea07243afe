//! Helpers for the end-to-end tests: finding the test servers, SQL shortcuts, exact table comparison,
//! job files, and a guard around a spawned `dtle` process (killed on drop, log tail printed on failure).

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Value};

/// How long any wait may take before the test fails. Generous: speed is not what is tested.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A row as raw bytes (`SET NAMES binary`), NULL as `None`.
pub type RawRow = Vec<Option<Vec<u8>>>;

#[derive(Clone, Debug)]
pub struct Servers {
    pub host: String,
    pub src: u16,
    pub dst: u16,
    pub dst2: u16,
    pub user: String,
    pub password: String,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

fn env_port(name: &str, default: u16) -> u16 {
    let v = env_or(name, &default.to_string());
    v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a port number"))
}

impl Servers {
    pub fn from_env() -> Self {
        Servers {
            host: env_or("DTLE_TEST_HOST", "127.0.0.1"),
            src: env_port("DTLE_TEST_SRC_PORT", 3307),
            dst: env_port("DTLE_TEST_DST_PORT", 3308),
            dst2: env_port("DTLE_TEST_DST2_PORT", 3309),
            user: env_or("DTLE_TEST_USER", "dtle"),
            password: std::env::var("DTLE_TEST_PASSWORD").unwrap_or_else(|_| "dtle".to_string()),
        }
    }

    fn opts(&self, port: u16) -> OptsBuilder {
        OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.clone()))
            .prefer_socket(false)
    }

    pub async fn try_conn(&self, port: u16) -> Result<Conn, String> {
        match tokio::time::timeout(Duration::from_secs(10), Conn::new(self.opts(port))).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(format!("{}:{port}: {e}", self.host)),
            Err(_) => Err(format!("{}:{port}: connect timed out", self.host)),
        }
    }

    pub async fn conn(&self, port: u16) -> Conn {
        self.try_conn(port).await.unwrap_or_else(|e| panic!("cannot connect to the test server {e}"))
    }

    pub async fn src_conn(&self) -> Conn {
        self.conn(self.src).await
    }

    pub async fn dst_conn(&self) -> Conn {
        self.conn(self.dst).await
    }

    /// `{ Host = ..., Port = ..., User = ..., Password = ... }` for a job file.
    pub fn conn_hcl(&self, port: u16) -> String {
        self.conn_hcl_with(&self.host, port, &self.user, &self.password)
    }

    pub fn conn_hcl_with(&self, host: &str, port: u16, user: &str, password: &str) -> String {
        format!("{{ Host = {host:?}, Port = {port}, User = {user:?}, Password = {password:?} }}")
    }
}

/// The servers, or `None` (after printing why) when the source is down and servers are not required.
pub async fn servers() -> Option<Servers> {
    let s = Servers::from_env();
    match s.try_conn(s.src).await {
        Ok(c) => {
            let _ = c.disconnect().await;
            Some(s)
        }
        Err(e) => {
            if std::env::var("DTLE_TEST_REQUIRE_SERVERS").as_deref() == Ok("1") {
                panic!("DTLE_TEST_REQUIRE_SERVERS=1 but the source server is unreachable: {e}");
            }
            println!("skipping: start servers with tests/mariadb.sh up ({e})");
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SQL shortcuts

pub async fn exec(conn: &mut Conn, sql: &str) {
    if let Err(e) = conn.query_drop(sql).await {
        panic!("SQL failed on port {}: {e}\n  SQL: {}", conn_port(conn), shorten(sql, 2000));
    }
}

fn conn_port(conn: &Conn) -> u16 {
    conn.opts().tcp_port()
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        s.to_string()
    } else {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    }
}

fn raw(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(b),
        // The text protocol only yields bytes; keep anything else comparable anyway.
        other => Some(other.as_sql(true).into_bytes()),
    }
}

/// All rows of a query, each column as raw bytes.
pub async fn query_raw(conn: &mut Conn, sql: &str) -> Vec<RawRow> {
    let rows: Vec<mysql_async::Row> = conn
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("query failed on port {}: {e}\n  SQL: {}", conn_port(conn), shorten(sql, 2000)));
    rows.into_iter().map(|r| r.unwrap().into_iter().map(raw).collect()).collect()
}

/// The first column of the first row as a string (lossy), `None` for no row or NULL.
pub async fn query_str(conn: &mut Conn, sql: &str) -> Option<String> {
    let rows = query_raw(conn, sql).await;
    rows.into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

pub async fn query_u64(conn: &mut Conn, sql: &str) -> u64 {
    let s = query_str(conn, sql).await.unwrap_or_else(|| panic!("no value from: {sql}"));
    s.trim().parse().unwrap_or_else(|_| panic!("not a number {s:?} from: {sql}"))
}

pub async fn count(conn: &mut Conn, table: &str) -> u64 {
    query_u64(conn, &format!("SELECT COUNT(*) FROM {table}")).await
}

/// Like `count`, but 0 when the table (or schema) does not exist yet.
pub async fn count_if_exists(conn: &mut Conn, table: &str) -> u64 {
    let rows: Result<Vec<mysql_async::Row>, _> = conn.query(format!("SELECT COUNT(*) FROM {table}")).await;
    match rows {
        Ok(rows) => rows
            .into_iter()
            .next()
            .and_then(|r| r.unwrap().into_iter().next())
            .and_then(raw)
            .and_then(|b| String::from_utf8_lossy(&b).parse().ok())
            .unwrap_or(0),
        Err(mysql_async::Error::Server(e)) if e.code == 1146 || e.code == 1049 => 0,
        Err(e) => panic!("count of {table} failed: {e}"),
    }
}

/// Drops and recreates a schema on the source.
pub async fn reset_source_schema(src: &mut Conn, schema: &str) {
    exec(src, &format!("DROP DATABASE IF EXISTS `{schema}`")).await;
    exec(src, &format!("CREATE DATABASE `{schema}` DEFAULT CHARSET utf8mb4")).await;
}

/// Drops the test's schema on a target and forgets the job's position there.
pub async fn reset_target(dst: &mut Conn, schema: &str, job: &str) {
    exec(dst, &format!("DROP DATABASE IF EXISTS `{schema}`")).await;
    let r = dst.query_drop(format!("DELETE FROM dtle.replication_position WHERE job_name = '{job}'")).await;
    match r {
        Ok(()) => {}
        Err(mysql_async::Error::Server(e)) if e.code == 1146 || e.code == 1049 => {}
        Err(e) => panic!("cannot clear the position of {job}: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Positions

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PositionRow {
    pub stage: String,
    pub flavor: String,
    pub gtid_set: String,
    pub binlog_file: String,
    pub binlog_pos: u64,
}

pub async fn position_row(dst: &mut Conn, job: &str) -> Option<PositionRow> {
    let sql = format!(
        "SELECT stage, flavor, gtid_set, binlog_file, binlog_pos FROM dtle.replication_position WHERE job_name = '{job}'"
    );
    let rows: Result<Vec<mysql_async::Row>, _> = dst.query(sql).await;
    let rows = match rows {
        Ok(r) => r,
        Err(mysql_async::Error::Server(e)) if e.code == 1146 || e.code == 1049 => return None,
        Err(e) => panic!("reading the position of {job}: {e}"),
    };
    let row = rows.into_iter().next()?;
    let v: Vec<String> = row
        .unwrap()
        .into_iter()
        .map(|v| raw(v).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default())
        .collect();
    Some(PositionRow {
        stage: v[0].clone(),
        flavor: v[1].clone(),
        gtid_set: v[2].clone(),
        binlog_file: v[3].clone(),
        binlog_pos: v[4].parse().unwrap_or(0),
    })
}

/// The sequence number of MariaDB GTID domain `domain` in a list like `0-1-15,1-2-7`.
pub fn gtid_seq(gtid_list: &str, domain: u32) -> Option<u64> {
    gtid_list.split(',').map(str::trim).filter(|g| !g.is_empty()).find_map(|g| {
        let mut parts = g.split('-');
        let d: u32 = parts.next()?.parse().ok()?;
        let _server: u32 = parts.next()?.parse().ok()?;
        let seq: u64 = parts.next()?.parse().ok()?;
        (d == domain).then_some(seq)
    })
}

pub async fn gtid_binlog_pos(conn: &mut Conn) -> String {
    query_str(conn, "SELECT @@gtid_binlog_pos").await.unwrap_or_default()
}

/// Waits until the job's position on the target has reached the source's current domain-0 sequence.
pub async fn wait_target_caught_up(s: &Servers, dst: &mut Conn, job: &str, dtle: &mut Dtle) {
    let mut src = s.src_conn().await;
    let src_pos = gtid_binlog_pos(&mut src).await;
    let _ = src.disconnect().await;
    let want = gtid_seq(&src_pos, 0).unwrap_or_else(|| panic!("source @@gtid_binlog_pos {src_pos:?} has no domain 0"));
    let d = Waiter::new(format!("target position of {job} reaches source sequence {want} ({src_pos})"));
    loop {
        if let Some(p) = position_row(dst, job).await {
            if p.stage == "job_stage_incr" && gtid_seq(&p.gtid_set, 0).is_some_and(|seq| seq >= want) {
                return;
            }
            d.note(format!("last position: {p:?}"));
        }
        d.tick(Some(dtle)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Exact table comparison

/// Every row of `table` as raw bytes, ordered by `order_by`, or sorted here when the table has no key.
pub async fn table_rows(conn: &mut Conn, table: &str, order_by: Option<&str>) -> Vec<RawRow> {
    exec(conn, "SET NAMES binary").await;
    exec(conn, "SET time_zone = '+00:00'").await;
    let sql = match order_by {
        Some(o) => format!("SELECT * FROM {table} ORDER BY {o}"),
        None => format!("SELECT * FROM {table}"),
    };
    let mut rows = query_raw(conn, &sql).await;
    exec(conn, "SET NAMES utf8mb4").await;
    if order_by.is_none() {
        rows.sort();
    }
    rows
}

fn show_value(v: &Option<Vec<u8>>) -> String {
    match v {
        None => "NULL".to_string(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
            _ => format!("0x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        },
    }
}

pub fn show_row(r: &RawRow) -> String {
    format!("({})", r.iter().map(show_value).collect::<Vec<_>>().join(", "))
}

/// `None` when equal, else a short description of the differences.
pub fn diff_rows(src: &[RawRow], dst: &[RawRow]) -> Option<String> {
    if src == dst {
        return None;
    }
    let mut out = format!("source has {} rows, target has {} rows\n", src.len(), dst.len());
    let mut shown = 0;
    let src_set: std::collections::BTreeMap<&RawRow, usize> = src.iter().fold(Default::default(), |mut m, r| {
        *m.entry(r).or_default() += 1;
        m
    });
    let dst_set: std::collections::BTreeMap<&RawRow, usize> = dst.iter().fold(Default::default(), |mut m, r| {
        *m.entry(r).or_default() += 1;
        m
    });
    for (r, n) in &src_set {
        let m = dst_set.get(r).copied().unwrap_or(0);
        if m < *n && shown < 10 {
            out.push_str(&format!("  only on source (x{}): {}\n", n - m, show_row(r)));
            shown += 1;
        }
    }
    for (r, n) in &dst_set {
        let m = src_set.get(r).copied().unwrap_or(0);
        if m < *n && shown < 20 {
            out.push_str(&format!("  only on target (x{}): {}\n", n - m, show_row(r)));
            shown += 1;
        }
    }
    if shown == 0 {
        out.push_str("  same rows in a different order\n");
    }
    Some(out)
}

pub async fn table_diff(src: &mut Conn, dst: &mut Conn, table: &str, order_by: Option<&str>) -> Option<String> {
    let a = table_rows(src, table, order_by).await;
    let b = table_rows(dst, table, order_by).await;
    diff_rows(&a, &b)
}

pub async fn assert_tables_equal(src: &mut Conn, dst: &mut Conn, table: &str, order_by: Option<&str>) {
    if let Some(d) = table_diff(src, dst, table, order_by).await {
        panic!("{table} differs between source and target:\n{d}");
    }
}

/// Polls until the target's copy of `table` equals the source's (count first, then every byte).
pub async fn wait_tables_equal(src: &mut Conn, dst: &mut Conn, table: &str, order_by: Option<&str>, dtle: &mut Dtle) {
    let w = Waiter::new(format!("{table} on the target equals the source"));
    loop {
        let n = count(src, table).await;
        let m = count_if_exists(dst, table).await;
        if n == m {
            match table_diff(src, dst, table, order_by).await {
                None => return,
                Some(d) => w.note(d),
            }
        } else {
            w.note(format!("source has {n} rows, target has {m}"));
        }
        w.tick(Some(dtle)).await;
    }
}

/// Column names, types and character sets of a table, for comparing definitions.
pub async fn columns(conn: &mut Conn, schema: &str, table: &str) -> Vec<RawRow> {
    query_raw(
        conn,
        &format!(
            "SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, IS_NULLABLE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = '{schema}' AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"
        ),
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// A deadline for a polling loop: `tick` sleeps a little, fails the test after `DEADLINE`
/// (with the last note), and fails early when the watched dtle process has exited.
pub struct Waiter {
    what: String,
    start: Instant,
    limit: Duration,
    last: std::cell::RefCell<String>,
}

impl Waiter {
    pub fn new(what: impl Into<String>) -> Self {
        Waiter { what: what.into(), start: Instant::now(), limit: DEADLINE, last: Default::default() }
    }

    pub fn with_limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    pub fn note(&self, s: impl Into<String>) {
        *self.last.borrow_mut() = s.into();
    }

    pub fn expired(&self) -> bool {
        self.start.elapsed() > self.limit
    }

    pub async fn tick(&self, dtle: Option<&mut Dtle>) {
        if let Some(d) = dtle {
            if let Some(status) = d.try_exited() {
                panic!("dtle exited ({status}) while waiting for: {}\n  last: {}", self.what, self.last.borrow());
            }
        }
        if self.expired() {
            panic!("timed out after {:?} waiting for: {}\n  last: {}", self.limit, self.what, self.last.borrow());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Job files and the dtle process

/// A job file for a MySQL -> MySQL job; `src_config` holds the src task's config lines (one attribute per line).
pub fn job_hcl(name: &str, src_config: &str, src_conn: &str, dst_conn: &str) -> String {
    two_task_job(name, src_config, src_conn, &format!("        ConnectionConfig = {dst_conn}\n"))
}

/// A job file for a MySQL -> Kafka job (3.x shape: `KafkaConfig` in the dest task); `kafka_config` holds the
/// `KafkaConfig` block's lines (`Topic = ...`, `Brokers = [...]`).
pub fn kafka_job_hcl(name: &str, src_config: &str, src_conn: &str, kafka_config: &str) -> String {
    let dest = format!("        KafkaConfig {{\n{}        }}\n", indent_lines(kafka_config, "          "));
    two_task_job(name, src_config, src_conn, &dest)
}

/// Each non-empty line of `text`, trimmed, behind `by`.
fn indent_lines(text: &str, by: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| format!("{by}{l}\n")).collect()
}

/// The 3.x job shape: a src task (its config lines and source connection) and a dest task with `dest_config`.
fn two_task_job(name: &str, src_config: &str, src_conn: &str, dest_config: &str) -> String {
    let body = indent_lines(src_config, "        ");
    format!(
        r#"job "{name}" {{
  datacenters = ["dc1"]
  group "src" {{
    task "src" {{
      driver = "dtle"
      config {{
{body}        ConnectionConfig = {src_conn}
      }}
    }}
  }}
  group "dest" {{
    task "dest" {{
      driver = "dtle"
      config {{
{dest_config}      }}
    }}
  }}
}}
"#
    )
}

pub fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

pub fn read_log(path: &Path) -> String {
    strip_ansi(&String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()))
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running `dtle` process. Killed (SIGKILL) when dropped; when the test is failing, the tail of its log is printed.
pub struct Dtle {
    child: Option<Child>,
    exited: Option<ExitStatus>,
    pub log: PathBuf,
    pub err_log: Option<PathBuf>,
    pub label: String,
}

fn dtle_bin() -> &'static str {
    env!("CARGO_BIN_EXE_dtle")
}

fn open_log(log: &Path, header: &str) -> File {
    let mut f =
        OpenOptions::new().create(true).append(true).open(log).unwrap_or_else(|e| panic!("log {}: {e}", log.display()));
    let _ = writeln!(f, "===== {header} =====");
    f
}

impl Dtle {
    /// `dtle run JOB --data-dir DIR/data --no-progress-bar`, output appended to DIR/dtle.log.
    pub fn run(dir: &Path, job: &Path) -> Dtle {
        let log = dir.join("dtle.log");
        let data = dir.join("data");
        Self::spawn(
            &log,
            &["run".as_ref(), job.as_os_str(), "--data-dir".as_ref(), data.as_os_str(), "--no-progress-bar".as_ref()],
        )
    }

    pub fn spawn(log: &Path, args: &[&std::ffi::OsStr]) -> Dtle {
        Self::spawn_split(log, None, args)
    }

    /// Like `spawn`, with extra environment variables (failpoints).
    pub fn spawn_with_env(log: &Path, args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Dtle {
        Self::spawn_full(log, None, args, env)
    }

    /// Like `spawn`; with `err_log`, stderr goes there instead of into `log`.
    pub fn spawn_split(log: &Path, err_log: Option<&Path>, args: &[&std::ffi::OsStr]) -> Dtle {
        Self::spawn_full(log, err_log, args, &[])
    }

    fn spawn_full(log: &Path, err_log: Option<&Path>, args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Dtle {
        let label = format!("dtle {}", args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
        let out = open_log(log, &label);
        let err = match err_log {
            Some(p) => OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(p)
                .unwrap_or_else(|e| panic!("log {}: {e}", p.display())),
            None => out.try_clone().expect("dup log file"),
        };
        let child = Command::new(dtle_bin())
            .args(args)
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .env_remove("DTLE_LOG_LEVEL")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", dtle_bin()));
        Dtle {
            child: Some(child),
            exited: None,
            log: log.to_path_buf(),
            err_log: err_log.map(Path::to_path_buf),
            label,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("dtle process already reaped")
    }

    /// The exit status if the process has ended.
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.exited = Some(st);
                }
            }
        }
        self.exited
    }

    pub fn signal(&mut self, sig: &str) {
        if self.try_exited().is_some() {
            panic!("{} already exited ({:?}) before {sig}", self.label, self.exited);
        }
        let st = Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status().expect("run kill");
        assert!(st.success(), "kill -{sig} {} failed", self.pid());
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            if let Ok(st) = c.wait() {
                self.exited = Some(st);
            }
        }
    }

    /// Waits for the process to exit on its own; panics (with the log tail) after `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.try_exited() {
                return st;
            }
            if start.elapsed() > limit {
                panic!("{} did not exit within {limit:?}", self.label);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGINT, then expect a clean exit (code 0).
    pub async fn stop_cleanly(&mut self) {
        self.signal("INT");
        let st = self.wait_exit(DEADLINE).await;
        assert_eq!(st.code(), Some(0), "{} after SIGINT: {st}", self.label);
    }

    pub fn log_text(&self) -> String {
        read_log(&self.log)
    }
}

impl Drop for Dtle {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if self.exited.is_none() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- tail of {} ({}) -----\n{}\n-----",
                self.log.display(),
                self.label,
                tail(&read_log(&self.log), 60)
            );
            if let Some(p) = &self.err_log {
                eprintln!("----- tail of {} (stderr) -----\n{}\n-----", p.display(), tail(&read_log(p), 60));
            }
        }
    }
}

/// The result of a dtle command run to completion.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a dtle command to completion (with a deadline); stdout and stderr go to DIR/NAME.out and DIR/NAME.err.
pub async fn run_to_exit(dir: &Path, name: &str, args: &[&std::ffi::OsStr]) -> Finished {
    let out = dir.join(format!("{name}.out"));
    let err = dir.join(format!("{name}.err"));
    let mut d = Dtle::spawn_split(&out, Some(&err), args);
    let st = d.wait_exit(DEADLINE).await;
    Finished { code: st.code(), stdout: read_log(&out), stderr: read_log(&err) }
}

/// The per-test setup: servers, a fresh temp dir.
pub struct Ctx {
    pub s: Servers,
    pub dir: tempfile::TempDir,
}

impl Ctx {
    pub async fn new(test: &str) -> Option<Ctx> {
        let s = servers().await?;
        let dir = tempfile::Builder::new().prefix(&format!("dtle-e2e-{test}-")).tempdir().expect("temp dir");
        Some(Ctx { s, dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a job file (src on `src_port`, target on `dst_port`) and returns its path.
    pub fn job(&self, file: &str, name: &str, src_port: u16, dst_port: u16, src_config: &str) -> PathBuf {
        let hcl = job_hcl(name, src_config, &self.s.conn_hcl(src_port), &self.s.conn_hcl(dst_port));
        let p = self.path().join(file);
        write_file(&p, &hcl);
        p
    }
}

// ---------------------------------------------------------------------------------------------
// A small deterministic PRNG (xorshift64*), so failures can be replayed from the printed seed.

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn from_time() -> (Self, u64) {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(42);
        (Rng::new(seed), seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

// ---------------------------------------------------------------------------------------------
// NATS and Consul test servers (used by e2e_nats.rs and e2e_consul.rs)

/// `DTLE_TEST_REQUIRE_SERVERS=1`: a missing server fails the test instead of skipping it.
pub fn servers_required() -> bool {
    std::env::var("DTLE_TEST_REQUIRE_SERVERS").as_deref() == Ok("1")
}

/// The value of `var`, or `None` (after printing why) when it is unset and servers are not required.
pub fn service_env(var: &str, how: &str) -> Option<String> {
    match std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
        Some(v) => Some(v.trim().to_string()),
        None => {
            if servers_required() {
                panic!("DTLE_TEST_REQUIRE_SERVERS=1 but {var} is not set ({how})");
            }
            println!("skipping: {var} is not set ({how})");
            None
        }
    }
}

/// `DTLE_TEST_NATS_URL`, e.g. `nats://127.0.0.1:4222`.
pub fn nats_url() -> Option<String> {
    service_env("DTLE_TEST_NATS_URL", "tests/nats.sh start; eval \"$(tests/nats.sh env)\"")
}

/// `DTLE_TEST_CONSUL_ADDR`, e.g. `127.0.0.1:8500`.
pub fn consul_addr() -> Option<String> {
    service_env("DTLE_TEST_CONSUL_ADDR", "tests/consul.sh start; eval \"$(tests/consul.sh env)\"")
}

/// The workspace root (where `tests/*.sh` live).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Runs `tests/<script> args...` to completion (on the blocking pool); panics with its output when it fails.
pub async fn run_script(script: &str, args: &[&str]) {
    try_run_script(script, args).await.unwrap_or_else(|e| panic!("{e}"));
}

/// Like `run_script`, but a failure is returned (with the script's output) instead of panicking.
pub async fn try_run_script(script: &str, args: &[&str]) -> Result<(), String> {
    let path = repo_root().join("tests").join(script);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let shown = format!("tests/{script} {}", args.join(" "));
    let out = tokio::task::spawn_blocking(move || Command::new(path).args(&args).stdin(Stdio::null()).output())
        .await
        .expect("script task")
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{shown} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    println!("{shown}: ok");
    Ok(())
}

/// Where the tests/ scripts keep their servers' files: `DTLE_TEST_DIR` (relative to the current directory, as
/// tests/lib.sh reads it from a script run here) or `tests/.run`.
pub fn test_run_dir() -> PathBuf {
    match std::env::var("DTLE_TEST_DIR").ok().filter(|d| !d.is_empty()) {
        Some(d) => std::env::current_dir().expect("current directory").join(d),
        None => repo_root().join("tests").join(".run"),
    }
}

/// A test-owned server started with a tests/ script; `teardown` (e.g. `stop`, `destroy`) runs on drop.
pub struct ScriptServer {
    script: &'static str,
    port: u16,
    teardown: &'static str,
}

impl ScriptServer {
    pub async fn start(script: &'static str, port: u16, teardown: &'static str) -> ScriptServer {
        let guard = ScriptServer { script, port, teardown };
        run_script(script, &["start", &port.to_string()]).await;
        guard
    }

    pub async fn run(&self, action: &str) {
        run_script(self.script, &[action, &self.port.to_string()]).await;
    }
}

impl Drop for ScriptServer {
    fn drop(&mut self) {
        let path = repo_root().join("tests").join(self.script);
        let _ = Command::new(path)
            .args([self.teardown, &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A plain HTTP/1.0 request (no body) to `addr` (`host:port`): the status code and the body.
pub fn http_request(addr: &str, method: &str, path: &str) -> Result<(u16, Vec<u8>), String> {
    use std::io::Read;
    use std::net::{TcpStream, ToSocketAddrs};
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(5)).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(15))).ok();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n")
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("{addr}: reading the answer to {method} {path}: {e}"))?;
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{addr}: no HTTP header end in {:?}", String::from_utf8_lossy(&buf)))?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{addr}: bad status line in {head:?}"))?;
    Ok((status, buf[head_end + 4..].to_vec()))
}

/// `GET /v1/kv/<key>?raw` on Consul: `None` for 404, the value otherwise.
pub fn consul_get_raw(addr: &str, key: &str) -> Option<String> {
    let (status, body) =
        http_request(addr, "GET", &format!("/v1/kv/{key}?raw")).unwrap_or_else(|e| panic!("consul GET {key}: {e}"));
    match status {
        200 => Some(String::from_utf8_lossy(&body).into_owned()),
        404 => None,
        other => panic!("consul GET {key}: HTTP {other}: {}", String::from_utf8_lossy(&body)),
    }
}

/// Deletes every key under `prefix` (`DELETE /v1/kv/<prefix>?recurse`).
pub fn consul_delete_tree(addr: &str, prefix: &str) {
    let (status, body) = http_request(addr, "DELETE", &format!("/v1/kv/{prefix}?recurse"))
        .unwrap_or_else(|e| panic!("consul DELETE {prefix}: {e}"));
    assert_eq!(status, 200, "consul DELETE {prefix}: {}", String::from_utf8_lossy(&body));
}

/// Standard base64 (with or without padding).
pub fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let val = |c: u8| -> Result<u32, String> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("not base64: {:?}", c as char)),
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..chunk.len()]);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Several dtle processes, and a steady source load

impl Dtle {
    /// `dtle run JOB --data-dir DIR/<data> --no-progress-bar EXTRA...`, output appended to DIR/<log>.
    pub fn run_with(dir: &Path, job: &Path, log: &str, data: &str, extra: &[&str]) -> Dtle {
        let log = dir.join(log);
        let data = dir.join(data);
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "run".as_ref(),
            job.as_os_str(),
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--no-progress-bar".as_ref(),
        ];
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        Self::spawn(&log, &args)
    }
}

impl Waiter {
    /// Like `tick`, watching several dtle processes.
    pub async fn tick_all(&self, dtles: &mut [&mut Dtle]) {
        for d in dtles.iter_mut() {
            if let Some(status) = d.try_exited() {
                panic!(
                    "{} exited ({status}) while waiting for: {}\n  last: {}",
                    d.label,
                    self.what,
                    self.last.borrow()
                );
            }
        }
        self.tick(None).await;
    }
}

/// Waits until the job's position on the target reaches the source's current domain-0 sequence (several processes).
pub async fn wait_caught_up_all(s: &Servers, dst: &mut Conn, job: &str, dtles: &mut [&mut Dtle]) {
    let mut src = s.src_conn().await;
    let src_pos = gtid_binlog_pos(&mut src).await;
    let _ = src.disconnect().await;
    let want = gtid_seq(&src_pos, 0).unwrap_or_else(|| panic!("source @@gtid_binlog_pos {src_pos:?} has no domain 0"));
    let w = Waiter::new(format!("target position of {job} reaches source sequence {want} ({src_pos})"));
    loop {
        if let Some(p) = position_row(dst, job).await {
            if p.stage == "job_stage_incr" && gtid_seq(&p.gtid_set, 0).is_some_and(|seq| seq >= want) {
                return;
            }
            w.note(format!("last position: {p:?}"));
        }
        w.tick_all(dtles).await;
    }
}

/// Waits until the job's incremental position on the target has changed `times` times.
pub async fn wait_position_moves(dst: &mut Conn, job: &str, times: usize, dtles: &mut [&mut Dtle]) {
    let w = Waiter::new(format!("the position of {job} changes {times} times"));
    let mut last: Option<String> = None;
    let mut changes = 0;
    loop {
        if let Some(p) = position_row(dst, job).await {
            if p.stage == "job_stage_incr" {
                if last.as_deref().is_some_and(|l| l != p.gtid_set) {
                    changes += 1;
                    if changes >= times {
                        return;
                    }
                }
                last = Some(p.gtid_set.clone());
            }
            w.note(format!("{changes} changes so far, position {p:?}"));
        }
        w.tick_all(dtles).await;
    }
}

/// Creates `<schema>.tk` (primary key, 200 rows) and `<schema>.tn` (no key, 100 rows with duplicates and NULLs).
pub async fn create_load_tables(src: &mut Conn, schema: &str) {
    exec(src, &format!("CREATE TABLE {schema}.tk (id INT PRIMARY KEY, v INT NOT NULL, s VARCHAR(32))")).await;
    exec(src, &format!("CREATE TABLE {schema}.tn (a INT, b VARCHAR(16))")).await;
    exec(src, &format!("INSERT INTO {schema}.tk SELECT seq, seq * 3, CONCAT('init', seq) FROM {schema}.seq_0_to_199"))
        .await;
    exec(
        src,
        &format!(
            "INSERT INTO {schema}.tn SELECT seq % 40, IF(seq % 7 = 0, NULL, CONCAT('b', seq % 3)) FROM {schema}.seq_0_to_99"
        ),
    )
    .await;
}

/// Compares `<schema>.tk` and `<schema>.tn` exactly.
pub async fn assert_load_tables_equal(src: &mut Conn, dst: &mut Conn, schema: &str) {
    assert_tables_equal(src, dst, &format!("{schema}.tk"), Some("id")).await;
    assert_tables_equal(src, dst, &format!("{schema}.tn"), None).await;
}

/// Random small transactions (insert/update/delete) on `tk` and `tn` of a schema, until stopped.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    txs: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
    pub seed: u64,
}

impl Load {
    pub fn start(s: &Servers, schema: &str) -> Load {
        let (_, seed) = Rng::from_time();
        println!("load on {schema}: seed {seed}");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let txs = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = tokio::spawn(load_loop(s.clone(), schema.to_string(), stop.clone(), txs.clone(), seed));
        Load { stop, txs, task: Some(task), seed }
    }

    pub fn txs(&self) -> u64 {
        self.txs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until the load has committed `more` transactions beyond what it had when called.
    pub async fn wait_progress(&mut self, more: u64, dtles: &mut [&mut Dtle]) {
        let want = self.txs() + more;
        let w = Waiter::new(format!("the load reaches {want} transactions"));
        while self.txs() < want {
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                let r = self.task.take().unwrap().await.expect("load task panicked");
                panic!("the load ended early: {r:?}");
            }
            w.note(format!("{} transactions", self.txs()));
            w.tick_all(dtles).await;
        }
    }

    /// Stops the load; returns the number of committed transactions (panics if the load failed).
    pub async fn stop(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.task.take() {
            t.await.expect("load task panicked").unwrap_or_else(|e| panic!("{e}"));
        }
        let n = self.txs();
        println!("load stopped after {n} transactions (seed {})", self.seed);
        assert!(n > 0, "the load did nothing");
        n
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Random small transactions on `tk` (primary key) and `tn` (no key at all) until `stop`.
pub async fn load_loop(
    s: Servers,
    schema: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    txs: std::sync::Arc<std::sync::atomic::AtomicU64>,
    seed: u64,
) -> Result<(), String> {
    use std::sync::atomic::Ordering;
    let mut rng = Rng::new(seed);
    let mut conn = s.try_conn(s.src).await?;
    async fn run(conn: &mut Conn, sql: String) -> Result<(), String> {
        conn.query_drop(&sql).await.map_err(|e| format!("load: {e}\n  SQL: {sql}"))
    }
    while !stop.load(Ordering::Relaxed) {
        run(&mut conn, "BEGIN".into()).await?;
        for _ in 0..1 + rng.below(4) {
            let a = rng.below(400);
            let b = rng.below(40);
            let sql = match rng.below(7) {
                0 | 1 => format!(
                    "INSERT INTO {schema}.tk (id, v, s) VALUES ({a}, {}, 's{}') ON DUPLICATE KEY UPDATE v = v + 1, s = 'dup'",
                    rng.below(1000),
                    rng.below(100)
                ),
                2 => format!("UPDATE {schema}.tk SET v = v + 1, s = CONCAT('u', v) WHERE id BETWEEN {a} AND {}", a + 3),
                3 => format!("DELETE FROM {schema}.tk WHERE id = {a}"),
                4 => {
                    let v = |r: &mut Rng| if r.below(5) == 0 { "NULL".to_string() } else { format!("'b{}'", r.below(3)) };
                    format!(
                        "INSERT INTO {schema}.tn (a, b) VALUES ({b}, {}), ({b}, {}), ({}, {})",
                        v(&mut rng),
                        v(&mut rng),
                        rng.below(40),
                        v(&mut rng)
                    )
                }
                5 => format!("UPDATE {schema}.tn SET b = 'u{}' WHERE a = {b} LIMIT 1", rng.below(3)),
                _ => {
                    if rng.below(4) == 0 {
                        format!("DELETE FROM {schema}.tn WHERE a = {b}")
                    } else {
                        format!("DELETE FROM {schema}.tn WHERE a = {b} LIMIT 1")
                    }
                }
            };
            run(&mut conn, sql).await?;
        }
        run(&mut conn, "COMMIT".into()).await?;
        txs.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(2 + rng.below(8))).await;
    }
    let _ = conn.disconnect().await;
    Ok(())
}

/// The job-file line that replicates a whole schema.
pub fn replicate_schema(schema: &str) -> String {
    format!("ReplicateDoDb = [{{ TableSchema = \"{schema}\" }}]")
}
