//! pbx_config's view of extensions.conf: contexts, extensions and priorities as
//! pbx_load_config builds them (exten/same, n/s/hint/labels/+offsets, include,
//! `exten => X,1` without an application), Asterisk's extension ordering (ext_cmp) and
//! pattern matching (_X, Z, N, ., !, [...]), lookups, and `dialplan show`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::Path;

use super::config::{self, Loaded};

pub const PRIORITY_HINT: i32 = -1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priority {
    pub priority: i32,
    pub label: Option<String>,
    pub app: String,
    pub data: String,
    /// Basename of the file it came from (`[generated_routing.conf:2]`).
    pub file: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub name: String,
    pub cidmatch: Option<String>,
    pub priorities: BTreeMap<i32, Priority>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub name: String,
    /// Sorted with ext_cmp.
    pub extensions: Vec<Extension>,
    pub includes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dialplan {
    /// In `ast_walk_contexts` order.
    pub contexts: Vec<Context>,
}

// ----------------------------------------------------------------------------------
// ext_cmp / extension matching (main/pbx.c)

fn skip_dash(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i] == b'-' {
        i += 1;
    }
    i
}

fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

fn ext_cmp_exten(l: &[u8], r: &[u8]) -> i32 {
    let (mut i, mut j) = (0, 0);
    loop {
        i = skip_dash(l, i);
        j = skip_dash(r, j);
        let cmp = at(l, i) as i32 - at(r, j) as i32;
        if cmp != 0 || at(l, i) == 0 {
            return cmp;
        }
        i += 1;
        j += 1;
    }
}

fn ext_cmp_exten_strlen(s: &[u8]) -> usize {
    s.iter().filter(|b| **b != b'-').count()
}

/// One position of a pattern: (score, bitmap) as ext_cmp_pattern_pos computes them.
fn pattern_pos(p: &[u8], i: &mut Option<usize>, bits: &mut [u8; 32]) -> i32 {
    loop {
        let Some(mut k) = *i else { return 0x30000 };
        let mut c;
        loop {
            c = at(p, k);
            k += 1;
            if c != b'-' {
                break;
            }
        }
        *i = Some(k);
        match c {
            b'n' | b'N' => {
                bits[6] = 0x3f;
                bits[7] = 0xc0;
                return 0x0800 | b'2' as i32;
            }
            b'x' | b'X' => {
                bits[6] = 0xff;
                bits[7] = 0xc0;
                return 0x0A00 | b'0' as i32;
            }
            b'z' | b'Z' => {
                bits[6] = 0x7f;
                bits[7] = 0xc0;
                return 0x0900 | b'1' as i32;
            }
            b'.' => return 0x18000,
            b'!' => return 0x28000,
            0 => {
                *i = None;
                return 0x30000;
            }
            b'[' => {
                let Some(end_rel) = p[k..].iter().position(|b| *b == b']') else {
                    return 0x40000;
                };
                let end = k + end_rel;
                let mut count = 0i32;
                let mut cmin = 0xFFu8;
                let mut q = k;
                while q < end {
                    let c1 = p[q];
                    let c2 = if q + 2 < end && p[q + 1] == b'-' {
                        q += 2;
                        p[q]
                    } else {
                        c1
                    };
                    cmin = cmin.min(c1);
                    let mut ch = c1 as u32;
                    while ch <= c2 as u32 {
                        let mask = 1u8 << (7 - (ch % 8));
                        if bits[(ch / 8) as usize] & mask == 0 {
                            bits[(ch / 8) as usize] |= mask;
                            count += 0x100;
                        }
                        ch += 1;
                    }
                    q += 1;
                }
                *i = Some(end + 1);
                if count != 0 {
                    return count | cmin as i32;
                }
            }
            _ => {
                bits[(c / 8) as usize] = 1 << (7 - (c % 8));
                return 0x0100 | c as i32;
            }
        }
    }
}

