//! Reading binlog files (test fixtures now, relay logs later) with our own framing, so that damaged input
//! gives an error instead of a panic: mysql_common's `Event::read` unwraps a `read_exact` on the body and
//! slices the checksum off without a length check, so every event's declared size is checked against the
//! bytes left before mysql_common sees it. mysql_common's `EventStreamReader` still tracks the FDE and the
//! TABLE_MAP events.
//!
//! TRANSACTION_PAYLOAD events (MySQL 8 `binlog_transaction_compression=ON`) are returned, then their inner
//! events one by one; the zstd payload is decompressed here, bounded by its declared uncompressed size,
//! with a clear error on a zstd failure (mysql_common silently returns an empty payload).

use std::io::Read as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use mysql_common::binlog::consts::{BinlogChecksumAlg, BinlogVersion};
use mysql_common::binlog::events::{Event, EventData, TableMapEvent};
use mysql_common::binlog::EventStreamReader;

use super::mariadb;
use super::rows::{Cursor, DecodeError};

/// The 4 bytes every binlog file starts with.
pub const BINLOG_MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];
const HEADER_LEN: usize = 19;
const MAX_EVENT_SIZE: usize = 1 << 30;
const FORMAT_DESCRIPTION_EVENT: u8 = 0x0f;
const TRANSACTION_PAYLOAD_EVENT: u8 = 0x28;
const PREVIOUS_GTIDS_EVENT: u8 = 0x23;

/// Verifies an event's CRC32 when its format description says checksums are on. A mismatch is
/// [`DecodeError::Checksum`] with the event's start offset taken from the header (`log_pos - event_size`;
/// the file reader reports the real file offset instead). Events inside a TRANSACTION_PAYLOAD carry no
/// checksum and pass.
pub fn verify_checksum(event: &Event) -> Result<(), DecodeError> {
    let footer = event.footer();
    if !footer.get_checksum_enabled() {
        return Ok(());
    }
    match footer.get_checksum_alg() {
        Ok(Some(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32)) => {}
        // OFF, absent (pre-5.6.1 server) or an algorithm we cannot check (UNDEF in some relay logs).
        _ => return Ok(()),
    }
    let Some(stored) = event.checksum() else {
        return Ok(());
    };
    let stored = u32::from_le_bytes(stored);
    let computed = event.calc_checksum(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32);
    if stored != computed {
        let h = event.header();
        return Err(DecodeError::Checksum {
            offset: u64::from(h.log_pos().saturating_sub(h.event_size())),
            stored,
            computed,
        });
    }
    Ok(())
}

/// `event.read_data()` with errors (and, defensively, panics of mysql_common's parsers on malformed bytes)
/// turned into [`DecodeError::Malformed`]; MariaDB compressed events and encrypted binlogs are
/// [`DecodeError::Unsupported`] with the fix. `Ok(None)` for event types mysql_common does not parse
/// (MariaDB's 160-164: see [`super::mariadb`]).
pub fn event_data(event: &Event) -> Result<Option<EventData<'_>>, DecodeError> {
    let h = event.header();
    mariadb::check_supported(h.event_type_raw())?;
    let offset = u64::from(h.log_pos().saturating_sub(h.event_size()));
    if h.event_type_raw() == PREVIOUS_GTIDS_EVENT {
        // mysql_common allocates the declared counts before reading: check them against the body first.
        check_previous_gtids(event.data())
            .map_err(|reason| DecodeError::Malformed { offset, reason: format!("PREVIOUS_GTIDS: {reason}") })?;
    }
    match catch_unwind(AssertUnwindSafe(|| event.read_data())) {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(DecodeError::Malformed {
            offset,
            reason: format!("cannot parse event of type {}: {e}", h.event_type_raw()),
        }),
        Err(_) => Err(DecodeError::Malformed {
            offset,
            reason: format!("event parser failed on malformed bytes of an event of type {}", h.event_type_raw()),
        }),
    }
}

/// Walks a PREVIOUS_GTIDS body (u64 header with the SID count and, for the tagged format, a format byte;
/// per SID: UUID, [varlen tag], u64 interval count, 16 bytes per interval) checking every count against the
/// bytes left.
fn check_previous_gtids(body: &[u8]) -> Result<(), String> {
    let mut c = Cursor::new(body);
    let header = c.u64_le().map_err(|_| "too short for its header".to_string())?;
    let tagged = (header >> 56) != 0;
    let n_sids = if tagged { (header >> 8) & ((1 << 48) - 1) } else { header & ((1 << 56) - 1) };
    if n_sids > (c.remaining() / 24) as u64 {
        return Err(format!("{n_sids} SIDs cannot fit in {} bytes", c.remaining()));
    }
    for _ in 0..n_sids {
        c.take(16).map_err(|_| "truncated UUID".to_string())?;
        if tagged {
            let mut pb = mysql_common::io::ParseBuf(c.rest());
            let before = pb.0.len();
            let tag_len = mysql_common::misc::read_varlen_uint(&mut pb).map_err(|e| format!("bad tag length: {e}"))?;
            c.take(before - pb.0.len()).map_err(|_| "truncated tag length".to_string())?;
            c.take(usize::try_from(tag_len).unwrap_or(usize::MAX)).map_err(|_| "truncated tag".to_string())?;
        }
        let n = c.u64_le().map_err(|_| "truncated interval count".to_string())?;
        if n > (c.remaining() / 16) as u64 {
            return Err(format!("{n} intervals cannot fit in {} bytes", c.remaining()));
        }
        c.take(n as usize * 16).map_err(|_| "truncated intervals".to_string())?;
    }
    Ok(())
}

