//! A protocol-faithful stand-in for Asterisk 22.7.0 as recorded in the lab notes
//! (AMI on TCP with its event delivery, `asterisk -rx` through a generated bash script,
//! pjsip.conf and extensions.conf loading with Asterisk's semantics, SIP registrations
//! and contact qualify as AMI and the CLI show them, Local channel originates that run
//! the live dialplan, and the FastAGI client side of `AGI(agi://...)`). It models what
//! the portal uses and what the recorded transcripts replayed by the tests show, and
//! refuses anything else: an action, command or function it does not model as Asterisk
//! refuses an unknown one, an application or a form of a command with an error that says
//! the stand-in does not model it, so that a test relying on it fails rather than passes.
//!
//! Use only `super::`/`self::` paths inside this folder: it is compiled both as
//! `support::asterisk` inside the integration tests and by the load benchmark.

pub mod agi;
pub mod ami;
pub mod call;
pub mod channel;
pub mod cli;
pub mod config;
pub mod dialplan;
pub mod funcs;
pub mod pjsip;
pub mod pjsip_ami;
pub mod registrar;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::{AbortHandle, JoinHandle};

pub use call::{CallOutcome, Offer, PhoneMedia};
pub use registrar::{
    ContactInfo, DeviceStateOrder, RegisterError, Registration, Status as ContactState,
};

/// Settings of the stand-in: its AMI users and the clocks tests may speed up.
#[derive(Debug, Clone)]
pub struct Options {
    pub ami_username: String,
    pub ami_secret: String,
    /// manager.conf `read=` classes of that user: the events it may see.
    pub read_perms: Vec<String>,
    /// manager.conf `write=` classes (system, call, log, verbose, command, agent, user,
    /// config, dtmf, reporting, cdr, dialplan, originate, agi, cc, aoc, test, security,
    /// message, all).
    pub write_perms: Vec<String>,
    /// More manager.conf users.
    pub other_users: Vec<AmiUser>,
    /// `contact_expiration_check_interval` of pjsip.conf [global] (30 s) unless set.
    pub expiration_check_interval: Option<Duration>,
    /// Multiplies how long a registration lasts before the expiration check removes
    /// it: 0.01 ends an `Expires: 60` registration after 0.6 s. ExpirationTime still
    /// shows the registration time plus the granted expiry.
    pub expiry_time_scale: f64,
    /// Multiplies the qualify clock (qualify_frequency, qualify_timeout, a phone's answer
    /// time): 0.01 turns a 5 s qualify_frequency into 50 ms. Values shown over AMI
    /// (QualifyFrequency, RoundtripUsec) stay unscaled.
    pub qualify_time_scale: f64,
    /// Reloads take the time a real Asterisk 22.7 takes for the objects they load
    /// ([`reload_cost`]), charged before the reply of `module reload`, `dialplan reload`
    /// (AMI `Command` or the CLI script) and AMI `Reload`.
    pub reload_costs: bool,
}

/// Whether [`Options::reload_costs`] is on unless a test says otherwise: on, so that
/// every test and the load benchmark see reloads take a real Asterisk's time. Measured
/// over one run of the whole integration suite (2 cores, 139 s): its 281 reloads were
/// charged 0.39 s of modelled time, of which the stand-in's own work already took all but
/// 0.11 s, the only wait added; the largest are the 1000-user apply (185 ms modelled, 55
/// ms waited) and the stand-in's own cost test.
pub const RELOAD_COSTS_BY_DEFAULT: bool = true;

/// One manager.conf user.
#[derive(Debug, Clone)]
pub struct AmiUser {
    pub username: String,
    pub secret: String,
    pub read_perms: Vec<String>,
    pub write_perms: Vec<String>,
}

impl AmiUser {
    pub fn new(username: &str, secret: &str, read: &[&str], write: &[&str]) -> AmiUser {
        AmiUser {
            username: username.into(),
            secret: secret.into(),
            read_perms: read.iter().map(|s| s.to_string()).collect(),
            write_perms: write.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl Default for Options {
    /// The portal user with its event link: `read = system` (ContactStatus, PeerStatus),
    /// `write = command,originate,system` (Command, Originate, PJSIPShowContacts).
    fn default() -> Self {
        Self::writing(&["command", "originate", "system"])
    }
}

impl Options {
    /// The lab's AMI user with these `write=` classes (and `read = system`).
    pub fn writing(classes: &[&str]) -> Self {
        Options {
            ami_username: "portal".into(),
            ami_secret: "portal-secret".into(),
            read_perms: vec!["system".into()],
            write_perms: classes.iter().map(|s| s.to_string()).collect(),
            other_users: Vec::new(),
            expiration_check_interval: None,
            expiry_time_scale: 1.0,
            qualify_time_scale: 1.0,
            reload_costs: RELOAD_COSTS_BY_DEFAULT,
        }
    }

    /// The same user with these `read=` classes.
    pub fn reading(mut self, classes: &[&str]) -> Self {
        self.read_perms = classes.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Every manager.conf user, the main one first.
    pub fn users(&self) -> Vec<AmiUser> {
        let mut all = vec![AmiUser {
            username: self.ami_username.clone(),
            secret: self.ami_secret.clone(),
            read_perms: self.read_perms.clone(),
            write_perms: self.write_perms.clone(),
        }];
        all.extend(self.other_users.iter().cloned());
        all
    }
}

/// Failure modes a test can switch on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// AMI listener closed (connection refused); the CLI still works.
    RefuseConnections,
    /// The CLI script exits 1 as when the daemon is down.
    CliDown,
    /// Every login answers `Authentication failed` and closes.
    RejectLogin,
    /// Reload commands behave as unknown commands (AMI `Response: Error`, CLI `No such command`).
    CommandError,
    /// AMI and CLI accept but do not answer actions for this long.
    Stall(Duration),
    /// AMI writes part of a reply to `Command` then closes the socket.
    DropMidReply,
    /// Endpoint, auth and aor objects with these ids fail to be created at every PJSIP
    /// load (boot and reload) while the fault is set, as when `ast_sorcery_objectset_apply`
    /// fails in res_sorcery_config.c `sorcery_config_internal_load`: the ERROR `Could not
    /// create an object of type ...` line, then the object the previous load held is
    /// retained (NOTICE `Retaining existing configuration ...`, F-CFG-4) and one it did not
    /// hold is absent. A boot (`restart`) holds nothing before it, so there the object is
    /// lost: the way a test has Asterisk lose an unchanged object behind the portal's back.
    RefuseObjects(Vec<String>),
    /// One-shot: the next load that reads the file named by the tamper changes it on disk
    /// first (what happens on disk between the portal's write and Asterisk's read); the
    /// fault is then removed, so the load after reads whatever is on disk then.
    TamperBeforeLoad(Tamper),
    /// Originate is accepted but no call (and no AGI connection) is ever made.
    NeverCallBack,
    /// During an AGI session, once N commands were answered the channel hangs up: the
    /// next command line gets `HANGUP\n` instead of a reply and the socket is closed
    /// (`HangupMidProbe(0)`: the first command already gets it).
    HangupMidProbe(usize),
}

/// A change made on disk to a config file right before a load reads it
/// ([`Fault::TamperBeforeLoad`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tamper {
    /// The file name (no folder) of a file a load reads: `generated_endpoints.conf` of the
    /// pjsip include folder is read by every PJSIP load, `generated_routing.conf` of the
    /// dialplan include folder by every dialplan load; `pjsip.conf` and `extensions.conf`
    /// name the main files.
    pub file: String,
    pub kind: TamperKind,
}

/// What [`Tamper`] does to its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TamperKind {
    /// Inserts `text` as a line (a newline is added) at the line start nearest the middle
    /// of the file's bytes (the earlier one on a tie; the file's start counts, its end only
    /// after a final newline). An unclosed `[broken` there is a parse error mid-file
    /// (F-CFG-3).
    InsertMidFile { text: String },
    /// Cuts the file at half its byte length (rounded down), generally mid-line.
    Truncate,
    /// Writes back the bytes the previous load of the same kind (PJSIP or dialplan) read
    /// for that file: the reload reads the old file. If that load did not read it, the
    /// file is removed, so this load does not read it either.
    RestorePrevious,
}

impl Tamper {
    pub fn insert_mid_file(file: &str, text: &str) -> Tamper {
        Tamper {
            file: file.into(),
            kind: TamperKind::InsertMidFile { text: text.into() },
        }
    }

