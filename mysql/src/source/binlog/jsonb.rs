//! MySQL binary JSON (the storage format of JSON columns, as written to the binlog) → JSON text.
//!
//! Format (MySQL sql-common/json_binary.h): a type byte, then the value. Containers (small = 2-byte,
//! large = 4-byte counts and offsets) hold `count`, `size`, key entries (objects: offset + u16 length),
//! value entries (type byte + offset or inlined value), then keys and values; offsets are relative to the
//! container start. Scalars: literals, int16/uint16/int32/uint32/int64/uint64, double, string (variable
//! length prefix, 7 bits per byte) and opaque (MySQL column type byte + variable-length data).
//!
//! The output is a valid JSON text with the same value (not byte-identical to MySQL's printing). Nesting
//! depth and output size are bounded, and every read is bounds-checked.

use std::fmt::Write as _;

use super::rows::{decode_decimal, CellErr, Cursor, DecodeError};

const SMALL_OBJECT: u8 = 0x00;
const LARGE_OBJECT: u8 = 0x01;
const SMALL_ARRAY: u8 = 0x02;
const LARGE_ARRAY: u8 = 0x03;
const LITERAL: u8 = 0x04;
const INT16: u8 = 0x05;
const UINT16: u8 = 0x06;
const INT32: u8 = 0x07;
const UINT32: u8 = 0x08;
const INT64: u8 = 0x09;
const UINT64: u8 = 0x0a;
const DOUBLE: u8 = 0x0b;
const STRING: u8 = 0x0c;
const OPAQUE: u8 = 0x0f;

/// MySQL limits JSON documents to a depth of 100; allow some slack but stay far from stack limits.
const MAX_DEPTH: usize = 150;

/// Converts MySQL binary JSON to JSON text. Empty input (MySQL writes a 0-length JSON value in some cases)
/// gives `null`.
pub fn jsonb_to_json_text(bytes: &[u8]) -> Result<String, DecodeError> {
    let Some((&t, body)) = bytes.split_first() else {
        return Ok("null".to_string());
    };
    let mut w = Writer {
        out: String::with_capacity(bytes.len().saturating_mul(2).min(1 << 20)),
        // Legitimate documents print to at most ~6 characters per input byte (escaped control
        // characters); references to shared sub-values in a crafted document could blow up exponentially.
        limit: bytes.len().saturating_mul(16).saturating_add(1024),
    };
    write_value(t, body, 1, 0, &mut w)?;
    Ok(w.out)
}

struct Writer {
    out: String,
    limit: usize,
}

impl Writer {
    #[inline]
    fn check(&self, at: usize) -> Result<(), DecodeError> {
        if self.out.len() > self.limit {
            return Err(err(at, format!("JSON text exceeds {} bytes", self.limit)));
        }
        Ok(())
    }
}

fn err(offset: usize, reason: impl Into<String>) -> DecodeError {
    DecodeError::Json { offset, reason: reason.into() }
}

fn short(offset: usize, what: &str) -> DecodeError {
    err(offset, format!("value ends inside {what}"))
}

/// Writes the value of type `t` whose data starts at `data` (absolute offset `abs` in the document,
/// for messages).
fn write_value(t: u8, data: &[u8], abs: usize, depth: usize, w: &mut Writer) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(err(abs, format!("nesting deeper than {MAX_DEPTH}")));
    }
    match t {
        SMALL_OBJECT | LARGE_OBJECT | SMALL_ARRAY | LARGE_ARRAY => {
            write_container(t, data, abs, depth, w)?;
        }
        LITERAL => match data.first() {
            Some(0) => w.out.push_str("null"),
            Some(1) => w.out.push_str("true"),
            Some(2) => w.out.push_str("false"),
            Some(x) => return Err(err(abs, format!("unknown literal {x}"))),
            None => return Err(short(abs, "a literal")),
        },
        INT16 => {
            let v = i16::from_le_bytes(fixed(data, abs, "an int16")?);
            let _ = write!(w.out, "{v}");
        }
        UINT16 => {
            let v = u16::from_le_bytes(fixed(data, abs, "a uint16")?);
            let _ = write!(w.out, "{v}");
        }
        INT32 => {
            let v = i32::from_le_bytes(fixed(data, abs, "an int32")?);
            let _ = write!(w.out, "{v}");
        }
        UINT32 => {
            let v = u32::from_le_bytes(fixed(data, abs, "a uint32")?);
            let _ = write!(w.out, "{v}");
        }
        INT64 => {
            let v = i64::from_le_bytes(fixed(data, abs, "an int64")?);
            let _ = write!(w.out, "{v}");
        }
        UINT64 => {
            let v = u64::from_le_bytes(fixed(data, abs, "a uint64")?);
            let _ = write!(w.out, "{v}");
        }
        DOUBLE => {
            let v = f64::from_le_bytes(fixed(data, abs, "a double")?);
            write_double(&mut w.out, v).map_err(|r| err(abs, r))?;
        }
        STRING => {
            let (len, n) = var_len(data, abs)?;
            let s = data.get(n..n.saturating_add(len)).ok_or_else(|| short(abs, "a string"))?;
            write_string(&mut w.out, s);
        }
        OPAQUE => {
            let field_type = *data.first().ok_or_else(|| short(abs, "an opaque value"))?;
            let rest = data.get(1..).unwrap_or(&[]);
            let (len, n) = var_len(rest, abs + 1)?;
            let payload = rest.get(n..n.saturating_add(len)).ok_or_else(|| short(abs, "an opaque value"))?;
            write_opaque(field_type, payload, abs, &mut w.out)?;
        }
        other => return Err(err(abs, format!("unknown value type {other:#04x}"))),
    }
    w.check(abs)
}