/// Decompressed inner events of a TRANSACTION_PAYLOAD event being handed out.
struct Inner {
    buf: Vec<u8>,
    pos: usize,
    outer_offset: u64,
}

/// Reads the events of a binlog file held in memory.
pub struct BinlogFileReader {
    bytes: Vec<u8>,
    pos: usize,
    reader: EventStreamReader,
    inner: Option<Inner>,
    verify_checksums: bool,
    /// Set after an error or at the end: further calls return `Ok(None)`.
    done: bool,
}

impl std::fmt::Debug for BinlogFileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinlogFileReader").field("len", &self.bytes.len()).field("pos", &self.pos).finish()
    }
}

impl BinlogFileReader {
    /// Opens a binlog file; checks the 4-byte magic.
    pub fn open(path: &Path) -> Result<Self, DecodeError> {
        let bytes = std::fs::read(path).map_err(|e| {
            DecodeError::Io(std::io::Error::new(e.kind(), format!("reading binlog file {}: {e}", path.display())))
        })?;
        Self::from_bytes(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, DecodeError> {
        if bytes.get(..4) != Some(&BINLOG_MAGIC[..]) {
            return Err(DecodeError::Malformed {
                offset: 0,
                reason: "not a binlog file: it does not start with the magic bytes \\xfe b i n".to_string(),
            });
        }
        Ok(BinlogFileReader {
            bytes,
            pos: 4,
            reader: EventStreamReader::new(BinlogVersion::Version4),
            inner: None,
            verify_checksums: true,
            done: false,
        })
    }

    /// Turns CRC32 verification off (on by default).
    pub fn set_verify_checksums(&mut self, on: bool) {
        self.verify_checksums = on;
    }

    /// Offset of the next top-level event in the file.
    pub fn position(&self) -> u64 {
        self.pos as u64
    }

    /// Next event with its start offset in the file (for events from inside a TRANSACTION_PAYLOAD, the
    /// payload event's offset). `Ok(None)` at the end of the file; after an error the reader stays at its
    /// end (returns `Ok(None)`), so loops terminate.
    pub fn next_event(&mut self) -> Result<Option<(u64, Event)>, DecodeError> {
        if self.done {
            return Ok(None);
        }
        let r = self.next_inner();
        match &r {
            Err(_) | Ok(None) => self.done = true,
            Ok(Some(_)) => {}
        }
        r
    }

    /// The TABLE_MAP event last seen for `table_id`.
    pub fn get_tme(&self, table_id: u64) -> Option<&TableMapEvent<'static>> {
        self.reader.get_tme(table_id)
    }

    fn next_inner(&mut self) -> Result<Option<(u64, Event)>, DecodeError> {
        if let Some(inner) = self.inner.as_mut() {
            if inner.pos < inner.buf.len() {
                let outer = inner.outer_offset;
                let at = inner.pos;
                let size = frame(&inner.buf, at, outer, true)?;
                let slice = inner.buf.get(at..at + size).unwrap_or(&[]);
                inner.pos += size;
                let reader = &mut self.reader;
                let ev = guarded(outer, || reader.read_decompressed(slice))?;
                return Ok(Some((outer, ev)));
            }
            self.inner = None;
        }
        if self.pos >= self.bytes.len() {
            return Ok(None);
        }
        let at = self.pos;
        let offset = at as u64;
        let size = frame(&self.bytes, at, 0, false)?;
        let event_type = self.bytes.get(at + 4).copied().unwrap_or(0);
        // With checksums on, a non-FDE event must hold at least its 4-byte checksum (mysql_common slices
        // it off unchecked).
        if event_type != FORMAT_DESCRIPTION_EVENT && size < HEADER_LEN + 4 && self.checksums_on() {
            return Err(DecodeError::Malformed {
                offset,
                reason: format!("event of {size} bytes cannot hold its header and CRC32"),
            });
        }
        let slice = self.bytes.get(at..at + size).unwrap_or(&[]);
        let reader = &mut self.reader;
        let ev = guarded(offset, || reader.read(slice))?;
        self.pos += size;
        if self.verify_checksums {
            verify_checksum(&ev).map_err(|e| match e {
                DecodeError::Checksum { stored, computed, .. } => DecodeError::Checksum { offset, stored, computed },
                other => other,
            })?;
        }
        if event_type == mariadb::START_ENCRYPTION_EVENT {
            mariadb::check_supported(event_type)?;
        }
        if event_type == TRANSACTION_PAYLOAD_EVENT {
            let buf = decompress_payload(ev.data()).map_err(|reason| DecodeError::Malformed {
                offset,
                reason: format!("TRANSACTION_PAYLOAD: {reason}"),
            })?;
            self.inner = Some(Inner { buf, pos: 0, outer_offset: offset });
        }
        Ok(Some((offset, ev)))
    }

    fn checksums_on(&self) -> bool {
        let footer = self.reader.get_fde().footer();
        !matches!(footer.get_checksum_alg(), Ok(None) | Ok(Some(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_OFF)))
    }
}

/// Checks the event header at `at` and returns the event size.
fn frame(buf: &[u8], at: usize, outer: u64, inner: bool) -> Result<usize, DecodeError> {
    let left = buf.len().saturating_sub(at);
    let where_ = |r: String| {
        if inner {
            DecodeError::Malformed {
                offset: outer,
                reason: format!("inside TRANSACTION_PAYLOAD at payload byte {at}: {r}"),
            }
        } else {
            DecodeError::Malformed { offset: at as u64, reason: r }
        }
    };
    if left < HEADER_LEN {
        return Err(where_(format!("truncated event: {left} bytes left, an event header needs {HEADER_LEN}")));
    }
    let size = buf.get(at + 9..at + 13).and_then(|s| <[u8; 4]>::try_from(s).ok()).map(u32::from_le_bytes).unwrap_or(0)
        as usize;
    if size < HEADER_LEN {
        return Err(where_(format!("event size {size} is smaller than the {HEADER_LEN}-byte header")));
    }
    if size > MAX_EVENT_SIZE {
        return Err(where_(format!("event size {size} exceeds 1 GiB")));
    }
    if size > left {
        return Err(where_(format!("truncated event: header declares {size} bytes, only {left} left")));
    }
    Ok(size)
}

/// Runs a mysql_common read on bounded input, turning errors (and, defensively, panics) into
/// [`DecodeError`]s.
fn guarded<F>(offset: u64, f: F) -> Result<Event, DecodeError>
where
    F: FnOnce() -> std::io::Result<Option<Event>>,
{
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(Some(ev))) => Ok(ev),
        Ok(Ok(None)) => Err(DecodeError::Malformed { offset, reason: "unexpected end of event data".into() }),
        Ok(Err(e)) => Err(DecodeError::Malformed { offset, reason: format!("cannot parse event: {e}") }),
        Err(_) => Err(DecodeError::Malformed { offset, reason: "event parser failed on malformed bytes".into() }),
    }
}

