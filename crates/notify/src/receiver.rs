//! Receivers: where messages go and in what shape. Each kind turns a batch
//! of [`Message`]s into the payload its service documents and posts it.

use std::collections::BTreeMap;
use std::time::Duration;

use aegis_core::action::{Secret, Webhook};
use aegis_core::config::{HttpUrl, ReceiverConfig, ReceiverKindName};
use aegis_core::template::Template;
use aegis_core::Severity;
use serde_json::Value;

use crate::alertmanager::{self, rfc3339};
use crate::email::Email;
use crate::message::{Event, Message};
use crate::{chat, push, text};

/// The kinds of receiver.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverKind {
    /// An Alertmanager-compatible webhook (`/api/v2/alerts`): a JSON array
    /// of alerts, firing and resolved.
    Alertmanager(Webhook),
    /// A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat).
    Slack(HttpUrl),
    /// A Discord webhook.
    Discord(HttpUrl),
    /// A Microsoft Teams incoming webhook or workflow.
    Teams(HttpUrl),
    /// An ntfy server (its root URL) and topic.
    Ntfy {
        /// The server's root URL.
        url: HttpUrl,
        /// The topic.
        topic: String,
        /// An access token.
        token: Option<Secret>,
    },
    /// A Gotify server (its base URL) and application token.
    Gotify {
        /// The server's base URL (`/message` is added).
        url: HttpUrl,
        /// The application token.
        token: Secret,
    },
    /// Any JSON webhook, one post per message, its body a template.
    Webhook {
        /// Where.
        url: HttpUrl,
        /// The body.
        body: Template,
        /// Extra headers.
        headers: BTreeMap<String, String>,
        /// A bearer token.
        token: Option<Secret>,
    },
    /// Email over SMTP.
    Email(Email),
}

