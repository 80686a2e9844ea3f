//! What a message to a person is about: the events receivers choose from
//! (`[[notify.receivers]]` `events`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// An incident opened (an anomaly, or a group of them).
    Opened,
    /// It was healed (verified).
    Healed,
    /// Healing did not help: the ladder is exhausted, it gave up, or the
    /// guard stopped it.
    HealFailed,
    /// It ended: the anomaly closed.
    Resolved,
    /// A check started failing.
    CheckFailing,
    /// A failing check passes again.
    CheckPassing,
    /// A test message (`aegis notify test`); every receiver takes it.
    Test,
}

impl Event {
    /// Every event, in order.
    pub const ALL: [Event; 7] = [
        Event::Opened,
        Event::Healed,
        Event::HealFailed,
        Event::Resolved,
        Event::CheckFailing,
        Event::CheckPassing,
        Event::Test,
    ];

    /// Snake-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Event::Opened => "opened",
            Event::Healed => "healed",
            Event::HealFailed => "heal_failed",
            Event::Resolved => "resolved",
            Event::CheckFailing => "check_failing",
            Event::CheckPassing => "check_passing",
            Event::Test => "test",
        }
    }

    /// Whether it tells that something is over (the alert is resolved).
    pub fn is_recovery(&self) -> bool {
        matches!(self, Event::Healed | Event::Resolved | Event::CheckPassing)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Event {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Event::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Event::ALL.iter().map(Event::as_str).collect();
                format!("unknown event {s:?}; use one of {}", names.join(", "))
            })
    }
}
