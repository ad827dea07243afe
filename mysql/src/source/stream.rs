//! The binlog reader: follows the source from a position, keeps transactions whole, decodes the rows of
//! selected tables with a per-table plan and yields [`Change::Tx`] in source commit order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dtle_metadata::{GtidState, MariadbGtidList, MysqlGtidSet, Position};
use futures_util::{Stream, StreamExt};
use mysql_async::binlog::events::{Event, EventData, GtidEvent, TableMapEvent};
use mysql_async::prelude::*;
use mysql_async::{BinlogStreamRequest, Conn, GnoInterval, Sid};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::binlog::rows::DecodeError;
use crate::binlog::rows::{decode_rows, RowsKind, TablePlan};
use crate::binlog::{event_data, mariadb, verify_checksum};
use crate::change::{Change, EventSource, RowChange, Transaction, TxEvent};
use crate::conn::{Endpoint, Flavor};
use crate::ddl::{ddl_marker_origin, route, DdlRoute};
use crate::error::{codes, BinlogAt, MysqlError, Result};
use crate::filter::TableFilter;
use crate::schema::{load_table_meta, ColumnMeta, TableMeta};
use crate::sql_filter::SqlFilter;
use crate::where_expr::{BoundWhere, WhereError};

/// Where to read from and what to keep.
#[derive(Clone, Debug)]
pub struct BinlogOptions {
    pub endpoint: Endpoint,
    pub flavor: Flavor,
    /// The position after the last transaction the target has.
    pub start: Position,
    pub filter: TableFilter,
    /// Server id this reader registers with; unique among the source's replicas.
    pub replica_server_id: u32,
    /// How often the source sends a heartbeat while idle.
    pub heartbeat: Duration,
    /// A transaction whose row data reaches this many bytes is sent in parts of about this size.
    pub max_tx_part_bytes: usize,
    /// Event kinds left out (dtle's SqlFilter).
    pub sql_filter: SqlFilter,
    /// DDL on replicated tables that dtle cannot replay is skipped with a warning instead of stopping the job.
    pub skip_unreplayable_ddl: bool,
}

const MYSQL_GTID_EVENT: u8 = 33;
const MYSQL_ANONYMOUS_GTID_EVENT: u8 = 34;
const MYSQL_GTID_TAGGED_EVENT: u8 = 42;
const QUERY_EVENT: u8 = 2;
/// The statement of a `LOAD DATA` logged as a statement (after its file's BEGIN_LOAD_QUERY/APPEND_BLOCK events).
const EXECUTE_LOAD_QUERY_EVENT: u8 = 18;
const ROTATE_EVENT: u8 = 4;
const XID_EVENT: u8 = 16;
const FORMAT_DESCRIPTION_EVENT: u8 = 15;
const TABLE_MAP_EVENT: u8 = 19;
const HEARTBEAT_EVENT: u8 = 27;
/// MariaDB's compressed QUERY/ROWS events (log_bin_compress=ON).
const MARIADB_FIRST_COMPRESSED_EVENT: u8 = 165;
const MARIADB_LAST_COMPRESSED_EVENT: u8 = 171;
const ROWS_EVENTS: [u8; 7] = [23, 24, 25, 30, 31, 32, 39];

/// Checks, before streaming, that the source still has every transaction after `start`, and that `start` is a
/// position this source wrote: a GTID of another server or domain, one beyond the source's end, or a binlog file
/// it never had are each reported as what they are (not as a purge), with what to do.
pub async fn check_position_available(conn: &mut Conn, flavor: Flavor, start: &Position) -> Result<()> {
    let logs: Vec<mysql_async::Row> =
        conn.query("SHOW BINARY LOGS").await.map_err(|e| MysqlError::query("SHOW BINARY LOGS", e))?;
    let files: Vec<(String, u64)> = logs
        .iter()
        .filter_map(|r| {
            let name = r.get::<Vec<u8>, _>(0)?;
            let size = r.get::<Option<u64>, _>(1).flatten().unwrap_or(u64::MAX);
            Some((String::from_utf8_lossy(&name).into_owned(), size))
        })
        .collect();
    let problem = match (&start.gtid, flavor) {
        (Some(GtidState::Mariadb(list)), Flavor::Mariadb) => {
            let state: Option<String> = conn
                .query_first("SELECT CAST(@@GLOBAL.gtid_binlog_state AS CHAR)")
                .await
                .map_err(|e| MysqlError::query("reading gtid_binlog_state", e))?;
            let state = parse_binlog_state(&state.unwrap_or_default());
            let mut purged = MariadbGtidList::default();
            if let Some((first, _)) = files.first() {
                // The first binlog file starts with a Gtid_list event: the state before everything it holds.
                let events: Vec<mysql_async::Row> = conn
                    .query(format!("SHOW BINLOG EVENTS IN '{}' LIMIT 4", first.replace('\'', "")))
                    .await
                    .map_err(|e| MysqlError::query(format!("SHOW BINLOG EVENTS IN '{first}'"), e))?;
                for row in events {
                    let kind: Option<String> = row.get(2);
                    if kind.as_deref() == Some("Gtid_list") {
                        let info: String = row.get::<Option<String>, _>(5).flatten().unwrap_or_default();
                        let inner = info.trim().trim_start_matches('[').trim_end_matches(']');
                        purged = inner.parse().unwrap_or_default();
                    }
                }
            }
            mariadb_start_problem(list, &state, &purged, &files)
        }
        (Some(GtidState::Mysql(set)), Flavor::Mysql) => {
            let executed: Option<String> = conn
                .query_first("SELECT CAST(@@GLOBAL.gtid_executed AS CHAR)")
                .await
                .map_err(|e| MysqlError::query("reading gtid_executed", e))?;
            let executed: MysqlGtidSet = executed.unwrap_or_default().parse().unwrap_or_default();
            let purged: Option<String> = conn
                .query_first("SELECT CAST(@@GLOBAL.gtid_purged AS CHAR)")
                .await
                .map_err(|e| MysqlError::query("reading gtid_purged", e))?;
            let purged: MysqlGtidSet = purged.unwrap_or_default().parse().unwrap_or_default();
            mysql_start_problem(set, &executed, &purged)
        }
        (Some(_), _) => {
            return Err(MysqlError::InvalidConfig {
                field: "Gtid".into(),
                value: start.gtid.as_ref().map(|g| g.to_string()).unwrap_or_default(),
                reason: format!(
                    "this GTID form does not match the source, which is {} (MySQL uses uuid:1-5, MariaDB uses domain-server-seq)",
                    if flavor == Flavor::Mariadb { "MariaDB" } else { "MySQL" }
                ),
            })
        }
        (None, _) => file_start_problem(&start.binlog_file, start.binlog_pos, &files),
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(p.into_error(start)),
    }
}

