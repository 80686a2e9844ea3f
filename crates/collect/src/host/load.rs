//! `/proc/loadavg`: load averages and runnable tasks.

use aegis_core::Family;

use super::{field, Cycle};

/// One-minute load average.
pub static LOAD1: Family = Family {
    name: "host_load1",
    help: "Load average over one minute.",
    label: None,
};
/// Five-minute load average.
pub static LOAD5: Family = Family {
    name: "host_load5",
    help: "Load average over five minutes.",
    label: None,
};
/// Fifteen-minute load average.
pub static LOAD15: Family = Family {
    name: "host_load15",
    help: "Load average over fifteen minutes.",
    label: None,
};
/// Runnable tasks now.
pub static PROCS_RUNNING: Family = Family {
    name: "host_procs_running",
    help: "Tasks currently runnable.",
    label: None,
};

/// The families this file emits.
pub static LOAD_FAMILIES: &[&Family] = &[&LOAD1, &LOAD5, &LOAD15, &PROCS_RUNNING];

/// Parses `/proc/loadavg`: `0.56 0.30 0.12 1/79 4865`.
pub(super) fn collect(text: &str, cycle: &mut Cycle<'_>) -> Result<(), String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let l1: f64 = field(&fields, 0, "loadavg")?;
    let l5: f64 = field(&fields, 1, "loadavg")?;
    let l15: f64 = field(&fields, 2, "loadavg")?;
    cycle.gauge(&LOAD1, None, l1);
    cycle.gauge(&LOAD5, None, l5);
    cycle.gauge(&LOAD15, None, l15);
    if let Some(running) = fields
        .get(3)
        .and_then(|f| f.split('/').next())
        .and_then(|r| r.parse::<f64>().ok())
    {
        cycle.gauge(&PROCS_RUNNING, None, running);
    }
    Ok(())
}
