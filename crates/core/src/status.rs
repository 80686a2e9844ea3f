//! The agent's status snapshot, as served by `GET /api/v1/status` and read by
//! `aegis status`. Plain data: the pipeline publishes it, the API serves it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::severity::Severity;

/// Whether a source is doing its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Not collected yet.
    Starting,
    /// The last collection succeeded.
    Ok,
    /// The last collection partly failed (some files unreadable, say).
    Degraded,
    /// What the source reads is not there (no Docker socket, no systemd).
    Unavailable,
    /// The last collection failed.
    Failing,
}

/// Health of one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// The source's name (`host`, later `docker`, `http`...).
    pub name: String,
    /// Its state.
    pub state: SourceState,
    /// When it last finished a collection, Unix ms.
    pub last_collection_ms: Option<i64>,
    /// How long that collection took.
    pub last_duration_ms: Option<f64>,
    /// Collections done.
    pub collections: u64,
    /// Collections with an error.
    pub errors: u64,
    /// The last error, if the last collection had one.
    pub last_error: Option<String>,
    /// Observations emitted by the last collection.
    pub last_observations: usize,
    /// What it is connected to and doing, when there is more to say
    /// (`Podman 4.3.1 at unix:///run/podman/podman.sock; ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Fill level and drops of one bounded buffer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct BufferStatus {
    /// Items held.
    pub len: u64,
    /// Most items it may hold.
    pub capacity: u64,
    /// Items dropped because of the bound, since start.
    pub dropped: u64,
}

/// The in-memory history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct HistoryStatus {
    /// Series held, and the series bound.
    pub series: BufferStatus,
    /// Points held over all series; capacity is series bound x points bound.
    pub points: BufferStatus,
    /// Bound on points per series.
    pub max_points_per_series: u64,
    /// Bound on point age, seconds.
    pub max_age_seconds: u64,
    /// Oldest points dropped because a ring was full.
    pub evicted_full: u64,
    /// Points dropped for age.
    pub evicted_age: u64,
}

/// The SQLite store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StoreStatus {
    /// The file.
    pub path: String,
    /// Its size, including the write-ahead log.
    pub size_bytes: u64,
    /// Last successful commit, Unix ms.
    pub last_flush_ms: Option<i64>,
    /// Failed writes since start.
    pub write_errors: u64,
    /// Pending writes waiting for the store thread, and drops when it is full.
    pub queue: BufferStatus,
    /// Rows deleted by retention since start.
    pub retention_deleted_rows: u64,
    /// Whether the last commit failed for want of disk space (what waits
    /// is kept in memory and committed when space returns).
    #[serde(default)]
    pub disk_full: bool,
    /// Events (anomalies, healing records) waiting for a commit, and those
    /// lost because their bound was reached.
    #[serde(default)]
    pub events: BufferStatus,
    /// Healing records lost (counted among the lost events too).
    #[serde(default)]
    pub lost_records: u64,
}

/// Everything `GET /api/v1/status` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Status {
    /// The agent's version.
    pub version: String,
    /// Start time, Unix ms.
    pub started_ms: i64,
    /// Seconds since start.
    pub uptime_seconds: f64,
    /// When this snapshot was taken, Unix ms.
    pub updated_ms: i64,
    /// Collection interval, seconds.
    pub interval_seconds: f64,
    /// Each source.
    pub sources: Vec<SourceStatus>,
    /// The observation channel between sources and pipeline.
    pub channel: BufferStatus,
    /// Observations received by the pipeline since start.
    pub observations_total: u64,
    /// The in-memory history.
    pub history: HistoryStatus,
    /// The store.
    pub store: StoreStatus,
    /// Healing, when the engine runs.
    pub heal: Option<HealSummary>,
    /// Every check: state, since when, the last result (shared with the
    /// checks' own view: the status is published every second, and copying
    /// hundreds of checks each time was most of its cost).
    #[serde(default)]
    pub checks: std::sync::Arc<Vec<crate::check::CheckStatus>>,
    /// Alert delivery, when webhooks are configured.
    #[serde(default)]
    pub notify: Option<NotifySummary>,
    /// Panics caught in the agent's tasks since start.
    #[serde(default)]
    pub panics: u64,
    /// Log lines that could not be written (stderr closed) since start.
    #[serde(default)]
    pub log_lines_dropped: u64,
}

