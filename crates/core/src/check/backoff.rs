//! Crash-loop back-off of one target's heals, as Kubernetes'
//! CrashLoopBackOff: after each heal the next may come no sooner than a
//! delay that starts at 10 s and doubles up to 5 minutes; 10 minutes of
//! passing reset it. It never gives up: however long the check fails, a
//! next try is always scheduled.

use std::time::Duration;

use crate::backoff::{Backoff, BackoffPolicy};

/// Settings of the back-off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealBackoffPolicy {
    /// Wait after the first heal.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
    /// Passing this long resets the wait.
    pub reset_after: Duration,
}

impl Default for HealBackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

/// One target's back-off.
#[derive(Debug, Clone)]
pub struct HealBackoff {
    policy: HealBackoffPolicy,
    delays: Backoff,
    /// No heal before this (monotonic).
    not_before: Duration,
    /// Since when the check passes, when it does.
    passing_since: Option<Duration>,
    /// The wait the last heal set.
    last_wait: Duration,
}

impl HealBackoff {
    /// A target never healed.
    pub fn new(policy: HealBackoffPolicy) -> Self {
        Self {
            policy,
            delays: BackoffPolicy::doubling(policy.initial, policy.max).start(1),
            not_before: Duration::ZERO,
            passing_since: None,
            last_wait: Duration::ZERO,
        }
    }

    /// When the next heal may start (monotonic; in the past when now).
    pub fn not_before(&self) -> Duration {
        self.not_before
    }

    /// The wait the last heal set.
    pub fn last_wait(&self) -> Duration {
        self.last_wait
    }

    /// Whether a heal may start at `now`.
    pub fn allows(&self, now: Duration) -> bool {
        now >= self.not_before
    }

    /// A heal started at `now`: the next waits for the next delay.
    pub fn healed(&mut self, now: Duration) {
        let wait = self.delays.next_delay();
        self.last_wait = wait;
        self.not_before = now + wait;
        self.passing_since = None;
    }

    /// The check passes at `now`; long enough, and the delays start over.
    pub fn passing(&mut self, now: Duration) {
        let since = *self.passing_since.get_or_insert(now);
        if now.saturating_sub(since) >= self.policy.reset_after {
            self.delays.reset();
            self.last_wait = Duration::ZERO;
        }
    }

    /// The check fails at `now`: whatever passing it did is over.
    pub fn failing(&mut self) {
        self.passing_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn waits_double_to_the_cap_reset_after_passing_and_never_stop() {
        let mut b = HealBackoff::new(HealBackoffPolicy::default());
        let mut now = s(0);
        let mut waits = Vec::new();
        // A target that keeps failing: each time the wait is over, heal.
        for _ in 0..8 {
            assert!(b.allows(now));
            b.healed(now);
            waits.push(b.last_wait().as_secs());
            assert!(!b.allows(now + b.last_wait() - s(1)));
            now = b.not_before();
        }
        assert_eq!(waits, vec![10, 20, 40, 80, 160, 300, 300, 300]);
        // Passing nine minutes does not reset; ten do.
        b.passing(now);
        b.passing(now + s(540));
        b.healed(now + s(541));
        assert_eq!(b.last_wait(), s(300));
        let later = b.not_before();
        b.passing(later);
        b.passing(later + s(600));
        b.healed(later + s(601));
        assert_eq!(b.last_wait(), s(10));
    }
}
