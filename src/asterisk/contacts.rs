//! The live view of registered phones: Asterisk's contacts, by aor, kept from a snapshot
//! (`PJSIPShowContacts`) and the `ContactStatus` events between snapshots. Pure: the
//! event link (`event_link.rs`) feeds it messages, the API reads it.
//!
//! What real Asterisk 22.7 reports decides the design (`shared/asterisk/registration/`):
//! a refresh fires no event (F-REG-17), so expiry times come only from snapshots, and the
//! link takes one periodically; a new contact's event carries no user agent, source or
//! expiry (F-REG-13), so it asks for a snapshot; lists can run ahead of events
//! (F-QUAL-5), so an event never downgrades a contact the snapshot already knows better;
//! a removed endpoint leaves its contact behind with no event (F-REG-24), so the view
//! only shows contacts of extensions the portal has applied.
//!
//! Asterisk names a contact by its aor, which is the user's SIP name: the bare number for
//! the default tenant, `<slug>-<number>` for any other ([`sip_name_of`]). So the view is
//! keyed by aor name and knows, for each applied aor, whose line it is (tenant and
//! number): two tenants' extension 100 are two aors and never share a registration.
//!
//! A phone behind a NAT claims a private address in its Via and Contact; with the
//! endpoint's `rewrite_contact` Asterisk stores the contact at the address its packets
//! came from and keeps the claim in `x-ast-orig-host` (`shared/asterisk/nat/`, F-NAT-3).
//! So a contact's `source` is where its packets come from and `reported` what the phone
//! wrote, when that differs.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use time::OffsetDateTime;

use super::ami::Message;
use crate::domain::sip_name_of;

/// A line the portal applied: one tenant's extension (by slug and number).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Line {
    pub tenant: String,
    pub extension: u32,
}

impl Line {
    pub fn new(tenant: impl Into<String>, extension: u32) -> Self {
        Self {
            tenant: tenant.into(),
            extension,
        }
    }

    /// The aor Asterisk reports the line's contacts under.
    pub fn aor(&self) -> String {
        sip_name_of(&self.tenant, self.extension)
    }
}

/// Whether a contact answers Asterisk's qualify OPTIONS now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactStatus {
    Reachable,
    Unreachable,
    /// Registered, qualify off or not answered yet.
    NotQualified,
    Unknown,
}

impl ContactStatus {
    /// Asterisk's word for it: `Reachable`, `Unreachable`, `NonQualified` (F-QUAL-2).
    fn parse(word: &str) -> Self {
        match word {
            "Reachable" => Self::Reachable,
            "Unreachable" => Self::Unreachable,
            "NonQualified" | "Created" => Self::NotQualified,
            _ => Self::Unknown,
        }
    }
}

/// One registered contact of an aor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contact {
    #[serde(skip)]
    pub aor: String,
    pub uri: String,
    pub user_agent: String,
    /// Where the phone's packets come from, `ip:port`: the Uri's host:port when Asterisk
    /// rewrote it (`x-ast-orig-host`), else the Via's address.
    pub source: String,
    /// The `ip:port` the phone wrote in its Via/Contact when that is not `source` (a phone
    /// behind a NAT): the `x-ast-orig-host` value, or the Via address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub status: ContactStatus,
    #[serde(rename = "rtt_ms", serialize_with = "rtt_ms")]
    pub rtt_usec: Option<u64>,
}

/// The round trip in milliseconds, as the API shows it (`rtt_ms`).
fn rtt_ms<S: serde::Serializer>(usec: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match usec {
        Some(u) => s.serialize_f64(*u as f64 / 1000.0),
        None => s.serialize_none(),
    }
}

impl Contact {
    /// A contact from one `Event: ContactList` of a `PJSIPShowContacts` answer (F-REG-6).
    pub fn from_list(m: &Message) -> Option<Self> {
        // ObjectName is `<aor>;@<md5 of the uri>` (F-REG-10).
        let aor = m.get("ObjectName")?.split(";@").next()?.to_owned();
        let status = ContactStatus::parse(m.get("Status").unwrap_or(""));
        let uri = m.get("Uri")?;
        let via = match (m.get("ViaAddr"), m.get("ViaPort")) {
            (Some(addr), Some(port)) if !addr.is_empty() => Some(format!("{addr}:{port}")),
            _ => None,
        };
        let (source, reported) = match orig_host(uri) {
            Some(orig) => (source_of(uri), Some(orig)),
            None => (via.clone().unwrap_or_else(|| source_of(uri)), None),
        };
        let reported = reported.or(via.filter(|v| *v != source));
        Some(Self {
            aor,
            uri: uri.to_owned(),
            user_agent: m.get("UserAgent").unwrap_or("").to_owned(),
            source,
            reported,
            expires_at: m
                .get("ExpirationTime")
                .and_then(|t| t.parse::<i64>().ok())
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok()),
            rtt_usec: rtt(status, m.get("RoundtripUsec")),
            status,
        })
    }
}