/// Why the source cannot stream from a start position.
#[derive(Debug, PartialEq, Eq)]
enum StartProblem {
    /// The source had it, but its binlog no longer goes back that far.
    Purged { available: String },
    /// The source never wrote it: another server's or domain's GTID.
    NeverWritten { detail: String },
    /// Past the end of what the source has written.
    BeyondEnd { detail: String },
    /// No binlog file of that name on the source.
    NoSuchFile { detail: String },
}

impl StartProblem {
    fn into_error(self, start: &Position) -> MysqlError {
        let requested = match &start.gtid {
            Some(g) => format!("GTID {g}"),
            None => format!("{}:{}", start.binlog_file, start.binlog_pos),
        };
        let (problem, fix) = match self {
            StartProblem::Purged { available } => return MysqlError::PositionPurged { requested, available },
            StartProblem::NeverWritten { detail } => (
                format!("was never written by this source: {detail}"),
                "It comes from another server or GTID domain (the job file's Gtid, or a position saved while the job read another source). Give a GTID position this source wrote (SELECT @@gtid_binlog_pos on it prints its latest), set AutoGtid = true to start from now, or leave Gtid empty for a full copy; for a saved position, `dtle positions reset <job file>` first",
            ),
            StartProblem::BeyondEnd { detail } => (
                format!("is beyond the end of the source's binlog: {detail}"),
                "The source has not written it: it comes from another server, or the source was restored from a backup or reset (RESET MASTER) since the position was taken, in which case compare the target with it first. Give a position the source has (SELECT @@gtid_binlog_pos, SHOW MASTER STATUS), set AutoGtid = true to start from now, or leave Gtid empty for a full copy; for a saved position, `dtle positions reset <job file>` first",
            ),
            StartProblem::NoSuchFile { detail } => (
                format!("names a binlog file the source does not have: {detail}"),
                "Give BinlogFile/BinlogPos from SHOW BINARY LOGS or SHOW MASTER STATUS on the source (a file it lists, and a position inside it), or leave them empty for a full copy",
            ),
        };
        MysqlError::StartPositionInvalid { requested, problem, fix: fix.into() }
    }
}

/// `@@gtid_binlog_state`: the last GTID of every (domain, server) the source ever logged, "0-1-100,0-2-7,1-1-3".
fn parse_binlog_state(text: &str) -> Vec<(u32, u32, u64)> {
    text.split(',')
        .filter_map(|piece| {
            let mut f = piece.trim().split('-');
            let domain = f.next()?.parse().ok()?;
            let server = f.next()?.parse().ok()?;
            let seq = f.next()?.parse().ok()?;
            Some((domain, server, seq))
        })
        .collect()
}

/// Up to 10 file names, else the first and last with the count.
fn list_files(files: &[(String, u64)]) -> String {
    match files {
        [] => "no binlog files".into(),
        _ if files.len() <= 10 => files.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>().join(", "),
        [first, .., last] => format!("{} files, {} .. {}", files.len(), first.0, last.0),
        [only] => only.0.clone(),
    }
}

fn mariadb_start_problem(
    requested: &MariadbGtidList,
    state: &[(u32, u32, u64)],
    purged: &MariadbGtidList,
    files: &[(String, u64)],
) -> Option<StartProblem> {
    let state_text = if state.is_empty() {
        "its binlog holds no GTID at all (RESET MASTER?)".to_string()
    } else {
        format!(
            "its binlog state (@@gtid_binlog_state) is {}",
            state.iter().map(|(d, s, q)| format!("{d}-{s}-{q}")).collect::<Vec<_>>().join(",")
        )
    };
    for (domain, server, seq) in requested.iter() {
        let in_domain: Vec<&(u32, u32, u64)> = state.iter().filter(|(d, _, _)| *d == domain).collect();
        let Some(end) = in_domain.iter().map(|(_, _, q)| *q).max() else {
            return Some(StartProblem::NeverWritten {
                detail: format!("it has no GTID of domain {domain}; {state_text}"),
            });
        };
        if seq > end {
            return Some(StartProblem::BeyondEnd {
                detail: format!("its last transaction of domain {domain} has sequence number {end} ({state_text})"),
            });
        }
        match in_domain.iter().find(|(_, s, _)| *s == server) {
            None => {
                return Some(StartProblem::NeverWritten {
                    detail: format!("no server with id {server} ever wrote to domain {domain} there; {state_text}"),
                })
            }
            Some((_, _, last)) if seq > *last => {
                return Some(StartProblem::NeverWritten {
                    detail: format!(
                        "the last GTID server {server} wrote to domain {domain} there is {domain}-{server}-{last}; {state_text}"
                    ),
                })
            }
            Some(_) => {}
        }
    }
    for (domain, _server, seq) in purged.iter() {
        let ours = requested.get(domain).map(|(_, s)| s).unwrap_or(0);
        if ours < seq {
            return Some(StartProblem::Purged {
                available: format!(
                    "binlog files {}, the first of which starts after GTID position {purged}",
                    list_files(files)
                ),
            });
        }
    }
    None
}

fn mysql_start_problem(
    requested: &MysqlGtidSet,
    executed: &MysqlGtidSet,
    purged: &MysqlGtidSet,
) -> Option<StartProblem> {
    let missing = requested.subtract(executed);
    if let Some((uuid, tag, intervals)) = missing.iter().next() {
        let known = executed.iter().find(|(u, t, _)| *u == uuid && *t == tag).map(|(_, _, i)| i.to_vec());
        let uuid_text = dtle_metadata::format_uuid(&uuid);
        let name = if tag.is_empty() { uuid_text } else { format!("{uuid_text}:{tag}") };
        let end = known.as_ref().and_then(|i| i.last().map(|(_, e)| *e));
        return Some(match end {
            None => StartProblem::NeverWritten {
                detail: format!("no transaction of {name} is in its gtid_executed ({executed})"),
            },
            Some(end) if intervals.iter().all(|(s, _)| *s > end) => StartProblem::BeyondEnd {
                detail: format!("its last transaction of {name} is number {end} (gtid_executed {executed})"),
            },
            Some(_) => StartProblem::NeverWritten {
                detail: format!(
                    "transactions {name}:{} are not in its gtid_executed ({executed})",
                    intervals.iter().map(|(s, e)| format!("{s}-{e}")).collect::<Vec<_>>().join(":")
                ),
            },
        });
    }
    if !purged.is_subset_of(requested) {
        return Some(StartProblem::Purged { available: format!("gtid_purged is {purged}") });
    }
    None
}

/// `mariadb-bin.000012` → (`mariadb-bin`, 12).
fn split_binlog_name(name: &str) -> Option<(&str, u64)> {
    let (base, number) = name.rsplit_once('.')?;
    Some((base, number.parse().ok()?))
}

