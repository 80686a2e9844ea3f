//! The store thread: the one owner of the SQLite connection and the only
//! writer. It folds observations into per-minute rollups, commits them and
//! the waiting events, runs retention, keeps the write-ahead log small, and
//! answers reads.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use aegis_core::ring::Hasher;
use aegis_core::{Clock, Observation, Reading, SeriesKey};
use rusqlite::{params, Connection, OptionalExtension};

use crate::events::EventQueue;
use crate::rollup::file_size;
use crate::{Command, Shared, StoreOptions};

/// Most (series, minute) rollups held before an early commit: bounds the
/// writer's memory whatever the input rate or the number of series.
const MAX_PENDING: usize = 50_000;
/// Most series ids cached by name before the cache is emptied.
const MAX_SERIES_IDS: usize = 20_000;
/// Events written in one transaction at most.
const EVENT_BATCH: usize = 2_000;
/// Waiting events are committed at least this often (rollups wait for the
/// flush interval; a healing record should be readable at once).
const EVENT_COMMIT: Duration = Duration::from_millis(100);
/// The write-ahead log is checkpointed and truncated past this size, so a
/// disk that had filled is not filled again by the log once space returns.
const WAL_LIMIT: u64 = 1 << 20;

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

pub(crate) struct Writer {
    pub conn: Connection,
    pub path: PathBuf,
    pub options: StoreOptions,
    pub clock: Arc<dyn Clock>,
    pub shared: Arc<Shared>,
    pub events: Arc<EventQueue>,
    pending: HashMap<(SeriesKey, i64), Rollup, Hasher>,
    series_ids: HashMap<SeriesKey, i64, Hasher>,
    /// When events may next be tried after a failed commit (monotonic).
    events_retry_at: Duration,
}

/// How long from `wall_ms` until the wall clock is a little past the next
/// multiple of `every`. The little (a tenth of `every`, at most two
/// seconds) lets the observations of a minute that just closed reach the
/// store first: the pipeline hands them over within a second. Those that
/// come later still count; they are added to their minute's row.
fn until_aligned(wall_ms: i64, every: Duration) -> Duration {
    let every_ms = interval_ms(every);
    let next = last_due_ms(wall_ms, every_ms) + every_ms + grace_ms(every_ms);
    Duration::from_millis((next - wall_ms) as u64)
}

/// The multiple of the flush interval whose flush is the latest due at
/// `wall_ms` (its grace included).
fn last_due_ms(wall_ms: i64, every_ms: i64) -> i64 {
    let due = wall_ms - grace_ms(every_ms);
    due - due.rem_euclid(every_ms)
}

/// The flush interval in ms, at least 1.
fn interval_ms(every: Duration) -> i64 {
    i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// How long after a multiple of the flush interval its flush runs.
fn grace_ms(every_ms: i64) -> i64 {
    (every_ms / 10).min(2_000)
}

/// Whether a SQLite error means the disk (or its quota) is full.
fn is_disk_full(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull
    )
}

/// Whether an error is about the file or the disk (kept for a retry),
/// rather than about one event (which is then written alone, or dropped).
fn is_storage_error(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _) if matches!(
            f.code,
            rusqlite::ErrorCode::DiskFull
                | rusqlite::ErrorCode::SystemIoFailure
                | rusqlite::ErrorCode::DatabaseBusy
                | rusqlite::ErrorCode::DatabaseLocked
                | rusqlite::ErrorCode::ReadOnly
                | rusqlite::ErrorCode::CannotOpen
                | rusqlite::ErrorCode::OutOfMemory
        )
    )
}

impl Writer {
    pub fn new(
        conn: Connection,
        path: PathBuf,
        options: StoreOptions,
        clock: Arc<dyn Clock>,
        shared: Arc<Shared>,
        events: Arc<EventQueue>,
    ) -> Self {
        Self {
            conn,
            path,
            options,
            clock,
            shared,
            events,
            pending: HashMap::default(),
            series_ids: HashMap::default(),
            events_retry_at: Duration::ZERO,
        }
    }

