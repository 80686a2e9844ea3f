//! `[notify]`: where anomalies and healing outcomes are announced.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{HostPort, HttpUrl, Interval, Name, Problems};
use crate::action::{Secret, Webhook};
use crate::event::Event;
use crate::severity::Severity;
use crate::template::Template;

/// `[notify]`: anomalies posted as Alertmanager alerts (firing, then
/// resolved) to webhooks, Alertmanager's `/api/v2/alerts` among them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Alertmanager-compatible receivers, e.g.
    /// `[{ url = "http://127.0.0.1:9093/api/v2/alerts" }]`.
    pub webhooks: Vec<Webhook>,
    /// Receivers of every kind (`[[notify.receivers]]`).
    pub receivers: Vec<ReceiverConfig>,
    /// Only what is at least this severe (`info`, `warning`, `critical`).
    pub min_severity: Severity,
    /// Alerts arriving within this window are sent together.
    pub group_wait: Interval,
    /// At most this many posts per receiver per minute; the rest wait and
    /// are merged into the next post.
    pub max_posts_per_minute: u32,
    /// Delivery attempts per post (with exponential backoff).
    pub attempts: u32,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            receivers: Vec::new(),
            min_severity: Severity::Warning,
            group_wait: Interval::secs(5),
            max_posts_per_minute: 6,
            attempts: 5,
        }
    }
}

impl NotifyConfig {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            self.max_posts_per_minute >= 1,
            "notify.max_posts_per_minute",
            || "must be at least 1".to_string(),
        );
        p.range("notify.attempts", self.attempts, 1, 20);
        p.check(
            self.group_wait.0 <= Duration::from_secs(600),
            "notify.group_wait",
            || format!("must be at most 10m, got {}", self.group_wait),
        );
        let mut names = HashSet::new();
        for (i, r) in self.receivers.iter().enumerate() {
            let field = format!("notify.receivers.{i}");
            r.validate(&field, p);
            p.check(
                names.insert(r.name.as_str()),
                format!("{field}.name"),
                || format!("the name {:?} is used twice", r.name.as_str()),
            );
        }
    }
}

/// The kinds of receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiverKindName {
    /// Alertmanager's `POST /api/v2/alerts` (or anything that speaks it).
    Alertmanager,
    /// A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat).
    Slack,
    /// A Discord webhook.
    Discord,
    /// A Microsoft Teams incoming webhook or workflow (an Adaptive Card).
    Teams,
    /// An ntfy server and topic.
    Ntfy,
    /// A Gotify server and application token.
    Gotify,
    /// Email over SMTP.
    Email,
    /// Any JSON webhook, its body a template.
    Webhook,
}

impl ReceiverKindName {
    /// Snake-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReceiverKindName::Alertmanager => "alertmanager",
            ReceiverKindName::Slack => "slack",
            ReceiverKindName::Discord => "discord",
            ReceiverKindName::Teams => "teams",
            ReceiverKindName::Ntfy => "ntfy",
            ReceiverKindName::Gotify => "gotify",
            ReceiverKindName::Email => "email",
            ReceiverKindName::Webhook => "webhook",
        }
    }

    /// The fields a receiver of this kind may have, besides `name`, `kind`,
    /// `min_severity` and `events`; the required ones first, marked by
    /// [`ReceiverKindName::required`].
    pub fn fields(&self) -> &'static [&'static str] {
        match self {
            ReceiverKindName::Alertmanager => &["url", "token"],
            ReceiverKindName::Slack | ReceiverKindName::Discord | ReceiverKindName::Teams => {
                &["url"]
            }
            ReceiverKindName::Ntfy => &["url", "topic", "token"],
            ReceiverKindName::Gotify => &["url", "token"],
            ReceiverKindName::Email => &[
                "smtp", "from", "to", "tls", "username", "password", "ca_file",
            ],
            ReceiverKindName::Webhook => &["url", "body", "headers", "token"],
        }
    }

    /// The fields a receiver of this kind must have.
    pub fn required(&self) -> &'static [&'static str] {
        match self {
            ReceiverKindName::Alertmanager
            | ReceiverKindName::Slack
            | ReceiverKindName::Discord
            | ReceiverKindName::Teams => &["url"],
            ReceiverKindName::Ntfy => &["url", "topic"],
            ReceiverKindName::Gotify => &["url", "token"],
            ReceiverKindName::Email => &["smtp", "from", "to"],
            ReceiverKindName::Webhook => &["url", "body"],
        }
    }
}

/// How an email receiver secures its SMTP connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which the server must offer
    /// (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS at all: only for a relay on this host or a trusted network.
    None,
}

