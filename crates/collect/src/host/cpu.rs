//! `/proc/stat`: CPU time, total and per core, as busy ratios.

use std::sync::Arc;

use aegis_core::counter::Step;
use aegis_core::Family;

use super::{field, Cycle};

/// Busy share of all CPUs over the last interval, 0..1.
pub static CPU_USAGE: Family = Family {
    name: "host_cpu_usage_ratio",
    help: "Share of CPU time spent busy over the last interval, all cores (0-1).",
    label: None,
};
/// Share of CPU time waiting for IO.
pub static CPU_IOWAIT: Family = Family {
    name: "host_cpu_iowait_ratio",
    help: "Share of CPU time spent waiting for IO over the last interval (0-1).",
    label: None,
};
/// Busy share per core.
pub static CPU_CORE_USAGE: Family = Family {
    name: "host_cpu_core_usage_ratio",
    help: "Share of one core's time spent busy over the last interval (0-1).",
    label: Some("cpu"),
};
// Internal counters behind the ratios (never emitted as series).
static CPU_BUSY_TICKS: Family = Family {
    name: "cpu_busy_ticks",
    help: "",
    label: Some("cpu"),
};
static CPU_TOTAL_TICKS: Family = Family {
    name: "cpu_total_ticks",
    help: "",
    label: Some("cpu"),
};
static CPU_IOWAIT_TICKS: Family = Family {
    name: "cpu_iowait_ticks",
    help: "",
    label: Some("cpu"),
};

/// The families this file emits.
pub static CPU_FAMILIES: &[&Family] = &[&CPU_USAGE, &CPU_IOWAIT, &CPU_CORE_USAGE];

/// Parses `/proc/stat`.
pub(super) fn collect(text: &str, cycle: &mut Cycle<'_>) -> Result<(), String> {
    let mut seen_total = false;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(name) = fields.first() else { continue };
        if !name.starts_with("cpu") {
            continue;
        }
        // user nice system idle iowait irq softirq steal (guest is inside user).
        let mut ticks = [0u64; 8];
        for (i, t) in ticks.iter_mut().enumerate() {
            *t = if i < 4 {
                field(&fields, i + 1, name)?
            } else {
                // Old kernels have fewer columns.
                field(&fields, i + 1, name).unwrap_or(0)
            };
        }
        // Saturating: a corrupt line must not wrap (real counters are far
        // from u64::MAX).
        let idle = ticks[3].saturating_add(ticks[4]);
        let total = ticks.iter().fold(0u64, |sum, t| sum.saturating_add(*t));
        let busy = total.saturating_sub(idle);
        let instance: Arc<str> = Arc::from(*name);
        let busy_step = cycle.counter(&CPU_BUSY_TICKS, &instance, busy);
        let total_step = cycle.counter(&CPU_TOTAL_TICKS, &instance, total);
        let usage = ratio(busy_step, total_step);
        if *name == "cpu" {
            seen_total = true;
            let iowait_step = cycle.counter(&CPU_IOWAIT_TICKS, &instance, ticks[4]);
            cycle.emit_step(&CPU_USAGE, None, usage);
            cycle.emit_step(&CPU_IOWAIT, None, ratio(iowait_step, total_step));
        } else {
            let core: Arc<str> = Arc::from(name.trim_start_matches("cpu"));
            cycle.emit_step(&CPU_CORE_USAGE, Some(&core), usage);
        }
    }
    if seen_total {
        Ok(())
    } else {
        Err("no `cpu` line".to_string())
    }
}

/// `part / whole` of two counter steps taken over the same interval.
fn ratio(part: Step, whole: Step) -> Step {
    match (part, whole) {
        (Step::Rate(p), Step::Rate(w)) if w > 0.0 => Step::Rate((p / w).clamp(0.0, 1.0)),
        // No tick at all passed: nothing to say for this interval.
        (Step::Rate(_), Step::Rate(_)) => Step::Stale,
        (Step::Reset, _) | (_, Step::Reset) => Step::Reset,
        (Step::First, _) | (_, Step::First) => Step::First,
        _ => Step::Stale,
    }
}
