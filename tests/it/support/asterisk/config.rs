//! Asterisk's text config loader (main/config.c of 22.7.0), ported closely enough that
//! the same files give the same categories, variables, warnings and failures:
//! `[name]`, `[name](!)`, `[name](template,...)`, `[name](+)`, `key = value`,
//! `key => value`, `key += value`, `;` comments with `\;`, `;-- --;` block comments,
//! `#include` / `#tryinclude` with globs (relative to astetcdir, sorted), the include
//! level limit, and the two failure kinds: "missing" (NULL) and "invalid" (parse error).
//!
//! A file cut anywhere reads as config_text_file_load reads it (checked against
//! `config_text_file_load` and `process_text_line` of 22.7.0): the last line counts
//! without its newline; inside a category a line without `=` is skipped with `No '='
//! (equal sign) in line N of FILE` and the parse goes on; an unclosed `[` is a parse
//! error that drops the rest (F-CFG-3). One difference remains: lines are decoded as
//! UTF-8, so a byte sequence cut in the middle of a character becomes U+FFFD where
//! Asterisk keeps the bytes.

use std::path::{Path, PathBuf};

/// One `name = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub name: String,
    pub value: String,
    /// The file the line came from: empty for the main file (Asterisk stores "" there),
    /// else the full path of the included file.
    pub file: String,
    pub lineno: usize,
    /// `=>` instead of `=`.
    pub object: bool,
}

/// One `[section]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub name: String,
    pub vars: Vec<Variable>,
    /// `(!)`: a template, skipped when browsing.
    pub template: bool,
    pub file: String,
    pub lineno: usize,
}

/// A loaded configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub categories: Vec<Category>,
    /// `cfg->current`: the category an included file's leading lines attach to.
    current: Option<usize>,
    include_level: usize,
    includes_seen: Vec<String>,
}

impl Config {
    /// Categories as `ast_category_browse` sees them (templates skipped).
    pub fn browse(&self) -> impl Iterator<Item = &Category> {
        self.categories.iter().filter(|c| !c.template)
    }
}

/// What `ast_config_load2` returned.
#[derive(Debug, Clone)]
pub enum Loaded {
    /// NULL: the file (or every glob match) does not exist.
    Missing,
    /// CONFIG_STATUS_FILEINVALID: a parse error in the main file, or an `#include` without match.
    Invalid,
    Ok(Config),
}

/// A log line sink: `LEVEL file.c: message`.
pub type Log<'a> = &'a mut Vec<String>;

const MAX_INCLUDE_LEVEL: usize = 10;
const MAX_NESTED_COMMENTS: usize = 128;
const LINE_BUF: usize = 8192;

/// Result of loading one file name or glob into a config.
enum FileResult {
    Null,
    Invalid,
    Ok,
}

/// How a load reads a file's bytes (the stand-in's reader may tamper with the file first).
pub type Read<'a> = &'a mut dyn FnMut(&Path) -> std::io::Result<Vec<u8>>;

/// Loads `filename` (relative to `etc_dir` unless absolute) like `ast_config_load2`.
pub fn load(etc_dir: &Path, filename: &str, log: Log<'_>) -> Loaded {
    load_with(etc_dir, filename, &mut |p: &Path| std::fs::read(p), log)
}

/// [`load`], reading each file through `read`.
pub fn load_with(etc_dir: &Path, filename: &str, read: Read<'_>, log: Log<'_>) -> Loaded {
    let mut cfg = Config::default();
    match internal_load(etc_dir, &mut cfg, filename, read, log) {
        FileResult::Null => Loaded::Missing,
        FileResult::Invalid => Loaded::Invalid,
        FileResult::Ok => Loaded::Ok(cfg),
    }
}

fn internal_load(
    etc_dir: &Path,
    cfg: &mut Config,
    filename: &str,
    read: Read<'_>,
    log: Log<'_>,
) -> FileResult {
    // "The config file itself bumps include_level by 1"
    if cfg.include_level == MAX_INCLUDE_LEVEL + 1 {
        log.push(format!(
            "WARNING config.c: Maximum Include level ({MAX_INCLUDE_LEVEL}) exceeded"
        ));
        return FileResult::Null;
    }
    cfg.include_level += 1;
    let res = text_file_load(etc_dir, cfg, filename, read, log);
    match res {
        FileResult::Ok | FileResult::Null => cfg.include_level -= 1,
        // Asterisk leaves include_level raised after an invalid include.
        FileResult::Invalid => {}
    }
    res
}

