//! A message as words for people: the title, the body, a colour. Every
//! chat, push and email receiver says the same thing in its own wrapping.

use std::fmt::Write as _;

use aegis_core::Severity;

use crate::alertmanager::rfc3339;
use crate::message::{Event, Message};

/// What the event is, in capitals, at the start of a title.
pub fn status(e: Event) -> &'static str {
    match e {
        Event::Opened => "FIRING",
        Event::Healed => "HEALED",
        Event::HealFailed => "HEAL FAILED",
        Event::Resolved => "RESOLVED",
        Event::CheckFailing => "FAILING",
        Event::CheckPassing => "PASSING",
        Event::Test => "TEST",
    }
}

/// One line: `FIRING [warning] spike on host_load1`.
pub fn title(m: &Message) -> String {
    if m.event.is_recovery() || m.event == Event::Test {
        format!("{} {}", status(m.event), m.summary)
    } else {
        format!(
            "{} [{}] {}",
            status(m.event),
            m.severity.as_str(),
            m.summary
        )
    }
}

/// The title of a batch: the message's own for one, a count for more.
pub fn batch_title(batch: &[Message], instance: &str) -> String {
    match batch {
        [one] => title(one),
        [first, ..] => format!(
            "{} messages from {instance}, the first: {}",
            batch.len(),
            title(first)
        ),
        [] => format!("nothing to say from {instance}"),
    }
}

/// The details: the description, then where, when and the labels.
pub fn body(m: &Message, instance: &str) -> String {
    let mut out = String::new();
    if !m.description.is_empty() {
        out.push_str(&m.description);
        out.push_str("\n\n");
    }
    let host = m.labels.get("instance").map_or(instance, String::as_str);
    let _ = writeln!(out, "host: {host}");
    let _ = write!(out, "since: {}", rfc3339(m.starts_ms));
    if let Some(end) = m.ends_ms {
        let _ = write!(out, "\nended: {}", rfc3339(end));
    }
    let labels: Vec<String> = m
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != "instance")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !labels.is_empty() {
        let _ = write!(out, "\nlabels: {}", labels.join(", "));
    }
    out
}

/// Every message of a batch as text: titles and bodies, one after the other.
pub fn batch_text(batch: &[Message], instance: &str) -> String {
    let mut out = String::new();
    for (i, m) in batch.iter().enumerate() {
        if i > 0 {
            out.push_str("\n\n");
        }
        if batch.len() > 1 {
            out.push_str(&title(m));
            out.push('\n');
        }
        out.push_str(&body(m, instance));
    }
    out
}

/// A colour as `0xRRGGBB`: green for what is over, grey for a test, else
/// by severity.
pub fn color(m: &Message) -> u32 {
    if m.event.is_recovery() {
        0x2E_B6_7D
    } else if m.event == Event::Test {
        0x80_80_80
    } else {
        match m.severity {
            Severity::Critical => 0xD0_00_00,
            Severity::Warning => 0xE8_A3_17,
            Severity::Info => 0x43_9F_E0,
        }
    }
}

/// The most severe message that is not over, else the first: what a
/// batch's priority and colour follow.
pub fn headline(batch: &[Message]) -> Option<&Message> {
    batch
        .iter()
        .filter(|m| !m.event.is_recovery())
        .max_by_key(|m| m.severity)
        .or_else(|| batch.first())
}

/// `s` cut to at most `max` characters, ending in `…` when cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `s` cut to at most `max` bytes on a character boundary, ending in `…`
/// when cut.
pub fn clip_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_keeps_whole_characters() {
        assert_eq!(clip("héllo", 10), "héllo");
        assert_eq!(clip("héllo", 3), "hé…");
        let cut = clip_bytes("ééééé", 6);
        assert!(cut.len() <= 6, "{cut}");
        assert!(cut.ends_with('…'));
    }
}
