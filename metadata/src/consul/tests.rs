//! Tests of [`ConsulStore`]. The live ones talk to a real Consul agent (`tests/consul.sh start`, then
//! `eval "$(tests/consul.sh env)"`, which sets `DTLE_TEST_CONSUL_ADDR`); without it they print why they
//! skip, or fail when `DTLE_TEST_REQUIRE_SERVERS=1`. The restart and ACL tests start agents of their own on
//! ports 8540, 8560 and 8580 (HTTPS on 8593) through `tests/consul.sh`.

use std::io::Read as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::*;
use crate::conformance::{checkpoint, checkpoint_store_conformance};
use crate::{JobStage, MariadbGtidList, MysqlGtidSet, Position};

const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
const U2: &str = "4a6f0b1c-0d2e-11ef-8000-0242ac110002";
/// Agents of our own, so stopping one does not disturb tests using the shared agent.
const ACL_AGENT_PORT: u16 = 8540;
const RESTART_AGENT_PORT: u16 = 8560;
const TLS_AGENT_PORT: u16 = 8580;

/// The live agent's address, or `None` (after saying why) when the live tests are to be skipped.
fn live_addr(test: &str) -> Option<String> {
    match std::env::var("DTLE_TEST_CONSUL_ADDR") {
        Ok(addr) if !addr.trim().is_empty() => Some(addr),
        _ => {
            if std::env::var("DTLE_TEST_REQUIRE_SERVERS").as_deref() == Ok("1") {
                panic!(
                    "{test}: DTLE_TEST_CONSUL_ADDR is not set but DTLE_TEST_REQUIRE_SERVERS=1; run \
                     tests/consul.sh start && eval \"$(tests/consul.sh env)\""
                );
            }
            eprintln!(
                "{test}: skipping: tests/consul.sh start && eval \"$(tests/consul.sh env)\" to run it \
                 against a real Consul agent"
            );
            None
        }
    }
}

fn unique_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("dtle-test-{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A key prefix of its own for one test, removed from Consul when dropped (also on panic).
struct TestPrefix {
    addr: String,
    prefix: String,
    token: Option<String>,
}

impl TestPrefix {
    fn new(addr: &str, token: Option<&str>) -> Self {
        TestPrefix { addr: addr.to_string(), prefix: unique_prefix(), token: token.map(str::to_string) }
    }

    fn config(&self) -> ConsulConfig {
        ConsulConfig {
            address: self.addr.clone(),
            token: self.token.clone(),
            key_prefix: self.prefix.clone(),
            timeout: Duration::from_secs(10),
            ..ConsulConfig::default()
        }
    }

    fn store(&self) -> ConsulStore {
        ConsulStore::connect(self.config()).expect("connect")
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        let url = format!("http://{}/v1/kv/{}/?recurse", self.addr, self.prefix);
        let token = self.token.clone();
        // Plain blocking HTTP on a thread of its own: Drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut req = reqwest::Client::new().delete(url);
                if let Some(t) = token {
                    req = req.header("X-Consul-Token", t);
                }
                req.timeout(Duration::from_secs(5)).send().await.ok()
            })
        })
        .join();
    }
}

/// `curl http://addr/v1/kv/<key>?raw` as a user would: (status, body text).
async fn raw_get(addr: &str, key: &str, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(format!("http://{addr}/v1/kv/{key}?raw"));
    if let Some(t) = token {
        req = req.header("X-Consul-Token", t);
    }
    let resp = req.send().await.expect("raw GET");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("raw body"))
}

fn consul_sh() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/consul.sh")
}

fn run_consul_sh(args: &[&str]) {
    let out = Command::new("bash").arg(consul_sh()).args(args).output().expect("run tests/consul.sh");
    assert!(
        out.status.success(),
        "tests/consul.sh {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Destroys an agent of our own when dropped (also on panic).
struct OwnAgent(u16);

impl OwnAgent {
    fn start(port: u16, extra: &[&str]) -> OwnAgent {
        let port_text = port.to_string();
        // A leftover from an earlier, interrupted run would keep its data (and its mode): start clean.
        run_consul_sh(&["destroy", &port_text]);
        let mut args = vec!["start", port_text.as_str()];
        args.extend_from_slice(extra);
        run_consul_sh(&args);
        OwnAgent(port)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.0)
    }
}

impl Drop for OwnAgent {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(consul_sh()).args(["destroy", &self.0.to_string()]).output();
    }
}