fn file_start_problem(file: &str, pos: u64, files: &[(String, u64)]) -> Option<StartProblem> {
    if file.is_empty() || files.is_empty() {
        return None;
    }
    if let Some((_, size)) = files.iter().find(|(f, _)| f == file) {
        return (pos > *size).then(|| StartProblem::BeyondEnd {
            detail: format!("{file} has {size} bytes; position {pos} is past its end"),
        });
    }
    let first = files.first().and_then(|(f, _)| split_binlog_name(f));
    match (split_binlog_name(file), first) {
        (Some((base, n)), Some((first_base, first_n))) if base == first_base && n < first_n => {
            Some(StartProblem::Purged { available: format!("binlog files {}", list_files(files)) })
        }
        _ => Some(StartProblem::NoSuchFile { detail: format!("it has {}", list_files(files)) }),
    }
}

struct TxBuilder {
    gtid: String,
    mariadb_gtid: Option<(u32, u32, u64)>,
    /// (source uuid, tag — empty when untagged, transaction number).
    mysql_gtid: Option<([u8; 16], String, u64)>,
    in_begin: bool,
    timestamp: u32,
    events: Vec<TxEvent>,
    /// Where each of `events` was in the binlog.
    sources: Vec<EventSource>,
    size: usize,
    /// Row bytes since the last part was sent.
    part_size: usize,
    /// dtle's marker seen in this transaction: the server where its changes were first made.
    origin: Option<String>,
    /// Rows of dtle's position table were seen: dtle wrote this transaction.
    dtle_rows: bool,
    /// Rows of other tables the job does not replicate were seen.
    other_rows: bool,
}

/// A replicated table seen in TABLE_MAP.
struct SelectedTable {
    plan: TablePlan,
    /// The source table (what the rows are decoded and filtered with).
    meta: Arc<TableMeta>,
    row_filter: Option<BoundWhere>,
    /// What the dest gets: the source table, or its projection through a column map with the source indexes.
    output: Arc<TableMeta>,
    projection: Option<Vec<usize>>,
}

/// `None` for tables not replicated.
type PlanEntry = Option<SelectedTable>;

/// How long a binlog connection may deliver nothing, not even a heartbeat, before it counts as dead.
pub fn source_silence_limit(heartbeat: Duration) -> Duration {
    (heartbeat * 10).max(Duration::from_secs(30))
}

