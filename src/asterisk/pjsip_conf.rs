//! The transports of the admin's pjsip.conf, read the way Asterisk reads them.
//!
//! Whether a user's calls are encrypted depends on the transport they are given: a
//! transport whose section says `protocol=tls` gets `media_encryption=sdes`. The portal
//! cannot create or change a transport (Asterisk loads them only at start, F-TLS-5), so it
//! has to learn them from the admin's files, and it must see them as Asterisk does:
//! templates (`[name](!)`), inheritance (`[name](tpl1,tpl2)`), additions (`[name](+)`),
//! `;` and `;-- --;` comments and `#include`/`#tryinclude` globs relative to the config
//! directory (main/config.c). A transport that only a template says is TLS is TLS.
//!
//! The portal's own generated directory is skipped: it holds only endpoints, auths and
//! aors, and can hold 10,000 users, which `check` and start-up have no reason to read.
//!
//! The parsing ([`load_with`], [`transports`]) is pure, given a function that answers an
//! include pattern with the matching files' text; [`read_transports`] is that function
//! over the file system. Relative certificate paths are kept as written: res_pjsip hands
//! `cert_file`/`priv_key_file` to PJSIP as given (in practice they are absolute).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::EndpointPolicy;

/// One non-template `type=transport` section, as far as encryption goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportSection {
    /// Lowercased: `udp` (Asterisk's default), `tcp`, `tls`, `ws`, `wss`.
    pub protocol: String,
    pub cert_file: Option<PathBuf>,
    pub priv_key_file: Option<PathBuf>,
    pub ca_list_file: Option<PathBuf>,
}

