//! The SQLite store: one thread owns the connection and is the only writer.
//!
//! Other tasks hold a [`StoreHandle`] and ask it in the store's own terms:
//! batches of observations (folded into per-minute rollups and committed
//! just after each multiple of `flush_interval` on the clock, so a crash
//! loses at most that much; at a minute, each row is written once), events that
//! must never be lost ([`StoreEvent`]: anomalies, healing records), and
//! typed reads (anomalies, incidents, actions, minutes) answered on a
//! oneshot. Nobody outside this crate sees SQL or the connection.
//!
//! Observations are shed, and counted, when the queue is three quarters
//! full: a slow disk must not stall the pipeline. Events are never shed for
//! room: they wait in memory, in order, until a commit holds them. A full
//! disk fails commits; what waits is kept and committed when space returns
//! (the status says `disk_full` meanwhile), and only at the events' bound
//! is anything let go, counted as lost records.
//!
//! The file is in WAL mode with `synchronous = NORMAL`: a killed process
//! never corrupts it, and at most the uncommitted interval is lost. The
//! write-ahead log is checkpointed and truncated past 1 MiB. Retention by
//! age and by size runs on its own schedule; `auto_vacuum = INCREMENTAL`
//! lets the file shrink after old rows go.

mod actions;
mod anomalies;
mod checks;
mod events;
mod incidents;
mod rollup;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use aegis_core::status::{
    ActionQuery, ActionRecord, AnomalyQuery, AnomalyRecord, BufferStatus, Incident, IncidentQuery,
    StoreStatus,
};
use aegis_core::{Clock, Observation};
use rusqlite::Connection;

pub use events::StoreEvent;
pub use rollup::{file_size, MinutePoint};
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
    /// The database cannot be opened, and why in words.
    #[error("cannot open the database {path}: {why}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
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
    /// Events (anomalies, healing records) waiting for a commit at most.
    pub event_capacity: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_secs(60),
            retention_max_age: Duration::from_secs(7 * 86_400),
            retention_max_size: 256 << 20,
            retention_interval: Duration::from_secs(300),
            queue_capacity: 1024,
            event_capacity: 100_000,
        }
    }
}

type Query = Box<dyn FnOnce(&mut Connection) + Send>;

enum Command {
    Observations(Vec<Observation>),
    Query(Query),
    Flush(tokio::sync::oneshot::Sender<()>),
    Retention,
    /// Look at the stop flag and the waiting events now.
    Wake,
}

/// Figures the store thread and the handles share.
#[derive(Debug, Default)]
struct Shared {
    size_bytes: AtomicU64,
    last_flush_ms: AtomicI64,
    write_errors: AtomicU64,
    queued: AtomicU64,
    dropped: AtomicU64,
    retention_deleted: AtomicU64,
    rows_written: AtomicU64,
    disk_full: AtomicBool,
    stopping: AtomicBool,
}

/// A cloneable handle to the store thread.
#[derive(Clone)]
pub struct StoreHandle {
    tx: SyncSender<Command>,
    shared: Arc<Shared>,
    events: Arc<events::EventQueue>,
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

/// The store thread; wait for it after [`StoreHandle::shutdown`].
#[derive(Debug)]
pub struct StoreThread {
    thread: JoinHandle<()>,
    done: tokio::sync::oneshot::Receiver<()>,
}

impl StoreThread {
    /// Waits, without blocking the runtime, for the thread's last commit,
    /// up to `deadline`. Returns whether it finished in time.
    pub async fn wait(self, deadline: Duration) -> bool {
        let finished = tokio::time::timeout(deadline, self.done).await.is_ok();
        // The thread has sent its last word: joining it is instant.
        finished && self.thread.join().is_ok()
    }

