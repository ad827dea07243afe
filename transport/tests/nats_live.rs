//! The NATS backend against a real nats-server (tests/nats.sh start). Skipped without DTLE_TEST_NATS_URL unless
//! DTLE_TEST_REQUIRE_SERVERS=1.

use std::time::Duration;

use bytes::Bytes;
use dtle_proto::v1::{BatchFrame, HelloReply};
use dtle_transport::compression::CompressionSpec;
use dtle_transport::nats::{DestEvent, NatsDest, NatsOptions, NatsSource, Subjects};
use dtle_transport::TransportError;
use prost::Message;

fn nats_url() -> Option<String> {
    match std::env::var("DTLE_TEST_NATS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("DTLE_TEST_REQUIRE_SERVERS").as_deref() == Ok("1") {
                panic!("DTLE_TEST_NATS_URL is not set; start one with tests/nats.sh start");
            }
            eprintln!("skipping: start a server with tests/nats.sh start and set DTLE_TEST_NATS_URL");
            None
        }
    }
}

fn opts(url: &str, compression: &str, window: usize) -> NatsOptions {
    NatsOptions {
        urls: vec![url.to_string()],
        compression: CompressionSpec::parse(compression).unwrap(),
        window,
        ack_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    )
}

/// A dest that accepts hellos and acks every batch, forwarding payloads to the test.
async fn spawn_acking_dest(o: NatsOptions, job: String) -> tokio::sync::mpsc::UnboundedReceiver<(u64, Vec<u8>)> {
    let mut dest = NatsDest::bind(&o, &job).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(ev) = dest.next().await {
            match ev {
                DestEvent::Hello { hello, reply } => {
                    dest.answer_hello(
                        &hello,
                        reply,
                        HelloReply { version: dtle_proto::WIRE_FORMAT_VERSION, stage: 0, ..Default::default() },
                    )
                    .await
                    .unwrap();
                }
                DestEvent::Batch { session, seq, payload } => {
                    dest.ack(session, seq, None).await.unwrap();
                    if tx.send((seq, payload)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

#[tokio::test]
async fn batches_arrive_in_order_with_every_compression() {
    let Some(url) = nats_url() else { return };
    for compression in ["none", "lz4", "zstd:3", "gzip"] {
        let job = unique("order");
        let o = opts(&url, compression, 4);
        let mut received = spawn_acking_dest(o.clone(), job.clone()).await;
        let (mut src, mut acks) = NatsSource::connect(o, &job, 7).await.unwrap();
        src.hello(&job, Duration::from_secs(10)).await.unwrap();
        for i in 0..50u32 {
            let payload: Vec<u8> = (0..1000 + i).map(|b| (b % 7) as u8).collect();
            assert_eq!(src.send(&payload).await.unwrap(), u64::from(i) + 1);
        }
        src.drain().await.unwrap();
        for i in 0..50u32 {
            let (seq, payload) = received.recv().await.unwrap();
            assert_eq!(seq, u64::from(i) + 1, "{compression}");
            assert_eq!(payload.len(), 1000 + i as usize);
        }
        let mut last = 0;
        while let Ok(ack) = acks.try_recv() {
            assert!(ack.seq > last);
            last = ack.seq;
        }
        assert_eq!(last, 50);
        if compression != "none" {
            assert!(src.bytes_sent < src.bytes_raw, "{compression} should shrink repetitive data");
        }
    }
}

#[tokio::test]
async fn big_batches_are_split_below_max_payload_and_reassembled() {
    let Some(url) = nats_url() else { return };
    // tests/nats.sh start 4223 65536: a server with a 64 KiB max_payload.
    let small_url = std::env::var("DTLE_TEST_NATS_SMALL_URL").unwrap_or_else(|_| url.replace("4222", "4223"));
    let job = unique("big");
    let o = opts(&small_url, "none", 2);
    let mut received = spawn_acking_dest(o.clone(), job.clone()).await;
    let (mut src, _acks) = NatsSource::connect(o, &job, 1).await.unwrap();
    src.hello(&job, Duration::from_secs(10)).await.unwrap();
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i * 31 % 256) as u8).collect();
    src.send(&payload).await.unwrap();
    src.send(b"after").await.unwrap();
    assert_eq!(received.recv().await.unwrap(), (1, payload));
    assert_eq!(received.recv().await.unwrap(), (2, b"after".to_vec()));
}

#[tokio::test]
async fn a_full_window_holds_the_src_until_acks_and_silence_times_out() {
    let Some(url) = nats_url() else { return };
    let job = unique("window");
    let mut o = opts(&url, "zstd", 2);
    o.ack_timeout = Duration::from_secs(2);
    // A dest that answers hellos but never acks.
    let mut dest = NatsDest::bind(&o, &job).await.unwrap();
    tokio::spawn(async move {
        while let Ok(ev) = dest.next().await {
            if let DestEvent::Hello { hello, reply } = ev {
                let _ = dest
                    .answer_hello(
                        &hello,
                        reply,
                        HelloReply { version: dtle_proto::WIRE_FORMAT_VERSION, ..Default::default() },
                    )
                    .await;
            }
        }
    });
    let (mut src, _acks) = NatsSource::connect(o, &job, 3).await.unwrap();
    src.hello(&job, Duration::from_secs(10)).await.unwrap();
    src.send(b"1").await.unwrap();
    src.send(b"2").await.unwrap();
    assert_eq!(src.in_flight(), 2);
    let third = src.send(b"3").await;
    assert!(matches!(third, Err(TransportError::AckTimeout { in_flight: 2, .. })), "{third:?}");
    assert!(third.unwrap_err().is_transient());
}

#[tokio::test]
async fn a_gap_makes_the_dest_reset_the_session() {
    let Some(url) = nats_url() else { return };
    let job = unique("gap");
    let o = opts(&url, "none", 8);
    let mut received = spawn_acking_dest(o.clone(), job.clone()).await;
    let (mut src, _acks) = NatsSource::connect(o.clone(), &job, 11).await.unwrap();
    src.hello(&job, Duration::from_secs(10)).await.unwrap();
    src.send(b"one").await.unwrap();
    assert_eq!(received.recv().await.unwrap().0, 1);
    // Someone else's frame claiming batch 5 of this session: the dest must not apply it.
    let raw = dtle_transport::nats::connect(&o, "intruder").await.unwrap();
    let frame = BatchFrame {
        version: dtle_proto::WIRE_FORMAT_VERSION,
        session: 11,
        seq: 5,
        part: 0,
        parts: 1,
        compression: 0,
        uncompressed_len: 1,
        data: vec![0],
    };
    raw.publish(Subjects::for_job(&job).batch, Bytes::from(frame.encode_to_vec())).await.unwrap();
    raw.flush().await.unwrap();
    let mut result = Ok(0);
    for _ in 0..50 {
        result = src.send(b"more").await;
        if result.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(result, Err(TransportError::SessionReset(ref r)) if r.contains("gap")), "{result:?}");
    // The src's own batches may arrive before the intruder's frame (they come from another connection), but what
    // was delivered is contiguous and never the intruder's batch.
    let mut expected = 2;
    while let Ok((seq, payload)) = received.try_recv() {
        assert_eq!(seq, expected, "delivered out of sequence");
        assert_eq!(payload, b"more".to_vec(), "the intruder's batch was delivered");
        expected += 1;
    }
}

#[tokio::test]
async fn jobs_never_see_each_others_batches() {
    let Some(url) = nats_url() else { return };
    let (a, b) = (unique("iso.a"), unique("iso_a"));
    assert_ne!(Subjects::for_job(&a), Subjects::for_job(&b));
    let o = opts(&url, "lz4", 4);
    let mut rx_a = spawn_acking_dest(o.clone(), a.clone()).await;
    let mut rx_b = spawn_acking_dest(o.clone(), b.clone()).await;
    let (mut src_a, _) = NatsSource::connect(o.clone(), &a, 1).await.unwrap();
    let (mut src_b, _) = NatsSource::connect(o, &b, 1).await.unwrap();
    src_a.hello(&a, Duration::from_secs(10)).await.unwrap();
    src_b.hello(&b, Duration::from_secs(10)).await.unwrap();
    src_a.send(b"for a").await.unwrap();
    src_b.send(b"for b").await.unwrap();
    assert_eq!(rx_a.recv().await.unwrap().1, b"for a");
    assert_eq!(rx_b.recv().await.unwrap().1, b"for b");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rx_a.try_recv().is_err() && rx_b.try_recv().is_err());
}

#[tokio::test]
async fn hello_without_a_dest_gives_up_with_a_clear_error() {
    let Some(url) = nats_url() else { return };
    let job = unique("lonely");
    let (src, _) = NatsSource::connect(opts(&url, "none", 1), &job, 1).await.unwrap();
    let err = src.hello(&job, Duration::from_secs(2)).await.unwrap_err();
    assert!(err.to_string().contains("no dest task answered"), "{err}");
}

#[tokio::test]
async fn unreachable_server_is_a_transient_error_naming_it() {
    let o = NatsOptions { urls: vec!["nats://127.0.0.1:1".into()], ..Default::default() };
    let err = match NatsSource::connect(o, "x", 1).await {
        Err(e) => e,
        Ok(_) => panic!("connected to port 1"),
    };
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(err.is_transient());
}

/// Issue 15: anyone who can publish on the job's subjects used to stall a job by sending hellos (each one reset the
/// live session). With a session key, a forged hello and a replayed one are refused and the live session goes on.
#[tokio::test]
async fn forged_and_replayed_hellos_are_refused_without_resetting_the_live_session() {
    let Some(url) = nats_url() else { return };
    let job = unique("auth");
    let key = dtle_transport::nats::SessionKey::generate().unwrap();
    let o = NatsOptions { session_key: Some(key.clone()), ..opts(&url, "none", 4) };
    let mut received = spawn_acking_dest(o.clone(), job.clone()).await;
    let (mut src, _acks) = NatsSource::connect(o.clone(), &job, 1001).await.unwrap();
    src.hello(&job, Duration::from_secs(10)).await.expect("the signed hello is accepted");
    src.send(b"first").await.unwrap();
    assert_eq!(received.recv().await.unwrap(), (1, b"first".to_vec()));

    let client = async_nats::connect(url.as_str()).await.unwrap();
    let subject = Subjects::for_job(&job).hello;
    let ask = |hello: dtle_proto::v1::Hello| {
        let (client, subject) = (client.clone(), subject.clone());
        async move {
            let reply = client.request(subject, Bytes::from(hello.encode_to_vec())).await.expect("an answer");
            HelloReply::decode(reply.payload.as_ref()).unwrap()
        }
    };
    let hello = |session: u64, auth: Vec<u8>| dtle_proto::v1::Hello {
        version: dtle_proto::WIRE_FORMAT_VERSION,
        job: job.clone(),
        session,
        auth,
    };
    // Unsigned, signed with another key, and the live session's own hello replayed.
    let unsigned = ask(hello(2002, Vec::new())).await;
    assert!(unsigned.error.contains("only authenticated sessions"), "{unsigned:?}");
    assert!(unsigned.position.is_none(), "a refusal discloses no position");
    let other_key = dtle_transport::nats::SessionKey::generate().unwrap();
    let forged = ask(hello(2003, other_key.sign_hello(&job, 2003))).await;
    assert!(forged.error.contains("not signed with this dest's session key"), "{forged:?}");
    let replayed = ask(hello(1001, key.sign_hello(&job, 1001))).await;
    assert!(replayed.error.contains("already started"), "{replayed:?}");
    assert!(unsigned.retry && forged.retry && replayed.retry, "a src of the job starts again with the key read anew");

    // The live session was not reset: its next batch is taken in sequence.
    src.send(b"second").await.unwrap();
    assert_eq!(received.recv().await.unwrap(), (2, b"second".to_vec()));
    // A src of the job with the key still starts a new session.
    let (mut next, _acks) = NatsSource::connect(o, &job, 1002).await.unwrap();
    next.hello(&job, Duration::from_secs(10)).await.expect("a new signed session");
    next.send(b"new").await.unwrap();
    assert_eq!(received.recv().await.unwrap(), (1, b"new".to_vec()));
}
