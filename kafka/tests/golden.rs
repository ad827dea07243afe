//! Golden files for the envelope: one per column type (`golden/type_*.json`: the field's Kafka Connect schema and
//! the JSON of each sample value, for every form the snapshot and the binlog decoder give that value), and one per
//! event shape (`golden/event_*.json`: whole messages, key and value). `driver/tests/e2e_kafka.rs` checks the same
//! type files against a real MariaDB and broker.
//!
//! `DTLE_UPDATE_GOLDEN=1 cargo test -p dtle-kafka --test golden` rewrites them; review the diff.

use std::path::PathBuf;
use std::sync::Arc;

use dtle_kafka::{DateTimeZone, Encoder, EnvelopeOptions, Record, Snapshot, SourceInfo};
use dtle_mysql::schema::{ColumnMeta, TableMeta};
use dtle_mysql::{RowChange, Value};
use serde_json::{json, Value as Json};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden")
}

/// Compares `actual` with the golden file (or writes it with DTLE_UPDATE_GOLDEN=1).
fn check_golden(name: &str, actual: &Json) {
    let path = golden_dir().join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var("DTLE_UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with DTLE_UPDATE_GOLDEN=1 to create it", path.display()));
    let expected: Json = serde_json::from_str(&expected).unwrap();
    assert_eq!(&expected, actual, "{} differs; actual:\n{text}", path.display());
}

fn opts() -> EnvelopeOptions {
    EnvelopeOptions {
        server_name: "dtle1".into(),
        topic_with_schema_table: true,
        schema_change_topic: "schema-changes.dtle1".into(),
        date_time_zone: DateTimeZone::Fixed(0),
    }
}

fn column(name: &str, data_type: &str, column_type: &str, charset: Option<&str>, nullable: bool) -> ColumnMeta {
    ColumnMeta {
        name: name.into(),
        data_type: data_type.into(),
        column_type: column_type.into(),
        unsigned: column_type.contains("unsigned"),
        nullable,
        generated: false,
        charset: charset.map(str::to_string),
        collation: None,
    }
}

fn table(schema: &str, name: &str, columns: Vec<ColumnMeta>, key: Vec<usize>) -> Arc<TableMeta> {
    Arc::new(TableMeta {
        schema: schema.into(),
        name: name.into(),
        target_schema: schema.into(),
        target_name: name.into(),
        columns,
        key_columns: key,
        estimated_rows: 0,
        column_subset: false,
    })
}

