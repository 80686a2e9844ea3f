//! Where anomaly changes go: the store (never shed), the healing engine
//! (a trigger), and the notifier (a message per incident, through the
//! [`Grouper`]). One place, so each change reaches all three the same way.

use aegis_core::status::AnomalyRecord;
use aegis_heal::engine::{AnomalyOpened, EngineHandle, Trigger};
use aegis_notify::{Event, Message, Notifier};
use aegis_store::{StoreEvent, StoreHandle};

use crate::detection::Change;

use super::grouping::Grouper;

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
    /// Every anomaly is offered to healing; the notifier hears of groups
    /// (see [`Fanout::due`]).
    pub fn changes(&self, changes: impl Iterator<Item = Change>, groups: &mut Grouper) {
        for change in changes {
            match change {
                Change::Opened(mut record) => {
                    tracing::warn!(
                        anomaly = record.id,
                        series = %record.series,
                        kind = %record.kind,
                        severity = %record.severity,
                        score = record.score,
                        explanation = %record.explanation,
                        "anomaly opened"
                    );
                    let causes = groups.opened(&record);
                    for (id, cause) in causes {
                        if id == record.id {
                            record.cause = Some(cause);
                        } else {
                            self.store.append(StoreEvent::AnomalyCause { id, cause });
                        }
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
                    if let Some(resolved) = groups.closed(id, closed_ms) {
                        if let Some(n) = &self.notifier {
                            n.send(resolved);
                        }
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

    /// Tells the notifier of the groups whose hold has passed by `now_ms`;
    /// `told_by_check` says whether a failing check already tells of a
    /// target.
    pub fn due(&self, now_ms: i64, groups: &mut Grouper, told_by_check: impl Fn(&str) -> bool) {
        let messages = groups.due(now_ms, told_by_check);
        if let Some(n) = &self.notifier {
            for m in messages {
                n.send(m);
            }
        }
    }
}
