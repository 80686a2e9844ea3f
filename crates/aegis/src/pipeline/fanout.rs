//! Where anomaly changes go: the store (never shed), the healing engine
//! (a trigger), and the notifier (a message). One place, so each change
//! reaches all three the same way.

use aegis_core::status::AnomalyRecord;
use aegis_heal::engine::{AnomalyOpened, EngineHandle, Trigger};
use aegis_notify::{Event, Message, Notifier};
use aegis_store::{StoreEvent, StoreHandle};

use crate::detection::Change;

/// The receivers of anomaly changes.
pub(super) struct Fanout {
    pub store: StoreHandle,
    pub heal: Option<EngineHandle>,
    pub notifier: Option<Notifier>,
}

/// The message that announces an anomaly.
pub fn anomaly_message(a: &AnomalyRecord) -> Message {
    let mut m = Message::new(
        format!("anomaly:{}", a.id),
        Event::Opened,
        a.severity,
        "AegisAnomaly",
        format!("{} anomaly on {}", a.severity, a.series),
        a.opened_ms,
    )
    .describe(a.explanation.clone())
    .label("series", a.series.clone())
    .label("component", a.kind.clone())
    .label("anomaly_id", a.id.to_string());
    if let Some(t) = &a.target {
        m = m.label("target", t.clone());
    }
    m
}

impl Fanout {
    /// Hands every change on; the store keeps each until it is committed.
    pub fn changes(&self, changes: impl Iterator<Item = Change>, open: &mut OpenAnomalies) {
        for change in changes {
            match change {
                Change::Opened(record) => {
                    tracing::warn!(
                        anomaly = record.id,
                        series = %record.series,
                        kind = %record.kind,
                        severity = %record.severity,
                        score = record.score,
                        explanation = %record.explanation,
                        "anomaly opened"
                    );
                    if let Some(n) = &self.notifier {
                        n.send(anomaly_message(&record));
                    }
                    if let Some(heal) = &self.heal {
                        let sent = heal.trigger(Trigger::AnomalyOpened(AnomalyOpened {
                            id: record.id,
                            series: record.series.clone(),
                            target: record.target.clone().unwrap_or_default(),
                            component: record.kind.clone(),
                            severity: record.severity,
                            explanation: record.explanation.clone(),
                        }));
                        if !sent {
                            tracing::warn!(
                                anomaly = record.id,
                                "healing engine busy; the anomaly was not offered to it"
                            );
                        }
                    }
                    open.insert(&record);
                    self.store.append(StoreEvent::AnomalyOpened(record));
                }
                Change::Closed {
                    id,
                    closed_ms,
                    detail,
                } => {
                    tracing::info!(anomaly = id, "anomaly closed");
                    if let Some(heal) = &self.heal {
                        heal.trigger(Trigger::AnomalyClosed { id });
                    }
                    if let (Some(n), Some(record)) = (&self.notifier, open.remove(id)) {
                        n.send(anomaly_message(&record).resolved_at(closed_ms));
                    }
                    self.store.append(StoreEvent::AnomalyClosed {
                        id,
                        closed_ms,
                        detail,
                    });
                }
            }
        }
    }
}

/// Open anomalies remembered for their resolved message (bounded: the
/// oldest are forgotten first).
#[derive(Debug, Default)]
pub(super) struct OpenAnomalies(std::collections::BTreeMap<i64, AnomalyRecord>);

/// Open anomalies remembered at most.
const MAX_OPEN: usize = 10_000;

impl OpenAnomalies {
    fn insert(&mut self, a: &AnomalyRecord) {
        self.0.insert(a.id, a.clone());
        while self.0.len() > MAX_OPEN {
            self.0.pop_first();
        }
    }

    fn remove(&mut self, id: i64) -> Option<AnomalyRecord> {
        self.0.remove(&id)
    }
}
