//! The Asterisk Manager Interface (main/manager.c): banner, message framing, login and
//! permissions, event delivery, and the actions the stand-in models: those the portal
//! sends (Login, Logoff, Command, Originate, ListCommands, PJSIPShowContacts) and those
//! of the recorded transcripts the tests replay (Ping, Reload, the other PJSIPShow*), and
//! CoreStatus (the start and last reload instants, read in the source).
//!
//! Events: manager.c queues every event; a session thread writes the queued ones that
//! its `read=` classes and its `Events:` mask both allow (all classes of the event, F-REG-28)
//! before it reads each line and after each action it ran. So an event never lands inside
//! a response or a list, but it may come between an action and its response when it was
//! queued before the session got to that action (F-REG-26). `Session::deliver` does the
//! same: it writes at once while the session is between actions and holds the event until
//! the response is written while one runs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{
    channel, cli, perm, pjsip, pjsip_ami, reload_cost, Event, Fault, Inner, Moment, ReloadResult,
    SessionHandle,
};

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

/// One AMI connection (`struct mansession_session`).
pub(crate) struct Session {
    inner: Arc<Inner>,
    out: mpsc::UnboundedSender<Out>,
    st: Mutex<SessionState>,
}

#[derive(Default)]
struct SessionState {
    authenticated: bool,
    readperm: u32,
    writeperm: u32,
    /// `send_events`: the `Events:` mask (-1, every bit, until a login sets it).
    send_events: u32,
    /// An action is running: events wait for its response.
    busy: bool,
    pending: Vec<Arc<Event>>,
    closed: bool,
}

impl SessionState {
    /// `process_events`: authenticated, and every class of the event in both masks.
    fn wants(&self, ev: &Event) -> bool {
        self.authenticated
            && self.readperm & ev.class == ev.class
            && self.send_events & ev.class == ev.class
    }
}

impl Session {
    fn state(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, s: impl Into<Vec<u8>>) {
        let _ = self.out.send(Out::Data(s.into()));
    }

    fn close(&self) {
        let _ = self.out.send(Out::Close);
    }

    /// Closes the connection after what was queued, and drops later events.
    pub(crate) fn close_now(&self) {
        self.state().closed = true;
        self.close();
    }

    /// An event offered by `Inner::publish`.
    pub(crate) fn deliver(&self, ev: &Arc<Event>) {
        let mut st = self.state();
        if st.closed {
            return;
        }
        if st.busy {
            st.pending.push(ev.clone());
        } else if st.wants(ev) {
            let _ = self.out.send(Out::Data(ev.text.as_bytes().to_vec()));
        }
    }

    fn begin_action(&self) {
        self.state().busy = true;
    }

    /// After the response: the events that came meanwhile, unless the session ends.
    fn end_action(&self, flush: bool) {
        let mut st = self.state();
        st.busy = false;
        let pending = std::mem::take(&mut st.pending);
        if flush && !st.closed {
            for ev in pending.iter().filter(|e| st.wants(e)) {
                let _ = self.out.send(Out::Data(ev.text.as_bytes().to_vec()));
            }
        }
    }

    fn authenticated(&self) -> bool {
        self.state().authenticated
    }

    fn writeperm(&self) -> u32 {
        self.state().writeperm
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

/// `strings_to_mask`: a number is itself, a false word 0, a true word every class,
/// else `get_perm`; empty is -1 (leave the mask alone).
fn strings_to_mask(s: &str) -> i64 {
    if s.is_empty() {
        return -1;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        // atoi
        return s.parse::<i64>().map(|v| v as i32 as i64).unwrap_or(-1);
    }
    if ["no", "false", "n", "f", "0", "off"]
        .iter()
        .any(|f| s.eq_ignore_ascii_case(f))
    {
        return 0;
    }
    if pjsip::ast_true(s) {
        return perm::NAMES.iter().fold(0u32, |m, (_, v)| m | v) as i64;
    }
    perm::get_perm(s) as i64
}

/// Accept loop.
pub(crate) async fn serve(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        start_session(&inner, sock);
    }
}

/// The writer task, the session, its reader task, and its place in the event fan-out.
fn start_session(inner: &Arc<Inner>, sock: TcpStream) {
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
        out: tx,
        st: Mutex::new(SessionState {
            send_events: u32::MAX,
            ..SessionState::default()
        }),
    });
    s.send(BANNER);
    let weak = Arc::downgrade(&s);
    let mut sessions = super::lock(&inner.sessions);
    let reader = inner.spawn(session(s, r));
    sessions.push(SessionHandle {
        session: weak,
        reader,
    });
}