fn text_file_load(
    etc_dir: &Path,
    cfg: &mut Config,
    filename: &str,
    read: Read<'_>,
    log: Log<'_>,
) -> FileResult {
    let mut cat: Option<usize> = cfg.current;
    let pattern = if filename.starts_with('/') {
        filename.to_string()
    } else {
        format!("{}/{}", etc_dir.display(), filename)
    };
    let mut count = 0usize;
    let mut comment = 0usize;
    let mut nest: Vec<usize> = Vec::new();
    let mut invalid = false;
    for path in glob(&pattern) {
        let fn_ = path.display().to_string();
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(_) => continue,
        };
        if !meta.is_file() {
            log.push(format!(
                "WARNING config.c: '{fn_}' is not a regular file, ignoring"
            ));
            continue;
        }
        let data = match read(&path) {
            Ok(d) => d,
            Err(_) => continue,
        };
        count += 1;
        let mut lineno = 0usize;
        for raw in split_lines(&data) {
            lineno += 1;
            // fgets with an 8192 byte buffer: longer lines are skipped whole.
            let full_len = raw.len();
            if full_len >= LINE_BUF - 1 && !(full_len == LINE_BUF - 1 && raw.ends_with(b"\n")) {
                let begin: String = String::from_utf8_lossy(&raw[..32.min(raw.len())]).into();
                log.push(format!(
                    "WARNING config.c: Line {lineno} too long, skipping. It begins with: {begin}..."
                ));
                continue;
            }
            let mut buf: Vec<u8> = raw.to_vec();
            if lineno == 1 && buf.starts_with(b"\xEF\xBB\xBF") {
                buf.drain(..3);
            }
            buf.push(0);
            let process = strip_comments(&mut buf, &mut comment, &mut nest, lineno, log);
            if let Some(start) = process {
                let text = cstr(&buf, start);
                let text = String::from_utf8_lossy(text).to_string();
                let line = text.trim_matches(|c: char| c.is_ascii_whitespace());
                if !line.is_empty()
                    && process_text_line(etc_dir, cfg, &mut cat, line, lineno, &fn_, read, log)
                        .is_err()
                {
                    invalid = true;
                    break;
                }
            }
        }
        if comment > 0 {
            log.push(format!(
                "WARNING config.c: Unterminated comment detected beginning on line {}",
                nest.get(comment - 1).copied().unwrap_or(0)
            ));
        }
        if invalid {
            break;
        }
    }
    if count == 0 {
        return FileResult::Null;
    }
    if invalid {
        FileResult::Invalid
    } else {
        FileResult::Ok
    }
}

/// Splits into lines, each keeping its trailing `\n` (like fgets).
fn split_lines(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in data.iter().enumerate() {
        if *b == b'\n' {
            out.push(&data[start..=i]);
            start = i + 1;
        }
    }
    if start < data.len() {
        out.push(&data[start..]);
    }
    out
}

fn cstr(buf: &[u8], start: usize) -> &[u8] {
    let end = buf[start..]
        .iter()
        .position(|b| *b == 0)
        .map(|p| start + p)
        .unwrap_or(buf.len());
    &buf[start..end]
}

fn find_semicolon(buf: &[u8], from: usize) -> Option<usize> {
    for (i, b) in buf.iter().enumerate().skip(from) {
        match *b {
            0 => return None,
            b';' => return Some(i),
            _ => {}
        }
    }
    None
}

/// The comment loop of config_text_file_load, on a NUL-terminated buffer. Returns the
/// start of the text to process, or None when the whole line is inside a comment.
fn strip_comments(
    buf: &mut Vec<u8>,
    comment: &mut usize,
    nest: &mut Vec<usize>,
    lineno: usize,
    log: Log<'_>,
) -> Option<usize> {
    let mut new_buf = 0usize;
    let mut process_buf: Option<usize> = if *comment > 0 { None } else { Some(0) };
    while let Some(p) = find_semicolon(buf, new_buf) {
        let at = |i: usize| buf.get(i).copied().unwrap_or(0);
        if p > new_buf && at(p - 1) == b'\\' {
            // Escaped semicolons aren't comments.
            buf.remove(p - 1);
            new_buf = p;
        } else if at(p + 1) == b'-' && at(p + 2) == b'-' && at(p + 3) != b'-' {
            if *comment < MAX_NESTED_COMMENTS {
                buf[p] = 0;
                new_buf = p + 3;
                *comment += 1;
                nest.truncate(*comment - 1);
                nest.push(lineno);
            } else {
                log.push(format!(
                    "ERROR config.c: Maximum nest limit of {MAX_NESTED_COMMENTS} reached."
                ));
                new_buf = p + 1;
            }
        } else if p >= new_buf + 2 && at(p - 1) == b'-' && at(p - 2) == b'-' {
            *comment = comment.saturating_sub(1);
            new_buf = p + 1;
            if *comment == 0 {
                match process_buf {
                    Some(pb) => {
                        let old = pb + cstr(buf, pb).len();
                        let rest: Vec<u8> = cstr(buf, new_buf).to_vec();
                        buf.truncate(old);
                        buf.extend_from_slice(&rest);
                        buf.push(0);
                        new_buf = old;
                    }
                    None => process_buf = Some(new_buf),
                }
            }
        } else if *comment == 0 {
            buf[p] = 0;
            new_buf = p;
        } else {
            new_buf = p + 1;
        }
    }
    process_buf
}