impl TransportSection {
    pub fn is_tls(&self) -> bool {
        self.protocol == "tls"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PjsipConfError {
    /// pjsip.conf itself is missing: Asterisk would load no transport at all.
    #[error("{} does not exist", path.display())]
    NotFound { path: PathBuf },
    /// A file that exists cannot be read by this process (the portal's user may differ
    /// from Asterisk's).
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A line that makes Asterisk refuse the whole of pjsip.conf (no transport loads).
    #[error("{}, line {line}: {message} (Asterisk would refuse pjsip.conf)", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Asterisk's include depth limit (`MAX_INCLUDE_LEVEL` of main/config.c).
const MAX_INCLUDE_LEVEL: usize = 10;

/// One `[section]` with its variables in order, inherited ones first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub name: String,
    pub template: bool,
    pub vars: Vec<(String, String)>,
}

impl Category {
    /// The last value of `key`: a section's own line overrides its template's
    /// (`ast_variable_retrieve` keeps the last match). Keys compare case-insensitively.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// Answers an include pattern (as written after `#include`, or `pjsip.conf`) with the
/// matching files, sorted, with their text (`None` for a file that exists but is skipped);
/// an empty list when nothing matches.
pub type Reader<'a> =
    dyn FnMut(&str) -> Result<Vec<(PathBuf, Option<String>)>, PjsipConfError> + 'a;

struct Loader<'r, 'a> {
    categories: Vec<Category>,
    read: &'r mut Reader<'a>,
}

/// Loads `main` and what it includes into categories, as `ast_config_load2` does.
pub fn load_with(main: &str, read: &mut Reader<'_>) -> Result<Vec<Category>, PjsipConfError> {
    let files = read(main)?;
    if files.is_empty() {
        return Err(PjsipConfError::NotFound {
            path: PathBuf::from(main),
        });
    }
    let mut loader = Loader {
        categories: Vec::new(),
        read,
    };
    for (path, text) in files {
        if let Some(text) = text {
            loader.file(&path, &text, None, 1)?;
        }
    }
    Ok(loader.categories)
}

impl Loader<'_, '_> {
    /// One file; `current` is the category its leading lines attach to (the includer's).
    fn file(
        &mut self,
        path: &Path,
        text: &str,
        current: Option<usize>,
        level: usize,
    ) -> Result<(), PjsipConfError> {
        let mut cat = current;
        let mut comment = 0usize;
        for (i, raw) in text.split('\n').enumerate() {
            let lineno = i + 1;
            let raw = if lineno == 1 {
                raw.strip_prefix('\u{feff}').unwrap_or(raw)
            } else {
                raw
            };
            let Some(line) = strip_comments(raw, &mut comment) else {
                continue;
            };
            let line = line.trim_matches(|c: char| c.is_ascii_whitespace());
            if line.is_empty() {
                continue;
            }
            let invalid = |message: String| PjsipConfError::Invalid {
                path: path.to_owned(),
                line: lineno,
                message,
            };
            match parse_line(line).map_err(|m| invalid(m.to_owned()))? {
                Line::Section {
                    name,
                    template,
                    append,
                    inherits,
                } => {
                    if append {
                        let i = self
                            .categories
                            .iter()
                            .position(|c| c.name == name)
                            .ok_or_else(|| {
                                invalid(format!(
                                    "[{name}](+) adds to a section that does not exist"
                                ))
                            })?;
                        self.categories[i].template |= template;
                        cat = Some(i);
                        continue;
                    }
                    let mut vars = Vec::new();
                    for base in inherits {
                        let from =
                            self.categories
                                .iter()
                                .find(|c| c.name == base)
                                .ok_or_else(|| {
                                    invalid(format!(
                                        "[{name}] inherits '{base}', which does not exist (yet)"
                                    ))
                                })?;
                        vars.extend(from.vars.iter().cloned());
                    }
                    self.categories.push(Category {
                        name: name.to_owned(),
                        template,
                        vars,
                    });
                    cat = Some(self.categories.len() - 1);
                }
                Line::Include { target, optional } => {
                    let files = if level >= MAX_INCLUDE_LEVEL {
                        Vec::new()
                    } else {
                        (self.read)(target)?
                    };
                    if files.is_empty() && !optional {
                        return Err(invalid(format!(
                            "#include {target} matches no file (use #tryinclude)"
                        )));
                    }
                    for (p, t) in files {
                        if let Some(t) = t {
                            self.file(&p, &t, cat, level + 1)?;
                        }
                    }
                }
                Line::Var { key, value } => {
                    let i =
                        cat.ok_or_else(|| invalid("a line before the first [section]".into()))?;
                    self.categories[i]
                        .vars
                        .push((key.to_owned(), value.to_owned()));
                }
                Line::Append { key, value } => {
                    let i =
                        cat.ok_or_else(|| invalid("a line before the first [section]".into()))?;
                    let vars = &mut self.categories[i].vars;
                    match vars.iter_mut().rev().find(|(k, _)| k == key) {
                        Some((_, v)) => {
                            let joined = format!("{v}{value}");
                            *v = joined
                                .trim_matches(|c: char| c.is_ascii_whitespace())
                                .to_owned();
                        }
                        None => vars.push((key.to_owned(), value.to_owned())),
                    }
                }
                Line::Ignored => {}
            }
        }
        Ok(())
    }
}

/// A line without comments, trimmed, not empty.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    Section {
        name: &'a str,
        template: bool,
        append: bool,
        inherits: Vec<&'a str>,
    },
    Include {
        target: &'a str,
        optional: bool,
    },
    Var {
        key: &'a str,
        value: &'a str,
    },
    /// `key += value`.
    Append {
        key: &'a str,
        value: &'a str,
    },
    /// What Asterisk warns about and skips (`#exec`, unknown directives, no `=`).
    Ignored,
}

fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace())
}

