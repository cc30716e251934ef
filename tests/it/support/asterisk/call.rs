//! A phone-to-phone call as Asterisk 22.7 sets it up or refuses it, so that tests can
//! show what the portal's configuration does to real calls (shared/asterisk/nat and
//! tls FACTS.md) without any SIP or RTP: the caller's INVITE on its endpoint
//! (SDP negotiation of the inbound leg, res_pjsip_session / res_pjsip_sdp_rtp), the
//! live dialplan of the caller endpoint's `context` from priority 1 (an extension it
//! lacks: 404), `Dial(PJSIP/<endpoint>,...)` as chan_pjsip and
//! `ast_sip_session_create_outgoing` run it (the first contact of the endpoint's AORs
//! that qualify has not found Unreachable, `AST_SIP_CONTACT_FILTER_REACHABLE`; none:
//! cause 3, No route to destination, which `Hangup()` answers as `404 Not Found` with
//! `Reason: Q.850;cause=3`, F-NAT-2), the callee leg's SDP, and where RTP goes (to the
//! address in the phone's SDP, which a phone behind a NAT writes as its private one,
//! unless the endpoint has `rtp_symmetric`: F-NAT-5).
//!
//! Codecs are Asterisk's names (`ulaw`, `alaw`, `g722`, `opus`); the answer's codec is
//! the first of the callee endpoint's `allow` that both phones offer and the caller's
//! endpoint allows (F-TLS-2). `media_encryption=sdes` needs res_srtp
//! (`State::srtp_loaded`, F-TLS-1) and a phone that offers `a=crypto` (F-TLS-3, no
//! optimistic fallback modelled); a=crypto offered to an endpoint without sdes is
//! ignored. Either failure, or no common codec, is `488 Not Acceptable Here`.
//!
//! It refuses (`CallOutcome::NotModelled`) what it does not model rather than guess: a
//! caller that is no endpoint or has no contact, a dialplan application other than
//! `Dial` of one PJSIP endpoint and `Hangup`, a `Hangup` whose cause is not 3, running
//! off the end of the dialplan, and an INVITE sent to a contact whose URI is not where
//! the phone is while qualify has not (yet) found it Unreachable (the caller would wait
//! for Dial's timeout; nothing recorded says what it then gets).

use super::pjsip::{aor_names, Object};
use super::registrar::{Contact, Status};
use super::{Inner, State};

/// What one phone's SDP offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneMedia {
    /// Its codecs in its order, by Asterisk's names.
    pub codecs: Vec<String>,
    /// Whether it offers SRTP (`a=crypto`).
    pub crypto: bool,
}

impl PhoneMedia {
    /// Plain RTP with these codecs.
    pub fn rtp(codecs: &[&str]) -> PhoneMedia {
        PhoneMedia {
            codecs: codecs.iter().map(|c| c.to_string()).collect(),
            crypto: false,
        }
    }

    /// SRTP (SDES, `a=crypto`) with these codecs.
    pub fn srtp(codecs: &[&str]) -> PhoneMedia {
        PhoneMedia {
            crypto: true,
            ..PhoneMedia::rtp(codecs)
        }
    }
}

/// What the calling phone offers in its INVITE and the called phone in its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub caller: PhoneMedia,
    pub callee: PhoneMedia,
}

impl Offer {
    /// Both phones offer these codecs over plain RTP.
    pub fn rtp(codecs: &[&str]) -> Offer {
        Offer {
            caller: PhoneMedia::rtp(codecs),
            callee: PhoneMedia::rtp(codecs),
        }
    }

    /// Both phones offer these codecs over SRTP.
    pub fn srtp(codecs: &[&str]) -> Offer {
        Offer {
            caller: PhoneMedia::srtp(codecs),
            callee: PhoneMedia::srtp(codecs),
        }
    }
}

/// How the call ends up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// The callee answered.
    Answered {
        /// The codec of both legs.
        codec: String,
        /// Whether the callee's phone receives Asterisk's RTP (F-NAT-5).
        media_to_callee: bool,
        /// Whether the caller's phone receives Asterisk's RTP.
        media_to_caller: bool,
    },
    /// The caller gets this final answer.
    Refused {
        status: u16,
        /// The reason phrase (`Not Found`).
        phrase: String,
        /// The Reason header's value (`Q.850;cause=3`), when Asterisk sends one.
        reason: Option<String>,
    },
    /// Something the stand-in does not model; the text says what.
    NotModelled(String),
}

impl CallOutcome {
    /// The status line the caller reads (`SIP/2.0 404 Not Found`), for a refusal.
    pub fn status_line(&self) -> Option<String> {
        match self {
            CallOutcome::Refused { status, phrase, .. } => {
                Some(format!("SIP/2.0 {status} {phrase}"))
            }
            _ => None,
        }
    }

