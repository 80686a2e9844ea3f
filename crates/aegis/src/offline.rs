//! `aegis detect FILE.csv`: the agent's streaming detectors, run offline
//! over a recorded series.
//!
//! Strictly causal: each row is scored by detectors that have seen only the
//! rows before it, exactly as the running agent would have scored it, so the
//! score of row i never changes when rows are appended.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use aegis_detect::alert::{AlertConfig, Alerter};
use aegis_detect::series::{SeriesConfig, SeriesDetector};
use anyhow::Context;

/// What to run.
#[derive(Debug, Clone)]
pub struct DetectOptions {
    /// The input CSV: a `timestamp` column and one or more value columns.
    pub input: PathBuf,
    /// Where to write the scored CSV; standard output when `None`.
    pub output: Option<PathBuf>,
    /// Only this value column.
    pub column: Option<String>,
    /// Skip malformed rows (and count them) instead of stopping.
    pub skip_bad_rows: bool,
}

/// A problem with the input that stops the run.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file cannot be read at all.
    #[error("{file}: {message}")]
    Missing {
        /// The file.
        file: String,
        /// Why.
        message: String,
    },
    /// The header lacks what is needed.
    #[error("{file}: {message}")]
    Header {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A row is malformed.
    #[error("{file}:{line}: {message} (use --skip-bad-rows to skip such rows)")]
    Row {
        /// The file.
        file: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
}

/// Figures of a finished run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DetectSummary {
    /// Rows scored.
    pub rows: u64,
    /// Rows without a value in any scored column: passed through with an
    /// empty score, not scored.
    pub missing: u64,
    /// Rows skipped as malformed.
    pub skipped: u64,
    /// Alerts opened.
    pub alerts: u64,
    /// First skipped rows' problems (up to 5), for the report.
    pub examples: Vec<String>,
}

/// Parses a timestamp: Unix seconds or milliseconds (by magnitude), or an
/// RFC 3339 / `YYYY-MM-DD HH:MM:SS` date-time (UTC when no zone is given).
pub fn parse_timestamp(text: &str) -> Result<f64, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<f64>() {
        if !n.is_finite() {
            return Err(format!("timestamp {t:?} is not a finite number"));
        }
        // Beyond the year 5000 in seconds: it must be milliseconds.
        return Ok(if n.abs() > 1e11 { n / 1000.0 } else { n });
    }
    humantime::parse_rfc3339_weak(t)
        .map_err(|e| format!("timestamp {t:?} is neither Unix time nor a date-time ({e})"))
        .and_then(|st| {
            st.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .map_err(|_| format!("timestamp {t:?} is before 1970"))
        })
}

/// Parses a value: a finite number, or empty/`NaN`/`null`/`NA` for a
/// missing value. An infinity is refused: no measurement is infinite, and
/// scoring it as a number would hide the row's problem.
fn parse_value(text: &str) -> Result<f64, &'static str> {
    let t = text.trim();
    if t.is_empty()
        || t.eq_ignore_ascii_case("nan")
        || t.eq_ignore_ascii_case("null")
        || t.eq_ignore_ascii_case("na")
    {
        return Ok(f64::NAN);
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err("is not a finite number"),
        Err(_) => Err("is not a number"),
    }
}

/// The output file, written beside its final name and renamed into place
/// only when the whole input has been scored: an error leaves no partial
/// file behind (and an older output untouched).
struct PendingOutput {
    partial: PathBuf,
    target: PathBuf,
    done: bool,
}

