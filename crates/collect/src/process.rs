//! Watched processes: found by exact command name, by a pattern over the
//! command line, or by a pidfile; reported alive or not, with restarts seen,
//! CPU, resident memory, open files and threads.
//!
//! A process that goes missing shows as `process_up` falling to 0 and a
//! runaway one in `process_cpu_cores`: both are series the detectors watch,
//! so a healing rule can answer them like any other anomaly.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use aegis_core::config::ProcessConfig;
use aegis_core::{Clock, Family, Observation, SeriesKey};

use crate::runner::{Collection, PolledSource};

macro_rules! process_family {
    ($ident:ident, $name:literal, $help:literal) => {
        #[doc = $help]
        pub static $ident: Family = Family {
            name: $name,
            help: $help,
            label: Some("process"),
        };
    };
}

process_family!(
    PROCESS_UP,
    "process_up",
    "1 when at least one matching process runs, else 0."
);
process_family!(
    PROCESS_COUNT,
    "process_count",
    "Matching processes running."
);
process_family!(
    PROCESS_RESTARTS,
    "process_restarts",
    "Restarts seen since the agent started (a process replaced by a new one)."
);
process_family!(
    PROCESS_CPU,
    "process_cpu_cores",
    "CPU used by the matching processes, in cores."
);
process_family!(
    PROCESS_RSS,
    "process_rss_bytes",
    "Resident memory of the matching processes, in bytes."
);
process_family!(
    PROCESS_FDS,
    "process_open_fds",
    "Open file descriptors of the matching processes."
);
process_family!(
    PROCESS_THREADS,
    "process_threads",
    "Threads of the matching processes."
);

/// Every family the process source emits.
pub static PROCESS_FAMILIES: &[&Family] = &[
    &PROCESS_UP,
    &PROCESS_COUNT,
    &PROCESS_RESTARTS,
    &PROCESS_CPU,
    &PROCESS_RSS,
    &PROCESS_FDS,
    &PROCESS_THREADS,
];

/// One running process as `/proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    /// Process id.
    pub pid: i32,
    /// Command name.
    pub comm: String,
    /// Command line, arguments joined by spaces.
    pub cmdline: String,
    /// Start time, clock ticks after boot.
    pub start_time: u64,
    /// User + system CPU, clock ticks.
    pub cpu_ticks: u64,
    /// Threads.
    pub threads: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

/// One process; its command line only when `with_cmdline` (empty
/// otherwise).
///
/// The command line is read only for selectors that need it: reading it
/// takes the process's memory-map lock, which a process stuck in a page
/// fault (on a hung network mount, say) holds, and the read then waits
/// with it, as `ps` does. `stat` needs no such lock.
fn read_proc(root: &Path, pid: i32, with_cmdline: bool) -> Option<Proc> {
    let dir = root.join(pid.to_string());
    let stat =
        aegis_core::procfs::parse_pid_stat(&std::fs::read_to_string(dir.join("stat")).ok()?)?;
    let cmdline = if with_cmdline {
        std::fs::read(dir.join("cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .split('\0')
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    } else {
        String::new()
    };
    Some(Proc {
        pid,
        comm: stat.comm,
        cmdline,
        start_time: stat.start_time,
        cpu_ticks: stat.utime.saturating_add(stat.stime),
        threads: stat.threads,
        rss_pages: stat.rss_pages,
    })
}

/// Whether `p` is one of the processes `w` watches.
pub fn matches(w: &ProcessConfig, p: &Proc, pidfile_pid: Option<i32>) -> bool {
    if let Some(comm) = &w.comm {
        return p.comm == *comm;
    }
    if let Some(pattern) = &w.cmdline {
        return p.pid as u32 != std::process::id() && pattern.matches(&p.cmdline);
    }
    pidfile_pid == Some(p.pid)
}

/// The processes `w` finds under `root` now.
pub fn find(root: &Path, w: &ProcessConfig) -> Vec<Proc> {
    let pidfile_pid = w
        .pidfile
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| t.trim().parse::<i32>().ok());
    list(root, w.cmdline.is_some())
        .into_iter()
        .filter(|p| matches(w, p, pidfile_pid))
        .collect()
}

/// Every process under `root` (a procfs), with their command lines when
/// `with_cmdline` (see [`read_proc`]).
pub fn list(root: &Path, with_cmdline: bool) -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter_map(|pid| read_proc(root, pid, with_cmdline))
        .collect()
}

/// What one watched process looked like in one collection.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProcessSummary {
    /// Matching processes.
    pub count: usize,
    /// Processes replaced by new ones since the previous collection.
    pub restarts: u64,
    /// CPU used, in cores (from the second collection on).
    pub cpu_cores: Option<f64>,
    /// Resident memory, in bytes.
    pub rss_bytes: f64,
}

