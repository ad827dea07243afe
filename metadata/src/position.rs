//! [`Position`]: where a source stream stands (GTID state and/or binlog file/pos), and its comparison.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{quote_limited, PositionError};
use crate::gtid::{MariadbGtidList, MysqlGtidSet};

/// Separator of dtle's Consul `BinlogFilePos` value: `file//dtle//pos`.
const FILE_POS_SEPARATOR: &str = "//dtle//";

/// The GTID part of a position, in the source's flavour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GtidState {
    Mysql(MysqlGtidSet),
    Mariadb(MariadbGtidList),
}

impl GtidState {
    /// Parses a job-file or Consul GTID value, detecting the flavour: text containing ':' is a MySQL GTID
    /// set, anything else a MariaDB GTID list. Empty text is an error here (callers treat "" as "no GTID").
    pub fn parse_for_config(s: &str) -> Result<GtidState, PositionError> {
        if s.trim().is_empty() {
            return Err(PositionError::parse(
                s,
                "the GTID value is empty (expected a MySQL GTID set such as \
                 3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5 or a MariaDB GTID list such as 0-1-100)",
            ));
        }
        if s.contains(':') {
            s.parse().map(GtidState::Mysql)
        } else {
            s.parse().map(GtidState::Mariadb)
        }
    }

    /// "mysql" or "mariadb", as stored in the `flavor` field of a serialized [`Position`].
    pub fn flavor(&self) -> &'static str {
        match self {
            GtidState::Mysql(_) => FLAVOR_MYSQL,
            GtidState::Mariadb(_) => FLAVOR_MARIADB,
        }
    }

    /// Parses `s` as the given flavour ("mysql" / "mariadb"); "" is the empty state of that flavour.
    fn parse_with_flavor(s: &str, flavor: &str) -> Result<GtidState, PositionError> {
        match flavor {
            FLAVOR_MYSQL => s.parse().map(GtidState::Mysql),
            FLAVOR_MARIADB => s.parse().map(GtidState::Mariadb),
            other => Err(PositionError::parse(
                other,
                format!("unknown GTID flavor {other:?} (expected \"mysql\" or \"mariadb\")"),
            )),
        }
    }
}

const FLAVOR_MYSQL: &str = "mysql";
const FLAVOR_MARIADB: &str = "mariadb";

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidState::Mysql(set) => set.fmt(f),
            GtidState::Mariadb(list) => list.fmt(f),
        }
    }
}

/// Where a source stream stands: after the last transaction included.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Position {
    pub gtid: Option<GtidState>,
    pub binlog_file: String,
    pub binlog_pos: u64,
}

impl Position {
    /// dtle's Consul form of file/pos: "mysql-bin.000003//dtle//1234"; empty file -> "".
    pub fn binlog_file_pos_string(&self) -> String {
        if self.binlog_file.is_empty() {
            String::new()
        } else {
            format!("{}{FILE_POS_SEPARATOR}{}", self.binlog_file, self.binlog_pos)
        }
    }

    /// Inverse of [`Position::binlog_file_pos_string`]: "" (or only whitespace) gives `("", 0)`.
    pub fn parse_binlog_file_pos(s: &str) -> Result<(String, u64), PositionError> {
        let text = s.trim();
        if text.is_empty() {
            return Ok((String::new(), 0));
        }
        let expected = "expected \"<binlog file>//dtle//<position>\" such as \"mysql-bin.000003//dtle//1234\"";
        let Some((file, pos)) = text.split_once(FILE_POS_SEPARATOR) else {
            return Err(PositionError::parse(s, format!("the \"//dtle//\" separator is missing ({expected})")));
        };
        if file.is_empty() {
            return Err(PositionError::parse(s, format!("the binlog file name is empty ({expected})")));
        }
        let pos = pos
            .parse::<u64>()
            .map_err(|_| PositionError::parse(s, format!("{pos:?} is not a binlog position number ({expected})")))?;
        Ok((file.to_string(), pos))
    }

