//! Chat receivers: each batch becomes the payload its service documents.
//!
//! - Slack-compatible incoming webhooks (Slack, Mattermost, Rocket.Chat):
//!   `text` and `attachments` with `fallback`, `color`, `title`, `text`,
//!   `fields` and `ts`
//!   (<https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks/>,
//!   <https://docs.slack.dev/reference/attachments/>,
//!   <https://developers.mattermost.com/integrate/webhooks/incoming/>,
//!   <https://docs.rocket.chat/docs/integrations>). At most 20 attachments
//!   a post, as Slack advises.
//! - Discord's "Execute Webhook": `content` (at most 2,000 characters) and
//!   at most 10 `embeds` whose text adds up to at most 6,000 characters
//!   (title 256, description 4,096, 25 fields of 256 and 1,024), with
//!   `allowed_mentions` empty so a message cannot ping anyone
//!   (<https://discord.com/developers/docs/resources/webhook#execute-webhook>,
//!   <https://discord.com/developers/docs/resources/message#embed-object-embed-limits>).
//! - Microsoft Teams incoming webhooks and workflows: a `message` with one
//!   Adaptive Card attachment
//!   (<https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using#send-adaptive-cards-using-an-incoming-webhook>,
//!   <https://adaptivecards.io/explorer/>), under Teams' 28 KB limit.
//!
//! A batch too large for one post is split into several, in order.

use serde_json::{json, Value};

use crate::alertmanager::rfc3339;
use crate::message::Message;
use crate::text::{batch_title, body, clip, clip_bytes, color, headline, title};

/// Attachments in one Slack post, at most.
const SLACK_ATTACHMENTS: usize = 20;
/// Embeds in one Discord post, at most (Discord's limit).
const DISCORD_EMBEDS: usize = 10;
/// Characters of all embeds of one Discord post, at most (Discord's limit).
const DISCORD_EMBED_CHARS: usize = 6_000;
/// Messages in one Teams card, at most.
const TEAMS_MESSAGES: usize = 10;
/// Bytes of one Teams post, at most (under Teams' 28 KB).
const TEAMS_BYTES: usize = 24_000;

/// The Slack-compatible payloads for `batch`.
pub fn slack(batch: &[Message], instance: &str) -> Vec<Value> {
    batch
        .chunks(SLACK_ATTACHMENTS)
        .map(|chunk| {
            let attachments: Vec<Value> = chunk
                .iter()
                .map(|m| {
                    let t = clip(&title(m), 300);
                    json!({
                        "fallback": t,
                        "color": format!("#{:06X}", color(m)),
                        "title": t,
                        "text": clip(&body(m, instance), 3_000),
                        "fields": [
                            {"title": "severity", "value": m.severity.as_str(), "short": true},
                            {"title": "event", "value": m.event.as_str(), "short": true},
                        ],
                        "ts": m.starts_ms.div_euclid(1000),
                    })
                })
                .collect();
            json!({
                "text": clip(&batch_title(chunk, instance), 3_000),
                "attachments": attachments,
            })
        })
        .collect()
}

/// The Discord payloads for `batch`.
pub fn discord(batch: &[Message], instance: &str) -> Vec<Value> {
    let mut posts = Vec::new();
    let mut embeds: Vec<Value> = Vec::new();
    let mut chars = 0;
    let mut first = 0;
    for (i, m) in batch.iter().enumerate() {
        let t = clip(&title(m), 256);
        let d = clip(&body(m, instance), 1_500);
        let footer = clip(&format!("aegis on {instance}"), 100);
        let size = t.chars().count()
            + d.chars().count()
            + footer.chars().count()
            + "severity".len()
            + m.severity.as_str().len();
        if !embeds.is_empty()
            && (embeds.len() == DISCORD_EMBEDS || chars + size > DISCORD_EMBED_CHARS)
        {
            posts.push(discord_post(
                &batch[first..i],
                std::mem::take(&mut embeds),
                instance,
            ));
            chars = 0;
            first = i;
        }
        chars += size;
        embeds.push(json!({
            "title": t,
            "description": d,
            "color": color(m),
            "timestamp": rfc3339(m.starts_ms),
            "fields": [{"name": "severity", "value": m.severity.as_str(), "inline": true}],
            "footer": {"text": footer},
        }));
    }
    if !embeds.is_empty() {
        posts.push(discord_post(&batch[first..], embeds, instance));
    }
    posts
}

fn discord_post(chunk: &[Message], embeds: Vec<Value>, instance: &str) -> Value {
    json!({
        "username": "Aegis Sentinel",
        "content": clip(&batch_title(chunk, instance), 2_000),
        "embeds": embeds,
        "allowed_mentions": {"parse": []},
    })
}

/// The Teams payloads for `batch`.
pub fn teams(batch: &[Message], instance: &str) -> Vec<Value> {
    batch
        .chunks(TEAMS_MESSAGES)
        .map(|chunk| {
            let per = TEAMS_BYTES / chunk.len().max(1) / 2;
            let mut body_items = vec![json!({
                "type": "TextBlock",
                "text": clip(&batch_title(chunk, instance), 400),
                "weight": "Bolder",
                "size": "Medium",
                "wrap": true,
                "color": teams_color(headline(chunk)),
            })];
            for m in chunk {
                let mut items = Vec::new();
                if chunk.len() > 1 {
                    items.push(json!({
                        "type": "TextBlock",
                        "text": clip(&title(m), 400),
                        "weight": "Bolder",
                        "wrap": true,
                        "color": teams_color(Some(m)),
                    }));
                }
                if !m.description.is_empty() {
                    items.push(json!({
                        "type": "TextBlock",
                        "text": clip_bytes(&m.description, per),
                        "wrap": true,
                    }));
                }
                let mut facts = vec![
                    json!({"title": "host", "value": m.labels.get("instance").map_or(instance, String::as_str)}),
                    json!({"title": "severity", "value": m.severity.as_str()}),
                    json!({"title": "event", "value": m.event.as_str()}),
                    json!({"title": "since", "value": rfc3339(m.starts_ms)}),
                ];
                facts.extend(
                    m.labels
                        .iter()
                        .filter(|(k, _)| k.as_str() != "instance")
                        .take(10)
                        .map(|(k, v)| json!({"title": k, "value": clip(v, 200)})),
                );
                items.push(json!({"type": "FactSet", "facts": facts}));
                body_items.push(json!({
                    "type": "Container",
                    "separator": true,
                    "items": items,
                }));
            }
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": body_items,
                    },
                }],
            })
        })
        .collect()
}

/// An Adaptive Card text colour (`Attention`, `Warning`, `Good`, `Accent`,
/// `Default`).
fn teams_color(m: Option<&Message>) -> &'static str {
    match m.map(color) {
        Some(0xD0_00_00) => "Attention",
        Some(0xE8_A3_17) => "Warning",
        Some(0x2E_B6_7D) => "Good",
        Some(0x43_9F_E0) => "Accent",
        _ => "Default",
    }
}
