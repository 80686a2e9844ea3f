//! The sending end of the bounded observation channel.
//!
//! Overflow policy: **shed the newest**. A source never waits for the
//! pipeline (a slow consumer must not stall collection or pile up memory);
//! when the channel is full the observation being sent is dropped and
//! counted. The count is exported as `aegis_observations_dropped_total`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aegis_core::Observation;
use tokio::sync::mpsc;

/// A cloneable, never-blocking sender of observations.
#[derive(Debug, Clone)]
pub struct ObservationSink {
    tx: mpsc::Sender<Observation>,
    dropped: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
}

/// Makes a bounded observation channel.
pub fn channel(capacity: usize) -> (ObservationSink, mpsc::Receiver<Observation>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        ObservationSink {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            sent: Arc::new(AtomicU64::new(0)),
        },
        rx,
    )
}

impl ObservationSink {
    /// Sends one observation, or sheds it if the channel is full. Returns
    /// whether it was accepted. A closed channel (shutdown) also sheds.
    pub fn send(&self, obs: Observation) -> bool {
        match self.tx.try_send(obs) {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Sends many; returns how many were accepted.
    pub fn send_all(&self, batch: impl IntoIterator<Item = Observation>) -> usize {
        batch.into_iter().map(|o| usize::from(self.send(o))).sum()
    }

    /// Observations shed since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Observations accepted since start.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Observations waiting in the channel now.
    pub fn len(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Whether the channel is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The channel's bound.
    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::{Family, SeriesKey};

    static F: Family = Family {
        name: "t",
        help: "",
        label: None,
    };

    #[test]
    fn full_channel_sheds_newest_and_counts() {
        let (sink, mut rx) = channel(2);
        for i in 0..5 {
            sink.send(Observation::value(SeriesKey::global(&F), i, i as f64));
        }
        assert_eq!((sink.sent(), sink.dropped(), sink.len()), (2, 3, 2));
        // The two kept are the oldest: the newest were shed.
        assert_eq!(rx.try_recv().map(|o| o.at_ms), Ok(0));
        assert_eq!(rx.try_recv().map(|o| o.at_ms), Ok(1));
        assert!(rx.try_recv().is_err());
    }
}
