//! Checks: explicit conditions with the semantics of Kubernetes probes and
//! Monit tests, as pure state machines (time passed in, no I/O).
//!
//! - [`CheckOutcome`]: what one run of a check found (passed, failed with
//!   an error class, or no data yet).
//! - [`CheckMachine`]: `failure_threshold` failures in a row make a check
//!   failing, `success_threshold` successes in a row make it pass again;
//!   failures inside the start period do not count until the first pass.
//! - [`Dependencies`]: `depends_on` as a graph, refused when it has a cycle;
//!   a check whose dependency fails (or is blocked) is blocked.
//! - [`HealBackoff`]: crash-loop back-off of one target's heals (10 s,
//!   doubling, capped at 5 minutes, reset after 10 minutes passing),
//!   which never gives up for good.
//! - [`CheckStatus`]: what the API and the dashboard show of a check.

mod backoff;
mod deps;
mod machine;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use backoff::{HealBackoff, HealBackoffPolicy};
pub use deps::{Dependencies, DependencyError};
pub use machine::{CheckMachine, Thresholds, Transition};

/// Where a check stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    /// No verdict yet (just started, in its start period, or unblocked).
    #[default]
    Unknown,
    /// Passing.
    Passing,
    /// Failed `failure_threshold` times in a row.
    Failing,
    /// A dependency fails: never healed or alerted on its own.
    Blocked,
}

impl CheckState {
    /// Snake-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckState::Unknown => "unknown",
            CheckState::Passing => "passing",
            CheckState::Failing => "failing",
            CheckState::Blocked => "blocked",
        }
    }
}

impl fmt::Display for CheckState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Why a check failed: a bounded set (a metric label), never free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// No answer within the timeout.
    Timeout,
    /// Connection refused (nothing listens).
    Refused,
    /// The name did not resolve.
    Dns,
    /// The TLS handshake or the certificate failed verification.
    Tls,
    /// The certificate expires too soon.
    Expiring,
    /// The HTTP status was not accepted.
    BadStatus,
    /// The body did not hold what was expected.
    BodyMismatch,
    /// A TCP reply was not what was expected.
    BadReply,
    /// No matching process runs (or fewer than `min_count`).
    Missing,
    /// More matching processes than `max_count`.
    TooMany,
    /// Restarted more than `max_restarts` within `restart_window`.
    Restarting,
    /// Used more than allowed (CPU, memory) for longer than allowed.
    Resources,
    /// The program exited with a non-zero status.
    ExitStatus,
    /// The program's output lacked what was expected.
    OutputMismatch,
    /// The program does not exist.
    NotFound,
    /// A value crossed its threshold (disk, inodes, a series).
    Threshold,
    /// The file system is mounted read-only.
    ReadOnly,
    /// The container does not run.
    NotRunning,
    /// The container's health check fails.
    Unhealthy,
    /// Anything else (reset connection, unreadable file...).
    Other,
}

impl FailureClass {
    /// Snake-case name (a metric label).
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureClass::Timeout => "timeout",
            FailureClass::Refused => "refused",
            FailureClass::Dns => "dns",
            FailureClass::Tls => "tls",
            FailureClass::Expiring => "expiring",
            FailureClass::BadStatus => "bad_status",
            FailureClass::BodyMismatch => "body_mismatch",
            FailureClass::BadReply => "bad_reply",
            FailureClass::Missing => "missing",
            FailureClass::TooMany => "too_many",
            FailureClass::Restarting => "restarting",
            FailureClass::Resources => "resources",
            FailureClass::ExitStatus => "exit_status",
            FailureClass::OutputMismatch => "output_mismatch",
            FailureClass::NotFound => "not_found",
            FailureClass::Threshold => "threshold",
            FailureClass::ReadOnly => "read_only",
            FailureClass::NotRunning => "not_running",
            FailureClass::Unhealthy => "unhealthy",
            FailureClass::Other => "other",
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What one run of a check found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CheckOutcome {
    /// The condition holds.
    Passed,
    /// It does not.
    Failed {
        /// Why, as a class.
        class: FailureClass,
        /// Why, in words.
        message: String,
    },
    /// Nothing to judge yet (a series check whose series does not exist
    /// yet): neither a success nor a failure.
    NoData {
        /// What is missing.
        message: String,
    },
}

impl CheckOutcome {
    /// A failure.
    pub fn failed(class: FailureClass, message: impl Into<String>) -> Self {
        CheckOutcome::Failed {
            class,
            message: message.into(),
        }
    }

    /// Whether it passed (`None` for no data).
    pub fn ok(&self) -> Option<bool> {
        match self {
            CheckOutcome::Passed => Some(true),
            CheckOutcome::Failed { .. } => Some(false),
            CheckOutcome::NoData { .. } => None,
        }
    }

    /// The failure class, if it failed.
    pub fn class(&self) -> Option<FailureClass> {
        match self {
            CheckOutcome::Failed { class, .. } => Some(*class),
            _ => None,
        }
    }

    /// The message, if any.
    pub fn message(&self) -> &str {
        match self {
            CheckOutcome::Passed => "",
            CheckOutcome::Failed { message, .. } | CheckOutcome::NoData { message } => message,
        }
    }
}

/// One run's result, as recorded and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// When it ended, Unix ms.
    pub at_ms: i64,
    /// What it found.
    #[serde(flatten)]
    pub outcome: CheckOutcome,
    /// How long it took.
    pub latency_ms: Option<f64>,
    /// The value measured (days left, a ratio, a count...), when there is one.
    pub value: Option<f64>,
}

/// What a check is about: the default target of the actions it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSubject {
    /// A container (container actions).
    pub container: Option<String>,
    /// A systemd unit (service restarts).
    pub service: Option<String>,
    /// The process check this is (signals with `pid = 0`).
    pub process: Option<String>,
}

/// A change of a check's state, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionRecord {
    /// The check.
    pub check: String,
    /// When, Unix ms.
    pub at_ms: i64,
    /// From.
    pub from: CheckState,
    /// To.
    pub to: CheckState,
    /// The result that caused it (none for a dependency's change).
    pub result: Option<CheckResult>,
    /// Why, in words (the dependency that blocked it, say).
    pub reason: String,
}

/// What the API and the dashboard show of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// Its name.
    pub name: String,
    /// Its kind (`http`, `tcp`...).
    pub kind: String,
    /// What it is about.
    pub subject: CheckSubject,
    /// Where it stands.
    pub state: CheckState,
    /// Since when, Unix ms.
    pub since_ms: i64,
    /// Failures in a row now.
    pub failures_in_row: u32,
    /// Successes in a row now.
    pub successes_in_row: u32,
    /// The last result.
    pub last: Option<CheckResult>,
    /// When it runs next, Unix ms.
    pub next_run_ms: Option<i64>,
    /// The dependencies that block it, when blocked.
    pub blocked_by: Vec<String>,
    /// Something to know that is not a failure (a series pattern that
    /// matches nothing yet).
    pub warning: Option<String>,
    /// Failed results since start, by class.
    pub failures: BTreeMap<FailureClass, u64>,
    /// Runs since start.
    pub runs: u64,
}

/// One check with its recent results and its stored transitions, for
/// `GET /api/v1/checks/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckDetail {
    /// The check now.
    pub check: CheckStatus,
    /// Its recent results, newest last.
    pub results: Vec<CheckResult>,
    /// Its transitions, newest first (from the store: they survive restarts).
    pub transitions: Vec<TransitionRecord>,
}
