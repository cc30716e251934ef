//! The CLI: Asterisk's command table and lookup (`find_cli`, `find_best`, `parse_args`
//! of main/cli.c), the handlers of the commands the stand-in models, and the control
//! socket plus generated bash script that stand in for `asterisk -rx`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::{channel, dialplan, pjsip, reload_cost, Fault, Inner, ReloadResult};

/// The CLI commands the stand-in answers, as `e->command` spells them. A lab build
/// registers about 330; the others are left out, except `!` (the shell escape), which
/// shapes the `core show help <words>` hint of every unknown command (see `find_best`).
/// Without the others that hint can be shorter than Asterisk's; for the unknown
/// commands of the recorded transcripts it is the same.
pub const COMMANDS: &[&str] = &[
    "!",
    "channel originate",
    "core show uptime [seconds]",
    "core waitfullybooted",
    "dialplan reload",
    "dialplan show",
    "module load",
    "module reload",
    "module show [like]",
    "module unload",
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
        "core show uptime [seconds]" => "Usage: core show uptime [seconds]\n       Shows Asterisk uptime information.\n       The seconds word returns the uptime in seconds only.\n",
        "core waitfullybooted" => "Usage: core waitfullybooted\n\tWait until Asterisk has fully booted.\n",
        "dialplan reload" => "Usage: dialplan reload\n       Reload extensions.conf without reloading any other\n       modules.  This command does not delete global variables\n       unless clearglobalvars is set to yes in extensions.conf\n",
        "dialplan show" => "Usage: dialplan show [[exten@]context]\n       Show dialplan\n",
        "module load" => "Usage: module load <module name>\n       Loads the specified module into Asterisk.\n",
        "module show [like]" => "Usage: module show [like keyword]\n       Shows Asterisk modules currently in use, and usage statistics.\n",
        "module unload" => "Usage: module unload [-f|-h] <module_1> [<module_2> ... ]\n       Unloads the specified module from Asterisk. The -f\n       option causes the module to be unloaded even if it is\n       in use (may cause a crash) and the -h module causes the\n       module to be unloaded even if the module says it cannot, \n       which almost always will cause a crash.\n",
        "channel originate" => "  There are two ways to use this command. A call can be originated between a\nchannel and a specific application, or between a channel and an extension in\nthe dialplan. This is similar to call files or the manager originate action.\nCalls originated with this command are given a timeout of 30 seconds.\n\nUsage1: channel originate <tech/data> application <appname> [appdata]\n  This will originate a call between the specified channel tech/data and the\ngiven application. Arguments to the application are optional. If the given\narguments to the application include spaces, all of the arguments to the\napplication need to be placed in quotation marks.\n\nUsage2: channel originate <tech/data> extension [exten@][context]\n  This will originate a call between the specified channel tech/data and the\ngiven extension. If no context is specified, the 'default' context will be\nused. If no extension is given, the 's' extension will be used.\n",
        _ => "Invalid usage, but no usage information available.\n",
    }
}

