//! MariaDB's own binlog events (types 160-171), which mysql_common does not parse: the raw body comes from
//! `event.data()` (checksum already stripped) and the type from `event.header().event_type_raw()`.

use super::rows::{Cursor, DecodeError};

pub const ANNOTATE_ROWS_EVENT: u8 = 160;
pub const BINLOG_CHECKPOINT_EVENT: u8 = 161;
pub const GTID_EVENT: u8 = 162;
pub const GTID_LIST_EVENT: u8 = 163;
pub const START_ENCRYPTION_EVENT: u8 = 164;
pub const QUERY_COMPRESSED_EVENT: u8 = 165;
pub const WRITE_ROWS_COMPRESSED_EVENT_V1: u8 = 166;
pub const UPDATE_ROWS_COMPRESSED_EVENT_V1: u8 = 167;
pub const DELETE_ROWS_COMPRESSED_EVENT_V1: u8 = 168;
pub const WRITE_ROWS_COMPRESSED_EVENT: u8 = 169;
pub const UPDATE_ROWS_COMPRESSED_EVENT: u8 = 170;
pub const DELETE_ROWS_COMPRESSED_EVENT: u8 = 171;

/// GTID event flags (MariaDB `Gtid_log_event::FL_*`).
pub const FL_STANDALONE: u8 = 1;
pub const FL_GROUP_COMMIT_ID: u8 = 2;
pub const FL_TRANSACTIONAL: u8 = 4;
pub const FL_ALLOW_PARALLEL: u8 = 8;
pub const FL_WAITED: u8 = 16;
pub const FL_DDL: u8 = 32;
pub const FL_PREPARED_XA: u8 = 64;
pub const FL_COMPLETED_XA: u8 = 128;

/// A MariaDB GTID event: the start of an event group `domain_id-server_id-seq_no`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MariadbGtidEvent {
    pub domain_id: u32,
    /// From the event header.
    pub server_id: u32,
    pub seq_no: u64,
    pub flags: u8,
    /// Present with FL_GROUP_COMMIT_ID: transactions with the same id committed together.
    pub commit_id: Option<u64>,
    /// FL_STANDALONE: a DDL or non-transactional statement with no BEGIN/COMMIT around it.
    pub is_standalone: bool,
}

impl MariadbGtidEvent {
    /// The GTID as MariaDB prints it: `domain-server-seq`.
    pub fn gtid(&self) -> String {
        format!("{}-{}-{}", self.domain_id, self.server_id, self.seq_no)
    }

    pub fn is_ddl(&self) -> bool {
        self.flags & FL_DDL != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.flags & FL_TRANSACTIONAL != 0
    }
}

fn truncated(what: &str, offset: usize) -> DecodeError {
    DecodeError::Truncated { what: what.to_string(), offset }
}

/// Parses a GTID event body: seq_no u64 LE, domain_id u32 LE, flags u8, then commit_id u64 with
/// FL_GROUP_COMMIT_ID, and XA info (format id u32, gtrid length u8, bqual length u8, data) with
/// FL_PREPARED_XA/FL_COMPLETED_XA, which is checked for length and otherwise skipped.
pub fn parse_gtid_event(server_id: u32, body: &[u8]) -> Result<MariadbGtidEvent, DecodeError> {
    let mut c = Cursor::new(body);
    let seq_no = c.u64_le().map_err(|_| truncated("MariaDB GTID event: seq_no", c.pos()))?;
    let domain_id = c.u32_le().map_err(|_| truncated("MariaDB GTID event: domain_id", c.pos()))?;
    let flags = c.u8().map_err(|_| truncated("MariaDB GTID event: flags", c.pos()))?;
    let commit_id = if flags & FL_GROUP_COMMIT_ID != 0 {
        Some(c.u64_le().map_err(|_| truncated("MariaDB GTID event: commit_id", c.pos()))?)
    } else {
        None
    };
    if flags & (FL_PREPARED_XA | FL_COMPLETED_XA) != 0 {
        let xa = |c: &mut Cursor<'_>| -> Result<(), super::rows::CellErr> {
            c.u32_le()?;
            let g = c.u8()?;
            let b = c.u8()?;
            c.take(usize::from(g) + usize::from(b))?;
            Ok(())
        };
        xa(&mut c).map_err(|_| truncated("MariaDB GTID event: XA id", c.pos()))?;
    }
    Ok(MariadbGtidEvent { domain_id, server_id, seq_no, flags, commit_id, is_standalone: flags & FL_STANDALONE != 0 })
}

/// Parses a GTID_LIST event body: count u32 (low 28 bits; the top 4 are flags), then count ×
/// (domain_id u32, server_id u32, seq_no u64).
pub fn parse_gtid_list_event(body: &[u8]) -> Result<Vec<(u32, u32, u64)>, DecodeError> {
    let mut c = Cursor::new(body);
    let raw = c.u32_le().map_err(|_| truncated("MariaDB GTID_LIST event: count", 0))?;
    let count = (raw & 0x0fff_ffff) as usize;
    if count.saturating_mul(16) > c.remaining() {
        return Err(truncated(
            &format!(
                "MariaDB GTID_LIST event: {count} GTIDs need {} bytes, {} left",
                count.saturating_mul(16),
                c.remaining()
            ),
            4,
        ));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let at = c.pos();
        let e = (|| -> Result<(u32, u32, u64), super::rows::CellErr> { Ok((c.u32_le()?, c.u32_le()?, c.u64_le()?)) })()
            .map_err(|_| truncated("MariaDB GTID_LIST event entry", at))?;
        out.push(e);
    }
    Ok(out)
}