/// A round trip counts only for a reachable contact: Asterisk writes `N/A` (lists) or
/// `0` (events) for every other status (F-QUAL-6).
fn rtt(status: ContactStatus, raw: Option<&str>) -> Option<u64> {
    match status {
        ContactStatus::Reachable => raw.and_then(|r| r.parse().ok()),
        _ => None,
    }
}

/// `host:port` of a SIP URI such as `sip:1901@127.0.0.1:5101;transport=udp`, for a contact
/// known only from an event until the next snapshot.
fn source_of(uri: &str) -> String {
    let rest = uri.split_once('@').map_or(uri, |(_, r)| r);
    let rest = rest.strip_prefix("sip:").unwrap_or(rest);
    rest.split([';', '>', '?']).next().unwrap_or("").to_owned()
}

/// The `x-ast-orig-host` parameter of a contact URI Asterisk rewrote (res_pjsip_nat.c):
/// the `host:port` the phone wrote.
fn orig_host(uri: &str) -> Option<String> {
    let params = uri.split_once(';')?.1;
    params.split(';').find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.eq_ignore_ascii_case("x-ast-orig-host")
            .then(|| value.trim_end_matches('>').to_owned())
    })
}

/// An `Event: ContactStatus` (F-REG-13, F-QUAL-1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvent {
    pub aor: String,
    pub uri: String,
    /// `None` for `Removed`.
    pub status: Option<ContactStatus>,
    pub rtt_usec: Option<u64>,
}

impl StatusEvent {
    pub fn parse(m: &Message) -> Option<Self> {
        let word = m.get("ContactStatus")?;
        let status = (word != "Removed").then(|| ContactStatus::parse(word));
        Some(Self {
            aor: m.get("AOR")?.to_owned(),
            uri: m.get("URI")?.to_owned(),
            rtt_usec: status.and_then(|s| rtt(s, m.get("RoundtripUsec"))),
            status,
        })
    }
}

/// What an event did to the view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The aor whose contacts changed.
    pub changed: Option<String>,
    /// The view lacks details only a snapshot has (a contact it did not know).
    pub needs_snapshot: bool,
}

/// Every contact Asterisk holds, by aor; and whether that is live.
#[derive(Debug, Clone, Default)]
pub struct View {
    contacts: BTreeMap<String, Vec<Contact>>,
    /// The lines the portal has applied, by aor: only their contacts are shown.
    applied: BTreeMap<String, Line>,
    live: bool,
    synced_at: Option<OffsetDateTime>,
}

/// A phone's registration as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registration {
    pub state: RegistrationState,
    pub contacts: Vec<Contact>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationState {
    Online,
    Offline,
    /// The view is not live: never a stale `online`.
    Unknown,
}

/// The counts `/status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub live: bool,
    pub online: Option<usize>,
    pub offline: Option<usize>,
    pub contacts: Option<usize>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub synced_at: Option<OffsetDateTime>,
}

impl View {
    /// Replaces every contact with a snapshot; returns the aors whose contacts changed.
    pub fn replace(&mut self, snapshot: Vec<Contact>, now: OffsetDateTime) -> BTreeSet<String> {
        let mut next: BTreeMap<String, Vec<Contact>> = BTreeMap::new();
        for c in snapshot {
            next.entry(c.aor.clone()).or_default().push(c);
        }
        for list in next.values_mut() {
            list.sort_by(|a, b| a.uri.cmp(&b.uri));
        }
        let aors: BTreeSet<&String> = self.contacts.keys().chain(next.keys()).collect();
        let changed = aors
            .into_iter()
            .filter(|a| self.contacts.get(*a) != next.get(*a))
            .cloned()
            .collect();
        self.contacts = next;
        self.live = true;
        self.synced_at = Some(now);
        changed
    }

