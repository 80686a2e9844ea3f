//! The one backoff used everywhere a thing is tried again: healing retries,
//! alert deliveries, reconnecting to the container engine, and a target
//! that keeps failing its check.
//!
//! Exponential (`initial`, times `factor` each step, capped at `max`) with
//! optional jitter: each delay is multiplied by a factor drawn uniformly
//! from `[1 - jitter, 1 + jitter)` by a small seeded generator, so tests
//! give a seed and get the same delays every run. Pure: no clock, no sleep;
//! the caller waits however it waits.

use std::time::Duration;

/// Settings of a backoff.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// The first delay.
    pub initial: Duration,
    /// Growth per step (2 doubles).
    pub factor: u32,
    /// The longest delay (before jitter).
    pub max: Duration,
    /// Relative jitter in `[0, 1)`: 0.5 gives delays of 0.5x to 1.5x.
    pub jitter: f64,
}

impl BackoffPolicy {
    /// Doubling from `initial` to `max`, without jitter.
    pub fn doubling(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            factor: 2,
            max,
            jitter: 0.0,
        }
    }

    /// The same policy with relative jitter `jitter` (clamped to `[0, 0.99]`).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 0.99)
        } else {
            0.0
        };
        self
    }

    /// A backoff following this policy, jitter drawn from `seed`.
    pub fn start(&self, seed: u64) -> Backoff {
        Backoff {
            policy: *self,
            next: self.initial.min(self.max),
            state: seed.max(1),
        }
    }
}

/// The delays of one sequence of tries; an endless iterator (call
/// [`Backoff::reset`] when the thing works again).
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    next: Duration,
    state: u64,
}

impl Backoff {
    /// The delay before the next try, advancing the sequence.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = base
            .saturating_mul(self.policy.factor.max(1))
            .min(self.policy.max);
        if self.policy.jitter <= 0.0 {
            return base;
        }
        // xorshift64*: small, fast, good enough to spread retries apart.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        let unit = r as f64 / (1u64 << 53) as f64;
        base.mul_f64(1.0 - self.policy.jitter + 2.0 * self.policy.jitter * unit)
    }

    /// The delay the next call to [`Backoff::next_delay`] starts from (no jitter).
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// Back to the first delay.
    pub fn reset(&mut self) {
        self.next = self.policy.initial.min(self.policy.max);
    }
}

impl Iterator for Backoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }
}

/// A seed for jitter that differs between runs and between callers.
pub fn entropy_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x9E37_79B9_7F4A_7C15);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = BackoffPolicy::doubling(s(10), s(300)).start(1);
        let got: Vec<u64> = (0..7).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(got, vec![10, 20, 40, 80, 160, 300, 300]);
        b.reset();
        assert_eq!(b.next_delay(), s(10));
    }

    #[test]
    fn the_same_seed_gives_the_same_jitter() {
        let p = BackoffPolicy::doubling(Duration::from_millis(500), s(30)).with_jitter(0.5);
        let a: Vec<Duration> = p.start(42).take(8).collect();
        let b: Vec<Duration> = p.start(42).take(8).collect();
        let c: Vec<Duration> = p.start(43).take(8).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    proptest! {
        #[test]
        fn jittered_delays_stay_within_their_band(seed in any::<u64>(), jitter in 0.0f64..0.99) {
            let p = BackoffPolicy::doubling(s(1), s(60)).with_jitter(jitter);
            let plain: Vec<Duration> = BackoffPolicy::doubling(s(1), s(60)).start(1).take(10).collect();
            for (d, base) in p.start(seed).take(10).zip(plain) {
                prop_assert!(d >= base.mul_f64(1.0 - jitter) - Duration::from_nanos(1));
                prop_assert!(d <= base.mul_f64(1.0 + jitter));
            }
        }
    }
}
