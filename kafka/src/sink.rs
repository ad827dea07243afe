//! The producer side: turns groups of `Change`s into messages, produces them with an idempotent producer (ordered,
//! no duplicates from the producer's own retries), and reports a position only once the broker acknowledged every
//! message before it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dtle_metadata::{JobStage, Position};
use dtle_mysql::change::gtid_origin;
use dtle_mysql::schema::TableMeta;
use dtle_mysql::{Change, Endpoint, TxEvent, Value};
use mysql_async::prelude::Queryable;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::ClientContext;
use tracing::{debug, error, info, warn};

use crate::envelope::{Encoder, EnvelopeOptions, Record, Snapshot, SourceInfo};
use crate::error::{KafkaError, Result};

/// How to reach the brokers.
#[derive(Clone)]
pub struct SinkOptions {
    pub brokers: Vec<String>,
    /// SASL PLAIN credentials (KafkaConfig.User / Password).
    pub user: Option<String>,
    pub password: Option<String>,
    /// `client.id`, e.g. `dtle-<job>`.
    pub client_id: String,
    pub envelope: EnvelopeOptions,
    /// How long the producer retries one message before its delivery fails (then the job restarts from the last
    /// checkpoint).
    pub delivery_timeout: Duration,
    /// The largest message the producer sends (librdkafka `message.max.bytes`); the broker's and the topic's limits
    /// still apply.
    pub max_message_bytes: usize,
    /// The source, asked for `SHOW CREATE TABLE` of a table whose column defaults the sink has not learnt from the
    /// full copy or the binlog's DDL (a job that starts from a saved position). `None`, or a source it cannot reach:
    /// such tables' schemas have no defaults (warned once).
    pub defaults_from: Option<Endpoint>,
}

impl std::fmt::Debug for SinkOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkOptions")
            .field("brokers", &self.brokers)
            .field("user", &self.user)
            .field("client_id", &self.client_id)
            .field("envelope", &self.envelope)
            .field("defaults_from", &self.defaults_from)
            .finish_non_exhaustive()
    }
}

impl SinkOptions {
    pub fn new(brokers: Vec<String>, envelope: EnvelopeOptions) -> SinkOptions {
        SinkOptions {
            brokers,
            user: None,
            password: None,
            client_id: "dtle".into(),
            envelope,
            delivery_timeout: Duration::from_secs(120),
            max_message_bytes: 16 << 20,
            defaults_from: None,
        }
    }

    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.brokers.join(","))
            .set("client.id", &self.client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // The Java client's partitioner: the same key lands on the same partition as with Java producers.
            .set("partitioner", "murmur2_random")
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set("message.timeout.ms", self.delivery_timeout.as_millis().to_string())
            .set("message.max.bytes", self.max_message_bytes.to_string())
            .set("queue.buffering.max.kbytes", (256 * 1024).to_string())
            .set("queue.buffering.max.messages", "200000")
            .set_log_level(RDKafkaLogLevel::Warning);
        if let Some(user) = self.user.as_ref().filter(|u| !u.is_empty()) {
            c.set("security.protocol", "SASL_PLAINTEXT")
                .set("sasl.mechanism", "PLAIN")
                .set("sasl.username", user)
                .set("sasl.password", self.password.clone().unwrap_or_default());
        }
        c
    }
}

/// Sends librdkafka's log lines and client errors to `tracing`.
struct LogContext {
    brokers: String,
    /// An authentication failure the client reported (librdkafka reports it here, while the request that needed
    /// the connection only times out).
    auth_failure: AuthFailure,
}

/// Shared between the client's context and the sink.
type AuthFailure = Arc<std::sync::Mutex<Option<String>>>;

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                error!(brokers = %self.brokers, facility = fac, "kafka: {message}")
            }
            RDKafkaLogLevel::Warning => warn!(brokers = %self.brokers, facility = fac, "kafka: {message}"),
            _ => debug!(brokers = %self.brokers, facility = fac, "kafka: {message}"),
        }
    }

    fn error(&self, error: RdError, reason: &str) {
        warn!(brokers = %self.brokers, error = %error, "kafka client: {reason}");
        let auth = matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Authentication) | Some(RDKafkaErrorCode::SaslAuthenticationFailed)
        ) || reason.contains("SASL authentication")
            || reason.contains("Authentication failed");
        if auth {
            if let Ok(mut slot) = self.auth_failure.lock() {
                *slot = Some(reason.to_string());
            }
        }
    }
}

