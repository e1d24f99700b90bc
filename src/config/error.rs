//! What is wrong with a file, and where: `FILE:LINE:COLUMN: KEY: message`, like a compiler, so
//! editors jump to it. The TOML deserializer gives a byte span; the key path is found by
//! looking the span up in the document's own spanned tree.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

/// One error in one configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, once known (`Config::parse` works on text).
    pub file: Option<String>,
    /// 1-based line and column (in characters).
    pub position: Option<(usize, usize)>,
    /// Dotted path of the key at fault, e.g. `flow_table.idle_timeout`.
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn unreadable(e: &std::io::Error) -> ConfigError {
        ConfigError {
            file: None,
            position: None,
            key: None,
            message: format!("cannot read: {e}"),
        }
    }

    pub(crate) fn from_toml(text: &str, e: &toml::de::Error) -> ConfigError {
        // serde says "field"; the file and its docs say "key".
        let mut message = e.message().trim().replace("unknown field", "unknown key");
        // serde names the Rust type where a section was expected.
        if let Some(at) = message.find(", expected struct ") {
            message.truncate(at);
            message.push_str(", expected a table");
        }
        let span = e.span();
        ConfigError {
            file: None,
            position: span.as_ref().map(|s| position(text, s.start)),
            key: span.and_then(|s| key_at(text, &s)),
            message,
        }
    }

    pub(crate) fn in_file(mut self, path: &Path) -> ConfigError {
        self.file = Some(path.display().to_string());
        self
    }
}

impl ConfigError {
    /// An error about the value of the key at `path` (dotted, e.g. `scenario.close`), found by
    /// checks across keys after parsing; points at the value if the file has the key.
    pub(crate) fn at_key(text: &str, path: &str, message: String) -> ConfigError {
        let (doc, _) = DeTable::parse_recoverable(text);
        let mut table = doc.get_ref();
        let mut span = None;
        for name in path.split('.') {
            let Some((_, value)) = table.iter().find(|(k, _)| k.get_ref() == name) else {
                span = None;
                break;
            };
            span = Some(value.span());
            if let DeValue::Table(inner) = value.get_ref() {
                table = inner;
            }
        }
        ConfigError {
            file: None,
            position: span.map(|s| position(text, s.start)),
            key: Some(path.to_string()),
            message,
        }
    }
}

impl ConfigError {
    /// An error in the `index`th (from 0) table of an array of tables such as `[[sink]]`:
    /// the key is written `sink[2].max_bytes`, counting from 1 as people do; the position is
    /// the key's (an unknown key), else its value's, else the table's.
    pub(crate) fn in_array(
        text: &str,
        array: &str,
        index: usize,
        key: Option<&str>,
        message: String,
    ) -> ConfigError {
        let (doc, _) = DeTable::parse_recoverable(text);
        let element = doc
            .get_ref()
            .iter()
            .find(|(k, _)| k.get_ref() == array)
            .and_then(|(_, v)| match v.get_ref() {
                DeValue::Array(items) => items.get(index),
                _ => None,
            });
        let mut span = element.map(|e| e.span());
        if let (Some(DeValue::Table(table)), Some(key)) = (element.map(|e| e.get_ref()), key) {
            if let Some((k, v)) = table.iter().find(|(k, _)| k.get_ref() == key) {
                let unknown = message.starts_with("unknown option");
                span = Some(if unknown { k.span() } else { v.span() });
            }
        }
        let mut path = format!("{array}[{}]", index + 1);
        if let Some(key) = key {
            path = format!("{path}.{key}");
        }
        ConfigError {
            file: None,
            position: span.map(|s| position(text, s.start)),
            key: Some(path),
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut place = self.file.clone().unwrap_or_default();
        if let Some((line, column)) = self.position {
            place = format!("{place}:{line}:{column}");
        }
        if !place.is_empty() {
            write!(f, "{place}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        // Parser messages may span lines; keep one error on one line.
        f.write_str(&self.message.replace('\n', "; "))
    }
}

impl std::error::Error for ConfigError {}

/// 1-based line and character column of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// The dotted path of the key whose name or value covers `span`. A syntax error leaves the
/// document incomplete, but the parser's recovery still gives the keys around it.
fn key_at(text: &str, span: &Range<usize>) -> Option<String> {
    let (doc, _) = DeTable::parse_recoverable(text);
    let mut path = Vec::new();
    if covering(doc.get_ref(), span.start, &mut path) {
        return Some(path.join("."));
    }
    // Outside every recovered key (a duplicate key, a line that could not be read): the
    // section the error is in, and the key it points at if it is one.
    path.extend(section_before(doc.get_ref(), span.start));
    let word = text.get(span.clone()).unwrap_or("").trim();
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        path.push(word.to_string());
    }
    (!path.is_empty()).then(|| path.join("."))
}

/// Depth first, so the innermost key wins over the table holding it.
fn covering(table: &DeTable, offset: usize, path: &mut Vec<String>) -> bool {
    for (key, value) in table {
        path.push(key.get_ref().to_string());
        if key.span().contains(&offset) {
            return true;
        }
        if let DeValue::Table(inner) = value.get_ref() {
            if covering(inner, offset, path) {
                return true;
            }
        }
        if value.span().contains(&offset) {
            return true;
        }
        path.pop();
    }
    false
}

/// The last section (top-level table) that starts before `offset`.
fn section_before(doc: &DeTable, offset: usize) -> Option<String> {
    doc.iter()
        .filter(|(key, value)| {
            matches!(value.get_ref(), DeValue::Table(_)) && key.span().start < offset
        })
        .max_by_key(|(key, _)| key.span().start)
        .map(|(key, _)| key.get_ref().to_string())
}
