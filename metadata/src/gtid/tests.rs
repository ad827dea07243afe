use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
const U2: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429562";

fn uuid(s: &str) -> [u8; 16] {
    parse_uuid(s).expect("test uuid")
}

fn set(s: &str) -> MysqlGtidSet {
    s.parse().unwrap_or_else(|e| panic!("parse {s:?} failed: {e}"))
}

fn parse_err(s: &str) -> String {
    match s.parse::<MysqlGtidSet>() {
        Ok(v) => panic!("{s:?} parsed to {v}, expected an error"),
        Err(e) => e.to_string(),
    }
}

/// (uuid text, tag, intervals) rows of a set.
type Rows = Vec<(String, String, Vec<(u64, u64)>)>;

fn intervals(s: &MysqlGtidSet) -> Rows {
    s.iter().map(|(u, t, iv)| (format_uuid(&u), t.to_string(), iv.to_vec())).collect()
}

// ---------- uuid ----------

#[test]
fn uuid_round_trip_and_forms() {
    let u = uuid("3E11FA47-71CA-11E1-9E33-C80AA9429562");
    assert_eq!(format_uuid(&u), U1);
    assert_eq!(u[0], 0x3e);
    assert_eq!(u[15], 0x62);
    assert_eq!(uuid("3E11FA4771CA11E19E33C80AA9429562"), u);
    assert_eq!(uuid("  3e11fa47-71ca-11e1-9e33-c80aa9429562\n"), u);
    for bad in [
        "",
        "3e11fa47-71ca-11e1-9e33-c80aa942956",
        "3e11fa47-71ca-11e1-9e33-c80aa942956g",
        "3e11fa4771ca-11e1-9e33-c80aa9429562-",
        "3e11fa47-71ca-11e1-9e33_c80aa9429562",
        "é1fa47-71ca-11e1-9e33-c80aa9429562é",
    ] {
        let e = parse_uuid(bad).expect_err(bad).to_string();
        assert!(e.contains("not a server UUID"), "{e}");
    }
}

// ---------- parse / format ----------

#[test]
fn empty_inputs_give_empty_set() {
    for s in ["", "   ", "\n", ",", " , \n,"] {
        let parsed = set(s);
        assert!(parsed.is_empty(), "{s:?}");
        assert_eq!(parsed.to_string(), "");
        assert_eq!(parsed.to_multiline_string(), "");
    }
}

#[test]
fn canonical_format() {
    let s = set("4E11FA47-71CA-11E1-9E33-C80AA9429562:3:1-2, 3E11FA47-71CA-11E1-9E33-C80AA9429562:7-9:1-5:11");
    assert_eq!(s.to_string(), format!("{U1}:1-5:7-9:11,{U2}:1-3"));
    assert_eq!(s.to_multiline_string(), format!("{U1}:1-5:7-9:11,\n{U2}:1-3"));
    assert_eq!(set(&s.to_string()), s);
    assert_eq!(set(&s.to_multiline_string()), s);
}

#[test]
fn multiline_input_as_mysql_prints_it() {
    let text = format!("{U1}:1-143934,\n{U2}:1-10:12-20\n");
    let s = set(&text);
    assert_eq!(
        intervals(&s),
        vec![
            (U1.to_string(), String::new(), vec![(1, 143934)]),
            (U2.to_string(), String::new(), vec![(1, 10), (12, 20)]),
        ]
    );
    // whitespace anywhere, even inside pieces
    let spaced = format!(" {} : 1 - 143934 ,\r\n\t{U2}:1-10 : 12-20 ", U1.to_uppercase());
    assert_eq!(set(&spaced), s);
}

#[test]
fn parse_merges_adjacent_overlapping_and_repeated() {
    let s = set(&format!("{U1}:1-3:4-6:5-10:20,{U1}:12-19:21,{U1}:11"));
    assert_eq!(s.to_string(), format!("{U1}:1-21"));
    let s = set(&format!("{U1}:5,{U1}:1-3,{U1}:3-4"));
    assert_eq!(s.to_string(), format!("{U1}:1-5"));
    let s = set(&format!("{U1}:10-20:1-30"));
    assert_eq!(s.to_string(), format!("{U1}:1-30"));
}

