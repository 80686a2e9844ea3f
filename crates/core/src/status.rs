//! The agent's status snapshot, as served by `GET /api/v1/status` and read by
//! `aegis status`. Plain data: the pipeline publishes it, the API serves it.

use serde::{Deserialize, Serialize};

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
}
