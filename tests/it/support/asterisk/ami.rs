//! The Asterisk Manager Interface (main/manager.c): banner, message framing, login and
//! permissions, and the actions the stand-in models: those the portal sends (Login,
//! Logoff, Command, Originate, ListCommands) and those of the recorded transcripts the
//! tests replay (Ping, Reload). The only events are the recorded FullyBooted and Reload;
//! they are delivered after the response of the action being processed, like Asterisk's
//! per-session event queue.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, Mutex as AsyncMutex};

use super::{channel, cli, perm, pjsip, Fault, Inner, ReloadResult};

const BANNER: &str = "Asterisk Call Manager/11.0.0\r\n";
/// manager.conf `authtimeout` default.
const AUTH_TIMEOUT: Duration = Duration::from_secs(30);
/// `inbuf[1025]` of the manager session.
const INBUF: usize = 1025;

/// One received message: headers in order.
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub headers: Vec<String>,
}

impl Message {
    /// `astman_get_header` (first match, value with leading blanks skipped).
    pub fn get(&self, name: &str) -> &str {
        self.find(name, false)
    }

    /// GET_HEADER_SKIP_EMPTY.
    pub fn get_nonempty(&self, name: &str) -> &str {
        self.find(name, true)
    }

    fn find(&self, name: &str, skip_empty: bool) -> &str {
        let l = name.len();
        for h in &self.headers {
            if h.len() > l && h.as_bytes()[l] == b':' && h[..l].eq_ignore_ascii_case(name) {
                let v = h[l + 1..].trim_start_matches([' ', '\t']);
                if skip_empty && v.is_empty() {
                    continue;
                }
                return v;
            }
        }
        ""
    }
}

enum Out {
    Data(Vec<u8>),
    Close,
}

struct Session {
    inner: Arc<Inner>,
    authenticated: AtomicBool,
    send_events: AtomicU32,
    writeperm: AtomicU32,
    out: mpsc::UnboundedSender<Out>,
    /// Held while an action runs, so its events follow its response.
    busy: AsyncMutex<()>,
}

impl Session {
    fn send(&self, s: impl Into<Vec<u8>>) {
        let _ = self.out.send(Out::Data(s.into()));
    }

    fn close(&self) {
        let _ = self.out.send(Out::Close);
    }
}

/// `astman_send_response_full`.
fn response(m: &Message, resp: &str, msg: Option<&str>, listflag: Option<&str>) -> String {
    let mut out = format!("Response: {resp}\r\n");
    let id = m.get("ActionID");
    if !id.is_empty() {
        out.push_str(&format!("ActionID: {id}\r\n"));
    }
    if let Some(l) = listflag {
        out.push_str(&format!("EventList: {l}\r\n"));
    }
    if let Some(msg) = msg {
        out.push_str(&format!("Message: {msg}\r\n"));
    }
    out.push_str("\r\n");
    out
}

fn error(m: &Message, msg: &str) -> String {
    response(m, "Error", Some(msg), None)
}

fn ack(m: &Message, msg: &str) -> String {
    response(m, "Success", Some(msg), None)
}

/// `strings_to_mask`.
fn strings_to_mask(s: &str) -> i64 {
    if s.is_empty() {
        return -1;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().unwrap_or(0);
    }
    if ["no", "false", "n", "f", "0", "off"]
        .iter()
        .any(|f| s.eq_ignore_ascii_case(f))
    {
        return 0;
    }
    if pjsip::ast_true(s) {
        return perm::ALL as i64;
    }
    perm::parse_list(&[s]) as i64
}

impl Session {
    fn set_eventmask(&self, mask: &str) -> i64 {
        let m = strings_to_mask(mask);
        if m >= 0 {
            self.send_events.store(m as u32, Ordering::SeqCst);
        }
        m
    }
}

/// Accept loop.
pub(crate) async fn serve(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        let me = inner.clone();
        inner.spawn(async move { session(me, sock).await });
    }
}