#[test]
fn add_merges_and_fills_gaps() {
    let u = uuid(U1);
    let mut s = MysqlGtidSet::new();
    s.add(u, "", 5);
    s.add(u, "", 7);
    assert_eq!(s.to_string(), format!("{U1}:5:7"));
    s.add(u, "", 6); // fills the gap, joins both
    assert_eq!(s.to_string(), format!("{U1}:5-7"));
    s.add(u, "", 4); // adjacent on the left
    s.add(u, "", 8); // adjacent on the right
    assert_eq!(s.to_string(), format!("{U1}:4-8"));
    s.add(u, "", 6); // already present
    assert_eq!(s.to_string(), format!("{U1}:4-8"));
    s.add(u, "", 1);
    s.add(u, "", 100);
    assert_eq!(s.to_string(), format!("{U1}:1:4-8:100"));
    s.add(u, "", 2);
    s.add(u, "", 3);
    assert_eq!(s.to_string(), format!("{U1}:1-8:100"));
    s.add(u, "", 0); // not a transaction number: ignored
    assert_eq!(s.to_string(), format!("{U1}:1-8:100"));
    s.add(u, "", u64::MAX);
    s.add(u, "", u64::MAX - 1);
    assert_eq!(s.to_string(), format!("{U1}:1-8:100:{}-{}", u64::MAX - 1, u64::MAX));
    assert!(s.contains(u, "", u64::MAX));
}

#[test]
fn contains_checks_uuid_tag_and_number() {
    let s = set(&format!("{U1}:1-5:10,{U2}:blue:3"));
    let (u1, u2) = (uuid(U1), uuid(U2));
    for n in [1, 3, 5, 10] {
        assert!(s.contains(u1, "", n), "{n}");
    }
    for n in [0, 6, 9, 11, u64::MAX] {
        assert!(!s.contains(u1, "", n), "{n}");
    }
    assert!(!s.contains(u2, "", 3));
    assert!(s.contains(u2, "blue", 3));
    assert!(s.contains(u2, "BLUE", 3));
    assert!(!s.contains(u2, "red", 3));
    assert!(!s.contains(u1, "blue", 3));
}

#[test]
fn union_merges() {
    let mut a = set(&format!("{U1}:1-5:20-30"));
    let b = set(&format!("{U1}:6-10:25-40,{U2}:7"));
    a.union(&b);
    assert_eq!(a.to_string(), format!("{U1}:1-10:20-40,{U2}:7"));
    let before = a.clone();
    a.union(&MysqlGtidSet::new());
    assert_eq!(a, before);
    let mut empty = MysqlGtidSet::new();
    empty.union(&before);
    assert_eq!(empty, before);
}

#[test]
fn subset() {
    let small = set(&format!("{U1}:2-4:8"));
    let big = set(&format!("{U1}:1-5:7-9,{U2}:1"));
    assert!(small.is_subset_of(&big));
    assert!(!big.is_subset_of(&small));
    assert!(MysqlGtidSet::new().is_subset_of(&small));
    assert!(big.is_subset_of(&big));
    // spans a gap of the other set: not a subset
    assert!(!set(&format!("{U1}:4-7")).is_subset_of(&big));
    // other uuid missing
    assert!(!set(&format!("{U2}:1")).is_subset_of(&small));
    // tag matters
    assert!(!set(&format!("{U1}:t:2")).is_subset_of(&big));
}

#[test]
fn subtract() {
    let a = set(&format!("{U1}:1-20:30-40,{U2}:1-5"));
    let b = set(&format!("{U1}:3-4:10:18-35,{U2}:1-5"));
    assert_eq!(a.subtract(&b).to_string(), format!("{U1}:1-2:5-9:11-17:36-40"));
    assert_eq!(a.subtract(&MysqlGtidSet::new()), a);
    assert!(a.subtract(&a).is_empty());
    assert!(MysqlGtidSet::new().subtract(&a).is_empty());
    // dtle's GtidStart: executed − start point
    let executed = set(&format!("{U1}:1-100"));
    let start = set(&format!("{U1}:1-57"));
    assert_eq!(executed.subtract(&start).to_string(), format!("{U1}:58-100"));
}

