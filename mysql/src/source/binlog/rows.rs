//! Row-image decoding with a per-table plan.
//!
//! A [`TablePlan`] is built once per TABLE_MAP event: every column's binlog type, its metadata (lengths,
//! precision/scale, fsp, the real type of STRING columns) and its signedness are resolved up front into a
//! small [`Codec`], so decoding a row is one pass over the row bytes with no metadata walking and no
//! allocation except the row vector and the byte/string payloads themselves.
//!
//! Row format (MySQL and MariaDB, rows events v1 and v2): the event carries one column bitmap per image
//! (before for UPDATE/DELETE, after for WRITE/UPDATE). Each row image is a NULL bitmap with one bit per
//! column *present* in the image (LSB first), followed by the values of the present, non-NULL columns in
//! column order. UPDATE rows are a before image followed by an after image.
//!
//! All reads of event bytes are bounds-checked; malformed input gives a [`DecodeError`], never a panic.

use mysql_common::binlog::events::{RowsEventData, TableMapEvent};
use mysql_common::proto::MySerialize;

use super::jsonb::jsonb_to_json_text;
use crate::value::Value;

/// Column type bytes as they appear in TABLE_MAP events (MySQL's `enum_field_types`).
pub mod column_type {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const TYPED_ARRAY: u8 = 20;
    pub const VECTOR: u8 = 242;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;

    /// A readable name for messages.
    pub fn name(t: u8) -> &'static str {
        match t {
            DECIMAL => "DECIMAL",
            TINY => "TINYINT",
            SHORT => "SMALLINT",
            LONG => "INT",
            FLOAT => "FLOAT",
            DOUBLE => "DOUBLE",
            NULL => "NULL",
            TIMESTAMP => "TIMESTAMP",
            LONGLONG => "BIGINT",
            INT24 => "MEDIUMINT",
            DATE => "DATE",
            TIME => "TIME",
            DATETIME => "DATETIME",
            YEAR => "YEAR",
            NEWDATE => "NEWDATE",
            VARCHAR => "VARCHAR",
            BIT => "BIT",
            TIMESTAMP2 => "TIMESTAMP(fsp)",
            DATETIME2 => "DATETIME(fsp)",
            TIME2 => "TIME(fsp)",
            TYPED_ARRAY => "TYPED_ARRAY",
            VECTOR => "VECTOR",
            JSON => "JSON",
            NEWDECIMAL => "DECIMAL",
            ENUM => "ENUM",
            SET => "SET",
            TINY_BLOB | MEDIUM_BLOB | LONG_BLOB | BLOB => "BLOB",
            VAR_STRING => "VAR_STRING",
            STRING => "CHAR",
            GEOMETRY => "GEOMETRY",
            _ => "unknown",
        }
    }

    /// Types that get a bit in the TABLE_MAP SIGNEDNESS optional metadata (MySQL's
    /// `has_signedness_information_type`, MariaDB likewise; YEAR included).
    pub fn has_signedness(t: u8) -> bool {
        matches!(t, TINY | SHORT | INT24 | LONG | LONGLONG | DECIMAL | NEWDECIMAL | FLOAT | DOUBLE | YEAR)
    }
}

/// Everything that can go wrong while reading binlog bytes.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before a value/structure was complete.
    #[error("truncated input: {what} (at byte offset {offset})")]
    Truncated { what: String, offset: usize },
    /// A TABLE_MAP column's metadata makes no sense.
    #[error("bad TABLE_MAP metadata for {table} column {column}: {reason}")]
    BadMetadata { table: String, column: usize, reason: String },
    /// A TABLE_MAP event that cannot be parsed as a whole.
    #[error("malformed TABLE_MAP for {table}: {reason}")]
    BadTableMap { table: String, reason: String },
    /// A column type byte this decoder does not know.
    #[error("unknown column type {type_byte} in TABLE_MAP for {table} column {column}")]
    UnknownColumnType { table: String, column: usize, type_byte: u8 },
    /// Bytes that are present but do not form a valid value of the column type.
    #[error("invalid value in {table} column {column} ({type_name}): {reason}")]
    InvalidValue { table: String, column: usize, type_name: &'static str, reason: String },
    /// A valid construct this decoder deliberately does not handle; `what` says what and how to avoid it.
    #[error("unsupported: {what}")]
    Unsupported { what: String },
    /// A rows event whose structure (column bitmaps, row framing) is inconsistent.
    #[error("malformed rows event for {table}: {reason}")]
    BadRowsEvent { table: String, reason: String },
    /// The rows event and the table plan (or a schema hint) disagree on the number of columns.
    #[error("column count mismatch for {table}: {what} has {found} columns, the TABLE_MAP has {expected}")]
    ColumnCountMismatch { table: String, what: &'static str, expected: usize, found: usize },
    /// Malformed MySQL binary JSON.
    #[error("invalid binary JSON at byte {offset}: {reason}")]
    Json { offset: usize, reason: String },
    /// A binlog event (or file) that cannot be framed or parsed.
    #[error("malformed binlog at offset {offset}: {reason}")]
    Malformed { offset: u64, reason: String },
    /// A CRC32 mismatch: the event bytes are damaged.
    #[error("binlog event checksum mismatch at offset {offset}: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { offset: u64, stored: u32, computed: u32 },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

// ---------------------------------------------------------------------------------------------------------
// Cursor

/// Low-level failure of a cell read; turned into a [`DecodeError`] with table/column context by the caller.
#[derive(Debug)]
pub(crate) enum CellErr {
    /// `need` more bytes were required than were left.
    Short {
        need: usize,
    },
    Invalid(String),
    Unsupported(String),
}

/// A bounds-checked reader over event bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    #[inline]
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], CellErr> {
        let end = self.pos.checked_add(n).ok_or(CellErr::Short { need: n })?;
        match self.buf.get(self.pos..end) {
            Some(s) => {
                self.pos = end;
                Ok(s)
            }
            None => Err(CellErr::Short { need: n }),
        }
    }

    #[inline]
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], CellErr> {
        let end = self.pos.checked_add(N).ok_or(CellErr::Short { need: N })?;
        match self.buf.get(self.pos..end).and_then(|s| <[u8; N]>::try_from(s).ok()) {
            Some(a) => {
                self.pos = end;
                Ok(a)
            }
            None => Err(CellErr::Short { need: N }),
        }
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, CellErr> {
        match self.buf.get(self.pos) {
            Some(b) => {
                self.pos += 1;
                Ok(*b)
            }
            None => Err(CellErr::Short { need: 1 }),
        }
    }

    #[inline]
    pub(crate) fn u16_le(&mut self) -> Result<u16, CellErr> {
        self.array::<2>().map(u16::from_le_bytes)
    }

    #[inline]
    pub(crate) fn u32_le(&mut self) -> Result<u32, CellErr> {
        self.array::<4>().map(u32::from_le_bytes)
    }

    #[inline]
    pub(crate) fn u64_le(&mut self) -> Result<u64, CellErr> {
        self.array::<8>().map(u64::from_le_bytes)
    }

    /// Little-endian unsigned integer of `n` (1..=8) bytes.
    #[inline]
    pub(crate) fn uint_le(&mut self, n: usize) -> Result<u64, CellErr> {
        let s = self.take(n)?;
        let mut v = 0u64;
        for (i, b) in s.iter().take(8).enumerate() {
            v |= u64::from(*b) << (8 * i);
        }
        Ok(v)
    }

    /// Big-endian unsigned integer of `n` (1..=8) bytes.
    #[inline]
    pub(crate) fn uint_be(&mut self, n: usize) -> Result<u64, CellErr> {
        let s = self.take(n)?;
        let mut v = 0u64;
        for b in s.iter().take(8) {
            v = (v << 8) | u64::from(*b);
        }
        Ok(v)
    }

    /// MySQL "packed" length-encoded integer (251 = NULL is rejected).
    pub(crate) fn lenenc(&mut self) -> Result<u64, CellErr> {
        match self.u8()? {
            x @ 0..=250 => Ok(u64::from(x)),
            252 => self.uint_le(2),
            253 => self.uint_le(3),
            254 => self.uint_le(8),
            x => Err(CellErr::Invalid(format!("invalid length-encoded integer prefix {x:#04x}"))),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Plan

/// How one column's value is laid out in a row image (resolved from type + metadata + signedness).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Int8 {
        unsigned: bool,
    },
    Int16 {
        unsigned: bool,
    },
    Int24 {
        unsigned: bool,
    },
    Int32 {
        unsigned: bool,
    },
    Int64 {
        unsigned: bool,
    },
    Float,
    Double,
    /// NEWDECIMAL(precision, scale).
    Decimal {
        precision: u8,
        scale: u8,
    },
    Year,
    Date,
    /// Old 3-byte TIME (HHMMSS as an integer).
    Time,
    Time2 {
        fsp: u8,
    },
    /// Old 8-byte DATETIME (YYYYMMDDhhmmss as an integer).
    DateTime,
    DateTime2 {
        fsp: u8,
    },
    /// Old 4-byte TIMESTAMP.
    Timestamp,
    Timestamp2 {
        fsp: u8,
    },
    /// VARCHAR/VAR_STRING and CHAR/BINARY: a 1- or 2-byte length prefix, then the bytes.
    VarBytes {
        prefix: u8,
    },
    /// BINARY(n): like `VarBytes`, and the trailing 0x00 bytes the server cut when writing the binlog are put back,
    /// up to `len` bytes (the server pads on read too).
    FixedBinary {
        prefix: u8,
        len: u32,
    },
    /// BLOB/TEXT/GEOMETRY/VECTOR: a 1..=4-byte length prefix, then the bytes.
    Blob {
        prefix: u8,
    },
    /// MySQL binary JSON with a 1..=4-byte length prefix.
    Json {
        prefix: u8,
    },
    Enum {
        len: u8,
    },
    Set {
        len: u8,
    },
    Bit {
        bytes: u8,
    },
    /// The NULL type: no bytes.
    Null,
    /// A column this decoder cannot decode (legacy DECIMAL, typed arrays): an error only if a row has it.
    Unsupported {
        type_byte: u8,
    },
}

/// One column of a [`TablePlan`].
#[derive(Clone, Debug)]
pub struct ColumnPlan {
    /// Column type byte from the TABLE_MAP.
    pub binlog_type: u8,
    /// Real type: for STRING columns the ENUM/SET/STRING type from the metadata, else `binlog_type`.
    pub real_type: u8,
    /// Raw metadata bytes (0..=2 significant; typed arrays are not kept).
    pub metadata: [u8; 2],
    /// UNSIGNED (integer columns).
    pub unsigned: bool,
    /// Nullable according to the TABLE_MAP null bitmap.
    pub nullable: bool,
    /// Maximum length in bytes for CHAR/VARCHAR columns (0 for others).
    pub max_length: u32,
    pub codec: Codec,
}

/// The raw parts of a TABLE_MAP event, for building a plan without a parsed event (tests, benches).
#[derive(Clone, Copy, Debug)]
pub struct RawTableMap<'a> {
    pub table_id: u64,
    pub schema: &'a str,
    pub table: &'a str,
    /// One type byte per column.
    pub column_types: &'a [u8],
    /// The concatenated per-column metadata block.
    pub metadata: &'a [u8],
    /// ceil(columns/8) bytes; may be empty (all nullable).
    pub null_bitmap: &'a [u8],
    /// Optional metadata TLVs (may be empty).
    pub optional_metadata: &'a [u8],
}

