use std::path::PathBuf;

use serde_json::{json, Value};

use super::*;

const HCL_V3: &str = r#"
job "job1" {
  datacenters = ["dc1"]
  group "src" { task "src" { driver = "dtle"
    config {
      ReplicateDoDb = [{ TableSchema = "test", Tables = [{ TableName = "t1" }] }]
      Gtid = ""
      ChunkSize = 2000
      ConnectionConfig = { Host = "127.0.0.1", Port = 3333, User = "test", Password = "test" }
  } } }
  group "dest" { task "dest" { driver = "dtle"
    config { ConnectionConfig = { Host = "127.0.0.1", Port = 4444, User = "test", Password = "test" } }
  } }
}
"#;

const HCL_V4: &str = r#"
job "job1" {
  datacenters = ["dc1"]
  group "src" { task "src" { driver = "dtle"
    config {
      ReplicateDoDb = [{ TableSchema = "test", Tables = [{ TableName = "t1" }] }]
      Gtid = ""
      ChunkSize = 2000
      SrcConnectionConfig = { Host = "127.0.0.1", Port = 3333, User = "test", Password = "test" }
      DestConnectionConfig = { Host = "127.0.0.1", Port = 4444, User = "test", Password = "test" }
  } } }
  group "dest" { task "dest" { driver = "dtle"
    config { DestType = "mysql" }
  } }
}
"#;

fn json_job(wrapped: bool, string_numbers: bool) -> String {
    let port = |p: u16| {
        if string_numbers {
            json!(p.to_string())
        } else {
            json!(p)
        }
    };
    let chunk = if string_numbers { json!("2000") } else { json!(2000) };
    let job = json!({
        "ID": "job1",
        "Name": "job1",
        "Datacenters": ["dc1"],
        "TaskGroups": [
            {"Name": "src", "Count": 1, "Tasks": [{"Name": "src", "Driver": "dtle", "Config": {
                "ReplicateDoDb": [{"TableSchema": "test", "Tables": [{"TableName": "t1"}]}],
                "Gtid": "",
                "ChunkSize": chunk,
                "ConnectionConfig": {"Host": "127.0.0.1", "Port": port(3333), "User": "test", "Password": "test"}
            }}]},
            {"Name": "dest", "Tasks": [{"Name": "dest", "Driver": "dtle", "Config": {
                "ConnectionConfig": {"Host": "127.0.0.1", "Port": port(4444), "User": "test", "Password": "test"}
            }}]}
        ]
    });
    let v = if wrapped { json!({ "Job": job }) } else { job };
    serde_json::to_string_pretty(&v).unwrap()
}

fn hcl(text: &str) -> JobFile {
    parse_job_str(text, JobFormat::Hcl).unwrap_or_else(|e| panic!("parse failed: {e}"))
}

/// A src-only HCL job with the given config body.
fn src_job(config: &str) -> Result<JobFile, ConfigError> {
    parse_job_str(
        &format!(
            "job \"job1\" {{\n group \"src\" {{\n task \"src\" {{\n driver = \"dtle\"\n config {{\n{config}\n}}\n}}\n}}\n}}\n"
        ),
        JobFormat::Hcl,
    )
}

fn src_cfg(config: &str) -> TaskConfig {
    src_job(config).unwrap_or_else(|e| panic!("parse failed: {e}")).src.unwrap()
}

fn conn(host: &str, port: u16) -> ConnectionConfig {
    ConnectionConfig {
        host: host.into(),
        port,
        user: "test".into(),
        password: "test".into(),
        charset: "utf8mb4".into(),
    }
}

fn validation_error(config: &str) -> String {
    let cfg = src_cfg(config);
    match cfg.validate("job1", "src") {
        Err(e) => e.to_string(),
        Ok(()) => panic!("expected a validation error for:\n{config}"),
    }
}

#[test]
fn hcl_v3_example() {
    let job = hcl(HCL_V3);
    assert_eq!(job.name, "job1");
    assert_eq!(job.format, JobFormat::Hcl);
    let src = job.src.as_ref().unwrap();
    assert_eq!(src.connection_config, Some(conn("127.0.0.1", 3333)));
    assert_eq!(src.replicate_do_db.len(), 1);
    assert_eq!(src.replicate_do_db[0].table_schema, "test");
    assert_eq!(src.replicate_do_db[0].tables[0].table_name, "t1");
    assert_eq!(src.chunk_size, 2000);
    let dest = job.dest.as_ref().unwrap();
    assert_eq!(dest.connection_config, Some(conn("127.0.0.1", 4444)));

    let r = job.resolve().unwrap();
    assert_eq!(r.name, "job1");
    assert_eq!(r.shape, JobShape::V3);
    assert_eq!(r.source, conn("127.0.0.1", 3333));
    assert_eq!(r.target, TargetConfig::Mysql(conn("127.0.0.1", 4444)));
    assert_eq!(r.src.src_connection_config, Some(conn("127.0.0.1", 3333)));
    assert_eq!(r.src.dest_connection_config, Some(conn("127.0.0.1", 4444)));
    assert_eq!(r.src.connection_config, None);
    assert_eq!(r.src.dest_type.as_deref(), Some("mysql"));
}

#[test]
fn hcl_v4_resolves_like_v3() {
    let v3 = hcl(HCL_V3).resolve().unwrap();
    let v4 = hcl(HCL_V4).resolve().unwrap();
    assert_eq!(v4.shape, JobShape::V4);
    assert_eq!(v3.source, v4.source);
    assert_eq!(v3.target, v4.target);
    assert_eq!(v3.src, v4.src);
}