fn ext_cmp_pattern(l: &[u8], r: &[u8]) -> i32 {
    let mut li = Some(0usize);
    let mut ri = Some(0usize);
    loop {
        let mut lb = [0u8; 32];
        let mut rb = [0u8; 32];
        let lp = pattern_pos(l, &mut li, &mut lb);
        let rp = pattern_pos(r, &mut ri, &mut rb);
        let mut cmp = lp - rp;
        if cmp == 0 {
            cmp = match rb.cmp(&lb) {
                Ordering::Less => -1,
                Ordering::Equal => 0,
                Ordering::Greater => 1,
            };
        }
        if cmp != 0 || li.is_none() {
            return cmp;
        }
    }
}

/// Sort order of extensions in a context.
pub fn ext_cmp(l: &str, r: &str) -> Ordering {
    let (l, r) = (l.as_bytes(), r.as_bytes());
    let c = if at(l, 0) != b'_' {
        if at(r, 0) == b'_' {
            -1
        } else {
            ext_cmp_exten(l, r)
        }
    } else if at(r, 0) != b'_' {
        1
    } else {
        ext_cmp_pattern(&l[1..], &r[1..])
    };
    c.cmp(&0)
}

/// `ast_extension_match` (E_MATCH): does extension/pattern `pattern` match `data`?
pub fn extension_match(pattern: &str, data: &str) -> bool {
    match_core(pattern.as_bytes(), data.as_bytes()) != 0
}

fn match_core(pattern: &[u8], data: &[u8]) -> u8 {
    if at(pattern, 0) != b'_' {
        let lp = ext_cmp_exten_strlen(pattern);
        let ld = ext_cmp_exten_strlen(data);
        if lp < ld {
            return 0;
        }
        return (ext_cmp_exten(pattern, data) == 0) as u8;
    }
    if at(data, 0) == b'_' && ext_cmp_pattern(&pattern[1..], &data[1..]) == 0 {
        return 1;
    }
    let p = &pattern[1..];
    let (mut i, mut j) = (0usize, 0usize);
    loop {
        j = skip_dash(data, j);
        i = skip_dash(p, i);
        if at(data, j) == 0 || at(p, i) == 0 || at(p, i) == b'/' {
            break;
        }
        let d = at(data, j);
        match at(p, i) {
            b'[' => {
                i += 1;
                let Some(end_rel) = p[i..].iter().position(|b| *b == b']') else {
                    return 0;
                };
                let end = i + end_rel;
                if i == end {
                    i += 1;
                    continue;
                }
                let mut found = false;
                while i < end {
                    if i + 2 < end && p[i + 1] == b'-' {
                        if d >= p[i] && d <= p[i + 2] {
                            found = true;
                            break;
                        }
                        i += 3;
                    } else {
                        if d == p[i] {
                            found = true;
                            break;
                        }
                        i += 1;
                    }
                }
                if !found {
                    return 0;
                }
                i = end;
            }
            b'n' | b'N' => {
                if !(b'2'..=b'9').contains(&d) {
                    return 0;
                }
            }
            b'x' | b'X' => {
                if !d.is_ascii_digit() {
                    return 0;
                }
            }
            b'z' | b'Z' => {
                if !(b'1'..=b'9').contains(&d) {
                    return 0;
                }
            }
            b'.' => return 1,
            b'!' => return 2,
            c => {
                if d != c {
                    return 0;
                }
            }
        }
        i += 1;
        j += 1;
    }
    if at(data, j) != 0 {
        return 0;
    }
    match at(p, i) {
        0 | b'/' => 1,
        b'!' => 2,
        _ => 0,
    }
}

impl Context {
    fn find_ext_mut(&mut self, name: &str, cid: &Option<String>) -> Option<&mut Extension> {
        self.extensions
            .iter_mut()
            .find(|e| ext_cmp(&e.name, name) == Ordering::Equal && &e.cidmatch == cid)
    }

    fn insert_ext(&mut self, ext: Extension) {
        let pos = self
            .extensions
            .iter()
            .position(|e| ext_cmp(&e.name, &ext.name) == Ordering::Greater)
            .unwrap_or(self.extensions.len());
        self.extensions.insert(pos, ext);
    }