fn parse_line(line: &str) -> Result<Line<'_>, &'static str> {
    if let Some(rest) = line.strip_prefix('[') {
        let close = rest.find(']').ok_or("no closing ']'")?;
        let name = &rest[..close];
        let (mut template, mut append, mut inherits) = (false, false, Vec::new());
        if let Some(opts) = rest[close + 1..].strip_prefix('(') {
            let end = opts.find(')').ok_or("no closing ')'")?;
            for opt in opts[..end].split(',') {
                if opt == "!" {
                    template = true;
                } else if opt.starts_with('+') {
                    append = true;
                } else {
                    inherits.push(opt);
                }
            }
        }
        return Ok(Line::Section {
            name,
            template,
            append,
            inherits,
        });
    }
    if let Some(directive) = line.strip_prefix('#') {
        let end = directive
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(directive.len());
        let (name, arg) = (&directive[..end], trim(&directive[end..]));
        let optional = if name.eq_ignore_ascii_case("include") {
            false
        } else if name.eq_ignore_ascii_case("tryinclude") {
            true
        } else {
            return Ok(Line::Ignored);
        };
        if arg.is_empty() {
            return Ok(Line::Ignored);
        }
        let target = match arg.as_bytes()[0] {
            b'"' if arg.len() >= 2 && arg.ends_with('"') => &arg[1..arg.len() - 1],
            b'<' if arg.len() >= 2 && arg.ends_with('>') => &arg[1..arg.len() - 1],
            _ => arg,
        };
        return Ok(Line::Include { target, optional });
    }
    let line = match line.strip_prefix('\\') {
        Some(rest) if rest.bytes().next().is_some_and(|b| b > b' ') => rest,
        Some(_) => return Err("invalid escape"),
        None => line,
    };
    let Some(eq) = line.find('=') else {
        return Ok(Line::Ignored);
    };
    if eq > 0 && line.as_bytes()[eq - 1] == b'+' {
        return Ok(Line::Append {
            key: trim(&line[..eq - 1]),
            value: &line[eq + 1..],
        });
    }
    let value = &line[eq + 1..];
    Ok(Line::Var {
        key: trim(&line[..eq]),
        value: trim(value.strip_prefix('>').unwrap_or(value)),
    })
}

/// The comment handling of `config_text_file_load`: `;` to the end of the line, `\;` a
/// literal semicolon, `;--` … `--;` a block comment that may span lines and nest.
/// `comment` is the nesting depth carried from line to line. `None` when the whole line
/// is inside a block comment.
fn strip_comments(raw: &str, comment: &mut usize) -> Option<String> {
    let b = raw.as_bytes();
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    let mut out: Option<String> = if *comment > 0 {
        None
    } else {
        Some(String::new())
    };
    let mut i = 0;
    let mut start = 0;
    while i < b.len() {
        if b[i] != b';' {
            i += 1;
            continue;
        }
        if *comment == 0 && i > start && at(i - 1) == b'\\' {
            // `\;`: a semicolon in the value, without its backslash.
            if let Some(o) = out.as_mut() {
                o.push_str(&raw[start..i - 1]);
                o.push(';');
            }
            i += 1;
            start = i;
        } else if at(i + 1) == b'-' && at(i + 2) == b'-' && at(i + 3) != b'-' {
            if *comment == 0 {
                if let Some(o) = out.as_mut() {
                    o.push_str(&raw[start..i]);
                }
            }
            *comment += 1;
            i += 3;
            start = i;
        } else if *comment > 0 && i >= start + 2 && at(i - 1) == b'-' && at(i - 2) == b'-' {
            *comment -= 1;
            i += 1;
            start = i;
            if *comment == 0 && out.is_none() {
                out = Some(String::new());
            }
        } else if *comment == 0 {
            if let Some(o) = out.as_mut() {
                o.push_str(&raw[start..i]);
            }
            return out;
        } else {
            i += 1;
        }
    }
    if *comment == 0 {
        if let Some(o) = out.as_mut() {
            o.push_str(&raw[start..]);
        }
    }
    out
}

/// The non-template sections with `type=transport`, by name (a later section of the
/// same name replaces an earlier one).
pub fn transports(categories: &[Category]) -> BTreeMap<String, TransportSection> {
    let path = |c: &Category, k: &str| c.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    categories
        .iter()
        .filter(|c| !c.template)
        .filter(|c| {
            c.get("type")
                .is_some_and(|t| t.eq_ignore_ascii_case("transport"))
        })
        .map(|c| {
            let protocol = c
                .get("protocol")
                .filter(|p| !p.is_empty())
                .unwrap_or("udp")
                .to_ascii_lowercase();
            (
                c.name.clone(),
                TransportSection {
                    protocol,
                    cert_file: path(c, "cert_file"),
                    priv_key_file: path(c, "priv_key_file"),
                    ca_list_file: path(c, "ca_list_file"),
                },
            )
        })
        .collect()
}

