//! GTID positions: [`MysqlGtidSet`] (MySQL/Percona, including MySQL 8.4 tagged GTIDs) and
//! [`MariadbGtidList`] (MariaDB's one-GTID-per-domain position).

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::PositionError;

/// Example shown in MySQL GTID set error messages.
const MYSQL_EXAMPLE: &str = "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5";
/// Example shown in MariaDB GTID list error messages.
const MARIADB_EXAMPLE: &str = "0-1-100,1-2-7";
/// Longest tag MySQL 8.4 accepts.
const MAX_TAG_LEN: usize = 32;

/// Formats a server UUID in MySQL's lowercase `8-4-4-4-12` form.
pub fn format_uuid(uuid: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, byte) in uuid.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(hex_digit(byte >> 4));
        out.push(hex_digit(byte & 0x0f));
    }
    out
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

/// Parses a server UUID: `8-4-4-4-12` hex groups or 32 hex digits without dashes, any case.
pub fn parse_uuid(s: &str) -> Result<[u8; 16], PositionError> {
    parse_uuid_bytes(s.trim()).ok_or_else(|| PositionError::parse(s, uuid_reason(s.trim())))
}

fn uuid_reason(piece: &str) -> String {
    format!(
        "{piece:?} is not a server UUID (expected 32 hex digits in 8-4-4-4-12 groups, e.g. \
         3E11FA47-71CA-11E1-9E33-C80AA9429562)"
    )
}

