//! Checks as triggers: a failing check opens an incident verified by the
//! check passing again, and each target's heals back off as Kubernetes'
//! CrashLoopBackOff does (10 s, doubling to 5 minutes, reset after 10
//! minutes passing). Healing never gives up on a failing check for good:
//! when its ladder is exhausted (or the guard stops it) a person is told,
//! and once the back-off allows, a new incident tries again, for as long
//! as the check fails.

use std::collections::HashMap;
use std::time::Duration;

use aegis_core::check::{HealBackoff, HealBackoffPolicy};
use aegis_core::config::RuleTrigger;
use aegis_core::status::RecordOutcome;
use serde_json::json;

use super::incident::{Incident, Opening, Phase, Verification};
use super::record::Step;
use super::trigger::CheckFailing;
use super::Engine;
use crate::policy::Symptom;

/// What the engine remembers of one check.
#[derive(Debug)]
pub(super) struct CheckWatch {
    /// What it said when it started failing; `None` while it does not fail.
    failing: Option<CheckFailing>,
    backoff: HealBackoff,
    /// The next try after a give-up (monotonic).
    retry_at: Option<Duration>,
    /// The incident of the current failure (open, or given up and waiting
    /// to try again): what evidence joins.
    incident: Option<Incident>,
}

/// Every check the engine has heard of (bounded by the configured checks).
#[derive(Debug, Default)]
pub(super) struct CheckWatches {
    policy: HealBackoffPolicy,
    by_name: HashMap<String, CheckWatch>,
}

impl CheckWatches {
    /// With this back-off policy.
    pub fn new(policy: HealBackoffPolicy) -> Self {
        Self {
            policy,
            by_name: HashMap::new(),
        }
    }

    /// Whether a failing check waits for its next try.
    pub fn retry_pending(&self) -> bool {
        self.by_name.values().any(|w| w.retry_at.is_some())
    }

    fn watch(&mut self, name: &str) -> &mut CheckWatch {
        let policy = self.policy;
        self.by_name
            .entry(name.to_string())
            .or_insert_with(|| CheckWatch {
                failing: None,
                backoff: HealBackoff::new(policy),
                retry_at: None,
                incident: None,
            })
    }
}

fn key(check: &str) -> String {
    format!("check:{check}")
}

impl Engine {
    pub(super) fn check_failed(&mut self, c: CheckFailing) {
        let now = self.env.clock.monotonic();
        let w = self.checks.watch(&c.check);
        w.failing = Some(c.clone());
        w.backoff.failing();
        w.retry_at = None;
        self.open_for_check(c, now, "the check failed");
    }

    pub(super) fn check_stopped(&mut self, check: &str, passing: bool, why_not_passing: &str) {
        let now = self.env.clock.monotonic();
        let w = self.checks.watch(check);
        w.failing = None;
        w.retry_at = None;
        w.incident = None;
        if passing {
            w.backoff.passing(now);
        }
        let Some(inc) = self.incidents.by_key(&key(check)).cloned() else {
            return;
        };
        match (&inc.phase, passing) {
            (Phase::Verifying { .. }, true) => {
                self.on_verdict(inc.id, true, "the check passes again");
            }
            (Phase::Waiting { .. } | Phase::Queued, _) | (Phase::Verifying { .. }, false) => {
                let why = if passing {
                    "the check passes again on its own; nothing more to do"
                } else {
                    why_not_passing
                };
                self.record(
                    &inc,
                    Step::note(
                        "none",
                        if passing {
                            RecordOutcome::Healed
                        } else {
                            RecordOutcome::Skipped
                        },
                        why,
                    ),
                );
                self.close(inc.id);
            }
            (Phase::Acting, _) => {
                // The attempt running decides; its verification will see
                // the check pass (or not).
            }
        }
    }