fn fixed<const N: usize>(data: &[u8], abs: usize, what: &str) -> Result<[u8; N], DecodeError> {
    data.get(..N).and_then(|s| <[u8; N]>::try_from(s).ok()).ok_or_else(|| short(abs, what))
}

/// Variable-length unsigned integer: 7 bits per byte, least significant first, high bit = more.
/// Returns (value, bytes used).
fn var_len(data: &[u8], abs: usize) -> Result<(usize, usize), DecodeError> {
    let mut v: u64 = 0;
    for i in 0..5 {
        let b = *data.get(i).ok_or_else(|| short(abs, "a length"))?;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if v > u64::from(u32::MAX) {
                return Err(err(abs, "length exceeds 4 GiB"));
            }
            return Ok((v as usize, i + 1));
        }
    }
    Err(err(abs, "length uses more than 5 bytes"))
}

fn read_uint(s: &[u8], at: usize, size: usize) -> Option<usize> {
    let b = s.get(at..at.checked_add(size)?)?;
    let mut v = 0usize;
    for (i, x) in b.iter().enumerate() {
        v |= usize::from(*x) << (8 * i);
    }
    Some(v)
}

fn inlined(t: u8, large: bool) -> bool {
    match t {
        LITERAL | INT16 | UINT16 => true,
        INT32 | UINT32 => large,
        _ => false,
    }
}

fn write_container(t: u8, data: &[u8], abs: usize, depth: usize, w: &mut Writer) -> Result<(), DecodeError> {
    let large = t == LARGE_OBJECT || t == LARGE_ARRAY;
    let is_object = t == SMALL_OBJECT || t == LARGE_OBJECT;
    let os = if large { 4 } else { 2 };
    let count = read_uint(data, 0, os).ok_or_else(|| short(abs, "a container header"))?;
    let size = read_uint(data, os, os).ok_or_else(|| short(abs, "a container header"))?;
    let c = data
        .get(..size)
        .ok_or_else(|| err(abs, format!("container size {size} exceeds the {} bytes left", data.len())))?;
    let header = 2 * os;
    let key_entry = os + 2;
    let value_entry = 1 + os;
    let keys_len = if is_object { count.checked_mul(key_entry) } else { Some(0) };
    let entries_end = keys_len
        .and_then(|k| count.checked_mul(value_entry).and_then(|v| v.checked_add(k)))
        .and_then(|e| e.checked_add(header))
        .filter(|e| *e <= size)
        .ok_or_else(|| err(abs, format!("{count} entries do not fit in a container of {size} bytes")))?;
    let value_entries = header + keys_len.unwrap_or(0);
    let _ = entries_end;

    w.out.push(if is_object { '{' } else { '[' });
    for i in 0..count {
        if i > 0 {
            w.out.push(',');
        }
        if is_object {
            let ke = header + i * key_entry;
            let key_off = read_uint(c, ke, os).ok_or_else(|| short(abs, "a key entry"))?;
            let key_len = read_uint(c, ke + os, 2).ok_or_else(|| short(abs, "a key entry"))?;
            let key = key_off
                .checked_add(key_len)
                .and_then(|end| c.get(key_off..end))
                .ok_or_else(|| err(abs + ke, format!("key at {key_off} (+{key_len}) is outside the container")))?;
            write_string(&mut w.out, key);
            w.out.push(':');
        }
        let ve = value_entries + i * value_entry;
        let vt = *c.get(ve).ok_or_else(|| short(abs, "a value entry"))?;
        if inlined(vt, large) {
            let inline = c.get(ve + 1..ve + 1 + os).ok_or_else(|| short(abs, "a value entry"))?;
            write_value(vt, inline, abs + ve + 1, depth + 1, w)?;
        } else {
            let off = read_uint(c, ve + 1, os).ok_or_else(|| short(abs, "a value entry"))?;
            let v =
                c.get(off..).ok_or_else(|| err(abs + ve, format!("value offset {off} is outside the container")))?;
            if off < header {
                return Err(err(abs + ve, format!("value offset {off} points into the container header")));
            }
            write_value(vt, v, abs + off, depth + 1, w)?;
        }
        w.check(abs)?;
    }
    w.out.push(if is_object { '}' } else { ']' });
    Ok(())
}

