//! Column values as the engine carries them from the source (snapshot or binlog) to the target.
//!
//! One representation for both paths, so a value read by the snapshot and the same value read from the
//! binlog render to the same SQL literal on the target. Strings are raw bytes in the column's charset:
//! they are never transcoded, and go to the target as hex literals, which MySQL stores as-is in the
//! column's charset (utf8mb4, latin1, gbk alike).

use std::fmt::Write as _;

/// A decoded column value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    /// TINYINT..BIGINT signed; also YEAR is its own variant.
    Int(i64),
    /// TINYINT..BIGINT UNSIGNED.
    UInt(u64),
    Float(f32),
    Double(f64),
    /// DECIMAL as its exact decimal text, e.g. "-12.3400".
    Decimal(String),
    /// CHAR/VARCHAR/TEXT (raw bytes in the column charset), BINARY/VARBINARY/BLOB, GEOMETRY, MariaDB JSON.
    Bytes(Vec<u8>),
    /// DATE; all-zero is the zero date.
    Date {
        year: u16,
        month: u8,
        day: u8,
    },
    /// DATETIME (and TIMESTAMP read by the snapshot in a UTC session).
    DateTime {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
    },
    /// TIMESTAMP from the binlog: seconds since the epoch (UTC); 0 with 0 micros is the zero timestamp.
    Timestamp {
        unix_secs: i64,
        micros: u32,
    },
    /// TIME, which may be negative and exceed 24 hours (-838:59:59 ..= 838:59:59).
    Time {
        negative: bool,
        hours: u32,
        minutes: u8,
        seconds: u8,
        micros: u32,
    },
    /// YEAR: 0 (the zero year) or 1901..=2155.
    Year(u16),
    /// ENUM by 1-based index (0 is the empty error value).
    Enum(u16),
    /// SET as its bitmap.
    Set(u64),
    /// BIT(n) as an unsigned number.
    Bit(u64),
    /// MySQL's binary JSON, rendered as JSON text.
    Json(String),
    /// Column not present in this row image (binlog_row_image other than FULL). Never applied.
    Absent,
}

impl Value {
    /// Appends this value as a SQL literal for a session with `time_zone='+00:00'`.
    /// Returns false for [`Value::Absent`], which has no literal.
    pub fn write_sql_literal(&self, out: &mut String) -> bool {
        match self {
            Value::Null => out.push_str("NULL"),
            Value::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Value::UInt(v) | Value::Set(v) | Value::Bit(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Enum(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Year(v) => {
                let _ = write!(out, "{v}");
            }
            // f32 widened to f64 prints the exact float value, so the target stores the same bits.
            Value::Float(v) => write_float(out, f64::from(*v)),
            Value::Double(v) => write_float(out, *v),
            Value::Decimal(text) => out.push_str(text),
            Value::Bytes(bytes) => write_hex_literal(out, bytes),
            Value::Json(text) => write_hex_literal(out, text.as_bytes()),
            Value::Date { year, month, day } => {
                let _ = write!(out, "'{year:04}-{month:02}-{day:02}'");
            }
            Value::DateTime { year, month, day, hour, minute, second, micros } => {
                let _ = write!(out, "'{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{micros:06}'");
            }
            Value::Timestamp { unix_secs, micros } => {
                if *unix_secs == 0 && *micros == 0 {
                    out.push_str("'0000-00-00 00:00:00'");
                } else {
                    let (y, mo, d, h, mi, s) = civil_from_unix(*unix_secs);
                    let _ = write!(out, "'{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{micros:06}'");
                }
            }
            Value::Time { negative, hours, minutes, seconds, micros } => {
                let sign = if *negative { "-" } else { "" };
                let _ = write!(out, "'{sign}{hours:02}:{minutes:02}:{seconds:02}.{micros:06}'");
            }
            Value::Absent => return false,
        }
        true
    }

    /// The value as a SQL literal (convenience for tests and error messages).
    pub fn to_sql_literal(&self) -> String {
        let mut s = String::new();
        if !self.write_sql_literal(&mut s) {
            s.push_str("<absent>");
        }
        s
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// In-memory size (the value and its heap bytes), for batching and memory bounds.
    pub fn approx_size(&self) -> usize {
        std::mem::size_of::<Value>()
            + match self {
                Value::Bytes(b) => b.capacity(),
                Value::Decimal(s) | Value::Json(s) => s.capacity(),
                _ => 0,
            }
    }
}

pub(crate) fn write_float(out: &mut String, v: f64) {
    if v.is_finite() {
        // Rust prints the shortest text that parses back to the same f64; use exponent form for
        // very large/small magnitudes to keep statements short.
        if v != 0.0 && (v.abs() >= 1e16 || v.abs() < 1e-6) {
            let _ = write!(out, "{v:e}");
        } else {
            let _ = write!(out, "{v}");
        }
    } else {
        // MySQL cannot store NaN or infinity; NULL keeps the statement valid and the column will differ
        // visibly rather than failing the whole transaction. Sources never produce these.
        out.push_str("NULL");
    }
}

/// Appends `X'hex'` (or `''` when empty).
pub fn write_hex_literal(out: &mut String, bytes: &[u8]) {
    if bytes.is_empty() {
        out.push_str("''");
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2 + 3);
    out.push_str("X'");
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0x0f) as usize] as char);
    }
    out.push('\'');
}