#[test]
fn json_forms_parse_like_hcl() {
    let from_hcl = hcl(HCL_V3);
    for (wrapped, strings) in [(true, false), (false, false), (true, true), (false, true)] {
        let job = parse_job_str(&json_job(wrapped, strings), JobFormat::Json)
            .unwrap_or_else(|e| panic!("wrapped={wrapped} strings={strings}: {e}"));
        assert_eq!(job.format, JobFormat::Json);
        assert_eq!(job.name, "job1");
        assert_eq!(job.src, from_hcl.src, "wrapped={wrapped} strings={strings}");
        assert_eq!(job.dest, from_hcl.dest);
        assert_eq!(job.resolve().unwrap(), from_hcl.resolve().unwrap());
    }
}

#[test]
fn json_name_from_id_then_name() {
    let j = parse_job_str(
        r#"{"ID": "by-id", "Name": "by-name", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "src", "Driver": "dtle", "Config": {}}]}]}"#,
        JobFormat::Json,
    )
    .unwrap();
    assert_eq!(j.name, "by-id");
    let j = parse_job_str(
        r#"{"Job": {"Name": "by-name", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "dest", "Driver": "dtle", "Config": {"DestType": "kafka"}}]}]}}"#,
        JobFormat::Json,
    )
    .unwrap();
    assert_eq!(j.name, "by-name");
    assert!(j.src.is_none());
    assert_eq!(j.dest.unwrap().dest_type().unwrap(), Some(DestType::Kafka));
}

#[test]
fn json_bools_and_nulls_loose_forms() {
    let text = r#"{"Job": {"ID": "j", "TaskGroups": [{"Name": "src", "Tasks": [{"Name": "src", "Driver": "dtle",
        "Config": {"AutoGtid": "true", "WaitOnJob": null, "ConnectionConfig": [{"Host": "h", "Port": 1, "User": "u", "Password": "p"}],
                   "BinlogPos": 4.0}}]}]}}"#;
    let j = parse_job_str(text, JobFormat::Json).unwrap();
    let s = j.src.unwrap();
    assert!(s.auto_gtid);
    assert_eq!(s.wait_on_job, "");
    assert_eq!(s.connection_config.unwrap().host, "h");
    assert_eq!(s.binlog_pos, 4);
    assert!(j.src_task.unwrap().set_fields.contains("AutoGtid"));
}

#[test]
fn nomad_extras_ignored() {
    let text = r#"
variable "x" { default = "y" }
job "job1" {
  type = "service"
  region = "global"
  priority = 50
  datacenters = ["dc1"]
  namespace = "default"
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }
  update { max_parallel = 1 }
  meta { owner = "me" }
  reschedule {
    attempts  = 1
    interval  = "30m"
    unlimited = false
  }
  group "src" {
    count = 1
    network { mode = "host" }
    ephemeral_disk { size = 300 }
    restart {
      interval = "10m"
      attempts = 3
    }
    task "src" {
      driver = "dtle"
      resources {
        cpu    = 100
        memory = 300
      }
      logs { max_files = 3 }
      meta { a = "b" }
      env { FOO = "${NOMAD_JOB_NAME}" }
      kill_timeout = "20s"
      config {
        SrcConnectionConfig = { Host = "127.0.0.1", Port = 3333, User = "test", Password = "test" }
        DestConnectionConfig = { Host = "127.0.0.1", Port = 4444, User = "test", Password = "test" }
      }
    }
  }
  group "dest" {
    task "dest" {
      driver = "dtle"
      config { DestType = "mysql" }
    }
    task "sidecar" {
      driver = "docker"
      config { image = "busybox" }
    }
  }
}
"#;
    let j = hcl(text);
    let r = j.resolve().unwrap();
    assert_eq!(r.source.port, 3333);
    assert_eq!(r.target, TargetConfig::Mysql(conn("127.0.0.1", 4444)));
}

