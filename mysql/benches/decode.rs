//! Row-decoder throughput on synthetic rows events for two table shapes:
//! sysbench's sbtest (INT, INT, CHAR(120), CHAR(60), utf8mb4) and a table of 100 INT columns.
//! Events are built by a small encoder here, sized like the server's (rows events of about 8 KiB).
//! Reported as rows/s (`Throughput::Elements`).
//!
//! With `DTLE_BENCH_BINLOG=<binlog file>` (written by a real server; `tests/bench/decode_recorded.sh` records one
//! with sbtest rows and a 100-column table), the `decode_recorded` group decodes every rows event of that file per
//! table, with a plan built once per TABLE_MAP, as the binlog reader does.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dtle_mysql::binlog::rows::{column_type, RawTableMap};
use dtle_mysql::binlog::{decode_rows_raw, RawRows, RowsKind, TablePlan};

/// A table shape: column types and the TABLE_MAP metadata block.
struct Shape {
    name: &'static str,
    types: Vec<u8>,
    metadata: Vec<u8>,
}

fn sbtest() -> Shape {
    // CHAR(n) utf8mb4 holds up to 4n bytes: the length bits above 255 go into the real-type byte.
    let char_meta = |n: u32| {
        let bytes = 4 * n;
        [column_type::STRING ^ (((bytes & 0x300) >> 4) as u8), (bytes & 0xff) as u8]
    };
    let mut metadata = vec![];
    metadata.extend(char_meta(120));
    metadata.extend(char_meta(60));
    Shape {
        name: "sbtest_4col",
        types: vec![column_type::LONG, column_type::LONG, column_type::STRING, column_type::STRING],
        metadata,
    }
}

fn wide_int() -> Shape {
    Shape { name: "int_100col", types: vec![column_type::LONG; 100], metadata: vec![] }
}

fn plan(shape: &Shape) -> TablePlan {
    TablePlan::from_raw(
        &RawTableMap {
            table_id: 1,
            schema: "sbtest",
            table: shape.name,
            column_types: &shape.types,
            metadata: &shape.metadata,
            null_bitmap: &vec![0xff; shape.types.len().div_ceil(8)],
            optional_metadata: &[],
        },
        None,
    )
    .expect("valid plan")
}

/// Encodes one row image (no NULLs) the way the server does.
fn encode_row(shape: &Shape, i: u32, out: &mut Vec<u8>) {
    out.extend(std::iter::repeat_n(0u8, shape.types.len().div_ceil(8)));
    if shape.types.len() == 4 {
        out.extend_from_slice(&i.to_le_bytes());
        out.extend_from_slice(&(i.wrapping_mul(2_654_435_761) % 1_000_000).to_le_bytes());
        // sysbench's c: 10 groups of 11 digits separated by '-' (119 chars); pad: 5 groups (59 chars).
        let text = |groups: u32, seed: u32| -> Vec<u8> {
            let mut s = Vec::new();
            for g in 0..groups {
                if g > 0 {
                    s.push(b'-');
                }
                let v = seed.wrapping_mul(31).wrapping_add(g * 7919);
                s.extend(format!("{:011}", u64::from(v) * 97 % 100_000_000_000).as_bytes());
            }
            s
        };
        // CHAR(120) utf8mb4 holds up to 480 bytes (2-byte length prefix), CHAR(60) up to 240 (1 byte).
        for (groups, seed, max_bytes) in [(10, i, 480), (5, i ^ 0x5555, 240)] {
            let t = text(groups, seed);
            if max_bytes > 255 {
                out.extend_from_slice(&(t.len() as u16).to_le_bytes());
            } else {
                out.push(t.len() as u8);
            }
            out.extend_from_slice(&t);
        }
    } else {
        for c in 0..shape.types.len() as u32 {
            out.extend_from_slice(&(i.wrapping_add(c * 1000)).to_le_bytes());
        }
    }
}

