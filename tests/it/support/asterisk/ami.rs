//! The Asterisk Manager Interface (main/manager.c): banner, message framing, login and
//! permissions, and the actions the stand-in models (Login, Logoff, Ping, Events,
//! Command, Reload, Originate, PJSIPShowEndpoints, PJSIPShowEndpoint). Events are
//! delivered after the response of the action being processed, like Asterisk's
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

    /// Every `Variable:` header value.
    pub fn all(&self, name: &str) -> Vec<&str> {
        let l = name.len();
        self.headers
            .iter()
            .filter(|h| h.len() > l && h.as_bytes()[l] == b':' && h[..l].eq_ignore_ascii_case(name))
            .map(|h| h[l + 1..].trim_start_matches([' ', '\t']))
            .collect()
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
    readperm: u32,
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
        readperm: perm::ALL,
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
                && es.readperm & ev.class != 0
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
    if !authed && !matches!(lower.as_str(), "login" | "logoff" | "challenge") {
        s.send(error(m, "Permission denied"));
        return true;
    }
    let cmd_err = inner.has_fault(&Fault::CommandError);
    let authority = match lower.as_str() {
        "login" | "logoff" | "ping" | "events" | "challenge" | "listcommands" => 0,
        "command" => perm::COMMAND,
        "reload" if !cmd_err => perm::CONFIG | perm::SYSTEM,
        "originate" => perm::ORIGINATE,
        "pjsipshowendpoints" | "pjsipshowendpoint" => perm::SYSTEM,
        _ => {
            s.send(error(
                m,
                &format!(
                    "Invalid/unknown command: {action}. Use Action: ListCommands to show available commands."
                ),
            ));
            return true;
        }
    };
    if authority != 0 && s.writeperm.load(Ordering::SeqCst) & authority == 0 {
        s.send(error(m, "Permission denied"));
        return true;
    }
    match lower.as_str() {
        "login" => login(s, m).await,
        "listcommands" => {
            // manager.c action_listcommands: only the actions this user may run.
            const ACTIONS: &[(&str, &str, u32)] = &[
                ("Command", "Execute Asterisk CLI Command.", perm::COMMAND),
                ("Events", "Control Event Flow.", 0),
                ("ListCommands", "List available manager commands.", 0),
                ("Login", "Login Manager.", 0),
                ("Logoff", "Logoff Manager.", 0),
                ("Originate", "Originate a call.", perm::ORIGINATE),
                (
                    "PJSIPShowEndpoint",
                    "Detail listing of an endpoint and its objects.",
                    perm::SYSTEM,
                ),
                ("PJSIPShowEndpoints", "Lists PJSIP endpoints.", perm::SYSTEM),
                ("Ping", "Keepalive command.", 0),
                (
                    "Reload",
                    "Send a reload event.",
                    perm::CONFIG | perm::SYSTEM,
                ),
            ];
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
        "challenge" => {
            if !m.get("AuthType").eq_ignore_ascii_case("MD5") {
                s.send(error(m, "Must specify AuthType"));
                return true;
            }
            let mut out = response(m, "Success", None, None);
            out.truncate(out.len() - 2);
            out.push_str("Challenge: 123456789\r\n\r\n");
            s.send(out);
            true
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
        "events" => {
            let res = s.set_eventmask(m.get("EventMask"));
            let id = m.get("ActionID");
            let idtext = if id.is_empty() {
                String::new()
            } else {
                format!("ActionID: {id}\r\n")
            };
            if res > 0 {
                s.send(format!("Response: Success\r\n{idtext}Events: On\r\n\r\n"));
            } else if res == 0 {
                s.send(format!("Response: Success\r\n{idtext}Events: Off\r\n\r\n"));
            } else {
                s.send(error(m, "Invalid event mask"));
            }
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
                ReloadResult::NotImplemented => error(m, "Module does not support reload"),
                ReloadResult::Error => error(m, "An unknown error occurred"),
                ReloadResult::InProgress => error(m, "A reload is in progress"),
                ReloadResult::Uninitialized => error(m, "Module not initialized"),
                ReloadResult::Queued | ReloadResult::Success => ack(m, "Module Reloaded"),
            });
            true
        }
        "originate" => {
            originate(s, m).await;
            true
        }
        "pjsipshowendpoints" => {
            let st = inner.state();
            let eps = st.sorcery.all("endpoint");
            if eps.is_empty() {
                s.send(error(m, "No endpoints found\n"));
                return true;
            }
            let id = m.get("ActionID");
            let mut out = response(
                m,
                "Success",
                Some("A listing of Endpoints follows, presented as EndpointList events"),
                Some("start"),
            );
            for e in &eps {
                out.push_str(&pjsip::endpoint_list_event(&st.sorcery, e, id));
            }
            out.push_str(&list_complete("EndpointListComplete", id, eps.len()));
            s.send(out);
            true
        }
        "pjsipshowendpoint" => {
            let mut name = m.get("Endpoint");
            if name.is_empty() {
                s.send(error(m, "PJSIPShowEndpoint requires an endpoint name\n"));
                return true;
            }
            if name.len() >= 6 && name[..6].eq_ignore_ascii_case("pjsip/") {
                name = &name[6..];
            }
            let st = inner.state();
            let Some(e) = st.sorcery.get("endpoint", name) else {
                s.send(error(m, &format!("Unable to retrieve endpoint {name}\n")));
                return true;
            };
            let id = m.get("ActionID");
            let mut out = response(
                m,
                "Success",
                Some("Following are Events for each object associated with the Endpoint"),
                Some("start"),
            );
            let (events, count) = pjsip::endpoint_detail_events(&st.sorcery, e, id);
            out.push_str(&events);
            out.push_str(&list_complete("EndpointDetailComplete", id, count + 1));
            s.send(out);
            true
        }
        _ => true,
    }
}