    /// Partial order: compares GTID states when both have the same flavour (subset / reached_by),
    /// else file/pos when both have a file. Returns Err(PositionError::Incomparable{..}) rather than guessing.
    ///
    /// - `Ok(Some(_))`: ordered (equal positions are `Equal`, whatever else they hold).
    /// - `Ok(None)`: both GTID states have the same flavour but neither includes the other (diverged
    ///   histories, e.g. two MySQL sets each holding a transaction the other lacks).
    /// - `Err(Incomparable)`: no common basis: different or missing GTID flavours and no binlog file on
    ///   one side, or binlog files of different servers (different base names).
    ///
    /// When both sides have same-flavour GTID states, the binlog file/pos is not looked at (file names
    /// differ between a primary and its replicas).
    pub fn try_partial_cmp(&self, other: &Position) -> Result<Option<Ordering>, PositionError> {
        if self == other {
            return Ok(Some(Ordering::Equal));
        }
        match (&self.gtid, &other.gtid) {
            (Some(GtidState::Mysql(a)), Some(GtidState::Mysql(b))) => {
                return Ok(order_from_inclusion(a.is_subset_of(b), b.is_subset_of(a)));
            }
            (Some(GtidState::Mariadb(a)), Some(GtidState::Mariadb(b))) => {
                return Ok(order_from_inclusion(a.is_reached_by(b), b.is_reached_by(a)));
            }
            _ => {}
        }
        if !self.binlog_file.is_empty() && !other.binlog_file.is_empty() {
            if let Some(order) = compare_binlog_files(&self.binlog_file, &other.binlog_file) {
                return Ok(Some(order.then(self.binlog_pos.cmp(&other.binlog_pos))));
            }
        }
        Err(PositionError::Incomparable { left: self.to_string(), right: other.to_string() })
    }
}

/// `a ⊆ b` and `b ⊆ a` to an ordering of a relative to b.
fn order_from_inclusion(a_in_b: bool, b_in_a: bool) -> Option<Ordering> {
    match (a_in_b, b_in_a) {
        (true, true) => Some(Ordering::Equal),
        (true, false) => Some(Ordering::Less),
        (false, true) => Some(Ordering::Greater),
        (false, false) => None,
    }
}

/// Orders two binlog file names of the same server: "base.000012" by base (must be equal) then by the
/// numeric extension. `None` when they are not of that shape or the bases differ.
fn compare_binlog_files(a: &str, b: &str) -> Option<Ordering> {
    if a == b {
        return Some(Ordering::Equal);
    }
    let split = |name: &str| -> Option<(String, u64)> {
        let (base, number) = name.rsplit_once('.')?;
        if number.is_empty() || !number.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some((base.to_string(), number.parse().ok()?))
    };
    let (base_a, number_a) = split(a)?;
    let (base_b, number_b) = split(b)?;
    (base_a == base_b).then(|| number_a.cmp(&number_b))
}

impl fmt::Display for Position {
    /// Human form for messages, e.g. `mysql GTID "uuid:1-5", binlog mysql-bin.000003:1234`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wrote = false;
        if let Some(gtid) = &self.gtid {
            write!(f, "{} GTID {:?}", gtid.flavor(), quote_limited(&gtid.to_string()))?;
            wrote = true;
        }
        if !self.binlog_file.is_empty() {
            if wrote {
                f.write_str(", ")?;
            }
            write!(f, "binlog {}:{}", self.binlog_file, self.binlog_pos)?;
            wrote = true;
        }
        if !wrote {
            f.write_str("(empty position)")?;
        }
        Ok(())
    }
}

/// JSON shape of a [`Position`]:
/// `{"gtid": "<string or null>", "flavor": "mysql"|"mariadb"|null, "binlog_file": "...", "binlog_pos": N}`.
#[derive(Serialize, Deserialize)]
struct PositionRepr {
    #[serde(default)]
    gtid: Option<String>,
    #[serde(default)]
    flavor: Option<String>,
    #[serde(default)]
    binlog_file: String,
    #[serde(default)]
    binlog_pos: u64,
}