#[test]
fn block_style_config_accepted() {
    let text = r#"
job "job1" {
  group "src" {
    task "src" {
      driver = "dtle"
      config {
        ReplicateDoDb {
          TableSchema = "db1"
          Tables { TableName = "a" }
          Tables { TableName = "b" }
        }
        ReplicateDoDb { TableSchema = "db2" }
        ConnectionConfig {
          Host = "127.0.0.1"
          Port = 3333
          User = "test"
          Password = "test"
        }
      }
    }
  }
  group "dest" {
    task "dest" {
      driver = "dtle"
      config {
        KafkaConfig {
          Topic = "kafka1"
          Brokers = ["127.0.0.1:9092"]
        }
      }
    }
  }
}
"#;
    let j = hcl(text);
    let s = j.src.as_ref().unwrap();
    assert_eq!(s.connection_config, Some(conn("127.0.0.1", 3333)));
    assert_eq!(s.replicate_do_db.len(), 2);
    let names: Vec<_> = s.replicate_do_db[0].tables.iter().map(|t| t.table_name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(s.replicate_do_db[1].table_schema, "db2");
    let r = j.resolve().unwrap();
    let TargetConfig::Kafka(k) = &r.target else { panic!("expected kafka target") };
    assert_eq!(k.topic, "kafka1");
    assert_eq!(k.converter, "json");
    assert!(k.topic_with_schema_table);
    assert_eq!(k.schema_change_topic(), "schema-changes.kafka1");
    assert_eq!(k.message_group_max_size, 1);
    assert_eq!(k.message_group_timeout, 100);
    assert_eq!(k.date_time_zone, "UTC");
    assert_eq!(r.src.dest_type.as_deref(), Some("kafka"));
}

#[test]
fn repeated_non_list_block_is_an_error() {
    let e = src_job("ConnectionConfig { Host = \"a\" }\nConnectionConfig { Host = \"b\" }").unwrap_err().to_string();
    assert!(e.contains("ConnectionConfig") && e.contains("more than once"), "{e}");
}

#[test]
fn defaults_applied() {
    let c = src_cfg("");
    assert_eq!(c, TaskConfig::default());
    assert_eq!(c.chunk_size, 2000);
    assert_eq!(c.dump_entry_limit, 67108864);
    assert_eq!(c.repl_chan_buffer_size, 32);
    assert_eq!(c.group_max_size, 1);
    assert_eq!(c.group_timeout, 100);
    assert_eq!(c.slave_net_write_timeout, 28800);
    assert_eq!(c.big_tx_src_queue, 3);
    assert_eq!(c.parallel_workers, 1);
    assert!(c.use_mysql_dependency);
    assert_eq!(c.dependency_history_size, 2500);
    assert!(c.foreign_key_checks);
    assert_eq!((c.bulk_insert1, c.bulk_insert2, c.bulk_insert3), (4, 8, 128));
    assert_eq!(c.retry_tx_limit, 5);
    assert!(!c.set_gtid_next && !c.auto_gtid && !c.binlog_relay);
    assert!(c.replicate_do_db.is_empty() && c.sql_filter.is_empty());
    assert_eq!(c.gtid, "");
    let c = src_cfg("ConnectionConfig = { Host = \"h\", Port = 1, User = \"u\", Password = \"p\" }");
    assert_eq!(c.connection_config.unwrap().charset, "utf8mb4");
}

#[test]
fn zero_means_default_like_dtle() {
    let c = src_cfg("ChunkSize = 0\nParallelWorkers = 0\nGroupTimeout = 0\nReplChanBufferSize = 0");
    assert_eq!(c.chunk_size, 2000);
    assert_eq!(c.parallel_workers, 1);
    assert_eq!(c.group_timeout, 100);
    assert_eq!(c.repl_chan_buffer_size, 32);
}

/// Check one field table: every non-required default equals what an empty object deserializes to,
/// and the table names exactly the fields the struct has.
fn check_table<T: serde::de::DeserializeOwned + serde::Serialize>(table: &[FieldSpec], empty: Value) {
    let parsed: T = serde_json::from_value(empty).unwrap();
    let Value::Object(out) = serde_json::to_value(&parsed).unwrap() else { panic!("not an object") };
    let mut struct_names: Vec<&str> = out.keys().map(String::as_str).collect();
    let mut table_names: Vec<&str> = table.iter().map(|f| f.name).collect();
    struct_names.sort_unstable();
    table_names.sort_unstable();
    assert_eq!(struct_names, table_names, "table and struct differ");
    for spec in table {
        if spec.required {
            continue;
        }
        assert_eq!(
            out[spec.name],
            spec.default.to_json(),
            "default of {} differs between the table and serde",
            spec.name
        );
    }
}

#[test]
fn field_tables_match_serde_defaults() {
    check_table::<TaskConfig>(TASK_CONFIG_FIELDS, json!({}));
    check_table::<ConnectionConfig>(CONNECTION_CONFIG_FIELDS, json!({}));
    check_table::<KafkaConfig>(KAFKA_CONFIG_FIELDS, json!({}));
    check_table::<DataSource>(DATA_SOURCE_FIELDS, json!({}));
    check_table::<Table>(TABLE_FIELDS, json!({}));
    // Required fields have no default in the table.
    for t in [CONNECTION_CONFIG_FIELDS, KAFKA_CONFIG_FIELDS, ORACLE_CONFIG_FIELDS] {
        for f in t.iter().filter(|f| f.required) {
            assert_eq!(f.default, FieldDefault::None, "{}", f.name);
        }
    }
    // Every table kind renders to a cty type.
    assert_eq!(find_field(TASK_CONFIG_FIELDS, "SqlFilter").unwrap().kind.cty_type(), "list(string)");
    assert!(find_field(TASK_CONFIG_FIELDS, "ReplicateDoDb")
        .unwrap()
        .kind
        .cty_type()
        .starts_with("list(object({TableSchema=string"));
    assert_eq!(find_field(TASK_CONFIG_FIELDS, "ChunkSize").unwrap().default.hcl_literal().as_deref(), Some("2000"));
}

#[test]
fn field_table_covers_a_full_config() {
    // Every field of every table, set to a value of its kind, is accepted by the parser.
    fn sample(kind: &FieldKind) -> Value {
        match kind {
            FieldKind::Bool => json!(true),
            FieldKind::Int => json!(7),
            FieldKind::Port => json!(3306),
            FieldKind::String => json!("x"),
            FieldKind::List(inner) => json!([sample(inner)]),
            FieldKind::Object(fields) => {
                Value::Object(fields.iter().map(|f| (f.name.to_string(), sample(&f.kind))).collect())
            }
        }
    }
    let config = sample(&FieldKind::Object(TASK_CONFIG_FIELDS));
    let text = json!({"ID": "j", "TaskGroups": [{"Name": "src", "Tasks": [{"Name": "src", "Driver": "dtle", "Config": config}]}]});
    let j = parse_job_str(&text.to_string(), JobFormat::Json).unwrap();
    let s = j.src.unwrap();
    assert_eq!(s.chunk_size, 7);
    assert_eq!(s.max_retries, Some(7));
    assert_eq!(s.replicate_do_db[0].tables[0].table_schema_rename.as_deref(), Some("x"));
    assert_eq!(j.src_task.unwrap().set_fields.len(), TASK_CONFIG_FIELDS.len());
    // MaxRetries + 2 lists x (2 schema-level + 3 table-level) ignored fields.
    assert_eq!(s.ignored_fields_set().len(), 11);
}

#[test]
fn kafka_time_zone_alias() {
    let c = src_cfg("KafkaConfig = { Topic = \"t\", Brokers = [\"b:1\"], TimeZone = \"Asia/Shanghai\" }");
    assert_eq!(c.kafka_config.unwrap().date_time_zone, "Asia/Shanghai");
}

#[test]
fn validation_errors_name_field_and_value() {
    let cases: &[(&str, &[&str])] = &[
        (
            "ReplicateDoDb = [{ TableSchema = \"a\", TableSchemaRegex = \"b.*\", TableSchemaRename = \"c\" }]",
            &["ReplicateDoDb[0]", "\"a\"", "\"b.*\"", "set exactly one of TableSchema or TableSchemaRegex"],
        ),
        (
            "ReplicateDoDb = [{ Tables = [{ TableName = \"t\" }] }]",
            &["ReplicateDoDb[0]", "set exactly one of TableSchema or TableSchemaRegex"],
        ),
        (
            "ReplicateDoDb = [{ TableSchema = \"db\", Tables = [{ TableName = \"t0\" }, { TableName = \"t1\", TableRegex = \"t.*\", TableRename = \"x\" }] }]",
            &["job \"job1\", task \"src\": config field ReplicateDoDb[0].Tables[1]: ", "\"t1\"", "\"t.*\"", "set exactly one of TableName or TableRegex"],
        ),
        (
            "ReplicateDoDb = [{ TableSchema = \"db\", Tables = [{ }] }]",
            &["ReplicateDoDb[0].Tables[0]", "set exactly one of TableName or TableRegex"],
        ),
        (
            "ReplicateDoDb = [{ TableSchemaRegex = \"db(.*)\" }]",
            &["ReplicateDoDb[0].TableSchemaRename", "\"db(.*)\"", "needs TableSchemaRename"],
        ),
        (
            "ReplicateDoDb = [{ TableSchema = \"db\", Tables = [{ TableRegex = \"t(.*)\" }] }]",
            &["ReplicateDoDb[0].Tables[0].TableRename", "\"t(.*)\"", "needs TableRename"],
        ),
        (
            "ReplicateDoDb = [{ TableSchemaRegex = \"db(\", TableSchemaRename = \"x\" }]",
            &["ReplicateDoDb[0].TableSchemaRegex", "\"db(\"", "not a valid regular expression"],
        ),
        (
            "ReplicateDoDb = [{ TableSchema = \"db\", Tables = [{ TableRegex = \"[\", TableRename = \"x\" }] }]",
            &["ReplicateDoDb[0].Tables[0].TableRegex", "\"[\"", "not a valid regular expression"],
        ),
        (
            "ReplicateDoDb = [{ TableSchema = \"db\", Tables = [{ TableName = \"t\", ColumnMapFrom = [\"a\", \"b\"], ColumnMapTo = [\"x\"] }] }]",
            &["ReplicateDoDb[0].Tables[0].ColumnMapTo", "1 columns", "ColumnMapFrom has 2"],
        ),
        (
            "ReplicateIgnoreDb = [{ Tables = [{ TableName = \"t\" }] }]",
            &["ReplicateIgnoreDb[0].TableSchema", "TableSchema is empty"],
        ),
        (
            "ReplicateIgnoreDb = [{ TableSchema = \"db\", Tables = [{ TableRegex = \"x\" }] }]",
            &["ReplicateIgnoreDb[0].Tables[0].TableName", "\"db\"", "TableName is empty"],
        ),
        ("ChunkSize = -5", &["config field ChunkSize", "-5", "> 0"]),
        (
            "BulkInsert1 = 10\nBulkInsert2 = 5",
            &["config field BulkInsert2", "10/5/128", "1 ≤ BulkInsert1 ≤ BulkInsert2 ≤ BulkInsert3"],
        ),
        ("BulkInsert1 = 0", &["config field BulkInsert1", "0/8/128"]),
        ("BulkInsert3 = 6", &["config field BulkInsert3", "4/8/6"]),
        (
            "Gtid = \"a:1-5\"\nGtidStart = \"a:3\"",
            &["config field GtidStart", "\"a:3\"", "\"a:1-5\"", "leave Gtid empty"],
        ),
        (
            "AutoGtid = true\nGtid = \"a:1-5\"",
            &["config field AutoGtid", "\"a:1-5\"", "set only one of AutoGtid, Gtid, GtidStart or BinlogFile"],
        ),
        (
            "AutoGtid = true\nBinlogFile = \"bin.000002\"",
            &["config field AutoGtid", "bin.000002"],
        ),
        (
            "GtidStart = \"a:3\"\nBinlogFile = \"bin.000002\"",
            &["config field BinlogFile", "bin.000002", "\"a:3\""],
        ),
        ("BinlogPos = 4", &["config field BinlogPos", "4", "set BinlogFile too"]),
        (
            "BinlogRelay = true\nBinlogFile = \"bin.000002\"",
            &["config field BinlogRelay", "bin.000002", "set Gtid"],
        ),
        (
            "SqlFilter = [\"NoDDL\", \"NoDMLDelet\"]",
            &["config field SqlFilter[1]", "\"NoDMLDelet\"", "did you mean \"NoDMLDelete\"?"],
        ),
        (
            "SqlFilter = [\"Nonsense\"]",
            &["config field SqlFilter[0]", "\"Nonsense\"", "known filters: NoDML"],
        ),
        (
            "DestType = \"postgres\"",
            &["config field DestType", "\"postgres\"", "\"mysql\" or \"kafka\""],
        ),
        (
            "ConnectionConfig = { Host = \"h\", Port = 0, User = \"u\", Password = \"p\" }",
            &["config field ConnectionConfig.Port", "set the MySQL port"],
        ),
        (
            "SrcConnectionConfig = { Host = \"\", Port = 3306, User = \"u\", Password = \"p\" }",
            &["config field SrcConnectionConfig.Host", "Host is empty"],
        ),
        (
            "KafkaConfig = { Topic = \"t\", Brokers = [] }",
            &["config field KafkaConfig.Brokers", "Brokers is empty"],
        ),
        (
            "KafkaConfig = { Topic = \"t\", Brokers = [\"b:1\"], Converter = \"avro\" }",
            &["config field KafkaConfig.Converter", "\"avro\"", "only \"json\""],
        ),
        (
            "DestConnectionConfig = { Host = \"h\", Port = 1 }\nKafkaConfig = { Topic = \"t\", Brokers = [\"b:1\"] }",
            &["config field KafkaConfig", "set only one target"],
        ),
    ];
    for (config, needles) in cases {
        let msg = validation_error(config);
        for needle in *needles {
            assert!(msg.contains(needle), "message for {config:?} lacks {needle:?}:\n{msg}");
        }
        assert!(msg.starts_with("job \"job1\", task \"src\": config field "), "{msg}");
    }
    // Valid selections pass.
    let ok = src_cfg(
        "ReplicateDoDb = [{ TableSchemaRegex = \"db(.*)\", TableSchemaRename = \"new_$${1}\", Tables = [{ TableRegex = \"t(\\\\d+)\", TableRename = \"t_$${1}\" }] }]\nReplicateIgnoreDb = [{ TableSchema = \"db1\" }]\nSqlFilter = [\"noddl\", \"NoDMLInsert\"]\nGtid = \"a:1-5\"\nBinlogFile = \"bin.000001\"\nBinlogPos = 4",
    );
    ok.validate("job1", "src").unwrap();
    assert_eq!(ok.sql_filters(), ["NoDDL", "NoDMLInsert"]);
    assert_eq!(ok.replicate_do_db[0].tables[0].table_regex, "t(\\d+)");
}

#[test]
fn snapshot_fields_have_defaults_and_refuse_negative_values() {
    let c = src_cfg("");
    assert_eq!(c.snapshot_writers, defaults::SNAPSHOT_WRITERS);
    assert_eq!(c.snapshot_writers, dtle_mysql::snapshot_apply::SNAPSHOT_WRITERS as i64);
    assert!(c.snapshot_load_data && c.snapshot_defer_indexes);
    let c = src_cfg("SnapshotWriters = 0\nSnapshotLoadData = false\nSnapshotDeferIndexes = false");
    assert_eq!(c.snapshot_writers, defaults::SNAPSHOT_WRITERS, "0 means the default, as for ParallelWorkers");
    assert!(!c.snapshot_load_data && !c.snapshot_defer_indexes);
    for (config, field) in [("SnapshotWriters = -2", "SnapshotWriters"), ("DumpEntryLimit = -5", "DumpEntryLimit")] {
        let problems = src_cfg(config).problems("job1", "src");
        assert_eq!(problems.len(), 1, "{config}: {problems:?}");
        let text = problems[0].to_string();
        assert!(text.contains(&format!("config field {field}: {field} is -")) && text.contains("> 0"), "{text}");
    }
    let e = src_job("SnapshotLoadData = 1").and_then(|j| j.validate()).unwrap_err().to_string();
    assert!(e.contains("SnapshotLoadData") && e.contains("bool"), "{e}");
    for name in ["SnapshotWriters", "SnapshotLoadData", "SnapshotDeferIndexes"] {
        assert!(find_field(TASK_CONFIG_FIELDS, name).is_some_and(|f| !f.doc.is_empty()), "{name} is documented");
    }
    let dump = find_field(TASK_CONFIG_FIELDS, "DumpEntryLimit").expect("DumpEntryLimit");
    assert_eq!(dump.default, FieldDefault::Int(64 << 20), "dtle's default");
    assert!(dump.doc.contains("64 KiB..2 MiB"), "the effective range is documented: {}", dump.doc);
    assert_eq!(defaults::DUMP_ENTRY_LIMIT_RANGE, (64 << 10)..=(2 << 20));
}

#[test]
fn problems_lists_every_error() {
    let c = src_cfg("ChunkSize = -1\nBulkInsert1 = 0\nDestType = \"x\"");
    assert_eq!(c.problems("job1", "src").len(), 3);
}

#[test]
fn job_name_too_long() {
    let name = "j".repeat(65);
    let text = HCL_V4.replace("job \"job1\"", &format!("job \"{name}\""));
    let e = hcl(&text).resolve().unwrap_err().to_string();
    assert!(e.contains(&name) && e.contains("65") && e.contains("at most 64"), "{e}");
    let ok = HCL_V4.replace("job \"job1\"", &format!("job \"{}\"", "j".repeat(64)));
    hcl(&ok).resolve().unwrap();
}

#[test]
fn unknown_field_with_suggestion() {
    let e = src_job("ChunkSise = 10").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigError::UnknownField { .. }));
    assert!(msg.contains("job \"job1\", task \"src\""), "{msg}");
    assert!(msg.contains("unknown config field ChunkSise"), "{msg}");
    assert!(msg.contains("did you mean \"ChunkSize\"?"), "{msg}");

    let msg =
        src_job("ReplicateDoDb = [{ TableSchema = \"a\", Tables = [{ TableNme = \"t\" }] }]").unwrap_err().to_string();
    assert!(msg.contains("ReplicateDoDb[0].Tables[0].TableNme"), "{msg}");
    assert!(msg.contains("did you mean \"TableName\"?"), "{msg}");

    let msg = src_job("chunksize = 10").unwrap_err().to_string();
    assert!(msg.contains("did you mean \"ChunkSize\"?"), "{msg}");

    // No close name: the valid names are listed.
    let msg = src_job("ConnectionConfig = { Hostname_xyz = \"h\" }").unwrap_err().to_string();
    assert!(msg.contains("ConnectionConfig.Hostname_xyz"), "{msg}");
    assert!(msg.contains("valid fields here: Host, Port, User, Password, Charset"), "{msg}");

    // JSON too.
    let text = r#"{"ID": "j", "TaskGroups": [{"Name": "src", "Tasks": [{"Name": "src", "Driver": "dtle", "Config": {"ReplChanBufferSiz": 1}}]}]}"#;
    let msg = parse_job_str(text, JobFormat::Json).unwrap_err().to_string();
    assert!(msg.contains("did you mean \"ReplChanBufferSize\"?"), "{msg}");
}

