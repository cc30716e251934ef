//! SIP registrations and contact qualify in the stand-in: the recorded `ami_reg_*` and
//! `ami_qual_*` transcripts (tests/fixtures/asterisk/registration, a byte-identical copy
//! of the lab's) replayed with the phones played through `FakeAsterisk::register` at the
//! recorded points, and the facts of FACTS.md / FACTS_QUALIFY.md no transcript shows.
//! Nothing waits for a time that is usually long enough: the replays block on the
//! recorded bytes, the other tests poll with `wait_until`.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Ami, Lab, Replay, IO};
use crate::support::asterisk::{
    AmiUser, ContactState, DeviceStateOrder, Fault, Options, RegisterError, Registration,
};
use crate::support::wait_until;

const T_REG_01: &str = fixture!("registration/ami_reg_01_showcontacts_empty.txt");
const T_REG_01B: &str = fixture!("registration/ami_reg_01b_lists_empty.txt");
const T_REG_02: &str = fixture!("registration/ami_reg_02_showcontacts_one.txt");
const T_REG_03: &str = fixture!("registration/ami_reg_03_events_live.txt");
const T_REG_03_SYSTEM: &str = fixture!("registration/ami_reg_03_events_live_system.txt");
const T_REG_04B: &str = fixture!("registration/ami_reg_04b_command_action.txt");
const T_REG_05: &str = fixture!("registration/ami_reg_05_permissions.txt");
const T_REG_06: &str = fixture!("registration/ami_reg_06_interleave.txt");
const T_QUAL_01_SYSTEM: &str = fixture!("registration/ami_qual_01_reachable_system.txt");
const T_QUAL_02: &str = fixture!("registration/ami_qual_02_unreachable.txt");
const T_QUAL_03: &str = fixture!("registration/ami_qual_03_register_no_options.txt");
const CLI_REG_CONTACTS: &[u8] = fixture_bytes!("registration/ami_reg_04_cli.1.stdout.bin");
const CLI_REG_AORS: &[u8] = fixture_bytes!("registration/ami_reg_04_cli.2.stdout.bin");
const CLI_REG_ENDPOINT_1903: &[u8] = fixture_bytes!("registration/ami_reg_04_cli.3.stdout.bin");
const CLI_QUAL_CONTACTS: &[u8] = fixture_bytes!("registration/ami_qual_04_cli.1.stdout.bin");
const CLI_QUAL_ENDPOINTS: &[u8] = fixture_bytes!("registration/ami_qual_04_cli.4.stdout.bin");

/// One lab extension as FACTS.md's setup describes it (zz-lab-reg.conf / zz-lab-qual.conf:
/// ulaw+alaw, direct_media off, the lab context and transport).
fn lab_extension(ext: &str, name: &str, secret: &str, aor: &str) -> String {
    format!(
        "[{ext}]\ntype=endpoint\ncontext=synergy-internal\ndisallow=all\nallow=ulaw,alaw\ntransport=transport-udp\ndirect_media=no\ncallerid=\"{name}\" <{ext}>\nauth={ext}\naors={ext}\n\n\
         [{ext}]\ntype=auth\nauth_type=userpass\nusername={ext}\npassword={secret}{ext}\n\n\
         [{ext}]\ntype=aor\n{aor}\n"
    )
}

/// Endpoints 1901-1903, qualify off (ami_reg_*).
fn reg_conf(with_1901: bool) -> String {
    let mut out = String::new();
    if with_1901 {
        out.push_str(&lab_extension(
            "1901",
            "Reg One",
            "REGSECRET",
            "max_contacts=1\nremove_existing=yes",
        ));
    }
    out.push_str(&lab_extension(
        "1902",
        "Reg Two",
        "REGSECRET",
        "max_contacts=1\nremove_existing=yes",
    ));
    out.push_str(&lab_extension(
        "1903",
        "Reg Three",
        "REGSECRET",
        "max_contacts=2\nremove_existing=yes",
    ));
    out
}

/// Endpoints 1911 and 1912, qualify every 5 s with a 3 s timeout (ami_qual_*).
fn qual_conf() -> String {
    let aor = "max_contacts=1\nremove_existing=yes\nqualify_frequency=5\nqualify_timeout=3";
    lab_extension("1911", "Q One", "QUALSECRET", aor)
        + &lab_extension("1912", "Q Two", "QUALSECRET", aor)
}

/// The lab's portal user (FACTS.md: read system,call,command,reporting).
fn lab_user() -> Options {
    Options::writing(&["system", "call", "command", "originate"]).reading(&[
        "system",
        "call",
        "command",
        "reporting",
    ])
}

/// Qualify 100 times faster: qualify_frequency 5 s every 50 ms, the timeout 30 ms.
fn fast_qualify(mut o: Options) -> Options {
    o.qualify_time_scale = 0.01;
    o
}

