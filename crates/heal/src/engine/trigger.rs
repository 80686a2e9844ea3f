//! Triggers: what may need healing, turned into incidents (or into a
//! record of why not).
//!
//! Container events are read in the light of what came before: a `die` or
//! a failing health check right after a `kill`/`stop` is the stop, not a
//! sickness; a `start` or `destroy` ends that grace. One episode (from a
//! container turning unhealthy until it is healthy again) is decided once,
//! however many times the stream and the poller report it; an event of an
//! opted-in container that arrives while an incident already handles it is
//! recorded as skipped, with the incident's number, never dropped.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use aegis_core::action::{ActionSpec, ContainerOp};
use aegis_core::check::CheckSubject;
use aegis_core::config::RuleTrigger;
use aegis_core::container::{ContainerEvent, ContainerHealth, EventKind};
use aegis_core::status::RecordOutcome;
use aegis_core::Severity;

use super::incident::{Opening, Verification};
use super::record::Step;
use super::{Engine, Settings};
use crate::policy::Symptom;

/// Containers remembered at most (stops, episodes); the map is cleared
/// when full, which at worst re-decides one episode.
const MAX_CONTAINERS: usize = 10_000;

/// An anomaly that opened.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyOpened {
    /// Its id.
    pub id: i64,
    /// Its series.
    pub series: String,
    /// What it concerns (the series' instance, or `host`).
    pub target: String,
    /// The component that opened it.
    pub component: String,
    /// Its severity.
    pub severity: Severity,
    /// Its explanation.
    pub explanation: String,
}

/// A check that started failing.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckFailing {
    /// The check.
    pub check: String,
    /// Its kind (`http`, `process`...).
    pub kind: String,
    /// What it is about: the default targets of its actions.
    pub subject: CheckSubject,
    /// How bad its failure is.
    pub severity: Severity,
    /// What the failing result said.
    pub reason: String,
}

/// Something that may need healing.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// A container event from the container source.
    Container(ContainerEvent),
    /// An anomaly opened.
    AnomalyOpened(AnomalyOpened),
    /// An anomaly closed.
    AnomalyClosed {
        /// Its id.
        id: i64,
    },
    /// A check started failing (not blocked: its dependencies pass).
    CheckFailed(CheckFailing),
    /// A check that failed passes again, or is blocked by a dependency (it
    /// is then not this check's to heal).
    CheckStopped {
        /// The check.
        check: String,
        /// Whether it passes (false: blocked, or no verdict).
        passing: bool,
    },
    /// A reload replaced the rules. Incidents already open keep the ladder
    /// they started with; new ones follow the new rules.
    Rules(crate::policy::Policy),
    /// A reload changed the healing settings: the guard (cooldown, rate
    /// limit, budget, concurrency, breakers, dry run, maintenance windows),
    /// retries, the verify window, whether healing acts at all, the
    /// executors' attempt timeout and deny-list. What the guard remembers
    /// counts against the new limits; attempts under way finish as they
    /// began.
    Settings(Box<Settings>),
    /// A reload removed the check or changed it (a changed check starts
    /// afresh and fails again, if it still does, as a new trigger).
    CheckRemoved {
        /// The check.
        check: String,
    },
}

/// What the engine remembers of each container between events.
#[derive(Debug, Default)]
pub(super) struct ContainerMemory {
    /// When a `kill`/`stop` was seen (monotonic).
    stops: HashMap<String, Duration>,
    /// The health of the current episode, and whether it was decided.
    health: HashMap<String, ContainerHealth>,
    /// The engine time of the last event the stream delivered: a poll that
    /// began before it reports an older state, and is ignored.
    streamed_ns: HashMap<String, i64>,
    /// When a `start` was seen (monotonic): the start period counts from it.
    started: HashMap<String, Duration>,
    /// Since when an incident holds off acting on an unhealthy container
    /// (`unhealthy_for`), by container id (monotonic).
    held_since: HashMap<String, Duration>,
    /// When each container's heals began (monotonic), for `max_restarts`.
    heals: HashMap<String, VecDeque<Duration>>,
}

impl ContainerMemory {
    fn stopping(&self, id: &str, now: Duration, grace: Duration) -> bool {
        self.stops
            .get(id)
            .is_some_and(|t| now.saturating_sub(*t) <= grace)
    }

