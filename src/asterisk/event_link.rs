//! The registration link: an AMI connection of its own (the reload link stays
//! short-lived and eventless) that keeps [`Registrations`] live.
//!
//! It logs in with `Events: system` (ContactStatus, PeerStatus, Reload, FullyBooted:
//! F-REG-28), takes a snapshot of every contact (`PJSIPShowContacts`, which needs the
//! `system` write class: F-REG-27) when it connects, after every apply, whenever an event
//! names a contact it does not know, after a `Reload`/`FullyBooted`, and every
//! [`RESYNC`] (a refresh fires no event, F-REG-17, so expiry times come only from
//! snapshots; the periodic snapshot also proves the connection alive). Events are read
//! between whole messages and may arrive between an action and its response (F-REG-26):
//! the list is matched by ActionID, and events read while a list is coming are applied
//! after it. When the link is down the view is not live and every registration reads
//! `unknown`; it reconnects with exponential backoff, capped, forever, and never makes
//! `serve` fail or wait.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{timeout, Instant};

use super::ami::{encode, Connection, Message};
use super::contacts::{Contact, Line, Registration, StatusEvent, Summary, View};
use crate::backoff::Backoff;
use crate::config::{AmiSettings, ReloadMode};
use crate::events::{Audience, Hub};
use crate::shutdown::Shutdown;

/// How often a live link takes a fresh snapshot.
pub const RESYNC: Duration = Duration::from_secs(60);
/// How long after an event naming an unknown contact the snapshot is taken: a burst of
/// registrations costs one snapshot.
const SETTLE: Duration = Duration::from_millis(200);
/// The pauses between reconnects: 0.5 s doubling up to 30 s.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Ami(#[from] super::ami::AmiError),
    #[error("AMI login failed (check PORTAL_AMI_USERNAME / PORTAL_AMI_SECRET and manager.conf)")]
    LoginFailed,
    #[error("PJSIPShowContacts refused: {0} (manager.conf: the portal user needs write = system)")]
    ListRefused(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("no system events after login (manager.conf: the portal user needs read = system)")]
    NoEvents,
}

/// Logs in as the link does and waits for the `FullyBooted` that Asterisk sends at once
/// to a session whose read classes include `system` (F-REG-2): what `check` reports.
pub async fn receives_system_events(settings: &AmiSettings) -> Result<(), LinkError> {
    let regs = Registrations::default();
    let mut session = Session {
        settings,
        regs: &regs,
        next_id: 0,
        synced: false,
    };
    let mut conn = session.connect().await?;
    let booted = session
        .bounded(async {
            loop {
                if conn.read_message().await?.get("Event") == Some("FullyBooted") {
                    return Ok(());
                }
            }
        })
        .await;
    let _ = conn
        .write(&encode("Logoff", Some("portal-events-check"), &[])?)
        .await;
    booted.map_err(|e| match e {
        LinkError::Timeout(_) => LinkError::NoEvents,
        e => e,
    })
}

/// A registration that changed, as `GET /events` sends it: the extension as before
/// tenants, and whose it is (`tenant`, and the `sip_username` its phones register as,
/// which is unique on the host).
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub extension: u32,
    pub tenant: String,
    pub sip_username: String,
    #[serde(flatten)]
    pub registration: Registration,
}

/// The shared live view of registrations, and the link's controls.
#[derive(Default)]
pub struct Registrations {
    view: Mutex<View>,
    resync: Notify,
    /// Why the link is not live, when it is not.
    down_because: Mutex<Option<String>>,
    hub: Hub,
}

impl Registrations {
    pub fn new(hub: Hub) -> Self {
        Self {
            hub,
            ..Self::default()
        }
    }

    fn view(&self) -> MutexGuard<'_, View> {
        // Every change to the view is one call: it stays consistent if a holder panicked.
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The registration of one tenant's extension.
    pub fn registration(&self, tenant: &str, extension: u32) -> Registration {
        self.view().registration(tenant, extension)
    }

    /// The applied lines with a contact, every tenant's; `None` when the view is not live.
    pub fn online(&self) -> Option<Vec<Line>> {
        self.view().online()
    }

    /// Every tenant's counts.
    pub fn summary(&self) -> Summary {
        self.view().summary(None)
    }

    /// One tenant's counts (what a caller bound to it sees).
    pub fn summary_of(&self, tenant: &str) -> Summary {
        self.view().summary(Some(tenant))
    }

    /// Each tenant's `[online, offline, contacts]`; `None` when the view is not live.
    pub fn by_tenant(&self) -> Option<std::collections::BTreeMap<String, [usize; 3]>> {
        self.view().by_tenant()
    }

