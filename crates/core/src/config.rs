//! The agent's configuration: typed, checked at the boundary, with a default
//! for every field so no file is needed.
//!
//! Parsing happens in two steps, raw then validated: serde reads the TOML
//! into [`Config`] (unknown keys, wrong types and bad durations or sizes are
//! refused there), then [`Config::validate`] checks what types cannot (ranges,
//! a public listen address without a token). Every problem carries the line
//! and the dotted field name, and all problems of a file are reported at
//! once, not only the first.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as text with a unit: `"500ms"`, `"10s"`, `"5m"`, `"7d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval(pub Duration);

impl FromStr for Interval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim())
            .map(Interval)
            .map_err(|e| format!("invalid duration {s:?} ({e}); write a number and a unit, like \"10s\", \"5m\" or \"7d\""))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Interval;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration with a unit, like \"10s\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Interval, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Interval, E> {
                Err(E::custom(format!(
                    "a bare number ({n}) is ambiguous as a duration; write it with a unit, like \"{n}s\""
                )))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A size in bytes, written as a number of bytes or text with a unit:
/// `"512MiB"`, `"1GB"`, `"64KiB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad =
            || format!("invalid size {s:?}; write bytes with a unit, like \"512MiB\" or \"2GB\"");
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1_000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            "TB" => 1_000_000_000_000,
            "TiB" => 1 << 40,
            _ => return Err(bad()),
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(bad)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size, like \"512MiB\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ByteSize, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<ByteSize, E> {
                u64::try_from(n)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable on a terminal, JSON lines otherwise.
    #[default]
    Auto,
    /// JSON lines.
    Json,
    /// Human-readable text.
    Text,
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Process-wide settings.
    pub agent: AgentConfig,
    /// How and how often sources collect.
    pub collect: CollectConfig,
    /// In-memory history and the observation channel.
    pub history: HistoryConfig,
    /// The SQLite store.
    pub store: StoreConfig,
    /// Anomaly detection.
    pub detect: DetectConfig,
    /// The Docker source.
    pub docker: DockerConfig,
    /// Healing: policies and the guard around every action.
    pub heal: HealConfig,
    /// Settings shared by every HTTP probe.
    pub probe: ProbeSettings,
    /// HTTP endpoints to probe.
    pub probes: Vec<ProbeConfig>,
    /// Processes to watch.
    pub processes: Vec<ProcessConfig>,
    /// Where anomalies are announced.
    pub notify: NotifyConfig,
    /// The HTTP API and dashboard.
    pub api: ApiConfig,
    /// Logging.
    pub log: LogConfig,
}

/// `[agent]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Where the agent keeps its state (the SQLite file). Unset: the
    /// platform's state directory (`$XDG_STATE_HOME/aegis`, else
    /// `~/.local/state/aegis`).
    pub state_dir: Option<PathBuf>,
    /// How long shutdown may take before remaining tasks are abandoned.
    pub shutdown_timeout: Interval,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            state_dir: None,
            shutdown_timeout: Interval(Duration::from_secs(5)),
        }
    }
}

/// `[collect]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectConfig {
    /// How often the host source collects.
    pub interval: Interval,
    /// Where the host source reads procfs (a fake tree in tests).
    pub proc_root: PathBuf,
    /// Network interfaces not to report (exact names).
    pub exclude_interfaces: Vec<String>,
    /// Mount points not to report (exact paths).
    pub exclude_mountpoints: Vec<String>,
}

impl Default for CollectConfig {
    fn default() -> Self {
        Self {
            interval: Interval(Duration::from_secs(5)),
            proc_root: PathBuf::from("/proc"),
            exclude_interfaces: Vec::new(),
            exclude_mountpoints: Vec::new(),
        }
    }
}