/// What the sink produced so far.
#[derive(Clone, Debug, Default)]
pub struct SinkStats {
    pub messages: u64,
    pub bytes: u64,
    pub snapshot_rows: u64,
    pub transactions: u64,
    pub row_changes: u64,
    pub ddl: u64,
}

struct Pending {
    delivery: DeliveryFuture,
    topic: Arc<str>,
    table: Arc<str>,
    bytes: usize,
}

/// Messages handed to the producer for one group of changes, and the position that is safe once all of them are
/// acknowledged. Await [`Produced::acknowledged`] in production order: then every message before the position is in
/// Kafka.
pub struct Produced {
    deliveries: Vec<Pending>,
    pub safe: Option<(JobStage, Position)>,
}

impl Produced {
    /// Waits for the broker's acknowledgement of every message of the group; the first failure is the error.
    pub async fn acknowledged(self) -> Result<Option<(JobStage, Position)>> {
        for p in self.deliveries {
            match p.delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _msg))) => return Err(KafkaError::delivery(&p.topic, &p.table, p.bytes, &e)),
                Err(_canceled) => {
                    return Err(KafkaError::Delivery {
                        topic: p.topic.to_string(),
                        code: "the producer was closed before the broker answered".into(),
                        transient: true,
                        hint: " (retrying from the last checkpoint)",
                    })
                }
            }
        }
        Ok(self.safe)
    }
}

/// The Kafka dest: produce, then wait for the acknowledgements of everything produced.
pub struct KafkaSink {
    producer: FutureProducer<LogContext>,
    auth_failure: AuthFailure,
    encoder: Encoder,
    brokers: String,
    user: String,
    /// Deliveries of the group being produced.
    pending: Vec<Pending>,
    /// The snapshot's position, for the `source` block of `r` events; `Some` while the full copy runs.
    snapshot: Option<SourceInfo>,
    /// Full-copy rows not sent yet, to mark them as Debezium 3.x does (`first`, `first_in_data_collection`,
    /// `last_in_data_collection`, `last`); see [`SnapshotMarks`].
    marks: SnapshotMarks,
    records: Vec<Record>,
    /// Where column defaults of tables not seen created come from, and the connection once opened.
    defaults_from: Option<Endpoint>,
    defaults_conn: Option<mysql_async::Conn>,
    /// Tables (target schema, name) whose defaults were asked for already.
    defaults_asked: std::collections::HashSet<(String, String)>,
    /// Rows already produced of a big source transaction arriving in parts: `source.row` continues across its
    /// parts, so (`gtid`, `row`, `op`) stays unique within the transaction, as consumers de-duplicate on it.
    rows_of_open_transaction: u32,
    pub stats: SinkStats,
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// The full copy's `CREATE TABLE IF NOT EXISTS \`db\`.\`t\` ...` (as run on a MySQL target) in the form Debezium
/// sends, `SHOW CREATE TABLE`'s: `CREATE TABLE \`t\` ...`.
fn show_create_form(create_sql: &str, schema: &str, table: &str) -> String {
    let quote = |n: &str| format!("`{}`", n.replace('`', "``"));
    let ours = format!("CREATE TABLE IF NOT EXISTS {}.{}", quote(schema), quote(table));
    match create_sql.strip_prefix(&ours) {
        Some(rest) => format!("CREATE TABLE {}{rest}", quote(table)),
        None => create_sql.to_string(),
    }
}

/// A full-copy row held back until the next row of its table (or the table's end) says how to mark it.
struct HeldRow {
    table: Arc<TableMeta>,
    row: Vec<Value>,
    first_of_table: bool,
    first_of_copy: bool,
}

/// Debezium 3.x marks full-copy records in `source.snapshot`: `first` (the copy's first row), `last` (its last),
/// `first_in_data_collection` / `last_in_data_collection` (a table's first and last: a table's only row is its
/// last), `true` otherwise. Whether a row is the last of its table is known at the next row or the table's end, so
/// each table's latest row waits here; the last finished table's last row waits for the copy's end.
#[derive(Default)]
struct SnapshotMarks {
    /// Per table (`db.table`): its latest row.
    held: HashMap<Arc<str>, HeldRow>,
    /// The last row of the table that finished last: `last` if no other table finishes after it.
    finished: Option<HeldRow>,
    /// Tables whose first row was seen.
    started: std::collections::HashSet<Arc<str>>,
    any_row: bool,
}

impl HeldRow {
    fn mark(&self, last_of_table: bool, last_of_copy: bool) -> Snapshot {
        if self.first_of_copy {
            Snapshot::First
        } else if last_of_copy {
            Snapshot::Last
        } else if last_of_table {
            Snapshot::LastInDataCollection
        } else if self.first_of_table {
            Snapshot::FirstInDataCollection
        } else {
            Snapshot::True
        }
    }
}

impl KafkaSink {
    /// Creates the producer and checks that the brokers answer (a metadata request), so a wrong address fails here
    /// with a clear message rather than as a delivery timeout later.
    pub async fn connect(opts: &SinkOptions) -> Result<KafkaSink> {
        let brokers = opts.brokers.join(",");
        let auth_failure = AuthFailure::default();
        let producer: FutureProducer<LogContext> = opts
            .client_config()
            .create_with_context(LogContext { brokers: brokers.clone(), auth_failure: auth_failure.clone() })
            .map_err(|e| KafkaError::Client { brokers: brokers.clone(), reason: e.to_string() })?;
        let sink = KafkaSink {
            producer,
            auth_failure,
            encoder: Encoder::new(opts.envelope.clone()),
            brokers,
            user: opts.user.clone().unwrap_or_default(),
            pending: Vec::new(),
            snapshot: None,
            marks: SnapshotMarks::default(),
            defaults_from: opts.defaults_from.clone(),
            defaults_conn: None,
            defaults_asked: Default::default(),
            records: Vec::new(),
            rows_of_open_transaction: 0,
            stats: SinkStats::default(),
        };
        sink.check_brokers(Duration::from_secs(15)).await?;
        info!(brokers = %sink.brokers, "kafka: connected (idempotent producer)");
        Ok(sink)
    }

