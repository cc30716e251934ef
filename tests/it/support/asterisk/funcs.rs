//! Variable substitution (`ast_str_substitute_variables`) and the dialplan functions of
//! the portal's probe: PJSIP_ENDPOINT, PJSIP_AOR and DIALPLAN_EXISTS. Any other function
//! is "not registered"; the variables are EXTEN and the channel's own (AGISTATUS).

use std::collections::BTreeMap;

use super::dialplan::Dialplan;
use super::pjsip::Sorcery;

/// What a channel looks like to the substitution engine.
#[derive(Debug, Clone, Default)]
pub struct ChanInfo {
    pub name: String,
    pub uniqueid: String,
    pub context: String,
    pub exten: String,
    pub priority: i32,
}

/// Everything one evaluation may read, plus the log and a function counter.
pub struct Env<'a> {
    pub chan: &'a ChanInfo,
    pub vars: &'a BTreeMap<String, String>,
    pub sorcery: &'a Sorcery,
    pub dialplan: &'a Dialplan,
    pub log: &'a mut Vec<String>,
    /// Functions evaluated so far (for the cost model).
    pub functions: usize,
}

impl Env<'_> {
    /// `ast_str_retrieve_variable` without substring handling.
    pub fn variable(&self, var: &str) -> Option<String> {
        match var {
            "EXTEN" => Some(self.chan.exten.clone()),
            _ => self.vars.get(var).cloned(),
        }
    }

    /// `ast_func_read2`: None when the function failed (nothing is substituted).
    pub fn function(&mut self, expr: &str) -> Option<String> {
        self.functions += 1;
        let (name, args) = match expr.find('(') {
            Some(open) => {
                let inner = &expr[open + 1..];
                let args = match inner.rfind(')') {
                    Some(close) => &inner[..close],
                    None => {
                        self.log.push(format!("WARNING pbx_functions.c: Can't find trailing parenthesis for function '{}({}'?", &expr[..open], inner));
                        inner
                    }
                };
                (&expr[..open], args)
            }
            None => (expr, ""),
        };
        let argv = separate_args(args);
        let arg = |i: usize| argv.get(i).map(String::as_str).unwrap_or("");
        match name {
            "PJSIP_ENDPOINT" | "PJSIP_AOR" => {
                let (file, otype, label) = match name {
                    "PJSIP_ENDPOINT" => ("endpoint", "endpoint", "endpoint"),
                    _ => ("aor", "aor", "AOR"),
                };
                let log_as = format!("func_pjsip_{file}.c");
                let problem = if args.is_empty() {
                    Some("without arguments".to_owned())
                } else if arg(0).is_empty() {
                    Some(format!("without an {label} name to query"))
                } else if arg(1).is_empty() {
                    Some("with an empty field name to query".to_owned())
                } else {
                    None
                };
                if let Some(problem) = problem {
                    self.log
                        .push(format!("ERROR {log_as}: Cannot call {name} {problem}"));
                    return None;
                }
                let Some(obj) = self.sorcery.get(otype, arg(0)) else {
                    self.log.push(format!(
                        "WARNING {log_as}: Failed to retrieve information for {label} '{}'",
                        arg(0)
                    ));
                    return None;
                };
                match (otype, arg(1)) {
                    // No registrations in the stand-in: no contact objects.
                    ("aor", "contact") => Some(String::new()),
                    ("endpoint", "disallow") => obj.field("disallow").map(|v| format!("!{v}")),
                    (_, "type") => None,
                    (_, field) => obj.field(field),
                }
                .or_else(|| {
                    self.log.push(format!(
                        "WARNING {log_as}: Unknown property '{}' for PJSIP {label}",
                        arg(1)
                    ));
                    None
                })
            }
            "DIALPLAN_EXISTS" => {
                if args.is_empty() {
                    self.log.push(
                        "ERROR func_dialplan.c: DIALPLAN_EXISTS() requires an argument".into(),
                    );
                    return None;
                }
                let (ctx, ext, pri) = (arg(0), arg(1), arg(2));
                let found = if !pri.is_empty() {
                    match leading_int(pri) {
                        Some(n) if n > 0 => self.dialplan.exists(ctx, ext, n),
                        _ => self.dialplan.find_label(ctx, ext, pri).unwrap_or(0) > 0,
                    }
                } else if !ext.is_empty() {
                    self.dialplan.exists(ctx, ext, 1)
                } else if !ctx.is_empty() {
                    self.dialplan.context(ctx).is_some()
                } else {
                    self.log.push(
                        "ERROR func_dialplan.c: Invalid arguments provided to DIALPLAN_EXISTS"
                            .into(),
                    );
                    return None;
                };
                Some(if found { "1" } else { "0" }.into())
            }
            _ => {
                self.log.push(format!(
                    "ERROR pbx_functions.c: Function {name} not registered"
                ));
                None
            }
        }
    }
}

