//! Reloading the configuration while the agent runs (SIGHUP, which is what
//! `systemctl reload aegis` sends).
//!
//! The file is read and validated again by the caller, with the same flags
//! as at the start; an invalid file is refused and the agent keeps running
//! on the configuration it has. A valid one is compared with the running
//! one section by section:
//!
//! - the checks (`[[checks]]`, `[[probes]]`, `[[processes]]`) change live:
//!   unchanged checks keep their state and results, changed and new ones
//!   start afresh, removed ones stop (healing forgets their incidents);
//! - the healing rules (`[[heal.rules]]`) change live: incidents already
//!   open keep the ladder they started with, new ones follow the new rules;
//! - the rest of `[heal]` changes live (the guard's limits, dry run,
//!   maintenance windows, breakers, retries, the verify window, `enabled`,
//!   the attempt timeout and the deny-list): what the guard remembers counts
//!   against the new limits, attempts under way finish as they began;
//! - `[notify]` changes live: receivers that are unchanged keep what waits
//!   for them, new and changed ones start empty, removed ones are dropped;
//! - every other section is named in the log as changed but applied at the
//!   next start: those are wired into tasks, sockets and files made once
//!   (the store, the API listener, the sources, the detectors).

use std::sync::Arc;

use aegis_collect::check::{ChecksHandle, Replaced};
use aegis_core::config::{CheckConfig, Config, ConfigError};
use aegis_heal::engine::{EngineHandle, Trigger};
use aegis_heal::policy::Policy;
use aegis_notify::{Notifier, Reconfigured};
use tokio::sync::watch;

/// What a reload reaches while the agent runs.
pub struct Live {
    /// The owner of the checks.
    pub checks: ChecksHandle,
    /// The checks the transition fan-out knows.
    pub check_configs: watch::Sender<Arc<Vec<CheckConfig>>>,
    /// Healing (told of removed checks, new rules and settings).
    pub heal: EngineHandle,
    /// Every message that leaves the agent.
    pub notifier: Notifier,
}

/// A reload request: the configuration read again, or why it was refused.
pub type Request = Result<Config, ConfigError>;

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// What changed among the checks.
    pub checks: Replaced,
    /// Whether the healing rules were replaced.
    pub rules: bool,
    /// Whether the rest of `[heal]` was applied anew.
    pub heal: bool,
    /// What changed among the receivers, when `[notify]` changed.
    pub notify: Option<Reconfigured>,
    /// Sections that changed and take effect at the next start.
    pub at_restart: Vec<&'static str>,
}

/// The sections, apart from the checks, whose change needs a restart.
fn changed_sections(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut see = |name: &'static str, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    see("agent", old.agent != new.agent);
    see("collect", old.collect != new.collect);
    see("history", old.history != new.history);
    see("store", old.store != new.store);
    see("detect", old.detect != new.detect);
    see("docker", old.docker != new.docker);
    see("probe", old.probe != new.probe);
    see("api", old.api != new.api);
    see("log", old.log != new.log);
    changed
}

/// Applies `new` over `old` where it can; `old` becomes what now runs.
pub async fn apply(live: &Live, old: &mut Config, new: Config) -> Result<Outcome, String> {
    let at_restart = changed_sections(old, &new);
    let effective = new.effective_checks();
    let checks = if effective == old.effective_checks() {
        Replaced {
            kept: effective.len(),
            ..Replaced::default()
        }
    } else {
        let replaced = live.checks.replace(effective.clone()).await?;
        live.check_configs.send_replace(Arc::new(effective));
        for check in replaced.removed.iter().chain(&replaced.changed) {
            live.heal
                .trigger_wait(Trigger::CheckRemoved {
                    check: check.clone(),
                })
                .await;
        }
        replaced
    };
    // [heal] but its rules: the guard and the engine's settings.
    let settings = |c: &Config| {
        let mut h = c.heal.clone();
        h.rules = Vec::new();
        h
    };
    let heal = settings(old) != settings(&new);
    if heal
        && !live
            .heal
            .trigger_wait(Trigger::Settings(Box::new(super::heal::settings(&new))))
            .await
    {
        return Err("healing has stopped".to_string());
    }
    let notify = if old.notify != new.notify {
        let config = crate::notify::notifier_config(&new)?;
        Some(
            live.notifier
                .reconfigure(config)
                .await
                .ok_or("the notifier has stopped")?,
        )
    } else {
        None
    };
    let rules = old.heal.rules != new.heal.rules;
    if rules {
        let policy = Policy::new(new.heal.rules.clone(), &old.docker.autoheal_label);
        if !live.heal.trigger_wait(Trigger::Rules(policy)).await {
            return Err("healing has stopped".to_string());
        }
    }
    // What runs now: the new checks and rules, the rest as it was started.
    old.checks = new.checks;
    old.probes = new.probes;
    old.processes = new.processes;
    old.heal = new.heal;
    old.notify = new.notify;
    Ok(Outcome {
        checks,
        rules,
        heal,
        notify,
        at_restart,
    })
}

/// Logs what a reload did.
pub fn log(outcome: &Outcome) {
    let c = &outcome.checks;
    if c.is_empty()
        && !outcome.rules
        && !outcome.heal
        && outcome.notify.is_none()
        && outcome.at_restart.is_empty()
    {
        tracing::info!("configuration reloaded: nothing changed");
        return;
    }
    tracing::info!(
        added = ?c.added,
        removed = ?c.removed,
        changed = ?c.changed,
        kept = c.kept,
        rules_replaced = outcome.rules,
        heal_settings = outcome.heal,
        "configuration reloaded: checks, rules and healing settings applied"
    );
    if let Some(n) = &outcome.notify {
        tracing::info!(
            added = ?n.added,
            removed = ?n.removed,
            kept = n.kept,
            dropped = n.dropped,
            "configuration reloaded: receivers applied"
        );
    }
    if !outcome.at_restart.is_empty() {
        tracing::warn!(
            sections = ?outcome.at_restart,
            "configuration reloaded: these sections changed and take effect at the next start"
        );
    }
}