/// `[history]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Most points kept per series in memory (oldest dropped first).
    pub max_points_per_series: usize,
    /// Oldest point kept in memory.
    pub max_age: Interval,
    /// Most series kept in memory (new series beyond it are refused).
    pub max_series: usize,
    /// Capacity of the observation channel between sources and the pipeline
    /// (newest observations are shed when it is full).
    pub channel_capacity: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            max_points_per_series: 720,
            max_age: Interval(Duration::from_secs(3600)),
            max_series: 10_000,
            channel_capacity: 8_192,
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The SQLite file. Unset: `aegis.db` in the state directory.
    pub path: Option<PathBuf>,
    /// How often pending writes are committed; a crash loses at most this much.
    pub flush_interval: Interval,
    /// Rows older than this are deleted.
    pub retention_max_age: Interval,
    /// The oldest rows are deleted while the file is larger than this.
    pub retention_max_size: ByteSize,
    /// How often retention runs.
    pub retention_interval: Interval,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: None,
            flush_interval: Interval(Duration::from_secs(2)),
            retention_max_age: Interval(Duration::from_secs(7 * 24 * 3600)),
            retention_max_size: ByteSize(256 << 20),
            retention_interval: Interval(Duration::from_secs(300)),
        }
    }
}

/// `[detect]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Whether series are scored at all.
    pub enabled: bool,
    /// Observations per series before anything is judged.
    pub warmup: u32,
    /// Further observations before the spike, shift and variance components
    /// judge (their calibration needs to see the series' normal excursions).
    pub settle: u32,
    /// An anomaly opens when a series' tail probability falls to this.
    pub alert_p: f64,
    /// An anomaly closes after this many observations in a row with p above 1e-3.
    pub close_after: u32,
    /// Whether the isolation forest scores the host's combined figures.
    pub forest: bool,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            warmup: 60,
            settle: 600,
            alert_p: 1e-5,
            close_after: 10,
            forest: true,
        }
    }
}

/// `[docker]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConfig {
    /// Watch Docker (when an engine answers at `DOCKER_HOST` or the local socket).
    pub enabled: bool,
    /// How often containers are polled (events arrive at once regardless).
    pub interval: Interval,
    /// The label that opts a container in to healing (`LABEL=true`).
    pub autoheal_label: String,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Interval(Duration::from_secs(5)),
            autoheal_label: "aegis.autoheal".to_string(),
        }
    }
}

/// A weekly maintenance window (UTC) during which no action is taken.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// Days: `mon`..`sun`; empty means every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// Start, `HH:MM` UTC.
    pub start: String,
    /// End, `HH:MM` UTC (before `start` to cross midnight).
    pub end: String,
}

/// What starts a healing rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleTrigger {
    /// Docker's health check turned `unhealthy`.
    ContainerUnhealthy,
    /// The container's process exited on its own with a non-zero code (not
    /// an operator's stop).
    ContainerDied,
    /// The kernel killed the container for memory.
    ContainerOom,
    /// An anomaly opened on a series.
    Anomaly,
}

/// A healing rule: what it reacts to and its ladder of actions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A name for logs and records.
    pub name: String,
    /// What starts it.
    pub on: RuleTrigger,
    /// Container name pattern (`*` matches anything), for container triggers.
    #[serde(default)]
    pub container: Option<String>,
    /// Container label `key=value` that must be present.
    #[serde(default)]
    pub label: Option<String>,
    /// Series name pattern (`*` wildcard), for anomaly triggers.
    #[serde(default)]
    pub series: Option<String>,
    /// Only anomalies opened by this component (`spike`, `shift`, `forest`...).
    #[serde(default)]
    pub component: Option<String>,
    /// Only anomalies at least this severe (`warning`, `critical`).
    #[serde(default)]
    pub min_severity: Option<String>,
    /// The escalation ladder: tried in order until one is verified to heal.
    pub actions: Vec<crate::action::ActionSpec>,
}

