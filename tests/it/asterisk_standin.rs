//! Tests of the Asterisk 22.7 stand-in: the recorded AMI transcripts replayed byte for
//! byte, the config reload cases of the lab notes, the CLI script, Originate + FastAGI
//! and the fault switches; registrations and qualify in `registration`. The recorded
//! transcripts are files of tests/fixtures/asterisk; the other expectations are copied
//! from the lab notes (sections 4a-4e, 5, 6).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support;
use crate::support::asterisk::{
    lab_extensions_conf, lab_pjsip_conf, reload_cost, FakeAsterisk, Fault, Options, Tamper,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

// ---------------------------------------------------------------------------------
// Recorded transcripts ('>>>' sent, '<<<' received; CR/LF written as \r\n), in
// tests/fixtures/asterisk: its README.md says which recording each file is.

const T_AMI_01: &str = fixture!("ami_01_login_ok_noactionid.txt");
const T_AMI_02: &str = fixture!("ami_02_login_fail.txt");
const T_AMI_03: &str = fixture!("ami_03_login_unknown_user.txt");
const T_AMI_04: &str = fixture!("ami_04_login_ok_actionid.txt");
const T_AMI_05: &str = fixture!("ami_05_commands_empty_dirs.txt");
const T_AMI_07: &str = fixture!("ami_07_seed_reload.txt");
const T_AMI_09: &str = fixture!("ami_09_broken_parse_reload.txt");
const T_AMI_10: &str = fixture!("ami_10_broken_include_reloads.txt");
const T_AMI_15: &str = fixture!("ami_15_originate_sync_health.txt");
const T_DP1_SHOW: &str = fixture!("dialplan_DP1.show_internal.txt");
const T_DP4_SHOW: &str = fixture!("dialplan_DP4.show_internal.txt");

mod nat;
mod registration;

// ---------------------------------------------------------------------------------
// Harness

/// The lab's seed template (README 3/4c): endpoint, auth and aor for 1000 and 1001, and
/// their routing.
const SEED_ENDPOINTS: &str = fixture!("seed_generated_endpoints.conf");
const SEED_ROUTING: &str = fixture!("seed_generated_routing.conf");

struct Lab {
    _tmp: tempfile::TempDir,
    etc: PathBuf,
    pjsip: PathBuf,
    dial: PathBuf,
    ast: FakeAsterisk,
}

impl Lab {
    async fn start() -> Lab {
        Self::start_with(Options::default(), |_, _, _| {}).await
    }

    /// `prepare(etc, pjsip_dir, dialplan_dir)` runs before the stand-in boots.
    async fn start_with(opts: Options, prepare: impl FnOnce(&Path, &Path, &Path)) -> Lab {
        let tmp = tempfile::tempdir().unwrap();
        let etc = tmp.path().join("etc");
        let pjsip = etc.join("pjsip.d/synergycall");
        let dial = etc.join("extensions.d/synergycall");
        std::fs::create_dir_all(&pjsip).unwrap();
        std::fs::create_dir_all(&dial).unwrap();
        prepare(&etc, &pjsip, &dial);
        let ast = FakeAsterisk::start(&etc, &pjsip, &dial, opts)
            .await
            .unwrap();
        Lab {
            _tmp: tmp,
            etc,
            pjsip,
            dial,
            ast,
        }
    }

    fn write_endpoints(&self, body: &str) {
        std::fs::write(self.pjsip.join("generated_endpoints.conf"), body).unwrap();
    }

    fn write_routing(&self, body: &str) {
        std::fs::write(self.dial.join("generated_routing.conf"), body).unwrap();
    }

    fn endpoints_file(&self) -> String {
        self.pjsip
            .join("generated_endpoints.conf")
            .display()
            .to_string()
    }

    fn routing_file(&self) -> String {
        self.dial
            .join("generated_routing.conf")
            .display()
            .to_string()
    }

    fn seed(&self) {
        self.write_endpoints(SEED_ENDPOINTS);
        self.write_routing(SEED_ROUTING);
    }

    /// Reloads PJSIP and the dialplan, as the portal does.
    fn reload(&self) {
        self.ast.cli("module reload res_pjsip.so");
        self.ast.cli("dialplan reload");
    }

    /// A lab running the seed, with an empty log.
    async fn seeded() -> Lab {
        let lab = Self::start().await;
        lab.seed();
        lab.reload();
        lab.ast.clear_log();
        lab
    }

    /// A lab running the seed and, after its routing, the test contexts of
    /// [`probe_dialplan`] calling a FastAGI server on `port`.
    async fn probing(port: u16) -> Lab {
        let lab = Self::start().await;
        lab.seed();
        lab.write_routing(&format!("{SEED_ROUTING}\n{}", probe_dialplan(port)));
        lab.reload();
        lab
    }

    async fn ami(&self) -> Ami {
        Ami::connect(self.ast.ami_addr()).await
    }

    /// Logs in with `Events: off` after reading the banner.
    async fn login_quiet(&self) -> Ami {
        let mut a = self.ami().await;
        assert_eq!(a.line().await, "Asterisk Call Manager/11.0.0\r\n");
        a.send("Action: Login\r\nUsername: portal\r\nSecret: portal-secret\r\nEvents: off\r\n\r\n")
            .await;
        assert_eq!(
            a.msg().await,
            "Response: Success\r\nMessage: Authentication accepted\r\n\r\n"
        );
        a
    }

    async fn cli_async(&self, cmd: &str) -> (i32, String, String) {
        let out = tokio::process::Command::new(self.ast.cli_path())
            .arg("-rx")
            .arg(cmd)
            .output()
            .await
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    /// What `asterisk -rx cmd` printed on standard output.
    async fn cli_out(&self, cmd: &str) -> String {
        let (_, out, _) = self.cli_async(cmd).await;
        out
    }

    /// The exit code of `asterisk -rx cmd`.
    async fn cli_rc(&self, cmd: &str) -> i32 {
        let (rc, _, _) = self.cli_async(cmd).await;
        rc
    }

    /// Sends one action (no ActionID added) and returns the first message.
    async fn command(&self, a: &mut Ami, cmd: &str) -> String {
        a.send(&format!("Action: Command\r\nCommand: {cmd}\r\n\r\n"))
            .await;
        a.msg().await
    }
}

struct Ami {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

const IO: Duration = Duration::from_secs(10);

impl Ami {
    async fn connect(addr: SocketAddr) -> Ami {
        let s = TcpStream::connect(addr).await.unwrap();
        let (r, w) = s.into_split();
        Ami {
            r: BufReader::new(r),
            w,
        }
    }

    async fn send(&mut self, s: &str) {
        self.w.write_all(s.as_bytes()).await.unwrap();
    }

    /// One raw line including its terminator ("" at EOF).
    async fn line(&mut self) -> String {
        let mut buf = Vec::new();
        timeout(IO, self.r.read_until(b'\n', &mut buf))
            .await
            .expect("AMI read timed out")
            .unwrap();
        String::from_utf8(buf).unwrap()
    }

    /// One message up to and including the blank line.
    async fn msg(&mut self) -> String {
        let mut out = String::new();
        loop {
            let l = self.line().await;
            if l.is_empty() {
                return out;
            }
            out.push_str(&l);
            if l == "\r\n" {
                return out;
            }
        }
    }

    async fn eof(&mut self) -> bool {
        let mut buf = Vec::new();
        matches!(
            timeout(IO, self.r.read_until(b'\n', &mut buf)).await,
            Ok(Ok(0))
        )
    }
}

fn unescape(s: &str) -> String {
    s.replace("\\r", "\r").replace("\\n", "\n")
}

/// Lines compared by key only (the values are times).
const VOLATILE: &[&str] = &[
    "Uptime: ",
    "LastReload: ",
    "Timestamp: ",
    "Output: System uptime: ",
    "Output: Last reload: ",
];

/// Lines whose value is an absolute time of the run (registration time + expiry, in
/// epoch seconds): compared by key, and the value must be a number.
const EPOCH_VALUES: &[&str] = &["ExpirationTime: ", "RegExpire: "];

/// Compares one received line with the recorded one: every byte, except the values of
/// `VOLATILE` lines (compared by key) and of `EPOCH_VALUES` lines (by key, and the value
/// must be a number).
fn check_line(expected: &str, got: &str, what: &str) {
    if let Some(k) = VOLATILE.iter().find(|k| expected.starts_with(*k)) {
        assert!(
            got.starts_with(k),
            "{what}: expected {expected:?}, got {got:?}"
        );
    } else if let Some(k) = EPOCH_VALUES.iter().find(|k| expected.starts_with(*k)) {
        let value = got
            .strip_prefix(k)
            .and_then(|v| v.strip_suffix("\r\n"))
            .unwrap_or_else(|| panic!("{what}: expected {expected:?}, got {got:?}"));
        assert!(
            value.parse::<u64>().is_ok(),
            "{what}: expected {expected:?}, got {got:?}"
        );
    } else {
        assert_eq!(got, expected, "{what}");
    }
}

/// Replays a recorded transcript (`>>>` sent, `<<<` received) against the stand-in.
async fn replay(addr: SocketAddr, transcript: &str) {
    Replay::new(addr, transcript).finish().await;
}

/// A transcript being replayed, which a test can stop at a recorder note (`###`) or
/// any line to act (register a phone, reload) as the recording did at that point.
/// Notes are not on the wire; two of them drive the replay: `conn X: connecting` opens
/// a new connection and `EOF (peer closed the TCP connection)` expects the server to
/// have closed it.
struct Replay<'a> {
    addr: SocketAddr,
    lines: Vec<&'a str>,
    next: usize,
    conn: Option<Ami>,
    received: usize,
}

impl<'a> Replay<'a> {
    fn new(addr: SocketAddr, transcript: &'a str) -> Replay<'a> {
        Replay {
            addr,
            lines: transcript.lines().collect(),
            next: 0,
            conn: None,
            received: 0,
        }
    }

    /// Plays up to the next line containing `needle`, which is left unplayed.
    async fn until(&mut self, needle: &str) {
        let at = self.lines[self.next..]
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} after line {}", self.next));
        for _ in 0..at {
            self.step().await;
        }
    }

    /// Plays the rest.
    async fn finish(mut self) {
        while self.next < self.lines.len() {
            self.step().await;
        }
        assert!(
            self.received > 0,
            "a transcript with nothing received proves nothing"
        );
    }

    async fn conn(&mut self) -> &mut Ami {
        if self.conn.is_none() {
            self.conn = Some(Ami::connect(self.addr).await);
        }
        self.conn.as_mut().unwrap()
    }

    async fn step(&mut self) {
        let raw = self.lines[self.next];
        self.next += 1;
        if let Some(note) = raw.strip_prefix("###") {
            if note.contains(": connecting to ") {
                self.conn = Some(Ami::connect(self.addr).await);
            } else if note.contains("EOF (peer closed the TCP connection)") {
                assert!(
                    self.conn().await.eof().await,
                    "expected the server to close the connection ({raw})"
                );
            }
        } else if let Some(sent) = raw.strip_prefix(">>>") {
            let sent = unescape(sent.strip_prefix(' ').unwrap_or(sent));
            self.conn().await.send(&sent).await;
        } else if let Some(exp) = raw.strip_prefix("<<<") {
            let exp = exp.strip_prefix(' ').unwrap_or(exp);
            self.received += 1;
            if exp.trim() == "[connection closed by server]" {
                assert!(
                    self.conn().await.eof().await,
                    "expected the server to close the connection"
                );
                return;
            }
            let expected = unescape(exp);
            let got = self.conn().await.line().await;
            check_line(
                &expected,
                &got,
                &format!("transcript line {} {raw:?}", self.next),
            );
        } else {
            panic!("not a transcript line: {raw:?}");
        }
    }
}

/// A one-connection-at-a-time FastAGI server run by a test.
struct AgiServer {
    listener: TcpListener,
    port: u16,
}

struct AgiConn {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
    env: Vec<(String, String)>,
    raw_env: String,
}

impl AgiServer {
    async fn bind() -> AgiServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        AgiServer { listener, port }
    }

    async fn accept(&self) -> AgiConn {
        let (s, _) = timeout(IO, self.listener.accept())
            .await
            .expect("no FastAGI connection")
            .unwrap();
        let (r, w) = s.into_split();
        let mut c = AgiConn {
            r: BufReader::new(r),
            w,
            env: Vec::new(),
            raw_env: String::new(),
        };
        loop {
            let l = c.line().await;
            c.raw_env.push_str(&l);
            if l == "\n" || l.is_empty() {
                break;
            }
            let (k, v) = l
                .trim_end_matches('\n')
                .split_once(": ")
                .unwrap_or((&l, ""));
            c.env.push((k.to_string(), v.to_string()));
        }
        c
    }
}

impl AgiConn {
    async fn line(&mut self) -> String {
        let mut buf = Vec::new();
        timeout(IO, self.r.read_until(b'\n', &mut buf))
            .await
            .expect("AGI read timed out")
            .unwrap();
        String::from_utf8(buf).unwrap()
    }

    fn env(&self, key: &str) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("<missing>")
    }

    async fn cmd(&mut self, c: &str) -> String {
        self.w.write_all(format!("{c}\n").as_bytes()).await.unwrap();
        self.line().await
    }
}