async fn session(inner: Arc<Inner>, sock: TcpStream) {
    let _ = sock.set_nodelay(true);
    let (r, mut w) = sock.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    inner.spawn(async move {
        while let Some(o) = rx.recv().await {
            match o {
                Out::Data(d) => {
                    if w.write_all(&d).await.is_err() {
                        break;
                    }
                }
                Out::Close => {
                    let _ = w.shutdown().await;
                    break;
                }
            }
        }
    });
    let s = Arc::new(Session {
        inner: inner.clone(),
        authenticated: AtomicBool::new(false),
        send_events: AtomicU32::new(perm::ALL),
        writeperm: AtomicU32::new(0),
        out: tx,
        busy: AsyncMutex::new(()),
    });
    s.send(BANNER);
    // Event delivery.
    let mut events = inner.events.subscribe();
    let es = s.clone();
    let forwarder = inner.spawn(async move {
        loop {
            let ev = match events.recv().await {
                Ok(ev) => ev,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            };
            let _g = es.busy.lock().await;
            if es.authenticated.load(Ordering::SeqCst)
                && es.send_events.load(Ordering::SeqCst) & ev.class != 0
            {
                es.send(ev.text.as_bytes().to_vec());
            }
        }
    });
    let started = Instant::now();
    let mut r = r;
    // get_input: a 1025 byte buffer; lines end in \r\n or \n.
    let mut inbuf: Vec<u8> = Vec::with_capacity(INBUF);
    let mut msg = Message::default();
    let mut too_long = false;
    let mut hdr_loss = false;
    let mut chunk = [0u8; INBUF];
    'session: loop {
        // Extract complete lines.
        while let Some(nl) = inbuf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = inbuf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if !line.is_empty() {
                if msg.headers.len() < 128 {
                    msg.headers.push(String::from_utf8_lossy(&line).to_string());
                } else {
                    hdr_loss = true;
                }
                continue;
            }
            let m = std::mem::take(&mut msg);
            let (skip, lost) = (std::mem::take(&mut too_long), std::mem::take(&mut hdr_loss));
            let keep = {
                let _g = s.busy.lock().await;
                if lost {
                    s.send(error(&m, "Too many lines in message or allocation failure"));
                    true
                } else if skip {
                    true
                } else {
                    process(&s, &m).await
                }
            };
            if !keep {
                break 'session;
            }
        }
        if inbuf.len() >= INBUF - 1 {
            let head: String = String::from_utf8_lossy(&inbuf[..25]).to_string();
            inner.log_line(format!(
                "WARNING manager.c: Discarding message from 127.0.0.1. Line too long: {head}..."
            ));
            let last = inbuf[inbuf.len() - 1];
            inbuf.clear();
            inbuf.push(last);
            too_long = true;
        }
        let room = INBUF - 1 - inbuf.len();
        let read = if s.authenticated.load(Ordering::SeqCst) {
            r.read(&mut chunk[..room]).await
        } else {
            let left = AUTH_TIMEOUT.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, r.read(&mut chunk[..room])).await {
                Ok(res) => res,
                Err(_) => break,
            }
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => inbuf.extend_from_slice(&chunk[..n]),
        }
    }
    s.close();
    forwarder.abort();
}

/// Returns false when the session must end.
async fn process(s: &Arc<Session>, m: &Message) -> bool {
    let inner = s.inner.clone();
    let action = m.get_nonempty("Action").to_string();
    if action.is_empty() {
        s.send(error(m, "Missing action in request"));
        return true;
    }
    let record = match action.to_ascii_lowercase().as_str() {
        "command" => format!("AMI Command: {}", m.get("Command")),
        "reload" if !m.get("Module").is_empty() => format!("AMI Reload: {}", m.get("Module")),
        "originate" => format!("AMI Originate: {}", m.get("Channel")),
        _ => format!("AMI {action}"),
    };
    inner.record_action(record);
    if let Some(d) = inner.stall() {
        tokio::time::sleep(d).await;
    }
    let lower = action.to_ascii_lowercase();
    let authed = s.authenticated.load(Ordering::SeqCst);
    if !authed && !matches!(lower.as_str(), "login" | "logoff") {
        s.send(error(m, "Permission denied"));
        return true;
    }
    let cmd_err = inner.has_fault(&Fault::CommandError);
    let Some(&(_, _, authority)) = ACTIONS
        .iter()
        .find(|(name, _, _)| name.eq_ignore_ascii_case(&action))
        .filter(|(name, _, _)| !(cmd_err && *name == "Reload"))
    else {
        s.send(error(
            m,
            &format!(
                "Invalid/unknown command: {action}. Use Action: ListCommands to show available commands."
            ),
        ));
        return true;
    };
    if authority != 0 && s.writeperm.load(Ordering::SeqCst) & authority == 0 {
        s.send(error(m, "Permission denied"));
        return true;
    }
    match lower.as_str() {
        "login" => login(s, m).await,
        "listcommands" => {
            // manager.c action_listcommands: only the actions this user may run.
            let mut out = String::from("Response: Success\r\n");
            let id = m.get("ActionID");
            if !id.is_empty() {
                out.push_str(&format!("ActionID: {id}\r\n"));
            }
            let mine = s.writeperm.load(Ordering::SeqCst);
            for (name, synopsis, authority) in ACTIONS {
                if *authority == 0 || mine & authority != 0 {
                    let privs = if *authority == 0 {
                        "<none>".to_owned()
                    } else {
                        perm::privilege(*authority)
                    };
                    out.push_str(&format!("{name}: {synopsis} (Priv: {privs})\r\n"));
                }
            }
            out.push_str("\r\n");
            s.send(out);
            true
        }
        "logoff" => {
            s.send(response(
                m,
                "Goodbye",
                Some("Thanks for all the fish."),
                None,
            ));
            false
        }
        "ping" => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let mut out = String::from("Response: Success\r\n");
            let id = m.get("ActionID");
            if !id.is_empty() {
                out.push_str(&format!("ActionID: {id}\r\n"));
            }
            out.push_str(&format!(
                "Ping: Pong\r\nTimestamp: {}.{:06}\r\n\r\n",
                now.as_secs(),
                now.subsec_micros()
            ));
            s.send(out);
            true
        }
        "command" => command(s, m),
        "reload" => {
            let module = m.get("Module");
            let res = inner.module_reload(if module.is_empty() {
                None
            } else {
                Some(module)
            });
            s.send(match res {
                ReloadResult::NotFound => error(m, "No such module"),
                ReloadResult::Error => error(m, "An unknown error occurred"),
                ReloadResult::Uninitialized => error(m, "Module not initialized"),
                ReloadResult::Success => ack(m, "Module Reloaded"),
            });
            true
        }
        "originate" => {
            originate(s, m).await;
            true
        }
        _ => unreachable!("every action of ACTIONS is handled"),
    }
}