    pub fn truncate(file: &str) -> Tamper {
        Tamper {
            file: file.into(),
            kind: TamperKind::Truncate,
        }
    }

    pub fn restore_previous(file: &str) -> Tamper {
        Tamper {
            file: file.into(),
            kind: TamperKind::RestorePrevious,
        }
    }

    /// The bytes the file holds after the tamper (None: it is removed), given its bytes
    /// now and the bytes the previous load read (None: it did not read the file).
    fn apply(&self, now: &[u8], previous: Option<&[u8]>) -> Option<Vec<u8>> {
        match &self.kind {
            TamperKind::InsertMidFile { text } => {
                let middle = now.len() / 2;
                let starts = std::iter::once(0).chain(
                    now.iter()
                        .enumerate()
                        .filter(|(_, b)| **b == b'\n')
                        .map(|(i, _)| i + 1),
                );
                let at = starts.min_by_key(|p| (p.abs_diff(middle), *p)).unwrap_or(0);
                let mut out = now[..at].to_vec();
                out.extend_from_slice(text.as_bytes());
                out.push(b'\n');
                out.extend_from_slice(&now[at..]);
                Some(out)
            }
            TamperKind::Truncate => Some(now[..now.len() / 2].to_vec()),
            TamperKind::RestorePrevious => previous.map(<[u8]>::to_vec),
        }
    }
}

/// The main config file of a load, which names its kind (PJSIP or dialplan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LoadKind {
    Pjsip,
    Dialplan,
}

/// A wall-clock instant with its monotonic twin: AMI and the CLI print the first
/// (`CoreStartupTime`) and count durations with the second (`Uptime`).
#[derive(Debug, Clone, Copy)]
pub struct Moment {
    pub mono: Instant,
    pub wall: SystemTime,
}

