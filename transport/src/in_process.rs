//! In-process transport: a bounded queue of batches and an ack queue, for src and dest in one process.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Semaphore};

use crate::{Ack, Batch, TransportError};

/// Creates a connected pair allowing `window` unacknowledged batches and `window_bytes` bytes of them in flight
/// (a batch larger than `window_bytes` passes alone): the sending half, the stream of acknowledgements it gets
/// back, and the receiving half.
pub fn channel<T, P>(
    window: usize,
    window_bytes: usize,
) -> (BatchSender<T>, mpsc::UnboundedReceiver<Ack<P>>, BatchReceiver<T, P>) {
    let window = window.max(1);
    let budget_kib = (window_bytes / 1024).clamp(1, u32::MAX as usize) as u32;
    let (batch_tx, batch_rx) = mpsc::unbounded_channel();
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(window));
    let bytes = Arc::new(Semaphore::new(budget_kib as usize));
    let state = AckState {
        acks: ack_tx,
        permits: permits.clone(),
        bytes: bytes.clone(),
        in_flight: VecDeque::new(),
        last_acked: 0,
    };
    (
        BatchSender { batches: batch_tx, permits, bytes, budget_kib, next_seq: 1 },
        ack_rx,
        BatchReceiver { batches: batch_rx, acker: BatchAcker { state: Arc::new(Mutex::new(state)) } },
    )
}

/// The sending half: sequence numbers start at 1.
pub struct BatchSender<T> {
    batches: mpsc::UnboundedSender<(Batch<T>, u32)>,
    permits: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    budget_kib: u32,
    next_seq: u64,
}

impl<T> BatchSender<T> {
    /// Sends a batch of about `size` bytes, waiting while the window is full. Returns its sequence number.
    pub async fn send(&mut self, payload: T, size: usize) -> Result<u64, TransportError> {
        let kib = ((size / 1024) as u32).clamp(1, self.budget_kib);
        let permit = self.permits.acquire().await.map_err(|_| TransportError::Closed)?;
        permit.forget();
        let bytes = self.bytes.acquire_many(kib).await.map_err(|_| TransportError::Closed)?;
        bytes.forget();
        let seq = self.next_seq;
        self.batches.send((Batch { seq, payload }, kib)).map_err(|_| TransportError::Closed)?;
        self.next_seq += 1;
        Ok(seq)
    }
}

pub struct BatchReceiver<T, P> {
    batches: mpsc::UnboundedReceiver<(Batch<T>, u32)>,
    acker: BatchAcker<P>,
}

/// What the receiving side keeps to acknowledge: batches received and not yet acknowledged, and the budgets their
/// acknowledgement frees.
struct AckState<P> {
    acks: mpsc::UnboundedSender<Ack<P>>,
    permits: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    /// (seq, KiB) of batches received and not yet acknowledged.
    in_flight: VecDeque<(u64, u32)>,
    last_acked: u64,
}

/// Acknowledges batches of a [`BatchReceiver`] from another task (acknowledgements that complete later than the
/// batch is taken, e.g. after a broker's delivery reports); cloned handles share one order.
pub struct BatchAcker<P> {
    state: Arc<Mutex<AckState<P>>>,
}

impl<P> Clone for BatchAcker<P> {
    fn clone(&self) -> Self {
        BatchAcker { state: self.state.clone() }
    }
}

impl<P> BatchAcker<P> {
    /// Acknowledges every batch up to `seq` (in order; acks never go backwards) and frees their window slots.
    pub fn ack(&self, seq: u64, progress: P) -> Result<(), TransportError> {
        let mut state = self.state.lock().map_err(|_| TransportError::Closed)?;
        if seq <= state.last_acked {
            return Err(TransportError::AckOutOfOrder { acked: seq, last: state.last_acked });
        }
        let freed = seq - state.last_acked;
        state.last_acked = seq;
        state.permits.add_permits(freed as usize);
        while let Some(&(s, kib)) = state.in_flight.front() {
            if s > seq {
                break;
            }
            state.in_flight.pop_front();
            state.bytes.add_permits(kib as usize);
        }
        // A sender that went away no longer needs acks; that is not an error for the receiver.
        let _ = state.acks.send(Ack { seq, progress });
        Ok(())
    }

    fn received(&self, seq: u64, kib: u32) {
        if let Ok(mut state) = self.state.lock() {
            state.in_flight.push_back((seq, kib));
        }
    }
}

impl<T, P> BatchReceiver<T, P> {
    /// The next batch, or `None` when the sender is gone and everything was received.
    pub async fn recv(&mut self) -> Option<Batch<T>> {
        let (batch, kib) = self.batches.recv().await?;
        self.acker.received(batch.seq, kib);
        Some(batch)
    }