    /// Blocks the calling thread until the thread ends or `deadline`
    /// passes (for callers outside a runtime).
    pub fn join_within(self, deadline: Duration) -> bool {
        let start = std::time::Instant::now();
        while !self.thread.is_finished() {
            if start.elapsed() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.thread.join().is_ok()
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
    let shared = Arc::new(Shared::default());
    let events = Arc::new(events::EventQueue::new(options.event_capacity));
    let handle = StoreHandle {
        tx,
        shared: Arc::clone(&shared),
        events: Arc::clone(&events),
        path: Arc::new(path.to_path_buf()),
        capacity: options.queue_capacity.max(1),
    };
    let writer = writer::Writer::new(conn, path.to_path_buf(), options, clock, shared, events);
    writer.refresh_size();
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("aegis-store".into())
        .spawn(move || writer.run(rx, done_tx))
        .map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok((handle, StoreThread { thread, done }))
}

/// Says in words why SQLite could not open `path`.
fn open_error(path: &Path, e: rusqlite::Error) -> StoreError {
    let code = match &e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let why = match code {
        Some(rusqlite::ErrorCode::ReadOnly) => format!("{} is read-only", dir.display()),
        Some(rusqlite::ErrorCode::CannotOpen) => match std::fs::metadata(dir) {
            Ok(m) if !m.is_dir() => format!("{} is not a directory", dir.display()),
            Ok(m) if m.permissions().readonly() => {
                format!("{} is read-only", dir.display())
            }
            Ok(_) => match tempfile_probe(dir) {
                Some(why) => why,
                None => format!("SQLite cannot open the file ({e})"),
            },
            Err(err) => format!("{}: {err}", dir.display()),
        },
        Some(rusqlite::ErrorCode::NotADatabase) => {
            "the file is not an SQLite database (move it away, or set store.path)".into()
        }
        Some(rusqlite::ErrorCode::DiskFull) => "the disk is full".into(),
        _ => return StoreError::Sqlite(e),
    };
    StoreError::Open {
        path: path.to_path_buf(),
        why,
    }
}

/// Why nothing can be created in `dir`, if nothing can.
fn tempfile_probe(dir: &Path) -> Option<String> {
    let probe = dir.join(".aegis-write-probe");
    match std::fs::write(&probe, b"") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) if e.raw_os_error() == Some(libc_erofs()) => {
            Some(format!("{} is on a read-only file system", dir.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Some(format!("{} is not writable by this user", dir.display()))
        }
        Err(e) => Some(format!("{}: {e}", dir.display())),
    }
}

/// EROFS on Linux.
const fn libc_erofs() -> i32 {
    30
}

/// Opens a connection with the agent's pragmas and the current schema.
pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path).map_err(|e| open_error(path, e))?;
    let prepare = |conn: &mut Connection| -> Result<(), rusqlite::Error> {
        conn.busy_timeout(Duration::from_secs(5))?;
        // Must precede the first table: it decides how the file is laid out.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        // Checkpoint at 1 MiB and truncate the log after it.
        conn.pragma_update(None, "wal_autocheckpoint", 256)?;
        conn.pragma_update(None, "journal_size_limit", 1 << 20)?;
        Ok(())
    };
    prepare(&mut conn).map_err(|e| open_error(path, e))?;
    schema::migrate(&mut conn)?;
    Ok(conn)
}

impl StoreHandle {
    /// Queues a batch of observations; sheds it (counted) when the queue is
    /// three quarters full, so the last quarter stays free for reads.
    pub fn record(&self, batch: Vec<Observation>) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len() as u64;
        let queued = self.shared.queued.load(Ordering::Relaxed) as usize;
        let result = if queued >= self.capacity - self.capacity / 4 {
            Err(StoreError::Busy)
        } else {
            self.send(Command::Observations(batch))
        };
        result.inspect_err(|_| {
            self.shared.dropped.fetch_add(n, Ordering::Relaxed);
        })
    }

    /// Keeps an event until a commit holds it. Never blocks, never refuses:
    /// only at the events' bound does the oldest go, counted as lost.
    pub fn append(&self, event: StoreEvent) {
        self.events.push(event);
        // The thread sleeps until something is due: this is. A full queue
        // means it is awake already.
        let _ = self.send(Command::Wake);
    }

