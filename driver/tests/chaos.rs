//! The chaos campaign (issue 12): exactly-once under compound faults, against real servers of its own.
//!
//! For each mode — `one` (`dtle run`, src and dest in one process), `nats` (src and dest in two processes over a
//! nats-server, positions in Consul), `parallel` (one process, `ParallelWorkers = 4`) and `kafka` (one process, a
//! Kafka target) — the campaign fills four source tables (a primary key, a composite primary key, a primary key
//! plus a unique secondary key, no key at all; ~210k rows, a quarter of that for Kafka), starts the job with a full
//! copy and `DumpEntryLimit = 65536`, runs a mixed write load of multi-statement transactions on the source (which
//! is never faulted) with now and then one big transaction of 20–40k rows (several MB, sent in 64 KiB parts), and
//! meanwhile injects a fixed number of random faults: `kill -9` of the src, the dest or both; SIGSTOP and SIGCONT
//! 1–5 s later; restart and `kill -9` + start of nats-server, Consul and the target MariaDB. The first fault lands
//! during the full copy, others right after a big transaction started to be applied on the target. A supervisor
//! restarts every dtle process that died 1–5 s later, as Nomad would; an exit the campaign did not cause is
//! recorded with its status and log tail and fails the mode. At the end the load stops, the faults stop, and the
//! job must converge by itself, its position moving at least every 180 s after the last fault (at most 30 min in
//! all): the target's position reaches the source's `@@gtid_binlog_pos`, then every table is compared (`COUNT(*)`, `CHECKSUM TABLE`, a sorted full dump of keyless
//! tables; on a difference the exact rows that differ). Kafka: every topic is consumed, `c`/`u`/`d` events are
//! de-duplicated on (`source.gtid`, `source.pos`, `source.row`, `op`) and full-copy `r` events on the record key (only the last
//! full copy counts), each table is rebuilt from the events and compared with the source: nothing may be missing or
//! extra; duplicates are counted and printed.
//!
//! Servers: MariaDB `chaos_src` (127.0.0.1:3317, server id 17) and `chaos_dst` (3318, id 18), nats-server on 4232
//! and a Consul agent on 8640, all started here (idempotently) through the tests/ scripts, so killing them never
//! disturbs another test; Kafka mode uses the suite's broker (`DTLE_TEST_KAFKA`). The campaign runs under
//! `tests/run.sh` (`DTLE_TEST_REQUIRE_SERVERS=1`: a missing prerequisite fails) and `tests/chaos/run.sh`; elsewhere
//! it prints "skipping: ..." unless one of its knobs is set.
//!
//! Knobs: `DTLE_CHAOS_FAULTS` (faults per mode, default 6), `DTLE_CHAOS_SEED` (default: from the clock, printed),
//! `DTLE_CHAOS_MODES` (default `one,nats,parallel,kafka`), `DTLE_CHAOS_SRC_PORT` / `DTLE_CHAOS_DST_PORT` (on ports
//! other than 3317/3318 the instances are `chaos_src_<port>` / `chaos_dst_<port>`, so two campaigns without the
//! nats mode can run side by side), `DTLE_CHAOS_NATS_PORT` / `DTLE_CHAOS_CONSUL_PORT` (4232 / 8640).
//! A seed fixes each mode's fault sequence (kinds, timings, outage lengths), printed before the mode starts; replay
//! a failure with
//!
//!   tests/chaos/run.sh --seed <n> --faults <n> --modes <mode>
//!   DTLE_CHAOS_SEED=<n> DTLE_CHAOS_FAULTS=<n> DTLE_CHAOS_MODES=<mode> cargo test -p dtle --test chaos -- --nocapture
//!
//! Logs of every process stay in `target/tmp/chaos/<seed>-<mode>/`.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde_json::Value as Json;

const DEFAULT_FAULTS: usize = 6;
const NATS_PORT: u16 = 4232;
/// Not 8580: the dtle-metadata tests run a TLS agent there.
const CONSUL_PORT: u16 = 8640;
/// The MariaDB instances' names on the default ports; on other ports the port is appended (`chaos_src_3327`), so
/// two campaigns on different ports never share a data directory.
fn instance_name(base: &str, port: u16, default_port: u16) -> String {
    if port == default_port {
        base.to_string()
    } else {
        format!("{base}_{port}")
    }
}
const SRC_SERVER_ID: u16 = 17;
const DST_SERVER_ID: u16 = 18;
/// The job's `DumpEntryLimit`: big transactions travel in parts of this many bytes of row data.
const DUMP_ENTRY_LIMIT: u64 = 65536;
/// How long the job may take to converge after the last fault.
const CONVERGE_LIMIT: Duration = Duration::from_secs(180);
/// A long run builds a backlog (a constantly restarted debug build on two cores falls behind the load): after the
/// last fault the job may take longer than [`CONVERGE_LIMIT`] as long as its position keeps moving — no progress for
/// that long fails the mode, and so does this much in all.
const CONVERGE_CAP: Duration = Duration::from_secs(1800);
/// Rows a target transaction must have changed to count as "inside the big transaction".
const BIG_TX_APPLY_ROWS: u64 = 500;

// ---------------------------------------------------------------------------------------------
// Knobs, modes and faults

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    One,
    Nats,
    Parallel,
    Kafka,
}

const ALL_MODES: [Mode; 4] = [Mode::One, Mode::Nats, Mode::Parallel, Mode::Kafka];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::One => "one",
            Mode::Nats => "nats",
            Mode::Parallel => "parallel",
            Mode::Kafka => "kafka",
        }
    }

    fn parse(name: &str) -> Option<Mode> {
        ALL_MODES.into_iter().find(|m| m.name() == name.trim())
    }

    /// The job name and the schema it replicates (on the source and the target).
    fn job(self) -> String {
        format!("chaos_{}", self.name())
    }

    /// Mixes the campaign seed with the mode, so a mode's faults do not depend on which modes run before it.
    fn seed(self, campaign_seed: u64) -> u64 {
        let id = ALL_MODES.iter().position(|m| *m == self).unwrap() as u64 + 1;
        campaign_seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// The faults to draw from (a kind listed twice is drawn twice as often).
    fn fault_kinds(self) -> &'static [FaultKind] {
        use FaultKind::*;
        match self {
            Mode::One | Mode::Parallel => &[KillDtle, KillDtle, StopDtle, KillTarget, RestartTarget],
            Mode::Nats => &[
                KillSrc,
                KillDest,
                KillBoth,
                StopSrc,
                StopDest,
                RestartNats,
                KillNats,
                RestartConsul,
                KillConsul,
                KillTarget,
                RestartTarget,
            ],
            // The broker is the suite's: only dtle itself is faulted.
            Mode::Kafka => &[KillDtle, KillDtle, StopDtle],
        }
    }

    /// The share of the full data set: every row becomes a ~2 KB JSON message in Kafka mode.
    fn data_scale(self) -> f64 {
        if self == Mode::Kafka {
            0.25
        } else {
            1.0
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum FaultKind {
    KillDtle,
    KillSrc,
    KillDest,
    KillBoth,
    StopDtle,
    StopSrc,
    StopDest,
    RestartNats,
    KillNats,
    RestartConsul,
    KillConsul,
    RestartTarget,
    KillTarget,
}

impl FaultKind {
    fn name(self) -> &'static str {
        use FaultKind::*;
        match self {
            KillDtle => "kill -9 dtle",
            KillSrc => "kill -9 src",
            KillDest => "kill -9 dest",
            KillBoth => "kill -9 src+dest",
            StopDtle => "SIGSTOP dtle",
            StopSrc => "SIGSTOP src",
            StopDest => "SIGSTOP dest",
            RestartNats => "restart nats",
            KillNats => "kill -9 nats",
            RestartConsul => "restart consul",
            KillConsul => "kill -9 consul",
            RestartTarget => "restart target",
            KillTarget => "kill -9 target",
        }
    }

    /// SIGSTOP, SIGCONT after the outage.
    fn is_pause(self) -> bool {
        matches!(self, FaultKind::StopDtle | FaultKind::StopSrc | FaultKind::StopDest)
    }

    /// The supervised dtle processes the fault hits (none for a server fault).
    fn roles(self) -> &'static [&'static str] {
        use FaultKind::*;
        match self {
            KillDtle | StopDtle => &["dtle"],
            KillSrc | StopSrc => &["src"],
            KillDest | StopDest => &["dest"],
            KillBoth => &["src", "dest"],
            _ => &[],
        }
    }
}

/// When a planned fault fires.
#[derive(Clone, Copy, Debug)]
enum Timing {
    /// While the full copy runs (some rows on the target, the position not yet incremental).
    DuringFullCopy,
    /// Right after a big source transaction is being applied on the target (Kafka: shortly after its commit).
    InsideBigTx,
    /// After a pause.
    AfterPause(Duration),
}

#[derive(Clone, Copy, Debug)]
struct PlannedFault {
    kind: FaultKind,
    timing: Timing,
    /// How long a SIGSTOP lasts, or how long a killed server stays down.
    outage: Duration,
}

