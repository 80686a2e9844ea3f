//! The host source: one owner of every host counter's previous value.
//!
//! Each metric family lives in its own file with a pure parser over the text
//! of one procfs file; this module reads the files, feeds counters through
//! the single [`CounterTracker`], and turns the results into observations.
//! A file that cannot be read or parsed costs only its own family: the others
//! are still reported and the problem is returned as an error of the cycle.

mod cpu;
mod disk;
mod filesystem;
mod load;
mod memory;
mod network;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aegis_core::counter::{CounterTracker, Step};
use aegis_core::{Clock, Family, Observation, Reading, SeriesKey};

use crate::runner::{Collection, PolledSource};
use crate::statfs::Statfs;

pub use cpu::CPU_FAMILIES;
pub use disk::DISK_FAMILIES;
pub use filesystem::FILESYSTEM_FAMILIES;
pub use load::LOAD_FAMILIES;
pub use memory::MEMORY_FAMILIES;
pub use network::NETWORK_FAMILIES;

/// Every family the host source may emit.
pub fn families() -> impl Iterator<Item = &'static Family> {
    CPU_FAMILIES
        .iter()
        .chain(MEMORY_FAMILIES)
        .chain(LOAD_FAMILIES)
        .chain(FILESYSTEM_FAMILIES)
        .chain(DISK_FAMILIES)
        .chain(NETWORK_FAMILIES)
        .copied()
}

/// Identifies one counter: the family of the rate it feeds and the instance.
type CounterKey = (&'static str, Arc<str>);

/// The procfs files one host cycle reads: each one's text, or why it could
/// not be read.
#[derive(Debug, Clone)]
pub struct ProcTexts {
    /// `stat`.
    pub stat: Result<String, String>,
    /// `meminfo`.
    pub meminfo: Result<String, String>,
    /// `loadavg`.
    pub loadavg: Result<String, String>,
    /// `mounts`.
    pub mounts: Result<String, String>,
    /// `diskstats`.
    pub diskstats: Result<String, String>,
    /// `net/dev`.
    pub net_dev: Result<String, String>,
}

impl ProcTexts {
    /// Reads them under `root`.
    pub fn read(root: &Path) -> Self {
        let read = |relative: &str| {
            let path = root.join(relative);
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
        };
        Self {
            stat: read("stat"),
            meminfo: read("meminfo"),
            loadavg: read("loadavg"),
            mounts: read("mounts"),
            diskstats: read("diskstats"),
            net_dev: read("net/dev"),
        }
    }

    /// None of them: each an error saying so.
    pub fn none() -> Self {
        let missing = || Err("not given".to_string());
        Self {
            stat: missing(),
            meminfo: missing(),
            loadavg: missing(),
            mounts: missing(),
            diskstats: missing(),
            net_dev: missing(),
        }
    }
}

/// Reads the host from a procfs root.
#[derive(Debug)]
pub struct HostSource {
    proc_root: PathBuf,
    exclude_interfaces: Vec<String>,
    exclude_mountpoints: Vec<String>,
    counters: CounterTracker<CounterKey>,
    statfs: Statfs,
}

/// How long one mount's `statvfs` is waited for before the mount is
/// reported hung and skipped until that call returns. A local or healthy
/// network file system answers in well under a millisecond; the wait holds
/// up the host source's own thread (not the agent's), once per hang, so
/// that the other figures still come.
pub const STATFS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Collects the observations of one cycle, with one timestamp for all.
struct Cycle<'a> {
    at_ms: i64,
    at: std::time::Duration,
    counters: &'a mut CounterTracker<CounterKey>,
    out: Vec<Observation>,
}

impl Cycle<'_> {
    fn gauge(&mut self, family: &'static Family, instance: Option<&Arc<str>>, value: f64) {
        if !value.is_finite() {
            return;
        }
        let series = match instance {
            Some(i) => SeriesKey::instance(family, Arc::clone(i)),
            None => SeriesKey::global(family),
        };
        self.out.push(Observation::value(series, self.at_ms, value));
    }

    /// Feeds a counter; returns its rate step.
    fn counter(&mut self, family: &'static Family, instance: &Arc<str>, value: u64) -> Step {
        self.counters
            .observe(&(family.name, Arc::clone(instance)), value, self.at)
    }

    /// Feeds a counter and emits its per-second rate (times `scale`).
    fn rate(&mut self, family: &'static Family, instance: &Arc<str>, value: u64, scale: f64) {
        let step = self.counter(family, instance, value);
        self.emit_step(family, Some(instance), step.map_rate(|r| r * scale));
    }

    fn emit_step(&mut self, family: &'static Family, instance: Option<&Arc<str>>, step: Step) {
        let series = match instance {
            Some(i) => SeriesKey::instance(family, Arc::clone(i)),
            None => SeriesKey::global(family),
        };
        let reading = match step {
            Step::Rate(r) => Reading::Value(r),
            Step::Reset => Reading::CounterReset,
            Step::First | Step::Stale => return,
        };
        self.out.push(Observation {
            series,
            at_ms: self.at_ms,
            reading,
        });
    }
}