fn parse_uuid_bytes(s: &str) -> Option<[u8; 16]> {
    let bytes = s.as_bytes();
    let digits: Vec<u8> = match bytes.len() {
        36 => {
            for (i, b) in bytes.iter().enumerate() {
                let dash_here = matches!(i, 8 | 13 | 18 | 23);
                if dash_here != (*b == b'-') {
                    return None;
                }
            }
            bytes.iter().copied().filter(|b| *b != b'-').collect()
        }
        32 => bytes.to_vec(),
        _ => return None,
    };
    let mut out = [0u8; 16];
    for (slot, pair) in out.iter_mut().zip(digits.chunks(2)) {
        let (hi, lo) = match pair {
            [hi, lo] => (hex_value(*hi)?, hex_value(*lo)?),
            _ => return None,
        };
        *slot = (hi << 4) | lo;
    }
    Some(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// (server UUID, lowercase tag or "") identifying one GTID source within a set.
type SourceKey = ([u8; 16], String);
/// Inclusive range of transaction numbers.
type Interval = (u64, u64);

/// A MySQL GTID set: source UUID -> sorted, non-overlapping, non-adjacent inclusive intervals of
/// transaction numbers.
/// Also supports MySQL 8.4 tagged GTIDs ("uuid:tag:1-5"): key is (uuid, tag) where tag is "" when untagged.
///
/// Transaction number 0 does not exist in MySQL: [`MysqlGtidSet::add`] ignores it and parsing rejects it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MysqlGtidSet {
    /// Invariant: no empty interval lists; each list sorted, `start <= end`, `start >= 1`, and
    /// `next.start > prev.end + 1` (no overlap, no adjacency). Tags are lowercase.
    sets: BTreeMap<SourceKey, Vec<Interval>>,
}

impl MysqlGtidSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Adds one transaction, merging it with neighbouring intervals. `tag` is "" for untagged GTIDs and is
    /// stored lowercase. `gno` 0 (not a valid transaction number) is ignored.
    pub fn add(&mut self, uuid: [u8; 16], tag: &str, gno: u64) {
        self.add_interval(uuid, tag, gno, gno);
    }

    fn add_interval(&mut self, uuid: [u8; 16], tag: &str, start: u64, end: u64) {
        let start = start.max(1);
        if end < start {
            return;
        }
        let list = self.sets.entry((uuid, tag.to_ascii_lowercase())).or_default();
        insert_interval(list, start, end);
    }

    pub fn contains(&self, uuid: [u8; 16], tag: &str, gno: u64) -> bool {
        self.intervals(uuid, tag).is_some_and(|list| covers(list, gno, gno))
    }

    fn intervals(&self, uuid: [u8; 16], tag: &str) -> Option<&Vec<(u64, u64)>> {
        if tag.bytes().any(|b| b.is_ascii_uppercase()) {
            self.sets.get(&(uuid, tag.to_ascii_lowercase()))
        } else {
            self.sets.get(&(uuid, tag.to_string()))
        }
    }

    /// Adds every transaction of `other` to `self`.
    pub fn union(&mut self, other: &MysqlGtidSet) {
        for (key, theirs) in &other.sets {
            match self.sets.entry(key.clone()) {
                Entry::Vacant(slot) => {
                    slot.insert(theirs.clone());
                }
                Entry::Occupied(mut slot) => {
                    let merged = merge_intervals(slot.get(), theirs);
                    *slot.get_mut() = merged;
                }
            }
        }
    }

    /// `true` when every transaction of `self` is in `other` (the empty set is a subset of everything).
    pub fn is_subset_of(&self, other: &MysqlGtidSet) -> bool {
        self.sets.iter().all(|(key, mine)| match other.sets.get(key) {
            None => false,
            Some(theirs) => mine.iter().all(|&(s, e)| covers(theirs, s, e)),
        })
    }

    /// `self − other`: the transactions of `self` that are not in `other`.
    pub fn subtract(&self, other: &MysqlGtidSet) -> MysqlGtidSet {
        let mut sets = BTreeMap::new();
        for (key, mine) in &self.sets {
            let rest = match other.sets.get(key) {
                None => mine.clone(),
                Some(theirs) => subtract_intervals(mine, theirs),
            };
            if !rest.is_empty() {
                sets.insert(key.clone(), rest);
            }
        }
        MysqlGtidSet { sets }
    }

    /// `self ∩ other`: the transactions present in both sets.
    pub fn intersection(&self, other: &MysqlGtidSet) -> MysqlGtidSet {
        let mut sets = BTreeMap::new();
        for (key, mine) in &self.sets {
            if let Some(theirs) = other.sets.get(key) {
                let both = intersect_intervals(mine, theirs);
                if !both.is_empty() {
                    sets.insert(key.clone(), both);
                }
            }
        }
        MysqlGtidSet { sets }
    }

    /// (uuid bytes, tag, inclusive intervals) for building COM_BINLOG_DUMP_GTID requests.
    /// Ordered by uuid, then tag ("" first); intervals ascending.
    pub fn iter(&self) -> impl Iterator<Item = ([u8; 16], &str, &[(u64, u64)])> {
        self.sets.iter().map(|((uuid, tag), list)| (*uuid, tag.as_str(), list.as_slice()))
    }

    /// MySQL's multi-line form ("uuid:1-5,\nuuid2:1-3"), as SELECT @@gtid_executed prints it.
    pub fn to_multiline_string(&self) -> String {
        self.format_with(",\n")
    }

    /// One element per uuid ("uuid:1-5:tag:1-3"), elements joined by `separator`.
    fn format_with(&self, separator: &str) -> String {
        let mut out = String::new();
        let mut current: Option<[u8; 16]> = None;
        for ((uuid, tag), list) in &self.sets {
            if current != Some(*uuid) {
                if current.is_some() {
                    out.push_str(separator);
                }
                out.push_str(&format_uuid(uuid));
                current = Some(*uuid);
            }
            if !tag.is_empty() {
                out.push(':');
                out.push_str(tag);
            }
            for &(start, end) in list {
                out.push(':');
                out.push_str(&start.to_string());
                if end != start {
                    out.push('-');
                    out.push_str(&end.to_string());
                }
            }
        }
        out
    }
}

/// Inserts `[start, end]` into a normalized list, merging overlapping and adjacent intervals.
fn insert_interval(list: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    // First interval that overlaps or touches [start, end] from the left...
    let first = list.partition_point(|&(_, e)| e.saturating_add(1) < start);
    // ...and the end of the run of intervals that overlap or touch it from the right.
    let last = list.partition_point(|&(s, _)| s <= end.saturating_add(1));
    if first < last {
        let merged_start = start.min(list[first].0);
        let merged_end = end.max(list[last - 1].1);
        list.splice(first..last, [(merged_start, merged_end)]);
    } else {
        list.insert(first, (start, end));
    }
}

/// `true` when `[start, end]` lies inside one interval of the normalized `list`.
fn covers(list: &[(u64, u64)], start: u64, end: u64) -> bool {
    let after = list.partition_point(|&(s, _)| s <= start);
    after > 0 && list[after - 1].1 >= end
}

fn merge_intervals(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let next = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.0 <= y.0 => {
                i += 1;
                *x
            }
            (_, Some(y)) => {
                j += 1;
                *y
            }
            (Some(x), None) => {
                i += 1;
                *x
            }
            (None, None) => break,
        };
        match out.last_mut() {
            Some(last) if next.0 <= last.1.saturating_add(1) => last.1 = last.1.max(next.1),
            _ => out.push(next),
        }
    }
    out
}

