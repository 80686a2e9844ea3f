//! Incidents: one per problem being healed, climbing its ladder one rung at
//! a time, each rung through the guard.

use std::collections::HashMap;
use std::time::Duration;

use aegis_core::action::ActionSpec;
use aegis_core::check::CheckSubject;
use aegis_core::status::RecordOutcome;
use aegis_core::Severity;
use aegis_notify::Receiver;
use serde_json::json;

use super::record::Step;
use super::Engine;
use crate::guard::Skip;

/// How an incident's heal is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verification {
    /// The container (by id) runs and its health check passes, or it has none.
    ContainerRuns(String),
    /// The anomaly (by id) closes.
    AnomalyCloses(i64),
    /// The check (by name) passes again.
    CheckPasses(String),
    /// Nothing to watch (a manual action): the action working is the verdict.
    ActionWorks,
}

/// Where an incident stands.
#[derive(Debug, Clone)]
pub(super) enum Phase {
    /// An attempt runs.
    Acting,
    /// The heal is being verified until `deadline` (monotonic).
    Verifying { deadline: Duration },
    /// Waiting for the guard (a cooldown) until `until`.
    Waiting { until: Duration },
    /// Every concurrency slot is busy: waiting, in the order incidents were
    /// opened, for one to free. Never given up for it, and recorded once,
    /// when the wait begins.
    Queued,
}

/// One problem being healed.
#[derive(Debug, Clone)]
pub(super) struct Incident {
    pub id: i64,
    pub key: String,
    /// The trigger's name (`container_unhealthy`, `anomaly`, `manual`...).
    pub symptom: &'static str,
    pub target: String,
    /// What it is about: the default targets of its actions.
    pub subject: CheckSubject,
    pub verify: Verification,
    pub anomaly_id: Option<i64>,
    pub ladder: Vec<ActionSpec>,
    pub rung: usize,
    pub phase: Phase,
    /// When the engine says the event happened, Unix ns (for timings).
    pub event_ns: Option<i64>,
}

impl Incident {
    /// The incident `id` an opening would be, for its messages.
    pub fn for_message(id: i64, o: &Opening) -> Self {
        Self {
            id,
            key: o.key.clone(),
            symptom: o.symptom,
            target: o.target.clone(),
            subject: o.subject.clone(),
            verify: o.verify.clone(),
            anomaly_id: o.anomaly_id,
            ladder: o.ladder.clone(),
            rung: 0,
            phase: Phase::Acting,
            event_ns: o.event_ns,
        }
    }

    /// The action of the current rung.
    pub fn action(&self) -> &'static str {
        self.ladder.get(self.rung).map_or("none", ActionSpec::name)
    }

    /// What an action without a target of its own acts on: the subject's
    /// container, unit or process when it has one, else the incident's target.
    pub fn default_target(&self, spec: &ActionSpec) -> String {
        let s = &self.subject;
        match spec {
            ActionSpec::Container(_) => s.container.clone(),
            ActionSpec::ServiceRestart(_) => s.service.clone(),
            ActionSpec::Signal(_) => s.process.clone(),
            _ => None,
        }
        .unwrap_or_else(|| self.target.clone())
    }
}

/// What opens an incident: everything a trigger knows about it.
#[derive(Debug, Clone)]
pub(super) struct Opening {
    /// One incident per key at a time (`container:ID`, `anomaly:SERIES`...).
    pub key: String,
    /// The trigger's name.
    pub symptom: &'static str,
    /// What it concerns.
    pub target: String,
    /// What it is about, for actions without a target of their own.
    pub subject: CheckSubject,
    /// How the heal is judged.
    pub verify: Verification,
    /// The anomaly that started it, if one did.
    pub anomaly_id: Option<i64>,
    /// The rule's ladder.
    pub ladder: Vec<ActionSpec>,
    /// When the trigger happened, Unix ns.
    pub event_ns: Option<i64>,
    /// Why it opened, for the record.
    pub reason: String,
    /// Do not act before this (monotonic): a back-off still running.
    pub hold_until: Option<Duration>,
}

impl Opening {
    /// A manual action from the API.
    pub fn manual(target: String, spec: ActionSpec) -> Self {
        Self {
            key: format!("manual:{target}"),
            symptom: "manual",
            subject: CheckSubject::default(),
            target,
            verify: Verification::ActionWorks,
            anomaly_id: None,
            ladder: vec![spec],
            event_ns: None,
            reason: "manual request".into(),
            hold_until: None,
        }
    }
}

/// The incidents being handled, by id and by key.
#[derive(Debug)]
pub(super) struct Incidents {
    by_id: HashMap<i64, Incident>,
    by_key: HashMap<String, i64>,
    next: i64,
}

