//! The FastAGI client side of `AGI(agi://host[:port][/script],args...)` (res_agi.c):
//! connect, the environment block, then strictly one command line in, one reply out,
//! with the 8192-byte line buffer, `HANGUP\n` on channel hangup, dead-channel mode and
//! a per-command / per-function cost that matches the lab's measurements.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::channel::{sleep_or_hangup, Call};
use super::funcs;

/// `AGISTATUS` after the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgiStatus {
    Success,
    Failure,
    Hangup,
}

/// res_agi reads command lines with `fgets` into this buffer.
pub const AGI_BUF_LEN: usize = 8192;
const AGI_PORT: u16 = 4573;
const MAX_AGI_CONNECT: Duration = Duration::from_millis(2000);
/// Measured cost of one command round trip and of one function evaluation.
pub const COST_PER_COMMAND: Duration = Duration::from_micros(95);
pub const COST_PER_FUNCTION: Duration = Duration::from_micros(43);

/// AGI commands: words, allowed on a dead channel.
const COMMANDS: &[(&[&str], bool)] = &[
    (&["answer"], false),
    (&["asyncagi", "break"], true),
    (&["channel", "status"], false),
    (&["database", "del"], true),
    (&["database", "deltree"], true),
    (&["database", "get"], true),
    (&["database", "put"], true),
    (&["exec"], true),
    (&["get", "data"], false),
    (&["get", "full", "variable"], true),
    (&["get", "option"], false),
    (&["get", "variable"], true),
    (&["hangup"], false),
    (&["noop"], true),
    (&["receive", "char"], false),
    (&["receive", "text"], false),
    (&["record", "file"], false),
    (&["say", "alpha"], false),
    (&["say", "digits"], false),
    (&["say", "number"], false),
    (&["say", "phonetic"], false),
    (&["say", "date"], false),
    (&["say", "time"], false),
    (&["say", "datetime"], false),
    (&["send", "image"], false),
    (&["send", "text"], false),
    (&["set", "autohangup"], false),
    (&["set", "callerid"], false),
    (&["set", "context"], false),
    (&["set", "extension"], false),
    (&["set", "music"], false),
    (&["set", "priority"], false),
    (&["set", "variable"], true),
    (&["stream", "file"], false),
    (&["control", "stream", "file"], false),
    (&["tdd", "mode"], false),
    (&["verbose"], true),
    (&["wait", "for", "digit"], false),
    (&["speech", "create"], false),
    (&["speech", "set"], false),
    (&["speech", "destroy"], true),
    (&["speech", "load", "grammar"], false),
    (&["speech", "unload", "grammar"], true),
    (&["speech", "activate", "grammar"], false),
    (&["speech", "deactivate", "grammar"], false),
    (&["speech", "recognize"], false),
];

/// `parse_args` of res_agi.c.
pub fn parse_args(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur: Option<String> = None;
    let (mut quoted, mut escaped) = (false, false);
    for c in s.chars() {
        match c {
            '"' if !escaped => {
                quoted = !quoted;
                if quoted && cur.is_none() {
                    cur = Some(String::new());
                }
                escaped = false;
            }
            ' ' | '\t' if !quoted && !escaped => {
                if let Some(w) = cur.take() {
                    out.push(w);
                }
            }
            '\\' if !escaped => escaped = true,
            _ => {
                if out.len() >= 127 && cur.is_none() {
                    continue;
                }
                cur.get_or_insert_with(String::new).push(c);
                escaped = false;
            }
        }
    }
    if let Some(w) = cur {
        out.push(w);
    }
    out
}

/// `find_command(cmds, 0)`: the first command whose words prefix the line.
fn find_command(argv: &[String]) -> Option<(&'static [&'static str], bool)> {
    if argv.is_empty() {
        return None;
    }
    COMMANDS
        .iter()
        .find(|(words, _)| {
            words.len() <= argv.len()
                && words
                    .iter()
                    .zip(argv)
                    .all(|(w, a)| w.eq_ignore_ascii_case(a))
        })
        .copied()
}