fn subtract_intervals(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut j = 0;
    for &(start, end) in a {
        // Intervals of b entirely before this one cannot affect it or any later one.
        while j < b.len() && b[j].1 < start {
            j += 1;
        }
        let mut cursor = Some(start);
        let mut k = j;
        while let (Some(cur), Some(&(bs, be))) = (cursor, b.get(k)) {
            if bs > end {
                break;
            }
            if bs > cur {
                out.push((cur, bs - 1));
            }
            cursor = if be >= end { None } else { Some(be + 1) };
            k += 1;
        }
        if let Some(cur) = cursor {
            out.push((cur, end));
        }
    }
    out
}

fn intersect_intervals(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while let (Some(&(as_, ae)), Some(&(bs, be))) = (a.get(i), b.get(j)) {
        let lo = as_.max(bs);
        let hi = ae.min(be);
        if lo <= hi {
            out.push((lo, hi));
        }
        if ae < be {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

fn is_valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    tag.len() <= MAX_TAG_LEN && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses "N" or "N-M" (N >= 1, M >= N).
fn parse_interval(text: &str) -> Result<(u64, u64), String> {
    let not_a_number = || format!("{text:?} is not a transaction number or range (expected e.g. {MYSQL_EXAMPLE})");
    let (start, end) = match text.split_once('-') {
        None => {
            let n = text.parse::<u64>().map_err(|_| not_a_number())?;
            (n, n)
        }
        Some((s, e)) => (s.parse::<u64>().map_err(|_| not_a_number())?, e.parse::<u64>().map_err(|_| not_a_number())?),
    };
    if start == 0 {
        return Err(format!(
            "{text:?}: transaction number 0 does not exist (numbers start at 1; expected e.g. {MYSQL_EXAMPLE})"
        ));
    }
    if end < start {
        return Err(format!(
            "range {text:?} ends before it starts (write the smaller number first; expected e.g. {MYSQL_EXAMPLE})"
        ));
    }
    Ok((start, end))
}

impl FromStr for MysqlGtidSet {
    type Err = PositionError;

    /// Accepts "", whitespace and newlines anywhere, "uuid:1-5:7-9,uuid2:1", upper/lower hex, repeated uuids
    /// (merged), tagged GTIDs ("uuid:tag:1-3" and "uuid:1-5:tag:1-3"), and empty elements between commas.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let compact: String = input.chars().filter(|c| !c.is_whitespace()).collect();
        let mut set = MysqlGtidSet::new();
        for element in compact.split(',').filter(|e| !e.is_empty()) {
            parse_element(element, &mut set).map_err(|reason| PositionError::parse(input, reason))?;
        }
        Ok(set)
    }
}

/// Parses one "uuid[:interval...][:tag:interval...]..." element into `set`.
fn parse_element(element: &str, set: &mut MysqlGtidSet) -> Result<(), String> {
    let mut parts = element.split(':');
    let uuid_text = parts.next().unwrap_or_default();
    let uuid = parse_uuid_bytes(uuid_text).ok_or_else(|| uuid_reason(uuid_text))?;
    let mut tag = String::new();
    // Intervals seen since the uuid or the last tag: a tag must be followed by at least one.
    let mut intervals_since_key = 0usize;
    let mut any_interval = false;
    for part in parts {
        if part.is_empty() {
            return Err(format!(
                "{element:?} has an empty part between ':' separators (expected e.g. {MYSQL_EXAMPLE})"
            ));
        }
        if part.starts_with(|c: char| c.is_ascii_digit()) {
            let (start, end) = parse_interval(part)?;
            set.add_interval(uuid, &tag, start, end);
            intervals_since_key += 1;
            any_interval = true;
        } else {
            if !tag.is_empty() && intervals_since_key == 0 {
                return Err(tag_without_numbers(&tag, element));
            }
            if !is_valid_tag(part) {
                return Err(format!(
                    "{part:?} in {element:?} is neither a transaction number or range nor a GTID tag \
                     (a tag is 1-{MAX_TAG_LEN} letters, digits or '_' starting with a letter or '_'; \
                     expected e.g. {MYSQL_EXAMPLE} or {MYSQL_EXAMPLE}:mytag:1-3)"
                ));
            }
            tag = part.to_ascii_lowercase();
            intervals_since_key = 0;
        }
    }
    if !tag.is_empty() && intervals_since_key == 0 {
        return Err(tag_without_numbers(&tag, element));
    }
    if !any_interval {
        return Err(format!("{element:?} has no transaction numbers (expected e.g. {MYSQL_EXAMPLE})"));
    }
    Ok(())
}

fn tag_without_numbers(tag: &str, element: &str) -> String {
    format!(
        "{tag:?} in {element:?} is not a transaction number or range, and as a GTID tag it has no \
         transaction numbers after it (expected e.g. {MYSQL_EXAMPLE} or {MYSQL_EXAMPLE}:{tag}:1-3)"
    )
}

impl fmt::Display for MysqlGtidSet {
    /// Canonical single line "uuid:1-5:7-9,uuid2:1": lowercase, sorted by uuid then tag, untagged intervals
    /// first ("uuid:1-5:tag:1-3"), single numbers without "-".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format_with(","))
    }
}

/// MariaDB GTID position: one entry per replication domain, "domain-server-seq" comma separated,
/// e.g. "0-1-100,1-2-7".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MariadbGtidList {
    domains: BTreeMap<u32, (u32, u64)>,
}