/// A parse error that invalidates the file being read.
struct ParseError;

#[allow(clippy::too_many_arguments)]
fn process_text_line(
    etc_dir: &Path,
    cfg: &mut Config,
    cat: &mut Option<usize>,
    cur: &str,
    lineno: usize,
    configfile: &str,
    read: Read<'_>,
    log: Log<'_>,
) -> Result<(), ParseError> {
    let var_file = if cfg.include_level == 1 {
        String::new()
    } else {
        configfile.to_string()
    };
    if let Some(rest) = cur.strip_prefix('[') {
        let Some(close) = rest.find(']') else {
            log.push(format!(
                "WARNING config.c: parse error: no closing ']', line {lineno} of {configfile}"
            ));
            return Err(ParseError);
        };
        let catname = &rest[..close];
        let after = &rest[close + 1..];
        let mut newcat = Category {
            name: catname.to_string(),
            vars: Vec::new(),
            template: false,
            file: var_file.clone(),
            lineno,
        };
        let mut append_to: Option<usize> = None;
        if let Some(opts) = after.strip_prefix('(') {
            let Some(end) = opts.find(')') else {
                log.push(format!(
                    "WARNING config.c: parse error: no closing ')', line {lineno} of {configfile}"
                ));
                return Err(ParseError);
            };
            for opt in opts[..end].split(',') {
                if opt.eq_ignore_ascii_case("!") {
                    newcat.template = true;
                } else if opt.starts_with('+') {
                    match cfg.categories.iter().position(|c| c.name == catname) {
                        Some(i) => append_to = Some(i),
                        None => {
                            log.push(format!("WARNING config.c: Category addition requested, but category '{catname}' does not exist, line {lineno} of {configfile}"));
                            return Err(ParseError);
                        }
                    }
                } else {
                    match cfg.categories.iter().find(|c| c.name == opt) {
                        Some(base) => {
                            let inherited = base.vars.clone();
                            newcat.vars.extend(inherited);
                        }
                        None => {
                            log.push(format!("WARNING config.c: Inheritance requested, but category '{opt}' does not exist, line {lineno} of {configfile}"));
                            return Err(ParseError);
                        }
                    }
                }
            }
        }
        match append_to {
            Some(i) => {
                let moved = std::mem::take(&mut newcat.vars);
                let target = &mut cfg.categories[i];
                target.template |= newcat.template;
                target.vars.extend(moved);
                cfg.current = Some(i);
                *cat = Some(i);
            }
            None => {
                cfg.categories.push(newcat);
                let idx = cfg.categories.len() - 1;
                cfg.current = Some(idx);
                *cat = Some(idx);
            }
        }
        return Ok(());
    }
    if let Some(directive) = cur.strip_prefix('#') {
        let name_end = directive
            .bytes()
            .position(|b| b <= 32)
            .unwrap_or(directive.len());
        let name = &directive[..name_end];
        let arg = directive[name_end..].trim_matches(|c: char| c.is_ascii_whitespace());
        let try_include = if name.eq_ignore_ascii_case("include") {
            false
        } else if name.eq_ignore_ascii_case("tryinclude") {
            true
        } else if name.eq_ignore_ascii_case("exec") {
            log.push("WARNING config.c: Cannot perform #exec unless execincludes option is enabled in asterisk.conf (options section)!".into());
            return Ok(());
        } else {
            log.push(format!(
                "WARNING config.c: Unknown directive '#{name}' at line {lineno} of {configfile}"
            ));
            return Ok(());
        };
        if arg.is_empty() {
            log.push(format!("WARNING config.c: Directive '#{name}' needs an argument (filename) at line {lineno} of {configfile}"));
            return Ok(());
        }
        let mut target = arg;
        if let Some(first) = arg.chars().next() {
            if first == '"' || first == '<' {
                let quote = if first == '<' { '>' } else { '"' };
                if arg.len() >= 2 && arg.ends_with(quote) {
                    target = &arg[1..arg.len() - 1];
                }
            }
        }
        let target = target.to_string();
        if cfg.includes_seen.contains(&target) {
            let from = if cfg.include_level == 1 {
                ""
            } else {
                configfile
            };
            let n = cfg.includes_seen.iter().filter(|s| **s == target).count() + 1;
            log.push(format!("WARNING config.c: '{from}', line {lineno}:  Same File included more than once! This data will be saved in {target}~~{n} if saved back to disk."));
        }
        cfg.includes_seen.push(target.clone());
        let res = internal_load(etc_dir, cfg, &target, read, log);
        if matches!(res, FileResult::Null) && !try_include {
            log.push(format!(
                "ERROR config.c: The file '{target}' was listed as a #include but it does not exist."
            ));
            return Err(ParseError);
        }
        return Ok(());
    }
    // A variable line.
    let Some(ci) = *cat else {
        log.push(format!(
            "WARNING config.c: parse error: No category context for line {lineno} of {configfile}"
        ));
        return Err(ParseError);
    };
    let mut line = cur;
    let escaped = line.starts_with('\\');
    if escaped {
        line = &line[1..];
        if line.bytes().next().map(|b| b < 33).unwrap_or(true) {
            log.push(format!(
                "ERROR config.c: Invalid escape in line {lineno} of {configfile}"
            ));
            return Err(ParseError);
        }
    }
    let search_from = if escaped { 1.min(line.len()) } else { 0 };
    let eq = line[search_from..].find('=').map(|p| p + search_from);
    match eq {
        Some(pos) if pos > search_from && line.as_bytes()[pos - 1] == b'+' => {
            let name = line[..pos - 1].trim_matches(|c: char| c.is_ascii_whitespace());
            let add = &line[pos + 1..];
            let category = &mut cfg.categories[ci];
            if let Some(v) = category.vars.iter_mut().rev().find(|v| v.name == name) {
                let joined = format!("{}{}", v.value, add);
                v.value = joined
                    .trim_end_matches(|c: char| c.is_ascii_whitespace())
                    .trim_start_matches(|c: char| c.is_ascii_whitespace())
                    .to_string();
                return Ok(());
            }
            add_variable(
                cfg, ci, name, add, false, lineno, configfile, &var_file, log,
            );
        }
        Some(pos) => {
            let name = line[..pos].trim_matches(|c: char| c.is_ascii_whitespace());
            let mut value = &line[pos + 1..];
            let mut object = false;
            if let Some(v) = value.strip_prefix('>') {
                object = true;
                value = v;
            }
            add_variable(
                cfg, ci, name, value, object, lineno, configfile, &var_file, log,
            );
        }
        None => {
            log.push(format!(
                "WARNING config.c: No '=' (equal sign) in line {lineno} of {configfile}"
            ));
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn add_variable(
    cfg: &mut Config,
    ci: usize,
    name: &str,
    value: &str,
    object: bool,
    lineno: usize,
    configfile: &str,
    var_file: &str,
    log: Log<'_>,
) {
    if name.is_empty() {
        log.push(format!(
            "WARNING config.c: No variable name in line {lineno} of {configfile}"
        ));
        return;
    }
    cfg.categories[ci].vars.push(Variable {
        name: name.to_string(),
        value: value
            .trim_matches(|c: char| c.is_ascii_whitespace())
            .to_string(),
        file: var_file.to_string(),
        lineno,
        object,
    });
}

/// glob(3) with GLOB_NOMAGIC: a pattern without metacharacters is returned as is;
/// otherwise the sorted list of existing matches (`*`, `?`, `[...]`; a leading `.` is
/// only matched explicitly).
pub fn glob(pattern: &str) -> Vec<PathBuf> {
    if !pattern.contains(['*', '?', '[']) {
        return vec![PathBuf::from(pattern)];
    }
    let absolute = pattern.starts_with('/');
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    let mut current: Vec<PathBuf> = vec![if absolute {
        PathBuf::from("/")
    } else {
        PathBuf::from(".")
    }];
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut next = Vec::new();
        for base in &current {
            if part.contains(['*', '?', '[']) {
                let Ok(rd) = std::fs::read_dir(base) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect();
                names.sort();
                for name in names {
                    if name.starts_with('.') && !part.starts_with('.') {
                        continue;
                    }
                    if fnmatch(part.as_bytes(), name.as_bytes()) {
                        let p = base.join(&name);
                        if last || p.is_dir() {
                            next.push(p);
                        }
                    }
                }
            } else {
                let p = base.join(part);
                if last || p.is_dir() {
                    if last && !p.exists() {
                        continue;
                    }
                    next.push(p);
                }
            }
        }
        current = next;
    }
    let mut out: Vec<PathBuf> = current
        .into_iter()
        .map(|p| {
            let s = p.display().to_string();
            match s.strip_prefix("./") {
                Some(rest) if !absolute => PathBuf::from(rest),
                _ => p,
            }
        })
        .collect();
    out.sort();
    out
}

/// fnmatch(3) for one path component.
pub fn fnmatch(pat: &[u8], s: &[u8]) -> bool {
    match pat.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| fnmatch(&pat[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && fnmatch(&pat[1..], &s[1..]),
        Some(b'[') => {
            let Some(c) = s.first() else { return false };
            let mut i = 1;
            let negate = matches!(pat.get(1), Some(b'!') | Some(b'^'));
            if negate {
                i += 1;
            }
            let start = i;
            let mut matched = false;
            while i < pat.len() && (pat[i] != b']' || i == start) {
                if i + 2 < pat.len() && pat[i + 1] == b'-' && pat[i + 2] != b']' {
                    if pat[i] <= *c && *c <= pat[i + 2] {
                        matched = true;
                    }
                    i += 3;
                } else {
                    if pat[i] == *c {
                        matched = true;
                    }
                    i += 1;
                }
            }
            if i >= pat.len() {
                // No closing bracket: a literal '['.
                return *c == b'[' && fnmatch(&pat[1..], &s[1..]);
            }
            matched != negate && fnmatch(&pat[i + 1..], &s[1..])
        }
        Some(p) => s.first() == Some(p) && fnmatch(&pat[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// First value of `name` (case-insensitive, like `ast_variable_retrieve`).
    fn value<'a>(cat: &'a Category, name: &str) -> Option<&'a str> {
        cat.vars
            .iter()
            .find(|v| v.name.eq_ignore_ascii_case(name))
            .map(|v| v.value.as_str())
    }

    fn write(dir: &Path, name: &str, body: &str) {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "standin-config-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn comments_escapes_and_objects() {
        let d = tmpdir("c");
        write(
            &d,
            "a.conf",
            "[s]\nk = v ; c\nx=>y\\;z\n;-- block\n[hidden]\n--;\nw=1 ;--x--; ;tail\n",
        );
        let mut log = Vec::new();
        let Loaded::Ok(cfg) = load(&d, "a.conf", &mut log) else {
            panic!()
        };
        assert_eq!(cfg.categories.len(), 1);
        let s = &cfg.categories[0];
        assert_eq!(s.vars[0].value, "v");
        assert_eq!(s.vars[1].value, "y;z");
        assert!(s.vars[1].object);
        assert_eq!(s.vars[2].name, "w");
        assert_eq!(s.vars[2].value, "1");
        assert!(log.is_empty(), "{log:?}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn include_semantics() {
        let d = tmpdir("i");
        write(
            &d,
            "main.conf",
            "[a]\nk=1\n#tryinclude inc/*.conf\nafter=1\n",
        );
        write(&d, "inc/1.conf", "lead=1\n[b]\nx=1\n[c\ny=2\n");
        write(&d, "inc/2.conf", "[d]\n");
        let mut log = Vec::new();
        let Loaded::Ok(cfg) = load(&d, "main.conf", &mut log) else {
            panic!()
        };
        let names: Vec<_> = cfg.categories.iter().map(|c| c.name.as_str()).collect();
        // 2.conf is never read after the parse error in 1.conf.
        assert_eq!(names, ["a", "b"]);
        assert_eq!(value(&cfg.categories[0], "lead"), Some("1"));
        assert_eq!(value(&cfg.categories[0], "after"), Some("1"));
        assert!(log[0].contains("no closing ']', line 4 of"), "{log:?}");
        let mut log = Vec::new();
        write(&d, "main2.conf", "[a]\n#include nothing/*.conf\n");
        assert!(matches!(load(&d, "main2.conf", &mut log), Loaded::Invalid));
        assert_eq!(
            log,
            ["ERROR config.c: The file 'nothing/*.conf' was listed as a #include but it does not exist."]
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn fnmatch_basics() {
        assert!(fnmatch(b"*.conf", b"a.conf"));
        assert!(!fnmatch(b"*.conf", b"a.conf.tmp"));
        assert!(fnmatch(b"[ab]?.c", b"bx.c"));
        assert!(!fnmatch(b"[!ab]?.c", b"bx.c"));
    }
}