/// `[heal]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealConfig {
    /// Take actions at all.
    pub enabled: bool,
    /// Decide and record, but do nothing.
    pub dry_run: bool,
    /// Least time between two actions on one target.
    pub cooldown: Interval,
    /// At most `rate_max` actions per target within `rate_window`; then stop
    /// and alert.
    pub rate_max: u32,
    /// See `rate_max`.
    pub rate_window: Interval,
    /// At most `budget_max` actions on the whole host within `budget_window`.
    pub budget_max: u32,
    /// See `budget_max`.
    pub budget_window: Interval,
    /// Actions running at once.
    pub max_concurrent: u32,
    /// Time allowed to one attempt.
    pub attempt_timeout: Interval,
    /// Retries of a failed attempt (with jittered exponential backoff).
    pub retries: u32,
    /// First retry delay; doubles each retry.
    pub retry_backoff: Interval,
    /// How long the engine watches for recovery after an action.
    pub verify_window: Interval,
    /// Consecutive failures that open a target's breaker.
    pub breaker_failures: u32,
    /// First breaker cooldown; doubles with each trip.
    pub breaker_cooldown: Interval,
    /// Longest breaker cooldown.
    pub breaker_max_cooldown: Interval,
    /// Process names never signalled.
    pub deny_processes: Vec<String>,
    /// Where a give-up (or a rate-limited target) is told, if anywhere.
    pub alert_webhook: Option<crate::action::Webhook>,
    /// Windows in which no action is taken.
    pub maintenance: Vec<MaintenanceConfig>,
    /// Rules; with none, opted-in containers that turn unhealthy, die or
    /// are OOM-killed are restarted.
    pub rules: Vec<RuleConfig>,
}

impl Default for HealConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dry_run: false,
            cooldown: Interval(Duration::from_secs(30)),
            rate_max: 3,
            rate_window: Interval(Duration::from_secs(600)),
            budget_max: 20,
            budget_window: Interval(Duration::from_secs(3600)),
            max_concurrent: 4,
            attempt_timeout: Interval(Duration::from_secs(30)),
            retries: 1,
            retry_backoff: Interval(Duration::from_secs(1)),
            verify_window: Interval(Duration::from_secs(60)),
            breaker_failures: 3,
            breaker_cooldown: Interval(Duration::from_secs(30)),
            breaker_max_cooldown: Interval(Duration::from_secs(1800)),
            deny_processes: ["init", "systemd", "sshd", "dockerd", "containerd", "aegis"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            alert_webhook: None,
            maintenance: Vec::new(),
            rules: Vec::new(),
        }
    }
}

/// `[probe]`: settings shared by every endpoint probe.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeSettings {
    /// Probes in flight at once, over all endpoints.
    pub max_concurrent: u32,
    /// Default interval between two probes of one endpoint.
    pub interval: Interval,
    /// Default timeout of one probe.
    pub timeout: Interval,
    /// Consecutive failures that open an endpoint's breaker (it then rests
    /// and is probed again after a cooldown that grows).
    pub breaker_failures: u32,
    /// First breaker cooldown.
    pub breaker_cooldown: Interval,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            max_concurrent: 32,
            interval: Interval(Duration::from_secs(10)),
            timeout: Interval(Duration::from_secs(5)),
            breaker_failures: 3,
            breaker_cooldown: Interval(Duration::from_secs(30)),
        }
    }
}

/// `[[probes]]`: one HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// A short name (the series' instance).
    pub name: String,
    /// `http://` or `https://` URL.
    pub url: String,
    /// `GET`, `HEAD` or `POST`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Accepted status codes: `"200-399"` or `"204"`.
    #[serde(default = "default_status")]
    pub expect_status: String,
    /// The body must contain this text.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// A JSON pointer (`/status`) into the body...
    #[serde(default)]
    pub json_pointer: Option<String>,
    /// ...whose value, as text, must equal this.
    #[serde(default)]
    pub json_equals: Option<String>,
    /// Overrides `probe.timeout`.
    #[serde(default)]
    pub timeout: Option<Interval>,
    /// Overrides `probe.interval`.
    #[serde(default)]
    pub interval: Option<Interval>,
    /// Verify TLS certificates (on unless turned off here).
    #[serde(default = "default_true")]
    pub tls_verify: bool,
}

fn default_method() -> String {
    "GET".into()
}

fn default_status() -> String {
    "200-399".into()
}

fn default_true() -> bool {
    true
}

/// Parses `"200-399"` or `"204"`.
pub fn parse_status_range(text: &str) -> Option<(u16, u16)> {
    let (lo, hi) = match text.trim().split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let v = text.trim().parse().ok()?;
            (v, v)
        }
    };
    ((100..=599).contains(&lo) && (100..=599).contains(&hi) && lo <= hi).then_some((lo, hi))
}

