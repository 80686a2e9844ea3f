//! The agent's configuration: typed, checked at the boundary, with a default
//! for every field so no file is needed.
//!
//! Two steps, raw then validated. serde reads the TOML into [`Config`]:
//! unknown keys, wrong types and every value type of [`values`] (durations,
//! sizes, times of day, status ranges, URLs, addresses, severities...) are
//! refused there, so a `Config` holds no configuration text that anything
//! downstream must parse again. Then each section's `validate` checks what
//! types cannot (ranges, names used twice, a public listen address without
//! a token) into one [`Problems`] list. Every problem carries its line and
//! dotted field (`heal.rules.0.actions.1.argv`), and all problems of a file
//! are reported at once, not only the first.
//!
//! One module per section; [`DEFAULT_TOML`] is the commented default file
//! `aegis init` prints, and `docs/configuration.md` documents every key of
//! it (a test keeps the two in step).

mod agent;
mod api;
mod checks;
mod collect;
mod detect;
mod docker;
mod heal;
mod locate;
mod notify;
mod probe;
mod problem;
mod process;
mod store;
pub mod values;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use agent::{AgentConfig, LogConfig, LogFormat};
pub use api::{ApiConfig, DEFAULT_LISTEN};
pub use checks::{
    check_of_probe, check_of_process, CheckConfig, CheckKind, DEFAULT_MIN_DAYS,
    DEFAULT_RESTART_WINDOW,
};
pub use collect::{CollectConfig, HistoryConfig};
pub use detect::DetectConfig;
pub use docker::DockerConfig;
pub use heal::{
    HealConfig, LabelMatch, MaintenanceConfig, RuleConfig, RuleTrigger, ANOMALY_COMPONENTS,
};
pub use notify::{NotifyConfig, ReceiverConfig, ReceiverKindName, SmtpTls};
pub use probe::{ProbeConfig, ProbeSettings};
pub use problem::{ConfigError, Problem, Problems};
pub use process::ProcessConfig;
pub use store::StoreConfig;
pub use values::{
    glob_match, ByteSize, Glob, HostPort, HttpMethod, HttpUrl, Interval, JsonPointer, LogFilter,
    Name, StatusRange, TimeOfDay, Weekday,
};

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Process-wide settings.
    pub agent: AgentConfig,
    /// How and how often sources collect.
    pub collect: CollectConfig,
    /// In-memory history and the observation channel.
    pub history: HistoryConfig,
    /// The SQLite store.
    pub store: StoreConfig,
    /// Anomaly detection.
    pub detect: DetectConfig,
    /// The Docker source.
    pub docker: DockerConfig,
    /// Healing: policies and the guard around every action.
    pub heal: HealConfig,
    /// Settings shared by every HTTP probe.
    pub probe: ProbeSettings,
    /// HTTP endpoints to probe.
    pub probes: Vec<ProbeConfig>,
    /// Processes to watch.
    pub processes: Vec<ProcessConfig>,
    /// Checks: explicit conditions, judged from the first result.
    pub checks: Vec<CheckConfig>,
    /// Where anomalies are announced.
    pub notify: NotifyConfig,
    /// The HTTP API and dashboard.
    pub api: ApiConfig,
    /// Logging.
    pub log: LogConfig,
}

/// Most problems reported for one file; past this the file is hopeless.
const MAX_PROBLEMS: usize = 64;

impl Config {
    /// Reads and checks a file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        Self::from_file_with(path, |_| {})
    }

    /// Reads a file, applies `adjust` (command-line flags, variables of the
    /// environment), then checks the result: a problem in the file keeps
    /// its line, and what `adjust` sets is judged with the rest.
    pub fn from_file_with(
        path: &Path,
        adjust: impl FnOnce(&mut Config),
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            problems: vec![Problem {
                line: None,
                column: None,
                field: String::new(),
                message: format!("cannot read the file: {e}"),
            }],
        })?;
        Self::from_toml_with(&text, adjust).map_err(|mut e| {
            e.file = Some(path.to_path_buf());
            e
        })
    }

    /// Parses and checks TOML text, reporting every problem at once.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_toml_with(text, |_| {})
    }

    /// As [`Config::from_toml`], with `adjust` applied before the checks.
    pub fn from_toml_with(
        text: &str,
        adjust: impl FnOnce(&mut Config),
    ) -> Result<Self, ConfigError> {
        let (parsed, mut problems) = parse_all(text);
        if let Some(mut cfg) = parsed {
            adjust(&mut cfg);
            if problems.is_empty() {
                let semantic = cfg.validate();
                if semantic.is_empty() {
                    return Ok(cfg);
                }
                problems.extend(semantic.into_vec().into_iter().map(|(field, message)| {
                    let (line, column) = locate::locate(text, &field)
                        .map(|start| locate::line_col(text, start))
                        .unwrap_or((None, None));
                    Problem {
                        line,
                        column,
                        field,
                        message,
                    }
                }));
            }
        }
        problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        Err(ConfigError {
            file: None,
            problems,
        })
    }

    /// Checks what types alone cannot, section by section.
    pub fn validate(&self) -> Problems {
        let mut p = Problems::new();
        self.agent.validate(&mut p);
        self.collect.validate(&mut p);
        self.history.validate(&mut p);
        self.store.validate(&mut p);
        self.detect.validate(&mut p);
        self.docker.validate(&mut p);
        self.heal.validate(&mut p);
        self.probe.validate(&mut p);
        probe::validate_probes(&self.probes, &self.probe, &mut p);
        process::validate_processes(&self.processes, &mut p);
        checks::validate_checks(&self.checks, &self.legacy_checks(), &self.probe, &mut p);
        self.notify.validate(&mut p);
        self.api.validate(&mut p);
        p
    }
}

