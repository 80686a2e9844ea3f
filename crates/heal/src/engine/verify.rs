//! Verification: after an action worked, did the problem go away? A
//! container is watched until it runs and its health check passes; an
//! anomaly until it closes; a manual action has nothing more to watch.
//! Healed: the incident ends. Not healed: the next rung.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aegis_core::container::ContainerHealth;
use aegis_core::status::RecordOutcome;
use serde_json::json;
use tokio::task::{Id, JoinError, JoinSet};

use super::incident::{Incident, Phase, Verification};
use super::record::Step;
use super::Engine;

/// How often a container being verified is inspected.
const CONTAINER_POLL: Duration = Duration::from_millis(200);

/// A verdict from a verification task.
pub(super) struct VerifyDone {
    incident: i64,
    healed: bool,
    detail: String,
}

/// The verifications running on their own tasks (containers).
#[derive(Default)]
pub(super) struct Verifications {
    tasks: JoinSet<VerifyDone>,
    incidents: HashMap<Id, i64>,
}

impl Verifications {
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    pub async fn join_next(&mut self) -> Option<Result<(Id, VerifyDone), JoinError>> {
        self.tasks.join_next_with_id().await
    }
}

impl Engine {
    pub(super) fn verify(&mut self, inc: &Incident) {
        let window = self.config.verify_window;
        let deadline = self.env.clock.monotonic() + window;
        if let Some(i) = self.incidents.get_mut(inc.id) {
            i.phase = Phase::Verifying { deadline };
        }
        match &inc.verify {
            Verification::ActionWorks => {
                self.on_verdict(
                    inc.id,
                    true,
                    "the action succeeded; there is nothing else to verify (a manual action, or a container stopped or killed as its label asks)",
                );
            }
            // The AnomalyClosed or CheckStopped trigger decides, or the deadline.
            Verification::AnomalyCloses(_) | Verification::CheckPasses(_) => {}
            Verification::ContainerRuns(container) => {
                let containers = Arc::clone(&self.env.exec.containers);
                let (incident, container) = (inc.id, container.clone());
                let handle = self.verifications.tasks.spawn(async move {
                    let end = tokio::time::Instant::now() + window;
                    let mut last = String::from("not inspected");
                    while tokio::time::Instant::now() < end {
                        match containers.client().await {
                            Ok(docker) => match aegis_docker::inspect(&docker, &container).await {
                                Ok(Some(c)) => {
                                    let health = c.health.map_or("none", |h| h.as_str());
                                    last = format!("running={}, health={health}", c.running());
                                    let passes =
                                        matches!(c.health, None | Some(ContainerHealth::Healthy));
                                    if c.running() && passes {
                                        return VerifyDone {
                                            incident,
                                            healed: true,
                                            detail: last,
                                        };
                                    }
                                }
                                Ok(None) => last = "the container is gone".into(),
                                Err(e) => {
                                    last = format!("inspecting it failed: {e}");
                                    containers.forget().await;
                                }
                            },
                            Err(e) => last = e.to_string(),
                        }
                        tokio::time::sleep(CONTAINER_POLL).await;
                    }
                    VerifyDone {
                        incident,
                        healed: false,
                        detail: format!("still {last} after {window:?}"),
                    }
                });
                self.verifications.incidents.insert(handle.id(), inc.id);
            }
        }
    }

    pub(super) fn on_verification_joined(&mut self, joined: Result<(Id, VerifyDone), JoinError>) {
        match joined {
            Ok((id, done)) => {
                self.verifications.incidents.remove(&id);
                self.on_verdict(done.incident, done.healed, &done.detail);
            }
            Err(e) => {
                if let Some(incident) = self.verifications.incidents.remove(&e.id()) {
                    tracing::error!(error = %e, incident, "a verification task failed");
                    self.on_verdict(incident, false, &format!("verification failed: {e}"));
                }
            }
        }
    }

    pub(super) fn anomaly_closed(&mut self, anomaly: i64) {
        let found = self
            .incidents
            .values()
            .find(|i| {
                i.verify == Verification::AnomalyCloses(anomaly)
                    && matches!(i.phase, Phase::Verifying { .. })
            })
            .map(|i| i.id);
        if let Some(inc) = found {
            self.on_verdict(inc, true, "the anomaly closed");
        }
    }

    /// Verifications that only the deadline can end (anomalies).
    pub(super) fn expire_verifications(&mut self) {
        let now = self.env.clock.monotonic();
        let expired: Vec<i64> = self
            .incidents
            .values()
            .filter(|i| {
                matches!(i.phase, Phase::Verifying { deadline } if now >= deadline)
                    && matches!(i.verify, Verification::AnomalyCloses(_))
            })
            .map(|i| i.id)
            .collect();
        for id in expired {
            self.on_verdict(
                id,
                false,
                "the anomaly did not close within the verify window",
            );
        }
    }

    pub(super) fn on_verdict(&mut self, id: i64, healed: bool, detail: &str) {
        let Some(inc) = self.incidents.get(id).cloned() else {
            return;
        };
        if !matches!(inc.phase, Phase::Verifying { .. }) {
            return;
        }
        let action = inc.action();
        let entry = self.success.entry((inc.symptom, action)).or_insert((0, 0));
        entry.1 += 1;
        if healed {
            entry.0 += 1;
        }
        self.record(
            &inc,
            Step::note(
                action,
                if healed {
                    RecordOutcome::Healed
                } else {
                    RecordOutcome::NotHealed
                },
                detail,
            )
            .with(json!({"rung": inc.rung})),
        );
        if healed {
            let message = self.healed_message(&inc, detail);
            self.alert(&inc, None, message);
            self.restart_dependents(&inc);
            self.close(id);
        } else {
            self.escalate(id);
        }
    }
}
