//! SIP registrations and contact qualify as res_pjsip keeps them and AMI shows them:
//! the contact store in astdb (res_pjsip/location.c), REGISTER handling
//! (res_pjsip_registrar.c: expiry range, max_contacts, remove_existing,
//! remove_unavailable, the periodic expiration check), the contact statuses and the
//! OPTIONS qualify cycle (res_pjsip/pjsip_options.c), and the persistent endpoint state
//! that raises PeerStatus and DeviceStateChange (res_pjsip/pjsip_configuration.c).
//!
//! The stand-in speaks no SIP: tests play the phones through `FakeAsterisk::register`,
//! `unregister` and `answer_qualify`. What a real Asterisk derives from the REGISTER
//! (Via, Call-ID, User-Agent, Expires) comes from those calls.
//!
//! A phone behind a NAT (shared/asterisk/nat/FACTS.md) claims one address in its Via and
//! Contact and sends from another: `Registration::source` is where its packets come
//! from, `Registration::via` and the Contact URI what it claims. The endpoint's NAT
//! options act as res_pjsip_nat.c does on the REGISTER (`handle_rx_message`):
//! `rewrite_contact` rewrites the Contact URI to the packets' source (`rewrite_uri`,
//! keeping the claimed host in `x-ast-orig-host`), `force_rport` makes the answer go to
//! the packets' source port (`response_addr`). ViaAddr/ViaPort stay what the phone
//! claims. Qualify OPTIONS go to the contact URI's host:port and reach the phone only
//! when that is where it really is (F-NAT-1); these addresses are data, never a packet's
//! destination.
//!
//! Event order follows the recordings and where they are silent the source: a
//! PeerStatus is published at once by the task that changes an endpoint's state, a
//! ContactStatus is queued to the management serializer and so comes after everything
//! the current task publishes (F-REG-16/18, F-QUAL-4). The DeviceStateChange comes from
//! another thread in Asterisk and its position varies between runs; `DeviceStateOrder`
//! pins it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::AbortHandle;

use super::pjsip::{aor_names, Object, Sorcery};
use super::{perm, Event, Inner, State};

/// `ast_sip_contact_status_type` with the labels of `status_map` (UNKNOWN, the label of
/// a contact without a status object, does not occur: every contact gets one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Unreachable,
    Reachable,
    /// CREATED: a contact that is not (or not yet) qualified.
    NonQualified,
    Removed,
}

impl Status {
    /// The label of events and lists.
    pub fn label(self) -> &'static str {
        match self {
            Status::Unreachable => "Unreachable",
            Status::Reachable => "Reachable",
            Status::NonQualified => "NonQualified",
            Status::Removed => "Removed",
        }
    }

    /// The CLI label (`short_status_map`).
    pub fn short(self) -> &'static str {
        match self {
            Status::Unreachable => "Unavail",
            Status::Reachable => "Avail",
            Status::NonQualified => "NonQual",
            Status::Removed => "Removed",
        }
    }
}

/// Where the DeviceStateChange of an endpoint state change goes among the events that
/// change produces. Asterisk publishes it from the device state thread, so it moved
/// between runs: after PeerStatus (ami_reg_03), before it (ami_reg_06), after the
/// ContactStatus (ami_qual_02) or after the Reload (ami_reg_07).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceStateOrder {
    #[default]
    AfterPeerStatus,
    BeforePeerStatus,
    /// After every other event of the same change (ContactStatus, Reload).
    Last,
}

/// One contact as astdb holds it (`/registrar/contact/<id>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// `<aor>;@<md5 of the URI>`.
    pub id: String,
    pub aor: String,
    pub uri: String,
    /// The endpoint that registered it.
    pub endpoint: String,
    pub user_agent: String,
    pub via_addr: String,
    pub via_port: u16,
    pub call_id: String,
    pub expiration: SystemTime,
    pub qualify_frequency: u32,
    pub qualify_timeout: f64,
    pub qualify_2xx_only: bool,
    pub authenticate_qualify: bool,
    pub outbound_proxy: String,
    pub path: String,
    /// When the last REGISTER for it came.
    pub registered: SystemTime,
    /// Not in astdb: where the phone that registered it really is (the source of its
    /// last REGISTER), which decides whether OPTIONS and INVITEs sent to `uri` reach it.
    pub source: SocketAddr,
}

impl Contact {
    /// ExpirationTime / RegExpire: epoch seconds.
    pub fn expiration_time(&self) -> u64 {
        self.expiration
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A contact with the status `PJSIPShowContacts` lists for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactInfo {
    pub contact: Contact,
    pub status: Status,
    /// RoundtripUsec when Reachable (the lists say `N/A` otherwise).
    pub roundtrip_usec: Option<i64>,
    /// Its AOR is no longer configured (F-REG-24, F-QUAL-13).
    pub orphan: bool,
}

/// What a phone sends: the REGISTER as the registrar sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub aor: String,
    /// The Contact URI without `<>`.
    pub uri: String,
    /// The User-Agent header ("" when the phone sends none).
    pub user_agent: String,
    /// Where its packets come from (`rdata->pkt_info.src_name`/`src_port`): where the
    /// phone really is, after any NAT.
    pub source: SocketAddr,
    /// The sent-by of its Via: what the phone claims to be (ViaAddr, ViaPort).
    pub via: SocketAddr,
    /// Whether its Via asks for `rport` (RFC 3581), as sipp's and real phones' do.
    pub rport: bool,
    /// The Expires header; None: no header (default_expiration). Zero unregisters.
    pub expires: Option<Duration>,
    pub call_id: String,
}

impl Registration {
    /// A phone on the LAN (it is where it says: Via == source). No User-Agent, no
    /// Expires header, a Call-ID made of the AOR and the source.
    pub fn new(aor: &str, uri: &str, source: SocketAddr) -> Registration {
        Registration {
            aor: aor.into(),
            uri: uri.into(),
            user_agent: String::new(),
            source,
            via: source,
            rport: true,
            expires: None,
            call_id: format!("{aor}-{}@{}", source.port(), source.ip()),
        }
    }

