//! Policy: which rule, if any, answers a trigger, and its ladder of actions.
//!
//! With no rules configured the default is conservative: containers that
//! opted in (label `aegis.autoheal=true`) and turn unhealthy, die on their
//! own or are OOM-killed are restarted. Nothing else is ever touched unless a
//! rule says so.

use std::collections::HashMap;

use aegis_core::action::{ActionSpec, ContainerAction};
use aegis_core::config::{LabelMatch, RuleConfig, RuleTrigger};
use aegis_core::Severity;

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
        /// How bad it is.
        severity: Severity,
    },
    /// A check started failing.
    Check {
        /// The check.
        name: String,
        /// How bad its failure is.
        severity: Severity,
    },
}

impl Symptom {
    /// Short name: the trigger.
    pub fn trigger(&self) -> RuleTrigger {
        match self {
            Symptom::Container { trigger, .. } => *trigger,
            Symptom::Anomaly { .. } => RuleTrigger::Anomaly,
            Symptom::Check { .. } => RuleTrigger::CheckFailed,
        }
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
            let restart = ActionSpec::Container(ContainerAction::restart());
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
                label: Some(LabelMatch {
                    key: autoheal_label.to_string(),
                    value: "true".into(),
                }),
                series: None,
                component: None,
                min_severity: None,
                check: None,
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
        if let Symptom::Container { labels, .. } = symptom {
            // `aegis.autoheal=false` opts out of every rule, however many
            // containers it matches.
            if labels.get(&self.autoheal_label).map(|v| v.trim()) == Some("false") {
                return None;
            }
        }
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
                if !pattern.matches(name) {
                    return false;
                }
            }
            if let Some(label) = &rule.label {
                if labels.get(&label.key) != Some(&label.value) {
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
            rule.series.as_ref().is_none_or(|p| p.matches(series))
                && rule.component.as_ref().is_none_or(|c| c == component)
                && rule.min_severity.is_none_or(|m| *severity >= m)
        }
        Symptom::Check { name, severity } => {
            rule.check.as_ref().is_none_or(|p| p.matches(name))
                && rule.min_severity.is_none_or(|m| *severity >= m)
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
                severity: Severity::Critical
            })
            .is_none());
    }

    #[test]
    fn an_opted_out_container_is_left_alone_by_a_rule_that_matches_all() {
        let rule = RuleConfig {
            name: "all".into(),
            on: RuleTrigger::ContainerUnhealthy,
            container: Some("*".parse().expect("glob")),
            label: None,
            series: None,
            component: None,
            min_severity: None,
            check: None,
            actions: vec![],
        };
        let p = Policy::new(vec![rule], "aegis.autoheal");
        assert!(p
            .decide(&container(RuleTrigger::ContainerUnhealthy, "web", &[]))
            .is_some());
        assert!(p
            .decide(&container(
                RuleTrigger::ContainerUnhealthy,
                "web",
                &[("aegis.autoheal", "false")]
            ))
            .is_none());
    }

    #[test]
    fn anomaly_rules_filter_by_series_component_and_severity() {
        let rule = RuleConfig {
            name: "cache".into(),
            on: RuleTrigger::Anomaly,
            container: None,
            label: None,
            series: Some("endpoint_latency_seconds/cache*".parse().expect("glob")),
            component: None,
            min_severity: Some(Severity::Warning),
            check: None,
            actions: vec![],
        };
        let p = Policy::new(vec![rule], "aegis.autoheal");
        let a = |series: &str, severity: Severity| Symptom::Anomaly {
            series: series.into(),
            component: "spike".into(),
            severity,
        };
        assert!(p
            .decide(&a("endpoint_latency_seconds/cache-eu", Severity::Critical))
            .is_some());
        assert!(p
            .decide(&a("endpoint_latency_seconds/cache-eu", Severity::Info))
            .is_none());
        assert!(p
            .decide(&a("endpoint_latency_seconds/api", Severity::Critical))
            .is_none());
    }
}