/// `[[notify.receivers]]`: one receiver. One flat table with the fields of
/// every kind; a field that does not belong to the receiver's kind is
/// refused, as is a missing one.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Unique name (metrics, `aegis notify test --receiver NAME`).
    pub name: Name,
    /// What it is.
    pub kind: ReceiverKindName,
    /// Only messages at least this severe; `notify.min_severity` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<Severity>,
    /// Only these events (`opened`, `healed`, `heal_failed`, `resolved`,
    /// `check_failing`, `check_passing`); all of them when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    /// Where it posts: the webhook URL, or the server's base URL (ntfy,
    /// Gotify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<HttpUrl>,
    /// A bearer token (Alertmanager, ntfy, webhook) or the application
    /// token (Gotify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// The ntfy topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The generic webhook's body template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Template>,
    /// Extra headers of the generic webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// The SMTP server, `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<HostPort>,
    /// The sender's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The recipients' addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<String>>,
    /// `starttls` (default), `tls` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SmtpTls>,
    /// SMTP login (with `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// SMTP password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// A PEM file of the certificate authorities the SMTP server's
    /// certificate must chain to, instead of the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// Every kind's own fields (for "does not belong to this kind").
const RECEIVER_FIELDS: &[&str] = &[
    "url", "token", "topic", "body", "headers", "smtp", "from", "to", "tls", "username",
    "password", "ca_file",
];

impl ReceiverConfig {
    /// A receiver of `kind` named `name` with none of its fields set.
    pub fn new(name: Name, kind: ReceiverKindName) -> Self {
        Self {
            name,
            kind,
            min_severity: None,
            events: Vec::new(),
            url: None,
            token: None,
            topic: None,
            body: None,
            headers: None,
            smtp: None,
            from: None,
            to: None,
            tls: None,
            username: None,
            password: None,
            ca_file: None,
        }
    }

    fn set_fields(&self) -> Vec<&'static str> {
        let set = [
            ("url", self.url.is_some()),
            ("token", self.token.is_some()),
            ("topic", self.topic.is_some()),
            ("body", self.body.is_some()),
            ("headers", self.headers.is_some()),
            ("smtp", self.smtp.is_some()),
            ("from", self.from.is_some()),
            ("to", self.to.is_some()),
            ("tls", self.tls.is_some()),
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("ca_file", self.ca_file.is_some()),
        ];
        debug_assert_eq!(set.len(), RECEIVER_FIELDS.len());
        set.iter().filter(|(_, on)| *on).map(|(f, _)| *f).collect()
    }

    fn validate(&self, field: &str, p: &mut Problems) {
        let kind = self.kind;
        let set = self.set_fields();
        for f in &set {
            p.check(kind.fields().contains(f), format!("{field}.{f}"), || {
                format!(
                    "{f} does not belong to a receiver of kind {}; it takes {}",
                    kind.as_str(),
                    kind.fields().join(", ")
                )
            });
        }
        for f in kind.required() {
            p.check(set.contains(f), format!("{field}.{f}"), || {
                format!("a receiver of kind {} needs {f}", kind.as_str())
            });
        }
        if let Some(topic) = &self.topic {
            p.check(
                !topic.is_empty()
                    && topic.len() <= 64
                    && topic
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                format!("{field}.topic"),
                || {
                    format!(
                        "the topic {topic:?} must be 1 to 64 letters, digits, - or _ (as ntfy requires)"
                    )
                },
            );
        }
        if let Some(from) = &self.from {
            p.check(is_address(from), format!("{field}.from"), || {
                format!("{from:?} is not an email address, like \"aegis@example.com\"")
            });
        }
        if let Some(to) = &self.to {
            p.check(!to.is_empty(), format!("{field}.to"), || {
                "names no recipient".to_string()
            });
            for (j, a) in to.iter().enumerate() {
                p.check(is_address(a), format!("{field}.to.{j}"), || {
                    format!("{a:?} is not an email address, like \"ops@example.com\"")
                });
            }
        }
        p.check(
            self.username.is_some() == self.password.is_some(),
            format!("{field}.username"),
            || "username and password go together".to_string(),
        );
        if let Some(headers) = &self.headers {
            for (name, value) in headers {
                p.check(
                    !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
                        && !value.bytes().any(|b| b == b'\r' || b == b'\n'),
                    format!("{field}.headers.{name}"),
                    || format!("{name:?} is not a valid header (letters, digits, - and _; no line breaks in the value)"),
                );
            }
        }
        if self.kind == ReceiverKindName::Email && self.tls == Some(SmtpTls::None) {
            p.check(
                self.password.is_none(),
                format!("{field}.password"),
                || "a password would cross the network in the clear with tls = \"none\"; use starttls or tls".to_string(),
            );
        }
    }
}

/// Whether `s` looks like `local@domain` (the server has the last word).
fn is_address(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
}
