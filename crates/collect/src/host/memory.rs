//! `/proc/meminfo`: memory and swap.

use aegis_core::Family;

use super::Cycle;

/// Total memory.
pub static MEMORY_TOTAL: Family = Family {
    name: "host_memory_total_bytes",
    help: "Total usable memory in bytes.",
    label: None,
};
/// Available memory (MemAvailable).
pub static MEMORY_AVAILABLE: Family = Family {
    name: "host_memory_available_bytes",
    help: "Memory available for new work without swapping, in bytes.",
    label: None,
};
/// Used share of memory.
pub static MEMORY_USED: Family = Family {
    name: "host_memory_used_ratio",
    help: "Share of memory in use: 1 - available / total (0-1).",
    label: None,
};
/// Swap used.
pub static SWAP_USED_BYTES: Family = Family {
    name: "host_swap_used_bytes",
    help: "Swap in use, in bytes.",
    label: None,
};
/// Used share of swap.
pub static SWAP_USED: Family = Family {
    name: "host_swap_used_ratio",
    help: "Share of swap in use (0-1); 0 when there is no swap.",
    label: None,
};

/// The families this file emits.
pub static MEMORY_FAMILIES: &[&Family] = &[
    &MEMORY_TOTAL,
    &MEMORY_AVAILABLE,
    &MEMORY_USED,
    &SWAP_USED_BYTES,
    &SWAP_USED,
];

/// Parses `/proc/meminfo` (values in kB).
pub(super) fn collect(text: &str, cycle: &mut Cycle<'_>) -> Result<(), String> {
    let get = |key: &str| -> Option<u64> {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
                .map(|kb| kb.saturating_mul(1024))
        })
    };
    let total = get("MemTotal").ok_or("no MemTotal")?;
    // Kernels before 3.14 lack MemAvailable: approximate it.
    let available = get("MemAvailable")
        .or_else(|| {
            Some(
                get("MemFree")?
                    .saturating_add(get("Buffers").unwrap_or(0))
                    .saturating_add(get("Cached").unwrap_or(0)),
            )
        })
        .ok_or("no MemAvailable nor MemFree")?;
    let swap_total = get("SwapTotal").unwrap_or(0);
    let swap_free = get("SwapFree").unwrap_or(0);
    cycle.gauge(&MEMORY_TOTAL, None, total as f64);
    cycle.gauge(&MEMORY_AVAILABLE, None, available as f64);
    if total > 0 {
        cycle.gauge(
            &MEMORY_USED,
            None,
            1.0 - (available.min(total) as f64 / total as f64),
        );
    }
    let swap_used = swap_total.saturating_sub(swap_free);
    cycle.gauge(&SWAP_USED_BYTES, None, swap_used as f64);
    let swap_ratio = if swap_total > 0 {
        swap_used as f64 / swap_total as f64
    } else {
        0.0
    };
    cycle.gauge(&SWAP_USED, None, swap_ratio);
    Ok(())
}