fn write_string(out: &mut String, bytes: &[u8]) {
    let s = String::from_utf8_lossy(bytes);
    out.reserve(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_double(out: &mut String, v: f64) -> Result<(), String> {
    if !v.is_finite() {
        return Err(format!("double {v} is not a JSON number"));
    }
    let a = v.abs();
    if a != 0.0 && !(1e-5..1e16).contains(&a) {
        let _ = write!(out, "{v:e}");
    } else {
        let start = out.len();
        let _ = write!(out, "{v}");
        if !out.get(start..).is_some_and(|s| s.contains('.')) {
            out.push_str(".0");
        }
    }
    Ok(())
}

/// MySQL column type bytes used inside opaque JSON values.
const T_NEWDECIMAL: u8 = 246;
const T_DATE: u8 = 10;
const T_TIME: u8 = 11;
const T_DATETIME: u8 = 12;
const T_TIMESTAMP: u8 = 7;

fn write_opaque(field_type: u8, payload: &[u8], abs: usize, out: &mut String) -> Result<(), DecodeError> {
    match field_type {
        T_NEWDECIMAL => {
            // precision, scale, then the binary DECIMAL.
            let (&p, rest) = payload.split_first().ok_or_else(|| short(abs, "an opaque DECIMAL"))?;
            let (&s, bin) = rest.split_first().ok_or_else(|| short(abs, "an opaque DECIMAL"))?;
            let mut cur = Cursor::new(bin);
            let text = decode_decimal(&mut cur, usize::from(p), usize::from(s)).map_err(|e| match e {
                CellErr::Short { .. } => short(abs, "an opaque DECIMAL"),
                CellErr::Invalid(r) | CellErr::Unsupported(r) => err(abs, r),
            })?;
            out.push_str(&text);
        }
        T_DATE | T_DATETIME | T_TIMESTAMP => {
            let packed = i64::from_le_bytes(fixed(payload, abs, "an opaque date/time")?);
            let a = packed.unsigned_abs();
            let micros = a & 0xff_ffff;
            let ymdhms = a >> 24;
            let ymd = ymdhms >> 17;
            let ym = ymd >> 5;
            let hms = ymdhms & 0x1_ffff;
            let (y, mo, d) = (ym / 13, ym % 13, ymd & 31);
            let (h, mi, s) = (hms >> 12, (hms >> 6) & 63, hms & 63);
            if field_type == T_DATE {
                let _ = write!(out, "\"{y:04}-{mo:02}-{d:02}\"");
            } else {
                let _ = write!(out, "\"{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{micros:06}\"");
            }
        }
        T_TIME => {
            let packed = i64::from_le_bytes(fixed(payload, abs, "an opaque TIME")?);
            let sign = if packed < 0 { "-" } else { "" };
            let a = packed.unsigned_abs();
            let micros = a & 0xff_ffff;
            let hms = a >> 24;
            let (h, mi, s) = ((hms >> 12) & 0x3ff, (hms >> 6) & 63, hms & 63);
            let _ = write!(out, "\"{sign}{h:02}:{mi:02}:{s:02}.{micros:06}\"");
        }
        other => {
            // MySQL prints other opaque values as "base64:type<N>:<base64 data>".
            let _ = write!(out, "\"base64:type{other}:");
            base64_encode(payload, out);
            out.push('"');
        }
    }
    Ok(())
}

fn base64_encode(data: &[u8], out: &mut String) {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sym = |i: u32| char::from(A[(i & 63) as usize]);
    for chunk in data.chunks(3) {
        let b0 = u32::from(chunk.first().copied().unwrap_or(0));
        let b1 = u32::from(chunk.get(1).copied().unwrap_or(0));
        let b2 = u32::from(chunk.get(2).copied().unwrap_or(0));
        let n = (b0 << 16) | (b1 << 8) | b2;
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        out.push(if chunk.len() > 1 { sym(n >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { sym(n) } else { '=' });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> serde_json::Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("invalid JSON {text:?}: {e}"))
    }

    #[test]
    fn empty_is_null() {
        assert_eq!(jsonb_to_json_text(&[]).unwrap(), "null");
    }

    #[test]
    fn scalars() {
        assert_eq!(jsonb_to_json_text(&[LITERAL, 0]).unwrap(), "null");
        assert_eq!(jsonb_to_json_text(&[LITERAL, 1]).unwrap(), "true");
        assert_eq!(jsonb_to_json_text(&[LITERAL, 2]).unwrap(), "false");
        assert_eq!(jsonb_to_json_text(&[INT16, 0xff, 0xff]).unwrap(), "-1");
        assert_eq!(jsonb_to_json_text(&[UINT16, 0xff, 0xff]).unwrap(), "65535");
        assert_eq!(jsonb_to_json_text(&[INT32, 0, 0, 0, 0x80]).unwrap(), "-2147483648");
        assert_eq!(
            jsonb_to_json_text(&[UINT64, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).unwrap(),
            "18446744073709551615"
        );
        let mut d = vec![DOUBLE];
        d.extend_from_slice(&1.5f64.to_le_bytes());
        assert_eq!(jsonb_to_json_text(&d).unwrap(), "1.5");
        let mut d = vec![DOUBLE];
        d.extend_from_slice(&3.0f64.to_le_bytes());
        assert_eq!(jsonb_to_json_text(&d).unwrap(), "3.0");
        let mut d = vec![DOUBLE];
        d.extend_from_slice(&1e300f64.to_le_bytes());
        assert_eq!(parse(&jsonb_to_json_text(&d).unwrap()), serde_json::json!(1e300));
        let mut d = vec![DOUBLE];
        d.extend_from_slice(&f64::NAN.to_le_bytes());
        assert!(jsonb_to_json_text(&d).is_err());
        assert_eq!(jsonb_to_json_text(&[STRING, 3, b'a', b'"', b'\n']).unwrap(), r#""a\"\n""#);
    }

    #[test]
    fn long_string_uses_multibyte_length() {
        let s = "x".repeat(200);
        let mut d = vec![STRING, 0xc8, 0x01];
        d.extend_from_slice(s.as_bytes());
        assert_eq!(jsonb_to_json_text(&d).unwrap(), format!("\"{s}\""));
    }

    #[test]
    fn small_object_and_array() {
        // {"a": 1, "b": [true, "xy"]}
        // object: count=2, size, key entries (2 × 4), value entries (2 × 3), keys "a","b", then array.
        let mut o: Vec<u8> = vec![];
        o.extend_from_slice(&2u16.to_le_bytes()); // count
        o.extend_from_slice(&0u16.to_le_bytes()); // size placeholder
        let header = 4 + 2 * 4 + 2 * 3; // 18
        o.extend_from_slice(&(header as u16).to_le_bytes());
        o.extend_from_slice(&1u16.to_le_bytes());
        o.extend_from_slice(&((header + 1) as u16).to_le_bytes());
        o.extend_from_slice(&1u16.to_le_bytes());
        o.push(INT16);
        o.extend_from_slice(&1u16.to_le_bytes());
        o.push(SMALL_ARRAY);
        o.extend_from_slice(&((header + 2) as u16).to_le_bytes());
        o.extend_from_slice(b"ab");
        // array: count=2, size, entries (2 × 3), then string.
        let mut a: Vec<u8> = vec![];
        a.extend_from_slice(&2u16.to_le_bytes());
        a.extend_from_slice(&0u16.to_le_bytes());
        a.push(LITERAL);
        a.extend_from_slice(&1u16.to_le_bytes());
        a.push(STRING);
        a.extend_from_slice(&10u16.to_le_bytes());
        a.extend_from_slice(&[2, b'x', b'y']);
        let alen = a.len() as u16;
        a[2..4].copy_from_slice(&alen.to_le_bytes());
        o.extend_from_slice(&a);
        let olen = o.len() as u16;
        o[2..4].copy_from_slice(&olen.to_le_bytes());
        let mut doc = vec![SMALL_OBJECT];
        doc.extend_from_slice(&o);
        let text = jsonb_to_json_text(&doc).unwrap();
        assert_eq!(text, r#"{"a":1,"b":[true,"xy"]}"#);
        // Every prefix is an error or (for the full doc) the value — never a panic.
        for cut in 0..doc.len() {
            let _ = jsonb_to_json_text(&doc[..cut]);
        }
        // Random corruption never panics.
        let mut seed = 0x1234_5678u32;
        for _ in 0..5000 {
            let mut d = doc.clone();
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let i = (seed as usize) % d.len();
            d[i] = (seed >> 8) as u8;
            if let Ok(t) = jsonb_to_json_text(&d) {
                parse(&t);
            }
        }
    }

    #[test]
    fn opaque_values() {
        // DECIMAL(5,2) -12.34 as opaque: precision 5, scale 2, binary.
        let bin = [0x7f, 0xf3, 0xdd]; // intg 3 digits (2 bytes) + 2 frac digits (1 byte), negative
        let mut d = vec![OPAQUE, T_NEWDECIMAL, 5];
        d.extend_from_slice(&[5, 2]);
        d.extend_from_slice(&bin);
        assert_eq!(jsonb_to_json_text(&d).unwrap(), "-12.34");
        // DATETIME 2015-01-15 23:24:25.000123
        let ymd: i64 = ((2015 * 13 + 1) << 5) | 15;
        let hms: i64 = (23 << 12) | (24 << 6) | 25;
        let packed = (((ymd << 17) | hms) << 24) | 123;
        let mut d = vec![OPAQUE, T_DATETIME, 8];
        d.extend_from_slice(&packed.to_le_bytes());
        assert_eq!(jsonb_to_json_text(&d).unwrap(), "\"2015-01-15 23:24:25.000123\"");
        let mut d = vec![OPAQUE, T_DATE, 8];
        d.extend_from_slice(&((ymd << 17) << 24).to_le_bytes());
        assert_eq!(jsonb_to_json_text(&d).unwrap(), "\"2015-01-15\"");
        let t: i64 = -((((1 << 12) | (2 << 6) | 3) << 24) | 500_000);
        let mut d = vec![OPAQUE, T_TIME, 8];
        d.extend_from_slice(&t.to_le_bytes());
        assert_eq!(jsonb_to_json_text(&d).unwrap(), "\"-01:02:03.500000\"");
        let d = vec![OPAQUE, 252, 4, b'a', b'b', b'c', b'd'];
        assert_eq!(jsonb_to_json_text(&d).unwrap(), "\"base64:type252:YWJjZA==\"");
    }

    #[test]
    fn deep_nesting_is_bounded() {
        // Arrays nested 1000 deep: each is count=1,size,entry(type=array, offset=7).
        let depth = 1000;
        let mut inner = vec![0u8, 0, 4, 0]; // empty array: count 0, size 4
        for _ in 0..depth {
            let mut a = vec![1u8, 0, 0, 0, SMALL_ARRAY, 7, 0];
            a.extend_from_slice(&inner);
            let len = a.len() as u16;
            a[2..4].copy_from_slice(&len.to_le_bytes());
            inner = a;
            if inner.len() > 60000 {
                break;
            }
        }
        let mut doc = vec![SMALL_ARRAY];
        doc.extend_from_slice(&inner);
        assert!(matches!(jsonb_to_json_text(&doc), Err(DecodeError::Json { .. })));
    }

    #[test]
    fn shared_subvalues_cannot_blow_up() {
        // Each level: array of 2 entries pointing to the same child → 2^depth output without a limit.
        let mut child = vec![0u8, 0, 4, 0]; // empty array
        for _ in 0..60 {
            let mut a = vec![2u8, 0, 0, 0, SMALL_ARRAY, 10, 0, SMALL_ARRAY, 10, 0];
            a.extend_from_slice(&child);
            let len = a.len() as u16;
            a[2..4].copy_from_slice(&len.to_le_bytes());
            child = a;
        }
        let mut doc = vec![SMALL_ARRAY];
        doc.extend_from_slice(&child);
        assert!(jsonb_to_json_text(&doc).is_err());
    }
}