    /// Applies one `ContactStatus` event.
    pub fn apply(&mut self, e: &StatusEvent) -> Applied {
        let list = self.contacts.entry(e.aor.clone()).or_default();
        let at = list.iter().position(|c| c.uri == e.uri);
        let changed = Some(e.aor.clone());
        let applied = match (e.status, at) {
            (None, Some(i)) => {
                list.remove(i);
                Applied {
                    changed,
                    needs_snapshot: false,
                }
            }
            (None, None) => Applied::default(),
            // A registration (NonQualified) of a contact the view already has changes
            // nothing it knows: the snapshot may be newer (F-QUAL-5).
            (Some(ContactStatus::NotQualified), Some(_)) => Applied::default(),
            (Some(status), Some(i)) => {
                let c = &mut list[i];
                let before = (c.status, c.rtt_usec);
                (c.status, c.rtt_usec) = (status, e.rtt_usec);
                Applied {
                    changed: (before != (c.status, c.rtt_usec)).then_some(e.aor.clone()),
                    needs_snapshot: status == ContactStatus::Unknown,
                }
            }
            (Some(status), None) => {
                list.push(Contact {
                    aor: e.aor.clone(),
                    uri: e.uri.clone(),
                    user_agent: String::new(),
                    source: source_of(&e.uri),
                    reported: orig_host(&e.uri),
                    expires_at: None,
                    status,
                    rtt_usec: e.rtt_usec,
                });
                list.sort_by(|a, b| a.uri.cmp(&b.uri));
                Applied {
                    changed,
                    needs_snapshot: true,
                }
            }
        };
        if list.is_empty() {
            self.contacts.remove(&e.aor);
        }
        applied
    }

    /// The view stops being live (the link is down): every registration reads `unknown`.
    pub fn lost(&mut self) {
        self.live = false;
    }

    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The lines applied now, every tenant's (after an apply, and at start from the
    /// database).
    pub fn set_applied(&mut self, applied: impl IntoIterator<Item = Line>) {
        self.applied = applied.into_iter().map(|l| (l.aor(), l)).collect();
    }

    /// An apply removed `line`; whether it was online (its phones now read `offline`).
    pub fn unapply(&mut self, line: &Line) -> bool {
        let aor = line.aor();
        let was = self.live && !self.contacts_of(&aor).is_empty();
        self.applied.remove(&aor);
        was
    }

    /// An apply added `line`; whether it is online at once (a phone registered before).
    pub fn add_applied(&mut self, line: Line) -> bool {
        let aor = line.aor();
        self.applied.insert(aor.clone(), line);
        self.live && !self.contacts_of(&aor).is_empty()
    }

    /// The applied line an aor belongs to, if any.
    pub fn line(&self, aor: &str) -> Option<&Line> {
        self.applied.get(aor)
    }

    /// The registration of one tenant's extension.
    pub fn registration(&self, tenant: &str, extension: u32) -> Registration {
        self.registration_of(&sip_name_of(tenant, extension))
    }

    /// The registration of the line whose aor is `aor`.
    pub fn registration_of(&self, aor: &str) -> Registration {
        if !self.live {
            return Registration {
                state: RegistrationState::Unknown,
                contacts: Vec::new(),
            };
        }
        let contacts = self.contacts_of(aor).to_vec();
        Registration {
            state: if contacts.is_empty() {
                RegistrationState::Offline
            } else {
                RegistrationState::Online
            },
            contacts,
        }
    }

    fn contacts_of(&self, aor: &str) -> &[Contact] {
        if !self.applied.contains_key(aor) {
            return &[];
        }
        self.contacts.get(aor).map_or(&[], Vec::as_slice)
    }

    /// The applied lines with at least one contact; `None` when not live.
    pub fn online(&self) -> Option<Vec<Line>> {
        self.live.then(|| {
            self.applied
                .iter()
                .filter(|(aor, _)| !self.contacts_of(aor).is_empty())
                .map(|(_, line)| line.clone())
                .collect()
        })
    }

    /// Every tenant's lines (`None`), or one tenant's.
    pub fn summary(&self, tenant: Option<&str>) -> Summary {
        let (mut applied, mut online, mut contacts) = (0, 0, 0);
        for (aor, line) in &self.applied {
            if tenant.is_some_and(|t| t != line.tenant) {
                continue;
            }
            let n = self.contacts_of(aor).len();
            applied += 1;
            online += usize::from(n > 0);
            contacts += n;
        }
        let live = |n: usize| self.live.then_some(n);
        Summary {
            live: self.live,
            online: live(online),
            offline: live(applied - online),
            contacts: live(contacts),
            synced_at: self.synced_at,
        }
    }