/// The mode's fault sequence, a function of the seed only.
fn plan_faults(mode: Mode, seed: u64, count: usize) -> Vec<PlannedFault> {
    let mut rng = Rng::new(mode.seed(seed));
    let kinds = mode.fault_kinds();
    (0..count)
        .map(|i| {
            let kind = kinds[rng.below(kinds.len() as u64) as usize];
            let timing = match (i, rng.below(3)) {
                (0, _) => Timing::DuringFullCopy,
                (1, _) | (_, 0) => Timing::InsideBigTx,
                _ => Timing::AfterPause(Duration::from_millis(1000 + rng.below(5000))),
            };
            PlannedFault { kind, timing, outage: Duration::from_millis(1000 + rng.below(4000)) }
        })
        .collect()
}

struct Knobs {
    faults: usize,
    seed: u64,
    modes: Vec<Mode>,
    src_port: u16,
    dst_port: u16,
    nats_port: u16,
    consul_port: u16,
}

impl Knobs {
    fn src_instance(&self) -> String {
        instance_name("chaos_src", self.src_port, 3317)
    }

    fn dst_instance(&self) -> String {
        instance_name("chaos_dst", self.dst_port, 3318)
    }

    /// The knobs, or `None` (after printing why) when the campaign should not run here.
    fn from_env() -> Option<Knobs> {
        let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let asked = ["DTLE_CHAOS_FAULTS", "DTLE_CHAOS_SEED", "DTLE_CHAOS_MODES"].iter().any(|v| var(v).is_some());
        if !servers_required() && !asked {
            println!(
                "skipping: the chaos campaign starts servers of its own; run it with tests/chaos/run.sh (or \
                 tests/run.sh, or set DTLE_CHAOS_MODES)"
            );
            return None;
        }
        let number = |name: &str, default: u64| -> u64 {
            var(name).map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))).unwrap_or(default)
        };
        let modes = match var("DTLE_CHAOS_MODES") {
            None => ALL_MODES.to_vec(),
            Some(list) => list
                .split(',')
                .filter(|m| !m.trim().is_empty())
                .map(|m| Mode::parse(m).unwrap_or_else(|| panic!("DTLE_CHAOS_MODES: unknown mode {m:?}")))
                .collect(),
        };
        let seed = var("DTLE_CHAOS_SEED")
            .map(|v| v.parse().unwrap_or_else(|_| panic!("DTLE_CHAOS_SEED={v:?} is not a number")))
            .unwrap_or_else(|| Rng::from_time().1 % 1_000_000_000);
        Some(Knobs {
            faults: number("DTLE_CHAOS_FAULTS", DEFAULT_FAULTS as u64) as usize,
            seed,
            modes,
            src_port: number("DTLE_CHAOS_SRC_PORT", 3317) as u16,
            dst_port: number("DTLE_CHAOS_DST_PORT", 3318) as u16,
            nats_port: number("DTLE_CHAOS_NATS_PORT", u64::from(NATS_PORT)) as u16,
            consul_port: number("DTLE_CHAOS_CONSUL_PORT", u64::from(CONSUL_PORT)) as u16,
        })
    }

    fn replay_command(&self) -> String {
        let modes: Vec<&str> = self.modes.iter().map(|m| m.name()).collect();
        format!("tests/chaos/run.sh --seed {} --faults {} --modes {}", self.seed, self.faults, modes.join(","))
    }
}

// ---------------------------------------------------------------------------------------------
// The tables

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
}

struct TableDef {
    name: &'static str,
    /// `ORDER BY` for an exact dump; `None` for the keyless table (sorted after reading).
    order_by: Option<&'static str>,
    /// Indexes of the primary-key columns (empty: no key).
    key: &'static [usize],
    columns: &'static [(&'static str, Kind)],
    create: &'static str,
}

const TABLES: [TableDef; 4] = [
    TableDef {
        name: "pk",
        order_by: Some("id"),
        key: &[0],
        columns: &[("id", Kind::Int), ("v", Kind::Int), ("s", Kind::Text), ("pad", Kind::Text)],
        create: "(id BIGINT PRIMARY KEY, v INT NOT NULL, s VARCHAR(64), pad VARCHAR(255))",
    },
    TableDef {
        name: "ck",
        order_by: Some("a, b"),
        key: &[0, 1],
        columns: &[("a", Kind::Int), ("b", Kind::Int), ("v", Kind::Int), ("s", Kind::Text)],
        create: "(a INT NOT NULL, b INT NOT NULL, v INT NOT NULL, s VARCHAR(64), PRIMARY KEY (a, b))",
    },
    TableDef {
        name: "uk",
        order_by: Some("id"),
        key: &[0],
        columns: &[("id", Kind::Int), ("code", Kind::Text), ("v", Kind::Int), ("note", Kind::Text)],
        create: "(id INT PRIMARY KEY, code VARCHAR(40) NOT NULL, v INT, note VARCHAR(100), UNIQUE KEY code (code))",
    },
    TableDef {
        name: "nk",
        order_by: None,
        key: &[],
        columns: &[("a", Kind::Int), ("b", Kind::Text), ("c", Kind::Int), ("pad", Kind::Text)],
        create: "(a INT, b VARCHAR(16), c INT, pad VARCHAR(100))",
    },
];

/// Row counts of the tables before the job starts.
#[derive(Clone, Copy)]
struct DataSize {
    pk: u64,
    ck: u64,
    uk: u64,
    nk: u64,
    big_tx_min: u64,
    big_tx_max: u64,
}

impl DataSize {
    fn for_mode(mode: Mode) -> DataSize {
        let scale = |n: u64| ((n as f64) * mode.data_scale()) as u64;
        DataSize {
            pk: scale(100_000),
            ck: scale(50_000),
            uk: scale(40_000),
            nk: scale(20_000),
            big_tx_min: scale(20_000),
            big_tx_max: scale(40_000),
        }
    }

    fn total(&self) -> u64 {
        self.pk + self.ck + self.uk + self.nk
    }
}

async fn create_source_tables(src: &mut Conn, schema: &str, size: DataSize) {
    reset_source_schema(src, schema).await;
    for t in &TABLES {
        exec(src, &format!("CREATE TABLE {schema}.{} {}", t.name, t.create)).await;
    }
    let DataSize { pk, ck, uk, nk, .. } = size;
    exec(
        src,
        &format!(
            "INSERT INTO {schema}.pk SELECT seq, seq % 1000, CONCAT('s', seq), REPEAT(CHAR(97 + seq % 26), 120) \
             FROM {schema}.seq_1_to_{pk}"
        ),
    )
    .await;
    exec(
        src,
        &format!(
            "INSERT INTO {schema}.ck SELECT seq DIV 100 + 1, seq % 100, seq, CONCAT('c', seq) FROM {schema}.seq_0_to_{}",
            ck - 1
        ),
    )
    .await;
    exec(
        src,
        &format!(
            "INSERT INTO {schema}.uk SELECT seq, CONCAT('c', seq), seq % 77, IF(seq % 5 = 0, NULL, CONCAT('n', seq)) \
             FROM {schema}.seq_1_to_{uk}"
        ),
    )
    .await;
    exec(
        src,
        &format!(
            "INSERT INTO {schema}.nk SELECT seq % 500, IF(seq % 7 = 0, NULL, CONCAT('b', seq % 3)), 0, \
             REPEAT('k', seq % 50) FROM {schema}.seq_1_to_{nk}"
        ),
    )
    .await;
}