fn list_complete(event: &str, id: &str, n: usize) -> String {
    let mut out = format!("Event: {event}\r\n");
    if !id.is_empty() {
        out.push_str(&format!("ActionID: {id}\r\n"));
    }
    out.push_str(&format!("EventList: Complete\r\nListItems: {n}\r\n\r\n"));
    out
}

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
    if s.send_events.load(Ordering::SeqCst) & perm::SYSTEM != 0 && s.readperm & perm::SYSTEM != 0 {
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
    let res = cli::execute(inner, cmd, true);
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

fn sscanf_int(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let end = t
        .char_indices()
        .take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && (*c == '-' || *c == '+')))
        .count();
    t[..end].parse().ok()
}

async fn originate(s: &Arc<Session>, m: &Message) {
    let inner = s.inner.clone();
    let name = m.get("Channel");
    let exten = m.get("Exten");
    let context = m.get("Context");
    let priority = m.get("Priority");
    let timeout = m.get("Timeout");
    let app = m.get("Application");
    let data = m.get("Data");
    if name.is_empty() {
        s.send(error(m, "Channel not specified"));
        return;
    }
    let mut pi: i64 = 0;
    if !priority.is_empty() {
        match sscanf_int(priority) {
            Some(p) => pi = p,
            None => {
                let found = inner
                    .state()
                    .dialplan
                    .find_label(context, exten, priority)
                    .unwrap_or(0);
                if found < 1 {
                    s.send(error(m, "Invalid priority"));
                    return;
                }
                pi = found as i64;
            }
        }
    }
    let mut to: i64 = 30000;
    if !timeout.is_empty() {
        match sscanf_int(timeout) {
            Some(t) => to = t,
            None => {
                s.send(error(m, "Invalid timeout"));
                return;
            }
        }
    }
    if !name.contains('/') {
        s.send(error(m, "Invalid channel"));
        return;
    }
    let (cid_name, cid_num) = pjsip::parse_callerid(m.get("CallerID"));
    if !app.is_empty() && !originate_app_permitted(app, data, s.writeperm.load(Ordering::SeqCst)) {
        s.send(error(
            m,
            "Originate Access Forbidden: app or data blacklisted",
        ));
        return;
    }
    if pi != 0 && !inner.state().dialplan.exists(context, exten, pi as i32) {
        s.send(error(m, "Extension does not exist."));
        return;
    }
    let mut vars = Vec::new();
    for v in m.all("Variable") {
        for a in super::funcs::separate_args(v) {
            if let Some((k, val)) = a.split_once('=') {
                vars.push((k.to_string(), val.to_string()));
            }
        }
    }
    let is_async = pjsip::ast_true(m.get("Async"));
    let target = if !app.is_empty() {
        channel::Target::App {
            app: app.to_string(),
            data: data.to_string(),
        }
    } else {
        if !is_async && pi == 0 {
            s.send(error(
                m,
                "Originate with 'Exten' requires 'Context' and 'Priority'",
            ));
            return;
        }
        channel::Target::Exten {
            context: context.to_string(),
            exten: exten.to_string(),
            priority: pi as i32,
        }
    };
    let req = channel::OriginateRequest {
        channel: name.to_string(),
        target,
        timeout_ms: to.max(0) as u64,
        vars,
        cid_name,
        cid_num,
        action_id: Some(m.get("ActionID").to_string()),
        manager_event: is_async,
    };
    if inner.has_fault(&Fault::NeverCallBack) {
        s.send(ack(m, "Originate successfully queued"));
        return;
    }
    if is_async {
        channel::originate_background(inner.clone(), req);
        s.send(ack(m, "Originate successfully queued"));
        return;
    }
    let rx = channel::start(inner.clone(), req);
    match rx.await {
        Ok(channel::Outcome::Answered) => s.send(ack(m, "Originate successfully queued")),
        _ => s.send(error(m, "Originate failed")),
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
                "Variable: A=1".into(),
                "variable:  B=2".into(),
            ],
        };
        assert_eq!(m.get("action"), "Command");
        assert_eq!(m.get("ActionID"), "x");
        assert_eq!(m.all("Variable"), ["A=1", "B=2"]);
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