impl Incidents {
    pub fn new(next: i64) -> Self {
        Self {
            by_id: HashMap::new(),
            by_key: HashMap::new(),
            next,
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn get(&self, id: i64) -> Option<&Incident> {
        self.by_id.get(&id)
    }

    pub fn get_mut(&mut self, id: i64) -> Option<&mut Incident> {
        self.by_id.get_mut(&id)
    }

    pub fn by_key(&self, key: &str) -> Option<&Incident> {
        self.by_key.get(key).and_then(|id| self.by_id.get(id))
    }

    pub fn values(&self) -> impl Iterator<Item = &Incident> {
        self.by_id.values()
    }

    fn next_id(&mut self) -> i64 {
        let id = self.next;
        self.next += 1;
        id
    }

    fn insert(&mut self, inc: Incident) {
        self.by_key.insert(inc.key.clone(), inc.id);
        self.by_id.insert(inc.id, inc);
    }

    fn remove(&mut self, id: i64) -> Option<Incident> {
        let inc = self.by_id.remove(&id)?;
        self.by_key.remove(&inc.key);
        Some(inc)
    }
}

impl Engine {
    /// Opens an incident and tries its first rung; `None` when one is
    /// already open for the key.
    pub(super) fn open(&mut self, o: Opening) -> Option<i64> {
        if self.incidents.by_key(&o.key).is_some() {
            return None;
        }
        let inc = Incident {
            id: self.incidents.next_id(),
            key: o.key,
            symptom: o.symptom,
            target: o.target,
            subject: o.subject,
            verify: o.verify,
            anomaly_id: o.anomaly_id,
            ladder: o.ladder,
            rung: 0,
            phase: Phase::Acting,
            event_ns: o.event_ns,
        };
        let id = inc.id;
        let enabled = self.config.enabled;
        let mut detail = json!({"symptom": inc.symptom});
        if let Some(ev) = inc.event_ns {
            // How long from the engine's verdict to this decision.
            detail["event_to_decision_ms"] = json!((super::attempt::wall_ns() - ev) as f64 / 1e6);
        }
        let span = tracing::info_span!("incident", id, target = %inc.target, symptom = inc.symptom);
        let _entered = span.enter();
        self.record(
            &inc,
            Step::note(
                "none",
                if enabled {
                    RecordOutcome::Decided
                } else {
                    RecordOutcome::Ignored
                },
                o.reason,
            )
            .with(detail),
        );
        if !enabled {
            return Some(id);
        }
        let hold = o.hold_until;
        self.incidents.insert(inc);
        match hold {
            Some(until) => {
                if let Some(i) = self.incidents.get_mut(id) {
                    i.phase = Phase::Waiting { until };
                }
            }
            None => self.try_rung(id),
        }
        Some(id)
    }

    pub(super) fn close(&mut self, id: i64) {
        self.incidents.remove(id);
        self.dependent_closed(id);
    }

    /// Records `outcome` for a trigger that opens no incident (a container
    /// left to its engine, one blocked by a failing dependency...): the
    /// record gets an incident number of its own, so the incidents API
    /// shows why nothing was done.
    pub(super) fn note_only(
        &mut self,
        o: Opening,
        outcome: RecordOutcome,
        reason: String,
        detail: serde_json::Value,
    ) -> i64 {
        let inc = Incident {
            id: self.incidents.next_id(),
            key: o.key,
            symptom: o.symptom,
            target: o.target,
            subject: o.subject,
            verify: o.verify,
            anomaly_id: o.anomaly_id,
            ladder: o.ladder,
            rung: 0,
            phase: Phase::Acting,
            event_ns: o.event_ns,
        };
        let mut detail = detail;
        detail["symptom"] = json!(inc.symptom);
        self.record(&inc, Step::note("none", outcome, reason).with(detail));
        inc.id
    }

    pub(super) fn escalate(&mut self, id: i64) {
        if let Some(inc) = self.incidents.get_mut(id) {
            inc.rung += 1;
        }
        self.try_rung(id);
    }

    pub(super) fn give_up(&mut self, id: i64, why: String) {
        let Some(inc) = self.incidents.get(id).cloned() else {
            return;
        };
        self.record(
            &inc,
            Step::note("none", RecordOutcome::GaveUp, why.clone()).with(json!({"rung": inc.rung})),
        );
        self.check_gave_up(&inc);
        let message = self.give_up_message(&inc, &why);
        let direct = self
            .config
            .alert_webhook
            .clone()
            .map(|hook| Receiver::alertmanager("alert_webhook", hook, Severity::Info));
        self.alert(&inc, direct, message);
        self.close(id);
    }

    /// The guard's name for the target of `spec` (a container, a Redis
    /// address, a unit...): breakers, cooldowns and rate limits are kept by it.
    fn target_of(inc: &Incident, spec: &ActionSpec) -> String {
        match spec {
            ActionSpec::Container(c) if !c.container.is_empty() => c.container.clone(),
            ActionSpec::Container(_) => inc.default_target(spec),
            ActionSpec::RedisFlush(r) => format!("redis://{}", r.address),
            ActionSpec::MemcachedFlush(m) => format!("memcached://{}", m.address),
            ActionSpec::Signal(s) if s.pid == 0 => format!("process:{}", inc.default_target(spec)),
            ActionSpec::Signal(s) => format!("pid:{}", s.pid),
            ActionSpec::ServiceRestart(s) if s.unit.is_empty() => {
                format!("unit:{}", inc.default_target(spec))
            }
            ActionSpec::ServiceRestart(s) => format!("unit:{}", s.unit),
            ActionSpec::Command(c) => {
                format!("command:{}", c.argv.first().cloned().unwrap_or_default())
            }
            ActionSpec::Webhook(w) => w.url.to_string(),
        }
    }

    pub(super) fn try_rung(&mut self, id: i64) {
        let Some(inc) = self.incidents.get(id).cloned() else {
            return;
        };
        let Some(spec) = inc.ladder.get(inc.rung).cloned() else {
            self.give_up(id, "every rung of the ladder was tried".into());
            return;
        };
        if let ActionSpec::Webhook(hook) = &spec {
            // Telling a person is the last resort and not a risk to the
            // target: no guard, only dry-run.
            let receiver = Receiver::alertmanager("ladder", hook.clone(), Severity::Info);
            let message = self.give_up_message(&inc, "the ladder reached its alert rung");
            self.alert(&inc, Some(receiver), message);
            self.close(id);
            return;
        }
        let target = Self::target_of(&inc, &spec);
        let now = self.env.clock.monotonic();
        match self.guard.check(&target, now, self.env.clock.wall_ms()) {
            Ok(ticket) => self.start_attempt(&inc, spec, ticket),
            Err(skip) => self.on_skip(id, &inc, &spec, skip),
        }
    }

    fn on_skip(&mut self, id: i64, inc: &Incident, spec: &ActionSpec, skip: Skip) {
        let outcome = if skip == Skip::DryRun {
            RecordOutcome::DryRun
        } else {
            RecordOutcome::Skipped
        };
        // A queued incident that finds every slot still busy is still
        // queued: its wait was recorded when it began.
        if !(skip == Skip::Shed && matches!(inc.phase, Phase::Queued)) {
            self.record(
                inc,
                Step::note(spec.name(), outcome, skip.as_str())
                    .with(json!({"rung": inc.rung, "skip": skip})),
            );
        }
        match skip {
            Skip::Shed => {
                if let Some(i) = self.incidents.get_mut(id) {
                    i.phase = Phase::Queued;
                }
            }
            Skip::Cooldown { retry_in_s }
                if Duration::from_secs(retry_in_s) <= self.config.verify_window =>
            {
                let until = self.env.clock.monotonic() + Duration::from_secs(retry_in_s);
                if let Some(i) = self.incidents.get_mut(id) {
                    i.phase = Phase::Waiting { until };
                }
            }
            Skip::RateLimited { .. }
            | Skip::BreakerOpen { .. }
            | Skip::BudgetExhausted { .. }
            | Skip::Cooldown { .. } => {
                self.give_up(id, format!("the guard stopped healing: {}", skip.as_str()));
            }
            Skip::Paused | Skip::Maintenance | Skip::DryRun => self.close(id),
        }
    }

    /// Tries again the incidents whose wait for the guard is over, and the
    /// queued ones, oldest first, while slots are free.
    pub(super) fn retry_waiting(&mut self) {
        let now = self.env.clock.monotonic();
        let due: Vec<i64> = self
            .incidents
            .values()
            .filter(|i| matches!(i.phase, Phase::Waiting { until } if now >= until))
            .map(|i| i.id)
            .collect();
        for id in due {
            self.try_rung(id);
        }
        self.retry_queued();
    }

    /// Gives freed slots to the queued incidents, oldest first; stops at the
    /// first one that finds none.
    pub(super) fn retry_queued(&mut self) {
        let mut queued: Vec<i64> = self
            .incidents
            .values()
            .filter(|i| matches!(i.phase, Phase::Queued))
            .map(|i| i.id)
            .collect();
        queued.sort_unstable();
        for id in queued {
            self.try_rung(id);
            if self
                .incidents
                .get(id)
                .is_some_and(|i| matches!(i.phase, Phase::Queued))
            {
                break;
            }
        }
    }
}