impl Config {
    /// `[[probes]]` and `[[processes]]` as the checks they are, each with
    /// the field path of its entry.
    fn legacy_checks(&self) -> Vec<(String, CheckConfig)> {
        let probes = self
            .probes
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("probes.{i}"), check_of_probe(p, &self.probe)));
        let processes = self.processes.iter().enumerate().map(|(i, p)| {
            (
                format!("processes.{i}"),
                check_of_process(p, self.collect.interval),
            )
        });
        probes.chain(processes).collect()
    }

    /// Every check the agent runs: `[[checks]]`, then `[[probes]]` and
    /// `[[processes]]` as `http` and `process` checks.
    pub fn effective_checks(&self) -> Vec<CheckConfig> {
        self.checks
            .iter()
            .cloned()
            .chain(self.legacy_checks().into_iter().map(|(_, c)| c))
            .collect()
    }
}

/// Deserializes `text`, collecting every type error: serde stops at the
/// first, so each faulty entry is blanked out (bytes replaced by spaces,
/// newlines kept, so every offset and line number stays true) and parsing
/// is tried again.
fn parse_all(text: &str) -> (Option<Config>, Vec<Problem>) {
    let mut problems: Vec<Problem> = Vec::new();
    let mut blanked: Vec<String> = Vec::new();
    let mut work = text.to_string();
    loop {
        let e = match toml::from_str::<Config>(&work) {
            Ok(cfg) => return (Some(cfg), problems),
            Err(e) => e,
        };
        let message = e.message().trim().to_string();
        let entry = e
            .span()
            .and_then(|s| locate::entry_at(&work, s.start))
            .map(|entry| locate::refine(&work, entry, &message));
        // Where to point: the refined entry (a value inside an inline
        // array, named by the message), else serde's own span.
        let span = match &entry {
            Some(entry) if entry.refined => Some(entry.range.clone()),
            _ => e.span(),
        };
        let field = entry.as_ref().map(|e| e.path.join(".")).unwrap_or_default();
        // A field blanked for an earlier problem is now missing: that is
        // the same problem, not a new one.
        let consequence = message.starts_with("missing field")
            && blanked
                .iter()
                .any(|b| b.starts_with(&format!("{field}.")) || field.is_empty());
        if !consequence {
            let (line, column) = match &span {
                Some(s) => locate::line_col(text, s.start),
                None => (None, None),
            };
            problems.push(Problem {
                line,
                column,
                field: if field.is_empty() {
                    span.as_ref()
                        .map(|s| locate::field_at(text, s.start))
                        .unwrap_or_default()
                } else {
                    field.clone()
                },
                message,
            });
        }
        let Some(entry) = entry else {
            return (None, problems);
        };
        if problems.len() >= MAX_PROBLEMS {
            return (None, problems);
        }
        // An element of an array cannot be blanked alone (the commas would
        // be left dangling): blank the whole array's entry.
        let target = if entry.in_array {
            let all = locate::entries(&work);
            let mut path = entry.path.clone();
            loop {
                path.pop();
                match all.iter().find(|e| e.path == path) {
                    Some(e) if !e.in_array => break Some(e.clone()),
                    Some(_) => continue,
                    None if path.is_empty() => break None,
                    None => continue,
                }
            }
        } else {
            Some(entry)
        };
        let Some(target) = target else {
            return (None, problems);
        };
        let before = work.clone();
        locate::blank(&mut work, target.range.clone());
        if work == before {
            return (None, problems);
        }
        blanked.push(target.path.join("."));
    }
}

/// A fully commented default configuration, as printed by `aegis init`.
pub const DEFAULT_TOML: &str = include_str!("../default.toml");

#[cfg(test)]
mod tests;