    /// Priority number of `label` in extension `exten` (ast_findlabel_extension2).
    fn find_label(&self, exten: &str, label: &str) -> Option<i32> {
        self.extensions
            .iter()
            .filter(|e| extension_match(&e.name, exten))
            .flat_map(|e| e.priorities.values())
            .find(|p| p.label.as_deref() == Some(label))
            .map(|p| p.priority)
    }
}

impl Dialplan {
    /// Extensions in every context (what a dialplan reload's cost counts).
    pub fn extension_count(&self) -> usize {
        self.contexts.iter().map(|c| c.extensions.len()).sum()
    }

    pub fn context(&self, name: &str) -> Option<&Context> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// The priority Asterisk would run for `exten` at `priority` in `context`, following
    /// `include =>`, with the matched extension name.
    pub fn find(
        &self,
        context: &str,
        exten: &str,
        priority: i32,
    ) -> Option<(&Extension, &Priority)> {
        self.find_inner(context, exten, priority, &mut Vec::new())
    }

    fn find_inner<'a>(
        &'a self,
        context: &str,
        exten: &str,
        priority: i32,
        seen: &mut Vec<String>,
    ) -> Option<(&'a Extension, &'a Priority)> {
        if seen.iter().any(|s| s == context) || seen.len() > 128 {
            return None;
        }
        seen.push(context.to_string());
        let ctx = self.context(context)?;
        // An exact name wins over patterns, as in pbx.c, whose hash table finds it without
        // walking every extension (a linear scan here would overcharge big dialplans).
        let exact = ctx.extensions.iter().find(|e| e.name == exten);
        if let Some(p) = exact.and_then(|e| e.priorities.get(&priority)) {
            return Some((exact?, p));
        }
        for e in ctx.extensions.iter().filter(|e| e.name.starts_with('_')) {
            if match_core(e.name.as_bytes(), exten.as_bytes()) == 0 {
                continue;
            }
            if let Some(p) = e.priorities.get(&priority) {
                return Some((e, p));
            }
        }
        for inc in &ctx.includes {
            if let Some(found) = self.find_inner(inc, exten, priority, seen) {
                return Some(found);
            }
        }
        None
    }

    pub fn exists(&self, context: &str, exten: &str, priority: i32) -> bool {
        self.find(context, exten, priority).is_some()
    }

    /// Priority number of a label, following includes.
    pub fn find_label(&self, context: &str, exten: &str, label: &str) -> Option<i32> {
        let ctx = self.context(context)?;
        ctx.find_label(exten, label).or_else(|| {
            ctx.includes
                .iter()
                .filter(|i| i.as_str() != context)
                .find_map(|i| self.context(i).and_then(|c| c.find_label(exten, label)))
        })
    }

    /// Extension names of a context.
    pub fn extension_names(&self, context: &str) -> Option<std::collections::BTreeSet<String>> {
        self.context(context)
            .map(|c| c.extensions.iter().map(|e| e.name.clone()).collect())
    }
}

/// pbx_strsep: splits at `delim` outside `[...]`, honouring backslash escapes.
fn pbx_strsep<'a>(s: &mut Option<&'a str>, delim: u8) -> Option<&'a str> {
    let cur = (*s)?;
    let b = cur.as_bytes();
    let mut square: u32 = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'[' => square += 1,
            b']' => square = square.saturating_sub(1),
            b'\\' => i += 1,
            c if c == delim && square == 0 => {
                *s = Some(&cur[i + 1..]);
                if i + 1 >= cur.len() {
                    *s = None;
                }
                return Some(&cur[..i]);
            }
            _ => {}
        }
        i += 1;
    }
    *s = None;
    Some(cur)
}

fn strsep<'a>(s: &mut Option<&'a str>, delim: char) -> Option<&'a str> {
    let cur = (*s)?;
    match cur.find(delim) {
        Some(p) => {
            *s = Some(&cur[p + 1..]);
            Some(&cur[..p])
        }
        None => {
            *s = None;
            Some(cur)
        }
    }
}

/// Result of loading extensions.conf.
pub enum LoadResult {
    Ok(Dialplan),
    /// The file is missing or invalid: pbx_load_config returned 0.
    Failed,
}