/// Follows the binlog until cancelled or an error, sending transactions to `out`.
pub async fn stream_binlog(opts: BinlogOptions, out: mpsc::Sender<Change>, cancel: CancellationToken) -> Result<()> {
    let mut meta_conn = opts.endpoint.connect(&["SET NAMES utf8mb4"]).await?;
    check_position_available(&mut meta_conn, opts.flavor, &opts.start).await?;
    // The server's first (fake) ROTATE comes before the FORMAT_DESCRIPTION that says checksums are on, so the
    // library leaves its 4 checksum bytes in the file name; strip them ourselves.
    let checksums_on = crate::conn::global_variable(&mut meta_conn, "binlog_checksum")
        .await?
        .is_some_and(|v| !v.eq_ignore_ascii_case("NONE"));

    let heartbeat_ns = opts.heartbeat.as_nanos().min(u128::from(u32::MAX) * 1_000_000) as u64;
    let mut setup = vec![format!("SET @master_heartbeat_period = {heartbeat_ns}")];
    let gtid_state = opts.start.gtid.clone();
    if opts.flavor == Flavor::Mariadb {
        setup.push("SET @mariadb_slave_capability = 4".into());
        if let Some(GtidState::Mariadb(list)) = &gtid_state {
            setup.push(format!("SET @slave_connect_state = '{list}'"));
            setup.push("SET @slave_gtid_strict_mode = 1".into());
            setup.push("SET @slave_gtid_ignore_duplicates = 0".into());
        }
    }
    let setup_refs: Vec<&str> = setup.iter().map(String::as_str).collect();
    let conn = opts.endpoint.connect(&setup_refs).await?;

    let file = opts.start.binlog_file.clone();
    let pos = opts.start.binlog_pos.max(4);
    let sids: Vec<Sid<'static>> = match &gtid_state {
        Some(GtidState::Mysql(set)) => set
            .iter()
            .filter(|(_, tag, _)| tag.is_empty())
            .map(|(uuid, _, intervals)| {
                Sid::new(uuid).with_intervals(intervals.iter().map(|&(a, b)| GnoInterval::new(a, b + 1)).collect())
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut request = BinlogStreamRequest::new(opts.replica_server_id);
    match (&gtid_state, opts.flavor) {
        (Some(GtidState::Mysql(_)), Flavor::Mysql) => {
            request = request.with_gtid().with_gtid_set(sids);
        }
        (Some(GtidState::Mariadb(_)), Flavor::Mariadb) => {}
        _ => {
            request = request.with_filename(file.as_bytes()).with_pos(pos);
        }
    }
    let stream =
        conn.get_binlog_stream(request).await.map_err(|e| stream_error(BinlogAt::file_pos(file.clone(), pos), e))?;
    let reader = BinlogReader {
        opts,
        out,
        meta_conn,
        checksums_on,
        seen_format_description: false,
        gtid_state,
        file,
        pos,
        plans: HashMap::new(),
        marker_plans: HashMap::new(),
        metas: HashMap::new(),
        tx: None,
        last_emit: Instant::now(),
        last_timestamp: 0,
        // The start position goes out with the first idle heartbeat, so the target records it even if nothing
        // happens.
        unsent_progress: Unsent::Progress,
    };
    reader.run(PanicSafe(stream), cancel).await
}

/// Whether the reader goes on after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    /// The consumer of the changes is gone.
    Stop,
}

/// The binlog reader's state between events: where it is, the tables it knows, the transaction being built. Each
/// event kind has its handler (`on_*`); every error names the event's file, position, GTID and table.
struct BinlogReader {
    opts: BinlogOptions,
    out: mpsc::Sender<Change>,
    /// Reads table definitions.
    meta_conn: Conn,
    checksums_on: bool,
    seen_format_description: bool,
    gtid_state: Option<GtidState>,
    file: String,
    pos: u64,
    plans: HashMap<u64, PlanEntry>,
    marker_plans: HashMap<u64, (TablePlan, usize)>,
    metas: HashMap<(String, String), Arc<TableMeta>>,
    tx: Option<TxBuilder>,
    last_emit: Instant,
    last_timestamp: u32,
    unsent_progress: Unsent,
}

// The handlers return the crate's one error type, as everywhere else (async ones are not linted for its size).
#[allow(clippy::result_large_err)]
impl BinlogReader {
    async fn run<S>(mut self, mut stream: PanicSafe<S>, cancel: CancellationToken) -> Result<()>
    where
        S: Stream<Item = std::result::Result<Event, mysql_async::Error>> + Unpin,
    {
        // While idle the source sends a heartbeat every `opts.heartbeat`: a connection that delivers nothing at all
        // for much longer is dead without having been closed (a network black hole, a hung server) and is
        // reconnected.
        let silence_limit = source_silence_limit(self.opts.heartbeat);
        let mut silence_check = tokio::time::interval(silence_limit / 4);
        silence_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_event = Instant::now();
        loop {
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(()),
                next = stream.next() => next,
                _ = silence_check.tick() => {
                    if last_event.elapsed() >= silence_limit {
                        return Err(self.stream_failed(
                            format!(
                                "nothing arrived from the source for {} s, not even its heartbeat (one a second \
                                 while idle): the connection is dead; reconnecting",
                                silence_limit.as_secs()
                            ),
                            true,
                        ));
                    }
                    continue;
                }
            };
            last_event = Instant::now();
            let event: Event = match next {
                None => return Err(self.stream_failed("the source closed the binlog stream".into(), true)),
                Some(Err(_panic)) => {
                    return Err(self.stream_failed("malformed binlog packet from the source".into(), false))
                }
                Some(Ok(Err(e))) => return Err(stream_error(self.at(""), e)),
                Some(Ok(Ok(event))) => event,
            };
            if self.on_event(&event).await? == Flow::Stop {
                return Ok(());
            }
        }
    }

    /// Where the reader is: the current event's file and position, the GTID of the transaction being read, and
    /// `table`.
    fn at(&self, table: &str) -> BinlogAt {
        BinlogAt {
            file: self.file.clone(),
            pos: self.pos,
            gtid: self.tx.as_ref().map(|t| t.gtid.clone()).unwrap_or_default(),
            table: table.to_string(),
        }
    }

    fn stream_failed(&self, reason: String, transient: bool) -> MysqlError {
        MysqlError::Stream { at: self.at(""), reason, transient }
    }

    fn decode_failed(&self, table: &str) -> impl FnOnce(DecodeError) -> MysqlError {
        let at = self.at(table);
        move |source| MysqlError::Decode { at, source }
    }

    fn unparsable(&self) -> impl FnOnce(std::io::Error) -> MysqlError {
        let at = self.at("");
        move |e| MysqlError::Stream { at, reason: format!("cannot parse event: {e}"), transient: false }
    }

    /// The transaction being read (a plain one, without a GTID, when none started).
    fn tx_mut(&mut self, timestamp: u32) -> &mut TxBuilder {
        self.tx.get_or_insert_with(|| new_plain_tx(timestamp))
    }

    async fn on_event(&mut self, event: &Event) -> Result<Flow> {
        let header = event.header();
        let type_raw = header.event_type_raw();
        verify_checksum(event).map_err(self.decode_failed(""))?;
        if header.log_pos() != 0 && type_raw != ROTATE_EVENT {
            self.pos = u64::from(header.log_pos());
        }
        if header.timestamp() != 0 {
            self.last_timestamp = header.timestamp();
        }
        match type_raw {
            ROTATE_EVENT => self.on_rotate(event),
            FORMAT_DESCRIPTION_EVENT => {
                self.seen_format_description = true;
                Ok(Flow::Continue)
            }
            mariadb::GTID_EVENT => self.on_mariadb_gtid(event),
            MYSQL_GTID_EVENT | MYSQL_GTID_TAGGED_EVENT => self.on_mysql_gtid(event),
            MYSQL_ANONYMOUS_GTID_EVENT => {
                self.tx = Some(new_plain_tx(header.timestamp()));
                Ok(Flow::Continue)
            }
            QUERY_EVENT | EXECUTE_LOAD_QUERY_EVENT => self.on_query(event).await,
            TABLE_MAP_EVENT => self.on_table_map(event).await,
            t if ROWS_EVENTS.contains(&t) => self.on_rows(event).await,
            XID_EVENT => self.commit().await,
            HEARTBEAT_EVENT => self.on_idle_heartbeat().await,
            t if (MARIADB_FIRST_COMPRESSED_EVENT..=MARIADB_LAST_COMPRESSED_EVENT).contains(&t) => {
                Err(MysqlError::Unsupported {
                    what: format!("MariaDB compressed binlog event (type {t}) at {}", self.at("")),
                    fix: "SET GLOBAL log_bin_compress=OFF on the source".into(),
                })
            }
            _ => Ok(Flow::Continue),
        }
    }

    fn on_rotate(&mut self, event: &Event) -> Result<Flow> {
        if let Ok(Some(EventData::RotateEvent(r))) = event_data(event) {
            let mut name = r.name_raw();
            if self.checksums_on && !self.seen_format_description && name.len() > 4 {
                name = &name[..name.len() - 4];
            }
            self.file = String::from_utf8_lossy(name).into_owned();
            self.pos = r.position();
        }
        Ok(Flow::Continue)
    }

    fn on_mariadb_gtid(&mut self, event: &Event) -> Result<Flow> {
        let header = event.header();
        let g = mariadb::parse_gtid_event(header.server_id(), event.data()).map_err(self.decode_failed(""))?;
        self.tx = Some(TxBuilder {
            gtid: format!("{}-{}-{}", g.domain_id, g.server_id, g.seq_no),
            mariadb_gtid: Some((g.domain_id, g.server_id, g.seq_no)),
            in_begin: !g.is_standalone,
            ..new_plain_tx(header.timestamp())
        });
        Ok(Flow::Continue)
    }

    fn on_mysql_gtid(&mut self, event: &Event) -> Result<Flow> {
        let g: GtidEvent = event.read_event().map_err(self.unparsable())?;
        let tag = g.tag().map(|t| t.as_str().to_ascii_lowercase()).unwrap_or_default();
        let uuid = dtle_metadata::format_uuid(&g.sid());
        self.tx = Some(TxBuilder {
            gtid: if tag.is_empty() { format!("{uuid}:{}", g.gno()) } else { format!("{uuid}:{tag}:{}", g.gno()) },
            mysql_gtid: Some((g.sid(), tag, g.gno())),
            ..new_plain_tx(event.header().timestamp())
        });
        Ok(Flow::Continue)
    }

    /// BEGIN/COMMIT, and statements: DDL to replay, statement-format DML (refused), or nothing the job replicates.
    async fn on_query(&mut self, event: &Event) -> Result<Flow> {
        let header = event.header();
        let (sql, schema) = match event.read_data() {
            Ok(Some(EventData::QueryEvent(q))) => (q.query().into_owned(), q.schema().into_owned()),
            Ok(Some(EventData::ExecuteLoadQueryEvent(q))) => (q.query().into_owned(), q.schema().into_owned()),
            _ => return Ok(Flow::Continue),
        };
        let trimmed = sql.trim();
        let event_start = u64::from(header.log_pos()).saturating_sub(u64::from(header.event_size()));
        if trimmed.eq_ignore_ascii_case("BEGIN") || trimmed.eq_ignore_ascii_case("XA START") {
            self.tx_mut(header.timestamp()).in_begin = true;
            return Ok(Flow::Continue);
        }
        if trimmed.eq_ignore_ascii_case("COMMIT") || trimmed.eq_ignore_ascii_case("ROLLBACK") {
            return self.commit().await;
        }
        let upper_head = trimmed.get(..11).unwrap_or(trimmed).to_ascii_uppercase();
        if upper_head.starts_with("SAVEPOINT") || upper_head.starts_with("ROLLBACK TO") {
            return Ok(Flow::Continue);
        }
        self.tx_mut(header.timestamp());
        match route(trimmed, &schema, &self.opts.filter) {
            DdlRoute::Ignore => {}
            DdlRoute::Replay { sql, use_schema, source_tables } => {
                // The definitions of the tables it names are read again at their next TABLE_MAP.
                if source_tables.is_empty() {
                    self.metas.clear();
                }
                for key in &source_tables {
                    self.metas.remove(key);
                }
                let keep = self.opts.sql_filter.keeps_ddl(trimmed);
                let t = self.tx_mut(header.timestamp());
                if let Some(origin) = ddl_marker_origin(trimmed) {
                    t.origin = Some(origin);
                }
                // The table definitions above are refreshed either way: SqlFilter only decides what is sent.
                if keep {
                    t.events.push(TxEvent::Ddl { schema: use_schema, sql, tables: source_tables });
                    t.sources.push(EventSource { pos: event_start, row: 0 });
                }
            }
            DdlRoute::StatementDml { tables, kinds } => {
                let f = &self.opts.sql_filter;
                let filtered_out =
                    (!kinds.insert || f.no_insert) && (!kinds.update || f.no_update) && (!kinds.delete || f.no_delete);
                let tables = if tables.is_empty() {
                    format!("(not recognised in the statement; the session's schema {schema:?} is replicated)")
                } else {
                    tables.iter().map(|(s, t)| format!("{s}.{t}")).collect::<Vec<_>>().join(", ")
                };
                let start = event_start;
                let gtid = self.tx.as_ref().map(|t| t.gtid.clone()).unwrap_or_default();
                let gtid = if gtid.is_empty() { "no GTID".to_string() } else { format!("GTID {gtid}") };
                let file = &self.file;
                if filtered_out {
                    tracing::debug!(%file, pos = start, %tables, "statement-format DML of a kind SqlFilter leaves out");
                } else if self.opts.skip_unreplayable_ddl {
                    tracing::warn!(%file, pos = start, %gtid, statement = %shorten(trimmed), %tables, "SkipUnreplayableDdl: skipping a data change the source logged as a statement (binlog_format=STATEMENT/MIXED); the target may now differ from the source");
                } else {
                    return Err(MysqlError::StatementDml {
                        statement: shorten(trimmed),
                        tables,
                        file: file.clone(),
                        pos: start,
                        gtid,
                    });
                }
            }
            DdlRoute::Unreplayable { reason } if self.opts.skip_unreplayable_ddl => {
                let at = self.at("");
                tracing::warn!(%at, statement = %trimmed, %reason, "SkipUnreplayableDdl: skipping a DDL on replicated tables; the target may now differ from the source");
            }
            DdlRoute::Unreplayable { reason } => {
                return Err(self.stream_failed(
                    format!(
                        "cannot replay the DDL {trimmed:?}: {reason}. Apply it on the target by hand and set SkipUnreplayableDdl = true in the src task config to go past it (the skip is logged), or change the job's table selection"
                    ),
                    false,
                ));
            }
        }
        if self.tx.as_ref().is_some_and(|t| !t.in_begin) {
            // A statement outside BEGIN (DDL) is a transaction of its own.
            return self.commit().await;
        }
        Ok(Flow::Continue)
    }

    /// A table's rows follow: plans how to decode them (or notes that the job does not replicate it).
    async fn on_table_map(&mut self, event: &Event) -> Result<Flow> {
        let tme: TableMapEvent<'_> = event.read_event().map_err(self.unparsable())?;
        let schema = tme.database_name().into_owned();
        let table = tme.table_name().into_owned();
        if schema == MARKER_SCHEMA && table == MARKER_TABLE {
            self.plan_marker_table(&tme).await?;
            return Ok(Flow::Continue);
        }
        let entry = match self.opts.filter.selection_of(&schema, &table) {
            None => None,
            Some(selection) => Some(self.plan_selected_table(&tme, schema, table, selection).await?),
        };
        self.plans.insert(tme.table_id(), entry);
        Ok(Flow::Continue)
    }

    /// dtle's own position row on this server: never replicated, but it marks the transaction. A table id keeps its
    /// definition (an ALTER gets a new id): planned once per id.
    async fn plan_marker_table(&mut self, tme: &TableMapEvent<'_>) -> Result<()> {
        if !self.marker_plans.contains_key(&tme.table_id()) {
            let plan =
                TablePlan::new(tme, None).map_err(self.decode_failed(&format!("{MARKER_SCHEMA}.{MARKER_TABLE}")))?;
            let origin_index = match plan.column_names() {
                Some(names) => names.iter().position(|n| n.eq_ignore_ascii_case(MARKER_ORIGIN_COLUMN)),
                None => load_table_meta(&mut self.meta_conn, MARKER_SCHEMA, MARKER_TABLE)
                    .await?
                    .and_then(|m| m.columns.iter().position(|c| c.name.eq_ignore_ascii_case(MARKER_ORIGIN_COLUMN))),
            };
            self.marker_plans.insert(tme.table_id(), (plan, origin_index.unwrap_or(usize::MAX)));
        }
        self.plans.insert(tme.table_id(), None);
        Ok(())
    }

    /// The definition of a replicated table (read once, or taken from the binlog when a DDL changed it since), its
    /// decoding plan, its bound `Where` and its column map.
    async fn plan_selected_table(
        &mut self,
        tme: &TableMapEvent<'_>,
        schema: String,
        table: String,
        selection: crate::filter::Selection,
    ) -> Result<SelectedTable> {
        let key = (schema.clone(), table.clone());
        let meta = match self.metas.get(&key) {
            Some(m) => m.clone(),
            None => {
                let m = match load_table_meta(&mut self.meta_conn, &schema, &table).await? {
                    Some(m) => m,
                    // Dropped since: with binlog_row_metadata=FULL the TABLE_MAP still defines it.
                    None if TablePlan::new(tme, None)
                        .ok()
                        .and_then(|p| p.column_names().map(<[String]>::len))
                        .is_some() =>
                    {
                        TableMeta {
                            schema: schema.clone(),
                            name: table.clone(),
                            target_schema: String::new(),
                            target_name: String::new(),
                            columns: Vec::new(),
                            key_columns: Vec::new(),
                            estimated_rows: 0,
                            column_subset: false,
                        }
                    }
                    None => {
                        return Err(MysqlError::SchemaMismatch {
                            table: format!("{schema}.{table}"),
                            detail: format!("the binlog at {} has rows for it but the table no longer exists on the source; dtle cannot decode them without its definition (set binlog_row_metadata=FULL on the source so the binlog carries it)", self.at("")),
                        });
                    }
                };
                let mut m = m;
                m.target_schema = selection.target_schema.clone();
                m.target_name = selection.target_name.clone();
                let m = Arc::new(m);
                self.metas.insert(key.clone(), m.clone());
                m
            }
        };
        let unsigned = meta.column_unsigned();
        let mut plan = TablePlan::new(tme, (unsigned.len() == tme.columns_count() as usize).then_some(&unsigned[..]))
            .map_err(self.decode_failed(&meta.source_name()))?;
        // With binlog_row_metadata=FULL the TABLE_MAP names the columns as they were when these rows were written;
        // when a later DDL changed the table, the definition comes from the binlog.
        let meta = match plan.column_names() {
            Some(names) if !same_column_names(&meta, names) => {
                let derived = Arc::new(meta_from_binlog(&meta, &plan, names));
                tracing::debug!(table = %meta.source_name(), at = %self.at(""), "table definition taken from the binlog (it changed since)");
                self.metas.insert(key, derived.clone());
                derived
            }
            _ => meta,
        };
        if plan.column_count() != meta.columns.len() {
            return Err(MysqlError::SchemaMismatch {
                table: meta.source_name(),
                detail: format!(
                    "the binlog at {} has {} columns but the table now has {}; a DDL changed it after these rows were written. Set binlog_row_metadata=FULL on the source so the binlog carries each table's definition",
                    self.at(""),
                    plan.column_count(),
                    meta.columns.len()
                ),
            });
        }
        // BINARY(n) values lost their trailing 0x00 bytes in the binlog: padded back while decoding.
        plan.pad_fixed_binary_columns(|i| meta.columns.get(i).is_some_and(|c| c.data_type == "binary"));
        let row_filter = match &selection.row_filter {
            Some(expr) => Some(expr.bind(&meta.columns).map_err(|e| MysqlError::InvalidConfig {
                field: format!("Where of {}", meta.source_name()),
                value: expr.to_sql(),
                reason: e.to_string(),
            })?),
            None => None,
        };
        let (output, projection) = match &selection.column_map {
            None => (meta.clone(), None),
            Some(map) => {
                let (projected, indexes) =
                    meta.project(&map.from, &map.to).map_err(|reason| MysqlError::InvalidConfig {
                        field: format!("ColumnMapFrom of {}", meta.source_name()),
                        value: map.from.join(","),
                        reason,
                    })?;
                (Arc::new(projected), Some(indexes))
            }
        };
        Ok(SelectedTable { plan, meta, row_filter, output, projection })
    }

    /// Row changes: decoded, filtered (`Where`, SqlFilter), mapped, added to the transaction; a big transaction
    /// goes out in parts.
    async fn on_rows(&mut self, event: &Event) -> Result<Flow> {
        let timestamp = event.header().timestamp();
        let event_start = u64::from(event.header().log_pos()).saturating_sub(u64::from(event.header().event_size()));
        let Some(EventData::RowsEvent(rows_event)) = event_data(event).map_err(self.decode_failed(""))? else {
            return Ok(Flow::Continue);
        };
        let Some(Some(selected)) = self.plans.get(&rows_event.table_id()) else {
            let marker = self
                .marker_plans
                .get(&rows_event.table_id())
                .map(|(plan, origin_index)| marker_origin(plan, *origin_index, &rows_event));
            let t = self.tx_mut(timestamp);
            match marker {
                Some(origin) => {
                    t.dtle_rows = true;
                    if let Some(origin) = origin {
                        t.origin = Some(origin);
                    }
                }
                None => t.other_rows = true,
            }
            return Ok(Flow::Continue);
        };
        let meta = &selected.meta;
        let decoded = decode_rows(&selected.plan, &rows_event).map_err(self.decode_failed(&meta.source_name()))?;
        // Rows go straight into the transaction being read (fields borrowed apart: no buffer per event).
        let t = self.tx.get_or_insert_with(|| new_plain_tx(timestamp));
        for (row_in_event, image) in decoded.rows.into_iter().enumerate() {
            let change = match (&decoded.kind, image.before, image.after) {
                (RowsKind::Insert, _, Some(after)) => RowChange::Insert { table: meta.clone(), after },
                (RowsKind::Delete, Some(before), _) => RowChange::Delete { table: meta.clone(), before },
                (RowsKind::Update, Some(before), Some(after)) => {
                    RowChange::Update { table: meta.clone(), before, after }
                }
                _ => continue,
            };
            let change = match &selected.row_filter {
                None => Some(change),
                Some(f) => filter_row_change(f, change).map_err(|e| MysqlError::Stream {
                    at: BinlogAt {
                        file: self.file.clone(),
                        pos: self.pos,
                        gtid: t.gtid.clone(),
                        table: meta.source_name(),
                    },
                    reason: format!("evaluating the Where of {}: {e}", meta.source_name()),
                    transient: false,
                })?,
            };
            if let Some(change) = change.filter(|c| self.opts.sql_filter.keeps_row(c)) {
                let change = match &selected.projection {
                    None => change,
                    Some(indexes) => project_change(change, &selected.output, indexes),
                };
                t.events.push(TxEvent::Row(change));
                t.sources.push(EventSource { pos: event_start, row: row_in_event as u32 });
            }
        }
        let max_part = self.opts.max_tx_part_bytes;
        t.size += rows_event.rows_data().len();
        t.part_size += rows_event.rows_data().len();
        if t.in_begin && t.part_size >= max_part {
            // A big transaction: send what we have as a part, so memory stays bounded.
            if t.size == t.part_size {
                tracing::info!(gtid = %t.gtid, part_bytes = max_part, "big transaction: sending it in parts");
            }
            let part = Transaction {
                gtid: t.gtid.clone(),
                position: Position {
                    gtid: self.gtid_state.clone(),
                    binlog_file: self.file.clone(),
                    binlog_pos: self.pos,
                },
                source_timestamp: t.timestamp,
                events: std::mem::take(&mut t.events),
                sources: std::mem::take(&mut t.sources),
                size: t.part_size,
                partial: true,
                origin: t.origin.clone(),
            };
            t.part_size = 0;
            if self.out.send(Change::Tx(part)).await.is_err() {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }

    /// The end of the transaction being read (XID, COMMIT, or a statement outside BEGIN).
    async fn commit(&mut self) -> Result<Flow> {
        if let Some(t) = self.tx.take() {
            finish_tx(
                t,
                &mut self.gtid_state,
                &self.file,
                self.pos,
                &self.out,
                &mut self.last_emit,
                &mut self.unsent_progress,
            )
            .await?;
        }
        Ok(Flow::Continue)
    }

    /// While idle, progress not yet sent (transactions on tables the job does not replicate) goes out as a
    /// heartbeat; transactions that are only another dtle job's bookkeeping go out at most every
    /// BOOKKEEPING_HEARTBEAT. Nothing else does: a periodic heartbeat would make the dest rewrite its position row,
    /// which a two-way partner reads back as a transaction, and the two would ping-pong.
    async fn on_idle_heartbeat(&mut self) -> Result<Flow> {
        let due = self.unsent_progress == Unsent::Progress
            || (self.unsent_progress == Unsent::Bookkeeping && self.last_emit.elapsed() >= BOOKKEEPING_HEARTBEAT);
        if self.tx.is_some() || !due {
            return Ok(Flow::Continue);
        }
        let position = Position { gtid: self.gtid_state.clone(), binlog_file: self.file.clone(), binlog_pos: self.pos };
        let heartbeat = Change::Heartbeat { position, source_timestamp: self.last_timestamp };
        if self.out.send(heartbeat).await.is_err() {
            return Ok(Flow::Stop);
        }
        self.last_emit = Instant::now();
        self.unsent_progress = Unsent::Nothing;
        Ok(Flow::Continue)
    }
}

/// A row change through a column map: the chosen values, in the map's order, for the projected table.
fn project_change(change: RowChange, output: &Arc<TableMeta>, indexes: &[usize]) -> RowChange {
    let project = |row: Vec<crate::value::Value>| -> Vec<crate::value::Value> {
        indexes.iter().map(|&i| row.get(i).cloned().unwrap_or(crate::value::Value::Absent)).collect()
    };
    let table = output.clone();
    match change {
        RowChange::Insert { after, .. } => RowChange::Insert { table, after: project(after) },
        RowChange::Update { before, after, .. } => {
            RowChange::Update { table, before: project(before), after: project(after) }
        }
        RowChange::Delete { before, .. } => RowChange::Delete { table, before: project(before) },
    }
}

/// Applies a row filter to one change: an update that moves a row into the filter becomes an insert, one that
/// moves it out becomes a delete; rows outside it on both sides are dropped.
pub fn filter_row_change(f: &BoundWhere, change: RowChange) -> std::result::Result<Option<RowChange>, WhereError> {
    Ok(match change {
        RowChange::Insert { table, after } => f.matches(&after)?.then_some(RowChange::Insert { table, after }),
        RowChange::Delete { table, before } => f.matches(&before)?.then_some(RowChange::Delete { table, before }),
        RowChange::Update { table, before, after } => match (f.matches(&before)?, f.matches(&after)?) {
            (true, true) => Some(RowChange::Update { table, before, after }),
            (true, false) => Some(RowChange::Delete { table, before }),
            (false, true) => Some(RowChange::Insert { table, after }),
            (false, false) => None,
        },
    })
}

fn new_plain_tx(timestamp: u32) -> TxBuilder {
    TxBuilder {
        gtid: String::new(),
        mariadb_gtid: None,
        mysql_gtid: None,
        in_begin: false,
        timestamp,
        events: Vec::new(),
        sources: Vec::new(),
        size: 0,
        part_size: 0,
        origin: None,
        dtle_rows: false,
        other_rows: false,
    }
}

/// Ends a transaction: advances the GTID state and sends it (or, when fully filtered out, notes progress and sends a
/// heartbeat at most once a second so the position keeps moving).
async fn finish_tx(
    t: TxBuilder,
    gtid_state: &mut Option<GtidState>,
    file: &str,
    pos: u64,
    out: &mpsc::Sender<Change>,
    last_emit: &mut Instant,
    unsent_progress: &mut Unsent,
) -> Result<()> {
    // A job that started from a binlog file/pos keeps file/pos positions: a GTID set built from the transactions
    // seen since would lack everything before them, and a restart from it would replay those.
    if let (Some((domain, server, seq)), Some(GtidState::Mariadb(list))) = (t.mariadb_gtid, gtid_state.as_mut()) {
        list.update(domain, server, seq);
    }
    if let (Some((sid, tag, gno)), Some(GtidState::Mysql(set))) = (&t.mysql_gtid, gtid_state.as_mut()) {
        set.add(*sid, tag, *gno);
    }
    let position = Position { gtid: gtid_state.clone(), binlog_file: file.to_string(), binlog_pos: pos };
    // A big transaction whose parts were sent ends with a last part even when it has no events left.
    let parts_sent = t.size > t.part_size;
    if t.events.is_empty() && !parts_sent {
        if t.dtle_rows && !t.other_rows {
            // Only dtle's own bookkeeping (a position row another job wrote here): sent later, alone.
            *unsent_progress = (*unsent_progress).max(Unsent::Bookkeeping);
            return Ok(());
        }
        *unsent_progress = Unsent::Progress;
        if last_emit.elapsed() >= Duration::from_secs(1) {
            let _ = out.send(Change::Heartbeat { position, source_timestamp: t.timestamp }).await;
            *last_emit = Instant::now();
            *unsent_progress = Unsent::Nothing;
        }
        return Ok(());
    }
    let tx = Transaction {
        gtid: t.gtid,
        position,
        source_timestamp: t.timestamp,
        events: t.events,
        sources: t.sources,
        size: t.part_size,
        partial: false,
        origin: t.origin,
    };
    let _ = out.send(Change::Tx(tx)).await;
    *last_emit = Instant::now();
    *unsent_progress = Unsent::Nothing;
    Ok(())
}

/// Source progress not yet sent to the dest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Unsent {
    Nothing,
    /// Only transactions that are another dtle job's bookkeeping (its position row on this server).
    Bookkeeping,
    /// Transactions the job filtered out (or the start position).
    Progress,
}

/// How often progress made only of dtle bookkeeping is sent while idle: it keeps the position moving (binlogs
/// can be purged) without letting two jobs feed each other's position writes quickly.
const BOOKKEEPING_HEARTBEAT: Duration = Duration::from_secs(30);

/// dtle's position table, whose rows mark the transactions dtle applied (see `applier`).
const MARKER_SCHEMA: &str = "dtle";
const MARKER_TABLE: &str = "replication_position";
const MARKER_ORIGIN_COLUMN: &str = "origin";

/// The origin written by dtle's marker row in a rows event on its position table.
fn marker_origin(
    plan: &TablePlan,
    origin_index: usize,
    rows_event: &mysql_async::binlog::events::RowsEventData<'_>,
) -> Option<String> {
    let decoded = decode_rows(plan, rows_event).ok()?;
    decoded.rows.into_iter().rev().find_map(|image| match image.after?.get(origin_index)? {
        crate::value::Value::Bytes(b) if !b.is_empty() => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    })
}

fn same_column_names(meta: &TableMeta, names: &[String]) -> bool {
    meta.columns.len() == names.len() && meta.columns.iter().zip(names).all(|(c, n)| c.name.eq_ignore_ascii_case(n))
}

/// A table's definition at a binlog position: the columns the TABLE_MAP names, with the current definition's
/// details for columns that kept their name and kind, and types from the binlog for the others.
fn meta_from_binlog(current: &TableMeta, plan: &TablePlan, names: &[String]) -> TableMeta {
    let columns: Vec<ColumnMeta> = names
        .iter()
        .zip(plan.columns())
        .map(|(name, col)| {
            let data_type = crate::binlog::rows::column_type::name(col.real_type)
                .to_ascii_lowercase()
                .replace("(fsp)", "")
                .replace("var_string", "varchar");
            let kind = crate::schema::data_type_kind(&data_type);
            match current.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name)) {
                Some(c) if crate::schema::data_type_kind(&c.data_type) == kind => c.clone(),
                _ => ColumnMeta {
                    name: name.clone(),
                    column_type: data_type.clone(),
                    data_type,
                    unsigned: col.unsigned,
                    nullable: col.nullable,
                    generated: false,
                    charset: None,
                    collation: None,
                },
            }
        })
        .collect();
    let key_columns: Option<Vec<usize>> = current
        .key_columns
        .iter()
        .map(|&k| {
            let name = &current.columns.get(k)?.name;
            columns.iter().position(|c| c.name.eq_ignore_ascii_case(name))
        })
        .collect();
    TableMeta { columns, key_columns: key_columns.unwrap_or_default(), ..current.clone() }
}

