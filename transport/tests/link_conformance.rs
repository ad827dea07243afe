//! One conformance suite for the [`LinkSender`] / [`LinkReceiver`] adapters, run against both backends.
//!
//! The in-process backend always runs. The NATS backend needs servers (tests/nats.sh start 4222 and
//! tests/nats.sh start 4223 65536): skipped without DTLE_TEST_NATS_URL unless DTLE_TEST_REQUIRE_SERVERS=1. The
//! big-payload check uses the 64 KiB max_payload server at DTLE_TEST_NATS_SMALL_URL (default
//! nats://127.0.0.1:4223).

use std::time::Duration;

use dtle_proto::v1::HelloReply;
use dtle_transport::compression::CompressionSpec;
use dtle_transport::link::{in_process_link, LinkReceiver, LinkSender, NatsLinkReceiver, NatsLinkSender};
use dtle_transport::nats::NatsOptions;
use dtle_transport::TransportError;
use tokio::time::timeout;

/// The conformance suite: generic over the backend.
mod suite {
    use super::*;

    const WAIT: Duration = Duration::from_secs(30);

    /// The payload of batch `i`: distinct content and length per batch.
    pub fn payload(i: u64) -> Vec<u8> {
        let mut p = i.to_le_bytes().to_vec();
        p.extend((0..(i % 97) * 13).map(|b| (b * 7 + i) as u8));
        p
    }

    /// `len` bytes that no compression shrinks (xorshift).
    pub fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    async fn recv_one<R: LinkReceiver>(rx: &mut R) -> (u64, Vec<u8>) {
        match timeout(WAIT, rx.recv()).await {
            Ok(Ok(Some(b))) => b,
            Ok(Ok(None)) => panic!("the link ended early"),
            Ok(Err(e)) => panic!("recv failed: {e}"),
            Err(_) => panic!("no batch within {WAIT:?}"),
        }
    }

    /// Waits until the sender has seen the acknowledgement of `seq` (acks only ever grow).
    async fn wait_for_ack<S: LinkSender>(tx: &mut S, seq: u64) {
        let mut last = 0;
        while last < seq {
            let ack = timeout(WAIT, tx.next_ack()).await.expect("an ack in time").expect("the ack stream ended");
            assert!(ack > last, "acks went backwards: {ack} after {last}");
            last = ack;
        }
        assert_eq!(last, seq, "acknowledged beyond what was sent");
    }

    /// Batches 1..=n arrive in order with their payloads; every ack reaches the sender; nothing stays in flight;
    /// an ack never goes backwards.
    pub async fn delivers_in_order_and_acks_flow_back<S: LinkSender, R: LinkReceiver>(tx: &mut S, rx: &mut R, n: u64) {
        let sending = async {
            for i in 1..=n {
                assert_eq!(tx.send(payload(i)).await.expect("send"), i, "sequence numbers are 1, 2, 3, ...");
            }
        };
        let receiving = async {
            for i in 1..=n {
                let (seq, p) = recv_one(rx).await;
                assert_eq!(seq, i, "delivered out of order");
                assert_eq!(p, payload(i), "payload of batch {i}");
                rx.ack(seq).await.expect("ack");
            }
        };
        timeout(WAIT * 2, async { tokio::join!(sending, receiving) }).await.expect("all batches delivered in time");
        wait_for_ack(tx, n).await;
        assert_eq!(tx.in_flight(), 0, "everything was acknowledged");
        let again = rx.ack(n).await;
        assert!(
            matches!(again, Err(TransportError::AckOutOfOrder { acked, last }) if acked == n && last == n),
            "{again:?}"
        );
    }