/// pbx_load_config, reading the files through `read`.
pub fn load(etc_dir: &Path, read: config::Read<'_>, log: &mut Vec<String>) -> LoadResult {
    let cfg = match config::load_with(etc_dir, "extensions.conf", read, log) {
        Loaded::Ok(c) => c,
        Loaded::Missing | Loaded::Invalid => return LoadResult::Failed,
    };
    let mut dp = Dialplan::default();
    // ast_context_find_or_create prepends: walk order is newest first.
    let mut order: Vec<String> = Vec::new();
    let mut contexts: BTreeMap<String, Context> = BTreeMap::new();
    for cat in cfg.browse() {
        if cat.name.eq_ignore_ascii_case("general") || cat.name.eq_ignore_ascii_case("globals") {
            continue;
        }
        if !contexts.contains_key(&cat.name) {
            order.push(cat.name.clone());
            contexts.insert(
                cat.name.clone(),
                Context {
                    name: cat.name.clone(),
                    extensions: Vec::new(),
                    includes: Vec::new(),
                },
            );
        }
        let con = contexts.get_mut(&cat.name).expect("just inserted");
        let mut lastextension = String::new();
        let mut lastpri: i32 = -2;
        for v in &cat.vars {
            let vfile = if v.file.is_empty() {
                "extensions.conf".to_string()
            } else {
                v.file.clone()
            };
            let mut rest: Option<&str>;
            let realext: String;
            if v.name.len() >= 4 && v.name[..4].eq_ignore_ascii_case("same") {
                if lastextension.is_empty() {
                    log.push(format!("ERROR pbx_config.c: No previous pattern in the first entry of context '{}' to match '{}' at line {} of {}!", cat.name, v.name, v.lineno, vfile));
                    continue;
                }
                rest = Some(v.value.as_str());
                realext = lastextension.clone();
            } else if v.name.eq_ignore_ascii_case("exten") {
                rest = Some(v.value.as_str());
                realext = pbx_strsep(&mut rest, b',').unwrap_or("").to_string();
                lastextension = realext.clone();
            } else if v.name.eq_ignore_ascii_case("include") {
                if !con.includes.contains(&v.value) {
                    con.includes.push(v.value.clone());
                } else {
                    log.push(format!("WARNING pbx_config.c: Context '{}' already included in '{}' context on include at line {} of {}", v.value, cat.name, v.lineno, vfile));
                }
                continue;
            } else if ["ignorepat", "switch", "lswitch", "eswitch", "autohints"]
                .iter()
                .any(|n| v.name.eq_ignore_ascii_case(n))
            {
                continue;
            } else {
                log.push(format!(
                    "WARNING pbx_config.c: ==!!== Unknown directive: {} at line {} of {} -- IGNORING!!!",
                    v.name, v.lineno, vfile
                ));
                continue;
            };
            // process_extension:
            let (extname, cidmatch) = match realext.split_once('/') {
                Some((e, c)) => (e.to_string(), Some(c.to_string())),
                None => (realext.clone(), None),
            };
            let pri_raw = strsep(&mut rest, ',').unwrap_or("").trim();
            let mut pri = pri_raw.to_string();
            let mut label = None;
            if let Some(open) = pri.find('(') {
                let after = pri[open + 1..].to_string();
                match after.find(')') {
                    Some(close) => {
                        label = Some(after[..close].to_string());
                        pri.truncate(open);
                    }
                    None => {
                        log.push(format!(
                            "WARNING pbx_config.c: Label missing trailing ')' at line {} of {}",
                            v.lineno, vfile
                        ));
                        continue;
                    }
                }
            }
            let mut plus = 0i32;
            if let Some(p) = pri.find('+') {
                plus = pri[p + 1..].trim().parse().unwrap_or(0);
                pri.truncate(p);
            }
            let ipri: i32 = if pri == "hint" {
                PRIORITY_HINT
            } else if pri == "next" || pri == "n" {
                if lastpri > -2 {
                    lastpri + 1
                } else {
                    log.push(format!("WARNING pbx_config.c: Can't use 'next' priority on the first entry at line {} of {}!", v.lineno, vfile));
                    continue;
                }
            } else if pri == "same" || pri == "s" {
                if lastpri > -2 {
                    lastpri
                } else {
                    log.push(format!("WARNING pbx_config.c: Can't use 'same' priority on the first entry at line {} of {}!", v.lineno, vfile));
                    continue;
                }
            } else if let Some(n) = leading_int(&pri) {
                if n < 1 {
                    log.push(format!(
                        "WARNING pbx_config.c: Invalid priority '{}' at line {} of {}",
                        pri, v.lineno, vfile
                    ));
                    continue;
                }
                n
            } else {
                match con.find_label(&extname, &pri) {
                    Some(n) if n >= 1 => n,
                    _ => {
                        log.push(format!(
                            "WARNING pbx_config.c: Invalid priority/label '{}' at line {} of {}",
                            pri, v.lineno, vfile
                        ));
                        continue;
                    }
                }
            };
            let appl_full = rest.unwrap_or("");
            let (appl, data) = match appl_full.find('(') {
                None => (appl_full.to_string(), String::new()),
                Some(open) => {
                    let name = &appl_full[..open];
                    if name.contains("${") || name.contains("$[") {
                        (appl_full.to_string(), String::new())
                    } else {
                        let d = &appl_full[open + 1..];
                        match d.rfind(')') {
                            Some(close) => (name.to_string(), d[..close].to_string()),
                            None => {
                                log.push(format!("WARNING pbx_config.c: No closing parenthesis found? '{}({}' at line {} of {}", name, d, v.lineno, vfile));
                                (name.to_string(), d.to_string())
                            }
                        }
                    }
                }
            };
            let appl = appl.trim_start_matches([' ', '\t']).to_string();
            let ipri = ipri + plus;
            lastpri = ipri;
            if extname == "_." || extname == "_!" {
                log.push(format!("WARNING pbx_config.c: The use of '{}' for an extension is strongly discouraged and can have unexpected behavior.  Please use '_X{}' instead at line {} of {}", extname, &extname[1..], v.lineno, vfile));
            }
            let registrar_file = vfile.rsplit('/').next().unwrap_or(&vfile).to_string();
            let prio = Priority {
                priority: ipri,
                label,
                app: appl,
                data,
                file: registrar_file,
                line: v.lineno,
            };
            match con.find_ext_mut(&extname, &cidmatch) {
                Some(e) => match e.priorities.entry(ipri) {
                    std::collections::btree_map::Entry::Occupied(_) => {
                        log.push(format!(
                            "WARNING pbx.c: Unable to register extension '{}' priority {} in '{}', already in use",
                            extname, ipri, cat.name
                        ));
                        log.push(format!(
                            "WARNING pbx_config.c: Unable to register extension at line {} of {}",
                            v.lineno, vfile
                        ));
                    }
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(prio);
                    }
                },
                None => {
                    let mut priorities = BTreeMap::new();
                    priorities.insert(ipri, prio);
                    con.insert_ext(Extension {
                        name: extname,
                        cidmatch,
                        priorities,
                    });
                }
            }
        }
    }
    for name in order.into_iter().rev() {
        if let Some(c) = contexts.remove(&name) {
            dp.contexts.push(c);
        }
    }
    LoadResult::Ok(dp)
}

