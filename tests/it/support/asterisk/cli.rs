//! The CLI: Asterisk's command table and lookup (`find_cli`, `find_best`, `parse_args`
//! of main/cli.c), the handlers of the commands the stand-in models, and the control
//! socket plus generated bash script that stand in for `asterisk -rx`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::{channel, dialplan, pjsip, Fault, Inner, ReloadResult};

/// The CLI commands the stand-in answers, as `e->command` spells them. A lab build
/// registers about 330; the others are left out, except `!` (the shell escape), which
/// shapes the `core show help <words>` hint of every unknown command (see `find_best`).
/// Without the others that hint can be shorter than Asterisk's; for the unknown
/// commands of the recorded transcripts it is the same.
pub const COMMANDS: &[&str] = &[
    "!",
    "channel originate",
    "core waitfullybooted",
    "dialplan reload",
    "dialplan show",
    "module reload",
    "pjsip show aors",
    "pjsip show contacts",
    "pjsip show endpoint",
    "pjsip show endpoints",
    "pjsip show transports",
];

/// Commands owned by pbx_config (absent while it is not running).
const PBX_CONFIG_COMMANDS: &[&str] = &["dialplan reload"];

/// Commands that disappear under `Fault::CommandError`.
const RELOAD_COMMANDS: &[&str] = &["module reload", "dialplan reload"];

const RSVD: &[u8] = b"[]{}|*%";

/// `parse_args` of main/cli.c: whitespace separated, `"` quoting, `\` escapes.
pub fn parse_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let (mut quoted, mut escaped) = (false, false);
    for c in s.trim_start().chars() {
        if c == '"' && !escaped {
            quoted = !quoted;
            if quoted && cur.is_none() {
                cur = Some(String::new());
            }
        } else if (c == ' ' || c == '\t') && !(quoted || escaped) {
            if let Some(w) = cur.take() {
                out.push(w);
            }
        } else if c == '\\' && !escaped {
            escaped = true;
        } else {
            cur.get_or_insert_with(String::new).push(c);
            escaped = false;
        }
    }
    if let Some(w) = cur {
        out.push(w);
    }
    out
}

/// `word_match`: -1 mismatch, 1 match.
fn word_match(cmd: Option<&str>, cli_word: Option<&str>) -> i32 {
    let (Some(cmd), Some(cli_word)) = (cmd, cli_word) else {
        return -1;
    };
    if cmd.is_empty() || cli_word.is_empty() {
        return -1;
    }
    if !RSVD.contains(&cli_word.as_bytes()[0]) {
        return if cmd.eq_ignore_ascii_case(cli_word) {
            1
        } else {
            -1
        };
    }
    if cli_word.starts_with('%') {
        return 1;
    }
    let lw = cli_word.to_ascii_lowercase();
    let lc = cmd.to_ascii_lowercase();
    let wb = lw.as_bytes();
    let mut from = 0;
    while let Some(p) = lw[from..].find(&lc) {
        let pos = from + p;
        let before = pos.checked_sub(1).map(|i| wb[i]);
        let after = wb.get(pos + lc.len()).copied().unwrap_or(0);
        if pos != 0
            && before.map(|b| RSVD.contains(&b)).unwrap_or(false)
            && (after == 0 || RSVD.contains(&after))
        {
            return 1;
        }
        from = pos + 1;
    }
    -1
}

fn registered(inner: &Inner) -> Vec<Vec<String>> {
    let pbx = inner.state().pbx_config_running;
    let cmd_err = inner.has_fault(&Fault::CommandError);
    COMMANDS
        .iter()
        .filter(|c| pbx || !PBX_CONFIG_COMMANDS.contains(c))
        .filter(|c| !cmd_err || !RELOAD_COMMANDS.contains(c))
        .map(|c| c.split_whitespace().map(String::from).collect())
        .collect()
}

/// `find_cli`: the index of the matching entry.
fn find_cli(table: &[Vec<String>], cmds: &[String], match_type: i32) -> Option<usize> {
    let mut matchlen: isize = -1;
    let mut cand = None;
    for (idx, e) in table.iter().enumerate() {
        let mut s = 0usize;
        let mut d = 0usize;
        loop {
            let n = word_match(
                cmds.get(s).map(String::as_str),
                e.get(d).map(String::as_str),
            );
            if n < 0 {
                break;
            }
            s += n as usize;
            d += 1;
        }
        let src_empty = cmds.get(s).map(|x| x.is_empty()).unwrap_or(true);
        let dst_done = match e.get(d) {
            None => true,
            Some(w) => w.starts_with('[') && e.get(d + 1).is_none(),
        };
        if dst_done {
            if src_empty {
                return Some(idx);
            }
            if match_type != 0 {
                continue;
            }
        } else {
            if src_empty {
                continue;
            }
            let src_last = cmds.get(s + 1).is_none();
            let dst_last = e.get(d + 1).is_none();
            if match_type != -1 || !src_last || !dst_last {
                continue;
            }
        }
        if s as isize > matchlen {
            matchlen = s as isize;
            cand = Some(idx);
        }
    }
    cand
}

