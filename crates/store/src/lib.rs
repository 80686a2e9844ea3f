//! The SQLite store: one thread owns the connection and is the only writer.
//!
//! Other tasks hold a [`StoreHandle`] and send it work on a bounded queue:
//! batches of observations (folded into per-minute rollups and committed
//! every `flush_interval`, so a crash loses at most that much) and queries
//! (closures run on the store thread, answered on a oneshot). When the queue
//! is full, a batch is shed and counted rather than stalling the pipeline.
//!
//! The file is in WAL mode with `synchronous = NORMAL`: a killed process
//! never corrupts it, and at most the uncommitted interval is lost.
//! Retention by age and by size runs on its own schedule; `auto_vacuum =
//! INCREMENTAL` lets the file shrink after old rows go.

pub mod actions;
pub mod anomalies;
pub mod incidents;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use aegis_core::status::{BufferStatus, StoreStatus};
use aegis_core::{Clock, Observation, Reading, SeriesKey};
use rusqlite::{params, Connection, OptionalExtension};

pub use rusqlite;
pub use schema::SCHEMA_VERSION;

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused something.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The state directory or file could not be prepared.
    #[error("cannot prepare {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The database was written by a newer version.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    TooNew {
        /// Version found in the file.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
    /// The store's queue is full; the request was not accepted.
    #[error("store queue full")]
    Busy,
    /// The store thread has stopped.
    #[error("store closed")]
    Closed,
}

/// How the store behaves.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Commit pending rollups this often.
    pub flush_interval: Duration,
    /// Delete rows older than this.
    pub retention_max_age: Duration,
    /// Delete the oldest rows while the file is larger than this.
    pub retention_max_size: u64,
    /// Run retention this often.
    pub retention_interval: Duration,
    /// Commands waiting for the store thread at most.
    pub queue_capacity: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_secs(2),
            retention_max_age: Duration::from_secs(7 * 86_400),
            retention_max_size: 256 << 20,
            retention_interval: Duration::from_secs(300),
            queue_capacity: 1024,
        }
    }
}

type Query = Box<dyn FnOnce(&mut Connection) + Send>;

enum Command {
    Observations(Vec<Observation>),
    Query(Query),
    Flush(tokio::sync::oneshot::Sender<()>),
    Retention,
    Shutdown,
}

#[derive(Debug, Default)]
struct Stats {
    size_bytes: AtomicU64,
    last_flush_ms: AtomicI64,
    write_errors: AtomicU64,
    queued: AtomicU64,
    dropped: AtomicU64,
    retention_deleted: AtomicU64,
    rows_written: AtomicU64,
}

/// A cloneable handle to the store thread.
#[derive(Clone)]
pub struct StoreHandle {
    tx: SyncSender<Command>,
    stats: Arc<Stats>,
    path: Arc<PathBuf>,
    capacity: usize,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle")
            .field("path", &self.path)
            .finish()
    }
}

/// The store thread; join it after [`StoreHandle::shutdown`].
#[derive(Debug)]
pub struct StoreThread(JoinHandle<()>);

impl StoreThread {
    /// Waits for the thread to finish its last flush, up to `deadline`.
    /// Returns whether it finished in time.
    pub fn join_within(self, deadline: Duration) -> bool {
        let start = std::time::Instant::now();
        while !self.0.is_finished() {
            if start.elapsed() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.0.join().is_ok()
    }
}

/// Opens (creating if needed) the database at `path`, migrates it, and
/// starts the store thread.
pub fn open(
    path: &Path,
    options: StoreOptions,
    clock: Arc<dyn Clock>,
) -> Result<(StoreHandle, StoreThread), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let conn = open_connection(path)?;
    let (tx, rx) = sync_channel(options.queue_capacity.max(1));
    let stats = Arc::new(Stats::default());
    let handle = StoreHandle {
        tx,
        stats: Arc::clone(&stats),
        path: Arc::new(path.to_path_buf()),
        capacity: options.queue_capacity.max(1),
    };
    let writer = Writer {
        conn,
        path: path.to_path_buf(),
        options,
        clock,
        stats,
        pending: HashMap::new(),
        series_ids: HashMap::new(),
    };
    writer.refresh_size();
    let thread = std::thread::Builder::new()
        .name("aegis-store".into())
        .spawn(move || writer.run(rx))
        .map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok((handle, StoreThread(thread)))
}

