//! `[[checks]]`: explicit conditions, each on its own interval with a
//! timeout, judged from the first result. One flat table per check with the
//! fields of every kind; a field that does not belong to the check's kind
//! is refused with its line, as are missing ones.
//!
//! `[[probes]]` and `[[processes]]`, from before checks existed, load
//! unchanged and become `http` and `process` checks
//! ([`Config::effective_checks`](super::Config::effective_checks)).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    ByteSize, Glob, HostPort, HttpMethod, HttpUrl, Interval, JsonPointer, Name, ProbeConfig,
    ProbeSettings, Problems, ProcessConfig, StatusRange,
};
use crate::check::{Dependencies, DependencyError, Thresholds};
use crate::severity::Severity;

/// The kinds of check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// An HTTP(S) request and what its answer must be.
    Http,
    /// A TCP connection, optionally a request and the reply it must start with.
    Tcp,
    /// A TLS handshake: the certificate verifies and is not about to expire.
    Tls,
    /// Processes by name, command line or pidfile: how many, how often
    /// restarted, how much CPU and memory.
    Process,
    /// A program (an argv, never a shell): exit status 0, and its output.
    Program,
    /// A file system: how full, how many inodes, writable.
    Filesystem,
    /// Any series the agent holds above or below a value for a while.
    Series,
    /// A container: running, not crash-looping, healthy.
    Container,
}

impl CheckKind {
    /// Snake-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckKind::Http => "http",
            CheckKind::Tcp => "tcp",
            CheckKind::Tls => "tls",
            CheckKind::Process => "process",
            CheckKind::Program => "program",
            CheckKind::Filesystem => "filesystem",
            CheckKind::Series => "series",
            CheckKind::Container => "container",
        }
    }

    /// The fields a check of this kind may have, besides the common ones.
    pub fn fields(&self) -> &'static [&'static str] {
        match self {
            CheckKind::Http => &[
                "url",
                "method",
                "headers",
                "expect_status",
                "body_contains",
                "json_pointer",
                "json_equals",
                "tls_verify",
            ],
            CheckKind::Tcp => &["address", "send", "expect"],
            CheckKind::Tls => &["address", "server_name", "min_days", "ca_file"],
            CheckKind::Process => &[
                "comm",
                "cmdline",
                "pidfile",
                "min_count",
                "max_count",
                "max_restarts",
                "restart_window",
                "max_cpu_cores",
                "max_rss",
                "for",
            ],
            CheckKind::Program => &["argv", "expect_output"],
            CheckKind::Filesystem => &["mount", "max_used_ratio", "max_inodes_ratio", "writable"],
            CheckKind::Series => &["series", "above", "below", "for"],
            CheckKind::Container => &["max_restarts", "restart_window", "healthy"],
        }
    }
}

/// Every field any kind may have, beyond the common ones (for the
/// "does not belong to this kind" check).
const KIND_FIELDS: &[&str] = &[
    "url",
    "method",
    "headers",
    "expect_status",
    "body_contains",
    "json_pointer",
    "json_equals",
    "tls_verify",
    "address",
    "send",
    "expect",
    "server_name",
    "min_days",
    "ca_file",
    "comm",
    "cmdline",
    "pidfile",
    "min_count",
    "max_count",
    "max_restarts",
    "restart_window",
    "max_cpu_cores",
    "max_rss",
    "for",
    "argv",
    "expect_output",
    "mount",
    "max_used_ratio",
    "max_inodes_ratio",
    "writable",
    "series",
    "above",
    "below",
    "healthy",
];

