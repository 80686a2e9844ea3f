//! Runs a polled source on its interval until cancelled, keeping its health.
//!
//! A failing collection never stops the loop: it is logged, counted in the
//! source's health, and the next tick comes as usual.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aegis_core::status::{SourceState, SourceStatus};
use aegis_core::{Clock, Observation};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::sink::ObservationSink;

/// What one collection produced.
#[derive(Debug, Default)]
pub struct Collection {
    /// The observations read.
    pub observations: Vec<Observation>,
    /// Problems that did not stop the collection (one file unreadable...).
    pub errors: Vec<String>,
    /// Set when the thing the source reads is absent altogether.
    pub unavailable: Option<String>,
}

/// A source read on a schedule.
pub trait PolledSource: Send + 'static {
    /// Short, stable name: `host`, `docker`...
    fn name(&self) -> &'static str;
    /// Reads once. Must not block for long: procfs reads only.
    fn collect(&mut self, clock: &dyn Clock) -> Collection;
}

/// Shared, lock-protected health of one source. The lock is only ever held
/// for a copy, never across an `.await`.
#[derive(Debug, Clone)]
pub struct SourceHealth(Arc<Mutex<SourceStatus>>);

impl SourceHealth {
    /// Health of a source that has not collected yet.
    pub fn new(name: &str) -> Self {
        Self(Arc::new(Mutex::new(SourceStatus {
            name: name.to_string(),
            state: SourceState::Starting,
            last_collection_ms: None,
            last_duration_ms: None,
            collections: 0,
            errors: 0,
            last_error: None,
            last_observations: 0,
            detail: None,
        })))
    }

    /// Says what the source is connected to and doing (`None`: nothing).
    pub fn set_detail(&self, detail: Option<String>) {
        self.update(|h| h.detail = detail);
    }

    /// A copy of the current health.
    pub fn snapshot(&self) -> SourceStatus {
        match self.0.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Records the end of a collection done outside [`run_polled`].
    pub fn record(
        &self,
        state: SourceState,
        at_ms: i64,
        took: Duration,
        observations: usize,
        error: Option<String>,
    ) {
        self.update(|h| {
            h.state = state;
            h.collections += 1;
            h.last_collection_ms = Some(at_ms);
            h.last_duration_ms = Some(took.as_secs_f64() * 1000.0);
            h.last_observations = observations;
            if error.is_some() {
                h.errors += 1;
            }
            h.last_error = error;
        });
    }

    /// Adds `more` observations to the last collection's (those a source
    /// sends after it has recorded the collection).
    pub fn counted(&self, more: usize) {
        self.update(|h| h.last_observations += more);
    }

    fn update(&self, f: impl FnOnce(&mut SourceStatus)) {
        let mut guard = match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard);
    }
}

/// Runs `source` every `interval` (the first collection right away) until
/// `cancel` fires. Observations go to `sink`, health to `health`.
pub async fn run_polled<S: PolledSource>(
    mut source: S,
    interval: Duration,
    clock: Arc<dyn Clock>,
    sink: ObservationSink,
    health: SourceHealth,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    // A late tick (machine suspended, overloaded) is not made up for by a
    // burst: rates use the real elapsed time anyway.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let name = source.name();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let started = clock.monotonic();
        let collection = source.collect(clock.as_ref());
        let took = clock.monotonic().saturating_sub(started);
        let count = collection.observations.len();
        let accepted = sink.send_all(collection.observations);
        if accepted < count {
            tracing::warn!(
                source = name,
                shed = count - accepted,
                "observation channel full, shed newest"
            );
        }
        let state = if let Some(why) = &collection.unavailable {
            tracing::warn!(source = name, reason = %why, "source unavailable");
            SourceState::Unavailable
        } else if collection.errors.is_empty() {
            SourceState::Ok
        } else {
            for e in &collection.errors {
                tracing::warn!(source = name, error = %e, "collection problem");
            }
            if count == 0 {
                SourceState::Failing
            } else {
                SourceState::Degraded
            }
        };
        let at = clock.wall_ms();
        health.update(|h| {
            h.state = state;
            h.collections += 1;
            h.last_collection_ms = Some(at);
            h.last_duration_ms = Some(took.as_secs_f64() * 1000.0);
            h.last_observations = count;
            let failed = !collection.errors.is_empty() || collection.unavailable.is_some();
            if failed {
                h.errors += 1;
            }
            h.last_error = collection
                .unavailable
                .clone()
                .or_else(|| collection.errors.first().cloned());
        });
    }
    tracing::debug!(source = name, "source stopped");
}