impl Moment {
    pub fn now() -> Moment {
        Moment {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// What reloads cost on a real Asterisk 22.7, charged by the stand-in when
/// [`Options::reload_costs`] is on.
///
/// Measured with N users (an endpoint, auth and aor each, one dialplan extension each), a
/// bare `module reload res_pjsip.so` plus `dialplan reload` took 207 ms at N = 1000 and
/// 806 ms at N = 3000; the lab measured `dialplan reload` at 21-26 ms for 1000 extensions
/// (README section 6). The dialplan reload is taken as linear, 22 µs per extension
/// loaded; the PJSIP reload as `a·S + b·S²` with S the endpoints loaded (the whole file
/// is re-read and every object rebuilt and compared, README section 6). With the dialplan
/// part taken off, `1000a + 10⁶b = 185 ms` and `3000a + 9·10⁶b = 740 ms`; three times the
/// first subtracted from the second gives `6·10⁶b = 185 ms`, so `b = 185/6 ns ≈ 30.83 ns`
/// and `a = (185 ms − 10⁶b)/1000 = 925/6 µs ≈ 154.17 µs`. (The lab's earlier timing over
/// `asterisk -rx`, 234-266 ms for the PJSIP reload alone at 1000 endpoints, README
/// section 6, is higher; the model follows the bare measurement of both reloads.)
pub mod reload_cost {
    use std::cell::Cell;
    use std::time::Duration;

    /// `dialplan reload`, per extension loaded.
    pub const PER_EXTENSION: Duration = Duration::from_micros(22);

    /// `module reload res_pjsip.so` with `endpoints` endpoints loaded: `(925000·S +
    /// 185·S²) / 6` ns.
    pub fn pjsip(endpoints: usize) -> Duration {
        let s = endpoints as u128;
        Duration::from_nanos(((925_000 * s + 185 * s * s) / 6) as u64)
    }

    /// `dialplan reload` with `extensions` extensions loaded.
    pub fn dialplan(extensions: usize) -> Duration {
        PER_EXTENSION * extensions as u32
    }

    thread_local! {
        /// What the loads of the running command cost. Loads are synchronous, so the
        /// command that ran them takes it on the same thread before it awaits anything.
        static OWED: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    }

    pub(crate) fn charge(d: Duration) {
        OWED.with(|o| o.set(o.get() + d));
    }

    /// What was charged on this thread since the last take.
    pub(crate) fn take() -> Duration {
        OWED.with(|o| o.replace(Duration::ZERO))
    }

    /// Waits what the command just run owes (before its reply is written).
    pub(crate) async fn pay() {
        let owed = take();
        if !owed.is_zero() {
            tokio::time::sleep(owed).await;
        }
    }
}

/// AMI permission classes (include/asterisk/manager.h) and their parsing (main/manager.c).
pub mod perm {
    pub const SYSTEM: u32 = 1 << 0;
    pub const CALL: u32 = 1 << 1;
    pub const LOG: u32 = 1 << 2;
    pub const VERBOSE: u32 = 1 << 3;
    pub const COMMAND: u32 = 1 << 4;
    pub const AGENT: u32 = 1 << 5;
    pub const USER: u32 = 1 << 6;
    pub const CONFIG: u32 = 1 << 7;
    pub const DTMF: u32 = 1 << 8;
    pub const REPORTING: u32 = 1 << 9;
    pub const CDR: u32 = 1 << 10;
    pub const DIALPLAN: u32 = 1 << 11;
    pub const ORIGINATE: u32 = 1 << 12;
    pub const AGI: u32 = 1 << 13;
    pub const CC: u32 = 1 << 15;
    pub const AOC: u32 = 1 << 16;
    pub const TEST: u32 = 1 << 17;
    pub const SECURITY: u32 = 1 << 18;
    pub const MESSAGE: u32 = 1 << 30;
    /// `INT_MAX`.
    pub const ALL: u32 = 0x7FFF_FFFF;

    /// `perms[]`, in its order (which is the order of `Privilege:` lists).
    pub const NAMES: &[(&str, u32)] = &[
        ("system", SYSTEM),
        ("call", CALL),
        ("log", LOG),
        ("verbose", VERBOSE),
        ("command", COMMAND),
        ("agent", AGENT),
        ("user", USER),
        ("config", CONFIG),
        ("dtmf", DTMF),
        ("reporting", REPORTING),
        ("cdr", CDR),
        ("dialplan", DIALPLAN),
        ("originate", ORIGINATE),
        ("agi", AGI),
        ("cc", CC),
        ("aoc", AOC),
        ("test", TEST),
        ("security", SECURITY),
        ("message", MESSAGE),
        ("all", ALL),
        ("none", 0),
    ];

    /// `ast_instring(big, small, ',')`: each comma separated piece is compared with
    /// `strncmp` over the piece's length, so a piece that is a prefix of `small`
    /// (including an empty one) matches; the last piece must be equal. Case matters and
    /// blanks are not trimmed.
    fn instring(big: &str, small: &str) -> bool {
        let (b, s) = (big.as_bytes(), small.as_bytes());
        let mut at = 0;
        loop {
            match b[at..].iter().position(|c| *c == b',') {
                Some(p) => {
                    if s.len() >= p && s[..p] == b[at..at + p] {
                        return true;
                    }
                    at += p + 1;
                    if at >= b.len() {
                        return false;
                    }
                }
                None => return &b[at..] == s,
            }
        }
    }

    /// `get_perm`: the classes named in a manager.conf `read=`/`write=` value.
    pub fn get_perm(instr: &str) -> u32 {
        NAMES
            .iter()
            .filter(|(label, _)| instring(instr, label))
            .fold(0, |m, (_, v)| m | v)
    }

    /// `get_perm` of the names joined with commas.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> u32 {
        let joined: Vec<&str> = names.iter().map(|n| n.as_ref()).collect();
        get_perm(&joined.join(","))
    }

    /// `authority_to_str` as used in `Privilege:` headers.
    pub fn privilege(class: u32) -> String {
        let mut parts: Vec<&str> = NAMES
            .iter()
            .filter(|(k, v)| *k != "all" && *v != 0 && class & v != 0)
            .map(|(k, _)| *k)
            .collect();
        parts.push("all");
        parts.join(",")
    }
}

/// An AMI event as published to every session.
#[derive(Debug, Clone)]
pub struct Event {
    /// Permission class (`perm::*`) that gates delivery.
    pub class: u32,
    /// The whole message, ending with the blank line.
    pub text: String,
}

/// The result codes of `ast_module_reload` (Event: Reload `Status:`) that the modules
/// of the stand-in can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    Success = 0,
    NotFound = 2,
    Error = 3,
    Uninitialized = 5,
}

/// What the "server" holds.
#[derive(Debug)]
pub(crate) struct State {
    pub sorcery: pjsip::Sorcery,
    /// Contacts (astdb), their statuses, qualify and endpoint states.
    pub registrar: registrar::Registrar,
    pub dialplan: dialplan::Dialplan,
    /// pbx_config loaded (false when extensions.conf was invalid at boot).
    pub pbx_config_running: bool,
    /// res_srtp.so loaded: without it every SDES call fails with 488 (F-TLS-1). True
    /// unless a test unloads it (`set_srtp_loaded`, `module unload res_srtp.so`); a
    /// restart keeps it as it is (an Asterisk built without libsrtp2 stays without).
    pub srtp_loaded: bool,
}

impl Default for State {
    fn default() -> Self {
        State {
            sorcery: pjsip::Sorcery::default(),
            registrar: registrar::Registrar::default(),
            dialplan: dialplan::Dialplan::default(),
            pbx_config_running: false,
            srtp_loaded: true,
        }
    }
}

pub(crate) struct Inner {
    pub opts: Options,
    pub etc_dir: PathBuf,
    pub script: PathBuf,
    pub state: Mutex<State>,
    pub faults: Mutex<Vec<Fault>>,
    pub log: Mutex<Vec<String>>,
    pub actions: Mutex<Vec<String>>,
    pub reloads: AtomicUsize,
    pub agi_sessions: AtomicUsize,
    /// Dialplan functions evaluated by AGI commands (what the probe cost Asterisk).
    pub agi_functions: AtomicUsize,
    /// Open AMI sessions, which every event is offered to.
    pub sessions: Mutex<Vec<SessionHandle>>,
    /// This Inner, for the tasks it spawns.
    pub me: OnceLock<Weak<Inner>>,
    pub ami_addr: SocketAddr,
    pub cli_addr: SocketAddr,
    pub ami_task: Mutex<Option<JoinHandle<()>>>,
    pub cli_task: Mutex<Option<JoinHandle<()>>>,
    /// Every other task (sessions, calls), aborted by `stop`.
    pub tasks: Mutex<Vec<JoinHandle<()>>>,
    pub running: AtomicBool,
    /// `ast_startuptime`: when the stand-in (re)started.
    pub started: Mutex<Moment>,
    /// `ast_lastreloadtime`: the start, then the start of every `ast_module_reload`.
    pub last_reload: Mutex<Moment>,
    /// The files each kind of load read the last time, with their bytes
    /// ([`TamperKind::RestorePrevious`]).
    pub read_files: Mutex<BTreeMap<LoadKind, BTreeMap<PathBuf, Vec<u8>>>>,
    /// `ast_active_channels()`: channels alive now.
    pub active_channels: AtomicU32,
    /// `ast_processed_calls()`: pbx runs started since the start.
    pub processed_calls: AtomicU32,
    /// Every wait charged for reloads ([`Options::reload_costs`]).
    pub reload_time_charged: Mutex<Duration>,
    pub local_seq: AtomicU32,
    pub uniqueid_seq: AtomicU64,
    pub runtime: tokio::runtime::Handle,
}

/// An AMI session as the event fan-out sees it.
pub(crate) struct SessionHandle {
    pub session: Weak<ami::Session>,
    /// Its reader task.
    pub reader: AbortHandle,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub fn log_line(&self, line: impl Into<String>) {
        lock(&self.log).push(line.into());
    }