/// Converts seconds since the Unix epoch to a UTC civil date and time (proleptic Gregorian).
pub fn civil_from_unix(unix_secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = unix_secs.div_euclid(86_400);
    let secs_of_day = unix_secs.rem_euclid(86_400) as u32;
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (y, m, d, secs_of_day / 3600, (secs_of_day / 60) % 60, secs_of_day % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(Value::Null.to_sql_literal(), "NULL");
        assert_eq!(Value::Int(-5).to_sql_literal(), "-5");
        assert_eq!(Value::UInt(u64::MAX).to_sql_literal(), "18446744073709551615");
        assert_eq!(Value::Bytes(b"a'b".to_vec()).to_sql_literal(), "X'612762'");
        assert_eq!(Value::Bytes(vec![]).to_sql_literal(), "''");
        assert_eq!(Value::Decimal("-1.50".into()).to_sql_literal(), "-1.50");
        assert_eq!(
            Value::Time { negative: true, hours: 838, minutes: 59, seconds: 59, micros: 0 }.to_sql_literal(),
            "'-838:59:59.000000'"
        );
        assert_eq!(Value::Date { year: 0, month: 0, day: 0 }.to_sql_literal(), "'0000-00-00'");
        assert_eq!(Value::Timestamp { unix_secs: 0, micros: 0 }.to_sql_literal(), "'0000-00-00 00:00:00'");
        assert_eq!(
            Value::Timestamp { unix_secs: 1_700_000_000, micros: 123_456 }.to_sql_literal(),
            "'2023-11-14 22:13:20.123456'"
        );
        assert_eq!(Value::Absent.to_sql_literal(), "<absent>");
    }

    #[test]
    fn floats_round_trip_exactly() {
        for v in [1.1f32, 3.4028235e38, 1.0e-40, -0.0, 0.1, 16777217.0] {
            let text = Value::Float(v).to_sql_literal();
            let parsed: f64 = text.parse().unwrap();
            assert_eq!(parsed as f32, v, "{text}");
        }
        for v in [0.1f64, 1e300, -2.2250738585072014e-308, 123456789.12345679] {
            let text = Value::Double(v).to_sql_literal();
            assert_eq!(text.parse::<f64>().unwrap(), v, "{text}");
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_unix(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil_from_unix(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil_from_unix(2_147_483_647), (2038, 1, 19, 3, 14, 7));
    }
}
