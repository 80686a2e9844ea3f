//! What is wrong with a configuration: each problem with its line, column
//! and dotted field, all of a file's problems at once.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when the problem is at a place in the file.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// Dotted path of the field, e.g. `collect.interval` or `probes.0.url`.
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

/// Semantic problems found by the sections' `validate`, by dotted field;
/// the loader gives each its line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems(Vec<(String, String)>);

impl Problems {
    /// No problem yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem at `field`.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }

    /// Records a problem at `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: impl Into<String>, message: impl FnOnce() -> String) {
        if !ok {
            self.push(field, message());
        }
    }

    /// Checks that `value` is within `lo..=hi`.
    pub fn range<T: PartialOrd + fmt::Display>(&mut self, field: &str, value: T, lo: T, hi: T) {
        if !(lo <= value && value <= hi) {
            self.push(field, format!("must be between {lo} and {hi}, got {value}"));
        }
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems as `(field, message)` pairs.
    pub fn into_vec(self) -> Vec<(String, String)> {
        self.0
    }

    /// The problems found so far.
    pub fn iter(&self) -> impl Iterator<Item = &(String, String)> {
        self.0.iter()
    }
}