    pub fn log_lines(&self, lines: Vec<String>) {
        if !lines.is_empty() {
            lock(&self.log).extend(lines);
        }
    }

    pub fn record_action(&self, a: impl Into<String>) {
        lock(&self.actions).push(a.into());
    }

    pub fn has_fault(&self, f: &Fault) -> bool {
        lock(&self.faults).iter().any(|x| x == f)
    }

    pub fn stall(&self) -> Option<Duration> {
        lock(&self.faults).iter().find_map(|f| match f {
            Fault::Stall(d) => Some(*d),
            _ => None,
        })
    }

    pub fn hangup_mid_probe(&self) -> Option<usize> {
        lock(&self.faults).iter().find_map(|f| match f {
            Fault::HangupMidProbe(n) => Some(*n),
            _ => None,
        })
    }

    /// The ids of [`Fault::RefuseObjects`].
    pub fn refused_ids(&self) -> Vec<String> {
        lock(&self.faults)
            .iter()
            .flat_map(|f| match f {
                Fault::RefuseObjects(ids) => ids.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    /// Reads a config file for a load of `kind`: first applies (and removes) a pending
    /// [`Fault::TamperBeforeLoad`] naming the file, then records the bytes read.
    fn read_config(
        &self,
        kind: LoadKind,
        read: &mut BTreeMap<PathBuf, Vec<u8>>,
        path: &Path,
    ) -> std::io::Result<Vec<u8>> {
        let name = path.file_name().map(|n| n.to_string_lossy().to_string());
        let tamper = {
            let mut faults = lock(&self.faults);
            let at = faults.iter().position(
                |f| matches!(f, Fault::TamperBeforeLoad(t) if Some(&t.file) == name.as_ref()),
            );
            at.map(|i| faults.remove(i))
        };
        if let Some(Fault::TamperBeforeLoad(t)) = tamper {
            let now = std::fs::read(path)?;
            let previous = lock(&self.read_files)
                .get(&kind)
                .and_then(|files| files.get(path).cloned());
            match t.apply(&now, previous.as_deref()) {
                Some(bytes) => std::fs::write(path, bytes)?,
                None => std::fs::remove_file(path)?,
            }
        }
        let bytes = std::fs::read(path)?;
        read.insert(path.to_path_buf(), bytes.clone());
        Ok(bytes)
    }

    /// Runs `load` with the reader of [`Self::read_config`], then keeps what it read as
    /// the previous load of `kind`.
    fn with_reader<T>(
        &self,
        kind: LoadKind,
        load: impl FnOnce(&mut dyn FnMut(&Path) -> std::io::Result<Vec<u8>>) -> T,
    ) -> T {
        let mut read = BTreeMap::new();
        let res = load(&mut |path: &Path| self.read_config(kind, &mut read, path));
        lock(&self.read_files).insert(kind, read);
        res
    }

    /// Offers an event to every open AMI session (manager.c's event queue): a session
    /// writes it at once between messages, or after the response of the action it is
    /// running, if its read permissions and event mask allow.
    pub fn publish(&self, class: u32, text: String) {
        let ev = Arc::new(Event { class, text });
        let mut sessions = lock(&self.sessions);
        sessions.retain(|h| h.session.strong_count() > 0);
        for h in sessions.iter() {
            if let Some(s) = h.session.upgrade() {
                s.deliver(&ev);
            }
        }
    }

    /// This Inner as an Arc (set right after it was made).
    pub fn me(&self) -> Arc<Inner> {
        self.me
            .get()
            .and_then(Weak::upgrade)
            .expect("Inner is alive while it runs")
    }

    /// Closes every AMI session (the writer flushes what was queued, then the socket
    /// is shut down).
    pub fn close_sessions(&self) {
        let all: Vec<SessionHandle> = std::mem::take(&mut *lock(&self.sessions));
        for h in all {
            if let Some(s) = h.session.upgrade() {
                s.close_now();
            }
            h.reader.abort();
        }
    }

    /// Spawns a task that `stop` aborts.
    pub fn spawn<F>(&self, fut: F) -> tokio::task::AbortHandle
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let h = self.runtime.spawn(fut);
        let abort = h.abort_handle();
        let mut tasks = lock(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(h);
        abort
    }

    pub fn uptime(&self) -> Duration {
        lock(&self.started).mono.elapsed()
    }

    pub fn started_at(&self) -> Moment {
        *lock(&self.started)
    }

    pub fn last_reload_at(&self) -> Moment {
        *lock(&self.last_reload)
    }

    pub fn since_reload(&self) -> Duration {
        lock(&self.last_reload).mono.elapsed()
    }

    /// `<epoch>.<n>` like ast_channel uniqueids.
    pub fn next_uniqueid(&self) -> String {
        let n = self.uniqueid_seq.fetch_add(1, Ordering::SeqCst);
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("{secs}.{n}")
    }

    /// Loads pjsip.conf into the live objects (res_pjsip load/reload) and brings the
    /// qualify and endpoint states in line; returns the events that causes, unpublished.
    pub fn load_pjsip(&self, boot: bool) -> registrar::Batch {
        let refused = self.refused_ids();
        let mut log = Vec::new();
        let old = self.state().sorcery.clone();
        let began = Instant::now();
        let new = self.with_reader(LoadKind::Pjsip, |read| {
            pjsip::load(&self.etc_dir, &old, &refused, boot, read, &mut log)
        });
        if !boot {
            self.charge_reload(reload_cost::pjsip(new.count("endpoint")), began);
        }
        let mut st = self.state();
        st.sorcery = new;
        let mut batch = registrar::Batch::new(st.registrar.order);
        self.synchronize(&mut st, &mut batch);
        drop(st);
        self.log_lines(log);
        if !boot {
            self.reloads.fetch_add(1, Ordering::SeqCst);
        }
        batch
    }

    /// pbx_load_module: true when the dialplan was (re)built.
    pub fn load_dialplan(&self, boot: bool) -> bool {
        let mut log = Vec::new();
        let began = Instant::now();
        let res = self.with_reader(LoadKind::Dialplan, |read| {
            dialplan::load(&self.etc_dir, read, &mut log)
        });
        self.log_lines(log);
        if !boot {
            self.reloads.fetch_add(1, Ordering::SeqCst);
        }
        match res {
            dialplan::LoadResult::Ok(dp) => {
                if !boot {
                    self.charge_reload(reload_cost::dialplan(dp.extension_count()), began);
                }
                let mut st = self.state();
                st.dialplan = dp;
                st.pbx_config_running = true;
                true
            }
            dialplan::LoadResult::Failed => {
                if boot {
                    self.log_line("ERROR loader.c: pbx_config declined to load.");
                }
                false
            }
        }
    }

    /// Charges what a reload that `began` then costs on a real Asterisk (with
    /// [`Options::reload_costs`]): the stand-in's own work counts towards it, so the
    /// command waits only what remains and answers after the modelled time (or its own,
    /// when that is longer).
    fn charge_reload(&self, cost: Duration, began: Instant) {
        if self.opts.reload_costs {
            let owed = cost.saturating_sub(began.elapsed());
            *lock(&self.reload_time_charged) += owed;
            reload_cost::charge(owed);
        }
    }

    /// `ast_module_reload(name)`, including the `Event: Reload` it publishes.
    pub fn module_reload(&self, name: Option<&str>) -> ReloadResult {
        // loader.c ast_module_reload sets ast_lastreloadtime before it looks the module up.
        *lock(&self.last_reload) = Moment::now();
        let mut batch = registrar::Batch::new(self.state().registrar.order);
        let res = match name {
            None => {
                batch = self.load_pjsip(false);
                if self.state().pbx_config_running {
                    self.load_dialplan(false);
                }
                ReloadResult::Success
            }
            Some(n) => {
                let base = n.strip_suffix(".so").unwrap_or(n);
                if base.eq_ignore_ascii_case("res_pjsip") {
                    batch = self.load_pjsip(false);
                    ReloadResult::Success
                } else if base.eq_ignore_ascii_case("pbx_config") {
                    if !self.state().pbx_config_running {
                        ReloadResult::Uninitialized
                    } else if self.load_dialplan(false) {
                        ReloadResult::Success
                    } else {
                        ReloadResult::Error
                    }
                } else {
                    ReloadResult::NotFound
                }
            }
        };
        // The endpoint state changes of the reload come first (F-REG-24).
        batch.push(
            perm::SYSTEM,
            format!(
                "Event: Reload\r\nPrivilege: {}\r\nModule: {}\r\nStatus: {}\r\n\r\n",
                perm::privilege(perm::SYSTEM),
                name.unwrap_or("All"),
                res as i32
            ),
        );
        self.publish_batch(batch);
        res
    }

    /// A (re)start: everything from the files, except astdb, where the contacts stay
    /// (prune_on_boot = no).
    fn boot(&self) {
        let now = Moment::now();
        *lock(&self.started) = now;
        // asterisk.c sets ast_lastreloadtime = ast_startuptime at the start.
        *lock(&self.last_reload) = now;
        self.active_channels.store(0, Ordering::SeqCst);
        self.processed_calls.store(0, Ordering::SeqCst);
        {
            let mut st = self.state();
            st.sorcery = pjsip::Sorcery::default();
            st.dialplan = dialplan::Dialplan::default();
            st.pbx_config_running = false;
            st.registrar.cancel_all();
            st.registrar = st.registrar.after_restart();
        }
        // No session is open yet: what booting publishes reaches nobody.
        let boot_events = self.load_pjsip(true);
        self.publish_batch(boot_events);
        self.load_dialplan(true);
        self.spawn(registrar::expiration_loop(self.me()));
    }

    /// Binds `addr` again (after a refusal or a stop), retrying briefly if the port is
    /// momentarily taken.
    fn rebind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
        let mut last = None;
        for _ in 0..50 {
            match std::net::TcpListener::bind(addr) {
                Ok(l) => return Ok(l),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("bind failed")))
    }

    /// Serves `serve` on `std_l` (or on a fresh bind of `addr`) in place of the task in
    /// `slot`.
    fn listen<F, Fut>(
        self: &Arc<Self>,
        addr: SocketAddr,
        std_l: Option<std::net::TcpListener>,
        slot: &Mutex<Option<JoinHandle<()>>>,
        serve: F,
    ) -> std::io::Result<()>
    where
        F: FnOnce(Arc<Inner>, tokio::net::TcpListener) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let _guard = self.runtime.enter();
        let std_l = match std_l {
            Some(l) => l,
            None => Self::rebind(addr)?,
        };
        std_l.set_nonblocking(true)?;
        let l = tokio::net::TcpListener::from_std(std_l)?;
        let h = self.runtime.spawn(serve(self.clone(), l));
        if let Some(old) = lock(slot).replace(h) {
            old.abort();
        }
        Ok(())
    }

    fn listen_ami(self: &Arc<Self>, std_l: Option<std::net::TcpListener>) -> std::io::Result<()> {
        self.listen(self.ami_addr, std_l, &self.ami_task, ami::serve)
    }

    fn listen_cli(self: &Arc<Self>, std_l: Option<std::net::TcpListener>) -> std::io::Result<()> {
        self.listen(self.cli_addr, std_l, &self.cli_task, cli::serve)
    }

    /// Stops serving the listener of `slot` (its port is then refused).
    fn close(slot: &Mutex<Option<JoinHandle<()>>>) {
        if let Some(h) = lock(slot).take() {
            h.abort();
        }
    }
}

/// The running stand-in. Cheap to clone (shares one server).
#[derive(Clone)]
pub struct FakeAsterisk {
    inner: Arc<Inner>,
}

/// The lab's pjsip.conf (README section 3) with the include pointing at `pjsip_dir`.
/// A certificate and key for a TLS transport of the stand-in, in `dir`: placeholders,
/// since Asterisk's loader only needs them to exist and `check` reads a byte of each.
pub fn placeholder_tls_files(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("asterisk.crt"), dir.join("asterisk.key"));
    for (path, kind) in [(&cert, "CERTIFICATE"), (&key, "PRIVATE KEY")] {
        let pem = format!("-----BEGIN {kind}-----\nplaceholder\n-----END {kind}-----\n");
        std::fs::write(path, pem).expect("a placeholder PEM file");
    }
    (cert, key)
}

/// Writes into `etc` the lab's pjsip.conf with a TLS transport besides UDP and TCP:
/// `transport-tls` on 5061 with placeholder PEM files under `etc/keys` (the stand-in never
/// opens them; `pbx-portal check` only reads them). Written before the stand-in starts,
/// which keeps a pjsip.conf it finds; its include names `pjsip_dir`.
pub fn write_tls_lab_pjsip_conf(etc: &Path, pjsip_dir: &Path) {
    std::fs::create_dir_all(etc.join("keys")).expect("a folder for the keys");
    let (cert, key) = placeholder_tls_files(&etc.join("keys"));
    let tls = format!(
        "\n[transport-tls]\ntype = transport\nprotocol = tls\nbind = 127.0.0.1:5061\ncert_file = {}\npriv_key_file = {}\nmethod = tlsv1_2\n\n#tryinclude",
        cert.display(),
        key.display()
    );
    let conf = lab_pjsip_conf(pjsip_dir).replace("\n#tryinclude", &tls);
    std::fs::write(etc.join("pjsip.conf"), conf).expect("pjsip.conf written");
}

pub fn lab_pjsip_conf(pjsip_dir: &Path) -> String {
    format!(
        "; Synergy lab pjsip.conf (loopback only)\n[global]\ntype = global\nuser_agent = Asterisk-Lab\n\n[transport-udp]\ntype = transport\nprotocol = udp\nbind = 127.0.0.1:5060\n\n[transport-tcp]\ntype = transport\nprotocol = tcp\nbind = 127.0.0.1:5060\n\n#tryinclude {}/*.conf\n",
        pjsip_dir.display()
    )
}

/// The lab's extensions.conf (README section 3) with the include pointing at `dialplan_dir`.
pub fn lab_extensions_conf(dialplan_dir: &Path) -> String {
    format!(
        "[general]\nstatic = yes\nwriteprotect = yes\nclearglobalvars = no\n\n[globals]\n\n[synergy-internal]\n\n[synergy-health]\nexten => check,1,AGI(agi://127.0.0.1:4573/health?token=abc)\n same => n,Hangup()\n\n; variant that answers first so a synchronous AMI Originate reports Success\n[synergy-health-answered]\nexten => check,1,Answer()\n same => n,AGI(agi://127.0.0.1:4573/health?token=abc)\n same => n,Hangup()\n\n; probe: FastAGI server not listening (nothing on 127.0.0.1:4599)\n[synergy-health-down]\nexten => check,1,AGI(agi://127.0.0.1:4599/health)\n same => n,Verbose(1,AGISTATUS=${{AGISTATUS}})\n same => n,Hangup()\n\n#tryinclude {}/*.conf\n",
        dialplan_dir.display()
    )
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

impl FakeAsterisk {
    /// Writes pjsip.conf / extensions.conf into `etc_dir` (if absent) with the lab's
    /// content and `#tryinclude <dir>/*.conf` lines, binds AMI and the CLI control socket
    /// on 127.0.0.1:0 and boots (initial load).
    pub async fn start(
        etc_dir: &Path,
        pjsip_dir: &Path,
        dialplan_dir: &Path,
        opts: Options,
    ) -> std::io::Result<FakeAsterisk> {
        let etc_dir = absolute(etc_dir);
        let pjsip_dir = absolute(pjsip_dir);
        let dialplan_dir = absolute(dialplan_dir);
        std::fs::create_dir_all(&etc_dir)?;
        let pjsip_conf = etc_dir.join("pjsip.conf");
        if !pjsip_conf.exists() {
            std::fs::write(&pjsip_conf, lab_pjsip_conf(&pjsip_dir))?;
        }
        let ext_conf = etc_dir.join("extensions.conf");
        if !ext_conf.exists() {
            std::fs::write(&ext_conf, lab_extensions_conf(&dialplan_dir))?;
        }
        let ami_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let ami_addr = ami_listener.local_addr()?;
        let cli_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let cli_addr = cli_listener.local_addr()?;
        let script = etc_dir.join("asterisk");
        cli::write_script(&script, cli_addr)?;
        let inner = Arc::new(Inner {
            opts,
            etc_dir,
            script,
            state: Mutex::new(State::default()),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            actions: Mutex::new(Vec::new()),
            reloads: AtomicUsize::new(0),
            agi_sessions: AtomicUsize::new(0),
            agi_functions: AtomicUsize::new(0),
            sessions: Mutex::new(Vec::new()),
            me: OnceLock::new(),
            ami_addr,
            cli_addr,
            ami_task: Mutex::new(None),
            cli_task: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            running: AtomicBool::new(true),
            started: Mutex::new(Moment::now()),
            last_reload: Mutex::new(Moment::now()),
            read_files: Mutex::new(BTreeMap::new()),
            active_channels: AtomicU32::new(0),
            processed_calls: AtomicU32::new(0),
            reload_time_charged: Mutex::new(Duration::ZERO),
            local_seq: AtomicU32::new(0),
            uniqueid_seq: AtomicU64::new(0),
            runtime: tokio::runtime::Handle::current(),
        });
        let _ = inner.me.set(Arc::downgrade(&inner));
        inner.boot();
        inner.listen_ami(Some(ami_listener))?;
        inner.listen_cli(Some(cli_listener))?;
        Ok(FakeAsterisk { inner })
    }

    pub fn ami_addr(&self) -> SocketAddr {
        self.inner.ami_addr
    }

    /// An executable script that behaves like `asterisk -rx "<cmd>"`.
    pub fn cli_path(&self) -> PathBuf {
        self.inner.script.clone()
    }

    pub fn set_fault(&self, f: Fault) {
        if f == Fault::RefuseConnections {
            Inner::close(&self.inner.ami_task);
        }
        lock(&self.inner.faults).push(f);
    }

    pub fn clear_faults(&self) {
        let had_refuse = self.inner.has_fault(&Fault::RefuseConnections);
        lock(&self.inner.faults).clear();
        if had_refuse && self.inner.running.load(Ordering::SeqCst) {
            if let Err(e) = self.inner.listen_ami(None) {
                self.inner.log_line(format!(
                    "ERROR manager.c: stand-in could not re-bind AMI: {e}"
                ));
            }
        }
    }

    /// Live PJSIP endpoints: id -> configured options.
    pub fn endpoints(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.inner.state().sorcery.options_of("endpoint")
    }

    pub fn auths(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.inner.state().sorcery.options_of("auth")
    }

    pub fn aors(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.inner.state().sorcery.options_of("aor")
    }

    /// Live objects of any sorcery type (transport, global, identify, ...).
    pub fn objects(&self, otype: &str) -> BTreeMap<String, BTreeMap<String, String>> {
        self.inner.state().sorcery.options_of(otype)
    }

    /// The printed value `PJSIP_ENDPOINT()`/`PJSIP_AOR()` would give for a live object.
    pub fn field(&self, otype: &str, id: &str, field: &str) -> Option<String> {
        self.inner
            .state()
            .sorcery
            .get(otype, id)
            .and_then(|o| o.field(field))
    }

    /// Extensions of a live context (None if the context does not exist).
    pub fn dialplan(&self, context: &str) -> Option<BTreeSet<String>> {
        self.inner.state().dialplan.extension_names(context)
    }

    /// Whether pbx_config is loaded (it declines at boot when extensions.conf is invalid).
    pub fn pbx_config_running(&self) -> bool {
        self.inner.state().pbx_config_running
    }

    /// WARNING/ERROR/NOTICE lines (and a few VERBOSE ones) as `LEVEL file.c: message`.
    pub fn log(&self) -> Vec<String> {
        lock(&self.inner.log).clone()
    }

    pub fn clear_log(&self) {
        lock(&self.inner.log).clear();
    }

    /// Every AMI action / CLI command received ("AMI Command: <cmd>", "AMI Reload: <module>",
    /// "AMI Originate: <channel>", "AMI <Action>", "CLI <cmd>").
    pub fn actions(&self) -> Vec<String> {
        lock(&self.inner.actions).clone()
    }

    /// Module reloads performed (res_pjsip and pbx_config count separately).
    pub fn reloads(&self) -> usize {
        self.inner.reloads.load(Ordering::SeqCst)
    }

    /// What reloads waited in all, beyond the stand-in's own work, to take the time a
    /// real Asterisk takes ([`Options::reload_costs`]; zero without it).
    pub fn reload_time_charged(&self) -> Duration {
        *lock(&self.inner.reload_time_charged)
    }

    /// Local channels created by Originate (the count is up to date when the reply to the
    /// Originate is sent).
    pub fn calls(&self) -> u32 {
        self.inner.local_seq.load(Ordering::SeqCst)
    }

    /// FastAGI connections made.
    pub fn agi_sessions(&self) -> usize {
        self.inner.agi_sessions.load(Ordering::SeqCst)
    }

    /// Dialplan functions AGI commands have evaluated so far.
    pub fn agi_functions(&self) -> usize {
        self.inner.agi_functions.load(Ordering::SeqCst)
    }

    /// Runs a CLI command in-process, as `asterisk -rx` would print it. It answers at
    /// once: a reload's cost ([`Options::reload_costs`]) is charged on the protocol
    /// paths only (the CLI script, AMI), since this call cannot wait without blocking
    /// the test's runtime.
    pub fn cli(&self, command: &str) -> String {
        let out = cli::execute(&self.inner, command).output;
        let unpaid = reload_cost::take();
        *lock(&self.inner.reload_time_charged) -= unpaid;
        out
    }

    /// A phone registers: a REGISTER from `source` whose Contact is `uri`, with a
    /// User-Agent header (none if empty) and `Expires: <secs>` (zero unregisters). The
    /// AOR must be one of an endpoint's in the loaded config; Asterisk's answer to a
    /// refused REGISTER is the error (403/404). The Call-ID is `<aor>-<port>@<ip>`.
    pub fn register(
        &self,
        aor: &str,
        uri: &str,
        user_agent: &str,
        source: SocketAddr,
        expires: Duration,
    ) -> Result<(), RegisterError> {
        let mut r = Registration::new(aor, uri, source);
        r.user_agent = user_agent.into();
        r.expires = Some(expires);
        self.register_with(&r)
    }

    /// A REGISTER with every detail chosen (no Expires header, a given Call-ID, a phone
    /// behind a NAT: `Registration::behind_nat`).
    pub fn register_with(&self, r: &Registration) -> Result<(), RegisterError> {
        self.inner.register(r).map(|_| ())
    }

    /// A REGISTER, and where Asterisk sent its 200 OK (`registrar::response_addr`: the
    /// phone gets it only when that is `r.source`).
    pub fn register_reply_to(&self, r: &Registration) -> Result<SocketAddr, RegisterError> {
        self.inner.register(r)
    }

    /// The phone unregisters `uri` (the same Contact with `Expires: 0`), sending from the
    /// address its URI names (127.0.0.1:5060 when it names none that is an IP), so that
    /// an endpoint with `rewrite_contact` finds the same contact.
    pub fn unregister(&self, aor: &str, uri: &str) -> Result<(), RegisterError> {
        let from = registrar::uri_target(uri).unwrap_or(SocketAddr::from(([127, 0, 0, 1], 5060)));
        let mut r = Registration::new(aor, uri, from);
        r.expires = Some(Duration::ZERO);
        self.register_with(&r)
    }

    /// A phone registered to `from_endpoint` dials `dialed`: the call as Asterisk would
    /// set it up or refuse it (`call` module).
    pub fn call(&self, from_endpoint: &str, dialed: &str, offer: &Offer) -> CallOutcome {
        call::call(&self.inner, from_endpoint, dialed, offer)
    }

    /// Loads or unloads res_srtp.so (State::srtp_loaded).
    pub fn set_srtp_loaded(&self, loaded: bool) {
        self.inner.state().srtp_loaded = loaded;
    }

    /// Whether the phone behind `aor`/`uri` (the contact's URI as Asterisk stores it,
    /// rewritten with `rewrite_contact`) answers the qualify OPTIONS that reach it, and
    /// after how long: its RoundtripUsec (None: it stays silent, the default; an answer slower
    /// than qualify_timeout is none). It applies to the OPTIONS sent from now on, so a
    /// change shows within one qualify_frequency (F-QUAL-7/9), and it survives
    /// re-registrations and restarts.
    pub fn answer_qualify(&self, aor: &str, uri: &str, rtt: Option<Duration>) {
        self.inner.state().registrar.set_phone(aor, uri, rtt);
    }

    /// The contacts Asterisk holds (astdb, orphans included), by id, with the status
    /// PJSIPShowContacts gives them.
    pub fn contacts(&self) -> Vec<ContactInfo> {
        self.inner.state().registrar.peek()
    }

    /// Where DeviceStateChange goes among the events of an endpoint state change.
    pub fn set_device_state_order(&self, order: DeviceStateOrder) {
        self.inner.state().registrar.order = order;
    }

    /// Closes every open AMI session at once, as an Asterisk restart does; the listener
    /// stays, so clients can log in again at once.
    pub fn restart_ami(&self) {
        self.inner.close_sessions();
    }

    /// Stops listening on AMI and CLI and drops every connection and call (Asterisk down).
    pub async fn stop(&self) {
        self.inner.running.store(false, Ordering::SeqCst);
        Inner::close(&self.inner.ami_task);
        Inner::close(&self.inner.cli_task);
        self.inner.close_sessions();
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.inner.tasks));
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        tokio::task::yield_now().await;
    }