/// Opens a connection with the agent's pragmas and the current schema.
pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // Must precede the first table: it decides how the file is laid out.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    schema::migrate(&mut conn)?;
    Ok(conn)
}

impl StoreHandle {
    /// Queues a batch of observations; sheds it (counted) when the queue is
    /// three quarters full, so the last quarter stays free for events
    /// (anomalies, actions) and queries.
    pub fn record(&self, batch: Vec<Observation>) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len() as u64;
        let queued = self.stats.queued.load(Ordering::Relaxed) as usize;
        let result = if queued >= self.capacity - self.capacity / 4 {
            Err(StoreError::Busy)
        } else {
            self.send(Command::Observations(batch))
        };
        result.inspect_err(|_| {
            self.stats.dropped.fetch_add(n, Ordering::Relaxed);
        })
    }

    /// Queues a write without waiting for it (an anomaly opening, say). A
    /// failure is logged and counted as a write error on the store thread.
    pub fn write(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<(), rusqlite::Error> + Send + 'static,
    ) -> Result<(), StoreError> {
        let stats = Arc::clone(&self.stats);
        self.send(Command::Query(Box::new(move |conn| {
            if let Err(e) = f(conn) {
                stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(what, error = %e, "store write failed");
            }
        })))
        .inspect_err(|e| {
            self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(what, error = %e, "store write not queued");
        })
    }

    /// Runs `f` on the store thread and returns its result.
    pub async fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Query(Box::new(move |conn| {
            let _ = reply.send(f(conn));
        })))?;
        rx.await.map_err(|_| StoreError::Closed)
    }

    /// Commits everything pending now and waits for it.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Flush(reply))?;
        rx.await.map_err(|_| StoreError::Closed)
    }

    /// Runs retention now (it also runs on its schedule).
    pub fn run_retention(&self) -> Result<(), StoreError> {
        self.send(Command::Retention)
    }

    /// Asks the thread to commit what is pending and stop. Waits for queue
    /// room for up to a second, since this message must not be lost.
    pub fn shutdown(&self) {
        let mut cmd = Command::Shutdown;
        for _ in 0..100 {
            match self.tx.try_send(cmd) {
                Ok(()) => {
                    self.stats.queued.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(TrySendError::Full(c)) => {
                    cmd = c;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }

    fn send(&self, cmd: Command) -> Result<(), StoreError> {
        match self.tx.try_send(cmd) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(StoreError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::Closed),
        }
    }

    /// The store's figures for the status page.
    pub fn status(&self) -> StoreStatus {
        let last = self.stats.last_flush_ms.load(Ordering::Relaxed);
        StoreStatus {
            path: self.path.display().to_string(),
            size_bytes: self.stats.size_bytes.load(Ordering::Relaxed),
            last_flush_ms: (last > 0).then_some(last),
            write_errors: self.stats.write_errors.load(Ordering::Relaxed),
            queue: BufferStatus {
                len: self.stats.queued.load(Ordering::Relaxed),
                capacity: self.capacity as u64,
                dropped: self.stats.dropped.load(Ordering::Relaxed),
            },
            retention_deleted_rows: self.stats.retention_deleted.load(Ordering::Relaxed),
        }
    }

    /// Rollup rows written since start.
    pub fn rows_written(&self) -> u64 {
        self.stats.rows_written.load(Ordering::Relaxed)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One minute of one series, accumulated since the last commit.
#[derive(Debug, Clone, Copy)]
struct Rollup {
    count: u64,
    resets: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    last: Option<f64>,
    last_at: i64,
}

/// Most (series, minute) rollups held before an early commit: bounds the
/// writer's memory whatever the input rate or the number of series.
const MAX_PENDING: usize = 50_000;

/// Most series ids cached by name before the cache is emptied.
const MAX_SERIES_IDS: usize = 20_000;

struct Writer {
    conn: Connection,
    path: PathBuf,
    options: StoreOptions,
    clock: Arc<dyn Clock>,
    stats: Arc<Stats>,
    pending: HashMap<(SeriesKey, i64), Rollup>,
    series_ids: HashMap<SeriesKey, i64>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Command>) {
        let mut next_flush = self.clock.monotonic() + self.options.flush_interval;
        let mut next_retention = self.clock.monotonic() + Duration::from_secs(1);
        loop {
            let now = self.clock.monotonic();
            let wait = next_flush.min(next_retention).saturating_sub(now);
            match rx.recv_timeout(wait) {
                Ok(cmd) => {
                    self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                    match cmd {
                        Command::Observations(batch) => self.fold(batch),
                        Command::Query(f) => f(&mut self.conn),
                        Command::Flush(reply) => {
                            self.flush();
                            let _ = reply.send(());
                        }
                        Command::Retention => self.retention(),
                        Command::Shutdown => break,
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = self.clock.monotonic();
            if now >= next_flush || self.pending.len() >= MAX_PENDING {
                self.flush();
                next_flush = now + self.options.flush_interval;
            }
            if now >= next_retention {
                self.retention();
                next_retention = now + self.options.retention_interval;
            }
        }
        self.flush();
        if let Err(e) = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
            tracing::warn!(error = %e, "final checkpoint failed");
        }
        tracing::debug!(path = %self.path.display(), "store closed");
    }

    fn fold(&mut self, batch: Vec<Observation>) {
        for obs in batch {
            let minute = obs.at_ms.div_euclid(60_000) * 60_000;
            let r = self.pending.entry((obs.series, minute)).or_insert(Rollup {
                count: 0,
                resets: 0,
                sum: 0.0,
                min: None,
                max: None,
                last: None,
                last_at: i64::MIN,
            });
            match obs.reading {
                Reading::Value(v) if v.is_finite() => {
                    r.count += 1;
                    r.sum += v;
                    r.min = Some(r.min.map_or(v, |m| m.min(v)));
                    r.max = Some(r.max.map_or(v, |m| m.max(v)));
                    if obs.at_ms >= r.last_at {
                        r.last = Some(v);
                        r.last_at = obs.at_ms;
                    }
                }
                Reading::Value(_) => {}
                Reading::CounterReset => r.resets += 1,
            }
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        match self.write_pending() {
            Ok(rows) => {
                self.pending.clear();
                self.stats.rows_written.fetch_add(rows, Ordering::Relaxed);
                self.stats
                    .last_flush_ms
                    .store(self.clock.wall_ms(), Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, pending = self.pending.len(), "store commit failed; will retry");
                // Keep the data for the next try, within the bound.
                if self.pending.len() >= MAX_PENDING {
                    let n = self.pending.len() as u64;
                    self.pending.clear();
                    self.stats.dropped.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
        self.refresh_size();
    }

    fn write_pending(&mut self) -> Result<u64, rusqlite::Error> {
        let tx = self.conn.transaction()?;
        let mut rows = 0;
        {
            let mut find = tx.prepare_cached("SELECT id FROM series WHERE name = ?1")?;
            let mut insert = tx.prepare_cached("INSERT INTO series(name) VALUES (?1)")?;
            let mut upsert = tx.prepare_cached(
                "INSERT INTO rollup_1m(series_id, minute_ms, count, resets, sum, min, max, last)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(series_id, minute_ms) DO UPDATE SET
                    count = count + excluded.count,
                    resets = resets + excluded.resets,
                    sum = sum + excluded.sum,
                    min = CASE WHEN min IS NULL OR excluded.min < min THEN excluded.min ELSE min END,
                    max = CASE WHEN max IS NULL OR excluded.max > max THEN excluded.max ELSE max END,
                    last = COALESCE(excluded.last, last)",
            )?;
            if self.series_ids.len() > MAX_SERIES_IDS {
                self.series_ids.clear();
            }
            for ((series, minute), r) in &self.pending {
                let id = match self.series_ids.get(series) {
                    Some(id) => *id,
                    None => {
                        let name = series.to_string();
                        let id = match find.query_row([&name], |row| row.get(0)).optional()? {
                            Some(id) => id,
                            None => {
                                insert.execute([&name])?;
                                tx.last_insert_rowid()
                            }
                        };
                        self.series_ids.insert(series.clone(), id);
                        id
                    }
                };
                upsert.execute(params![
                    id,
                    minute,
                    r.count as i64,
                    r.resets as i64,
                    r.sum,
                    r.min,
                    r.max,
                    r.last
                ])?;
                rows += 1;
            }
        }
        tx.commit()?;
        Ok(rows)
    }

    fn refresh_size(&self) {
        let size = file_size(&self.path);
        self.stats.size_bytes.store(size, Ordering::Relaxed);
    }

    fn retention(&mut self) {
        // Pending rows first, so retention sees and counts everything.
        self.flush();
        match self.apply_retention() {
            Ok(deleted) => {
                if deleted > 0 {
                    tracing::info!(deleted, "retention removed old rows");
                }
                self.stats
                    .retention_deleted
                    .fetch_add(deleted, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "retention failed");
            }
        }
        self.refresh_size();
    }

    fn apply_retention(&mut self) -> Result<u64, rusqlite::Error> {
        let cutoff = self.clock.wall_ms() - self.options.retention_max_age.as_millis() as i64;
        let mut deleted = 0u64;
        deleted += self
            .conn
            .execute("DELETE FROM rollup_1m WHERE minute_ms < ?1", [cutoff])?
            as u64;
        deleted += self
            .conn
            .execute("DELETE FROM actions WHERE at_ms < ?1", [cutoff])? as u64;
        deleted += self.conn.execute(
            "DELETE FROM anomalies WHERE opened_ms < ?1 AND closed_ms IS NOT NULL
             AND id NOT IN (SELECT anomaly_id FROM actions WHERE anomaly_id IS NOT NULL)",
            [cutoff],
        )? as u64;
        // By size: drop the oldest tenth of the minutes until under the
        // bound, reclaiming pages as we go. Bounded number of rounds.
        for _ in 0..20 {
            self.reclaim()?;
            if file_size(&self.path) <= self.options.retention_max_size {
                break;
            }
            let minutes: i64 = self.conn.query_row(
                "SELECT COUNT(DISTINCT minute_ms) FROM rollup_1m",
                [],
                |r| r.get(0),
            )?;
            if minutes <= 1 {
                break;
            }
            let boundary: Option<i64> = self.conn.query_row(
                "SELECT minute_ms FROM (SELECT DISTINCT minute_ms FROM rollup_1m ORDER BY minute_ms LIMIT ?1)
                 ORDER BY minute_ms DESC LIMIT 1",
                [(minutes / 10).max(1)],
                |r| r.get(0),
            )?;
            let Some(boundary) = boundary else { break };
            let n = self
                .conn
                .execute("DELETE FROM rollup_1m WHERE minute_ms <= ?1", [boundary])?
                as u64;
            deleted += n;
            deleted += self
                .conn
                .execute("DELETE FROM actions WHERE at_ms <= ?1", [boundary])?
                as u64;
        }
        self.conn.execute(
            "DELETE FROM series WHERE id NOT IN (SELECT DISTINCT series_id FROM rollup_1m)",
            [],
        )?;
        self.series_ids.clear();
        self.reclaim()?;
        Ok(deleted)
    }

    fn reclaim(&self) -> Result<(), rusqlite::Error> {
        // Each step of incremental_vacuum frees one page: run it to the end.
        let mut stmt = self.conn.prepare("PRAGMA incremental_vacuum")?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

/// Bytes on disk for the database and its WAL.
pub fn file_size(path: &Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    [path.to_path_buf(), PathBuf::from(wal)]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// A point of the stored per-minute history.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MinutePoint {
    /// Start of the minute, Unix ms.
    pub minute_ms: i64,
    /// Values in the minute.
    pub count: u64,
    /// Counter resets in the minute.
    pub resets: u64,
    /// Mean value.
    pub mean: Option<f64>,
    /// Lowest value.
    pub min: Option<f64>,
    /// Highest value.
    pub max: Option<f64>,
    /// Last value.
    pub last: Option<f64>,
}

/// Reads the per-minute history of one series since `since_ms`.
pub fn minutes(
    conn: &Connection,
    series: &str,
    since_ms: i64,
) -> Result<Vec<MinutePoint>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.minute_ms, r.count, r.resets, r.sum, r.min, r.max, r.last
         FROM rollup_1m r JOIN series s ON s.id = r.series_id
         WHERE s.name = ?1 AND r.minute_ms >= ?2 ORDER BY r.minute_ms",
    )?;
    let rows = stmt.query_map(params![series, since_ms], |row| {
        let count: i64 = row.get(1)?;
        let sum: f64 = row.get(3)?;
        Ok(MinutePoint {
            minute_ms: row.get(0)?,
            count: count as u64,
            resets: row.get::<_, i64>(2)? as u64,
            mean: (count > 0).then(|| sum / count as f64),
            min: row.get(4)?,
            max: row.get(5)?,
            last: row.get(6)?,
        })
    })?;
    rows.collect()
}