    /// A metadata request to the brokers, within `timeout`.
    pub async fn check_brokers(&self, timeout: Duration) -> Result<()> {
        let producer = self.producer.clone();
        let result = tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, timeout).map(|_| ()))
            .await
            .map_err(|e| KafkaError::Client { brokers: self.brokers.clone(), reason: e.to_string() })?;
        let reported = self.auth_failure.lock().ok().and_then(|slot| slot.clone());
        result.map_err(|e| match (e.rdkafka_error_code(), reported) {
            (_, Some(reason)) => {
                KafkaError::Authentication { brokers: self.brokers.clone(), user: self.user.clone(), reason }
            }
            (Some(RDKafkaErrorCode::SaslAuthenticationFailed) | Some(RDKafkaErrorCode::Authentication), None) => {
                KafkaError::Authentication {
                    brokers: self.brokers.clone(),
                    user: self.user.clone(),
                    reason: e.to_string(),
                }
            }
            _ => KafkaError::Unreachable { brokers: self.brokers.clone(), reason: e.to_string() },
        })
    }

    /// Hands every message of `changes` to the producer (in order) without waiting for the broker. Several groups
    /// may be in flight; acknowledge them in the order they were produced.
    pub async fn produce(&mut self, changes: &[Change]) -> Result<Produced> {
        self.pending.clear();
        let mut safe: Option<(JobStage, Position)> = None;
        for change in changes {
            self.records.clear();
            let now = now_ns();
            match change {
                Change::SnapshotStart { position, .. } => {
                    self.snapshot = Some(SourceInfo {
                        snapshot: Snapshot::True,
                        gtid: None,
                        file: position.binlog_file.clone(),
                        pos: position.binlog_pos,
                        server_id: 0,
                        ts_ms: now / 1_000_000,
                    });
                    self.marks = SnapshotMarks::default();
                    safe = Some((JobStage::Snapshot, Position::default()));
                }
                Change::CreateTable { table, create_sql, .. } => {
                    self.encoder.note_create_table(table, create_sql);
                    let src = self.snapshot_source(now);
                    let ddl = show_create_form(create_sql, &table.target_schema, &table.target_name);
                    let r = self.encoder.schema_change(&table.target_schema, Some(&table.target_name), &ddl, &src, now);
                    self.records.push(r);
                    self.stats.ddl += 1;
                }
                Change::SnapshotRows { table, rows } => {
                    let label: Arc<str> = table.source_name().into();
                    let mut src = self.snapshot_source(now);
                    for (i, row) in rows.iter().enumerate() {
                        // Only a chunk's last row may be its table's last: the others go at once.
                        self.snapshot_row(table, &label, row, i + 1 == rows.len(), &mut src, now)?;
                    }
                    self.stats.snapshot_rows += rows.len() as u64;
                }
                Change::SnapshotTableDone { table, .. } => {
                    let label: Arc<str> = table.source_name().into();
                    if let Some(last) = self.marks.held.remove(&label) {
                        if let Some(earlier) = self.marks.finished.replace(last) {
                            self.emit_snapshot_row(&earlier, true, false, now)?;
                        }
                    }
                }
                Change::SnapshotDone { position } => {
                    let held: Vec<HeldRow> = self.marks.held.drain().map(|(_, h)| h).collect();
                    for h in &held {
                        self.emit_snapshot_row(h, true, false, now)?;
                    }
                    if let Some(last) = self.marks.finished.take() {
                        self.emit_snapshot_row(&last, true, true, now)?;
                    }
                    self.snapshot = None;
                    safe = Some((JobStage::Incremental, position.clone()));
                }
                Change::Tx(tx) => {
                    let gtid = Some(tx.gtid.clone()).filter(|g| !g.is_empty());
                    let src = SourceInfo {
                        snapshot: Snapshot::False,
                        server_id: gtid.as_deref().map(|g| gtid_origin(g).parse().unwrap_or(0)).unwrap_or(0),
                        gtid,
                        file: tx.position.binlog_file.clone(),
                        pos: tx.position.binlog_pos,
                        ts_ms: u64::from(tx.source_timestamp) * 1000,
                    };
                    for ev in &tx.events {
                        if let TxEvent::Row(rc) = ev {
                            self.learn_defaults(rc.table()).await;
                        }
                    }
                    // Debezium's source.pos and source.row: the start of the change's binlog event and its row's
                    // index in that event. A source that did not say (an older src over NATS) gets the position
                    // after the transaction and the row's index in the transaction.
                    let mut src = src;
                    let sources = (tx.sources.len() == tx.events.len()).then_some(&tx.sources);
                    let mut row_index = self.rows_of_open_transaction;
                    for (i, ev) in tx.events.iter().enumerate() {
                        let row = match sources.and_then(|s| s.get(i)) {
                            Some(at) => {
                                src.pos = at.pos;
                                at.row
                            }
                            None => row_index,
                        };
                        match ev {
                            TxEvent::Row(rc) => {
                                self.encoder.row_change(rc, &src, row, now, &mut self.records)?;
                                row_index += 1;
                                self.stats.row_changes += 1;
                            }
                            TxEvent::Ddl { schema, sql, tables } => {
                                self.encoder.note_ddl(schema, sql);
                                // Debezium's source.table: the table of a statement about one table; its
                                // databaseName: the tables' database (a statement run without a default database
                                // names it).
                                let table = match tables.as_slice() {
                                    [(_, t)] => Some(t.as_str()),
                                    _ => None,
                                };
                                let database = match tables.first() {
                                    Some((db, _)) if tables.iter().all(|(d, _)| d == db) => db.as_str(),
                                    _ => schema.as_str(),
                                };
                                let r = self.encoder.schema_change(database, table, sql, &src, now);
                                self.records.push(r);
                                self.stats.ddl += 1;
                            }
                        }
                    }
                    // Only a whole transaction's end is a position to resume from: a part of a big transaction may
                    // carry a binlog file/pos inside it.
                    if tx.partial {
                        self.rows_of_open_transaction = row_index;
                    } else {
                        self.rows_of_open_transaction = 0;
                        self.stats.transactions += 1;
                        safe = Some((JobStage::Incremental, tx.position.clone()));
                    }
                }
                Change::Heartbeat { position, .. } => {
                    if self.snapshot.is_none() {
                        safe = Some((JobStage::Incremental, position.clone()));
                    }
                }
            }
            let records = std::mem::take(&mut self.records);
            for r in &records {
                self.send(r).await?;
            }
            self.records = records;
        }
        Ok(Produced { deliveries: std::mem::take(&mut self.pending), safe })
    }

    fn snapshot_source(&self, now_ns: u64) -> SourceInfo {
        self.snapshot.clone().unwrap_or(SourceInfo {
            snapshot: Snapshot::True,
            ts_ms: now_ns / 1_000_000,
            ..Default::default()
        })
    }

    /// A row of the full copy: sends the row of its table held so far (not the table's last), then sends this one
    /// or, when it may be its table's last (`hold`), holds it.
    fn snapshot_row(
        &mut self,
        table: &Arc<TableMeta>,
        label: &Arc<str>,
        row: &[Value],
        hold: bool,
        src: &mut SourceInfo,
        now_ns: u64,
    ) -> Result<()> {
        let first_of_table = !self.marks.started.contains(label) && self.marks.started.insert(label.clone());
        let first_of_copy = !std::mem::replace(&mut self.marks.any_row, true);
        if let Some(earlier) = self.marks.held.remove(label) {
            self.emit_snapshot_row(&earlier, false, false, now_ns)?;
        }
        let h = HeldRow { table: table.clone(), row: Vec::new(), first_of_table, first_of_copy };
        if hold {
            self.marks.held.insert(label.clone(), HeldRow { row: row.to_vec(), ..h });
            return Ok(());
        }
        src.snapshot = h.mark(false, false);
        self.encoder.snapshot_row(table, row, src, now_ns, &mut self.records)
    }

    fn emit_snapshot_row(&mut self, h: &HeldRow, last_of_table: bool, last_of_copy: bool, now_ns: u64) -> Result<()> {
        let mut src = self.snapshot_source(now_ns);
        src.snapshot = h.mark(last_of_table, last_of_copy);
        self.encoder.snapshot_row(&h.table, &h.row, &src, now_ns, &mut self.records)
    }

    /// Enqueues one message; when librdkafka's queue is full, waits for the broker to take some.
    async fn send(&mut self, r: &Record) -> Result<()> {
        let bytes = r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len);
        loop {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&r.topic);
            if let Some(k) = &r.key {
                record = record.key(&k[..]);
            }
            if let Some(v) = &r.value {
                record = record.payload(&v[..]);
            }
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    self.pending.push(Pending { delivery, topic: r.topic.clone(), table: r.table.clone(), bytes });
                    self.stats.messages += 1;
                    self.stats.bytes += bytes as u64;
                    return Ok(());
                }
                Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => return Err(KafkaError::delivery(&r.topic, &self.describe(r), bytes, &e)),
            }
        }
    }

    fn describe(&self, r: &Record) -> String {
        let key = String::from_utf8_lossy(r.key.as_deref().unwrap_or(b"null"));
        let payload = key.find("\"payload\":").map(|i| &key[i + 10..key.len().saturating_sub(1)]).unwrap_or(&key);
        let mut shown: String = payload.chars().take(200).collect();
        if shown.len() < payload.len() {
            shown.push('…');
        }
        format!("{}, key {shown}", r.table)
    }

    /// A table met in the binlog whose `CREATE TABLE` the sink has not seen (a job that started from a saved
    /// position): its column defaults from the source's `SHOW CREATE TABLE`, once. A source that cannot be asked is
    /// warned about once and not asked again.
    async fn learn_defaults(&mut self, table: &Arc<TableMeta>) {
        if self.defaults_from.is_none() || self.encoder.knows_defaults(table) {
            return;
        }
        if !self.defaults_asked.insert((table.target_schema.clone(), table.target_name.clone())) {
            return;
        }
        let sql = format!("SHOW CREATE TABLE {}", table.source_ident());
        let mut result = Err(String::new());
        for _ in 0..2 {
            if self.defaults_conn.is_none() {
                let Some(endpoint) = &self.defaults_from else { return };
                match endpoint.connect(&[]).await {
                    Ok(c) => self.defaults_conn = Some(c),
                    Err(e) => {
                        result = Err(e.to_string());
                        break;
                    }
                }
            }
            let Some(conn) = self.defaults_conn.as_mut() else { return };
            match conn.query_first::<(String, String), _>(&sql).await {
                Ok(row) => {
                    result = Ok(row);
                    break;
                }
                // A connection gone idle too long: once more on a new one.
                Err(e) => {
                    self.defaults_conn = None;
                    result = Err(e.to_string());
                }
            }
        }
        match result {
            Ok(Some((_, create_sql))) => self.encoder.note_create_table(table, &create_sql),
            Ok(None) => {}
            Err(reason) => {
                warn!(table = %table.source_name(), "kafka: cannot read the column defaults ({sql}: {reason}); its messages carry none, as will every table's not seen created");
                self.defaults_from = None;
            }
        }
    }

    /// Column defaults of a table from its `CREATE TABLE` statement (`SHOW CREATE TABLE` on the source), for a job
    /// that starts from a saved position: the sink otherwise learns them from the full copy's `CreateTable` and the
    /// binlog's DDL, and writes schemas without defaults (and nulls as null) for tables it has not seen created.
    pub fn note_create_table(&mut self, table: &TableMeta, create_sql: &str) {
        self.encoder.note_create_table(table, create_sql);
    }

    /// Waits until librdkafka has no message left to send (or `timeout`); for a clean stop.
    pub async fn flush(&self, timeout: Duration) {
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || producer.flush(timeout)).await;
    }
}
