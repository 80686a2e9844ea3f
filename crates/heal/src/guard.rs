//! The guard every action passes: pause, maintenance windows, the target's
//! circuit breaker, its cooldown and rate limit, the host-wide budget, the
//! concurrency limit, and dry-run, in that order.
//!
//! Only an attempt that ran and failed is a failure of the target. Every
//! other "no" is a [`Skip`] with its reason, reported apart and never fed to
//! the breaker: a saturated concurrency limit sheds, it does not trip
//! anything, so healing can never paralyse itself.
//!
//! One owner (the healing engine's task) holds the guard; time is an input.
//! Actions an earlier run of the agent took are handed in at start
//! ([`Guard::remember`]), so a restart (or a crash loop) of the agent does
//! not reset cooldowns, rate limits, the budget or the breakers.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::Serialize;

use crate::breaker::{Admission, Breaker, BreakerConfig, BreakerState};

/// A weekly window in UTC during which actions are held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceWindow {
    /// Days it applies to, bit 0 = Monday ... bit 6 = Sunday.
    pub days: u8,
    /// Start, minutes after midnight UTC.
    pub start_minute: u16,
    /// End, minutes after midnight UTC; before `start_minute` when the
    /// window crosses midnight (it then belongs to its start day).
    pub end_minute: u16,
}

impl MaintenanceWindow {
    /// Whether the wall-clock time `wall_ms` falls in the window.
    pub fn contains(&self, wall_ms: i64) -> bool {
        let minutes = wall_ms.div_euclid(60_000);
        let minute_of_day = minutes.rem_euclid(1_440) as u16;
        // 1970-01-01 was a Thursday (day index 3 with Monday = 0).
        let day = ((minutes.div_euclid(1_440) + 3).rem_euclid(7)) as u8;
        let yesterday = (day + 6) % 7;
        let on = |d: u8| self.days & (1 << d) != 0;
        if self.start_minute <= self.end_minute {
            on(day) && minute_of_day >= self.start_minute && minute_of_day < self.end_minute
        } else {
            (on(day) && minute_of_day >= self.start_minute)
                || (on(yesterday) && minute_of_day < self.end_minute)
        }
    }
}

/// Settings of the guard.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    /// Least time between two actions on one target.
    pub cooldown: Duration,
    /// At most this many actions per target...
    pub rate_max: u32,
    /// ...within this window.
    pub rate_window: Duration,
    /// At most this many actions on the whole host...
    pub budget_max: u32,
    /// ...within this window.
    pub budget_window: Duration,
    /// Actions running at once, at most.
    pub max_concurrent: u32,
    /// Each target's breaker.
    pub breaker: BreakerConfig,
    /// Decide, record, but do nothing.
    pub dry_run: bool,
    /// When actions are held back.
    pub maintenance: Vec<MaintenanceWindow>,
    /// Targets remembered at most (the idlest are forgotten first).
    pub max_targets: usize,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            cooldown: Duration::from_secs(60),
            rate_max: 3,
            rate_window: Duration::from_secs(600),
            budget_max: 20,
            budget_window: Duration::from_secs(3_600),
            max_concurrent: 4,
            breaker: BreakerConfig::default(),
            dry_run: false,
            maintenance: Vec::new(),
            max_targets: 10_000,
        }
    }
}

/// Why an action was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Skip {
    /// Healing is paused (API).
    Paused,
    /// A maintenance window is open.
    Maintenance,
    /// The target's breaker is open.
    BreakerOpen {
        /// Seconds until a probe is allowed.
        retry_in_s: u64,
    },
    /// The target was acted on too recently.
    Cooldown {
        /// Seconds until allowed.
        retry_in_s: u64,
    },
    /// The target had its maximum of actions in the window: stop and alert.
    RateLimited {
        /// Seconds until the oldest action leaves the window.
        retry_in_s: u64,
    },
    /// The host had its maximum of actions in the window.
    BudgetExhausted {
        /// Seconds until the oldest action leaves the window.
        retry_in_s: u64,
    },
    /// Every concurrency slot is busy: shed (not a failure of the target).
    Shed,
    /// Dry-run: everything allowed it, nothing was done.
    DryRun,
}

