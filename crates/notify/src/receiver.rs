//! Receivers: where messages go and in what shape. Each kind turns a batch
//! of [`Message`]s into the payload its service documents and posts it.

use std::time::Duration;

use aegis_core::action::Webhook;
use aegis_core::Severity;

use crate::alertmanager;
use crate::message::{Event, Message};

/// The kinds of receiver.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverKind {
    /// An Alertmanager-compatible webhook (`/api/v2/alerts`): a JSON array
    /// of alerts, firing and resolved.
    Alertmanager(Webhook),
}

impl ReceiverKind {
    /// Short, stable name (a metric label).
    pub fn as_str(&self) -> &'static str {
        match self {
            ReceiverKind::Alertmanager(_) => "alertmanager",
        }
    }
}

/// One receiver and what it wants to hear.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    /// Its name (records, metrics).
    pub name: String,
    /// Where and how.
    pub kind: ReceiverKind,
    /// Only messages at least this severe.
    pub min_severity: Severity,
    /// Only these events; every event when empty.
    pub events: Vec<Event>,
}

impl Receiver {
    /// An Alertmanager-compatible webhook that hears everything at least
    /// `min_severity`.
    pub fn alertmanager(name: impl Into<String>, hook: Webhook, min_severity: Severity) -> Self {
        Self {
            name: name.into(),
            kind: ReceiverKind::Alertmanager(hook),
            min_severity,
            events: Vec::new(),
        }
    }

    /// Whether the receiver wants `m`.
    pub fn wants(&self, m: &Message) -> bool {
        m.event == Event::Test
            || (m.severity >= self.min_severity
                && (self.events.is_empty() || self.events.contains(&m.event)))
    }

    /// Where it posts, for messages.
    pub fn address(&self) -> &str {
        match &self.kind {
            ReceiverKind::Alertmanager(h) => h.url.as_str(),
        }
    }

    /// Posts `batch` once within `timeout`; the reply, or why it failed.
    pub async fn post(
        &self,
        client: &reqwest::Client,
        batch: &[Message],
        instance: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        match &self.kind {
            ReceiverKind::Alertmanager(hook) => {
                let alerts: Vec<alertmanager::Alert> = batch
                    .iter()
                    .map(|m| alertmanager::alert(m, instance))
                    .collect();
                let mut req = client
                    .post(hook.url.as_str())
                    .timeout(timeout)
                    .json(&alerts);
                if let Some(token) = &hook.token {
                    req = req.bearer_auth(&token.0);
                }
                send(req, hook.url.as_str(), alerts.len()).await
            }
        }
    }
}

/// Sends a request; a 2xx answer is a delivery.
async fn send(req: reqwest::RequestBuilder, url: &str, n: usize) -> Result<String, String> {
    let response = req.send().await.map_err(|e| {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        format!("posting to {url}: {text}")
    })?;
    let status = response.status();
    if status.is_success() {
        Ok(format!("{n} message(s) posted to {url} ({status})"))
    } else {
        let body = response.text().await.unwrap_or_default();
        Err(format!(
            "{url} answered {status}: {}",
            body.chars().take(200).collect::<String>()
        ))
    }
}