/// Alert delivery in numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NotifySummary {
    /// Posts delivered.
    pub delivered: u64,
    /// Posts given up after every attempt.
    pub failed: u64,
    /// Messages dropped (queue full, or beyond the pending bound).
    pub dropped: u64,
    /// Each receiver's figures.
    #[serde(default)]
    pub receivers: Vec<ReceiverSummary>,
}

/// One receiver's deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ReceiverSummary {
    /// Its name.
    pub name: String,
    /// Its kind (`alertmanager`, `slack`...).
    pub kind: String,
    /// Posts delivered.
    pub delivered: u64,
    /// Posts given up after every attempt.
    pub failed: u64,
    /// The last failure, if the last post failed.
    pub last_error: Option<String>,
}

/// The healing engine in numbers, for the status page and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HealSummary {
    /// Actions paused (API).
    pub paused: bool,
    /// Dry-run.
    pub dry_run: bool,
    /// Attempts running.
    pub in_flight: u32,
    /// Incidents being handled.
    pub open_incidents: u64,
    /// Breakers open now.
    pub breakers_open: u64,
    /// Breakers half-open now.
    pub breakers_half_open: u64,
    /// Records by (action, outcome) since start.
    pub outcomes: Vec<(String, String, u64)>,
    /// Skips by the guard's reason since start.
    pub skipped: Vec<(String, u64)>,
    /// Container labels that could not be used (and are ignored).
    #[serde(default)]
    pub label_problems: Vec<crate::autoheal::LabelProblem>,
}

/// One series in `GET /api/v1/series`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesSummary {
    /// Canonical name: `family` or `family/instance`.
    pub name: String,
    /// The metric family.
    pub family: String,
    /// The family's label name, if it has one.
    pub label: Option<String>,
    /// The instance (label value).
    pub instance: Option<String>,
    /// What the series measures.
    pub help: String,
    /// Points held in memory.
    pub points: usize,
    /// The newest point.
    pub last: Option<crate::ring::Point>,
    /// The detectors' verdict on the newest point.
    pub score: Option<SeriesScore>,
}

/// What the detectors say about a series' newest point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesScore {
    /// `1 - p`, in [0, 1]; 0 while warming up.
    pub value: f64,
    /// The calibrated tail probability.
    pub p: f64,
    /// `warming_up` or `ready`.
    pub state: String,
    /// Observations seen and needed, while warming up.
    pub warmup: Option<(u32, u32)>,
    /// How bad it would be.
    pub severity: Severity,
    /// The component with the smallest p.
    pub component: Option<String>,
    /// That component's explanation.
    pub explanation: Option<String>,
    /// Whether the daily profile is in use.
    pub seasonal: bool,
    /// The open anomaly on this series, if any.
    pub open_anomaly: Option<i64>,
}

/// One series with its points, for `GET /api/v1/series/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesDetail {
    /// The series.
    #[serde(flatten)]
    pub summary: SeriesSummary,
    /// Points at or after the requested time, oldest first. `v` is null
    /// where a counter reset left no rate.
    pub data: Vec<crate::ring::Point>,
}

/// The newest value of every series, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latest {
    /// Sorted by series, so each family's series are together.
    pub values: Vec<(crate::SeriesKey, f64)>,
    /// The newest anomaly score of every series that has one, sorted.
    pub scores: Vec<(crate::SeriesKey, f64)>,
    /// Anomalies open now.
    pub open_anomalies: usize,
}