#[test]
fn intersection() {
    let a = set(&format!("{U1}:1-10:20-30,{U2}:1"));
    let b = set(&format!("{U1}:5-25,{U2}:2"));
    assert_eq!(a.intersection(&b).to_string(), format!("{U1}:5-10:20-25"));
    assert!(a.intersection(&MysqlGtidSet::new()).is_empty());
}

#[test]
fn tagged_gtids() {
    let text = format!("{U1}:1-5:Domestic:1-3:alpha:7,{U1}:domestic:4,{U2}:_x1:9");
    let s = set(&text);
    assert_eq!(s.to_string(), format!("{U1}:1-5:alpha:7:domestic:1-4,{U2}:_x1:9"));
    assert_eq!(
        intervals(&s),
        vec![
            (U1.to_string(), String::new(), vec![(1, 5)]),
            (U1.to_string(), "alpha".to_string(), vec![(7, 7)]),
            (U1.to_string(), "domestic".to_string(), vec![(1, 4)]),
            (U2.to_string(), "_x1".to_string(), vec![(9, 9)]),
        ]
    );
    assert_eq!(set(&s.to_string()), s);
    let mut built = MysqlGtidSet::new();
    built.add(uuid(U1), "Alpha", 7);
    assert!(built.is_subset_of(&s));
    assert!(s.contains(uuid(U1), "domestic", 4));
    assert!(!s.contains(uuid(U1), "", 7));
    // tag only, as the spec example
    assert_eq!(set(&format!("{U1}:tag:1-3")).to_string(), format!("{U1}:tag:1-3"));
}

#[test]
fn bad_inputs_name_the_bad_piece() {
    let cases: Vec<(String, &str)> = vec![
        ("abc:x".into(), "\"abc\" is not a server UUID"),
        (format!("{U1}:1-x"), "\"1-x\" is not a transaction number or range"),
        (format!("{U1}:1-5:7-"), "\"7-\" is not a transaction number or range"),
        (format!("{U1}:1--5"), "\"1--5\" is not a transaction number or range"),
        (format!("{U1}:99999999999999999999"), "\"99999999999999999999\" is not a transaction number"),
        (format!("{U1}:0-5"), "\"0-5\": transaction number 0 does not exist"),
        (format!("{U1}:9-3"), "range \"9-3\" ends before it starts"),
        (format!("{U1}:x"), "\"x\" in \"3e11fa47-71ca-11e1-9e33-c80aa9429562:x\" is not a transaction number or range"),
        (format!("{U1}:1:tag"), "\"tag\" in"),
        (format!("{U1}:a:b:1"), "\"a\" in"),
        (format!("{U1}:-5"), "\"-5\" in"),
        (format!("{U1}:t-x:1"), "\"t-x\" in"),
        (format!("{U1}:{}:1", "t".repeat(33)), "is neither a transaction number or range nor a GTID tag"),
        (format!("{U1}::1"), "has an empty part"),
        (format!("{U1}:1:"), "has an empty part"),
        (U1.to_string(), "has no transaction numbers"),
        (format!("{U1}:1,{U2}"), "\"4e11fa47-71ca-11e1-9e33-c80aa9429562\" has no transaction numbers"),
        (format!("{U1}:1;{U2}:2"), "is not a transaction number or range"),
    ];
    for (input, expected) in cases {
        let msg = parse_err(&input);
        assert!(msg.contains(expected), "input {input:?}: message {msg:?} does not contain {expected:?}");
        assert!(msg.contains("expected"), "input {input:?}: message {msg:?} has no example");
    }
}

#[test]
fn error_quotes_input() {
    let msg = parse_err("abc:x");
    assert!(msg.starts_with("invalid position \"abc:x\""), "{msg}");
    assert!(msg.contains("3E11FA47-71CA-11E1-9E33-C80AA9429562"), "{msg}");
}

// ---------- MariaDB ----------

fn mlist(s: &str) -> MariadbGtidList {
    s.parse().unwrap_or_else(|e| panic!("parse {s:?} failed: {e}"))
}

