//! MySQL column types → Kafka Connect schemas and values, as the Debezium MySQL connector writes them with its
//! defaults (`decimal.handling.mode=precise`, `time.precision.mode=adaptive_time_microseconds`,
//! `bigint.unsigned.handling.mode=long`, `binary.handling.mode=bytes`).

use std::io::Write as _;

use base64::Engine as _;
use dtle_mysql::schema::ColumnMeta;
use dtle_mysql::value::civil_from_unix;
use dtle_mysql::Value;
use encoding_rs::Encoding;

use crate::connect::{write_f32, write_f64, Schema};
use crate::ddl::SqlDefault;

/// How one column is written.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// BIT(1).
    Boolean,
    Int16,
    Int32,
    /// Also BIGINT UNSIGNED, which wraps above 2^63-1 like Debezium's default `long` mode.
    Int64,
    Float32,
    Float64,
    /// FLOAT(M,D): Debezium writes it as a Connect `double` holding the float's value.
    FloatAsDouble,
    /// `org.apache.kafka.connect.data.Decimal`: two's-complement big-endian unscaled value.
    Decimal {
        precision: u32,
        scale: u32,
    },
    /// `io.debezium.time.Date`: days since the epoch.
    Date,
    /// `io.debezium.time.MicroTime`: microseconds (may be negative or above 24 h).
    MicroTime,
    /// DATETIME(0..3) → `io.debezium.time.Timestamp` (ms); DATETIME(4..6) → `MicroTimestamp` (µs).
    Timestamp {
        micros: bool,
    },
    /// TIMESTAMP → `io.debezium.time.ZonedTimestamp`, an ISO-8601 string in UTC with `fsp` fraction digits.
    ZonedTimestamp {
        fsp: u32,
    },
    /// `io.debezium.time.Year`.
    Year,
    /// Character columns, decoded from their character set (`None`: UTF-8).
    String {
        encoding: Option<&'static Encoding>,
    },
    /// Binary strings and blobs.
    Bytes,
    /// BIT(n > 1) → `io.debezium.data.Bits`, little-endian bytes like Debezium.
    Bits {
        length: u32,
    },
    /// `io.debezium.data.Enum`. The full copy reads the value's text in the column's character set (`encoding`;
    /// `None`: UTF-8); the binlog carries its index into `allowed`.
    Enum {
        allowed: Vec<String>,
        encoding: Option<&'static Encoding>,
    },
    /// `io.debezium.data.EnumSet` (as [`Kind::Enum`], with a bit set in the binlog).
    Set {
        allowed: Vec<String>,
        encoding: Option<&'static Encoding>,
    },
    /// `io.debezium.data.Json`.
    Json,
    /// `io.debezium.data.geometry.Geometry` {wkb, srid}.
    Geometry,
    /// POINT columns: `io.debezium.data.geometry.Point` {x, y, wkb, srid}, as Debezium's MySQL connector writes them.
    Point,
}

/// The type arguments inside the first parentheses of a column type: `decimal(10,2) unsigned` → `10,2`.
fn type_args(column_type: &str) -> Option<&str> {
    let open = column_type.find('(')?;
    let close = column_type.rfind(')')?;
    (close > open).then(|| &column_type[open + 1..close])
}

fn first_number(column_type: &str) -> Option<u32> {
    type_args(column_type)?.split(',').next()?.trim().parse().ok()
}

/// The quoted values of `enum('a','b''c')` / `set(...)`.
pub fn enum_values(column_type: &str) -> Vec<String> {
    let Some(args) = type_args(column_type) else { return Vec::new() };
    let mut out = Vec::new();
    let mut chars = args.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    s.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        s.push(n);
                    }
                }
                _ => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

/// The encoding of a MySQL character set, `Ok(None)` for UTF-8.
fn charset_encoding(charset: &str) -> Result<Option<&'static Encoding>, String> {
    use encoding_rs as e;
    Ok(Some(match charset.to_ascii_lowercase().as_str() {
        "utf8" | "utf8mb3" | "utf8mb4" => return Ok(None),
        // MySQL's latin1 is cp1252; ASCII is a subset of it.
        "latin1" | "ascii" => e::WINDOWS_1252,
        "latin2" => e::ISO_8859_2,
        "latin5" => e::WINDOWS_1254,
        "latin7" => e::ISO_8859_13,
        "greek" => e::ISO_8859_7,
        "hebrew" => e::ISO_8859_8,
        "cp1250" => e::WINDOWS_1250,
        "cp1251" => e::WINDOWS_1251,
        "cp1256" => e::WINDOWS_1256,
        "cp1257" => e::WINDOWS_1257,
        "cp866" => e::IBM866,
        "tis620" => e::WINDOWS_874,
        "koi8r" => e::KOI8_R,
        "koi8u" => e::KOI8_U,
        "macroman" => e::MACINTOSH,
        "gbk" | "gb2312" => e::GBK,
        "gb18030" => e::GB18030,
        "big5" => e::BIG5,
        "sjis" | "cp932" => e::SHIFT_JIS,
        "ujis" | "eucjpms" => e::EUC_JP,
        "euckr" => e::EUC_KR,
        "utf16" | "ucs2" => e::UTF_16BE,
        "utf16le" => e::UTF_16LE,
        other => return Err(format!("character set {other} cannot be converted to a JSON string by this build")),
    }))
}