/// `[[processes]]`: a process to watch, found by exactly one of `comm`,
/// `cmdline` or `pidfile`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// A short name (the series' instance).
    pub name: String,
    /// Exact command name (`/proc/PID/comm`).
    #[serde(default)]
    pub comm: Option<String>,
    /// Pattern over the command line (`*` wildcard).
    #[serde(default)]
    pub cmdline: Option<String>,
    /// A pidfile naming the process.
    #[serde(default)]
    pub pidfile: Option<PathBuf>,
}

/// `[notify]`: anomalies posted as Alertmanager alerts (firing, then
/// resolved) to webhooks, Alertmanager's `/api/v2/alerts` among them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Receivers, e.g. `[{ url = "http://127.0.0.1:9093/api/v2/alerts" }]`.
    pub webhooks: Vec<crate::action::Webhook>,
    /// Only anomalies at least this severe (`info`, `warning`, `critical`).
    pub min_severity: String,
    /// Alerts arriving within this window are sent together.
    pub group_wait: Interval,
    /// At most this many posts per receiver per minute; the rest wait and
    /// are merged into the next post.
    pub max_posts_per_minute: u32,
    /// Delivery attempts per post (with exponential backoff).
    pub attempts: u32,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            min_severity: "warning".into(),
            group_wait: Interval(Duration::from_secs(5)),
            max_posts_per_minute: 6,
            attempts: 5,
        }
    }
}

/// Parses `HH:MM` into minutes after midnight.
pub fn parse_hhmm(text: &str) -> Option<u16> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// Parses a day name (`mon`, `monday`, ...) into 0 = Monday .. 6 = Sunday.
pub fn parse_day(text: &str) -> Option<u8> {
    let t = text.trim().to_ascii_lowercase();
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .position(|d| t.starts_with(d))
        .map(|i| i as u8)
}

/// `*`-wildcard match (the only metacharacter).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

/// The API's default address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9477";

/// `[api]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address the API and dashboard listen on.
    pub listen: SocketAddr,
    /// Bearer token for state-changing requests (and reads, if
    /// `read_requires_token`). Required to listen on a non-loopback address.
    pub token: Option<String>,
    /// Whether reading also needs the token.
    pub read_requires_token: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9477))),
            token: None,
            read_requires_token: false,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `aegis=debug,info`...
    pub level: String,
    /// `auto`, `json` or `text`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_string(),
            format: LogFormat::Auto,
        }
    }
}