/// `find_best`: the words shown in `type 'core show help ...'`.
fn find_best(table: &[Vec<String>], argv: &[String]) -> String {
    let mut my: Vec<String> = Vec::new();
    for a in argv {
        my.push(a.clone());
        if find_cli(table, &my, -1).is_none() {
            break;
        }
    }
    let joined = my.join(" ");
    joined.chars().take(79).collect()
}

/// What a CLI command printed and whether the handler returned CLI_SUCCESS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliResult {
    pub output: String,
    pub success: bool,
}

fn ok(output: impl Into<String>) -> CliResult {
    CliResult {
        output: output.into(),
        success: true,
    }
}

const SHOWUSAGE: &str = "\u{0}showusage";

fn usage_of(cmd: &str) -> &'static str {
    match cmd {
        "core waitfullybooted" => "Usage: core waitfullybooted\n\tWait until Asterisk has fully booted.\n",
        "dialplan reload" => "Usage: dialplan reload\n       Reload extensions.conf without reloading any other\n       modules.  This command does not delete global variables\n       unless clearglobalvars is set to yes in extensions.conf\n",
        "dialplan show" => "Usage: dialplan show [[exten@]context]\n       Show dialplan\n",
        "channel originate" => "  There are two ways to use this command. A call can be originated between a\nchannel and a specific application, or between a channel and an extension in\nthe dialplan. This is similar to call files or the manager originate action.\nCalls originated with this command are given a timeout of 30 seconds.\n\nUsage1: channel originate <tech/data> application <appname> [appdata]\n  This will originate a call between the specified channel tech/data and the\ngiven application. Arguments to the application are optional. If the given\narguments to the application include spaces, all of the arguments to the\napplication need to be placed in quotation marks.\n\nUsage2: channel originate <tech/data> extension [exten@][context]\n  This will originate a call between the specified channel tech/data and the\ngiven extension. If no context is specified, the 'default' context will be\nused. If no extension is given, the 's' extension will be used.\n",
        _ => "Invalid usage, but no usage information available.\n",
    }
}

/// Runs one command line the way `ast_cli_command` does.
pub(crate) fn execute(inner: &Arc<Inner>, line: &str) -> CliResult {
    let argv = parse_args(line);
    if argv.is_empty() {
        return CliResult {
            output: String::new(),
            success: false,
        };
    }
    let table = registered(inner);
    let Some(idx) = find_cli(&table, &argv, 0) else {
        return CliResult {
            output: format!(
                "No such command '{}' (type 'core show help {}' for other possible commands)\n",
                line,
                find_best(&table, &argv)
            ),
            success: false,
        };
    };
    let entry = table[idx].join(" ");
    let res = handle(inner, &entry, &argv);
    if res.output == SHOWUSAGE {
        return CliResult {
            output: usage_of(&entry).to_string(),
            success: false,
        };
    }
    if !res.success {
        let mut out = res.output;
        out.push_str(&format!("Command '{line}' failed.\n"));
        return CliResult {
            output: out,
            success: false,
        };
    }
    res
}

fn usage() -> CliResult {
    CliResult {
        output: SHOWUSAGE.into(),
        success: false,
    }
}

fn handle(inner: &Arc<Inner>, entry: &str, argv: &[String]) -> CliResult {
    let argc = argv.len();
    let arg = |i: usize| argv.get(i).map(String::as_str).unwrap_or("");
    match entry {
        "core waitfullybooted" => ok("Asterisk has fully booted.\n"),
        "module reload" => {
            if argc == 2 {
                inner.module_reload(None);
                return ok("");
            }
            let mut out = String::new();
            for m in &argv[2..] {
                out.push_str(&match inner.module_reload(Some(m)) {
                    ReloadResult::NotFound => format!("No such module '{m}'\n"),
                    ReloadResult::Error => format!("The module '{m}' reported a reload failure\n"),
                    ReloadResult::Uninitialized => format!("The module '{m}' was not properly initialized. Before reloading the module, you must run \"module load {m}\" and fix whatever is preventing the module from being initialized.\n"),
                    ReloadResult::Success => format!("Module '{m}' reloaded successfully.\n"),
                });
            }
            ok(out)
        }
        "dialplan reload" => {
            if argc != 2 {
                return usage();
            }
            inner.load_dialplan(false);
            ok("Dialplan reloaded.\n")
        }
        "dialplan show" => {
            if argc != 2 && argc != 3 {
                return usage();
            }
            let st = inner.state();
            let (out, success) =
                dialplan::show(&st.dialplan, if argc == 3 { Some(arg(2)) } else { None });
            CliResult {
                output: out,
                success,
            }
        }
        "channel originate" => {
            let (target, how, app) = (arg(2), arg(3), arg(4));
            if target.is_empty() || how.is_empty() {
                return usage();
            }
            if !how.eq_ignore_ascii_case("application") {
                return CliResult {
                    output: "stand-in: only `channel originate <tech/data> application <app>` is modelled\n".into(),
                    success: false,
                };
            }
            if app.is_empty() || !target.contains('/') {
                return usage();
            }
            if !inner.has_fault(&Fault::NeverCallBack) {
                drop(channel::start(inner.clone(), target));
            }
            ok("")
        }
        "pjsip show endpoints" => ok(inner.with_state(|inner, st, b| {
            let contacts = inner.all_aor_contacts(st, b);
            pjsip::show_endpoints(&st.sorcery, &st.registrar, &contacts)
        })),
        "pjsip show aors" => ok(inner.with_state(|inner, st, b| {
            let contacts = inner.all_aor_contacts(st, b);
            pjsip::show_aors(&st.sorcery, &contacts)
        })),
        "pjsip show contacts" => ok(pjsip::show_contacts(inner.state().registrar.infos())),
        "pjsip show endpoint" => {
            if argc < 4 {
                return CliResult {
                    output: "No object specified.\n".into(),
                    success: false,
                };
            }
            ok(inner.with_state(|inner, st, b| {
                let contacts = inner.all_aor_contacts(st, b);
                pjsip::show_endpoint(&st.sorcery, &st.registrar, &contacts, arg(3))
            }))
        }
        "pjsip show transports" => ok(pjsip::show_transports(&inner.state().sorcery)),
        // `!`, the shell escape: in the table for what it does to `find_best`.
        _ => ok(""),
    }
}