impl PendingOutput {
    fn create(target: &Path) -> anyhow::Result<(Self, std::fs::File)> {
        let mut name = target.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".partial-{}", std::process::id()));
        let partial = target.with_file_name(name);
        let file = std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", target.display()))?;
        Ok((
            Self {
                partial,
                target: target.to_path_buf(),
                done: false,
            },
            file,
        ))
    }

    fn commit(mut self) -> anyhow::Result<()> {
        std::fs::rename(&self.partial, &self.target)
            .with_context(|| format!("writing {}", self.target.display()))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for PendingOutput {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

struct Column {
    index: usize,
    detector: SeriesDetector,
    alerter: Alerter,
}

/// Runs the detectors over the file.
pub fn run(options: &DetectOptions) -> anyhow::Result<DetectSummary> {
    let file = options.input.display().to_string();
    let missing = |e: std::io::Error| InputError::Missing {
        file: file.clone(),
        message: e.to_string(),
    };
    let size = std::fs::metadata(&options.input).map_err(missing)?.len();
    let input = std::fs::File::open(&options.input).map_err(missing)?;
    let progress = progress_bar(size, &options.input);
    let summary = match &options.output {
        Some(path) => {
            let (pending, out) = PendingOutput::create(path)?;
            let summary = score(&file, input, out, options, progress.as_ref())?;
            pending.commit()?;
            summary
        }
        None => score(
            &file,
            input,
            std::io::stdout().lock(),
            options,
            progress.as_ref(),
        )?,
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    Ok(summary)
}

/// Scores the CSV read from `input` (named `file` in messages) and writes
/// it, with its score and alert columns, to `output`: the whole of
/// `aegis detect` but opening files.
pub fn score(
    file: &str,
    input: impl std::io::Read,
    output: impl Write,
    options: &DetectOptions,
    progress: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<DetectSummary> {
    let file = file.to_string();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let header = reader
        .headers()
        .map_err(|e| InputError::Header {
            file: file.clone(),
            message: format!("unreadable header: {e}"),
        })?
        .clone();
    let names: Vec<&str> = header.iter().collect();
    let ts = names
        .iter()
        .position(|h| h.eq_ignore_ascii_case("timestamp"))
        .ok_or_else(|| InputError::Header {
            file: file.clone(),
            message: format!(
                "the header has no `timestamp` column (it has: {})",
                names.join(", ")
            ),
        })?;
    let value_columns: Vec<usize> = match &options.column {
        Some(name) if name.eq_ignore_ascii_case("timestamp") => {
            return Err(InputError::Header {
                file,
                message: "`timestamp` is the time of each row, not a value to score; \
                          name a value column"
                    .to_string(),
            }
            .into());
        }
        Some(name) => {
            vec![names
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| InputError::Header {
                    file: file.clone(),
                    message: format!("no column named {name:?} (it has: {})", names.join(", ")),
                })?]
        }
        // Every column but the timestamp; a `label` column (the harness's
        // ground truth) is carried through, not scored.
        None => (0..names.len())
            .filter(|&i| i != ts && !names[i].eq_ignore_ascii_case("label"))
            .collect(),
    };
    if value_columns.is_empty() {
        return Err(InputError::Header {
            file,
            message: "the header has no value column besides `timestamp`".to_string(),
        }
        .into());
    }
    let mut columns: Vec<Column> = value_columns
        .iter()
        .map(|&index| Column {
            index,
            detector: SeriesDetector::new(SeriesConfig::default()),
            alerter: Alerter::new(AlertConfig::default()),
        })
        .collect();

    let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(output));
    let mut out_header: Vec<&str> = names.clone();
    out_header.extend(["anomaly_score", "alert"]);
    writer
        .write_record(&out_header)
        .context("writing the output")?;

    let mut summary = DetectSummary::default();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let message = format!("unreadable row: {e}");
                skip_or_fail(options, &file, line, message, &mut summary)?;
                continue;
            }
        }
        if let Some(bar) = progress {
            bar.set_position(reader.position().byte());
        }
        let line = record.position().map_or(line, |p| p.line());
        let parsed = parse_row(&record, names.len(), ts, &columns, &names);
        let (t, values) = match parsed {
            Ok(v) => v,
            Err(message) => {
                skip_or_fail(options, &file, line, message, &mut summary)?;
                continue;
            }
        };
        let mut score: Option<f64> = None;
        let mut alert = false;
        for (col, value) in columns.iter_mut().zip(values) {
            // A missing value is no observation: not scored, and the
            // column's alert state stays as it was.
            if value.is_finite() {
                let a = col.detector.assess(value, t);
                let was_open = col.alerter.is_open();
                let opened =
                    col.alerter.update(1.0 - a.p) == Some(aegis_detect::alert::Transition::Opened);
                if opened {
                    summary.alerts += 1;
                }
                let row = row_score(a.score.value, a.p, opened, was_open);
                score = Some(score.unwrap_or(0.0).max(row));
            }
            alert |= col.alerter.is_open();
        }
        let mut out: Vec<String> = record.iter().map(str::to_string).collect();
        out.push(score.map(|s| format!("{s:.6}")).unwrap_or_default());
        out.push(u8::from(alert).to_string());
        writer.write_record(&out).context("writing the output")?;
        if score.is_some() {
            summary.rows += 1;
        } else {
            summary.missing += 1;
        }
    }
    writer.flush().context("writing the output")?;
    Ok(summary)
}