#[test]
fn wrong_type_names_field() {
    let msg = src_job("ChunkSize = \"lots\"").unwrap_err().to_string();
    assert!(msg.contains("config field ChunkSize"), "{msg}");
    assert!(msg.contains("expected an integer"), "{msg}");
    assert!(msg.contains("string \"lots\""), "{msg}");

    let msg = src_job("ReplicateDoDb = \"test\"").unwrap_err().to_string();
    assert!(msg.contains("config field ReplicateDoDb: expected a list of objects"), "{msg}");

    let msg = src_job("AutoGtid = 1").unwrap_err().to_string();
    assert!(msg.contains("config field AutoGtid: expected a bool"), "{msg}");
    assert!(msg.contains("number 1"), "{msg}");

    let msg = src_job("ConnectionConfig = { Host = \"h\", Port = 70000 }").unwrap_err().to_string();
    assert!(msg.contains("ConnectionConfig.Port") && msg.contains("70000"), "{msg}");

    let msg = src_job("SqlFilter = [[\"NoDDL\"]]").unwrap_err().to_string();
    assert!(msg.contains("SqlFilter[0]: expected a string"), "{msg}");

    // A secret's value is never echoed, only its type.
    let msg = src_job("ConnectionConfig = { Password = [\"hunter2\"] }").unwrap_err().to_string();
    assert!(msg.contains("ConnectionConfig.Password") && !msg.contains("hunter2"), "{msg}");

    // Numbers and bools where a string is expected are converted, as Nomad does.
    let c = src_cfg("Gtid = 5\nConnectionConfig = { Host = \"h\", Port = \"3306\", User = \"u\", Password = 123456 }");
    assert_eq!(c.gtid, "5");
    let cc = c.connection_config.unwrap();
    assert_eq!(cc.password, "123456");
    assert_eq!(cc.port, 3306);
}