/// Parses a TRANSACTION_PAYLOAD body (fields: type, length, value as packed integers; type 0 ends the
/// header; then the payload) and returns the uncompressed inner event stream.
pub fn decompress_payload(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut c = Cursor::new(data);
    let mut payload_size: Option<u64> = None;
    let mut compression: Option<u64> = None;
    let mut uncompressed_size: Option<u64> = None;
    loop {
        if c.is_empty() {
            return Err("header has no end mark".into());
        }
        let t = c.lenenc().map_err(|_| "bad field type".to_string())?;
        if t == 0 {
            break;
        }
        let len = c.lenenc().map_err(|_| "bad field length".to_string())?;
        let v = c
            .take(usize::try_from(len).unwrap_or(usize::MAX))
            .map_err(|_| format!("field {t} declares {len} bytes, fewer remain"))?;
        let val = || Cursor::new(v).lenenc().map_err(|_| format!("bad value of field {t}"));
        match t {
            1 => payload_size = Some(val()?),
            2 => compression = Some(val()?),
            3 => uncompressed_size = Some(val()?),
            _ => {}
        }
    }
    let payload_size = payload_size.ok_or("header lacks the payload size")?;
    let payload = c
        .take(usize::try_from(payload_size).unwrap_or(usize::MAX))
        .map_err(|_| format!("payload size {payload_size} exceeds the {} bytes left", c.remaining()))?;
    if let Some(u) = uncompressed_size {
        if u > MAX_EVENT_SIZE as u64 {
            return Err(format!("declared uncompressed size {u} exceeds 1 GiB"));
        }
    }
    match compression.ok_or("header lacks the compression type")? {
        255 => Ok(payload.to_vec()),
        0 => {
            let limit = uncompressed_size.unwrap_or(MAX_EVENT_SIZE as u64);
            let dec = zstd::stream::read::Decoder::with_buffer(payload).map_err(|e| format!("zstd: {e}"))?;
            let mut out = Vec::with_capacity(limit.min(64 << 20) as usize);
            dec.take(limit + 1).read_to_end(&mut out).map_err(|e| format!("zstd decompression failed: {e}"))?;
            if out.len() as u64 > limit {
                return Err(format!("decompressed payload exceeds the declared {limit} bytes"));
            }
            if let Some(u) = uncompressed_size {
                if out.len() as u64 != u {
                    return Err(format!("decompressed payload has {} bytes, the header declares {u}", out.len()));
                }
            }
            Ok(out)
        }
        other => Err(format!("unknown compression type {other}")),
    }
}