fn mysql_checkpoint(job: &str, gtid: &str, file: &str, pos: u64, stage: JobStage) -> Checkpoint {
    Checkpoint {
        job: job.to_string(),
        stage,
        position: Position {
            gtid: Some(GtidState::Mysql(gtid.parse().expect("mysql gtid set"))),
            binlog_file: file.to_string(),
            binlog_pos: pos,
        },
        updated_at_unix_ms: 1_700_000_000_123,
    }
}

// ------------------------------------------------------------------------------------------ live tests

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consul_store_conformance() {
    let Some(addr) = live_addr("consul_store_conformance") else {
        return;
    };
    let prefix = TestPrefix::new(&addr, None);
    checkpoint_store_conformance(Arc::new(prefix.store())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_key_layout_is_dtle_s() {
    let Some(addr) = live_addr("consul_key_layout_is_dtle_s") else {
        return;
    };
    let prefix = TestPrefix::new(&addr, None);
    let store = prefix.store();
    let p = &prefix.prefix;

    // MySQL: a two-server GTID set is stored in MySQL's multi-line form, sorted by uuid.
    let cp = mysql_checkpoint("job1", &format!("{U2}:1-3,{U1}:1-5:7"), "mysql-bin.000003", 1234, JobStage::Incremental);
    let v = store.save(&cp, 0).await.expect("save");
    let expected_gtid = format!("{U1}:1-5:7,\n{U2}:1-3");
    assert_eq!(raw_get(&addr, &format!("{p}/job1/Gtid"), None).await, (200, expected_gtid));
    assert_eq!(
        raw_get(&addr, &format!("{p}/job1/BinlogFilePos"), None).await,
        (200, "mysql-bin.000003//dtle//1234".to_string())
    );
    assert_eq!(raw_get(&addr, &format!("{p}/job1/JobStage"), None).await, (200, "job_stage_incr".to_string()));
    let (status, json) = raw_get(&addr, &format!("{p}/job1/Checkpoint"), None).await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&json).expect("Checkpoint is JSON");
    assert_eq!(json["position"]["flavor"], "mysql");
    assert_eq!(json["stage"], "job_stage_incr");
    assert_eq!(store.load("job1").await.expect("load"), Some(Versioned { value: cp.clone(), version: v }));
    // Exactly dtle's keys plus ours, and the raw view agrees.
    let keys = store.read_job_keys("job1").await.expect("read_job_keys");
    let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["BinlogFilePos", "Checkpoint", "Gtid", "JobStage"]);
    for (_, value) in &keys {
        assert!(!value.value.to_lowercase().contains("password"), "{value:?}");
    }

    // MariaDB: the GTID list as MariaDB prints it; the flavour survives a load.
    let maria = Checkpoint {
        job: "maria-1".into(),
        stage: JobStage::Snapshot,
        position: Position {
            gtid: Some(GtidState::Mariadb("0-1-100,1-2-7".parse::<MariadbGtidList>().expect("list"))),
            binlog_file: "mariadb-bin.000012".into(),
            binlog_pos: 4,
        },
        updated_at_unix_ms: 5,
    };
    let vm = store.save(&maria, 0).await.expect("save maria");
    assert_eq!(raw_get(&addr, &format!("{p}/maria-1/Gtid"), None).await, (200, "0-1-100,1-2-7".to_string()));
    assert_eq!(raw_get(&addr, &format!("{p}/maria-1/JobStage"), None).await, (200, "job_stage_full".to_string()));
    assert_eq!(store.load("maria-1").await.expect("load").map(|v| (v.value, v.version)), Some((maria, vm)));

    // An empty MySQL set keeps its flavour; no GTID and no binlog file give empty values.
    let empty = Checkpoint {
        job: "empty".into(),
        stage: JobStage::Stopped,
        position: Position {
            gtid: Some(GtidState::Mysql(MysqlGtidSet::new())),
            binlog_file: String::new(),
            binlog_pos: 0,
        },
        updated_at_unix_ms: 6,
    };
    store.save(&empty, 0).await.expect("save empty");
    assert_eq!(raw_get(&addr, &format!("{p}/empty/Gtid"), None).await, (200, String::new()));
    assert_eq!(raw_get(&addr, &format!("{p}/empty/BinlogFilePos"), None).await, (200, String::new()));
    assert_eq!(store.load("empty").await.expect("load").map(|v| v.value), Some(empty));

    // delete removes every key of the job (what users do with `dtle/job1?recurse`), and only that job's.
    let job10 = checkpoint("job10", 3);
    store.save(&job10, 0).await.expect("save job10");
    store.delete("job1").await.expect("delete");
    assert!(store.read_job_keys("job1").await.expect("keys").is_empty());
    assert_eq!(raw_get(&addr, &format!("{p}/job1/Gtid"), None).await.0, 404);
    assert_eq!(store.load("job10").await.expect("load").map(|v| v.value), Some(job10));
    assert_eq!(store.list().await.expect("list"), ["empty", "job10", "maria-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_cas_fences_a_stale_writer() {
    let Some(addr) = live_addr("consul_cas_fences_a_stale_writer") else {
        return;
    };
    let prefix = TestPrefix::new(&addr, None);
    // Two tasks of the same job (an old allocation and its replacement), each with its own client.
    let old_task = prefix.store();
    let new_task = prefix.store();
    let p = &prefix.prefix;

    let v1 = old_task
        .save(&mysql_checkpoint("job1", &format!("{U1}:1-10"), "b.000001", 100, JobStage::Incremental), 0)
        .await
        .expect("first save");
    // The new task resumes from v1 and moves on.
    let seen = new_task.load("job1").await.expect("load").expect("present");
    assert_eq!(seen.version, v1);
    let newer = mysql_checkpoint("job1", &format!("{U1}:1-20"), "b.000001", 200, JobStage::Incremental);
    let v2 = new_task.save(&newer, v1).await.expect("new task saves");
    assert!(v2 > v1);

    // The old task still believes in v1: fenced, and nothing it sent is written (not even Gtid).
    let stale = mysql_checkpoint("job1", &format!("{U1}:1-15"), "b.000001", 150, JobStage::Failed);
    let err = old_task.save(&stale, v1).await.expect_err("stale writer must be fenced");
    match &err {
        StoreError::Fenced { job, expected, found } => {
            assert_eq!((job.as_str(), *expected, *found), ("job1", v1, v2));
        }
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert!(err.to_string().contains("stale"), "{err}");
    assert_eq!(new_task.load("job1").await.expect("load"), Some(Versioned { value: newer, version: v2 }));
    assert_eq!(raw_get(&addr, &format!("{p}/job1/Gtid"), None).await, (200, format!("{U1}:1-20")));
    assert_eq!(
        raw_get(&addr, &format!("{p}/job1/BinlogFilePos"), None).await,
        (200, "b.000001//dtle//200".to_string())
    );
    assert_eq!(raw_get(&addr, &format!("{p}/job1/JobStage"), None).await, (200, "job_stage_incr".to_string()));

    // Somebody resets the job (`dtle positions reset` / curl -X DELETE ...?recurse): both are fenced.
    new_task.delete("job1").await.expect("delete");
    match new_task.save(&checkpoint("job1", 30), v2).await {
        Err(StoreError::Fenced { found: 0, .. }) => {}
        other => panic!("expected Fenced with found 0 after reset, got {other:?}"),
    }
}

/// Saves with retries while the error is transient, as the engine does, for at most `limit`.
async fn save_retrying(store: &ConsulStore, cp: &Checkpoint, expected: u64, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    loop {
        match store.save(cp, expected).await {
            Ok(v) => return v,
            Err(e) if e.is_transient() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("save after restart failed: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_restart_loses_nothing() {
    if live_addr("consul_restart_loses_nothing").is_none() {
        return;
    }
    let agent = OwnAgent::start(RESTART_AGENT_PORT, &[]);
    let addr = agent.addr();
    let prefix = TestPrefix::new(&addr, None);
    let store =
        ConsulStore::connect(ConsulConfig { timeout: Duration::from_secs(3), ..prefix.config() }).expect("connect");

    let mut version = 0;
    for gno in 1..=5 {
        version = store.save(&checkpoint("job1", gno), version).await.expect("save");
    }

    // Agent down: saves and loads fail as transient errors naming the address; the caller keeps its
    // version and position.
    run_consul_sh(&["stop", &RESTART_AGENT_PORT.to_string()]);
    for attempt in 6..=7 {
        let err = store.save(&checkpoint("job1", attempt), version).await.expect_err("save while Consul is down");
        assert!(matches!(err, StoreError::Unavailable { .. }) && err.is_transient(), "{err:?}");
        assert!(err.to_string().contains(&addr), "{err}");
    }
    let err = store.load("job1").await.expect_err("load while down");
    assert!(err.is_transient(), "{err:?}");

    // Back up (same data dir): the last saved checkpoint is there, and the pending save goes through
    // with the version the writer held.
    run_consul_sh(&["start", &RESTART_AGENT_PORT.to_string()]);
    let v7 = save_retrying(&store, &checkpoint("job1", 7), version, Duration::from_secs(30)).await;
    assert!(v7 > version);
    assert_eq!(store.load("job1").await.expect("load"), Some(Versioned { value: checkpoint("job1", 7), version: v7 }));

    // `tests/consul.sh restart` keeps it too.
    run_consul_sh(&["restart", &RESTART_AGENT_PORT.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let loaded = loop {
        match store.load("job1").await {
            Ok(v) => break v,
            Err(e) if e.is_transient() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("load after restart: {e}"),
        }
    };
    assert_eq!(loaded, Some(Versioned { value: checkpoint("job1", 7), version: v7 }));
    assert_eq!(raw_get(&addr, &format!("{}/job1/Gtid", prefix.prefix), None).await, (200, format!("{U1}:1-7")));
    drop(prefix);
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_acl_denial_is_definite_and_says_what_to_grant() {
    if live_addr("consul_acl_denial_is_definite_and_says_what_to_grant").is_none() {
        return;
    }
    let agent = OwnAgent::start(ACL_AGENT_PORT, &["acl"]);
    let addr = agent.addr();
    let prefix = TestPrefix::new(&addr, Some("root"));
    let cp = checkpoint("job1", 1);

    for token in [None, Some("not-a-real-token".to_string())] {
        let store = ConsulStore::connect(ConsulConfig { token: token.clone(), ..prefix.config() }).expect("connect");
        let err = store.save(&cp, 0).await.expect_err("save without a valid token");
        match &err {
            StoreError::AccessDenied { address, reason } => {
                assert!(address.contains(&addr), "{err}");
                assert!(
                    reason.contains(&format!("key_prefix \"{}/\"", prefix.prefix)) && reason.contains("write"),
                    "{err}"
                );
            }
            other => panic!("token {token:?}: expected AccessDenied, got {other:?}"),
        }
        assert!(!err.is_transient());
        let err = store.load("job1").await.expect_err("load without a valid token");
        assert!(matches!(err, StoreError::AccessDenied { .. }), "{err:?}");
    }

    // The management token may write; a token-less reader still sees nothing.
    let root = prefix.store();
    let v = root.save(&cp, 0).await.expect("save with the management token");
    assert_eq!(root.load("job1").await.expect("load").map(|v| v.version), Some(v));
    assert_eq!(root.list().await.expect("list"), ["job1"]);
    assert_eq!(raw_get(&addr, &format!("{}/job1/Gtid", prefix.prefix), Some("root")).await, (200, format!("{U1}:1")));
    drop(prefix);
    drop(agent);
}

fn test_dir() -> PathBuf {
    let dir = std::env::var_os("DTLE_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/.run"));
    if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir().expect("cwd").join(dir)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_over_tls_with_client_certificate() {
    if live_addr("consul_over_tls_with_client_certificate").is_none() {
        return;
    }
    let agent = OwnAgent::start(TLS_AGENT_PORT, &["tls"]);
    let tls = test_dir().join(format!("consul-{TLS_AGENT_PORT}/tls"));
    let https_addr = format!("127.0.0.1:{}", TLS_AGENT_PORT + 13);
    let prefix = TestPrefix::new(&agent.addr(), None);
    let with = |ca: bool, client: bool| ConsulConfig {
        address: https_addr.clone(),
        ca_file: ca.then(|| tls.join("ca.pem")),
        cert_file: client.then(|| tls.join("client.pem")),
        key_file: client.then(|| tls.join("client-key.pem")),
        ..prefix.config()
    };

    // CA + client certificate: the address without a scheme becomes https, and everything works.
    let store = ConsulStore::connect(with(true, true)).expect("connect");
    assert_eq!(store.address(), format!("https://{https_addr}"));
    let cp = checkpoint("job1", 3);
    let v = store.save(&cp, 0).await.expect("save over TLS");
    assert_eq!(store.load("job1").await.expect("load"), Some(Versioned { value: cp, version: v }));
    assert_eq!(store.list().await.expect("list"), ["job1"]);
    // Written where plain-HTTP readers see it too.
    assert_eq!(raw_get(&agent.addr(), &format!("{}/job1/Gtid", prefix.prefix), None).await, (200, format!("{U1}:1-3")));

    // Without the client certificate (verify_incoming), or without the CA: definite errors that name the
    // address and say which TLS setting to check.
    for (ca, client, what) in [(true, false, "cert_file"), (false, true, "ca_file")] {
        let store = ConsulStore::connect(with(ca, client)).expect("connect");
        let err = store.load("job1").await.expect_err("TLS must fail");
        eprintln!("TLS ca={ca} client={client}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(&https_addr), "{msg}");
        if !client {
            // With TLS 1.3 the server refuses a missing client certificate after the client considers the handshake
            // done, so the client may only see the connection dropped: a clear definite error when the alert is
            // seen, otherwise an "unavailable" error naming the address (retried). Never a success.
            assert!(
                matches!(err, StoreError::Rejected { .. }) && msg.contains(what)
                    || matches!(err, StoreError::Unavailable { .. }),
                "{err:?}"
            );
        } else {
            assert!(matches!(err, StoreError::Rejected { .. }) && !err.is_transient(), "{err:?}");
            assert!(msg.contains(what), "{msg}");
        }
    }
    let store = ConsulStore::connect(ConsulConfig { address: format!("https://{}", agent.addr()), ..prefix.config() })
        .expect("connect");
    let err = store.load("job1").await.expect_err("https to the http port");
    eprintln!("https to the HTTP port: {err}");
    assert!(matches!(err, StoreError::Rejected { .. }), "{err:?}");
    assert!(err.to_string().contains("http://"), "{err}");
    drop(prefix);
    drop(agent);
}

// ------------------------------------------------------------------------ tests without a server

#[tokio::test]
async fn unreachable_address_is_unavailable_and_named() {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let store = ConsulStore::connect(ConsulConfig {
        address: "127.0.0.1:1".into(),
        timeout: Duration::from_secs(5),
        ..ConsulConfig::default()
    })
    .expect("connect does not contact the server");
    let err = store.load("job1").await.expect_err("nothing listens on port 1");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.is_transient());
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1:1"), "{msg}");
    assert!(msg.contains("cannot connect"), "{msg}");
    let err = store.save(&checkpoint("job1", 1), 0).await.expect_err("save");
    assert!(err.is_transient() && err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(store.list().await.expect_err("list").is_transient());
    assert!(store.delete("job1").await.expect_err("delete").is_transient());
}

#[tokio::test]
async fn silent_server_times_out_as_unavailable() {
    // A socket that accepts and never answers (a hung agent).
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Detached: it ends by itself within 5 s (the runtime must not block on it while hyper still holds the
    // connection).
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
            let mut buf = [0u8; 4096];
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(0) = conn.read(&mut buf) {
                    break;
                }
            }
        }
    });
    let store = ConsulStore::connect(ConsulConfig {
        address: format!("127.0.0.1:{port}"),
        timeout: Duration::from_millis(300),
        ..ConsulConfig::default()
    })
    .expect("connect");
    let started = Instant::now();
    let err = store.load("job1").await.expect_err("no answer");
    assert!(started.elapsed() < Duration::from_secs(3), "timeout honoured");
    assert!(matches!(err, StoreError::Unavailable { .. }) && err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[test]
fn bad_addresses_are_definite_and_named() {
    for bad in [
        "",
        "   ",
        "http://",
        "127.0.0.1:99999",
        "ftp://127.0.0.1:21",
        "127.0.0.1:8500/v1/kv",
        "user:pw@127.0.0.1:8500",
        "a b:8500",
        "127.0.0.1:8500?x=1",
    ] {
        let err = ConsulStore::connect(ConsulConfig { address: bad.into(), ..ConsulConfig::default() }).expect_err(bad);
        match &err {
            StoreError::InvalidConfig { field, value, .. } => {
                assert_eq!((field.as_str(), value.as_str()), ("consul address", bad));
            }
            other => panic!("{bad:?}: expected InvalidConfig, got {other:?}"),
        }
        assert!(!err.is_transient());
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
}

#[test]
fn addresses_are_normalised() {
    for (given, tls, expected) in [
        ("127.0.0.1:8500", false, "http://127.0.0.1:8500"),
        ("127.0.0.1", false, "http://127.0.0.1:8500"),
        ("consul.service.consul:8600", false, "http://consul.service.consul:8600"),
        ("http://10.0.0.1:8500/", false, "http://10.0.0.1:8500"),
        ("https://consul.local:8501", false, "https://consul.local:8501"),
        ("https://consul.local", false, "https://consul.local:8501"),
        ("http://127.0.0.1:80", false, "http://127.0.0.1:80"),
        ("[::1]:8500", false, "http://[::1]:8500"),
        ("127.0.0.1:8501", true, "https://127.0.0.1:8501"),
    ] {
        assert_eq!(parse_address(given, tls).expect(given), expected, "{given}");
    }
    let err = parse_address("http://127.0.0.1:8501", true).expect_err("http with TLS files");
    assert!(err.to_string().contains("https"), "{err}");
}

#[test]
fn key_prefixes_are_checked() {
    for ok in ["dtle", "dtle-test-1", "a/b", "team_1/dtle.v4"] {
        let store = ConsulStore::connect(ConsulConfig { key_prefix: ok.into(), ..ConsulConfig::default() }).expect(ok);
        assert_eq!(store.key("job1", KEY_GTID), format!("{ok}/job1/Gtid"));
    }
    for bad in ["", "/dtle", "dtle/", "a//b", "a b", "..", "dtle?x", "dtle%2f"] {
        match ConsulStore::connect(ConsulConfig { key_prefix: bad.into(), ..ConsulConfig::default() }) {
            Err(e @ StoreError::InvalidConfig { .. }) => {
                assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
            }
            other => panic!("{bad:?}: expected InvalidConfig, got {other:?}"),
        }
    }
}

#[test]
fn tls_files_are_checked_and_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-ca.pem");
    let cfg = |ca: Option<PathBuf>, cert: Option<PathBuf>, key: Option<PathBuf>| ConsulConfig {
        ca_file: ca,
        cert_file: cert,
        key_file: key,
        ..ConsulConfig::default()
    };
    let expect_invalid = |c: ConsulConfig, field: &str, named: &std::path::Path| match ConsulStore::connect(c) {
        Err(e @ StoreError::InvalidConfig { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(field), "{msg}");
            assert!(msg.contains(&named.display().to_string()), "{msg}");
            assert!(!e.is_transient());
        }
        other => panic!("expected InvalidConfig for {field}, got {other:?}"),
    };
    expect_invalid(cfg(Some(missing.clone()), None, None), "ca_file", &missing);
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "hello\n").expect("write");
    expect_invalid(cfg(Some(not_pem.clone()), None, None), "ca_file", &not_pem);
    expect_invalid(cfg(None, Some(not_pem.clone()), None), "cert_file", &not_pem);
    expect_invalid(cfg(None, None, Some(not_pem.clone())), "key_file", &not_pem);
    expect_invalid(cfg(None, Some(not_pem.clone()), Some(missing.clone())), "key_file", &missing);
    expect_invalid(cfg(None, Some(not_pem.clone()), Some(not_pem.clone())), "cert_file", &not_pem);
}

#[test]
fn token_never_shows() {
    let cfg = ConsulConfig { token: Some("s3cr3t-token".into()), ..ConsulConfig::default() };
    assert!(!format!("{cfg:?}").contains("s3cr3t"));
    let store = ConsulStore::connect(cfg).expect("connect");
    assert!(!format!("{store:?}").contains("s3cr3t"));
    let err = ConsulStore::connect(ConsulConfig { token: Some("bad\ntoken-s3cr3t".into()), ..ConsulConfig::default() })
        .expect_err("newline in token");
    assert!(!err.to_string().contains("s3cr3t"), "{err}");
}

#[test]
fn answers_map_to_transient_or_definite() {
    let a = "http://127.0.0.1:8500";
    let e = status_error(a, "dtle", "save dtle/j/", StatusCode::FORBIDDEN, b"Permission denied");
    assert!(matches!(e, StoreError::AccessDenied { .. }) && !e.is_transient(), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("key_prefix \"dtle/\"") && msg.contains("write") && msg.contains(a), "{msg}");
    let e = status_error(a, "dtle", "x", StatusCode::FORBIDDEN, b"ACL not found");
    assert!(e.to_string().contains("not known"), "{e}");
    for s in [500, 502, 503, 504, 429, 408] {
        let status = StatusCode::from_u16(s).expect("status");
        let e = status_error(a, "dtle", "load", status, b"No cluster leader");
        assert!(matches!(e, StoreError::Unavailable { .. }) && e.is_transient(), "{s}: {e:?}");
        assert!(e.to_string().contains(a) && e.to_string().contains("No cluster leader"), "{e}");
    }
    for s in [400, 404, 405, 413] {
        let status = StatusCode::from_u16(s).expect("status");
        let e = status_error(a, "dtle", "load", status, b"bad");
        assert!(matches!(e, StoreError::Rejected { .. }) && !e.is_transient(), "{s}: {e:?}");
    }
    let long = vec![b'x'; 5000];
    assert!(status_error(a, "dtle", "x", StatusCode::BAD_REQUEST, &long).to_string().len() < 600);
}

#[test]
fn gtid_key_text_is_mysql_s_multiline_form() {
    let cp = mysql_checkpoint("j", &format!("{U2}:1-3,{U1}:1-5"), "", 0, JobStage::Incremental);
    assert_eq!(gtid_key_text(&cp), format!("{U1}:1-5,\n{U2}:1-3"));
    assert_eq!(job_stage_word(&cp), "job_stage_incr");
    let none = Checkpoint { position: Position::default(), ..cp };
    assert_eq!(gtid_key_text(&none), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendezvous_keys_round_trip_and_the_session_key_is_never_shown() {
    let Some(addr) = live_addr("rendezvous_keys_round_trip_and_the_session_key_is_never_shown") else {
        return;
    };
    let prefix = TestPrefix::new(&addr, None);
    let store = prefix.store();
    assert_eq!(store.get_job_key("j1", KEY_NATS_ADDR).await.unwrap(), None);
    store.put_job_key("j1", KEY_NATS_ADDR, b"10.0.0.5:8193").await.unwrap();
    store.put_job_key("j1", KEY_NATS_SESSION_KEY, b"00ff").await.unwrap();
    assert_eq!(store.get_job_key("j1", KEY_NATS_ADDR).await.unwrap().as_deref(), Some(&b"10.0.0.5:8193"[..]));
    assert_eq!(store.get_job_key("j1", KEY_NATS_SESSION_KEY).await.unwrap().as_deref(), Some(&b"00ff"[..]));
    let listed = store.read_job_keys("j1").await.unwrap();
    let shown: Vec<(&str, &str)> = listed.iter().map(|(k, v)| (k.as_str(), v.value.as_str())).collect();
    assert_eq!(shown, [("NatsAddr", "10.0.0.5:8193"), ("NatsSessionKey", "(secret, not shown)")]);
    assert!(store.put_job_key("bad/job", KEY_NATS_ADDR, b"x").await.is_err(), "job names are checked");
}
