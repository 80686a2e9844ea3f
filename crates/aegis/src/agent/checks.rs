//! The checks' place in the agent: each change of a check's state goes to
//! the store (its history), to healing (a failing check is a trigger; a
//! passing one verifies the heal) and to the notifier (failing and passing
//! transitions; a blocked check is never announced on its own); and the
//! API reads the checks through their owner and the store.

use aegis_api::{BoxFuture, ChecksReader, Unavailable};
use aegis_collect::check::ChecksHandle;
use aegis_core::check::{CheckDetail, CheckState, CheckStatus, TransitionRecord};
use aegis_core::config::CheckConfig;
use aegis_heal::engine::{CheckFailing, EngineHandle, Trigger};
use aegis_notify::{Event, Message, Notifier};
use aegis_store::{StoreEvent, StoreHandle};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Transitions waiting to be handed on, at most.
pub const TRANSITION_QUEUE: usize = 4_096;
/// Transitions of a check shown by `GET /api/v1/checks/{name}`, at most.
const DETAIL_TRANSITIONS: u32 = 50;

/// The message that tells a check's change, if it is one to tell.
fn message_of(t: &TransitionRecord, c: &CheckConfig) -> Option<Message> {
    let event = match (t.from, t.to) {
        (_, CheckState::Failing) => Event::CheckFailing,
        (CheckState::Failing, CheckState::Passing) => Event::CheckPassing,
        _ => return None,
    };
    let mut m = Message::new(
        format!("check:{}", c.name.as_str()),
        event,
        c.severity,
        "AegisCheckFailing",
        if event == Event::CheckFailing {
            format!("check {} is failing", c.name.as_str())
        } else {
            format!("check {} passes again", c.name.as_str())
        },
        t.at_ms,
    )
    .describe(t.reason.clone())
    .label("check", c.name.to_string())
    .label("kind", c.kind.as_str());
    if let Some(class) = t.result.as_ref().and_then(|r| r.outcome.class()) {
        m = m.label("class", class.as_str());
    }
    if event == Event::CheckPassing {
        m = m.resolved_at(t.at_ms);
    }
    Some(m)
}

/// Hands every transition on until `cancel`. `checks` is the current set
/// (a reload replaces it).
pub async fn fan_out(
    mut transitions: mpsc::Receiver<TransitionRecord>,
    checks: watch::Receiver<Arc<Vec<CheckConfig>>>,
    store: StoreHandle,
    heal: EngineHandle,
    notifier: Notifier,
    cancel: CancellationToken,
) {
    loop {
        let t = tokio::select! {
            _ = cancel.cancelled() => break,
            t = transitions.recv() => match t {
                Some(t) => t,
                None => break,
            },
        };
        let current = Arc::clone(&checks.borrow());
        let Some(c) = current.iter().find(|c| c.name.as_str() == t.check) else {
            continue;
        };
        if let Some(m) = message_of(&t, c) {
            notifier.send(m);
        }
        let trigger = match (t.from, t.to) {
            (_, CheckState::Failing) => Some(Trigger::CheckFailed(CheckFailing {
                check: t.check.clone(),
                kind: c.kind.as_str().to_string(),
                subject: aegis_collect::check::subject_of(c),
                severity: c.severity,
                reason: t.reason.clone(),
            })),
            (CheckState::Failing, to) => Some(Trigger::CheckStopped {
                check: t.check.clone(),
                passing: to == CheckState::Passing,
            }),
            (_, CheckState::Passing) => Some(Trigger::CheckStopped {
                check: t.check.clone(),
                passing: true,
            }),
            _ => None,
        };
        if let Some(trigger) = trigger {
            if !heal.trigger_wait(trigger).await {
                break;
            }
        }
        store.append(StoreEvent::CheckTransition(t));
    }
}

/// The checks as the API reads them.
pub struct ChecksApi {
    /// The owner of the checks.
    pub handle: ChecksHandle,
    /// Where their transitions are kept.
    pub store: StoreHandle,
}

impl ChecksReader for ChecksApi {
    fn list(&self) -> Vec<CheckStatus> {
        self.handle.statuses().as_ref().clone()
    }

    fn detail(&self, name: String) -> BoxFuture<'_, Result<Option<CheckDetail>, Unavailable>> {
        Box::pin(async move {
            let Some((check, results)) = self.handle.recent(&name).await else {
                return Ok(None);
            };
            let transitions = self
                .store
                .check_transitions(&name, DETAIL_TRANSITIONS)
                .await
                .map_err(|_| Unavailable)?;
            Ok(Some(CheckDetail {
                check,
                results,
                transitions,
            }))
        })
    }
}