/// One watched process across collections: the series it feeds and the
/// restarts it has seen. Owned by one collector (a source or a check).
#[derive(Debug)]
pub struct ProcessWatch {
    watched: ProcessConfig,
    /// Each member's CPU ticks at the previous collection, and when.
    cpu_before: (HashMap<(i32, u64), u64>, Option<std::time::Duration>),
    seen: HashSet<(i32, u64)>,
    restarts: u64,
    first: bool,
}

/// The kernel's clock ticks per second and page size (the Linux defaults
/// where sysconf cannot say).
fn sysconf() -> (f64, f64) {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as f64;
    (ticks, page)
}

impl ProcessWatch {
    /// Watches `watched`.
    pub fn new(watched: ProcessConfig) -> Self {
        Self {
            watched,
            cpu_before: (HashMap::new(), None),
            seen: HashSet::new(),
            restarts: 0,
            first: true,
        }
    }

    /// Whether finding it takes the command lines (a `cmdline` pattern).
    pub fn needs_cmdline(&self) -> bool {
        self.watched.cmdline.is_some()
    }

    /// The selector.
    pub fn watched(&self) -> &ProcessConfig {
        &self.watched
    }

    /// Reads the process among `procs` (a listing of `root`): its series
    /// into `out`, and what it looked like.
    pub fn collect(
        &mut self,
        root: &Path,
        procs: &[Proc],
        at: std::time::Duration,
        at_ms: i64,
        out: &mut Vec<Observation>,
        errors: &mut Vec<String>,
    ) -> ProcessSummary {
        let (ticks_per_second, page_size) = sysconf();
        let w = &self.watched;
        let pidfile_pid = match &w.pidfile {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => text.trim().parse::<i32>().ok(),
                Err(e) => {
                    errors.push(format!("{}: pidfile {}: {e}", w.name, path.display()));
                    None
                }
            },
            None => None,
        };
        let matched: Vec<&Proc> = procs
            .iter()
            .filter(|p| matches(w, p, pidfile_pid))
            .collect();
        let key = |f: &'static Family| SeriesKey::instance(f, w.name.as_str());
        let ids: HashSet<(i32, u64)> = matched.iter().map(|p| (p.pid, p.start_time)).collect();
        let before = std::mem::replace(&mut self.seen, ids.clone());
        // A process gone and another in its place: a restart.
        let gone = before.difference(&ids).count() as u64;
        let new = ids.difference(&before).count() as u64;
        let restarted = if self.first || before.is_empty() {
            0
        } else {
            gone.min(new)
        };
        self.first = false;
        self.restarts += restarted;
        out.push(Observation::value(
            key(&PROCESS_UP),
            at_ms,
            f64::from(u8::from(!matched.is_empty())),
        ));
        out.push(Observation::value(
            key(&PROCESS_COUNT),
            at_ms,
            matched.len() as f64,
        ));
        out.push(Observation::value(
            key(&PROCESS_RESTARTS),
            at_ms,
            self.restarts as f64,
        ));
        let mut summary = ProcessSummary {
            count: matched.len(),
            restarts: restarted,
            ..ProcessSummary::default()
        };
        if matched.is_empty() {
            return summary;
        }
        let rss: u64 = matched.iter().map(|p| p.rss_pages).sum();
        let threads: u64 = matched.iter().map(|p| p.threads).sum();
        let fds: usize = matched
            .iter()
            .filter_map(|p| std::fs::read_dir(root.join(p.pid.to_string()).join("fd")).ok())
            .map(|d| d.count())
            .sum();
        summary.rss_bytes = rss as f64 * page_size;
        out.push(Observation::value(
            key(&PROCESS_RSS),
            at_ms,
            summary.rss_bytes,
        ));
        out.push(Observation::value(
            key(&PROCESS_THREADS),
            at_ms,
            threads as f64,
        ));
        out.push(Observation::value(key(&PROCESS_FDS), at_ms, fds as f64));
        // CPU as the sum of each member's own use since the previous
        // collection: a member that left takes its ticks with it, and one
        // that joined (a restart, a new worker) counts from the next
        // collection on. A delta of the group's total would read a restart
        // as a counter reset (no value), and a long-lived process newly
        // matched as a burst of CPU that never happened.
        let ticks: HashMap<(i32, u64), u64> = matched
            .iter()
            .map(|p| ((p.pid, p.start_time), p.cpu_ticks))
            .collect();
        let (before_ticks, before_at) = std::mem::replace(&mut self.cpu_before, (ticks, Some(at)));
        if let Some(elapsed) = before_at
            .map(|b| at.saturating_sub(b).as_secs_f64())
            .filter(|e| *e > 0.0)
        {
            let used: u64 = self
                .cpu_before
                .0
                .iter()
                .filter_map(|(id, now)| before_ticks.get(id).map(|b| now.saturating_sub(*b)))
                .sum();
            let cores = used as f64 / ticks_per_second / elapsed;
            summary.cpu_cores = Some(cores);
            out.push(Observation::value(key(&PROCESS_CPU), at_ms, cores));
        }
        summary
    }
}

