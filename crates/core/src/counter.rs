//! Monotonic counters turned into per-second rates.
//!
//! A [`CounterTracker`] is owned by exactly one collector; it is not `Sync`
//! by intent and has no interior mutability, so two collectors can never race
//! on a shared "previous value" (the prototype's defect). It turns each
//! sample into a [`Step`]:
//!
//! - the first sample of a counter yields [`Step::First`]: no rate yet;
//! - a counter that went **down** (reset, 32- or 64-bit wrap, a device that
//!   was re-created) yields [`Step::Reset`], never a negative delta and never
//!   the huge delta a wrap-around guess would produce;
//! - a sample not newer than the last one (out of order, or the same instant)
//!   yields [`Step::Stale`] and leaves the state untouched;
//! - otherwise the rate is the delta over the real elapsed time between the
//!   two samples, whatever the interval was.
//!
//! Counters that are not seen during a cycle are forgotten at the cycle's end,
//! so an interface that disappears and comes back starts again with `First`.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

/// The outcome of feeding one counter sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// First sample for this counter: nothing to compare with.
    First,
    /// Per-second rate since the previous sample; never negative.
    Rate(f64),
    /// The counter went down: no rate for this interval.
    Reset,
    /// The sample was not newer than the previous one and was ignored.
    Stale,
}

#[derive(Debug, Clone, Copy)]
struct Last {
    value: u64,
    at: Duration,
    cycle: u64,
}

/// Converts counter samples into rates; one per owner.
#[derive(Debug)]
pub struct CounterTracker<K> {
    last: HashMap<K, Last>,
    cycle: u64,
}

impl<K: Hash + Eq + Clone> Default for CounterTracker<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Clone> CounterTracker<K> {
    /// An empty tracker.
    pub fn new() -> Self {
        Self {
            last: HashMap::new(),
            cycle: 0,
        }
    }

    /// Feeds one sample of counter `key`, read at monotonic time `at`.
    pub fn observe(&mut self, key: &K, value: u64, at: Duration) -> Step {
        let cycle = self.cycle;
        let Some(last) = self.last.get_mut(key) else {
            self.last.insert(key.clone(), Last { value, at, cycle });
            return Step::First;
        };
        if at <= last.at {
            return Step::Stale;
        }
        let elapsed = (at - last.at).as_secs_f64();
        let previous = last.value;
        *last = Last { value, at, cycle };
        match value.checked_sub(previous) {
            Some(delta) => Step::Rate(delta as f64 / elapsed),
            None => Step::Reset,
        }
    }

    /// Ends a collection cycle: counters not observed since the previous call
    /// are forgotten (their device went away). Returns how many were dropped.
    pub fn end_cycle(&mut self) -> usize {
        let cycle = self.cycle;
        let before = self.last.len();
        self.last.retain(|_, last| last.cycle == cycle);
        self.cycle += 1;
        before - self.last.len()
    }

    /// Number of counters tracked; bounded by what one cycle observes.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no counter is tracked.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn first_sample_yields_no_rate() {
        let mut t = CounterTracker::new();
        assert_eq!(t.observe(&"eth0", 100, secs(1.0)), Step::First);
    }

    #[test]
    fn rate_uses_real_elapsed_time_for_irregular_intervals() {
        let mut t = CounterTracker::new();
        t.observe(&"eth0", 0, secs(0.0));
        assert_eq!(t.observe(&"eth0", 1000, secs(2.0)), Step::Rate(500.0));
        assert_eq!(t.observe(&"eth0", 1250, secs(2.5)), Step::Rate(500.0));
        assert_eq!(t.observe(&"eth0", 1250, secs(12.5)), Step::Rate(0.0));
    }

    #[test]
    fn reset_to_zero_yields_reset_then_rates_resume() {
        let mut t = CounterTracker::new();
        t.observe(&"eth0", 5_000, secs(0.0));
        assert_eq!(t.observe(&"eth0", 10, secs(1.0)), Step::Reset);
        assert_eq!(t.observe(&"eth0", 110, secs(2.0)), Step::Rate(100.0));
    }

    #[test]
    fn wrap_of_a_32_bit_counter_is_a_reset_not_a_huge_rate() {
        let mut t = CounterTracker::new();
        t.observe(&"eth0", u64::from(u32::MAX) - 10, secs(0.0));
        assert_eq!(t.observe(&"eth0", 5, secs(1.0)), Step::Reset);
    }

    #[test]
    fn wrap_of_a_64_bit_counter_is_a_reset_not_a_huge_rate() {
        let mut t = CounterTracker::new();
        t.observe(&"eth0", u64::MAX - 1, secs(0.0));
        assert_eq!(t.observe(&"eth0", 3, secs(1.0)), Step::Reset);
    }

    #[test]
    fn same_instant_or_older_sample_is_stale_and_ignored() {
        let mut t = CounterTracker::new();
        t.observe(&"eth0", 100, secs(1.0));
        assert_eq!(t.observe(&"eth0", 200, secs(1.0)), Step::Stale);
        assert_eq!(t.observe(&"eth0", 50, secs(0.5)), Step::Stale);
        assert_eq!(t.observe(&"eth0", 300, secs(2.0)), Step::Rate(200.0));
    }

    #[test]
    fn interface_that_disappears_and_returns_starts_over() {
        let mut t = CounterTracker::new();
        t.observe(&"eth0", 100, secs(0.0));
        t.observe(&"veth1", 100, secs(0.0));
        t.end_cycle();
        // veth1 is gone during this cycle.
        t.observe(&"eth0", 200, secs(1.0));
        assert_eq!(t.end_cycle(), 1);
        assert_eq!(t.len(), 1);
        // It comes back with a smaller counter: first sample, not a reset.
        assert_eq!(t.observe(&"veth1", 7, secs(2.0)), Step::First);
        // And an interface appearing mid-way is just a first sample.
        assert_eq!(t.observe(&"wlan0", 1, secs(2.0)), Step::First);
    }

    proptest! {
        /// Whatever the samples (resets, wraps, out of order, irregular),
        /// a rate is never negative, never NaN and never more than the true
        /// increase over the elapsed time.
        #[test]
        fn rates_are_never_negative_or_inflated(
            samples in proptest::collection::vec((any::<u64>(), 0u64..5_000_000_000), 1..200)
        ) {
            let mut t = CounterTracker::new();
            let mut prev: Option<(u64, u64)> = None;
            for (value, at_ns) in samples {
                let step = t.observe(&0u8, value, Duration::from_nanos(at_ns));
                match (step, prev) {
                    (Step::Rate(r), Some((pv, pt))) => {
                        prop_assert!(r.is_finite() && r >= 0.0);
                        prop_assert!(value >= pv && at_ns > pt);
                        let expected = (value - pv) as f64 / ((at_ns - pt) as f64 / 1e9);
                        prop_assert!((r - expected).abs() <= expected * 1e-9 + 1e-9);
                    }
                    (Step::Rate(_), None) => prop_assert!(false, "rate without a previous sample"),
                    (Step::Reset, Some((pv, _))) => prop_assert!(value < pv),
                    _ => {}
                }
                if step != Step::Stale {
                    prev = Some((value, at_ns));
                }
            }
        }
    }
}
