//! A phone behind a NAT, and calls, in the stand-in: the lab's recordings of a real
//! Asterisk 22.7 (tests/fixtures/asterisk/nat, byte-identical copies of
//! shared/asterisk/nat) compared byte for byte with what the stand-in answers, and the
//! call outcomes of nat/FACTS.md and tls/FACTS.md. The NATed phone's addresses
//! (10.99.0.2 private, 10.97.0.2 public) are data only: nothing is sent anywhere.

use std::net::SocketAddr;
use std::time::Duration;

use super::{check_line, Ami, Lab, SEED_ROUTING};
use crate::support::asterisk::{
    CallOutcome, ContactState, Offer, Options, PhoneMedia, Registration,
};
use crate::support::wait_until;

const CONTACTLIST_PLAIN: &[u8] = fixture_bytes!("nat/ami_contactlist_nat_plain.bin");
const CONTACTLIST_REWRITE: &[u8] = fixture_bytes!("nat/ami_contactlist_nat_rewrite.bin");
const EVENTS_PLAIN: &[u8] = fixture_bytes!("nat/ami_events_nat_plain.bin");
const EVENTS_REWRITE: &[u8] = fixture_bytes!("nat/ami_events_nat_rewrite.bin");
const CALL_PLAIN: &[u8] = fixture_bytes!("nat/sip_call_to_nat_phone_plain.txt");
const CALL_REWRITE: &[u8] = fixture_bytes!("nat/sip_call_to_nat_phone_rewrite.txt");

/// The three options of F-NAT-3.
const NAT_OPTIONS: &str = "rtp_symmetric=yes\nforce_rport=yes\nrewrite_contact=yes\n";

/// One extension as pbx-portal renders it today (direct_media=no, qualify_frequency=60,
/// remove_existing=yes), with `extra` endpoint options.
fn extension(ext: &str, allow: &str, extra: &str) -> String {
    format!(
        "[{ext}]\ntype=endpoint\ncontext=synergy-internal\ndisallow=all\nallow={allow}\n\
         transport=transport-udp\ndirect_media=no\ncallerid=\"Phone {ext}\" <{ext}>\n\
         auth={ext}\naors={ext}\n{extra}\n\
         [{ext}]\ntype=auth\nauth_type=userpass\nusername={ext}\npassword=SECRET{ext}\n\n\
         [{ext}]\ntype=aor\nmax_contacts=1\nremove_existing=yes\nqualify_frequency=60\n\n"
    )
}