async fn lab_with(opts: Options, conf: String) -> Lab {
    Lab::start_with(opts, move |_, pjsip, _| {
        std::fs::write(pjsip.join("zz-lab.conf"), conf).unwrap();
    })
    .await
}

impl Lab {
    fn write_lab_conf(&self, conf: &str) {
        std::fs::write(self.pjsip.join("zz-lab.conf"), conf).unwrap();
    }
}

/// The lab's sipp REGISTER of `ext` from 127.0.0.1:`port` (User-Agent SIPp, no Expires
/// header, Call-ID lab-<ext>-<port>@127.0.0.1).
fn sipp(ext: &str, port: u16) -> Registration {
    let mut r = Registration::new(
        ext,
        &format!("sip:{ext}@127.0.0.1:{port}"),
        SocketAddr::from(([127, 0, 0, 1], port)),
    );
    r.user_agent = "SIPp".into();
    r.call_id = format!("lab-{ext}-{port}@127.0.0.1");
    r
}

fn sipp_expires(ext: &str, port: u16, secs: u64) -> Registration {
    let mut r = sipp(ext, port);
    r.expires = Some(Duration::from_secs(secs));
    r
}

fn uri(ext: &str, port: u16) -> String {
    format!("sip:{ext}@127.0.0.1:{port}")
}

fn epoch_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn us(n: u64) -> Option<Duration> {
    Some(Duration::from_micros(n))
}

/// Waits until `ext`'s contact lists as `status` (with this RoundtripUsec).
async fn wait_status(lab: &Lab, ext: &str, status: ContactState, rtt: Option<i64>) {
    wait_until(&format!("{ext} lists as {status:?} {rtt:?}"), IO, || {
        lab.ast
            .contacts()
            .iter()
            .any(|c| c.contact.aor == ext && c.status == status && c.roundtrip_usec == rtt)
    })
    .await
}

/// Logs in as the lab user with `events` (None: no Events header).
async fn login(lab: &Lab, events: Option<&str>) -> Ami {
    let mut a = lab.ami().await;
    assert_eq!(a.line().await, "Asterisk Call Manager/11.0.0\r\n");
    let events = events
        .map(|e| format!("Events: {e}\r\n"))
        .unwrap_or_default();
    a.send(&format!(
        "Action: Login\r\nUsername: portal\r\nSecret: portal-secret\r\n{events}\r\n"
    ))
    .await;
    assert!(a.msg().await.contains("Authentication accepted"));
    // FullyBooted, when it comes.
    events_so_far(&mut a).await;
    a
}

/// Every event that arrived before the answer to a Ping sent now (events are written
/// between messages, so the ones already published come first).
async fn events_so_far(a: &mut Ami) -> Vec<String> {
    a.send("Action: Ping\r\nActionID: sync\r\n\r\n").await;
    let mut out = Vec::new();
    loop {
        let m = a.msg().await;
        assert!(!m.is_empty(), "connection closed");
        if m.starts_with("Response: Success\r\nActionID: sync\r\n") {
            return out;
        }
        out.push(m);
    }
}