    /// What a node's heartbeat says of its AMI: `ok` while this link is live.
    pub fn link_state(&self, mode: ReloadMode) -> String {
        match mode {
            ReloadMode::None => "disabled (PORTAL_RELOAD=none)".into(),
            ReloadMode::Cli => "disabled (PORTAL_RELOAD=cli)".into(),
            ReloadMode::Ami if self.summary().live => "ok".into(),
            ReloadMode::Ami => match self.down_because() {
                Some(why) => format!("not connected: {why}"),
                None => "not connected".into(),
            },
        }
    }

    /// Why the view is not live, if it is not.
    pub fn down_because(&self) -> Option<String> {
        self.down_because
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The lines applied now, every tenant's; their registrations are shown, others never.
    pub fn set_applied(&self, applied: impl IntoIterator<Item = Line>) {
        let (before, after) = {
            let mut view = self.view();
            let before = view.online();
            view.set_applied(applied);
            (before, view.online())
        };
        if before != after {
            let touched: BTreeSet<Line> = before.into_iter().chain(after).flatten().collect();
            self.publish_lines(touched);
        }
    }

    /// What an apply changed of the applied lines: `removed` are no longer shown, `added`
    /// are. The streams hear of each line whose state this changes (one that was online,
    /// one online at once). Costs the lines changed, not every tenant's lines: an apply
    /// of one user among 10,000 stays as cheap as among 200.
    pub fn update_applied(
        &self,
        removed: impl IntoIterator<Item = Line>,
        added: impl IntoIterator<Item = Line>,
    ) {
        let mut touched = Vec::new();
        {
            let mut view = self.view();
            for line in removed {
                if view.unapply(&line) {
                    touched.push(line);
                }
            }
            for line in added {
                if view.add_applied(line.clone()) {
                    touched.push(line);
                }
            }
        }
        self.publish_lines(touched);
    }

    /// Asks the link for a fresh snapshot (after an apply: a removed endpoint leaves its
    /// contact behind without an event, F-REG-24).
    pub fn resync(&self) {
        self.resync.notify_one();
    }

    /// Tells the event stream the registration of each aor that is an applied line (a
    /// contact of anything else is never shown), to its tenant's streams and unbound ones.
    fn publish(&self, aors: impl IntoIterator<Item = String>) {
        let lines: Vec<Line> = {
            let view = self.view();
            aors.into_iter()
                .filter_map(|aor| view.line(&aor).cloned())
                .collect()
        };
        self.publish_lines(lines);
    }

    /// Tells the event stream the registration of each line (one no longer applied reads
    /// `offline`).
    fn publish_lines(&self, lines: impl IntoIterator<Item = Line>) {
        let view = self.view();
        for line in lines {
            let sip_username = line.aor();
            let registration = view.registration_of(&sip_username);
            self.hub.publish(
                Audience::Tenant(line.tenant.clone()),
                "registration",
                &Change {
                    extension: line.extension,
                    tenant: line.tenant,
                    sip_username,
                    registration,
                },
            );
        }
    }

    fn replace(&self, snapshot: Vec<Contact>) {
        let changed = self.view().replace(snapshot, OffsetDateTime::now_utc());
        *self.down_because.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.publish(changed);
    }

    /// Applies an event; true when the view needs a snapshot for details.
    fn apply(&self, e: &StatusEvent) -> bool {
        let applied = self.view().apply(e);
        self.publish(applied.changed);
        applied.needs_snapshot
    }

    /// The link is down: every registration reads `unknown`. The phones that were
    /// online are told so on the event stream (offline ones become unknown silently:
    /// on a large PBX that would be a burst of a thousand frames for no news).
    fn lost(&self, why: String) {
        let online = {
            let mut v = self.view();
            let online = v.online();
            v.lost();
            online
        };
        *self.down_because.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        self.publish_lines(online.into_iter().flatten());
    }
}

/// Keeps the link up until `shutdown`: connect, log in, snapshot, follow events;
/// on any failure mark the view not live and try again after a backoff.
pub async fn run(
    settings: AmiSettings,
    regs: std::sync::Arc<Registrations>,
    mut shutdown: Shutdown,
) {
    let mut backoff = BACKOFF;
    loop {
        let mut session = Session {
            settings: &settings,
            regs: &regs,
            next_id: 0,
            synced: false,
        };
        let result = tokio::select! {
            r = session.run() => r,
            _ = shutdown.wait() => return,
        };
        if session.synced {
            backoff.reset();
        }
        let why = match result {
            Ok(()) => "the AMI connection was closed".to_owned(),
            Err(e) => e.to_string(),
        };
        let pause = backoff.pause();
        if regs.down_because().as_deref() != Some(why.as_str()) {
            tracing::warn!(error = %why, retry_in = ?pause, "registration link down");
        }
        regs.lost(why);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.wait() => return,
        }
    }
}