    /// The Reason header line (`Reason: Q.850;cause=3`), for a refusal that has one.
    pub fn reason_header(&self) -> Option<String> {
        match self {
            CallOutcome::Refused {
                reason: Some(r), ..
            } => Some(format!("Reason: {r}")),
            _ => None,
        }
    }
}

fn refused(status: u16, phrase: &str, reason: Option<String>) -> CallOutcome {
    CallOutcome::Refused {
        status,
        phrase: phrase.into(),
        reason,
    }
}

fn not_acceptable() -> CallOutcome {
    refused(488, "Not Acceptable Here", None)
}

fn flag(o: &Object, f: &str) -> bool {
    matches!(o.field(f).as_deref(), Some("true") | Some("yes"))
}

/// `allow` as `(g722|ulaw|alaw)` in its order.
fn allowed(o: &Object) -> Vec<String> {
    o.field("allow")
        .unwrap_or_default()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split('|')
        .filter(|c| !c.is_empty() && *c != "nothing")
        .map(str::to_string)
        .collect()
}

fn sdes(o: &Object) -> bool {
    o.field("media_encryption").as_deref() == Some("sdes")
}

/// The media checks of one leg (`negotiate_incoming_sdp_stream` / the SDP answer):
/// SDES needs res_srtp and a phone that offers crypto.
fn media_ok(st: &State, ep: &Object, phone: &PhoneMedia) -> bool {
    !sdes(ep) || (st.srtp_loaded && phone.crypto)
}

/// Whether Asterisk's RTP reaches a phone: it goes to the address of the phone's SDP
/// (the one the phone claims, its Via address) unless `rtp_symmetric` makes it follow
/// the phone's own RTP (F-NAT-5).
fn media_reaches(ep: &Object, c: &Contact) -> bool {
    flag(ep, "rtp_symmetric") || c.via_addr == c.source.ip().to_string()
}

/// `hangup_cause2sip` of chan_pjsip for the causes modelled.
fn cause_to_sip(cause: u32) -> Option<(u16, &'static str)> {
    match cause {
        3 => Some((404, "Not Found")),
        _ => None,
    }
}

/// The first contact of `ep`'s AORs that qualify has not found Unreachable
/// (`ast_sip_location_retrieve_contact_and_aor_from_list_filtered`).
fn dialable_contact(st: &State, ep: &Object) -> Option<Contact> {
    let infos = st.registrar.peek();
    aor_names(ep).iter().find_map(|aor| {
        infos
            .iter()
            .filter(|i| &i.contact.aor == aor && i.status != Status::Unreachable)
            .map(|i| i.contact.clone())
            .next()
    })
}

/// Any contact of the endpoint's AORs (where the calling phone is).
fn any_contact(st: &State, ep: &Object) -> Option<Contact> {
    let infos = st.registrar.peek();
    aor_names(ep).iter().find_map(|aor| {
        infos
            .iter()
            .find(|i| &i.contact.aor == aor)
            .map(|i| i.contact.clone())
    })
}