/// An anomaly as stored and served by `GET /api/v1/anomalies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyRecord {
    /// Stable id.
    pub id: i64,
    /// When it opened, Unix ms.
    pub opened_ms: i64,
    /// When it closed, Unix ms; `None` while open.
    pub closed_ms: Option<i64>,
    /// The series it is about (canonical name).
    pub series: String,
    /// What the anomaly concerns (the series' instance, or `host`).
    pub target: Option<String>,
    /// Which detector component opened it (`spike`, `shift`, `forest`...).
    pub kind: String,
    /// How bad it is.
    pub severity: Severity,
    /// The score when it opened (`1 - p`).
    pub score: f64,
    /// What moved, in words.
    pub explanation: String,
    /// Values at the time: observed, expected, scale, p, and the worst score
    /// seen while open.
    pub detail: serde_json::Value,
    /// The anomaly whose incident this one belongs to (its own id when it
    /// is the cause; another's when it is that incident's evidence); `None`
    /// in records from before anomalies were grouped.
    #[serde(default)]
    pub cause: Option<i64>,
}

/// Which anomalies to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalyQuery {
    /// `Some(true)`: only open ones; `Some(false)`: only closed ones.
    pub open: Option<bool>,
    /// Only this series.
    pub series: Option<String>,
    /// Only anomalies opened at or after this time, Unix ms.
    pub since_ms: Option<i64>,
    /// Most rows returned (newest first).
    pub limit: u32,
}

/// One step of healing as stored and served by `GET /api/v1/actions`: a
/// decision, an attempt, a skip with the guard's reason, a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// Stable id (0 before it is stored).
    pub id: i64,
    /// When, Unix ms.
    pub at_ms: i64,
    /// The incident this belongs to (all records of one problem share it).
    pub incident: i64,
    /// The anomaly that started it, if an anomaly did.
    pub anomaly_id: Option<i64>,
    /// What was acted on (a container name, a Redis address, a unit...).
    pub target: String,
    /// The action (`container_restart`, `redis_flush`...) or `none`.
    pub action: String,
    /// What this step was, or how it ended.
    pub outcome: RecordOutcome,
    /// Why: the guard's reason, the error, the trigger.
    pub reason: String,
    /// Attempt number within its rung (1-based; 0 for decisions and verdicts).
    pub attempt: u32,
    /// How long the attempt took.
    pub duration_ms: Option<f64>,
    /// Anything else: the trigger, the rung, timings.
    pub detail: serde_json::Value,
}

/// Which healing records to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionQuery {
    /// Only this target.
    pub target: Option<String>,
    /// Only this incident.
    pub incident: Option<i64>,
    /// Only records at or after this time, Unix ms.
    pub since_ms: Option<i64>,
    /// Most rows (newest first).
    pub limit: u32,
}

/// One incident: an anomaly with the healing it caused, or a healing
/// started by a container event, with every record in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// `anomaly-ID` or `healing-ID`.
    pub id: String,
    /// When it started, Unix ms.
    pub started_ms: i64,
    /// When it ended (anomaly closed, or the last verdict), Unix ms.
    pub ended_ms: Option<i64>,
    /// What it concerns.
    pub target: String,
    /// How bad it is (healing incidents: `warning`).
    pub severity: Severity,
    /// Where it stands.
    pub status: IncidentStatus,
    /// One line.
    pub summary: String,
    /// The anomaly, for anomaly incidents.
    pub anomaly: Option<AnomalyRecord>,
    /// Anomalies that joined it as evidence (the same fault seen on other
    /// series), oldest first.
    #[serde(default)]
    pub evidence: Vec<AnomalyRecord>,
    /// Every healing record, oldest first.
    pub actions: Vec<ActionRecord>,
}

/// Which incidents to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentQuery {
    /// Started at or after, Unix ms.
    pub since_ms: Option<i64>,
    /// Started before, Unix ms.
    pub until_ms: Option<i64>,
    /// Only this target (exact) or series.
    pub target: Option<String>,
    /// Only at least this severe.
    pub min_severity: Option<Severity>,
    /// Only open (`Some(true)`) or ended (`Some(false)`) ones.
    pub open: Option<bool>,
    /// Page size.
    pub limit: u32,
    /// Incidents to skip (newest first), for the next page.
    pub offset: u32,
}