/// `[[checks]]`: one check. The common fields first, then those of each kind.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Unique; the instance of its series and the name rules match.
    pub name: Name,
    /// What is checked.
    pub kind: CheckKind,
    /// Time between two runs; default `probe.interval`.
    #[serde(default)]
    pub interval: Option<Interval>,
    /// Time allowed to one run; default `probe.timeout`, at most the interval.
    #[serde(default)]
    pub timeout: Option<Interval>,
    /// Failures in a row before the check is failing.
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    /// Successes in a row before a failing check passes again.
    #[serde(default = "default_one")]
    pub success_threshold: u32,
    /// Failures in this period after start do not count until the first pass.
    #[serde(default)]
    pub start_period: Interval,
    /// While one of these checks fails, this one is blocked: reported,
    /// never healed, never alerted on its own.
    #[serde(default)]
    pub depends_on: Vec<Name>,
    /// The container this check is about: the default target of container
    /// actions; required for `kind = "container"`.
    #[serde(default)]
    pub container: Option<String>,
    /// The systemd unit this check is about: the default target of
    /// service restarts.
    #[serde(default)]
    pub service: Option<String>,
    /// How bad a failure of this check is (its incident, its messages).
    #[serde(default = "default_severity")]
    pub severity: Severity,

    // http
    /// `http`: the URL.
    #[serde(default)]
    pub url: Option<HttpUrl>,
    /// `http`: GET, HEAD or POST.
    #[serde(default)]
    pub method: Option<HttpMethod>,
    /// `http`: request headers.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// `http`: accepted status codes, `"200-399"` by default.
    #[serde(default)]
    pub expect_status: Option<StatusRange>,
    /// `http`: the body must contain this text.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// `http`: a JSON pointer into the body...
    #[serde(default)]
    pub json_pointer: Option<JsonPointer>,
    /// `http`: ...whose value, as text, must equal this.
    #[serde(default)]
    pub json_equals: Option<String>,
    /// `http`: verify TLS certificates (on unless turned off).
    #[serde(default)]
    pub tls_verify: Option<bool>,

    // tcp, tls
    /// `tcp`, `tls`: `host:port`.
    #[serde(default)]
    pub address: Option<HostPort>,
    /// `tcp`: bytes to send once connected (`"PING\r\n"`).
    #[serde(default)]
    pub send: Option<String>,
    /// `tcp`: the reply must start with this (`"+PONG"`).
    #[serde(default)]
    pub expect: Option<String>,
    /// `tls`: the name the certificate must be for (default: the host).
    #[serde(default)]
    pub server_name: Option<String>,
    /// `tls`: fewer days left than this is a failure (default 14).
    #[serde(default)]
    pub min_days: Option<u32>,
    /// `tls`: PEM file of certificate authorities to trust besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,

    // process
    /// `process`: exact command name (`/proc/PID/comm`).
    #[serde(default)]
    pub comm: Option<String>,
    /// `process`: pattern over the command line (`*` wildcard).
    #[serde(default)]
    pub cmdline: Option<Glob>,
    /// `process`: a pidfile naming the process.
    #[serde(default)]
    pub pidfile: Option<PathBuf>,
    /// `process`: fewer matching processes is a failure (default 1).
    #[serde(default)]
    pub min_count: Option<u32>,
    /// `process`: more is a failure.
    #[serde(default)]
    pub max_count: Option<u32>,
    /// `process`, `container`: more restarts than this within
    /// `restart_window` is a failure (a crash loop).
    #[serde(default)]
    pub max_restarts: Option<u32>,
    /// `process`, `container`: see `max_restarts` (default 5m).
    #[serde(default)]
    pub restart_window: Option<Interval>,
    /// `process`: more CPU than this (cores) for `for` is a failure.
    #[serde(default)]
    pub max_cpu_cores: Option<f64>,
    /// `process`: more resident memory than this for `for` is a failure.
    #[serde(default)]
    pub max_rss: Option<ByteSize>,
    /// `process`, `series`: how long a threshold must be crossed (default 0s).
    #[serde(default, rename = "for")]
    pub for_: Option<Interval>,

    // program
    /// `program`: the program and its arguments (never a shell).
    #[serde(default)]
    pub argv: Option<Vec<String>>,
    /// `program`: its standard output must contain this.
    #[serde(default)]
    pub expect_output: Option<String>,

    // filesystem
    /// `filesystem`: the mount point.
    #[serde(default)]
    pub mount: Option<PathBuf>,
    /// `filesystem`: more used space than this ratio (0-1) is a failure.
    #[serde(default)]
    pub max_used_ratio: Option<f64>,
    /// `filesystem`: more used inodes than this ratio is a failure.
    #[serde(default)]
    pub max_inodes_ratio: Option<f64>,
    /// `filesystem`: a read-only mount is a failure.
    #[serde(default)]
    pub writable: Option<bool>,

    // series
    /// `series`: a series name, or a pattern (`*`) over names.
    #[serde(default)]
    pub series: Option<Glob>,
    /// `series`: above this is a failure.
    #[serde(default)]
    pub above: Option<f64>,
    /// `series`: below this is a failure.
    #[serde(default)]
    pub below: Option<f64>,

    // container
    /// `container`: a failing health check is a failure (default true).
    #[serde(default)]
    pub healthy: Option<bool>,
}

fn default_failure_threshold() -> u32 {
    3
}

fn default_one() -> u32 {
    1
}