    fn bounded(&mut self) {
        if self.stops.len() > MAX_CONTAINERS {
            self.stops.clear();
        }
        if self.health.len() > MAX_CONTAINERS {
            self.health.clear();
        }
        if self.streamed_ns.len() > MAX_CONTAINERS {
            self.streamed_ns.clear();
        }
        if self.started.len() > MAX_CONTAINERS {
            self.started.clear();
        }
        if self.held_since.len() > MAX_CONTAINERS {
            self.held_since.clear();
        }
        if self.heals.len() > MAX_CONTAINERS {
            self.heals.clear();
        }
    }
}

impl Engine {
    pub(super) fn on_trigger(&mut self, t: Trigger) {
        match t {
            Trigger::Container(e) => self.on_container(e),
            Trigger::CheckFailed(c) => self.check_failed(c),
            Trigger::CheckStopped { check, passing } => self.check_stopped(
                &check,
                passing,
                "the check is blocked by a dependency: it is not its own to heal",
            ),
            Trigger::Rules(policy) => self.policy = policy,
            Trigger::Settings(settings) => self.reconfigure(*settings),
            Trigger::CheckRemoved { check } => self.check_stopped(
                &check,
                false,
                "the check was removed or changed by a reload of the configuration",
            ),
            Trigger::AnomalyOpened(a) => {
                if self.join_as_evidence(&a) {
                    return;
                }
                let symptom = Symptom::Anomaly {
                    series: a.series.clone(),
                    component: a.component.clone(),
                    severity: a.severity,
                };
                let Some(rule) = self.policy.decide(&symptom) else {
                    return;
                };
                let opening = Opening {
                    key: format!("anomaly:{}", a.series),
                    symptom: RuleTrigger::Anomaly.as_str(),
                    subject: CheckSubject::default(),
                    target: a.target,
                    verify: Verification::AnomalyCloses(a.id),
                    anomaly_id: Some(a.id),
                    ladder: rule.actions.clone(),
                    event_ns: None,
                    reason: format!("rule {:?}: {}", rule.name, a.explanation),
                    hold_until: None,
                };
                self.open(opening);
            }
            Trigger::AnomalyClosed { id } => self.anomaly_closed(id),
        }
    }