/// Test contexts calling a FastAGI server on `port`: `synergy-portal-probe` is the
/// portal's probe context (the token in the extension, a routing marker after it);
/// `synergy-test-down` calls one on a port where none listens first.
fn probe_dialplan(port: u16) -> String {
    let down = support::closed_port();
    format!(
        "[synergy-test]\n\
exten => check,1,AGI(agi://127.0.0.1:{port}/health?token=abc)\n \
same => n,Hangup()\n\
\n\
[synergy-portal-probe]\n\
exten => _probe-.,1,AGI(agi://127.0.0.1:{port}/health,${{EXTEN:6}},marker-1)\n \
same => n,Hangup()\n\
\n\
[synergy-test-down]\n\
exten => check,1,AGI(agi://127.0.0.1:{down}/health)\n \
same => n,AGI(agi://127.0.0.1:{port}/after-failure)\n \
same => n,Hangup()\n\
\n\
[synergy-noagi]\n\
exten => check,1,Hangup()\n"
    )
}

/// Sends an Originate and returns its response (skipping events).
async fn originate(a: &mut Ami, fields: &str) -> String {
    a.send(&format!("Action: Originate\r\n{fields}\r\n")).await;
    loop {
        let m = a.msg().await;
        assert!(!m.is_empty(), "connection closed");
        if m.starts_with("Response: ") {
            return m;
        }
    }
}

// ---------------------------------------------------------------------------------
// AMI transcripts

#[tokio::test]
async fn ami_login_and_logoff_transcripts() {
    let lab = Lab::start().await;
    replay(lab.ast.ami_addr(), T_AMI_01).await;
    replay(lab.ast.ami_addr(), T_AMI_04).await;
    assert_eq!(
        lab.ast.actions(),
        [
            "AMI Login",
            "AMI Logoff",
            "AMI Login",
            "AMI Ping",
            "AMI Ping"
        ]
    );
}

#[tokio::test]
async fn ami_login_failures_close_the_connection() {
    let lab = Lab::start().await;
    let started = std::time::Instant::now();
    tokio::join!(
        replay(lab.ast.ami_addr(), T_AMI_02),
        replay(lab.ast.ami_addr(), T_AMI_03)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Asterisk sleeps 1 s first"
    );
    let log = lab.ast.log();
    assert!(
        log.contains(&"NOTICE manager.c: 127.0.0.1 failed to authenticate as 'portal'".to_string())
    );
    assert!(log.contains(
        &"NOTICE manager.c: 127.0.0.1 tried to authenticate with nonexistent user 'nobody'"
            .to_string()
    ));
}

#[tokio::test]
async fn ami_commands_with_empty_include_dirs() {
    let lab = Lab::start().await;
    replay(lab.ast.ami_addr(), T_AMI_05).await;
}

#[tokio::test]
async fn ami_seed_reload_show_endpoints_and_dialplan() {
    let lab = Lab::start().await;
    lab.seed();
    replay(lab.ast.ami_addr(), T_AMI_07).await;
    assert_eq!(
        lab.ast.log(),
        ["NOTICE sorcery.c: Type 'system' is not reloadable, maintaining previous values"],
        "the seed loads without warnings (F-CFG-1)"
    );
    assert_eq!(
        lab.ast.endpoints().keys().collect::<Vec<_>>(),
        ["1000", "1001"]
    );
    assert_eq!(lab.ast.auths()["1000"]["password"], "SECRET1000");
    assert_eq!(lab.ast.aors()["1001"]["max_contacts"], "1");
    let exts = lab.ast.dialplan("synergy-internal").unwrap();
    assert_eq!(exts.into_iter().collect::<Vec<_>>(), ["1000", "1001"]);
    assert_eq!(lab.ast.reloads(), 2);
}

#[tokio::test]
async fn ami_broken_parse_mid_file_truncates_the_include() {
    let lab = Lab::seeded().await;
    // `[1001` unclosed on the auth header: everything after it is dropped.
    let broken = SEED_ENDPOINTS.replacen("[1001]\ntype=auth", "[1001\ntype=auth", 1);
    lab.write_endpoints(&broken);
    let line = broken.lines().position(|l| l == "[1001").unwrap() + 1;
    replay(lab.ast.ami_addr(), T_AMI_09).await;
    let warning = format!(
        "WARNING config.c: parse error: no closing ']', line {line} of {}",
        lab.endpoints_file()
    );
    assert!(lab.ast.log().contains(&warning), "{:?}", lab.ast.log());
    assert!(lab.ast.endpoints().contains_key("1001"));
    assert!(!lab.ast.auths().contains_key("1001"));
    assert!(!lab.ast.aors().contains_key("1001"));
}

#[tokio::test]
async fn ami_broken_headers_on_line_one_case_b_and_dp2() {
    let lab = Lab::seeded().await;
    lab.write_endpoints(&SEED_ENDPOINTS.replacen("; generated by pbx-portal\n[1000]", "[1000", 1));
    lab.write_routing(&SEED_ROUTING.replacen("[synergy-internal]", "[synergy-internal", 1));
    replay(lab.ast.ami_addr(), T_AMI_10).await;
    assert!(
        lab.ast.endpoints().is_empty() && lab.ast.auths().is_empty() && lab.ast.aors().is_empty()
    );
    assert_eq!(lab.ast.dialplan("synergy-internal").unwrap().len(), 0);
    let routing = lab
        .dial
        .join("generated_routing.conf")
        .display()
        .to_string();
    assert!(lab.ast.log().contains(&format!(
        "WARNING config.c: parse error: no closing ']', line 1 of {routing}"
    )));
    // A context declared only in the include disappears entirely.
    lab.write_routing("[only-here]\nexten => 1,1,NoOp()\n");
    lab.ast.cli("dialplan reload");
    assert!(lab.ast.dialplan("only-here").is_some());
    lab.write_routing("[only-here\nexten => 1,1,NoOp()\n");
    lab.ast.cli("dialplan reload");
    assert!(lab.ast.dialplan("only-here").is_none());
}

