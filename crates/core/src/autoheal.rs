//! What a container's own labels say about healing it, and what it depends
//! on. The label names follow `docker.autoheal_label` (`aegis.autoheal` by
//! default):
//!
//! | label | value | meaning |
//! |---|---|---|
//! | `aegis.autoheal` | `true` / `false` | opts in; `false` opts out of a rule that matches many |
//! | `aegis.autoheal.unhealthy_for` | duration | act only once it has been unhealthy this long |
//! | `aegis.autoheal.start_period` | duration | failures this soon after it started do not count |
//! | `aegis.autoheal.action` | `restart`, `stop`, `kill` | what to do instead of the rule's container action |
//! | `aegis.autoheal.stop_timeout` | duration | time to stop before it is killed |
//! | `aegis.autoheal.max_restarts` | `N/window`, like `3/10m` | at most N heals within the window, then a person is told |
//! | `aegis.depends_on` | container names, comma separated | restarted after those are healed; not healed while they fail |
//!
//! A value that does not parse is a [`LabelProblem`]: the label is ignored
//! (never guessed) and the problem is reported.
//!
//! Dependencies also come from Compose: `com.docker.compose.depends_on`
//! (`service:condition:restart`, comma separated) names services of the
//! same `com.docker.compose.project`; and a `container:ID` network mode
//! (what `network_mode: service:X` becomes) depends on that container.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::action::ContainerOp;
use crate::container::ContainerInfo;

/// Compose's project label.
pub const COMPOSE_PROJECT: &str = "com.docker.compose.project";
/// Compose's service label.
pub const COMPOSE_SERVICE: &str = "com.docker.compose.service";
/// Compose's dependencies label.
pub const COMPOSE_DEPENDS_ON: &str = "com.docker.compose.depends_on";
/// Longest duration a label may give.
const MAX_LABEL_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// One label that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LabelProblem {
    /// The container's name.
    pub container: String,
    /// The label.
    pub label: String,
    /// Its value, as written (cut to 200 characters).
    pub value: String,
    /// What is wrong with it, and what is done instead.
    pub problem: String,
}

/// What a container's labels ask of healing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `true`: opted in; `false`: opted out.
    pub autoheal: Option<bool>,
    /// Act only after this long unhealthy.
    pub unhealthy_for: Option<Duration>,
    /// Failures this soon after its start do not count.
    pub start_period: Option<Duration>,
    /// The container action to take instead of the rule's.
    pub action: Option<ContainerOp>,
    /// The stop timeout instead of the rule's.
    pub stop_timeout: Option<Duration>,
    /// At most this many heals within this window.
    pub max_restarts: Option<(u32, Duration)>,
    /// Containers it depends on, by name (`aegis.depends_on`).
    pub depends_on: Vec<String>,
}

/// The depends-on label for an autoheal label `aegis.autoheal`: `aegis.depends_on`.
pub fn depends_on_label(autoheal_label: &str) -> String {
    match autoheal_label.rsplit_once('.') {
        Some((prefix, _)) => format!("{prefix}.depends_on"),
        None => "depends_on".to_string(),
    }
}

fn duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("is not a duration like \"30s\" or \"2m\" ({e})"))?;
    if d > MAX_LABEL_DURATION {
        return Err("is longer than 7 days".into());
    }
    Ok(d)
}

impl Settings {
    /// Reads the labels of `container` under `autoheal_label`; each value
    /// that cannot be used is a problem, and that label is ignored.
    pub fn from_labels(
        container: &str,
        labels: &HashMap<String, String>,
        autoheal_label: &str,
    ) -> (Settings, Vec<LabelProblem>) {
        let mut s = Settings::default();
        let mut problems = Vec::new();
        let mut problem = |label: &str, value: &str, why: String| {
            problems.push(LabelProblem {
                container: container.to_string(),
                label: label.to_string(),
                value: value.chars().take(200).collect(),
                problem: format!("{why}; the label is ignored"),
            });
        };
        let key = |suffix: &str| format!("{autoheal_label}.{suffix}");
        if let Some(v) = labels.get(autoheal_label) {
            match v.trim() {
                "true" => s.autoheal = Some(true),
                "false" => s.autoheal = Some(false),
                _ => problem(autoheal_label, v, "must be true or false".into()),
            }
        }
        for (suffix, slot) in [
            ("unhealthy_for", &mut s.unhealthy_for),
            ("start_period", &mut s.start_period),
            ("stop_timeout", &mut s.stop_timeout),
        ] {
            let label = key(suffix);
            if let Some(v) = labels.get(&label) {
                match duration(v) {
                    Ok(d) => *slot = Some(d),
                    Err(why) => problem(&label, v, why),
                }
            }
        }
        let label = key("action");
        if let Some(v) = labels.get(&label) {
            match v.trim() {
                "restart" => s.action = Some(ContainerOp::Restart),
                "stop" => s.action = Some(ContainerOp::Stop),
                "kill" => s.action = Some(ContainerOp::Kill),
                _ => problem(&label, v, "must be restart, stop or kill".into()),
            }
        }
        let label = key("max_restarts");
        if let Some(v) = labels.get(&label) {
            let parsed = v
                .split_once('/')
                .ok_or_else(|| "has no \"/\"".to_string())
                .and_then(|(n, window)| {
                    let n: u32 = n
                        .trim()
                        .parse()
                        .map_err(|_| format!("{n:?} is not a count"))?;
                    if n == 0 {
                        return Err(
                            "a count of 0 would never heal; remove the opt-in instead".into()
                        );
                    }
                    Ok((n, duration(window).map_err(|e| format!("the window {e}"))?))
                });
            match parsed {
                Ok(p) => s.max_restarts = Some(p),
                Err(why) => problem(
                    &label,
                    v,
                    format!("must be N/window, like \"3/10m\": {why}"),
                ),
            }
        }
        let label = depends_on_label(autoheal_label);
        if let Some(v) = labels.get(&label) {
            let names: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| n.trim_start_matches('/').to_string())
                .collect();
            if names.iter().any(|n| n == container) {
                problem(&label, v, "names the container itself".into());
            } else {
                s.depends_on = names;
            }
        }
        (s, problems)
    }
}