#[test]
fn roles_from_task_names() {
    for (name, role) in [
        ("src", TaskRole::Src),
        ("source", TaskRole::Src),
        ("Src", TaskRole::Src),
        ("dst", TaskRole::Dest),
        ("dest", TaskRole::Dest),
        ("destination", TaskRole::Dest),
        ("DEST", TaskRole::Dest),
    ] {
        assert_eq!(TaskRole::from_task_name(name), Some(role), "{name}");
    }
    let text = HCL_V4.replace("task \"src\"", "task \"source\"").replace("task \"dest\"", "task \"destination\"");
    let j = hcl(&text);
    assert_eq!(j.task_name(TaskRole::Src), "source");
    assert_eq!(j.task_name(TaskRole::Dest), "destination");
    assert!(j.src.is_some() && j.dest.is_some());
    j.resolve().unwrap();
}

#[test]
fn bad_task_name() {
    let text = HCL_V4.replace("task \"dest\"", "task \"applier\"");
    let e = parse_job_str(&text, JobFormat::Hcl).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigError::BadTaskName { .. }));
    assert!(msg.contains("task \"applier\"") && msg.contains("job \"job1\""), "{msg}");
    assert!(msg.contains("\"dest\""), "{msg}");
    assert!(e.is_definite());
}

#[test]
fn duplicate_role_and_no_tasks() {
    let text = HCL_V4.replace("task \"dest\"", "task \"source\"");
    let msg = parse_job_str(&text, JobFormat::Hcl).unwrap_err().to_string();
    assert!(msg.contains("\"src\"") && msg.contains("\"source\"") && msg.contains("src role"), "{msg}");

    let msg = parse_job_str("job \"j\" { group \"g\" { } }", JobFormat::Hcl).unwrap_err().to_string();
    assert!(msg.contains("no dtle task"), "{msg}");

    let msg = parse_job_str("foo = 1", JobFormat::Hcl).unwrap_err().to_string();
    assert!(msg.contains("no `job"), "{msg}");
}