#[tokio::test]
async fn ami_unauthenticated_unknown_and_over_long_messages() {
    let lab = Lab::start().await;
    let mut a = lab.ami().await;
    a.line().await;
    a.send("Action: Command\r\nActionID: x\r\nCommand: dialplan reload\r\n\r\n")
        .await;
    assert_eq!(
        a.msg().await,
        "Response: Error\r\nActionID: x\r\nMessage: Permission denied\r\n\r\n"
    );
    a.send("\r\n").await;
    assert_eq!(
        a.msg().await,
        "Response: Error\r\nMessage: Missing action in request\r\n\r\n"
    );
    a.send("Action: Login\r\nUsername: portal\r\nSecret: portal-secret\r\n\r\n")
        .await;
    assert!(a.msg().await.contains("Authentication accepted"));
    assert!(a
        .msg()
        .await
        .starts_with("Event: FullyBooted\r\nPrivilege: system,all\r\n"));
    a.send("Action: Login\r\nUsername: portal\r\nSecret: portal-secret\r\n\r\n")
        .await;
    assert_eq!(
        a.msg().await,
        "Response: Success\r\nMessage: Already authenticated\r\n\r\n"
    );
    a.send("Action: NoSuchAction\r\nActionID: nsa\r\n\r\n")
        .await;
    assert_eq!(
        a.msg().await,
        "Response: Error\r\nActionID: nsa\r\nMessage: Invalid/unknown command: NoSuchAction. Use Action: ListCommands to show available commands.\r\n\r\n"
    );
    a.send("Action: Command\r\nCommand: dialplan show nosuch\r\n\r\n")
        .await;
    assert_eq!(
        a.msg().await,
        "Response: Error\r\nMessage: Command output follows\r\nOutput: There is no existence of 'nosuch' context\r\nOutput: Command 'dialplan show nosuch' failed.\r\n\r\n"
    );
    // A line of 1024 bytes or more: the whole message is discarded without a reply.
    a.send(&format!(
        "Action: Command\r\nCommand: dialplan show {}\r\n\r\n",
        "x".repeat(2000)
    ))
    .await;
    a.send("Action: Ping\r\nActionID: after-long\r\n\r\n").await;
    assert!(a
        .msg()
        .await
        .starts_with("Response: Success\r\nActionID: after-long\r\nPing: Pong\r\n"));
    assert!(
        lab.ast.log().iter().any(|l| l
            == "WARNING manager.c: Discarding message from 127.0.0.1. Line too long: Command: dialplan show xx..."),
        "{:?}",
        lab.ast.log()
    );
}

#[tokio::test]
async fn ami_list_commands_shows_what_the_user_may_run() {
    let all = "Response: Success\r\nActionID: lc\r\n\
Command: Execute Asterisk CLI Command. (Priv: command,all)\r\n\
ListCommands: List available manager commands. (Priv: <none>)\r\n\
Login: Login Manager. (Priv: <none>)\r\n\
Logoff: Logoff Manager. (Priv: <none>)\r\n\
Originate: Originate a call. (Priv: originate,all)\r\n\
Ping: Keepalive command. (Priv: <none>)\r\n\
Reload: Send a reload event. (Priv: system,config,all)\r\n\r\n";
    for (perms, absent) in [
        (vec!["command", "config", "originate"], vec![]),
        (vec!["command"], vec!["Originate", "Reload"]),
    ] {
        let lab = Lab::start_with(Options::writing(&perms), |_, _, _| {}).await;
        let mut a = lab.login_quiet().await;
        a.send("Action: ListCommands\r\nActionID: lc\r\n\r\n").await;
        let expected: String = all
            .split_inclusive("\r\n")
            .filter(|l| !absent.iter().any(|x| l.starts_with(&format!("{x}: "))))
            .collect();
        assert_eq!(a.msg().await, expected, "{perms:?}");
    }
}
// ---------------------------------------------------------------------------------
// Permissions (F-AMI-9, ami_13)

async fn perm_probe(perms: &[&str]) -> Vec<String> {
    let lab = Lab::start_with(Options::writing(perms), |_, _, dial| {
        std::fs::write(dial.join("t.conf"), probe_dialplan(1)).unwrap();
    })
    .await;
    let mut a = lab.login_quiet().await;
    let mut out = Vec::new();
    for action in [
        "Action: Command\r\nCommand: dialplan reload\r\n",
        "Action: Reload\r\nModule: res_pjsip.so\r\n",
        "Action: Originate\r\nChannel: Local/check@synergy-noagi\r\nApplication: Wait\r\nData: 1\r\nAsync: true\r\n",
        "Action: Originate\r\nChannel: Local/check@synergy-noagi\r\nApplication: AGI\r\nData: agi://127.0.0.1:1/x\r\nAsync: true\r\n",
    ] {
        a.send(&format!("{action}\r\n")).await;
        let m = a.msg().await;
        out.push(
            m.lines()
                .find_map(|l| l.strip_prefix("Message: "))
                .unwrap_or_else(|| panic!("no message in {m:?}"))
                .to_string(),
        );
    }
    out
}

#[tokio::test]
async fn ami_permissions_per_write_class() {
    let denied = "Permission denied";
    let (none, command, system, config, originate, portal) = tokio::join!(
        perm_probe(&[]),
        perm_probe(&["command"]),
        perm_probe(&["system"]),
        perm_probe(&["config"]),
        perm_probe(&["originate"]),
        perm_probe(&["command", "config", "originate"]),
    );
    assert_eq!(none, [denied; 4]);
    assert_eq!(command, ["Command output follows", denied, denied, denied]);
    assert_eq!(system, [denied, "Module Reloaded", denied, denied]);
    assert_eq!(config, [denied, "Module Reloaded", denied, denied]);
    let queued = "Originate successfully queued";
    let forbidden = "Originate Access Forbidden: app or data blacklisted";
    assert_eq!(originate, [denied, denied, queued, forbidden]);
    // The minimal set for the portal (F-AMI-9): its Originate runs Wait, which needs no
    // `system`; one that ran AGI directly would.
    assert_eq!(
        portal,
        [
            "Command output follows",
            "Module Reloaded",
            queued,
            forbidden
        ]
    );
}

#[tokio::test]
async fn ami_originate_data_blacklist_is_a_plain_substring() {
    let lab = Lab::start_with(Options::writing(&["originate"]), |_, _, _| {}).await;
    let mut a = lab.login_quiet().await;
    let r = originate(
        &mut a,
        "Channel: Local/check@synergy-health\r\nApplication: Wait\r\nData: xDBx\r\nAsync: true\r\n",
    )
    .await;
    assert!(
        r.contains("Originate Access Forbidden: app or data blacklisted"),
        "{r}"
    );
}

// ---------------------------------------------------------------------------------
// Config semantics (README 4c, F-CFG-*)

#[tokio::test]
async fn config_case_c_parse_error_in_main_file_keeps_everything() {
    let lab = Lab::seeded().await;
    let main = lab.etc.join("pjsip.conf");
    let body = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, body.replace("#tryinclude", "[broken\n#tryinclude")).unwrap();
    lab.write_endpoints(SEED_ENDPOINTS.split("[1001]").next().unwrap());
    let (rc, out, _) = lab.cli_async("module reload res_pjsip.so").await;
    assert_eq!(
        (rc, out.as_str()),
        (0, "Module 'res_pjsip.so' reloaded successfully.\n")
    );
    assert_eq!(
        lab.ast.endpoints().len(),
        2,
        "1001 stays although it was deleted"
    );
    assert_eq!(
        lab.ast.log(),
        [
            "NOTICE sorcery.c: Type 'system' is not reloadable, maintaining previous values".to_string(),
            format!("WARNING config.c: parse error: no closing ']', line 16 of {}", main.display()),
            "ERROR res_sorcery_config.c: Contents of config file 'pjsip.conf' are invalid and cannot be parsed".to_string(),
        ]
    );
}

#[tokio::test]
async fn config_case_d_unknown_option_retains_the_previous_object() {
    let lab = Lab::seeded().await;
    let body = SEED_ENDPOINTS
        .replacen("allow=ulaw,alaw\n", "foo=bar\n", 1)
        .replacen(
            "[1001]\ntype=endpoint\ncontext=synergy-internal",
            "[1001]\ntype=endpoint\ncontext=changed",
            1,
        );
    lab.write_endpoints(&format!("{body}\n[2000]\ntype=endpoint\nfoo=bar\n"));
    lab.ast.cli("module reload res_pjsip.so");
    let file = lab.endpoints_file();
    let log = lab.ast.log();
    for expected in [
        format!("ERROR config_options.c: Could not find option suitable for category '1000' named 'foo' at line 6 of {file}"),
        "ERROR res_sorcery_config.c: Could not create an object of type 'endpoint' with id '1000' from configuration file 'pjsip.conf'".to_string(),
        "NOTICE res_sorcery_config.c: Retaining existing configuration for object of type 'endpoint' with id '1000'".to_string(),
        "ERROR res_sorcery_config.c: Could not create an object of type 'endpoint' with id '2000' from configuration file 'pjsip.conf'".to_string(),
    ] {
        assert!(log.contains(&expected), "missing {expected:?} in {log:?}");
    }
    let eps = lab.ast.endpoints();
    assert_eq!(eps["1000"]["allow"], "ulaw,alaw", "the old 1000 is kept");
    assert_eq!(eps["1001"]["context"], "changed", "1001 reloaded normally");
    assert!(
        !eps.contains_key("2000"),
        "a new bad object simply does not exist"
    );
}

#[tokio::test]
async fn config_case_e_bad_value_per_object() {
    let lab = Lab::seeded().await;
    lab.write_endpoints(&format!(
        "{}\n[3000]\ntype=aor\nmax_contacts=abc\n",
        SEED_ENDPOINTS.replace("max_contacts=1", "max_contacts=abc")
    ));
    lab.ast.cli("module reload res_pjsip.so");
    let file = lab.endpoints_file();
    let lines: Vec<usize> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "max_contacts=abc")
        .map(|(i, _)| i + 1)
        .collect();
    let log = lab.ast.log();
    for (id, line) in ["1000", "1001"].iter().zip(&lines) {
        for expected in [
            format!("ERROR config_options.c: Error parsing max_contacts=abc at line {line} of {file}"),
            format!("ERROR res_sorcery_config.c: Could not create an object of type 'aor' with id '{id}' from configuration file 'pjsip.conf'"),
            format!("NOTICE res_sorcery_config.c: Retaining existing configuration for object of type 'aor' with id '{id}'"),
        ] {
            assert!(log.contains(&expected), "missing {expected:?} in {log:?}");
        }
    }
    assert_eq!(lab.ast.aors().keys().collect::<Vec<_>>(), ["1000", "1001"]);
    assert_eq!(lab.ast.aors()["1000"]["max_contacts"], "1");
}

