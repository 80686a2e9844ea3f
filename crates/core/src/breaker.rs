//! A circuit breaker per target that can never stay open for good.
//!
//! Three questions are kept apart:
//! - **what counts as a failure**: only an attempt that ran against the
//!   target and failed. Waiting for a concurrency slot, a rate limit, a
//!   cooldown or a pause are decisions of the guard, reported as skipped or
//!   shed, and never reach the breaker (the prototype counted "no free slot"
//!   as a target failure and paralysed itself);
//! - **when to trip**: after `failure_threshold` consecutive failures;
//! - **how long to stay open**: a cooldown that grows with each consecutive
//!   trip (`base * multiplier^(trips-1)`, capped at `max_cooldown`). When it
//!   has passed, exactly one probe is allowed: success closes the breaker,
//!   failure reopens it for the next, longer cooldown. A probe that never
//!   reports back (lost, cancelled) expires after `probe_timeout`, so the
//!   breaker cannot wedge half-open either.
//!
//! Time is an input: every method takes `now` (a monotonic duration).

use std::time::Duration;

use serde::Serialize;

/// Settings of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// Cooldown after the first trip.
    pub base_cooldown: Duration,
    /// Growth of the cooldown per consecutive trip.
    pub multiplier: u32,
    /// Longest cooldown.
    pub max_cooldown: Duration,
    /// A probe that has not reported back after this long counts as failed.
    pub probe_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 3,
            base_cooldown: Duration::from_secs(30),
            multiplier: 2,
            max_cooldown: Duration::from_secs(30 * 60),
            probe_timeout: Duration::from_secs(5 * 60),
        }
    }
}

/// The breaker's state, with the data each state needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    /// Attempts pass; `failures` consecutive failures so far.
    Closed {
        /// Consecutive failures.
        failures: u32,
    },
    /// Attempts are refused until `until`.
    Open {
        /// When a probe becomes allowed (monotonic).
        #[serde(skip)]
        until: Duration,
        /// Consecutive trips, including this one.
        trips: u32,
    },
    /// One probe is allowed (or in flight since `probe_started`).
    HalfOpen {
        /// Consecutive trips so far.
        trips: u32,
        /// When the probe in flight started, if one is.
        #[serde(skip)]
        probe_started: Option<Duration>,
    },
}

/// The answer to "may I act on this target now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead (a normal attempt).
    Allowed,
    /// Go ahead: this is the half-open probe. Report its result.
    Probe,
    /// Not now; a probe will be allowed at `until`.
    Rejected {
        /// When to ask again (monotonic).
        until: Duration,
    },
}