/// The statement text of an ANNOTATE_ROWS event (lossy UTF-8).
pub fn parse_annotate_rows(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

/// The binlog file name of a BINLOG_CHECKPOINT event (u32 length, then the name).
pub fn parse_binlog_checkpoint(body: &[u8]) -> Result<String, DecodeError> {
    let mut c = Cursor::new(body);
    let len = c.u32_le().map_err(|_| truncated("MariaDB BINLOG_CHECKPOINT event: length", 0))?;
    let name = c.take(len as usize).map_err(|_| truncated("MariaDB BINLOG_CHECKPOINT event: file name", 4))?;
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// True for MariaDB's compressed QUERY/ROWS events (165-171).
pub fn is_compressed_event(event_type: u8) -> bool {
    (QUERY_COMPRESSED_EVENT..=DELETE_ROWS_COMPRESSED_EVENT).contains(&event_type)
}

/// Rejects event types the reader cannot handle with an actionable message: compressed events
/// (log_bin_compress=ON) and encrypted binlogs (START_ENCRYPTION). Other types pass.
pub fn check_supported(event_type: u8) -> Result<(), DecodeError> {
    if is_compressed_event(event_type) {
        return Err(DecodeError::Unsupported {
            what: format!(
                "MariaDB compressed binlog event (type {event_type}); set log_bin_compress=OFF on the source"
            ),
        });
    }
    if event_type == START_ENCRYPTION_EVENT {
        return Err(DecodeError::Unsupported {
            what: "encrypted MariaDB binlog file (START_ENCRYPTION event); read it through the server (binlog \
                   dump), which decrypts, or set encrypt_binlog=OFF"
                .to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_event() {
        let mut b = vec![];
        b.extend_from_slice(&42u64.to_le_bytes());
        b.extend_from_slice(&7u32.to_le_bytes());
        b.push(FL_STANDALONE | FL_DDL);
        b.extend_from_slice(&[0; 6]);
        let g = parse_gtid_event(3, &b).unwrap();
        assert_eq!(g.gtid(), "7-3-42");
        assert!(g.is_standalone && g.is_ddl() && g.commit_id.is_none());

        let mut b = vec![];
        b.extend_from_slice(&5u64.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.push(FL_GROUP_COMMIT_ID | FL_TRANSACTIONAL);
        b.extend_from_slice(&99u64.to_le_bytes());
        let g = parse_gtid_event(1, &b).unwrap();
        assert_eq!(g.commit_id, Some(99));
        assert!(!g.is_standalone && g.is_transactional());

        let mut x = vec![];
        x.extend_from_slice(&5u64.to_le_bytes());
        x.extend_from_slice(&0u32.to_le_bytes());
        x.push(FL_PREPARED_XA);
        x.extend_from_slice(&1u32.to_le_bytes());
        x.extend_from_slice(&[2, 1, b'a', b'b', b'c']);
        assert!(parse_gtid_event(1, &x).is_ok());
        for cut in 0..x.len() {
            assert!(parse_gtid_event(1, &x[..cut]).is_err(), "prefix {cut}");
        }
    }

    #[test]
    fn gtid_list() {
        let mut b = vec![];
        b.extend_from_slice(&(2u32 | 0x1000_0000).to_le_bytes());
        for (d, s, q) in [(0u32, 1u32, 10u64), (1, 2, 20)] {
            b.extend_from_slice(&d.to_le_bytes());
            b.extend_from_slice(&s.to_le_bytes());
            b.extend_from_slice(&q.to_le_bytes());
        }
        assert_eq!(parse_gtid_list_event(&b).unwrap(), vec![(0, 1, 10), (1, 2, 20)]);
        for cut in 0..b.len() {
            assert!(parse_gtid_list_event(&b[..cut]).is_err());
        }
        // A huge declared count is an error, not an allocation.
        assert!(parse_gtid_list_event(&0x0fff_ffffu32.to_le_bytes()).is_err());
    }

    #[test]
    fn checkpoint_and_annotate() {
        let mut b = 10u32.to_le_bytes().to_vec();
        b.extend_from_slice(b"bin.000001");
        assert_eq!(parse_binlog_checkpoint(&b).unwrap(), "bin.000001");
        assert!(parse_binlog_checkpoint(&b[..8]).is_err());
        assert_eq!(parse_annotate_rows(b"insert into t values (1)"), "insert into t values (1)");
    }

    #[test]
    fn compressed_events_are_unsupported_with_fix() {
        for t in 165..=171 {
            let e = check_supported(t).unwrap_err().to_string();
            assert!(e.contains("log_bin_compress=OFF"), "{e}");
        }
        assert!(check_supported(GTID_EVENT).is_ok());
        assert!(check_supported(START_ENCRYPTION_EVENT).is_err());
    }
}