fn leading_int(s: &str) -> Option<i32> {
    let t = s.trim_start();
    let digits: String = t
        .char_indices()
        .take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && (*c == '-' || *c == '+')))
        .map(|(_, c)| c)
        .collect();
    digits.parse().ok()
}

/// `ast_app_separate_args` with ',' (quotes and backslashes removed).
pub fn separate_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.is_empty() {
        return out;
    }
    let mut cur = String::new();
    let (mut paren, mut bracket, mut quote) = (0, 0, false);
    let mut chars = s.chars();
    let mut ended_with_delim = false;
    while let Some(c) = chars.next() {
        ended_with_delim = false;
        match c {
            '[' if !quote => {
                bracket += 1;
                cur.push(c);
            }
            ']' if !quote && bracket > 0 => {
                bracket -= 1;
                cur.push(c);
            }
            '(' if !quote => {
                paren += 1;
                cur.push(c);
            }
            ')' if !quote && paren > 0 => {
                paren -= 1;
                cur.push(c);
            }
            '"' => quote = !quote,
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' if paren == 0 && bracket == 0 && !quote => {
                out.push(std::mem::take(&mut cur));
                ended_with_delim = true;
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() || ended_with_delim || out.is_empty() {
        out.push(cur);
    }
    out
}

/// `parse_variable_name`: strips `:offset:length` outside parentheses.
fn parse_variable_name(var: &str) -> (String, Option<(i32, i32)>, bool) {
    let mut parens = 0i32;
    let mut isfunc = false;
    for (i, c) in var.char_indices() {
        match c {
            '(' => {
                isfunc = true;
                parens += 1;
            }
            ')' => parens -= 1,
            ':' if parens == 0 => {
                let rest = &var[i + 1..];
                let mut it = rest.splitn(2, ':');
                let offset = it.next().and_then(leading_int).unwrap_or(0);
                let length = it.next().and_then(leading_int).unwrap_or(i32::MAX);
                return (var[..i].to_string(), Some((offset, length)), isfunc);
            }
            _ => {}
        }
    }
    (var.to_string(), None, isfunc)
}

/// `ast_str_substring`.
pub fn substring(value: &str, offset: i32, length: i32) -> String {
    let chars: Vec<char> = value.chars().collect();
    let lr = chars.len() as i64;
    let (mut offset, length) = (offset as i64, length as i64);
    if offset == 0 && length >= lr {
        return value.to_string();
    }
    if offset < 0 {
        offset = (lr + offset).max(0);
    }
    if offset >= lr {
        return String::new();
    }
    let rest: Vec<char> = chars[offset as usize..].to_vec();
    let lr = rest.len() as i64;
    let take = if length >= 0 {
        length.min(lr)
    } else if lr > -length {
        lr + length
    } else {
        0
    };
    rest[..take as usize].iter().collect()
}

/// `ast_str_substitute_variables` for one channel.
pub fn substitute(env: &mut Env<'_>, templ: &str) -> String {
    let mut out = String::new();
    let b = templ.as_bytes();
    let mut pos = 0usize;
    while pos < b.len() {
        let Some(rel) = templ[pos..].find('$') else {
            out.push_str(&templ[pos..]);
            break;
        };
        let d = pos + rel;
        match b.get(d + 1) {
            Some(b'{') | Some(b'[') => {
                out.push_str(&templ[pos..d]);
            }
            _ => {
                out.push_str(&templ[pos..=d]);
                pos = d + 1;
                continue;
            }
        }
        let is_var = b[d + 1] == b'{';
        let (open, close, other) = if is_var {
            (b'{', b'}', b'[')
        } else {
            (b'[', b']', b'{')
        };
        let start = d + 2;
        let mut end = start;
        let mut brackets = 1;
        let mut needsub = false;
        while brackets > 0 && end < b.len() {
            if b[end] == b'$' && b.get(end + 1) == Some(&open) {
                needsub = true;
                brackets += 1;
                end += 1;
            } else if b[end] == open {
                brackets += 1;
            } else if b[end] == close {
                brackets -= 1;
            } else if b[end] == b'$' && b.get(end + 1) == Some(&other) {
                needsub = true;
                end += 1;
            }
            end += 1;
        }
        let inner_end = if brackets > 0 {
            env.log.push(format!(
                "WARNING pbx_variables.c: Error in extension logic (missing '{}')",
                close as char
            ));
            end.min(b.len())
        } else {
            end - 1
        };
        let inner = &templ[start..inner_end.max(start)];
        pos = end.min(b.len());
        let finalvars = if needsub {
            substitute(env, inner)
        } else {
            inner.to_string()
        };
        if !is_var {
            // $[...] expressions are not evaluated by the stand-in; keep the text.
            out.push_str(&finalvars);
            continue;
        }
        let (name, sub, isfunc) = parse_variable_name(&finalvars);
        let value = if isfunc {
            env.function(&name)
        } else {
            env.variable(&name)
        };
        if let Some(v) = value {
            match sub {
                Some((o, l)) => out.push_str(&substring(&v, o, l)),
                None => out.push_str(&v),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substrings() {
        assert_eq!(substring("check-tokABC_9", 6, i32::MAX), "tokABC_9");
        assert_eq!(substring("12345", -2, i32::MAX), "45");
        assert_eq!(substring("12345", 1, 2), "23");
        assert_eq!(substring("12345", 0, -1), "1234");
        assert_eq!(substring("12345", 9, 1), "");
    }

    #[test]
    fn args() {
        assert_eq!(separate_args("a,b"), ["a", "b"]);
        assert_eq!(separate_args("a,\"b,c\""), ["a", "b,c"]);
        assert_eq!(separate_args("f(x,y),z"), ["f(x,y)", "z"]);
        assert_eq!(separate_args("a,"), ["a", ""]);
        assert!(separate_args("").is_empty());
    }

    #[test]
    fn variables_and_functions() {
        let chan = ChanInfo {
            exten: "check-tokABC_9".into(),
            ..Default::default()
        };
        let mut vars = BTreeMap::new();
        vars.insert("AGISTATUS".to_string(), "OK".to_string());
        let s = Sorcery::default();
        let dp = Dialplan::default();
        let mut log = Vec::new();
        let mut env = Env {
            chan: &chan,
            vars: &vars,
            sorcery: &s,
            dialplan: &dp,
            log: &mut log,
            functions: 0,
        };
        assert_eq!(substitute(&mut env, "${EXTEN:6}"), "tokABC_9");
        assert_eq!(substitute(&mut env, "x${AGISTATUS}y$z"), "xOKy$z");
        assert_eq!(
            substitute(
                &mut env,
                "${PJSIP_ENDPOINT(9999,context)}|${DIALPLAN_EXISTS(a,1,1)}"
            ),
            "|0"
        );
        assert_eq!(env.functions, 2);
        assert_eq!(substitute(&mut env, "${LEN(${AGISTATUS})}"), "");
        assert_eq!(
            substitute(
                &mut env,
                "${PJSIP_AOR(,max_contacts)}${PJSIP_ENDPOINT(1000,)}"
            ),
            ""
        );
        assert_eq!(
            log,
            [
                "WARNING func_pjsip_endpoint.c: Failed to retrieve information for endpoint '9999'",
                "ERROR pbx_functions.c: Function LEN not registered",
                "ERROR func_pjsip_aor.c: Cannot call PJSIP_AOR without an AOR name to query",
                "ERROR func_pjsip_endpoint.c: Cannot call PJSIP_ENDPOINT with an empty field name to query",
            ]
        );
    }
}