/// Builds the rows data of one WRITE_ROWS event of at most ~8 KiB; returns (bytes, rows).
fn rows_event(shape: &Shape) -> (Vec<u8>, u64) {
    let mut data = Vec::new();
    let mut n = 0;
    while data.len() < 8000 {
        encode_row(shape, n as u32, &mut data);
        n += 1;
    }
    (data, n)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_rows");
    for shape in [sbtest(), wide_int()] {
        let p = plan(&shape);
        let (data, rows) = rows_event(&shape);
        let bitmap = vec![0xffu8; shape.types.len().div_ceil(8)];
        let raw = RawRows {
            kind: RowsKind::Insert,
            partial_update: false,
            num_columns: shape.types.len(),
            before_columns: None,
            after_columns: Some(&bitmap),
            rows_data: &data,
        };
        // Sanity: the event decodes to the expected number of rows.
        assert_eq!(decode_rows_raw(&p, &raw).expect("decodes").rows.len() as u64, rows);
        group.throughput(Throughput::Elements(rows));
        group.bench_function(shape.name, |b| {
            b.iter(|| decode_rows_raw(black_box(&p), black_box(&raw)).expect("decodes"))
        });
    }
    group.finish();

    // The per-TABLE_MAP cost of building a plan.
    let mut group = c.benchmark_group("table_plan");
    for shape in [sbtest(), wide_int()] {
        group.throughput(Throughput::Elements(1));
        group.bench_function(shape.name, |b| b.iter(|| plan(black_box(&shape))));
    }
    group.finish();
}

/// Every rows event of a recorded binlog file, grouped by table, decoded with plans built from its TABLE_MAPs.
fn bench_recorded(c: &mut Criterion) {
    use dtle_mysql::binlog::{decode_rows, event_data, BinlogFileReader};
    use mysql_async::binlog::events::EventData;
    use std::collections::BTreeMap;

    let Ok(path) = std::env::var("DTLE_BENCH_BINLOG") else {
        return;
    };
    let mut reader = BinlogFileReader::open(std::path::Path::new(&path)).expect("a readable binlog file");
    // table name -> (plan, rows events)
    let mut tables: BTreeMap<String, (TablePlan, Vec<mysql_async::binlog::events::Event>)> = BTreeMap::new();
    let mut names: std::collections::HashMap<u64, String> = std::collections::HashMap::new();
    while let Some((_, event)) = reader.next_event().expect("a well-formed binlog") {
        match event_data(&event).expect("event data") {
            Some(EventData::TableMapEvent(tme)) => {
                let name = format!("{}.{}", tme.database_name(), tme.table_name());
                let plan = TablePlan::new(&tme, None).expect("a plan");
                names.insert(tme.table_id(), name.clone());
                tables.entry(name).or_insert_with(|| (plan, Vec::new()));
            }
            Some(EventData::RowsEvent(rows)) => {
                if let Some(name) = names.get(&rows.table_id()) {
                    if let Some(entry) = tables.get_mut(name) {
                        entry.1.push(event.clone());
                    }
                }
            }
            _ => {}
        }
    }
    let mut group = c.benchmark_group("decode_recorded");
    for (name, (plan, events)) in &tables {
        let decode_all = || -> u64 {
            let mut rows = 0u64;
            for event in events {
                if let Ok(Some(EventData::RowsEvent(r))) = event_data(event) {
                    rows += decode_rows(plan, &r).expect("decodes").rows.len() as u64;
                }
            }
            rows
        };
        let rows = decode_all();
        if rows == 0 {
            continue;
        }
        println!("{name}: {} rows events, {rows} rows, {} columns", events.len(), plan.column_count());
        group.throughput(Throughput::Elements(rows));
        group.bench_function(name.as_str(), |b| b.iter(|| black_box(decode_all())));
    }
    group.finish();
}

criterion_group!(benches, bench, bench_recorded);
criterion_main!(benches);