#[test]
fn single_task_jobs_parse() {
    let src_only = src_job(
        "SrcConnectionConfig = { Host = \"a\", Port = 1, User = \"u\", Password = \"p\" }\nDestConnectionConfig = { Host = \"b\", Port = 2, User = \"u\", Password = \"p\" }",
    )
    .unwrap();
    assert!(src_only.dest.is_none());
    // The 4.x src task alone says everything.
    let r = src_only.resolve().unwrap();
    assert_eq!(
        r.target.clone(),
        TargetConfig::Mysql(ConnectionConfig {
            host: "b".into(),
            port: 2,
            user: "u".into(),
            password: "p".into(),
            charset: "utf8mb4".into(),
        })
    );

    let dest_only = parse_job_str(
        "job \"job_dst1\" { group \"dest\" { task \"dest\" { driver = \"dtle\"\n config { DestType = \"mysql\" } } } }",
        JobFormat::Hcl,
    )
    .unwrap();
    assert!(dest_only.src.is_none());
    dest_only.validate().unwrap();
    let msg = dest_only.resolve().unwrap_err().to_string();
    assert!(msg.contains("no src task"), "{msg}");
}

#[test]
fn resolve_errors() {
    // 3.x src-only: no target.
    let msg = src_job("ConnectionConfig = { Host = \"a\", Port = 1, User = \"u\", Password = \"p\" }")
        .unwrap()
        .resolve()
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no target (the job has no dest task)"), "{msg}");

    // No source.
    let msg = hcl(&HCL_V4.replace("SrcConnectionConfig", "# SrcConnectionConfig")).resolve().unwrap_err().to_string();
    assert!(msg.contains("has no source") && msg.contains("SrcConnectionConfig"), "{msg}");

    // DestType disagrees with the target.
    let msg = hcl(&HCL_V4.replace("DestType = \"mysql\"", "DestType = \"kafka\"")).resolve().unwrap_err().to_string();
    assert!(msg.contains("task \"dest\"") && msg.contains("DestType is \"kafka\""), "{msg}");

    // Target in both tasks, differently.
    let text = HCL_V4.replace(
        "DestType = \"mysql\"",
        "ConnectionConfig = { Host = \"other\", Port = 1, User = \"u\", Password = \"p\" }",
    );
    let msg = hcl(&text).resolve().unwrap_err().to_string();
    assert!(msg.contains("set it in one place"), "{msg}");
}