/// How a column is written, or why it cannot be.
pub fn column_kind(c: &ColumnMeta) -> Result<Kind, String> {
    let ct = c.column_type.to_ascii_lowercase();
    let fsp = || first_number(&ct).unwrap_or(0);
    Ok(match c.data_type.as_str() {
        "tinyint" => Kind::Int16,
        "smallint" if c.unsigned => Kind::Int32,
        "smallint" => Kind::Int16,
        "mediumint" => Kind::Int32,
        "int" | "integer" if c.unsigned => Kind::Int64,
        "int" | "integer" => Kind::Int32,
        "bigint" => Kind::Int64,
        "float" if type_args(&ct).is_some() => Kind::FloatAsDouble,
        "float" => Kind::Float32,
        "double" | "real" | "double precision" => Kind::Float64,
        "decimal" | "numeric" | "fixed" => {
            let args = type_args(&ct).unwrap_or("10,0");
            let mut it = args.split(',').map(|s| s.trim().parse::<u32>());
            let precision = it.next().and_then(|r| r.ok()).unwrap_or(10);
            let scale = it.next().and_then(|r| r.ok()).unwrap_or(0);
            Kind::Decimal { precision, scale }
        }
        "date" => Kind::Date,
        "time" => Kind::MicroTime,
        "datetime" => Kind::Timestamp { micros: fsp() > 3 },
        "timestamp" => Kind::ZonedTimestamp { fsp: fsp().min(6) },
        "year" => Kind::Year,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => match c.charset.as_deref() {
            None | Some("binary") => Kind::Bytes,
            Some(cs) => Kind::String { encoding: charset_encoding(cs)? },
        },
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Kind::Bytes,
        "bit" => match first_number(&ct).unwrap_or(1) {
            1 => Kind::Boolean,
            n => Kind::Bits { length: n },
        },
        "enum" | "set" => {
            let (allowed, encoding) =
                (enum_values(&c.column_type), charset_encoding(c.charset.as_deref().unwrap_or("utf8mb4"))?);
            if c.data_type == "enum" {
                Kind::Enum { allowed, encoding }
            } else {
                Kind::Set { allowed, encoding }
            }
        }
        "json" => Kind::Json,
        "point" => Kind::Point,
        "geometry" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon"
        | "geometrycollection" | "geomcollection" => Kind::Geometry,
        other => return Err(format!("type {other} has no Kafka Connect mapping in this build")),
    })
}