/// The containers of `all` that `c` depends on: Compose's `depends_on`
/// within its project, the container whose network it shares, and the
/// names of `aegis.depends_on` (`depends_on`, as read by [`Settings`]).
pub fn dependencies<'a>(
    c: &ContainerInfo,
    depends_on: &[String],
    all: &'a [ContainerInfo],
) -> Vec<&'a ContainerInfo> {
    let mut out: Vec<&ContainerInfo> = Vec::new();
    let mut add = |d: &'a ContainerInfo| {
        if d.id != c.id && !out.iter().any(|o| o.id == d.id) {
            out.push(d);
        }
    };
    if let (Some(project), Some(list)) = (
        c.labels.get(COMPOSE_PROJECT),
        c.labels.get(COMPOSE_DEPENDS_ON),
    ) {
        for service in list
            .split(',')
            .filter_map(|entry| entry.split(':').next())
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            for d in all.iter().filter(|d| {
                d.labels.get(COMPOSE_PROJECT) == Some(project)
                    && d.labels.get(COMPOSE_SERVICE).map(String::as_str) == Some(service)
            }) {
                add(d);
            }
        }
    }
    if let Some(target) = c.network_container() {
        for d in all.iter().filter(|d| {
            d.id == target || d.name == target || (target.len() >= 12 && d.id.starts_with(target))
        }) {
            add(d);
        }
    }
    for name in depends_on {
        for d in all.iter().filter(|d| &d.name == name) {
            add(d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_are_read_and_bad_values_are_named_and_ignored() {
        let (s, problems) = Settings::from_labels(
            "web",
            &labels(&[
                ("aegis.autoheal", "true"),
                ("aegis.autoheal.unhealthy_for", "30s"),
                ("aegis.autoheal.start_period", "soon"),
                ("aegis.autoheal.action", "stop"),
                ("aegis.autoheal.stop_timeout", "5s"),
                ("aegis.autoheal.max_restarts", "3/10m"),
                ("aegis.depends_on", "db, cache"),
            ]),
            "aegis.autoheal",
        );
        assert_eq!(s.autoheal, Some(true));
        assert_eq!(s.unhealthy_for, Some(Duration::from_secs(30)));
        assert_eq!(s.start_period, None);
        assert_eq!(s.action, Some(ContainerOp::Stop));
        assert_eq!(s.stop_timeout, Some(Duration::from_secs(5)));
        assert_eq!(s.max_restarts, Some((3, Duration::from_secs(600))));
        assert_eq!(s.depends_on, vec!["db".to_string(), "cache".to_string()]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].label, "aegis.autoheal.start_period");
        assert!(
            problems[0].problem.contains("is not a duration"),
            "{problems:?}"
        );
        assert!(problems[0].problem.ends_with("the label is ignored"));

        for (label, value) in [
            ("aegis.autoheal", "yes"),
            ("aegis.autoheal.action", "recreate"),
            ("aegis.autoheal.max_restarts", "3"),
            ("aegis.autoheal.max_restarts", "0/1m"),
            ("aegis.autoheal.max_restarts", "x/1m"),
            ("aegis.autoheal.unhealthy_for", "30d"),
            ("aegis.depends_on", "web"),
        ] {
            let (s, problems) =
                Settings::from_labels("web", &labels(&[(label, value)]), "aegis.autoheal");
            assert_eq!(problems.len(), 1, "{label}={value}");
            assert_eq!(s, Settings::default(), "{label}={value} is ignored");
        }
    }

    #[test]
    fn dependencies_come_from_compose_the_network_mode_and_the_label() {
        let mut db = ContainerInfo::named("aaaaaaaaaaaaaaaa1", "shop-db-1");
        db.labels = labels(&[(COMPOSE_PROJECT, "shop"), (COMPOSE_SERVICE, "db")]);
        let mut other_db = ContainerInfo::named("bbbbbbbbbbbbbbbb2", "blog-db-1");
        other_db.labels = labels(&[(COMPOSE_PROJECT, "blog"), (COMPOSE_SERVICE, "db")]);
        let vpn = ContainerInfo::named("cccccccccccccccc3", "vpn");
        let cache = ContainerInfo::named("dddddddddddddddd4", "cache");
        let mut web = ContainerInfo::named("eeeeeeeeeeeeeeee5", "shop-web-1");
        web.labels = labels(&[
            (COMPOSE_PROJECT, "shop"),
            (COMPOSE_SERVICE, "web"),
            (
                COMPOSE_DEPENDS_ON,
                "db:service_healthy:false,missing:service_started:true",
            ),
        ]);
        web.network_mode = Some("container:cccccccccccccccc3".into());
        let all = vec![db, other_db, vpn, cache, web.clone()];
        let names: Vec<&str> = dependencies(&web, &["cache".into()], &all)
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, vec!["shop-db-1", "vpn", "cache"]);
        assert!(dependencies(&all[0], &[], &all).is_empty());
    }

    #[test]
    fn the_depends_on_label_follows_the_autoheal_label() {
        assert_eq!(depends_on_label("aegis.autoheal"), "aegis.depends_on");
        assert_eq!(depends_on_label("heal"), "depends_on");
    }
}
