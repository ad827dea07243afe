//! Transport throughput over a real nats-server: batches of sysbench-like row changes sent through the NATS
//! backend (window, acks, compression) next to raw NATS publishes of the same bytes. Prints figures; asserts nothing.
//!
//!     cargo run --release -p dtle-transport --example nats_bench -- [nats://127.0.0.1:4222] [MB=200]

use std::time::{Duration, Instant};

use bytes::Bytes;
use dtle_proto::v1 as w;
use dtle_transport::compression::CompressionSpec;
use dtle_transport::nats::{connect, DestEvent, NatsDest, NatsOptions, NatsSource};
use futures_util::StreamExt;
use prost::Message;

/// One batch of `rows` sysbench-shaped inserts (id INT, k INT, c CHAR(120), pad CHAR(60)), encoded.
fn sysbench_batch(first_id: u64, rows: usize) -> Vec<u8> {
    let mut seed = first_id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut digits = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|i| {
                if i % 12 == 11 {
                    b'-'
                } else {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    b'0' + (seed % 10) as u8
                }
            })
            .collect()
    };
    let events = (0..rows)
        .map(|i| w::TxEvent {
            kind: Some(w::tx_event::Kind::Row(w::RowChange {
                kind: 1,
                table: 0,
                before: None,
                after: Some(w::Row {
                    values: vec![
                        w::Value { kind: Some(w::value::Kind::Int(first_id as i64 + i as i64)) },
                        w::Value { kind: Some(w::value::Kind::Int((first_id as i64 * 7 + i as i64) % 100_000)) },
                        w::Value { kind: Some(w::value::Kind::Bytes(digits(120))) },
                        w::Value { kind: Some(w::value::Kind::Bytes(digits(60))) },
                    ],
                }),
            })),
        })
        .collect();
    w::ChangeBatch {
        tables: vec![w::Table { schema: "sbtest".into(), name: "sbtest1".into(), ..Default::default() }],
        changes: vec![w::Change { kind: Some(w::change::Kind::Tx(w::Transaction { events, ..Default::default() })) }],
    }
    .encode_to_vec()
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process from /proc/self/stat (clock ticks, 100 per second on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// A TCP proxy that delays every chunk by `one_way` in each direction (an added round trip of 2 x one_way), for
/// machines without `tc netem`. Returns the local address to connect to.
async fn delay_proxy(upstream: String, one_way: Duration) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { continue };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let pipe = |mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf| async move {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
                tokio::spawn(async move {
                    while let Some((due, data)) = rx.recv().await {
                        tokio::time::sleep_until(due).await;
                        if to.write_all(&data).await.is_err() {
                            return;
                        }
                    }
                });
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = from.read(&mut buf).await {
                    if n == 0 || tx.send((tokio::time::Instant::now() + one_way, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            };
            tokio::spawn(pipe(cr, sw));
            tokio::spawn(pipe(sr, cw));
        }
    });
    addr
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).cloned().unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let megabytes: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);
    let rows_per_batch = 500;
    let batch = sysbench_batch(1, rows_per_batch);
    let batches = (megabytes << 20) / batch.len();
    let rows = batches * rows_per_batch;
    println!(
        "payload: {batches} batches x {rows_per_batch} rows, {} KiB per batch, {} MB in all",
        batch.len() / 1024,
        megabytes
    );
    println!("{:<26} {:>10} {:>12} {:>8} {:>12}", "mode", "MB/s", "rows/s", "ratio", "CPU s/GB");

    // Raw NATS: publish the same bytes to a subscriber, no acks.
    {
        let client = connect(&NatsOptions { urls: vec![url.clone()], ..Default::default() }, "bench raw")
            .await
            .expect("connect");
        let mut sub = client.subscribe("dtle-bench.raw").await.expect("subscribe");
        client.flush().await.expect("flush");
        let payload = Bytes::from(batch.clone());
        let cpu0 = cpu_seconds();
        let start = Instant::now();
        let receiver = tokio::spawn(async move {
            for _ in 0..batches {
                if sub.next().await.is_none() {
                    break;
                }
            }
        });
        for _ in 0..batches {
            client.publish("dtle-bench.raw", payload.clone()).await.expect("publish");
        }
        client.flush().await.expect("flush");
        let _ = tokio::time::timeout(Duration::from_secs(60), receiver).await;
        let secs = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        println!(
            "{:<26} {:>10.1} {:>12.0} {:>8.2} {:>12.2}",
            "raw NATS publish",
            megabytes as f64 / secs,
            rows as f64 / secs,
            1.0,
            cpu / (megabytes as f64 / 1024.0)
        );
    }

    let upstream = url.trim_start_matches("nats://").to_string();
    let slow_url = format!("nats://{}", delay_proxy(upstream, Duration::from_micros(2500)).await);
    let modes = [
        ("none", 32, false),
        ("lz4", 32, false),
        ("zstd:1", 32, false),
        ("zstd:3", 32, false),
        ("gzip", 32, false),
        ("zstd:1", 1, false),
        ("zstd:1", 4, false),
        ("zstd:1", 128, false),
        ("zstd:1", 1, true),
        ("zstd:1", 4, true),
        ("zstd:1", 32, true),
        ("zstd:1", 128, true),
    ];
    for (compression, window, slow) in modes {
        let opts = NatsOptions {
            urls: vec![if slow { slow_url.clone() } else { url.clone() }],
            compression: CompressionSpec::parse(compression).expect("compression"),
            window,
            ack_timeout: Duration::from_secs(30),
            ..Default::default()
        };
        let job = format!("bench-{}-{compression}-{window}-{slow}", std::process::id()).replace(':', "_");
        let mut dest = NatsDest::bind(&opts, &job).await.expect("bind");
        let dest_task = tokio::spawn(async move {
            loop {
                match dest.next().await {
                    Ok(DestEvent::Hello { hello, reply }) => {
                        let _ = dest
                            .answer_hello(
                                &hello,
                                reply,
                                w::HelloReply { version: dtle_proto::WIRE_FORMAT_VERSION, ..Default::default() },
                            )
                            .await;
                    }
                    Ok(DestEvent::Batch { session, seq, payload }) => {
                        // Decode like the real dest does.
                        let _ = w::ChangeBatch::decode(payload.as_slice());
                        let _ = dest.ack(session, seq, None).await;
                    }
                    Err(_) => break,
                }
            }
        });
        let (mut src, _acks) = NatsSource::connect(opts, &job, 1).await.expect("connect");
        src.hello(&job, Duration::from_secs(10)).await.expect("hello");
        let cpu0 = cpu_seconds();
        let start = Instant::now();
        for _ in 0..batches {
            src.send(&batch).await.expect("send");
        }
        src.drain().await.expect("drain");
        let secs = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        dest_task.abort();
        println!(
            "{:<26} {:>10.1} {:>12.0} {:>8.2} {:>12.2}",
            format!("dtle {compression} window {window}{}", if slow { " +5ms RTT" } else { "" }),
            megabytes as f64 / secs,
            rows as f64 / secs,
            src.bytes_raw as f64 / src.bytes_sent.max(1) as f64,
            cpu / (megabytes as f64 / 1024.0)
        );
    }
    println!("(CPU s/GB: user+system CPU of this process, src and dest together, per GiB of uncompressed batches;");
    println!(" +5ms RTT: src and dest reach nats-server through a proxy that delays each direction by 2.5 ms)");
}
