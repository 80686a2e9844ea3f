//! What sources emit: a reading of one series at one time.
//!
//! A series is a metric [`Family`] (a static description: name, help text,
//! the name of its one label) plus an optional instance (a CPU, a mount, an
//! interface, later a container or an endpoint). The canonical text form is
//! `family` or `family/instance`, e.g. `host_net_rx_bytes_per_second/eth0`
//! or `host_disk_used_ratio//var/lib`.

use std::fmt;
use std::sync::Arc;

/// The static description of a metric family.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Family {
    /// Metric name, snake case, unit-suffixed (`_ratio`, `_bytes`, `_per_second`).
    pub name: &'static str,
    /// One line for `/metrics` HELP and the API.
    pub help: &'static str,
    /// The label that names the instance (`cpu`, `mountpoint`, `device`,
    /// `interface`), or `None` for a host-wide series.
    pub label: Option<&'static str>,
}

/// Identifies one series: a family and, for labelled families, an instance.
#[derive(Debug, Clone, Eq, PartialOrd, Ord)]
pub struct SeriesKey {
    family: FamilyRef,
    instance: Option<Arc<str>>,
}

/// A `&'static Family` compared and hashed by name, so keys are cheap to
/// clone and stable to sort.
#[derive(Debug, Clone, Copy)]
struct FamilyRef(&'static Family);

impl PartialEq for FamilyRef {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0) || self.0.name == other.0.name
    }
}
impl Eq for FamilyRef {}
impl std::hash::Hash for FamilyRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state)
    }
}
impl PartialOrd for FamilyRef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for FamilyRef {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.name.cmp(other.0.name)
    }
}

// Equal and hashed by content, as the derived order is; the pointer checks
// first make the usual case (a key cloned from the one a map holds) cheap.
impl std::hash::Hash for SeriesKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.family.hash(state);
        self.instance.hash(state);
    }
}

impl PartialEq for SeriesKey {
    fn eq(&self, other: &Self) -> bool {
        self.family == other.family
            && match (&self.instance, &other.instance) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                _ => false,
            }
    }
}

impl SeriesKey {
    /// A host-wide series of an unlabelled family.
    pub fn global(family: &'static Family) -> Self {
        Self {
            family: FamilyRef(family),
            instance: None,
        }
    }

    /// One instance of a labelled family.
    pub fn instance(family: &'static Family, instance: impl Into<Arc<str>>) -> Self {
        Self {
            family: FamilyRef(family),
            instance: Some(instance.into()),
        }
    }

    /// The family this series belongs to.
    pub fn family(&self) -> &'static Family {
        self.family.0
    }

    /// The instance (label value), if any.
    pub fn instance_name(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// Whether `text` is this series' canonical name, without allocating.
    pub fn matches(&self, text: &str) -> bool {
        match &self.instance {
            None => text == self.family.0.name,
            Some(inst) => {
                text.strip_prefix(self.family.0.name)
                    .and_then(|rest| rest.strip_prefix('/'))
                    == Some(inst)
            }
        }
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.instance {
            None => f.write_str(self.family.0.name),
            Some(i) => write!(f, "{}/{}", self.family.0.name, i),
        }
    }
}

/// The value a source read for a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    /// A gauge value or a rate computed from a counter.
    Value(f64),
    /// The counter behind this rate series went down (reset, wrap, device
    /// re-created): there is no rate for this interval, by design.
    CounterReset,
}

/// One reading of one series at one wall-clock time.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Which series.
    pub series: SeriesKey,
    /// Wall-clock milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// What was read.
    pub reading: Reading,
}

impl Observation {
    /// A value observation.
    pub fn value(series: SeriesKey, at_ms: i64, value: f64) -> Self {
        Self {
            series,
            at_ms,
            reading: Reading::Value(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static RX: Family = Family {
        name: "host_net_rx_bytes_per_second",
        help: "Bytes received per second.",
        label: Some("interface"),
    };
    static LOAD: Family = Family {
        name: "host_load1",
        help: "One-minute load average.",
        label: None,
    };

    #[test]
    fn canonical_names_round_trip_through_matches() {
        let k = SeriesKey::instance(&RX, "eth0");
        assert_eq!(k.to_string(), "host_net_rx_bytes_per_second/eth0");
        assert!(k.matches("host_net_rx_bytes_per_second/eth0"));
        assert!(!k.matches("host_net_rx_bytes_per_second/eth1"));
        assert!(!k.matches("host_net_rx_bytes_per_second"));
        let g = SeriesKey::global(&LOAD);
        assert_eq!(g.to_string(), "host_load1");
        assert!(g.matches("host_load1"));
    }

    #[test]
    fn mount_points_with_slashes_stay_unambiguous() {
        static USED: Family = Family {
            name: "host_disk_used_ratio",
            help: "",
            label: Some("mountpoint"),
        };
        let k = SeriesKey::instance(&USED, "/var/lib");
        assert_eq!(k.to_string(), "host_disk_used_ratio//var/lib");
        assert!(k.matches("host_disk_used_ratio//var/lib"));
    }
}
