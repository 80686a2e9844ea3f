//! One incident per fault. Anomalies that open close together on related
//! series form one group: its cause (the first anomaly, or the first one
//! about a target when the group began with host figures) and the others as
//! its evidence. The store records each anomaly's cause, the incidents list
//! shows the group as one incident, and the notifier hears of the group
//! once, not of each series.
//!
//! Related means: the same target (a container, a check, a process); or one
//! of them is about the host's own resources (`host_*` series: loopback
//! traffic, load, a disk), which a fault on any target moves too. Two
//! different targets are never joined. Close together means: within
//! [`JOIN_WINDOW_MS`] of the group's last anomaly, while some of the group
//! is still open or closed at most 10 s before.
//!
//! A group's message waits [`HOLD_MS`] after its first anomaly, so that the
//! series a fault moves a little later join before anyone is told; when a
//! failing check already tells of the group's target, the group stays
//! quiet (the check's own message is the one notification).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aegis_core::status::AnomalyRecord;
use aegis_core::Severity;
use aegis_notify::{Event, Message};

/// An anomaly joins a group whose last anomaly opened at most this long
/// before it (or, same target, while any of the group is still open).
pub const JOIN_WINDOW_MS: i64 = 60_000;
/// How long a group's message waits after its first anomaly.
pub const HOLD_MS: i64 = 10_000;
/// A group whose anomalies have all closed takes new ones for this long
/// after the last closed: a fault that is over is not the next one's cause.
const CLOSED_GRACE_MS: i64 = 10_000;
/// Groups remembered at most (the oldest are forgotten first).
const MAX_GROUPS: usize = 1_000;
/// Evidence series named in a group's message, at most.
const NAMED_EVIDENCE: usize = 8;

/// What an anomaly is about, for grouping.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// The host's own resources.
    Host,
    /// A target: container, check, process.
    Target(String),
}

fn scope_of(a: &AnomalyRecord) -> Scope {
    if a.series.starts_with("host_") {
        Scope::Host
    } else {
        Scope::Target(a.target.clone().unwrap_or_else(|| a.series.clone()))
    }
}

/// Where a group's notification stands.
#[derive(Debug, Clone, PartialEq)]
enum Told {
    /// Waiting for its hold to pass.
    Pending { due_ms: i64 },
    /// Announced with this message (its resolution reuses it, so that a
    /// receiver matches the two).
    Announced(Box<Message>),
    /// Never announced: a failing check tells of it.
    Quiet,
}

#[derive(Debug)]
struct Group {
    cause: AnomalyRecord,
    scope: Scope,
    members: Vec<i64>,
    evidence: Vec<String>,
    open: BTreeSet<i64>,
    last_opened_ms: i64,
    last_closed_ms: i64,
    severity: Severity,
    told: Told,
}

impl Group {
    fn joinable(&self, a: &Scope, at_ms: i64) -> bool {
        let going =
            !self.open.is_empty() || at_ms.saturating_sub(self.last_closed_ms) <= CLOSED_GRACE_MS;
        let recent = going && at_ms.saturating_sub(self.last_opened_ms) <= JOIN_WINDOW_MS;
        match (a, &self.scope) {
            (Scope::Target(t), Scope::Target(g)) => t == g && (recent || !self.open.is_empty()),
            _ => recent,
        }
    }

    fn message(&self) -> Message {
        let mut m = super::fanout::anomaly_message(&self.cause);
        m.severity = self.severity;
        m = m.label("incident", format!("anomaly-{}", self.cause.id));
        if !self.evidence.is_empty() {
            let mut named: Vec<&str> = self
                .evidence
                .iter()
                .take(NAMED_EVIDENCE)
                .map(String::as_str)
                .collect();
            let more = self.members.len() - 1 - named.len();
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            named.dedup();
            m.description = format!(
                "{}; {} related anomalies as evidence: {}{tail}",
                m.description,
                self.members.len() - 1,
                named.join(", ")
            );
        }
        m
    }
}

