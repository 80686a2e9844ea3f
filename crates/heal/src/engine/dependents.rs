//! What the containers around a container mean for healing it: its own
//! labels (settings, and the problems found in them), the containers it
//! depends on (not healed while they fail), and the containers that depend
//! on it (restarted after it is healed, one at a time, in dependency
//! order).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use aegis_core::action::{ActionSpec, ContainerAction};
use aegis_core::autoheal::{dependencies, LabelProblem, Settings};
use aegis_core::check::CheckSubject;
use aegis_core::container::{ContainerEvent, ContainerHealth, ContainerInfo};

use super::incident::{Incident, Opening, Verification};
use super::Engine;

/// Label problems kept at most (the oldest go).
const MAX_LABEL_PROBLEMS: usize = 200;
/// Dependents waiting to be restarted at most.
const MAX_DEPENDENTS: usize = 1_000;

/// The label problems found so far, one per (container, label).
#[derive(Debug, Default)]
pub(super) struct LabelProblems {
    by_label: BTreeMap<(String, String), LabelProblem>,
}

impl LabelProblems {
    /// Takes in `found`; logs the ones not seen before.
    fn add(&mut self, found: Vec<LabelProblem>) {
        for p in found {
            let key = (p.container.clone(), p.label.clone());
            if self.by_label.get(&key) == Some(&p) {
                continue;
            }
            tracing::warn!(container = %p.container, label = %p.label, value = %p.value, problem = %p.problem, "a container label cannot be used");
            self.by_label.insert(key, p);
            while self.by_label.len() > MAX_LABEL_PROBLEMS {
                self.by_label.pop_first();
            }
        }
    }

    /// Forgets the problems of `container` (its labels were read again).
    fn clear(&mut self, container: &str) {
        self.by_label.retain(|(c, _), _| c != container);
    }

    pub fn list(&self) -> Vec<LabelProblem> {
        self.by_label.values().cloned().collect()
    }
}

/// One dependent waiting for its restart.
#[derive(Debug, Clone)]
struct Dependent {
    id: String,
    name: String,
    /// The container that was healed.
    after: String,
    stop_timeout_s: Option<u32>,
}

/// Dependents being restarted: the one under way, then the rest in order.
#[derive(Debug, Default)]
pub(super) struct Cascade {
    queue: VecDeque<Dependent>,
    current: Option<i64>,
    /// Containers not healed because a dependency failed, with the names
    /// of those dependencies: looked at again when one of them is healthy.
    blocked: HashMap<String, (ContainerEvent, Vec<String>)>,
}

impl Engine {
    /// The containers as last seen (empty without a container source).
    pub(super) fn inventory(&self) -> Arc<Vec<ContainerInfo>> {
        self.env
            .inventory
            .as_ref()
            .map(|rx| Arc::clone(&rx.borrow()))
            .unwrap_or_default()
    }

    /// What is known of the event's container: what was inspected with the
    /// event, else the inventory, else what the event itself says.
    pub(super) fn info_of(&self, e: &ContainerEvent) -> ContainerInfo {
        if let Some(info) = &e.inspected {
            return (**info).clone();
        }
        if let Some(c) = self.inventory().iter().find(|c| c.id == e.id) {
            return c.clone();
        }
        let mut c = ContainerInfo::named(e.id.clone(), e.name.clone());
        c.labels = e.labels.clone();
        c
    }

    /// The settings `labels` give `container`; problems are kept and logged.
    pub(super) fn settings_of(
        &mut self,
        container: &str,
        labels: &HashMap<String, String>,
    ) -> Settings {
        let (settings, problems) =
            Settings::from_labels(container, labels, self.policy.autoheal_label());
        self.labels.clear(container);
        self.labels.add(problems);
        settings
    }