    /// Each tenant's applied lines as `[online, offline, contacts]`, by slug; `None`
    /// when not live. Only tenants with applied lines appear.
    pub fn by_tenant(&self) -> Option<BTreeMap<String, [usize; 3]>> {
        self.live.then(|| {
            let mut out: BTreeMap<String, [usize; 3]> = BTreeMap::new();
            for (aor, line) in &self.applied {
                let n = self.contacts_of(aor).len();
                let counts = out.entry(line.tenant.clone()).or_default();
                counts[0] += usize::from(n > 0);
                counts[1] += usize::from(n == 0);
                counts[2] += n;
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ContactList item as recorded in ami_reg_02 (F-REG-6).
    const LISTED: &str = "Event: ContactList\r\nActionID: s2-contacts-1\r\nObjectType: contact\r\n\
        ObjectName: 1901;@dcc08cee4295c56851839784ebf09cf4\r\nViaAddr: 127.0.0.1\r\n\
        QualifyTimeout: 3.000000\r\nQualify2xxOnly: false\r\nCallId: lab-1901-5101@127.0.0.1\r\n\
        RegServer: \r\nPruneOnBoot: no\r\nPath: \r\nEndpoint: 1901\r\nViaPort: 5101\r\n\
        AuthenticateQualify: no\r\nUri: sip:1901@127.0.0.1:5101\r\nQualifyFrequency: 0\r\n\
        UserAgent: SIPp\r\nExpirationTime: 1796025435\r\nOutboundProxy: \r\n\
        Status: NonQualified\r\nRoundtripUsec: N/A";

    fn event(uri: &str, status: &str, rtt: &str) -> StatusEvent {
        StatusEvent::parse(&Message::parse(&format!(
            "Event: ContactStatus\r\nPrivilege: system,all\r\nURI: {uri}\r\n\
             ContactStatus: {status}\r\nAOR: 1901\r\nEndpointName: 1901\r\nRoundtripUsec: {rtt}"
        )))
        .unwrap()
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_796_021_836).unwrap()
    }

    fn live(applied: &[u32], snapshot: Vec<Contact>) -> View {
        let mut v = View::default();
        v.set_applied(applied.iter().map(|e| Line::new("default", *e)));
        v.replace(snapshot, now());
        v
    }

    #[test]
    fn a_listed_contact_reads_as_recorded() {
        let c = Contact::from_list(&Message::parse(LISTED)).unwrap();
        assert_eq!(c.aor, "1901");
        assert_eq!(c.uri, "sip:1901@127.0.0.1:5101");
        assert_eq!(c.user_agent, "SIPp");
        assert_eq!(c.source, "127.0.0.1:5101");
        assert_eq!(c.expires_at.unwrap().unix_timestamp(), 1_796_025_435);
        assert_eq!((c.status, c.rtt_usec), (ContactStatus::NotQualified, None));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"uri": "sip:1901@127.0.0.1:5101", "user_agent": "SIPp",
                "source": "127.0.0.1:5101", "expires_at": "2026-11-30T07:57:15Z",
                "status": "not_qualified", "rtt_ms": null})
        );
    }

    #[test]
    fn registration_is_unknown_until_live_and_only_for_applied_extensions() {
        let contact = Contact::from_list(&Message::parse(LISTED)).unwrap();
        let mut v = View::default();
        assert_eq!(
            v.registration("default", 1901).state,
            RegistrationState::Unknown
        );
        v.replace(vec![contact.clone()], now());
        assert_eq!(
            v.registration("default", 1901).state,
            RegistrationState::Offline,
            "an orphan contact of an extension not applied is never shown"
        );
        v.set_applied([1901, 1902].map(|e| Line::new("default", e)));
        let r = v.registration("default", 1901);
        assert_eq!((r.state, r.contacts.len()), (RegistrationState::Online, 1));
        assert_eq!(
            v.registration("default", 1902).state,
            RegistrationState::Offline
        );
        assert_eq!(v.online(), Some(vec![Line::new("default", 1901)]));
        let s = v.summary(None);
        assert_eq!(
            (s.online, s.offline, s.contacts),
            (Some(1), Some(1), Some(1))
        );
        v.lost();
        assert_eq!(
            v.registration("default", 1901).state,
            RegistrationState::Unknown
        );
        assert_eq!((v.online(), v.summary(None).online), (None, None));
    }