/// The resolution of announced message `m`: the same alert, ended.
fn resolution(m: &Message, ends_ms: i64) -> Message {
    let mut r = m.clone().resolved_at(ends_ms);
    r.event = Event::Resolved;
    r
}

/// The open groups, by their first anomaly's id.
#[derive(Debug, Default)]
pub struct Grouper {
    groups: BTreeMap<i64, Group>,
    group_of: HashMap<i64, i64>,
}

impl Grouper {
    /// Places an opened anomaly in a group and returns the causes to record:
    /// `(anomaly, cause)` for it and for every member whose cause changed
    /// (a group that began with host figures takes the first anomaly about a
    /// target as its cause, until it is announced).
    pub fn opened(&mut self, a: &AnomalyRecord) -> Vec<(i64, i64)> {
        self.forget(a.opened_ms);
        let scope = scope_of(a);
        let host_only = |g: &Group| g.scope == Scope::Host;
        // The newest related group; a target's own group before a host one.
        let found = match &scope {
            Scope::Target(_) => self
                .groups
                .iter()
                .rev()
                .find(|(_, g)| g.scope == scope && g.joinable(&scope, a.opened_ms))
                .or_else(|| {
                    self.groups
                        .iter()
                        .rev()
                        .find(|(_, g)| host_only(g) && g.joinable(&scope, a.opened_ms))
                }),
            Scope::Host => self
                .groups
                .iter()
                .rev()
                .find(|(_, g)| g.joinable(&scope, a.opened_ms)),
        }
        .map(|(id, _)| *id);
        let Some(gid) = found else {
            let due_ms = a.opened_ms.saturating_add(HOLD_MS);
            self.groups.insert(
                a.id,
                Group {
                    cause: a.clone(),
                    scope,
                    members: vec![a.id],
                    evidence: Vec::new(),
                    open: BTreeSet::from([a.id]),
                    last_opened_ms: a.opened_ms,
                    last_closed_ms: a.opened_ms,
                    severity: a.severity,
                    told: Told::Pending { due_ms },
                },
            );
            self.group_of.insert(a.id, a.id);
            while self.groups.len() > MAX_GROUPS {
                if let Some((_, g)) = self.groups.pop_first() {
                    for m in g.members {
                        self.group_of.remove(&m);
                    }
                }
            }
            return vec![(a.id, a.id)];
        };
        self.group_of.insert(a.id, gid);
        let g = self.groups.get_mut(&gid).expect("found above");
        g.members.push(a.id);
        g.open.insert(a.id);
        g.last_opened_ms = g.last_opened_ms.max(a.opened_ms);
        g.severity = g.severity.max(a.severity);
        let recause = g.scope == Scope::Host
            && scope != Scope::Host
            && matches!(g.told, Told::Pending { .. });
        if recause {
            let before = std::mem::replace(&mut g.cause, a.clone());
            g.scope = scope;
            g.evidence.retain(|s| *s != a.series);
            g.evidence.insert(0, before.series);
            g.members.iter().map(|m| (*m, a.id)).collect()
        } else {
            g.evidence.push(a.series.clone());
            vec![(a.id, g.cause.id)]
        }
    }

    /// Marks an anomaly closed; returns the resolved message when it was its
    /// announced group's last open one.
    pub fn closed(&mut self, id: i64, closed_ms: i64) -> Option<Message> {
        let gid = *self.group_of.get(&id)?;
        let g = self.groups.get_mut(&gid)?;
        g.open.remove(&id);
        g.last_closed_ms = g.last_closed_ms.max(closed_ms);
        if !g.open.is_empty() {
            return None;
        }
        match &g.told {
            Told::Announced(m) => Some(resolution(m, g.last_closed_ms)),
            _ => None,
        }
    }