#[tokio::test]
async fn config_case_f_duplicate_rejects_the_whole_type() {
    let lab = Lab::seeded().await;
    let body = SEED_ENDPOINTS
        .replace("context=synergy-internal", "context=new")
        .replace("max_contacts=1", "max_contacts=5");
    lab.write_endpoints(&format!("{body}\n[1000]\ntype=endpoint\ncontext=dup\n"));
    lab.ast.cli("module reload res_pjsip.so");
    assert!(lab.ast.log().contains(&"ERROR res_sorcery_config.c: Config file 'pjsip.conf' could not be loaded; configuration contains a duplicate object: '1000' of type 'endpoint'".to_string()));
    let eps = lab.ast.endpoints();
    assert_eq!(
        eps["1000"]["context"], "synergy-internal",
        "old endpoints kept"
    );
    assert_eq!(eps["1001"]["context"], "synergy-internal");
    assert_eq!(
        lab.ast.aors()["1000"]["max_contacts"],
        "5",
        "other types reloaded"
    );
}

#[tokio::test]
async fn config_removal_no_equal_sign_and_leading_lines() {
    let lab = Lab::seeded().await;
    // F-CFG-6: removing sections and extensions really removes them.
    lab.write_endpoints(SEED_ENDPOINTS.split("[1001]").next().unwrap());
    lab.write_routing(&SEED_ROUTING.replace(
        "exten => 1001,1,Dial(PJSIP/1001,25)\n same => n,Hangup()\n",
        "",
    ));
    lab.ast.cli("module reload res_pjsip.so");
    assert_eq!(lab.cli_out("dialplan reload").await, "Dialplan reloaded.\n");
    assert!(!lab.ast.endpoints().contains_key("1001"));
    assert!(!lab.ast.auths().contains_key("1001") && !lab.ast.aors().contains_key("1001"));
    assert_eq!(lab.ast.cli("dialplan show synergy-internal"), T_DP1_SHOW);
    // A garbage line is ignored with a warning; lines before the first section attach
    // to the last section of pjsip.conf (F-CFG-5), silently.
    lab.ast.clear_log();
    lab.write_endpoints(&format!("garbage line\ntype=endpoint\n{SEED_ENDPOINTS}"));
    lab.ast.cli("module reload res_pjsip.so");
    assert_eq!(
        lab.ast.log(),
        [
            "NOTICE sorcery.c: Type 'system' is not reloadable, maintaining previous values"
                .to_string(),
            format!(
                "WARNING config.c: No '=' (equal sign) in line 1 of {}",
                lab.endpoints_file()
            ),
        ]
    );
    assert_eq!(lab.ast.endpoints().len(), 2);
    assert_eq!(
        lab.ast.objects("transport")["transport-tcp"]["type"],
        "endpoint"
    );
    assert!(
        !lab.ast.endpoints().contains_key("transport-tcp"),
        "first type= wins"
    );
}

#[tokio::test]
async fn config_dialplan_dp3_dp4_and_merge() {
    let lab = Lab::start().await;
    lab.seed();
    lab.ast.cli("dialplan reload");
    // DP4: an extension without application is accepted and shows as `1. ()`.
    lab.write_routing(&SEED_ROUTING.replace("1001,1,Dial(PJSIP/1001,25)", "1001,1"));
    lab.ast.cli("dialplan reload");
    assert_eq!(lab.ast.cli("dialplan show synergy-internal"), T_DP4_SHOW);
    // DP3: a parse error in the main extensions.conf keeps the old dialplan whole.
    lab.write_routing(SEED_ROUTING);
    lab.ast.cli("dialplan reload");
    let main = lab.etc.join("extensions.conf");
    let body = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, body.replace("[synergy-health]", "[synergy-health")).unwrap();
    lab.write_routing("[synergy-internal]\n");
    lab.ast.clear_log();
    assert_eq!(
        lab.cli_async("dialplan reload").await,
        (0, "Dialplan reloaded.\n".into(), String::new())
    );
    assert_eq!(
        lab.ast.log(),
        [format!(
            "WARNING config.c: parse error: no closing ']', line 10 of {}",
            main.display()
        )]
    );
    assert_eq!(lab.ast.dialplan("synergy-internal").unwrap().len(), 2);
    assert_eq!(
        lab.ast
            .cli("dialplan show synergy-health")
            .lines()
            .nth(1)
            .unwrap(),
        "  'check' =>        1. AGI(agi://127.0.0.1:4573/health?token=abc) [extensions.conf:11]"
    );
    // Over AMI the pbx_config reload reports the failure.
    let mut a = lab.login_quiet().await;
    a.send("Action: Reload\r\nModule: pbx_config.so\r\n\r\n")
        .await;
    assert_eq!(
        a.msg().await,
        "Response: Error\r\nMessage: An unknown error occurred\r\n\r\n"
    );
}

#[tokio::test]
async fn config_include_with_empty_dir_invalidates_the_file() {
    // Boot with `#include` and empty directories (boot_empty_include_dirs).
    let lab = Lab::start_with(Options::default(), |etc, pjsip, dial| {
        std::fs::write(
            etc.join("pjsip.conf"),
            lab_pjsip_conf(pjsip).replace("#tryinclude", "#include"),
        )
        .unwrap();
        std::fs::write(
            etc.join("extensions.conf"),
            lab_extensions_conf(dial).replace("#tryinclude", "#include"),
        )
        .unwrap();
    })
    .await;
    let pj = format!("{}/*.conf", lab.pjsip.display());
    let dp = format!("{}/*.conf", lab.dial.display());
    let log = lab.ast.log();
    for expected in [
        format!("ERROR config.c: The file '{pj}' was listed as a #include but it does not exist."),
        "ERROR res_sorcery_config.c: Contents of config file 'pjsip.conf' are invalid and cannot be parsed".to_string(),
        format!("ERROR config.c: The file '{dp}' was listed as a #include but it does not exist."),
        "ERROR loader.c: pbx_config declined to load.".to_string(),
    ] {
        assert!(log.contains(&expected), "missing {expected:?} in {log:?}");
    }
    assert!(
        lab.ast.objects("transport").is_empty(),
        "no transports at all"
    );
    assert_eq!(
        lab.cli_out("dialplan reload").await,
        "No such command 'dialplan reload' (type 'core show help dialplan reload' for other possible commands)\n"
    );
    assert_eq!(
        lab.cli_out("pjsip show transports").await,
        "No objects found.\n\n"
    );
    assert_eq!(
        lab.cli_out("module reload res_pjsip.so").await,
        "Module 'res_pjsip.so' reloaded successfully.\n"
    );
    // G1 at runtime: booted with the files there, an emptied directory keeps the old
    // objects.
    lab.seed();
    lab.ast.restart().await.unwrap();
    assert!(lab.ast.pbx_config_running());
    assert_eq!(lab.ast.endpoints().len(), 2);
    std::fs::remove_file(lab.pjsip.join("generated_endpoints.conf")).unwrap();
    std::fs::remove_file(lab.dial.join("generated_routing.conf")).unwrap();
    lab.reload();
    assert_eq!(lab.ast.endpoints().len(), 2, "G1: nothing removed");
    assert_eq!(lab.ast.dialplan("synergy-internal").unwrap().len(), 2);
}

#[tokio::test]
async fn config_tryinclude_with_empty_or_missing_dir() {
    let lab = Lab::seeded().await;
    // G2: empty directory.
    std::fs::remove_file(lab.pjsip.join("generated_endpoints.conf")).unwrap();
    std::fs::remove_file(lab.dial.join("generated_routing.conf")).unwrap();
    assert_eq!(
        lab.cli_out("module reload res_pjsip.so").await,
        "Module 'res_pjsip.so' reloaded successfully.\n"
    );
    assert_eq!(lab.cli_out("dialplan reload").await, "Dialplan reloaded.\n");
    assert_eq!(
        lab.cli_out("pjsip show endpoints").await,
        "No objects found.\n\n"
    );
    assert!(lab
        .ast
        .cli("dialplan show synergy-internal")
        .ends_with("-= 0 extensions (0 priorities) in 1 context. =-\n"));
    // G3: missing directory.
    std::fs::remove_dir_all(&lab.pjsip).unwrap();
    lab.ast.cli("module reload res_pjsip.so");
    assert!(lab.ast.endpoints().is_empty());
    // G4: files restored.
    std::fs::create_dir_all(&lab.pjsip).unwrap();
    lab.seed();
    lab.reload();
    assert_eq!(lab.ast.endpoints().len(), 2);
    assert_eq!(lab.ast.dialplan("synergy-internal").unwrap().len(), 2);
    assert!(
        lab.ast.log().iter().all(|l| !l.starts_with("ERROR")),
        "{:?}",
        lab.ast.log()
    );
}

#[tokio::test]
async fn config_objects_auth_rules_and_fields() {
    let lab = Lab::start().await;
    lab.write_endpoints(
        "[a]\ntype=auth\npassword=x\n\n[b]\ntype=auth\nusername=b\n\n[c]\ntype=auth\nauth_type=bogus\nusername=c\npassword=c\n\n\
         [ep]\ntype=endpoint\ndirect_media=maybe\ncallerid=\"Alice Example\" <1000>\ntransport=transport-udp\ndtmf_mode=RFC4733\n\n\
         [bad]\ntype=endpoint\nallow=nosuchcodec\n",
    );
    lab.ast.cli("module reload res_pjsip.so");
    assert!(lab.ast.auths().is_empty(), "{:?}", lab.ast.log());
    let log = lab.ast.log();
    for expected in [
        "ERROR res_pjsip/config_auth.c: a: No authentication username",
        "ERROR res_pjsip/config_auth.c: b: No plain text or digest password found for algorithm MD5 in supported_algorithms_uas",
        "WARNING res_pjsip/config_auth.c: Unknown authentication storage type 'bogus' specified for auth_type",
        "WARNING format_cap.c: Cannot allow unknown format 'nosuchcodec'",
    ] {
        assert!(log.iter().any(|l| l == expected), "missing {expected:?} in {log:?}");
    }
    // OPT_BOOL_T never fails: an unknown word is false (ast_true).
    assert_eq!(
        lab.ast.field("endpoint", "ep", "direct_media").as_deref(),
        Some("false")
    );
    assert_eq!(
        lab.ast.field("endpoint", "ep", "callerid").as_deref(),
        Some("\"Alice Example\" <1000>")
    );
    assert_eq!(
        lab.ast.field("endpoint", "ep", "dtmf_mode").as_deref(),
        Some("rfc4733")
    );
    assert_eq!(
        lab.ast.field("endpoint", "ep", "context").as_deref(),
        Some("default")
    );
    assert!(!lab.ast.endpoints().contains_key("bad"));
    let shown = lab.ast.cli("pjsip show endpoints");
    let ep_line = format!(
        " Endpoint:  {:<51}  {:<12}  0 of inf\n",
        "ep/1000", "Unavailable"
    );
    assert!(shown.contains(&ep_line), "{shown}");
    let tr_line = format!(
        "  Transport:  {:<21}  {:>6}  {:>5}  {:>5}  127.0.0.1:5060\n",
        "transport-udp", "udp", 0, 0
    );
    assert!(shown.contains(&tr_line), "{shown}");
}