    /// Runs `f` on the store thread and returns its result.
    async fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, rusqlite::Error> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Query(Box::new(move |conn| {
            let _ = reply.send(f(conn));
        })))?;
        Ok(rx.await.map_err(|_| StoreError::Closed)??)
    }

    /// Anomalies, newest first.
    pub async fn anomalies(&self, q: AnomalyQuery) -> Result<Vec<AnomalyRecord>, StoreError> {
        self.query(move |c| anomalies::list(c, &q)).await
    }

    /// Incidents, newest first.
    pub async fn incidents(&self, q: IncidentQuery) -> Result<Vec<Incident>, StoreError> {
        self.query(move |c| incidents::list(c, &q)).await
    }

    /// Healing records, newest first.
    pub async fn actions(&self, q: ActionQuery) -> Result<Vec<ActionRecord>, StoreError> {
        self.query(move |c| actions::list(c, &q)).await
    }

    /// The attempts since `since_ms`, oldest first (what a new run hands
    /// its guard; bounded by the host budget, however many records surround
    /// them).
    pub async fn attempts_since(&self, since_ms: i64) -> Result<Vec<ActionRecord>, StoreError> {
        self.query(move |c| actions::attempts_since(c, since_ms))
            .await
    }

    /// The next free anomaly id and incident id.
    pub async fn next_ids(&self) -> Result<(i64, i64), StoreError> {
        self.query(|c| Ok((anomalies::next_id(c)?, actions::next_incident(c)?)))
            .await
    }

    /// Closes the anomalies a previous run left open (it stopped while they
    /// were open); how many.
    pub async fn close_stale_anomalies(&self, now_ms: i64) -> Result<usize, StoreError> {
        self.query(move |c| anomalies::close_stale(c, now_ms)).await
    }

    /// The newest transitions of a check, newest first.
    pub async fn check_transitions(
        &self,
        check: &str,
        limit: u32,
    ) -> Result<Vec<aegis_core::check::TransitionRecord>, StoreError> {
        let check = check.to_string();
        self.query(move |c| checks::list(c, &check, limit)).await
    }

    /// The stored per-minute history of one series since `since_ms`.
    pub async fn minutes(
        &self,
        series: &str,
        since_ms: i64,
    ) -> Result<Vec<MinutePoint>, StoreError> {
        let series = series.to_string();
        self.query(move |c| rollup::minutes(c, &series, since_ms))
            .await
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

    /// Tells the thread to commit what is pending and stop. Returns at
    /// once; wait with [`StoreThread::wait`]. Commands already queued are
    /// still served.
    pub fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the thread at once if there is room; if the queue is full
        // the thread is busy and sees the flag after its current command.
        let _ = self.send(Command::Wake);
    }

    fn send(&self, cmd: Command) -> Result<(), StoreError> {
        match self.tx.try_send(cmd) {
            Ok(()) => {
                self.shared.queued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(StoreError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::Closed),
        }
    }

    /// The store's figures for the status page.
    pub fn status(&self) -> StoreStatus {
        let last = self.shared.last_flush_ms.load(Ordering::Relaxed);
        StoreStatus {
            path: self.path.display().to_string(),
            size_bytes: self.shared.size_bytes.load(Ordering::Relaxed),
            last_flush_ms: (last > 0).then_some(last),
            write_errors: self.shared.write_errors.load(Ordering::Relaxed),
            queue: BufferStatus {
                len: self.shared.queued.load(Ordering::Relaxed),
                capacity: self.capacity as u64,
                dropped: self.shared.dropped.load(Ordering::Relaxed),
            },
            retention_deleted_rows: self.shared.retention_deleted.load(Ordering::Relaxed),
            disk_full: self.shared.disk_full.load(Ordering::Relaxed),
            events: BufferStatus {
                len: self.events.len() as u64,
                capacity: self.events.capacity() as u64,
                dropped: self.events.lost(),
            },
            lost_records: self.events.lost_actions(),
        }
    }

    /// Rollup rows written since start.
    pub fn rows_written(&self) -> u64 {
        self.shared.rows_written.load(Ordering::Relaxed)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_query_that_panics_loses_its_answer_and_never_the_store_thread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(aegis_core::ManualClock::starting_at(1_800_000_000_000));
        let (store, thread) =
            open(&dir.path().join("aegis.db"), StoreOptions::default(), clock).expect("open");
        let answer: Result<(), StoreError> = store
            .query(|_| -> Result<(), rusqlite::Error> { panic!("a bug in one query") })
            .await;
        assert!(matches!(answer, Err(StoreError::Closed)), "{answer:?}");
        // The thread goes on: reads answer, writes commit.
        let n: i64 = store
            .query(|c| c.query_row("SELECT 1", [], |r| r.get(0)))
            .await
            .expect("a read after the panic");
        assert_eq!(n, 1);
        store.flush().await.expect("a commit after the panic");
        store.shutdown();
        assert!(thread.join_within(std::time::Duration::from_secs(5)));
    }
}