/// A statement for a message: at most about 300 characters.
fn shorten(sql: &str) -> String {
    match sql.char_indices().nth(300) {
        Some((at, _)) => format!("{}... ({} bytes)", &sql[..at], sql.len()),
        None => sql.to_string(),
    }
}

fn stream_error(at: BinlogAt, e: mysql_async::Error) -> MysqlError {
    if let mysql_async::Error::Server(s) = &e {
        if s.code == codes::SOURCE_FATAL_ERROR_READING_BINLOG {
            // Only the server's own word makes it a purge; otherwise say what it said.
            if s.message.to_ascii_lowercase().contains("purged") {
                return MysqlError::PositionPurged {
                    requested: format!("{}:{}", at.file, at.pos),
                    available: s.message.clone(),
                };
            }
            return MysqlError::Stream {
                at,
                reason: format!(
                    "the source refused to send its binlog from here: {} (error {}). Check that the job's start position is one this source wrote (SELECT @@gtid_binlog_pos, SHOW BINARY LOGS on it), or leave Gtid empty for a full copy",
                    s.message, s.code
                ),
                transient: false,
            };
        }
    }
    MysqlError::Stream { at, reason: e.to_string(), transient: crate::error::is_transient_driver_error(&e) }
}

/// Turns a panic inside the binlog library's event parsing (it unwraps on some malformed packets) into an
/// error item, so bad bytes from the network stop the task with a message instead of aborting the process.
struct PanicSafe<S>(S);

