//! `docs/configuration.md` documents every key `aegis init` prints: each
//! `[section]` (or `[[section]]`) of the default file has its heading there,
//! and each of its keys, set or in an example, a row of that section.

use std::collections::BTreeMap;

/// The keys of the default file by section, examples (`##`) included.
fn keys_of_default() -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in aegis_core::config::DEFAULT_TOML.lines() {
        let text = line
            .strip_prefix("## ")
            .or_else(|| line.strip_prefix("# "))
            .unwrap_or(line)
            .trim();
        if text.starts_with('[') && text.ends_with(']') && !text.contains('=') {
            section = text.trim_matches(|c| c == '[' || c == ']').to_string();
            out.entry(section.clone()).or_default();
            continue;
        }
        let Some((key, _)) = text.split_once(" = ") else {
            continue;
        };
        let key = key.trim();
        let is_key = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit());
        if is_key && (line.starts_with('#') || !line.starts_with(' ')) {
            let keys = out.entry(section.clone()).or_default();
            if !keys.contains(&key.to_string()) {
                keys.push(key.to_string());
            }
        }
    }
    out
}

#[test]
fn every_key_of_aegis_init_is_documented() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/configuration.md"
    ))
    .expect("docs/configuration.md");
    let mut missing = Vec::new();
    for (section, keys) in keys_of_default() {
        // The section's part of the page: from its heading to the next `## `.
        let heading = doc
            .find(&format!("## `[{section}]`"))
            .or_else(|| doc.find(&format!("## `[[{section}]]`")))
            .or_else(|| doc.find(&format!("### `[[{section}]]`")))
            .or_else(|| doc.find(&format!("`[[{section}]]` key")));
        let Some(start) = heading else {
            missing.push(format!("[{section}] (no heading)"));
            continue;
        };
        let part = &doc[start..];
        for key in keys {
            let row = format!("| `{key}` |");
            if !part.contains(&row) {
                missing.push(format!("{section}.{key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "keys of `aegis init` missing from docs/configuration.md: {missing:?}"
    );
}

#[test]
fn the_key_reader_finds_keys_and_examples() {
    let keys = keys_of_default();
    assert!(keys["collect"].contains(&"interval".to_string()));
    assert!(keys["checks"].contains(&"failure_threshold".to_string()));
    assert!(keys["heal.rules"].contains(&"on".to_string()));
}