// ---------------------------------------------------------------------------------
// CLI (README 4b)

#[tokio::test]
async fn cli_running_and_down() {
    let lab = Lab::start().await;
    for (cmd, out) in [
        ("pjsip reload", "No such command 'pjsip reload' (type 'core show help pjsip reload' for other possible commands)\n"),
        ("module reload res_pjsip.so", "Module 'res_pjsip.so' reloaded successfully.\n"),
        ("dialplan reload", "Dialplan reloaded.\n"),
        ("pjsip show endpoints", "No objects found.\n\n"),
        ("core waitfullybooted", "Asterisk has fully booted.\n"),
        ("module reload nosuch.so", "No such module 'nosuch.so'\n"),
    ] {
        assert_eq!(lab.cli_async(cmd).await, (0, out.to_string(), String::new()), "{cmd}");
    }
    let down =
        "Unable to connect to remote asterisk (does /var/run/asterisk/asterisk.ctl exist?)\n";
    lab.ast.set_fault(Fault::CliDown);
    assert_eq!(
        lab.cli_async("module reload res_pjsip.so").await,
        (1, String::new(), down.to_string())
    );
    lab.ast.clear_faults();
    assert_eq!(lab.cli_rc("core waitfullybooted").await, 0);
    let mut open = lab.login_quiet().await;
    lab.ast.stop().await;
    assert!(open.eof().await, "stop drops open AMI sessions");
    assert_eq!(
        lab.cli_async("core waitfullybooted").await,
        (1, String::new(), down.to_string())
    );
    assert!(
        TcpStream::connect(lab.ast.ami_addr()).await.is_err(),
        "AMI refused too"
    );
    lab.ast.restart().await.unwrap();
    assert_eq!(lab.cli_rc("core waitfullybooted").await, 0);
    assert!(lab
        .ast
        .actions()
        .iter()
        .any(|a| a == "CLI module reload res_pjsip.so"));
}

// ---------------------------------------------------------------------------------
// Originate + FastAGI (README 4a/4e, 6)

#[tokio::test]
async fn fastagi_environment_and_probe_commands() {
    let agi = AgiServer::bind().await;
    let lab = Lab::probing(agi.port).await;
    let mut a = lab.login_quiet().await;
    a.send("Action: Originate\r\nActionID: o1\r\nChannel: Local/check@synergy-test\r\nApplication: Wait\r\nData: 1\r\n\r\n").await;
    let mut c = agi.accept().await;
    let expected_env = format!(
        "agi_network: yes\nagi_network_script: health?token=abc\nagi_request: agi://127.0.0.1:{port}/health?token=abc\nagi_channel: {chan}\nagi_language: en\nagi_type: Local\nagi_uniqueid: {uid}\nagi_version: 22.7.0\nagi_callerid: unknown\nagi_calleridname: unknown\nagi_callingpres: 67\nagi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\nagi_dnid: unknown\nagi_rdnis: unknown\nagi_context: synergy-test\nagi_extension: check\nagi_priority: 1\nagi_enhanced: 0.0\nagi_accountcode: \nagi_threadid: {tid}\n\n",
        port = agi.port,
        chan = c.env("agi_channel"),
        uid = c.env("agi_uniqueid"),
        tid = c.env("agi_threadid"),
    );
    assert_eq!(c.raw_env, expected_env);
    let chan = c.env("agi_channel").to_string();
    assert!(
        chan.starts_with("Local/check@synergy-test-")
            && chan.ends_with(";2")
            && chan.len() == "Local/check@synergy-test-00000000;2".len(),
        "{chan}"
    );
    let (secs, n) = c.env("agi_uniqueid").split_once('.').unwrap();
    assert!(secs.parse::<u64>().is_ok() && n.parse::<u64>().is_ok());
    assert!(c.env("agi_threadid").parse::<u64>().is_ok());
    // The GET FULL VARIABLE exchange of fastagi_ami_originate_synergy-health.log, then
    // the batched form of section 6; other commands are not modelled.
    for (cmd, reply) in [
        ("GET FULL VARIABLE ${PJSIP_ENDPOINT(1000,context)}", "200 result=1 (synergy-internal)\n"),
        ("GET FULL VARIABLE ${DIALPLAN_EXISTS(synergy-internal,1000,1)}", "200 result=1 (1)\n"),
        ("GET FULL VARIABLE ${PJSIP_ENDPOINT(9999,context)}", "200 result=1 ()\n"),
        ("GET FULL VARIABLE ${DIALPLAN_EXISTS(synergy-internal,9999,1)}", "200 result=1 (0)\n"),
        ("GET FULL VARIABLE ${AGI_NONEXISTENT_VAR}", "200 result=1 ()\n"),
        ("GET FULL VARIABLE ${PJSIP_ENDPOINT(1000,context)},${PJSIP_AOR(1000,max_contacts)},${DIALPLAN_EXISTS(synergy-internal,1000,1)};${PJSIP_ENDPOINT(1001,context)},${PJSIP_AOR(9999,max_contacts)},${DIALPLAN_EXISTS(synergy-internal,1001,1)}",
         "200 result=1 (synergy-internal,1,1;synergy-internal,,1)\n"),
        ("GET FULL VARIABLE ${PJSIP_ENDPOINT(1000,direct_media)}|${PJSIP_AOR(1000,remove_existing)}|${PJSIP_ENDPOINT(1000,auth)}|${PJSIP_ENDPOINT(1000,aors)}|${PJSIP_ENDPOINT(1000,transport)}|${PJSIP_ENDPOINT(1000,callerid)}",
         "200 result=1 (true|false|1000|1000||<unknown>)\n"),
        ("GET VARIABLE EXTEN", "510 Invalid or unknown command\n"),
        ("BOGUS COMMAND", "510 Invalid or unknown command\n"),
        ("GET FULL VARIABLE", "520 Invalid command syntax.  Proper usage not available.\n"),
    ] {
        assert_eq!(c.cmd(cmd).await, reply, "{cmd}");
    }
    let warning =
        "WARNING func_pjsip_endpoint.c: Failed to retrieve information for endpoint '9999'"
            .to_string();
    assert_eq!(lab.ast.log().iter().filter(|l| **l == warning).count(), 1);
    assert!(lab.ast.log().contains(
        &"WARNING func_pjsip_aor.c: Failed to retrieve information for AOR '9999'".to_string()
    ));
    drop(c);
    // No Answer(): the synchronous Originate fails although the AGI ran (F-AMI-12).
    assert_eq!(
        a.msg().await,
        "Response: Error\r\nActionID: o1\r\nMessage: Originate failed\r\n\r\n"
    );
    assert_eq!(lab.ast.agi_sessions(), 1);
    let completed = format!(
        "VERBOSE res_agi.c: <{chan}>AGI Script agi://127.0.0.1:{}/health?token=abc completed, returning 0",
        agi.port
    );
    crate::support::wait_until("the AGI script's end is logged", IO, || {
        lab.ast.log().contains(&completed)
    })
    .await;
}

#[tokio::test]
async fn fastagi_probe_call_as_the_portal_originates_it() {
    let agi = AgiServer::bind().await;
    let lab = Lab::probing(agi.port).await;
    let mut a = lab.login_quiet().await;
    // The token travels in the extension (README 6), the marker is a literal argument.
    let r = originate(&mut a, "ActionID: p1\r\nChannel: Local/probe-tokABC_9@synergy-portal-probe\r\nApplication: Wait\r\nData: 5\r\nAsync: true\r\n").await;
    assert_eq!(
        r,
        "Response: Success\r\nActionID: p1\r\nMessage: Originate successfully queued\r\n\r\n"
    );
    let mut c = agi.accept().await;
    assert_eq!(c.env("agi_network_script"), "health");
    assert_eq!(c.env("agi_priority"), "1");
    assert!(c
        .raw_env
        .ends_with("agi_arg_1: tokABC_9\nagi_arg_2: marker-1\n\n"));
    assert_eq!(
        c.cmd("GET FULL VARIABLE ${EXTEN}").await,
        "200 result=1 (probe-tokABC_9)\n"
    );
    drop(c);
    // A missing extension is queued all the same; no call is made.
    let r = originate(&mut a, "ActionID: p2\r\nChannel: Local/nosuch@synergy-portal-probe\r\nApplication: Wait\r\nData: 1\r\nAsync: true\r\n").await;
    assert!(r.contains("Originate successfully queued"), "{r}");
    let notice = "NOTICE core_local.c: No such extension/context nosuch@synergy-portal-probe while calling Local channel";
    crate::support::wait_until("the failed call is logged", IO, || {
        lab.ast.log().iter().any(|l| l == notice)
    })
    .await;
    assert_eq!(lab.ast.agi_sessions(), 1);
}