/// What a healing record says happened. Stored and served as its
/// snake-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordOutcome {
    /// A trigger matched a rule: an incident opened.
    Decided,
    /// A trigger matched while healing is disabled: nothing will be done.
    Ignored,
    /// A trigger that needs no new decision: the incident already handling
    /// the target, or a condition (blocked by a dependency, left to the
    /// container engine) that stops healing; the reason says which.
    Skipped,
    /// The guard let an attempt through and the action worked.
    Succeeded,
    /// The action ran against the target and failed (timeouts included).
    Failed,
    /// The action could not run for a reason that is not the target's
    /// (the executor is unavailable here).
    NotAttempted,
    /// Dry-run: everything allowed it, nothing was done.
    DryRun,
    /// Verified: the symptom went away within the verify window.
    Healed,
    /// Not verified: the symptom stayed.
    NotHealed,
    /// No rung left (or the guard stopped healing for good): a person is told.
    GaveUp,
    /// An alert was delivered.
    Alerted,
    /// The check is failing again and healing waits for its back-off.
    BackingOff,
    /// An anomaly on the same target joined this incident as evidence.
    Joined,
}

impl RecordOutcome {
    /// Every outcome.
    pub const ALL: [RecordOutcome; 13] = [
        RecordOutcome::Decided,
        RecordOutcome::Ignored,
        RecordOutcome::Skipped,
        RecordOutcome::Succeeded,
        RecordOutcome::Failed,
        RecordOutcome::NotAttempted,
        RecordOutcome::DryRun,
        RecordOutcome::Healed,
        RecordOutcome::NotHealed,
        RecordOutcome::GaveUp,
        RecordOutcome::Alerted,
        RecordOutcome::BackingOff,
        RecordOutcome::Joined,
    ];

    /// Snake-case name (stored, served, a metric label).
    pub fn as_str(&self) -> &'static str {
        match self {
            RecordOutcome::Decided => "decided",
            RecordOutcome::Ignored => "ignored",
            RecordOutcome::Skipped => "skipped",
            RecordOutcome::Succeeded => "succeeded",
            RecordOutcome::Failed => "failed",
            RecordOutcome::NotAttempted => "not_attempted",
            RecordOutcome::DryRun => "dry_run",
            RecordOutcome::Healed => "healed",
            RecordOutcome::NotHealed => "not_healed",
            RecordOutcome::GaveUp => "gave_up",
            RecordOutcome::Alerted => "alerted",
            RecordOutcome::BackingOff => "backing_off",
            RecordOutcome::Joined => "joined",
        }
    }

    /// Whether this is an attempt the guard let through (it counts against
    /// cooldowns, rate limits and the budget).
    pub fn is_attempt(&self) -> bool {
        matches!(
            self,
            RecordOutcome::Succeeded | RecordOutcome::Failed | RecordOutcome::NotAttempted
        )
    }
}

impl fmt::Display for RecordOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for RecordOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecordOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a record outcome"))
    }
}

/// Where an incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Still being handled (or its anomaly is still open).
    Open,
    /// Verified healed.
    Healed,
    /// The last action did not heal it.
    NotHealed,
    /// Healing gave up; a person was told.
    GaveUp,
    /// Ended without healing (an anomaly that closed by itself).
    Closed,
    /// The guard skipped it (paused, maintenance...).
    Skipped,
    /// Dry-run: what would have been done was recorded.
    DryRun,
}

impl IncidentStatus {
    /// Snake-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Healed => "healed",
            IncidentStatus::NotHealed => "not_healed",
            IncidentStatus::GaveUp => "gave_up",
            IncidentStatus::Closed => "closed",
            IncidentStatus::Skipped => "skipped",
            IncidentStatus::DryRun => "dry_run",
        }
    }
}

impl fmt::Display for IncidentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}
