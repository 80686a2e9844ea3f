//! The Alertmanager payload, built here and nowhere else: a JSON array of
//! alerts as Alertmanager's API v2 defines `POST /api/v2/alerts`
//! (<https://prometheus.io/docs/alerting/latest/clients/>): `labels`,
//! `annotations`, `startsAt`, `endsAt` (set when resolved) and
//! `generatorURL`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::message::Message;

/// One alert, as Alertmanager's API v2 defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Identifying labels: `alertname`, `severity`, `instance`, `target`...
    pub labels: BTreeMap<String, String>,
    /// Human text: `summary`, `description`.
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 start.
    pub starts_at: String,
    /// RFC 3339 end; set when the alert is resolved.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ends_at: Option<String>,
    /// Where to look.
    #[serde(
        rename = "generatorURL",
        skip_serializing_if = "String::is_empty",
        default
    )]
    pub generator_url: String,
}

/// RFC 3339 text of a Unix-ms time.
pub fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// The alert for a message sent from host `instance`.
pub fn alert(m: &Message, instance: &str) -> Alert {
    let mut labels = m.labels.clone();
    labels.insert("alertname".into(), m.name.clone());
    labels.insert("severity".into(), m.severity.as_str().into());
    labels
        .entry("instance".into())
        .or_insert_with(|| instance.to_string());
    let mut annotations = BTreeMap::new();
    annotations.insert("summary".into(), m.summary.clone());
    if !m.description.is_empty() {
        annotations.insert("description".into(), m.description.clone());
    }
    annotations.insert("event".into(), m.event.as_str().into());
    Alert {
        labels,
        annotations,
        starts_at: rfc3339(m.starts_ms),
        ends_at: m.ends_ms.map(rfc3339),
        generator_url: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Event;
    use aegis_core::Severity;

    #[test]
    fn a_resolved_message_is_an_alert_with_an_end() {
        let m = Message::new(
            "anomaly:7",
            Event::Resolved,
            Severity::Warning,
            "AegisAnomaly",
            "warning spike on host_load1",
            1_700_000_000_000,
        )
        .label("series", "host_load1")
        .resolved_at(1_700_000_060_000);
        let a = alert(&m, "node-1");
        let json = serde_json::to_value(&a).expect("json");
        assert_eq!(json["labels"]["alertname"], "AegisAnomaly");
        assert_eq!(json["labels"]["severity"], "warning");
        assert_eq!(json["labels"]["instance"], "node-1");
        assert_eq!(json["startsAt"], "2023-11-14T22:13:20.000Z");
        assert_eq!(json["endsAt"], "2023-11-14T22:14:20.000Z");
        assert!(json.get("generatorURL").is_none());
    }
}
