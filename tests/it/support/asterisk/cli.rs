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

/// CLI commands registered in a lab build of 22.7.0 (modules that were not built are
/// left out), as `e->command` spells them.
pub const COMMANDS: &[&str] = &[
    "!",
    "_command matchesarray",
    "acl show",
    "agent logoff",
    "agent show",
    "agent show all",
    "agent show online",
    "agi dump html",
    "agi exec",
    "agi set debug [on|off]",
    "agi show commands [topic]",
    "aoc set debug",
    "astobj2 container check",
    "astobj2 container dump",
    "astobj2 container stats",
    "astobj2 show stats",
    "astobj2 test",
    "bridge destroy",
    "bridge kick",
    "bridge show",
    "bridge show all",
    "bridge technology show",
    "bridge technology {suspend|unsuspend}",
    "calendar dump sched",
    "calendar show calendar",
    "calendar show calendars",
    "calendar show types",
    "cc cancel [core|all]",
    "cc report status",
    "cdr set debug [on|off]",
    "cdr show active",
    "cdr show status",
    "cdr submit",
    "cel show status",
    "channel dump frames",
    "channel originate",
    "channel redirect",
    "channel request hangup",
    "cli check permissions",
    "cli reload permissions",
    "cli show permissions",
    "confbridge kick",
    "confbridge list",
    "confbridge lock",
    "confbridge mute",
    "confbridge record start",
    "confbridge record stop",
    "confbridge show menu",
    "confbridge show menus",
    "confbridge show profile bridge",
    "confbridge show profile bridges",
    "confbridge show profile user",
    "confbridge show profile users",
    "confbridge unlock",
    "confbridge unmute",
    "config list",
    "config reload",
    "config show help",
    "core abort shutdown",
    "core clear profile",
    "core eat memory",
    "core ping taskprocessor",
    "core reload",
    "core reset taskprocessor",
    "core reset taskprocessors",
    "core restart gracefully",
    "core restart now",
    "core restart when convenient",
    "core set debug",
    "core set debug category",
    "core set debug channel",
    "core set trace",
    "core set verbose",
    "core show application",
    "core show applications [like|describing]",
    "core show calls [uptime]",
    "core show channel",
    "core show channels [concise|verbose|count]",
    "core show channeltype",
    "core show channeltypes",
    "core show codec",
    "core show codecs [audio|video|image|text]",
    "core show config mappings",
    "core show device2extenstate",
    "core show fd",
    "core show file formats",
    "core show function",
    "core show functions [like]",
    "core show hanguphandlers",
    "core show hanguphandlers all",
    "core show help",
    "core show hint",
    "core show hints",
    "core show image formats",
    "core show license",
    "core show locks",
    "core show profile",
    "core show settings",
    "core show sound",
    "core show sounds",
    "core show switches",
    "core show sysinfo",
    "core show taskprocessor alerted subsystems",
    "core show taskprocessors [like]",
    "core show threads",
    "core show translation",
    "core show uptime [seconds]",
    "core show version",
    "core show warranty",
    "core stop gracefully",
    "core stop now",
    "core stop when convenient",
    "core waitfullybooted",
    "database del",
    "database deltree",
    "database get",
    "database put",
    "database query",
    "database show",
    "database showkey",
    "devstate change",
    "devstate list",
    "dialplan add extension",
    "dialplan add ignorepat",
    "dialplan add include",
    "dialplan debug",
    "dialplan eval function",
    "dialplan locks show",
    "dialplan reload",
    "dialplan remove context",
    "dialplan remove extension",
    "dialplan remove ignorepat",
    "dialplan remove include",
    "dialplan save",
    "dialplan set chanvar",
    "dialplan set extenpatternmatchnew false",
    "dialplan set extenpatternmatchnew true",
    "dialplan set global",
    "dialplan show",
    "dialplan show chanvar",
    "dialplan show globals",
    "dnsmgr refresh",
    "dnsmgr reload",
    "dnsmgr status",
    "fax set debug {on|off}",
    "fax show capabilities",
    "fax show session",
    "fax show sessions",
    "fax show settings",
    "fax show stats",
    "fax show version",
    "features show",
    "file convert",
    "geoloc list locations",
    "geoloc list profiles",
    "geoloc reload",
    "geoloc show gml_shape_defs",
    "geoloc show profiles",
    "group show channels",
    "http show status",
    "indication add",
    "indication remove",
    "indication show",
    "keys init",
    "keys show",
    "local show channels",
    "logger add channel",
    "logger filter changroup",
    "logger filter reset",
    "logger filter show",
    "logger mute",
    "logger reload",
    "logger remove channel",
    "logger rotate",
    "logger set level {DEBUG|TRACE|NOTICE|WARNING|ERROR|VERBOSE|DTMF} {on|off}",
    "logger show channels",
    "logger show levels",
    "malloc trim",
    "manager kick session",
    "manager reload",
    "manager set debug [on|off]",
    "manager show command",
    "manager show commands",
    "manager show connected",
    "manager show event",
    "manager show eventq",
    "manager show events",
    "manager show settings",
    "manager show user",
    "manager show users",
    "media cache create",
    "media cache delete",
    "media cache refresh",
    "media cache show",
    "media cache show all",
    "meetme kick",
    "meetme list",
    "meetme {lock|unlock}",
    "meetme {mute|unmute}",
    "memory atexit list {on|off}",
    "memory atexit summary {off|byline|byfunc|byfile}",
    "memory backtrace {on|off}",
    "memory show allocations",
    "memory show summary",
    "minivm list accounts [for]",
    "minivm list templates",
    "minivm list zones",
    "minivm reload",
    "minivm show settings",
    "minivm show stats",
    "mixmonitor {start|stop|list}",
    "module load",
    "module refresh",
    "module reload",
    "module show [like]",
    "module unload",
    "moh reload",
    "moh show classes",
    "moh show files",
    "moh unregister class",
    "no debug channel",
    "odbc read",
    "odbc show",
    "odbc write",
    "parking show",
    "phoneprov show routes",
    "pjsip dump endpt",
    "pjsip dump endpt [details]",
    "pjsip export config_wizard primitives [to]",
    "pjsip list aors",
    "pjsip list auths",
    "pjsip list channels",
    "pjsip list ciphers",
    "pjsip list contacts",
    "pjsip list endpoints",
    "pjsip list identifies",
    "pjsip list registrations",
    "pjsip list subscriptions {inbound|outbound} [like]",
    "pjsip list transports",
    "pjsip qualify",
    "pjsip reload qualify aor",
    "pjsip reload qualify endpoint",
    "pjsip send notify",
    "pjsip send register",
    "pjsip send unregister",
    "pjsip set history {on|off|clear}",
    "pjsip set logger {on|off|host|add|method|methodadd|verbose|pcap}",
    "pjsip show aor",
    "pjsip show aors",
    "pjsip show auth",
    "pjsip show auths",
    "pjsip show channel",
    "pjsip show channels",
    "pjsip show channelstats",
    "pjsip show contact",
    "pjsip show contacts",
    "pjsip show endpoint",
    "pjsip show endpoints",
    "pjsip show history",
    "pjsip show identifiers",
    "pjsip show identifies",
    "pjsip show identify",
    "pjsip show qualify aor",
    "pjsip show qualify endpoint",
    "pjsip show registration",
    "pjsip show registrations",
    "pjsip show scheduled_tasks",
    "pjsip show settings",
    "pjsip show subscription {inbound|outbound}",
    "pjsip show subscriptions {inbound|outbound} [like]",
    "pjsip show transport",
    "pjsip show transport-monitors",
    "pjsip show transports",
    "pjsip show unidentified_requests",
    "pjsip show version",
    "presencestate change",
    "presencestate list",
    "queue add member",
    "queue priority caller",
    "queue reload {parameters|members|rules|all}",
    "queue remove member",
    "queue reset stats",
    "queue set penalty",
    "queue set ringinuse",
    "queue show",
    "queue show rules",
    "queue {pause|unpause} member",
    "realtime destroy",
    "realtime load",
    "realtime store",
    "realtime update",
    "realtime update2",
    "rtcp set debug {on|off|ip}",
    "rtcp set stats {on|off}",
    "rtp drop",
    "rtp set debug {on|off|ip}",
    "rtp show settings",
    "say load [new|old]",
    "skel show config",
    "skel show games",
    "skel show levels",
    "sla show stations",
    "sla show trunks",
    "sorcery memory cache dump",
    "sorcery memory cache expire",
    "sorcery memory cache populate",
    "sorcery memory cache show",
    "sorcery memory cache stale",
    "sorcery show settings",
    "stasis show topic",
    "stasis show topics",
    "stasis statistics show messages",
    "stasis statistics show subscription",
    "stasis statistics show subscriptions",
    "stasis statistics show topic",
    "stasis statistics show topics",
    "stir_shaken show attestation",
    "stir_shaken show eprofile",
    "stir_shaken show eprofiles",
    "stir_shaken show profile",
    "stir_shaken show profiles",
    "stir_shaken show tn",
    "stir_shaken show tns",
    "stir_shaken show verification",
    "stir_shaken verify certificate_file",
    "stun set debug {on|off}",
    "test execute",
    "test generate results",
    "test show registered",
    "test show results",
    "threadstorage show allocations",
    "threadstorage show summary",
    "timing test",
    "udptl set debug {on|off|ip}",
    "udptl show config",
    "ulimit",
    "voicemail forward",
    "voicemail move",
    "voicemail reload",
    "voicemail remove",
    "voicemail show aliases",
    "voicemail show mailbox",
    "voicemail show users [for]",
    "voicemail show zones",
    "xmldoc dump",
    "xmldoc reload",
];