fn default_severity() -> Severity {
    Severity::Warning
}

/// Default `restart_window` of process and container checks.
pub const DEFAULT_RESTART_WINDOW: Duration = Duration::from_secs(300);
/// Default `min_days` of TLS checks.
pub const DEFAULT_MIN_DAYS: u32 = 14;

impl CheckConfig {
    /// A check of `kind` named `name` with every other field at its default.
    pub fn new(name: Name, kind: CheckKind) -> Self {
        Self {
            name,
            kind,
            interval: None,
            timeout: None,
            failure_threshold: default_failure_threshold(),
            success_threshold: 1,
            start_period: Interval::default(),
            depends_on: Vec::new(),
            container: None,
            service: None,
            severity: default_severity(),
            url: None,
            method: None,
            headers: None,
            expect_status: None,
            body_contains: None,
            json_pointer: None,
            json_equals: None,
            tls_verify: None,
            address: None,
            send: None,
            expect: None,
            server_name: None,
            min_days: None,
            ca_file: None,
            comm: None,
            cmdline: None,
            pidfile: None,
            min_count: None,
            max_count: None,
            max_restarts: None,
            restart_window: None,
            max_cpu_cores: None,
            max_rss: None,
            for_: None,
            argv: None,
            expect_output: None,
            mount: None,
            max_used_ratio: None,
            max_inodes_ratio: None,
            writable: None,
            series: None,
            above: None,
            below: None,
            healthy: None,
        }
    }