#[tokio::test]
async fn fastagi_server_down_continues_with_agistatus_failure() {
    let agi = AgiServer::bind().await;
    let lab = Lab::probing(agi.port).await;
    let (rc, out, _) = lab
        .cli_async("channel originate Local/check@synergy-test-down application Wait 1")
        .await;
    assert_eq!((rc, out.as_str()), (0, ""));
    let mut c = agi.accept().await;
    assert_eq!(c.env("agi_network_script"), "after-failure");
    assert_eq!(
        c.cmd("GET FULL VARIABLE ${AGISTATUS}").await,
        "200 result=1 (FAILURE)\n"
    );
    let log = lab.ast.log();
    let down = support::closed_port();
    assert!(log.contains(&format!("WARNING res_agi.c: Connecting to '127.0.0.1:{down}' failed for url 'agi://127.0.0.1:{down}/health': Connection refused")), "{log:?}");
    assert!(log.contains(
        &"WARNING res_agi.c: Couldn't connect to any host.  FastAGI failed.".to_string()
    ));
}

#[tokio::test]
async fn fastagi_line_limit_and_cost() {
    let agi = AgiServer::bind().await;
    let lab = Lab::probing(agi.port).await;
    lab.ast
        .cli("channel originate Local/check@synergy-test application Wait 1");
    let mut c = agi.accept().await;
    // 50 extensions x 3 functions in one command: 3000-byte line, fine.
    let one = "${PJSIP_ENDPOINT(1000,context)},${PJSIP_AOR(1000,max_contacts)},${DIALPLAN_EXISTS(synergy-internal,1000,1)}";
    let line = format!("GET FULL VARIABLE {}", vec![one; 50].join(";"));
    let reply = c.cmd(&line).await;
    assert_eq!(
        reply,
        format!(
            "200 result=1 ({})\n",
            vec!["synergy-internal,1,1"; 50].join(";")
        )
    );
    // Cost: 100 commands x 3 functions ~ 100 * (95 + 3*43) us = 22.4 ms, less at most
    // 1 ms of credit from the command above and 1 ms still owed at the end.
    let started = std::time::Instant::now();
    for _ in 0..100 {
        c.cmd(&format!("GET FULL VARIABLE {one}")).await;
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(20), "{took:?}");
    assert!(took < Duration::from_millis(400), "{took:?}");
    // 8190 bytes + LF is still one line.
    let pad = "x".repeat(8190 - "GET FULL VARIABLE ".len());
    assert_eq!(
        c.cmd(&format!("GET FULL VARIABLE {pad}")).await,
        format!("200 result=1 ({pad})\n")
    );
    // 8192 bytes or more: 510 and the framing is lost (README 6).
    let long = format!("GET FULL VARIABLE {}", vec![one; 100].join(";"));
    assert!(long.len() > 8192);
    assert_eq!(c.cmd(&long).await, "510 Invalid or unknown command\n");
    // The rest of the line is read as the next command, so every reply is one late.
    assert_eq!(
        c.cmd("GET FULL VARIABLE ${EXTEN}").await,
        "510 Invalid or unknown command\n"
    );
    assert_eq!(c.line().await, "200 result=1 (check)\n");
}

#[tokio::test]
async fn faults_hangup_mid_probe_and_never_call_back() {
    let agi = AgiServer::bind().await;
    let lab = Lab::probing(agi.port).await;
    lab.ast.set_fault(Fault::HangupMidProbe(2));
    lab.ast
        .cli("channel originate Local/check@synergy-test application Wait 1");
    let mut c = agi.accept().await;
    let exten = "GET FULL VARIABLE ${EXTEN}";
    assert_eq!(c.cmd(exten).await, "200 result=1 (check)\n");
    assert_eq!(c.cmd(exten).await, "200 result=1 (check)\n");
    // The third command meets the hung-up channel.
    assert_eq!(c.cmd(exten).await, "HANGUP\n");
    assert_eq!(c.line().await, "", "then closed");
    lab.ast.clear_faults();
    lab.ast.set_fault(Fault::NeverCallBack);
    let mut a = lab.login_quiet().await;
    let calls = lab.ast.calls();
    let r = originate(
        &mut a,
        "Channel: Local/check@synergy-test\r\nApplication: Wait\r\nData: 1\r\nAsync: true\r\n",
    )
    .await;
    assert_eq!(
        r,
        "Response: Success\r\nMessage: Originate successfully queued\r\n\r\n"
    );
    assert_eq!(lab.ast.calls(), calls, "no call was made");
    assert_eq!(lab.ast.agi_sessions(), 1);
    assert_eq!(
        lab.ast
            .actions()
            .iter()
            .filter(|a| *a == "AMI Originate: Local/check@synergy-test")
            .count(),
        1
    );
}

#[tokio::test]
async fn ami_sync_originate_without_answer_transcript() {
    // ami_15 against the lab's [synergy-health], its FastAGI port one where no server
    // listens: a call nothing answers fails although its dialplan ran (F-AMI-12).
    let lab = Lab::start_with(Options::default(), |etc, _, dial| {
        std::fs::write(
            etc.join("extensions.conf"),
            lab_extensions_conf(dial).replace("4573", &support::closed_port().to_string()),
        )
        .unwrap();
    })
    .await;
    replay(lab.ast.ami_addr(), T_AMI_15).await;
    assert!(lab
        .ast
        .log()
        .contains(&"WARNING res_agi.c: Couldn't connect to any host.  FastAGI failed.".into()));
}

// ---------------------------------------------------------------------------------
// Other faults