/// What one command produced.
struct Reply {
    text: String,
    functions: usize,
    /// HANGUP on the own channel was requested.
    hangup_self: bool,
}

fn reply(text: impl Into<String>) -> Reply {
    Reply {
        text: text.into(),
        functions: 0,
        hangup_self: false,
    }
}

const USAGE: &str = "520 Invalid command syntax.  Proper usage not available.\n";

async fn handle_command(call: &Arc<Call>, li: usize, line: &str, dead: bool) -> Reply {
    let argv = parse_args(line);
    let Some((words, dead_ok)) = find_command(&argv) else {
        return reply("510 Invalid or unknown command\n");
    };
    if dead && !dead_ok {
        return reply("511 Command Not Permitted on a dead channel or intercept routine\n");
    }
    let argc = argv.len();
    let arg = |i: usize| argv.get(i).map(String::as_str).unwrap_or("");
    let leg = call.legs[li].clone();
    let inner = call.inner.clone();
    match words.join(" ").as_str() {
        "answer" => {
            if call.answer_leg(li) {
                sleep_or_hangup(&leg, Duration::from_millis(500)).await;
            }
            reply("200 result=0\n")
        }
        "hangup" => match argc {
            1 => {
                leg.request_hangup();
                Reply {
                    hangup_self: true,
                    ..reply("200 result=1\n")
                }
            }
            2 => match call.legs.iter().find(|l| l.name == arg(1)) {
                Some(l) => {
                    l.request_hangup();
                    reply("200 result=1\n")
                }
                None => reply("200 result=-1\n"),
            },
            _ => reply(USAGE),
        },
        "noop" => reply("200 result=0\n"),
        "verbose" => {
            if argc < 2 {
                return reply(USAGE);
            }
            reply("200 result=1\n")
        }
        "get variable" => {
            if argc != 3 {
                return reply(USAGE);
            }
            let (v, n) = call.get_variable(li, arg(2));
            Reply {
                functions: n,
                ..reply(match v {
                    Some(v) => format!("200 result=1 ({v})\n"),
                    None => "200 result=0\n".to_string(),
                })
            }
        }
        "get full variable" => {
            if argc != 4 && argc != 5 {
                return reply(USAGE);
            }
            let target = if argc == 5 {
                match call.legs.iter().position(|l| l.name == arg(4)) {
                    Some(i) => i,
                    None => return reply("200 result=0\n"),
                }
            } else {
                li
            };
            let (v, n) = call.substitute(target, arg(3));
            Reply {
                functions: n,
                ..reply(format!("200 result=1 ({v})\n"))
            }
        }
        "set variable" => {
            if argc != 4 {
                return reply(USAGE);
            }
            leg.st().vars.insert(arg(2).to_string(), arg(3).to_string());
            reply("200 result=1\n")
        }
        "channel status" => {
            let l = if argc == 3 {
                match call.legs.iter().find(|l| l.name == arg(2)) {
                    Some(l) => l.clone(),
                    None => return reply("200 result=-1\n"),
                }
            } else if argc == 2 {
                leg.clone()
            } else {
                return reply(USAGE);
            };
            let state = l.st().state;
            reply(format!("200 result={state}\n"))
        }
        "database get" => {
            if argc != 4 {
                return reply(USAGE);
            }
            match inner.state().astdb.get(&format!("/{}/{}", arg(2), arg(3))) {
                Some(v) => reply(format!("200 result=1 ({v})\n")),
                None => reply("200 result=0\n"),
            }
        }
        "database put" => {
            if argc != 5 {
                return reply(USAGE);
            }
            inner
                .state()
                .astdb
                .insert(format!("/{}/{}", arg(2), arg(3)), arg(4).to_string());
            reply("200 result=1\n")
        }
        "database del" => {
            if argc != 4 {
                return reply(USAGE);
            }
            let removed = inner
                .state()
                .astdb
                .remove(&format!("/{}/{}", arg(2), arg(3)))
                .is_some();
            reply(format!("200 result={}\n", removed as i32))
        }
        "database deltree" => {
            if !(3..=4).contains(&argc) {
                return reply(USAGE);
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
            reply(format!(
                "200 result={}\n",
                (st.astdb.len() != before) as i32
            ))
        }
        "set context" | "set extension" | "set priority" => {
            if argc != 3 {
                return reply(USAGE);
            }
            let mut st = leg.st();
            match words[1] {
                "context" => st.context = arg(2).to_string(),
                "extension" => st.exten = arg(2).to_string(),
                _ => {
                    if let Ok(p) = arg(2).parse() {
                        st.priority = p;
                    }
                }
            }
            reply("200 result=0\n")
        }
        "exec" => {
            if argc < 2 {
                return reply(USAGE);
            }
            match arg(1).to_ascii_lowercase().as_str() {
                "set" => {
                    if let Some((k, v)) = arg(2).split_once('=') {
                        leg.st().vars.insert(k.to_string(), v.to_string());
                    }
                    reply("200 result=0\n")
                }
                "noop" | "verbose" | "log" => reply("200 result=0\n"),
                other => {
                    inner.log_line(format!(
                        "WARNING res_agi.c: Could not find application ({other})"
                    ));
                    reply("200 result=-2\n")
                }
            }
        }
        _ => reply("200 result=0\n"),
    }
}

/// Pops one `fgets` worth of bytes: a line up to `\n`, or 8191 bytes of an over-long one.
fn take_line(buf: &mut Vec<u8>, eof: bool) -> Option<(Vec<u8>, bool)> {
    let limit = AGI_BUF_LEN - 1;
    if let Some(p) = buf.iter().take(limit).position(|b| *b == b'\n') {
        let line: Vec<u8> = buf.drain(..=p).collect();
        return Some((line, true));
    }
    if buf.len() >= limit {
        let line: Vec<u8> = buf.drain(..limit).collect();
        return Some((line, false));
    }
    if eof && !buf.is_empty() {
        let line: Vec<u8> = std::mem::take(buf);
        return Some((line, true));
    }
    None
}

/// Tracks the simulated processing time owed to the server.
struct Cost {
    owed_ns: i128,
}

impl Cost {
    async fn charge(&mut self, commands: usize, functions: usize) {
        self.owed_ns += (COST_PER_COMMAND.as_nanos() * commands as u128
            + COST_PER_FUNCTION.as_nanos() * functions as u128) as i128;
        if self.owed_ns >= 1_000_000 {
            let start = Instant::now();
            tokio::time::sleep(Duration::from_nanos(self.owed_ns as u64)).await;
            self.owed_ns -= start.elapsed().as_nanos() as i128;
        }
    }
}

fn thread_id(seed: u64) -> u64 {
    // Looks like a pthread_t on x86_64 glibc (a stack address).
    140_487_000_000_000 + (seed.wrapping_mul(2_654_435_761) % 1_000_000_000) * 4096 % 999_999_999
}

/// The AGI application for one leg; sets AGISTATUS and says how it ended.
pub async fn exec(call: &Arc<Call>, li: usize, data: &str) -> AgiStatus {
    let leg = call.legs[li].clone();
    let inner = call.inner.clone();
    let args = funcs::separate_args(data);
    let url = args.first().cloned().unwrap_or_default();
    let set_status = |s: &str| {
        leg.st().vars.insert("AGISTATUS".into(), s.into());
    };
    if leg.is_hung_up() {
        set_status("HANGUP");
        return AgiStatus::Hangup;
    }
    let Some(rest) = url.strip_prefix("agi://") else {
        if url.is_empty() {
            inner.log_line("WARNING res_agi.c: AGI requires an argument (script)");
        } else {
            let path = if url.starts_with('/') {
                url.clone()
            } else {
                format!("/var/lib/asterisk/agi-bin/{url}")
            };
            inner.log_line(format!(
                "WARNING res_agi.c: Failed to execute '{path}': File does not exist."
            ));
        }
        set_status("FAILURE");
        return AgiStatus::Failure;
    };
    let (host, script) = match rest.split_once('/') {
        Some((h, s)) => (h.to_string(), s.to_string()),
        None => (rest.to_string(), String::new()),
    };
    let hostport = if host.contains(':') {
        host.clone()
    } else {
        format!("{host}:{AGI_PORT}")
    };
    let addrs: Vec<std::net::SocketAddr> = match tokio::net::lookup_host(&hostport).await {
        Ok(a) => a.collect(),
        Err(_) => Vec::new(),
    };
    if addrs.is_empty() {
        inner.log_line(format!("WARNING res_agi.c: Unable to locate host '{host}'"));
        set_status("FAILURE");
        return AgiStatus::Failure;
    }
    let mut stream = None;
    for a in &addrs {
        match tokio::time::timeout(MAX_AGI_CONNECT, TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => inner.log_line(format!(
                "WARNING res_agi.c: Connecting to '{a}' failed for url '{url}': {}",
                strerror(&e)
            )),
            Err(_) => inner.log_line(format!(
                "WARNING res_agi.c: FastAGI connection to '{url}' timed out after MAX_AGI_CONNECT (2000) milliseconds."
            )),
        }
    }
    let Some(mut sock) = stream else {
        inner.log_line("WARNING res_agi.c: Couldn't connect to any host.  FastAGI failed.");
        set_status("FAILURE");
        return AgiStatus::Failure;
    };
    let _ = sock.set_nodelay(true);
    let n = inner.agi_sessions.fetch_add(1, Ordering::SeqCst) + 1;

    let chan = call.chan_info(li);
    let mut env = String::from("agi_network: yes\n");
    if !script.is_empty() {
        env.push_str(&format!("agi_network_script: {script}\n"));
    }
    env.push_str(&format!("agi_request: {url}\n"));
    env.push_str(&format!("agi_channel: {}\n", chan.name));
    env.push_str("agi_language: en\n");
    env.push_str("agi_type: Local\n");
    env.push_str(&format!("agi_uniqueid: {}\n", chan.uniqueid));
    env.push_str("agi_version: 22.7.0\n");
    env.push_str(&format!(
        "agi_callerid: {}\n",
        chan.cid_num.clone().unwrap_or_else(|| "unknown".into())
    ));
    env.push_str(&format!(
        "agi_calleridname: {}\n",
        chan.cid_name.clone().unwrap_or_else(|| "unknown".into())
    ));
    env.push_str(&format!(
        "agi_callingpres: {}\n",
        if chan.cid_num.is_some() || chan.cid_name.is_some() {
            0
        } else {
            67
        }
    ));
    env.push_str("agi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\n");
    env.push_str("agi_dnid: unknown\nagi_rdnis: unknown\n");
    env.push_str(&format!("agi_context: {}\n", chan.context));
    env.push_str(&format!("agi_extension: {}\n", chan.exten));
    env.push_str(&format!("agi_priority: {}\n", chan.priority));
    env.push_str("agi_enhanced: 0.0\n");
    env.push_str("agi_accountcode: \n");
    env.push_str(&format!("agi_threadid: {}\n", thread_id(n as u64)));
    for (i, a) in args.iter().enumerate().skip(1) {
        env.push_str(&format!("agi_arg_{i}: {a}\n"));
    }
    env.push('\n');
    if sock.write_all(env.as_bytes()).await.is_err() {
        set_status("FAILURE");
        return AgiStatus::Failure;
    }

    let mut hangup_rx = leg.hangup.subscribe();
    let mut dead = *hangup_rx.borrow();
    let mut needhup = dead;
    let mut returnstatus = if dead {
        AgiStatus::Hangup
    } else {
        AgiStatus::Success
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut eof = false;
    let mut cost = Cost { owed_ns: 0 };
    let mut answered = 0usize;
    let mut completed = false;
    let mut tmp = vec![0u8; 16 * 1024];
    loop {
        if needhup {
            needhup = false;
            dead = true;
            let _ = sock.write_all(b"HANGUP\n").await;
        }
        if let Some((raw, full)) = take_line(&mut buf, eof) {
            let mut line = raw;
            if full && line.last() == Some(&b'\n') {
                line.pop();
            }
            // The channel hangs up once N commands were answered: the next one gets HANGUP.
            if inner
                .hangup_mid_probe()
                .is_some_and(|limit| answered >= limit)
            {
                let _ = sock.write_all(b"HANGUP\n").await;
                let _ = sock.shutdown().await;
                leg.request_hangup();
                returnstatus = AgiStatus::Hangup;
                break;
            }
            let text = String::from_utf8_lossy(&line).to_string();
            if text.len() >= 7 && text[..7].eq_ignore_ascii_case("failure") {
                returnstatus = AgiStatus::Failure;
                break;
            }
            let r = if full {
                handle_command(call, li, &text, dead).await
            } else {
                // An over-long line: the lab saw `510` and lost the framing (README 6).
                reply("510 Invalid or unknown command\n")
            };
            cost.charge(1, r.functions).await;
            if sock.write_all(r.text.as_bytes()).await.is_err() {
                break;
            }
            answered += 1;
            if r.hangup_self && !dead {
                needhup = true;
                if returnstatus == AgiStatus::Success {
                    returnstatus = AgiStatus::Hangup;
                }
            }

            continue;
        }
        if eof {
            completed = true;
            break;
        }
        tokio::select! {
            r = sock.read(&mut tmp) => match r {
                Ok(0) | Err(_) => eof = true,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            },
            _ = hangup_rx.wait_for(|v| *v), if !dead => {
                needhup = true;
                if returnstatus == AgiStatus::Success {
                    returnstatus = AgiStatus::Hangup;
                }
            }
        }
    }
    if completed {
        let code = match returnstatus {
            AgiStatus::Success => 0,
            AgiStatus::Failure => -1,
            AgiStatus::Hangup => 4,
        };
        inner.log_line(format!(
            "VERBOSE res_agi.c: <{}>AGI Script {} completed, returning {}",
            chan.name, url, code
        ));
    }
    // run_agi always ends with a HANGUP for FastAGI (AGISIGHUP unset).
    let _ = sock.write_all(b"HANGUP\n").await;
    let _ = sock.shutdown().await;
    match returnstatus {
        AgiStatus::Success => set_status("SUCCESS"),
        AgiStatus::Failure => set_status("FAILURE"),
        AgiStatus::Hangup => set_status("HANGUP"),
    }
    returnstatus
}

fn strerror(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "Connection refused".into(),
        std::io::ErrorKind::TimedOut => "Connection timed out".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agi_args() {
        assert_eq!(
            parse_args("GET FULL VARIABLE ${A(b,c)}"),
            ["GET", "FULL", "VARIABLE", "${A(b,c)}"]
        );
        assert_eq!(
            parse_args("SET VARIABLE X \"a b\""),
            ["SET", "VARIABLE", "X", "a b"]
        );
        assert_eq!(
            find_command(&parse_args("get full variable x")).map(|c| c.0),
            Some(&["get", "full", "variable"][..])
        );
        assert!(find_command(&parse_args("")).is_none());
        assert!(find_command(&parse_args("BOGUS")).is_none());
    }

    #[test]
    fn line_buffer() {
        let mut b = b"NOOP\nGET".to_vec();
        assert_eq!(take_line(&mut b, false), Some((b"NOOP\n".to_vec(), true)));
        assert_eq!(take_line(&mut b, false), None);
        assert_eq!(take_line(&mut b, true), Some((b"GET".to_vec(), true)));
        let mut long = vec![b'a'; 9000];
        long.push(b'\n');
        let (first, full) = take_line(&mut long, false).unwrap();
        assert_eq!((first.len(), full), (8191, false));
        assert_eq!(take_line(&mut long, false).unwrap().0.len(), 810);
    }
}