    /// Reads the labels of every container when the inventory changed, so
    /// that a bad label is reported before anything happens to it.
    pub(super) fn read_inventory_labels(&mut self) {
        let changed = self
            .env
            .inventory
            .as_mut()
            .is_some_and(|rx| rx.has_changed().unwrap_or(false));
        if !changed {
            return;
        }
        let all = self
            .env
            .inventory
            .as_mut()
            .map(|rx| Arc::clone(&rx.borrow_and_update()))
            .unwrap_or_default();
        let prefix = self.policy.autoheal_label().to_string();
        let depends = aegis_core::autoheal::depends_on_label(&prefix);
        for c in all.iter() {
            if c.labels
                .keys()
                .any(|k| k.starts_with(&prefix) || *k == depends)
            {
                self.settings_of(&c.name, &c.labels);
            } else {
                self.labels.clear(&c.name);
            }
        }
    }

    /// Whether `c` is failing as the engine knows it: an incident handles
    /// it, its last health event was unhealthy, or it does not run.
    fn container_failing(&self, c: &ContainerInfo) -> Option<&'static str> {
        if self.incidents.values().any(|i| {
            i.subject.container.as_deref() == Some(c.name.as_str())
                || i.key == format!("container:{}", c.id)
        }) {
            return Some("being healed");
        }
        match self.containers_health(&c.id) {
            Some(ContainerHealth::Unhealthy) => return Some("unhealthy"),
            Some(_) => return None,
            None => {}
        }
        if !c.running() {
            Some("not running")
        } else if c.health == Some(ContainerHealth::Unhealthy) {
            Some("unhealthy")
        } else {
            None
        }
    }

    /// The dependencies of `c` that fail now: `(name, why)`.
    pub(super) fn failing_dependencies(
        &self,
        c: &ContainerInfo,
        settings: &Settings,
    ) -> Vec<(String, &'static str)> {
        let all = self.inventory();
        let mut out: Vec<(String, &'static str)> = dependencies(c, &settings.depends_on, &all)
            .into_iter()
            .filter_map(|d| self.container_failing(d).map(|why| (d.name.clone(), why)))
            .collect();
        // A named dependency the inventory does not hold yet may still be
        // handled by an incident.
        for name in &settings.depends_on {
            if !out.iter().any(|(n, _)| n == name)
                && self
                    .incidents
                    .values()
                    .any(|i| i.subject.container.as_deref() == Some(name.as_str()))
            {
                out.push((name.clone(), "being healed"));
            }
        }
        out
    }

    /// Remembers a container not healed because `deps` fail.
    pub(super) fn block(&mut self, e: ContainerEvent, deps: Vec<String>) {
        if self.dependents.blocked.len() < MAX_DEPENDENTS {
            self.dependents.blocked.insert(e.id.clone(), (e, deps));
        }
    }

    /// `name` is healthy again: the containers it blocked are decided
    /// again, unless the restart of its dependents already covers them.
    pub(super) fn unblock(&mut self, name: &str) {
        let ready: Vec<String> = self
            .dependents
            .blocked
            .iter()
            .filter(|(_, (_, deps))| deps.iter().any(|d| d == name))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ready {
            let Some((e, _)) = self.dependents.blocked.remove(&id) else {
                continue;
            };
            let queued = self.dependents.queue.iter().any(|d| d.id == id);
            if queued || self.incidents.by_key(&format!("container:{id}")).is_some() {
                continue;
            }
            if self.containers_health(&id) == Some(ContainerHealth::Unhealthy) {
                self.forget_health(&id);
                self.on_trigger(super::Trigger::Container(e));
            }
        }
    }

    /// After `inc`'s container was healed: queues the containers that
    /// depend on it (directly or through others), in dependency order, and
    /// starts the first.
    pub(super) fn restart_dependents(&mut self, inc: &Incident) {
        let Verification::ContainerRuns(root) = &inc.verify else {
            return;
        };
        let all = self.inventory();
        let Some(healed) = all.iter().find(|c| &c.id == root || c.name == inc.target) else {
            return;
        };
        let label = self.policy.autoheal_label().to_string();
        let settings: HashMap<&str, Settings> = all
            .iter()
            .map(|c| {
                (
                    c.id.as_str(),
                    Settings::from_labels(&c.name, &c.labels, &label).0,
                )
            })
            .collect();
        let deps_of: HashMap<&str, Vec<&str>> = all
            .iter()
            .map(|c| {
                let s = &settings[c.id.as_str()];
                (
                    c.id.as_str(),
                    dependencies(c, &s.depends_on, &all)
                        .into_iter()
                        .map(|d| d.id.as_str())
                        .collect(),
                )
            })
            .collect();
        // Everything that depends on the healed container, transitively.
        let mut set: HashSet<&str> = HashSet::new();
        let mut frontier = vec![healed.id.as_str()];
        while let Some(x) = frontier.pop() {
            for c in all.iter() {
                let id = c.id.as_str();
                if id != healed.id && !set.contains(id) && deps_of[id].contains(&x) {
                    set.insert(id);
                    frontier.push(id);
                }
            }
        }
        // In dependency order: a container after those it depends on.
        let mut placed: Vec<&ContainerInfo> = Vec::new();
        let mut left: Vec<&ContainerInfo> =
            all.iter().filter(|c| set.contains(c.id.as_str())).collect();
        while !left.is_empty() {
            let before = left.len();
            let mut i = 0;
            while i < left.len() {
                let ready = deps_of[left[i].id.as_str()]
                    .iter()
                    .all(|d| !set.contains(d) || placed.iter().any(|p| p.id == *d));
                if ready {
                    placed.push(left.remove(i));
                } else {
                    i += 1;
                }
            }
            if left.len() == before {
                // A cycle among dependents: the rest in inventory order.
                placed.append(&mut left);
            }
        }
        for c in placed {
            let s = &settings[c.id.as_str()];
            if s.autoheal == Some(false) || c.paused() {
                tracing::info!(container = %c.name, "a dependent opted out or paused: not restarted");
                continue;
            }
            if self.dependents.queue.len() >= MAX_DEPENDENTS
                || self.dependents.queue.iter().any(|d| d.id == c.id)
            {
                continue;
            }
            self.dependents.queue.push_back(Dependent {
                id: c.id.clone(),
                name: c.name.clone(),
                after: healed.name.clone(),
                stop_timeout_s: s
                    .stop_timeout
                    .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)),
            });
            self.dependents.blocked.remove(&c.id);
        }
        if self.dependents.current.is_none() {
            self.next_dependent();
        }
    }

    /// Starts the next dependent's restart, if none is under way.
    fn next_dependent(&mut self) {
        while let Some(d) = self.dependents.queue.pop_front() {
            let mut action = ContainerAction::restart();
            if let Some(t) = d.stop_timeout_s {
                action.stop_timeout_s = t;
            }
            let opening = Opening {
                key: format!("container:{}", d.id),
                symptom: "dependency_healed",
                subject: CheckSubject {
                    container: Some(d.name.clone()),
                    ..CheckSubject::default()
                },
                target: d.name.clone(),
                verify: Verification::ContainerRuns(d.id.clone()),
                anomaly_id: None,
                ladder: vec![ActionSpec::Container(action)],
                event_ns: None,
                reason: format!(
                    "{} depends on {}, which was healed: restarted after it, in dependency order",
                    d.name, d.after
                ),
                hold_until: None,
            };
            if let Some(id) = self.open(opening) {
                if self.incidents.get(id).is_some() {
                    self.dependents.current = Some(id);
                    return;
                }
            }
        }
    }

    /// An incident closed: the next dependent goes when it was the one
    /// under way.
    pub(super) fn dependent_closed(&mut self, id: i64) {
        if self.dependents.current == Some(id) {
            self.dependents.current = None;
            self.next_dependent();
        }
    }
}