#[test]
fn mariadb_parse_format() {
    let l = mlist(" 1-2-7 ,\n0-1-100");
    assert_eq!(l.to_string(), "0-1-100,1-2-7");
    assert_eq!(mlist(&l.to_string()), l);
    assert_eq!(l.get(0), Some((1, 100)));
    assert_eq!(l.get(1), Some((2, 7)));
    assert_eq!(l.get(2), None);
    assert_eq!(l.iter().collect::<Vec<_>>(), vec![(0, 1, 100), (1, 2, 7)]);
    assert!(mlist("").is_empty());
    assert!(mlist(" , ").is_empty());
    assert_eq!(mlist("").to_string(), "");
    let big = mlist("4294967295-4294967295-18446744073709551615");
    assert_eq!(big.get(u32::MAX), Some((u32::MAX, u64::MAX)));
}

#[test]
fn mariadb_update_and_contains() {
    let mut l = MariadbGtidList::new();
    assert!(!l.contains(0, 1));
    l.update(0, 1, 100);
    assert!(l.contains(0, 100));
    assert!(l.contains(0, 5));
    assert!(!l.contains(0, 101));
    assert!(!l.contains(1, 1));
    l.update(0, 2, 101);
    assert_eq!(l.get(0), Some((2, 101)));
    assert!(l.contains(0, 101));
    l.update(3, 1, 1);
    assert_eq!(l.to_string(), "0-2-101,3-1-1");
}

#[test]
fn mariadb_is_reached_by() {
    let a = mlist("0-1-100,1-2-7");
    assert!(a.is_reached_by(&a));
    assert!(a.is_reached_by(&mlist("0-1-100,1-2-8,2-1-1")));
    assert!(a.is_reached_by(&mlist("0-9-200,1-9-7"))); // server id does not matter
    assert!(!a.is_reached_by(&mlist("0-1-99,1-2-8")));
    assert!(!a.is_reached_by(&mlist("0-1-100"))); // domain 1 missing
    assert!(MariadbGtidList::new().is_reached_by(&a));
    assert!(!a.is_reached_by(&MariadbGtidList::new()));
}

#[test]
fn mariadb_bad_inputs() {
    let cases = [
        ("0-1-100,0-2-7", "domain 0 appears twice (\"0-1-100\" and \"0-2-7\")"),
        ("0-1", "\"0-1\" is not a MariaDB GTID"),
        ("0-1-2-3", "\"0-1-2-3\" is not a MariaDB GTID"),
        ("x-1-2", "domain \"x\" in \"x-1-2\""),
        ("0-y-2", "server id \"y\" in \"0-y-2\""),
        ("0-1-z", "sequence number \"z\" in \"0-1-z\""),
        ("4294967296-1-2", "domain \"4294967296\""),
        ("0--1-2", "\"0--1-2\" is not a MariaDB GTID"),
        ("0-1-2;1-1-1", "\"0-1-2;1-1-1\" is not a MariaDB GTID"),
    ];
    for (input, expected) in cases {
        let msg = input.parse::<MariadbGtidList>().expect_err(input).to_string();
        assert!(msg.contains(expected), "{input:?}: {msg:?} lacks {expected:?}");
        assert!(msg.contains("expected") || msg.contains("keep only"), "{msg}");
    }
}

// ---------- property tests against a model ----------

type Model = BTreeSet<(u8, u8, u64)>;

const UUIDS: [&str; 3] = [U1, U2, "00000000-0000-0000-0000-0000000000ff"];
const TAGS: [&str; 3] = ["", "a", "blue"];

fn gno_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 1u64..60,
        1 => (u64::MAX - 5)..=u64::MAX,
    ]
}

fn model_strategy() -> impl Strategy<Value = Model> {
    proptest::collection::btree_set((0u8..3, 0u8..3, gno_strategy()), 0..60)
}

fn build(model: &Model) -> MysqlGtidSet {
    let mut s = MysqlGtidSet::new();
    for &(u, t, g) in model {
        s.add(uuid(UUIDS[usize::from(u)]), TAGS[usize::from(t)], g);
    }
    s
}