/// Drops the schema on the target and every row of the job in dtle's own tables (positions, copy progress,
/// parallel-apply records): the job starts from nothing.
async fn reset_target_job(dst: &mut Conn, schema: &str, job: &str) {
    reset_target(dst, schema, job).await;
    let tables = query_raw(
        dst,
        "SELECT TABLE_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'dtle' AND COLUMN_NAME = 'job_name'",
    )
    .await;
    for t in tables {
        let table = String::from_utf8_lossy(t[0].as_deref().unwrap_or_default()).into_owned();
        exec(dst, &format!("DELETE FROM dtle.`{table}` WHERE job_name = '{job}'")).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The source load

struct LoadCounters {
    txs: AtomicU64,
    big_txs: AtomicU64,
    big_tx_rows: AtomicU64,
    big_tx_requests: AtomicU64,
    /// The GTID sequence number of the last big transaction.
    last_big_tx_seq: AtomicU64,
}

/// A mixed write load on the mode's tables: multi-statement transactions (upserts, updates, deletes on every table,
/// key changes), now and then a big transaction; `request_big_tx` asks for one at once.
struct ChaosLoad {
    stop: Arc<AtomicBool>,
    counters: Arc<LoadCounters>,
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl ChaosLoad {
    fn start(s: &Servers, schema: &str, size: DataSize, seed: u64) -> ChaosLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(LoadCounters {
            txs: AtomicU64::new(0),
            big_txs: AtomicU64::new(0),
            big_tx_rows: AtomicU64::new(0),
            big_tx_requests: AtomicU64::new(0),
            last_big_tx_seq: AtomicU64::new(0),
        });
        let task =
            tokio::spawn(chaos_load_loop(s.clone(), schema.to_string(), size, stop.clone(), counters.clone(), seed));
        ChaosLoad { stop, counters, task: Some(task) }
    }

    /// Why the load ended, if it ended before `stop`.
    async fn failed(&mut self) -> Option<String> {
        if !self.task.as_ref().is_some_and(|t| t.is_finished()) {
            return None;
        }
        Some(match self.task.take().unwrap().await {
            Ok(Ok(())) => "the load ended early".to_string(),
            Ok(Err(e)) => format!("the load failed: {e}"),
            Err(e) => format!("the load panicked: {e}"),
        })
    }

    /// Asks for a big transaction and waits until the source committed it; (its number, its GTID sequence number).
    async fn request_big_tx(&mut self) -> Result<(u64, u64), String> {
        let done = self.counters.big_txs.load(Ordering::SeqCst);
        self.counters.big_tx_requests.fetch_add(1, Ordering::SeqCst);
        let started = Instant::now();
        while self.counters.big_txs.load(Ordering::SeqCst) <= done {
            if let Some(e) = self.failed().await {
                return Err(e);
            }
            if started.elapsed() > Duration::from_secs(180) {
                return Err("the source did not commit the big transaction within 180 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok((done + 1, self.counters.last_big_tx_seq.load(Ordering::SeqCst)))
    }

    /// Stops the load: (transactions, big transactions, rows in big transactions), or the load's error.
    async fn stop(mut self) -> Result<(u64, u64, u64), String> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.task.take() {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("the load failed: {e}")),
                Err(e) => return Err(format!("the load panicked: {e}")),
            }
        }
        let c = &self.counters;
        Ok((c.txs.load(Ordering::SeqCst), c.big_txs.load(Ordering::SeqCst), c.big_tx_rows.load(Ordering::SeqCst)))
    }
}

impl Drop for ChaosLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

async fn chaos_load_loop(
    s: Servers,
    schema: String,
    size: DataSize,
    stop: Arc<AtomicBool>,
    counters: Arc<LoadCounters>,
    seed: u64,
) -> Result<(), String> {
    let mut rng = Rng::new(seed ^ 0x5DEE_CE66);
    let mut conn = s.try_conn(s.src).await?;
    async fn run(conn: &mut Conn, sql: &str) -> Result<(), String> {
        conn.query_drop(sql).await.map_err(|e| format!("{e}\n  SQL: {sql}"))
    }
    let ids = size.pk + size.pk / 5;
    let uk_ids = size.uk + size.uk / 5;
    let ck_groups = size.ck / 100 + 20;
    // Fresh primary keys for key changes, and the id ranges of big transactions: never reused.
    let mut moved_id = 20_000_000u64;
    let mut renamed_code = 0u64;
    let mut big_served = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let requested = counters.big_tx_requests.load(Ordering::SeqCst);
        if requested > big_served || rng.below(4000) == 0 {
            big_served = big_served.max(requested);
            let n = counters.big_txs.load(Ordering::SeqCst) + 1;
            let rows = size.big_tx_min + rng.below(size.big_tx_max - size.big_tx_min + 1);
            let (base, prev_base) = (100_000_000 * n, 100_000_000 * (n - 1));
            let statements = [
                "BEGIN".to_string(),
                format!(
                    "INSERT INTO {schema}.pk (id, v, s, pad) SELECT {base} + seq, seq, 'big{n}', \
                     REPEAT(CHAR(65 + seq % 26), 100) FROM {schema}.seq_1_to_{rows}"
                ),
                // The previous big transaction's rows go again, so the tables do not grow without bound.
                format!("DELETE FROM {schema}.pk WHERE id > {prev_base} AND id < {base} AND {prev_base} > 0"),
                format!("UPDATE {schema}.ck SET v = v + 1, s = 'big{n}' WHERE a % 17 = {}", n % 17),
                format!("UPDATE {schema}.uk SET v = v + 1 WHERE id % 13 = {}", n % 13),
                // A few hundred only: the target finds each keyless row to delete by a full scan.
                format!(
                    "INSERT INTO {schema}.nk (a, b, c, pad) SELECT seq % 50, 'big', {n}, REPEAT('n', 60) \
                     FROM {schema}.seq_1_to_300"
                ),
                format!("DELETE FROM {schema}.nk WHERE b = 'big' AND c = {}", n - 1),
                "COMMIT".to_string(),
            ];
            for sql in &statements {
                run(&mut conn, sql).await?;
            }
            let gtid: Option<String> = conn.query_first("SELECT @@last_gtid").await.map_err(|e| e.to_string())?;
            let seq = gtid.as_deref().and_then(|g| gtid_seq(g, 0)).unwrap_or(0);
            counters.last_big_tx_seq.store(seq, Ordering::SeqCst);
            counters.big_tx_rows.fetch_add(rows, Ordering::SeqCst);
            counters.big_txs.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        run(&mut conn, "BEGIN").await?;
        for _ in 0..1 + rng.below(5) {
            let id = 1 + rng.below(ids);
            let uid = 1 + rng.below(uk_ids);
            let (a, b) = (1 + rng.below(ck_groups), rng.below(110));
            let text = |rng: &mut Rng| -> String {
                if rng.below(6) == 0 {
                    "NULL".into()
                } else {
                    format!("'t{}'", rng.below(5))
                }
            };
            let sql = match rng.below(17) {
                0 | 1 => format!(
                    "INSERT INTO {schema}.pk (id, v, s, pad) VALUES ({id}, {}, 'ins', REPEAT('p', {})) \
                     ON DUPLICATE KEY UPDATE v = v + 1, s = 'dup'",
                    rng.below(1000),
                    rng.below(200)
                ),
                2 => {
                    format!("UPDATE {schema}.pk SET v = v + 1, s = CONCAT('u', v) WHERE id BETWEEN {id} AND {}", id + 3)
                }
                3 => format!("DELETE FROM {schema}.pk WHERE id = {id}"),
                4 => {
                    moved_id += 1;
                    format!("UPDATE {schema}.pk SET id = {moved_id} WHERE id = {id}")
                }
                5 | 6 => format!(
                    "INSERT INTO {schema}.ck (a, b, v, s) VALUES ({a}, {b}, {}, {}) ON DUPLICATE KEY UPDATE v = v + 1",
                    rng.below(1000),
                    text(&mut rng)
                ),
                7 => format!("UPDATE {schema}.ck SET v = v + 1, s = 'u' WHERE a = {a} AND b < 10"),
                8 => format!("DELETE FROM {schema}.ck WHERE a = {a} AND b = {b}"),
                9 => format!(
                    "INSERT INTO {schema}.uk (id, code, v) VALUES ({uid}, 'c{}', {}) ON DUPLICATE KEY UPDATE v = v + 1",
                    1 + rng.below(uk_ids),
                    rng.below(100)
                ),
                10 => {
                    renamed_code += 1;
                    format!("UPDATE {schema}.uk SET code = 'x{uid}_{renamed_code}' WHERE id = {uid}")
                }
                11 => format!(
                    "REPLACE INTO {schema}.uk (id, code, v, note) VALUES ({uid}, 'c{}', {}, 'replaced')",
                    1 + rng.below(uk_ids),
                    rng.below(100)
                ),
                12 => format!("DELETE FROM {schema}.uk WHERE id = {uid}"),
                13 | 14 => {
                    let x = rng.below(520);
                    format!(
                        "INSERT INTO {schema}.nk (a, b, c, pad) VALUES ({x}, {}, 1, 'i'), ({x}, {}, 1, 'i'), ({}, {}, NULL, NULL)",
                        text(&mut rng),
                        text(&mut rng),
                        rng.below(520),
                        text(&mut rng)
                    )
                }
                15 => format!(
                    "UPDATE {schema}.nk SET b = 'u{}', c = c + 1 WHERE a = {} LIMIT 1",
                    rng.below(3),
                    rng.below(520)
                ),
                _ => format!("DELETE FROM {schema}.nk WHERE a = {} LIMIT 1", rng.below(520)),
            };
            run(&mut conn, &sql).await?;
        }
        run(&mut conn, "COMMIT").await?;
        counters.txs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(3 + rng.below(10))).await;
    }
    let _ = conn.disconnect().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The supervisor: restarts dtle processes that died, as Nomad would

/// One dtle process of the job.
struct Supervised {
    role: &'static str,
    dir: PathBuf,
    job: PathBuf,
    args: Vec<String>,
    process: Option<Dtle>,
    /// The campaign killed it: its exit is expected.
    killed_by_us: bool,
    restart_at: Option<Instant>,
    /// SIGSTOPped: SIGCONT is due then.
    resume_at: Option<Instant>,
    starts: u32,
}

impl Supervised {
    fn start(&mut self) {
        let extra: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let (log, data) = (format!("{}.log", self.role), format!("data-{}", self.role));
        self.process = Some(Dtle::run_with(&self.dir, &self.job, &log, &data, &extra));
        self.starts += 1;
        self.killed_by_us = false;
        self.restart_at = None;
    }

    fn running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| p.try_exited().is_none())
    }

    fn log_tail(&self, lines: usize) -> String {
        tail(&read_log(&self.dir.join(format!("{}.log", self.role))), lines)
    }
}