/// 1000 on the LAN, 1001 with `nat` endpoint options; qualify 100 times faster
/// (qualify_timeout 3 s in 30 ms).
async fn nat_lab(nat: &str) -> Lab {
    let opts = Options {
        qualify_time_scale: 0.01,
        ..Options::default()
    };
    let conf = extension("1000", "ulaw,alaw", "") + &extension("1001", "ulaw,alaw", nat);
    Lab::start_with(opts, move |_, pjsip, dial| {
        std::fs::write(pjsip.join("generated_endpoints.conf"), conf).unwrap();
        std::fs::write(dial.join("generated_routing.conf"), SEED_ROUTING).unwrap();
    })
    .await
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const PHONE_URI: &str = "sip:1001@10.99.0.2:5062;transport=UDP";
const REWRITTEN: &str = "sip:1001@10.97.0.2:5062;x-ast-orig-host=10.99.0.2:5062";

/// The lab's sipp in its namespace: 10.99.0.2:5062 in Via and Contact, its packets
/// masqueraded to 10.97.0.2:5062.
fn nat_phone(call_id: &str) -> Registration {
    let mut r = Registration::behind_nat(
        "1001",
        PHONE_URI,
        addr("10.99.0.2:5062"),
        addr("10.97.0.2:5062"),
    );
    r.user_agent = "SIPp-lab".into();
    r.call_id = call_id.into();
    r
}

/// The caller of the recorded calls: sipp on the LAN at 127.0.0.1:5099.
fn lan_phone() -> Registration {
    let mut r = Registration::new("1000", "sip:1000@127.0.0.1:5099", addr("127.0.0.1:5099"));
    r.user_agent = "SIPp-lab".into();
    r
}

fn us(n: u64) -> Option<Duration> {
    Some(Duration::from_micros(n))
}

async fn wait_status(lab: &Lab, uri: &str, status: ContactState, rtt: Option<i64>) {
    wait_until(&format!("{uri} lists as {status:?}"), super::IO, || {
        lab.ast
            .contacts()
            .iter()
            .any(|c| c.contact.uri == uri && c.status == status && c.roundtrip_usec == rtt)
    })
    .await
}

/// The recorded bytes as lines, each with its CRLF (the last one as recorded, even
/// when the recording stopped before the message's blank line).
fn lines(recorded: &[u8]) -> Vec<String> {
    String::from_utf8(recorded.to_vec())
        .unwrap()
        .split_inclusive("\r\n")
        .map(str::to_string)
        .collect()
}

/// Reads the next `n` recorded lines from the connection and compares them as the
/// transcript replays do (`check_line`).
async fn expect_lines(a: &mut Ami, recorded: &[String], what: &str) {
    for (i, want) in recorded.iter().enumerate() {
        let got = a.line().await;
        check_line(want, &got, &format!("{what} line {}", i + 1));
    }
}

/// The number of lines up to and including the first blank line at or after `from`.
fn message_end(recorded: &[String], from: usize) -> usize {
    recorded[from..]
        .iter()
        .position(|l| l == "\r\n")
        .map_or(recorded.len(), |p| from + p + 1)
}

/// `Login` (no ActionID, events as `events`) + `PJSIPShowContacts` with ActionID nat1,
/// compared with a recorded `ami_contactlist_nat_*.bin`.
async fn replay_contactlist(lab: &Lab, recorded: &[u8]) {
    let rec = lines(recorded);
    let mut a = lab.ami().await;
    a.send("Action: Login\r\nUsername: portal\r\nSecret: portal-secret\r\nEvents: off\r\n\r\n")
        .await;
    let login = message_end(&rec, 1);
    expect_lines(&mut a, &rec[..login], "login").await;
    a.send("Action: PJSIPShowContacts\r\nActionID: nat1\r\n\r\n")
        .await;
    expect_lines(&mut a, &rec[login..], "PJSIPShowContacts").await;
}

#[tokio::test]
async fn contactlist_of_a_nated_phone_without_nat_options() {
    // F-NAT-1: stored as the phone wrote it, Via private; the OPTIONS go to 10.99.0.2
    // and never arrive, though the phone would answer them.
    let lab = nat_lab("").await;
    lab.ast.answer_qualify("1001", PHONE_URI, us(813));
    lab.ast
        .register_with(&nat_phone("1-14123@10.99.0.2"))
        .unwrap();
    wait_status(&lab, PHONE_URI, ContactState::Unreachable, None).await;
    replay_contactlist(&lab, CONTACTLIST_PLAIN).await;
}

#[tokio::test]
async fn contactlist_of_a_nated_phone_with_rewrite_contact() {
    // F-NAT-3: the Uri is where the packets came from, x-ast-orig-host what the phone
    // claimed (so is ViaAddr/ViaPort); the OPTIONS reach it (RTT as recorded).
    let lab = nat_lab(NAT_OPTIONS).await;
    lab.ast.answer_qualify("1001", REWRITTEN, us(813));
    lab.ast
        .register_with(&nat_phone("1-13960@10.99.0.2"))
        .unwrap();
    wait_status(&lab, REWRITTEN, ContactState::Reachable, Some(813)).await;
    replay_contactlist(&lab, CONTACTLIST_REWRITE).await;
}

/// An `Events: system` connection opened before the phone registers, compared with a
/// recorded `ami_events_nat_*.bin` up to the last recorded event.
async fn replay_events(lab: &Lab, recorded: &[u8], reg: Registration) {
    let rec = lines(recorded);
    let mut a = lab.ami().await;
    a.send("Action: Login\r\nUsername: portal\r\nSecret: portal-secret\r\nEvents: system\r\n\r\n")
        .await;
    let login = message_end(&rec, 1);
    let booted = message_end(&rec, login);
    expect_lines(&mut a, &rec[..booted], "login and FullyBooted").await;
    lab.ast.register_with(&reg).unwrap();
    expect_lines(&mut a, &rec[booted..], "events").await;
}

#[tokio::test]
async fn events_of_a_nated_phone_without_nat_options() {
    // F-NAT-6: NonQualified, Unreachable qualify_timeout later, no PeerStatus.
    let lab = nat_lab("").await;
    lab.ast.answer_qualify("1001", PHONE_URI, us(625));
    replay_events(&lab, EVENTS_PLAIN, nat_phone("1-14123@10.99.0.2")).await;
}

#[tokio::test]
async fn events_of_a_nated_phone_with_rewrite_contact() {
    // F-NAT-6: NonQualified, PeerStatus Reachable, ContactStatus Reachable (625 us).
    let lab = nat_lab(NAT_OPTIONS).await;
    lab.ast.answer_qualify("1001", REWRITTEN, us(625));
    replay_events(&lab, EVENTS_REWRITE, nat_phone("1-13960@10.99.0.2")).await;
}

#[tokio::test]
async fn the_cli_cuts_the_rewritten_contact_as_recorded() {
    // F-NAT-4: `1001/sip:1001@10.97.0.2:5062;x-ast-orig-host=1 ... Avail`.
    let lab = nat_lab(NAT_OPTIONS).await;
    lab.ast.answer_qualify("1001", REWRITTEN, us(813));
    lab.ast.register_with(&nat_phone("c@10.99.0.2")).unwrap();
    wait_status(&lab, REWRITTEN, ContactState::Reachable, Some(813)).await;
    let out = lab.ast.cli("pjsip show contacts");
    let row = out
        .lines()
        .find(|l| l.contains("Contact:  1001/"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("1001/sip:1001@10.97.0.2:5062;x-ast-orig-host=1 ") && row.contains("Avail"),
        "{row:?}"
    );
}

#[tokio::test]
async fn rewrite_contact_keeps_a_lan_phone_as_it_wrote_itself() {
    // rewrite_uri: the host is the source's, so no x-ast-orig-host; the UDP transport
    // parameter goes; the Via stays.
    let lab = nat_lab(NAT_OPTIONS).await;
    let mut r = Registration::new(
        "1001",
        "sip:1001@127.0.0.1:5111;transport=UDP",
        addr("127.0.0.1:5111"),
    );
    r.expires = Some(Duration::from_secs(600));
    lab.ast.register_with(&r).unwrap();
    let c = lab.ast.contacts()[0].contact.clone();
    assert_eq!(
        (c.uri.as_str(), c.via_addr.as_str(), c.via_port),
        ("sip:1001@127.0.0.1:5111", "127.0.0.1", 5111)
    );
    // The phone unregisters the contact it registered.
    lab.ast
        .unregister("1001", "sip:1001@127.0.0.1:5111;transport=UDP")
        .unwrap();
    assert!(lab.ast.contacts().is_empty());
}

#[tokio::test]
async fn force_rport_sends_the_answer_to_the_port_the_packets_came_from() {
    // A phone whose Via has no rport behind a NAT that changes its port: with
    // force_rport (Asterisk's default, F-TLS-7) the 200 OK goes to the packets' source;
    // without it to the Via's port, where the phone is not. Asterisk stores the contact
    // either way.
    let mut r = nat_phone("rp@10.99.0.2");
    r.source = addr("10.97.0.2:40123");
    r.rport = false;
    let lab = nat_lab("rewrite_contact=yes\n").await;
    assert_eq!(lab.ast.register_reply_to(&r), Ok(r.source));
    let lab = nat_lab("rewrite_contact=yes\nforce_rport=no\n").await;
    assert_eq!(
        lab.ast.register_reply_to(&r),
        Ok(addr("10.97.0.2:5062")),
        "received= the source address, the Via's port"
    );
    // Only the host decides x-ast-orig-host; the port is the packets'.
    assert_eq!(
        lab.ast.contacts()[0].contact.uri,
        "sip:1001@10.97.0.2:40123;x-ast-orig-host=10.99.0.2:5062"
    );
    // A phone that asks for rport gets it without force_rport.
    r.rport = true;
    assert_eq!(lab.ast.register_reply_to(&r), Ok(r.source));
}

// ---------------------------------------------------------------------------------
// Calls

/// The status line and Reason header of the caller's final answer in a recorded call
/// (the last error response: the first is the 401 challenge of the unauthenticated
/// INVITE).
fn recorded_refusal(recorded: &[u8]) -> (String, String) {
    let text = String::from_utf8(recorded.to_vec()).unwrap();
    let status = text
        .lines()
        .rfind(|l| l.starts_with("SIP/2.0 4"))
        .unwrap()
        .to_string();
    let reason = text
        .lines()
        .find(|l| l.starts_with("Reason: "))
        .unwrap()
        .to_string();
    (status, reason)
}

async fn registered(nat: &str) -> Lab {
    let lab = nat_lab(nat).await;
    lab.ast
        .answer_qualify("1000", "sip:1000@127.0.0.1:5099", us(300));
    lab.ast.answer_qualify("1001", PHONE_URI, us(625));
    lab.ast.answer_qualify("1001", REWRITTEN, us(625));
    lab.ast.register_with(&lan_phone()).unwrap();
    lab.ast.register_with(&nat_phone("1@10.99.0.2")).unwrap();
    lab
}

#[tokio::test]
async fn a_call_to_a_nated_phone_without_nat_options_fails_with_404_cause_3() {
    // F-NAT-2, compared with the recorded caller's side.
    let lab = registered("").await;
    wait_status(&lab, PHONE_URI, ContactState::Unreachable, None).await;
    lab.ast.clear_log();
    let out = lab.ast.call("1000", "1001", &Offer::rtp(&["ulaw"]));
    let (status, reason) = recorded_refusal(CALL_PLAIN);
    assert_eq!(out.status_line(), Some(status), "{out:?}");
    assert_eq!(out.reason_header(), Some(reason), "{out:?}");
    assert_eq!(
        lab.ast.log(),
        [
            "ERROR res_pjsip.c: Endpoint '1001': Could not create dialog to invalid URI '1001'.  Is endpoint registered and reachable?",
            "ERROR chan_pjsip.c: Failed to create outgoing session to endpoint '1001'",
        ]
    );
}

#[tokio::test]
async fn a_call_to_a_nated_phone_with_nat_options_is_answered_with_media() {
    // F-NAT-3 / F-NAT-5: answered (the recording's 200 OK carries PCMU), RTP reaches the
    // phone with rtp_symmetric.
    let lab = registered(NAT_OPTIONS).await;
    wait_status(&lab, REWRITTEN, ContactState::Reachable, Some(625)).await;
    let text = String::from_utf8(CALL_REWRITE.to_vec()).unwrap();
    assert!(text.contains("SIP/2.0 200 OK") && text.contains("m=audio 20274 RTP/AVP 0"));
    assert_eq!(
        lab.ast.call("1000", "1001", &Offer::rtp(&["ulaw"])),
        CallOutcome::Answered {
            codec: "ulaw".into(),
            media_to_callee: true,
            media_to_caller: true,
        }
    );
}

#[tokio::test]
async fn without_rtp_symmetric_the_nated_callee_hears_nothing() {
    // F-NAT-5: set up the same way, but Asterisk sends to the private c= address.
    let lab = registered("force_rport=yes\nrewrite_contact=yes\n").await;
    wait_status(&lab, REWRITTEN, ContactState::Reachable, Some(625)).await;
    assert_eq!(
        lab.ast.call("1000", "1001", &Offer::rtp(&["ulaw"])),
        CallOutcome::Answered {
            codec: "ulaw".into(),
            media_to_callee: false,
            media_to_caller: true,
        }
    );
}

#[tokio::test]
async fn a_number_outside_the_callers_context_is_404_and_the_dialplan_must_be_reloaded() {
    let lab = registered(NAT_OPTIONS).await;
    wait_status(&lab, REWRITTEN, ContactState::Reachable, Some(625)).await;
    let out = lab.ast.call("1000", "1999", &Offer::rtp(&["ulaw"]));
    assert_eq!(
        (out.status_line().as_deref(), out.reason_header()),
        (Some("SIP/2.0 404 Not Found"), None)
    );
    // 1999 exists in the files but the dialplan was not reloaded: still 404.
    lab.write_routing(&format!(
        "{SEED_ROUTING}exten => 1999,1,Dial(PJSIP/1001,25)\n same => n,Hangup()\n"
    ));
    let out = lab.ast.call("1000", "1999", &Offer::rtp(&["ulaw"]));
    assert_eq!(out.status_line().as_deref(), Some("SIP/2.0 404 Not Found"));
    lab.ast.cli("dialplan reload");
    assert!(matches!(
        lab.ast.call("1000", "1999", &Offer::rtp(&["ulaw"])),
        CallOutcome::Answered { .. }
    ));
}

#[tokio::test]
async fn a_call_to_an_unregistered_user_is_404_cause_3() {
    let lab = nat_lab(NAT_OPTIONS).await;
    lab.ast.register_with(&lan_phone()).unwrap();
    let out = lab.ast.call("1000", "1001", &Offer::rtp(&["ulaw"]));
    assert_eq!(
        (out.status_line().as_deref(), out.reason_header().as_deref()),
        (Some("SIP/2.0 404 Not Found"), Some("Reason: Q.850;cause=3"))
    );
}

#[tokio::test]
async fn no_common_codec_is_488() {
    let lab = registered(NAT_OPTIONS).await;
    wait_status(&lab, REWRITTEN, ContactState::Reachable, Some(625)).await;
    let not_acceptable = Some("SIP/2.0 488 Not Acceptable Here".to_string());
    // The caller's phone and its endpoint share nothing.
    let out = lab.ast.call("1000", "1001", &Offer::rtp(&["g722"]));
    assert_eq!(out.status_line(), not_acceptable);
    // The callee's phone shares nothing with the caller's.
    let offer = Offer {
        caller: PhoneMedia::rtp(&["ulaw"]),
        callee: PhoneMedia::rtp(&["alaw"]),
    };
    assert_eq!(
        lab.ast.call("1000", "1001", &offer).status_line(),
        not_acceptable
    );
}

/// Two TLS endpoints as tls/FACTS.md sets them up: sdes, not optimistic, g722 first,
/// the NAT options; both phones registered on the LAN.
async fn srtp_lab() -> Lab {
    let tls = "media_encryption=sdes\nmedia_encryption_optimistic=no\n".to_string() + NAT_OPTIONS;
    let conf =
        extension("1000", "g722,ulaw,alaw", &tls) + &extension("1001", "g722,ulaw,alaw", &tls);
    let lab = Lab::start_with(Options::default(), move |_, pjsip, dial| {
        std::fs::write(pjsip.join("generated_endpoints.conf"), conf).unwrap();
        std::fs::write(dial.join("generated_routing.conf"), SEED_ROUTING).unwrap();
    })
    .await;
    lab.ast.register_with(&lan_phone()).unwrap();
    let callee = Registration::new("1001", "sip:1001@127.0.0.1:5098", addr("127.0.0.1:5098"));
    lab.ast.register_with(&callee).unwrap();
    lab
}

#[tokio::test]
async fn srtp_calls_negotiate_g722_and_need_res_srtp_and_crypto() {
    let lab = srtp_lab().await;
    let phones = ["opus", "g722", "ulaw", "alaw"];
    // F-TLS-2.
    assert_eq!(
        lab.ast.call("1000", "1001", &Offer::srtp(&phones)),
        CallOutcome::Answered {
            codec: "g722".into(),
            media_to_callee: true,
            media_to_caller: true,
        }
    );
    let not_acceptable = Some("SIP/2.0 488 Not Acceptable Here".to_string());
    // F-TLS-3: a phone offering plain RTP, calling or called.
    let plain = lab.ast.call("1000", "1001", &Offer::rtp(&phones));
    assert_eq!(plain.status_line(), not_acceptable);
    let offer = Offer {
        caller: PhoneMedia::srtp(&phones),
        callee: PhoneMedia::rtp(&phones),
    };
    assert_eq!(
        lab.ast.call("1000", "1001", &offer).status_line(),
        not_acceptable
    );
    // F-TLS-1: without res_srtp every call fails.
    lab.ast.set_srtp_loaded(false);
    let out = lab.ast.call("1000", "1001", &Offer::srtp(&phones));
    assert_eq!(out.status_line(), not_acceptable);
    lab.ast.set_srtp_loaded(true);
    assert!(matches!(
        lab.ast.call("1000", "1001", &Offer::srtp(&phones)),
        CallOutcome::Answered { .. }
    ));
}

#[tokio::test]
async fn without_res_srtp_a_call_to_an_sdes_endpoint_fails_too() {
    // F-TLS-1: "every call to or from them": a plain caller, an sdes callee.
    let lab = nat_lab("media_encryption=sdes\n").await;
    lab.ast.register_with(&lan_phone()).unwrap();
    let callee = Registration::new("1001", "sip:1001@127.0.0.1:5098", addr("127.0.0.1:5098"));
    lab.ast.register_with(&callee).unwrap();
    lab.ast.set_srtp_loaded(false);
    let offer = Offer {
        caller: PhoneMedia::rtp(&["ulaw"]),
        callee: PhoneMedia::srtp(&["ulaw"]),
    };
    assert_eq!(
        lab.ast
            .call("1000", "1001", &offer)
            .status_line()
            .as_deref(),
        Some("SIP/2.0 488 Not Acceptable Here")
    );
    lab.ast.set_srtp_loaded(true);
    assert!(matches!(
        lab.ast.call("1000", "1001", &offer),
        CallOutcome::Answered { .. }
    ));
}

#[tokio::test]
async fn what_the_call_model_does_not_know_it_refuses() {
    // The NATed contact before qualify found it Unreachable: the INVITE would go to
    // 10.99.0.2; nothing recorded says what the caller then gets.
    let opts = Options {
        qualify_time_scale: 100.0,
        ..Options::default()
    };
    let conf = extension("1000", "ulaw", "") + &extension("1001", "ulaw", "");
    let lab = Lab::start_with(opts, move |_, pjsip, dial| {
        std::fs::write(pjsip.join("generated_endpoints.conf"), conf).unwrap();
        std::fs::write(dial.join("generated_routing.conf"), SEED_ROUTING).unwrap();
    })
    .await;
    lab.ast.register_with(&lan_phone()).unwrap();
    lab.ast.register_with(&nat_phone("x@10.99.0.2")).unwrap();
    let out = lab.ast.call("1000", "1001", &Offer::rtp(&["ulaw"]));
    assert!(matches!(out, CallOutcome::NotModelled(_)), "{out:?}");
    // A caller that is no endpoint.
    let out = lab.ast.call("2000", "1001", &Offer::rtp(&["ulaw"]));
    assert!(matches!(out, CallOutcome::NotModelled(_)), "{out:?}");
}
