//! Push receivers: one notification per batch.
//!
//! - ntfy: publishing as JSON to the server's root URL, with `topic`,
//!   `title`, `message`, `priority` (1 to 5) and `tags` (emoji short
//!   codes), and an access token as a bearer
//!   (<https://docs.ntfy.sh/publish/#publish-as-json>,
//!   <https://docs.ntfy.sh/publish/#access-tokens>). A message is at most
//!   4,096 bytes, or ntfy turns it into an attachment.
//! - Gotify: `POST /message` with the application token in
//!   `X-Gotify-Key`, and `title`, `message`, `priority` and the
//!   `client::display` extra (<https://gotify.net/docs/pushmsg>,
//!   <https://gotify.net/docs/msgextras>).

use aegis_core::Severity;
use serde_json::{json, Value};

use crate::message::{Event, Message};
use crate::text::{batch_text, batch_title, clip, clip_bytes, headline};

/// Bytes of an ntfy message, at most.
const NTFY_MESSAGE_BYTES: usize = 4_000;

/// The ntfy payload for `batch`, on `topic`.
pub fn ntfy(batch: &[Message], instance: &str, topic: &str) -> Value {
    let head = headline(batch);
    let (priority, tag) = match head {
        Some(m) if m.event.is_recovery() => (3, "white_check_mark"),
        Some(m) if m.event == Event::Test => (3, "test_tube"),
        Some(m) => match m.severity {
            Severity::Critical => (5, "rotating_light"),
            Severity::Warning => (4, "warning"),
            Severity::Info => (3, "information_source"),
        },
        None => (3, "information_source"),
    };
    json!({
        "topic": topic,
        "title": clip(&batch_title(batch, instance), 250),
        "message": clip_bytes(&batch_text(batch, instance), NTFY_MESSAGE_BYTES),
        "priority": priority,
        "tags": [tag, "aegis"],
    })
}

/// The Gotify payload for `batch`.
pub fn gotify(batch: &[Message], instance: &str) -> Value {
    let priority = match headline(batch) {
        Some(m) if m.event.is_recovery() || m.event == Event::Test => 2,
        Some(m) => match m.severity {
            Severity::Critical => 8,
            Severity::Warning => 5,
            Severity::Info => 2,
        },
        None => 2,
    };
    json!({
        "title": clip(&batch_title(batch, instance), 250),
        "message": clip_bytes(&batch_text(batch, instance), 60_000),
        "priority": priority,
        "extras": {"client::display": {"contentType": "text/plain"}},
    })
}