impl<S: Stream + Unpin> Stream for PanicSafe<S> {
    type Item = std::result::Result<S::Item, ()>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| std::pin::Pin::new(inner).poll_next(cx))) {
            Ok(std::task::Poll::Ready(item)) => std::task::Poll::Ready(item.map(Ok)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Some(Err(()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[&str]) -> Vec<(String, u64)> {
        names.iter().map(|n| (n.to_string(), 1000)).collect()
    }

    fn list(s: &str) -> MariadbGtidList {
        s.parse().unwrap()
    }

    #[test]
    fn a_mariadb_start_the_source_never_had_is_not_called_purged() {
        let state = parse_binlog_state("0-1-1563,0-2-40,1-1-7");
        let f = files(&["mariadb-bin.000003", "mariadb-bin.000004"]);
        let purged = list("0-1-1000");
        let problem = |requested: &str| mariadb_start_problem(&list(requested), &state, &purged, &f);
        assert_eq!(problem("0-1-1200,1-1-7"), None);
        assert!(matches!(problem("0-2-30,1-1-5"), Some(StartProblem::Purged { .. })));
        // Another server's GTID, one of an unknown domain, one a known server never reached.
        assert!(
            matches!(problem("0-13-5"), Some(StartProblem::NeverWritten { detail }) if detail.contains("server with id 13"))
        );
        assert!(matches!(problem("7-1-5"), Some(StartProblem::NeverWritten { detail }) if detail.contains("domain 7")));
        assert!(matches!(problem("0-2-41"), Some(StartProblem::NeverWritten { detail }) if detail.contains("0-2-40")));
        // Beyond the end of the domain.
        assert!(matches!(problem("0-1-99999"), Some(StartProblem::BeyondEnd { detail }) if detail.contains("1563")));
        // Really purged.
        assert!(
            matches!(problem("0-1-999,1-1-7"), Some(StartProblem::Purged { available }) if available.contains("mariadb-bin.000003"))
        );
        // A source reset since: nothing at all.
        assert!(matches!(
            mariadb_start_problem(&list("0-1-5"), &[], &MariadbGtidList::default(), &f),
            Some(StartProblem::NeverWritten { detail }) if detail.contains("RESET MASTER")
        ));
    }

    #[test]
    fn a_mysql_start_the_source_never_had_is_not_called_purged() {
        let a = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let b = "4e11fa47-71ca-11e1-9e33-c80aa9429562";
        let set = |s: &str| -> MysqlGtidSet { s.parse().unwrap() };
        let executed = set(&format!("{a}:1-100"));
        let purged = set(&format!("{a}:1-10"));
        assert_eq!(mysql_start_problem(&set(&format!("{a}:1-50")), &executed, &purged), None);
        assert!(matches!(
            mysql_start_problem(&set(&format!("{a}:1-50,{b}:1-5")), &executed, &purged),
            Some(StartProblem::NeverWritten { detail }) if detail.contains(b)
        ));
        assert!(matches!(
            mysql_start_problem(&set(&format!("{a}:1-150")), &executed, &purged),
            Some(StartProblem::BeyondEnd { detail }) if detail.contains("100")
        ));
        assert!(matches!(
            mysql_start_problem(&set(&format!("{a}:1-5")), &executed, &purged),
            Some(StartProblem::Purged { .. })
        ));
    }

    #[test]
    fn a_binlog_file_the_source_never_had_is_named_with_the_files_it_has() {
        let f = files(&["mariadb-bin.000003", "mariadb-bin.000004"]);
        assert_eq!(file_start_problem("mariadb-bin.000004", 900, &f), None);
        assert!(matches!(file_start_problem("mariadb-bin.000004", 5000, &f), Some(StartProblem::BeyondEnd { .. })));
        assert!(matches!(file_start_problem("mariadb-bin.000001", 4, &f), Some(StartProblem::Purged { .. })));
        for never in ["mariadb-bin.000009", "mysql-bin.000001", "nonsense"] {
            assert!(
                matches!(file_start_problem(never, 4, &f), Some(StartProblem::NoSuchFile { detail }) if detail.contains("mariadb-bin.000003, mariadb-bin.000004")),
                "{never}"
            );
        }
        let err = StartProblem::NoSuchFile { detail: "it has x".into() }
            .into_error(&Position { gtid: None, binlog_file: "nonsense".into(), binlog_pos: 4 })
            .to_string();
        assert!(err.contains("nonsense:4") && err.contains("SHOW BINARY LOGS") && !err.contains("purged"), "{err}");
    }
}