    /// A batch already waiting, without blocking.
    pub fn try_recv(&mut self) -> Option<Batch<T>> {
        let (batch, kib) = self.batches.try_recv().ok()?;
        self.acker.received(batch.seq, kib);
        Some(batch)
    }

    /// Acknowledges every batch up to `seq` (in order; acks never go backwards) and frees their window slots.
    pub fn ack(&mut self, seq: u64, progress: P) -> Result<(), TransportError> {
        self.acker.ack(seq, progress)
    }

    /// A handle that acknowledges from another task.
    pub fn acker(&self) -> BatchAcker<P> {
        self.acker.clone()
    }
}

impl<T, P> Drop for BatchReceiver<T, P> {
    /// A sender waiting for a window slot or for bytes would otherwise wait forever once the receiver is gone (the
    /// dest failed on a full window): closing both budgets makes its `send` return `Closed`.
    fn drop(&mut self) {
        if let Ok(state) = self.acker.state.lock() {
            state.permits.close();
            state.bytes.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn delivers_in_order_and_acks_back() {
        let (mut tx, mut acks, mut rx) = channel::<&str, u32>(4, 1 << 20);
        assert_eq!(tx.send("a", 1).await.unwrap(), 1);
        assert_eq!(tx.send("b", 1).await.unwrap(), 2);
        assert_eq!(rx.recv().await.unwrap(), Batch { seq: 1, payload: "a" });
        assert_eq!(rx.recv().await.unwrap(), Batch { seq: 2, payload: "b" });
        rx.ack(2, 7).unwrap();
        assert_eq!(acks.recv().await.unwrap(), Ack { seq: 2, progress: 7 });
        assert!(matches!(rx.ack(1, 0), Err(TransportError::AckOutOfOrder { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn full_window_blocks_the_sender_until_an_ack() {
        let (mut tx, _acks, mut rx) = channel::<u32, ()>(2, 1 << 20);
        tx.send(1, 1).await.unwrap();
        tx.send(2, 1).await.unwrap();
        let blocked = tokio::time::timeout(Duration::from_secs(5), tx.send(3, 1)).await;
        assert!(blocked.is_err(), "third send must wait for an ack");
        rx.recv().await.unwrap();
        rx.ack(1, ()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), tx.send(3, 1)).await.expect("window freed").unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_byte_budget_bounds_memory_and_a_huge_batch_still_passes_alone() {
        let (mut tx, _acks, mut rx) = channel::<u32, ()>(100, 10 * 1024);
        tx.send(1, 6 * 1024).await.unwrap();
        let blocked = tokio::time::timeout(Duration::from_secs(5), tx.send(2, 6 * 1024)).await;
        assert!(blocked.is_err(), "12 KiB in flight exceeds the 10 KiB budget");
        rx.recv().await.unwrap();
        rx.ack(1, ()).unwrap();
        // Larger than the whole budget: waits for an empty window, then goes.
        tokio::time::timeout(Duration::from_secs(5), tx.send(3, 1 << 30)).await.expect("passes alone").unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_sender_waiting_on_a_full_window_is_told_when_the_receiver_goes() {
        // Regression: a dest that failed with a full window (a target lost inside a big transaction) left the
        // sender parked on the window forever, and with it the whole one-process pipeline.
        let (mut tx, _acks, mut rx) = channel::<u32, ()>(2, 1 << 20);
        tx.send(1, 1).await.unwrap();
        tx.send(2, 1).await.unwrap();
        rx.recv().await.unwrap();
        let waiting = tokio::spawn(async move { tx.send(3, 1).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(rx);
        let result = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("the sender is woken").unwrap();
        assert!(matches!(result, Err(TransportError::Closed)), "{result:?}");

        // The same for the byte budget.
        let (mut tx, _acks, rx) = channel::<u32, ()>(100, 10 * 1024);
        tx.send(1, 8 * 1024).await.unwrap();
        let waiting = tokio::spawn(async move { tx.send(2, 8 * 1024).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(rx);
        let result = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("the sender is woken").unwrap();
        assert!(matches!(result, Err(TransportError::Closed)), "{result:?}");
    }

    #[tokio::test]
    async fn closed_sides_are_reported() {
        let (mut tx, _acks, rx) = channel::<u32, ()>(2, 1 << 20);
        drop(rx);
        assert!(matches!(tx.send(1, 1).await, Err(TransportError::Closed)));
        let (tx, _acks, mut rx) = channel::<u32, ()>(2, 1 << 20);
        drop(tx);
        assert!(rx.recv().await.is_none());
    }
}
