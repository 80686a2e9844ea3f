//! `[heal]`: the guard around every action, maintenance windows and the
//! rules that map a trigger to a ladder of actions.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Glob, Interval, Problems, TimeOfDay, Weekday};
use crate::action::{ActionSpec, Webhook};
use crate::severity::Severity;

/// The components that open anomalies, as rules name them.
pub const ANOMALY_COMPONENTS: &[&str] = &[
    "spike", "shift", "drift", "variance", "flatline", "gap", "forest",
];

/// A weekly maintenance window (UTC) during which no action is taken.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// Days: `mon`..`sun`; empty means every day.
    #[serde(default)]
    pub days: Vec<Weekday>,
    /// Start, `HH:MM` UTC.
    pub start: TimeOfDay,
    /// End, `HH:MM` UTC (before `start` to cross midnight).
    pub end: TimeOfDay,
}

impl MaintenanceConfig {
    /// The days as bits, bit 0 = Monday; every day when none is listed.
    pub fn day_bits(&self) -> u8 {
        if self.days.is_empty() {
            0b111_1111
        } else {
            self.days.iter().fold(0, |acc, d| acc | (1 << d.index()))
        }
    }
}

/// What starts a healing rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleTrigger {
    /// The container's health check turned `unhealthy`.
    ContainerUnhealthy,
    /// The container's process exited on its own with a non-zero code (not
    /// an operator's stop).
    ContainerDied,
    /// The kernel killed the container for memory.
    ContainerOom,
    /// An anomaly opened on a series.
    Anomaly,
    /// A check started failing.
    CheckFailed,
}

impl RuleTrigger {
    /// Short, stable name (records and metric labels).
    pub fn as_str(&self) -> &'static str {
        match self {
            RuleTrigger::ContainerUnhealthy => "container_unhealthy",
            RuleTrigger::ContainerDied => "container_died",
            RuleTrigger::ContainerOom => "container_oom",
            RuleTrigger::Anomaly => "anomaly",
            RuleTrigger::CheckFailed => "check_failed",
        }
    }

    /// Whether the trigger is about a container event.
    pub fn is_container(&self) -> bool {
        matches!(
            self,
            RuleTrigger::ContainerUnhealthy
                | RuleTrigger::ContainerDied
                | RuleTrigger::ContainerOom
        )
    }
}

/// A container label that must be present with this value: `key=value`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelMatch {
    /// The label's key.
    pub key: String,
    /// The value it must have.
    pub value: String,
}

impl FromStr for LabelMatch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok(LabelMatch {
                key: k.trim().to_string(),
                value: v.trim().to_string(),
            }),
            _ => Err(format!("label {s:?} must be key=value, like \"tier=web\"")),
        }
    }
}

impl fmt::Display for LabelMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

impl<'de> Deserialize<'de> for LabelMatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for LabelMatch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A healing rule: what it reacts to and its ladder of actions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A name for logs and records (unique).
    pub name: String,
    /// What starts it.
    pub on: RuleTrigger,
    /// Container name pattern (`*` matches anything), for container triggers.
    #[serde(default)]
    pub container: Option<Glob>,
    /// Container label `key=value` that must be present.
    #[serde(default)]
    pub label: Option<LabelMatch>,
    /// Series name pattern (`*` wildcard), for anomaly triggers.
    #[serde(default)]
    pub series: Option<Glob>,
    /// Only anomalies opened by this component (`spike`, `shift`, `forest`...).
    #[serde(default)]
    pub component: Option<String>,
    /// Only anomalies at least this severe (`warning`, `critical`).
    #[serde(default)]
    pub min_severity: Option<Severity>,
    /// Check name pattern, for `on = "check_failed"`.
    #[serde(default)]
    pub check: Option<Glob>,
    /// The escalation ladder: tried in order until one is verified to heal.
    pub actions: Vec<ActionSpec>,
}

/// `[heal]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealConfig {
    /// Take actions at all.
    pub enabled: bool,
    /// Decide and record, but do nothing.
    pub dry_run: bool,
    /// Least time between two actions on one target.
    pub cooldown: Interval,
    /// At most `rate_max` actions per target within `rate_window`; then stop
    /// and alert.
    pub rate_max: u32,
    /// See `rate_max`.
    pub rate_window: Interval,
    /// At most `budget_max` actions on the whole host within `budget_window`.
    pub budget_max: u32,
    /// See `budget_max`.
    pub budget_window: Interval,
    /// Actions running at once.
    pub max_concurrent: u32,
    /// Time allowed to one attempt.
    pub attempt_timeout: Interval,
    /// Retries of a failed attempt (with jittered exponential backoff).
    pub retries: u32,
    /// First retry delay; doubles each retry.
    pub retry_backoff: Interval,
    /// How long the engine watches for recovery after an action.
    pub verify_window: Interval,
    /// Consecutive failures that open a target's breaker.
    pub breaker_failures: u32,
    /// First breaker cooldown; doubles with each trip.
    pub breaker_cooldown: Interval,
    /// Longest breaker cooldown.
    pub breaker_max_cooldown: Interval,
    /// Process names never signalled.
    pub deny_processes: Vec<String>,
    /// Where a give-up (or a rate-limited target) is told, if anywhere.
    pub alert_webhook: Option<Webhook>,
    /// Windows in which no action is taken.
    pub maintenance: Vec<MaintenanceConfig>,
    /// Rules; with none, opted-in containers that turn unhealthy, die or
    /// are OOM-killed are restarted.
    pub rules: Vec<RuleConfig>,
}

