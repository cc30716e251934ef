//! A strict parser of Asterisk's config syntax, for checking what the portal renders.
//!
//! Asterisk forgives a lot and silently drops the rest (F-CFG-3, F-CFG-5): an unclosed
//! `[` loses everything after it, a line without `=` is skipped, lines before the first
//! section attach to the including file. This parser turns each of those into an error
//! instead, so that a rendered file that parses back to exactly the sections it was
//! rendered from cannot be mangled by Asterisk.

use std::fmt;

/// A `[name]` section and its `key = value` / `key => value` lines, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub entries: Vec<(String, String)>,
}

impl Section {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            entries: Vec::new(),
        }
    }

    pub fn set(mut self, key: &str, value: impl Into<String>) -> Self {
        self.entries.push((key.to_owned(), value.into()));
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ConfError {
    pub line: usize,
    pub message: String,
}

/// Cuts a line at its first comment `;` (Asterisk lets `\;` stand for a literal one).
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b';' && (i == 0 || bytes[i - 1] != b'\\') {
            return &line[..i];
        }
    }
    line
}

/// Parses a whole file. Only `\n` ends a line, as in Asterisk; a `\r` is an error.
pub fn parse(text: &str) -> Result<Vec<Section>, ConfError> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i + 1;
        let err = |m: &str| ConfError {
            line: line_no,
            message: m.to_owned(),
        };
        if raw.contains('\r') {
            return Err(err("carriage return inside a line"));
        }
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(end) = rest.find(']') else {
                return Err(err("parse error: no closing ']'"));
            };
            let name = &rest[..end];
            if name.is_empty() || name.contains('[') || !rest[end + 1..].trim().is_empty() {
                return Err(err("malformed section header"));
            }
            sections.push(Section::new(name));
            continue;
        }
        if line.starts_with('#') {
            return Err(err("directives are not allowed in a generated file"));
        }
        let Some(eq) = line.find('=') else {
            return Err(err("No '=' (equal sign)"));
        };
        let key = line[..eq].trim();
        let value = line[eq + 1..].strip_prefix('>').unwrap_or(&line[eq + 1..]).trim();
        if key.is_empty() {
            return Err(err("empty key"));
        }
        let Some(section) = sections.last_mut() else {
            return Err(err("line before the first section would attach to the including file"));
        };
        section.entries.push((key.to_owned(), value.to_owned()));
    }
    Ok(sections)
}

/// Writes sections the way [`parse`] reads them: `key=value`, or `key => value` for the
/// dialplan keys `exten` and `same` (the latter indented, as admins write it).
pub fn write(out: &mut String, sections: &[Section]) {
    use fmt::Write;
    for (i, s) in sections.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "[{}]", s.name);
        for (k, v) in &s.entries {
            let _ = match k.as_str() {
                "exten" => writeln!(out, "exten => {v}"),
                "same" => writeln!(out, " same => {v}"),
                _ => writeln!(out, "{k}={v}"),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes() {
        let sections = vec![
            Section::new("1000").set("type", "endpoint").set("callerid", "\"A, B\" <1000>"),
            Section::new("ctx").set("exten", "1000,1,Dial(PJSIP/1000,25)").set("same", "n,Hangup()"),
        ];
        let mut text = String::from("; header comment\n");
        write(&mut text, &sections);
        assert_eq!(parse(&text).unwrap(), sections);
    }

    #[test]
    fn refuses_what_asterisk_would_mangle() {
        let cases = [
            ("[1000\ntype=endpoint\n", 1, "no closing"),
            ("[1000]\ngarbage\n", 2, "No '='"),
            ("type=endpoint\n[1000]\n", 1, "before the first section"),
            ("[a]\n#include x.conf\n", 2, "directives"),
            ("[a]\nkey=v\r\n", 2, "carriage return"),
            ("[a] x\n", 1, "malformed"),
            ("[]\n", 1, "malformed"),
        ];
        for (text, line, msg) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}");
            assert!(e.message.contains(msg), "{text:?}: {}", e.message);
        }
    }

    #[test]
    fn a_semicolon_cuts_the_value_like_asterisk_does() {
        let s = parse("[a]\ncallerid=\"x;y\" <1>\n").unwrap();
        assert_eq!(s[0].entries[0].1, "\"x");
        let s = parse("[a]\nk=x\\;y\n").unwrap();
        assert_eq!(s[0].entries[0].1, "x\\;y");
    }
}