    fn on_container(&mut self, e: ContainerEvent) {
        let now = self.env.clock.monotonic();
        let grace = self.config.operator_grace;
        self.containers.bounded();
        if e.from_stream {
            self.containers
                .streamed_ns
                .insert(e.id.clone(), e.engine_time_ns);
        } else if self
            .containers
            .streamed_ns
            .get(&e.id)
            .is_some_and(|t| *t >= e.engine_time_ns)
        {
            // The poll asked before the stream's last word on it: stale.
            tracing::debug!(container = %e.name, "a poll older than the stream's last event; ignored");
            return;
        }
        let trigger = match &e.kind {
            EventKind::Kill | EventKind::Stop => {
                // Our own restarts also stop containers; either way a die
                // right after is not a crash.
                self.containers.stops.insert(e.id.clone(), now);
                return;
            }
            EventKind::Start => {
                // The stop is over (started again, by a person or by the
                // engine coming back): a check failing from now on is a
                // sickness again, even within the grace that covered the
                // stop. A new run is a new episode.
                self.containers.stops.remove(&e.id);
                self.containers.health.remove(&e.id);
                self.containers.started.insert(e.id.clone(), now);
                return;
            }
            EventKind::Destroy => {
                self.containers.stops.remove(&e.id);
                self.containers.health.remove(&e.id);
                self.containers.streamed_ns.remove(&e.id);
                return;
            }
            EventKind::Health { status } => {
                let before = self.containers.health.insert(e.id.clone(), *status);
                if *status == ContainerHealth::Healthy {
                    self.healthy_again(&e, now);
                    self.unblock(&e.name);
                }
                if *status != ContainerHealth::Unhealthy {
                    return;
                }
                // The same episode, reported again (by the poller after the
                // stream, say): decided once.
                if before == Some(ContainerHealth::Unhealthy) {
                    return;
                }
                // A container being stopped can fail its last check: that
                // is the stop, not a sickness. Unless an incident handles
                // the container (the stop is its own restart): then the
                // event is answered below, as every event of an incident's
                // container is.
                if self.containers.stopping(&e.id, now, grace)
                    && self.incidents.by_key(&container_key(&e.id)).is_none()
                {
                    return;
                }
                RuleTrigger::ContainerUnhealthy
            }
            EventKind::Die { exit_code } => {
                if self.containers.stopping(&e.id, now, grace) || *exit_code == Some(0) {
                    return;
                }
                RuleTrigger::ContainerDied
            }
            EventKind::Oom => RuleTrigger::ContainerOom,
        };
        let symptom = Symptom::Container {
            trigger,
            name: e.name.clone(),
            labels: e.labels.clone(),
        };
        let Some(rule) = self.policy.decide(&symptom) else {
            tracing::debug!(container = %e.name, ?trigger, "no rule for this container; left alone");
            return;
        };
        let key = container_key(&e.id);
        let how = if e.from_stream {
            "the engine reported"
        } else {
            "polling found"
        };
        let what = match &e.kind {
            EventKind::Health { status } => format!("health {status}"),
            EventKind::Die { exit_code } => match exit_code {
                Some(c) => format!("exit with code {c}"),
                None => "exit".into(),
            },
            EventKind::Oom => "out of memory".into(),
            other => format!("{other:?}"),
        };
        // An incident already handles this container (its own restart
        // dies and starts, or it fell ill again while being verified):
        // recorded, so no event goes unanswered.
        if let Some(existing) = self.incidents.by_key(&key) {
            let reason = format!(
                "{how} {what}; incident {} is already handling {}",
                existing.id, e.name
            );
            let existing = existing.clone();
            self.record(
                &existing,
                Step::note("none", RecordOutcome::Skipped, reason).with(
                    serde_json::json!({"symptom": trigger.as_str(), "duplicate_of": existing.id}),
                ),
            );
            return;
        }
        let mut opening = Opening {
            key,
            symptom: trigger.as_str(),
            subject: CheckSubject {
                container: Some(e.name.clone()),
                ..CheckSubject::default()
            },
            target: e.name.clone(),
            verify: Verification::ContainerRuns(e.id.clone()),
            anomaly_id: None,
            ladder: rule.actions.clone(),
            event_ns: Some(e.engine_time_ns),
            reason: format!("rule {:?}: {how} {what}", rule.name),
            hold_until: None,
        };
        let settings = self.settings_of(&e.name, &e.labels);
        let info = self.info_of(&e);
        let skip = |engine: &mut Engine, o: Opening, why: String, detail: serde_json::Value| {
            tracing::info!(container = %e.name, reason = %why, "not healed");
            engine.note_only(o, RecordOutcome::Skipped, why, detail);
        };
        if info.paused() {
            let why = format!(
                "{how} {what}, but {} is paused: a paused container is never touched",
                e.name
            );
            skip(
                self,
                opening,
                why,
                serde_json::json!({"left_alone": "paused"}),
            );
            return;
        }
        if let EventKind::Die { exit_code } = &e.kind {
            if let Some(policy) = info.engine_restarts(*exit_code, e.inspected.is_some()) {
                let why = format!(
                    "{how} {what}; left to the container engine, which restarts {} itself: {policy}",
                    e.name
                );
                let detail = serde_json::json!({
                    "left_to": "engine",
                    "restart_policy": info.restart_policy.as_ref().map(|p| &p.name),
                    "restart_count": info.restart_count,
                });
                skip(self, opening, why, detail);
                return;
            }
        }
        if trigger == RuleTrigger::ContainerUnhealthy {
            if let Some(period) = settings.start_period {
                let since_start = info
                    .started_at_ms
                    .map(|t| {
                        Duration::from_millis(
                            u64::try_from(self.env.clock.wall_ms().saturating_sub(t)).unwrap_or(0),
                        )
                    })
                    .or_else(|| {
                        self.containers
                            .started
                            .get(&e.id)
                            .map(|t| now.saturating_sub(*t))
                    });
                if let Some(age) = since_start.filter(|age| *age < period) {
                    let why = format!(
                        "{how} {what} {:.1}s after it started, within its start period of {}: failures then do not count",
                        age.as_secs_f64(),
                        humantime::format_duration(period)
                    );
                    skip(
                        self,
                        opening,
                        why,
                        serde_json::json!({"start_period_s": period.as_secs_f64()}),
                    );
                    return;
                }
            }
        }
        let failing = self.failing_dependencies(&info, &settings);
        if !failing.is_empty() {
            let names: Vec<String> = failing.iter().map(|(n, w)| format!("{n} ({w})")).collect();
            let why = format!(
                "{how} {what}; blocked: it depends on {}, which is failing; it is restarted once that is healed",
                names.join(", ")
            );
            let detail = serde_json::json!({
                "blocked_by": failing.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            });
            skip(self, opening, why, detail);
            self.block(e.clone(), failing.into_iter().map(|(n, _)| n).collect());
            return;
        }
        if let Some((max, window)) = settings.max_restarts {
            let heals = self.containers.heals.entry(e.name.clone()).or_default();
            while heals
                .front()
                .is_some_and(|t| now.saturating_sub(*t) >= window)
            {
                heals.pop_front();
            }
            if heals.len() >= max as usize {
                let next = heals
                    .front()
                    .map(|t| window.saturating_sub(now.saturating_sub(*t)))
                    .unwrap_or_default();
                let why = format!(
                    "{how} {what}; healed {} time(s) within {} already, its max_restarts of {max}/{}: a crash loop, left for a person; healing resumes in {}s",
                    heals.len(),
                    humantime::format_duration(window),
                    humantime::format_duration(window),
                    next.as_secs()
                );
                let id = self.note_only(
                    opening.clone(),
                    RecordOutcome::GaveUp,
                    why.clone(),
                    serde_json::json!({"max_restarts": max, "window_s": window.as_secs_f64()}),
                );
                let inc = super::incident::Incident::for_message(id, &opening);
                let message = self.give_up_message(&inc, &why);
                self.alert(&inc, None, message);
                return;
            }
        }
        if settings.action.is_some() || settings.stop_timeout.is_some() {
            for rung in &mut opening.ladder {
                if let ActionSpec::Container(a) = rung {
                    if let Some(op) = settings.action {
                        a.op = op;
                    }
                    if let Some(t) = settings.stop_timeout {
                        a.stop_timeout_s = u32::try_from(t.as_secs()).unwrap_or(u32::MAX);
                    }
                }
            }
            if matches!(settings.action, Some(ContainerOp::Stop | ContainerOp::Kill)) {
                // Stopped as asked: there is no run to verify.
                opening.verify = Verification::ActionWorks;
            }
            if let Some(op) = settings.action {
                opening
                    .reason
                    .push_str(&format!("; its label asks for {op:?}").to_lowercase());
            }
        }
        if trigger == RuleTrigger::ContainerUnhealthy {
            if let Some(d) = settings.unhealthy_for {
                opening.hold_until = Some(now + d);
                opening.reason.push_str(&format!(
                    "; acting if it is still unhealthy after {} (its unhealthy_for)",
                    humantime::format_duration(d)
                ));
                self.containers.held_since.insert(e.id.clone(), now);
            }
        }
        if self.open(opening).is_some() {
            self.containers
                .heals
                .entry(e.name.clone())
                .or_default()
                .push_back(now);
        }
    }