/// The actions the stand-in answers: name, synopsis (manager.c) and the write
/// permission classes of which one is needed (0: none).
const ACTIONS: &[(&str, &str, u32)] = &[
    ("Command", "Execute Asterisk CLI Command.", perm::COMMAND),
    ("ListCommands", "List available manager commands.", 0),
    ("Login", "Login Manager.", 0),
    ("Logoff", "Logoff Manager.", 0),
    ("Originate", "Originate a call.", perm::ORIGINATE),
    ("Ping", "Keepalive command.", 0),
    (
        "Reload",
        "Send a reload event.",
        perm::CONFIG | perm::SYSTEM,
    ),
];

async fn login(s: &Arc<Session>, m: &Message) -> bool {
    let inner = &s.inner;
    if s.authenticated.load(Ordering::SeqCst) {
        s.send(ack(m, "Already authenticated"));
        return true;
    }
    let username = m.get("Username");
    let secret = m.get("Secret");
    let ok = if username.is_empty() {
        false
    } else if username != inner.opts.ami_username {
        inner.log_line(format!(
            "NOTICE manager.c: 127.0.0.1 tried to authenticate with nonexistent user '{username}'"
        ));
        inner.log_line(format!(
            "NOTICE manager.c: 127.0.0.1 failed to authenticate as '{username}'"
        ));
        false
    } else if secret != inner.opts.ami_secret || inner.has_fault(&Fault::RejectLogin) {
        inner.log_line(format!(
            "NOTICE manager.c: 127.0.0.1 failed to authenticate as '{username}'"
        ));
        false
    } else {
        true
    };
    if !ok {
        tokio::time::sleep(Duration::from_secs(1)).await;
        s.send(error(m, "Authentication failed"));
        return false;
    }
    s.writeperm
        .store(perm::parse_list(&inner.opts.write_perms), Ordering::SeqCst);
    s.set_eventmask(m.get("Events"));
    s.authenticated.store(true, Ordering::SeqCst);
    s.send(ack(m, "Authentication accepted"));
    if s.send_events.load(Ordering::SeqCst) & perm::SYSTEM != 0 {
        s.send(format!(
            "Event: FullyBooted\r\nPrivilege: {}\r\nUptime: {}\r\nLastReload: {}\r\nStatus: Fully Booted\r\n\r\n",
            perm::privilege(perm::SYSTEM),
            inner.uptime().as_secs(),
            inner.since_reload().as_secs()
        ));
    }
    true
}

/// `check_blacklist`.
fn blacklisted(cmd: &str) -> bool {
    let words: Vec<&str> = cmd
        .split(' ')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    const LIST: &[&[&str]] = &[
        &["module", "load"],
        &["module", "unload"],
        &["restart", "gracefully"],
    ];
    LIST.iter().any(|bl| {
        bl.iter().enumerate().all(|(i, w)| {
            words
                .get(i)
                .map(|x| x.eq_ignore_ascii_case(w))
                .unwrap_or(false)
        })
    })
}

