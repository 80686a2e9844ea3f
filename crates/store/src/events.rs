//! Events: what must never be lost (anomalies opening and closing, every
//! healing record). They wait in memory, in order, until a commit holds
//! them; a commit that fails (a full disk) keeps them for the next one.
//! Only when the bound is reached are the oldest let go, and each one is
//! counted as lost.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use aegis_core::check::TransitionRecord;
use aegis_core::status::{ActionRecord, AnomalyRecord, RecordOutcome};

/// One thing to write that must not be shed for room.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreEvent {
    /// An anomaly opened.
    AnomalyOpened(AnomalyRecord),
    /// An anomaly closed.
    AnomalyClosed {
        /// Its id.
        id: i64,
        /// When, Unix ms.
        closed_ms: i64,
        /// Its final details.
        detail: serde_json::Value,
    },
    /// An anomaly became evidence of the incident another one began.
    AnomalyCause {
        /// The anomaly.
        id: i64,
        /// The incident's cause.
        cause: i64,
    },
    /// A healing record.
    Action(ActionRecord),
    /// A check changed state.
    CheckTransition(TransitionRecord),
}

impl StoreEvent {
    /// Writes the event in `tx`.
    pub(crate) fn write(&self, tx: &rusqlite::Transaction<'_>) -> Result<(), rusqlite::Error> {
        match self {
            StoreEvent::AnomalyOpened(a) => crate::anomalies::insert(tx, a),
            StoreEvent::AnomalyClosed {
                id,
                closed_ms,
                detail,
            } => crate::anomalies::close(tx, *id, *closed_ms, detail),
            StoreEvent::AnomalyCause { id, cause } => crate::anomalies::set_cause(tx, *id, *cause),
            StoreEvent::Action(r) => {
                crate::actions::insert(tx, r)?;
                // An anomaly that joined a healing incident is that
                // incident's evidence, not an incident of its own.
                if let (RecordOutcome::Joined, Some(anomaly)) = (r.outcome, r.anomaly_id) {
                    crate::anomalies::join(tx, anomaly, r.incident)?;
                }
                Ok(())
            }
            StoreEvent::CheckTransition(t) => crate::checks::insert(tx, t),
        }
    }

    /// Whether losing it loses a healing record.
    pub(crate) fn is_action(&self) -> bool {
        matches!(self, StoreEvent::Action(_))
    }
}

/// The events waiting for a commit, in order, bounded.
#[derive(Debug)]
pub(crate) struct EventQueue {
    /// Each event with its sequence number.
    queue: Mutex<(VecDeque<(u64, StoreEvent)>, u64)>,
    capacity: usize,
    lost: AtomicU64,
    lost_actions: AtomicU64,
}

impl EventQueue {
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: Mutex::new((VecDeque::new(), 0)),
            capacity: capacity.max(1),
            lost: AtomicU64::new(0),
            lost_actions: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (VecDeque<(u64, StoreEvent)>, u64)> {
        match self.queue.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Adds an event; at the bound the oldest goes, counted as lost.
    pub fn push(&self, event: StoreEvent) {
        let mut g = self.lock();
        let (q, next) = &mut *g;
        if q.len() >= self.capacity {
            if let Some((_, old)) = q.pop_front() {
                self.count_lost(&old);
            }
        }
        *next += 1;
        q.push_back((*next, event));
    }

    fn count_lost(&self, e: &StoreEvent) {
        self.lost.fetch_add(1, Ordering::Relaxed);
        if e.is_action() {
            self.lost_actions.fetch_add(1, Ordering::Relaxed);
        }
        tracing::error!("a stored event was lost: the store's event queue is full");
    }

    /// Up to `n` events from the front with their sequence numbers, left
    /// in the queue until [`EventQueue::commit`].
    pub fn peek(&self, n: usize) -> Vec<(u64, StoreEvent)> {
        self.lock().0.iter().take(n).cloned().collect()
    }

    /// Removes the events up to sequence `last` once a commit holds them
    /// (some may already have gone at the bound).
    pub fn commit(&self, last: u64) {
        let mut g = self.lock();
        while g.0.front().is_some_and(|(seq, _)| *seq <= last) {
            g.0.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.lock().0.len()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    pub fn lost_actions(&self) -> u64 {
        self.lost_actions.load(Ordering::Relaxed)
    }
}