    /// The messages of groups whose hold has passed by `now_ms`. A group
    /// whose target a failing check already tells of (`told_by_check`)
    /// stays quiet; one that opened and closed within its hold is announced
    /// as already resolved.
    pub fn due(&mut self, now_ms: i64, told_by_check: impl Fn(&str) -> bool) -> Vec<Message> {
        let mut out = Vec::new();
        for g in self.groups.values_mut() {
            let Told::Pending { due_ms } = g.told else {
                continue;
            };
            if due_ms > now_ms {
                continue;
            }
            if let Scope::Target(t) = &g.scope {
                if told_by_check(t) {
                    g.told = Told::Quiet;
                    continue;
                }
            }
            let m = g.message();
            out.push(if g.open.is_empty() {
                resolution(&m, g.last_closed_ms)
            } else {
                m.clone()
            });
            g.told = Told::Announced(Box::new(m));
        }
        self.forget(now_ms);
        out
    }

    /// When the next held message is due, Unix ms.
    pub fn next_due_ms(&self) -> Option<i64> {
        self.groups
            .values()
            .filter_map(|g| match g.told {
                Told::Pending { due_ms } => Some(due_ms),
                _ => None,
            })
            .min()
    }

    /// Forgets groups that are over: told (or quiet), all closed, and past
    /// the join window.
    fn forget(&mut self, now_ms: i64) {
        let over: Vec<i64> = self
            .groups
            .iter()
            .filter(|(_, g)| {
                g.open.is_empty()
                    && !matches!(g.told, Told::Pending { .. })
                    && now_ms.saturating_sub(g.last_opened_ms) > JOIN_WINDOW_MS
            })
            .map(|(id, _)| *id)
            .collect();
        for id in over {
            if let Some(g) = self.groups.remove(&id) {
                for m in g.members {
                    self.group_of.remove(&m);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anomaly(id: i64, at_s: i64, series: &str) -> AnomalyRecord {
        let target = series.split_once('/').map_or("host", |(_, i)| i);
        AnomalyRecord {
            id,
            opened_ms: at_s * 1000,
            closed_ms: None,
            series: series.to_string(),
            target: Some(target.to_string()),
            kind: "spike".into(),
            severity: Severity::Warning,
            score: 0.999,
            explanation: format!("{series} moved"),
            detail: serde_json::Value::Null,
            cause: None,
        }
    }

    #[test]
    fn an_endpoint_fault_and_the_loopback_traffic_it_moves_are_one_group_with_one_message() {
        let mut g = Grouper::default();
        assert_eq!(g.opened(&anomaly(1, 0, "endpoint_up/web")), vec![(1, 1)]);
        assert_eq!(
            g.opened(&anomaly(2, 4, "host_net_rx_bytes_per_second/lo")),
            vec![(2, 1)]
        );
        assert_eq!(
            g.opened(&anomaly(3, 6, "host_net_tx_bytes_per_second/lo")),
            vec![(3, 1)]
        );
        assert!(g.due(9_999, |_| false).is_empty(), "held for its evidence");
        assert_eq!(g.next_due_ms(), Some(10_000));
        let told = g.due(10_000, |_| false);
        assert_eq!(told.len(), 1, "{told:?}");
        assert_eq!(told[0].event, Event::Opened);
        assert_eq!(told[0].labels["series"], "endpoint_up/web");
        assert_eq!(told[0].labels["incident"], "anomaly-1");
        assert!(
            told[0].description.contains("2 related anomalies")
                && told[0]
                    .description
                    .contains("host_net_tx_bytes_per_second/lo"),
            "{}",
            told[0].description
        );
        assert!(g.due(20_000, |_| false).is_empty(), "told once");
        assert_eq!(g.closed(1, 30_000), None);
        assert_eq!(g.closed(3, 31_000), None);
        let resolved = g.closed(2, 32_000).expect("resolved with the last one");
        assert_eq!(resolved.event, Event::Resolved);
        assert_eq!(resolved.ends_ms, Some(32_000));
        assert_eq!(resolved.labels, told[0].labels, "the same alert");
    }

    #[test]
    fn a_group_begun_by_host_figures_takes_the_first_target_as_its_cause() {
        let mut g = Grouper::default();
        g.opened(&anomaly(1, 0, "host_net_rx_bytes_per_second/lo"));
        g.opened(&anomaly(2, 1, "host_load1"));
        let causes = g.opened(&anomaly(3, 2, "endpoint_up/web"));
        assert_eq!(causes, vec![(1, 3), (2, 3), (3, 3)]);
        let told = g.due(10_000, |_| false);
        assert_eq!(told[0].labels["series"], "endpoint_up/web");
        // A second target after that is a fault of its own.
        assert_eq!(g.opened(&anomaly(4, 3, "container_up/db")), vec![(4, 4)]);
    }

    #[test]
    fn different_targets_and_distant_times_are_different_incidents() {
        let mut g = Grouper::default();
        assert_eq!(g.opened(&anomaly(1, 0, "endpoint_up/web")), vec![(1, 1)]);
        assert_eq!(g.opened(&anomaly(2, 1, "endpoint_up/db")), vec![(2, 2)]);
        // The same target while its anomaly is open, however late: the same fault.
        assert_eq!(
            g.opened(&anomaly(3, 300, "endpoint_latency_seconds/web")),
            vec![(3, 1)]
        );
        // Host figures long after the last opening: their own incident.
        assert_eq!(g.opened(&anomaly(4, 500, "host_load1")), vec![(4, 4)]);
        g.closed(1, 600_000);
        g.closed(3, 600_000);
        assert_eq!(
            g.opened(&anomaly(5, 700, "endpoint_up/web")),
            vec![(5, 5)],
            "closed and past the window: a new fault"
        );
    }

    /// Regression: a loopback blip that opened and closed 38 s before an
    /// endpoint fault made the fault's anomalies its evidence, in an
    /// incident that began before the fault.
    #[test]
    fn a_fault_that_is_over_is_not_the_next_ones_cause() {
        let mut g = Grouper::default();
        g.opened(&anomaly(1, 0, "host_net_rx_bytes_per_second/lo"));
        g.closed(1, 1_000);
        g.due(10_000, |_| false);
        assert_eq!(
            g.opened(&anomaly(2, 38, "host_net_rx_bytes_per_second/lo")),
            vec![(2, 2)]
        );
        assert_eq!(
            g.opened(&anomaly(3, 39, "endpoint_up/web")),
            vec![(2, 3), (3, 3)]
        );
        // Closed a moment ago: the same fault still.
        g.closed(2, 45_000);
        g.closed(3, 45_000);
        assert_eq!(
            g.opened(&anomaly(4, 50, "host_load1")),
            vec![(4, 3)],
            "closed 5 s before"
        );
    }

    #[test]
    fn a_failing_check_on_the_target_keeps_the_group_quiet() {
        let mut g = Grouper::default();
        g.opened(&anomaly(1, 0, "endpoint_up/web"));
        g.opened(&anomaly(2, 1, "host_net_rx_bytes_per_second/lo"));
        assert!(g.due(10_000, |t| t == "web").is_empty());
        assert_eq!(g.next_due_ms(), None);
        g.closed(1, 20_000);
        assert_eq!(g.closed(2, 21_000), None, "nothing to resolve");
    }

    #[test]
    fn a_blip_inside_the_hold_is_told_already_resolved() {
        let mut g = Grouper::default();
        g.opened(&anomaly(1, 0, "host_load1"));
        assert_eq!(g.closed(1, 3_000), None);
        let told = g.due(10_000, |_| false);
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].event, Event::Resolved);
        assert_eq!(told[0].ends_ms, Some(3_000));
    }

    #[test]
    fn memory_is_bounded() {
        let mut g = Grouper::default();
        for i in 0..(MAX_GROUPS as i64 * 3) {
            g.opened(&anomaly(i, i * 100, &format!("container_up/c{i}")));
        }
        assert_eq!(g.groups.len(), MAX_GROUPS);
        assert_eq!(g.group_of.len(), MAX_GROUPS);
    }
}
