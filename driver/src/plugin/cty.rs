//! Nomad sends configs as cty values encoded with msgpack (go-cty's `msgpack.Marshal`). This turns such bytes into
//! JSON, the form the config module already checks and decodes: null → null, bool, every integer width, float64,
//! strings (numbers go-cty could not write exactly arrive as decimal strings: the config walk accepts those for
//! integer fields), arrays (lists, sets, tuples) and string-keyed maps (maps, objects).

use rmpv::Value as Mp;
use serde_json::{Map, Number, Value};

/// Decodes one cty msgpack value. Empty input (no config) is `null`.
pub fn msgpack_to_json(bytes: &[u8]) -> Result<Value, String> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let mut rest = bytes;
    let value = rmpv::decode::read_value(&mut rest).map_err(|e| format!("the config is not valid msgpack: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("the config has {} unexpected byte(s) after the msgpack value", rest.len()));
    }
    convert(value, "")
}

fn convert(v: Mp, path: &str) -> Result<Value, String> {
    let at = |what: &str| {
        if path.is_empty() {
            format!("the config holds {what}")
        } else {
            format!("config field {path} holds {what}")
        }
    };
    Ok(match v {
        Mp::Nil => Value::Null,
        Mp::Boolean(b) => Value::Bool(b),
        Mp::Integer(i) => {
            if let Some(n) = i.as_i64() {
                Value::from(n)
            } else if let Some(n) = i.as_u64() {
                Value::from(n)
            } else {
                return Err(at("an integer out of range"));
            }
        }
        Mp::F32(f) => float(f64::from(f)),
        Mp::F64(f) => float(f),
        Mp::String(s) => match s.into_str() {
            Some(s) => Value::String(s),
            None => return Err(at("a string that is not UTF-8")),
        },
        Mp::Binary(_) => return Err(at("binary data (a dynamically typed cty value), which dtle does not take")),
        Mp::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                out.push(convert(item, &format!("{path}[{i}]"))?);
            }
            Value::Array(out)
        }
        Mp::Map(entries) => {
            let mut out = Map::new();
            for (k, v) in entries {
                let key = match k {
                    Mp::String(s) => match s.into_str() {
                        Some(s) => s,
                        None => return Err(at("a map key that is not UTF-8")),
                    },
                    other => return Err(at(&format!("a map key that is not a string ({other})"))),
                };
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                let value = convert(v, &child)?;
                out.insert(key, value);
            }
            Value::Object(out)
        }
        Mp::Ext(_, _) => return Err(at("an unknown value (a cty unknown), which Nomad should have resolved")),
    })
}

/// Finite floats become JSON numbers (integral ones as integers); ±Inf as strings, which a field check rejects
/// with the field's name.
fn float(f: f64) -> Value {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::from(f as i64)
    } else {
        Number::from_f64(f).map(Value::Number).unwrap_or_else(|| Value::String(f.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_example() {
        // {Charset="utf8mb4", Host="h", Port=3306}, keys sorted as go-cty writes them.
        let mut b = vec![0x83, 0xa7];
        b.extend_from_slice(b"Charset");
        b.push(0xa7);
        b.extend_from_slice(b"utf8mb4");
        b.push(0xa4);
        b.extend_from_slice(b"Host");
        b.push(0xa1);
        b.extend_from_slice(b"h");
        b.push(0xa4);
        b.extend_from_slice(b"Port");
        b.extend_from_slice(&[0xcd, 0x0c, 0xea]);
        let v = msgpack_to_json(&b).unwrap();
        assert_eq!(v, serde_json::json!({"Charset": "utf8mb4", "Host": "h", "Port": 3306}));
    }

    #[test]
    fn shapes() {
        assert_eq!(msgpack_to_json(&[]).unwrap(), Value::Null);
        assert_eq!(msgpack_to_json(&[0xc0]).unwrap(), Value::Null);
        assert_eq!(msgpack_to_json(&[0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]).unwrap(), Value::from(-2));
        let mut f = vec![0xcb];
        f.extend_from_slice(&1.5f64.to_be_bytes());
        assert_eq!(msgpack_to_json(&f).unwrap(), serde_json::json!(1.5));
        let mut g = vec![0xcb];
        g.extend_from_slice(&15.0f64.to_be_bytes());
        assert_eq!(msgpack_to_json(&g).unwrap(), serde_json::json!(15));
        assert_eq!(msgpack_to_json(&[0x92, 0xc3, 0xa3, b'0', b'.', b'1']).unwrap(), serde_json::json!([true, "0.1"]));
        assert!(msgpack_to_json(&[0xd4, 0x00, 0x00]).unwrap_err().contains("unknown"));
        assert!(msgpack_to_json(&[0xc0, 0xc0]).is_err());
        assert!(msgpack_to_json(&[0x81, 0x01, 0xc0]).unwrap_err().contains("not a string"));
    }
}