/// One thing wrong in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when the problem is at a place in the file.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// Dotted path of the field, e.g. `collect.interval`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Everything wrong with one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when the text came from one.
    pub file: Option<PathBuf>,
    /// Each problem found, in file order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self
            .file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<config>".to_string());
        let n = self.problems.len();
        write!(
            f,
            "{file}: {n} problem{} in the configuration",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {file}")?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
                if let Some(col) = p.column {
                    write!(f, ":{col}")?;
                }
            }
            if p.field.is_empty() {
                write!(f, ": {}", p.message)?;
            } else {
                write!(f, ": `{}`: {}", p.field, p.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and checks a file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            problems: vec![Problem {
                line: None,
                column: None,
                field: String::new(),
                message: format!("cannot read the file: {e}"),
            }],
        })?;
        Self::from_toml(&text).map_err(|mut e| {
            e.file = Some(path.to_path_buf());
            e
        })
    }

    /// Parses and checks TOML text, reporting every problem at once.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        // serde stops at the first error. To report them all, each faulty
        // entry is blanked out (bytes replaced by spaces, newlines kept, so
        // every offset and line number stays true) and parsing is retried.
        let mut work = text.to_string();
        let parsed = loop {
            match toml::from_str::<Config>(&work) {
                Ok(cfg) => break Some(cfg),
                Err(e) => {
                    let span = e.span();
                    let entry = span.as_ref().and_then(|s| entry_at(&work, s.start));
                    let (line, column) = match &span {
                        Some(s) => line_col(text, s.start),
                        None => (None, None),
                    };
                    problems.push(Problem {
                        line,
                        column,
                        field: entry.as_ref().map(|e| e.path.join(".")).unwrap_or_default(),
                        message: e.message().trim().to_string(),
                    });
                    match entry {
                        Some(entry) if problems.len() < 64 => blank(&mut work, entry.range),
                        _ => break None,
                    }
                }
            }
        };
        match parsed {
            Some(cfg) if problems.is_empty() => {
                let semantic = cfg.validate();
                if semantic.is_empty() {
                    return Ok(cfg);
                }
                problems.extend(semantic.into_iter().map(|(field, message)| {
                    let (line, column) = locate(text, &field)
                        .map(|start| line_col(text, start))
                        .unwrap_or((None, None));
                    Problem {
                        line,
                        column,
                        field,
                        message,
                    }
                }));
            }
            _ => {}
        }
        problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        Err(ConfigError {
            file: None,
            problems,
        })
    }

    /// Checks what types alone cannot. Returns `(field, message)` pairs.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut check = |ok: bool, field: &str, msg: String| {
            if !ok {
                out.push((field.to_string(), msg));
            }
        };
        let c = &self.collect;
        check(
            c.interval.0 >= Duration::from_millis(100) && c.interval.0 <= Duration::from_secs(3600),
            "collect.interval",
            format!("must be between 100ms and 1h, got {}", c.interval),
        );
        let h = &self.history;
        check(
            (1..=1_000_000).contains(&h.max_points_per_series),
            "history.max_points_per_series",
            format!(
                "must be between 1 and 1000000, got {}",
                h.max_points_per_series
            ),
        );
        check(
            (1..=1_000_000).contains(&h.max_series),
            "history.max_series",
            format!("must be between 1 and 1000000, got {}", h.max_series),
        );
        check(
            (16..=1_000_000).contains(&h.channel_capacity),
            "history.channel_capacity",
            format!("must be between 16 and 1000000, got {}", h.channel_capacity),
        );
        check(
            h.max_age.0 >= Duration::from_secs(1),
            "history.max_age",
            format!("must be at least 1s, got {}", h.max_age),
        );
        let s = &self.store;
        check(
            s.flush_interval.0 >= Duration::from_millis(100)
                && s.flush_interval.0 <= Duration::from_secs(60),
            "store.flush_interval",
            format!("must be between 100ms and 60s, got {}", s.flush_interval),
        );
        check(
            s.retention_max_age.0 >= Duration::from_secs(60),
            "store.retention_max_age",
            format!("must be at least 1m, got {}", s.retention_max_age),
        );
        check(
            s.retention_max_size.0 >= 1 << 20,
            "store.retention_max_size",
            format!("must be at least 1MiB, got {}", s.retention_max_size),
        );
        check(
            s.retention_interval.0 >= Duration::from_secs(1),
            "store.retention_interval",
            format!("must be at least 1s, got {}", s.retention_interval),
        );
        check(
            self.agent.shutdown_timeout.0 >= Duration::from_millis(100)
                && self.agent.shutdown_timeout.0 <= Duration::from_secs(300),
            "agent.shutdown_timeout",
            format!(
                "must be between 100ms and 5m, got {}",
                self.agent.shutdown_timeout
            ),
        );
        let d = &self.detect;
        check(
            (10..=100_000).contains(&d.warmup),
            "detect.warmup",
            format!("must be between 10 and 100000, got {}", d.warmup),
        );
        check(
            d.settle <= 1_000_000,
            "detect.settle",
            format!("must be at most 1000000, got {}", d.settle),
        );
        check(
            d.alert_p > 0.0 && d.alert_p <= 0.01,
            "detect.alert_p",
            format!("must be above 0 and at most 0.01, got {}", d.alert_p),
        );
        check(
            (1..=10_000).contains(&d.close_after),
            "detect.close_after",
            format!("must be between 1 and 10000, got {}", d.close_after),
        );
        let h = &self.heal;
        check(
            h.rate_max >= 1,
            "heal.rate_max",
            "must be at least 1".to_string(),
        );
        check(
            h.budget_max >= 1,
            "heal.budget_max",
            "must be at least 1".to_string(),
        );
        check(
            (1..=64).contains(&h.max_concurrent),
            "heal.max_concurrent",
            format!("must be between 1 and 64, got {}", h.max_concurrent),
        );
        check(
            h.retries <= 10,
            "heal.retries",
            format!("must be at most 10, got {}", h.retries),
        );
        check(
            h.breaker_failures >= 1,
            "heal.breaker_failures",
            "must be at least 1".to_string(),
        );
        check(
            h.attempt_timeout.0 >= Duration::from_millis(100),
            "heal.attempt_timeout",
            format!("must be at least 100ms, got {}", h.attempt_timeout),
        );
        for (i, w) in h.maintenance.iter().enumerate() {
            let field = format!("heal.maintenance.{i}");
            check(
                parse_hhmm(&w.start).is_some(),
                &field,
                format!("start {:?} is not HH:MM", w.start),
            );
            check(
                parse_hhmm(&w.end).is_some(),
                &field,
                format!("end {:?} is not HH:MM", w.end),
            );
            for d in &w.days {
                check(
                    parse_day(d).is_some(),
                    &field,
                    format!("{d:?} is not a day (mon..sun)"),
                );
            }
        }
        for (i, r) in h.rules.iter().enumerate() {
            let field = format!("heal.rules.{i}");
            check(
                !r.actions.is_empty(),
                &field,
                format!("rule {:?} has no actions", r.name),
            );
            if let Some(label) = &r.label {
                check(
                    label.contains('='),
                    &field,
                    format!("label {label:?} must be key=value"),
                );
            }
            if let Some(sev) = &r.min_severity {
                check(
                    ["info", "warning", "critical"].contains(&sev.as_str()),
                    &field,
                    format!("min_severity {sev:?} must be info, warning or critical"),
                );
            }
            let container_trigger = r.on != RuleTrigger::Anomaly;
            check(
                !(container_trigger && (r.series.is_some() || r.component.is_some())),
                &field,
                "`series` and `component` only apply to `on = \"anomaly\"`".to_string(),
            );
        }
        let p = &self.probe;
        check(
            (1..=1024).contains(&p.max_concurrent),
            "probe.max_concurrent",
            format!("must be between 1 and 1024, got {}", p.max_concurrent),
        );
        check(
            p.breaker_failures >= 1,
            "probe.breaker_failures",
            "must be at least 1".to_string(),
        );
        let mut names = std::collections::HashSet::new();
        for (i, pr) in self.probes.iter().enumerate() {
            let field = format!("probes.{i}");
            check(
                !pr.name.trim().is_empty(),
                &field,
                "`name` is empty".to_string(),
            );
            check(
                names.insert(pr.name.clone()),
                &field,
                format!("the name {:?} is used twice", pr.name),
            );
            check(
                pr.url.starts_with("http://") || pr.url.starts_with("https://"),
                &field,
                format!("url {:?} must start with http:// or https://", pr.url),
            );
            check(
                ["GET", "HEAD", "POST"].contains(&pr.method.as_str()),
                &field,
                format!("method {:?} must be GET, HEAD or POST", pr.method),
            );
            check(
                parse_status_range(&pr.expect_status).is_some(),
                &field,
                format!(
                    "expect_status {:?} must be like \"200-399\" or \"204\"",
                    pr.expect_status
                ),
            );
            check(
                pr.json_pointer.is_some() == pr.json_equals.is_some(),
                &field,
                "`json_pointer` and `json_equals` go together".to_string(),
            );
            let timeout = pr.timeout.unwrap_or(p.timeout).0;
            check(
                timeout >= Duration::from_millis(10) && timeout <= Duration::from_secs(300),
                &field,
                format!("timeout must be between 10ms and 5m, got {timeout:?}"),
            );
            let interval = pr.interval.unwrap_or(p.interval).0;
            check(
                interval >= Duration::from_millis(100),
                &field,
                format!("interval must be at least 100ms, got {interval:?}"),
            );
        }
        let mut names = std::collections::HashSet::new();
        for (i, pr) in self.processes.iter().enumerate() {
            let field = format!("processes.{i}");
            let ways = usize::from(pr.comm.is_some())
                + usize::from(pr.cmdline.is_some())
                + usize::from(pr.pidfile.is_some());
            check(
                ways == 1,
                &field,
                format!(
                    "{:?} needs exactly one of comm, cmdline or pidfile",
                    pr.name
                ),
            );
            check(
                names.insert(pr.name.clone()),
                &field,
                format!("the name {:?} is used twice", pr.name),
            );
        }
        let n = &self.notify;
        check(
            ["info", "warning", "critical"].contains(&n.min_severity.as_str()),
            "notify.min_severity",
            format!(
                "must be info, warning or critical, got {:?}",
                n.min_severity
            ),
        );
        check(
            n.max_posts_per_minute >= 1,
            "notify.max_posts_per_minute",
            "must be at least 1".to_string(),
        );
        check(
            (1..=20).contains(&n.attempts),
            "notify.attempts",
            format!("must be between 1 and 20, got {}", n.attempts),
        );
        for (i, w) in n.webhooks.iter().enumerate() {
            check(
                w.url.starts_with("http://") || w.url.starts_with("https://"),
                &format!("notify.webhooks.{i}"),
                format!("url {:?} must start with http:// or https://", w.url),
            );
        }
        let a = &self.api;
        if let Some(token) = &a.token {
            check(
                token.len() >= 16,
                "api.token",
                "must be at least 16 characters long".to_string(),
            );
        }
        check(
            a.listen.ip().is_loopback() || a.token.is_some(),
            "api.listen",
            format!(
                "{} is not a loopback address; set api.token before exposing the API",
                a.listen
            ),
        );
        check(
            !a.read_requires_token || a.token.is_some(),
            "api.read_requires_token",
            "is true but api.token is not set".to_string(),
        );
        out
    }
}

