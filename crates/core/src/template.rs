//! The body template of a generic JSON webhook (`kind = "webhook"`,
//! `body = '{"text": "{{summary}}"}'`): text with `{{placeholder}}`s that
//! are replaced by a message's fields, escaped for a JSON string, so that
//! a placeholder written inside quotes always gives valid JSON whatever
//! the message says. `{{labels}}` is the whole label map as a JSON object
//! (write it outside quotes), `{{label.NAME}}` one label's value (empty
//! when the message has no such label).
//!
//! An unknown placeholder, or a body that is not JSON once filled in, is a
//! configuration error, found when the file is loaded.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The fields a placeholder may name.
pub const FIELDS: &[&str] = &[
    "key",
    "event",
    "severity",
    "name",
    "summary",
    "description",
    "instance",
    "starts_at",
    "ends_at",
    "text",
    "labels",
];

/// Longest template, in bytes.
const MAX_LEN: usize = 64 * 1024;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text as written.
    Text(String),
    /// `{{field}}`: one of [`FIELDS`].
    Field(&'static str),
    /// `{{label.NAME}}`.
    Label(String),
}

/// A parsed body template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

impl Template {
    /// The pieces, in order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Fills the template in: `field` gives a field's value (raw text,
    /// escaped here; `labels` is JSON, inserted as it is), `label` a
    /// label's value.
    pub fn render(
        &self,
        field: impl Fn(&str) -> String,
        label: impl Fn(&str) -> Option<String>,
    ) -> String {
        let mut out = String::with_capacity(self.source.len() + 256);
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field("labels") => out.push_str(&field("labels")),
                Piece::Field(f) => escape_into(&mut out, &field(f)),
                Piece::Label(name) => escape_into(&mut out, &label(name).unwrap_or_default()),
            }
        }
        out
    }

    /// The body for a made-up message, to check that the template gives
    /// JSON.
    pub fn sample(&self) -> String {
        self.render(
            |f| match f {
                "labels" => r#"{"target":"web \"1\""}"#.to_string(),
                _ => format!("sample {f} with \"quotes\", \\ and a\nnew line"),
            },
            |l| Some(format!("sample {l}")),
        )
    }
}

/// Appends `s` escaped as the inside of a JSON string.
fn escape_into(out: &mut String, s: &str) {
    let quoted = serde_json::Value::String(s.to_string()).to_string();
    out.push_str(&quoted[1..quoted.len() - 1]);
}

impl FromStr for Template {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_LEN {
            return Err(format!("the body template is longer than {MAX_LEN} bytes"));
        }
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("a placeholder is not closed: {:?}", clip(&rest[open..])))?;
            let name = after[..close].trim();
            let piece = if let Some(label) = name.strip_prefix("label.") {
                if label.is_empty() {
                    return Err("{{label.}} names no label; write {{label.target}}".into());
                }
                Piece::Label(label.to_string())
            } else if let Some(f) = FIELDS.iter().find(|f| **f == name) {
                Piece::Field(f)
            } else {
                return Err(format!(
                    "unknown placeholder {{{{{name}}}}}; use {{{{label.NAME}}}} or one of {}",
                    FIELDS.join(", ")
                ));
            };
            pieces.push(piece);
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        let t = Template {
            source: s.to_string(),
            pieces,
        };
        serde_json::from_str::<serde_json::Value>(&t.sample()).map_err(|e| {
            format!("the body is not JSON once its placeholders are filled in ({e}); put text placeholders inside quotes, {{{{labels}}}} outside")
        })?;
        Ok(t)
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_in_and_escaped() {
        let t: Template = r#"{"text": "{{summary}} on {{label.target}}", "l": {{labels}}}"#
            .parse()
            .expect("template");
        let body = t.render(
            |f| match f {
                "summary" => "a \"quoted\"\nline".into(),
                "labels" => r#"{"a":"b"}"#.into(),
                _ => String::new(),
            },
            |l| (l == "target").then(|| "web".to_string()),
        );
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["text"], "a \"quoted\"\nline on web");
        assert_eq!(v["l"]["a"], "b");
    }

    #[test]
    fn bad_templates_say_why() {
        for (text, why) in [
            (r#"{"t": "{{nope}}"}"#, "unknown placeholder {{nope}}"),
            (r#"{"t": "{{summary"}"#, "not closed"),
            (r#"{"t": {{summary}}}"#, "not JSON"),
            (r#"{"t": "{{label.}}"}"#, "names no label"),
            ("not json", "not JSON"),
        ] {
            let e = text.parse::<Template>().expect_err(text);
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