    /// Starts again on the same ports after `stop`: a fresh boot from the files. The
    /// contacts in astdb stay (prune_on_boot = no); their statuses start over.
    pub async fn restart(&self) -> std::io::Result<()> {
        self.stop().await;
        self.inner.boot();
        self.inner.running.store(true, Ordering::SeqCst);
        self.inner.listen_cli(None)?;
        if !self.inner.has_fault(&Fault::RefuseConnections) {
            self.inner.listen_ami(None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privilege_strings() {
        assert_eq!(perm::privilege(perm::SYSTEM), "system,all");
        assert_eq!(perm::privilege(perm::CALL), "call,all");
        assert_eq!(
            perm::parse_list(&["command,config", "originate"]),
            perm::COMMAND | perm::CONFIG | perm::ORIGINATE
        );
    }

    #[test]
    fn get_perm_as_manager_c_parses() {
        use perm::*;
        assert_eq!(get_perm("system,call"), SYSTEM | CALL);
        // Pieces are compared over their own length: a blank after the comma spoils
        // the piece, a prefix matches, an empty piece matches every class.
        assert_eq!(get_perm("system, call"), SYSTEM);
        assert_eq!(get_perm("sys,"), SYSTEM);
        assert_eq!(get_perm("System"), 0);
        assert_eq!(get_perm("system,,x"), ALL);
        assert_eq!(get_perm("all"), ALL);
        assert_eq!(get_perm(""), 0);
    }

    #[test]
    fn tamper_edits() {
        let mid = |now: &str| {
            let out = Tamper::insert_mid_file("f", "X").apply(now.as_bytes(), None);
            String::from_utf8(out.unwrap()).unwrap()
        };
        // Line starts 0, 2 and 6 of 8 bytes: 2 and 6 are as near to 4; the earlier wins.
        assert_eq!(mid("a\nbcd\nef"), "a\nX\nbcd\nef");
        assert_eq!(mid("ab\ncd\nef\n"), "ab\nX\ncd\nef\n");
        // The end is a line start only after a final newline.
        assert_eq!(mid("abcdef"), "X\nabcdef");
        assert_eq!(mid(""), "X\n");
        let cut = Tamper::truncate("f").apply(b"abcde", None).unwrap();
        assert_eq!(cut, b"ab");
        let back = Tamper::restore_previous("f");
        assert_eq!(back.apply(b"new", Some(b"old")), Some(b"old".to_vec()));
        assert_eq!(back.apply(b"new", None), None);
    }
}
