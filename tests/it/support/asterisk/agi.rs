//! The FastAGI client side of `AGI(agi://host[:port][/script],args...)` (res_agi.c):
//! connect, the environment block, then strictly one command line in, one reply out,
//! with the 8192-byte line buffer and a per-command / per-function cost that matches the
//! lab's measurements. The one command modelled is the portal's, `GET FULL VARIABLE`;
//! every other one is answered as unknown.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::channel::Call;
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

/// Whether `argv` is the command `GET FULL VARIABLE` (`find_command`: words match
/// case-insensitively, further words are its arguments).
fn is_get_full_variable(argv: &[String]) -> bool {
    let words = ["get", "full", "variable"];
    argv.len() >= words.len()
        && words
            .iter()
            .zip(argv)
            .all(|(w, a)| w.eq_ignore_ascii_case(a))
}

/// A reply line and the functions evaluated to make it.
struct Reply {
    text: String,
    functions: usize,
}

fn reply(text: impl Into<String>) -> Reply {
    Reply {
        text: text.into(),
        functions: 0,
    }
}

const USAGE: &str = "520 Invalid command syntax.  Proper usage not available.\n";

fn handle_command(call: &Call, line: &str) -> Reply {
    let argv = parse_args(line);
    if !is_get_full_variable(&argv) {
        return reply("510 Invalid or unknown command\n");
    }
    match argv.len() {
        4 => {}
        // The optional channel name: the only channel is the leg itself.
        5 if argv[4] == call.name => {}
        5 => return reply("200 result=0\n"),
        _ => return reply(USAGE),
    }
    let (v, functions) = call.substitute(&argv[3]);
    Reply {
        text: format!("200 result=1 ({v})\n"),
        functions,
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
            // A sleep that overshot (a loaded machine) is credited to the next commands,
            // so the average holds, but by at most a millisecond: a long overshoot must
            // not make the following commands free.
            self.owed_ns = self.owed_ns.max(-1_000_000);
        }
    }
}

fn thread_id(seed: u64) -> u64 {
    // Looks like a pthread_t on x86_64 glibc (a stack address).
    140_487_000_000_000 + (seed.wrapping_mul(2_654_435_761) % 1_000_000_000) * 4096 % 999_999_999
}

/// The AGI application; sets AGISTATUS and says how it ended.
pub async fn exec(call: &Arc<Call>, data: &str) -> AgiStatus {
    let inner = call.inner.clone();
    let args = funcs::separate_args(data);
    let url = args.first().cloned().unwrap_or_default();
    let set_status = |s: AgiStatus| {
        let name = match s {
            AgiStatus::Success => "SUCCESS",
            AgiStatus::Failure => "FAILURE",
            AgiStatus::Hangup => "HANGUP",
        };
        call.st().vars.insert("AGISTATUS".into(), name.into());
        s
    };
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
        return set_status(AgiStatus::Failure);
    };
    let (host, script) = rest.split_once('/').unwrap_or((rest, ""));
    let hostport = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:{AGI_PORT}")
    };
    let addrs: Vec<std::net::SocketAddr> = match tokio::net::lookup_host(&hostport).await {
        Ok(a) => a.collect(),
        Err(_) => Vec::new(),
    };
    if addrs.is_empty() {
        inner.log_line(format!("WARNING res_agi.c: Unable to locate host '{host}'"));
        return set_status(AgiStatus::Failure);
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
        return set_status(AgiStatus::Failure);
    };
    let _ = sock.set_nodelay(true);
    let n = inner.agi_sessions.fetch_add(1, Ordering::SeqCst) + 1;

    let chan = call.chan_info();
    let mut env = String::from("agi_network: yes\n");
    if !script.is_empty() {
        env.push_str(&format!("agi_network_script: {script}\n"));
    }
    env.push_str(&format!("agi_request: {url}\n"));
    env.push_str(&format!("agi_channel: {}\n", chan.name));
    env.push_str("agi_language: en\nagi_type: Local\n");
    env.push_str(&format!("agi_uniqueid: {}\n", chan.uniqueid));
    env.push_str("agi_version: 22.7.0\n");
    // An originated Local channel has no caller id (presentation 67: unavailable).
    env.push_str("agi_callerid: unknown\nagi_calleridname: unknown\nagi_callingpres: 67\n");
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
        return set_status(AgiStatus::Failure);
    }

    let mut returnstatus = AgiStatus::Success;
    let mut buf: Vec<u8> = Vec::new();
    let mut eof = false;
    let mut cost = Cost { owed_ns: 0 };
    let mut answered = 0usize;
    let mut tmp = vec![0u8; 16 * 1024];
    loop {
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
                returnstatus = AgiStatus::Hangup;
                break;
            }
            let text = String::from_utf8_lossy(&line).to_string();
            if text.len() >= 7 && text[..7].eq_ignore_ascii_case("failure") {
                returnstatus = AgiStatus::Failure;
                break;
            }
            let r = if full {
                handle_command(call, &text)
            } else {
                // An over-long line: the lab saw `510` and lost the framing (README 6).
                reply("510 Invalid or unknown command\n")
            };
            inner.agi_functions.fetch_add(r.functions, Ordering::SeqCst);
            cost.charge(1, r.functions).await;
            if sock.write_all(r.text.as_bytes()).await.is_err() {
                break;
            }
            answered += 1;
            continue;
        }
        if eof {
            inner.log_line(format!(
                "VERBOSE res_agi.c: <{}>AGI Script {} completed, returning {}",
                chan.name,
                url,
                match returnstatus {
                    AgiStatus::Success => 0,
                    AgiStatus::Failure => -1,
                    AgiStatus::Hangup => 4,
                }
            ));
            break;
        }
        match sock.read(&mut tmp).await {
            Ok(0) | Err(_) => eof = true,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    // run_agi always ends with a HANGUP for FastAGI (AGISIGHUP unset).
    let _ = sock.write_all(b"HANGUP\n").await;
    let _ = sock.shutdown().await;
    set_status(returnstatus)
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
        assert!(is_get_full_variable(&parse_args("get full variable x")));
        assert!(!is_get_full_variable(&parse_args("")));
        assert!(!is_get_full_variable(&parse_args("GET VARIABLE x")));
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
