//! The per-minute history of each series, as stored.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};

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
pub(crate) fn minutes(
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
