//! How bad something is: one ordered type used by detection, checks, rules,
//! the store, the API and notifications alike.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How bad an anomaly, a failing check or an incident is. Ordered:
/// `Info < Warning < Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Unusual, not alarming: recorded and shown, not notified by default.
    #[default]
    Info,
    /// Worth telling someone.
    Warning,
    /// Extreme, or healing did not help.
    Critical,
}

impl Severity {
    /// Every severity, least severe first.
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    /// The severity of an anomaly whose calibrated tail probability is `p`.
    pub fn from_p(p: f64) -> Self {
        if p <= 1e-7 {
            Severity::Critical
        } else if p <= 1e-4 {
            Severity::Warning
        } else {
            Severity::Info
        }
    }

    /// Lower-case name, as written in configuration and served by the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The text was not a severity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a severity; write info, warning or critical")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownSeverity(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_and_round_trips_through_text() {
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Critical);
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).expect("json"), format!("\"{s}\""));
        }
        assert!("severe".parse::<Severity>().is_err());
    }

    #[test]
    fn from_p_follows_the_tail_probability() {
        assert_eq!(Severity::from_p(0.5), Severity::Info);
        assert_eq!(Severity::from_p(1e-5), Severity::Warning);
        assert_eq!(Severity::from_p(1e-9), Severity::Critical);
    }
}