#[tokio::test]
async fn faults_refuse_reject_command_error_stall_drop() {
    let lab = Lab::start().await;
    lab.seed();
    lab.ast.set_fault(Fault::RefuseConnections);
    assert!(TcpStream::connect(lab.ast.ami_addr()).await.is_err());
    assert_eq!(
        lab.cli_rc("core waitfullybooted").await,
        0,
        "the CLI still works"
    );
    lab.ast.clear_faults();
    let mut a = lab.login_quiet().await;

    lab.ast.set_fault(Fault::CommandError);
    assert_eq!(
        lab.command(&mut a, "module reload res_pjsip.so").await,
        "Response: Error\r\nMessage: Command output follows\r\nOutput: No such command 'module reload res_pjsip.so' (type 'core show help module reload res_pjsip.so' for other possible commands)\r\n\r\n"
    );
    a.send("Action: Reload\r\nModule: res_pjsip.so\r\n\r\n")
        .await;
    assert_eq!(
        a.msg().await,
        "Response: Error\r\nMessage: Invalid/unknown command: Reload. Use Action: ListCommands to show available commands.\r\n\r\n"
    );
    assert_eq!(
        lab.cli_out("dialplan reload").await,
        "No such command 'dialplan reload' (type 'core show help dialplan reload' for other possible commands)\n"
    );
    assert!(lab.ast.endpoints().is_empty(), "nothing was reloaded");
    lab.ast.clear_faults();

    // Nothing was loaded before: the refused objects have no previous version.
    lab.ast.set_fault(Fault::RefuseObjects(vec!["1001".into()]));
    lab.ast.clear_log();
    assert!(lab
        .command(&mut a, "module reload res_pjsip.so")
        .await
        .starts_with("Response: Success"));
    assert_eq!(lab.ast.endpoints().keys().collect::<Vec<_>>(), ["1000"]);
    assert!(!lab.ast.aors().contains_key("1001") && !lab.ast.auths().contains_key("1001"));
    assert_eq!(lab.ast.log(), refused_log("1001", false, true));
    lab.ast.clear_faults();

    lab.ast.set_fault(Fault::Stall(Duration::from_millis(300)));
    let started = std::time::Instant::now();
    a.send("Action: Ping\r\n\r\n").await;
    assert!(a.msg().await.contains("Ping: Pong"));
    assert!(started.elapsed() >= Duration::from_millis(300));
    lab.ast.clear_faults();

    lab.ast.set_fault(Fault::RejectLogin);
    let mut b = lab.ami().await;
    b.line().await;
    b.send("Action: Login\r\nUsername: portal\r\nSecret: portal-secret\r\n\r\n")
        .await;
    assert_eq!(
        b.msg().await,
        "Response: Error\r\nMessage: Authentication failed\r\n\r\n"
    );
    assert!(b.eof().await);
    lab.ast.clear_faults();

    lab.ast.set_fault(Fault::DropMidReply);
    a.send("Action: Command\r\nActionID: d1\r\nCommand: dialplan reload\r\n\r\n")
        .await;
    let mut got = Vec::new();
    timeout(IO, a.r.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    let full = "Response: Success\r\nActionID: d1\r\nMessage: Command output follows\r\nOutput: Dialplan reloaded.\r\n\r\n";
    assert!(!got.is_empty() && got.len() < full.len() && full.as_bytes().starts_with(&got));
}

/// The log of a PJSIP load that refuses endpoint, auth and aor `id`
/// (`Fault::RefuseObjects`): res_sorcery_config.c's ERROR for each, and its NOTICE when
/// the previous load held the object (`held`). A reload starts with the F-CFG-10 notice.
fn refused_log(id: &str, held: bool, reload: bool) -> Vec<String> {
    let mut out = Vec::new();
    if reload {
        out.push(
            "NOTICE sorcery.c: Type 'system' is not reloadable, maintaining previous values"
                .to_string(),
        );
    }
    for t in ["endpoint", "auth", "aor"] {
        out.push(format!("ERROR res_sorcery_config.c: Could not create an object of type '{t}' with id '{id}' from configuration file 'pjsip.conf'"));
        if held {
            out.push(format!("NOTICE res_sorcery_config.c: Retaining existing configuration for object of type '{t}' with id '{id}'"));
        }
    }
    out
}

#[tokio::test]
async fn faults_refused_objects_are_retained_on_reload_and_lost_at_a_restart() {
    let lab = Lab::seeded().await;
    let (endpoints, aors) = (lab.ast.endpoints(), lab.ast.aors());
    // The file changes 1001's secret; Asterisk fails to create 1001 and keeps the
    // objects it held, old secret included (F-CFG-4).
    lab.write_endpoints(&SEED_ENDPOINTS.replace("SECRET1001", "NEWSECRET"));
    lab.ast.set_fault(Fault::RefuseObjects(vec!["1001".into()]));
    assert_eq!(
        lab.cli_out("module reload res_pjsip.so").await,
        "Module 'res_pjsip.so' reloaded successfully.\n"
    );
    assert_eq!(lab.ast.log(), refused_log("1001", true, true));
    assert_eq!((lab.ast.endpoints(), lab.ast.aors()), (endpoints, aors));
    assert_eq!(lab.ast.auths()["1001"]["password"], "SECRET1001");
    assert_eq!(lab.ast.auths()["1000"]["password"], "SECRET1000");
    // A restart holds nothing before its load: 1001 is lost, with no NOTICE.
    lab.ast.clear_log();
    lab.ast.restart().await.unwrap();
    assert_eq!(lab.ast.log(), refused_log("1001", false, false));
    assert_eq!(lab.ast.endpoints().keys().collect::<Vec<_>>(), ["1000"]);
    assert!(!lab.ast.auths().contains_key("1001") && !lab.ast.aors().contains_key("1001"));
    // Still set, the fault refuses 1001 at every load, and nothing is retained now.
    lab.ast.clear_log();
    lab.ast.cli("module reload res_pjsip.so");
    assert_eq!(lab.ast.log(), refused_log("1001", false, true));
    assert!(!lab.ast.endpoints().contains_key("1001"));
    lab.ast.clear_faults();
    lab.ast.cli("module reload res_pjsip.so");
    assert_eq!(lab.ast.auths()["1001"]["password"], "NEWSECRET");
}

// ---------------------------------------------------------------------------------
// Tampering with a file right before a load reads it

/// Where the tampers insert and cut in the seed files, by byte count (the tamper tests
/// below rely on it).
#[test]
fn the_seed_middles_the_tamper_tests_rely_on() {
    // 423 bytes: the line start nearest byte 211 is 209, line 18 (`max_contacts=1` of
    // aor 1000); half is 211, inside that line.
    assert_eq!(SEED_ENDPOINTS.len(), 423);
    assert!(SEED_ENDPOINTS[..209].ends_with("[1000]\ntype=aor\n"));
    assert_eq!(&SEED_ENDPOINTS[209..211], "ma");
    // 131 bytes: line 3 (1000's Hangup) starts at 55; half (65) cuts it after ` same => n`.
    assert_eq!(SEED_ROUTING.len(), 131);
    assert!(SEED_ROUTING[..55].ends_with("Dial(PJSIP/1000,25)\n"));
    assert_eq!(&SEED_ROUTING[55..65], " same => n");
}

#[tokio::test]
async fn tamper_insert_mid_file_is_a_parse_error_mid_file() {
    let lab = Lab::seeded().await;
    lab.ast
        .set_fault(Fault::TamperBeforeLoad(Tamper::insert_mid_file(
            "generated_endpoints.conf",
            "[broken",
        )));
    lab.ast
        .set_fault(Fault::TamperBeforeLoad(Tamper::insert_mid_file(
            "generated_routing.conf",
            "[broken",
        )));
    lab.reload();
    // F-CFG-3: what comes before line 18 loads (aor 1000 without its max_contacts),
    // everything after is dropped.
    assert_eq!(
        lab.ast.log(),
        [
            "NOTICE sorcery.c: Type 'system' is not reloadable, maintaining previous values"
                .to_string(),
            format!(
                "WARNING config.c: parse error: no closing ']', line 18 of {}",
                lab.endpoints_file()
            ),
            format!(
                "WARNING config.c: parse error: no closing ']', line 3 of {}",
                lab.routing_file()
            ),
        ]
    );
    let on_disk = std::fs::read_to_string(lab.endpoints_file()).unwrap();
    assert_eq!(
        on_disk,
        format!(
            "{}[broken\n{}",
            &SEED_ENDPOINTS[..209],
            &SEED_ENDPOINTS[209..]
        )
    );
    assert_eq!(lab.ast.endpoints().keys().collect::<Vec<_>>(), ["1000"]);
    assert_eq!(lab.ast.auths().keys().collect::<Vec<_>>(), ["1000"]);
    assert_eq!(lab.ast.aors().keys().collect::<Vec<_>>(), ["1000"]);
    assert_eq!(
        lab.ast.field("aor", "1000", "max_contacts").as_deref(),
        Some("0")
    );
    assert_eq!(
        lab.ast.cli("dialplan show synergy-internal"),
        "[ Context 'synergy-internal' created by 'pbx_config' ]\n  '1000' =>         1. Dial(PJSIP/1000,25)                        [generated_routing.conf:2]\n\n-= 1 extension (1 priority) in 1 context. =-\n"
    );
    // One-shot: the next reload reads what is on disk, the endpoints file fixed and the
    // routing file as the tamper left it.
    lab.ast.clear_log();
    std::fs::write(lab.endpoints_file(), SEED_ENDPOINTS).unwrap();
    lab.reload();
    assert_eq!(lab.ast.endpoints().len(), 2);
    assert_eq!(
        lab.ast.log(),
        [
            "NOTICE sorcery.c: Type 'system' is not reloadable, maintaining previous values"
                .to_string(),
            format!(
                "WARNING config.c: parse error: no closing ']', line 3 of {}",
                lab.routing_file()
            ),
        ]
    );
}

#[tokio::test]
async fn tamper_truncate_cuts_mid_line() {
    let lab = Lab::seeded().await;
    lab.ast.set_fault(Fault::TamperBeforeLoad(Tamper::truncate(
        "generated_endpoints.conf",
    )));
    lab.ast.set_fault(Fault::TamperBeforeLoad(Tamper::truncate(
        "generated_routing.conf",
    )));
    lab.reload();
    // The last line, `ma` without a newline, is still a line: config.c warns and goes on.
    assert_eq!(
        lab.ast.log(),
        [
            "NOTICE sorcery.c: Type 'system' is not reloadable, maintaining previous values"
                .to_string(),
            format!(
                "WARNING config.c: No '=' (equal sign) in line 18 of {}",
                lab.endpoints_file()
            ),
        ]
    );
    assert_eq!(
        std::fs::read(lab.endpoints_file()).unwrap(),
        SEED_ENDPOINTS.as_bytes()[..211]
    );
    assert_eq!(lab.ast.endpoints().keys().collect::<Vec<_>>(), ["1000"]);
    assert_eq!(
        lab.ast.field("aor", "1000", "max_contacts").as_deref(),
        Some("0")
    );
    assert!(!lab.ast.auths().contains_key("1001"));
    // ` same => n` is `same => n` with no application: priority 2, `()` (F-CFG-8).
    assert_eq!(
        lab.ast.cli("dialplan show synergy-internal"),
        "[ Context 'synergy-internal' created by 'pbx_config' ]\n  '1000' =>         1. Dial(PJSIP/1000,25)                        [generated_routing.conf:2]\n                    2. ()                                         [generated_routing.conf:3]\n\n-= 1 extension (2 priorities) in 1 context. =-\n"
    );
}

#[tokio::test]
async fn tamper_restore_previous_reloads_the_old_file_once() {
    let lab = Lab::seeded().await;
    let with_1002 = format!(
        "{SEED_ENDPOINTS}\n{}",
        SEED_ENDPOINTS
            .split("[1001]")
            .skip(1)
            .map(|s| format!("[1002]{}", s.replace("1001", "1002")))
            .collect::<String>()
    );
    lab.write_endpoints(&with_1002);
    let tamper = Fault::TamperBeforeLoad(Tamper::restore_previous("generated_endpoints.conf"));
    lab.ast.set_fault(tamper.clone());
    // A dialplan reload does not read the endpoints file: the tamper waits.
    lab.ast.cli("dialplan reload");
    assert_eq!(
        std::fs::read_to_string(lab.endpoints_file()).unwrap(),
        with_1002
    );
    lab.ast.cli("module reload res_pjsip.so");
    assert_eq!(
        std::fs::read_to_string(lab.endpoints_file()).unwrap(),
        SEED_ENDPOINTS
    );
    assert_eq!(
        lab.ast.endpoints().keys().collect::<Vec<_>>(),
        ["1000", "1001"]
    );
    assert_eq!(
        lab.ast.log(),
        ["NOTICE sorcery.c: Type 'system' is not reloadable, maintaining previous values"]
    );
    // Gone after one use: the next reload reads what is on disk.
    lab.write_endpoints(&with_1002);
    lab.ast.cli("module reload res_pjsip.so");
    assert_eq!(
        lab.ast.endpoints().keys().collect::<Vec<_>>(),
        ["1000", "1001", "1002"]
    );
    // Restoring a file the previous load did not read removes it: the dialplan of a lab
    // booted without a routing file.
    let lab = Lab::start().await;
    lab.write_routing(SEED_ROUTING);
    lab.ast
        .set_fault(Fault::TamperBeforeLoad(Tamper::restore_previous(
            "generated_routing.conf",
        )));
    lab.ast.cli("dialplan reload");
    assert!(!Path::new(&lab.routing_file()).exists());
    assert_eq!(
        lab.ast.dialplan("synergy-internal"),
        Some(Default::default())
    );
    lab.ast.cli("dialplan reload");
    assert_eq!(
        lab.ast.dialplan("synergy-internal"),
        Some(Default::default())
    );
}

#[tokio::test]
async fn tamper_applies_at_a_boot_too() {
    let lab = Lab::seeded().await;
    lab.ast.set_fault(Fault::TamperBeforeLoad(Tamper::truncate(
        "generated_endpoints.conf",
    )));
    lab.ast.restart().await.unwrap();
    assert_eq!(
        lab.ast.log(),
        [format!(
            "WARNING config.c: No '=' (equal sign) in line 18 of {}",
            lab.endpoints_file()
        )]
    );
    assert_eq!(lab.ast.endpoints().keys().collect::<Vec<_>>(), ["1000"]);
}

// ---------------------------------------------------------------------------------
// CoreStatus, `core show uptime`, and what reloads cost

/// The CoreStatus response's values (its lines checked in order, `ActionID: cs`).
async fn core_status(a: &mut Ami) -> Vec<String> {
    a.send("Action: CoreStatus\r\nActionID: cs\r\n\r\n").await;
    let msg = a.msg().await;
    let re = regex::Regex::new(
        r"^Response: Success\r\nActionID: cs\r\nCoreStartupDate: (\d{4}-\d\d-\d\d)\r\nCoreStartupTime: (\d\d:\d\d:\d\d)\r\nCoreReloadDate: (\d{4}-\d\d-\d\d)\r\nCoreReloadTime: (\d\d:\d\d:\d\d)\r\nCoreCurrentCalls: (\d+)\r\nCoreProcessedCalls: (\d+)\r\n\r\n$",
    )
    .unwrap();
    let caps = re.captures(&msg).unwrap_or_else(|| panic!("{msg:?}"));
    (1..=6).map(|i| caps[i].to_string()).collect()
}

/// `System uptime` and `Last reload` of `core show uptime seconds` (its exact form checked).
async fn uptime(lab: &Lab) -> (u64, u64) {
    let out = lab.cli_out("core show uptime seconds").await;
    let re = regex::Regex::new(r"^System uptime: (\d+)\nLast reload: (\d+)\n$").unwrap();
    let caps = re.captures(&out).unwrap_or_else(|| panic!("{out:?}"));
    (caps[1].parse().unwrap(), caps[2].parse().unwrap())
}

/// `%Y-%m-%d` and `%H:%M:%S` of now, in UTC.
fn utc_now() -> (String, String) {
    let t = time::OffsetDateTime::now_utc();
    (
        format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()),
    )
}

