//! One check's verdict from its results: thresholds in a row and a start
//! period, as Kubernetes probes count them.

use std::time::Duration;

use super::CheckState;

/// How many results in a row change a verdict, and the start grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Failures in a row before the check is failing.
    pub failure_threshold: u32,
    /// Successes in a row before a failing check passes again.
    pub success_threshold: u32,
    /// Failures this soon after start do not count until the first pass.
    pub start_period: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            failure_threshold: 3,
            success_threshold: 1,
            start_period: Duration::ZERO,
        }
    }
}

/// A change of verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// From.
    pub from: CheckState,
    /// To.
    pub to: CheckState,
}

/// One check's own verdict (dependencies are applied on top, by the owner
/// of every machine).
#[derive(Debug, Clone)]
pub struct CheckMachine {
    thresholds: Thresholds,
    state: CheckState,
    since: Duration,
    started: Duration,
    failures: u32,
    successes: u32,
    passed_once: bool,
}

impl CheckMachine {
    /// A check started at `now`, verdict unknown.
    pub fn new(thresholds: Thresholds, now: Duration) -> Self {
        Self {
            thresholds,
            state: CheckState::Unknown,
            since: now,
            started: now,
            failures: 0,
            successes: 0,
            passed_once: false,
        }
    }

    /// The verdict.
    pub fn state(&self) -> CheckState {
        self.state
    }

    /// Since when (monotonic).
    pub fn since(&self) -> Duration {
        self.since
    }

    /// Failures in a row (counted ones).
    pub fn failures_in_row(&self) -> u32 {
        self.failures
    }

    /// Successes in a row.
    pub fn successes_in_row(&self) -> u32 {
        self.successes
    }

    /// Whether `now` is within the start period and the check never passed.
    pub fn in_start_period(&self, now: Duration) -> bool {
        !self.passed_once && now.saturating_sub(self.started) < self.thresholds.start_period
    }

    fn to(&mut self, state: CheckState, now: Duration) -> Option<Transition> {
        if state == self.state {
            return None;
        }
        let t = Transition {
            from: self.state,
            to: state,
        };
        self.state = state;
        self.since = now;
        Some(t)
    }

    /// Takes one result (`None`: no data, which changes nothing).
    pub fn observe(&mut self, ok: Option<bool>, now: Duration) -> Option<Transition> {
        match ok {
            None => None,
            Some(true) => {
                self.passed_once = true;
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                // A first verdict needs one pass; leaving failing needs
                // `success_threshold` in a row.
                let enough = match self.state {
                    CheckState::Failing => self.successes >= self.thresholds.success_threshold,
                    _ => true,
                };
                if enough {
                    self.to(CheckState::Passing, now)
                } else {
                    None
                }
            }
            Some(false) => {
                self.successes = 0;
                if self.in_start_period(now) {
                    // A service slow to start is not failing yet.
                    return None;
                }
                self.failures = self.failures.saturating_add(1);
                if self.failures >= self.thresholds.failure_threshold {
                    self.to(CheckState::Failing, now)
                } else {
                    None
                }
            }
        }
    }

    /// Forgets the verdict (after a dependency recovered): the next results
    /// decide afresh, `failure_threshold` of them for a failure.
    pub fn reset(&mut self, now: Duration) -> Option<Transition> {
        self.failures = 0;
        self.successes = 0;
        self.to(CheckState::Unknown, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn machine(fail: u32, pass: u32, start: u64) -> CheckMachine {
        CheckMachine::new(
            Thresholds {
                failure_threshold: fail,
                success_threshold: pass,
                start_period: s(start),
            },
            s(0),
        )
    }

    #[test]
    fn failing_after_the_threshold_from_the_first_result() {
        let mut m = machine(3, 1, 0);
        assert_eq!(m.observe(Some(false), s(0)), None);
        assert_eq!(m.observe(Some(false), s(1)), None);
        assert_eq!(
            m.observe(Some(false), s(2)),
            Some(Transition {
                from: CheckState::Unknown,
                to: CheckState::Failing
            })
        );
        assert_eq!(m.since(), s(2));
    }

    #[test]
    fn passing_again_needs_the_success_threshold_in_a_row() {
        let mut m = machine(1, 2, 0);
        m.observe(Some(false), s(0));
        assert_eq!(m.state(), CheckState::Failing);
        assert_eq!(m.observe(Some(true), s(1)), None);
        assert_eq!(m.observe(Some(false), s(2)), None);
        assert_eq!(m.observe(Some(true), s(3)), None);
        assert_eq!(
            m.observe(Some(true), s(4)).map(|t| t.to),
            Some(CheckState::Passing)
        );
    }

    #[test]
    fn failures_in_the_start_period_do_not_count_until_the_first_pass() {
        let mut m = machine(2, 1, 30);
        for t in 0..29 {
            assert_eq!(m.observe(Some(false), s(t)), None, "at {t}s");
        }
        assert_eq!(m.state(), CheckState::Unknown);
        // Past the period, failures count.
        m.observe(Some(false), s(30));
        assert_eq!(
            m.observe(Some(false), s(31)).map(|t| t.to),
            Some(CheckState::Failing)
        );
        // A pass ends the start period for good, even inside it.
        let mut m = machine(2, 1, 30);
        m.observe(Some(true), s(1));
        m.observe(Some(false), s(2));
        assert_eq!(
            m.observe(Some(false), s(3)).map(|t| t.to),
            Some(CheckState::Failing)
        );
    }

    #[test]
    fn no_data_changes_nothing() {
        let mut m = machine(1, 1, 0);
        assert_eq!(m.observe(None, s(0)), None);
        assert_eq!(m.state(), CheckState::Unknown);
    }

    proptest! {
        /// Whatever the results: failing only after `failure_threshold`
        /// counted failures in a row, passing only after a pass.
        #[test]
        fn verdicts_follow_the_last_results(results in proptest::collection::vec(any::<bool>(), 1..200), fail in 1u32..5, pass in 1u32..4) {
            let mut m = machine(fail, pass, 0);
            let mut history = Vec::new();
            for (i, ok) in results.iter().enumerate() {
                m.observe(Some(*ok), s(i as u64));
                history.push(*ok);
                match m.state() {
                    CheckState::Failing => {
                        // The last run that changed the verdict to failing
                        // had `fail` failures in a row behind it; since
                        // then, fewer than `pass` successes in a row.
                        let tail_passes = history.iter().rev().take_while(|x| **x).count();
                        prop_assert!(tail_passes < pass as usize);
                    }
                    CheckState::Passing => prop_assert!(history.iter().any(|x| *x)),
                    _ => {}
                }
                let tail_fails = history.iter().rev().take_while(|x| !**x).count();
                if tail_fails >= fail as usize {
                    prop_assert_eq!(m.state(), CheckState::Failing);
                }
            }
        }
    }
}