    /// With `window` batches unacknowledged the next send waits; one ack lets it through.
    pub async fn full_window_holds_the_sender<S: LinkSender, R: LinkReceiver>(tx: &mut S, rx: &mut R, window: u64) {
        for i in 1..=window {
            assert_eq!(timeout(WAIT, tx.send(payload(i))).await.expect("window not full yet").expect("send"), i);
        }
        assert_eq!(tx.in_flight(), window);
        let held = window + 1;
        {
            let blocked = tx.send(payload(held));
            tokio::pin!(blocked);
            assert!(
                timeout(Duration::from_millis(500), &mut blocked).await.is_err(),
                "send {held} must wait while {window} batches are unacknowledged"
            );
            let (seq, _) = recv_one(rx).await;
            assert_eq!(seq, 1);
            rx.ack(1).await.expect("ack");
            let seq = timeout(WAIT, blocked).await.expect("one ack frees the window").expect("send");
            assert_eq!(seq, held);
        }
        for i in 2..=held {
            let (seq, p) = recv_one(rx).await;
            assert_eq!((seq, p), (i, payload(i)));
        }
        rx.ack(held).await.expect("ack");
        wait_for_ack(tx, held).await;
        assert_eq!(tx.in_flight(), 0);
    }

    /// A payload of `len` bytes (far beyond NATS' max_payload) passes whole, and the link goes on after it.
    pub async fn a_big_payload_passes<S: LinkSender, R: LinkReceiver>(tx: &mut S, rx: &mut R, len: usize) {
        let big = noise(len);
        let sending = async {
            assert_eq!(tx.send(big.clone()).await.expect("send big"), 1);
            assert_eq!(tx.send(b"after".to_vec()).await.expect("send after"), 2);
        };
        let receiving = async {
            let (seq, p) = recv_one(rx).await;
            assert_eq!(seq, 1);
            assert!(p == big, "the big payload differs ({} bytes received, {len} sent)", p.len());
            rx.ack(1).await.expect("ack");
            assert_eq!(recv_one(rx).await, (2, b"after".to_vec()));
            rx.ack(2).await.expect("ack");
        };
        timeout(WAIT * 2, async { tokio::join!(sending, receiving) }).await.expect("big payload in time");
        wait_for_ack(tx, 2).await;
    }

    /// What the sender saw after its receiver went away.
    #[derive(Debug)]
    pub struct AfterClose {
        /// The error of the first send that failed.
        pub send_error: TransportError,
        /// The ack stream ended (`next_ack` returned `None`).
        pub acks_ended: bool,
    }

    /// Drops the receiver: the ack stream ends or a send fails within `window + 1` sends (each within `limit`);
    /// no sender is left hanging.
    pub async fn closing_the_receiver_stops_the_sender<S: LinkSender, R: LinkReceiver>(
        tx: &mut S,
        rx: R,
        window: u64,
        limit: Duration,
    ) -> AfterClose {
        assert_eq!(tx.send(payload(1)).await.expect("send before close"), 1);
        drop(rx);
        let mut acks_ended = false;
        while let Ok(ack) = timeout(Duration::from_millis(200), tx.next_ack()).await {
            if ack.is_none() {
                acks_ended = true;
                break;
            }
        }
        for i in 0..=window {
            match timeout(limit, tx.send(payload(i + 2))).await {
                Ok(Ok(_)) => continue,
                Ok(Err(send_error)) => return AfterClose { send_error, acks_ended },
                Err(_) => panic!("send {} hung for {limit:?} after the receiver was closed", i + 2),
            }
        }
        panic!(
            "{} sends succeeded after the receiver was closed (window {window}); acks ended: {acks_ended}",
            window + 1
        )
    }
}

// ---------------------------------------------------------------------------------------------------------------
// In-process

#[tokio::test]
async fn in_process_delivers_in_order_and_acks_flow_back() {
    let (mut tx, mut rx) = in_process_link(4, 1 << 20);
    suite::delivers_in_order_and_acks_flow_back(&mut tx, &mut rx, 200).await;
}

#[tokio::test]
async fn in_process_full_window_holds_the_sender() {
    let (mut tx, mut rx) = in_process_link(3, 1 << 20);
    suite::full_window_holds_the_sender(&mut tx, &mut rx, 3).await;
}

#[tokio::test]
async fn in_process_big_payload_passes() {
    // Larger than the whole byte budget: passes alone.
    let (mut tx, mut rx) = in_process_link(4, 64 * 1024);
    suite::a_big_payload_passes(&mut tx, &mut rx, 4 << 20).await;
}

#[tokio::test]
async fn in_process_closing_the_receiver_stops_the_sender() {
    let (mut tx, rx) = in_process_link(2, 1 << 20);
    let seen = suite::closing_the_receiver_stops_the_sender(&mut tx, rx, 2, Duration::from_secs(5)).await;
    assert!(matches!(seen.send_error, TransportError::Closed), "{seen:?}");
    assert!(seen.acks_ended, "{seen:?}");
}

