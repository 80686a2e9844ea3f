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
    /// Reads once, on the source's own thread (see [`run_polled`]).
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
///
/// The source reads on a thread of its own, never on the agent's: a read
/// that hangs (procfs of a process stuck in the kernel, a file system that
/// does not answer) holds up only this source. While a collection has not
/// returned, no other is started; each tick it is late, the source reports
/// itself degraded and says for how long, and when it returns its result
/// counts as usual.
pub async fn run_polled<S: PolledSource>(
    source: S,
    interval: Duration,
    clock: Arc<dyn Clock>,
    sink: ObservationSink,
    health: SourceHealth,
    cancel: CancellationToken,
) {
    let name = source.name();
    let (ask, asked) = std::sync::mpsc::sync_channel::<()>(1);
    let (answer, mut answers) = tokio::sync::mpsc::channel::<(Collection, Duration)>(1);
    let reader_clock = Arc::clone(&clock);
    let started = std::thread::Builder::new()
        .name(format!("aegis-{name}"))
        .spawn(move || {
            let mut source = source;
            for () in asked {
                let began = reader_clock.monotonic();
                let collection = source.collect(reader_clock.as_ref());
                let took = reader_clock.monotonic().saturating_sub(began);
                if answer.blocking_send((collection, took)).is_err() {
                    return;
                }
            }
        });
    if let Err(e) = started {
        tracing::error!(source = name, error = %e, "the source's thread could not start");
        health.update(|h| {
            h.state = SourceState::Failing;
            h.last_error = Some(format!("its thread could not start: {e}"));
        });
        return;
    }
    let mut ticker = tokio::time::interval(interval);
    // A late tick (machine suspended, overloaded) is not made up for by a
    // burst: rates use the real elapsed time anyway.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // When the collection under way was asked for (monotonic).
    let mut under_way: Option<Duration> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {
                match under_way {
                    None => {
                        if ask.try_send(()).is_ok() {
                            under_way = Some(clock.monotonic());
                        }
                    }
                    Some(since) => {
                        let late = clock.monotonic().saturating_sub(since);
                        tracing::warn!(source = name, waited_s = late.as_secs(), "a collection has not returned");
                        health.update(|h| {
                            h.state = SourceState::Degraded;
                            h.last_error = Some(format!(
                                "a collection has not returned after {}s (a read that hangs?); the next starts when it does",
                                late.as_secs()
                            ));
                        });
                    }
                }
            }
            Some((collection, took)) = answers.recv() => {
                under_way = None;
                record(name, collection, took, &clock, &sink, &health);
            }
        }
    }
    tracing::debug!(source = name, "source stopped");
}

/// Hands one collection's observations on and records how it went.
fn record(
    name: &'static str,
    collection: Collection,
    took: Duration,
    clock: &Arc<dyn Clock>,
    sink: &ObservationSink,
    health: &SourceHealth,
) {
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
    let error = collection
        .unavailable
        .or_else(|| collection.errors.into_iter().next());
    health.record(state, clock.wall_ms(), took, count, error);
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::{Family, SeriesKey, SystemClock};
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    static GAUGE: Family = Family {
        name: "test_gauge",
        help: "",
        label: None,
    };

    /// A source whose second collection hangs until released.
    struct Hangs {
        calls: Arc<AtomicU32>,
        released: Arc<AtomicBool>,
    }

    impl PolledSource for Hangs {
        fn name(&self) -> &'static str {
            "hangs"
        }

        fn collect(&mut self, clock: &dyn Clock) -> Collection {
            if self.calls.fetch_add(1, Ordering::SeqCst) == 1 {
                while !self.released.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Collection {
                observations: vec![Observation::value(
                    SeriesKey::global(&GAUGE),
                    clock.wall_ms(),
                    1.0,
                )],
                ..Collection::default()
            }
        }
    }

    /// Regression: a collection ran on the agent's one thread, so a read
    /// that hung stopped every check, heal and API answer with it.
    #[tokio::test]
    async fn a_collection_that_hangs_holds_up_only_its_source() {
        let calls = Arc::new(AtomicU32::new(0));
        let released = Arc::new(AtomicBool::new(false));
        let source = Hangs {
            calls: Arc::clone(&calls),
            released: Arc::clone(&released),
        };
        // Were the collection made on this runtime's thread, nothing here
        // would run again until it returned: let it go after a while, so
        // that such a regression fails below instead of hanging.
        let guard = Arc::clone(&released);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(30));
            guard.store(true, Ordering::SeqCst);
        });
        let (sink, mut rx) = crate::sink::channel(64);
        let health = SourceHealth::new("hangs");
        let cancel = CancellationToken::new();
        let running = tokio::spawn(run_polled(
            source,
            Duration::from_millis(50),
            Arc::new(SystemClock::new()),
            sink,
            health.clone(),
            cancel.clone(),
        ));
        // The first collection arrives; the second hangs. Meanwhile this
        // (current-thread) runtime goes on, and the source says it waits.
        assert!(rx.recv().await.is_some());
        let waited = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let h = health.snapshot();
                if h.state == SourceState::Degraded
                    && h.last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("has not returned"))
                {
                    return h;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the source never said it waits");
        assert_eq!(waited.collections, 1);
        // Only one collection is under way at a time.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        released.store(true, Ordering::SeqCst);
        assert!(rx.recv().await.is_some());
        let back = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let h = health.snapshot();
                if h.state == SourceState::Ok && h.collections >= 3 {
                    return h;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the source never came back");
        assert_eq!(back.last_error, None);
        cancel.cancel();
        running.await.expect("stopped");
    }
}
