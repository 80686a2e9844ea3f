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

use std::collections::HashMap;
use std::time::Duration;

use aegis_core::check::CheckSubject;
use aegis_core::config::RuleTrigger;
use aegis_core::container::{ContainerEvent, ContainerHealth, EventKind};
use aegis_core::status::RecordOutcome;
use aegis_core::Severity;

use super::incident::{Opening, Verification};
use super::record::Step;
use super::Engine;
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
        let opening = Opening {
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
        self.open(opening);
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