    /// Runs one read (or typed write) on the connection. A panic in it is
    /// caught here: it loses that one answer (its caller sees the store as
    /// unavailable), never the thread that owns every write.
    fn query(&mut self, f: super::Query) {
        let conn = &mut self.conn;
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || f(conn)));
        // The panic hook has logged and counted it (aegis_panics_total).
        if run.is_err() {
            // A statement cut short may have left a transaction open.
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
    }

    /// When the next periodic flush is due (monotonic): a little after the
    /// wall clock next reaches a multiple of the flush interval. With the
    /// default minute, each minute's rollup row is then written once, just
    /// after the minute closes, instead of once per flush that touched it.
    fn next_flush_at(&self) -> Duration {
        let now = self.clock.monotonic();
        let wait = until_aligned(self.clock.wall_ms(), self.options.flush_interval);
        now + wait
    }

    /// The periodic flush: events, and the rollups of every minute that
    /// began before the multiple of the flush interval just passed. The
    /// minute under way, when it began at that multiple, waits for the next
    /// flush, so that at the default interval each minute's row is written
    /// once, complete.
    fn flush_due(&mut self) {
        let every_ms = interval_ms(self.options.flush_interval);
        self.flush_before(last_due_ms(self.clock.wall_ms(), every_ms));
    }

    pub fn run(mut self, rx: Receiver<Command>, done: tokio::sync::oneshot::Sender<()>) {
        let mut next_flush = self.next_flush_at();
        let mut next_retention = self.clock.monotonic() + Duration::from_secs(1);
        let mut next_events = self.clock.monotonic();
        loop {
            let now = self.clock.monotonic();
            // Asleep until the next thing due: the stop flag is looked at
            // after every command, and a stop sends one (a full queue means
            // the thread is busy with commands anyway), so the thread needs
            // no wake-ups of its own on an idle host.
            let mut due = next_flush.min(next_retention);
            if self.events.len() > 0 {
                due = due.min(next_events);
            }
            let wait = due.saturating_sub(now);
            match rx.recv_timeout(wait) {
                Ok(cmd) => {
                    self.shared.queued.fetch_sub(1, Ordering::Relaxed);
                    match cmd {
                        Command::Observations(batch) => self.fold(batch),
                        Command::Query(f) => self.query(f),
                        Command::Flush(reply) => {
                            self.flush();
                            let _ = reply.send(());
                        }
                        Command::Retention => self.retention(),
                        Command::Wake => {}
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.shared.stopping.load(Ordering::SeqCst) {
                break;
            }
            let now = self.clock.monotonic();
            if self.pending.len() >= MAX_PENDING {
                self.flush();
                next_events = now + EVENT_COMMIT;
            } else if now >= next_flush {
                self.flush_due();
                next_flush = self.next_flush_at();
                next_events = now + EVENT_COMMIT;
            } else if now >= next_events && self.events.len() > 0 {
                self.write_events();
                next_events = now + EVENT_COMMIT;
            }
            if now >= next_retention {
                self.retention();
                next_retention = now + self.options.retention_interval;
            }
        }
        // Commands already queued (reads, writes) are served before the
        // last commit: nothing accepted before the stop is lost.
        while let Ok(cmd) = rx.try_recv() {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            match cmd {
                Command::Observations(batch) => self.fold(batch),
                Command::Query(f) => self.query(f),
                Command::Flush(reply) => {
                    let _ = reply.send(());
                }
                Command::Retention | Command::Wake => {}
            }
        }
        self.events_retry_at = Duration::ZERO;
        self.flush();
        if let Err(e) = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
            tracing::warn!(error = %e, "final checkpoint failed");
        }
        tracing::debug!(path = %self.path.display(), "store closed");
        let _ = done.send(());
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

    fn note_failure(&mut self, what: &str, e: &rusqlite::Error) {
        self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
        let full = is_disk_full(e);
        let was_full = self.shared.disk_full.swap(full, Ordering::SeqCst);
        if full && !was_full {
            tracing::error!(path = %self.path.display(), "the disk is full: the store keeps what it must write in memory and tries again");
        } else if !full {
            tracing::error!(error = %e, what, "store commit failed; will retry");
        }
    }

    fn note_success(&mut self) {
        if self.shared.disk_full.swap(false, Ordering::SeqCst) {
            tracing::warn!(path = %self.path.display(), "disk space is back: the store writes again");
        }
    }

    /// Commits waiting events, in order. A storage error keeps them all
    /// for the next try; an event SQLite refuses for itself (a broken
    /// record) is written alone and, if refused again, dropped and counted,
    /// so one bad event never blocks the rest.
    fn write_events(&mut self) {
        if self.clock.monotonic() < self.events_retry_at {
            return;
        }
        loop {
            let batch = self.events.peek(EVENT_BATCH);
            let Some((last, _)) = batch.last() else {
                return;
            };
            let last = *last;
            let n = batch.len();
            let result = (|| {
                let tx = self.conn.transaction()?;
                for (_, e) in &batch {
                    e.write(&tx)?;
                }
                tx.commit()
            })();
            match result {
                Ok(()) => {
                    self.events.commit(last);
                    self.note_success();
                    if n < EVENT_BATCH {
                        return;
                    }
                }
                Err(e) if is_storage_error(&e) => {
                    self.note_failure("events", &e);
                    self.events_retry_at = self.clock.monotonic() + self.options.flush_interval;
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "an event batch was refused; writing its events one by one");
                    for (seq, event) in batch {
                        let one = (|| {
                            let tx = self.conn.transaction()?;
                            event.write(&tx)?;
                            tx.commit()
                        })();
                        match one {
                            Ok(()) => {}
                            Err(e) if is_storage_error(&e) => {
                                self.note_failure("events", &e);
                                self.events_retry_at =
                                    self.clock.monotonic() + self.options.flush_interval;
                                return;
                            }
                            Err(e) => {
                                self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                                tracing::error!(error = %e, ?event, "an event SQLite refuses was dropped");
                            }
                        }
                        self.events.commit(seq);
                    }
                }
            }
        }
    }

    /// Commits the waiting events and every pending rollup.
    pub fn flush(&mut self) {
        self.flush_before(i64::MAX);
    }

    /// Commits the waiting events and the pending rollups of the minutes
    /// that began before `cutoff_ms`.
    fn flush_before(&mut self, cutoff_ms: i64) {
        self.write_events();
        if self.pending.keys().any(|(_, minute)| *minute < cutoff_ms) {
            match self.write_pending(cutoff_ms) {
                Ok(rows) => {
                    self.pending.retain(|(_, minute), _| *minute >= cutoff_ms);
                    self.note_success();
                    self.shared.rows_written.fetch_add(rows, Ordering::Relaxed);
                    self.shared
                        .last_flush_ms
                        .store(self.clock.wall_ms(), Ordering::Relaxed);
                }
                Err(e) => {
                    self.note_failure("rollups", &e);
                    // Keep the data for the next try, within the bound.
                    if self.pending.len() >= MAX_PENDING {
                        let n = self.pending.len() as u64;
                        self.pending.clear();
                        self.shared.dropped.fetch_add(n, Ordering::Relaxed);
                    }
                }
            }
        }
        self.keep_wal_small();
        self.refresh_size();
    }

    fn keep_wal_small(&mut self) {
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        let size = std::fs::metadata(PathBuf::from(wal)).map_or(0, |m| m.len());
        if size > WAL_LIMIT {
            if let Err(e) = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            {
                tracing::debug!(error = %e, "checkpoint failed; will retry");
            }
        }
    }

    fn write_pending(&mut self, cutoff_ms: i64) -> Result<u64, rusqlite::Error> {
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
            // Ids found in a transaction that then fails are not kept.
            let mut found = Vec::new();
            for ((series, minute), r) in &self.pending {
                if *minute >= cutoff_ms {
                    continue;
                }
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
                        found.push((series.clone(), id));
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
            drop((find, insert, upsert));
            tx.commit()?;
            self.series_ids.extend(found);
        }
        Ok(rows)
    }

    pub fn refresh_size(&self) {
        let size = file_size(&self.path);
        self.shared.size_bytes.store(size, Ordering::Relaxed);
    }

    fn retention(&mut self) {
        // Pending rows first, so retention sees and counts everything.
        self.flush();
        match self.apply_retention() {
            Ok(deleted) => {
                if deleted > 0 {
                    tracing::info!(deleted, "retention removed old rows");
                }
                self.shared
                    .retention_deleted
                    .fetch_add(deleted, Ordering::Relaxed);
            }
            Err(e) => {
                self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
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
        deleted += self
            .conn
            .execute("DELETE FROM check_transitions WHERE at_ms < ?1", [cutoff])?
            as u64;
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

#[cfg(test)]
mod tests {
    use super::until_aligned;
    use std::time::Duration;

    #[test]
    fn flushes_fall_just_after_each_multiple_of_the_interval() {
        let minute = Duration::from_secs(60);
        // 10:00:30 -> 10:01:02, two seconds after the minute closes.
        let t = 36_000_000 + 30_000;
        assert_eq!(until_aligned(t, minute), Duration::from_millis(32_000));
        // Within the grace of a boundary: that boundary's flush is next.
        assert_eq!(
            until_aligned(36_000_000 + 500, minute),
            Duration::from_millis(1_500)
        );
        // Exactly at the flush: the next one, a whole interval on.
        assert_eq!(until_aligned(36_002_000, minute), minute);
        // A short interval keeps a short grace.
        let short = Duration::from_millis(100);
        assert_eq!(until_aligned(1_000, short), Duration::from_millis(10));
        assert_eq!(until_aligned(1_050, short), Duration::from_millis(60));
        // Never a wait longer than the interval.
        for t in 0..2_000 {
            let w = until_aligned(t * 37, short);
            assert!(w > Duration::ZERO && w <= short, "{t}: {w:?}");
        }
    }
}