    /// A phone behind a NAT: it writes `via` (its private address) in Via and, through
    /// `uri`, in Contact, and its packets arrive from `source` (the NAT's public side).
    pub fn behind_nat(aor: &str, uri: &str, via: SocketAddr, source: SocketAddr) -> Registration {
        Registration {
            via,
            call_id: format!("{aor}-{}@{}", via.port(), via.ip()),
            ..Registration::new(aor, uri, source)
        }
    }
}

/// Where pjsip sends the answer to a request (`pjsip_get_response_addr` over UDP): to
/// the packets' source address (`received`), at their source port when the Via has
/// `rport` or the endpoint has `force_rport` (res_pjsip_nat.c `handle_rx_message` sets
/// `rport_param` to the source port), else at the Via's port.
pub fn response_addr(r: &Registration, force_rport: bool) -> SocketAddr {
    let port = if r.rport || force_rport {
        r.source.port()
    } else {
        r.via.port()
    };
    SocketAddr::new(r.source.ip(), port)
}

/// `rewrite_uri` of res_pjsip_nat.c on a REGISTER's Contact URI arriving from `src` over
/// a transport of type `transport` (udp, tcp, tls): the host and port become the
/// packets' source; when the host differs, `save_orig_contact_host` appends
/// `x-ast-orig-host=<host>:<port>` (the port 0 when the URI had none, as its `%d`
/// prints it); the transport parameter is dropped for udp and set to the transport's
/// type name otherwise. Other parameters stay, in their order. A URI that is not sip:
/// or sips: is left alone (`rewrite_contact` only rewrites those).
pub fn rewrite_uri(uri: &str, src: SocketAddr, transport: &str) -> String {
    let Some((scheme, rest)) = uri
        .split_once(':')
        .filter(|(s, _)| s.eq_ignore_ascii_case("sip") || s.eq_ignore_ascii_case("sips"))
    else {
        return uri.to_string();
    };
    let (addr, params) = rest.split_once(';').unwrap_or((rest, ""));
    let (user, hostport) = match addr.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), addr),
    };
    let (host, port) = split_hostport(hostport);
    let src_name = src.ip().to_string();
    let mut kept: Vec<String> = Vec::new();
    if !transport.eq_ignore_ascii_case("udp") {
        kept.push(format!("transport={}", transport.to_ascii_uppercase()));
    }
    kept.extend(
        params
            .split(';')
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let name = p.split('=').next().unwrap_or("");
                !name.eq_ignore_ascii_case("transport")
            })
            .map(str::to_string),
    );
    if host != src_name {
        kept.push(format!("x-ast-orig-host={host}:{port}"));
    }
    let host_out = match src {
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
        SocketAddr::V4(a) => a.ip().to_string(),
    };
    let mut out = format!("{scheme}:{user}{host_out}:{}", src.port());
    for p in kept {
        out.push(';');
        out.push_str(&p);
    }
    out
}

/// Host and port of `host[:port]` / `[v6][:port]` (port 0 when absent, as pjsip keeps it).
fn split_hostport(hostport: &str) -> (&str, u16) {
    if let Some(v6) = hostport.strip_prefix('[') {
        let (h, tail) = v6.split_once(']').unwrap_or((v6, ""));
        let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
        return (h, port.unwrap_or(0));
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().unwrap_or(0)),
        None => (hostport, 0),
    }
}

/// Where a request to a SIP URI goes (pjsip's target resolution for an IP host): the
/// URI's host and port, 5060 (5061 for sips: or transport=tls) when it has none. None
/// for a host that is not an IP address: the stand-in resolves no names.
pub fn uri_target(uri: &str) -> Option<SocketAddr> {
    let (scheme, rest) = uri.split_once(':')?;
    let (addr, params) = rest.split_once(';').unwrap_or((rest, ""));
    let hostport = addr.rsplit_once('@').map_or(addr, |(_, h)| h);
    let (host, port) = split_hostport(hostport);
    let tls = scheme.eq_ignore_ascii_case("sips")
        || params
            .split(';')
            .any(|p| p.eq_ignore_ascii_case("transport=tls"));
    let port = match port {
        0 if tls => 5061,
        0 => 5060,
        p => p,
    };
    let ip: std::net::IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

impl Contact {
    /// Whether a request sent to this contact's URI reaches the phone: only when the URI
    /// is where the phone really is (F-NAT-1, F-NAT-2).
    pub fn reaches_phone(&self) -> bool {
        uri_target(&self.uri) == Some(self.source)
    }
}

/// The endpoint options res_pjsip_nat.c acts on for a REGISTER.
struct Nat {
    rewrite_contact: bool,
    force_rport: bool,
    /// The `protocol` of the endpoint's transport (udp when it names none).
    transport: String,
}

/// Why the registrar refused a REGISTER (it answers with this SIP code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    /// 403: no endpoint, an endpoint without AORs, an AOR with max_contacts 0, or
    /// max_contacts reached without remove_existing.
    Forbidden,
    /// 404: the AOR is not one of the endpoint's or not configured.
    NotFound,
}

impl RegisterError {
    pub fn code(self) -> u16 {
        match self {
            RegisterError::Forbidden => 403,
            RegisterError::NotFound => 404,
        }
    }
}