impl MariadbGtidList {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// (server_id, seq) of the domain's entry.
    pub fn get(&self, domain: u32) -> Option<(u32, u64)> {
        self.domains.get(&domain).copied()
    }

    /// Sets this domain's entry (last applied GTID of the domain).
    pub fn update(&mut self, domain: u32, server_id: u32, seq: u64) {
        self.domains.insert(domain, (server_id, seq));
    }

    /// true when a transaction with GTID domain-server-seq is already covered: same domain entry with
    /// seq >= given seq.
    pub fn contains(&self, domain: u32, seq: u64) -> bool {
        self.domains.get(&domain).is_some_and(|&(_, have)| have >= seq)
    }

    /// true when every domain of self is present in other with seq >= self's seq.
    pub fn is_reached_by(&self, other: &MariadbGtidList) -> bool {
        self.domains.iter().all(|(domain, &(_, seq))| other.contains(*domain, seq))
    }

    /// (domain, server_id, seq), ordered by domain.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32, u64)> + '_ {
        self.domains.iter().map(|(domain, &(server, seq))| (*domain, server, seq))
    }
}

fn parse_mariadb_gtid(piece: &str) -> Result<(u32, u32, u64), String> {
    let fields: Vec<&str> = piece.split('-').collect();
    let [domain, server, seq] = fields.as_slice() else {
        return Err(format!(
            "{piece:?} is not a MariaDB GTID (expected domain-server-sequence such as {MARIADB_EXAMPLE}; \
             a MySQL GTID set looks like {MYSQL_EXAMPLE})"
        ));
    };
    let number = |what: &str, text: &str, max: u64| -> Result<u64, String> {
        text.parse::<u64>().ok().filter(|n| *n <= max).ok_or_else(|| {
            format!(
                "{what} {text:?} in {piece:?} is not a number from 0 to {max} (expected \
                     domain-server-sequence such as {MARIADB_EXAMPLE})"
            )
        })
    };
    let domain = number("domain", domain, u64::from(u32::MAX))?;
    let server = number("server id", server, u64::from(u32::MAX))?;
    let seq = number("sequence number", seq, u64::MAX)?;
    // Both fit: checked against u32::MAX above.
    let domain = u32::try_from(domain).map_err(|e| e.to_string())?;
    let server = u32::try_from(server).map_err(|e| e.to_string())?;
    Ok((domain, server, seq))
}

impl FromStr for MariadbGtidList {
    type Err = PositionError;

    /// Accepts "", whitespace anywhere and empty elements between commas; a domain given twice is an error.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let compact: String = input.chars().filter(|c| !c.is_whitespace()).collect();
        let mut list = MariadbGtidList::new();
        for piece in compact.split(',').filter(|p| !p.is_empty()) {
            let (domain, server, seq) =
                parse_mariadb_gtid(piece).map_err(|reason| PositionError::parse(input, reason))?;
            if let Some((old_server, old_seq)) = list.get(domain) {
                return Err(PositionError::parse(
                    input,
                    format!(
                        "domain {domain} appears twice (\"{domain}-{old_server}-{old_seq}\" and {piece:?}); a \
                         MariaDB GTID position has one entry per domain, keep only the latest"
                    ),
                ));
            }
            list.update(domain, server, seq);
        }
        Ok(list)
    }
}

impl fmt::Display for MariadbGtidList {
    /// Canonical "domain-server-seq" entries sorted by domain, comma separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (domain, server, seq)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{domain}-{server}-{seq}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