    /// Opens an incident for a failing check, waiting for its back-off
    /// when the last heal was too recent.
    fn open_for_check(&mut self, c: CheckFailing, now: Duration, why: &str) -> Option<i64> {
        let symptom = Symptom::Check {
            name: c.check.clone(),
            severity: c.severity,
        };
        let rule = self.policy.decide(&symptom)?;
        let (rule_name, ladder) = (rule.name.clone(), rule.actions.clone());
        if let Some(existing) = self.incidents.by_key(&key(&c.check)) {
            let existing = existing.clone();
            self.record(
                &existing,
                Step::note(
                    "none",
                    RecordOutcome::Skipped,
                    format!(
                        "{why}; incident {} is already handling {}",
                        existing.id, c.check
                    ),
                )
                .with(json!({"duplicate_of": existing.id})),
            );
            return None;
        }
        let backoff = &self.checks.watch(&c.check).backoff;
        let (allowed, not_before, last_wait) = (
            backoff.allows(now),
            backoff.not_before(),
            backoff.last_wait(),
        );
        let id = self.open(Opening {
            key: key(&c.check),
            symptom: RuleTrigger::CheckFailed.as_str(),
            subject: c.subject.clone(),
            target: c.check.clone(),
            verify: Verification::CheckPasses(c.check.clone()),
            anomaly_id: None,
            ladder,
            event_ns: None,
            reason: format!("rule {rule_name:?}: {why}: {}", c.reason),
            hold_until: (!allowed).then_some(not_before),
        })?;
        let opened = self.incidents.get(id).cloned();
        self.checks.watch(&c.check).incident = opened;
        if !allowed {
            if let Some(inc) = self.incidents.get(id).cloned() {
                let wait = not_before.saturating_sub(now);
                self.record(
                    &inc,
                    Step::note(
                        "none",
                        RecordOutcome::BackingOff,
                        format!(
                            "{} was healed {:.0} s ago and fails again: the next try waits {:.0} s (crash-loop back-off)",
                            c.check,
                            last_wait.saturating_sub(wait).as_secs_f64(),
                            wait.as_secs_f64()
                        ),
                    )
                    .with(json!({"retry_in_s": wait.as_secs_f64(), "backoff_s": last_wait.as_secs_f64()})),
                );
            }
        }
        Some(id)
    }

    /// A heal of a check's target starts now: the next waits longer.
    pub(super) fn check_heal_started(&mut self, inc: &Incident) {
        if let Verification::CheckPasses(name) = &inc.verify {
            let now = self.env.clock.monotonic();
            self.checks.watch(name).backoff.healed(now);
        }
    }

    /// A check incident gave up: the check is still watched, and when the
    /// back-off allows and it still fails, healing tries again.
    pub(super) fn check_gave_up(&mut self, inc: &Incident) {
        let Verification::CheckPasses(name) = &inc.verify else {
            return;
        };
        let now = self.env.clock.monotonic();
        let w = self.checks.watch(name);
        if w.failing.is_some() {
            // At least one back-off step, even when no attempt ran (the
            // guard refused): never a tight loop of give-ups.
            if w.backoff.allows(now) {
                w.backoff.healed(now);
            }
            w.retry_at = Some(w.backoff.not_before());
        }
    }

    /// Opens the incidents of failing checks whose retry is due.
    pub(super) fn retry_checks(&mut self) {
        let now = self.env.clock.monotonic();
        let due: Vec<CheckFailing> = self
            .checks
            .by_name
            .values_mut()
            .filter(|w| w.retry_at.is_some_and(|t| now >= t))
            .filter_map(|w| {
                w.retry_at = None;
                w.failing.clone()
            })
            .collect();
        for c in due {
            self.open_for_check(
                c,
                now,
                "the check still fails; trying again after the back-off",
            );
        }
    }
}

impl Engine {
    /// The incident of a failing check about `target`, open or given up
    /// and waiting to try again.
    pub(super) fn failing_check_incident(&self, target: &str) -> Option<Incident> {
        self.checks
            .by_name
            .values()
            .filter(|w| w.failing.is_some())
            .filter_map(|w| w.incident.as_ref())
            .find(|i| {
                i.target == target
                    || i.subject.container.as_deref() == Some(target)
                    || i.subject.process.as_deref() == Some(target)
            })
            .cloned()
    }
}