async fn session(s: Arc<Session>, mut r: tokio::net::tcp::OwnedReadHalf) {
    let inner = s.inner.clone();
    let started = Instant::now();
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
            s.begin_action();
            let keep = if lost {
                s.send(error(&m, "Too many lines in message or allocation failure"));
                true
            } else if skip {
                true
            } else {
                process(&s, &m).await
            };
            s.end_action(keep);
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
        let read = if s.authenticated() {
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
    s.close_now();
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
    let authed = s.authenticated();
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
    if authority != 0 && s.writeperm() & authority == 0 {
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
            let mine = s.writeperm();
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
        "command" => command(s, m).await,
        "corestatus" => {
            s.send(core_status(&inner, m.get("ActionID")));
            true
        }
        "reload" => {
            let module = m.get("Module");
            let res = inner.module_reload(if module.is_empty() {
                None
            } else {
                Some(module)
            });
            reload_cost::pay().await;
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
        "pjsipshowcontacts" => {
            s.send(pjsip_ami::show_contacts(&inner, m.get("ActionID")));
            true
        }
        "pjsipshowregistrationinboundcontactstatuses" => {
            s.send(pjsip_ami::show_registration_contact_statuses(
                &inner,
                m.get("ActionID"),
            ));
            true
        }
        "pjsipshowaors" => {
            s.send(pjsip_ami::show_aors(&inner, m.get("ActionID")));
            true
        }
        "pjsipshowendpoints" => {
            s.send(pjsip_ami::show_endpoints(&inner, m.get("ActionID")));
            true
        }
        "pjsipshowendpoint" => {
            s.send(pjsip_ami::show_endpoint(
                &inner,
                m.get("ActionID"),
                m.get("Endpoint"),
            ));
            true
        }
        _ => unreachable!("every action of ACTIONS is handled"),
    }
}

/// The actions the stand-in answers, in manager.c's (case-insensitive alphabetical)
/// order: name, synopsis and the write permission classes of which one is needed (0:
/// none).
const ACTIONS: &[(&str, &str, u32)] = &[
    ("Command", "Execute Asterisk CLI Command.", perm::COMMAND),
    (
        "CoreStatus",
        "Show PBX core status variables.",
        perm::SYSTEM | perm::REPORTING,
    ),
    ("ListCommands", "List available manager commands.", 0),
    ("Login", "Login Manager.", 0),
    ("Logoff", "Logoff Manager.", 0),
    ("Originate", "Originate a call.", perm::ORIGINATE),
    ("Ping", "Keepalive command.", 0),
    ("PJSIPShowAors", "Lists PJSIP AORs.", perm::SYSTEM),
    ("PJSIPShowContacts", "Lists PJSIP Contacts.", perm::SYSTEM),
    (
        "PJSIPShowEndpoint",
        "Detail listing of an endpoint and its objects.",
        perm::SYSTEM,
    ),
    ("PJSIPShowEndpoints", "Lists PJSIP endpoints.", perm::SYSTEM),
    (
        "PJSIPShowRegistrationInboundContactStatuses",
        "Lists ContactStatuses for PJSIP inbound registrations.",
        perm::SYSTEM,
    ),
    (
        "Reload",
        "Send a reload event.",
        perm::CONFIG | perm::SYSTEM,
    ),
];

async fn login(s: &Arc<Session>, m: &Message) -> bool {
    let inner = &s.inner;
    if s.authenticated() {
        s.send(ack(m, "Already authenticated"));
        return true;
    }
    let username = m.get("Username");
    let secret = m.get("Secret");
    let user = inner
        .opts
        .users()
        .into_iter()
        .find(|u| u.username.eq_ignore_ascii_case(username));
    let user = if username.is_empty() {
        None
    } else {
        match user {
            None => {
                inner.log_line(format!(
                    "NOTICE manager.c: 127.0.0.1 tried to authenticate with nonexistent user '{username}'"
                ));
                inner.log_line(format!(
                    "NOTICE manager.c: 127.0.0.1 failed to authenticate as '{username}'"
                ));
                None
            }
            Some(u) if secret != u.secret || inner.has_fault(&Fault::RejectLogin) => {
                inner.log_line(format!(
                    "NOTICE manager.c: 127.0.0.1 failed to authenticate as '{username}'"
                ));
                None
            }
            Some(u) => Some(u),
        }
    };
    let Some(user) = user else {
        tokio::time::sleep(Duration::from_secs(1)).await;
        s.send(error(m, "Authentication failed"));
        return false;
    };
    let booted = {
        let mut st = s.state();
        st.readperm = perm::parse_list(&user.read_perms);
        st.writeperm = perm::parse_list(&user.write_perms);
        let mask = strings_to_mask(m.get("Events"));
        if mask >= 0 {
            st.send_events = mask as u32;
        }
        st.authenticated = true;
        st.send_events & perm::SYSTEM != 0 && st.readperm & perm::SYSTEM != 0
    };
    s.send(ack(m, "Authentication accepted"));
    if booted {
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

/// `ast_localtime` + `ast_strftime` of `%Y-%m-%d` and `%H:%M:%S`, in UTC (the machine's
/// zone, as the lab's).
fn date_and_time(at: &Moment) -> (String, String) {
    let t = time::OffsetDateTime::from(at.wall);
    (
        format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()),
    )
}

/// manager.c `action_corestatus`: when Asterisk started (`ast_startuptime`) and last
/// reloaded (`ast_lastreloadtime`), `ast_active_channels()` and `ast_processed_calls()`.
fn core_status(inner: &Inner, action_id: &str) -> String {
    let (start_date, start_time) = date_and_time(&inner.started_at());
    let (reload_date, reload_time) = date_and_time(&inner.last_reload_at());
    let id = if action_id.is_empty() {
        String::new()
    } else {
        format!("ActionID: {action_id}\r\n")
    };
    format!(
        "Response: Success\r\n{id}CoreStartupDate: {start_date}\r\nCoreStartupTime: {start_time}\r\nCoreReloadDate: {reload_date}\r\nCoreReloadTime: {reload_time}\r\nCoreCurrentCalls: {}\r\nCoreProcessedCalls: {}\r\n\r\n",
        inner.active_channels.load(std::sync::atomic::Ordering::SeqCst),
        inner.processed_calls.load(std::sync::atomic::Ordering::SeqCst),
    )
}

async fn command(s: &Arc<Session>, m: &Message) -> bool {
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
    reload_cost::pay().await;
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
    if !originate_app_permitted(app, data, s.writeperm()) {
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
    fn event_masks() {
        assert_eq!(strings_to_mask(""), -1);
        assert_eq!(strings_to_mask("off"), 0);
        assert_eq!(strings_to_mask("on"), perm::ALL as i64);
        assert_eq!(strings_to_mask("18"), 18);
        assert_eq!(
            strings_to_mask("system,call"),
            (perm::SYSTEM | perm::CALL) as i64
        );
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