struct Supervisor {
    label: String,
    procs: Vec<Supervised>,
    rng: Rng,
    /// Exits the campaign did not cause: each needs a human (a definite error) or is a defect.
    unexpected_exits: Vec<String>,
}

impl Supervisor {
    fn tick(&mut self) {
        let now = Instant::now();
        for p in self.procs.iter_mut() {
            if p.resume_at.is_some_and(|t| t <= now) {
                p.resume_at = None;
                if p.running() {
                    send_signal(p.process.as_ref().unwrap(), "CONT");
                }
            }
            if let Some(status) = p.process.as_mut().and_then(|d| d.try_exited()) {
                if !p.killed_by_us {
                    let what = format!(
                        "{} {} exited by itself ({status}) in its run #{}; log tail:\n{}",
                        self.label,
                        p.role,
                        p.starts,
                        p.log_tail(40)
                    );
                    println!("[{}] UNEXPECTED EXIT: {what}", self.label);
                    self.unexpected_exits.push(what);
                }
                p.process = None;
                p.resume_at = None;
                let delay = Duration::from_millis(1000 + self.rng.below(4000));
                p.restart_at = Some(now + delay);
                println!("[{}] supervisor: {} exited ({status}); restart in {delay:.1?}", self.label, p.role);
            }
            if p.process.is_none() && p.restart_at.is_some_and(|t| t <= now) {
                p.start();
                println!("[{}] supervisor: {} started (run #{})", self.label, p.role, p.starts);
            }
        }
    }

    /// `kill -9` of the running processes among `roles`; false when none was running.
    fn kill(&mut self, roles: &[&str]) -> bool {
        let mut any = false;
        for p in self.procs.iter_mut().filter(|p| roles.contains(&p.role)) {
            if p.running() {
                p.killed_by_us = true;
                p.process.as_mut().unwrap().kill9();
                any = true;
            }
        }
        any
    }

    /// SIGSTOP of the running, not yet stopped processes among `roles`, SIGCONT after `pause`.
    fn pause(&mut self, roles: &[&str], pause: Duration) -> bool {
        let mut any = false;
        for p in self.procs.iter_mut().filter(|p| roles.contains(&p.role)) {
            if p.running() && p.resume_at.is_none() {
                send_signal(p.process.as_ref().unwrap(), "STOP");
                p.resume_at = Some(Instant::now() + pause);
                any = true;
            }
        }
        any
    }

    /// No more faults: resume what is stopped and start what waits for a restart, now.
    fn release(&mut self) {
        let now = Instant::now();
        for p in self.procs.iter_mut() {
            if p.resume_at.is_some() {
                p.resume_at = Some(now);
            }
            if p.restart_at.is_some() {
                p.restart_at = Some(now);
            }
        }
        self.tick();
    }

    /// True when every process among `roles` runs and is not stopped.
    fn roles_up(&mut self, roles: &[&str]) -> bool {
        self.procs.iter_mut().filter(|p| roles.contains(&p.role)).all(|p| p.running() && p.resume_at.is_none())
    }

    fn all_running(&mut self) -> bool {
        self.procs.iter_mut().all(|p| p.running() && p.resume_at.is_none())
    }

    fn describe(&mut self) -> String {
        let parts: Vec<String> = self
            .procs
            .iter_mut()
            .map(|p| {
                let state = if p.running() {
                    if p.resume_at.is_some() {
                        "stopped"
                    } else {
                        "running"
                    }
                } else {
                    "down"
                };
                format!("{} {state} (pid {:?}, run #{})", p.role, p.process.as_ref().map(|d| d.pid()), p.starts)
            })
            .collect();
        parts.join(", ")
    }
}

/// `kill -SIG pid`; a process that has just exited is the supervisor's next tick's business, not an error here.
fn send_signal(d: &Dtle, sig: &str) {
    let _ = std::process::Command::new("kill").arg(format!("-{sig}")).arg(d.pid().to_string()).status();
}

type SharedSupervisor = Arc<Mutex<Supervisor>>;

