//! JSON exactly as Kafka Connect's `JsonConverter` (schemas enabled) writes it with Jackson: schema members in the
//! converter's order (`type`, `fields`/`items`, `optional`, `name`, `version`, `doc`, `parameters`, `default`,
//! `field`), parameters in the order they were added, strings escaped as Jackson does (`\u001A`: upper-case hex;
//! non-ASCII as UTF-8), and numbers as Java's `Double.toString`/`Float.toString` print them (`1.0E300`, `0.1`,
//! `3.4E38`). Keys are the bytes Kafka partitions and compacts on, so they must be these bytes, not just equal JSON:
//! `tests/compat/` checks them against Debezium's own output.

use std::io::Write as _;

/// A Kafka Connect schema, written as JsonConverter writes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    pub body: Body,
    pub optional: bool,
    pub name: Option<String>,
    pub version: Option<i32>,
    pub doc: Option<String>,
    /// In insertion order (Connect keeps a LinkedHashMap).
    pub parameters: Vec<(String, String)>,
    /// The default value, as its JSON text (already in the converter's form).
    pub default: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// `boolean`, `int16`, `int32`, `int64`, `float`, `double`, `bytes`, `string`.
    Primitive(&'static str),
    Struct(Vec<(String, Schema)>),
    Array(Box<Schema>),
}

impl Schema {
    pub fn primitive(ty: &'static str, optional: bool) -> Schema {
        Schema {
            body: Body::Primitive(ty),
            optional,
            name: None,
            version: None,
            doc: None,
            parameters: Vec::new(),
            default: None,
        }
    }

    pub fn structure(fields: Vec<(String, Schema)>, optional: bool) -> Schema {
        Schema { body: Body::Struct(fields), ..Schema::primitive("struct", optional) }
    }

    pub fn array(items: Schema, optional: bool) -> Schema {
        Schema { body: Body::Array(Box::new(items)), ..Schema::primitive("array", optional) }
    }

    pub fn named(mut self, name: impl Into<String>) -> Schema {
        self.name = Some(name.into());
        self
    }

    pub fn version(mut self, version: i32) -> Schema {
        self.version = Some(version);
        self
    }

    pub fn doc(mut self, doc: &str) -> Schema {
        self.doc = Some(doc.into());
        self
    }

    pub fn param(mut self, key: &str, value: impl Into<String>) -> Schema {
        self.parameters.push((key.into(), value.into()));
        self
    }

    pub fn default_json(mut self, json: Vec<u8>) -> Schema {
        self.default = Some(json);
        self
    }

    /// Appends the schema's JSON; `field` is its name inside a struct.
    pub fn write(&self, out: &mut Vec<u8>, field: Option<&str>) {
        out.extend_from_slice(b"{\"type\":");
        match &self.body {
            Body::Primitive(t) => write_str(out, t),
            Body::Struct(fields) => {
                out.extend_from_slice(b"\"struct\",\"fields\":[");
                for (i, (name, s)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    s.write(out, Some(name));
                }
                out.push(b']');
            }
            Body::Array(items) => {
                out.extend_from_slice(b"\"array\",\"items\":");
                items.write(out, None);
            }
        }
        out.extend_from_slice(if self.optional { b",\"optional\":true" } else { b",\"optional\":false" });
        if let Some(n) = &self.name {
            out.extend_from_slice(b",\"name\":");
            write_str(out, n);
        }
        if let Some(v) = self.version {
            let _ = write!(out, ",\"version\":{v}");
        }
        if let Some(d) = &self.doc {
            out.extend_from_slice(b",\"doc\":");
            write_str(out, d);
        }
        if !self.parameters.is_empty() {
            out.extend_from_slice(b",\"parameters\":{");
            for (i, (k, v)) in self.parameters.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_str(out, v);
            }
            out.push(b'}');
        }
        if let Some(d) = &self.default {
            out.extend_from_slice(b",\"default\":");
            out.extend_from_slice(d);
        }
        if let Some(f) = field {
            out.extend_from_slice(b",\"field\":");
            write_str(out, f);
        }
        out.push(b'}');
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out, None);
        out
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn write_u_escape(out: &mut Vec<u8>, unit: u16) {
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[usize::from((unit >> shift) & 15)]);
    }
}