impl Serialize for Position {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        PositionRepr {
            gtid: self.gtid.as_ref().map(|g| g.to_string()),
            flavor: self.gtid.as_ref().map(|g| g.flavor().to_string()),
            binlog_file: self.binlog_file.clone(),
            binlog_pos: self.binlog_pos,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Position {
    /// `flavor` decides how `gtid` is parsed ("" is then the empty set of that flavour). Without a
    /// flavor, a non-empty `gtid` is detected as in [`GtidState::parse_for_config`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = PositionRepr::deserialize(deserializer)?;
        let gtid = match (repr.gtid, repr.flavor) {
            (None, _) => None,
            (Some(text), Some(flavor)) => Some(GtidState::parse_with_flavor(&text, &flavor)),
            (Some(text), None) => Some(GtidState::parse_for_config(&text)),
        }
        .transpose()
        .map_err(serde::de::Error::custom)?;
        Ok(Position { gtid, binlog_file: repr.binlog_file, binlog_pos: repr.binlog_pos })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U2: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429562";

    fn mysql(s: &str) -> Position {
        Position { gtid: Some(GtidState::Mysql(s.parse().expect("gtid set"))), ..Position::default() }
    }

    fn mariadb(s: &str) -> Position {
        Position { gtid: Some(GtidState::Mariadb(s.parse().expect("gtid list"))), ..Position::default() }
    }

    fn file(name: &str, pos: u64) -> Position {
        Position { gtid: None, binlog_file: name.to_string(), binlog_pos: pos }
    }

    fn cmp(a: &Position, b: &Position) -> Option<Ordering> {
        a.try_partial_cmp(b).unwrap_or_else(|e| panic!("{a} vs {b}: {e}"))
    }

    #[test]
    fn parse_for_config_detects_flavour() {
        assert!(matches!(GtidState::parse_for_config(&format!("{U1}:1-5")), Ok(GtidState::Mysql(_))));
        assert!(matches!(GtidState::parse_for_config("0-1-100,1-2-3"), Ok(GtidState::Mariadb(_))));
        let e = GtidState::parse_for_config(" \n").expect_err("empty").to_string();
        assert!(e.contains("empty"), "{e}");
        let e = GtidState::parse_for_config(U1).expect_err("bare uuid").to_string();
        assert!(e.contains("is not a MariaDB GTID") && e.contains("MySQL GTID set looks like"), "{e}");
        let g = GtidState::parse_for_config(&format!("{U1}:1-5")).expect("parse");
        assert_eq!(g.to_string(), format!("{U1}:1-5"));
        assert_eq!(g.flavor(), "mysql");
    }

    #[test]
    fn mysql_gtid_ordering() {
        let a = mysql(&format!("{U1}:1-5"));
        let b = mysql(&format!("{U1}:1-9"));
        let c = mysql(&format!("{U1}:1-5,{U2}:1"));
        assert_eq!(cmp(&a, &b), Some(Ordering::Less));
        assert_eq!(cmp(&b, &a), Some(Ordering::Greater));
        assert_eq!(cmp(&a, &a), Some(Ordering::Equal));
        assert_eq!(cmp(&b, &c), None); // diverged: each has something the other lacks
                                       // files are ignored when GTIDs decide; equal sets are equal even with different files
        let mut a_file = a.clone();
        a_file.binlog_file = "mysql-bin.000009".into();
        let mut a_other_file = a.clone();
        a_other_file.binlog_file = "other-bin.000001".into();
        assert_eq!(cmp(&a_file, &a_other_file), Some(Ordering::Equal));
    }

    #[test]
    fn mariadb_gtid_ordering() {
        let a = mariadb("0-1-100");
        let b = mariadb("0-2-150,1-1-3");
        let c = mariadb("0-1-200");
        assert_eq!(cmp(&a, &b), Some(Ordering::Less));
        assert_eq!(cmp(&b, &a), Some(Ordering::Greater));
        assert_eq!(cmp(&b, &c), None);
        assert_eq!(cmp(&mariadb("0-1-5"), &mariadb("0-2-5")), Some(Ordering::Equal));
    }

    #[test]
    fn file_pos_ordering() {
        assert_eq!(cmp(&file("mysql-bin.000003", 10), &file("mysql-bin.000003", 20)), Some(Ordering::Less));
        assert_eq!(cmp(&file("mysql-bin.000004", 4), &file("mysql-bin.000003", 900)), Some(Ordering::Greater));
        // numeric, not lexicographic, extension comparison
        assert_eq!(cmp(&file("mysql-bin.999999", 4), &file("mysql-bin.1000000", 4)), Some(Ordering::Less));
        assert_eq!(cmp(&file("odd-name", 4), &file("odd-name", 9)), Some(Ordering::Less));
        // different flavours but both have files: file/pos decides
        let mut m = mysql(&format!("{U1}:1"));
        m.binlog_file = "mysql-bin.000001".into();
        m.binlog_pos = 100;
        let mut d = mariadb("0-1-1");
        d.binlog_file = "mysql-bin.000001".into();
        d.binlog_pos = 50;
        assert_eq!(cmp(&m, &d), Some(Ordering::Greater));
        // GTID on one side only: file/pos decides
        assert_eq!(cmp(&file("mysql-bin.000001", 50), &m), Some(Ordering::Less));
    }

    #[test]
    fn incomparable_is_an_error() {
        let cases = [
            (mysql(&format!("{U1}:1")), mariadb("0-1-1")),
            (mysql(&format!("{U1}:1")), file("mysql-bin.000001", 4)),
            (file("mysql-bin.000001", 4), file("relay-bin.000001", 4)),
            (file("odd-name", 4), file("other-name", 4)),
            (Position::default(), file("mysql-bin.000001", 4)),
            (Position::default(), mysql(&format!("{U1}:1"))),
        ];
        for (a, b) in cases {
            for (x, y) in [(&a, &b), (&b, &a)] {
                match x.try_partial_cmp(y) {
                    Err(e @ PositionError::Incomparable { .. }) => {
                        let msg = e.to_string();
                        assert!(msg.contains(&x.to_string()) && msg.contains(&y.to_string()), "{msg}");
                    }
                    other => panic!("{x} vs {y}: expected Incomparable, got {other:?}"),
                }
            }
        }
        assert_eq!(cmp(&Position::default(), &Position::default()), Some(Ordering::Equal));
    }

    #[test]
    fn binlog_file_pos_string_round_trip() {
        let p = file("mysql-bin.000003", 1234);
        assert_eq!(p.binlog_file_pos_string(), "mysql-bin.000003//dtle//1234");
        assert_eq!(
            Position::parse_binlog_file_pos(&p.binlog_file_pos_string()).expect("parse"),
            ("mysql-bin.000003".to_string(), 1234)
        );
        assert_eq!(Position::default().binlog_file_pos_string(), "");
        assert_eq!(Position::parse_binlog_file_pos("").expect("empty"), (String::new(), 0));
        assert_eq!(Position::parse_binlog_file_pos(" bin.1//dtle//4\n").expect("trim"), ("bin.1".to_string(), 4));
        for (bad, piece) in [
            ("mysql-bin.000003:1234", "separator is missing"),
            ("//dtle//4", "file name is empty"),
            ("mysql-bin.000003//dtle//x", "\"x\" is not a binlog position number"),
            ("mysql-bin.000003//dtle//", "\"\" is not a binlog position number"),
        ] {
            let msg = Position::parse_binlog_file_pos(bad).expect_err(bad).to_string();
            assert!(msg.contains(piece) && msg.contains(bad), "{msg}");
        }
    }

    #[test]
    fn serde_json_round_trip() {
        let mut m = mysql(&format!("{U1}:1-5:7,{U2}:3"));
        m.binlog_file = "mysql-bin.000003".into();
        m.binlog_pos = 1234;
        let cases =
            [m, mariadb("0-1-100,1-2-7"), file("mysql-bin.000001", 4), Position::default(), mysql(""), mariadb("")];
        for p in cases {
            let json = serde_json::to_string(&p).expect("serialize");
            let back: Position = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, p, "{json}");
        }
        let json = serde_json::to_value(mysql(&format!("{U1}:1-5"))).expect("value");
        assert_eq!(
            json,
            serde_json::json!({"gtid": format!("{U1}:1-5"), "flavor": "mysql", "binlog_file": "", "binlog_pos": 0})
        );
        let json = serde_json::to_value(file("b.1", 4)).expect("value");
        assert_eq!(json, serde_json::json!({"gtid": null, "flavor": null, "binlog_file": "b.1", "binlog_pos": 4}));
    }

    #[test]
    fn serde_json_leniency_and_errors() {
        let p: Position = serde_json::from_str(r#"{"gtid":"0-1-5"}"#).expect("no flavor");
        assert_eq!(p, mariadb("0-1-5"));
        let e = serde_json::from_str::<Position>(r#"{"gtid":"0-1-5","flavor":"oracle"}"#)
            .expect_err("bad flavor")
            .to_string();
        assert!(e.contains("\"oracle\""), "{e}");
        let e =
            serde_json::from_str::<Position>(r#"{"gtid":"abc:1","flavor":"mysql"}"#).expect_err("bad gtid").to_string();
        assert!(e.contains("\"abc\" is not a server UUID"), "{e}");
        let e = serde_json::from_str::<Position>(r#"{"gtid":"0-1-5","flavor":"mysql"}"#)
            .expect_err("flavor mismatch")
            .to_string();
        assert!(e.contains("0-1-5"), "{e}");
    }
}