/// A key/value entry of the document and the bytes it spans.
struct Entry {
    path: Vec<String>,
    range: Range<usize>,
}

/// The innermost entry whose bytes contain `offset`.
fn entry_at(text: &str, offset: usize) -> Option<Entry> {
    let doc = toml_edit::Document::parse(text).ok()?;
    let mut entries = Vec::new();
    collect_entries(doc.as_table(), &mut Vec::new(), &mut entries);
    entries
        .into_iter()
        .filter(|e| e.range.contains(&offset))
        .min_by_key(|e| e.range.len())
}

/// The byte offset where the entry at dotted `field` starts, if written.
fn locate(text: &str, field: &str) -> Option<usize> {
    let doc = toml_edit::Document::parse(text).ok()?;
    let mut entries = Vec::new();
    collect_entries(doc.as_table(), &mut Vec::new(), &mut entries);
    entries
        .into_iter()
        .find(|e| e.path.join(".") == field)
        .map(|e| e.range.start)
}

fn collect_entries(
    table: &toml_edit::Table,
    path: &mut Vec<String>,
    out: &mut Vec<Entry>,
) -> Option<Range<usize>> {
    let mut whole = table.span();
    for (name, _) in table.iter() {
        let Some((key, item)) = table.get_key_value(name) else {
            continue;
        };
        path.push(name.to_string());
        let range = match item {
            toml_edit::Item::Table(t) => collect_entries(t, path, out),
            toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => {
                for (inner, _) in t.iter() {
                    if let Some((k, v)) = t.get_key_value(inner) {
                        path.push(inner.to_string());
                        if let Some(r) = join(k.span(), v.span()) {
                            out.push(Entry {
                                path: path.clone(),
                                range: r,
                            });
                        }
                        path.pop();
                    }
                }
                join(key.span(), item.span())
            }
            toml_edit::Item::ArrayOfTables(a) => {
                let mut r = None;
                for t in a.iter() {
                    r = join(r, collect_entries(t, path, out));
                }
                r
            }
            _ => join(key.span(), item.span()),
        };
        if let Some(range) = range {
            out.push(Entry {
                path: path.clone(),
                range: range.clone(),
            });
            whole = join(whole, Some(range));
        }
        path.pop();
    }
    whole
}