// ----------------------------------------------------------------------------------
// The control socket and the `asterisk -rx` script

/// Writes the bash script that stands in for `asterisk -rx`.
pub fn write_script(path: &Path, addr: SocketAddr) -> std::io::Result<()> {
    let script = format!(
        r#"#!/usr/bin/env bash
# Stand-in for `asterisk -rx '<command>'` (generated by the Asterisk stand-in).
# Talks to the stand-in's control socket on {ip}:{port}.
cmd=""
while [ $# -gt 0 ]; do
  case "$1" in
    -C|-s|-U|-G|-c) shift ;;
    -*x) shift; cmd="${{1-}}" ;;
    -*) ;;
    *) cmd="$1" ;;
  esac
  [ $# -gt 0 ] && shift
done
fail() {{
  echo "Unable to connect to remote asterisk (does /var/run/asterisk/asterisk.ctl exist?)" >&2
  exit 1
}}
{{ exec 3<>"/dev/tcp/{ip}/{port}"; }} 2>/dev/null || fail
printf '%s\n' "${{cmd//$'\n'/ }}" >&3 2>/dev/null || fail
IFS= read -r status <&3 || fail
[ "$status" = "OK" ] || fail
cat <&3
exit 0
"#,
        ip = addr.ip(),
        port = addr.port()
    );
    std::fs::write(path, script)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// Accept loop of the control socket.
pub(crate) async fn serve(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        let me = inner.clone();
        inner.spawn(async move {
            let (r, mut w) = sock.into_split();
            let mut r = BufReader::new(r);
            let mut line = String::new();
            if r.read_line(&mut line).await.is_err() {
                return;
            }
            let cmd = line.trim_end_matches(['\n', '\r']).to_string();
            me.record_action(format!("CLI {cmd}"));
            if me.has_fault(&Fault::CliDown) || !me.running.load(Ordering::SeqCst) {
                let _ = w.write_all(b"DOWN\n").await;
                return;
            }
            if let Some(d) = me.stall() {
                tokio::time::sleep(d).await;
            }
            let res = execute(&me, &cmd);
            let mut out = b"OK\n".to_vec();
            out.extend_from_slice(res.output.as_bytes());
            let _ = w.write_all(&out).await;
            let _ = w.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Vec<Vec<String>> {
        COMMANDS
            .iter()
            .map(|c| c.split_whitespace().map(String::from).collect())
            .collect()
    }

    fn words(s: &str) -> Vec<String> {
        parse_args(s)
    }

    #[test]
    fn best_matches_of_the_transcripts() {
        let t = table();
        assert_eq!(find_best(&t, &words("pjsip reload")), "pjsip reload");
        assert_eq!(find_best(&t, &words("no such command here")), "no such");
        assert!(find_cli(&t, &words("pjsip reload"), 0).is_none());
        let i = find_cli(&t, &words("module reload res_pjsip.so"), 0).unwrap();
        assert_eq!(t[i].join(" "), "module reload");
        let i = find_cli(&t, &words("dialplan show synergy-internal"), 0).unwrap();
        assert_eq!(t[i].join(" "), "dialplan show");
        // An optional last word (`[seconds]`) may be given or left out.
        let t: Vec<Vec<String>> = vec![words("core show uptime [seconds]")];
        assert_eq!(find_cli(&t, &words("core show uptime"), 0), Some(0));
        assert_eq!(find_cli(&t, &words("core show uptime seconds"), 0), Some(0));
    }

    #[test]
    fn args() {
        assert_eq!(parse_args("  a  \"b c\" d\\ e"), ["a", "b c", "d e"]);
        assert_eq!(
            parse_args("channel originate Local/x@y application Wait 1").len(),
            6
        );
        assert!(parse_args("   ").is_empty());
    }
}