#[test]
fn v3_dest_settings_merge_into_resolved() {
    let text = HCL_V3
        .replace("config { ConnectionConfig", "config { ParallelWorkers = 8\n BulkInsert3 = 256\n ConnectionConfig");
    let r = hcl(&text).resolve().unwrap();
    assert_eq!(r.src.parallel_workers, 8);
    assert_eq!(r.src.bulk_insert3, 256);
    assert_eq!(r.src.replicate_do_db[0].table_schema, "test");
}

#[test]
fn debug_redacts_passwords() {
    let j = hcl(&HCL_V3.replace("Password = \"test\"", "Password = \"s3cr3t-pw\""));
    let dbg = format!("{j:?}");
    assert!(!dbg.contains("s3cr3t-pw"), "{dbg}");
    assert!(dbg.contains("<redacted>"), "{dbg}");
    let r = j.resolve().unwrap();
    assert!(!format!("{r:?}").contains("s3cr3t-pw"));
    let k = src_cfg("KafkaConfig = { Topic = \"t\", Brokers = [\"b:1\"], User = \"u\", Password = \"kafka-pw\" }\nSrcOracleConfig = { Host = \"o\", Port = 1521, User = \"u\", Password = \"ora-pw\" }");
    let dbg = format!("{k:?}");
    assert!(!dbg.contains("kafka-pw") && !dbg.contains("ora-pw"), "{dbg}");
    // Errors about a password never show it.
    let e = src_job("ConnectionConfig = { Password = \"${var.pw}\" }").unwrap_err();
    assert!(!format!("{e} {e:?}").contains("var.pw"), "{e}");
}

#[test]
fn escaped_interpolation_in_rename() {
    let c = src_cfg(
        "ReplicateDoDb = [{ TableSchemaRegex = \"(\\\\w*)src(\\\\w*)\", TableSchemaRename = \"rename$${1}\", Tables = [{ TableRegex = \"(.*)\", TableRename = \"$${1}_new\" }] }]",
    );
    let ds = &c.replicate_do_db[0];
    assert_eq!(ds.table_schema_regex, "(\\w*)src(\\w*)");
    assert_eq!(ds.table_schema_rename, "rename${1}");
    assert_eq!(ds.tables[0].table_rename, "${1}_new");
    c.validate("job1", "src").unwrap();
    // Unescaped interpolation is an error that says how to escape.
    let msg = src_job("ReplicateDoDb = [{ TableSchemaRegex = \"(.*)\", TableSchemaRename = \"x${1}\" }]")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("ReplicateDoDb") && msg.contains("$${"), "{msg}");
}

#[test]
fn one_line_nested_blocks_keep_strings_heredocs_and_comments() {
    let text = r#"job "job1" { group "src" { task "src" { driver = "dtle" # a { comment
  config {
    ReplicateDoDb = [{ TableSchema = "a{b}", TableSchemaRename = "x" }]
    WaitOnJob = <<EOF
{ not a block }
EOF
    Gtid = "u:1-2" /* } */
  } } } }"#;
    let c = hcl(text).src.unwrap();
    assert_eq!(c.replicate_do_db[0].table_schema, "a{b}");
    assert_eq!(c.wait_on_job, "{ not a block }\n");
    assert_eq!(c.gtid, "u:1-2");
}

#[test]
fn syntax_errors_have_file_and_line() {
    let e = parse_job_str("job \"j\" {\n  group \"g\" {\n    x = = 1\n  }\n}\n", JobFormat::Hcl).unwrap_err();
    let ConfigError::HclSyntax { line, .. } = &e else { panic!("{e:?}") };
    assert_eq!(*line, 3);
    assert!(e.to_string().starts_with("<job>:3:"), "{e}");

    let e = parse_job_str("{\n \"ID\": \"j\",\n \"TaskGroups\": [,]\n}", JobFormat::Json).unwrap_err();
    let ConfigError::JsonSyntax { line, .. } = &e else { panic!("{e:?}") };
    assert_eq!(*line, 3);

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.hcl");
    std::fs::write(&p, "job \"j\" {\n\n  oops {\n").unwrap();
    let msg = parse_job_file(&p).unwrap_err().to_string();
    assert!(msg.starts_with(&format!("{}:", p.display())), "{msg}");
}

#[test]
fn parse_job_file_picks_format() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("a.hcl", HCL_V3.to_string()),
        ("a.nomad", HCL_V3.to_string()),
        ("a.json", json_job(true, false)),
        ("noext", json_job(false, true)),
        ("noext2", HCL_V3.to_string()),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let j = parse_job_file(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(j.name, "job1", "{name}");
    }
    let e = parse_job_file(&dir.path().join("missing.hcl")).unwrap_err();
    assert!(e.to_string().contains("missing.hcl"), "{e}");
}

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples")
}

#[test]
fn example_job_files_resolve_identically() {
    let h = parse_job_file(&examples_dir().join("job.hcl")).unwrap();
    let j = parse_job_file(&examples_dir().join("job.json")).unwrap();
    assert_eq!(h.format, JobFormat::Hcl);
    assert_eq!(j.format, JobFormat::Json);
    let (rh, rj) = (h.resolve().unwrap(), j.resolve().unwrap());
    assert_eq!(rh.shape, JobShape::V3);
    assert_eq!(rj.shape, JobShape::V4);
    assert_eq!(rh.name, rj.name);
    assert_eq!(rh.source, rj.source);
    assert_eq!(rh.target, rj.target);
    assert_eq!(rh.src, rj.src);
    assert_eq!(rh.source.addr(), "127.0.0.1:3307");
    assert_eq!(
        rh.target,
        TargetConfig::Mysql(ConnectionConfig {
            host: "127.0.0.1".into(),
            port: 3308,
            user: "dtle".into(),
            password: "dtle".into(),
            charset: "utf8mb4".into(),
        })
    );
    assert_eq!(rh.src.replicate_do_db.len(), 1);
    assert_eq!(rh.src.replicate_do_db[0].table_schema, "demo");
    assert!(rh.src.replicate_do_db[0].tables.is_empty());
}