/// The transports of `config_dir/pjsip.conf` and what it includes, skipping every file
/// inside `skip_dir` (the portal's generated endpoints).
pub fn read_transports(
    config_dir: &Path,
    skip_dir: &Path,
) -> Result<BTreeMap<String, TransportSection>, PjsipConfError> {
    let skip = std::fs::canonicalize(skip_dir).unwrap_or_else(|_| skip_dir.to_owned());
    let mut read = |pattern: &str| -> Result<Vec<(PathBuf, Option<String>)>, PjsipConfError> {
        let full = if pattern.starts_with('/') {
            PathBuf::from(pattern)
        } else {
            config_dir.join(pattern)
        };
        let mut out = Vec::new();
        for path in glob(&full) {
            let skipped = path.starts_with(skip_dir)
                || path
                    .parent()
                    .and_then(|d| std::fs::canonicalize(d).ok())
                    .is_some_and(|d| d.starts_with(&skip));
            // Not even a stat for each of the generated files.
            if skipped {
                out.push((path, None));
                continue;
            }
            if !path.is_file() {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|source| PjsipConfError::Unreadable {
                path: path.clone(),
                source,
            })?;
            out.push((path, Some(String::from_utf8_lossy(&bytes).into_owned())));
        }
        Ok(out)
    };
    let categories = load_with("pjsip.conf", &mut read).map_err(|e| match e {
        PjsipConfError::NotFound { .. } => PjsipConfError::NotFound {
            path: config_dir.join("pjsip.conf"),
        },
        e => e,
    })?;
    Ok(transports(&categories))
}

/// Fills `policy.tls` with the listed transports whose section says `protocol=tls`; errs
/// naming the first listed transport pjsip.conf does not define.
pub fn resolve_tls(
    policy: &mut EndpointPolicy,
    sections: &BTreeMap<String, TransportSection>,
) -> Result<(), String> {
    let mut tls = std::collections::BTreeSet::new();
    for id in policy.transports.iter() {
        let section = sections
            .get(id.as_str())
            .ok_or_else(|| missing(id.as_str()))?;
        if section.is_tls() {
            tls.insert(id.clone());
        }
    }
    policy.tls = tls;
    Ok(())
}

/// The message for a listed transport that pjsip.conf does not define.
pub fn missing(id: &str) -> String {
    format!("PORTAL_PJSIP_TRANSPORTS lists '{id}' but pjsip.conf has no [{id}] transport")
}

