//! A canonical encoding of rows, and its digest, so that `dtle verify` can compare a source row with a target
//! row read from another server (MySQL or MariaDB) without comparing the servers' own text.
//!
//! # Encoding
//!
//! A row is the concatenation of its compared columns, in order. Each column is one *type tag* byte, and unless
//! the value is NULL, a 4-byte little-endian length and the value's canonical bytes:
//!
//! | tag | kind | canonical bytes |
//! |---|---|---|
//! | 0x00 | NULL | (no length, no bytes) |
//! | 0x01 | integer (TINYINT..BIGINT, signed or not) | the value as a 16-byte little-endian two's-complement `i128` |
//! | 0x02 | FLOAT | the `f32` bits, little-endian (`-0` as `0`) |
//! | 0x03 | DOUBLE | the `f64` bits, little-endian (`-0` as `0`) |
//! | 0x04 | DECIMAL | text: `-` when below zero, the integer digits without leading zeros (`0` when none), then `.` and the fraction digits without trailing zeros when any are left (`001.500` → `1.5`, `-0.00` → `0`) |
//! | 0x05 | character and binary strings, BLOB/TEXT, ENUM and SET read as text, GEOMETRY | the stored bytes (strings in the column's character set) |
//! | 0x06 | DATE | `YYYY-MM-DD` |
//! | 0x07 | DATETIME, TIMESTAMP (read in UTC) | `YYYY-MM-DD hh:mm:ss.ffffff` |
//! | 0x08 | TIME | `[-]h:mm:ss.ffffff` (hours unpadded; a negative zero is zero) |
//! | 0x09 | YEAR | the year as a 2-byte little-endian number |
//! | 0x0A | ENUM by index (binlog values) | 2-byte little-endian index |
//! | 0x0B | SET by bitmap (binlog values) | 8-byte little-endian bitmap |
//! | 0x0C | BIT | 8-byte little-endian number |
//! | 0x0D | JSON (a column that is JSON on either side) | the document re-serialized compactly with object keys sorted by their UTF-8 bytes (MySQL reorders and reformats documents, MariaDB keeps the text as written) |
//! | 0x0E | a column missing from a binlog row image | (no length, no bytes) |
//!
//! So the same value read from MySQL and from MariaDB encodes the same (an `INT` and an `INT UNSIGNED` holding 5,
//! `DECIMAL(10,2)` 1.50 and `DECIMAL(12,4)` 1.5000, `DATETIME` and `TIMESTAMP` holding the same instant in UTC),
//! and values of different kinds never do (the tag differs). The length prefix keeps column boundaries apart
//! (`'ab','c'` vs `'a','bc'`).
//!
//! # Digest
//!
//! A row's digest is XXH3-128 of its encoding ([`row_digest`]); rows are matched by the encoding of their key
//! columns ([`RowEncoder::key`]).

use crate::schema::ColumnMeta;
use crate::value::{civil_from_unix, Value};

/// How a column's values are brought into canonical form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Canon {
    /// As read.
    Plain,
    /// JSON documents, compared as documents (see the module doc).
    Json,
}

impl Canon {
    /// The canonical form for a column compared between a source and a target definition: JSON when either
    /// side is a JSON column (MySQL's JSON type; MariaDB's JSON is LONGTEXT and keeps its text).
    pub fn for_columns(source: &ColumnMeta, target: &ColumnMeta) -> Canon {
        if source.data_type == "json" || target.data_type == "json" {
            Canon::Json
        } else {
            Canon::Plain
        }
    }
}

const TAG_NULL: u8 = 0x00;
const TAG_INTEGER: u8 = 0x01;
const TAG_FLOAT: u8 = 0x02;
const TAG_DOUBLE: u8 = 0x03;
const TAG_DECIMAL: u8 = 0x04;
const TAG_BYTES: u8 = 0x05;
const TAG_DATE: u8 = 0x06;
const TAG_DATETIME: u8 = 0x07;
const TAG_TIME: u8 = 0x08;
const TAG_YEAR: u8 = 0x09;
const TAG_ENUM: u8 = 0x0A;
const TAG_SET: u8 = 0x0B;
const TAG_BIT: u8 = 0x0C;
const TAG_JSON: u8 = 0x0D;
const TAG_ABSENT: u8 = 0x0E;