#[test]
fn topology_examples_parse_and_validate() {
    let dir = examples_dir().join("topologies");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let job = parse_job_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let r = job.resolve().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        r.src.validate(&r.name, "src").unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        crate::engine::table_filter(&r.src).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        seen += 1;
    }
    assert!(seen >= 7, "examples in {}", dir.display());
    let r = parse_job_file(&dir.join("rename_and_filter.hcl")).unwrap().resolve().unwrap();
    assert_eq!(r.src.replicate_do_db[0].table_schema_rename, "all_${1}");
    let r = parse_job_file(&dir.join("two_way.hcl")).unwrap().resolve().unwrap();
    assert!(r.src.two_way_sync);
    let reverse = crate::engine::reverse_job(&r).unwrap();
    assert_eq!(reverse.name, "two_way_dtrev");
    assert_eq!(reverse.source.port, 3309);
    assert!(reverse.src.auto_gtid);
}

#[test]
fn two_way_sync_refuses_what_cannot_run_both_ways() {
    let dir = examples_dir().join("topologies");
    let base = parse_job_file(&dir.join("two_way.hcl")).unwrap().resolve().unwrap();
    let mut renamed = base.clone();
    renamed.src.replicate_do_db[0].table_schema_rename = "other".into();
    let e = crate::engine::reverse_job(&renamed).unwrap_err().to_string();
    assert!(e.contains("ReplicateDoDb[0].TableSchemaRename") && e.contains("same names"), "{e}");
    let mut gtid = base.clone();
    gtid.src.two_way_sync_gtid = "0-3-77".into();
    let r = crate::engine::reverse_job(&gtid).unwrap();
    assert_eq!((r.src.gtid.as_str(), r.src.auto_gtid), ("0-3-77", false));
    assert_eq!(r.target, TargetConfig::Mysql(base.source.clone()));
}

#[test]
fn config_error_stays_small() {
    // Small enough that crates wrapping it keep their Result types cheap (clippy::result_large_err).
    assert!(std::mem::size_of::<ConfigError>() <= 96);
}

#[test]
fn compression_defaults_to_zstd_level_1() {
    use dtle_transport::compression::CompressionSpec;
    let c = src_cfg("");
    assert_eq!(c.compression, "zstd:1");
    assert_eq!(c.compression, defaults::COMPRESSION);
    assert_eq!(c.compression_spec().unwrap(), CompressionSpec::default());
    c.validate("job1", "src").unwrap();
}

#[test]
fn compression_accepts_every_documented_form() {
    use dtle_proto::v1::Compression;
    for (text, kind, level) in [
        ("none", Compression::None, 0),
        ("lz4", Compression::Lz4, 0),
        ("zstd", Compression::Zstd, 1),
        ("zstd:1", Compression::Zstd, 1),
        ("zstd:22", Compression::Zstd, 22),
        ("ZSTD:3", Compression::Zstd, 3),
        ("gzip", Compression::Gzip, 1),
        ("gzip:0", Compression::Gzip, 0),
        ("gzip:9", Compression::Gzip, 9),
    ] {
        let c = src_cfg(&format!("Compression = \"{text}\""));
        c.validate("job1", "src").unwrap_or_else(|e| panic!("{text}: {e}"));
        let spec = c.compression_spec().unwrap();
        assert_eq!((spec.kind, spec.level), (kind, level), "{text}");
    }
    // Nomad JSON carries it the same way.
    let text = json!({"ID": "j", "TaskGroups": [{"Name": "src", "Tasks": [{"Name": "src", "Driver": "dtle", "Config": {"Compression": "lz4"}}]}]});
    let j = parse_job_str(&text.to_string(), JobFormat::Json).unwrap();
    assert_eq!(j.src.unwrap().compression, "lz4");
}

#[test]
fn invalid_compression_names_field_value_and_forms() {
    for (value, why) in [
        ("brotli", "unknown compression"),
        ("zstd:0", "out of range"),
        ("zstd:23", "out of range"),
        ("gzip:10", "out of range"),
        ("zstd:fast", "not a number"),
        ("zstd:", "not a number"),
        ("lz4:3", "takes no level"),
        ("none:1", "takes no level"),
        ("", "no compression named"),
    ] {
        let msg = validation_error(&format!("Compression = \"{value}\""));
        for needle in [
            "job \"job1\", task \"src\": config field Compression: ",
            &format!("Compression \"{value}\" is not valid"),
            why,
            "use none, lz4, zstd, zstd:<level 1..22>, gzip or gzip:<level 0..9>",
        ] {
            assert!(msg.contains(needle), "message for {value:?} lacks {needle:?}:\n{msg}");
        }
    }
    // A number is read as a string (like every string field), then refused as a compression.
    let msg = validation_error("Compression = 3");
    assert!(msg.contains("config field Compression: Compression \"3\" is not valid"), "{msg}");
}

#[test]
fn compression_is_in_the_field_table() {
    let f = find_field(TASK_CONFIG_FIELDS, "Compression").expect("Compression in TASK_CONFIG_FIELDS");
    assert_eq!(f.kind, FieldKind::String);
    assert_eq!(f.default, FieldDefault::Str("zstd:1"));
    assert_eq!(f.default.hcl_literal().as_deref(), Some("\"zstd:1\""));
    assert!(!f.required && !f.ignored);
}
