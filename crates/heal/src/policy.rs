//! Policy: which rule, if any, answers a trigger, and its ladder of actions.
//!
//! With no rules configured the default is conservative: containers that
//! opted in (label `aegis.autoheal=true`) and turn unhealthy, die on their
//! own or are OOM-killed are restarted. Nothing else is ever touched unless a
//! rule says so.

use std::collections::HashMap;

use aegis_core::action::{ActionSpec, ContainerAction, ContainerOp};
use aegis_core::config::{glob_match, RuleConfig, RuleTrigger};

/// What happened, in the terms rules are written in.
#[derive(Debug, Clone, PartialEq)]
pub enum Symptom {
    /// A container's problem.
    Container {
        /// Which trigger.
        trigger: RuleTrigger,
        /// Container name.
        name: String,
        /// Its labels.
        labels: HashMap<String, String>,
    },
    /// An anomaly opened.
    Anomaly {
        /// The series.
        series: String,
        /// The component that opened it.
        component: String,
        /// `info`, `warning`, `critical`.
        severity: String,
    },
}

impl Symptom {
    /// Short name: the trigger.
    pub fn trigger(&self) -> RuleTrigger {
        match self {
            Symptom::Container { trigger, .. } => *trigger,
            Symptom::Anomaly { .. } => RuleTrigger::Anomaly,
        }
    }
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "critical" => 2,
        "warning" => 1,
        _ => 0,
    }
}

/// The rules in force.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<RuleConfig>,
    autoheal_label: String,
}

impl Policy {
    /// The configured rules, or the default when there are none.
    pub fn new(rules: Vec<RuleConfig>, autoheal_label: &str) -> Self {
        let rules = if rules.is_empty() {
            let restart = ActionSpec::Container(ContainerAction {
                container: String::new(),
                op: ContainerOp::Restart,
                stop_timeout_s: 10,
            });
            [
                (
                    RuleTrigger::ContainerUnhealthy,
                    "restart opted-in containers that turn unhealthy",
                ),
                (
                    RuleTrigger::ContainerDied,
                    "restart opted-in containers that die on their own",
                ),
                (
                    RuleTrigger::ContainerOom,
                    "restart opted-in containers killed for memory",
                ),
            ]
            .into_iter()
            .map(|(on, name)| RuleConfig {
                name: name.to_string(),
                on,
                container: None,
                label: Some(format!("{autoheal_label}=true")),
                series: None,
                component: None,
                min_severity: None,
                actions: vec![restart.clone()],
            })
            .collect()
        } else {
            rules
        };
        Self {
            rules,
            autoheal_label: autoheal_label.to_string(),
        }
    }

    /// The label that opts a container in.
    pub fn autoheal_label(&self) -> &str {
        &self.autoheal_label
    }

    /// The first rule that matches the symptom.
    pub fn decide(&self, symptom: &Symptom) -> Option<&RuleConfig> {
        self.rules.iter().find(|r| matches(r, symptom))
    }
}

fn matches(rule: &RuleConfig, symptom: &Symptom) -> bool {
    if rule.on != symptom.trigger() {
        return false;
    }
    match symptom {
        Symptom::Container { name, labels, .. } => {
            if let Some(pattern) = &rule.container {
                if !glob_match(pattern, name) {
                    return false;
                }
            }
            if let Some(label) = &rule.label {
                let (k, v) = label.split_once('=').unwrap_or((label, ""));
                if labels.get(k).map(String::as_str) != Some(v) {
                    return false;
                }
            }
            // A container rule with no filter at all would heal every
            // container on the host: opting in is required.
            rule.container.is_some() || rule.label.is_some()
        }
        Symptom::Anomaly {
            series,
            component,
            severity,
        } => {
            rule.series.as_ref().is_none_or(|p| glob_match(p, series))
                && rule.component.as_ref().is_none_or(|c| c == component)
                && rule
                    .min_severity
                    .as_ref()
                    .is_none_or(|m| severity_rank(severity) >= severity_rank(m))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(trigger: RuleTrigger, name: &str, labels: &[(&str, &str)]) -> Symptom {
        Symptom::Container {
            trigger,
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn by_default_only_opted_in_containers_are_healed() {
        let p = Policy::new(Vec::new(), "aegis.autoheal");
        assert!(p
            .decide(&container(
                RuleTrigger::ContainerUnhealthy,
                "web",
                &[("aegis.autoheal", "true")]
            ))
            .is_some());
        assert!(p
            .decide(&container(RuleTrigger::ContainerUnhealthy, "web", &[]))
            .is_none());
        assert!(p
            .decide(&container(
                RuleTrigger::ContainerUnhealthy,
                "web",
                &[("aegis.autoheal", "false")]
            ))
            .is_none());
        assert!(p
            .decide(&Symptom::Anomaly {
                series: "host_load1".into(),
                component: "spike".into(),
                severity: "critical".into()
            })
            .is_none());
    }

    #[test]
    fn anomaly_rules_filter_by_series_component_and_severity() {
        let rule = RuleConfig {
            name: "cache".into(),
            on: RuleTrigger::Anomaly,
            container: None,
            label: None,
            series: Some("endpoint_latency_seconds/cache*".into()),
            component: None,
            min_severity: Some("warning".into()),
            actions: vec![],
        };
        let p = Policy::new(vec![rule], "aegis.autoheal");
        let a = |series: &str, severity: &str| Symptom::Anomaly {
            series: series.into(),
            component: "spike".into(),
            severity: severity.into(),
        };
        assert!(p
            .decide(&a("endpoint_latency_seconds/cache-eu", "critical"))
            .is_some());
        assert!(p
            .decide(&a("endpoint_latency_seconds/cache-eu", "info"))
            .is_none());
        assert!(p
            .decide(&a("endpoint_latency_seconds/api", "critical"))
            .is_none());
    }
}