/// Per-table decoding plan built once per TABLE_MAP event.
#[derive(Clone, Debug)]
pub struct TablePlan {
    pub schema: String,
    pub table: String,
    pub table_id: u64,
    columns: Vec<ColumnPlan>,
    names: Option<Vec<String>>,
    /// For each column, its ordinal among the table's JSON columns (for partial-update bits).
    json_ordinal: Vec<Option<u32>>,
    json_count: usize,
    signedness_from_table_map: bool,
    qualified: String,
}

impl TablePlan {
    /// Signedness comes from the TABLE_MAP SIGNEDNESS optional metadata when present, else from
    /// `column_unsigned` (one flag per column, e.g. from information_schema), else signed.
    /// Column names come from the COLUMN_NAME optional metadata when present.
    pub fn new(tme: &TableMapEvent<'_>, column_unsigned: Option<&[bool]>) -> Result<TablePlan, DecodeError> {
        let schema = tme.database_name().into_owned();
        let table = tme.table_name().into_owned();
        let qualified = format!("{schema}.{table}");
        let mut raw = Vec::new();
        tme.serialize(&mut raw);
        let bad = |reason: &str| DecodeError::BadTableMap { table: qualified.clone(), reason: reason.to_string() };
        let mut cur = Cursor::new(&raw);
        // table_id (6), flags (2), schema (u8 len + bytes + NUL), table (u8 len + bytes + NUL).
        cur.take(8).map_err(|_| bad("truncated header"))?;
        for _ in 0..2 {
            let len = cur.u8().map_err(|_| bad("truncated name"))?;
            cur.take(usize::from(len) + 1).map_err(|_| bad("truncated name"))?;
        }
        let count = cur.lenenc().map_err(|_| bad("bad column count"))?;
        let count = usize::try_from(count).map_err(|_| bad("column count too large"))?;
        if count != tme.columns_count() as usize {
            return Err(bad("column count does not round-trip"));
        }
        let column_types = cur.take(count).map_err(|_| bad("truncated column types"))?;
        let meta_len = cur.lenenc().map_err(|_| bad("bad metadata length"))?;
        let metadata = cur.take(meta_len as usize).map_err(|_| bad("truncated metadata"))?;
        let null_bitmap = cur.take(count.div_ceil(8)).map_err(|_| bad("truncated null bitmap"))?;
        let optional_metadata = cur.rest();
        TablePlan::from_raw(
            &RawTableMap {
                table_id: tme.table_id(),
                schema: &schema,
                table: &table,
                column_types,
                metadata,
                null_bitmap,
                optional_metadata,
            },
            column_unsigned,
        )
    }