    /// The fields of a kind that are set.
    fn set_fields(&self) -> Vec<&'static str> {
        let set = [
            ("url", self.url.is_some()),
            ("method", self.method.is_some()),
            ("headers", self.headers.is_some()),
            ("expect_status", self.expect_status.is_some()),
            ("body_contains", self.body_contains.is_some()),
            ("json_pointer", self.json_pointer.is_some()),
            ("json_equals", self.json_equals.is_some()),
            ("tls_verify", self.tls_verify.is_some()),
            ("address", self.address.is_some()),
            ("send", self.send.is_some()),
            ("expect", self.expect.is_some()),
            ("server_name", self.server_name.is_some()),
            ("min_days", self.min_days.is_some()),
            ("ca_file", self.ca_file.is_some()),
            ("comm", self.comm.is_some()),
            ("cmdline", self.cmdline.is_some()),
            ("pidfile", self.pidfile.is_some()),
            ("min_count", self.min_count.is_some()),
            ("max_count", self.max_count.is_some()),
            ("max_restarts", self.max_restarts.is_some()),
            ("restart_window", self.restart_window.is_some()),
            ("max_cpu_cores", self.max_cpu_cores.is_some()),
            ("max_rss", self.max_rss.is_some()),
            ("for", self.for_.is_some()),
            ("argv", self.argv.is_some()),
            ("expect_output", self.expect_output.is_some()),
            ("mount", self.mount.is_some()),
            ("max_used_ratio", self.max_used_ratio.is_some()),
            ("max_inodes_ratio", self.max_inodes_ratio.is_some()),
            ("writable", self.writable.is_some()),
            ("series", self.series.is_some()),
            ("above", self.above.is_some()),
            ("below", self.below.is_some()),
            ("healthy", self.healthy.is_some()),
        ];
        debug_assert_eq!(set.len(), KIND_FIELDS.len());
        set.iter().filter(|(_, on)| *on).map(|(f, _)| *f).collect()
    }

    /// The interval, with `settings` as the default.
    pub fn interval_or(&self, settings: &ProbeSettings) -> Duration {
        self.interval.unwrap_or(settings.interval).0
    }

    /// The timeout, with `settings` as the default and the interval as the
    /// ceiling of the default (an explicit timeout longer than the interval
    /// is a configuration error instead).
    pub fn timeout_or(&self, settings: &ProbeSettings) -> Duration {
        match self.timeout {
            Some(t) => t.0,
            None => settings.timeout.0.min(self.interval_or(settings)),
        }
    }

    /// The thresholds of its state machine.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            failure_threshold: self.failure_threshold,
            success_threshold: self.success_threshold,
            start_period: self.start_period.0,
        }
    }

    /// The process selector of a process check, as the process source
    /// takes it.
    pub fn process_selector(&self) -> ProcessConfig {
        ProcessConfig {
            name: self.name.clone(),
            comm: self.comm.clone(),
            cmdline: self.cmdline.clone(),
            pidfile: self.pidfile.clone(),
        }
    }

    fn validate(&self, field: &str, settings: &ProbeSettings, p: &mut Problems) {
        let kind = self.kind;
        for f in self.set_fields() {
            p.check(kind.fields().contains(&f), format!("{field}.{f}"), || {
                format!(
                    "`{f}` does not belong to a {} check; its fields are {}",
                    kind.as_str(),
                    kind.fields().join(", ")
                )
            });
        }
        let need = |p: &mut Problems, present: bool, name: &str| {
            p.check(present, field.to_string(), || {
                format!("a {} check needs `{name}`", kind.as_str())
            });
        };
        p.check(
            self.failure_threshold >= 1,
            format!("{field}.failure_threshold"),
            || "must be at least 1".to_string(),
        );
        p.check(
            self.success_threshold >= 1,
            format!("{field}.success_threshold"),
            || "must be at least 1".to_string(),
        );
        let interval = self.interval_or(settings);
        p.check(
            interval >= Duration::from_millis(100) && interval <= Duration::from_secs(86_400),
            format!("{field}.interval"),
            || format!("must be between 100ms and 1d, got {}", Interval(interval)),
        );
        if let Some(t) = self.timeout {
            p.check(
                t.0 >= Duration::from_millis(10),
                format!("{field}.timeout"),
                || format!("must be at least 10ms, got {t}"),
            );
            p.check(t.0 <= interval, format!("{field}.timeout"), || {
                format!(
                    "{t} is longer than the interval ({}); a run would still be going when the next starts",
                    Interval(interval)
                )
            });
        }
        let unit_ok = |u: &str| crate::action::unit_problem(u).is_none();
        if let Some(s) = &self.service {
            p.check(unit_ok(s), format!("{field}.service"), || {
                format!("{s:?} is not a valid unit name")
            });
        }
        if let Some(c) = &self.container {
            p.check(!c.trim().is_empty(), format!("{field}.container"), || {
                "is empty".to_string()
            });
        }
        let ratio = |p: &mut Problems, name: &str, v: Option<f64>| {
            if let Some(v) = v {
                p.check(
                    v.is_finite() && (0.0..=1.0).contains(&v),
                    format!("{field}.{name}"),
                    || format!("must be a ratio between 0 and 1, got {v}"),
                );
            }
        };
        match kind {
            CheckKind::Http => {
                need(p, self.url.is_some(), "url");
                p.check(
                    self.json_pointer.is_some() == self.json_equals.is_some(),
                    format!(
                        "{field}.{}",
                        if self.json_pointer.is_some() {
                            "json_pointer"
                        } else {
                            "json_equals"
                        }
                    ),
                    || "`json_pointer` and `json_equals` go together".to_string(),
                );
                if let Some(h) = &self.headers {
                    for (k, v) in h {
                        let ok = !k.is_empty()
                            && k.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
                            && !v.contains(['\r', '\n']);
                        p.check(ok, format!("{field}.headers.{k}"), || {
                            format!("{k:?}: {v:?} is not a valid header")
                        });
                    }
                }
            }
            CheckKind::Tcp => {
                need(p, self.address.is_some(), "address");
                p.check(
                    self.expect.as_ref().is_none_or(|e| !e.is_empty()),
                    format!("{field}.expect"),
                    || "is empty".to_string(),
                );
            }
            CheckKind::Tls => {
                need(p, self.address.is_some(), "address");
                if let Some(d) = self.min_days {
                    p.check(d <= 3650, format!("{field}.min_days"), || {
                        format!("must be at most 3650, got {d}")
                    });
                }
            }
            CheckKind::Process => {
                self.process_selector().validate_selector(field, p);
                if let (Some(lo), Some(hi)) = (self.min_count, self.max_count) {
                    p.check(lo <= hi, format!("{field}.max_count"), || {
                        format!("{hi} is below min_count ({lo})")
                    });
                }
                if let Some(c) = self.max_cpu_cores {
                    p.check(
                        c.is_finite() && c > 0.0,
                        format!("{field}.max_cpu_cores"),
                        || format!("must be above 0, got {c}"),
                    );
                }
            }
            CheckKind::Program => match &self.argv {
                None => need(p, false, "argv"),
                Some(argv) => {
                    if let Some(why) = crate::action::argv_problem(argv) {
                        p.push(format!("{field}.argv"), why);
                    }
                }
            },
            CheckKind::Filesystem => {
                need(p, self.mount.is_some(), "mount");
                if let Some(m) = &self.mount {
                    p.check(m.is_absolute(), format!("{field}.mount"), || {
                        format!("{} is not an absolute path", m.display())
                    });
                }
                ratio(p, "max_used_ratio", self.max_used_ratio);
                ratio(p, "max_inodes_ratio", self.max_inodes_ratio);
                p.check(
                    self.max_used_ratio.is_some()
                        || self.max_inodes_ratio.is_some()
                        || self.writable == Some(true),
                    field.to_string(),
                    || "a filesystem check needs `max_used_ratio`, `max_inodes_ratio` or `writable = true`".to_string(),
                );
            }
            CheckKind::Series => {
                need(p, self.series.is_some(), "series");
                p.check(
                    self.above.is_some() || self.below.is_some(),
                    field.to_string(),
                    || "a series check needs `above` or `below`".to_string(),
                );
                for (name, v) in [("above", self.above), ("below", self.below)] {
                    if let Some(v) = v {
                        p.check(v.is_finite(), format!("{field}.{name}"), || {
                            format!("must be a number, got {v}")
                        });
                    }
                }
            }
            CheckKind::Container => {
                need(p, self.container.is_some(), "container");
            }
        }
    }
}