/// Commands owned by pbx_config (absent while it is not running).
const PBX_CONFIG_COMMANDS: &[&str] = &[
    "dialplan add extension",
    "dialplan add ignorepat",
    "dialplan add include",
    "dialplan reload",
    "dialplan remove context",
    "dialplan remove extension",
    "dialplan remove ignorepat",
    "dialplan remove include",
    "dialplan save",
];

/// Commands that disappear under `Fault::CommandError`.
const RELOAD_COMMANDS: &[&str] = &["module reload", "dialplan reload", "core reload"];

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
        "core show version" => "Usage: core show version\n       Shows Asterisk version information.\n",
        "core show uptime [seconds]" => "Usage: core show uptime [seconds]\n       Shows Asterisk uptime information.\n       The seconds word returns the uptime in seconds only.\n",
        "core waitfullybooted" => "Usage: core waitfullybooted\n\tWait until Asterisk has fully booted.\n",
        "core reload" => "Usage: core reload\n       Execute a global reload.\n",
        "dialplan reload" => "Usage: dialplan reload\n       Reload extensions.conf without reloading any other\n       modules.  This command does not delete global variables\n       unless clearglobalvars is set to yes in extensions.conf\n",
        "dialplan show" => "Usage: dialplan show [[exten@]context]\n       Show dialplan\n",
        "module load" => "Usage: module load <module name>\n       Loads the specified module into Asterisk.\n",
        "database put" => "Usage: database put <family> <key> <value>\n       Adds or updates an entry in the Asterisk database for\n       a given family, key, and value.\n",
        "database get" => "Usage: database get <family> <key>\n       Retrieves an entry in the Asterisk database for a given\n       family and key.\n",
        "database del" => "Usage: database del <family> <key>\n       Deletes an entry in the Asterisk database for a given\n       family and key.\n",
        "database deltree" => "Usage: database deltree <family> [keytree]\n   OR: database deltree <family>[/keytree]\n       Deletes a family or specific keytree within a family\n       in the Asterisk database.  The two arguments may be\n       separated by either a space or a slash.\n",
        "channel originate" => "  There are two ways to use this command. A call can be originated between a\nchannel and a specific application, or between a channel and an extension in\nthe dialplan. This is similar to call files or the manager originate action.\nCalls originated with this command are given a timeout of 30 seconds.\n\nUsage1: channel originate <tech/data> application <appname> [appdata]\n  This will originate a call between the specified channel tech/data and the\ngiven application. Arguments to the application are optional. If the given\narguments to the application include spaces, all of the arguments to the\napplication need to be placed in quotation marks.\n\nUsage2: channel originate <tech/data> extension [exten@][context]\n  This will originate a call between the specified channel tech/data and the\ngiven extension. If no context is specified, the 'default' context will be\nused. If no extension is given, the 's' extension will be used.\n",
        _ => "Invalid usage, but no usage information available.\n",
    }
}

