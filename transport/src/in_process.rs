//! In-process transport: a bounded queue of batches and an ack queue, for src and dest in one process.

use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};

use crate::{Ack, Batch, TransportError};

/// Creates a connected pair allowing `window` unacknowledged batches in flight: the sending half, the stream of
/// acknowledgements it gets back, and the receiving half.
pub fn channel<T, P>(window: usize) -> (BatchSender<T>, mpsc::UnboundedReceiver<Ack<P>>, BatchReceiver<T, P>) {
    let window = window.max(1);
    let (batch_tx, batch_rx) = mpsc::unbounded_channel();
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(window));
    (
        BatchSender { batches: batch_tx, permits: permits.clone(), next_seq: 1 },
        ack_rx,
        BatchReceiver { batches: batch_rx, acks: ack_tx, permits, last_acked: 0 },
    )
}

/// The sending half: sequence numbers start at 1.
pub struct BatchSender<T> {
    batches: mpsc::UnboundedSender<Batch<T>>,
    permits: Arc<Semaphore>,
    next_seq: u64,
}

impl<T> BatchSender<T> {
    /// Sends a batch, waiting while the window is full. Returns its sequence number.
    pub async fn send(&mut self, payload: T) -> Result<u64, TransportError> {
        let permit = self.permits.acquire().await.map_err(|_| TransportError::Closed)?;
        permit.forget();
        let seq = self.next_seq;
        self.batches.send(Batch { seq, payload }).map_err(|_| TransportError::Closed)?;
        self.next_seq += 1;
        Ok(seq)
    }
}

pub struct BatchReceiver<T, P> {
    batches: mpsc::UnboundedReceiver<Batch<T>>,
    acks: mpsc::UnboundedSender<Ack<P>>,
    permits: Arc<Semaphore>,
    last_acked: u64,
}

impl<T, P> BatchReceiver<T, P> {
    /// The next batch, or `None` when the sender is gone and everything was received.
    pub async fn recv(&mut self) -> Option<Batch<T>> {
        self.batches.recv().await
    }

    /// A batch already waiting, without blocking.
    pub fn try_recv(&mut self) -> Option<Batch<T>> {
        self.batches.try_recv().ok()
    }

    /// Acknowledges every batch up to `seq` (in order; acks never go backwards) and frees their window slots.
    pub fn ack(&mut self, seq: u64, progress: P) -> Result<(), TransportError> {
        if seq <= self.last_acked {
            return Err(TransportError::AckOutOfOrder { acked: seq, last: self.last_acked });
        }
        let freed = seq - self.last_acked;
        self.last_acked = seq;
        self.permits.add_permits(freed as usize);
        // A sender that went away no longer needs acks; that is not an error for the receiver.
        let _ = self.acks.send(Ack { seq, progress });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn delivers_in_order_and_acks_back() {
        let (mut tx, mut acks, mut rx) = channel::<&str, u32>(4);
        assert_eq!(tx.send("a").await.unwrap(), 1);
        assert_eq!(tx.send("b").await.unwrap(), 2);
        assert_eq!(rx.recv().await.unwrap(), Batch { seq: 1, payload: "a" });
        assert_eq!(rx.recv().await.unwrap(), Batch { seq: 2, payload: "b" });
        rx.ack(2, 7).unwrap();
        assert_eq!(acks.recv().await.unwrap(), Ack { seq: 2, progress: 7 });
        assert!(matches!(rx.ack(1, 0), Err(TransportError::AckOutOfOrder { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn full_window_blocks_the_sender_until_an_ack() {
        let (mut tx, _acks, mut rx) = channel::<u32, ()>(2);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        let blocked = tokio::time::timeout(Duration::from_secs(5), tx.send(3)).await;
        assert!(blocked.is_err(), "third send must wait for an ack");
        rx.recv().await.unwrap();
        rx.ack(1, ()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), tx.send(3)).await.expect("window freed").unwrap();
    }

    #[tokio::test]
    async fn closed_sides_are_reported() {
        let (mut tx, _acks, rx) = channel::<u32, ()>(2);
        drop(rx);
        assert!(matches!(tx.send(1).await, Err(TransportError::Closed)));
        let (tx, _acks, mut rx) = channel::<u32, ()>(2);
        drop(tx);
        assert!(rx.recv().await.is_none());
    }
}