fn parse(bytes: &[u8]) -> Json {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

fn record_json(r: &Record) -> Json {
    json!({
        "topic": &*r.topic,
        "key": r.key.as_deref().map(parse).unwrap_or(Json::Null),
        "value": r.value.as_deref().map(parse).unwrap_or(Json::Null),
    })
}

fn src() -> SourceInfo {
    SourceInfo {
        snapshot: Snapshot::False,
        gtid: Some("0-1-42".into()),
        file: "mysql-bin.000003".into(),
        pos: 1234,
        server_id: 1,
        ts_ms: 1_700_000_000_000,
    }
}

fn dt(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8, micros: u32) -> Value {
    Value::DateTime { year, month, day, hour, minute, second, micros }
}

fn time(negative: bool, hours: u32, minutes: u8, seconds: u8, micros: u32) -> Value {
    Value::Time { negative, hours, minutes, seconds, micros }
}

fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

/// A column type: its DDL, and sample values as SQL literals with every `Value` form the decoders give for them.
struct TypeCase {
    name: &'static str,
    data_type: &'static str,
    column_type: &'static str,
    charset: Option<&'static str>,
    values: Vec<(&'static str, Vec<Value>)>,
}

fn type_cases() -> Vec<TypeCase> {
    let case =
        |name, data_type, column_type, charset, values| TypeCase { name, data_type, column_type, charset, values };
    let point_wkb = {
        let mut b = vec![0, 0, 0, 0, 1, 1, 0, 0, 0];
        b.extend_from_slice(&1f64.to_le_bytes());
        b.extend_from_slice(&2f64.to_le_bytes());
        b
    };
    vec![
        case(
            "tinyint",
            "tinyint",
            "tinyint(4)",
            None,
            vec![("-128", vec![Value::Int(-128)]), ("127", vec![Value::Int(127)])],
        ),
        case("tinyint_unsigned", "tinyint", "tinyint(3) unsigned", None, vec![("255", vec![Value::UInt(255)])]),
        case("smallint", "smallint", "smallint(6)", None, vec![("-32768", vec![Value::Int(-32768)])]),
        case("smallint_unsigned", "smallint", "smallint(5) unsigned", None, vec![("65535", vec![Value::UInt(65535)])]),
        case("mediumint", "mediumint", "mediumint(9)", None, vec![("-8388608", vec![Value::Int(-8_388_608)])]),
        case("int", "int", "int(11)", None, vec![("-2147483648", vec![Value::Int(-2_147_483_648)])]),
        case("int_unsigned", "int", "int(10) unsigned", None, vec![("4294967295", vec![Value::UInt(4_294_967_295)])]),
        case(
            "bigint",
            "bigint",
            "bigint(20)",
            None,
            vec![
                ("-9223372036854775808", vec![Value::Int(i64::MIN)]),
                ("9223372036854775807", vec![Value::Int(i64::MAX)]),
            ],
        ),
        case(
            "bigint_unsigned",
            "bigint",
            "bigint(20) unsigned",
            None,
            vec![("18446744073709551615", vec![Value::UInt(u64::MAX)]), ("42", vec![Value::UInt(42)])],
        ),
        case(
            "float",
            "float",
            "float",
            None,
            vec![("1.5", vec![Value::Float(1.5)]), ("-0.25", vec![Value::Float(-0.25)])],
        ),
        case(
            "double",
            "double",
            "double",
            None,
            vec![("0.1", vec![Value::Double(0.1)]), ("1e300", vec![Value::Double(1e300)])],
        ),
        case(
            "decimal",
            "decimal",
            "decimal(10,2)",
            None,
            vec![
                ("1.50", vec![Value::Decimal("1.50".into())]),
                ("-12345678.90", vec![Value::Decimal("-12345678.90".into())]),
                ("0.00", vec![Value::Decimal("0.00".into())]),
            ],
        ),
        case(
            "decimal_wide",
            "decimal",
            "decimal(40,5)",
            None,
            vec![(
                "-12345678901234567890123456789012345.12345",
                vec![Value::Decimal("-12345678901234567890123456789012345.12345".into())],
            )],
        ),
        case(
            "date",
            "date",
            "date",
            None,
            vec![
                ("'2024-02-29'", vec![Value::Date { year: 2024, month: 2, day: 29 }]),
                ("'1969-12-31'", vec![Value::Date { year: 1969, month: 12, day: 31 }]),
            ],
        ),
        case(
            "time",
            "time",
            "time",
            None,
            vec![("'-838:59:59'", vec![time(true, 838, 59, 59, 0)]), ("'12:34:56'", vec![time(false, 12, 34, 56, 0)])],
        ),
        case("time6", "time", "time(6)", None, vec![("'01:02:03.456789'", vec![time(false, 1, 2, 3, 456_789)])]),
        case(
            "datetime",
            "datetime",
            "datetime",
            None,
            vec![("'2024-01-02 03:04:05'", vec![dt(2024, 1, 2, 3, 4, 5, 0)])],
        ),
        case(
            "datetime3",
            "datetime",
            "datetime(3)",
            None,
            vec![("'2024-01-02 03:04:05.678'", vec![dt(2024, 1, 2, 3, 4, 5, 678_000)])],
        ),
        case(
            "datetime6",
            "datetime",
            "datetime(6)",
            None,
            vec![("'1960-01-02 03:04:05.123456'", vec![dt(1960, 1, 2, 3, 4, 5, 123_456)])],
        ),
        case(
            "timestamp",
            "timestamp",
            "timestamp",
            None,
            vec![(
                "'2024-01-02 03:04:05'",
                vec![Value::Timestamp { unix_secs: 1_704_164_645, micros: 0 }, dt(2024, 1, 2, 3, 4, 5, 0)],
            )],
        ),
        case(
            "timestamp6",
            "timestamp",
            "timestamp(6)",
            None,
            vec![(
                "'2024-01-02 03:04:05.000120'",
                vec![Value::Timestamp { unix_secs: 1_704_164_645, micros: 120 }, dt(2024, 1, 2, 3, 4, 5, 120)],
            )],
        ),
        case(
            "year",
            "year",
            "year(4)",
            None,
            vec![("2024", vec![Value::Year(2024)]), ("1901", vec![Value::Year(1901)])],
        ),
        case("char", "char", "char(10)", Some("utf8mb4"), vec![("'abc'", vec![bytes(b"abc")])]),
        case(
            "varchar",
            "varchar",
            "varchar(20)",
            Some("utf8mb4"),
            vec![
                ("'h\u{e9}llo \u{2713} \u{1f600}'", vec![bytes("h\u{e9}llo \u{2713} \u{1f600}".as_bytes())]),
                ("''", vec![bytes(b"")]),
            ],
        ),
        case(
            "varchar_latin1",
            "varchar",
            "varchar(20)",
            Some("latin1"),
            vec![("'caf\u{e9} \u{20ac}'", vec![bytes(b"caf\xe9 \x80")])],
        ),
        case(
            "text",
            "text",
            "text",
            Some("utf8mb4"),
            vec![("'line1\\nline2 \"q\"'", vec![bytes(b"line1\nline2 \"q\"")])],
        ),
        case("binary", "binary", "binary(4)", None, vec![("X'00010203'", vec![bytes(&[0, 1, 2, 3])])]),
        case("varbinary", "varbinary", "varbinary(8)", None, vec![("X'FF00'", vec![bytes(&[0xff, 0])])]),
        case("blob", "blob", "blob", None, vec![("X'DEADBEEF'", vec![bytes(&[0xde, 0xad, 0xbe, 0xef])])]),
        case("bit1", "bit", "bit(1)", None, vec![("b'1'", vec![Value::Bit(1)]), ("b'0'", vec![Value::Bit(0)])]),
        case("bit10", "bit", "bit(10)", None, vec![("b'1000000001'", vec![Value::Bit(513)])]),
        case("enum", "enum", "enum('a','b','c')", Some("utf8mb4"), vec![("'b'", vec![Value::Enum(2), bytes(b"b")])]),
        case(
            "set",
            "set",
            "set('x','y','z')",
            Some("utf8mb4"),
            vec![("'x,z'", vec![Value::Set(0b101), bytes(b"x,z")]), ("''", vec![Value::Set(0), bytes(b"")])],
        ),
        case(
            "json",
            "json",
            "json",
            None,
            vec![("'{\"a\": [1, 2]}'", vec![Value::Json("{\"a\": [1, 2]}".into()), bytes(b"{\"a\": [1, 2]}")])],
        ),
        case(
            "geometry",
            "point",
            "point",
            None,
            vec![("ST_GeomFromText('POINT(1 2)')", vec![Value::Bytes(point_wkb)])],
        ),
    ]
}

#[test]
fn every_column_type_matches_its_golden_file() {
    for case in type_cases() {
        let columns = vec![
            column("id", "int", "int(11)", None, false),
            column("c", case.data_type, case.column_type, case.charset, true),
        ];
        let t = table("kt", &format!("t_{}", case.name), columns, vec![0]);
        let mut enc = Encoder::new(opts());
        let mut values = Vec::new();
        let mut schema = Json::Null;
        for (sql, forms) in &case.values {
            // The binlog's form first, then the full copy's; they give the same JSON except where Debezium itself
            // writes the full copy differently (TIMESTAMP fractions without trailing zeros): then `json_full_copy`.
            let mut seen: Vec<Json> = Vec::new();
            for form in forms {
                let mut out = Vec::new();
                enc.snapshot_row(&t, &[Value::Int(1), form.clone()], &src(), 0, &mut out).unwrap();
                let v = parse(out[0].value.as_ref().unwrap());
                schema = v["schema"]["fields"][1]["fields"][1].clone();
                seen.push(v["payload"]["after"]["c"].clone());
            }
            let mut entry = json!({"sql": sql, "json": seen[0]});
            if let Some(other) = seen.iter().skip(1).find(|j| **j != seen[0]) {
                assert!(
                    matches!(forms[0], Value::Timestamp { .. }),
                    "{}: {sql} gives different JSON for its forms: {seen:?}",
                    case.name
                );
                entry["json_full_copy"] = other.clone();
            }
            values.push(entry);
        }
        // NULL is null whatever the type.
        let mut out = Vec::new();
        enc.snapshot_row(&t, &[Value::Int(2), Value::Null], &src(), 0, &mut out).unwrap();
        assert_eq!(parse(out[0].value.as_ref().unwrap())["payload"]["after"]["c"], Json::Null);
        let column_def = match case.charset {
            Some(cs) if !matches!(case.data_type, "enum" | "set") => format!("{} CHARACTER SET {cs}", case.column_type),
            _ => case.column_type.to_string(),
        };
        check_golden(
            &format!("type_{}", case.name),
            &json!({"column": column_def, "data_type": case.data_type, "schema": schema, "values": values}),
        );
    }
}

fn items() -> Arc<TableMeta> {
    table(
        "shop",
        "items",
        vec![
            column("id", "int", "int(11)", None, false),
            column("name", "varchar", "varchar(20)", Some("utf8mb4"), true),
            column("price", "decimal", "decimal(10,2)", None, true),
        ],
        vec![0],
    )
}

fn row(id: i64, name: &str, price: &str) -> Vec<Value> {
    vec![Value::Int(id), bytes(name.as_bytes()), Value::Decimal(price.into())]
}

fn events(changes: &[RowChange]) -> Json {
    let mut enc = Encoder::new(opts());
    let mut out = Vec::new();
    for (i, c) in changes.iter().enumerate() {
        enc.row_change(c, &src(), i as u32, 1_700_000_001_000_000_000, &mut out).unwrap();
    }
    Json::Array(out.iter().map(record_json).collect())
}

#[test]
fn insert_update_delete_and_tombstone() {
    let t = items();
    check_golden("event_insert", &events(&[RowChange::Insert { table: t.clone(), after: row(1, "pen", "1.50") }]));
    check_golden(
        "event_update",
        &events(&[RowChange::Update { table: t.clone(), before: row(1, "pen", "1.50"), after: row(1, "pen", "2.00") }]),
    );
    let deleted = events(&[RowChange::Delete { table: t.clone(), before: row(1, "pen", "2.00") }]);
    // A delete, then a real tombstone: same key, null value.
    assert_eq!(deleted.as_array().unwrap().len(), 2);
    assert_eq!(deleted[0]["key"], deleted[1]["key"]);
    assert_eq!(deleted[1]["value"], Json::Null);
    check_golden("event_delete", &deleted);
    // Changing the key: delete + tombstone for the old key, create for the new one.
    let moved = events(&[RowChange::Update { table: t, before: row(1, "pen", "2.00"), after: row(7, "pen", "2.00") }]);
    let ops: Vec<Json> = moved.as_array().unwrap().iter().map(|m| m["value"]["payload"]["op"].clone()).collect();
    assert_eq!(ops, vec![json!("d"), Json::Null, json!("c")]);
    check_golden("event_update_key_change", &moved);
}

#[test]
fn tables_without_a_key_have_no_key_and_a_tombstone() {
    // As Debezium: no key at all (null), and a tombstone (null key, null value) after a delete.
    let t = table("shop", "log", vec![column("msg", "varchar", "varchar(20)", Some("utf8mb4"), true)], vec![]);
    let deleted = events(&[RowChange::Delete { table: t, before: vec![bytes(b"x")] }]);
    assert_eq!(deleted.as_array().unwrap().len(), 2);
    assert_eq!(deleted[0]["key"], Json::Null);
    assert_eq!(deleted[1]["value"], Json::Null);
    check_golden("event_delete_no_key", &deleted);
}

#[test]
fn column_defaults_are_in_the_schema_and_replace_nulls() {
    // Debezium puts column defaults into the schema, and JsonConverter writes a null as the default; a zero date in
    // a NOT NULL column without one is the epoch.
    let t = table(
        "shop",
        "prices",
        vec![
            column("id", "int", "int(11)", None, false),
            column("qty", "int", "int(11)", None, true),
            column("since", "date", "date", None, false),
            column("until", "date", "date", None, false),
            column("note", "varchar", "varchar(10)", Some("utf8mb4"), true),
        ],
        vec![0],
    );
    let mut enc = Encoder::new(opts());
    enc.note_create_table(
        &t,
        "CREATE TABLE `prices` (\n  `id` int(11) NOT NULL,\n  `qty` int(11) DEFAULT 5,\n  \
         `since` date NOT NULL DEFAULT '2000-01-01',\n  `until` date NOT NULL,\n  `note` varchar(10) DEFAULT NULL,\n  \
         PRIMARY KEY (`id`)\n) ENGINE=InnoDB",
    );
    let zero = Value::Date { year: 0, month: 0, day: 0 };
    let row = vec![Value::Int(1), Value::Null, zero.clone(), zero, Value::Null];
    let mut out = Vec::new();
    enc.row_change(&RowChange::Insert { table: t, after: row }, &src(), 0, 1_700_000_001_000_000_000, &mut out)
        .unwrap();
    let j = Json::Array(out.iter().map(record_json).collect());
    assert_eq!(j[0]["value"]["payload"]["after"], json!({"id": 1, "qty": 5, "since": 10957, "until": 0, "note": null}));
    check_golden("event_defaults", &j);
}

#[test]
fn snapshot_reads_are_op_r() {
    let mut enc = Encoder::new(opts());
    let mut out = Vec::new();
    let snap = SourceInfo { snapshot: Snapshot::First, gtid: None, server_id: 0, ..src() };
    enc.snapshot_row(&items(), &row(3, "ink", "0.99"), &snap, 1_700_000_001_000_000_000, &mut out).unwrap();
    let j = Json::Array(out.iter().map(record_json).collect());
    assert_eq!(j[0]["value"]["payload"]["op"], "r");
    assert_eq!(j[0]["value"]["payload"]["source"]["snapshot"], "first");
    check_golden("event_snapshot_read", &j);
}

#[test]
fn ddl_goes_to_the_schema_change_topic() {
    let enc = Encoder::new(opts());
    let r = enc.schema_change(
        "shop",
        Some("items"),
        "ALTER TABLE items ADD COLUMN note TEXT",
        &src(),
        1_700_000_001_000_000_000,
    );
    assert_eq!(&*r.topic, "schema-changes.dtle1");
    check_golden("event_ddl", &record_json(&r));
}

#[test]
fn topics_follow_topic_with_schema_table_and_are_sanitized() {
    let enc = Encoder::new(opts());
    assert_eq!(enc.topic_for("shop", "items"), "dtle1.shop.items");
    assert_eq!(enc.topic_for("my db", "t$1"), "dtle1.my_db.t_1");
    let enc = Encoder::new(EnvelopeOptions { topic_with_schema_table: false, ..opts() });
    assert_eq!(enc.topic_for("shop", "items"), "dtle1");
}

#[test]
fn datetime_is_read_in_the_configured_zone() {
    use dtle_kafka::parse_time_zone;
    assert_eq!(parse_time_zone("UTC"), Ok(DateTimeZone::Fixed(0)));
    assert_eq!(parse_time_zone("+08:00"), Ok(DateTimeZone::Fixed(8 * 3600)));
    assert_eq!(parse_time_zone("-0530"), Ok(DateTimeZone::Fixed(-(5 * 3600 + 30 * 60))));
    assert!(parse_time_zone("Mars/Olympus").unwrap_err().contains("Asia/Shanghai"));
    let t = table("kt", "d", vec![column("d", "datetime", "datetime", None, false)], vec![]);
    let millis = |zone: DateTimeZone, v: Value| {
        let mut enc = Encoder::new(EnvelopeOptions { date_time_zone: zone, ..opts() });
        let mut out = Vec::new();
        enc.snapshot_row(&t, &[v], &src(), 0, &mut out).unwrap();
        parse(out[0].value.as_ref().unwrap())["payload"]["after"]["d"].clone()
    };
    assert_eq!(millis(DateTimeZone::Fixed(8 * 3600), dt(1970, 1, 1, 8, 0, 0, 0)), json!(0));
    let shanghai = parse_time_zone("Asia/Shanghai").unwrap();
    assert_eq!(millis(shanghai, dt(1970, 1, 1, 8, 0, 0, 0)), json!(0));
    // Europe/Berlin: +01:00 in winter, +02:00 in summer (DST).
    let berlin = parse_time_zone("Europe/Berlin").unwrap();
    assert_eq!(millis(berlin, dt(2024, 1, 15, 13, 0, 0, 0)), json!(1_705_320_000_000i64));
    assert_eq!(millis(berlin, dt(2024, 7, 15, 14, 0, 0, 0)), json!(1_721_044_800_000i64));
}

#[test]
fn conversion_errors_name_the_table_and_column() {
    let t = table("kt", "e", vec![column("e", "enum", "enum('a')", Some("utf8mb4"), true)], vec![]);
    let mut enc = Encoder::new(opts());
    let err = enc.snapshot_row(&t, &[Value::Enum(5)], &src(), 0, &mut Vec::new()).unwrap_err().to_string();
    assert!(err.contains("kt.e.e") && err.contains("enum('a')"), "{err}");
    let t = table("kt", "a", vec![column("a", "int", "int", None, true)], vec![]);
    let err = enc.snapshot_row(&t, &[Value::Absent], &src(), 0, &mut Vec::new()).unwrap_err().to_string();
    assert!(err.contains("kt.a.a") && err.contains("binlog_row_image"), "{err}");
    let t = table("kt", "u", vec![column("u", "uuid", "uuid", None, true)], vec![]);
    let err = enc.snapshot_row(&t, &[Value::Null], &src(), 0, &mut Vec::new()).unwrap_err().to_string();
    assert!(err.contains("kt.u.u") && err.contains("uuid"), "{err}");
}
