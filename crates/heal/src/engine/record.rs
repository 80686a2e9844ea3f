//! Records: every step of healing becomes an [`ActionRecord`] handed to a
//! [`Recorder`] (the store, in the agent), and alerts to people are handed
//! to the notifier, their delivery recorded in turn.

use std::time::Duration;

use aegis_core::status::{ActionRecord, RecordOutcome};
use aegis_core::Severity;
use aegis_notify::{Delivery, Event, Message, Receiver};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::incident::Incident;
use super::Engine;

/// Where healing records go. Must not block; the agent's store keeps
/// them in order and never drops one while it has room.
pub trait Recorder: Send + Sync + 'static {
    /// Takes one record.
    fn record(&self, record: ActionRecord);
}

impl Recorder for mpsc::Sender<ActionRecord> {
    fn record(&self, record: ActionRecord) {
        if self.try_send(record).is_err() {
            tracing::error!("healing record dropped: the record channel is full or closed");
        }
    }
}

impl Recorder for mpsc::UnboundedSender<ActionRecord> {
    fn record(&self, record: ActionRecord) {
        if self.send(record).is_err() {
            tracing::error!("healing record dropped: the record channel is closed");
        }
    }
}

/// One record's content, before the engine stamps it.
pub(super) struct Step<'a> {
    pub action: &'a str,
    pub outcome: RecordOutcome,
    pub reason: String,
    pub attempt: u32,
    pub duration: Option<Duration>,
    pub detail: serde_json::Value,
}

impl<'a> Step<'a> {
    /// A step that is not an attempt (a decision, a skip, a verdict).
    pub fn note(action: &'a str, outcome: RecordOutcome, reason: impl Into<String>) -> Self {
        Self {
            action,
            outcome,
            reason: reason.into(),
            attempt: 0,
            duration: None,
            detail: json!({}),
        }
    }

    /// With `detail`.
    pub fn with(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// An alert being delivered.
pub(super) struct DeliveryDone {
    incident: i64,
    anomaly_id: Option<i64>,
    about: String,
    receiver: String,
    address: String,
    started_ms: i64,
    result: Delivery,
}

/// The alerts in flight (the engine never waits for one).
#[derive(Default)]
pub(super) struct Deliveries(JoinSet<DeliveryDone>);

impl Deliveries {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub async fn join_next(&mut self) -> Option<DeliveryDone> {
        loop {
            match self.0.join_next().await? {
                Ok(done) => return Some(done),
                // A delivery that panicked tells nothing more: its failure
                // was logged by the runtime.
                Err(e) => tracing::error!(error = %e, "an alert delivery task failed"),
            }
        }
    }
}

impl Engine {
    pub(super) fn record(&mut self, inc: &Incident, step: Step<'_>) {
        let r = ActionRecord {
            id: 0,
            at_ms: self.env.clock.wall_ms(),
            incident: inc.id,
            anomaly_id: inc.anomaly_id,
            target: inc.target.clone(),
            action: step.action.to_string(),
            outcome: step.outcome,
            reason: step.reason,
            attempt: step.attempt,
            duration_ms: step.duration.map(|d| d.as_secs_f64() * 1000.0),
            detail: step.detail,
        };
        tracing::info!(incident = r.incident, target = %r.target, action = %r.action, outcome = %r.outcome, reason = %r.reason, "healing");
        self.count(&r);
        self.env.records.record(r);
    }

    fn count(&mut self, r: &ActionRecord) {
        // Action names are the executors' own (bounded); an unknown one
        // counts as "other" so the map stays small.
        let action: &'static str = crate::ACTION_NAMES
            .iter()
            .copied()
            .find(|a| *a == r.action)
            .unwrap_or("other");
        *self.outcomes.entry((action, r.outcome)).or_insert(0) += 1;
    }

    /// The message that tells a person healing did not help.
    pub(super) fn give_up_message(&self, inc: &Incident, why: &str) -> Message {
        Message::new(
            format!("incident:{}", inc.id),
            Event::HealFailed,
            Severity::Critical,
            "AegisHealingNeedsAPerson",
            format!("{} on {} was not healed", inc.symptom, inc.target),
            self.env.clock.wall_ms(),
        )
        .describe(why)
        .label("target", inc.target.clone())
        .label("symptom", inc.symptom)
        .label("incident", inc.id.to_string())
    }

    /// The message that tells a heal worked (verified).
    pub(super) fn healed_message(&self, inc: &Incident, how: &str) -> Message {
        Message::new(
            format!("incident:{}", inc.id),
            Event::Healed,
            Severity::Warning,
            "AegisHealed",
            format!(
                "{} on {} was healed by {}",
                inc.symptom,
                inc.target,
                inc.action()
            ),
            self.env.clock.wall_ms(),
        )
        .describe(how)
        .label("target", inc.target.clone())
        .label("symptom", inc.symptom)
        .label("incident", inc.id.to_string())
        .label("action", inc.action())
        .resolved_at(self.env.clock.wall_ms())
    }

    /// Hands `message` to every receiver of the notifier, and to `to` at
    /// once when given (its delivery is recorded).
    pub(super) fn alert(&mut self, inc: &Incident, to: Option<Receiver>, message: Message) {
        if self.guard.dry_run() {
            let to = to
                .as_ref()
                .map_or_else(|| "the receivers".to_string(), Receiver::address);
            self.record(
                inc,
                Step::note(
                    "webhook",
                    RecordOutcome::DryRun,
                    format!("would alert {to}: {}", message.description),
                ),
            );
            return;
        }
        let Some(notifier) = self.env.notifier.clone() else {
            if to.is_some() {
                self.record(
                    inc,
                    Step::note(
                        "webhook",
                        RecordOutcome::Failed,
                        "no notifier runs in this agent",
                    ),
                );
            }
            return;
        };
        let Some(receiver) = to else {
            notifier.send(message);
            return;
        };
        // Receivers of the notifier hear it too, unless one of them is this one.
        let address = receiver.address();
        notifier.send_except(message.clone(), &address);
        let reply = notifier.deliver(receiver.clone(), message);
        let (incident, anomaly_id, about) = (inc.id, inc.anomaly_id, inc.target.clone());
        let started_ms = self.env.clock.wall_ms();
        self.deliveries.0.spawn(async move {
            let result = reply
                .await
                .unwrap_or_else(|_| Err("the notifier stopped".into()));
            DeliveryDone {
                incident,
                anomaly_id,
                about,
                receiver: receiver.name,
                address,
                started_ms,
                result,
            }
        });
    }

    pub(super) fn on_delivery(&mut self, done: DeliveryDone) {
        let (outcome, reason) = match done.result {
            Ok(m) => (RecordOutcome::Alerted, m),
            Err(e) => (RecordOutcome::Failed, e),
        };
        let r = ActionRecord {
            id: 0,
            at_ms: self.env.clock.wall_ms(),
            incident: done.incident,
            anomaly_id: done.anomaly_id,
            target: done.address,
            action: "webhook".into(),
            outcome,
            reason,
            attempt: 1,
            duration_ms: Some((self.env.clock.wall_ms() - done.started_ms) as f64),
            detail: json!({"about": done.about, "receiver": done.receiver}),
        };
        self.count(&r);
        self.env.records.record(r);
    }
}