    #[test]
    fn each_tenant_line_is_its_own_aor() {
        let acme = Contact::from_list(&Message::parse(
            &LISTED
                .replace("1901;@", "acme-100;@")
                .replace("sip:1901@", "sip:acme-100@"),
        ))
        .unwrap();
        assert_eq!(acme.aor, "acme-100");
        let mut v = View::default();
        v.set_applied([
            Line::new("default", 100),
            Line::new("acme", 100),
            Line::new("beta", 100),
        ]);
        v.replace(vec![acme], now());
        assert_eq!(v.registration("acme", 100).state, RegistrationState::Online);
        for other in ["default", "beta"] {
            assert_eq!(
                v.registration(other, 100).state,
                RegistrationState::Offline,
                "{other}"
            );
        }
        assert_eq!(v.online(), Some(vec![Line::new("acme", 100)]));
        assert_eq!(v.line("acme-100"), Some(&Line::new("acme", 100)));
        assert_eq!(v.summary(Some("acme")).online, Some(1));
        assert_eq!(v.summary(Some("beta")).online, Some(0));
        assert_eq!(v.summary(None).offline, Some(2));
        let by = v.by_tenant().unwrap();
        assert_eq!(by["acme"], [1, 0, 1]);
        assert_eq!(by["default"], [0, 1, 0]);
        // Lines removed and added one by one, as an apply changes them.
        assert!(v.unapply(&Line::new("acme", 100)));
        assert_eq!(v.online(), Some(vec![]));
        assert!(!v.unapply(&Line::new("beta", 100)));
        assert!(v.add_applied(Line::new("acme", 100)));
        assert!(!v.add_applied(Line::new("beta", 100)));
        assert_eq!(v.online(), Some(vec![Line::new("acme", 100)]));
        // An acme contact of a line not applied is never shown, nor anyone else's.
        v.set_applied([Line::new("default", 100)]);
        assert_eq!(
            v.registration("acme", 100).state,
            RegistrationState::Offline
        );
    }

    #[test]
    fn events_move_the_view_and_ask_for_details_they_lack() {
        let mut v = live(&[1901], vec![]);
        // A new registration: known from the event only, a snapshot fills the details.
        let a = v.apply(&event("sip:1901@127.0.0.1:5101", "NonQualified", "0"));
        assert_eq!(
            a,
            Applied {
                changed: Some("1901".into()),
                needs_snapshot: true
            }
        );
        let c = &v.registration("default", 1901).contacts[0];
        assert_eq!(
            (c.source.as_str(), c.status),
            ("127.0.0.1:5101", ContactStatus::NotQualified)
        );
        // Qualify answers: status and round trip change, no snapshot needed.
        let a = v.apply(&event("sip:1901@127.0.0.1:5101", "Reachable", "526"));
        assert_eq!(
            a,
            Applied {
                changed: Some("1901".into()),
                needs_snapshot: false
            }
        );
        let c = &v.registration("default", 1901).contacts[0];
        assert_eq!(
            (c.status, c.rtt_usec),
            (ContactStatus::Reachable, Some(526))
        );
        assert_eq!(serde_json::to_value(c).unwrap()["rtt_ms"], 0.526);
        // A late NonQualified never downgrades what the view knows (F-QUAL-5).
        assert_eq!(
            v.apply(&event("sip:1901@127.0.0.1:5101", "NonQualified", "0")),
            Applied::default()
        );
        let a = v.apply(&event("sip:1901@127.0.0.1:5101", "Unreachable", "0"));
        assert_eq!(a.changed.as_deref(), Some("1901"));
        assert_eq!(v.registration("default", 1901).contacts[0].rtt_usec, None);
        // The same status again changes nothing (Asterisk only reports changes anyway).
        assert_eq!(
            v.apply(&event("sip:1901@127.0.0.1:5101", "Unreachable", "0"))
                .changed,
            None
        );
        let a = v.apply(&event("sip:1901@127.0.0.1:5101", "Removed", "0"));
        assert_eq!(a.changed.as_deref(), Some("1901"));
        assert_eq!(
            v.registration("default", 1901).state,
            RegistrationState::Offline
        );
        assert_eq!(
            v.apply(&event("sip:1901@127.0.0.1:5101", "Removed", "0")),
            Applied::default()
        );
    }