/// The Kafka Connect schema of one column, as Debezium's MySQL connector builds it; `default` is the column's
/// default value already written as JSON (Debezium puts column defaults into the schema).
pub fn field_schema(kind: &Kind, optional: bool, default: Option<Vec<u8>>) -> Schema {
    let logical = |ty: &'static str, name: &str| Schema::primitive(ty, optional).named(name).version(1);
    let mut s = match kind {
        Kind::Boolean => Schema::primitive("boolean", optional),
        Kind::Int16 => Schema::primitive("int16", optional),
        Kind::Int32 => Schema::primitive("int32", optional),
        Kind::Int64 => Schema::primitive("int64", optional),
        Kind::Float32 => Schema::primitive("float", optional),
        Kind::Float64 | Kind::FloatAsDouble => Schema::primitive("double", optional),
        // Connect's Decimal.builder(scale), then Debezium's precision parameter.
        Kind::Decimal { precision, scale } => logical("bytes", "org.apache.kafka.connect.data.Decimal")
            .param("scale", scale.to_string())
            .param("connect.decimal.precision", precision.to_string()),
        Kind::Date => logical("int32", "io.debezium.time.Date"),
        Kind::MicroTime => logical("int64", "io.debezium.time.MicroTime"),
        Kind::Timestamp { micros: false } => logical("int64", "io.debezium.time.Timestamp"),
        Kind::Timestamp { micros: true } => logical("int64", "io.debezium.time.MicroTimestamp"),
        Kind::ZonedTimestamp { .. } => logical("string", "io.debezium.time.ZonedTimestamp"),
        Kind::Year => logical("int32", "io.debezium.time.Year"),
        Kind::String { .. } => Schema::primitive("string", optional),
        Kind::Bytes => Schema::primitive("bytes", optional),
        Kind::Bits { length } => logical("bytes", "io.debezium.data.Bits").param("length", length.to_string()),
        Kind::Enum { allowed, .. } => logical("string", "io.debezium.data.Enum").param("allowed", allowed.join(",")),
        Kind::Set { allowed, .. } => logical("string", "io.debezium.data.EnumSet").param("allowed", allowed.join(",")),
        Kind::Json => logical("string", "io.debezium.data.Json"),
        Kind::Geometry => Schema::structure(
            vec![("wkb".into(), Schema::primitive("bytes", false)), ("srid".into(), Schema::primitive("int32", true))],
            optional,
        )
        .named("io.debezium.data.geometry.Geometry")
        .version(1)
        .doc("Geometry"),
        // Debezium's Point.builder(): x and y, then the optional wkb and srid.
        Kind::Point => Schema::structure(
            vec![
                ("x".into(), Schema::primitive("double", false)),
                ("y".into(), Schema::primitive("double", false)),
                ("wkb".into(), Schema::primitive("bytes", true)),
                ("srid".into(), Schema::primitive("int32", true)),
            ],
            optional,
        )
        .named("io.debezium.data.geometry.Point")
        .version(1)
        .doc("Geometry (POINT)"),
    };
    s.default = default;
    s
}

/// Appends a JSON string literal, escaped as Kafka Connect's JsonConverter (Jackson) writes it.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    crate::connect::write_str(out, s);
}

fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    let n = base64::engine::general_purpose::STANDARD.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
    out.truncate(start + n);
    out.push(b'"');
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Two's-complement big-endian bytes of the unscaled decimal (`-12.30` at scale 3 → -12300), minimal like Java's
/// `BigInteger.toByteArray`.
pub fn decimal_unscaled_bytes(text: &str, scale: u32) -> Result<Vec<u8>, String> {
    let t = text.trim();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int_part, frac_part) = t.split_once('.').unwrap_or((t, ""));
    if !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit())
        || (int_part.is_empty() && frac_part.is_empty())
    {
        return Err(format!("{text:?} is not a decimal number"));
    }
    let mut digits: Vec<u8> = int_part.bytes().map(|b| b - b'0').collect();
    let frac: Vec<u8> = frac_part.bytes().map(|b| b - b'0').collect();
    if frac.len() > scale as usize && frac[scale as usize..].iter().any(|&d| d != 0) {
        return Err(format!("{text:?} has more than {scale} decimal places"));
    }
    for i in 0..scale as usize {
        digits.push(frac.get(i).copied().unwrap_or(0));
    }
    // Repeated division by 256 of the decimal digit string: little-endian magnitude bytes.
    let mut magnitude = Vec::new();
    let mut num: Vec<u8> = digits.into_iter().skip_while(|&d| d == 0).collect();
    while !num.is_empty() {
        let mut rem: u32 = 0;
        let mut next = Vec::with_capacity(num.len());
        for d in &num {
            let cur = rem * 10 + u32::from(*d);
            let q = cur / 256;
            rem = cur % 256;
            if !(next.is_empty() && q == 0) {
                next.push(q as u8);
            }
        }
        magnitude.push(rem as u8);
        num = next;
    }
    if magnitude.is_empty() {
        return Ok(vec![0]);
    }
    let is_zero = magnitude.iter().all(|&b| b == 0);
    let mut bytes: Vec<u8> = magnitude.into_iter().rev().collect();
    if negative && !is_zero {
        // Two's complement: invert and add one, over one extra sign byte.
        bytes.insert(0, 0);
        for b in bytes.iter_mut() {
            *b = !*b;
        }
        for b in bytes.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        while bytes.len() > 1 && bytes[0] == 0xff && bytes[1] & 0x80 != 0 {
            bytes.remove(0);
        }
    } else {
        if bytes[0] & 0x80 != 0 {
            bytes.insert(0, 0);
        }
        while bytes.len() > 1 && bytes[0] == 0 && bytes[1] & 0x80 == 0 {
            bytes.remove(0);
        }
    }
    Ok(bytes)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`: with `fsp` fraction digits (Debezium's binlog reader pads to the column's
/// precision), or with `None` the fraction's trailing zeros dropped (its full copy formats the JDBC value so:
/// `05.12Z` where the binlog gives `05.120Z`).
fn write_zoned(out: &mut Vec<u8>, (y, mo, d, h, mi, s): (i64, u32, u32, u32, u32, u32), micros: u32, fsp: Option<u32>) {
    let _ = write!(out, "\"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
    let digits = format!("{micros:06}");
    let shown = match fsp {
        Some(fsp) => &digits[..fsp.min(6) as usize],
        None => digits.trim_end_matches('0'),
    };
    if !shown.is_empty() {
        let _ = write!(out, ".{shown}");
    }
    out.extend_from_slice(b"Z\"");
}

fn decode_text<'a>(bytes: &'a [u8], encoding: Option<&'static Encoding>) -> std::borrow::Cow<'a, str> {
    match encoding {
        None => String::from_utf8_lossy(bytes),
        Some(e) => e.decode_without_bom_handling(bytes).0,
    }
}

/// Appends the JSON of `v` for a column of `kind`. `optional` says whether the column allows NULL: MySQL's zero
/// dates become null there and the epoch otherwise, as Debezium does. DATETIME values are read in `zone`
/// (KafkaConfig.DateTimeZone).
pub fn write_value(
    out: &mut Vec<u8>,
    kind: &Kind,
    v: &Value,
    optional: bool,
    zone: &crate::envelope::DateTimeZone,
) -> Result<(), String> {
    let zero = |out: &mut Vec<u8>, epoch: &[u8]| out.extend_from_slice(if optional { b"null" } else { epoch });
    match (kind, v) {
        (_, Value::Null) => out.extend_from_slice(b"null"),
        // Not in the binlog's row image: writing null would be a wrong value.
        (_, Value::Absent) => {
            return Err(
                "the value is not in the binlog row image (a session with binlog_row_image=MINIMAL or NOBLOB?): \
                 set binlog_row_image=FULL for every session on the source"
                    .to_string(),
            )
        }
        (Kind::Boolean, Value::Bit(b)) => out.extend_from_slice(if *b != 0 { b"true" } else { b"false" }),
        (Kind::Boolean, Value::Int(i)) => out.extend_from_slice(if *i != 0 { b"true" } else { b"false" }),
        (Kind::Boolean, Value::UInt(i)) => out.extend_from_slice(if *i != 0 { b"true" } else { b"false" }),
        (Kind::Int16 | Kind::Int32 | Kind::Int64 | Kind::Year, Value::Int(i)) => {
            let _ = write!(out, "{i}");
        }
        (Kind::Int16 | Kind::Int32 | Kind::Year, Value::UInt(u)) => {
            let _ = write!(out, "{u}");
        }
        // BIGINT UNSIGNED above i64::MAX wraps, like Debezium's default bigint.unsigned.handling.mode=long.
        (Kind::Int64, Value::UInt(u)) => {
            let _ = write!(out, "{}", *u as i64);
        }
        (Kind::Year | Kind::Int32 | Kind::Int16 | Kind::Int64, Value::Year(y)) => {
            let _ = write!(out, "{y}");
        }
        (Kind::Float32, Value::Float(f)) if f.is_finite() => write_f32(out, *f),
        // A FLOAT column read as a double (text of the full copy): the float it holds.
        (Kind::Float32, Value::Double(f)) if f.is_finite() => write_f32(out, *f as f32),
        (Kind::FloatAsDouble, Value::Float(f)) if f.is_finite() => write_f64(out, f64::from(*f)),
        (Kind::FloatAsDouble, Value::Double(f)) if f.is_finite() => write_f64(out, f64::from(*f as f32)),
        (Kind::Float64, Value::Double(f)) if f.is_finite() => write_f64(out, *f),
        (Kind::Float64, Value::Float(f)) if f.is_finite() => write_f64(out, f64::from(*f)),
        (Kind::Float32 | Kind::Float64 | Kind::FloatAsDouble, Value::Float(_) | Value::Double(_)) => {
            out.extend_from_slice(b"null")
        }
        (Kind::Decimal { scale, .. }, Value::Decimal(text)) => {
            write_base64(out, &decimal_unscaled_bytes(text, *scale)?)
        }
        (Kind::Date, Value::Date { year, month, day }) => {
            if *month == 0 || *day == 0 {
                zero(out, b"0");
            } else {
                let _ = write!(out, "{}", days_from_civil(i64::from(*year), u32::from(*month), u32::from(*day)));
            }
        }
        (Kind::MicroTime, Value::Time { negative, hours, minutes, seconds, micros }) => {
            let t = ((i64::from(*hours) * 60 + i64::from(*minutes)) * 60 + i64::from(*seconds)) * 1_000_000
                + i64::from(*micros);
            let _ = write!(out, "{}", if *negative { -t } else { t });
        }
        (Kind::Timestamp { micros: as_micros }, Value::DateTime { year, month, day, hour, minute, second, micros }) => {
            if *month == 0 || *day == 0 {
                zero(out, b"0");
            } else {
                let local = days_from_civil(i64::from(*year), u32::from(*month), u32::from(*day)) * 86_400
                    + i64::from(*hour) * 3600
                    + i64::from(*minute) * 60
                    + i64::from(*second);
                let secs = local - zone.offset_at_local(local);
                let us = secs * 1_000_000 + i64::from(*micros);
                let _ = write!(out, "{}", if *as_micros { us } else { us.div_euclid(1000) });
            }
        }
        (Kind::ZonedTimestamp { fsp }, Value::Timestamp { unix_secs, micros }) => {
            if *unix_secs == 0 && *micros == 0 {
                zero(out, b"\"1970-01-01T00:00:00Z\"");
            } else {
                write_zoned(out, civil_from_unix(*unix_secs), *micros, Some(*fsp));
            }
        }
        // The snapshot reads TIMESTAMP in a UTC session, as a civil date and time.
        (Kind::ZonedTimestamp { .. }, Value::DateTime { year, month, day, hour, minute, second, micros }) => {
            if *month == 0 || *day == 0 {
                zero(out, b"\"1970-01-01T00:00:00Z\"");
            } else {
                let civil = (
                    i64::from(*year),
                    u32::from(*month),
                    u32::from(*day),
                    u32::from(*hour),
                    u32::from(*minute),
                    u32::from(*second),
                );
                write_zoned(out, civil, *micros, None);
            }
        }
        (Kind::String { encoding }, Value::Bytes(b)) => write_json_str(out, &decode_text(b, *encoding)),
        (Kind::String { .. } | Kind::Json, Value::Json(s)) => write_json_str(out, s),
        (Kind::Json, Value::Bytes(b)) => write_json_str(out, &String::from_utf8_lossy(b)),
        (Kind::Bytes, Value::Bytes(b)) => write_base64(out, b),
        (Kind::Bits { length }, Value::Bit(bits)) => {
            let n = (*length as usize).div_ceil(8).clamp(1, 8);
            write_base64(out, &bits.to_le_bytes()[..n]);
        }
        (Kind::Enum { allowed, .. }, Value::Enum(i)) => match *i {
            0 => write_json_str(out, ""),
            i => match allowed.get(usize::from(i) - 1) {
                Some(s) => write_json_str(out, s),
                None => return Err(format!("ENUM index {i} is outside the {} declared values", allowed.len())),
            },
        },
        // The full copy: the member's text in the column's character set.
        (Kind::Enum { encoding, .. } | Kind::Set { encoding, .. }, Value::Bytes(b)) => {
            write_json_str(out, &decode_text(b, *encoding))
        }
        (Kind::Set { allowed, .. }, Value::Set(bits)) => {
            let names: Vec<&str> = allowed
                .iter()
                .enumerate()
                .filter(|(i, _)| *i < 64 && bits & (1u64 << i) != 0)
                .map(|(_, s)| s.as_str())
                .collect();
            write_json_str(out, &names.join(","));
        }
        (Kind::Point, Value::Bytes(b)) => {
            // 4-byte SRID, then the WKB of a 2D point: byte order, type 1, x, y (21 bytes).
            let wkb = b.get(4..).filter(|w| w.len() == 21).ok_or_else(|| {
                format!("POINT value of {} bytes is not a 2D point (4-byte SRID + 21-byte WKB)", b.len())
            })?;
            let little = wkb[0] != 0;
            let number = |at: usize| -> f64 {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&wkb[at..at + 8]);
                if little {
                    f64::from_le_bytes(raw)
                } else {
                    f64::from_be_bytes(raw)
                }
            };
            let (x, y) = (number(5), number(13));
            if !x.is_finite() || !y.is_finite() {
                return Err(format!("POINT({x} {y}) has a coordinate JSON cannot carry"));
            }
            let srid = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            out.extend_from_slice(b"{\"x\":");
            write_f64(out, x);
            out.extend_from_slice(b",\"y\":");
            write_f64(out, y);
            out.extend_from_slice(b",\"wkb\":");
            write_base64(out, wkb);
            // Debezium: no SRID (0) is null.
            if srid == 0 {
                out.extend_from_slice(b",\"srid\":null}");
            } else {
                let _ = write!(out, ",\"srid\":{srid}}}");
            }
        }
        (Kind::Geometry, Value::Bytes(b)) => {
            // MySQL stores a geometry as a 4-byte little-endian SRID followed by the WKB.
            if b.len() < 4 {
                return Err(format!("geometry value of {} bytes is too short", b.len()));
            }
            let srid = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            out.extend_from_slice(b"{\"wkb\":");
            write_base64(out, &b[4..]);
            // Debezium: no SRID (0) is null.
            if srid == 0 {
                out.extend_from_slice(b",\"srid\":null}");
            } else {
                let _ = write!(out, ",\"srid\":{srid}}}");
            }
        }
        (kind, v) => return Err(format!("unexpected value {v:?} for a column written as {kind:?}")),
    }
    Ok(())
}

/// A column's DDL default as the JSON Debezium puts into the schema (and JsonConverter writes for a null value);
/// `None` for defaults it cannot know from the text (expressions) or types without one.
pub fn default_json(
    kind: &Kind,
    optional: bool,
    d: &SqlDefault,
    zone: &crate::envelope::DateTimeZone,
) -> Option<Vec<u8>> {
    let text = match d {
        SqlDefault::Str(s) => s.as_str(),
        SqlDefault::Bare(b) => b.as_str(),
    };
    // CURRENT_TIMESTAMP (NOW(), ...): Debezium gives a DATETIME column the epoch, a TIMESTAMP column the epoch when
    // it is NOT NULL and no default otherwise.
    let lower = text.to_ascii_lowercase();
    if matches!(d, SqlDefault::Bare(_))
        && ["current_timestamp", "now(", "localtime", "localtimestamp"].iter().any(|f| lower.starts_with(f))
    {
        return match kind {
            Kind::ZonedTimestamp { .. } if !optional => Some(b"\"1970-01-01T00:00:00Z\"".to_vec()),
            Kind::Timestamp { .. } => Some(b"0".to_vec()),
            _ => None,
        };
    }
    let bits = |t: &str| -> Option<u64> {
        let inner = t.strip_prefix("b'").or_else(|| t.strip_prefix("B'"))?.strip_suffix('\'')?;
        u64::from_str_radix(inner, 2).ok()
    };
    let digits = |t: &str| -> Option<Vec<u32>> {
        let v: Vec<u32> = t
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        Some(v)
    };
    let value = match kind {
        // A BIGINT UNSIGNED default above 2^63-1 is Long.MAX_VALUE in Debezium's schema (values wrap instead).
        Kind::Int16 | Kind::Int32 | Kind::Int64 | Kind::Year => match text.parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Int(text.parse::<u64>().ok()?.min(i64::MAX as u64) as i64),
        },
        Kind::Boolean => Value::Bit(bits(text).or_else(|| text.parse().ok())?),
        Kind::Bits { .. } => Value::Bit(bits(text).or_else(|| text.parse().ok())?),
        Kind::Float32 => Value::Float(text.parse().ok()?),
        Kind::Float64 | Kind::FloatAsDouble => Value::Double(text.parse().ok()?),
        Kind::Decimal { .. } => Value::Decimal(text.to_string()),
        Kind::Date => {
            let v = digits(text)?;
            let (&y, &m, &dd) = (v.first()?, v.get(1)?, v.get(2)?);
            Value::Date { year: y as u16, month: m as u8, day: dd as u8 }
        }
        Kind::Timestamp { .. } | Kind::ZonedTimestamp { .. } => {
            let (date, frac) = text.split_once('.').unwrap_or((text, ""));
            let v = digits(date)?;
            let micros = format!("{frac:0<6}").get(..6)?.parse().ok()?;
            let at = |i: usize| v.get(i).copied().unwrap_or(0);
            Value::DateTime {
                year: at(0) as u16,
                month: at(1) as u8,
                day: at(2) as u8,
                hour: at(3) as u8,
                minute: at(4) as u8,
                second: at(5) as u8,
                micros,
            }
        }
        Kind::MicroTime => {
            let (negative, t) = match text.strip_prefix('-') {
                Some(t) => (true, t),
                None => (false, text),
            };
            let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
            let v = digits(hms)?;
            let micros = format!("{frac:0<6}").get(..6)?.parse().ok()?;
            Value::Time {
                negative,
                hours: *v.first()?,
                minutes: *v.get(1)? as u8,
                seconds: v.get(2).copied().unwrap_or(0) as u8,
                micros,
            }
        }
        Kind::String { .. } | Kind::Enum { .. } | Kind::Set { .. } => match d {
            SqlDefault::Str(s) => {
                let mut out = Vec::new();
                write_json_str(&mut out, s);
                return Some(out);
            }
            SqlDefault::Bare(_) => return None,
        },
        Kind::Bytes => match d {
            SqlDefault::Str(s) => Value::Bytes(s.as_bytes().to_vec()),
            SqlDefault::Bare(b) => {
                let hex = b.strip_prefix("x'").or_else(|| b.strip_prefix("X'"))?.strip_suffix('\'')?;
                let bytes: Option<Vec<u8>> = (0..hex.len())
                    .step_by(2)
                    .map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                    .collect();
                Value::Bytes(bytes?)
            }
        },
        Kind::Json | Kind::Geometry | Kind::Point => return None,
    };
    // Zero dates have no default value in Debezium's schemas.
    if matches!(value, Value::Date { month: 0, .. } | Value::Date { day: 0, .. })
        || matches!(value, Value::DateTime { month: 0, .. } | Value::DateTime { day: 0, .. })
    {
        return None;
    }
    let mut out = Vec::new();
    write_value(&mut out, kind, &value, false, zone).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str, scale: u32) -> String {
        base64::engine::general_purpose::STANDARD.encode(decimal_unscaled_bytes(text, scale).unwrap())
    }

    #[test]
    fn decimals_match_java_big_integer() {
        // Values checked against java.math.BigInteger.toByteArray.
        assert_eq!(decimal_unscaled_bytes("0", 2).unwrap(), vec![0]);
        assert_eq!(decimal_unscaled_bytes("1.27", 2).unwrap(), vec![0x7f]);
        assert_eq!(decimal_unscaled_bytes("1.28", 2).unwrap(), vec![0x00, 0x80]);
        assert_eq!(decimal_unscaled_bytes("-1.28", 2).unwrap(), vec![0x80]);
        assert_eq!(decimal_unscaled_bytes("-1.29", 2).unwrap(), vec![0xff, 0x7f]);
        assert_eq!(decimal_unscaled_bytes("-0.01", 2).unwrap(), vec![0xff]);
        assert_eq!(decimal_unscaled_bytes("-0.00", 2).unwrap(), vec![0]);
        assert_eq!(decimal_unscaled_bytes("2.55", 2).unwrap(), vec![0x00, 0xff]);
        assert_eq!(decimal_unscaled_bytes("655.36", 2).unwrap(), vec![0x01, 0x00, 0x00]);
        assert_eq!(b64("1.5", 2), "AJY="); // 150
        assert_eq!(
            decimal_unscaled_bytes("99999999999999999999999999999999999", 0).unwrap(),
            vec![0x13, 0x42, 0x61, 0x72, 0xc7, 0x4d, 0x82, 0x2b, 0x87, 0x8f, 0xe7, 0xff, 0xff, 0xff, 0xff]
        );
        assert!(decimal_unscaled_bytes("1.234", 2).is_err());
        assert!(decimal_unscaled_bytes("abc", 2).is_err());
    }

    #[test]
    fn enum_and_set_members_of_the_full_copy_are_read_in_the_column_charset() {
        // Regression (issue 14): the full copy reads ENUM/SET members as text in the column's charset; a gbk
        // member was written as UTF-8 replacement characters while the binlog's index gave the right text.
        let column = |data_type: &str, column_type: &str, charset: &str| ColumnMeta {
            name: "e".into(),
            data_type: data_type.into(),
            column_type: column_type.into(),
            unsigned: false,
            nullable: true,
            generated: false,
            charset: Some(charset.into()),
            collation: None,
        };
        let zone = crate::envelope::DateTimeZone::Fixed(0);
        let (gbk_bytes, _, _) = encoding_rs::GBK.encode("中文");
        for (data_type, column_type) in [("enum", "enum('中文','b')"), ("set", "set('中文','b')")] {
            let kind = column_kind(&column(data_type, column_type, "gbk")).unwrap();
            let mut out = Vec::new();
            write_value(&mut out, &kind, &Value::Bytes(gbk_bytes.to_vec()), true, &zone).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), "\"中文\"", "{data_type}");
        }
        let kind = column_kind(&column("enum", "enum('中文','b')", "gbk")).unwrap();
        let mut out = Vec::new();
        write_value(&mut out, &kind, &Value::Enum(1), true, &zone).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "\"中文\"", "the binlog's index gives the same text");
    }

    #[test]
    fn point_columns_are_debezium_points() {
        // Issue 14: Debezium writes POINT columns as io.debezium.data.geometry.Point {x, y, wkb, srid}, srid null
        // when 0; other geometries stay Geometry {wkb, srid}.
        let column = |data_type: &str| ColumnMeta {
            name: "g".into(),
            data_type: data_type.into(),
            column_type: data_type.into(),
            unsigned: false,
            nullable: true,
            generated: false,
            charset: None,
            collation: None,
        };
        let kind = column_kind(&column("point")).unwrap();
        let schema = field_schema(&kind, true, None);
        assert_eq!(schema.name.as_deref(), Some("io.debezium.data.geometry.Point"));
        let crate::connect::Body::Struct(fields) = &schema.body else { panic!("a struct") };
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x", "y", "wkb", "srid"]);
        assert_eq!(column_kind(&column("linestring")).unwrap(), Kind::Geometry);
        // POINT(1.5 -2) with SRID 0 and with SRID 4326, as MySQL stores it: SRID, then little-endian WKB.
        let mut wkb = vec![1u8, 1, 0, 0, 0];
        wkb.extend(1.5f64.to_le_bytes());
        wkb.extend((-2.0f64).to_le_bytes());
        let zone = crate::envelope::DateTimeZone::Fixed(0);
        for (srid, shown) in [(0u32, "null"), (4326, "4326")] {
            let mut stored = srid.to_le_bytes().to_vec();
            stored.extend(&wkb);
            let mut out = Vec::new();
            write_value(&mut out, &kind, &Value::Bytes(stored), true, &zone).unwrap();
            let expected = format!(
                "{{\"x\":1.5,\"y\":-2.0,\"wkb\":\"{}\",\"srid\":{shown}}}",
                base64::engine::general_purpose::STANDARD.encode(&wkb)
            );
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
        let mut out = Vec::new();
        assert!(write_value(&mut out, &kind, &Value::Bytes(vec![0; 10]), true, &zone).is_err(), "not a point");
    }

    #[test]
    fn column_defaults_as_debezium_writes_them() {
        // Each as Debezium 3.6.1 wrote it in tests/compat/recorded/debezium.tsv.
        let zone = crate::envelope::DateTimeZone::Fixed(0);
        let column = |data_type: &str, column_type: &str| ColumnMeta {
            name: "c".into(),
            data_type: data_type.into(),
            column_type: column_type.into(),
            unsigned: column_type.contains("unsigned"),
            nullable: true,
            generated: false,
            charset: Some("utf8mb4".into()),
            collation: None,
        };
        let json = |data_type: &str, column_type: &str, optional: bool, d: SqlDefault| {
            let kind = column_kind(&column(data_type, column_type)).unwrap();
            default_json(&kind, optional, &d, &zone).map(|b| String::from_utf8(b).unwrap())
        };
        let bare = |s: &str| SqlDefault::Bare(s.into());
        let text = |s: &str| SqlDefault::Str(s.into());
        assert_eq!(json("int", "int(11)", true, bare("-3")).as_deref(), Some("-3"));
        assert_eq!(
            json("bigint", "bigint(20) unsigned", true, bare("18446744073709551615")).as_deref(),
            Some("9223372036854775807")
        );
        assert_eq!(json("decimal", "decimal(8,3)", true, bare("12.500")).as_deref(), Some("\"MNQ=\""));
        assert_eq!(json("double", "double", true, bare("1e20")).as_deref(), Some("1.0E20"));
        assert_eq!(json("bit", "bit(1)", true, bare("b'1'")).as_deref(), Some("true"));
        assert_eq!(json("date", "date", false, text("2000-01-01")).as_deref(), Some("10957"));
        assert_eq!(
            json("timestamp", "timestamp", false, text("2001-02-03 04:05:06")).as_deref(),
            Some("\"2001-02-03T04:05:06Z\"")
        );
        assert_eq!(
            json("timestamp", "timestamp", false, bare("current_timestamp()")).as_deref(),
            Some("\"1970-01-01T00:00:00Z\"")
        );
        assert_eq!(json("timestamp", "timestamp(3)", true, bare("current_timestamp(3)")), None);
        assert_eq!(json("datetime", "datetime", true, bare("current_timestamp()")).as_deref(), Some("0"));
        assert_eq!(json("varbinary", "varbinary(4)", true, text("ab")).as_deref(), Some("\"YWI=\""));
        assert_eq!(json("varchar", "varchar(10)", true, text("默认")).as_deref(), Some("\"默认\""));
        assert_eq!(json("date", "date", true, text("0000-00-00")), None);
    }

    #[test]
    fn enum_lists() {
        assert_eq!(enum_values("enum('a','b''c','d,e')"), vec!["a", "b'c", "d,e"]);
        assert_eq!(enum_values("set('x')"), vec!["x"]);
    }

    #[test]
    fn days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(9999, 12, 31), 2_932_896);
    }
}