/// glob(3) as Asterisk calls it, for `*`, `?` and `[...]` in any path component: the
/// existing paths that match, sorted. A pattern without wildcards is itself, if it exists.
fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    for comp in pattern.components() {
        let part = comp.as_os_str().to_string_lossy();
        let wild = part.contains(['*', '?', '[']);
        let mut next = Vec::new();
        for base in &found {
            if !wild {
                next.push(base.join(comp.as_os_str()));
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.') && fnmatch(part.as_bytes(), n.as_bytes()))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        found = next;
    }
    found.retain(|p| p.exists());
    found
}

/// fnmatch(3) without flags: `*`, `?`, `[...]` (with `!`/`^` and ranges).
fn fnmatch(pat: &[u8], name: &[u8]) -> bool {
    match pat.first() {
        None => name.is_empty(),
        Some(b'*') => (0..=name.len()).any(|i| fnmatch(&pat[1..], &name[i..])),
        Some(b'?') => !name.is_empty() && fnmatch(&pat[1..], &name[1..]),
        Some(b'[') => {
            let Some(&c) = name.first() else {
                return false;
            };
            let mut i = 1;
            let negate = matches!(pat.get(1), Some(b'!' | b'^'));
            if negate {
                i += 1;
            }
            let mut matched = false;
            let mut first = true;
            while i < pat.len() && (first || pat[i] != b']') {
                first = false;
                if pat.get(i + 1) == Some(&b'-') && pat.get(i + 2).is_some_and(|&e| e != b']') {
                    matched |= (pat[i]..=pat[i + 2]).contains(&c);
                    i += 3;
                } else {
                    matched |= pat[i] == c;
                    i += 1;
                }
            }
            if i >= pat.len() {
                // No closing `]`: a literal `[`.
                return c == b'[' && fnmatch(&pat[1..], &name[1..]);
            }
            matched != negate && fnmatch(&pat[i + 1..], &name[1..])
        }
        Some(&p) => name.first() == Some(&p) && fnmatch(&pat[1..], &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads `main` from an in-memory set of files (pattern → files).
    fn load(files: &[(&str, &str)]) -> Result<Vec<Category>, PjsipConfError> {
        let mut read = |pattern: &str| {
            let re = |name: &str| fnmatch(pattern.as_bytes(), name.as_bytes());
            let mut v: Vec<(PathBuf, Option<String>)> = files
                .iter()
                .filter(|(n, _)| re(n))
                .map(|(n, t)| (PathBuf::from(n), Some(t.to_string())))
                .collect();
            v.sort();
            Ok(v)
        };
        load_with("pjsip.conf", &mut read)
    }

    fn tr(files: &[(&str, &str)]) -> BTreeMap<String, TransportSection> {
        transports(&load(files).unwrap())
    }

    #[test]
    fn sections_templates_and_inheritance() {
        let t = tr(&[(
            "pjsip.conf",
            "[global]\ntype=global\n\n[tls-base](!)\ntype = transport\nprotocol = TLS\ncert_file=/etc/asterisk/keys/a.crt\npriv_key_file => /etc/asterisk/keys/a.key\n\n\
             [transport-tls](tls-base)\nbind=0.0.0.0:5061\n\n[transport-udp]\ntype=transport\nbind=0.0.0.0\n\n\
             [transport-wss](tls-base)\nprotocol=wss\n\n[1000]\ntype=endpoint\n",
        )]);
        assert_eq!(
            t.keys().collect::<Vec<_>>(),
            ["transport-tls", "transport-udp", "transport-wss"]
        );
        let tls = &t["transport-tls"];
        assert_eq!(tls.protocol, "tls");
        assert_eq!(
            tls.cert_file.as_deref(),
            Some(Path::new("/etc/asterisk/keys/a.crt"))
        );
        assert_eq!(
            tls.priv_key_file.as_deref(),
            Some(Path::new("/etc/asterisk/keys/a.key"))
        );
        assert_eq!(tls.ca_list_file, None);
        assert_eq!(t["transport-udp"].protocol, "udp", "Asterisk's default");
        assert_eq!(
            t["transport-wss"].protocol, "wss",
            "own line overrides the template"
        );
    }

    #[test]
    fn comments_as_asterisk_strips_them() {
        let mut c = 0;
        assert_eq!(
            strip_comments("protocol=tls ; x", &mut c).as_deref(),
            Some("protocol=tls ")
        );
        assert_eq!(
            strip_comments("a=x\\;y;z", &mut c).as_deref(),
            Some("a=x;y")
        );
        assert_eq!(
            strip_comments("a=1 ;-- one --; b", &mut c).as_deref(),
            Some("a=1  b")
        );
        assert_eq!(
            strip_comments("a=2 ;-- spans", &mut c).as_deref(),
            Some("a=2 ")
        );
        assert_eq!(c, 1);
        assert_eq!(strip_comments("protocol=udp", &mut c), None);
        assert_eq!(
            strip_comments("end --; c=3", &mut c).as_deref(),
            Some(" c=3")
        );
        assert_eq!(c, 0);
        let t = tr(&[(
            "pjsip.conf",
            "[t]\ntype=transport\nprotocol=tls\n;--\nprotocol=udp\n--;\n[u];comment\ntype=transport ; x\nprotocol=tcp;tls\n",
        )]);
        assert_eq!(t["t"].protocol, "tls");
        assert_eq!(t["u"].protocol, "tcp");
    }

    #[test]
    fn includes_are_globbed_sorted_and_attach_to_the_includer() {
        let t = tr(&[
            (
                "pjsip.conf",
                "[transport-udp]\n#include transports.d/*.conf\ntype=transport\n#tryinclude nothing/*.conf\n",
            ),
            ("transports.d/b.conf", "[transport-tls](base)\nbind=x\n"),
            (
                "transports.d/a.conf",
                "protocol=tcp\n[base](!)\ntype=transport\nprotocol=tls\n",
            ),
        ]);
        assert_eq!(t["transport-udp"].protocol, "tcp", "a.conf's first line");
        assert_eq!(
            t["transport-tls"].protocol, "tls",
            "a.conf read before b.conf"
        );
        assert!(!t.contains_key("base"));
    }

    #[test]
    fn what_makes_asterisk_refuse_the_file() {
        for (text, line, what) in [
            ("[t\ntype=transport\n", 1, "no closing ']'"),
            ("type=transport\n", 1, "before the first"),
            ("[t](nope)\n", 1, "inherits 'nope'"),
            ("[t](+)\n", 1, "does not exist"),
            ("[t]\n#include missing.conf\n", 2, "matches no file"),
            ("[t]\n\\ x=1\n", 2, "invalid escape"),
        ] {
            match load(&[("pjsip.conf", text)]) {
                Err(PjsipConfError::Invalid {
                    line: l, message, ..
                }) => {
                    assert_eq!(l, line, "{text:?}");
                    assert!(message.contains(what), "{text:?}: {message}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(matches!(load(&[]), Err(PjsipConfError::NotFound { .. })));
        // Skipped silently, as Asterisk warns and goes on.
        let t = tr(&[(
            "pjsip.conf",
            "[t]\ntype=transport\ngarbage\n#exec x\n[t](+)\nprotocol=tls\n",
        )]);
        assert_eq!(t["t"].protocol, "tls");
    }

    #[test]
    fn an_include_loop_stops_at_the_depth_limit() {
        let r = load(&[(
            "pjsip.conf",
            "[t]\ntype=transport\n#tryinclude pjsip.conf\n",
        )]);
        assert_eq!(transports(&r.unwrap())["t"].protocol, "udp");
    }

    #[test]
    fn globs() {
        assert!(fnmatch(b"*.conf", b"a.conf"));
        assert!(!fnmatch(b"*.conf", b"a.conf~"));
        assert!(fnmatch(b"t[0-9]?.c*", b"t1x.conf"));
        assert!(!fnmatch(b"t[!0-9].conf", b"t1.conf"));
        assert!(fnmatch(b"pjsip.conf", b"pjsip.conf"));
    }

    #[test]
    fn reads_files_and_skips_the_generated_directory() {
        let etc = tempfile::tempdir().unwrap();
        let gen = etc.path().join("pjsip.d/synergycall");
        std::fs::create_dir_all(&gen).unwrap();
        std::fs::create_dir_all(etc.path().join("pjsip.d/extra")).unwrap();
        std::fs::write(
            etc.path().join("pjsip.conf"),
            format!(
                "[transport-udp]\ntype=transport\n#tryinclude pjsip.d/extra/*.conf\n#include {}/*.conf\n",
                gen.display()
            ),
        )
        .unwrap();
        std::fs::write(
            etc.path().join("pjsip.d/extra/tls.conf"),
            "[transport-tls]\ntype=transport\nprotocol=tls\ncert_file=keys/c.pem\n",
        )
        .unwrap();
        // Would be a transport if read.
        std::fs::write(
            gen.join("generated_endpoints.conf"),
            "[x]\ntype=transport\n",
        )
        .unwrap();
        let t = read_transports(etc.path(), &gen).unwrap();
        assert_eq!(
            t.keys().collect::<Vec<_>>(),
            ["transport-tls", "transport-udp"]
        );
        assert_eq!(
            t["transport-tls"].cert_file.as_deref(),
            Some(Path::new("keys/c.pem")),
            "as written"
        );
        let missing = tempfile::tempdir().unwrap();
        let e = read_transports(missing.path(), &gen).unwrap_err();
        assert!(
            matches!(&e, PjsipConfError::NotFound { path } if path.ends_with("pjsip.conf")),
            "{e}"
        );
    }

    #[test]
    fn resolve_tls_marks_the_listed_tls_transports() {
        use crate::domain::{TransportId, Transports};
        let t = tr(&[(
            "pjsip.conf",
            "[transport-udp]\ntype=transport\n[transport-tls]\ntype=transport\nprotocol=tls\n",
        )]);
        let id = |s: &str| TransportId::parse(s).unwrap();
        let mut policy = EndpointPolicy {
            transports: Transports::new(vec![id("transport-udp"), id("transport-tls")]).unwrap(),
            tls: Default::default(),
            nat: true,
            codecs: Default::default(),
            qualify_frequency: 0,
        };
        resolve_tls(&mut policy, &t).unwrap();
        assert_eq!(
            policy.tls.iter().collect::<Vec<_>>(),
            [&id("transport-tls")]
        );
        policy.transports = Transports::new(vec![
            id("transport-udp"),
            id("transport-x"),
            id("transport-y"),
        ])
        .unwrap();
        assert_eq!(
            resolve_tls(&mut policy, &t).unwrap_err(),
            "PORTAL_PJSIP_TRANSPORTS lists 'transport-x' but pjsip.conf has no [transport-x] transport"
        );
    }
}