/// A circuit breaker for one target.
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    state: BreakerState,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: BreakerState::Closed { failures: 0 },
        }
    }

    /// Takes new settings at `now` (a reloaded configuration), keeping its
    /// state: a breaker open for longer than the new longest cooldown
    /// allows its probe at the end of that cooldown instead.
    pub fn set_config(&mut self, config: BreakerConfig, now: Duration) {
        self.config = config;
        if let BreakerState::Open { until, trips } = self.state {
            self.state = BreakerState::Open {
                until: until.min(now + config.max_cooldown),
                trips,
            };
        }
    }

    /// The state as of `now` (an expired open state reads as half-open).
    pub fn state(&mut self, now: Duration) -> BreakerState {
        self.advance(now);
        self.state
    }

    /// Moves time-driven transitions forward.
    fn advance(&mut self, now: Duration) {
        match self.state {
            BreakerState::Open { until, trips } if now >= until => {
                self.state = BreakerState::HalfOpen {
                    trips,
                    probe_started: None,
                };
            }
            BreakerState::HalfOpen {
                trips,
                probe_started: Some(started),
            } if now.saturating_sub(started) >= self.config.probe_timeout => {
                // The probe never reported: count it as failed.
                self.trip(trips + 1, now);
            }
            _ => {}
        }
    }

    fn cooldown(&self, trips: u32) -> Duration {
        let factor = self
            .config
            .multiplier
            .max(1)
            .saturating_pow(trips.saturating_sub(1));
        self.config
            .base_cooldown
            .saturating_mul(factor)
            .min(self.config.max_cooldown)
    }

    fn trip(&mut self, trips: u32, now: Duration) {
        self.state = BreakerState::Open {
            until: now + self.cooldown(trips),
            trips,
        };
    }

    /// Asks to act. A `Probe` admission must be followed by `record`.
    pub fn admit(&mut self, now: Duration) -> Admission {
        self.advance(now);
        match self.state {
            BreakerState::Closed { .. } => Admission::Allowed,
            BreakerState::Open { until, .. } => Admission::Rejected { until },
            BreakerState::HalfOpen {
                trips,
                probe_started: None,
            } => {
                self.state = BreakerState::HalfOpen {
                    trips,
                    probe_started: Some(now),
                };
                Admission::Probe
            }
            BreakerState::HalfOpen {
                probe_started: Some(started),
                ..
            } => Admission::Rejected {
                until: started + self.config.probe_timeout,
            },
        }
    }

    /// Records the outcome of an attempt that ran against the target.
    pub fn record(&mut self, success: bool, now: Duration) {
        self.advance(now);
        self.state = match (self.state, success) {
            (BreakerState::Closed { .. }, true) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, false) => {
                let failures = failures + 1;
                if failures >= self.config.failure_threshold {
                    self.trip(1, now);
                    return;
                }
                BreakerState::Closed { failures }
            }
            (BreakerState::HalfOpen { .. }, true) => BreakerState::Closed { failures: 0 },
            (BreakerState::HalfOpen { trips, .. }, false) => {
                self.trip(trips + 1, now);
                return;
            }
            // A late report while open changes nothing: the cooldown runs.
            (open @ BreakerState::Open { .. }, _) => open,
        };
    }

    /// Gives back a probe admission that did not run (the guard refused the
    /// attempt for another reason after the breaker admitted it).
    pub fn release_probe(&mut self) {
        if let BreakerState::HalfOpen { trips, .. } = self.state {
            self.state = BreakerState::HalfOpen {
                trips,
                probe_started: None,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn config() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 3,
            base_cooldown: s(10),
            multiplier: 2,
            max_cooldown: s(60),
            probe_timeout: s(30),
        }
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let mut b = Breaker::new(config());
        b.record(false, s(0));
        b.record(false, s(1));
        b.record(true, s(2));
        b.record(false, s(3));
        b.record(false, s(4));
        assert_eq!(b.admit(s(5)), Admission::Allowed);
        b.record(false, s(5));
        assert_eq!(b.admit(s(6)), Admission::Rejected { until: s(15) });
    }

    #[test]
    fn half_opens_after_the_cooldown_and_one_probe_decides() {
        let mut b = Breaker::new(config());
        for t in 0..3 {
            b.record(false, s(t));
        }
        assert_eq!(b.admit(s(12)), Admission::Probe);
        // Only one probe at a time.
        assert!(matches!(b.admit(s(12)), Admission::Rejected { .. }));
        b.record(true, s(13));
        assert_eq!(b.state(s(13)), BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn a_failed_probe_reopens_for_longer_up_to_the_cap() {
        let mut b = Breaker::new(config());
        for t in 0..3 {
            b.record(false, s(t));
        }
        let mut now = s(2);
        let mut cooldowns = Vec::new();
        for _ in 0..5 {
            let Admission::Rejected { until } = b.admit(now) else {
                panic!("expected open")
            };
            cooldowns.push((until - now).as_secs());
            now = until;
            assert_eq!(b.admit(now), Admission::Probe);
            b.record(false, now);
        }
        assert_eq!(cooldowns, vec![10, 20, 40, 60, 60]);
    }

    #[test]
    fn a_probe_that_never_reports_expires() {
        let mut b = Breaker::new(config());
        for t in 0..3 {
            b.record(false, s(t));
        }
        assert_eq!(b.admit(s(12)), Admission::Probe);
        // The probe is lost. 30 s later it counts as failed and the breaker
        // reopens; after that cooldown a new probe is allowed.
        assert!(matches!(
            b.state(s(42)),
            BreakerState::Open { trips: 2, .. }
        ));
        assert_eq!(b.admit(s(62)), Admission::Probe);
    }

    #[test]
    fn new_settings_keep_the_state_and_cap_an_open_breaker_at_the_new_longest_cooldown() {
        let mut b = Breaker::new(config());
        for t in 0..3 {
            b.record(false, s(t));
        }
        // Open until 12; shorter settings bring the probe forward to 2 + 5.
        b.set_config(
            BreakerConfig {
                failure_threshold: 1,
                max_cooldown: s(5),
                ..config()
            },
            s(2),
        );
        assert_eq!(b.admit(s(3)), Admission::Rejected { until: s(7) });
        assert_eq!(b.admit(s(7)), Admission::Probe);
        // One failure now trips it (the new threshold), for at most 5 s.
        b.record(true, s(8));
        b.record(false, s(9));
        assert_eq!(b.admit(s(9)), Admission::Rejected { until: s(14) });
        // Longer settings do not lengthen a cooldown under way.
        b.set_config(config(), s(10));
        assert_eq!(b.admit(s(10)), Admission::Rejected { until: s(14) });
    }

    proptest! {
        /// Whatever happens, the breaker is never open forever: at most
        /// max_cooldown + probe_timeout after any moment, an attempt is admitted.
        #[test]
        fn never_stuck_open(events in proptest::collection::vec((0u64..100, any::<bool>(), any::<bool>()), 1..300)) {
            let c = config();
            let mut b = Breaker::new(c);
            let mut now = Duration::ZERO;
            for (dt, ask, success) in events {
                now += Duration::from_secs(dt);
                if ask {
                    match b.admit(now) {
                        Admission::Allowed | Admission::Probe => b.record(success, now),
                        Admission::Rejected { until } => {
                            prop_assert!(until > now);
                            prop_assert!(until - now <= c.max_cooldown + c.probe_timeout);
                        }
                    }
                }
            }
            let later = now + c.max_cooldown + c.probe_timeout;
            prop_assert!(matches!(b.admit(later), Admission::Allowed | Admission::Probe));
        }
    }
}