/// Rate-step helpers used by the family modules.
trait StepExt {
    fn map_rate(self, f: impl FnOnce(f64) -> f64) -> Step;
}

impl StepExt for Step {
    fn map_rate(self, f: impl FnOnce(f64) -> f64) -> Step {
        match self {
            Step::Rate(r) => Step::Rate(f(r)),
            other => other,
        }
    }
}

impl HostSource {
    /// A host source reading procfs at `proc_root`.
    pub fn new(proc_root: impl Into<PathBuf>) -> Self {
        Self {
            proc_root: proc_root.into(),
            exclude_interfaces: Vec::new(),
            exclude_mountpoints: Vec::new(),
            counters: CounterTracker::new(),
            statfs: Statfs::new(STATFS_TIMEOUT),
        }
    }

    /// Leaves out these interfaces and mount points.
    pub fn excluding(mut self, interfaces: Vec<String>, mountpoints: Vec<String>) -> Self {
        self.exclude_interfaces = interfaces;
        self.exclude_mountpoints = mountpoints;
        self
    }

    /// Counters currently tracked (bounded by what one cycle sees).
    pub fn tracked_counters(&self) -> usize {
        self.counters.len()
    }

    /// Reads every family once.
    pub fn collect_at(&mut self, at: std::time::Duration, at_ms: i64) -> Collection {
        let texts = ProcTexts::read(&self.proc_root);
        self.observe(texts, at, at_ms)
    }

    /// Parses one cycle's procfs texts: the source's whole work but the
    /// reading, for callers (and fuzz targets) that hold the texts already.
    pub fn observe(&mut self, texts: ProcTexts, at: std::time::Duration, at_ms: i64) -> Collection {
        let mut errors = Vec::new();
        let ProcTexts {
            stat,
            meminfo,
            loadavg,
            mounts,
            diskstats,
            net_dev: netdev,
        } = texts;
        let mut cycle = Cycle {
            at_ms,
            at,
            counters: &mut self.counters,
            out: Vec::with_capacity(128),
        };
        let results = [
            ("cpu", stat.and_then(|t| cpu::collect(&t, &mut cycle))),
            (
                "memory",
                meminfo.and_then(|t| memory::collect(&t, &mut cycle)),
            ),
            ("load", loadavg.and_then(|t| load::collect(&t, &mut cycle))),
            (
                "filesystem",
                mounts.and_then(|t| {
                    filesystem::collect(&t, &self.exclude_mountpoints, &mut self.statfs, &mut cycle)
                }),
            ),
            (
                "disk",
                diskstats.and_then(|t| disk::collect(&t, &mut cycle)),
            ),
            (
                "network",
                netdev.and_then(|t| network::collect(&t, &self.exclude_interfaces, &mut cycle)),
            ),
        ];
        for (family, result) in results {
            if let Err(e) = result {
                errors.push(format!("{family}: {e}"));
            }
        }
        let observations = cycle.out;
        // Devices not seen this cycle are forgotten: one that comes back
        // starts with a first sample, never a delta against a stale value.
        self.counters.end_cycle();
        let unavailable = (observations.is_empty()
            && !errors.is_empty()
            && !self.proc_root.join("stat").exists())
        .then(|| format!("no procfs at {}", self.proc_root.display()));
        Collection {
            observations,
            errors,
            unavailable,
        }
    }
}

impl PolledSource for HostSource {
    fn name(&self) -> &'static str {
        "host"
    }

    fn collect(&mut self, clock: &dyn Clock) -> Collection {
        self.collect_at(clock.monotonic(), clock.wall_ms())
    }
}

/// Parses one whitespace-separated field as a number, naming it on error.
fn field<T: std::str::FromStr>(fields: &[&str], index: usize, what: &str) -> Result<T, String> {
    fields
        .get(index)
        .ok_or_else(|| format!("{what}: missing field {index}"))?
        .parse()
        .map_err(|_| format!("{what}: field {index} is not a number"))
}

/// Whether a path exists, for tests and callers that want to check a root.
pub fn looks_like_procfs(root: &Path) -> bool {
    root.join("stat").is_file() && root.join("meminfo").is_file()
}