#[tokio::test]
async fn in_process_closing_the_receiver_releases_a_sender_held_by_the_window() {
    let (mut tx, rx) = in_process_link(1, 1 << 20);
    tx.send(vec![1]).await.unwrap();
    let held = tokio::spawn(async move { tx.send(vec![2]).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!held.is_finished(), "the window holds the second send");
    drop(rx);
    let r = timeout(Duration::from_secs(5), held).await.expect("released").unwrap();
    assert!(matches!(r, Err(TransportError::Closed)), "{r:?}");
}

#[tokio::test]
async fn boxed_links_are_links() {
    let (tx, rx) = in_process_link(4, 1 << 20);
    let (mut tx, mut rx): (Box<dyn LinkSender>, Box<dyn LinkReceiver>) = (Box::new(tx), Box::new(rx));
    suite::delivers_in_order_and_acks_flow_back(&mut tx, &mut rx, 10).await;
}

// ---------------------------------------------------------------------------------------------------------------
// NATS

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

fn small_nats_url() -> String {
    match std::env::var("DTLE_TEST_NATS_SMALL_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => "nats://127.0.0.1:4223".to_string(),
    }
}

fn unique(name: &str) -> String {
    format!(
        "link-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    )
}

/// A connected NATS link: the receiver binds first, then the sender's hello is answered by the receiver.
async fn nats_link(url: &str, window: usize, ack_timeout: Duration) -> (NatsLinkSender, NatsLinkReceiver) {
    let job = unique("conf");
    let opts = NatsOptions {
        urls: vec![url.to_string()],
        compression: CompressionSpec::parse("zstd:1").unwrap(),
        window,
        ack_timeout,
        ..Default::default()
    };
    let mut rx = NatsLinkReceiver::bind(&opts, &job, HelloReply { stage: 2, ..Default::default() }).await.unwrap();
    let (connected, accepted) =
        tokio::join!(NatsLinkSender::connect(opts.clone(), &job, 42, Duration::from_secs(10)), rx.accept());
    let (tx, reply) = connected.unwrap();
    assert!(reply.error.is_empty() && reply.stage == 2, "{reply:?}");
    assert_eq!(accepted.unwrap().session, 42);
    assert_eq!(rx.session(), Some(42));
    (tx, rx)
}

#[tokio::test]
async fn nats_delivers_in_order_and_acks_flow_back() {
    let Some(url) = nats_url() else { return };
    let (mut tx, mut rx) = nats_link(&url, 4, Duration::from_secs(10)).await;
    suite::delivers_in_order_and_acks_flow_back(&mut tx, &mut rx, 200).await;
}

#[tokio::test]
async fn nats_full_window_holds_the_sender() {
    let Some(url) = nats_url() else { return };
    let (mut tx, mut rx) = nats_link(&url, 3, Duration::from_secs(10)).await;
    suite::full_window_holds_the_sender(&mut tx, &mut rx, 3).await;
}

#[tokio::test]
async fn nats_big_payload_passes() {
    let Some(_) = nats_url() else { return };
    let (mut tx, mut rx) = nats_link(&small_nats_url(), 2, Duration::from_secs(10)).await;
    suite::a_big_payload_passes(&mut tx, &mut rx, 4 << 20).await;
    // Incompressible: what went over the wire is far above the 64 KiB max_payload, so it was split.
    assert!(tx.source().bytes_sent > 1 << 20, "{} bytes sent", tx.source().bytes_sent);
}

#[tokio::test]
async fn nats_closing_the_receiver_stops_the_sender() {
    let Some(url) = nats_url() else { return };
    let (mut tx, rx) = nats_link(&url, 2, Duration::from_secs(2)).await;
    let seen = suite::closing_the_receiver_stops_the_sender(&mut tx, rx, 2, Duration::from_secs(10)).await;
    // NATS cannot tell that the dest went away: acks stop, and the full window times out.
    assert!(matches!(seen.send_error, TransportError::AckTimeout { .. }), "{seen:?}");
    assert!(seen.send_error.is_transient());
}