/// A call from a phone registered to `from` to the number `dialed`.
pub(crate) fn call(inner: &Inner, from: &str, dialed: &str, offer: &Offer) -> CallOutcome {
    let mut log = Vec::new();
    let mut pbx_started = false;
    let out = {
        let st = inner.state();
        run(&st, from, dialed, offer, &mut pbx_started, &mut log)
    };
    if pbx_started {
        // The caller's channel ran the dialplan: ast_pbx_start's increase_call_count
        // (main/pbx.c) counts it in ast_processed_calls() (AMI CoreStatus). The call
        // has ended by now, so it counts in no `CoreCurrentCalls`.
        inner
            .processed_calls
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    inner.log_lines(log);
    out
}

/// The call; `pbx_started` is set once the caller's channel starts running the dialplan.
fn run(
    st: &State,
    from: &str,
    dialed: &str,
    offer: &Offer,
    pbx_started: &mut bool,
    log: &mut Vec<String>,
) -> CallOutcome {
    let Some(caller_ep) = st.sorcery.get("endpoint", from) else {
        return CallOutcome::NotModelled(format!(
            "an INVITE from '{from}', which is no endpoint, is not modelled"
        ));
    };
    let Some(caller_contact) = any_contact(st, caller_ep) else {
        return CallOutcome::NotModelled(format!(
            "a call from endpoint '{from}' without a registered phone is not modelled"
        ));
    };
    // The inbound leg: the caller's offer against its endpoint.
    if !media_ok(st, caller_ep, &offer.caller) {
        return not_acceptable();
    }
    let caller_allowed = allowed(caller_ep);
    let joint: Vec<&String> = offer
        .caller
        .codecs
        .iter()
        .filter(|c| caller_allowed.contains(c))
        .collect();
    if joint.is_empty() {
        return not_acceptable();
    }
    let context = caller_ep.field("context").unwrap_or_default();
    if !st.dialplan.exists(&context, dialed, 1) {
        return refused(404, "Not Found", None);
    }
    *pbx_started = true;
    let mut priority = 1;
    let mut hangup_cause: Option<u32> = None;
    loop {
        let Some((_, p)) = st.dialplan.find(&context, dialed, priority) else {
            return CallOutcome::NotModelled(format!(
                "running off the end of {dialed}@{context} (priority {priority}) is not modelled"
            ));
        };
        match p.app.to_ascii_lowercase().as_str() {
            "dial" => {
                let target = p.data.split(',').next().unwrap_or("").trim();
                let callee = match target.split_once('/') {
                    Some((tech, ep))
                        if tech.eq_ignore_ascii_case("pjsip")
                            && !ep.is_empty()
                            && !ep.contains(['&', '/', '@', '$']) =>
                    {
                        ep
                    }
                    _ => {
                        return CallOutcome::NotModelled(format!(
                            "Dial({}) is not modelled (only Dial(PJSIP/<endpoint>,...))",
                            p.data
                        ))
                    }
                };
                match dial(st, callee, &joint, offer, log) {
                    Dialed::Answered(codec, callee_media) => {
                        return CallOutcome::Answered {
                            codec,
                            media_to_callee: callee_media,
                            media_to_caller: media_reaches(caller_ep, &caller_contact),
                        }
                    }
                    Dialed::Cause(c) => hangup_cause = Some(c),
                    Dialed::Final(o) => return o,
                }
            }
            "hangup" => {
                let cause = p
                    .data
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .or(hangup_cause)
                    .unwrap_or(16);
                return match cause_to_sip(cause) {
                    Some((status, phrase)) => {
                        refused(status, phrase, Some(format!("Q.850;cause={cause}")))
                    }
                    None => CallOutcome::NotModelled(format!(
                        "hanging up an unanswered call with cause {cause} is not modelled"
                    )),
                };
            }
            other => {
                return CallOutcome::NotModelled(format!(
                    "application '{other}' ({dialed}@{context}:{priority}) is not modelled in calls"
                ))
            }
        }
        priority += 1;
    }
}

enum Dialed {
    /// The codec, and whether RTP reaches the callee.
    Answered(String, bool),
    /// The outgoing channel failed with this cause; the dialplan goes on.
    Cause(u32),
    /// The call ends with this outcome.
    Final(CallOutcome),
}

/// `Dial(PJSIP/<callee>)`: chan_pjsip's request and the outgoing session.
fn dial(
    st: &State,
    callee: &str,
    joint: &[&String],
    offer: &Offer,
    log: &mut Vec<String>,
) -> Dialed {
    let Some(ep) = st.sorcery.get("endpoint", callee) else {
        log.push(format!(
            "ERROR chan_pjsip.c: Unable to create PJSIP channel - endpoint '{callee}' was not found"
        ));
        return Dialed::Cause(3);
    };
    if sdes(ep) && !st.srtp_loaded {
        return Dialed::Final(not_acceptable());
    }
    let Some(contact) = dialable_contact(st, ep) else {
        // ast_sip_session_create_outgoing dials the AOR list itself, which is no URI.
        log.push(format!(
            "ERROR res_pjsip.c: Endpoint '{callee}': Could not create dialog to invalid URI '{}'.  Is endpoint registered and reachable?",
            ep.field("aors").unwrap_or_default()
        ));
        log.push(format!(
            "ERROR chan_pjsip.c: Failed to create outgoing session to endpoint '{callee}'"
        ));
        return Dialed::Cause(3);
    };
    if !contact.reaches_phone() {
        return Dialed::Final(CallOutcome::NotModelled(format!(
            "the INVITE goes to {} where the phone is not ({}), and qualify has not found it Unreachable: not modelled",
            contact.uri, contact.source
        )));
    }
    if !media_ok(st, ep, &offer.callee) {
        return Dialed::Final(not_acceptable());
    }
    let codec = allowed(ep)
        .into_iter()
        .find(|c| joint.contains(&c) && offer.callee.codecs.contains(c));
    match codec {
        Some(c) => Dialed::Answered(c, media_reaches(ep, &contact)),
        None => Dialed::Final(not_acceptable()),
    }
}