/// Reads watched processes from a procfs root.
#[derive(Debug)]
pub struct ProcessSource {
    root: PathBuf,
    watches: Vec<ProcessWatch>,
}

impl ProcessSource {
    /// A source for `watched` under `root`.
    pub fn new(root: impl Into<PathBuf>, watched: Vec<ProcessConfig>) -> Self {
        Self {
            root: root.into(),
            watches: watched.into_iter().map(ProcessWatch::new).collect(),
        }
    }

    /// Reads every watched process once.
    pub fn collect_at(&mut self, at: std::time::Duration, at_ms: i64) -> Collection {
        let with_cmdline = self.watches.iter().any(ProcessWatch::needs_cmdline);
        let procs = list(&self.root, with_cmdline);
        let mut observations = Vec::new();
        let mut errors = Vec::new();
        for w in &mut self.watches {
            w.collect(
                &self.root,
                &procs,
                at,
                at_ms,
                &mut observations,
                &mut errors,
            );
        }
        Collection {
            observations,
            errors,
            unavailable: None,
        }
    }
}

impl PolledSource for ProcessSource {
    fn name(&self) -> &'static str {
        "processes"
    }

    fn collect(&mut self, clock: &dyn Clock) -> Collection {
        self.collect_at(clock.monotonic(), clock.wall_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn proc(pid: i32, start_time: u64, cpu_ticks: u64) -> Proc {
        Proc {
            pid,
            comm: "worker".into(),
            cmdline: "worker".into(),
            start_time,
            cpu_ticks,
            threads: 1,
            rss_pages: 1,
        }
    }

    /// Regression: every process's command line was read for every
    /// selector, and that read waits on the process's memory-map lock (a
    /// process stuck in a page fault holds it): a `comm` or pidfile check
    /// could hang on any process of the host. A FIFO stands in for such a
    /// command line here: reading it never returns.
    #[test]
    fn a_command_line_is_read_only_for_a_cmdline_selector() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("42");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(
            dir.join("stat"),
            "42 (worker) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 5000 1000000 250 \
             18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
        )
        .expect("stat");
        nix::unistd::mkfifo(&dir.join("cmdline"), nix::sys::stat::Mode::S_IRWXU).expect("fifo");
        let by_comm = ProcessConfig {
            name: "w".parse().expect("name"),
            comm: Some("worker".into()),
            cmdline: None,
            pidfile: None,
        };
        assert!(!ProcessWatch::new(by_comm.clone()).needs_cmdline());
        let (tx, rx) = std::sync::mpsc::channel();
        let at = root.path().to_path_buf();
        std::thread::spawn(move || {
            let _ = tx.send(find(&at, &by_comm));
        });
        let found = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("finding by comm read the command line");
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].pid, found[0].comm.as_str()), (42, "worker"));
        // Let the FIFO go so nothing is left waiting on it.
        std::fs::remove_file(dir.join("cmdline")).expect("rm fifo");
    }

    /// Regression: the CPU of a group was the rate of its members' total,
    /// so a member replaced by a new one (fewer ticks in all) read as a
    /// counter reset and gave no value, and a long-lived process newly
    /// matched read as a burst of CPU.
    #[test]
    fn a_groups_cpu_is_the_sum_of_its_members_own_use() {
        let (ticks, _) = sysconf();
        let mut w = ProcessWatch::new(ProcessConfig {
            name: "workers".parse().expect("name"),
            comm: Some("worker".into()),
            cmdline: None,
            pidfile: None,
        });
        let mut run = |procs: &[Proc], s: u64| {
            let mut out = Vec::new();
            let mut errors = Vec::new();
            w.collect(
                Path::new("/nonexistent"),
                procs,
                Duration::from_secs(s),
                s as i64 * 1000,
                &mut out,
                &mut errors,
            )
        };
        assert_eq!(
            run(&[proc(10, 1, 500), proc(11, 1, 100)], 1).cpu_cores,
            None
        );
        // 10 used one second of CPU in one second; 11 is replaced by 12.
        let t = ticks as u64;
        let s = run(&[proc(10, 1, 500 + t), proc(12, 9, 3)], 2);
        assert_eq!(s.restarts, 1);
        assert_eq!(s.cpu_cores, Some(1.0));
        // A process that ran for long joins the match: nothing of its past.
        let s = run(
            &[proc(10, 1, 500 + t), proc(12, 9, 3), proc(13, 2, 90_000)],
            3,
        );
        assert_eq!(s.cpu_cores, Some(0.0));
        let s = run(
            &[
                proc(10, 1, 500 + t),
                proc(12, 9, 3 + t),
                proc(13, 2, 90_000 + t),
            ],
            4,
        );
        assert_eq!(s.cpu_cores, Some(2.0));
    }
}