/// Appends a JSON string literal as Jackson writes it: `"` and `\` escaped, `\b \t \n \f \r` by name, other control
/// characters as `\u00XX` (upper-case hex), characters beyond the Basic Multilingual Plane (emoji) as their UTF-16
/// surrogate pair `\uD83D\uDE00`, everything else as UTF-8.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0xf0 {
            // The lead byte of a 4-byte sequence: a supplementary character.
            out.extend_from_slice(&bytes[start..i]);
            let c = s[i..].chars().next().unwrap_or('\u{fffd}');
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write_u_escape(out, *unit);
            }
            start = i + c.len_utf8();
            continue;
        }
        if i < start {
            continue; // inside a supplementary character already written
        }
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            write_u_escape(out, u16::from(b));
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Lays out the shortest round-trip digits of a finite number (`sci` is Rust's `{:e}` of it: `-1.25e-7`) as Java's
/// `Double.toString` does: plain with at least one fraction digit for 10^-3 <= |x| < 10^7, else `d.dddE[-]n`.
fn java_layout(out: &mut Vec<u8>, sci: &str) {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    if negative {
        out.push(b'-');
    }
    if digits.iter().all(|&d| d == b'0') {
        out.extend_from_slice(b"0.0");
        return;
    }
    if (-3..7).contains(&exp) {
        if exp < 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
            out.extend_from_slice(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.extend_from_slice(&digits);
                out.extend(std::iter::repeat_n(b'0', int_len - digits.len()));
                out.extend_from_slice(b".0");
            } else {
                out.extend_from_slice(&digits[..int_len]);
                out.push(b'.');
                out.extend_from_slice(&digits[int_len..]);
            }
        }
    } else {
        out.push(digits[0]);
        out.push(b'.');
        if digits.len() > 1 {
            out.extend_from_slice(&digits[1..]);
        } else {
            out.push(b'0');
        }
        let _ = write!(out, "E{exp}");
    }
}

/// A finite double as Java's `Double.toString` (what Jackson writes).
pub fn write_f64(out: &mut Vec<u8>, x: f64) {
    java_layout(out, &format!("{x:e}"));
}

/// A finite float as Java's `Float.toString`.
pub fn write_f32(out: &mut Vec<u8>, x: f32) {
    java_layout(out, &format!("{x:e}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: f64) -> String {
        let mut out = Vec::new();
        write_f64(&mut out, x);
        String::from_utf8(out).unwrap()
    }

    fn f(x: f32) -> String {
        let mut out = Vec::new();
        write_f32(&mut out, x);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn numbers_as_java_prints_them() {
        // Each checked against Debezium's recorded output or Java's Double/Float.toString.
        assert_eq!(d(1e300), "1.0E300");
        assert_eq!(d(1e-300), "1.0E-300");
        assert_eq!(d(-1e-5), "-1.0E-5");
        assert_eq!(d(0.1), "0.1");
        assert_eq!(d(0.001), "0.001");
        assert_eq!(d(1234.5670166015625), "1234.5670166015625");
        assert_eq!(d(-0.0010000000474974513), "-0.0010000000474974513");
        assert_eq!(d(1.0), "1.0");
        assert_eq!(d(-4.0), "-4.0");
        assert_eq!(d(0.0), "0.0");
        assert_eq!(d(-0.0), "-0.0");
        assert_eq!(d(1e7), "1.0E7");
        assert_eq!(d(9999999.0), "9999999.0");
        assert_eq!(d(123456789.5), "1.234567895E8");
        assert_eq!(f(3.4e38), "3.4E38");
        assert_eq!(f(1e-10), "1.0E-10");
        assert_eq!(f(1.5), "1.5");
        assert_eq!(f(-0.25), "-0.25");
        assert_eq!(f(0.1), "0.1");
    }

    #[test]
    fn strings_as_jackson_escapes_them() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"b\\c/\n\t\r\u{8}\u{c}\u{1a}\u{0}\u{7f}é😀✓");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c/\\n\\t\\r\\b\\f\\u001A\\u0000\u{7f}é\\uD83D\\uDE00✓\""
        );
    }

    #[test]
    fn schema_members_in_the_converters_order() {
        let s = Schema::primitive("bytes", true)
            .named("org.apache.kafka.connect.data.Decimal")
            .version(1)
            .param("scale", "2")
            .param("connect.decimal.precision", "10")
            .default_json(b"\"AA==\"".to_vec());
        let mut out = Vec::new();
        s.write(&mut out, Some("d"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"default":"AA==","field":"d"}"#
        );
        let st = Schema::structure(vec![("a".into(), Schema::primitive("int32", false))], false).named("k.Key");
        assert_eq!(
            String::from_utf8(st.to_bytes()).unwrap(),
            r#"{"type":"struct","fields":[{"type":"int32","optional":false,"field":"a"}],"optional":false,"name":"k.Key"}"#
        );
    }
}
