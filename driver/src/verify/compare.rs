//! Rows of one chunk as digests, and how two chunks (source and target) differ.

use dtle_mysql::checksum::{Canon, RowEncoder};
use dtle_mysql::Value;

/// The rows of one chunk: per row the canonical encoding of its key (empty for a table without a key) and the
/// digest of the whole compared row, sorted (key, digest) — so a table without a key compares as a multiset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowSet {
    pub rows: Vec<(Vec<u8>, u128)>,
}

impl RowSet {
    /// Digests of `rows` (each already in the compared column order). `key`: positions of the key columns.
    pub fn build(rows: &[Vec<Value>], key: &[usize], canons: &[Canon]) -> RowSet {
        let mut enc = RowEncoder::default();
        let mut out: Vec<(Vec<u8>, u128)> = rows
            .iter()
            .map(|r| (if key.is_empty() { Vec::new() } else { enc.key(r, key, canons) }, enc.row(r, canons)))
            .collect();
        out.sort_unstable();
        RowSet { rows: out }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }
}

/// How the target's rows of a chunk differ from the source's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Difference {
    /// Keys the source has and the target lacks (rows, for a table without a key).
    pub missing: Vec<Vec<u8>>,
    /// Keys the target has and the source lacks (rows, for a table without a key).
    pub extra: Vec<Vec<u8>>,
    /// Keys on both sides whose rows differ.
    pub changed: Vec<Vec<u8>>,
}

impl Difference {
    /// No difference, counting target rows the source lacks only when `count_extra`.
    pub fn is_equal(&self, count_extra: bool) -> bool {
        self.missing.is_empty() && self.changed.is_empty() && (!count_extra || self.extra.is_empty())
    }
}

/// Compares sorted row sets. With keys, rows are matched on their key; without (`keyed` false) the two
/// multisets of row digests are compared, and `missing`/`extra` hold one empty entry per unmatched row.
pub fn compare(source: &RowSet, target: &RowSet, keyed: bool) -> Difference {
    let mut d = Difference::default();
    let (mut i, mut j) = (0, 0);
    let (s, t) = (&source.rows, &target.rows);
    while i < s.len() || j < t.len() {
        let order = match (s.get(i), t.get(j)) {
            (Some(a), Some(b)) if keyed => a.0.cmp(&b.0),
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, _) => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                d.missing.push(s[i].0.clone());
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                d.extra.push(t[j].0.clone());
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                if s[i].1 != t[j].1 {
                    d.changed.push(s[i].0.clone());
                }
                i += 1;
                j += 1;
            }
        }
    }
    d
}

/// Text of a key's canonical encoding for reports: the values comma separated (strings quoted when printable,
/// else hex).
pub fn show_key(encoded: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut rest = encoded;
    while let Some((&tag, after)) = rest.split_first() {
        if tag == 0x00 || tag == 0x0E {
            parts.push(if tag == 0 { "NULL".to_string() } else { "?".to_string() });
            rest = after;
            continue;
        }
        let Some(len) = after.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize) else { break };
        let Some(bytes) = after.get(4..4 + len) else { break };
        rest = &after[4 + len..];
        let text = match tag {
            0x01 if bytes.len() == 16 => {
                let mut raw = [0u8; 16];
                raw.copy_from_slice(bytes);
                i128::from_le_bytes(raw).to_string()
            }
            0x04 => String::from_utf8_lossy(bytes).into_owned(),
            0x09 | 0x0A if bytes.len() == 2 => u16::from_le_bytes([bytes[0], bytes[1]]).to_string(),
            0x0B | 0x0C if bytes.len() == 8 => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(bytes);
                u64::from_le_bytes(raw).to_string()
            }
            0x02 if bytes.len() == 4 => {
                f32::from_bits(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])).to_string()
            }
            0x03 if bytes.len() == 8 => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(bytes);
                f64::from_bits(u64::from_le_bytes(raw)).to_string()
            }
            _ => match std::str::from_utf8(bytes) {
                Ok(s) if !s.chars().any(char::is_control) => format!("'{}'", s.replace('\'', "''")),
                _ => format!("0x{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()),
            },
        };
        parts.push(text);
    }
    parts.join(",")
}

