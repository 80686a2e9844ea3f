//! Where things are in a TOML text: the byte range of every entry by its
//! dotted path (tables, arrays of tables and inline arrays counted by
//! index, like `heal.rules.0.actions.1.kind`), so every problem can name its
//! line and field.

use std::ops::Range;

/// A key/value entry of the document and the bytes it spans.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub path: Vec<String>,
    pub range: Range<usize>,
    /// Whether the entry is an element of an array (its removal would
    /// leave the array malformed: blank its parent instead).
    pub in_array: bool,
    /// Whether [`refine`] chose this entry inside the one serde named.
    pub refined: bool,
}

/// Every entry of the document, outermost last.
pub(crate) fn entries(text: &str) -> Vec<Entry> {
    let Ok(doc) = toml_edit::Document::parse(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    table_entries(doc.as_table(), &mut Vec::new(), &mut out);
    out
}

/// The innermost entry whose bytes contain `offset`.
pub(crate) fn entry_at(text: &str, offset: usize) -> Option<Entry> {
    entries(text)
        .into_iter()
        .filter(|e| e.range.contains(&offset))
        .min_by_key(|e| e.range.len())
}

/// The byte offset where the entry at dotted `field` starts, if written;
/// else where its nearest written parent starts.
pub(crate) fn locate(text: &str, field: &str) -> Option<usize> {
    let all = entries(text);
    let mut path: Vec<&str> = field.split('.').collect();
    while !path.is_empty() {
        let want = path.join(".");
        if let Some(e) = all.iter().find(|e| e.path.join(".") == want) {
            return Some(e.range.start);
        }
        path.pop();
    }
    None
}

fn table_entries(
    table: &toml_edit::Table,
    path: &mut Vec<String>,
    out: &mut Vec<Entry>,
) -> Option<Range<usize>> {
    let mut whole = table.span();
    for (name, _) in table.iter() {
        let Some((key, item)) = table.get_key_value(name) else {
            continue;
        };
        path.push(name.to_string());
        let range = match item {
            toml_edit::Item::Table(t) => table_entries(t, path, out),
            toml_edit::Item::Value(v) => {
                value_entries(v, path, out);
                join(key.span(), item.span())
            }
            toml_edit::Item::ArrayOfTables(a) => {
                let mut r = None;
                for (i, t) in a.iter().enumerate() {
                    path.push(i.to_string());
                    let element = table_entries(t, path, out);
                    if let Some(range) = element.clone() {
                        out.push(Entry {
                            path: path.clone(),
                            range,
                            in_array: false,
                            refined: false,
                        });
                    }
                    path.pop();
                    r = join(r, element);
                }
                r
            }
            toml_edit::Item::None => None,
        };
        if let Some(range) = range {
            out.push(Entry {
                path: path.clone(),
                range: range.clone(),
                in_array: false,
                refined: false,
            });
            whole = join(whole, Some(range));
        }
        path.pop();
    }
    whole
}

/// Entries inside a value: the keys of an inline table, the elements of an
/// array (and what is inside them).
fn value_entries(value: &toml_edit::Value, path: &mut Vec<String>, out: &mut Vec<Entry>) {
    match value {
        toml_edit::Value::InlineTable(t) => {
            for (inner, _) in t.iter() {
                if let Some((k, v)) = t.get_key_value(inner) {
                    path.push(inner.to_string());
                    if let Some(v) = v.as_value() {
                        value_entries(v, path, out);
                    }
                    if let Some(r) = join(k.span(), v.span()) {
                        out.push(Entry {
                            path: path.clone(),
                            range: r,
                            in_array: false,
                            refined: false,
                        });
                    }
                    path.pop();
                }
            }
        }
        toml_edit::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push(i.to_string());
                value_entries(v, path, out);
                if let Some(r) = v.span() {
                    out.push(Entry {
                        path: path.clone(),
                        range: r,
                        in_array: true,
                        refined: false,
                    });
                }
                path.pop();
            }
        }
        _ => {}
    }
}

fn join(a: Option<Range<usize>>, b: Option<Range<usize>>) -> Option<Range<usize>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.start.min(b.start)..a.end.max(b.end)),
        (a, b) => a.or(b),
    }
}

/// Replaces the bytes of `range` by spaces (newlines kept), so every later
/// offset, and so every line number, stays true.
pub(crate) fn blank(text: &mut String, range: Range<usize>) {
    let Some(bytes) = text.as_bytes().get(range.clone()) else {
        return;
    };
    let spaces: String = bytes
        .iter()
        .map(|&b| if b == b'\n' { '\n' } else { ' ' })
        .collect();
    if text.is_char_boundary(range.start) && text.is_char_boundary(range.end) {
        text.replace_range(range, &spaces);
    }
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (Option<usize>, Option<usize>) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count() + 1);
    (Some(line), column)
}

/// Narrows `entry` to the value inside it that `message` quotes. serde
/// buffers tagged enums (an action), so an error inside an inline table of
/// an array comes with the span of the whole array; the message names the
/// bad value (`address "x:y" ...`, ``unknown variant `z` ``): the innermost
/// entry within `entry` whose text holds it is the place.
pub(crate) fn refine(text: &str, entry: Entry, message: &str) -> Entry {
    let quoted = quoted_values(message);
    if quoted.is_empty() {
        return entry;
    }
    let prefix = entry.path.clone();
    entries(text)
        .into_iter()
        .filter(|e| e.path.len() > prefix.len() && e.path.starts_with(&prefix))
        .filter(|e| {
            let Some(body) = text.get(e.range.clone()) else {
                return false;
            };
            quoted
                .iter()
                .any(|q| body.contains(&format!("\"{q}\"")) || body.contains(&format!("'{q}'")))
        })
        .min_by_key(|e| e.range.len())
        .map(|mut e| {
            e.refined = true;
            e
        })
        .unwrap_or(entry)
}

/// The values a message quotes, `"like this"` or `` `like this` ``.
fn quoted_values(message: &str) -> Vec<String> {
    let mut out = Vec::new();
    for delim in ['"', '`'] {
        let parts: Vec<&str> = message.split(delim).collect();
        for q in parts.iter().skip(1).step_by(2).take(parts.len() / 2) {
            if !q.is_empty() {
                out.push(q.replace("\\\"", "\""));
            }
        }
    }
    out
}

/// The dotted field of the key written at `offset`, from the text alone
/// (for errors in a document too broken to parse, like a duplicate key):
/// the nearest `[table]` header above it and the key before its `=`.
pub(crate) fn field_at(text: &str, offset: usize) -> String {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .unwrap_or_default();
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    match (table, key.is_empty()) {
        (_, true) => String::new(),
        (Some(t), false) => format!("{t}.{key}"),
        (None, false) => key,
    }
}