/// The `anomaly_score` of a row: its calibrated score (`1 - p`), except
/// where the alert decision says more. The row that opens an anomaly
/// scores at least its alerting `1 - p` (at or above the open threshold);
/// the rows of an anomaly already open score at most the close threshold,
/// since they continue what the opening reported. A threshold at the
/// agent's own open level then picks exactly the rows where it alerts, and
/// a lower one picks rows the agent would have found new.
fn row_score(score: f64, p: f64, opened: bool, was_open: bool) -> f64 {
    if opened {
        score.max(1.0 - p)
    } else if was_open {
        score.min(AlertConfig::default().close)
    } else {
        score
    }
}

fn parse_row(
    record: &csv::StringRecord,
    width: usize,
    ts: usize,
    columns: &[Column],
    names: &[&str],
) -> Result<(f64, Vec<f64>), String> {
    if record.len() != width {
        return Err(format!(
            "expected {width} fields as in the header, found {}",
            record.len()
        ));
    }
    let t = parse_timestamp(record.get(ts).unwrap_or_default())?;
    let values = columns
        .iter()
        .map(|c| {
            let text = record.get(c.index).unwrap_or_default();
            parse_value(text).map_err(|why| format!("column `{}`: {text:?} {why}", names[c.index]))
        })
        .collect::<Result<Vec<f64>, String>>()?;
    Ok((t, values))
}

fn skip_or_fail(
    options: &DetectOptions,
    file: &str,
    line: u64,
    message: String,
    summary: &mut DetectSummary,
) -> anyhow::Result<()> {
    if !options.skip_bad_rows {
        return Err(InputError::Row {
            file: file.to_string(),
            line,
            message,
        }
        .into());
    }
    summary.skipped += 1;
    if summary.examples.len() < 5 {
        summary.examples.push(format!("{file}:{line}: {message}"));
    }
    Ok(())
}

/// A progress bar on stderr, only on a terminal and for files worth it.
fn progress_bar(size: u64, path: &Path) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() || size < 2 << 20 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(size);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(path.display().to_string());
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_score_column_agrees_with_the_alerts() {
        let open = AlertConfig::default().open;
        // The opening row reaches the open threshold even when its
        // calibrated score is lower than its alerting one.
        assert!(row_score(0.99, 1e-6, true, false) >= open);
        // The rows of an open anomaly stay below it.
        assert!(row_score(1.0, 1e-9, false, true) < open);
        assert_eq!(row_score(0.5, 0.5, false, true), 0.5);
        // Elsewhere, the calibrated score as it is.
        assert_eq!(row_score(0.9, 0.1, false, false), 0.9);
    }

    #[test]
    fn timestamps_in_seconds_milliseconds_and_dates() {
        assert_eq!(parse_timestamp("1700000000"), Ok(1_700_000_000.0));
        assert_eq!(parse_timestamp("1700000000000"), Ok(1_700_000_000.0));
        assert_eq!(parse_timestamp("2014-04-10 00:00:00"), Ok(1_397_088_000.0));
        assert_eq!(parse_timestamp("2014-04-10T00:05:00Z"), Ok(1_397_088_300.0));
        assert!(parse_timestamp("yesterday").is_err());
    }

    #[test]
    fn missing_values_are_nan_and_garbage_is_an_error() {
        assert!(parse_value("").map(f64::is_nan).unwrap_or(false));
        assert!(parse_value("NaN").map(f64::is_nan).unwrap_or(false));
        assert_eq!(parse_value(" 4.5 "), Ok(4.5));
        assert!(parse_value("4,5").is_err());
        assert_eq!(parse_value("inf"), Err("is not a finite number"));
        assert_eq!(parse_value("-Infinity"), Err("is not a finite number"));
        assert_eq!(parse_value("1e308"), Ok(1e308));
    }
}