/// sscanf("%30d").
fn leading_int(s: &str) -> Option<i32> {
    let t = s.trim_start();
    let (sign, digits) = match t.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let n: String = digits.chars().take_while(|c| c.is_ascii_digit()).collect();
    if n.is_empty() {
        return None;
    }
    n.parse::<i64>().ok().map(|v| (v * sign) as i32)
}

// ----------------------------------------------------------------------------------
// `dialplan show`

fn print_ext(p: &Priority) -> String {
    if p.priority == PRIORITY_HINT {
        format!("hint: {}", p.app)
    } else {
        format!("{}. {}({})", p.priority, p.app, p.data)
    }
}

fn ext_line(buf1: &str, buf2: &str, p: &Priority) -> String {
    format!("  {:<17} {:<45} [{}:{}]\n", buf1, buf2, p.file, p.line)
}

/// `dialplan show [[exten@]context]`: (output, success).
pub fn show(dp: &Dialplan, arg: Option<&str>) -> (String, bool) {
    let (exten, context) = match arg {
        None => (None, None),
        Some(a) => match a.split_once('@') {
            Some((e, c)) => (
                (!e.is_empty()).then(|| e.to_string()),
                (!c.is_empty()).then(|| c.to_string()),
            ),
            None => (None, (!a.is_empty()).then(|| a.to_string())),
        },
    };
    let mut out = String::new();
    let (mut total_context, mut total_exten, mut total_prio) = (0, 0, 0);
    let (mut context_existence, mut extension_existence) = (false, false);
    for c in &dp.contexts {
        if let Some(ctx) = &context {
            if &c.name != ctx {
                continue;
            }
        }
        context_existence = true;
        let mut printed = false;
        if exten.is_none() {
            total_context += 1;
            out.push_str(&format!(
                "[ Context '{}' created by 'pbx_config' ]\n",
                c.name
            ));
            printed = true;
        }
        for e in &c.extensions {
            if let Some(x) = &exten {
                if !extension_match(&e.name, x) {
                    continue;
                }
            }
            extension_existence = true;
            if !printed {
                total_context += 1;
                out.push_str(&format!(
                    "[ Context '{}' created by 'pbx_config' ]\n",
                    c.name
                ));
                printed = true;
            }
            let mut prios = e.priorities.values();
            if let Some(first) = prios.next() {
                total_prio += 1;
                let buf = match &e.cidmatch {
                    Some(cid) => format!("'{}' (CID match '{}') => ", e.name, cid),
                    None => format!("'{}' =>", e.name),
                };
                out.push_str(&ext_line(&buf, &print_ext(first), first));
            }
            total_exten += 1;
            for p in prios {
                total_prio += 1;
                let buf = match &p.label {
                    Some(l) => format!("   [{l}]"),
                    None => String::new(),
                };
                out.push_str(&ext_line(&buf, &print_ext(p), p));
            }
        }
        if exten.is_none() {
            for inc in &c.includes {
                out.push_str(&format!(
                    "  Include =>        {:<45} [pbx_config]\n",
                    format!("'{inc}'")
                ));
            }
        }
        if printed {
            out.push('\n');
        }
    }
    if let Some(ctx) = &context {
        if !context_existence {
            out.push_str(&format!("There is no existence of '{ctx}' context\n"));
            return (out, false);
        }
    }
    if let Some(x) = &exten {
        if !extension_existence {
            match &context {
                Some(ctx) => {
                    out.push_str(&format!("There is no existence of {x}@{ctx} extension\n"))
                }
                None => out.push_str(&format!(
                    "There is no existence of '{x}' extension in all contexts\n"
                )),
            }
            return (out, false);
        }
    }
    out.push_str(&format!(
        "-= {} {} ({} {}) in {} {}. =-\n",
        total_exten,
        if total_exten == 1 {
            "extension"
        } else {
            "extensions"
        },
        total_prio,
        if total_prio == 1 {
            "priority"
        } else {
            "priorities"
        },
        total_context,
        if total_context == 1 {
            "context"
        } else {
            "contexts"
        }
    ));
    (out, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        assert!(extension_match("_probe-.", "probe-abc"));
        assert!(!extension_match("_probe-.", "probe-"));
        assert!(extension_match("_1XXX", "1000"));
        assert!(!extension_match("_1XXX", "100"));
        assert!(extension_match("_[1-3]Z!", "19"));
        assert!(!extension_match("_[1-3]Z!", "1"));
        assert!(extension_match("_[1-3]!", "1"));
        assert!(extension_match("1000", "1000"));
        assert!(!extension_match("1000", "100"));
        assert!(extension_match("_N.", "20"));
        assert!(!extension_match("_N.", "10"));
    }

    #[test]
    fn ordering() {
        let mut v = vec!["_X.", "_1XXX", "check", "1001", "1000", "_1000"];
        v.sort_by(|a, b| ext_cmp(a, b));
        assert_eq!(v, ["1000", "1001", "check", "_1000", "_1XXX", "_X."]);
    }
}