    /// A container held off by `unhealthy_for` is healthy again before its
    /// time: nothing is done.
    fn healthy_again(&mut self, e: &ContainerEvent, now: Duration) {
        let Some(since) = self.containers.held_since.remove(&e.id) else {
            return;
        };
        let Some(inc) = self.incidents.by_key(&container_key(&e.id)).cloned() else {
            return;
        };
        if inc.rung == 0 && matches!(inc.phase, super::incident::Phase::Waiting { .. }) {
            let why = format!(
                "healthy again {:.1}s after it turned unhealthy, within its unhealthy_for: not healed",
                now.saturating_sub(since).as_secs_f64()
            );
            self.record(&inc, Step::note("none", RecordOutcome::Skipped, why));
            self.close(inc.id);
        }
    }

    /// The last health the container's events gave.
    pub(super) fn containers_health(&self, id: &str) -> Option<ContainerHealth> {
        self.containers.health.get(id).copied()
    }

    /// Forgets the container's health episode, so the next unhealthy
    /// event is decided again.
    pub(super) fn forget_health(&mut self, id: &str) {
        self.containers.health.remove(id);
    }
}

/// The incident key of a container.
fn container_key(id: &str) -> String {
    format!("container:{id}")
}

impl Engine {
    /// An anomaly on the target of an incident being handled joins it as
    /// evidence instead of opening one of its own: one fault, one incident.
    fn join_as_evidence(&mut self, a: &AnomalyOpened) -> bool {
        let joined = self
            .incidents
            .values()
            .find(|i| {
                i.target == a.target
                    || i.subject.container.as_deref() == Some(a.target.as_str())
                    || i.subject.process.as_deref() == Some(a.target.as_str())
            })
            .cloned()
            .or_else(|| self.failing_check_incident(&a.target));
        let Some(inc) = joined else {
            return false;
        };
        let mut evidence = inc.clone();
        evidence.anomaly_id = Some(a.id);
        self.record(
            &evidence,
            Step::note(
                "none",
                RecordOutcome::Joined,
                format!(
                    "anomaly {} on {} ({}) joined as evidence: {}",
                    a.id, a.series, a.component, a.explanation
                ),
            )
            .with(serde_json::json!({"anomaly": a.id, "series": a.series, "severity": a.severity})),
        );
        true
    }
}