impl Default for HealConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dry_run: false,
            cooldown: Interval::secs(30),
            rate_max: 3,
            rate_window: Interval::secs(600),
            budget_max: 20,
            budget_window: Interval::secs(3600),
            max_concurrent: 4,
            attempt_timeout: Interval::secs(30),
            retries: 1,
            retry_backoff: Interval::secs(1),
            verify_window: Interval::secs(60),
            breaker_failures: 3,
            breaker_cooldown: Interval::secs(30),
            breaker_max_cooldown: Interval::secs(1800),
            deny_processes: ["init", "systemd", "sshd", "dockerd", "containerd", "aegis"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            alert_webhook: None,
            maintenance: Vec::new(),
            rules: Vec::new(),
        }
    }
}

impl HealConfig {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(self.rate_max >= 1, "heal.rate_max", || {
            "must be at least 1".to_string()
        });
        p.check(self.budget_max >= 1, "heal.budget_max", || {
            "must be at least 1".to_string()
        });
        p.range("heal.max_concurrent", self.max_concurrent, 1, 64);
        p.check(self.retries <= 10, "heal.retries", || {
            format!("must be at most 10, got {}", self.retries)
        });
        p.check(self.breaker_failures >= 1, "heal.breaker_failures", || {
            "must be at least 1".to_string()
        });
        let at_least = |p: &mut Problems, field: &str, value: Interval, min: Duration| {
            p.check(value.0 >= min, field, || {
                format!("must be at least {}, got {value}", Interval(min))
            });
        };
        let second = Duration::from_secs(1);
        at_least(
            p,
            "heal.attempt_timeout",
            self.attempt_timeout,
            Duration::from_millis(100),
        );
        at_least(p, "heal.cooldown", self.cooldown, second);
        at_least(p, "heal.rate_window", self.rate_window, second);
        at_least(p, "heal.budget_window", self.budget_window, second);
        at_least(p, "heal.verify_window", self.verify_window, second);
        at_least(p, "heal.breaker_cooldown", self.breaker_cooldown, second);
        at_least(
            p,
            "heal.retry_backoff",
            self.retry_backoff,
            Duration::from_millis(10),
        );
        p.check(
            self.breaker_max_cooldown >= self.breaker_cooldown,
            "heal.breaker_max_cooldown",
            || {
                format!(
                    "{} is shorter than heal.breaker_cooldown ({})",
                    self.breaker_max_cooldown, self.breaker_cooldown
                )
            },
        );
        for (i, d) in self.deny_processes.iter().enumerate() {
            p.check(
                !d.trim().is_empty(),
                format!("heal.deny_processes.{i}"),
                || "is empty".to_string(),
            );
        }
        let mut names = HashSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let field = format!("heal.rules.{i}");
            p.check(!r.name.trim().is_empty(), format!("{field}.name"), || {
                "is empty".to_string()
            });
            p.check(
                names.insert(r.name.as_str()),
                format!("{field}.name"),
                || format!("the rule name {:?} is used twice", r.name),
            );
            p.check(!r.actions.is_empty(), format!("{field}.actions"), || {
                format!("rule {:?} has no actions", r.name)
            });
            for (j, a) in r.actions.iter().enumerate() {
                for (sub, message) in a.problems(true) {
                    p.push(format!("{field}.actions.{j}.{sub}"), message);
                }
            }
            if let Some(c) = &r.component {
                p.check(
                    ANOMALY_COMPONENTS.contains(&c.as_str()),
                    format!("{field}.component"),
                    || {
                        format!(
                            "{c:?} is not a component; write one of {}",
                            ANOMALY_COMPONENTS.join(", ")
                        )
                    },
                );
            }
            let anomaly_only =
                r.series.is_some() || r.component.is_some() || r.min_severity.is_some();
            p.check(
                !(r.on != RuleTrigger::Anomaly && anomaly_only),
                format!("{field}.on"),
                || {
                    "`series`, `component` and `min_severity` only apply to `on = \"anomaly\"`"
                        .to_string()
                },
            );
            p.check(
                !(r.on != RuleTrigger::CheckFailed && r.check.is_some()),
                format!("{field}.check"),
                || "`check` only applies to `on = \"check_failed\"`".to_string(),
            );
            p.check(
                r.on.is_container() || (r.container.is_none() && r.label.is_none()),
                format!("{field}.on"),
                || "`container` and `label` only apply to container triggers".to_string(),
            );
        }
    }
}