/// A `[[probes]]` entry as the `http` check it now is.
pub fn check_of_probe(p: &ProbeConfig, settings: &ProbeSettings) -> CheckConfig {
    let mut c = CheckConfig::new(p.name.clone(), CheckKind::Http);
    c.url = Some(p.url.clone());
    c.method = Some(p.method);
    c.expect_status = Some(p.expect_status);
    c.body_contains = p.body_contains.clone();
    c.json_pointer = p.json_pointer.clone();
    c.json_equals = p.json_equals.clone();
    c.tls_verify = Some(p.tls_verify);
    c.interval = Some(p.interval.unwrap_or(settings.interval));
    c.timeout = Some(p.timeout.unwrap_or(settings.timeout));
    // The breaker's failures in a row now decide failing, as they decided
    // "down" before.
    c.failure_threshold = settings.breaker_failures;
    c
}

/// A `[[processes]]` entry as the `process` check it now is (at least one
/// matching process), run on the host's collection interval.
pub fn check_of_process(p: &ProcessConfig, interval: Interval) -> CheckConfig {
    let mut c = CheckConfig::new(p.name.clone(), CheckKind::Process);
    c.comm = p.comm.clone();
    c.cmdline = p.cmdline.clone();
    c.pidfile = p.pidfile.clone();
    c.interval = Some(interval);
    c
}

/// Checks every check (the explicit ones at `checks.N`, the ones made of
/// probes and processes at their own place) and their dependencies.
pub(super) fn validate_checks(
    checks: &[CheckConfig],
    legacy: &[(String, CheckConfig)],
    settings: &ProbeSettings,
    p: &mut Problems,
) {
    let mut names = HashSet::new();
    for (i, c) in checks.iter().enumerate() {
        let field = format!("checks.{i}");
        c.validate(&field, settings, p);
        p.check(
            names.insert(c.name.as_str()),
            format!("{field}.name"),
            || format!("the name {:?} is used twice", c.name.as_str()),
        );
    }
    for (field, c) in legacy {
        p.check(names.insert(c.name.as_str()), format!("{field}.name"), || {
            format!(
                "the name {:?} is already a check's; probes, processes and checks share one set of names",
                c.name.as_str()
            )
        });
    }
    let deps: Vec<(&str, Vec<String>)> = checks
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.depends_on.iter().map(|d| d.to_string()).collect(),
            )
        })
        .chain(legacy.iter().map(|(_, c)| (c.name.as_str(), Vec::new())))
        .collect();
    let index = |name: &str| checks.iter().position(|c| c.name.as_str() == name);
    if let Err(errors) = Dependencies::new(deps.iter().map(|(n, d)| (*n, d.as_slice()))) {
        for e in errors {
            match e {
                DependencyError::Unknown { check, missing } => {
                    let i = index(&check).unwrap_or(0);
                    let j = checks
                        .get(i)
                        .and_then(|c| c.depends_on.iter().position(|d| d.as_str() == missing))
                        .unwrap_or(0);
                    p.push(
                        format!("checks.{i}.depends_on.{j}"),
                        format!("{missing:?} is not the name of a check"),
                    );
                }
                DependencyError::Cycle { path } => {
                    let i = path.first().and_then(|n| index(n)).unwrap_or(0);
                    p.push(
                        format!("checks.{i}.depends_on"),
                        format!("the dependencies form a cycle: {}", path.join(" -> ")),
                    );
                }
            }
        }
    }
}