/// One connection of the link.
struct Session<'a> {
    settings: &'a AmiSettings,
    regs: &'a Registrations,
    next_id: u64,
    /// A snapshot was taken on this connection.
    synced: bool,
}

impl Session<'_> {
    fn id(&mut self, what: &str) -> String {
        self.next_id += 1;
        format!("portal-events-{what}-{}", self.next_id)
    }

    async fn bounded<T, F>(&self, fut: F) -> Result<T, LinkError>
    where
        F: std::future::Future<Output = Result<T, LinkError>>,
    {
        let limit = self.settings.timeout;
        timeout(limit, fut)
            .await
            .map_err(|_| LinkError::Timeout(limit))?
    }

    async fn connect(&mut self) -> Result<Connection, LinkError> {
        let addr = self.settings.addr;
        let stream = self
            .bounded(async {
                TcpStream::connect(addr).await.map_err(|e| {
                    super::ami::AmiError::Unreachable(format!("connect to {addr}: {e}")).into()
                })
            })
            .await?;
        let _ = stream.set_nodelay(true);
        let mut conn = Connection::new(stream);
        self.bounded(async { Ok(conn.read_line().await?) }).await?;
        let id = self.id("login");
        let login = encode(
            "Login",
            Some(&id),
            &[
                ("Username", self.settings.username.as_str()),
                ("Secret", self.settings.secret.expose_secret()),
                ("Events", "system"),
            ],
        )?;
        conn.write(&login).await?;
        let reply = self
            .bounded(async {
                loop {
                    let m = conn.read_message().await?;
                    if m.get("Response").is_some() && m.get("ActionID") == Some(id.as_str()) {
                        return Ok(m);
                    }
                }
            })
            .await?;
        if !reply.is_success() {
            return Err(LinkError::LoginFailed);
        }
        Ok(conn)
    }

    /// Takes a snapshot; events read meanwhile are applied after it. Returns whether
    /// those events ask for another snapshot.
    async fn snapshot(&mut self, conn: &mut Connection) -> Result<bool, LinkError> {
        let id = self.id("contacts");
        conn.write(&encode("PJSIPShowContacts", Some(&id), &[])?)
            .await?;
        let mut contacts = Vec::new();
        let mut meanwhile = Vec::new();
        self.bounded(async {
            loop {
                let m = conn.read_message().await?;
                if m.get("ActionID") != Some(id.as_str()) {
                    meanwhile.push(m);
                    continue;
                }
                if m.get("Response").is_some() {
                    if m.is_success() {
                        continue;
                    }
                    // An empty list is an error with a bare LF (F-REG-5).
                    let message = m.get("Message").unwrap_or("").trim_end();
                    if message == "No Contacts found" {
                        return Ok(());
                    }
                    return Err(LinkError::ListRefused(message.to_owned()));
                }
                match m.get("Event") {
                    Some("ContactList") => contacts.extend(Contact::from_list(&m)),
                    Some("ContactListComplete") => return Ok(()),
                    _ => {}
                }
            }
        })
        .await?;
        self.regs.replace(contacts);
        self.synced = true;
        let mut again = false;
        for m in meanwhile {
            again |= self.event(&m);
        }
        Ok(again)
    }

    /// Applies one pushed message; true when the view needs a snapshot.
    fn event(&self, m: &Message) -> bool {
        match m.get("Event") {
            Some("ContactStatus") => StatusEvent::parse(m).is_none_or(|e| self.regs.apply(&e)),
            // Asterisk (re)started or reloaded PJSIP: what it holds may have changed
            // without a ContactStatus (F-REG-24).
            Some("FullyBooted") | Some("Reload") => true,
            _ => false,
        }
    }

    async fn run(&mut self) -> Result<(), LinkError> {
        let mut conn = self.connect().await?;
        let settle_from = |again: bool| again.then(|| Instant::now() + SETTLE);
        let mut settle = settle_from(self.snapshot(&mut conn).await?);
        let mut next_resync = Instant::now() + RESYNC;
        loop {
            let snapshot = tokio::select! {
                m = conn.read_message() => {
                    if self.event(&m?) && settle.is_none() {
                        settle = settle_from(true);
                    }
                    false
                }
                _ = self.regs.resync.notified() => true,
                _ = tokio::time::sleep_until(next_resync) => true,
                _ = sleep_until_opt(settle) => true,
            };
            if snapshot {
                settle = settle_from(self.snapshot(&mut conn).await?);
                next_resync = Instant::now() + RESYNC;
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