/// A chunk's key range for reports: `(lower, upper]`, `-inf`/`+inf` for the open ends.
pub fn show_range(lower: Option<&[u8]>, upper: Option<&[u8]>) -> String {
    let wrap = |k: &[u8]| {
        let s = show_key(k);
        if s.contains(',') {
            format!("({s})")
        } else {
            s
        }
    };
    format!(
        "({}, {}{}",
        lower.map_or("-inf".to_string(), wrap),
        upper.map_or("+inf".to_string(), wrap),
        if upper.is_some() { "]" } else { ")" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(rows: &[(i64, &str)]) -> RowSet {
        let rows: Vec<Vec<Value>> =
            rows.iter().map(|(k, v)| vec![Value::Int(*k), Value::Bytes(v.as_bytes().to_vec())]).collect();
        RowSet::build(&rows, &[0], &[])
    }

    #[test]
    fn keyed_chunks_report_missing_extra_and_changed_keys() {
        let s = set(&[(1, "a"), (2, "b"), (3, "c")]);
        let t = set(&[(3, "c"), (1, "a"), (2, "B"), (4, "d")]);
        let d = compare(&s, &t, true);
        let show = |keys: &[Vec<u8>]| keys.iter().map(|k| show_key(k)).collect::<Vec<_>>();
        assert_eq!(show(&d.changed), ["2"]);
        assert_eq!(show(&d.extra), ["4"]);
        assert!(d.missing.is_empty());
        assert!(!d.is_equal(true));
        assert!(!d.is_equal(false), "a changed row counts either way");
        let only_extra = compare(&set(&[(1, "a")]), &set(&[(1, "a"), (9, "z")]), true);
        assert!(only_extra.is_equal(false) && !only_extra.is_equal(true));
        assert!(compare(&s, &s.clone(), true).is_equal(true));
        assert_eq!(compare(&s, &set(&[(1, "a"), (3, "c")]), true).missing.len(), 1);
    }

    #[test]
    fn keyless_chunks_compare_as_multisets() {
        let rows = |v: &[&str]| -> RowSet {
            let rows: Vec<Vec<Value>> = v.iter().map(|s| vec![Value::Bytes(s.as_bytes().to_vec())]).collect();
            RowSet::build(&rows, &[], &[])
        };
        assert!(compare(&rows(&["a", "a", "b"]), &rows(&["b", "a", "a"]), false).is_equal(true));
        let d = compare(&rows(&["a", "a", "b"]), &rows(&["a", "b"]), false);
        assert_eq!((d.missing.len(), d.extra.len()), (1, 0));
        let d = compare(&rows(&["a", "b"]), &rows(&["a", "b", "b"]), false);
        assert_eq!((d.missing.len(), d.extra.len()), (0, 1));
    }

    #[test]
    fn keys_and_ranges_read_back() {
        let mut e = RowEncoder::default();
        let k = e.key(&[Value::Int(-7), Value::Bytes(b"x'y".to_vec()), Value::Bytes(vec![0, 1])], &[0, 1, 2], &[]);
        assert_eq!(show_key(&k), "-7,'x''y',0x0001");
        let one = e.key(&[Value::UInt(1000)], &[0], &[]);
        assert_eq!(show_range(None, Some(&one)), "(-inf, 1000]");
        assert_eq!(show_range(Some(&one), None), "(1000, +inf)");
        assert_eq!(show_range(Some(&k), Some(&one)), "((-7,'x''y',0x0001), 1000]");
        assert_eq!(show_key(&e.key(&[Value::Decimal("1.50".into())], &[0], &[])), "1.5");
    }
}
