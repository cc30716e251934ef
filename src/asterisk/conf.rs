//! A strict parser of Asterisk's config syntax, for checking what the portal renders.
//!
//! Asterisk forgives a lot and silently drops the rest (F-CFG-3, F-CFG-5): an unclosed
//! `[` loses everything after it, a line without `=` is skipped, lines before the first
//! section attach to the including file. This parser turns each of those into an error
//! instead, so that a rendered file that parses back to exactly the sections it was
//! rendered from cannot be mangled by Asterisk.

/// A `[name]` section and its `key = value` / `key => value` lines, in order, borrowed
/// from the text they were parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section<'a> {
    pub name: &'a str,
    pub entries: Vec<(&'a str, &'a str)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ConfError {
    pub line: usize,
    pub message: &'static str,
}

/// Parses a whole file. Only `\n` ends a line, as in Asterisk, which also trims ASCII
/// whitespace only. `;` starts a comment unless escaped as `\\;`; a carriage return
/// outside a comment is an error (Asterisk would keep it in the value).
pub fn parse(text: &str) -> Result<Vec<Section<'_>>, ConfError> {
    let bytes = text.as_bytes();
    let mut sections: Vec<Section> = Vec::new();
    let (mut start, mut line_no, mut comment) = (0, 1, None);
    // One vectorised pass finds every byte that matters; the lines themselves are short.
    for pos in memchr::memchr3_iter(b'\n', b';', b'\r', bytes).chain([bytes.len()]) {
        match bytes.get(pos) {
            Some(b'\r') if comment.is_none() => {
                return Err(ConfError {
                    line: line_no,
                    message: "carriage return inside a line",
                })
            }
            Some(b';') if comment.is_none() && (pos == start || bytes[pos - 1] != b'\\') => {
                comment = Some(pos)
            }
            Some(b'\n') | None => {
                line(&mut sections, &text[start..comment.unwrap_or(pos)], line_no)?;
                (start, line_no, comment) = (pos + 1, line_no + 1, None);
            }
            _ => {}
        }
    }
    Ok(sections)
}

/// One line without its comment.
fn line<'a>(
    sections: &mut Vec<Section<'a>>,
    raw: &'a str,
    line_no: usize,
) -> Result<(), ConfError> {
    let err = |message| ConfError {
        line: line_no,
        message,
    };
    let line = raw.trim_ascii();
    let Some(&first) = line.as_bytes().first() else {
        return Ok(());
    };
    if first == b'[' {
        let rest = &line[1..];
        let Some(end) = rest.bytes().position(|b| b == b']') else {
            return Err(err("parse error: no closing ']'"));
        };
        let name = &rest[..end];
        if name.is_empty() || name.contains('[') || !rest[end + 1..].trim_ascii().is_empty() {
            return Err(err("malformed section header"));
        }
        sections.push(Section {
            name,
            entries: Vec::with_capacity(10),
        });
        return Ok(());
    }
    if first == b'#' {
        return Err(err("directives are not allowed in a generated file"));
    }
    let Some(eq) = line.bytes().position(|b| b == b'=') else {
        return Err(err("No '=' (equal sign)"));
    };
    let key = line[..eq].trim_ascii();
    let value = line[eq + 1..]
        .strip_prefix('>')
        .unwrap_or(&line[eq + 1..])
        .trim_ascii();
    if key.is_empty() {
        return Err(err("empty key"));
    }
    let Some(section) = sections.last_mut() else {
        return Err(err(
            "line before the first section would attach to the including file",
        ));
    };
    section.entries.push((key, value));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sections_and_both_assignment_forms() {
        let text = "; header comment\n[1000]\ntype=endpoint\ncallerid=\"A, B\" <1000>\n\n[ctx]\nexten => 1000,1,Dial(PJSIP/1000,25)\n same => n,Hangup()\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0],
            Section {
                name: "1000",
                entries: vec![("type", "endpoint"), ("callerid", "\"A, B\" <1000>")]
            }
        );
        assert_eq!(
            s[1].entries,
            [
                ("exten", "1000,1,Dial(PJSIP/1000,25)"),
                ("same", "n,Hangup()")
            ]
        );
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
    fn only_newline_ends_a_line_and_comments_may_hold_anything() {
        let s = parse("[a]\nk=é\u{2028}x\u{85}y ; comment \r [b\nl=2").unwrap();
        assert_eq!(s[0].entries, [("k", "é\u{2028}x\u{85}y"), ("l", "2")]);
        assert_eq!(parse("; only a comment\n").unwrap(), []);
    }

    #[test]
    fn a_semicolon_cuts_the_value_like_asterisk_does() {
        let s = parse("[a]\ncallerid=\"x;y\" <1>\n").unwrap();
        assert_eq!(s[0].entries[0].1, "\"x");
        let s = parse("[a]\nk=x\\;y\n").unwrap();
        assert_eq!(s[0].entries[0].1, "x\\;y");
    }
}