/// Ticks the supervisor every 100 ms until it is dropped.
fn spawn_supervisor_loop(sup: &SharedSupervisor) {
    let weak = Arc::downgrade(sup);
    tokio::spawn(async move {
        loop {
            match weak.upgrade() {
                Some(s) => s.lock().unwrap().tick(),
                None => return,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// SIGINT to every process, each must exit with 0; the problems otherwise.
async fn stop_cleanly(procs: Vec<Supervised>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut procs = procs;
    for p in procs.iter_mut() {
        if p.running() {
            send_signal(p.process.as_ref().unwrap(), "INT");
        }
    }
    for p in procs.iter_mut() {
        let Some(d) = p.process.as_mut() else { continue };
        let started = Instant::now();
        let status = loop {
            if let Some(st) = d.try_exited() {
                break Some(st);
            }
            if started.elapsed() > DEADLINE {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        match status {
            Some(st) if st.code() == Some(0) => {}
            Some(st) => problems.push(format!("{} after SIGINT: {st}; log tail:\n{}", p.role, p.log_tail(30))),
            None => problems.push(format!("{} did not exit within {DEADLINE:?} of SIGINT", p.role)),
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Server faults

/// The pid in a pid file, if its process is alive.
fn live_pid(pid_file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// `kill -9` of the process in `pid_file`, then waits until it is gone.
async fn kill9_server(pid_file: &Path) -> Result<u32, String> {
    let pid = live_pid(pid_file).ok_or_else(|| format!("no live process in {}", pid_file.display()))?;
    let st = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().map_err(|e| e.to_string())?;
    if !st.success() {
        return Err(format!("kill -9 {pid} failed"));
    }
    let started = Instant::now();
    while Path::new(&format!("/proc/{pid}/stat")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z")
    {
        if started.elapsed() > Duration::from_secs(20) {
            return Err(format!("pid {pid} still alive 20 s after kill -9"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(pid)
}

/// kill -9 of the server in `pid_file`, down for `outage`, then `tests/<script> start <port>`; a note of what happened.
async fn kill9_and_start(pid_file: &Path, outage: Duration, script: &str, port: &str) -> Result<String, String> {
    let pid = kill9_server(pid_file).await?;
    tokio::time::sleep(outage).await;
    try_run_script(script, &["start", port]).await?;
    Ok(format!("pid {pid}, down {outage:.1?}"))
}

struct Infra {
    dst_port: u16,
    dst_instance: String,
    nats_port: u16,
    consul_port: u16,
    nats_url: String,
    consul_addr: String,
}

impl Infra {
    async fn start_target(&self) -> Result<(), String> {
        let (port, id) = (self.dst_port.to_string(), DST_SERVER_ID.to_string());
        try_run_script("mariadb.sh", &["start", &self.dst_instance, &port, &id]).await
    }

    /// Runs a server fault; a short note of what happened.
    async fn fault(&self, kind: FaultKind, outage: Duration) -> Result<String, String> {
        let run = test_run_dir();
        let (nats, consul) = (self.nats_port, self.consul_port);
        let nats_port = nats.to_string();
        let consul_port = consul.to_string();
        match kind {
            FaultKind::RestartNats => try_run_script("nats.sh", &["restart", &nats_port]).await.map(|_| String::new()),
            FaultKind::KillNats => {
                let pid_file = run.join(format!("nats-{nats}")).join("pid");
                kill9_and_start(&pid_file, outage, "nats.sh", &nats_port).await
            }
            FaultKind::RestartConsul => {
                try_run_script("consul.sh", &["restart", &consul_port]).await.map(|_| String::new())
            }
            FaultKind::KillConsul => {
                let pid_file = run.join(format!("consul-{consul}")).join("consul.pid");
                kill9_and_start(&pid_file, outage, "consul.sh", &consul_port).await
            }
            FaultKind::RestartTarget => {
                try_run_script("mariadb.sh", &["stop", &self.dst_instance]).await?;
                tokio::time::sleep(outage).await;
                self.start_target().await?;
                Ok(format!("down {outage:.1?}"))
            }
            FaultKind::KillTarget => {
                let pid = kill9_server(&run.join(&self.dst_instance).join("mariadbd.pid")).await?;
                tokio::time::sleep(outage).await;
                self.start_target().await?;
                Ok(format!("mariadbd pid {pid}, down {outage:.1?}"))
            }
            other => Err(format!("{} is not a server fault", other.name())),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One mode's run

#[derive(Default)]
struct ModeReport {
    mode: &'static str,
    seed: u64,
    faults: BTreeMap<&'static str, usize>,
    /// Planned faults that found nothing to hit (the process was already down).
    skipped_faults: usize,
    during_copy_hits: usize,
    inside_big_tx_hits: usize,
    load_txs: u64,
    big_txs: u64,
    big_tx_rows: u64,
    dtle_starts: u32,
    converged_after: Option<Duration>,
    tables: usize,
    rows_compared: u64,
    kafka: Option<KafkaStats>,
    failures: Vec<String>,
    dir: PathBuf,
}

impl ModeReport {
    fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    fn fault_summary(&self) -> String {
        let parts: Vec<String> = self.faults.iter().map(|(k, n)| format!("{k} x{n}")).collect();
        parts.join(", ")
    }

    fn print(&self) {
        println!("----- chaos mode {} (seed {}) -----", self.mode, self.seed);
        println!("  faults: {} = {}", self.faults.values().sum::<usize>(), self.fault_summary());
        println!(
            "  timed: {} during the full copy, {} inside a big transaction's apply; skipped (nothing to hit): {}",
            self.during_copy_hits, self.inside_big_tx_hits, self.skipped_faults
        );
        println!(
            "  load: {} transactions, {} big transactions ({} rows inserted by them); dtle process starts: {}",
            self.load_txs, self.big_txs, self.big_tx_rows, self.dtle_starts
        );
        match self.converged_after {
            Some(d) => println!("  converged {d:.1?} after the last fault"),
            None => println!("  did not converge"),
        }
        println!("  compared: {} tables, {} source rows", self.tables, self.rows_compared);
        if let Some(k) = &self.kafka {
            println!("  kafka: {k}");
        }
        println!("  logs: {}", self.dir.display());
        if self.passed() {
            println!("  result: PASS");
        } else {
            println!("  result: FAIL");
            for f in &self.failures {
                println!("  - {f}");
            }
        }
    }
}

struct ModeRun {
    mode: Mode,
    s: Servers,
    schema: String,
    size: DataSize,
    infra: Arc<Infra>,
    sup: SharedSupervisor,
    /// A target connection for polling, reopened after the target restarted.
    dst: Option<Conn>,
    kafka: Option<KafkaTail>,
}

impl ModeRun {
    /// A number from the target, `None` while it is unreachable.
    async fn target_u64(&mut self, sql: &str) -> Option<u64> {
        if self.dst.is_none() {
            self.dst = self.s.try_conn(self.s.dst).await.ok();
        }
        let conn = self.dst.as_mut()?;
        match conn.query_first::<Option<u64>, _>(sql).await {
            Ok(v) => Some(v.flatten().unwrap_or(0)),
            Err(mysql_async::Error::Server(e)) if e.code == 1146 || e.code == 1049 => Some(0),
            Err(_) => {
                self.dst = None;
                None
            }
        }
    }

    async fn target_stage(&mut self) -> Option<String> {
        let job = self.mode.job();
        if self.dst.is_none() {
            self.dst = self.s.try_conn(self.s.dst).await.ok();
        }
        let conn = self.dst.as_mut()?;
        let sql = format!("SELECT stage FROM dtle.replication_position WHERE job_name = '{job}'");
        match conn.query_first::<String, _>(sql).await {
            Ok(stage) => stage,
            Err(_) => {
                self.dst = None;
                None
            }
        }
    }

    /// Waits until the full copy is under way (MySQL target: some rows there and no incremental position yet);
    /// true when it still ran.
    async fn wait_during_full_copy(&mut self, rng: &mut Rng) -> bool {
        if self.mode == Mode::Kafka {
            tokio::time::sleep(Duration::from_millis(1000 + rng.below(2000))).await;
            return true;
        }
        let table = format!("{}.pk", self.schema);
        let want = self.size.pk / 20;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(90) {
            if self.target_stage().await.as_deref() == Some("job_stage_incr") {
                return false;
            }
            if self.target_u64(&format!("SELECT COUNT(*) FROM {table}")).await.unwrap_or(0) >= want {
                return self.target_stage().await.as_deref() != Some("job_stage_incr");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Has the source commit a big transaction, then waits until the target applies it (MySQL target: an open
    /// transaction that changed many rows). True when the fault will land inside the apply; false when the target's
    /// position passed it unseen (or after 60 s).
    async fn wait_inside_big_tx(&mut self, load: &mut ChaosLoad, rng: &mut Rng) -> Result<bool, String> {
        let (n, seq) = load.request_big_tx().await?;
        println!("[{}] big transaction #{n} (0-{SRC_SERVER_ID}-{seq}) committed on the source", self.mode.name());
        if self.mode == Mode::Kafka {
            tokio::time::sleep(Duration::from_millis(100 + rng.below(900))).await;
            return Ok(true);
        }
        let position_seq = format!(
            "SELECT CAST(SUBSTRING_INDEX(gtid_set, '-', -1) AS UNSIGNED) FROM dtle.replication_position \
             WHERE job_name = '{}'",
            self.mode.job()
        );
        let started = Instant::now();
        let mut polls = 0u64;
        while started.elapsed() < Duration::from_secs(60) {
            let sql = "SELECT MAX(trx_rows_modified) FROM information_schema.INNODB_TRX";
            if self.target_u64(sql).await.unwrap_or(0) >= BIG_TX_APPLY_ROWS {
                return Ok(true);
            }
            polls += 1;
            if polls.is_multiple_of(20) && self.target_u64(&position_seq).await.unwrap_or(0) >= seq {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(false)
    }

    /// Fires one fault; `Ok(false)` when it had nothing to hit.
    async fn inject(&mut self, f: &PlannedFault) -> Result<(bool, String), String> {
        let roles = f.kind.roles();
        if !roles.is_empty() {
            // A process fault hits a running process: wait (bounded) for the supervisor's restart or SIGCONT.
            let started = Instant::now();
            while !self.sup.lock().unwrap().roles_up(roles) && started.elapsed() < Duration::from_secs(15) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let mut sup = self.sup.lock().unwrap();
            return Ok(if f.kind.is_pause() {
                (sup.pause(roles, f.outage), format!("for {:.1?}", f.outage))
            } else {
                (sup.kill(roles), String::new())
            });
        }
        let note = self.infra.fault(f.kind, f.outage).await?;
        self.dst = None;
        Ok((true, note))
    }

    /// Waits for the job to converge after the last fault: the target's position reaches the source's (MySQL), or
    /// every table rebuilt from the Kafka events equals the source.
    async fn converge(&mut self, last_fault: Instant, report: &mut ModeReport) -> Result<(), String> {
        let label = self.mode.name();
        let w = Instant::now();
        loop {
            if self.sup.lock().unwrap().all_running() {
                break;
            }
            if w.elapsed() > Duration::from_secs(30) {
                let state = self.sup.lock().unwrap().describe();
                return Err(format!("processes not all running 30 s after the faults ended: {state}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut src = self.s.src_conn().await;
        let src_pos = gtid_binlog_pos(&mut src).await;
        let want =
            gtid_seq(&src_pos, 0).ok_or_else(|| format!("source @@gtid_binlog_pos {src_pos:?} has no domain 0"))?;
        println!("[{label}] waiting for convergence to the source's {src_pos}");
        let mut last_print = Instant::now();
        // The target's position (MySQL) or the events read (Kafka): progress keeps the wait going.
        let mut progress_mark = String::new();
        let mut last_progress = last_fault;
        loop {
            let last_note: String;
            let done = if self.mode == Mode::Kafka {
                let kafka = self.kafka.as_mut().unwrap();
                kafka.drain()?;
                let (stats, diffs) = kafka.compare(&mut src, &self.schema).await;
                last_note = if diffs.is_empty() { String::new() } else { diffs.join("; ") };
                report.kafka = Some(stats);
                diffs.is_empty()
            } else {
                match self.s.try_conn(self.s.dst).await {
                    Ok(mut dst) => {
                        let p = position_row(&mut dst, &self.mode.job()).await;
                        let _ = dst.disconnect().await;
                        last_note = format!("position {p:?}");
                        if let Some(p) = &p {
                            if p.gtid_set != progress_mark {
                                progress_mark = p.gtid_set.clone();
                                last_progress = Instant::now();
                            }
                        }
                        p.is_some_and(|p| {
                            p.stage == "job_stage_incr" && gtid_seq(&p.gtid_set, 0).is_some_and(|s| s >= want)
                        })
                    }
                    Err(e) => {
                        last_note = e;
                        false
                    }
                }
            };
            if done {
                report.converged_after = Some(last_fault.elapsed());
                return Ok(());
            }
            if self.mode == Mode::Kafka && last_note != progress_mark {
                progress_mark = last_note.clone();
                last_progress = Instant::now();
            }
            if last_progress.elapsed() > CONVERGE_LIMIT || last_fault.elapsed() > CONVERGE_CAP {
                let state = self.sup.lock().unwrap().describe();
                let tails: Vec<String> = self
                    .sup
                    .lock()
                    .unwrap()
                    .procs
                    .iter()
                    .map(|p| format!("--- {} log tail:\n{}", p.role, p.log_tail(25)))
                    .collect();
                return Err(format!(
                    "no convergence: no progress for {CONVERGE_LIMIT:?} or {CONVERGE_CAP:?} after the last fault \
                     (source {src_pos}; last: {}); \
                     processes: {state}\n{}",
                    shorten_note(&last_note),
                    tails.join("\n")
                ));
            }
            if last_print.elapsed() > Duration::from_secs(15) {
                println!("[{label}] still converging: {}", shorten_note(&last_note));
                last_print = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(if self.mode == Mode::Kafka { 2000 } else { 250 })).await;
        }
    }

    /// Compares every table of the job on the source and the target.
    async fn compare_mysql(&mut self, report: &mut ModeReport) -> Vec<String> {
        let mut src = self.s.src_conn().await;
        let mut dst = self.s.dst_conn().await;
        let mut diffs = Vec::new();
        for t in &TABLES {
            let table = format!("{}.{}", self.schema, t.name);
            let (n, m) = (count(&mut src, &table).await, count_if_exists(&mut dst, &table).await);
            let checksum = format!("CHECKSUM TABLE {table}");
            let (a, b) = (query_raw(&mut src, &checksum).await, query_raw(&mut dst, &checksum).await);
            let (a, b) = (show_row(&a[0]), show_row(&b[0]));
            report.tables += 1;
            report.rows_compared += n;
            println!("[{}] {table}: {n} rows on the source, {m} on the target; checksums {a} / {b}", self.mode.name());
            if n != m || a != b || t.order_by.is_none() {
                if let Some(d) = table_diff(&mut src, &mut dst, &table, t.order_by).await {
                    diffs.push(format!("{table} differs (count {n} vs {m}, checksum {a} vs {b}):\n{d}"));
                } else if n != m || a != b {
                    diffs.push(format!("{table}: count {n} vs {m}, checksum {a} vs {b}, but the dumps are equal"));
                }
            }
        }
        diffs
    }
}

fn shorten_note(s: &str) -> String {
    if s.len() > 600 {
        let mut end = 600;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s.to_string()
    }
}

/// The directory for a mode's job file and logs, emptied first.
fn mode_dir(seed: u64, mode: Mode) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos").join(format!("{seed}-{}", mode.name()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

async fn run_mode(
    mode: Mode,
    knobs: &Knobs,
    s: Servers,
    infra: Arc<Infra>,
    kafka_brokers: Option<String>,
) -> ModeReport {
    let label = mode.name();
    let seed = mode.seed(knobs.seed);
    let dir = mode_dir(knobs.seed, mode);
    let mut report = ModeReport { mode: label, seed: knobs.seed, dir: dir.clone(), ..Default::default() };
    let plan = plan_faults(mode, knobs.seed, knobs.faults);
    println!(
        "===== chaos mode {label}: seed {} (mode seed {seed}), {} faults, logs in {}",
        knobs.seed,
        plan.len(),
        dir.display()
    );
    for (i, f) in plan.iter().enumerate() {
        println!("  plan {}: {} {:?} (outage {:.1?})", i + 1, f.kind.name(), f.timing, f.outage);
    }

    let (schema, job_name) = (mode.job(), mode.job());
    let size = DataSize::for_mode(mode);
    let mut src = s.src_conn().await;
    create_source_tables(&mut src, &schema, size).await;
    println!("[{label}] {} rows on the source before the job starts", size.total());

    let mut src_config =
        format!("{}\nGtid = \"\"\nChunkSize = 2000\nDumpEntryLimit = {DUMP_ENTRY_LIMIT}", replicate_schema(&schema));
    if mode == Mode::Parallel {
        src_config.push_str("\nParallelWorkers = 4");
    }
    let mut kafka = None;
    let hcl = match mode {
        Mode::Kafka => {
            let brokers = kafka_brokers.expect("kafka brokers");
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            let prefix = format!("chaos{}", nanos % 1_000_000_000_000);
            kafka = Some(KafkaTail::new(&brokers, &prefix, &schema));
            kafka_job_hcl(
                &job_name,
                &src_config,
                &s.conn_hcl(s.src),
                &format!("Topic = \"{prefix}\"\nBrokers = [\"{brokers}\"]"),
            )
        }
        _ => {
            let mut dst = s.dst_conn().await;
            reset_target_job(&mut dst, &schema, &job_name).await;
            job_hcl(&job_name, &src_config, &s.conn_hcl(s.src), &s.conn_hcl(s.dst))
        }
    };
    if mode == Mode::Nats {
        consul_delete_tree(&infra.consul_addr, &format!("dtle/{job_name}"));
    }
    let job = dir.join("job.hcl");
    write_file(&job, &hcl);

    let supervised = |role: &'static str, args: Vec<String>| Supervised {
        role,
        dir: dir.clone(),
        job: job.clone(),
        args,
        process: None,
        killed_by_us: false,
        restart_at: Some(Instant::now()),
        resume_at: None,
        starts: 0,
    };
    let procs = if mode == Mode::Nats {
        let link = |only: &str| -> Vec<String> {
            ["--transport", "nats", "--nats", &infra.nats_url, "--only", only, "--consul", &infra.consul_addr]
                .iter()
                .map(|a| a.to_string())
                .chain(["--ack-timeout".to_string(), "10".to_string()])
                .collect()
        };
        vec![supervised("dest", link("dest")), supervised("src", link("src"))]
    } else {
        vec![supervised("dtle", Vec::new())]
    };
    let sup: SharedSupervisor = Arc::new(Mutex::new(Supervisor {
        label: label.to_string(),
        procs,
        rng: Rng::new(seed ^ 0xA5A5),
        unexpected_exits: Vec::new(),
    }));
    sup.lock().unwrap().tick();
    spawn_supervisor_loop(&sup);

    let mut run =
        ModeRun { mode, s: s.clone(), schema: schema.clone(), size, infra, sup: sup.clone(), dst: None, kafka };
    let mut load = ChaosLoad::start(&s, &schema, size, seed);
    let mut timing_rng = Rng::new(seed ^ 0x7777);
    let t0 = Instant::now();
    let mut last_fault = Instant::now();
    for (i, f) in plan.iter().enumerate() {
        let timed = match f.timing {
            Timing::DuringFullCopy => {
                let hit = run.wait_during_full_copy(&mut timing_rng).await;
                report.during_copy_hits += hit as usize;
                if hit {
                    "during the full copy"
                } else {
                    "after the full copy (it was done)"
                }
            }
            Timing::InsideBigTx => match run.wait_inside_big_tx(&mut load, &mut timing_rng).await {
                Ok(true) => {
                    report.inside_big_tx_hits += 1;
                    "inside a big transaction's apply"
                }
                Ok(false) => "after a big transaction (its apply not seen)",
                Err(e) => {
                    report.failures.push(e);
                    break;
                }
            },
            Timing::AfterPause(d) => {
                tokio::time::sleep(d).await;
                "after a pause"
            }
        };
        if let Some(e) = load.failed().await {
            report.failures.push(e);
            break;
        }
        match run.inject(f).await {
            Ok((true, note)) => {
                *report.faults.entry(f.kind.name()).or_default() += 1;
                println!(
                    "[{label}] fault {}/{} at +{:.1?}: {} {timed} {note}",
                    i + 1,
                    plan.len(),
                    t0.elapsed(),
                    f.kind.name()
                );
            }
            Ok((false, _)) => {
                report.skipped_faults += 1;
                println!(
                    "[{label}] fault {}/{}: {} skipped (nothing running to hit)",
                    i + 1,
                    plan.len(),
                    f.kind.name()
                );
            }
            Err(e) => {
                report.failures.push(format!("fault {} ({}) could not be run: {e}", i + 1, f.kind.name()));
                break;
            }
        }
        last_fault = Instant::now();
    }

    // The end: no more load or faults; everything running; the job converges by itself.
    match load.stop().await {
        Ok((txs, big, big_rows)) => {
            report.load_txs = txs;
            report.big_txs = big;
            report.big_tx_rows = big_rows;
        }
        Err(e) => report.failures.push(e),
    }
    sup.lock().unwrap().release();
    if report.failures.is_empty() {
        match run.converge(last_fault, &mut report).await {
            Ok(()) => {
                println!("[{label}] converged {:.1?} after the last fault", report.converged_after.unwrap());
                if mode == Mode::Kafka {
                    let k = report.kafka.as_ref().unwrap();
                    report.tables = k.tables;
                    report.rows_compared = k.rows;
                } else {
                    let diffs = run.compare_mysql(&mut report).await;
                    report.failures.extend(diffs);
                }
            }
            Err(e) => report.failures.push(e),
        }
    }
    let procs = {
        let mut sup = sup.lock().unwrap();
        sup.tick();
        report.failures.extend(sup.unexpected_exits.drain(..).map(|e| format!("unexpected exit: {e}")));
        report.dtle_starts = sup.procs.iter().map(|p| p.starts).sum();
        std::mem::take(&mut sup.procs)
    };
    drop(sup);
    for problem in stop_cleanly(procs).await {
        report.failures.push(format!("clean stop: {problem}"));
    }
    report
}

/// Runs a mode in its own task, so that a panic (a failed SQL helper, ...) fails this mode only.
async fn run_mode_guarded(
    mode: Mode,
    knobs: &Arc<Knobs>,
    s: &Servers,
    infra: &Arc<Infra>,
    kafka: Option<String>,
) -> ModeReport {
    let (k, s, i) = (knobs.clone(), s.clone(), infra.clone());
    let task = tokio::spawn(async move { run_mode(mode, &k, s, i, kafka).await });
    match task.await {
        Ok(report) => report,
        Err(e) => {
            let why = match e.try_into_panic() {
                Ok(p) => p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic".into()),
                Err(e) => e.to_string(),
            };
            ModeReport {
                mode: mode.name(),
                seed: knobs.seed,
                dir: Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos").join(format!(
                    "{}-{}",
                    knobs.seed,
                    mode.name()
                )),
                failures: vec![format!("the mode panicked: {why}")],
                ..Default::default()
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Kafka: consume every topic of the job, rebuild the tables

#[derive(serde::Deserialize)]
struct Envelope {
    payload: Payload,
}

#[derive(serde::Deserialize)]
struct Payload {
    op: String,
    before: Option<serde_json::Map<String, Json>>,
    after: Option<serde_json::Map<String, Json>>,
    source: EventSource,
}

#[derive(serde::Deserialize)]
struct EventSource {
    gtid: Option<String>,
    file: Option<String>,
    pos: Option<u64>,
    row: Option<u64>,
    ts_ms: Option<u64>,
}

/// One row event, its row images in the table's column order.
struct KafkaEvent {
    op: u8,
    before: Option<Vec<Json>>,
    after: Option<Vec<Json>>,
    gtid: Option<String>,
    file: String,
    pos: u64,
    row: u64,
    ts_ms: u64,
}

impl KafkaEvent {
    fn parse(bytes: &[u8], table: &TableDef) -> Result<KafkaEvent, String> {
        let env: Envelope = serde_json::from_slice(bytes).map_err(|e| format!("not a Debezium envelope: {e}"))?;
        let image = |m: Option<serde_json::Map<String, Json>>| -> Option<Vec<Json>> {
            m.map(|m| table.columns.iter().map(|(c, _)| m.get(*c).cloned().unwrap_or(Json::Null)).collect())
        };
        let p = env.payload;
        Ok(KafkaEvent {
            op: p.op.bytes().next().unwrap_or(b'?'),
            before: image(p.before),
            after: image(p.after),
            gtid: p.source.gtid,
            file: p.source.file.unwrap_or_default(),
            pos: p.source.pos.unwrap_or(0),
            row: p.source.row.unwrap_or(0),
            ts_ms: p.source.ts_ms.unwrap_or(0),
        })
    }

    fn position(&self) -> (&str, u64) {
        (&self.file, self.pos)
    }
}

/// What the Kafka side held at the comparison.
#[derive(Default)]
struct KafkaStats {
    messages: u64,
    tombstones: u64,
    snapshot_events: u64,
    /// Full copies seen (an interrupted copy is sent again from the start).
    copies: usize,
    change_events: u64,
    duplicate_changes: u64,
    /// Of those, events whose de-duplication key (gtid, pos, row, op) repeats at another binlog file: distinct
    /// changes the documented key cannot tell apart (must stay 0).
    colliding_keys: u64,
    /// `r` events not counted: of earlier copies, or the same key again.
    duplicate_snapshot_events: u64,
    tables: usize,
    rows: u64,
}

impl std::fmt::Display for KafkaStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages ({} tombstones): {} r events in {} full copies ({} of them re-sent or of earlier copies), \
             {} c/u/d events ({} duplicates by (gtid, pos, row, op), {} of them in another binlog file)",
            self.messages,
            self.tombstones,
            self.snapshot_events,
            self.copies,
            self.duplicate_snapshot_events,
            self.change_events,
            self.duplicate_changes,
            self.colliding_keys
        )
    }
}

/// A consumer per topic of the job, reading from the beginning; the events so far, per table and partition.
struct KafkaTail {
    brokers: String,
    topics: Vec<(String, Option<rdkafka::consumer::BaseConsumer>)>,
    /// Per table: partition → events in partition order.
    events: Vec<BTreeMap<i32, Vec<KafkaEvent>>>,
    messages: u64,
    tombstones: u64,
}

impl KafkaTail {
    fn new(brokers: &str, prefix: &str, schema: &str) -> KafkaTail {
        KafkaTail {
            brokers: brokers.to_string(),
            topics: TABLES.iter().map(|t| (format!("{prefix}.{schema}.{}", t.name), None)).collect(),
            events: TABLES.iter().map(|_| BTreeMap::new()).collect(),
            messages: 0,
            tombstones: 0,
        }
    }

    /// Reads every message produced so far.
    fn drain(&mut self) -> Result<(), String> {
        tokio::task::block_in_place(|| self.drain_blocking())
    }

    fn drain_blocking(&mut self) -> Result<(), String> {
        use rdkafka::config::ClientConfig;
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::{Message, Offset, TopicPartitionList};
        for (i, (topic, consumer)) in self.topics.iter_mut().enumerate() {
            if consumer.is_none() {
                let c: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", &self.brokers)
                    .set("group.id", "dtle-chaos-reader")
                    .set("enable.auto.commit", "false")
                    .set("enable.partition.eof", "false")
                    .create()
                    .map_err(|e| format!("kafka consumer: {e}"))?;
                let Ok(md) = c.fetch_metadata(Some(topic), Duration::from_secs(5)) else { continue };
                let mut tpl = TopicPartitionList::new();
                for t in md.topics().iter().filter(|t| t.error().is_none()) {
                    for p in t.partitions() {
                        tpl.add_partition_offset(topic, p.id(), Offset::Beginning).map_err(|e| e.to_string())?;
                    }
                }
                if tpl.count() == 0 {
                    continue;
                }
                c.assign(&tpl).map_err(|e| format!("assign {topic}: {e}"))?;
                *consumer = Some(c);
            }
            let c = consumer.as_ref().unwrap();
            while let Some(m) = c.poll(Duration::from_millis(300)) {
                let m = m.map_err(|e| format!("consuming {topic}: {e}"))?;
                self.messages += 1;
                let Some(bytes) = m.payload() else {
                    self.tombstones += 1;
                    continue;
                };
                let ev = KafkaEvent::parse(bytes, &TABLES[i])
                    .map_err(|e| format!("{topic} partition {} offset {}: {e}", m.partition(), m.offset()))?;
                self.events[i].entry(m.partition()).or_default().push(ev);
            }
        }
        Ok(())
    }

    /// Rebuilds each table from its events (the last full copy's `r` events, de-duplicated on the key, then the
    /// `c`/`u`/`d` events after that copy's position, de-duplicated on (gtid, row, op)) and compares it with the
    /// source. The statistics and the differences.
    async fn compare(&self, src: &mut Conn, schema: &str) -> (KafkaStats, Vec<String>) {
        let mut stats = KafkaStats { messages: self.messages, tombstones: self.tombstones, ..Default::default() };
        let mut diffs = Vec::new();
        for (i, t) in TABLES.iter().enumerate() {
            let events = &self.events[i];
            // The last full copy: the latest snapshot start time among the r events.
            let copies: HashSet<(String, u64, u64)> =
                events.values().flatten().filter(|e| e.op == b'r').map(|e| (e.file.clone(), e.pos, e.ts_ms)).collect();
            stats.copies = stats.copies.max(copies.len());
            let Some(last_copy) = copies.iter().max_by_key(|c| c.2).cloned() else {
                diffs.push(format!("{}: no full-copy events yet", t.name));
                continue;
            };
            let copy_position = (last_copy.0.as_str(), last_copy.1);
            let key_of =
                |row: &[Json]| -> String { Json::Array(t.key.iter().map(|k| row[*k].clone()).collect()).to_string() };
            let mut keyed: HashMap<String, Vec<Json>> = HashMap::new();
            let mut keyless: Vec<Vec<Json>> = Vec::new();
            for e in events.values().flatten().filter(|e| e.op == b'r') {
                stats.snapshot_events += 1;
                let Some(row) = e.after.clone() else { continue };
                if (e.file.as_str(), e.pos, e.ts_ms) != (copy_position.0, copy_position.1, last_copy.2) {
                    stats.duplicate_snapshot_events += 1;
                } else if t.key.is_empty() {
                    keyless.push(row);
                } else if keyed.insert(key_of(&row), row).is_some() {
                    stats.duplicate_snapshot_events += 1;
                }
            }
            // The documented de-duplication key, and the position each key was first seen at: the same key at
            // another `source.pos` is not a re-sent event but a different change with a colliding key.
            let mut seen: HashMap<(String, u64, u64, u8), (String, u64)> = HashMap::new();
            let mut anomalies = Vec::new();
            // In source order: rows of a keyless table have no Kafka key (as with Debezium), so they are spread over
            // partitions and only their position and row index order them.
            let mut changes: Vec<&KafkaEvent> = events.values().flatten().filter(|e| e.op != b'r').collect();
            changes.sort_by(|a, b| (a.position(), a.row).cmp(&(b.position(), b.row)));
            for e in changes {
                stats.change_events += 1;
                let id = (e.gtid.clone().unwrap_or_else(|| e.file.clone()), e.pos, e.row, e.op);
                if let Some(first) = seen.get(&id) {
                    stats.duplicate_changes += 1;
                    if (first.0.as_str(), first.1) != e.position() {
                        stats.colliding_keys += 1;
                    }
                    continue;
                }
                seen.insert(id, (e.file.clone(), e.pos));
                if e.position() <= copy_position {
                    continue; // in the copy already
                }
                if t.key.is_empty() {
                    if let Some(before) = &e.before {
                        match keyless.iter().position(|r| r == before) {
                            Some(at) => {
                                keyless.swap_remove(at);
                            }
                            None => anomalies.push(format!("{} of a row not there: {before:?}", e.op as char)),
                        }
                    }
                    if let Some(after) = &e.after {
                        keyless.push(after.clone());
                    }
                } else {
                    if let Some(before) = &e.before {
                        if e.op == b'd' && keyed.remove(&key_of(before)).is_none() {
                            anomalies.push(format!("delete of a key not there: {:?}", key_of(before)));
                        }
                    }
                    if let Some(after) = &e.after {
                        keyed.insert(key_of(after), after.clone());
                    }
                }
            }
            // The source, as the JSON values the events carry.
            let table = format!("{schema}.{}", t.name);
            let source_rows: Vec<Vec<Json>> =
                table_rows(src, &table, t.order_by).await.iter().map(|r| json_row(r, t)).collect();
            stats.tables += 1;
            stats.rows += source_rows.len() as u64;
            let as_text = |rows: Vec<Vec<Json>>| -> Vec<String> {
                let mut rows: Vec<String> = rows.into_iter().map(|r| Json::Array(r).to_string()).collect();
                rows.sort_unstable();
                rows
            };
            let rebuilt = as_text(if t.key.is_empty() { keyless } else { keyed.into_values().collect() });
            let wanted = as_text(source_rows);
            if rebuilt != wanted {
                if stats.colliding_keys > 0 {
                    anomalies.insert(
                        0,
                        format!(
                            "{} events repeat the de-duplication key (source.gtid, source.row, op) of an event at another \
                             source.pos, e.g. rows of one big transaction sent in parts: the key does not identify a change",
                            stats.colliding_keys
                        ),
                    );
                }
                let (missing, extra) = multiset_difference(&wanted, &rebuilt);
                diffs.push(format!(
                    "{table}: the source has {} rows, the events rebuild {}: {} missing (e.g. {:?}), {} extra (e.g. {:?}){}",
                    wanted.len(),
                    rebuilt.len(),
                    missing.len(),
                    missing.first(),
                    extra.len(),
                    extra.first(),
                    if anomalies.is_empty() { String::new() } else { format!("; {} anomalies, first: {}", anomalies.len(), anomalies[0]) }
                ));
            }
        }
        (stats, diffs)
    }
}

/// A source row (text protocol) as the JSON values of the Debezium envelope: numbers for INT columns, strings for
/// VARCHAR, null for NULL.
fn json_row(row: &RawRow, t: &TableDef) -> Vec<Json> {
    row.iter()
        .zip(t.columns)
        .map(|(v, (_, kind))| match (v, kind) {
            (None, _) => Json::Null,
            (Some(b), Kind::Int) => {
                let s = String::from_utf8_lossy(b);
                s.parse::<i64>().map(Json::from).unwrap_or_else(|_| Json::String(s.into_owned()))
            }
            (Some(b), Kind::Text) => Json::String(String::from_utf8_lossy(b).into_owned()),
        })
        .collect()
}

/// Rows of `a` not in `b` and rows of `b` not in `a`, counting repeats.
fn multiset_difference<'a>(a: &'a [String], b: &'a [String]) -> (Vec<&'a str>, Vec<&'a str>) {
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for r in a {
        *counts.entry(r).or_default() += 1;
    }
    for r in b {
        *counts.entry(r).or_default() -= 1;
    }
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    for (row, n) in counts {
        only_a.extend(std::iter::repeat_n(row, n.max(0) as usize));
        only_b.extend(std::iter::repeat_n(row, (-n).max(0) as usize));
    }
    (only_a, only_b)
}

// ---------------------------------------------------------------------------------------------
// The tests

/// Starts (idempotently) the campaign's servers; their addresses.
async fn start_servers(knobs: &Knobs) -> Result<(Servers, Infra), String> {
    let (src_port, dst_port) = (knobs.src_port.to_string(), knobs.dst_port.to_string());
    let (src_instance, dst_instance) = (knobs.src_instance(), knobs.dst_instance());
    try_run_script("mariadb.sh", &["start", &src_instance, &src_port, &SRC_SERVER_ID.to_string()]).await?;
    try_run_script("mariadb.sh", &["start", &dst_instance, &dst_port, &DST_SERVER_ID.to_string()]).await?;
    // Nothing of an earlier campaign matters: the binlogs of both go, so the disk use stays bounded.
    try_run_script("mariadb.sh", &["reset", &src_instance]).await?;
    try_run_script("mariadb.sh", &["reset", &dst_instance]).await?;
    if knobs.modes.contains(&Mode::Nats) {
        try_run_script("nats.sh", &["start", &knobs.nats_port.to_string()]).await?;
        try_run_script("consul.sh", &["start", &knobs.consul_port.to_string()]).await?;
    }
    let mut s = Servers::from_env();
    s.host = "127.0.0.1".into();
    s.src = knobs.src_port;
    s.dst = knobs.dst_port;
    s.dst2 = knobs.dst_port;
    let infra = Infra {
        dst_port: knobs.dst_port,
        dst_instance,
        nats_port: knobs.nats_port,
        consul_port: knobs.consul_port,
        nats_url: format!("nats://127.0.0.1:{}", knobs.nats_port),
        consul_addr: format!("127.0.0.1:{}", knobs.consul_port),
    };
    Ok((s, infra))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_campaign() {
    let Some(knobs) = Knobs::from_env() else {
        return;
    };
    let knobs = Arc::new(knobs);
    println!(
        "chaos campaign: seed {} ({} faults per mode); replay: {}",
        knobs.seed,
        knobs.faults,
        knobs.replay_command()
    );
    let kafka = if knobs.modes.contains(&Mode::Kafka) {
        service_env("DTLE_TEST_KAFKA", "tests/kafka.sh start; eval \"$(tests/kafka.sh env)\"")
    } else {
        None
    };
    let (s, infra) = match start_servers(&knobs).await {
        Ok(v) => v,
        Err(e) if servers_required() => panic!("the chaos campaign's servers did not start: {e}"),
        Err(e) => {
            println!("skipping: the chaos campaign's servers did not start: {e}");
            return;
        }
    };
    let infra = Arc::new(infra);
    let started = Instant::now();
    let mut reports = Vec::new();
    for mode in knobs.modes.clone() {
        if mode == Mode::Kafka && kafka.is_none() {
            continue;
        }
        let report = run_mode_guarded(mode, &knobs, &s, &infra, kafka.clone()).await;
        report.print();
        reports.push(report);
    }

    println!(
        "===== chaos summary: seed {}, {} faults per mode, {:.0?} in all =====",
        knobs.seed,
        knobs.faults,
        started.elapsed()
    );
    println!("{:<9} {:<7} {:<12} {:>7} {:>9}  faults", "mode", "result", "converged", "tables", "rows");
    for r in &reports {
        let converged = r.converged_after.map(|d| format!("{:.1} s", d.as_secs_f64())).unwrap_or_else(|| "-".into());
        println!(
            "{:<9} {:<7} {:<12} {:>7} {:>9}  {} ({} load tx, {} big tx, {} dtle starts)",
            r.mode,
            if r.passed() { "PASS" } else { "FAIL" },
            converged,
            r.tables,
            r.rows_compared,
            r.fault_summary(),
            r.load_txs,
            r.big_txs,
            r.dtle_starts
        );
        if let Some(k) = &r.kafka {
            println!("{:<9} kafka: {k}", "");
        }
    }
    println!("===== end of chaos summary (replay: {}) =====", knobs.replay_command());
    let failed: Vec<&str> = reports.iter().filter(|r| !r.passed()).map(|r| r.mode).collect();
    assert!(
        failed.is_empty(),
        "chaos modes failed: {failed:?} (seed {}; replay: {})",
        knobs.seed,
        knobs.replay_command()
    );
}

/// `tests/nats.sh start` must not take an unreaped, killed server (a zombie) for a running one: a long run lost its
/// NATS that way after a kill -9 (tests/chaos/nats_zombie_check.sh).
#[test]
fn nats_start_replaces_a_killed_server_not_yet_reaped() {
    run_check_script("nats_zombie_check.sh");
}

/// `tests/mariadb.sh start` must return while the server it launched is still being exec'd (it used to wait for the
/// live server forever): tests/chaos/mariadb_start_check.sh makes that window 2 s wide.
#[test]
fn mariadb_start_returns_while_the_server_is_being_execd() {
    run_check_script("mariadb_start_check.sh");
}

/// Runs one of the harness's regression checks in tests/chaos/ (when the campaign runs here at all).
fn run_check_script(name: &str) {
    if Knobs::from_env().is_none() {
        return;
    }
    let script = repo_root().join("tests").join("chaos").join(name);
    let out = std::process::Command::new(&script)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
