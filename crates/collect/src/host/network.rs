//! `/proc/net/dev`: per-interface rates of bytes, packets, errors and drops.

use std::sync::Arc;

use aegis_core::Family;

use super::{field, Cycle};

macro_rules! net_family {
    ($ident:ident, $name:literal, $help:literal) => {
        #[doc = $help]
        pub static $ident: Family = Family {
            name: $name,
            help: $help,
            label: Some("interface"),
        };
    };
}

net_family!(
    RX_BYTES,
    "host_net_rx_bytes_per_second",
    "Bytes received per second."
);
net_family!(
    TX_BYTES,
    "host_net_tx_bytes_per_second",
    "Bytes sent per second."
);
net_family!(
    RX_PACKETS,
    "host_net_rx_packets_per_second",
    "Packets received per second."
);
net_family!(
    TX_PACKETS,
    "host_net_tx_packets_per_second",
    "Packets sent per second."
);
net_family!(
    RX_ERRORS,
    "host_net_rx_errors_per_second",
    "Receive errors per second."
);
net_family!(
    TX_ERRORS,
    "host_net_tx_errors_per_second",
    "Transmit errors per second."
);
net_family!(
    RX_DROPS,
    "host_net_rx_drops_per_second",
    "Received packets dropped per second."
);
net_family!(
    TX_DROPS,
    "host_net_tx_drops_per_second",
    "Packets dropped on transmit per second."
);

/// The families this file emits.
pub static NETWORK_FAMILIES: &[&Family] = &[
    &RX_BYTES,
    &TX_BYTES,
    &RX_PACKETS,
    &TX_PACKETS,
    &RX_ERRORS,
    &TX_ERRORS,
    &RX_DROPS,
    &TX_DROPS,
];

/// Column of each family in a `/proc/net/dev` row (after the interface name).
const COLUMNS: [(usize, &Family); 8] = [
    (0, &RX_BYTES),
    (1, &RX_PACKETS),
    (2, &RX_ERRORS),
    (3, &RX_DROPS),
    (8, &TX_BYTES),
    (9, &TX_PACKETS),
    (10, &TX_ERRORS),
    (11, &TX_DROPS),
];

/// Parses `/proc/net/dev`.
pub(super) fn collect(text: &str, exclude: &[String], cycle: &mut Cycle<'_>) -> Result<(), String> {
    // Two header lines, then `  eth0: 123 4 0 ...`; the name may touch the
    // first number (`eth0:123`) on old kernels, so split at the colon.
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || exclude.iter().any(|e| e == name) {
            continue;
        }
        let f: Vec<&str> = rest.split_whitespace().collect();
        let what = format!("net/dev {name}");
        let mut values = [0u64; 8];
        for (slot, (col, _)) in values.iter_mut().zip(COLUMNS) {
            *slot = field(&f, col, &what)?;
        }
        let iface: Arc<str> = Arc::from(name);
        for (value, (_, family)) in values.into_iter().zip(COLUMNS) {
            cycle.rate(family, &iface, value, 1.0);
        }
    }
    Ok(())
}