/// Appends one column's canonical encoding (tag, length, bytes) to `out`.
pub fn encode_value(out: &mut Vec<u8>, value: &Value, canon: Canon) {
    let mut put = |tag: u8, bytes: &[u8]| {
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    match value {
        Value::Null => out.push(TAG_NULL),
        Value::Absent => out.push(TAG_ABSENT),
        Value::Int(v) => put(TAG_INTEGER, &i128::from(*v).to_le_bytes()),
        Value::UInt(v) => put(TAG_INTEGER, &i128::from(*v).to_le_bytes()),
        Value::Float(v) => put(TAG_FLOAT, &(if *v == 0.0 { 0.0f32 } else { *v }).to_bits().to_le_bytes()),
        Value::Double(v) => put(TAG_DOUBLE, &(if *v == 0.0 { 0.0f64 } else { *v }).to_bits().to_le_bytes()),
        Value::Decimal(text) => put(TAG_DECIMAL, canonical_decimal(text).as_bytes()),
        Value::Bytes(bytes) => match canon {
            Canon::Json => match canonical_json(bytes) {
                Some(doc) => put(TAG_JSON, doc.as_bytes()),
                None => put(TAG_BYTES, bytes),
            },
            Canon::Plain => put(TAG_BYTES, bytes),
        },
        Value::Json(text) => match canonical_json(text.as_bytes()) {
            Some(doc) => put(TAG_JSON, doc.as_bytes()),
            None => put(TAG_BYTES, text.as_bytes()),
        },
        Value::Date { year, month, day } => put(TAG_DATE, format!("{year:04}-{month:02}-{day:02}").as_bytes()),
        Value::DateTime { year, month, day, hour, minute, second, micros } => put(
            TAG_DATETIME,
            format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{micros:06}").as_bytes(),
        ),
        Value::Timestamp { unix_secs, micros } => {
            let text = if *unix_secs == 0 && *micros == 0 {
                "0000-00-00 00:00:00.000000".to_string()
            } else {
                let (y, mo, d, h, mi, s) = civil_from_unix(*unix_secs);
                format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{micros:06}")
            };
            put(TAG_DATETIME, text.as_bytes())
        }
        Value::Time { negative, hours, minutes, seconds, micros } => {
            let zero = *hours == 0 && *minutes == 0 && *seconds == 0 && *micros == 0;
            let sign = if *negative && !zero { "-" } else { "" };
            put(TAG_TIME, format!("{sign}{hours}:{minutes:02}:{seconds:02}.{micros:06}").as_bytes())
        }
        Value::Year(v) => put(TAG_YEAR, &v.to_le_bytes()),
        Value::Enum(v) => put(TAG_ENUM, &v.to_le_bytes()),
        Value::Set(v) => put(TAG_SET, &v.to_le_bytes()),
        Value::Bit(v) => put(TAG_BIT, &v.to_le_bytes()),
    }
}

/// `001.500` → `1.5`, `-0.00` → `0`, `+7` → `7`, `.5` → `0.5`. Text that is not a decimal number is kept as is.
pub fn canonical_decimal(text: &str) -> String {
    let t = text.trim();
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) || digits.is_empty() {
        return t.to_string();
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let mut out = String::with_capacity(int.len() + frac.len() + 3);
    if negative && !(int.is_empty() && frac.is_empty()) {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// A JSON document with object keys sorted, compact; `None` when the bytes are not a JSON document.
pub fn canonical_json(bytes: &[u8]) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let mut out = String::with_capacity(bytes.len());
    write_json(&mut out, &doc);
    Some(out)
}

fn write_json(out: &mut String, v: &serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                write_json(out, v);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, v);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// XXH3-128 of a canonical encoding.
pub fn digest(encoding: &[u8]) -> u128 {
    twox_hash::XxHash3_128::oneshot(encoding)
}

/// The digest of a row: `values[i]` encoded with `canons[i]` (values beyond `canons` as [`Canon::Plain`]).
pub fn row_digest(values: &[Value], canons: &[Canon]) -> u128 {
    RowEncoder::default().row(values, canons)
}

/// Encodes rows reusing one buffer.
#[derive(Default)]
pub struct RowEncoder {
    buf: Vec<u8>,
}

impl RowEncoder {
    /// The digest of a row (see [`row_digest`]).
    pub fn row(&mut self, values: &[Value], canons: &[Canon]) -> u128 {
        self.buf.clear();
        for (i, v) in values.iter().enumerate() {
            encode_value(&mut self.buf, v, canons.get(i).copied().unwrap_or(Canon::Plain));
        }
        digest(&self.buf)
    }

    /// The canonical encoding of the key columns `key` of a row: rows of the source and the target are matched on it.
    pub fn key(&mut self, values: &[Value], key: &[usize], canons: &[Canon]) -> Vec<u8> {
        let mut out = Vec::with_capacity(key.len() * 12);
        for &i in key {
            encode_value(
                &mut out,
                values.get(i).unwrap_or(&Value::Null),
                canons.get(i).copied().unwrap_or(Canon::Plain),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Value, canon: Canon) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(&mut out, v, canon);
        out
    }

    fn plain(v: Value) -> Vec<u8> {
        enc(&v, Canon::Plain)
    }

    #[test]
    fn equal_values_of_different_server_encodings_encode_equal() {
        // INT vs INT UNSIGNED / BIGINT: the same number.
        assert_eq!(plain(Value::Int(5)), plain(Value::UInt(5)));
        // DECIMAL of different scales (MySQL and MariaDB print the column's scale).
        assert_eq!(plain(Value::Decimal("1.50".into())), plain(Value::Decimal("1.5000".into())));
        assert_eq!(plain(Value::Decimal("-0.00".into())), plain(Value::Decimal("0".into())));
        assert_eq!(plain(Value::Decimal("007".into())), plain(Value::Decimal("7.0".into())));
        // TIMESTAMP from the binlog (seconds since the epoch) vs read in a UTC session.
        assert_eq!(
            plain(Value::Timestamp { unix_secs: 1_700_000_000, micros: 5 }),
            plain(Value::DateTime { year: 2023, month: 11, day: 14, hour: 22, minute: 13, second: 20, micros: 5 })
        );
        // MySQL's JSON (reordered, reformatted) vs MariaDB's LONGTEXT as written.
        let mariadb = Value::Bytes(br#"{"b": [1, 2.5, "x"], "a": {"d": null, "c": true}}"#.to_vec());
        let mysql = Value::Bytes(br#"{"a": {"c": true, "d": null}, "b": [1, 2.5, "x"]}"#.to_vec());
        assert_eq!(enc(&mariadb, Canon::Json), enc(&mysql, Canon::Json));
        assert_eq!(
            enc(&mariadb, Canon::Json),
            enc(&Value::Json(r#"{"a":{"c":true,"d":null},"b":[1,2.5,"x"]}"#.into()), Canon::Json)
        );
        // Negative zero.
        assert_eq!(plain(Value::Double(-0.0)), plain(Value::Double(0.0)));
        assert_eq!(plain(Value::Float(-0.0)), plain(Value::Float(0.0)));
        assert_eq!(
            plain(Value::Time { negative: true, hours: 0, minutes: 0, seconds: 0, micros: 0 }),
            plain(Value::Time { negative: false, hours: 0, minutes: 0, seconds: 0, micros: 0 })
        );
        assert_eq!(
            row_digest(&[Value::Int(1), Value::Decimal("2.0".into())], &[]),
            row_digest(&[Value::UInt(1), Value::Decimal("2".into())], &[])
        );
    }

    #[test]
    fn each_kind_encodes_distinctly() {
        let values = [
            Value::Null,
            Value::Absent,
            Value::Int(1),
            Value::Float(1.0),
            Value::Double(1.0),
            Value::Decimal("1".into()),
            Value::Bytes(b"1".to_vec()),
            Value::Json("1".into()),
            Value::Date { year: 2001, month: 1, day: 1 },
            Value::DateTime { year: 2001, month: 1, day: 1, hour: 0, minute: 0, second: 0, micros: 0 },
            Value::Time { negative: false, hours: 1, minutes: 0, seconds: 0, micros: 0 },
            Value::Year(2001),
            Value::Enum(1),
            Value::Set(1),
            Value::Bit(1),
        ];
        let encoded: Vec<Vec<u8>> = values.iter().map(|v| enc(v, Canon::Plain)).collect();
        for (i, a) in encoded.iter().enumerate() {
            for (j, b) in encoded.iter().enumerate() {
                if i != j {
                    assert_ne!(a, b, "{:?} and {:?}", values[i], values[j]);
                    assert_ne!(digest(a), digest(b), "{:?} and {:?}", values[i], values[j]);
                }
            }
        }
        // NULL differs from the empty string and from 0; different values of one kind differ.
        assert_ne!(plain(Value::Null), plain(Value::Bytes(Vec::new())));
        assert_ne!(plain(Value::Int(0)), plain(Value::Null));
        assert_ne!(plain(Value::Int(-1)), plain(Value::UInt(u64::MAX)));
        assert_ne!(plain(Value::Decimal("1.5".into())), plain(Value::Decimal("1.05".into())));
        assert_ne!(plain(Value::Bytes(b"a ".to_vec())), plain(Value::Bytes(b"a".to_vec())));
        assert_ne!(plain(Value::Bytes(b"A".to_vec())), plain(Value::Bytes(b"a".to_vec())));
    }

    #[test]
    fn column_boundaries_are_kept() {
        let a = row_digest(&[Value::Bytes(b"ab".to_vec()), Value::Bytes(b"c".to_vec())], &[]);
        let b = row_digest(&[Value::Bytes(b"a".to_vec()), Value::Bytes(b"bc".to_vec())], &[]);
        assert_ne!(a, b);
        let c = row_digest(&[Value::Null, Value::Bytes(Vec::new())], &[]);
        let d = row_digest(&[Value::Bytes(Vec::new()), Value::Null], &[]);
        assert_ne!(c, d);
    }

    #[test]
    fn json_columns_that_do_not_parse_compare_as_bytes() {
        assert_eq!(enc(&Value::Bytes(b"{oops".to_vec()), Canon::Json), plain(Value::Bytes(b"{oops".to_vec())));
        assert_ne!(
            enc(&Value::Bytes(br#"{"a":1}"#.to_vec()), Canon::Json),
            enc(&Value::Bytes(br#"{"a":2}"#.to_vec()), Canon::Json)
        );
    }

    #[test]
    fn decimals() {
        for (input, want) in [
            ("1.50", "1.5"),
            ("-0.00", "0"),
            ("+7", "7"),
            (".5", "0.5"),
            ("-12.340", "-12.34"),
            ("100", "100"),
            ("abc", "abc"),
        ] {
            assert_eq!(canonical_decimal(input), want, "{input}");
        }
    }

    #[test]
    fn keys_encode_their_columns_only() {
        let mut e = RowEncoder::default();
        let row = [Value::Int(3), Value::Bytes(b"x".to_vec()), Value::Int(4)];
        assert_eq!(e.key(&row, &[0, 2], &[]), [plain(Value::Int(3)), plain(Value::Int(4))].concat());
        assert_eq!(e.row(&row, &[]), row_digest(&row, &[]));
    }
}