impl Skip {
    /// Short, stable name (a metric label).
    pub fn as_str(&self) -> &'static str {
        match self {
            Skip::Paused => "paused",
            Skip::Maintenance => "maintenance",
            Skip::BreakerOpen { .. } => "breaker_open",
            Skip::Cooldown { .. } => "cooldown",
            Skip::RateLimited { .. } => "rate_limited",
            Skip::BudgetExhausted { .. } => "budget_exhausted",
            Skip::Shed => "shed",
            Skip::DryRun => "dry_run",
        }
    }
}

/// Permission to act once; hand it back to [`Guard::finish`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a ticket holds a concurrency slot until it is finished"]
pub struct Ticket {
    target: String,
    /// Whether this attempt is the breaker's half-open probe.
    pub probe: bool,
}

impl Ticket {
    /// The target this ticket is for.
    pub fn target(&self) -> &str {
        &self.target
    }
}

/// How an attempt ended, as far as the target is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The action worked.
    Succeeded,
    /// The action ran against the target and failed (timeouts included).
    Failed,
    /// The action could not be attempted for a reason that is not the
    /// target's (the executor is unavailable here, no systemd, say): the
    /// breaker is not told.
    NotAttempted,
}

#[derive(Debug)]
struct TargetState {
    breaker: Breaker,
    last_action: Option<Duration>,
    recent: VecDeque<Duration>,
    last_seen: Duration,
}

/// A target's guard state, for `GET /api/v1/breakers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetStatus {
    /// The target.
    pub target: String,
    /// Its breaker.
    pub breaker: BreakerState,
    /// Seconds until the breaker admits a probe, when open.
    pub breaker_retry_in_s: Option<u64>,
    /// Actions in the rate window.
    pub recent_actions: u32,
    /// Seconds since the last action.
    pub last_action_ago_s: Option<u64>,
}

/// Counters of the guard's decisions since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GuardCounters {
    /// Tickets issued.
    pub allowed: u64,
    /// Skips by reason.
    pub skipped: HashMap<&'static str, u64>,
    /// Attempts that succeeded.
    pub succeeded: u64,
    /// Attempts that failed.
    pub failed: u64,
}

/// The guard.
#[derive(Debug)]
pub struct Guard {
    config: GuardConfig,
    targets: HashMap<String, TargetState>,
    budget: VecDeque<Duration>,
    in_flight: u32,
    paused: bool,
    counters: GuardCounters,
    /// How far the guard's own times run ahead of the clock it is given,
    /// so that actions from before its start (see [`Guard::remember`]) have
    /// a place: as long as the longest window any of them can matter in.
    shift: Duration,
}

/// `target`'s state, new if it has none; seen at `now`.
fn target_state<'a>(
    targets: &'a mut HashMap<String, TargetState>,
    breaker: BreakerConfig,
    target: &str,
    now: Duration,
) -> &'a mut TargetState {
    let state = targets
        .entry(target.to_string())
        .or_insert_with(|| TargetState {
            breaker: Breaker::new(breaker),
            last_action: None,
            recent: VecDeque::new(),
            last_seen: now,
        });
    state.last_seen = state.last_seen.max(now);
    state
}

fn secs_until(until: Duration, now: Duration) -> u64 {
    until.saturating_sub(now).as_secs_f64().ceil() as u64
}

impl Guard {
    /// A guard with nothing recorded.
    pub fn new(config: GuardConfig) -> Self {
        let shift = config
            .rate_window
            .max(config.budget_window)
            .max(config.cooldown)
            .max(config.breaker.max_cooldown);
        Self {
            shift,
            config,
            targets: HashMap::new(),
            budget: VecDeque::new(),
            in_flight: 0,
            paused: false,
            counters: GuardCounters::default(),
        }
    }

    /// Takes new settings at monotonic `now` (a reloaded configuration),
    /// keeping what it remembers: past actions count against the new
    /// cooldown, rate limit and budget, actions under way keep their slots,
    /// and each breaker keeps its state under the new thresholds (see
    /// [`aegis_core::breaker::Breaker::set_config`]). How far back an
    /// earlier run's actions reach stays what it was at the start.
    pub fn reconfigure(&mut self, config: GuardConfig, now: Duration) {
        let now = now + self.shift;
        for state in self.targets.values_mut() {
            state.breaker.set_config(config.breaker, now);
        }
        self.config = config;
    }

    /// The settings in force.
    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    /// Pauses or resumes every action.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Whether actions are paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Whether dry-run is on.
    pub fn dry_run(&self) -> bool {
        self.config.dry_run
    }