/// `term_strip`: drops terminal escape sequences.
fn term_strip(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for n in chars.by_ref() {
                    if n.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

fn command(s: &Arc<Session>, m: &Message) -> bool {
    let inner = &s.inner;
    let cmd = m.get("Command");
    if cmd.is_empty() {
        s.send(error(m, "No command provided"));
        return true;
    }
    if blacklisted(cmd) {
        s.send(error(m, "Command blacklisted"));
        return true;
    }
    let res = cli::execute(inner, cmd);
    let mut out = response(m, if res.success { "Success" } else { "Error" }, None, None);
    out.truncate(out.len() - 2);
    out.push_str("Message: Command output follows\r\n");
    let mut body = term_strip(&res.output);
    if body.ends_with('\n') {
        body.pop();
    }
    for line in body.split('\n') {
        out.push_str(&format!("Output: {line}\r\n"));
    }
    out.push_str("\r\n");
    if inner.has_fault(&Fault::DropMidReply) {
        let half = out.len() / 2;
        s.send(out.as_bytes()[..half].to_vec());
        s.close();
        return false;
    }
    s.send(out);
    true
}

/// The application names/data that need `system` too (manager.c originate_app_permissions).
fn originate_app_permitted(app: &str, data: &str, writeperm: u32) -> bool {
    let lower = app.to_ascii_lowercase();
    for search in [
        "agi",
        "dbdeltree",
        "exec",
        "externalivr",
        "mixmonitor",
        "originate",
        "reload",
        "system",
    ] {
        if lower.contains(search) {
            return writeperm & perm::SYSTEM != 0;
        }
    }
    if lower.contains("queue") && !data.is_empty() {
        let args = super::funcs::separate_args(data);
        if args.get(5).map(|a| !a.is_empty()).unwrap_or(false) {
            return writeperm & (perm::AGI | perm::SYSTEM) != 0;
        }
    }
    for search in ["CURL", "DB", "EVAL", "FILE", "ODBC", "REALTIME", "SHELL"] {
        if data.contains(search) {
            return writeperm & perm::SYSTEM != 0;
        }
    }
    true
}

/// Originate in the Application form the portal uses (`Channel`, `Application`, `Data`,
/// `Async`). The call is never answered (no modelled application answers), so a
/// synchronous Originate fails once the call has ended, as in the lab (F-AMI-12).
async fn originate(s: &Arc<Session>, m: &Message) {
    let inner = s.inner.clone();
    let (name, app, data) = (m.get("Channel"), m.get("Application"), m.get("Data"));
    if name.is_empty() {
        s.send(error(m, "Channel not specified"));
        return;
    }
    if !name.contains('/') {
        s.send(error(m, "Invalid channel"));
        return;
    }
    if app.is_empty() {
        s.send(error(
            m,
            "stand-in: only the Application form of Originate is modelled",
        ));
        return;
    }
    if !originate_app_permitted(app, data, s.writeperm.load(Ordering::SeqCst)) {
        s.send(error(
            m,
            "Originate Access Forbidden: app or data blacklisted",
        ));
        return;
    }
    let is_async = pjsip::ast_true(m.get("Async"));
    if inner.has_fault(&Fault::NeverCallBack) {
        s.send(ack(m, "Originate successfully queued"));
        return;
    }
    let ended = channel::start(inner.clone(), name);
    if is_async {
        s.send(ack(m, "Originate successfully queued"));
    } else {
        let _ = ended.await;
        s.send(error(m, "Originate failed"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let m = Message {
            headers: vec![
                "Action: Command".into(),
                "ActionID:x".into(),
                "Data:".into(),
                "data:  1".into(),
            ],
        };
        assert_eq!(m.get("action"), "Command");
        assert_eq!(m.get("ActionID"), "x");
        assert_eq!(m.get("Data"), "");
        assert_eq!(m.get_nonempty("Data"), "1");
        assert_eq!(m.get("Missing"), "");
    }

    #[test]
    fn blacklist_and_permissions() {
        assert!(blacklisted("module load res_agi.so"));
        assert!(blacklisted("  MODULE   unload x"));
        assert!(!blacklisted("module reload res_pjsip.so"));
        let o = perm::ORIGINATE;
        assert!(originate_app_permitted("Wait", "1", o));
        assert!(!originate_app_permitted("AGI", "agi://x", o));
        assert!(!originate_app_permitted("Wait", "xDBx", o));
        assert!(originate_app_permitted("Wait", "db", o));
        assert!(originate_app_permitted("AGI", "x", o | perm::SYSTEM));
    }
}