fn uptime_str(secs: u64, printsec: bool) -> String {
    if printsec {
        return secs.to_string();
    }
    const MINUTE: u64 = 60;
    const HOUR: u64 = 3600;
    const DAY: u64 = 86400;
    const WEEK: u64 = DAY * 7;
    const YEAR: u64 = DAY * 365;
    let mut t = secs;
    let mut out = String::new();
    for (unit, name) in [
        (YEAR, "year"),
        (WEEK, "week"),
        (DAY, "day"),
        (HOUR, "hour"),
        (MINUTE, "minute"),
    ] {
        if t > unit {
            let x = t / unit;
            t -= x * unit;
            out.push_str(&format!(
                "{x} {name}{}{}",
                if x == 1 { "" } else { "s" },
                if t > 0 { ", " } else { "" }
            ));
        }
    }
    if t > 0 || out.is_empty() {
        out.push_str(&format!("{t} second{}", if t == 1 { "" } else { "s" }));
    }
    out
}

/// Runs one command line the way `ast_cli_command` does.
pub(crate) fn execute(inner: &Arc<Inner>, line: &str, via_ami: bool) -> CliResult {
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
    let res = handle(inner, &entry, &argv, via_ami);
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

fn handle(inner: &Arc<Inner>, entry: &str, argv: &[String], _via_ami: bool) -> CliResult {
    let argc = argv.len();
    let arg = |i: usize| argv.get(i).map(String::as_str).unwrap_or("");
    match entry {
        "core show version" => {
            if argc != 3 {
                return usage();
            }
            ok("Asterisk 22.7.0 built by root @ vm on a x86_64 running Linux on 2026-11-23 18:14:10 UTC\n")
        }
        "core show uptime [seconds]" => {
            let printsec = argc == 4 && arg(3).eq_ignore_ascii_case("seconds");
            if argc != 3 && !printsec {
                return usage();
            }
            ok(format!(
                "System uptime: {}\nLast reload: {}\n",
                uptime_str(inner.uptime().as_secs(), printsec),
                uptime_str(inner.since_reload().as_secs(), printsec)
            ))
        }
        "core waitfullybooted" => ok("Asterisk has fully booted.\n"),
        "core reload" => {
            if argc != 2 {
                return usage();
            }
            inner.module_reload(None);
            ok("")
        }
        "module reload" => {
            if argc == 2 {
                inner.module_reload(None);
                return ok("");
            }
            let mut out = String::new();
            for m in &argv[2..] {
                match inner.module_reload(Some(m)) {
                    ReloadResult::NotFound => out.push_str(&format!("No such module '{m}'\n")),
                    ReloadResult::NotImplemented => {
                        out.push_str(&format!("The module '{m}' does not support reloads\n"))
                    }
                    ReloadResult::Queued => out
                        .push_str("Asterisk cannot reload a module yet; request queued\n"),
                    ReloadResult::Error => {
                        out.push_str(&format!("The module '{m}' reported a reload failure\n"))
                    }
                    ReloadResult::InProgress => out.push_str(
                        "A module reload request is already in progress; please be patient\n",
                    ),
                    ReloadResult::Uninitialized => out.push_str(&format!("The module '{m}' was not properly initialized. Before reloading the module, you must run \"module load {m}\" and fix whatever is preventing the module from being initialized.\n")),
                    ReloadResult::Success => {
                        out.push_str(&format!("Module '{m}' reloaded successfully.\n"))
                    }
                }
            }
            ok(out)
        }
        "module load" => {
            if argc != 3 {
                return usage();
            }
            let m = arg(2);
            let base = m.strip_suffix(".so").unwrap_or(m);
            if base.eq_ignore_ascii_case("pbx_config") && !inner.state().pbx_config_running {
                if inner.load_dialplan(true) {
                    return ok(format!("Loaded {m}\n"));
                }
                inner.log_line("ERROR loader.c: pbx_config declined to load.");
                return ok(format!("Unable to load module {m}\n"));
            }
            inner.log_line(format!(
                "WARNING loader.c: Module '{m}' already loaded and running."
            ));
            ok(format!("Unable to load module {m}\n"))
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
        "database put" => {
            if argc != 5 {
                return usage();
            }
            inner
                .state()
                .astdb
                .insert(format!("/{}/{}", arg(2), arg(3)), arg(4).to_string());
            ok("Updated database successfully\n")
        }
        "database get" => {
            if argc != 4 {
                return usage();
            }
            match inner.state().astdb.get(&format!("/{}/{}", arg(2), arg(3))) {
                Some(v) => ok(format!("Value: {v}\n")),
                None => ok("Database entry not found.\n"),
            }
        }
        "database del" => {
            if argc != 4 {
                return usage();
            }
            match inner
                .state()
                .astdb
                .remove(&format!("/{}/{}", arg(2), arg(3)))
            {
                Some(_) => ok("Database entry removed.\n"),
                None => ok("Database entry could not be removed.\n"),
            }
        }
        "database deltree" => {
            if !(3..=4).contains(&argc) {
                return usage();
            }
            let prefix = if argc == 4 {
                format!("/{}/{}", arg(2), arg(3))
            } else {
                format!("/{}", arg(2))
            };
            let mut st = inner.state();
            let before = st.astdb.len();
            st.astdb
                .retain(|k, _| !(k == &prefix || k.starts_with(&format!("{prefix}/"))));
            let n = before - st.astdb.len();
            if n == 0 {
                ok("Database entries do not exist.\n")
            } else {
                ok(format!("{n} database entries removed.\n"))
            }
        }
        "database show" => {
            let prefix = match argc {
                2 => String::new(),
                3 => format!("/{}", arg(2)),
                4 => format!("/{}/{}", arg(2), arg(3)),
                _ => return usage(),
            };
            let st = inner.state();
            let mut out = String::new();
            let mut n = 0;
            for (k, v) in st.astdb.iter().filter(|(k, _)| k.starts_with(&prefix)) {
                out.push_str(&format!("{k:<50}: {v:<25}\n"));
                n += 1;
            }
            out.push_str(&format!("{n} results found.\n"));
            ok(out)
        }
        "channel originate" => {
            if arg(2).is_empty() || arg(3).is_empty() {
                return usage();
            }
            let target = arg(2).to_string();
            let Some((tech, data)) = target.split_once('/') else {
                return CliResult {
                    output: format!(
                        "*** No data provided after channel type! ***\n{}",
                        usage_of("channel originate")
                    ),
                    success: false,
                };
            };
            if tech.is_empty() || data.is_empty() {
                return usage();
            }
            let how = if arg(3).eq_ignore_ascii_case("application") {
                if arg(4).is_empty() {
                    return usage();
                }
                channel::Target::App {
                    app: arg(4).to_string(),
                    data: arg(5).to_string(),
                }
            } else if arg(3).eq_ignore_ascii_case("extension") {
                let (exten, context) = match arg(4).split_once('@') {
                    Some((e, c)) => (e.to_string(), c.to_string()),
                    None => (arg(4).to_string(), String::new()),
                };
                channel::Target::Exten {
                    context: if context.is_empty() {
                        "default".into()
                    } else {
                        context
                    },
                    exten: if exten.is_empty() { "s".into() } else { exten },
                    priority: 1,
                }
            } else {
                return usage();
            };
            let req = channel::OriginateRequest {
                channel: target,
                target: how,
                timeout_ms: 30_000,
                vars: Vec::new(),
                cid_name: None,
                cid_num: None,
                action_id: None,
                manager_event: false,
            };
            if !inner.has_fault(&Fault::NeverCallBack) {
                channel::originate_background(inner.clone(), req);
            }
            ok("")
        }
        _ if entry.starts_with("pjsip show ") || entry.starts_with("pjsip list ") => {
            let what = entry.split_whitespace().nth(2).unwrap_or("");
            let st = inner.state();
            match pjsip::cli_show(&st.sorcery, what, argv.get(3).map(String::as_str)) {
                Some(out) => ok(out),
                None => ok(""),
            }
        }
        // Registered in a real build but not modelled: prints nothing.
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
            let res = execute(&me, &cmd, false);
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
        let i = find_cli(&t, &words("core show uptime seconds"), 0).unwrap();
        assert_eq!(t[i].join(" "), "core show uptime [seconds]");
        let i = find_cli(&t, &words("pjsip show endpoint 1000"), 0).unwrap();
        assert_eq!(t[i].join(" "), "pjsip show endpoint");
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

    #[test]
    fn uptime() {
        assert_eq!(uptime_str(364, false), "6 minutes, 4 seconds");
        assert_eq!(uptime_str(123, false), "2 minutes, 3 seconds");
        assert_eq!(uptime_str(0, false), "0 seconds");
        assert_eq!(uptime_str(60, false), "60 seconds");
        assert_eq!(uptime_str(425, true), "425");
    }
}