fn to_model(s: &MysqlGtidSet) -> Model {
    let mut m = Model::new();
    for (u, t, list) in s.iter() {
        let ui = UUIDS.iter().position(|x| uuid(x) == u).expect("known uuid") as u8;
        let ti = TAGS.iter().position(|x| *x == t).expect("known tag") as u8;
        for &(a, b) in list {
            assert!(b - a < 1000, "interval too long for the model");
            for g in a..=b {
                m.insert((ui, ti, g));
            }
        }
    }
    m
}

/// Sorted, start <= end, start >= 1, non-overlapping and non-adjacent, no empty lists.
fn assert_normalized(s: &MysqlGtidSet) {
    for (_, _, list) in s.iter() {
        assert!(!list.is_empty());
        for &(a, b) in list {
            assert!(a >= 1 && a <= b, "{list:?}");
        }
        for w in list.windows(2) {
            assert!(w[1].0 > w[0].1.saturating_add(1), "not normalized: {list:?}");
        }
    }
}

proptest! {
    #[test]
    fn prop_display_parse_round_trip(m in model_strategy()) {
        let a = build(&m);
        assert_normalized(&a);
        prop_assert_eq!(to_model(&a), m);
        prop_assert_eq!(&set(&a.to_string()), &a);
        prop_assert_eq!(&set(&a.to_multiline_string()), &a);
    }

    #[test]
    fn prop_add_then_contains(m in model_strategy(), u in 0u8..3, t in 0u8..3, g in gno_strategy()) {
        let mut a = build(&m);
        let (uu, tt) = (uuid(UUIDS[usize::from(u)]), TAGS[usize::from(t)]);
        a.add(uu, tt, g);
        assert_normalized(&a);
        prop_assert!(a.contains(uu, tt, g));
        let mut expected = m.clone();
        expected.insert((u, t, g));
        prop_assert_eq!(to_model(&a), expected);
    }

    #[test]
    fn prop_set_operations_match_model(ma in model_strategy(), mb in model_strategy()) {
        let (a, b) = (build(&ma), build(&mb));

        let mut u = a.clone();
        u.union(&b);
        assert_normalized(&u);
        prop_assert_eq!(to_model(&u), ma.union(&mb).copied().collect::<Model>());
        prop_assert!(a.is_subset_of(&u));
        prop_assert!(b.is_subset_of(&u));

        let d = a.subtract(&b);
        assert_normalized(&d);
        prop_assert_eq!(to_model(&d), ma.difference(&mb).copied().collect::<Model>());

        let i = a.intersection(&b);
        assert_normalized(&i);
        prop_assert_eq!(to_model(&i), ma.intersection(&mb).copied().collect::<Model>());

        // (A − B) ∪ (A ∩ B) == A, and (A − B) shares nothing with B
        let mut rebuilt = d.clone();
        rebuilt.union(&i);
        prop_assert_eq!(&rebuilt, &a);
        prop_assert!(d.intersection(&b).is_empty());

        prop_assert_eq!(a.is_subset_of(&b), ma.is_subset(&mb));
        prop_assert_eq!(a.is_subset_of(&b), a.subtract(&b).is_empty());
    }

    #[test]
    fn prop_contains_matches_model(m in model_strategy(), u in 0u8..3, t in 0u8..3, g in gno_strategy()) {
        let a = build(&m);
        prop_assert_eq!(
            a.contains(uuid(UUIDS[usize::from(u)]), TAGS[usize::from(t)], g),
            m.contains(&(u, t, g))
        );
    }

    #[test]
    fn prop_parse_never_panics(s in "[0-9a-fA-F:,\\-tg \n]{0,80}") {
        let _ = s.parse::<MysqlGtidSet>();
        let _ = s.parse::<MariadbGtidList>();
    }

    #[test]
    fn prop_mariadb_round_trip(entries in proptest::collection::btree_map(any::<u32>(), (any::<u32>(), any::<u64>()), 0..8)) {
        let mut l = MariadbGtidList::new();
        for (d, (s, q)) in &entries {
            l.update(*d, *s, *q);
        }
        prop_assert_eq!(&mlist(&l.to_string()), &l);
        prop_assert!(l.is_reached_by(&l));
    }
}