    /// Actions running now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Decisions so far.
    pub fn counters(&self) -> &GuardCounters {
        &self.counters
    }

    fn skip(&mut self, skip: Skip) -> Result<Ticket, Skip> {
        *self.counters.skipped.entry(skip.as_str()).or_insert(0) += 1;
        Err(skip)
    }

    /// Asks to act on `target` at monotonic `now` (wall clock `wall_ms` for
    /// maintenance windows). A ticket reserves a slot and counts against
    /// the cooldown, the rate limit and the budget.
    pub fn check(&mut self, target: &str, now: Duration, wall_ms: i64) -> Result<Ticket, Skip> {
        let now = now + self.shift;
        if self.paused {
            return self.skip(Skip::Paused);
        }
        if self.config.maintenance.iter().any(|w| w.contains(wall_ms)) {
            return self.skip(Skip::Maintenance);
        }
        self.forget_idle(now);
        let config = &self.config;
        let state = target_state(&mut self.targets, config.breaker, target, now);
        while state
            .recent
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= config.rate_window)
        {
            state.recent.pop_front();
        }
        let probe = match state.breaker.admit(now) {
            Admission::Allowed => false,
            Admission::Probe => true,
            Admission::Rejected { until } => {
                return self.skip(Skip::BreakerOpen {
                    retry_in_s: secs_until(until, now),
                })
            }
        };
        // From here on a refusal must give the probe back.
        let refusal = if let Some(until) = state
            .last_action
            .map(|t| t + config.cooldown)
            .filter(|until| *until > now)
        {
            Some(Skip::Cooldown {
                retry_in_s: secs_until(until, now),
            })
        } else if state.recent.len() >= config.rate_max as usize {
            let oldest = state.recent.front().copied().unwrap_or(now);
            Some(Skip::RateLimited {
                retry_in_s: secs_until(oldest + config.rate_window, now),
            })
        } else {
            while self
                .budget
                .front()
                .is_some_and(|t| now.saturating_sub(*t) >= config.budget_window)
            {
                self.budget.pop_front();
            }
            if self.budget.len() >= config.budget_max as usize {
                let oldest = self.budget.front().copied().unwrap_or(now);
                Some(Skip::BudgetExhausted {
                    retry_in_s: secs_until(oldest + config.budget_window, now),
                })
            } else if self.in_flight >= config.max_concurrent {
                Some(Skip::Shed)
            } else if config.dry_run {
                Some(Skip::DryRun)
            } else {
                None
            }
        };
        if let Some(skip) = refusal {
            if probe {
                if let Some(state) = self.targets.get_mut(target) {
                    state.breaker.release_probe();
                }
            }
            return self.skip(skip);
        }
        if let Some(state) = self.targets.get_mut(target) {
            state.last_action = Some(now);
            state.recent.push_back(now);
        }
        self.budget.push_back(now);
        self.in_flight += 1;
        self.counters.allowed += 1;
        Ok(Ticket {
            target: target.to_string(),
            probe,
        })
    }

    /// How far back an earlier run's actions can still matter.
    pub fn horizon(&self) -> Duration {
        self.shift
    }

    /// Takes in an action on `target` taken `ago` before `now` by an
    /// earlier run of the agent, as if this guard had allowed it: it counts
    /// against the target's cooldown and rate limit and the host's budget,
    /// and its outcome goes to the target's breaker. Hand actions in oldest
    /// first, before any live one; an action older than every window is
    /// ignored.
    pub fn remember(&mut self, target: &str, ago: Duration, now: Duration, outcome: Outcome) {
        if ago >= self.shift {
            return;
        }
        let at = now + self.shift - ago;
        let state = target_state(&mut self.targets, self.config.breaker, target, at);
        state.last_action = Some(state.last_action.map_or(at, |t| t.max(at)));
        state.recent.push_back(at);
        match outcome {
            Outcome::Succeeded => state.breaker.record(true, at),
            Outcome::Failed => state.breaker.record(false, at),
            Outcome::NotAttempted => {}
        }
        self.budget.push_back(at);
    }

    /// Hands back a ticket with how the attempt went.
    pub fn finish(&mut self, ticket: Ticket, outcome: Outcome, now: Duration) {
        let now = now + self.shift;
        self.in_flight = self.in_flight.saturating_sub(1);
        let Some(state) = self.targets.get_mut(&ticket.target) else {
            return;
        };
        match outcome {
            Outcome::Succeeded => {
                self.counters.succeeded += 1;
                state.breaker.record(true, now);
            }
            Outcome::Failed => {
                self.counters.failed += 1;
                state.breaker.record(false, now);
            }
            Outcome::NotAttempted => {
                if ticket.probe {
                    state.breaker.release_probe();
                }
            }
        }
    }

    /// Forgets the idlest targets beyond the bound (never one with history
    /// that still matters: an open breaker or actions in the window).
    fn forget_idle(&mut self, now: Duration) {
        if self.targets.len() < self.config.max_targets {
            return;
        }
        let window = self
            .config
            .rate_window
            .max(self.config.breaker.max_cooldown);
        self.targets
            .retain(|_, s| now.saturating_sub(s.last_seen) < window);
        if self.targets.len() >= self.config.max_targets {
            // Still full of active targets: drop the idlest one.
            if let Some(idlest) = self
                .targets
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
            {
                self.targets.remove(&idlest);
            }
        }
    }

    /// Every target's state as of `now`, sorted by target.
    pub fn snapshot(&mut self, now: Duration) -> Vec<TargetStatus> {
        let shift = self.shift;
        let now = now + shift;
        let window = self.config.rate_window;
        let mut out: Vec<TargetStatus> = self
            .targets
            .iter_mut()
            .map(|(target, s)| {
                let breaker = match s.breaker.state(now) {
                    // Back to the caller's clock.
                    BreakerState::Open { until, trips } => BreakerState::Open {
                        until: until.saturating_sub(shift),
                        trips,
                    },
                    BreakerState::HalfOpen {
                        trips,
                        probe_started,
                    } => BreakerState::HalfOpen {
                        trips,
                        probe_started: probe_started.map(|t| t.saturating_sub(shift)),
                    },
                    closed => closed,
                };
                TargetStatus {
                    target: target.clone(),
                    breaker_retry_in_s: match breaker {
                        BreakerState::Open { until, .. } => {
                            Some(secs_until(until, now.saturating_sub(shift)))
                        }
                        _ => None,
                    },
                    breaker,
                    recent_actions: s
                        .recent
                        .iter()
                        .filter(|t| now.saturating_sub(**t) < window)
                        .count() as u32,
                    last_action_ago_s: s.last_action.map(|t| now.saturating_sub(t).as_secs()),
                }
            })
            .collect();
        out.sort_by(|a, b| a.target.cmp(&b.target));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn config() -> GuardConfig {
        GuardConfig {
            cooldown: s(10),
            rate_max: 3,
            rate_window: s(600),
            budget_max: 100,
            budget_window: s(3600),
            max_concurrent: 2,
            breaker: BreakerConfig {
                failure_threshold: 3,
                base_cooldown: s(30),
                multiplier: 2,
                max_cooldown: s(300),
                probe_timeout: s(60),
            },
            dry_run: false,
            maintenance: Vec::new(),
            max_targets: 100,
        }
    }

    #[test]
    fn cooldown_then_rate_limit_then_allowed_again() {
        let mut g = Guard::new(config());
        let t = g.check("web", s(0), 0).expect("first");
        g.finish(t, Outcome::Succeeded, s(1));
        assert_eq!(
            g.check("web", s(5), 0),
            Err(Skip::Cooldown { retry_in_s: 5 })
        );
        for at in [20, 40] {
            let t = g.check("web", s(at), 0).expect("allowed");
            g.finish(t, Outcome::Succeeded, s(at + 1));
        }
        // Three actions in ten minutes: the fourth is refused until the
        // first leaves the window.
        assert_eq!(
            g.check("web", s(60), 0),
            Err(Skip::RateLimited { retry_in_s: 540 })
        );
        assert!(g.check("web", s(600), 0).is_ok());
    }

    #[test]
    fn new_settings_apply_to_what_the_guard_remembers() {
        let mut g = Guard::new(config());
        for at in [0, 20] {
            let t = g.check("web", s(at), 0).expect("allowed");
            g.finish(t, Outcome::Succeeded, s(at + 1));
        }
        // A maintenance window and a lower rate limit, live: the two
        // actions already taken count against the new limit of two.
        g.reconfigure(
            GuardConfig {
                rate_max: 2,
                maintenance: vec![MaintenanceWindow {
                    days: 0b111_1111,
                    start_minute: 0,
                    end_minute: 60,
                }],
                ..config()
            },
            s(30),
        );
        assert_eq!(g.check("web", s(40), 0), Err(Skip::Maintenance));
        let after_the_window = 3_600_000;
        assert_eq!(
            g.check("web", s(40), after_the_window),
            Err(Skip::RateLimited { retry_in_s: 560 })
        );
        // Dry run switched on by a reload holds every action back.
        g.reconfigure(
            GuardConfig {
                dry_run: true,
                ..config()
            },
            s(50),
        );
        assert_eq!(g.check("web", s(50), 0), Err(Skip::DryRun));
        assert!(g.config().dry_run);
    }

    #[test]
    fn actions_of_an_earlier_run_hold_after_a_restart() {
        // The agent restarts at s(0) of its new clock: three actions on
        // "web" in the last ten minutes, the latest 4 s ago; three failures
        // on "db" in the last half minute; one on "old" long ago.
        let mut g = Guard::new(config());
        g.remember("old", s(7_200), s(0), Outcome::Succeeded);
        for ago in [25, 20, 15] {
            g.remember("db", s(ago), s(0), Outcome::Failed);
        }
        for ago in [100, 50, 4] {
            g.remember("web", s(ago), s(0), Outcome::Succeeded);
        }
        // Cooldown first (10 s from 4 s ago), then the rate limit (3 in
        // 600 s, until the oldest is 600 s old).
        assert_eq!(
            g.check("web", s(0), 0),
            Err(Skip::Cooldown { retry_in_s: 6 })
        );
        assert_eq!(
            g.check("web", s(10), 0),
            Err(Skip::RateLimited { retry_in_s: 490 })
        );
        assert!(g.check("web", s(500), 0).is_ok());
        // The third failure opened db's breaker 15 s ago, for 30 s.
        assert_eq!(
            g.check("db", s(0), 0),
            Err(Skip::BreakerOpen { retry_in_s: 15 })
        );
        let db = g.snapshot(s(0));
        let db = db.iter().find(|t| t.target == "db").expect("db");
        assert_eq!(db.breaker_retry_in_s, Some(15));
        // Beyond every window: as if it never happened.
        assert!(!g.snapshot(s(0)).iter().any(|t| t.target == "old"));
        let fresh = g.check("old", s(0), 0).expect("old");
        assert!(!fresh.probe);
        g.finish(fresh, Outcome::Succeeded, s(1));
    }

    #[test]
    fn pause_maintenance_and_dry_run_stop_actions() {
        let mut g = Guard::new(GuardConfig {
            maintenance: vec![MaintenanceWindow {
                days: 0b111_1111,
                start_minute: 23 * 60,
                end_minute: 60,
            }],
            ..config()
        });
        g.set_paused(true);
        assert_eq!(g.check("a", s(0), 0), Err(Skip::Paused));
        g.set_paused(false);
        // 1970-01-01 00:30 UTC is inside 23:00-01:00.
        assert_eq!(g.check("a", s(0), 30 * 60_000), Err(Skip::Maintenance));
        assert!(g.check("a", s(0), 2 * 3_600_000).is_ok());
        let mut dry = Guard::new(GuardConfig {
            dry_run: true,
            ..config()
        });
        assert_eq!(dry.check("a", s(0), 0), Err(Skip::DryRun));
        assert_eq!(dry.in_flight(), 0);
    }

    #[test]
    fn maintenance_windows_follow_weekdays_across_midnight() {
        // Saturday 23:00 to Sunday 01:00: days bit 5 (Saturday).
        let w = MaintenanceWindow {
            days: 1 << 5,
            start_minute: 23 * 60,
            end_minute: 60,
        };
        // 1970-01-03 was a Saturday.
        let sat_2330 = (2 * 1_440 + 23 * 60 + 30) * 60_000;
        let sun_0030 = (3 * 1_440 + 30) * 60_000;
        let sun_2330 = (3 * 1_440 + 23 * 60 + 30) * 60_000;
        assert!(w.contains(sat_2330));
        assert!(w.contains(sun_0030));
        assert!(!w.contains(sun_2330));
    }

    #[test]
    fn shed_when_every_slot_is_busy_and_that_is_not_a_failure() {
        let mut g = Guard::new(config());
        let a = g.check("a", s(0), 0).expect("a");
        let b = g.check("b", s(0), 0).expect("b");
        for _ in 0..10 {
            assert_eq!(g.check("c", s(0), 0), Err(Skip::Shed));
        }
        g.finish(a, Outcome::Succeeded, s(1));
        g.finish(b, Outcome::Succeeded, s(1));
        let snapshot = g.snapshot(s(1));
        let c = snapshot
            .iter()
            .find(|t| t.target == "c")
            .expect("c is known");
        assert_eq!(c.breaker, BreakerState::Closed { failures: 0 });
        assert!(g.check("c", s(2), 0).is_ok());
    }

    /// Regression test for the prototype's paralysis: the concurrency limit
    /// is saturated while every target fails. The breakers open on real
    /// failures only, shed attempts never count, and after the cooldown each
    /// breaker half-opens, probes and closes on success: healing resumes.
    #[test]
    fn prototype_paralysis_saturated_slots_and_failing_targets_recover() {
        let mut g = Guard::new(GuardConfig {
            cooldown: Duration::ZERO,
            rate_max: 1_000,
            ..config()
        });
        let targets = ["a", "b", "c", "d", "e"];
        let mut now = s(0);
        let mut sheds = 0;
        // Phase 1: everything fails, and three times as many attempts as
        // slots are made each second.
        for _ in 0..20 {
            let mut held = Vec::new();
            for _ in 0..3 {
                for t in targets {
                    match g.check(t, now, 0) {
                        Ok(ticket) => held.push(ticket),
                        Err(Skip::Shed) => sheds += 1,
                        Err(_) => {}
                    }
                }
            }
            for ticket in held {
                g.finish(ticket, Outcome::Failed, now);
            }
            now += s(1);
        }
        assert!(sheds > 0, "the limit was never saturated");
        // Every breaker that saw failures is open, none stays so.
        let snapshot = g.snapshot(now);
        assert!(snapshot
            .iter()
            .any(|t| matches!(t.breaker, BreakerState::Open { .. })));
        // Phase 2: targets are healthy again. Within the longest cooldown plus
        // the probe timeout every breaker closes.
        let deadline = now + s(300 + 60);
        while now < deadline {
            for t in targets {
                if let Ok(ticket) = g.check(t, now, 0) {
                    g.finish(ticket, Outcome::Succeeded, now);
                }
            }
            now += s(1);
        }
        for t in g.snapshot(now) {
            assert_eq!(
                t.breaker,
                BreakerState::Closed { failures: 0 },
                "{} still not closed",
                t.target
            );
        }
    }

    proptest! {
        /// Under any sequence of requests, outcomes and clock steps: the
        /// concurrency, rate and budget bounds hold, and only attempts that
        /// ran can trip a breaker.
        #[test]
        fn bounds_hold_and_only_real_failures_count(
            steps in proptest::collection::vec((0u8..4, 0u64..30, 0u8..3), 1..400)
        ) {
            let c = GuardConfig { budget_max: 8, budget_window: s(120), ..config() };
            let mut g = Guard::new(c.clone());
            let mut now = s(0);
            let mut held: Vec<Ticket> = Vec::new();
            let mut allowed_at: HashMap<String, Vec<Duration>> = HashMap::new();
            let mut all: Vec<Duration> = Vec::new();
            for (target, dt, outcome) in steps {
                now += s(dt);
                let name = format!("t{target}");
                if let Ok(ticket) = g.check(&name, now, 0) {
                    allowed_at.entry(name.clone()).or_default().push(now);
                    all.push(now);
                    held.push(ticket);
                }
                prop_assert!(g.in_flight() <= c.max_concurrent);
                if outcome > 0 && !held.is_empty() {
                    let ticket = held.remove(0);
                    g.finish(ticket, if outcome == 1 { Outcome::Failed } else { Outcome::Succeeded }, now);
                }
                for times in allowed_at.values() {
                    let in_window = times.iter().filter(|t| now.saturating_sub(**t) < c.rate_window).count();
                    prop_assert!(in_window <= c.rate_max as usize);
                }
                let in_budget = all.iter().filter(|t| now.saturating_sub(**t) < c.budget_window).count();
                prop_assert!(in_budget <= c.budget_max as usize);
            }
            let failed = g.counters().failed;
            let trips_possible = failed / u64::from(c.breaker.failure_threshold.max(1)) + failed;
            for t in g.snapshot(now) {
                if let BreakerState::Open { trips, .. } = t.breaker {
                    prop_assert!(u64::from(trips) <= trips_possible);
                }
            }
        }
    }
}