    #[test]
    fn a_snapshot_reports_which_aors_changed() {
        let c = Contact::from_list(&Message::parse(LISTED)).unwrap();
        let mut v = live(&[1901], vec![c.clone()]);
        assert!(v.replace(vec![c.clone()], now()).is_empty());
        let later = Contact {
            expires_at: None,
            ..c.clone()
        };
        assert_eq!(
            v.replace(vec![later], now()),
            BTreeSet::from(["1901".to_owned()])
        );
        assert_eq!(
            v.replace(vec![], now()),
            BTreeSet::from(["1901".to_owned()])
        );
    }

    /// The one message of a recorded AMI byte stream that starts with `first`.
    fn recorded(bytes: &str, first: &str) -> Message {
        let block = bytes
            .split("\r\n\r\n")
            .find(|b| b.starts_with(first))
            .unwrap();
        Message::parse(block)
    }

    macro_rules! nat_recording {
        ($name:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/asterisk/nat/",
                $name
            ))
        };
    }

    /// The phone's contact as `ContactList` lists it (recording `list`) and as the
    /// registration view holds it after the `ContactStatus` event of recording `events`.
    fn listed_and_live(list: &str, events: &str) -> (Contact, Contact) {
        let listed = Contact::from_list(&recorded(list, "Event: ContactList\r\n")).unwrap();
        let e = StatusEvent::parse(&recorded(events, "Event: ContactStatus\r\n")).unwrap();
        let mut v = live(&[1001], vec![]);
        v.apply(&e);
        (listed, v.registration("default", 1001).contacts[0].clone())
    }

    #[test]
    fn a_nated_phone_with_rewrite_contact_is_where_its_packets_come_from() {
        // F-NAT-3: Uri host:port is the public address; ViaAddr/ViaPort and
        // x-ast-orig-host the private one the phone claims.
        let (c, from_event) = listed_and_live(
            nat_recording!("ami_contactlist_nat_rewrite.bin"),
            nat_recording!("ami_events_nat_rewrite.bin"),
        );
        assert_eq!(
            (c.source.as_str(), c.reported.as_deref()),
            ("10.97.0.2:5062", Some("10.99.0.2:5062"))
        );
        assert_eq!(
            (c.status, c.rtt_usec),
            (ContactStatus::Reachable, Some(813))
        );
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            (json["source"].clone(), json["reported"].clone()),
            (
                serde_json::json!("10.97.0.2:5062"),
                serde_json::json!("10.99.0.2:5062")
            )
        );
        // The events carry only the URI: the same answer from it.
        assert_eq!(
            (from_event.source.as_str(), from_event.reported.as_deref()),
            ("10.97.0.2:5062", Some("10.99.0.2:5062"))
        );
    }

    #[test]
    fn a_nated_phone_without_nat_options_reports_only_what_it_claims() {
        // F-NAT-1: stored as the phone wrote it; Asterisk knows no other address, so
        // source is the Via and nothing is `reported` (and so not serialized).
        let (c, from_event) = listed_and_live(
            nat_recording!("ami_contactlist_nat_plain.bin"),
            nat_recording!("ami_events_nat_plain.bin"),
        );
        assert_eq!(
            (c.source.as_str(), c.reported.as_deref()),
            ("10.99.0.2:5062", None)
        );
        assert_eq!(c.status, ContactStatus::Unreachable);
        let json = serde_json::to_value(&c).unwrap();
        assert!(json.get("reported").is_none(), "{json}");
        assert_eq!(
            (from_event.source.as_str(), from_event.reported.as_deref()),
            ("10.99.0.2:5062", None)
        );
        // A Via that differs from the (unrewritten) Uri is still the source.
        let other = LISTED.replace("ViaAddr: 127.0.0.1", "ViaAddr: 192.0.2.7");
        let c = Contact::from_list(&Message::parse(&other)).unwrap();
        assert_eq!(
            (c.source.as_str(), c.reported.as_deref()),
            ("192.0.2.7:5101", None)
        );
    }

    #[test]
    fn sources_come_from_the_uri_when_the_list_has_none() {
        assert_eq!(
            source_of("sip:1901@10.0.0.5:5062;transport=udp"),
            "10.0.0.5:5062"
        );
        assert_eq!(source_of("sip:10.0.0.5"), "10.0.0.5");
    }
}