/// The first line and the fields of an event, as `Name: value` pairs after the first.
fn summary(events: &[String]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let mut lines = e.lines();
            let first = lines.next().unwrap_or_default().to_string();
            let rest: Vec<&str> = lines
                .filter(|l| {
                    [
                        "PeerStatus: ",
                        "State: ",
                        "ContactStatus: ",
                        "URI: ",
                        "RoundtripUsec: ",
                    ]
                    .iter()
                    .any(|k| l.starts_with(k))
                })
                .collect();
            format!("{first} {}", rest.join(" "))
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Replays

#[tokio::test]
async fn replay_empty_lists() {
    // ami_reg_01 / 01b: nothing registered; "No Contacts found\n" is an error with a bare
    // LF and an extra CRLF, the inbound statuses an empty success (F-REG-5).
    let lab = lab_with(lab_user(), reg_conf(true)).await;
    Replay::new(lab.ast.ami_addr(), T_REG_01).finish().await;
    Replay::new(lab.ast.ami_addr(), T_REG_01B).finish().await;
}

#[tokio::test]
async fn replay_one_contact_in_every_list() {
    // ami_reg_02: 1901 registered (no Expires header: default_expiration 3600) before
    // the connection; ContactList, EndpointDetail & co, EndpointList, AorList,
    // ContactStatusDetail.
    let lab = lab_with(lab_user(), reg_conf(true)).await;
    let before = epoch_now();
    lab.ast.register_with(&sipp("1901", 5101)).unwrap();
    Replay::new(lab.ast.ami_addr(), T_REG_02).finish().await;
    let c = &lab.ast.contacts()[0].contact;
    assert_eq!(c.id, "1901;@dcc08cee4295c56851839784ebf09cf4", "F-REG-10");
    let expires = c.expiration_time();
    assert!(
        (before + 3600..=epoch_now() + 3600).contains(&expires),
        "F-REG-11: {expires}"
    );
}

#[tokio::test]
async fn replay_events_of_register_refresh_unregister_replace_expire_reload() {
    // ami_reg_03, both connections at once: A without an Events header (all classes,
    // DeviceStateChange after PeerStatus, a PJSIPShowContacts after each step, the
    // endpoint and AORs after the removal), B with `Events: system` (no
    // DeviceStateChange). The expiry of step 8 needs Expires: 60; lifetimes are scaled
    // down 100 times and the check runs every 100 ms (30 s in the lab, where it came
    // 9.4 s late).
    let mut opts = lab_user();
    opts.expiration_check_interval = Some(Duration::from_millis(100));
    opts.expiry_time_scale = 0.01;
    let lab = lab_with(opts, reg_conf(true)).await;
    let ast = &lab.ast;
    ast.register_with(&sipp("1901", 5101)).unwrap();
    let mut a = Replay::new(ast.ami_addr(), T_REG_03);
    let mut b = Replay::new(ast.ami_addr(), T_REG_03_SYSTEM);
    for (step, reg) in [
        ("ACTION step1:", sipp("1902", 5102)),
        ("ACTION step2:", sipp("1903", 5131)),
        ("ACTION step3:", sipp("1903", 5132)),
        ("ACTION step4:", sipp("1901", 5101)),
        ("ACTION step5:", sipp_expires("1902", 5102, 0)),
        ("ACTION step6:", sipp("1901", 5111)),
        // Expires: 30 is raised to minimum_expiration 60, silently (F-REG-21).
        ("ACTION step7:", sipp_expires("1901", 5111, 30)),
        ("ACTION step8:", sipp_expires("1901", 5111, 60)),
        // Step 9 (a wrong password) reaches no AMI event; step 10 registers again after
        // the expiry.
        ("ACTION step10:", sipp("1901", 5111)),
    ] {
        a.until(step).await;
        b.until(step).await;
        let before = epoch_now();
        ast.register_with(&reg).unwrap();
        if step == "ACTION step7:" {
            let c = ast.contacts().into_iter().find(|c| c.contact.aor == "1901");
            let expires = c.unwrap().contact.expiration_time();
            assert!(
                (before + 60..=epoch_now() + 60).contains(&expires),
                "F-REG-21: {expires}"
            );
        }
    }
    a.until("STEP 11:").await;
    b.until("STEP 11:").await;
    ast.cli("module reload res_pjsip.so");
    a.until("STEP 12:").await;
    b.until("STEP 12:").await;
    lab.write_lab_conf(&reg_conf(false));
    ast.cli("module reload res_pjsip.so");
    a.finish().await;
    b.finish().await;
    // F-REG-24: the contact of the removed 1901 stays, as an orphan.
    let contacts = ast.contacts();
    let orphan: Vec<_> = contacts.iter().filter(|c| c.orphan).collect();
    assert_eq!(orphan.len(), 1);
    assert_eq!(orphan[0].contact.uri, uri("1901", 5111));
    assert_eq!(orphan[0].status, ContactState::NonQualified);
    assert_eq!(contacts.len(), 3);
}

#[tokio::test]
async fn replay_permissions_of_pjsipshowcontacts() {
    // ami_reg_05: PJSIPShow* needs write=system; read= does not matter (F-REG-27). The
    // state: 1901's contact orphaned by scenario 3, 1903 with two contacts.
    let mut opts = lab_user();
    opts.other_users = vec![
        AmiUser::new("labsys", "labsys-secret", &["system"], &["system"]),
        AmiUser::new("labcmd", "labcmd-secret", &["command"], &["command"]),
        AmiUser::new("labrsys", "labrsys-secret", &["system"], &["command"]),
        AmiUser::new("labwsys", "labwsys-secret", &["command"], &["system"]),
    ];
    let lab = lab_with(opts, reg_conf(true)).await;
    for (ext, port) in [("1903", 5131), ("1903", 5132), ("1901", 5111)] {
        lab.ast.register_with(&sipp(ext, port)).unwrap();
    }
    lab.write_lab_conf(&reg_conf(false));
    lab.ast.cli("module reload res_pjsip.so");
    Replay::new(lab.ast.ami_addr(), T_REG_05).finish().await;
}

#[tokio::test]
async fn replay_events_between_pipelined_pings_and_their_responses() {
    // ami_reg_06: the REGISTER's events came after Pings 0101-0110 were sent and before
    // their responses (F-REG-26), DeviceStateChange first that time. The registration
    // happens when Ping 0101 is half sent: the session has not read that action yet, so
    // the events are queued ahead of its response, as they were in the lab.
    let lab = lab_with(lab_user(), reg_conf(true)).await;
    lab.ast
        .set_device_state_order(DeviceStateOrder::BeforePeerStatus);
    let mut r = Replay::new(lab.ast.ami_addr(), T_REG_06);
    r.until("ActionID: s6-ping-0101").await;
    lab.ast.register_with(&sipp("1902", 5102)).unwrap();
    r.finish().await;
}

#[tokio::test]
async fn replay_qualify_reachable_with_events_system() {
    // ami_qual_01, connection B: NonQualified at the REGISTER, then PeerStatus and
    // ContactStatus Reachable with the phone's RoundtripUsec (F-QUAL-4), no
    // DeviceStateChange for `Events: system`.
    let lab = lab_with(fast_qualify(lab_user()), qual_conf()).await;
    lab.ast.answer_qualify("1911", &uri("1911", 5171), us(526));
    let mut r = Replay::new(lab.ast.ami_addr(), T_QUAL_01_SYSTEM);
    r.until("ACTION s1-register-1911-answering").await;
    lab.ast.register_with(&sipp("1911", 5171)).unwrap();
    r.finish().await;
}

#[tokio::test]
async fn replay_qualify_unreachable_and_back() {
    // ami_qual_02: 1911 Reachable (RTT 600 us), its phone goes silent -> PeerStatus,
    // ContactStatus Unreachable, DeviceStateChange (last, that run); the lists say
    // Unreachable/N/A; the phone answers again (540 us) -> Reachable; later rounds give
    // 796 us. Qualify runs 100 times faster (F-QUAL-7: 5 s / 3 s here 50 ms / 30 ms).
    let lab = lab_with(fast_qualify(lab_user()), qual_conf()).await;
    let ast = &lab.ast;
    ast.set_device_state_order(DeviceStateOrder::Last);
    let phone = uri("1911", 5171);
    ast.answer_qualify("1911", &phone, us(600));
    ast.register_with(&sipp("1911", 5171)).unwrap();
    wait_status(&lab, "1911", ContactState::Reachable, Some(600)).await;
    let mut r = Replay::new(ast.ami_addr(), T_QUAL_02);
    r.until("sipp pid 6811 (register+answer) exited").await;
    ast.answer_qualify("1911", &phone, None);
    r.until("ACTION s2-responder-1911").await;
    ast.answer_qualify("1911", &phone, us(540));
    // The last list shows the RTT of a later round.
    r.until("ActionID: q2-07-contacts-reachable-again-later")
        .await;
    ast.answer_qualify("1911", &phone, us(796));
    wait_status(&lab, "1911", ContactState::Reachable, Some(796)).await;
    r.finish().await;
}

#[tokio::test]
async fn replay_qualify_of_a_phone_that_never_answers() {
    // ami_qual_03: 1912 registers and never answers: NonQualified at the REGISTER and in
    // the lists during the first OPTIONS, Unreachable qualify_timeout later, no PeerStatus
    // (F-QUAL-11/12); 1911 stays Reachable, its RTT changing between rounds. Qualify 10
    // times faster here, so that the two lists sent at once still fall within the first
    // OPTIONS (300 ms).
    let mut opts = lab_user();
    opts.qualify_time_scale = 0.1;
    let lab = lab_with(opts, qual_conf()).await;
    let ast = &lab.ast;
    let phone = uri("1911", 5171);
    ast.answer_qualify("1911", &phone, us(796));
    ast.register_with(&sipp("1911", 5171)).unwrap();
    wait_status(&lab, "1911", ContactState::Reachable, Some(796)).await;
    let mut r = Replay::new(ast.ami_addr(), T_QUAL_03);
    r.until("ACTION s3-register-1912-silent").await;
    ast.register_with(&sipp("1912", 5172)).unwrap();
    for (action, rtt) in [
        ("ActionID: q3-04-contacts-1912-unreachable", 724),
        ("ActionID: q3-06-contacts-later", 559),
    ] {
        r.until(action).await;
        ast.answer_qualify("1911", &phone, us(rtt));
        wait_status(&lab, "1911", ContactState::Reachable, Some(rtt as i64)).await;
    }
    r.finish().await;
}

#[tokio::test]
async fn replay_cli_views_of_contacts_aors_and_an_endpoint() {
    // ami_reg_04 (asterisk -rx) and 04b (the same through Action: Command): the orphan
    // 1901 contact is listed by `pjsip show contacts` but not under `pjsip show aors`.
    let lab = lab_with(lab_user(), reg_conf(true)).await;
    for (ext, port) in [("1901", 5111), ("1903", 5131), ("1903", 5132)] {
        lab.ast.register_with(&sipp(ext, port)).unwrap();
    }
    lab.write_lab_conf(&reg_conf(false));
    lab.ast.cli("module reload res_pjsip.so");
    for (cmd, recorded) in [
        ("pjsip show contacts", CLI_REG_CONTACTS),
        ("pjsip show aors", CLI_REG_AORS),
        ("pjsip show endpoint 1903", CLI_REG_ENDPOINT_1903),
    ] {
        let (rc, out, _) = lab.cli_async(cmd).await;
        assert_eq!(
            (rc, out.as_str()),
            (0, std::str::from_utf8(recorded).unwrap()),
            "{cmd}"
        );
    }
    Replay::new(lab.ast.ami_addr(), T_REG_04B).finish().await;
    assert_eq!(
        lab.ast.cli("pjsip show endpoint 1901"),
        "Unable to find object 1901.\n\n"
    );
}

#[tokio::test]
async fn replay_cli_views_of_qualified_contacts() {
    // ami_qual_04: Avail with the RTT in ms, Unavail with nan (F-QUAL-15); the endpoint
    // table shows the contacts under their AOR and the device states.
    let lab = lab_with(fast_qualify(lab_user()), qual_conf()).await;
    lab.ast.answer_qualify("1911", &uri("1911", 5171), us(559));
    lab.ast.register_with(&sipp("1911", 5171)).unwrap();
    lab.ast.register_with(&sipp("1912", 5172)).unwrap();
    wait_status(&lab, "1911", ContactState::Reachable, Some(559)).await;
    wait_status(&lab, "1912", ContactState::Unreachable, None).await;
    for (cmd, recorded) in [
        ("pjsip show contacts", CLI_QUAL_CONTACTS),
        ("pjsip show endpoints", CLI_QUAL_ENDPOINTS),
    ] {
        assert_eq!(
            lab.ast.cli(cmd),
            std::str::from_utf8(recorded).unwrap(),
            "{cmd}"
        );
    }
}

// ---------------------------------------------------------------------------------
// Facts without a transcript of their own

#[tokio::test]
async fn register_refusals_limits_and_expiry_range() {
    let conf = reg_conf(true)
        + "[1904]\ntype=endpoint\naors=1904\n\n[1904]\ntype=aor\nmax_contacts=1\n\n\
           [1905]\ntype=endpoint\naors=1905\n\n[1905]\ntype=aor\n\n\
           [1906]\ntype=endpoint\n\n[1907]\ntype=endpoint\naors=1908\n";
    let lab = lab_with(lab_user(), conf).await;
    let ast = &lab.ast;
    let from = SocketAddr::from(([127, 0, 0, 1], 5200));
    let long = Duration::from_secs(100_000);
    let mut a = login(&lab, Some("on")).await;
    for (aor, err, code) in [
        // No endpoint for it, an endpoint without AORs, max_contacts 0: 403.
        ("9999", RegisterError::Forbidden, 403),
        ("1906", RegisterError::Forbidden, 403),
        ("1905", RegisterError::Forbidden, 403),
        // Not among the endpoint's AORs, or an AOR of an endpoint that is not configured.
        ("1907", RegisterError::NotFound, 404),
        ("1908", RegisterError::NotFound, 404),
    ] {
        let got = ast.register(aor, &format!("sip:{aor}@127.0.0.1:5200"), "", from, long);
        assert_eq!(got, Err(err), "{aor}");
        assert_eq!(err.code(), code);
    }
    // Without remove_existing a full AOR refuses another contact and fires nothing.
    let before = epoch_now();
    ast.register("1904", "sip:1904@127.0.0.1:1", "Phone/1.0", from, long)
        .unwrap();
    let second = ast.register("1904", "sip:1904@127.0.0.1:2", "", from, long);
    assert_eq!(
        second.map_err(|e| e.to_string()),
        Err("403 Forbidden".into())
    );
    let c = ast.contacts()[0].contact.clone();
    assert!(
        (before + 7200..=epoch_now() + 7200).contains(&c.expiration_time()),
        "maximum_expiration 7200 for 100000 s"
    );
    assert_eq!(
        (c.via_addr.as_str(), c.via_port, c.user_agent.as_str()),
        ("127.0.0.1", 5200, "Phone/1.0")
    );
    assert_eq!(c.call_id, "1904-5200@127.0.0.1");
    assert_eq!(
        summary(&events_so_far(&mut a).await),
        [
            "Event: PeerStatus PeerStatus: Reachable",
            "Event: DeviceStateChange State: NOT_INUSE",
            "Event: ContactStatus URI: sip:1904@127.0.0.1:1 ContactStatus: NonQualified RoundtripUsec: 0",
        ]
    );
    // An unregister of an unknown contact is forgiven; of the last one it fires
    // PeerStatus, DeviceStateChange and ContactStatus Removed (F-REG-18).
    ast.unregister("1904", "sip:1904@127.0.0.1:9").unwrap();
    ast.unregister("1904", "sip:1904@127.0.0.1:1").unwrap();
    assert_eq!(
        summary(&events_so_far(&mut a).await),
        [
            "Event: PeerStatus PeerStatus: Unreachable",
            "Event: DeviceStateChange State: UNAVAILABLE",
            "Event: ContactStatus URI: sip:1904@127.0.0.1:1 ContactStatus: Removed RoundtripUsec: 0",
        ]
    );
    assert!(ast.contacts().is_empty());
}

#[tokio::test]
async fn events_need_every_class_in_read_and_in_the_mask() {
    // F-REG-28: an event reaches a session only if all its classes are in the user's
    // read= and in the mask of its Events: header (manager.c strings_to_mask/get_perm).
    let lab = lab_with(Options::default(), reg_conf(true)).await;
    let masks = [
        None,
        Some("on"),
        Some("off"),
        Some("system"),
        Some("call"),
        Some("system,call"),
        Some("2"),
        Some("1"),
    ];
    let mut sessions = Vec::new();
    for events in masks {
        sessions.push((events, login(&lab, events).await));
    }
    lab.ast.register_with(&sipp("1901", 5101)).unwrap();
    for (events, a) in &mut sessions {
        let got: Vec<String> = events_so_far(a)
            .await
            .iter()
            .map(|e| e.lines().next().unwrap().to_string())
            .collect();
        // The default portal user reads `system` only: never a DeviceStateChange.
        let expected: &[&str] = match events {
            Some("off") | Some("call") | Some("2") => &[],
            _ => &["Event: PeerStatus", "Event: ContactStatus"],
        };
        assert_eq!(got, expected, "Events: {events:?}");
    }
    // With read=system,call the DeviceStateChange comes too, unless the mask lacks call.
    let lab = lab_with(lab_user(), reg_conf(true)).await;
    let mut all = login(&lab, Some("on")).await;
    let mut system = login(&lab, Some("system")).await;
    lab.ast.register_with(&sipp("1901", 5101)).unwrap();
    assert_eq!(events_so_far(&mut all).await.len(), 3);
    assert_eq!(events_so_far(&mut system).await.len(), 2);
}

#[tokio::test]
async fn list_commands_and_pjsip_actions_follow_write_system() {
    // ListCommands lists what the user may run (manager.c action_listcommands).
    for (opts, shown) in [
        (Options::default(), true),
        (Options::writing(&["command"]), false),
    ] {
        let lab = lab_with(opts, reg_conf(true)).await;
        let mut a = login(&lab, Some("off")).await;
        a.send("Action: ListCommands\r\n\r\n").await;
        let list = a.msg().await;
        assert_eq!(
            list.contains("PJSIPShowContacts: Lists PJSIP Contacts. (Priv: system,all)\r\n"),
            shown,
            "{list}"
        );
        a.send("Action: PJSIPShowContacts\r\nActionID: c\r\n\r\n")
            .await;
        let m = a.msg().await;
        let expected = if shown {
            "Response: Error\r\nActionID: c\r\nMessage: No Contacts found\n\r\n"
        } else {
            "Response: Error\r\nActionID: c\r\nMessage: Permission denied\r\n\r\n"
        };
        assert_eq!(m, expected);
        if shown {
            assert_eq!(a.msg().await, "\r\n", "the extra CRLF of F-REG-5");
        }
        a.send("Action: Ping\r\n\r\n").await;
        assert!(a.msg().await.contains("Pong"), "the session stays open");
    }
}

#[tokio::test]
async fn qualify_never_answered_and_config_removed() {
    // F-QUAL-11/12: a contact that never answers goes NonQualified -> Unreachable with no
    // PeerStatus or DeviceStateChange. F-QUAL-13: the config of a Reachable one removed:
    // PeerStatus Unreachable, DeviceStateChange INVALID, Reload, no ContactStatus; the
    // orphan lists NonQualified/N/A and is no longer qualified.
    let lab = lab_with(fast_qualify(lab_user()), qual_conf()).await;
    let ast = &lab.ast;
    let mut a = login(&lab, None).await;
    events_so_far(&mut a).await;
    ast.register_with(&sipp("1912", 5172)).unwrap();
    wait_status(&lab, "1912", ContactState::Unreachable, None).await;
    assert_eq!(
        summary(&events_so_far(&mut a).await),
        [
            "Event: ContactStatus URI: sip:1912@127.0.0.1:5172 ContactStatus: NonQualified RoundtripUsec: 0",
            "Event: ContactStatus URI: sip:1912@127.0.0.1:5172 ContactStatus: Unreachable RoundtripUsec: 0",
        ]
    );
    // Unreachable contacts stay registered; unregistering one fires Removed only.
    ast.unregister("1912", &uri("1912", 5172)).unwrap();
    assert_eq!(
        summary(&events_so_far(&mut a).await),
        ["Event: ContactStatus URI: sip:1912@127.0.0.1:5172 ContactStatus: Removed RoundtripUsec: 0"]
    );
    ast.answer_qualify("1911", &uri("1911", 5171), us(300));
    ast.register_with(&sipp("1911", 5171)).unwrap();
    wait_status(&lab, "1911", ContactState::Reachable, Some(300)).await;
    events_so_far(&mut a).await;
    lab.write_lab_conf("");
    ast.cli("module reload res_pjsip.so");
    assert_eq!(
        summary(&events_so_far(&mut a).await),
        [
            "Event: PeerStatus PeerStatus: Unreachable",
            "Event: DeviceStateChange State: INVALID",
            "Event: Reload ",
        ]
    );
    let orphan = &ast.contacts()[0];
    assert!(orphan.orphan);
    assert_eq!(
        (orphan.status, orphan.roundtrip_usec),
        (ContactState::NonQualified, None)
    );
}

#[tokio::test]
async fn refresh_is_silent_and_replacing_a_reachable_contact_flaps_the_peer() {
    // F-REG-17: a refresh fires nothing. With qualify on, remove_existing replacing the
    // only Reachable contact: NonQualified (new), PeerStatus Unreachable, Removed (old),
    // then the new one qualifies: PeerStatus Reachable, Reachable (pjsip_options.c).
    let lab = lab_with(fast_qualify(lab_user()), qual_conf()).await;
    let ast = &lab.ast;
    let mut a = login(&lab, Some("system")).await;
    events_so_far(&mut a).await;
    ast.answer_qualify("1911", &uri("1911", 5171), us(100));
    ast.answer_qualify("1911", &uri("1911", 5181), us(200));
    ast.register_with(&sipp("1911", 5171)).unwrap();
    wait_status(&lab, "1911", ContactState::Reachable, Some(100)).await;
    events_so_far(&mut a).await;
    ast.register_with(&sipp("1911", 5171)).unwrap();
    assert!(events_so_far(&mut a).await.is_empty(), "F-REG-17");
    ast.register_with(&sipp("1911", 5181)).unwrap();
    wait_status(&lab, "1911", ContactState::Reachable, Some(200)).await;
    assert_eq!(
        summary(&events_so_far(&mut a).await),
        [
            "Event: ContactStatus URI: sip:1911@127.0.0.1:5181 ContactStatus: NonQualified RoundtripUsec: 0",
            "Event: PeerStatus PeerStatus: Unreachable",
            "Event: ContactStatus URI: sip:1911@127.0.0.1:5171 ContactStatus: Removed RoundtripUsec: 0",
            "Event: PeerStatus PeerStatus: Reachable",
            "Event: ContactStatus URI: sip:1911@127.0.0.1:5181 ContactStatus: Reachable RoundtripUsec: 200",
        ]
    );
}

#[tokio::test]
async fn expired_contacts_go_like_an_unregister_and_orphans_silently() {
    // F-REG-20 with a 50 ms check and lifetimes 50 times shorter (60 s -> 1.2 s). The
    // orphan's expiry deletes it from astdb without an event (no AOR to publish it).
    let mut opts = lab_user();
    opts.expiration_check_interval = Some(Duration::from_millis(50));
    opts.expiry_time_scale = 0.02;
    let lab = lab_with(opts, reg_conf(true)).await;
    let ast = &lab.ast;
    let mut a = login(&lab, Some("system")).await;
    ast.register_with(&sipp_expires("1901", 5101, 60)).unwrap();
    lab.write_lab_conf(&reg_conf(false));
    ast.cli("module reload res_pjsip.so");
    ast.register_with(&sipp_expires("1902", 5102, 60)).unwrap();
    wait_until("both expired", IO, || ast.contacts().is_empty()).await;
    assert_eq!(
        summary(&events_so_far(&mut a).await),
        [
            "Event: PeerStatus PeerStatus: Reachable",
            "Event: ContactStatus URI: sip:1901@127.0.0.1:5101 ContactStatus: NonQualified RoundtripUsec: 0",
            "Event: PeerStatus PeerStatus: Unreachable",
            "Event: Reload ",
            "Event: PeerStatus PeerStatus: Reachable",
            "Event: ContactStatus URI: sip:1902@127.0.0.1:5102 ContactStatus: NonQualified RoundtripUsec: 0",
            "Event: PeerStatus PeerStatus: Unreachable",
            "Event: ContactStatus URI: sip:1902@127.0.0.1:5102 ContactStatus: Removed RoundtripUsec: 0",
        ]
    );
}

#[tokio::test]
async fn qualify_switched_on_and_off_by_a_reload() {
    // Not recorded; pjsip_options.c (sip_options_apply_aor_configuration): switched on,
    // the AOR counts no available contact until one answers, so the endpoint goes
    // Unreachable at the reload and Reachable at the first answer (within one
    // qualify_frequency); switched off, every contact goes NonQualified and counts as
    // available again, so the endpoint stays Reachable.
    let lab = lab_with(fast_qualify(lab_user()), reg_conf(true)).await;
    let ast = &lab.ast;
    let mut a = login(&lab, Some("system")).await;
    ast.answer_qualify("1901", &uri("1901", 5101), us(300));
    ast.register_with(&sipp("1901", 5101)).unwrap();
    events_so_far(&mut a).await;
    let on = reg_conf(true).replacen(
        "max_contacts=1\nremove_existing=yes",
        "max_contacts=1\nremove_existing=yes\nqualify_frequency=5",
        1,
    );
    lab.write_lab_conf(&on);
    ast.cli("module reload res_pjsip.so");
    wait_status(&lab, "1901", ContactState::Reachable, Some(300)).await;
    assert_eq!(
        summary(&events_so_far(&mut a).await),
        [
            "Event: PeerStatus PeerStatus: Unreachable",
            "Event: Reload ",
            "Event: PeerStatus PeerStatus: Reachable",
            "Event: ContactStatus URI: sip:1901@127.0.0.1:5101 ContactStatus: Reachable RoundtripUsec: 300",
        ]
    );
    lab.write_lab_conf(&reg_conf(true));
    ast.cli("module reload res_pjsip.so");
    assert_eq!(
        summary(&events_so_far(&mut a).await),
        [
            "Event: ContactStatus URI: sip:1901@127.0.0.1:5101 ContactStatus: NonQualified RoundtripUsec: 0",
            "Event: Reload ",
        ]
    );
    // The stored contact keeps the frequency of its REGISTER (ContactList shows it)
    // until the phone refreshes.
    assert_eq!(ast.contacts()[0].contact.qualify_frequency, 0);
}

#[tokio::test]
async fn events_wait_for_the_response_of_a_running_action() {
    // An event published while the session runs an action comes after that action's
    // response (manager.c process_events after process_message): here the action is a
    // Ping stalled by the Stall fault.
    let lab = lab_with(lab_user(), reg_conf(true)).await;
    let mut a = login(&lab, Some("system")).await;
    let pings = || {
        lab.ast
            .actions()
            .iter()
            .filter(|x| *x == "AMI Ping")
            .count()
    };
    let before = pings();
    lab.ast.set_fault(Fault::Stall(Duration::from_millis(200)));
    a.send("Action: Ping\r\nActionID: stalled\r\n\r\n").await;
    wait_until("the Ping runs", IO, || pings() > before).await;
    lab.ast.register_with(&sipp("1901", 5101)).unwrap();
    assert!(a
        .msg()
        .await
        .starts_with("Response: Success\r\nActionID: stalled\r\nPing: Pong\r\n"));
    assert!(a.msg().await.starts_with("Event: PeerStatus\r\n"));
    assert!(a.msg().await.starts_with("Event: ContactStatus\r\n"));
    lab.ast.clear_faults();
}

#[tokio::test]
async fn restarts_keep_contacts_and_drop_sessions() {
    let lab = lab_with(fast_qualify(lab_user()), reg_conf(true) + &qual_conf()).await;
    let ast = &lab.ast;
    ast.answer_qualify("1911", &uri("1911", 5171), us(400));
    ast.register_with(&sipp("1901", 5101)).unwrap();
    ast.register_with(&sipp("1911", 5171)).unwrap();
    wait_status(&lab, "1911", ContactState::Reachable, Some(400)).await;
    // restart_ami: every session is closed at once; logging in again works at once.
    let mut a = login(&lab, Some("system")).await;
    let mut b = login(&lab, None).await;
    ast.restart_ami();
    assert!(a.eof().await && b.eof().await);
    let mut a = login(&lab, Some("system")).await;
    ast.unregister("1901", &uri("1901", 5101)).unwrap();
    assert_eq!(events_so_far(&mut a).await.len(), 2, "events flow again");
    ast.register_with(&sipp("1901", 5101)).unwrap();
    assert_eq!(events_so_far(&mut a).await.len(), 2);
    // A refused listener refuses the event link too; clear_faults listens again.
    ast.set_fault(Fault::RefuseConnections);
    assert!(tokio::net::TcpStream::connect(ast.ami_addr())
        .await
        .is_err());
    ast.clear_faults();
    login(&lab, None).await;
    // A restart drops the sessions; the contacts stay in astdb (prune_on_boot = no),
    // 1901 is online again at once, 1911 once it is qualified again.
    ast.restart().await.unwrap();
    assert!(a.eof().await);
    let ids: Vec<String> = ast
        .contacts()
        .iter()
        .map(|c| c.contact.id.clone())
        .collect();
    assert_eq!(
        ids,
        [
            "1901;@dcc08cee4295c56851839784ebf09cf4",
            "1911;@485dec24d4d7104a6c5977b1bbdce592"
        ]
    );
    wait_status(&lab, "1911", ContactState::Reachable, Some(400)).await;
    let mut a = login(&lab, Some("off")).await;
    a.send("Action: PJSIPShowEndpoints\r\n\r\n").await;
    let mut states = Vec::new();
    loop {
        let m = a.msg().await;
        if m.starts_with("Event: EndpointListComplete") {
            break;
        }
        if let Some(l) = m.lines().find(|l| l.starts_with("DeviceState: ")) {
            states.push(l.to_string());
        }
    }
    assert_eq!(
        states,
        [
            "DeviceState: Not in use",
            "DeviceState: Unavailable",
            "DeviceState: Unavailable",
            "DeviceState: Not in use",
            "DeviceState: Unavailable"
        ]
    );
}