/// Whether `(date, time)` is within `[from, to]` (the strings compare in time order).
fn between(at: (&str, &str), from: &(String, String), to: &(String, String)) -> bool {
    let at = (at.0.to_string(), at.1.to_string());
    *from <= at && at <= *to
}

#[tokio::test]
async fn core_status_and_uptime_follow_start_and_module_reloads() {
    let before = utc_now();
    let lab = Lab::seeded().await;
    let after = utc_now();
    let mut a = lab.login_quiet().await;
    let first = core_status(&mut a).await;
    assert!(
        between((&first[0], &first[1]), &before, &after),
        "{first:?}"
    );
    assert_eq!((&first[2], &first[3]), (&first[0], &first[1]));
    assert_eq!((first[4].as_str(), first[5].as_str()), ("0", "0"));
    // Both from the start; without `seconds` in words (cli.c print_uptimestr; its cases
    // are the unit test of cli.rs); a fourth word other than `seconds` is a usage error.
    let (up, last) = uptime(&lab).await;
    assert_eq!(last, up);
    let words =
        regex::Regex::new(r"^System uptime: (\d+) seconds?\nLast reload: (\d+) seconds?\n$")
            .unwrap();
    let out = lab.cli_out("core show uptime").await;
    assert!(words.is_match(&out), "{out:?}");
    assert_eq!(
        lab.cli_out("core show uptime minutes").await,
        "Usage: core show uptime [seconds]\n       Shows Asterisk uptime information.\n       The seconds word returns the uptime in seconds only.\n"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // `dialplan reload` runs pbx_load_module, not ast_module_reload: nothing moves.
    lab.command(&mut a, "dialplan reload").await;
    assert_eq!(core_status(&mut a).await, first);
    let (up, last) = uptime(&lab).await;
    assert!(up >= 1 && last == up, "{up} {last}");
    let before = utc_now();
    lab.command(&mut a, "module reload res_pjsip.so").await;
    let after = utc_now();
    let reloaded = core_status(&mut a).await;
    assert_eq!(reloaded[..2], first[..2], "the start stays");
    assert!(between((&reloaded[2], &reloaded[3]), &before, &after));
    assert_ne!(reloaded[2..4], first[2..4]);
    let (up, last) = uptime(&lab).await;
    assert!(up >= 1 && last < up, "{up} {last}");
    // AMI Reload, even of a module that does not exist, sets the reload time too.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.send("Action: Reload\r\nModule: nosuch.so\r\n\r\n").await;
    assert_eq!(
        a.msg().await,
        "Response: Error\r\nMessage: No such module\r\n\r\n"
    );
    let (up, last) = uptime(&lab).await;
    assert!(up >= 2 && last < up - 1, "{up} {last}");
    // A restart starts both over.
    let before = utc_now();
    lab.ast.restart().await.unwrap();
    let after = utc_now();
    let mut a = lab.login_quiet().await;
    let restarted = core_status(&mut a).await;
    assert!(between((&restarted[0], &restarted[1]), &before, &after));
    assert_ne!(restarted[..2], first[..2]);
    assert_eq!(restarted[2..4], restarted[..2]);
}

#[tokio::test]
async fn core_status_needs_system_or_reporting() {
    for (class, allowed) in [("reporting", true), ("system", true), ("command", false)] {
        let lab = Lab::start_with(Options::writing(&[class]), |_, _, _| {}).await;
        let mut a = lab.login_quiet().await;
        a.send("Action: CoreStatus\r\n\r\n").await;
        let got = a.msg().await;
        if allowed {
            assert!(
                got.starts_with("Response: Success\r\nCoreStartupDate: "),
                "{got}"
            );
        } else {
            assert_eq!(got, "Response: Error\r\nMessage: Permission denied\r\n\r\n");
        }
    }
}

#[tokio::test]
async fn core_status_counts_channels_and_pbx_runs() {
    let lab = Lab::seeded().await;
    let mut a = lab.login_quiet().await;
    // The ;2 leg runs [synergy-health-down]: its AGI finds nothing listening and the
    // call ends at the Verbose the stand-in does not model.
    lab.ast
        .cli("channel originate Local/check@synergy-health-down application Wait 1");
    let mut status = core_status(&mut a).await;
    for _ in 0..100 {
        if status[4] == "0" {
            break;
        }
        assert_eq!(status[4], "2", "a Local pair is two channels");
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = core_status(&mut a).await;
    }
    assert_eq!((status[4].as_str(), status[5].as_str()), ("0", "1"));
    // A Local channel to an extension that does not exist starts no pbx.
    lab.ast
        .cli("channel originate Local/nosuch@synergy-health-down application Wait 1");
    assert_eq!(core_status(&mut a).await[5], "1");
    lab.ast.restart().await.unwrap();
    let mut a = lab.login_quiet().await;
    assert_eq!(core_status(&mut a).await[4..], ["0", "0"]);
}

#[test]
fn reload_cost_fits_the_two_measurements() {
    let both = |n: usize| reload_cost::pjsip(n) + reload_cost::dialplan(n);
    assert_eq!(both(1000), Duration::from_millis(207));
    assert_eq!(both(3000), Duration::from_millis(806));
    assert_eq!(reload_cost::dialplan(1000), Duration::from_millis(22));
}

/// `n` users as the portal renders them (endpoint, auth and aor; one extension each).
fn many_users(n: usize) -> (String, String) {
    let mut endpoints = String::new();
    let mut routing = String::from("[synergy-internal]\n");
    for i in 0..n {
        let id = 2000 + i;
        endpoints.push_str(&format!("[{id}]\ntype=endpoint\ncontext=synergy-internal\nauth={id}\naors={id}\n\n[{id}]\ntype=auth\nauth_type=userpass\nusername={id}\npassword=S{id}\n\n[{id}]\ntype=aor\nmax_contacts=1\n\n"));
        routing.push_str(&format!("exten => {id},1,Dial(PJSIP/{id},25)\n"));
    }
    (endpoints, routing)
}

/// How long the reply to each of `module reload res_pjsip.so` (AMI Command), `dialplan
/// reload` (the CLI script) and AMI `Reload` of pbx_config.so took, and the wait the
/// stand-in charged in all.
async fn reload_times(opts: Options, n: usize) -> ([Duration; 3], Duration) {
    let lab = Lab::start_with(opts, |_, pjsip, dial| {
        let (endpoints, routing) = many_users(n);
        std::fs::write(pjsip.join("generated_endpoints.conf"), endpoints).unwrap();
        std::fs::write(dial.join("generated_routing.conf"), routing).unwrap();
    })
    .await;
    assert_eq!(lab.ast.endpoints().len(), n);
    let mut a = lab.login_quiet().await;
    let t = std::time::Instant::now();
    lab.command(&mut a, "module reload res_pjsip.so").await;
    let pjsip = t.elapsed();
    let t = std::time::Instant::now();
    assert_eq!(lab.cli_out("dialplan reload").await, "Dialplan reloaded.\n");
    let dialplan = t.elapsed();
    let t = std::time::Instant::now();
    a.send("Action: Reload\r\nModule: pbx_config.so\r\n\r\n")
        .await;
    assert!(a.msg().await.starts_with("Response: Success"));
    (
        [pjsip, dialplan, t.elapsed()],
        lab.ast.reload_time_charged(),
    )
}

#[tokio::test]
async fn reloads_take_the_modelled_time_only_with_reload_costs() {
    const N: usize = 600;
    // 600 endpoints, and the lab's 3 probe extensions besides the 600.
    let (pjsip, dialplan) = (reload_cost::pjsip(N), reload_cost::dialplan(N + 3));
    assert_eq!(pjsip, Duration::from_nanos(103_600_000));
    let costs = Options {
        reload_costs: true,
        ..Options::default()
    };
    let ([p, d, r], charged) = reload_times(costs, N).await;
    assert!(p >= pjsip, "{p:?}");
    assert!(d >= dialplan && r >= dialplan, "{d:?} {r:?}");
    // The stand-in's own work counts towards the modelled time: what it waited on top is
    // at most the model (nothing at all on a machine so loaded that its own work took
    // longer; on a quiet one, the times above hold only because it waited).
    assert!(charged <= pjsip + dialplan * 2, "{charged:?}");
    let free = Options {
        reload_costs: false,
        ..Options::default()
    };
    let (_, charged) = reload_times(free, N).await;
    assert_eq!(charged, Duration::ZERO);
}
