//! The PJSIPShow* manager actions: PJSIPShowContacts (res_pjsip/pjsip_options.c),
//! PJSIPShowRegistrationInboundContactStatuses (res_pjsip_registrar.c), PJSIPShowAors
//! (res_pjsip/location.c), PJSIPShowEndpoints and PJSIPShowEndpoint
//! (res_pjsip/pjsip_configuration.c with the auth, transport, AOR and contact status
//! formatters). Each builds its whole answer: the list response, one event per item,
//! the `…Complete` event. A "not found" is an error whose message ends with a bare LF
//! (F-REG-5).

use super::pjsip::{self, aor_names, Object, AOR, AUTH, ENDPOINT};
use super::registrar::{Batch, Contact, ContactInfo};
use super::{Inner, State};

/// `ast_to_camel_case`: each `_` separated word capitalised.
fn camel(name: &str) -> String {
    name.split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn action_id(id: &str) -> String {
    if id.is_empty() {
        String::new()
    } else {
        format!("ActionID: {id}\r\n")
    }
}

/// `ast_sip_create_ami_event`.
fn event(name: &str, id: &str) -> String {
    format!("Event: {name}\r\n{}", action_id(id))
}

/// `astman_send_listack`.
fn listack(id: &str, msg: &str) -> String {
    format!(
        "Response: Success\r\n{}EventList: start\r\nMessage: {msg}\r\n\r\n",
        action_id(id)
    )
}

/// `astman_send_list_complete_start` + `_end`.
fn complete(name: &str, id: &str, n: usize) -> String {
    format!(
        "Event: {name}\r\n{}EventList: Complete\r\nListItems: {n}\r\n\r\n",
        action_id(id)
    )
}

/// `astman_send_error` with the message as given (these end with `\n`).
fn error(id: &str, msg: &str) -> String {
    format!("Response: Error\r\n{}Message: {msg}\r\n\r\n", action_id(id))
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// One ContactList event (the contact's sorcery objectset, then its status).
fn contact_list(id: &str, i: &ContactInfo) -> String {
    let c = &i.contact;
    let mut out = event("ContactList", id);
    for (k, v) in [
        ("ObjectType", "contact".to_string()),
        ("ObjectName", c.id.clone()),
        ("ViaAddr", c.via_addr.clone()),
        ("QualifyTimeout", format!("{:.6}", c.qualify_timeout)),
        ("Qualify2xxOnly", c.qualify_2xx_only.to_string()),
        ("CallId", c.call_id.clone()),
        ("RegServer", String::new()),
        ("PruneOnBoot", "no".into()),
        ("Path", c.path.clone()),
        ("Endpoint", c.endpoint.clone()),
        ("ViaPort", c.via_port.to_string()),
        ("AuthenticateQualify", yes_no(c.authenticate_qualify).into()),
        ("Uri", c.uri.clone()),
        ("QualifyFrequency", c.qualify_frequency.to_string()),
        ("UserAgent", c.user_agent.clone()),
        ("ExpirationTime", c.expiration_time().to_string()),
        ("OutboundProxy", c.outbound_proxy.clone()),
    ] {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&status_lines(i));
    out.push_str("\r\n");
    out
}

fn status_lines(i: &ContactInfo) -> String {
    format!(
        "Status: {}\r\nRoundtripUsec: {}\r\n",
        i.status.label(),
        i.roundtrip_usec
            .map(|r| r.to_string())
            .unwrap_or_else(|| "N/A".into())
    )
}

/// `ast_sip_format_contact_ami`: one ContactStatusDetail.
fn contact_status_detail(id: &str, i: &ContactInfo, endpoint: &str) -> String {
    let c = &i.contact;
    let mut out = event("ContactStatusDetail", id);
    out.push_str(&format!(
        "AOR: {}\r\nURI: {}\r\nUserAgent: {}\r\nRegExpire: {}\r\n",
        c.aor,
        c.uri,
        c.user_agent,
        c.expiration_time()
    ));
    if !c.via_addr.is_empty() {
        out.push_str(&format!("ViaAddress: {}", c.via_addr));
        if c.via_port != 0 {
            out.push_str(&format!(":{}", c.via_port));
        }
        out.push_str("\r\n");
    }
    if !c.call_id.is_empty() {
        out.push_str(&format!("CallID: {}\r\n", c.call_id));
    }
    out.push_str(&status_lines(i));
    out.push_str(&format!(
        "EndpointName: {endpoint}\r\nID: {}\r\nAuthenticateQualify: {}\r\nOutboundProxy: {}\r\nPath: {}\r\nQualifyFrequency: {}\r\nQualifyTimeout: {:.3}\r\nQualify2xxOnly: {}\r\n\r\n",
        c.id,
        c.authenticate_qualify as u8,
        c.outbound_proxy,
        c.path,
        c.qualify_frequency,
        c.qualify_timeout,
        c.qualify_2xx_only as u8
    ));
    out
}

/// `ObjectType`/`ObjectName` and the options of `specs` in order (camel case).
fn objectset(o: &Object, specs: &[pjsip::OptSpec], stop_at: Option<&str>) -> String {
    let mut out = format!("ObjectType: {}\r\nObjectName: {}\r\n", o.otype, o.id);
    for spec in specs {
        if Some(spec.name) == stop_at {
            break;
        }
        if spec.name == "type" {
            continue;
        }
        let v = o.field(spec.name).unwrap_or_default();
        out.push_str(&format!("{}: {v}\r\n", camel(spec.name)));
    }
    out
}

/// `sip_aor_to_ami`: the AOR's objectset with `contact` as `Contacts` (the
/// registered contacts as `aor/uri`, comma separated).
fn aor_objectset(aor: &Object, contacts: &[Contact]) -> String {
    let mut out = format!("ObjectType: aor\r\nObjectName: {}\r\n", aor.id);
    for spec in AOR.iter().filter(|s| s.name != "type") {
        if spec.name == "contact" {
            let list: Vec<String> = contacts
                .iter()
                .map(|c| format!("{}/{}", c.aor, c.uri))
                .collect();
            out.push_str(&format!("Contacts: {}\r\n", list.join(",")));
        } else {
            out.push_str(&format!(
                "{}: {}\r\n",
                camel(spec.name),
                aor.field(spec.name).unwrap_or_default()
            ));
        }
    }
    out
}

/// The order TransportDetail lists a transport's options in (ami_reg_02).
const TRANSPORT_DETAIL: &[&str] = &[
    "websocket_write_timeout",
    "cos",
    "tcp_keepalive_enable",
    "protocol",
    "symmetric_transport",
    "domain",
    "verify_server",
    "local_net",
    "bind",
    "allow_wildcard_certs",
    "tcp_keepalive_interval_time",
    "async_operations",
    "external_media_address",
    "method",
    "external_signaling_address",
    "require_client_cert",
    "tcp_keepalive_idle_time",
    "tos",
    "ca_list_path",
    "cipher",
    "cert_file",
    "external_signaling_port",
    "password",
    "allow_reload",
    "verify_client",
    "tcp_keepalive_probe_count",
    "priv_key_file",
    "ca_list_file",
];

impl Inner {
    /// Runs `f` on the state with a batch for the contacts that expire on the way
    /// (`ast_sip_location_retrieve_aor_contacts` deletes them), publishes that batch.
    pub(crate) fn with_state<T>(&self, f: impl FnOnce(&Inner, &mut State, &mut Batch) -> T) -> T {
        let mut st = self.state();
        let mut b = Batch::new(st.registrar.order);
        let out = f(self, &mut st, &mut b);
        self.publish_batch(b);
        out
    }

    /// The contacts of every configured AOR (expired ones deleted on the way).
    pub(crate) fn all_aor_contacts(&self, st: &mut State, b: &mut Batch) -> pjsip::AorContacts {
        let aors: Vec<String> = st.sorcery.all("aor").iter().map(|a| a.id.clone()).collect();
        aors.into_iter()
            .map(|a| {
                let infos = self
                    .aor_contacts(st, b, &a)
                    .into_iter()
                    .map(|c| st.registrar.info(c))
                    .collect();
                (a, infos)
            })
            .collect()
    }
}

/// PJSIPShowContacts: every contact in astdb, orphans included, by id.
pub(crate) fn show_contacts(inner: &Inner, id: &str) -> String {
    let infos = inner.state().registrar.infos();
    if infos.is_empty() {
        return error(id, "No Contacts found\n");
    }
    let mut out = listack(
        id,
        "A listing of Contacts follows, presented as ContactList events",
    );
    for i in &infos {
        out.push_str(&contact_list(id, i));
    }
    out.push_str(&complete("ContactListComplete", id, infos.len()));
    out
}

/// PJSIPShowRegistrationInboundContactStatuses: a ContactStatusDetail per contact in
/// astdb; an empty list is a success (F-REG-5).
pub(crate) fn show_registration_contact_statuses(inner: &Inner, id: &str) -> String {
    let infos = inner.state().registrar.infos();
    let mut out = listack(
        id,
        "Following are ContactStatusEvents for each Inbound registration",
    );
    for i in &infos {
        out.push_str(&contact_status_detail(id, i, &i.contact.endpoint));
    }
    out.push_str(&complete("ContactStatusDetailComplete", id, infos.len()));
    out
}

/// PJSIPShowAors.
pub(crate) fn show_aors(inner: &Inner, id: &str) -> String {
    inner.with_state(|inner, st, b| {
        let aors: Vec<Object> = st.sorcery.all("aor").into_iter().cloned().collect();
        if aors.is_empty() {
            return error(id, "No AORs found\n");
        }
        let mut out = listack(id, "A listing of AORs follows, presented as AorList events");
        for aor in &aors {
            let contacts = inner.aor_contacts(st, b, &aor.id);
            out.push_str(&event("AorList", id));
            out.push_str(&aor_objectset(aor, &contacts));
            out.push_str("\r\n");
        }
        out.push_str(&complete("AorListComplete", id, aors.len()));
        out
    })
}

/// PJSIPShowEndpoints.
pub(crate) fn show_endpoints(inner: &Inner, id: &str) -> String {
    inner.with_state(|inner, st, b| {
        let endpoints: Vec<Object> = st.sorcery.all("endpoint").into_iter().cloned().collect();
        if endpoints.is_empty() {
            return error(id, "No endpoints found\n");
        }
        let mut out = listack(
            id,
            "A listing of Endpoints follows, presented as EndpointList events",
        );
        for e in &endpoints {
            out.push_str(&event("EndpointList", id));
            out.push_str(&format!(
                "ObjectType: endpoint\r\nObjectName: {}\r\nTransport: {}\r\nAor: {}\r\nAuths: {}\r\nOutboundAuths: {}\r\n",
                e.id,
                e.field("transport").unwrap_or_default(),
                e.field("aors").unwrap_or_default(),
                e.list("auth").join(","),
                e.list("outbound_auth").join(","),
            ));
            for a in aor_names(e) {
                if st.sorcery.get("aor", &a).is_none() {
                    continue;
                }
                out.push_str("Contacts: ");
                for c in inner.aor_contacts(st, b, &a) {
                    out.push_str(&format!("{}/{},", c.aor, c.uri));
                }
                out.push_str("\r\n");
            }
            out.push_str(&format!(
                "DeviceState: {}\r\nActiveChannels: 0\r\n\r\n",
                pjsip::device_state(&st.registrar, e)
            ));
        }
        out.push_str(&complete("EndpointListComplete", id, endpoints.len()));
        out
    })
}

/// PJSIPShowEndpoint: EndpointDetail, then the auth, transport, AOR and contact status
/// formatters' events.
pub(crate) fn show_endpoint(inner: &Inner, id: &str, name: &str) -> String {
    if name.is_empty() {
        return error(id, "PJSIPShowEndpoint requires an endpoint name\n");
    }
    let name = if name.len() >= 6 && name[..6].eq_ignore_ascii_case("pjsip/") {
        &name[6..]
    } else {
        name
    };
    inner.with_state(|inner, st, b| {
        let Some(e) = st.sorcery.get("endpoint", name).cloned() else {
            return error(id, &format!("Unable to retrieve endpoint {name}\n"));
        };
        let mut out = listack(
            id,
            "Following are Events for each object associated with the Endpoint",
        );
        out.push_str(&event("EndpointDetail", id));
        out.push_str(&objectset(&e, ENDPOINT, Some("contact_deny")));
        out.push_str(&format!(
            "DeviceState: {}\r\nActiveChannels: 0\r\n\r\n",
            pjsip::device_state(&st.registrar, &e)
        ));
        let mut count = 0;
        let mut failed = false;
        for a in e.list("auth").into_iter().chain(e.list("outbound_auth")) {
            if let Some(auth) = st.sorcery.get("auth", &a) {
                out.push_str(&event("AuthDetail", id));
                out.push_str(&objectset(auth, AUTH, None));
                out.push_str(&format!("EndpointName: {}\r\n\r\n", e.id));
                count += 1;
            }
        }
        let transport = e.field("transport").unwrap_or_default();
        if !transport.is_empty() {
            match st.sorcery.get("transport", &transport) {
                Some(t) => {
                    out.push_str(&event("TransportDetail", id));
                    out.push_str(&format!(
                        "ObjectType: transport\r\nObjectName: {}\r\n",
                        t.id
                    ));
                    for f in TRANSPORT_DETAIL {
                        out.push_str(&format!(
                            "{}: {}\r\n",
                            camel(f),
                            t.field(f).unwrap_or_default()
                        ));
                    }
                    out.push_str(&format!("EndpointName: {}\r\n\r\n", e.id));
                    count += 1;
                }
                None => {
                    out.push_str(&error(
                        id,
                        &format!("Unable to retrieve transport {transport}\n"),
                    ));
                    failed = true;
                }
            }
        }
        let aors: Vec<Object> = aor_names(&e)
            .iter()
            .filter_map(|a| st.sorcery.get("aor", a).cloned())
            .collect();
        if !failed {
            for aor in &aors {
                let contacts = inner.aor_contacts(st, b, &aor.id);
                out.push_str(&event("AorDetail", id));
                out.push_str(&aor_objectset(aor, &contacts));
                out.push_str(&format!(
                    "TotalContacts: {n}\r\nContactsRegistered: {n}\r\nEndpointName: {}\r\n\r\n",
                    e.id,
                    n = contacts.len()
                ));
                count += 1;
            }
            for aor in &aors {
                for c in inner.aor_contacts(st, b, &aor.id) {
                    let i = st.registrar.info(c);
                    out.push_str(&contact_status_detail(id, &i, &e.id));
                    count += 1;
                }
            }
        } else {
            out.push_str(&error(id, &format!("Unable to format endpoint {name}\n")));
        }
        out.push_str(&complete("EndpointDetailComplete", id, count + 1));
        out
    })
}

#[cfg(test)]
mod tests {
    use super::camel;

    #[test]
    fn camel_case_of_option_names() {
        assert_eq!(camel("rpid_immediate"), "RpidImmediate");
        assert_eq!(camel("100rel"), "100rel");
        assert_eq!(camel("qualify_2xx_only"), "Qualify2xxOnly");
        assert_eq!(camel("t38_udptl_maxdatagram"), "T38UdptlMaxdatagram");
    }
}