impl ReceiverKind {
    /// Short, stable name (a metric label).
    pub fn as_str(&self) -> &'static str {
        match self {
            ReceiverKind::Alertmanager(_) => "alertmanager",
            ReceiverKind::Slack(_) => "slack",
            ReceiverKind::Discord(_) => "discord",
            ReceiverKind::Teams(_) => "teams",
            ReceiverKind::Ntfy { .. } => "ntfy",
            ReceiverKind::Gotify { .. } => "gotify",
            ReceiverKind::Webhook { .. } => "webhook",
            ReceiverKind::Email(_) => "email",
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

    /// The receiver a `[[notify.receivers]]` entry describes;
    /// `min_severity` applies when the entry sets none. The entry was
    /// validated when the file was loaded; what is still missing is named.
    pub fn from_config(c: &ReceiverConfig, min_severity: Severity) -> Result<Self, String> {
        let missing = |f: &str| format!("receiver {}: {f} is missing", c.name.as_str());
        let url = || c.url.clone().ok_or_else(|| missing("url"));
        let kind = match c.kind {
            ReceiverKindName::Alertmanager => ReceiverKind::Alertmanager(Webhook {
                url: url()?,
                token: c.token.clone(),
            }),
            ReceiverKindName::Slack => ReceiverKind::Slack(url()?),
            ReceiverKindName::Discord => ReceiverKind::Discord(url()?),
            ReceiverKindName::Teams => ReceiverKind::Teams(url()?),
            ReceiverKindName::Ntfy => ReceiverKind::Ntfy {
                url: url()?,
                topic: c.topic.clone().ok_or_else(|| missing("topic"))?,
                token: c.token.clone(),
            },
            ReceiverKindName::Gotify => ReceiverKind::Gotify {
                url: url()?,
                token: c.token.clone().ok_or_else(|| missing("token"))?,
            },
            ReceiverKindName::Webhook => ReceiverKind::Webhook {
                url: url()?,
                body: c.body.clone().ok_or_else(|| missing("body"))?,
                headers: c.headers.clone().unwrap_or_default(),
                token: c.token.clone(),
            },
            ReceiverKindName::Email => ReceiverKind::Email(Email {
                smtp: c.smtp.clone().ok_or_else(|| missing("smtp"))?,
                from: c.from.clone().ok_or_else(|| missing("from"))?,
                to: c.to.clone().ok_or_else(|| missing("to"))?,
                tls: c.tls.unwrap_or_default(),
                login: c.username.clone().zip(c.password.clone()),
                ca_file: c.ca_file.clone(),
            }),
        };
        Ok(Self {
            name: c.name.to_string(),
            kind,
            min_severity: c.min_severity.unwrap_or(min_severity),
            events: c.events.clone(),
        })
    }

    /// Whether the receiver wants `m`. Alertmanager hears no `healed`
    /// message: a heal is not an alert, and the alert it ends is resolved
    /// by its own message.
    pub fn wants(&self, m: &Message) -> bool {
        if m.event == Event::Test {
            return true;
        }
        if m.event == Event::Healed && matches!(self.kind, ReceiverKind::Alertmanager(_)) {
            return false;
        }
        m.severity >= self.min_severity
            && (self.events.is_empty() || self.events.contains(&m.event))
    }

    /// Where it posts, for messages.
    pub fn address(&self) -> String {
        match &self.kind {
            ReceiverKind::Alertmanager(h) => h.url.to_string(),
            ReceiverKind::Slack(u) | ReceiverKind::Discord(u) | ReceiverKind::Teams(u) => {
                u.to_string()
            }
            ReceiverKind::Ntfy { url, topic, .. } => {
                format!("{}/{topic}", url.as_str().trim_end_matches('/'))
            }
            ReceiverKind::Gotify { url, .. } => gotify_url(url),
            ReceiverKind::Webhook { url, .. } => url.to_string(),
            ReceiverKind::Email(e) => e.address(),
        }
    }

    /// Posts `batch` once within `timeout`; the reply, or why it failed.
    /// A batch too large for one post of the service goes in several.
    pub async fn post(
        &self,
        client: &reqwest::Client,
        batch: &[Message],
        instance: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        let json_posts = |url: &str, bodies: Vec<Value>| {
            bodies
                .into_iter()
                .map(|b| (client.post(url).timeout(timeout).json(&b), b))
                .collect::<Vec<_>>()
        };
        let requests = match &self.kind {
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
                return send(req, hook.url.as_str(), alerts.len()).await;
            }
            ReceiverKind::Slack(url) => json_posts(url.as_str(), chat::slack(batch, instance)),
            ReceiverKind::Discord(url) => json_posts(url.as_str(), chat::discord(batch, instance)),
            ReceiverKind::Teams(url) => json_posts(url.as_str(), chat::teams(batch, instance)),
            ReceiverKind::Ntfy { url, topic, token } => {
                let mut posts = json_posts(url.as_str(), vec![push::ntfy(batch, instance, topic)]);
                if let Some(token) = token {
                    posts = posts
                        .into_iter()
                        .map(|(r, b)| (r.bearer_auth(&token.0), b))
                        .collect();
                }
                posts
            }
            ReceiverKind::Gotify { url, token } => {
                json_posts(&gotify_url(url), vec![push::gotify(batch, instance)])
                    .into_iter()
                    .map(|(r, b)| (r.header("X-Gotify-Key", &token.0), b))
                    .collect()
            }
            ReceiverKind::Webhook {
                url,
                body,
                headers,
                token,
            } => batch
                .iter()
                .map(|m| {
                    let text = render(body, m, instance);
                    let mut req = client
                        .post(url.as_str())
                        .timeout(timeout)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(text);
                    for (k, v) in headers {
                        req = req.header(k.as_str(), v.as_str());
                    }
                    if let Some(token) = token {
                        req = req.bearer_auth(&token.0);
                    }
                    (req, Value::Null)
                })
                .collect(),
            ReceiverKind::Email(email) => return email.send(batch, instance, timeout).await,
        };
        let address = self.address();
        let n = requests.len();
        let mut replies = Vec::with_capacity(n);
        for (i, (req, _)) in requests.into_iter().enumerate() {
            match send(req, &address, batch.len()).await {
                Ok(r) => replies.push(r),
                // What went before is delivered; a retry sends it again,
                // which chat services show twice: say so.
                Err(e) if i > 0 => return Err(format!("{e} (post {} of {n})", i + 1)),
                Err(e) => return Err(e),
            }
        }
        Ok(replies.join("; "))
    }
}

/// Gotify's message endpoint under its base URL.
fn gotify_url(url: &HttpUrl) -> String {
    format!("{}/message", url.as_str().trim_end_matches('/'))
}

/// The generic webhook's body for `m`.
pub fn render(body: &Template, m: &Message, instance: &str) -> String {
    body.render(
        |f| match f {
            "key" => m.key.clone(),
            "event" => m.event.as_str().into(),
            "severity" => m.severity.as_str().into(),
            "name" => m.name.clone(),
            "summary" => m.summary.clone(),
            "description" => m.description.clone(),
            "instance" => m
                .labels
                .get("instance")
                .cloned()
                .unwrap_or_else(|| instance.to_string()),
            "starts_at" => rfc3339(m.starts_ms),
            "ends_at" => m.ends_ms.map(rfc3339).unwrap_or_default(),
            "text" => format!("{}\n{}", text::title(m), text::body(m, instance)),
            "labels" => serde_json::to_string(&m.labels).unwrap_or_else(|_| "{}".into()),
            _ => String::new(),
        },
        |l| m.labels.get(l).cloned(),
    )
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
