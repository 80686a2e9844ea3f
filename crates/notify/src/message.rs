//! What the agent says: one [`Message`] per thing worth telling, whatever
//! receives it. Receivers turn it into their own payload.

use std::collections::BTreeMap;

pub use aegis_core::event::Event;
use aegis_core::Severity;
use serde::Serialize;

/// One thing to tell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// Identity: messages with the same key are the same alert (a resolved
    /// one replaces its firing one while both wait to be sent).
    pub key: String,
    /// What happened.
    pub event: Event,
    /// How bad.
    pub severity: Severity,
    /// The alert's name (`AegisAnomaly`, `AegisHealingNeedsAPerson`...).
    pub name: String,
    /// One line.
    pub summary: String,
    /// The details.
    pub description: String,
    /// Identifying labels (bounded values: series, target, check...).
    pub labels: BTreeMap<String, String>,
    /// When it started, Unix ms.
    pub starts_ms: i64,
    /// When it ended, Unix ms (resolved messages).
    pub ends_ms: Option<i64>,
}

impl Message {
    /// A message with no labels beyond its name.
    pub fn new(
        key: impl Into<String>,
        event: Event,
        severity: Severity,
        name: impl Into<String>,
        summary: impl Into<String>,
        starts_ms: i64,
    ) -> Self {
        Self {
            key: key.into(),
            event,
            severity,
            name: name.into(),
            summary: summary.into(),
            description: String::new(),
            labels: BTreeMap::new(),
            starts_ms,
            ends_ms: None,
        }
    }

    /// With a description.
    pub fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// With one more label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Resolved at `ends_ms`.
    pub fn resolved_at(mut self, ends_ms: i64) -> Self {
        self.ends_ms = Some(ends_ms);
        self
    }
}