fn join(a: Option<Range<usize>>, b: Option<Range<usize>>) -> Option<Range<usize>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.start.min(b.start)..a.end.max(b.end)),
        (a, b) => a.or(b),
    }
}

fn blank(text: &mut String, range: Range<usize>) {
    // One space per byte keeps every later offset, and so every line number, true.
    let Some(bytes) = text.as_bytes().get(range.clone()) else {
        return;
    };
    let spaces: String = bytes
        .iter()
        .map(|&b| if b == b'\n' { '\n' } else { ' ' })
        .collect();
    text.replace_range(range, &spaces);
}

fn line_col(text: &str, offset: usize) -> (Option<usize>, Option<usize>) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count() + 1);
    (Some(line), column)
}

/// A fully commented default configuration, as printed by `aegis init`.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_defaults() {
        assert_eq!(Config::from_toml(""), Ok(Config::default()));
    }

    #[test]
    fn the_commented_default_file_parses_to_the_defaults() {
        assert_eq!(Config::from_toml(DEFAULT_TOML), Ok(Config::default()));
    }

    #[test]
    fn the_default_file_shows_every_default_value() {
        // Uncommenting every `# key = value` line must still give the defaults:
        // the file documents the real values, not stale ones.
        let uncommented: String = DEFAULT_TOML
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.contains(" = ")
                        && !rest.starts_with("state_dir")
                        && !rest.starts_with("path")
                        && !rest.starts_with("token") =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(Config::from_toml(&uncommented), Ok(Config::default()));
    }

    #[test]
    fn durations_and_sizes_parse_with_units() {
        let cfg = Config::from_toml(
            "[collect]\ninterval = \"250ms\"\n[store]\nretention_max_size = \"2GiB\"\nretention_max_age = \"30d\"\n",
        )
        .expect("valid");
        assert_eq!(cfg.collect.interval.0, Duration::from_millis(250));
        assert_eq!(cfg.store.retention_max_size.0, 2 << 30);
        assert_eq!(
            cfg.store.retention_max_age.0,
            Duration::from_secs(30 * 86400)
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_line_and_field() {
        let text = "\
[collect]
intervall = \"5s\"

[history]
max_series = \"many\"

[store]
flush_interval = \"10 parsecs\"
";
        let err = Config::from_toml(text).expect_err("three problems");
        let got: Vec<(Option<usize>, &str)> = err
            .problems
            .iter()
            .map(|p| (p.line, p.field.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some(2), "collect.intervall"),
                (Some(5), "history.max_series"),
                (Some(8), "store.flush_interval"),
            ]
        );
        assert!(err.problems[0].message.contains("unknown field"), "{err}");
        assert!(err.problems[1].message.contains("invalid type"), "{err}");
        assert!(
            err.problems[2].message.contains("invalid duration"),
            "{err}"
        );
    }

    #[test]
    fn unknown_section_is_reported_once_with_its_line() {
        let err = Config::from_toml(
            "[collect]\ninterval = \"1s\"\n\n[colect]\ninterval = \"1s\"\nother = 3\n",
        )
        .expect_err("unknown table");
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].line, Some(4));
    }

    #[test]
    fn bare_number_duration_is_refused_with_a_hint() {
        let err = Config::from_toml("[collect]\ninterval = 5\n").expect_err("bare number");
        assert!(err.problems[0].message.contains("\"5s\""), "{err}");
    }

    #[test]
    fn semantic_problems_point_at_their_line() {
        let err = Config::from_toml(
            "[api]\nlisten = \"0.0.0.0:9477\"\n\n[collect]\ninterval = \"1ms\"\n",
        )
        .expect_err("public listen without token, tiny interval");
        let got: Vec<(Option<usize>, &str)> = err
            .problems
            .iter()
            .map(|p| (p.line, p.field.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![(Some(2), "api.listen"), (Some(5), "collect.interval")]
        );
    }

    #[test]
    fn syntax_error_is_reported_with_its_line() {
        let err =
            Config::from_toml("[collect]\ninterval = \"5s\n").expect_err("unterminated string");
        assert_eq!(err.problems[0].line, Some(2), "{err}");
    }

    #[test]
    fn display_names_file_line_and_field() {
        let mut err = Config::from_toml("[collect]\nintervall = \"5s\"\n").expect_err("unknown");
        err.file = Some(PathBuf::from("aegis.toml"));
        let text = err.to_string();
        assert!(
            text.contains("aegis.toml:2:1: `collect.intervall`: unknown field"),
            "{text}"
        );
    }

    #[test]
    fn byte_sizes() {
        assert_eq!("512MiB".parse::<ByteSize>(), Ok(ByteSize(512 << 20)));
        assert_eq!("1000".parse::<ByteSize>(), Ok(ByteSize(1000)));
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(256 << 20).to_string(), "256MiB");
    }
}