impl std::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegisterError::Forbidden => write!(f, "403 Forbidden"),
            RegisterError::NotFound => write!(f, "404 Not Found"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct ContactStatus {
    status: Status,
    rtt: i64,
}

/// `struct sip_options_aor`: the qualify state of one configured AOR.
#[derive(Debug, Default)]
struct AorOptions {
    qualify_frequency: u32,
    qualify_timeout: f64,
    /// Contacts counted as available (all of them when qualify is off).
    available: usize,
    /// The dynamic contacts the qualify cycle works on.
    contacts: BTreeMap<String, Contact>,
    sched: Option<AbortHandle>,
    /// Tells a qualify loop of a replaced schedule apart.
    generation: u64,
    /// Tells an OPTIONS transaction of an AOR removed (and maybe configured again) apart.
    instance: u64,
}

/// Registrations and qualify state of the "server".
#[derive(Debug, Default)]
pub struct Registrar {
    /// astdb: survives reloads and restarts (prune_on_boot = no).
    contacts: BTreeMap<String, Contact>,
    /// `sip_options_contact_statuses`.
    statuses: BTreeMap<String, ContactStatus>,
    /// `sip_options_aors`.
    aors: BTreeMap<String, AorOptions>,
    /// Persistent endpoints: online or not.
    online: BTreeMap<String, bool>,
    /// Whether the phone behind a contact id answers OPTIONS, and how fast.
    phones: BTreeMap<String, Option<Duration>>,
    pub order: DeviceStateOrder,
    generation: u64,
}

impl Registrar {
    /// What survives a restart: astdb and the phones.
    pub fn after_restart(&mut self) -> Registrar {
        Registrar {
            contacts: std::mem::take(&mut self.contacts),
            phones: std::mem::take(&mut self.phones),
            order: self.order,
            ..Registrar::default()
        }
    }

    /// Cancels every qualify schedule (the tasks are aborted by `stop` as well).
    pub fn cancel_all(&mut self) {
        for o in self.aors.values_mut() {
            if let Some(h) = o.sched.take() {
                h.abort();
            }
        }
    }

    /// Contacts of `aor` in astdb (by id prefix, like `ast_sorcery_retrieve_by_prefix`).
    fn of_aor(&self, aor: &str) -> Vec<Contact> {
        let prefix = format!("{aor};@");
        self.contacts
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// The status a list shows; a contact without one gets CREATED
    /// (`contact_apply_handler` on retrieval).
    fn listed_status(&mut self, id: &str) -> ContactStatus {
        *self
            .statuses
            .entry(id.to_string())
            .or_insert(ContactStatus {
                status: Status::NonQualified,
                rtt: 0,
            })
    }

    /// Every contact in astdb with the status a list would give it, without touching
    /// anything (a list gives an orphan a status object; looking here does not).
    pub fn peek(&self) -> Vec<ContactInfo> {
        self.contacts
            .values()
            .map(|c| {
                let st = self.statuses.get(&c.id).copied().unwrap_or(ContactStatus {
                    status: Status::NonQualified,
                    rtt: 0,
                });
                ContactInfo {
                    contact: c.clone(),
                    status: st.status,
                    roundtrip_usec: (st.status == Status::Reachable).then_some(st.rtt),
                    orphan: !self.aors.contains_key(&c.aor),
                }
            })
            .collect()
    }

    /// Every contact in astdb, with its status as listed.
    pub fn infos(&mut self) -> Vec<ContactInfo> {
        let all: Vec<Contact> = self.contacts.values().cloned().collect();
        all.into_iter().map(|c| self.info(c)).collect()
    }

    /// A contact with its status as listed.
    pub fn info(&mut self, contact: Contact) -> ContactInfo {
        let st = self.listed_status(&contact.id);
        let orphan = !self.aors.contains_key(&contact.aor);
        ContactInfo {
            contact,
            status: st.status,
            roundtrip_usec: (st.status == Status::Reachable).then_some(st.rtt),
            orphan,
        }
    }

    pub fn is_online(&self, endpoint: &str) -> bool {
        self.online.get(endpoint).copied().unwrap_or(false)
    }

    /// Sets how the phone behind `aor`/`uri` answers OPTIONS (None: not at all).
    pub fn set_phone(&mut self, aor: &str, uri: &str, rtt: Option<Duration>) {
        self.phones.insert(contact_id(aor, uri), rtt);
    }
}

/// `<aor>;@<md5 hex of the URI>` (ast_sip_location_create_contact).
pub fn contact_id(aor: &str, uri: &str) -> String {
    format!("{aor};@{}", md5_hex(uri.as_bytes()))
}

// ----------------------------------------------------------------------------------
// Events

/// The events one operation produces, in publication order.
pub(crate) struct Batch {
    order: DeviceStateOrder,
    now: Vec<Event>,
    /// ContactStatus events waiting for the management serializer.
    deferred: Vec<Event>,
    /// DeviceStateChange events of `DeviceStateOrder::Last`.
    tail: Vec<Event>,
}

impl Batch {
    pub fn new(order: DeviceStateOrder) -> Batch {
        Batch {
            order,
            now: Vec::new(),
            deferred: Vec::new(),
            tail: Vec::new(),
        }
    }

    fn peer(&mut self, endpoint: &str, online: bool, devstate: &str) {
        let peer = Event {
            class: perm::SYSTEM,
            text: format!(
                "Event: PeerStatus\r\nPrivilege: {}\r\nChannelType: PJSIP\r\nPeer: PJSIP/{endpoint}\r\nPeerStatus: {}\r\n\r\n",
                perm::privilege(perm::SYSTEM),
                if online { "Reachable" } else { "Unreachable" }
            ),
        };
        let dsc = Event {
            class: perm::CALL,
            text: format!(
                "Event: DeviceStateChange\r\nPrivilege: {}\r\nDevice: PJSIP/{endpoint}\r\nState: {devstate}\r\n\r\n",
                perm::privilege(perm::CALL)
            ),
        };
        match self.order {
            DeviceStateOrder::AfterPeerStatus => self.now.extend([peer, dsc]),
            DeviceStateOrder::BeforePeerStatus => self.now.extend([dsc, peer]),
            DeviceStateOrder::Last => {
                self.now.push(peer);
                self.tail.push(dsc);
            }
        }
    }

    fn contact_status(&mut self, endpoint: &str, aor: &str, uri: &str, st: ContactStatus) {
        self.deferred.push(Event {
            class: perm::SYSTEM,
            text: format!(
                "Event: ContactStatus\r\nPrivilege: {}\r\nURI: {uri}\r\nContactStatus: {}\r\nAOR: {aor}\r\nEndpointName: {endpoint}\r\nRoundtripUsec: {}\r\n\r\n",
                perm::privilege(perm::SYSTEM),
                st.status.label(),
                st.rtt
            ),
        });
    }

    /// The end of a management task: what it queued is published now.
    fn task_done(&mut self) {
        self.now.append(&mut self.deferred);
    }

    /// An event of the operation itself (the Reload of a module reload).
    pub fn push(&mut self, class: u32, text: String) {
        self.task_done();
        self.now.push(Event { class, text });
    }

    pub fn into_events(mut self) -> Vec<Event> {
        self.task_done();
        self.now.append(&mut self.tail);
        self.now
    }
}

// ----------------------------------------------------------------------------------
// Configuration helpers

fn num(o: &Object, f: &str) -> u64 {
    o.field(f).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn flag(o: &Object, f: &str) -> bool {
    matches!(o.field(f).as_deref(), Some("true") | Some("yes"))
}

fn dbl(o: &Object, f: &str) -> f64 {
    o.field(f).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

/// The endpoints feeding on `aor` (its endpoint state compositors), by id.
fn compositors(s: &Sorcery, aor: &str) -> Vec<String> {
    s.all("endpoint")
        .into_iter()
        .filter(|e| aor_names(e).iter().any(|a| a == aor))
        .map(|e| e.id.clone())
        .collect()
}

fn publish_contact_state(s: &Sorcery, b: &mut Batch, c: &Contact, st: ContactStatus) {
    for e in compositors(s, &c.aor) {
        b.contact_status(&e, &c.aor, &c.uri, st);
    }
}

/// An endpoint is online when one of its AORs has an available contact.
fn computed_online(r: &Registrar, s: &Sorcery, endpoint: &str) -> bool {
    s.get("endpoint", endpoint)
        .map(|e| {
            aor_names(e)
                .iter()
                .any(|a| r.aors.get(a).map(|o| o.available > 0).unwrap_or(false))
        })
        .unwrap_or(false)
}

/// `ast_sip_persistent_endpoint_update_state`: PeerStatus and DeviceStateChange only on
/// a change.
fn update_state(r: &mut Registrar, s: &Sorcery, b: &mut Batch, endpoint: &str, online: bool) {
    let Some(cur) = r.online.get_mut(endpoint) else {
        return;
    };
    if *cur == online {
        return;
    }
    *cur = online;
    let devstate = if online {
        "NOT_INUSE"
    } else if s.get("endpoint", endpoint).is_some() {
        "UNAVAILABLE"
    } else {
        "INVALID"
    };
    b.peer(endpoint, online, devstate);
}

/// `sip_options_notify_endpoint_state_compositors`.
fn notify(r: &mut Registrar, s: &Sorcery, b: &mut Batch, aor: &str, available: bool) {
    for e in compositors(s, aor) {
        let online = available || computed_online(r, s, &e);
        update_state(r, s, b, &e, online);
    }
}

/// `ast_res_pjsip_find_or_create_contact_status`.
fn find_or_create_status(r: &mut Registrar, s: &Sorcery, b: &mut Batch, c: &Contact) {
    if r.statuses.contains_key(&c.id) {
        return;
    }
    let st = ContactStatus {
        status: Status::NonQualified,
        rtt: 0,
    };
    r.statuses.insert(c.id.clone(), st);
    if r.aors.contains_key(&c.aor) {
        publish_contact_state(s, b, c, st);
    }
}

/// `sip_options_set_contact_status`: RTT 0, an event on a change.
fn set_status(r: &mut Registrar, s: &Sorcery, b: &mut Batch, c: &Contact, status: Status) {
    let Some(cur) = r.statuses.get_mut(&c.id) else {
        return;
    };
    let changed = cur.status != status;
    *cur = ContactStatus { status, rtt: 0 };
    let st = *cur;
    if changed {
        publish_contact_state(s, b, c, st);
    }
}

// ----------------------------------------------------------------------------------
// The operations

/// A random first qualify within one frequency
/// (`sip_options_determine_initial_qualify_time`, max_initial_qualify_time = 0).
fn initial_qualify_time(frequency: u32) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(1);
    let mut x = nanos ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    let ms = (frequency as u64 * 1000) * (x % 1000) / 1000;
    Duration::from_millis(ms.max(1))
}

impl Inner {
    pub(crate) fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.opts.qualify_time_scale)
    }

    fn new_batch(&self, st: &State) -> Batch {
        Batch::new(st.registrar.order)
    }

    pub(crate) fn publish_batch(&self, b: Batch) {
        for ev in b.into_events() {
            self.publish(ev.class, ev.text);
        }
    }

    /// (Re)starts the qualify loop of `aor`, first OPTIONS after `initial` (unscaled).
    fn schedule_qualify(&self, st: &mut State, aor: &str, initial: Duration) {
        st.registrar.generation += 1;
        let gen = st.registrar.generation;
        let Some(o) = st.registrar.aors.get_mut(aor) else {
            return;
        };
        if let Some(h) = o.sched.take() {
            h.abort();
        }
        o.generation = gen;
        let me = self.me();
        let aor = aor.to_string();
        let initial = self.scaled(initial);
        o.sched = Some(self.spawn(qualify_loop(me, aor, gen, initial)));
    }

    fn cancel_qualify(st: &mut State, aor: &str) {
        if let Some(o) = st.registrar.aors.get_mut(aor) {
            if let Some(h) = o.sched.take() {
                h.abort();
            }
        }
    }

    /// A contact created in sorcery (`sip_options_contact_add_task`).
    fn contact_added(&self, st: &mut State, b: &mut Batch, c: &Contact) {
        let qualify = match st.registrar.aors.get_mut(&c.aor) {
            Some(o) => {
                o.contacts.insert(c.id.clone(), c.clone());
                o.qualify_frequency > 0
            }
            None => {
                b.task_done();
                return;
            }
        };
        find_or_create_status(&mut st.registrar, &st.sorcery, b, c);
        if qualify {
            // "immediately schedule a qualify so that contacts are not waiting for the
            // qualify_frequency timer" (1 ms).
            self.schedule_qualify(st, &c.aor, Duration::from_millis(1));
        } else {
            let o = st.registrar.aors.get_mut(&c.aor).expect("checked above");
            o.available = o.contacts.len();
            if o.available == 1 {
                notify(&mut st.registrar, &st.sorcery, b, &c.aor, true);
            }
        }
        b.task_done();
    }

    /// A contact deleted from sorcery (`sip_options_contact_delete_task`).
    fn contact_deleted(&self, st: &mut State, b: &mut Batch, c: &Contact) {
        let (qualify, left) = match st.registrar.aors.get_mut(&c.aor) {
            Some(o) => {
                o.contacts.remove(&c.id);
                (o.qualify_frequency > 0, o.contacts.len())
            }
            None => {
                // "For contacts that are deleted we don't really care if there is no
                // AOR locally".
                b.task_done();
                return;
            }
        };
        if let Some(old) = st.registrar.statuses.remove(&c.id) {
            let removed = ContactStatus {
                status: Status::Removed,
                rtt: 0,
            };
            publish_contact_state(&st.sorcery, b, c, removed);
            if qualify && old.status == Status::Reachable {
                let o = st.registrar.aors.get_mut(&c.aor).expect("checked above");
                o.available = o.available.saturating_sub(1);
                if o.available == 0 {
                    notify(&mut st.registrar, &st.sorcery, b, &c.aor, false);
                }
            }
        }
        if qualify {
            if left == 0 {
                Self::cancel_qualify(st, &c.aor);
            }
        } else {
            st.registrar
                .aors
                .get_mut(&c.aor)
                .expect("checked above")
                .available = left;
            if left == 0 {
                notify(&mut st.registrar, &st.sorcery, b, &c.aor, false);
            }
        }
        b.task_done();
    }

    /// `registrar_contact_delete`: astdb, then the observers.
    fn delete_contact(&self, st: &mut State, b: &mut Batch, c: &Contact) {
        if st.registrar.contacts.remove(&c.id).is_some() {
            self.contact_deleted(st, b, c);
        }
    }

    /// `contact_expire` of `ast_sip_location_retrieve_aor_contacts`: expired contacts of
    /// `aor` are deleted whenever its contacts are retrieved.
    pub(crate) fn aor_contacts(&self, st: &mut State, b: &mut Batch, aor: &str) -> Vec<Contact> {
        let now = SystemTime::now();
        let mut out = Vec::new();
        for c in st.registrar.of_aor(aor) {
            if self.deadline(&c) > now {
                out.push(c);
            } else {
                self.delete_contact(st, b, &c);
            }
        }
        out
    }

    /// A REGISTER for one Contact (res_pjsip_nat.c `handle_rx_message`, then
    /// register_aor_core); Ok: where the 200 OK went (`response_addr`).
    pub(crate) fn register(&self, r: &Registration) -> Result<SocketAddr, RegisterError> {
        let mut st = self.state();
        let st = &mut *st;
        // registrar_on_rx_request / find_registrar_aor: the endpoint the phone is (by
        // name, else the one with this AOR), the AOR among its own.
        let (aor, endpoint, max_contacts, remove_existing, remove_unavailable, nat) = {
            let s = &st.sorcery;
            let endpoint = s
                .get("endpoint", &r.aor)
                .or_else(|| {
                    s.all("endpoint")
                        .into_iter()
                        .find(|e| aor_names(e).iter().any(|a| a == &r.aor))
                })
                .ok_or(RegisterError::Forbidden)?;
            let names = aor_names(endpoint);
            if names.is_empty() {
                return Err(RegisterError::Forbidden);
            }
            if !names.iter().any(|a| a == &r.aor) {
                return Err(RegisterError::NotFound);
            }
            let aor = s.get("aor", &r.aor).ok_or(RegisterError::NotFound)?.clone();
            let max = num(&aor, "max_contacts") as usize;
            if max == 0 {
                return Err(RegisterError::Forbidden);
            }
            let (re, ru) = (
                flag(&aor, "remove_existing"),
                flag(&aor, "remove_unavailable"),
            );
            let transport = endpoint
                .field("transport")
                .and_then(|t| s.get("transport", &t))
                .and_then(|t| t.field("protocol"))
                .unwrap_or_else(|| "udp".into());
            let nat = Nat {
                rewrite_contact: flag(endpoint, "rewrite_contact"),
                force_rport: flag(endpoint, "force_rport"),
                transport,
            };
            (aor, endpoint.id.clone(), max, re, ru, nat)
        };
        // handle_rx_message: the Contact as the registrar gets it, where the answer goes.
        let uri = if nat.rewrite_contact {
            rewrite_uri(&r.uri, r.source, &nat.transport)
        } else {
            r.uri.clone()
        };
        let reply_to = response_addr(r, nat.force_rport);
        let mut b = self.new_batch(st);
        let contacts = self.aor_contacts(st, &mut b, &r.aor);
        let expiration = registrar_get_expiration(&aor, r.expires);
        let id = contact_id(&r.aor, &uri);
        let existing = contacts.iter().find(|c| c.id == id).cloned();
        let (added, updated, deleted) = match (&existing, expiration) {
            (None, 0) => (0, 0, 0),
            (None, _) => (1, 0, 0),
            (Some(_), 0) => (0, 0, 1),
            (Some(_), _) => (0, 1, 0),
        };
        let mut count = if remove_existing {
            (updated + added) as isize - deleted as isize
        } else {
            contacts.len() as isize + added as isize - deleted as isize
        }
        .max(0) as usize;
        if count > max_contacts && remove_unavailable {
            let unavail: Vec<Contact> = contacts
                .iter()
                .filter(|c| {
                    st.registrar.statuses.get(&c.id).map(|s| s.status) == Some(Status::Unreachable)
                })
                .cloned()
                .collect();
            if count - unavail.len() <= max_contacts {
                self.remove_excess(st, &mut b, unavail, count - max_contacts, true);
                let left = st.registrar.of_aor(&r.aor).len();
                count = (left + added).saturating_sub(deleted);
            }
        }
        if count > max_contacts {
            self.log_line(format!(
                "WARNING res_pjsip_registrar.c: Registration attempt from endpoint '{endpoint}' ({}) to AOR '{}' will exceed max contacts of {max_contacts}",
                r.source, r.aor
            ));
            self.publish_batch(b);
            return Err(RegisterError::Forbidden);
        }
        let now = SystemTime::now();
        match existing {
            None if expiration == 0 => {}
            None => {
                let c = Contact {
                    id: id.clone(),
                    aor: r.aor.clone(),
                    uri: uri.clone(),
                    endpoint: endpoint.clone(),
                    user_agent: r.user_agent.clone(),
                    via_addr: r.via.ip().to_string(),
                    via_port: r.via.port(),
                    call_id: r.call_id.clone(),
                    expiration: now + Duration::from_secs(expiration),
                    qualify_frequency: num(&aor, "qualify_frequency") as u32,
                    qualify_timeout: dbl(&aor, "qualify_timeout"),
                    qualify_2xx_only: flag(&aor, "qualify_2xx_only"),
                    authenticate_qualify: flag(&aor, "authenticate_qualify"),
                    outbound_proxy: aor.field("outbound_proxy").unwrap_or_default(),
                    path: String::new(),
                    registered: now,
                    source: r.source,
                };
                st.registrar.contacts.insert(id.clone(), c.clone());
                self.contact_added(st, &mut b, &c);
            }
            Some(mut c) if expiration > 0 => {
                // The refresh copies the stored contact: Via and Call-ID stay.
                c.expiration = now + Duration::from_secs(expiration);
                c.registered = now;
                c.source = r.source;
                c.qualify_frequency = num(&aor, "qualify_frequency") as u32;
                c.authenticate_qualify = flag(&aor, "authenticate_qualify");
                c.qualify_2xx_only = flag(&aor, "qualify_2xx_only");
                if !r.user_agent.is_empty() {
                    c.user_agent = r.user_agent.clone();
                }
                st.registrar.contacts.insert(id.clone(), c.clone());
                if let Some(o) = st.registrar.aors.get_mut(&c.aor) {
                    if o.contacts.contains_key(&c.id) {
                        o.contacts.insert(c.id.clone(), c.clone());
                    }
                }
                // contact_observer_updated: silent unless the global option asks.
                let send = st
                    .sorcery
                    .all("global")
                    .first()
                    .map(|g| flag(g, "send_contact_status_on_update_registration"))
                    .unwrap_or(false);
                if send && st.registrar.aors.contains_key(&c.aor) {
                    if let Some(cs) = st.registrar.statuses.get(&c.id).copied() {
                        publish_contact_state(&st.sorcery, &mut b, &c, cs);
                    }
                }
                b.task_done();
            }
            Some(c) => self.delete_contact(st, &mut b, &c),
        }
        if remove_existing {
            let others: Vec<Contact> = contacts.into_iter().filter(|c| c.id != id).collect();
            let total = others.len() + updated + added;
            if total > max_contacts {
                self.remove_excess(st, &mut b, others, total - max_contacts, remove_unavailable);
            }
        }
        self.publish_batch(b);
        Ok(reply_to)
    }

    /// `remove_excess_contacts`: the `n` contacts that expire soonest (unreachable ones
    /// first with remove_unavailable).
    fn remove_excess(
        &self,
        st: &mut State,
        b: &mut Batch,
        mut candidates: Vec<Contact>,
        n: usize,
        unavailable_first: bool,
    ) {
        let unreachable = |st: &State, c: &Contact| {
            st.registrar.statuses.get(&c.id).map(|s| s.status) == Some(Status::Unreachable)
        };
        candidates.sort_by(|x, y| {
            let ux = unavailable_first && unreachable(st, x);
            let uy = unavailable_first && unreachable(st, y);
            uy.cmp(&ux).then(x.expiration.cmp(&y.expiration))
        });
        candidates.truncate(n);
        for c in candidates.iter().rev() {
            self.delete_contact(st, b, c);
        }
    }

    /// The periodic `check_expiration_thread` pass.
    pub(crate) fn expire_contacts(&self) {
        let mut st = self.state();
        let st = &mut *st;
        let now = SystemTime::now();
        let expired: Vec<Contact> = st
            .registrar
            .contacts
            .values()
            .filter(|c| self.deadline(c) <= now)
            .cloned()
            .collect();
        if expired.is_empty() {
            return;
        }
        let mut b = self.new_batch(st);
        for c in expired {
            self.delete_contact(st, &mut b, &c);
        }
        self.publish_batch(b);
    }

    /// When a contact expires: its ExpirationTime, unless `Options::expiry_time_scale`
    /// shortens its lifetime.
    fn deadline(&self, c: &Contact) -> SystemTime {
        let life = c
            .expiration
            .duration_since(c.registered)
            .unwrap_or_default();
        c.registered + life.mul_f64(self.opts.expiry_time_scale)
    }

    /// `contact_expiration_check_interval`: Options first, then [global].
    pub(crate) fn expiration_check_interval(&self) -> Duration {
        if let Some(d) = self.opts.expiration_check_interval {
            return d;
        }
        let st = self.state();
        let secs = st
            .sorcery
            .all("global")
            .first()
            .map(|g| num(g, "contact_expiration_check_interval"))
            .unwrap_or(30);
        Duration::from_secs(secs)
    }

    /// `sip_options_synchronize` after res_pjsip loaded or reloaded its objects: AORs
    /// added, changed or gone, then every endpoint's state. An endpoint that loses its
    /// last available contact this way goes Unreachable (DeviceStateChange INVALID when
    /// the endpoint itself is gone, F-REG-24); one that is offline stays silent.
    pub(crate) fn synchronize(&self, st: &mut State, b: &mut Batch) {
        let configured: Vec<Object> = st.sorcery.all("aor").into_iter().cloned().collect();
        let names: BTreeSet<String> = configured.iter().map(|a| a.id.clone()).collect();
        for aor in &configured {
            let is_new = !st.registrar.aors.contains_key(&aor.id);
            if is_new {
                st.registrar.generation += 1;
                let o = AorOptions {
                    instance: st.registrar.generation,
                    ..AorOptions::default()
                };
                st.registrar.aors.insert(aor.id.clone(), o);
            }
            self.apply_aor_configuration(st, b, aor, is_new);
        }
        let gone: Vec<String> = st
            .registrar
            .aors
            .keys()
            .filter(|k| !names.contains(*k))
            .cloned()
            .collect();
        for aor in gone {
            // sip_options_aor_remove_task and the AOR's destructor: statuses go, no
            // ContactStatus (the AOR is no longer there to publish it).
            let mut o = st.registrar.aors.remove(&aor).expect("listed above");
            if let Some(h) = o.sched.take() {
                h.abort();
            }
            for id in o.contacts.keys() {
                st.registrar.statuses.remove(id);
            }
        }
        let State {
            sorcery, registrar, ..
        } = &mut *st;
        for e in sorcery.all("endpoint") {
            registrar.online.entry(e.id.clone()).or_insert(false);
        }
        let endpoints: Vec<String> = registrar.online.keys().cloned().collect();
        for e in endpoints {
            let online = computed_online(registrar, sorcery, &e);
            update_state(registrar, sorcery, b, &e, online);
        }
        // The ContactStatus events queued meanwhile run after this task.
        b.task_done();
    }

    /// `sip_options_apply_aor_configuration`.
    fn apply_aor_configuration(&self, st: &mut State, b: &mut Batch, aor: &Object, is_new: bool) {
        let id = aor.id.clone();
        if is_new {
            let dynamic = st.registrar.of_aor(&id);
            let o = st.registrar.aors.get_mut(&id).expect("inserted");
            for c in dynamic {
                o.contacts.insert(c.id.clone(), c);
            }
        }
        let frequency = num(aor, "qualify_frequency") as u32;
        let contacts: Vec<Contact> = st.registrar.aors[&id].contacts.values().cloned().collect();
        let old_frequency = st.registrar.aors[&id].qualify_frequency;
        let (r, s) = (&mut st.registrar, &st.sorcery);
        for c in &contacts {
            find_or_create_status(r, s, b, c);
        }
        let available = if frequency == 0 {
            for c in &contacts {
                let cur = r.statuses[&c.id].status;
                if matches!(cur, Status::Reachable | Status::Unreachable) {
                    set_status(r, s, b, c, Status::NonQualified);
                }
            }
            contacts.len()
        } else if old_frequency == 0 {
            for c in &contacts {
                if r.statuses[&c.id].status == Status::Reachable {
                    set_status(r, s, b, c, Status::Unreachable);
                }
            }
            0
        } else {
            contacts
                .iter()
                .filter(|c| r.statuses[&c.id].status == Status::Reachable)
                .count()
        };
        let o = r.aors.get_mut(&id).expect("inserted");
        o.available = available;
        o.qualify_timeout = dbl(aor, "qualify_timeout");
        let has = !o.contacts.is_empty();
        if o.qualify_frequency != frequency
            || (o.sched.is_none() && has)
            || (o.sched.is_some() && !has)
        {
            if let Some(h) = o.sched.take() {
                h.abort();
            }
            o.qualify_frequency = frequency;
            if frequency > 0 && has {
                self.schedule_qualify(st, &id, initial_qualify_time(frequency));
            }
        }
    }

    /// One round of `sip_options_qualify_aor`: an OPTIONS to every contact.
    fn qualify_aor(&self, aor: &str, gen: u64) -> Option<Duration> {
        let mut st = self.state();
        let st = &mut *st;
        let o = st.registrar.aors.get(aor)?;
        if o.generation != gen || o.qualify_frequency == 0 {
            return None;
        }
        let frequency = Duration::from_secs(o.qualify_frequency as u64);
        let timeout = o.qualify_timeout;
        let instance = o.instance;
        let contacts: Vec<Contact> = o.contacts.values().cloned().collect();
        let mut b = self.new_batch(st);
        for c in contacts {
            let has_endpoint = st.sorcery.get("endpoint", &c.endpoint).is_some()
                || !compositors(&st.sorcery, aor).is_empty();
            if !has_endpoint {
                continue;
            }
            find_or_create_status(&mut st.registrar, &st.sorcery, &mut b, &c);
            let timeout_us = (timeout * 1_000_000.0) as u64;
            self.spawn(options_transaction(
                self.me(),
                aor.to_string(),
                c.id.clone(),
                instance,
                timeout_us,
            ));
        }
        self.publish_batch(b);
        Some(frequency)
    }

    /// `sip_options_contact_status_notify_task`: a late answer (the AOR gone, qualify
    /// off, the contact gone) changes nothing.
    fn qualify_result(&self, aor: &str, id: &str, instance: u64, status: Status, rtt: i64) {
        let mut st = self.state();
        let st = &mut *st;
        let Some(o) = st.registrar.aors.get(aor) else {
            return;
        };
        if o.instance != instance || o.qualify_frequency == 0 {
            return;
        }
        let Some(c) = o.contacts.get(id).cloned() else {
            return;
        };
        let Some(old) = st.registrar.statuses.get(id).copied() else {
            return;
        };
        let new = ContactStatus {
            status,
            rtt: if status == Status::Reachable { rtt } else { 0 },
        };
        st.registrar.statuses.insert(id.to_string(), new);
        if old.status == new.status {
            return;
        }
        let mut b = self.new_batch(st);
        let State {
            sorcery, registrar, ..
        } = &mut *st;
        let o = registrar.aors.get_mut(aor).expect("checked above");
        if status == Status::Reachable {
            o.available += 1;
            if o.available == 1 {
                notify(registrar, sorcery, &mut b, aor, true);
            }
        } else if old.status == Status::Reachable {
            o.available = o.available.saturating_sub(1);
            if o.available == 0 {
                notify(registrar, sorcery, &mut b, aor, false);
            }
        }
        publish_contact_state(sorcery, &mut b, &c, new);
        b.task_done();
        self.publish_batch(b);
    }
}

/// `registrar_get_expiration`: the default without a header, 0 kept, else clamped to
/// [minimum_expiration, maximum_expiration] (no 423, F-REG-21).
fn registrar_get_expiration(aor: &Object, expires: Option<Duration>) -> u64 {
    let e = match expires {
        Some(d) => d.as_secs(),
        None => num(aor, "default_expiration"),
    };
    if e == 0 {
        return 0;
    }
    e.clamp(
        num(aor, "minimum_expiration"),
        num(aor, "maximum_expiration").max(num(aor, "minimum_expiration")),
    )
}

/// The scheduled qualify of one AOR: every `qualify_frequency` on a fixed grid from the
/// first round (F-QUAL-7).
async fn qualify_loop(inner: Arc<Inner>, aor: String, gen: u64, initial: Duration) {
    tokio::time::sleep(initial).await;
    let mut next = Instant::now();
    loop {
        let Some(frequency) = inner.qualify_aor(&aor, gen) else {
            return;
        };
        // At least 1 ms, whatever the scale, so that a loop never spins.
        next += inner.scaled(frequency).max(Duration::from_millis(1));
        tokio::time::sleep_until(next.into()).await;
    }
}

/// One OPTIONS transaction: Reachable when it reaches the phone (`Contact::reaches_phone`)
/// and the phone answers within qualify_timeout of the send, RoundtripUsec being its answer time; Unreachable at the timeout
/// otherwise (F-QUAL-7). The phone's behaviour is taken when the OPTIONS is sent: a
/// phone that starts answering later gets the next OPTIONS (F-QUAL-9; UDP
/// retransmissions of the pending one are not modelled).
async fn options_transaction(
    inner: Arc<Inner>,
    aor: String,
    id: String,
    instance: u64,
    timeout_us: u64,
) {
    let t0 = Instant::now();
    let at = |us: u64| t0 + inner.scaled(Duration::from_micros(us));
    let answer = {
        let st = inner.state();
        // The OPTIONS goes to the contact's URI: a phone that is not there never sees it.
        let arrives = st
            .registrar
            .contacts
            .get(&id)
            .map(Contact::reaches_phone)
            .unwrap_or(false);
        st.registrar
            .phones
            .get(&id)
            .copied()
            .flatten()
            .filter(|_| arrives)
            .map(|rtt| rtt.as_micros() as u64)
            .filter(|rtt| *rtt < timeout_us)
    };
    match answer {
        Some(rtt) => {
            tokio::time::sleep_until(at(rtt).into()).await;
            inner.qualify_result(&aor, &id, instance, Status::Reachable, rtt as i64);
        }
        None => {
            tokio::time::sleep_until(at(timeout_us).into()).await;
            inner.qualify_result(&aor, &id, instance, Status::Unreachable, 0);
        }
    }
}

/// `check_expiration_thread`: sleeps one interval, then removes what expired.
pub(crate) async fn expiration_loop(inner: Arc<Inner>) {
    loop {
        let interval = inner.expiration_check_interval();
        if interval.is_zero() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        tokio::time::sleep(interval).await;
        inner.expire_contacts();
    }
}

// ----------------------------------------------------------------------------------
// MD5 (RFC 1321), for contact ids (`ast_md5_hash`).

fn md5_hex(data: &[u8]) -> String {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_le_bytes());
    let (mut a0, mut b0, mut c0, mut d0) = (
        0x6745_2301u32,
        0xefcd_ab89u32,
        0x98ba_dcfeu32,
        0x1032_5476u32,
    );
    for chunk in msg.chunks(64) {
        let m: Vec<u32> = chunk
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    [a0, b0, c0, d0]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_uri_as_res_pjsip_nat_does() {
        let src: SocketAddr = "10.97.0.2:5062".parse().unwrap();
        // F-NAT-3, and the id of ami_contactlist_nat_rewrite.bin.
        let uri = rewrite_uri("sip:1001@10.99.0.2:5062;transport=UDP", src, "udp");
        assert_eq!(
            uri,
            "sip:1001@10.97.0.2:5062;x-ast-orig-host=10.99.0.2:5062"
        );
        assert_eq!(
            contact_id("1001", &uri),
            "1001;@af5a576e57605ac6ed000d88104111a9"
        );
        // Other transports are named; other parameters stay; no port prints as 0.
        assert_eq!(
            rewrite_uri("sip:1001@10.99.0.2;ob", src, "tcp"),
            "sip:1001@10.97.0.2:5062;transport=TCP;ob;x-ast-orig-host=10.99.0.2:0"
        );
        assert_eq!(rewrite_uri("tel:+4930123", src, "udp"), "tel:+4930123");
        assert_eq!(
            uri_target("sip:1001@10.97.0.2;transport=tls"),
            Some("10.97.0.2:5061".parse().unwrap())
        );
        assert_eq!(uri_target("sip:1001@phone.example"), None);
    }

    #[test]
    fn md5_and_contact_ids_of_the_recordings() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        // F-REG-10 and the ids of ami_reg_03 / ami_qual_01.
        assert_eq!(
            contact_id("1901", "sip:1901@127.0.0.1:5101"),
            "1901;@dcc08cee4295c56851839784ebf09cf4"
        );
        assert_eq!(
            contact_id("1903", "sip:1903@127.0.0.1:5132"),
            "1903;@5ac1994a41d3f32ba05a0018acc0f869"
        );
        assert_eq!(
            contact_id("1911", "sip:1911@127.0.0.1:5171"),
            "1911;@485dec24d4d7104a6c5977b1bbdce592"
        );
    }
}