    /// Builds a plan from the raw parts of a TABLE_MAP event.
    pub fn from_raw(raw: &RawTableMap<'_>, column_unsigned: Option<&[bool]>) -> Result<TablePlan, DecodeError> {
        let qualified = format!("{}.{}", raw.schema, raw.table);
        let n = raw.column_types.len();
        if let Some(flags) = column_unsigned {
            if flags.len() != n {
                return Err(DecodeError::ColumnCountMismatch {
                    table: qualified,
                    what: "the column_unsigned hint",
                    expected: n,
                    found: flags.len(),
                });
            }
        }

        // Optional metadata: SIGNEDNESS (1) and COLUMN_NAME (4) are what decoding needs.
        let mut signedness: Option<&[u8]> = None;
        let mut names: Option<Vec<String>> = None;
        {
            let mut cur = Cursor::new(raw.optional_metadata);
            let bad = |reason: String| DecodeError::BadTableMap { table: qualified.clone(), reason };
            while !cur.is_empty() {
                let t = cur.u8().map_err(|_| bad("truncated optional metadata".into()))?;
                let len = cur.lenenc().map_err(|_| bad("bad optional metadata length".into()))?;
                let len = usize::try_from(len).map_err(|_| bad("optional metadata too long".into()))?;
                let v = cur
                    .take(len)
                    .map_err(|_| bad(format!("optional metadata field {t} declares {len} bytes, fewer remain")))?;
                match t {
                    1 => signedness = Some(v),
                    4 => {
                        let mut nc = Cursor::new(v);
                        let mut list = Vec::with_capacity(n);
                        while !nc.is_empty() {
                            let l = nc.lenenc().map_err(|_| bad("bad COLUMN_NAME length".into()))?;
                            let s = nc
                                .take(usize::try_from(l).unwrap_or(usize::MAX))
                                .map_err(|_| bad("truncated COLUMN_NAME".into()))?;
                            list.push(String::from_utf8_lossy(s).into_owned());
                        }
                        // A count that does not match is ignored rather than misattributed.
                        if list.len() == n {
                            names = Some(list);
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(bits) = signedness {
            let numeric = raw.column_types.iter().filter(|t| column_type::has_signedness(**t)).count();
            if bits.len() < numeric.div_ceil(8) {
                return Err(DecodeError::BadTableMap {
                    table: qualified,
                    reason: format!("SIGNEDNESS has {} bytes for {numeric} numeric columns", bits.len()),
                });
            }
        }

        let mut columns = Vec::with_capacity(n);
        let mut json_ordinal = Vec::with_capacity(n);
        let mut json_count = 0usize;
        let mut mcur = Cursor::new(raw.metadata);
        let mut numeric_idx = 0usize;
        for (i, &t) in raw.column_types.iter().enumerate() {
            let bad = |reason: String| DecodeError::BadMetadata { table: qualified.clone(), column: i, reason };
            let meta_len = metadata_len(t, &mcur).ok_or_else(|| DecodeError::UnknownColumnType {
                table: qualified.clone(),
                column: i,
                type_byte: t,
            })?;
            let meta = mcur
                .take(meta_len)
                .map_err(|_| bad(format!("metadata block ends before this column's {meta_len} bytes")))?;
            let unsigned = if column_type::has_signedness(t) {
                let k = numeric_idx;
                numeric_idx += 1;
                match signedness {
                    Some(bits) => bits.get(k / 8).is_some_and(|b| b & (0x80 >> (k % 8)) != 0),
                    None => column_unsigned.and_then(|f| f.get(i).copied()).unwrap_or(false),
                }
            } else {
                false
            };
            let nullable = raw.null_bitmap.get(i / 8).is_none_or(|b| b & (1 << (i % 8)) != 0);
            let col = build_column(t, meta, unsigned, nullable).map_err(bad)?;
            if t == column_type::JSON {
                json_ordinal.push(Some(json_count as u32));
                json_count += 1;
            } else {
                json_ordinal.push(None);
            }
            columns.push(col);
        }
        if !mcur.is_empty() {
            return Err(DecodeError::BadTableMap {
                table: qualified,
                reason: format!("{} metadata bytes left over after the last column", mcur.remaining()),
            });
        }
        Ok(TablePlan {
            schema: raw.schema.to_string(),
            table: raw.table.to_string(),
            table_id: raw.table_id,
            columns,
            names,
            json_ordinal,
            json_count,
            signedness_from_table_map: signedness.is_some(),
            qualified,
        })
    }

    pub fn column_count(&self) -> usize {
        self.columns.len()
    }

    /// Column names from the COLUMN_NAME optional metadata (binlog_row_metadata=FULL), if present.
    pub fn column_names(&self) -> Option<&[String]> {
        self.names.as_deref()
    }

    /// The per-column plans.
    pub fn columns(&self) -> &[ColumnPlan] {
        &self.columns
    }

    /// Marks the BINARY(n) columns (`is_fixed_binary(index)`, from the table's definition): the binlog carries their
    /// values with the trailing 0x00 bytes cut off, and the decoder puts them back, as the server does on read.
    /// Without it a key ending in 0x00 would not match its row on the target, and one value would have two
    /// encodings in Kafka.
    pub fn pad_fixed_binary_columns(&mut self, is_fixed_binary: impl Fn(usize) -> bool) {
        for (i, c) in self.columns.iter_mut().enumerate() {
            if let Codec::VarBytes { prefix } = c.codec {
                if c.real_type == column_type::STRING && c.max_length > 0 && is_fixed_binary(i) {
                    c.codec = Codec::FixedBinary { prefix, len: c.max_length };
                }
            }
        }
    }

    /// True when signedness came from the TABLE_MAP itself (not from a hint or the signed default).
    pub fn signedness_from_table_map(&self) -> bool {
        self.signedness_from_table_map
    }

    /// "schema.table", as used in error messages.
    pub fn qualified_name(&self) -> &str {
        &self.qualified
    }
}

/// Number of metadata bytes a column of type `t` occupies in the TABLE_MAP metadata block.
/// `None` for an unknown type (the rest of the block cannot be located).
fn metadata_len(t: u8, cur: &Cursor<'_>) -> Option<usize> {
    use column_type::*;
    Some(match t {
        FLOAT | DOUBLE | TINY_BLOB | MEDIUM_BLOB | LONG_BLOB | BLOB | GEOMETRY | JSON | VECTOR | TIME2 | DATETIME2
        | TIMESTAMP2 => 1,
        VARCHAR | VAR_STRING | BIT | NEWDECIMAL | ENUM | SET | STRING => 2,
        DECIMAL | TINY | SHORT | LONG | NULL | TIMESTAMP | LONGLONG | INT24 | DATE | TIME | DATETIME | YEAR
        | NEWDATE => 0,
        TYPED_ARRAY => {
            // One byte of element type, then that type's metadata (VARCHAR elements carry 3 bytes).
            let elem = *cur.rest().first()?;
            let inner = match elem {
                VARCHAR => 3,
                TYPED_ARRAY => return None,
                e => metadata_len(e, &Cursor::new(&[]))?,
            };
            1 + inner
        }
        _ => return None,
    })
}

fn build_column(t: u8, meta: &[u8], unsigned: bool, nullable: bool) -> Result<ColumnPlan, String> {
    use column_type::*;
    let m0 = meta.first().copied().unwrap_or(0);
    let m1 = meta.get(1).copied().unwrap_or(0);
    let mut real_type = t;
    let mut max_length = 0u32;
    let fsp = |m: u8| {
        if m <= 6 {
            Ok(m)
        } else {
            Err(format!("fractional seconds precision {m} > 6"))
        }
    };
    let prefix = |m: u8| {
        if (1..=4).contains(&m) {
            Ok(m)
        } else {
            Err(format!("length-prefix size {m} not in 1..=4"))
        }
    };
    let codec = match t {
        TINY => Codec::Int8 { unsigned },
        SHORT => Codec::Int16 { unsigned },
        INT24 => Codec::Int24 { unsigned },
        LONG => Codec::Int32 { unsigned },
        LONGLONG => Codec::Int64 { unsigned },
        FLOAT => Codec::Float,
        DOUBLE => Codec::Double,
        NEWDECIMAL => {
            let (precision, scale) = (m0, m1);
            if precision == 0 || precision > 65 || scale > precision || scale > 38 {
                return Err(format!("DECIMAL({precision},{scale}) is out of range"));
            }
            Codec::Decimal { precision, scale }
        }
        YEAR => Codec::Year,
        DATE | NEWDATE => Codec::Date,
        TIME => Codec::Time,
        TIME2 => Codec::Time2 { fsp: fsp(m0)? },
        DATETIME => Codec::DateTime,
        DATETIME2 => Codec::DateTime2 { fsp: fsp(m0)? },
        TIMESTAMP => Codec::Timestamp,
        TIMESTAMP2 => Codec::Timestamp2 { fsp: fsp(m0)? },
        VARCHAR | VAR_STRING => {
            let max = u16::from_le_bytes([m0, m1]);
            max_length = u32::from(max);
            Codec::VarBytes { prefix: if max < 256 { 1 } else { 2 } }
        }
        STRING | ENUM | SET => {
            // Metadata is (real_type, length) with the high bits of lengths > 255 folded into the
            // real type byte (MySQL bug #37426): byte0 & 0x30 inverted holds length bits 8..9.
            let (rt, len) = if m0 == 0 {
                (STRING, u32::from(m1))
            } else if m0 & 0x30 != 0x30 {
                (m0 | 0x30, u32::from(m1) | ((u32::from(m0 & 0x30) ^ 0x30) << 4))
            } else {
                (m0, u32::from(m1))
            };
            real_type = rt;
            match rt {
                ENUM => match len {
                    1 | 2 => Codec::Enum { len: len as u8 },
                    _ => return Err(format!("ENUM storage size {len} not 1 or 2")),
                },
                SET => match len {
                    1..=8 => Codec::Set { len: len as u8 },
                    _ => return Err(format!("SET storage size {len} not in 1..=8")),
                },
                STRING | VAR_STRING => {
                    max_length = len;
                    Codec::VarBytes { prefix: if len < 256 { 1 } else { 2 } }
                }
                other => return Err(format!("unexpected real type {other} for a CHAR column")),
            }
        }
        TINY_BLOB | MEDIUM_BLOB | LONG_BLOB | BLOB | GEOMETRY | VECTOR => Codec::Blob { prefix: prefix(m0)? },
        JSON => Codec::Json { prefix: prefix(m0)? },
        BIT => {
            if m0 > 7 {
                return Err(format!("BIT metadata has {m0} extra bits"));
            }
            let bits = u32::from(m1) * 8 + u32::from(m0);
            if bits == 0 || bits > 64 {
                return Err(format!("BIT({bits}) is out of range"));
            }
            Codec::Bit { bytes: bits.div_ceil(8) as u8 }
        }
        NULL => Codec::Null,
        _ => Codec::Unsupported { type_byte: t },
    };
    let mut metadata = [0u8; 2];
    for (d, s) in metadata.iter_mut().zip(meta.iter()) {
        *d = *s;
    }
    Ok(ColumnPlan { binlog_type: t, real_type, metadata, unsigned, nullable, max_length, codec })
}

// ---------------------------------------------------------------------------------------------------------
// Rows

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowsKind {
    Insert,
    Update,
    Delete,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DecodedRows {
    pub kind: RowsKind,
    pub rows: Vec<RowImage>,
}

/// For Insert: after only; Delete: before only; Update: both.
#[derive(Clone, Debug, PartialEq)]
pub struct RowImage {
    pub before: Option<Vec<Value>>,
    pub after: Option<Vec<Value>>,
}

/// The raw parts of a rows event, for decoding without a parsed [`RowsEventData`] (benches, fuzzing).
#[derive(Clone, Copy, Debug)]
pub struct RawRows<'a> {
    pub kind: RowsKind,
    /// PARTIAL_UPDATE_ROWS_EVENT (MySQL binlog_row_value_options=PARTIAL_JSON): the after image starts
    /// with value options and partial-JSON bits.
    pub partial_update: bool,
    pub num_columns: usize,
    /// Column bitmap of the before image (UPDATE/DELETE), ceil(num_columns/8) bytes, LSB first.
    pub before_columns: Option<&'a [u8]>,
    /// Column bitmap of the after image (WRITE/UPDATE).
    pub after_columns: Option<&'a [u8]>,
    pub rows_data: &'a [u8],
}

/// Decodes a WRITE/UPDATE/DELETE rows event (v1 or v2, MySQL or MariaDB) with the plan. Columns not in the
/// event's column bitmap become [`Value::Absent`]. A partial JSON update (PARTIAL_UPDATE_ROWS event whose
/// after image carries a JSON diff) is [`DecodeError::Unsupported`].
pub fn decode_rows(plan: &TablePlan, event: &RowsEventData<'_>) -> Result<DecodedRows, DecodeError> {
    let (kind, partial_update) = match event {
        RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => (RowsKind::Insert, false),
        RowsEventData::UpdateRowsEventV1(_) | RowsEventData::UpdateRowsEvent(_) => (RowsKind::Update, false),
        RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => (RowsKind::Delete, false),
        RowsEventData::PartialUpdateRowsEvent(_) => (RowsKind::Update, true),
    };
    let num_columns = usize::try_from(event.num_columns()).unwrap_or(usize::MAX);
    if num_columns != plan.column_count() {
        return Err(DecodeError::ColumnCountMismatch {
            table: plan.qualified.clone(),
            what: "the rows event",
            expected: plan.column_count(),
            found: num_columns,
        });
    }
    let to_bytes = |bits: &mysql_common::binlog::events::RowsEventData<'_>, before: bool| -> Option<Vec<u8>> {
        let slice = if before { bits.columns_before_image() } else { bits.columns_after_image() }?;
        let mut out = vec![0u8; num_columns.div_ceil(8)];
        for i in slice.iter_ones() {
            if let Some(b) = out.get_mut(i / 8) {
                *b |= 1 << (i % 8);
            }
        }
        Some(out)
    };
    let before = to_bytes(event, true);
    let after = to_bytes(event, false);
    decode_rows_raw(
        plan,
        &RawRows {
            kind,
            partial_update,
            num_columns,
            before_columns: before.as_deref(),
            after_columns: after.as_deref(),
            rows_data: event.rows_data(),
        },
    )
}

/// Which columns an image carries, precomputed once per event.
struct ImageLayout {
    /// All columns present (the common FULL row image): no index list needed.
    all: bool,
    present: Vec<u32>,
    null_bytes: usize,
}

impl ImageLayout {
    fn new(bitmap: &[u8], n: usize) -> Result<ImageLayout, String> {
        if bitmap.len() < n.div_ceil(8) {
            return Err(format!("column bitmap has {} bytes for {n} columns", bitmap.len()));
        }
        let mut present = Vec::new();
        for i in 0..n {
            if bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0) {
                present.push(i as u32);
            }
        }
        let all = present.len() == n;
        let null_bytes = present.len().div_ceil(8);
        if all {
            present = Vec::new();
        }
        Ok(ImageLayout { all, present, null_bytes })
    }
}

/// Lower-level entry: decodes rows from the raw parts of a rows event.
pub fn decode_rows_raw(plan: &TablePlan, raw: &RawRows<'_>) -> Result<DecodedRows, DecodeError> {
    let n = plan.column_count();
    if raw.num_columns != n {
        return Err(DecodeError::ColumnCountMismatch {
            table: plan.qualified.clone(),
            what: "the rows event",
            expected: n,
            found: raw.num_columns,
        });
    }
    let bitmap_err =
        |reason: String| DecodeError::Malformed { offset: 0, reason: format!("{}: {reason}", plan.qualified) };
    let (want_before, want_after) = match raw.kind {
        RowsKind::Insert => (false, true),
        RowsKind::Update => (true, true),
        RowsKind::Delete => (true, false),
    };
    let before = match (want_before, raw.before_columns) {
        (true, Some(b)) => Some(ImageLayout::new(b, n).map_err(bitmap_err)?),
        (true, None) => return Err(bitmap_err("rows event has no before-image column bitmap".into())),
        (false, _) => None,
    };
    let after = match (want_after, raw.after_columns) {
        (true, Some(b)) => Some(ImageLayout::new(b, n).map_err(bitmap_err)?),
        (true, None) => return Err(bitmap_err("rows event has no after-image column bitmap".into())),
        (false, _) => None,
    };

    let mut cur = Cursor::new(raw.rows_data);
    let mut rows = Vec::new();
    while !cur.is_empty() {
        let start = cur.pos();
        let row_no = rows.len();
        let b = match &before {
            Some(layout) => Some(decode_image(plan, layout, &mut cur, false, row_no, "before")?),
            None => None,
        };
        let a = match &after {
            Some(layout) => Some(decode_image(plan, layout, &mut cur, raw.partial_update, row_no, "after")?),
            None => None,
        };
        if cur.pos() == start {
            return Err(DecodeError::Malformed {
                offset: start as u64,
                reason: format!("{}: a row image with no bytes cannot be followed by more data", plan.qualified),
            });
        }
        rows.push(RowImage { before: b, after: a });
    }
    Ok(DecodedRows { kind: raw.kind, rows })
}

fn decode_image(
    plan: &TablePlan,
    layout: &ImageLayout,
    cur: &mut Cursor<'_>,
    partial_after: bool,
    row_no: usize,
    image: &'static str,
) -> Result<Vec<Value>, DecodeError> {
    let n = plan.columns.len();
    // Partial-update after images start with value_options and, if PARTIAL_JSON_UPDATES is set, one bit
    // per JSON column of the table (present or not).
    let mut partial_bits: Option<&[u8]> = None;
    if partial_after {
        let at = cur.pos();
        let opts = cur.lenenc().map_err(|e| cell_error(plan, None, e, at, row_no, image))?;
        if opts & 1 != 0 {
            let at = cur.pos();
            partial_bits =
                Some(cur.take(plan.json_count.div_ceil(8)).map_err(|e| cell_error(plan, None, e, at, row_no, image))?);
        }
    }
    let at = cur.pos();
    let nulls = cur.take(layout.null_bytes).map_err(|e| cell_error(plan, None, e, at, row_no, image))?;
    let is_null = |j: usize| nulls.get(j / 8).is_some_and(|b| b & (1 << (j % 8)) != 0);

    let mut row: Vec<Value> = Vec::with_capacity(n);
    if layout.all && partial_bits.is_none() {
        for (i, col) in plan.columns.iter().enumerate() {
            if is_null(i) {
                row.push(Value::Null);
            } else {
                let at = cur.pos();
                match decode_cell(&col.codec, cur) {
                    Ok(v) => row.push(v),
                    Err(e) => return Err(cell_error(plan, Some(i), e, at, row_no, image)),
                }
            }
        }
        return Ok(row);
    }

    row.resize(n, Value::Absent);
    let present: &[u32] = &layout.present;
    let all_indices;
    let indices: &[u32] = if layout.all {
        all_indices = (0..n as u32).collect::<Vec<u32>>();
        &all_indices
    } else {
        present
    };
    for (j, &ci) in indices.iter().enumerate() {
        let i = ci as usize;
        let (Some(col), Some(slot)) = (plan.columns.get(i), row.get_mut(i)) else {
            continue;
        };
        if is_null(j) {
            *slot = Value::Null;
            continue;
        }
        if let (Some(bits), Some(Some(k))) = (partial_bits, plan.json_ordinal.get(i)) {
            let k = *k as usize;
            if bits.get(k / 8).is_some_and(|b| b & (1 << (k % 8)) != 0) {
                return Err(DecodeError::Unsupported {
                    what: format!(
                        "partial JSON update (binlog_row_value_options=PARTIAL_JSON) of {} column {i}: the binlog \
                         holds only a diff, not the new value; set binlog_row_value_options='' on the source",
                        plan.qualified
                    ),
                });
            }
        }
        let at = cur.pos();
        match decode_cell(&col.codec, cur) {
            Ok(v) => *slot = v,
            Err(e) => return Err(cell_error(plan, Some(i), e, at, row_no, image)),
        }
    }
    Ok(row)
}

fn cell_error(
    plan: &TablePlan,
    column: Option<usize>,
    e: CellErr,
    at: usize,
    row_no: usize,
    image: &str,
) -> DecodeError {
    let type_name =
        column.and_then(|i| plan.columns.get(i)).map(|c| column_type::name(c.real_type)).unwrap_or("row header");
    match e {
        CellErr::Short { need } => DecodeError::Truncated {
            what: match column {
                Some(i) => format!(
                    "{} row {row_no} {image} image, column {i} ({type_name}) needs {need} more bytes",
                    plan.qualified
                ),
                None => format!("{} row {row_no} {image} image header needs {need} more bytes", plan.qualified),
            },
            offset: at,
        },
        CellErr::Invalid(reason) => DecodeError::InvalidValue {
            table: plan.qualified.clone(),
            column: column.unwrap_or(0),
            type_name,
            reason: format!("{reason} (row {row_no} {image} image, rows-data offset {at})"),
        },
        CellErr::Unsupported(what) => DecodeError::Unsupported {
            what: format!("{} column {} ({type_name}): {what}", plan.qualified, column.unwrap_or(0)),
        },
    }
}

// ---------------------------------------------------------------------------------------------------------
// Cells

#[inline]
fn decode_cell(codec: &Codec, cur: &mut Cursor<'_>) -> Result<Value, CellErr> {
    Ok(match *codec {
        Codec::Int32 { unsigned } => {
            let v = cur.u32_le()?;
            if unsigned {
                Value::UInt(u64::from(v))
            } else {
                Value::Int(i64::from(v as i32))
            }
        }
        Codec::VarBytes { prefix } => {
            let len = if prefix == 1 { usize::from(cur.u8()?) } else { usize::from(cur.u16_le()?) };
            Value::Bytes(cur.take(len)?.to_vec())
        }
        Codec::FixedBinary { prefix, len: declared } => {
            let len = if prefix == 1 { usize::from(cur.u8()?) } else { usize::from(cur.u16_le()?) };
            let stored = cur.take(len)?;
            let mut bytes = Vec::with_capacity(len.max(declared as usize));
            bytes.extend_from_slice(stored);
            bytes.resize(len.max(declared as usize), 0);
            Value::Bytes(bytes)
        }
        Codec::Int8 { unsigned } => {
            let v = cur.u8()?;
            if unsigned {
                Value::UInt(u64::from(v))
            } else {
                Value::Int(i64::from(v as i8))
            }
        }
        Codec::Int16 { unsigned } => {
            let v = cur.u16_le()?;
            if unsigned {
                Value::UInt(u64::from(v))
            } else {
                Value::Int(i64::from(v as i16))
            }
        }
        Codec::Int24 { unsigned } => {
            let v = cur.uint_le(3)? as u32;
            if unsigned {
                Value::UInt(u64::from(v))
            } else {
                // Sign-extend 24 bits.
                Value::Int(i64::from(((v << 8) as i32) >> 8))
            }
        }
        Codec::Int64 { unsigned } => {
            let v = cur.u64_le()?;
            if unsigned {
                Value::UInt(v)
            } else {
                Value::Int(v as i64)
            }
        }
        Codec::Float => Value::Float(f32::from_le_bytes(cur.array::<4>()?)),
        Codec::Double => Value::Double(f64::from_le_bytes(cur.array::<8>()?)),
        Codec::Decimal { precision, scale } => {
            Value::Decimal(decode_decimal(cur, usize::from(precision), usize::from(scale))?)
        }
        Codec::Year => {
            let y = cur.u8()?;
            Value::Year(if y == 0 { 0 } else { 1900 + u16::from(y) })
        }
        Codec::Date => {
            let v = cur.uint_le(3)? as u32;
            Value::Date { year: (v >> 9) as u16, month: ((v >> 5) & 15) as u8, day: (v & 31) as u8 }
        }
        Codec::Time => {
            // Signed 3-byte integer HHMMSS.
            let raw = cur.uint_le(3)? as u32;
            let v = ((raw << 8) as i32) >> 8;
            let negative = v < 0;
            let a = v.unsigned_abs();
            Value::Time {
                negative,
                hours: a / 10000,
                minutes: ((a / 100) % 100) as u8,
                seconds: (a % 100) as u8,
                micros: 0,
            }
        }
        Codec::Time2 { fsp } => decode_time2(cur, fsp)?,
        Codec::DateTime => {
            let v = cur.u64_le()?;
            let d = v / 1_000_000;
            let t = v % 1_000_000;
            let year = d / 10000;
            if year > 9999 {
                return Err(CellErr::Invalid(format!("DATETIME value {v} has year {year}")));
            }
            Value::DateTime {
                year: year as u16,
                month: ((d / 100) % 100) as u8,
                day: (d % 100) as u8,
                hour: (t / 10000) as u8,
                minute: ((t / 100) % 100) as u8,
                second: (t % 100) as u8,
                micros: 0,
            }
        }
        Codec::DateTime2 { fsp } => decode_datetime2(cur, fsp)?,
        Codec::Timestamp => Value::Timestamp { unix_secs: i64::from(cur.u32_le()?), micros: 0 },
        Codec::Timestamp2 { fsp } => {
            let secs = cur.uint_be(4)? as i64;
            let micros = read_frac(cur, fsp)?;
            Value::Timestamp { unix_secs: secs, micros }
        }
        Codec::Blob { prefix } => {
            let len = cur.uint_le(usize::from(prefix))?;
            let len = usize::try_from(len).map_err(|_| CellErr::Short { need: usize::MAX })?;
            Value::Bytes(cur.take(len)?.to_vec())
        }
        Codec::Json { prefix } => {
            let len = cur.uint_le(usize::from(prefix))?;
            let len = usize::try_from(len).map_err(|_| CellErr::Short { need: usize::MAX })?;
            let bytes = cur.take(len)?;
            match jsonb_to_json_text(bytes) {
                Ok(text) => Value::Json(text),
                Err(e) => return Err(CellErr::Invalid(e.to_string())),
            }
        }
        Codec::Enum { len } => Value::Enum(cur.uint_le(usize::from(len))? as u16),
        Codec::Set { len } => Value::Set(cur.uint_le(usize::from(len))?),
        Codec::Bit { bytes } => Value::Bit(cur.uint_be(usize::from(bytes))?),
        Codec::Null => Value::Null,
        Codec::Unsupported { type_byte } => {
            return Err(CellErr::Unsupported(if type_byte == column_type::DECIMAL {
                "the pre-5.0 DECIMAL format cannot be decoded; ALTER the table to rebuild the column as a \
                 current DECIMAL"
                    .to_string()
            } else {
                format!("values of column type {type_byte} ({}) cannot be decoded", column_type::name(type_byte))
            }));
        }
    })
}

/// Fractional seconds of DATETIME2/TIME2/TIMESTAMP2 as microseconds: fsp 1-2 one byte ×10000,
/// 3-4 two bytes ×100, 5-6 three bytes (all big-endian).
#[inline]
fn read_frac(cur: &mut Cursor<'_>, fsp: u8) -> Result<u32, CellErr> {
    let micros = match fsp {
        1 | 2 => cur.u8()? as u32 * 10_000,
        3 | 4 => cur.uint_be(2)? as u32 * 100,
        5 | 6 => cur.uint_be(3)? as u32,
        _ => 0,
    };
    if micros >= 1_000_000 {
        return Err(CellErr::Invalid(format!("fractional part {micros} >= 1000000 microseconds")));
    }
    Ok(micros)
}

fn decode_datetime2(cur: &mut Cursor<'_>, fsp: u8) -> Result<Value, CellErr> {
    const DATETIMEF_INT_OFS: i64 = 0x80_0000_0000;
    let intpart = cur.uint_be(5)? as i64 - DATETIMEF_INT_OFS;
    let micros = read_frac(cur, fsp)?;
    if intpart < 0 {
        return Err(CellErr::Invalid("negative DATETIME".into()));
    }
    let ymd = intpart >> 17;
    let ym = ymd >> 5;
    let hms = intpart & 0x1_ffff;
    let year = ym / 13;
    if year > 9999 {
        return Err(CellErr::Invalid(format!("DATETIME year {year}")));
    }
    Ok(Value::DateTime {
        year: year as u16,
        month: (ym % 13) as u8,
        day: (ymd & 31) as u8,
        hour: (hms >> 12) as u8,
        minute: ((hms >> 6) & 63) as u8,
        second: (hms & 63) as u8,
        micros,
    })
}

fn decode_time2(cur: &mut Cursor<'_>, fsp: u8) -> Result<Value, CellErr> {
    const TIMEF_INT_OFS: i64 = 0x80_0000;
    const TIMEF_OFS: i64 = 0x8000_0000_0000;
    // MySQL's my_time_packed_from_binary: the packed value is (hms << 24) + micros, signed.
    let packed: i64 = match fsp {
        1 | 2 => {
            let mut intpart = cur.uint_be(3)? as i64 - TIMEF_INT_OFS;
            let mut frac = i64::from(cur.u8()?);
            if intpart < 0 && frac > 0 {
                intpart += 1;
                frac -= 0x100;
            }
            (intpart << 24) + frac * 10_000
        }
        3 | 4 => {
            let mut intpart = cur.uint_be(3)? as i64 - TIMEF_INT_OFS;
            let mut frac = cur.uint_be(2)? as i64;
            if intpart < 0 && frac > 0 {
                intpart += 1;
                frac -= 0x10000;
            }
            (intpart << 24) + frac * 100
        }
        5 | 6 => cur.uint_be(6)? as i64 - TIMEF_OFS,
        _ => (cur.uint_be(3)? as i64 - TIMEF_INT_OFS) << 24,
    };
    let negative = packed < 0;
    let a = packed.unsigned_abs();
    let hms = a >> 24;
    let micros = (a & 0xff_ffff) as u32;
    if micros >= 1_000_000 {
        return Err(CellErr::Invalid(format!("TIME fractional part {micros}")));
    }
    Ok(Value::Time {
        negative,
        hours: ((hms >> 12) & 0x3ff) as u32,
        minutes: ((hms >> 6) & 63) as u8,
        seconds: (hms & 63) as u8,
        micros,
    })
}

const DIG_PER_DEC: usize = 9;
const DIG_TO_BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
const POW10: [u32; 10] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000];

/// Size in bytes of a binary DECIMAL(precision, scale).
pub(crate) fn decimal_bin_size(precision: usize, scale: usize) -> usize {
    let intg = precision.saturating_sub(scale);
    (intg / DIG_PER_DEC) * 4
        + DIG_TO_BYTES[intg % DIG_PER_DEC]
        + (scale / DIG_PER_DEC) * 4
        + DIG_TO_BYTES[scale % DIG_PER_DEC]
}

/// Decodes MySQL's binary DECIMAL (decimal2bin) to its exact text: groups of 9 digits in 4 big-endian
/// bytes, a leading/trailing partial group in fewer bytes, the first byte's top bit flipped, and every byte
/// inverted for negative numbers.
pub(crate) fn decode_decimal(cur: &mut Cursor<'_>, precision: usize, scale: usize) -> Result<String, CellErr> {
    if precision == 0 || precision > 65 || scale > precision {
        return Err(CellErr::Invalid(format!("DECIMAL({precision},{scale}) is out of range")));
    }
    let size = decimal_bin_size(precision, scale);
    let src = cur.take(size)?;
    let mut buf = [0u8; 40];
    let b = buf.get_mut(..size).ok_or_else(|| CellErr::Invalid("DECIMAL too large".into()))?;
    b.copy_from_slice(src);
    let negative = b.first().is_some_and(|x| x & 0x80 == 0);
    if let Some(x) = b.first_mut() {
        *x ^= 0x80;
    }
    if negative {
        for x in b.iter_mut() {
            *x = !*x;
        }
    }
    let intg = precision - scale;
    let mut digits = [0u8; 80];
    let mut nd = 0usize;
    let mut pos = 0usize;
    let mut group = |digits_in_group: usize, nd: &mut usize, digits: &mut [u8; 80]| -> Result<(), CellErr> {
        let nbytes = if digits_in_group == DIG_PER_DEC { 4 } else { DIG_TO_BYTES[digits_in_group] };
        let mut v: u32 = 0;
        for k in 0..nbytes {
            v = (v << 8) | u32::from(*b.get(pos + k).ok_or(CellErr::Short { need: 1 })?);
        }
        pos += nbytes;
        if v >= POW10[digits_in_group] {
            return Err(CellErr::Invalid(format!("DECIMAL group value {v} has more than {digits_in_group} digits")));
        }
        for k in (0..digits_in_group).rev() {
            let d = (v / POW10[k]) % 10;
            if let Some(slot) = digits.get_mut(*nd) {
                *slot = b'0' + d as u8;
            }
            *nd += 1;
        }
        Ok(())
    };
    let lead_digits = intg % DIG_PER_DEC;
    if lead_digits > 0 {
        group(lead_digits, &mut nd, &mut digits)?;
    }
    for _ in 0..intg / DIG_PER_DEC {
        group(DIG_PER_DEC, &mut nd, &mut digits)?;
    }
    let int_digits = nd;
    for _ in 0..scale / DIG_PER_DEC {
        group(DIG_PER_DEC, &mut nd, &mut digits)?;
    }
    let trail_digits = scale % DIG_PER_DEC;
    if trail_digits > 0 {
        group(trail_digits, &mut nd, &mut digits)?;
    }
    let digits = digits.get(..nd).unwrap_or(&[]);
    let (int_part, frac_part) = digits.split_at(int_digits.min(digits.len()));
    let first_nonzero = int_part.iter().position(|d| *d != b'0').unwrap_or(int_part.len());
    let int_part = int_part.get(first_nonzero..).unwrap_or(&[]);
    let is_zero = int_part.is_empty() && frac_part.iter().all(|d| *d == b'0');
    let mut out = String::with_capacity(precision + 3);
    if negative && !is_zero {
        out.push('-');
    }
    if int_part.is_empty() {
        out.push('0');
    } else {
        out.push_str(std::str::from_utf8(int_part).unwrap_or("0"));
    }
    if !frac_part.is_empty() {
        out.push('.');
        out.push_str(std::str::from_utf8(frac_part).unwrap_or(""));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::column_type as ct;
    use super::*;

    // ---- encoders (independent of the decoder; follow MySQL's storage functions) ----

    fn plan_with(cols: &[(u8, &[u8])], unsigned: Option<&[bool]>, optional: &[u8]) -> TablePlan {
        let types: Vec<u8> = cols.iter().map(|c| c.0).collect();
        let meta: Vec<u8> = cols.iter().flat_map(|c| c.1.iter().copied()).collect();
        TablePlan::from_raw(
            &RawTableMap {
                table_id: 7,
                schema: "db",
                table: "t",
                column_types: &types,
                metadata: &meta,
                null_bitmap: &vec![0xff; cols.len().div_ceil(8)],
                optional_metadata: optional,
            },
            unsigned,
        )
        .unwrap()
    }

    fn plan(cols: &[(u8, &[u8])]) -> TablePlan {
        plan_with(cols, None, &[])
    }

    /// One row image: NULL bitmap over the given cells, then the non-NULL cells.
    fn image(cells: &[Option<Vec<u8>>]) -> Vec<u8> {
        let mut out = vec![0u8; cells.len().div_ceil(8)];
        for (i, c) in cells.iter().enumerate() {
            if c.is_none() {
                out[i / 8] |= 1 << (i % 8);
            }
        }
        for c in cells.iter().flatten() {
            out.extend_from_slice(c);
        }
        out
    }

    fn all_bits(n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n.div_ceil(8)];
        for i in 0..n {
            v[i / 8] |= 1 << (i % 8);
        }
        v
    }

    fn insert(plan: &TablePlan, data: &[u8]) -> Result<DecodedRows, DecodeError> {
        let bits = all_bits(plan.column_count());
        decode_rows_raw(
            plan,
            &RawRows {
                kind: RowsKind::Insert,
                partial_update: false,
                num_columns: plan.column_count(),
                before_columns: None,
                after_columns: Some(&bits),
                rows_data: data,
            },
        )
    }

    /// Decodes one inserted row whose cells are all non-NULL.
    fn one(cols: &[(u8, &[u8])], cells: &[Vec<u8>]) -> Vec<Value> {
        let p = plan(cols);
        let data = image(&cells.iter().cloned().map(Some).collect::<Vec<_>>());
        let mut rows = insert(&p, &data).unwrap().rows;
        assert_eq!(rows.len(), 1);
        rows.remove(0).after.unwrap()
    }

    fn cell(cols: &[(u8, &[u8])], bytes: Vec<u8>) -> Value {
        one(cols, &[bytes]).remove(0)
    }

    /// MySQL decimal2bin for a decimal text with the column's precision/scale.
    fn dec_bin(text: &str, precision: usize, scale: usize) -> Vec<u8> {
        let neg = text.starts_with('-');
        let t = text.trim_start_matches('-');
        let (ip, fp) = t.split_once('.').unwrap_or((t, ""));
        let intg = precision - scale;
        let ip = format!("{:0>width$}", ip, width = intg);
        let fp = format!("{:0<width$}", fp, width = scale);
        let mut out = vec![];
        let mut put = |digits: &str| {
            if digits.is_empty() {
                return;
            }
            let v: u32 = digits.parse().unwrap();
            let n = DIG_TO_BYTES[digits.len()];
            let be = v.to_be_bytes();
            out.extend_from_slice(&be[4 - n..]);
        };
        let lead = intg % 9;
        put(&ip[..lead]);
        for k in 0..intg / 9 {
            put(&ip[lead + 9 * k..lead + 9 * k + 9]);
        }
        for k in 0..scale / 9 {
            put(&fp[9 * k..9 * k + 9]);
        }
        put(&fp[(scale / 9) * 9..]);
        if neg {
            for b in out.iter_mut() {
                *b = !*b;
            }
        }
        out[0] ^= 0x80;
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn datetime2(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, micros: i64, fsp: u8) -> Vec<u8> {
        let ymd = ((y * 13 + mo) << 5) | d;
        let hms = (h << 12) | (mi << 6) | s;
        let intpart = ((ymd << 17) | hms) + 0x80_0000_0000;
        let mut out = intpart.to_be_bytes()[3..].to_vec();
        out.extend(frac_bytes(micros, fsp));
        out
    }

    fn frac_bytes(micros: i64, fsp: u8) -> Vec<u8> {
        match fsp {
            1 | 2 => vec![(micros / 10_000) as u8],
            3 | 4 => ((micros / 100) as u16).to_be_bytes().to_vec(),
            5 | 6 => (micros as u32).to_be_bytes()[1..].to_vec(),
            _ => vec![],
        }
    }

    /// MySQL my_time_packed_to_binary.
    fn time2(neg: bool, h: i64, m: i64, s: i64, micros: i64, fsp: u8) -> Vec<u8> {
        let mut nr = (((h << 12) | (m << 6) | s) << 24) + micros;
        if neg {
            nr = -nr;
        }
        let int_part = nr >> 24;
        let frac_part = nr % (1 << 24);
        let be3 = |v: i64| (v as u32).to_be_bytes()[1..].to_vec();
        match fsp {
            1 | 2 => {
                let mut o = be3(0x80_0000 + int_part);
                o.push((frac_part / 10_000) as i8 as u8);
                o
            }
            3 | 4 => {
                let mut o = be3(0x80_0000 + int_part);
                o.extend_from_slice(&((frac_part / 100) as i16).to_be_bytes());
                o
            }
            5 | 6 => (nr + 0x8000_0000_0000).to_be_bytes()[2..].to_vec(),
            _ => be3(0x80_0000 + int_part),
        }
    }

    fn time(neg: bool, hours: u32, minutes: u8, seconds: u8, micros: u32) -> Value {
        Value::Time { negative: neg, hours, minutes, seconds, micros }
    }

    // ---- types ----

    #[test]
    fn integers_signed_and_unsigned() {
        let cols: &[(u8, &[u8])] =
            &[(ct::TINY, &[]), (ct::SHORT, &[]), (ct::INT24, &[]), (ct::LONG, &[]), (ct::LONGLONG, &[])];
        let cells =
            vec![vec![0xff], vec![0x00, 0x80], vec![0x00, 0x00, 0x80], vec![0xff; 4], vec![0, 0, 0, 0, 0, 0, 0, 0x80]];
        assert_eq!(
            one(cols, &cells),
            vec![Value::Int(-1), Value::Int(-32768), Value::Int(-8_388_608), Value::Int(-1), Value::Int(i64::MIN)]
        );
        let p = plan_with(cols, Some(&[true; 5]), &[]);
        let data = image(&cells.iter().cloned().map(Some).collect::<Vec<_>>());
        assert_eq!(
            insert(&p, &data).unwrap().rows[0].after.as_ref().unwrap(),
            &vec![
                Value::UInt(255),
                Value::UInt(32768),
                Value::UInt(8_388_608),
                Value::UInt(u32::MAX as u64),
                Value::UInt(1 << 63)
            ]
        );
        // INT24 sign extension of small negatives and the max.
        assert_eq!(cell(&[(ct::INT24, &[])], vec![0xff, 0xff, 0xff]), Value::Int(-1));
        assert_eq!(cell(&[(ct::INT24, &[])], vec![0xff, 0xff, 0x7f]), Value::Int(8_388_607));
        assert_eq!(cell(&[(ct::LONGLONG, &[])], u64::MAX.to_le_bytes().to_vec()), Value::Int(-1));
    }

    #[test]
    fn signedness_from_table_map_metadata() {
        // Columns: TINY, VARCHAR, YEAR, LONG, SHORT. Numeric: TINY, YEAR, LONG, SHORT → bits MSB first.
        // Mark TINY and SHORT unsigned: 1 0 0 1 → 0b1001_0000.
        let cols: &[(u8, &[u8])] =
            &[(ct::TINY, &[]), (ct::VARCHAR, &[10, 0]), (ct::YEAR, &[]), (ct::LONG, &[]), (ct::SHORT, &[])];
        let optional = [1u8, 1, 0b1001_0000];
        // The hint says all signed; the TABLE_MAP wins.
        let p = plan_with(cols, Some(&[false; 5]), &optional);
        assert!(p.signedness_from_table_map());
        let data = image(&[
            Some(vec![0xff]),
            Some(vec![1, b'a']),
            Some(vec![124]),
            Some(vec![0xff; 4]),
            Some(vec![0xff, 0xff]),
        ]);
        assert_eq!(
            insert(&p, &data).unwrap().rows[0].after.as_ref().unwrap(),
            &vec![Value::UInt(255), Value::Bytes(b"a".to_vec()), Value::Year(2024), Value::Int(-1), Value::UInt(65535)]
        );
        // SIGNEDNESS shorter than the numeric column count is an error.
        let bad = TablePlan::from_raw(
            &RawTableMap {
                table_id: 1,
                schema: "db",
                table: "t",
                column_types: &[ct::TINY; 9],
                metadata: &[],
                null_bitmap: &[],
                optional_metadata: &[1, 1, 0],
            },
            None,
        );
        assert!(matches!(bad, Err(DecodeError::BadTableMap { .. })), "{bad:?}");
    }

    #[test]
    fn column_names_from_optional_metadata() {
        let cols: &[(u8, &[u8])] = &[(ct::LONG, &[]), (ct::LONG, &[])];
        let optional = [4u8, 6, 2, b'i', b'd', 2, b'v', b'2'];
        let p = plan_with(cols, None, &optional);
        assert_eq!(p.column_names().unwrap(), &["id".to_string(), "v2".to_string()]);
        assert!(plan(cols).column_names().is_none());
        // Unknown TLV types are skipped; a TLV running past the end is an error.
        let optional = [99u8, 2, 0, 0, 4, 6, 2, b'i', b'd', 2, b'v', b'2'];
        assert!(plan_with(cols, None, &optional).column_names().is_some());
        let raw = RawTableMap {
            table_id: 1,
            schema: "db",
            table: "t",
            column_types: &[ct::LONG],
            metadata: &[],
            null_bitmap: &[],
            optional_metadata: &[4, 9, 1],
        };
        assert!(TablePlan::from_raw(&raw, None).is_err());
    }

    #[test]
    fn floats() {
        assert_eq!(cell(&[(ct::FLOAT, &[4])], 1.5f32.to_le_bytes().to_vec()), Value::Float(1.5));
        assert_eq!(cell(&[(ct::DOUBLE, &[8])], (-2.25f64).to_le_bytes().to_vec()), Value::Double(-2.25));
    }

    #[test]
    fn decimals() {
        let d = |text: &str, p: u8, s: u8| {
            let v = cell(&[(ct::NEWDECIMAL, &[p, s])], dec_bin(text, p as usize, s as usize));
            match v {
                Value::Decimal(t) => t,
                other => panic!("{other:?}"),
            }
        };
        // The example from MySQL's decimal2bin comment: 1234567890.1234 as DECIMAL(14,4).
        assert_eq!(
            cell(&[(ct::NEWDECIMAL, &[14, 4])], vec![0x81, 0x0D, 0xFB, 0x38, 0xD2, 0x04, 0xD2]),
            Value::Decimal("1234567890.1234".into())
        );
        assert_eq!(
            cell(&[(ct::NEWDECIMAL, &[14, 4])], vec![0x7E, 0xF2, 0x04, 0xC7, 0x2D, 0xFB, 0x2D]),
            Value::Decimal("-1234567890.1234".into())
        );
        assert_eq!(dec_bin("1234567890.1234", 14, 4), vec![0x81, 0x0D, 0xFB, 0x38, 0xD2, 0x04, 0xD2]);
        let max = format!("{}.{}", "9".repeat(35), "9".repeat(30));
        assert_eq!(d(&max, 65, 30), max);
        assert_eq!(d(&format!("-{max}"), 65, 30), format!("-{max}"));
        let small = format!("0.{}1", "0".repeat(29));
        assert_eq!(d(&small, 65, 30), small);
        assert_eq!(d(&format!("-{small}"), 65, 30), format!("-{small}"));
        assert_eq!(d("1234567890", 10, 0), "1234567890");
        assert_eq!(d("-1", 10, 0), "-1");
        assert_eq!(d("0", 10, 0), "0");
        assert_eq!(d("0", 5, 2), "0.00");
        assert_eq!(d("0.05", 5, 2), "0.05");
        assert_eq!(d("-0.05", 5, 2), "-0.05");
        assert_eq!(d("-12.30", 5, 2), "-12.30");
        assert_eq!(d("100.5", 10, 1), "100.5");
        assert_eq!(d("-999999999.999999999", 18, 9), "-999999999.999999999");
        assert_eq!(d("123456789012345678.9", 19, 1), "123456789012345678.9");
        assert_eq!(d("0.123456789123", 12, 12), "0.123456789123");
        assert_eq!(d("-7", 1, 0), "-7");
        // Digits out of range for a group are rejected.
        let bad = cell_err(&[(ct::NEWDECIMAL, &[2, 0])], vec![0x80 | 0x7f]);
        assert!(matches!(bad, DecodeError::InvalidValue { .. }), "{bad}");
    }

    fn cell_err(cols: &[(u8, &[u8])], bytes: Vec<u8>) -> DecodeError {
        let p = plan(cols);
        insert(&p, &image(&[Some(bytes)])).unwrap_err()
    }

    #[test]
    fn bad_decimal_metadata() {
        for meta in [[66u8, 2], [10, 11], [0, 0]] {
            let raw = RawTableMap {
                table_id: 1,
                schema: "db",
                table: "t",
                column_types: &[ct::NEWDECIMAL],
                metadata: &meta,
                null_bitmap: &[],
                optional_metadata: &[],
            };
            let e = TablePlan::from_raw(&raw, None).unwrap_err();
            assert!(matches!(e, DecodeError::BadMetadata { column: 0, .. }), "{e}");
            assert!(e.to_string().contains("db.t"), "{e}");
        }
    }

    #[test]
    fn year_date_time() {
        assert_eq!(cell(&[(ct::YEAR, &[])], vec![0]), Value::Year(0));
        assert_eq!(cell(&[(ct::YEAR, &[])], vec![1]), Value::Year(1901));
        assert_eq!(cell(&[(ct::YEAR, &[])], vec![255]), Value::Year(2155));
        let date = |y: u32, m: u32, d: u32| ((y << 9) | (m << 5) | d).to_le_bytes()[..3].to_vec();
        assert_eq!(cell(&[(ct::DATE, &[])], date(2024, 2, 29)), Value::Date { year: 2024, month: 2, day: 29 });
        assert_eq!(cell(&[(ct::DATE, &[])], date(0, 0, 0)), Value::Date { year: 0, month: 0, day: 0 });
        assert_eq!(cell(&[(ct::TIME, &[])], 123_456u32.to_le_bytes()[..3].to_vec()), time(false, 12, 34, 56, 0));
        assert_eq!(cell(&[(ct::TIME, &[])], (-8_385_959i32).to_le_bytes()[..3].to_vec()), time(true, 838, 59, 59, 0));
        assert_eq!(
            cell(&[(ct::DATETIME, &[])], 20_240_229_123_456u64.to_le_bytes().to_vec()),
            Value::DateTime { year: 2024, month: 2, day: 29, hour: 12, minute: 34, second: 56, micros: 0 }
        );
        assert_eq!(
            cell(&[(ct::DATETIME, &[])], 0u64.to_le_bytes().to_vec()),
            Value::DateTime { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0, micros: 0 }
        );
    }

    #[test]
    fn datetime2_all_fsp() {
        for fsp in 0..=6u8 {
            let micros = match fsp {
                0 => 0,
                1 => 100_000,
                2 => 120_000,
                3 => 123_000,
                4 => 123_400,
                5 => 123_450,
                _ => 123_456,
            };
            let v = cell(&[(ct::DATETIME2, &[fsp])], datetime2(2024, 12, 31, 23, 59, 58, micros, fsp));
            assert_eq!(
                v,
                Value::DateTime {
                    year: 2024,
                    month: 12,
                    day: 31,
                    hour: 23,
                    minute: 59,
                    second: 58,
                    micros: micros as u32
                },
                "fsp {fsp}"
            );
        }
        // Hand-checked bytes: '2024-01-02 03:04:05.678901' DATETIME(6).
        let hand = vec![0x99, 0xB2, 0x44, 0x31, 0x05, 0x0A, 0x5B, 0xF5];
        assert_eq!(hand, datetime2(2024, 1, 2, 3, 4, 5, 678_901, 6));
        assert_eq!(
            cell(&[(ct::DATETIME2, &[6])], hand),
            Value::DateTime { year: 2024, month: 1, day: 2, hour: 3, minute: 4, second: 5, micros: 678_901 }
        );
        // Zero datetime.
        assert_eq!(
            cell(&[(ct::DATETIME2, &[0])], vec![0x80, 0, 0, 0, 0]),
            Value::DateTime { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0, micros: 0 }
        );
    }

    #[test]
    fn time2_positive_and_negative() {
        assert_eq!(cell(&[(ct::TIME2, &[0])], vec![0x80, 0, 0]), time(false, 0, 0, 0, 0));
        assert_eq!(cell(&[(ct::TIME2, &[0])], vec![0x7f, 0xff, 0xff]), time(true, 0, 0, 1, 0));
        for fsp in 0..=6u8 {
            let micros = match fsp {
                0 => 0,
                1 | 2 => 500_000,
                3 | 4 => 123_400,
                _ => 123_456,
            };
            for neg in [false, true] {
                for (h, m, s) in [(0, 0, 0), (0, 0, 1), (12, 34, 56), (838, 59, 59)] {
                    if h == 0 && m == 0 && s == 0 && micros == 0 {
                        // -00:00:00 is stored as 00:00:00.
                        continue;
                    }
                    let got = cell(&[(ct::TIME2, &[fsp])], time2(neg, h, m, s, micros, fsp));
                    assert_eq!(
                        got,
                        time(neg, h as u32, m as u8, s as u8, micros as u32),
                        "fsp {fsp} neg {neg} {h}:{m}:{s}"
                    );
                }
            }
        }
        // '-00:00:00.5' TIME(1): int part -1 +1, frac byte 0xCE (−50).
        assert_eq!(time2(true, 0, 0, 0, 500_000, 1), vec![0x7f, 0xff, 0xff, 0xce]);
        assert_eq!(cell(&[(ct::TIME2, &[1])], vec![0x7f, 0xff, 0xff, 0xce]), time(true, 0, 0, 0, 500_000));
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            cell(&[(ct::TIMESTAMP, &[])], 1_700_000_000u32.to_le_bytes().to_vec()),
            Value::Timestamp { unix_secs: 1_700_000_000, micros: 0 }
        );
        let mut b = 1_700_000_000u32.to_be_bytes().to_vec();
        b.extend(frac_bytes(123_000, 3));
        assert_eq!(cell(&[(ct::TIMESTAMP2, &[3])], b), Value::Timestamp { unix_secs: 1_700_000_000, micros: 123_000 });
        let mut b = 1u32.to_be_bytes().to_vec();
        b.extend(frac_bytes(999_999, 6));
        assert_eq!(cell(&[(ct::TIMESTAMP2, &[6])], b), Value::Timestamp { unix_secs: 1, micros: 999_999 });
        assert_eq!(cell(&[(ct::TIMESTAMP2, &[0])], vec![0, 0, 0, 0]), Value::Timestamp { unix_secs: 0, micros: 0 });
        // A fractional part >= 1 s is invalid.
        let e = cell_err(&[(ct::TIMESTAMP2, &[6])], vec![0, 0, 0, 1, 0xff, 0xff, 0xff]);
        assert!(matches!(e, DecodeError::InvalidValue { .. }));
    }

    #[test]
    fn binary_columns_get_back_the_trailing_zero_bytes_the_binlog_cut() {
        // BINARY(4) (CHAR metadata 0xfe, length 4) and CHAR(4) of a text charset side by side: the binlog stores
        // x'ff000000' as 1 byte and 'ab  ' as 2; only the BINARY column is padded (with 0x00), as the server does.
        let cols: &[(u8, &[u8])] = &[(ct::STRING, &[0xfe, 4]), (ct::STRING, &[0xfe, 4])];
        let mut p = plan(cols);
        p.pad_fixed_binary_columns(|i| i == 0);
        let data = image(&[Some(vec![1, 0xff]), Some(vec![2, b'a', b'b'])]);
        let row = insert(&p, &data).unwrap().rows.remove(0).after.unwrap();
        assert_eq!(row, vec![Value::Bytes(vec![0xff, 0, 0, 0]), Value::Bytes(b"ab".to_vec())]);
        // All zeros (stored as the empty string), and a full-length value untouched.
        let data = image(&[Some(vec![0]), Some(vec![0])]);
        assert_eq!(insert(&p, &data).unwrap().rows.remove(0).after.unwrap()[0], Value::Bytes(vec![0; 4]));
        let data = image(&[Some(vec![4, 1, 2, 3, 4]), Some(vec![0])]);
        assert_eq!(insert(&p, &data).unwrap().rows.remove(0).after.unwrap()[0], Value::Bytes(vec![1, 2, 3, 4]));
        // Unmarked, the value stays as the binlog has it.
        let data = image(&[Some(vec![1, 0xff]), Some(vec![0])]);
        assert_eq!(insert(&plan(cols), &data).unwrap().rows.remove(0).after.unwrap()[0], Value::Bytes(vec![0xff]));
    }

    #[test]
    fn strings() {
        assert_eq!(cell(&[(ct::VARCHAR, &[10, 0])], vec![3, b'a', b'b', b'c']), Value::Bytes(b"abc".to_vec()));
        // VARCHAR(300): max length ≥ 256 → 2-byte prefix.
        let mut b = 300u16.to_le_bytes().to_vec();
        b.extend(std::iter::repeat_n(b'x', 300));
        assert_eq!(cell(&[(ct::VARCHAR, &[0x2c, 0x01])], b), Value::Bytes(vec![b'x'; 300]));
        // CHAR(10).
        assert_eq!(cell(&[(ct::STRING, &[0xfe, 10])], vec![2, b'h', b'i']), Value::Bytes(b"hi".to_vec()));
        // utf8mb4 CHAR(255) = 1020 bytes: real type 0xFE ^ ((1020 & 0x300) >> 4) = 0xCE, low byte 0xFC.
        let p = plan(&[(ct::STRING, &[0xce, 0xfc])]);
        assert_eq!(p.columns()[0].real_type, ct::STRING);
        assert_eq!(p.columns()[0].max_length, 1020);
        let mut b = 600u16.to_le_bytes().to_vec();
        b.extend(std::iter::repeat_n(b'y', 600));
        assert_eq!(cell(&[(ct::STRING, &[0xce, 0xfc])], b), Value::Bytes(vec![b'y'; 600]));
        // CHAR(100) utf8mb4 = 400 bytes: 0xFE ^ 0x10 = 0xEE, 0x90.
        assert_eq!(plan(&[(ct::STRING, &[0xee, 0x90])]).columns()[0].max_length, 400);
        // BLOB with 2-byte, GEOMETRY and VECTOR with 4-byte length.
        assert_eq!(cell(&[(ct::BLOB, &[2])], vec![2, 0, 0xde, 0xad]), Value::Bytes(vec![0xde, 0xad]));
        assert_eq!(cell(&[(ct::BLOB, &[3])], vec![1, 0, 0, 7]), Value::Bytes(vec![7]));
        assert_eq!(cell(&[(ct::GEOMETRY, &[4])], vec![1, 0, 0, 0, 9]), Value::Bytes(vec![9]));
        assert_eq!(
            cell(&[(ct::VECTOR, &[4])], vec![4, 0, 0, 0, 0, 0, 0x80, 0x3f]),
            Value::Bytes(vec![0, 0, 0x80, 0x3f])
        );
        // A bad prefix size in metadata.
        let raw = RawTableMap {
            table_id: 1,
            schema: "db",
            table: "t",
            column_types: &[ct::BLOB],
            metadata: &[5],
            null_bitmap: &[],
            optional_metadata: &[],
        };
        assert!(matches!(TablePlan::from_raw(&raw, None), Err(DecodeError::BadMetadata { .. })));
    }

    #[test]
    fn enum_set_bit_null_json() {
        assert_eq!(cell(&[(ct::STRING, &[0xf7, 1])], vec![3]), Value::Enum(3));
        assert_eq!(cell(&[(ct::STRING, &[0xf7, 2])], vec![0x2c, 0x01]), Value::Enum(300));
        assert_eq!(cell(&[(ct::ENUM, &[0xf7, 1])], vec![2]), Value::Enum(2));
        assert_eq!(cell(&[(ct::STRING, &[0xf8, 1])], vec![0b101]), Value::Set(5));
        assert_eq!(cell(&[(ct::STRING, &[0xf8, 8])], u64::MAX.to_le_bytes().to_vec()), Value::Set(u64::MAX));
        assert_eq!(cell(&[(ct::STRING, &[0xf8, 3])], vec![1, 0, 0x80]), Value::Set(0x80_0001));
        // BIT(1): 1 bit, 0 bytes; BIT(64): 0 bits, 8 bytes; BIT(10): 2 bits, 1 byte.
        assert_eq!(cell(&[(ct::BIT, &[1, 0])], vec![1]), Value::Bit(1));
        assert_eq!(cell(&[(ct::BIT, &[0, 8])], vec![0x80, 0, 0, 0, 0, 0, 0, 1]), Value::Bit(0x8000_0000_0000_0001));
        assert_eq!(cell(&[(ct::BIT, &[2, 1])], vec![0x03, 0xff]), Value::Bit(0x3ff));
        let p = plan(&[(ct::NULL, &[]), (ct::LONG, &[])]);
        let data = image(&[Some(vec![]), Some(vec![5, 0, 0, 0])]);
        assert_eq!(insert(&p, &data).unwrap().rows[0].after.as_ref().unwrap(), &vec![Value::Null, Value::Int(5)]);
        // JSON: 4-byte length, binary JSON literal true; empty JSON → null.
        assert_eq!(cell(&[(ct::JSON, &[4])], vec![2, 0, 0, 0, 0x04, 0x01]), Value::Json("true".into()));
        assert_eq!(cell(&[(ct::JSON, &[4])], vec![0, 0, 0, 0]), Value::Json("null".into()));
        let e = cell_err(&[(ct::JSON, &[4])], vec![1, 0, 0, 0, 0x33]);
        assert!(matches!(e, DecodeError::InvalidValue { .. }), "{e}");
    }

    #[test]
    fn legacy_decimal_and_unknown_types() {
        let e = cell_err(&[(ct::DECIMAL, &[])], vec![1, 2, 3]);
        assert!(matches!(e, DecodeError::Unsupported { .. }), "{e}");
        // A legacy DECIMAL column that is NULL (or absent) does not prevent decoding.
        let p = plan(&[(ct::DECIMAL, &[]), (ct::TINY, &[])]);
        let rows = insert(&p, &image(&[None, Some(vec![1])])).unwrap();
        assert_eq!(rows.rows[0].after.as_ref().unwrap(), &vec![Value::Null, Value::Int(1)]);
        let raw = RawTableMap {
            table_id: 1,
            schema: "db",
            table: "t",
            column_types: &[ct::LONG, 100],
            metadata: &[],
            null_bitmap: &[],
            optional_metadata: &[],
        };
        let e = TablePlan::from_raw(&raw, None).unwrap_err();
        assert!(matches!(e, DecodeError::UnknownColumnType { column: 1, type_byte: 100, .. }), "{e}");
        // Metadata shorter / longer than the types need.
        let mut raw = RawTableMap { column_types: &[ct::VARCHAR], metadata: &[10], ..raw };
        assert!(matches!(TablePlan::from_raw(&raw, None), Err(DecodeError::BadMetadata { .. })));
        raw.metadata = &[10, 0, 1];
        assert!(matches!(TablePlan::from_raw(&raw, None), Err(DecodeError::BadTableMap { .. })));
    }

    #[test]
    fn null_bitmap_and_absent_columns() {
        // 10 INT columns; NULLs at 0, 7, 8, 9.
        let cols: Vec<(u8, &[u8])> = vec![(ct::LONG, &[]); 10];
        let p = plan(&cols);
        let cells: Vec<Option<Vec<u8>>> =
            (0..10u32).map(|i| if [0, 7, 8, 9].contains(&i) { None } else { Some(i.to_le_bytes().to_vec()) }).collect();
        let data = image(&cells);
        assert_eq!(data[0], 0b1000_0001);
        assert_eq!(data[1], 0b0000_0011);
        let row = insert(&p, &data).unwrap().rows.remove(0).after.unwrap();
        for (i, v) in row.iter().enumerate() {
            if [0, 7, 8, 9].contains(&i) {
                assert_eq!(v, &Value::Null);
            } else {
                assert_eq!(v, &Value::Int(i as i64));
            }
        }
        // Only columns 1, 4 and 9 in the image: the NULL bitmap covers those three only.
        let bitmap = [0b0001_0010u8, 0b0000_0010];
        let data = image(&[Some(vec![1, 0, 0, 0]), None, Some(vec![9, 0, 0, 0])]);
        let rows = decode_rows_raw(
            &p,
            &RawRows {
                kind: RowsKind::Insert,
                partial_update: false,
                num_columns: 10,
                before_columns: None,
                after_columns: Some(&bitmap),
                rows_data: &data,
            },
        )
        .unwrap();
        let row = rows.rows[0].after.as_ref().unwrap();
        let mut expect = vec![Value::Absent; 10];
        expect[1] = Value::Int(1);
        expect[4] = Value::Null;
        expect[9] = Value::Int(9);
        assert_eq!(row, &expect);
    }

    #[test]
    fn update_and_delete_images() {
        let p = plan(&[(ct::LONG, &[]), (ct::VARCHAR, &[20, 0])]);
        let bits = all_bits(2);
        let mut data = image(&[Some(vec![1, 0, 0, 0]), Some(vec![1, b'a'])]);
        data.extend(image(&[Some(vec![1, 0, 0, 0]), None]));
        data.extend(image(&[Some(vec![2, 0, 0, 0]), Some(vec![0])]));
        data.extend(image(&[Some(vec![3, 0, 0, 0]), Some(vec![2, b'b', b'c'])]));
        let raw = RawRows {
            kind: RowsKind::Update,
            partial_update: false,
            num_columns: 2,
            before_columns: Some(&bits),
            after_columns: Some(&bits),
            rows_data: &data,
        };
        let out = decode_rows_raw(&p, &raw).unwrap();
        assert_eq!(out.kind, RowsKind::Update);
        assert_eq!(out.rows.len(), 2);
        assert_eq!(out.rows[0].before.as_ref().unwrap(), &vec![Value::Int(1), Value::Bytes(b"a".to_vec())]);
        assert_eq!(out.rows[0].after.as_ref().unwrap(), &vec![Value::Int(1), Value::Null]);
        assert_eq!(out.rows[1].before.as_ref().unwrap(), &vec![Value::Int(2), Value::Bytes(vec![])]);
        assert_eq!(out.rows[1].after.as_ref().unwrap(), &vec![Value::Int(3), Value::Bytes(b"bc".to_vec())]);

        let del = RawRows {
            kind: RowsKind::Delete,
            before_columns: Some(&bits),
            after_columns: None,
            rows_data: &data[..],
            ..raw
        };
        let out = decode_rows_raw(&p, &del).unwrap();
        assert_eq!(out.rows.len(), 4);
        assert!(out.rows.iter().all(|r| r.after.is_none() && r.before.is_some()));

        // Missing bitmaps and column count mismatches are errors.
        let bad = RawRows { before_columns: None, ..raw };
        assert!(decode_rows_raw(&p, &bad).is_err());
        let bad = RawRows { num_columns: 3, ..raw };
        assert!(matches!(decode_rows_raw(&p, &bad), Err(DecodeError::ColumnCountMismatch { .. })));
    }

    #[test]
    fn partial_json_update() {
        let p = plan(&[(ct::LONG, &[]), (ct::JSON, &[4])]);
        let bits = all_bits(2);
        let before = image(&[Some(vec![1, 0, 0, 0]), Some(vec![2, 0, 0, 0, 0x04, 0x02])]);
        // value_options = 1 (PARTIAL_JSON_UPDATES), partial bits: JSON column 0 is partial.
        let mut data = before.clone();
        data.extend([1u8, 1]);
        data.extend(image(&[Some(vec![1, 0, 0, 0]), Some(vec![3, 0, 0, 0, 0, 1, b'$'])]));
        let raw = RawRows {
            kind: RowsKind::Update,
            partial_update: true,
            num_columns: 2,
            before_columns: Some(&bits),
            after_columns: Some(&bits),
            rows_data: &data,
        };
        let e = decode_rows_raw(&p, &raw).unwrap_err();
        assert!(matches!(e, DecodeError::Unsupported { .. }), "{e}");
        assert!(e.to_string().contains("binlog_row_value_options=''"), "{e}");
        // PARTIAL_JSON set but this row's JSON is a full value: decodes.
        let mut data = before.clone();
        data.extend([1u8, 0]);
        data.extend(image(&[Some(vec![1, 0, 0, 0]), Some(vec![2, 0, 0, 0, 0x04, 0x01])]));
        let out = decode_rows_raw(&p, &RawRows { rows_data: &data, ..raw }).unwrap();
        assert_eq!(out.rows[0].after.as_ref().unwrap()[1], Value::Json("true".into()));
        // value_options = 0: no partial bits follow.
        let mut data = before;
        data.push(0);
        data.extend(image(&[Some(vec![1, 0, 0, 0]), Some(vec![2, 0, 0, 0, 0x04, 0x00])]));
        let out = decode_rows_raw(&p, &RawRows { rows_data: &data, ..raw }).unwrap();
        assert_eq!(out.rows[0].after.as_ref().unwrap()[1], Value::Json("null".into()));
    }

    /// A table with one column of (nearly) every type and a row for it.
    fn kitchen_sink() -> (TablePlan, Vec<u8>) {
        let cols: Vec<(u8, &[u8])> = vec![
            (ct::TINY, &[]),
            (ct::SHORT, &[]),
            (ct::INT24, &[]),
            (ct::LONG, &[]),
            (ct::LONGLONG, &[]),
            (ct::FLOAT, &[4]),
            (ct::DOUBLE, &[8]),
            (ct::NEWDECIMAL, &[65, 30]),
            (ct::YEAR, &[]),
            (ct::DATE, &[]),
            (ct::TIME2, &[3]),
            (ct::DATETIME2, &[6]),
            (ct::TIMESTAMP2, &[2]),
            (ct::VARCHAR, &[0x2c, 0x01]),
            (ct::STRING, &[0xce, 0xfc]),
            (ct::STRING, &[0xf7, 1]),
            (ct::STRING, &[0xf8, 2]),
            (ct::BLOB, &[2]),
            (ct::JSON, &[4]),
            (ct::BIT, &[3, 1]),
            (ct::TIME, &[]),
            (ct::DATETIME, &[]),
            (ct::TIMESTAMP, &[]),
            (ct::GEOMETRY, &[4]),
        ];
        let p = plan(&cols);
        let cells = vec![
            Some(vec![1]),
            Some(vec![2, 0]),
            Some(vec![3, 0, 0]),
            None,
            Some(vec![5, 0, 0, 0, 0, 0, 0, 0]),
            Some(1.0f32.to_le_bytes().to_vec()),
            Some(2.0f64.to_le_bytes().to_vec()),
            Some(dec_bin("-123.456", 65, 30)),
            Some(vec![100]),
            Some(vec![0x21, 0x0c, 0x0f]),
            Some(time2(true, 1, 2, 3, 4_500, 3)),
            Some(datetime2(2001, 2, 3, 4, 5, 6, 7, 6)),
            Some(vec![0, 0, 0, 9, 12]),
            Some(vec![2, 0, b'h', b'i']),
            Some(vec![1, 0, b'z']),
            Some(vec![2]),
            Some(vec![3, 0]),
            Some(vec![1, 0, 0xaa]),
            Some(vec![2, 0, 0, 0, 0x04, 0x01]),
            Some(vec![0x07, 0xff]),
            Some(vec![1, 0, 0]),
            Some(20_010_203_040_506u64.to_le_bytes().to_vec()),
            Some(vec![1, 0, 0, 0]),
            Some(vec![1, 0, 0, 0, 0x55]),
        ];
        let mut data = image(&cells);
        let second = data.clone();
        data.extend(second);
        (p, data)
    }

    #[test]
    fn kitchen_sink_decodes() {
        let (p, data) = kitchen_sink();
        let out = insert(&p, &data).unwrap();
        assert_eq!(out.rows.len(), 2);
        let r = out.rows[0].after.as_ref().unwrap();
        assert_eq!(r[3], Value::Null);
        assert_eq!(r[7], Value::Decimal(format!("-123.456{}", "0".repeat(27))));
        assert_eq!(r[10], time(true, 1, 2, 3, 4_500));
        assert_eq!(r[12], Value::Timestamp { unix_secs: 9, micros: 120_000 });
        assert_eq!(r[19], Value::Bit(0x7ff));
        assert_eq!(r[23], Value::Bytes(vec![0x55]));
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        let (p, data) = kitchen_sink();
        let row_len = data.len() / 2;
        for cut in 0..data.len() {
            let r = insert(&p, &data[..cut]);
            if cut == 0 {
                assert_eq!(r.unwrap().rows.len(), 0);
            } else if cut == row_len {
                assert_eq!(r.unwrap().rows.len(), 1);
            } else {
                let e = r.expect_err(&format!("prefix {cut} should fail"));
                assert!(e.to_string().contains("db.t"), "{e}");
            }
        }
        // Update events cut anywhere (before/after image boundary included) fail too.
        let bits = all_bits(p.column_count());
        let half = &data[..row_len];
        let mut upd = half.to_vec();
        upd.extend_from_slice(half);
        for cut in 1..upd.len() {
            let raw = RawRows {
                kind: RowsKind::Update,
                partial_update: false,
                num_columns: p.column_count(),
                before_columns: Some(&bits),
                after_columns: Some(&bits),
                rows_data: &upd[..cut],
            };
            assert!(decode_rows_raw(&p, &raw).is_err(), "update prefix {cut}");
        }
    }

    #[test]
    fn zero_column_image_cannot_loop() {
        let p = plan(&[(ct::LONG, &[])]);
        let raw = RawRows {
            kind: RowsKind::Insert,
            partial_update: false,
            num_columns: 1,
            before_columns: None,
            after_columns: Some(&[0]),
            rows_data: &[0, 0, 0],
        };
        assert!(decode_rows_raw(&p, &raw).is_err());
    }

    #[test]
    fn decode_rows_from_mysql_common_event() {
        use mysql_common::binlog::consts::{BinlogVersion, EventFlags, EventType};
        use mysql_common::binlog::events::{BinlogEventHeader, Event, EventData, FormatDescriptionEvent};
        // Build a WRITE_ROWS v2 event body and parse it through mysql_common.
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
        let mut body = vec![];
        body.extend_from_slice(&7u64.to_le_bytes()[..6]); // table id
        body.extend_from_slice(&0u16.to_le_bytes()); // flags
        body.extend_from_slice(&2u16.to_le_bytes()); // extra data length (none)
        body.push(2); // columns
        body.push(0b11); // after-image bitmap
        body.extend(image(&[Some(vec![42, 0, 0, 0]), Some(vec![2, b'o', b'k'])]));
        let size = (BinlogEventHeader::LEN + body.len()) as u32;
        let header = BinlogEventHeader::new(0, EventType::WRITE_ROWS_EVENT, 1, size, 0, EventFlags::empty());
        let mut bytes = vec![];
        mysql_common::proto::MySerialize::serialize(&header, &mut bytes);
        bytes.extend_from_slice(&body);
        let ev = Event::read(&fde, &bytes[..]).unwrap();
        let Some(EventData::RowsEvent(rows)) = ev.read_data().unwrap() else { panic!("not a rows event") };
        let p = plan(&[(ct::LONG, &[]), (ct::VARCHAR, &[10, 0])]);
        let out = decode_rows(&p, &rows).unwrap();
        assert_eq!(out.kind, RowsKind::Insert);
        assert_eq!(out.rows[0].after.as_ref().unwrap(), &vec![Value::Int(42), Value::Bytes(b"ok".to_vec())]);
        let p3 = plan(&[(ct::LONG, &[]), (ct::VARCHAR, &[10, 0]), (ct::LONG, &[])]);
        assert!(matches!(decode_rows(&p3, &rows), Err(DecodeError::ColumnCountMismatch { .. })));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

            #[test]
            fn mutated_rows_never_panic(muts in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
                                        cut in any::<usize>(), kind in 0u8..4) {
                let (p, data) = kitchen_sink();
                let mut d = data.clone();
                for (i, b) in &muts {
                    let i = i % d.len();
                    d[i] = *b;
                }
                let d = &d[..d.len() - cut % 8];
                let bits = all_bits(p.column_count());
                let raw = RawRows {
                    kind: match kind { 0 => RowsKind::Insert, 1 => RowsKind::Delete, _ => RowsKind::Update },
                    partial_update: kind == 3,
                    num_columns: p.column_count(),
                    before_columns: Some(&bits),
                    after_columns: Some(&bits),
                    rows_data: d,
                };
                if let Ok(rows) = decode_rows_raw(&p, &raw) {
                    for r in rows.rows {
                        prop_assert!(r.before.is_some() || r.after.is_some());
                    }
                }
            }

            #[test]
            fn random_table_maps_never_panic(types in proptest::collection::vec(any::<u8>(), 0..12),
                                             meta in proptest::collection::vec(any::<u8>(), 0..24),
                                             opt in proptest::collection::vec(any::<u8>(), 0..24),
                                             data in proptest::collection::vec(any::<u8>(), 0..64),
                                             bitmap in any::<u16>()) {
                let raw = RawTableMap {
                    table_id: 1,
                    schema: "db",
                    table: "t",
                    column_types: &types,
                    metadata: &meta,
                    null_bitmap: &[],
                    optional_metadata: &opt,
                };
                if let Ok(p) = TablePlan::from_raw(&raw, None) {
                    let bits = bitmap.to_le_bytes();
                    let raw = RawRows {
                        kind: RowsKind::Update,
                        partial_update: bitmap & 1 == 1,
                        num_columns: p.column_count(),
                        before_columns: Some(&bits),
                        after_columns: Some(&bits),
                        rows_data: &data,
                    };
                    let _ = decode_rows_raw(&p, &raw);
                }
            }
        }
    }
}