/// cli.c `print_uptimestr`: whole seconds, or years, weeks, days, hours, minutes and
/// seconds, each only when the rest is more than one of it (`>`, not `>=`), seconds when
/// they are not zero or nothing else was printed.
fn uptime_str(d: std::time::Duration, prefix: &str, seconds: bool) -> String {
    let mut secs = d.as_secs();
    if seconds {
        return format!("{prefix}{secs}\n");
    }
    const UNITS: [(&str, u64); 5] = [
        ("year", 86_400 * 365),
        ("week", 86_400 * 7),
        ("day", 86_400),
        ("hour", 3_600),
        ("minute", 60),
    ];
    let ess = |x: u64| if x == 1 { "" } else { "s" };
    let mut out = String::new();
    for (unit, len) in UNITS {
        if secs > len {
            let x = secs / len;
            secs -= x * len;
            let comma = if secs != 0 { ", " } else { "" };
            out.push_str(&format!("{x} {unit}{}{comma}", ess(x)));
        }
    }
    if secs > 0 || out.is_empty() {
        out.push_str(&format!("{secs} second{}", ess(secs)));
    }
    format!("{prefix}{out}\n")
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
        "core show uptime [seconds]" => {
            // cli.c handle_showuptime: `seconds` as the fourth word, or nothing after
            // `uptime`; both spans from one `curtime`; ast_startuptime and
            // ast_lastreloadtime are always set here.
            let seconds = match argc {
                4 if arg(3).eq_ignore_ascii_case("seconds") => true,
                3 => false,
                _ => return usage(),
            };
            let now = std::time::Instant::now();
            let since = |at: super::Moment| now.saturating_duration_since(at.mono);
            ok(format!(
                "{}{}",
                uptime_str(since(inner.started_at()), "System uptime: ", seconds),
                uptime_str(since(inner.last_reload_at()), "Last reload: ", seconds)
            ))
        }
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
        "module show [like]" => {
            let like = match argc {
                4 if arg(2).eq_ignore_ascii_case("like") => arg(3),
                2 => "",
                _ => return usage(),
            };
            modules::show(inner.state().srtp_loaded, like)
        }
        "module load" => {
            if argc != 3 {
                return usage();
            }
            modules::load(&mut inner.state().srtp_loaded, arg(2))
        }
        "module unload" => {
            if argc < 3 {
                return usage();
            }
            let mut names = &argv[2..];
            if arg(2).starts_with('-') {
                if !matches!(arg(2).as_bytes().get(1), Some(b'f' | b'h')) || argc < 4 {
                    return usage();
                }
                names = &argv[3..];
            }
            modules::unload(&mut inner.state().srtp_loaded, names)
        }
        "dialplan reload" => {
            if argc != 2 {
                return usage();
            }
            // pbx_config.c handle_cli_dialplan_reload calls pbx_load_module itself, not
            // ast_module_reload: ast_lastreloadtime stays and no Event: Reload is sent.
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

/// The module commands of main/cli.c (handle_modlist, handle_load, handle_unload) over
/// the one module the stand-in models: res_srtp.so (F-TLS-1, F-TLS-8).
mod modules {
    use super::CliResult;

    const SRTP: &str = "res_srtp.so";

    /// `res_srtp` or `res_srtp.so` (the loader matches with and without `.so`).
    fn is_srtp(name: &str) -> bool {
        name.strip_suffix(".so").unwrap_or(name) == "res_srtp"
    }

    fn not_modelled(what: &str) -> CliResult {
        CliResult {
            output: format!("stand-in: only res_srtp.so is modelled ({what})\n"),
            success: false,
        }
    }

    fn done(output: String, success: bool) -> CliResult {
        CliResult { output, success }
    }

    /// `module show like <like>`: MODLIST_FORMAT2's header, the rows whose name contains
    /// `like` (strcasestr), `%d modules loaded`. Only a `like` that names no module but
    /// res_srtp is modelled.
    pub fn show(loaded: bool, like: &str) -> CliResult {
        let lower = like.to_ascii_lowercase();
        if !lower.contains("srtp") {
            return not_modelled(&format!("module show like {like}"));
        }
        let mut out = format!(
            "{:<30} {:<40.40} {:<10} {:<11} {:>13}\n",
            "Module", "Description", "Use Count", "Status", "Support Level"
        );
        let mut n = 0;
        if loaded && SRTP.contains(&lower) {
            out.push_str(&format!(
                "{:<30} {:<40.40} {:<10} {:<11} {:>13}\n",
                SRTP, "Secure RTP (SRTP)", 0, "Running", "core"
            ));
            n += 1;
        }
        out.push_str(&format!("{n} modules loaded\n"));
        done(out, true)
    }

    /// `module load <name>`: `Loaded <name>`, or `Unable to load module <name>` (already
    /// running: the loader declines).
    pub fn load(loaded: &mut bool, name: &str) -> CliResult {
        if !is_srtp(name) {
            return not_modelled(&format!("module load {name}"));
        }
        if *loaded {
            return done(format!("Unable to load module {name}\n"), false);
        }
        *loaded = true;
        done(format!("Loaded {name}\n"), true)
    }

    /// `module unload <name>...`: `Unloaded <name>` each, stopping at the first
    /// `Unable to unload resource <name>` (not loaded).
    pub fn unload(loaded: &mut bool, names: &[String]) -> CliResult {
        if let Some(other) = names.iter().find(|n| !is_srtp(n)) {
            return not_modelled(&format!("module unload {other}"));
        }
        let mut out = String::new();
        for name in names {
            if !*loaded {
                out.push_str(&format!("Unable to unload resource {name}\n"));
                return done(out, false);
            }
            *loaded = false;
            out.push_str(&format!("Unloaded {name}\n"));
        }
        done(out, true)
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
            reload_cost::pay().await;
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

    #[test]
    fn uptime_strings_as_print_uptimestr() {
        let up = |secs: u64| uptime_str(std::time::Duration::from_secs(secs), "U: ", false);
        assert_eq!(up(0), "U: 0 seconds\n");
        assert_eq!(up(1), "U: 1 second\n");
        // Units are taken only when more than one of them remains (`>`).
        assert_eq!(up(60), "U: 60 seconds\n");
        assert_eq!(up(61), "U: 1 minute, 1 second\n");
        assert_eq!(up(3_600), "U: 60 minutes\n");
        assert_eq!(up(7_260), "U: 2 hours, 60 seconds\n");
        assert_eq!(up(7_261), "U: 2 hours, 1 minute, 1 second\n");
        assert_eq!(
            up(86_400 * 365 + 86_400 * 8 + 1),
            "U: 1 year, 1 week, 1 day, 1 second\n"
        );
        let secs = uptime_str(std::time::Duration::from_millis(61_900), "U: ", true);
        assert_eq!(secs, "U: 61\n");
    }

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
    fn module_commands_as_main_cli_c_answers_them() {
        let mut loaded = true;
        let show = |l: bool, like: &str| modules::show(l, like).output;
        assert_eq!(
            show(true, "res_srtp"),
            "Module                         Description                              Use Count  Status      Support Level\n\
             res_srtp.so                    Secure RTP (SRTP)                        0          Running              core\n\
             1 modules loaded\n"
        );
        assert!(show(false, "res_srtp").ends_with("Support Level\n0 modules loaded\n"));
        assert!(!modules::show(true, "res_").success, "not modelled");
        let unload = |l: &mut bool, n: &[&str]| {
            let names: Vec<String> = n.iter().map(|s| s.to_string()).collect();
            modules::unload(l, &names)
        };
        let r = unload(&mut loaded, &["res_srtp.so"]);
        assert_eq!(
            (r.output.as_str(), r.success, loaded),
            ("Unloaded res_srtp.so\n", true, false)
        );
        let r = unload(&mut loaded, &["res_srtp.so"]);
        assert_eq!(
            (r.output.as_str(), r.success),
            ("Unable to unload resource res_srtp.so\n", false)
        );
        let r = modules::load(&mut loaded, "res_srtp.so");
        assert_eq!(
            (r.output.as_str(), r.success, loaded),
            ("Loaded res_srtp.so\n", true, true)
        );
        let r = modules::load(&mut loaded, "res_srtp.so");
        assert_eq!(
            (r.output.as_str(), r.success),
            ("Unable to load module res_srtp.so\n", false)
        );
        assert!(!modules::load(&mut loaded, "chan_pjsip.so").success);
        let t = table();
        let i = find_cli(&t, &words("module show like res_srtp"), 0).unwrap();
        assert_eq!(t[i].join(" "), "module show [like]");
        let i = find_cli(&t, &words("module unload res_srtp.so"), 0).unwrap();
        assert_eq!(t[i].join(" "), "module unload");
    }

    /// The lab's `pjsip show transports` and `module show like res_srtp` over AMI, byte
    /// for byte (the lab's pjsip.conf, F-TLS: udp and tcp on 5070, tls on 5071; the
    /// certificate files only need to exist for the loader).
    #[tokio::test]
    async fn replays_the_recorded_transports_and_res_srtp_answers() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path();
        let (pjsip, dial) = (etc.join("pjsip.d"), etc.join("extensions.d"));
        std::fs::create_dir_all(&pjsip).unwrap();
        std::fs::create_dir_all(&dial).unwrap();
        let (cert, key) = super::super::placeholder_tls_files(etc);
        let conf = super::super::lab_pjsip_conf(&pjsip)
            .replace("127.0.0.1:5060", "0.0.0.0:5070")
            .replace(
                "\n#tryinclude",
                &format!(
                    "\n[transport-tls]\ntype = transport\nprotocol = tls\nbind = 0.0.0.0:5071\ncert_file = {}\npriv_key_file = {}\nmethod = tlsv1_2\n\n#tryinclude",
                    cert.display(),
                    key.display()
                ),
            );
        std::fs::write(etc.join("pjsip.conf"), conf).unwrap();
        let ast =
            super::super::FakeAsterisk::start(etc, &pjsip, &dial, super::super::Options::default())
                .await
                .unwrap();
        let session = |commands: &'static [&'static str], want: &'static [u8]| {
            let addr = ast.ami_addr();
            async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                let mut sent = String::from(
                    "Action: Login\r\nUsername: portal\r\nSecret: portal-secret\r\nEvents: off\r\n\r\n",
                );
                for (i, c) in commands.iter().enumerate() {
                    sent.push_str(&format!(
                        "Action: Command\r\nActionID: c{i}\r\nCommand: {c}\r\n\r\n"
                    ));
                }
                s.write_all(sent.as_bytes()).await.unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while got.len() < want.len() {
                    let n =
                        tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
                            .await
                            .unwrap_or_else(|_| {
                                panic!("timed out: {}", String::from_utf8_lossy(&got))
                            })
                            .unwrap();
                    assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
                    got.extend_from_slice(&buf[..n]);
                }
                assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
                assert_eq!(got, want);
            }
        };
        const LOADED: &[u8] = fixture_bytes!("tls/ami_command_transports_srtp_loaded.recv.bin");
        const NOT_LOADED: &[u8] = fixture_bytes!("tls/ami_command_srtp_not_loaded.recv.bin");
        session(
            &["pjsip show transports", "module show like res_srtp"],
            LOADED,
        )
        .await;
        assert_eq!(
            ast.cli("module unload res_srtp.so"),
            "Unloaded res_srtp.so\n"
        );
        session(&["module show like res_srtp"], NOT_LOADED).await;
        assert_eq!(ast.cli("module load res_srtp.so"), "Loaded res_srtp.so\n");
        ast.set_srtp_loaded(false);
        session(&["module show like res_srtp"], NOT_LOADED).await;
        ast.stop().await;
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
